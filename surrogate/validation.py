"""Validation of a loss prior at sizes it has not seen: splits and metrics (pure computation).

The contract, fixed before any model was chosen (``benchmarks/surrogate_validation.py`` runs
it and writes the report):

**Size groups** are :func:`surrogate.groups.size_groups` of the non-embedding parameters per
source key (the one definition the fits use too). With ``G`` groups per source key, numbered by
size, every table gets these splits (:func:`table_splits`; all source keys of a table are split
alike, each at its own groups):

=================  =======  ===========================  ===================================
split              role     trained on groups            predicts group
=================  =======  ===========================  ===================================
``largest``        test     ``0 .. G-2``                 ``G-1`` (the largest)
``skip``           test     ``0 .. G-3``                 ``G-1`` (two steps out)
``nested``         dev      ``0 .. G-3``                 ``G-2``
``nested_skip``    dev      ``0 .. G-4``                 ``G-2`` (two steps out)
``loso:<key>``     transfer every other source key       the left-out key (all of its rows)
=================  =======  ===========================  ===================================

*dev* splits are the ones a design may be chosen on; they never see the largest group, whose
rows only the *test* splits predict (report only). The *transfer* splits (leave one source key
out, where the keys of one table share a loss kind: openlm_runs' three datasets) predict a
source whose level the others cannot fix; they are reported apart and not pooled with the
extrapolation splits.

**Cells** (:func:`cell_labels`): rows of one source key, size group and token budget. Within a
cell the shapes compete at (nearly) equal size, which is the optimizer's question; shape metrics
(:func:`shape_metrics`) are computed per cell with two or more distinct shapes and compared
with chance and with a shape-blind ranking computed in the same run.

**Metrics** (:func:`point_metrics`, :func:`interval_metrics`): MAPE, signed bias per held-out
size group, 50% / 90% central-interval coverage and CRPS (from predictive draws, or closed form
for a normal predictive). Pooled numbers (:func:`pool`) weight every held-out row equally.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from models.arch import SHAPE_FIELDS
from models.errors import ArchoptError

from .groups import size_groups
from .laws import law_features
from .runs import source_keys, table_archs

__all__ = [
    "Split",
    "SPLIT_ROLES",
    "SPLIT_KINDS",
    "table_size_groups",
    "table_splits",
    "cell_labels",
    "shape_ids",
    "crps_draws",
    "crps_normal",
    "point_metrics",
    "interval_metrics",
    "shape_metrics",
    "pool",
    "ValidationError",
    "split_features",
    "held_out_sizes",
    "MIN_TRAIN_GROUPS",
]

#: Roles of a split: chosen-on (dev), report-only (test), new-source transfer (report only).
SPLIT_ROLES: tuple[str, ...] = ("dev", "test", "transfer")
#: kind -> (role, highest group trained on, group predicted), groups counted from the top of
#: each source key (0 = the largest): ``largest`` trains on groups 1, 2, ... and predicts 0.
SPLIT_KINDS: dict[str, tuple[str, int, int]] = {
    "largest": ("test", 1, 0),
    "skip": ("test", 2, 0),
    "nested": ("dev", 2, 1),
    "nested_skip": ("dev", 3, 1),
}
#: A split needs at least this many size groups to train on (per source key).
MIN_TRAIN_GROUPS: int = 2


class ValidationError(ArchoptError):
    """A table too small for a split, or metric inputs of mismatched shapes."""


@dataclass(frozen=True)
class Split:
    """One train/held-out partition of a table.

    Attributes:
        table: table name.
        kind: a key of :data:`SPLIT_KINDS` or ``"loso:<source key>"``.
        role: one of :data:`SPLIT_ROLES`.
        train, held_out: boolean masks ``(n,)`` over the table's rows.
    """

    table: str
    kind: str
    role: str
    train: np.ndarray = field(repr=False)
    held_out: np.ndarray = field(repr=False)

    @property
    def name(self) -> str:
        return f"{self.table}/{self.kind}"


def table_size_groups(runs: pd.DataFrame) -> np.ndarray:
    """Size group ``(n,)`` of every row: :func:`~surrogate.groups.size_groups` of the
    non-embedding parameters per source key (:func:`~surrogate.runs.source_keys`)."""
    n = np.fromiter((a.non_embedding_params for a in table_archs(runs)), np.float64, len(runs))
    return size_groups(n, source_keys(runs))


def _rank_within_source(groups: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, dict]:
    """Per row, the rank of its group from the top within its source key (0 = largest), and
    the number of groups per key."""
    top = np.empty(groups.size, np.int64)
    counts = {}
    for key in np.unique(keys):
        m = keys == key
        uniq = np.unique(groups[m])  # ascending = by size
        counts[key] = uniq.size
        rank = {g: uniq.size - 1 - i for i, g in enumerate(uniq)}
        top[m] = [rank[g] for g in groups[m]]
    return top, counts


def table_splits(
    runs: pd.DataFrame, table: str, *, loss_kind_col: str = "loss_kind"
) -> list[Split]:
    """Every split of :data:`SPLIT_KINDS` that the table supports (each source key keeps at
    least :data:`MIN_TRAIN_GROUPS` groups to train on), then the leave-one-source-out splits
    when two or more source keys share a loss kind.

    Args:
        runs: a validated run table (``n`` rows).
        table: its name (for reports).
    """
    groups = table_size_groups(runs)
    keys = source_keys(runs)
    top, counts = _rank_within_source(groups, keys)
    out = []
    for kind, (role, first_train, predict) in SPLIT_KINDS.items():
        if min(counts.values()) < first_train + MIN_TRAIN_GROUPS:
            continue
        out.append(Split(table, kind, role, train=top >= first_train, held_out=top == predict))
    if loss_kind_col in runs.columns:
        kinds = runs[loss_kind_col].to_numpy()
        for key in np.unique(keys):
            same = set(kinds[keys == key])
            others = (keys != key) & np.isin(kinds, list(same))
            if others.any():
                out.append(
                    Split(table, f"loso:{key}", "transfer", train=others, held_out=keys == key)
                )
    if not out:
        raise ValidationError(
            f"{table}: too few size groups for any split ({min(counts.values())} per source key)"
        )
    return out


def shape_ids(runs: pd.DataFrame) -> np.ndarray:
    """An integer per distinct shape (the eight shape fields) ``(n,)``."""
    return pd.MultiIndex.from_frame(runs[list(SHAPE_FIELDS)].astype(str)).factorize()[0]


def cell_labels(runs: pd.DataFrame) -> np.ndarray:
    """Cell ``(n,)``: source key, size group and token budget (rounded to 0.1%)."""
    tok = np.round(np.log(runs["tokens"].to_numpy(np.float64)), 3)
    frame = pd.DataFrame({"k": source_keys(runs), "g": table_size_groups(runs), "t": tok})
    return frame.groupby(["k", "g", "t"], sort=True).ngroup().to_numpy()


# ---- metrics ---------------------------------------------------------------------------
def crps_draws(draws: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CRPS ``(n,)`` of predictive draws ``(S, n)`` at observations ``y`` ``(n,)``:
    ``E|X - y| - E|X - X'| / 2`` over the draws (the energy form; ``O(S log S)`` via sorting)."""
    draws = np.asarray(draws, np.float64)
    y = np.asarray(y, np.float64)
    if draws.ndim != 2 or draws.shape[1] != y.size:
        raise ValidationError(f"draws must be (S, {y.size}), got {draws.shape}")
    s = draws.shape[0]
    term1 = np.mean(np.abs(draws - y[None, :]), axis=0)
    x = np.sort(draws, axis=0)
    weights = (2.0 * np.arange(1, s + 1) - s - 1.0)[:, None]
    term2 = np.sum(weights * x, axis=0) / (s * s)  # = E|X - X'| / 2
    return term1 - term2


def crps_normal(mean: np.ndarray, sd: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Closed-form CRPS ``(n,)`` of ``Normal(mean, sd)`` predictives at ``y``."""
    from scipy.stats import norm

    sd = np.maximum(np.asarray(sd, np.float64), 1e-12)
    z = (np.asarray(y, np.float64) - np.asarray(mean, np.float64)) / sd
    return sd * (z * (2.0 * norm.cdf(z) - 1.0) + 2.0 * norm.pdf(z) - 1.0 / math.sqrt(math.pi))


def point_metrics(
    y: np.ndarray, mean: np.ndarray, groups: np.ndarray, sizes: np.ndarray | None = None
) -> dict[str, Any]:
    """MAPE (%) and signed bias (%, ``mean(pred / y - 1)``) overall and per size group.

    Args:
        y, mean: observed and predicted loss ``(n,)``.
        groups: size group ``(n,)``.
        sizes: non-embedding parameters ``(n,)`` to label the groups (optional).

    Returns:
        ``mape``, ``bias``, ``n`` and ``bias_by_group``: a list of ``{"group", "n", "bias",
        "mape", "N_min", "N_max"}``.
    """
    y = np.asarray(y, np.float64)
    rel = np.asarray(mean, np.float64) / y - 1.0
    by_group = []
    for g in np.unique(groups):
        m = groups == g
        row = {
            "group": int(g),
            "n": int(m.sum()),
            "bias": float(100 * rel[m].mean()),
            "mape": float(100 * np.abs(rel[m]).mean()),
        }
        if sizes is not None:
            row.update(N_min=float(np.min(sizes[m])), N_max=float(np.max(sizes[m])))
        by_group.append(row)
    return {
        "mape": float(100 * np.abs(rel).mean()),
        "bias": float(100 * rel.mean()),
        "n": int(y.size),
        "bias_by_group": by_group,
    }


def interval_metrics(
    y: np.ndarray,
    *,
    draws: np.ndarray | None = None,
    mean: np.ndarray | None = None,
    sd: np.ndarray | None = None,
) -> dict[str, Any]:
    """Central 50% / 90% interval coverage and mean CRPS, from predictive draws ``(S, n)`` or
    a normal predictive (``mean``, ``sd`` ``(n,)``).

    Returns:
        ``cov50``, ``cov90`` (fractions), ``in50``, ``in90`` (counts), ``crps`` (mean) and
        ``crps_rows`` (a list, for pooling).
    """
    y = np.asarray(y, np.float64)
    if draws is not None:
        q25, q75, q05, q95 = np.quantile(draws, [0.25, 0.75, 0.05, 0.95], axis=0)
        crps = crps_draws(draws, y)
    elif mean is not None and sd is not None:
        from scipy.stats import norm

        mean = np.asarray(mean, np.float64)
        sd = np.asarray(sd, np.float64)
        q25, q75 = mean + norm.ppf(0.25) * sd, mean + norm.ppf(0.75) * sd
        q05, q95 = mean + norm.ppf(0.05) * sd, mean + norm.ppf(0.95) * sd
        crps = crps_normal(mean, sd, y)
    else:
        raise ValidationError("interval_metrics needs draws or mean and sd")
    in50 = int(np.sum((y >= q25) & (y <= q75)))
    in90 = int(np.sum((y >= q05) & (y <= q95)))
    return {
        "cov50": in50 / y.size,
        "cov90": in90 / y.size,
        "in50": in50,
        "in90": in90,
        "crps": float(np.mean(crps)),
        "crps_rows": [float(c) for c in crps],
    }


def shape_metrics(
    y: np.ndarray, mean: np.ndarray, cells: np.ndarray, shapes: np.ndarray
) -> dict[str, Any]:
    """How well predictions rank the shapes within each cell.

    Rows of one shape in one cell are averaged. Per cell with ``k >= 2`` shapes: whether the
    truly best (lowest-loss) shape is ranked first (ties in the prediction count ``1/t`` for a
    ``t``-way tie holding the best), with chance ``1/k``; per cell with ``k >= 3`` shapes the
    Spearman correlation of predicted and observed loss (chance 0).

    Args:
        y, mean: observed and predicted loss ``(n,)``.
        cells: cell label ``(n,)`` (:func:`cell_labels`).
        shapes: shape label ``(n,)`` (:func:`shape_ids`).

    Returns:
        ``best_first`` (mean over cells), ``chance_best_first``, ``n_rank_cells``,
        ``spearman`` (mean over cells with >= 3 shapes, NaN if none), ``n_spearman_cells``.
    """
    from scipy.stats import spearmanr

    frame = pd.DataFrame(
        {"c": cells, "s": shapes, "y": np.asarray(y, np.float64), "p": np.asarray(mean, np.float64)}
    )
    agg = frame.groupby(["c", "s"], sort=True)[["y", "p"]].mean().reset_index()
    hits, chance, rhos = [], [], []
    for _, cell in agg.groupby("c", sort=True):
        k = len(cell)
        if k < 2:
            continue
        yv, pv = cell["y"].to_numpy(), cell["p"].to_numpy()
        top = np.isclose(pv, pv.min(), rtol=0.0, atol=1e-12)
        hits.append(float(top[np.argmin(yv)]) / float(top.sum()))
        chance.append(1.0 / k)
        if k >= 3 and np.ptp(yv) > 0 and np.ptp(pv) > 0:
            rhos.append(float(spearmanr(pv, yv).statistic))
        elif k >= 3:
            rhos.append(0.0)  # a constant prediction ranks nothing
    return {
        "best_first": float(np.mean(hits)) if hits else float("nan"),
        "chance_best_first": float(np.mean(chance)) if chance else float("nan"),
        "n_rank_cells": len(hits),
        "best_first_hits": float(np.sum(hits)),
        "spearman": float(np.mean(rhos)) if rhos else float("nan"),
        "n_spearman_cells": len(rhos),
        "spearman_sum": float(np.sum(rhos)),
    }


def pool(results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Pool per-split metric dicts (each with :func:`point_metrics`, :func:`interval_metrics`
    and :func:`shape_metrics` keys and ``abs_err_rows``) row-weighted: MAPE over all rows,
    coverage = rows inside / rows, CRPS mean over rows, best-first and Spearman over all cells.
    """
    results = list(results)
    if not results:
        return {}
    n = sum(r["n"] for r in results)
    out = {
        "n": n,
        "splits": len(results),
        "mape": sum(r["mape"] * r["n"] for r in results) / n,
        "cov50": sum(r["in50"] for r in results) / n,
        "cov90": sum(r["in90"] for r in results) / n,
        "crps": float(np.mean([c for r in results for c in r["crps_rows"]])),
    }
    cells = sum(r["n_rank_cells"] for r in results)
    out["n_rank_cells"] = cells
    out["best_first"] = sum(r["best_first_hits"] for r in results) / cells if cells else math.nan
    sp = sum(r["n_spearman_cells"] for r in results)
    out["n_spearman_cells"] = sp
    out["spearman"] = sum(r["spearman_sum"] for r in results) / sp if sp else math.nan
    return out


def split_features(runs: pd.DataFrame) -> dict[str, np.ndarray]:
    """Law features of a table's rows (``(n,)`` arrays; see :func:`surrogate.laws.law_features`)."""
    return law_features(table_archs(runs), runs["tokens"].to_numpy(np.float64))


def held_out_sizes(runs: pd.DataFrame, splits: Sequence[Split]) -> Mapping[str, tuple]:
    """``split name -> (smallest, largest)`` non-embedding size of its held-out rows."""
    n = split_features(runs)["N"]
    return {s.name: (float(n[s.held_out].min()), float(n[s.held_out].max())) for s in splits}
