"""Property: a fitted loss prior never says that bigger is worse.

For every law and fitting method, the posterior-mean loss is non-increasing in the
non-embedding parameters N at a fixed token budget and fixed shape features (d/sqrt(N), d/L,
r), inside and far beyond the fitted sizes (gemstones: 23-440M, predicted up to 20B). Shape
features and the budget are drawn by hypothesis; the fits are made once per module.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from surrogate.runs import bundled_path, load_runs

LAWS = ("chinchilla", "aspect", "conditional")
#: N from below the smallest fitted size to ~45x beyond the largest.
N_GRID = np.geomspace(2e7, 2e10, 48)


@pytest.fixture(scope="module")
def gemstones():
    return load_runs(bundled_path("gemstones_runs.csv"))


@pytest.fixture(scope="module")
def fits(gemstones):
    return {}


def _posterior(fits, gemstones, law: str, method: str):
    if (law, method) not in fits:
        if method == "bayes":
            from surrogate.bayes import fit_bayes

            fits[law, method] = fit_bayes(
                gemstones, law, num_warmup=150, num_samples=150, progress=False
            )
        else:
            from surrogate.lsq import fit_lsq

            fits[law, method] = fit_lsq(gemstones, law, method=method, n_starts=6).to_posterior(300)
    return fits[law, method]


def _features(x: float, aspect: float, r: float, tokens: float) -> dict[str, np.ndarray]:
    """Features along N_GRID at fixed d/sqrt(N) = x, d/L = aspect, r and tokens."""
    d = x * np.sqrt(N_GRID)
    n = N_GRID.size
    return {
        "N": N_GRID,
        "N_total": N_GRID + 2 * 50304 * d,
        "D": np.full(n, tokens),
        "d_model": d,
        "n_layers": d / aspect,
        "r": np.full(n, r),
    }


def _check(post, x, aspect, r, tokens):
    mean = post.predict(_features(x, aspect, r, tokens), quantiles=())["pred_mean"].to_numpy()
    rises = np.flatnonzero(np.diff(mean) > 1e-9)
    assert rises.size == 0, (
        f"loss rises with N at D={tokens:.3g}, x={x:.3f}, d/L={aspect:.0f},"
        f" r={r:.2f}: N {N_GRID[rises[0]]:.3g} -> {N_GRID[rises[0] + 1]:.3g}"
        f" gives {mean[rises[0]]:.4f} -> {mean[rises[0] + 1]:.4f}"
    )


_shapes = dict(
    x=st.floats(0.03, 0.12),
    aspect=st.floats(8.0, 300.0),
    r=st.floats(1.0, 5.0),
    tokens=st.floats(math.log(1e10), math.log(1e12)).map(math.exp),
)


@pytest.mark.parametrize("law", LAWS)
@pytest.mark.parametrize("method", ["lsq", "huber"])
def test_point_fits_fall_with_n(fits, gemstones, law, method):
    post = _posterior(fits, gemstones, law, method)

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(**_shapes)
    def prop(x, aspect, r, tokens):
        _check(post, x, aspect, r, tokens)

    prop()


@pytest.mark.slow
@pytest.mark.parametrize("law", LAWS)
def test_bayes_posterior_mean_falls_with_n(fits, gemstones, law):
    """The issue-12 symptom: d_model 1536 at 100B tokens, 16 -> 48 layers, must fall too."""
    from models.arch import Arch

    post = _posterior(fits, gemstones, law, "bayes")

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(**_shapes)
    def prop(x, aspect, r, tokens):
        _check(post, x, aspect, r, tokens)

    prop()
    if law == "chinchilla":  # shape-blind: more layers = more parameters = lower loss
        archs = [Arch(1536, layers, 12, 6, 128, 4 * 1536, 50304) for layers in (16, 24, 32, 48)]
        pred = post.predict(archs, 1e11)["pred_mean"].to_numpy()
        assert np.all(np.diff(pred) < 0), pred


@pytest.mark.slow
def test_stacked_posterior_mean_falls_with_n(fits, gemstones):
    """The stacked mixture of the three families (equal weights here) falls with N as well."""
    from surrogate.stacking import stack_posteriors

    parts = {law: _posterior(fits, gemstones, law, "bayes") for law in LAWS}
    post = stack_posteriors(parts, dict.fromkeys(LAWS, 1.0 / 3))

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(**_shapes)
    def prop(x, aspect, r, tokens):
        _check(post, x, aspect, r, tokens)

    prop()
