"""One optimization problem over a discrete, budget-preserving candidate set (no storage).

:class:`~optim.core.spec.CampaignSpec` says what a campaign optimizes; :meth:`Problem.build`
turns it into arrays every strategy shares: the candidates
(:func:`models.parametrize.enumerate_archs`, the parameter band holds exactly), their GP
features, their throughput, memory fit and servability, and draws of the scaling-law posterior
at every candidate.

Throughput (output tokens/s of the campaign's workload, default backend vLLM) is a set of
``N_THROUGHPUT_DRAWS`` joint draws over the candidates (:func:`models.uncertainty.
throughput_draws`: the model's constants drawn from their posterior or documented prior, plus a
per-shape structural error), replaced by the cached measurement (with its own spread) where one
exists. What a strategy can read (all ``(n,)`` unless said):

* ``throughput_mean``: median tokens/s; ``log_throughput`` its log.
* ``throughput_draws``: ``S x n`` joint draws of tokens/s (``S = N_THROUGHPUT_DRAWS``).
* ``throughput_rel_sigma``: sd of the *shape-relative* log error (what ranking shapes is
  uncertain about); measured candidates: their measurement spread.
* ``throughput_log_common``: ``(S,)`` common-mode log factor of each draw (scales every modelled
  candidate alike); ``throughput_common_sigma`` its sd.
* ``throughput_q05``, ``throughput_q95``: 5/95% quantiles of the draws.
* ``throughput_backend``, ``throughput_warnings`` (calibration caveats: the pair is uncalibrated,
  or was calibrated at other workloads; a field, not a ``warnings.warn``, so that commands
  failing on bad input still print one line -- :meth:`Problem.warn_throughput` emits them as
  :class:`ThroughputCalibrationWarning` for callers that want them shown, and every JSON row
  carries them as ``throughput_warning``), ``servable`` and ``unservable_reason`` (why the
  backend cannot run a shape at the workload's ``tp`` or memory; such shapes are never
  proposable).

GP features (``Problem.X``, ``n x d`` with ``d = 5``, each min-max scaled to ``[0, 1]`` over the
candidate set; :data:`FEATURE_NAMES`):

====  ==========================  =============================================
col   feature                     why
====  ==========================  =============================================
0     ``log(d_model / sqrt(N))``  width knob of the conditional law
1     ``log(r)``                  MLP-to-attention parameter ratio
2     ``log2(gqa_group)``         KV sharing (the law has no term for it)
3     ``log2(head_dim)``          per-head width (no law term either)
4     ``log(N)``                  position inside the budget band
====  ==========================  =============================================

``n_layers`` and ``d_model`` are functions of these (given ``N``), so they are not repeated.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from models.arch import Arch
from models.parametrize import enumerate_archs
from surrogate.gp import ResidualHyper
from surrogate.protocols import LawPrior

from .bands import Q05, Q95
from .spec import CampaignSpec, ProblemError

__all__ = [
    "CampaignSpec",  # defined in .spec; importable from here as before
    "Problem",
    "FEATURE_NAMES",
    "N_LAW_DRAWS",
    "DEFAULT_REL_SIGMA_MEASURED",
    "N_THROUGHPUT_DRAWS",
    "ThroughputCalibrationWarning",
    "features_of",
    "ProblemError",
]

FEATURE_NAMES: tuple[str, ...] = (
    "log_d_over_sqrt_n",
    "log_r",
    "log2_gqa_group",
    "log2_head_dim",
    "log_n",
)
#: Law-posterior draws kept per candidate (predictions; acquisition uses a subset).
N_LAW_DRAWS = 64
#: Relative spread assumed for a measured throughput when the cache gives none.
DEFAULT_REL_SIGMA_MEASURED = 0.03
#: Joint throughput draws kept per candidate.
N_THROUGHPUT_DRAWS = 64
#: Run-to-run standard deviation of a final loss (seeds, data order), loss units.
LOSS_NOISE_SD = 0.01
#: Prior standard deviation of the campaign's loss offset from the law's source.
OFFSET_SD = 0.1
#: Prior Matern length scales of the residual per feature (features span [0, 1]): the law
#: already carries d/sqrt(N) and r, head_dim and the GQA group are believed to matter little.
PRIOR_LENGTHSCALES: tuple[float, ...] = (0.5, 0.5, 1.0, 2.0, 1.0)


class ThroughputCalibrationWarning(UserWarning):
    """The throughput calibration does not cover the campaign's workload (or is absent)."""


def features_of(archs: Sequence[Arch]) -> np.ndarray:
    """Raw (unscaled) GP features of :data:`FEATURE_NAMES`, ``n x 5``."""
    return np.array(
        [
            [
                math.log(a.d_over_sqrt_n),
                math.log(a.mlp_attn_ratio),
                math.log2(a.gqa_group),
                math.log2(a.head_dim),
                math.log(a.non_embedding_params),
            ]
            for a in archs
        ],
        dtype=np.float64,
    ).reshape(len(archs), len(FEATURE_NAMES))


@dataclass
class Problem:
    """Arrays over ``n`` candidates that every strategy reads (see the module docstring).

    Attributes:
        spec: the campaign specification.
        candidates: ``n`` archs; the first ``n_grid`` come from ``enumerate_archs``, the rest
            are observed shapes outside that grid (never proposed when out of band).
        tokens: training tokens D.
        X: ``n x d`` GP features in ``[0, 1]`` (float64).
        throughput_mean: ``(n,)`` median output tokens/s of the draws (measured where measured).
        throughput_rel_sigma: ``(n,)`` sd of the shape-relative part of ``log(tokens/s)``.
        throughput_source: ``(n,)`` ``"measured"`` or ``"model"``.
        fits_in_memory: ``(n,)`` the backend's memory holds the workload (vLLM: one sequence).
        memory_bytes: ``(n,)`` per GPU.
        in_band: ``(n,)`` non-embedding params inside the band.
        proposable: ``(n,)`` may be proposed (in band, on the grid, servable at the workload's
            ``tp``, fits when ``must_fit``).
        prior: the law posterior (:class:`surrogate.protocols.LawPrior`; ``None``:
            strategies without a prior only).
        source: which source's offset/scale the losses are on (``None`` = reference).
        law_samples: ``N_LAW_DRAWS x n`` noise-free law values, or ``None`` without a prior.
        residual_hyper: hyper-parameters of the residual GP prior.
        throughput_draws: ``S x n`` joint draws of tokens/s.
        throughput_q05, throughput_q95: ``(n,)`` quantiles of the draws.
        throughput_log_common: ``(S,)`` common-mode log factor per draw.
        throughput_common_sigma: its sd.
        throughput_backend: the serving backend of the workload.
        throughput_warnings: calibration caveats.
        servable: ``(n,)`` the backend can run the shape at all; ``unservable_reason`` why not.
    """

    spec: CampaignSpec
    candidates: list[Arch]
    tokens: float
    X: torch.Tensor
    throughput_mean: np.ndarray
    throughput_rel_sigma: np.ndarray
    throughput_source: np.ndarray
    fits_in_memory: np.ndarray
    memory_bytes: np.ndarray
    in_band: np.ndarray
    proposable: np.ndarray
    prior: LawPrior | None
    source: str | None
    law_samples: np.ndarray | None
    residual_hyper: ResidualHyper
    n_grid: int
    feature_bounds: np.ndarray = field(repr=False)
    throughput_draws: np.ndarray = field(repr=False)
    throughput_q05: np.ndarray = field(repr=False)
    throughput_q95: np.ndarray = field(repr=False)
    throughput_log_common: np.ndarray = field(repr=False)
    servable: np.ndarray = field(repr=False)
    unservable_reason: np.ndarray = field(repr=False)
    throughput_common_sigma: float = 0.0
    throughput_backend: str = ""
    throughput_warnings: tuple[str, ...] = ()
    _index: dict[Arch, int] = field(repr=False, default_factory=dict)

    # ---- construction --------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        spec: CampaignSpec,
        prior: LawPrior | None,
        measurement_cache: Any | None = None,
        *,
        extra_archs: Sequence[Arch] = (),
        candidates: Sequence[Arch] | None = None,
    ) -> "Problem":
        """Enumerate candidates and evaluate throughput, memory and the law at all of them.

        Args:
            spec: the campaign.
            prior: a ``LawPosterior`` (or ``None``).
            measurement_cache: a ``models.measure.MeasurementCache``; ``None`` uses the default
                cache when it exists, ``False`` ignores measurements.
            extra_archs: observed shapes to add when they are not on the grid.
            candidates: override the enumeration (tests, benchmarks with small sets).
        """
        grid = (
            list(candidates)
            if candidates is not None
            else enumerate_archs(
                spec.params,
                spec.band,
                space=spec.space,
                vocab_size=spec.vocab_size,
                tie_embeddings=spec.tie_embeddings,
            )
        )
        if not grid:
            raise ProblemError(
                f"no candidate architecture has {spec.params:.4g} non-embedding "
                f"params +-{spec.band:.1%} on the search grid"
            )
        seen = set(grid)
        extras = []
        for a in extra_archs:
            if a not in seen:
                seen.add(a)
                extras.append(a)
        archs = grid + extras
        raw = features_of(archs)
        # Scale with the grid's range so adding observed shapes does not move the features.
        lo, hi = raw[: len(grid)].min(0), raw[: len(grid)].max(0)
        span = np.where(hi - lo > 1e-12, hi - lo, 1.0)
        X = torch.as_tensor((raw - lo) / span, dtype=torch.float64)

        lo_n, hi_n = spec.budget_bounds()
        nonemb = np.array([a.non_embedding_params for a in archs])
        in_band = (nonemb >= lo_n) & (nonemb <= hi_n)
        tp = _throughput(spec, archs, measurement_cache, common_over=in_band)
        proposable = in_band & tp.shape_ok & (tp.fits if spec.must_fit else True)
        proposable[len(grid) :] = False
        if not proposable.any():
            reasons = sorted({str(r) for r in tp.reason[: len(grid)] if r})
            raise ProblemError(
                "no candidate can be served for this workload ("
                + ("; ".join(reasons[:2]) or "none fits")
                + "); use a smaller "
                "batch/context, another tp, or must_fit=False"
            )

        law_samples = None
        sigma = None
        tau = 0.0
        source = spec.source
        if prior is not None:
            from surrogate.laws import law_features

            feats = law_features(archs, spec.tokens)
            law_samples = np.asarray(
                prior.law_draws(feats, source=source, n_draws=N_LAW_DRAWS), dtype=np.float64
            )
            sigma = float(prior.noise_sigma_for(source))
            tau = float(prior.discrepancy_sigma_for(source))
        # The law misfit scale: the fitted residual sd of the law (includes run noise).
        misfit = max(sigma if sigma is not None and math.isfinite(sigma) else 0.03, 0.01)
        # The law's discrepancy at an unseen size group is shared by every candidate (they all
        # have ~N parameters): it is part of the campaign's constant offset.
        offset_var = OFFSET_SD**2 + (tau**2 if math.isfinite(tau) else 0.0)
        hyper = ResidualHyper(
            outputscale=misfit**2,
            offset_var=offset_var,
            noise_var=LOSS_NOISE_SD**2,
            lengthscale=PRIOR_LENGTHSCALES,
        )
        problem = cls(
            spec=spec,
            candidates=archs,
            tokens=spec.tokens,
            X=X,
            in_band=in_band,
            proposable=proposable,
            prior=prior,
            source=source,
            law_samples=law_samples,
            residual_hyper=hyper,
            n_grid=len(grid),
            feature_bounds=np.stack([lo, span]),
            **tp.problem_fields(),
        )
        problem._index = {a: i for i, a in enumerate(archs)}
        return problem

    # ---- views ---------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return len(self.candidates)

    @property
    def max_loss(self) -> float | None:
        return self.spec.max_loss

    @property
    def min_throughput(self) -> float | None:
        return self.spec.min_throughput

    @property
    def log_throughput(self) -> np.ndarray:
        """``(n,)`` natural log of tokens/s: the second objective (see :mod:`optim.core.acquisition`)."""
        return np.log(self.throughput_mean)

    def index_of(self, arch: Arch) -> int | None:
        """Position of ``arch`` among the candidates, or ``None``."""
        return self._index.get(arch)

    def law_mean(self) -> np.ndarray:
        """``(n,)`` posterior-mean law value (NaN without a prior)."""
        if self.law_samples is None:
            return np.full(self.n, np.nan)
        return self.law_samples.mean(0)

    def reference_point(self, loss_mean: np.ndarray | None = None) -> tuple[float, float]:
        """Hypervolume reference point ``(loss, tokens/s)``: worst values that still count.

        ``max_loss`` / ``min_throughput`` when given. Otherwise BoTorch's
        ``infer_reference_point`` (nadir of the predicted Pareto front minus 10% of its range)
        over the proposable candidates, using ``loss_mean`` (default: the law mean) and the
        throughput, computed in the objective space ``(-loss, log tokens/s)``.
        """
        from botorch.utils.multi_objective import is_non_dominated
        from botorch.utils.multi_objective.hypervolume import infer_reference_point

        ok = self.proposable
        if loss_mean is None:
            loss_mean = self.law_mean()
        loss = np.asarray(loss_mean, dtype=np.float64)
        if not np.all(np.isfinite(loss[ok])):
            loss = np.zeros(self.n)  # no prior: only throughput defines the default
        Y = torch.as_tensor(np.stack([-loss[ok], self.log_throughput[ok]], -1))
        front = Y[is_non_dominated(Y)]
        ref = infer_reference_point(front)
        ref_loss = -float(ref[0]) if self.max_loss is None else float(self.max_loss)
        if ref_loss == 0.0:
            ref_loss = 1e-6
        ref_tps = (
            math.exp(float(ref[1])) if self.min_throughput is None else float(self.min_throughput)
        )
        return ref_loss, ref_tps

    @property
    def ref_point(self) -> tuple[float, float]:
        """The default reference point at the prior law mean (see :meth:`reference_point`)."""
        return self.reference_point()

    def warn_throughput(self) -> None:
        """Emit :attr:`throughput_warnings` as :class:`ThroughputCalibrationWarning`\\ s."""
        for message in self.throughput_warnings:
            warnings.warn(message, ThroughputCalibrationWarning, stacklevel=2)


def _default_cache() -> Any:
    """The default measurement cache (errors such as an unusable ARCHOPT_HOME propagate)."""
    from models.measure import MeasurementCache

    return MeasurementCache()


@dataclass(frozen=True)
class _Throughput:
    """Throughput of every candidate: model draws, with measured columns substituted."""

    draws: np.ndarray  # S x n
    rel: np.ndarray
    log_common: np.ndarray
    source: np.ndarray
    fits: np.ndarray
    shape_ok: np.ndarray
    memory: np.ndarray
    reason: np.ndarray
    backend: str
    warnings: tuple[str, ...]

    def problem_fields(self) -> dict[str, Any]:
        return {
            "throughput_mean": np.median(self.draws, axis=0),
            "throughput_rel_sigma": self.rel,
            "throughput_source": self.source,
            "fits_in_memory": self.fits,
            "memory_bytes": self.memory,
            "throughput_draws": self.draws,
            "throughput_q05": np.quantile(self.draws, Q05, axis=0),
            "throughput_q95": np.quantile(self.draws, Q95, axis=0),
            "throughput_log_common": self.log_common,
            "throughput_common_sigma": float(np.std(self.log_common, ddof=1)),
            "throughput_backend": self.backend,
            "throughput_warnings": self.warnings,
            "servable": self.shape_ok & self.fits,
            "unservable_reason": self.reason,
        }


def _throughput(
    spec: CampaignSpec,
    archs: Sequence[Arch],
    cache: Any | None,
    *,
    common_over: np.ndarray | None = None,
) -> _Throughput:
    """Model draws for all archs, replaced by cached measurements where present.

    A measured candidate's draws are ``value * exp(N(0, rel))`` with ``rel`` half its
    max-min spread over repeats (at least :data:`DEFAULT_REL_SIGMA_MEASURED`), independent of
    the model's common mode.
    """
    from models.throughput import predict_throughput_many
    from models.uncertainty import throughput_draws

    wl = spec.workload
    point = predict_throughput_many(archs, spec.device, wl, n_draws=0)
    d = throughput_draws(
        archs, spec.device, wl, n_draws=N_THROUGHPUT_DRAWS, seed=0, common_over=common_over
    )
    draws = d.tokens_per_s.copy()
    rel = d.shape_sigma.copy()
    src = np.full(len(archs), "model", dtype=object)
    reason = np.asarray(point["unservable_reason"], dtype=object)
    out: dict[str, Any] = dict(
        draws=draws,
        rel=rel,
        log_common=d.log_common,
        source=src,
        fits=np.asarray(point["fits_in_memory"], dtype=bool),
        shape_ok=np.asarray(point["shardable"], dtype=bool),
        memory=np.asarray(point["memory_bytes"], dtype=np.float64),
        reason=reason,
        backend=wl.backend,
        warnings=d.warnings,
    )
    if cache is None:
        cache = _default_cache()
    if cache is False or cache is None:
        return _Throughput(**out)
    # One query for all candidates (a lookup per candidate would open thousands of
    # connections); the newest ok record of this hardware/backend/workload wins.
    index = {a: i for i, a in enumerate(archs)}
    rng = np.random.default_rng(1)
    for m in cache.records(spec.hardware, wl.backend, status="ok"):
        i = index.get(m.arch)
        if i is None or not m.workload.same_run(wl):
            continue
        value = float(m.tokens_per_s or 0.0)
        if not (math.isfinite(value) and value > 0):
            continue
        spread = float(m.tokens_per_s_spread or 0.0)
        # max-min over repeats ~ 2 sd for a handful of repeats
        rel[i] = max(
            0.5 * spread / value if math.isfinite(spread) else 0.0, DEFAULT_REL_SIGMA_MEASURED
        )
        draws[:, i] = value * np.exp(rel[i] * rng.standard_normal(draws.shape[0]))
        draws[:, i] *= value / np.median(draws[:, i])  # the median is the measurement
        src[i] = "measured"
    return _Throughput(**out)
