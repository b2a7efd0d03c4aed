"""Closed-form marginal likelihoods of the fits' discrepancy (JAX, used inside the NumPyro
model of :mod:`surrogate.bayes`).

Integrating the (source, size group) effects out analytically removes one latent per group and
the funnel between their scale and the effects that stalls NUTS when the scale is small:
:func:`grouped_normal_log_lik` for i.i.d. group effects (Sherman-Morrison per group),
:func:`gp_normal_log_lik` for correlated ones (the GP and the trend-orthogonal discrepancy; one
dense Cholesky over the groups).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .discrepancy import GP_JITTER
from .jaxconfig import configure_jax

__all__ = ["grouped_normal_log_lik", "gp_normal_log_lik"]

configure_jax()


def grouped_normal_log_lik(
    resid: jnp.ndarray, group_idx: jnp.ndarray, sigma_g: jnp.ndarray, tau_g: jnp.ndarray
) -> jnp.ndarray:
    """``log N(resid | 0, blockdiag(sigma_g^2 I + tau_g^2 11^T))``: the group effects
    ``delta[g] ~ N(0, tau_g)`` integrated out in closed form (Sherman-Morrison per group).

    Marginalising removes one latent per group and the funnel between ``tau`` and the effects
    that stalls NUTS when ``tau`` is small (max tree depth on every draw).

    Args:
        resid: ``(n,)`` residuals ``loss - mean``.
        group_idx: ``(n,)`` group of each row.
        sigma_g, tau_g: ``(G,)`` noise and discrepancy sd of each group.
    """
    n_groups = sigma_g.shape[0]
    count = jax.ops.segment_sum(jnp.ones_like(resid), group_idx, n_groups)
    s1 = jax.ops.segment_sum(resid, group_idx, n_groups)
    s2 = jax.ops.segment_sum(resid**2, group_idx, n_groups)
    var_s, var_t = sigma_g**2, tau_g**2
    denom = var_s + count * var_t
    quad = s2 / var_s - var_t * s1**2 / (var_s * denom)
    log_det = (count - 1.0) * jnp.log(var_s) + jnp.log(denom)
    return -0.5 * jnp.sum(jnp.where(count > 0, quad + log_det + count * jnp.log(2 * jnp.pi), 0.0))


def gp_normal_log_lik(
    resid: jnp.ndarray, group_idx: jnp.ndarray, sigma_g: jnp.ndarray, cov: jnp.ndarray
) -> jnp.ndarray:
    """``log N(resid | 0, sigma^2 I + Z cov Z^T)`` (``Z`` the row -> group indicator): a GP
    discrepancy shared by the rows of each group integrated out in closed form.

    The within-group deviations are i.i.d. ``N(0, sigma_g^2)``; the group means ``rbar`` are
    ``N(0, cov + diag(sigma_g^2 / count))`` (one dense Cholesky over the groups); the Jacobian of
    that split contributes ``-0.5 sum ln count``.

    Args:
        resid: ``(n,)`` residuals.
        group_idx: ``(n,)`` group of each row (every group has at least one row).
        sigma_g: ``(G,)`` noise sd of each group.
        cov: ``(G, G)`` covariance of the group effects.
    """
    n_groups = sigma_g.shape[0]
    count = jax.ops.segment_sum(jnp.ones_like(resid), group_idx, n_groups)
    s1 = jax.ops.segment_sum(resid, group_idx, n_groups)
    s2 = jax.ops.segment_sum(resid**2, group_idx, n_groups)
    var_s = sigma_g**2
    within = jnp.sum(
        (s2 - s1**2 / count) / var_s + (count - 1.0) * jnp.log(2 * jnp.pi * var_s) + jnp.log(count)
    )
    r_bar = s1 / count
    c = cov + jnp.diag(var_s / count + GP_JITTER)
    chol = jnp.linalg.cholesky(c)
    w = jax.scipy.linalg.solve_triangular(chol, r_bar, lower=True)
    between = (
        jnp.sum(w**2) + 2.0 * jnp.sum(jnp.log(jnp.diag(chol))) + n_groups * jnp.log(2 * jnp.pi)
    )
    return -0.5 * (within + between)
