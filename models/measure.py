"""Measure real generation speed of an :class:`~models.arch.Arch`, and cache every result.

Backends:

* ``hf``: ``transformers.LlamaForCausalLM`` built from :meth:`Arch.to_hf_config` with random
  weights (no download), on CUDA when present else CPU. One warm-up, then ``repeats`` timed
  ``generate`` calls forcing exactly ``output_len`` new tokens (``min_new_tokens ==
  max_new_tokens``, ``eos_token_id=None``, greedy). A :class:`transformers.BaseStreamer`
  subclass timestamps the first generated token (time to first token).
* ``vllm``: ``vllm.LLM`` on a saved config with ``load_format="dummy"`` (random weights); needs
  vllm and a CUDA GPU, otherwise the measurement is recorded as failed with that reason.

Wall-clock times are the result; each hf repeat also records process CPU time, which for a
one-thread CPU run (``threads=1``) is what the wall time would be on an idle machine and is
unaffected by other processes competing for the cores.

Every result, failed ones included (out of memory, crash, backend unavailable), is stored in a
SQLite cache keyed by shape, hardware id, backend, workload and library versions, so nothing is
measured twice; :func:`measure` never raises for a failed run. torch, transformers and vllm are
imported inside the functions that need them.
"""

from __future__ import annotations

import importlib.metadata
import json
import sqlite3
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Sequence

from .arch import Arch
from .errors import ArchoptError
from .hardware import get_hardware, hardware_for_device
from .home import HOME_HINT, archopt_home, ensure_writable_folder
from .throughput import (BACKENDS, MEMORY_FRACTION, ThroughputPrediction, TimingRecord, Workload,
                         WorkloadError, memory_bytes)

__all__ = ["Measurement", "MeasurementCache", "MeasurementCacheError", "MeasurementUnavailable", "measure", "default_cache_path",
           "library_versions", "detect_device", "MEASUREMENT_DB"]

#: File name of the cache under ``$ARCHOPT_HOME``.
MEASUREMENT_DB = "measurements.sqlite"


def default_cache_path() -> Path:
    """``$ARCHOPT_HOME/measurements.sqlite`` (nothing is created)."""
    return archopt_home(create=False) / MEASUREMENT_DB


class MeasurementUnavailable(RuntimeError):
    """The backend cannot run here (not installed, no GPU, model does not fit)."""


def library_versions(backend: str) -> dict[str, str]:
    """Versions that change timings: torch and transformers, plus vllm for the vllm backend.

    Read from package metadata (nothing is imported). A missing package reads ``"absent"``.
    """
    names = ("torch", "transformers") + (("vllm",) if backend == "vllm" else ())
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


@dataclass(frozen=True)
class Measurement:
    """One measured generation run (median over repeats) or a recorded failure.

    Args:
        status: ``"ok"`` or ``"failed"``.
        reason: why it failed (empty when ok).
        arch, hardware_id, backend: what ran where.
        batch_size, input_len, output_len, dtype: the workload.
        tokens_per_s: median generated tokens per second for the whole batch
            (``batch_size * output_len / total``).
        tokens_per_s_spread: max minus min tokens/s over the repeats.
        ttft_s: median time to first token (prefill).
        decode_s_per_token: median ``(total - ttft) / (output_len - 1)`` (0 if output_len 1).
        total_s: median wall time of one ``generate`` call.
        peak_mem_bytes: CUDA peak allocated memory, or on CPU the process peak RSS.
        repeats: timed repetitions.
        device: device name (``"cpu"`` or the CUDA device name).
        versions: library versions (part of the cache key).
        created_at: Unix time of the measurement.
        times_s: total seconds of every repeat.
        cpu_times_s, cpu_ttft_s: the same in process CPU seconds (hf backend). For a
            single-threaded CPU run this equals wall time on an idle machine and, unlike wall
            time, does not grow when other processes share the cores.
    """

    status: str
    reason: str
    arch: Arch
    hardware_id: str
    backend: str
    batch_size: int
    input_len: int
    output_len: int
    dtype: str
    tokens_per_s: float | None = None
    tokens_per_s_spread: float | None = None
    ttft_s: float | None = None
    decode_s_per_token: float | None = None
    total_s: float | None = None
    peak_mem_bytes: float | None = None
    repeats: int = 0
    device: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    times_s: tuple[float, ...] = ()
    cpu_times_s: tuple[float, ...] = ()
    cpu_ttft_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def workload(self) -> Workload:
        return Workload(self.batch_size, self.input_len, self.output_len, self.dtype, self.backend)

    def to_timing_record(self, clock: str = "wall") -> TimingRecord | None:
        """For :func:`models.throughput.calibrate`; None for a failed measurement.

        ``clock="cpu"`` uses the median process CPU times instead of wall times.
        """
        if not self.ok or self.total_s is None:
            return None
        if clock == "cpu":
            if not self.cpu_times_s or self.cpu_ttft_s is None:
                return None
            return TimingRecord(self.arch, self.workload, statistics.median(self.cpu_times_s),
                                self.cpu_ttft_s)
        if clock != "wall":
            raise ArchoptError(f"clock must be 'wall' or 'cpu', got {clock!r}")
        return TimingRecord(self.arch, self.workload, self.total_s, self.ttft_s)

    def to_prediction(self) -> ThroughputPrediction:
        """The measurement as a prediction with ``source="measured"`` (ok measurements only)."""
        if not self.ok:
            raise ArchoptError(f"measurement failed: {self.reason}")
        return ThroughputPrediction(
            tokens_per_s=float(self.tokens_per_s), ttft_s=float(self.ttft_s),
            decode_s_per_token=float(self.decode_s_per_token), total_s=float(self.total_s),
            memory_bytes=float(self.peak_mem_bytes or 0.0), fits_in_memory=True,
            source="measured", rel_sigma=0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the arch as its shape dict plus its label."""
        out = asdict(self)
        out["arch"] = self.arch.shape()
        out["label"] = self.arch.label()
        out["times_s"] = list(self.times_s)
        out["cpu_times_s"] = list(self.cpu_times_s)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Measurement":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["arch"] = Arch.from_mapping(data["arch"])
        values["times_s"] = tuple(data.get("times_s") or ())
        values["cpu_times_s"] = tuple(data.get("cpu_times_s") or ())
        values["versions"] = dict(data.get("versions") or {})
        return cls(**values)


# ---- cache ------------------------------------------------------------------------------------
_SCHEMA = """
CREATE TABLE IF NOT EXISTS measurements (
    key TEXT PRIMARY KEY,
    arch TEXT NOT NULL,
    hardware_id TEXT NOT NULL,
    backend TEXT NOT NULL,
    batch_size INTEGER NOT NULL,
    input_len INTEGER NOT NULL,
    output_len INTEGER NOT NULL,
    dtype TEXT NOT NULL,
    versions TEXT NOT NULL,
    status TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS measurements_hw ON measurements (hardware_id, backend);
"""


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


class MeasurementCacheError(ArchoptError):
    """The measurement cache file is corrupt, unreadable or cannot be written."""


class MeasurementCache:
    """Measurements in SQLite (default ``$ARCHOPT_HOME/measurements.sqlite``).

    Keyed by the arch shape, hardware id, backend, batch size, input and output lengths, dtype
    and :func:`library_versions`; a later ``put`` with the same key replaces the earlier one.

    Reads never create anything (a missing file is an empty cache) and open the file read-only;
    only :meth:`put` creates the folder and the file. A file that is not a readable cache
    (corrupt, truncated, not SQLite) raises :class:`MeasurementCacheError` naming it and is never
    written to.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_cache_path()

    # -- sqlite access: every error becomes one line naming the file --------------------------
    def _error(self, exc: sqlite3.Error | ValueError | KeyError | TypeError) -> MeasurementCacheError:
        text = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, sqlite3.OperationalError):  # locked, unreadable, read-only
            return MeasurementCacheError(f"cannot use the measurement cache {self.path}: {text}")
        return MeasurementCacheError(
            f"measurement cache {self.path} is corrupt ({text}); move it away (e.g. mv {self.path} "
            f"{self.path}.bad) and archopt starts a new, empty cache")

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` from a read-only connection after an integrity check (a damaged file
        can otherwise answer with some rows missing); ``[]`` when there is no cache yet."""
        if not self.path.exists():
            return []
        if not self.path.is_file():
            raise MeasurementCacheError(f"measurement cache {self.path} is not a file")
        try:
            con = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
            try:
                check = [str(r[0]) for r in con.execute("PRAGMA quick_check").fetchall()]
                if check != ["ok"]:  # a few ms for thousands of measurements
                    raise sqlite3.DatabaseError("integrity check failed: " + check[0][:120])
                tables = con.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                     "AND name = 'measurements'").fetchall()
                return con.execute(sql, args).fetchall() if tables else []
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def _payloads(self, rows: list[tuple[Any, ...]]) -> list[Measurement]:
        try:
            return [Measurement.from_dict(json.loads(r[0])) for r in rows]
        except (ValueError, KeyError, TypeError) as exc:  # ArchError is a ValueError too
            raise self._error(exc) from None

    @staticmethod
    def key(arch: Arch, hardware_id: str, backend: str, workload: Workload,
            versions: dict[str, str] | None = None) -> str:
        versions = versions if versions is not None else library_versions(backend)
        return _json({"arch": arch.shape(), "hardware_id": hardware_id.lower(), "backend": backend,
                      "batch_size": workload.batch_size, "input_len": workload.input_len,
                      "output_len": workload.output_len, "dtype": workload.dtype,
                      "versions": versions})

    def lookup(self, arch: Arch, hardware_id: str, backend: str, workload: Workload,
               versions: dict[str, str] | None = None) -> Measurement | None:
        """The cached measurement (ok or failed) for this key under the current versions."""
        key = self.key(arch, hardware_id, backend, workload, versions)
        rows = self._read("SELECT payload FROM measurements WHERE key = ?", (key,))
        return self._payloads(rows[:1])[0] if rows else None

    def put(self, m: Measurement) -> None:
        """Store ``m`` under its own key (replacing an earlier result).

        Raises:
            MeasurementCacheError: the file is corrupt (it is left untouched) or the folder or
                file cannot be written.
        """
        key = self.key(m.arch, m.hardware_id, m.backend, m.workload, m.versions)
        ensure_writable_folder(self.path.parent, "measurement cache folder", HOME_HINT)
        # Refuse a damaged file before writing to it (the check is part of every read).
        self._read("SELECT 1")
        try:
            con = sqlite3.connect(self.path, timeout=30.0)
            try:
                with con:
                    con.executescript(_SCHEMA)
                    con.execute(
                        "INSERT OR REPLACE INTO measurements VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (key, _json(m.arch.shape()), m.hardware_id, m.backend, m.batch_size,
                         m.input_len, m.output_len, m.dtype, _json(m.versions), m.status,
                         _json(m.to_dict()), m.created_at))
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def records(self, hardware_id: str | None = None, backend: str | None = None,
                *, status: str | None = None) -> list[Measurement]:
        """Every cached measurement, optionally filtered, oldest first."""
        sql, args = "SELECT payload FROM measurements WHERE 1=1", []
        for column, value in (("hardware_id", hardware_id and hardware_id.lower()),
                              ("backend", backend), ("status", status)):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        return self._payloads(self._read(sql + " ORDER BY created_at", args))

    def __len__(self) -> int:
        rows = self._read("SELECT COUNT(*) FROM measurements")
        return int(rows[0][0]) if rows else 0


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


def _run_hf(arch: Arch, wl: Workload, repeats: int, device: str, threads: int | None = None) -> _Timings:
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
    from transformers import LlamaConfig, LlamaForCausalLM
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

    torch_dtype = getattr(torch, wl.dtype) if wl.dtype in ("float32", "bfloat16", "float16") else None
    if torch_dtype is None:
        raise MeasurementUnavailable(f"the hf backend cannot run dtype {wl.dtype!r}")
    max_pos = max(8192, wl.input_len + wl.output_len)
    config = LlamaConfig.from_dict(arch.to_hf_config(max_position_embeddings=max_pos,
                                                     torch_dtype=wl.dtype))
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM._from_config(config, dtype=torch_dtype)
    model.eval()
    gen = torch.Generator(device="cpu").manual_seed(0)
    input_ids = torch.randint(0, arch.vocab_size, (wl.batch_size, wl.input_len), generator=gen).to(device)
    attention_mask = torch.ones_like(input_ids)

    def run(n_new: int, streamer: BaseStreamer | None = None) -> float:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = model.generate(input_ids=input_ids, attention_mask=attention_mask,
                             max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False,
                             eos_token_id=None, pad_token_id=0, use_cache=True, streamer=streamer)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if out.shape != (wl.batch_size, wl.input_len + n_new):
            raise RuntimeError(f"generate returned shape {tuple(out.shape)}, expected "
                               f"{(wl.batch_size, wl.input_len + n_new)}")
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
            if clock.first_token_at is None:
                raise RuntimeError("the streamer never saw a generated token")
            timings.totals.append(total)
            timings.ttfts.append(clock.first_token_at - start)
            timings.cpu_totals.append(cpu_total)
            timings.cpu_ttfts.append(clock.first_token_cpu - cpu_start)
    timings.peak_mem_bytes = (float(torch.cuda.max_memory_allocated(device))
                              if device.startswith("cuda") else _peak_rss())
    del model
    return timings


def _run_vllm(arch: Arch, wl: Workload, repeats: int, device: str, threads: int | None = None) -> _Timings:
    try:
        import vllm  # noqa: F401
    except ImportError:
        raise MeasurementUnavailable("vllm is not installed (pip install vllm; needs a CUDA GPU)") from None
    if not device.startswith("cuda"):
        raise MeasurementUnavailable("the vllm backend needs a CUDA GPU; none is available")
    import torch
    from vllm import LLM, SamplingParams

    with tempfile.TemporaryDirectory(prefix="archopt-vllm-") as tmp:
        max_len = wl.input_len + wl.output_len
        config = arch.to_hf_config(max_position_embeddings=max(8192, max_len), torch_dtype=wl.dtype)
        (Path(tmp) / "config.json").write_text(json.dumps(config, indent=2))
        llm = LLM(model=tmp, load_format="dummy", skip_tokenizer_init=True, dtype=wl.dtype,
                  max_model_len=max_len, max_num_seqs=max(wl.batch_size, 1), seed=0)
        gen = torch.Generator().manual_seed(0)
        prompts = [{"prompt_token_ids": torch.randint(0, arch.vocab_size, (wl.input_len,),
                                                      generator=gen).tolist()}
                   for _ in range(wl.batch_size)]

        def run(n_new: int) -> float:
            params = SamplingParams(max_tokens=n_new, min_tokens=n_new, ignore_eos=True,
                                    temperature=0.0, detokenize=False)
            start = time.perf_counter()
            outs = llm.generate(prompts, params, use_tqdm=False)
            elapsed = time.perf_counter() - start
            got = [len(o.outputs[0].token_ids) for o in outs]
            if got != [n_new] * wl.batch_size:
                raise RuntimeError(f"vllm generated {got} tokens, expected {n_new} each")
            return elapsed

        run(min(wl.output_len, 4))
        torch.cuda.reset_peak_memory_stats()
        totals = [run(wl.output_len) for _ in range(repeats)]
        # TTFT as the time of a prefill-only generate (one new token), version-independent.
        ttfts = [run(1) for _ in range(repeats)]
        peak = float(torch.cuda.max_memory_allocated())
    return _Timings(totals, ttfts, peak)


_RUNNERS = {"hf": _run_hf, "vllm": _run_vllm}


def _failure_reason(exc: BaseException) -> str:
    name = type(exc).__name__
    text = " ".join(str(exc).split())[:500]
    if isinstance(exc, MeasurementUnavailable):
        return text
    if isinstance(exc, MemoryError) or "out of memory" in text.lower() or name == "OutOfMemoryError":
        return f"out of memory: {name}: {text}"
    return f"{name}: {text}"


def measure(arch: Arch, workload: Workload | None = None, *, backend: str | None = None,
            repeats: int = 3, cache: MeasurementCache | None = None, device: str | None = None,
            force: bool = False, threads: int | None = None) -> Measurement:
    """Measure ``arch`` generating ``workload`` on this machine, through the cache.

    Args:
        arch: the shape (random weights).
        workload: sizes and dtype (default :class:`Workload`); its backend is used unless
            ``backend`` is given.
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
    wl = workload if workload is not None else Workload()
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
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ArchoptError(f"threads must be an integer >= 1, got {threads!r}")
    versions = library_versions(wl.backend)
    if threads is not None and hardware_id == "cpu":
        versions["torch_threads"] = str(threads)
    if not force:
        hit = cache.lookup(arch, hardware_id, wl.backend, wl, versions)
        if hit is not None:
            return hit

    base = dict(arch=arch, hardware_id=hardware_id, backend=wl.backend, batch_size=wl.batch_size,
                input_len=wl.input_len, output_len=wl.output_len, dtype=wl.dtype,
                device=device_name, versions=versions, created_at=time.time())
    try:
        # Refuse shapes whose weights + KV cache exceed the device: on a CPU the kernel's OOM
        # killer would end the whole process instead of raising.
        need = memory_bytes(arch, wl)
        have = _device_memory_bytes(torch_device, hardware_id)
        if need > MEMORY_FRACTION * have:
            raise MeasurementUnavailable(
                f"does not fit in memory: weights + KV cache need {need / 1e9:.2f} GB, "
                f"{MEMORY_FRACTION:.0%} of the device's {have / 1e9:.2f} GB is usable")
        timings = _RUNNERS[wl.backend](arch, wl, repeats, torch_device, threads)
    except Exception as exc:  # noqa: BLE001 - any failure of the run is a result to record
        result = Measurement(status="failed", reason=_failure_reason(exc), **base)
        cache.put(result)
        return result

    tokens = wl.batch_size * wl.output_len
    rates = [tokens / t for t in timings.totals]
    decode = [((t - f) / (wl.output_len - 1)) if wl.output_len > 1 else 0.0
              for t, f in zip(timings.totals, timings.ttfts)]
    result = Measurement(
        status="ok", reason="", tokens_per_s=statistics.median(rates),
        tokens_per_s_spread=max(rates) - min(rates), ttft_s=statistics.median(timings.ttfts),
        decode_s_per_token=statistics.median(decode), total_s=statistics.median(timings.totals),
        peak_mem_bytes=timings.peak_mem_bytes, repeats=repeats, times_s=tuple(timings.totals),
        cpu_times_s=tuple(timings.cpu_totals),
        cpu_ttft_s=statistics.median(timings.cpu_ttfts) if timings.cpu_ttfts else None,
        **base)
    cache.put(result)
    return result
