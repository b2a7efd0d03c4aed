"""Ground-truth worlds: estimates from the real tables, the residual, HV and regret."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from support import REFERENCE, fake_truth, max_loss_of

from models.parametrize import enumerate_archs
from optim.bench.config import WORLD_KINDS, WorldError
from optim.bench.estimates import (
    NoiseEstimate,
    estimate_run_noise,
    estimate_shape_residual,
    size_groups,
)
from optim.bench.hypervolume import hypervolume
from optim.bench.residuals import (
    ThroughputError,
    shape_feature_matrix,
    smooth_residual,
    true_throughput,
)
from optim.bench.truths import fit_shape_effect, law_truth, shape_effect_truth
from optim.bench.worlds import World, make_world
from surrogate.runs import bundled_path, load_runs


@pytest.fixture(scope="module")
def candidates():
    return enumerate_archs(1e8)[:120]


def small_world(candidates, seed=0, residual=0.01, error=None):
    tput = np.array([1e6 / a.n_layers / a.d_model**0.5 for a in candidates])
    truth = fake_truth()
    return make_world(
        candidates,
        2e9,
        truth=law_truth(truth, "s"),
        reference=REFERENCE,
        max_loss=max_loss_of(truth),
        throughput_model=tput,
        seed=seed,
        noise=NoiseEstimate(0.003, 10, "test"),
        residual_rel_sigma=residual,
        throughput_error=error or ThroughputError(0.1, 0.05, 0.02),
    )


def test_run_noise_from_openlm_grid_is_small_and_positive():
    est = estimate_run_noise()
    assert est.n_pairs >= 50
    assert 1e-4 < est.rel_sigma < 0.02
    assert "openlm_grid" in est.method


def test_run_noise_recovers_known_noise():
    rng = np.random.default_rng(1)
    rows = []
    for shape in range(400):
        base = 3.0 + 0.3 * rng.normal()
        for w, shift in ((200, 0.0), (400, -0.01)):
            rows.append(
                dict(
                    d_model=512 + shape,
                    n_layers=8,
                    n_heads=8,
                    batch=64,
                    lr=3e-3,
                    warmup=w,
                    loss=base * math.exp(shift + 0.004 * rng.normal()),
                )
            )
    est = estimate_run_noise(pd.DataFrame(rows))
    assert est.rel_sigma == pytest.approx(0.004, rel=0.15)


def test_size_groups_follow_the_morph_size_names():
    runs = load_runs(bundled_path("morph_runs.csv"))
    labels = size_groups(runs)
    group = set(runs["run"][labels == labels[runs["run"].tolist().index("237M_v1-20N")]])
    assert group == {"237M_v1-20N", "237M_v2-20N", "237M_v3-20N", "237M_v4-20N"}
    across = size_groups(runs, by_tokens=False)
    i, j = runs["run"].tolist().index("313M_v1-20N"), runs["run"].tolist().index("313M_v1-160N")
    assert across[i] == across[j] and labels[i] != labels[j]


def test_shape_residual_of_a_law_on_real_runs_is_finite():
    runs = load_runs(bundled_path("morph_runs.csv"))
    amp = estimate_shape_residual(fake_truth(source="open-lm-morph"), runs, 0.0024)
    assert 0.0 <= amp < 0.2


def test_smooth_residual_has_unit_variance_and_is_smooth():
    rng = np.random.default_rng(0)
    z = np.array([[0.0, 0.0], [0.01, 0.0], [3.0, 3.0]])
    draws = np.array([smooth_residual(z, np.random.default_rng(s)) for s in range(2000)])
    assert draws.var(axis=0) == pytest.approx([1, 1, 1], abs=0.15)
    corr = np.corrcoef(draws.T)
    assert corr[0, 1] > 0.99 and abs(corr[0, 2]) < 0.1
    assert shape_feature_matrix(enumerate_archs(1e8)[:50]).shape == (50, 4)
    del rng


def test_hypervolume_matches_hand_computation():
    y = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [0.5, 0.5], [-1.0, 9.0]])
    # Boxes above ref (0, 0): 1*3 + 1*2 + 1*1 = 6; the last row is below ref in objective 0.
    assert hypervolume(y, np.array([0.0, 0.0])) == pytest.approx(6.0)
    assert hypervolume(np.zeros((0, 2)), np.array([0.0, 0.0])) == 0.0


def test_world_truth_hv_and_regret(candidates):
    world = small_world(candidates)
    assert world.n == len(candidates)
    assert world.hv_ratio(np.arange(world.n)) == pytest.approx(1.0)
    assert world.hv_ratio(world.pareto_indices) == pytest.approx(1.0)
    assert world.hv_ratio([]) == 0.0
    ratios = [
        world.hv_ratio(np.random.default_rng(s).choice(world.n, 8, replace=False)) for s in range(5)
    ]
    assert all(0.0 <= r < 1.0 for r in ratios)
    best = world.best_under_target
    assert world.regret(best) == 0.0
    assert world.regret(None) == 1.0
    worse = int(np.argmax(world.true_loss))
    assert world.regret(worse) == 1.0  # misses the loss target


def test_world_depends_on_seed_and_is_reproducible(candidates):
    a, b, c = small_world(candidates, 0), small_world(candidates, 0), small_world(candidates, 1)
    np.testing.assert_array_equal(a.true_loss, b.true_loss)
    assert not np.allclose(a.true_loss, c.true_loss)
    flat = small_world(candidates, 0, residual=0.0)
    ratio = np.log(a.true_loss / flat.true_loss)
    # The residual's sd, up to the one constant that re-anchors the level at the reference.
    assert np.std(ratio) == pytest.approx(0.01, rel=0.6)


def test_no_oracle_the_reference_shape_sits_exactly_on_max_loss(candidates):
    """The user's max_loss is the prior's prediction at the reference shape; the truth is
    scaled so the reference has that loss, and enough candidates beat it to form a front."""
    world = small_world(candidates, 3)
    truth = fake_truth()
    assert world.loss_target == pytest.approx(max_loss_of(truth))
    assert world.ref_point[0] == pytest.approx(-world.loss_target)
    assert world.info["reference_shape"] == REFERENCE.label()
    assert world.info["n_under_target"] >= 3
    # Shape-to-shape ratios are the law draw's: only the level moved.
    base, _ = law_truth(truth, "s")(list(candidates), 2e9, np.random.default_rng([3, 7919, 0]))
    flat = small_world(candidates, 3, residual=0.0)
    shift = np.log(flat.true_loss / base)
    np.testing.assert_allclose(shift - shift[0], 0.0, atol=1e-12)


def test_true_throughput_differs_from_the_model_by_the_documented_error(candidates):
    model = np.array([1e6 / a.n_layers / a.d_model**0.5 for a in candidates])
    err = ThroughputError(common_sd=0.15, shape_sd=0.05, iid_sd=0.02)
    logs = np.array(
        [
            np.log(true_throughput(candidates, model, err, np.random.default_rng(s)) / model)
            for s in range(400)
        ]
    )  # (draws, n)
    common = logs.mean(axis=1)
    assert np.std(common) == pytest.approx(0.15, rel=0.2)  # the shared factor
    relative = logs - common[:, None]
    assert np.std(relative) == pytest.approx(np.hypot(0.05, 0.02), rel=0.3)
    exact = small_world(candidates, 0, error=ThroughputError(0.0, 0.0, 0.0))
    np.testing.assert_allclose(exact.true_tokens_per_s, model)


def test_real_shape_effect_comes_from_gemstones_and_is_not_a_law():
    effect = fit_shape_effect("gemstones_runs.csv")
    assert len(effect.u) == 14 and np.ptp(effect.u) > 1.5  # widths 256-1792, depths 3-80
    # Real residuals of ~1% either way, smoothed (not interpolated exactly: runs are noisy).
    assert 0.01 < np.ptp(effect.effect) < 0.1
    smooth = effect.predict(effect.u)
    assert np.corrcoef(smooth, effect.effect)[0, 1] > 0.5
    assert -0.2 < effect.size_slope < 0.0  # bigger is better at fixed tokens
    cands = enumerate_archs(1e8)[:80]
    base, info = shape_effect_truth(effect)(cands, 2e9, np.random.default_rng(0))
    assert base.shape == (80,) and np.all(base > 0) and info["shape_effect_table"]
    assert "held_out_source" in WORLD_KINDS and "real_shapes" in WORLD_KINDS


def test_a_world_without_a_front_under_max_loss_is_an_error(candidates):
    tput = np.array([1e6 / a.n_layers / a.d_model**0.5 for a in candidates])

    def worse(archs, tokens, rng):  # every candidate worse than the reference shape (last)
        base = np.full(len(archs), 3.0)
        base[-1] = 2.0
        return base, {}

    with pytest.raises(WorldError, match="under max_loss"):
        make_world(
            candidates,
            2e9,
            truth=worse,
            reference=REFERENCE,
            max_loss=2.5,
            throughput_model=tput,
            seed=0,
            noise=NoiseEstimate(0.003, 10, "test"),
            residual_rel_sigma=0.0,
        )


def test_observations_are_noisy_around_the_truth(candidates):
    world = small_world(candidates)
    idx = np.zeros(4000, dtype=np.int64)
    loss, tps = world.observe(idx, np.random.default_rng(0))
    assert np.std(np.log(loss / world.true_loss[0])) == pytest.approx(0.003, rel=0.1)
    assert np.mean(tps) == pytest.approx(world.true_tokens_per_s[0], rel=0.01)
    with pytest.raises(WorldError):
        world.observe([world.n], np.random.default_rng(0))


def test_world_rejects_bad_truth_shapes(candidates):
    with pytest.raises(WorldError):
        World("w", tuple(candidates[:3]), 1e9, np.ones(2), np.ones(3), 0.0, 0.0, 1.0, np.zeros(2))
