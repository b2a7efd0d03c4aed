"""Sample-efficiency benchmark: archopt against the alternatives, on worlds grounded in real data.

For each world kind (:mod:`optim.bench.worlds`: ``held_out_source``, ``real_shapes``, ``shifted``
and the upper bound ``matched``) and seed, every method chooses its own first batch of
``n_init`` trainings (archopt from its prior before any run, plain qNEHVI a Sobol batch;
``BenchConfig.init="shared"`` gives every method the same random ones instead) and then
proposes batches of ``batch_size`` candidates through the one strategy interface
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
* **Paired differences** archopt - plain qNEHVI over seeds (same world, same
  noise): HV ratio at the budget and trainings-to-95%, mean with a 95% t-interval.
* **Regret** of the final choice: the fastest (by measured throughput) trained architecture whose
  *observed* loss meets ``max_loss``; ``1 - tps / tps_best`` in truth, and 1 when the choice
  misses the target in truth or nothing meets it.
* **Propose seconds**: wall time of each ``propose`` call.

:func:`run_bench` runs everything: the settings are :class:`~.config.BenchConfig`, each
world kind is prepared by :func:`~.setups.world_setups`, each (method, seed) runs the trial
loop :func:`~.loop.run_campaign`, seeds are summarized by :mod:`.stats` into a
:class:`~.result.BenchResult`. :func:`~.report.write_report` writes ``results.json``,
``report.md`` and PNG plots, :func:`~.real_data.real_data_check` runs the leave-one-size-out
ranking check on the bundled tables. :func:`~.result.bench_json` is the ``archopt bench --json``
contract.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Mapping

import numpy as np

from .config import HV_TARGET, KNOWN_LOSS, BenchConfig
from .known_loss import KnownLossStrategy
from .loop import MethodTrace, run_campaign
from .result import BenchResult
from .setups import bench_candidates, make_strategies, prior_vs_truth, world_setups
from .stats import evaluate_targets, paired_vs, summarize_method

__all__ = [
    "run_bench",
]


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

    from .estimates import estimate_run_noise
    from .truths import reference_shape
    from .worlds import make_world

    strategies = make_strategies(config.methods)  # unknown names fail before any fitting
    if prior is None:
        from surrogate import default_prior

        prior = default_prior(progress=progress)
    candidates, spec = bench_candidates(config, prior)
    reference = reference_shape(
        config.params,
        band=config.band,
        vocab_size=spec.vocab_size,
        tie_embeddings=spec.tie_embeddings,
    )
    setups = world_setups(config, prior, candidates, spec, reference, progress, truths)
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
            for seed in range(config.first_seed, config.first_seed + config.seeds):
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
                shared = config.init == "shared"
                init_idx = (
                    np.random.default_rng([seed, 31337]).choice(
                        world.n, config.n_init, replace=False
                    )
                    if shared
                    else np.zeros(0, dtype=np.int64)
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
                    if name == KNOWN_LOSS:
                        strategy = KnownLossStrategy(world, ws.problem.throughput_mean)
                    # Methods without a model cost nothing to run: until 95%, uncapped.
                    limit = len(candidates) if name in ("random", KNOWN_LOSS) else cap
                    steps = math.ceil(max(limit - config.n_init, 0) / config.batch_size)
                    opening = [] if shared else [config.n_init]
                    traces[name].append(
                        run_campaign(
                            world,
                            ws.problem,
                            strategy,
                            init_idx=init_idx,
                            batch_sizes=opening + [config.batch_size] * steps,
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
