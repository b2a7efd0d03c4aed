"""Statistics over seeds: one method's summary, paired differences between two methods, and
the issue's targets per world kind."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from .loop import MethodTrace

__all__ = [
    "summarize_method",
    "paired_vs",
    "TARGET_RATIOS",
    "evaluate_targets",
]


def _t_interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% t-interval ``(mean, lo, hi)`` of ``values`` (``(n,)``)."""
    from scipy import stats

    values = np.asarray(values, float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, mean - half, mean + half


def _median_censored(values: Sequence[int | None]) -> int | None:
    """Median with ``None`` (censored: larger than every measured value) sorting last; None when
    the median itself is censored."""
    finite = sorted(v for v in values if v is not None)
    n = len(values)
    if n == 0:
        return None
    lo, hi = (n - 1) // 2, n // 2
    if hi >= len(finite):
        return None
    return int(round((finite[lo] + finite[hi]) / 2))


def _padded(traces: Sequence[MethodTrace]) -> tuple[np.ndarray, np.ndarray]:
    """Trainings ``(steps,)`` and HV ratios ``seeds x steps`` on the longest trace's axis, each
    seed's last value carried forward after it stopped (it had reached 95% or the cap)."""
    longest = max(traces, key=lambda t: len(t.trainings))
    steps = len(longest.trainings)
    hv = np.array([t.hv_ratio + [t.hv_ratio[-1]] * (steps - len(t.hv_ratio)) for t in traces])
    return np.asarray(longest.trainings), hv


def summarize_method(traces: Sequence[MethodTrace], budget: int) -> dict[str, Any]:
    """Statistics of one method over seeds (JSON-able).

    ``trainings_to_95`` is the median over seeds of each seed's trainings-to-95% (see the
    module docstring); ``final_hv_ratio`` is the mean HV ratio at ``budget`` trainings (the
    common budget, even when a method ran longer).
    """
    trainings, hv = _padded(traces)
    at_budget = int(np.searchsorted(trainings, budget, side="right")) - 1
    per_seed = [t.trainings_to_95 for t in traces]
    reached = [v for v in per_seed if v is not None]
    mean_b, lo_b, hi_b = _t_interval(hv[:, at_budget])
    seconds = [s for t in traces for s in t.propose_seconds]
    weights = [w for t in traces for w in t.prior_weight if math.isfinite(w)]
    regrets = np.array([t.regret for t in traces])
    r_mean, r_lo, _ = _t_interval(regrets)
    curve_mean = hv.mean(0)
    curve_half = np.array(
        [(_t_interval(hv[:, j])[2] - _t_interval(hv[:, j])[1]) / 2 for j in range(hv.shape[1])]
    )
    return {
        "trainings_to_95": _median_censored(per_seed),
        "trainings_to_95_per_seed": per_seed,
        "seeds_reaching_95": len(reached),
        "censored_at": [int(t.trainings[-1]) for t in traces if t.trainings_to_95 is None],
        "final_hv_ratio": float(mean_b),
        "final_hv_ratio_ci95": [float(lo_b), float(hi_b)],
        "propose_seconds": float(np.mean(seconds)) if seconds else 0.0,
        "propose_seconds_max": float(np.max(seconds)) if seconds else 0.0,
        "prior_weight_mean": float(np.mean(weights)) if weights else None,
        "regret": float(r_mean),
        "regret_ci95_half": float(r_mean - r_lo),
        "target_miss_rate": float(np.mean([t.missed for t in traces])),
        "regret_when_hit": (
            float(np.mean([t.regret for t in traces if not t.missed]))
            if any(not t.missed for t in traces)
            else None
        ),
        "empty_slots_per_seed": float(np.mean([t.shortfall for t in traces])),
        "trainings": trainings.tolist(),
        "hv_ratio_mean": curve_mean.tolist(),
        "hv_ratio_ci95_half": curve_half.tolist(),
        "hv_ratio_per_seed": [t.hv_ratio for t in traces],
        "trainings_per_seed": [t.trainings for t in traces],
        "prior_weight_per_seed": [t.prior_weight for t in traces],
    }


def paired_vs(a: Sequence[MethodTrace], b: Sequence[MethodTrace], budget: int) -> dict[str, Any]:
    """Paired differences ``a - b`` over seeds (same worlds, initial runs and noise).

    Returns:
        ``hv_diff_mean`` and ``hv_diff_ci95`` ``[lo, hi]`` (HV ratio at ``budget``);
        ``trainings_to_95_ratio`` (``a``'s median trainings-to-95% over ``b``'s, None when either
        is censored); ``trainings_to_95_diff_mean`` / ``_ci95`` over the seeds where both
        reached 95% (``n_both_reached`` of them); per-step ``hv_diff_curve`` (mean, CI) up to
        the shorter padded axis.
    """
    ta, hva = _padded(a)
    tb, hvb = _padded(b)
    ia = int(np.searchsorted(ta, budget, side="right")) - 1
    ib = int(np.searchsorted(tb, budget, side="right")) - 1
    mean, lo, hi = _t_interval(hva[:, ia] - hvb[:, ib])
    ma = _median_censored([t.trainings_to_95 for t in a])
    mb = _median_censored([t.trainings_to_95 for t in b])
    both = [
        (x.trainings_to_95, y.trainings_to_95)
        for x, y in zip(a, b)
        if x.trainings_to_95 is not None and y.trainings_to_95 is not None
    ]
    d_mean: float | None = None  # stays None when no paired seed reached 95%
    d_lo: float | None = None
    d_hi: float | None = None
    if both:
        d_mean, d_lo, d_hi = _t_interval(np.array([x - y for x, y in both], float))
    steps = min(len(ta), len(tb))
    diff = hva[:, :steps] - hvb[:, :steps]
    curve = [_t_interval(diff[:, j]) for j in range(steps)]
    return {
        "hv_diff_mean": float(mean),
        "hv_diff_ci95": [float(lo), float(hi)],
        "trainings_to_95_ratio": (None if ma is None or mb is None or mb == 0 else float(ma / mb)),
        "trainings_to_95_diff_mean": d_mean,
        "trainings_to_95_diff_ci95": None if d_mean is None else [d_lo, d_hi],
        "n_both_reached": len(both),
        "a_reached_only": sum(
            x.trainings_to_95 is not None and y.trainings_to_95 is None for x, y in zip(a, b)
        ),
        "b_reached_only": sum(
            x.trainings_to_95 is None and y.trainings_to_95 is not None for x, y in zip(a, b)
        ),
        "hv_diff_curve": {
            "trainings": ta[:steps].tolist(),
            "mean": [c[0] for c in curve],
            "ci95": [[c[1], c[2]] for c in curve],
        },
    }


#: The issue's targets per world kind: (other method, factor) pairs archopt's
#: trainings-to-95% must meet (``mine <= factor * theirs``).
TARGET_RATIOS: dict[str, tuple[tuple[str, float], ...]] = {
    "held_out_source": (("plain_qnehvi", 0.75),),
    "real_shapes": (("plain_qnehvi", 0.75),),
    "shifted": (("plain_qnehvi", 1.0),),
    "matched": (("plain_qnehvi", 0.5), ("random", 1 / 3)),
}


def evaluate_targets(
    kind: str, methods: Mapping[str, Mapping[str, Any]], paired: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The issue's targets for world ``kind``, each ``{"met": bool | None, "detail": str}``
    (``None``: the data cannot decide, e.g. both medians censored)."""
    out: dict[str, Any] = {}
    mine = methods.get("archopt", {}).get("trainings_to_95")
    for other, factor in dict.fromkeys(TARGET_RATIOS.get(kind, ()) + (("plain_qnehvi", 1.0),)):
        key = f"trainings_to_95_vs_{other}_x{factor:.2g}"
        if "archopt" not in methods or other not in methods:
            out[key] = {"met": None, "detail": f"archopt or {other} not run"}
            continue
        theirs = methods[other]["trainings_to_95"]
        if mine is None and theirs is None:
            out[key] = {"met": None, "detail": "neither reached 95% in more than half the seeds"}
        elif mine is None:
            out[key] = {"met": False, "detail": f"archopt's median is censored; {other} {theirs}"}
        elif theirs is None:
            out[key] = {"met": True, "detail": f"archopt {mine}; {other}'s median is censored"}
        else:
            out[key] = {
                "met": mine <= factor * theirs + 1e-9,
                "detail": f"archopt {mine} vs {other} {theirs} (ratio "
                f"{mine / theirs:.2f}, target <= {factor:.2f})",
            }
    if paired is not None:
        lo, hi = paired["hv_diff_ci95"]
        out["hv_diff_ci_upper_ge_0"] = {
            "met": hi >= 0.0,
            "detail": f"archopt - plain qNEHVI HV at the budget: {paired['hv_diff_mean']:+.3f} "
            f"[{lo:+.3f}, {hi:+.3f}]",
        }
    return out
