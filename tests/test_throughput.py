"""The roofline throughput model: workload parsing, sanity, calibration, calibration storage."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from models.arch import Arch
from models.errors import ArchoptError
from models.hardware import get_hardware
from models.parametrize import SearchSpace, enumerate_archs
from models.throughput import (BUNDLED_CALIBRATIONS, CONSTANT_NAMES, DEFAULT_REL_SIGMA, Calibration,
                               CalibrationError, TimingRecord, Workload, WorkloadError,
                               _arch_arrays, _sum_over_steps, calibrate, load_calibration,
                               memory_bytes, predict_throughput, predict_throughput_many,
                               predict_times, save_calibration)

from conftest import DATA

LLAMA_1B = Arch(2048, 16, 32, 8, 64, 8192, 128256, True)


# ---- workload ---------------------------------------------------------------------------------
def test_workload_parse() -> None:
    wl = Workload.parse("batch=64,input=4096,output=1024")
    assert wl == Workload(64, 4096, 1024, "bfloat16", "hf")
    assert Workload.parse(" bs=2 , in=8, out=3, dtype=float32, backend=vllm ") == \
        Workload(2, 8, 3, "float32", "vllm")
    assert Workload.parse(str(wl)) == wl


@pytest.mark.parametrize("text,match", [
    ("batch=0", "batch_size"), ("batch=x", "batch"), ("input=4096,input=2", "twice"),
    ("speed=3", "unknown workload key"), ("batch", "key=value"), ("dtype=int3", "dtype"),
    ("backend=trt", "backend"), ("output=-1", "output_len"),
])
def test_workload_parse_errors(text: str, match: str) -> None:
    with pytest.raises(WorkloadError, match=match):
        Workload.parse(text)
    assert issubclass(WorkloadError, ArchoptError)


@pytest.mark.parametrize("kwargs", [dict(batch_size=1.5), dict(input_len=0), dict(output_len=True)])
def test_workload_validation(kwargs) -> None:
    with pytest.raises(WorkloadError, match=next(iter(kwargs))):
        Workload(**kwargs)


# ---- model sanity -----------------------------------------------------------------------------
def test_sum_over_steps_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        # Step times are positive; compute, memory and overhead cross anywhere in the range.
        a1, a2, o = rng.uniform(0.1, 2.0, size=3)
        b1, b2 = rng.uniform(0, 2.0, size=2) / rng.choice([1, 10, 1000])
        n, ov = int(rng.integers(0, 2000)), rng.random()

        def f(k):
            roof = np.maximum(a1 + b1 * k, a2 + b2 * k)
            return np.maximum(roof, o) + (1 - ov) * np.minimum(roof, o)

        exact = f(np.arange(n)).sum()
        assert _sum_over_steps(f, np.array([n]))[0] == pytest.approx(exact, rel=2e-3, abs=1e-12)


def _equal_param_shapes(target: float = 1e9, vocab: int = 128256) -> list[Arch]:
    space = SearchSpace(head_dims=(64,), gqa_groups=(4,))
    return enumerate_archs(target, 0.02, space=space, vocab_size=vocab)


@pytest.mark.parametrize("hw", ["a100-40gb", "h100-sxm", "l4", "cpu"])
def test_more_layers_at_equal_params_is_slower_at_batch_1(hw: str) -> None:
    # Same d_model (so the same embeddings and attention block): only depth vs. MLP width differs.
    archs = sorted((a for a in _equal_param_shapes() if a.d_model == 2048), key=lambda a: a.n_layers)
    assert len(archs) >= 3 and archs[-1].n_layers >= 2 * archs[0].n_layers
    tps = predict_throughput_many(archs, hw, Workload(1, 128, 256))["tokens_per_s"]
    assert tps[-1] < 0.9 * tps[0]
    if hw in ("a100-40gb", "h100-sxm"):
        # Launch-overhead bound at batch 1 on fast GPUs: strictly slower with every extra layer.
        assert np.all(np.diff(tps) < 0), list(zip([a.n_layers for a in archs], tps))


def test_decode_is_bandwidth_bound_at_large_batch_and_uses_batch() -> None:
    small = predict_throughput(LLAMA_1B, "h100-sxm", Workload(1, 128, 256, backend="vllm"))
    large = predict_throughput(LLAMA_1B, "h100-sxm", Workload(64, 128, 256, backend="vllm"))
    assert large.tokens_per_s > 10 * small.tokens_per_s
    # Decode can never beat streaming the weights once per step at full bandwidth.
    hw = get_hardware("h100-sxm")
    assert large.decode_s_per_token >= LLAMA_1B.weight_bytes() / hw.mem_bandwidth


def test_prediction_fields_consistent() -> None:
    wl = Workload(8, 512, 128)
    p = predict_throughput(LLAMA_1B, "a100-40gb", wl)
    assert p.source == "model"
    assert p.tokens_per_s == pytest.approx(8 * 128 / p.total_s)
    assert p.total_s == pytest.approx(p.ttft_s + 127 * p.decode_s_per_token)
    assert p.memory_bytes == memory_bytes(LLAMA_1B, wl) == \
        LLAMA_1B.weight_bytes() + 8 * 640 * LLAMA_1B.kv_bytes_per_token()
    assert p.fits_in_memory
    assert set(p.to_dict()) >= {"tokens_per_s", "ttft_s", "decode_s_per_token", "total_s",
                                "memory_bytes", "fits_in_memory", "source"}


def test_longer_prompt_raises_ttft_and_faster_hardware_is_faster() -> None:
    short = predict_throughput(LLAMA_1B, "a100-40gb", Workload(16, 256, 64))
    long = predict_throughput(LLAMA_1B, "a100-40gb", Workload(16, 8192, 64))
    assert long.ttft_s > 5 * short.ttft_s
    wl = Workload(32, 2048, 256, backend="vllm")
    tps = [predict_throughput(LLAMA_1B, hw, wl).tokens_per_s for hw in ("l4", "a100-40gb", "h100-sxm")]
    assert tps[0] < tps[1] < tps[2]


def test_fits_in_memory_false_for_huge_kv_cache() -> None:
    ok = predict_throughput(LLAMA_1B, "l4", Workload(1, 4096, 1024))
    huge = predict_throughput(LLAMA_1B, "l4", Workload(256, 32768, 1024))
    assert ok.fits_in_memory and not huge.fits_in_memory
    assert huge.memory_bytes > get_hardware("l4").mem_bytes


def test_many_equals_single_and_shapes() -> None:
    archs = _equal_param_shapes(3e8, 50304)[:50]
    wl = Workload(4, 1024, 128)
    many = predict_throughput_many(archs, "h200", wl)
    for key in ("tokens_per_s", "ttft_s", "decode_s_per_token", "total_s", "memory_bytes",
                "fits_in_memory", "source", "rel_sigma"):
        assert many[key].shape == (len(archs),)
    for i in (0, 17, 49):
        single = predict_throughput(archs[i], "h200", wl)
        assert many["tokens_per_s"][i] == pytest.approx(single.tokens_per_s)
        assert bool(many["fits_in_memory"][i]) == single.fits_in_memory
    assert predict_throughput_many([], "h200", wl)["tokens_per_s"].shape == (0,)


def test_single_output_token_has_no_decode() -> None:
    p = predict_throughput(LLAMA_1B, "a100-40gb", Workload(1, 128, 1))
    assert p.decode_s_per_token == 0.0 and p.total_s == pytest.approx(p.ttft_s)


# ---- calibration ------------------------------------------------------------------------------
def _synthetic_records(truth: dict[str, float], hw_id: str, rng: np.random.Generator) -> list[TimingRecord]:
    hw = get_hardware(hw_id)
    archs = []
    for target in (1e8, 1e9):  # six depths per budget, shallow to deep
        shapes = sorted(_equal_param_shapes(target, 32000), key=lambda a: (a.n_layers, a.d_model))
        archs += [shapes[i] for i in np.linspace(0, len(shapes) - 1, 6).astype(int)]
    workloads = [Workload(1, 128, 64), Workload(32, 2048, 64), Workload(256, 512, 32), Workload(4, 64, 16)]
    records = []
    for arch in archs:
        for wl in workloads:
            q = _arch_arrays([arch], [wl.dtype])
            prefill, decode = predict_times(q, wl.batch_size, wl.input_len, wl.output_len,
                                            hw.peak_flops, hw.mem_bandwidth, truth)
            noise = np.exp(rng.normal(0, 0.01, size=2))
            records.append(TimingRecord(arch, wl, float((prefill + decode)[0] * noise[0]),
                                        float(prefill[0] * noise[1])))
    return records


@pytest.mark.parametrize("overlap,layer_s,step_s,token_s", [
    (0.0, 2e-4, 4e-3, 4e-6), (1.0, 2e-5, 5e-4, 2e-8), (0.6, 5e-5, 1e-3, 1e-7)])
def test_calibration_recovers_known_constants(overlap: float, layer_s: float, step_s: float,
                                              token_s: float) -> None:
    # Overheads small enough that compute-, bandwidth- and overhead-bound passes all occur.
    truth = {"flops_efficiency": 0.42, "bandwidth_efficiency": 0.63, "layer_overhead_s": layer_s,
             "step_overhead_s": step_s, "overhead_overlap": overlap, "token_layer_s": token_s}
    records = _synthetic_records(truth, "a100-80gb", np.random.default_rng(1))
    start = Calibration("a100-80gb", "hf", 0.2, 0.9, 1e-5, 1e-2, 0.5, 1e-6)
    cal = calibrate(records, "a100-80gb", "hf", prior=start)
    for name in CONSTANT_NAMES:
        assert getattr(cal, name) == pytest.approx(truth[name], rel=0.1, abs=0.05 if name == "overhead_overlap" else 0), name
    assert cal.n_points == len(records)
    assert 0.005 < cal.rel_sigma < 0.05  # leave-one-out log error ~ the 1% noise


def test_calibrate_accepts_mappings_and_skips_failed() -> None:
    class Failed:
        def to_timing_record(self):
            return None

    with open(DATA / "reference_latency.csv") as fh:
        rows = list(csv.DictReader(fh))
    cal = calibrate(rows + [Failed()], "a100-40gb", "hf")
    assert cal.n_points == 3


def test_calibrate_errors() -> None:
    with pytest.raises(CalibrationError, match="no successful"):
        calibrate([], "cpu", "hf")
    rec = TimingRecord(LLAMA_1B, Workload(backend="vllm"), 1.0)
    with pytest.raises(CalibrationError, match="record 0.*backend"):
        calibrate([rec], "cpu", "hf")
    with pytest.raises(CalibrationError, match="record 1"):
        calibrate([rec, {"d_model": 1}], "cpu", "vllm")
    with pytest.raises(CalibrationError, match="total_s"):
        TimingRecord(LLAMA_1B, Workload(), -1.0)


def test_bundled_a100_calibration_reproduces_reference_latency(archopt_home) -> None:
    cal = load_calibration("A100-40GB", "hf")
    assert cal.n_points == 3 and "reference_latency" in cal.source
    assert cal.rel_sigma < 0.1
    with open(DATA / "reference_latency.csv") as fh:
        for row in csv.DictReader(fh):
            wl = Workload(int(row["batch_size"]), int(row["input_tokens"]), int(row["output_tokens"]))
            p = predict_throughput(Arch.from_mapping(row), "a100-40gb", wl)
            assert p.total_s == pytest.approx(float(row["latency_s"]), rel=0.05), row["name"]


def test_uncalibrated_pair_gets_defaults(archopt_home) -> None:
    cal = load_calibration("h200", "vllm")
    assert cal.n_points == 0 and cal.rel_sigma == DEFAULT_REL_SIGMA
    assert load_calibration("cpu", "hf").overhead_overlap == 0.0
    assert load_calibration("l4", "hf").overhead_overlap == 1.0
    with pytest.raises(CalibrationError, match="backend"):
        load_calibration("l4", "trt")


def test_user_calibration_overrides_bundled(archopt_home) -> None:
    mine = Calibration("a100-40gb", "hf", 0.3, 0.5, 1e-4, 1e-3, 0.5, rel_sigma=0.07, n_points=9,
                       source="mine")
    path = save_calibration(mine)
    assert path == archopt_home / "calibrations.json"
    assert load_calibration("a100-40gb", "hf") == mine
    other = Calibration("cpu", "hf", 0.2, 0.2, 1e-4, 1e-3, 0.0)
    save_calibration(other)
    assert load_calibration("cpu", "hf") == other and load_calibration("a100-40gb", "hf") == mine
    bundled = json.loads(BUNDLED_CALIBRATIONS.read_text())["calibrations"]
    assert all(c["source"] != "mine" for c in bundled)
    # a prediction follows the override
    wl = Workload(1, 128, 256)
    assert predict_throughput(LLAMA_1B, "a100-40gb", wl).rel_sigma == 0.07


@pytest.mark.parametrize("content,match", [
    ("{bad", "not valid JSON"), ('{"x": 1}', "expected"),
    ('{"calibrations": [{"hardware_id": "cpu", "backend": "hf", "flops_efficiency": NaN}]}',
     "NaN is not allowed"),
    ('{"calibrations": [{"hardware_id": "cpu", "backend": "hf", "flops_efficiency": 0.5, '
     '"bandwidth_efficiency": 0.5, "layer_overhead_s": 1e-4, "step_overhead_s": 1e-3, '
     '"n_points": "many"}]}', "n_points must be an integer"),
    ("[" * 100_000, "nests deeper"), (b"\x89PNG\r\n\x1a\n\x00\xff", "not UTF-8"),
    ('{"calibrations": [{"hardware_id": "cpu", "backend": "hf"}]}', "entry 0.*missing"),
    ('{"calibrations": [{"hardware_id": "cpu", "backend": "hf", "flops_efficiency": 2, '
     '"bandwidth_efficiency": 0.5, "layer_overhead_s": 1e-4, "step_overhead_s": 1e-3}]}', "flops_efficiency"),
])
def test_bad_user_calibration_file(archopt_home, content: str | bytes, match: str) -> None:
    archopt_home.mkdir(parents=True)
    path = archopt_home / "calibrations.json"
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    with pytest.raises(CalibrationError, match=match):
        load_calibration("cpu", "hf")


@pytest.mark.parametrize("kwargs,field", [
    (dict(flops_efficiency=0), "flops_efficiency"), (dict(bandwidth_efficiency=1.5), "bandwidth_efficiency"),
    (dict(layer_overhead_s=-1), "layer_overhead_s"), (dict(overhead_overlap=2), "overhead_overlap"),
    (dict(rel_sigma="x"), "rel_sigma"), (dict(backend="trt"), "backend"),
])
def test_calibration_validation(kwargs, field) -> None:
    base = dict(hardware_id="cpu", backend="hf", flops_efficiency=0.5, bandwidth_efficiency=0.5,
                layer_overhead_s=1e-4, step_overhead_s=1e-3)
    with pytest.raises(CalibrationError, match=field):
        Calibration(**{**base, **kwargs})
