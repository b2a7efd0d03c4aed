"""``archopt bench``: the sample-efficiency benchmark (:mod:`optim.bench`).

``--json`` prints :func:`optim.bench.result.bench_json`: ``{"methods": {NAME: {"trainings_to_95":
int | null, "final_hv_ratio": float, "propose_seconds": float, "regret": float}}, "seeds": n,
"world": kind, "targets": {...}}`` for the headline world, plus ``"worlds": {name: {"kind":
"held_out_source" | "real_shapes" | "shifted" | "matched", "methods": {NAME: {"trainings_to_95",
"final_hv_ratio", "propose_seconds"}}, "paired_vs_plain_qnehvi": {"hv_diff_mean",
"hv_diff_ci95": [lo, hi], "trainings_to_95_ratio"}}}``; the full numbers go to
``OUT/results.json`` with ``report.md`` and PNGs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``bench`` command to ``app``."""

    @app.command("bench")
    def bench(
        quick: Annotated[
            bool,
            typer.Option(
                "--quick",
                help="Under 15 minutes on 2 cores: 120-candidate subset, all four worlds, "
                "20 seeds, extension to 95% capped at 48 trainings.",
            ),
        ] = False,
        seeds: Annotated[
            Optional[int], typer.Option("--seeds", help="Seeds per world and method (default 20).")
        ] = None,
        first_seed: Annotated[
            Optional[int],
            typer.Option("--first-seed", help="First seed (default 0; --dev: 1000)."),
        ] = None,
        dev: Annotated[
            bool,
            typer.Option(
                "--dev",
                help="Design seeds (1000 on), disjoint from the reported seeds 0-19: "
                "compare design choices here, report on the default seeds.",
            ),
        ] = False,
        out: Annotated[
            Path, typer.Option("--out", help="Folder for report.md, results.json and PNGs.")
        ] = Path("results/bench"),
        methods: Annotated[
            Optional[str],
            typer.Option("--methods", help="Comma-separated strategy names (default: all four)."),
        ] = None,
        batches: Annotated[
            Optional[int],
            typer.Option("--batches", help="Proposal batches after the initial trainings."),
        ] = None,
        max_trainings: Annotated[
            Optional[int],
            typer.Option(
                "--max-trainings",
                help="Cap on the trainings a model-based method may spend to "
                "reach 95% of the true HV (default: every candidate; "
                "--quick: 48).",
            ),
        ] = None,
        extra_batches: Annotated[
            Optional[int],
            typer.Option(
                "--extra-batches",
                help="Another way to set --max-trainings: at most this many "
                "batches after the common budget (0: stop at the budget, "
                "trainings-to-95% censored there).",
            ),
        ] = None,
        max_candidates: Annotated[
            Optional[int],
            typer.Option("--max-candidates", help="Random subset of the candidate set."),
        ] = None,
        worlds: Annotated[
            Optional[str],
            typer.Option(
                "--worlds",
                help="Comma-separated world kinds: held_out_source, real_shapes, "
                "shifted, matched (first = headline; default: all four).",
            ),
        ] = None,
        init: Annotated[
            str,
            typer.Option(
                "--init",
                help="First batch: 'own' (each method proposes it, archopt from its prior) "
                "or 'shared' (the same random candidates for every method).",
            ),
        ] = "own",
        real_data: Annotated[
            bool,
            typer.Option(
                "--real-data/--no-real-data", help="Run the leave-one-size-out check too."
            ),
        ] = True,
        json_out: Annotated[
            bool, typer.Option("--json", help="Print the summary as JSON.")
        ] = False,
    ) -> None:
        """Benchmark archopt against plain qNEHVI, Algorithm 1 and random search."""
        from optim.bench import BenchConfig, bench_json, run_bench, write_report
        from optim.bench.config import DEV_FIRST_SEED

        overrides: dict = {}
        if seeds is not None:
            overrides["seeds"] = seeds
        if methods:
            overrides["methods"] = tuple(m.strip() for m in methods.split(",") if m.strip())
        if worlds:
            overrides["worlds"] = tuple(w.strip() for w in worlds.split(",") if w.strip())
        if batches is not None:
            overrides["batches"] = batches
        if max_trainings is not None:
            overrides["max_trainings"] = max_trainings
        if max_candidates is not None:
            overrides["max_candidates"] = max_candidates
        overrides["init"] = init
        if first_seed is not None:
            overrides["first_seed"] = first_seed
        elif dev:
            overrides["first_seed"] = DEV_FIRST_SEED
        config = BenchConfig.preset(quick, extra_batches=extra_batches, **overrides)
        result = run_bench(config, progress=True, real_data=real_data)  # bars on stderr
        report = write_report(result, out)
        if json_out:
            typer.echo(json.dumps(bench_json(result)))
            return
        typer.echo(f"report: {report}")
        for name, m in bench_json(result)["methods"].items():
            t95 = m["trainings_to_95"]
            t95 = "censored" if t95 is None else t95
            typer.echo(
                f"{name:>13}: trainings to 95% HV (median) {t95}, "
                f"HV ratio at budget {m['final_hv_ratio']:.3f}, regret {m['regret']:.3f}, "
                f"{m['propose_seconds']:.2f} s/propose"
            )
