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
  (:class:`ShapeEffect`). Gemstones never varies the MLP ratio, GQA or head size, so along those
  the truth has only the random residual below. The prior is the one refitted without the table.
* ``shifted``: another law family (``aspect_paper``, arXiv 2501.18107: shape enters only through
  ``d/L``, monotonically) fitted on morph_runs; archopt's prior is its default one.
* ``matched``: a draw from archopt's own prior. **An upper bound** (the prior is right by
  construction, apart from the residual), labelled so in every report.

How a world is built (:func:`make_world`), per seed:

* **Base.** The kind's truth at the candidates and at a *reference shape*
  (:func:`reference_shape`: LLaMA-3 proportions at the budget -- at 1B exactly LLaMA-3.2-1B's
  block shape); for law kinds one posterior draw chosen by the seed.
* **Residual.** A smooth shape-dependent term no law contains: a draw of a zero-mean GP
  (squared-exponential kernel, random Fourier features) over standardized
  ``ln(d/sqrt(N)), ln r, ln(d/L), ln(GQA group)`` (``real_shapes``: ``ln r, ln GQA`` only),
  applied multiplicatively. Its sd is :func:`estimate_shape_residual`: the spread of real losses
  around the law *within* one size, with the run-to-run noise removed in quadrature.
* **Level (no oracle).** What a user would set: ``max_loss`` is the prior's predicted loss at the
  reference shape ("at least as good as LLaMA's shape"), the same for every method. The truth is
  scaled by one constant so that its loss at the reference shape equals that number, so the
  user's target means the same thing in every world: *beat the reference shape*. A constant
  changes no shape's rank, and every method learns the level from its first run.
* **Noise.** Each observed loss is ``true * exp(eps)``, ``eps ~ N(0, sigma)``, ``sigma`` from
  :func:`estimate_run_noise` (repeats of one shape in openlm_grid.csv).
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
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from models.arch import Arch
from models.errors import ArchoptError
from surrogate.protocols import LawDraws

__all__ = [
    "World",
    "WorldError",
    "NoiseEstimate",
    "TruthFn",
    "ThroughputError",
    "ShapeEffect",
    "WORLD_KINDS",
    "estimate_run_noise",
    "estimate_shape_residual",
    "size_groups",
    "shape_feature_matrix",
    "smooth_residual",
    "reference_shape",
    "law_truth",
    "shape_effect_truth",
    "fit_shape_effect",
    "true_throughput",
    "make_world",
    "pareto_mask",
    "hypervolume",
]

#: World kinds (module docstring); ``matched`` is the upper bound.
WORLD_KINDS: tuple[str, ...] = ("held_out_source", "real_shapes", "shifted", "matched")

#: openlm_grid warmups compared to estimate run-to-run noise: the two closest settings.
NOISE_WARMUPS: tuple[int, int] = (200, 400)
#: Relative width of a size group: runs within ``exp(+-SIZE_BIN/2)`` of each other's N.
SIZE_BIN: float = 0.1


class WorldError(ArchoptError):
    """A world cannot be built from the given inputs."""


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


def estimate_run_noise(
    grid: pd.DataFrame | None = None, warmups: tuple[int, int] = NOISE_WARMUPS
) -> NoiseEstimate:
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
    wide = sub.pivot_table(
        index=["d_model", "n_layers", "n_heads"], columns="warmup", values="y", aggfunc="mean"
    )
    w1, w2 = warmups
    if w1 not in wide.columns or w2 not in wide.columns:
        raise WorldError(f"no runs with warmups {warmups} in the grid table")
    diff = (wide[w1] - wide[w2]).dropna().to_numpy()
    if diff.size < 5:
        raise WorldError(f"only {diff.size} shapes have both warmups {warmups}")
    mad = float(np.median(np.abs(diff - np.median(diff))))
    sigma = 1.4826 * mad / math.sqrt(2.0)
    return NoiseEstimate(
        rel_sigma=sigma,
        n_pairs=int(diff.size),
        method=(
            f"openlm_grid.csv, {diff.size} shapes trained at batch 64, lr 3e-3 with warmup "
            f"{w1} and {w2}: 1.4826 MAD of the paired ln-loss difference / sqrt(2)"
        ),
    )


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


def estimate_shape_residual(
    truth: LawDraws, runs: pd.DataFrame, noise_rel_sigma: float, n_draws: int | None = 64
) -> float:
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
    var = float((centred**2).sum() / max(dof, 1))
    return math.sqrt(max(var - noise_rel_sigma**2, 0.0))


# ---- the smooth residual ------------------------------------------------------------------
def shape_feature_matrix(archs: Sequence[Arch]) -> np.ndarray:
    """Standardized shape features, ``n x 4``: ln(d/sqrt(N)), ln r, ln(d/L), ln(GQA group).

    Columns that do not vary over ``archs`` are left at zero.
    """
    raw = np.array(
        [
            [
                math.log(a.d_over_sqrt_n),
                math.log(a.mlp_attn_ratio),
                math.log(a.aspect_ratio),
                math.log(a.gqa_group),
            ]
            for a in archs
        ],
        float,
    )
    raw = raw.reshape(len(archs), 4)
    sd = raw.std(axis=0)
    z = np.zeros_like(raw)
    varying = sd > 1e-12
    z[:, varying] = (raw[:, varying] - raw[:, varying].mean(axis=0)) / sd[varying]
    return z


def smooth_residual(
    z: np.ndarray, rng: np.random.Generator, *, lengthscale: float = 1.0, n_features: int = 512
) -> np.ndarray:
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


# ---- reference shape, truths and throughput -----------------------------------------------
def reference_shape(
    params: float, *, band: float = 0.05, vocab_size: int = 128256, tie_embeddings: bool = True
) -> Arch:
    """The shape a user measures candidates against: LLaMA-3 proportions (``d/L = 128``,
    ``r = 4.8``, GQA 4, head size 64) at ``params`` non-embedding parameters
    (:func:`models.parametrize.build_arch`); at 1B it is LLaMA-3.2-1B's block shape."""
    from models.parametrize import build_arch

    return build_arch(
        params,
        aspect_ratio=128.0,
        r=4.8,
        gqa_group=4,
        head_dim=64,
        band=band,
        vocab_size=vocab_size,
        tie_embeddings=tie_embeddings,
    )


#: ``(archs, tokens, rng) -> (base loss (n,), info)``: a world's truth before residual and level.
TruthFn = Callable[[Sequence[Arch], float, np.random.Generator], tuple[np.ndarray, dict]]


def law_truth(truth: LawDraws, source: str | None, n_law_draws: int | None = None) -> TruthFn:
    """A truth from one posterior draw of ``truth`` (chosen by the world's seed), evaluated at
    ``source``'s scale."""
    from surrogate.laws import law_features

    def fn(
        archs: Sequence[Arch], tokens: float, rng: np.random.Generator
    ) -> tuple[np.ndarray, dict]:
        draws = np.asarray(
            truth.law_draws(law_features(list(archs), tokens), source=source, n_draws=n_law_draws),
            float,
        )
        d = int(rng.integers(draws.shape[0]))
        return draws[d], {"law_draw": d, "n_law_draws": int(draws.shape[0]), "source": source}

    return fn


@dataclass(frozen=True)
class ShapeEffect:
    """A real shape effect: ``ln loss`` relative to a shape-blind size trend, as a smooth
    function of ``u = ln(d_model / sqrt(N))`` (:func:`fit_shape_effect`).

    Attributes:
        u: ``(m,)`` the shapes' ``u``.
        effect: ``(m,)`` their effect (``ln loss`` minus the trend, mean over token budgets).
        size_slope: ``d ln loss / d ln N`` of the shape-blind trend (used within the +-band).
        table: the run table it came from.
        predict: ``u (n,) -> effect (n,)``, the GP smoother's posterior mean.
    """

    u: np.ndarray
    effect: np.ndarray
    size_slope: float
    table: str
    predict: Callable[[np.ndarray], np.ndarray] = field(repr=False, compare=False)


def fit_shape_effect(table: str = "gemstones_runs.csv") -> ShapeEffect:
    """The real shape effect of ``table`` (see :class:`ShapeEffect`).

    At every token budget, ``ln loss = a + b ln N + c (ln N)^2`` is fitted by least squares over
    all shapes (shape-blind: no shape feature), and each shape's residual is its effect; the
    effects are averaged over budgets (the shape ranking is stable across them). A GP
    (:func:`optim.core.plain_model.fit_plain_gp`: constant mean, RBF, MLL-fitted noise) smooths
    them over ``u``; beyond the table's range it reverts to the mean. ``size_slope`` is the mean
    over budgets of ``b`` in a straight-line fit (the within-band size trend).
    """
    import torch

    from optim.core.plain_model import fit_plain_gp
    from surrogate.runs import bundled_path, load_runs, table_archs

    runs = load_runs(bundled_path(table))
    archs = table_archs(runs)
    ln_n = np.log([a.non_embedding_params for a in archs])
    u_all = np.log([a.d_over_sqrt_n for a in archs])
    keys = pd.Series([a.label() for a in archs])
    effects, slopes = [], []
    for tokens in np.unique(runs["tokens"].to_numpy(float)):
        rows = np.flatnonzero(runs["tokens"].to_numpy(float) == tokens)
        if rows.size < 5:
            continue
        y = np.log(runs["loss"].to_numpy(float)[rows])
        x = ln_n[rows] - ln_n[rows].mean()
        quad = np.c_[np.ones(rows.size), x, x**2]
        resid = y - quad @ np.linalg.lstsq(quad, y, rcond=None)[0]
        effects.append(pd.Series(resid, index=keys[rows].to_numpy()))
        slopes.append(np.polyfit(x, y, 1)[0])
    if not effects:
        raise WorldError(f"{table} has no token budget with 5 or more shapes")
    effect = pd.concat(effects, axis=1).mean(axis=1)
    first = {k: i for i, k in reversed(list(enumerate(keys)))}
    u = np.array([u_all[first[k]] for k in effect.index])
    lo, hi = u.min(), u.max()
    eff = effect.to_numpy(float)
    X = torch.as_tensor(((u - lo) / (hi - lo))[:, None], dtype=torch.float64)
    gp = fit_plain_gp(X, np.arange(len(u)), eff)

    def predict(v: np.ndarray) -> np.ndarray:
        x = (np.asarray(v, float).reshape(-1, 1) - lo) / (hi - lo)
        with torch.no_grad():
            return gp.posterior(torch.as_tensor(x, dtype=torch.float64)).mean[:, 0].numpy()

    return ShapeEffect(
        u=u, effect=eff, size_slope=float(np.mean(slopes)), table=table, predict=predict
    )


def shape_effect_truth(effect: ShapeEffect) -> TruthFn:
    """A truth from a real shape effect: ``exp(effect(u) + size_slope ln(N / N_mean))`` (its
    level is set by :func:`make_world`)."""

    def fn(
        archs: Sequence[Arch], tokens: float, rng: np.random.Generator
    ) -> tuple[np.ndarray, dict]:
        del tokens, rng
        u = np.log([a.d_over_sqrt_n for a in archs])
        ln_n = np.log([a.non_embedding_params for a in archs])
        ln_loss = effect.predict(u) + effect.size_slope * (ln_n - ln_n.mean())
        return np.exp(ln_loss), {
            "shape_effect_table": effect.table,
            "size_slope": effect.size_slope,
        }

    return fn


@dataclass(frozen=True)
class ThroughputError:
    """How true tokens/s differ from the throughput model's prediction (relative, ln units).

    ``true = model * exp(common + smooth(shape) + iid)``; defaults sized from what this project
    measured: the batch-64 efficiencies of the A100 calibration stay at documented defaults
    (FLOP 0.5, bandwidth 0.7; achieved decode bandwidth is 0.6-0.8 of peak), so the common
    factor is uncertain by ~15%; leave-one-shape-out errors on this CPU were 5.7-9.5% (median)
    with rank correlation 0.95-0.99, so the shape-dependent part is ~5%, mostly smooth in shape.

    Attributes:
        common_sd: sd of the factor shared by every candidate.
        shape_sd: sd of the smooth shape-dependent factor (a GP over standardized
            ``ln n_layers, ln d_model, ln KV bytes/token, ln ffn_dim``).
        iid_sd: sd of an independent per-candidate factor.
        lengthscale: of the smooth factor, in standardized feature units.
    """

    common_sd: float = 0.15
    shape_sd: float = 0.05
    iid_sd: float = 0.02
    lengthscale: float = 1.0


def true_throughput(
    candidates: Sequence[Arch],
    model_tps: np.ndarray,
    error: ThroughputError,
    rng: np.random.Generator,
) -> np.ndarray:
    """``(n,)`` true tokens/s: the model's ``(n,)`` tokens/s times the error's factors."""
    raw = np.array(
        [
            [
                math.log(a.n_layers),
                math.log(a.d_model),
                math.log(a.kv_bytes_per_token()),
                math.log(a.ffn_dim),
            ]
            for a in candidates
        ],
        float,
    ).reshape(len(candidates), 4)
    sd = raw.std(axis=0)
    z = np.where(sd > 1e-12, (raw - raw.mean(axis=0)) / np.where(sd > 1e-12, sd, 1.0), 0.0)
    log_err = (
        error.common_sd * rng.normal()
        + error.shape_sd * smooth_residual(z, rng, lengthscale=error.lengthscale)
        + error.iid_sd * rng.normal(size=len(candidates))
    )
    return np.asarray(model_tps, float) * np.exp(log_err)


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
    ref = _reference_point(true_loss, true_tps, max_loss)
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
        throughput_noise_rel=_MEASUREMENT_NOISE_REL,
        loss_target=float(max_loss),
        ref_point=ref,
        kind=kind,
        info=meta,
    )


#: Relative noise of one throughput measurement (the campaign's default for a measured value).
_MEASUREMENT_NOISE_REL: float = 0.03


def _reference_point(true_loss: np.ndarray, true_tps: np.ndarray, loss_target: float) -> np.ndarray:
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
