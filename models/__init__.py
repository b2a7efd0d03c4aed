"""Architecture arithmetic, hardware profiles and the throughput model (pure; no torch here).

Measurement (torch, transformers, vLLM, the SQLite cache) lives in :mod:`models.measure` and is
imported explicitly.
"""

from .arch import DTYPE_BYTES, SHAPE_FIELDS, Arch, ArchError
from .errors import ArchoptError
from .hardware import Hardware, HardwareError, get_hardware, hardware_for_device, list_hardware
from .parametrize import SearchSpace, budget_bounds, build_arch, enumerate_archs
from .throughput import (
    BACKENDS,
    DEFAULT_BACKEND,
    Calibration,
    CalibrationError,
    ThroughputPrediction,
    TimingRecord,
    Workload,
    WorkloadError,
    calibrate,
    default_calibration,
    load_calibration,
    memory_bytes,
    predict_throughput,
    predict_throughput_many,
    save_calibration,
)

__all__ = [
    "Arch",
    "ArchError",
    "ArchoptError",
    "DTYPE_BYTES",
    "SHAPE_FIELDS",
    "SearchSpace",
    "budget_bounds",
    "build_arch",
    "enumerate_archs",
    "Hardware",
    "HardwareError",
    "get_hardware",
    "hardware_for_device",
    "list_hardware",
    "BACKENDS",
    "DEFAULT_BACKEND",
    "Calibration",
    "CalibrationError",
    "ThroughputPrediction",
    "TimingRecord",
    "Workload",
    "WorkloadError",
    "calibrate",
    "default_calibration",
    "memory_bytes",
    "load_calibration",
    "predict_throughput",
    "predict_throughput_many",
    "save_calibration",
]
