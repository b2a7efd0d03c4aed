"""The benchmark runner, its metrics, the report and the CLI (a tiny bench end to end)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.parametrize import enumerate_archs
from optim.bench import (BenchConfig, BenchError, MethodTrace, bench_json, evaluate_targets,
                         run_bench, run_campaign, summarize_method, trainings_to, write_report)
from optim.bench.worlds import NoiseEstimate, make_world

from test_worlds import fake_truth


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


@pytest.fixture(scope="module")
def world():
    cands = enumerate_archs(1e8)[:60]
    tput = np.array([1e6 / a.n_layers / a.d_model ** 0.5 for a in cands])
    return make_world(cands, 2e9, truth=fake_truth(), source="s", throughput_model=tput,
                      throughput_rel_sigma=0.05, seed=0, noise=NoiseEstimate(0.003, 1, "t"),
                      residual_rel_sigma=0.005)


def test_oracle_reaches_full_hypervolume_and_zero_regret(world):
    oracle = GreedyTruthStrategy(world)
    k = max(1, len(world.pareto_indices))
    trace = run_campaign(world, None, oracle, init_idx=np.array([0, 1]), batch_sizes=[k],
                         seed=0)
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
    traces = [MethodTrace(trainings=[4, 8, 12], hv_ratio=[0.2, 0.9, 1.0], propose_seconds=[1, 3],
                          regret=0.1),
              MethodTrace(trainings=[4, 8, 12], hv_ratio=[0.4, 1.0, 1.0], propose_seconds=[2, 2],
                          regret=0.3)]
    s = summarize_method(traces, budget=8)
    assert s["trainings_to_95"] == 8 and s["final_hv_ratio"] == pytest.approx(0.95)
    assert s["propose_seconds"] == pytest.approx(2.0) and s["regret"] == pytest.approx(0.2)
    assert s["seeds_reaching_95"] == 2


def test_targets_compare_trainings():
    methods = {"archopt": {"trainings_to_95": 8, "trainings": [4, 8]},
               "plain_qnehvi": {"trainings_to_95": 20, "trainings": [4, 20]},
               "random": {"trainings_to_95": 20, "trainings": [4, 20]}}
    vs = {"trainings": [4, 8], "mean": [0.0, -0.2], "ci95": [0.0, 0.1]}
    t = evaluate_targets(methods, vs, budget=8)
    assert t["half_of_qnehvi"]["met"] is True
    assert t["third_of_random"]["met"] is False
    assert t["matches_algorithm1"]["met"] is False


def test_config_validation():
    with pytest.raises(BenchError):
        BenchConfig(seeds=0)
    with pytest.raises(BenchError):
        BenchConfig(worlds=("nowhere",))
    assert BenchConfig.quick_preset().quick and BenchConfig().budget == 20


@pytest.mark.slow
def test_tiny_bench_end_to_end(tmp_path):
    """Real strategies and Problem on 30 candidates, 2 seeds, 1 batch; JSON schema and report."""
    cfg = BenchConfig(params=1e8, tokens=2e9, max_candidates=30, seeds=2, batches=1,
                      extra_batches=1, random_extra_batches=1, worlds=("shifted",))
    result = run_bench(cfg, prior=fake_truth("open-lm-morph", 16), progress=False,
                       real_data=False)
    payload = json.loads(json.dumps(bench_json(result)))
    assert payload["seeds"] == 2
    assert set(payload["methods"]) == {"archopt", "plain_qnehvi", "algorithm1", "random"}
    for m in payload["methods"].values():
        assert {"trainings_to_95", "final_hv_ratio", "propose_seconds"} <= set(m)
        assert 0.0 <= m["final_hv_ratio"] <= 1.0
        assert m["trainings_to_95"] is None or isinstance(m["trainings_to_95"], int)
        assert m["propose_seconds"] >= 0.0
    curve = result.worlds["shifted"]["methods"]["random"]["hv_ratio_per_seed"]
    assert all(0.0 <= v <= 1.0 for row in curve for v in row)
    report = write_report(result, tmp_path)
    text = report.read_text()
    assert "shifted world" in text and "| archopt |" in text
    assert (tmp_path / "hv_shifted.png").stat().st_size > 1000
    assert json.loads((tmp_path / "results.json").read_text())["seeds"] == 2


def test_cli_rejects_bad_input(capsys):
    from optim.cli import main

    assert main(["bench", "--seeds", "0", "--json"]) == 2
    assert main(["bench", "--extra-batches", "-1", "--json", "--no-real-data"]) == 2
    assert main(["bench", "--methods", "nope", "--json", "--no-real-data",
                 "--max-candidates", "1"]) == 2
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
    late = run_campaign(world, None, oracle, init_idx=np.array([best]), batch_sizes=[3],
                        seed=0, choose_at=0)
    assert late.chosen is None and late.regret == 1.0 and late.missed
