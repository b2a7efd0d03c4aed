"""optim.campaign.insights on the small campaign of test_campaign (5e7 params, ~280 candidates,
a LawPosterior from a samples dict): joint draws, relative predictions, the learned offset, why
a proposal, hypervolume over trials, leave-one-out checks, sensitivity, slices, parallel
coordinates and the calibration verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from support import small_posterior, small_spec

from models.arch import Arch
from optim.campaign import Campaign
from optim.campaign import insights as ins


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Campaign:
    """Three proposals, no result."""
    camp = Campaign.create(
        small_spec("fresh"),
        store=tmp_path_factory.mktemp("fresh") / "c.sqlite",
        prior=small_posterior(),
        progress=False,
    )
    camp.propose(3, seed=0)
    return Campaign.load("fresh", camp.store)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Campaign:
    """Four proposals, two observed 0.3 above the law's mean (a campaign offset), two pending."""
    camp = Campaign.create(
        small_spec("runs"),
        store=tmp_path_factory.mktemp("runs") / "c.sqlite",
        prior=small_posterior(),
        progress=False,
    )
    rows = camp.propose(4, seed=0)
    law = camp.problem.law_mean()
    for row in rows[:2]:
        i = camp.problem.index_of(Arch.from_mapping(row))
        camp.observe(row["trial"], float(law[i]) + 0.3)
    return Campaign.load("runs", camp.store)


@pytest.fixture(scope="module")
def fresh_draws(fresh) -> ins.ModelDraws:
    return ins.model_draws(fresh, n_draws=1024)


@pytest.fixture(scope="module")
def runs_draws(runs) -> ins.ModelDraws:
    return ins.model_draws(runs, n_draws=1024)


def test_observations_follow_the_trials(runs, fresh):
    obs = ins.observations(runs)
    assert list(obs.trials) == [0, 1] and list(obs.pending_trials) == [2, 3]
    recs = {r.trial: r for r in runs.trial_records()}
    assert list(obs.loss) == [recs[0].loss, recs[1].loss]
    assert [runs.problem.candidates[i] for i in obs.idx] == [recs[0].arch, recs[1].arch]
    assert len(ins.observations(fresh).idx) == 0


def test_joint_draws_match_the_model_marginals_and_cancel_the_shared_offset(fresh):
    model = ins.loss_model(fresh)
    idx = np.flatnonzero(fresh.problem.proposable)[:40]
    draws = ins.joint_loss_draws(model, idx, 4096, seed=1)
    assert draws.shape == (4096, 40)
    # The noise-free marginals: the mixture's mean and variance at each shape.
    parts = [(w, *m.marginals(idx)) for (_, m), w in zip(model.members, model.weights)]
    mean = sum(w * mu.mean(0) for w, mu, _ in parts)
    var = sum(w * (v + mu.var(0) + (mu.mean(0) - mean) ** 2) for w, mu, v in parts)
    sd = np.sqrt(var)
    np.testing.assert_allclose(draws.mean(0), mean, atol=4 * sd.max() / math.sqrt(4096))
    np.testing.assert_allclose(draws.std(0), sd, rtol=0.08)
    # Before any run the offset every shape shares dominates each marginal; differences
    # between shapes drop it.
    diff_sd = (draws[:, 1:] - draws[:, :1]).std(0)
    assert np.median(diff_sd) < 0.5 * np.median(sd)
    noisy = ins.joint_loss_draws(model, idx, 4096, seed=1, noise=True)
    assert np.all(noisy.std(0) > draws.std(0))


def test_non_dominated_agrees_with_botorch():
    from botorch.utils.multi_objective import is_non_dominated

    rng = np.random.default_rng(0)
    loss, tps = rng.random((50, 30)), rng.random((50, 30))
    ours = ins.non_dominated(loss, tps)
    for s in range(50):
        ref = is_non_dominated(torch.as_tensor(np.stack([-loss[s], tps[s]], -1))).numpy()
        np.testing.assert_array_equal(ours[s], ref)
    loss[:, 0] = np.inf  # not eligible: never on the front, dominates nothing
    assert not ins.non_dominated(loss, tps)[:, 0].any()


def test_model_draws_pool_holds_trials_and_the_front(fresh, fresh_draws):
    d = fresh_draws
    for rec in fresh.trial_records():
        d.column(fresh.problem.index_of(rec.arch))  # raises when absent
    assert d.on_front.any(1).all()  # every draw has a front
    assert np.all((d.p_front >= 0) & (d.p_front <= 1))
    assert not d.on_front[:, ~d.eligible].any()
    front = {fresh.problem.index_of(Arch.from_mapping(r)) for r in fresh.pareto()}
    on = np.isin(d.indices, list(front))
    # Shapes on the front of the predicted means are likelier on it than the rest (in this
    # uncalibrated-throughput world every shape keeps a few percent).
    assert on.any() and d.p_front[on].mean() > d.p_front[~on].mean()


def test_relative_table_against_a_shape(runs, runs_draws):
    ref = ins.reference_index(runs, "best")
    table = ins.relative_table(runs, runs_draws, ref)
    top = table.iloc[0]
    assert top["is_reference"] and top["delta_mean"] == 0 and top["p_beats"] == 0
    assert top["tps_ratio"] == pytest.approx(1.0)
    # The mean difference is the difference of the means (Monte Carlo error of 1024 draws).
    k = runs_draws.column(ref)
    np.testing.assert_allclose(
        table["delta_mean"], table["pred_loss_mean"] - runs_draws.pred_mean[k], atol=0.006
    )
    assert (table["delta_q05"] <= table["delta_mean"]).all()
    assert (table["delta_mean"] <= table["delta_q95"]).all()
    # A shape predicted clearly worse beats the reference rarely, one clearly better often.
    worse = table[table["delta_q05"] > 0]
    better = table[table["delta_q95"] < 0]
    assert (worse["p_beats"] < 0.06).all() and (better["p_beats"] > 0.94).all()
    assert set(table.loc[table["trial"].notna(), "status"]) == {"observed", "pending"}


def test_relative_to_a_shape_outside_the_candidates(runs):
    arch = runs.problem.candidates[0]
    outside = arch.replace(n_layers=arch.n_layers * 3)
    with pytest.raises(ins.InsightError, match="not among"):
        ins.reference_index(runs, outside)
    d = ins.model_draws(runs, extra_archs=[outside], pool_size=100, n_draws=256)
    i = ins.reference_index(runs, outside, d.problem)
    table = ins.relative_table(runs, d, i)
    row = table[table["candidate"] == i].iloc[0]
    assert row["status"] == "reference shape" and row["p_front"] == 0 and row["is_reference"]


def test_references_that_do_not_exist_are_errors(fresh, runs):
    with pytest.raises(ins.InsightError, match="no observed run"):
        ins.reference_index(fresh, "best")
    with pytest.raises(ins.InsightError, match="no trial 99"):
        ins.reference_index(runs, "trial 99")
    with pytest.raises(ins.InsightError, match="out of range"):
        ins.reference_index(runs, 10**6)


def test_learned_offset_before_and_after_runs(fresh, fresh_draws, runs, runs_draws):
    before = ins.learned_offset(fresh, fresh_draws)
    assert before["n_runs"] == 0
    assert abs(before["offset_mean"]) < 0.25 * before["offset_sd"]
    assert before["offset_sd"] == pytest.approx(before["prior_offset_sd"], rel=0.2)
    assert before["relative_band"] < 0.6 * before["marginal_band"]
    after = ins.learned_offset(runs, runs_draws)
    assert after["n_runs"] == 2
    assert after["offset_mean"] == pytest.approx(0.3, abs=0.06)  # the runs sit 0.3 above the law
    assert after["offset_sd"] < 0.5 * after["prior_offset_sd"]


def test_hypervolume_of_known_points():
    ref = (3.0, math.e)  # objective space (-loss, log tokens/s): reference (-3, 1)
    batch = ins.batch_hypervolume(
        np.array([[2.0, 2.5], [2.0, 3.5]]), np.array([[math.e**3, math.e**4]] * 2), ref
    )
    np.testing.assert_allclose(batch, [2.5, 2.0])
    assert ins.batch_hypervolume(np.zeros((3, 0)), np.zeros((3, 0)), ref).tolist() == [0, 0, 0]
    # One point at loss 2, tokens/s e^3: a 1 x 2 rectangle.
    assert ins.hypervolume(np.array([2.0]), np.array([math.e**3]), ref) == pytest.approx(2.0)
    # Two non-dominated points: union of rectangles 1x2 and 0.5x3 = 2 + 0.5 = 2.5.
    hv = ins.hypervolume(np.array([2.0, 2.5]), np.array([math.e**3, math.e**4]), ref)
    assert hv == pytest.approx(2.5)
    assert ins.hypervolume(np.array([3.5]), np.array([math.e**3]), ref) == 0.0  # worse than ref
    assert ins.hypervolume(np.array([]), np.array([]), ref) == 0.0


def test_hypervolume_history_grows_with_the_runs(runs, fresh):
    hv = ins.hypervolume_history(runs)
    hist = hv["history"]
    assert list(hist["trial"]) == [0, 1] and list(hist["n_observed"]) == [1, 2]
    assert (np.diff(hist["hypervolume"]) >= 0).all()
    obs = ins.observations(runs)
    assert hist["hypervolume"].iloc[-1] == pytest.approx(
        ins.hypervolume(obs.loss, runs.problem.throughput_mean[obs.idx], hv["ref_point"])
    )
    assert hv["predicted_front_hypervolume"] > 0
    assert ins.hypervolume_history(fresh)["history"].empty


def test_why_a_proposal(fresh, fresh_draws, runs, runs_draws):
    w = ins.why_proposal(fresh, 1, fresh_draws)
    assert w["ehvi"] > 0 and w["batch_size"] == 3 and w["batch_position"] == 2
    assert w["p_improves_front"] is None and 0 <= w["p_on_front"] <= 1
    assert w["ehvi_now"] > 0 and w["strategy"] == "archopt"  # alone, any run above the ref counts
    assert w["best"]["kind"] == "best predicted candidate"
    assert "Why trial 1" in w["summary"] and "No run is observed yet" in w["summary"]
    w = ins.why_proposal(runs, 3, runs_draws)
    assert w["best"]["kind"] == "best observed run" and 0 <= w["p_improves_front"] <= 1
    m, lo, hi = w["delta_loss"]
    assert lo <= m <= hi and w["tps_ratio"][1] <= w["tps_ratio"][0] <= w["tps_ratio"][2]
    assert "improves the observed front" in w["summary"]
    # EHVI now is the mean hypervolume gain over the joint draws, never negative; P(improves)
    # bounds how often it is positive.
    assert w["ehvi_now"] >= 0
    with pytest.raises(ins.InsightError, match="no trial 42"):
        ins.why_proposal(runs, 42, runs_draws)


def test_leave_one_out_refits_without_each_run_and_flags_an_outlier(tmp_path):
    from optim.core.weighting import fit_weighted_model

    camp = Campaign.create(
        small_spec("loo"), store=tmp_path / "c.sqlite", prior=small_posterior(), progress=False
    )
    rows = camp.propose(3, seed=0)
    law = camp.problem.law_mean()
    idx = [camp.problem.index_of(Arch.from_mapping(r)) for r in rows]
    for row, i in zip(rows[:2], idx):  # two runs with the same offset from the law
        camp.observe(row["trial"], float(law[i]) + 0.1)
    camp = Campaign.load("loo", camp.store)
    table = ins.loo_check(camp)
    assert list(table["trial"]) == [rows[0]["trial"], rows[1]["trial"]]
    assert not table["outside"].any()
    # Row j is the model refitted on the other run only, predicting run j's shape.
    other = fit_weighted_model(camp.problem, [idx[1]], [float(law[idx[1]]) + 0.1])
    mean, q = other.predictive(np.array([idx[0]]))
    assert table["pred_mean"].iloc[0] == pytest.approx(mean[0])
    assert (table["pred_q05"].iloc[0], table["pred_q95"].iloc[0]) == pytest.approx(
        (q[0][0], q[1][0])
    )
    # A third run 0.5 off the offset the first two agree on is outside its band.
    camp.observe(rows[2]["trial"], float(law[idx[2]]) + 0.6)
    table = ins.loo_check(Campaign.load("loo", camp.store))
    last = table.iloc[2]
    assert last["trial"] == rows[2]["trial"] and last["outside"] and last["z"] > 1.645
    assert (table["pred_q05"] < table["pred_mean"]).all() and (
        table["pred_mean"] < table["pred_q95"]
    ).all()


def test_calibration_verdict():
    off = ins.calibration_verdict(76, 25, 44)  # 33% and 58% of 76 runs: the numbers
    assert (
        off["off"] and "miscalibrated" in off["message"] and off["cov90"] == pytest.approx(44 / 76)
    )
    ok = ins.calibration_verdict(100, 52, 89)
    assert not ok["off"] and ok["p90"] > 0.5
    wide = ins.calibration_verdict(200, 190, 200)
    assert wide["off"] and "wider" in wide["message"]
    assert not ins.calibration_verdict(0, 0, 0)["off"]


def test_prior_coverage_and_throughput_domain(runs):
    cov = ins.prior_coverage(runs)
    assert cov["source"] == "ref" and cov["n"] == 0 and not cov["off"]  # no bundled run of 'ref'
    dom = ins.throughput_domain(runs)
    assert dom["campaign_workload"] == str(runs.spec.workload)
    assert dom["warnings"] == list(runs.problem.throughput_warnings)
    assert dom["covers"] == (not dom["warnings"])


def test_correlation_ratio():
    rng = np.random.default_rng(0)
    groups = rng.integers(5, size=2000)
    assert ins.correlation_ratio(groups, groups * 2.0 + 1) == pytest.approx(1.0)
    assert ins.correlation_ratio(groups, rng.standard_normal(2000)) < 0.02
    assert ins.correlation_ratio(groups, np.ones(2000)) == 0.0


def test_sensitivity_slices_and_parallel_coordinates(runs):
    sens = ins.sensitivity(runs)
    assert list(sens["knob"]) == [k for k, _ in ins.KNOBS]
    for col in ("loss_share", "tps_share"):
        assert sens[col].between(0, 1).all()
    assert (sens["loss_range"] >= 0).all() and (sens["tps_range"] >= 0).all()

    slices = ins.model_slices(runs)
    centre = ins.reference_index(runs, "best")
    for knob, part in slices.groupby("knob"):
        assert part["is_centre"].sum() == 1 and centre in set(part["candidate"])
        assert part["candidate"].is_unique and part["x"].is_unique
        for row in part.itertuples():
            assert getattr(runs.problem.candidates[row.candidate], knob) == pytest.approx(row.x)
    assert (slices["pred_loss_q05"] < slices["pred_loss_q95"]).all()

    par = ins.parallel_coordinates(runs)
    counts = par["group"].value_counts()
    assert counts["observed"] == 2 and counts["pending"] == 2
    assert counts["front"] == len(runs.pareto())
    assert par[[k for k, _ in ins.KNOBS]].notna().all().all()
    observed = par[par["group"] == "observed"]
    assert list(observed["loss"]) == list(ins.observations(runs).loss)
