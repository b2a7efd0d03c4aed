"""The benchmark's result (:class:`BenchResult`) and its ``archopt bench --json`` contract
(:func:`bench_json`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import BenchConfig

__all__ = [
    "BenchResult",
    "bench_json",
    "json_default",
    "WORLD_METHOD_KEYS",
    "HEADLINE_METHOD_KEYS",
    "PAIRED_KEYS",
]


@dataclass
class BenchResult:
    """Everything a report needs (JSON-able through :meth:`to_dict`).

    Attributes:
        config: the settings that ran.
        worlds: kind -> {"kind", "methods": name -> summary, "paired_vs_plain_qnehvi",
            "vs_algorithm1", "targets", "world_info": per-seed provenance, "n_candidates",
            "max_loss", "prior": provenance of archopt's prior there}.
        real_data: the leave-one-size-out check (None when skipped).
        setup: prior/truth provenance (laws, sources, noise and residual estimates).
        seconds: total wall time.
        load: 1-minute load average at the start and the end of the run.
    """

    config: BenchConfig
    worlds: dict[str, dict[str, Any]]
    real_data: dict[str, Any] | None = None
    setup: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    load: list[float] = field(default_factory=list)

    @property
    def headline(self) -> str:
        return self.config.worlds[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": dataclasses.asdict(self.config),
            "worlds_detail": self.worlds,
            "real_data": self.real_data,
            "setup": self.setup,
            "seconds": self.seconds,
            "load": self.load,
            **bench_json(self),
        }


#: Per-method keys of the ``--json`` contract's ``worlds`` entries, and of its headline block.
WORLD_METHOD_KEYS: tuple[str, ...] = ("trainings_to_95", "final_hv_ratio", "propose_seconds")
HEADLINE_METHOD_KEYS: tuple[str, ...] = WORLD_METHOD_KEYS + ("regret",)
PAIRED_KEYS: tuple[str, ...] = ("hv_diff_mean", "hv_diff_ci95", "trainings_to_95_ratio")


def bench_json(result: BenchResult) -> dict[str, Any]:
    """The CLI's ``--json`` payload (a contract other tools read).

    ``{"methods": {NAME: {"trainings_to_95", "final_hv_ratio", "propose_seconds", "regret"}},
    "seeds": n, "world": headline kind, "targets": {...}`` (the headline world, as before) and
    ``"worlds": {name: {"kind": "held_out_source" | "real_shapes" | "shifted" | "matched",
    "methods": {NAME: {"trainings_to_95": int | null, "final_hv_ratio": float,
    "propose_seconds": float}}, "paired_vs_plain_qnehvi": {"hv_diff_mean": float,
    "hv_diff_ci95": [lo, hi], "trainings_to_95_ratio": float | null}}}``
    (``paired_vs_plain_qnehvi`` is null when archopt or plain qNEHVI did not run).
    """
    head = result.worlds[result.headline]
    worlds = {}
    for name, w in result.worlds.items():
        paired = w.get("paired_vs_plain_qnehvi")
        worlds[name] = {
            "kind": w["kind"],
            "methods": {m: {k: s[k] for k in WORLD_METHOD_KEYS} for m, s in w["methods"].items()},
            "paired_vs_plain_qnehvi": (
                None if paired is None else {k: paired[k] for k in PAIRED_KEYS}
            ),
        }
    return {
        "methods": {m: {k: s[k] for k in HEADLINE_METHOD_KEYS} for m, s in head["methods"].items()},
        "seeds": result.config.seeds,
        "world": result.headline,
        "targets": head.get("targets", {}),
        "worlds": worlds,
    }


def json_default(value: Any) -> Any:
    """``json.dumps`` default for numpy scalars and arrays."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
