"""The throughput models' constants: documented priors, fitted posteriors, calibration files.

Every constant has a **prior**: a documented 90% range (:data:`PRIOR_RANGES`, per backend and
device kind), read as a normal distribution in a transformed space -- ``logit`` for fractions
(efficiencies, overlap), ``log`` for positive scales (overheads, memory) -- whose 5% and 95%
quantiles are the range's ends. An uncalibrated (hardware, backend) pair uses the prior
medians (:func:`default_calibration`) and draws its uncertainty from the prior itself.

:func:`calibrate` fits the constants a backend uses to measurements: the maximum a posteriori
point of ``log(predicted / measured)`` time residuals (total time; time to first token and
time per output token at weight 0.5 where measured) with noise ``sigma``, plus the prior, by
``scipy.optimize.least_squares``; and a **Laplace approximation** around it, ``cov = (J^T
J)^-1`` of the scaled residuals in the transformed space. ``sigma`` is the leave-one-out RMS log
error when there are >= 3 measurements (floored at 0.02; the held-out fits assume 0.02), else
0.02 (measurement noise alone). The leave-one-out error is stored as ``rel_sigma``, the model's
per-shape structural error (:data:`STRUCTURAL_SIGMA` with fewer than 3 measurements). Constants the data cannot
identify (e.g. FLOP efficiency from batch-1 decode) keep their prior width in the posterior.

Bundled calibrations are in ``models/data/calibrations.json``; :func:`save_calibration` writes
user ones to ``$ARCHOPT_HOME/calibrations.json``, which override bundled ones.
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

from .arch import Arch
from .backends import run_times
from .errors import ArchoptError
from .files import read_json
from .hardware import Hardware, get_hardware
from .home import HOME_HINT, archopt_home, ensure_writable_folder
from .roofline import arch_arrays
from .workload import BACKENDS, Workload

__all__ = [
    "CONSTANT_NAMES",
    "BACKEND_CONSTANTS",
    "LOGIT_CONSTANTS",
    "PRIOR_RANGES",
    "STRUCTURAL_SIGMA",
    "Calibration",
    "CalibrationError",
    "TimingRecord",
    "device_kind",
    "prior_median",
    "prior_center_sd",
    "to_theta",
    "from_theta",
    "default_calibration",
    "load_calibration",
    "save_calibration",
    "calibrate",
    "BUNDLED_CALIBRATIONS",
    "USER_CALIBRATION_FILE",
]

#: Every constant, in the order the fit uses.
CONSTANT_NAMES: tuple[str, ...] = (
    "flops_efficiency",
    "bandwidth_efficiency",
    "layer_overhead_s",
    "step_overhead_s",
    "overhead_overlap",
    "token_layer_s",
    "runtime_memory_bytes",
    "allreduce_latency_s",
    "interconnect_efficiency",
)
#: The constants each backend's model reads (and a calibration fits).
BACKEND_CONSTANTS: dict[str, tuple[str, ...]] = {"hf": CONSTANT_NAMES[:6], "vllm": CONSTANT_NAMES}
#: Fractions in (0, 1), drawn in logit space (the rest: positive scales, in log space).
LOGIT_CONSTANTS = frozenset(
    {"flops_efficiency", "bandwidth_efficiency", "overhead_overlap", "interconnect_efficiency"}
)

_VLLM_ENGINE = {
    # Non-KV memory vLLM keeps besides weights and profiled activations: CUDA graph pools,
    # cuBLAS/NCCL workspaces, allocator slack (a few hundred MB to a few GB by version and size).
    "runtime_memory_bytes": (3e8, 3e9),
    # One all-reduce's fixed cost: vLLM's custom all-reduce on NVLink ~5-10 us, NCCL 20-40 us.
    "allreduce_latency_s": (4e-6, 4e-5),
    # Achieved fraction of the per-direction link bandwidth in a ring all-reduce.
    "interconnect_efficiency": (0.4, 0.85),
}
#: 90% prior ranges per (backend, device kind). GPU: achieved decode bandwidth is typically
#: 0.6-0.85 of peak and large matmuls reach 0.35-0.8 of dense peak. HF eager ``generate`` pays
#: 0.1-0.9 ms per decoder layer per step in Python and kernel launches (the A100 Morph-1B table:
#: ~0.5 ms) plus 1-9 ms per step for the generate loop, almost fully hidden behind device work
#: when the device is busy (asynchronous launches). vLLM replays CUDA graphs at decode (3-30 us
#: of gaps per layer) and pays 0.3-4 ms of scheduling, input preparation and sampling per step,
#: mostly not overlapped (synchronous scheduling). ``token_layer_s``: norms, RoPE and
#: activations, 1-100 ns per token per layer. CPU ranges are wide (measure, then calibrate).
PRIOR_RANGES: dict[tuple[str, str], dict[str, tuple[float, float]]] = {
    ("hf", "gpu"): {
        "flops_efficiency": (0.3, 0.7),
        "bandwidth_efficiency": (0.5, 0.85),
        "layer_overhead_s": (1e-4, 9e-4),
        "step_overhead_s": (1e-3, 9e-3),
        "overhead_overlap": (0.8, 0.999),
        "token_layer_s": (1e-9, 1e-7),
        **_VLLM_ENGINE,
    },
    ("vllm", "gpu"): {
        "flops_efficiency": (0.35, 0.8),
        "bandwidth_efficiency": (0.55, 0.9),
        "layer_overhead_s": (3e-6, 3e-5),
        "step_overhead_s": (3e-4, 4e-3),
        "overhead_overlap": (0.01, 0.5),
        "token_layer_s": (1e-9, 1e-7),
        **_VLLM_ENGINE,
    },
    ("hf", "cpu"): {
        "flops_efficiency": (0.05, 0.9),
        "bandwidth_efficiency": (0.05, 0.9),
        "layer_overhead_s": (1e-5, 1e-2),
        "step_overhead_s": (1e-4, 1e-1),
        "overhead_overlap": (0.001, 0.2),
        "token_layer_s": (1e-9, 1e-5),
        **_VLLM_ENGINE,
    },
}
PRIOR_RANGES[("vllm", "cpu")] = dict(PRIOR_RANGES[("hf", "cpu")])

#: The model's per-shape structural log error when it cannot be estimated (fewer than three
#: measurements at hand): a shape's time may differ from the model by about 10% for reasons the
#: model leaves out (kernel choice, tile quantisation, fused ops).
STRUCTURAL_SIGMA = 0.1
_SIGMA_FLOOR = 0.02
_FIRST_PASS_SIGMA = 0.02
_SIDE_WEIGHT = 0.5  # TTFT and TPOT residuals, relative to total time
_Z95 = 1.6448536269514722
_BOUNDS = {
    "flops_efficiency": (1e-4, 1 - 1e-6),
    "bandwidth_efficiency": (1e-4, 1 - 1e-6),
    "layer_overhead_s": (1e-9, 1.0),
    "step_overhead_s": (1e-9, 10.0),
    "overhead_overlap": (1e-6, 1 - 1e-6),
    "token_layer_s": (1e-12, 1e-2),
    "runtime_memory_bytes": (1e6, 1e12),
    "allreduce_latency_s": (1e-8, 1e-1),
    "interconnect_efficiency": (1e-3, 1 - 1e-6),
}

#: Bundled calibrations (shipped with the package).
BUNDLED_CALIBRATIONS = Path(__file__).resolve().parent / "data" / "calibrations.json"
#: User calibrations file name under ``$ARCHOPT_HOME``.
USER_CALIBRATION_FILE = "calibrations.json"


class CalibrationError(ArchoptError):
    """Invalid calibration data, records or calibration file."""


# ---- priors -----------------------------------------------------------------------------------
def device_kind(hardware_id: str) -> str:
    """``"cpu"`` for the CPU profile, else ``"gpu"``."""
    return "cpu" if str(hardware_id).strip().lower() == "cpu" else "gpu"


def to_theta(name: str, value: np.ndarray | float) -> np.ndarray:
    """A constant in its fit/draw space (logit for fractions, log for scales). Fractions of
    exactly 0 or 1 (an overlap stored by older versions) are read as 1e-6 from the edge."""
    v = np.asarray(value, dtype=float)
    if name in LOGIT_CONSTANTS:
        v = np.clip(v, 1e-6, 1 - 1e-6)
        return np.log(v / (1 - v))
    return np.log(v)


def from_theta(name: str, theta: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`to_theta`."""
    t = np.asarray(theta, dtype=float)
    return 1 / (1 + np.exp(-t)) if name in LOGIT_CONSTANTS else np.exp(t)


def prior_center_sd(backend: str, kind: str, name: str) -> tuple[float, float]:
    """Mean and sd of the prior of ``name`` in its transformed space."""
    lo, hi = PRIOR_RANGES[(backend, kind)][name]
    a, b = float(to_theta(name, lo)), float(to_theta(name, hi))
    return (a + b) / 2, (b - a) / (2 * _Z95)


def prior_median(backend: str, kind: str) -> dict[str, float]:
    """Prior medians of every constant (the uncalibrated model's constants)."""
    return {
        name: float(from_theta(name, prior_center_sd(backend, kind, name)[0]))
        for name in CONSTANT_NAMES
    }


_ENGINE_DEFAULTS = prior_median("vllm", "gpu")


# ---- calibration ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Calibration:
    """The model's constants for one (hardware, backend), their posterior and how well they fit.

    Args:
        hardware_id, backend: the pair these constants are for.
        flops_efficiency: achieved fraction of ``peak_flops`` in compute-bound work.
        bandwidth_efficiency: achieved fraction of ``mem_bandwidth`` in memory-bound work.
        layer_overhead_s: host/launch seconds per decoder layer per forward pass.
        step_overhead_s: host seconds per forward pass (generate loop; vLLM's scheduler).
        overhead_overlap: fraction of the host overhead hidden behind device work.
        token_layer_s: device seconds per token per layer outside the matmul roofline.
        runtime_memory_bytes, allreduce_latency_s, interconnect_efficiency: vLLM engine
            constants (:mod:`models.serving`).
        rel_sigma: the model's per-shape structural log error (leave-one-out RMS when fitted on
            >= 3 points, else :data:`STRUCTURAL_SIGMA`).
        n_points: measurements it was fitted on (0: the prior medians).
        source: provenance.
        posterior_cov: Laplace covariance of ``BACKEND_CONSTANTS[backend]`` in their transformed
            space (``p x p``), or ``None`` (uncalibrated: the prior's widths are used).
        workloads: the workloads (``str(Workload)``) of the measurements it was fitted on.
    """

    hardware_id: str
    backend: str
    flops_efficiency: float
    bandwidth_efficiency: float
    layer_overhead_s: float
    step_overhead_s: float
    overhead_overlap: float = 1.0
    token_layer_s: float = 1e-8
    runtime_memory_bytes: float = _ENGINE_DEFAULTS["runtime_memory_bytes"]
    allreduce_latency_s: float = _ENGINE_DEFAULTS["allreduce_latency_s"]
    interconnect_efficiency: float = _ENGINE_DEFAULTS["interconnect_efficiency"]
    rel_sigma: float = STRUCTURAL_SIGMA
    n_points: int = 0
    source: str = "documented prior medians (uncalibrated)"
    posterior_cov: tuple[tuple[float, ...], ...] | None = None
    workloads: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise CalibrationError(
                f"calibration backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}"
            )
        object.__setattr__(self, "hardware_id", str(self.hardware_id).strip().lower())
        for name in CONSTANT_NAMES + ("rel_sigma",):
            value = getattr(self, name)
            try:
                as_float = float(value)
            except (TypeError, ValueError):
                raise CalibrationError(
                    f"calibration {name} must be a number, got {value!r}"
                ) from None
            if isinstance(value, bool) or not math.isfinite(as_float) or as_float < 0:
                raise CalibrationError(
                    f"calibration {name} must be a non-negative number, got {value!r}"
                )
            if as_float == 0 and name != "overhead_overlap":
                raise CalibrationError(f"calibration {name} must be positive, got {value!r}")
            if name in LOGIT_CONSTANTS and as_float > 1.0:
                bound = "[0, 1]" if name == "overhead_overlap" else "(0, 1]"
                raise CalibrationError(f"calibration {name} must be in {bound}, got {value!r}")
            object.__setattr__(self, name, as_float)
        n_points = self.n_points  # from JSON: an int, or an integral float
        if (
            isinstance(n_points, bool)
            or not isinstance(n_points, numbers.Real)
            or not math.isfinite(n_points)
            or n_points != int(n_points)
            or n_points < 0
        ):
            raise CalibrationError(
                f"calibration n_points must be an integer >= 0, got {n_points!r}"
            )
        object.__setattr__(self, "n_points", int(n_points))
        if not isinstance(self.workloads, (list, tuple)) or not all(
            isinstance(w, str) for w in self.workloads
        ):
            raise CalibrationError(
                f"calibration workloads must be a list of strings, got {self.workloads!r}"
            )
        object.__setattr__(self, "workloads", tuple(self.workloads))
        if self.posterior_cov is not None:
            object.__setattr__(self, "posterior_cov", self._checked_cov(self.posterior_cov))

    def _checked_cov(self, cov: Any) -> tuple[tuple[float, ...], ...]:
        p = len(BACKEND_CONSTANTS[self.backend])
        try:
            arr = np.asarray(cov, dtype=float)
        except (TypeError, ValueError):
            arr = np.full((0,), np.nan)
        if arr.shape != (p, p) or not np.all(np.isfinite(arr)):
            raise CalibrationError(
                f"calibration posterior_cov must be a finite {p}x{p} matrix "
                f"(the {self.backend} constants)"
            )
        if not np.allclose(arr, arr.T, rtol=1e-6, atol=1e-12) or np.linalg.eigvalsh(
            (arr + arr.T) / 2
        ).min() < -1e-9 * max(1.0, float(np.abs(arr).max())):
            raise CalibrationError(
                "calibration posterior_cov must be symmetric positive semi-definite"
            )
        return tuple(tuple(float(x) for x in row) for row in arr)

    @property
    def constants(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in CONSTANT_NAMES}

    @property
    def calibrated(self) -> bool:
        return self.n_points > 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["posterior_cov"] = (
            None if self.posterior_cov is None else [list(r) for r in self.posterior_cov]
        )
        out["workloads"] = list(self.workloads)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Calibration":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CalibrationError(f"unknown calibration field(s): {', '.join(unknown)}")
        missing = [
            n
            for n in (
                "hardware_id",
                "backend",
                "flops_efficiency",
                "bandwidth_efficiency",
                "layer_overhead_s",
                "step_overhead_s",
            )
            if n not in data
        ]
        if missing:
            raise CalibrationError(f"calibration missing field(s): {', '.join(missing)}")
        return cls(**dict(data))


def default_calibration(hardware_id: str, backend: str) -> Calibration:
    """The prior medians of :data:`PRIOR_RANGES` for an uncalibrated pair."""
    if backend not in BACKENDS:
        raise CalibrationError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    constants: dict[str, Any] = prior_median(backend, device_kind(hardware_id))
    return Calibration(hardware_id, backend, **constants)


def _read_calibrations(path: Path) -> dict[tuple[str, str], Calibration]:
    if not path.exists():
        return {}
    raw = read_json(path, what="calibration file", error=CalibrationError)
    entries = raw.get("calibrations")
    if not isinstance(entries, list):
        raise CalibrationError(f'calibration file {path}: expected {{"calibrations": [...]}}')
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


def load_calibration(hardware_id: str, backend: str = "vllm") -> Calibration:
    """The calibration for a pair: user (``$ARCHOPT_HOME``) over bundled over the prior medians."""
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
    ensure_writable_folder(target.parent, "calibration folder", HOME_HINT if path is None else "")
    with FileLock(str(target) + ".lock"):
        current = _read_calibrations(target)
        current[(cal.hardware_id, cal.backend)] = cal
        payload = {
            "calibrations": [
                c.to_dict()
                for c in sorted(current.values(), key=lambda c: (c.hardware_id, c.backend))
            ]
        }
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".calibrations-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(payload, fh, indent=2)
                fh.write("\n")
            os.replace(tmp, target)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise CalibrationError(
                f"cannot write calibration file {target}: {exc.strerror or exc}"
            ) from None
    return target


# ---- records ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TimingRecord:
    """One measured run: ``total_s`` wall time of all requests; time to first token and time
    per output token when known."""

    arch: Arch
    workload: Workload
    total_s: float
    ttft_s: float | None = None
    tpot_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("total_s", "ttft_s", "tpot_s"):
            value = getattr(self, name)
            if value is None and name != "total_s":
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
                dtype=record.get("dtype", "bfloat16"),
                backend=backend,
            )
            return TimingRecord(
                Arch.from_mapping(record),
                wl,
                float(total) if total is not None else float("nan"),
                None if ttft in (None, "") else float(ttft),
            )
    except (ArchoptError, TypeError, ValueError) as exc:
        raise CalibrationError(f"calibration record {index}: {exc}") from None
    raise CalibrationError(f"calibration record {index}: unsupported type {type(record).__name__}")


class _Records:
    """Records grouped by workload, with their arch arrays (built once per fit)."""

    def __init__(self, recs: Sequence[TimingRecord]) -> None:
        self.recs = list(recs)
        groups: dict[Workload, list[int]] = {}
        for i, r in enumerate(self.recs):
            groups.setdefault(r.workload, []).append(i)
        self.groups = [
            (wl, np.array(idx), arch_arrays([self.recs[i].arch for i in idx], wl.dtype))
            for wl, idx in groups.items()
        ]
        self.log_total = np.log([r.total_s for r in self.recs])
        self.has = {
            k: np.array([getattr(r, k) is not None for r in self.recs])
            for k in ("ttft_s", "tpot_s")
        }
        self.log = {
            k: np.log([getattr(r, k) or 1.0 for r in self.recs]) for k in ("ttft_s", "tpot_s")
        }

    def log_times(self, hw: Hardware, constants: Mapping[str, float]) -> dict[str, np.ndarray]:
        out = {k: np.empty(len(self.recs)) for k in ("total_s", "ttft_s", "tpot_s")}
        for wl, idx, q in self.groups:
            run = run_times(q, wl, hw, constants)
            for k in out:
                out[k][idx] = np.log(np.maximum(run[k], 1e-30))
        return out

    def residuals(self, hw: Hardware, constants: Mapping[str, float], sigma: float) -> np.ndarray:
        pred = self.log_times(hw, constants)
        parts = [(pred["total_s"] - self.log_total) / sigma]
        for k in ("ttft_s", "tpot_s"):
            parts.append(_SIDE_WEIGHT * (pred[k] - self.log[k])[self.has[k]] / sigma)
        return np.concatenate(parts)


def _fit(
    data: _Records, hw: Hardware, backend: str, center: Mapping[str, float], sigma: float
) -> tuple[dict[str, float], np.ndarray]:
    """MAP constants and the Laplace covariance of the fitted ones (transformed space)."""
    from scipy.optimize import least_squares

    names = BACKEND_CONSTANTS[backend]
    kind = device_kind(hw.id)
    mu = np.array([float(to_theta(n, center[n])) for n in names])
    sd = np.array([prior_center_sd(backend, kind, n)[1] for n in names])
    lo = np.array([float(to_theta(n, _BOUNDS[n][0])) for n in names])
    hi = np.array([float(to_theta(n, _BOUNDS[n][1])) for n in names])

    def constants(theta: np.ndarray) -> dict[str, float]:
        out = dict(center)
        out.update({n: float(from_theta(n, t)) for n, t in zip(names, theta)})
        return out

    def residuals(theta: np.ndarray) -> np.ndarray:
        return np.concatenate([data.residuals(hw, constants(theta), sigma), (theta - mu) / sd])

    start = np.clip(mu, lo + 1e-6, hi - 1e-6)
    result = least_squares(residuals, start, bounds=(lo, hi), method="trf", x_scale=sd)
    jac = np.asarray(result.jac, dtype=float)
    cov = np.linalg.pinv(jac.T @ jac)
    return constants(result.x), (cov + cov.T) / 2


def calibrate(
    records: Iterable[Any],
    hardware: Hardware | str,
    backend: str = "vllm",
    *,
    prior: Calibration | None = None,
    source: str | None = None,
) -> Calibration:
    """Fit the constants of ``backend``'s model to measurements (see the module docstring).

    Args:
        records: :class:`TimingRecord`\\ s, measurements (anything with ``to_timing_record()``;
            failed ones are skipped) or mappings with the shape fields, ``batch_size``,
            ``input_len``/``input_tokens``, ``output_len``/``output_tokens`` and
            ``total_s``/``latency_s``.
        hardware: the device the records were measured on.
        backend: their backend; records with another backend are an error.
        prior: centre of the prior (default: the prior medians, :func:`default_calibration`);
            the widths are always :data:`PRIOR_RANGES`'.

    Returns:
        The fitted :class:`Calibration` with its Laplace ``posterior_cov``, ``rel_sigma`` and
        the ``workloads`` it was fitted on.
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
            raise CalibrationError(
                f"calibration record {i}: backend {rec.workload.backend!r}, calibrating {backend!r}"
            )
        recs.append(rec)
    if not recs:
        raise CalibrationError(f"no successful measurements to calibrate {hw.id}/{backend}")
    # The default prior is the documented medians, never a stored calibration: re-using a fit as
    # its own prior would count its data twice (and leak held-out rows into leave-one-out).
    center = (prior or default_calibration(hw.id, backend)).constants
    data = _Records(recs)
    if len(recs) >= 3:
        held_out = []
        for i in range(len(recs)):
            fitted, _ = _fit(
                _Records(recs[:i] + recs[i + 1 :]), hw, backend, center, _FIRST_PASS_SIGMA
            )
            one = _Records([recs[i]])
            held_out.append(float(one.log_times(hw, fitted)["total_s"][0] - one.log_total[0]))
        rel_sigma = fit_sigma = max(_SIGMA_FLOOR, float(np.sqrt(np.mean(np.square(held_out)))))
    else:
        rel_sigma, fit_sigma = STRUCTURAL_SIGMA, _FIRST_PASS_SIGMA
    constants, cov = _fit(data, hw, backend, center, fit_sigma)
    return Calibration(
        hw.id,
        backend,
        **constants,
        rel_sigma=rel_sigma,
        n_points=len(recs),
        source=source or f"least squares on {len(recs)} measurement(s)",
        posterior_cov=tuple(map(tuple, cov)),
        workloads=tuple(sorted({str(r.workload) for r in recs})),
    )
