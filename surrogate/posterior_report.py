"""What a law posterior reports about itself: the coefficient table, sampler diagnostics and
the JSON the CLI prints (:meth:`~surrogate.posterior.LawPosterior.summary`,
:attr:`~surrogate.posterior.LawPosterior.diagnostics`,
:meth:`~surrogate.posterior.LawPosterior.to_json`). r_hat and bulk ESS come from ArviZ.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .posterior import LawPosterior

__all__ = [
    "PRIOR_DOMINATED_RATIO",
    "load_arviz",
    "summary_table",
    "compute_diagnostics",
    "posterior_json",
    "json_float",
]

#: A term whose posterior sd exceeds this fraction of its prior sd is called prior-dominated.
PRIOR_DOMINATED_RATIO: float = 0.5


def load_arviz() -> Any:
    """Import ArviZ without its refactor FutureWarning (noise for users of this API)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

    return arviz


def summary_table(post: LawPosterior) -> pd.DataFrame:
    """One row per coefficient, per-source term and noise sd of ``post``.

    Columns: ``mean``, ``sd``, ``q05``, ``q95`` (90% interval), ``r_hat``, ``ess_bulk``
    (NaN for non-MCMC fits), ``prior_sd``, ``sd_ratio`` (posterior sd / prior sd) and
    ``dominated_by``: ``"data"`` when the posterior is much narrower than the prior
    (ratio < :data:`PRIOR_DOMINATED_RATIO`), ``"prior"`` otherwise, ``"fixed"`` for terms
    held constant, ``"n/a"`` without a prior. Rows ``A`` and ``B`` (= exp(log_A), exp(log_B))
    are added for comparison with published values.
    """
    az = load_arviz()

    rows = []
    names = list(post.samples)
    for name in names:
        v = post.samples[name]
        rows.append(_summary_row(post, name, v, az))
    for log_name, nat in (("log_A", "A"), ("log_B", "B")):
        if log_name in post.samples:
            row = _summary_row(post, nat, np.exp(post.samples[log_name]), az)
            row["prior_sd"], row["sd_ratio"] = np.nan, np.nan
            row["dominated_by"] = next(r["dominated_by"] for r in rows if r["term"] == log_name)
            rows.append(row)
    return pd.DataFrame(rows).set_index("term")


def _summary_row(post: LawPosterior, name: str, v: np.ndarray, az: Any) -> dict[str, Any]:
    mean, sd = float(np.mean(v)), float(np.std(v))
    q05, q95 = (float(x) for x in np.quantile(v, [0.05, 0.95]))
    r_hat = ess = np.nan
    varies = name not in post.fixed and sd > 1e-12 * max(1.0, abs(mean))
    if post.num_chains > 1 and post.method == "bayes" and varies:
        chains = post.by_chain(v)
        r_hat = float(az.rhat(chains))
        ess = float(az.ess(chains, method="bulk"))
    elif post.method == "bayes" and varies:
        ess = float(az.ess(post.by_chain(v), method="bulk"))
    prior_sd = post.prior_sd.get(name, np.nan)
    ratio = sd / prior_sd if prior_sd and np.isfinite(prior_sd) else np.nan
    if name in post.fixed:
        dom = "fixed"
    elif np.isfinite(ratio):
        dom = "prior" if ratio > PRIOR_DOMINATED_RATIO else "data"
    else:
        dom = "n/a"
    return {
        "term": name,
        "mean": mean,
        "sd": sd,
        "q05": q05,
        "q95": q95,
        "r_hat": r_hat,
        "ess_bulk": ess,
        "prior_sd": prior_sd,
        "sd_ratio": ratio,
        "dominated_by": dom,
    }


def compute_diagnostics(post: LawPosterior) -> dict[str, Any]:
    """``method``, ``max_r_hat``, ``min_ess_bulk``, ``divergences``, ``tree_depth_saturated``,
    ``num_chains``, ``num_samples`` and ``warnings`` (list of str, empty when healthy)."""
    table = summary_table(post)
    free = table.loc[[n for n in post.samples if n not in post.fixed]]
    max_r_hat = float(np.nanmax(free["r_hat"])) if free["r_hat"].notna().any() else float("nan")
    min_ess = float(np.nanmin(free["ess_bulk"])) if free["ess_bulk"].notna().any() else float("nan")
    divergences = int(np.sum(post.sample_stats.get("diverging", np.zeros(1))))
    warnings: list[str] = []
    if np.isfinite(max_r_hat) and max_r_hat > 1.01:
        worst = free["r_hat"].idxmax()
        warnings.append(f"r_hat {max_r_hat:.3f} > 1.01 (worst: {worst}); chains disagree")
    if np.isfinite(min_ess) and min_ess < 100 * post.num_chains:
        worst = free["ess_bulk"].idxmin()
        warnings.append(f"bulk ESS {min_ess:.0f} < {100 * post.num_chains} (worst: {worst})")
    if divergences:
        warnings.append(f"{divergences} divergent transitions")
    confounded = post.info.get("size_confounded") or []
    if confounded:
        warnings.append(
            f"{', '.join(confounded)} held at the prior's centre: their feature "
            "never varies at fixed size in these runs, so the data cannot "
            "separate them from the size terms"
        )
    saturated = None
    depth = post.info.get("max_tree_depth")
    if depth is not None and "n_steps" in post.sample_stats:
        saturated = float(np.mean(post.sample_stats["n_steps"] >= 2 ** int(depth) - 1))
        if saturated > 0.05:
            warnings.append(
                f"{100 * saturated:.0f}% of draws hit the maximum tree depth "
                f"{depth} (slow exploration)"
            )
    return {
        "method": post.method,
        "max_r_hat": max_r_hat,
        "min_ess_bulk": min_ess,
        "divergences": divergences,
        "tree_depth_saturated": saturated,
        "num_chains": post.num_chains,
        "num_samples": post.num_samples,
        "warnings": warnings,
    }


def posterior_json(post: LawPosterior) -> dict[str, Any]:
    """A JSON-able description of ``post``: law, method, sources, coefficients with
    intervals, diagnostics (the CLI prints this)."""
    table = summary_table(post)
    coefs = {
        name: {
            k: json_float(row[k]) if k != "dominated_by" else row[k]
            for k in ("mean", "sd", "q05", "q95", "r_hat", "ess_bulk", "dominated_by")
        }
        for name, row in table.iterrows()
    }
    diag = {k: (json_float(v) if isinstance(v, float) else v) for k, v in post.diagnostics.items()}
    return {
        "law": post.law,
        "method": post.method,
        "sources": post.sources,
        "reference_source": post.reference_source,
        "source_terms": post.source_terms,
        "fixed": post.fixed,
        "noise_sigma": post.noise_sigma,
        "coefficients": coefs,
        "diagnostics": diag,
        "info": post.info,
    }


def json_float(value: Any) -> float | None:
    """``value`` as a float, or None when it is not a finite number (JSON has no NaN)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
