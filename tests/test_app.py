"""Every page of the Streamlit app under ``streamlit.testing`` (no browser).

Pages are run through small scripts that draw the sidebar picker and call the page's
``render()``, exactly what ``app.py`` does after navigation. The law prior is a quick least-
squares fit on the Morph runs (about a second) instead of the package's NUTS default, and every
test has its own ``$ARCHOPT_HOME``.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 240
PICKER = "from optim.ui.common import campaign_picker\ncampaign_picker()\n"


def _page_script(module: str) -> str:
    return (PICKER +
            f"from optim.ui import {module}\n"
            f"{module}.render()\n")


def _app(module: str):
    from streamlit.testing.v1 import AppTest

    return AppTest.from_string(_page_script(module), default_timeout=TIMEOUT)


def _no_exception(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


@pytest.fixture(scope="module")
def tiny_prior():
    from surrogate import bundled_path, fit_lsq, load_runs

    runs = load_runs(bundled_path("morph_runs.csv"))
    return fit_lsq(runs, "conditional", n_starts=2).to_posterior(200)


@pytest.fixture
def home(archopt_home, tiny_prior, monkeypatch):
    """A fresh ARCHOPT_HOME, the tiny prior as the default prior, and empty Streamlit caches."""
    import streamlit as st

    import surrogate

    # Set in the package namespace directly: the lazy attribute would import the real module.
    monkeypatch.setitem(vars(surrogate), "default_prior", lambda *a, **k: tiny_prior)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield archopt_home
    st.cache_data.clear()
    st.cache_resource.clear()


def test_app_entry_navigation_lists_every_page(home):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT).run()
    _no_exception(at)
    assert at.title[0].value == "Campaigns"  # the default page
    assert any("No campaigns yet" in i.value for i in at.sidebar.info)


def test_throughput_page_compares_model_and_measurements(home):
    at = _app("throughput").run()
    _no_exception(at)
    assert at.title[0].value == "Throughput model"
    # A100-40GB/hf: the bundled calibration and the three published Morph-1B latencies.
    assert at.selectbox(key="tp_hardware").value == "a100-40gb"
    table = at.dataframe[0].value
    assert sorted(table["label"]) == ["Morph-1B", "Morph-1B-v1", "Morph-1B-v2"]
    assert np.all(np.abs(table["residual"]) < 0.2)
    at.selectbox(key="tp_residual_x").set_value("params").run()
    _no_exception(at)
    at.selectbox(key="tp_hardware").set_value("cpu").run()
    _no_exception(at)
    assert any("No measurements for cpu/hf" in i.value for i in at.info)


def test_scaling_law_page_shows_posterior_bands_and_terms(home, tiny_prior):
    at = _app("scaling_law").run()
    _no_exception(at)
    assert at.radio(key="sl_kind").value == "default prior"  # no campaign yet
    assert [m.value for m in at.metric][:2] == ["conditional", "lsq"]
    keys = {c.proto.id for c in at.get("plotly_chart")}
    assert len(at.get("plotly_chart")) >= 7  # posteriors, 5 sweeps, calibration
    # Terms the Morph runs cannot identify were held fixed and are reported as such.
    assert any("b1, b2" in c.value for c in at.caption)
    summary = at.dataframe[0].value
    assert set(tiny_prior.law_obj.param_names) <= set(summary.index)
    at.radio(key="sl_plot_kind").set_value("violin").run()
    _no_exception(at)
    at.number_input(key="sl_r").set_value(1.0).run()
    _no_exception(at)
    at.number_input(key="sl_n_m").set_value(300.0).run()
    _no_exception(at)
    assert keys


def test_upload_validation_rejects_bad_tables():
    from models.errors import ArchoptError
    from optim.ui.campaigns import read_run_tables

    good = (REPO / "surrogate" / "data" / "morph_runs.csv").read_bytes()

    class Upload(io.BytesIO):
        def __init__(self, name, data):
            super().__init__(data)
            self.name = name

    table = read_run_tables([Upload("morph.csv", good)])
    assert len(table) == 76
    bad = good.replace(b"open-lm-morph,80M_v1-20N,512,8", b"open-lm-morph,80M_v1-20N,abc,8", 1)
    with pytest.raises(ArchoptError, match="bad.csv"):
        read_run_tables([Upload("bad.csv", bad)])
    with pytest.raises(ArchoptError):
        read_run_tables([Upload("empty.csv", b"")])
