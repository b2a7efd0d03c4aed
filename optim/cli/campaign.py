"""``archopt campaign create|list``, ``propose``, ``observe``, ``status``, ``pareto``, ``run``,
``measure-run``, ``demo``.

A thin shell over :class:`optim.campaign.Campaign`. Every command takes ``--store PATH|URL``
(default ``$ARCHOPT_HOME/campaigns.sqlite``; ``postgresql://user@host/db`` for a team store). JSON outputs (a contract other tools read):

* ``propose --json``: a list of objects with :data:`optim.campaign.PROPOSAL_FIELDS` -- trial,
  d_model, n_layers, n_heads, n_kv_heads, head_dim, ffn_dim, vocab_size, tie_embeddings, params,
  non_embedding_params, pred_loss_mean, pred_loss_q05, pred_loss_q95, pred_tokens_per_s,
  mlp_attn_ratio, d_over_sqrt_n, gqa_group, ehvi -- plus pred_tokens_per_s_q05/q95,
  throughput_source, aspect_ratio, memory_bytes, fits_in_memory, in_band, label, strategy.
* ``pareto --json``: the same fields plus observed_loss (null when not observed) and source
  (``"observed"`` / ``"predicted"``); trial is null for never-proposed candidates.
* ``status --json``: :meth:`Campaign.status`; ``observe --json``: the trial(s) recorded.
* ``run --json`` / ``measure-run --json``: launched, completed, failed (trial indices) of this
  invocation; ``measure-run`` adds tokens_per_s (trial -> measured output tokens/s).

Heavy libraries (torch, ax, botorch, jax) are imported inside the command bodies.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from models.arch import DEFAULT_VOCAB_SIZE

__all__ = ["register"]

StoreOpt = Annotated[
    Optional[str],
    typer.Option(
        "--store",
        help="Campaign store: a SQLite file (default $ARCHOPT_HOME/campaigns.sqlite) or a "
        "PostgreSQL URL shared by a team (postgresql://user@host/db).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
# Options of the job loops (``run`` and ``measure-run``).
BackendOpt = Annotated[str, typer.Option("--backend", help="local | slurm | submitit-local")]
ParallelOpt = Annotated[int, typer.Option("--parallel", help="Jobs at once.")]
PollOpt = Annotated[float, typer.Option("--poll", help="Seconds between polls.")]
TimeoutOpt = Annotated[
    Optional[float],
    typer.Option("--timeout", help="Cancel and fail a job running longer than this (seconds)."),
]


def _echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str, allow_nan=False))


def _echo_job_summary(out: dict[str, Any], json_out: bool) -> None:
    """What a job loop (``run``, ``measure-run``) did: its JSON, or one line of counts."""
    if json_out:
        _echo_json(out)
    else:
        typer.echo(
            f"launched {len(out['launched'])}, completed {len(out['completed'])}, "
            f"failed {len(out['failed'])}"
        )


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec)


def _arch_table(rows: list[dict[str, Any]], title: str, *, observed: bool = False):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    cols = ["trial"] if not observed else ["trial", "source"]
    for c in cols + ["shape", "params", "N", "r", "d/sqrt(N)", "GQA", "loss (pred, 90%)"]:
        table.add_column(c, justify="right" if c not in ("shape", "source") else "left")
    if observed:
        table.add_column("observed", justify="right")
    table.add_column("tokens/s (pred)", justify="right")
    if not observed:
        table.add_column("EHVI", justify="right")
    for r in rows:
        band = (
            f"{_fmt(r['pred_loss_mean'], '.3f')} [{_fmt(r['pred_loss_q05'], '.3f')}, "
            f"{_fmt(r['pred_loss_q95'], '.3f')}]"
        )
        cells = [_fmt(r.get("trial"), "d")]
        if observed:
            cells.append(r["source"])
        cells += [
            r["label"],
            f"{r['params'] / 1e9:.3f}B",
            f"{r['non_embedding_params'] / 1e9:.3f}B",
            f"{r['mlp_attn_ratio']:.2f}",
            f"{r['d_over_sqrt_n']:.4f}",
            str(r["gqa_group"]),
            band,
        ]
        if observed:
            cells.append(_fmt(r.get("observed_loss"), ".4f"))
        tps = f"{r['pred_tokens_per_s']:,.0f}"
        if r.get("throughput_source") == "measured":
            tps += " (measured)"
        cells.append(tps)
        if not observed:
            cells.append(_fmt(r.get("ehvi"), ".3g"))
        table.add_row(*cells)
    return table


def _print(renderable: Any) -> None:
    from rich.console import Console

    Console(width=200).print(renderable)


def _parse_trials(values: list[str] | None) -> list[int] | None:
    """``--trials 0,2 --trials 5`` -> ``[0, 2, 5]``; None when not given."""
    from optim.campaign.jobs import JobError

    if not values:
        return None
    out = []
    for part in ",".join(values).split(","):
        try:
            trial = int(part.strip())
        except ValueError:
            raise JobError(f"--trials takes trial indices like 0,2; got {part.strip()!r}") from None
        if trial < 0:
            raise JobError(f"--trials takes trial indices >= 0; got {trial}")
        out.append(trial)
    return out


def register(app: typer.Typer) -> None:
    campaign_app = typer.Typer(no_args_is_help=True, help="Create and list campaigns.")
    app.add_typer(campaign_app, name="campaign")

    @campaign_app.command("create")
    def create(
        name: Annotated[str, typer.Argument(help="Campaign name.")],
        params: Annotated[float, typer.Option("--params", help="Target non-embedding params N.")],
        tokens: Annotated[float, typer.Option("--tokens", help="Training tokens D.")],
        hardware: Annotated[str, typer.Option("--hardware", help="Hardware profile id.")],
        band: Annotated[float, typer.Option("--band", help="Relative tolerance on N.")] = 0.05,
        runs: Annotated[
            Optional[list[Path]],
            typer.Option(
                "--runs", help="Extra prior run table(s) (CSV); the law is refitted with them."
            ),
        ] = None,
        workload: Annotated[
            str, typer.Option("--workload", help="Serving workload.")
        ] = "batch=64,input=4096,output=1024",
        max_loss: Annotated[Optional[float], typer.Option("--max-loss")] = None,
        min_throughput: Annotated[Optional[float], typer.Option("--min-throughput")] = None,
        allow_oom: Annotated[
            bool,
            typer.Option("--allow-oom", help="Keep candidates that do not fit the device memory."),
        ] = False,
        vocab_size: Annotated[int, typer.Option("--vocab-size")] = DEFAULT_VOCAB_SIZE,
        untied: Annotated[bool, typer.Option("--untied", help="Untied output head.")] = False,
        source: Annotated[
            Optional[str],
            typer.Option(
                "--source", help="Prior source whose loss units the campaign's runs share."
            ),
        ] = None,
        store: StoreOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Create a campaign (fits or loads the scaling-law prior)."""
        from models.throughput import Workload
        from optim.campaign import Campaign, CampaignSpec

        spec = CampaignSpec(
            name=name,
            params=params,
            tokens=tokens,
            hardware=hardware,
            band=band,
            workload=Workload.parse(workload),
            max_loss=max_loss,
            min_throughput=min_throughput,
            must_fit=not allow_oom,
            vocab_size=vocab_size,
            tie_embeddings=not untied,
            source=source,
        )
        camp = Campaign.create(
            spec, runs=list(runs) if runs else None, store=store, progress=not json_out
        )
        status = camp.status()
        if json_out:
            _echo_json(status)
        else:
            typer.echo(
                f"created campaign {name!r} in {status['store']}: "
                f"{status['n_proposable']} proposable candidates of {status['n_candidates']} "
                f"in [{status['budget_bounds'][0]:,}, {status['budget_bounds'][1]:,}] "
                f"non-embedding params"
            )

    @campaign_app.command("list")
    def list_cmd(store: StoreOpt = None, json_out: JsonOpt = False) -> None:
        """List the campaigns in the store."""
        from optim.campaign import list_campaigns

        names = list_campaigns(store)
        if json_out:
            _echo_json(names)
        else:
            for n in names:
                typer.echo(n)

    @app.command("propose")
    def propose(
        name: Annotated[str, typer.Argument(help="Campaign name.")],
        k: Annotated[int, typer.Option("-k", "--k", help="Architectures to propose.")] = 4,
        strategy: Annotated[
            str, typer.Option("--strategy", help="archopt | plain_qnehvi | algorithm1 | random")
        ] = "archopt",
        seed: Annotated[Optional[int], typer.Option("--seed")] = None,
        store: StoreOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Propose the next batch of architectures to train (recorded as pending trials)."""
        from optim.campaign import Campaign

        camp = Campaign.load(name, store)
        rows = camp.propose(k, strategy=strategy, seed=seed)
        camp.problem.warn_throughput()
        if json_out:
            _echo_json(rows)
        else:
            _print(
                _arch_table(
                    rows,
                    f"{name}: {len(rows)} proposals ({strategy}); "
                    "loss and throughput are model predictions",
                )
            )

    @app.command("observe")
    def observe(
        name: Annotated[str, typer.Argument(help="Campaign name.")],
        trial: Annotated[Optional[int], typer.Argument(help="Trial index.")] = None,
        loss: Annotated[
            Optional[float], typer.Option("--loss", help="Final loss of the run.")
        ] = None,
        runs: Annotated[
            Optional[Path], typer.Option("--runs", help="Run table CSV of finished runs.")
        ] = None,
        force: Annotated[
            bool,
            typer.Option("--force", help="Replace an existing result / accept out-of-budget runs."),
        ] = False,
        store: StoreOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Record a finished run: TRIAL --loss X, or --runs FILE.csv."""
        from optim.campaign import Campaign, CampaignError

        if (runs is None) == (trial is None):
            raise CampaignError("give either TRIAL --loss X or --runs FILE.csv")
        if trial is not None and loss is None:
            raise CampaignError("--loss is required with TRIAL")
        camp = Campaign.load(name, store)
        if runs is not None:
            out = camp.observe_runs(runs, force=force)
        elif trial is not None and loss is not None:
            out = [camp.observe(trial, loss, force=force)]
        else:  # ruled out above
            raise CampaignError("give either TRIAL --loss X or --runs FILE.csv")
        if json_out:
            _echo_json(out)
        else:
            for t in out:
                typer.echo(f"trial {t['trial']} ({t['label']}): loss {t['observed_loss']:.4f}")

    @app.command("status")
    def status(
        name: Annotated[str, typer.Argument(help="Campaign name.")],
        store: StoreOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Campaign summary and trials."""
        from rich.table import Table

        from optim.campaign import Campaign

        camp = Campaign.load(name, store)
        st = camp.status()
        camp.problem.warn_throughput()
        if json_out:
            _echo_json(st)
            return
        typer.echo(f"campaign {st['name']} ({st['store']})")
        typer.echo(
            f"  budget: {st['params']:.4g} non-embedding params +-{st['band']:.0%}, "
            f"{st['tokens']:.4g} tokens; {st['hardware']}, {st['workload']}"
        )
        typer.echo(
            f"  candidates: {st['n_proposable']} proposable of {st['n_candidates']}; "
            f"trials: {st['n_trials']} ({st['n_pending']} pending, {st['n_observed']} observed)"
        )
        if st["best_observed_loss"] is not None:
            typer.echo(
                f"  best observed loss: {st['best_observed_loss']:.4f} "
                f"(trial {st['best_observed_trial']})"
            )
        table = Table(title="trials", title_justify="left")
        for c in (
            "trial",
            "status",
            "kind",
            "shape",
            "observed",
            "pred loss (90%)",
            "tokens/s (pred)",
        ):
            table.add_column(c)
        for t in st["trials"]:
            table.add_row(
                str(t["trial"]),
                t["status"],
                t["kind"],
                t["label"],
                _fmt(t["observed_loss"], ".4f"),
                f"{_fmt(t['pred_loss_mean'], '.3f')} [{_fmt(t['pred_loss_q05'], '.3f')}, "
                f"{_fmt(t['pred_loss_q95'], '.3f')}]",
                _fmt(t["pred_tokens_per_s"], ",.0f"),
            )
        _print(table)

    @app.command("pareto")
    def pareto(
        name: Annotated[str, typer.Argument(help="Campaign name.")],
        export: Annotated[
            Optional[Path],
            typer.Option("--export", help="Write config.json per architecture, pareto.csv/json."),
        ] = None,
        store: StoreOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Current Pareto set (observed vs model-predicted)."""
        from optim.campaign import Campaign

        camp = Campaign.load(name, store)
        rows = camp.pareto()
        if export is not None:
            written = camp.export(export)
        if json_out:
            _echo_json(rows)
        else:
            _print(
                _arch_table(
                    rows,
                    f"{name}: Pareto set (observed = measured loss; predicted = model prediction)",
                    observed=True,
                )
            )
        if export is not None and not json_out:
            typer.echo(f"wrote {len(rows)} configs and pareto.csv/json to {export}")
        elif export is not None:
            typer.echo(f"wrote {len(written)} files to {export}", err=True)
        camp.problem.warn_throughput()  # after success only: an error stays one line

    @app.command("run")
    def run(
        name: Annotated[str, typer.Argument(help="Campaign name.")],
        train_cmd: Annotated[
            str,
            typer.Option(
                "--train-cmd",
                help="Shell command training one shape; {config} is its config.json, "
                "{out} the run folder where it writes metrics.jsonl.",
            ),
        ],
        max_trials: Annotated[
            int,
            typer.Option(
                "--max-trials", help="New trials to launch in this invocation (then wait for them)."
            ),
        ],
        backend: BackendOpt = "local",
        parallel: ParallelOpt = 1,
        poll: PollOpt = 30.0,
        timeout: TimeoutOpt = None,
        runs_dir: Annotated[
            Path,
            typer.Option("--runs-dir", help="Where run folders go (RUNS_DIR/NAME/trial-NNNN)."),
        ] = Path("runs"),
        store: StoreOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Launch, watch and ingest training jobs for a campaign (resumable: run it again to
        re-attach to jobs still running)."""
        from optim.campaign import Campaign
        from optim.campaign.jobs import check_train_command, make_backend, run_jobs

        check_train_command(train_cmd)
        job_backend = make_backend(backend)
        camp = Campaign.load(name, store)
        out = run_jobs(
            camp,
            job_backend,
            train_cmd,
            runs_dir=runs_dir,
            max_trials=max_trials,
            parallel=parallel,
            poll_seconds=poll,
            timeout_seconds=timeout,
            on_event=None if json_out else lambda m: typer.echo(m, err=True),
        )
        _echo_job_summary(out, json_out)

    @app.command("measure-run")
    def measure_run(
        name: Annotated[str, typer.Argument(help="Campaign name.")],
        measure_cmd: Annotated[
            str,
            typer.Option(
                "--measure-cmd",
                help="Shell command serving one shape (e.g. vllm bench throughput --model "
                "{model} --load-format dummy ... --output-json {result}); {model} is a folder "
                "holding the shape's config.json ({config}), {result} the vLLM result JSON to "
                "write, {out} the run folder; the workload gives {batch}, {input}, {output}, "
                "{requests}, {tp}, {dtype}.",
            ),
        ],
        max_jobs: Annotated[
            int,
            typer.Option(
                "--max-jobs", help="New measurements to launch in this invocation (then wait)."
            ),
        ],
        backend: BackendOpt = "local",
        parallel: ParallelOpt = 1,
        trials: Annotated[
            Optional[list[str]],
            typer.Option(
                "--trials",
                help="Trials to measure, e.g. 0,2 (repeatable; default: every pending or "
                "observed trial whose shape is not measured yet).",
            ),
        ] = None,
        poll: PollOpt = 30.0,
        timeout: TimeoutOpt = None,
        runs_dir: Annotated[
            Path,
            typer.Option("--runs-dir", help="Where run folders go (RUNS_DIR/NAME/measure-NNNN)."),
        ] = Path("runs"),
        store: StoreOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Measure the campaign's trial shapes on the target GPU through the job backends
        (cached as measured; proposals and tokens/s use them; resumable like ``run``)."""
        from optim.campaign import Campaign
        from optim.campaign.jobs import make_backend
        from optim.campaign.measure_jobs import check_measure_command, run_measurements

        check_measure_command(measure_cmd)
        chosen = _parse_trials(trials)
        job_backend = make_backend(backend)
        camp = Campaign.load(name, store)
        out = run_measurements(
            camp,
            job_backend,
            measure_cmd,
            runs_dir=runs_dir,
            max_jobs=max_jobs,
            parallel=parallel,
            trials=chosen,
            poll_seconds=poll,
            timeout_seconds=timeout,
            on_event=None if json_out else lambda m: typer.echo(m, err=True),
        )
        _echo_job_summary(out, json_out)

    @app.command("demo")
    def demo(
        store: StoreOpt = None,
        out: Annotated[
            Optional[Path], typer.Option("--out", help="Export directory (default ./archopt-demo).")
        ] = None,
        k: Annotated[int, typer.Option("-k", help="Proposals.")] = 4,
        json_out: JsonOpt = False,
    ) -> None:
        """1B non-embedding params, 100B tokens, A100-40GB, batch 64 / 4096 in / 1024 out."""
        from optim.campaign.demo import run_demo

        result = run_demo(
            store=store,
            out=out if out is not None else Path("archopt-demo"),
            k=k,
            progress=not json_out,
        )
        if json_out:
            _echo_json(result)
            return
        _print(_arch_table(result["proposals"], "proposed next runs (predictions)"))
        _print(_arch_table(result["pareto"], "predicted Pareto set", observed=True))
        from rich.table import Table

        table = Table(
            title="reference shapes vs the fastest Pareto shape with predicted loss <= "
            "theirs (all numbers are model predictions)",
            title_justify="left",
        )
        for c in (
            "model",
            "N",
            "pred loss",
            "tokens/s",
            "best Pareto shape",
            "its pred loss",
            "its tokens/s",
            "speed-up",
        ):
            table.add_column(c)
        for r in result["references"]:
            table.add_row(
                r["name"],
                f"{r['non_embedding_params'] / 1e9:.3f}B",
                f"{r['pred_loss_mean']:.3f}",
                f"{r['pred_tokens_per_s']:,.0f}",
                r.get("match_label") or "-",
                _fmt(r.get("match_pred_loss_mean"), ".3f"),
                _fmt(r.get("match_pred_tokens_per_s"), ",.0f"),
                _fmt(r.get("speedup"), ".2f") + ("x" if r.get("speedup") else ""),
            )
        _print(table)
        for note in result["notes"]:
            typer.echo(note)
        typer.echo(f"exported {len(result['pareto'])} configs to {result['export_dir']}")
