"""What the optimizer needs from a fitted law, as Protocols (structural types).

:class:`~surrogate.posterior.LawPosterior` satisfies both; tests and benchmarks may pass any
object with these methods.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np

__all__ = ["LawDraws", "LawPrior"]


@runtime_checkable
class LawDraws(Protocol):
    """Draws of the noise-free law for given features (a benchmark world's truth needs only
    this)."""

    def law_draws(
        self,
        features: Mapping[str, Any],
        *,
        source: str | None = None,
        n_draws: int | None = None,
        xp: Any = np,
    ) -> np.ndarray:
        """``n_draws x n`` law values at the ``n`` rows of ``features``."""
        ...


@runtime_checkable
class LawPrior(LawDraws, Protocol):
    """A law posterior a campaign's loss model can rest on: draws plus the noise and
    discrepancy scales of a source's runs (``None``: the reference source)."""

    law: str
    reference_source: str

    def noise_sigma_for(self, source: str | None = None) -> float:
        """Run-to-run noise sd of ``source``'s final losses (loss units)."""
        ...

    def discrepancy_sigma_for(self, source: str | None = None) -> float:
        """Sd of the law's systematic misfit shared by every shape of a new size group."""
        ...
