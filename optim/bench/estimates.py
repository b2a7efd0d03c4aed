"""What the worlds measure from the real run tables: run-to-run loss noise (repeats of one
shape) and the size of what a law misses about shape (residuals within size groups)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from surrogate.protocols import LawDraws

from .config import WorldError

__all__ = [
    "NoiseEstimate",
    "NOISE_WARMUPS",
    "SIZE_BIN",
    "estimate_run_noise",
    "size_groups",
    "estimate_shape_residual",
]

#: openlm_grid warmups compared to estimate run-to-run noise: the two closest settings.
NOISE_WARMUPS: tuple[int, int] = (200, 400)
#: Relative width of a size group: runs within ``exp(+-SIZE_BIN/2)`` of each other's N.
SIZE_BIN: float = 0.1


@dataclass(frozen=True)
class NoiseEstimate:
    """Run-to-run noise of the final loss, relative (standard deviation of ``ln loss``).

    Attributes:
        rel_sigma: the estimate.
        n_pairs: shapes that contributed a pair of runs.
        method: how it was computed, one sentence for the report.
    """

    rel_sigma: float
    n_pairs: int
    method: str


def estimate_run_noise(
    grid: pd.DataFrame | None = None, warmups: tuple[int, int] = NOISE_WARMUPS
) -> NoiseEstimate:
    """Run-to-run noise from openlm_grid.csv: the same shape trained twice.

    For every ``(d_model, n_layers, n_heads)`` trained at batch 64 and lr 3e-3 with both
    warmups, take ``ln loss(w1) - ln loss(w2)``. Warmup shifts all shapes alike, so the spread of
    that difference around its median is twice the per-run noise variance; the spread is
    measured robustly (1.4826 MAD, a few runs diverge at short warmups) and divided by sqrt(2).

    Args:
        grid: the openlm_grid table (default: the bundled copy).
        warmups: the two warmup settings compared.
    """
    if grid is None:
        from surrogate.runs import bundled_path, load_runs

        grid = load_runs(bundled_path("openlm_grid.csv"))
    need = {"d_model", "n_layers", "n_heads", "loss", "warmup", "batch", "lr"}
    if not need <= set(grid.columns):
        raise WorldError(f"noise estimate needs columns {sorted(need)}")
    sub = grid[(grid["batch"] == 64) & np.isclose(grid["lr"], 3e-3)]
    sub = sub.assign(y=np.log(sub["loss"].to_numpy(float)))
    wide = sub.pivot_table(
        index=["d_model", "n_layers", "n_heads"], columns="warmup", values="y", aggfunc="mean"
    )
    w1, w2 = warmups
    if w1 not in wide.columns or w2 not in wide.columns:
        raise WorldError(f"no runs with warmups {warmups} in the grid table")
    diff = (wide[w1] - wide[w2]).dropna().to_numpy()
    if diff.size < 5:
        raise WorldError(f"only {diff.size} shapes have both warmups {warmups}")
    mad = float(np.median(np.abs(diff - np.median(diff))))
    sigma = 1.4826 * mad / math.sqrt(2.0)
    return NoiseEstimate(
        rel_sigma=sigma,
        n_pairs=int(diff.size),
        method=(
            f"openlm_grid.csv, {diff.size} shapes trained at batch 64, lr 3e-3 with warmup "
            f"{w1} and {w2}: 1.4826 MAD of the paired ln-loss difference / sqrt(2)"
        ),
    )


def size_groups(runs: pd.DataFrame, *, by_tokens: bool = True) -> np.ndarray:
    """A label per row: rows of one source and token budget whose sizes agree within ~10%.

    Size is the *total* parameter count, as the papers name their size groups ("80M"): at fixed
    total size the variants trade embedding for block parameters. Within ``(source, tokens)``
    sizes are walked in ascending order; a new group starts when the size grows by more than
    ``SIZE_BIN`` in log space over the group's first size (:func:`surrogate.groups.size_groups`,
    the one grouping walk, with these settings). With ``by_tokens=False`` one group holds a size
    at every token budget (what leave-one-size-out holds out).

    Returns:
        Integer labels, shape ``(len(runs),)``; equal labels = same size group, numbered in order
        of (source, tokens, size).
    """
    from surrogate.groups import size_groups as walk_size_groups
    from surrogate.laws import law_features
    from surrogate.runs import source_keys, table_archs

    feats = law_features(table_archs(runs), runs["tokens"].to_numpy(float))
    tok = np.round(np.log(feats["D"]), 3) if by_tokens else np.zeros(len(runs))
    cell = pd.DataFrame({"src": source_keys(runs), "tok": tok}).groupby(["src", "tok"]).ngroup()
    keys = np.array([f"{int(c):09d}" for c in cell])  # sorts as (source, tokens)
    return walk_size_groups(
        feats["N_total"], keys, rel=math.inf, max_span=math.exp(SIZE_BIN)
    ).astype(np.int64)


def estimate_shape_residual(
    truth: LawDraws, runs: pd.DataFrame, noise_rel_sigma: float, n_draws: int | None = 64
) -> float:
    """Relative size of what the law misses about *shape*, from real runs.

    The law's posterior-mean prediction for every run is compared with its real loss
    (``ln loss - ln pred``); the residuals are centred within each size group
    (:func:`size_groups`), so errors the law makes about scale or token budget drop out and
    only shape-to-shape errors remain. Groups with one run carry no information and are
    skipped. Returns ``sqrt(max(var - noise^2, 0))`` of those centred residuals.
    """
    from surrogate.laws import law_features
    from surrogate.runs import source_keys, table_archs

    labels = size_groups(runs)
    src = source_keys(runs)
    feats = law_features(table_archs(runs), runs["tokens"].to_numpy(float))
    resid = np.empty(len(runs))
    for s in np.unique(src):
        rows = src == s
        sub = {k: v[rows] for k, v in feats.items()}
        pred = np.asarray(truth.law_draws(sub, source=s, n_draws=n_draws)).mean(axis=0)
        resid[rows] = np.log(runs["loss"].to_numpy(float)[rows]) - np.log(pred)
    frame = pd.DataFrame({"g": labels, "e": resid})
    sizes = frame.groupby("g")["e"].transform("size")
    frame = frame[sizes >= 2]
    if frame.empty:
        raise WorldError("no size group with two or more shapes to measure shape residuals")
    centred = frame["e"] - frame.groupby("g")["e"].transform("mean")
    counts = frame.groupby("g").size()
    dof = int((counts - 1).sum())
    var = float((centred**2).sum() / max(dof, 1))
    return math.sqrt(max(var - noise_rel_sigma**2, 0.0))
