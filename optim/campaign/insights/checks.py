"""The model's checks: leave-one-out on the campaign's runs, calibration of bands against
results, the prior's coverage of its source's runs and the throughput calibration's domain."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from optim.core.bands import Q05, Q95, Z90

from .model import InsightError, observations

if TYPE_CHECKING:
    from optim.campaign.campaign import Campaign

__all__ = [
    "loo_check",
    "calibration_verdict",
    "prior_coverage",
    "throughput_domain",
]


def loo_check(campaign: Campaign) -> pd.DataFrame:
    """Leave-one-out modelled-vs-observed on the campaign's runs (Ax's cross-validation plot):
    the model refitted without each run (hyper-parameters and the prior's weight included)
    predicts it.

    Returns:
        One row per observed run (trial order): ``trial``, ``label``, ``observed``,
        ``pred_mean``, ``pred_q05``, ``pred_q95`` (a new run's 90% band), ``outside`` (the
        result falls outside it), ``z`` (the error over the band's half-width times
        :data:`~optim.core.bands.Z90`, 1.645).
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
                "z": float((y - float(mean[0])) / half * Z90),
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
