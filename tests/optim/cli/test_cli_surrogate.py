"""`archopt fit` / `archopt predict`: JSON contract, exit code 2 and no file on bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from optim.cli import main
from surrogate.runs import bundled_path

MORPH = str(bundled_path("morph_runs.csv"))


def _fit(tmp_path, capsys, *extra):
    out = tmp_path / "post.nc"
    rc = main(
        [
            "fit",
            "--runs",
            MORPH,
            "--law",
            "aspect",
            "--method",
            "lsq",
            "--out",
            str(out),
            "--json",
            *extra,
        ]
    )
    return rc, out, capsys.readouterr()


def test_fit_and_predict_json(tmp_path, capsys):
    rc, out, cap = _fit(tmp_path, capsys)
    assert rc == 0 and out.is_file()
    report = json.loads(cap.out)
    assert report["law"] == "aspect" and report["method"] == "lsq" and report["out"] == str(out)
    assert {"E", "alpha", "eps", "gamma"} <= set(report["coefficients"])
    assert {"mean", "q05", "q95", "dominated_by"} <= set(report["coefficients"]["E"])
    assert "warnings" in report["diagnostics"]

    candidates = pd.read_csv(MORPH).drop(columns=["loss", "loss_kind"]).head(5)
    path = tmp_path / "cand.csv"
    candidates.to_csv(path, index=False)
    assert main(["predict", "--posterior", str(out), "--runs", str(path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["run"] for r in rows] == candidates["run"].tolist()
    for r in rows:
        assert {"run", "pred_mean", "pred_q05", "pred_q50", "pred_q95"} <= set(r)
        assert "loss" not in r and r["pred_q05"] <= r["pred_q50"] <= r["pred_q95"]
    assert (
        main(["predict", "--posterior", str(out), "--runs", MORPH, "--json", "--tokens", "1e11"])
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 76 and all(r["tokens"] == 1e11 and "loss" in r for r in rows)


@pytest.mark.parametrize("problem", ["missing_column", "nan", "unknown_law"])
def test_fit_bad_input_exit_2_nothing_written(tmp_path, capsys, problem):
    df = pd.read_csv(MORPH)
    law = "aspect"
    if problem == "missing_column":
        df = df.drop(columns=["head_dim"])
    elif problem == "nan":
        df.loc[4, "loss"] = np.nan
    else:
        law = "quadratic"
    runs = tmp_path / "runs.csv"
    df.to_csv(runs, index=False)
    out = tmp_path / "post.nc"
    rc = main(["fit", "--runs", str(runs), "--law", law, "--method", "lsq", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists()
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:")


def test_fit_error_leaves_existing_out_unchanged(tmp_path, capsys):
    out = tmp_path / "post.nc"
    out.write_bytes(b"previous")
    rc = main(
        ["fit", "--runs", str(tmp_path / "missing.csv"), "--method", "lsq", "--out", str(out)]
    )
    assert rc == 2 and out.read_bytes() == b"previous"
    assert main(["fit", "--runs", MORPH, "--method", "sgd", "--out", str(out)]) == 2
    assert main(["fit", "--runs", MORPH, "--discrepancy", "iid", "--out", str(out)]) == 2
    assert "unknown --discrepancy" in capsys.readouterr().err
    assert out.read_bytes() == b"previous"


def test_predict_unreadable_posterior(tmp_path, capsys):
    bad = tmp_path / "bad.nc"
    bad.write_text("garbage")
    assert main(["predict", "--posterior", str(bad), "--runs", MORPH, "--json"]) == 2
    err = capsys.readouterr().err
    assert "cannot read posterior" in err and len(err.strip().splitlines()) == 1


def test_predict_relative_to_a_run(tmp_path, capsys):
    rc, out, _ = _fit(tmp_path, capsys)
    assert rc == 0
    rows = pd.read_csv(MORPH)
    rows = rows[rows["run"].str.startswith("237M")]
    path = tmp_path / "rows.csv"
    rows.to_csv(path, index=False)
    ref = rows["run"].iloc[1]
    assert (
        main(
            [
                "predict",
                "--posterior",
                str(out),
                "--runs",
                str(path),
                "--json",
                "--relative-to",
                ref,
            ]
        )
        == 0
    )
    got = json.loads(capsys.readouterr().out)
    assert len(got) == len(rows)
    for r in got:
        assert r["relative_to"] == ref and r["rel_q05"] <= r["rel_q50"] <= r["rel_q95"]
        assert 0.0 <= r["p_better"] <= 1.0
        assert r["rel_mean"] == pytest.approx(r["pred_mean"] - got[1]["pred_mean"], abs=0.01)
    assert got[1]["rel_mean"] == 0.0 and got[1]["p_better"] == 0.0
    assert (
        main(["predict", "--posterior", str(out), "--runs", str(path), "--relative-to", ref]) == 0
    )
    assert "loss of " + ref in capsys.readouterr().out
    assert (
        main(
            [
                "predict",
                "--posterior",
                str(out),
                "--runs",
                str(path),
                "--relative-to",
                "no-such-run",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "no such run" in err and len(err.strip().splitlines()) == 1
