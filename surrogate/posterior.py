"""A posterior over a law's coefficients, and everything computed from it.

:class:`LawPosterior` holds ``S`` joint draws of a law's coefficients, of per-source terms and of
the observation noise, however they were obtained (NUTS in :mod:`surrogate.bayes`, a Laplace
approximation around a least-squares fit in :mod:`surrogate.lsq`, a stacked mixture in
:mod:`surrogate.stacking`), so every fitting method goes through the same prediction path.

Where each part lives:

* the observation model shared by every fitter, per-source terms and sample keys:
  :mod:`surrogate.observation`;
* the discrepancy at prediction (fresh group effect, size-dependent misfit scale, misfit trend,
  the GP conditional): :mod:`surrogate.discrepancy`;
* prediction: :mod:`surrogate.predictive` (:meth:`LawPosterior.predict`, the marginal predictive;
  :meth:`LawPosterior.joint_draws`, draws joint across candidates, so the difference between two
  candidates of one size carries only what differs between their shapes;
  :meth:`LawPosterior.relative`: loss relative to a reference row, P(row beats it));
* the coefficient table and diagnostics: :mod:`surrogate.posterior_report`;
* the file format (ArviZ InferenceData, netCDF, never pickle): :mod:`surrogate.posterior_io`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import predictive
from .discrepancy import GP_JITTER, gp_kernel
from .laws import Law, get_law
from .observation import (
    CHINCHILLA_PART,
    SOURCE_TERMS,
    PosteriorError,
    apply_source_terms,
    split_source_key,
)
from .posterior_io import read_posterior, to_inference_data
from .posterior_report import (
    PRIOR_DOMINATED_RATIO,
    compute_diagnostics,
    posterior_json,
    summary_table,
)
from .predictive import PREDICT_DRAWS, candidate_features, draw_indices, quantile_column

__all__ = [
    "LawPosterior",
    "PosteriorError",
    "SOURCE_TERMS",
    "CHINCHILLA_PART",
    "PREDICT_DRAWS",
    "apply_source_terms",
    "quantile_column",
    "PRIOR_DOMINATED_RATIO",
    "split_source_key",
    "gp_kernel",
    "GP_JITTER",
    "candidate_features",
]


class LawPosterior:
    """Joint draws of a law's coefficients, per-source terms and noise.

    Args:
        law: registered law name (see :data:`surrogate.laws.LAWS`).
        samples: name -> array ``(S,)`` (chain-major when ``num_chains > 1``); keys as in
            :mod:`surrogate.observation`.
        sources: every source key seen in the fit; ``sources[0]`` need not be the reference.
        reference_source: the source whose scale is 1 and offset 0.
        source_terms: one of :data:`SOURCE_TERMS`.
        method: ``"bayes"``, ``"lsq"`` or ``"huber"``.
        num_chains: chains the draws came from (diagnostics split by chain).
        diagnostics: dict (see :attr:`diagnostics`).
        prior_sd: name -> prior sd for the summary's data/prior column (empty without priors).
        fixed: names held constant during the fit (e.g. r-terms when r is barely varied).
        info: free-form JSON-able metadata (data hash, settings, timings).
        sample_stats: optional per-draw arrays ``(S,)`` (e.g. ``diverging``) for ArviZ.
    """

    def __init__(
        self,
        law: str,
        samples: Mapping[str, np.ndarray],
        *,
        sources: Sequence[str],
        reference_source: str,
        source_terms: str = "affine",
        method: str = "bayes",
        num_chains: int = 1,
        diagnostics: Mapping[str, Any] | None = None,
        prior_sd: Mapping[str, float] | None = None,
        fixed: Sequence[str] = (),
        info: Mapping[str, Any] | None = None,
        sample_stats: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self._law: Law = get_law(law)
        if source_terms not in SOURCE_TERMS:
            raise PosteriorError(
                f"source_terms must be one of {SOURCE_TERMS}, got {source_terms!r}"
            )
        self.law: str = law
        self.samples: dict[str, np.ndarray] = {
            k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in samples.items()
        }
        self.sources: list[str] = list(sources)
        if reference_source not in self.sources:
            raise PosteriorError(f"reference source {reference_source!r} not among {self.sources}")
        self.reference_source: str = reference_source
        self.source_terms: str = source_terms
        self.method: str = method
        self.num_chains: int = int(num_chains)
        self.prior_sd: dict[str, float] = dict(prior_sd or {})
        self.fixed: list[str] = list(fixed)
        self.info: dict[str, Any] = dict(info or {})
        self.sample_stats: dict[str, np.ndarray] = {
            k: np.asarray(v).reshape(-1) for k, v in (sample_stats or {}).items()
        }
        missing = [p for p in self._law.param_names if p not in self.samples]
        missing += [f"sigma[{s}]" for s in self.sources if f"sigma[{s}]" not in self.samples]
        if missing:
            raise PosteriorError(f"posterior lacks samples for {', '.join(missing)}")
        sizes = {v.shape[0] for v in self.samples.values()}
        if len(sizes) != 1 or 0 in sizes:
            raise PosteriorError(
                f"all sample arrays must have the same positive length, got {sizes}"
            )
        self.num_samples: int = sizes.pop()
        if self.num_samples % self.num_chains:
            raise PosteriorError("sample count is not a multiple of num_chains")
        self._diagnostics = dict(diagnostics) if diagnostics is not None else None

    # ---- coefficients -----------------------------------------------------------------
    @property
    def law_obj(self) -> Law:
        """The :class:`~surrogate.laws.Law` instance."""
        return self._law

    def theta(
        self, idx: np.ndarray | None = None, source: str | None = None
    ) -> dict[str, np.ndarray]:
        """Law coefficients ``name -> (S', 1)`` for draws ``idx`` (all when None).

        ``source``: whose coefficients (default: the reference source's). Only differs from
        the reference with ``source_terms="chinchilla"`` (per-source Chinchilla parts).
        """
        sel = slice(None) if idx is None else idx
        src = self.resolve_source(source)
        out = {}
        for p in self._law.param_names:
            values = self.samples.get(f"{p}[{src}]", self.samples[p])
            out[p] = values[sel][:, None]
        return out

    def source_term(self, kind: str, source: str, idx: np.ndarray) -> np.ndarray | None:
        """Draws ``(S', 1)`` of ``source``'s ``kind`` term (``"scale"``, ``"offset"``) for draws
        ``idx``, or None when the source has no such term (the reference; other options)."""
        key = f"{kind}[{source}]"
        if key in self.samples:
            return self.samples[key][idx][:, None]
        return None

    def resolve_source(self, source: str | None) -> str:
        """``source``, or the reference source for None; an unknown source raises
        PosteriorError."""
        if source is None:
            return self.reference_source
        if source not in self.sources:
            raise PosteriorError(
                f"unknown source {source!r}; fitted sources: {', '.join(self.sources)}"
            )
        return source

    @property
    def noise_sigma(self) -> float:
        """Posterior mean of the reference source's observation noise sd (loss units)."""
        return float(np.mean(self.samples[f"sigma[{self.reference_source}]"]))

    def noise_sigma_for(self, source: str | None = None) -> float:
        """Posterior mean noise sd (loss units) of ``source`` (default: the reference)."""
        return float(np.mean(self.samples[f"sigma[{self.resolve_source(source)}]"]))

    def discrepancy_sigma_for(self, source: str | None = None) -> float:
        """Posterior root-mean-square of the discrepancy sd ``tau`` of ``source`` (loss units):
        how far the law is expected to be off, systematically, at an unseen size group. 0 for
        fits without a discrepancy term (least squares). With the GP discrepancy: the rms of its
        Matern amplitude ``eta`` (the stationary part; the predictive grows beyond it with the
        distance from the fitted sizes through the linear term)."""
        src = self.resolve_source(source)
        tau = self.samples.get(f"tau[{src}]", self.samples.get(f"gp_eta[{src}]"))
        return 0.0 if tau is None else float(np.sqrt(np.mean(tau**2)))

    def misfit_sigma_for(self, source: str | None = None) -> float:
        """``sqrt(E[sigma^2] + E[tau^2])``: the sd of a new run around the law (loss units)."""
        sigma = self.samples[f"sigma[{self.resolve_source(source)}]"]
        return float(np.sqrt(np.mean(sigma**2) + self.discrepancy_sigma_for(source) ** 2))

    # ---- evaluation -------------------------------------------------------------------
    def law_draws(
        self,
        features: Mapping[str, Any],
        *,
        source: str | None = None,
        n_draws: int | None = None,
        xp: Any = np,
    ) -> Any:
        """Noise-free law values (with ``source``'s scale/offset) for every draw.

        Args:
            features: feature arrays ``(n,)`` as from :func:`~surrogate.laws.law_features`
                (numpy arrays, or torch tensors when ``xp`` is torch; torch tensors may carry a
                batch shape ``batch x n``, the result is then ``S x batch x n`` only if the
                caller reshapes; the documented use is ``(n,)``).
            source: whose per-source terms to apply (default: the reference source).
            n_draws: use this many draws, evenly spaced over the chains (default: all ``S``).
            xp: numpy, jax.numpy or torch.

        Returns:
            ``(S', n)`` array of the same library as ``features`` (dtype and device follow the
            features for torch), ``S' = min(S, n_draws)``.
        """
        src = self.resolve_source(source)
        idx = draw_indices(self.num_samples, n_draws)
        theta = self.theta(idx, src)
        scale = self.source_term("scale", src, idx)
        offset = self.source_term("offset", src, idx)
        convert = _converter(features, xp)
        theta_x = {k: convert(v) for k, v in theta.items()}
        mu = self._law(features, theta_x, xp)
        return apply_source_terms(
            mu,
            None if scale is None else convert(scale),
            None if offset is None else convert(offset),
        )

    def law_by_row(
        self, features: Mapping[str, np.ndarray], source: str, idx: np.ndarray
    ) -> np.ndarray:
        """Law values with ``source``'s scale/offset, draws on the last axis.

        ``features`` hold ``(n, 1)`` columns; returns ``(n, S')`` for the draws ``idx``
        (the layout :func:`~surrogate.predictive.predict` takes quantiles along;
        :meth:`law_draws` is draws-first).
        """
        theta = {k: v[:, 0] for k, v in self.theta(idx, source).items()}
        scale = self.source_term("scale", source, idx)
        offset = self.source_term("offset", source, idx)
        return apply_source_terms(
            self._law(features, theta, np),
            None if scale is None else scale[:, 0],
            None if offset is None else offset[:, 0],
        )

    def features_for(
        self, archs_or_runs: Any, tokens: Any = None
    ) -> tuple[dict[str, np.ndarray], np.ndarray | None, pd.Index | None]:
        """:func:`~surrogate.predictive.candidate_features` (kept as a method for callers of
        the posterior)."""
        return candidate_features(archs_or_runs, tokens)

    # ---- prediction (surrogate.predictive) --------------------------------------------
    def predict(
        self,
        archs_or_runs: Any,
        tokens: Any = None,
        *,
        source: str | None = None,
        quantiles: Sequence[float] = (0.05, 0.5, 0.95),
        n_draws: int | None = PREDICT_DRAWS,
        seed: int = 0,
    ) -> pd.DataFrame:
        """Posterior-predictive loss of ``n`` candidates: ``pred_mean``, ``pred_sd``, one
        ``pred_qXX`` per quantile, ``pred_law_sd``, ``pred_source``
        (:func:`surrogate.predictive.predict`)."""
        return predictive.predict(
            self,
            archs_or_runs,
            tokens,
            source=source,
            quantiles=quantiles,
            n_draws=n_draws,
            seed=seed,
        )

    def joint_draws(
        self,
        archs_or_runs: Any,
        tokens: Any = None,
        *,
        source: str | None = None,
        n_draws: int | None = PREDICT_DRAWS,
        seed: int = 0,
        noise: bool = True,
    ) -> np.ndarray:
        """``(S', n)`` posterior-predictive draws of the loss at ``n`` rows, joint across rows
        (:func:`surrogate.predictive.joint_draws`)."""
        return predictive.joint_draws(
            self, archs_or_runs, tokens, source=source, n_draws=n_draws, seed=seed, noise=noise
        )

    def relative(
        self,
        archs_or_runs: Any,
        reference: int,
        tokens: Any = None,
        *,
        source: str | None = None,
        quantiles: Sequence[float] = (0.05, 0.5, 0.95),
        n_draws: int | None = PREDICT_DRAWS,
        seed: int = 0,
        noise: bool = False,
    ) -> pd.DataFrame:
        """Loss of every row relative to row ``reference`` (a position): ``rel_mean``,
        ``rel_sd``, ``rel_qXX``, ``p_better`` (:func:`surrogate.predictive.relative`)."""
        return predictive.relative(
            self,
            archs_or_runs,
            reference,
            tokens,
            source=source,
            quantiles=quantiles,
            n_draws=n_draws,
            seed=seed,
            noise=noise,
        )

    # ---- reporting (surrogate.posterior_report) ---------------------------------------
    def by_chain(self, values: np.ndarray) -> np.ndarray:
        """Draws ``(S,)`` as ``(num_chains, S / num_chains)``."""
        return values.reshape(self.num_chains, -1)

    def summary(self) -> pd.DataFrame:
        """One row per coefficient, per-source term and noise sd: ``mean``, ``sd``, ``q05``,
        ``q95``, ``r_hat``, ``ess_bulk``, ``prior_sd``, ``sd_ratio``, ``dominated_by``
        (:func:`surrogate.posterior_report.summary_table`)."""
        return summary_table(self)

    @property
    def diagnostics(self) -> dict[str, Any]:
        """``max_r_hat``, ``min_ess_bulk``, ``divergences``, ``num_chains``, ``num_samples``,
        ``warnings`` (list of str, empty when healthy) and fit-specific entries; computed once
        (:func:`surrogate.posterior_report.compute_diagnostics`) unless given."""
        if self._diagnostics is None:
            self._diagnostics = compute_diagnostics(self)
        return self._diagnostics

    def to_json(self) -> dict[str, Any]:
        """A JSON-able description: law, method, sources, coefficients with intervals,
        diagnostics (the CLI prints this)."""
        return posterior_json(self)

    # ---- persistence (surrogate.posterior_io) -----------------------------------------
    def to_inference_data(self) -> Any:
        """An :class:`arviz.InferenceData` (per-source terms on a ``source`` dimension)."""
        return to_inference_data(self, self._diagnostics)

    def save(self, path: str | Path) -> Path:
        """Write the posterior as ArviZ InferenceData netCDF (atomically: temp file + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            self.to_inference_data().to_netcdf(str(tmp), engine="h5netcdf")
            tmp.replace(path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path

    @classmethod
    def load(cls, path: str | Path) -> "LawPosterior":
        """Read a file written by :meth:`save`; any unreadable file raises PosteriorError."""
        return read_posterior(path, cls)

    def __repr__(self) -> str:
        return (
            f"LawPosterior(law={self.law!r}, method={self.method!r}, S={self.num_samples}, "
            f"sources={self.sources}, reference={self.reference_source!r})"
        )


def _converter(features: Mapping[str, Any], xp: Any) -> Callable[[np.ndarray], Any]:
    """A function turning numpy ``(S, 1)`` arrays into ``xp`` arrays matching the features."""
    if xp is np:
        return lambda a: a
    if getattr(xp, "__name__", "") == "torch":
        ref = next((v for v in features.values() if isinstance(v, xp.Tensor)), None)
        dtype = ref.dtype if ref is not None and ref.is_floating_point() else xp.float64
        device = ref.device if ref is not None else None
        return lambda a: xp.as_tensor(a, dtype=dtype, device=device)
    return lambda a: xp.asarray(a)
