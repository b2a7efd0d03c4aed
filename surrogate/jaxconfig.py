"""JAX set-up for the NumPyro fits, done once before any JAX computation.

``numpyro.set_host_device_count`` (so NUTS chains run in parallel on CPU devices) unless
``XLA_FLAGS`` already sets a device count, and float64. Importing JAX does not initialise its
backend, so calling :func:`configure_jax` at import time of every module that computes with JAX
(:mod:`surrogate.bayes`, :mod:`surrogate.marginal`, :mod:`surrogate.nuts`) is early enough.
"""

from __future__ import annotations

import os

import numpyro

__all__ = ["configure_jax"]


def configure_jax() -> None:
    """Host device count (2 to 4, by CPU count) unless set by ``XLA_FLAGS``, and float64.
    Idempotent."""
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        numpyro.set_host_device_count(max(2, min(os.cpu_count() or 1, 4)))
    numpyro.enable_x64()
