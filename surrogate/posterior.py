"""A posterior over a law's coefficients, and everything computed from it.

:class:`LawPosterior` holds ``S`` joint draws of a law's coefficients, of per-source terms and of
the observation noise, however they were obtained (NUTS in :mod:`surrogate.bayes`, a Laplace
approximation around a least-squares fit in :mod:`surrogate.lsq`), so every fitting method goes
through the same prediction path.

The observation model, shared by every fitter (one concept, defined here)::

    loss[i] ~ Normal(scale[s_i] * law(x_i; theta[s_i]) + offset[s_i] + delta[g_i], sigma[s_i])
    delta[g] ~ Normal(0, tau[s_g])        (one per (source, size group); NUTS fits only)

with ``s_i`` the row's source key (:func:`surrogate.runs.source_keys`) and ``g_i`` its
(source, model-size group) (:func:`surrogate.groups.size_groups`). The reference source has
``scale = 1`` and ``offset = 0``; other sources get terms according to ``source_terms``:

* ``"none"``, ``"offset"``, ``"scale"``, ``"affine"`` (= scale and offset): one shared law,
  calibrated per source;
* ``"chinchilla"``: each source has its own Chinchilla part (``E``, ``log_A``, ``alpha``,
  ``log_B``, ``beta``, partially pooled exponents) while the shape terms (aspect / d-over-sqrt-N /
  r calibration) are shared, so the shape effect is learned from every table and each table keeps
  its own curve. ``theta[s]`` is then the reference coefficients with source ``s``'s Chinchilla
  part substituted.

``delta`` is the *discrepancy*: a law fitted on some sizes errs systematically (not i.i.d.) at a
size it has not seen. Its sd ``tau`` is learned from how much the fitted sizes deviate from the
law; the predictive for a new candidate draws a fresh ``delta ~ N(0, tau)`` (every candidate is
treated as a new size group), on top of the coefficient uncertainty and the noise ``sigma``.
``sigma`` and ``tau`` are in loss units (nats/token) and per source, because loss kinds differ.
With the default trend-orthogonal discrepancy of :mod:`surrogate.bayes` both are scaled by the
size-dependent misfit factor stored in ``info["misfit_scale"]`` (held at the edge value beyond
the fitted sizes), and ``info["extrapolation"]`` adds a misfit *trend*: sd
``sd_per_efold * (distance in ln N beyond the fitted sizes)``, one draw per posterior draw and
source, so it is shared by every candidate of a draw (two shapes of one size do not differ by it).

**Joint draws** (:meth:`LawPosterior.joint_draws`): one draw fixes the coefficients, per-source
terms, the misfit trend and one discrepancy value per size group of the candidates, so the
difference between two candidates of one size carries only what differs between their shapes
(:meth:`LawPosterior.relative`: loss relative to a reference row, P(row beats it)).

**Distance-aware discrepancy** (NUTS ``discrepancy="gp"`` / ``"gp_shared"``): instead of i.i.d.
group effects, ``delta[s](u)`` is a Gaussian process in ``u = ln N`` (non-embedding params) per
source, kernel (:func:`gp_kernel`)::

    k(u, u') = eta[s]^2 m(u) m(u') Matern32(|u - u'| / ell) + slope^2 (u - u0[s]) (u' - u0[s])
    m(u) = exp(-kappa (clip(u, u_lo[s], u_hi[s]) - u0[s])),   noise sd sigma[s] m(u)

(``u0[s]`` the mean training ``ln N`` of the source; ``eta`` per source or shared, ``ell``,
``slope`` and ``kappa`` (key ``noise_slope``) shared), integrated out in closed form in the fit.
``kappa`` lets the law's misfit, both the smooth part and the per-run noise, shrink (or grow)
by ``e^-kappa`` per e-fold of N: tiny models bend away from the power laws, and a misfit scale
learned mostly from them would otherwise be applied unchanged at the sizes being predicted.
Beyond the fitted sizes ``[u_lo, u_hi]`` the scale stays at its value at the edge: the trend is
not extrapolated (gemstones' chinchilla misfit grows over its fitted sizes; extrapolated
exponentially, it gave 90% intervals 2.8 nats wide). The predictive for a candidate uses
the GP's *conditional* mean and variance given that draw's training residuals (exact per draw:
the training rows are stored in ``info["gp"]``), so its variance grows with the distance from the
fitted sizes (to ``eta^2`` for the Matern part, without bound for the linear part).

Sample keys: the law's coefficient names (the reference source's values); ``name[src]`` for a
per-source term of a non-reference source (``scale``, ``offset``, and with ``"chinchilla"`` terms
the Chinchilla coefficients); ``sigma[src]`` and (NUTS) ``tau[src]`` for every source. Saved as
ArviZ InferenceData (netCDF, never pickle): per-source terms become variables with a ``source``
dimension (per-source law coefficients as ``<name>_by_source``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from models.arch import Arch
from models.errors import ArchoptError

from .laws import Law, get_law, law_features
from .runs import source_keys, table_archs, validate_runs

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

#: The per-source term options (see the module docstring).
SOURCE_TERMS: tuple[str, ...] = ("none", "offset", "scale", "affine", "chinchilla")
#: Coefficients that are per source with ``source_terms="chinchilla"`` (when the law has them).
CHINCHILLA_PART: tuple[str, ...] = ("E", "log_A", "alpha", "log_B", "beta")
#: Default posterior draws used by :meth:`LawPosterior.predict` (quantiles are stable to
#: ~0.002 nats at this count; 10,000 candidates take well under a second).
PREDICT_DRAWS: int = 256
#: A term whose posterior sd exceeds this fraction of its prior sd is called prior-dominated.
PRIOR_DOMINATED_RATIO: float = 0.5
_PER_SOURCE = ("scale", "offset", "sigma", "tau", "gp_eta")
#: Added to the diagonal of GP covariances (loss units squared).
GP_JITTER: float = 1e-8
#: Above this many distinct candidate sizes, the GP conditional is evaluated on a grid of this
#: many points in ln N and interpolated linearly (the kernel is smooth on that scale).
_GP_GRID: int = 256
_FORMAT_VERSION = 1


class PosteriorError(ArchoptError):
    """Unreadable posterior file, or a prediction request that does not fit the posterior."""


def apply_source_terms(mu: Any, scale: Any = None, offset: Any = None) -> Any:
    """``scale * mu + offset`` (either may be None): the per-source calibration of a law value.

    Works for numpy, jax and torch arrays alike; shapes broadcast (``(S, 1)`` terms with
    ``(S, n)`` law values).
    """
    if scale is not None:
        mu = mu * scale
    if offset is not None:
        mu = mu + offset
    return mu


def quantile_column(q: float) -> str:
    """Column name of quantile ``q``: 0.05 -> ``pred_q05``, 0.5 -> ``pred_q50``, 0.975 -> ``pred_q97.5``."""
    pct = q * 100.0
    text = f"{pct:.10g}"
    if "." not in text and len(text) < 2:
        text = "0" + text
    return f"pred_q{text}"


def split_source_key(key: str) -> tuple[str, str] | None:
    """``"kind[src]"`` -> ``(kind, src)``; None for a key without a source."""
    if key.endswith("]") and "[" in key:
        kind, src = key[:-1].split("[", 1)
        return kind, src
    return None


def gp_kernel(
    u1: Any,
    u2: Any,
    eta: Any,
    ell: Any,
    slope: Any,
    u0: Any,
    xp: Any = np,
    kappa: Any = 0.0,
    u_range: tuple[float, float] | None = None,
) -> Any:
    """The discrepancy GP's covariance ``eta^2 m(u1) m(u2) Matern32(|u1 - u2| / ell) +
    slope^2 (u1 - u0) (u2 - u0)``, ``m(u) = exp(-kappa (clip(u, *u_range) - u0))``, between
    ``u1 (..., a)`` and ``u2 (..., b)`` (``u = ln N``); ``eta``, ``ell``, ``slope``, ``u0``,
    ``kappa`` broadcast against ``(..., 1, 1)``. Returns ``(..., a, b)``."""
    d = xp.abs(u1[..., :, None] - u2[..., None, :])
    r = math.sqrt(3.0) * d / ell
    c1, c2 = (u1, u2) if u_range is None else (xp.clip(u1, *u_range), xp.clip(u2, *u_range))
    amp = xp.exp(-kappa * (c1[..., :, None] - u0)) * xp.exp(-kappa * (c2[..., None, :] - u0))
    return eta**2 * amp * (1.0 + r) * xp.exp(-r) + slope**2 * (u1[..., :, None] - u0) * (
        u2[..., None, :] - u0
    )


def candidate_features(
    archs_or_runs: Any, tokens: Any = None
) -> tuple[dict[str, np.ndarray], np.ndarray | None, pd.Index | None]:
    """Law features ``(n,)`` of candidates given as a run table, a sequence of :class:`Arch`
    (with ``tokens``) or a feature mapping; returns ``(features, row source keys or None,
    table index or None)``."""
    if isinstance(archs_or_runs, pd.DataFrame):
        df = validate_runs(
            archs_or_runs, require_loss=False, require_tokens=tokens is None, name="runs"
        )
        toks = df["tokens"].to_numpy(np.float64) if tokens is None else tokens
        feats = law_features(table_archs(df), toks)
        keys = source_keys(df) if "source" in df.columns else None
        return feats, keys, df.index
    if isinstance(archs_or_runs, Mapping):
        feats = {k: np.asarray(v, dtype=np.float64) for k, v in archs_or_runs.items()}
        if tokens is not None:
            n = len(next(iter(feats.values())))
            feats["D"] = np.broadcast_to(np.asarray(tokens, np.float64), (n,)).copy()
        return feats, None, None
    archs = list(archs_or_runs)
    if not all(isinstance(a, Arch) for a in archs):
        raise PosteriorError("predict takes a run table, a sequence of Arch or features")
    if tokens is None:
        raise PosteriorError("tokens are required when predicting for Arch objects")
    return law_features(archs, tokens), None, None


def _even_indices(total: int, n_draws: int | None) -> np.ndarray:
    if n_draws is None or n_draws >= total:
        return np.arange(total)
    if n_draws <= 0:
        raise PosteriorError(f"n_draws must be positive, got {n_draws}")
    return np.unique(np.linspace(0, total - 1, n_draws).round().astype(np.int64))


class LawPosterior:
    """Joint draws of a law's coefficients, per-source terms and noise.

    Args:
        law: registered law name (see :data:`surrogate.laws.LAWS`).
        samples: name -> array ``(S,)`` (chain-major when ``num_chains > 1``).
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
        src = self._resolve_source(source)
        out = {}
        for p in self._law.param_names:
            values = self.samples.get(f"{p}[{src}]", self.samples[p])
            out[p] = values[sel][:, None]
        return out

    def _source_term(self, kind: str, source: str, idx: np.ndarray) -> np.ndarray | None:
        key = f"{kind}[{source}]"
        if key in self.samples:
            return self.samples[key][idx][:, None]
        return None

    def _resolve_source(self, source: str | None) -> str:
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
        return float(np.mean(self.samples[f"sigma[{self._resolve_source(source)}]"]))

    def discrepancy_sigma_for(self, source: str | None = None) -> float:
        """Posterior root-mean-square of the discrepancy sd ``tau`` of ``source`` (loss units):
        how far the law is expected to be off, systematically, at an unseen size group. 0 for
        fits without a discrepancy term (least squares). With the GP discrepancy: the rms of its
        Matern amplitude ``eta`` (the stationary part; the predictive grows beyond it with the
        distance from the fitted sizes through the linear term)."""
        src = self._resolve_source(source)
        tau = self.samples.get(f"tau[{src}]", self.samples.get(f"gp_eta[{src}]"))
        return 0.0 if tau is None else float(np.sqrt(np.mean(tau**2)))

    def misfit_sigma_for(self, source: str | None = None) -> float:
        """``sqrt(E[sigma^2] + E[tau^2])``: the sd of a new run around the law (loss units)."""
        sigma = self.samples[f"sigma[{self._resolve_source(source)}]"]
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
        src = self._resolve_source(source)
        idx = _even_indices(self.num_samples, n_draws)
        theta = self.theta(idx, src)
        scale = self._source_term("scale", src, idx)
        offset = self._source_term("offset", src, idx)
        convert = _converter(features, xp)
        theta_x = {k: convert(v) for k, v in theta.items()}
        mu = self._law(features, theta_x, xp)
        return apply_source_terms(
            mu,
            None if scale is None else convert(scale),
            None if offset is None else convert(offset),
        )

    def features_for(
        self, archs_or_runs: Any, tokens: Any = None
    ) -> tuple[dict[str, np.ndarray], np.ndarray | None, pd.Index | None]:
        """:func:`candidate_features` (kept as a method for callers of the posterior)."""
        return candidate_features(archs_or_runs, tokens)

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
        """Posterior-predictive loss of ``n`` candidates: coefficient uncertainty, discrepancy
        (a fresh ``delta ~ N(0, tau)`` per candidate, see the module docstring) and noise.

        Args:
            archs_or_runs: a run table (``loss`` optional; ``tokens`` unless given), a
                sequence of :class:`Arch`, or a feature mapping (:func:`law_features`).
            tokens: training tokens, scalar or ``(n,)``; overrides a table's ``tokens``.
            source: whose per-source terms to use for every row. When None, a table's rows use
                their own source key if it was fitted, else the reference source.
            quantiles: predictive quantiles in (0, 1) to report.
            n_draws: posterior draws used (evenly spaced; None = all). The default
                :data:`PREDICT_DRAWS` keeps 10,000 candidates well under a second.
            seed: seed of the (stratified) noise draws; fixed so predictions are reproducible.

        Returns:
            One row per candidate (the table's index when a table was given): ``pred_mean``,
            ``pred_sd``, one ``pred_qXX`` per quantile, ``pred_law_sd`` (sd of the noise-free law,
            i.e. coefficient uncertainty only) and ``pred_source`` (whose terms were applied).
        """
        qs = [float(q) for q in quantiles]
        if any(not 0.0 < q < 1.0 for q in qs):
            raise PosteriorError(f"quantiles must lie in (0, 1), got {qs}")
        feats, keys, index = self.features_for(archs_or_runs, tokens)
        n = len(feats["D"])
        row_src = self._row_sources(keys, n, source)
        idx = _even_indices(self.num_samples, n_draws)
        s = len(idx)
        # Stratified standard-normal noise, one per draw, shuffled against the draw order.
        rng = np.random.default_rng(seed)
        from scipy.special import ndtri

        z = ndtri((rng.permutation(s) + 0.5) / s)
        out = {"pred_mean": np.empty(n), "pred_sd": np.empty(n), "pred_law_sd": np.empty(n)}
        for q in qs:
            out[quantile_column(q)] = np.empty(n)
        # Candidates on axis 0 and draws on axis 1 (contiguous per candidate): the quantiles
        # along axis 1 are ~2x faster than along a strided axis 0.
        for src in dict.fromkeys(row_src.tolist()):
            rows = np.flatnonzero(row_src == src)
            sub = {k: v[rows][:, None] for k, v in feats.items()}
            mu = self._law_draws_last(sub, src, idx)  # (n_src, s)
            # Noise and a new group's discrepancy are independent normals: one sd per draw.
            noise2 = self.samples[f"sigma[{src}]"][idx] ** 2
            law_sd = mu.std(axis=1)
            info = self._gp_info(src)
            if info is None:
                tau = self.samples.get(f"tau[{src}]")
                spread2 = noise2 if tau is None else noise2 + tau[idx] ** 2
                scale = self._misfit_scale(src, idx, feats["N"][rows])
                if scale is not None:  # misfit and noise scale with size (n_src, s)
                    spread2 = spread2[None, :] * scale
            else:  # GP conditional given this draw's residuals; the noise scales with size
                u_new = np.log(feats["N"][rows])
                g_mean, g_var = self._gp_conditional(src, idx, u_new)
                mu = mu + g_mean
                spread2 = (
                    noise2[None, :] * self._noise_factor(idx, u_new, info, False) + g_var
                )  # (n_src, s)
            trend = self._extrapolation_sd(src, feats["N"][rows])  # (n_src,)
            if trend is not None:
                spread2 = spread2 + (trend**2)[:, None]
            out["pred_mean"][rows] = mu.mean(axis=1)
            out["pred_law_sd"][rows] = law_sd
            out["pred_sd"][rows] = np.sqrt(mu.var(axis=1) + np.mean(spread2, axis=-1))
            if qs:
                mu += np.sqrt(spread2) * z
                qv = np.quantile(mu, qs, axis=1)
                for q, v in zip(qs, qv):
                    out[quantile_column(q)][rows] = v
        result = pd.DataFrame(out, index=index)
        result["pred_source"] = row_src
        if not np.all(np.isfinite(result["pred_mean"].to_numpy())):
            raise PosteriorError("the law is not finite for some candidates (check the inputs)")
        return result

    def _row_sources(self, keys: np.ndarray | None, n: int, source: str | None) -> np.ndarray:
        """The source whose terms apply to each of ``n`` rows (see :meth:`predict`)."""
        if source is not None or keys is None:
            return np.full(n, self._resolve_source(source), dtype=object)
        known = set(self.sources)
        return np.array([k if k in known else self.reference_source for k in keys], dtype=object)

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
        """Posterior-predictive draws of the loss at ``n`` rows, joint across rows.

        Each draw fixes the law coefficients and per-source terms for every row; rows of one
        size group (:func:`surrogate.groups.size_groups` over the rows' ``N``, per source)
        share one discrepancy value (the GP discrepancy is drawn as one path over all sizes);
        with ``noise`` every row adds its own run noise. Differences between rows therefore
        carry only what differs between them: shapes of one size share the level, the
        per-source offset and the discrepancy, which cancel (:meth:`relative`).

        Args:
            archs_or_runs, tokens, source: as in :meth:`predict`.
            n_draws: posterior draws used (evenly spaced; None = all).
            seed: seed of the discrepancy and noise draws.
            noise: include run-to-run noise (the loss of a new training run); False gives the
                expected loss of each row (law plus discrepancy).

        Returns:
            ``(S', n)`` array, ``S' = min(S, n_draws)``; column ``j`` is row ``j``.
        """
        from .groups import size_groups

        feats, keys, _ = self.features_for(archs_or_runs, tokens)
        n = len(feats["D"])
        row_src = self._row_sources(keys, n, source)
        idx = _even_indices(self.num_samples, n_draws)
        s = len(idx)
        rng = np.random.default_rng(seed)
        out = np.empty((s, n))
        groups = size_groups(feats["N"], row_src)
        for src in dict.fromkeys(row_src.tolist()):
            rows = np.flatnonzero(row_src == src)
            sub = {k: v[rows][:, None] for k, v in feats.items()}
            draws = self._law_draws_last(sub, src, idx)  # (n_src, s)
            sigma2 = np.broadcast_to(self.samples[f"sigma[{src}]"][idx] ** 2, draws.shape)
            info = self._gp_info(src)
            if info is not None:
                u_new = np.log(feats["N"][rows])
                draws = draws + self._gp_joint(src, idx, u_new, rng)
                sigma2 = sigma2 * self._noise_factor(idx, u_new, info, False)
            else:
                tau = self.samples.get(f"tau[{src}]")
                scale = self._misfit_scale(src, idx, feats["N"][rows])
                if scale is None:
                    scale = np.ones_like(draws)
                sigma2 = sigma2 * scale
                if tau is not None:
                    local = np.unique(groups[rows], return_inverse=True)[1].reshape(-1)
                    delta = rng.standard_normal((local.max() + 1, s)) * tau[idx]  # (g, s)
                    draws = draws + delta[local] * np.sqrt(scale)
            trend = self._extrapolation_sd(src, feats["N"][rows])
            if trend is not None:  # one misfit trend per draw, shared by the source's rows
                draws = draws + trend[:, None] * rng.standard_normal(s)[None, :]
            if noise:
                draws = draws + np.sqrt(sigma2) * rng.standard_normal(draws.shape)
            out[:, rows] = draws.T
        if not np.all(np.isfinite(out)):
            raise PosteriorError("the law is not finite for some candidates (check the inputs)")
        return out

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
        """Loss of every row relative to row ``reference`` (a position, 0-based), from
        :meth:`joint_draws`: what is shared by both rows cancels in each draw.

        Args:
            archs_or_runs, tokens, source, n_draws, seed: as in :meth:`joint_draws`.
            reference: position of the reference row.
            quantiles: quantiles of the difference to report.
            noise: include run noise of both runs (False: expected losses, the shape effect).

        Returns:
            One row per input row: ``rel_mean`` (mean of ``loss[row] - loss[reference]``),
            ``rel_sd``, one ``rel_qXX`` per quantile, and ``p_better`` (the probability that the
            row's loss is below the reference's; 0 for the reference itself).
        """
        qs = [float(q) for q in quantiles]
        if any(not 0.0 < q < 1.0 for q in qs):
            raise PosteriorError(f"quantiles must lie in (0, 1), got {qs}")
        draws = self.joint_draws(
            archs_or_runs, tokens, source=source, n_draws=n_draws, seed=seed, noise=noise
        )
        n = draws.shape[1]
        if (
            isinstance(reference, bool)
            or not isinstance(reference, (int, np.integer))
            or not 0 <= int(reference) < n
        ):
            raise PosteriorError(f"reference must be a row position in [0, {n}), got {reference!r}")
        diff = draws - draws[:, [int(reference)]]  # (S', n)
        out = {"rel_mean": diff.mean(axis=0), "rel_sd": diff.std(axis=0)}
        for q, v in zip(qs, np.quantile(diff, qs, axis=0) if qs else []):
            out[quantile_column(q).replace("pred_", "rel_")] = v
        out["p_better"] = np.mean(diff < 0.0, axis=0)
        index = archs_or_runs.index if isinstance(archs_or_runs, pd.DataFrame) else None
        return pd.DataFrame(out, index=index)

    def _law_draws_last(
        self, features: Mapping[str, np.ndarray], src: str, idx: np.ndarray
    ) -> np.ndarray:
        """Law values with ``src``'s scale/offset, draws on the last axis.

        ``features`` hold ``(n, 1)`` columns; returns ``(n, S')`` for the draws ``idx``
        (the layout :meth:`predict` takes quantiles along; :meth:`law_draws` is draws-first).
        """
        theta = {k: v[:, 0] for k, v in self.theta(idx, src).items()}
        scale = self._source_term("scale", src, idx)
        offset = self._source_term("offset", src, idx)
        return apply_source_terms(
            self._law(features, theta, np),
            None if scale is None else scale[:, 0],
            None if offset is None else offset[:, 0],
        )

    # ---- GP discrepancy ---------------------------------------------------------------
    def _gp_info(self, src: str) -> dict[str, Any] | None:
        """The stored training rows of ``src`` for the GP discrepancy, or None (no GP term)."""
        gp = self.info.get("gp")
        if not gp or f"gp_eta[{src}]" not in self.samples or src not in gp.get("rows", {}):
            return None
        return gp["rows"][src]

    def _extrapolation_sd(self, src: str, sizes: np.ndarray) -> np.ndarray | None:
        """``(n,)`` sd of the law's misfit trend at non-embedding sizes ``(n,)``:
        ``info["extrapolation"]["sd_per_efold"]`` times the distance in ``ln N`` beyond the
        source's fitted sizes (0 inside them); None for fits without the term."""
        info = self.info.get("extrapolation")
        if not info or src not in info.get("sizes", {}):
            return None
        lo, hi = info["sizes"][src]
        u = np.log(np.asarray(sizes, np.float64))
        dist = np.maximum(u - hi, 0.0) + np.maximum(lo - u, 0.0)
        return float(info["sd_per_efold"]) * dist

    def _misfit_scale(self, src: str, idx: np.ndarray, sizes: np.ndarray) -> np.ndarray | None:
        """Variance factor ``(n, S')`` of the size-dependent misfit scale of the
        trend-orthogonal discrepancy (``info["misfit_scale"]``) at non-embedding sizes
        ``(n,)``, or None for fits without it."""
        info = self.info.get("misfit_scale", {}).get(src)
        if info is None:
            return None
        return self._noise_factor(idx, np.log(np.asarray(sizes, np.float64)), info, False)

    def _noise_factor(
        self, idx: np.ndarray, u: np.ndarray, rows: Mapping[str, Any], draws_first: bool
    ) -> np.ndarray:
        """``exp(-2 kappa (clip(u) - u0))``: the change of the noise variance with size for
        draws ``idx`` and sizes ``u`` ``(m,)``, held at the edge value beyond the fitted sizes
        of ``rows`` (the source's GP info). ``(s, m)`` if ``draws_first`` else ``(m, s)``;
        ones for fits without ``noise_slope``."""
        kappa = self.samples.get("noise_slope")
        k = np.zeros(len(idx)) if kappa is None else kappa[idx]
        c = np.clip(np.asarray(u, np.float64), min(rows["u"]), max(rows["u"])) - float(rows["u0"])
        f = np.exp(-2.0 * k[:, None] * c[None, :])
        return f if draws_first else f.T

    def _gp_solve(
        self, src: str, idx: np.ndarray, grid: np.ndarray, joint: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """The discrepancy GP of ``src`` at ``grid = ln N`` ``(q,)`` conditioned on each draw's
        residual group means at the training sizes: mean ``(s, q)`` and variance ``(s, q)``, or
        with ``joint`` the covariance ``(s, q, q)``."""
        rows = self._gp_info(src)
        feats = {k: np.asarray(v, np.float64)[:, None] for k, v in rows["features"].items()}
        loss = np.asarray(rows["loss"], np.float64)
        group = np.asarray(rows["group"], np.int64)
        mu = self._law_draws_last(feats, src, idx)  # (n_train, s)
        resid = loss[:, None] - mu
        m = int(group.max()) + 1
        count = np.bincount(group, minlength=m).astype(np.float64)
        r_bar = (
            np.stack([np.bincount(group, resid[:, j], m) for j in range(resid.shape[1])]) / count
        )  # (s, m)
        u_g = np.asarray(rows["u"], np.float64)  # (m,)
        eta = self.samples[f"gp_eta[{src}]"][idx][:, None, None]
        ell = self.samples["gp_ell"][idx][:, None, None]
        slope = self.samples["gp_slope"][idx][:, None, None]
        u0 = float(rows["u0"])
        sigma2 = self.samples[f"sigma[{src}]"][idx][:, None] ** 2 * self._noise_factor(
            idx, u_g, rows, True
        )  # (s, m)
        kap = self.samples.get("noise_slope")
        kap = 0.0 if kap is None else kap[idx][:, None, None]
        cov = gp_kernel(u_g[None], u_g[None], eta, ell, slope, u0, kappa=kap)
        cov = cov + (sigma2 / count[None, :] + GP_JITTER)[:, :, None] * np.eye(m)
        chol = np.linalg.cholesky(cov)  # (s, m, m)
        span = (float(u_g.min()), float(u_g.max()))
        k_star = gp_kernel(
            grid[None], u_g[None], eta, ell, slope, u0, kappa=kap, u_range=span
        )  # (s, q, m)
        # Batched solves against the Cholesky factor (m is the number of distinct training
        # sizes, tens at most).
        rhs = np.concatenate([np.swapaxes(k_star, 1, 2), r_bar[:, :, None]], axis=2)
        sol = np.linalg.solve(chol, rhs)
        a, b = sol[:, :, :-1], sol[:, :, -1]  # (s, m, q), (s, m)
        mean = np.einsum("smq,sm->sq", a, b)
        if joint:
            k_qq = gp_kernel(
                grid[None], grid[None], eta, ell, slope, u0, kappa=kap, u_range=span
            )  # (s, q, q)
            return mean, k_qq - np.einsum("smq,smp->sqp", a, a)
        amp2 = np.exp(
            -2.0 * (kap if np.ndim(kap) == 0 else kap[:, :, 0]) * (np.clip(grid, *span)[None] - u0)
        )
        prior = eta[:, :, 0] ** 2 * amp2 + slope[:, :, 0] ** 2 * (grid[None] - u0) ** 2
        return mean, np.maximum(prior - np.sum(a**2, axis=1), 0.0)  # (s, q)

    @staticmethod
    def _gp_grid(u_new: np.ndarray) -> tuple[np.ndarray, Any]:
        """The points ``(q,)`` the GP is evaluated at for sizes ``u_new`` ``(n,)`` and a map
        ``(s, q) -> (n, s)`` back to the rows (exact for few distinct sizes, else linear
        interpolation on a grid of :data:`_GP_GRID` points)."""
        uniq, inverse = np.unique(u_new, return_inverse=True)
        if uniq.size <= _GP_GRID:
            return uniq, lambda v: v[:, inverse].T
        grid = np.linspace(uniq[0], uniq[-1], _GP_GRID)
        pos = np.clip((u_new - grid[0]) / (grid[1] - grid[0]), 0, _GP_GRID - 1 - 1e-9)
        lo = pos.astype(np.int64)
        frac = pos - lo
        return grid, lambda v: (v[:, lo] * (1 - frac) + v[:, lo + 1] * frac).T

    def _gp_conditional(
        self, src: str, idx: np.ndarray, u_new: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Conditional mean and variance ``(n_new, S')`` of the discrepancy GP of ``src`` at
        ``u_new = ln N`` given each draw's residual group means at the training sizes."""
        grid, to_rows = self._gp_grid(u_new)
        mean, var = self._gp_solve(src, idx, grid, joint=False)
        return to_rows(mean), to_rows(var)

    def _gp_joint(
        self, src: str, idx: np.ndarray, u_new: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """One draw ``(n_new, S')`` of the discrepancy GP path per posterior draw, joint over
        the sizes ``u_new`` (rows of equal size share the value)."""
        grid, to_rows = self._gp_grid(u_new)
        mean, cov = self._gp_solve(src, idx, grid, joint=True)
        q = grid.size
        scale = np.maximum(np.max(np.diagonal(cov, axis1=1, axis2=2), axis=1), 1e-12)
        chol = np.linalg.cholesky(cov + (1e-9 * scale)[:, None, None] * np.eye(q))
        path = mean + np.einsum("sqp,sp->sq", chol, rng.standard_normal((len(idx), q)))
        return to_rows(path)

    # ---- reporting --------------------------------------------------------------------
    def _chains(self, values: np.ndarray) -> np.ndarray:
        return values.reshape(self.num_chains, -1)

    def summary(self) -> pd.DataFrame:
        """One row per coefficient, per-source term and noise sd.

        Columns: ``mean``, ``sd``, ``q05``, ``q95`` (90% interval), ``r_hat``, ``ess_bulk``
        (NaN for non-MCMC fits), ``prior_sd``, ``sd_ratio`` (posterior sd / prior sd) and
        ``dominated_by``: ``"data"`` when the posterior is much narrower than the prior
        (ratio < :data:`PRIOR_DOMINATED_RATIO`), ``"prior"`` otherwise, ``"fixed"`` for terms
        held constant, ``"n/a"`` without a prior. Rows ``A`` and ``B`` (= exp(log_A), exp(log_B))
        are added for comparison with published values.
        """
        az = _arviz()

        rows = []
        names = list(self.samples)
        for name in names:
            v = self.samples[name]
            rows.append(self._summary_row(name, v, az))
        for log_name, nat in (("log_A", "A"), ("log_B", "B")):
            if log_name in self.samples:
                row = self._summary_row(nat, np.exp(self.samples[log_name]), az)
                row["prior_sd"], row["sd_ratio"] = np.nan, np.nan
                row["dominated_by"] = next(r["dominated_by"] for r in rows if r["term"] == log_name)
                rows.append(row)
        return pd.DataFrame(rows).set_index("term")

    def _summary_row(self, name: str, v: np.ndarray, az: Any) -> dict[str, Any]:
        mean, sd = float(np.mean(v)), float(np.std(v))
        q05, q95 = (float(x) for x in np.quantile(v, [0.05, 0.95]))
        r_hat = ess = np.nan
        varies = name not in self.fixed and sd > 1e-12 * max(1.0, abs(mean))
        if self.num_chains > 1 and self.method == "bayes" and varies:
            chains = self._chains(v)
            r_hat = float(az.rhat(chains))
            ess = float(az.ess(chains, method="bulk"))
        elif self.method == "bayes" and varies:
            ess = float(az.ess(self._chains(v), method="bulk"))
        prior_sd = self.prior_sd.get(name, np.nan)
        ratio = sd / prior_sd if prior_sd and np.isfinite(prior_sd) else np.nan
        if name in self.fixed:
            dom = "fixed"
        elif np.isfinite(ratio):
            dom = "prior" if ratio > PRIOR_DOMINATED_RATIO else "data"
        else:
            dom = "n/a"
        return {
            "term": name,
            "mean": mean,
            "sd": sd,
            "q05": q05,
            "q95": q95,
            "r_hat": r_hat,
            "ess_bulk": ess,
            "prior_sd": prior_sd,
            "sd_ratio": ratio,
            "dominated_by": dom,
        }

    @property
    def diagnostics(self) -> dict[str, Any]:
        """``max_r_hat``, ``min_ess_bulk``, ``divergences``, ``num_chains``, ``num_samples``,
        ``warnings`` (list of str, empty when healthy) and fit-specific entries."""
        if self._diagnostics is None:
            self._diagnostics = self._compute_diagnostics()
        return self._diagnostics

    def _compute_diagnostics(self) -> dict[str, Any]:
        table = self.summary()
        free = table.loc[[n for n in self.samples if n not in self.fixed]]
        max_r_hat = float(np.nanmax(free["r_hat"])) if free["r_hat"].notna().any() else float("nan")
        min_ess = (
            float(np.nanmin(free["ess_bulk"])) if free["ess_bulk"].notna().any() else float("nan")
        )
        divergences = int(np.sum(self.sample_stats.get("diverging", np.zeros(1))))
        warnings: list[str] = []
        if np.isfinite(max_r_hat) and max_r_hat > 1.01:
            worst = free["r_hat"].idxmax()
            warnings.append(f"r_hat {max_r_hat:.3f} > 1.01 (worst: {worst}); chains disagree")
        if np.isfinite(min_ess) and min_ess < 100 * self.num_chains:
            worst = free["ess_bulk"].idxmin()
            warnings.append(f"bulk ESS {min_ess:.0f} < {100 * self.num_chains} (worst: {worst})")
        if divergences:
            warnings.append(f"{divergences} divergent transitions")
        confounded = self.info.get("size_confounded") or []
        if confounded:
            warnings.append(
                f"{', '.join(confounded)} held at the prior's centre: their feature "
                "never varies at fixed size in these runs, so the data cannot "
                "separate them from the size terms"
            )
        saturated = None
        depth = self.info.get("max_tree_depth")
        if depth is not None and "n_steps" in self.sample_stats:
            saturated = float(np.mean(self.sample_stats["n_steps"] >= 2 ** int(depth) - 1))
            if saturated > 0.05:
                warnings.append(
                    f"{100 * saturated:.0f}% of draws hit the maximum tree depth "
                    f"{depth} (slow exploration)"
                )
        return {
            "method": self.method,
            "max_r_hat": max_r_hat,
            "min_ess_bulk": min_ess,
            "divergences": divergences,
            "tree_depth_saturated": saturated,
            "num_chains": self.num_chains,
            "num_samples": self.num_samples,
            "warnings": warnings,
        }

    def to_json(self) -> dict[str, Any]:
        """A JSON-able description: law, method, sources, coefficients with intervals,
        diagnostics (the CLI prints this)."""
        table = self.summary()
        coefs = {
            name: {
                k: _json_float(row[k]) if k != "dominated_by" else row[k]
                for k in ("mean", "sd", "q05", "q95", "r_hat", "ess_bulk", "dominated_by")
            }
            for name, row in table.iterrows()
        }
        diag = {
            k: (_json_float(v) if isinstance(v, float) else v) for k, v in self.diagnostics.items()
        }
        return {
            "law": self.law,
            "method": self.method,
            "sources": self.sources,
            "reference_source": self.reference_source,
            "source_terms": self.source_terms,
            "fixed": self.fixed,
            "noise_sigma": self.noise_sigma,
            "coefficients": coefs,
            "diagnostics": diag,
            "info": self.info,
        }

    # ---- persistence ------------------------------------------------------------------
    def to_inference_data(self) -> Any:
        """An :class:`arviz.InferenceData` (per-source terms on a ``source`` dimension)."""
        az = _arviz()

        posterior: dict[str, np.ndarray] = {}
        dims: dict[str, list[str]] = {}
        kinds: list[str] = []
        for key in self.samples:
            parts = split_source_key(key)
            if parts is None:  # law coefficients (reference source) and other scalars
                posterior[key] = self._chains(self.samples[key])
            elif parts[0] not in kinds:
                kinds.append(parts[0])
        for kind in kinds:
            # NaN where a source has no such term (the reference's scale/offset).
            stacked = np.stack(
                [
                    self._chains(
                        self.samples.get(f"{kind}[{s}]", np.full(self.num_samples, np.nan))
                    )
                    for s in self.sources
                ],
                axis=-1,
            )
            var = kind if kind in _PER_SOURCE else f"{kind}_by_source"
            posterior[var] = stacked
            dims[var] = ["source"]
        stats = {
            k: self._chains(v.astype(np.int8) if v.dtype == bool else v)
            for k, v in self.sample_stats.items()
        }
        attrs = {
            "archopt_format": _FORMAT_VERSION,
            "law": self.law,
            "method": self.method,
            "reference_source": self.reference_source,
            "source_terms": self.source_terms,
            "sources": json.dumps(self.sources),
            "fixed": json.dumps(self.fixed),
            "prior_sd": json.dumps(self.prior_sd),
            "info": json.dumps(self.info, default=str),
            "diagnostics": json.dumps(self._diagnostics, default=_json_default)
            if self._diagnostics is not None
            else "",
        }
        return az.from_dict(
            posterior=posterior,
            sample_stats=stats or None,
            coords={"source": self.sources},
            dims=dims,
            attrs=attrs,
        )

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
        az = _arviz()

        path = Path(path)
        if not path.is_file():
            raise PosteriorError(f"posterior file not found: {path}")
        try:
            idata = az.from_netcdf(str(path), engine="h5netcdf")
            post = idata.posterior
            attrs = {**dict(post.attrs), **dict(getattr(idata, "attrs", None) or {})}
            if "law" not in attrs or "sources" not in attrs:
                raise PosteriorError(f"{path} is not an archopt posterior (no law/sources)")
            sources = json.loads(attrs["sources"])
            law = get_law(str(attrs["law"]))
            num_chains = int(post.sizes["chain"])
            samples: dict[str, np.ndarray] = {}
            for name in law.param_names:  # required: a KeyError here means a foreign file
                samples[name] = np.asarray(post[name].values, np.float64).reshape(-1)
            for var in post.data_vars:
                var = str(var)
                arr = np.asarray(post[var].values, np.float64)
                if "source" in post[var].dims:  # chain, draw, source
                    kind = var[: -len("_by_source")] if var.endswith("_by_source") else var
                    for j, src in enumerate(sources):
                        col = arr[..., j].reshape(-1)
                        if not np.all(np.isnan(col)):
                            samples[f"{kind}[{src}]"] = col
                elif var not in samples:
                    samples[var] = arr.reshape(-1)
            stats = {}
            if hasattr(idata, "sample_stats"):
                for k in idata.sample_stats.data_vars:
                    stats[str(k)] = np.asarray(idata.sample_stats[k].values).reshape(-1)
            diag_text = attrs.get("diagnostics", "")
            return cls(
                str(attrs["law"]),
                samples,
                sources=sources,
                reference_source=str(attrs["reference_source"]),
                source_terms=str(attrs.get("source_terms", "affine")),
                method=str(attrs.get("method", "bayes")),
                num_chains=num_chains,
                diagnostics=json.loads(diag_text) if diag_text else None,
                prior_sd=json.loads(attrs.get("prior_sd", "{}")),
                fixed=json.loads(attrs.get("fixed", "[]")),
                info=json.loads(attrs.get("info", "{}")),
                sample_stats=stats,
            )
        except ArchoptError as exc:
            if isinstance(exc, PosteriorError):
                raise
            raise PosteriorError(f"cannot read posterior {path}: {exc}") from None
        except Exception as exc:  # netCDF/HDF5/JSON errors of any kind: the file is unusable
            raise PosteriorError(
                f"cannot read posterior {path}: "
                f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
            ) from None

    def __repr__(self) -> str:
        return (
            f"LawPosterior(law={self.law!r}, method={self.method!r}, S={self.num_samples}, "
            f"sources={self.sources}, reference={self.reference_source!r})"
        )


def _arviz() -> Any:
    """Import ArviZ without its refactor FutureWarning (noise for users of this API)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

    return arviz


def _converter(features: Mapping[str, Any], xp: Any):
    """A function turning numpy ``(S, 1)`` arrays into ``xp`` arrays matching the features."""
    if xp is np:
        return lambda a: a
    if getattr(xp, "__name__", "") == "torch":
        ref = next((v for v in features.values() if isinstance(v, xp.Tensor)), None)
        dtype = ref.dtype if ref is not None and ref.is_floating_point() else xp.float64
        device = ref.device if ref is not None else None
        return lambda a: xp.as_tensor(a, dtype=dtype, device=device)
    return lambda a: xp.asarray(a)


def _json_float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)
