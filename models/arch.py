"""The immutable LLaMA-style decoder shape `Arch` and every quantity derived from it.

Pure arithmetic: no torch, no I/O. The block is LLaMA's: RMSNorm (weight only), grouped-query
attention with q/k/v/o projections and no biases, a SwiGLU MLP (gate, up, down) and a final
RMSNorm. Parameter counts equal ``sum(p.numel())`` of ``transformers.LlamaForCausalLM`` built
from :meth:`Arch.to_hf_config` (tested in ``tests/models/test_arch.py``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .errors import ArchoptError
from .files import JSON_MAX_BYTES, read_json

__all__ = ["Arch", "ArchError", "SHAPE_FIELDS", "DTYPE_BYTES", "MAX_PARAMS", "DEFAULT_VOCAB_SIZE"]

#: Vocabulary size when none is given: the LLaMA-3 tokenizer (128,256 tokens).
DEFAULT_VOCAB_SIZE = 128256

#: The fields that define a shape, in the order run tables and the CLI use.
SHAPE_FIELDS: tuple[str, ...] = (
    "d_model",
    "n_layers",
    "n_heads",
    "n_kv_heads",
    "head_dim",
    "ffn_dim",
    "vocab_size",
    "tie_embeddings",
)

#: Largest total parameter count of a shape: 2^53, below which every count (and every sum of
#: counts the tables hold) is exact in float64. That is ~9e15, thousands of times today's largest.
MAX_PARAMS = 2**53

#: Largest ``--hf-config`` file read (configs are a few kB).
HF_CONFIG_MAX_BYTES = JSON_MAX_BYTES

#: Bytes per element of the dtypes the throughput model and the KV cache know.
DTYPE_BYTES: dict[str, int] = {"float32": 4, "bfloat16": 2, "float16": 2, "fp8": 1, "int8": 1}


class ArchError(ArchoptError):
    """An impossible shape; the message names the field."""


def _dtype_bytes(dtype: str) -> int:
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise ArchError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPE_BYTES)}") from None


@dataclass(frozen=True, slots=True)
class Arch:
    """A decoder-only transformer shape (LLaMA family).

    Args:
        d_model: residual stream width.
        n_layers: number of decoder blocks.
        n_heads: query heads per block.
        n_kv_heads: key/value heads per block; must divide ``n_heads`` (GQA).
        head_dim: per-head dimension (need not equal ``d_model / n_heads``).
        ffn_dim: SwiGLU intermediate size (three ``d_model x ffn_dim`` matrices).
        vocab_size: embedding rows.
        tie_embeddings: whether the output head shares the input embedding.
    """

    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    ffn_dim: int
    vocab_size: int
    tie_embeddings: bool = False

    def __post_init__(self) -> None:
        for name in SHAPE_FIELDS[:-1]:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                # Accept integral floats/numpy ints from tables, reject 1.5, inf or "abc".
                try:
                    as_int = int(value)
                    ok = float(value) == as_int or str(value).strip() == str(as_int)
                except (TypeError, ValueError, OverflowError):
                    ok = False
                if not ok or isinstance(value, bool):
                    raise ArchError(f"{name} must be an integer, got {value!r}")
                object.__setattr__(self, name, as_int)
            if getattr(self, name) <= 0:
                raise ArchError(f"{name} must be positive, got {getattr(self, name)}")
        tie = self.tie_embeddings
        if not isinstance(tie, bool):
            if str(tie).strip().lower() in ("true", "1"):
                tie = True
            elif str(tie).strip().lower() in ("false", "0"):
                tie = False
            else:
                raise ArchError(f"tie_embeddings must be a boolean, got {tie!r}")
            object.__setattr__(self, "tie_embeddings", tie)
        if self.n_heads % self.n_kv_heads:
            raise ArchError(
                f"n_heads ({self.n_heads}) must be divisible by n_kv_heads ({self.n_kv_heads})"
            )
        if self.head_dim % 2:
            raise ArchError(
                f"head_dim must be even (rotary position embeddings rotate pairs of "
                f"dimensions), got {self.head_dim}"
            )
        if self.params > MAX_PARAMS:
            raise ArchError(
                f"the shape has {self.params:.3e} parameters; archopt supports at most "
                f"2^53 = {MAX_PARAMS:.3e} (counts stay exact in float64)"
            )

    # ---- parameter counts -------------------------------------------------------------
    @property
    def attention_params(self) -> int:
        """q, k, v, o projections of one block: ``2 d hd (h + kv)``."""
        return 2 * self.d_model * self.head_dim * (self.n_heads + self.n_kv_heads)

    @property
    def mlp_params(self) -> int:
        """SwiGLU gate, up and down projections of one block: ``3 d ffn``."""
        return 3 * self.d_model * self.ffn_dim

    @property
    def norm_params_per_block(self) -> int:
        return 2 * self.d_model

    @property
    def block_params(self) -> int:
        return self.attention_params + self.mlp_params + self.norm_params_per_block

    @property
    def embedding_params(self) -> int:
        """Input embedding plus, when untied, the output head."""
        return self.vocab_size * self.d_model * (1 if self.tie_embeddings else 2)

    @property
    def non_embedding_params(self) -> int:
        """All blocks plus the final norm: what scaling laws call N."""
        return self.n_layers * self.block_params + self.d_model

    @property
    def params(self) -> int:
        """Total parameters, ``sum(p.numel())`` of the HF model."""
        return self.embedding_params + self.non_embedding_params

    # ---- shape descriptors ------------------------------------------------------------
    @property
    def mlp_attn_ratio(self) -> float:
        """r: MLP parameters over attention parameters per block."""
        return self.mlp_params / self.attention_params

    @property
    def d_over_sqrt_n(self) -> float:
        """``d_model / sqrt(non_embedding_params)`` (arXiv 2510.18245's width knob)."""
        return self.d_model / math.sqrt(self.non_embedding_params)

    @property
    def aspect_ratio(self) -> float:
        """``d_model / n_layers`` (arXiv 2501.18107's R)."""
        return self.d_model / self.n_layers

    @property
    def gqa_group(self) -> int:
        """Query heads per key/value head."""
        return self.n_heads // self.n_kv_heads

    # ---- memory and compute -----------------------------------------------------------
    def kv_bytes_per_token(self, dtype: str = "bfloat16") -> int:
        """KV-cache bytes one token occupies across all layers (K and V)."""
        return 2 * self.n_layers * self.n_kv_heads * self.head_dim * _dtype_bytes(dtype)

    def weight_bytes(self, dtype: str = "bfloat16") -> int:
        """Bytes of all weights (a tied embedding is stored once)."""
        return self.params * _dtype_bytes(dtype)

    @property
    def matmul_params(self) -> int:
        """Weights used in matrix multiplies per token: blocks' projections plus the LM head."""
        return (
            self.n_layers * (self.attention_params + self.mlp_params)
            + self.vocab_size * self.d_model
        )

    def forward_flops_per_token(self, context_len: int = 0) -> float:
        """Forward FLOPs for one token attending to ``context_len`` earlier tokens.

        ``2 * matmul_params`` for the projections and LM head, plus ``4 L T h hd`` for the
        attention scores and the weighted sum of values. Norms and softmax are ignored.
        """
        if context_len < 0:
            raise ArchError(f"context_len must be >= 0, got {context_len}")
        attn = 4.0 * self.n_layers * context_len * self.n_heads * self.head_dim
        return 2.0 * self.matmul_params + attn

    # ---- conversions ------------------------------------------------------------------
    def features(self) -> dict[str, float | int]:
        """Every derived quantity, the JSON the CLI prints (field names are a contract)."""
        return {
            **self.shape(),
            "params": self.params,
            "non_embedding_params": self.non_embedding_params,
            "embedding_params": self.embedding_params,
            "attention_params": self.attention_params,
            "mlp_params": self.mlp_params,
            "mlp_attn_ratio": self.mlp_attn_ratio,
            "d_over_sqrt_n": self.d_over_sqrt_n,
            "aspect_ratio": self.aspect_ratio,
            "gqa_group": self.gqa_group,
            "kv_bytes_per_token": self.kv_bytes_per_token(),
            "weight_bytes": self.weight_bytes(),
            "forward_flops_per_token": self.forward_flops_per_token(0),
        }

    def shape(self) -> dict[str, int | bool]:
        """The eight defining fields as a plain dict."""
        return {name: getattr(self, name) for name in SHAPE_FIELDS}

    def replace(self, **changes: Any) -> "Arch":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> "Arch":
        """Build from any mapping holding the shape fields (a CSV row, a JSON object)."""
        missing = [f for f in SHAPE_FIELDS if f not in row]
        if missing:
            raise ArchError(f"missing shape field(s): {', '.join(missing)}")
        return cls(**{f: row[f] for f in SHAPE_FIELDS})

    def to_hf_config(
        self,
        *,
        rope_theta: float = 500000.0,
        max_position_embeddings: int = 8192,
        torch_dtype: str = "bfloat16",
    ) -> dict[str, Any]:
        """A flat LLaMA ``config.json`` dict; ``head_dim`` is always written explicitly."""
        return {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": self.d_model,
            "num_hidden_layers": self.n_layers,
            "num_attention_heads": self.n_heads,
            "num_key_value_heads": self.n_kv_heads,
            "head_dim": self.head_dim,
            "intermediate_size": self.ffn_dim,
            "vocab_size": self.vocab_size,
            "tie_word_embeddings": self.tie_embeddings,
            "hidden_act": "silu",
            "attention_bias": False,
            "mlp_bias": False,
            "rms_norm_eps": 1e-5,
            "rope_theta": rope_theta,
            "max_position_embeddings": max_position_embeddings,
            "torch_dtype": torch_dtype,
            "bos_token_id": None,
            "eos_token_id": None,
        }

    @classmethod
    def from_hf_config(cls, config: Mapping[str, Any] | str | Path) -> "Arch":
        """Read a LLaMA-style ``config.json`` (a path or its parsed dict).

        ``head_dim`` defaults to ``hidden_size / num_attention_heads`` (which must divide) and
        ``num_key_value_heads`` to ``num_attention_heads``, as transformers does. A path is read
        with :func:`models.files.read_json` (at most 1 MiB, strict JSON, a top-level object).

        Raises:
            ArchError: unreadable file, missing key or invalid size (one line, names the key).
        """
        where = "config"
        if isinstance(config, Mapping):
            parsed: Mapping[str, Any] = config
        else:
            where = f"config {config}"
            parsed = read_json(
                Path(config), what="config file", max_bytes=HF_CONFIG_MAX_BYTES, error=ArchError
            )
        missing = [
            k
            for k in (
                "hidden_size",
                "num_hidden_layers",
                "num_attention_heads",
                "intermediate_size",
                "vocab_size",
            )
            if k not in parsed
        ]
        if missing:
            raise ArchError(f"{where} is missing {missing[0]!r}")
        d, heads = parsed["hidden_size"], parsed["num_attention_heads"]
        head_dim = parsed.get("head_dim")
        if head_dim is None:
            if (
                isinstance(d, int)
                and isinstance(heads, int)
                and not isinstance(d, bool)
                and not isinstance(heads, bool)
                and heads > 0
                and d % heads == 0
            ):
                head_dim = d // heads
            else:
                raise ArchError(
                    f"{where}: hidden_size ({d!r}) is not a multiple of "
                    f"num_attention_heads ({heads!r}); give head_dim"
                )
        kv_heads = parsed.get("num_key_value_heads")
        tie = parsed.get("tie_word_embeddings")
        try:
            return cls(
                d_model=d,
                n_layers=parsed["num_hidden_layers"],
                n_heads=heads,
                n_kv_heads=heads if kv_heads is None else kv_heads,
                head_dim=head_dim,
                ffn_dim=parsed["intermediate_size"],
                vocab_size=parsed["vocab_size"],
                tie_embeddings=False if tie is None else tie,
            )
        except ArchError as exc:
            raise ArchError(f"{where}: {exc}") from None

    def label(self) -> str:
        """A short human-readable name, e.g. ``d2048-L16-h32/8x64-f8192``."""
        return (
            f"d{self.d_model}-L{self.n_layers}-h{self.n_heads}/{self.n_kv_heads}"
            f"x{self.head_dim}-f{self.ffn_dim}"
        )
