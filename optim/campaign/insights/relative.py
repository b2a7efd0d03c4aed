"""Joint draws of the campaign's model over a pool of candidates and what they give: each
shape relative to a reference, P(on the front), and the offset the runs imply."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from models.arch import Arch
from optim.core.bands import Q05, Q95

from .model import (
    DEFAULT_DRAWS,
    InsightError,
    candidate_index,
    joint_loss_draws,
    law_member,
    loss_model,
    mixture_components,
    observations,
)

if TYPE_CHECKING:
    from optim.campaign.campaign import Campaign
    from optim.core.problem import Problem

__all__ = [
    "DEFAULT_POOL",
    "ModelDraws",
    "model_draws",
    "non_dominated",
    "reference_index",
    "default_reference",
    "relative_table",
    "learned_offset",
]

#: Front-eligible candidates kept in the pool of joint draws (:func:`model_draws`).
DEFAULT_POOL = 600


@dataclass(frozen=True)
class ModelDraws:
    """Joint draws of the campaign's model over a pool of candidates (:func:`model_draws`).

    Attributes:
        problem: the problem the indices refer to (the campaign's, or one with extra shapes).
        indices: ``(m,)`` candidate indices of the pool.
        loss: ``S x m`` draws of the expected (noise-free) loss.
        run_loss: ``S x m`` the same draws plus one run's noise (a new run's result).
        tps: ``S x m`` tokens/s draws paired with them (the problem's joint throughput draws).
        eligible: ``(m,)`` may be on the front (proposable, or an observed shape in the band).
        on_front: ``S x m`` non-dominated among the eligible pool in that draw.
        pred_mean, pred_q05, pred_q95: ``(m,)`` the model's predictive loss of a new run (what
            the tables show).
        ref_point: ``(loss, tokens/s)`` of the hypervolume.
        n_eligible: front-eligible candidates of the whole problem.
    """

    problem: Any
    indices: np.ndarray
    loss: np.ndarray
    run_loss: np.ndarray
    tps: np.ndarray
    eligible: np.ndarray
    on_front: np.ndarray
    pred_mean: np.ndarray
    pred_q05: np.ndarray
    pred_q95: np.ndarray
    ref_point: tuple[float, float]
    n_eligible: int

    def column(self, candidate: int) -> int:
        """Position of candidate index ``candidate`` in the pool (InsightError if absent)."""
        hit = np.flatnonzero(self.indices == int(candidate))
        if not len(hit):
            raise InsightError(f"candidate {candidate} is not in the pool of joint draws")
        return int(hit[0])

    @property
    def p_front(self) -> np.ndarray:
        """``(m,)`` probability of being on the front."""
        return self.on_front.mean(0)


def _front_envelope_gap(loss: np.ndarray, tps: np.ndarray) -> np.ndarray:
    """``(k,)`` predicted loss above the best loss of any point at least as fast (0 on the
    front)."""
    order = np.argsort(-tps, kind="stable")
    best = np.minimum.accumulate(loss[order])
    gap = np.empty_like(loss)
    gap[order] = loss[order] - best
    return gap


def non_dominated(loss: np.ndarray, tps: np.ndarray) -> np.ndarray:
    """Per row, which points are Pareto-optimal in (low loss, high tokens/s); ``inf`` losses
    are never optimal. ``loss``, ``tps``: ``S x m``; returns ``S x m`` bool."""
    order = np.argsort(-tps, axis=1, kind="stable")
    ls = np.take_along_axis(loss, order, axis=1)
    prev = np.concatenate(
        [np.full((ls.shape[0], 1), np.inf), np.minimum.accumulate(ls, axis=1)[:, :-1]], axis=1
    )
    nd_sorted = (ls < prev) & np.isfinite(ls)
    out = np.empty_like(nd_sorted)
    np.put_along_axis(out, order, nd_sorted, axis=1)
    return out


def _extended_problem(campaign: Campaign, extra_archs: Sequence[Arch]) -> Problem:
    from optim.core.problem import Problem

    return Problem.build(
        campaign.spec,
        campaign.prior,
        extra_archs=[r.arch for r in campaign.trial_records()] + list(extra_archs),
    )


def model_draws(
    campaign: Campaign,
    *,
    extra_archs: Sequence[Arch] = (),
    pool_size: int = DEFAULT_POOL,
    n_draws: int = DEFAULT_DRAWS,
    seed: int = 0,
) -> ModelDraws:
    """Joint draws of the campaign's model over a pool (module docstring).

    Args:
        extra_archs: shapes to add to the pool (e.g. published reference models); with any,
            the problem is rebuilt with them (:meth:`Campaign.shape_table` does the same) and
            the model refitted on it.
        pool_size: front-eligible candidates kept (closest to the predicted front first).
        n_draws: joint draws (``S``).
    """
    problem = _extended_problem(campaign, extra_archs) if extra_archs else campaign.problem
    model = loss_model(campaign, problem)
    obs = observations(campaign, problem)
    mean, q = model.predictive(None, (Q05, Q95))
    observed_in_band = np.isin(np.arange(problem.n), obs.idx) & problem.in_band
    eligible_all = problem.proposable | observed_in_band
    cand = np.flatnonzero(eligible_all)
    gap = _front_envelope_gap(mean[cand], problem.throughput_mean[cand])
    keep = cand[np.argsort(gap, kind="stable")[:pool_size]]
    extra_idx = [candidate_index(problem, a) for a in extra_archs]
    must = np.concatenate([obs.idx, obs.pending_idx, np.asarray(extra_idx, dtype=np.int64)])
    pool = np.array(
        list(dict.fromkeys(np.concatenate([must, np.sort(keep)]).tolist())), dtype=np.int64
    )
    loss = joint_loss_draws(model, pool, n_draws, seed=seed)
    rng = np.random.default_rng([int(seed), 1])
    noise_sd = math.sqrt(sum(w * nv for w, _, nv in mixture_components(model)))
    run_loss = loss + noise_sd * rng.standard_normal(loss.shape)
    tps_draws = problem.throughput_draws[:, pool]
    tps = tps_draws[np.arange(n_draws) % tps_draws.shape[0]]
    eligible = eligible_all[pool]
    masked = np.where(eligible[None, :], loss, np.inf)
    if problem.max_loss is not None:
        masked = np.where(masked <= problem.max_loss, masked, np.inf)
    if problem.min_throughput is not None:
        masked = np.where(tps >= problem.min_throughput, masked, np.inf)
    ref = problem.reference_point(mean)
    return ModelDraws(
        problem=problem,
        indices=pool,
        loss=loss,
        run_loss=run_loss,
        tps=tps,
        eligible=eligible,
        on_front=non_dominated(masked, tps),
        pred_mean=mean[pool],
        pred_q05=q[0][pool],
        pred_q95=q[1][pool],
        ref_point=(float(ref[0]), float(ref[1])),
        n_eligible=int(len(cand)),
    )


def reference_index(
    campaign: Campaign, reference: str | int | Arch, problem: Problem | None = None
) -> int:
    """The candidate index of a reference: ``"best"`` (the best observed run's shape), a trial
    number given as ``"trial N"``, a candidate index (int) or a shape (:class:`Arch`, which
    must be among ``problem``'s candidates: see ``model_draws(extra_archs=...)``)."""
    problem = problem or campaign.problem
    if isinstance(reference, Arch):
        return candidate_index(problem, reference)
    if isinstance(reference, (int, np.integer)) and not isinstance(reference, bool):
        if not 0 <= int(reference) < problem.n:
            raise InsightError(f"candidate {reference} is out of range [0, {problem.n})")
        return int(reference)
    if reference == "best":
        obs = observations(campaign, problem)
        if not len(obs.idx):
            raise InsightError("no observed run yet: choose a shape as the reference")
        return int(obs.idx[int(np.argmin(obs.loss))])
    if isinstance(reference, str) and reference.startswith("trial "):
        number = reference.split()[1]
        for rec in campaign.trial_records():
            if str(rec.trial) == number:
                return candidate_index(problem, rec.arch)
        raise InsightError(f"campaign {campaign.name!r} has no trial {number}")
    raise InsightError(f"unknown reference {reference!r}: 'best', 'trial N', an index or an Arch")


def default_reference(campaign: Campaign, draws: ModelDraws) -> int:
    """The reference a comparison starts from: the best observed run's shape, else the pool's
    front-eligible shape with the lowest predicted loss (a candidate index of
    ``draws.problem``)."""
    obs = observations(campaign, draws.problem)
    if len(obs.idx):
        return int(obs.idx[int(np.argmin(obs.loss))])
    return int(draws.indices[int(np.argmin(np.where(draws.eligible, draws.pred_mean, np.inf)))])


def _trial_of(campaign: Campaign, problem: Problem) -> dict[int, tuple[int, str]]:
    out: dict[int, tuple[int, str]] = {}
    for rec in sorted(campaign.trial_records(), key=lambda r: r.trial):
        if rec.status in ("observed", "pending"):
            out[candidate_index(problem, rec.arch)] = (rec.trial, rec.status)
    return out


def relative_table(campaign: Campaign, draws: ModelDraws, reference: int) -> pd.DataFrame:
    """Every pool shape's expected loss and tokens/s relative to candidate ``reference`` (an
    index of ``draws.problem``, in the pool), from the joint draws.

    Returns:
        One row per pool shape, most likely on the front first: ``candidate``, ``label``,
        ``trial``, ``status`` (observed / pending / candidate / reference shape), ``eligible``,
        ``pred_loss_mean``, ``pred_loss_q05``, ``pred_loss_q95`` (a new run, marginal),
        ``delta_mean``, ``delta_q05``, ``delta_q95`` (expected loss minus the reference's),
        ``p_beats`` (P(lower expected loss than the reference)), ``tps_ratio``,
        ``tps_ratio_q05``, ``tps_ratio_q95`` (tokens/s over the reference's), ``p_front``,
        ``pred_tokens_per_s`` and ``is_reference``.
    """
    j = draws.column(reference)
    problem = draws.problem
    delta = draws.loss - draws.loss[:, [j]]
    ratio = draws.tps / draws.tps[:, [j]]
    d_q = np.quantile(delta, (Q05, Q95), axis=0)
    r_q = np.quantile(ratio, (Q05, Q95), axis=0)
    trial_of = _trial_of(campaign, problem)
    status = [
        trial_of.get(int(i), (None, "candidate" if e else "reference shape"))
        for i, e in zip(draws.indices, draws.eligible)
    ]
    table = pd.DataFrame(
        {
            "candidate": draws.indices,
            "label": [problem.candidates[i].label() for i in draws.indices],
            "trial": pd.array([s[0] for s in status], dtype="Int64"),
            "status": [s[1] for s in status],
            "eligible": draws.eligible,
            "pred_loss_mean": draws.pred_mean,
            "pred_loss_q05": draws.pred_q05,
            "pred_loss_q95": draws.pred_q95,
            "delta_mean": delta.mean(0),
            "delta_q05": d_q[0],
            "delta_q95": d_q[1],
            "p_beats": (delta < 0).mean(0),
            "tps_ratio": np.median(ratio, axis=0),
            "tps_ratio_q05": r_q[0],
            "tps_ratio_q95": r_q[1],
            "p_front": draws.p_front,
            "pred_tokens_per_s": problem.throughput_mean[draws.indices],
            "is_reference": np.arange(len(draws.indices)) == j,
        }
    )
    return table.sort_values(
        ["is_reference", "p_front", "delta_mean"], ascending=[False, False, True], kind="stable"
    ).reset_index(drop=True)


def learned_offset(campaign: Campaign, draws: ModelDraws | None = None) -> dict[str, Any]:
    """The offset the runs imply between the law and the campaign's losses (law-prior GP).

    The offset of a joint draw of the law-prior GP is its expected loss minus the law's mean
    prediction, averaged over the front-eligible shapes of the pool: what moves every shape
    alike (the constant-kernel offset, the law draws' common level and the misfit's average).

    Args:
        draws: :func:`model_draws` of the campaign (computed when None).

    Returns:
        ``offset_mean`` and ``offset_sd`` given the runs (0 and the prior sd before any run);
        ``prior_offset_sd`` (before any run); ``marginal_band`` and ``relative_band``: median
        90% band widths, over the pool, of a shape's predicted loss and of its difference to the
        best predicted shape (the second leaves the shared offset out); ``n_runs``.
    """
    from optim.core.strategies import fit_loss_model

    draws = draws or model_draws(campaign)
    problem = draws.problem
    law = law_member(loss_model(campaign, problem))
    shapes = draws.indices[draws.eligible]
    law_mean = problem.law_mean()[shapes]
    offset = (joint_loss_draws(law, shapes, 256) - law_mean).mean(1)  # (S,)
    prior = (joint_loss_draws(fit_loss_model(problem), shapes, 256) - law_mean).mean(1)
    best = int(np.argmin(np.where(draws.eligible, draws.pred_mean, np.inf)))
    delta = draws.loss - draws.loss[:, [best]]
    rel = np.delete(np.quantile(delta, Q95, 0) - np.quantile(delta, Q05, 0), best)
    return {
        "offset_mean": float(offset.mean()),
        "offset_sd": float(offset.std(ddof=1)),
        "prior_offset_sd": float(prior.std(ddof=1)),
        "marginal_band": float(np.median(draws.pred_q95 - draws.pred_q05)),
        "relative_band": float(np.median(rel)) if len(rel) else float("nan"),
        "n_runs": int(len(observations(campaign, problem).idx)),
    }
