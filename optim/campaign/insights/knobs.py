"""The campaign's model across the knobs: sensitivity (a first-order Sobol index on the
candidate set), slices through one shape and parallel coordinates of trials and front."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from models.arch import Arch

from .model import InsightError, candidate_index, observations

if TYPE_CHECKING:
    from optim.campaign.campaign import Campaign
    from optim.core.problem import Problem

__all__ = [
    "KNOBS",
    "MAX_LEVELS",
    "SLICE_LEVELS",
    "SLICE_MISMATCH",
    "correlation_ratio",
    "sensitivity",
    "model_slices",
    "parallel_coordinates",
]

#: The knobs of the sensitivity, slice and parallel-coordinates views: ``(column, title)``;
#: ``mlp_attn_ratio`` is ``r`` (MLP / attention parameters per block).
KNOBS: tuple[tuple[str, str], ...] = (
    ("d_model", "d_model"),
    ("n_layers", "n_layers"),
    ("n_heads", "heads"),
    ("gqa_group", "GQA group"),
    ("mlp_attn_ratio", "r"),
)
#: Knobs with more distinct values than this are grouped into this many quantile bins
#: (sensitivity); slices keep up to :data:`SLICE_LEVELS` points.
MAX_LEVELS = 12
SLICE_LEVELS = 40
#: Distance a slice point pays for another GQA group or head_dim than the centre's.
SLICE_MISMATCH = 10.0


def _knob_table(problem: Problem, indices: np.ndarray) -> pd.DataFrame:
    rows = []
    for i in indices:
        a = problem.candidates[i]
        rows.append(
            {
                "d_model": a.d_model,
                "n_layers": a.n_layers,
                "n_heads": a.n_heads,
                "gqa_group": a.gqa_group,
                "mlp_attn_ratio": a.mlp_attn_ratio,
            }
        )
    return pd.DataFrame(rows, index=np.asarray(indices))


def _levels(values: pd.Series, max_levels: int = MAX_LEVELS) -> pd.Series:
    """Group labels of a knob: its values, or ``max_levels`` quantile bins when it has more."""
    if values.nunique() <= max_levels:
        return values
    return pd.Series(
        pd.qcut(values, max_levels, labels=False, duplicates="drop"), index=values.index
    )


def correlation_ratio(groups: np.ndarray, y: np.ndarray) -> float:
    """``Var(E[y | group]) / Var(y)`` over the samples (0 for a constant ``y``): the share of
    ``y``'s variance the grouping explains alone (a first-order Sobol index when the samples are
    the input distribution)."""
    y = np.asarray(y, dtype=np.float64)
    total = float(np.var(y))
    if total <= 0:
        return 0.0
    means = pd.Series(y).groupby(np.asarray(groups)).transform("mean").to_numpy()
    return float(np.var(means) / total)


def sensitivity(campaign: Campaign) -> pd.DataFrame:
    """How much each knob moves the campaign model's predicted loss and the tokens/s, over the
    proposable candidates (which hold the budget, so knobs are not independent: a first-order
    Sobol index estimated on the candidate set itself).

    Returns:
        One row per knob of :data:`KNOBS`: ``knob``, ``title``, ``levels``, ``loss_share``
        (Var(E[loss | knob]) / Var(loss): the correlation ratio), ``loss_range`` (max - min of
        the mean predicted loss per level), ``loss_rho`` (Spearman of knob and loss: the
        direction), ``tps_share``, ``tps_range`` (max / min of the geometric-mean tokens/s per
        level, minus 1) and ``tps_rho``.
    """
    from scipy.stats import spearmanr

    problem = campaign.problem
    ok = np.flatnonzero(problem.proposable)
    mean = campaign.candidate_loss()[0][ok]
    log_tps = problem.log_throughput[ok]
    knobs = _knob_table(problem, ok)
    rows = []
    for name, title in KNOBS:
        levels = _levels(knobs[name])
        row: dict[str, Any] = {"knob": name, "title": title, "levels": int(knobs[name].nunique())}
        for prefix, y in (("loss", mean), ("tps", log_tps)):
            row[f"{prefix}_share"] = correlation_ratio(levels.to_numpy(), y)
            per_level = pd.Series(y).groupby(levels.to_numpy()).mean()
            spread = float(per_level.max() - per_level.min())
            row[f"{prefix}_range"] = spread if prefix == "loss" else math.expm1(spread)
            rho = (
                spearmanr(knobs[name].to_numpy(), y).statistic if knobs[name].nunique() > 1 else 0.0
            )
            row[f"{prefix}_rho"] = float(rho) if np.isfinite(rho) else 0.0
        rows.append(row)
    return pd.DataFrame(rows)


def _default_centre(campaign: Campaign) -> int:
    """The best observed run's shape, else the best predicted proposable candidate."""
    obs = observations(campaign)
    if len(obs.idx):
        return int(obs.idx[int(np.argmin(obs.loss))])
    mean = campaign.candidate_loss()[0]
    return int(np.argmin(np.where(campaign.problem.proposable, mean, np.inf)))


def model_slices(campaign: Campaign, centre: int | None = None) -> pd.DataFrame:
    """Slices of the campaign's model through one shape: along each knob, the candidate nearest
    the centre in the other knobs (log scale, each over its range; the centre's GQA group and,
    except along heads, its head_dim held where a shape has them), for every level of the knob.

    Args:
        centre: a candidate index (default: the best observed run's shape, else the best
            predicted candidate).

    Returns:
        ``knob``, ``title``, ``x`` (the knob's value at that candidate), ``candidate``,
        ``label``, ``pred_loss_mean``, ``pred_loss_q05``, ``pred_loss_q95``,
        ``pred_tokens_per_s``, ``tokens_per_s_q05``, ``tokens_per_s_q95``, ``is_centre``.
    """
    problem = campaign.problem
    centre = _default_centre(campaign) if centre is None else int(centre)
    if not 0 <= centre < problem.n:
        raise InsightError(f"candidate {centre} is out of range [0, {problem.n})")
    mean, q05, q95 = campaign.candidate_loss()
    ok = np.flatnonzero(problem.proposable)
    pool = np.array(sorted(set(ok.tolist()) | {centre}), dtype=np.int64)
    knobs = _knob_table(problem, pool)
    logs = np.log(knobs.astype(float))
    span = (logs.max() - logs.min()).replace(0, 1.0)
    scaled = (logs - logs.loc[centre]) / span
    head_dim = pd.Series([problem.candidates[i].head_dim for i in pool], index=pool)
    # What a knob's slice holds exactly where it can (as build_arch does): the GQA group and,
    # except along heads, head_dim; a mismatch costs more than any distance in the knobs.
    held = {
        "gqa_group": (knobs["gqa_group"] != knobs.loc[centre, "gqa_group"]).astype(float),
        "head_dim": (head_dim != head_dim.loc[centre]).astype(float),
    }
    rows = []
    for name, title in KNOBS:
        others = [n for n, _ in KNOBS if n != name]
        dist = (scaled[others] ** 2).sum(axis=1)
        for what, mismatch in held.items():
            if what != name and not (what == "head_dim" and name == "n_heads"):
                dist = dist + SLICE_MISMATCH * mismatch
        levels = _levels(knobs[name], SLICE_LEVELS)
        picked: list[int] = []
        for _, members in dist.groupby(levels.to_numpy()):
            i = int(members.idxmin()) if centre not in members.index else centre
            if i in picked:
                continue
            picked.append(i)
            rows.append(
                {
                    "knob": name,
                    "title": title,
                    "x": float(knobs.loc[i, name]),
                    "candidate": i,
                    "label": problem.candidates[i].label(),
                    "pred_loss_mean": float(mean[i]),
                    "pred_loss_q05": float(q05[i]),
                    "pred_loss_q95": float(q95[i]),
                    "pred_tokens_per_s": float(problem.throughput_mean[i]),
                    "tokens_per_s_q05": float(problem.throughput_q05[i]),
                    "tokens_per_s_q95": float(problem.throughput_q95[i]),
                    "is_centre": i == centre,
                }
            )
    out = pd.DataFrame(rows)
    return out.sort_values(["knob", "x"], kind="stable").reset_index(drop=True)


def parallel_coordinates(campaign: Campaign) -> pd.DataFrame:
    """Trials and the predicted front on the knobs, for a parallel-coordinates plot.

    Returns:
        One row per trial (observed or pending) and per front shape: ``group``
        (``"observed"``, ``"pending"``, ``"front"``), ``label``, ``trial``, the :data:`KNOBS`
        columns, ``loss`` (the observed loss, else the current predicted mean) and
        ``tokens_per_s``.
    """
    problem = campaign.problem
    mean = campaign.candidate_loss()[0]
    rows = []
    for rec in sorted(campaign.trial_records(), key=lambda r: r.trial):
        if rec.status not in ("observed", "pending"):
            continue
        i = candidate_index(problem, rec.arch)
        loss = rec.loss if rec.status == "observed" and rec.loss is not None else mean[i]
        rows.append(
            {
                "group": rec.status,
                "label": rec.arch.label(),
                "trial": rec.trial,
                "index": i,
                "loss": float(loss),
            }
        )
    for r in campaign.pareto():
        arch = Arch.from_mapping(r)
        loss = r["observed_loss"] if r["observed_loss"] is not None else r["pred_loss_mean"]
        rows.append(
            {
                "group": "front",
                "label": arch.label(),
                "trial": r["trial"],
                "index": candidate_index(problem, arch),
                "loss": float(loss),
            }
        )
    columns = ["group", "label", "trial", *[n for n, _ in KNOBS], "loss", "tokens_per_s"]
    if not rows:
        return pd.DataFrame(columns=columns)
    table = pd.DataFrame(rows)
    knobs = _knob_table(problem, table["index"].to_numpy()).reset_index(drop=True)
    table = pd.concat([table.reset_index(drop=True), knobs], axis=1)
    table["tokens_per_s"] = problem.throughput_mean[table["index"].to_numpy()]
    return table[columns]
