"""Why a trial was proposed: its EHVI then and now, P(improves the front), and how it compares
with the best run, in numbers and in words."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from optim.core.bands import Q05, Q95

from .hypervolume import batch_hypervolume, hypervolume_history
from .model import InsightError, candidate_index, observations
from .relative import ModelDraws, default_reference, model_draws

if TYPE_CHECKING:
    from optim.campaign.campaign import Campaign

__all__ = [
    "why_proposal",
]


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
    i = candidate_index(problem, rec.arch)
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
