"""Validate the loss prior at sizes it has not seen (the contract of ``surrogate.validation``).

Per bundled run table, every split of :func:`surrogate.validation.table_splits` (dev splits
to choose a design on, test splits to report only, transfer splits for a new source), every law
(chinchilla, aspect, conditional) and every model variant:

* ``lsq``: Levenberg-Marquardt least squares (``surrogate.lsq``, 16 starts), predictive
  ``Normal(point, residual sd)``: the baseline;
* ``bayes``: ``fit_bayes`` with its defaults (the validated model), for each family and for the
  ``stacked`` mixture (which reuses the split's family fits and adds the stacking weights);
* ``bayes-old``: the model before issue 12 (GP discrepancy, ``Normal(2, 1)`` prior on E,
  truncated-normal exponent priors, the former size groups), on the test splits only: the
  before/after comparison. Other ``bayes-<option>`` variants by ``--variants``.

Metrics on the held-out rows (``surrogate.validation``): MAPE, signed bias per held-out size
group, 50% / 90% coverage, CRPS (Bayesian: from joint predictive draws; lsq: closed form),
and within each (size, tokens) cell with two or more shapes the best-ranked-first rate and the
Spearman correlation, next to chance and to the shape-blind ranking (chinchilla, least squares)
of the same split. Pooled numbers weight rows (coverage, CRPS, MAPE) or cells (ranking) equally.

Also: posterior predictive checks (ArviZ) of the issue's quick symptom before and after (the
cause of the extrapolation bias), the reproduction of the published aspect-law fit (arXiv
2501.18107 Table 7), the default prior fitted uncached (time, diagnostics) and
``LawPosterior.predict`` on 10,000 candidates. ``--quick`` halves the NUTS draws (200 + 200).

    python benchmarks/surrogate_validation.py [--quick] [--roles dev,test,transfer]
        [--variants lsq,bayes,bayes-old] [--laws chinchilla,aspect,conditional,stacked]
        [--out DIR] [--resume] [--no-extras]

Writes ``<out>/surrogate_validation.json`` and ``<out>/surrogate_validation.md`` (default
``results/``). openlm_grid's warm-up / batch sweeps are collapsed to the best run per shape and
token count (as in the default prior).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
from surrogate_validation_report import (
    PUBLISHED,
    SHAPE_BLIND,
    SYMPTOM_LAYERS,
    fmt,
    summarize,
    write_report,
)

from models.arch import SHAPE_FIELDS
from surrogate.laws import STACK_FAMILIES, STACKED, get_law
from surrogate.runs import bundled_path, load_runs
from surrogate.validation import (
    SPLIT_ROLES,
    Split,
    cell_labels,
    interval_metrics,
    point_metrics,
    shape_ids,
    shape_metrics,
    split_features,
    table_size_groups,
    table_splits,
)

#: The repository (reports go to its results/ by default).
ROOT = Path(__file__).resolve().parents[1]
TABLES = ("morph_runs.csv", "openlm_grid.csv", "openlm_runs.csv", "gemstones_runs.csv")
LAWS = ("chinchilla", "aspect", "conditional", "stacked")
#: name -> fit_bayes keyword arguments (``lsq`` is the least-squares baseline); ``model:
#: "revision-2"`` fits with the model as it was before issue 12 (:func:`revision_2`).
VARIANTS: dict[str, dict[str, Any]] = {
    "lsq": {},
    "bayes": {},
    "bayes-old": {"discrepancy": "gp", "model": "revision-2"},
    "bayes-gp": {"discrepancy": "gp"},
    "bayes-group": {"discrepancy": "group"},
    "bayes-none": {"discrepancy": False},
    "bayes-orth": {"discrepancy": "orth"},
}
DEFAULT_VARIANTS = ("lsq", "bayes", "bayes-old")
PREDICTIVE_DRAWS = 500
PAPER_ROWS = (
    [f"80M_v{i}-20N" for i in (1, 4, 5, 6, 7)]
    + [f"116M_v{i}-20N" for i in range(1, 7)]
    + [f"164M_v{i}-20N" for i in (1, 4, 5, 6, 7)]
    + [f"237M_v{i}-20N" for i in range(1, 5)]
    + [f"313M_v{i}-20N" for i in range(1, 5)]
    + [f"80M_v{i}-160N" for i in (1, 4, 5)]
)


def load_table(name: str) -> pd.DataFrame:
    df = load_runs(bundled_path(name))
    if name == "openlm_grid.csv":
        df = df.loc[df.groupby([*SHAPE_FIELDS, "tokens"])["loss"].idxmin()]
    return df.reset_index(drop=True)


# ---- one fit ---------------------------------------------------------------------------
@contextlib.contextmanager
def revision_2() -> Iterator[None]:
    """The Bayesian model before issue 12 (MODEL_REVISION 2), for before/after comparisons:
    the law's E prior Normal(2, 1) and truncated-normal exponent priors, no misfit-trend term,
    and size groups that start a new group 15% above the group's smallest size."""
    import surrogate.bayes as bayes
    import surrogate.lsq as lsq
    from surrogate.groups import size_groups

    saved = (
        bayes.E_PRIOR_FACTOR,
        dict(bayes.LEVEL_EXPONENT_PRIORS),
        bayes.EXTRAPOLATION_SD,
        lsq.size_groups,
    )
    bayes.E_PRIOR_FACTOR = get_law("chinchilla").param("E").prior
    bayes.LEVEL_EXPONENT_PRIORS.clear()
    bayes.EXTRAPOLATION_SD = 0.0
    lsq.size_groups = functools.partial(size_groups, rel=math.inf, max_span=1.15)
    try:
        yield
    finally:
        bayes.E_PRIOR_FACTOR, exps, bayes.EXTRAPOLATION_SD, lsq.size_groups = saved
        bayes.LEVEL_EXPONENT_PRIORS.clear()
        bayes.LEVEL_EXPONENT_PRIORS.update(exps)


def fit_bayes(train: pd.DataFrame, law: str, **kwargs: Any) -> Any:
    """:func:`surrogate.bayes.fit_bayes`, inside :func:`revision_2` for ``model="revision-2"``."""
    from surrogate.bayes import fit_bayes as fit

    kwargs = dict(kwargs)
    if kwargs.pop("model", None) == "revision-2":
        with revision_2():
            return fit(train, law, **kwargs)
    return fit(train, law, **kwargs)


def fit_and_predict(
    train: pd.DataFrame, test: pd.DataFrame, law: str, variant: str, quick: bool
) -> dict[str, Any]:
    """Fit ``law`` with ``variant`` on ``train``; predictive mean and draws (or normal sd) for
    ``test``; fit diagnostics."""
    from surrogate.lsq import fit_lsq

    t0 = time.perf_counter()
    if variant == "lsq":
        fit = fit_lsq(train, law, method="lsq", n_starts=16)  # quick: NUTS draws only
        pred = fit.predict_point(test)
        return {
            "mean": pred["pred_point"].to_numpy(),
            "sd": pred["pred_sd"].to_numpy(),
            "draws": None,
            "seconds": time.perf_counter() - t0,
            "r_hat": math.nan,
            "divergences": 0,
            "warnings": [],
        }
    n = 200 if quick else 400
    key = (id(train), len(train), variant)
    fitted = _FAMILY_FITS.setdefault(key, {})
    if law == STACKED:  # the same-split family fits, mixed by stacking weights
        from surrogate.stacking import (
            CV_STARTS,
            MIN_WEIGHT,
            cv_log_densities,
            stack_posteriors,
            stacking_weights,
        )

        weights = stacking_weights(cv_log_densities(train, STACK_FAMILIES, n_starts=CV_STARTS))
        kept = {k: w for k, w in weights.items() if w >= MIN_WEIGHT}
        for family in kept:
            if family not in fitted:
                fitted[family] = fit_bayes(
                    train, family, num_warmup=n, num_samples=n, progress=False, **VARIANTS[variant]
                )
        post = stack_posteriors({k: fitted[k] for k in kept}, kept)
        post.info["seconds"] = 0.0
        seconds = time.perf_counter() - t0 + sum(fitted[k].info.get("seconds", 0.0) for k in kept)
    else:
        post = fit_bayes(
            train, law, num_warmup=n, num_samples=n, progress=False, **VARIANTS[variant]
        )
        fitted[law] = post
        seconds = time.perf_counter() - t0
    draws = post.joint_draws(test, n_draws=PREDICTIVE_DRAWS, noise=True)
    mean = post.predict(test, quantiles=(), n_draws=PREDICTIVE_DRAWS)["pred_mean"].to_numpy()
    diag = post.diagnostics
    return {
        "mean": mean,
        "sd": None,
        "draws": draws,
        "seconds": seconds,
        "r_hat": float(diag.get("max_r_hat") or math.nan),
        "divergences": int(diag.get("divergences") or 0),
        "warnings": diag["warnings"],
    }


#: Bayesian family fits of the split being evaluated, reused by its stacked row.
_FAMILY_FITS: dict[tuple, dict[str, Any]] = {}
#: Split -> (train, held-out) frames (stable identities for the fit cache).
_FRAMES: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}


def evaluate(
    runs: pd.DataFrame, split: Split, law: str, variant: str, quick: bool
) -> dict[str, Any]:
    """Every metric of one (split, law, variant)."""
    if split.name not in _FRAMES:
        _FRAMES.clear()
        _FAMILY_FITS.clear()
        _FRAMES[split.name] = (runs[split.train], runs[split.held_out])
    train, test = _FRAMES[split.name]
    out = fit_and_predict(train, test, law, variant, quick)
    y = test["loss"].to_numpy(np.float64)
    sizes = split_features(test)["N"]
    groups = table_size_groups(runs)[split.held_out]
    row = {
        "table": split.table,
        "split": split.kind,
        "role": split.role,
        "law": law,
        "variant": variant,
        "n_train": int(split.train.sum()),
        "seconds": out["seconds"],
        "r_hat": out["r_hat"],
        "divergences": out["divergences"],
        "warnings": out["warnings"],
    }
    row.update(point_metrics(y, out["mean"], groups, sizes))
    row.update(interval_metrics(y, draws=out["draws"], mean=out["mean"], sd=out["sd"]))
    row.update(
        shape_metrics(
            y, out["mean"], cell_labels(runs)[split.held_out], shape_ids(runs)[split.held_out]
        )
    )
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
    return {
        "rows": len(train),
        **{k: float(got[k]) for k in PUBLISHED},
        "rel_err_1B": sorted(np.round(rel.to_numpy(), 2).tolist()),
    }


def predict_timing() -> dict[str, float]:
    """``LawPosterior.predict`` on 10,000 candidates (default draws) with the default prior,
    median of 3."""
    from models.arch import Arch
    from surrogate.laws import law_features
    from surrogate.prior import default_prior

    post = default_prior(progress=False)
    archs = [
        Arch(d, layers, 16, 4, 64, 4 * d, 50000)
        for d in range(512, 4608, 16)
        for layers in range(4, 44)
    ][:10_000]
    feats = law_features(archs, 2e10)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        post.predict(feats)
        times.append(time.perf_counter() - t0)
    return {"predict_s": float(np.median(times)), "predict_n": len(archs)}


def default_prior_check() -> dict[str, Any]:
    """The campaign's default prior fitted afresh on its rows (no shipped file, no cache):
    time and diagnostics, plus the 1-minute load average (the machine is shared)."""
    import os

    from surrogate.prior import default_prior_runs, fit_with_default_settings

    rows = default_prior_runs()
    t0 = time.perf_counter()
    post = fit_with_default_settings(rows, progress=False)
    seconds = time.perf_counter() - t0
    diag = post.diagnostics
    return {
        "prior_s": seconds,
        "prior_r_hat": diag["max_r_hat"],
        "prior_div": diag["divergences"],
        "prior_ess": diag["min_ess_bulk"],
        "prior_rows": len(rows),
        "prior_law": post.law,
        "prior_info": {k: post.info.get(k) for k in ("discrepancy", "n_obs")},
        "weights": {
            k: round(v, 3) for k, v in post.info.get("stacking", {}).get("weights", {}).items()
        },
        "load": os.getloadavg()[0],
    }


# ---- posterior predictive check of the extrapolation bias --------------------------------
#: The issue's quick symptom: d_model 1536 at 100B tokens, 16/24/32/48 layers (gemstones shapes).


def ppc_check(variants: dict[str, dict[str, Any]], out_dir: Path, quick: bool) -> dict[str, Any]:
    """Posterior predictive checks (ArviZ) of chinchilla fitted by NUTS on all of gemstones,
    per discrepancy variant: the group-mean residuals of the law part against its replicated
    data (Bayesian p-values), and the prediction for the symptom shapes split into law and
    discrepancy. Writes ``surrogate_validation_ppc.png`` (ArviZ ``plot_ppc``)."""
    import matplotlib

    matplotlib.use("Agg")
    import warnings

    import matplotlib.pyplot as plt

    from models.arch import Arch
    from surrogate.laws import law_features
    from surrogate.lsq import fit_lsq

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az

    runs = load_table("gemstones_runs.csv")
    feats = split_features(runs)
    groups = table_size_groups(runs)
    y = runs["loss"].to_numpy()
    archs = [Arch(1536, layers, 12, 6, 128, 4 * 1536, 50304) for layers in SYMPTOM_LAYERS]
    sym = law_features(archs, 1e11)
    lsq = fit_lsq(runs, "chinchilla", n_starts=8).predict_point(archs, 1e11)["pred_point"]
    out: dict[str, Any] = {"symptom_N": sym["N"].tolist(), "lsq": lsq.round(4).tolist()}
    fig, axes = plt.subplots(1, len(variants), figsize=(5 * len(variants), 3.6), squeeze=False)
    n = 200 if quick else 500
    for ax, (name, kwargs) in zip(axes[0], variants.items()):
        post = fit_bayes(runs, "chinchilla", num_warmup=n, num_samples=n, progress=False, **kwargs)
        s = min(post.num_samples, 500)
        law = post.law_draws(feats, n_draws=s)  # (s, n): the law part, no discrepancy
        sigma = post.samples[f"sigma[{post.reference_source}]"][: law.shape[0], None]
        rng = np.random.default_rng(0)
        y_rep = law + sigma * rng.standard_normal(law.shape)  # law-only replicated data
        idata = az.from_dict(posterior_predictive={"loss": y_rep[None]}, observed_data={"loss": y})
        az.plot_ppc(idata, ax=ax, num_pp_samples=100, legend=False)
        ax.set_title(f"gemstones, chinchilla, {name}: law-only PPC", fontsize=9)
        checks = []
        for g in np.unique(groups):
            m = groups == g
            t_obs, t_rep = y[m].mean(), y_rep[:, m].mean(axis=1)
            checks.append(
                {
                    "N": f"{feats['N'][m].min() / 1e6:.0f}-{feats['N'][m].max() / 1e6:.0f}M",
                    "resid": float(t_obs - t_rep.mean()),
                    "p": float(np.mean(t_rep >= t_obs)),
                }
            )
        pred = post.predict(archs, 1e11, quantiles=())["pred_mean"].to_numpy()
        law_sym = post.law_draws(sym).mean(axis=0)
        out[name] = {
            "groups": checks,
            "total": pred.round(4).tolist(),
            "law": law_sym.round(4).tolist(),
            "discrepancy": (pred - law_sym).round(4).tolist(),
            "E": float(post.samples["E"].mean()),
            "alpha": float(post.samples["alpha"].mean()),
        }
        _free_compiled()
    fig.tight_layout()
    fig.savefig(out_dir / "surrogate_validation_ppc.png", dpi=100)
    plt.close(fig)
    return out


# ---- driver --------------------------------------------------------------------------------
def run(
    roles: tuple[str, ...],
    variants: tuple[str, ...],
    laws: tuple[str, ...],
    tables: tuple[str, ...],
    quick: bool,
    journal: Path,
    resume: bool,
) -> list[dict[str, Any]]:
    """Every (split, law, variant) job; each finished row is appended to ``journal`` (JSON
    lines) so a crashed or interrupted run continues with ``resume``."""
    from rich.progress import Progress

    done: dict[tuple, dict] = {}
    if resume and journal.is_file():
        for line in journal.read_text().splitlines():
            row = json.loads(line)
            done[(row["table"], row["split"], row["law"], row["variant"], row["quick"])] = row
    elif journal.exists():
        journal.unlink()
    jobs = []
    for table in tables:
        runs = load_table(table)
        for split in table_splits(runs, table):
            if split.role not in roles:
                continue
            # Variant by variant, the families before their stack (which reuses their fits);
            # least squares and the pre-issue model have no stacked law.
            pairs = [
                (law, v)
                for v in variants
                for law in laws
                if (law != STACKED or v == "bayes") and (v != "bayes-old" or split.role == "test")
            ]
            if SHAPE_BLIND not in pairs:
                pairs.insert(0, SHAPE_BLIND)
            jobs += [(runs, split, law, v) for law, v in pairs]
    rows = []
    with Progress() as progress:
        task = progress.add_task("fits", total=len(jobs))
        for runs, split, law, variant in jobs:
            key = (split.table, split.kind, law, variant, quick)
            if key not in done:
                row = evaluate(runs, split, law, variant, quick)
                row["quick"] = quick
                with journal.open("a") as fh:
                    fh.write(json.dumps(row, default=str) + "\n")
                _free_compiled()
                done[key] = row
            rows.append(done[key])
            progress.advance(task)
    return rows


def _free_compiled() -> None:
    """Drop JAX's compiled programs: every fit compiles its own, and a long run would
    otherwise accumulate them."""
    if "jax" in sys.modules:
        import jax

        jax.clear_caches()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer starts and NUTS draws")
    parser.add_argument("--roles", type=lambda s: tuple(s.split(",")), default=SPLIT_ROLES)
    parser.add_argument("--variants", type=lambda s: tuple(s.split(",")), default=DEFAULT_VARIANTS)
    parser.add_argument("--laws", type=lambda s: tuple(s.split(",")), default=LAWS)
    parser.add_argument("--tables", type=lambda s: tuple(s.split(",")), default=TABLES)
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the finished fits of an interrupted run (same --out)",
    )
    parser.add_argument(
        "--no-extras",
        action="store_true",
        help="skip the published fit, default prior and predict timing",
    )
    args = parser.parse_args()
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = run(
        args.roles,
        args.variants,
        args.laws,
        args.tables,
        args.quick,
        args.out / "surrogate_validation.rows.jsonl",
        args.resume,
    )
    summary = summarize(rows)
    extra: dict[str, Any] = {}
    if not args.no_extras:
        extra["ppc"] = ppc_check(
            {
                "revision 2 (gp, old priors)": VARIANTS["bayes-old"],
                "default (orth, issue 12)": VARIANTS["bayes"],
            },
            args.out,
            args.quick,
        )
        extra["repro"] = reproduce_published()
        extra["prior"] = default_prior_check()
        extra["predict"] = predict_timing()
    total = time.perf_counter() - t0
    payload = {
        "rows": rows,
        **summary,
        "extra": extra,
        "seconds": total,
        "args": {k: v if not isinstance(v, Path) else str(v) for k, v in vars(args).items()},
    }
    (args.out / "surrogate_validation.json").write_text(json.dumps(payload, indent=1, default=str))
    write_report(rows, summary, extra, args, total, args.out)
    for key, p in summary["pooled"].items():
        print(
            f"{key:45s} n={p['n']:4d} MAPE {p['mape']:.2f} cov50 {p['cov50']:.2f} "
            f"cov90 {p['cov90']:.2f} CRPS {p['crps']:.4f} best {fmt(p['best_first'])} "
            f"rho {fmt(p['spearman'])}"
        )


if __name__ == "__main__":
    main()
