"""What is served: a workload as ``vllm bench throughput`` (or HF ``generate``) runs it.

A :class:`Workload` is ``num_requests`` requests of ``input_len`` prompt tokens and ``output_len``
generated tokens each (fixed lengths, ``ignore_eos``), at most ``batch_size`` sequences at once
(vLLM's ``--max-num-seqs``; HF ``generate``'s batch), served by ``backend`` with weights and KV
cache in ``dtype``. vLLM-only engine settings: ``tp`` (``--tensor-parallel-size``),
``gpu_memory_utilization`` (vLLM's default 0.9) and ``max_batched_tokens``
(``--max-num-batched-tokens``; ``None``: vLLM's own default for the hardware, see
:func:`models.serving.default_max_batched_tokens`).

Serving workloads default to the ``vllm`` backend (:data:`DEFAULT_BACKEND`); ``hf`` is HF
``generate`` with static batches (one GPU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from .arch import DTYPE_BYTES
from .errors import ArchoptError

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "GPU_MEMORY_UTILIZATION", "Workload", "WorkloadError"]

#: Inference backends the model and the measurement harness know.
BACKENDS: tuple[str, ...] = ("hf", "vllm")
#: The backend of a workload that does not name one (serving runs on vLLM).
DEFAULT_BACKEND = "vllm"
#: vLLM's default ``gpu_memory_utilization``: the fraction of device memory the engine may use.
GPU_MEMORY_UTILIZATION = 0.9


class WorkloadError(ArchoptError):
    """An invalid workload (sizes, dtype, backend) or workload string."""


def _as_int(name: str, value: Any, minimum: int = 1) -> int:
    ok = not isinstance(value, bool)
    try:
        as_int = int(value)
        ok = ok and float(value) == as_int
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise WorkloadError(f"{name} must be an integer, got {value!r}")
    if as_int < minimum:
        raise WorkloadError(f"{name} must be >= {minimum}, got {as_int}")
    return as_int


@dataclass(frozen=True)
class Workload:
    """Requests to serve and how (see the module docstring).

    Args:
        batch_size: most sequences in flight at once (vLLM ``max_num_seqs``, HF batch).
        input_len, output_len: prompt and generated tokens per request.
        dtype: weights and KV-cache dtype.
        backend: ``"vllm"`` (default) or ``"hf"``.
        num_requests: requests in the run (default: ``batch_size``, one full batch).
        tp: tensor-parallel GPUs (vLLM only).
        gpu_memory_utilization: fraction of each GPU's memory vLLM may use.
        max_batched_tokens: vLLM's token budget per engine step (``None``: its default).
    """

    batch_size: int = 1
    input_len: int = 128
    output_len: int = 256
    dtype: str = "bfloat16"
    backend: str = DEFAULT_BACKEND
    num_requests: int | None = None
    tp: int = 1
    gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION
    max_batched_tokens: int | None = None

    def __post_init__(self) -> None:
        for name in ("batch_size", "input_len", "output_len", "tp"):
            object.__setattr__(self, name, _as_int(name, getattr(self, name)))
        requests = self.batch_size if self.num_requests is None else self.num_requests
        object.__setattr__(self, "num_requests", _as_int("num_requests", requests))
        if self.max_batched_tokens is not None:
            object.__setattr__(
                self, "max_batched_tokens", _as_int("max_batched_tokens", self.max_batched_tokens)
            )
        if self.dtype not in DTYPE_BYTES:
            raise WorkloadError(f"unknown dtype {self.dtype!r}; known: {', '.join(DTYPE_BYTES)}")
        if self.backend not in BACKENDS:
            raise WorkloadError(f"unknown backend {self.backend!r}; known: {', '.join(BACKENDS)}")
        try:
            util = float(self.gpu_memory_utilization)
        except (TypeError, ValueError):
            util = float("nan")
        if isinstance(self.gpu_memory_utilization, bool) or not (
            math.isfinite(util) and 0 < util <= 1
        ):
            raise WorkloadError(
                f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization!r}"
            )
        object.__setattr__(self, "gpu_memory_utilization", util)
        if self.backend == "hf" and self.tp != 1:
            raise WorkloadError(
                f"tp={self.tp}: tensor-parallel serving is modelled for the vllm "
                f"backend only (HF generate runs on one GPU)"
            )

    _ALIASES = {
        "batch": "batch_size",
        "batch_size": "batch_size",
        "bs": "batch_size",
        "max_num_seqs": "batch_size",
        "input": "input_len",
        "input_len": "input_len",
        "in": "input_len",
        "output": "output_len",
        "output_len": "output_len",
        "out": "output_len",
        "dtype": "dtype",
        "backend": "backend",
        "requests": "num_requests",
        "num_requests": "num_requests",
        "prompts": "num_requests",
        "num_prompts": "num_requests",
        "tp": "tp",
        "tensor_parallel_size": "tp",
        "mem_util": "gpu_memory_utilization",
        "gpu_memory_utilization": "gpu_memory_utilization",
        "max_batched_tokens": "max_batched_tokens",
        "max_num_batched_tokens": "max_batched_tokens",
    }
    _INTS = ("batch_size", "input_len", "output_len", "num_requests", "tp", "max_batched_tokens")

    @classmethod
    def parse(cls, text: str) -> "Workload":
        """Parse ``"batch=64,input=4096,output=1024[,requests=N][,tp=N][,dtype=..][,backend=..]"``
        (also ``mem_util=0.9``, ``max_batched_tokens=8192``).

        Missing keys keep their defaults. Raises :class:`WorkloadError` naming the bad part.
        """
        values: dict[str, Any] = {}
        for part in str(text).split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, value = part.partition("=")
            key = key.strip().lower().replace("-", "_")
            if not sep or not value.strip():
                raise WorkloadError(f"workload part {part!r} is not key=value")
            if key not in cls._ALIASES:
                raise WorkloadError(
                    f"unknown workload key {key!r}; known: batch, input, output, "
                    f"requests, tp, dtype, backend, mem_util, max_batched_tokens"
                )
            name = cls._ALIASES[key]
            if name in values:
                raise WorkloadError(f"workload key {key!r} given twice")
            value = value.strip()
            if name in cls._INTS:
                try:
                    values[name] = int(value)
                except ValueError:
                    raise WorkloadError(f"workload {key}={value!r} is not an integer") from None
            elif name == "gpu_memory_utilization":
                try:
                    values[name] = float(value)
                except ValueError:
                    raise WorkloadError(f"workload {key}={value!r} is not a number") from None
            else:
                values[name] = value
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def n_requests(self) -> int:
        """``num_requests`` as resolved by ``__post_init__`` (never ``None`` after it)."""
        if self.num_requests is None:  # unreachable: __post_init__ fills the default
            raise WorkloadError("num_requests was not resolved")
        return self.num_requests

    def same_run(self, other: "Workload") -> bool:
        """Whether ``other`` describes the same run (every field but the backend)."""
        return all(
            getattr(self, f.name) == getattr(other, f.name)
            for f in fields(self)
            if f.name != "backend"
        )

    def __str__(self) -> str:
        text = (
            f"batch={self.batch_size},input={self.input_len},output={self.output_len},"
            f"dtype={self.dtype},backend={self.backend}"
        )
        if self.num_requests != self.batch_size:
            text += f",requests={self.num_requests}"
        if self.tp != 1:
            text += f",tp={self.tp}"
        if self.gpu_memory_utilization != GPU_MEMORY_UTILIZATION:
            text += f",mem_util={self.gpu_memory_utilization:g}"
        if self.max_batched_tokens is not None:
            text += f",max_batched_tokens={self.max_batched_tokens}"
        return text
