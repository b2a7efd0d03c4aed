"""``archopt fit | predict``: fit a scaling law to run tables, predict loss from a saved posterior.

JSON outputs (a contract other tools read):

* ``fit --json``: :meth:`surrogate.posterior.LawPosterior.to_json` -- ``law``, ``method``,
  ``sources``, ``reference_source``, ``source_terms``, ``fixed``, ``noise_sigma``,
  ``coefficients`` (name -> ``mean, sd, q05, q95, r_hat, ess_bulk, dominated_by``),
  ``diagnostics`` (``max_r_hat, min_ess_bulk, divergences, warnings, ...``), ``info`` -- plus
  ``out`` (the saved file).
* ``predict --json``: a list with one object per row of the runs file, in file order:
  ``run``, ``tokens``, ``pred_mean``, ``pred_sd``, ``pred_q05``, ``pred_q50``, ``pred_q95``,
  ``pred_source`` and ``loss`` when the file has it. With ``--relative-to RUN`` every object
  also has ``relative_to`` (that run's name) and ``rel_mean``, ``rel_q05``, ``rel_q50``,
  ``rel_q95`` (this row's loss minus RUN's, from draws joint across rows: what the two rows
  share, the level and the size's discrepancy, cancels) and ``p_better`` (the probability that
  this row's expected loss is below RUN's).

Bad input (missing columns, NaN, unknown law, unreadable posterior) is one stderr line and
exit 2; ``fit`` validates everything before fitting and writes ``--out`` atomically, so a
failed command leaves no file behind and an existing one unchanged. jax/numpyro/arviz are
imported inside the commands only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, List, Optional

import typer

from models.errors import ArchoptError

__all__ = ["register", "FIT_METHODS", "PREDICT_FIELDS", "RELATIVE_FIELDS"]

FIT_METHODS: tuple[str, ...] = ("lsq", "huber", "bayes")
#: Fields of every ``predict --json`` object (``loss`` is added when the table has it).
PREDICT_FIELDS: tuple[str, ...] = (
    "run",
    "tokens",
    "pred_mean",
    "pred_sd",
    "pred_q05",
    "pred_q50",
    "pred_q95",
    "pred_source",
)
#: Fields added to every ``predict --json`` object by ``--relative-to``.
RELATIVE_FIELDS: tuple[str, ...] = (
    "relative_to",
    "rel_mean",
    "rel_q05",
    "rel_q50",
    "rel_q95",
    "p_better",
)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def fit_command(
    runs: Annotated[List[Path], typer.Option("--runs", help="Run table CSV (repeatable).")],
    out: Annotated[Path, typer.Option("--out", help="Where to save the posterior (netCDF).")],
    law: Annotated[
        Optional[str],
        typer.Option(
            "--law",
            help="stacked (default for bayes: chinchilla, aspect and conditional mixed by "
            "stacking weights) | chinchilla | aspect | conditional (default for lsq/huber) | ...",
        ),
    ] = None,
    method: Annotated[str, typer.Option("--method", help="lsq | huber | bayes")] = "bayes",
    json_out: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
    num_chains: Annotated[int, typer.Option("--num-chains")] = 2,
    num_warmup: Annotated[int, typer.Option("--num-warmup")] = 500,
    num_samples: Annotated[int, typer.Option("--num-samples")] = 500,
    n_starts: Annotated[int, typer.Option("--n-starts", help="Starts for lsq/huber.")] = 16,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    source_terms: Annotated[
        str, typer.Option("--source-terms", help="none | offset | scale | affine | chinchilla")
    ] = "affine",
    reference_source: Annotated[Optional[str], typer.Option("--reference-source")] = None,
    discrepancy: Annotated[
        str,
        typer.Option(
            "--discrepancy",
            help="bayes only: orth (default, validated) | orth_shared | group | shared | gp "
            "| gp_shared | none",
        ),
    ] = "orth",
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Fit a law to run tables, save the posterior, print coefficients and diagnostics."""
    from models.files import prepare_output_file, write_errors
    from surrogate.laws import get_law
    from surrogate.posterior import SOURCE_TERMS
    from surrogate.runs import load_runs

    if law is None:
        law = "stacked" if method == "bayes" else "conditional"
    get_law(law)  # unknown law -> ArchoptError before any work
    if method not in FIT_METHODS:
        raise ArchoptError(f"unknown method {method!r}; known: {', '.join(FIT_METHODS)}")
    if law == "stacked" and method != "bayes":
        raise ArchoptError(
            f"--law stacked mixes Bayesian fits: use --method bayes, or a "
            f"single law (chinchilla, aspect, conditional) with --method {method}"
        )
    if source_terms not in SOURCE_TERMS:
        raise ArchoptError(
            f"unknown --source-terms {source_terms!r}; known: {', '.join(SOURCE_TERMS)}"
        )
    from surrogate.bayes import DISCREPANCY

    if discrepancy not in (*DISCREPANCY, "none"):
        raise ArchoptError(
            f"unknown --discrepancy {discrepancy!r}; known: {', '.join((*DISCREPANCY, 'none'))}"
        )
    table = load_runs(*runs)
    out = prepare_output_file(out, what="--out")  # before the fit, not after it
    if method == "bayes":
        from surrogate.bayes import fit_bayes

        posterior = fit_bayes(
            table,
            law,
            num_chains=num_chains,
            num_warmup=num_warmup,
            num_samples=num_samples,
            seed=seed,
            progress=progress,
            reference_source=reference_source,
            source_terms=source_terms,
            discrepancy=False if discrepancy == "none" else discrepancy,
        )
    else:
        from surrogate.lsq import fit_lsq

        posterior = fit_lsq(
            table,
            law,
            method=method,
            n_starts=n_starts,
            seed=seed,
            source_terms=source_terms,
            reference_source=reference_source,
        ).to_posterior(seed=seed)
    with write_errors(out, what="posterior"):
        posterior.save(out)
    report = posterior.to_json()
    report["out"] = str(out)
    if json_out:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    _print_fit(report)


def _print_fit(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    table = Table(
        title=f"{report['law']} law, {report['method']} fit "
        f"(reference source: {report['reference_source']})"
    )
    for col in ("term", "mean", "q05", "q95", "r_hat", "ess_bulk", "dominated_by"):
        table.add_column(col, justify="left" if col in ("term", "dominated_by") else "right")
    for name, c in report["coefficients"].items():
        table.add_row(
            escape(name),
            *(_fmt(c[k]) for k in ("mean", "q05", "q95", "r_hat", "ess_bulk")),
            str(c["dominated_by"]),
        )
    console.print(table)
    diag = report["diagnostics"]
    console.print(
        f"sources: {', '.join(report['sources'])}; per-source terms: "
        f"{report['source_terms']}; fixed: {', '.join(report['fixed']) or 'none'}"
    )
    console.print(
        f"diagnostics: max r_hat {_fmt(diag.get('max_r_hat'))}, min ESS "
        f"{_fmt(diag.get('min_ess_bulk'))}, divergences {diag.get('divergences')}"
    )
    for w in diag.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {w}")
    console.print(f"saved {report['out']}")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def predict_command(
    posterior: Annotated[Path, typer.Option("--posterior", help="A file saved by `fit`.")],
    runs: Annotated[Path, typer.Option("--runs", help="CSV with shape columns (loss optional).")],
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
    tokens: Annotated[
        Optional[float], typer.Option("--tokens", help="Training tokens for every row.")
    ] = None,
    source: Annotated[
        Optional[str],
        typer.Option(
            "--source",
            help="Apply this source's terms to every row (default: the row's own "
            "source if fitted, else the reference).",
        ),
    ] = None,
    relative_to: Annotated[
        Optional[str],
        typer.Option(
            "--relative-to",
            help="Also print every row's loss minus this run's (a run name of "
            "--runs), with 5/50/95% quantiles and P(row beats it).",
        ),
    ] = None,
) -> None:
    """Posterior-predictive loss (mean, sd, 5/50/95% quantiles) for every row of a CSV."""
    from surrogate.posterior import LawPosterior
    from surrogate.runs import load_runs

    if tokens is not None and not (math.isfinite(tokens) and tokens > 0):
        raise ArchoptError(f"--tokens must be a finite positive number, got {tokens}")
    post = LawPosterior.load(posterior)
    table = load_runs(runs, require_loss=False, require_tokens=tokens is None)
    reference = None
    if relative_to is not None:
        matches = [i for i, name in enumerate(table["run"].astype(str)) if name == relative_to]
        if len(matches) != 1:
            raise ArchoptError(
                f"--relative-to {relative_to!r}: "
                + ("no such run in " if not matches else f"{len(matches)} rows share that name in ")
                + f"{runs}"
            )
        reference = matches[0]
    pred = post.predict(table, tokens, source=source)
    rel = None if reference is None else post.relative(table, reference, tokens, source=source)
    used_tokens = table["tokens"].to_numpy() if tokens is None else [tokens] * len(table)
    rows = []
    for i, (idx, p) in enumerate(pred.iterrows()):
        obj: dict[str, Any] = {"run": str(table.at[idx, "run"]), "tokens": float(used_tokens[i])}
        for key in PREDICT_FIELDS[2:]:
            obj[key] = p[key] if key == "pred_source" else _finite_or_none(float(p[key]))
        if rel is not None:
            obj["relative_to"] = relative_to
            for key in RELATIVE_FIELDS[1:]:
                obj[key] = _finite_or_none(float(rel.iloc[i][key]))
        if "loss" in table.columns and not _isnan(table.at[idx, "loss"]):
            obj["loss"] = float(table.at[idx, "loss"])
        rows.append(obj)
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    title = f"predicted loss ({post.law}, {post.method})"
    if rel is not None:
        title += f"; rel = loss - loss of {relative_to}"
    out = Table(title=title)
    cols = ["run", "pred_mean", "pred_q05", "pred_q95"] + (["loss"] if "loss" in table else [])
    if rel is not None:
        cols += ["rel_mean", "rel_q05", "rel_q50", "rel_q95", "p_better"]
    for c in cols:
        out.add_column(c, justify="left" if c == "run" else "right")
    for obj in rows:
        out.add_row(*(_fmt(obj.get(c)) for c in cols))
    Console().print(out)


def _isnan(value: Any) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True


def register(app: typer.Typer) -> None:
    """Add ``fit`` and ``predict`` to the archopt app."""
    app.command("fit")(fit_command)
    app.command("predict")(predict_command)
