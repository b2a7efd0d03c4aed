"""Finished runs coming into a campaign: loss checks, run tables, and which trial each run
completes (pure, no storage)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from models.arch import Arch
from models.errors import ArchoptError
from optim.core.problem import CampaignSpec, Problem

from .ax_adapter import TrialRecord
from .errors import RunError

__all__ = [
    "checked_loss",
    "load_table",
    "check_runs_belong",
    "checked_runs",
    "observations",
    "plan_runs",
    "RunError",
]


def checked_loss(loss: Any, *, force: bool, where: str = "--loss") -> float:
    """A finite positive loss inside :data:`surrogate.runs.PLAUSIBLE_LOSS_RANGE` (``force``
    accepts any finite positive loss); one-line :class:`RunError` otherwise."""
    from surrogate.runs import PLAUSIBLE_LOSS_RANGE, check_loss

    try:
        return check_loss(loss, where=where, loss_range=None if force else PLAUSIBLE_LOSS_RANGE)
    except ArchoptError as exc:
        hint = "" if force else "; pass --force if it is real"
        raise RunError(f"{exc}{hint}") from None


def load_table(runs: str | Path | pd.DataFrame | Sequence, *, force: bool = False) -> pd.DataFrame:
    """A validated run table (``force``: losses outside the plausible range are accepted)."""
    from surrogate.runs import PLAUSIBLE_LOSS_RANGE, load_runs, validate_runs

    loss_range = None if force else PLAUSIBLE_LOSS_RANGE
    if isinstance(runs, pd.DataFrame):
        return validate_runs(runs, name="runs", loss_range=loss_range)
    paths = [runs] if isinstance(runs, (str, Path)) else list(runs)
    return load_runs(*paths, loss_range=loss_range)


def check_runs_belong(
    spec: CampaignSpec, archs: Sequence[Arch], names: Sequence[str], tokens: np.ndarray | None
) -> None:
    """Raise :class:`RunError` for the first run that does not belong to ``spec``'s budget."""
    for j, (arch, name) in enumerate(zip(archs, names)):
        problem = spec.run_mismatch(arch, None if tokens is None else float(tokens[j]))
        if problem:
            raise RunError(
                f"run {name!r} (row {j + 1}) {problem}; pass --force to attach it anyway"
            )


def checked_runs(
    spec: CampaignSpec, runs: str | Path | pd.DataFrame | Sequence, *, force: bool
) -> tuple[list[Arch], list[float], list[str]]:
    """``(archs, losses, run names)`` of a run table for campaign ``spec``: losses checked, runs
    outside the budget refused (unless ``force``), archs carrying the campaign's vocab size and
    tying (an Ax trial stores the block shape only; the band checks the run's own params)."""
    from surrogate.runs import table_archs

    table = load_table(runs, force=force)
    archs = table_archs(table)
    names = (
        table["run"].astype(str).tolist()
        if "run" in table.columns
        else [f"row {i}" for i in range(len(table))]
    )
    losses = [
        checked_loss(v, force=force, where=f"run {n!r}") for v, n in zip(table["loss"], names)
    ]
    tokens = table["tokens"].to_numpy(np.float64) if "tokens" in table.columns else None
    if not force:
        check_runs_belong(spec, archs, names, tokens)
    archs = [
        a.replace(vocab_size=spec.vocab_size, tie_embeddings=spec.tie_embeddings) for a in archs
    ]
    return archs, losses, names


def observations(
    problem: Problem, records: Sequence[TrialRecord]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(observed_idx, observed_loss, pending_idx)`` over ``problem``'s candidates (int64,
    float64, int64 arrays; one entry per observed / pending trial)."""
    obs = [(problem.index_of(r.arch), r.loss) for r in records if r.status == "observed"]
    pend = [problem.index_of(r.arch) for r in records if r.status == "pending"]
    idx = np.array([i for i, _ in obs], dtype=np.int64)
    loss = np.array([v for _, v in obs], dtype=np.float64)
    return idx, loss, np.array(pend, dtype=np.int64)


def plan_runs(
    records: Sequence[TrialRecord],
    archs: Sequence[Arch],
    losses: Sequence[float],
    names: Sequence[str],
    force: bool,
) -> list[tuple[int | None, Arch, float, str]]:
    """``(trial to complete or None for a new one, arch, loss, run name)`` per run."""
    seen: set[Arch] = set()
    plan: list[tuple[int | None, Arch, float, str]] = []
    for arch, value, name in zip(archs, losses, names):
        match = [r for r in records if r.arch == arch and r.status in ("pending", "observed")]
        observed = [r for r in match if r.status == "observed"]
        pending = [r for r in match if r.status == "pending"]
        if arch in seen and not force:
            raise RunError(
                f"run {name!r} repeats the shape of an earlier row; pass --force to attach both"
            )
        seen.add(arch)
        if observed and not force:
            raise RunError(
                f"run {name!r}: trial {observed[0].trial} with this shape already has "
                f"loss {observed[0].loss:.6g}; pass --force to replace it"
            )
        target = pending[0].trial if pending else (observed[0].trial if observed else None)
        plan.append((target, arch, value, name))
    return plan
