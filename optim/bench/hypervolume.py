"""Pareto front, hypervolume and the scoring reference point of a world, in the objective space
``(-loss, ln tokens/s)`` (both maximized): the front and hypervolume of
:mod:`optim.core.front`, and the reference point the benchmark scores against."""

from __future__ import annotations

import numpy as np

from optim.core.front import hypervolume, pareto_mask

__all__ = [
    "pareto_mask",
    "hypervolume",
    "reference_point",
]


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
