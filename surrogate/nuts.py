"""The NUTS driver of the Bayesian fit: :func:`fit_bayes`.

The model, its priors and the discrepancy options are documented in :mod:`surrogate.bayes`
(``surrogate.bayes.fit_bayes`` is this function). Sampling: NUTS with a dense mass matrix,
float64, chains from dispersed least-squares starts (:mod:`surrogate.nuts_init`), run in
parallel on CPU devices when there are enough (:mod:`surrogate.jaxconfig`); the sampled sites
are converted to the law's coefficients (:mod:`surrogate.nuts_draws`); diagnostics (r_hat, bulk
ESS, divergences, tree-depth saturation) come from ArviZ (:mod:`surrogate.posterior_report`).
``law="stacked"`` fits every family and mixes them (:func:`surrogate.stacking.fit_stacked`).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

import jax
import numpy as np
import pandas as pd
from numpyro.infer import MCMC, NUTS

from . import bayes
from .bayes import DISCREPANCY, law_model, model_inputs
from .discrepancy import extrapolation_info, gp_rows_info, misfit_scale_info
from .jaxconfig import configure_jax
from .laws import STACKED, get_law
from .lsq import FitError, prepare_fit_data, size_confounded
from .nuts_draws import draws_from_sites, prior_sds
from .nuts_init import init_params
from .observation import SOURCE_TERMS
from .posterior import LawPosterior

__all__ = ["fit_bayes"]

configure_jax()


def fit_bayes(
    runs: pd.DataFrame,
    law: str = "conditional",
    *,
    num_chains: int = 2,
    num_warmup: int = 500,
    num_samples: int = 500,
    seed: int = 0,
    progress: bool = True,
    reference_source: str | None = None,
    source_terms: str = "affine",
    target_accept: float = 0.9,
    max_tree_depth: int = 10,
    discrepancy: bool | str = "orth",
    fixed: Mapping[str, float] | None = None,
) -> LawPosterior:
    """Sample the posterior of ``law`` given a run table with NUTS.

    Args:
        runs: run table with ``loss`` (``n`` rows, any number of sources).
        law: registered law name; ``"stacked"`` fits every family of
            :data:`surrogate.laws.STACK_FAMILIES` with these settings and mixes them by
            stacking weights (:func:`surrogate.stacking.fit_stacked`).
        num_chains, num_warmup, num_samples: NUTS settings (samples are per chain).
        seed: PRNG seed (the result is reproducible for a given seed and settings).
        progress: show a rich progress bar (warm-up, then sampling).
        reference_source: the source with scale 1 / offset 0 (default: most rows).
        source_terms: per-source terms (:data:`surrogate.posterior.SOURCE_TERMS`);
            ``"chinchilla"`` gives every source its own Chinchilla part.
        target_accept, max_tree_depth: NUTS step-size target and tree depth cap.
        discrepancy: the per-(source, size group) discrepancy term (module docstring):
            ``"orth"`` (default): group effects orthogonal to a level and a linear trend in
            ``ln N`` per source, with a size-dependent misfit scale (``"orth_shared"``: one
            ``tau`` for all sources); True or ``"group"``: i.i.d. per size group with a ``tau``
            per source; ``"shared"``: with one ``tau`` for all sources; ``"gp"``: a GP in
            ``ln N`` per source (``"gp_shared"``: one amplitude); False: none.
        fixed: coefficients held constant instead of sampled. None: the shape terms whose
            feature never varies at fixed size (:func:`surrogate.lsq.size_confounded`) are
            held at their prior's centre (the published fits) and a diagnostics warning says so;
            ``{}``: sample everything.

    Returns:
        A :class:`LawPosterior` with ``num_chains * num_samples`` draws, ArviZ diagnostics and
        a warning in ``diagnostics["warnings"]`` when r_hat > 1.01, ESS is low or there were
        divergences.
    """
    if law == STACKED:
        from .stacking import fit_stacked

        return fit_stacked(
            runs,
            progress=progress,
            seed=seed,
            num_chains=num_chains,
            num_warmup=num_warmup,
            num_samples=num_samples,
            reference_source=reference_source,
            source_terms=source_terms,
            target_accept=target_accept,
            max_tree_depth=max_tree_depth,
            discrepancy=discrepancy,
            fixed=fixed,
        )
    t0 = time.perf_counter()
    law_obj = get_law(law)
    if source_terms not in SOURCE_TERMS:
        raise FitError(f"source_terms must be one of {SOURCE_TERMS}, got {source_terms!r}")
    for name, value in (
        ("num_chains", num_chains),
        ("num_warmup", num_warmup),
        ("num_samples", num_samples),
    ):
        if value < 1:
            raise FitError(f"{name} must be >= 1, got {value}")
    if isinstance(discrepancy, str) and discrepancy not in DISCREPANCY:
        raise FitError(
            f"discrepancy must be True, False or one of {DISCREPANCY}, got {discrepancy!r}"
        )
    data = prepare_fit_data(runs, reference_source)
    confounded = size_confounded(law_obj, data) if fixed is None else []
    if fixed is None:
        fixed = {name: law_obj.param(name).prior.center for name in confounded}
    unknown = sorted(set(fixed) - set(law_obj.param_names))
    if unknown:
        raise FitError(f"fixed names unknown to law {law!r}: {', '.join(unknown)}")
    args, kwargs = model_inputs(data, law_obj, source_terms, discrepancy, fixed)
    init = init_params(runs, law_obj, data, args, kwargs, seed, num_chains)
    t_init = time.perf_counter() - t0
    kernel = NUTS(
        law_model, dense_mass=True, target_accept_prob=target_accept, max_tree_depth=max_tree_depth
    )
    chain_method = "parallel" if jax.local_device_count() >= num_chains else "sequential"
    mcmc = MCMC(
        kernel,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method=chain_method,
        progress_bar=False,
    )
    if init is not None and num_chains == 1:
        init = {k: v[0] for k, v in init.items()}
    # Two compiled loops (warm-up, sampling) so the bar can report each; chunking the sampling
    # further would recompile per chunk (~2 s each), so the bar moves in two steps.
    with _progress(
        progress,
        num_warmup + num_samples,
        f"NUTS {law} ({num_chains} chains, {len(data.loss)} runs)",
    ) as advance:
        mcmc.warmup(jax.random.PRNGKey(seed), *args, init_params=init, **kwargs)
        advance(num_warmup)
        mcmc.run(
            mcmc.post_warmup_state.rng_key, *args, extra_fields=("diverging", "num_steps"), **kwargs
        )
        advance(num_samples)
    by_chain = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    extra = mcmc.get_extra_fields(group_by_chain=True)
    div = np.asarray(extra["diverging"])
    n_steps = np.asarray(extra["num_steps"])
    samples = draws_from_sites(by_chain, law_obj, data, kwargs)
    seconds = time.perf_counter() - t0
    pivots = {
        k: [round(float(x), 4) for x in np.asarray(v)] for k, v in kwargs["log_pivot"].items()
    }
    posterior = LawPosterior(
        law,
        samples,
        sources=data.sources,
        reference_source=data.reference_source,
        source_terms=source_terms,
        method="bayes",
        num_chains=num_chains,
        prior_sd=prior_sds(law_obj, data.sources, source_terms, kwargs["log_pivot"], discrepancy),
        info={
            "n_obs": int(len(data.loss)),
            "num_warmup": num_warmup,
            "num_samples": num_samples,
            "seed": seed,
            "chain_method": chain_method,
            "max_tree_depth": max_tree_depth,
            "seconds": round(seconds, 3),
            "init_seconds": round(t_init, 3),
            "init": "least squares, dispersed" if init is not None else "prior",
            "log_pivot": pivots,
            "discrepancy": discrepancy if isinstance(discrepancy, str) else bool(discrepancy),
            "n_groups": int(len(data.group_src)) if discrepancy else 0,
            "size_confounded": confounded,
        },
        fixed=sorted(fixed),
        sample_stats={
            "diverging": div.reshape(-1).astype(np.int8),
            "n_steps": n_steps.reshape(-1).astype(np.int32),
        },
    )
    if kwargs.get("gp") is not None:
        posterior.info["gp"] = gp_rows_info(data)
    if kwargs.get("orth") is not None:
        posterior.info["misfit_scale"] = misfit_scale_info(data)
    # Read at call time (benchmarks/surrogate_validation.py's pre-issue-12 variant sets it to 0).
    if kwargs.get("gp") is None and bayes.EXTRAPOLATION_SD > 0:
        posterior.info["extrapolation"] = extrapolation_info(data, bayes.EXTRAPOLATION_SD)
    posterior.diagnostics  # computed now so warnings are part of the saved file
    return posterior


class _progress:
    """A rich progress bar (or nothing) with an ``advance(n)`` callable."""

    def __init__(self, enabled: bool, total: int, description: str) -> None:
        self.enabled, self.total, self.description = enabled, total, description
        self._progress: Any = None

    def __enter__(self) -> Callable[[int], Any]:
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        # stderr, so a --json stdout stays machine-readable.
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._progress.__enter__()
        task = self._progress.add_task(self.description, total=self.total)
        return lambda n: self._progress.advance(task, n)

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
