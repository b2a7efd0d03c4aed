"""The law-prior GP (surrogate/gp.py): prior, conditioning, offset absorption, and equality of
the ensemble mode with a batched SingleTaskGP."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import norm

from surrogate.gp import LawPriorGP, ResidualHyper, mixture_quantiles

HYPER = ResidualHyper(outputscale=0.02**2, offset_var=0.1**2, noise_var=0.01**2, lengthscale=(0.4,))


def _table(n=40, d=3, S=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, d, generator=g, dtype=torch.float64)
    base = 2.5 + 0.1 * X[:, 0] - 0.05 * X[:, 1]
    law = base + 0.03 * torch.randn(S, 1, generator=g, dtype=torch.float64) * (1 + X[:, 0])
    return X, law


def test_gaussian_prior_is_law_mean_plus_law_and_residual_variance():
    X, law = _table()
    gp = LawPriorGP(X, law, HYPER).fit([], [])
    members, var = gp.marginals()
    assert members.shape == (1, 40)
    np.testing.assert_allclose(members[0], law.mean(0).numpy(), atol=1e-12)
    law_var = law.var(0, unbiased=False).numpy()
    np.testing.assert_allclose(var, law_var + HYPER.offset_var + HYPER.outputscale, rtol=1e-6)


def test_one_observation_shifts_every_prediction_by_the_offset():
    X, law = _table()
    gp = LawPriorGP(X, law, HYPER)
    prior_mean = gp.fit([], []).marginals()[0][0]
    shift = 0.3
    post_mean, post_var = gp.fit([5], [float(law.mean(0)[5]) + shift]).marginals()
    moved = post_mean[0] - prior_mean
    assert moved[5] == pytest.approx(shift, abs=0.02)
    # A constant offset is shared: far points move most of the way too.
    assert np.all(moved > 0.5 * shift)
    assert post_var[5] < 0.1 * (HYPER.offset_var + HYPER.outputscale)


def test_ensemble_mode_matches_batched_single_task_gp():
    from botorch.models import SingleTaskGP
    from gpytorch.means import ZeroMean

    X, law = _table(S=4)
    idx = torch.tensor([1, 7, 19, 30])
    y = torch.tensor([2.61, 2.55, 2.58, 2.70], dtype=torch.float64)
    gp = LawPriorGP(X, law, HYPER, mode="ensemble").fit(idx, y, fit_hyper=False)
    test = torch.tensor([[0, 2, 33]])
    mean, cov = gp.posterior(test)  # (1, S, 3), (1, 3, 3)

    resid = (y - law[:, idx]).unsqueeze(-1)  # (S, n, 1)
    ref = SingleTaskGP(
        X[idx].expand(4, -1, -1),
        resid,
        torch.full_like(resid, HYPER.noise_var),
        covar_module=gp.kernel,
        mean_module=ZeroMean(),
        outcome_transform=None,
    )
    ref.eval()
    with torch.no_grad():
        post = ref.posterior(X[test[0]].expand(4, -1, -1))
    expected_mean = post.mean.squeeze(-1) + law[:, test[0]]
    torch.testing.assert_close(mean[0], expected_mean, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(cov[0].expand(4, 3, 3), post.covariance_matrix, rtol=1e-5, atol=1e-9)


def test_mixture_quantiles_single_component_is_gaussian():
    q = mixture_quantiles(np.array([[1.0, 2.0]]), np.array([0.5, 2.0]), (0.05, 0.95))
    np.testing.assert_allclose(q[:, 0], 1.0 + 0.5 * norm.ppf([0.05, 0.95]), atol=1e-8)
    np.testing.assert_allclose(q[:, 1], 2.0 + 2.0 * norm.ppf([0.05, 0.95]), atol=1e-8)


def test_mixture_quantiles_match_sampling():
    rng = np.random.default_rng(0)
    means = np.array([[0.0], [3.0]])
    q = mixture_quantiles(means, np.array([1.0]), (0.05, 0.5, 0.95))
    draws = np.concatenate([rng.normal(0, 1, 200_000), rng.normal(3, 1, 200_000)])
    np.testing.assert_allclose(q[:, 0], np.quantile(draws, [0.05, 0.5, 0.95]), atol=0.02)


def test_bad_shapes_raise():
    X, law = _table()
    with pytest.raises(ValueError):
        LawPriorGP(X, law[:, :10], HYPER)
    with pytest.raises(ValueError):
        LawPriorGP(X, law, HYPER).fit([1, 2], [2.5])


# ---- issue 10 (silent fallbacks): a failed hyper-parameter fit is visible, a bug propagates ----
def _observed(n=8):
    X, law = _table()
    idx = np.arange(0, 4 * n, 4)
    y = law.mean(0)[idx].numpy() + 0.05 * np.sin(np.arange(n))
    return X, law, idx, y


@pytest.mark.parametrize("failure", ["ModelFittingError", "NotPSDError", "NanError", "LinAlgError"])
def test_numerical_hyper_fit_failure_warns_and_keeps_prior(monkeypatch, failure):
    import botorch.fit
    from botorch.exceptions.errors import ModelFittingError
    from linear_operator.utils.errors import NanError, NotPSDError

    from surrogate.gp import HyperFitWarning

    errors = {
        "ModelFittingError": ModelFittingError("All attempts to fit the model have failed."),
        "NotPSDError": NotPSDError("Matrix not positive definite after repeatedly adding jitter"),
        "NanError": NanError("cholesky_cpu: 3 of 64 elements of the tensor are NaN."),
        "LinAlgError": torch.linalg.LinAlgError(
            "linalg.cholesky: The factorization could not be completed"
        ),
    }

    def fail(mll, **kwargs):
        for p in mll.parameters():  # a half-done fit moved the parameters before failing
            p.data.add_(1.0)
        raise errors[failure]

    X, law, idx, y = _observed()
    before = {k: v.clone() for k, v in LawPriorGP(X, law, HYPER).kernel.state_dict().items()}
    monkeypatch.setattr(botorch.fit, "fit_gpytorch_mll", fail)
    gp = LawPriorGP(X, law, HYPER)
    with pytest.warns(
        HyperFitWarning,
        match=rf"fit on 8 runs failed \({failure}: .*keeping the "
        r"prior hyper-parameters",
    ):
        gp.fit(idx, y, fit_hyper=True)
    assert not gp.fitted_hyper
    after = gp.kernel.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    mean, var = gp.marginals()
    assert np.isfinite(mean).all() and (var > 0).all()


def test_unexpected_error_in_hyper_fit_propagates(monkeypatch):
    import botorch.fit

    def bug(mll, **kwargs):
        raise TypeError("unexpected keyword argument 'optimizer_kwargs'")

    X, law, idx, y = _observed()
    monkeypatch.setattr(botorch.fit, "fit_gpytorch_mll", bug)
    with pytest.raises(TypeError, match="optimizer_kwargs"):
        LawPriorGP(X, law, HYPER).fit(idx, y, fit_hyper=True)


def test_successful_hyper_fit_is_silent_and_marks_fitted(recwarn):
    from surrogate.gp import HyperFitWarning

    X, law, idx, y = _observed()
    gp = LawPriorGP(X, law, HYPER).fit(idx, y, fit_hyper=True)
    assert gp.fitted_hyper
    assert not [w for w in recwarn if issubclass(w.category, HyperFitWarning)]


# ---- issue 13: runs can override a wrong law -------------------------------------------------
def test_misfit_amplitude_grows_when_runs_contradict_the_law():
    """The law says loss rises with feature 0; the runs say it falls, by ~9x the prior misfit
    scale. The fitted amplitude must follow the runs, so the conditioned model's 90% bands
    cover unseen points and it ranks them the runs' way. (With the former Gamma(2, 2/scale)
    amplitude prior this fit stopped at 3x the scale and its bands held 75% of the points.)"""
    from scipy.stats import spearmanr

    g = torch.Generator().manual_seed(3)
    X = torch.rand(200, 3, generator=g, dtype=torch.float64)
    law = 2.5 + 0.1 * X[:, 0] + 0.002 * torch.randn(16, 1, generator=g, dtype=torch.float64)
    truth = (2.7 - 0.5 * X[:, 0] + 0.03 * torch.sin(6 * X[:, 1])).numpy()
    idx = np.arange(0, 20, 2)
    y = truth[idx] + np.random.default_rng(0).normal(0, 0.01, len(idx))
    gp = LawPriorGP(X, law, HYPER).fit(idx, y)
    amp = float(gp.kernel.kernels[0].outputscale.detach()) ** 0.5
    assert gp.fitted_hyper and amp > 4.5 * HYPER.outputscale**0.5
    held = np.arange(100, 200)
    mean, q = gp.predictive(held)
    assert np.mean((truth[held] >= q[0]) & (truth[held] <= q[1])) >= 0.88
    assert spearmanr(mean, truth[held]).statistic > 0.8


def test_amplitude_prior_mode_is_the_given_scale():
    from surrogate.gp import amplitude_prior

    prior = amplitude_prior(4e-4)
    grid = torch.logspace(-6, -1, 2001, dtype=torch.float64)
    mode = float(grid[torch.argmax(prior.log_prob(grid))])
    assert mode == pytest.approx(4e-4, rel=0.02)
    # A 100x larger variance costs little prior mass: runs can move it.
    assert float(prior.log_prob(torch.tensor(4e-2)) - prior.log_prob(torch.tensor(4e-4))) > -6


def test_loo_equals_conditioning_on_the_other_runs():
    X, law, idx, y = _observed(6)
    gp = LawPriorGP(X, law, HYPER).fit(idx, y, fit_hyper=False)
    mean, var = gp.loo()
    for j in range(len(idx)):
        keep = np.delete(np.arange(len(idx)), j)
        other = LawPriorGP(X, law, HYPER).fit(idx[keep], y[keep], fit_hyper=False)
        m, v = other.marginals([idx[j]])
        assert mean[0, j] == pytest.approx(m[0, 0], abs=1e-10)
        assert var[j] == pytest.approx(v[0] + HYPER.noise_var, rel=1e-8)


def test_a_truth_the_law_draws_explain_is_not_misfit():
    """The law's draws disagree on a slope; the truth is one of them. The hyper-parameter fit
    sees the draws' covariance, so the misfit amplitude stays at (or below) its prior scale
    and the runs select the draw: predictions of unseen points are close."""
    hyper = ResidualHyper(
        outputscale=0.01**2, offset_var=0.1**2, noise_var=0.005**2, lengthscale=(0.4,)
    )
    g = torch.Generator().manual_seed(5)
    X = torch.rand(200, 3, generator=g, dtype=torch.float64)
    slope = 0.1 * torch.randn(32, 1, generator=g, dtype=torch.float64)
    law = 2.5 + slope * X[:, 0]
    truth = law[int(torch.argmax(slope.abs()))].numpy()  # the most extreme draw (|slope| 0.21)
    idx = np.arange(0, 24, 2)
    y = truth[idx] + np.random.default_rng(0).normal(0, 0.005, len(idx))
    gp = LawPriorGP(X, law, hyper).fit(idx, y)
    assert gp.fitted_hyper
    assert float(gp.kernel.kernels[0].outputscale.detach()) ** 0.5 < 1.5 * 0.01
    mean, _ = gp.predictive(np.arange(100, 200))
    assert np.abs(mean - truth[100:200]).mean() < 0.005
