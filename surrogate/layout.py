"""The free-parameter vector of the point fits (:mod:`surrogate.lsq`): what is fitted, in which
order and within which bounds, and the law's value at a vector. The NUTS fit's dispersed
starting points (:mod:`surrogate.nuts_init`) are drawn in the same vector space.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from .laws import Law
from .observation import CHINCHILLA_PART, apply_source_terms

if TYPE_CHECKING:
    from .lsq import FitData

__all__ = ["ParamLayout"]


class ParamLayout:
    """The free-parameter vector of a point fit: free law coefficients (the reference
    source's), then per non-reference source its free Chinchilla coefficients
    (``source_terms="chinchilla"``) or its log_scale / offset."""

    def __init__(
        self,
        law: Law,
        fixed: Mapping[str, float],
        n_sources: int,
        source_terms: str,
        log_pivot: Mapping[str, float] | None = None,
    ) -> None:
        self.law = law
        self.fixed = dict(fixed)
        self.free = [p for p in law.params if p.name not in self.fixed]
        self.n_sources = n_sources
        self.has_scale = n_sources > 1 and source_terms in ("scale", "affine")
        self.has_offset = n_sources > 1 and source_terms in ("offset", "affine")
        self.per_source = (
            [p for p in self.free if p.name in CHINCHILLA_PART]
            if n_sources > 1 and source_terms == "chinchilla"
            else []
        )
        # log of the geometric-mean N and D of the data (random starts are drawn around them)
        self.log_pivot = dict(log_pivot or {})
        k = n_sources - 1
        self.size = len(self.free) + k * (len(self.per_source) + self.has_scale + self.has_offset)

    def names(self, sources: Sequence[str]) -> list[str]:
        """Names of the vector's entries (``name``, ``name[src]``, ``log_scale[src]``,
        ``offset[src]``); ``sources``: reference first."""
        out = [p.name for p in self.free]
        for s in sources[1:]:
            out += [f"{p.name}[{s}]" for p in self.per_source]
        if self.has_scale:
            out += [f"log_scale[{s}]" for s in sources[1:]]
        if self.has_offset:
            out += [f"offset[{s}]" for s in sources[1:]]
        return out

    def unpack(self, x: np.ndarray) -> tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]:
        """``x (..., size)`` -> theta dict, scale ``(..., n_sources)``, offset ``(..., n_sources)``.

        Per-source coefficients come back as ``(..., n_sources)`` arrays (index them with
        :meth:`rows`)."""
        theta: dict[str, Any] = {p.name: x[..., i] for i, p in enumerate(self.free)}
        theta.update(self.fixed)
        i = len(self.free)
        k = self.n_sources - 1
        lead = x.shape[:-1]
        m = len(self.per_source)
        if m:
            other = x[..., i : i + k * m].reshape(lead + (k, m))
            for j, p in enumerate(self.per_source):
                theta[p.name] = np.concatenate(
                    [x[..., [self.free.index(p)]], other[..., j]], axis=-1
                )
            i += k * m
        scale = offset = None
        if self.has_scale:
            scale = np.concatenate([np.ones(lead + (1,)), np.exp(x[..., i : i + k])], axis=-1)
            i += k
        if self.has_offset:
            offset = np.concatenate([np.zeros(lead + (1,)), x[..., i : i + k]], axis=-1)
        return theta, scale, offset

    def rows(self, theta: Mapping[str, Any], src_idx: np.ndarray) -> dict[str, Any]:
        """Theta with per-source coefficients ``(..., n_sources)`` picked per row
        ``(..., n)``; other entries unchanged."""
        out = dict(theta)
        for p in self.per_source:
            out[p.name] = np.asarray(theta[p.name])[..., src_idx]
        return out

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds ``(size,)`` of the vector (the coefficients' own bounds;
        log_scale within +-3, offset within +-5)."""
        k = self.n_sources - 1
        lo = (
            [p.bounds[0] for p in self.free]
            + [p.bounds[0] for p in self.per_source] * k
            + [-3.0] * k * self.has_scale
            + [-5.0] * k * self.has_offset
        )
        hi = (
            [p.bounds[1] for p in self.free]
            + [p.bounds[1] for p in self.per_source] * k
            + [3.0] * k * self.has_scale
            + [5.0] * k * self.has_offset
        )
        return np.array(lo), np.array(hi)

    def _start_values(self, rng: np.random.Generator, loss_min: float) -> dict[str, float]:
        """One random start of the law coefficients. Prefactors are drawn as the value of their
        term at the data's pivot (0.02-1.5 nats) and converted with the drawn exponent, so a
        start is always on the scale of the data (uniform log_A and alpha are not: most such
        pairs put the term orders of magnitude off); E starts below the smallest loss."""
        v = {p.name: rng.uniform(*p.start) for p in self.law.params}
        v["E"] = rng.uniform(0.3, 0.95) * loss_min
        for log_name, key, exp_name in (("log_A", "N", "alpha"), ("log_B", "D", "beta")):
            exp_name = exp_name if exp_name in v else "alpha"
            if log_name in v and key in self.log_pivot:
                term = math.exp(rng.uniform(math.log(0.02), math.log(1.5)))
                v[log_name] = math.log(term) + v[exp_name] * self.log_pivot[key]
        return v

    def random_start(
        self, rng: np.random.Generator, loss_min: Sequence[float] = (3.0,)
    ) -> np.ndarray:
        """A start vector; ``loss_min``: smallest loss per source (reference first)."""
        k = self.n_sources - 1
        ref = self._start_values(rng, loss_min[0])
        out = [ref[p.name] for p in self.free]
        for j in range(k):
            other = self._start_values(rng, loss_min[min(j + 1, len(loss_min) - 1)])
            out += [other[p.name] for p in self.per_source]
        return np.array(out + [0.0] * k * (self.has_scale + self.has_offset))

    def law_values(self, x: np.ndarray, data: FitData) -> np.ndarray:
        """The law with per-source terms at vector ``x`` ``(size,)`` for the rows of ``data``:
        ``(n,)`` modelled losses. A batch ``x (k, size)`` gives ``(k, n)``, row ``i`` equal to
        ``law_values(x[i], data)`` (the least-squares Jacobian evaluates its ``size + 1``
        points in one call this way)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            theta, scale, offset = self.unpack(x)
            mu = self.law(data.features, self.rows(theta, data.src_idx), np)
            return apply_source_terms(
                mu,
                None if scale is None else scale[data.src_idx],
                None if offset is None else offset[data.src_idx],
            )
        theta, scale, offset = self.unpack(x[:, None, :])  # scalars (k, 1), per source (k, 1, S)
        rows = self.rows(theta, data.src_idx)
        for p in self.per_source:  # (k, 1, n) -> (k, n)
            rows[p.name] = rows[p.name][:, 0, :]
        mu = self.law(data.features, rows, np)
        out = apply_source_terms(
            mu,
            None if scale is None else scale[:, 0, data.src_idx],
            None if offset is None else offset[:, 0, data.src_idx],
        )
        return np.broadcast_to(out, (x.shape[0], data.src_idx.size))
