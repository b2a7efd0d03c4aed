"""The throughput models: workload parsing, HF and vLLM sanity, calibration and its storage."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import DATA

from models.arch import Arch
from models.errors import ArchoptError
from models.hardware import get_hardware
from models.parametrize import SearchSpace, enumerate_archs
from models.roofline import arch_arrays, predict_times, sum_over_steps
from models.throughput import (
    BACKEND_CONSTANTS,
    BUNDLED_CALIBRATIONS,
    STRUCTURAL_SIGMA,
    Calibration,
    CalibrationError,
    TimingRecord,
    Workload,
    WorkloadError,
    calibrate,
    default_calibration,
    load_calibration,
    memory_bytes,
    predict_throughput,
    predict_throughput_many,
    save_calibration,
)

LLAMA_1B = Arch(2048, 16, 32, 8, 64, 8192, 128256, True)
HF_CONSTANTS = BACKEND_CONSTANTS["hf"]


# ---- workload ---------------------------------------------------------------------------------
def test_workload_parse() -> None:
    wl = Workload.parse("batch=64,input=4096,output=1024")
    assert wl == Workload(64, 4096, 1024, "bfloat16", "vllm") and wl.num_requests == 64
    assert Workload.parse(" bs=2 , in=8, out=3, dtype=float32, backend=hf ") == Workload(
        2, 8, 3, "float32", "hf"
    )
    full = Workload.parse(
        "batch=8,input=16,output=4,requests=100,tp=2,mem_util=0.8,max_batched_tokens=2048"
    )
    assert (full.num_requests, full.tp, full.gpu_memory_utilization, full.max_batched_tokens) == (
        100,
        2,
        0.8,
        2048,
    )
    for w in (wl, full):
        assert Workload.parse(str(w)) == w
    assert Workload(**full.to_dict()) == full


@pytest.mark.parametrize(
    "text,match",
    [
        ("batch=0", "batch_size"),
        ("batch=x", "batch"),
        ("input=4096,input=2", "twice"),
        ("speed=3", "unknown workload key"),
        ("batch", "key=value"),
        ("dtype=int3", "dtype"),
        ("backend=trt", "backend"),
        ("output=-1", "output_len"),
        ("tp=0", "tp"),
        ("requests=0", "num_requests"),
        ("mem_util=1.5", "gpu_memory_utilization"),
        ("mem_util=x", "not a number"),
        ("backend=hf,tp=2", "vllm backend only"),
    ],
)
def test_workload_parse_errors(text: str, match: str) -> None:
    with pytest.raises(WorkloadError, match=match):
        Workload.parse(text)
    assert issubclass(WorkloadError, ArchoptError)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(batch_size=1.5),
        dict(input_len=0),
        dict(output_len=True),
        dict(gpu_memory_utilization=True),
    ],
)
def test_workload_validation(kwargs) -> None:
    with pytest.raises(WorkloadError, match=next(iter(kwargs))):
        Workload(**kwargs)


# ---- HF model ---------------------------------------------------------------------------------
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
        assert sum_over_steps(f, np.array([n]))[0] == pytest.approx(exact, rel=2e-3, abs=1e-12)


def _equal_param_shapes(target: float = 1e9, vocab: int = 128256) -> list[Arch]:
    space = SearchSpace(head_dims=(64,), gqa_groups=(4,))
    return enumerate_archs(target, 0.02, space=space, vocab_size=vocab)


@pytest.mark.parametrize("hw", ["a100-40gb", "h100-sxm", "l4", "cpu"])
def test_hf_more_layers_at_equal_params_is_slower_at_batch_1(hw: str) -> None:
    # Same d_model (so the same embeddings and attention block): only depth vs. MLP width differs.
    archs = sorted(
        (a for a in _equal_param_shapes() if a.d_model == 2048), key=lambda a: a.n_layers
    )
    assert len(archs) >= 3 and archs[-1].n_layers >= 2 * archs[0].n_layers
    tps = predict_throughput_many(archs, hw, Workload(1, 128, 256, backend="hf"), n_draws=0)[
        "tokens_per_s"
    ]
    assert tps[-1] < 0.9 * tps[0]
    if hw in ("a100-40gb", "h100-sxm"):
        # Launch-overhead bound at batch 1 on fast GPUs: strictly slower with every extra layer.
        assert np.all(np.diff(tps) < 0), list(zip([a.n_layers for a in archs], tps))


def test_hf_prediction_fields_consistent() -> None:
    wl = Workload(8, 512, 128, backend="hf")
    p = predict_throughput(LLAMA_1B, "a100-40gb", wl)
    assert p.source == "model" and p.backend == "hf" and p.servable
    assert p.tokens_per_s == pytest.approx(8 * 128 / p.total_s)
    assert p.total_s == pytest.approx(p.ttft_s + 127 * p.decode_s_per_token)
    assert (
        p.memory_bytes
        == memory_bytes(LLAMA_1B, wl)
        == LLAMA_1B.weight_bytes() + 8 * 640 * LLAMA_1B.kv_bytes_per_token()
    )
    assert p.tokens_per_s_q05 < p.tokens_per_s < p.tokens_per_s_q95 and p.rel_sigma > 0
    # More requests than the batch: successive batches, same rate.
    two = predict_throughput(
        LLAMA_1B, "a100-40gb", Workload(8, 512, 128, backend="hf", num_requests=16)
    )
    assert two.total_s == pytest.approx(2 * p.total_s) and two.tokens_per_s == pytest.approx(
        p.tokens_per_s
    )


def test_hf_fits_in_memory_false_for_huge_kv_cache() -> None:
    ok = predict_throughput(LLAMA_1B, "l4", Workload(1, 4096, 1024, backend="hf"))
    huge = predict_throughput(LLAMA_1B, "l4", Workload(256, 32768, 1024, backend="hf"))
    assert ok.fits_in_memory and not huge.fits_in_memory and not huge.servable
    assert huge.memory_bytes > get_hardware("l4").mem_bytes and "GB" in huge.unservable_reason


def test_single_output_token_has_no_decode() -> None:
    for backend in ("hf", "vllm"):
        p = predict_throughput(LLAMA_1B, "a100-40gb", Workload(1, 128, 1, backend=backend))
        assert p.decode_s_per_token == 0.0 and p.total_s == pytest.approx(p.ttft_s, rel=0.02), (
            backend
        )


# ---- vLLM model -------------------------------------------------------------------------------
def test_vllm_is_the_default_and_decode_is_bandwidth_bound() -> None:
    assert Workload().backend == "vllm"
    small = predict_throughput(LLAMA_1B, "h100-sxm", Workload(1, 128, 256))
    large = predict_throughput(LLAMA_1B, "h100-sxm", Workload(64, 128, 256))
    assert large.backend == "vllm" and large.tokens_per_s > 10 * small.tokens_per_s
    # A decode step can never beat streaming the weights once at full bandwidth.
    assert large.tpot_s >= LLAMA_1B.weight_bytes() / get_hardware("h100-sxm").mem_bandwidth


def test_vllm_prediction_fields_consistent() -> None:
    wl = Workload(64, 4096, 1024, num_requests=200)
    p = predict_throughput(LLAMA_1B, "a100-40gb", wl)
    assert p.tokens_per_s == pytest.approx(200 * 1024 / p.total_s)
    assert p.request_throughput == pytest.approx(200 / p.total_s)
    assert p.tpot_s == p.decode_s_per_token > 0 and 0 < p.ttft_s < p.total_s
    assert p.concurrency == 64 and p.kv_cache_tokens > 64 * 5120 and p.servable
    # The KV cache of 64 full-length sequences plus the weights fit on the GPU.
    assert (
        LLAMA_1B.weight_bytes() + 64 * 5120 * LLAMA_1B.kv_bytes_per_token()
        < p.memory_bytes
        < 0.9 * 40e9
    )


def test_vllm_kv_cache_limits_concurrency_then_refuses() -> None:
    # L4 (24 GB): a 1B model holds ~15 sequences of 33k tokens, not 256, and none of 1M tokens.
    p = predict_throughput(LLAMA_1B, "l4", Workload(256, 32768, 1024))
    assert p.servable and p.fits_in_memory and 5 <= p.concurrency < 40
    assert p.kv_cache_tokens >= p.concurrency * (32768 + 1024)
    wide = predict_throughput(
        LLAMA_1B, "l4", Workload(256, 32768, 1024, gpu_memory_utilization=0.5)
    )
    assert wide.concurrency < p.concurrency and wide.tokens_per_s < p.tokens_per_s
    none = predict_throughput(LLAMA_1B, "l4", Workload(1, 1_000_000, 16))
    assert (
        not none.servable
        and not none.fits_in_memory
        and "gpu_memory_utilization" in none.unservable_reason
    )


def test_vllm_smaller_kv_cache_is_faster_at_long_context() -> None:
    # Same shape, half the KV heads: decode reads half the KV cache.
    fewer = LLAMA_1B.replace(n_kv_heads=4)
    wl = Workload(64, 4096, 1024)
    assert (
        predict_throughput(fewer, "a100-40gb", wl).tokens_per_s
        > 1.2 * predict_throughput(LLAMA_1B, "a100-40gb", wl).tokens_per_s
    )


def test_longer_prompt_raises_ttft_and_faster_hardware_is_faster() -> None:
    short = predict_throughput(LLAMA_1B, "a100-40gb", Workload(16, 256, 64))
    long = predict_throughput(LLAMA_1B, "a100-40gb", Workload(16, 8192, 64))
    assert long.ttft_s > 5 * short.ttft_s
    wl = Workload(32, 2048, 256)
    tps = [
        predict_throughput(LLAMA_1B, hw, wl).tokens_per_s for hw in ("l4", "a100-40gb", "h100-sxm")
    ]
    assert tps[0] < tps[1] < tps[2]


def test_many_equals_single_and_shapes() -> None:
    archs = _equal_param_shapes(3e8, 50304)[:50]
    for wl in (Workload(4, 1024, 128), Workload(4, 1024, 128, backend="hf")):
        many = predict_throughput_many(archs, "h200", wl)
        for key in (
            "tokens_per_s",
            "ttft_s",
            "decode_s_per_token",
            "total_s",
            "memory_bytes",
            "fits_in_memory",
            "source",
            "rel_sigma",
            "servable",
            "concurrency",
            "tokens_per_s_q05",
            "tokens_per_s_q95",
            "backend",
            "unservable_reason",
        ):
            assert many[key].shape == (len(archs),), key
        for i in (0, 17, 49):
            single = predict_throughput(archs[i], "h200", wl)
            assert many["tokens_per_s"][i] == pytest.approx(single.tokens_per_s)
            assert bool(many["fits_in_memory"][i]) == single.fits_in_memory
        assert predict_throughput_many([], "h200", wl)["tokens_per_s"].shape == (0,)


# ---- calibration ------------------------------------------------------------------------------
def _hf_records(
    truth: dict[str, float], hw_id: str, rng: np.random.Generator
) -> list[TimingRecord]:
    hw = get_hardware(hw_id)
    archs = []
    for target in (1e8, 1e9):  # four depths per budget, shallow to deep
        shapes = sorted(_equal_param_shapes(target, 32000), key=lambda a: (a.n_layers, a.d_model))
        archs += [shapes[i] for i in np.linspace(0, len(shapes) - 1, 4).astype(int)]
    workloads = [
        Workload(b, i, o, backend="hf")
        for b, i, o in ((1, 128, 64), (32, 2048, 64), (256, 512, 32), (4, 64, 16))
    ]
    records = []
    for arch in archs:
        for wl in workloads:
            q = arch_arrays([arch], wl.dtype)
            prefill, decode = predict_times(
                q,
                wl.batch_size,
                wl.input_len,
                wl.output_len,
                hw.peak_flops,
                hw.mem_bandwidth,
                truth,
            )
            noise = np.exp(rng.normal(0, 0.01, size=2))
            records.append(
                TimingRecord(
                    arch, wl, float((prefill + decode)[0] * noise[0]), float(prefill[0] * noise[1])
                )
            )
    return records


@pytest.mark.parametrize(
    "overlap,layer_s,step_s,token_s",
    [(0.02, 2e-4, 4e-3, 4e-6), (0.98, 2e-5, 5e-4, 2e-8), (0.6, 5e-5, 1e-3, 1e-7)],
)
def test_calibration_recovers_known_constants(
    overlap: float, layer_s: float, step_s: float, token_s: float
) -> None:
    # Overheads small enough that compute-, bandwidth- and overhead-bound passes all occur.
    truth = {
        "flops_efficiency": 0.42,
        "bandwidth_efficiency": 0.63,
        "layer_overhead_s": layer_s,
        "step_overhead_s": step_s,
        "overhead_overlap": overlap,
        "token_layer_s": token_s,
    }
    records = _hf_records(truth, "a100-80gb", np.random.default_rng(1))
    start = Calibration("a100-80gb", "hf", 0.2, 0.9, 1e-5, 1e-2, 0.5, 1e-6)
    cal = calibrate(records, "a100-80gb", "hf", prior=start)
    for name in HF_CONSTANTS:
        assert getattr(cal, name) == pytest.approx(
            truth[name], rel=0.1, abs=0.05 if name == "overhead_overlap" else 0
        ), name
    assert cal.n_points == len(records) and len(cal.workloads) == 4
    assert 0.005 < cal.rel_sigma < 0.05  # leave-one-out log error ~ the 1% noise
    cov = np.asarray(cal.posterior_cov)
    assert cov.shape == (6, 6) and np.all(np.linalg.eigvalsh(cov) >= -1e-12)
    # The bandwidth efficiency is pinned by the data: far narrower than its prior.
    from models.calibration import prior_center_sd

    assert np.sqrt(cov[1, 1]) < prior_center_sd("hf", "gpu", "bandwidth_efficiency")[1] / 2


def test_vllm_calibration_laplace_posterior_covers_the_truth() -> None:
    from models.backends import run_times
    from models.calibration import prior_center_sd, to_theta

    truth = {
        **default_calibration("a100-40gb", "vllm").constants,
        "bandwidth_efficiency": 0.7,
        "flops_efficiency": 0.5,
        "step_overhead_s": 2e-3,
    }
    hw = get_hardware("a100-40gb")
    rng = np.random.default_rng(3)
    archs = enumerate_archs(1e9, 0.05)[::300]
    records = []
    for wl in (Workload(64, 4096, 1024), Workload(16, 512, 256), Workload(256, 1024, 64)):
        run = run_times(arch_arrays(archs, wl.dtype), wl, hw, truth)
        for a, t, f, d in zip(archs, run["total_s"], run["ttft_s"], run["tpot_s"]):
            e = np.exp(rng.normal(0, 0.02, 3))
            records.append(TimingRecord(a, wl, float(t * e[0]), float(f * e[1]), float(d * e[2])))
    cal = calibrate(records, hw, "vllm")
    names = BACKEND_CONSTANTS["vllm"]
    sd = np.sqrt(np.diag(np.asarray(cal.posterior_cov)))
    for j, name in enumerate(names):
        z = (float(to_theta(name, getattr(cal, name))) - float(to_theta(name, truth[name]))) / sd[j]
        assert abs(z) < 4, (name, z)
    i = names.index("bandwidth_efficiency")
    assert sd[i] < prior_center_sd("vllm", "gpu", "bandwidth_efficiency")[1] / 5
    assert getattr(cal, "bandwidth_efficiency") == pytest.approx(0.7, rel=0.05)


def test_calibrate_accepts_mappings_and_skips_failed() -> None:
    class Failed:
        def to_timing_record(self):
            return None

    with open(DATA / "reference_latency.csv") as fh:
        rows = list(csv.DictReader(fh))
    cal = calibrate(rows + [Failed()], "a100-40gb", "hf")
    assert cal.n_points == 3 and cal.workloads == (
        "batch=1,input=128,output=256,dtype=bfloat16,backend=hf",
    )


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
    with pytest.raises(CalibrationError, match="tpot_s"):
        TimingRecord(LLAMA_1B, Workload(), 1.0, 0.1, 0.0)


def test_bundled_a100_calibration_reproduces_reference_latency(archopt_home) -> None:
    cal = load_calibration("A100-40GB", "hf")
    assert cal.n_points == 3 and "reference_latency" in cal.source and cal.posterior_cov is not None
    assert cal.rel_sigma < 0.1 and cal.workloads
    with open(DATA / "reference_latency.csv") as fh:
        for row in csv.DictReader(fh):
            wl = Workload(
                int(row["batch_size"]),
                int(row["input_tokens"]),
                int(row["output_tokens"]),
                backend="hf",
            )
            p = predict_throughput(Arch.from_mapping(row), "a100-40gb", wl)
            assert p.total_s == pytest.approx(float(row["latency_s"]), rel=0.05), row["name"]


def test_uncalibrated_pair_gets_prior_medians(archopt_home) -> None:
    cal = load_calibration("h200", "vllm")
    assert cal.n_points == 0 and cal.rel_sigma == STRUCTURAL_SIGMA and cal.posterior_cov is None
    assert 0.5 < cal.bandwidth_efficiency < 0.9 and cal.layer_overhead_s < 1e-4
    assert load_calibration("cpu", "hf").overhead_overlap < 0.05
    assert load_calibration("l4", "hf").overhead_overlap > 0.95
    with pytest.raises(CalibrationError, match="backend"):
        load_calibration("l4", "trt")


def test_user_calibration_overrides_bundled(archopt_home) -> None:
    mine = Calibration(
        "a100-40gb",
        "hf",
        0.3,
        0.5,
        1e-4,
        1e-3,
        0.5,
        rel_sigma=0.07,
        n_points=9,
        source="mine",
        workloads=("batch=1,input=128,output=256,dtype=bfloat16,backend=hf",),
    )
    path = save_calibration(mine)
    assert path == archopt_home / "calibrations.json"
    assert load_calibration("a100-40gb", "hf") == mine
    other = Calibration(
        "cpu",
        "hf",
        0.2,
        0.2,
        1e-4,
        1e-3,
        0.0,
        posterior_cov=np.diag([0.01] * 6).tolist(),
        n_points=2,
    )
    save_calibration(other)
    assert load_calibration("cpu", "hf") == other and load_calibration("a100-40gb", "hf") == mine
    bundled = json.loads(BUNDLED_CALIBRATIONS.read_text())["calibrations"]
    assert all(c["source"] != "mine" for c in bundled)
    # a prediction follows the override: its structural error at the fitted workload is 0.07
    wl = Workload(1, 128, 256, backend="hf")
    p = predict_throughput(LLAMA_1B, "a100-40gb", wl, n_draws=0)
    assert p.rel_sigma == 0.07


@pytest.mark.parametrize(
    "content,match",
    [
        ("{bad", "not valid JSON"),
        ('{"x": 1}', "expected"),
        (
            '{"calibrations": [{"hardware_id": "cpu", "backend": "hf", "flops_efficiency": NaN}]}',
            "NaN is not allowed",
        ),
        (
            '{"calibrations": [{"hardware_id": "cpu", "backend": "hf", "flops_efficiency": 0.5, '
            '"bandwidth_efficiency": 0.5, "layer_overhead_s": 1e-4, "step_overhead_s": 1e-3, '
            '"n_points": "many"}]}',
            "n_points must be an integer",
        ),
        ("[" * 100_000, "nests deeper"),
        (b"\x89PNG\r\n\x1a\n\x00\xff", "not UTF-8"),
        ('{"calibrations": [{"hardware_id": "cpu", "backend": "hf"}]}', "entry 0.*missing"),
        (
            '{"calibrations": [{"hardware_id": "cpu", "backend": "hf", "flops_efficiency": 2, '
            '"bandwidth_efficiency": 0.5, "layer_overhead_s": 1e-4, "step_overhead_s": 1e-3}]}',
            "flops_efficiency",
        ),
        (
            '{"calibrations": [{"hardware_id": "cpu", "backend": "hf", "flops_efficiency": 0.5, '
            '"bandwidth_efficiency": 0.5, "layer_overhead_s": 1e-4, "step_overhead_s": 1e-3, '
            '"posterior_cov": [[1, 2], [2, 1]]}]}',
            "posterior_cov",
        ),
    ],
)
def test_bad_user_calibration_file(archopt_home, content: str | bytes, match: str) -> None:
    archopt_home.mkdir(parents=True)
    path = archopt_home / "calibrations.json"
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    with pytest.raises(CalibrationError, match=match):
        load_calibration("cpu", "hf")


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(flops_efficiency=0), "flops_efficiency"),
        (dict(bandwidth_efficiency=1.5), "bandwidth_efficiency"),
        (dict(layer_overhead_s=-1), "layer_overhead_s"),
        (dict(overhead_overlap=2), "overhead_overlap"),
        (dict(rel_sigma="x"), "rel_sigma"),
        (dict(backend="trt"), "backend"),
        (dict(runtime_memory_bytes=0), "runtime_memory_bytes"),
        (dict(workloads="x"), "workloads"),
        (dict(posterior_cov=[[1.0, 0.0], [0.0, 1.0]]), "6x6"),
        (dict(posterior_cov=(-np.eye(6)).tolist()), "positive semi-definite"),
    ],
)
def test_calibration_validation(kwargs, field) -> None:
    base = dict(
        hardware_id="cpu",
        backend="hf",
        flops_efficiency=0.5,
        bandwidth_efficiency=0.5,
        layer_overhead_s=1e-4,
        step_overhead_s=1e-3,
    )
    with pytest.raises(CalibrationError, match=field):
        Calibration(**{**base, **kwargs})
