"""The real-data check: leave one size out of each bundled table and ask whether the truly best
shape of the held-out size is ranked first (archopt's law + GP ranking vs Algorithm 1 vs chance).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["real_data_check", "REAL_DATA_TABLES"]
#: Tables of the leave-one-size-out check; openlm_grid keeps one recipe (one run per shape).
REAL_DATA_TABLES: tuple[str, ...] = ("morph_runs.csv", "gemstones_runs.csv", "openlm_grid.csv")


def _one_recipe(runs: Any) -> Any:
    if "warmup" in runs.columns:  # openlm_grid: batch 64, lr 3e-3, warmup 400
        keep = (runs["batch"] == 64) & np.isclose(runs["lr"], 3e-3) & (runs["warmup"] == 400)
        return runs[keep].reset_index(drop=True)
    return runs


def real_data_check(
    tables: Sequence[str] = REAL_DATA_TABLES,
    *,
    law: str = "conditional",
    ks: Sequence[int] = (1, 2, 3),
    n_draws: int = 64,
    progress: bool = True,
) -> dict[str, Any]:
    """Leave-one-size-out ranking check on the bundled tables.

    For each table and each size group (:func:`~optim.bench.estimates.size_groups` across token
    budgets): fit ``law`` by least squares on the table without that group (Laplace posterior,
    ``n_draws`` draws), then at every token budget of the held-out size rank its real shapes by
    predicted loss, and record whether the truly best shape is in the top ``k``.

    * Algorithm 1 ranks by the law's posterior mean (what :class:`~optim.core.strategies.Algorithm1Strategy`
      predicts before any run of that size exists).
    * archopt ranks by its loss model (:class:`surrogate.gp.LawPriorGP`: the law draws as a GP
      prior plus a residual GP over shape features) conditioned on the other sizes' runs of the
      same table, so what the law misses about shape elsewhere informs the held-out size.

    Both use the same law posterior, so the difference is archopt's GP conditioning. (archopt's campaign
    prior is a NUTS fit on every table; refitting NUTS per held-out group would take ~1 min each,
    so the check uses the Laplace posterior for both.)

    Returns:
        ``{"tables": {table: {...}}, "overall": {"archopt": {k: rate}, "algorithm1": ..., "chance":
        ...}, "cases": n}``.
    """
    import torch
    from rich.progress import Progress

    from optim.core.problem import LOSS_NOISE_SD, OFFSET_SD, features_of
    from surrogate.gp import LawPriorGP, ResidualHyper
    from surrogate.laws import law_features
    from surrogate.lsq import FitError, fit_lsq
    from surrogate.runs import bundled_path, load_runs, table_archs

    from .estimates import size_groups

    cases: list[dict[str, Any]] = []
    jobs = []
    for table in tables:
        runs = _one_recipe(load_runs(bundled_path(table)))
        groups = size_groups(runs, by_tokens=False)
        for g in np.unique(groups):
            held = runs[groups == g]
            counts = held.groupby("tokens")["run"].count()
            if (counts >= 2).any():
                jobs.append((table, runs, groups, g))
    from rich.console import Console

    with Progress(disable=not progress, transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("leave-one-size-out", total=len(jobs))
        for table, runs, groups, g in jobs:
            bar.advance(task)
            train, held = runs[groups != g], runs[groups == g]
            try:
                post = fit_lsq(train, law, n_starts=8).to_posterior(n_draws)
            except FitError:
                continue
            src = post.reference_source
            raw = features_of(table_archs(runs))
            lo, span = raw.min(0), np.where(np.ptp(raw, 0) > 1e-12, np.ptp(raw, 0), 1.0)
            X = torch.as_tensor((raw - lo) / span, dtype=torch.float64)
            tr, he = np.flatnonzero(groups != g), np.flatnonzero(groups == g)
            feats = law_features(table_archs(runs), runs["tokens"].to_numpy(float))
            draws = np.asarray(post.law_draws(feats, source=src))  # (S, n_rows)
            misfit = max(post.noise_sigma_for(src), 0.01)
            hyper = ResidualHyper(
                outputscale=misfit**2,
                offset_var=OFFSET_SD**2,
                noise_var=LOSS_NOISE_SD**2,
                lengthscale=(0.5,),
            )
            gp = LawPriorGP(X, torch.as_tensor(draws), hyper).fit(
                tr, runs["loss"].to_numpy(float)[tr]
            )
            archopt_mean, _ = gp.predictive(he)
            # Indexed by position within the held-out rows.
            pred = {"archopt": np.asarray(archopt_mean), "algorithm1": draws[:, he].mean(0)}
            loss = held["loss"].to_numpy(float)
            tokens = held["tokens"].to_numpy(float)
            for t in np.unique(tokens):
                rows = np.flatnonzero(tokens == t)
                if rows.size < 2:
                    continue
                best = rows[np.argmin(loss[rows])]
                case = {
                    "table": table,
                    "held_out": str(held["run"].iloc[0]),
                    "tokens": float(t),
                    "n_shapes": int(rows.size),
                }
                for name, p in pred.items():
                    order = rows[np.argsort(p[rows], kind="stable")]
                    case[f"{name}_rank"] = int(np.flatnonzero(order == best)[0]) + 1
                cases.append(case)
    return _summarize_real_data(cases, ks)


def _summarize_real_data(cases: list[dict[str, Any]], ks: Sequence[int]) -> dict[str, Any]:
    def rates(subset: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {"cases": len(subset)}
        for name in ("archopt", "algorithm1"):
            out[name] = {
                str(k): float(np.mean([c[f"{name}_rank"] <= k for c in subset])) if subset else None
                for k in ks
            }
        out["chance"] = {
            str(k): float(np.mean([min(k, c["n_shapes"]) / c["n_shapes"] for c in subset]))
            if subset
            else None
            for k in ks
        }
        return out

    tables = sorted({c["table"] for c in cases})
    return {
        "overall": rates(cases),
        "tables": {t: rates([c for c in cases if c["table"] == t]) for t in tables},
        "ks": list(ks),
        "cases": cases,
    }
