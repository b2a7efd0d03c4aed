"""Hostile inputs at the boundary (issue 10): one stderr line, exit 2, nothing written.

Covers the state folder (``$ARCHOPT_HOME`` a file, uncreatable or read-only), the bounded file
readers of :mod:`models.files`, and the CLI commands that read user files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from models.arch import Arch
from models.errors import ArchoptError
from models.files import JSON_MAX_BYTES, parse_json, read_bytes, read_json, read_text
from models.home import HomeError, archopt_home, ensure_writable_folder
from optim.cli import main

TINY = Arch(128, 2, 4, 2, 32, 256, 512, True)
TINY_FLAGS = [
    "--d-model",
    "128",
    "--n-layers",
    "2",
    "--n-heads",
    "4",
    "--n-kv-heads",
    "2",
    "--ffn-dim",
    "256",
    "--vocab-size",
    "512",
]


def run_cli(capsys, argv: list[str]) -> tuple[int, list[str]]:
    """Exit code and stderr lines of one in-process ``archopt`` call."""
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err.splitlines()


def assert_one_line_error(capsys, argv: list[str], *fragments: str) -> str:
    code, err = run_cli(capsys, argv)
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in err[0], err[0]
    return err[0]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# ---- ARCHOPT_HOME (issue 10, finding 4) ---------------------------------------------------------
def test_home_that_is_a_file_is_one_line_error(tmp_path, monkeypatch, capsys) -> None:
    home = tmp_path / "home-file"
    home.write_text("not a folder")
    monkeypatch.setenv("ARCHOPT_HOME", str(home))
    for create in (True, False):
        with pytest.raises(HomeError, match=f"ARCHOPT_HOME {home} is a file, not a folder"):
            archopt_home(create=create)
    assert_one_line_error(
        capsys,
        ["throughput", *TINY_FLAGS, "--hardware", "a100-40gb"],
        f"ARCHOPT_HOME {home} is a file, not a folder",
    )
    assert_one_line_error(capsys, ["hardware"], "is a file, not a folder")
    assert home.read_text() == "not a folder"


def test_home_below_a_file_cannot_be_created(tmp_path, monkeypatch) -> None:
    from models.measure import Measurement, MeasurementCache, library_versions

    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("ARCHOPT_HOME", str(blocker / "home"))
    with pytest.raises(HomeError, match="cannot create ARCHOPT_HOME .*a file is in the way"):
        archopt_home()
    cache = MeasurementCache()
    assert cache.records() == []  # reading needs nothing created
    with pytest.raises(HomeError, match="a file is in the way"):
        cache.put(
            Measurement(
                "failed",
                "x",
                TINY,
                "cpu",
                "hf",
                1,
                8,
                4,
                "bfloat16",
                versions=library_versions("hf"),
            )
        )


def test_readonly_home_reads_work_and_writes_are_one_line_errors(
    readonly_dir, monkeypatch, capsys
) -> None:
    from models import measure as measure_mod
    from models.throughput import Calibration, save_calibration

    monkeypatch.setenv("ARCHOPT_HOME", str(readonly_dir))
    before = _snapshot(readonly_dir)
    code, err = run_cli(capsys, ["throughput", *TINY_FLAGS, "--hardware", "a100-40gb", "--json"])
    assert code == 0, err
    with pytest.raises(HomeError, match=f"calibration folder {readonly_dir} is not writable"):
        save_calibration(Calibration("cpu", "hf", 0.5, 0.5, 1e-4, 1e-3))
    monkeypatch.setitem(
        measure_mod.RUNNERS, "hf", lambda *a: (_ for _ in ()).throw(RuntimeError("no run needed"))
    )
    assert_one_line_error(
        capsys,
        ["measure", *TINY_FLAGS, "--device", "cpu"],
        f"measurement cache folder {readonly_dir} is not writable",
    )
    assert _snapshot(readonly_dir) == before


def test_ensure_writable_folder_leaves_no_probe(tmp_path) -> None:
    ensure_writable_folder(tmp_path / "a" / "b", "test folder")
    assert list((tmp_path / "a" / "b").iterdir()) == []


# ---- the bounded readers (issue 10, findings 6/7) -----------------------------------------------
def test_read_bytes_caps_size_and_names_the_file(tmp_path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 1001)
    assert read_bytes(big, max_bytes=1001, what="thing") == b"x" * 1001
    with pytest.raises(ArchoptError, match=f"thing {big} is larger than 1000 bytes"):
        read_bytes(big, max_bytes=1000, what="thing")
    with pytest.raises(ArchoptError, match="larger than 1 KiB"):
        read_bytes("/dev/zero", max_bytes=1024, what="thing")
    with pytest.raises(ArchoptError, match=f"thing {tmp_path} is a folder"):
        read_bytes(tmp_path, max_bytes=10, what="thing")
    with pytest.raises(ArchoptError, match="thing not found"):
        read_bytes(tmp_path / "missing", max_bytes=10, what="thing")


def test_read_text_refuses_binary(tmp_path) -> None:
    path = tmp_path / "bin"
    path.write_bytes(b"ok\x00\x9f\x92")
    with pytest.raises(ArchoptError, match="not UTF-8 text .*offset 3"):
        read_text(path, max_bytes=100, what="thing")
    path.write_bytes("\ufeffhé".encode("utf-8"))
    assert read_text(path, max_bytes=100, what="thing") == "hé"


@pytest.mark.parametrize(
    "text,match",
    [
        ("[1, Infinity]", "Infinity is not allowed"),
        ("[-Infinity]", "-Infinity is not allowed"),
        ('{"a": NaN}', "NaN is not allowed"),
        ("[1e400]", "number 1e400 is out of range"),
        ("[-1e999]", "out of range"),
        ("[" + "9" * 5000 + "]", "digits"),
        ("[" * 33 + "]" * 33, "nests deeper than 32"),
        ("[" * 20000, "nests deeper than 32"),
        ("{", "not valid JSON"),
        ("[1] [2]", "not valid JSON: Extra data"),
        ("[]", "expected an object at the top level, got a list"),
    ],
)
def test_parse_json_rejections(text, match) -> None:
    with pytest.raises(ArchoptError, match=match) as err:
        parse_json(text, where="doc")
    assert "\n" not in str(err.value)


def test_parse_json_accepts_real_configs() -> None:
    assert parse_json('{"a": [1, 2.5, {"b": null}], "c": -1e-5}', where="doc") == {
        "a": [1, 2.5, {"b": None}],
        "c": -1e-5,
    }
    assert parse_json("[" * 32 + "]" * 32, where="doc", top=list) is not None


def test_read_json_size_cap(tmp_path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"pad": "' + "x" * JSON_MAX_BYTES + '"}')
    with pytest.raises(ArchoptError, match="larger than 1 MiB"):
        read_json(path, what="config")


# ---- shapes and --hf-config on the command line (issue 10, findings 6/9) ------------------------
def test_cli_odd_head_dim_and_huge_shape(capsys) -> None:
    assert_one_line_error(
        capsys,
        [
            "arch",
            "--d-model",
            "96",
            "--n-layers",
            "2",
            "--n-heads",
            "4",
            "--head-dim",
            "25",
            "--ffn-dim",
            "256",
            "--vocab-size",
            "100",
        ],
        "head_dim must be even",
        "got 25",
    )
    assert_one_line_error(
        capsys,
        [
            "arch",
            "--d-model",
            "1000000",
            "--n-layers",
            "100000",
            "--n-heads",
            "1000",
            "--ffn-dim",
            "4000000",
            "--vocab-size",
            "32000",
            "--json",
        ],
        "1.600e+18 parameters; archopt supports at most 2^53",
    )


@pytest.mark.parametrize(
    "content,fragment",
    [
        ('{"hidden_size": Infinity}', "Infinity is not allowed"),
        (b"\xff\xd8\xff\xe0 binary", "not UTF-8"),
        ("[" * 100_000, "nests deeper than 32"),
    ],
)
@pytest.mark.parametrize("command", [["arch"], ["throughput", "--hardware", "a100-40gb"]])
def test_cli_hostile_hf_config(tmp_path, capsys, content, fragment, command) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    assert_one_line_error(capsys, [*command, "--hf-config", path], str(path), fragment)


def test_cli_hf_config_dev_zero(capsys) -> None:
    assert_one_line_error(capsys, ["arch", "--hf-config", "/dev/zero"], "larger than 1 MiB")


def test_cli_hardware_profile_absurd_values(archopt_home, capsys) -> None:
    archopt_home.mkdir(parents=True)
    (archopt_home / "hardware.json").write_text(
        '[{"id": "tiny", "peak_flops": 1e-300, "mem_bandwidth": 1e-300, "mem_bytes": 1e-300}]'
    )
    assert_one_line_error(
        capsys,
        ["throughput", *TINY_FLAGS, "--hardware", "tiny", "--json"],
        "entry 0: hardware 'tiny': peak_flops 1e-300 is outside the plausible "
        "range [1e+09, 1e+18] FLOP/s",
    )
    with pytest.warns(UserWarning, match="entry 0: .*that entry is skipped"):
        code, err = run_cli(capsys, ["throughput", *TINY_FLAGS, "--hardware", "a100-40gb"])
    assert code == 0, err


# ---- run tables on the command line (issue 10, findings 2/6/7) ----------------------------------
def _bad_runs(tmp_path, column: str, text: str) -> Path:
    from surrogate.runs import bundled_path

    lines = bundled_path("morph_runs.csv").read_text().splitlines()
    header, cells = lines[0].split(","), lines[3].split(",")
    cells[header.index(column)] = text
    lines[3] = ",".join(cells)
    path = tmp_path / "runs.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "column,text,fragment",
    [
        (
            "d_model",
            "1e400",
            "line 4 (run '80M_v5-20N'), column 'd_model': d_model must be an integer, got inf",
        ),
        ("ffn_dim", "inf", "column 'ffn_dim'"),
        ("loss", "1e300", "column 'loss': 1e+300 is outside the plausible range 0 < loss < 20"),
    ],
)
def test_cli_bad_run_tables(tmp_path, archopt_home, capsys, column, text, fragment) -> None:
    path = _bad_runs(tmp_path, column, text)
    out = tmp_path / "post.nc"
    for argv in (
        ["fit", "--runs", path, "--out", out],
        [
            "campaign",
            "create",
            "c1",
            "--params",
            "1e8",
            "--tokens",
            "2e9",
            "--hardware",
            "a100-40gb",
            "--runs",
            path,
        ],
    ):
        assert_one_line_error(capsys, argv, str(path), fragment)
    assert not out.exists() and not any(archopt_home.glob("campaigns*"))


def test_cli_run_table_from_dev_zero(tmp_path, capsys) -> None:
    assert_one_line_error(
        capsys,
        ["fit", "--runs", "/dev/zero", "--out", tmp_path / "p.nc"],
        "run table /dev/zero is larger than 64 MiB",
    )


# ---- fit --out (issue 10, finding 6) --------------------------------------------------------------
def _good_runs() -> str:
    from surrogate.runs import bundled_path

    return str(bundled_path("morph_runs.csv"))


def _no_fit(monkeypatch) -> None:
    import surrogate.bayes
    import surrogate.lsq

    # Modules that bind ``fit_lsq`` / ``fit_bayes`` at import are imported first, so they keep
    # the real functions: imported lazily under the patch they would keep ``never`` for the
    # rest of the session.
    import surrogate.nuts  # noqa: F401
    import surrogate.nuts_init  # noqa: F401
    import surrogate.stacking  # noqa: F401

    def never(*args, **kwargs):
        raise AssertionError("the fit ran although --out cannot be written")

    monkeypatch.setattr(surrogate.lsq, "fit_lsq", never)
    monkeypatch.setattr(surrogate.bayes, "fit_bayes", never)


def test_fit_out_below_a_regular_file_fails_before_fitting(tmp_path, monkeypatch, capsys) -> None:
    _no_fit(monkeypatch)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for method in ("lsq", "bayes"):
        assert_one_line_error(
            capsys,
            ["fit", "--runs", _good_runs(), "--method", method, "--out", blocker / "post.nc"],
            f"folder of --out {blocker} is a file, not a folder",
        )
    assert_one_line_error(
        capsys,
        ["fit", "--runs", _good_runs(), "--out", blocker / "a" / "p.nc"],
        f"cannot create folder of --out {blocker / 'a'}",
        "a file is in the way",
    )
    assert blocker.read_text() == "x"
    assert_one_line_error(
        capsys,
        ["fit", "--runs", _good_runs(), "--out", tmp_path],
        f"--out {tmp_path} is a folder, not a file",
    )


def test_fit_out_in_read_only_folder_fails_before_fitting(
    readonly_dir, monkeypatch, capsys
) -> None:
    _no_fit(monkeypatch)
    assert_one_line_error(
        capsys,
        ["fit", "--runs", _good_runs(), "--out", readonly_dir / "p.nc"],
        f"folder of --out {readonly_dir} is not writable",
    )
    assert sorted(p.name for p in readonly_dir.iterdir()) == ["present.txt"]


def test_fit_out_oserror_while_saving_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    from surrogate.posterior import LawPosterior

    def disk_full(self, path):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(LawPosterior, "save", disk_full)
    out = tmp_path / "post.nc"
    assert_one_line_error(
        capsys,
        ["fit", "--runs", _good_runs(), "--method", "lsq", "--n-starts", "2", "--out", out],
        f"cannot write posterior {out}: No space left on device",
    )


# ---- campaign commands with a broken measurement cache or hardware.json (findings 3/6) ----------
@pytest.fixture
def campaign_store(tmp_path, archopt_home) -> Path:
    from support import small_posterior, small_spec

    from optim.campaign import Campaign

    store = tmp_path / "store.sqlite"
    Campaign.create(small_spec(), store=store, prior=small_posterior())
    return store


@pytest.mark.slow
def test_campaign_commands_with_corrupt_measurement_cache(
    campaign_store, archopt_home, capsys
) -> None:
    archopt_home.mkdir(parents=True, exist_ok=True)
    cache = archopt_home / "measurements.sqlite"
    cache.write_bytes(bytes(range(256)) * 16)
    before = _snapshot(campaign_store.parent)
    for argv in (["status", "small"], ["propose", "small", "-k", "1"], ["pareto", "small"]):
        assert_one_line_error(
            capsys,
            [*argv, "--store", campaign_store],
            f"measurement cache {cache} is corrupt",
            "move it away",
        )
    assert _snapshot(campaign_store.parent) == before
    assert cache.read_bytes() == bytes(range(256)) * 16


@pytest.mark.slow
def test_campaign_status_survives_a_broken_hardware_json(
    campaign_store, archopt_home, capsys
) -> None:
    archopt_home.mkdir(parents=True, exist_ok=True)
    (archopt_home / "hardware.json").write_bytes(b"\x00\xffnot json at all")
    code, err = run_cli(capsys, ["status", "small", "--store", campaign_store])
    assert code == 0, err  # a builtin-profile campaign never needs the broken file
