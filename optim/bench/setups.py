"""What each world kind needs before any seed runs: archopt's prior (refitted without the
held-out table where the kind says so), the truth's law, the candidate set, the problem and the
shape-residual size (:func:`world_setups`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .config import KNOWN_LOSS, BenchConfig, BenchError

__all__ = [
    "shifted_truth",
    "prior_without",
    "make_strategies",
    "bench_candidates",
    "prior_vs_truth",
    "WorldSetup",
    "world_setups",
]


def shifted_truth(config: BenchConfig, law: str | None = None, table: str | None = None) -> Any:
    """A world's law: ``law`` (default ``truth_law``) least-squares fitted on ``table`` (default
    ``truth_table``) alone, as a Laplace posterior."""
    from surrogate.lsq import fit_lsq
    from surrogate.runs import bundled_path, load_runs

    runs = load_runs(bundled_path(table or config.truth_table))
    return fit_lsq(runs, law or config.truth_law).to_posterior(1000)


def prior_without(table: str, *, progress: bool = True) -> Any:
    """archopt's default prior refitted without one bundled ``table`` (same rows rule and NUTS
    settings as :func:`surrogate.prior.default_prior`), cached under
    ``$ARCHOPT_HOME/posteriors/`` by a hash of the rows and settings
    (:func:`surrogate.prior.cached_prior`; a minute or two to fit on 2 cores the first time)."""
    from surrogate.prior import cached_prior, default_prior_runs
    from surrogate.runs import bundled_path, bundled_runs, load_runs

    drop = load_runs(bundled_path(table))
    runs = bundled_runs()
    held = set(zip(drop["source"].astype(str), drop["run"].astype(str)))
    keep = [(s, r) not in held for s, r in zip(runs["source"].astype(str), runs["run"].astype(str))]
    rows = default_prior_runs(runs[keep].reset_index(drop=True))
    name = f"bench-prior-without-{table.split('.')[0]}"
    posterior = cached_prior(rows, name, progress=progress)
    posterior.info["held_out_table"] = table
    return posterior


def make_strategies(names: Sequence[str]) -> dict[str, Any]:
    """One instance per strategy name (keys of ``optim.core.strategies.STRATEGIES``); an unknown
    name fails before anything is fitted."""
    from optim.core.strategies import STRATEGIES

    known = [*STRATEGIES, KNOWN_LOSS]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BenchError(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(known)}")
    # The known-loss reference reads each world's truth: built per world by the runner.
    return {name: None if name == KNOWN_LOSS else STRATEGIES[name]() for name in names}


def bench_candidates(config: BenchConfig, prior: Any) -> tuple[list[Any], Any]:
    """The benchmark's candidate set: proposable candidates of the campaign (a seeded subset
    when ``max_candidates``), and the campaign spec."""
    from optim.core.problem import Problem
    from optim.core.spec import CampaignSpec

    kwargs = dict(
        name="bench",
        params=config.params,
        tokens=config.tokens,
        hardware=config.hardware,
        band=config.band,
        source=config.source,
        law=prior.law,
    )
    if config.workload:
        kwargs["workload"] = config.workload
    spec = CampaignSpec(**kwargs)
    full = Problem.build(spec, prior, measurement_cache=False)
    usable = np.flatnonzero(full.proposable)
    if config.max_candidates is not None and usable.size > config.max_candidates:
        usable = np.sort(
            np.random.default_rng(12345).choice(usable, config.max_candidates, replace=False)
        )
    return [full.candidates[i] for i in usable], spec


def prior_vs_truth(prior_mean: np.ndarray, true_loss: np.ndarray) -> dict[str, float]:
    """How well archopt's prior knows a world before any run: Spearman rank correlation of the
    prior-mean loss with the true loss over the candidates."""
    from scipy.stats import spearmanr

    return {"prior_spearman": float(spearmanr(prior_mean, true_loss).statistic)}


@dataclass
class WorldSetup:
    """What one world kind needs: archopt's prior and problem, the truth, residual settings."""

    kind: str
    prior: Any
    problem: Any
    truth: Any
    truth_info: dict[str, Any]
    residual: float
    residual_columns: tuple[int, ...]
    max_loss: float


def world_setups(
    config: BenchConfig,
    prior: Any,
    candidates: list[Any],
    spec: Any,
    reference: Any,
    progress: bool,
    truths: Mapping[str, Any] | None,
) -> dict[str, WorldSetup]:
    """A :class:`WorldSetup` per world kind of ``config``: archopt's prior there (``prior``, or
    the prior refitted without the held-out table), ``max_loss`` (that prior's mean loss at
    ``reference``), the problem over ``candidates``, the truth and the shape-residual size
    measured on the kind's table. ``truths`` overrides priors and truths (tests; see
    :func:`~optim.bench.run.run_bench`)."""
    from optim.core.problem import N_LAW_DRAWS, Problem
    from surrogate.laws import law_features
    from surrogate.runs import bundled_path, load_runs

    from .estimates import estimate_run_noise, estimate_shape_residual
    from .truths import fit_shape_effect, law_truth, shape_effect_truth

    noise = estimate_run_noise()
    truths = dict(truths or {})
    held = None
    out: dict[str, WorldSetup] = {}
    for kind in config.worlds:
        if kind in ("held_out_source", "real_shapes"):
            if held is None:
                held = truths.get("prior_without") or prior_without(
                    config.held_out_table, progress=progress
                )
            kind_prior, source = held, None
        else:
            kind_prior, source = prior, config.source
        kind_spec = dataclasses.replace(spec, source=source)
        ref_feats = law_features([reference], config.tokens)
        max_loss = float(
            np.mean(kind_prior.law_draws(ref_feats, source=source, n_draws=N_LAW_DRAWS))
        )
        problem = Problem.build(
            dataclasses.replace(kind_spec, max_loss=max_loss),
            kind_prior,
            measurement_cache=False,
            candidates=candidates,
        )
        cols: tuple[int, ...]
        if kind == "matched":
            law = truths.get("matched", prior)
            truth, info = (
                law_truth(law, source),
                {"law": law.law, "fit": law.method, "table": "every bundled table (the prior)"},
            )
            table, cols = config.truth_table, (0, 1, 2, 3)
        elif kind == "shifted":
            law = truths.get("shifted") or shifted_truth(config)
            truth, info = (
                law_truth(law, source),
                {"law": law.law, "fit": law.method, "table": config.truth_table},
            )
            table, cols = config.truth_table, (0, 1, 2, 3)
        elif kind == "held_out_source":
            law = truths.get("held_out_source") or shifted_truth(
                config, law=config.held_out_law, table=config.held_out_table
            )
            truth, info = (
                law_truth(law, law.reference_source),
                {"law": law.law, "fit": law.method, "table": config.held_out_table},
            )
            table, cols = config.held_out_table, (0, 1, 2, 3)
        else:  # real_shapes
            effect = fit_shape_effect(config.held_out_table)
            law = prior
            truth, info = (
                shape_effect_truth(effect),
                {
                    "law": None,
                    "fit": "GP smoother of real per-shape losses",
                    "table": config.held_out_table,
                    "shape_effect": {
                        "u": effect.u.tolist(),
                        "effect": effect.effect.tolist(),
                        "size_slope": effect.size_slope,
                    },
                },
            )
            table, cols = config.truth_table, (1, 3)  # ln r, ln GQA: what Gemstones never varies
        residual_runs = load_runs(bundled_path(table))
        residual = estimate_shape_residual(law, residual_runs, noise.rel_sigma)
        out[kind] = WorldSetup(
            kind,
            kind_prior,
            problem,
            truth,
            {
                **info,
                "residual_table": table,
                "prior": {
                    "law": kind_prior.law,
                    "method": kind_prior.method,
                    "sources": list(kind_prior.sources),
                    "held_out_table": kind_prior.info.get("held_out_table"),
                },
                "campaign_source": source,
            },
            residual,
            cols,
            max_loss,
        )
    return out
