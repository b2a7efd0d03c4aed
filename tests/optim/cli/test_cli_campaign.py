"""The campaign CLI contract: JSON fields, exit code 2 with one stderr line on bad input and an
unchanged store, and two concurrent ``archopt observe`` processes losing nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import small_posterior, small_spec

from optim.campaign import PROPOSAL_FIELDS, Campaign
from optim.cli import main

pytestmark = pytest.mark.slow

ARCHOPT = str(Path(sys.executable).with_name("archopt"))


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "campaigns.sqlite"
    Campaign.create(small_spec(), store=path, prior=small_posterior()).propose(2, seed=0)
    return path


@pytest.fixture
def store(template, tmp_path) -> Path:
    path = tmp_path / "campaigns.sqlite"
    shutil.copyfile(template, path)
    return path


def _json(capsys) -> object:
    return json.loads(capsys.readouterr().out)


def test_propose_json_fields(store, capsys):
    assert main(["propose", "small", "-k", "1", "--json", "--store", str(store)]) == 0
    rows = _json(capsys)
    assert len(rows) == 1 and set(PROPOSAL_FIELDS) <= set(rows[0]) and rows[0]["trial"] == 2


def test_observe_status_list_pareto(store, tmp_path, capsys):
    assert main(["observe", "small", "0", "--loss", "3.1", "--store", str(store)]) == 0
    capsys.readouterr()
    assert main(["status", "small", "--json", "--store", str(store)]) == 0
    st = _json(capsys)
    assert st["n_observed"] == 1 and st["n_pending"] == 1
    assert main(["campaign", "list", "--store", str(store)]) == 0
    assert capsys.readouterr().out.split() == ["small"]
    out = tmp_path / "export"
    assert main(["pareto", "small", "--json", "--export", str(out), "--store", str(store)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["source"] in ("observed", "predicted") for r in rows)
    assert set(PROPOSAL_FIELDS) | {"observed_loss", "source"} <= set(rows[0])
    assert len(list(out.glob("*/config.json"))) == len(rows)
    assert (out / "pareto.csv").is_file() and (out / "pareto.json").is_file()


def test_tables_without_json(store, capsys):
    assert main(["status", "small", "--store", str(store)]) == 0
    assert "trials" in capsys.readouterr().out
    assert main(["pareto", "small", "--store", str(store)]) == 0
    assert "predicted" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["observe", "nope", "0", "--loss", "3.0"],  # unknown campaign
        ["observe", "small", "9", "--loss", "3.0"],  # unknown trial
        ["observe", "small", "0", "--loss", "nan"],  # NaN loss
        ["observe", "small", "0"],  # no loss
        ["propose", "small", "-k", "0"],
        ["status", "nope"],
        [
            "campaign",
            "create",
            "small",
            "--params",
            "5e7",
            "--tokens",
            "1e9",
            "--hardware",
            "a100-40gb",
            "--vocab-size",
            "32000",
        ],  # exists
        ["campaign", "create", "x", "--params", "5e7", "--tokens", "1e9", "--hardware", "tpu-v99"],
    ],
)
def test_bad_input_exits_2_with_one_line_and_leaves_the_store(store, capsys, argv):
    before = _sha(store)
    assert main(argv + ["--store", str(store)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    assert _sha(store) == before


def test_observing_twice_is_refused_unless_forced(store, capsys):
    assert main(["observe", "small", "1", "--loss", "3.0", "--store", str(store)]) == 0
    before = _sha(store)
    assert main(["observe", "small", "1", "--loss", "2.9", "--store", str(store)]) == 2
    assert "--force" in capsys.readouterr().err
    assert _sha(store) == before
    assert main(["observe", "small", "1", "--loss", "2.9", "--force", "--store", str(store)]) == 0


def test_corrupt_store_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"not a database" * 50)
    before = _sha(bad)
    assert main(["status", "small", "--store", str(bad)]) == 2
    assert main(["observe", "small", "0", "--loss", "3", "--store", str(bad)]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert _sha(bad) == before


def test_two_concurrent_observe_processes_lose_nothing(store):
    procs = [
        subprocess.Popen(
            [ARCHOPT, "observe", "small", str(t), "--loss", str(3.0 + t), "--store", str(store)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for t in (0, 1)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    trials = Campaign.load("small", store).trials()
    assert [(t["status"], t["observed_loss"]) for t in trials] == [
        ("observed", 3.0),
        ("observed", 4.0),
    ]


def test_observe_runs_from_csv(store, tmp_path, capsys):
    import pandas as pd

    camp = Campaign.load("small", store)
    arch = camp.trial_records()[1].arch
    csv = tmp_path / "runs.csv"
    pd.DataFrame(
        [
            {
                "source": "mine",
                "run": "r1",
                **arch.shape(),
                "params": arch.params,
                "tokens": 1e9,
                "loss": 3.3,
                "loss_kind": "val",
            }
        ]
    ).to_csv(csv, index=False)
    assert main(["observe", "small", "--runs", str(csv), "--json", "--store", str(store)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(t["trial"], t["observed_loss"], t["run"]) for t in out] == [(1, 3.3, "r1")]
    before = _sha(store)
    assert main(["observe", "small", "--runs", str(csv), "--store", str(store)]) == 2
    assert _sha(store) == before
