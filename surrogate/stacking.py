"""Stacking of law families: weights by size-group cross-validation (ArviZ ``compare``), and
the mixture of the families' NUTS posteriors as one :class:`LawPosterior` of the ``stacked`` law.

**Weights.** Each family (:data:`surrogate.laws.STACK_FAMILIES`) is refitted by least squares
on the size groups below ``j`` and predicts group ``j`` (leave-future-out, ``j = 2 .. G-1`` per
source key: the extrapolation the prior is used for); the held-out rows' log predictive
densities under ``Normal(point, residual sd)`` form one pointwise ELPD per family, and ArviZ's
``compare(..., method="stacking")`` turns them into the weights that maximise the log score of
the mixture (Yao et al. 2018). Least squares keeps the ``G - 2`` refits per family to seconds,
where NUTS would take minutes. A table with fewer than three size groups has no fold: equal
weights.

**Mixture.** Every family is fitted by NUTS (:func:`surrogate.bayes.fit_bayes`, same settings);
a family's draw is a draw of the ``stacked`` law with the other families' shape terms switched
off (:data:`surrogate.laws.NEUTRAL_SHAPE_TERMS`), so the mixture is one posterior whose draws
come from family ``k`` in proportion to its weight and predict through the usual code
(:func:`stack_posteriors`). Families with a weight below :data:`MIN_WEIGHT` are not fitted.

Why (``benchmarks/surrogate_validation.py``, dev splits): the families err in different
directions when extrapolating in size (on gemstones aspect under-, conditional over-predicts),
and a shape term fitted at small sizes ranks the shapes of a larger size only as well as its
family extrapolates; the stack was more accurate than any single family and ranked shapes
within cells better than the shape-blind law on the dev splits.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .groups import size_groups
from .laws import NEUTRAL_SHAPE_TERMS, STACK_FAMILIES, STACKED, get_law
from .lsq import FitError, fit_lsq
from .posterior import LawPosterior
from .runs import source_keys, table_archs

__all__ = [
    "cv_log_densities",
    "stacking_weights",
    "future_folds",
    "stack_posteriors",
    "fit_stacked",
    "MIN_WEIGHT",
    "CV_STARTS",
]

#: Families whose stacking weight is below this are left out of the mixture (and not fitted).
MIN_WEIGHT: float = 0.02
#: Least-squares starts per cross-validation refit.
CV_STARTS: int = 4


def future_folds(
    runs: pd.DataFrame, min_train_groups: int = 2
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Leave-future-out folds ``(train mask, held-out mask)`` over the size groups of each
    source key: fold ``j`` trains on groups ``< j`` and holds out group ``j``."""
    n = np.fromiter((a.non_embedding_params for a in table_archs(runs)), np.float64, len(runs))
    keys = source_keys(runs)
    groups = size_groups(n, keys)
    rank = np.empty(len(runs), np.int64)  # group rank within the source key, 0 = smallest
    for key in np.unique(keys):
        m = keys == key
        uniq = np.unique(groups[m])
        rank[m] = np.searchsorted(uniq, groups[m])
    folds = []
    for j in range(min_train_groups, int(rank.max()) + 1):
        train, held = rank < j, rank == j
        if held.any():
            folds.append((train, held))
    return folds


def cv_log_densities(
    runs: pd.DataFrame, laws: Sequence[str], *, n_starts: int = 6, seed: int = 0
) -> dict[str, np.ndarray]:
    """Pointwise log predictive densities ``(m,)`` of every law over the held-out rows of all
    :func:`future_folds` (same rows, same order for every law)."""
    out: dict[str, list[np.ndarray]] = {law: [] for law in laws}
    for train, held in future_folds(runs):
        tr, te = runs[train], runs[held]
        y = te["loss"].to_numpy(np.float64)
        try:  # a fold some law cannot be fitted on (too few rows) is left out for every law
            fits = {law: fit_lsq(tr, law, n_starts=n_starts, seed=seed) for law in laws}
        except FitError:
            continue
        for law, fit in fits.items():
            pred = fit.predict_point(te)
            sd = np.maximum(pred["pred_sd"].to_numpy(), 1e-4)
            z = (y - pred["pred_point"].to_numpy()) / sd
            out[law].append(-0.5 * z**2 - np.log(sd) - 0.5 * np.log(2 * np.pi))
    return {law: np.concatenate(v) if v else np.zeros(0) for law, v in out.items()}


def _elpd(pointwise: np.ndarray):
    """An ArviZ ``ELPDData`` holding precomputed pointwise log densities."""
    import xarray as xr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from arviz.stats.stats_utils import ELPDData

    n = pointwise.size
    return ELPDData(
        data=[
            float(pointwise.sum()),
            float(np.sqrt(n) * pointwise.std()),
            0.0,
            1,
            n,
            False,
            xr.DataArray(pointwise, dims=["obs"]),
            "log",
        ],
        index=[
            "elpd_loo",
            "se",
            "p_loo",
            "n_samples",
            "n_data_points",
            "warning",
            "loo_i",
            "scale",
        ],
    )


def stacking_weights(log_densities: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Stacking weights (sum 1) from pointwise CV log densities (:func:`cv_log_densities`)
    with ``arviz.compare(method="stacking")``. With no held-out rows, equal weights."""
    names = list(log_densities)
    if not names or log_densities[names[0]].size == 0:
        return {name: 1.0 / len(names) for name in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import arviz as az

        # Floor -inf (a failed refit) so the optimiser stays finite: such a law gets ~0 weight.
        table = az.compare(
            {k: _elpd(np.maximum(v, -1e4)) for k, v in log_densities.items()},
            ic="loo",
            method="stacking",
        )
    return {name: float(table.loc[name, "weight"]) for name in names}


def stack_posteriors(
    posteriors: Mapping[str, LawPosterior],
    weights: Mapping[str, float],
    info: Mapping[str, Any] | None = None,
) -> LawPosterior:
    """One posterior of the ``stacked`` law mixing ``posteriors`` (family name -> posterior,
    fitted on the same runs with the same settings) by ``weights`` (renormalised over the
    families given).

    Draws: family ``k`` contributes ``round(w_k S)`` of its own draws (evenly spaced), ``S`` the
    largest family's draw count; its missing shape coefficients take their neutral values.
    Diagnostics are the families' (worst r_hat and ESS, summed divergences, warnings prefixed
    with the family)."""
    names = [k for k in posteriors if weights.get(k, 0.0) > 0.0]
    if not names:
        raise FitError("stacking needs at least one family with a positive weight")
    total = sum(weights[k] for k in names)
    w = {k: weights[k] / total for k in names}
    first = posteriors[names[0]]
    law = get_law(STACKED)
    n_total = max(posteriors[k].num_samples for k in names)
    counts = {k: int(round(w[k] * n_total)) for k in names}
    counts[names[-1]] = max(n_total - sum(counts[k] for k in names[:-1]), 0)
    keys: list[str] = []
    for k in names:
        keys += [key for key in posteriors[k].samples if key not in keys]
    samples: dict[str, list[np.ndarray]] = {key: [] for key in keys}
    for name in law.param_names:
        samples.setdefault(name, [])
    for k in names:
        post, m = posteriors[k], counts[k]
        if m == 0:
            continue
        idx = np.unique(np.linspace(0, post.num_samples - 1, m).round().astype(np.int64))
        idx = np.resize(idx, m)
        for key in samples:
            base = key.split("[", 1)[0]
            if key in post.samples:
                samples[key].append(post.samples[key][idx])
            elif base in NEUTRAL_SHAPE_TERMS:
                samples[key].append(np.full(m, NEUTRAL_SHAPE_TERMS[base]))
            elif f"{base}" in post.samples:  # a per-source law term this family shares
                samples[key].append(post.samples[base][idx])
            else:
                raise FitError(
                    f"family {k!r} has no draws of {key!r}: stack posteriors fitted "
                    "with the same settings"
                )
    merged = {key: np.concatenate(v) for key, v in samples.items() if v}
    diags = {k: posteriors[k].diagnostics for k in names}
    r_hats = [d.get("max_r_hat") for d in diags.values()]
    esses = [d.get("min_ess_bulk") for d in diags.values()]
    diagnostics = {
        "method": "bayes",
        "num_chains": first.num_chains,
        "num_samples": sum(counts.values()),
        "max_r_hat": max((r for r in r_hats if r is not None and np.isfinite(r)), default=None),
        "min_ess_bulk": min((e for e in esses if e is not None and np.isfinite(e)), default=None),
        "divergences": int(sum(int(d.get("divergences") or 0) for d in diags.values())),
        "tree_depth_saturated": max((d.get("tree_depth_saturated") or 0.0) for d in diags.values()),
        "warnings": [f"[{k}] {msg}" for k, d in diags.items() for msg in d.get("warnings", [])],
        "stacking_weights": w,
    }
    prior_sd: dict[str, float] = {}
    for k in names:
        prior_sd.update(posteriors[k].prior_sd)
    merged_info = dict(first.info)
    merged_info.update(info or {})
    merged_info["stacking"] = {
        "weights": w,
        "draws": counts,
        **dict((info or {}).get("stacking", {})),
    }
    fixed = sorted(set().union(*(posteriors[k].fixed for k in names)))
    return LawPosterior(
        STACKED,
        merged,
        sources=first.sources,
        reference_source=first.reference_source,
        source_terms=first.source_terms,
        method="bayes",
        num_chains=1,
        diagnostics=diagnostics,
        prior_sd=prior_sd,
        fixed=fixed,
        info=merged_info,
    )


def fit_stacked(
    runs: pd.DataFrame,
    *,
    families: Sequence[str] = STACK_FAMILIES,
    progress: bool = True,
    seed: int = 0,
    **fit_kwargs: Any,
) -> LawPosterior:
    """Stacking weights of ``families`` on ``runs`` (:func:`cv_log_densities`), a NUTS fit of
    every family with weight >= :data:`MIN_WEIGHT` (``fit_kwargs`` as for
    :func:`surrogate.bayes.fit_bayes`), mixed by :func:`stack_posteriors`.

    Returns:
        A :class:`LawPosterior` of the ``stacked`` law; ``info["stacking"]`` holds the weights,
        the cross-validated rows and the seconds spent on each step.
    """
    import time

    from .bayes import fit_bayes

    t0 = time.perf_counter()
    densities = cv_log_densities(runs, families, n_starts=CV_STARTS, seed=seed)
    weights = stacking_weights(densities)
    t_cv = time.perf_counter() - t0
    kept = {k: v for k, v in weights.items() if v >= MIN_WEIGHT}
    posteriors = {k: fit_bayes(runs, k, progress=progress, seed=seed, **fit_kwargs) for k in kept}
    info = {
        "stacking": {
            "cv_weights": weights,
            "cv_rows": int(densities[families[0]].size),
            "cv_seconds": round(t_cv, 2),
            "seconds": round(time.perf_counter() - t0, 2),
        },
        "seconds": round(time.perf_counter() - t0, 2),
    }
    return stack_posteriors(posteriors, kept, info)
