"""Bayesian fit of a law with NumPyro NUTS.

The model (observation model of :mod:`surrogate.posterior`)::

    theta_k        ~ law prior of coefficient k          (surrogate.laws: Param.prior)
    log scale[s]   ~ Normal(0, 0.3)     for each non-reference source s (scale ~ x/1.35)
    offset[s]      ~ Normal(0, 0.5)     for each non-reference source s (nats/token)
    sigma[s]       ~ HalfNormal(0.1)    for every source (loss units)
    loss[i]        ~ Normal(scale[s_i] law(x_i; theta) + offset[s_i], sigma[s_i])

The law priors are weakly informative (E near typical LM losses, exponents in (0, 1.5), log
prefactors with sd 3) except where the shared tables cannot identify a term: the ``r`` terms of
``conditional`` (b1, b2) and the aspect term's eps/gamma are centred on the published fits
(data README). :meth:`LawPosterior.summary` says which terms ended up prior-dominated.

Sampling: NUTS with a dense mass matrix (log-prefactors and exponents are strongly correlated),
chains started at a multi-start least-squares optimum, run in parallel on CPU devices when there
are enough, in float64. Diagnostics (r_hat, bulk ESS, divergences) come from ArviZ.

JAX set-up happens once, here, before any JAX computation: ``numpyro.set_host_device_count``
(so chains run in parallel) unless XLA_FLAGS already sets a device count, and float64.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Mapping

import numpyro

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    numpyro.set_host_device_count(max(2, min(os.cpu_count() or 1, 4)))
numpyro.enable_x64()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
import pandas as pd  # noqa: E402
from numpyro.infer import MCMC, NUTS, init_to_median, init_to_value  # noqa: E402

from .laws import Law, Prior, get_law  # noqa: E402
from .lsq import FitError, fit_lsq, prepare_fit_data  # noqa: E402
from .posterior import SOURCE_TERMS, LawPosterior, apply_source_terms  # noqa: E402

__all__ = ["fit_bayes", "numpyro_prior", "law_model", "SCALE_PRIOR_SD", "OFFSET_PRIOR_SD",
           "SIGMA_PRIOR_SCALE"]

SCALE_PRIOR_SD: float = 0.3
OFFSET_PRIOR_SD: float = 0.5
SIGMA_PRIOR_SCALE: float = 0.1


def numpyro_prior(prior: Prior) -> dist.Distribution:
    """The NumPyro distribution of a :class:`~surrogate.laws.Prior`."""
    if prior.kind == "normal":
        return dist.Normal(prior.loc, prior.scale)
    if prior.kind == "lognormal":
        return dist.LogNormal(prior.loc, prior.scale)
    return dist.TruncatedNormal(prior.loc, prior.scale, low=prior.low, high=prior.high)


def law_model(features: Mapping[str, jnp.ndarray], src_idx: jnp.ndarray,
              loss: jnp.ndarray | None, *, law: Law, n_sources: int, source_terms: str) -> None:
    """NumPyro model of ``n`` runs (see the module docstring).

    Args:
        features: law features, arrays ``(n,)``.
        src_idx: ``(n,)`` source index, 0 = reference.
        loss: observed ``(n,)`` losses, or None to sample the prior predictive.
        law: the law.
        n_sources: number of sources.
        source_terms: one of :data:`surrogate.posterior.SOURCE_TERMS`.
    """
    theta = {p.name: numpyro.sample(p.name, numpyro_prior(p.prior)) for p in law.params}
    mu = law(features, theta, jnp)
    scale = offset = None
    k = n_sources - 1
    if k and source_terms in ("scale", "affine"):
        log_scale = numpyro.sample("log_scale", dist.Normal(0.0, SCALE_PRIOR_SD).expand([k]))
        scale = jnp.concatenate([jnp.ones(1), jnp.exp(log_scale)])[src_idx]
    if k and source_terms in ("offset", "affine"):
        off = numpyro.sample("offset", dist.Normal(0.0, OFFSET_PRIOR_SD).expand([k]))
        offset = jnp.concatenate([jnp.zeros(1), off])[src_idx]
    sigma = numpyro.sample("sigma", dist.HalfNormal(SIGMA_PRIOR_SCALE).expand([n_sources]))
    numpyro.sample("obs", dist.Normal(apply_source_terms(mu, scale, offset), sigma[src_idx]),
                   obs=loss)


def _prior_sds(law: Law, sources: list[str], source_terms: str) -> dict[str, float]:
    out = {p.name: p.prior.sd for p in law.params}
    lognormal_sd = math.sqrt((math.exp(SCALE_PRIOR_SD ** 2) - 1) * math.exp(SCALE_PRIOR_SD ** 2))
    for j, src in enumerate(sources):
        if j and source_terms in ("scale", "affine"):
            out[f"scale[{src}]"] = lognormal_sd
        if j and source_terms in ("offset", "affine"):
            out[f"offset[{src}]"] = OFFSET_PRIOR_SD
        out[f"sigma[{src}]"] = SIGMA_PRIOR_SCALE * math.sqrt(1 - 2 / math.pi)
    return out


def _init_values(runs: pd.DataFrame, law: Law, data: Any, source_terms: str, seed: int
                 ) -> dict[str, Any] | None:
    """Starting point for the chains: a least-squares fit with every coefficient free except
    the ones the data cannot identify (those start at their prior mean)."""
    try:
        fit = fit_lsq(runs, law.name, method="lsq", n_starts=6, seed=seed,
                      source_terms=source_terms, reference_source=data.reference_source)
    except FitError:
        return None
    values: dict[str, Any] = {}
    for p in law.params:
        v = fit.theta[p.name]
        lo, hi = p.prior.low, p.prior.high
        if p.prior.kind == "lognormal":
            lo = 0.0
        # Keep the start strictly inside the prior's support.
        if lo is not None:
            v = max(v, lo + 1e-6 * max(1.0, abs(lo)) + 1e-9)
        if hi is not None:
            v = min(v, hi - 1e-6 * max(1.0, abs(hi)))
        values[p.name] = jnp.asarray(v)
    k = len(data.sources) - 1
    if k and source_terms in ("scale", "affine"):
        values["log_scale"] = jnp.log(jnp.asarray([fit.source_theta[f"scale[{s}]"]
                                                   for s in data.sources[1:]]))
    if k and source_terms in ("offset", "affine"):
        values["offset"] = jnp.asarray([fit.source_theta[f"offset[{s}]"]
                                        for s in data.sources[1:]])
    values["sigma"] = jnp.asarray([max(fit.sigma[s], 1e-3) for s in data.sources])
    return values


def fit_bayes(runs: pd.DataFrame, law: str = "conditional", *, num_chains: int = 2,
              num_warmup: int = 500, num_samples: int = 500, seed: int = 0,
              progress: bool = True, reference_source: str | None = None,
              source_terms: str = "affine", target_accept: float = 0.9,
              max_tree_depth: int = 8) -> LawPosterior:
    """Sample the posterior of ``law`` given a run table with NUTS.

    Args:
        runs: run table with ``loss`` (``n`` rows, any number of sources).
        law: registered law name.
        num_chains, num_warmup, num_samples: NUTS settings (samples are per chain).
        seed: PRNG seed (the result is reproducible for a given seed and settings).
        progress: show a rich progress bar (warm-up, then sampling in chunks).
        reference_source: the source with scale 1 / offset 0 (default: most rows).
        source_terms: per-source terms (:data:`surrogate.posterior.SOURCE_TERMS`).
        target_accept, max_tree_depth: NUTS step-size target and tree depth cap.

    Returns:
        A :class:`LawPosterior` with ``num_chains * num_samples`` draws, ArviZ diagnostics and
        a warning in ``diagnostics["warnings"]`` when r_hat > 1.01, ESS is low or there were
        divergences.
    """
    t0 = time.perf_counter()
    law_obj = get_law(law)
    if source_terms not in SOURCE_TERMS:
        raise FitError(f"source_terms must be one of {SOURCE_TERMS}, got {source_terms!r}")
    for name, value in (("num_chains", num_chains), ("num_warmup", num_warmup),
                        ("num_samples", num_samples)):
        if value < 1:
            raise FitError(f"{name} must be >= 1, got {value}")
    data = prepare_fit_data(runs, reference_source)
    features = {k: jnp.asarray(v) for k, v in data.features.items()}
    src_idx = jnp.asarray(data.src_idx)
    loss = jnp.asarray(data.loss)
    init = _init_values(runs, law_obj, data, source_terms, seed)
    t_init = time.perf_counter() - t0
    kernel = NUTS(law_model, dense_mass=True, target_accept_prob=target_accept,
                  max_tree_depth=max_tree_depth,
                  init_strategy=init_to_value(values=init) if init else init_to_median())
    chain_method = "parallel" if jax.local_device_count() >= num_chains else "sequential"
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                chain_method=chain_method, progress_bar=False)
    args = (features, src_idx, loss)
    model_kwargs = dict(law=law_obj, n_sources=len(data.sources), source_terms=source_terms)
    # Two compiled loops (warm-up, sampling) so the bar can report each; chunking the sampling
    # further would recompile per chunk (~2 s each), so the bar moves in two steps.
    with _progress(progress, num_warmup + num_samples,
                   f"NUTS {law} ({num_chains} chains, {len(data.loss)} runs)") as advance:
        mcmc.warmup(jax.random.PRNGKey(seed), *args, **model_kwargs)
        advance(num_warmup)
        mcmc.run(mcmc.post_warmup_state.rng_key, *args, extra_fields=("diverging",),
                 **model_kwargs)
        advance(num_samples)
    by_chain = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    div = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"])
    samples: dict[str, np.ndarray] = {}
    for p in law_obj.params:
        samples[p.name] = by_chain[p.name].reshape(-1)
    for j, src in enumerate(data.sources):
        if j and "log_scale" in by_chain:
            samples[f"scale[{src}]"] = np.exp(by_chain["log_scale"][..., j - 1]).reshape(-1)
        if j and "offset" in by_chain:
            samples[f"offset[{src}]"] = by_chain["offset"][..., j - 1].reshape(-1)
        samples[f"sigma[{src}]"] = by_chain["sigma"][..., j].reshape(-1)
    seconds = time.perf_counter() - t0
    posterior = LawPosterior(
        law, samples, sources=data.sources, reference_source=data.reference_source,
        source_terms=source_terms, method="bayes", num_chains=num_chains,
        prior_sd=_prior_sds(law_obj, data.sources, source_terms),
        info={"n_obs": int(len(data.loss)), "num_warmup": num_warmup,
              "num_samples": num_samples, "seed": seed, "chain_method": chain_method,
              "seconds": round(seconds, 3), "init_seconds": round(t_init, 3),
              "init": "least squares" if init else "prior median"},
        sample_stats={"diverging": div.reshape(-1).astype(np.int8)})
    posterior.diagnostics  # computed now so warnings are part of the saved file
    return posterior


class _progress:
    """A rich progress bar (or nothing) with an ``advance(n)`` callable."""

    def __init__(self, enabled: bool, total: int, description: str) -> None:
        self.enabled, self.total, self.description = enabled, total, description
        self._progress = None

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn)

        from rich.console import Console

        # stderr, so a --json stdout stays machine-readable.
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TimeElapsedColumn(),
                                  console=Console(stderr=True), transient=False)
        self._progress.__enter__()
        task = self._progress.add_task(self.description, total=self.total)
        return lambda n: self._progress.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
