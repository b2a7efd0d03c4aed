"""Fitting the throughput models' constants to measurements: :func:`calibrate`.

:func:`calibrate` fits the constants a backend uses to measurements (:class:`TimingRecord`): the
maximum a posteriori point of ``log(predicted / measured)`` time residuals (total time; time to
first token and time per output token at weight 0.5 where measured) with noise ``sigma``, plus
the prior (:mod:`models.constant_priors`), by ``scipy.optimize.least_squares``; and a **Laplace
approximation** around it, ``cov = (J^T J)^-1`` of the scaled residuals in the transformed
space. ``sigma`` is the leave-one-out RMS log error when there are >= 3 measurements (floored
at 0.02; the held-out fits assume 0.02), else 0.02 (measurement noise alone). The leave-one-out
error is stored as ``rel_sigma``, the model's per-shape structural error
(:data:`~models.constant_priors.STRUCTURAL_SIGMA` with fewer than 3 measurements). Constants the
data cannot identify (e.g. FLOP efficiency from batch-1 decode) keep their prior width in the
posterior.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .arch import Arch
from .backends import run_times
from .calibration import Calibration, CalibrationError, default_calibration
from .constant_priors import (
    BACKEND_CONSTANTS,
    STRUCTURAL_SIGMA,
    device_kind,
    from_theta,
    prior_center_sd,
    to_theta,
)
from .errors import ArchoptError
from .hardware import Hardware, get_hardware
from .roofline import arch_arrays
from .workload import BACKENDS, Workload

__all__ = ["TimingRecord", "calibrate"]

_SIGMA_FLOOR = 0.02
_FIRST_PASS_SIGMA = 0.02
_SIDE_WEIGHT = 0.5  # TTFT and TPOT residuals, relative to total time
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
