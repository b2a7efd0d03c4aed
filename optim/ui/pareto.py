"""Pareto page: predicted loss (5-95% bars) against throughput for a campaign.

Candidates, trials (with observed losses), the predicted Pareto front and published reference
models on one interactive chart. Clicking or box-selecting a point shows its architecture and
numbers; a selectbox does the same without the mouse.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from models.arch import SHAPE_FIELDS
from optim.ui import cache, figures
from optim.ui.common import fmt_params, selected_campaign_tables

__all__ = ["render", "CHART_KEY", "PICK_KEY", "trials_now"]

CHART_KEY = "pareto_chart"
PICK_KEY = "pareto_pick"
_SEEN_KEY = "_pareto_seen_selection"


def trials_now(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials at the current model's prediction (``pred_*_now``), the proposal-time values kept
    as ``*_at_proposal``: the chart compares every point under one model."""
    if trials.empty or "pred_loss_mean_now" not in trials:
        return trials
    out = trials.copy()
    for column in ("pred_loss_mean", "pred_loss_q05", "pred_loss_q95", "pred_tokens_per_s"):
        out[f"{column}_at_proposal"] = out[column]
        out[column] = pd.to_numeric(out[f"{column}_now"], errors="coerce")
    return out


def _lookup(tables: dict[str, pd.DataFrame]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in ("front", "trials", "references", "candidates"):
        df = tables[name]
        if len(df):
            for row in df.to_dict("records"):
                out.setdefault(row["key"], row)
    return out


def _sync_pick_with_chart() -> None:
    """A new chart selection (click, box, lasso) becomes the picked architecture."""
    keys = figures.selected_keys(st.session_state.get(CHART_KEY))
    if keys and keys != st.session_state.get(_SEEN_KEY):
        st.session_state[PICK_KEY] = keys[0]
    st.session_state[_SEEN_KEY] = keys


def _details(row: dict[str, Any]) -> None:
    from models.arch import Arch

    st.subheader(row.get("label") or row["key"])
    cols = st.columns(4)
    now = "pred_loss_mean_at_proposal" in row
    cols[0].metric(
        "Predicted loss now" if now else "Predicted loss",
        f"{row['pred_loss_mean']:.4f}",
        help="posterior-predictive mean of a new run given every result so far; the "
        "range is its 5-95% interval",
    )
    cols[0].caption(
        f"5-95%: {row.get('pred_loss_q05', float('nan')):.4f} - "
        f"{row.get('pred_loss_q95', float('nan')):.4f}"
    )
    if now and pd.notna(row.get("pred_loss_mean_at_proposal")):
        cols[0].caption(
            f"at proposal: {row['pred_loss_mean_at_proposal']:.4f} "
            f"[{row['pred_loss_q05_at_proposal']:.4f}, "
            f"{row['pred_loss_q95_at_proposal']:.4f}]"
        )
    cols[1].metric("Throughput", f"{row['pred_tokens_per_s']:,.0f} tok/s")
    cols[2].metric(
        "Params", fmt_params(row.get("params", float("nan"))), help="total, with embeddings"
    )
    cols[2].caption(f"non-embedding: {fmt_params(row.get('non_embedding_params', float('nan')))}")
    observed = row.get("observed_loss")
    if observed is not None and pd.notna(observed):
        cols[3].metric("Observed loss", f"{observed:.4f}")
    elif pd.notna(row.get("reported_loss", float("nan"))):
        cols[3].metric(
            "Reported loss",
            f"{row['reported_loss']:.4f}",
            help="published loss (different data/tokenizer than the campaign)",
        )
    else:
        cols[3].metric("Status", str(row.get("status", row.get("source", "candidate"))))
    shape: dict[str, Any] = {k: row[k] for k in SHAPE_FIELDS if k in row}
    derived = {
        k: row[k]
        for k in ("mlp_attn_ratio", "d_over_sqrt_n", "aspect_ratio", "gqa_group", "ehvi")
        if k in row and pd.notna(row[k])
    }
    left, right = st.columns(2)
    values: dict[str, Any] = {**shape, **{k: f"{v:.4g}" for k, v in derived.items()}}
    left.dataframe(
        pd.DataFrame({"value": values}).astype(str),
        width="stretch",
        height=35 * (len(values) + 1) + 3,
    )
    if all(k in row for k in SHAPE_FIELDS):
        right.code(json.dumps(Arch.from_mapping(row).to_hf_config(), indent=2), language="json")


def render() -> None:
    st.title("Pareto front")
    selected = selected_campaign_tables()
    if selected is None:
        return
    name, store, tables = selected
    tables = {**tables, "trials": trials_now(tables["trials"])}
    lookup = _lookup(tables)
    budget = float(cache.load_campaign(name, str(store), cache.store_version(store)).spec.params)
    c = st.columns(4)
    show_cands = c[0].checkbox("Candidates", value=True, key="pareto_show_candidates")
    refs = tables["references"]
    near = (
        refs["non_embedding_params"].between(budget / 3, budget * 3).any() if len(refs) else False
    )
    show_refs = c[1].checkbox(
        "Reference models",
        value=bool(near),
        key="pareto_show_refs",
        help="published shapes predicted by this campaign's models "
        "(other parameter counts: their loss is far off the band)",
    )
    log_x = c[2].checkbox("Log throughput axis", value=False, key="pareto_log_x")
    cand_bars = c[3].checkbox(
        "Candidate error bars", value=len(tables["candidates"]) <= 400, key="pareto_cand_bars"
    )

    _chart_and_details(
        name,
        tables,
        lookup,
        show_cands=show_cands,
        show_refs=show_refs,
        cand_bars=cand_bars,
        log_x=log_x,
    )
    with st.expander(f"Predicted Pareto front ({len(tables['front'])} architectures)"):
        st.dataframe(tables["front"], hide_index=True, width="stretch")


@st.fragment
def _chart_and_details(
    name: str,
    tables: dict[str, pd.DataFrame],
    lookup: dict[str, dict[str, Any]],
    *,
    show_cands: bool,
    show_refs: bool,
    cand_bars: bool,
    log_x: bool,
) -> None:
    """The chart and the picked point's details (a fragment: a click reruns only this part)."""
    _sync_pick_with_chart()
    options = list(lookup)
    if st.session_state.get(PICK_KEY) not in lookup:
        st.session_state[PICK_KEY] = options[0]
    fig = figures.pareto_figure(
        tables["candidates"] if show_cands else None,
        tables["trials"],
        tables["front"],
        tables["references"] if show_refs else None,
        selected=st.session_state[PICK_KEY],
        candidate_error_bars=cand_bars,
        log_x=log_x,
        title=f"{name}: {len(tables['candidates'])} candidates, {len(tables['trials'])} trials",
    )
    st.plotly_chart(
        fig, key=CHART_KEY, on_select="rerun", selection_mode=("points", "box", "lasso")
    )
    st.caption(
        "Every point is the campaign model's current prediction (trials too: their "
        "proposal-time predictions are on the Campaigns page); observed losses are red "
        "crosses. Click a point (or drag a box) to inspect it; the legend toggles layers."
    )
    pick = st.selectbox(
        "Architecture",
        options,
        key=PICK_KEY,
        format_func=lambda k: f"{k}: {lookup[k].get('label', '')}",
    )
    _details(lookup[pick])
