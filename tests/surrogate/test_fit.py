"""Fitting: the published aspect-law fit reproduces; LM/Huber recover synthetic laws; NUTS runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from surrogate.laws import LAWS
from surrogate.lsq import FitError, auto_fixed, fit_lsq
from surrogate.runs import bundled_path, load_runs, table_archs

#: The 27 training rows of arXiv 2501.18107 Table 7 (data README).
PAPER_ROWS = (
    [f"80M_v{i}-20N" for i in (1, 4, 5, 6, 7)]
    + [f"116M_v{i}-20N" for i in range(1, 7)]
    + [f"164M_v{i}-20N" for i in (1, 4, 5, 6, 7)]
    + [f"237M_v{i}-20N" for i in range(1, 5)]
    + [f"313M_v{i}-20N" for i in range(1, 5)]
    + [f"80M_v{i}-160N" for i in (1, 4, 5)]
)
PUBLISHED = {"A": 5.4754e4, "B": 7.7834e5, "E": 2.4475, "alpha": 0.6146, "eps": 1.1462e-3}


def test_reproduces_published_aspect_fit():
    df = load_runs(bundled_path("morph_runs.csv"))
    train = df[df["run"].isin(PAPER_ROWS)]
    assert len(train) == 27
    fit = fit_lsq(train, "aspect_paper", method="lsq", fixed={})
    got = dict(fit.theta, A=np.exp(fit.theta["log_A"]), B=np.exp(fit.theta["log_B"]))
    for key, value in PUBLISHED.items():
        assert got[key] == pytest.approx(value, rel=0.05), key
    test = df[df["run"].str.startswith("1B")]
    rel = np.abs(fit.predict(test)["pred_point"] - test["loss"]) / test["loss"]
    assert rel.max() <= 0.012
    np.testing.assert_allclose(np.sort(rel.to_numpy()) * 100, [0.69, 0.90, 0.92, 1.15], atol=0.01)


def _synthetic(law: str, theta: dict, n_sources: int = 1, noise: float = 0.005, seed: int = 0):
    """Morph + gemstones shapes with losses drawn from a known law."""
    morph = load_runs(bundled_path("morph_runs.csv"))
    df = pd.concat([morph, load_runs(bundled_path("gemstones_runs.csv"))], ignore_index=True)
    from surrogate.laws import law_features

    f = law_features(table_archs(df), df["tokens"].to_numpy())
    rng = np.random.default_rng(seed)
    loss = LAWS[law](f, theta, np)
    src = (
        np.where(np.arange(len(df)) < len(morph), 0, 1)
        if n_sources == 2
        else np.zeros(len(df), int)
    )
    loss = loss * (1 + 0.1 * src) + 0.2 * src  # source j: scale 1 + 0.1 j, offset 0.2 j
    df["loss"] = loss + noise * rng.standard_normal(len(df))
    df["source"] = [f"s{j}" for j in src]
    df = df.drop(columns=["dataset"], errors="ignore")
    return df


TRUE = {
    "E": 1.9,
    "log_A": 6.5,
    "alpha": 0.35,
    "log_B": 9.0,
    "beta": 0.38,
    "eps": 3e-3,
    "gamma": 0.7,
    "a1": 0.06,
    "a2": 0.005,
    "b1": 0.013,
    "b2": 0.014,
}


@pytest.mark.parametrize("method", ["lsq", "huber"])
def test_recovers_synthetic_chinchilla(method):
    theta = {k: TRUE[k] for k in LAWS["chinchilla"].param_names}
    df = _synthetic("chinchilla", theta, noise=0.002)
    fit = fit_lsq(df, "chinchilla", method=method, n_starts=8)
    assert fit.theta["alpha"] == pytest.approx(0.35, abs=0.05)
    assert fit.theta["beta"] == pytest.approx(0.38, abs=0.05)
    assert fit.theta["E"] == pytest.approx(1.9, abs=0.15)
    pred = fit.predict(df)
    assert np.abs(pred["pred_point"] - df["loss"]).max() < 0.02


def test_per_source_terms_recovered_and_r_terms_fixed():
    theta = {k: TRUE[k] for k in LAWS["conditional"].param_names}
    df = _synthetic("conditional", theta, n_sources=2, noise=0.002)
    fit = fit_lsq(df, "conditional", n_starts=6)
    assert fit.reference_source == "s0" or fit.reference_source == "s1"
    other = [s for s in fit.sources if s != fit.reference_source][0]
    expect_scale = 1.1 if other == "s1" else 1 / 1.1
    assert fit.source_theta[f"scale[{other}]"] == pytest.approx(expect_scale, rel=0.05)
    assert set(fit.fixed) == {"b1", "b2"}  # r barely varies within each table
    assert fit.theta["a1"] == pytest.approx(0.06, abs=0.02)


def test_auto_fixed_uses_within_source_spread():
    law = LAWS["conditional"]
    f = {
        "r": np.array([2.0, 2.1, 4.0, 4.2]),
        "d_over_sqrt_n": np.array([0.03, 0.1, 0.03, 0.1]),
        "D": np.ones(4),
    }
    assert set(auto_fixed(law, f)) == set()  # pooled: r spans 2-4.2
    assert set(auto_fixed(law, f, np.array([0, 0, 1, 1]))) == {"b1", "b2"}


def test_fit_errors():
    df = load_runs(bundled_path("morph_runs.csv"))
    with pytest.raises(FitError, match="unknown fit method"):
        fit_lsq(df, "chinchilla", method="adam")
    with pytest.raises(FitError, match="cannot determine"):
        fit_lsq(df.head(5), "conditional")
    with pytest.raises(FitError, match="reference source"):
        fit_lsq(df, "chinchilla", reference_source="nope")


@pytest.mark.slow
def test_fit_bayes_recovers_and_reports_diagnostics():
    from surrogate.bayes import fit_bayes

    theta = {k: TRUE[k] for k in LAWS["aspect"].param_names}
    df = _synthetic("aspect", theta, noise=0.01).sample(120, random_state=0)
    post = fit_bayes(df, "aspect", num_warmup=200, num_samples=200, progress=False)
    assert post.num_samples == 400 and post.method == "bayes"
    diag = post.diagnostics
    assert {"max_r_hat", "min_ess_bulk", "divergences", "warnings"} <= set(diag)
    assert post.noise_sigma == pytest.approx(0.01, rel=0.4)
    pred = post.predict(df)
    assert np.abs(pred["pred_mean"] - df["loss"]).mean() < 0.02
    inside = (df["loss"] >= pred["pred_q05"]) & (df["loss"] <= pred["pred_q95"])
    assert 0.75 <= inside.mean() <= 1.0


def test_grouped_likelihood_matches_dense_multivariate_normal():
    import jax.numpy as jnp
    from scipy.stats import multivariate_normal

    from surrogate.marginal import grouped_normal_log_lik

    rng = np.random.default_rng(0)
    g = np.array([0, 0, 0, 1, 1, 2, 4, 4, 4, 4])  # group 3 has no rows
    sig = np.array([0.02, 0.03, 0.05, 0.07, 0.01])
    tau = np.array([0.04, 0.001, 0.1, 0.3, 0.02])
    r = rng.normal(0, 0.05, g.size)
    cov = np.diag(sig[g] ** 2) + (g[:, None] == g[None, :]) * np.outer(tau[g], tau[g])
    want = multivariate_normal(np.zeros(g.size), cov).logpdf(r)
    got = float(
        grouped_normal_log_lik(jnp.asarray(r), jnp.asarray(g), jnp.asarray(sig), jnp.asarray(tau))
    )
    assert got == pytest.approx(want, rel=1e-10)


def test_level_parametrisation_inverts_to_law_coefficients():
    from surrogate.pivot import chinchilla_from_level

    theta = {"E": 1.9, "log_A": 6.5, "alpha": 0.35, "log_B": 9.0, "beta": 0.38}
    ln0, ld0 = np.log(2e8), np.log(4e9)
    t_n = np.exp(theta["log_A"] - theta["alpha"] * ln0)
    t_d = np.exp(theta["log_B"] - theta["beta"] * ld0)
    got = chinchilla_from_level(
        theta["E"] + t_n + t_d,
        theta["alpha"] * t_n,
        theta["beta"] * t_d,
        theta["alpha"],
        theta["beta"],
        ln0,
        ld0,
    )
    for key, value in theta.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key


def test_lsq_per_source_chinchilla_parts_recovered():
    from surrogate.laws import law_features

    morph = load_runs(bundled_path("morph_runs.csv"))
    gem = load_runs(bundled_path("gemstones_runs.csv")).drop(columns=["dataset"], errors="ignore")
    df = pd.concat([morph, gem], ignore_index=True)
    f = law_features(table_archs(df), df["tokens"].to_numpy())
    first = np.arange(len(df)) < len(morph)
    t0 = {"E": 1.9, "log_A": 6.5, "alpha": 0.35, "log_B": 9.0, "beta": 0.38}
    t1 = {"E": 2.4, "log_A": 5.0, "alpha": 0.25, "log_B": 9.0, "beta": 0.38}
    law = LAWS["chinchilla"]
    df["loss"] = np.where(first, law(f, t0), law(f, t1)) + 0.002 * np.random.default_rng(
        1
    ).standard_normal(len(df))
    df["source"] = np.where(first, "s0", "s1")
    fit = fit_lsq(df, "chinchilla", source_terms="chinchilla", reference_source="s0", n_starts=8)
    assert fit.theta["E"] == pytest.approx(1.9, abs=0.15)
    assert fit.source_theta["E[s1]"] == pytest.approx(2.4, abs=0.15)
    assert fit.source_theta["alpha[s1]"] == pytest.approx(0.25, abs=0.05)
    assert "scale[s1]" not in fit.source_theta
    pred = fit.predict(df)
    assert np.abs(pred["pred_point"] - df["loss"]).max() < 0.02
    post = fit.to_posterior(200)
    own = post.law_draws(f, source="s1").mean(axis=0)
    assert np.abs(own[~first] - df["loss"][~first]).max() < 0.02
    assert np.abs(post.law_draws(f).mean(axis=0)[~first] - df["loss"][~first]).max() > 0.05


@pytest.mark.slow
def test_nuts_mixes_on_real_table_from_dispersed_starts():
    """Held-out-size protocol on morph with the default model: the chains agree (r_hat < 1.05)
    and diverge on under 2% of the draws. Rates, not counts: a correct sampler meets both with
    margin on any machine, while the exact number of divergent transitions varies with the
    floating-point details (9 of 500 were seen on one fresh machine with the old model)."""
    from surrogate.bayes import fit_bayes

    df = load_runs(bundled_path("morph_runs.csv"))
    train = df[~df["run"].str.startswith(("1B", "339M"))]
    post = fit_bayes(train, "aspect", num_warmup=400, num_samples=300, progress=False)
    diag = post.diagnostics
    assert post.info["init"] == "least squares, dispersed" and post.info["discrepancy"]
    assert diag["max_r_hat"] < 1.05, diag
    assert diag["divergences"] / post.num_samples < 0.02, diag
    assert 0.0 < post.discrepancy_sigma_for() < 0.1
    # The stored draws are the law's own coefficients and reproduce the data.
    pred = post.predict(train)
    assert np.abs(pred["pred_mean"] - train["loss"]).mean() < 0.03


def test_gp_marginal_likelihood_matches_dense_normal():
    import jax.numpy as jnp
    from scipy.stats import multivariate_normal

    from surrogate.discrepancy import gp_kernel
    from surrogate.marginal import gp_normal_log_lik

    rng = np.random.default_rng(0)
    g = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 3])
    u = np.array([17.0, 17.5, 18.2, 19.0])
    src = np.array([0, 0, 1, 1])
    sig = np.array([0.02, 0.05])[src]
    k = gp_kernel(u, u, 0.03, 0.8, 0.02, 18.0) * (src[:, None] == src[None, :])
    r = rng.normal(0, 0.05, g.size)
    cov = np.diag(sig[g] ** 2) + k[g][:, g]
    want = multivariate_normal(np.zeros(g.size), cov).logpdf(r)
    got = float(gp_normal_log_lik(jnp.asarray(r), jnp.asarray(g), jnp.asarray(sig), jnp.asarray(k)))
    assert got == pytest.approx(want, rel=1e-6)


def test_nuts_gp_discrepancy_fits_and_round_trips(tmp_path):
    from surrogate.bayes import fit_bayes
    from surrogate.posterior import LawPosterior

    df = load_runs(bundled_path("morph_runs.csv"))
    train = df[~df["run"].str.startswith(("1B", "339M"))]
    post = fit_bayes(
        train, "chinchilla", num_warmup=100, num_samples=100, progress=False, discrepancy="gp"
    )
    assert post.info["discrepancy"] == "gp" and "gp" in post.info
    assert {"gp_ell", "gp_slope", f"gp_eta[{post.reference_source}]"} <= set(post.samples)
    test = df[df["run"].str.startswith(("1B", "339M"))]
    pred = post.predict(test)
    assert np.all(np.isfinite(pred["pred_sd"]))
    back = LawPosterior.load(post.save(tmp_path / "gp.nc"))
    np.testing.assert_allclose(back.predict(test)["pred_sd"], pred["pred_sd"], rtol=1e-10)
    with pytest.raises(FitError):
        fit_bayes(
            train, "chinchilla", num_warmup=5, num_samples=5, progress=False, discrepancy="nope"
        )


def _openlm_runs_train() -> pd.DataFrame:
    """openlm_runs without its two largest sizes (one shape per size in this table)."""
    df = load_runs(bundled_path("openlm_runs.csv"))
    return df[~df["run"].str.contains("open_lm_(?:1b|7b)", regex=True)]


def test_size_confounded_finds_shape_terms_that_vary_only_with_size():
    from surrogate.lsq import prepare_fit_data, size_confounded

    openlm = prepare_fit_data(_openlm_runs_train())
    assert size_confounded(LAWS["aspect"], openlm) == ["eps", "gamma"]
    assert size_confounded(LAWS["conditional"], openlm) == ["a1", "a2"]
    # morph varies the aspect ratio at fixed size; r never varies, but not with size either.
    morph = prepare_fit_data(load_runs(bundled_path("morph_runs.csv")))
    assert size_confounded(LAWS["aspect"], morph) == []
    assert size_confounded(LAWS["conditional"], morph) == []
    assert LAWS["aspect"].param("eps").prior.center == pytest.approx(1.15e-3)


@pytest.mark.slow
def test_fit_bayes_holds_size_confounded_terms_at_the_published_centre():
    from surrogate.bayes import fit_bayes

    train = _openlm_runs_train()
    post = fit_bayes(train, "aspect", num_warmup=60, num_samples=60, progress=False)
    assert post.fixed == ["eps", "gamma"] and post.info["size_confounded"] == ["eps", "gamma"]
    assert np.all(post.samples["eps"] == pytest.approx(1.15e-3))
    assert any("held at the prior's centre" in w for w in post.diagnostics["warnings"])
    assert post.summary().loc["eps", "dominated_by"] == "fixed"
    free = fit_bayes(
        train,
        "aspect",
        num_warmup=20,
        num_samples=20,
        progress=False,
        fixed={},
        discrepancy="group",
    )
    assert free.fixed == [] and np.ptp(free.samples["eps"]) > 0
    with pytest.raises(FitError, match="fixed names unknown"):
        fit_bayes(train, "aspect", num_warmup=5, num_samples=5, progress=False, fixed={"zeta": 1.0})


def test_tree_depth_saturation_is_reported():
    from surrogate.bayes import fit_bayes

    theta = {k: TRUE[k] for k in LAWS["chinchilla"].param_names}
    df = _synthetic("chinchilla", theta, noise=0.01).sample(40, random_state=0)
    post = fit_bayes(
        df,
        "chinchilla",
        num_warmup=15,
        num_samples=15,
        progress=False,
        max_tree_depth=1,
        discrepancy=False,
    )
    assert post.diagnostics["tree_depth_saturated"] == 1.0
    assert any("maximum tree depth 1" in w for w in post.diagnostics["warnings"])


def test_gp_groups_are_the_merged_size_groups():
    from surrogate.discrepancy import gp_groups
    from surrogate.lsq import prepare_fit_data

    data = prepare_fit_data(load_runs(bundled_path("morph_runs.csv")))
    g = gp_groups(data)
    assert np.array_equal(g["idx"], data.group_idx)
    u = np.log(data.features["N"])
    for j in range(len(g["u"])):
        assert g["u"][j] == pytest.approx(u[data.group_idx == j].mean())
        assert np.ptp(u[data.group_idx == j]) <= np.log(1.5) + 1e-12


@pytest.mark.slow
def test_gp_misfit_scale_follows_size():
    """Noise that shrinks with N is learned (kappa > 0) and the predictive narrows with N."""
    from surrogate.bayes import fit_bayes
    from surrogate.laws import law_features

    theta = {k: TRUE[k] for k in LAWS["chinchilla"].param_names}
    df = _synthetic("chinchilla", theta, noise=0.0)
    u = np.log(law_features(table_archs(df), df["tokens"].to_numpy())["N"])
    rng = np.random.default_rng(1)
    df["loss"] += 0.03 * np.exp(-0.8 * (u - u.mean())) * rng.standard_normal(len(df))
    post = fit_bayes(df, "chinchilla", num_warmup=150, num_samples=150, progress=False)
    assert post.samples["noise_slope"].mean() > 0.4, post.summary().loc["noise_slope"]
    order = np.argsort(u)
    pred = post.predict(df.iloc[order[[0, -1]]])
    assert pred["pred_sd"].iloc[0] > 2 * pred["pred_sd"].iloc[1]


def test_orth_discrepancy_cannot_absorb_the_size_trend():
    """The default discrepancy's group effects are orthogonal to a level, slope and curvature
    in ln N per source (the law alone explains those), and its likelihood is the dense normal."""
    import jax.numpy as jnp
    from scipy.stats import multivariate_normal

    from surrogate.discrepancy import ORTH_DEGREE, orth_groups
    from surrogate.lsq import prepare_fit_data
    from surrogate.marginal import gp_normal_log_lik

    runs = pd.concat(
        [load_runs(bundled_path("gemstones_runs.csv")), load_runs(bundled_path("morph_runs.csv"))],
        ignore_index=True,
    )
    data = prepare_fit_data(runs)
    g = orth_groups(data)
    proj = g["proj"]
    assert ORTH_DEGREE == 2
    np.testing.assert_allclose(proj, proj.T, atol=1e-12)
    np.testing.assert_allclose(proj @ proj, proj, atol=1e-10)
    for j in range(len(data.sources)):
        m = g["src"] == j
        c = g["u"][m] - g["u"][m].mean()
        for k in range(ORTH_DEGREE + 1):  # level, slope and curvature are projected out
            np.testing.assert_allclose(proj[np.ix_(m, m)] @ c**k, 0.0, atol=1e-8)
        assert np.all(proj[np.ix_(m, ~m)] == 0)  # sources do not share effects
        assert round(np.trace(proj[np.ix_(m, m)])) == max(m.sum() - ORTH_DEGREE - 1, 0)
    # Likelihood with the group effects integrated out = the dense multivariate normal.
    rng = np.random.default_rng(0)
    idx = np.asarray(data.group_idx)
    amp = 0.03 * np.exp(-0.5 * (g["u"] - g["u0"][g["src"]]))
    cov_g = amp[:, None] * amp[None, :] * proj
    sig = 0.02 * np.exp(-0.5 * (g["u"] - g["u0"][g["src"]]))
    r = rng.normal(0, 0.03, idx.size)
    from surrogate.discrepancy import GP_JITTER

    dense = cov_g + GP_JITTER * np.eye(len(cov_g))  # the closed form's jitter on the effects
    want = multivariate_normal(
        np.zeros(idx.size), np.diag(sig[idx] ** 2) + dense[idx][:, idx]
    ).logpdf(r)
    got = float(
        gp_normal_log_lik(jnp.asarray(r), jnp.asarray(idx), jnp.asarray(sig), jnp.asarray(cov_g))
    )
    assert got == pytest.approx(want, rel=1e-6)


@pytest.mark.slow
def test_default_fit_mixes_on_gemstones_and_extrapolates_downward():
    """The issue-12 reproduction with the default model: chains agree from dispersed starts on
    the full gemstones table (the free-curvature discrepancy had r_hat up to 1.8 here) and the
    d_model-1536 shapes at 100B tokens predict lower loss with more layers."""
    from models.arch import Arch
    from surrogate.bayes import fit_bayes

    df = load_runs(bundled_path("gemstones_runs.csv"))
    post = fit_bayes(df, "chinchilla", num_warmup=300, num_samples=300, progress=False)
    assert post.diagnostics["max_r_hat"] < 1.05, post.diagnostics
    assert post.diagnostics["divergences"] / post.num_samples < 0.02
    archs = [Arch(1536, layers, 12, 6, 128, 4 * 1536, 50304) for layers in (16, 24, 32, 48)]
    pred = post.predict(archs, 1e11)
    assert np.all(np.diff(pred["pred_mean"].to_numpy()) < -0.01), pred
    # Beyond the fitted sizes the misfit trend widens the band with the distance.
    width = (pred["pred_q95"] - pred["pred_q05"]).to_numpy()
    assert width[-1] > width[0]
