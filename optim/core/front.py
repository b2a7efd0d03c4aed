"""The Pareto front over the candidate set and its hypervolume (pure computation, no storage).

The objective space is ``(-loss, ln tokens/s)``, both maximized: the one definition the
campaign's explanations (:mod:`optim.campaign.insights`) and the benchmark harness
(:mod:`optim.bench`) both use."""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike

from .problem import Problem

__all__ = ["front_indices", "objective_points", "pareto_mask", "hypervolume"]


def front_indices(problem: Problem, loss: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Candidates of ``pool`` that are Pareto-optimal in (low loss, high tokens/s).

    Args:
        problem: the candidate set (its throughput and the spec's ``max_loss`` /
            ``min_throughput`` constraints).
        loss: ``(n,)`` loss per candidate (observed where observed, predicted elsewhere).
        pool: ``(m,)`` candidate indices eligible for the front.

    Returns:
        Indices into the candidates, sorted by decreasing tokens/s; candidates with a
        non-finite loss or violating a constraint are left out.
    """
    from botorch.utils.multi_objective import is_non_dominated

    pool = np.asarray(pool, dtype=np.int64)
    keep = np.isfinite(loss[pool])
    if problem.max_loss is not None:
        keep &= loss[pool] <= problem.max_loss
    if problem.min_throughput is not None:
        keep &= problem.throughput_mean[pool] >= problem.min_throughput
    pool = pool[keep]
    if not len(pool):
        return pool
    Y = torch.as_tensor(np.stack([-loss[pool], problem.log_throughput[pool]], -1))
    front = pool[is_non_dominated(Y, deduplicate=True).numpy()]
    return front[np.argsort(-problem.throughput_mean[front], kind="stable")]


def objective_points(loss: ArrayLike, tokens_per_s: ArrayLike) -> np.ndarray:
    """``(n, 2)`` points ``(-loss, ln tokens/s)`` (both maximized) of ``(n,)`` losses and
    throughputs."""
    loss = np.asarray(loss, dtype=np.float64).reshape(-1)
    tps = np.asarray(tokens_per_s, dtype=np.float64).reshape(-1)
    return np.stack([-loss, np.log(tps)], axis=-1)


def pareto_mask(y: np.ndarray) -> np.ndarray:
    """Non-dominated rows of ``y`` (``n x 2``, maximized), via BoTorch's ``is_non_dominated``."""
    from botorch.utils.multi_objective.pareto import is_non_dominated

    if len(y) == 0:
        return np.zeros(0, dtype=bool)
    return is_non_dominated(torch.as_tensor(y, dtype=torch.float64)).numpy()


def hypervolume(y: np.ndarray, ref_point: np.ndarray) -> float:
    """Hypervolume dominated by the rows of ``y`` (``n x 2``, maximized) above ``ref_point``
    (``(2,)``), by BoTorch's ``Hypervolume`` on the non-dominated rows; rows not strictly
    better than the reference point in every objective contribute nothing."""
    from botorch.utils.multi_objective.hypervolume import Hypervolume

    y = np.asarray(y, dtype=np.float64).reshape(-1, 2)
    ref = np.asarray(ref_point, dtype=np.float64).reshape(2)
    y = y[np.all(y > ref, axis=1)]
    if len(y) == 0:
        return 0.0
    front = torch.as_tensor(y[pareto_mask(y)], dtype=torch.float64)
    return float(Hypervolume(torch.as_tensor(ref, dtype=torch.float64)).compute(front))
