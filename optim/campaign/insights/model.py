"""A campaign's observed runs over its candidates and its fitted loss model, and joint draws of
the loss at a set of candidates (the base of every other view)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from models.arch import Arch
from models.errors import ArchoptError

if TYPE_CHECKING:
    from optim.campaign.campaign import Campaign
    from optim.core.problem import Problem

__all__ = [
    "InsightError",
    "Observations",
    "candidate_index",
    "observations",
    "loss_model",
    "mixture_components",
    "law_member",
    "joint_loss_draws",
    "DEFAULT_DRAWS",
]

#: Joint draws (a multiple of the problem's 64 throughput draws).
DEFAULT_DRAWS = 512


class InsightError(ArchoptError):
    """A view the campaign cannot give (no law prior, no observed run, unknown trial...)."""


@dataclass(frozen=True)
class Observations:
    """A campaign's trials as indices of a problem's candidates (all ``(k,)`` arrays).

    Attributes:
        idx, loss, trials: observed runs (candidate index, loss, trial number), trial order.
        pending_idx, pending_trials: pending trials.
    """

    idx: np.ndarray
    loss: np.ndarray
    trials: np.ndarray
    pending_idx: np.ndarray
    pending_trials: np.ndarray


def candidate_index(problem: Problem, arch: Arch) -> int:
    """``arch``'s candidate index in ``problem`` (InsightError when it is not a candidate)."""
    i = problem.index_of(arch)
    if i is None:
        raise InsightError(f"{arch.label()} is not among the problem's candidates")
    return int(i)


def observations(campaign: Campaign, problem: Problem | None = None) -> Observations:
    """The observed and pending trials of ``campaign`` over ``problem``'s candidates (default
    :attr:`Campaign.problem`, which holds every trial's shape)."""
    problem = problem or campaign.problem
    obs, pend = [], []
    for rec in sorted(campaign.trial_records(), key=lambda r: r.trial):
        i = candidate_index(problem, rec.arch)
        if rec.status == "observed" and rec.loss is not None:
            obs.append((i, float(rec.loss), rec.trial))
        elif rec.status == "pending":
            pend.append((i, rec.trial))
    return Observations(
        idx=np.array([o[0] for o in obs], dtype=np.int64),
        loss=np.array([o[1] for o in obs], dtype=np.float64),
        trials=np.array([o[2] for o in obs], dtype=np.int64),
        pending_idx=np.array([p[0] for p in pend], dtype=np.int64),
        pending_trials=np.array([p[1] for p in pend], dtype=np.int64),
    )


def loss_model(campaign: Campaign, problem: Problem | None = None) -> Any:
    """The campaign's loss model conditioned on its observed runs, over ``problem`` (default
    :attr:`Campaign.problem`; the same fitted object :meth:`Campaign.candidate_loss` uses).

    Returns:
        A :class:`optim.core.weighting.WeightedLossModel`.
    """
    from optim.core.weighting import fit_weighted_model

    problem = problem or campaign.problem
    if problem.law_samples is None:
        raise InsightError(f"campaign {campaign.name!r} has no scaling-law prior")
    obs = observations(campaign, problem)
    return fit_weighted_model(problem, obs.idx, obs.loss)


def mixture_components(model: Any) -> list[tuple[float, Any, float]]:
    """``(weight, member, noise_var)`` of a weighted model's members, or of one law GP."""
    from surrogate.gp import LawPriorGP

    if isinstance(model, LawPriorGP):
        return [(1.0, model, float(model.hyper.noise_var))]
    return [
        (float(w), member, float(nv))
        for (_, member), w, nv in zip(model.members, model.weights, model.noise_vars)
    ]


def law_member(model: Any) -> Any:
    """The law-prior GP of a weighted model (or ``model`` itself when it is one)."""
    from surrogate.gp import LawPriorGP

    return model if isinstance(model, LawPriorGP) else model.law


def _cholesky(cov: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor of a PSD ``m x m`` covariance, with the smallest jitter that works
    (1e-12 .. 1e-6 loss^2, far below any band this module reports)."""
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype)
    for jitter in (1e-12, 1e-10, 1e-8, 1e-6):
        chol, info = torch.linalg.cholesky_ex(cov + jitter * eye)
        if int(info) == 0:
            return chol
    raise InsightError("the loss model's covariance is not positive definite at these shapes")


def joint_loss_draws(
    model: Any,
    idx: Sequence[int] | np.ndarray,
    n_draws: int = DEFAULT_DRAWS,
    *,
    seed: int = 0,
    noise: bool = False,
) -> np.ndarray:
    """Draws of the loss at candidates ``idx`` (``(m,)``), joint across them.

    Each mixture member gets ``round(n_draws * weight)`` draws (largest remainders); within a
    member a draw picks one of its components (law draws in ensemble mode) and adds its joint
    Gaussian posterior. ``noise=False`` gives each shape's expected loss; ``True`` adds one run's
    noise per shape (the loss a new training run would report).

    Returns:
        ``n_draws x m``.
    """
    idx_t = torch.as_tensor(np.asarray(idx, dtype=np.int64))
    comps = mixture_components(model)
    weights = np.array([w for w, _, _ in comps])
    raw = weights * n_draws
    counts = np.floor(raw).astype(int)
    counts[np.argsort(-(raw - counts))[: n_draws - counts.sum()]] += 1
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(int(seed))
    out = []
    for (_, member, noise_var), count in zip(comps, counts):
        if count == 0:
            continue
        with torch.no_grad():
            mean, cov = member.posterior(idx_t)  # (S', m), (m, m)
            chol = _cholesky(cov)
            z = torch.randn(int(count), len(idx_t), generator=gen, dtype=cov.dtype)
            pick = torch.as_tensor(rng.integers(mean.shape[0], size=int(count)))
            draws = (mean[pick] + z @ chol.T).numpy()
        if noise:
            draws = draws + math.sqrt(noise_var) * rng.standard_normal(draws.shape)
        out.append(draws)
    return np.concatenate(out, axis=0)
