"""Proposal strategies over a :class:`~optim.core.problem.Problem`, all with one interface::

    strategy.propose(problem, observed_idx, observed_loss, k, *, pending_idx=None, seed=0)
        -> ProposalBatch

* :class:`ArchoptStrategy` -- the scaling-law-prior GP (:mod:`surrogate.gp`) mixed with the
  prior-free GP by a weight learned from the campaign's runs (:mod:`optim.core.weighting`), and
  batch qLogNEHVI under that mixture over the candidate set (:mod:`optim.core.acquisition`).
* :class:`PlainQNEHVIStrategy` -- what Ax's default BoTorch model does without the prior: a
  ``SingleTaskGP`` (constant mean, standardized Y, fitted hyper-parameters) on the same features
  and candidates with the same qLogNEHVI; a scrambled-Sobol space-filling batch (snapped to the
  nearest unused candidates) until two runs exist, as Ax's initialization does.
* :class:`Algorithm1Strategy` -- arXiv 2510.18245 Algorithm 1: among candidates whose predicted
  loss is <= a target ``L_t``, take the fastest shape, then search over the GQA group of that
  shape; repeated for a batch.
* :class:`RandomStrategy` -- uniform over the unused candidates.

Indices always refer to ``problem.candidates``. Candidates that are observed, pending or not
``problem.proposable`` are never proposed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from models.errors import ArchoptError
from surrogate.gp import LawPriorGP

from .acquisition import CandidateSetModel, optimize_nehvi
from .bands import Q05, Q95, Z90
from .plain_model import fit_plain_gp
from .problem import Problem
from .weighting import WeightedLossModel, WeightingConfig, fit_weighted_model

__all__ = [
    "ProposalBatch",
    "Strategy",
    "ArchoptStrategy",
    "PlainQNEHVIStrategy",
    "Algorithm1Strategy",
    "RandomStrategy",
    "STRATEGIES",
    "candidate_loss",
    "fit_loss_model",
    "available_indices",
    "StrategyError",
    "validate_observations",
]

DTYPE = torch.float64


class StrategyError(ArchoptError):
    """Bad strategy input (indices out of range, NaN loss, no prior for a prior-based method)."""


@dataclass
class ProposalBatch:
    """``k`` proposals and what the strategy predicted for them (arrays of length ``k``).

    ``pred_loss_*`` are the strategy's own predictions (NaN when it has no loss model);
    ``pred_tokens_per_s`` is the problem's throughput; ``ehvi`` the expected hypervolume
    improvement each proposal adds after the ones before it (NaN for non-acquisition methods);
    ``prior_weight`` and ``prior_loo_spearman`` the law prior's weight in the model and the LOO
    rank correlation behind it (:mod:`optim.core.weighting`; NaN for methods without it).
    """

    indices: np.ndarray
    pred_loss_mean: np.ndarray
    pred_loss_q05: np.ndarray
    pred_loss_q95: np.ndarray
    pred_tokens_per_s: np.ndarray
    ehvi: np.ndarray
    seconds: float
    strategy: str = ""
    prior_weight: float = math.nan
    prior_loo_spearman: float = math.nan

    def __len__(self) -> int:
        return len(self.indices)


# ---- shared helpers ---------------------------------------------------------------------------
def validate_observations(
    problem: Problem, observed_idx: Any, observed_loss: Any
) -> tuple[np.ndarray, np.ndarray]:
    """``(idx, loss)`` as int64 / float64 ``(n,)`` arrays; StrategyError for mismatched lengths,
    indices outside the candidates or non-finite losses."""
    idx = np.asarray(observed_idx if observed_idx is not None else [], dtype=np.int64).reshape(-1)
    loss = np.asarray(observed_loss if observed_loss is not None else [], dtype=np.float64).reshape(
        -1
    )
    if idx.shape != loss.shape:
        raise StrategyError(f"{len(idx)} observed indices but {len(loss)} losses")
    if len(idx) and (idx.min() < 0 or idx.max() >= problem.n):
        raise StrategyError(f"observed index out of range [0, {problem.n})")
    if not np.all(np.isfinite(loss)):
        raise StrategyError("observed losses must be finite")
    return idx, loss


def available_indices(
    problem: Problem, observed_idx: np.ndarray, pending_idx: np.ndarray | None
) -> np.ndarray:
    """Proposable candidates that are neither observed nor pending."""
    mask = problem.proposable.copy()
    mask[np.asarray(observed_idx, dtype=np.int64)] = False
    if pending_idx is not None and len(pending_idx):
        mask[np.asarray(pending_idx, dtype=np.int64)] = False
    return np.flatnonzero(mask)


def _tps_sd(problem: Problem) -> np.ndarray:
    return np.maximum(problem.throughput_rel_sigma, 1e-3)


def fit_loss_model(
    problem: Problem,
    observed_idx: Any = (),
    observed_loss: Any = (),
    *,
    mode: str = "gaussian",
    n_members: int = 8,
) -> LawPriorGP:
    """The archopt loss model (:class:`surrogate.gp.LawPriorGP`) conditioned on observed runs.

    Args:
        mode: ``"gaussian"`` (law draws as a low-rank GP prior, all ``N_LAW_DRAWS`` draws) or
            ``"ensemble"`` (``n_members`` evenly spaced draws as mixture members).
    """
    if problem.law_samples is None:
        raise StrategyError("this method needs a scaling-law prior (problem.prior is None)")
    idx, loss = validate_observations(problem, observed_idx, observed_loss)
    members = _subset_rows(problem.law_samples.shape[0], n_members) if mode == "ensemble" else None
    gp = LawPriorGP(
        problem.X,
        torch.as_tensor(problem.law_samples),
        problem.residual_hyper,
        mode=mode,
        members=members,
    )
    return gp.fit(idx, loss)


def candidate_loss(
    problem: Problem,
    observed_idx: Any = (),
    observed_loss: Any = (),
    *,
    gp: LawPriorGP | WeightedLossModel | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predicted loss of a new run at every candidate under the archopt model (the law GP and
    the prior-free GP weighted by :func:`optim.core.weighting.fit_weighted_model`, unless a
    fitted ``gp`` is given).

    Returns:
        ``mean``, ``q05``, ``q95``, each ``(n,)`` over ``problem.candidates`` (run noise
        included in the band).
    """
    if gp is None:
        if problem.law_samples is None:
            raise StrategyError("this method needs a scaling-law prior (problem.prior is None)")
        gp = fit_weighted_model(problem, observed_idx, observed_loss)
    mean, q = gp.predictive(None, (Q05, Q95))
    return mean, q[0], q[1]


def _subset_rows(total: int, k: int) -> np.ndarray:
    return np.unique(np.linspace(0, total - 1, min(k, total)).round().astype(int))


class Strategy:
    """Base: subclasses implement :meth:`propose`."""

    name = "base"

    def propose(
        self,
        problem: Problem,
        observed_idx: Any,
        observed_loss: Any,
        k: int,
        *,
        pending_idx: Any = None,
        seed: int = 0,
    ) -> ProposalBatch:  # pragma: no cover
        raise NotImplementedError

    def _batch(
        self,
        problem: Problem,
        chosen: np.ndarray,
        mean: np.ndarray | None,
        q05: np.ndarray | None,
        q95: np.ndarray | None,
        ehvi: np.ndarray | None,
        start: float,
    ) -> ProposalBatch:
        chosen = np.asarray(chosen, dtype=np.int64)
        nan = np.full(len(chosen), np.nan)

        def pick(a: np.ndarray | None) -> np.ndarray:
            return nan.copy() if a is None else np.asarray(a, dtype=np.float64)[chosen]

        return ProposalBatch(
            indices=chosen,
            pred_loss_mean=pick(mean),
            pred_loss_q05=pick(q05),
            pred_loss_q95=pick(q95),
            pred_tokens_per_s=problem.throughput_mean[chosen].copy(),
            ehvi=nan.copy() if ehvi is None else np.asarray(ehvi, dtype=np.float64),
            seconds=time.perf_counter() - start,
            strategy=self.name,
        )


def _pending(pending_idx: Any) -> np.ndarray:
    return np.asarray(pending_idx if pending_idx is not None else [], dtype=np.int64).reshape(-1)


# ---- archopt ----------------------------------------------------------------------------------
class ArchoptStrategy(Strategy):
    """The weighted loss model (:mod:`optim.core.weighting`: law-prior GP and prior-free GP,
    the law's weight learned from the runs) + batch qLogNEHVI under that mixture.

    Before any run the model is the law GP alone; its posterior is joint over the batch (the
    offset every shape shares is one constant-kernel term, the law draws one low-rank
    covariance), so within each quasi-MC sample shapes differ only by what the law says differs
    between them and the first batch follows the law's front (measured in
    ``tests/optim/core/test_strategies.py``). Conditioning acquisition on the shared level instead (no
    common uncertainty at all) was tried and landed further from the front (HV of the first
    batch 0.66 vs 0.76 over 16 worlds drawn from the prior; 0.38 at random).

    Args:
        mode: ``"gaussian"`` (default; one Gaussian posterior carrying the law draws'
            covariance) or ``"ensemble"`` (mixture over ``n_members`` law draws).
        n_members: law draws in the ensemble (ensemble mode).
        mc_samples: quasi-MC samples of the acquisition.
        weighting: the prior weighting settings (default :class:`WeightingConfig`;
            ``WeightingConfig(use_plain=False)`` is the law GP alone).
    """

    name = "archopt"

    def __init__(
        self,
        mode: str = "gaussian",
        n_members: int = 8,
        mc_samples: int = 32,
        weighting: WeightingConfig | None = None,
    ) -> None:
        self.mode = mode
        self.n_members = int(n_members)
        self.mc_samples = int(mc_samples)
        self.weighting = weighting or WeightingConfig()

    def models(
        self, problem: Problem, model: WeightedLossModel
    ) -> tuple[list[CandidateSetModel], list[float]]:
        """The two-output acquisition models of the mixture's members and their weights."""
        tps = torch.as_tensor(problem.log_throughput)
        sd = torch.as_tensor(_tps_sd(problem))
        members = model.acquisition_members()
        return (
            [CandidateSetModel(fn, tps, sd, s) for fn, s, _ in members],
            [w for _, _, w in members],
        )

    def propose(
        self,
        problem: Problem,
        observed_idx: Any,
        observed_loss: Any,
        k: int,
        *,
        pending_idx: Any = None,
        seed: int = 0,
    ) -> ProposalBatch:
        start = time.perf_counter()
        idx, loss = validate_observations(problem, observed_idx, observed_loss)
        if problem.law_samples is None:
            raise StrategyError("this method needs a scaling-law prior (problem.prior is None)")
        pending = _pending(pending_idx)
        model = fit_weighted_model(
            problem, idx, loss, config=self.weighting, mode=self.mode, n_members=self.n_members
        )
        mean, q05, q95 = candidate_loss(problem, gp=model)
        choices = available_indices(problem, idx, pending)
        ref = problem.reference_point(mean)
        models, weights = self.models(problem, model)
        result = optimize_nehvi(
            models,
            weights=weights,
            choices=choices,
            k=k,
            ref_point=ref,
            observed_idx=idx,
            pending_idx=pending,
            mc_samples=self.mc_samples,
            seed=seed,
        )
        batch = self._batch(problem, result.indices, mean, q05, q95, result.ehvi, start)
        batch.prior_weight = float(model.prior_weight)
        batch.prior_loo_spearman = (
            math.nan if model.prior_loo_spearman is None else float(model.prior_loo_spearman)
        )
        return batch


# ---- plain qNEHVI -----------------------------------------------------------------------------
class PlainQNEHVIStrategy(Strategy):
    """Ax's default BoTorch recipe without the prior (see the module docstring).

    Args:
        mc_samples: quasi-MC samples of the acquisition.
        n_init: observations below which a Sobol batch is proposed instead.
    """

    name = "plain_qnehvi"

    def __init__(self, mc_samples: int = 32, n_init: int = 2) -> None:
        self.mc_samples = int(mc_samples)
        self.n_init = int(n_init)

    def _sobol(self, problem: Problem, choices: np.ndarray, k: int, seed: int) -> np.ndarray:
        from scipy.stats import qmc

        pts = qmc.Sobol(d=problem.X.shape[1], scramble=True, seed=seed).random(max(k, 1))
        feats = problem.X[choices].numpy()
        chosen: list[int] = []
        for p in pts[:k]:
            dist = ((feats - p) ** 2).sum(1)
            if chosen:
                dist[np.isin(choices, chosen)] = np.inf
            chosen.append(int(choices[int(np.argmin(dist))]))
        return np.asarray(chosen, dtype=np.int64)

    def fit(self, problem: Problem, idx: np.ndarray, loss: np.ndarray):
        """``SingleTaskGP`` on ``X[idx]`` -> loss (standardized), MLL-fitted
        (:func:`optim.core.plain_model.fit_plain_gp`)."""
        return fit_plain_gp(problem.X, idx, loss)

    def propose(
        self,
        problem: Problem,
        observed_idx: Any,
        observed_loss: Any,
        k: int,
        *,
        pending_idx: Any = None,
        seed: int = 0,
    ) -> ProposalBatch:
        start = time.perf_counter()
        idx, loss = validate_observations(problem, observed_idx, observed_loss)
        pending = _pending(pending_idx)
        choices = available_indices(problem, idx, pending)
        k = min(int(k), len(choices))
        if len(idx) < self.n_init:
            return self._batch(
                problem, self._sobol(problem, choices, k, seed), None, None, None, None, start
            )
        gp = self.fit(problem, idx, loss)
        X = problem.X

        def loss_posterior(ix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            post = gp.posterior(X[ix])  # batch x q x 1
            mvn = post.distribution
            return mvn.mean.unsqueeze(-2), mvn.covariance_matrix

        model = CandidateSetModel(
            loss_posterior,
            torch.as_tensor(problem.log_throughput),
            torch.as_tensor(_tps_sd(problem)),
            1,
        )
        with torch.no_grad():
            post = gp.posterior(X, observation_noise=True)
            mean = post.mean.squeeze(-1).numpy()
            sd = post.variance.squeeze(-1).clamp_min(0).sqrt().numpy()
        ref = problem.reference_point(mean)
        result = optimize_nehvi(
            model,
            choices=choices,
            k=k,
            ref_point=ref,
            observed_idx=idx,
            pending_idx=pending,
            mc_samples=self.mc_samples,
            seed=seed,
        )
        return self._batch(
            problem, result.indices, mean, mean - Z90 * sd, mean + Z90 * sd, result.ehvi, start
        )


# ---- Algorithm 1 ------------------------------------------------------------------------------
class Algorithm1Strategy(Strategy):
    """arXiv 2510.18245 Algorithm 1 over the candidate set.

    Predicted loss: the law-posterior mean, recalibrated to the campaign by the mean residual of
    the observed runs (the paper refits the law's calibration on new runs). Loss target ``L_t``:
    ``loss_target`` if given, else ``problem.max_loss``, else the best predicted loss among the
    unused candidates times ``1 + tolerance``. Step 1 takes, among candidates with the base GQA
    group whose predicted loss is <= ``L_t``, the one with the highest throughput; step 2 varies
    the GQA group of that ``(d_model, n_layers, head_dim)`` (``ffn_dim`` re-balanced on the grid
    to stay in budget) and keeps the fastest variant still <= ``L_t``. For a batch the next
    proposal is the next-fastest shape not yet used. When no unused candidate reaches ``L_t``
    the target relaxes to the best prediction times ``1 + tolerance``.
    """

    name = "algorithm1"

    def __init__(
        self, loss_target: float | None = None, tolerance: float = 0.01, base_gqa_group: int = 4
    ) -> None:
        self.loss_target = loss_target
        self.tolerance = float(tolerance)
        self.base_gqa_group = int(base_gqa_group)

    def predicted_loss(
        self, problem: Problem, idx: np.ndarray, loss: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mean, q05, q95)`` of the recalibrated law (law draws + observed mean offset)."""
        if problem.law_samples is None:
            raise StrategyError("Algorithm 1 needs a scaling-law prior (problem.prior is None)")
        draws = problem.law_samples
        offset = float(np.mean(loss - draws.mean(0)[idx])) if len(idx) else 0.0
        draws = draws + offset
        return draws.mean(0), np.quantile(draws, Q05, 0), np.quantile(draws, Q95, 0)

    def propose(
        self,
        problem: Problem,
        observed_idx: Any,
        observed_loss: Any,
        k: int,
        *,
        pending_idx: Any = None,
        seed: int = 0,
    ) -> ProposalBatch:
        start = time.perf_counter()
        idx, loss = validate_observations(problem, observed_idx, observed_loss)
        choices = available_indices(problem, idx, _pending(pending_idx))
        mean, q05, q95 = self.predicted_loss(problem, idx, loss)
        if self.loss_target is not None:
            target = float(self.loss_target)
        elif problem.max_loss is not None:
            target = float(problem.max_loss)
        else:
            target = float(mean[choices].min()) * (1 + self.tolerance) if len(choices) else math.inf
        cands = problem.candidates
        tps = problem.throughput_mean
        feasible = choices[mean[choices] <= target]
        if not len(feasible) and len(choices):  # target unreachable: the best-predicted shapes
            feasible = choices[mean[choices] <= float(mean[choices].min()) * (1 + self.tolerance)]
        groups = np.array([cands[i].gqa_group for i in feasible])
        base = (
            self.base_gqa_group
            if np.any(groups == self.base_gqa_group)
            else (int(np.bincount(groups).argmax()) if len(groups) else self.base_gqa_group)
        )
        order = feasible[np.argsort(-tps[feasible], kind="stable")]
        by_shape: dict[tuple[int, int, int], list[int]] = {}
        for i in feasible:
            a = cands[i]
            by_shape.setdefault((a.d_model, a.n_layers, a.head_dim), []).append(int(i))
        chosen: list[int] = []
        used: set[tuple[int, int, int]] = set()
        for phase_base_only in (True, False):  # fall back to any group if base shapes run out
            for i in order:
                if len(chosen) >= k:
                    break
                a = cands[i]
                key = (a.d_model, a.n_layers, a.head_dim)
                if key in used or (phase_base_only and a.gqa_group != base):
                    continue
                used.add(key)
                variants = by_shape[key]  # step 2: GQA local search on this shape
                chosen.append(max(variants, key=lambda j: (tps[j], -j)))
        return self._batch(
            problem, np.asarray(chosen[:k], dtype=np.int64), mean, q05, q95, None, start
        )


# ---- random -----------------------------------------------------------------------------------
class RandomStrategy(Strategy):
    """Uniformly random unused candidates (no loss model: predictions are NaN; the campaign
    shows its own model's predictions for every strategy's proposals)."""

    name = "random"

    def propose(
        self,
        problem: Problem,
        observed_idx: Any,
        observed_loss: Any,
        k: int,
        *,
        pending_idx: Any = None,
        seed: int = 0,
    ) -> ProposalBatch:
        start = time.perf_counter()
        idx, _ = validate_observations(problem, observed_idx, observed_loss)
        choices = available_indices(problem, idx, _pending(pending_idx))
        rng = np.random.default_rng(seed)
        chosen = rng.choice(choices, size=min(int(k), len(choices)), replace=False)
        return self._batch(problem, chosen, None, None, None, None, start)


STRATEGIES: dict[str, type[Strategy]] = {
    "archopt": ArchoptStrategy,
    "plain_qnehvi": PlainQNEHVIStrategy,
    "algorithm1": Algorithm1Strategy,
    "random": RandomStrategy,
}
