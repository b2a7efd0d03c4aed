"""Scaling-law page: the law posterior a campaign's loss model rests on.

Coefficient posteriors (with the documented priors overlaid) and diagnostics; which terms the
data determined and which the prior; posterior-predictive loss along d/sqrt(N), r, aspect
ratio, N and D with 50% and 90% bands and the real runs overlaid; predictive calibration on
the runs; the held-out validation of laws and fit methods (``results/surrogate_validation.json``,
written by ``benchmarks/surrogate_validation.py``: dev splits chose the design, test splits
only report).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from models.arch import DEFAULT_VOCAB_SIZE
from optim.ui import cache, figures
from optim.ui.common import current_campaign, fmt_params, results_dir, show_error, store_path

__all__ = ["render", "VALIDATION_RESULTS", "VALIDATION_REPORT", "validation_frames"]

#: The surrogate validation's machine-readable results and its Markdown report.
VALIDATION_RESULTS = results_dir() / "surrogate_validation.json"
VALIDATION_REPORT = results_dir() / "surrogate_validation.md"
#: Held-out metrics the page can chart (row field -> label).
VALIDATION_METRICS = {
    "mape": "MAPE % (lower is better)",
    "bias": "signed bias % (0 is best)",
    "cov50": "50% band coverage (0.5 is calibrated)",
    "cov90": "90% band coverage (0.9 is calibrated)",
    "crps": "CRPS (lower is better)",
    "best_first": "best shape ranked first (higher is better)",
    "spearman": "Spearman within cells (higher is better)",
}

_SWEEPS = (
    ("d_over_sqrt_n", "d_model / sqrt(N)", False),
    ("mlp_attn_ratio", "r = MLP / attention params per block", False),
    ("aspect_ratio", "aspect ratio d_model / n_layers", True),
    ("non_embedding_params", "N (non-embedding params)", True),
    ("tokens", "D (training tokens)", True),
)


def _choose_posterior() -> tuple[Any, str, dict[str, Any]] | None:
    """The posterior to show, its cache key and the campaign context (N, D, shape defaults)."""
    name = current_campaign()
    options = (["campaign prior"] if name else []) + ["default prior", "saved posterior file"]
    kind = st.radio(
        "Posterior",
        options,
        horizontal=True,
        key="sl_kind",
        help="The campaign's law posterior (its GP prior mean), the package default "
        "fitted on the bundled runs, or a file from `archopt fit --out`.",
    )
    context: dict[str, Any] = {}
    try:
        if kind == "campaign prior" and name is not None:
            version = cache.store_version(store_path())
            campaign = cache.load_campaign(name, str(store_path()), version)
            spec = campaign.spec
            context = {
                "params": float(spec.params),
                "tokens": float(spec.tokens),
                "vocab_size": int(spec.vocab_size),
                "tie_embeddings": bool(spec.tie_embeddings),
                "source": spec.source,
            }
            return campaign.prior, f"campaign:{name}:{version}", context
        if kind == "default prior":
            post = _default_prior()
            return None if post is None else (post, "default", context)
        path = st.text_input("Posterior file (.nc)", key="sl_path")
        if not path:
            st.info("Enter the path of a posterior saved by `archopt fit --out`.")
            return None
        return (
            cache.posterior_file(path, cache.file_version(path)),
            f"file:{path}:{cache.file_version(path)}",
            context,
        )
    except Exception as exc:  # noqa: BLE001 - shown to the user
        show_error(exc, f"Loading the {kind}")
        return None


def _default_prior() -> Any:
    """The package's default prior; when it is not fitted in this ``ARCHOPT_HOME`` yet, only
    after the user asks for the fit (a minute of NUTS), with its progress shown."""
    if cache.default_prior_cached() or st.session_state.get("sl_default_ready"):
        return cache.default_posterior()
    st.info(
        "The default prior is not fitted in this ARCHOPT_HOME yet: NUTS on the bundled run "
        "tables, about a minute on 2 cores, once (then cached for every page and campaign)."
    )
    if not st.button("Fit the default prior now", key="sl_fit_default", type="primary"):
        return None
    with st.status("Fitting the default scaling-law prior...", expanded=True) as status:
        st.write(
            "NUTS, 2 chains x (500 warm-up + 250 draws) on the bundled runs; the result "
            "is saved under ARCHOPT_HOME/posteriors/."
        )
        post = cache.default_posterior()
        status.update(label="Default prior fitted and cached", state="complete")
    st.session_state["sl_default_ready"] = True
    return post


def _calibration_alert(post: Any, key: str, context: dict[str, Any]) -> None:
    """A visible warning when the posterior's bands miss its own runs (binomial test)."""
    from optim.campaign.insights import calibration_verdict
    from surrogate.slices import band_coverage

    wanted = context.get("source")
    source = str(wanted) if wanted in post.sources else str(post.reference_source)
    try:
        table = cache.run_predictions(post, key, source)
    except Exception as exc:  # noqa: BLE001
        show_error(exc, "Predicting the runs")
        return
    if table.empty:
        return
    cov, n = band_coverage(table), len(table)
    verdict = calibration_verdict(n, round(cov["cov50"] * n), round(cov["cov90"] * n))
    if verdict["off"]:
        st.warning(f"Bands on the {source} runs: {verdict['message']}", icon=":material/rule:")


def _diagnostics(post: Any) -> None:
    diag = post.diagnostics
    cols = st.columns(5)
    cols[0].metric("Law", post.law)
    cols[1].metric("Method", str(diag.get("method", post.method)))
    cols[2].metric("Draws", f"{post.num_samples:,}", help=f"{post.num_chains} chain(s)")
    r_hat, ess = diag.get("max_r_hat"), diag.get("min_ess_bulk")
    cols[3].metric(
        "max r_hat", "n/a" if r_hat is None or not np.isfinite(r_hat) else f"{r_hat:.3f}"
    )
    cols[4].metric("min bulk ESS", "n/a" if ess is None or not np.isfinite(ess) else f"{ess:.0f}")
    st.caption(
        f"Sources: {', '.join(post.sources)} (reference: {post.reference_source}); "
        f"divergences: {diag.get('divergences', 0)}; per-source terms: {post.source_terms}."
    )
    for warning in diag.get("warnings") or []:
        st.warning(warning)


def _coefficients(post: Any, key: str) -> None:
    st.subheader("Coefficient posteriors")
    names = [n for n in post.law_obj.param_names if n not in post.fixed]
    fixed = [n for n in post.law_obj.param_names if n in post.fixed]
    c1, c2 = st.columns([1, 1])
    kind = c1.radio("Draw as", ["histogram", "violin"], horizontal=True, key="sl_plot_kind")
    with_prior = c2.checkbox("Overlay the prior", value=True, key="sl_prior")
    prior = cache.prior_draws(post.law, names) if with_prior else None
    st.plotly_chart(
        figures.posterior_figure(
            {n: post.samples[n] for n in names}, kind=kind, prior_samples=prior
        ),
        key="sl_posterior",
    )
    if fixed:
        st.caption(
            f"Held fixed in this fit (the data barely vary what identifies them): "
            f"{', '.join(fixed)}."
        )
    table = post.summary()
    dominated = table["dominated_by"]
    coefs = [t for t in post.law_obj.param_names if t in dominated.index]
    per_source = [t for t in dominated.index if "[" in t]
    data_terms = [t for t in coefs if dominated[t] == "data"]
    prior_terms = [t for t in coefs if dominated[t] in ("prior", "fixed")]
    if dominated.isin(["data", "prior"]).any():
        src_data = sum(dominated[t] == "data" for t in per_source)
        st.markdown(
            f"**Data-dominated coefficients** (posterior sd < half the prior sd): "
            f"{', '.join(data_terms) or 'none'}  \n"
            f"**Prior-dominated or fixed coefficients**: {', '.join(prior_terms) or 'none'}"
            f"  \nPer-source scale/offset/noise terms: {src_data} of {len(per_source)} "
            "data-dominated (table below)."
        )
    else:
        st.caption(
            "This fit has no prior (least squares): free terms are determined by the data "
            "alone, their spread is the Laplace approximation; compare with the documented "
            "prior drawn in grey."
        )
    number = st.column_config.NumberColumn(format="%.4g")
    st.dataframe(
        table,
        width="stretch",
        column_config={
            c: number
            for c in ("mean", "sd", "q05", "q95", "r_hat", "ess_bulk", "prior_sd", "sd_ratio")
        },
    )


def _sweeps(post: Any, key: str, context: dict[str, Any]) -> None:
    st.subheader("Predicted loss along each knob")
    runs = cache.bundled_run_table()
    sources = list(post.sources)
    default = context.get("source") if context.get("source") in sources else post.reference_source
    src = st.selectbox(
        "Loss source (per-source scale/offset applied)",
        sources,
        index=sources.index(default),
        key="sl_source",
    )
    from surrogate.slices import band_coverage, runs_near_slice, typical_slice

    here = runs[runs["source_key"] == src].drop(columns=["source_key"])
    n0, d0 = (context["params"], context["tokens"]) if context else typical_slice(here)
    cols = st.columns(6)
    n_params = 1e6 * cols[0].number_input(
        "N, non-embedding (M)", min_value=1.0, value=round(n0 / 1e6, 1), step=10.0, key="sl_n_m"
    )
    tokens = 1e9 * cols[1].number_input(
        "D, tokens (B)", min_value=0.01, value=round(d0 / 1e9, 2), step=1.0, key="sl_d_b"
    )
    x0 = cols[2].number_input(
        "d/sqrt(N)",
        min_value=0.01,
        max_value=0.5,
        value=0.08,
        step=0.005,
        format="%.3f",
        key="sl_x",
    )
    r0 = cols[3].number_input("r", min_value=0.3, max_value=8.0, value=3.0, step=0.25, key="sl_r")
    gqa = cols[4].selectbox("GQA group", [1, 2, 4, 8], index=2, key="sl_gqa")
    head_dim = cols[5].selectbox("head_dim", [64, 128], key="sl_hd")
    tol = st.slider(
        "Overlay runs within this factor of N and D", 1.05, 3.0, 1.3, 0.05, key="sl_tol"
    )
    st.caption(
        f"Slice: N = {fmt_params(n_params)}, D = {fmt_params(tokens)} tokens; each point is the "
        "nearest real architecture at that budget; bands are posterior-predictive "
        "(coefficient uncertainty and run noise)."
    )
    try:
        observed = cache.run_predictions(post, key, src)
    except Exception as exc:  # noqa: BLE001
        show_error(exc, "Predicting the runs")
        observed = pd.DataFrame()
    vocab = int(context.get("vocab_size", DEFAULT_VOCAB_SIZE))
    tie = bool(context.get("tie_embeddings", True))
    grid = st.columns(2)
    for i, (knob, title, log_x) in enumerate(_SWEEPS):
        try:
            sweep = cache.law_sweep(
                post,
                key,
                knob,
                float(n_params),
                float(tokens),
                src,
                float(x0),
                float(r0),
                int(gqa),
                int(head_dim),
                vocab,
                tie,
            )
        except Exception as exc:  # noqa: BLE001
            with grid[i % 2]:
                show_error(exc, f"Sweeping {knob}")
            continue
        near = runs_near_slice(observed, knob, n_params, tokens, tol)
        marker = {
            "d_over_sqrt_n": x0,
            "mlp_attn_ratio": r0,
            "non_embedding_params": n_params,
            "tokens": tokens,
        }.get(knob)
        with grid[i % 2]:
            if sweep.empty:
                st.info(f"No architecture on the grid for the {title} sweep at this slice.")
                continue
            st.plotly_chart(
                figures.band_figure(
                    sweep["x"], sweep, x_title=title, observed=near, log_x=log_x, marker_x=marker
                ),
                key=f"sl_sweep_{knob}",
            )
    if len(observed):
        st.subheader("Predictive calibration on the runs")
        table = observed.assign(group=src, label=observed["run"])
        st.plotly_chart(figures.calibration_figure(table), key="sl_calibration")
        from optim.campaign.insights import calibration_verdict

        cov, n = band_coverage(table), len(table)
        verdict = calibration_verdict(n, round(cov["cov50"] * n), round(cov["cov90"] * n))
        text = (
            f"{n} runs of {src}: {cov['cov50']:.0%} inside the 50% band, {cov['cov90']:.0%} "
            f"inside the 90% band (in-sample when these runs were fitted)."
        )
        if verdict["off"]:
            st.warning(f"{text} {verdict['message']}", icon=":material/rule:")
        else:
            st.caption(text)


def validation_frames(results: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The validation's rows (one per split, law and variant) and target checks as tables.

    Args:
        results: the JSON the surrogate validation writes (``rows``, ``checks``, ...).

    Returns:
        ``rows`` with ``table``, ``split``, ``role``, ``law``, ``variant`` and the metrics of
        :data:`VALIDATION_METRICS`; ``checks`` with ``law``, ``kind``, ``role``, ``split``,
        ``value``, ``reference``, ``ok`` (empty without checks).
    """
    rows = pd.DataFrame(results.get("rows", []))
    if not rows.empty:
        rows = rows.drop_duplicates(["table", "split", "law", "variant"], keep="last")
    return rows, pd.DataFrame(results.get("checks", []))


def _validation() -> None:
    st.subheader("Held-out validation of laws and fit methods")
    results = cache.validation_results(
        str(VALIDATION_RESULTS), cache.file_version(VALIDATION_RESULTS)
    )
    if results is None:
        st.info(
            f"No readable validation results ({VALIDATION_RESULTS.name} in "
            f"{VALIDATION_RESULTS.parent}); "
            "`python benchmarks/surrogate_validation.py` writes them."
        )
        return
    rows, checks = validation_frames(results)
    if rows.empty:
        st.info("The validation results hold no rows.")
        return
    st.caption(
        "Each split fits on smaller models and predicts larger ones it never saw. **dev** splits "
        "chose the design; **test** splits only report; **transfer** leaves a data set out. "
        "lsq is least squares (the baseline), bayes the NUTS posterior (the default), bayes-old "
        "the model before the current one."
    )
    cols = st.columns(2)
    metrics: list[str] = [m for m in VALIDATION_METRICS if m in rows.columns]
    metric: str = str(
        cols[0].selectbox(
            "Held-out metric",
            metrics,
            index=metrics.index("mape") if "mape" in metrics else 0,
            format_func=lambda m: VALIDATION_METRICS.get(str(m), str(m)),
            key="sl_val_metric",
        )
    )
    roles = [r for r in ("test", "dev", "transfer") if r in set(rows["role"])]
    role = cols[1].radio("Splits", roles, horizontal=True, key="sl_val_role")
    grid = st.columns(2)
    shown = rows[(rows["role"] == role) & rows[metric].notna()]
    for i, ((table, split), sub) in enumerate(shown.groupby(["table", "split"], sort=False)):
        with grid[i % 2]:
            st.plotly_chart(
                figures.law_comparison_figure(
                    sub, metric=metric, group="law", color="variant", title=f"{table} / {split}"
                ),
                key=f"sl_val_{i}",
            )
    if not checks.empty:
        missed = checks[~checks["ok"].astype(bool)]
        text = f"{len(checks) - len(missed)} of {len(checks)} target checks met"
        (st.warning if len(missed) else st.caption)(
            f"{text}; see the table for which (value against its reference)."
        )
        st.dataframe(checks, hide_index=True, key="sl_val_checks")
    report = cache.validation_report(str(VALIDATION_REPORT), cache.file_version(VALIDATION_REPORT))
    if report is not None:
        with st.expander("Full report"):
            st.markdown(report)


def render() -> None:
    st.title("Scaling law")
    st.caption(
        "The law posterior behind the loss predictions: inspect its uncertainty before "
        "spending GPU-months on what it recommends."
    )
    chosen = _choose_posterior()
    if chosen is None:
        _validation()
        return
    post, key, context = chosen
    _diagnostics(post)
    _calibration_alert(post, key, context)
    tabs = st.tabs(["Coefficients", "Predicted loss", "Held-out validation"])
    with tabs[0]:
        _coefficients(post, key)
    with tabs[1]:
        _sweeps(post, key, context)
    with tabs[2]:
        _validation()
