"""The campaign's JSON rows: one candidate or trial as the CLI (``--json``), the app and the
export read it. The field names are a contract other tools read (:data:`PROPOSAL_FIELDS`)."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from models.arch import SHAPE_FIELDS, Arch
from optim.core.problem import Problem

from .ax_adapter import TrialRecord
from .runs import observations

__all__ = [
    "PROPOSAL_FIELDS",
    "TRIAL_FIELDS",
    "PRIOR_FIELDS",
    "jsonable",
    "candidate_row",
    "trial_row",
    "current_prediction",
    "candidates_frame",
    "pareto_rows",
]

#: Fields every proposal / Pareto / trial dict carries (the CLI JSON contract).
PROPOSAL_FIELDS: tuple[str, ...] = (
    "trial",
    *SHAPE_FIELDS,
    "params",
    "non_embedding_params",
    "pred_loss_mean",
    "pred_loss_q05",
    "pred_loss_q95",
    "pred_tokens_per_s",
    "tokens_per_s_q05",
    "tokens_per_s_q95",
    "backend",
    "mlp_attn_ratio",
    "d_over_sqrt_n",
    "gqa_group",
    "ehvi",
)
#: The scaling-law prior's weight in the loss model and the leave-one-out Spearman correlation
#: of its predictions with the observed runs (:func:`optim.core.weighting.prior_status`), as of
#: the proposal: every proposal row (``propose --json``) and trial dict carries them.
PRIOR_FIELDS: tuple[str, ...] = ("prior_weight", "prior_loo_spearman")
#: Fields of a trial dict (``status --json``'s ``trials``) besides the shape.
TRIAL_FIELDS: tuple[str, ...] = (
    "trial",
    "status",
    "kind",
    "params",
    "non_embedding_params",
    "observed_loss",
    "run",
    "mlp_attn_ratio",
    "d_over_sqrt_n",
    "gqa_group",
    "label",
    "in_band",
    "pred_loss_mean",
    "pred_loss_q05",
    "pred_loss_q95",
    "pred_tokens_per_s",
    "ehvi",
    "strategy",
    *PRIOR_FIELDS,
)


def jsonable(value: Any) -> Any:
    """A JSON-safe scalar: numpy scalars become Python ones, non-finite floats ``None``."""
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def candidate_row(
    problem: Problem,
    i: int,
    loss: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    trial: int | None = None,
    ehvi: float | None = None,
) -> dict[str, Any]:
    """Candidate ``i`` of ``problem`` with its predicted loss and throughput.

    Throughput fields: ``pred_tokens_per_s`` (median of the problem's draws, or the
    measurement), ``tokens_per_s_q05``/``tokens_per_s_q95`` (5/95% quantiles of the draws; the
    same values also as ``pred_tokens_per_s_q05/q95``), ``throughput_rel_sigma`` (shape-relative
    log sd), ``throughput_common_sigma`` (log sd shared by every modelled candidate),
    ``throughput_source``, ``backend``, ``servable``, ``unservable_reason`` and
    ``throughput_warning`` (the calibration caveats of :attr:`Problem.throughput_warnings`, joined;
    empty when there are none).

    Args:
        loss: ``(mean, q05, q95)``, each ``(n,)`` over the candidates.
    """
    arch = problem.candidates[i]
    feats = arch.features()
    mean, q05, q95 = loss
    tps = float(problem.throughput_mean[i])
    tps_q05, tps_q95 = float(problem.throughput_q05[i]), float(problem.throughput_q95[i])
    measured = str(problem.throughput_source[i]) == "measured"
    row: dict[str, Any] = {
        "trial": trial,
        **arch.shape(),
        "params": arch.params,
        "non_embedding_params": arch.non_embedding_params,
        "pred_loss_mean": float(mean[i]),
        "pred_loss_q05": float(q05[i]),
        "pred_loss_q95": float(q95[i]),
        "pred_tokens_per_s": tps,
        "pred_tokens_per_s_q05": tps_q05,
        "pred_tokens_per_s_q95": tps_q95,
        "tokens_per_s_q05": tps_q05,
        "tokens_per_s_q95": tps_q95,
        "throughput_rel_sigma": float(problem.throughput_rel_sigma[i]),
        "throughput_common_sigma": 0.0 if measured else float(problem.throughput_common_sigma),
        "throughput_source": str(problem.throughput_source[i]),
        "backend": problem.throughput_backend,
        "servable": bool(problem.servable[i]),
        "unservable_reason": str(problem.unservable_reason[i]),
        "throughput_warning": "" if measured else "; ".join(problem.throughput_warnings),
        "mlp_attn_ratio": feats["mlp_attn_ratio"],
        "d_over_sqrt_n": feats["d_over_sqrt_n"],
        "gqa_group": feats["gqa_group"],
        "aspect_ratio": feats["aspect_ratio"],
        "ehvi": ehvi,
        "memory_bytes": float(problem.memory_bytes[i]),
        "fits_in_memory": bool(problem.fits_in_memory[i]),
        "in_band": bool(problem.in_band[i]),
        "label": arch.label(),
    }
    return {k: jsonable(v) for k, v in row.items()}


def trial_row(rec: TrialRecord, in_band: bool) -> dict[str, Any]:
    """A trial with its observed loss, the prediction made when it was proposed and its
    training job (``job_backend``, ``job_id``, ``job_state``: ``pending``, ``submitting``,
    ``running``, ``completed`` or ``failed``; ``failure_reason``)."""
    proposal: Mapping[str, Any] = rec.meta.get("proposal") or {}
    arch = rec.arch
    feats = arch.features()
    out = {
        "trial": rec.trial,
        "status": rec.status,
        "kind": rec.meta.get("kind", "attached"),
        **arch.shape(),
        "params": arch.params,
        "non_embedding_params": arch.non_embedding_params,
        "observed_loss": rec.loss,
        "run": rec.meta.get("run"),
        "mlp_attn_ratio": feats["mlp_attn_ratio"],
        "d_over_sqrt_n": feats["d_over_sqrt_n"],
        "gqa_group": feats["gqa_group"],
        "label": arch.label(),
        "in_band": in_band,
    }
    for key in (
        "pred_loss_mean",
        "pred_loss_q05",
        "pred_loss_q95",
        "pred_tokens_per_s",
        "ehvi",
        "strategy",
        *PRIOR_FIELDS,
    ):
        out[key] = proposal.get(key)
    job = rec.meta.get("job") or {}
    state = {"observed": "completed", "failed": "failed"}.get(rec.status)
    out.update(
        {
            "job_backend": job.get("backend"),
            "job_id": job.get("id"),
            "job_state": state
            or job.get("state")
            or ("pending" if rec.status == "pending" else rec.status),
            "failure_reason": job.get("reason") if rec.status == "failed" else None,
        }
    )
    return {k: jsonable(v) for k, v in out.items()}


def current_prediction(
    problem: Problem, loss: tuple[np.ndarray, ...], arch: Arch
) -> dict[str, Any]:
    """The current model's prediction for ``arch`` (a candidate of ``problem``):
    ``pred_loss_mean_now``, ``pred_loss_q05_now``, ``pred_loss_q95_now``,
    ``pred_tokens_per_s_now``. ``loss``: ``(mean, q05, q95)``, each ``(n,)``."""
    i = problem.index_of(arch)
    mean, q05, q95 = loss
    return {
        "pred_loss_mean_now": jsonable(mean[i]),
        "pred_loss_q05_now": jsonable(q05[i]),
        "pred_loss_q95_now": jsonable(q95[i]),
        "pred_tokens_per_s_now": jsonable(problem.throughput_mean[i]),
    }


def candidates_frame(problem: Problem, loss: tuple[np.ndarray, ...]) -> pd.DataFrame:
    """The proposable candidates: ``candidate`` (index into ``problem``), ``label``, shape
    features, ``pred_loss_mean/q05/q95`` (``loss``, each ``(n,)``), ``pred_tokens_per_s`` and
    ``throughput_source``."""
    mean, q05, q95 = loss
    rows = []
    for i in np.flatnonzero(problem.proposable):
        arch = problem.candidates[i]
        rows.append(
            {
                "candidate": int(i),
                "label": arch.label(),
                **arch.features(),
                "pred_loss_mean": float(mean[i]),
                "pred_loss_q05": float(q05[i]),
                "pred_loss_q95": float(q95[i]),
                "pred_tokens_per_s": float(problem.throughput_mean[i]),
                "throughput_source": str(problem.throughput_source[i]),
            }
        )
    return pd.DataFrame(rows)


def pareto_rows(
    problem: Problem,
    loss: tuple[np.ndarray, np.ndarray, np.ndarray],
    records: Sequence[TrialRecord],
) -> list[dict[str, Any]]:
    """The Pareto set over the budget: observed trials (mean observed loss) and unobserved
    proposable candidates (predicted mean ``loss[0]``, ``(n,)``), maximizing tokens/s and
    minimizing loss (:func:`optim.core.front.front_indices`). Each row is a
    :func:`candidate_row` plus ``observed_loss`` and ``source`` (``observed``/``predicted``)."""
    from optim.core.front import front_indices

    idx, observed, _ = observations(problem, records)
    observed_loss: dict[int, list[float]] = {}
    for i, v in zip(idx, observed):
        observed_loss.setdefault(int(i), []).append(float(v))
    trial_of = {
        problem.index_of(r.arch): r.trial for r in records if r.status in ("pending", "observed")
    }
    value = loss[0].copy()
    for i, vs in observed_loss.items():
        value[i] = float(np.mean(vs))
    observed_in_band = np.isin(np.arange(problem.n), idx) & problem.in_band
    front = front_indices(problem, value, np.flatnonzero(problem.proposable | observed_in_band))
    rows = []
    for i in front:
        row = candidate_row(problem, int(i), loss, trial=trial_of.get(int(i)))
        obs = observed_loss.get(int(i))
        row["observed_loss"] = float(np.mean(obs)) if obs else None
        row["source"] = "observed" if obs else "predicted"
        rows.append(row)
    return rows
