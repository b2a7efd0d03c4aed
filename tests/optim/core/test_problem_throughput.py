"""What a Problem exposes about throughput: joint draws, quantiles, the common/shape split,
measurements, servability at a tensor-parallel degree, and the JSON row fields."""

from __future__ import annotations

import numpy as np
import pytest

from models.measure import Measurement, MeasurementCache
from models.throughput import Workload
from optim.campaign.rows import candidate_row
from optim.core.problem import N_THROUGHPUT_DRAWS, Problem, ThroughputCalibrationWarning
from optim.core.spec import CampaignSpec, ProblemError


def _spec(**overrides) -> CampaignSpec:
    kwargs = dict(
        name="tp",
        params=5e7,
        tokens=1e9,
        hardware="a100-40gb",
        vocab_size=32000,
        workload=Workload(8, 512, 128),
    )
    kwargs.update(overrides)
    return CampaignSpec(**kwargs)


@pytest.fixture(scope="module")
def problem() -> Problem:
    return Problem.build(_spec(), None, measurement_cache=False)


def test_draws_quantiles_and_the_common_shape_split(problem) -> None:
    n = problem.n
    assert CampaignSpec("x", 1e9, 1e11, "a100-40gb").workload.backend == "vllm"
    assert problem.throughput_backend == "vllm"
    assert problem.throughput_draws.shape == (N_THROUGHPUT_DRAWS, n)
    np.testing.assert_allclose(problem.throughput_mean, np.median(problem.throughput_draws, axis=0))
    assert np.all(problem.throughput_q05 <= problem.throughput_mean)
    assert np.all(problem.throughput_mean <= problem.throughput_q95)
    assert problem.throughput_log_common.shape == (N_THROUGHPUT_DRAWS,)
    total = np.log(problem.throughput_draws).std(axis=0, ddof=1)
    # Removing the common mode leaves less to rank shapes by than the total spread.
    assert np.all(problem.throughput_rel_sigma <= total + 1e-12)
    assert problem.throughput_common_sigma > 0.05
    assert np.median(problem.throughput_rel_sigma) < np.median(total)
    # The draws are the common factor times the shape-relative part around the median.
    dev = (
        np.log(problem.throughput_draws / problem.throughput_mean)
        - problem.throughput_log_common[:, None]
    )
    np.testing.assert_allclose(dev.std(axis=0, ddof=1), problem.throughput_rel_sigma, rtol=1e-9)
    assert problem.servable.all() and (problem.unservable_reason == "").all()


def test_uncalibrated_pair_is_flagged(problem) -> None:
    assert problem.throughput_warnings and "a100-40gb/vllm" in problem.throughput_warnings[0]
    assert "uncalibrated" in problem.throughput_warnings[0]
    with pytest.warns(ThroughputCalibrationWarning, match="uncalibrated"):
        problem.warn_throughput()
    zeros = np.zeros(problem.n)
    assert "uncalibrated" in candidate_row(problem, 0, (zeros, zeros, zeros))["throughput_warning"]


def test_a_measurement_replaces_its_column(problem, tmp_path) -> None:
    cache = MeasurementCache(tmp_path / "m.sqlite")
    wl = problem.spec.workload
    arch = problem.candidates[5]
    cache.put(
        Measurement(
            status="ok",
            reason="",
            tokens_per_s=1234.0,
            tokens_per_s_spread=100.0,
            arch=arch,
            hardware_id="a100-40gb",
            backend="vllm",
            batch_size=wl.batch_size,
            input_len=wl.input_len,
            output_len=wl.output_len,
            dtype=wl.dtype,
            origin="vllm bench throughput",
            created_at=1.0,
        )
    )
    p = Problem.build(problem.spec, problem.prior, cache)
    i = p.index_of(arch)
    assert p.throughput_source[i] == "measured" and p.throughput_mean[i] == pytest.approx(1234.0)
    assert p.throughput_rel_sigma[i] == pytest.approx(50.0 / 1234.0)
    # Its draws scatter by the measurement's spread, not by the model's common mode.
    col = np.log(p.throughput_draws[:, i] / 1234.0)
    assert abs(np.corrcoef(col, p.throughput_log_common)[0, 1]) < 0.5
    row = candidate_row(p, i, (np.zeros(p.n), np.zeros(p.n), np.zeros(p.n)))
    assert row["throughput_source"] == "measured" and row["throughput_common_sigma"] == 0.0
    assert row["throughput_warning"] == ""


def test_rows_carry_draw_quantiles_backend_and_servability(problem) -> None:
    zeros = np.zeros(problem.n)
    row = candidate_row(problem, 3, (zeros, zeros, zeros))
    assert (
        row["tokens_per_s_q05"]
        == row["pred_tokens_per_s_q05"]
        == pytest.approx(problem.throughput_q05[3])
    )
    assert (
        row["tokens_per_s_q95"]
        == row["pred_tokens_per_s_q95"]
        == pytest.approx(problem.throughput_q95[3])
    )
    assert row["pred_tokens_per_s"] == pytest.approx(problem.throughput_mean[3])
    assert row["backend"] == "vllm" and row["servable"] is True and row["unservable_reason"] == ""
    assert row["throughput_common_sigma"] == pytest.approx(problem.throughput_common_sigma)


def test_shapes_that_cannot_be_sharded_are_not_proposable() -> None:
    p = Problem.build(_spec(workload=Workload(8, 512, 128, tp=4)), None, measurement_cache=False)
    heads = np.array([a.n_heads for a in p.candidates])
    kv = np.array([a.n_kv_heads for a in p.candidates])
    shardable = (heads % 4 == 0) & ((kv % 4 == 0) | (4 % kv == 0))
    assert (~shardable).any() and shardable.any()
    assert not p.proposable[~shardable].any() and not p.servable[~shardable].any()
    assert all("tp=4" in r for r in p.unservable_reason[~shardable])
    assert p.proposable[shardable & p.in_band].all()


def test_nothing_servable_is_an_error_naming_why() -> None:
    with pytest.raises(ProblemError, match="no candidate can be served.*GB"):
        Problem.build(_spec(workload=Workload(1, 50_000_000, 16)), None, measurement_cache=False)


def test_throughput_of_a_shape_does_not_depend_on_the_other_candidates():
    """Adding one off-grid shape (a forced run) must not move any candidate's tokens/s or draws."""
    import warnings

    from support import small_posterior, small_spec

    from optim.core.problem import Problem

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p1 = Problem.build(small_spec(), small_posterior(), measurement_cache=False)
        extra = p1.candidates[0].replace(n_layers=p1.candidates[0].n_layers * 3)
        p2 = Problem.build(
            small_spec(), small_posterior(), measurement_cache=False, extra_archs=[extra]
        )
        sub = Problem.build(
            small_spec(), small_posterior(), measurement_cache=False, candidates=p1.candidates[:40]
        )
    n = p1.n_grid
    np.testing.assert_array_equal(p1.throughput_mean[:n], p2.throughput_mean[:n])
    np.testing.assert_array_equal(p1.throughput_draws[:, :n], p2.throughput_draws[:, :n])
    np.testing.assert_array_equal(p1.throughput_mean[:40], sub.throughput_mean)
