"""Budget-preserving parametrization: shapes at a fixed non-embedding parameter budget.

Two entry points:

* :func:`enumerate_archs` lists every valid :class:`~models.arch.Arch` whose non-embedding
  parameter count lies in ``[N (1 - band), N (1 + band)]`` on a hardware-friendly grid
  (:class:`SearchSpace`). This is the optimizer's candidate set: the budget holds exactly for
  every candidate, nothing is rounded afterwards.
* :func:`build_arch` turns a target budget and knobs (``d/sqrt(N)`` or aspect ratio, ``r``,
  GQA group, head_dim, optionally n_layers) into the nearest valid integer Arch in the band.

The grid: ``d_model`` on multiples of ``d_model_multiple``; attention width ``n_heads * head_dim
= d_model`` (so ``n_heads = d_model / head_dim``); ``n_kv_heads = n_heads / g`` for each GQA
group ``g`` that divides ``n_heads``; every ``n_layers`` in range; ``ffn_dim`` on multiples of
``ffn_multiple``. For one ``(d_model, head_dim, g, n_layers)`` the band fixes an interval of
``ffn_dim``; ``ffn_per_shape="nearest"`` keeps the multiple closest to the budget centre (one
candidate per shape, the default), ``"all"`` keeps every multiple in the band.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Iterator, Literal, Sequence

import numpy as np

from .arch import DEFAULT_VOCAB_SIZE, Arch, ArchError

__all__ = ["SearchSpace", "enumerate_archs", "build_arch", "budget_bounds"]


@dataclass(frozen=True)
class SearchSpace:
    """The grid and the shape ranges candidates are drawn from.

    Ranges are inclusive. Defaults cover deep-narrow to wide-shallow LLaMA-style shapes:
    ``r`` in [0.5, 5] is the range the published conditional law was fitted on.
    """

    d_model_multiple: int = 128
    ffn_multiple: int = 256
    head_dims: tuple[int, ...] = (64, 128)
    gqa_groups: tuple[int, ...] = (1, 2, 4, 8)
    n_layers_range: tuple[int, int] = (2, 128)
    d_model_range: tuple[int, int] = (256, 16384)
    r_range: tuple[float, float] = (0.5, 5.0)
    d_over_sqrt_n_range: tuple[float, float] = (0.025, 0.16)
    aspect_range: tuple[float, float] = (16.0, 512.0)
    ffn_per_shape: Literal["nearest", "all"] = "nearest"

    def __post_init__(self) -> None:
        for name in ("d_model_multiple", "ffn_multiple"):
            if getattr(self, name) <= 0:
                raise ArchError(f"{name} must be positive")
        if not self.head_dims or any(h <= 0 or h % 2 for h in self.head_dims):
            raise ArchError(
                "head_dims must be non-empty, positive and even (RoPE rotates pairs "
                f"of dimensions), got {self.head_dims}"
            )
        if not self.gqa_groups or any(g <= 0 for g in self.gqa_groups):
            raise ArchError("gqa_groups must be non-empty and positive")
        for name in (
            "n_layers_range",
            "d_model_range",
            "r_range",
            "d_over_sqrt_n_range",
            "aspect_range",
        ):
            lo, hi = getattr(self, name)
            if not (0 < lo <= hi):
                raise ArchError(f"{name} must satisfy 0 < low <= high, got {(lo, hi)}")
        if self.ffn_per_shape not in ("nearest", "all"):
            raise ArchError("ffn_per_shape must be 'nearest' or 'all'")

    @classmethod
    def unconstrained(cls, **overrides: Any) -> "SearchSpace":
        """Same grid, no shape-range filters (used by :func:`build_arch`)."""
        wide: dict[str, Any] = dict(
            r_range=(1e-9, 1e9),
            d_over_sqrt_n_range=(1e-9, 1e9),
            aspect_range=(1e-9, 1e9),
            n_layers_range=(1, 100_000),
            d_model_range=(1, 10_000_000),
        )
        wide.update(overrides)
        return cls(**wide)


def budget_bounds(target: float, band: float) -> tuple[int, int]:
    """Inclusive integer bounds ``[ceil(N (1-band)), floor(N (1+band))]``."""
    if not math.isfinite(target) or target <= 0:
        raise ArchError(f"parameter budget must be a positive number, got {target}")
    if not (0 <= band < 1):
        raise ArchError(f"band must be in [0, 1), got {band}")
    return math.ceil(target * (1 - band)), math.floor(target * (1 + band))


def _iter_archs(
    target: float, band: float, space: SearchSpace, vocab_size: int, tie_embeddings: bool
) -> Iterator[Arch]:
    lo_n, hi_n = budget_bounds(target, band)
    dm = space.d_model_multiple
    d_lo = max(space.d_model_range[0], dm)
    d_lo = math.ceil(d_lo / dm) * dm
    # A block with d_model >= sqrt(N) cannot fit the budget with r >= any positive value.
    d_hi = min(
        space.d_model_range[1], int(math.sqrt(hi_n) * max(1.0, space.d_over_sqrt_n_range[1]))
    )
    fm = space.ffn_multiple
    centre = 0.5 * (lo_n + hi_n)
    for d in range(d_lo, d_hi + 1, dm):
        dsn = d / math.sqrt(centre)
        # d/sqrt(N) varies by < 3% across a 5% band; filter with the exact N below.
        if dsn < space.d_over_sqrt_n_range[0] * 0.9 or dsn > space.d_over_sqrt_n_range[1] * 1.1:
            continue
        for hd in space.head_dims:
            if d % hd:
                continue
            h = d // hd
            for g in space.gqa_groups:
                if h % g:
                    continue
                kv = h // g
                attn = 2 * d * hd * (h + kv)
                fixed_per_layer = attn + 2 * d
                l_lo, l_hi = space.n_layers_range
                for n_layers in range(l_lo, l_hi + 1):
                    aspect = d / n_layers
                    if aspect > space.aspect_range[1]:
                        continue
                    if aspect < space.aspect_range[0]:
                        break
                    # N = L (attn + 3 d ffn + 2d) + d  ->  ffn interval for the band.
                    rest_lo = lo_n - d - n_layers * fixed_per_layer
                    rest_hi = hi_n - d - n_layers * fixed_per_layer
                    if rest_hi <= 0:
                        break
                    per_ffn = 3 * d * n_layers
                    f_lo = max(fm, math.ceil(max(rest_lo, 1) / per_ffn / fm) * fm)
                    f_hi = (rest_hi // per_ffn) // fm * fm
                    if f_hi < f_lo:
                        continue
                    ffns: Sequence[int]
                    if space.ffn_per_shape == "nearest":
                        f_mid = (centre - d - n_layers * fixed_per_layer) / per_ffn
                        f = min(max(round(f_mid / fm) * fm, f_lo), f_hi)
                        ffns = (f,)
                    else:
                        ffns = range(f_lo, f_hi + 1, fm)
                    for ffn in ffns:
                        r = 3 * d * ffn / attn
                        if not (space.r_range[0] <= r <= space.r_range[1]):
                            continue
                        n = n_layers * (attn + 3 * d * ffn + 2 * d) + d
                        if not (lo_n <= n <= hi_n):
                            continue
                        if not (
                            space.d_over_sqrt_n_range[0]
                            <= d / math.sqrt(n)
                            <= space.d_over_sqrt_n_range[1]
                        ):
                            continue
                        yield Arch(d, n_layers, h, kv, hd, ffn, vocab_size, tie_embeddings)


def enumerate_archs(
    target_non_embedding_params: float,
    band: float = 0.05,
    *,
    space: SearchSpace | None = None,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    tie_embeddings: bool = True,
) -> list[Arch]:
    """Every valid Arch on ``space``'s grid whose non-embedding params lie in the band.

    Args:
        target_non_embedding_params: the budget N.
        band: relative tolerance; candidates satisfy ``N(1-band) <= n <= N(1+band)`` exactly.
        space: grid and shape ranges (defaults: :class:`SearchSpace`).
        vocab_size, tie_embeddings: fixed for the whole set.

    Returns:
        Archs sorted by ``(d_model, head_dim, n_kv_heads, n_layers, ffn_dim)``.
    """
    space = space or SearchSpace()
    archs = list(_iter_archs(target_non_embedding_params, band, space, vocab_size, tie_embeddings))
    archs.sort(key=lambda a: (a.d_model, a.head_dim, a.n_kv_heads, a.n_layers, a.ffn_dim))
    return archs


@functools.lru_cache(maxsize=64)
def _band_table(
    target: float, band: float, search: SearchSpace, vocab_size: int, tie_embeddings: bool
) -> tuple[tuple[Arch, ...], np.ndarray]:
    """Every shape of ``search`` in the band and ``n x 4`` knobs (r, d/sqrt(N), aspect ratio,
    non-embedding params), cached: sweeps ask for many nearest shapes in one band."""
    archs = tuple(_iter_archs(target, band, search, vocab_size, tie_embeddings))
    knobs = np.array(
        [
            [a.mlp_attn_ratio, a.d_over_sqrt_n, a.aspect_ratio, a.non_embedding_params]
            for a in archs
        ],
        dtype=np.float64,
    ).reshape(-1, 4)
    return archs, knobs


def build_arch(
    target_non_embedding_params: float,
    *,
    d_over_sqrt_n: float | None = None,
    aspect_ratio: float | None = None,
    r: float = 3.0,
    gqa_group: int = 4,
    head_dim: int = 64,
    n_layers: int | None = None,
    band: float = 0.05,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    tie_embeddings: bool = True,
    space: SearchSpace | None = None,
) -> Arch:
    """The valid Arch in the budget band nearest to the requested knobs.

    Exactly one of ``d_over_sqrt_n``, ``aspect_ratio`` or ``n_layers`` fixes the width/depth
    trade-off (``n_layers`` may also be combined with either to pin depth). Distance is
    measured in log space over the knobs given plus ``r``; ``head_dim`` and ``gqa_group`` are
    held exactly.

    Raises:
        ArchError: when the knobs are impossible or no grid shape lies in the band.
    """
    if d_over_sqrt_n is None and aspect_ratio is None and n_layers is None:
        raise ArchError("give d_over_sqrt_n, aspect_ratio or n_layers")
    for name, value in (("d_over_sqrt_n", d_over_sqrt_n), ("aspect_ratio", aspect_ratio), ("r", r)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ArchError(f"{name} must be a positive number, got {value}")
    grid = space or SearchSpace()
    search = SearchSpace.unconstrained(
        d_model_multiple=grid.d_model_multiple,
        ffn_multiple=grid.ffn_multiple,
        head_dims=(head_dim,),
        gqa_groups=(gqa_group,),
        ffn_per_shape="all",
        n_layers_range=(n_layers, n_layers) if n_layers else (1, 100_000),
    )
    archs, knobs = _band_table(
        float(target_non_embedding_params),
        float(band),
        search,
        int(vocab_size),
        bool(tie_embeddings),
    )
    best = None
    if archs:
        # Log-space distance over the knobs given plus r, tie-broken toward the budget centre.
        dist = np.log(knobs[:, 0] / r) ** 2
        if d_over_sqrt_n is not None:
            dist = dist + np.log(knobs[:, 1] / d_over_sqrt_n) ** 2
        if aspect_ratio is not None:
            dist = dist + np.log(knobs[:, 2] / aspect_ratio) ** 2
        dist = dist + 1e-6 * np.abs(knobs[:, 3] / target_non_embedding_params - 1)
        best = archs[int(np.argmin(dist))]
    if best is None:
        raise ArchError(
            f"no shape with head_dim={head_dim}, gqa_group={gqa_group}"
            f"{f', n_layers={n_layers}' if n_layers else ''} fits "
            f"{target_non_embedding_params:.4g} non-embedding params +-{band:.1%}"
        )
    return best
