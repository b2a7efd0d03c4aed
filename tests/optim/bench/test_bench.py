"""The benchmark runner, its metrics, the report and the CLI (a tiny bench end to end)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import REFERENCE, fake_truth, max_loss_of

from models.parametrize import enumerate_archs
from optim.bench import (
    BenchConfig,
    BenchError,
    MethodTrace,
    bench_json,
    evaluate_targets,
    paired_vs,
    run_bench,
    run_campaign,
    summarize_method,
    trainings_to,
    write_report,
)
from optim.bench.estimates import NoiseEstimate
from optim.bench.residuals import ThroughputError
from optim.bench.truths import law_truth
from optim.bench.worlds import make_world


class GreedyTruthStrategy:
    """Test-only oracle: proposes the unobserved true-Pareto candidates first."""

    def __init__(self, world):
        self.order = list(world.pareto_indices) + list(range(world.n))

    def propose(self, problem, observed_idx, observed_loss, k, *, pending_idx=None, seed=0):
        seen = set(int(i) for i in observed_idx)
        picked = []
        for i in self.order:
            if i not in seen and i not in picked:
                picked.append(int(i))
            if len(picked) == k:
                break
        return type("Batch", (), {"indices": np.asarray(picked)})()


def _small_world(**kwargs):
    """60 candidates at 100M, a fake law truth and a made-up throughput model ``tput``;
    returns ``(world, tput)``."""
    cands = enumerate_archs(1e8)[:60]
    tput = np.array([1e6 / a.n_layers / a.d_model**0.5 for a in cands])
    world = make_world(
        cands,
        2e9,
        truth=law_truth(fake_truth(), "s"),
        reference=REFERENCE,
        max_loss=max_loss_of(fake_truth()),
        throughput_model=tput,
        seed=0,
        noise=NoiseEstimate(0.003, 1, "t"),
        residual_rel_sigma=0.005,
        **kwargs,
    )
    return world, tput


@pytest.fixture(scope="module")
def world():
    return _small_world()[0]


def test_oracle_reaches_full_hypervolume_and_zero_regret(world):
    oracle = GreedyTruthStrategy(world)
    k = max(1, len(world.pareto_indices))
    trace = run_campaign(world, None, oracle, init_idx=np.array([0, 1]), batch_sizes=[k], seed=0)
    assert trace.trainings == [2, 2 + k]
    assert trace.hv_ratio[-1] == pytest.approx(1.0)
    assert trace.hv_ratio[0] <= trace.hv_ratio[-1]
    assert trace.shortfall == 0


def test_short_batches_spend_their_slots(world):
    class Lazy:
        def propose(self, *a, **k):
            return type("B", (), {"indices": np.array([], dtype=int)})()

    trace = run_campaign(world, None, Lazy(), init_idx=np.array([0]), batch_sizes=[4, 4], seed=0)
    assert trace.trainings == [1, 5, 9] and trace.shortfall == 8
    assert trace.hv_ratio[0] == trace.hv_ratio[-1]


def test_trainings_to_and_summary():
    assert trainings_to(np.array([4, 8, 12]), np.array([0.5, 0.96, 0.97])) == 8
    assert trainings_to(np.array([4, 8]), np.array([0.5, 0.9])) is None
    traces = [
        MethodTrace(
            trainings=[4, 8, 12], hv_ratio=[0.2, 0.9, 1.0], propose_seconds=[1, 3], regret=0.1
        ),
        MethodTrace(trainings=[4, 8], hv_ratio=[0.4, 1.0], propose_seconds=[2], regret=0.3),
        MethodTrace(
            trainings=[4, 8, 12, 16],
            hv_ratio=[0.1, 0.2, 0.3, 0.4],
            propose_seconds=[1, 1, 1],
            regret=1.0,
        ),
    ]
    s = summarize_method(traces, budget=8)
    # Per seed: 12, 8 and censored (at 16): the median is 12, one seed censored.
    assert s["trainings_to_95"] == 12 and s["seeds_reaching_95"] == 2
    assert s["trainings_to_95_per_seed"] == [12, 8, None] and s["censored_at"] == [16]
    assert s["final_hv_ratio"] == pytest.approx((0.9 + 1.0 + 0.2) / 3)
    # A seed that stopped (reached 95%) keeps its last value on the padded curve.
    assert s["hv_ratio_per_seed"][1] == [0.4, 1.0] and s["hv_ratio_mean"][-1] == pytest.approx(0.8)
    assert s["propose_seconds"] == pytest.approx(1.5)
    more = summarize_method(traces[2:] * 2 + traces[:1], budget=8)
    assert more["trainings_to_95"] is None  # more than half censored


def test_paired_differences_and_targets():
    a = [MethodTrace(trainings=[4, 8], hv_ratio=[0.2, 0.96]) for _ in range(4)]
    b = [
        MethodTrace(trainings=[4, 8, 12, 16], hv_ratio=[0.2, 0.5 + 0.1 * k, 0.9, 0.97])
        for k in range(4)
    ]
    p = paired_vs(a, b, budget=8)
    assert p["hv_diff_mean"] == pytest.approx(0.96 - 0.65)
    lo, hi = p["hv_diff_ci95"]
    assert lo < p["hv_diff_mean"] < hi and lo > 0
    assert p["trainings_to_95_ratio"] == pytest.approx(8 / 16)
    assert p["trainings_to_95_diff_mean"] == pytest.approx(-8.0) and p["n_both_reached"] == 4
    methods = {
        "archopt": {"trainings_to_95": 8},
        "plain_qnehvi": {"trainings_to_95": 16},
        "random": {"trainings_to_95": 20},
    }
    t = evaluate_targets("matched", methods, p)
    assert t["trainings_to_95_vs_plain_qnehvi_x0.5"]["met"] is True
    assert t["trainings_to_95_vs_random_x0.33"]["met"] is False
    assert t["hv_diff_ci_upper_ge_0"]["met"] is True
    t = evaluate_targets("shifted", {**methods, "archopt": {"trainings_to_95": None}}, p)
    assert t["trainings_to_95_vs_plain_qnehvi_x1"]["met"] is False


def test_config_validation():
    with pytest.raises(BenchError):
        BenchConfig(seeds=0)
    with pytest.raises(BenchError):
        BenchConfig(worlds=("nowhere",))
    with pytest.raises(BenchError):
        BenchConfig(max_trainings=12)  # below the common budget
    quick = BenchConfig.quick_preset()
    assert quick.quick and quick.seeds >= 20 and BenchConfig().budget == 20
    assert set(quick.worlds) == {"held_out_source", "real_shapes", "shifted", "matched"}


@pytest.mark.slow
def test_tiny_bench_end_to_end(tmp_path):
    """Real strategies and Problem on 30 candidates, 2 seeds, every world kind; the --json
    contract of issue 13 exactly, and the report."""
    cfg = BenchConfig(
        params=1e8, tokens=2e9, max_candidates=30, seeds=2, batches=1, max_trainings=12
    )
    prior = fake_truth("open-lm-morph", 16)
    result = run_bench(
        cfg, prior=prior, truths={"prior_without": prior}, progress=False, real_data=False
    )
    payload = json.loads(json.dumps(bench_json(result)))
    assert {"methods", "seeds", "world", "targets", "worlds"} <= set(payload)
    assert payload["seeds"] == 2 and payload["world"] == "held_out_source"
    assert set(payload["methods"]) == {
        "archopt",
        "plain_qnehvi",
        "algorithm1",
        "random",
        "known_loss",
    }
    assert set(payload["worlds"]) == {"held_out_source", "real_shapes", "shifted", "matched"}
    for name, w in payload["worlds"].items():
        assert w["kind"] == name and set(w) == {"kind", "methods", "paired_vs_plain_qnehvi"}
        for m in w["methods"].values():
            assert set(m) == {"trainings_to_95", "final_hv_ratio", "propose_seconds"}
            assert 0.0 <= m["final_hv_ratio"] <= 1.0 and m["propose_seconds"] >= 0.0
            assert m["trainings_to_95"] is None or isinstance(m["trainings_to_95"], int)
        p = w["paired_vs_plain_qnehvi"]
        assert set(p) == {"hv_diff_mean", "hv_diff_ci95", "trainings_to_95_ratio"}
        assert len(p["hv_diff_ci95"]) == 2 and p["hv_diff_ci95"][0] <= p["hv_diff_mean"]
        assert p["trainings_to_95_ratio"] is None or p["trainings_to_95_ratio"] > 0
    # Each method chose its own first batch: every curve starts at 0 trainings, then n_init.
    for world in result.worlds.values():
        for m in world["methods"].values():
            assert all(t[:2] == [0, cfg.n_init] for t in m["trainings_per_seed"])
    random_curves = result.worlds["matched"]["methods"]["random"]["hv_ratio_per_seed"]
    assert all(0.0 <= v <= 1.0 for row in random_curves for v in row)
    report = write_report(result, tmp_path)
    text = report.read_text()
    assert "## Summary" in text and "upper bound" in text and "| archopt |" in text
    assert (tmp_path / "hv_real_shapes.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["seeds"] == 2 and set(saved["worlds"]) == set(payload["worlds"])


def test_known_loss_reference_reaches_the_whole_front_when_throughput_is_modelled_exactly():
    from optim.bench.known_loss import KnownLossStrategy

    exact, tput = _small_world(
        throughput_error=ThroughputError(common_sd=0.0, shape_sd=0.0, iid_sd=0.0)
    )
    np.testing.assert_allclose(exact.true_tokens_per_s, tput)
    front = [i for i in exact.pareto_indices if exact.true_loss[i] <= exact.loss_target]
    strategy = KnownLossStrategy(exact, tput)
    assert set(strategy.order[: len(front)]) == set(front)
    trace = run_campaign(
        exact,
        None,
        strategy,
        init_idx=np.zeros(0, dtype=np.int64),
        batch_sizes=[1] * len(front),
        seed=0,
    )
    assert trace.hv_ratio[-1] == pytest.approx(1.0)
    assert trace.hv_ratio[-2] < 1.0  # every front point counts
    assert sorted(strategy.order.tolist()) == list(range(exact.n))  # every candidate, once


def test_shared_initial_trainings_are_the_same_for_every_method():
    cfg = BenchConfig(
        params=1e8,
        tokens=2e9,
        max_candidates=30,
        seeds=2,
        batches=1,
        max_trainings=8,
        worlds=("matched",),
        methods=("random", "algorithm1"),
        init="shared",
    )
    prior = fake_truth("open-lm-morph", 16)
    result = run_bench(cfg, prior=prior, progress=False, real_data=False)
    methods = result.worlds["matched"]["methods"]
    for seed in range(cfg.seeds):
        curves = [m["trainings_per_seed"][seed] for m in methods.values()]
        assert all(t[0] == cfg.n_init for t in curves)
        starts = {m["hv_ratio_per_seed"][seed][0] for m in methods.values()}
        assert len(starts) == 1  # the same trained set before any proposal
    with pytest.raises(BenchError, match="init must be one of"):
        BenchConfig(init="oracle")


def test_archopt_beats_random_search_on_a_small_world():
    """A property of the method, not a timing: on worlds drawn from archopt's prior (80
    candidates, fixed seeds), after 4 shared random trainings and two batches of 4, archopt's
    trained set holds more of the true hypervolume than random search's, in most seeds and on
    average."""
    import dataclasses

    import torch

    from models.throughput import Workload
    from optim.core.problem import CampaignSpec, Problem
    from optim.core.strategies import ArchoptStrategy, RandomStrategy

    prior = fake_truth("s", 16)
    spec = CampaignSpec(
        name="t",
        params=1e8,
        tokens=2e9,
        hardware="a100-40gb",
        source="s",
        vocab_size=32000,
        workload=Workload(8, 512, 128),
    )
    full = Problem.build(spec, prior, measurement_cache=False)
    pick = np.random.default_rng(0).choice(np.flatnonzero(full.proposable), 80, replace=False)
    cands = [full.candidates[i] for i in np.sort(pick)]
    ref = REFERENCE.replace(vocab_size=32000)
    max_loss = max_loss_of(prior)
    problem = Problem.build(
        dataclasses.replace(spec, max_loss=max_loss),
        prior,
        measurement_cache=False,
        candidates=cands,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        diffs = []
        for seed in range(5):
            world = make_world(
                cands,
                2e9,
                truth=law_truth(prior, "s"),
                reference=ref,
                max_loss=max_loss,
                throughput_model=problem.throughput_mean,
                seed=seed,
                noise=NoiseEstimate(0.003, 1, "t"),
                residual_rel_sigma=0.003,
                throughput_error=ThroughputError(),
            )
            init = np.random.default_rng([seed, 1]).choice(world.n, 4, replace=False)
            hv = {}
            for name, strategy in (
                ("archopt", ArchoptStrategy(mc_samples=16)),
                ("random", RandomStrategy()),
            ):
                trace = run_campaign(
                    world, problem, strategy, init_idx=init, batch_sizes=[4, 4], seed=seed
                )
                hv[name] = trace.hv_ratio[-1]
            diffs.append(hv["archopt"] - hv["random"])
    finally:
        torch.set_num_threads(threads)
    assert np.mean(diffs) > 0.1 and sum(d > 0 for d in diffs) >= 4


def test_dev_seeds_are_disjoint_from_the_reported_seeds():
    from optim.bench.config import DEV_FIRST_SEED

    reported = BenchConfig.quick_preset()
    dev = BenchConfig.quick_preset(first_seed=DEV_FIRST_SEED)
    report_seeds = set(range(reported.first_seed, reported.first_seed + reported.seeds))
    dev_seeds = set(range(dev.first_seed, dev.first_seed + dev.seeds))
    assert not report_seeds & dev_seeds


def test_extra_batches_set_the_cap_after_the_common_budget():
    quick = BenchConfig.preset(True, extra_batches=2)
    assert quick.max_trainings == quick.budget + 2 * quick.batch_size
    assert BenchConfig.preset(False, extra_batches=0, seeds=3).max_trainings == quick.budget
    with pytest.raises(BenchError, match="not both"):
        BenchConfig.preset(True, extra_batches=1, max_trainings=40)
    with pytest.raises(BenchError, match="max_trainings must be >= the budget"):
        BenchConfig.preset(True, extra_batches=-1)


def test_cli_rejects_bad_input(capsys):
    from optim.cli import main

    assert main(["bench", "--seeds", "0", "--json"]) == 2
    assert main(["bench", "--extra-batches", "-1", "--json", "--no-real-data"]) == 2
    assert main(["bench", "--first-seed", "-1", "--json", "--no-real-data"]) == 2
    assert main(["bench", "--init", "oracle", "--json", "--no-real-data"]) == 2
    assert (
        main(["bench", "--methods", "nope", "--json", "--no-real-data", "--max-candidates", "1"])
        == 2
    )
    assert "error" in capsys.readouterr().err


@pytest.mark.slow
def test_real_data_check_on_morph():
    from optim.bench import real_data_check

    out = real_data_check(tables=("morph_runs.csv",), ks=(1, 2), progress=False)
    assert out["overall"]["cases"] >= 10
    for name in ("archopt", "algorithm1", "chance"):
        rates = out["overall"][name]
        assert 0.0 <= rates["1"] <= rates["2"] <= 1.0
    case = out["cases"][0]
    assert 1 <= case["archopt_rank"] <= case["n_shapes"]
    assert 1 <= case["algorithm1_rank"] <= case["n_shapes"]


def test_final_choice_uses_only_the_first_trainings(world):
    oracle = GreedyTruthStrategy(world)
    best = world.best_under_target
    late = run_campaign(
        world, None, oracle, init_idx=np.array([best]), batch_sizes=[3], seed=0, choose_at=0
    )
    assert late.chosen is None and late.regret == 1.0 and late.missed


def test_held_out_truth_is_a_least_squares_law_even_when_the_prior_is_a_mixture():
    """The default prior's ``stacked`` law has no least-squares fit: the held-out world's truth
    is the configured family fitted on the held-out table, whatever archopt's prior law is."""
    from optim.bench.config import BenchConfig
    from optim.bench.setups import shifted_truth

    config = BenchConfig()
    truth = shifted_truth(config, law=config.held_out_law, table=config.held_out_table)
    assert truth.law == config.held_out_law != "stacked"
    assert truth.method == "lsq" and truth.num_samples >= 100
