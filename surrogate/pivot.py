"""The sampler's parametrisation of a law around the pivot (:mod:`surrogate.bayes`).

Fitted on a decade of N, ``E``, ``log_A`` and ``alpha`` are nearly degenerate, so NUTS samples
quantities the data pin down separately, at the pivot ``N0, D0`` (geometric means of the fitted
sizes and tokens) and the geometric-mean shape: laws with the full Chinchilla part
(:func:`uses_level`) in the level/slope parametrisation (:func:`chinchilla_from_level`), others
(one shared exponent) with each prefactor as the log of its term at the pivot
(:func:`chinchilla_terms`); the shape calibration of ``conditional`` as its slope at the pivot
shape (:data:`SLOPE_PAIRS`, :func:`pivot_shape`). This module maps between those sampled
quantities and the law's own coefficients (``E``, ``log_A``, ``alpha``, ...); it is pure math
usable with numpy or jax.numpy (``xp``).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .laws import Law
from .observation import CHINCHILLA_PART

__all__ = [
    "SLOPE_PAIRS",
    "CHINCHILLA_TERMS",
    "chinchilla_terms",
    "per_source_names",
    "uses_level",
    "chinchilla_from_level",
    "shape_factor",
    "pivot_shape",
]

#: Shape-calibration coefficients sampled as their slope at the pivot shape:
#: name -> (partner coefficient, pivot feature); ``name = slope + partner / feature``.
SLOPE_PAIRS = {"a1": ("a2", "x"), "b1": ("b2", "r")}
#: (prefactor, feature, exponent) of the Chinchilla terms; the D exponent falls back to alpha
#: in laws with one exponent (aspect_paper).
CHINCHILLA_TERMS = (("log_A", "N", "alpha"), ("log_B", "D", "beta"))


def chinchilla_terms(law: Law) -> list[tuple[str, str, str]]:
    """The law's Chinchilla prefactors as (log-prefactor, feature key, exponent name)."""
    names = set(law.param_names)
    size_key = law.options.get("size_key", "N")
    out = []
    for log_name, key, exp_name in CHINCHILLA_TERMS:
        if log_name in names:
            out.append(
                (
                    log_name,
                    size_key if key == "N" else "D",
                    exp_name if exp_name in names else "alpha",
                )
            )
    return out


def per_source_names(law: Law, n_sources: int, source_terms: str) -> list[str]:
    """The law coefficients that are per source: the Chinchilla part with
    ``source_terms="chinchilla"`` and two or more sources, else none."""
    if n_sources < 2 or source_terms != "chinchilla":
        return []
    return [p for p in law.param_names if p in CHINCHILLA_PART]


def uses_level(law: Law) -> bool:
    """Laws with the full Chinchilla part (E, log_A, alpha, log_B, beta) are sampled in the
    level/slope/fraction parametrisation; others (one shared exponent) in the pivot one."""
    return set(CHINCHILLA_PART) <= set(law.param_names)


def chinchilla_from_level(
    level: Any,
    slope_n: Any,
    slope_d: Any,
    alpha: Any,
    beta: Any,
    log_n0: Any,
    log_d0: Any,
    xp: Any = np,
) -> dict[str, Any]:
    """The Chinchilla coefficients of the level/slope parametrisation.

    ``level = E + T_N(N0) + T_D(D0)`` is the Chinchilla part at the pivot, ``slope_n =
    alpha T_N(N0)`` and ``slope_d = beta T_D(D0)`` the loss drop per e-fold of N and D there;
    so ``T_N(N0) = slope_n / alpha`` and ``E = level - T_N(N0) - T_D(D0)``. Shapes broadcast.
    """
    t_n = slope_n / alpha
    t_d = slope_d / beta
    return {
        "E": level - t_n - t_d,
        "alpha": alpha,
        "beta": beta,
        "log_A": xp.log(t_n) + alpha * log_n0,
        "log_B": xp.log(t_d) + beta * log_d0,
    }


def shape_factor(law: Law, theta: Mapping[str, Any], pivot: Mapping[str, Any], xp: Any = np) -> Any:
    """The law's shape calibration at the pivot shape: ``law / chinchilla`` there (1 for
    ``chinchilla``). Evaluated with a unit Chinchilla part (``E = 1``, no N/D terms), which is
    exact for the multiplicative laws registered here."""
    unit = dict(theta, E=1.0, log_A=-700.0, log_B=-700.0, alpha=1.0, beta=1.0)
    if "beta" not in law.param_names:
        unit.pop("beta")
    return law(pivot, unit, xp)


def pivot_shape(law: Law, pivot_features: Mapping[str, Any], feature: str) -> Any:
    """``d_model / sqrt(N)`` (``"x"``) or ``r`` at the (reference source's) pivot."""
    if feature == "x":
        size_key = law.options.get("size_key", "N")
        return pivot_features["d_model"][0] / pivot_features[size_key][0] ** 0.5
    return pivot_features[feature][0]
