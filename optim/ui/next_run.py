"""Next run page: decide what to train next with the campaign's own model.

Why each pending proposal was made (EHVI in words, P(improves the front), change in loss and
tokens/s against the current best) beside the hypervolume of the observed runs over trials;
the offset the runs taught the model; and every shape relative to a chosen reference (a trial,
a front shape, the best observed run or a published model) from joint draws, with P(beats the
reference) and P(on the front). Every number comes from :mod:`optim.campaign.insights`
through the cached loaders.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from optim.ui import cache, figures
from optim.ui.common import selected_campaign_tables, show_error

__all__ = ["render", "reference_options"]

_REL_COLUMNS = {
    "label": st.column_config.TextColumn("shape"),
    "status": st.column_config.TextColumn("status"),
    "trial": st.column_config.TextColumn("trial"),
    "p_front": st.column_config.ProgressColumn(
        "P(on front)", min_value=0.0, max_value=1.0, format="percent"
    ),
    "p_beats": st.column_config.ProgressColumn(
        "P(beats ref.)",
        min_value=0.0,
        max_value=1.0,
        format="percent",
        help="P(lower expected loss than the reference)",
    ),
    "delta_mean": st.column_config.NumberColumn("loss - ref.", format="%+.4f"),
    "delta_q05": st.column_config.NumberColumn("q05", format="%+.4f"),
    "delta_q95": st.column_config.NumberColumn("q95", format="%+.4f"),
    "tps_ratio": st.column_config.NumberColumn("tokens/s vs ref.", format="x%.2f"),
    "pred_loss_mean": st.column_config.NumberColumn("pred. loss", format="%.4f"),
    "pred_loss_q05": st.column_config.NumberColumn("q05", format="%.4f"),
    "pred_loss_q95": st.column_config.NumberColumn("q95", format="%.4f"),
    "pred_tokens_per_s": st.column_config.NumberColumn("tokens/s", format="%.0f"),
}


def reference_options(
    trials: pd.DataFrame, pool: pd.DataFrame, references: pd.DataFrame, budget: float
) -> dict[str, str]:
    """Reference keys (what :func:`optim.ui.cache.relative` takes) and their labels: the
    default, trials, the pool's likeliest front shapes and the published models nearest the
    budget first."""
    import math

    out = {cache.REFERENCE_DEFAULT: "best observed run (else best predicted shape)"}
    for row in trials.to_dict("records"):
        if row.get("status") in ("observed", "pending"):
            out[f"trial {int(row['trial'])}"] = (
                f"trial {int(row['trial'])}: {row['label']} ({row['status']})"
            )
    for row in pool[pool["eligible"]].head(15).to_dict("records"):
        key = (
            f"trial {int(row['trial'])}"
            if pd.notna(row["trial"])
            else f"candidate {row['candidate']}"
        )
        out.setdefault(key, f"{row['label']} (P(front) {row['p_front']:.0%})")
    if len(references):
        order = sorted(
            references.to_dict("records"),
            key=lambda r: abs(math.log(float(r["non_embedding_params"]) / budget)),
        )
        for row in order:
            out[f"ref {row['label']}"] = f"{row['label']} (published model)"
    return out


def _offset(name: str, store: str, version: float) -> None:
    off = cache.learned_offset(name, store, version)
    c = st.columns(4)
    c[0].metric(
        "Learned offset",
        f"{off['offset_mean']:+.3f} +- {off['offset_sd']:.3f}",
        help="how far the campaign's losses sit from the law's prediction, shared by "
        "every shape (posterior mean +- sd, loss units)",
    )
    c[1].metric("Offset sd before any run", f"{off['prior_offset_sd']:.3f}")
    c[2].metric(
        "Typical 90% band of a shape",
        f"{off['marginal_band']:.3f}",
        help="median width of a candidate's predicted-loss band: includes the offset",
    )
    c[3].metric(
        "... of a difference between shapes",
        f"{off['relative_band']:.3f}",
        help="median width of the band of (shape - best predicted shape) from joint "
        "draws: the shared offset cancels",
    )
    st.caption(
        f"{off['n_runs']} observed run(s). A shape's own band carries the offset every "
        "shape shares; comparing shapes, it cancels -- use the relative view below to rank."
    )


@st.fragment
def _why(name: str, store: str, version: float, trials: pd.DataFrame) -> None:
    """Why a pending trial was proposed (a fragment: choosing another reruns only this part)."""
    st.subheader("Why this proposal")
    pending = trials[trials["status"] == "pending"] if len(trials) else trials
    if pending.empty:
        st.info("No pending trial: propose a batch on the Campaigns page.")
        return
    options = [int(t) for t in pending["trial"]]
    trial = st.selectbox(
        "Pending trial",
        options,
        key="nr_trial",
        format_func=lambda t: f"trial {t}: {pending.set_index('trial').loc[t, 'label']}",
    )
    try:
        why = cache.why_proposal(name, store, version, int(trial))
    except Exception as exc:  # noqa: BLE001 - shown to the user
        show_error(exc, f"Explaining trial {trial}")
        return
    st.markdown(why["summary"])
    c = st.columns(3)
    c[0].metric(
        "EHVI now",
        f"{why['ehvi_now']:.3g}",
        help="hypervolume a run of it is expected to add to the observed runs' now",
    )
    c[1].metric(
        "P(improves front)",
        "n/a" if why["p_improves_front"] is None else f"{why['p_improves_front']:.0%}",
        help="P(a run of it is not dominated by the observed runs), run noise included",
    )
    c[2].metric("P(on front)", f"{why['p_on_front']:.0%}", help="P(on the predicted front)")
    c = st.columns(3)
    c[0].metric(
        "EHVI at proposal",
        "-" if why["ehvi"] is None else f"{why['ehvi']:.3g}",
        help="what the acquisition computed when it was proposed (reference point of then)",
    )
    m, lo, hi = why["delta_loss"]
    c[1].metric(
        "Loss vs best",
        f"{m:+.4f}",
        help=f"expected loss minus the {why['best']['kind']}'s ({why['best']['label']}); "
        f"90%: [{lo:+.4f}, {hi:+.4f}]",
    )
    r, rlo, rhi = why["tps_ratio"]
    c[2].metric("Tokens/s vs best", f"{r - 1:+.1%}", help=f"90%: [{rlo - 1:+.1%}, {rhi - 1:+.1%}]")


def _history(name: str, store: str, version: float) -> None:
    st.subheader("Hypervolume over trials")
    hv = cache.hypervolume_history(name, store, version)
    ref_loss, ref_tps = hv["ref_point"]
    if hv["history"].empty:
        st.info("No observed run yet: the hypervolume starts with the first result.")
    else:
        st.plotly_chart(
            figures.hypervolume_figure(hv["history"], hv["predicted_front_hypervolume"]),
            key="nr_hv",
        )
    st.caption(
        f"Area dominated by the observed runs in (-loss, log tokens/s) above the "
        f"reference point (loss {ref_loss:.3f}, {ref_tps:,.0f} tokens/s); dashed: the "
        f"predicted Pareto set's ({hv['predicted_front_hypervolume']:.3g})."
    )


@st.fragment
def _relative(
    name: str, store: str, version: float, tables: dict[str, pd.DataFrame], budget: float
) -> None:
    """Every pool shape against a chosen reference (a fragment, like :func:`_why`)."""
    st.subheader("Relative to a reference")
    pool = cache.relative(name, store, version, cache.REFERENCE_DEFAULT)
    options = reference_options(tables["trials"], pool, tables["references"], budget)
    if st.session_state.get("nr_reference") not in options:
        st.session_state.pop("nr_reference", None)
    key = st.selectbox(
        "Reference", list(options), key="nr_reference", format_func=lambda k: options[k]
    )
    try:
        table = cache.relative(name, store, version, key)
    except Exception as exc:  # noqa: BLE001
        show_error(exc, "Relative predictions")
        return
    ref = table[table["is_reference"]].iloc[0]
    name = options[key] if key.startswith(("ref ", "trial ")) else "shape"
    st.caption(
        f"Reference: **{ref['label']}** ({name}). Expected loss of each shape minus the "
        "reference's and tokens/s over its, from 512 joint draws of the campaign's model "
        "(what both share cancels); P(on the front) among the "
        f"{int(table['eligible'].sum())} proposable shapes nearest the predicted front."
    )
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(
            figures.relative_figure(table, reference=str(ref["label"])), key="nr_rel_chart"
        )
    with right:
        show = st.segmented_control(
            "Rows",
            ["likeliest on the front", "trials", "all"],
            default="likeliest on the front",
            key="nr_rows",
        )
        rows = (
            table[table["status"].isin(["observed", "pending"]) | table["is_reference"]]
            if show == "trials"
            else table
            if show == "all"
            else table.head(25)
        )
        rows = rows.assign(trial=[f"{int(t)}" if pd.notna(t) else "" for t in rows["trial"]])
        st.dataframe(
            rows[[c for c in _REL_COLUMNS if c in rows]],
            hide_index=True,
            width="stretch",
            column_config=_REL_COLUMNS,
            height=460,
        )


def render() -> None:
    st.title("Next run")
    st.caption(
        "What the campaign's own model -- the law prior and a GP, conditioned on its runs "
        "-- says about what to train next."
    )
    selected = selected_campaign_tables()
    if selected is None:
        return
    name, store_path, tables = selected
    store = str(store_path)
    version = cache.store_version(store_path)
    budget = float(cache.load_campaign(name, store, version).spec.params)
    try:
        _offset(name, store, version)
        left, right = st.columns([3, 2])
        with left:
            _why(name, store, version, tables["trials"])
        with right:
            _history(name, store, version)
        _relative(name, store, version, tables, budget)
        if len(tables["references"]):  # drawn now, so choosing a published model is immediate
            cache.campaign_draws(name, store, version, True)
    except Exception as exc:  # noqa: BLE001 - shown to the user
        show_error(exc, f"The model of campaign {name!r}")
