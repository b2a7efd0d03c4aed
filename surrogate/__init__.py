"""Architecture-conditioned scaling laws: run tables, law forms, fits and posteriors.

Importing :mod:`surrogate` imports neither jax nor torch: the fitting and posterior modules
load on first attribute access (``surrogate.fit_bayes`` imports NumPyro/JAX only then).
"""

from __future__ import annotations

import importlib
from typing import Any

from .groups import size_groups
from .laws import FEATURE_KEYS, LAWS, Law, LawError, Param, Prior, get_law, law_features
from .runs import (
    BUNDLED_RUN_TABLES,
    RUN_COLUMNS,
    RunTableError,
    bundled_path,
    bundled_runs,
    load_runs,
    reference_architectures,
    source_keys,
    table_archs,
    validate_runs,
)

# name -> module, imported lazily (posterior is numpy-only but pulls arviz; bayes pulls jax).
_LAZY: dict[str, str] = {
    "LawPosterior": "posterior",
    "PosteriorError": "posterior",
    "fit_bayes": "bayes",
    "fit_lsq": "lsq",
    "LawFit": "lsq",
    "default_prior": "prior",
    "default_prior_runs": "prior",
}

__all__ = [
    "BUNDLED_RUN_TABLES",
    "FEATURE_KEYS",
    "LAWS",
    "Law",
    "LawError",
    "Param",
    "Prior",
    "RUN_COLUMNS",
    "RunTableError",
    "bundled_path",
    "bundled_runs",
    "get_law",
    "law_features",
    "load_runs",
    "reference_architectures",
    "size_groups",
    "source_keys",
    "table_archs",
    "validate_runs",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'surrogate' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
