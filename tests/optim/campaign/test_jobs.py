"""``archopt run``: launch, watch and ingest training jobs (local backend, and a real
single-node SLURM through submitit), failures with their reasons, timeouts, and a killed run
resumed without launching any trial twice."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import small_posterior, small_spec

from optim.campaign import Campaign
from optim.campaign.jobs import JobError, LocalBackend, check_train_command, read_metrics, run_jobs
from optim.cli import main

pytestmark = pytest.mark.slow

TRAIN = """
import json, pathlib, sys, time
cfg = json.load(open(sys.argv[1]))
out = pathlib.Path(sys.argv[2])
mode = sys.argv[3]
if mode == "sleep":
    time.sleep(float(sys.argv[4]))
if mode == "crash":
    sys.exit(3)
if mode == "nometrics":
    sys.exit(0)
with open(out / "metrics.jsonl", "w") as f:
    f.write(json.dumps({"step": 1, "loss": 9.0}) + "\\n")
    if mode == "garbage":
        f.write("not json\\n")
    f.write(json.dumps({"step": 2, "loss": 3.0 + cfg["hidden_size"] * 1e-6}) + "\\n")
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("jobs") / "campaigns.sqlite"
    Campaign.create(small_spec(), store=path, prior=small_posterior())
    return path


@pytest.fixture
def setup(template, tmp_path):
    store = tmp_path / "campaigns.sqlite"
    shutil.copyfile(template, store)
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    return store, script, tmp_path / "runs"


def _cmd(script: Path, *mode: str) -> str:
    return f"{sys.executable} {script} {{config}} {{out}} " + " ".join(mode)


def test_local_jobs_complete_their_trials_with_the_last_loss(setup):
    store, script, runs = setup
    camp = Campaign.load("small", store)
    out = run_jobs(
        camp,
        LocalBackend(),
        _cmd(script, "ok"),
        runs_dir=runs,
        max_trials=3,
        parallel=2,
        poll_seconds=0.1,
    )
    assert len(out["launched"]) == 3 and sorted(out["completed"]) == sorted(out["launched"])
    trials = Campaign.load("small", store).trials()
    assert len(trials) == 3
    for t in trials:
        assert t["status"] == "observed" and t["job_state"] == "completed"
        assert t["observed_loss"] == pytest.approx(3.0 + t["d_model"] * 1e-6)
        assert t["job_backend"] == "local" and t["job_id"]
        config = json.loads(
            (runs / "small" / f"trial-{t['trial']:04d}" / "config.json").read_text()
        )
        assert config["hidden_size"] == t["d_model"]


@pytest.mark.parametrize(
    "mode, reason",
    [
        ("crash", "exited with code 3"),
        ("nometrics", "no metrics.jsonl"),
        ("garbage", "line 2 is not JSON"),
    ],
)
def test_a_failed_job_fails_its_trial_with_the_reason_and_the_run_goes_on(setup, mode, reason):
    store, script, runs = setup
    camp = Campaign.load("small", store)
    out = run_jobs(
        camp,
        LocalBackend(),
        _cmd(script, mode),
        runs_dir=runs,
        max_trials=2,
        parallel=1,
        poll_seconds=0.1,
    )
    assert len(out["failed"]) == 2 and not out["completed"]
    trials = Campaign.load("small", store).trials()
    assert [t["job_state"] for t in trials] == ["failed", "failed"]
    assert all(reason in t["failure_reason"] for t in trials)


def test_a_job_past_the_timeout_is_cancelled_and_failed(setup):
    store, script, runs = setup
    camp = Campaign.load("small", store)
    start = time.time()
    out = run_jobs(
        camp,
        LocalBackend(),
        _cmd(script, "sleep", "60"),
        runs_dir=runs,
        max_trials=1,
        poll_seconds=0.1,
        timeout_seconds=1.0,
    )
    assert time.time() - start < 30
    assert len(out["failed"]) == 1
    assert "--timeout" in Campaign.load("small", store).trials()[0]["failure_reason"]


def test_a_killed_run_resumes_without_launching_twice(setup):
    store, script, runs = setup
    code = (
        f"from optim.cli import main; import sys; sys.exit(main(['run', 'small', '--store', "
        f"{str(store)!r}, '--train-cmd', {_cmd(script, 'sleep', '4')!r}, '--max-trials', '2', "
        f"'--parallel', '2', '--poll', '0.2', '--runs-dir', {str(runs)!r}]))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=Path(__file__).parent, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until both jobs are launched and recorded
        if len(list(runs.glob("small/trial-*/.archopt-job.json"))) == 2:
            trials = Campaign.load("small", store).trials()
            if [t["job_state"] for t in trials] == ["running", "running"]:
                break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"jobs never started: {proc.stderr.read() if proc.stderr else ''}")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    camp = Campaign.load("small", store)
    out = run_jobs(
        camp,
        LocalBackend(),
        _cmd(script, "sleep", "4"),
        runs_dir=runs,
        max_trials=0,
        poll_seconds=0.2,
    )
    assert not out["launched"] and len(out["completed"]) == 2
    trials = Campaign.load("small", store).trials()
    assert len(trials) == 2 and all(t["status"] == "observed" for t in trials)


def test_bad_train_commands_and_metrics(tmp_path, setup, capsys):
    store, _, _ = setup
    with pytest.raises(JobError, match=r"\{config\}"):
        check_train_command("python train.py --out {out}")
    with pytest.raises(JobError, match=r"\{out\}"):
        check_train_command("python train.py {config}")
    before = store.read_bytes()
    assert (
        main(
            [
                "run",
                "small",
                "--store",
                str(store),
                "--train-cmd",
                "python t.py",
                "--max-trials",
                "1",
            ]
        )
        == 2
    )
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert store.read_bytes() == before
    (tmp_path / "metrics.jsonl").write_text('{"loss": 2.5}\n{"loss": NaN}\n')
    with pytest.raises(JobError, match="line 2"):
        read_metrics(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"loss": 2.5}\n\n{"step": 3, "loss": 2.4}\n')
    assert read_metrics(tmp_path) == 2.4


def test_slurm_jobs_run_on_a_real_cluster_and_a_new_process_reattaches(setup, slurm_conf):
    """``--backend slurm``: each trial is an ``sbatch`` job whose SLURM id is stored with the
    trial; a crashing job fails its trial with the reason; a new backend (another process)
    re-attaches to a finished job by its stored id."""
    from optim.campaign.jobs import SubmititBackend

    store, script, runs = setup
    argv = ["run", "small", "--store", str(store), "--backend", "slurm", "--poll", "0.5"]
    argv += ["--runs-dir", str(runs), "--timeout", "300"]
    cmd = _cmd(script, "ok")
    assert main([*argv, "--train-cmd", cmd, "--max-trials", "2", "--parallel", "2"]) == 0
    trials = Campaign.load("small", store).trials()
    assert [t["status"] for t in trials] == ["observed", "observed"]
    assert all(t["job_backend"] == "slurm" and str(t["job_id"]).isdigit() for t in trials)
    for t in trials:
        assert t["observed_loss"] == pytest.approx(3.0 + t["d_model"] * 1e-6)
    assert main([*argv, "--train-cmd", _cmd(script, "crash"), "--max-trials", "1"]) == 0
    failed = Campaign.load("small", store).trials()[-1]
    assert failed["status"] == "failed"
    assert failed["failure_reason"] == f"job {failed['job_id']} exited with code 3"
    first = trials[0]
    folder = runs / "small" / f"trial-{first['trial']:04d}" / "submitit"
    job = {"id": str(first["job_id"]), "folder": str(folder)}
    assert SubmititBackend("slurm").poll(job).state == "completed"


def test_a_submitit_failure_is_reported_by_its_exit_code_or_the_end_of_its_trace():
    from optim.campaign.jobs import submitit_failure

    trace = "Job (task=0) failed during processing with trace:\n" + "x " * 400
    trace += "subprocess.CalledProcessError: Command '['/bin/sh']' returned non-zero exit status 3."
    assert submitit_failure("7", trace) == "job 7 exited with code 3"
    long = "Traceback " + "y " * 400 + "MemoryError: out of memory"
    reason = submitit_failure("8", long)
    assert reason.startswith("job 8 failed: ...") and reason.endswith("MemoryError: out of memory")
