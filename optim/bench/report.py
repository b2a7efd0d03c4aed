"""The benchmark's report: PNG plots and the Markdown write-up of a :class:`~.run.BenchResult`.

Prose and plots live here, apart from the runner (:mod:`.run`), which only computes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .run import HV_TARGET, BenchConfig, BenchResult, json_default

__all__ = ["write_report"]

_COLORS = {"archopt": "#1f77b4", "plain_qnehvi": "#ff7f0e", "algorithm1": "#2ca02c",
           "random": "#7f7f7f", "nsga2": "#9467bd"}


def _plot_hv(world: Mapping[str, Any], kind: str, budget: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, m in world["methods"].items():
        t = np.asarray(m["trainings"])
        mean, half = np.asarray(m["hv_ratio_mean"]), np.asarray(m["hv_ratio_ci95"])
        color = _COLORS.get(name)
        ax.plot(t, mean, marker="o", ms=3, label=name, color=color)
        ax.fill_between(t, np.clip(mean - half, 0, 1), np.clip(mean + half, 0, 1), alpha=0.2,
                        color=color)
    ax.axhline(HV_TARGET, color="k", ls="--", lw=0.8, label="95% of true HV")
    ax.axvline(budget, color="k", ls=":", lw=0.8)
    ax.set_xlabel("trainings (incl. the shared initial ones; log scale)")
    ax.set_ylabel("HV of trained archs / true HV")
    ax.set_title(f"Hypervolume vs trainings, {kind} world (mean, 95% CI)")
    ax.set_ylim(0, 1.02)
    ax.set_xscale("log")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_bars(result: BenchResult, key: str, ylabel: str, path: Path, log: bool = False
               ) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(result.worlds)
    names = list(result.worlds[kinds[0]]["methods"])
    width = 0.8 / len(kinds)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for j, kind in enumerate(kinds):
        ms = result.worlds[kind]["methods"]
        vals = [ms[n][key] for n in names]
        errs = [ms[n].get(f"{key}_ci95", 0.0) for n in names]
        ax.bar(np.arange(len(names)) + j * width, vals, width, yerr=errs, label=kind, capsize=3)
    ax.set_xticks(np.arange(len(names)) + width * (len(kinds) - 1) / 2, names)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "not reached"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


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
    _plot_bars(result, "regret", "throughput regret under the loss target", out / "regret.png")
    _plot_bars(result, "propose_seconds", "seconds per propose call (mean)",
               out / "propose_seconds.png", log=True)
    if result.real_data:
        _plot_real_data(result.real_data, out / "real_data_check.png")
    (out / "report.md").write_text(_report_markdown(result))
    return out / "report.md"


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
        ax.bar(np.arange(len(ks)) + j * width, vals, width, label=name,
               color=_COLORS.get(name, "#cccccc"))
    ax.set_xticks(np.arange(len(ks)) + width, [f"top-{k}" for k in ks])
    ax.set_ylabel("held-out best shape found")
    ax.set_ylim(0, 1)
    ax.set_title(f"Leave-one-size-out on real tables ({overall['cases']} cases)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- markdown -----------------------------------------------------------------------------
def _report_markdown(result: BenchResult) -> str:
    cfg, setup = result.config, result.setup
    preset = "quick" if cfg.quick else "full"
    lines = [
        "# archopt sample-efficiency benchmark",
        "",
        f"Preset: **{preset}** -- {cfg.seeds} seeds per world and method, "
        f"{setup.get('n_candidates')} candidates"
        + (f" (a seeded random subset of the campaign's proposable set, max {cfg.max_candidates})"
           if cfg.max_candidates else " (every proposable candidate of the campaign)")
        + f", budget {cfg.n_init} shared initial random trainings + {cfg.batches} batches of "
        f"{cfg.batch_size} = {cfg.budget} trainings (the common budget; every method then runs "
        f"{cfg.extra_batches} more batches to measure trainings-to-95%). "
        f"Wall time {result.seconds / 60:.1f} min.",
        "",
        "Reproduce: `" + ("archopt bench --quick" if cfg.quick else "archopt bench")
        + f" --seeds {cfg.seeds} --out results/bench` "
        "(or `python benchmarks/sample_efficiency.py`).",
        "",
        "## Setting",
        "",
        f"- Campaign: {setup['spec']['params']:.3g} non-embedding params +-{cfg.band:.0%}, "
        f"{setup['spec']['tokens']:.3g} tokens, {setup['spec']['hardware']}, workload "
        f"{setup['spec']['workload']}, losses on the `{setup['spec']['source']}` scale.",
        f"- archopt's prior: `{setup['prior']['law']}` law, {setup['prior']['method']} posterior "
        f"({setup['prior']['num_samples']} draws) on every bundled table."
        + (f" Sampler warnings: {'; '.join(setup['prior']['warnings'])}."
           if setup["prior"]["warnings"] else ""),
        "- Objectives: minimize loss, maximize tokens/s; hypervolume in `(-loss, ln tokens/s)`, "
        "the space the campaign's qLogNEHVI works in, with BoTorch's `Hypervolume` and "
        "`is_non_dominated`. HV reference: the loss target and, for throughput, the slowest "
        "true-Pareto point within the target minus 10% of the front's range.",
        f"- Loss target (regret, HV reference, `max_loss` of every method's problem): the "
        f"{cfg.loss_target_quantile:.0%} quantile of the world's true candidate losses.",
        "- A method's HV after t trainings is the HV of the **true** objective values of the "
        "architectures it has trained so far (not of what it would recommend).",
        "- Final choice and regret: the fastest (measured) trained architecture whose *observed* "
        "loss meets the target; regret = 1 - its true tokens/s over the best true tokens/s "
        "under the target. 'Target missed' = seeds where nothing trained was observed under "
        "the target or the choice misses it in truth (counted as regret 1); 'regret when hit' "
        "averages the other seeds.",
        "",
        "## Worlds",
        "",
        "Each seed draws a new world: one posterior draw of a fitted law, times "
        "`exp(residual)` with the residual a smooth random function (squared-exponential GP, "
        "lengthscale 1 in standardized `ln d/sqrt(N), ln r, ln d/L, ln GQA`) the law does not "
        "contain, plus observation noise; true throughput is the throughput model times a fixed "
        "per-candidate `exp(N(0, rel_sigma))` (the model's calibration error).",
        "",
        f"- Observation noise: {setup['noise']['rel_sigma']:.4f} relative "
        f"({setup['noise']['method']}).",
    ]
    for kind in cfg.worlds:
        truth = setup["truths"][kind]
        amp = setup["shape_residual_rel_sigma"][kind]
        if kind == "refit":
            lines.append(
                f"- **refit**: the law is archopt's own family (`{truth['law']}`) but fitted by "
                f"least squares on `{cfg.truth_table}` alone (Laplace posterior) instead of "
                f"NUTS on every table: same form, other data and fit. Residual sd {amp:.4f} "
                "relative. The middle case.")
        elif kind == "matched":
            lines.append(
                f"- **matched**: the law is a draw from archopt's own prior posterior "
                f"(`{truth['law']}`, {truth['method']}), so the prior is well specified by "
                f"construction apart from the residual ({amp:.4f} relative sd). This is the "
                "optimistic case for archopt.")
        else:
            lines.append(
                f"- **shifted**: the law is `{truth['law']}` (arXiv 2501.18107's form: loss "
                f"depends on shape only through d/L, monotonically) fitted by least squares on "
                f"`{cfg.truth_table}` alone (Laplace posterior) -- a different law family and "
                f"fit than archopt's `{setup['prior']['law']}` prior, which believes in an optimal width "
                f"and MLP ratio. Both laws fit the real morph runs about equally well within a "
                f"size; they disagree when extrapolated to these shapes. Residual sd {amp:.4f} "
                "relative. The hardest case for a prior-based method.")
    lines += [
        "",
        "Shape residual sd: real losses minus the law's posterior mean, centred within each "
        f"size group of `{cfg.truth_table}` (so errors about scale drop out), minus the run "
        "noise in quadrature.",
        "",
    ]
    for kind, world in result.worlds.items():
        lines += _world_section(kind, world, cfg)
    if result.real_data:
        lines += _real_data_section(result.real_data)
    lines += [
        "## Caveats",
        "",
        "- Trainings-to-95% is read off the mean HV curve over seeds; every method continues "
        f"for {cfg.extra_batches} more batches of {cfg.batch_size} after the common budget to "
        "measure it, and one that still does not reach 95% is reported as not reached (its "
        f"number is larger). Random search continues for {cfg.random_extra_batches} larger "
        "batches after that "
        "(random proposals do not depend on batch boundaries) so its number is measured, not "
        "censored.",
        "- A batch a method leaves short (e.g. Algorithm 1 when no candidate is predicted under "
        "the loss target) still spends its slots: the budget axis is trainings requested.",
        "- The final choice takes the fastest trained architecture whose *observed* loss meets "
        "the target; near the target, noise lets truly-infeasible fast shapes through (a winner's "
        "curse), which 'target missed' counts. Random search's choice is made at the common "
        "budget, not after its extension.",
        "- Propose seconds are wall times on a shared 2-core machine with other jobs running; "
        "treat them as rough.",
        "- NSGA-II (Optuna) is not included: it is not installed and a genetic algorithm needs "
        "far more than 20 evaluations to say anything at this budget.",
        "",
    ]
    return "\n".join(lines)


def _world_section(kind: str, world: Mapping[str, Any], cfg: BenchConfig) -> list[str]:
    infos = world.get("world_info", [])
    rho = [w["prior_spearman"] for w in infos if "prior_spearman" in w]
    off = [w["prior_offset"] for w in infos if "prior_offset" in w]
    lines = [f"## {kind} world", ""]
    if rho:
        lines += [f"Before any run, archopt's prior mean ranks this world's candidates with "
                  f"Spearman {np.mean(rho):+.2f} (seeds {np.min(rho):+.2f} to {np.max(rho):+.2f}) "
                  f"against the true loss, and is off by {np.mean(off):+.3f} in level "
                  "(true - prior; the GP's offset term absorbs this). Algorithm 1 ranks by the "
                  "same prior mean.", ""]
    lines += [f"![HV vs trainings](hv_{kind}.png)", "",
             "| method | trainings to 95% HV | HV ratio at "
             f"{cfg.budget} (95% CI) | seeds reaching 95% | regret at {cfg.budget} (95% CI) | "
             "target missed | regret when hit | s / propose |", "|---|---|---|---|---|---|---|---|"]
    for name, m in world["methods"].items():
        t95 = m["trainings_to_95"]
        t95s = ("not reached" if t95 is None else str(t95)) + f" (ran to {m['trainings'][-1]})"
        lines.append(f"| {name} | {t95s} | {m['final_hv_ratio']:.3f} +- "
                     f"{m['final_hv_ratio_ci95']:.3f} | {m['seeds_reaching_95']}/{cfg.seeds} | "
                     f"{m['regret']:.3f} +- {m['regret_ci95']:.3f} | "
                     f"{m['target_miss_rate']:.0%} | "
                     + ("-" if m["regret_when_hit"] is None else f"{m['regret_when_hit']:.3f}")
                     + f" | "
                     f"{m['propose_seconds']:.2f} |")
    lines += ["", "HV ratio by number of trainings (mean over seeds; columns after the common "
              f"budget of {cfg.budget} are the extension that measures trainings-to-95%):", ""]
    names = list(world["methods"])
    full_t = world["methods"][names[0]]["trainings"]
    cols = [j for j, x in enumerate(full_t[: cfg.batches + cfg.extra_batches + 1])
            if j <= cfg.batches or j % 4 == 0 or j == cfg.batches + cfg.extra_batches]
    lines.append("| method | " + " | ".join(str(full_t[j]) for j in cols) + " |")
    lines.append("|---|" + "---|" * len(cols))
    for name in names:
        vals = world["methods"][name]["hv_ratio_mean"]
        lines.append(f"| {name} | " + " | ".join(f"{vals[j]:.3f}" for j in cols) + " |")
    vs = world.get("vs_algorithm1")
    if vs:
        lines += ["", "archopt minus Algorithm 1, paired over seeds (HV ratio, mean +- 95% CI): "
                  + ", ".join(f"t={t_}: {m_:+.3f} +- {h_:.3f}" for t_, m_, h_ in
                              zip(vs["trainings"], vs["mean"], vs["ci95"]))]
    lines += ["", "Targets:", ""]
    labels = {"half_of_qnehvi": "archopt needs <= 1/2 the trainings of plain qNEHVI",
              "third_of_random": "archopt needs <= 1/3 the trainings of random search",
              "matches_algorithm1": "archopt matches or beats Algorithm 1 at every budget"}
    for key, val in world["targets"].items():
        met = {True: "met", False: "**missed**", None: "undecided"}[val["met"]]
        lines.append(f"- {labels.get(key, key)}: {met} -- {val['detail']}")
    lines.append("")
    return lines


def _real_data_section(real: Mapping[str, Any]) -> list[str]:
    ks = [str(k) for k in real["ks"]]
    lines = ["## Real-data check: leave one size out", "", "![real data](real_data_check.png)", "",
             "For each table and each size group (total params within ~10%), the conditional law "
             "is fitted by least squares without that size; then at each token budget of the "
             "held-out size its real shapes are ranked by predicted loss. Algorithm 1 ranks by "
             "the law; archopt by the law plus its residual GP conditioned on the table's other "
             "sizes. Shown: how often the truly best shape is in the top k.", "",
             "| table | cases | " + " | ".join(f"archopt top-{k}" for k in ks) + " | "
             + " | ".join(f"Alg. 1 top-{k}" for k in ks) + " | "
             + " | ".join(f"chance top-{k}" for k in ks) + " |",
             "|---|---|" + "---|" * (3 * len(ks))]
    rows = list(real["tables"].items()) + [("all", real["overall"])]
    for table, r in rows:
        cells = [f"{r[n][k]:.2f}" if r[n][k] is not None else "-"
                 for n in ("archopt", "algorithm1", "chance") for k in ks]
        lines.append(f"| {table} | {r['cases']} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines
