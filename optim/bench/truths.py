"""A world's truth before its residual and level (:data:`TruthFn`): one posterior draw of a law
(:func:`law_truth`) or a real shape effect smoothed by a GP (:func:`shape_effect_truth`), and
the reference shape a user measures candidates against (:func:`reference_shape`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from models.arch import DEFAULT_VOCAB_SIZE, Arch
from surrogate.protocols import LawDraws

from .config import WorldError

__all__ = [
    "reference_shape",
    "TruthFn",
    "law_truth",
    "ShapeEffect",
    "fit_shape_effect",
    "shape_effect_truth",
]


def reference_shape(
    params: float,
    *,
    band: float = 0.05,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    tie_embeddings: bool = True,
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
