"""The batched finite-difference Jacobian of the least-squares fits (``surrogate.lsq``)
and the batched law evaluation it relies on (``ParamLayout.law_values``)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize._numdiff import approx_derivative

from surrogate.laws import get_law
from surrogate.layout import ParamLayout
from surrogate.lsq import auto_fixed, forward_jacobian, prepare_fit_data
from surrogate.prior import default_prior_runs


def _fun(X: np.ndarray) -> np.ndarray:
    """A smooth vector function ``(k, 3) -> (k, 5)`` (rows independent)."""
    X = np.atleast_2d(X)
    t = np.linspace(0.1, 2.0, 5)
    out = np.exp(-X[:, :1] * t) + X[:, 1:2] ** 2 * np.log1p(t) + np.sin(X[:, 2:3] * t)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_forward_jacobian_matches_scipy_two_point(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=3) * rng.choice([1e-3, 1.0, 50.0], size=3)
    ours = forward_jacobian(_fun, x)
    theirs = approx_derivative(lambda v: _fun(v)[0], x, method="2-point")
    np.testing.assert_array_equal(ours, theirs)


def test_forward_jacobian_steps_stay_inside_bounds() -> None:
    x = np.array([1.0, 2.0, -0.5])
    lo, hi = np.array([0.0, 0.0, -1.0]), np.array([1.0, 2.0 + 1e-12, 0.0])
    seen: list[np.ndarray] = []

    def recording(X: np.ndarray) -> np.ndarray:
        seen.append(np.array(X))
        return _fun(X)

    ours = forward_jacobian(recording, x, (lo, hi))
    theirs = approx_derivative(lambda v: _fun(v)[0], x, method="2-point", bounds=(lo, hi))
    np.testing.assert_array_equal(ours, theirs)
    assert np.all(seen[0] >= lo) and np.all(seen[0] <= hi)


@pytest.mark.parametrize("law", ["chinchilla", "aspect", "conditional", "aspect_paper"])
@pytest.mark.parametrize("source_terms", ["chinchilla", "affine"])
def test_batched_law_values_equal_row_by_row(law: str, source_terms: str) -> None:
    runs = default_prior_runs()
    data = prepare_fit_data(runs, None)
    law_obj = get_law(law)
    size_key = law_obj.options.get("size_key", "N")
    pivot = {
        "N": float(np.mean(np.log(data.features[size_key]))),
        "D": float(np.mean(np.log(data.features["D"]))),
    }
    layout = ParamLayout(
        law_obj,
        auto_fixed(law_obj, data.features, data.src_idx),
        len(data.sources),
        source_terms,
        pivot,
    )
    rng = np.random.default_rng(0)
    X = np.stack([layout.random_start(rng, [2.5] * len(data.sources)) for _ in range(6)])
    batch = layout.law_values(X, data)
    assert batch.shape == (6, len(runs))
    np.testing.assert_array_equal(batch, np.stack([layout.law_values(x, data) for x in X]))
