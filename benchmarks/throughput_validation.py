"""Validate the HF ``generate`` throughput model on this CPU; write results/throughput_validation.md.


This CPU: >= 12 LLaMA shapes at ~20M non-embedding parameters (vocab 2048, tied), from
   deep-narrow (64 layers) to wide-shallow (2 layers), really run with HF ``generate``
   (:func:`models.measure.measure`, cached in ``$ARCHOPT_HOME/measurements.sqlite``) on two
   workloads. The model is calibrated on held-out data two ways: leave-one-shape-out (fit on all
   records of the other shapes) and a split half (fit on even-ranked shapes, test on the odd
   ones). Reported: Spearman between predicted and measured tokens/s per workload and the median
   absolute relative error of tokens/s, against two baselines computed in the same run: the
   uncalibrated model (documented default constants) and a parameter-count-only model
   (time proportional to params, scale fitted on the same training shapes).

Also timed: :func:`predict_throughput_many` on 10,000 candidate archs against a per-arch loop of
:func:`predict_throughput` (ratio in the same run), both backends, point predictions.

The A100-40GB Morph-1B latencies, the vLLM serving model and the bundled calibration
(``--write-bundled``) are in ``benchmarks/serving_validation.py``.

Usage: ``python benchmarks/throughput_validation.py [--force] [--repeats 3] [--quick] [--out DIR]``.
``--quick`` measures every other shape (8) once each; ``--out`` puts the report and plot
elsewhere than ``results/``. The package is the installed one.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from models.arch import Arch
from models.measure import Measurement, measure
from models.parametrize import SearchSpace, enumerate_archs
from models.throughput import (
    Calibration,
    TimingRecord,
    Workload,
    calibrate,
    default_calibration,
    predict_throughput,
    predict_throughput_many,
)

#: Default report folder: ``results/`` of the checkout this script is in.
RESULTS = Path(__file__).resolve().parents[1] / "results"
CPU_WORKLOADS = {
    "latency (batch 1, 32 in, 32 out)": Workload(1, 32, 32, "bfloat16", backend="hf"),
    "batched (batch 8, 128 in, 16 out)": Workload(8, 128, 16, "bfloat16", backend="hf"),
}
# One torch thread: on a shared 2-core machine a second thread mostly waits on other processes.
THREADS = 1
LAYER_TARGETS = (2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64)
R_CYCLE = (1.0, 2.5, 4.0)


def pick_shapes() -> list[Arch]:
    """16 shapes at 20M +- 3% non-embedding params spanning depth, with varied r and GQA."""
    space = SearchSpace(
        d_model_multiple=64,
        ffn_multiple=64,
        head_dims=(32, 64),
        gqa_groups=(1, 2, 4),
        n_layers_range=(2, 64),
        d_model_range=(128, 2048),
        aspect_range=(2, 1024),
        d_over_sqrt_n_range=(0.02, 0.5),
        r_range=(0.5, 6.0),
    )
    archs = enumerate_archs(2e7, 0.03, space=space, vocab_size=2048, tie_embeddings=True)
    chosen = []
    for i, n_layers in enumerate(LAYER_TARGETS):
        pool = [a for a in archs if a.n_layers == n_layers]
        r_target = R_CYCLE[i % len(R_CYCLE)]
        chosen.append(
            min(
                pool,
                key=lambda a: (
                    abs(math.log(a.mlp_attn_ratio / r_target)),
                    -a.gqa_group * (i % 2),
                    a.d_model,
                ),
            )
        )
    return chosen


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def mdape(pred: np.ndarray, meas: np.ndarray) -> float:
    return float(np.median(np.abs(pred / meas - 1.0)))


def model_tps(recs: list[TimingRecord], hw: str, cal: Calibration) -> np.ndarray:
    return np.array(
        [predict_throughput(r.arch, hw, r.workload, cal, n_draws=0).tokens_per_s for r in recs]
    )


def params_only_tps(train: list[TimingRecord], test: list[TimingRecord]) -> np.ndarray:
    """Baseline: total time = c_w * params * output_len per workload (c_w by log least squares)."""
    out = []
    for rec in test:
        same = [r for r in train if r.workload == rec.workload]
        log_c = np.mean(
            [math.log(r.total_s / (r.arch.params * r.workload.output_len)) for r in same]
        )
        total = math.exp(log_c) * rec.arch.params * rec.workload.output_len
        out.append(rec.workload.batch_size * rec.workload.output_len / total)
    return np.array(out)


def measure_cpu(
    shapes: list[Arch], repeats: int, force: bool
) -> tuple[list[Measurement], int, float]:
    from rich.progress import Progress

    results, fresh, start = [], 0, time.perf_counter()
    with Progress() as progress:
        task = progress.add_task("measuring on cpu", total=len(shapes) * len(CPU_WORKLOADS))
        for arch in shapes:
            for wl in CPU_WORKLOADS.values():
                t0 = time.perf_counter()
                m = measure(arch, wl, repeats=repeats, device="cpu", force=force, threads=THREADS)
                if m.ok and not m.cpu_times_s:  # cached before CPU times were recorded
                    m = measure(
                        arch, wl, repeats=repeats, device="cpu", force=True, threads=THREADS
                    )
                fresh += (time.perf_counter() - t0) > 0.2  # a cache hit takes milliseconds
                if not m.ok:
                    raise SystemExit(f"measurement of {arch.label()} failed: {m.reason}")
                results.append(m)
                progress.advance(task)
    return results, fresh, time.perf_counter() - start


def cpu_validation(measurements: list[Measurement], clock: str) -> dict:
    """Held-out accuracy with the ``clock`` ("wall" or "cpu") times of the measurements."""
    recs = [m.to_timing_record(clock) for m in measurements]
    shapes = sorted({r.arch for r in recs}, key=lambda a: a.n_layers)
    meas = np.array([r.workload.batch_size * r.workload.output_len / r.total_s for r in recs])

    # Leave one shape out: calibrate on every record of the other shapes.
    loo = np.empty(len(recs))
    base_loo = np.empty(len(recs))
    for arch in shapes:
        train = [r for r in recs if r.arch != arch]
        idx = [i for i, r in enumerate(recs) if r.arch == arch]
        cal = calibrate(train, "cpu", "hf")
        loo[idx] = model_tps([recs[i] for i in idx], "cpu", cal)
        base_loo[idx] = params_only_tps(train, [recs[i] for i in idx])
    # Split half: train on even-ranked shapes (by depth), test on odd-ranked ones.
    train_shapes = set(shapes[0::2])
    train = [r for r in recs if r.arch in train_shapes]
    test_idx = [i for i, r in enumerate(recs) if r.arch not in train_shapes]
    half_cal = calibrate(train, "cpu", "hf")
    half = model_tps([recs[i] for i in test_idx], "cpu", half_cal)
    half_base = params_only_tps(train, [recs[i] for i in test_idx])
    default = model_tps(recs, "cpu", default_calibration("cpu", "hf"))  # the prior medians
    full_cal = calibrate(
        recs, "cpu", "hf", source=f"benchmarks/throughput_validation.py (this CPU, {clock} clock)"
    )

    rows = []
    for name, wl in CPU_WORKLOADS.items():
        sel = np.array([r.workload == wl for r in recs])
        sel_half = np.array([recs[i].workload == wl for i in test_idx])
        meas_half = meas[test_idx][sel_half]
        rows.append(
            {
                "workload": name,
                "n": int(sel.sum()),
                "spearman_loo": spearman(loo[sel], meas[sel]),
                "mdape_loo": mdape(loo[sel], meas[sel]),
                "spearman_half": spearman(half[sel_half], meas_half),
                "mdape_half": mdape(half[sel_half], meas_half),
                "spearman_default": spearman(default[sel], meas[sel]),
                "mdape_default": mdape(default[sel], meas[sel]),
                "spearman_params_only": spearman(base_loo[sel], meas[sel]),
                "mdape_params_only": mdape(base_loo[sel], meas[sel]),
                "mdape_params_only_half": mdape(half_base[sel_half], meas_half),
            }
        )
    return {
        "clock": clock,
        "rows": rows,
        "loo": loo,
        "meas": meas,
        "recs": recs,
        "full_cal": full_cal,
        "half_cal": half_cal,
        "overall_mdape_loo": mdape(loo, meas),
        "overall_mdape_half": mdape(half, meas[test_idx]),
        "overall_mdape_params_only": mdape(base_loo, meas),
    }


def vectorized_timing() -> dict:
    t0 = time.perf_counter()
    archs = enumerate_archs(1e9)
    enum_s = time.perf_counter() - t0
    n_candidates = len(archs)
    archs = (archs * (10000 // len(archs) + 1))[:10000]
    out = {"n": len(archs), "enum_s": enum_s, "n_candidates": n_candidates}
    for backend in ("hf", "vllm"):
        wl = Workload(64, 4096, 1024, backend=backend)
        cal = default_calibration("h100-sxm", backend)
        t0 = time.perf_counter()
        predict_throughput_many(archs, "h100-sxm", wl, cal, n_draws=0)
        many_s = time.perf_counter() - t0
        sample = archs[:500]
        t0 = time.perf_counter()
        for a in sample:
            predict_throughput(a, "h100-sxm", wl, cal, n_draws=0)
        out[backend] = {
            "many_s": many_s,
            "loop_s": (time.perf_counter() - t0) * len(archs) / len(sample),
        }
    return out


def plot(cpu: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 1, figsize=(6.2, 4.6))
    for name, wl in CPU_WORKLOADS.items():
        sel = np.array([r.workload == wl for r in cpu["recs"]])
        layers = np.array([r.arch.n_layers for r in cpu["recs"]])[sel]
        sc = ax.scatter(
            cpu["meas"][sel],
            cpu["loo"][sel],
            c=np.log2(layers),
            cmap="viridis",
            marker="o" if wl.batch_size == 1 else "s",
            label=name,
        )
    lo = min(cpu["meas"].min(), cpu["loo"].min()) * 0.8
    hi = max(cpu["meas"].max(), cpu["loo"].max()) * 1.2
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="measured tokens/s",
        ylabel="predicted tokens/s (leave-one-shape-out)",
        title=f"This CPU, ~20M-param shapes, HF generate ({cpu['clock']} time)",
    )
    from matplotlib.ticker import NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    fig.colorbar(sc, ax=ax, label="log2(n_layers)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(shapes, cpu, wall, fresh, cpu_s, timing, repeats, quick=False) -> str:
    command = "python benchmarks/throughput_validation.py" + (" --quick" if quick else "")
    lines = [
        "# Throughput model validation",
        "",
        f"Generated by `{command}` (repeats={repeats}); plot: "
        "`throughput_validation.png` beside this report. Timings on a shared 2-vCPU machine "
        "are noisy.",
        "",
        "## This CPU: real HF `generate` vs the model",
        "",
        f"{len(shapes)} shapes at 20M +- 3% non-embedding params (vocab 2048, tied, bfloat16), "
        f"{len(cpu['recs'])} measurements ({fresh} run now, the rest from the measurement cache; "
        f"{cpu_s:.0f} s). Each measurement: one warm-up, then the median of {repeats} runs, "
        f"torch with {THREADS} thread(s).",
        "",
        "| shape | n_layers | d_model | r | gqa | "
        + " | ".join(f"{k} tok/s" for k in CPU_WORKLOADS)
        + " |",
        "| --- | --- | --- | --- | --- | " + " | ".join("---" for _ in CPU_WORKLOADS) + " |",
    ]
    meas_by = {(r.arch, r.workload): t for r, t in zip(cpu["recs"], cpu["meas"])}
    wall_by = {(r.arch, r.workload): t for r, t in zip(wall["recs"], wall["meas"])}
    for a in shapes:
        vals = " | ".join(
            f"{meas_by[(a, wl)]:.1f} ({wall_by[(a, wl)]:.1f})" for wl in CPU_WORKLOADS.values()
        )
        lines.append(
            f"| {a.label()} | {a.n_layers} | {a.d_model} | {a.mlp_attn_ratio:.2f} | {a.gqa_group} | {vals} |"
        )
    lines += [
        "",
        "Tokens/s from process CPU time, wall-clock in parentheses. Other engineers' jobs share "
        "the two cores, so wall time includes waiting for a core (up to several x, varying run to "
        "run); the process CPU time of a one-thread run is what the wall time would be on an idle "
        "machine. Both are reported below.",
        "",
        "Held-out accuracy of tokens/s (Spearman between predicted and measured across shapes; "
        "MdAPE = median absolute relative error). *LOO*: calibrated on all records of the other "
        f"{len(shapes) - 1} shapes. *half*: calibrated on the {(len(shapes) + 1) // 2} even-ranked "
        f"shapes (by depth), tested on the {len(shapes) // 2} others. "
        "Baselines in the same run: the *default* (uncalibrated) constants, and a *params-only* model "
        "(time proportional to parameter count, scale fitted on the same training shapes).",
        "",
    ]
    for res in (cpu, wall):
        lines += [
            f"**{res['clock']} clock**",
            "",
            "| workload | n | Spearman LOO | MdAPE LOO | Spearman half | MdAPE half | Spearman default | "
            "MdAPE default | Spearman params-only | MdAPE params-only LOO |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in res["rows"]:
            lines.append(
                f"| {r['workload']} | {r['n']} | {r['spearman_loo']:.3f} | {r['mdape_loo']:.1%} | "
                f"{r['spearman_half']:.3f} | {r['mdape_half']:.1%} | {r['spearman_default']:.3f} | "
                f"{r['mdape_default']:.1%} | {r['spearman_params_only']:.3f} | {r['mdape_params_only']:.1%} |"
            )
        lines += [
            "",
            f"All workloads: MdAPE LOO {res['overall_mdape_loo']:.1%}, split half "
            f"{res['overall_mdape_half']:.1%}; params-only baseline {res['overall_mdape_params_only']:.1%} "
            f"(ratio model/baseline {res['overall_mdape_loo'] / res['overall_mdape_params_only']:.2f}).",
            "",
        ]
    fc = cpu["full_cal"]
    lines += [
        "Targets: Spearman >= 0.9, MdAPE <= 15%.",
        "",
        f"Constants fitted on all CPU-time records: flops_efficiency {fc.flops_efficiency:.3f}, "
        f"bandwidth_efficiency {fc.bandwidth_efficiency:.3f}, layer_overhead {1e3 * fc.layer_overhead_s:.3f} ms, "
        f"step_overhead {1e3 * fc.step_overhead_s:.3f} ms, overhead_overlap {fc.overhead_overlap:.2f}, "
        f"token_layer {1e6 * fc.token_layer_s:.2f} us, "
        f"rel_sigma (LOO RMS log error) {fc.rel_sigma:.3f}. Not bundled (machine-specific): "
        "`archopt calibrate --hardware cpu` fits the same from the cache into $ARCHOPT_HOME. "
        "The A100-40GB Morph-1B latencies and the vLLM serving model: `serving_validation.md`.",
        "",
        "## Vectorized prediction",
        "",
        f"`predict_throughput_many` on {timing['n']:,} archs (1B candidates, batch 64, 4096 in / 1024 out, "
        "point predictions): "
        + "; ".join(
            f"{b} {timing[b]['many_s'] * 1e3:.0f} ms against a per-arch `predict_throughput` loop "
            f"(extrapolated from 500) of {timing[b]['loop_s'] * 1e3:.0f} ms, "
            f"{timing[b]['loop_s'] / timing[b]['many_s']:.1f}x"
            for b in ("hf", "vllm")
        )
        + f". `enumerate_archs(1e9)` (default search space): {timing['n_candidates']:,} candidates in "
        f"{timing['enum_s'] * 1e3:.0f} ms.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--repeats", type=int, default=None, help="runs per measurement (default 3)"
    )
    parser.add_argument("--force", action="store_true", help="re-measure even if cached")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="every other shape (8), one repeat each (unless --repeats is given)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS,
        help="folder for throughput_validation.md/.png (default: results/)",
    )
    args = parser.parse_args(argv)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)

    shapes = pick_shapes()
    if args.quick:
        shapes = shapes[::2]
    measurements, fresh, cpu_s = measure_cpu(shapes, repeats, args.force)
    cpu = cpu_validation(measurements, "cpu")
    wall = cpu_validation(measurements, "wall")
    timing = vectorized_timing()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    plot(cpu, out / "throughput_validation.png")
    text = report(shapes, cpu, wall, fresh, cpu_s, timing, repeats, args.quick)
    (out / "throughput_validation.md").write_text(text)
    for r in cpu["rows"] + wall["rows"]:
        print(
            f"{'cpu-time' if r in cpu['rows'] else 'wall-time'} {r['workload']}: Spearman LOO {r['spearman_loo']:.3f} (half {r['spearman_half']:.3f}, "
            f"default {r['spearman_default']:.3f}, params-only {r['spearman_params_only']:.3f}); "
            f"MdAPE LOO {r['mdape_loo']:.1%} (half {r['mdape_half']:.1%}, default {r['mdape_default']:.1%}, "
            f"params-only {r['mdape_params_only']:.1%})"
        )
    for b in ("hf", "vllm"):
        print(
            f"predict_throughput_many ({b}): {timing['n']} archs in {timing[b]['many_s'] * 1e3:.0f} ms "
            f"({timing[b]['loop_s'] / timing[b]['many_s']:.1f}x a loop)"
        )
    print(f"wrote {out / 'throughput_validation.md'}")


if __name__ == "__main__":
    main()
