"""Training jobs: launch a campaign's proposals, watch them, ingest their losses (``archopt run``).

For each proposal the loop writes its HF ``config.json`` into a fresh run folder, substitutes
``{config}`` and ``{out}`` in the user's train command, launches it on a :class:`JobBackend` and
polls. A job writes ``{out}/metrics.jsonl`` (one JSON object a line with at least ``loss``); a
job that exits 0 completes its trial with the last line's loss, anything else (non-zero exit,
missing or invalid metrics, a timeout) fails the trial with the reason, and the loop goes on.

Resumable: every job is recorded with its trial in the campaign store *before* it is launched
(state ``submitting``) and again with its id after, so a killed ``archopt run`` started again
re-attaches to running jobs, ingests results that arrived meanwhile and never launches a trial
twice (a job interrupted between the two records is found by its run folder's pid file, else
failed as interrupted).

Backends share one small interface (:class:`JobBackend`: ``submit``, ``poll``, ``cancel``), the
shape of Ax's ``IRunner`` (``run_trial``, ``poll_trial``, ``stop_trial``). Ax's own loop
(``Client.run_trials``) is not used: it asks Ax's generation strategy for trials, and archopt's
proposals come from its own model over the budget-preserving candidate set.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from models.errors import ArchoptError
from models.files import read_text

from .campaign import Campaign
from .errors import CampaignError

__all__ = [
    "JobBackend",
    "LocalBackend",
    "SubmititBackend",
    "JobError",
    "JobResult",
    "read_metrics",
    "run_jobs",
    "BACKENDS",
    "make_backend",
    "METRICS_FILE",
    "substitute",
    "poll_job",
    "recover_job",
]

#: The file a training job writes into its run folder.
METRICS_FILE = "metrics.jsonl"
_METRICS_MAX_BYTES = 64 << 20
_PID_FILE = ".archopt-job.json"
_EXIT_FILE = ".archopt-exit-code"


class JobError(ArchoptError):
    """Bad ``archopt run`` input (a train command without ``{config}``, an unknown backend...)."""


@dataclass(frozen=True)
class JobResult:
    """What polling a job found: ``state`` is ``running``, ``completed`` or ``failed``."""

    state: str
    reason: str | None = None


class JobBackend(Protocol):
    """Where training jobs run. ``submit`` returns JSON-able metadata (at least ``id``) that
    ``poll`` and ``cancel`` accept later, from any process."""

    name: str

    def submit(self, command: str, out_dir: Path) -> dict[str, Any]: ...

    def poll(self, job: dict[str, Any]) -> JobResult: ...

    def cancel(self, job: dict[str, Any]) -> None: ...


# ---- local subprocesses -----------------------------------------------------------------------
def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (``/proc/<pid>/stat`` field 22): tells a re-used pid
    apart. ``None`` where /proc is missing."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    state = None
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        pass
    if state == "Z":  # finished, not yet reaped by its parent
        return False
    return start is None or _start_time(pid) == start


class LocalBackend:
    """Jobs as local subprocesses in their own session (they outlive ``archopt run``). A shell
    wrapper records the exit code in the run folder, so any later process can tell how a job
    ended."""

    name = "local"

    def __init__(self) -> None:
        self._children: dict[int, subprocess.Popen] = {}

    def submit(self, command: str, out_dir: Path) -> dict[str, Any]:
        out_dir.mkdir(parents=True, exist_ok=True)
        exit_file = shlex.quote(str(out_dir / _EXIT_FILE))
        log = shlex.quote(str(out_dir / "job.log"))
        wrapped = f"( {command} ) > {log} 2>&1; echo $? > {exit_file}"
        proc = subprocess.Popen(
            ["/bin/sh", "-c", wrapped],
            cwd=out_dir,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._children[proc.pid] = proc
        job = {"id": str(proc.pid), "start": _start_time(proc.pid)}
        (out_dir / _PID_FILE).write_text(json.dumps(job))
        return job

    def poll(self, job: dict[str, Any]) -> JobResult:
        out = Path(job["out"])
        pid = int(job["id"])
        child = self._children.get(pid)
        if child is not None:
            child.poll()  # reap it, so a finished child is not mistaken for a running one
        exit_file = out / _EXIT_FILE
        if exit_file.exists():
            code = exit_file.read_text().strip()
            if code == "0":
                return JobResult("completed")
            return JobResult(
                "failed", f"the train command exited with code {code} (log: {out / 'job.log'})"
            )
        if _alive(pid, job.get("start")):
            return JobResult("running")
        if exit_file.exists():  # it finished between the two checks
            return self.poll(job)
        return JobResult("failed", "the job's process ended without an exit code (killed?)")

    def cancel(self, job: dict[str, Any]) -> None:
        pid = int(job["id"])
        if _alive(pid, job.get("start")):
            try:
                os.killpg(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass


# ---- SLURM (or submitit's local executor) ----------------------------------------------------
class SubmititBackend:
    """Jobs through submitit: ``cluster="slurm"`` submits to SLURM (``sbatch``), ``"local"``
    runs them with submitit's local executor (single machines, tests). Job ids are stored with
    the trials; a restarted ``archopt run`` re-attaches to SLURM jobs by id.

    Args:
        cluster: ``"slurm"`` or ``"local"``.
        parameters: submitit executor parameters (``timeout_min``, ``slurm_partition``, ``gpus_per_node``...).
    """

    def __init__(self, cluster: str = "slurm", parameters: dict[str, Any] | None = None) -> None:
        if cluster not in ("slurm", "local"):
            raise JobError(f"submitit cluster must be 'slurm' or 'local', got {cluster!r}")
        self.cluster = cluster
        self.name = cluster
        self.parameters = dict(parameters or {})
        self._jobs: dict[str, Any] = {}

    def submit(self, command: str, out_dir: Path) -> dict[str, Any]:
        import submitit

        out_dir.mkdir(parents=True, exist_ok=True)
        executor = submitit.AutoExecutor(folder=out_dir / "submitit", cluster=self.cluster)
        if self.parameters:
            executor.update_parameters(**self.parameters)
        job = executor.submit(
            submitit.helpers.CommandFunction(["/bin/sh", "-c", command], cwd=str(out_dir))
        )
        self._jobs[str(job.job_id)] = job
        return {"id": str(job.job_id), "folder": str(out_dir / "submitit")}

    def _job(self, job: dict[str, Any]) -> Any:
        import submitit

        known = self._jobs.get(str(job["id"]))
        if known is not None:
            return known
        if self.cluster != "slurm":
            return None  # a local-executor job of an earlier process: not re-attachable
        return submitit.SlurmJob(folder=job["folder"], job_id=str(job["id"]))

    def poll(self, job: dict[str, Any]) -> JobResult:
        handle = self._job(job)
        if handle is None:
            return JobResult(
                "failed",
                "submitit local jobs cannot be re-attached after a "
                "restart (use --backend local or slurm)",
            )
        if not handle.done():
            return JobResult("running")
        error = handle.exception()
        if error is not None:
            return JobResult("failed", submitit_failure(str(job["id"]), str(error)))
        return JobResult("completed")

    def cancel(self, job: dict[str, Any]) -> None:
        handle = self._job(job)
        if handle is not None:
            handle.cancel(check=False)


def submitit_failure(job_id: str, error: str) -> str:
    """The reason of a failed submitit job in one line: the command's exit code when submitit's
    trace reports one (as the local backend says it), else the end of the trace, where the
    cause is."""
    import re

    text = " ".join(error.split())
    code = re.findall(r"returned non-zero exit status (-?\d+)", text)
    if code:
        return f"job {job_id} exited with code {code[-1]}"
    return (
        f"job {job_id} failed: ...{text[-300:]}"
        if len(text) > 300
        else f"job {job_id} failed: {text}"
    )


BACKENDS: dict[str, Callable[[], JobBackend]] = {
    "local": LocalBackend,
    "slurm": lambda: SubmititBackend("slurm"),
    "submitit-local": lambda: SubmititBackend("local"),
}


def make_backend(name: str) -> JobBackend:
    if name not in BACKENDS:
        raise JobError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    return BACKENDS[name]()


# ---- metrics ------------------------------------------------------------------------------------
def read_metrics(out_dir: Path) -> float:
    """The loss of the last line of ``out_dir/metrics.jsonl``.

    Raises:
        JobError: missing, empty or invalid file (a line that is not a JSON object, or a last
            line without a finite positive ``loss``), with the line number.
    """
    path = out_dir / METRICS_FILE
    if not path.exists():
        raise JobError(f"the job wrote no {METRICS_FILE} in {out_dir}")
    text = read_text(path, max_bytes=_METRICS_MAX_BYTES, what="metrics file", error=JobError)
    last = None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, parse_constant=_no_constant)
        except ValueError:
            raise JobError(f"{path} line {number} is not JSON") from None
        if not isinstance(row, dict):
            raise JobError(f"{path} line {number} is not a JSON object")
        last = (number, row)
    if last is None:
        raise JobError(f"{path} is empty")
    number, row = last
    loss = row.get("loss")
    if (
        isinstance(loss, bool)
        or not isinstance(loss, (int, float))
        or not math.isfinite(loss)
        or loss <= 0
    ):
        raise JobError(f"{path} line {number} has no finite positive 'loss' (got {loss!r})")
    return float(loss)


def _no_constant(name: str) -> Any:
    raise ValueError(name)


# ---- the loop -----------------------------------------------------------------------------------
def substitute(template: str, fields: dict[str, Any]) -> str:
    """``template`` with each ``{name}`` of ``fields`` replaced by its value, shell-quoted."""
    for name, value in fields.items():
        template = template.replace("{" + name + "}", shlex.quote(str(value)))
    return template


def poll_job(backend: JobBackend, job: dict[str, Any], timeout_seconds: float | None) -> JobResult:
    """Poll ``job``; one running longer than ``timeout_seconds`` (from its ``started_at``) is
    cancelled and reported failed."""
    result = backend.poll(job)
    if result.state != "running" or timeout_seconds is None:
        return result
    started = float(job.get("started_at") or time.time())
    if time.time() - started <= timeout_seconds:
        return result
    backend.cancel(job)
    return JobResult(
        "failed", f"the job ran longer than --timeout {timeout_seconds:g} s and was cancelled"
    )


def recover_job(backend: JobBackend, job: dict[str, Any]) -> dict[str, Any] | None:
    """The id of a job recorded as ``submitting`` whose launch was interrupted before its id was
    stored: a local job's pid file in its run folder; ``None`` when it cannot be found."""
    pid_file = Path(job["out"]) / _PID_FILE
    if backend.name == "local" and pid_file.exists():
        return dict(json.loads(pid_file.read_text()))
    return None


def check_train_command(template: str) -> None:
    """Refuse a train command that could not train the proposed shape."""
    if not isinstance(template, str) or "{config}" not in template:
        raise JobError(
            "the train command must contain {config} (the path of the proposed shape's config.json)"
        )
    if "{out}" not in template:
        raise JobError(
            "the train command must contain {out} (the run folder where the job "
            f"writes {METRICS_FILE})"
        )


def run_jobs(
    campaign: Campaign,
    backend: JobBackend,
    train_cmd: str,
    *,
    runs_dir: Path,
    max_trials: int,
    parallel: int = 1,
    poll_seconds: float = 30.0,
    timeout_seconds: float | None = None,
    on_event: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Launch at most ``max_trials`` new trials (at most ``parallel`` at once), wait for them
    and ingest their results; jobs of earlier invocations still running are re-attached.

    Returns:
        ``launched``, ``completed``, ``failed`` (trial indices) of this invocation.
    """
    check_train_command(train_cmd)
    if max_trials < 0 or parallel < 1:
        raise JobError("--max-trials must be >= 0 and --parallel >= 1")
    if poll_seconds <= 0 or (timeout_seconds is not None and timeout_seconds <= 0):
        raise JobError("--poll and --timeout must be positive")
    say = on_event or (lambda _: None)
    runs_dir = Path(runs_dir)
    launched: list[int] = []
    completed: list[int] = []
    failed: list[int] = []
    attempts = 0  # proposals taken in this invocation (a failed launch counts)

    def active() -> dict[int, dict[str, Any]]:
        return {
            r.trial: {**r.meta["job"]}
            for r in campaign.trial_records()
            if r.status == "pending"
            and (r.meta.get("job") or {}).get("backend") == backend.name
            and (r.meta["job"].get("state") in ("submitting", "running"))
        }

    campaign.reload()
    for trial, job in active().items():
        if job.get("state") == "submitting" and not job.get("id"):
            recovered = recover_job(backend, job)
            if recovered is not None:
                campaign.record_job(trial, {**recovered, "state": "running"})
                say(f"trial {trial}: re-attached to job {recovered['id']}")
            else:
                campaign.fail_trial(trial, "archopt run was interrupted while launching the job")
                failed.append(trial)
        else:
            say(f"trial {trial}: re-attached to job {job.get('id')}")
    while True:
        running = active()
        for trial, job in running.items():
            result = poll_job(backend, job, timeout_seconds)
            if result.state == "running":
                continue
            if result.state == "completed":
                try:
                    loss = read_metrics(Path(job["out"]))
                    campaign.observe(trial, loss, run=f"{backend.name}:{job.get('id')}")
                except ArchoptError as exc:
                    campaign.fail_trial(trial, str(exc))
                    failed.append(trial)
                    say(f"trial {trial}: failed ({exc})")
                    continue
                campaign.record_job(trial, {"state": "completed"})
                completed.append(trial)
                say(f"trial {trial}: loss {loss:.4f}")
            else:
                campaign.fail_trial(trial, result.reason or "the job failed")
                failed.append(trial)
                say(f"trial {trial}: failed ({result.reason})")
        running = active()
        free = min(parallel - len(running), max_trials - attempts)
        if free > 0:
            rows = campaign.propose(free)
            if not rows and not running:
                break  # nothing left to propose
            for row in rows:
                attempts += 1
                trial = int(row["trial"])
                out = runs_dir / campaign.name / f"trial-{trial:04d}"
                config = out / "config.json"
                _write_config(row, config)
                base = {
                    "backend": backend.name,
                    "out": str(out),
                    "config": str(config),
                    "state": "submitting",
                }
                campaign.record_job(trial, base)  # before launching: never launched twice
                try:
                    job = backend.submit(substitute(train_cmd, {"config": config, "out": out}), out)
                except (OSError, ArchoptError) as exc:
                    campaign.fail_trial(trial, f"could not launch the job: {exc}")
                    failed.append(trial)
                    continue
                campaign.record_job(trial, {**job, "state": "running", "started_at": time.time()})
                launched.append(trial)
                say(f"trial {trial}: launched {row['label']} as job {job['id']}")
            running = active()
        if not running and attempts >= max_trials:
            break
        sleep(poll_seconds)
        campaign.reload()
    return {"launched": launched, "completed": completed, "failed": failed}


def _write_config(row: dict[str, Any], path: Path) -> None:
    from models.arch import Arch

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        raise CampaignError(f"{path} exists already: run folders are never reused")
    arch = Arch.from_mapping(row)
    path.write_text(json.dumps(arch.to_hf_config(), indent=2) + "\n")
