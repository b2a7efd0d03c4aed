"""The app's pure figure builders: what they draw follows from the tables they get."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from optim.ui import figures


def _table(n: int, prefix: str, rng: np.random.Generator) -> pd.DataFrame:
    mean = 3.0 + rng.random(n)
    return pd.DataFrame(
        {
            "key": [f"{prefix} {i}" for i in range(n)],
            "label": [f"{prefix}-{i}" for i in range(n)],
            "pred_loss_mean": mean,
            "pred_loss_q05": mean - 0.1,
            "pred_loss_q95": mean + 0.2,
            "pred_tokens_per_s": 1000 + 100 * rng.random(n),
            "d_model": 512,
            "n_layers": 8,
            "ffn_dim": 1536,
            "params": 5e7,
        }
    )


def test_pareto_figure_layers_error_bars_and_keys():
    rng = np.random.default_rng(0)
    cands, front, refs = (
        _table(30, "candidate", rng),
        _table(4, "front", rng),
        _table(2, "ref", rng),
    )
    trials = _table(3, "trial", rng).assign(observed_loss=[3.1, np.nan, 3.3])
    fig = figures.pareto_figure(cands, trials, front, refs, selected="trial 2")
    names = [t.name for t in fig.data]
    assert names[:5] == [
        "candidates (30)",
        "trials (3)",
        "observed loss",
        "predicted Pareto front",
        "reference models",
    ]
    assert names[-1] == "selected"
    cand = fig.data[0]
    # Asymmetric 5-95% bars: +0.2 above, 0.1 below the mean.
    np.testing.assert_allclose(cand.error_y.array, 0.2)
    np.testing.assert_allclose(cand.error_y.arrayminus, 0.1)
    assert [c[0] for c in cand.customdata] == list(cands["key"])
    observed = fig.data[2]
    assert list(observed.y) == [3.1, 3.3]  # the NaN trial is not drawn as observed
    front_trace = fig.data[3]
    assert list(front_trace.x) == sorted(front_trace.x)  # the front is a line in x order
    sel = fig.data[-1]
    assert sel.x[0] == trials.loc[2, "pred_tokens_per_s"]


def test_pareto_figure_throughput_bars_where_the_table_has_them():
    rng = np.random.default_rng(4)
    front = _table(2, "front", rng)
    front["pred_tokens_per_s_q05"] = front["pred_tokens_per_s"] * 0.9
    front["pred_tokens_per_s_q95"] = front["pred_tokens_per_s"] * 1.2
    fig = figures.pareto_figure(_table(3, "candidate", rng), front=front)
    assert fig.data[0].error_x.array is None  # candidates carry no throughput interval
    f = fig.data[1]
    np.testing.assert_allclose(f.error_x.array, 0.2 * np.asarray(f.x))
    np.testing.assert_allclose(f.error_x.arrayminus, 0.1 * np.asarray(f.x))


def test_pareto_figure_many_candidates_use_webgl_without_bars():
    rng = np.random.default_rng(1)
    fig = figures.pareto_figure(_table(1000, "candidate", rng))
    assert fig.data[0].type == "scattergl"
    assert fig.data[0].error_y.array is None


def test_pareto_figure_requires_columns():
    with pytest.raises(KeyError, match="pred_tokens_per_s"):
        figures.pareto_figure(pd.DataFrame({"key": ["a"], "pred_loss_mean": [3.0]}))


def test_selected_keys_reads_customdata_from_event():
    event = {
        "selection": {
            "points": [
                {"customdata": ["trial 1"]},
                {"customdata": ["ref X"]},
                {"customdata": ["trial 1"]},
                {"x": 1.0},
            ]
        }
    }
    assert figures.selected_keys(event) == ["trial 1", "ref X"]
    assert figures.selected_keys(None) == []
    assert figures.selected_keys({"selection": {"points": []}}) == []


def test_trial_bands_figure():
    trials = pd.DataFrame(
        {
            "trial": [1, 0],
            "pred_loss_mean": [3.0, 3.2],
            "pred_loss_q05": [2.9, 3.0],
            "pred_loss_q95": [3.1, 3.5],
            "observed_loss": [np.nan, 3.25],
        }
    )
    fig = figures.trial_bands_figure(trials)
    assert list(fig.data[0].y) == ["trial 0", "trial 1"]
    np.testing.assert_allclose(fig.data[0].error_x.array, [0.3, 0.1])
    assert list(fig.data[1].x) == [3.25]


@pytest.mark.parametrize("kind", ["histogram", "violin"])
def test_posterior_figure_one_panel_per_coefficient(kind):
    rng = np.random.default_rng(2)
    samples = {
        "E": rng.normal(1.7, 0.1, (2, 50)),
        "alpha": rng.normal(0.3, 0.02, 100),
        "beta": rng.normal(0.3, 0.02, 100),
        "a1": rng.normal(0.1, 0.01, 100),
    }
    prior = {"E": rng.normal(1.8, 0.5, 200)}
    fig = figures.posterior_figure(samples, kind=kind, prior_samples=prior, ncols=3)
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["E", "alpha", "beta", "a1"]
    assert len(fig.data) == 5  # four posteriors + one prior
    posterior_e = [t for t in fig.data if t.name == "posterior"][0]
    assert len(posterior_e.x if kind == "histogram" else posterior_e.y) == 100  # chains flattened
    with pytest.raises(ValueError):
        figures.posterior_figure(samples, kind="box")


def test_band_figure_sorts_x_and_draws_bands():
    x = [3.0, 1.0, 2.0]
    q = pd.DataFrame(
        {
            "q05": [2.5, 0.5, 1.5],
            "q25": [2.8, 0.8, 1.8],
            "q50": [3.0, 1.0, 2.0],
            "q75": [3.2, 1.2, 2.2],
            "q95": [3.5, 1.5, 2.5],
        }
    )
    obs = pd.DataFrame({"x": [1.5], "loss": [1.4], "label": ["run"]})
    fig = figures.band_figure(x, q, x_title="r", observed=obs, marker_x=2.0)
    band90, band50, median, observed = fig.data
    assert list(median.x) == [1.0, 2.0, 3.0] and list(median.y) == [1.0, 2.0, 3.0]
    assert list(band90.y) == [1.5, 2.5, 3.5, 2.5, 1.5, 0.5]  # upper forward, lower back
    assert observed.name == "observed runs (1)"
    with pytest.raises(ValueError, match="3 values"):
        figures.band_figure(x, q.iloc[:2], x_title="r")


def test_calibration_figure_reports_coverage():
    table = pd.DataFrame(
        {
            "loss": [3.0, 3.5, 2.0, 2.5],
            "pred_q50": [3.0, 3.0, 2.1, 2.4],
            "pred_q05": [2.9, 2.9, 2.0, 2.3],
            "pred_q95": [3.1, 3.1, 2.2, 2.6],
            "group": ["a", "a", "b", "b"],
        }
    )
    fig = figures.calibration_figure(table)
    assert [t.name for t in fig.data] == ["a (50% inside 90%)", "b (100% inside 90%)", "y = x"]


def test_law_comparison_and_throughput_figures():
    table = pd.DataFrame(
        {
            "law": ["chinchilla", "conditional", "chinchilla", "conditional"],
            "method": ["lsq", "lsq", "nuts", "nuts"],
            "rmse": [0.05, 0.03, 0.06, 0.02],
        }
    )
    fig = figures.law_comparison_figure(table, metric="rmse")
    assert [t.name for t in fig.data] == ["lsq", "nuts"]
    tp = pd.DataFrame(
        {
            "predicted": [100.0, 200.0],
            "measured": [110.0, 190.0],
            "n_layers": [12, 24],
            "group": ["x", "x"],
        }
    )
    parity = figures.throughput_parity_figure(tp)
    assert parity.layout.xaxis.type == "log" and parity.data[-1].name == "y = x"
    res = figures.residual_figure(tp, x="n_layers")
    np.testing.assert_allclose(res.data[0].y, np.log([1.1, 0.95]))


def test_pareto_figure_labels_shared_reference_shapes_once():
    rng = np.random.default_rng(3)
    refs = _table(3, "ref", rng)
    refs.loc[1, ["pred_loss_mean", "pred_tokens_per_s"]] = refs.loc[
        0, ["pred_loss_mean", "pred_tokens_per_s"]
    ]
    fig = figures.pareto_figure(_table(5, "candidate", rng), references=refs)
    ref_trace = [t for t in fig.data if t.name == "reference models"][0]
    assert list(ref_trace.text) == ["ref-0 / ref-1", "", "ref-2"]


def test_hardware_figure_groups_by_hardware_and_hatches_what_does_not_fit():
    table = pd.DataFrame(
        {
            "label": ["a", "a", "b", "b"],
            "hardware": ["h100", "l4"] * 2,
            "tokens_per_s": [1000.0, 100.0, 500.0, 50.0],
            "fits_in_memory": [True, True, True, False],
            "rel_sigma": [0.1] * 4,
        }
    )
    fig = figures.hardware_figure(table)
    assert [t.name for t in fig.data] == ["a", "b"]
    assert list(fig.data[1].x) == ["h100", "l4"]
    assert list(fig.data[1].marker.pattern.shape) == ["", "/"]
    np.testing.assert_allclose(
        fig.data[0].error_y.array, np.array([1000.0, 100.0]) * (np.exp(0.16448536) - 1)
    )
