"""The law's discrepancy outside the NumPyro model: kernels, size-group inputs, predictive.

A law fitted on some sizes errs systematically (not i.i.d.) at a size it has not seen. The NUTS
fit (:mod:`surrogate.bayes`) gives every (source, size group) an effect ``delta``; its sd
``tau`` is learned from how much the fitted sizes deviate from the law, and the predictive for a
new candidate draws a fresh ``delta ~ N(0, tau)`` (every candidate is treated as a new size
group), on top of the coefficient uncertainty and the noise ``sigma``. With the default
trend-orthogonal discrepancy both are scaled by the size-dependent misfit factor stored in
``info["misfit_scale"]`` (:func:`misfit_scale`, held at the edge value beyond the fitted sizes),
and ``info["extrapolation"]`` adds a misfit *trend*: sd ``sd_per_efold * (distance in ln N
beyond the fitted sizes)`` (:func:`extrapolation_sd`), one draw per posterior draw and source, so
it is shared by every candidate of a draw (two shapes of one size do not differ by it).

**Distance-aware discrepancy** (NUTS ``discrepancy="gp"`` / ``"gp_shared"``): instead of i.i.d.
group effects, ``delta[s](u)`` is a Gaussian process in ``u = ln N`` (non-embedding params) per
source, kernel (:func:`gp_kernel`)::

    k(u, u') = eta[s]^2 m(u) m(u') Matern32(|u - u'| / ell) + slope^2 (u - u0[s]) (u' - u0[s])
    m(u) = exp(-kappa (clip(u, u_lo[s], u_hi[s]) - u0[s])),   noise sd sigma[s] m(u)

(``u0[s]`` the mean training ``ln N`` of the source; ``eta`` per source or shared, ``ell``,
``slope`` and ``kappa`` (key ``noise_slope``) shared), integrated out in closed form in the fit.
``kappa`` lets the law's misfit, both the smooth part and the per-run noise, shrink (or grow)
by ``e^-kappa`` per e-fold of N: tiny models bend away from the power laws, and a misfit scale
learned mostly from them would otherwise be applied unchanged at the sizes being predicted.
Beyond the fitted sizes ``[u_lo, u_hi]`` the scale stays at its value at the edge: the trend is
not extrapolated (gemstones' chinchilla misfit grows over its fitted sizes; extrapolated
exponentially, it gave 90% intervals 2.8 nats wide). The predictive for a candidate uses
the GP's *conditional* mean and variance given that draw's training residuals
(:func:`gp_conditional`; exact per draw: the training rows are stored in ``info["gp"]``), so its
variance grows with the distance from the fitted sizes (to ``eta^2`` for the Matern part,
without bound for the linear part).

The fit side (:func:`gp_groups`, :func:`orth_groups`, :func:`gp_group_cov`) builds the
inputs of the NumPyro model and the ``info`` entries a fit stores for prediction
(:func:`misfit_scale_info`, :func:`extrapolation_info`, :func:`gp_rows_info`); the closed-form
likelihoods are in :mod:`surrogate.marginal`.

Functions taking ``post`` read a :class:`~surrogate.posterior.LawPosterior`'s ``samples``,
``info`` and :meth:`~surrogate.posterior.LawPosterior.law_by_row`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

if TYPE_CHECKING:
    from .lsq import FitData
    from .posterior import LawPosterior

__all__ = [
    "GP_JITTER",
    "GP_GRID",
    "ORTH_DEGREE",
    "gp_kernel",
    "gp_group_cov",
    "gp_groups",
    "orth_groups",
    "misfit_scale_info",
    "extrapolation_info",
    "gp_rows_info",
    "gp_rows",
    "extrapolation_sd",
    "misfit_scale",
    "noise_factor",
    "gp_conditional",
    "gp_joint",
]

#: Added to the diagonal of GP covariances (loss units squared).
GP_JITTER: float = 1e-8
#: The trend-orthogonal discrepancy is orthogonal to polynomials in ``ln N`` of this degree
#: per source: the law alone explains the level, the slope (and with 2 the curvature) of the
#: size-group means, so the discrepancy cannot take over the law's size trend.
ORTH_DEGREE: int = 2
#: Above this many distinct candidate sizes, the GP conditional is evaluated on a grid of this
#: many points in ln N and interpolated linearly (the kernel is smooth on that scale).
GP_GRID: int = 256


# ---- kernels ---------------------------------------------------------------------------------
def gp_kernel(
    u1: Any,
    u2: Any,
    eta: Any,
    ell: Any,
    slope: Any,
    u0: Any,
    xp: Any = np,
    kappa: Any = 0.0,
    u_range: tuple[float, float] | None = None,
) -> Any:
    """The discrepancy GP's covariance ``eta^2 m(u1) m(u2) Matern32(|u1 - u2| / ell) +
    slope^2 (u1 - u0) (u2 - u0)``, ``m(u) = exp(-kappa (clip(u, *u_range) - u0))``, between
    ``u1 (..., a)`` and ``u2 (..., b)`` (``u = ln N``); ``eta``, ``ell``, ``slope``, ``u0``,
    ``kappa`` broadcast against ``(..., 1, 1)``. Returns ``(..., a, b)``."""
    d = xp.abs(u1[..., :, None] - u2[..., None, :])
    r = math.sqrt(3.0) * d / ell
    c1, c2 = (u1, u2) if u_range is None else (xp.clip(u1, *u_range), xp.clip(u2, *u_range))
    amp = xp.exp(-kappa * (c1[..., :, None] - u0)) * xp.exp(-kappa * (c2[..., None, :] - u0))
    return eta**2 * amp * (1.0 + r) * xp.exp(-r) + slope**2 * (u1[..., :, None] - u0) * (
        u2[..., None, :] - u0
    )


# ---- fit side: the size groups and what a fit stores for prediction --------------------------
def gp_groups(data: FitData) -> dict[str, np.ndarray]:
    """Size groups of the GP discrepancy: ``idx`` ``(n,)`` (the fit's (source, size) groups,
    :func:`surrogate.groups.size_groups`), ``u`` ``(G,)`` the group's mean ln N, ``src`` ``(G,)`` its source,
    ``u0`` ``(n_sources,)`` (mean training ln N of each source).

    Merging near-equal sizes matters: shapes of almost the same size (every morph size has
    several) would otherwise pull the GP to a short lengthscale to explain their scatter, and
    the scatter belongs to the within-group noise."""
    u = np.log(data.features["N"])
    idx = np.asarray(data.group_idx, np.int64)
    n_groups = len(data.group_src)
    u_g = np.bincount(idx, u, n_groups) / np.bincount(idx, None, n_groups)
    u0 = np.array([u[data.src_idx == j].mean() for j in range(len(data.sources))])
    return {"idx": idx, "u": u_g, "src": np.asarray(data.group_src, np.int64), "u0": u0}


def orth_groups(data: FitData) -> dict[str, np.ndarray]:
    """Inputs of the trend-orthogonal group discrepancy: :func:`gp_groups` plus ``proj``
    ``(G, G)``, block-diagonal over sources, each block ``I - X (X^T X)^+ X^T`` with ``X`` the
    polynomials of degree :data:`ORTH_DEGREE` in ``c = u - mean u`` over that source's groups
    (``[1, c, c^2]``; zero with that many groups or fewer)."""
    out = gp_groups(data)
    n_groups = out["u"].size
    proj = np.zeros((n_groups, n_groups))
    for j in range(len(data.sources)):
        g = np.flatnonzero(out["src"] == j)
        c = out["u"][g] - out["u"][g].mean()
        x = np.stack([c**k for k in range(ORTH_DEGREE + 1)], axis=1)
        proj[np.ix_(g, g)] = np.eye(g.size) - x @ np.linalg.pinv(x)
    out["proj"] = proj
    return out


def gp_group_cov(
    gp: Mapping[str, Any], eta: Any, ell: Any, slope: Any, kappa: Any = 0.0, xp: Any = np
) -> Any:
    """``(G, G)`` covariance of the GP discrepancy at the fit's size groups (zero between
    sources): :func:`gp_kernel` with a per-source amplitude ``eta[src]`` ``(n_sources,)`` and
    ``u0``, as the NumPyro model evaluates it (``xp`` = jax.numpy there). ``gp``: the
    :func:`gp_groups` inputs."""
    u, src = gp["u"], gp["src"]
    d = xp.abs(u[:, None] - u[None, :])
    r = math.sqrt(3.0) * d / ell
    c = u - gp["u0"][src]
    amp = eta[src] * xp.exp(-kappa * c)
    k = amp[:, None] * amp[None, :] * (1.0 + r) * xp.exp(-r) + slope**2 * c[:, None] * c[None, :]
    return xp.where(src[:, None] == src[None, :], k, 0.0)


def misfit_scale_info(data: FitData) -> dict[str, Any]:
    """Per source the fitted ``ln N`` range (group means) and its mean, stored in
    ``LawPosterior.info["misfit_scale"]``: where the size-dependent misfit scale of the
    trend-orthogonal discrepancy is held at its edge value."""
    groups = gp_groups(data)
    return {
        src: {
            "u": [
                float(groups["u"][groups["src"] == j].min()),
                float(groups["u"][groups["src"] == j].max()),
            ],
            "u0": float(groups["u0"][j]),
        }
        for j, src in enumerate(data.sources)
    }


def extrapolation_info(data: FitData, sd_per_efold: float) -> dict[str, Any]:
    """``LawPosterior.info["extrapolation"]``: the misfit-trend sd per e-fold of N beyond the
    fitted sizes (``sd_per_efold``, :data:`surrogate.bayes.EXTRAPOLATION_SD`) and per source
    the fitted ``ln N`` range ``[min, max]`` (:func:`extrapolation_sd` reads it)."""
    u = np.log(data.features["N"])
    sizes = {
        src: [float(u[data.src_idx == j].min()), float(u[data.src_idx == j].max())]
        for j, src in enumerate(data.sources)
    }
    return {"sd_per_efold": sd_per_efold, "sizes": sizes}


def gp_rows_info(data: FitData) -> dict[str, Any]:
    """The training rows per source stored in ``LawPosterior.info["gp"]`` for prediction."""
    groups = gp_groups(data)
    rows = {}
    for j, src in enumerate(data.sources):
        m = data.src_idx == j
        local = np.unique(groups["idx"][m], return_inverse=True)[1].reshape(-1)
        first = np.unique(groups["idx"][m])
        rows[src] = {
            "features": {k: [float(x) for x in v[m]] for k, v in data.features.items()},
            "loss": [float(x) for x in data.loss[m]],
            "group": local.tolist(),
            "u": [float(x) for x in groups["u"][first]],
            "u0": float(groups["u0"][j]),
        }
    return {"u": "ln N (non-embedding parameters)", "rows": rows}


# ---- predictive --------------------------------------------------------------------------------
def gp_rows(post: LawPosterior, src: str) -> dict[str, Any] | None:
    """The stored training rows of ``src`` for the GP discrepancy (``info["gp"]["rows"]``), or
    None (no GP term)."""
    gp = post.info.get("gp")
    if not gp or f"gp_eta[{src}]" not in post.samples or src not in gp.get("rows", {}):
        return None
    return gp["rows"][src]


def extrapolation_sd(post: LawPosterior, src: str, sizes: np.ndarray) -> np.ndarray | None:
    """``(n,)`` sd of the law's misfit trend at non-embedding sizes ``(n,)``:
    ``info["extrapolation"]["sd_per_efold"]`` times the distance in ``ln N`` beyond the
    source's fitted sizes (0 inside them); None for fits without the term."""
    info = post.info.get("extrapolation")
    if not info or src not in info.get("sizes", {}):
        return None
    lo, hi = info["sizes"][src]
    u = np.log(np.asarray(sizes, np.float64))
    dist = np.maximum(u - hi, 0.0) + np.maximum(lo - u, 0.0)
    return float(info["sd_per_efold"]) * dist


def misfit_scale(
    post: LawPosterior, src: str, idx: np.ndarray, sizes: np.ndarray
) -> np.ndarray | None:
    """Variance factor ``(n, S')`` of the size-dependent misfit scale of the
    trend-orthogonal discrepancy (``info["misfit_scale"]``) at non-embedding sizes
    ``(n,)``, or None for fits without it."""
    info = post.info.get("misfit_scale", {}).get(src)
    if info is None:
        return None
    return noise_factor(post, idx, np.log(np.asarray(sizes, np.float64)), info, False)


def noise_factor(
    post: LawPosterior, idx: np.ndarray, u: np.ndarray, rows: Mapping[str, Any], draws_first: bool
) -> np.ndarray:
    """``exp(-2 kappa (clip(u) - u0))``: the change of the noise variance with size for
    draws ``idx`` and sizes ``u`` ``(m,)``, held at the edge value beyond the fitted sizes
    of ``rows`` (the source's GP or misfit-scale info: ``u``, ``u0``). ``(s, m)`` if
    ``draws_first`` else ``(m, s)``; ones for fits without ``noise_slope``."""
    kappa = post.samples.get("noise_slope")
    k = np.zeros(len(idx)) if kappa is None else kappa[idx]
    c = np.clip(np.asarray(u, np.float64), min(rows["u"]), max(rows["u"])) - float(rows["u0"])
    f = np.exp(-2.0 * k[:, None] * c[None, :])
    return f if draws_first else f.T


def _gp_solve(
    post: LawPosterior,
    src: str,
    rows: Mapping[str, Any],
    idx: np.ndarray,
    grid: np.ndarray,
    joint: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """The discrepancy GP of ``src`` at ``grid = ln N`` ``(q,)`` conditioned on each draw's
    residual group means at the training sizes ``rows`` (:func:`gp_rows`): mean ``(s, q)`` and
    variance ``(s, q)``, or with ``joint`` the covariance ``(s, q, q)``."""
    feats = {k: np.asarray(v, np.float64)[:, None] for k, v in rows["features"].items()}
    loss = np.asarray(rows["loss"], np.float64)
    group = np.asarray(rows["group"], np.int64)
    mu = post.law_by_row(feats, src, idx)  # (n_train, s)
    resid = loss[:, None] - mu
    m = int(group.max()) + 1
    count = np.bincount(group, minlength=m).astype(np.float64)
    r_bar = (
        np.stack([np.bincount(group, resid[:, j], m) for j in range(resid.shape[1])]) / count
    )  # (s, m)
    u_g = np.asarray(rows["u"], np.float64)  # (m,)
    eta = post.samples[f"gp_eta[{src}]"][idx][:, None, None]
    ell = post.samples["gp_ell"][idx][:, None, None]
    slope = post.samples["gp_slope"][idx][:, None, None]
    u0 = float(rows["u0"])
    sigma2 = post.samples[f"sigma[{src}]"][idx][:, None] ** 2 * noise_factor(
        post, idx, u_g, rows, True
    )  # (s, m)
    kappa_draws = post.samples.get("noise_slope")
    kap: float | np.ndarray = 0.0 if kappa_draws is None else kappa_draws[idx][:, None, None]
    cov = gp_kernel(u_g[None], u_g[None], eta, ell, slope, u0, kappa=kap)
    cov = cov + (sigma2 / count[None, :] + GP_JITTER)[:, :, None] * np.eye(m)
    chol = np.linalg.cholesky(cov)  # (s, m, m)
    span = (float(u_g.min()), float(u_g.max()))
    k_star = gp_kernel(
        grid[None], u_g[None], eta, ell, slope, u0, kappa=kap, u_range=span
    )  # (s, q, m)
    # Batched solves against the Cholesky factor (m is the number of distinct training
    # sizes, tens at most).
    rhs = np.concatenate([np.swapaxes(k_star, 1, 2), r_bar[:, :, None]], axis=2)
    sol = np.linalg.solve(chol, rhs)
    a, b = sol[:, :, :-1], sol[:, :, -1]  # (s, m, q), (s, m)
    mean = np.einsum("smq,sm->sq", a, b)
    if joint:
        k_qq = gp_kernel(
            grid[None], grid[None], eta, ell, slope, u0, kappa=kap, u_range=span
        )  # (s, q, q)
        return mean, k_qq - np.einsum("smq,smp->sqp", a, a)
    kap_rows: float | np.ndarray = 0.0 if kappa_draws is None else kappa_draws[idx][:, None]
    amp2 = np.exp(-2.0 * kap_rows * (np.clip(grid, *span)[None] - u0))
    prior = eta[:, :, 0] ** 2 * amp2 + slope[:, :, 0] ** 2 * (grid[None] - u0) ** 2
    return mean, np.maximum(prior - np.sum(a**2, axis=1), 0.0)  # (s, q)


def _gp_grid(u_new: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """The points ``(q,)`` the GP is evaluated at for sizes ``u_new`` ``(n,)`` and a map
    ``(s, q) -> (n, s)`` back to the rows (exact for few distinct sizes, else linear
    interpolation on a grid of :data:`GP_GRID` points)."""
    uniq, inverse = np.unique(u_new, return_inverse=True)
    if uniq.size <= GP_GRID:
        return uniq, lambda v: v[:, inverse].T
    grid = np.linspace(uniq[0], uniq[-1], GP_GRID)
    pos = np.clip((u_new - grid[0]) / (grid[1] - grid[0]), 0, GP_GRID - 1 - 1e-9)
    lo = pos.astype(np.int64)
    frac = pos - lo
    return grid, lambda v: (v[:, lo] * (1 - frac) + v[:, lo + 1] * frac).T


def gp_conditional(
    post: LawPosterior, src: str, rows: Mapping[str, Any], idx: np.ndarray, u_new: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Conditional mean and variance ``(n_new, S')`` of the discrepancy GP of ``src`` at
    ``u_new = ln N`` given each draw's residual group means at the training sizes ``rows``
    (:func:`gp_rows`)."""
    grid, to_rows = _gp_grid(u_new)
    mean, var = _gp_solve(post, src, rows, idx, grid, joint=False)
    return to_rows(mean), to_rows(var)


def gp_joint(
    post: LawPosterior,
    src: str,
    rows: Mapping[str, Any],
    idx: np.ndarray,
    u_new: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """One draw ``(n_new, S')`` of the discrepancy GP path per posterior draw, joint over
    the sizes ``u_new`` (rows of equal size share the value)."""
    grid, to_rows = _gp_grid(u_new)
    mean, cov = _gp_solve(post, src, rows, idx, grid, joint=True)
    q = grid.size
    scale = np.maximum(np.max(np.diagonal(cov, axis1=1, axis2=2), axis=1), 1e-12)
    chol = np.linalg.cholesky(cov + (1e-9 * scale)[:, None, None] * np.eye(q))
    path = mean + np.einsum("sqp,sp->sq", chol, rng.standard_normal((len(idx), q)))
    return to_rows(path)
