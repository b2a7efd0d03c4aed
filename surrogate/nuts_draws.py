"""From NUTS's sample sites to the draws a :class:`~surrogate.posterior.LawPosterior` stores.

The sampler works in the parametrisation of :mod:`surrogate.pivot` (level, slopes, pivot
prefactors, calibration slopes, pooled exponent offsets, ``log_scale``); a posterior stores the
law's own coefficients per source (keys of :mod:`surrogate.observation`):
:func:`draws_from_sites` converts, :func:`prior_sds` gives each stored term's prior sd (the
summary's data/prior column).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from .bayes import (
    EXPONENT_POOL_SD,
    GP_AMP_PRIOR,
    GP_LENGTHSCALE_PRIOR,
    GP_SLOPE_PRIOR_SCALE,
    NOISE_SLOPE_PRIOR_SD,
    OFFSET_PRIOR_SD,
    PIVOT_TERM_PRIOR,
    SCALE_PRIOR_SD,
    SIGMA_PRIOR_SCALE,
    TAU_PRIOR,
)
from .laws import Law
from .lsq import FitData
from .pivot import (
    SLOPE_PAIRS,
    chinchilla_from_level,
    chinchilla_terms,
    per_source_names,
    pivot_shape,
    shape_factor,
    uses_level,
)

__all__ = ["draws_from_sites", "prior_sds"]


def draws_from_sites(
    by_chain: Mapping[str, np.ndarray], law: Law, data: FitData, kwargs: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """Flat draws keyed as :class:`LawPosterior` expects (law coefficients of the reference,
    ``name[src]`` per-source terms), prefactors converted back from the pivot scale."""
    sources = data.sources
    flat = {k: np.asarray(v).reshape((-1,) + np.asarray(v).shape[2:]) for k, v in by_chain.items()}
    values: dict[str, np.ndarray] = {}  # name -> (S,) or (S, n_sources)
    n_draws = len(next(iter(flat.values())))
    for p in law.params:
        if p.name in flat:
            values[p.name] = flat[p.name]
        elif p.name in (kwargs.get("fixed") or {}):
            values[p.name] = np.full(n_draws, float(kwargs["fixed"][p.name]))
    for name, (partner, feature) in SLOPE_PAIRS.items():
        if f"{name}_pivot" in flat:
            at = float(pivot_shape(law, kwargs["pivot_features"], feature))
            values[name] = flat[f"{name}_pivot"] + flat[partner] / at
    if uses_level(law):
        size_key = law.options.get("size_key", "N")
        n_p = flat["level"].shape[1]
        shape_theta = {k: v[:, None] for k, v in values.items()}
        factor = shape_factor(
            law,
            shape_theta,
            {k: np.asarray(v)[:n_p] for k, v in kwargs["pivot_features"].items()},
            np,
        )
        exps = {}
        for name in ("alpha", "beta"):
            exps[name] = flat[name][:, None]
            if n_p > 1:
                exps[name] = np.concatenate(
                    [exps[name], exps[name] * np.exp(EXPONENT_POOL_SD * flat[f"{name}_z"])], 1
                )
        chin = chinchilla_from_level(
            flat["level"] / factor,
            flat["slope_N"] / factor,
            flat["slope_D"] / factor,
            exps["alpha"],
            exps["beta"],
            np.asarray(kwargs["log_pivot"][size_key])[:n_p],
            np.asarray(kwargs["log_pivot"]["D"])[:n_p],
            np,
        )
        for name, v in chin.items():
            values[name] = v if n_p > 1 else v[:, 0]
    else:
        for log_name, key, exp_name in chinchilla_terms(law):
            piv = float(np.asarray(kwargs["log_pivot"][key])[0])
            values[log_name] = flat[f"{log_name}_pivot"] + values[exp_name] * piv
    samples: dict[str, np.ndarray] = {}
    for name, v in values.items():
        if v.ndim == 2:
            samples[name] = v[:, 0]
            for j, src in enumerate(sources[1:], start=1):
                samples[f"{name}[{src}]"] = v[:, j]
        else:
            samples[name] = v
    for j, src in enumerate(sources):
        if j and "log_scale" in flat:
            samples[f"scale[{src}]"] = np.exp(flat["log_scale"][:, j - 1])
        if j and "offset" in flat:
            samples[f"offset[{src}]"] = flat["offset"][:, j - 1]
        samples[f"sigma[{src}]"] = flat["sigma"][:, j]
        for name in ("tau", "gp_eta"):
            if name in flat:
                v = flat[name].reshape(len(flat[name]), -1)  # (S, n_sources) or (S, 1)
                samples[f"{name}[{src}]"] = v[:, j if v.shape[1] > 1 else 0]
    for name in ("gp_ell", "gp_slope", "noise_slope"):
        if name in flat:
            samples[name] = flat[name]
    return samples


def prior_sds(
    law: Law,
    sources: list[str],
    source_terms: str,
    log_pivot: Mapping[str, Any],
    discrepancy: bool | str,
) -> dict[str, float]:
    """Prior sd of every stored term; for ``log_A`` / ``log_B`` the sd implied by the pivot
    prior and the exponent prior, ``sqrt(sd_u^2 + sd_alpha^2 ln(N0)^2)``."""
    out = {p.name: p.prior.sd for p in law.params}
    for log_name, key, exp_name in chinchilla_terms(law):
        pivot = float(np.asarray(log_pivot[key])[0])
        out[log_name] = math.sqrt(
            PIVOT_TERM_PRIOR.scale**2 + (law.param(exp_name).prior.sd * pivot) ** 2
        )
    per_source = per_source_names(law, len(sources), source_terms)
    lognormal_sd = math.sqrt((math.exp(SCALE_PRIOR_SD**2) - 1) * math.exp(SCALE_PRIOR_SD**2))
    half_normal = math.sqrt(1 - 2 / math.pi)
    for j, src in enumerate(sources):
        if j:
            for name in per_source:
                out[f"{name}[{src}]"] = out[name]
        if j and source_terms in ("scale", "affine"):
            out[f"scale[{src}]"] = lognormal_sd
        if j and source_terms in ("offset", "affine"):
            out[f"offset[{src}]"] = OFFSET_PRIOR_SD
        out[f"sigma[{src}]"] = SIGMA_PRIOR_SCALE * half_normal
        if discrepancy in ("gp", "gp_shared"):
            out[f"gp_eta[{src}]"] = GP_AMP_PRIOR.sd
        elif discrepancy:
            out[f"tau[{src}]"] = TAU_PRIOR.sd
    if discrepancy in ("gp", "gp_shared", "orth", "orth_shared"):
        out["noise_slope"] = NOISE_SLOPE_PRIOR_SD
    if discrepancy in ("gp", "gp_shared"):
        out["gp_ell"] = GP_LENGTHSCALE_PRIOR.sd
        out["gp_slope"] = GP_SLOPE_PRIOR_SCALE * half_normal
    return out
