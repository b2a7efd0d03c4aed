"""Validate the serving throughput model; write results/serving_validation.{md,json,png}.

Four parts, all predictions (no GPU here):

1. **The paper's workload** (arXiv 2510.18245: vLLM on an A100-40GB, batch 64, 4,096 input and
   1,024 output tokens): predicted output tokens/s of LLaMA-3.2-1B/3B and the paper's Surefire
   and Panda shapes (``surrogate/data/reference_architectures.csv``) under the default backend
   (vLLM), with 90% bands from the joint draws, and the Surefire/LLaMA speed-ups per draw (the
   common mode cancels in a ratio). The bundled data give only the paper's headline, "up to 42%
   faster than LLaMA-3.2" (``surrogate/data/README.md``), not a number per model: both ratios
   are compared with that maximum. The same under ``hf`` for contrast.
2. **Morph-1B latencies under hf** (``surrogate/data/reference_latency.csv``, real A100-40GB HF
   ``generate``, batch 1): calibrate on two rows, predict the third, and whether the measured
   latency falls in the held-out 90% band. ``--write-bundled`` stores the fit on all three rows
   in ``models/data/calibrations.json``.
3. **The roofline property**: random shapes, workloads, hardware, ``tp`` and backends, with
   constants drawn from twice-widened priors: no prediction may exceed
   :func:`models.serving.roofline_bound`.
4. **Tensor parallelism**: LLaMA-3.1-8B and a LLaMA-3.1-70B shape on H100 SXM at tp 1-8.

Usage: ``python benchmarks/serving_validation.py [--write-bundled] [--out DIR] [--quick]``.
The package is the installed one.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from models.arch import Arch
from models.backends import run_times
from models.calibration import PRIOR_RANGES, from_theta, prior_center_sd
from models.hardware import BUILTIN_HARDWARE, get_hardware
from models.parametrize import enumerate_archs
from models.roofline import arch_arrays
from models.serving import roofline_bound
from models.throughput import (
    BUNDLED_CALIBRATIONS,
    Workload,
    calibrate,
    default_calibration,
    load_calibration,
    predict_throughput,
    predict_throughput_many,
    save_calibration,
)
from models.uncertainty import constant_draws, throughput_draws
from surrogate.runs import bundled_path, reference_architectures

RESULTS = Path(__file__).resolve().parents[1] / "results"
PAPER_WORKLOAD = dict(batch_size=64, input_len=4096, output_len=1024)
PAPER_MAX_SPEEDUP = 1.42  # "up to 42% greater inference throughput" (surrogate/data/README.md)
REFERENCES = ("Llama-3.2-1B", "Surefire-1B", "Panda-1B", "Llama-3.2-3B", "Surefire-3B", "Panda-3B")
PAIRS = (
    ("Surefire-1B", "Llama-3.2-1B"),
    ("Surefire-3B", "Llama-3.2-3B"),
    ("Panda-1B", "Llama-3.2-1B"),
    ("Panda-3B", "Llama-3.2-3B"),
)
#: The demo's 1.45x shape of the issue (hf era), d3072-L8-h48/6x64-f11264.
DEMO_SHAPE = Arch(3072, 8, 48, 6, 64, 11264, 128256, True)
#: Meta Llama-3.1-70B config.json: hidden 8192, 80 layers, 64 heads, 8 KV heads, 28,672, untied.
LLAMA_70B = Arch(8192, 80, 64, 8, 128, 28672, 128256, False)
N_DRAWS = 256


def paper_workload() -> dict:
    refs = reference_architectures().set_index("name")
    archs = {name: Arch.from_mapping(refs.loc[name]) for name in REFERENCES}
    archs["demo d3072-L8"] = DEMO_SHAPE
    names = list(archs)
    out = {}
    for backend in ("vllm", "hf"):
        wl = Workload(**PAPER_WORKLOAD, backend=backend)
        cal = load_calibration("a100-40gb", backend)
        d = throughput_draws(
            [archs[n] for n in names], "a100-40gb", wl, cal, n_draws=N_DRAWS, seed=0
        )
        point = predict_throughput_many([archs[n] for n in names], "a100-40gb", wl, cal, n_draws=0)
        q = arch_arrays([archs[n] for n in names], wl.dtype)
        bound = roofline_bound(q, wl, get_hardware("a100-40gb"))
        # The constants' uncertainty alone (no per-shape structural error).
        consts = constant_draws(cal, N_DRAWS, np.random.default_rng(1))
        only = 1.0 / run_times(q, wl, get_hardware("a100-40gb"), consts)["total_s"]
        rows = []
        for j, name in enumerate(names):
            rows.append(
                {
                    "name": name,
                    "label": archs[name].label(),
                    "tokens_per_s": float(point["tokens_per_s"][j]),
                    "median": float(d.median[j]),
                    "q05": float(d.q05[j]),
                    "q95": float(d.q95[j]),
                    "concurrency": float(point["concurrency"][j]),
                    "kv_cache_tokens": float(point["kv_cache_tokens"][j]),
                    "ttft_s": float(point["ttft_s"][j]),
                    "tpot_ms": 1e3 * float(point["tpot_s"][j]),
                    "servable": bool(point["servable"][j]),
                    "bound_tokens_per_s": float(bound["max_tokens_per_s"][j]),
                }
            )
        ratios = []
        for a, b in PAIRS + (("demo d3072-L8", "Llama-3.2-1B"),):
            r = d.tokens_per_s[:, names.index(a)] / d.tokens_per_s[:, names.index(b)]
            ratios.append(
                {
                    "pair": f"{a} / {b}",
                    "point": rows[names.index(a)]["tokens_per_s"]
                    / rows[names.index(b)]["tokens_per_s"],
                    "median": float(np.median(r)),
                    "q05": float(np.quantile(r, 0.05)),
                    "q95": float(np.quantile(r, 0.95)),
                    "p_above_paper_max": float(np.mean(r > PAPER_MAX_SPEEDUP)),
                    "constants_only": [
                        float(np.quantile(c, k))
                        for k in (0.05, 0.95)
                        for c in [only[:, names.index(a)] / only[:, names.index(b)]]
                    ],
                }
            )
        out[backend] = {
            "rows": rows,
            "ratios": ratios,
            "calibration": cal.source,
            "common_sigma": d.common_sigma,
            "warnings": list(d.warnings),
        }
    return out


def morph_leave_one_out(write_bundled: bool) -> dict:
    with open(bundled_path("reference_latency.csv")) as fh:
        rows = list(csv.DictReader(fh))
    prior = default_calibration("a100-40gb", "hf")
    out = []
    for i, row in enumerate(rows):
        cal = calibrate(rows[:i] + rows[i + 1 :], "a100-40gb", "hf", prior=prior)
        wl = Workload(
            int(row["batch_size"]),
            int(row["input_tokens"]),
            int(row["output_tokens"]),
            backend="hf",
        )
        arch = Arch.from_mapping(row)
        pred = predict_throughput(arch, "a100-40gb", wl, cal, n_draws=0).total_s
        d = throughput_draws([arch], "a100-40gb", wl, cal, n_draws=N_DRAWS, seed=i)
        tokens = wl.num_requests * wl.output_len
        lo, hi = tokens / d.q95[0], tokens / d.q05[0]  # seconds: the band of total time
        measured = float(row["latency_s"])
        uncal = predict_throughput(arch, "a100-40gb", wl, prior, n_draws=0).total_s
        out.append(
            {
                "held_out": row["name"],
                "n_layers": arch.n_layers,
                "measured_s": measured,
                "predicted_s": pred,
                "rel_error": pred / measured - 1,
                "band_s": [lo, hi],
                "in_band": bool(lo <= measured <= hi),
                "uncalibrated_s": uncal,
                "uncalibrated_rel_error": uncal / measured - 1,
                "layer_overhead_ms": 1e3 * cal.layer_overhead_s,
                "step_overhead_ms": 1e3 * cal.step_overhead_s,
            }
        )
    full = calibrate(
        rows,
        "a100-40gb",
        "hf",
        prior=prior,
        source=(
            "surrogate/data/reference_latency.csv: Morph-1B, -v1, -v2 (arXiv 2501.18107 Table 2), "
            "A100-40GB HF generate, batch 1, 128 in / 256 out, bfloat16; "
            "benchmarks/serving_validation.py --write-bundled"
        ),
    )
    if write_bundled:
        save_calibration(full, BUNDLED_CALIBRATIONS)
        Path(str(BUNDLED_CALIBRATIONS) + ".lock").unlink(missing_ok=True)
    return {
        "rows": out,
        "full": full.to_dict(),
        "rms_log_error": float(np.sqrt(np.mean([np.log1p(r["rel_error"]) ** 2 for r in out]))),
    }


def roofline_property(n_cases: int, seed: int = 7) -> dict:
    rng = np.random.default_rng(seed)
    gpus = [h for h in BUILTIN_HARDWARE if h != "cpu"]
    ratios, violations, n = [], 0, 0
    for _ in range(n_cases):
        archs = [
            Arch(
                int(rng.integers(2, 65)) * 128,
                int(rng.integers(1, 81)),
                *(lambda kv: (kv * int(rng.choice([1, 2, 4, 8])), kv))(
                    int(rng.choice([1, 2, 4, 8]))
                ),
                int(rng.choice([64, 128])),
                int(rng.integers(1, 200)) * 256,
                int(rng.choice([32000, 128256])),
                bool(rng.integers(2)),
            )
            for _ in range(8)
        ]
        backend = str(rng.choice(["vllm", "hf"]))
        batch = int(rng.choice([1, 8, 64, 256]))
        wl = Workload(
            batch,
            int(rng.choice([16, 512, 4096, 16384])),
            int(rng.choice([1, 64, 1024])),
            backend=backend,
            num_requests=batch * int(rng.choice([1, 4])),
            tp=int(rng.choice([1, 2, 4, 8])) if backend == "vllm" else 1,
        )
        hw = get_hardware(str(rng.choice(gpus)))
        consts = {}
        for name in PRIOR_RANGES[(backend, "gpu")]:
            mu, sd = prior_center_sd(backend, "gpu", name)
            consts[name] = from_theta(name, rng.normal(mu, 2 * sd, size=(32, 1)))
        q = arch_arrays(archs, wl.dtype)
        tps = wl.num_requests * wl.output_len / run_times(q, wl, hw, consts)["total_s"]
        r = tps / roofline_bound(q, wl, hw)["max_tokens_per_s"]
        violations += int((r > 1 + 1e-9).sum())
        n += r.size
        ratios.append(r.ravel())
    ratios = np.concatenate(ratios)
    return {
        "cases": n_cases,
        "predictions": n,
        "violations": violations,
        "max_ratio": float(ratios.max()),
        "median_ratio": float(np.median(ratios)),
        "q95_ratio": float(np.quantile(ratios, 0.95)),
        "ratios": ratios,
    }


def tensor_parallel() -> list[dict]:
    refs = reference_architectures().set_index("name")
    shapes = {
        "Llama-3.1-8B": Arch.from_mapping(refs.loc["Llama-3.1-8B"]),
        "Llama-3.1-70B": LLAMA_70B,
    }
    out = []
    for name, arch in shapes.items():
        for tp in (1, 2, 4, 8):
            wl = Workload(**PAPER_WORKLOAD, tp=tp)
            p = predict_throughput(arch, "h100-sxm", wl)
            out.append(
                {
                    "name": name,
                    "tp": tp,
                    "servable": p.servable,
                    "reason": p.unservable_reason,
                    "tokens_per_s": p.tokens_per_s,
                    "q05": p.tokens_per_s_q05,
                    "q95": p.tokens_per_s_q95,
                    "tokens_per_s_per_gpu": p.tokens_per_s / tp,
                    "concurrency": p.concurrency,
                    "memory_gb_per_gpu": p.memory_bytes / 1e9,
                    "tpot_ms": 1e3 * p.tpot_s,
                }
            )
    return out


def timing() -> dict:
    archs = enumerate_archs(1e9)
    out = {"n": len(archs)}
    for backend in ("vllm", "hf"):
        wl = Workload(**PAPER_WORKLOAD, backend=backend)
        t0 = time.perf_counter()
        throughput_draws(archs, "a100-40gb", wl, n_draws=64)
        out[backend] = time.perf_counter() - t0
    return out


def plot(paper: dict, prop: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    ax = axes[0]
    rows = paper["vllm"]["rows"]
    x = np.arange(len(rows))
    for k, (backend, color) in enumerate((("vllm", "C0"), ("hf", "C1"))):
        r = paper[backend]["rows"]
        med = np.array([v["median"] for v in r])
        err = np.array([[v["median"] - v["q05"] for v in r], [v["q95"] - v["median"] for v in r]])
        ax.bar(
            x + (k - 0.5) * 0.38,
            med,
            0.38,
            yerr=err,
            capsize=3,
            color=color,
            label=f"{backend} (90% band)",
        )
    ax.set_xticks(x, [v["name"] for v in rows], rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="predicted output tokens/s", title="A100-40GB, 64 x (4096 in, 1024 out)")
    ax.legend(fontsize=8)
    ax = axes[1]
    ratios = paper["vllm"]["ratios"]
    y = np.arange(len(ratios))
    for k, (backend, color) in enumerate((("vllm", "C0"), ("hf", "C1"))):
        r = paper[backend]["ratios"]
        med = np.array([v["median"] for v in r])
        err = np.array([[v["median"] - v["q05"] for v in r], [v["q95"] - v["median"] for v in r]])
        ax.errorbar(
            med, y + (k - 0.5) * 0.25, xerr=err, fmt="o", color=color, capsize=3, label=backend
        )
    ax.axvline(PAPER_MAX_SPEEDUP, color="k", ls="--", lw=1, label="paper: up to 1.42x")
    ax.axvline(1.0, color="grey", lw=0.5)
    ax.set_yticks(y, [v["pair"] for v in ratios], fontsize=8)
    ax.set(xlabel="predicted speed-up (joint draws, 90%)", title="Speed-up over LLaMA-3.2")
    ax.legend(fontsize=8)
    ax = axes[2]
    ax.hist(prop["ratios"], bins=60, color="C2")
    ax.axvline(1.0, color="k", ls="--")
    ax.set(
        xlabel="predicted / roofline bound",
        ylabel="predictions",
        title=f"{prop['predictions']:,} random predictions, {prop['violations']} above the bound",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _clean(obj):
    """JSON-safe: numpy scalars to Python, non-finite numbers to null."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, (np.integer, np.bool_)):
        return obj.item()
    return obj


def _f(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


def report(paper: dict, morph: dict, prop: dict, tp: list[dict], times: dict, command: str) -> str:
    lines = [
        "# Serving throughput model validation",
        "",
        f"Generated by `{command}`; plot `serving_validation.png`, numbers `serving_validation.json` "
        "beside this report. Everything here is a model prediction except the Morph-1B latencies "
        "(published measurements); no GPU was available.",
        "",
        "## 1. The paper's workload: A100-40GB, batch 64, 4,096 in, 1,024 out",
        "",
    ]
    for backend in ("vllm", "hf"):
        p = paper[backend]
        lines += [
            f"**{backend}** ({'default backend' if backend == 'vllm' else 'HF generate, for contrast'}; "
            f"calibration: {p['calibration']}; common-mode log sd {p['common_sigma']:.3f})",
            "",
            "| model | shape | tokens/s (point) | median [90% band] | concurrency | KV cache tokens | TTFT s | TPOT ms | roofline bound |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in p["rows"]:
            kv = "-" if not np.isfinite(r["kv_cache_tokens"]) else _f(r["kv_cache_tokens"])
            lines.append(
                f"| {r['name']} | {r['label']} | {_f(r['tokens_per_s'])} | {_f(r['median'])} "
                f"[{_f(r['q05'])}, {_f(r['q95'])}] | {r['concurrency']:.0f} | {kv} | "
                f"{r['ttft_s']:.2f} | {r['tpot_ms']:.1f} | {_f(r['bound_tokens_per_s'])} |"
            )
        lines += [
            "",
            "| speed-up | point | median [90% band] over joint draws | P(> 1.42) | 90% band, constants only |",
            "| --- | --- | --- | --- | --- |",
        ]
        for r in p["ratios"]:
            c = r["constants_only"]
            lines.append(
                f"| {r['pair']} | {r['point']:.2f}x | {r['median']:.2f}x [{r['q05']:.2f}, {r['q95']:.2f}] | "
                f"{r['p_above_paper_max']:.2f} | [{c[0]:.2f}, {c[1]:.2f}] |"
            )
        lines += [""] + [f"Warning: {w}" for w in p["warnings"]] + [""]
    v = {r["pair"]: r for r in paper["vllm"]["ratios"]}
    s1, s3 = v["Surefire-1B / Llama-3.2-1B"], v["Surefire-3B / Llama-3.2-3B"]
    lines += [
        "Compared with arXiv 2510.18245: the bundled data (`surrogate/data/README.md`) give only the "
        'paper\'s headline, Surefire "up to 42%" faster than LLaMA-3.2 under vLLM at this workload, not '
        "a number per model. Under the default vLLM model Surefire-1B/LLaMA-3.2-1B is predicted at "
        f"{s1['point']:.2f}x (90% band {s1['q05']:.2f}-{s1['q95']:.2f}), consistent with that maximum; "
        f"Surefire-3B/LLaMA-3.2-3B at {s3['point']:.2f}x ({s3['q05']:.2f}-{s3['q95']:.2f}). If the 1.42x "
        "was the 3B pair, the model misses it by about "
        f"{(PAPER_MAX_SPEEDUP / s3['point'] - 1):.0%} there: at 3B the KV cache limits LLaMA-3.2-3B to "
        "fewer than 64 concurrent sequences on 40 GB and Surefire-3B (GQA 7) to about 60, so the "
        "prediction hinges on the uncertain non-KV memory (`runtime_memory_bytes`), which the "
        "band includes. The hf backend (static batches, no paged KV) predicts far smaller gains, as "
        "the issue measured for the old default.",
        "",
        "The speed-up bands are wide mostly because of the per-shape structural error the model "
        "assumes while uncalibrated (10% in log time per shape, independent between shapes); the "
        "constants' uncertainty alone (last column) moves both shapes together and leaves a much "
        "narrower band: the common mode cancels in a ratio.",
        "",
        "## 2. Morph-1B latencies, HF generate, batch 1, 128 in / 256 out (leave one out)",
        "",
        "Calibrated on two rows with the documented priors, the third predicted; band: 90% of the "
        "held-out calibration's draws (posterior constants + per-shape error).",
        "",
        "| held out | n_layers | measured s | predicted s | error | 90% band s | in band | uncalibrated s | fitted layer ms | fitted step ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in morph["rows"]:
        lines.append(
            f"| {r['held_out']} | {r['n_layers']} | {r['measured_s']:.2f} | {r['predicted_s']:.2f} | "
            f"{r['rel_error']:+.1%} | {r['band_s'][0]:.2f}-{r['band_s'][1]:.2f} | {r['in_band']} | "
            f"{r['uncalibrated_s']:.2f} ({r['uncalibrated_rel_error']:+.0%}) | {r['layer_overhead_ms']:.3f} | "
            f"{r['step_overhead_ms']:.3f} |"
        )
    f = morph["full"]
    lines += [
        "",
        f"RMS held-out log error {morph['rms_log_error']:.3f}. Bundled calibration (all three rows): "
        f"layer overhead {1e3 * f['layer_overhead_s']:.3f} ms, step overhead {1e3 * f['step_overhead_s']:.3f} ms, "
        f"overlap {f['overhead_overlap']:.3f}, rel_sigma {f['rel_sigma']:.3f}; the FLOP and bandwidth "
        "efficiencies keep their prior width (batch-1 decode cannot identify them), so predictions at "
        "batch 64 carry the warning that the calibration's workload differs.",
        "",
        "## 3. The roofline property",
        "",
        f"{prop['cases']} random cases x 8 shapes x 32 constant draws from twice-widened priors "
        f"(random GPU, backend, batch, lengths, requests, tp): {prop['predictions']:,} predictions, "
        f"**{prop['violations']} above the bound** (max predicted/bound {prop['max_ratio']:.3f}, median "
        f"{prop['median_ratio']:.3f}, 95th percentile {prop['q95_ratio']:.3f}). The bound prices every "
        "FLOP and byte the run must move at peak rate with no overhead (`models.serving.roofline_bound`).",
        "",
        "## 4. Tensor parallelism on H100 SXM (vLLM, batch 64, 4,096 in, 1,024 out)",
        "",
        "| model | tp | servable | tokens/s [90%] | tokens/s per GPU | concurrency | GB per GPU | TPOT ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in tp:
        if r["servable"]:
            lines.append(
                f"| {r['name']} | {r['tp']} | yes | {_f(r['tokens_per_s'])} [{_f(r['q05'])}, {_f(r['q95'])}] | "
                f"{_f(r['tokens_per_s_per_gpu'])} | {r['concurrency']:.0f} | {r['memory_gb_per_gpu']:.1f} | {r['tpot_ms']:.1f} |"
            )
        else:
            lines.append(f"| {r['name']} | {r['tp']} | no: {r['reason']} | - | - | - | - | - |")
    lines += [
        "",
        f"Draws for all {times['n']:,} candidates of the 1B campaign (64 draws): vLLM "
        f"{times['vllm']:.2f} s, hf {times['hf']:.2f} s on this machine.",
        "",
        "## Where the model misses or cannot be checked",
        "",
        "- No vLLM measurement exists here: the vLLM constants are the documented priors "
        "(`models/calibration.py`), so absolute tokens/s carry a wide common-mode band and every "
        "shape an assumed 10% structural error. Import `vllm bench` results (`archopt measure --import`) and "
        "`archopt calibrate` to narrow them.",
        "- Concurrency counts each sequence at its full length and ignores preemption; with the KV "
        "cache nearly full (the 3B shapes here) the real scheduler admits a few more sequences.",
        "- TTFT follows `vllm bench serve --max-concurrency batch` semantics; `vllm bench throughput` "
        "reports no TTFT.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--write-bundled",
        action="store_true",
        help="store the A100-40GB/hf calibration in models/data/calibrations.json",
    )
    parser.add_argument("--quick", action="store_true", help="fewer roofline cases (100)")
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="report folder (default: results/)"
    )
    args = parser.parse_args(argv)
    command = "python benchmarks/serving_validation.py" + (" --quick" if args.quick else "")
    morph = morph_leave_one_out(args.write_bundled)  # first: part 1 reads the bundled calibration
    paper = paper_workload()
    prop = roofline_property(100 if args.quick else 500)
    tp = tensor_parallel()
    times = timing()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    plot(paper, prop, out / "serving_validation.png")
    (out / "serving_validation.md").write_text(report(paper, morph, prop, tp, times, command))
    payload = {
        "paper_workload": paper,
        "morph_leave_one_out": morph,
        "roofline_property": {k: v for k, v in prop.items() if k != "ratios"},
        "tensor_parallel": tp,
        "timing_s": times,
        "paper_max_speedup": PAPER_MAX_SPEEDUP,
    }
    (out / "serving_validation.json").write_text(json.dumps(_clean(payload), indent=2) + "\n")
    for backend in ("vllm", "hf"):
        for r in paper[backend]["ratios"][:2]:
            print(
                f"{backend} {r['pair']}: {r['point']:.2f}x (90% {r['q05']:.2f}-{r['q95']:.2f}; paper up to 1.42x)"
            )
    for r in morph["rows"]:
        print(
            f"hf Morph held out {r['held_out']}: {r['predicted_s']:.2f} s vs {r['measured_s']:.2f} s "
            f"({r['rel_error']:+.1%}, in 90% band: {r['in_band']})"
        )
    print(
        f"roofline: {prop['violations']} of {prop['predictions']} predictions above the bound "
        f"(max ratio {prop['max_ratio']:.3f})"
    )
    print(f"wrote {out / 'serving_validation.md'}")


if __name__ == "__main__":
    main()
