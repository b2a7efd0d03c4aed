"""Measurement jobs through the training runner's backends (:mod:`optim.campaign.measure_jobs`):
a stand-in for ``vllm bench throughput`` (a script writing that schema's JSON for the workload it
is given) measures the campaign's trial shapes; results are cached as measured, the campaign's
throughput and Ax's stored tokens/s follow, failures keep their reason, nothing runs twice."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from support import pending_campaign, store_with_fake_vllm

from optim.campaign import Campaign
from optim.campaign.jobs import JobError, LocalBackend
from optim.campaign.measure_jobs import check_measure_command, run_measurements

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """Campaign 'small' with three pending trials (0-2)."""
    return pending_campaign(tmp_path_factory.mktemp("measure") / "campaigns.sqlite", 3)


@pytest.fixture
def setup(template, tmp_path, archopt_home):
    store, script = store_with_fake_vllm(template, tmp_path)
    return store, script, tmp_path / "runs"


def _cmd(script: Path, mode: str = "ok") -> str:
    return (
        f"{sys.executable} {script} {{config}} {{result}} {{requests}} {{input}} {{output}} {mode}"
    )


def _expected_tps(arch, wl) -> float:
    return wl.num_requests * wl.output_len / (1.0 + 0.05 * arch.n_layers)


def test_measurement_jobs_cache_results_and_the_campaign_uses_them(setup):
    store, script, runs = setup
    camp = Campaign.load("small", store)
    camp.observe(0, 3.5, force=True)
    before = {t["trial"]: t for t in camp.trials(now=True)}
    out = run_measurements(
        camp, LocalBackend(), _cmd(script), runs_dir=runs, max_jobs=5, parallel=2, poll_seconds=0.1
    )
    assert sorted(out["launched"]) == sorted(out["completed"]) == [0, 1, 2] and not out["failed"]
    camp = Campaign.load("small", store)
    wl = camp.spec.workload
    problem = camp.problem
    for rec in camp.trial_records():
        i = problem.index_of(rec.arch)
        assert problem.throughput_source[i] == "measured"
        assert problem.throughput_mean[i] == pytest.approx(_expected_tps(rec.arch, wl), rel=1e-6)
        assert out["tokens_per_s"][rec.trial] == pytest.approx(_expected_tps(rec.arch, wl))
        assert rec.meta["measure"]["state"] == "completed"
    assert before[0]["pred_tokens_per_s_now"] != pytest.approx(out["tokens_per_s"][0])
    # Ax's stored tokens/s of the observed trial is the measurement now.
    from optim.campaign.ax_adapter import THROUGHPUT_METRIC

    with camp.store.transaction(write=False) as snap:
        stored = snap.ax_load(camp.spec).stored_means(THROUGHPUT_METRIC)
    assert stored[0] == pytest.approx(out["tokens_per_s"][0], rel=1e-6)
    # Measured shapes are never measured again.
    again = run_measurements(
        camp, LocalBackend(), _cmd(script), runs_dir=runs, max_jobs=5, poll_seconds=0.1
    )
    assert again["launched"] == []


@pytest.mark.parametrize(
    "mode, reason", [("crash", "exited with code 4"), ("wrong-workload", "total_num_tokens")]
)
def test_a_failed_or_mismatched_measurement_is_failed_with_its_reason(setup, mode, reason):
    store, script, runs = setup
    camp = Campaign.load("small", store)
    out = run_measurements(
        camp,
        LocalBackend(),
        _cmd(script, mode),
        runs_dir=runs,
        max_jobs=1,
        trials=[1],
        poll_seconds=0.1,
    )
    assert out["failed"] == [1] and not out["completed"]
    trial = Campaign.load("small", store).trial_records()[1]
    assert trial.status == "pending"  # the training trial is untouched
    assert trial.meta["measure"]["state"] == "failed"
    assert reason in trial.meta["measure"]["reason"]
    from models.measure import MeasurementCache

    assert MeasurementCache().newest_ok(trial.arch, "a100-40gb", camp.spec.workload) is None


def test_bad_measure_commands_and_trials_are_refused(setup):
    store, script, runs = setup
    for bad in ("vllm bench throughput --model {model}", "echo {result}"):
        with pytest.raises(JobError, match=r"\{"):
            check_measure_command(bad)
    with pytest.raises(JobError, match="no trial 9"):
        run_measurements(
            Campaign.load("small", store),
            LocalBackend(),
            _cmd(script),
            runs_dir=runs,
            max_jobs=1,
            trials=[9],
        )
    assert json.loads(json.dumps(Campaign.load("small", store).trials()))[0]["status"] == "pending"


def test_an_interrupted_loop_reattaches_and_never_measures_a_shape_twice(setup):
    store, script, runs = setup
    slow = f"sleep 1; {_cmd(script)}"

    def interrupt(_seconds):
        raise KeyboardInterrupt  # the user stops the loop while its jobs run

    with pytest.raises(KeyboardInterrupt):
        run_measurements(
            Campaign.load("small", store),
            LocalBackend(),
            slow,
            runs_dir=runs,
            max_jobs=2,
            parallel=2,
            poll_seconds=0.1,
            sleep=interrupt,
        )
    states = [r.meta["measure"]["state"] for r in Campaign.load("small", store).trial_records()[:2]]
    assert states == ["running", "running"]
    out = run_measurements(
        Campaign.load("small", store),
        LocalBackend(),
        slow,
        runs_dir=runs,
        max_jobs=0,
        poll_seconds=0.2,
    )
    assert out["launched"] == [] and sorted(out["completed"]) == [0, 1]
    assert sorted(p.name for p in (runs / "small").iterdir()) == ["measure-0000", "measure-0001"]
