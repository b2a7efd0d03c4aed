"""Dispersed starting points of the NUTS chains (:func:`surrogate.nuts.fit_bayes`).

Chain 0 starts at the best multi-start least-squares optimum (:func:`surrogate.lsq.fit_lsq`:
per-source fits for per-source Chinchilla parts, one joint fit otherwise), the others at draws
of that fit's Laplace approximation with its covariance inflated 4x, so chains that end up
disagreeing reveal multi-modality instead of hiding it. Each point is mapped to every sample
site of :func:`surrogate.bayes.law_model` (the level/slope and pivot parametrisation of
:mod:`surrogate.pivot`; the discrepancy scale from the spread of the group means of the
point's residuals) and then to NumPyro's unconstrained space.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np
import pandas as pd
from numpyro.infer.util import unconstrain_fn

from .bayes import EXPONENT_POOL_SD, law_model, model_inputs
from .laws import Law, Prior
from .layout import ParamLayout
from .lsq import FitData, FitError, auto_fixed, fit_lsq
from .observation import CHINCHILLA_PART
from .pivot import (
    SLOPE_PAIRS,
    chinchilla_terms,
    per_source_names,
    pivot_shape,
    shape_factor,
    uses_level,
)

__all__ = ["init_params"]


def init_params(
    runs: pd.DataFrame,
    law: Law,
    data: FitData,
    args: tuple,
    kwargs: Mapping[str, Any],
    seed: int,
    num_chains: int,
) -> dict[str, Any] | None:
    """Unconstrained initial values of every sample site of :func:`law_model` with a leading
    chain axis ``(num_chains, ...)``, or None (no least-squares start converged: NUTS starts from
    the prior). ``args``, ``kwargs``: :func:`model_inputs`'s."""
    points = _point_fits(
        runs, law, data, kwargs["source_terms"], seed, num_chains, kwargs.get("fixed")
    )
    if points is None:
        return None
    rng = np.random.default_rng(seed + 2)
    per_chain = [
        unconstrain_fn(law_model, args, dict(kwargs), _constrained_init(p, law, data, kwargs, rng))
        for p in points
    ]
    return {k: jnp.stack([c[k] for c in per_chain]) for k in per_chain[0]}


def _inside(value: float, prior: Prior) -> float:
    """``value`` moved strictly inside the support of ``prior``."""
    lo, hi = prior.low, prior.high
    if prior.kind == "lognormal":
        lo = 0.0
    if lo is not None and hi is not None:
        margin = 1e-3 * (hi - lo)
        return float(min(max(value, lo + margin), hi - margin))
    if lo is not None:
        return float(max(value, lo + 1e-6 * max(1.0, abs(lo)) + 1e-9))
    return float(value)


def _point_fits(
    runs: pd.DataFrame,
    law: Law,
    data: FitData,
    source_terms: str,
    seed: int,
    n_chains: int,
    fixed: Mapping[str, float] | None = None,
) -> list[dict[str, Any]] | None:
    """``n_chains`` dispersed starting points in the model's constrained space, built from
    least-squares fits: per-source fits for per-source Chinchilla parts, one joint fit
    otherwise. Point 0 is the optimum, the others Laplace draws (covariance inflated 4x)."""
    per_source = per_source_names(law, len(data.sources), source_terms)
    rng = np.random.default_rng(seed + 1)
    lsq_fixed = {**auto_fixed(law, data.features, data.src_idx), **fixed} if fixed else None
    try:
        if per_source:
            keys = pd.Series(_row_keys(runs, data))
            fits = [
                fit_lsq(
                    runs[(keys == src).to_numpy()], law.name, n_starts=6, seed=seed, fixed=lsq_fixed
                )
                for src in data.sources
            ]
        else:
            fits = [
                fit_lsq(
                    runs,
                    law.name,
                    n_starts=8,
                    seed=seed,
                    source_terms=source_terms,
                    reference_source=data.reference_source,
                    fixed=lsq_fixed,
                )
            ]
    except FitError:
        return None
    # Per fit: n_chains coefficient vectors (theta dicts + source terms).
    chains: list[list[dict[str, Any]]] = []
    for fit in fits:
        layout_draws = [dict(fit.theta, **fit.source_theta)]
        if n_chains > 1:
            cov = 0.5 * (fit.cov + fit.cov.T)
            if np.all(np.isfinite(cov)):
                layout = ParamLayout(law, fit.fixed, len(fit.sources), fit.source_terms)
                lo, hi = layout.bounds()
                for _ in range(n_chains - 1):
                    for _attempt in range(20):
                        x = rng.multivariate_normal(fit.x, 4.0 * cov, method="eigh")
                        if np.all((x >= lo) & (x <= hi)):
                            break
                    else:
                        x = fit.x
                    theta, scale, offset = layout.unpack(x)
                    point = {k: float(v) for k, v in theta.items()}
                    for j, src in enumerate(fit.sources[1:], start=1):
                        if scale is not None:
                            point[f"scale[{src}]"] = float(scale[j])
                        if offset is not None:
                            point[f"offset[{src}]"] = float(offset[j])
                    layout_draws.append(point)
            while len(layout_draws) < n_chains:
                layout_draws.append(dict(layout_draws[0]))
        chains.append(layout_draws)
    return [
        {"fits": [c[i] for c in chains], "sigma": [f.sigma for f in fits]} for i in range(n_chains)
    ]


def _row_keys(runs: pd.DataFrame, data: FitData) -> np.ndarray:
    """``(n,)`` source key of each row of ``data``."""
    return np.asarray(data.sources, dtype=object)[data.src_idx]


def _constrained_init(
    point: Mapping[str, Any],
    law: Law,
    data: FitData,
    kwargs: Mapping[str, Any],
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Values of every sample site of :func:`law_model` from a least-squares point."""
    sources = data.sources
    n_sources = len(sources)
    per_source = per_source_names(law, n_sources, kwargs["source_terms"])
    fits = point["fits"]
    ref = fits[0]
    values: dict[str, Any] = {}
    theta_src = [fits[j] if per_source else ref for j in range(n_sources)]
    if uses_level(law):
        for p in law.params:
            if p.name not in CHINCHILLA_PART:
                values[p.name] = _inside(ref[p.name], p.prior)
        size_key = law.options.get("size_key", "N")
        n_p = n_sources if per_source else 1
        lvl, sn, sd = [], [], []
        exps: dict[str, list[float]] = {"alpha": [], "beta": []}
        for j in range(n_p):
            th = theta_src[j]
            alpha = _inside(th["alpha"], law.param("alpha").prior)
            beta = _inside(th["beta"], law.param("beta").prior)
            t_n = math.exp(th["log_A"] - th["alpha"] * float(kwargs["log_pivot"][size_key][j]))
            t_d = math.exp(th["log_B"] - th["beta"] * float(kwargs["log_pivot"]["D"][j]))
            factor = float(
                shape_factor(
                    law, ref, {k: float(v[j]) for k, v in kwargs["pivot_features"].items()}
                )
            )
            lvl.append((max(th["E"], 0.0) + t_n + t_d) * factor)
            sn.append(alpha * t_n * factor)
            sd.append(beta * t_d * factor)
            exps["alpha"].append(alpha)
            exps["beta"].append(beta)
        values.update(
            level=np.array(lvl),
            slope_N=np.array(sn),
            slope_D=np.array(sd),
            alpha=exps["alpha"][0],
            beta=exps["beta"][0],
        )
        for name, (partner, feature) in SLOPE_PAIRS.items():
            if name in values:
                at = float(pivot_shape(law, kwargs["pivot_features"], feature))
                values[f"{name}_pivot"] = values.pop(name) - values[partner] / at
        if n_p > 1:
            for name in ("alpha", "beta"):
                values[f"{name}_z"] = np.clip(
                    np.log(np.array(exps[name][1:]) / exps[name][0]) / EXPONENT_POOL_SD, -3, 3
                )
    else:
        for p in law.params:
            if p.name not in ("log_A", "log_B"):
                values[p.name] = _inside(ref[p.name], p.prior)
        for log_name, key, exp_name in chinchilla_terms(law):
            piv = float(np.asarray(kwargs["log_pivot"][key])[0])
            values[f"{log_name}_pivot"] = ref[log_name] - ref[exp_name] * piv
    for name in kwargs.get("fixed") or {}:
        values.pop(name, None)
        values.pop(f"{name}_pivot", None)
    k = n_sources - 1
    if k and kwargs["source_terms"] in ("scale", "affine"):
        values["log_scale"] = np.log([max(ref.get(f"scale[{s}]", 1.0), 1e-3) for s in sources[1:]])
    if k and kwargs["source_terms"] in ("offset", "affine"):
        values["offset"] = np.array([ref.get(f"offset[{s}]", 0.0) for s in sources[1:]])
    # Residuals of this point give the group effects, tau and sigma to start from.
    resid = _point_residuals(values, law, data, kwargs)
    sigma = np.empty(n_sources)
    gp = kwargs.get("gp") is not None
    orth = kwargs.get("orth") is not None
    if gp or orth or kwargs["group_idx"] is not None:
        # The discrepancy amplitude (GP eta or group tau) starts at the spread of group means.
        g_idx, g_src = data.group_idx, data.group_src
        g_mean = np.bincount(g_idx, resid, len(g_src)) / np.maximum(
            np.bincount(g_idx, None, len(g_src)), 1
        )
        amp = np.array(
            [max(np.sqrt(np.mean(g_mean[g_src == j] ** 2)), 3e-3) for j in range(n_sources)]
        ) * rng.uniform(0.8, 1.25, n_sources)
        if kwargs.get("shared_tau"):
            amp = np.sqrt(np.mean(amp**2))
            if orth:
                amp = np.atleast_1d(amp)
        values["gp_eta" if gp else "tau"] = amp
        if orth:
            values["noise_slope"] = 0.0
        if gp:
            values["gp_ell"] = rng.uniform(0.8, 1.25)
            values["noise_slope"] = 0.0
            values["gp_slope"] = 0.01 * rng.uniform(0.8, 1.25)
        resid = resid - g_mean[g_idx]
    for j in range(n_sources):
        r = resid[data.src_idx == j]
        sigma[j] = max(float(np.sqrt(np.mean(r**2))), 2e-3)
    values["sigma"] = sigma * rng.uniform(0.8, 1.25, n_sources)
    return {k: jnp.asarray(v, dtype=jnp.float64) for k, v in values.items()}


def _point_residuals(
    values: Mapping[str, Any], law: Law, data: FitData, kwargs: Mapping[str, Any]
) -> np.ndarray:
    """Residuals ``loss - mean`` of the model without the discrepancy at ``values``."""
    from numpyro.handlers import condition, seed, trace

    no_group = dict(kwargs, group_idx=None, group_src=None, gp=None, orth=None)
    model = condition(law_model, {k: jnp.asarray(v) for k, v in values.items()})
    args, _ = model_inputs(data, law, kwargs["source_terms"], discrepancy=False)
    tr = trace(seed(model, 0)).get_trace(args[0], args[1], None, **no_group)
    return data.loss - np.asarray(tr["obs"]["fn"].loc)
