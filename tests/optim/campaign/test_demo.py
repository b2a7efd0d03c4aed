"""The main job, end to end: ``archopt demo`` on the real bundled prior (``real_demo`` in
conftest runs it once per session, as a user does), checked for what a user relies on:
exit 0, a proposed batch with finite predictions, a non-empty Pareto set, exported configs that
build the stated LLaMA models, and a ``summary.json`` consistent with all of it.

Only properties are asserted (bands around means, budgets, dominance, parameter counts), never
numbers from one machine. ``demo_summary`` (pure) is also tested on a hand-made result.
"""

from __future__ import annotations

import json
import math

import pytest

from optim.campaign.demo import HEADLINE_REFERENCE, SUMMARY_FILE, demo_spec, demo_summary


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@pytest.fixture(scope="module")
def demo(real_demo):
    assert real_demo.returncode == 0, (real_demo.stdout[-2000:], real_demo.stderr[-3000:])
    return real_demo


@pytest.fixture(scope="module")
def summary(demo) -> dict:
    return json.loads((demo.export / SUMMARY_FILE).read_text())


@pytest.fixture(scope="module")
def pareto(demo) -> list[dict]:
    return json.loads((demo.export / "pareto.json").read_text())["pareto"]


def _loss(row: dict) -> float:
    return row["observed_loss"] if row.get("observed_loss") is not None else row["pred_loss_mean"]


@pytest.mark.slow
def test_demo_exits_0_and_prints_the_batch_front_and_comparison(demo, summary):
    assert "Traceback" not in demo.stderr, demo.stderr[-3000:]
    out = demo.stdout
    for heading in (
        "proposed next runs (predictions)",
        "predicted Pareto set",
        "reference shapes vs the fastest Pareto shape",
    ):
        assert heading in out
    assert "model prediction" in out  # it says its numbers are predictions
    assert f"exported {summary['pareto_count']} configs to archopt-demo" in out
    assert summary["predictions_only"] is True


@pytest.mark.slow
def test_proposed_batch_is_finite_distinct_and_in_budget(summary):
    spec = demo_spec()
    batch = summary["proposals"]
    assert len(batch) == 4
    assert sorted(p["trial"] for p in batch) == [0, 1, 2, 3]
    assert len({p["label"] for p in batch}) == 4
    for p in batch:
        assert all(
            _finite(p[k])
            for k in (
                "pred_loss_mean",
                "pred_loss_q05",
                "pred_loss_q95",
                "pred_tokens_per_s",
                "ehvi",
            )
        ), p
        assert p["pred_loss_q05"] < p["pred_loss_mean"] < p["pred_loss_q95"]
        assert 1.0 < p["pred_loss_mean"] < 5.0  # a language-model loss in nats, not a blow-up
        assert p["pred_tokens_per_s"] > 0 and p["ehvi"] >= 0
        assert abs(p["non_embedding_params"] / spec.params - 1) <= spec.band
        assert p["params"] > p["non_embedding_params"]


@pytest.mark.slow
def test_pareto_set_is_nonempty_nondominated_and_matches_the_export(demo, summary, pareto):
    assert summary["pareto_count"] == len(pareto) >= 1
    spec = demo_spec()
    for row in pareto:
        assert row["source"] in ("observed", "predicted")
        assert _finite(row["pred_loss_mean"]) and row["pred_tokens_per_s"] > 0
        assert row["pred_loss_q05"] < row["pred_loss_mean"] < row["pred_loss_q95"]
        assert abs(row["non_embedding_params"] / spec.params - 1) <= spec.band
    for a in pareto:  # no member is dominated by another (lower loss and more tokens/s)
        for b in pareto:
            assert not (_loss(b) < _loss(a) and b["pred_tokens_per_s"] > a["pred_tokens_per_s"]), (
                a["label"],
                b["label"],
            )
    losses = [r["pred_loss_mean"] for r in pareto]
    speeds = [r["pred_tokens_per_s"] for r in pareto]
    assert summary["pareto_pred_loss_range"] == pytest.approx([min(losses), max(losses)])
    assert summary["pareto_tokens_per_s_range"] == pytest.approx([min(speeds), max(speeds)])
    configs = sorted(demo.export.glob("*/config.json"))
    assert len(configs) == len(pareto)
    assert (demo.export / "pareto.csv").is_file()


@pytest.mark.slow
def test_exported_configs_build_llama_with_the_stated_parameter_count(demo, pareto):
    import torch
    from transformers import AutoConfig, LlamaForCausalLM

    for row in pareto:
        folder = demo.export / row["config"].rsplit("/", 1)[0]
        cfg = AutoConfig.from_pretrained(folder)  # a local folder: nothing is downloaded
        assert cfg.model_type == "llama"
        assert (
            cfg.hidden_size,
            cfg.num_hidden_layers,
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim,
            cfg.intermediate_size,
            cfg.vocab_size,
        ) == (
            row["d_model"],
            row["n_layers"],
            row["n_heads"],
            row["n_kv_heads"],
            row["head_dim"],
            row["ffn_dim"],
            row["vocab_size"],
        )
        with torch.device("meta"):
            model = LlamaForCausalLM(cfg)
        assert sum(p.numel() for p in model.parameters()) == row["params"], row["label"]


@pytest.mark.slow
def test_headline_is_the_fastest_front_shape_at_equal_or_better_loss(summary, pareto):
    head = summary["headline"]
    assert head["reference"] == HEADLINE_REFERENCE
    ref = next(r for r in summary["references"] if r["name"] == HEADLINE_REFERENCE)
    assert _finite(ref["pred_loss_mean"]) and ref["pred_tokens_per_s"] > 0
    eligible = [r for r in pareto if _loss(r) <= ref["pred_loss_mean"]]
    assert eligible, "no Pareto shape at the reference's predicted loss or better"
    fastest = max(eligible, key=lambda r: r["pred_tokens_per_s"])
    assert head["chosen"] == fastest["label"]
    assert head["chosen_pred_loss"] <= head["reference_pred_loss"]
    assert head["speedup"] == pytest.approx(
        head["chosen_tokens_per_s"] / head["reference_tokens_per_s"]
    )
    # The README's claim: at equal-or-better predicted loss the front is faster than LLaMA-3.2-1B
    # (measured 1.4-1.5x; its shape is not on the search grid, so this is a finding, not a tautology).
    assert head["speedup"] > 1.0


def test_demo_summary_is_plain_json_with_the_headline():
    nan = float("nan")
    result = {
        "campaign": {"name": "demo-1b", "params": 1e9},
        "proposals": [
            {
                "trial": 0,
                "label": "a",
                "pred_loss_mean": 2.1,
                "pred_loss_q05": 2.0,
                "pred_loss_q95": 2.2,
                "pred_tokens_per_s": 10.0,
                "ehvi": nan,
                "params": 5,
                "non_embedding_params": 4,
                "extra": "dropped",
            }
        ],
        "pareto": [
            {"pred_loss_mean": 2.1, "pred_tokens_per_s": 10.0},
            {"pred_loss_mean": 2.0, "pred_tokens_per_s": 4.0},
        ],
        "references": [
            {"name": "Llama-3.2-3B", "pred_loss_mean": 2.0, "pred_tokens_per_s": 3.0},
            {
                "name": HEADLINE_REFERENCE,
                "pred_loss_mean": 2.2,
                "pred_tokens_per_s": 5.0,
                "match_label": "a",
                "match_pred_loss_mean": 2.1,
                "match_pred_tokens_per_s": 10.0,
                "speedup": 2.0,
            },
        ],
    }
    s = demo_summary(result, prior_info={"law": "conditional"})
    json.dumps(s, allow_nan=False)  # NaN became null
    assert s["proposals"] == [
        {
            "trial": 0,
            "label": "a",
            "params": 5,
            "non_embedding_params": 4,
            "pred_loss_mean": 2.1,
            "pred_loss_q05": 2.0,
            "pred_loss_q95": 2.2,
            "pred_tokens_per_s": 10.0,
            "ehvi": None,
        }
    ]
    assert s["pareto_count"] == 2
    assert s["pareto_pred_loss_range"] == [2.0, 2.1]
    assert s["pareto_tokens_per_s_range"] == [4.0, 10.0]
    assert s["headline"] == {
        "reference": HEADLINE_REFERENCE,
        "chosen": "a",
        "speedup": 2.0,
        "reference_pred_loss": 2.2,
        "chosen_pred_loss": 2.1,
        "reference_tokens_per_s": 5.0,
        "chosen_tokens_per_s": 10.0,
    }
    assert s["references"][0]["speedup"] is None  # no match: null, not missing
    assert s["prior"] == {"law": "conditional"}
    no_head = demo_summary({**result, "references": result["references"][:1], "pareto": []})
    assert no_head["headline"] is None and no_head["pareto_count"] == 0
    assert no_head["pareto_pred_loss_range"] is None
