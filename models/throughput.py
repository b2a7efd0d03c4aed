"""A calibrated roofline model of autoregressive generation time (pure numpy; no torch).

Generation of ``output_len`` tokens for ``batch_size`` prompts of ``input_len`` tokens is one
prefill forward pass (which yields the first token) and ``output_len - 1`` decode steps. Each
forward pass costs

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
  activations, KV-cache updates; ``tokens`` = tokens in the pass). It is what makes deep-narrow
  shapes slower at batch 8 than their FLOPs say on a CPU (benchmarks/throughput_validation.py).
* The overhead terms are kernel launches and framework work: at batch 1 a small model is bound by
  them, so time grows with ``n_layers`` at equal parameters (the Morph-1B table in
  ``surrogate/data/reference_latency.csv`` shows it: same params, 12/16/24 layers,
  1.96/2.57/3.61 s on an A100).
* ``overhead_overlap`` says how much of the overhead hides behind device work: on a GPU the
  host launches kernels asynchronously, so a pass takes the larger of the two (overlap 1; the
  Morph-1B times are linear in ``n_layers`` although the widest variant has the most weights);
  on a CPU the same threads do both, so they add (overlap 0).

The six constants are a :class:`Calibration` per (hardware, backend), fitted by
:func:`calibrate` (``scipy.optimize.least_squares`` on log time). Uncalibrated pairs use the
documented :data:`DEFAULT_CONSTANTS` with a wide ``rel_sigma``. Bundled calibrations are in
``models/data/calibrations.json``; :func:`save_calibration` writes user ones to
``$ARCHOPT_HOME/calibrations.json``, which override bundled ones.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .arch import DTYPE_BYTES, Arch
from .errors import ArchoptError
from .hardware import Hardware, get_hardware
from .files import read_json
from .home import HOME_HINT, archopt_home, ensure_writable_folder

__all__ = [
    "BACKENDS", "CONSTANT_NAMES", "Calibration", "CalibrationError", "DEFAULT_CONSTANTS",
    "DEFAULT_REL_SIGMA", "MEMORY_FRACTION", "ThroughputPrediction", "TimingRecord", "Workload",
    "WorkloadError", "calibrate", "default_calibration", "load_calibration", "predict_throughput",
    "predict_throughput_many", "predict_times", "memory_bytes", "save_calibration", "BUNDLED_CALIBRATIONS",
    "USER_CALIBRATION_FILE",
]

#: Inference backends the model and the measurement harness know.
BACKENDS: tuple[str, ...] = ("hf", "vllm")

#: Fraction of device memory weights + KV cache may use (the rest: activations, CUDA context,
#: allocator fragmentation; vLLM's default ``gpu_memory_utilization`` is also 0.9).
MEMORY_FRACTION = 0.9

#: The calibrated constants, in the order the fit uses.
CONSTANT_NAMES: tuple[str, ...] = ("flops_efficiency", "bandwidth_efficiency", "layer_overhead_s",
                                   "step_overhead_s", "overhead_overlap", "token_layer_s")

#: Constants for uncalibrated (hardware, backend) pairs. Achieved decode bandwidth is typically
#: 0.6-0.8 of peak and large matmuls reach about half of peak. HF eager generate pays roughly
#: 0.3-0.5 ms per decoder layer per step in Python and kernel launches (the A100 Morph-1B table:
#: ~0.47 ms/layer/token) plus a few ms per step for the generate loop; vLLM's CUDA graphs cut
#: the per-layer cost to ~10 us and the per-step cost to ~1 ms (scheduler, sampling).
#: ``overhead_overlap`` is 1 on GPUs (asynchronous launches) and 0 on ``cpu``
#: (see :func:`default_calibration`).
DEFAULT_CONSTANTS: dict[str, dict[str, float]] = {
    "hf": {"flops_efficiency": 0.5, "bandwidth_efficiency": 0.7, "layer_overhead_s": 3e-4,
           "step_overhead_s": 3e-3, "overhead_overlap": 1.0, "token_layer_s": 1e-8},
    "vllm": {"flops_efficiency": 0.6, "bandwidth_efficiency": 0.8, "layer_overhead_s": 1e-5,
             "step_overhead_s": 1e-3, "overhead_overlap": 1.0, "token_layer_s": 1e-8},
}

#: The model's log-time uncertainty when it has not been calibrated for a pair.
DEFAULT_REL_SIGMA = 0.3

#: Bundled calibrations (shipped with the package).
BUNDLED_CALIBRATIONS = Path(__file__).resolve().parent / "data" / "calibrations.json"

#: User calibrations file name under ``$ARCHOPT_HOME``.
USER_CALIBRATION_FILE = "calibrations.json"

# Least-squares settings: a weak prior (std ~100 in log units) on the log constants keeps the
# fit defined when the data cannot identify a constant (e.g. FLOP efficiency from batch-1 decode).
_PRIOR_WEIGHT = 0.01
_TTFT_WEIGHT = 0.5
_REL_SIGMA_FLOOR = 0.02
_BOUNDS = {"flops_efficiency": (1e-4, 1.0), "bandwidth_efficiency": (1e-4, 1.0),
           "layer_overhead_s": (1e-9, 1.0), "step_overhead_s": (1e-9, 10.0),
           "overhead_overlap": (0.0, 1.0), "token_layer_s": (1e-12, 1e-2)}
#: Constants fitted in log space (positive scales); the others (overlap) linearly.
_LOG_CONSTANTS = ("flops_efficiency", "bandwidth_efficiency", "layer_overhead_s", "step_overhead_s",
                  "token_layer_s")
#: Constants a stored calibration must give (the others have defaults).
_REQUIRED_CONSTANTS = ("flops_efficiency", "bandwidth_efficiency", "layer_overhead_s", "step_overhead_s")


class WorkloadError(ArchoptError):
    """An invalid workload (sizes, dtype, backend) or workload string."""


class CalibrationError(ArchoptError):
    """Invalid calibration data, records or calibration file."""


# ---- workload ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    """What is generated: ``batch_size`` prompts of ``input_len`` tokens, ``output_len`` new
    tokens each, weights and KV cache in ``dtype``, served by ``backend``."""

    batch_size: int = 1
    input_len: int = 128
    output_len: int = 256
    dtype: str = "bfloat16"
    backend: str = "hf"

    def __post_init__(self) -> None:
        for name in ("batch_size", "input_len", "output_len"):
            value = getattr(self, name)
            ok = not isinstance(value, bool)
            try:
                as_int = int(value)
                ok = ok and float(value) == as_int
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise WorkloadError(f"{name} must be an integer, got {value!r}")
            if as_int < 1:
                raise WorkloadError(f"{name} must be >= 1, got {as_int}")
            object.__setattr__(self, name, as_int)
        if self.dtype not in DTYPE_BYTES:
            raise WorkloadError(f"unknown dtype {self.dtype!r}; known: {', '.join(DTYPE_BYTES)}")
        if self.backend not in BACKENDS:
            raise WorkloadError(f"unknown backend {self.backend!r}; known: {', '.join(BACKENDS)}")

    _ALIASES = {"batch": "batch_size", "batch_size": "batch_size", "bs": "batch_size",
                "input": "input_len", "input_len": "input_len", "in": "input_len",
                "output": "output_len", "output_len": "output_len", "out": "output_len",
                "dtype": "dtype", "backend": "backend"}

    @classmethod
    def parse(cls, text: str) -> "Workload":
        """Parse ``"batch=64,input=4096,output=1024[,dtype=bfloat16][,backend=hf]"``.

        Missing keys keep their defaults. Raises :class:`WorkloadError` naming the bad part.
        """
        values: dict[str, Any] = {}
        for part in str(text).split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, value = part.partition("=")
            key = key.strip().lower()
            if not sep or not value.strip():
                raise WorkloadError(f"workload part {part!r} is not key=value")
            if key not in cls._ALIASES:
                raise WorkloadError(f"unknown workload key {key!r}; known: batch, input, output, dtype, backend")
            name = cls._ALIASES[key]
            if name in values:
                raise WorkloadError(f"workload key {key!r} given twice")
            value = value.strip()
            if name in ("batch_size", "input_len", "output_len"):
                try:
                    values[name] = int(value)
                except ValueError:
                    raise WorkloadError(f"workload {key}={value!r} is not an integer") from None
            else:
                values[name] = value
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __str__(self) -> str:
        return (f"batch={self.batch_size},input={self.input_len},output={self.output_len},"
                f"dtype={self.dtype},backend={self.backend}")


# ---- calibration ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Calibration:
    """The model's constants for one (hardware, backend) and how well they fit.

    Args:
        hardware_id, backend: the pair these constants are for.
        flops_efficiency: achieved fraction of ``peak_flops`` in compute-bound passes.
        bandwidth_efficiency: achieved fraction of ``mem_bandwidth`` in memory-bound passes.
        layer_overhead_s: fixed seconds per decoder layer per forward pass.
        step_overhead_s: fixed seconds per forward pass.
        overhead_overlap: fraction of the overhead hidden behind device work (1 GPU, 0 CPU).
        token_layer_s: device seconds per decoder layer per token in the pass, for the work the
            matmul/bandwidth roofline leaves out (norms, RoPE, activations, KV-cache updates).
        rel_sigma: std of ``log(measured / predicted)`` total time: the model's uncertainty
            (leave-one-out when calibrated on >= 3 points, else :data:`DEFAULT_REL_SIGMA`).
        n_points: number of measurements it was fitted on (0: defaults).
        source: provenance.
    """

    hardware_id: str
    backend: str
    flops_efficiency: float
    bandwidth_efficiency: float
    layer_overhead_s: float
    step_overhead_s: float
    overhead_overlap: float = 1.0
    token_layer_s: float = 1e-8
    rel_sigma: float = DEFAULT_REL_SIGMA
    n_points: int = 0
    source: str = "default constants (uncalibrated)"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise CalibrationError(f"calibration backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        object.__setattr__(self, "hardware_id", str(self.hardware_id).strip().lower())
        for name in _LOG_CONSTANTS + ("rel_sigma",):
            value = getattr(self, name)
            try:
                as_float = float(value)
            except (TypeError, ValueError):
                raise CalibrationError(f"calibration {name} must be a number, got {value!r}") from None
            if not math.isfinite(as_float) or as_float <= 0:
                raise CalibrationError(f"calibration {name} must be positive, got {value!r}")
            object.__setattr__(self, name, as_float)
        for name in ("flops_efficiency", "bandwidth_efficiency"):
            if getattr(self, name) > 1.0:
                raise CalibrationError(f"calibration {name} must be <= 1, got {getattr(self, name)}")
        try:
            overlap = float(self.overhead_overlap)
        except (TypeError, ValueError):
            overlap = float("nan")
        if not 0.0 <= overlap <= 1.0:
            raise CalibrationError(f"calibration overhead_overlap must be in [0, 1], got {self.overhead_overlap!r}")
        object.__setattr__(self, "overhead_overlap", overlap)
        n_points = self.n_points  # from JSON: an int, or an integral float
        if (isinstance(n_points, bool) or not isinstance(n_points, numbers.Real)
                or not math.isfinite(n_points) or n_points != int(n_points) or n_points < 0):
            raise CalibrationError(f"calibration n_points must be an integer >= 0, got {n_points!r}")
        count = int(n_points)
        object.__setattr__(self, "n_points", count)

    @property
    def constants(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in CONSTANT_NAMES}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Calibration":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CalibrationError(f"unknown calibration field(s): {', '.join(unknown)}")
        missing = [n for n in ("hardware_id", "backend") + _REQUIRED_CONSTANTS if n not in data]
        if missing:
            raise CalibrationError(f"calibration missing field(s): {', '.join(missing)}")
        return cls(**dict(data))


def default_calibration(hardware_id: str, backend: str) -> Calibration:
    """The documented :data:`DEFAULT_CONSTANTS` for an uncalibrated pair (overhead added, not
    overlapped, on ``cpu``)."""
    if backend not in BACKENDS:
        raise CalibrationError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    constants = dict(DEFAULT_CONSTANTS[backend])
    if str(hardware_id).strip().lower() == "cpu":
        constants["overhead_overlap"] = 0.0
    return Calibration(hardware_id, backend, **constants)


def _read_calibrations(path: Path) -> dict[tuple[str, str], Calibration]:
    if not path.exists():
        return {}
    raw = read_json(path, what="calibration file", error=CalibrationError)
    entries = raw.get("calibrations")
    if not isinstance(entries, list):
        raise CalibrationError(f"calibration file {path}: expected {{\"calibrations\": [...]}}")
    out: dict[tuple[str, str], Calibration] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise CalibrationError(f"calibration file {path}, entry {i}: expected an object")
        try:
            cal = Calibration.from_dict(entry)
        except CalibrationError as exc:
            raise CalibrationError(f"calibration file {path}, entry {i}: {exc}") from None
        out[(cal.hardware_id, cal.backend)] = cal
    return out


def load_calibration(hardware_id: str, backend: str = "hf") -> Calibration:
    """The calibration for a pair: user (``$ARCHOPT_HOME``) over bundled over defaults."""
    key = (str(hardware_id).strip().lower(), backend)
    if backend not in BACKENDS:
        raise CalibrationError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    for path in (archopt_home(create=False) / USER_CALIBRATION_FILE, BUNDLED_CALIBRATIONS):
        found = _read_calibrations(path).get(key)
        if found is not None:
            return found
    return default_calibration(*key)


def save_calibration(cal: Calibration, path: str | Path | None = None) -> Path:
    """Write ``cal`` into the user calibration file (replacing the same pair); returns the path.

    The write is atomic and serialized with a file lock (several processes may calibrate).
    """
    from filelock import FileLock

    target = Path(path) if path is not None else archopt_home() / USER_CALIBRATION_FILE
    ensure_writable_folder(target.parent, "calibration folder",
                           HOME_HINT if path is None else "")
    with FileLock(str(target) + ".lock"):
        current = _read_calibrations(target)
        current[(cal.hardware_id, cal.backend)] = cal
        payload = {"calibrations": [c.to_dict() for c in sorted(current.values(),
                                                                 key=lambda c: (c.hardware_id, c.backend))]}
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".calibrations-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(payload, fh, indent=2)
                fh.write("\n")
            os.replace(tmp, target)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise CalibrationError(f"cannot write calibration file {target}: "
                                   f"{exc.strerror or exc}") from None
    return target


# ---- the model --------------------------------------------------------------------------------
def _arch_arrays(archs: Sequence[Arch], dtypes: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-arch quantities the model needs, each of shape ``n``, from Arch's own arithmetic."""
    n = len(archs)
    out = {k: np.empty(n) for k in ("n_layers", "flops0", "flops_per_ctx", "weight_bytes", "kv_bytes")}
    for i, (arch, dtype) in enumerate(zip(archs, dtypes)):
        f0 = arch.forward_flops_per_token(0)
        out["n_layers"][i] = arch.n_layers
        out["flops0"][i] = f0
        # forward_flops_per_token is affine in the context length.
        out["flops_per_ctx"][i] = arch.forward_flops_per_token(1) - f0
        out["weight_bytes"][i] = arch.weight_bytes(dtype)
        out["kv_bytes"][i] = arch.kv_bytes_per_token(dtype)
    return out


_DECODE_NODES = 65


def _sum_over_steps(step_time, n: np.ndarray) -> np.ndarray:
    """``sum_{k=0}^{n-1} step_time(k)`` for a piecewise-affine ``step_time`` (shape ``n``).

    Euler-Maclaurin with the trapezoid rule on :data:`_DECODE_NODES` nodes: exact for affine
    pieces, off by a fraction of one step at each kink (the roofline and overhead maxima), far
    below the model's error; cost independent of ``output_len``.
    """
    n = np.asarray(n, dtype=float)
    last = np.maximum(n - 1, 0.0)
    u = np.linspace(0.0, 1.0, _DECODE_NODES)
    k = last[..., None] * u  # shape n x nodes
    g = step_time(k)
    integral = last * np.mean((g[..., 1:] + g[..., :-1]) / 2, axis=-1)
    total = integral + (g[..., 0] + g[..., -1]) / 2
    return np.where(n >= 2, total, np.where(n == 1, g[..., 0], 0.0))


def _combine(roofline: np.ndarray, overhead: np.ndarray, overlap: float | np.ndarray) -> np.ndarray:
    """Pass time from device work and fixed overhead; ``overlap`` 1: hidden (async GPU), 0: added."""
    return np.maximum(roofline, overhead) + (1.0 - overlap) * np.minimum(roofline, overhead)


def predict_times(q: Mapping[str, np.ndarray], batch_size: np.ndarray, input_len: np.ndarray,
                  output_len: np.ndarray, peak_flops: float | np.ndarray,
                  mem_bandwidth: float | np.ndarray, constants: Mapping[str, float | np.ndarray]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Prefill and total decode seconds, each of shape ``n`` (the core of the model).

    Args:
        q: per-arch arrays ``n_layers, flops0, flops_per_ctx, weight_bytes, kv_bytes`` (shape
            ``n``): FLOPs of one token with empty context, extra FLOPs per context token, weight
            bytes and KV bytes per token in the workload dtype.
        batch_size, input_len, output_len: workload sizes, broadcastable to ``n``.
        peak_flops, mem_bandwidth: the hardware's peaks.
        constants: the six :data:`CONSTANT_NAMES`.

    Returns:
        ``(prefill_s, decode_s)``: the prefill pass (time to first token) and the sum of the
        ``output_len - 1`` decode steps.
    """
    B = np.asarray(batch_size, dtype=float)
    n_in = np.asarray(input_len, dtype=float)
    n_out = np.asarray(output_len, dtype=float)
    flops_rate = constants["flops_efficiency"] * peak_flops
    byte_rate = constants["bandwidth_efficiency"] * mem_bandwidth
    overlap = constants["overhead_overlap"]
    overhead = q["n_layers"] * constants["layer_overhead_s"] + constants["step_overhead_s"]
    per_token = q["n_layers"] * constants["token_layer_s"]  # non-matmul device work per token
    # Prefill: every prompt token attends to (on average) (n_in - 1) / 2 earlier ones.
    prefill_flops = B * n_in * (q["flops0"] + q["flops_per_ctx"] * (n_in - 1) / 2)
    prefill_bytes = q["weight_bytes"] + B * n_in * q["kv_bytes"]
    prefill = _combine(np.maximum(prefill_flops / flops_rate, prefill_bytes / byte_rate)
                       + B * n_in * per_token, overhead, overlap)
    # Decode step k = 0..n_out-2 processes one token per sequence at context n_in + k.
    ex = (lambda x: np.asarray(x, dtype=float)[..., None])  # broadcast against the k nodes

    def step_time(k: np.ndarray) -> np.ndarray:
        ctx = ex(n_in) + k
        compute = ex(B) * (ex(q["flops0"]) + ex(q["flops_per_ctx"]) * ctx) / ex(flops_rate)
        memory = (ex(q["weight_bytes"]) + ex(B) * (ctx + 1) * ex(q["kv_bytes"])) / ex(byte_rate)
        return _combine(np.maximum(compute, memory) + ex(B) * ex(per_token), ex(overhead), ex(overlap))

    steps = np.broadcast_to(n_out - 1, np.broadcast(prefill, n_out).shape)
    decode = _sum_over_steps(step_time, steps)
    return prefill, decode


def _memory_bytes(weight_bytes: np.ndarray | float, kv_bytes_per_token: np.ndarray | float,
                  wl: Workload) -> np.ndarray | float:
    return weight_bytes + wl.batch_size * (wl.input_len + wl.output_len) * kv_bytes_per_token


def memory_bytes(arch: Arch, workload: Workload) -> float:
    """Weights plus the full KV cache (every sequence at ``input_len + output_len``), bytes."""
    return float(_memory_bytes(arch.weight_bytes(workload.dtype),
                               arch.kv_bytes_per_token(workload.dtype), workload))


@dataclass(frozen=True)
class ThroughputPrediction:
    """Generation speed of one (arch, hardware, workload).

    ``tokens_per_s`` is generated tokens per second for the whole batch
    (``batch_size * output_len / total_s``); ``ttft_s`` the time to the first token (prefill);
    ``decode_s_per_token`` the mean decode step; ``memory_bytes`` weights plus the full KV cache;
    ``rel_sigma`` the std of log(measured / predicted) (0 for a measurement).
    """

    tokens_per_s: float
    ttft_s: float
    decode_s_per_token: float
    total_s: float
    memory_bytes: float
    fits_in_memory: bool
    source: str = "model"
    rel_sigma: float = DEFAULT_REL_SIGMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _resolve(hardware: Hardware | str, workload: Workload | None,
             calibration: Calibration | None) -> tuple[Hardware, Workload, Calibration]:
    hw = get_hardware(hardware)
    wl = workload if workload is not None else Workload()
    if not isinstance(wl, Workload):
        raise WorkloadError(f"workload must be a Workload, got {type(wl).__name__}")
    cal = calibration if calibration is not None else load_calibration(hw.id, wl.backend)
    return hw, wl, cal


def predict_throughput_many(archs: Sequence[Arch], hardware: Hardware | str,
                            workload: Workload | None = None,
                            calibration: Calibration | None = None) -> dict[str, np.ndarray]:
    """:func:`predict_throughput` for many archs at once.

    Returns:
        A dict with the fields of :class:`ThroughputPrediction`, each an array of shape
        ``n = len(archs)`` (``fits_in_memory`` bool, ``source`` str).
    """
    hw, wl, cal = _resolve(hardware, workload, calibration)
    archs = list(archs)
    n = len(archs)
    q = _arch_arrays(archs, [wl.dtype] * n)
    prefill, decode = predict_times(q, wl.batch_size, wl.input_len, wl.output_len,
                                    hw.peak_flops, hw.mem_bandwidth, cal.constants)
    total = prefill + decode
    steps = wl.output_len - 1
    memory = _memory_bytes(q["weight_bytes"], q["kv_bytes"], wl)
    return {
        "tokens_per_s": wl.batch_size * wl.output_len / total,
        "ttft_s": prefill,
        "decode_s_per_token": decode / steps if steps > 0 else np.zeros(n),
        "total_s": total,
        "memory_bytes": memory,
        "fits_in_memory": memory <= MEMORY_FRACTION * hw.mem_bytes,
        "source": np.full(n, "model"),
        "rel_sigma": np.full(n, cal.rel_sigma),
    }


def predict_throughput(arch: Arch, hardware: Hardware | str, workload: Workload | None = None,
                       calibration: Calibration | None = None) -> ThroughputPrediction:
    """Model-predicted generation speed of ``arch`` on ``hardware`` for ``workload``.

    ``calibration`` defaults to :func:`load_calibration` for (hardware, workload.backend).
    """
    out = predict_throughput_many([arch], hardware, workload, calibration)
    return ThroughputPrediction(
        tokens_per_s=float(out["tokens_per_s"][0]), ttft_s=float(out["ttft_s"][0]),
        decode_s_per_token=float(out["decode_s_per_token"][0]), total_s=float(out["total_s"][0]),
        memory_bytes=float(out["memory_bytes"][0]), fits_in_memory=bool(out["fits_in_memory"][0]),
        source="model", rel_sigma=float(out["rel_sigma"][0]))


# ---- calibration fit --------------------------------------------------------------------------
@dataclass(frozen=True)
class TimingRecord:
    """One measured generation: ``total_s`` wall time, ``ttft_s`` time to first token if known."""

    arch: Arch
    workload: Workload
    total_s: float
    ttft_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("total_s", "ttft_s"):
            value = getattr(self, name)
            if value is None and name == "ttft_s":
                continue
            try:
                ok = math.isfinite(float(value)) and float(value) > 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise CalibrationError(f"{name} must be a positive number, got {value!r}")


def _coerce_record(record: Any, backend: str, index: int) -> TimingRecord | None:
    """A TimingRecord from a TimingRecord, a Measurement (``to_timing_record()``; failed ones
    give None) or a mapping with the shape fields, workload sizes and ``total_s``/``latency_s``."""
    try:
        if isinstance(record, TimingRecord):
            return record
        if hasattr(record, "to_timing_record"):
            return record.to_timing_record()
        if isinstance(record, Mapping):
            total = record.get("total_s", record.get("latency_s"))
            ttft = record.get("ttft_s")
            wl = Workload(
                batch_size=record.get("batch_size", 1),
                input_len=record.get("input_len", record.get("input_tokens")),
                output_len=record.get("output_len", record.get("output_tokens")),
                dtype=record.get("dtype", "bfloat16"), backend=backend)
            arch = Arch.from_mapping(record)
            return TimingRecord(arch, wl, float(total) if total is not None else float("nan"),
                                None if ttft in (None, "") else float(ttft))
    except ArchoptError as exc:
        raise CalibrationError(f"calibration record {index}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise CalibrationError(f"calibration record {index}: {exc}") from None
    raise CalibrationError(f"calibration record {index}: unsupported type {type(record).__name__}")


def _fit(recs: Sequence[TimingRecord], hw: Hardware, prior: Mapping[str, float]) -> dict[str, float]:
    from scipy.optimize import least_squares

    q = _arch_arrays([r.arch for r in recs], [r.workload.dtype for r in recs])
    B = np.array([r.workload.batch_size for r in recs], dtype=float)
    n_in = np.array([r.workload.input_len for r in recs], dtype=float)
    n_out = np.array([r.workload.output_len for r in recs], dtype=float)
    log_total = np.log([r.total_s for r in recs])
    has_ttft = np.array([r.ttft_s is not None for r in recs])
    log_ttft = np.log([r.ttft_s if r.ttft_s is not None else 1.0 for r in recs])
    is_log = np.array([name in _LOG_CONSTANTS for name in CONSTANT_NAMES])

    def to_theta(values: Sequence[float]) -> np.ndarray:
        v = np.asarray(values, dtype=float)
        return np.where(is_log, np.log(np.where(is_log, v, 1.0)), v)

    def from_theta(theta: np.ndarray) -> dict[str, float]:
        return dict(zip(CONSTANT_NAMES, np.where(is_log, np.exp(theta), theta)))

    theta0 = to_theta([prior[name] for name in CONSTANT_NAMES])
    lo = to_theta([_BOUNDS[name][0] for name in CONSTANT_NAMES])
    hi = to_theta([_BOUNDS[name][1] for name in CONSTANT_NAMES])

    def residuals(theta: np.ndarray) -> np.ndarray:
        consts = from_theta(theta)
        prefill, decode = predict_times(q, B, n_in, n_out, hw.peak_flops, hw.mem_bandwidth, consts)
        r_total = np.log(prefill + decode) - log_total
        r_ttft = _TTFT_WEIGHT * (np.log(prefill) - log_ttft)[has_ttft]
        return np.concatenate([r_total, r_ttft, _PRIOR_WEIGHT * (theta - theta0)])

    # Start strictly inside the bounds (an overlap prior of exactly 0 or 1 sits on one).
    start = np.clip(theta0, lo + 1e-3, hi - 1e-3)
    result = least_squares(residuals, start, bounds=(lo, hi), method="trf")
    return {name: float(v) for name, v in from_theta(result.x).items()}


def _log_errors(recs: Sequence[TimingRecord], hw: Hardware, constants: Mapping[str, float]) -> np.ndarray:
    """``log(predicted / measured)`` total time per record."""
    q = _arch_arrays([r.arch for r in recs], [r.workload.dtype for r in recs])
    prefill, decode = predict_times(
        q, np.array([r.workload.batch_size for r in recs], dtype=float),
        np.array([r.workload.input_len for r in recs], dtype=float),
        np.array([r.workload.output_len for r in recs], dtype=float),
        hw.peak_flops, hw.mem_bandwidth, constants)
    return np.log(prefill + decode) - np.log([r.total_s for r in recs])


def calibrate(records: Iterable[Any], hardware: Hardware | str, backend: str = "hf", *,
              prior: Calibration | None = None, source: str | None = None) -> Calibration:
    """Fit the six constants to measurements by least squares on log time.

    Residuals are ``log(predicted / measured)`` of the total generation time, plus (weight 0.5)
    of the time to first token where measured, plus a weak pull of each log-constant toward the
    prior (default: :func:`default_calibration` for the pair), which keeps
    constants the data cannot identify at their prior value. Efficiencies are bounded to
    ``(0, 1]`` and the overlap to ``[0, 1]``.

    Args:
        records: :class:`TimingRecord`\\ s, measurements (anything with ``to_timing_record()``;
            failed ones are skipped) or mappings with the shape fields, ``batch_size``,
            ``input_len``/``input_tokens``, ``output_len``/``output_tokens`` and
            ``total_s``/``latency_s``.
        hardware: the device the records were measured on.
        backend: their backend; records with another backend are an error.

    Returns:
        The fitted :class:`Calibration`; ``rel_sigma`` is the RMS leave-one-out log error of
        total time when there are >= 3 records (floored at 0.02), else :data:`DEFAULT_REL_SIGMA`.
    """
    hw = get_hardware(hardware)
    if backend not in BACKENDS:
        raise CalibrationError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    recs: list[TimingRecord] = []
    for i, record in enumerate(records):
        rec = _coerce_record(record, backend, i)
        if rec is None:
            continue
        if rec.workload.backend != backend:
            raise CalibrationError(f"calibration record {i}: backend {rec.workload.backend!r}, "
                                   f"calibrating {backend!r}")
        recs.append(rec)
    if not recs:
        raise CalibrationError(f"no successful measurements to calibrate {hw.id}/{backend}")
    # The default prior is the documented defaults, not a stored calibration: re-using a fit as
    # its own prior would count its data twice (and leak held-out rows into leave-one-out).
    prior_constants = (prior or default_calibration(hw.id, backend)).constants
    constants = _fit(recs, hw, prior_constants)
    if len(recs) >= 3:
        held_out = [
            _log_errors([recs[i]], hw, _fit(recs[:i] + recs[i + 1:], hw, prior_constants))[0]
            for i in range(len(recs))
        ]
        rel_sigma = max(_REL_SIGMA_FLOOR, float(np.sqrt(np.mean(np.square(held_out)))))
    else:
        rel_sigma = DEFAULT_REL_SIGMA
    return Calibration(hw.id, backend, **constants, rel_sigma=rel_sigma, n_points=len(recs),
                       source=source or f"least squares on {len(recs)} measurement(s)")
