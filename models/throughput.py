"""Predicted serving speed of an arch on a device for a workload: the public entry points.

Two backends (``Workload.backend``): ``vllm`` (default; :mod:`models.serving`: continuous
batching, paged KV cache, CUDA graphs, tensor parallelism) and ``hf`` (:mod:`models.roofline`:
HF ``generate`` with static batches). Their constants are a :class:`Calibration` per (hardware,
backend) (:mod:`models.calibration`: documented prior ranges, or a fitted Laplace posterior);
:mod:`models.uncertainty` turns them into draws of tokens/s. Measured values from the cache
(:mod:`models.measure`) replace model values where present.

This module re-exports the names callers use (``Workload``, ``Calibration``, ``calibrate``,
...), so ``from models.throughput import ...`` keeps working.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from .arch import Arch
from .backends import run_times
from .calibration import (
    BUNDLED_CALIBRATIONS,
    USER_CALIBRATION_FILE,
    Calibration,
    CalibrationError,
    default_calibration,
    load_calibration,
    save_calibration,
)
from .calibration_fit import TimingRecord, calibrate
from .constant_priors import BACKEND_CONSTANTS, CONSTANT_NAMES, PRIOR_RANGES, STRUCTURAL_SIGMA
from .hardware import Hardware, get_hardware
from .roofline import arch_arrays, hf_memory_bytes
from .serving import roofline_bound
from .uncertainty import throughput_draws
from .workload import BACKENDS, DEFAULT_BACKEND, GPU_MEMORY_UTILIZATION, Workload, WorkloadError

__all__ = [
    "BACKENDS",
    "BACKEND_CONSTANTS",
    "BUNDLED_CALIBRATIONS",
    "CONSTANT_NAMES",
    "Calibration",
    "CalibrationError",
    "DEFAULT_BACKEND",
    "GPU_MEMORY_UTILIZATION",
    "PREDICTION_DRAWS",
    "PRIOR_RANGES",
    "STRUCTURAL_SIGMA",
    "ThroughputPrediction",
    "TimingRecord",
    "USER_CALIBRATION_FILE",
    "Workload",
    "WorkloadError",
    "calibrate",
    "default_calibration",
    "load_calibration",
    "memory_bytes",
    "predict_bound",
    "predict_throughput",
    "predict_throughput_many",
    "save_calibration",
]

#: Draws behind the uncertainty fields of :func:`predict_throughput_many` (0: none).
PREDICTION_DRAWS = 32


def memory_bytes(arch: Arch, workload: Workload) -> float:
    """Weights plus the full KV cache of one batch (every sequence at ``input_len +
    output_len``), bytes on one device: what HF ``generate`` holds."""
    return float(
        hf_memory_bytes(
            arch.weight_bytes(workload.dtype),
            arch.kv_bytes_per_token(workload.dtype),
            min(workload.batch_size, workload.n_requests),
            workload.input_len,
            workload.output_len,
        )
    )


@dataclass(frozen=True)
class ThroughputPrediction:
    """Serving speed of one (arch, hardware, workload).

    ``tokens_per_s`` is output tokens per second over the run (``num_requests * output_len /
    total_s``); ``request_throughput`` requests/s; ``ttft_s`` the mean time to first token;
    ``tpot_s`` (= ``decode_s_per_token``) the mean time per output token after the first;
    ``memory_bytes`` per GPU; ``concurrency`` sequences per step; ``kv_cache_tokens`` the vLLM
    KV-cache capacity (NaN for hf); ``servable`` whether the backend can run it at all (with
    ``unservable_reason``; ``shardable``: the backend can split it over ``tp`` GPUs at all);
    ``rel_sigma`` the sd of log tokens/s over the draws and
    ``tokens_per_s_q05/q95`` their 5/95% quantiles (a measurement: its own spread).
    """

    tokens_per_s: float
    ttft_s: float
    decode_s_per_token: float
    total_s: float
    memory_bytes: float
    fits_in_memory: bool
    source: str = "model"
    rel_sigma: float = STRUCTURAL_SIGMA
    request_throughput: float = float("nan")
    tpot_s: float = float("nan")
    concurrency: float = float("nan")
    kv_cache_tokens: float = float("nan")
    servable: bool = True
    shardable: bool = True
    unservable_reason: str = ""
    backend: str = ""
    tokens_per_s_q05: float = float("nan")
    tokens_per_s_q95: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _resolve(
    hardware: Hardware | str, workload: Workload | None, calibration: Calibration | None
) -> tuple[Hardware, Workload, Calibration]:
    hw = get_hardware(hardware)
    wl = workload if workload is not None else Workload()
    if not isinstance(wl, Workload):
        raise WorkloadError(f"workload must be a Workload, got {type(wl).__name__}")
    cal = calibration if calibration is not None else load_calibration(hw.id, wl.backend)
    if cal.backend != wl.backend:
        raise CalibrationError(
            f"calibration is for backend {cal.backend!r}, the workload runs {wl.backend!r}"
        )
    return hw, wl, cal


def _memory_reasons(run: dict[str, Any], wl: Workload, hw: Hardware) -> np.ndarray:
    reason = np.array(run["reason"], dtype=object)
    budget = wl.gpu_memory_utilization * hw.mem_bytes
    what = (
        "weights, activations, runtime and one sequence's KV cache per GPU"
        if wl.backend == "vllm"
        else "weights and the KV cache of a full batch"
    )
    for i in np.flatnonzero(~np.asarray(run["fits"], dtype=bool) & (reason == "")):
        reason[i] = (
            f"needs {run['memory_bytes'][i] / 1e9:.2f} GB for {what} "
            f"({wl.input_len + wl.output_len} tokens per sequence); "
            f"gpu_memory_utilization {wl.gpu_memory_utilization:g} of {hw.mem_bytes / 1e9:.0f} GB "
            f"is {budget / 1e9:.2f} GB"
        )
    return reason


def predict_throughput_many(
    archs: Sequence[Arch],
    hardware: Hardware | str,
    workload: Workload | None = None,
    calibration: Calibration | None = None,
    *,
    n_draws: int = PREDICTION_DRAWS,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """:func:`predict_throughput` for many archs at once.

    The point prediction uses the calibration's constants; ``rel_sigma`` and
    ``tokens_per_s_q05/q95`` come from ``n_draws`` draws (:func:`models.uncertainty.
    throughput_draws`); with ``n_draws=0`` they are the structural error only (lognormal
    around the point).

    Returns:
        A dict with the fields of :class:`ThroughputPrediction`, each an array of shape
        ``n = len(archs)`` (``fits_in_memory``/``servable`` bool, ``source``/``backend``/
        ``unservable_reason`` str).
    """
    hw, wl, cal = _resolve(hardware, workload, calibration)
    archs = list(archs)
    n = len(archs)
    run = run_times(arch_arrays(archs, wl.dtype), wl, hw, cal.constants)
    total = np.asarray(run["total_s"], dtype=float)
    tps = wl.n_requests * wl.output_len / total
    if n_draws and n:
        draws = throughput_draws(archs, hw, wl, cal, n_draws=n_draws, seed=seed)
        rel = np.log(draws.tokens_per_s).std(axis=0, ddof=1)
        q05, q95 = draws.q05, draws.q95
    else:
        rel = np.full(n, cal.rel_sigma)
        q05, q95 = tps * np.exp(-1.6449 * rel), tps * np.exp(1.6449 * rel)
    reason = _memory_reasons(run, wl, hw)
    return {
        "tokens_per_s": tps,
        "ttft_s": np.asarray(run["ttft_s"], dtype=float),
        "decode_s_per_token": np.asarray(run["tpot_s"], dtype=float),
        "total_s": total,
        "memory_bytes": np.asarray(run["memory_bytes"], dtype=float),
        "fits_in_memory": np.asarray(run["fits"], dtype=bool),
        "source": np.full(n, "model"),
        "rel_sigma": rel,
        "request_throughput": wl.n_requests / total,
        "tpot_s": np.asarray(run["tpot_s"], dtype=float),
        "concurrency": np.asarray(run["concurrency"], dtype=float),
        "kv_cache_tokens": np.asarray(run["kv_tokens"], dtype=float),
        "servable": np.asarray(run["fits"], dtype=bool) & np.asarray(run["shape_ok"], dtype=bool),
        "shardable": np.asarray(run["shape_ok"], dtype=bool),
        "unservable_reason": reason,
        "backend": np.full(n, wl.backend),
        "tokens_per_s_q05": np.asarray(q05, dtype=float),
        "tokens_per_s_q95": np.asarray(q95, dtype=float),
    }


def predict_throughput(
    arch: Arch,
    hardware: Hardware | str,
    workload: Workload | None = None,
    calibration: Calibration | None = None,
    *,
    n_draws: int = PREDICTION_DRAWS,
    seed: int = 0,
) -> ThroughputPrediction:
    """Model-predicted serving speed of ``arch`` on ``hardware`` for ``workload``.

    ``calibration`` defaults to :func:`load_calibration` for (hardware, workload.backend).
    """
    out = predict_throughput_many(
        [arch], hardware, workload, calibration, n_draws=n_draws, seed=seed
    )
    values = {
        key: value[0].item() if isinstance(value[0], np.generic) else value[0]
        for key, value in out.items()
    }
    typed: dict[str, Any] = {
        k: (
            bool(v)
            if k in ("fits_in_memory", "servable", "shardable")
            else str(v)
            if k in ("source", "backend", "unservable_reason")
            else float(v)
        )
        for k, v in values.items()
    }
    return ThroughputPrediction(**typed)


def predict_bound(
    archs: Sequence[Arch], hardware: Hardware | str, workload: Workload
) -> dict[str, np.ndarray]:
    """The roofline limits of :func:`models.serving.roofline_bound` (``n`` each): no backend and
    no constants can predict more output tokens/s than ``max_tokens_per_s``."""
    return roofline_bound(
        arch_arrays(list(archs), workload.dtype), workload, get_hardware(hardware)
    )
