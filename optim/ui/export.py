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
from optim.ui.common import current_campaign, show_error, store_path

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
    name = current_campaign()
    if not name:
        st.info("No campaign selected: create one on the Campaigns page.")
        return
    store = store_path()
    version = cache.store_version(store)
    try:
        files = cache.export_files(name, str(store), version)
    except Exception as exc:  # noqa: BLE001 - shown to the user
        show_error(exc, f"Exporting campaign {name!r}")
        return
    configs = config_files(files)
    tables = [p for p in files if p not in configs]
    st.caption(f"The files `archopt pareto {name} --export DIR` writes: {len(configs)} config(s) "
               f"and {', '.join(tables) or 'no tables'}.")
    if not configs:
        st.info("The predicted Pareto front is empty: propose and record results first.")
        return
    chosen = st.multiselect("Configs", configs, default=configs, key="export_chosen",
                            format_func=lambda p: str(PurePosixPath(p).parent) or p)
    picked = {p: files[p] for p in chosen}
    c = st.columns(len(tables) + 1)
    c[0].download_button(f"Download {len(chosen)} config(s) + tables (zip)",
                         data=zip_bytes({**picked, **{t: files[t] for t in tables}}),
                         file_name=f"{name}-pareto.zip", mime="application/zip",
                         key="export_zip", disabled=not chosen, type="primary")
    for i, t in enumerate(tables, start=1):
        mime = "text/csv" if t.endswith(".csv") else "application/json"
        c[i].download_button(f"Download {t}", data=files[t], file_name=PurePosixPath(t).name,
                             mime=mime, key=f"export_table_{t}")
    for p in chosen:
        with st.expander(p):
            st.download_button(f"Download {p}", data=files[p], file_name="config.json",
                               mime="application/json", key=f"export_cfg_{p}")
            st.code(files[p].decode(), language="json")
