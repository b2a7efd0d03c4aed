"""Sample-efficiency benchmark: archopt against the alternatives, on worlds grounded in real data.

For each world kind (:mod:`optim.bench.worlds`: ``held_out_source``, ``real_shapes``, ``shifted``
and the upper bound ``matched``) and seed, every method starts from the same initial trainings
and then proposes batches of ``batch_size`` candidates through the one strategy interface
(:mod:`optim.core.strategies`); each proposal is "trained" by observing the world. Every method
receives the same ``max_loss``: the prior's predicted loss at the reference shape (what a user
would set; no method sees the truth). Scores use the world's noise-free truth:

* **HV ratio** after ``t`` trainings: BoTorch hypervolume of the *true* objectives
  ``(-loss, ln tokens/s)`` of every architecture trained so far, over the hypervolume of all
  candidates (the true Pareto front), reference point from :class:`~optim.bench.worlds.World`.
* **Trainings to 95%**, per seed: the first ``t`` at which that seed's HV ratio reaches 0.95.
  Each (method, seed) runs past the common budget until it gets there or reaches
  ``max_trainings`` (random search: every candidate), so the number is measured, not censored
  at the budget; a seed that hits the cap is *censored* and counted as such. A method's
  ``trainings_to_95`` is the median over seeds (censored seeds count as larger than any
  measured value; ``None`` when more than half are censored).
* **Paired differences** archopt - plain qNEHVI over seeds (same world, same initial runs, same
  noise): HV ratio at the budget and trainings-to-95%, mean with a 95% t-interval.
* **Regret** of the final choice: the fastest (by measured throughput) trained architecture whose
  *observed* loss meets ``max_loss``; ``1 - tps / tps_best`` in truth, and 1 when the choice
  misses the target in truth or nothing meets it.
* **Propose seconds**: wall time of each ``propose`` call.

:func:`run_bench` runs everything, :func:`~.report.write_report` writes ``results.json``,
``report.md`` and PNG plots, :func:`~.real_data.real_data_check` runs the leave-one-size-out
ranking check on the bundled tables. :func:`bench_json` is the ``archopt bench --json``
contract.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from models.errors import ArchoptError

from .worlds import WORLD_KINDS, World

__all__ = [
    "BenchConfig",
    "BenchError",
    "MethodTrace",
    "BenchResult",
    "run_campaign",
    "summarize_method",
    "paired_vs",
    "trainings_to",
    "run_bench",
    "json_default",
    "bench_json",
    "evaluate_targets",
    "prior_without",
    "HV_TARGET",
    "WORLD_KINDS",
]

#: Fraction of the true hypervolume a method must reach.
HV_TARGET: float = 0.95


class BenchError(ArchoptError):
    """Invalid benchmark settings."""


# ---- configuration ------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchConfig:
    """What to benchmark and how big.

    Attributes:
        params: non-embedding parameter budget of the campaign (the candidate set).
        tokens: training tokens.
        hardware, workload: throughput setting (``Workload.parse`` text, e.g. ``"64x4096x1024"``
            or None for the campaign default).
        band: budget band of the candidate set.
        max_candidates: random subset of the candidate set (None = all), drawn once.
        seeds: seeds per world kind and method.
        n_init: initial trainings shared by every method (random candidates, per seed).
        batches, batch_size: proposal budget after the initial trainings (the common budget at
            which HV ratio and regret are compared).
        max_trainings: after the common budget, model-based methods keep proposing batches of
            ``batch_size`` until a seed reaches 95% of the true HV or this many trainings
            (None: every candidate); random search always runs until 95% (it costs nothing).
        methods: strategy names (keys of ``optim.core.strategies.STRATEGIES``).
        worlds: world kinds (:data:`~optim.bench.worlds.WORLD_KINDS`), the first is the headline.
        truth_law, truth_table: the shifted world's law and the one table it is fitted on (least
            squares, Laplace posterior); the shape residual of the shifted and matched worlds is
            measured on that table.
        held_out_table: the table the ``held_out_source`` and ``real_shapes`` worlds come from;
            archopt's prior in those worlds is refitted without it (:func:`prior_without`).
        source: the loss source (scale) of the shifted and matched worlds' campaigns (the
            held-out worlds use the refitted prior's reference source).
        quick: label only (the report says which preset ran).
    """

    params: float = 1e9
    tokens: float = 2e10
    hardware: str = "a100-40gb"
    workload: str | None = None
    band: float = 0.05
    max_candidates: int | None = None
    seeds: int = 20
    n_init: int = 4
    batches: int = 4
    batch_size: int = 4
    max_trainings: int | None = None
    methods: tuple[str, ...] = ("archopt", "plain_qnehvi", "algorithm1", "random")
    worlds: tuple[str, ...] = WORLD_KINDS
    truth_law: str = "aspect_paper"
    truth_table: str = "morph_runs.csv"
    held_out_table: str = "gemstones_runs.csv"
    source: str = "open-lm-morph"
    quick: bool = False

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise BenchError(f"seeds must be >= 1, got {self.seeds}")
        for name in ("n_init", "batches", "batch_size"):
            if getattr(self, name) < 1:
                raise BenchError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_candidates is not None and self.max_candidates < self.n_init + self.batch_size:
            raise BenchError(
                f"max_candidates must be >= n_init + batch_size ({self.n_init + self.batch_size})"
            )
        if self.max_trainings is not None and self.max_trainings < self.budget:
            raise BenchError(
                f"max_trainings must be >= the budget ({self.budget}), got {self.max_trainings}"
            )
        if not self.methods:
            raise BenchError("give at least one method")
        unknown = set(self.worlds) - set(WORLD_KINDS)
        if unknown or not self.worlds:
            raise BenchError(f"world kinds are {', '.join(WORLD_KINDS)}; got {self.worlds}")

    @classmethod
    def full(cls, **overrides: Any) -> "BenchConfig":
        """The full benchmark: every proposable 1B candidate, all four world kinds, 20 seeds."""
        return cls(**overrides)

    @classmethod
    def quick_preset(cls, **overrides: Any) -> "BenchConfig":
        """Under 15 minutes on 2 cores: a 120-candidate subset, all four world kinds, 20 seeds,
        the same budget of 4 initial + 4 batches of 4 trainings, extension to 95% capped at
        48 trainings for the model-based methods."""
        base: dict[str, Any] = dict(max_candidates=120, max_trainings=48, quick=True)
        base.update(overrides)
        return cls(**base)

    @classmethod
    def preset(cls, quick: bool, **overrides: Any) -> "BenchConfig":
        """:meth:`quick_preset` or :meth:`full` with ``overrides``."""
        return cls.quick_preset(**overrides) if quick else cls.full(**overrides)

    @property
    def budget(self) -> int:
        """Trainings per method at the common budget: initial plus proposed."""
        return self.n_init + self.batches * self.batch_size


# ---- one campaign -------------------------------------------------------------------------
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


# ---- summaries ----------------------------------------------------------------------------
def trainings_to(
    trainings: np.ndarray, hv_curve: np.ndarray, target: float = HV_TARGET
) -> int | None:
    """First number of trainings at which ``hv_curve`` reaches ``target`` (None if never)."""
    hit = np.flatnonzero(np.asarray(hv_curve) >= target - 1e-12)
    return int(np.asarray(trainings)[hit[0]]) if hit.size else None


def _t_interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% t-interval ``(mean, lo, hi)`` of ``values`` (``(n,)``)."""
    from scipy import stats

    values = np.asarray(values, float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, mean - half, mean + half


def _median_censored(values: Sequence[int | None]) -> int | None:
    """Median with ``None`` (censored: larger than every measured value) sorting last; None when
    the median itself is censored."""
    finite = sorted(v for v in values if v is not None)
    n = len(values)
    if n == 0:
        return None
    lo, hi = (n - 1) // 2, n // 2
    if hi >= len(finite):
        return None
    return int(round((finite[lo] + finite[hi]) / 2))


def _padded(traces: Sequence[MethodTrace]) -> tuple[np.ndarray, np.ndarray]:
    """Trainings ``(steps,)`` and HV ratios ``seeds x steps`` on the longest trace's axis, each
    seed's last value carried forward after it stopped (it had reached 95% or the cap)."""
    longest = max(traces, key=lambda t: len(t.trainings))
    steps = len(longest.trainings)
    hv = np.array([t.hv_ratio + [t.hv_ratio[-1]] * (steps - len(t.hv_ratio)) for t in traces])
    return np.asarray(longest.trainings), hv


def summarize_method(traces: Sequence[MethodTrace], budget: int) -> dict[str, Any]:
    """Statistics of one method over seeds (JSON-able).

    ``trainings_to_95`` is the median over seeds of each seed's trainings-to-95% (see the
    module docstring); ``final_hv_ratio`` is the mean HV ratio at ``budget`` trainings (the
    common budget, even when a method ran longer).
    """
    trainings, hv = _padded(traces)
    at_budget = int(np.searchsorted(trainings, budget, side="right")) - 1
    per_seed = [t.trainings_to_95 for t in traces]
    reached = [v for v in per_seed if v is not None]
    mean_b, lo_b, hi_b = _t_interval(hv[:, at_budget])
    seconds = [s for t in traces for s in t.propose_seconds]
    weights = [w for t in traces for w in t.prior_weight if math.isfinite(w)]
    regrets = np.array([t.regret for t in traces])
    r_mean, r_lo, _ = _t_interval(regrets)
    curve_mean = hv.mean(0)
    curve_half = np.array(
        [(_t_interval(hv[:, j])[2] - _t_interval(hv[:, j])[1]) / 2 for j in range(hv.shape[1])]
    )
    return {
        "trainings_to_95": _median_censored(per_seed),
        "trainings_to_95_per_seed": per_seed,
        "seeds_reaching_95": len(reached),
        "censored_at": [int(t.trainings[-1]) for t in traces if t.trainings_to_95 is None],
        "final_hv_ratio": float(mean_b),
        "final_hv_ratio_ci95": [float(lo_b), float(hi_b)],
        "propose_seconds": float(np.mean(seconds)) if seconds else 0.0,
        "propose_seconds_max": float(np.max(seconds)) if seconds else 0.0,
        "prior_weight_mean": float(np.mean(weights)) if weights else None,
        "regret": float(r_mean),
        "regret_ci95_half": float(r_mean - r_lo),
        "target_miss_rate": float(np.mean([t.missed for t in traces])),
        "regret_when_hit": (
            float(np.mean([t.regret for t in traces if not t.missed]))
            if any(not t.missed for t in traces)
            else None
        ),
        "empty_slots_per_seed": float(np.mean([t.shortfall for t in traces])),
        "trainings": trainings.tolist(),
        "hv_ratio_mean": curve_mean.tolist(),
        "hv_ratio_ci95_half": curve_half.tolist(),
        "hv_ratio_per_seed": [t.hv_ratio for t in traces],
        "trainings_per_seed": [t.trainings for t in traces],
        "prior_weight_per_seed": [t.prior_weight for t in traces],
    }


def paired_vs(a: Sequence[MethodTrace], b: Sequence[MethodTrace], budget: int) -> dict[str, Any]:
    """Paired differences ``a - b`` over seeds (same worlds, initial runs and noise).

    Returns:
        ``hv_diff_mean`` and ``hv_diff_ci95`` ``[lo, hi]`` (HV ratio at ``budget``);
        ``trainings_to_95_ratio`` (``a``'s median trainings-to-95% over ``b``'s, None when either
        is censored); ``trainings_to_95_diff_mean`` / ``_ci95`` over the seeds where both
        reached 95% (``n_both_reached`` of them); per-step ``hv_diff_curve`` (mean, CI) up to
        the shorter padded axis.
    """
    ta, hva = _padded(a)
    tb, hvb = _padded(b)
    ia = int(np.searchsorted(ta, budget, side="right")) - 1
    ib = int(np.searchsorted(tb, budget, side="right")) - 1
    mean, lo, hi = _t_interval(hva[:, ia] - hvb[:, ib])
    ma = _median_censored([t.trainings_to_95 for t in a])
    mb = _median_censored([t.trainings_to_95 for t in b])
    both = [
        (x.trainings_to_95, y.trainings_to_95)
        for x, y in zip(a, b)
        if x.trainings_to_95 is not None and y.trainings_to_95 is not None
    ]
    d_mean: float | None = None  # stays None when no paired seed reached 95%
    d_lo: float | None = None
    d_hi: float | None = None
    if both:
        d_mean, d_lo, d_hi = _t_interval(np.array([x - y for x, y in both], float))
    steps = min(len(ta), len(tb))
    diff = hva[:, :steps] - hvb[:, :steps]
    curve = [_t_interval(diff[:, j]) for j in range(steps)]
    return {
        "hv_diff_mean": float(mean),
        "hv_diff_ci95": [float(lo), float(hi)],
        "trainings_to_95_ratio": (None if ma is None or mb is None or mb == 0 else float(ma / mb)),
        "trainings_to_95_diff_mean": d_mean,
        "trainings_to_95_diff_ci95": None if d_mean is None else [d_lo, d_hi],
        "n_both_reached": len(both),
        "a_reached_only": sum(
            x.trainings_to_95 is not None and y.trainings_to_95 is None for x, y in zip(a, b)
        ),
        "b_reached_only": sum(
            x.trainings_to_95 is None and y.trainings_to_95 is not None for x, y in zip(a, b)
        ),
        "hv_diff_curve": {
            "trainings": ta[:steps].tolist(),
            "mean": [c[0] for c in curve],
            "ci95": [[c[1], c[2]] for c in curve],
        },
    }


#: The issue's targets per world kind: (other method, factor) pairs archopt's
#: trainings-to-95% must meet (``mine <= factor * theirs``).
TARGET_RATIOS: dict[str, tuple[tuple[str, float], ...]] = {
    "held_out_source": (("plain_qnehvi", 0.75),),
    "real_shapes": (("plain_qnehvi", 0.75),),
    "shifted": (("plain_qnehvi", 1.0),),
    "matched": (("plain_qnehvi", 0.5), ("random", 1 / 3)),
}


def evaluate_targets(
    kind: str, methods: Mapping[str, Mapping[str, Any]], paired: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The issue's targets for world ``kind``, each ``{"met": bool | None, "detail": str}``
    (``None``: the data cannot decide, e.g. both medians censored)."""
    out: dict[str, Any] = {}
    mine = methods.get("archopt", {}).get("trainings_to_95")
    for other, factor in dict.fromkeys(TARGET_RATIOS.get(kind, ()) + (("plain_qnehvi", 1.0),)):
        key = f"trainings_to_95_vs_{other}_x{factor:.2g}"
        if "archopt" not in methods or other not in methods:
            out[key] = {"met": None, "detail": f"archopt or {other} not run"}
            continue
        theirs = methods[other]["trainings_to_95"]
        if mine is None and theirs is None:
            out[key] = {"met": None, "detail": "neither reached 95% in more than half the seeds"}
        elif mine is None:
            out[key] = {"met": False, "detail": f"archopt's median is censored; {other} {theirs}"}
        elif theirs is None:
            out[key] = {"met": True, "detail": f"archopt {mine}; {other}'s median is censored"}
        else:
            out[key] = {
                "met": mine <= factor * theirs + 1e-9,
                "detail": f"archopt {mine} vs {other} {theirs} (ratio "
                f"{mine / theirs:.2f}, target <= {factor:.2f})",
            }
    if paired is not None:
        lo, hi = paired["hv_diff_ci95"]
        out["hv_diff_ci_upper_ge_0"] = {
            "met": hi >= 0.0,
            "detail": f"archopt - plain qNEHVI HV at the budget: {paired['hv_diff_mean']:+.3f} "
            f"[{lo:+.3f}, {hi:+.3f}]",
        }
    return out


# ---- report -------------------------------------------------------------------------------
@dataclass
class BenchResult:
    """Everything a report needs (JSON-able through :meth:`to_dict`).

    Attributes:
        config: the settings that ran.
        worlds: kind -> {"kind", "methods": name -> summary, "paired_vs_plain_qnehvi",
            "vs_algorithm1", "targets", "world_info": per-seed provenance, "n_candidates",
            "max_loss", "prior": provenance of archopt's prior there}.
        real_data: the leave-one-size-out check (None when skipped).
        setup: prior/truth provenance (laws, sources, noise and residual estimates).
        seconds: total wall time.
        load: 1-minute load average at the start and the end of the run.
    """

    config: BenchConfig
    worlds: dict[str, dict[str, Any]]
    real_data: dict[str, Any] | None = None
    setup: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    load: list[float] = field(default_factory=list)

    @property
    def headline(self) -> str:
        return self.config.worlds[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": dataclasses.asdict(self.config),
            "worlds_detail": self.worlds,
            "real_data": self.real_data,
            "setup": self.setup,
            "seconds": self.seconds,
            "load": self.load,
            **bench_json(self),
        }


#: Per-method keys of the ``--json`` contract's ``worlds`` entries, and of its headline block.
WORLD_METHOD_KEYS: tuple[str, ...] = ("trainings_to_95", "final_hv_ratio", "propose_seconds")
HEADLINE_METHOD_KEYS: tuple[str, ...] = WORLD_METHOD_KEYS + ("regret",)
PAIRED_KEYS: tuple[str, ...] = ("hv_diff_mean", "hv_diff_ci95", "trainings_to_95_ratio")


def bench_json(result: BenchResult) -> dict[str, Any]:
    """The CLI's ``--json`` payload (a contract other tools read).

    ``{"methods": {NAME: {"trainings_to_95", "final_hv_ratio", "propose_seconds", "regret"}},
    "seeds": n, "world": headline kind, "targets": {...}`` (the headline world, as before) and
    ``"worlds": {name: {"kind": "held_out_source" | "real_shapes" | "shifted" | "matched",
    "methods": {NAME: {"trainings_to_95": int | null, "final_hv_ratio": float,
    "propose_seconds": float}}, "paired_vs_plain_qnehvi": {"hv_diff_mean": float,
    "hv_diff_ci95": [lo, hi], "trainings_to_95_ratio": float | null}}}``
    (``paired_vs_plain_qnehvi`` is null when archopt or plain qNEHVI did not run).
    """
    head = result.worlds[result.headline]
    worlds = {}
    for name, w in result.worlds.items():
        paired = w.get("paired_vs_plain_qnehvi")
        worlds[name] = {
            "kind": w["kind"],
            "methods": {m: {k: s[k] for k in WORLD_METHOD_KEYS} for m, s in w["methods"].items()},
            "paired_vs_plain_qnehvi": (
                None if paired is None else {k: paired[k] for k in PAIRED_KEYS}
            ),
        }
    return {
        "methods": {m: {k: s[k] for k in HEADLINE_METHOD_KEYS} for m, s in head["methods"].items()},
        "seeds": result.config.seeds,
        "world": result.headline,
        "targets": head.get("targets", {}),
        "worlds": worlds,
    }


def json_default(value: Any) -> Any:
    """``json.dumps`` default for numpy scalars and arrays."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


# ---- priors and truths --------------------------------------------------------------------
def shifted_truth(config: BenchConfig, law: str | None = None, table: str | None = None) -> Any:
    """A world's law: ``law`` (default ``truth_law``) least-squares fitted on ``table`` (default
    ``truth_table``) alone, as a Laplace posterior."""
    from surrogate.lsq import fit_lsq
    from surrogate.runs import bundled_path, load_runs

    runs = load_runs(bundled_path(table or config.truth_table))
    return fit_lsq(runs, law or config.truth_law).to_posterior(1000)


def prior_without(table: str, *, progress: bool = True) -> Any:
    """archopt's default prior refitted without one bundled ``table`` (same rows rule and NUTS
    settings as :func:`surrogate.prior.default_prior`), cached under
    ``$ARCHOPT_HOME/posteriors/`` by a hash of the rows and settings (a minute or two to fit
    on 2 cores the first time)."""
    from models.home import archopt_home
    from surrogate.bayes import MODEL_REVISION, fit_bayes
    from surrogate.posterior import LawPosterior, PosteriorError
    from surrogate.prior import DEFAULT_PRIOR_SETTINGS, default_prior_runs
    from surrogate.runs import bundled_path, bundled_runs, load_runs

    drop = load_runs(bundled_path(table))
    runs = bundled_runs()
    held = set(zip(drop["source"].astype(str), drop["run"].astype(str)))
    keep = [(s, r) not in held for s, r in zip(runs["source"].astype(str), runs["run"].astype(str))]
    rows = default_prior_runs(runs[keep].reset_index(drop=True))
    payload = rows.to_csv(index=False) + json.dumps(
        {**DEFAULT_PRIOR_SETTINGS, "model_revision": MODEL_REVISION}, sort_keys=True
    )
    key = hashlib.sha256(payload.encode()).hexdigest()[:16]
    path = archopt_home() / "posteriors" / f"bench-prior-without-{table.split('.')[0]}-{key}.nc"
    if path.is_file():
        try:
            return LawPosterior.load(path)
        except PosteriorError:
            path.unlink(missing_ok=True)  # a corrupt cache file is refitted
    settings = dict(DEFAULT_PRIOR_SETTINGS)
    law = settings.pop("law")
    posterior = fit_bayes(rows, law, progress=progress, **settings)
    posterior.info["held_out_table"] = table
    posterior.save(path)
    return posterior


def _strategies(names: Sequence[str]) -> dict[str, Any]:
    from optim.core.strategies import STRATEGIES

    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise BenchError(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(STRATEGIES)}")
    return {name: STRATEGIES[name]() for name in names}


def _candidates(config: BenchConfig, prior: Any) -> tuple[list[Any], Any]:
    """The benchmark's candidate set: proposable candidates of the campaign (a seeded subset
    when ``max_candidates``), and the campaign spec."""
    from optim.core.problem import CampaignSpec, Problem

    kwargs = dict(
        name="bench",
        params=config.params,
        tokens=config.tokens,
        hardware=config.hardware,
        band=config.band,
        source=config.source,
        law=prior.law,
    )
    if config.workload:
        kwargs["workload"] = config.workload
    spec = CampaignSpec(**kwargs)
    full = Problem.build(spec, prior, measurement_cache=False)
    usable = np.flatnonzero(full.proposable)
    if config.max_candidates is not None and usable.size > config.max_candidates:
        usable = np.sort(
            np.random.default_rng(12345).choice(usable, config.max_candidates, replace=False)
        )
    return [full.candidates[i] for i in usable], spec


def prior_vs_truth(prior_mean: np.ndarray, true_loss: np.ndarray) -> dict[str, float]:
    """How well archopt's prior knows a world before any run: Spearman rank correlation of the
    prior-mean loss with the true loss over the candidates."""
    from scipy.stats import spearmanr

    return {"prior_spearman": float(spearmanr(prior_mean, true_loss).statistic)}


@dataclass
class _WorldSetup:
    """What one world kind needs: archopt's prior and problem, the truth, residual settings."""

    kind: str
    prior: Any
    problem: Any
    truth: Any
    truth_info: dict[str, Any]
    residual: float
    residual_columns: tuple[int, ...]
    max_loss: float


def _world_setups(
    config: BenchConfig,
    prior: Any,
    candidates: list[Any],
    spec: Any,
    reference: Any,
    progress: bool,
    truths: Mapping[str, Any] | None,
) -> dict[str, _WorldSetup]:
    from optim.core.problem import N_LAW_DRAWS, Problem
    from surrogate.laws import law_features
    from surrogate.runs import bundled_path, load_runs

    from .worlds import (
        estimate_run_noise,
        estimate_shape_residual,
        fit_shape_effect,
        law_truth,
        shape_effect_truth,
    )

    noise = estimate_run_noise()
    truths = dict(truths or {})
    held = None
    out: dict[str, _WorldSetup] = {}
    for kind in config.worlds:
        if kind in ("held_out_source", "real_shapes"):
            if held is None:
                held = truths.get("prior_without") or prior_without(
                    config.held_out_table, progress=progress
                )
            kind_prior, source = held, None
        else:
            kind_prior, source = prior, config.source
        kind_spec = dataclasses.replace(spec, source=source)
        ref_feats = law_features([reference], config.tokens)
        max_loss = float(
            np.mean(kind_prior.law_draws(ref_feats, source=source, n_draws=N_LAW_DRAWS))
        )
        problem = Problem.build(
            dataclasses.replace(kind_spec, max_loss=max_loss),
            kind_prior,
            measurement_cache=False,
            candidates=candidates,
        )
        cols: tuple[int, ...]
        if kind == "matched":
            law = truths.get("matched", prior)
            truth, info = (
                law_truth(law, source),
                {"law": law.law, "fit": law.method, "table": "every bundled table (the prior)"},
            )
            table, cols = config.truth_table, (0, 1, 2, 3)
        elif kind == "shifted":
            law = truths.get("shifted") or shifted_truth(config)
            truth, info = (
                law_truth(law, source),
                {"law": law.law, "fit": law.method, "table": config.truth_table},
            )
            table, cols = config.truth_table, (0, 1, 2, 3)
        elif kind == "held_out_source":
            law = truths.get("held_out_source") or shifted_truth(
                config, law=prior.law, table=config.held_out_table
            )
            truth, info = (
                law_truth(law, law.reference_source),
                {"law": law.law, "fit": law.method, "table": config.held_out_table},
            )
            table, cols = config.held_out_table, (0, 1, 2, 3)
        else:  # real_shapes
            effect = fit_shape_effect(config.held_out_table)
            law = prior
            truth, info = (
                shape_effect_truth(effect),
                {
                    "law": None,
                    "fit": "GP smoother of real per-shape losses",
                    "table": config.held_out_table,
                    "shape_effect": {
                        "u": effect.u.tolist(),
                        "effect": effect.effect.tolist(),
                        "size_slope": effect.size_slope,
                    },
                },
            )
            table, cols = config.truth_table, (1, 3)  # ln r, ln GQA: what Gemstones never varies
        residual_runs = load_runs(bundled_path(table))
        residual = estimate_shape_residual(law, residual_runs, noise.rel_sigma)
        out[kind] = _WorldSetup(
            kind,
            kind_prior,
            problem,
            truth,
            {
                **info,
                "residual_table": table,
                "prior": {
                    "law": kind_prior.law,
                    "method": kind_prior.method,
                    "sources": list(kind_prior.sources),
                    "held_out_table": kind_prior.info.get("held_out_table"),
                },
                "campaign_source": source,
            },
            residual,
            cols,
            max_loss,
        )
    return out


def run_bench(
    config: BenchConfig,
    *,
    prior: Any = None,
    truths: Mapping[str, Any] | None = None,
    progress: bool = True,
    real_data: bool = True,
) -> BenchResult:
    """Run every method on every world kind and seed (see the module docstring).

    Args:
        config: sizes and methods.
        prior: archopt's law posterior (default: the campaign's ``surrogate.default_prior()``).
        truths: overrides (tests): ``"prior_without"`` -> the prior refitted without the held-out
            table; a world kind -> the law posterior of its truth.
        progress: rich progress bar.
        real_data: also run :func:`~.real_data.real_data_check`.
    """
    import os

    import torch

    started = time.perf_counter()
    load = [os.getloadavg()[0]]
    # One intra-op thread: the models are tiny, and on a shared 2-core machine torch's thread
    # pool spends most of its time contending (measured: 6x slower proposals with 2 threads
    # under a load of 5). Restored on return.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(config, prior, truths, progress, real_data, started, load)
    finally:
        torch.set_num_threads(threads)


def _run(
    config: BenchConfig,
    prior: Any,
    truths: Mapping[str, Any] | None,
    progress: bool,
    real_data: bool,
    started: float,
    load: list[float],
) -> BenchResult:
    import os

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .worlds import estimate_run_noise, make_world, reference_shape

    strategies = _strategies(config.methods)  # unknown names fail before any fitting
    if prior is None:
        from surrogate import default_prior

        prior = default_prior(progress=progress)
    candidates, spec = _candidates(config, prior)
    reference = reference_shape(
        config.params,
        band=config.band,
        vocab_size=spec.vocab_size,
        tie_embeddings=spec.tie_embeddings,
    )
    setups = _world_setups(config, prior, candidates, spec, reference, progress, truths)
    noise = estimate_run_noise()
    first = next(iter(setups.values())).problem
    cap = len(candidates) if config.max_trainings is None else int(config.max_trainings)
    setup = {
        "n_candidates": len(candidates),
        "reference_shape": reference.label(),
        "noise": dataclasses.asdict(noise),
        "worlds": {
            k: {
                "truth": s.truth_info,
                "shape_residual_rel_sigma": s.residual,
                "residual_columns": list(s.residual_columns),
                "max_loss": s.max_loss,
            }
            for k, s in setups.items()
        },
        "spec": {
            "params": spec.params,
            "tokens": spec.tokens,
            "hardware": spec.hardware,
            "workload": str(spec.workload),
            "band": spec.band,
        },
        "max_trainings": cap,
    }
    worlds_out: dict[str, dict[str, Any]] = {}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    # Progress goes to stderr so ``--json`` output on stdout stays machine-readable.
    with Progress(
        *columns, disable=not progress, transient=False, console=Console(stderr=True)
    ) as bar:
        task = bar.add_task("bench", total=len(setups) * config.seeds * len(strategies))
        for kind, ws in setups.items():
            traces: dict[str, list[MethodTrace]] = {m: [] for m in config.methods}
            infos = []
            for seed in range(config.seeds):
                world = make_world(
                    candidates,
                    config.tokens,
                    truth=ws.truth,
                    reference=reference,
                    max_loss=ws.max_loss,
                    throughput_model=first.throughput_mean,
                    seed=seed,
                    noise=noise,
                    residual_rel_sigma=ws.residual,
                    residual_columns=ws.residual_columns,
                    kind=kind,
                    name=f"{kind}-{seed}",
                )
                init_idx = np.random.default_rng([seed, 31337]).choice(
                    world.n, config.n_init, replace=False
                )
                infos.append(
                    {
                        **{k: v for k, v in world.info.items() if k not in ("noise_method",)},
                        "true_pareto_size": int(world.pareto_indices.size),
                        **prior_vs_truth(ws.problem.law_mean(), world.true_loss),
                    }
                )
                for name, strategy in strategies.items():
                    bar.update(task, description=f"{kind} seed {seed} {name}")
                    limit = len(candidates) if name == "random" else cap
                    steps = math.ceil(max(limit - config.n_init, 0) / config.batch_size)
                    traces[name].append(
                        run_campaign(
                            world,
                            ws.problem,
                            strategy,
                            init_idx=init_idx,
                            batch_sizes=[config.batch_size] * steps,
                            seed=seed,
                            choose_at=config.budget,
                            stop_at=HV_TARGET,
                            min_trainings=config.budget,
                        )
                    )
                    bar.advance(task)
            methods = {m: summarize_method(t, config.budget) for m, t in traces.items()}
            paired = (
                paired_vs(traces["archopt"], traces["plain_qnehvi"], config.budget)
                if {"archopt", "plain_qnehvi"} <= set(traces)
                else None
            )
            vs_alg1 = (
                paired_vs(traces["archopt"], traces["algorithm1"], config.budget)
                if {"archopt", "algorithm1"} <= set(traces)
                else None
            )
            worlds_out[kind] = {
                "kind": kind,
                "methods": methods,
                "paired_vs_plain_qnehvi": paired,
                "vs_algorithm1": vs_alg1,
                "targets": evaluate_targets(kind, methods, paired),
                "world_info": infos,
                "n_candidates": len(candidates),
                "max_loss": ws.max_loss,
            }
    result = BenchResult(config=config, worlds=worlds_out, setup=setup)
    if real_data:
        from .real_data import real_data_check

        result.real_data = real_data_check(progress=progress)
    result.seconds = time.perf_counter() - started
    load.append(os.getloadavg()[0])
    result.load = load
    return result
