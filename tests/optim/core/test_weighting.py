"""The prior weighting (optim/core/weighting.py): LOO in closed form, the ranking-loss weights,
the piBO-style fade, the mixture model and acquisition, and what a campaign reports."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from support import small_posterior, small_spec

from optim.core.plain_model import PlainGP
from optim.core.problem import Problem
from optim.core.weighting import (
    PriorBandWarning,
    WeightingConfig,
    band_check,
    combine_prior_weight,
    fit_weighted_model,
    loo_spearman,
    prequential_ranking_losses,
    prior_status,
    rank_weights,
    ranking_losses,
    warn_if_outside_band,
)


@pytest.fixture(scope="module")
def problem() -> Problem:
    return Problem.build(small_spec(), small_posterior(), measurement_cache=False)


def _runs(problem: Problem, n: int, truth: np.ndarray, seed: int = 0):
    rng = np.random.default_rng(seed)
    idx = rng.choice(np.flatnonzero(problem.proposable), n, replace=False)
    return idx, truth[idx] + rng.normal(0, 0.002, n)


def test_plain_gp_loo_equals_refitting_without_each_run():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(30, 3, generator=g, dtype=torch.float64)
    idx = np.arange(0, 24, 3)
    y = 2.5 + 0.1 * X[idx, 0].numpy() + 0.02 * np.sin(6 * X[idx, 1].numpy())
    gp = PlainGP(X, idx, y)
    mean, var = gp.loo()
    # Same hyper-parameters, conditioned on the other runs: the textbook LOO, from the fitted
    # BoTorch model's public parts (standardized space, then back).
    m = gp.model
    noise = float(m.likelihood.noise.reshape(-1)[0])
    const = float(m.mean_module.constant.reshape(-1)[0])
    shift = float(m.outcome_transform.means.reshape(-1)[0])
    scale = float(m.outcome_transform.stdvs.reshape(-1)[0])
    with torch.no_grad():
        for j in range(len(idx)):
            keep = np.delete(np.arange(len(idx)), j)
            x_tr, x_j = X[idx[keep]], X[idx[j]].unsqueeze(0)
            K = m.covar_module(x_tr).to_dense() + noise * torch.eye(len(keep), dtype=X.dtype)
            k = m.covar_module(x_j, x_tr).to_dense()[0]
            mu = const + k @ torch.linalg.solve(K, m.train_targets[keep] - const)
            v = m.covar_module(x_j).to_dense()[0, 0] - k @ torch.linalg.solve(K, k) + noise
            assert mean[0, j] == pytest.approx(float(mu) * scale + shift, abs=1e-9)
            assert var[j] == pytest.approx(float(v) * scale**2, rel=1e-6)


def test_conditional_means_given_all_other_runs_are_the_loo_means(problem):
    law = problem.law_mean()
    idx, y = _runs(problem, 9, law + 0.02 + 0.01 * np.sin(np.arange(len(law))))
    model = fit_weighted_model(problem, idx, y)
    for _, member in model.members:
        loo_mean = member.loo()[0]
        for j in (0, 4, 8):
            others = np.delete(np.arange(len(idx)), j)
            cond = member.conditional_means(others, np.array([j]))
            np.testing.assert_allclose(cond[:, 0], loo_mean[:, j], rtol=0, atol=1e-8)
    # Given nothing, the law GP predicts its prior mean.
    law_gp = model.members[0][1]
    np.testing.assert_allclose(
        law_gp.conditional_means(np.zeros(0, dtype=int), np.arange(3)),
        law_gp.prior_mean[:, idx[:3]].numpy(),
    )


class _Fixed:
    """A member whose prequential predictions are fixed numbers."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = np.asarray(values, dtype=np.float64)

    def conditional_means(self, given: np.ndarray, target: np.ndarray) -> np.ndarray:
        assert len(given) and given.max() < target.min()  # only earlier runs are given
        return self.values[target][None, :]


def test_prequential_ranking_counts_pairs_within_each_later_block():
    rng = np.random.default_rng(0)
    y = rng.normal(size=12)
    right, reversed_ = _Fixed(y), _Fixed(-y)
    losses = prequential_ranking_losses([right, reversed_], y, 4, 300, rng)
    assert losses is not None and losses.shape == (2, 300)
    # Two predicted blocks of 4 runs: 6 pairs within each, and 4 x 4 then 4 x 8 pairs of a new
    # run against an earlier one; the right member misorders none.
    assert np.all(losses[0] == 0) and np.all(losses[1] > 12)
    assert rank_weights(losses, rng)[0] == 1.0
    # One block only, or blocks of one run: no evidence.
    assert prequential_ranking_losses([right, reversed_], y[:4], 4, 10, rng) is None
    assert prequential_ranking_losses([right, reversed_], y[:5], 4, 10, rng) is None


def test_ranking_losses_prefer_the_model_that_orders_the_runs():
    rng = np.random.default_rng(0)
    y = np.linspace(2.0, 2.2, 10)
    good = y + rng.normal(0, 0.005, 10)
    bad = y[::-1].copy()
    losses = ranking_losses([good, bad], y, 400, rng)
    assert losses.shape == (2, 400) and np.all(losses[0] <= losses[1])
    w = rank_weights(losses, rng)
    assert w[0] > 0.95 and w.sum() == pytest.approx(1.0)
    # Two identical models split the weight (random tie-breaking).
    w_tie = rank_weights(ranking_losses([good, good], y, 2000, rng), rng)
    assert w_tie[0] == pytest.approx(0.5, abs=0.05)


def test_prior_weight_fades_with_runs_and_follows_the_evidence():
    p0 = 0.9
    none = [combine_prior_weight(n, None, beta=4, prior_prob=p0) for n in (1, 4, 8, 40)]
    assert none[0] == pytest.approx(p0) and none[1] == pytest.approx(p0)
    assert none[1] > none[2] > none[3] > 0.5  # piBO: the prior's odds fade as beta / n
    assert none[3] == pytest.approx(1 / (1 + math.exp(-0.1 * math.log(9))))
    # Evidence against the law dominates once the prior has faded; evidence for it keeps it.
    assert combine_prior_weight(20, 0.05, beta=4, prior_prob=p0) < 0.1
    assert combine_prior_weight(20, 0.95, beta=4, prior_prob=p0) > 0.95
    assert loo_spearman(np.arange(5.0), np.arange(5.0)) == pytest.approx(1.0)
    assert loo_spearman(np.arange(2.0), np.arange(2.0)) is None


def test_weight_stays_with_a_right_law_and_leaves_a_wrong_one(problem):
    law = problem.law_mean()
    right_idx, right_y = _runs(problem, 12, law + 0.03)
    right = fit_weighted_model(problem, right_idx, right_y)
    # A wrong law: the truth ranks shapes in the opposite order around the same level.
    wrong_truth = 2 * law.mean() - law + 0.03
    wrong_idx, wrong_y = _runs(problem, 12, wrong_truth)
    wrong = fit_weighted_model(problem, wrong_idx, wrong_y)
    assert right.prior_loo_spearman > 0.8 and wrong.prior_loo_spearman < 0.0
    assert right.prior_weight > 0.8
    assert wrong.prior_weight < 0.2
    assert [n for n, _ in right.members] == ["law", "plain"]


def test_before_two_runs_the_law_is_the_whole_model(problem):
    model = fit_weighted_model(problem, [], [])
    assert model.prior_weight == 1.0 and len(model.members) == 1
    assert model.prior_loo_spearman is None
    i = int(np.flatnonzero(problem.proposable)[0])
    one = fit_weighted_model(problem, [i], [problem.law_mean()[i]])
    assert one.prior_weight == 1.0


def test_mixture_predictive_sits_between_the_members(problem):
    law = problem.law_mean()
    idx, y = _runs(problem, 10, 2 * law.mean() - law + 0.03)
    model = fit_weighted_model(problem, idx, y)
    mean, q = model.predictive(None, (0.05, 0.95))
    members = [m.marginals(None)[0].mean(0) for _, m in model.members]
    expected = model.weights[0] * members[0] + model.weights[1] * members[1]
    np.testing.assert_allclose(mean, expected, atol=1e-10)
    assert np.all(q[0] < mean) and np.all(mean < q[1])


def test_mixture_acquisition_with_one_dominant_member_matches_that_member(problem):
    from optim.core.acquisition import CandidateSetModel, optimize_nehvi

    law = problem.law_mean()
    idx, y = _runs(problem, 6, law + 0.02)
    model = fit_weighted_model(problem, idx, y)
    tps = torch.as_tensor(problem.log_throughput)
    sd = torch.full((problem.n,), 0.05, dtype=torch.float64)
    members = [
        CandidateSetModel(lambda ix, m=m: m.posterior(ix), tps, sd, m.n_members)
        for _, m in model.members
    ]
    choices = np.setdiff1d(np.flatnonzero(problem.proposable), idx)
    ref = problem.reference_point(law)
    alone = optimize_nehvi(
        members[0], choices=choices, k=2, ref_point=ref, observed_idx=idx, mc_samples=16, seed=0
    )
    mixed = optimize_nehvi(
        members,
        weights=[1.0, 1e-12],
        choices=choices,
        k=2,
        ref_point=ref,
        observed_idx=idx,
        mc_samples=16,
        seed=0,
    )
    assert mixed.indices.tolist() == alone.indices.tolist()
    np.testing.assert_allclose(mixed.ehvi, alone.ehvi, rtol=1e-6)


def test_band_check_flags_a_run_that_contradicts_the_others(problem):
    law = problem.law_mean()
    idx, y = _runs(problem, 8, law + 0.02)
    y = y.copy()
    y[3] += 0.3  # far outside what the other runs predict for it
    model = fit_weighted_model(problem, idx, y)
    rows = band_check(model)
    assert len(rows) == 8 and rows[3]["outside"]
    assert sum(r["outside"] for r in rows) <= 2
    status = prior_status(problem, idx, y, labels=[f"trial {j}" for j in range(8)])
    assert 0.0 <= status["prior_weight"] <= 1.0
    assert any(
        w.startswith("trial 3: observed loss") and "above the prior's 90% band" in w
        for w in status["warnings"]
    )
    with pytest.warns(PriorBandWarning, match="trial 3"):
        assert warn_if_outside_band(problem, idx, y, 3, "trial 3")


def test_weighting_config_rejects_nonsense():
    with pytest.raises(ValueError):
        WeightingConfig(prior_prob=1.0)
    with pytest.raises(ValueError):
        WeightingConfig(min_loo_runs=1)
    with pytest.raises(ValueError):
        WeightingConfig(evidence="vibes")
    with pytest.raises(ValueError):
        WeightingConfig(block_size=1)


def test_warn_outside_band_names_only_the_labelled_runs_outside(problem):
    """Several runs judged in one fit: a warning for each labelled run outside its band, none
    for a labelled run inside or for an unlabelled run outside."""
    import warnings

    from optim.core.weighting import PriorBandWarning, band_check, warn_outside_band

    idx = np.arange(0, 64, 8)
    y = problem.law_samples.mean(0)[idx] + 0.02
    y[[2, 5]] += 0.4  # two runs far above the law
    rows = band_check(fit_weighted_model(problem, idx, y))
    assert [r["position"] for r in rows if r["outside"]] == [2, 5]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = warn_outside_band(problem, idx, y, {2: "run a", 3: "run b"})
    assert got == [2]
    messages = [str(w.message) for w in caught if issubclass(w.category, PriorBandWarning)]
    assert len(messages) == 1 and messages[0].startswith("run a: observed loss")
