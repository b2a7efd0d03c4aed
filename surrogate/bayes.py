"""Bayesian fit of a law with NumPyro NUTS.

Observation model (:mod:`surrogate.observation`), sources ``s`` (reference first), (source, size)
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
each source's group effects off the polynomials of degree :data:`~surrogate.discrepancy.ORTH_DEGREE` (2) in
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
(:func:`surrogate.marginal.gp_normal_log_lik`, one dense Cholesky over the groups) avoids the
tau funnel.

Other options: ``"group"`` (True) i.i.d. effects per size group with a ``tau`` per source,
``"shared"`` one ``tau`` for all; ``"gp"`` / ``"gp_shared"``: ``delta[s](u)`` a Gaussian process
(kernel :func:`surrogate.discrepancy.gp_kernel`: Matern-3/2 with amplitude ``eta[s] ~
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

Where the parts live: this module holds the model (:func:`law_model`, its priors and
:func:`model_inputs`); :func:`fit_bayes`, the NUTS driver, is :mod:`surrogate.nuts` (importable
from here); the parametrisation around the pivot :mod:`surrogate.pivot`; the closed-form
likelihoods :mod:`surrogate.marginal`; the size-group inputs and the discrepancy at prediction
:mod:`surrogate.discrepancy`; the dispersed starting points :mod:`surrogate.nuts_init`; the
conversion of the sampled sites to stored draws :mod:`surrogate.nuts_draws`. JAX set-up
(parallel chains, float64): :mod:`surrogate.jaxconfig`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from .discrepancy import GP_JITTER, gp_group_cov, gp_groups, orth_groups
from .jaxconfig import configure_jax
from .laws import Law, Prior
from .lsq import FitData
from .marginal import gp_normal_log_lik, grouped_normal_log_lik
from .observation import CHINCHILLA_PART, apply_source_terms
from .pivot import (
    SLOPE_PAIRS,
    chinchilla_from_level,
    chinchilla_terms,
    per_source_names,
    pivot_shape,
    shape_factor,
    uses_level,
)

if TYPE_CHECKING:
    from .nuts import fit_bayes as fit_bayes  # resolved at run time by __getattr__ below

__all__ = [
    "fit_bayes",
    "numpyro_prior",
    "law_model",
    "model_inputs",
    "SCALE_PRIOR_SD",
    "OFFSET_PRIOR_SD",
    "SIGMA_PRIOR_SCALE",
    "TAU_PRIOR",
    "PIVOT_TERM_PRIOR",
    "LEVEL_PRIOR",
    "SLOPE_PRIOR",
    "LEVEL_EXPONENT_PRIORS",
    "E_PRIOR_FACTOR",
    "E_WALL",
    "EXPONENT_POOL_SD",
    "EXTRAPOLATION_SD",
    "NOISE_SLOPE_PRIOR_SD",
    "DISCREPANCY",
    "MODEL_REVISION",
    "GP_AMP_PRIOR",
    "GP_LENGTHSCALE_PRIOR",
    "GP_SLOPE_PRIOR_SCALE",
]

configure_jax()

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
#: Width (nats) of the smooth wall that keeps the derived E above 0.
E_WALL: float = 0.2
#: sd (nats) per e-fold of N beyond the fitted sizes of the law's misfit trend, a discrepancy
#: component that is zero over the fitted sizes (so the data cannot inform it: a trend there is
#: the law's own slope) and grows linearly beyond them; set on the validation's dev splits.
EXTRAPOLATION_SD: float = 0.02
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


def numpyro_prior(prior: Prior) -> dist.Distribution:
    """The NumPyro distribution of a :class:`~surrogate.laws.Prior`."""
    if prior.kind == "normal":
        return dist.Normal(prior.loc, prior.scale)
    if prior.kind == "lognormal":
        return dist.LogNormal(prior.loc, prior.scale)
    return dist.TruncatedNormal(prior.loc, prior.scale, low=prior.low, high=prior.high)


def law_model(
    features: Mapping[str, jnp.ndarray],
    src_idx: jnp.ndarray,
    loss: jnp.ndarray | None,
    *,
    law: Law,
    n_sources: int,
    source_terms: str,
    log_pivot: Mapping[str, jnp.ndarray],
    pivot_features: Mapping[str, jnp.ndarray],
    group_idx: jnp.ndarray | None = None,
    group_src: jnp.ndarray | None = None,
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
        source_terms: one of :data:`surrogate.observation.SOURCE_TERMS`.
        log_pivot: feature key (``N``/``N_total``, ``D``) -> ``(n_sources,)`` log pivot.
        pivot_features: every feature at the pivot (geometric means), ``(n_sources,)`` each.
        group_idx: ``(n,)`` (source, size) group per row; None = no i.i.d. group term.
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
    per_source = per_source_names(law, n_sources, source_terms)
    n_p = n_sources if per_source else 1
    terms = chinchilla_terms(law)
    chin_names = set(CHINCHILLA_PART) if uses_level(law) else {t[0] for t in terms}
    theta: dict[str, Any] = {}
    for p in law.params:
        if p.name in fixed:
            theta[p.name] = fixed[p.name]
        elif p.name not in chin_names and p.name not in SLOPE_PAIRS:
            theta[p.name] = numpyro.sample(p.name, numpyro_prior(p.prior))
    for name, (partner, feature) in SLOPE_PAIRS.items():
        if name in law.param_names and name not in fixed:
            # Sample the calibration's slope at the pivot shape (flat base, the law's own prior
            # as a factor: a pure shift, so the prior is unchanged); a1 and a2 (b1, b2) are
            # nearly collinear over the data's narrow x (r) range, the slope and a2 are not.
            at = pivot_shape(law, pivot_features, feature)
            u = numpyro.sample(f"{name}_pivot", dist.ImproperUniform(dist.constraints.real, (), ()))
            theta[name] = u + theta[partner] / at
            numpyro.factor(
                f"{name}_prior", numpyro_prior(law.param(name).prior).log_prob(theta[name])
            )
    if uses_level(law):
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
        cov = gp_group_cov(gp, eta, ell, slope, kappa, xp=jnp)
        if loss is None:  # prior predictive: draw the GP at the sizes explicitly
            z = numpyro.sample("gp_z", dist.Normal(0.0, 1.0).expand([gp["u"].shape[0]]))
            delta = jnp.linalg.cholesky(cov + GP_JITTER * jnp.eye(cov.shape[0])) @ z
            numpyro.sample("obs", dist.Normal(mu + delta[gp["idx"]], sigma[src_idx]))
            return
        sigma_g = sigma[gp["src"]] * jnp.exp(-kappa * (gp["u"] - gp["u0"][gp["src"]]))
        numpyro.factor("obs", gp_normal_log_lik(loss - mu, gp["idx"], sigma_g, cov))
        return
    if group_idx is None or group_src is None:
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
    per_source = bool(per_source_names(law, n_sources, source_terms))
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


def __getattr__(name: str) -> Any:
    """``fit_bayes`` (the NUTS driver, :mod:`surrogate.nuts`) is importable from here, the
    documented entry point of the Bayesian fit; it is resolved on first use (the driver
    imports this module)."""
    if name == "fit_bayes":
        from .nuts import fit_bayes

        return fit_bayes
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
