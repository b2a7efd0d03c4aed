"""The observation model shared by every fitter, and its per-source terms (one concept, one home).

::

    loss[i] ~ Normal(scale[s_i] * law(x_i; theta[s_i]) + offset[s_i] + delta[g_i], sigma[s_i])
    delta[g] ~ Normal(0, tau[s_g])        (one per (source, size group); NUTS fits only)

with ``s_i`` the row's source key (:func:`surrogate.runs.source_keys`) and ``g_i`` its
(source, model-size group) (:func:`surrogate.groups.size_groups`). The reference source has
``scale = 1`` and ``offset = 0``; other sources get terms according to ``source_terms``
(:data:`SOURCE_TERMS`):

* ``"none"``, ``"offset"``, ``"scale"``, ``"affine"`` (= scale and offset): one shared law,
  calibrated per source;
* ``"chinchilla"``: each source has its own Chinchilla part (:data:`CHINCHILLA_PART`: ``E``,
  ``log_A``, ``alpha``, ``log_B``, ``beta``, partially pooled exponents) while the shape terms
  (aspect / d-over-sqrt-N / r calibration) are shared, so the shape effect is learned from every
  table and each table keeps its own curve. ``theta[s]`` is then the reference coefficients with
  source ``s``'s Chinchilla part substituted.

``delta`` is the *discrepancy*: a law fitted on some sizes errs systematically (not i.i.d.) at a
size it has not seen (:mod:`surrogate.discrepancy`). ``sigma`` and ``tau`` are in loss units
(nats/token) and per source, because loss kinds differ.

Sample keys of a posterior (:class:`surrogate.posterior.LawPosterior`): the law's coefficient
names (the reference source's values); ``name[src]`` for a per-source term of a non-reference
source (``scale``, ``offset``, and with ``"chinchilla"`` terms the Chinchilla coefficients);
``sigma[src]`` and (NUTS) ``tau[src]`` for every source (:func:`split_source_key`).
"""

from __future__ import annotations

from typing import Any

from models.errors import ArchoptError

__all__ = [
    "SOURCE_TERMS",
    "CHINCHILLA_PART",
    "PosteriorError",
    "apply_source_terms",
    "split_source_key",
]

#: The per-source term options (see the module docstring).
SOURCE_TERMS: tuple[str, ...] = ("none", "offset", "scale", "affine", "chinchilla")
#: Coefficients that are per source with ``source_terms="chinchilla"`` (when the law has them).
CHINCHILLA_PART: tuple[str, ...] = ("E", "log_A", "alpha", "log_B", "beta")


class PosteriorError(ArchoptError):
    """Unreadable posterior file, or a prediction request that does not fit the posterior."""


def apply_source_terms(mu: Any, scale: Any = None, offset: Any = None) -> Any:
    """``scale * mu + offset`` (either may be None): the per-source calibration of a law value.

    Works for numpy, jax and torch arrays alike; shapes broadcast (``(S, 1)`` terms with
    ``(S, n)`` law values).
    """
    if scale is not None:
        mu = mu * scale
    if offset is not None:
        mu = mu + offset
    return mu


def split_source_key(key: str) -> tuple[str, str] | None:
    """``"kind[src]"`` -> ``(kind, src)``; None for a key without a source."""
    if key.endswith("]") and "[" in key:
        kind, src = key[:-1].split("[", 1)
        return kind, src
    return None
