"""The Pareto front over the candidate set (pure computation, no storage)."""

from __future__ import annotations

import numpy as np
import torch

from .problem import Problem

__all__ = ["front_indices"]


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
