"""Priors of the throughput models' constants (:mod:`models.backends`, :mod:`models.serving`).

Every constant has a **prior**: a documented 90% range (:data:`PRIOR_RANGES`, per backend and
device kind), read as a normal distribution in a transformed space -- ``logit`` for fractions
(efficiencies, overlap), ``log`` for positive scales (overheads, memory) -- whose 5% and 95%
quantiles are the range's ends (:func:`to_theta`, :func:`prior_center_sd`). An uncalibrated
(hardware, backend) pair uses the prior medians (:func:`prior_median`,
:func:`models.calibration.default_calibration`) and draws its uncertainty from the prior itself
(:mod:`models.uncertainty`).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CONSTANT_NAMES",
    "BACKEND_CONSTANTS",
    "LOGIT_CONSTANTS",
    "PRIOR_RANGES",
    "STRUCTURAL_SIGMA",
    "device_kind",
    "to_theta",
    "from_theta",
    "prior_center_sd",
    "prior_median",
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
_Z95 = 1.6448536269514722


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
