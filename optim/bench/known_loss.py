"""A reference method that knows every candidate's true loss (:class:`KnownLossStrategy`).

It is not an optimizer anyone can run: it reads the world's noise-free loss of every candidate,
but, like every method, sees only the *modelled* throughput (the true one differs from it by
the world's throughput error). So its trainings-to-95% is a floor that no loss model -- prior
or not -- can beat in that world: whatever the remaining count, it comes from not knowing the
true throughput. Reports show it next to the targets stated as ratios to plain qNEHVI.

Order: the candidates whose true loss meets the target, by non-dominated layers in
``(-true loss, ln modelled tokens/s)`` (the first layer is the front the method believes in),
within a layer greedily by hypervolume gain; then the rest, fastest first.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .hypervolume import hypervolume, pareto_mask
from .worlds import World

__all__ = ["KnownLossStrategy", "known_loss_order"]


def known_loss_order(world: World, model_tokens_per_s: np.ndarray) -> np.ndarray:
    """Every candidate index ``(n,)`` in the order :class:`KnownLossStrategy` trains them."""
    tps = np.log(np.asarray(model_tokens_per_s, dtype=np.float64))
    y = np.stack([-world.true_loss, tps], axis=-1)  # (n, 2), both maximized
    ref = np.array([-world.loss_target, tps.min() - 1e-9])
    left = list(np.flatnonzero(world.true_loss <= world.loss_target))
    order: list[int] = []
    while left:
        pts = np.asarray(left)
        layer = list(pts[pareto_mask(y[pts])])
        while layer:  # greedy HV gain within the layer
            base = hypervolume(y[order], ref) if order else 0.0
            gains = [hypervolume(y[order + [i]], ref) - base for i in layer]
            best = layer.pop(int(np.argmax(gains)))
            order.append(int(best))
        done = set(order)
        left = [i for i in left if i not in done]
    rest = np.setdiff1d(np.arange(world.n), order)
    order += [int(i) for i in rest[np.argsort(-tps[rest], kind="stable")]]
    return np.asarray(order, dtype=np.int64)


class KnownLossStrategy:
    """Trains :func:`known_loss_order` of one world (the strategy interface of
    :mod:`optim.core.strategies`; build one per world)."""

    name = "known_loss"

    def __init__(self, world: World, model_tokens_per_s: np.ndarray) -> None:
        self.tokens_per_s = np.asarray(model_tokens_per_s, dtype=np.float64)
        self.order = known_loss_order(world, self.tokens_per_s)

    def propose(
        self,
        problem: Any,
        observed_idx: Any,
        observed_loss: Any,
        k: int,
        *,
        pending_idx: Any = None,
        seed: int = 0,
    ) -> Any:
        from optim.core.strategies import ProposalBatch

        start = time.perf_counter()
        used = set(np.asarray(observed_idx, dtype=np.int64).tolist())
        if pending_idx is not None:
            used |= set(np.asarray(pending_idx, dtype=np.int64).tolist())
        chosen = np.asarray([i for i in self.order if i not in used][: int(k)], dtype=np.int64)
        nan = np.full(len(chosen), np.nan)
        return ProposalBatch(
            indices=chosen,
            pred_loss_mean=nan.copy(),
            pred_loss_q05=nan.copy(),
            pred_loss_q95=nan.copy(),
            pred_tokens_per_s=self.tokens_per_s[chosen],
            ehvi=nan.copy(),
            seconds=time.perf_counter() - start,
            strategy=self.name,
        )
