"""The vLLM serving model: the roofline property, tensor parallelism, and the uncertainty draws."""

from __future__ import annotations

import numpy as np
import pytest

from models.arch import Arch
from models.backends import run_times
from models.calibration import (
    BACKEND_CONSTANTS,
    PRIOR_RANGES,
    Calibration,
    default_calibration,
    from_theta,
    prior_center_sd,
)
from models.errors import ArchoptError
from models.hardware import BUILTIN_HARDWARE, Hardware, get_hardware
from models.roofline import arch_arrays
from models.serving import roofline_bound, tp_layout
from models.throughput import Workload, predict_bound, predict_throughput, predict_throughput_many
from models.uncertainty import calibration_warnings, throughput_draws

LLAMA_1B = Arch(2048, 16, 32, 8, 64, 8192, 128256, True)
LLAMA_70B = Arch(8192, 80, 64, 8, 128, 28672, 128256, False)


def _random_arch(rng: np.random.Generator) -> Arch:
    head_dim = int(rng.choice([64, 128]))
    kv = int(rng.choice([1, 2, 4, 8]))
    heads = kv * int(rng.choice([1, 2, 4, 8]))
    return Arch(
        d_model=int(rng.integers(2, 65)) * 128,
        n_layers=int(rng.integers(1, 81)),
        n_heads=heads,
        n_kv_heads=kv,
        head_dim=head_dim,
        ffn_dim=int(rng.integers(1, 200)) * 256,
        vocab_size=int(rng.choice([32000, 50304, 128256])),
        tie_embeddings=bool(rng.integers(2)),
    )


def _random_workload(rng: np.random.Generator) -> Workload:
    batch = int(rng.choice([1, 4, 16, 64, 256]))
    return Workload(
        batch,
        int(rng.choice([1, 16, 128, 1024, 4096, 16384])),
        int(rng.choice([1, 2, 32, 256, 1024])),
        backend=str(rng.choice(["vllm", "hf"])),
        num_requests=batch * int(rng.choice([1, 1, 3])) + int(rng.integers(0, 3)),
    )


def _prior_draws(backend: str, kind: str, n: int, rng: np.random.Generator, widen: float = 2.0):
    """Constants from twice-widened priors: efficiencies near 1 and overheads near 0 included."""
    out = {}
    for name in PRIOR_RANGES[(backend, kind)]:
        mu, sd = prior_center_sd(backend, kind, name)
        out[name] = from_theta(name, rng.normal(mu, widen * sd, size=(n, 1)))
    return out


# ---- the roofline property --------------------------------------------------------------------
def test_no_prediction_beats_the_roofline_random_shapes_workloads_constants() -> None:
    rng = np.random.default_rng(20240611)
    gpus = [h for h in BUILTIN_HARDWARE if h != "cpu"]
    checked = 0
    for _ in range(150):
        archs = [_random_arch(rng) for _ in range(4)]
        wl = _random_workload(rng)
        hw = get_hardware(str(rng.choice(gpus)))
        if wl.backend == "vllm" and rng.random() < 0.3:
            tp = int(rng.choice([2, 4, 8]))
            wl = Workload(
                wl.batch_size,
                wl.input_len,
                wl.output_len,
                backend="vllm",
                num_requests=wl.num_requests,
                tp=tp,
            )
        q = arch_arrays(archs, wl.dtype)
        consts = _prior_draws(wl.backend, "gpu", 16, rng)
        run = run_times(q, wl, hw, consts)
        bound = roofline_bound(q, wl, hw)
        tps = wl.num_requests * wl.output_len / run["total_s"]  # 16 x 4
        assert np.all(np.isfinite(tps)) and np.all(tps > 0)
        assert np.all(tps <= bound["max_tokens_per_s"] * (1 + 1e-9)), (
            wl,
            [a.label() for a in archs],
        )
        # Every step reads this GPU's weights at least once.
        w_gpu = (
            tp_layout(q, wl.tp)["weight_bytes_gpu"] if wl.backend == "vllm" else q["weight_bytes"]
        )
        if wl.output_len > 1:
            assert np.all(run["tpot_s"] >= w_gpu / hw.mem_bandwidth * (1 - 1e-9))
        assert np.all(run["ttft_s"] >= w_gpu / hw.mem_bandwidth * (1 - 1e-9))
        assert np.all(run["concurrency"] <= min(wl.batch_size, wl.num_requests))
        checked += tps.size
    assert checked == 150 * 64


def test_bound_is_reached_only_in_the_limit() -> None:
    # Perfect efficiencies and no overhead: close to the bound, never above it.
    wl = Workload(64, 4096, 1024)
    hw = get_hardware("a100-40gb")
    ideal = {
        **default_calibration("a100-40gb", "vllm").constants,
        "flops_efficiency": 1 - 1e-9,
        "bandwidth_efficiency": 1 - 1e-9,
        "layer_overhead_s": 1e-15,
        "step_overhead_s": 1e-15,
        "token_layer_s": 1e-18,
        "overhead_overlap": 1.0,
    }
    q = arch_arrays([LLAMA_1B], wl.dtype)
    tps = 64 * 1024 / run_times(q, wl, hw, ideal)["total_s"]
    bound = predict_bound([LLAMA_1B], hw, wl)["max_tokens_per_s"]
    assert 0.6 * bound < tps <= bound


# ---- tensor parallelism -----------------------------------------------------------------------
def test_tp_splits_memory_and_kv_heads() -> None:
    wl1, wl4 = Workload(64, 4096, 1024), Workload(64, 4096, 1024, tp=4)
    one = predict_throughput(LLAMA_70B, "h100-sxm", wl1)
    four = predict_throughput(LLAMA_70B, "h100-sxm", wl4)
    assert not one.servable and "GB" in one.unservable_reason  # 141 GB of weights on one 80 GB GPU
    assert four.servable and four.concurrency > 1
    lay = tp_layout(arch_arrays([LLAMA_70B], "bfloat16"), 4)
    assert lay["kv_heads_gpu"][0] == 2 and not lay["replicated"][0]
    assert lay["weight_bytes_gpu"][0] == pytest.approx(LLAMA_70B.weight_bytes() / 4, rel=1e-6)


def test_replicated_kv_heads_cost_memory() -> None:
    # 2 KV heads on 8 GPUs: each GPU keeps one (4 copies of each); 8 KV heads split one per GPU.
    rep = LLAMA_1B.replace(n_kv_heads=2)
    q = arch_arrays([rep, LLAMA_1B], "bfloat16")
    lay = tp_layout(q, 8)
    assert list(lay["replicated"]) == [True, False] and list(lay["kv_heads_gpu"]) == [1.0, 1.0]
    # Per-GPU KV bytes are equal although the replicated shape has 4x fewer KV heads in total.
    assert lay["kv_bytes_gpu"][0] == lay["kv_bytes_gpu"][1] == LLAMA_1B.kv_bytes_per_token() / 8
    assert lay["weight_bytes_gpu"][0] > rep.weight_bytes() / 8


@pytest.mark.parametrize(
    "arch,tp,match",
    [
        (Arch(2304, 16, 36, 4, 64, 6144, 128256, True), 8, "n_heads=36"),
        (Arch(2048, 16, 32, 8, 64, 8100, 128256, True), 8, "ffn_dim=8100"),
        (Arch(3072, 28, 24, 6, 128, 8192, 128256, True), 4, "n_kv_heads=6"),
    ],
)
def test_unshardable_shapes_are_not_servable_and_say_why(arch, tp, match) -> None:
    p = predict_throughput(arch, "a100-80gb", Workload(8, 1024, 128, tp=tp))
    assert not p.servable and not p.shardable and match in p.unservable_reason


def test_allreduce_costs_deeper_models_more() -> None:
    shallow = Arch(4096, 8, 32, 8, 128, 28672, 32000)
    deep = Arch(2048, 32, 16, 8, 128, 7168, 32000)
    wl1, wl2 = Workload(8, 512, 256), Workload(8, 512, 256, tp=2)
    ratio = {}
    for a in (shallow, deep):
        ratio[a.n_layers] = (
            predict_throughput(a, "l4", wl2).tpot_s / predict_throughput(a, "l4", wl1).tpot_s
        )
    assert ratio[32] > ratio[8]
    cpu = Hardware("nolink", "no link", 1e14, 1e12, 8e10, "test")
    with pytest.raises(ArchoptError, match="interconnect"):
        predict_throughput(LLAMA_1B, cpu, wl2)


def test_interconnect_bandwidth_datasheet_numbers() -> None:
    link = {h: get_hardware(h).interconnect_bandwidth for h in BUILTIN_HARDWARE}
    assert link["a100-40gb"] == link["a100-80gb"] == 600e9
    assert link["h100-sxm"] == link["h200"] == 900e9
    assert link["h100-pcie"] == 128e9 and link["l4"] == 64e9 and link["cpu"] is None


# ---- uncertainty ------------------------------------------------------------------------------
def _candidates() -> list[Arch]:
    from models.parametrize import enumerate_archs

    return enumerate_archs(1e9, 0.05)[::40]


def test_draws_shapes_quantiles_and_determinism() -> None:
    archs = _candidates()
    wl = Workload(64, 4096, 1024)
    d = throughput_draws(archs, "a100-40gb", wl, n_draws=48, seed=3)
    n = len(archs)
    assert (
        d.tokens_per_s.shape == (48, n)
        and d.log_common.shape == (48,)
        and d.shape_sigma.shape == (n,)
    )
    assert np.all(d.q05 <= d.median) and np.all(d.median <= d.q95) and np.all(d.q05 > 0)
    again = throughput_draws(archs, "a100-40gb", wl, n_draws=48, seed=3)
    np.testing.assert_array_equal(d.tokens_per_s, again.tokens_per_s)
    assert d.backend == "vllm" and d.warnings and "uncalibrated" in d.warnings[0]
    # The median sits near the point prediction at the prior medians.
    point = predict_throughput_many(archs, "a100-40gb", wl, n_draws=0)["tokens_per_s"]
    assert np.median(np.abs(np.log(d.median / point))) < 0.1


def test_bandwidth_uncertainty_is_common_mode() -> None:
    # Only the bandwidth efficiency is uncertain (and no structural noise): decode-bound shapes
    # all move together, so the common mode carries almost everything.
    archs = _candidates()
    wl = Workload(64, 4096, 1024)
    p = len(BACKEND_CONSTANTS["vllm"])
    cov = np.zeros((p, p))
    cov[1, 1] = 1.0  # logit sd 1: about 0.2 in log bandwidth at 0.78
    cal = Calibration(
        "a100-40gb",
        "vllm",
        **{**default_calibration("a100-40gb", "vllm").constants},
        rel_sigma=1e-9,
        n_points=5,
        posterior_cov=cov.tolist(),
        workloads=(str(wl),),
    )
    d = throughput_draws(archs, "a100-40gb", wl, cal, n_draws=64, seed=0)
    assert d.structural_sigma == 1e-9 and calibration_warnings(cal, wl) == ()
    assert d.common_sigma > 0.1
    assert np.median(d.shape_sigma) < 0.2 * d.common_sigma


def test_intervals_cover_a_truth_drawn_from_the_prior() -> None:
    # A world whose constants and structural error come from the model's own prior: the 90%
    # intervals of the uncalibrated draws hold the true tokens/s about 90% of the time.
    arch = [LLAMA_1B]
    wl = Workload(64, 4096, 1024)
    hw = get_hardware("a100-40gb")
    d = throughput_draws(arch, hw, wl, n_draws=400, seed=11)
    rng = np.random.default_rng(5)
    truth_consts = _prior_draws("vllm", "gpu", 400, rng, widen=1.0)
    q = arch_arrays(arch, wl.dtype)
    true_tps = (
        64
        * 1024
        / run_times(q, wl, hw, {**default_calibration(hw.id, "vllm").constants, **truth_consts})[
            "total_s"
        ][:, 0]
    )
    true_tps = true_tps * np.exp(d.structural_sigma * rng.standard_normal(400))
    covered = np.mean((true_tps >= d.q05[0]) & (true_tps <= d.q95[0]))
    assert 0.82 <= covered <= 0.97, covered


def test_calibration_warning_when_the_workload_differs(archopt_home) -> None:
    from models.throughput import load_calibration

    cal = load_calibration("a100-40gb", "hf")
    assert calibration_warnings(cal, Workload(1, 128, 256, backend="hf")) == ()
    (note,) = calibration_warnings(cal, Workload(64, 4096, 1024, backend="hf"))
    assert "batch=1,input=128,output=256" in note and "batch=64" in note
    wide = throughput_draws(
        [LLAMA_1B], "a100-40gb", Workload(64, 4096, 1024, backend="hf"), n_draws=8
    )
    assert wide.structural_sigma >= 0.1


def test_old_calibrations_with_overlap_at_the_edge_still_draw() -> None:
    # Files written before posteriors: overlap exactly 0 (CPU) or 1 (GPU), no covariance.
    for overlap in (0.0, 1.0):
        cal = Calibration(
            "a100-40gb",
            "hf",
            0.5,
            0.7,
            3e-4,
            3e-3,
            overlap,
            n_points=3,
            workloads=("batch=1,input=128,output=256,dtype=bfloat16,backend=hf",),
        )
        d = throughput_draws(
            [LLAMA_1B], "a100-40gb", Workload(1, 128, 256, backend="hf"), cal, n_draws=16
        )
        assert np.all(np.isfinite(d.tokens_per_s)) and d.q05[0] < d.q95[0]
    with pytest.raises(ArchoptError, match="backend"):
        throughput_draws([LLAMA_1B], "a100-40gb", Workload(1, 128, 256), cal, n_draws=4)
