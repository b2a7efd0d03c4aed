"""The per-arch arrays both throughput models read, and the HF ``generate`` model (pure numpy).

HF ``generate`` runs static batches: ``batch_size`` prompts of ``input_len`` tokens are one
prefill pass (which yields the first token) and ``output_len - 1`` decode steps. Each pass costs

    device = max(FLOPs / (flops_efficiency * peak_flops),
                 bytes / (bandwidth_efficiency * mem_bandwidth))
             + tokens * n_layers * token_layer_s
    overhead = n_layers * layer_overhead_s + step_overhead_s
    time = max(device, overhead) + (1 - overhead_overlap) * min(device, overhead)

* FLOPs come from :meth:`Arch.forward_flops_per_token` (projections, LM head and attention over
  the context), for every token of the batch.
* Bytes are all weights (:meth:`Arch.weight_bytes`) plus the KV cache read and written
  (:meth:`Arch.kv_bytes_per_token` times the context of every sequence).
* ``token_layer_s`` prices the per-token work outside the matmul/bandwidth roofline (norms, RoPE,
  activations, KV-cache updates). It is what makes deep-narrow shapes slower at batch 8 than
  their FLOPs say on a CPU (benchmarks/throughput_validation.py).
* The overhead terms are kernel launches and framework work: at batch 1 a small model is bound by
  them, so time grows with ``n_layers`` at equal parameters (the Morph-1B table in
  ``surrogate/data/reference_latency.csv``: same params, 12/16/24 layers, 1.96/2.57/3.61 s on an
  A100).
* ``overhead_overlap`` says how much of the overhead hides behind device work: on a GPU the host
  launches kernels asynchronously (overlap ~1); on a CPU the same threads do both (overlap ~0).

More requests than ``batch_size`` run as successive batches. Every constant may be an array
(``S x 1``, one row per posterior draw) that broadcasts against the ``n`` archs.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from .arch import DTYPE_BYTES, Arch

__all__ = [
    "ARCH_ARRAY_NAMES",
    "arch_arrays",
    "sum_over_steps",
    "combine",
    "predict_times",
    "hf_times",
    "hf_memory_bytes",
]

#: Keys of :func:`arch_arrays`.
ARCH_ARRAY_NAMES: tuple[str, ...] = (
    "n_layers",
    "d_model",
    "n_heads",
    "n_kv_heads",
    "head_dim",
    "ffn_dim",
    "vocab_size",
    "flops0",
    "flops_per_ctx",
    "head_flops",
    "weight_bytes",
    "kv_bytes",
    "dtype_bytes",
)


def arch_arrays(archs: Sequence[Arch], dtype: str | Sequence[str]) -> dict[str, np.ndarray]:
    """Per-arch quantities of the models, each of shape ``n``, from Arch's own arithmetic.

    ``flops0`` is :meth:`Arch.forward_flops_per_token` with empty context (projections and LM
    head), ``flops_per_ctx`` the extra FLOPs per context token, ``head_flops`` the LM head's
    share of ``flops0`` (``2 vocab d``), ``weight_bytes`` and ``kv_bytes`` (per token, all
    layers) in the dtype, ``dtype_bytes`` the element size.
    """
    n = len(archs)
    dtypes = [dtype] * n if isinstance(dtype, str) else list(dtype)
    out = {k: np.empty(n) for k in ARCH_ARRAY_NAMES}
    for i, (arch, dt) in enumerate(zip(archs, dtypes)):
        f0 = arch.forward_flops_per_token(0)
        for name in (
            "n_layers",
            "d_model",
            "n_heads",
            "n_kv_heads",
            "head_dim",
            "ffn_dim",
            "vocab_size",
        ):
            out[name][i] = getattr(arch, name)
        out["flops0"][i] = f0
        # forward_flops_per_token is affine in the context length.
        out["flops_per_ctx"][i] = arch.forward_flops_per_token(1) - f0
        out["head_flops"][i] = 2.0 * arch.vocab_size * arch.d_model
        out["weight_bytes"][i] = arch.weight_bytes(dt)
        out["kv_bytes"][i] = arch.kv_bytes_per_token(dt)
        out["dtype_bytes"][i] = DTYPE_BYTES[dt]
    return out


#: Trapezoid nodes of :func:`sum_over_steps`.
DECODE_NODES = 65


def sum_over_steps(step_time: Callable[[np.ndarray], np.ndarray], n: np.ndarray) -> np.ndarray:
    """``sum_{k=0}^{n-1} step_time(k)`` for a piecewise-affine ``step_time``, shape of ``n``.

    Euler-Maclaurin with the trapezoid rule on :data:`DECODE_NODES` nodes: exact for affine
    pieces, off by a fraction of one step at each kink (the roofline and overhead maxima), far
    below the model's error; cost independent of ``output_len``. ``step_time`` receives ``k``
    with a trailing nodes axis (``... x nodes``).
    """
    n = np.asarray(n, dtype=float)
    last = np.maximum(n - 1, 0.0)
    u = np.linspace(0.0, 1.0, DECODE_NODES)
    k = last[..., None] * u  # ... x nodes
    g = step_time(k)
    integral = last * np.mean((g[..., 1:] + g[..., :-1]) / 2, axis=-1)
    total = integral + (g[..., 0] + g[..., -1]) / 2
    return np.where(n >= 2, total, np.where(n == 1, g[..., 0], 0.0))


def combine(device: np.ndarray, overhead: np.ndarray, overlap: float | np.ndarray) -> np.ndarray:
    """Pass time from device work and fixed overhead; ``overlap`` 1: hidden (async GPU), 0: added."""
    return np.maximum(device, overhead) + (1.0 - overlap) * np.minimum(device, overhead)


def predict_times(
    q: Mapping[str, np.ndarray],
    batch_size: np.ndarray | float,
    input_len: np.ndarray | float,
    output_len: np.ndarray | float,
    peak_flops: float | np.ndarray,
    mem_bandwidth: float | np.ndarray,
    constants: Mapping[str, float | np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Prefill and total decode seconds of one static batch (the core of the HF model).

    Args:
        q: :func:`arch_arrays` (shape ``n`` each).
        batch_size, input_len, output_len: sizes, broadcastable to ``n``.
        peak_flops, mem_bandwidth: the hardware's peaks.
        constants: ``flops_efficiency, bandwidth_efficiency, layer_overhead_s, step_overhead_s,
            overhead_overlap, token_layer_s``; scalars or ``S x 1`` arrays (draws).

    Returns:
        ``(prefill_s, decode_s)``, broadcast shape (``n`` or ``S x n``): the prefill pass (time
        to first token) and the sum of the ``output_len - 1`` decode steps.
    """
    B = np.asarray(batch_size, dtype=float)
    n_in = np.asarray(input_len, dtype=float)
    n_out = np.asarray(output_len, dtype=float)
    flops_rate = np.asarray(constants["flops_efficiency"] * peak_flops, dtype=float)
    byte_rate = np.asarray(constants["bandwidth_efficiency"] * mem_bandwidth, dtype=float)
    overlap = np.asarray(constants["overhead_overlap"], dtype=float)
    overhead = q["n_layers"] * constants["layer_overhead_s"] + constants["step_overhead_s"]
    per_token = q["n_layers"] * constants["token_layer_s"]  # non-matmul device work per token
    # Prefill: every prompt token attends to (on average) (n_in - 1) / 2 earlier ones.
    prefill_flops = B * n_in * (q["flops0"] + q["flops_per_ctx"] * (n_in - 1) / 2)
    prefill_bytes = q["weight_bytes"] + B * n_in * q["kv_bytes"]
    prefill = combine(
        np.maximum(prefill_flops / flops_rate, prefill_bytes / byte_rate) + B * n_in * per_token,
        overhead,
        overlap,
    )

    def ex(x: np.ndarray | float) -> np.ndarray:  # a trailing axis for the k nodes
        return np.asarray(x, dtype=float)[..., None]

    def step_time(k: np.ndarray) -> np.ndarray:
        # Decode step k = 0..n_out-2 processes one token per sequence at context n_in + k.
        ctx = ex(n_in) + k
        compute = ex(B) * (ex(q["flops0"]) + ex(q["flops_per_ctx"]) * ctx) / ex(flops_rate)
        memory = (ex(q["weight_bytes"]) + ex(B) * (ctx + 1) * ex(q["kv_bytes"])) / ex(byte_rate)
        return combine(
            np.maximum(compute, memory) + ex(B) * ex(per_token), ex(overhead), ex(overlap)
        )

    steps = np.broadcast_to(n_out - 1, np.broadcast(prefill, n_out).shape)
    decode = sum_over_steps(step_time, steps)
    return prefill, decode


def hf_times(
    q: Mapping[str, np.ndarray],
    batch_size: int,
    num_requests: int,
    input_len: int,
    output_len: int,
    peak_flops: float,
    mem_bandwidth: float,
    constants: Mapping[str, float | np.ndarray],
) -> dict[str, np.ndarray]:
    """A whole HF ``generate`` run: ``num_requests`` in batches of ``batch_size`` (the last one
    smaller when it does not divide).

    Returns:
        ``total_s`` (all batches), ``ttft_s`` (prefill of a full batch), ``tpot_s`` (mean decode
        step of a full batch; 0 without decode), each of the broadcast shape ``n`` or ``S x n``.
    """
    full, rest = divmod(int(num_requests), int(batch_size))
    prefill, decode = predict_times(
        q, batch_size, input_len, output_len, peak_flops, mem_bandwidth, constants
    )
    total = full * (prefill + decode)
    if rest:
        p_rest, d_rest = predict_times(
            q, rest, input_len, output_len, peak_flops, mem_bandwidth, constants
        )
        total = total + p_rest + d_rest
        if full == 0:
            prefill, decode = p_rest, d_rest
    steps = output_len - 1
    tpot = decode / steps if steps > 0 else np.zeros_like(decode)
    return {"total_s": total, "ttft_s": prefill, "tpot_s": tpot}


def hf_memory_bytes(
    weight_bytes: np.ndarray | float,
    kv_bytes_per_token: np.ndarray | float,
    batch_size: int,
    input_len: int,
    output_len: int,
) -> np.ndarray | float:
    """Weights plus the full KV cache of a batch (every sequence at ``input_len + output_len``)."""
    return weight_bytes + batch_size * (input_len + output_len) * kv_bytes_per_token
