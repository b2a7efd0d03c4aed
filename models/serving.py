"""A model of vLLM serving a fixed-length workload (pure numpy; arrays over archs and draws).

What vLLM does (V1 engine, offline ``LLM`` class as ``vllm bench throughput`` runs it), and how it
is priced here, per GPU with ``tp`` tensor-parallel GPUs:

* **Sharding.** Attention heads, the MLP and the embedding/LM head are split over ``tp`` GPUs;
  vLLM requires ``n_heads % tp == 0`` and ``ffn_dim % tp == 0``. KV heads are split when
  ``n_kv_heads % tp == 0``; when ``tp`` is a multiple of ``n_kv_heads`` each GPU keeps one
  *replicated* KV head (its K/V projection weights and cache are paid ``tp / n_kv_heads``
  times); any other combination is refused by vLLM (not servable).
* **Paged KV cache.** vLLM takes ``gpu_memory_utilization * memory`` per GPU and gives what is
  left after the weights, the activations of its profiling pass (``max_batched_tokens`` tokens
  through the widest layer: ``T * dtype * (2 d + 3 ffn / tp)`` plus fp32 logits of
  ``batch_size`` sequences, twice) and the runtime's own memory (CUDA graphs, cuBLAS/NCCL
  workspaces: the uncertain constant ``runtime_memory_bytes``) to the KV cache, in blocks of 16
  tokens. A sequence needs ``ceil((input + output) / 16)`` blocks at its longest.
* **Concurrency** is ``min(batch_size, num_requests, sequences whose full-length KV fits)``
  (each sequence counted at its final length: vLLM may admit more and preempt; not modelled).
  A shape whose KV cache cannot hold one sequence cannot be served.
* **Continuous batching with chunked prefill.** Each engine step carries at most
  ``max_batched_tokens`` tokens, decode tokens first. With identical request lengths the
  sequences admitted together finish together, so the run proceeds in waves of ``concurrency``
  requests (the last one smaller). A wave is a prefill burst of ``ceil(s * input / T)`` steps,
  into which sequences whose prompt is done already mix their first decode tokens (prefill
  and decode interleaved), then ``output - 1`` decode steps over the remaining tokens.
* **Step time** (CUDA graphs at decode): the dense layers read the weights once and compute the
  step's tokens (the LM head only for the sampled rows): ``max(W / (eta_B BW), FLOPs /
  (eta_F F))``; attention adds ``max(KV bytes, FLOPs)`` of the decoding sequences and the
  prefill chunk's FLOPs; ``tp > 1`` adds two all-reduces per layer, each ``allreduce_latency_s
  + 2 (tp-1)/tp * tokens * d * dtype / (interconnect_efficiency * interconnect_bandwidth / 2)``
  (deeper models pay more); ``tokens * n_layers * token_layer_s`` prices norms, RoPE and
  activations. Host work (``n_layers * layer_overhead_s``: graph-replay gaps;
  ``step_overhead_s``: scheduler, input preparation, sampling) overlaps device work by
  ``overhead_overlap``.
* **TTFT and TPOT** follow ``vllm bench serve`` with ``--max-concurrency batch_size``: TTFT is
  the mean time from a request's submission to its first token (its place in the prefill
  burst, plus waiting in the server queue when the KV cache holds fewer sequences than are in
  flight); TPOT the mean ``(e2e - ttft) / (output - 1)``.

Every prediction stays below :func:`roofline_bound` (same FLOPs and bytes at peak rate, no
overhead, at most ``min(batch_size, num_requests)`` sequences per step): the model only adds
time. Constants may be ``S x 1`` arrays (posterior draws) broadcasting against ``n`` archs.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from .errors import ArchoptError
from .hardware import Hardware
from .workload import Workload

__all__ = [
    "KV_BLOCK_TOKENS",
    "default_max_batched_tokens",
    "tp_layout",
    "serving_memory",
    "serving_times",
    "roofline_bound",
]

#: vLLM's default KV-cache block size (tokens).
KV_BLOCK_TOKENS = 16
_GIB = 1 << 30


def default_max_batched_tokens(hw: Hardware) -> int:
    """vLLM's default ``max_num_batched_tokens`` for the offline ``LLM`` class (``vllm bench
    throughput``): 16,384 on GPUs with >= 70 GiB that are not A100s, else 8,192
    (``EngineArgs`` defaults, vLLM 0.9-0.11)."""
    big = hw.mem_bytes >= 70 * _GIB and "a100" not in hw.id
    return 16384 if big else 8192


def tp_layout(q: Mapping[str, np.ndarray], tp: int) -> dict[str, np.ndarray]:
    """How ``tp`` GPUs split each arch (arrays of shape ``n``).

    Returns:
        ``kv_heads_gpu`` (KV heads each GPU holds), ``replicated`` (KV heads copied, not split),
        ``shape_ok`` (vLLM can shard it), ``reason`` (why not; ``""`` when it can),
        ``weight_bytes_gpu``, ``layer_flops_gpu`` (dense FLOPs per token without the LM head),
        ``head_flops_gpu``, ``attn_flops_gpu`` (per context token), ``kv_bytes_gpu`` (per token).
    """
    kv, heads, ffn = q["n_kv_heads"], q["n_heads"], q["ffn_dim"]
    split = np.mod(kv, tp) == 0
    replicated = ~split & (np.mod(tp, kv) == 0)
    kv_gpu = np.where(split, kv / tp, 1.0)
    heads_ok = np.mod(heads, tp) == 0
    ffn_ok = np.mod(ffn, tp) == 0
    shape_ok = heads_ok & ffn_ok & (split | replicated)
    reason = np.full(kv.shape, "", dtype=object)
    for i in np.flatnonzero(~shape_ok):
        if not heads_ok[i]:
            reason[i] = f"n_heads={int(heads[i])} is not divisible by tp={tp}"
        elif not ffn_ok[i]:
            reason[i] = f"ffn_dim={int(ffn[i])} is not divisible by tp={tp}"
        else:
            reason[i] = (
                f"n_kv_heads={int(kv[i])} neither divides into tp={tp} GPUs nor divides "
                f"tp (vLLM cannot shard or replicate it)"
            )
    b = q["dtype_bytes"]
    kv_proj = 2.0 * q["d_model"] * q["head_dim"]  # K and V projection params per KV head per layer
    layer_flops = q["flops0"] - q["head_flops"]
    return {
        "kv_heads_gpu": kv_gpu,
        "replicated": replicated,
        "shape_ok": shape_ok,
        "reason": reason,
        "weight_bytes_gpu": (q["weight_bytes"] - q["n_layers"] * kv_proj * kv * b) / tp
        + q["n_layers"] * kv_proj * kv_gpu * b,
        "layer_flops_gpu": (layer_flops - 2 * q["n_layers"] * kv_proj * kv) / tp
        + 2 * q["n_layers"] * kv_proj * kv_gpu,
        "head_flops_gpu": q["head_flops"] / tp,
        "attn_flops_gpu": q["flops_per_ctx"] / tp,
        "kv_bytes_gpu": q["kv_bytes"] * kv_gpu / kv,
    }


def serving_memory(
    q: Mapping[str, np.ndarray],
    wl: Workload,
    hw: Hardware,
    runtime_memory_bytes: float | np.ndarray,
    layout: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Per-GPU memory and the concurrency it allows (broadcast shape ``n`` or ``S x n``).

    Returns:
        ``activation_bytes``, ``kv_budget_bytes`` (left for the KV cache), ``kv_tokens`` (KV
        cache capacity, tokens), ``max_seqs`` (full-length sequences that fit),
        ``concurrency`` (``min(batch, requests, max_seqs)``, at least 1 for pricing),
        ``fits`` (one sequence fits), ``memory_bytes`` (weights + activations + runtime + the
        KV of ``concurrency`` full-length sequences).
    """
    lay = layout if layout is not None else tp_layout(q, wl.tp)
    T = wl.max_batched_tokens or default_max_batched_tokens(hw)
    b = q["dtype_bytes"]
    act = (
        T * b * (2 * q["d_model"] + 3 * q["ffn_dim"] / wl.tp)
        + 8.0 * min(wl.batch_size, T) * q["vocab_size"]
    )
    fixed = lay["weight_bytes_gpu"] + act + runtime_memory_bytes
    budget = wl.gpu_memory_utilization * hw.mem_bytes - fixed
    block = KV_BLOCK_TOKENS * lay["kv_bytes_gpu"]
    blocks = np.floor(np.maximum(budget, 0.0) / block)
    seq_blocks = math.ceil((wl.input_len + wl.output_len) / KV_BLOCK_TOKENS)
    max_seqs = np.floor(blocks / seq_blocks)
    conc = np.maximum(np.minimum(min(wl.batch_size, wl.n_requests), max_seqs), 1.0)
    return {
        "activation_bytes": np.broadcast_to(act, np.shape(budget)),
        "kv_budget_bytes": budget,
        "kv_tokens": KV_BLOCK_TOKENS * blocks,
        "max_seqs": max_seqs,
        "concurrency": conc,
        "fits": max_seqs >= 1,
        "memory_bytes": fixed + conc * (wl.input_len + wl.output_len) * lay["kv_bytes_gpu"],
    }


def _link_bandwidth(hw: Hardware, tp: int) -> float:
    if tp == 1:
        return math.inf
    if hw.interconnect_bandwidth is None:
        raise ArchoptError(
            f"hardware {hw.id!r} has no interconnect_bandwidth in its profile; "
            f"tp={tp} needs one (add it to the profile in hardware.json)"
        )
    return hw.interconnect_bandwidth / 2  # datasheets quote both directions together


def serving_times(
    q: Mapping[str, np.ndarray],
    wl: Workload,
    hw: Hardware,
    constants: Mapping[str, float | np.ndarray],
) -> dict[str, Any]:
    """Predicted vLLM run of ``wl`` for every arch (see the module docstring).

    Args:
        q: :func:`models.roofline.arch_arrays` (``n`` each).
        wl: the workload (its ``tp``, ``gpu_memory_utilization``, ``max_batched_tokens``).
        hw: one GPU's profile (``interconnect_bandwidth`` needed when ``tp > 1``).
        constants: the nine calibration constants, scalars or ``S x 1`` arrays.

    Returns:
        ``total_s``, ``ttft_s``, ``tpot_s``, ``concurrency``, ``kv_tokens``, ``memory_bytes``
        (per GPU), ``fits`` (broadcast shape ``n`` or ``S x n``); ``shape_ok``, ``reason``
        (``n``).
    """
    c = {k: np.asarray(v, dtype=float) for k, v in constants.items()}
    lay = tp_layout(q, wl.tp)
    mem = serving_memory(q, wl, hw, c["runtime_memory_bytes"], lay)
    T = float(wl.max_batched_tokens or default_max_batched_tokens(hw))
    n_in, n_out, R, tp = float(wl.input_len), float(wl.output_len), float(wl.n_requests), wl.tp
    L, b, d = q["n_layers"], q["dtype_bytes"], q["d_model"]
    flops = c["flops_efficiency"] * hw.peak_flops
    bw = c["bandwidth_efficiency"] * hw.mem_bandwidth
    link = c["interconnect_efficiency"] * _link_bandwidth(hw, tp)
    host = L * c["layer_overhead_s"] + c["step_overhead_s"]
    W, f_layer, f_head = lay["weight_bytes_gpu"], lay["layer_flops_gpu"], lay["head_flops_gpu"]
    a, kvb = lay["attn_flops_gpu"], lay["kv_bytes_gpu"]

    def step(tokens, logits, prefill_tokens, decode_seqs, decode_ctx):
        dense = np.maximum(W / bw, (tokens * f_layer + logits * f_head) / flops)
        kv_read = decode_seqs * decode_ctx
        attn = (
            np.maximum(kv_read * kvb / bw, kv_read * a / flops)
            + prefill_tokens * (n_in - 1) / 2 * a / flops
            + tokens * kvb / bw
        )  # + KV writes
        comm = (
            0.0
            if tp == 1
            else 2 * L * (c["allreduce_latency_s"] + 2 * (tp - 1) / tp * tokens * d * b / link)
        )
        device = dense + attn + comm + tokens * L * c["token_layer_s"]
        return np.maximum(device, host) + (1 - c["overhead_overlap"]) * np.minimum(device, host)

    def wave(s):
        """Seconds of a wave of ``s`` sequences, its mean TTFT and mean TPOT (arrays)."""
        n_a = np.ceil(s * n_in / T)
        m = np.minimum(n_out - 1, (n_a - 1) / 2)  # decode tokens per sequence inside the burst
        d_a = s * m / n_a  # per burst step
        step_a = step(s * n_in / n_a + d_a, s / n_a + d_a, s * n_in / n_a, d_a, n_in + (m + 1) / 2)
        s_d = s * (n_out - 1 - m) / max(n_out - 1, 1)  # mean batch of the decode steps
        step_d = step(s_d, s_d, 0.0, s_d, n_in + (m + n_out) / 2)
        time = n_a * step_a + (n_out - 1) * step_d
        ttft = step_a * (n_a + 1) / 2
        tpot = (m * step_a + (n_out - 1 - m) * step_d) / max(n_out - 1, 1)
        return time, ttft, tpot

    conc = mem["concurrency"]
    full = np.floor(R / conc)
    rest = R - full * conc
    t_full, ttft_full, tpot_full = wave(conc)
    t_rest, ttft_rest, tpot_rest = wave(np.maximum(rest, 1.0))
    has_rest = rest > 0
    total = full * t_full + np.where(has_rest, t_rest, 0.0)
    ttft = (full * conc * ttft_full + np.where(has_rest, rest * ttft_rest, 0.0)) / R
    tpot = (full * conc * tpot_full + np.where(has_rest, rest * tpot_rest, 0.0)) / R
    # Requests in flight beyond what the KV cache holds wait in the server's queue (Little).
    in_flight = min(wl.batch_size, wl.n_requests)
    ttft = ttft + t_full * np.maximum(in_flight - conc, 0.0) / conc
    if n_out <= 1:
        tpot = np.zeros_like(tpot)
    return {
        "total_s": total,
        "ttft_s": ttft,
        "tpot_s": tpot,
        "concurrency": conc,
        "kv_tokens": mem["kv_tokens"],
        "memory_bytes": mem["memory_bytes"],
        "fits": mem["fits"],
        "shape_ok": lay["shape_ok"],
        "reason": lay["reason"],
    }


def roofline_bound(
    q: Mapping[str, np.ndarray], wl: Workload, hw: Hardware
) -> dict[str, np.ndarray]:
    """Physical limits of a run of ``wl`` (shape ``n``), for any backend and any constants.

    Every request's tokens pass every layer once (prefill attention over ``(input-1)/2`` earlier
    tokens on average, decode token ``k`` over at least ``input + k - 1``), one LM head per
    generated token, KV reads of every decode token, and the weights read at least once per
    decode step, with at least ``ceil(R / min(B, R)) * (output - 1)`` decode steps; all at the
    peak rates of ``tp`` GPUs with no overhead.

    Returns:
        ``min_total_s`` and ``max_tokens_per_s`` (output tokens).
    """
    tp, n_in, n_out, R = wl.tp, float(wl.input_len), float(wl.output_len), float(wl.n_requests)
    layer_flops = q["flops0"] - q["head_flops"]
    a = q["flops_per_ctx"]
    flops = R * (
        n_in * layer_flops
        + n_in * (n_in - 1) / 2 * a
        + (n_out - 1) * layer_flops
        + (n_out - 1) * (n_in + n_out / 2 - 1) * a
        + n_out * q["head_flops"]
    )
    steps = math.ceil(R / min(wl.batch_size, R)) * (n_out - 1)
    bytes_ = steps * q["weight_bytes"] + R * (n_out - 1) * (n_in + n_out / 2 - 1) * q["kv_bytes"]
    t_min = np.maximum(flops / (tp * hw.peak_flops), bytes_ / (tp * hw.mem_bandwidth))
    return {"min_total_s": t_min, "max_tokens_per_s": R * n_out / t_min}
