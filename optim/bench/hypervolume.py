"""Pareto front, hypervolume and the scoring reference point of a world, in the objective space
``(-loss, ln tokens/s)`` (both maximized), through BoTorch."""

from __future__ import annotations

import numpy as np

__all__ = [
    "pareto_mask",
    "hypervolume",
    "reference_point",
]


def pareto_mask(y: np.ndarray) -> np.ndarray:
    """Non-dominated rows of ``y`` (``n x 2``, maximized), via BoTorch's ``is_non_dominated``."""
    import torch
    from botorch.utils.multi_objective.pareto import is_non_dominated

    if len(y) == 0:
        return np.zeros(0, dtype=bool)
    return is_non_dominated(torch.as_tensor(y, dtype=torch.float64)).numpy()


def hypervolume(y: np.ndarray, ref_point: np.ndarray) -> float:
    """Hypervolume dominated by the rows of ``y`` (``n x 2``, maximized) above ``ref_point``.

    Rows not strictly better than the reference point in every objective contribute nothing.
    Uses BoTorch's ``Hypervolume`` on the non-dominated rows.
    """
    import torch
    from botorch.utils.multi_objective.hypervolume import Hypervolume

    y = np.asarray(y, float).reshape(-1, 2)
    ref = np.asarray(ref_point, float)
    y = y[np.all(y > ref, axis=1)]
    if len(y) == 0:
        return 0.0
    front = torch.as_tensor(y[pareto_mask(y)], dtype=torch.float64)
    return float(Hypervolume(torch.as_tensor(ref, dtype=torch.float64)).compute(front))


def reference_point(true_loss: np.ndarray, true_tps: np.ndarray, loss_target: float) -> np.ndarray:
    """HV reference: the loss target, and 10% below the slowest Pareto point that meets it.

    The loss side is the user's target (worse losses are not worth training); the throughput
    side is the nadir of the true front within the target, widened by 10% of the front's range
    (BoTorch's ``infer_reference_point`` convention), so every front point counts.
    """
    y = np.stack([-true_loss, np.log(true_tps)], axis=-1)
    ok = true_loss <= loss_target
    front = y[ok][pareto_mask(y[ok])]
    lo, hi = front[:, 1].min(), front[:, 1].max()
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    return np.array([-loss_target, lo - 0.1 * span])
