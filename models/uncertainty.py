"""Draws of tokens/s per candidate from the constants' posterior (or prior), split into a
common-mode and a shape-relative part.

For draw ``s`` and arch ``i``::

    log tps[s, i] = log model(theta_s, arch_i) + structural_sigma * z[s, i]
                  = log median_i + common[s] + shape[s, i]

``theta_s`` are the constants drawn from the calibration's Laplace posterior (or, uncalibrated,
from the documented prior ranges, :data:`models.constant_priors.PRIOR_RANGES`); ``z`` is i.i.d.
standard normal (the per-shape structural error, ``Calibration.rel_sigma``, widened to
:data:`~models.constant_priors.STRUCTURAL_SIGMA` when the calibration's workloads differ from the
one predicted). ``common[s]`` is the mean deviation over the candidate set (or the columns in
``common_over``): it scales every shape alike (e.g. the achieved bandwidth), moves the whole
front and does not change which shape is faster. ``shape[s, i]`` is the rest: what ranking
shapes against each other is uncertain about. With a single arch the split is meaningless
(``shape_sigma`` is 0 and everything is common).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .arch import Arch
from .backends import run_times
from .calibration import Calibration, load_calibration
from .constant_priors import (
    BACKEND_CONSTANTS,
    STRUCTURAL_SIGMA,
    device_kind,
    from_theta,
    prior_center_sd,
    to_theta,
)
from .hardware import Hardware, get_hardware
from .roofline import arch_arrays
from .workload import Workload, WorkloadError

__all__ = [
    "N_THROUGHPUT_DRAWS",
    "ThroughputDraws",
    "constant_draws",
    "structural_sigma",
    "calibration_warnings",
    "throughput_draws",
]

#: Draws per candidate kept by default (the campaign's law draws are 64 too).
N_THROUGHPUT_DRAWS = 64


@dataclass(frozen=True)
class ThroughputDraws:
    """Draws of output tokens/s and their summaries (``S`` draws, ``n`` archs).

    Attributes:
        tokens_per_s: ``S x n`` draws.
        median, q05, q95: ``(n,)`` quantiles over the draws.
        log_common: ``(S,)`` common-mode log factor of each draw.
        shape_sigma: ``(n,)`` sd over draws of the shape-relative log error.
        common_sigma: sd of ``log_common``.
        structural_sigma: the i.i.d. per-shape log sd that was added.
        backend, calibration_source: what produced them.
        warnings: calibration caveats (:func:`calibration_warnings`).
    """

    tokens_per_s: np.ndarray
    median: np.ndarray
    q05: np.ndarray
    q95: np.ndarray
    log_common: np.ndarray
    shape_sigma: np.ndarray
    common_sigma: float
    structural_sigma: float
    backend: str
    calibration_source: str
    warnings: tuple[str, ...] = ()


def constant_draws(
    cal: Calibration, n_draws: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """``n_draws`` draws of every constant, each an ``S x 1`` array.

    The constants ``cal.backend``'s model reads are normal in their transformed space around
    ``cal``'s values, with ``cal.posterior_cov`` (calibrated) or the prior widths (uncalibrated,
    or a calibration stored without a covariance); the others stay at ``cal``'s values.
    """
    names = BACKEND_CONSTANTS[cal.backend]
    mean = np.array([float(to_theta(n, getattr(cal, n))) for n in names])
    if cal.posterior_cov is not None:
        cov = np.asarray(cal.posterior_cov, dtype=float)
    else:
        kind = device_kind(cal.hardware_id)
        cov = np.diag([prior_center_sd(cal.backend, kind, n)[1] ** 2 for n in names])
    theta = rng.multivariate_normal(mean, cov, size=n_draws, method="eigh")  # S x p
    out = {n: np.full((n_draws, 1), getattr(cal, n)) for n in cal.constants}
    for j, n in enumerate(names):
        out[n] = from_theta(n, theta[:, j : j + 1])
    return out


def _matches(cal: Calibration, wl: Workload) -> bool:
    return any(_same(text, wl) for text in cal.workloads)


def _same(text: str, wl: Workload) -> bool:
    try:
        return Workload.parse(text).same_run(wl)
    except WorkloadError:
        return False


def structural_sigma(cal: Calibration, wl: Workload) -> float:
    """The per-shape log sd to add: the calibration's own where it was fitted at ``wl``, else at
    least :data:`~models.constant_priors.STRUCTURAL_SIGMA`."""
    return (
        cal.rel_sigma
        if cal.calibrated and _matches(cal, wl)
        else max(cal.rel_sigma, STRUCTURAL_SIGMA)
    )


def calibration_warnings(cal: Calibration, wl: Workload) -> tuple[str, ...]:
    """Why predictions of ``wl`` with ``cal`` are less certain than its fit says (or ``()``)."""
    pair = f"{cal.hardware_id}/{cal.backend}"
    if not cal.calibrated:
        return (
            f"{pair} is uncalibrated: tokens/s are drawn from the documented prior ranges "
            f"of the model's constants (models.calibration.PRIOR_RANGES); import or measure "
            f"runs and `archopt calibrate` to narrow them",
        )
    if not _matches(cal, wl):
        fitted = "; ".join(cal.workloads) or "unrecorded workloads"
        return (
            f"the {pair} calibration was fitted at {fitted}, not at the predicted workload "
            f"{wl}: constants those runs cannot identify keep their prior width and the "
            f"per-shape error is taken as at least {STRUCTURAL_SIGMA:g}",
        )
    return ()


def _shape_key(arch: Arch) -> int:
    """A stable 64-bit key of a shape (the seed of its per-shape error stream)."""
    text = repr(sorted(arch.shape().items())).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def throughput_draws(
    archs: Sequence[Arch],
    hardware: Hardware | str,
    workload: Workload,
    calibration: Calibration | None = None,
    *,
    n_draws: int = N_THROUGHPUT_DRAWS,
    seed: int = 0,
    common_over: np.ndarray | None = None,
) -> ThroughputDraws:
    """Draws of output tokens/s for every arch (see the module docstring).

    Args:
        archs: ``n`` shapes.
        hardware, workload: where and what (``workload.backend`` picks the model).
        calibration: default :func:`models.calibration.load_calibration` of the pair.
        n_draws: ``S`` (>= 2).
        seed: the draws are a deterministic function of it.
        common_over: ``(n,)`` bool, the columns the common mode is averaged over (default all).

    Returns:
        :class:`ThroughputDraws`.
    """
    if isinstance(n_draws, bool) or not isinstance(n_draws, int) or n_draws < 2:
        raise WorkloadError(f"n_draws must be an integer >= 2, got {n_draws!r}")
    hw = get_hardware(hardware)
    cal = calibration if calibration is not None else load_calibration(hw.id, workload.backend)
    if cal.backend != workload.backend:
        raise WorkloadError(
            f"calibration is for backend {cal.backend!r}, the workload runs {workload.backend!r}"
        )
    rng = np.random.default_rng(seed)
    archs = list(archs)
    n = len(archs)
    consts = constant_draws(cal, n_draws, rng)
    run = run_times(arch_arrays(archs, workload.dtype), workload, hw, consts)
    sigma = structural_sigma(cal, workload)
    log_model = np.log(workload.n_requests * workload.output_len) - np.log(
        np.broadcast_to(run["total_s"], (n_draws, n))
    )
    # The per-shape error of each arch comes from a stream of its own (seeded by the seed and
    # the shape), so an arch's draws do not depend on which other archs are evaluated with it.
    noise = (
        np.stack(
            [np.random.default_rng([seed, _shape_key(a)]).standard_normal(n_draws) for a in archs],
            axis=1,
        )
        if n
        else np.zeros((n_draws, 0))
    )
    log_tps = log_model + sigma * noise
    # The point value is the median over the constants only: Monte Carlo noise of the per-shape
    # error would otherwise jitter the ranking of near-equal shapes.
    log_med = np.median(log_model, axis=0) if n else np.zeros(0)
    dev = log_tps - log_med
    mask = np.ones(n, dtype=bool) if common_over is None else np.asarray(common_over, dtype=bool)
    common = dev[:, mask].mean(axis=1) if mask.any() else np.zeros(n_draws)
    shape = dev - common[:, None]
    tps = np.exp(log_tps)
    return ThroughputDraws(
        tokens_per_s=tps,
        median=np.exp(log_med),
        q05=np.quantile(tps, 0.05, axis=0) if n else np.zeros(0),
        q95=np.quantile(tps, 0.95, axis=0) if n else np.zeros(0),
        log_common=common,
        shape_sigma=shape.std(axis=0, ddof=1),
        common_sigma=float(common.std(ddof=1)),
        structural_sigma=float(sigma),
        backend=workload.backend,
        calibration_source=cal.source,
        warnings=calibration_warnings(cal, workload),
    )
