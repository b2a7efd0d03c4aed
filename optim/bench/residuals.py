"""The random parts of a world no model contains: a smooth shape-dependent loss residual (a GP
draw through random Fourier features) and the throughput model's true error."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from models.arch import Arch

__all__ = [
    "shape_feature_matrix",
    "smooth_residual",
    "ThroughputError",
    "true_throughput",
]


def shape_feature_matrix(archs: Sequence[Arch]) -> np.ndarray:
    """Standardized shape features, ``n x 4``: ln(d/sqrt(N)), ln r, ln(d/L), ln(GQA group).

    Columns that do not vary over ``archs`` are left at zero.
    """
    raw = np.array(
        [
            [
                math.log(a.d_over_sqrt_n),
                math.log(a.mlp_attn_ratio),
                math.log(a.aspect_ratio),
                math.log(a.gqa_group),
            ]
            for a in archs
        ],
        float,
    )
    raw = raw.reshape(len(archs), 4)
    sd = raw.std(axis=0)
    z = np.zeros_like(raw)
    varying = sd > 1e-12
    z[:, varying] = (raw[:, varying] - raw[:, varying].mean(axis=0)) / sd[varying]
    return z


def smooth_residual(
    z: np.ndarray, rng: np.random.Generator, *, lengthscale: float = 1.0, n_features: int = 512
) -> np.ndarray:
    """One draw of a unit-variance squared-exponential GP at the rows of ``z`` (``n x p``).

    Random Fourier features (Rahimi & Recht 2007): ``sqrt(2/M) sum_m w_m cos(omega_m . z + b_m)``
    with ``omega ~ N(0, I / lengthscale^2)``, ``b ~ U(0, 2 pi)``, ``w ~ N(0, 1)``.

    Returns:
        Shape ``(n,)``.
    """
    omega = rng.normal(0.0, 1.0 / lengthscale, size=(n_features, z.shape[1]))
    phase = rng.uniform(0.0, 2.0 * math.pi, size=n_features)
    weight = rng.normal(size=n_features)
    return math.sqrt(2.0 / n_features) * np.cos(z @ omega.T + phase) @ weight


@dataclass(frozen=True)
class ThroughputError:
    """How true tokens/s differ from the throughput model's prediction (relative, ln units).

    ``true = model * exp(common + smooth(shape) + iid)``; defaults sized from what this project
    measured: the batch-64 efficiencies of the A100 calibration stay at documented defaults
    (FLOP 0.5, bandwidth 0.7; achieved decode bandwidth is 0.6-0.8 of peak), so the common
    factor is uncertain by ~15%; leave-one-shape-out errors on this CPU were 5.7-9.5% (median)
    with rank correlation 0.95-0.99, so the shape-dependent part is ~5%, mostly smooth in shape.

    Attributes:
        common_sd: sd of the factor shared by every candidate.
        shape_sd: sd of the smooth shape-dependent factor (a GP over standardized
            ``ln n_layers, ln d_model, ln KV bytes/token, ln ffn_dim``).
        iid_sd: sd of an independent per-candidate factor.
        lengthscale: of the smooth factor, in standardized feature units.
    """

    common_sd: float = 0.15
    shape_sd: float = 0.05
    iid_sd: float = 0.02
    lengthscale: float = 1.0


def true_throughput(
    candidates: Sequence[Arch],
    model_tps: np.ndarray,
    error: ThroughputError,
    rng: np.random.Generator,
) -> np.ndarray:
    """``(n,)`` true tokens/s: the model's ``(n,)`` tokens/s times the error's factors."""
    raw = np.array(
        [
            [
                math.log(a.n_layers),
                math.log(a.d_model),
                math.log(a.kv_bytes_per_token()),
                math.log(a.ffn_dim),
            ]
            for a in candidates
        ],
        float,
    ).reshape(len(candidates), 4)
    sd = raw.std(axis=0)
    z = np.where(sd > 1e-12, (raw - raw.mean(axis=0)) / np.where(sd > 1e-12, sd, 1.0), 0.0)
    log_err = (
        error.common_sd * rng.normal()
        + error.shape_sd * smooth_residual(z, rng, lengthscale=error.lengthscale)
        + error.iid_sd * rng.normal(size=len(candidates))
    )
    return np.asarray(model_tps, float) * np.exp(log_err)
