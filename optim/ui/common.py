"""Pieces every page shares: the campaign picker in the sidebar and small formatting helpers.

The picker is drawn by ``app.py`` before the page runs, so its value (``st.session_state
["campaign"]``) survives page switches; pages read it with :func:`current_campaign`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import streamlit as st

from optim.ui import cache

__all__ = [
    "CAMPAIGN_KEY",
    "SELECT_NEXT_KEY",
    "campaign_picker",
    "current_campaign",
    "store_path",
    "show_error",
    "fmt_params",
    "results_dir",
    "RESULTS_ENV",
]

#: Environment variable: the folder of benchmark results the app shows (default ./results,
#: the repository's, since the README starts the app from the repository root).
RESULTS_ENV = "ARCHOPT_RESULTS"

#: Session-state key of the selected campaign name.
CAMPAIGN_KEY = "campaign"
#: A page sets this to select a campaign on the next run (a widget's own key cannot be set
#: after the widget is drawn in the same run).
SELECT_NEXT_KEY = "_select_campaign_next"


def results_dir() -> Path:
    """Where the benchmarks wrote their reports (``$ARCHOPT_RESULTS`` or ``./results``)."""
    return Path(os.environ.get(RESULTS_ENV) or Path.cwd() / "results")


def store_path() -> Path:
    """The campaign store the app reads (``$ARCHOPT_HOME/campaigns.sqlite``)."""
    from optim.campaign.store import default_store_path

    return Path(default_store_path())


def campaign_picker() -> str | None:
    """Sidebar selectbox over the campaigns in the default store; returns the chosen name."""
    names = cache.campaign_names(str(store_path()), cache.store_version(store_path()))
    with st.sidebar:
        st.caption(f"store: `{store_path()}`")
        if not names:
            st.info("No campaigns yet: create one on the Campaigns page.")
            st.session_state.pop(CAMPAIGN_KEY, None)
            return None
        wanted = st.session_state.pop(SELECT_NEXT_KEY, None)
        if wanted in names:
            st.session_state[CAMPAIGN_KEY] = wanted
        if st.session_state.get(CAMPAIGN_KEY) not in names:
            st.session_state[CAMPAIGN_KEY] = names[0]
        return st.selectbox("Campaign", names, key=CAMPAIGN_KEY)


def current_campaign() -> str | None:
    """The campaign picked in the sidebar (None when the store is empty)."""
    name = st.session_state.get(CAMPAIGN_KEY)
    return str(name) if name else None


def selected_campaign_tables() -> tuple[str, Path, dict[str, Any]] | None:
    """``(name, store, cached tables)`` of the sidebar's campaign, or None after telling the
    user why (no campaign yet, or it failed to load)."""
    name = current_campaign()
    if not name:
        st.info("No campaign selected: create one on the Campaigns page.")
        return None
    store = store_path()
    try:
        tables = cache.campaign_tables(name, str(store), cache.store_version(store))
    except Exception as exc:  # noqa: BLE001 - shown to the user
        show_error(exc, f"Loading campaign {name!r}")
        return None
    return name, store, tables


def show_error(exc: BaseException, what: str) -> None:
    """One red box for a user error (:class:`~models.errors.ArchoptError`), a trace otherwise."""
    from models.errors import ArchoptError

    if isinstance(exc, ArchoptError):
        st.error(f"{what}: {exc}")
    else:
        st.error(f"{what} failed unexpectedly: {type(exc).__name__}: {exc}")
        st.exception(exc)


def fmt_params(n: Any) -> str:
    """``1235814400 -> '1.24B'``, ``52_000_000 -> '52.0M'``."""
    n = float(n)
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    return f"{n:,.0f}"
