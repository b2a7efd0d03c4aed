"""Slices through a law posterior: predicted loss along one knob with the others held, the runs
near a slice, and band coverage. What the app's scaling-law page draws, as a Python API.

Every point of a sweep is a real architecture (:func:`models.parametrize.build_arch`, the
nearest valid integer shape at the budget), so ``x`` is that architecture's actual knob value.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import pandas as pd

from models.arch import DEFAULT_VOCAB_SIZE, Arch, ArchError
from models.parametrize import SearchSpace, build_arch

from .predictive import quantile_column
from .runs import table_archs

__all__ = [
    "KNOBS",
    "BAND_QUANTILES",
    "law_sweep",
    "typical_slice",
    "runs_near_slice",
    "band_coverage",
]

#: Knobs a sweep can move (Arch attributes, plus ``tokens``).
KNOBS: tuple[str, ...] = (
    "d_over_sqrt_n",
    "mlp_attn_ratio",
    "aspect_ratio",
    "non_embedding_params",
    "tokens",
)
#: Quantiles of a sweep's bands (90% and 50% bands, median).
BAND_QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)


@functools.lru_cache(maxsize=512)
def _nearest_arch(
    n_params: float,
    d_over_sqrt_n: float | None,
    aspect_ratio: float | None,
    r: float,
    gqa_group: int,
    head_dim: int,
    vocab_size: int,
    tie_embeddings: bool,
) -> Arch:
    """:func:`models.parametrize.build_arch`, memoized (it searches the whole band)."""
    return build_arch(
        n_params,
        d_over_sqrt_n=d_over_sqrt_n,
        aspect_ratio=aspect_ratio,
        r=r,
        gqa_group=gqa_group,
        head_dim=head_dim,
        vocab_size=vocab_size,
        tie_embeddings=tie_embeddings,
    )


def law_sweep(
    posterior: Any,
    knob: str,
    *,
    n_params: float,
    tokens: float,
    d_over_sqrt_n: float,
    r: float,
    gqa_group: int = 4,
    head_dim: int = 128,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    tie_embeddings: bool = True,
    source: str | None = None,
    n_points: int = 12,
) -> pd.DataFrame:
    """Posterior-predictive loss along ``knob`` (one of :data:`KNOBS`), the others held.

    Args:
        posterior: a :class:`~surrogate.posterior.LawPosterior`.
        n_params, tokens, d_over_sqrt_n, r, gqa_group, head_dim: the slice.
        source: loss source whose per-source terms apply (``None``: the reference source).

    Returns:
        One row per distinct architecture / token count: ``x``, ``label``, ``mean`` and
        ``q05 q25 q50 q75 q95`` (empty when no grid shape exists along the sweep).
    """
    if knob not in KNOBS:
        raise ValueError(f"unknown knob {knob!r}; known: {', '.join(KNOBS)}")
    space = SearchSpace()
    common = (int(gqa_group), int(head_dim), int(vocab_size), bool(tie_embeddings))
    ranges = {
        "d_over_sqrt_n": space.d_over_sqrt_n_range,
        "mlp_attn_ratio": space.r_range,
        "aspect_ratio": space.aspect_range,
        "non_embedding_params": (n_params / 10, n_params * 5),
        "tokens": (tokens / 10, tokens * 10),
    }
    archs, toks = [], []
    dx: float | None  # d/sqrt(N) of the shape, or None when the aspect ratio fixes it
    aspect: float | None
    for value in np.geomspace(*ranges[knob], n_points):
        value = float(value)
        n, dx, aspect, rr = n_params, d_over_sqrt_n, None, r
        if knob == "d_over_sqrt_n":
            dx = value
        elif knob == "mlp_attn_ratio":
            rr = value
        elif knob == "aspect_ratio":
            dx, aspect = None, value
        elif knob == "non_embedding_params":
            n = value
        try:
            archs.append(_nearest_arch(float(n), dx, aspect, float(rr), *common))
        except ArchError:  # no grid shape there (e.g. too few layers for that aspect ratio)
            continue
        toks.append(value if knob == "tokens" else tokens)
    columns = ["x", "label", "mean"] + [f"q{round(q * 100):02d}" for q in BAND_QUANTILES]
    if not archs:
        return pd.DataFrame(columns=columns)
    pred = posterior.predict(
        archs, np.asarray(toks, dtype=float), source=source, quantiles=BAND_QUANTILES
    )
    x = [t if knob == "tokens" else getattr(a, knob) for a, t in zip(archs, toks)]
    table = pd.DataFrame(
        {"x": x, "label": [a.label() for a in archs], "mean": pred["pred_mean"].to_numpy()}
    )
    for q in BAND_QUANTILES:
        table[f"q{round(q * 100):02d}"] = pred[quantile_column(q)].to_numpy()
    return table.drop_duplicates(subset=["x"]).reset_index(drop=True)[columns]


def typical_slice(runs: pd.DataFrame) -> tuple[float, float]:
    """``(N, D)`` of the most populated (non-embedding params, tokens) cell of a run table,
    cells being factors of 1.25 in each; ``(1e9, 2e10)`` for an empty table."""
    if runs.empty:
        return 1e9, 2e10
    n_ne = np.array([a.non_embedding_params for a in table_archs(runs)], dtype=float)
    d = runs["tokens"].to_numpy(float)
    cells = pd.DataFrame(
        {
            "N": np.round(np.log(n_ne) / math.log(1.25)),
            "D": np.round(np.log(d) / math.log(1.25)),
            "n": n_ne,
            "d": d,
        }
    )
    top = cells.groupby(["N", "D"]).size().idxmax()
    sel = cells[(cells["N"] == top[0]) & (cells["D"] == top[1])]
    return float(sel["n"].median()), float(sel["d"].median())


def runs_near_slice(
    runs: pd.DataFrame, knob: str, n_params: float, tokens: float, factor: float
) -> pd.DataFrame:
    """Runs (with ``non_embedding_params``, ``tokens``, ``loss``, ``run`` and the knob's column)
    within ``factor`` of the slice in N and D, except along the swept knob.

    Returns:
        ``x`` (the run's knob value), ``loss``, ``label``.
    """
    if runs.empty:
        return pd.DataFrame(columns=["x", "loss", "label"])
    ok_n = np.abs(np.log(runs["non_embedding_params"] / n_params)) <= math.log(factor)
    ok_d = np.abs(np.log(runs["tokens"] / tokens)) <= math.log(factor)
    mask = ok_d if knob == "non_embedding_params" else ok_n if knob == "tokens" else ok_n & ok_d
    hits = runs[mask]
    return pd.DataFrame(
        {
            "x": hits["tokens"] if knob == "tokens" else hits[knob],
            "loss": hits["loss"],
            "label": hits["run"],
        }
    )


def band_coverage(table: pd.DataFrame) -> dict[str, float]:
    """Fractions of ``loss`` inside the 50% (``pred_q25..pred_q75``) and 90%
    (``pred_q05..pred_q95``) bands of a table from ``LawPosterior.predict``."""
    loss = table["loss"]
    return {
        "cov50": float(((loss >= table["pred_q25"]) & (loss <= table["pred_q75"])).mean()),
        "cov90": float(((loss >= table["pred_q05"]) & (loss <= table["pred_q95"])).mean()),
    }
