"""Central 90% bands: the one z value every band of archopt uses."""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

__all__ = ["Z90", "Q05", "Q95", "lognormal_band"]

#: Lower and upper quantile levels of a central 90% band.
Q05, Q95 = 0.05, 0.95
#: Standard-normal quantile of :data:`Q95` (1.6449).
Z90: float = float(norm.ppf(Q95))


def lognormal_band(
    median: np.ndarray | float, rel_sigma: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """``(q05, q95)`` of a lognormal with the given median and sd of its log (same shapes)."""
    median = np.asarray(median, dtype=np.float64)
    spread = np.exp(Z90 * np.asarray(rel_sigma, dtype=np.float64))
    return median / spread, median * spread
