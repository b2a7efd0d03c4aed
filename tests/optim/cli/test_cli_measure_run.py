"""``archopt measure-run`` end to end: a stand-in for ``vllm bench throughput`` (a script that
writes that schema's result JSON for the workload it is given, as in
tests/optim/campaign/test_measure_jobs.py) measures the campaign's trial shapes through the CLI;
bad input is one stderr line, exit 2, and an unchanged store."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
from support import pending_campaign, store_with_fake_vllm

from optim.campaign import Campaign
from optim.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """Campaign 'small' with two pending trials (0, 1)."""
    return pending_campaign(tmp_path_factory.mktemp("measure-cli") / "campaigns.sqlite", 2)


@pytest.fixture
def setup(template, tmp_path, archopt_home):
    store, script = store_with_fake_vllm(template, tmp_path)
    cmd = f"{sys.executable} {script} {{config}} {{result}} {{requests}} {{input}} {{output}} ok"
    return store, cmd, tmp_path / "runs"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_measure_run_measures_the_trials_and_the_campaign_uses_them(setup, capsys):
    store, cmd, runs = setup
    argv = ["measure-run", "small", "--measure-cmd", cmd, "--max-jobs", "5", "--parallel", "2"]
    argv += ["--poll", "0.1", "--timeout", "120", "--runs-dir", str(runs), "--store", str(store)]
    assert main(argv + ["--trials", "1,0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert sorted(out["launched"]) == sorted(out["completed"]) == [0, 1] and not out["failed"]
    camp = Campaign.load("small", store)
    wl, problem = camp.spec.workload, camp.problem
    for rec in camp.trial_records():
        expected = wl.num_requests * wl.output_len / (1.0 + 0.05 * rec.arch.n_layers)
        assert out["tokens_per_s"][str(rec.trial)] == pytest.approx(expected)
        i = problem.index_of(rec.arch)
        assert problem.throughput_source[i] == "measured"
        assert rec.meta["measure"]["state"] == "completed"
        assert (runs / "small" / f"measure-{rec.trial:04d}" / "model" / "config.json").is_file()
    # Run again without --json: nothing left to measure, a one-line summary.
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == "launched 0, completed 0, failed 0"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--measure-cmd", "vllm bench throughput --model {model}"], "{result}"),
        (["--measure-cmd", "CMD", "--backend", "k8s"], "unknown backend"),
        (["--measure-cmd", "CMD", "--trials", "0,x"], "--trials"),
        (["--measure-cmd", "CMD", "--trials", "7"], "no trial 7"),
        (["--measure-cmd", "CMD", "--parallel", "0"], "--parallel"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_leaves_the_store(setup, capsys, extra, message):
    store, cmd, runs = setup
    extra = [cmd if x == "CMD" else x for x in extra]
    before = _sha(store)
    argv = ["measure-run", "small", "--max-jobs", "1", "--runs-dir", str(runs)]
    assert main(argv + extra + ["--store", str(store)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and message in err
    assert _sha(store) == before and not runs.exists()


def test_unknown_campaign_exits_2(setup, capsys):
    store, cmd, runs = setup
    argv = ["measure-run", "nope", "--measure-cmd", cmd, "--max-jobs", "1"]
    assert main(argv + ["--store", str(store)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "nope" in err
