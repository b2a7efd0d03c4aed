"""Run tables: validation errors name file, line and column; bundled data loads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.errors import ArchoptError
from surrogate.runs import (BUNDLED_RUN_TABLES, RunTableError, bundled_path, bundled_runs,
                            load_runs, reference_architectures, source_keys, table_archs,
                            validate_runs)


def _morph() -> pd.DataFrame:
    return pd.read_csv(bundled_path("morph_runs.csv"))


def test_bundled_tables_load_and_params_match_shapes():
    df = bundled_runs()
    assert len(df) == 76 + 418 + 104 + 140
    archs = table_archs(df)
    assert [a.params for a in archs] == df["params"].tolist()
    assert df["tie_embeddings"].dtype == bool and df["d_model"].dtype == np.int64
    assert len(BUNDLED_RUN_TABLES) == 4


def test_missing_column_names_file_and_column(tmp_path):
    path = tmp_path / "runs.csv"
    _morph().drop(columns=["ffn_dim"]).to_csv(path, index=False)
    with pytest.raises(RunTableError, match=r"runs\.csv.*missing column.*ffn_dim"):
        load_runs(path)


def test_nan_loss_names_line_and_column(tmp_path):
    df = _morph()
    df.loc[3, "loss"] = np.nan
    path = tmp_path / "runs.csv"
    df.to_csv(path, index=False)
    with pytest.raises(RunTableError, match=r"line 5 \(run '80M_v6-20N'\), column 'loss'"):
        load_runs(path)


def test_params_inconsistent_with_shape():
    df = _morph()
    df.loc[0, "params"] += 1
    with pytest.raises(RunTableError, match=r"row 0 .*column 'params'"):
        validate_runs(df)


def test_invalid_shape_is_reported_with_column():
    df = _morph()
    df.loc[2, "n_kv_heads"] = 3  # 8 heads are not divisible by 3 kv heads
    with pytest.raises(ArchoptError, match=r"row 2 .*n_heads"):
        validate_runs(df)
    df = _morph()
    df.loc[1, "tokens"] = -5
    with pytest.raises(RunTableError, match="column 'tokens'"):
        validate_runs(df)


def test_loss_optional_for_prediction():
    df = _morph().drop(columns=["loss", "loss_kind", "source"])
    out = validate_runs(df, require_loss=False)
    assert len(out) == 76
    with pytest.raises(RunTableError, match="loss"):
        validate_runs(df)


def test_unreadable_and_missing_files(tmp_path):
    with pytest.raises(RunTableError, match="not found"):
        load_runs(tmp_path / "nope.csv")
    with pytest.raises(RunTableError, match="no run table"):
        load_runs()


def test_source_keys_split_datasets():
    df = load_runs(bundled_path("openlm_runs.csv"))
    keys = set(source_keys(df))
    assert keys == {f"mlfoundations-scaling-runs/{d}" for d in ("c4_original", "rpj", "rw_original")}


def test_reference_architectures():
    ref = reference_architectures()
    assert "Surefire-1B" in ref["name"].tolist()
    assert ref["reported_loss"].notna().sum() == 6
