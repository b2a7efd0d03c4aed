"""`archopt arch | throughput | measure | hardware | calibrate`: JSON contract and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from models.arch import Arch
from models.measure import Measurement, MeasurementCache, library_versions
from optim.cli import main

LLAMA_FLAGS = ["--d-model", "2048", "--n-layers", "16", "--n-heads", "32", "--n-kv-heads", "8",
               "--head-dim", "64", "--ffn-dim", "8192", "--vocab-size", "128256", "--tie-embeddings"]
LLAMA = Arch(2048, 16, 32, 8, 64, 8192, 128256, True)
TINY_FLAGS = ["--d-model", "128", "--n-layers", "2", "--n-heads", "4", "--n-kv-heads", "2",
              "--ffn-dim", "256", "--vocab-size", "512"]


def _run_json(capsys, argv: list[str]) -> dict:
    code = main(argv)
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_arch_json_fields(capsys, archopt_home) -> None:
    out = _run_json(capsys, ["arch", *LLAMA_FLAGS, "--json"])
    for key in ("params", "non_embedding_params", "attention_params", "mlp_params", "mlp_attn_ratio",
                "d_over_sqrt_n", "aspect_ratio", "gqa_group", "kv_bytes_per_token"):
        assert out[key] == LLAMA.features()[key], key
    assert out["params"] == 1235814400 and out["label"] == LLAMA.label()


def test_arch_defaults_and_table(capsys) -> None:
    out = _run_json(capsys, ["arch", "--d-model", "512", "--n-layers", "4", "--n-heads", "8",
                             "--ffn-dim", "1024", "--vocab-size", "100", "--json"])
    assert (out["n_kv_heads"], out["head_dim"], out["tie_embeddings"]) == (8, 64, False)
    assert main(["arch", *LLAMA_FLAGS]) == 0
    assert "1,235,814,400" in capsys.readouterr().out


def test_arch_from_hf_config(capsys, tmp_path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(LLAMA.to_hf_config()))
    out = _run_json(capsys, ["arch", "--hf-config", str(path), "--json"])
    assert out["params"] == LLAMA.params and out["tie_embeddings"] is True


def test_throughput_json_fields(capsys, archopt_home) -> None:
    out = _run_json(capsys, ["throughput", *LLAMA_FLAGS, "--hardware", "a100-40gb", "--batch-size", "64",
                             "--input-len", "4096", "--output-len", "1024", "--json"])
    for key in ("tokens_per_s", "ttft_s", "decode_s_per_token", "total_s", "memory_bytes",
                "fits_in_memory", "source", "rel_sigma"):
        assert key in out, key
    assert out["source"] == "model" and out["fits_in_memory"] is True
    assert (out["batch_size"], out["input_len"], out["output_len"], out["hardware"]) == (64, 4096, 1024, "a100-40gb")
    assert out["tokens_per_s"] == pytest.approx(64 * 1024 / out["total_s"])
    assert out["calibration"]["hardware_id"] == "a100-40gb"
    assert _files(archopt_home) == []  # a prediction writes nothing


def test_throughput_workload_string_and_memory(capsys) -> None:
    out = _run_json(capsys, ["throughput", *LLAMA_FLAGS, "--hardware", "L4", "--workload",
                             "batch=256,input=32768,output=1024", "--backend", "vllm", "--json"])
    assert out["fits_in_memory"] is False and out["backend"] == "vllm"


def test_throughput_uses_cached_measurement(capsys, archopt_home) -> None:
    m = Measurement("ok", "", LLAMA, "a100-40gb", "hf", 64, 4096, 1024, "bfloat16", tokens_per_s=1234.0,
                    tokens_per_s_spread=5.0, ttft_s=2.0, decode_s_per_token=0.05, total_s=53.1,
                    peak_mem_bytes=2e10, repeats=3, device="NVIDIA A100-SXM4-40GB",
                    versions=library_versions("hf"), created_at=1.0)
    MeasurementCache().put(m)
    argv = ["throughput", *LLAMA_FLAGS, "--hardware", "a100-40gb", "--batch-size", "64",
            "--input-len", "4096", "--output-len", "1024", "--json"]
    out = _run_json(capsys, argv)
    assert out["source"] == "measured" and out["tokens_per_s"] == 1234.0
    # another workload or hardware is still modelled
    assert _run_json(capsys, argv[:-1] + ["--hardware", "h100-sxm", "--json"])["source"] == "model"


def test_hardware_list_json(capsys) -> None:
    out = _run_json(capsys, ["hardware", "--json"])
    assert {"a100-40gb", "a100-80gb", "h100-sxm", "h100-pcie", "h200", "l4", "cpu"} <= {h["id"] for h in out}


@pytest.mark.slow
def test_measure_and_calibrate_cli(capsys, archopt_home) -> None:
    argv = ["measure", *TINY_FLAGS, "--batch-size", "1", "--input-len", "8", "--output-len", "4",
            "--dtype", "float32", "--repeats", "1", "--device", "cpu", "--threads", "1", "--json"]
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
    ["arch", "--d-model", "-5", "--n-layers", "2", "--n-heads", "4", "--ffn-dim", "8", "--vocab-size", "8"],
    ["arch", "--d-model", "64", "--n-layers", "2", "--n-heads", "4", "--n-kv-heads", "3",
     "--ffn-dim", "8", "--vocab-size", "8"],
    ["arch", "--d-model", "100", "--n-layers", "2", "--n-heads", "3", "--ffn-dim", "8", "--vocab-size", "8"],
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
    ["measure", "--d-model", "128", "--n-layers", "0", "--n-heads", "4", "--ffn-dim", "8", "--vocab-size", "8"],
    ["calibrate", "--hardware", "cpu"],
    ["calibrate", "--hardware", "nope"],
]


@pytest.mark.parametrize("argv", BAD, ids=lambda a: " ".join(a[:1] + a[-2:]))
def test_bad_input_exit_2_one_line_nothing_written(argv, capsys, archopt_home, tmp_path, monkeypatch) -> None:
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
    code = ("import sys, optim.cli; rc = optim.cli.main(sys.argv[1:]); "
            "assert 'torch' not in sys.modules and 'jax' not in sys.modules, 'heavy import'; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, "arch", *LLAMA_FLAGS, "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["params"] == LLAMA.params
    exe = Path(sys.executable).with_name("archopt")
    if exe.exists():
        proc = subprocess.run([str(exe), "arch", "--d-model", "-1"], capture_output=True, text=True,
                              env=env, timeout=120)
        assert proc.returncode == 2 and proc.stderr.startswith("error:")
