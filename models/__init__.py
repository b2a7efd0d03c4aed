"""Architecture arithmetic, hardware profiles and the throughput model (pure; no torch here).

Measurement (torch, transformers, vLLM, the SQLite cache) lives in :mod:`models.measure` and is
imported explicitly.
"""

from .errors import ArchoptError
from .arch import DTYPE_BYTES, SHAPE_FIELDS, Arch, ArchError
from .parametrize import SearchSpace, budget_bounds, build_arch, enumerate_archs

__all__ = ["Arch", "ArchError", "ArchoptError", "DTYPE_BYTES", "SHAPE_FIELDS", "SearchSpace", "budget_bounds",
           "build_arch", "enumerate_archs"]
