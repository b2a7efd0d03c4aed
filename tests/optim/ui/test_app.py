"""Every page of the Streamlit app under ``streamlit.testing`` (no browser).

Pages are run through small scripts that draw the sidebar picker and call the page's
``render()``, exactly what ``app.py`` does after navigation. Most tests use a quick least-squares
prior fitted on the Morph runs (about a second) instead of the package's NUTS default, each with
its own ``$ARCHOPT_HOME``; one test opens the home of the session's real ``archopt demo`` run
(``real_demo`` in conftest: the real default prior and the demo campaign, nothing faked).
Also checked: the shipped ``.streamlit/config.toml`` is what Streamlit reads from the repo root.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tomllib
import zipfile

import numpy as np
import pandas as pd
import pytest
from support import REPO

from surrogate import prior

TIMEOUT = 240
PICKER = "from optim.ui.common import campaign_picker\ncampaign_picker()\n"


def _page_script(module: str) -> str:
    return PICKER + f"from optim.ui import {module}\n{module}.render()\n"


def _app(module: str):
    from streamlit.testing.v1 import AppTest

    return AppTest.from_string(_page_script(module), default_timeout=TIMEOUT)


def _values(array) -> list:
    """A plotly JSON array as a list (numpy arrays are sent as ``{"dtype", "bdata"}``)."""
    import base64

    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


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
    import surrogate.prior

    fake = lambda *a, **k: tiny_prior  # noqa: E731
    # Both the package's lazy attribute and the module the campaign imports from.
    monkeypatch.setitem(vars(surrogate), "default_prior", fake)
    monkeypatch.setattr(surrogate.prior, "default_prior", fake)
    # No shipped prior either: the pages must behave as on a home where nothing is fitted yet.
    monkeypatch.setattr(surrogate.prior, "SHIPPED_PRIOR", archopt_home / "no-shipped-prior.nc")
    st.cache_data.clear()
    st.cache_resource.clear()
    yield archopt_home
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def real_home(real_demo, monkeypatch):
    """The real demo's ARCHOPT_HOME (its default prior and campaign), empty Streamlit caches."""
    import streamlit as st

    assert real_demo.returncode == 0, real_demo.stderr[-3000:]
    monkeypatch.setenv("ARCHOPT_HOME", str(real_demo.home))
    st.cache_data.clear()
    st.cache_resource.clear()
    yield real_demo.home
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.mark.slow
def test_pages_on_the_real_demo_campaign_and_default_prior(real_home):
    """The app as a user opens it after ``make demo``: the demo campaign with its four pending
    proposals, the Pareto chart and the campaign's NUTS prior, all without a fake."""
    from streamlit.testing.v1 import AppTest

    from optim.campaign import Campaign

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT).run()
    _no_exception(at)
    assert at.sidebar.selectbox(key="campaign").value == "demo-1b"
    assert at.header[0].value == "demo-1b"
    assert [m.value for m in at.metric][1:4] == ["4", "4", "0"]  # trials, pending, observed
    trials = next(d.value for d in at.dataframe if "pred_loss_q05" in d.value)
    assert len(trials) == 4 and trials["pred_loss_q05"].lt(trials["pred_loss_q95"]).all()

    at = _app("pareto").run()
    _no_exception(at)
    assert len(at.get("plotly_chart")) == 1
    assert len(Campaign.load("demo-1b").pareto()) >= 1

    at = _app("scaling_law").run()
    _no_exception(at)
    assert at.radio(key="sl_kind").value == "campaign prior"
    # the campaign prior is the default prior: its law (stacked) fitted by NUTS
    assert [m.value for m in at.metric][:2] == [prior.DEFAULT_PRIOR_SETTINGS["law"], "bayes"]


def test_shipped_streamlit_config_keeps_the_app_local():
    """`.streamlit/config.toml` binds to localhost, sends no usage statistics and asks for no
    e-mail; Streamlit run from the repo root (as the README says) reads exactly these values."""
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "localhost"
    assert config["server"]["showEmailPrompt"] is False
    assert config["browser"]["gatherUsageStats"] is False
    assert set(config["server"]["allowedHosts"]) <= {"localhost", "127.0.0.1", "::1"}
    code = (
        "from streamlit import config\n"
        "config.get_config_options(force_reparse=True)\n"
        "print([config.get_option(k) for k in ('server.address', 'browser.gatherUsageStats',"
        " 'server.showEmailPrompt')])\n"
    )
    env = {**os.environ, "HOME": str(REPO / ".streamlit" / "no-such-home")}  # no user config
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert out.strip().splitlines()[-1] == "['localhost', False, False]"


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
    # The Llama shapes priced on every hardware profile (one bar series per profile).
    from models.hardware import list_hardware

    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    bars = [s for s in specs if s["data"] and s["data"][0]["type"] == "bar"]
    assert len(bars) == 1 and len(bars[0]["data"]) == 3  # Llama-3.2-1B, -3B, 3.1-8B
    assert all(len(trace["x"]) == len(list_hardware()) for trace in bars[0]["data"])
    at.text_input(key="tp_workload").input("batch=oops").run()
    assert any("not an integer" in e.value for e in at.error)
    at.selectbox(key="tp_residual_x").set_value("params").run()
    _no_exception(at)
    at.selectbox(key="tp_hardware").set_value("cpu").run()
    _no_exception(at)
    assert any("No measurements for cpu/hf" in i.value for i in at.info)


@pytest.mark.slow
def test_scaling_law_page_shows_posterior_bands_and_terms(home, tiny_prior):
    at = _app("scaling_law").run()
    _no_exception(at)
    assert at.radio(key="sl_kind").value == "default prior"  # no campaign yet
    # Not fitted in this home: nothing is fitted until the user asks (issue 16.6).
    assert not at.metric and any("not fitted" in i.value for i in at.info)
    at.button(key="sl_fit_default").click().run()
    _no_exception(at)
    assert [m.value for m in at.metric][:2] == ["conditional", "lsq"]
    assert len(at.get("plotly_chart")) >= 7  # posteriors, 5 sweeps, calibration
    # Terms the Morph runs cannot identify were held fixed and are reported as such.
    assert any("b1, b2" in c.value for c in at.caption)
    summary = at.dataframe[0].value
    assert set(tiny_prior.law_obj.param_names) <= set(summary.index)
    from optim.ui.scaling_law import VALIDATION_RESULTS

    if VALIDATION_RESULTS.exists():  # the surrogate benchmark's results, one chart per split
        assert at.selectbox(key="sl_val_metric").value == "mape"
        at.selectbox(key="sl_val_metric").set_value("cov90").run()
        _no_exception(at)
        at.radio(key="sl_val_role").set_value("dev").run()
        _no_exception(at)
    at.radio(key="sl_plot_kind").set_value("violin").run()
    _no_exception(at)
    at.number_input(key="sl_n_m").set_value(300.0).run()  # a new slice re-sweeps every knob
    _no_exception(at)
    assert any(c.value.startswith("Slice: N = 300.0M") for c in at.caption)


def test_validation_results_become_rows_and_checks():
    """The page reads the benchmark's JSON (no Markdown parsing): rows per split, law and
    variant (a re-run fit listed twice counts once) and the target checks."""
    from optim.ui.scaling_law import validation_frames

    row = {"table": "t.csv", "split": "largest", "role": "test", "law": "aspect", "mape": 1.0}
    results = {
        "rows": [
            {**row, "variant": "lsq"},
            {**row, "variant": "bayes", "mape": 2.0},
            {**row, "variant": "bayes", "mape": 0.5},
        ],
        "checks": [{"law": "aspect", "kind": "accuracy", "ok": False}],
    }
    rows, checks = validation_frames(results)
    assert rows.set_index("variant")["mape"].to_dict() == {"lsq": 1.0, "bayes": 0.5}
    assert checks["ok"].tolist() == [False]
    assert validation_frames({})[0].empty


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


def _csv(rows: list[dict]) -> bytes:
    return pd.DataFrame(rows).to_csv(index=False).encode()


@pytest.mark.slow
def test_campaign_lifecycle_through_the_pages(home):
    """Create, propose, record, upload (bad, then good), inspect the Pareto chart, export."""
    from optim.campaign import Campaign

    at = _app("campaigns").run()
    _no_exception(at)
    assert at.expander[0].proto.expanded  # the create form opens when there is no campaign
    at.text_input(key="new_name").input("small")
    # A prior run table that does not validate: the error names the file, nothing is created.
    bad_table = (
        (REPO / "surrogate" / "data" / "morph_runs.csv")
        .read_bytes()
        .replace(b",1610612736,4.9619,", b",1610612736,-1,", 1)
    )
    at.file_uploader(key="new_runs").set_value([("prior.csv", bad_table, "text/csv")])
    at.button(key="FormSubmitter:create_campaign-Create campaign").click().run()
    _no_exception(at)
    assert any("Campaign not created" in e.value and "prior.csv" in e.value for e in at.error)
    from optim.campaign import list_campaigns

    assert list_campaigns() == []
    at.file_uploader(key="new_runs").set_value(None)
    at.number_input(key="new_params_m").set_value(50.0)
    at.number_input(key="new_tokens_b").set_value(1.0)
    at.number_input(key="new_band").set_value(0.02)
    at.text_input(key="new_workload").input("batch=8,input=512,output=128")
    at.button(key="FormSubmitter:create_campaign-Create campaign").click().run()
    _no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert at.sidebar.selectbox(key="campaign").value == "small"
    assert at.header[0].value == "small"
    assert [m.value for m in at.metric][1:4] == ["0", "0", "0"]

    at.number_input(key="propose_k").set_value(2)
    at.button(key="FormSubmitter:propose-Propose next batch").click().run()
    _no_exception(at)
    assert any("Proposed trials 0, 1" in s.value for s in at.success)
    trials = at.dataframe[1].value
    assert (
        list(trials["trial"]) == [0, 1]
        and trials["pred_loss_q05"].lt(trials["pred_loss_q95"]).all()
    )
    # "at proposal" and "now" side by side, labelled; identical until a result arrives.
    np.testing.assert_allclose(trials["pred_loss_mean"], trials["pred_loss_mean_now"], atol=1e-9)
    bands = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    assert [t["name"] for t in bands] == ["predicted at proposal (5-95%)", "predicted now (5-95%)"]

    # Issue 16 form bugs: the record box offers the new pending trials (not "no trial waits")
    assert at.selectbox(key="record_trial").options == ["trial 0", "trial 1"]
    assert at.selectbox(key="record_trial").value == 0
    at.selectbox(key="record_trial").set_value(1)
    assert at.number_input(key="record_loss").value is None  # no pre-filled 0.0 to submit
    at.button(key="FormSubmitter:record-Record result").click().run()
    assert any("enter its observed" in e.value for e in at.error)
    assert all(t["observed_loss"] is None for t in Campaign.load("small").trials())
    at.number_input(key="record_loss").set_value(3.25)
    at.button(key="FormSubmitter:record-Record result").click().run()
    _no_exception(at)
    assert any("Recorded trial 1" in s.value for s in at.success)
    # ... and after recording, the loss is empty again and only trial 0 is offered.
    assert at.number_input(key="record_loss").value is None
    assert at.selectbox(key="record_trial").options == ["trial 0"]
    campaign = Campaign.load("small")
    assert [(t["trial"], t["observed_loss"]) for t in campaign.trials()] == [(0, None), (1, 3.25)]
    # The pending trial's prediction moved with the result: both are shown, and said to differ.
    trials = next(d.value for d in at.dataframe if "pred_loss_mean_now" in d.value)
    now = {t["trial"]: t["pred_loss_mean_now"] for t in campaign.trials(now=True)}
    assert trials.set_index("trial")["pred_loss_mean_now"].to_dict() == pytest.approx(now)
    assert any("at proposal** is out of date" in i.value for i in at.info)

    # A duplicate name: the error shows although the create form is collapsed (a campaign exists).
    assert not at.expander[0].proto.expanded
    at.text_input(key="new_name").input("small")
    at.button(key="FormSubmitter:create_campaign-Create campaign").click().run()
    _no_exception(at)
    assert any("already exists" in e.value for e in at.error)

    # A bad upload is rejected with its file and row named, and nothing is recorded.
    pending = [t for t in campaign.trials() if t["trial"] == 0][0]
    row = {
        "source": "mine",
        "run": "r0",
        **{
            k: pending[k]
            for k in (
                "d_model",
                "n_layers",
                "n_heads",
                "n_kv_heads",
                "head_dim",
                "ffn_dim",
                "vocab_size",
                "tie_embeddings",
            )
        },
        "params": pending["params"],
        "tokens": 1e9,
        "loss": 3.3,
        "loss_kind": "val",
    }
    at.file_uploader(key="observe_runs").set_value(
        ("bad.csv", _csv([{**row, "loss": "nan?"}]), "text/csv")
    ).run()
    _no_exception(at)
    assert any("bad.csv" in e.value and "nothing saved" in e.value for e in at.error)
    assert Campaign.load("small").trials()[0]["observed_loss"] is None
    at.file_uploader(key="observe_runs").set_value(("runs.csv", _csv([row]), "text/csv")).run()
    _no_exception(at)
    at.button(key="observe_runs_go").click().run()
    _no_exception(at)
    assert any("Recorded 1 run" in s.value for s in at.success)
    assert Campaign.load("small").trials()[0]["observed_loss"] == pytest.approx(3.3)

    # Pareto: the chart (trials at the current model's prediction), and the fallback selectbox
    # shows the picked architecture.
    at = _app("pareto").run()
    _no_exception(at)
    assert len(at.get("plotly_chart")) == 1
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    trial_trace = next(t for t in chart if t["name"].startswith("trials ("))
    current = {
        f"trial {t['trial']}": t["pred_loss_mean_now"]
        for t in Campaign.load("small").trials(now=True)
    }
    assert dict(
        zip([c[0] for c in trial_trace["customdata"]], _values(trial_trace["y"]))
    ) == pytest.approx(current)
    at.selectbox(key="pareto_pick").set_value("ref Llama-3.2-1B").run()
    _no_exception(at)
    assert at.subheader[0].value == "Llama-3.2-1B"
    hf = json.loads(at.code[0].value)
    assert hf["hidden_size"] == 2048 and hf["num_hidden_layers"] == 16

    # Scaling law defaults to the campaign's own prior and its (N, D).
    at = _app("scaling_law").run()
    _no_exception(at)
    assert at.radio(key="sl_kind").value == "campaign prior"
    assert at.number_input(key="sl_n_m").value == pytest.approx(50.0)

    # Export: the same files as `archopt pareto --export`, then a subset.
    at = _app("export").run()
    _no_exception(at)
    front = Campaign.load("small").pareto()
    labels = at.multiselect(key="export_chosen").value
    assert len(labels) == len(front)
    zipped = at.get("download_button")
    assert zipped, "no download buttons"
    from optim.ui import cache

    files = cache.export_files(
        "small",
        str(home / "campaigns.sqlite"),
        cache.store_version(home / "campaigns.sqlite"),
        None,
    )
    with zipfile.ZipFile(io.BytesIO(_zip_of(files))) as zf:
        names = zf.namelist()
    assert "pareto.csv" in names and "pareto.json" in names
    assert sum(n.endswith("/config.json") for n in names) == len(front)
    cli_dir = home / "cli-export"
    written = Campaign.load("small").export(cli_dir)
    assert sorted(files) == sorted(p.relative_to(cli_dir).as_posix() for p in written)
    if len(front) > 1:
        at.multiselect(key="export_chosen").set_value([0]).run()
        _no_exception(at)
        assert sum(e.label.endswith("config.json") for e in at.expander) == 1


def _zip_of(files: dict[str, bytes]) -> bytes:
    from optim.ui.export import zip_bytes

    return zip_bytes(files)


@pytest.fixture
def two_runs(home, tiny_prior):
    """A 50M / 1B-token campaign (tiny prior) with three proposals, two of them observed."""
    from models.throughput import Workload
    from optim.campaign import Campaign, CampaignSpec

    spec = CampaignSpec(
        name="runs",
        params=5e7,
        tokens=1e9,
        hardware="a100-40gb",
        band=0.02,
        workload=Workload(8, 512, 128),
    )
    campaign = Campaign.create(spec, prior=tiny_prior, progress=False)
    rows = campaign.propose(3, seed=0)
    for row, delta in zip(rows[:2], (0.02, -0.01)):
        campaign.observe(row["trial"], row["pred_loss_mean"] + delta)
    return Campaign.load("runs")


@pytest.mark.slow
def test_next_run_and_model_pages_on_a_campaign_with_two_runs(two_runs):
    """Why the pending proposal, hypervolume over trials, the relative view against every kind
    of reference, and the model's checks and views -- all from optim.campaign.insights."""
    from optim.campaign import insights

    at = _app("next_run").run()
    _no_exception(at)
    assert at.title[0].value == "Next run"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["P(improves front)"].endswith("%") and float(metrics["EHVI now"]) >= 0
    assert "Learned offset" in metrics and metrics["Loss vs best"].startswith(("+", "-"))
    why = insights.why_proposal(two_runs, 2)
    assert any(m.value == why["summary"] for m in at.markdown)
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    hv = next(s for s in specs if s["data"][0]["name"] == "observed runs")
    assert _values(hv["data"][0]["y"])[-1] == pytest.approx(
        insights.hypervolume_history(two_runs)["history"]["hypervolume"].iloc[-1]
    )
    ref = at.selectbox(key="nr_reference")
    assert ref.value == "default" and "Llama-3.2-1B (published model)" in ref.options
    assert [o.split(":")[0] for o in ref.options if o.startswith("trial ")] == [
        "trial 0",
        "trial 1",
        "trial 2",
    ]
    table = next(d.value for d in at.dataframe if "p_front" in d.value)
    best = insights.reference_index(two_runs, "best")
    assert table.iloc[0]["label"] == two_runs.problem.candidates[best].label()
    assert table.iloc[0]["delta_mean"] == 0
    for key in ("trial 2", "ref Llama-3.2-1B"):
        at.selectbox(key="nr_reference").set_value(key).run()
        _no_exception(at)
        table = next(d.value for d in at.dataframe if "p_front" in d.value)
        assert table.iloc[0]["delta_mean"] == 0 and table["p_beats"].between(0, 1).all()
    assert table.iloc[0]["label"] == "d2048-L16-h32/8x64-f8192"  # Llama-3.2-1B's shape

    at = _app("model").run()
    _no_exception(at)
    loo = insights.loo_check(two_runs)
    outside = loo[loo["outside"]]
    assert sum("predicted from the other runs" in w.value for w in at.warning) == len(outside)
    labels = [m.label for m in at.metric]
    assert "Prior weight" in labels and "LOO rank correlation" in labels
    domain = insights.throughput_domain(two_runs)
    assert all(any(msg in w.value for w in at.warning) for msg in domain["warnings"])
    types = [json.loads(c.proto.spec)["data"][0]["type"] for c in at.get("plotly_chart")]
    assert types.count("parcoords") == 1 and types.count("bar") == 1
    assert len(types) == 1 + 1 + 1 + len(insights.KNOBS)  # LOO, parallel, sensitivity, slices
    at.selectbox(key="model_centre").set_value("trial 2").run()
    _no_exception(at)
    assert any("Through " + two_runs.trial_records()[2].arch.label() in c.value for c in at.caption)


def test_model_page_shows_n_a_for_missing_trust_values():
    from optim.ui.model import trust_values

    assert trust_values({}) == ("n/a", "n/a")
    assert trust_values({"prior_weight": 0.8, "prior_loo_spearman": None}) == ("0.80", "n/a")
    assert trust_values({"prior_weight": 0.25, "prior_loo_spearman": -0.5}) == ("0.25", "-0.50")


def test_insight_figures_draw_the_tables_they_get():
    from optim.campaign.insights import KNOBS
    from optim.ui import figures

    rel = pd.DataFrame(
        {
            "label": ["a", "b", "c"],
            "status": ["candidate", "pending", "candidate"],
            "delta_mean": [0.0, -0.01, 0.02],
            "delta_q05": [0.0, -0.03, 0.0],
            "delta_q95": [0.0, 0.01, 0.04],
            "tps_ratio": [1.0, 1.2, 0.9],
            "tps_ratio_q05": [1.0, 1.1, 0.8],
            "tps_ratio_q95": [1.0, 1.3, 1.0],
            "p_front": [0.5, 0.4, 0.1],
            "p_beats": [0.0, 0.8, 0.1],
            "is_reference": [True, False, False],
        }
    )
    fig = figures.relative_figure(rel, reference="a")
    assert [t.name for t in fig.data] == ["pending", "candidate", "reference: a"]
    np.testing.assert_allclose(fig.data[0].error_y.array, [0.02])
    hist = pd.DataFrame(
        {
            "n_observed": [1, 2],
            "trial": [3, 5],
            "hypervolume": [0.1, 0.1],
            "improved": [True, False],
        }
    )
    fig = figures.hypervolume_figure(hist, 0.3)
    assert list(fig.data[0].y) == [0.0, 0.1, 0.1] and list(fig.data[1].text) == ["trial 3"]
    loo = pd.DataFrame(
        {
            "trial": [0, 1],
            "observed": [3.0, 3.5],
            "pred_mean": [3.0, 3.1],
            "pred_q05": [2.9, 3.0],
            "pred_q95": [3.1, 3.2],
            "outside": [False, True],
        }
    )
    fig = figures.loo_figure(loo)
    assert [t.name for t in fig.data] == ["inside its 90% band", "outside its 90% band", "y = x"]
    par = pd.DataFrame(
        {
            "group": ["observed", "front"],
            "loss": [3.0, 2.9],
            "tokens_per_s": [100.0, 90.0],
            **{k: [1.0, 2.0] for k, _ in KNOBS},
        }
    )
    fig = figures.parallel_figure(par, KNOBS)
    assert [d.label for d in fig.data[0].dimensions][:2] == ["group", "d_model"]
    assert list(fig.data[0].dimensions[0].values) == [0.0, 2.0]


@pytest.mark.slow
def test_a_result_outside_its_band_is_a_visible_warning(two_runs):
    """The campaign API warns (PriorBandWarning) when a new result falls outside the band the
    other runs predict; the page shows that warning instead of leaving it in the server log."""
    at = _app("campaigns").run()
    _no_exception(at)
    pending = next(t for t in two_runs.trials(now=True) if t["status"] == "pending")
    at.selectbox(key="record_trial").set_value(pending["trial"])
    at.number_input(key="record_loss").set_value(round(pending["pred_loss_q95_now"] + 0.5, 4))
    at.button(key="FormSubmitter:record-Record result").click().run()
    _no_exception(at)
    assert any(f"Recorded trial {pending['trial']}" in s.value for s in at.success)
    assert any("is above" in w.value and "90% band" in w.value for w in at.warning), [
        w.value for w in at.warning
    ]
