"""Bayesian fit of a law with NumPyro NUTS.

Observation model (:mod:`surrogate.posterior`), sources ``s`` (reference first), (source, size)
groups ``g`` (:func:`surrogate.groups.size_groups`), ``u = ln N``::

    loss[i] ~ Normal(scale[s_i] law(x_i; theta[s_i]) + offset[s_i] + delta[g_i], sigma[s_i] m(u_i))
    delta = tau[s] M P M z,  z ~ Normal(0, I)      (default "orth"; integrated out in closed form)
    m(u) = exp(-kappa (u - u0[s])),  kappa ~ Normal(0, 0.5)     misfit scale, held at the edges
    sigma[s] ~ HalfNormal(0.1),  tau[s] ~ LogNormal(ln 0.02, 1)    (loss units)
    log scale[s] ~ Normal(0, 0.3), offset[s] ~ Normal(0, 0.5)     (source_terms scale/affine)

**Parametrisation around the pivot.** Fitted on a decade of N, ``E``, ``log_A`` and ``alpha``
are nearly degenerate (``log_A`` and ``alpha`` correlate through ``ln N ~ 18``; ``E`` trades
against the N-term), which is what made chains disagree. The sampler therefore works with
quantities the data pin down separately, at the pivot ``N0, D0`` = geometric means of the fitted
sizes and tokens (per source with per-source Chinchilla parts) and the geometric-mean shape::

    level   = law(pivot)                     ~ LogNormal(ln 3, 0.5)      the loss there
    slope_N = alpha A / N0^alpha  (x shape)  ~ LogNormal(ln 0.1, 1.5)    loss drop per e-fold of N
    slope_D = beta  B / D0^beta   (x shape)  ~ LogNormal(ln 0.1, 1.5)    ... of D
    alpha, beta                              ~ LogNormal(ln 0.3, 1)  (LEVEL_EXPONENT_PRIORS)
    E = level / shape(pivot) - slope_N / alpha - slope_D / beta          (derived)
    log_A = ln(slope_N / alpha) + alpha ln N0,  log_B likewise           (derived)

``E`` has no prior beyond a smooth wall of width 0.2 nats below 0 (a hard truncation stalls
NUTS). Issue 12 measured why: the former ``Normal(2, 1)`` factor on ``E`` and truncated-normal
exponent priors centred at 0.4 favour laws that flatten fast, so wherever the tables leave the
curvature open (2-3 usable sizes) every extrapolation in N came out too high (openlm_runs +5%
to +12% where least squares had +1.6%). The shape calibration of ``conditional`` is sampled as
its slope at the pivot shape (``a1 - a2 / x0``, ``b1 - b2 / r0``, a pure shift with the law's own
priors as factors), since ``ln x`` and ``1/x`` are nearly collinear over the data.
``chinchilla_total`` is sampled the same way; laws with one shared exponent (``aspect_paper``)
sample ``E``, ``alpha`` and the log of each term at the pivot (``Normal(ln 0.3, 1.5)``). Stored
draws are always in the law's own coefficients (``E``, ``log_A``, ``alpha``, ...).

**Discrepancy** (``delta``): a law fitted on some sizes errs systematically at sizes it has not
seen. The default (``discrepancy="orth"``; ``"orth_shared"`` with one ``tau`` for all sources)
gives every size group an effect, but only in the directions the law cannot take: ``P`` projects
each source's group effects off the polynomials of degree :data:`ORTH_DEGREE` (2) in
``u - mean u`` (level, slope and curvature of the size trend), ``M = diag(m(u_g))``. The law alone
must then explain the size trend of the group means, and ``tau`` measures what is left. Why
(issue 12, posterior predictive checks in ``benchmarks/surrogate_validation.py``): a discrepancy
free to follow the size trend takes it over. The former default, a GP in ``ln N`` with a linear
term (``"gp"``), absorbed gemstones' largest-size residual (-0.12 nats) so the law part stayed
fitted to the small models, and beyond the data its Matern part reverted to zero: the predicted
loss *rose* with N at fixed tokens and the posterior mean extrapolated 2-3x worse than least
squares; the i.i.d. ``"group"`` effects made the law's size trend prior-driven (openlm_grid
+7-10% on the dev splits); with the slope projected out but the curvature free, chains split
between a fast-flattening and a slow law (r_hat 1.8 on gemstones). With level, slope and
curvature projected out, the same fits mix at r_hat <= 1.01 and the posterior mean tracks the
data's own size trend. ``kappa`` lets the misfit (noise and group effects) shrink or grow with
size: tiny models bend away from power laws and would otherwise set the width of every
extrapolation. A new size's effect is a fresh ``tau m(u)`` draw
(:meth:`LawPosterior.predict`; ``m`` held at the edge value beyond the fitted sizes), plus a
misfit *trend* that is zero over the fitted sizes and grows by :data:`EXTRAPOLATION_SD` nats per
e-fold beyond them: the data cannot inform it (a trend there is the law's own slope), so its
scale was set on the validation's dev splits. Integrating the group effects out analytically
(:func:`gp_normal_log_lik`, one dense Cholesky over the groups) avoids the tau funnel.

Other options: ``"group"`` (True) i.i.d. effects per size group with a ``tau`` per source,
``"shared"`` one ``tau`` for all; ``"gp"`` / ``"gp_shared"``: ``delta[s](u)`` a Gaussian process
(kernel :func:`surrogate.posterior.gp_kernel`: Matern-3/2 with amplitude ``eta[s] ~
LogNormal(ln 0.02, 1)`` and lengthscale ``ell ~ LogNormal(0, 0.5)`` e-folds, plus a linear term of
sd ``slope ~ HalfNormal(0.02)``, the same ``kappa`` scaling), conditioned on each draw's training
residuals at prediction. Kept for comparison; its mean is not monotone in N beyond the data.

**Scale priors and tree depth.** ``tau`` and ``eta`` have zero-avoiding LogNormal priors (a law is
never exact): with HalfNormal priors, tables with few size groups put posterior mass against 0,
the sampler's log-scale coordinate then has a long tail, and chains disagreed (r_hat 1.15-2.1 on
gemstones) with 70% of draws at the tree depth cap of 8. The cap is 10 (saturation is reported in
the diagnostics).

**Per-source Chinchilla parts** (``source_terms="chinchilla"``): each source has its own
``level``, ``slope_N``, ``slope_D`` (so its own ``E``, ``A``, ``B``) and exponents partially pooled
towards the reference's, ``ln alpha[s] = ln alpha + 0.1 z[s]``, ``z ~ Normal(0, 1)`` (beta
likewise: exponents of one architecture family differ by ~10% between data sets, and the
reference table, trained at ~20 tokens/parameter, cannot separate the N and D exponents on its
own); the shape terms are shared by all sources. ``discrepancy="orth_shared"`` uses one ``tau``
for all sources (the default prior: several sources have only 3-4 size groups, too few to learn
a ``tau`` each).

**Stacking** (``law="stacked"``): every family of :data:`surrogate.laws.STACK_FAMILIES` is fitted
with the same settings and the posteriors are mixed by stacking weights from size-group
cross-validation (:mod:`surrogate.stacking`); the default of ``archopt fit`` and of the
campaign's prior.

Priors that the shared tables cannot override: the ``r`` terms of ``conditional`` (b1, b2) and the
aspect term's eps/gamma are centred on the published fits (data README);
:meth:`LawPosterior.summary` says which terms ended up prior-dominated (for ``log_A``/``log_B`` the
prior sd used there is the pivot approximation ``sqrt(1.5^2 + sd_alpha^2 ln(N0)^2)``).

Sampling: NUTS with a dense mass matrix, float64. Chains start from *dispersed* points: chain 0 at
the best multi-start least-squares optimum, the others at draws of that fit's Laplace
approximation with its covariance inflated 4x (so chains that end up disagreeing reveal
multi-modality instead of hiding it). Chains run in parallel on CPU devices when there are
enough. Diagnostics (r_hat, bulk ESS, divergences) come from ArviZ.

JAX set-up happens once, here, before any JAX computation: ``numpyro.set_host_device_count``
(so chains run in parallel) unless XLA_FLAGS already sets a device count, and float64.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Mapping

import numpyro

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    numpyro.set_host_device_count(max(2, min(os.cpu_count() or 1, 4)))
numpyro.enable_x64()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
import pandas as pd  # noqa: E402
from numpyro.infer import MCMC, NUTS  # noqa: E402
from numpyro.infer.util import unconstrain_fn  # noqa: E402

from .laws import STACKED, Law, Prior, get_law  # noqa: E402
from .lsq import FitData, FitError, auto_fixed, fit_lsq, prepare_fit_data, size_confounded  # noqa: E402
from .posterior import CHINCHILLA_PART, GP_JITTER, SOURCE_TERMS, LawPosterior, apply_source_terms  # noqa: E402

__all__ = [
    "fit_bayes",
    "numpyro_prior",
    "law_model",
    "SCALE_PRIOR_SD",
    "OFFSET_PRIOR_SD",
    "SIGMA_PRIOR_SCALE",
    "TAU_PRIOR",
    "PIVOT_TERM_PRIOR",
    "EXPONENT_POOL_SD",
    "model_inputs",
    "DISCREPANCY",
    "MODEL_REVISION",
    "GP_AMP_PRIOR",
    "GP_LENGTHSCALE_PRIOR",
    "GP_SLOPE_PRIOR_SCALE",
    "gp_normal_log_lik",
]

#: Bumped when the model or sampler changes what a fit returns for the same data and settings
#: (cached posteriors keyed on settings, e.g. the default prior, are then refitted).
#: 2: LogNormal tau / eta priors, tree depth 10, GP discrepancy over the merged size groups
#: with a size-dependent misfit scale.
#: 3: trend-orthogonal group discrepancy by default, flat E and log-scale exponent priors,
#: misfit-trend term beyond the fitted sizes (issue 12).
MODEL_REVISION: int = 3
SCALE_PRIOR_SD: float = 0.3
OFFSET_PRIOR_SD: float = 0.5
SIGMA_PRIOR_SCALE: float = 0.1
#: Prior of the discrepancy sd tau (loss units): LogNormal, so zero-avoiding (module docstring).
TAU_PRIOR: Prior = Prior("lognormal", math.log(0.02), 1.0)
#: Options of ``fit_bayes(discrepancy=...)`` besides True/False (module docstring).
DISCREPANCY: tuple[str, ...] = ("orth", "orth_shared", "group", "shared", "gp", "gp_shared")
#: GP discrepancy: prior of the Matern amplitude eta (loss units), zero-avoiding like tau's.
GP_AMP_PRIOR: Prior = Prior("lognormal", math.log(0.02), 1.0)
#: GP discrepancy: LogNormal prior of the Matern lengthscale (e-folds of N).
GP_LENGTHSCALE_PRIOR: Prior = Prior("lognormal", 0.0, 0.5)
#: GP discrepancy: sd of the Normal prior of kappa, the log change of the misfit scale per e-fold.
NOISE_SLOPE_PRIOR_SD: float = 0.5
#: GP discrepancy: HalfNormal scale of the sd of the linear-in-ln-N slope (loss per e-fold).
GP_SLOPE_PRIOR_SCALE: float = 0.02
#: Prior of the log of the N- (D-) term at the pivot: 0.3 nats, factor e^1.5 per sd.
PIVOT_TERM_PRIOR: Prior = Prior("normal", math.log(0.3), 1.5)
#: Level parametrisation: the Chinchilla part at the pivot (nats), a factor 1.6 per sd.
LEVEL_PRIOR: Prior = Prior("lognormal", math.log(3.0), 0.5)
#: ``alpha T_N(N0)`` and ``beta T_D(D0)``: loss drop per e-fold of N (D) at the pivot.
SLOPE_PRIOR: Prior = Prior("lognormal", math.log(0.1), 1.5)
#: Shape-calibration coefficients sampled as their slope at the pivot shape:
#: name -> (partner coefficient, pivot feature); ``name = slope + partner / feature``.
_SLOPE_PAIRS = {"a1": ("a2", "x"), "b1": ("b2", "r")}
#: Width (nats) of the smooth wall that keeps the derived E above 0.
E_WALL: float = 0.2
#: sd (nats) per e-fold of N beyond the fitted sizes of the law's misfit trend, a discrepancy
#: component that is zero over the fitted sizes (so the data cannot inform it: a trend there is
#: the law's own slope) and grows linearly beyond them; set on the validation's dev splits.
EXTRAPOLATION_SD: float = 0.02
#: The trend-orthogonal discrepancy is orthogonal to polynomials in ``ln N`` of this degree
#: per source: the law alone explains the level, the slope (and with 2 the curvature) of the
#: size-group means, so the discrepancy cannot take over the law's size trend.
ORTH_DEGREE: int = 2
#: Normal prior factor on the derived E in the level parametrisation; None: flat above the
#: wall (the validated choice: a prior pulling E up flattens every extrapolation in N).
E_PRIOR_FACTOR: Prior | None = None
#: Priors of the exponents in the level parametrisation: log-scale, so a slowly flattening
#: power law (small exponent, E near 0) is as plausible a priori as a fast-flattening one.
LEVEL_EXPONENT_PRIORS: dict[str, Prior] = {
    "alpha": Prior("lognormal", math.log(0.3), 1.0),
    "beta": Prior("lognormal", math.log(0.3), 1.0),
}
#: Between-source sd of log exponents with per-source Chinchilla parts (module docstring).
EXPONENT_POOL_SD: float = 0.1
#: (prefactor, feature, exponent) of the Chinchilla terms; the D exponent falls back to alpha
#: in laws with one exponent (aspect_paper).
_TERMS = (("log_A", "N", "alpha"), ("log_B", "D", "beta"))


def numpyro_prior(prior: Prior) -> dist.Distribution:
    """The NumPyro distribution of a :class:`~surrogate.laws.Prior`."""
    if prior.kind == "normal":
        return dist.Normal(prior.loc, prior.scale)
    if prior.kind == "lognormal":
        return dist.LogNormal(prior.loc, prior.scale)
    return dist.TruncatedNormal(prior.loc, prior.scale, low=prior.low, high=prior.high)


def _terms(law: Law) -> list[tuple[str, str, str]]:
    """The law's Chinchilla prefactors as (log-prefactor, feature key, exponent name)."""
    names = set(law.param_names)
    size_key = law.options.get("size_key", "N")
    out = []
    for log_name, key, exp_name in _TERMS:
        if log_name in names:
            out.append(
                (
                    log_name,
                    size_key if key == "N" else "D",
                    exp_name if exp_name in names else "alpha",
                )
            )
    return out


def _per_source_names(law: Law, n_sources: int, source_terms: str) -> list[str]:
    if n_sources < 2 or source_terms != "chinchilla":
        return []
    return [p for p in law.param_names if p in CHINCHILLA_PART]


def _uses_level(law: Law) -> bool:
    """Laws with the full Chinchilla part (E, log_A, alpha, log_B, beta) are sampled in the
    level/slope/fraction parametrisation; others (one shared exponent) in the pivot one."""
    return set(CHINCHILLA_PART) <= set(law.param_names)


def chinchilla_from_level(
    level: Any,
    slope_n: Any,
    slope_d: Any,
    alpha: Any,
    beta: Any,
    log_n0: Any,
    log_d0: Any,
    xp: Any = np,
) -> dict[str, Any]:
    """The Chinchilla coefficients of the level/slope parametrisation.

    ``level = E + T_N(N0) + T_D(D0)`` is the Chinchilla part at the pivot, ``slope_n =
    alpha T_N(N0)`` and ``slope_d = beta T_D(D0)`` the loss drop per e-fold of N and D there;
    so ``T_N(N0) = slope_n / alpha`` and ``E = level - T_N(N0) - T_D(D0)``. Shapes broadcast.
    """
    t_n = slope_n / alpha
    t_d = slope_d / beta
    return {
        "E": level - t_n - t_d,
        "alpha": alpha,
        "beta": beta,
        "log_A": xp.log(t_n) + alpha * log_n0,
        "log_B": xp.log(t_d) + beta * log_d0,
    }


def shape_factor(law: Law, theta: Mapping[str, Any], pivot: Mapping[str, Any], xp: Any = np) -> Any:
    """The law's shape calibration at the pivot shape: ``law / chinchilla`` there (1 for
    ``chinchilla``). Evaluated with a unit Chinchilla part (``E = 1``, no N/D terms), which is
    exact for the multiplicative laws registered here."""
    unit = dict(theta, E=1.0, log_A=-700.0, log_B=-700.0, alpha=1.0, beta=1.0)
    if "beta" not in law.param_names:
        unit.pop("beta")
    return law(pivot, unit, xp)


def _pivot_shape(law: Law, pivot_features: Mapping[str, Any], feature: str) -> Any:
    """``d_model / sqrt(N)`` (``"x"``) or ``r`` at the (reference source's) pivot."""
    if feature == "x":
        size_key = law.options.get("size_key", "N")
        return pivot_features["d_model"][0] / pivot_features[size_key][0] ** 0.5
    return pivot_features[feature][0]


def law_model(
    features: Mapping[str, jnp.ndarray],
    src_idx: jnp.ndarray,
    loss: jnp.ndarray | None,
    *,
    law: Law,
    n_sources: int,
    source_terms: str,
    log_pivot: Mapping[str, jnp.ndarray],
    group_idx: jnp.ndarray | None = None,
    group_src: jnp.ndarray | None = None,
    pivot_features: Mapping[str, jnp.ndarray] | None = None,
    shared_tau: bool = False,
    gp: Mapping[str, jnp.ndarray] | None = None,
    orth: Mapping[str, jnp.ndarray] | None = None,
    fixed: Mapping[str, float] | None = None,
) -> None:
    """NumPyro model of ``n`` runs (see the module docstring).

    Args:
        features: law features, arrays ``(n,)``.
        src_idx: ``(n,)`` source index, 0 = reference.
        loss: observed ``(n,)`` losses, or None to sample the prior predictive.
        law: the law.
        n_sources: number of sources.
        source_terms: one of :data:`surrogate.posterior.SOURCE_TERMS`.
        log_pivot: feature key (``N``/``N_total``, ``D``) -> ``(n_sources,)`` log pivot.
        pivot_features: every feature at the pivot (geometric means), ``(n_sources,)`` each.
        group_idx: ``(n,)`` (source, size) group per row; None = no discrepancy term.
        group_src: ``(G,)`` source of each group.
        shared_tau: one discrepancy sd ``tau`` (GP amplitude ``eta``) for all sources.
        gp: GP discrepancy inputs (:func:`model_inputs`): ``idx`` ``(n,)`` size group,
            ``u`` ``(G,)`` its ln N, ``src`` ``(G,)`` its source, ``u0`` ``(n_sources,)``;
            replaces the i.i.d. group discrepancy.
        orth: trend-orthogonal group discrepancy inputs (:func:`orth_groups`): ``idx``, ``u``,
            ``src``, ``u0`` as for ``gp`` plus ``proj`` ``(G, G)``, the per-source projection
            off a level and a linear trend in ``ln N``.
        fixed: shape coefficients held at a value instead of sampled (``size_confounded``).
    """
    fixed = dict(fixed or {})
    k = n_sources - 1
    per_source = _per_source_names(law, n_sources, source_terms)
    n_p = n_sources if per_source else 1
    terms = _terms(law)
    chin_names = set(CHINCHILLA_PART) if _uses_level(law) else {t[0] for t in terms}
    theta: dict[str, Any] = {}
    for p in law.params:
        if p.name in fixed:
            theta[p.name] = fixed[p.name]
        elif p.name not in chin_names and p.name not in _SLOPE_PAIRS:
            theta[p.name] = numpyro.sample(p.name, numpyro_prior(p.prior))
    for name, (partner, feature) in _SLOPE_PAIRS.items():
        if name in law.param_names and name not in fixed:
            # Sample the calibration's slope at the pivot shape (flat base, the law's own prior
            # as a factor: a pure shift, so the prior is unchanged); a1 and a2 (b1, b2) are
            # nearly collinear over the data's narrow x (r) range, the slope and a2 are not.
            at = _pivot_shape(law, pivot_features, feature)
            u = numpyro.sample(f"{name}_pivot", dist.ImproperUniform(dist.constraints.real, (), ()))
            theta[name] = u + theta[partner] / at
            numpyro.factor(
                f"{name}_prior", numpyro_prior(law.param(name).prior).log_prob(theta[name])
            )
    if _uses_level(law):
        level = numpyro.sample("level", numpyro_prior(LEVEL_PRIOR).expand([n_p]))
        slope_n = numpyro.sample("slope_N", numpyro_prior(SLOPE_PRIOR).expand([n_p]))
        slope_d = numpyro.sample("slope_D", numpyro_prior(SLOPE_PRIOR).expand([n_p]))
        exps = {}
        for name in ("alpha", "beta"):
            value = numpyro.sample(
                name, numpyro_prior(LEVEL_EXPONENT_PRIORS.get(name, law.param(name).prior))
            )
            if n_p > 1:  # other sources' exponents pooled towards the reference's (log scale)
                z = numpyro.sample(f"{name}_z", dist.Normal(0.0, 1.0).expand([n_p - 1]))
                value = jnp.concatenate([value[None], value * jnp.exp(EXPONENT_POOL_SD * z)])
            exps[name] = value if n_p > 1 else jnp.reshape(value, (1,))
        size_key = law.options.get("size_key", "N")
        # level = the law at the pivot (sizes and shape); the Chinchilla part is level over the
        # shape factor there, so level stays uncorrelated with the shape terms.
        factor = shape_factor(law, theta, {k: v[:n_p] for k, v in pivot_features.items()}, jnp)
        chin = chinchilla_from_level(
            level / factor,
            slope_n / factor,
            slope_d / factor,
            exps["alpha"],
            exps["beta"],
            log_pivot[size_key][:n_p],
            log_pivot["D"][:n_p],
            jnp,
        )
        # E is derived; its prior is the law's, with a smooth steep wall below 0 (a hard
        # truncation would stall NUTS at the boundary).
        e = chin["E"]
        log_p = (
            0.0
            if E_PRIOR_FACTOR is None
            else dist.Normal(E_PRIOR_FACTOR.loc, E_PRIOR_FACTOR.scale).log_prob(jnp.maximum(e, 0.0))
        )
        numpyro.factor("E_prior", jnp.sum(log_p - 0.5 * (jnp.minimum(e, 0.0) / E_WALL) ** 2))
        for name, value in chin.items():
            theta[name] = value[src_idx] if n_p > 1 else value[0]
    else:  # pivot parametrisation of the prefactors only (laws with one shared exponent)
        for log_name, key, exp_name in terms:
            u = numpyro.sample(f"{log_name}_pivot", numpyro_prior(PIVOT_TERM_PRIOR))
            theta[log_name] = u + theta[exp_name] * log_pivot[key][0]
    mu = law(features, theta, jnp)
    scale = offset = None
    if k and source_terms in ("scale", "affine"):
        log_scale = numpyro.sample("log_scale", dist.Normal(0.0, SCALE_PRIOR_SD).expand([k]))
        scale = jnp.concatenate([jnp.ones(1), jnp.exp(log_scale)])[src_idx]
    if k and source_terms in ("offset", "affine"):
        off = numpyro.sample("offset", dist.Normal(0.0, OFFSET_PRIOR_SD).expand([k]))
        offset = jnp.concatenate([jnp.zeros(1), off])[src_idx]
    mu = apply_source_terms(mu, scale, offset)
    sigma = numpyro.sample("sigma", dist.HalfNormal(SIGMA_PRIOR_SCALE).expand([n_sources]))
    if orth is not None:
        tau = numpyro.sample(
            "tau", numpyro_prior(TAU_PRIOR).expand([1 if shared_tau else n_sources])
        )
        tau = jnp.broadcast_to(tau, (n_sources,))
        kappa = numpyro.sample("noise_slope", dist.Normal(0.0, NOISE_SLOPE_PRIOR_SD))
        m = jnp.exp(-kappa * (orth["u"] - orth["u0"][orth["src"]]))  # (G,) misfit scale
        amp = tau[orth["src"]] * m
        cov = amp[:, None] * amp[None, :] * orth["proj"]
        sigma_g = sigma[orth["src"]] * m
        if loss is None:  # prior predictive: draw the group effects explicitly
            z = numpyro.sample("orth_z", dist.Normal(0.0, 1.0).expand([orth["u"].shape[0]]))
            delta = (amp[:, None] * orth["proj"]) @ z
            numpyro.sample("obs", dist.Normal(mu + delta[orth["idx"]], sigma_g[orth["idx"]]))
            return
        numpyro.factor("obs", gp_normal_log_lik(loss - mu, orth["idx"], sigma_g, cov))
        return
    if gp is not None:
        if shared_tau:
            eta = jnp.broadcast_to(
                numpyro.sample("gp_eta", numpyro_prior(GP_AMP_PRIOR)), (n_sources,)
            )
        else:
            eta = numpyro.sample("gp_eta", numpyro_prior(GP_AMP_PRIOR).expand([n_sources]))
        ell = numpyro.sample("gp_ell", numpyro_prior(GP_LENGTHSCALE_PRIOR))
        slope = numpyro.sample("gp_slope", dist.HalfNormal(GP_SLOPE_PRIOR_SCALE))
        kappa = numpyro.sample("noise_slope", dist.Normal(0.0, NOISE_SLOPE_PRIOR_SD))
        cov = _gp_cov(gp, eta, ell, slope, kappa)
        if loss is None:  # prior predictive: draw the GP at the sizes explicitly
            z = numpyro.sample("gp_z", dist.Normal(0.0, 1.0).expand([gp["u"].shape[0]]))
            delta = jnp.linalg.cholesky(cov + GP_JITTER * jnp.eye(cov.shape[0])) @ z
            numpyro.sample("obs", dist.Normal(mu + delta[gp["idx"]], sigma[src_idx]))
            return
        sigma_g = sigma[gp["src"]] * jnp.exp(-kappa * (gp["u"] - gp["u0"][gp["src"]]))
        numpyro.factor("obs", gp_normal_log_lik(loss - mu, gp["idx"], sigma_g, cov))
        return
    if group_idx is None:
        numpyro.sample("obs", dist.Normal(mu, sigma[src_idx]), obs=loss)
        return
    if shared_tau:  # one discrepancy sd for every source (few size groups per source)
        tau = jnp.broadcast_to(numpyro.sample("tau", numpyro_prior(TAU_PRIOR)), (n_sources,))
    else:
        tau = numpyro.sample("tau", numpyro_prior(TAU_PRIOR).expand([n_sources]))
    if loss is None:  # prior predictive: draw the group effects explicitly
        z = numpyro.sample("group_z", dist.Normal(0.0, 1.0).expand([group_src.shape[0]]))
        numpyro.sample("obs", dist.Normal(mu + (tau[group_src] * z)[group_idx], sigma[src_idx]))
        return
    numpyro.factor(
        "obs", grouped_normal_log_lik(loss - mu, group_idx, sigma[group_src], tau[group_src])
    )


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


def _gp_cov(
    gp: Mapping[str, jnp.ndarray], eta: jnp.ndarray, ell: Any, slope: Any, kappa: Any = 0.0
) -> jnp.ndarray:
    """``(G, G)`` GP covariance of the distinct sizes (zero between sources)."""
    u, src = gp["u"], gp["src"]
    d = jnp.abs(u[:, None] - u[None, :])
    r = math.sqrt(3.0) * d / ell
    c = u - gp["u0"][src]
    amp = eta[src] * jnp.exp(-kappa * c)
    k = amp[:, None] * amp[None, :] * (1.0 + r) * jnp.exp(-r) + slope**2 * c[:, None] * c[None, :]
    return jnp.where(src[:, None] == src[None, :], k, 0.0)


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
    ``(G, G)``, block-diagonal over sources, each block ``I - X (X^T X)^+ X^T`` with
    ``X = [1, u - u0]`` over that source's groups (zero with two groups or fewer)."""
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


def _scale_info(data: FitData) -> dict[str, Any]:
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


def _extrapolation_info(data: FitData) -> dict[str, Any]:
    """``LawPosterior.info["extrapolation"]``: the misfit-trend sd per e-fold of N
    (:data:`EXTRAPOLATION_SD`) and per source the fitted ``ln N`` range ``[min, max]``."""
    u = np.log(data.features["N"])
    sizes = {
        src: [float(u[data.src_idx == j].min()), float(u[data.src_idx == j].max())]
        for j, src in enumerate(data.sources)
    }
    return {"sd_per_efold": EXTRAPOLATION_SD, "sizes": sizes}


def _gp_info(data: FitData) -> dict[str, Any]:
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


def model_inputs(
    data: FitData,
    law: Law,
    source_terms: str,
    discrepancy: bool | str = True,
    fixed: Mapping[str, float] | None = None,
) -> tuple[tuple, dict[str, Any]]:
    """``(args, kwargs)`` of :func:`law_model` for prepared data (pivots: geometric means of
    the fitted sizes / tokens, per source with per-source Chinchilla parts, else pooled)."""
    n_sources = len(data.sources)
    per_source = bool(_per_source_names(law, n_sources, source_terms))
    log_pivot = {}
    for key in ("N", "N_total", "D", "d_model", "n_layers", "r"):
        logs = np.log(data.features[key])
        if per_source:
            log_pivot[key] = jnp.asarray([logs[data.src_idx == j].mean() for j in range(n_sources)])
        else:
            log_pivot[key] = jnp.full(n_sources, logs.mean())
    pivot_features = {k: jnp.exp(v) for k, v in log_pivot.items()}
    args = (
        {k: jnp.asarray(v) for k, v in data.features.items()},
        jnp.asarray(data.src_idx),
        jnp.asarray(data.loss),
    )
    use_gp = discrepancy in ("gp", "gp_shared")
    use_orth = discrepancy in ("orth", "orth_shared")
    grouped = bool(discrepancy) and not use_gp and not use_orth
    gp = {k: jnp.asarray(v) for k, v in gp_groups(data).items()} if use_gp else None
    orth = {k: jnp.asarray(v) for k, v in orth_groups(data).items()} if use_orth else None
    kwargs = dict(
        law=law,
        n_sources=n_sources,
        source_terms=source_terms,
        log_pivot=log_pivot,
        group_idx=jnp.asarray(data.group_idx) if grouped else None,
        group_src=jnp.asarray(data.group_src) if grouped else None,
        pivot_features=pivot_features,
        shared_tau=discrepancy in ("shared", "gp_shared", "orth_shared"),
        gp=gp,
        orth=orth,
        fixed=dict(fixed or {}),
    )
    return args, kwargs


def _prior_sds(
    law: Law, sources: list[str], source_terms: str, log_pivot: Mapping[str, Any], discrepancy: bool
) -> dict[str, float]:
    """Prior sd of every stored term; for ``log_A`` / ``log_B`` the sd implied by the pivot
    prior and the exponent prior, ``sqrt(sd_u^2 + sd_alpha^2 ln(N0)^2)``."""
    out = {p.name: p.prior.sd for p in law.params}
    for log_name, key, exp_name in _terms(law):
        pivot = float(np.asarray(log_pivot[key])[0])
        out[log_name] = math.sqrt(
            PIVOT_TERM_PRIOR.scale**2 + (law.param(exp_name).prior.sd * pivot) ** 2
        )
    per_source = _per_source_names(law, len(sources), source_terms)
    lognormal_sd = math.sqrt((math.exp(SCALE_PRIOR_SD**2) - 1) * math.exp(SCALE_PRIOR_SD**2))
    half_normal = math.sqrt(1 - 2 / math.pi)
    for j, src in enumerate(sources):
        if j:
            for name in per_source:
                out[f"{name}[{src}]"] = out[name]
        if j and source_terms in ("scale", "affine"):
            out[f"scale[{src}]"] = lognormal_sd
        if j and source_terms in ("offset", "affine"):
            out[f"offset[{src}]"] = OFFSET_PRIOR_SD
        out[f"sigma[{src}]"] = SIGMA_PRIOR_SCALE * half_normal
        if discrepancy in ("gp", "gp_shared"):
            out[f"gp_eta[{src}]"] = GP_AMP_PRIOR.sd
        elif discrepancy:
            out[f"tau[{src}]"] = TAU_PRIOR.sd
    if discrepancy in ("gp", "gp_shared", "orth", "orth_shared"):
        out["noise_slope"] = NOISE_SLOPE_PRIOR_SD
    if discrepancy in ("gp", "gp_shared"):
        out["gp_ell"] = GP_LENGTHSCALE_PRIOR.sd
        out["gp_slope"] = GP_SLOPE_PRIOR_SCALE * half_normal
    return out


# ---- initial values ----------------------------------------------------------------------
def _inside(value: float, prior: Prior) -> float:
    """``value`` moved strictly inside the support of ``prior``."""
    lo, hi = prior.low, prior.high
    if prior.kind == "lognormal":
        lo = 0.0
    if lo is not None and hi is not None:
        margin = 1e-3 * (hi - lo)
        return float(min(max(value, lo + margin), hi - margin))
    if lo is not None:
        return float(max(value, lo + 1e-6 * max(1.0, abs(lo)) + 1e-9))
    return float(value)


def _point_fits(
    runs: pd.DataFrame,
    law: Law,
    data: FitData,
    source_terms: str,
    seed: int,
    n_chains: int,
    fixed: Mapping[str, float] | None = None,
) -> list[dict[str, Any]] | None:
    """``n_chains`` dispersed starting points in the model's constrained space, built from
    least-squares fits: per-source fits for per-source Chinchilla parts, one joint fit
    otherwise. Point 0 is the optimum, the others Laplace draws (covariance inflated 4x)."""
    per_source = _per_source_names(law, len(data.sources), source_terms)
    rng = np.random.default_rng(seed + 1)
    lsq_fixed = {**auto_fixed(law, data.features, data.src_idx), **fixed} if fixed else None
    try:
        if per_source:
            keys = pd.Series(_row_keys(runs, data))
            fits = [
                fit_lsq(
                    runs[(keys == src).to_numpy()], law.name, n_starts=6, seed=seed, fixed=lsq_fixed
                )
                for src in data.sources
            ]
        else:
            fits = [
                fit_lsq(
                    runs,
                    law.name,
                    n_starts=8,
                    seed=seed,
                    source_terms=source_terms,
                    reference_source=data.reference_source,
                    fixed=lsq_fixed,
                )
            ]
    except FitError:
        return None
    # Per fit: n_chains coefficient vectors (theta dicts + source terms).
    chains: list[list[dict[str, Any]]] = []
    for fit in fits:
        layout_draws = [dict(fit.theta, **fit.source_theta)]
        if n_chains > 1:
            cov = 0.5 * (fit.cov + fit.cov.T)
            if np.all(np.isfinite(cov)):
                from .layout import ParamLayout

                layout = ParamLayout(law, fit.fixed, len(fit.sources), fit.source_terms)
                lo, hi = layout.bounds()
                for _ in range(n_chains - 1):
                    for _attempt in range(20):
                        x = rng.multivariate_normal(fit.x, 4.0 * cov, method="eigh")
                        if np.all((x >= lo) & (x <= hi)):
                            break
                    else:
                        x = fit.x
                    theta, scale, offset = layout.unpack(x)
                    point = {k: float(v) for k, v in theta.items()}
                    for j, src in enumerate(fit.sources[1:], start=1):
                        if scale is not None:
                            point[f"scale[{src}]"] = float(scale[j])
                        if offset is not None:
                            point[f"offset[{src}]"] = float(offset[j])
                    layout_draws.append(point)
            while len(layout_draws) < n_chains:
                layout_draws.append(dict(layout_draws[0]))
        chains.append(layout_draws)
    return [
        {"fits": [c[i] for c in chains], "sigma": [f.sigma for f in fits]} for i in range(n_chains)
    ]


def _row_keys(runs: pd.DataFrame, data: FitData) -> np.ndarray:
    return np.asarray(data.sources, dtype=object)[data.src_idx]


def _constrained_init(
    point: Mapping[str, Any],
    law: Law,
    data: FitData,
    kwargs: Mapping[str, Any],
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Values of every sample site of :func:`law_model` from a least-squares point."""
    sources = data.sources
    n_sources = len(sources)
    per_source = _per_source_names(law, n_sources, kwargs["source_terms"])
    fits = point["fits"]
    ref = fits[0]
    values: dict[str, Any] = {}
    theta_src = [fits[j] if per_source else ref for j in range(n_sources)]
    if _uses_level(law):
        for p in law.params:
            if p.name not in CHINCHILLA_PART:
                values[p.name] = _inside(ref[p.name], p.prior)
        size_key = law.options.get("size_key", "N")
        n_p = n_sources if per_source else 1
        lvl, sn, sd, exps = [], [], [], {"alpha": [], "beta": []}
        for j in range(n_p):
            th = theta_src[j]
            alpha = _inside(th["alpha"], law.param("alpha").prior)
            beta = _inside(th["beta"], law.param("beta").prior)
            t_n = math.exp(th["log_A"] - th["alpha"] * float(kwargs["log_pivot"][size_key][j]))
            t_d = math.exp(th["log_B"] - th["beta"] * float(kwargs["log_pivot"]["D"][j]))
            factor = float(
                shape_factor(
                    law, ref, {k: float(v[j]) for k, v in kwargs["pivot_features"].items()}
                )
            )
            lvl.append((max(th["E"], 0.0) + t_n + t_d) * factor)
            sn.append(alpha * t_n * factor)
            sd.append(beta * t_d * factor)
            exps["alpha"].append(alpha)
            exps["beta"].append(beta)
        values.update(
            level=np.array(lvl),
            slope_N=np.array(sn),
            slope_D=np.array(sd),
            alpha=exps["alpha"][0],
            beta=exps["beta"][0],
        )
        for name, (partner, feature) in _SLOPE_PAIRS.items():
            if name in values:
                at = float(_pivot_shape(law, kwargs["pivot_features"], feature))
                values[f"{name}_pivot"] = values.pop(name) - values[partner] / at
        if n_p > 1:
            for name in ("alpha", "beta"):
                values[f"{name}_z"] = np.clip(
                    np.log(np.array(exps[name][1:]) / exps[name][0]) / EXPONENT_POOL_SD, -3, 3
                )
    else:
        for p in law.params:
            if p.name not in ("log_A", "log_B"):
                values[p.name] = _inside(ref[p.name], p.prior)
        for log_name, key, exp_name in _terms(law):
            piv = float(np.asarray(kwargs["log_pivot"][key])[0])
            values[f"{log_name}_pivot"] = ref[log_name] - ref[exp_name] * piv
    for name in kwargs.get("fixed") or {}:
        values.pop(name, None)
        values.pop(f"{name}_pivot", None)
    k = n_sources - 1
    if k and kwargs["source_terms"] in ("scale", "affine"):
        values["log_scale"] = np.log([max(ref.get(f"scale[{s}]", 1.0), 1e-3) for s in sources[1:]])
    if k and kwargs["source_terms"] in ("offset", "affine"):
        values["offset"] = np.array([ref.get(f"offset[{s}]", 0.0) for s in sources[1:]])
    # Residuals of this point give the group effects, tau and sigma to start from.
    resid = _point_residuals(values, law, data, kwargs)
    sigma = np.empty(n_sources)
    gp = kwargs.get("gp") is not None
    orth = kwargs.get("orth") is not None
    if gp or orth or kwargs["group_idx"] is not None:
        # The discrepancy amplitude (GP eta or group tau) starts at the spread of group means.
        g_idx, g_src = data.group_idx, data.group_src
        g_mean = np.bincount(g_idx, resid, len(g_src)) / np.maximum(
            np.bincount(g_idx, None, len(g_src)), 1
        )
        amp = np.array(
            [max(np.sqrt(np.mean(g_mean[g_src == j] ** 2)), 3e-3) for j in range(n_sources)]
        ) * rng.uniform(0.8, 1.25, n_sources)
        if kwargs.get("shared_tau"):
            amp = np.sqrt(np.mean(amp**2))
            if orth:
                amp = np.atleast_1d(amp)
        values["gp_eta" if gp else "tau"] = amp
        if orth:
            values["noise_slope"] = 0.0
        if gp:
            values["gp_ell"] = rng.uniform(0.8, 1.25)
            values["noise_slope"] = 0.0
            values["gp_slope"] = 0.01 * rng.uniform(0.8, 1.25)
        resid = resid - g_mean[g_idx]
    for j in range(n_sources):
        r = resid[data.src_idx == j]
        sigma[j] = max(float(np.sqrt(np.mean(r**2))), 2e-3)
    values["sigma"] = sigma * rng.uniform(0.8, 1.25, n_sources)
    return {k: jnp.asarray(v, dtype=jnp.float64) for k, v in values.items()}


def _point_residuals(
    values: Mapping[str, Any], law: Law, data: FitData, kwargs: Mapping[str, Any]
) -> np.ndarray:
    """Residuals ``loss - mean`` of the model without the discrepancy at ``values``."""
    from numpyro.handlers import condition, seed, trace

    no_group = dict(kwargs, group_idx=None, group_src=None, gp=None, orth=None)
    model = condition(law_model, {k: jnp.asarray(v) for k, v in values.items()})
    args, _ = model_inputs(data, law, kwargs["source_terms"], discrepancy=False)
    tr = trace(seed(model, 0)).get_trace(args[0], args[1], None, **no_group)
    return data.loss - np.asarray(tr["obs"]["fn"].loc)


def _init_params(
    runs: pd.DataFrame,
    law: Law,
    data: FitData,
    args: tuple,
    kwargs: Mapping[str, Any],
    seed: int,
    num_chains: int,
) -> dict[str, Any] | None:
    """Unconstrained initial values with a leading chain axis, or None (prior init)."""
    points = _point_fits(
        runs, law, data, kwargs["source_terms"], seed, num_chains, kwargs.get("fixed")
    )
    if points is None:
        return None
    rng = np.random.default_rng(seed + 2)
    per_chain = [
        unconstrain_fn(law_model, args, dict(kwargs), _constrained_init(p, law, data, kwargs, rng))
        for p in points
    ]
    return {k: jnp.stack([c[k] for c in per_chain]) for k in per_chain[0]}


def _to_samples(
    by_chain: Mapping[str, np.ndarray], law: Law, data: FitData, kwargs: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """Flat draws keyed as :class:`LawPosterior` expects (law coefficients of the reference,
    ``name[src]`` per-source terms), prefactors converted back from the pivot scale."""
    sources = data.sources
    flat = {k: np.asarray(v).reshape((-1,) + np.asarray(v).shape[2:]) for k, v in by_chain.items()}
    values: dict[str, np.ndarray] = {}  # name -> (S,) or (S, n_sources)
    n_draws = len(next(iter(flat.values())))
    for p in law.params:
        if p.name in flat:
            values[p.name] = flat[p.name]
        elif p.name in (kwargs.get("fixed") or {}):
            values[p.name] = np.full(n_draws, float(kwargs["fixed"][p.name]))
    for name, (partner, feature) in _SLOPE_PAIRS.items():
        if f"{name}_pivot" in flat:
            at = float(_pivot_shape(law, kwargs["pivot_features"], feature))
            values[name] = flat[f"{name}_pivot"] + flat[partner] / at
    if _uses_level(law):
        size_key = law.options.get("size_key", "N")
        n_p = flat["level"].shape[1]
        shape_theta = {k: v[:, None] for k, v in values.items()}
        factor = shape_factor(
            law,
            shape_theta,
            {k: np.asarray(v)[:n_p] for k, v in kwargs["pivot_features"].items()},
            np,
        )
        exps = {}
        for name in ("alpha", "beta"):
            exps[name] = flat[name][:, None]
            if n_p > 1:
                exps[name] = np.concatenate(
                    [exps[name], exps[name] * np.exp(EXPONENT_POOL_SD * flat[f"{name}_z"])], 1
                )
        chin = chinchilla_from_level(
            flat["level"] / factor,
            flat["slope_N"] / factor,
            flat["slope_D"] / factor,
            exps["alpha"],
            exps["beta"],
            np.asarray(kwargs["log_pivot"][size_key])[:n_p],
            np.asarray(kwargs["log_pivot"]["D"])[:n_p],
            np,
        )
        for name, v in chin.items():
            values[name] = v if n_p > 1 else v[:, 0]
    else:
        for log_name, key, exp_name in _terms(law):
            piv = float(np.asarray(kwargs["log_pivot"][key])[0])
            values[log_name] = flat[f"{log_name}_pivot"] + values[exp_name] * piv
    samples: dict[str, np.ndarray] = {}
    for name, v in values.items():
        if v.ndim == 2:
            samples[name] = v[:, 0]
            for j, src in enumerate(sources[1:], start=1):
                samples[f"{name}[{src}]"] = v[:, j]
        else:
            samples[name] = v
    for j, src in enumerate(sources):
        if j and "log_scale" in flat:
            samples[f"scale[{src}]"] = np.exp(flat["log_scale"][:, j - 1])
        if j and "offset" in flat:
            samples[f"offset[{src}]"] = flat["offset"][:, j - 1]
        samples[f"sigma[{src}]"] = flat["sigma"][:, j]
        for name in ("tau", "gp_eta"):
            if name in flat:
                v = flat[name].reshape(len(flat[name]), -1)  # (S, n_sources) or (S, 1)
                samples[f"{name}[{src}]"] = v[:, j if v.shape[1] > 1 else 0]
    for name in ("gp_ell", "gp_slope", "noise_slope"):
        if name in flat:
            samples[name] = flat[name]
    return samples


def fit_bayes(
    runs: pd.DataFrame,
    law: str = "conditional",
    *,
    num_chains: int = 2,
    num_warmup: int = 500,
    num_samples: int = 500,
    seed: int = 0,
    progress: bool = True,
    reference_source: str | None = None,
    source_terms: str = "affine",
    target_accept: float = 0.9,
    max_tree_depth: int = 10,
    discrepancy: bool | str = "orth",
    fixed: Mapping[str, float] | None = None,
) -> LawPosterior:
    """Sample the posterior of ``law`` given a run table with NUTS.

    Args:
        runs: run table with ``loss`` (``n`` rows, any number of sources).
        law: registered law name; ``"stacked"`` fits every family of
            :data:`surrogate.laws.STACK_FAMILIES` with these settings and mixes them by
            stacking weights (:func:`surrogate.stacking.fit_stacked`).
        num_chains, num_warmup, num_samples: NUTS settings (samples are per chain).
        seed: PRNG seed (the result is reproducible for a given seed and settings).
        progress: show a rich progress bar (warm-up, then sampling).
        reference_source: the source with scale 1 / offset 0 (default: most rows).
        source_terms: per-source terms (:data:`surrogate.posterior.SOURCE_TERMS`);
            ``"chinchilla"`` gives every source its own Chinchilla part.
        target_accept, max_tree_depth: NUTS step-size target and tree depth cap.
        discrepancy: the per-(source, size group) discrepancy term (module docstring):
            ``"orth"`` (default): group effects orthogonal to a level and a linear trend in
            ``ln N`` per source, with a size-dependent misfit scale (``"orth_shared"``: one
            ``tau`` for all sources); True or ``"group"``: i.i.d. per size group with a ``tau``
            per source; ``"shared"``: with one ``tau`` for all sources; ``"gp"``: a GP in
            ``ln N`` per source (``"gp_shared"``: one amplitude); False: none.
        fixed: coefficients held constant instead of sampled. None: the shape terms whose
            feature never varies at fixed size (:func:`surrogate.lsq.size_confounded`) are
            held at their prior's centre (the published fits) and a diagnostics warning says so;
            ``{}``: sample everything.

    Returns:
        A :class:`LawPosterior` with ``num_chains * num_samples`` draws, ArviZ diagnostics and
        a warning in ``diagnostics["warnings"]`` when r_hat > 1.01, ESS is low or there were
        divergences.
    """
    if law == STACKED:
        from .stacking import fit_stacked

        return fit_stacked(
            runs,
            progress=progress,
            seed=seed,
            num_chains=num_chains,
            num_warmup=num_warmup,
            num_samples=num_samples,
            reference_source=reference_source,
            source_terms=source_terms,
            target_accept=target_accept,
            max_tree_depth=max_tree_depth,
            discrepancy=discrepancy,
            fixed=fixed,
        )
    t0 = time.perf_counter()
    law_obj = get_law(law)
    if source_terms not in SOURCE_TERMS:
        raise FitError(f"source_terms must be one of {SOURCE_TERMS}, got {source_terms!r}")
    for name, value in (
        ("num_chains", num_chains),
        ("num_warmup", num_warmup),
        ("num_samples", num_samples),
    ):
        if value < 1:
            raise FitError(f"{name} must be >= 1, got {value}")
    if isinstance(discrepancy, str) and discrepancy not in DISCREPANCY:
        raise FitError(
            f"discrepancy must be True, False or one of {DISCREPANCY}, got {discrepancy!r}"
        )
    data = prepare_fit_data(runs, reference_source)
    confounded = size_confounded(law_obj, data) if fixed is None else []
    if fixed is None:
        fixed = {name: law_obj.param(name).prior.center for name in confounded}
    unknown = sorted(set(fixed) - set(law_obj.param_names))
    if unknown:
        raise FitError(f"fixed names unknown to law {law!r}: {', '.join(unknown)}")
    args, kwargs = model_inputs(data, law_obj, source_terms, discrepancy, fixed)
    init = _init_params(runs, law_obj, data, args, kwargs, seed, num_chains)
    t_init = time.perf_counter() - t0
    kernel = NUTS(
        law_model, dense_mass=True, target_accept_prob=target_accept, max_tree_depth=max_tree_depth
    )
    chain_method = "parallel" if jax.local_device_count() >= num_chains else "sequential"
    mcmc = MCMC(
        kernel,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method=chain_method,
        progress_bar=False,
    )
    if init is not None and num_chains == 1:
        init = {k: v[0] for k, v in init.items()}
    # Two compiled loops (warm-up, sampling) so the bar can report each; chunking the sampling
    # further would recompile per chunk (~2 s each), so the bar moves in two steps.
    with _progress(
        progress,
        num_warmup + num_samples,
        f"NUTS {law} ({num_chains} chains, {len(data.loss)} runs)",
    ) as advance:
        mcmc.warmup(jax.random.PRNGKey(seed), *args, init_params=init, **kwargs)
        advance(num_warmup)
        mcmc.run(
            mcmc.post_warmup_state.rng_key, *args, extra_fields=("diverging", "num_steps"), **kwargs
        )
        advance(num_samples)
    by_chain = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    extra = mcmc.get_extra_fields(group_by_chain=True)
    div = np.asarray(extra["diverging"])
    n_steps = np.asarray(extra["num_steps"])
    samples = _to_samples(by_chain, law_obj, data, kwargs)
    seconds = time.perf_counter() - t0
    pivots = {
        k: [round(float(x), 4) for x in np.asarray(v)] for k, v in kwargs["log_pivot"].items()
    }
    posterior = LawPosterior(
        law,
        samples,
        sources=data.sources,
        reference_source=data.reference_source,
        source_terms=source_terms,
        method="bayes",
        num_chains=num_chains,
        prior_sd=_prior_sds(law_obj, data.sources, source_terms, kwargs["log_pivot"], discrepancy),
        info={
            "n_obs": int(len(data.loss)),
            "num_warmup": num_warmup,
            "num_samples": num_samples,
            "seed": seed,
            "chain_method": chain_method,
            "max_tree_depth": max_tree_depth,
            "seconds": round(seconds, 3),
            "init_seconds": round(t_init, 3),
            "init": "least squares, dispersed" if init is not None else "prior",
            "log_pivot": pivots,
            "discrepancy": discrepancy if isinstance(discrepancy, str) else bool(discrepancy),
            "n_groups": int(len(data.group_src)) if discrepancy else 0,
            "size_confounded": confounded,
        },
        fixed=sorted(fixed),
        sample_stats={
            "diverging": div.reshape(-1).astype(np.int8),
            "n_steps": n_steps.reshape(-1).astype(np.int32),
        },
    )
    if kwargs.get("gp") is not None:
        posterior.info["gp"] = _gp_info(data)
    if kwargs.get("orth") is not None:
        posterior.info["misfit_scale"] = _scale_info(data)
    if kwargs.get("gp") is None and EXTRAPOLATION_SD > 0:
        posterior.info["extrapolation"] = _extrapolation_info(data)
    posterior.diagnostics  # computed now so warnings are part of the saved file
    return posterior


class _progress:
    """A rich progress bar (or nothing) with an ``advance(n)`` callable."""

    def __init__(self, enabled: bool, total: int, description: str) -> None:
        self.enabled, self.total, self.description = enabled, total, description
        self._progress = None

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        # stderr, so a --json stdout stays machine-readable.
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._progress.__enter__()
        task = self._progress.add_task(self.description, total=self.total)
        return lambda n: self._progress.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
