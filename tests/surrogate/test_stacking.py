"""Stacking of law families: leave-future-out folds, ArviZ stacking weights, the mixture."""

from __future__ import annotations

import numpy as np
import pytest

from models.arch import Arch
from surrogate.laws import LAWS, NEUTRAL_SHAPE_TERMS, STACK_FAMILIES, law_features
from surrogate.lsq import FitError, fit_lsq
from surrogate.posterior import LawPosterior
from surrogate.runs import bundled_path, load_runs
from surrogate.stacking import future_folds, stack_posteriors, stacking_weights
from surrogate.validation import table_size_groups

CHIN = {"E": 1.9, "log_A": 6.5, "alpha": 0.35, "log_B": 9.0, "beta": 0.38}


def test_future_folds_train_below_and_predict_the_next_size_group():
    runs = load_runs(bundled_path("gemstones_runs.csv"))
    groups = table_size_groups(runs)
    folds = future_folds(runs)
    assert len(folds) == len(np.unique(groups)) - 2
    for train, held in folds:
        assert held.any() and not np.any(train & held)
        assert len(np.unique(groups[held])) == 1
        assert groups[train].max() < groups[held].min()


def test_stacking_weights_follow_the_held_out_log_score():
    rng = np.random.default_rng(0)
    good = -0.5 * rng.normal(0, 1, 200) ** 2
    bad = good - 3.0  # every held-out row 3 nats worse
    w = stacking_weights({"a": good, "b": bad})
    assert w["a"] > 0.95 and sum(w.values()) == pytest.approx(1.0)
    # Complementary laws (each better on half of the rows) share the weight.
    half = np.r_[good[:100], good[100:] - 3.0]
    other = np.r_[good[:100] - 3.0, good[100:]]
    w = stacking_weights({"a": half, "b": other})
    assert 0.3 < w["a"] < 0.7
    assert stacking_weights({"a": np.zeros(0), "b": np.zeros(0)}) == {"a": 0.5, "b": 0.5}


def _fixed(law: str, extra: dict, s: int = 400) -> LawPosterior:
    theta = {**CHIN, **extra}
    samples = {k: np.full(s, v) for k, v in theta.items()}
    samples["sigma[a]"] = np.full(s, 0.01)
    samples["tau[a]"] = np.full(s, 0.02)
    return LawPosterior(
        law,
        samples,
        sources=["a"],
        reference_source="a",
        source_terms="none",
        num_chains=2,
        prior_sd={"E": 1.0},
        diagnostics={
            "max_r_hat": 1.01,
            "min_ess_bulk": 300.0,
            "divergences": 1,
            "warnings": ["w"],
            "num_chains": 2,
            "num_samples": s,
        },
    )


def test_stack_posteriors_mixes_draws_by_weight_with_neutral_shape_terms(tmp_path):
    assert set(STACK_FAMILIES) == {"chinchilla", "aspect", "conditional"}
    chin = _fixed("chinchilla", {})
    cond = _fixed("conditional", {"a1": 0.06, "a2": 0.005, "b1": 0.013, "b2": 0.014})
    mix = stack_posteriors(
        {"chinchilla": chin, "conditional": cond}, {"chinchilla": 0.25, "conditional": 0.75}
    )
    assert mix.law == "stacked" and mix.num_samples == 400
    assert np.sum(mix.samples["a1"] == 0.0) == 100 and np.sum(mix.samples["a1"] == 0.06) == 300
    assert np.all(mix.samples["eps"] == NEUTRAL_SHAPE_TERMS["eps"])
    arch = [Arch(3072, 8, 24, 8, 128, 8192, 50304)]  # far from the reference shape
    f = law_features(arch, 2e10)
    want = (
        0.25 * LAWS["chinchilla"](f, CHIN)[0]
        + 0.75
        * LAWS["conditional"](f, {k: cond.samples[k][0] for k in LAWS["conditional"].param_names})[
            0
        ]
    )
    assert mix.predict(f, n_draws=None)["pred_mean"].iloc[0] == pytest.approx(want, rel=1e-9)
    assert (
        mix.diagnostics["divergences"] == 2 and mix.diagnostics["warnings"][0] == "[chinchilla] w"
    )
    assert mix.info["stacking"]["weights"] == {"chinchilla": 0.25, "conditional": 0.75}
    back = LawPosterior.load(mix.save(tmp_path / "stacked.nc"))
    assert back.law == "stacked"
    np.testing.assert_allclose(
        back.predict(f, n_draws=None)["pred_mean"], mix.predict(f, n_draws=None)["pred_mean"]
    )
    with pytest.raises(FitError, match="positive weight"):
        stack_posteriors({"chinchilla": chin}, {"chinchilla": 0.0})


def test_stacked_is_a_bayesian_mixture_only():
    runs = load_runs(bundled_path("gemstones_runs.csv"))
    with pytest.raises(FitError, match="mixture"):
        fit_lsq(runs, "stacked")
