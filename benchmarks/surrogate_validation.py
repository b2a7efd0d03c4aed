"""Validate the loss prior at sizes it has not seen (the contract of ``surrogate.validation``).

Per bundled run table, every split of :func:`surrogate.validation.table_splits` (dev splits
to choose a design on, test splits to report only, transfer splits for a new source), every law
(chinchilla, aspect, conditional) and every model variant:

* ``lsq``: Levenberg-Marquardt least squares (``surrogate.lsq``), predictive
  ``Normal(point, residual sd)``: the baseline;
* ``bayes``: ``fit_bayes`` with its defaults (the validated model); ``bayes-<option>``: other
  discrepancy terms of ``fit_bayes`` for comparison (``--variants``).

Metrics on the held-out rows (``surrogate.validation``): MAPE, signed bias per held-out size
group, 50% / 90% coverage, CRPS (Bayesian: from joint predictive draws; lsq: closed form),
and within each (size, tokens) cell with two or more shapes the best-ranked-first rate and the
Spearman correlation, next to chance and to the shape-blind ranking (chinchilla, least squares)
of the same split. Pooled numbers weight rows (coverage, CRPS, MAPE) or cells (ranking) equally.

Also: the reproduction of the published aspect-law fit (arXiv 2501.18107 Table 7), the default
prior fitted uncached (time, diagnostics) and ``LawPosterior.predict`` on 10,000 candidates.

    python benchmarks/surrogate_validation.py [--quick] [--roles dev,test,transfer]
        [--variants lsq,bayes,bayes-gp] [--laws chinchilla,aspect,conditional] [--out DIR]

Writes ``<out>/surrogate_validation.json`` and ``<out>/surrogate_validation.md`` (default
``results/``). openlm_grid's warm-up / batch sweeps are collapsed to the best run per shape and
token count (as in the default prior).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.arch import SHAPE_FIELDS  # noqa: E402
from surrogate.runs import bundled_path, load_runs  # noqa: E402
from surrogate.validation import (SPLIT_ROLES, Split, cell_labels, interval_metrics,  # noqa: E402
                                  point_metrics, pool, shape_ids, shape_metrics,
                                  split_features, table_size_groups, table_splits)

TABLES = ("morph_runs.csv", "openlm_grid.csv", "openlm_runs.csv", "gemstones_runs.csv")
LAWS = ("chinchilla", "aspect", "conditional")
#: name -> fit_bayes keyword arguments (``lsq`` is the least-squares baseline).
VARIANTS: dict[str, dict[str, Any]] = {
    "lsq": {},
    "bayes": {},
    "bayes-gp": {"discrepancy": "gp"},
    "bayes-group": {"discrepancy": "group"},
    "bayes-none": {"discrepancy": False},
}
DEFAULT_VARIANTS = ("lsq", "bayes", "bayes-gp")
#: Shape-blind ranking reference: this law and variant, in the same split.
SHAPE_BLIND = ("chinchilla", "lsq")
PREDICTIVE_DRAWS = 500
PAPER_ROWS = ([f"80M_v{i}-20N" for i in (1, 4, 5, 6, 7)] + [f"116M_v{i}-20N" for i in range(1, 7)]
              + [f"164M_v{i}-20N" for i in (1, 4, 5, 6, 7)]
              + [f"237M_v{i}-20N" for i in range(1, 5)] + [f"313M_v{i}-20N" for i in range(1, 5)]
              + [f"80M_v{i}-160N" for i in (1, 4, 5)])
PUBLISHED = {"A": 5.4754e4, "B": 7.7834e5, "E": 2.4475, "alpha": 0.6146, "eps": 1.1462e-3}


def load_table(name: str) -> pd.DataFrame:
    df = load_runs(bundled_path(name))
    if name == "openlm_grid.csv":
        df = df.loc[df.groupby([*SHAPE_FIELDS, "tokens"])["loss"].idxmin()]
    return df.reset_index(drop=True)


# ---- one fit ---------------------------------------------------------------------------
def fit_and_predict(train: pd.DataFrame, test: pd.DataFrame, law: str, variant: str,
                    quick: bool) -> dict[str, Any]:
    """Fit ``law`` with ``variant`` on ``train``; predictive mean and draws (or normal sd) for
    ``test``; fit diagnostics."""
    from surrogate.lsq import fit_lsq

    t0 = time.perf_counter()
    if variant == "lsq":
        fit = fit_lsq(train, law, method="lsq", n_starts=8 if quick else 16)
        pred = fit.predict(test)
        src = pred["pred_source"].to_numpy()
        sd = np.array([fit.sigma[s] for s in src])
        return {"mean": pred["pred_point"].to_numpy(), "sd": sd, "draws": None,
                "seconds": time.perf_counter() - t0, "r_hat": math.nan, "divergences": 0,
                "warnings": []}
    from surrogate.bayes import fit_bayes

    n = 200 if quick else 400
    post = fit_bayes(train, law, num_warmup=n, num_samples=n, progress=False,
                     **VARIANTS[variant])
    seconds = time.perf_counter() - t0
    draws = post.joint_draws(test, n_draws=PREDICTIVE_DRAWS, noise=True)
    mean = post.predict(test, quantiles=(), n_draws=PREDICTIVE_DRAWS)["pred_mean"].to_numpy()
    diag = post.diagnostics
    return {"mean": mean, "sd": None, "draws": draws, "seconds": seconds,
            "r_hat": float(diag.get("max_r_hat") or math.nan),
            "divergences": int(diag.get("divergences") or 0), "warnings": diag["warnings"]}


def evaluate(runs: pd.DataFrame, split: Split, law: str, variant: str, quick: bool
             ) -> dict[str, Any]:
    """Every metric of one (split, law, variant)."""
    train, test = runs[split.train], runs[split.held_out]
    out = fit_and_predict(train, test, law, variant, quick)
    y = test["loss"].to_numpy(np.float64)
    sizes = split_features(test)["N"]
    groups = table_size_groups(runs)[split.held_out]
    row = {"table": split.table, "split": split.kind, "role": split.role, "law": law,
           "variant": variant, "n_train": int(split.train.sum()),
           "seconds": out["seconds"], "r_hat": out["r_hat"], "divergences": out["divergences"],
           "warnings": out["warnings"]}
    row.update(point_metrics(y, out["mean"], groups, sizes))
    row.update(interval_metrics(y, draws=out["draws"], mean=out["mean"], sd=out["sd"]))
    row.update(shape_metrics(y, out["mean"], cell_labels(runs)[split.held_out],
                             shape_ids(runs)[split.held_out]))
    return row


# ---- side checks -------------------------------------------------------------------------
def reproduce_published() -> dict[str, Any]:
    from surrogate.lsq import fit_lsq

    df = load_runs(bundled_path("morph_runs.csv"))
    train = df[df["run"].isin(PAPER_ROWS)]
    fitted = fit_lsq(train, "aspect_paper", method="lsq", fixed={})
    got = dict(fitted.theta, A=np.exp(fitted.theta["log_A"]), B=np.exp(fitted.theta["log_B"]))
    test = df[df["run"].str.startswith("1B")]
    rel = np.abs(fitted.predict(test)["pred_point"] - test["loss"]) / test["loss"] * 100
    return {"rows": len(train), **{k: float(got[k]) for k in PUBLISHED},
            "rel_err_1B": sorted(np.round(rel.to_numpy(), 2).tolist())}


def predict_timing() -> dict[str, float]:
    """``LawPosterior.predict`` on 10,000 candidates (default draws) with the default prior,
    median of 3."""
    from models.arch import Arch
    from surrogate.laws import law_features
    from surrogate.prior import default_prior

    post = default_prior(progress=False)
    archs = [Arch(d, layers, 16, 4, 64, 4 * d, 50000) for d in range(512, 4608, 16)
             for layers in range(4, 44)][:10_000]
    feats = law_features(archs, 2e10)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        post.predict(feats)
        times.append(time.perf_counter() - t0)
    return {"predict_s": float(np.median(times)), "predict_n": len(archs)}


def default_prior_check() -> dict[str, Any]:
    """The campaign's default prior fitted uncached (fresh ARCHOPT_HOME): time and diagnostics,
    plus the 1-minute load average (the machine is shared)."""
    import os
    import tempfile

    old = os.environ.get("ARCHOPT_HOME")
    with tempfile.TemporaryDirectory() as home:
        os.environ["ARCHOPT_HOME"] = home
        try:
            from surrogate.prior import default_prior

            t0 = time.perf_counter()
            post = default_prior(progress=False)
            seconds = time.perf_counter() - t0
        finally:
            if old is None:
                os.environ.pop("ARCHOPT_HOME", None)
            else:
                os.environ["ARCHOPT_HOME"] = old
    diag = post.diagnostics
    return {"prior_s": seconds, "prior_r_hat": diag["max_r_hat"],
            "prior_div": diag["divergences"], "prior_ess": diag["min_ess_bulk"],
            "prior_rows": post.info.get("training_rows"), "prior_law": post.law,
            "prior_info": {k: post.info.get(k) for k in ("discrepancy", "n_obs")},
            "load": os.getloadavg()[0]}


# ---- driver --------------------------------------------------------------------------------
def run(roles: tuple[str, ...], variants: tuple[str, ...], laws: tuple[str, ...],
        tables: tuple[str, ...], quick: bool) -> list[dict[str, Any]]:
    from rich.progress import Progress

    jobs = []
    for table in tables:
        runs = load_table(table)
        for split in table_splits(runs, table):
            if split.role not in roles:
                continue
            pairs = [(law, v) for law in laws for v in variants]
            if SHAPE_BLIND not in pairs:
                pairs.insert(0, SHAPE_BLIND)
            jobs += [(runs, split, law, v) for law, v in pairs]
    rows = []
    with Progress() as progress:
        task = progress.add_task("fits", total=len(jobs))
        for runs, split, law, variant in jobs:
            rows.append(evaluate(runs, split, law, variant, quick))
            progress.advance(task)
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Pooled metrics per (role, law, variant) and the target checks."""
    frame = pd.DataFrame(rows)
    pooled = {}
    for (role, law, variant), sub in frame.groupby(["role", "law", "variant"], sort=False):
        pooled[f"{role}|{law}|{variant}"] = pool(sub.to_dict("records"))
    return {"pooled": pooled}


def _f(value: Any, fmt: str = ".2f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, fmt)


def write_report(rows: list[dict[str, Any]], summary: dict, extra: dict, args: argparse.Namespace,
                 total_s: float, out_dir: Path) -> None:
    frame = pd.DataFrame(rows)
    cmd = "python benchmarks/surrogate_validation.py" + "".join(
        f" --{k} {','.join(v) if isinstance(v, (list, tuple)) else v}"
        for k, v in (("roles", args.roles), ("variants", args.variants), ("laws", args.laws))
        if v) + (" --quick" if args.quick else "")
    lines = ["# Surrogate validation: a loss prior at sizes it has not seen", "",
             f"Generated by `{cmd}` in {total_s / 60:.1f} min on this machine (2 shared cores).",
             "", "The protocol (`surrogate/validation.py`, fixed before the design was chosen): "
             "size groups are `surrogate.groups.size_groups` of non-embedding parameters per "
             "source key. Splits per table: **test** `largest` (train on all but the largest "
             "group, predict it) and `skip` (train up to the third-largest, predict the largest); "
             "**dev** `nested` (train up to the third-largest, predict the second-largest) and "
             "`nested_skip` (train up to the fourth-largest, predict the second-largest): dev "
             "splits never see the largest group. **transfer**: leave one source key out where "
             "keys share a loss kind (openlm_runs' datasets), reported apart. Cells = (source, "
             "size group, tokens); best-first: the truly best shape of a cell with >= 2 shapes "
             "is predicted best (chance 1/k); Spearman: cells with >= 3 shapes. Shape-blind "
             "reference: chinchilla least squares in the same split. lsq predictive: "
             "Normal(point, residual sd); Bayesian: joint posterior-predictive draws.", ""]
    if "repro" in extra:
        repro = extra["repro"]
        lines += ["## Published aspect-law fit (arXiv 2501.18107 Table 7) reproduced", "",
                  "| coefficient | published | ours | rel. diff |", "| --- | --- | --- | --- |"]
        for k, v in PUBLISHED.items():
            lines.append(f"| {k} | {v:.5g} | {repro[k]:.5g} | {100 * (repro[k] / v - 1):+.3f}% |")
        lines += ["", f"Held-out 1B relative errors (%): {repro['rel_err_1B']} "
                      "(published: 0.69, 0.90, 0.92, 1.15).", ""]
    lines += ["## Pooled by role", "",
              "| role | law | variant | rows | MAPE % | cov50 | cov90 | CRPS | best-first "
              "(cells) | Spearman (cells) |", "| --- | --- | --- | --- | --- | --- | --- | --- | "
              "--- | --- |"]
    for key, p in summary["pooled"].items():
        role, law, variant = key.split("|")
        lines.append(f"| {role} | {law} | {variant} | {p['n']} | {_f(p['mape'])} | "
                     f"{_f(p['cov50'])} | {_f(p['cov90'])} | {_f(p['crps'], '.4f')} | "
                     f"{_f(p['best_first'])} ({p['n_rank_cells']}) | {_f(p['spearman'])} "
                     f"({p['n_spearman_cells']}) |")
    lines += ["", "## Per split", ""]
    for (table, split), sub in frame.groupby(["table", "split"], sort=False):
        r0 = sub.iloc[0]
        chance = r0["chance_best_first"]
        lines += [f"### {table} / {split} ({r0['role']}; train {r0['n_train']}, held out "
                  f"{r0['n']}; best-first chance {_f(chance)})", "",
                  "| law | variant | MAPE % | bias % by group | cov50 | cov90 | CRPS | best-first "
                  "| Spearman | r_hat | div. | fit s |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for _, r in sub.iterrows():
            bias = ", ".join(f"{b['N_min'] / 1e6:.0f}-{b['N_max'] / 1e6:.0f}M {b['bias']:+.2f}"
                             for b in r["bias_by_group"])
            lines.append(f"| {r['law']} | {r['variant']} | {_f(r['mape'])} | {bias} | "
                         f"{_f(r['cov50'])} | {_f(r['cov90'])} | {_f(r['crps'], '.4f')} | "
                         f"{_f(r['best_first'])} | {_f(r['spearman'])} | {_f(r['r_hat'], '.3f')} "
                         f"| {r['divergences']} | {r['seconds']:.1f} |")
        lines.append("")
    for key in ("prior", "predict"):
        if key in extra:
            lines.append(f"- {key}: {json.dumps(extra[key], default=str)}")
    (out_dir / "surrogate_validation.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer starts and NUTS draws")
    parser.add_argument("--roles", type=lambda s: tuple(s.split(",")), default=SPLIT_ROLES)
    parser.add_argument("--variants", type=lambda s: tuple(s.split(",")),
                        default=DEFAULT_VARIANTS)
    parser.add_argument("--laws", type=lambda s: tuple(s.split(",")), default=LAWS)
    parser.add_argument("--tables", type=lambda s: tuple(s.split(",")), default=TABLES)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    parser.add_argument("--no-extras", action="store_true",
                        help="skip the published fit, default prior and predict timing")
    args = parser.parse_args()
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    t0 = time.perf_counter()
    rows = run(args.roles, args.variants, args.laws, args.tables, args.quick)
    summary = summarize(rows)
    extra: dict[str, Any] = {}
    if not args.no_extras:
        extra["repro"] = reproduce_published()
        extra["prior"] = default_prior_check()
        extra["predict"] = predict_timing()
    total = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"rows": rows, **summary, "extra": extra, "seconds": total,
               "args": {k: v if not isinstance(v, Path) else str(v) for k, v in vars(args).items()}}
    (args.out / "surrogate_validation.json").write_text(json.dumps(payload, indent=1,
                                                                   default=str))
    write_report(rows, summary, extra, args, total, args.out)
    for key, p in summary["pooled"].items():
        print(f"{key:45s} n={p['n']:4d} MAPE {p['mape']:.2f} cov50 {p['cov50']:.2f} "
              f"cov90 {p['cov90']:.2f} CRPS {p['crps']:.4f} best {_f(p['best_first'])} "
              f"rho {_f(p['spearman'])}")


if __name__ == "__main__":
    main()
