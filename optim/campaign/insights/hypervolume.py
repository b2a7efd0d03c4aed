"""Hypervolume in the objective space ``(-loss, log tokens/s)``: of points, of many sets of
points at once, and of a campaign's observed runs as trials complete."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from .model import observations

if TYPE_CHECKING:
    from optim.campaign.campaign import Campaign

__all__ = [
    "hypervolume",
    "batch_hypervolume",
    "hypervolume_history",
]


def hypervolume(loss: np.ndarray, tps: np.ndarray, ref_point: tuple[float, float]) -> float:
    """Hypervolume of points ``(loss, tokens/s)`` (``(k,)`` each) above ``ref_point`` =
    ``(loss, tokens/s)``, in the objective space of :func:`optim.core.front.hypervolume`
    (``(-loss, ln tokens/s)``); 0 for none."""
    from optim.core.front import hypervolume as objective_hypervolume
    from optim.core.front import objective_points

    ref = objective_points([ref_point[0]], [ref_point[1]])[0]
    return objective_hypervolume(objective_points(loss, tps), ref)


def batch_hypervolume(
    loss: np.ndarray, tps: np.ndarray, ref_point: tuple[float, float]
) -> np.ndarray:
    """Hypervolume of ``S`` sets of ``k`` points at once (BoTorch's batched box decomposition):
    ``loss``, ``tps`` are ``S x k``; returns ``(S,)`` (zeros for ``k = 0``)."""
    from botorch.utils.multi_objective.box_decompositions.dominated import DominatedPartitioning

    loss = np.asarray(loss, dtype=np.float64)
    if loss.ndim != 2 or loss.shape[1] == 0:
        return np.zeros(loss.shape[0] if loss.ndim else 0)
    Y = torch.as_tensor(np.stack([-loss, np.log(np.asarray(tps, dtype=np.float64))], -1))
    ref = torch.tensor([-ref_point[0], math.log(ref_point[1])], dtype=torch.float64)
    return DominatedPartitioning(ref_point=ref, Y=Y).compute_hypervolume().numpy()


def _reference_point(campaign: Campaign) -> tuple[float, float]:
    ref = campaign.problem.reference_point(campaign.candidate_loss()[0])
    return float(ref[0]), float(ref[1])


def hypervolume_history(campaign: Campaign) -> dict[str, Any]:
    """Hypervolume of the observed runs as trials complete (trial order), against the
    predicted front's.

    Returns:
        ``history``: one row per observed trial (``n_observed``, ``trial``, ``label``,
        ``observed_loss``, ``tokens_per_s``, ``hypervolume`` of the runs up to it,
        ``improved``); ``ref_point``; ``predicted_front_hypervolume`` (the model's predicted
        Pareto set at its mean losses, observed shapes at their results: what is left to gain).
    """
    problem = campaign.problem
    obs = observations(campaign)
    ref = _reference_point(campaign)
    tps = problem.throughput_mean
    rows, last = [], 0.0
    for n in range(1, len(obs.idx) + 1):
        hv = hypervolume(obs.loss[:n], tps[obs.idx[:n]], ref)
        i = int(obs.idx[n - 1])
        rows.append(
            {
                "n_observed": n,
                "trial": int(obs.trials[n - 1]),
                "label": problem.candidates[i].label(),
                "observed_loss": float(obs.loss[n - 1]),
                "tokens_per_s": float(tps[i]),
                "hypervolume": hv,
                "improved": hv > last + 1e-12,
            }
        )
        last = hv
    front = campaign.pareto()
    pred_hv = (
        hypervolume(
            np.array(
                [
                    r["observed_loss"] if r["observed_loss"] is not None else r["pred_loss_mean"]
                    for r in front
                ]
            ),
            np.array([r["pred_tokens_per_s"] for r in front]),
            ref,
        )
        if front
        else 0.0
    )
    columns = [
        "n_observed",
        "trial",
        "label",
        "observed_loss",
        "tokens_per_s",
        "hypervolume",
        "improved",
    ]
    return {
        "history": pd.DataFrame(rows, columns=columns),
        "ref_point": ref,
        "predicted_front_hypervolume": pred_hv,
    }
