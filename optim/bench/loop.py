"""One method on one world: the trial loop (initial trainings, then proposal batches observed
in the world) and what it records (:class:`MethodTrace`)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .config import HV_TARGET, BenchError
from .worlds import World

__all__ = [
    "MethodTrace",
    "choose_final",
    "run_campaign",
    "trainings_to",
]


@dataclass
class MethodTrace:
    """What one method did on one world.

    Attributes:
        trainings: training budget spent after each step, ``(steps,)`` (starts at n_init).
        hv_ratio: HV ratio after each step, same shape.
        trained: candidate indices in training order.
        propose_seconds: wall time of each propose call.
        prior_weight: the law prior's weight at each propose call (NaN for other methods).
        chosen: final choice under the loss target (None when nothing met it).
        regret: see :meth:`World.regret`.
        shortfall: budget slots the method left empty (proposed fewer than ``batch_size``).
        missed: no trained arch was observed under the target, or the choice misses it in truth.
    """

    trainings: list[int] = field(default_factory=list)
    hv_ratio: list[float] = field(default_factory=list)
    trained: list[int] = field(default_factory=list)
    propose_seconds: list[float] = field(default_factory=list)
    prior_weight: list[float] = field(default_factory=list)
    chosen: int | None = None
    regret: float = 1.0
    shortfall: int = 0
    missed: bool = False

    @property
    def trainings_to_95(self) -> int | None:
        """First trainings count with HV ratio >= :data:`HV_TARGET` (None: never, censored)."""
        return trainings_to(np.asarray(self.trainings), np.asarray(self.hv_ratio))


def choose_final(
    world: World, trained: np.ndarray, observed_loss: np.ndarray, observed_tps: np.ndarray
) -> int | None:
    """The fastest (measured) trained architecture whose observed loss meets the target."""
    ok = observed_loss <= world.loss_target
    if not ok.any():
        return None
    return int(trained[ok][np.argmax(observed_tps[ok])])


def run_campaign(
    world: World,
    problem: Any,
    strategy: Any,
    *,
    init_idx: np.ndarray,
    batch_sizes: Sequence[int],
    seed: int,
    choose_at: int | None = None,
    stop_at: float | None = None,
    min_trainings: int = 0,
    on_batch: Callable[[], None] | None = None,
) -> MethodTrace:
    """Run one method on one world.

    Args:
        world: the ground truth (observations are drawn from it).
        problem: what the strategy optimizes (candidates in the world's order).
        strategy: an object with ``propose(problem, observed_idx, observed_loss, k, *,
            pending_idx=None, seed=0)`` returning something with ``indices``.
        init_idx: the initial trainings (shared by all methods for this seed).
        batch_sizes: size of each proposal batch, in order (the most it may spend).
        seed: seeds the observation noise (same for every method) and the strategy.
        choose_at: make the final choice from the first ``choose_at`` trainings (the common
            budget when a method runs longer); default: all.
        stop_at: stop once the HV ratio reaches this and ``min_trainings`` are spent.
        on_batch: called after each batch (progress bars).
    """
    trace = MethodTrace()
    trained = [int(i) for i in init_idx]
    # Same noise stream per (seed, candidate) for every method: fair comparisons.
    noise_rng = lambda i: np.random.default_rng([int(seed), 104729, int(i)])  # noqa: E731
    losses, tps = [], []

    def observe(indices: Sequence[int]) -> None:
        for i in indices:
            loss, speed = world.observe([i], noise_rng(i))
            losses.append(float(loss[0]))
            tps.append(float(speed[0]))

    observe(trained)
    trace.trainings.append(len(trained))
    trace.hv_ratio.append(world.hv_ratio(trained))
    for b, batch_size in enumerate(batch_sizes):
        if (
            stop_at is not None
            and trace.hv_ratio[-1] >= stop_at
            and trace.trainings[-1] >= min_trainings
        ):
            break
        batch_size = min(int(batch_size), world.n - len(trained))
        if batch_size <= 0:
            break
        started = time.perf_counter()
        batch = strategy.propose(
            problem,
            np.asarray(trained, dtype=np.int64),
            np.asarray(losses, dtype=np.float64),
            batch_size,
            seed=int(seed) * 1000 + b,
        )
        trace.propose_seconds.append(time.perf_counter() - started)
        trace.prior_weight.append(float(getattr(batch, "prior_weight", math.nan)))
        new = [int(i) for i in np.asarray(batch.indices).reshape(-1)]
        if any(i < 0 or i >= world.n for i in new):
            raise BenchError(
                f"{type(strategy).__name__} proposed an index outside the {world.n} candidates"
            )
        # A short batch (e.g. Algorithm 1 finds nothing predicted under the target) wastes the
        # rest of its slots: the budget axis advances by batch_size regardless.
        trace.shortfall += batch_size - len(new)
        observe(new)
        trained.extend(new)
        trace.trainings.append(trace.trainings[-1] + batch_size)
        trace.hv_ratio.append(world.hv_ratio(trained))
        if on_batch is not None:
            on_batch()
    trace.trained = trained
    m = len(trained) if choose_at is None else min(int(choose_at), len(trained))
    trace.chosen = choose_final(
        world, np.asarray(trained[:m]), np.asarray(losses[:m]), np.asarray(tps[:m])
    )
    trace.regret = world.regret(trace.chosen)
    trace.missed = trace.chosen is None or bool(world.true_loss[trace.chosen] > world.loss_target)
    return trace


def trainings_to(
    trainings: np.ndarray, hv_curve: np.ndarray, target: float = HV_TARGET
) -> int | None:
    """First number of trainings at which ``hv_curve`` reaches ``target`` (None if never)."""
    hit = np.flatnonzero(np.asarray(hv_curve) >= target - 1e-12)
    return int(np.asarray(trainings)[hit[0]]) if hit.size else None
