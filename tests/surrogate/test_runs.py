"""Run tables: validation errors name file, line and column; bundled data loads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.errors import ArchoptError
from surrogate.runs import (
    BUNDLED_RUN_TABLES,
    RunTableError,
    bundled_path,
    bundled_runs,
    load_runs,
    reference_architectures,
    source_keys,
    table_archs,
    validate_runs,
)


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
    assert keys == {
        f"mlfoundations-scaling-runs/{d}" for d in ("c4_original", "rpj", "rw_original")
    }


def test_reference_architectures():
    ref = reference_architectures()
    assert "Surefire-1B" in ref["name"].tolist()
    assert ref["reported_loss"].notna().sum() == 6


# ---- issue 10, finding 6/2/7: non-finite shapes, plausible losses, size caps ----------------------
def _csv_with(tmp_path, row: int, column: str, text: str):
    """morph_runs.csv with one cell replaced by raw ``text`` (as a user would type it)."""
    lines = bundled_path("morph_runs.csv").read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[row + 1].split(",")
    cells[header.index(column)] = text
    lines[row + 1] = ",".join(cells)
    path = tmp_path / "runs.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "column", ["d_model", "n_layers", "n_heads", "n_kv_heads", "head_dim", "ffn_dim", "vocab_size"]
)
@pytest.mark.parametrize("text", ["inf", "1e400", "-inf", "nan", "Infinity", "1e30"])
def test_non_finite_or_huge_shape_cell_names_line_and_column(tmp_path, column, text):
    path = _csv_with(tmp_path, 2, column, text)
    with pytest.raises(RunTableError) as err:
        load_runs(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "line 4" in message
    assert column in message.split("column '")[1] or "2^53" in message, message


@pytest.mark.parametrize("text", ["1e300", "1e400", "inf", "20", "35.2", "0", "-1", "nan"])
def test_implausible_or_non_finite_loss_is_refused(tmp_path, text):
    from surrogate.runs import PLAUSIBLE_LOSS_RANGE

    assert PLAUSIBLE_LOSS_RANGE == (0.0, 20.0)
    path = _csv_with(tmp_path, 0, "loss", text)
    with pytest.raises(RunTableError, match=r"line 2 \(run '80M_v1-20N'\), column 'loss'") as err:
        load_runs(path)
    finite = text in ("1e300", "20", "35.2")
    assert ("outside the plausible range 0 < loss < 20" in str(err.value)) == finite
    if finite:  # the override still checks finite and positive
        assert load_runs(path, loss_range=None)["loss"][0] == float(text)


def test_check_loss_is_the_single_loss_check():
    from surrogate.runs import LossError, check_loss

    assert (
        check_loss(2.79) == 2.79 and check_loss("3.1") == 3.1 and check_loss(np.float32(2.5)) == 2.5
    )
    for bad in (1e300, 20.0, 0.0, -2.0, float("nan"), float("inf"), "abc", None, True):
        with pytest.raises(LossError):
            check_loss(bad, where="observe 0: --loss")
    with pytest.raises(LossError, match=r"observe 0: --loss: 1e\+300 is outside the plausible"):
        check_loss(1e300, where="observe 0: --loss")
    assert check_loss(1e300, loss_range=None) == 1e300
    assert issubclass(LossError, ArchoptError)


def test_params_beyond_float_precision_compare_exactly(tmp_path):
    df = _morph()
    df.loc[0, "params"] = int(df.loc[0, "params"]) + 2**53  # cannot match any valid shape
    with pytest.raises(RunTableError, match="does not match 78914048 computed"):
        validate_runs(df)
    df = _morph()
    df["params"] = df["params"].astype(str)  # integers as text are compared exactly too
    assert validate_runs(df)["params"].tolist() == _morph()["params"].tolist()


def test_run_table_size_cap_and_binary(tmp_path):
    from surrogate.runs import RUN_TABLE_MAX_BYTES

    assert RUN_TABLE_MAX_BYTES == 64 << 20
    with pytest.raises(RunTableError, match="run table /dev/zero is larger than 64 MiB"):
        load_runs("/dev/zero")
    big = tmp_path / "big.csv"
    with open(big, "wb") as fh:
        fh.truncate(RUN_TABLE_MAX_BYTES + 1)  # sparse: not read at all
    with pytest.raises(RunTableError, match="larger than 64 MiB"):
        load_runs(big)
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"source,run\n\xff\xfe\x00\x01")
    with pytest.raises(RunTableError, match="not UTF-8"):
        load_runs(binary)
    with pytest.raises(RunTableError, match="is a folder"):
        load_runs(tmp_path)


def test_parse_runs_reads_uploads_like_files(tmp_path):
    from surrogate.runs import RunTableError, load_runs, parse_runs

    path = bundled_path("morph_runs.csv")
    text = path.read_bytes()
    from_file = load_runs(path)
    uploaded = parse_runs(text, name="morph_runs.csv")
    pd.testing.assert_frame_equal(from_file, uploaded)
    with pytest.raises(RunTableError, match="not UTF-8"):
        parse_runs(b"\xff\xfe\x00binary", name="x.csv")
    bad = text.decode().replace("\n", "\nnot,a,row\n", 1).encode()
    with pytest.raises(RunTableError, match="x.csv"):
        parse_runs(bad, name="x.csv")
