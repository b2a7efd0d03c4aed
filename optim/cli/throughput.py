"""``archopt throughput | measure | calibrate``: predicted and measured serving speed.

JSON outputs (a contract other tools read):

* ``throughput --json``: :class:`models.throughput.ThroughputPrediction`'s fields
  (tokens_per_s = output tokens/s, tokens_per_s_q05/q95, rel_sigma, request_throughput,
  ttft_s, tpot_s, decode_s_per_token, total_s, memory_bytes (per GPU), fits_in_memory,
  concurrency, kv_cache_tokens, servable, shardable, unservable_reason, source (``"model"`` or
  ``"measured"``), backend), plus label, hardware, the workload's fields (batch_size,
  input_len, output_len, dtype, backend, num_requests, tp, gpu_memory_utilization,
  max_batched_tokens), calibration, warnings and, for a measurement, ``origin``.
* ``measure --json``: :meth:`Measurement.to_dict` (status, reason, tokens_per_s,
  tokens_per_s_spread, ttft_s, decode_s_per_token, total_s, peak_mem_bytes, hardware_id,
  backend, workload fields, versions, origin, source_file, arch, label, ...). Exit 1 when the
  run failed. ``measure --import FILE`` reads a ``vllm bench throughput``/``serve`` result
  instead of running anything (:mod:`models.vllm_results`).
* ``calibrate --json``: :class:`models.calibration.Calibration`'s fields plus ``saved_to``.

torch is never imported at module level; only ``measure`` imports it, inside the command.
The commands are registered by :func:`optim.cli.models.register`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from models.arch import Arch

from .output import print_fields, print_json
from .shape import shape_options

__all__ = [
    "throughput_command",
    "measure_command",
    "calibrate_command",
    "JsonOption",
    "HardwareFileOption",
]


def _workload(
    batch_size: int,
    input_len: int,
    output_len: int,
    dtype: str,
    backend: str,
    workload: str | None,
    requests: int | None = None,
    tp: int = 1,
):
    from models.throughput import Workload

    if workload is not None:
        return Workload.parse(
            workload if "backend=" in workload else f"{workload},backend={backend}"
        )
    return Workload(
        batch_size=batch_size,
        input_len=input_len,
        output_len=output_len,
        dtype=dtype,
        backend=backend,
        num_requests=requests,
        tp=tp,
    )


def _requests_given(workload: str | None, requests: int | None) -> bool:
    """Whether the request count was stated (``--requests`` or ``requests=`` in ``--workload``)."""
    if workload is None:
        return requests is not None
    keys = {
        part.partition("=")[0].strip().lower().replace("-", "_") for part in workload.split(",")
    }
    return bool(keys & {"requests", "num_requests", "prompts", "num_prompts"})


#: The ``--json`` flag of every model command.
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
_BatchOpt = Annotated[int, typer.Option("--batch-size", help="Sequences generated together.")]
_InputOpt = Annotated[int, typer.Option("--input-len", help="Prompt tokens per sequence.")]
_OutputOpt = Annotated[int, typer.Option("--output-len", help="New tokens per sequence.")]
_DtypeOpt = Annotated[str, typer.Option("--dtype", help="Weights and KV-cache dtype.")]
_BackendOpt = Annotated[
    str, typer.Option("--backend", help="vllm (serving, default) or hf (HF generate).")
]
_WorkloadOpt = Annotated[
    Optional[str],
    typer.Option(
        "--workload",
        help='Instead of the size flags: "batch=64,input=4096,output=1024[,requests=N][,tp=N]".',
    ),
]
_RequestsOpt = Annotated[
    Optional[int], typer.Option("--requests", help="Requests in the run (default: one batch).")
]
_TpOpt = Annotated[int, typer.Option("--tp", help="Tensor-parallel GPUs (vllm).")]
#: ``--hardware-file``: extra hardware profiles for the commands that look hardware up.
HardwareFileOption = Annotated[
    Optional[Path],
    typer.Option(
        "--hardware-file",
        help="Extra hardware profiles (JSON) (default: $ARCHOPT_HOME/hardware.json).",
    ),
]


@shape_options
def throughput_command(
    arch: Arch,
    hardware: Annotated[
        str, typer.Option("--hardware", help="Hardware id (see `archopt hardware`).")
    ] = "a100-40gb",
    batch_size: _BatchOpt = 1,
    input_len: _InputOpt = 128,
    output_len: _OutputOpt = 256,
    dtype: _DtypeOpt = "bfloat16",
    backend: _BackendOpt = "vllm",
    requests: _RequestsOpt = None,
    tp: _TpOpt = 1,
    workload: _WorkloadOpt = None,
    hardware_file: HardwareFileOption = None,
    json_out: JsonOption = False,
) -> None:
    """Predicted serving speed with its 90% band (or the cached measurement when there is one)."""
    import warnings

    from models.hardware import get_hardware
    from models.measure import MeasurementCache, default_cache_path
    from models.throughput import load_calibration, predict_throughput
    from models.uncertainty import calibration_warnings

    wl = _workload(batch_size, input_len, output_len, dtype, backend, workload, requests, tp)
    hw = get_hardware(hardware, hardware_file)
    cal = load_calibration(hw.id, wl.backend)
    prediction = predict_throughput(arch, hw, wl, cal)
    notes = list(calibration_warnings(cal, wl))
    origin = None
    if default_cache_path().exists():  # never create the cache just to look into it
        hit = MeasurementCache().newest_ok(arch, hw.id, wl)
        if hit is not None:
            prediction, origin, notes = hit.to_prediction(), hit.origin, []
    for note in notes:
        warnings.warn(note, stacklevel=1)
    out = {
        **prediction.to_dict(),
        "label": arch.label(),
        "hardware": hw.id,
        **wl.to_dict(),
        "calibration": cal.to_dict(),
        "warnings": notes,
    }
    if origin is not None:
        out["origin"] = origin
    if json_out:
        print_json(out)
    else:
        rows = [(k, v) for k, v in out.items() if k not in ("calibration", "warnings")]
        rows.append(("calibration", f"{cal.source} (n={cal.n_points})"))
        print_fields(f"{arch.label()} on {hw.id}", rows)


@shape_options
def measure_command(
    arch: Arch,
    backend: Annotated[
        Optional[str],
        typer.Option(
            "--backend", help="hf or vllm (default: hf for a run here, vllm for --import)."
        ),
    ] = None,
    batch_size: _BatchOpt = 1,
    input_len: _InputOpt = 128,
    output_len: _OutputOpt = 256,
    dtype: _DtypeOpt = "bfloat16",
    requests: _RequestsOpt = None,
    tp: _TpOpt = 1,
    workload: _WorkloadOpt = None,
    repeats: Annotated[
        int, typer.Option("--repeats", help="Timed repetitions (median reported).")
    ] = 3,
    device: Annotated[
        Optional[str], typer.Option("--device", help="cpu or cuda[:i] (default: cuda if present).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Measure again even if cached.")] = False,
    threads: Annotated[
        Optional[int],
        typer.Option(
            "--threads",
            help="CPU threads for torch (default: torch's; 1 is steadier on a shared machine).",
        ),
    ] = None,
    import_file: Annotated[
        Optional[Path],
        typer.Option(
            "--import",
            help="Cache a `vllm bench throughput --output-json` or `vllm bench serve "
            "--save-result` file instead of running (needs --hardware).",
        ),
    ] = None,
    hardware: Annotated[
        Optional[str],
        typer.Option("--hardware", help="With --import: the hardware id the file was measured on."),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Run the model on this machine's device (random weights), time it and cache the result;
    or import a vLLM benchmark result (``--import``)."""
    from models.errors import ArchoptError

    if import_file is not None:
        _import_result(
            arch,
            import_file,
            hardware,
            backend or "vllm",
            batch_size,
            input_len,
            output_len,
            dtype,
            requests,
            tp,
            workload,
            json_out,
        )
        return
    if hardware is not None:
        raise ArchoptError("--hardware is for --import; a run here measures this machine's device")
    from models.measure import measure

    wl = _workload(
        batch_size, input_len, output_len, dtype, backend or "hf", workload, requests, tp
    )
    if repeats < 1:
        raise ArchoptError(f"--repeats must be >= 1, got {repeats}")
    if device is not None and not (device == "cpu" or device.startswith("cuda")):
        raise ArchoptError(f"--device must be cpu or cuda[:i], got {device!r}")
    if threads is not None and threads < 1:
        raise ArchoptError(f"--threads must be >= 1, got {threads}")
    result = measure(arch, wl, repeats=repeats, device=device, force=force, threads=threads)
    if json_out:
        print_json(result.to_dict())
    else:
        rows = [(k, v) for k, v in result.to_dict().items() if k not in ("arch", "times_s")]
        print_fields(f"{arch.label()} measured", rows)
    if not result.ok:
        if not json_out:
            typer.echo(f"measurement failed: {result.reason}", err=True)
        raise typer.Exit(code=1)


def _import_result(
    arch: Arch,
    path: Path,
    hardware: str | None,
    backend: str,
    batch_size: int,
    input_len: int,
    output_len: int,
    dtype: str,
    requests: int | None,
    tp: int,
    workload: str | None,
    json_out: bool,
) -> None:
    """``measure --import``: validate the file against the workload, then cache it."""
    from models.errors import ArchoptError
    from models.hardware import get_hardware
    from models.measure import MeasurementCache
    from models.vllm_results import read_vllm_result

    if hardware is None:
        raise ArchoptError("--import needs --hardware (the profile id the file was measured on)")
    wl = _workload(batch_size, input_len, output_len, dtype, backend, workload, requests, tp)
    hw = get_hardware(hardware)
    result = read_vllm_result(
        path, arch, hw.id, wl, requests_given=_requests_given(workload, requests)
    )
    MeasurementCache().put(result)
    if json_out:
        print_json(result.to_dict())
    else:
        rows = [
            (k, v)
            for k, v in result.to_dict().items()
            if k not in ("arch", "times_s", "cpu_times_s")
        ]
        print_fields(f"{arch.label()} imported ({result.origin})", rows)


def calibrate_command(
    hardware: Annotated[
        str, typer.Option("--hardware", help="Hardware id whose cached measurements to fit.")
    ] = "cpu",
    backend: Annotated[
        Optional[str],
        typer.Option(
            "--backend",
            help="hf or vllm (default: the one backend with measurements on that hardware).",
        ),
    ] = None,
    save: Annotated[
        bool, typer.Option("--save/--no-save", help="Write to $ARCHOPT_HOME/calibrations.json.")
    ] = True,
    json_out: JsonOption = False,
) -> None:
    """Fit the throughput model's constants (and their posterior) to the cached measurements of
    one hardware/backend: harness runs and imported vLLM results alike."""
    from models.errors import ArchoptError
    from models.hardware import get_hardware
    from models.measure import MeasurementCache, default_cache_path
    from models.throughput import BACKENDS, calibrate, save_calibration

    hw = get_hardware(hardware)
    if backend is not None and backend not in BACKENDS:
        raise ArchoptError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if not default_cache_path().exists():
        raise ArchoptError(
            "no measurements cached yet (run `archopt measure` or `archopt measure --import` first)"
        )
    cache = MeasurementCache()
    by_backend = {b: cache.records(hw.id, b, status="ok") for b in BACKENDS}
    if backend is None:
        found = [b for b, recs in by_backend.items() if recs]
        if len(found) != 1:
            raise ArchoptError(
                f"no successful cached measurements for {hw.id}"
                if not found
                else f"{hw.id} has both {' and '.join(found)} measurements; pass --backend"
            )
        backend = found[0]
    records = by_backend[backend]
    if not records:
        raise ArchoptError(f"no successful cached measurements for {hw.id}/{backend}")
    origins = sorted({m.origin for m in records})
    cal = calibrate(
        records,
        hw,
        backend,
        source=f"archopt calibrate: {len(records)} cached measurements ({', '.join(origins)})",
    )
    path = save_calibration(cal) if save else None
    out = {**cal.to_dict(), "saved_to": str(path) if path else None}
    if json_out:
        print_json(out)
    else:
        print_fields(
            f"calibration {hw.id}/{backend}",
            [(k, v) for k, v in out.items() if k != "posterior_cov"],
        )
