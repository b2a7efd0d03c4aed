"""How long does ``propose k=4`` take at a 1B budget, against plain qNEHVI in the same run?

Set-up (the demo campaign's problem): 1B non-embedding params +-5%, 100B tokens, A100-40GB,
batch 64 / 4096 in / 1024 out, the default prior (NUTS on the bundled runs, cached). The loop
state is ``--observed`` observed trials and ``--pending`` pending ones picked at random among
the candidates. Their losses are SYNTHETIC (law posterior mean + 0.05 + N(0, 0.01)): this
benchmark measures time and memory only, never quality.

Each strategy proposes ``k`` architectures ``--repeats`` times, interleaved (so background load
hits all alike); the report gives medians. Also timed: ``Campaign.propose`` end to end (store
load, model, acquisition, atomic save) on a temporary store, and peak memory (max RSS of the
process, ``resource.getrusage``; Python-side peak from ``tracemalloc`` during one archopt
proposal).

    python benchmarks/propose_speed.py            # writes results/propose_speed.md
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

#: Reports go to ``results/`` of the checkout this script is in (the package is the installed one).
REPO = Path(__file__).resolve().parents[1]

TARGET_SECONDS = 30.0
TARGET_RATIO = 1.5
TARGET_PEAK_GB = 4.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--observed", type=int, default=8)
    parser.add_argument("--pending", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "propose_speed.md")
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.progress import Progress

    from optim.campaign import Campaign
    from optim.campaign.demo import demo_spec
    from optim.core.problem import Problem
    from optim.core.strategies import (
        Algorithm1Strategy,
        ArchoptStrategy,
        PlainQNEHVIStrategy,
        RandomStrategy,
    )
    from surrogate.prior import default_prior

    console = Console()
    console.print("loading the default prior (fits once with NUTS if not cached)...")
    prior = default_prior(progress=True)
    spec = demo_spec()
    t0 = time.perf_counter()
    problem = Problem.build(spec, prior)
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    proposable = np.flatnonzero(problem.proposable)
    picks = rng.choice(proposable, size=args.observed + args.pending, replace=False)
    observed, pending = picks[: args.observed], picks[args.observed :]
    loss = problem.law_mean()[observed] + 0.05 + rng.normal(0, 0.01, len(observed))

    strategies = {
        "archopt (weighted law GP + prior-free GP, 32 MC)": ArchoptStrategy(),
        "archopt (ensemble S=8, 32 MC)": ArchoptStrategy(mode="ensemble", n_members=8),
        "plain qNEHVI (SingleTaskGP, 32 MC)": PlainQNEHVIStrategy(),
        "Algorithm 1": Algorithm1Strategy(),
        "random": RandomStrategy(),
    }
    # Warm-up: imports and first-call overheads are not part of a proposal's cost.
    ArchoptStrategy(mc_samples=8).propose(problem, observed, loss, 1, pending_idx=pending)
    PlainQNEHVIStrategy(mc_samples=4).propose(problem, observed, loss, 1, pending_idx=pending)

    # The same state on every candidate in the band (must_fit=False): 2.6x more choices.
    import dataclasses

    problem_all = Problem.build(dataclasses.replace(spec, must_fit=False), prior)
    observed_all = np.array([problem_all.index_of(problem.candidates[i]) for i in observed])
    pending_all = np.array([problem_all.index_of(problem.candidates[i]) for i in pending])
    big = {
        "archopt, all band candidates": ArchoptStrategy(),
        "plain qNEHVI, all band candidates": PlainQNEHVIStrategy(),
    }

    times: dict[str, list[float]] = {name: [] for name in [*strategies, *big]}
    cpu: dict[str, list[float]] = {name: [] for name in times}
    with Progress(console=console) as progress:
        task = progress.add_task("proposing", total=args.repeats * len(times))
        for rep in range(args.repeats):
            runs = [(n, s_, problem, observed, pending) for n, s_ in strategies.items()]
            runs += [(n, s_, problem_all, observed_all, pending_all) for n, s_ in big.items()]
            for name, strat, prob, obs, pend in runs:
                t, c = time.perf_counter(), time.process_time()
                batch = strat.propose(prob, obs, loss, args.k, pending_idx=pend, seed=rep)
                times[name].append(time.perf_counter() - t)
                cpu[name].append(time.process_time() - c)
                assert len(batch) == args.k
                progress.advance(task)

    tracemalloc.start()
    ArchoptStrategy().propose(problem, observed, loss, args.k, pending_idx=pending)
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    # End to end through the campaign API on a temporary store.
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "campaigns.sqlite"
        Campaign.create(spec, store=store, prior=prior)
        e2e = []
        for _ in range(2):
            t = time.perf_counter()
            Campaign.load(spec.name, store).propose(args.k)
            e2e.append(time.perf_counter() - t)
    peak_rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9

    med = {name: statistics.median(v) for name, v in times.items()}
    med_cpu = {name: statistics.median(v) for name, v in cpu.items()}
    archopt = med["archopt (weighted law GP + prior-free GP, 32 MC)"]
    plain = med["plain qNEHVI (SingleTaskGP, 32 MC)"]
    ratio = archopt / plain
    cpu_ratio = (
        med_cpu["archopt (weighted law GP + prior-free GP, 32 MC)"]
        / med_cpu["plain qNEHVI (SingleTaskGP, 32 MC)"]
    )
    checks = [
        (
            f"archopt propose k={args.k} at 1B <= {TARGET_SECONDS:.0f} s",
            f"{archopt:.2f} s",
            archopt <= TARGET_SECONDS,
        ),
        (
            f"archopt / plain qNEHVI <= {TARGET_RATIO} (wall)",
            f"{ratio:.2f}x",
            ratio <= TARGET_RATIO,
        ),
        (
            "archopt / plain qNEHVI (process CPU time, robust to other jobs' load)",
            f"{cpu_ratio:.2f}x",
            cpu_ratio <= TARGET_RATIO,
        ),
        (
            f"archopt on all {problem_all.n_grid} band candidates <= {TARGET_SECONDS:.0f} s",
            f"{med['archopt, all band candidates']:.2f} s",
            med["archopt, all band candidates"] <= TARGET_SECONDS,
        ),
        (
            f"Campaign.propose end to end <= {TARGET_SECONDS:.0f} s",
            f"{max(e2e):.2f} s",
            max(e2e) <= TARGET_SECONDS,
        ),
        (
            f"peak memory (max RSS) <= {TARGET_PEAK_GB:.0f} GB",
            f"{peak_rss_gb:.2f} GB",
            peak_rss_gb <= TARGET_PEAK_GB,
        ),
    ]
    lines = [
        "# Propose speed at a 1B budget",
        "",
        f"Reproduce: `python benchmarks/propose_speed.py` (k={args.k}, {args.observed} observed + "
        f"{args.pending} pending trials, {args.repeats} interleaved repeats, medians).",
        "",
        f"Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        "2 cores shared with other jobs (timings are noisy). Observed losses are synthetic "
        "(time only).",
        "",
        f"Problem: {problem.n_grid} candidates in the band, {int(problem.proposable.sum())} "
        f"proposable (fit in memory for {spec.workload}); Problem.build {build_s:.2f} s.",
        "",
        "| target | measured | ok |",
        "| --- | --- | --- |",
        *[f"| {name} | {value} | {'yes' if ok else 'NO'} |" for name, value, ok in checks],
        "",
        "| strategy | median wall s | all runs (s) | median CPU s | wall vs plain qNEHVI |",
        "| --- | --- | --- | --- | --- |",
        *[
            f"| {name} | {med[name]:.2f} | {', '.join(f'{x:.2f}' for x in v)} | "
            f"{med_cpu[name]:.2f} | {med[name] / plain:.2f}x |"
            for name, v in times.items()
        ],
        "",
        f"End-to-end `Campaign.propose({args.k})` (load store, build problem, propose, atomic "
        f"save): {', '.join(f'{x:.2f}' for x in e2e)} s.",
        "",
        f"Peak memory: max RSS {peak_rss_gb:.2f} GB (whole process, includes torch/Ax/JAX); "
        f"Python-side peak during one archopt proposal (tracemalloc) {py_peak / 1e6:.0f} MB.",
        "",
        "The default archopt model is a mixture of the law-prior GP (the law posterior as one "
        "Gaussian: mean + low-rank covariance of the draws, see surrogate/gp.py) and plain "
        "qNEHVI's prior-free GP, weighted by how well each ranks the observed runs "
        "(optim/core/weighting.py). archopt therefore fits both GPs (plain qNEHVI fits one) and "
        "runs one qLogNEHVI per member with the 32 quasi-MC samples split between them by "
        "weight; the members' posteriors are cached look-ups over the candidate set, while plain "
        "qNEHVI evaluates its SingleTaskGP as Ax does. The ensemble mode (one mixture member per "
        "law draw: a batch-S SingleTaskGP on the residuals to each draw) pays S times the MC "
        "samples for the law member.",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    console.print("\n".join(lines))
    console.print(f"wrote {args.out}")
    return 0 if all(ok for _, _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
