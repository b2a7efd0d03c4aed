"""Run every benchmark script and summarise them (``make bench``).

    python benchmarks/run_all.py [--full] [--out DIR] [--only NAME[,NAME...]]

Each script runs in its own process (the installed package, this interpreter), its output in
``DIR/logs/NAME.log``; a progress bar shows which one is running, and a table at the end gives
each one's status, time, report and headline numbers. Exit code 0 when every script ran and met
its targets, 1 otherwise.

Quick mode (the default; measured on 2 shared, busy cores with an empty cache: propose_speed
2.7 min, throughput_validation 1.3 min, sample_efficiency 7.4 min, surrogate_validation over 15
min; the default prior and the CPU measurements are cached under ``$ARCHOPT_HOME`` and reused):

* ``propose_speed``: one repeat instead of three;
* ``throughput_validation --quick``: 8 of the 16 CPU shapes, one run each;
* ``serving_validation --quick``: the serving model's checks with 100 roofline cases (not 500);
* ``surrogate_validation --quick``: fewer least-squares starts and NUTS samples;
* ``sample_efficiency --quick``: ``archopt bench``'s quick preset (200
  candidates, shifted world), trainings-to-95% censored at the budget.

Quick reports go to ``results/quick/`` so the full reports in ``results/`` that the README
quotes stay as they are. ``--full`` runs every script with its own defaults and writes where
the README's reproduce lines say (``results/``; the sample-efficiency run to
``results/bench/full``, 600 candidates, 20 seeds): about 15-20 minutes plus the CPU measurements.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "results"


@dataclass(frozen=True)
class Step:
    """One benchmark script: how to run it quick or full, and where its report lands.

    ``args(out, quick)`` gives the script's arguments for report folder ``out``;
    ``report(out, quick)`` the report it writes; ``headline(log, report_text)`` picks the lines
    worth showing in the summary.
    """

    name: str
    args: Callable[[Path, bool], list[str]]
    report: Callable[[Path, bool], Path]
    headline: Callable[[str, str], list[str]]
    #: An option the script must accept for a quick run to keep out of ``results/`` (checked in
    #: its ``--help``); without it the quick run is not started (the summary says why).
    needs_option: str | None = None
    #: The script exits 1 (after writing its report) when a target is not met.
    exit_1_is_missed_target: bool = False


def _lines(text: str, *starts: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith(starts)]


def _md_table_rows(text: str, header: str) -> list[str]:
    """Data rows of the markdown table whose header line starts with ``header``."""
    rows, inside = [], False
    for line in text.splitlines():
        if line.startswith(header):
            inside = True
            continue
        if inside:
            if not line.startswith("|"):
                break
            if not line.startswith("| ---"):
                rows.append(" ".join(line.strip("| ").split()).replace(" | ", "; "))
    return rows


STEPS: tuple[Step, ...] = (
    Step(
        "propose_speed",
        args=lambda out, quick: (
            ["--repeats", "1", "--out", str(out / "propose_speed.md")] if quick else []
        ),
        report=lambda out, quick: (out if quick else RESULTS) / "propose_speed.md",
        headline=lambda log, md: _md_table_rows(md, "| target |"),
        exit_1_is_missed_target=True,
    ),
    Step(
        "throughput_validation",
        args=lambda out, quick: ["--quick", "--out", str(out)] if quick else [],
        report=lambda out, quick: (out if quick else RESULTS) / "throughput_validation.md",
        headline=lambda log, md: _lines(log, "cpu-time", "a100 held out"),
    ),
    Step(
        "serving_validation",
        args=lambda out, quick: ["--quick", "--out", str(out)] if quick else [],
        report=lambda out, quick: (out if quick else RESULTS) / "serving_validation.md",
        headline=lambda log, md: _lines(log, "vllm ", "hf ", "roofline:"),
        needs_option="--out",
    ),
    Step(
        "surrogate_validation",
        args=lambda out, quick: ["--quick", "--out", str(out)] if quick else [],
        report=lambda out, quick: (out if quick else RESULTS) / "surrogate_validation.md",
        headline=lambda log, md: _lines(md, "- Published", "- NUTS", "- Default prior")[:3],
        needs_option="--out",
    ),
    Step(
        "sample_efficiency",
        args=lambda out, quick: (
            ["--quick", "--out", str(out / "bench")]
            if quick
            else [
                "--seeds",
                "20",
                "--max-candidates",
                "600",
                "--max-trainings",
                "100",
                "--no-real-data",
                "--out",
                str(RESULTS / "bench" / "full"),
            ]
        ),
        report=lambda out, quick: (
            (out / "bench" if quick else RESULTS / "bench" / "full") / "report.md"
        ),
        headline=lambda log, md: _lines(
            log, *(f"{m}:" for m in ("archopt", "plain_qnehvi", "algorithm1", "random"))
        ),
    ),
)


@dataclass
class Outcome:
    name: str
    status: str  # "ok", "targets missed", "failed", "not run"
    seconds: float
    report: Path | None
    lines: list[str]


def _supports(script: Path, option: str) -> bool:
    """Whether ``script --help`` lists ``option``."""
    try:
        res = subprocess.run(
            [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return res.returncode == 0 and option in res.stdout


def _last_line(path: Path) -> str:
    """The last non-empty line of a (growing) log file, for the progress display."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - 4096))
            tail = fh.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1][:100] if lines else ""


def run_step(
    step: Step,
    out: Path,
    quick: bool,
    logs: Path,
    on_output: Callable[[str], None] = lambda line: None,
) -> Outcome:
    """Run one script to completion; its stdout and stderr go to ``logs/<name>.log``, whose
    latest line is passed to ``on_output`` every half second."""
    script = HERE / f"{step.name}.py"
    if quick and step.needs_option and not _supports(script, step.needs_option):
        return Outcome(
            step.name,
            "not run",
            0.0,
            None,
            [
                f"{script.name} has no {step.needs_option}: a quick run would overwrite the full "
                f"report in results/; run `python benchmarks/{script.name}` (full) instead"
            ],
        )
    log_path = logs / f"{step.name}.log"
    cmd = [sys.executable, str(script), *step.args(out, quick)]
    start = time.perf_counter()
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=HERE.parent, stdout=log, stderr=subprocess.STDOUT)
        try:
            while proc.poll() is None:
                time.sleep(0.5)
                on_output(_last_line(log_path))
        finally:  # interrupted (Ctrl-C, kill): do not leave the benchmark running
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        code = proc.returncode
    seconds = time.perf_counter() - start
    log_text = log_path.read_text(errors="replace")
    report = step.report(out, quick)
    report_text = report.read_text(errors="replace") if report.is_file() else ""
    if code == 0:
        status = "ok"
    elif code == 1 and report_text and step.exit_1_is_missed_target:
        status = "targets missed"
    else:
        status = f"failed (exit {code})"
        tail = [line for line in log_text.splitlines() if line.strip()][-3:]
        return Outcome(step.name, status, seconds, None, tail + [f"log: {log_path}"])
    return Outcome(step.name, status, seconds, report, step.headline(log_text, report_text))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--full", action="store_true", help="every script's full defaults, reports into results/"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS / "quick",
        help="folder for quick-mode reports and every log (default results/quick)",
    )
    parser.add_argument(
        "--only",
        default=None,
        help="comma-separated script names (default: all): " + ", ".join(s.name for s in STEPS),
    )
    args = parser.parse_args(argv)
    quick = not args.full
    steps = list(STEPS)
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - {s.name for s in STEPS})
        if unknown:
            parser.error(
                f"unknown benchmark(s) {', '.join(unknown)}; known: "
                + ", ".join(s.name for s in STEPS)
            )
        steps = [s for s in STEPS if s.name in wanted]

    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    console = Console()
    out = args.out.resolve()
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    console.print(
        f"{'full' if args.full else 'quick'} benchmarks: {len(steps)} scripts; logs in {logs}"
    )
    outcomes: list[Outcome] = []
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("benchmarks", total=len(steps))
        for step in steps:
            progress.update(task, description=f"running {step.name}")

            def show(line: str, name: str = step.name) -> None:
                progress.update(
                    task,
                    description=f"running {name}: {escape(line)}" if line else f"running {name}",
                )

            outcome = run_step(step, out, quick, logs, show)
            outcomes.append(outcome)
            progress.console.print(f"{step.name}: {outcome.status} ({outcome.seconds:.0f} s)")
            progress.advance(task)
        progress.update(task, description="done")

    table = Table(
        title=f"benchmarks ({'full' if args.full else 'quick'})",
        title_justify="left",
        show_lines=True,
    )
    for col in ("benchmark", "status", "time", "report", "headline"):
        table.add_column(col, overflow="fold")
    for o in outcomes:
        style = "green" if o.status == "ok" else "red"
        report = (
            str(o.report.relative_to(HERE.parent))
            if o.report and o.report.is_relative_to(HERE.parent)
            else (str(o.report) if o.report else "-")
        )
        table.add_row(
            o.name,
            f"[{style}]{o.status}[/{style}]",
            f"{o.seconds:.0f} s",
            report,
            "\n".join(o.lines) or "-",
        )
    console.print(table)
    return 0 if all(o.status == "ok" for o in outcomes) else 1


if __name__ == "__main__":
    import signal

    # A plain `kill` ends the run like Ctrl-C does: the running script is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
