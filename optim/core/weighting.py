"""How much to trust the scaling-law prior, learned from the campaign's own runs.

archopt's loss model is a mixture of two GPs over the candidate set:

* ``law``: the law-prior GP (:class:`surrogate.gp.LawPriorGP`; the scaling-law posterior as
  its prior mean and covariance, plus an offset and a learned misfit);
* ``plain``: the prior-free GP plain qNEHVI uses (:class:`optim.core.plain_model.PlainGP`),
  available from two runs on.

The law's weight ``w`` (``prior_weight``) is recomputed at every proposal from two things:

1. **Evidence from the runs** (after RGPE, Feurer et al. 2018, arXiv 1802.02219, sec. 4.1):
   each member predicts observed runs it was not given, and its ranking loss is the number of
   pairs of runs it orders differently from the observed losses; ``w_loo`` is the
   probability, over :data:`WeightingConfig.n_rank_samples` bootstrap resamples, that the
   law's ranking loss is the lower (ties split; :func:`ranking_losses` says why resamples
   rather than RGPE's predictive draws). By default the check is *prequential*: the runs in
   the order observed, in blocks of a batch, each block predicted from the blocks before it,
   pairs counted within the block and against the earlier runs -- what acquisition does:
   rank shapes nobody trained yet against each other and against what was trained
   (:attr:`WeightingConfig.evidence` says why not RGPE's leave-one-out, which is kept as an
   option). Ranking, not squared error, because acquisition only needs the order of shapes
   and the level is learned from one run anyway. From :data:`WeightingConfig.min_loo_runs`
   runs on, and once a second block exists.
2. **A prior that fades** as in piBO (Hvarfner et al. 2022, arXiv 2204.11051), where the
   prior enters as ``pi(x)^(beta/n)``: the prior odds of the law, ``p0 / (1 - p0)``, are
   raised to ``min(1, beta / n)`` for ``n`` runs. Combined with the evidence as odds::

       logit(w) = min(1, beta / n) * logit(p0) + logit(w_loo)     (w_loo = 1/2 without LOO)

   so before LOO means anything the law carries most of the weight, and after a few runs the
   ranking evidence decides: a law that orders the runs worse than a prior-free GP loses its
   weight at a rate the runs set, one that orders them better keeps it.

BoTorch's ``PriorGuidedAcquisitionFunction`` (the piBO implementation) raises for ``q > 1``
with qLogNEHVI, so the weighting lives in the model instead: acquisition maximises the
expected hypervolume improvement under the mixture, ``sum_m w_m EHVI_m`` (exact: the
expectation of a mixture is the weighted sum of expectations), one member's qLogNEHVI each,
inside the same greedy batch loop (:func:`optim.core.acquisition.optimize_nehvi`).

``prior_loo_spearman`` is the Spearman rank correlation of the law GP's LOO means with the
observed losses (the criterion Ax 1.3's transfer-learning model selection uses): how well the
prior, updated by the other runs, ranks each run.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence

import numpy as np
from torch import Tensor

from surrogate.gp import LawPriorGP, mixture_quantiles

from .bands import Q05, Q95
from .plain_model import PlainGP

__all__ = [
    "WeightingConfig",
    "WeightedLossModel",
    "LossMember",
    "fit_weighted_model",
    "ranking_losses",
    "prequential_ranking_losses",
    "EVIDENCE",
    "rank_weights",
    "combine_prior_weight",
    "loo_spearman",
    "prior_status",
    "band_check",
    "PriorBandWarning",
    "warn_if_outside_band",
    "warn_outside_band",
]


class PriorBandWarning(UserWarning):
    """An observed run fell outside the 90% band the law-prior GP predicts for it from the
    other runs."""


class LossMember(Protocol):
    """What the mixture needs from a member model over the candidate table."""

    n_members: int

    def posterior(self, idx: Tensor) -> tuple[Tensor, Tensor]: ...

    def marginals(self, idx: Any = None) -> tuple[np.ndarray, np.ndarray]: ...

    def loo(self) -> tuple[np.ndarray, np.ndarray]: ...

    def conditional_means(self, given: np.ndarray, target: np.ndarray) -> np.ndarray: ...


#: How the members' rankings are scored (:attr:`WeightingConfig.evidence`).
EVIDENCE: tuple[str, ...] = ("prequential", "loo")


@dataclass(frozen=True)
class WeightingConfig:
    """Settings of the prior weighting (see the module docstring).

    Attributes:
        beta: piBO's decay constant: the prior's odds count fully up to ``beta`` runs, then as
            ``(odds)^(beta / n)``. 1 rather than 4: over 10 seeds of each benchmark world
            (120 candidates) it reached 95% of the hypervolume in as few or fewer trainings
            (median 16 vs 18, 20 vs 22, 16 vs 16, 20 vs 20 in the held-out, real-shapes,
            matched and shifted worlds) with a better first batch where the prior is right.
        prior_prob: ``p0``, the law's weight before any evidence.
        n_rank_samples: bootstrap resamples of the runs scored by the ranking loss.
        min_loo_runs: runs below which LOO is not used (``w_loo = 1/2``).
        min_acquisition_weight: members below this weight are left out of acquisition (their
            EHVI share is negligible and each member costs one qLogNEHVI); the rest renormalised.
        use_plain: include the prior-free GP at all (``False``: the law GP alone, weight 1; an
            ablation).
        evidence: how the members' rankings are scored. ``"prequential"`` (default): the runs
            in the order observed, in blocks of ``block_size`` (a campaign's batch); each block
            is predicted from the blocks before it only, and the ranking loss counts the pairs
            *within* a block that a member orders wrongly (:func:`prequential_ranking_losses`).
            ``"loo"``: RGPE's leave-one-out over all runs (:func:`ranking_losses`). Why not
            LOO: acquisition trains clusters of near-identical shapes (GQA or head-size
            variants of one width and depth), and LOO rewards whichever member interpolates
            between those twins best, which says little about the unseen shapes acquisition
            must rank. Measured on the benchmark's matched world (dev seeds, 6 seeds, 12 runs):
            the prior-free GP's LOO Spearman on the runs was 0.83 against the law GP's 0.69,
            while over all candidates the law GP ranked the true losses at 0.72 and the
            prior-free GP at 0.42 -- LOO gave the law a weight of 0.25 in a world drawn from it
            (prequential: 0.63); in the real-shapes world, where neither ranks the candidates
            well, prequential moves the weight to the prior-free GP (0.08-0.35). Chosen on the
            benchmark's dev seeds (1000-1019, ``archopt bench --quick --dev``): median
            trainings to 95% of the true hypervolume, archopt / plain qNEHVI, in the held-out,
            real-shapes, shifted and matched worlds: LOO 20/22, 34/32, 10/20, 26/24; pairs
            within blocks only 22/22, 36/32, 10/20, 24/24; prequential (within and against
            earlier runs) 20/22, 30/32, 10/20, 24/24; the law GP alone 16/22, 44/32, 8/20,
            18/24 (best where the law is right, worst where it is not). Also tried there and
            not kept: the prequential log predictive density (a Bayes factor over blocks)
            20/22, 34/32, 10/20, 24/24; acquisition on the heavier member only
            (``min_acquisition_weight=0.5``) 20/22, 32/32, 8/20, 24/24; ``beta=4`` with LOO
            20/22, 40/32, 8/20, 28/24 and with prequential evidence 20/22, 38/32, 8/20, 26/24.
        block_size: runs per block of the prequential check.
    """

    beta: float = 1.0
    prior_prob: float = 0.9
    n_rank_samples: int = 512
    min_loo_runs: int = 3
    min_acquisition_weight: float = 0.02
    use_plain: bool = True
    evidence: str = "prequential"
    block_size: int = 4

    def __post_init__(self) -> None:
        if not 0.0 < self.prior_prob < 1.0:
            raise ValueError(f"prior_prob must lie in (0, 1), got {self.prior_prob}")
        if self.beta < 0 or self.n_rank_samples < 1 or self.min_loo_runs < 2:
            raise ValueError("beta >= 0, n_rank_samples >= 1 and min_loo_runs >= 2 are required")
        if self.evidence not in EVIDENCE or self.block_size < 2:
            raise ValueError(
                f"evidence must be one of {', '.join(EVIDENCE)} and block_size >= 2, got "
                f"{self.evidence!r} and {self.block_size}"
            )


# ---- the statistics -------------------------------------------------------------------------
def ranking_losses(
    loo_means: Sequence[np.ndarray], y: np.ndarray, n_samples: int, rng: np.random.Generator
) -> np.ndarray:
    """RGPE's ranking loss of every model on ``n_samples`` bootstrap resamples of the runs.

    For each resample (``n`` runs drawn with replacement) and each model: the number of pairs
    of distinct runs in it that the model's LOO means order differently from the observed
    losses. RGPE samples the LOO *predictive* instead; that rewards a member whose predictive
    is narrower than its errors (a prior-free GP on a handful of runs typically is: LOO sds
    of 0.005 for errors of 0.01), so the uncertainty here comes from which runs happen to have
    been made, not from the members' own variances.

    Args:
        loo_means: ``M`` arrays ``(n,)``, each model's LOO mean at every run.
        y: ``(n,)`` observed losses.

    Returns:
        ``M x n_samples`` misordered-pair counts.
    """
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    means = np.stack([np.asarray(m, dtype=np.float64).reshape(n) for m in loo_means])  # (M, n)
    boot = rng.integers(n, size=(n_samples, n))  # (B, n)
    yb = y[boot]  # (B, n)
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    distinct = (boot[:, :, None] != boot[:, None, :])[:, upper]  # (B, pairs)
    truth = (yb[:, :, None] < yb[:, None, :])[:, upper]
    out = np.empty((len(means), n_samples))
    for m, mu in enumerate(means):
        mb = mu[boot]
        pred = (mb[:, :, None] < mb[:, None, :])[:, upper]
        out[m] = ((pred != truth) & distinct).sum(-1)
    return out


def prequential_ranking_losses(
    members: Sequence[Any],
    y: np.ndarray,
    block_size: int,
    n_samples: int,
    rng: np.random.Generator,
) -> np.ndarray | None:
    """Prequential ranking loss of every member on ``n_samples`` bootstrap resamples of the
    blocks (see :attr:`WeightingConfig.evidence`).

    The runs ``y (n,)``, in the order observed, form blocks of ``block_size``; block ``b >= 1``
    is predicted by each member from blocks ``< b`` only (``conditional_means``). A member's
    loss on the block counts (1) the pairs of runs in the block it orders differently from the
    observed losses and (2) the pairs (new run, earlier run) where its prediction for the new
    run falls on the wrong side of the earlier run's observed loss -- would the new shape beat
    what was already trained? Resamples draw the predicted blocks with replacement.

    Returns:
        ``M x n_samples`` misordered-pair counts, or None when no predicted block holds a pair.
    """
    y = np.asarray(y, dtype=np.float64)
    starts = list(range(block_size, len(y), block_size))
    counts = []  # (blocks, M)
    for s0 in starts:
        target = np.arange(s0, min(s0 + block_size, len(y)))
        if len(target) < 2:
            continue
        given = np.arange(s0)
        upper = np.triu(np.ones((len(target), len(target)), dtype=bool), 1)
        truth = (y[target][:, None] < y[target][None, :])[upper]
        # Each new run placed among the runs already made: better or worse than each of them.
        placed = y[target][:, None] < y[given][None, :]
        row = []
        for m in members:
            mu = np.asarray(m.conditional_means(given, target), dtype=np.float64).mean(0)
            pred = (mu[:, None] < mu[None, :])[upper]
            wrong = int((pred != truth).sum())
            wrong += int(((mu[:, None] < y[given][None, :]) != placed).sum())
            row.append(wrong)
        counts.append(row)
    if not counts:
        return None
    C = np.asarray(counts, dtype=np.float64)  # (blocks, M)
    boot = rng.integers(len(C), size=(n_samples, len(C)))  # (B, blocks)
    return C[boot].sum(1).T  # (M, B)


def rank_weights(losses: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(M,)`` probability that each of ``M`` models has the lowest ranking loss, over the
    resamples (``losses`` is ``M x n_samples``); ties are broken at random, as RGPE does."""
    L = np.asarray(losses, dtype=np.float64)  # (M, n_samples)
    jitter = rng.random(L.shape) * 1e-3  # random tie-breaking, below one misordered pair
    best = np.argmin(L + jitter, axis=0)
    return np.bincount(best, minlength=L.shape[0]) / L.shape[1]


def combine_prior_weight(
    n_runs: int, w_loo: float | None, *, beta: float, prior_prob: float
) -> float:
    """``sigmoid(min(1, beta / n) logit(p0) + logit(w_loo))`` (module docstring); ``w_loo``
    is clipped to ``[0.01, 0.99]`` (a finite sample never proves a model certain), None = 1/2."""
    exponent = 1.0 if n_runs <= 0 else min(1.0, beta / n_runs)
    logit = exponent * math.log(prior_prob / (1.0 - prior_prob))
    if w_loo is not None:
        p = min(max(float(w_loo), 0.01), 0.99)
        logit += math.log(p / (1.0 - p))
    return 1.0 / (1.0 + math.exp(-logit))


def loo_spearman(loo_mean: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman correlation of LOO means ``(n,)`` with observed ``y``; None for fewer than 3
    runs or constant inputs."""
    from scipy.stats import spearmanr

    if len(y) < 3 or np.ptp(y) == 0 or np.ptp(loo_mean) == 0:
        return None
    rho = float(spearmanr(loo_mean, y).statistic)
    return rho if math.isfinite(rho) else None


# ---- the model ------------------------------------------------------------------------------
@dataclass
class WeightedLossModel:
    """The law GP and the prior-free GP with their weights (module docstring).

    Attributes:
        members: ``(name, model)`` pairs, ``"law"`` first.
        weights: ``(M,)`` mixture weights (sum 1).
        noise_vars: ``(M,)`` each member's run-noise variance (loss^2).
        prior_weight: the law's weight ``w``.
        prior_loo_spearman: Spearman of the law GP's LOO means with the runs (None below 3 runs).
        loo_weight: RGPE's ``w_loo`` for the law (None without LOO).
        n_runs: observed runs the model is conditioned on.
        train_y: ``(n,)`` the observed losses.
        min_acquisition_weight: see :class:`WeightingConfig`.
    """

    members: list[tuple[str, Any]]
    weights: np.ndarray
    noise_vars: np.ndarray
    prior_weight: float
    prior_loo_spearman: float | None
    loo_weight: float | None
    n_runs: int
    train_y: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    min_acquisition_weight: float = 0.0

    @property
    def law(self) -> LawPriorGP:
        return self.members[0][1]

    def _mixture(
        self, means: list[np.ndarray], variances: list[np.ndarray], probs: tuple[float, ...]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean ``(m,)`` and quantiles ``len(probs) x m`` of the mixture whose member ``j`` has
        equal-weight components with means ``means[j]`` (``S_j x m``) and variance
        ``variances[j]`` (``(m,)``)."""
        mu, sd, w = [], [], []
        for wm, mm, vv in zip(self.weights, means, variances):
            mm = np.atleast_2d(mm)
            mu.append(mm)
            sd.append(np.broadcast_to(np.sqrt(np.maximum(vv, 0.0)), mm.shape))
            w.append(np.full(mm.shape[0], wm / mm.shape[0]))
        mu_all, sd_all, w_all = np.concatenate(mu), np.concatenate(sd), np.concatenate(w)
        return (w_all[:, None] * mu_all).sum(0), mixture_quantiles(
            mu_all, sd_all, probs, weights=w_all
        )

    def predictive(
        self, idx: Any = None, probs: tuple[float, ...] = (Q05, Q95)
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predictive loss of a new run (noise included) at table points: ``mean (m,)`` and
        mixture quantiles ``len(probs) x m``."""
        parts = [model.marginals(idx) for _, model in self.members]
        return self._mixture(
            [p[0] for p in parts], [p[1] + nv for p, nv in zip(parts, self.noise_vars)], probs
        )

    def loo_predictive(
        self, probs: tuple[float, ...] = (Q05, Q95)
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each run's predictive given the others (LOO of every member, mixed with the current
        weights): ``mean (n,)`` and quantiles ``len(probs) x n``."""
        parts = [model.loo() for _, model in self.members]  # variances include the noise
        return self._mixture([p[0] for p in parts], [p[1] for p in parts], probs)

    def acquisition_members(self) -> list[tuple[Any, int, float]]:
        """``(posterior_fn, n_members, weight)`` of the members acquisition uses: weights below
        ``min_acquisition_weight`` dropped, the rest renormalised."""
        keep = [
            (m, w)
            for (_, m), w in zip(self.members, self.weights)
            if w >= self.min_acquisition_weight
        ]
        total = sum(w for _, w in keep)
        return [(m.posterior, m.n_members, w / total) for m, w in keep]


def _fit(
    problem: Any,
    idx: np.ndarray,
    loss: np.ndarray,
    config: WeightingConfig,
    mode: str,
    n_members: int,
    seed: int,
) -> WeightedLossModel:
    from .strategies import fit_loss_model

    law = fit_loss_model(problem, idx, loss, mode=mode, n_members=n_members)
    members: list[tuple[str, Any]] = [("law", law)]
    noise = [law.hyper.noise_var]
    n = len(idx)
    rho = w_loo = None
    if config.use_plain and n >= 2:
        plain = PlainGP(problem.X, idx, loss)
        members.append(("plain", plain))
        noise.append(plain.noise_var)
    if n >= config.min_loo_runs:
        law_mean, law_var = law.loo()
        rho = loo_spearman(law_mean.mean(0), loss)
        if len(members) > 1:
            rng = np.random.default_rng([int(seed), n, 7])
            losses: np.ndarray | None
            if config.evidence.startswith("prequential"):
                losses = prequential_ranking_losses(
                    [m for _, m in members],
                    loss,
                    config.block_size,
                    config.n_rank_samples,
                    rng,
                )
            else:
                means = [m.loo()[0].mean(0) for _, m in members]
                losses = ranking_losses(means, loss, config.n_rank_samples, rng)
            if losses is not None:
                w_loo = float(rank_weights(losses, rng)[0])
    if len(members) == 1:
        w = 1.0
    else:
        w = combine_prior_weight(n, w_loo, beta=config.beta, prior_prob=config.prior_prob)
    weights = np.array([w, 1.0 - w][: len(members)])
    return WeightedLossModel(
        members=members,
        weights=weights,
        noise_vars=np.array(noise),
        prior_weight=w,
        prior_loo_spearman=rho,
        loo_weight=w_loo,
        n_runs=n,
        train_y=np.asarray(loss, dtype=np.float64),
        min_acquisition_weight=config.min_acquisition_weight,
    )


#: Recently fitted models, keyed by the problem's identity and the observations, so a
#: campaign's predictions, status and proposal share one fit (a weak reference guards against
#: a recycled ``id``).
_RECENT: list[tuple[tuple, Any, WeightedLossModel]] = []
_RECENT_MAX = 4


def fit_weighted_model(
    problem: Any,
    observed_idx: Any = (),
    observed_loss: Any = (),
    *,
    config: WeightingConfig | None = None,
    mode: str = "gaussian",
    n_members: int = 8,
    seed: int = 0,
) -> WeightedLossModel:
    """archopt's loss model conditioned on the observed runs (module docstring).

    Args:
        problem: the :class:`~optim.core.problem.Problem` (needs its law prior).
        observed_idx, observed_loss: ``(n,)`` candidate indices and losses of the runs.
        config: weighting settings (default :class:`WeightingConfig`).
        mode, n_members: how the law GP carries the law posterior
            (:func:`optim.core.strategies.fit_loss_model`).
        seed: seeds the ranking-loss draws (the weight is reproducible).
    """
    from .strategies import validate_observations

    config = config or WeightingConfig()
    idx, loss = validate_observations(problem, observed_idx, observed_loss)
    key = (
        id(problem),
        problem.n,
        idx.tobytes(),
        loss.tobytes(),
        config,
        mode,
        int(n_members),
        int(seed),
    )
    for k, ref, model in _RECENT:
        if k == key and ref() is problem:
            return model
    model = _fit(problem, idx, loss, config, mode, n_members, seed)
    _RECENT.insert(0, (key, weakref.ref(problem), model))
    del _RECENT[_RECENT_MAX:]
    return model


# ---- what the campaign shows ----------------------------------------------------------------
def band_check(model: WeightedLossModel) -> list[dict[str, Any]]:
    """For every observed run: the law-prior GP's 90% band for it given the other runs
    (closed-form LOO, :meth:`surrogate.gp.LawPriorGP.loo`) and whether the run falls outside.

    The prior's band, not the mixture's: a run the law GP cannot predict from the others is
    evidence against the prior, which is what the warning is for (the prior-free member, its
    noise fitted with the surprising run included, would widen the mixture's band around it).

    Returns:
        One dict per run, in observation order: ``position``, ``observed``, ``q05``, ``q95``,
        ``outside`` (bool). Empty without runs; with one run the band is the prior's.
    """
    if model.n_runs < 1:
        return []
    means, var = model.law.loo()  # (S', n), (n,)
    q = mixture_quantiles(np.atleast_2d(means), np.sqrt(np.maximum(var, 0.0)), (Q05, Q95))
    out = []
    for j, (lo, hi, y) in enumerate(zip(q[0], q[1], model.train_y)):
        out.append(
            {
                "position": j,
                "observed": float(y),
                "q05": float(lo),
                "q95": float(hi),
                "outside": bool(y < lo or y > hi),
            }
        )
    return out


def _band_message(label: str, row: dict[str, Any]) -> str:
    side = "below" if row["observed"] < row["q05"] else "above"
    return (
        f"{label}: observed loss {row['observed']:.4f} is {side} the prior's 90% band "
        f"[{row['q05']:.4f}, {row['q95']:.4f}] for it given the other runs"
    )


def prior_status(
    problem: Any, observed_idx: Any, observed_loss: Any, labels: Sequence[str] | None = None
) -> dict[str, Any]:
    """What a campaign reports about its prior: ``prior_weight`` (the law's weight in the
    model), ``prior_loo_spearman`` (None below 3 runs) and ``warnings`` (one line per observed
    run outside the prior's 90% band for it given the others, :func:`band_check`).
    ``labels[j]`` names the ``j``-th run
    (default ``"run j"``). Without a law prior: weight None and no warnings."""
    if getattr(problem, "law_samples", None) is None:
        return {"prior_weight": None, "prior_loo_spearman": None, "warnings": []}
    model = fit_weighted_model(problem, observed_idx, observed_loss)
    names = list(labels) if labels is not None else [f"run {j}" for j in range(model.n_runs)]
    warnings = [_band_message(names[r["position"]], r) for r in band_check(model) if r["outside"]]
    return {
        "prior_weight": float(model.prior_weight),
        "prior_loo_spearman": model.prior_loo_spearman,
        "warnings": warnings,
    }


def warn_outside_band(
    problem: Any, observed_idx: Any, observed_loss: Any, labels: Mapping[int, str]
) -> list[int]:
    """``warnings.warn`` one :class:`PriorBandWarning` for every observed run ``position`` in
    ``labels`` (position -> the run's name) that is outside the prior's 90% band for it given
    the other runs (:func:`band_check`); returns those positions.

    The band check fits the model once for all of them (a batch of ingested runs costs one
    fit), so every run is judged given all the others, the new ones included."""
    import warnings

    if getattr(problem, "law_samples", None) is None or not labels:
        return []
    model = fit_weighted_model(problem, observed_idx, observed_loss)
    outside = []
    for row in band_check(model):
        position = row["position"]
        if position in labels and row["outside"]:
            warnings.warn(
                _band_message(labels[position], row) + f" (prior weight {model.prior_weight:.2f})",
                PriorBandWarning,
                stacklevel=2,
            )
            outside.append(position)
    return outside


def warn_if_outside_band(
    problem: Any, observed_idx: Any, observed_loss: Any, position: int, label: str
) -> bool:
    """:func:`warn_outside_band` for one run: whether run ``position`` was outside its band."""
    return bool(warn_outside_band(problem, observed_idx, observed_loss, {position: label}))
