"""Throughput page: the calibrated roofline model against measurements, per hardware.

Shows the calibration in force for (hardware, backend), every successful measurement (the
measurement cache plus the bundled published latencies) against the model's prediction for the
same workload, and the calibration residuals ``log(measured / model)``.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from optim.ui import cache, figures
from optim.ui.common import current_campaign, show_error, store_path

__all__ = ["render"]


def _home_version() -> float:
    from models.hardware import USER_HARDWARE_FILE
    from models.home import archopt_home
    from models.measure import default_cache_path
    from models.throughput import USER_CALIBRATION_FILE

    home = archopt_home()
    return max(
        cache.file_version(home / USER_HARDWARE_FILE),
        cache.file_version(home / USER_CALIBRATION_FILE),
        cache.store_version(default_cache_path()),
    )


def render() -> None:
    st.title("Throughput model")
    st.caption(
        "A roofline model of generation time (prefill + decode, FLOP- or bandwidth-bound, "
        "plus per-layer and per-step overheads), calibrated per hardware and backend."
    )
    from models.throughput import BACKENDS

    version = _home_version()
    hardware = cache.hardware_ids(version)
    ids = [h for h, _ in hardware]
    names = dict(hardware)
    col1, col2 = st.columns(2)
    default = ids.index("a100-40gb") if "a100-40gb" in ids else 0
    hw = col1.selectbox(
        "Hardware", ids, index=default, format_func=lambda h: f"{h} ({names[h]})", key="tp_hardware"
    )
    backends = list(BACKENDS)
    backend = col2.selectbox(
        "Backend", backends, key="tp_backend", index=backends.index(_campaign_backend(backends))
    )

    try:
        cal = cache.calibration_table(hw, backend, version)
        table = cache.throughput_measurements(hw, backend, version)
    except Exception as exc:  # noqa: BLE001 - shown to the user
        show_error(exc, "Reading calibration and measurements")
        return

    st.subheader("Calibration in force")
    c = st.columns(5)
    c[0].metric("FLOP efficiency", f"{cal['flops_efficiency']:.3g}")
    c[1].metric("Bandwidth efficiency", f"{cal['bandwidth_efficiency']:.3g}")
    c[2].metric("Per-layer overhead", f"{cal['layer_overhead_s'] * 1e3:.3g} ms")
    c[3].metric("Per-step overhead", f"{cal['step_overhead_s'] * 1e3:.3g} ms")
    c[4].metric("Uncertainty (log sd)", f"{cal['rel_sigma']:.3f}")
    fitted = "; ".join(cal.get("workloads") or []) or "no recorded workload"
    st.caption(f"{cal['n_points']} measurement(s), fitted at: {fitted}; source: {cal['source']}")
    _campaign_domain(hw, backend)

    _measurements(hw, backend, cal, table)
    _across_hardware(version)


def _campaign_backend(backends: list[str]) -> str:
    """The sidebar campaign's serving backend (the first backend without a campaign)."""
    name = current_campaign()
    if not name:
        return backends[0]
    try:
        store = store_path()
        backend = cache.load_campaign(
            name, str(store), cache.store_version(store)
        ).spec.workload.backend
    except Exception:  # noqa: BLE001 - the page shows the load error further down
        return backends[0]
    return backend if backend in backends else backends[0]


def _campaign_domain(hw: str, backend: str) -> None:
    """The sidebar campaign's calibration caveats, when it uses this (hardware, backend)."""
    name = current_campaign()
    if not name:
        return
    try:
        store = store_path()
        dom = cache.throughput_domain(name, str(store), cache.store_version(store))
    except Exception as exc:  # noqa: BLE001
        show_error(exc, f"Loading campaign {name!r}")
        return
    if dom["pair"] != f"{hw}/{backend}":
        return
    for message in dom["warnings"]:
        st.warning(
            f"Campaign {name} (workload {dom['campaign_workload']}): {message}",
            icon=":material/speed:",
        )


def _measurements(hw: str, backend: str, cal: dict, table: pd.DataFrame) -> None:
    st.subheader("Model versus measurements")
    if table.empty:
        st.info(
            f"No measurements for {hw}/{backend} yet: `archopt measure` times a shape on "
            "this machine and `archopt calibrate` refits the constants; measurements land "
            "in $ARCHOPT_HOME/measurements.sqlite."
        )
        return
    plot = table.assign(group=table["origin"].str.slice(0, 48))
    x = st.selectbox(
        "Residuals against",
        ["n_layers", "params", "batch_size", "input_len", "d_model"],
        key="tp_residual_x",
    )
    left, right = st.columns(2)
    left.plotly_chart(
        figures.throughput_parity_figure(plot, title=f"{hw} / {backend}: model vs measured"),
        key="tp_parity",
    )
    right.plotly_chart(
        figures.residual_figure(
            plot, x=x, log_x=x in ("params", "batch_size"), title="calibration residuals"
        ),
        key="tp_residuals",
    )
    rms = float((table["residual"] ** 2).mean() ** 0.5)
    st.caption(
        f"RMS log residual over {len(table)} measurement(s): {rms:.3f} "
        f"(the calibration's held-out estimate: {cal['rel_sigma']:.3f})."
    )
    st.dataframe(
        table[
            [
                "label",
                "d_model",
                "n_layers",
                "params",
                "batch_size",
                "input_len",
                "output_len",
                "measured_s",
                "predicted_s",
                "measured",
                "predicted",
                "residual",
                "origin",
            ]
        ],
        hide_index=True,
        width="stretch",
        column_config={
            "params": st.column_config.NumberColumn(format="compact"),
            "measured_s": st.column_config.NumberColumn("measured s", format="%.3f"),
            "predicted_s": st.column_config.NumberColumn("model s", format="%.3f"),
            "measured": st.column_config.NumberColumn("measured tok/s", format="%.1f"),
            "predicted": st.column_config.NumberColumn("model tok/s", format="%.1f"),
            "residual": st.column_config.NumberColumn("log(meas/model)", format="%+.3f"),
        },
    )


def _across_hardware(version: float) -> None:
    """The campaign's Pareto set (or the reference models) priced on every hardware profile."""
    from models.arch import SHAPE_FIELDS

    st.subheader("Model across hardware")
    name = current_campaign()
    shapes, workload = [], "batch=1,input=128,output=256"
    if name:
        try:
            store = store_path()
            version_store = cache.store_version(store)
            campaign = cache.load_campaign(name, str(store), version_store)
            front = cache.campaign_tables(name, str(store), version_store)["front"]
            workload = str(campaign.spec.workload)
            shapes = [
                (f"{i + 1:02d} {r['label']}", tuple(r[f] for f in SHAPE_FIELDS))
                for i, r in enumerate(front.head(5).to_dict("records"))
            ]
        except Exception as exc:  # noqa: BLE001
            show_error(exc, f"Loading campaign {name!r}")
    refs = cache.reference_table()
    shapes += [
        (r["name"], tuple(r[f] for f in SHAPE_FIELDS))
        for r in refs.to_dict("records")
        if r["name"] in ("Llama-3.2-1B", "Llama-3.2-3B", "Llama-3.1-8B")
    ]
    workload = st.text_input(
        "Workload",
        value=workload,
        key="tp_workload",
        help="batch=..,input=..,output=..[,dtype=..][,backend=hf|vllm]",
    )
    try:
        table = cache.hardware_comparison(tuple(shapes), workload, version)
    except Exception as exc:  # noqa: BLE001
        show_error(exc, "Predicting throughput")
        return
    st.caption(
        (f"The first {len(shapes) - 3} architectures of {name}'s Pareto set and " if name else "")
        + "Llama reference shapes; hatched bars do not fit the device memory."
    )
    st.plotly_chart(figures.hardware_figure(table), key="tp_hardware_chart")
    pivot = table.pivot(index="label", columns="hardware", values="tokens_per_s")
    st.dataframe(
        pivot.loc[list(dict.fromkeys(table["label"]))],
        width="stretch",
        column_config={c: st.column_config.NumberColumn(format="%.0f") for c in pivot.columns},
    )
