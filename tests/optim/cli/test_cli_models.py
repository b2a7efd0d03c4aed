"""`archopt arch | throughput | measure | hardware | calibrate`: JSON contract and bad input.

``tests/data/vllm_bench_throughput.json`` and ``tests/data/vllm_bench_serve.json`` are synthetic
examples of the two vLLM result schemas (keys as vLLM's benchmarks write them), written for these
tests: they are not real measurements.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import DATA

from models.arch import Arch
from models.measure import Measurement, MeasurementCache, library_versions
from optim.cli import main

LLAMA_FLAGS = [
    "--d-model",
    "2048",
    "--n-layers",
    "16",
    "--n-heads",
    "32",
    "--n-kv-heads",
    "8",
    "--head-dim",
    "64",
    "--ffn-dim",
    "8192",
    "--vocab-size",
    "128256",
    "--tie-embeddings",
]
LLAMA = Arch(2048, 16, 32, 8, 64, 8192, 128256, True)
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


def _run_json(capsys, argv: list[str]) -> dict:
    code = main(argv)
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_arch_json_fields(capsys, archopt_home) -> None:
    out = _run_json(capsys, ["arch", *LLAMA_FLAGS, "--json"])
    for key in (
        "params",
        "non_embedding_params",
        "attention_params",
        "mlp_params",
        "mlp_attn_ratio",
        "d_over_sqrt_n",
        "aspect_ratio",
        "gqa_group",
        "kv_bytes_per_token",
    ):
        assert out[key] == LLAMA.features()[key], key
    assert out["params"] == 1235814400 and out["label"] == LLAMA.label()


def test_arch_defaults_and_table(capsys) -> None:
    out = _run_json(
        capsys,
        [
            "arch",
            "--d-model",
            "512",
            "--n-layers",
            "4",
            "--n-heads",
            "8",
            "--ffn-dim",
            "1024",
            "--vocab-size",
            "100",
            "--json",
        ],
    )
    assert (out["n_kv_heads"], out["head_dim"], out["tie_embeddings"]) == (8, 64, False)
    assert main(["arch", *LLAMA_FLAGS]) == 0
    assert "1,235,814,400" in capsys.readouterr().out


def test_arch_from_hf_config(capsys, tmp_path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(LLAMA.to_hf_config()))
    out = _run_json(capsys, ["arch", "--hf-config", str(path), "--json"])
    assert out["params"] == LLAMA.params and out["tie_embeddings"] is True


def test_throughput_json_fields(capsys, archopt_home) -> None:
    out = _run_json(
        capsys,
        [
            "throughput",
            *LLAMA_FLAGS,
            "--hardware",
            "a100-40gb",
            "--batch-size",
            "64",
            "--input-len",
            "4096",
            "--output-len",
            "1024",
            "--json",
        ],
    )
    for key in (
        "tokens_per_s",
        "ttft_s",
        "decode_s_per_token",
        "total_s",
        "memory_bytes",
        "fits_in_memory",
        "source",
        "rel_sigma",
    ):
        assert key in out, key
    assert out["source"] == "model" and out["fits_in_memory"] is True
    assert (out["batch_size"], out["input_len"], out["output_len"], out["hardware"]) == (
        64,
        4096,
        1024,
        "a100-40gb",
    )
    assert out["tokens_per_s"] == pytest.approx(64 * 1024 / out["total_s"])
    assert out["calibration"]["hardware_id"] == "a100-40gb"
    assert out["backend"] == "vllm" and out["calibration"]["backend"] == "vllm"  # the default
    assert out["tokens_per_s_q05"] < out["tokens_per_s"] < out["tokens_per_s_q95"]
    assert out["warnings"] and "uncalibrated" in out["warnings"][0]
    assert _files(archopt_home) == []  # a prediction writes nothing


def test_throughput_workload_string_and_memory(capsys) -> None:
    out = _run_json(
        capsys,
        [
            "throughput",
            *LLAMA_FLAGS,
            "--hardware",
            "L4",
            "--workload",
            "batch=256,input=32768,output=1024",
            "--json",
        ],
    )
    # vLLM serves it with as many sequences as the KV cache holds; HF generate cannot.
    assert out["backend"] == "vllm" and out["servable"] is True and 1 < out["concurrency"] < 256
    out = _run_json(
        capsys,
        [
            "throughput",
            *LLAMA_FLAGS,
            "--hardware",
            "L4",
            "--workload",
            "batch=256,input=32768,output=1024",
            "--backend",
            "hf",
            "--json",
        ],
    )
    assert out["fits_in_memory"] is False and out["backend"] == "hf" and out["unservable_reason"]


def test_throughput_tensor_parallel(capsys) -> None:
    out = _run_json(
        capsys,
        [
            "throughput",
            *LLAMA_FLAGS,
            "--workload",
            "batch=64,input=4096,output=1024,tp=2",
            "--json",
        ],
    )
    assert out["tp"] == 2 and out["servable"] is True
    bad = [
        "throughput",
        "--d-model",
        "2304",
        "--n-layers",
        "16",
        "--n-heads",
        "36",
        "--n-kv-heads",
        "4",
        "--head-dim",
        "64",
        "--ffn-dim",
        "6144",
        "--vocab-size",
        "128256",
        "--tp",
        "8",
        "--json",
    ]
    out = _run_json(capsys, bad)
    assert out["servable"] is False and "n_heads=36" in out["unservable_reason"]


def test_throughput_uses_cached_measurement(capsys, archopt_home) -> None:
    m = Measurement(
        "ok",
        "",
        LLAMA,
        "a100-40gb",
        "hf",
        64,
        4096,
        1024,
        "bfloat16",
        tokens_per_s=1234.0,
        tokens_per_s_spread=5.0,
        ttft_s=2.0,
        decode_s_per_token=0.05,
        total_s=53.1,
        peak_mem_bytes=2e10,
        repeats=3,
        device="NVIDIA A100-SXM4-40GB",
        versions=library_versions("hf"),
        created_at=1.0,
    )
    MeasurementCache().put(m)
    argv = [
        "throughput",
        *LLAMA_FLAGS,
        "--hardware",
        "a100-40gb",
        "--batch-size",
        "64",
        "--input-len",
        "4096",
        "--output-len",
        "1024",
        "--backend",
        "hf",
        "--json",
    ]
    out = _run_json(capsys, argv)
    assert out["source"] == "measured" and out["tokens_per_s"] == 1234.0
    # another workload or hardware is still modelled
    assert _run_json(capsys, argv[:-1] + ["--hardware", "h100-sxm", "--json"])["source"] == "model"


def test_hardware_list_json(capsys) -> None:
    out = _run_json(capsys, ["hardware", "--json"])
    assert {"a100-40gb", "a100-80gb", "h100-sxm", "h100-pcie", "h200", "l4", "cpu"} <= {
        h["id"] for h in out
    }


@pytest.mark.slow
def test_measure_and_calibrate_cli(capsys, archopt_home) -> None:
    argv = [
        "measure",
        *TINY_FLAGS,
        "--batch-size",
        "1",
        "--input-len",
        "8",
        "--output-len",
        "4",
        "--dtype",
        "float32",
        "--repeats",
        "1",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--json",
    ]
    out = _run_json(capsys, argv)
    assert out["status"] == "ok" and out["hardware_id"] == "cpu" and out["tokens_per_s"] > 0
    assert (archopt_home / "measurements.sqlite").exists()
    assert _run_json(capsys, argv) == out  # cached
    cal = _run_json(capsys, ["calibrate", "--hardware", "cpu", "--json"])
    assert cal["n_points"] == 1 and Path(cal["saved_to"]).exists()


def test_measure_vllm_failure_is_recorded(capsys, archopt_home) -> None:
    main(["measure", *TINY_FLAGS, "--backend", "vllm", "--device", "cpu", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "failed" and ("vllm" in out["reason"] or "GPU" in out["reason"])
    assert MeasurementCache().records(backend="vllm")[0].status == "failed"


def test_measure_failure_exit_code_1(capsys, archopt_home) -> None:
    assert main(["measure", *TINY_FLAGS, "--backend", "vllm", "--device", "cpu", "--json"]) == 1


def test_non_integer_flag_exit_2(capsys) -> None:
    assert main(["arch", "--d-model", "abc"]) == 2


BAD = [
    [
        "arch",
        "--d-model",
        "-5",
        "--n-layers",
        "2",
        "--n-heads",
        "4",
        "--ffn-dim",
        "8",
        "--vocab-size",
        "8",
    ],
    [
        "arch",
        "--d-model",
        "64",
        "--n-layers",
        "2",
        "--n-heads",
        "4",
        "--n-kv-heads",
        "3",
        "--ffn-dim",
        "8",
        "--vocab-size",
        "8",
    ],
    [
        "arch",
        "--d-model",
        "100",
        "--n-layers",
        "2",
        "--n-heads",
        "3",
        "--ffn-dim",
        "8",
        "--vocab-size",
        "8",
    ],
    ["arch", "--d-model", "64", "--n-layers", "2"],
    ["arch", "--hf-config", "/no/such/config.json"],
    ["arch", "--hf-config", "cfg.json", "--d-model", "64"],
    ["throughput", *LLAMA_FLAGS, "--hardware", "tpu-v9"],
    ["throughput", *LLAMA_FLAGS, "--batch-size", "0"],
    ["throughput", *LLAMA_FLAGS, "--dtype", "int3"],
    ["throughput", *LLAMA_FLAGS, "--backend", "trt"],
    ["throughput", *LLAMA_FLAGS, "--workload", "batch=two"],
    ["measure", *TINY_FLAGS, "--repeats", "0"],
    ["measure", *TINY_FLAGS, "--input-len", "-1"],
    ["measure", *TINY_FLAGS, "--device", "tpu"],
    ["measure", *TINY_FLAGS, "--threads", "0"],
    [
        "measure",
        "--d-model",
        "128",
        "--n-layers",
        "0",
        "--n-heads",
        "4",
        "--ffn-dim",
        "8",
        "--vocab-size",
        "8",
    ],
    ["calibrate", "--hardware", "cpu"],
    ["calibrate", "--hardware", "nope"],
    ["calibrate", "--hardware", "cpu", "--backend", "trt"],
    ["throughput", *LLAMA_FLAGS, "--tp", "0"],
    ["throughput", *LLAMA_FLAGS, "--tp", "2", "--hardware", "cpu"],
    ["throughput", *LLAMA_FLAGS, "--backend", "hf", "--tp", "2"],
    ["measure", *TINY_FLAGS, "--hardware", "a100-40gb"],
    ["measure", *LLAMA_FLAGS, "--import", "run.json"],
]


@pytest.mark.parametrize("argv", BAD, ids=lambda a: " ".join(a[:1] + a[-2:]))
def test_bad_input_exit_2_one_line_nothing_written(
    argv, capsys, archopt_home, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cfg.json").write_text(json.dumps(LLAMA.to_hf_config()))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err
    assert _files(archopt_home) == []


def test_unreadable_config_exit_2(capsys, tmp_path) -> None:
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    assert main(["throughput", "--hf-config", str(bad)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_console_script_arch_json_without_torch(tmp_path) -> None:
    env = {**os.environ, "ARCHOPT_HOME": str(tmp_path / "home")}
    code = (
        "import sys, optim.cli; rc = optim.cli.main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules and 'jax' not in sys.modules, 'heavy import'; sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "arch", *LLAMA_FLAGS, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["params"] == LLAMA.params
    exe = Path(sys.executable).with_name("archopt")
    if exe.exists():
        proc = subprocess.run(
            [str(exe), "arch", "--d-model", "-1"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert proc.returncode == 2 and proc.stderr.startswith("error:")


# ---- measure --import ---------------------------------------------------------------------------
IMPORT = [
    "measure",
    *LLAMA_FLAGS,
    "--hardware",
    "a100-40gb",
    "--backend",
    "vllm",
    "--workload",
    "batch=64,input=4096,output=1024",
    "--json",
]


def test_import_throughput_schema_converts_to_output_tokens(capsys, archopt_home) -> None:
    path = DATA / "vllm_bench_throughput.json"
    raw = json.loads(path.read_text())
    out = _run_json(capsys, [*IMPORT, "--import", str(path)])
    assert out["origin"] == "vllm bench throughput" and out["status"] == "ok"
    # tokens_per_second counts prompt + output tokens; archopt keeps output tokens/s.
    assert out["tokens_per_s"] == pytest.approx(raw["tokens_per_second"] * 1024 / 5120)
    assert out["total_s"] == raw["elapsed_time"] and out["num_requests"] == 64
    got = _run_json(
        capsys,
        ["throughput", *LLAMA_FLAGS, "--workload", "batch=64,input=4096,output=1024", "--json"],
    )
    assert got["source"] == "measured" and got["origin"] == "vllm bench throughput"
    assert got["tokens_per_s"] == pytest.approx(out["tokens_per_s"]) and got["backend"] == "vllm"
    # the hf backend and another workload are still modelled
    assert (
        _run_json(
            capsys,
            [
                "throughput",
                *LLAMA_FLAGS,
                "--workload",
                "batch=64,input=4096,output=1024",
                "--backend",
                "hf",
                "--json",
            ],
        )["source"]
        == "model"
    )


def test_import_serve_schema_keeps_ttft_and_tpot(capsys, archopt_home) -> None:
    path = DATA / "vllm_bench_serve.json"
    raw = json.loads(path.read_text())
    out = _run_json(capsys, [*IMPORT, "--import", str(path)])
    assert out["origin"] == "vllm bench serve"
    assert out["tokens_per_s"] == raw["output_throughput"]
    assert out["ttft_s"] == pytest.approx(raw["mean_ttft_ms"] / 1e3)
    assert out["decode_s_per_token"] == pytest.approx(raw["mean_tpot_ms"] / 1e3)
    got = _run_json(
        capsys,
        ["throughput", *LLAMA_FLAGS, "--workload", "batch=64,input=4096,output=1024", "--json"],
    )
    assert got["source"] == "measured" and got["tpot_s"] == pytest.approx(raw["mean_tpot_ms"] / 1e3)


def test_calibrate_from_imported_results(capsys, archopt_home, tmp_path) -> None:
    # Imported runs of two shapes and a second workload: `archopt calibrate` picks the vllm
    # backend (the only one with measurements on a100-40gb) and fits its constants.
    _run_json(capsys, [*IMPORT, "--import", str(DATA / "vllm_bench_serve.json")])
    surefire = [
        "--d-model",
        "2560",
        "--n-layers",
        "16",
        "--n-heads",
        "36",
        "--n-kv-heads",
        "4",
        "--head-dim",
        "64",
        "--ffn-dim",
        "6144",
        "--vocab-size",
        "128256",
        "--tie-embeddings",
    ]
    raw = json.loads((DATA / "vllm_bench_throughput.json").read_text())
    for scale, flags in ((1.0, LLAMA_FLAGS), (0.72, surefire)):
        data = dict(raw, elapsed_time=raw["elapsed_time"] * scale)
        data["requests_per_second"] = 64 / data["elapsed_time"]
        data["tokens_per_second"] = 64 * 5120 / data["elapsed_time"]
        path = tmp_path / f"run{scale}.json"
        path.write_text(json.dumps(data))
        _run_json(
            capsys,
            [
                "measure",
                *flags,
                "--hardware",
                "a100-40gb",
                "--backend",
                "vllm",
                "--workload",
                "batch=64,input=4096,output=1024,requests=64",
                "--import",
                str(path),
                "--json",
            ],
        )
    cal = _run_json(capsys, ["calibrate", "--hardware", "a100-40gb", "--json"])
    assert cal["backend"] == "vllm" and cal["n_points"] == 3 and Path(cal["saved_to"]).exists()
    assert "vllm bench serve" in cal["source"] and "vllm bench throughput" in cal["source"]
    assert len(cal["posterior_cov"]) == 9 and cal["workloads"] == [
        "batch=64,input=4096,output=1024,dtype=bfloat16,backend=vllm"
    ]
    # Predictions now use it, and no longer warn about an uncalibrated pair.
    got = _run_json(
        capsys,
        ["throughput", *LLAMA_FLAGS, "--workload", "batch=64,input=2048,output=1024", "--json"],
    )
    assert got["calibration"]["n_points"] == 3 and got["source"] == "model"
    assert "uncalibrated" not in " ".join(got["warnings"]) and got["warnings"]  # another workload


def _bad_file(
    tmp_path: Path,
    name: str,
    change: dict | None = None,
    drop: str | None = None,
    text: str | None = None,
) -> Path:
    path = tmp_path / f"{name}.json"
    if text is not None:
        path.write_text(text)
        return path
    data = json.loads((DATA / f"vllm_bench_{name.split('-')[0]}.json").read_text())
    data.update(change or {})
    if drop:
        del data[drop]
    path.write_text(json.dumps(data))
    return path


BAD_IMPORTS = [
    ("unknown schema", dict(text='{"latency": 1.0, "p50": 2}'), [], "unknown JSON schema"),
    ("not json", dict(text="elapsed_time=3"), [], "not valid JSON"),
    ("a list", dict(text="[1, 2]"), [], "expected an object"),
    ("missing field", dict(drop="total_num_tokens"), [], "missing field"),
    ("zero time", dict(change={"elapsed_time": 0}), [], "elapsed_time must be positive"),
    ("negative time", dict(change={"elapsed_time": -14.9}), [], "elapsed_time must be positive"),
    ("string time", dict(change={"elapsed_time": "14.9"}), [], "must be a number"),
    (
        "other lengths",
        dict(),
        ["--workload", "batch=64,input=2048,output=1024"],
        "not a run of this workload",
    ),
    (
        "other request count",
        dict(),
        ["--workload", "batch=64,input=4096,output=1024,requests=100"],
        "requests",
    ),
    (
        "batch above requests",
        dict(),
        ["--workload", "batch=128,input=4096,output=1024"],
        "fewer than",
    ),
    ("inconsistent rates", dict(change={"tokens_per_second": 5000.0}), [], "disagree"),
    ("no hardware", dict(), ["--hardware", None], "needs --hardware"),
]
BAD_SERVE = [
    ("serve zero ttft", dict(change={"mean_ttft_ms": 0.0}), [], "mean_ttft_ms must be positive"),
    ("serve failed requests", dict(change={"failed": 3}), [], "failed"),
    ("serve other concurrency", dict(change={"max_concurrency": 32}), [], "max_concurrency"),
    ("serve missing tpot", dict(drop="mean_tpot_ms"), [], "missing field"),
    (
        "serve short outputs",
        dict(change={"total_output_tokens": 40000}),
        [],
        "not a run of this workload",
    ),
    ("serve with hf", dict(), ["--backend", "hf"], "--backend vllm"),
]


@pytest.mark.parametrize(
    "case,edit,extra,match", BAD_IMPORTS + BAD_SERVE, ids=[c[0] for c in BAD_IMPORTS + BAD_SERVE]
)
def test_bad_import_exit_2_one_line_cache_unchanged(
    case, edit, extra, match, capsys, archopt_home, tmp_path
) -> None:
    # A cache with one good import first: a bad file must leave it byte-identical.
    _run_json(capsys, [*IMPORT, "--import", str(DATA / "vllm_bench_throughput.json")])
    cache = archopt_home / "measurements.sqlite"
    before = cache.read_bytes()
    path = _bad_file(tmp_path, "serve" if case.startswith("serve") else "throughput", **edit)
    argv = [*IMPORT, "--import", str(path)]
    for flag, value in zip(extra[::2], extra[1::2]):
        i = argv.index(flag)
        argv[i : i + 2] = [] if value is None else [flag, value]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err, err
    assert match in err, err
    assert cache.read_bytes() == before


def test_import_without_max_concurrency_warns(capsys, archopt_home, tmp_path) -> None:
    path = _bad_file(tmp_path, "serve", change={"max_concurrency": None})
    with pytest.warns(UserWarning, match="max_concurrency"):
        out = _run_json(capsys, [*IMPORT, "--import", str(path)])
    assert out["origin"] == "vllm bench serve"


def test_calibrate_needs_a_backend_when_both_are_cached(capsys, archopt_home) -> None:
    for backend in ("hf", "vllm"):
        MeasurementCache().put(
            Measurement(
                "ok",
                "",
                LLAMA,
                "a100-40gb",
                backend,
                64,
                4096,
                1024,
                "bfloat16",
                tokens_per_s=1234.0,
                tokens_per_s_spread=0.0,
                ttft_s=2.0,
                decode_s_per_token=0.05,
                total_s=53.1,
                repeats=1,
                versions=library_versions(backend),
                created_at=1.0,
            )
        )
    assert main(["calibrate", "--hardware", "a100-40gb"]) == 2
    assert "pass --backend" in capsys.readouterr().err
