"""Sample-efficiency benchmark: archopt against the alternatives, on worlds grounded in real data.

For each world kind (:mod:`optim.bench.worlds`) and seed, every method starts from the same initial
trainings and then proposes ``batches`` batches of ``batch_size`` candidates through the one
strategy interface (:mod:`optim.core.strategies`); each proposal is "trained" by observing the world.
Scores use the world's noise-free truth:

* **HV ratio** after ``t`` trainings: BoTorch hypervolume of the *true* objectives
  ``(-loss, tokens/s)`` of every architecture trained so far, over the hypervolume of all
  candidates (the true Pareto front), reference point from :class:`~optim.bench.worlds.World`.
* **Trainings to 95%**: the first ``t`` at which the mean HV ratio over seeds reaches 0.95
  (None if it never does within the budget). Random search costs nothing to propose, so it is run
  ``random_extra_batches`` further batches to measure its number instead of censoring it.
* **Regret** of the final choice: the fastest (by measured throughput) trained architecture whose
  *observed* loss meets the world's loss target; ``1 - tps / tps_best`` in truth, and 1 when the
  choice misses the target in truth or nothing meets it.
* **Propose seconds**: wall time of each ``propose`` call.

:func:`run_bench` runs everything, :func:`~.report.write_report` writes ``results.json``, ``report.md``
and PNG plots, :func:`~.real_data.real_data_check` runs the leave-one-size-out ranking check on the bundled
tables.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from models.errors import ArchoptError

from .worlds import World

__all__ = [
    "BenchConfig",
    "BenchError",
    "MethodTrace",
    "BenchResult",
    "run_campaign",
    "summarize_method",
    "trainings_to",
    "run_bench",
    "json_default",
    "bench_json",
    "HV_TARGET",
    "WORLD_KINDS",
]

#: World kinds: the truth's law is ``shifted`` = ``truth_law`` fitted on ``truth_table``
#: (another law family); ``refit`` = archopt's law family least-squares fitted on
#: ``truth_table`` alone (same family, other data and fit); ``matched`` = archopt's own prior.
WORLD_KINDS: tuple[str, ...] = ("shifted", "refit", "matched")
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
        extra_batches: further batches of ``batch_size`` every method runs after the common
            budget, only to measure its trainings-to-95% instead of censoring it.
        random_extra_batches: further random-search batches (of ``random_extra_batch_size``,
            default ``n_candidates // 10``) to measure its trainings-to-95%; random proposals do
            not depend on batch boundaries, so larger batches only coarsen the curve.
        methods: strategy names (keys of ``optim.core.strategies.STRATEGIES``).
        worlds: world kinds (:data:`WORLD_KINDS`), the first is the headline.
        truth_law, truth_table: the shifted world's law and the one table it is fitted on (least
            squares, Laplace posterior); also the table the shape residual is measured on.
        source: the loss source (scale) of the campaign and of every world.
        loss_target_quantile: the loss target is this quantile of a world's true losses.
        quick: label only (the report says which preset ran).
    """

    params: float = 1e9
    tokens: float = 2e10
    hardware: str = "a100-40gb"
    workload: str | None = None
    band: float = 0.05
    max_candidates: int | None = None
    seeds: int = 10
    n_init: int = 4
    batches: int = 4
    batch_size: int = 4
    extra_batches: int = 20
    random_extra_batches: int = 10
    random_extra_batch_size: int | None = None
    methods: tuple[str, ...] = ("archopt", "plain_qnehvi", "algorithm1", "random")
    worlds: tuple[str, ...] = ("shifted", "refit", "matched")
    truth_law: str = "aspect_paper"
    truth_table: str = "morph_runs.csv"
    source: str = "open-lm-morph"
    loss_target_quantile: float = 0.25
    quick: bool = False

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise BenchError(f"seeds must be >= 1, got {self.seeds}")
        for name in ("n_init", "batches", "batch_size"):
            if getattr(self, name) < 1:
                raise BenchError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.random_extra_batches < 0 or self.extra_batches < 0:
            raise BenchError("extra_batches and random_extra_batches must be >= 0")
        if self.max_candidates is not None and self.max_candidates < self.n_init + self.batch_size:
            raise BenchError(f"max_candidates must be >= n_init + batch_size "
                             f"({self.n_init + self.batch_size})")
        if not self.methods:
            raise BenchError("give at least one method")
        unknown = set(self.worlds) - set(WORLD_KINDS)
        if unknown or not self.worlds:
            raise BenchError(f"world kinds are {', '.join(WORLD_KINDS)}; got {self.worlds}")
        if not 0.0 < self.loss_target_quantile < 1.0:
            raise BenchError("loss_target_quantile must lie in (0, 1)")

    @classmethod
    def full(cls, **overrides: Any) -> "BenchConfig":
        """The full benchmark: every proposable 1B candidate, all three world kinds, 10 seeds."""
        return cls(**overrides)

    @classmethod
    def quick_preset(cls, **overrides: Any) -> "BenchConfig":
        """Under 10 minutes on 2 cores: a 200-candidate subset, the shifted world only; same
        budget of 4 initial + 4 batches of 4 trainings."""
        base = dict(max_candidates=200, worlds=("shifted",), quick=True)
        base.update(overrides)
        return cls(**base)

    @classmethod
    def preset(cls, quick: bool, **overrides: Any) -> "BenchConfig":
        """:meth:`quick_preset` or :meth:`full` with ``overrides``. ``extra_batches=0`` (report
        trainings-to-95% censored at the common budget) also stops random search's extra
        batches unless ``random_extra_batches`` is given."""
        if overrides.get("extra_batches") == 0:
            overrides.setdefault("random_extra_batches", 0)
        return cls.quick_preset(**overrides) if quick else cls.full(**overrides)

    @property
    def budget(self) -> int:
        """Trainings per method: initial plus proposed."""
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
        chosen: final choice under the loss target (None when nothing met it).
        regret: see :meth:`World.regret`.
        shortfall: budget slots the method left empty (proposed fewer than ``batch_size``).
        missed: no trained arch was observed under the target, or the choice misses it in truth.
    """

    trainings: list[int] = field(default_factory=list)
    hv_ratio: list[float] = field(default_factory=list)
    trained: list[int] = field(default_factory=list)
    propose_seconds: list[float] = field(default_factory=list)
    chosen: int | None = None
    regret: float = 1.0
    shortfall: int = 0
    missed: bool = False


def choose_final(world: World, trained: np.ndarray, observed_loss: np.ndarray,
                 observed_tps: np.ndarray) -> int | None:
    """The fastest (measured) trained architecture whose observed loss meets the target."""
    ok = observed_loss <= world.loss_target
    if not ok.any():
        return None
    return int(trained[ok][np.argmax(observed_tps[ok])])


def run_campaign(world: World, problem: Any, strategy: Any, *, init_idx: np.ndarray,
                 batch_sizes: Sequence[int], seed: int, choose_at: int | None = None,
                 on_batch: Callable[[], None] | None = None) -> MethodTrace:
    """Run one method on one world.

    Args:
        world: the ground truth (observations are drawn from it).
        problem: what the strategy optimizes (candidates in the world's order).
        strategy: an object with ``propose(problem, observed_idx, observed_loss, k, *,
            pending_idx=None, seed=0)`` returning something with ``indices``.
        init_idx: the initial trainings (shared by all methods for this seed).
        batch_sizes: size of each proposal batch, in order (the budget).
        seed: seeds the observation noise (same for every method) and the strategy.
        choose_at: make the final choice from the first ``choose_at`` trainings (the common
            budget when a method runs longer); default: all.
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
        batch_size = min(int(batch_size), world.n - len(trained))
        if batch_size <= 0:
            break
        started = time.perf_counter()
        batch = strategy.propose(problem, np.asarray(trained, dtype=np.int64),
                                 np.asarray(losses, dtype=np.float64), batch_size,
                                 seed=int(seed) * 1000 + b)
        trace.propose_seconds.append(time.perf_counter() - started)
        new = [int(i) for i in np.asarray(batch.indices).reshape(-1)]
        if any(i < 0 or i >= world.n for i in new):
            raise BenchError(f"{type(strategy).__name__} proposed an index outside the "
                             f"{world.n} candidates")
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
    trace.chosen = choose_final(world, np.asarray(trained[:m]), np.asarray(losses[:m]),
                                np.asarray(tps[:m]))
    trace.regret = world.regret(trace.chosen)
    trace.missed = trace.chosen is None or bool(world.true_loss[trace.chosen] > world.loss_target)
    return trace


# ---- summaries ----------------------------------------------------------------------------
def trainings_to(trainings: np.ndarray, hv_curve: np.ndarray, target: float = HV_TARGET
                 ) -> int | None:
    """First number of trainings at which ``hv_curve`` reaches ``target`` (None if never)."""
    hit = np.flatnonzero(np.asarray(hv_curve) >= target - 1e-12)
    return int(np.asarray(trainings)[hit[0]]) if hit.size else None


def _mean_ci(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and half-width of a 95% t-interval across ``axis``."""
    from scipy import stats

    values = np.asarray(values, float)
    n = values.shape[axis]
    mean = values.mean(axis=axis)
    if n < 2:
        return mean, np.zeros_like(mean)
    half = stats.t.ppf(0.975, n - 1) * values.std(axis=axis, ddof=1) / math.sqrt(n)
    return mean, half


def summarize_method(traces: Sequence[MethodTrace], budget: int) -> dict[str, Any]:
    """Statistics of one method over seeds (JSON-able).

    ``trainings_to_95`` comes from the mean HV curve; ``final_hv_ratio`` is the mean HV ratio
    at ``budget`` trainings (the common budget, even when a method ran longer).
    """
    steps = min(len(t.hv_ratio) for t in traces)
    trainings = np.asarray(traces[0].trainings[:steps])
    hv = np.array([t.hv_ratio[:steps] for t in traces])
    mean, half = _mean_ci(hv)
    at_budget = int(np.searchsorted(trainings, budget, side="right")) - 1
    per_seed = [trainings_to(trainings, row) for row in hv]
    reached = [v for v in per_seed if v is not None]
    seconds = [s for t in traces for s in t.propose_seconds]
    regrets = np.array([t.regret for t in traces])
    r_mean, r_half = _mean_ci(regrets)
    return {
        "trainings_to_95": trainings_to(trainings, mean),
        "final_hv_ratio": float(mean[at_budget]),
        "final_hv_ratio_ci95": float(half[at_budget]),
        "propose_seconds": float(np.mean(seconds)) if seconds else 0.0,
        "propose_seconds_max": float(np.max(seconds)) if seconds else 0.0,
        "regret": float(r_mean),
        "regret_ci95": float(r_half),
        "seeds_reaching_95": len(reached),
        "target_miss_rate": float(np.mean([t.missed for t in traces])),
        "regret_when_hit": (float(np.mean([t.regret for t in traces if not t.missed]))
                            if any(not t.missed for t in traces) else None),
        "empty_slots_per_seed": float(np.mean([t.shortfall for t in traces])),
        "median_trainings_to_95_reached": float(np.median(reached)) if reached else None,
        "trainings": trainings.tolist(),
        "hv_ratio_mean": mean.tolist(),
        "hv_ratio_ci95": half.tolist(),
        "hv_ratio_per_seed": hv.tolist(),
    }


def paired_difference(a: Sequence[MethodTrace], b: Sequence[MethodTrace]) -> dict[str, list]:
    """Per-step paired HV-ratio difference ``a - b`` over seeds: mean and 95% CI half-width."""
    steps = min(min(len(t.hv_ratio) for t in a), min(len(t.hv_ratio) for t in b))
    diff = np.array([ta.hv_ratio[:steps] for ta in a]) - np.array([tb.hv_ratio[:steps] for tb in b])
    mean, half = _mean_ci(diff)
    return {"trainings": list(a[0].trainings[:steps]), "mean": mean.tolist(),
            "ci95": half.tolist()}


def evaluate_targets(methods: Mapping[str, Mapping[str, Any]],
                     vs_algorithm1: Mapping[str, list] | None, budget: int) -> dict[str, Any]:
    """The issue's three targets, each ``{"met": bool | None, "detail": str}``.

    ``None`` means the data cannot decide (e.g. archopt never reached 95%).
    """
    def ratio_target(other: str, factor: float) -> dict[str, Any]:
        if "archopt" not in methods or other not in methods:
            return {"met": None, "detail": f"archopt or {other} not run"}
        mine, theirs = methods["archopt"]["trainings_to_95"], methods[other]["trainings_to_95"]
        if mine is None:
            ran = methods["archopt"]["trainings"][-1]
            # archopt's number is > ran: a miss only if even ran+1 would break the target.
            missed = theirs is not None and ran + 1 > factor * theirs
            return {"met": False if missed else None,
                    "detail": f"archopt did not reach 95% within {ran} trainings"
                              + ("" if theirs is None else
                                 f" ({other}: {theirs}; the target needs <= "
                                 f"{factor * theirs:.0f})")}
        if theirs is None:
            # Censored: theirs > the longest run we have for it.
            longest = methods[other]["trainings"][-1]
            met = mine <= factor * longest
            return {"met": True if met else None,
                    "detail": f"archopt {mine}; {other} did not reach 95% within {longest} "
                              f"(so its number is > {longest})"}
        return {"met": mine <= factor * theirs,
                "detail": f"archopt {mine} vs {other} {theirs} (ratio {mine / theirs:.2f}, "
                          f"target <= {factor:.2f})"}

    out = {"half_of_qnehvi": ratio_target("plain_qnehvi", 0.5),
           "third_of_random": ratio_target("random", 1 / 3)}
    if vs_algorithm1 is None:
        out["matches_algorithm1"] = {"met": None, "detail": "archopt or algorithm1 not run"}
    else:
        worse = [t for t, m, h in zip(vs_algorithm1["trainings"], vs_algorithm1["mean"],
                                      vs_algorithm1["ci95"]) if m + h < 0]
        out["matches_algorithm1"] = {
            "met": not worse,
            "detail": ("archopt's HV ratio is not significantly below Algorithm 1's at any budget"
                       if not worse else
                       f"significantly below Algorithm 1 at {worse} trainings (paired 95% CI)")}
    return out


# ---- report -------------------------------------------------------------------------------
@dataclass
class BenchResult:
    """Everything a report needs (JSON-able through :meth:`to_dict`).

    Attributes:
        config: the settings that ran.
        worlds: kind -> {"methods": name -> summary, "vs_algorithm1": paired curve,
            "targets": ..., "world_info": per-seed provenance, "n_candidates": n}.
        real_data: the leave-one-size-out check (None when skipped).
        setup: prior/truth provenance (laws, sources, noise and residual estimates).
        seconds: total wall time.
    """

    config: BenchConfig
    worlds: dict[str, dict[str, Any]]
    real_data: dict[str, Any] | None = None
    setup: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def headline(self) -> str:
        return self.config.worlds[0]

    def to_dict(self) -> dict[str, Any]:
        return {"config": dataclasses.asdict(self.config), "worlds": self.worlds,
                "real_data": self.real_data, "setup": self.setup, "seconds": self.seconds,
                **bench_json(self)}


def bench_json(result: BenchResult) -> dict[str, Any]:
    """The CLI's ``--json`` payload: the headline world's per-method numbers and the seeds."""
    methods = result.worlds[result.headline]["methods"]
    keys = ("trainings_to_95", "final_hv_ratio", "propose_seconds", "regret")
    return {"methods": {name: {k: m[k] for k in keys} for name, m in methods.items()},
            "seeds": result.config.seeds, "world": result.headline,
            "targets": result.worlds[result.headline].get("targets", {})}


def json_default(value: Any) -> Any:
    """``json.dumps`` default for numpy scalars and arrays."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


# ---- orchestration ------------------------------------------------------------------------
def shifted_truth(config: BenchConfig, law: str | None = None) -> Any:
    """A world's law: ``law`` (default ``truth_law``) least-squares fitted on ``truth_table``
    alone, as a Laplace posterior (another fit than archopt's NUTS prior on every table)."""
    from surrogate.lsq import fit_lsq
    from surrogate.runs import bundled_path, load_runs

    runs = load_runs(bundled_path(config.truth_table))
    return fit_lsq(runs, law or config.truth_law).to_posterior(1000)


def _strategies(names: Sequence[str], config: BenchConfig) -> dict[str, Any]:
    from optim.core.strategies import STRATEGIES

    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise BenchError(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(STRATEGIES)}")
    out = {}
    for name in names:
        cls = STRATEGIES[name]
        out[name] = cls()
    return out


def _candidates(config: BenchConfig, prior: Any) -> tuple[list[Any], Any]:
    """The benchmark's candidate set: proposable candidates of the campaign (a seeded subset
    when ``max_candidates``), and the campaign spec."""
    from optim.core.problem import CampaignSpec, Problem

    kwargs = dict(name="bench", params=config.params, tokens=config.tokens,
                  hardware=config.hardware, band=config.band, source=config.source,
                  law=prior.law)
    if config.workload:
        kwargs["workload"] = config.workload
    spec = CampaignSpec(**kwargs)
    full = Problem.build(spec, prior, measurement_cache=False)
    usable = np.flatnonzero(full.proposable)
    if config.max_candidates is not None and usable.size > config.max_candidates:
        usable = np.sort(np.random.default_rng(12345).choice(usable, config.max_candidates,
                                                             replace=False))
    return [full.candidates[i] for i in usable], spec


def prior_vs_truth(prior_mean: np.ndarray, true_loss: np.ndarray) -> dict[str, float]:
    """How well archopt's prior knows a world before any run: Spearman rank correlation of the
    prior-mean loss with the true loss over the candidates, and the mean offset (true - prior)."""
    from scipy.stats import spearmanr

    rho = spearmanr(prior_mean, true_loss).statistic
    return {"prior_spearman": float(rho), "prior_offset": float(np.mean(true_loss - prior_mean))}


def run_bench(config: BenchConfig, *, prior: Any = None, truths: Mapping[str, Any] | None = None,
              progress: bool = True, real_data: bool = True) -> BenchResult:
    """Run every method on every world kind and seed (see the module docstring).

    Args:
        config: sizes and methods.
        prior: archopt's law posterior (default: the campaign's ``surrogate.default_prior()``).
        truths: world kind -> law posterior of its truth (default: ``matched`` = ``prior``,
            ``shifted`` = :func:`shifted_truth`).
        progress: rich progress bar.
        real_data: also run :func:`~.real_data.real_data_check`.
    """
    import dataclasses as dc

    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    from surrogate.runs import bundled_path, load_runs

    from optim.core.problem import Problem
    from .worlds import estimate_run_noise, estimate_shape_residual, make_world

    started = time.perf_counter()
    strategies = _strategies(config.methods, config)  # unknown names fail before any fitting
    if prior is None:
        from surrogate import default_prior

        prior = default_prior(progress=progress)
    truths = dict(truths or {})
    if "matched" in config.worlds:
        truths.setdefault("matched", prior)
    if "shifted" in config.worlds and "shifted" not in truths:
        truths["shifted"] = shifted_truth(config)
    if "refit" in config.worlds and "refit" not in truths:
        truths["refit"] = shifted_truth(config, law=prior.law)
    noise = estimate_run_noise()
    residual_runs = load_runs(bundled_path(config.truth_table))
    residual = {k: estimate_shape_residual(truths[k], residual_runs, noise.rel_sigma)
                for k in config.worlds}
    candidates, spec = _candidates(config, prior)
    # Throughput model arrays (no loss target yet): the worlds' throughput is built on them.
    base = Problem.build(spec, prior, measurement_cache=False, candidates=candidates)
    extra_size = config.random_extra_batch_size or max(config.batch_size, len(candidates) // 10)
    setup = {
        "n_candidates": len(candidates),
        "prior": {"law": prior.law, "method": prior.method, "num_samples": prior.num_samples,
                  "sources": list(prior.sources), "warnings": list(
                      (prior.diagnostics or {}).get("warnings", []))},
        "truths": {k: {"law": truths[k].law, "method": truths[k].method,
                       "sources": list(truths[k].sources)} for k in config.worlds},
        "noise": dataclasses.asdict(noise),
        "shape_residual_rel_sigma": residual,
        "spec": {"params": spec.params, "tokens": spec.tokens, "hardware": spec.hardware,
                 "workload": str(spec.workload), "band": spec.band, "source": spec.source},
    }
    steps_per_seed = sum(config.batches + config.extra_batches
                         + (config.random_extra_batches if m == "random" else 0)
                         for m in config.methods)
    total = steps_per_seed * config.seeds * len(config.worlds)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    worlds_out: dict[str, dict[str, Any]] = {}
    from rich.console import Console

    # Progress goes to stderr so ``--json`` output on stdout stays machine-readable.
    with Progress(*columns, disable=not progress, transient=False,
                  console=Console(stderr=True)) as bar:
        task = bar.add_task("bench", total=total)
        for kind in config.worlds:
            traces: dict[str, list[MethodTrace]] = {m: [] for m in config.methods}
            infos = []
            for seed in range(config.seeds):
                world = make_world(
                    candidates, config.tokens, truth=truths[kind], source=config.source,
                    throughput_model=base.throughput_mean,
                    throughput_rel_sigma=base.throughput_rel_sigma,
                    seed=seed, noise=noise, residual_rel_sigma=residual[kind],
                    loss_target_quantile=config.loss_target_quantile,
                    name=f"{kind}-{seed}", info={"kind": kind})
                problem = Problem.build(dc.replace(spec, max_loss=world.loss_target), prior,
                                        measurement_cache=False, candidates=candidates)
                init_idx = np.random.default_rng([seed, 31337]).choice(
                    world.n, config.n_init, replace=False)
                infos.append({**world.info, "loss_target": world.loss_target,
                              "true_pareto_size": int(world.pareto_indices.size),
                              **prior_vs_truth(problem.law_mean(), world.true_loss)})
                for name, strategy in strategies.items():
                    bar.update(task, description=f"{kind} seed {seed} {name}")
                    sizes = [config.batch_size] * (config.batches + config.extra_batches)
                    if name == "random":
                        sizes += [extra_size] * config.random_extra_batches
                    traces[name].append(run_campaign(
                        world, problem, strategy, init_idx=init_idx, batch_sizes=sizes,
                        seed=seed, choose_at=config.budget, on_batch=lambda: bar.advance(task)))
            methods = {m: summarize_method(t, config.budget) for m, t in traces.items()}
            vs = (paired_difference(traces["archopt"], traces["algorithm1"])
                  if {"archopt", "algorithm1"} <= set(traces) else None)
            worlds_out[kind] = {"methods": methods, "vs_algorithm1": vs,
                                "targets": evaluate_targets(methods, vs, config.budget),
                                "world_info": infos, "n_candidates": len(candidates)}
    result = BenchResult(config=config, worlds=worlds_out, setup=setup)
    if real_data:
        from .real_data import real_data_check

        result.real_data = real_data_check(progress=progress)
    result.seconds = time.perf_counter() - started
    return result
