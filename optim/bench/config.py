"""What the benchmark runs and how big (:class:`BenchConfig`, its presets), the world kinds, the
target and the benchmark's errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.errors import ArchoptError

__all__ = [
    "BenchConfig",
    "BenchError",
    "WorldError",
    "HV_TARGET",
    "KNOWN_LOSS",
    "DEV_FIRST_SEED",
    "INIT_MODES",
    "WORLD_KINDS",
]

#: World kinds (:mod:`optim.bench.worlds`); ``matched`` is the upper bound.
WORLD_KINDS: tuple[str, ...] = ("held_out_source", "real_shapes", "shifted", "matched")

#: How the first batch of every method is chosen (:attr:`BenchConfig.init`).
INIT_MODES: tuple[str, ...] = ("own", "shared")

#: First seed of the design (dev) worlds: world draws disjoint from the reported seeds 0-19.
DEV_FIRST_SEED: int = 1000

#: The reference method that knows every true loss (:mod:`optim.bench.known_loss`): a floor.
KNOWN_LOSS: str = "known_loss"

#: Fraction of the true hypervolume a method must reach.
HV_TARGET: float = 0.95


class BenchError(ArchoptError):
    """Invalid benchmark settings."""


class WorldError(ArchoptError):
    """A world cannot be built from the given inputs."""


# ---- configuration ------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchConfig:
    """What to benchmark and how big.

    Attributes:
        params: non-embedding parameter budget of the campaign (the candidate set).
        tokens: training tokens.
        hardware, workload: throughput setting (``Workload.parse`` text, e.g. ``"64x4096x1024"``
            or None for the campaign default).
        band: budget band of the candidate set.
        max_candidates: random subset of the candidate set (None = all), drawn once.
        seeds: seeds per world kind and method.
        first_seed: the first of them (``first_seed .. first_seed + seeds - 1``). Reported
            numbers use seeds 0-19; design choices are made on other seeds (``DEV_FIRST_SEED``,
            ``archopt bench --dev``) so that the reported worlds never chose the design.
        n_init: size of the first batch of trainings.
        init: how that batch is chosen. ``"own"`` (default): each method proposes it itself,
            as it would in a campaign -- archopt from its prior before any run (the point of
            a prior), plain qNEHVI a scrambled-Sobol batch as Ax does, Algorithm 1 from the
            law, random search at random. ``"shared"``: the same random candidates for every
            method (per seed), which isolates what each method does *after* the start.
        batches, batch_size: proposal budget after the initial trainings (the common budget at
            which HV ratio and regret are compared).
        max_trainings: after the common budget, model-based methods keep proposing batches of
            ``batch_size`` until a seed reaches 95% of the true HV or this many trainings
            (None: every candidate); random search always runs until 95% (it costs nothing).
        methods: strategy names (keys of ``optim.core.strategies.STRATEGIES``, and
            :data:`KNOWN_LOSS`, the reference that knows every true loss: a floor, not a
            competitor).
        worlds: world kinds (:data:`~optim.bench.worlds.WORLD_KINDS`), the first is the headline.
        truth_law, truth_table: the shifted world's law and the one table it is fitted on (least
            squares, Laplace posterior); the shape residual of the shifted and matched worlds is
            measured on that table.
        held_out_table: the table the ``held_out_source`` and ``real_shapes`` worlds come from;
            archopt's prior in those worlds is refitted without it (:func:`prior_without`).
        held_out_law: the law of the ``held_out_source`` world's truth (least squares on
            ``held_out_table``): the shape-aware ``conditional`` family, whatever law archopt's
            prior uses (the default prior's ``stacked`` mixture has no least-squares fit).
        source: the loss source (scale) of the shifted and matched worlds' campaigns (the
            held-out worlds use the refitted prior's reference source).
        quick: label only (the report says which preset ran).
    """

    params: float = 1e9
    tokens: float = 2e10
    hardware: str = "a100-40gb"
    workload: str | None = None
    band: float = 0.05
    max_candidates: int | None = None
    seeds: int = 20
    first_seed: int = 0
    n_init: int = 4
    init: str = "own"
    batches: int = 4
    batch_size: int = 4
    max_trainings: int | None = None
    methods: tuple[str, ...] = ("archopt", "plain_qnehvi", "algorithm1", "random", KNOWN_LOSS)
    worlds: tuple[str, ...] = WORLD_KINDS
    truth_law: str = "aspect_paper"
    truth_table: str = "morph_runs.csv"
    held_out_table: str = "gemstones_runs.csv"
    held_out_law: str = "conditional"
    source: str = "open-lm-morph"
    quick: bool = False

    def __post_init__(self) -> None:
        if self.first_seed < 0:
            raise BenchError(f"first_seed must be >= 0, got {self.first_seed}")
        if self.seeds < 1:
            raise BenchError(f"seeds must be >= 1, got {self.seeds}")
        for name in ("n_init", "batches", "batch_size"):
            if getattr(self, name) < 1:
                raise BenchError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_candidates is not None and self.max_candidates < self.n_init + self.batch_size:
            raise BenchError(
                f"max_candidates must be >= n_init + batch_size ({self.n_init + self.batch_size})"
            )
        if self.max_trainings is not None and self.max_trainings < self.budget:
            raise BenchError(
                f"max_trainings must be >= the budget ({self.budget}), got {self.max_trainings}"
            )
        if self.init not in INIT_MODES:
            raise BenchError(f"init must be one of {', '.join(INIT_MODES)}; got {self.init!r}")
        if not self.methods:
            raise BenchError("give at least one method")
        unknown = set(self.worlds) - set(WORLD_KINDS)
        if unknown or not self.worlds:
            raise BenchError(f"world kinds are {', '.join(WORLD_KINDS)}; got {self.worlds}")

    @classmethod
    def full(cls, **overrides: Any) -> "BenchConfig":
        """The full benchmark: every proposable 1B candidate, all four world kinds, 20 seeds."""
        return cls(**overrides)

    @classmethod
    def quick_preset(cls, **overrides: Any) -> "BenchConfig":
        """Under 15 minutes on 2 cores: a 120-candidate subset, all four world kinds, 20 seeds,
        the same budget of 4 initial + 4 batches of 4 trainings, extension to 95% capped at
        48 trainings for the model-based methods."""
        base: dict[str, Any] = dict(max_candidates=120, max_trainings=48, quick=True)
        base.update(overrides)
        return cls(**base)

    @classmethod
    def preset(
        cls, quick: bool, *, extra_batches: int | None = None, **overrides: Any
    ) -> "BenchConfig":
        """:meth:`quick_preset` or :meth:`full` with ``overrides``.

        Args:
            extra_batches: another way to set ``max_trainings``: at most this many batches of
                ``batch_size`` after the common budget (0: stop at the budget, trainings-to-95%
                censored there). Not together with ``max_trainings``.
        """
        if extra_batches is not None:
            if overrides.get("max_trainings") is not None:
                raise BenchError(
                    "give max_trainings or extra_batches (--max-trainings or --extra-batches), "
                    "not both"
                )
            probe = cls.preset(quick, **overrides)
            overrides["max_trainings"] = probe.budget + extra_batches * probe.batch_size
        return cls.quick_preset(**overrides) if quick else cls.full(**overrides)

    @property
    def budget(self) -> int:
        """Trainings per method at the common budget: initial plus proposed."""
        return self.n_init + self.batches * self.batch_size
