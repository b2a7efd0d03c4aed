"""One entry point for both backends' models: :func:`run_times` (pure numpy).

``vllm``: :func:`models.serving.serving_times` (continuous batching, paged KV cache, tensor
parallel). ``hf``: :func:`models.roofline.hf_times` (static batches on one GPU; weights plus the
batch's full KV cache must fit in ``gpu_memory_utilization`` of the device).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .hardware import Hardware
from .roofline import hf_memory_bytes, hf_times
from .serving import serving_times
from .workload import Workload

__all__ = ["RUN_FIELDS", "run_times"]

#: Keys of :func:`run_times`.
RUN_FIELDS: tuple[str, ...] = (
    "total_s",
    "ttft_s",
    "tpot_s",
    "concurrency",
    "kv_tokens",
    "memory_bytes",
    "fits",
    "shape_ok",
    "reason",
)


def run_times(
    q: Mapping[str, np.ndarray],
    wl: Workload,
    hw: Hardware,
    constants: Mapping[str, float | np.ndarray],
) -> dict[str, Any]:
    """The predicted run of ``wl`` for the archs ``q`` (:func:`models.roofline.arch_arrays`).

    Args:
        constants: the calibration constants, scalars or ``S x 1`` arrays (draws).

    Returns:
        :data:`RUN_FIELDS`: ``total_s`` (all requests), ``ttft_s``, ``tpot_s``,
        ``concurrency`` (sequences per step), ``kv_tokens`` (KV-cache capacity; NaN for hf),
        ``memory_bytes`` (per GPU), ``fits`` (memory allows at least one sequence, or the whole
        batch for hf), each of broadcast shape ``n`` or ``S x n``; ``shape_ok`` and ``reason``
        (``n``: whether the backend can shard the shape at ``wl.tp``, and why not).
    """
    if wl.backend == "vllm":
        return serving_times(q, wl, hw, constants)
    out = hf_times(
        q,
        wl.batch_size,
        wl.n_requests,
        wl.input_len,
        wl.output_len,
        hw.peak_flops,
        hw.mem_bandwidth,
        constants,
    )
    shape = np.shape(out["total_s"])
    memory = hf_memory_bytes(
        q["weight_bytes"],
        q["kv_bytes"],
        min(wl.batch_size, wl.n_requests),
        wl.input_len,
        wl.output_len,
    )
    n = len(q["n_layers"])
    return {
        **out,
        "concurrency": np.full(shape, float(min(wl.batch_size, wl.n_requests))),
        "kv_tokens": np.full(shape, np.nan),
        "memory_bytes": np.broadcast_to(memory, shape).copy(),
        "fits": np.broadcast_to(memory <= wl.gpu_memory_utilization * hw.mem_bytes, shape).copy(),
        "shape_ok": np.ones(n, dtype=bool),
        "reason": np.full(n, "", dtype=object),
    }
