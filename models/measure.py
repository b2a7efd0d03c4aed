"""Measure real generation speed of an :class:`~models.arch.Arch`, and cache every result.

Backends:

* ``hf``: ``transformers.LlamaForCausalLM`` built from :meth:`Arch.to_hf_config` with random
  weights (no download), on CUDA when present else CPU. One warm-up, then ``repeats`` timed
  ``generate`` calls forcing exactly ``output_len`` new tokens (``min_new_tokens ==
  max_new_tokens``, ``eos_token_id=None``, greedy). A :class:`transformers.BaseStreamer`
  subclass timestamps the first generated token (time to first token).
* ``vllm``: ``vllm.LLM`` on a saved config with ``load_format="dummy"`` (random weights), the
  workload's ``num_requests`` prompts with at most ``batch_size`` sequences in flight
  (``max_num_seqs``), ``tp`` GPUs, its ``gpu_memory_utilization`` and ``max_batched_tokens``;
  needs vllm and a CUDA GPU, otherwise the measurement is recorded as failed with that reason.
  vLLM's V1 engine runs in a child process, so the parent's ``torch.cuda`` counters see none of
  its memory: the harness records the engine's device memory from NVML (the memory of this
  process and its children on each GPU after the timed runs; vLLM allocates its KV cache up
  front, so that is its peak), falling back to the growth of device memory in use since before
  the engine started when NVML cannot attribute memory to processes (containers). This path
  cannot be exercised on a machine without a GPU (not verified here).

Measured results can also be imported (:mod:`models.vllm_results`: ``vllm bench throughput
--output-json`` and ``vllm bench serve --save-result`` files); they are cached like harness
runs, with ``origin`` saying where they came from.

Wall-clock times are the result; each hf repeat also records process CPU time, which for a
one-thread CPU run (``threads=1``) is what the wall time would be on an idle machine and is
unaffected by other processes competing for the cores.

Every result, failed ones included (out of memory, crash, backend unavailable), is stored in a
SQLite cache keyed by shape, hardware id, backend, workload and library versions, so nothing is
measured twice; :func:`measure` never raises for a failed run. torch, transformers and vllm are
imported inside the functions that need them.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .arch import Arch
from .errors import ArchoptError
from .hardware import get_hardware, hardware_for_device
from .measurements import (
    MEASUREMENT_DB,
    Measurement,
    MeasurementCache,
    MeasurementCacheError,
    default_cache_path,
    library_versions,
)
from .throughput import BACKENDS, Workload, WorkloadError, memory_bytes

__all__ = [
    "Measurement",
    "MeasurementCache",
    "MeasurementCacheError",
    "MeasurementUnavailable",
    "measure",
    "default_cache_path",
    "library_versions",
    "detect_device",
    "MEASUREMENT_DB",
    "RUNNERS",
    "engine_memory",
]


class MeasurementUnavailable(RuntimeError):
    """The backend cannot run here (not installed, no GPU, model does not fit)."""


# ---- device -----------------------------------------------------------------------------------
def detect_device(device: str | None = None) -> tuple[str, str, str]:
    """``(torch device, device name, hardware id)``: CUDA when present (or asked), else CPU."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ArchoptError(f"device {device!r} requested but CUDA is not available")
        name = torch.cuda.get_device_name(dev)
        return str(dev), name, hardware_for_device(name)
    if dev.type != "cpu":
        raise ArchoptError(f"unsupported device {device!r}; use cpu or cuda[:i]")
    return "cpu", "cpu", "cpu"


def _device_memory_bytes(device: str, hardware_id: str) -> float:
    import torch

    if device.startswith("cuda"):
        return float(torch.cuda.get_device_properties(torch.device(device)).total_memory)
    return get_hardware(hardware_id).mem_bytes


# ---- runners ----------------------------------------------------------------------------------
@dataclass
class _Timings:
    totals: list[float]
    ttfts: list[float]
    peak_mem_bytes: float | None
    cpu_totals: list[float] = field(default_factory=list)
    cpu_ttfts: list[float] = field(default_factory=list)
    prefill_totals: list[float] = field(default_factory=list)
    peak_mem_source: str = ""


def _reset_peak_rss() -> None:
    try:  # Linux: writing 5 resets the VmHWM high-water mark of this process
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_rss() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _run_hf(
    arch: Arch, wl: Workload, repeats: int, device: str, threads: int | None = None
) -> _Timings:
    import torch

    if threads is None or device.startswith("cuda"):
        return _run_hf_threads(arch, wl, repeats, device)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run_hf_threads(arch, wl, repeats, device)
    finally:
        torch.set_num_threads(before)


def _run_hf_threads(arch: Arch, wl: Workload, repeats: int, device: str) -> _Timings:
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig
    from transformers.generation.streamers import BaseStreamer

    class FirstTokenClock(BaseStreamer):
        """Timestamps the first generated token (generate's first ``put`` is the prompt)."""

        def __init__(self) -> None:
            self.puts = 0
            self.first_token_at: float | None = None
            self.first_token_cpu: float | None = None

        def put(self, value: Any) -> None:
            self.puts += 1
            if self.puts == 2:
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                self.first_token_at = time.perf_counter()
                self.first_token_cpu = time.process_time()

        def end(self) -> None:
            pass

    torch_dtype = (
        getattr(torch, wl.dtype) if wl.dtype in ("float32", "bfloat16", "float16") else None
    )
    if torch_dtype is None:
        raise MeasurementUnavailable(f"the hf backend cannot run dtype {wl.dtype!r}")
    max_pos = max(8192, wl.input_len + wl.output_len)
    config = LlamaConfig.from_dict(
        arch.to_hf_config(max_position_embeddings=max_pos, torch_dtype=wl.dtype)
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)  # public API
    model.eval()
    gen = torch.Generator(device="cpu").manual_seed(0)
    input_ids = torch.randint(0, arch.vocab_size, (wl.batch_size, wl.input_len), generator=gen).to(
        device
    )
    attention_mask = torch.ones_like(input_ids)

    def run(n_new: int, streamer: BaseStreamer | None = None) -> float:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=n_new,
            min_new_tokens=n_new,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=0,
            use_cache=True,
            streamer=streamer,
        )
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if out.shape != (wl.batch_size, wl.input_len + n_new):
            raise RuntimeError(
                f"generate returned shape {tuple(out.shape)}, expected "
                f"{(wl.batch_size, wl.input_len + n_new)}"
            )
        return elapsed

    with torch.inference_mode():
        run(wl.output_len, FirstTokenClock())  # warm-up, same shape: allocator, kernels, lazy init
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(device)
        else:
            _reset_peak_rss()
        timings = _Timings([], [], None)
        for _ in range(repeats):
            clock = FirstTokenClock()
            start, cpu_start = time.perf_counter(), time.process_time()
            total = run(wl.output_len, clock)
            cpu_total = time.process_time() - cpu_start
            if clock.first_token_at is None or clock.first_token_cpu is None:
                raise RuntimeError("the streamer never saw a generated token")
            timings.totals.append(total)
            timings.ttfts.append(clock.first_token_at - start)
            timings.cpu_totals.append(cpu_total)
            timings.cpu_ttfts.append(clock.first_token_cpu - cpu_start)
    timings.peak_mem_bytes = (
        float(torch.cuda.max_memory_allocated(device)) if device.startswith("cuda") else _peak_rss()
    )
    return timings


def _device_memory_in_use() -> list[int]:
    """NVML: bytes in use on every GPU (needs nvidia-ml-py, a vllm dependency)."""
    import pynvml

    pynvml.nvmlInit()
    return [
        int(pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(i)).used)
        for i in range(pynvml.nvmlDeviceGetCount())
    ]


def engine_memory(baseline: list[int]) -> tuple[float | None, str]:
    """Per-GPU device memory of this process and its children (the vLLM engine core), max over
    GPUs; else the largest growth of memory in use since ``baseline``."""
    import psutil
    import pynvml

    pynvml.nvmlInit()
    pids = {os.getpid()} | {c.pid for c in psutil.Process().children(recursive=True)}
    per_gpu = []
    for i in range(pynvml.nvmlDeviceGetCount()):
        handle = pynvml.nvmlDeviceGetHandleByIndex(i)
        procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
        per_gpu.append(sum(p.usedGpuMemory or 0 for p in procs if p.pid in pids))
    if max(per_gpu, default=0) > 0:
        return float(max(per_gpu)), "nvml: memory of this process and its children (vLLM engine)"
    grown = [now - before for now, before in zip(_device_memory_in_use(), baseline)]
    if grown and max(grown) > 0:
        return float(
            max(grown)
        ), "nvml: growth of device memory in use since before the engine started"
    return None, "nvml could not attribute device memory to the engine"


def _run_vllm(
    arch: Arch, wl: Workload, repeats: int, device: str, threads: int | None = None
) -> _Timings:
    try:
        import vllm  # noqa: F401
    except ImportError:
        raise MeasurementUnavailable(
            "vllm is not installed (pip install vllm; needs a CUDA GPU)"
        ) from None
    if not device.startswith("cuda"):
        raise MeasurementUnavailable("the vllm backend needs a CUDA GPU; none is available")
    import torch
    from vllm import LLM, SamplingParams

    baseline = _device_memory_in_use()
    with tempfile.TemporaryDirectory(prefix="archopt-vllm-") as tmp:
        max_len = wl.input_len + wl.output_len
        config = arch.to_hf_config(max_position_embeddings=max(8192, max_len), torch_dtype=wl.dtype)
        (Path(tmp) / "config.json").write_text(json.dumps(config, indent=2))
        engine = {"max_num_batched_tokens": wl.max_batched_tokens} if wl.max_batched_tokens else {}
        llm = LLM(
            model=tmp,
            load_format="dummy",
            skip_tokenizer_init=True,
            dtype=wl.dtype,
            max_model_len=max_len,
            max_num_seqs=wl.batch_size,
            seed=0,
            tensor_parallel_size=wl.tp,
            gpu_memory_utilization=wl.gpu_memory_utilization,
            **engine,
        )
        gen = torch.Generator().manual_seed(0)
        prompts = [
            {
                "prompt_token_ids": torch.randint(
                    0, arch.vocab_size, (wl.input_len,), generator=gen
                ).tolist()
            }
            for _ in range(wl.n_requests)
        ]

        def run(n_new: int) -> float:
            params = SamplingParams(
                max_tokens=n_new,
                min_tokens=n_new,
                ignore_eos=True,
                temperature=0.0,
                detokenize=False,
            )
            start = time.perf_counter()
            outs = llm.generate(prompts, params, use_tqdm=False)
            elapsed = time.perf_counter() - start
            got = [len(o.outputs[0].token_ids) for o in outs]
            if got != [n_new] * wl.n_requests:
                raise RuntimeError(f"vllm generated {got} tokens, expected {n_new} each")
            return elapsed

        run(min(wl.output_len, 4))
        totals = [run(wl.output_len) for _ in range(repeats)]
        # A prefill-only run (one new token each): the time of all prefills, not a mean TTFT.
        prefills = [run(1) for _ in range(repeats)]
        peak, how = engine_memory(baseline)
    return _Timings(totals, [], peak, prefill_totals=prefills, peak_mem_source=how)


#: The measurement runner per backend (``arch, workload, repeats, device, threads -> timings``);
#: tests and other harnesses replace an entry to run without a model.
RUNNERS = {"hf": _run_hf, "vllm": _run_vllm}


def _failure_reason(exc: BaseException) -> str:
    name = type(exc).__name__
    text = " ".join(str(exc).split())[:500]
    if isinstance(exc, MeasurementUnavailable):
        return text
    if (
        isinstance(exc, MemoryError)
        or "out of memory" in text.lower()
        or name == "OutOfMemoryError"
    ):
        return f"out of memory: {name}: {text}"
    return f"{name}: {text}"


def measure(
    arch: Arch,
    workload: Workload | None = None,
    *,
    backend: str | None = None,
    repeats: int = 3,
    cache: MeasurementCache | None = None,
    device: str | None = None,
    force: bool = False,
    threads: int | None = None,
) -> Measurement:
    """Measure ``arch`` generating ``workload`` on this machine, through the cache.

    Args:
        arch: the shape (random weights).
        workload: sizes and dtype (default: ``Workload(backend="hf")``, which runs on a CPU);
            its backend is used unless ``backend`` is given.
        backend: ``"hf"`` or ``"vllm"``.
        repeats: timed repetitions after one warm-up (medians are reported).
        cache: where results live (default: ``$ARCHOPT_HOME/measurements.sqlite``).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:i"`` (default: CUDA when present).
        force: measure again even when the cache holds a result.
        threads: CPU threads for torch during the run (default: torch's). An explicit count is
            part of the cache key (``versions["torch_threads"]``); one thread is far less
            disturbed by other processes on a shared machine.

    Returns:
        The cached or new :class:`Measurement`; a failed run (out of memory, crash, backend not
        available, model larger than memory) comes back with ``status="failed"`` and its reason,
        and is cached like a success.

    Raises:
        ArchoptError: invalid arguments only (never for a failed run).
    """
    wl = workload if workload is not None else Workload(backend="hf")
    if not isinstance(wl, Workload):
        raise WorkloadError(f"workload must be a Workload, got {type(wl).__name__}")
    if backend is not None:
        if backend not in BACKENDS:
            raise WorkloadError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
        wl = replace(wl, backend=backend)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ArchoptError(f"repeats must be an integer >= 1, got {repeats!r}")
    torch_device, device_name, hardware_id = detect_device(device)
    cache = cache if cache is not None else MeasurementCache()
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise ArchoptError(f"threads must be an integer >= 1, got {threads!r}")
    versions = library_versions(wl.backend)
    if threads is not None and hardware_id == "cpu":
        versions["torch_threads"] = str(threads)
    if not force:
        hit = cache.lookup(arch, hardware_id, wl.backend, wl, versions)
        if hit is not None:
            return hit

    base: dict[str, Any] = dict(
        arch=arch,
        hardware_id=hardware_id,
        **Measurement.workload_fields(wl),
        device=device_name,
        versions=versions,
        created_at=time.time(),
    )
    try:
        # Refuse shapes whose weights + a batch's KV cache exceed the device (hf): on a CPU the
        # kernel's OOM killer would end the whole process instead of raising. vLLM checks itself.
        need = memory_bytes(arch, wl)
        have = _device_memory_bytes(torch_device, hardware_id)
        if wl.backend == "hf" and need > wl.gpu_memory_utilization * have:
            raise MeasurementUnavailable(
                f"does not fit in memory: weights + KV cache need {need / 1e9:.2f} GB, "
                f"{wl.gpu_memory_utilization:.0%} of the device's {have / 1e9:.2f} GB is usable"
            )
        timings = RUNNERS[wl.backend](arch, wl, repeats, torch_device, threads)
    except Exception as exc:  # noqa: BLE001 - any failure of the run is a result to record
        result = Measurement(status="failed", reason=_failure_reason(exc), **base)
        cache.put(result)
        return result

    tokens = wl.n_requests * wl.output_len
    rates = [tokens / t for t in timings.totals]
    # hf: per-batch time to first token; vllm: only the prefill-only run's total is known.
    firsts = timings.ttfts or timings.prefill_totals
    decode = [
        ((t - f) / (wl.output_len - 1)) if wl.output_len > 1 else 0.0
        for t, f in zip(timings.totals, firsts)
    ]
    total = statistics.median(timings.totals)
    result = Measurement(
        status="ok",
        reason="",
        tokens_per_s=statistics.median(rates),
        tokens_per_s_spread=max(rates) - min(rates),
        ttft_s=statistics.median(timings.ttfts) if timings.ttfts else None,
        decode_s_per_token=statistics.median(decode),
        total_s=total,
        peak_mem_bytes=timings.peak_mem_bytes,
        repeats=repeats,
        times_s=tuple(timings.totals),
        cpu_times_s=tuple(timings.cpu_totals),
        cpu_ttft_s=statistics.median(timings.cpu_ttfts) if timings.cpu_ttfts else None,
        request_throughput=wl.n_requests / total,
        prefill_s=statistics.median(timings.prefill_totals) if timings.prefill_totals else None,
        peak_mem_source=timings.peak_mem_source
        or ("torch.cuda.max_memory_allocated" if torch_device.startswith("cuda") else "peak RSS"),
        **base,
    )
    cache.put(result)
    return result
