"""What a campaign optimizes (:class:`CampaignSpec`): the budget, the tokens, the hardware and
serving workload, the constraints and the candidate grid; validated on construction and stored
with the campaign (:meth:`CampaignSpec.to_dict`). :class:`~optim.core.problem.Problem` turns it
into the arrays every strategy reads.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from models.arch import DEFAULT_VOCAB_SIZE, Arch
from models.errors import ArchoptError
from models.parametrize import SearchSpace, budget_bounds
from models.throughput import Workload
from surrogate.laws import STACKED

__all__ = ["CampaignSpec", "ProblemError", "DEFAULT_WORKLOAD", "TOKENS_RTOL"]

#: Relative tolerance on a finished run's training tokens versus the campaign's.
TOKENS_RTOL = 0.01
#: The serving workload a campaign optimizes for unless told otherwise: vLLM, batch 64, 4,096
#: prompt and 1,024 generated tokens per request.
DEFAULT_WORKLOAD = Workload(64, 4096, 1024, backend="vllm")


class ProblemError(ArchoptError):
    """A campaign specification that cannot define a problem."""


def _space_from(value: Any) -> SearchSpace:
    if isinstance(value, SearchSpace):
        return value
    if isinstance(value, Mapping):
        kwargs: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in value.items()
        }
        return SearchSpace(**kwargs)
    raise ProblemError(f"space must be a SearchSpace or a mapping, got {type(value).__name__}")


def _workload_from(value: Any) -> Workload:
    if isinstance(value, Workload):
        return value
    if isinstance(value, str):
        return Workload.parse(value)
    if isinstance(value, Mapping):
        return Workload(**value)
    raise ProblemError(
        f"workload must be a Workload, a mapping or 'batch=..,input=..', got {value!r}"
    )


def _positive(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ProblemError(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ProblemError(f"{name} must be a positive finite number, got {value!r}")
    return v


@dataclass(frozen=True)
class CampaignSpec:
    """What a campaign optimizes.

    Args:
        name: campaign name (letters, digits, ``-_.``).
        params: target non-embedding parameter count N.
        tokens: training tokens D of every run.
        hardware: hardware profile id (:func:`models.hardware.get_hardware`).
        band: relative tolerance on N; candidates hold it exactly.
        workload: serving workload throughput is predicted/measured for (default
            :data:`DEFAULT_WORKLOAD`: vLLM, batch 64, 4,096 in, 1,024 out).
        max_loss: optional loss constraint (also the hypervolume reference loss).
        min_throughput: optional tokens/s constraint (also the reference throughput).
        must_fit: drop candidates whose weights + KV cache do not fit the device memory.
        vocab_size, tie_embeddings: fixed for all candidates.
        law: the scaling law of the prior posterior (default: the stacked law of the
            validated default prior, :data:`surrogate.laws.STACKED`; another law is fitted on the
            bundled tables when the campaign is created).
        space: the candidate grid.
        source: the run-table source whose offset/scale the campaign's losses are on
            (``None``: the prior's reference source); a remaining offset is learned.
        hardware_profile: the :class:`models.hardware.Hardware` fields of ``hardware``, filled
            in at creation and stored with the campaign, so the campaign keeps working when a
            user profile is later edited or removed from ``hardware.json``.
    """

    name: str
    params: float
    tokens: float
    hardware: str
    band: float = 0.05
    workload: Workload = field(default_factory=lambda: DEFAULT_WORKLOAD)
    max_loss: float | None = None
    min_throughput: float | None = None
    must_fit: bool = True
    vocab_size: int = DEFAULT_VOCAB_SIZE
    tie_embeddings: bool = True
    law: str = STACKED
    space: SearchSpace = field(default_factory=SearchSpace)
    source: str | None = None
    hardware_profile: Mapping[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        import re

        if not isinstance(self.name, str) or not re.fullmatch(
            r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", self.name
        ):
            raise ProblemError(
                f"campaign name must be letters, digits, '-', '_' or '.', got {self.name!r}"
            )
        object.__setattr__(self, "params", _positive("params", self.params))
        object.__setattr__(self, "tokens", _positive("tokens", self.tokens))
        budget_bounds(self.params, float(self.band))
        object.__setattr__(self, "band", float(self.band))
        object.__setattr__(self, "workload", _workload_from(self.workload))
        object.__setattr__(self, "space", _space_from(self.space))
        from models.hardware import Hardware, HardwareError, get_hardware

        if self.hardware_profile is None:
            hw = get_hardware(self.hardware)
        else:
            try:
                hw = Hardware(**dict(self.hardware_profile))
            except TypeError as exc:
                raise HardwareError(
                    f"stored hardware profile of {self.hardware!r} is invalid: {exc}"
                ) from None
        object.__setattr__(self, "hardware", hw.id)
        object.__setattr__(self, "hardware_profile", dataclasses.asdict(hw))
        for name in ("max_loss", "min_throughput"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _positive(name, getattr(self, name)))
        object.__setattr__(self, "vocab_size", int(_positive("vocab_size", self.vocab_size)))
        object.__setattr__(self, "tie_embeddings", bool(self.tie_embeddings))
        object.__setattr__(self, "must_fit", bool(self.must_fit))

    @property
    def device(self) -> Any:
        """The campaign's :class:`models.hardware.Hardware` (from the stored profile)."""
        from models.hardware import Hardware

        return Hardware(**dict(self.hardware_profile or {}))

    def budget_bounds(self) -> tuple[int, int]:
        """Inclusive non-embedding parameter bounds of the band."""
        return budget_bounds(self.params, self.band)

    def run_mismatch(self, arch: Arch, tokens: float | None = None) -> str | None:
        """Why a finished run of ``arch`` on ``tokens`` does not belong to this campaign
        (non-embedding params outside the band, another vocab size or tying, tokens off by more
        than :data:`TOKENS_RTOL`), or ``None`` when it does."""
        lo, hi = self.budget_bounds()
        n = arch.non_embedding_params
        if not lo <= n <= hi:
            return f"has {n:,} non-embedding params, outside the campaign's budget [{lo:,}, {hi:,}]"
        if (arch.vocab_size, arch.tie_embeddings) != (self.vocab_size, self.tie_embeddings):
            return (
                f"has vocab_size={arch.vocab_size}, tie_embeddings={arch.tie_embeddings}; "
                f"the campaign uses {self.vocab_size}, {self.tie_embeddings}"
            )
        if tokens is not None and abs(tokens / self.tokens - 1) > TOKENS_RTOL:
            return f"was trained on {tokens:.4g} tokens, the campaign on {self.tokens:.4g}"
        return None

    def in_band(self, arch: Arch) -> bool:
        lo, hi = self.budget_bounds()
        return lo <= arch.non_embedding_params <= hi

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (round-trips through :meth:`from_dict`)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["workload"] = self.workload.to_dict()
        out["space"] = dataclasses.asdict(self.space)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CampaignSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
