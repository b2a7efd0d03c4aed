"""Finished runs coming into a campaign: loss checks, run tables, and which trial each run
completes (pure, no storage)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from models.arch import Arch
from models.errors import ArchoptError
from optim.core.problem import CampaignSpec

from .ax_adapter import TrialRecord
from .errors import RunError

__all__ = ["checked_loss", "load_table", "check_runs_belong", "plan_runs", "RunError"]


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
