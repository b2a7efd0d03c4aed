"""Ground-truth worlds for the benchmark, grounded in the real run tables.

A :class:`World` is a fixed set of candidate architectures with a noise-free true loss and true
throughput for each, plus the noise every observation carries. Optimizers see a world only
through :meth:`World.observe`; the benchmark scores them with the noise-free values.

How a world is built (:func:`make_world`), per seed:

* **Law.** One posterior draw (chosen by the seed) of a scaling law fitted on the bundled real
  tables, evaluated for the candidates at the campaign's token budget and loss source.
* **Residual.** A smooth shape-dependent term the law does not contain: a draw of a zero-mean
  GP (squared-exponential kernel, random Fourier features) over standardized
  ``ln(d/sqrt(N)), ln r, ln(d/L), ln(GQA group)``, applied multiplicatively
  (``loss = law * exp(residual)``). Its standard deviation is :func:`estimate_shape_residual`:
  the spread of real losses around the law *within* one size and token budget (what the law
  gets wrong about shape, not about scale), with the run-to-run noise removed in quadrature.
* **Noise.** Each observed loss is ``true * exp(eps)``, ``eps ~ N(0, sigma)`` with ``sigma``
  from :func:`estimate_run_noise` (repeats of one shape in openlm_grid.csv).
* **Throughput.** The true tokens/s of a candidate is the throughput model's prediction times a
  fixed per-candidate factor ``exp(N(0, rel_sigma))`` -- the model's calibration error, which
  the optimizer does not know -- and an observed throughput adds measurement noise of the same
  size on top.

The objectives are ``(-loss, ln tokens_per_s)``, both maximized, as BoTorch's multi-objective
utilities expect -- the same space the campaign's acquisition works in (:mod:`optim.core.acquisition`),
so the benchmark scores what the optimizer optimizes. Regret is in plain tokens/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence

import numpy as np
import pandas as pd

from models.arch import Arch
from models.errors import ArchoptError

__all__ = [
    "World",
    "WorldError",
    "NoiseEstimate",
    "TruthLaw",
    "estimate_run_noise",
    "estimate_shape_residual",
    "size_groups",
    "shape_feature_matrix",
    "smooth_residual",
    "make_world",
    "pareto_mask",
    "hypervolume",
]

#: openlm_grid warmups compared to estimate run-to-run noise: the two closest settings.
NOISE_WARMUPS: tuple[int, int] = (200, 400)
#: Relative width of a size group: runs within ``exp(+-SIZE_BIN/2)`` of each other's N.
SIZE_BIN: float = 0.1


class WorldError(ArchoptError):
    """A world cannot be built from the given inputs."""


class TruthLaw(Protocol):
    """What a world needs from a fitted law: draws of the loss for given features."""

    def law_draws(self, features: Mapping[str, np.ndarray], source: str | None = None,
                  n_draws: int | None = None, xp: Any = np) -> np.ndarray: ...


# ---- estimates from the real tables -------------------------------------------------------
@dataclass(frozen=True)
class NoiseEstimate:
    """Run-to-run noise of the final loss, relative (standard deviation of ``ln loss``).

    Attributes:
        rel_sigma: the estimate.
        n_pairs: shapes that contributed a pair of runs.
        method: how it was computed, one sentence for the report.
    """

    rel_sigma: float
    n_pairs: int
    method: str


def estimate_run_noise(grid: pd.DataFrame | None = None,
                       warmups: tuple[int, int] = NOISE_WARMUPS) -> NoiseEstimate:
    """Run-to-run noise from openlm_grid.csv: the same shape trained twice.

    For every ``(d_model, n_layers, n_heads)`` trained at batch 64 and lr 3e-3 with both
    warmups, take ``ln loss(w1) - ln loss(w2)``. Warmup shifts all shapes alike, so the spread of
    that difference around its median is twice the per-run noise variance; the spread is
    measured robustly (1.4826 MAD, a few runs diverge at short warmups) and divided by sqrt(2).

    Args:
        grid: the openlm_grid table (default: the bundled copy).
        warmups: the two warmup settings compared.
    """
    if grid is None:
        from surrogate.runs import bundled_path, load_runs

        grid = load_runs(bundled_path("openlm_grid.csv"))
    need = {"d_model", "n_layers", "n_heads", "loss", "warmup", "batch", "lr"}
    if not need <= set(grid.columns):
        raise WorldError(f"noise estimate needs columns {sorted(need)}")
    sub = grid[(grid["batch"] == 64) & np.isclose(grid["lr"], 3e-3)]
    sub = sub.assign(y=np.log(sub["loss"].to_numpy(float)))
    wide = sub.pivot_table(index=["d_model", "n_layers", "n_heads"], columns="warmup",
                           values="y", aggfunc="mean")
    w1, w2 = warmups
    if w1 not in wide.columns or w2 not in wide.columns:
        raise WorldError(f"no runs with warmups {warmups} in the grid table")
    diff = (wide[w1] - wide[w2]).dropna().to_numpy()
    if diff.size < 5:
        raise WorldError(f"only {diff.size} shapes have both warmups {warmups}")
    mad = float(np.median(np.abs(diff - np.median(diff))))
    sigma = 1.4826 * mad / math.sqrt(2.0)
    return NoiseEstimate(
        rel_sigma=sigma, n_pairs=int(diff.size),
        method=(f"openlm_grid.csv, {diff.size} shapes trained at batch 64, lr 3e-3 with warmup "
                f"{w1} and {w2}: 1.4826 MAD of the paired ln-loss difference / sqrt(2)"))


def size_groups(runs: pd.DataFrame, *, by_tokens: bool = True) -> np.ndarray:
    """A label per row: rows of one source and token budget whose sizes agree within ~10%.

    Size is the *total* parameter count, as the papers name their size groups ("80M"): at fixed
    total size the variants trade embedding for block parameters. Rows are sorted by size within
    ``(source, tokens)``; a new group starts when the size grows by more than ``SIZE_BIN`` in log
    space over the group's first row. With ``by_tokens=False`` one group holds a size at every
    token budget (what leave-one-size-out holds out).

    Returns:
        Integer labels, shape ``(len(runs),)``; equal labels = same size group.
    """
    from surrogate.laws import law_features
    from surrogate.runs import source_keys, table_archs

    feats = law_features(table_archs(runs), runs["tokens"].to_numpy(float))
    log_n = np.log(feats["N_total"])
    src = source_keys(runs)
    labels = np.full(len(runs), -1, dtype=np.int64)
    next_label = 0
    tok = np.round(np.log(feats["D"]), 3) if by_tokens else np.zeros(len(runs))
    keys = pd.DataFrame({"src": src, "tok": tok, "ln": log_n})
    for _, block in keys.groupby(["src", "tok"], sort=True):
        order = block.sort_values("ln")
        start = None
        for idx, ln in zip(order.index, order["ln"]):
            if start is None or ln - start > SIZE_BIN:
                start, next_label = ln, next_label + 1
            labels[keys.index.get_loc(idx)] = next_label - 1
    return labels


def estimate_shape_residual(truth: TruthLaw, runs: pd.DataFrame, noise_rel_sigma: float,
                            n_draws: int | None = 64) -> float:
    """Relative size of what the law misses about *shape*, from real runs.

    The law's posterior-mean prediction for every run is compared with its real loss
    (``ln loss - ln pred``); the residuals are centred within each size group
    (:func:`size_groups`), so errors the law makes about scale or token budget drop out and
    only shape-to-shape errors remain. Groups with one run carry no information and are
    skipped. Returns ``sqrt(max(var - noise^2, 0))`` of those centred residuals.
    """
    from surrogate.laws import law_features
    from surrogate.runs import source_keys, table_archs

    labels = size_groups(runs)
    src = source_keys(runs)
    feats = law_features(table_archs(runs), runs["tokens"].to_numpy(float))
    resid = np.empty(len(runs))
    for s in np.unique(src):
        rows = src == s
        sub = {k: v[rows] for k, v in feats.items()}
        pred = np.asarray(truth.law_draws(sub, source=s, n_draws=n_draws)).mean(axis=0)
        resid[rows] = np.log(runs["loss"].to_numpy(float)[rows]) - np.log(pred)
    frame = pd.DataFrame({"g": labels, "e": resid})
    sizes = frame.groupby("g")["e"].transform("size")
    frame = frame[sizes >= 2]
    if frame.empty:
        raise WorldError("no size group with two or more shapes to measure shape residuals")
    centred = frame["e"] - frame.groupby("g")["e"].transform("mean")
    counts = frame.groupby("g").size()
    dof = int((counts - 1).sum())
    var = float((centred ** 2).sum() / max(dof, 1))
    return math.sqrt(max(var - noise_rel_sigma ** 2, 0.0))


# ---- the smooth residual ------------------------------------------------------------------
def shape_feature_matrix(archs: Sequence[Arch]) -> np.ndarray:
    """Standardized shape features, ``n x 4``: ln(d/sqrt(N)), ln r, ln(d/L), ln(GQA group).

    Columns that do not vary over ``archs`` are left at zero.
    """
    raw = np.array([[math.log(a.d_over_sqrt_n), math.log(a.mlp_attn_ratio),
                     math.log(a.aspect_ratio), math.log(a.gqa_group)] for a in archs], float)
    raw = raw.reshape(len(archs), 4)
    sd = raw.std(axis=0)
    z = np.zeros_like(raw)
    varying = sd > 1e-12
    z[:, varying] = (raw[:, varying] - raw[:, varying].mean(axis=0)) / sd[varying]
    return z


def smooth_residual(z: np.ndarray, rng: np.random.Generator, *, lengthscale: float = 1.0,
                    n_features: int = 512) -> np.ndarray:
    """One draw of a unit-variance squared-exponential GP at the rows of ``z`` (``n x p``).

    Random Fourier features (Rahimi & Recht 2007): ``sqrt(2/M) sum_m w_m cos(omega_m . z + b_m)``
    with ``omega ~ N(0, I / lengthscale^2)``, ``b ~ U(0, 2 pi)``, ``w ~ N(0, 1)``.

    Returns:
        Shape ``(n,)``.
    """
    omega = rng.normal(0.0, 1.0 / lengthscale, size=(n_features, z.shape[1]))
    phase = rng.uniform(0.0, 2.0 * math.pi, size=n_features)
    weight = rng.normal(size=n_features)
    return math.sqrt(2.0 / n_features) * np.cos(z @ omega.T + phase) @ weight


# ---- Pareto and hypervolume (BoTorch) -----------------------------------------------------
def pareto_mask(y: np.ndarray) -> np.ndarray:
    """Non-dominated rows of ``y`` (``n x 2``, maximized), via BoTorch's ``is_non_dominated``."""
    import torch
    from botorch.utils.multi_objective.pareto import is_non_dominated

    if len(y) == 0:
        return np.zeros(0, dtype=bool)
    return is_non_dominated(torch.as_tensor(y, dtype=torch.float64)).numpy()


def hypervolume(y: np.ndarray, ref_point: np.ndarray) -> float:
    """Hypervolume dominated by the rows of ``y`` (``n x 2``, maximized) above ``ref_point``.

    Rows not strictly better than the reference point in every objective contribute nothing.
    Uses BoTorch's ``Hypervolume`` on the non-dominated rows.
    """
    import torch
    from botorch.utils.multi_objective.hypervolume import Hypervolume

    y = np.asarray(y, float).reshape(-1, 2)
    ref = np.asarray(ref_point, float)
    y = y[np.all(y > ref, axis=1)]
    if len(y) == 0:
        return 0.0
    front = torch.as_tensor(y[pareto_mask(y)], dtype=torch.float64)
    return float(Hypervolume(torch.as_tensor(ref, dtype=torch.float64)).compute(front))


# ---- the world ----------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class World:
    """Noise-free truth over a candidate set, and noisy observations of it.

    Attributes:
        name: world kind (e.g. ``"shifted"``) and seed, for reports.
        candidates: the ``n`` architectures (same order as the optimizer's problem).
        tokens: training tokens of every candidate.
        true_loss: noise-free loss, shape ``(n,)``.
        true_tokens_per_s: noise-free throughput, shape ``(n,)``.
        loss_noise_rel: relative noise sd of an observed loss.
        throughput_noise_rel: relative noise sd of a measured throughput.
        loss_target: the loss a chosen architecture must reach (final-regret metric).
        ref_point: hypervolume reference in objective space ``(-loss, ln tokens/s)``, ``(2,)``.
        info: provenance (law, source, draw, residual size, noise method) for the report.
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
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.candidates)
        for name in ("true_loss", "true_tokens_per_s"):
            arr = np.asarray(getattr(self, name), float)
            if arr.shape != (n,) or not np.all(np.isfinite(arr)) or (
                    name == "true_tokens_per_s" and np.any(arr <= 0)):
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

    def observe(self, indices: Sequence[int] | np.ndarray, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
        """Train and measure ``indices``: noisy ``(loss, tokens_per_s)``, each shape ``(k,)``."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n):
            raise WorldError(f"candidate index out of range [0, {self.n})")
        loss = self.true_loss[idx] * np.exp(rng.normal(0.0, self.loss_noise_rel, idx.size))
        tps = self.true_tokens_per_s[idx] * np.exp(
            rng.normal(0.0, self.throughput_noise_rel, idx.size))
        return loss, tps

    @property
    def true_hv(self) -> float:
        """Hypervolume of the noise-free objectives over all candidates."""
        if self._true_hv is None:
            object.__setattr__(self, "_true_hv", hypervolume(self.objectives(), self.ref_point))
        return self._true_hv

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


def make_world(candidates: Sequence[Arch], tokens: float, *, truth: TruthLaw,
               source: str | None, throughput_model: np.ndarray,
               throughput_rel_sigma: float | np.ndarray,
               seed: int, noise: NoiseEstimate, residual_rel_sigma: float,
               loss_target_quantile: float = 0.25, residual_lengthscale: float = 1.0,
               n_law_draws: int | None = None, name: str = "world",
               info: Mapping[str, Any] | None = None) -> World:
    """Build one ground-truth world (see the module docstring).

    Args:
        candidates: the ``n`` architectures.
        tokens: training tokens.
        truth: the fitted law whose posterior draws are the ground-truth law.
        source: the loss source (scale) to evaluate the law in.
        throughput_model: the throughput model's tokens/s per candidate, shape ``(n,)``.
        throughput_rel_sigma: the model's relative error (calibration ``rel_sigma``), a scalar
            or one per candidate.
        seed: picks the law draw, the residual and the throughput errors.
        noise: run-to-run loss noise.
        residual_rel_sigma: sd of the smooth shape residual (relative, ln-loss units).
        loss_target_quantile: the loss target is this quantile of the true candidate losses.
        residual_lengthscale: GP lengthscale in standardized feature units.
        n_law_draws: how many posterior draws to choose from (None = all).
    """
    from surrogate.laws import law_features

    n = len(candidates)
    if n < 2:
        raise WorldError(f"a world needs at least 2 candidates, got {n}")
    tput = np.asarray(throughput_model, float)
    if tput.shape != (n,) or not np.all(np.isfinite(tput) & (tput > 0)):
        raise WorldError(f"throughput_model must be finite, > 0, with shape ({n},)")
    tput_sigma = np.broadcast_to(np.asarray(throughput_rel_sigma, float), (n,))
    rng = np.random.default_rng([int(seed), 7919])
    feats = law_features(list(candidates), tokens)
    draws = np.asarray(truth.law_draws(feats, source=source, n_draws=n_law_draws), float)
    draw = int(rng.integers(draws.shape[0]))
    base = draws[draw]
    resid = residual_rel_sigma * smooth_residual(shape_feature_matrix(candidates), rng,
                                                 lengthscale=residual_lengthscale)
    true_loss = base * np.exp(resid)
    true_tps = tput * np.exp(rng.normal(0.0, 1.0, n) * tput_sigma)
    loss_target = float(np.quantile(true_loss, loss_target_quantile))
    ref = _reference_point(true_loss, true_tps, loss_target)
    meta = {
        "law_draw": draw,
        "n_law_draws": int(draws.shape[0]),
        "source": source,
        "residual_rel_sigma": float(residual_rel_sigma),
        "residual_lengthscale": float(residual_lengthscale),
        "loss_noise_rel": float(noise.rel_sigma),
        "noise_method": noise.method,
        "throughput_rel_sigma": float(np.mean(tput_sigma)),
        "loss_target_quantile": float(loss_target_quantile),
        "loss_range": [float(true_loss.min()), float(true_loss.max())],
        **dict(info or {}),
    }
    return World(name=name, candidates=tuple(candidates), tokens=float(tokens),
                 true_loss=true_loss, true_tokens_per_s=true_tps,
                 loss_noise_rel=float(noise.rel_sigma),
                 throughput_noise_rel=float(np.mean(tput_sigma)), loss_target=loss_target,
                 ref_point=ref, info=meta)


def _reference_point(true_loss: np.ndarray, true_tps: np.ndarray, loss_target: float
                     ) -> np.ndarray:
    """HV reference: the loss target, and 10% below the slowest Pareto point that meets it.

    The loss side is the user's target (worse losses are not worth training); the throughput
    side is the nadir of the true front within the target, widened by 10% of the front's range
    (BoTorch's ``infer_reference_point`` convention), so every front point counts.
    """
    y = np.stack([-true_loss, np.log(true_tps)], axis=-1)
    ok = true_loss <= loss_target
    front = y[ok][pareto_mask(y[ok])]
    lo, hi = front[:, 1].min(), front[:, 1].max()
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    return np.array([-loss_target, lo - 0.1 * span])
