"""Measurement jobs: serve a campaign's trial shapes on the target GPU (vLLM with dummy weights)
through the same job backends as training (:mod:`.jobs`), and cache what they measure.

For each trial shape without a measurement at the campaign's hardware and workload, the loop
writes the shape's HF ``config.json`` into ``{model}`` (a folder vLLM loads with
``--load-format dummy``: random weights, no download), substitutes the placeholders of the
user's measure command and launches it on a :class:`~optim.campaign.jobs.JobBackend`, e.g.::

    vllm bench throughput --model {model} --load-format dummy --tokenizer TOKENIZER \\
        --input-len {input} --output-len {output} --num-prompts {requests} \\
        --max-num-seqs {batch} --tensor-parallel-size {tp} --dtype {dtype} --output-json {result}

Placeholders: ``{model}`` (the folder), ``{config}`` (its config.json), ``{out}`` (the job's
run folder), ``{result}`` (the vLLM result JSON the job must write), and the workload's
``{batch}``, ``{input}``, ``{output}``, ``{requests}``, ``{tp}``, ``{dtype}``. A job that exits 0
has its result read and checked against the workload (:func:`models.vllm_results.read_vllm_result`,
both ``vllm bench throughput`` and ``vllm bench serve`` files) and cached as measured
(``MeasurementCache``); anything else marks the measurement ``failed`` with the reason (the
trial itself is untouched). Afterwards the observed trials' tokens/s in Ax are updated
(:meth:`Campaign.refresh_throughput`), and proposals use the measurements.

Resumable like training jobs: each job is recorded with its trial (payload key ``"measure"``)
before it is launched and again with its id after; a restarted loop re-attaches to running jobs
and never measures a shape twice.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from models.errors import ArchoptError

from .ax_adapter import TrialRecord
from .campaign import Campaign
from .jobs import JobBackend, JobError, poll_job, recover_job, substitute

__all__ = ["check_measure_command", "measure_targets", "run_measurements", "RESULT_FILE"]

#: The result file a measurement job writes in its run folder (``{result}``).
RESULT_FILE = "result.json"
_KEY = "measure"
_ACTIVE = ("submitting", "running")


def check_measure_command(template: str) -> None:
    """Refuse a measure command that could not serve the shape or report what it measured."""
    if not isinstance(template, str) or not ("{model}" in template or "{config}" in template):
        raise JobError(
            "the measure command must contain {model} (the folder holding the shape's "
            "config.json, for vLLM's --model with --load-format dummy) or {config}"
        )
    if "{result}" not in template:
        raise JobError(
            "the measure command must contain {result} (where the job writes the vLLM "
            "benchmark's JSON result)"
        )


def _measured(campaign: Campaign, cache: Any, rec: TrialRecord) -> bool:
    spec = campaign.spec
    return cache.newest_ok(rec.arch, spec.hardware, spec.workload) is not None


def measure_targets(
    campaign: Campaign, cache: Any, trials: list[int] | None = None
) -> list[TrialRecord]:
    """Trials to measure: ``trials`` (default: every pending or observed trial), less those
    whose shape is measured at the campaign's hardware and workload, whose measurement job ran
    already (completed or failed: measured at most once) or that repeat an earlier shape."""
    records = {r.trial: r for r in campaign.trial_records()}
    if trials is not None:
        unknown = sorted(set(trials) - set(records))
        if unknown:
            raise JobError(f"campaign {campaign.name!r} has no trial {unknown[0]}")
    chosen = [records[t] for t in trials] if trials is not None else list(records.values())
    seen = set()
    out = []
    for rec in chosen:
        if rec.arch in seen or (trials is None and rec.status not in ("pending", "observed")):
            continue
        seen.add(rec.arch)
        if not rec.meta.get(_KEY) and not _measured(campaign, cache, rec):
            out.append(rec)
    return out


def _fields(campaign: Campaign, out: Path) -> dict[str, Any]:
    wl = campaign.spec.workload
    return {
        "model": out / "model",
        "config": out / "model" / "config.json",
        "out": out,
        "result": out / RESULT_FILE,
        "batch": wl.batch_size,
        "input": wl.input_len,
        "output": wl.output_len,
        "requests": wl.num_requests,
        "tp": wl.tp,
        "dtype": wl.dtype,
    }


def _ingest(campaign: Campaign, cache: Any, rec: TrialRecord, job: dict[str, Any]) -> float:
    """Read, check and cache the job's result; its output tokens/s."""
    from models.vllm_results import read_vllm_result

    spec = campaign.spec
    m = read_vllm_result(
        Path(job["result"]), rec.arch, spec.hardware, spec.workload, requests_given=True
    )
    if m.tokens_per_s is None:  # an ok vLLM result always has it
        raise JobError(f"{job['result']} gave no tokens/s")
    cache.put(m)
    return float(m.tokens_per_s)


def run_measurements(
    campaign: Campaign,
    backend: JobBackend,
    measure_cmd: str,
    *,
    runs_dir: Path,
    max_jobs: int,
    parallel: int = 1,
    trials: list[int] | None = None,
    poll_seconds: float = 30.0,
    timeout_seconds: float | None = None,
    cache: Any | None = None,
    on_event: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Measure at most ``max_jobs`` trial shapes (at most ``parallel`` at once, see
    :func:`measure_targets`), wait for them and cache their results; measurement jobs of
    earlier invocations still running are re-attached first.

    Args:
        cache: a ``models.measure.MeasurementCache`` (default: ``$ARCHOPT_HOME``'s).

    Returns:
        ``launched``, ``completed``, ``failed`` (trial indices) of this invocation and
        ``tokens_per_s`` (trial -> measured output tokens/s).
    """
    check_measure_command(measure_cmd)
    if max_jobs < 0 or parallel < 1:
        raise JobError("--max-jobs must be >= 0 and --parallel >= 1")
    if poll_seconds <= 0 or (timeout_seconds is not None and timeout_seconds <= 0):
        raise JobError("--poll and --timeout must be positive")
    if cache is None:
        from models.measure import MeasurementCache

        cache = MeasurementCache()
    say = on_event or (lambda _: None)
    out: dict[str, Any] = {"launched": [], "completed": [], "failed": [], "tokens_per_s": {}}

    def active() -> dict[int, tuple[TrialRecord, dict[str, Any]]]:
        return {
            r.trial: (r, {**r.meta[_KEY]})
            for r in campaign.trial_records()
            if (r.meta.get(_KEY) or {}).get("backend") == backend.name
            and r.meta[_KEY].get("state") in _ACTIVE
        }

    def failed(trial: int, reason: str) -> None:
        campaign.record_job(trial, {"state": "failed", "reason": reason}, key=_KEY)
        out["failed"].append(trial)
        say(f"trial {trial}: measurement failed ({reason})")

    campaign.reload()
    for trial, (_, job) in active().items():
        if job.get("state") == "submitting" and not job.get("id"):
            recovered = recover_job(backend, job)
            if recovered is None:
                failed(trial, "the loop was interrupted while launching the measurement job")
                continue
            campaign.record_job(trial, {**recovered, "state": "running"}, key=_KEY)
        say(f"trial {trial}: re-attached to measurement job")
    queue = measure_targets(campaign, cache, trials)[:max_jobs]
    while True:
        for trial, (rec, job) in active().items():
            result = poll_job(backend, job, timeout_seconds)
            if result.state == "running":
                continue
            if result.state != "completed":
                failed(trial, result.reason or "the job failed")
                continue
            try:
                tps = _ingest(campaign, cache, rec, job)
            except ArchoptError as exc:
                failed(trial, str(exc))
                continue
            campaign.record_job(trial, {"state": "completed", "tokens_per_s": tps}, key=_KEY)
            out["completed"].append(trial)
            out["tokens_per_s"][trial] = tps
            say(f"trial {trial}: {tps:,.0f} output tokens/s measured")
        while queue and len(active()) < parallel:
            rec = queue.pop(0)
            folder = Path(runs_dir) / campaign.name / f"measure-{rec.trial:04d}"
            fields = _fields(campaign, folder)
            if folder.exists():
                raise JobError(f"{folder} exists already: run folders are never reused")
            fields["model"].mkdir(parents=True)
            fields["config"].write_text(json.dumps(rec.arch.to_hf_config(), indent=2) + "\n")
            base = {k: str(fields[k]) for k in ("out", "model", "result")}
            campaign.record_job(  # before launching: never launched twice
                rec.trial, {**base, "backend": backend.name, "state": "submitting"}, key=_KEY
            )
            try:
                job = backend.submit(substitute(measure_cmd, fields), folder)
            except (OSError, ArchoptError) as exc:
                failed(rec.trial, f"could not launch the measurement job: {exc}")
                continue
            campaign.record_job(
                rec.trial, {**job, "state": "running", "started_at": time.time()}, key=_KEY
            )
            out["launched"].append(rec.trial)
            say(f"trial {rec.trial}: measuring {rec.arch.label()} as job {job['id']}")
        if not active() and not queue:
            break
        sleep(poll_seconds)
        campaign.reload()
    if out["completed"]:
        campaign.refresh_throughput()
    return out
