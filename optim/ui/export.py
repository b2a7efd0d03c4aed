"""Export page: download the Pareto-optimal configs.

The files are exactly what ``archopt pareto --export DIR`` writes (:meth:`Campaign.export`):
one HF ``config.json`` per architecture plus ``pareto.csv`` and ``pareto.json``. Choose which
configs to take; they come as single files or one zip.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import PurePosixPath

import streamlit as st

from optim.ui import cache
from optim.ui.common import selected_campaign_tables, show_error

__all__ = ["render", "config_files", "zip_bytes"]


def config_files(files: dict[str, bytes]) -> list[str]:
    """The per-architecture ``config.json`` paths among the exported files, in order."""
    return [p for p in files if PurePosixPath(p).name == "config.json"]


def zip_bytes(files: dict[str, bytes]) -> bytes:
    """A zip archive of ``relative path -> bytes``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return buffer.getvalue()


def render() -> None:
    st.title("Export")
    selected = selected_campaign_tables()
    if selected is None:
        return
    name, store, tables = selected
    front = tables["front"]
    st.caption(
        f"The files `archopt pareto {name} --export DIR` writes: one HF config.json per "
        "Pareto-optimal architecture, pareto.csv and pareto.json."
    )
    if front.empty:
        st.info("The Pareto set is empty (constraints exclude every candidate).")
        return
    shown = front.assign(rank=range(1, len(front) + 1))[
        [
            "rank",
            "label",
            "source",
            "pred_loss_mean",
            "pred_loss_q05",
            "pred_loss_q95",
            "observed_loss",
            "pred_tokens_per_s",
            "params",
            "trial",
        ]
    ]
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        column_config={
            "pred_loss_mean": st.column_config.NumberColumn("pred. loss", format="%.4f"),
            "pred_loss_q05": st.column_config.NumberColumn("q05", format="%.4f"),
            "pred_loss_q95": st.column_config.NumberColumn("q95", format="%.4f"),
            "observed_loss": st.column_config.NumberColumn("observed", format="%.4f"),
            "pred_tokens_per_s": st.column_config.NumberColumn("tokens/s", format="%.0f"),
            "params": st.column_config.NumberColumn(format="compact"),
        },
    )
    labels = [f"{i + 1:02d} {r['label']}" for i, r in enumerate(front.to_dict("records"))]
    chosen = st.multiselect(
        "Architectures to export (ranks as in the table)",
        list(range(len(front))),
        default=list(range(len(front))),
        key="export_chosen",
        format_func=lambda i: labels[i],
    )
    if not chosen:
        st.info("Choose at least one architecture.")
        return
    ranks = None if len(chosen) == len(front) else tuple(sorted(chosen))
    try:
        files = cache.export_files(name, str(store), cache.store_version(store), ranks)
    except Exception as exc:  # noqa: BLE001
        show_error(exc, f"Exporting campaign {name!r}")
        return
    configs = config_files(files)
    table_files = [p for p in files if p not in configs]
    c = st.columns(len(table_files) + 1)
    c[0].download_button(
        f"Download all ({len(configs)} configs + tables, zip)",
        data=zip_bytes(files),
        file_name=f"{name}-pareto.zip",
        mime="application/zip",
        key="export_zip",
        type="primary",
    )
    for i, t in enumerate(table_files, start=1):
        mime = "text/csv" if t.endswith(".csv") else "application/json"
        c[i].download_button(
            f"Download {t}",
            data=files[t],
            file_name=PurePosixPath(t).name,
            mime=mime,
            key=f"export_table_{t}",
        )
    for p in configs:
        with st.expander(p):
            st.download_button(
                f"Download {p}",
                data=files[p],
                file_name="config.json",
                mime="application/json",
                key=f"export_cfg_{p}",
            )
            st.code(files[p].decode(), language="json")
