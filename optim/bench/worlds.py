"""Ground-truth worlds for the benchmark, grounded in the real run tables.

A :class:`World` is a fixed set of candidate architectures with a noise-free true loss and true
throughput for each, plus the noise every observation carries. Optimizers see a world only
through :meth:`World.observe`; the benchmark scores them with the noise-free values.

World kinds (:data:`WORLD_KINDS`; how the truth's *shape effect* is made):

* ``held_out_source``: a law (archopt's family) fitted on one table -- by default Gemstones --
  that archopt's prior is refitted *without*: what a new source's data look like to a prior that
  never saw it.
* ``real_shapes``: no law at all. Real per-shape losses of one table (Gemstones: 14 shapes of
  widths 256-1792 and depths 3-80, each at 10 token budgets) minus a shape-blind size trend
  fitted to the same runs, averaged over the budgets, give the real shape effect as a function of
  ``ln(d_model / sqrt(N))``; a 1-D GP smoother interpolates it at the candidates
  (:class:`~.truths.ShapeEffect`). Gemstones never varies the MLP ratio, GQA or head size, so along those
  the truth has only the random residual below. The prior is the one refitted without the table.
* ``shifted``: another law family (``aspect_paper``, arXiv 2501.18107: shape enters only through
  ``d/L``, monotonically) fitted on morph_runs; archopt's prior is its default one.
* ``matched``: a draw from archopt's own prior. **An upper bound** (the prior is right by
  construction, apart from the residual), labelled so in every report.

How a world is built (:func:`make_world`), per seed:

* **Base.** The kind's truth at the candidates and at a *reference shape*
  (:func:`~.truths.reference_shape`: LLaMA-3 proportions at the budget -- at 1B exactly LLaMA-3.2-1B's
  block shape); for law kinds one posterior draw chosen by the seed.
* **Residual.** A smooth shape-dependent term no law contains: a draw of a zero-mean GP
  (squared-exponential kernel, random Fourier features) over standardized
  ``ln(d/sqrt(N)), ln r, ln(d/L), ln(GQA group)`` (``real_shapes``: ``ln r, ln GQA`` only),
  applied multiplicatively. Its sd is :func:`~.estimates.estimate_shape_residual`: the spread of real losses
  around the law *within* one size, with the run-to-run noise removed in quadrature.
* **Level (no oracle).** What a user would set: ``max_loss`` is the prior's predicted loss at the
  reference shape ("at least as good as LLaMA's shape"), the same for every method. The truth is
  scaled by one constant so that its loss at the reference shape equals that number, so the
  user's target means the same thing in every world: *beat the reference shape*. A constant
  changes no shape's rank, and every method learns the level from its first run.
* **Noise.** Each observed loss is ``true * exp(eps)``, ``eps ~ N(0, sigma)``, ``sigma`` from
  :func:`~.estimates.estimate_run_noise` (repeats of one shape in openlm_grid.csv).
* **Throughput.** The throughput model's tokens/s times a true error the optimizer does not know
  (:class:`ThroughputError`): a factor common to every shape, a smooth shape-dependent factor
  and a small per-shape one -- larger than the model's own claimed ``rel_sigma``. (The
  calibration-constant draws of the serving-throughput work are not exposed by ``Problem`` yet;
  this documented lognormal stands in for them.) A measured throughput adds measurement noise.

The objectives are ``(-loss, ln tokens_per_s)``, both maximized, as BoTorch's multi-objective
utilities expect -- the space the campaign's acquisition works in (:mod:`optim.core.acquisition`),
so the benchmark scores what the optimizer optimizes. The scoring reference point is ``max_loss``
and, for throughput, the slowest true-Pareto point under it minus 10% of the front's range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from models.arch import Arch

from .config import WORLD_KINDS, WorldError
from .estimates import NoiseEstimate
from .hypervolume import hypervolume, pareto_mask, reference_point
from .residuals import ThroughputError, shape_feature_matrix, smooth_residual, true_throughput
from .truths import TruthFn, law_truth, reference_shape

__all__ = [
    "World",
    "MIN_UNDER_TARGET",
    "make_world",
    # defined in .config, .estimates, .residuals, .truths; importable from here as before
    "WORLD_KINDS",
    "WorldError",
    "NoiseEstimate",
    "ThroughputError",
    "TruthFn",
    "law_truth",
    "reference_shape",
]


@dataclass(frozen=True, eq=False)
class World:
    """Noise-free truth over a candidate set, and noisy observations of it.

    Attributes:
        name: world kind and seed, for reports.
        candidates: the ``n`` architectures (same order as the optimizer's problem).
        tokens: training tokens of every candidate.
        true_loss: noise-free loss, shape ``(n,)``.
        true_tokens_per_s: noise-free throughput, shape ``(n,)``.
        loss_noise_rel: relative noise sd of an observed loss.
        throughput_noise_rel: relative noise sd of a measured throughput.
        loss_target: the user's ``max_loss`` (the prior's prediction at the reference shape):
            the final-regret target and the loss side of the HV reference.
        ref_point: hypervolume reference in objective space ``(-loss, ln tokens/s)``, ``(2,)``.
        kind: one of :data:`WORLD_KINDS` (or a test's label).
        info: provenance (law, draw, residual size, noise method, reference shape).
    """

    name: str
    candidates: tuple[Arch, ...]
    tokens: float
    true_loss: np.ndarray
    true_tokens_per_s: np.ndarray
    loss_noise_rel: float
    throughput_noise_rel: float
    loss_target: float
    ref_point: np.ndarray
    kind: str = "world"
    info: dict[str, Any] = field(default_factory=dict)
    _true_hv: float | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.candidates)
        for name in ("true_loss", "true_tokens_per_s"):
            arr = np.asarray(getattr(self, name), float)
            if (
                arr.shape != (n,)
                or not np.all(np.isfinite(arr))
                or (name == "true_tokens_per_s" and np.any(arr <= 0))
            ):
                raise WorldError(f"{name} must be finite with shape ({n},), got {arr.shape}")
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "ref_point", np.asarray(self.ref_point, float).reshape(2))
        object.__setattr__(self, "_true_hv", None)

    @property
    def n(self) -> int:
        return len(self.candidates)

    def objectives(self, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """True ``(-loss, ln tokens/s)`` of ``indices`` (all if None), shape ``k x 2``."""
        idx = np.arange(self.n) if indices is None else np.asarray(indices, dtype=np.int64)
        return np.stack([-self.true_loss[idx], np.log(self.true_tokens_per_s[idx])], axis=-1)

    def observe(
        self, indices: Sequence[int] | np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Train and measure ``indices``: noisy ``(loss, tokens_per_s)``, each shape ``(k,)``."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n):
            raise WorldError(f"candidate index out of range [0, {self.n})")
        loss = self.true_loss[idx] * np.exp(rng.normal(0.0, self.loss_noise_rel, idx.size))
        tps = self.true_tokens_per_s[idx] * np.exp(
            rng.normal(0.0, self.throughput_noise_rel, idx.size)
        )
        return loss, tps

    @property
    def true_hv(self) -> float:
        """Hypervolume of the noise-free objectives over all candidates."""
        value = self._true_hv
        if value is None:
            value = float(hypervolume(self.objectives(), self.ref_point))
            object.__setattr__(self, "_true_hv", value)
        return value

    def hv_ratio(self, indices: Sequence[int] | np.ndarray) -> float:
        """HV of the true objectives of ``indices`` over :attr:`true_hv`, in [0, 1]."""
        idx = np.unique(np.asarray(indices, dtype=np.int64))
        if idx.size == 0 or self.true_hv <= 0:
            return 0.0
        return min(1.0, hypervolume(self.objectives(idx), self.ref_point) / self.true_hv)

    @property
    def pareto_indices(self) -> np.ndarray:
        """Candidates on the true Pareto front."""
        return np.flatnonzero(pareto_mask(self.objectives()))

    @property
    def best_under_target(self) -> int:
        """The fastest candidate whose true loss meets :attr:`loss_target`."""
        ok = np.flatnonzero(self.true_loss <= self.loss_target)
        if ok.size == 0:
            raise WorldError("no candidate meets the loss target")
        return int(ok[np.argmax(self.true_tokens_per_s[ok])])

    def regret(self, chosen: int | None) -> float:
        """Relative throughput regret of ``chosen`` under the loss target, in [0, 1].

        ``1 - tps(chosen) / tps(best under target)``; an architecture whose *true* loss misses
        the target, or no choice at all (None), counts as regret 1.
        """
        if chosen is None or self.true_loss[chosen] > self.loss_target:
            return 1.0
        best = self.true_tokens_per_s[self.best_under_target]
        return float(max(0.0, 1.0 - self.true_tokens_per_s[chosen] / best))


#: Fewest candidates whose true loss must beat ``max_loss`` for a world to count; a draw with
#: fewer is redrawn (see :func:`make_world`).
MIN_UNDER_TARGET: int = 3


def make_world(
    candidates: Sequence[Arch],
    tokens: float,
    *,
    truth: TruthFn,
    reference: Arch,
    max_loss: float,
    throughput_model: np.ndarray,
    seed: int,
    noise: NoiseEstimate,
    residual_rel_sigma: float,
    throughput_error: ThroughputError | None = None,
    residual_columns: Sequence[int] = (0, 1, 2, 3),
    residual_lengthscale: float = 1.0,
    kind: str = "world",
    name: str = "world",
    info: Mapping[str, Any] | None = None,
) -> World:
    """Build one ground-truth world (see the module docstring).

    Args:
        candidates: the ``n`` architectures.
        tokens: training tokens.
        truth: the kind's base truth (:func:`law_truth`, :func:`shape_effect_truth`).
        reference: the reference shape (:func:`reference_shape`); need not be a candidate.
        max_loss: the user's loss target, the prior's prediction at ``reference``; the truth's
            level is set so that ``reference`` has exactly this loss.
        throughput_model: the throughput model's tokens/s per candidate, shape ``(n,)``.
        seed: picks the law draw, the residual and the throughput errors. A seed whose truth
            leaves fewer than :data:`MIN_UNDER_TARGET` candidates under ``max_loss`` is redrawn
            (up to 50 times, recorded in ``info["redraws"]``): such a world has no front to find.
        noise: run-to-run loss noise.
        residual_rel_sigma: sd of the smooth shape residual (relative, ln-loss units).
        throughput_error: how the true throughput differs from the model (default
            :class:`ThroughputError`).
        residual_columns: which of :func:`shape_feature_matrix`'s columns the residual uses.
        residual_lengthscale: GP lengthscale in standardized feature units.
    """
    from optim.core.problem import DEFAULT_REL_SIGMA_MEASURED

    n = len(candidates)
    if n < 2:
        raise WorldError(f"a world needs at least 2 candidates, got {n}")
    tput = np.asarray(throughput_model, float)
    if tput.shape != (n,) or not np.all(np.isfinite(tput) & (tput > 0)):
        raise WorldError(f"throughput_model must be finite, > 0, with shape ({n},)")
    if not (math.isfinite(max_loss) and max_loss > 0):
        raise WorldError(f"max_loss must be a positive number, got {max_loss}")
    error = throughput_error or ThroughputError()
    archs = list(candidates) + [reference]
    cols = list(residual_columns)
    for attempt in range(50):
        rng = np.random.default_rng([int(seed), 7919, attempt])
        base, meta = truth(archs, tokens, rng)
        base = np.asarray(base, float).reshape(n + 1)
        z = shape_feature_matrix(archs)[:, cols]
        resid = residual_rel_sigma * smooth_residual(z, rng, lengthscale=residual_lengthscale)
        ln_loss = np.log(base) + resid
        true_loss = np.exp(ln_loss[:n] - ln_loss[n]) * max_loss  # reference lands on max_loss
        if int(np.sum(true_loss < max_loss)) >= MIN_UNDER_TARGET:
            break
    else:
        raise WorldError(
            f"no draw of this world leaves {MIN_UNDER_TARGET} candidates under "
            f"max_loss {max_loss:.4f} in 50 attempts"
        )
    true_tps = true_throughput(candidates, tput, error, rng)
    ref = reference_point(true_loss, true_tps, max_loss)
    meta = {
        **meta,
        "kind": kind,
        "redraws": attempt,
        "reference_shape": reference.label(),
        "residual_rel_sigma": float(residual_rel_sigma),
        "residual_lengthscale": float(residual_lengthscale),
        "loss_noise_rel": float(noise.rel_sigma),
        "noise_method": noise.method,
        "throughput_error": {
            "common_sd": error.common_sd,
            "shape_sd": error.shape_sd,
            "iid_sd": error.iid_sd,
        },
        "max_loss": float(max_loss),
        "n_under_target": int(np.sum(true_loss <= max_loss)),
        "loss_range": [float(true_loss.min()), float(true_loss.max())],
        **dict(info or {}),
    }
    return World(
        name=name,
        candidates=tuple(candidates),
        tokens=float(tokens),
        true_loss=true_loss,
        true_tokens_per_s=true_tps,
        loss_noise_rel=float(noise.rel_sigma),
        throughput_noise_rel=DEFAULT_REL_SIGMA_MEASURED,
        loss_target=float(max_loss),
        ref_point=ref,
        kind=kind,
        info=meta,
    )
