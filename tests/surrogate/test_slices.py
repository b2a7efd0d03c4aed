"""Slices through a law posterior (what the scaling-law page draws)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from support import small_posterior

from surrogate.runs import bundled_runs
from surrogate.slices import band_coverage, law_sweep, runs_near_slice, typical_slice


@pytest.fixture(scope="module")
def post():
    return small_posterior()


@pytest.mark.parametrize("knob", ["tokens", "non_embedding_params"])
def test_loss_falls_along_size_and_tokens(post, knob):
    sweep = law_sweep(
        post, knob, n_params=1e8, tokens=2e9, d_over_sqrt_n=0.08, r=3.0, vocab_size=32000
    )
    assert len(sweep) >= 5
    sweep = sweep.sort_values("x")
    assert np.all(np.diff(sweep["mean"].to_numpy()) < 0)
    q = sweep[["q05", "q25", "q50", "q75", "q95"]].to_numpy()
    assert np.all(np.diff(q, axis=1) >= 0)


def test_every_sweep_point_is_a_real_shape_near_the_slice(post):
    sweep = law_sweep(
        post, "d_over_sqrt_n", n_params=1e8, tokens=2e9, d_over_sqrt_n=0.08, r=3.0, vocab_size=32000
    )
    assert sweep["x"].between(0.025, 0.16).all()
    assert sweep["label"].str.startswith("d").all()
    with pytest.raises(ValueError, match="unknown knob"):
        law_sweep(post, "n_heads", n_params=1e8, tokens=2e9, d_over_sqrt_n=0.08, r=3.0)


def test_typical_slice_is_the_most_populated_cell():
    runs = bundled_runs()
    morph = runs[runs["source"] == runs["source"].iloc[0]]
    n, d = typical_slice(morph)
    assert 1e6 < n < 1e11 and 1e8 < d < 1e13
    assert typical_slice(morph.iloc[:0]) == (1e9, 2e10)


def test_runs_near_slice_and_coverage():
    runs = pd.DataFrame(
        {
            "non_embedding_params": [1e8, 1.1e8, 5e8],
            "tokens": [2e9, 2e9, 2e9],
            "loss": [3.0, 2.9, 2.5],
            "run": ["a", "b", "c"],
            "d_over_sqrt_n": [0.05, 0.06, 0.07],
        }
    )
    near = runs_near_slice(runs, "d_over_sqrt_n", 1e8, 2e9, 1.2)
    assert list(near["label"]) == ["a", "b"]
    table = runs.assign(pred_q05=2.0, pred_q25=2.95, pred_q75=3.05, pred_q95=3.5)
    cov = band_coverage(table)
    assert cov == {"cov50": pytest.approx(1 / 3), "cov90": pytest.approx(1.0)}
