"""The throughput models' constants for one (hardware, backend): the record and its files.

A :class:`Calibration` holds the constants a backend's model reads, their Laplace posterior and
the model's structural error. Their priors are :mod:`models.constant_priors` (re-exported here);
:func:`models.calibration_fit.calibrate` fits them to measurements. An uncalibrated pair uses the
prior medians (:func:`default_calibration`).

Bundled calibrations are in ``models/data/calibrations.json``; :func:`save_calibration` writes
user ones to ``$ARCHOPT_HOME/calibrations.json``, which override bundled ones
(:func:`load_calibration`).
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .constant_priors import (
    BACKEND_CONSTANTS,
    CONSTANT_NAMES,
    LOGIT_CONSTANTS,
    PRIOR_RANGES,
    STRUCTURAL_SIGMA,
    device_kind,
    from_theta,
    prior_center_sd,
    prior_median,
    to_theta,
)
from .errors import ArchoptError
from .files import read_json, write_atomic
from .home import HOME_HINT, archopt_home, ensure_writable_folder
from .workload import BACKENDS

__all__ = [
    "Calibration",
    "CalibrationError",
    "default_calibration",
    "load_calibration",
    "save_calibration",
    "BUNDLED_CALIBRATIONS",
    "USER_CALIBRATION_FILE",
    # the priors (models.constant_priors), re-exported for existing callers
    "CONSTANT_NAMES",
    "BACKEND_CONSTANTS",
    "LOGIT_CONSTANTS",
    "PRIOR_RANGES",
    "STRUCTURAL_SIGMA",
    "device_kind",
    "prior_median",
    "prior_center_sd",
    "to_theta",
    "from_theta",
]

#: Bundled calibrations (shipped with the package).
BUNDLED_CALIBRATIONS = Path(__file__).resolve().parent / "data" / "calibrations.json"
#: User calibrations file name under ``$ARCHOPT_HOME``.
USER_CALIBRATION_FILE = "calibrations.json"


class CalibrationError(ArchoptError):
    """Invalid calibration data, records or calibration file."""


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
        try:
            write_atomic(target, json.dumps(payload, indent=2) + "\n")
        except OSError as exc:
            raise CalibrationError(
                f"cannot write calibration file {target}: {exc.strerror or exc}"
            ) from None
    return target
