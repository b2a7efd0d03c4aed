"""Read the JSON files vLLM's benchmarks write into a :class:`~models.measure.Measurement`.

Two schemas (keys as vLLM's ``vllm/benchmarks/throughput.py`` and ``serve.py`` write them):

* ``vllm bench throughput --output-json F``: ``elapsed_time``, ``num_requests``,
  ``total_num_tokens``, ``requests_per_second``, ``tokens_per_second``. ``tokens_per_second``
  is ``total_num_tokens / elapsed_time`` and counts prompt *and* output tokens; the output
  tokens/s archopt optimises is ``num_requests * output_len / elapsed_time``.
* ``vllm bench serve --save-result``: ``duration``, ``completed``, ``total_input_tokens``,
  ``total_output_tokens``, ``request_throughput``, ``output_throughput`` (output tokens/s),
  ``mean_ttft_ms``, ``mean_tpot_ms``, optionally ``failed``, ``num_prompts``,
  ``max_concurrency`` (``null`` when unlimited), ``total_token_throughput`` and per-request
  lists.

The file must describe the workload it is imported for: its request count and token totals
must match ``--workload`` (2% tolerance: a random dataset re-tokenises prompts), a serve run's
``max_concurrency`` must equal the workload's batch, no request may have failed, and its own
numbers must agree (a rate equals count over time within 1%). Anything else -- an unknown
schema, a missing or non-numeric field, a zero or negative time -- is a
:class:`VllmResultError` (one line), raised before anything is cached.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

from .arch import Arch
from .errors import ArchoptError
from .files import read_json
from .hardware import get_hardware
from .measurements import Measurement
from .workload import Workload

__all__ = ["VllmResultError", "SCHEMAS", "RESULT_MAX_BYTES", "detect_schema", "read_vllm_result"]

#: Largest result file read: a serve result with per-request lists (``--save-detailed``) of a
#: thousand 1,024-token requests is ~20 MB.
RESULT_MAX_BYTES = 64 << 20
#: Keys each schema must have.
SCHEMAS: dict[str, tuple[str, ...]] = {
    "vllm bench throughput": (
        "elapsed_time",
        "num_requests",
        "total_num_tokens",
        "requests_per_second",
        "tokens_per_second",
    ),
    "vllm bench serve": (
        "duration",
        "completed",
        "total_input_tokens",
        "total_output_tokens",
        "request_throughput",
        "output_throughput",
        "mean_ttft_ms",
        "mean_tpot_ms",
    ),
}
_TOKENS_RTOL = 0.02
_RATE_RTOL = 0.01


class VllmResultError(ArchoptError):
    """A vLLM benchmark result file that cannot be imported for the given workload."""


def detect_schema(data: Mapping[str, Any], where: str) -> str:
    """Which :data:`SCHEMAS` entry ``data`` follows.

    Raises:
        VllmResultError: neither (naming the keys found), or one with fields missing.
    """
    scores = {name: sum(k in data for k in keys) for name, keys in SCHEMAS.items()}
    best = max(scores, key=lambda name: scores[name])
    if scores[best] == 0:
        found = ", ".join(sorted(data)[:6]) or "none"
        raise VllmResultError(
            f"{where}: unknown JSON schema (keys found: {found}); expected the output of `vllm bench "
            f"throughput --output-json` (elapsed_time, num_requests, ...) or `vllm bench serve "
            f"--save-result` (duration, completed, output_throughput, ...)"
        )
    missing = [k for k in SCHEMAS[best] if k not in data]
    if missing:
        raise VllmResultError(
            f"{where}: missing field(s) {', '.join(missing)} of the `{best}` schema"
        )
    return best


def _number(
    data: Mapping[str, Any], key: str, where: str, *, positive: bool = True, integer: bool = False
) -> float:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise VllmResultError(f"{where}: {key} must be a number, got {value!r}")
    if integer and value != int(value):
        raise VllmResultError(f"{where}: {key} must be an integer, got {value!r}")
    if positive and value <= 0:
        raise VllmResultError(f"{where}: {key} must be positive, got {value!r}")
    if value < 0:
        raise VllmResultError(f"{where}: {key} must not be negative, got {value!r}")
    return float(value)


def _close(a: float, b: float, rtol: float) -> bool:
    return abs(a - b) <= rtol * max(abs(a), abs(b))


def _check_tokens(
    what: str, got: float, requests: float, per_request: int, where: str, flag: str
) -> None:
    expected = requests * per_request
    if not _close(got, expected, _TOKENS_RTOL):
        raise VllmResultError(
            f"{where}: {what} is {got:.0f}, but {requests:.0f} requests of {flag} give {expected:.0f}: "
            f"the file is not a run of this workload"
        )


def _requests(wl: Workload, in_file: float, explicit: bool, where: str) -> Workload:
    if explicit:
        if in_file != wl.num_requests:
            raise VllmResultError(
                f"{where}: the file has {in_file:.0f} requests, the workload says "
                f"requests={wl.num_requests}"
            )
        return wl
    if in_file < wl.batch_size:
        raise VllmResultError(
            f"{where}: the file has {in_file:.0f} requests, fewer than the "
            f"workload's batch={wl.batch_size}"
        )
    return replace(wl, num_requests=int(in_file))


def read_vllm_result(
    path: str | Path, arch: Arch, hardware: str, workload: Workload, *, requests_given: bool = False
) -> Measurement:
    """The measurement a vLLM benchmark result file holds, checked against ``workload``.

    Args:
        path: the JSON file (read with :func:`models.files.read_json`, at most
            :data:`RESULT_MAX_BYTES`).
        arch: the shape that was served.
        hardware: the hardware profile id it ran on (one GPU of ``workload.tp``).
        workload: batch, input and output lengths (and engine settings) of the run.
        requests_given: ``workload.num_requests`` was stated (else it is taken from the file,
            which must hold at least ``batch_size`` requests).

    Returns:
        An ok :class:`Measurement` with ``origin`` the schema's tool, ``source_file`` the path,
        tokens/s the *output* tokens/s and, for a serve run, mean TTFT and TPOT.

    Raises:
        VllmResultError: see the module docstring (nothing is written).
    """
    hw = get_hardware(hardware)
    path = Path(path)
    where = f"vLLM result {path}"
    data = read_json(
        path, what="vLLM result file", max_bytes=RESULT_MAX_BYTES, error=VllmResultError
    )
    schema = detect_schema(data, where)
    lens = f"{workload.input_len} in + {workload.output_len} out tokens"
    if schema == "vllm bench throughput":
        elapsed = _number(data, "elapsed_time", where)
        n = _number(data, "num_requests", where, integer=True)
        total_tokens = _number(data, "total_num_tokens", where, integer=True)
        rps = _number(data, "requests_per_second", where)
        tps_all = _number(data, "tokens_per_second", where)
        wl = _requests(workload, n, requests_given, where)
        _check_tokens(
            "total_num_tokens",
            total_tokens,
            n,
            workload.input_len + workload.output_len,
            where,
            lens,
        )
        if not (
            _close(rps, n / elapsed, _RATE_RTOL)
            and _close(tps_all, total_tokens / elapsed, _RATE_RTOL)
        ):
            raise VllmResultError(
                f"{where}: requests_per_second / tokens_per_second disagree with "
                f"num_requests, total_num_tokens and elapsed_time"
            )
        output_tps = n * workload.output_len / elapsed
        return Measurement(
            status="ok",
            reason="",
            arch=arch,
            hardware_id=hw.id,
            **Measurement.workload_fields(wl),
            tokens_per_s=output_tps,
            tokens_per_s_spread=0.0,
            total_s=elapsed,
            repeats=1,
            device=hw.name,
            versions={"imported": schema},
            created_at=time.time(),
            origin=schema,
            source_file=str(path.resolve()),
            request_throughput=n / elapsed,
        )
    if workload.backend != "vllm":
        raise VllmResultError(
            f"{where}: a `vllm bench serve` result is vLLM serving; import it with --backend vllm"
        )
    duration = _number(data, "duration", where)
    completed = _number(data, "completed", where, integer=True)
    if (
        "failed" in data
        and data["failed"] is not None
        and _number(data, "failed", where, positive=False) > 0
    ):
        raise VllmResultError(
            f"{where}: {data['failed']} request(s) failed; import a run where all completed"
        )
    if (
        "num_prompts" in data
        and data["num_prompts"] is not None
        and _number(data, "num_prompts", where, integer=True) != completed
    ):
        raise VllmResultError(
            f"{where}: only {completed:.0f} of {data['num_prompts']} requests completed"
        )
    wl = _requests(workload, completed, requests_given, where)
    _check_tokens(
        "total_input_tokens",
        _number(data, "total_input_tokens", where, integer=True),
        completed,
        workload.input_len,
        where,
        f"{workload.input_len} prompt tokens",
    )
    out_tokens = _number(data, "total_output_tokens", where, integer=True)
    _check_tokens(
        "total_output_tokens",
        out_tokens,
        completed,
        workload.output_len,
        where,
        f"{workload.output_len} output tokens",
    )
    concurrency = data.get("max_concurrency")
    if concurrency is None:
        warnings.warn(
            f"{where} gives no max_concurrency (unlimited): taking batch={wl.batch_size} "
            f"from --workload as the concurrency",
            stacklevel=2,
        )
    elif _number(data, "max_concurrency", where, integer=True) != wl.batch_size:
        raise VllmResultError(
            f"{where}: max_concurrency is {concurrency}, the workload's batch is {wl.batch_size}"
        )
    output_tps = _number(data, "output_throughput", where)
    rps = _number(data, "request_throughput", where)
    if not (
        _close(output_tps, out_tokens / duration, _RATE_RTOL)
        and _close(rps, completed / duration, _RATE_RTOL)
    ):
        raise VllmResultError(
            f"{where}: output_throughput / request_throughput disagree with "
            f"total_output_tokens, completed and duration"
        )
    ttft = _number(data, "mean_ttft_ms", where) / 1e3
    tpot = _number(data, "mean_tpot_ms", where, positive=workload.output_len > 1) / 1e3
    return Measurement(
        status="ok",
        reason="",
        arch=arch,
        hardware_id=hw.id,
        **Measurement.workload_fields(wl),
        tokens_per_s=output_tps,
        tokens_per_s_spread=0.0,
        ttft_s=ttft,
        decode_s_per_token=tpot,
        total_s=duration,
        repeats=1,
        device=hw.name,
        versions={"imported": schema},
        created_at=time.time(),
        origin=schema,
        source_file=str(path.resolve()),
        request_throughput=rps,
    )
