"""Law forms: one definition for numpy, jax and torch; the conditional normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from models.arch import Arch
from surrogate.laws import (
    FEATURE_KEYS,
    LAWS,
    R0_MLP_ATTN,
    X0_D_OVER_SQRT_N,
    LawError,
    Prior,
    get_law,
    law_features,
)
from surrogate.runs import bundled_path, load_runs, table_archs

THETA = {
    "E": 1.8,
    "log_A": 6.0,
    "alpha": 0.35,
    "log_B": 8.0,
    "beta": 0.3,
    "eps": 2e-3,
    "gamma": 0.5,
    "a1": 0.05,
    "a2": 0.004,
    "b1": 0.013,
    "b2": 0.014,
}


@pytest.fixture(scope="module")
def features():
    df = load_runs(bundled_path("gemstones_runs.csv"))
    return law_features(table_archs(df), df["tokens"].to_numpy())


def test_registry_has_contract_laws():
    assert {"chinchilla", "aspect", "conditional"} <= set(LAWS)
    for law in LAWS.values():
        assert law.param_names and len(set(law.param_names)) == len(law.param_names)
    with pytest.raises(LawError, match="unknown law 'nope'"):
        get_law("nope")


def test_features_match_arch():
    arch = Arch(2048, 16, 32, 8, 64, 8192, 128256, True)
    f = law_features([arch, arch], 1e11)
    assert set(FEATURE_KEYS) <= set(f)
    assert f["N"][0] == arch.non_embedding_params and f["N_total"][0] == arch.params
    assert f["r"][0] == pytest.approx(arch.mlp_attn_ratio)
    assert f["D"].tolist() == [1e11, 1e11]
    with pytest.raises(LawError):
        law_features([arch], [1.0, 2.0])


@pytest.mark.parametrize("name", sorted(LAWS))
def test_numpy_torch_jax_agree_and_broadcast(name, features):
    import jax.numpy as jnp
    import torch

    law = LAWS[name]
    theta = {k: THETA[k] for k in law.param_names}
    ref = law(features, theta, np)
    assert ref.shape == features["D"].shape and np.all(np.isfinite(ref))
    t_out = law(
        {k: torch.tensor(v) for k, v in features.items()},
        {k: torch.tensor(v, dtype=torch.float64) for k, v in theta.items()},
        torch,
    )
    np.testing.assert_allclose(t_out.numpy(), ref, rtol=1e-10)
    j_out = law({k: jnp.asarray(v) for k, v in features.items()}, theta, jnp)
    np.testing.assert_allclose(np.asarray(j_out), ref, rtol=1e-5)
    stacked = {k: np.array([[v], [v * 1.01]]) for k, v in theta.items()}
    out = law(features, stacked, np)
    assert out.shape == (2, features["D"].size)
    np.testing.assert_allclose(out[0], ref)


def test_chinchilla_formula_value():
    f = {"N": np.array([1e8]), "D": np.array([1e10])}
    theta = {k: THETA[k] for k in LAWS["chinchilla"].param_names}
    want = 1.8 + np.exp(6.0) / 1e8**0.35 + np.exp(8.0) / 1e10**0.3
    assert LAWS["chinchilla"](f, theta)[0] == pytest.approx(want)


def test_conditional_factors_are_one_at_reference_shape():
    n = 1e8
    f = {
        "N": np.array([n]),
        "D": np.array([1e10]),
        "r": np.array([R0_MLP_ATTN]),
        "d_model": np.array([X0_D_OVER_SQRT_N * np.sqrt(n)]),
        "n_layers": np.array([10.0]),
    }
    theta = {k: THETA[k] for k in LAWS["conditional"].param_names}
    chin = LAWS["chinchilla"](f, {k: THETA[k] for k in LAWS["chinchilla"].param_names})
    assert LAWS["conditional"](f, theta)[0] == pytest.approx(chin[0])
    f2 = dict(f, r=np.array([3.0]))
    assert LAWS["conditional"](f2, theta)[0] != pytest.approx(chin[0])


@pytest.mark.parametrize(
    "prior",
    [
        Prior("normal", 0.5, 0.2),
        Prior("lognormal", np.log(0.3), 1.0),
        Prior("truncnormal", 0.4, 0.25, low=0.02, high=1.5),
    ],
    ids=["normal", "lognormal", "truncnormal"],
)
def test_prior_distribution_is_the_prior(prior):
    """``Prior.distribution()`` (the app's prior overlay draws from it) has the prior's
    support, centre and moments."""
    dist = prior.distribution()
    draws = dist.rvs(size=20_000, random_state=0)
    assert dist.mean() == pytest.approx(prior.mean) and dist.std() == pytest.approx(prior.sd)
    assert np.mean(draws) == pytest.approx(prior.mean, abs=4 * prior.sd / np.sqrt(draws.size))
    if prior.kind == "truncnormal":
        assert draws.min() >= prior.low and draws.max() <= prior.high
    if prior.kind == "lognormal":
        assert draws.min() > 0 and dist.median() == pytest.approx(prior.center)
    else:
        assert dist.cdf(prior.center) == pytest.approx(0.5, abs=0.15)
