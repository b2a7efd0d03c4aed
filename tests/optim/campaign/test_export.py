"""Export of a Pareto set: HF configs that load with AutoConfig and build with exactly the
stated parameter count (meta device), plus pareto.csv / pareto.json."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from models.parametrize import enumerate_archs
from optim.campaign.export import ExportError, export_pareto


def _rows():
    archs = enumerate_archs(5e7, 0.05, vocab_size=32000)
    picks = [archs[0], archs[len(archs) // 2], archs[-1]]
    return [
        {
            "trial": None,
            **a.shape(),
            "params": a.params,
            "non_embedding_params": a.non_embedding_params,
            "pred_loss_mean": 3.0 + i / 10,
            "pred_loss_q05": 2.9,
            "pred_loss_q95": 3.2,
            "pred_tokens_per_s": 1000.0 - i,
            "observed_loss": None,
            "source": "predicted",
            "label": a.label(),
        }
        for i, a in enumerate(picks)
    ]


def test_configs_build_llama_with_the_stated_params(tmp_path):
    import torch
    from transformers import AutoConfig, LlamaForCausalLM

    rows = _rows()
    written = export_pareto(rows, tmp_path / "out", campaign={"name": "x"})
    configs = [p for p in written if p.name == "config.json"]
    assert len(configs) == len(rows)
    for row, path in zip(rows, configs):
        cfg = AutoConfig.from_pretrained(path.parent)
        assert cfg.model_type == "llama" and cfg.head_dim == row["head_dim"]
        with torch.device("meta"):
            model = LlamaForCausalLM(cfg)
        assert sum(p.numel() for p in model.parameters()) == row["params"]


def test_tables_hold_every_row_and_metric(tmp_path):
    rows = _rows()
    export_pareto(rows, tmp_path)
    df = pd.read_csv(tmp_path / "pareto.csv")
    assert len(df) == 3 and {"pred_loss_q05", "pred_loss_q95", "source", "config"} <= set(
        df.columns
    )
    doc = json.loads((tmp_path / "pareto.json").read_text())
    assert [r["label"] for r in doc["pareto"]] == [r["label"] for r in rows]
    assert doc["pareto"][0]["rank"] == 1


def test_export_onto_a_file_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ExportError):
        export_pareto(_rows(), target)


def test_re_export_removes_stale_config_folders_only(tmp_path):
    rows = _rows()
    export_pareto(rows, tmp_path)
    (tmp_path / "notes").mkdir()
    export_pareto(rows[:1], tmp_path)
    assert len(list(tmp_path.glob("*/config.json"))) == 1
    assert (tmp_path / "notes").is_dir()


# ---- issue 10, finding 5: never write through links; read-only folder is one line --------------
def _outside(tmp_path):
    """A folder outside the export folder holding a config.json that must never change."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "config.json").write_text('{"mine": true}\n')
    return outside


@pytest.mark.parametrize("which", ["current member", "stale member"])
def test_symlinked_config_folder_is_refused_and_target_untouched(tmp_path, which):
    from models.arch import Arch
    from optim.campaign.export import config_dirname

    rows = _rows()
    out = tmp_path / "out"
    out.mkdir()
    outside = _outside(tmp_path)
    rank = 1 if which == "current member" else 7
    name = config_dirname(rank, Arch.from_mapping(rows[0]))
    (out / name).symlink_to(outside, target_is_directory=True)
    with pytest.raises(
        ExportError, match=f"{name} is a symbolic link; archopt never writes through links"
    ) as err:
        export_pareto(rows, out)
    assert "\n" not in str(err.value)
    assert (outside / "config.json").read_text() == '{"mine": true}\n'
    assert sorted(p.name for p in outside.iterdir()) == ["config.json"]
    assert sorted(p.name for p in out.iterdir()) == [name]  # nothing written, link kept


def test_links_at_file_names_are_replaced_not_followed(tmp_path):
    from models.arch import Arch
    from optim.campaign.export import config_dirname

    rows = _rows()
    out = tmp_path / "out"
    export_pareto(rows, out)
    outside = _outside(tmp_path)
    victim = tmp_path / "victim.csv"
    victim.write_text("keep\n")
    (out / "pareto.csv").unlink()
    (out / "pareto.csv").symlink_to(victim)
    config = out / config_dirname(1, Arch.from_mapping(rows[0])) / "config.json"
    config.unlink()
    config.symlink_to(outside / "config.json")
    export_pareto(rows, out)
    assert victim.read_text() == "keep\n"
    assert (outside / "config.json").read_text() == '{"mine": true}\n'
    assert not (out / "pareto.csv").is_symlink() and not config.is_symlink()
    assert json.loads(config.read_text())["model_type"] == "llama"


def test_export_into_read_only_folder_is_one_line(tmp_path, readonly_dir):
    with pytest.raises(ExportError, match=f"cannot write to export folder {readonly_dir}") as err:
        export_pareto(_rows(), readonly_dir)
    assert "\n" not in str(err.value)
    with pytest.raises(ExportError, match="cannot write to export folder"):
        export_pareto(_rows(), readonly_dir / "sub")
    assert sorted(p.name for p in readonly_dir.iterdir()) == ["present.txt"]
