"""What a campaign's own model says about the next training run: relative predictions, why a
proposal was made, hypervolume over trials and the model's checks. The app's "Next run" and
"Model" pages only call these functions.

Everything here reads a loaded :class:`~optim.campaign.campaign.Campaign` (a snapshot) and its
loss model -- the one behind :meth:`Campaign.candidate_loss` (:func:`loss_model`: the law-prior
GP and the prior-free GP weighted by :func:`optim.core.weighting.fit_weighted_model`) -- and
never writes the store.

**Joint draws and the shared offset.** Every shape of a campaign shares one unknown offset
between the law's data and the campaign's runs (and the law's common level): before any run it
is ~0.1 loss, against shape-to-shape differences of hundredths, so each shape's marginal 90% band
is dominated by what all shapes share and ranks nothing. :func:`model_draws` draws the noise-free
expected loss of a *pool* of candidates jointly from the model's posterior (one Cholesky per
mixture member), paired with the problem's joint throughput draws; a difference between two
shapes in one draw carries only what differs between them (:func:`relative_table`).

The pool is every trial's shape, the given extra shapes, and the ``pool_size`` front-eligible
candidates closest (in predicted loss) to the predicted front at their throughput; P(on the
front) is computed among the front-eligible members of the pool (a candidate left out of it is
further from the front than all of those, and counted as never on it).

Objective space, as in acquisition (:mod:`optim.core.acquisition`): ``(-loss, log tokens/s)``,
with the campaign's reference point (:meth:`Problem.reference_point` at the current predicted
means, what ``archopt status`` reports).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd
import torch

from models.arch import Arch
from models.errors import ArchoptError
from optim.core.bands import Q05, Q95

if TYPE_CHECKING:
    from optim.core.problem import Problem

    from .campaign import Campaign

__all__ = [
    "InsightError",
    "KNOBS",
    "Observations",
    "observations",
    "loss_model",
    "joint_loss_draws",
    "ModelDraws",
    "model_draws",
    "relative_table",
    "reference_index",
    "default_reference",
    "non_dominated",
    "learned_offset",
    "why_proposal",
    "hypervolume",
    "batch_hypervolume",
    "hypervolume_history",
    "loo_check",
    "sensitivity",
    "correlation_ratio",
    "model_slices",
    "parallel_coordinates",
    "throughput_domain",
    "calibration_verdict",
    "prior_coverage",
    "DEFAULT_POOL",
    "DEFAULT_DRAWS",
]

#: The knobs of the sensitivity, slice and parallel-coordinates views: ``(column, title)``;
#: ``mlp_attn_ratio`` is ``r`` (MLP / attention parameters per block).
KNOBS: tuple[tuple[str, str], ...] = (
    ("d_model", "d_model"),
    ("n_layers", "n_layers"),
    ("n_heads", "heads"),
    ("gqa_group", "GQA group"),
    ("mlp_attn_ratio", "r"),
)
#: Front-eligible candidates kept in the pool of joint draws (:func:`model_draws`).
DEFAULT_POOL = 600
#: Joint draws (a multiple of the problem's 64 throughput draws).
DEFAULT_DRAWS = 512
#: Knobs with more distinct values than this are grouped into this many quantile bins
#: (sensitivity); slices keep up to :data:`SLICE_LEVELS` points.
MAX_LEVELS = 12
SLICE_LEVELS = 40
#: Distance a slice point pays for another GQA group or head_dim than the centre's.
SLICE_MISMATCH = 10.0


class InsightError(ArchoptError):
    """A view the campaign cannot give (no law prior, no observed run, unknown trial...)."""


# ---- the campaign's observations and model ----------------------------------------------------
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


def _index(problem: Problem, arch: Arch) -> int:
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
        i = _index(problem, rec.arch)
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


def _components(model: Any) -> list[tuple[float, Any, float]]:
    """``(weight, member, noise_var)`` of a weighted model's members, or of one law GP."""
    from surrogate.gp import LawPriorGP

    if isinstance(model, LawPriorGP):
        return [(1.0, model, float(model.hyper.noise_var))]
    return [
        (float(w), member, float(nv))
        for (_, member), w, nv in zip(model.members, model.weights, model.noise_vars)
    ]


def _law_member(model: Any) -> Any:
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
    comps = _components(model)
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


# ---- joint draws over a pool ------------------------------------------------------------------
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
    extra_idx = [_index(problem, a) for a in extra_archs]
    must = np.concatenate([obs.idx, obs.pending_idx, np.asarray(extra_idx, dtype=np.int64)])
    pool = np.array(
        list(dict.fromkeys(np.concatenate([must, np.sort(keep)]).tolist())), dtype=np.int64
    )
    loss = joint_loss_draws(model, pool, n_draws, seed=seed)
    rng = np.random.default_rng([int(seed), 1])
    noise_sd = math.sqrt(sum(w * nv for w, _, nv in _components(model)))
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
        return _index(problem, reference)
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
                return _index(problem, rec.arch)
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
            out[_index(problem, rec.arch)] = (rec.trial, rec.status)
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
    law = _law_member(loss_model(campaign, problem))
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


# ---- hypervolume -------------------------------------------------------------------------------
def hypervolume(loss: np.ndarray, tps: np.ndarray, ref_point: tuple[float, float]) -> float:
    """BoTorch's hypervolume of points ``(loss, tokens/s)`` (``(k,)`` each) in the objective
    space ``(-loss, log tokens/s)`` above ``ref_point`` = ``(loss, tokens/s)``; 0 for none."""
    from botorch.utils.multi_objective import is_non_dominated
    from botorch.utils.multi_objective.hypervolume import Hypervolume

    loss = np.asarray(loss, dtype=np.float64).reshape(-1)
    if not len(loss):
        return 0.0
    Y = torch.as_tensor(np.stack([-loss, np.log(np.asarray(tps, dtype=np.float64))], -1))
    ref = torch.tensor([-ref_point[0], math.log(ref_point[1])], dtype=torch.float64)
    return float(Hypervolume(ref).compute(Y[is_non_dominated(Y)]))


def batch_hypervolume(
    loss: np.ndarray, tps: np.ndarray, ref_point: tuple[float, float]
) -> np.ndarray:
    """Hypervolume of ``S`` sets of ``k`` points at once (BoTorch's batched box decomposition):
    ``loss``, ``tps`` are ``S x k``; returns ``(S,)`` (zeros for ``k = 0``)."""
    from botorch.utils.multi_objective.box_decompositions.dominated import DominatedPartitioning

    loss = np.asarray(loss, dtype=np.float64)
    if loss.ndim != 2 or loss.shape[1] == 0:
        return np.zeros(loss.shape[0] if loss.ndim else 0)
    Y = torch.as_tensor(np.stack([-loss, np.log(np.asarray(tps, dtype=np.float64))], -1))
    ref = torch.tensor([-ref_point[0], math.log(ref_point[1])], dtype=torch.float64)
    return DominatedPartitioning(ref_point=ref, Y=Y).compute_hypervolume().numpy()


def _reference_point(campaign: Campaign) -> tuple[float, float]:
    ref = campaign.problem.reference_point(campaign.candidate_loss()[0])
    return float(ref[0]), float(ref[1])


def hypervolume_history(campaign: Campaign) -> dict[str, Any]:
    """Hypervolume of the observed runs as trials complete (trial order), against the
    predicted front's.

    Returns:
        ``history``: one row per observed trial (``n_observed``, ``trial``, ``label``,
        ``observed_loss``, ``tokens_per_s``, ``hypervolume`` of the runs up to it,
        ``improved``); ``ref_point``; ``predicted_front_hypervolume`` (the model's predicted
        Pareto set at its mean losses, observed shapes at their results: what is left to gain).
    """
    problem = campaign.problem
    obs = observations(campaign)
    ref = _reference_point(campaign)
    tps = problem.throughput_mean
    rows, last = [], 0.0
    for n in range(1, len(obs.idx) + 1):
        hv = hypervolume(obs.loss[:n], tps[obs.idx[:n]], ref)
        i = int(obs.idx[n - 1])
        rows.append(
            {
                "n_observed": n,
                "trial": int(obs.trials[n - 1]),
                "label": problem.candidates[i].label(),
                "observed_loss": float(obs.loss[n - 1]),
                "tokens_per_s": float(tps[i]),
                "hypervolume": hv,
                "improved": hv > last + 1e-12,
            }
        )
        last = hv
    front = campaign.pareto()
    pred_hv = (
        hypervolume(
            np.array(
                [
                    r["observed_loss"] if r["observed_loss"] is not None else r["pred_loss_mean"]
                    for r in front
                ]
            ),
            np.array([r["pred_tokens_per_s"] for r in front]),
            ref,
        )
        if front
        else 0.0
    )
    columns = [
        "n_observed",
        "trial",
        "label",
        "observed_loss",
        "tokens_per_s",
        "hypervolume",
        "improved",
    ]
    return {
        "history": pd.DataFrame(rows, columns=columns),
        "ref_point": ref,
        "predicted_front_hypervolume": pred_hv,
    }


# ---- why this proposal --------------------------------------------------------------------------
def _band(values: np.ndarray) -> tuple[float, float, float]:
    return float(np.mean(values)), float(np.quantile(values, Q05)), float(np.quantile(values, Q95))


def why_proposal(campaign: Campaign, trial: int, draws: ModelDraws | None = None) -> dict[str, Any]:
    """Why trial ``trial`` was proposed, in numbers and in words.

    Args:
        draws: :func:`model_draws` of the campaign (computed when None).

    Returns:
        ``trial``, ``label``, ``status``, ``strategy`` (that proposed it; None when attached),
        ``ehvi`` (at proposal, with the reference point of
        then; None for an attached trial), ``ehvi_now`` (the hypervolume a run of it is expected
        to add to the observed runs', now: joint draws, run noise included),
        ``batch_position`` / ``batch_size`` (its place in the batch it was proposed with; each
        proposal's EHVI counts the ones before it as pending), ``observed_hypervolume`` and
        ``predicted_front_hypervolume`` (for scale), ``p_improves_front`` (P(a run of it is
        not dominated by the observed runs), None before any run), ``p_on_front`` (P(on the
        predicted front)), ``best`` (what it is compared with: the best observed run, else the
        best predicted candidate), ``delta_loss`` and ``tps_ratio`` (mean / q05 / q95 against
        it, joint draws) with ``p_lower_loss``, and ``summary`` (the same in words).
    """
    records = {r.trial: r for r in campaign.trial_records()}
    if trial not in records:
        known = ", ".join(str(t) for t in sorted(records)) or "none"
        raise InsightError(f"campaign {campaign.name!r} has no trial {trial} (trials: {known})")
    rec = records[trial]
    draws = draws or model_draws(campaign)
    problem = draws.problem
    i = _index(problem, rec.arch)
    j = draws.column(i)
    obs = observations(campaign, problem)
    proposal = rec.meta.get("proposal") or {}
    ehvi = proposal.get("ehvi")
    created = rec.meta.get("created_at")
    batch = sorted(
        t for t, r in records.items() if created is not None and r.meta.get("created_at") == created
    ) or [trial]
    hist = hypervolume_history(campaign)
    ref = hist["ref_point"]
    others = obs.trials != trial  # an observed trial is compared with the other runs
    front_loss = np.broadcast_to(obs.loss[others], (draws.loss.shape[0], int(others.sum())))
    front_tps = draws.tps[:, [draws.column(k) for k in obs.idx[others]]]  # (S, k)
    if others.any():
        dominated = (
            (front_loss <= draws.run_loss[:, j : j + 1]) & (front_tps >= draws.tps[:, j : j + 1])
        ).any(1)
        p_improves = float(1.0 - dominated.mean())
    else:
        p_improves = None
    # EHVI now: the expected hypervolume a run of it adds to the observed runs' (joint draws).
    before = batch_hypervolume(front_loss, front_tps, ref)
    after = batch_hypervolume(
        np.concatenate([front_loss, draws.run_loss[:, j : j + 1]], 1),
        np.concatenate([front_tps, draws.tps[:, j : j + 1]], 1),
        ref,
    )
    observed_hv = float(hist["history"]["hypervolume"].iloc[-1]) if len(hist["history"]) else 0.0
    b = default_reference(campaign, draws)
    kb = draws.column(b)
    if len(obs.idx):
        best = {
            "kind": "best observed run",
            "candidate": b,
            "label": problem.candidates[b].label(),
            "trial": int(obs.trials[int(np.argmin(obs.loss))]),
            "loss": float(obs.loss.min()),
        }
    else:
        best = {
            "kind": "best predicted candidate",
            "candidate": b,
            "label": problem.candidates[b].label(),
            "trial": None,
            "loss": float(draws.pred_mean[kb]),
        }
    delta = draws.loss[:, j] - draws.loss[:, kb]
    ratio = draws.tps[:, j] / draws.tps[:, kb]
    out = {
        "trial": int(trial),
        "label": rec.arch.label(),
        "status": rec.status,
        "strategy": proposal.get("strategy"),
        "ehvi": None if ehvi is None else float(ehvi),
        "ehvi_now": float(np.mean(after - before)),
        "batch_position": batch.index(trial) + 1,
        "batch_size": len(batch),
        "observed_hypervolume": observed_hv,
        "predicted_front_hypervolume": float(hist["predicted_front_hypervolume"]),
        "ref_point": hist["ref_point"],
        "p_improves_front": p_improves,
        "p_on_front": float(draws.on_front[:, j].mean()),
        "best": best,
        "same_as_best": b == i,
        "delta_loss": _band(delta),
        "p_lower_loss": float((delta < 0).mean()),
        "tps_ratio": (
            float(np.median(ratio)),
            float(np.quantile(ratio, Q05)),
            float(np.quantile(ratio, Q95)),
        ),
    }
    out["summary"] = _why_words(out)
    return out


def _why_words(w: dict[str, Any]) -> str:
    """The :func:`why_proposal` numbers as a few sentences (markdown)."""
    ref_loss, ref_tps = w["ref_point"]
    parts = []
    hv = w["observed_hypervolume"]
    now = (
        f"expected to add **{w['ehvi_now']:.3g}** to the hypervolume the observed runs "
        + (
            f"dominate ({hv:.3g}, so +{w['ehvi_now'] / hv:.0%})"
            if hv > 0
            else "dominate (nothing yet)"
        )
        + f" in (lower loss, higher log tokens/s) above the reference point (loss "
        f"{ref_loss:.3f}, {ref_tps:,.0f} tokens/s); the predicted front dominates "
        f"{w['predicted_front_hypervolume']:.3g}."
    )
    if w["ehvi"] is None:
        how = (
            f"was proposed by the {w['strategy']} strategy, which computes no EHVI"
            if w["strategy"]
            else "was attached, not proposed"
        )
        parts.append(f"**Trial {w['trial']}** ({w['label']}) {how}. A run of it is {now}")
    else:
        parts.append(
            f"**Why trial {w['trial']}** ({w['label']}, #{w['batch_position']} of "
            f"{w['batch_size']} in its batch): it had the highest expected hypervolume "
            f"improvement (EHVI {w['ehvi']:.3g}) among the shapes left when it was proposed, "
            f"each proposal counting the ones before it as pending. Now, given every result "
            f"since, a run of it is {now}"
        )
    if w["p_improves_front"] is None:
        parts.append(
            f"No run is observed yet, so any result starts the front; P(on the "
            f"predicted front) = **{w['p_on_front']:.0%}**."
        )
    else:
        parts.append(
            f"P(a run of it improves the observed front) = **{w['p_improves_front']:.0%}**;"
            f" P(on the predicted front) = **{w['p_on_front']:.0%}**."
        )
    best = w["best"]
    if w["same_as_best"]:
        parts.append(f"It is the {best['kind']}.")
    else:
        m, lo, hi = w["delta_loss"]
        r, rlo, rhi = w["tps_ratio"]
        name = (
            f"the best observed run (trial {best['trial']}, loss {best['loss']:.4f})"
            if best["trial"] is not None
            else f"the best predicted candidate {best['label']}"
        )
        parts.append(
            f"Against {name}: expected loss **{m:+.4f}** [{lo:+.4f}, {hi:+.4f}] "
            f"(P(lower) = {w['p_lower_loss']:.0%}), tokens/s **{r - 1:+.1%}** "
            f"[{rlo - 1:+.1%}, {rhi - 1:+.1%}] (90% bands from joint draws: the "
            f"offset both share cancels)."
        )
    return " ".join(parts)


# ---- model checks ------------------------------------------------------------------------------
def loo_check(campaign: Campaign) -> pd.DataFrame:
    """Leave-one-out modelled-vs-observed on the campaign's runs (Ax's cross-validation plot):
    the model refitted without each run (hyper-parameters and the prior's weight included)
    predicts it.

    Returns:
        One row per observed run (trial order): ``trial``, ``label``, ``observed``,
        ``pred_mean``, ``pred_q05``, ``pred_q95`` (a new run's 90% band), ``outside`` (the
        result falls outside it), ``z`` (the error over the band's half-width times 1.645).
    """
    from optim.core.weighting import fit_weighted_model

    problem = campaign.problem
    if problem.law_samples is None:
        raise InsightError(f"campaign {campaign.name!r} has no scaling-law prior")
    obs = observations(campaign)
    rows = []
    for j in range(len(obs.idx)):
        rest = np.arange(len(obs.idx)) != j
        model = fit_weighted_model(problem, obs.idx[rest], obs.loss[rest])
        mean, q = model.predictive(obs.idx[j : j + 1], (Q05, Q95))
        y, lo, hi = float(obs.loss[j]), float(q[0][0]), float(q[1][0])
        half = max((hi - lo) / 2, 1e-12)
        rows.append(
            {
                "trial": int(obs.trials[j]),
                "label": problem.candidates[obs.idx[j]].label(),
                "observed": y,
                "pred_mean": float(mean[0]),
                "pred_q05": lo,
                "pred_q95": hi,
                "outside": bool(y < lo or y > hi),
                "z": float((y - float(mean[0])) / half * 1.6448536),
            }
        )
    return pd.DataFrame(
        rows,
        columns=["trial", "label", "observed", "pred_mean", "pred_q05", "pred_q95", "outside", "z"],
    )


def calibration_verdict(
    n: int, inside50: int, inside90: int, *, alpha: float = 0.01
) -> dict[str, Any]:
    """Whether 50% / 90% bands holding ``inside50`` / ``inside90`` of ``n`` results are off:
    a two-sided exact binomial test of each coverage against its nominal level at ``alpha``.

    Returns:
        ``n``, ``cov50``, ``cov90``, ``p50``, ``p90`` (p-values), ``off`` and ``message``.
    """
    from scipy.stats import binomtest

    if n <= 0:
        return {
            "n": 0,
            "cov50": None,
            "cov90": None,
            "p50": None,
            "p90": None,
            "off": False,
            "message": "no results to check the bands against",
        }
    p50 = float(binomtest(int(inside50), int(n), 0.5).pvalue)
    p90 = float(binomtest(int(inside90), int(n), 0.9).pvalue)
    cov50, cov90 = inside50 / n, inside90 / n
    off = p50 < alpha or p90 < alpha
    if off:
        message = (
            f"The bands are miscalibrated: the 90% band holds {cov90:.0%} and the 50% "
            f"band {cov50:.0%} of {n} results (binomial p = {p90:.2g} and {p50:.2g}); "
            + (
                "predictions are more uncertain than the bands say."
                if cov90 < 0.9
                else "the bands are wider than the spread of the results."
            )
        )
    else:
        message = (
            f"The 90% band holds {cov90:.0%} and the 50% band {cov50:.0%} of {n} "
            "results: consistent with their nominal levels."
        )
    return {
        "n": int(n),
        "cov50": cov50,
        "cov90": cov90,
        "p50": p50,
        "p90": p90,
        "off": off,
        "message": message,
    }


def prior_coverage(campaign: Campaign) -> dict[str, Any]:
    """How well the campaign's law prior covers the bundled runs of its source: the runs'
    posterior-predictive 50% / 90% bands (in-sample where the prior was fitted on them) and
    :func:`calibration_verdict`; ``source``; ``n = 0`` when the bundled tables have no run of
    that source."""
    from surrogate.runs import bundled_runs, source_keys
    from surrogate.slices import BAND_QUANTILES, band_coverage

    prior = campaign.prior
    source = campaign.spec.source or prior.reference_source
    runs = bundled_runs()
    runs = runs[source_keys(runs) == source]
    if runs.empty:
        return {"source": source, **calibration_verdict(0, 0, 0)}
    pred = prior.predict(runs, source=source, quantiles=BAND_QUANTILES)
    table = runs.reset_index(drop=True).join(pred.reset_index(drop=True))
    cov = band_coverage(table)
    n = len(table)
    return {
        "source": source,
        **calibration_verdict(n, round(cov["cov50"] * n), round(cov["cov90"] * n)),
    }


def throughput_domain(campaign: Campaign) -> dict[str, Any]:
    """The throughput calibration in force for the campaign against its workload.

    Returns:
        ``pair`` (hardware/backend), ``calibrated``, ``n_points``, ``source``,
        ``calibrated_workloads`` (what it was fitted at), ``campaign_workload``, ``covers``
        (no caveat applies) and ``warnings`` (:attr:`Problem.throughput_warnings`).
    """
    from models.calibration import load_calibration

    spec = campaign.spec
    cal = load_calibration(spec.hardware, spec.workload.backend)
    warnings = list(campaign.problem.throughput_warnings)
    return {
        "pair": f"{cal.hardware_id}/{cal.backend}",
        "calibrated": cal.calibrated,
        "n_points": cal.n_points,
        "source": cal.source,
        "calibrated_workloads": list(cal.workloads),
        "campaign_workload": str(spec.workload),
        "covers": not warnings,
        "warnings": warnings,
    }


# ---- the model across the knobs -----------------------------------------------------------------
def _knob_table(problem: Problem, indices: np.ndarray) -> pd.DataFrame:
    rows = []
    for i in indices:
        a = problem.candidates[i]
        rows.append(
            {
                "d_model": a.d_model,
                "n_layers": a.n_layers,
                "n_heads": a.n_heads,
                "gqa_group": a.gqa_group,
                "mlp_attn_ratio": a.mlp_attn_ratio,
            }
        )
    return pd.DataFrame(rows, index=np.asarray(indices))


def _levels(values: pd.Series, max_levels: int = MAX_LEVELS) -> pd.Series:
    """Group labels of a knob: its values, or ``max_levels`` quantile bins when it has more."""
    if values.nunique() <= max_levels:
        return values
    return pd.Series(
        pd.qcut(values, max_levels, labels=False, duplicates="drop"), index=values.index
    )


def correlation_ratio(groups: np.ndarray, y: np.ndarray) -> float:
    """``Var(E[y | group]) / Var(y)`` over the samples (0 for a constant ``y``): the share of
    ``y``'s variance the grouping explains alone (a first-order Sobol index when the samples are
    the input distribution)."""
    y = np.asarray(y, dtype=np.float64)
    total = float(np.var(y))
    if total <= 0:
        return 0.0
    means = pd.Series(y).groupby(np.asarray(groups)).transform("mean").to_numpy()
    return float(np.var(means) / total)


def sensitivity(campaign: Campaign) -> pd.DataFrame:
    """How much each knob moves the campaign model's predicted loss and the tokens/s, over the
    proposable candidates (which hold the budget, so knobs are not independent: a first-order
    Sobol index estimated on the candidate set itself).

    Returns:
        One row per knob of :data:`KNOBS`: ``knob``, ``title``, ``levels``, ``loss_share``
        (Var(E[loss | knob]) / Var(loss): the correlation ratio), ``loss_range`` (max - min of
        the mean predicted loss per level), ``loss_rho`` (Spearman of knob and loss: the
        direction), ``tps_share``, ``tps_range`` (max / min of the geometric-mean tokens/s per
        level, minus 1) and ``tps_rho``.
    """
    from scipy.stats import spearmanr

    problem = campaign.problem
    ok = np.flatnonzero(problem.proposable)
    mean = campaign.candidate_loss()[0][ok]
    log_tps = problem.log_throughput[ok]
    knobs = _knob_table(problem, ok)
    rows = []
    for name, title in KNOBS:
        levels = _levels(knobs[name])
        row: dict[str, Any] = {"knob": name, "title": title, "levels": int(knobs[name].nunique())}
        for prefix, y in (("loss", mean), ("tps", log_tps)):
            row[f"{prefix}_share"] = correlation_ratio(levels.to_numpy(), y)
            per_level = pd.Series(y).groupby(levels.to_numpy()).mean()
            spread = float(per_level.max() - per_level.min())
            row[f"{prefix}_range"] = spread if prefix == "loss" else math.expm1(spread)
            rho = (
                spearmanr(knobs[name].to_numpy(), y).statistic if knobs[name].nunique() > 1 else 0.0
            )
            row[f"{prefix}_rho"] = float(rho) if np.isfinite(rho) else 0.0
        rows.append(row)
    return pd.DataFrame(rows)


def _default_centre(campaign: Campaign) -> int:
    """The best observed run's shape, else the best predicted proposable candidate."""
    obs = observations(campaign)
    if len(obs.idx):
        return int(obs.idx[int(np.argmin(obs.loss))])
    mean = campaign.candidate_loss()[0]
    return int(np.argmin(np.where(campaign.problem.proposable, mean, np.inf)))


def model_slices(campaign: Campaign, centre: int | None = None) -> pd.DataFrame:
    """Slices of the campaign's model through one shape: along each knob, the candidate nearest
    the centre in the other knobs (log scale, each over its range; the centre's GQA group and,
    except along heads, its head_dim held where a shape has them), for every level of the knob.

    Args:
        centre: a candidate index (default: the best observed run's shape, else the best
            predicted candidate).

    Returns:
        ``knob``, ``title``, ``x`` (the knob's value at that candidate), ``candidate``,
        ``label``, ``pred_loss_mean``, ``pred_loss_q05``, ``pred_loss_q95``,
        ``pred_tokens_per_s``, ``tokens_per_s_q05``, ``tokens_per_s_q95``, ``is_centre``.
    """
    problem = campaign.problem
    centre = _default_centre(campaign) if centre is None else int(centre)
    if not 0 <= centre < problem.n:
        raise InsightError(f"candidate {centre} is out of range [0, {problem.n})")
    mean, q05, q95 = campaign.candidate_loss()
    ok = np.flatnonzero(problem.proposable)
    pool = np.array(sorted(set(ok.tolist()) | {centre}), dtype=np.int64)
    knobs = _knob_table(problem, pool)
    logs = np.log(knobs.astype(float))
    span = (logs.max() - logs.min()).replace(0, 1.0)
    scaled = (logs - logs.loc[centre]) / span
    head_dim = pd.Series([problem.candidates[i].head_dim for i in pool], index=pool)
    # What a knob's slice holds exactly where it can (as build_arch does): the GQA group and,
    # except along heads, head_dim; a mismatch costs more than any distance in the knobs.
    held = {
        "gqa_group": (knobs["gqa_group"] != knobs.loc[centre, "gqa_group"]).astype(float),
        "head_dim": (head_dim != head_dim.loc[centre]).astype(float),
    }
    rows = []
    for name, title in KNOBS:
        others = [n for n, _ in KNOBS if n != name]
        dist = (scaled[others] ** 2).sum(axis=1)
        for what, mismatch in held.items():
            if what != name and not (what == "head_dim" and name == "n_heads"):
                dist = dist + SLICE_MISMATCH * mismatch
        levels = _levels(knobs[name], SLICE_LEVELS)
        picked: list[int] = []
        for _, members in dist.groupby(levels.to_numpy()):
            i = int(members.idxmin()) if centre not in members.index else centre
            if i in picked:
                continue
            picked.append(i)
            rows.append(
                {
                    "knob": name,
                    "title": title,
                    "x": float(knobs.loc[i, name]),
                    "candidate": i,
                    "label": problem.candidates[i].label(),
                    "pred_loss_mean": float(mean[i]),
                    "pred_loss_q05": float(q05[i]),
                    "pred_loss_q95": float(q95[i]),
                    "pred_tokens_per_s": float(problem.throughput_mean[i]),
                    "tokens_per_s_q05": float(problem.throughput_q05[i]),
                    "tokens_per_s_q95": float(problem.throughput_q95[i]),
                    "is_centre": i == centre,
                }
            )
    out = pd.DataFrame(rows)
    return out.sort_values(["knob", "x"], kind="stable").reset_index(drop=True)


def parallel_coordinates(campaign: Campaign) -> pd.DataFrame:
    """Trials and the predicted front on the knobs, for a parallel-coordinates plot.

    Returns:
        One row per trial (observed or pending) and per front shape: ``group``
        (``"observed"``, ``"pending"``, ``"front"``), ``label``, ``trial``, the :data:`KNOBS`
        columns, ``loss`` (the observed loss, else the current predicted mean) and
        ``tokens_per_s``.
    """
    problem = campaign.problem
    mean = campaign.candidate_loss()[0]
    rows = []
    for rec in sorted(campaign.trial_records(), key=lambda r: r.trial):
        if rec.status not in ("observed", "pending"):
            continue
        i = _index(problem, rec.arch)
        loss = rec.loss if rec.status == "observed" and rec.loss is not None else mean[i]
        rows.append(
            {
                "group": rec.status,
                "label": rec.arch.label(),
                "trial": rec.trial,
                "index": i,
                "loss": float(loss),
            }
        )
    for r in campaign.pareto():
        arch = Arch.from_mapping(r)
        loss = r["observed_loss"] if r["observed_loss"] is not None else r["pred_loss_mean"]
        rows.append(
            {
                "group": "front",
                "label": arch.label(),
                "trial": r["trial"],
                "index": _index(problem, arch),
                "loss": float(loss),
            }
        )
    columns = ["group", "label", "trial", *[n for n, _ in KNOBS], "loss", "tokens_per_s"]
    if not rows:
        return pd.DataFrame(columns=columns)
    table = pd.DataFrame(rows)
    knobs = _knob_table(problem, table["index"].to_numpy()).reset_index(drop=True)
    table = pd.concat([table.reset_index(drop=True), knobs], axis=1)
    table["tokens_per_s"] = problem.throughput_mean[table["index"].to_numpy()]
    return table[columns]
