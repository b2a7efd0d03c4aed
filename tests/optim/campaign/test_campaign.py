"""The campaign loop on a small problem (5e7 params, ~280 candidates, a LawPosterior from a
samples dict): create/load, propose, observe, refusals, run ingestion, Pareto, crash safety."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from support import small_posterior, small_spec

from models.errors import ArchoptError
from optim.campaign import PROPOSAL_FIELDS, Campaign, CampaignError, list_campaigns
from optim.campaign.store import CampaignStore

pytestmark = pytest.mark.slow


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A store holding campaign 'small' with two proposed trials (0, 1)."""
    path = tmp_path_factory.mktemp("tpl") / "campaigns.sqlite"
    camp = Campaign.create(small_spec(), store=path, prior=small_posterior())
    camp.propose(2, seed=0)
    return path


@pytest.fixture
def store(template, tmp_path) -> CampaignStore:
    path = tmp_path / "campaigns.sqlite"
    shutil.copyfile(template, path)
    return CampaignStore(path)


def _run_table(archs, losses, tokens=1e9):
    return pd.DataFrame(
        [
            {
                "source": "mine",
                "run": f"r{i}",
                **a.shape(),
                "params": a.params,
                "tokens": tokens,
                "loss": v,
                "loss_kind": "val",
            }
            for i, (a, v) in enumerate(zip(archs, losses))
        ]
    )


def test_create_load_and_resume(store):
    assert list_campaigns(store) == ["small"]
    camp = Campaign.load("small", store)
    assert [t["status"] for t in camp.trials()] == ["pending", "pending"]
    assert camp.spec == small_spec()
    assert camp.prior.num_samples == 32
    with pytest.raises(CampaignError, match="already exists"):
        Campaign.create(small_spec(), store=store, prior=small_posterior())
    with pytest.raises(CampaignError, match="unknown campaign"):
        Campaign.load("nope", store)


def test_proposals_carry_the_contract_fields_and_hold_the_band(store):
    camp = Campaign.load("small", store)
    rows = camp.propose(2)
    lo, hi = camp.spec.budget_bounds()
    assert [r["trial"] for r in rows] == [2, 3]
    for r in rows:
        assert set(PROPOSAL_FIELDS) <= set(r)
        assert lo <= r["non_embedding_params"] <= hi
        assert r["pred_loss_q05"] <= r["pred_loss_mean"] <= r["pred_loss_q95"]
        assert r["ehvi"] > 0 and r["pred_tokens_per_s"] > 0
    # Not re-proposed: pending shapes are excluded.
    labels = [t["label"] for t in Campaign.load("small", store).trials()]
    assert len(set(labels)) == 4


def test_observe_and_refusals_leave_the_store_unchanged(store):
    camp = Campaign.load("small", store)
    out = camp.observe(0, 3.1)
    assert out["status"] == "observed" and out["observed_loss"] == 3.1
    before = _sha(store.path)
    for trial, loss in ((0, 3.0), (1, float("nan")), (7, 3.0), (1, -1.0)):
        with pytest.raises(CampaignError):
            camp.observe(trial, loss)
    assert _sha(store.path) == before
    camp.observe(0, 3.05, force=True)
    assert Campaign.load("small", store).trials()[0]["observed_loss"] == 3.05


def test_observed_runs_complete_pending_trials_or_attach_new_ones(store):
    camp = Campaign.load("small", store)
    pending_arch = camp.trial_records()[1].arch
    problem = camp.problem
    other = next(
        a
        for a in problem.candidates[: problem.n_grid]
        if a not in {r.arch for r in camp.trial_records()}
    )
    out = camp.observe_runs(_run_table([pending_arch, other], [3.2, 3.3]))
    assert sorted(t["trial"] for t in out) == [1, 2]
    trials = Campaign.load("small", store).trials()
    assert trials[1]["status"] == "observed" and trials[1]["run"] == "r0"
    assert trials[2]["kind"] == "attached" and trials[2]["observed_loss"] == 3.3


@pytest.mark.parametrize("off", [None, 2])
def test_ingested_runs_outside_the_prior_band_warn_once_each(store, off):
    """Bulk ingestion warns like a single result: exactly the run whose loss is far off the
    prior (given the others) gets a PriorBandWarning naming it; in-band runs give none."""
    import warnings

    from optim.core.weighting import PriorBandWarning

    camp = Campaign.load("small", store)
    camp.propose(6, seed=0)
    pred = {t["trial"]: t["pred_loss_mean"] for t in camp.trials()}
    recs = camp.trial_records()
    archs = [r.arch for r in recs]
    losses = [pred[r.trial] + (0.3 if r.trial == off else 0.02) for r in recs]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = camp.observe_runs(_run_table(archs, losses))
    band = [str(w.message) for w in caught if issubclass(w.category, PriorBandWarning)]
    assert len(out) == 8  # recorded all the same
    if off is None:
        assert band == []
    else:
        assert len(band) == 1 and band[0].startswith(f"run 'r{off}' (trial {off}): ")
        assert "above the prior's 90% band" in band[0]


def test_runs_outside_the_budget_or_repeated_are_refused_unless_forced(store):
    camp = Campaign.load("small", store)
    arch = camp.trial_records()[0].arch
    big = arch.replace(n_layers=arch.n_layers * 4)
    before = _sha(store.path)
    with pytest.raises(CampaignError, match="outside the campaign's budget"):
        camp.observe_runs(_run_table([big], [2.9]))
    with pytest.raises(CampaignError, match="tokens"):
        camp.observe_runs(_run_table([arch], [2.9], tokens=5e9))
    camp.observe_runs(_run_table([arch], [3.0]))
    mid = _sha(store.path)
    with pytest.raises(CampaignError, match="already has loss"):
        camp.observe_runs(_run_table([arch], [2.9]))
    assert _sha(store.path) == mid != before
    out = camp.observe_runs(_run_table([big], [2.9]), force=True)
    assert out[0]["in_band"] is False
    # The forced out-of-band shape is data for the model but never proposed or on the front.
    camp = Campaign.load("small", store)
    i = camp.problem.index_of(big)
    assert not camp.problem.proposable[i]
    assert all(r["in_band"] for r in camp.pareto())


def test_pareto_labels_observed_and_predicted(store):
    camp = Campaign.load("small", store)
    camp.observe(0, 1.5)  # far better than any prediction: must be on the front
    front = camp.pareto()
    sources = {r["source"] for r in front}
    assert "observed" in sources and "predicted" in sources
    obs = [r for r in front if r["source"] == "observed"]
    assert obs[0]["trial"] == 0 and obs[0]["observed_loss"] == 1.5
    tps = [r["pred_tokens_per_s"] for r in front]
    assert tps == sorted(tps, reverse=True)
    # Non-dominated: loss strictly decreases as throughput decreases.
    loss = [
        r["observed_loss"] if r["observed_loss"] is not None else r["pred_loss_mean"] for r in front
    ]
    assert all(a >= b for a, b in zip(loss, loss[1:]))
    status = camp.status()
    assert status["n_observed"] == 1 and status["best_observed_trial"] == 0
    assert status["observed_pareto_trials"] == [0]


def test_predict_any_shape(store):
    camp = Campaign.load("small", store)
    arch = camp.problem.candidates[0]
    outside = arch.replace(n_layers=arch.n_layers * 3)
    df = camp.shape_table([arch, outside])
    assert list(df["in_band"]) == [True, False]
    assert np.all(df["pred_loss_q05"] < df["pred_loss_q95"])
    with pytest.raises(CampaignError):
        camp.shape_table(["not an arch"])


def test_killed_process_mid_write_leaves_the_old_store(store):
    before = _sha(store.path)
    code = textwrap.dedent(f"""
        import os
        from optim.campaign import Campaign
        camp = Campaign.load("small", {str(store.path)!r})
        from optim.campaign.store import Snapshot
        Snapshot.put_trial_meta = lambda *a, **k: os._exit(9)  # dies after Ax wrote the copy
        camp.observe(0, 3.0)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr
    assert _sha(store.path) == before
    camp = Campaign.load("small", store)  # still loadable, lock released
    assert camp.trials()[0]["status"] == "pending"
    camp.observe(0, 3.0)


def test_later_measurement_updates_the_throughput_ax_stored(store, archopt_home):
    """A trial completed with the model's tokens/s gets the measured value once one exists."""
    from models.measure import Measurement, MeasurementCache
    from optim.campaign.ax_adapter import THROUGHPUT_METRIC

    def stored_tps():
        with store.transaction(write=False) as snap:
            return snap.ax_load(small_spec()).stored_means(THROUGHPUT_METRIC)

    camp = Campaign.load("small", store)
    camp.observe(0, 2.0)
    arch = next(r.arch for r in camp.trial_records() if r.trial == 0)
    model_tps = stored_tps()[0]
    wl = camp.spec.workload
    MeasurementCache().put(
        Measurement(
            status="ok",
            reason="",
            tokens_per_s=2 * model_tps,
            tokens_per_s_spread=0.0,
            arch=arch,
            hardware_id=camp.spec.hardware,
            backend=wl.backend,
            batch_size=wl.batch_size,
            input_len=wl.input_len,
            output_len=wl.output_len,
            dtype=wl.dtype,
        )
    )
    Campaign.load("small", store).observe(1, 2.1)
    after = stored_tps()
    assert after[0] == pytest.approx(2 * model_tps)
    assert after[1] > 0


# ---- issue 10 regressions ----------------------------------------------------------------------
@pytest.mark.parametrize("loss", [1e300, 25.0])
def test_an_implausible_loss_is_refused_unless_forced(store, loss):
    camp = Campaign.load("small", store)
    before = _sha(store.path)
    with pytest.raises(CampaignError, match="plausible range"):
        camp.observe(0, loss)
    with pytest.raises(ArchoptError, match="plausible range"):
        camp.observe_runs(_run_table([camp.trial_records()[0].arch], [loss]))
    assert _sha(store.path) == before
    out = camp.observe(0, loss, force=True)
    assert out["observed_loss"] == loss


def test_propose_caps_k_with_a_clear_message(store):
    from optim.campaign.campaign import MAX_PROPOSALS

    before = _sha(store.path)
    with pytest.raises(CampaignError, match=f"at most {MAX_PROPOSALS}"):
        Campaign.load("small", store).propose(MAX_PROPOSALS + 1)
    assert _sha(store.path) == before


def test_a_campaign_keeps_its_hardware_profile_when_hardware_json_loses_it(tmp_path, archopt_home):
    import json

    from models.hardware import USER_HARDWARE_FILE

    archopt_home.mkdir(parents=True, exist_ok=True)
    profile = {
        "my-gpu": {
            "name": "My GPU",
            "peak_flops": 2e14,
            "mem_bandwidth": 1.2e12,
            "mem_bytes": 4.8e10,
            "source": "test",
        }
    }
    (archopt_home / USER_HARDWARE_FILE).write_text(json.dumps(profile))
    spec = small_spec().__class__(
        **{**small_spec().to_dict(), "hardware": "my-gpu", "hardware_profile": None}
    )
    path = tmp_path / "c.sqlite"
    Campaign.create(spec, store=path, prior=small_posterior()).propose(1, seed=0)
    (archopt_home / USER_HARDWARE_FILE).write_text("{}")
    camp = Campaign.load(spec.name, path)
    assert camp.spec.hardware == "my-gpu" and camp.spec.device.peak_flops == 2e14
    assert camp.status()["n_trials"] == 1


def test_an_ax_frontier_failure_is_an_error_not_an_empty_front(store, monkeypatch):
    from optim.campaign.ax_adapter import AxCampaign

    camp = Campaign.load("small", store)
    camp.observe(0, 3.0)

    def broken(self):
        raise ValueError("no data for tokens_per_s")

    monkeypatch.setattr(AxCampaign, "observed_pareto_trials", broken)
    with pytest.raises(CampaignError, match="Pareto frontier"):
        Campaign.load("small", store).status()
