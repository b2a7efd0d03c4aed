"""Arch arithmetic against transformers' own LlamaForCausalLM, the bundled tables and HF config io."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import DATA

from models.arch import SHAPE_FIELDS, Arch, ArchError
from models.errors import ArchoptError

SHAPES = [
    Arch(256, 2, 4, 4, 64, 688, 1000, False),  # MHA, untied
    Arch(256, 3, 8, 2, 48, 640, 1000, True),  # GQA 4, head_dim != d/h, tied
    Arch(512, 4, 8, 1, 64, 1536, 32000, False),  # MQA
    Arch(384, 5, 6, 3, 128, 1024, 50304, True),  # attention width 768 > d_model
    Arch(2048, 16, 32, 8, 64, 8192, 128256, True),  # Llama-3.2-1B
    Arch(4096, 32, 32, 8, 128, 14336, 128256, False),  # Llama-3.1-8B
]


def _meta_model(arch: Arch):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        return LlamaForCausalLM(LlamaConfig.from_dict(arch.to_hf_config()))


@pytest.mark.parametrize(
    "arch", SHAPES, ids=lambda a: a.label() + ("-tied" if a.tie_embeddings else "")
)
def test_params_equal_transformers_numel(arch: Arch) -> None:
    model = _meta_model(arch)
    # parameters() yields a tied weight once, as Arch.params counts it.
    assert sum(p.numel() for p in model.parameters()) == arch.params
    blocks = sum(p.numel() for n, p in model.named_parameters() if ".layers." in n)
    assert blocks + arch.d_model == arch.non_embedding_params
    layer0 = dict(model.model.layers[0].named_parameters())
    assert sum(p.numel() for n, p in layer0.items() if "self_attn" in n) == arch.attention_params
    assert sum(p.numel() for n, p in layer0.items() if "mlp" in n) == arch.mlp_params


@pytest.mark.parametrize("arch", SHAPES[:3], ids=lambda a: a.label())
@pytest.mark.parametrize("seq_len", [1, 7])
def test_forward_flops_match_torch_flop_counter(arch: Arch, seq_len: int) -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = _meta_model(arch)
    ids = torch.zeros(1, seq_len, dtype=torch.long, device="meta")
    with FlopCounterMode(display=False) as counter:
        model(input_ids=ids)
    # The counter prices attention as the full T x T product: T tokens each over T keys.
    assert counter.get_total_flops() == pytest.approx(
        seq_len * arch.forward_flops_per_token(seq_len)
    )


TABLES = sorted(
    p for p in DATA.glob("*.csv") if "params" in p.read_text().splitlines()[0].split(",")
)


def test_tables_found() -> None:
    assert len(TABLES) >= 5


@pytest.mark.parametrize("path", TABLES, ids=lambda p: p.stem)
def test_params_column_reproduced_exactly(path) -> None:
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows
    wrong = [
        (i + 2, row.get("run") or row.get("name"), Arch.from_mapping(row).params, row["params"])
        for i, row in enumerate(rows)
        if Arch.from_mapping(row).params != int(row["params"])
    ]
    assert not wrong, f"(line, run, computed, table): {wrong[:5]}"


@pytest.mark.parametrize("arch", SHAPES, ids=lambda a: a.label())
def test_hf_config_round_trip(arch: Arch, tmp_path) -> None:
    assert Arch.from_hf_config(arch.to_hf_config()) == arch
    path = tmp_path / "config.json"
    path.write_text(json.dumps(arch.to_hf_config()))
    assert Arch.from_hf_config(path) == arch


def test_autoconfig_loads_exported_config(tmp_path) -> None:
    from transformers import AutoConfig

    arch = SHAPES[1]
    (tmp_path / "config.json").write_text(json.dumps(arch.to_hf_config()))
    config = AutoConfig.from_pretrained(str(tmp_path))
    assert config.model_type == "llama"
    assert (
        config.hidden_size,
        config.num_hidden_layers,
        config.num_attention_heads,
        config.num_key_value_heads,
        config.head_dim,
        config.intermediate_size,
        config.vocab_size,
        config.tie_word_embeddings,
    ) == tuple(arch.shape().values())


def test_hf_config_defaults_like_transformers() -> None:
    arch = Arch.from_hf_config(
        {
            "hidden_size": 512,
            "num_hidden_layers": 2,
            "num_attention_heads": 8,
            "intermediate_size": 1024,
            "vocab_size": 100,
        }
    )
    assert (arch.n_kv_heads, arch.head_dim, arch.tie_embeddings) == (8, 64, False)


@pytest.mark.parametrize("bad", [{}, {"hidden_size": 8}, [1, 2]])
def test_hf_config_bad_input_raises(bad, tmp_path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ArchoptError):
        Arch.from_hf_config(path)


def test_hf_config_unreadable_file(tmp_path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(ArchError, match="not valid JSON"):
        Arch.from_hf_config(path)
    with pytest.raises(ArchError, match="not found"):
        Arch.from_hf_config(tmp_path / "missing.json")


GOOD = dict(
    d_model=256,
    n_layers=2,
    n_heads=4,
    n_kv_heads=2,
    head_dim=64,
    ffn_dim=512,
    vocab_size=100,
    tie_embeddings=False,
)


@pytest.mark.parametrize("field", [f for f in SHAPE_FIELDS if f != "tie_embeddings"])
@pytest.mark.parametrize(
    "value", [0, -3, 1.5, "abc", True, float("inf"), float("-inf"), float("nan"), "1e400", "inf"]
)
def test_invalid_field_named(field: str, value) -> None:
    with pytest.raises(ArchError, match=field):
        Arch(**{**GOOD, field: value})


def test_invalid_tie_and_divisibility_named() -> None:
    with pytest.raises(ArchError, match="tie_embeddings"):
        Arch(**{**GOOD, "tie_embeddings": "maybe"})
    with pytest.raises(ArchError, match="n_kv_heads"):
        Arch(**{**GOOD, "n_kv_heads": 3})
    with pytest.raises(ArchError, match="dtype"):
        Arch(**GOOD).kv_bytes_per_token("int3")
    assert issubclass(ArchError, ArchoptError)


def test_table_values_coerced() -> None:
    arch = Arch.from_mapping(
        {
            **{k: str(v) for k, v in GOOD.items() if k != "tie_embeddings"},
            "d_model": 256.0,
            "tie_embeddings": "True",
        }
    )
    assert arch == Arch(**{**GOOD, "tie_embeddings": True})


def test_features_contract() -> None:
    f = Arch(2048, 16, 32, 8, 64, 8192, 128256, True).features()
    for key in (
        "params",
        "non_embedding_params",
        "attention_params",
        "mlp_params",
        "mlp_attn_ratio",
        "d_over_sqrt_n",
        "aspect_ratio",
        "gqa_group",
        "kv_bytes_per_token",
    ):
        assert key in f
    assert f["params"] == 1235814400
    assert f["gqa_group"] == 4 and f["aspect_ratio"] == 128.0
    assert f["mlp_attn_ratio"] == pytest.approx(3 * 8192 / (2 * 64 * 40))
    # 16 layers x 8 kv heads x 64 x (K and V) x 2 bytes
    assert f["kv_bytes_per_token"] == 16 * 8 * 64 * 2 * 2


def test_kv_cache_bytes_match_transformers_cache() -> None:
    import torch

    arch = SHAPES[1]
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig.from_dict(arch.to_hf_config())).to(torch.bfloat16)
    out = model(input_ids=torch.zeros(1, 5, dtype=torch.long), use_cache=True)
    cache = out.past_key_values
    nbytes = sum(
        layer.keys.numel() * layer.keys.element_size()
        + layer.values.numel() * layer.values.element_size()
        for layer in cache.layers
    )
    assert nbytes == 5 * arch.kv_bytes_per_token("bfloat16")


# ---- issue 10, findings 6/9: odd head_dim, > 2^53 parameters, hostile --hf-config ---------------
@pytest.mark.parametrize("head_dim", [1, 25, 63])
def test_odd_head_dim_rejected_for_rope(head_dim: int) -> None:
    with pytest.raises(ArchError, match=f"head_dim must be even .*rotary.*got {head_dim}"):
        Arch(**{**GOOD, "head_dim": head_dim})


def test_shapes_beyond_2_pow_53_params_get_a_clear_message() -> None:
    from models.arch import MAX_PARAMS

    assert MAX_PARAMS == 2**53
    with pytest.raises(ArchError, match=r"1\.600e\+18 parameters; archopt supports at most 2\^53"):
        Arch(1000000, 100000, 1000, 1000, 1000, 4000000, 32000)
    # just below the limit is a valid shape and every count is exact in float64
    arch = Arch(1048576, 1024, 8192, 8192, 128, 262144, 32000, True)
    assert arch.params <= 2**53 and float(arch.params) == arch.params
    # integers written as strings too large for a float are still read exactly
    with pytest.raises(ArchError, match="2\\^53"):
        Arch(**{**GOOD, "d_model": "9007199254740993"})


@pytest.mark.parametrize(
    "content,match",
    [
        (
            '{"hidden_size": Infinity, "num_hidden_layers": 2, "num_attention_heads": 8, '
            '"intermediate_size": 64, "vocab_size": 100}',
            "Infinity is not allowed",
        ),
        (
            '{"hidden_size": 1e400, "num_hidden_layers": 2, "num_attention_heads": 8, '
            '"intermediate_size": 64, "vocab_size": 100}',
            "out of range",
        ),
        ('{"hidden_size": NaN}', "NaN is not allowed"),
        (b"\x7fELF\x02\x01\x01\x00\xff\xff", "not UTF-8"),
        ('{"a": ' * 5000 + "1" + "}" * 5000, "nests deeper than 32"),
        (
            '{"hidden_size": 512, "num_hidden_layers": 2, "num_attention_heads": 8, "intermediate_size": '
            '1024, "vocab_size": 100, "pad": "' + "x" * (1 << 20) + '"}',
            "larger than 1 MiB",
        ),
        (
            '{"hidden_size": "abc", "num_hidden_layers": 2, "num_attention_heads": 8, '
            '"intermediate_size": 64, "vocab_size": 100}',
            "not a multiple of num_attention_heads",
        ),
        (
            '{"hidden_size": 500, "num_hidden_layers": 2, "num_attention_heads": 8, '
            '"intermediate_size": 64, "vocab_size": 100}',
            "give head_dim",
        ),
        (
            '{"hidden_size": 512, "num_hidden_layers": 2, "num_attention_heads": 8, "head_dim": 25, '
            '"intermediate_size": 64, "vocab_size": 100}',
            "head_dim must be even",
        ),
        (
            '{"hidden_size": 512, "num_hidden_layers": 2.5, "num_attention_heads": 8, '
            '"intermediate_size": 64, "vocab_size": 100}',
            "n_layers must be an integer",
        ),
        (
            '{"hidden_size": 512, "num_hidden_layers": 2, "num_attention_heads": 8, '
            '"intermediate_size": 64, "vocab_size": 100, "tie_word_embeddings": "perhaps"}',
            "tie_embeddings must be a boolean",
        ),
        ("[1, 2]", "expected an object"),
    ],
)
def test_hostile_hf_config_is_one_line_error(tmp_path, content, match) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    with pytest.raises(ArchError, match=match) as err:
        Arch.from_hf_config(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_hf_config_from_dev_zero_fails_fast() -> None:
    with pytest.raises(ArchError, match="larger than 1 MiB"):
        Arch.from_hf_config("/dev/zero")
