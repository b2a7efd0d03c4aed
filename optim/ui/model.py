"""Model page: the campaign's own model checked and explored.

Checks: leave-one-out modelled-vs-observed on the campaign's runs (as Ax's cross-validation
plot) with an alert for every result outside its 90% band, the prior's weight and its LOO rank
correlation (when the campaign reports them), the throughput calibration's domain against the
campaign's workload, and the law prior's calibration on its own runs (a warning when off).
Explore: parallel coordinates of trials and front, the sensitivity of predicted loss and
tokens/s to each knob, and slices of the model through one shape. Every number comes from
:mod:`optim.campaign.insights` through the cached loaders.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from optim.ui import cache, figures
from optim.ui.common import selected_campaign_tables, show_error

__all__ = ["render", "trust_values"]


def trust_values(status: dict[str, Any]) -> tuple[str, str]:
    """``(prior weight, LOO Spearman)`` as shown: the campaign's numbers when its status has
    them, ``"n/a"`` otherwise (before three runs the rank correlation is undefined)."""
    weight, rho = status.get("prior_weight"), status.get("prior_loo_spearman")
    return (
        "n/a" if weight is None else f"{float(weight):.2f}",
        "n/a" if rho is None else f"{float(rho):+.2f}",
    )


def _trust(name: str, store: str, version: float) -> None:
    st.subheader("Prior weight and trust")
    status = cache.campaign_status(name, store, version)
    weight, rho = trust_values(status)
    c = st.columns(3)
    c[0].metric(
        "Prior weight",
        weight,
        help="the law prior's weight in the loss model, learned "
        "from how well it ranks the campaign's runs out of sample",
    )
    c[1].metric(
        "LOO rank correlation",
        rho,
        help="Spearman correlation of the law-prior "
        "model's leave-one-out predictions with the observed losses (3+ runs)",
    )
    c[2].metric("Observed runs", status.get("n_observed", 0))


def _loo(name: str, store: str, version: float) -> None:
    st.subheader("Leave-one-out: modelled vs observed")
    table = cache.loo_check(name, store, version)
    if table.empty:
        st.info(
            "No observed run yet: each result will be checked against the band the model "
            "predicts for it from the other runs."
        )
        return
    for row in table[table["outside"]].to_dict("records"):
        side = "below" if row["observed"] < row["pred_q05"] else "above"
        st.warning(
            f"Trial {row['trial']} ({row['label']}): observed loss {row['observed']:.4f} "
            f"is {side} its 90% band [{row['pred_q05']:.4f}, {row['pred_q95']:.4f}] "
            "predicted from the other runs.",
            icon=":material/warning:",
        )
    left, right = st.columns([3, 2])
    left.plotly_chart(figures.loo_figure(table), key="model_loo")
    inside = int((~table["outside"]).sum())
    right.caption(
        f"Each run predicted by the model refitted without it (hyper-parameters and "
        f"the prior's weight included), as Ax's cross-validation plot. {inside} of "
        f"{len(table)} inside their 90% band."
    )
    right.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            c: st.column_config.NumberColumn(format="%.4f")
            for c in ("observed", "pred_mean", "pred_q05", "pred_q95")
        },
    )


def _throughput(name: str, store: str, version: float) -> None:
    st.subheader("Throughput calibration against the workload")
    dom = cache.throughput_domain(name, store, version)
    fitted = "; ".join(dom["calibrated_workloads"]) or "none recorded"
    st.markdown(
        f"Campaign workload: `{dom['campaign_workload']}`  \n"
        f"Calibration {dom['pair']}: {dom['n_points']} measurement(s), fitted at: "
        f"{fitted} ({dom['source']})"
    )
    for message in dom["warnings"]:
        st.warning(message, icon=":material/speed:")
    if dom["covers"]:
        st.caption("The calibration was fitted at this workload: its per-shape error applies.")


def _prior(name: str, store: str, version: float) -> None:
    st.subheader("The law prior's calibration")
    cov = cache.prior_coverage(name, store, version)
    if cov["n"] == 0:
        st.info(
            f"The bundled tables have no run of source {cov['source']!r} to check the "
            "prior's bands against."
        )
        return
    text = f"Source {cov['source']}: {cov['message']}"
    if cov["off"]:
        st.warning(text, icon=":material/rule:")
    else:
        st.caption(text)


def _checks(name: str, store: str, version: float) -> None:
    _loo(name, store, version)
    left, right = st.columns(2)
    with left:
        _trust(name, store, version)
        _prior(name, store, version)
    with right:
        _throughput(name, store, version)


def _explore(name: str, store: str, version: float, trials: pd.DataFrame) -> None:
    from optim.campaign.insights import KNOBS

    st.subheader("Parallel coordinates: trials and the predicted front")
    par = cache.parallel_coordinates(name, store, version)
    if par.empty:
        st.info("No trial and no front yet.")
    else:
        st.plotly_chart(figures.parallel_figure(par, KNOBS), key="model_parallel")
    st.subheader("Sensitivity of predicted loss and tokens/s to each knob")
    sens = cache.sensitivity(name, store, version)
    st.plotly_chart(figures.sensitivity_figure(sens), key="model_sensitivity")
    st.caption(
        "Share of the variance over the proposable candidates that each knob explains "
        "alone (the correlation ratio, a first-order Sobol index on the candidate set: "
        "knobs are tied by the budget), signed by direction; the number in brackets is "
        "the range of the per-level means (loss units, or the tokens/s factor)."
    )
    _slices(name, store, version, trials)


@st.fragment
def _slices(name: str, store: str, version: float, trials: pd.DataFrame) -> None:
    """Slices through a chosen shape (a fragment: choosing another reruns only this part)."""
    from optim.campaign.insights import KNOBS

    st.subheader("Slices of the campaign's model")
    centres = {"": "best observed run (else best predicted shape)"}
    for row in trials.to_dict("records"):
        centres[f"trial {int(row['trial'])}"] = f"trial {int(row['trial'])}: {row['label']}"
    pick = st.selectbox(
        "Through", list(centres), key="model_centre", format_func=lambda k: centres[k]
    )
    centre = None
    if pick:
        centre = _candidate_of_trial(name, store, version, int(pick.split()[1]))
    slices = cache.model_slices(name, store, version, centre)
    here = slices[slices["is_centre"]]
    if len(here):
        st.caption(
            f"Through {here.iloc[0]['label']}: along each knob, the candidate nearest "
            "it in the other knobs (the budget ties them, so others move a little)."
        )
    grid = st.columns(2)
    for i, (knob, title) in enumerate(KNOBS):
        part = slices[slices["knob"] == knob]
        with grid[i % 2]:
            st.plotly_chart(
                figures.slice_figure(part, knob_title=title, trials=trials, knob=knob, log_x=False),
                key=f"model_slice_{knob}",
            )


def _candidate_of_trial(name: str, store: str, version: float, trial: int) -> int:
    from optim.campaign import insights

    campaign = cache.load_campaign(name, store, version)
    return insights.reference_index(campaign, f"trial {trial}")


def render() -> None:
    st.title("Model")
    st.caption(
        "The campaign's own loss model (law prior + GP, conditioned on its runs): how well "
        "it predicted the runs so far, and what it says across the knobs."
    )
    selected = selected_campaign_tables()
    if selected is None:
        return
    name, store_path, tables = selected
    store, version = str(store_path), cache.store_version(store_path)
    tabs = st.tabs(["Checks", "Explore"])
    try:
        with tabs[0]:
            _checks(name, store, version)
        with tabs[1]:
            _explore(name, store, version, tables["trials"])
    except Exception as exc:  # noqa: BLE001 - shown to the user
        show_error(exc, f"The model of campaign {name!r}")
