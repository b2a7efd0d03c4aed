"""The benchmark's report: PNG plots and the Markdown write-up of a :class:`~.result.BenchResult`.

Prose and plots live here, apart from the runner (:mod:`.run`), which only computes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .config import DEV_FIRST_SEED, HV_TARGET, KNOWN_LOSS, BenchConfig
from .result import BenchResult, json_default

__all__ = ["write_report", "summary_table"]

_COLORS = {
    "archopt": "#1f77b4",
    "plain_qnehvi": "#ff7f0e",
    "algorithm1": "#2ca02c",
    "random": "#7f7f7f",
}
#: What each world kind is, in one line (the report and the summary table say it).
KIND_LABELS: dict[str, str] = {
    "held_out_source": "held-out source (law fitted on a table the prior never saw)",
    "real_shapes": "real shapes (Gemstones per-shape losses, no law)",
    "shifted": "shifted (another law family)",
    "matched": "matched (drawn from archopt's prior: an upper bound)",
}


def _plot_hv(world: Mapping[str, Any], kind: str, budget: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, m in world["methods"].items():
        t = np.asarray(m["trainings"])
        mean, half = np.asarray(m["hv_ratio_mean"]), np.asarray(m["hv_ratio_ci95_half"])
        keep = t > 0  # the log axis starts at the first training (HV is 0 before it)
        t, mean, half = t[keep], mean[keep], half[keep]
        color = _COLORS.get(name)
        ax.plot(t, mean, marker="o", ms=3, label=name, color=color)
        ax.fill_between(
            t, np.clip(mean - half, 0, 1), np.clip(mean + half, 0, 1), alpha=0.2, color=color
        )
    ax.axhline(HV_TARGET, color="k", ls="--", lw=0.8, label="95% of true HV")
    ax.axvline(budget, color="k", ls=":", lw=0.8)
    ax.set_xlabel("trainings (incl. the first batch; log scale)")
    ax.set_ylabel("HV of trained archs / true HV")
    ax.set_title(
        f"{KIND_LABELS.get(kind, kind)}\n(mean, 95% CI; a seed keeps its last value "
        "after it stops at 95%)",
        fontsize=9,
    )
    ax.set_ylim(0, 1.02)
    ax.set_xscale("log")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_paired(result: BenchResult, path: Path) -> None:
    """Paired archopt - plain qNEHVI HV difference at the budget, one bar per world, 95% CI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k, w in result.worlds.items() if w.get("paired_vs_plain_qnehvi")]
    if not kinds:
        return
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for j, kind in enumerate(kinds):
        p = result.worlds[kind]["paired_vs_plain_qnehvi"]
        lo, hi = p["hv_diff_ci95"]
        ax.errorbar(
            [j],
            [p["hv_diff_mean"]],
            yerr=[[p["hv_diff_mean"] - lo], [hi - p["hv_diff_mean"]]],
            fmt="o",
            capsize=5,
            color=_COLORS["archopt"],
        )
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xticks(range(len(kinds)), kinds, fontsize=8)
    ax.set_ylabel(f"HV ratio at {result.config.budget} trainings,\narchopt - plain qNEHVI")
    ax.set_title(f"Paired over {result.config.seeds} seeds (mean, 95% CI)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_t95(result: BenchResult, path: Path) -> None:
    """Median trainings-to-95% per method and world (censored medians drawn hatched at the cap)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(result.worlds)
    names = list(result.worlds[kinds[0]]["methods"])
    width = 0.8 / len(names)
    cap = result.setup.get("max_trainings", 0)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for j, name in enumerate(names):
        for i, kind in enumerate(kinds):
            v = result.worlds[kind]["methods"][name]["trainings_to_95"]
            ax.bar(
                i + j * width,
                v if v is not None else cap,
                width,
                color=_COLORS.get(name),
                hatch=None if v is not None else "//",
                label=name if i == 0 else None,
            )
    ax.set_xticks(np.arange(len(kinds)) + width * (len(names) - 1) / 2, kinds, fontsize=8)
    ax.set_ylabel("median trainings to 95% of true HV\n(hatched: censored at the cap)")
    ax.set_yscale("log")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_real_data(real: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = [str(k) for k in real["ks"]]
    overall = real["overall"]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    width = 0.27
    for j, name in enumerate(("archopt", "algorithm1", "chance")):
        vals = [overall[name][k] or 0.0 for k in ks]
        ax.bar(
            np.arange(len(ks)) + j * width,
            vals,
            width,
            label=name,
            color=_COLORS.get(name, "#cccccc"),
        )
    ax.set_xticks(np.arange(len(ks)) + width, [f"top-{k}" for k in ks])
    ax.set_ylabel("held-out best shape found")
    ax.set_ylim(0, 1)
    ax.set_title(f"Leave-one-size-out on real tables ({overall['cases']} cases)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(result: BenchResult, out_dir: str | Path) -> Path:
    """Write ``results.json``, ``report.md`` and the PNG plots into ``out_dir``.

    Returns:
        The report's path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = result.config
    (out / "results.json").write_text(json.dumps(result.to_dict(), indent=1, default=json_default))
    for kind, world in result.worlds.items():
        _plot_hv(world, kind, cfg.budget, out / f"hv_{kind}.png")
    _plot_paired(result, out / "paired_hv.png")
    _plot_t95(result, out / "trainings_to_95.png")
    if result.real_data:
        _plot_real_data(result.real_data, out / "real_data_check.png")
    (out / "report.md").write_text(_report_markdown(result))
    return out / "report.md"


# ---- markdown -----------------------------------------------------------------------------
def _ci(pair: Any, digits: int = 3) -> str:
    return f"[{pair[0]:+.{digits}f}, {pair[1]:+.{digits}f}]"


def _t95(value: Any) -> str:
    return "censored" if value is None else str(value)


def summary_table(result: BenchResult) -> list[str]:
    """The headline table (one row per world): median trainings-to-95% per method, archopt /
    plain ratio, paired HV difference at the budget with its 95% CI, and whether archopt loses."""
    names = list(next(iter(result.worlds.values()))["methods"])
    head = (
        "| world | "
        + " | ".join(f"{n} trainings to 95%" for n in names)
        + " | archopt / plain | HV at budget, archopt - plain (95% CI) | archopt loses? |"
    )
    lines = [head, "|---|" + "---|" * (len(names) + 3)]
    for kind, w in result.worlds.items():
        p = w.get("paired_vs_plain_qnehvi")
        ratio = (
            "-"
            if not p or p["trainings_to_95_ratio"] is None
            else f"{p['trainings_to_95_ratio']:.2f}"
        )
        diff = "-" if not p else f"{p['hv_diff_mean']:+.3f} {_ci(p['hv_diff_ci95'])}"
        loses = []
        if p:
            if p["hv_diff_ci95"][1] < 0:
                loses.append("HV (CI below 0)")
            if p["trainings_to_95_ratio"] is not None and p["trainings_to_95_ratio"] > 1:
                loses.append("trainings to 95%")
        lines.append(
            f"| {KIND_LABELS.get(kind, kind)} | "
            + " | ".join(_t95(w["methods"][n]["trainings_to_95"]) for n in names)
            + f" | {ratio} | {diff} | {', '.join(loses) or 'no'} |"
        )
    return lines


def _command(cfg: BenchConfig) -> str:
    """The ``archopt bench`` command line that reproduces ``cfg`` (options that differ from
    the preset only)."""
    base = BenchConfig.preset(cfg.quick)
    parts = ["archopt bench"] + (["--quick"] if cfg.quick else [])
    parts.append(f"--seeds {cfg.seeds}")
    if cfg.first_seed != base.first_seed:
        parts.append(f"--first-seed {cfg.first_seed}")
    for name, flag in (
        ("max_candidates", "--max-candidates"),
        ("max_trainings", "--max-trainings"),
        ("batches", "--batches"),
    ):
        if getattr(cfg, name) != getattr(base, name):
            parts.append(f"{flag} {getattr(cfg, name)}")
    if cfg.init != base.init:
        parts.append(f"--init {cfg.init}")
    if tuple(cfg.worlds) != tuple(base.worlds):
        parts.append("--worlds " + ",".join(cfg.worlds))
    if tuple(cfg.methods) != tuple(base.methods):
        parts.append("--methods " + ",".join(cfg.methods))
    return " ".join(parts)


def _report_markdown(result: BenchResult) -> str:
    cfg, setup = result.config, result.setup
    preset = "quick" if cfg.quick else "full"
    load = " -> ".join(f"{v:.1f}" for v in result.load) if result.load else "?"
    lines = [
        "# archopt sample-efficiency benchmark",
        "",
        f"Preset: **{preset}** -- {cfg.seeds} seeds per world and method "
        f"({cfg.first_seed}-{cfg.first_seed + cfg.seeds - 1}"
        + (
            ", **dev** seeds: used to choose the design"
            if cfg.first_seed >= DEV_FIRST_SEED
            else ", report seeds: never used to choose the design"
        )
        + "), "
        f"{setup.get('n_candidates')} candidates"
        + (
            f" (a seeded random subset of the campaign's proposable set, max {cfg.max_candidates})"
            if cfg.max_candidates
            else " (every proposable candidate of the campaign)"
        )
        + f", budget {cfg.n_init} initial trainings ("
        + (
            "the same random candidates for every method"
            if cfg.init == "shared"
            else "each method's own first batch: archopt's from its prior before any run, "
            "plain qNEHVI's a Sobol batch, random search's at random"
        )
        + f") + {cfg.batches} batches of "
        f"{cfg.batch_size} = {cfg.budget} trainings (the common budget). After it every method "
        f"continues until each seed reaches 95% of the true hypervolume (model-based methods "
        f"at most {setup.get('max_trainings')} trainings, random search until it gets there). "
        f"Wall time {result.seconds / 60:.1f} min on 2 shared cores (1-minute load average "
        f"{load} at start -> end; the benchmark runs torch with one thread).",
        "",
        "Reproduce: `" + _command(cfg) + "` (or `python benchmarks/sample_efficiency.py` with "
        "the same options).",
        "",
        "## Summary",
        "",
        *summary_table(result),
        "",
        "Trainings to 95% is the median over seeds of each seed's count (a seed that hit the "
        "cap is censored and counted as larger than every measured value; 'censored' when more "
        "than half did). 'archopt loses' flags a world where the paired HV interval lies below "
        "0 or archopt's median exceeds plain qNEHVI's."
        + (
            " `known_loss` is not an optimizer: it reads every candidate's true loss and sees "
            "only the modelled throughput, like the others (`optim/bench/known_loss.py`). Its "
            "count is a floor no loss model can beat; what it still needs comes from the true "
            "throughput the methods never see."
            if KNOWN_LOSS in cfg.methods
            else ""
        ),
        "",
        "## Setting",
        "",
        f"- Campaign: {setup['spec']['params']:.3g} non-embedding params +-{cfg.band:.0%}, "
        f"{setup['spec']['tokens']:.3g} tokens, {setup['spec']['hardware']}, workload "
        f"{setup['spec']['workload']}.",
        f"- No oracle: every method gets `max_loss` = archopt's prior's predicted loss at the "
        f"reference shape `{setup['reference_shape']}` (LLaMA-3 proportions), the same number "
        "for every method; each world's truth is scaled so that the reference shape has exactly "
        "that loss, so the target means 'beat the reference shape' in every world.",
        "- Objectives: minimize loss, maximize tokens/s; hypervolume in `(-loss, ln tokens/s)`, "
        "the space the campaign's qLogNEHVI works in (BoTorch `Hypervolume`). Scoring reference: "
        "`max_loss` and, for throughput, the slowest true-Pareto point under it minus 10% of the "
        "front's range.",
        "- A method's HV after t trainings is the HV of the **true** objective values of the "
        "architectures it has trained so far.",
        f"- Observation noise: {setup['noise']['rel_sigma']:.4f} relative "
        f"({setup['noise']['method']}).",
        "- True throughput: the throughput model's tokens/s times `exp(common + smooth(shape) + "
        "iid)` with sds 0.15 / 0.05 / 0.02 (`ThroughputError`): the batch-64 efficiencies of the "
        "A100 calibration are documented defaults (so a common error of ~15%), and this "
        "project's leave-one-shape-out errors were 5.7-9.5% with rank correlation 0.95-0.99. "
        "`Problem` does not expose draws of the calibration constants yet; this documented "
        "lognormal stands in for them. Every method sees only the model's tokens/s.",
        "",
        "## Worlds",
        "",
    ]
    for kind, ws in setup["worlds"].items():
        truth = ws["truth"]
        prior = truth["prior"]
        prior_text = (
            f"archopt's prior refitted without `{prior['held_out_table']}`"
            if prior.get("held_out_table")
            else "archopt's default prior"
        )
        if kind == "held_out_source":
            what = (
                f"the truth is the `{truth['law']}` law fitted by least squares on "
                f"`{truth['table']}` alone (Laplace draws); {prior_text} never saw that "
                "table."
            )
        elif kind == "real_shapes":
            eff = truth.get("shape_effect", {})
            amp = np.ptp(eff.get("effect", [0.0]))
            what = (
                f"no law: the real per-shape losses of `{truth['table']}` minus a "
                "shape-blind size trend (quadratic in ln N per token budget), averaged over "
                f"its budgets, smoothed by a GP over ln(d/sqrt N) (range {amp:.3f} in ln "
                "loss) and interpolated at the candidates; size slope "
                f"{eff.get('size_slope', float('nan')):+.3f} within the band; {prior_text}. "
                "Along the MLP ratio and GQA (never varied there) only the random residual."
            )
        elif kind == "shifted":
            what = (
                f"the truth is another law family (`{truth['law']}`: shape only through "
                f"d/L, monotonically) fitted on `{truth['table']}`; {prior_text}."
            )
        else:
            what = (
                f"the truth is a draw from {prior_text} itself. **An upper bound**: the "
                "prior is right by construction apart from the residual and the "
                "throughput error."
            )
        lines.append(
            f"- **{kind}**: {what} Shape residual sd "
            f"{ws['shape_residual_rel_sigma']:.4f} relative (measured on "
            f"`{truth['residual_table']}`), `max_loss` {ws['max_loss']:.4f}."
        )
    lines += [""]
    for kind, world in result.worlds.items():
        lines += _world_section(kind, world, cfg)
    if result.real_data:
        lines += _real_data_section(result.real_data)
    lines += [
        "## Caveats",
        "",
        "- Trainings to 95% depends on finding the last few front points; per seed it is "
        "noisy, which is why medians and paired intervals are reported.",
        "- A batch a method leaves short (e.g. Algorithm 1 when no candidate is predicted under "
        "the loss target) still spends its slots: the budget axis is trainings requested.",
        "- The final choice takes the fastest trained architecture whose *observed* loss meets "
        "the target; near the target, noise lets truly-infeasible fast shapes through (a "
        "winner's curse), which 'target missed' counts.",
        "- Propose seconds are wall times on a shared 2-core machine with other jobs running; "
        "treat them as rough.",
        "",
    ]
    return "\n".join(lines)


def _world_section(kind: str, world: Mapping[str, Any], cfg: BenchConfig) -> list[str]:
    infos = world.get("world_info", [])
    rho = [w["prior_spearman"] for w in infos if "prior_spearman" in w]
    under = [w.get("n_under_target", 0) for w in infos]
    front = [w.get("true_pareto_size", 0) for w in infos]
    lines = [f"## {KIND_LABELS.get(kind, kind)}", ""]
    if rho:
        lines += [
            f"Before any run, archopt's prior mean ranks this world's candidates with "
            f"Spearman {np.mean(rho):+.2f} (seeds {np.min(rho):+.2f} to {np.max(rho):+.2f}) "
            f"against the true loss. Candidates under `max_loss`: {np.mean(under):.0f} of "
            f"{world['n_candidates']} on average; true Pareto front {np.mean(front):.1f} "
            "shapes on average.",
            "",
        ]
    lines += [
        f"![HV vs trainings](hv_{kind}.png)",
        "",
        "| method | trainings to 95% (median) | seeds reaching 95% | HV ratio at "
        f"{cfg.budget} (95% CI) | regret at {cfg.budget} | target missed | "
        "mean prior weight | s / propose |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in world["methods"].items():
        lo, hi = m["final_hv_ratio_ci95"]
        pw = "-" if m.get("prior_weight_mean") is None else f"{m['prior_weight_mean']:.2f}"
        lines.append(
            f"| {name} | {_t95(m['trainings_to_95'])} | {m['seeds_reaching_95']}/"
            f"{cfg.seeds} | {m['final_hv_ratio']:.3f} [{lo:.3f}, {hi:.3f}] | "
            f"{m['regret']:.3f} | {m['target_miss_rate']:.0%} | {pw} | "
            f"{m['propose_seconds']:.2f} |"
        )
    p = world.get("paired_vs_plain_qnehvi")
    if p:
        t95 = (
            "-"
            if p["trainings_to_95_diff_mean"] is None
            else f"{p['trainings_to_95_diff_mean']:+.1f} {_ci(p['trainings_to_95_diff_ci95'], 1)} "
            f"over the {p['n_both_reached']} seeds where both reached 95%"
        )
        curve = p.get("hv_diff_curve") or {}
        first = [j for j, t in enumerate(curve.get("trainings", [])) if t == cfg.n_init]
        after_first = (
            f"HV after the first {cfg.n_init} trainings {curve['mean'][first[0]]:+.3f} "
            f"{_ci(curve['ci95'][first[0]])}; "
            if first
            else ""
        )
        lines += [
            "",
            f"Paired archopt - plain qNEHVI: {after_first}HV at {cfg.budget} "
            f"{p['hv_diff_mean']:+.3f} {_ci(p['hv_diff_ci95'])}; trainings to 95% {t95} "
            f"(archopt alone reached it in {p['a_reached_only']} seeds, plain alone in "
            f"{p['b_reached_only']}); ratio of medians "
            + ("-" if p["trainings_to_95_ratio"] is None else f"{p['trainings_to_95_ratio']:.2f}")
            + ".",
        ]
    lines += ["", "Targets:", ""]
    for key, val in world["targets"].items():
        met = {True: "met", False: "**missed**", None: "undecided"}[val["met"]]
        lines.append(f"- {key}: {met} -- {val['detail']}")
    lines.append("")
    return lines


def _real_data_section(real: Mapping[str, Any]) -> list[str]:
    ks = [str(k) for k in real["ks"]]
    lines = [
        "## Real-data check: leave one size out",
        "",
        "![real data](real_data_check.png)",
        "",
        "For each table and each size group (total params within ~10%), the conditional law "
        "is fitted by least squares without that size; then at each token budget of the "
        "held-out size its real shapes are ranked by predicted loss. Algorithm 1 ranks by "
        "the law; archopt by the law plus its residual GP conditioned on the table's other "
        "sizes. Shown: how often the truly best shape is in the top k.",
        "",
        "| table | cases | "
        + " | ".join(f"archopt top-{k}" for k in ks)
        + " | "
        + " | ".join(f"Alg. 1 top-{k}" for k in ks)
        + " | "
        + " | ".join(f"chance top-{k}" for k in ks)
        + " |",
        "|---|---|" + "---|" * (3 * len(ks)),
    ]
    rows = list(real["tables"].items()) + [("all", real["overall"])]
    for table, r in rows:
        cells = [
            f"{r[n][k]:.2f}" if r[n][k] is not None else "-"
            for n in ("archopt", "algorithm1", "chance")
            for k in ks
        ]
        lines.append(f"| {table} | {r['cases']} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines
