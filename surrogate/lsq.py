"""Point fits of a law, the way the papers fitted them (the baselines for the Bayesian fit).

* ``method="lsq"``: unweighted least squares on the raw loss with Levenberg-Marquardt
  (:func:`scipy.optimize.least_squares`, ``method="lm"``) from several random starts, as
  arXiv 2501.18107 / 2510.18245 did. Starts whose optimum leaves the coefficient bounds (e.g.
  a negative exponent) are discarded; if none stays inside, a bounded trust-region fit is used.
* ``method="huber"``: Epoch AI's Chinchilla replication -- the Huber loss (delta 1e-3) of
  ``log(prediction) - log(loss)`` minimised by L-BFGS(-B) from several starts. The prefactors
  are already log-parametrised (``log_A``, ``log_B``, the LSE trick), ``E`` is bounded positive.

Per-source terms (see :mod:`surrogate.posterior`) are fitted jointly: ``log_scale`` and
``offset`` for each non-reference source. Terms whose identifying feature barely varies in the
data (e.g. the ``r`` terms of ``conditional``: r spans 2.0-2.4 in the shared tables) are held
at their prior (= published) mean, and reported as fixed.

:meth:`LawFit.to_posterior` turns the point fit into a :class:`~surrogate.posterior.LawPosterior`
by drawing from the Laplace (Gauss-Newton) approximation ``N(theta_hat, s^2 (J^T J)^-1)`` with
``s^2`` the residual variance and ``J`` the Jacobian of the raw-loss residuals, re-weighted by
the Gaussian likelihood (importance resampling, flat prior) so curved, weakly identified
directions stay plausible; noise ``sigma`` is each source's residual sd. Every method then predicts through the same code.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import optimize

from models.errors import ArchoptError

from .groups import size_groups
from .laws import STACK_FAMILIES, STACKED, Law, get_law, law_features
from .layout import ParamLayout
from .observation import SOURCE_TERMS, apply_source_terms
from .posterior import LawPosterior
from .predictive import candidate_features
from .runs import source_keys, table_archs, validate_runs

__all__ = [
    "LawFit",
    "fit_lsq",
    "FitError",
    "auto_fixed",
    "size_confounded",
    "FitData",
    "prepare_fit_data",
    "WITHIN_SIZE_LOG_RANGE",
    "IDENTIFIED_LOG_RANGE",
    "HUBER_DELTA",
]

#: A term is identifiable when its feature spans more than this in natural-log units.
IDENTIFIED_LOG_RANGE: float = 0.5
#: A shape feature "varies at fixed size" when it spans at least this (natural-log units, 10%)
#: inside some (source, size) group (:func:`size_confounded`).
WITHIN_SIZE_LOG_RANGE: float = 0.1
#: Epoch AI's Huber delta on log loss.
HUBER_DELTA: float = 1e-3
#: Function evaluations per Levenberg-Marquardt start (converged starts need < 300).
LM_MAX_NFEV: int = 800
_METHODS = ("lsq", "huber")


class FitError(ArchoptError):
    """Bad fit inputs (unknown method, too few rows, unknown source)."""


@dataclass(frozen=True)
class FitData:
    """Everything a fitter needs from a run table.

    Attributes:
        features: law features, arrays ``(n,)``.
        loss: observed loss ``(n,)``.
        src_idx: ``(n,)`` int index into ``sources`` (0 = the reference source).
        sources: source keys, reference first.
        group_idx: ``(n,)`` (source, size group) index (:func:`surrogate.groups.size_groups` on non-embedding
            parameters), the unit of the Bayesian discrepancy term.
        group_src: ``(G,)`` source index of each group.
    """

    features: dict[str, np.ndarray]
    loss: np.ndarray
    src_idx: np.ndarray
    sources: list[str]
    group_idx: np.ndarray
    group_src: np.ndarray

    @property
    def reference_source(self) -> str:
        return self.sources[0]


def prepare_fit_data(
    runs: pd.DataFrame, reference_source: str | None = None, name: str = "runs"
) -> FitData:
    """Validate a run table and order its sources with the reference first.

    The default reference is the source with the most rows (ties: alphabetical).
    """
    df = validate_runs(runs, require_loss=True, name=name)
    keys = source_keys(df)
    counts = pd.Series(keys).value_counts()
    if reference_source is None:
        top = counts.max()
        reference_source = sorted(k for k, c in counts.items() if c == top)[0]
    elif reference_source not in counts.index:
        raise FitError(
            f"reference source {reference_source!r} not in the runs; sources: "
            f"{', '.join(sorted(counts.index))}"
        )
    sources = [reference_source] + sorted(k for k in counts.index if k != reference_source)
    pos = {s: i for i, s in enumerate(sources)}
    features = law_features(table_archs(df), df["tokens"].to_numpy(np.float64))
    src_idx = np.array([pos[k] for k in keys], dtype=np.int64)
    group_idx = size_groups(features["N"], src_idx)
    group_src = np.zeros(group_idx.max() + 1, np.int64)
    group_src[group_idx] = src_idx
    return FitData(
        features=features,
        loss=df["loss"].to_numpy(np.float64),
        src_idx=src_idx,
        sources=sources,
        group_idx=group_idx,
        group_src=group_src,
    )


def auto_fixed(
    law: Law, features: Mapping[str, np.ndarray], src_idx: np.ndarray | None = None
) -> dict[str, float]:
    """Coefficients whose identifying feature spans less than :data:`IDENTIFIED_LOG_RANGE`
    (natural-log units) within every source, mapped to their prior's centre.

    Variation *between* sources does not count: per-source terms absorb it (gemstones has
    r ~ 4 and the other tables r ~ 2, which says nothing about r at fixed data).
    """
    groups = np.zeros(len(features["D"]), np.int64) if src_idx is None else np.asarray(src_idx)
    fixed = {}
    for p in law.params:
        if p.identified_by is None:
            continue
        if _max_log_spread(features[p.identified_by], groups) < IDENTIFIED_LOG_RANGE:
            fixed[p.name] = p.prior.center
    return fixed


def size_confounded(law: Law, data: FitData) -> list[str]:
    """Shape terms whose identifying feature varies across sizes (spans
    :data:`IDENTIFIED_LOG_RANGE` within some source) but never at fixed size (in no (source,
    size) group does it span :data:`WITHIN_SIZE_LOG_RANGE`).

    Such a feature changes only together with the size (openlm_runs: one shape per size), so
    the data cannot tell its term from the N-term: fitted freely, the term bends the size
    trend and extrapolates badly (openlm_runs aspect: 4.3-5.0% held-out MAPE against 1.6-1.9%
    for chinchilla). The Bayesian fit holds such terms at their prior's centre, i.e. the
    published fits (:func:`surrogate.bayes.fit_bayes`).
    """
    out = []
    for p in law.params:
        if p.identified_by is None:
            continue
        values = data.features[p.identified_by]
        if (
            _max_log_spread(values, data.group_idx) < WITHIN_SIZE_LOG_RANGE
            and _max_log_spread(values, data.src_idx) >= IDENTIFIED_LOG_RANGE
        ):
            out.append(p.name)
    return out


def _max_log_spread(values: np.ndarray, groups: np.ndarray) -> float:
    """The largest ``ln max - ln min`` of ``values`` ``(n,)`` within any of ``groups``."""
    logs = np.log(np.asarray(values, dtype=np.float64))
    groups = np.asarray(groups)
    return max(float(np.ptp(logs[groups == g])) for g in np.unique(groups))


def forward_jacobian(
    fun: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Forward-difference Jacobian ``(n, p)`` of ``fun`` at ``x (p,)``, with the steps of
    scipy's ``"2-point"`` scheme (a step that would leave ``bounds`` is reversed, or shortened
    to the far bound, as scipy does), from one call of ``fun`` on the ``(p + 1, p)`` batch of
    ``x`` and its ``p`` perturbations (``fun`` must map ``(k, p) -> (k, n)`` row by row).
    Same numbers as ``least_squares(jac="2-point")``, without its ``p + 1`` Python calls per
    Jacobian: the fits spent most of their time there."""
    x = np.asarray(x, dtype=np.float64)
    sign = (x >= 0).astype(np.float64) * 2 - 1
    h = np.finfo(np.float64).eps ** 0.5 * sign * np.maximum(1.0, np.abs(x))
    if bounds is not None:
        lb, ub = (np.broadcast_to(np.asarray(b, dtype=np.float64), x.shape) for b in bounds)
        lower, upper = x - lb, ub - x
        violated = ((x + h) < lb) | ((x + h) > ub)
        fitting = np.abs(h) <= np.maximum(lower, upper)
        h = np.where(violated & fitting, -h, h)
        h = np.where(~fitting & (upper >= lower), upper, h)
        h = np.where(~fitting & (upper < lower), -lower, h)
    points = np.repeat(x[None, :], x.size + 1, axis=0)
    steps = np.arange(x.size)
    points[steps + 1, steps] = x + h
    values = np.asarray(fun(points))  # (p + 1, n)
    dx = (x + h) - x
    return ((values[1:] - values[0]) / dx[:, None]).T


def _jacobian(fun: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Central-difference Jacobian ``(n, p)`` of ``fun: (p,) -> (n,)``."""
    cols = []
    for j in range(x.size):
        h = 1e-6 * max(1.0, abs(x[j]))
        up, down = x.copy(), x.copy()
        up[j] += h
        down[j] -= h
        cols.append((fun(up) - fun(down)) / (2 * h))
    return np.stack(cols, axis=1)


@dataclass
class LawFit:
    """A point fit of a law (least squares or Huber) with its Laplace covariance.

    Attributes:
        law: law name.
        method: ``"lsq"`` or ``"huber"``.
        theta: every law coefficient (free and fixed) at the optimum.
        source_theta: ``scale[src]`` / ``offset[src]`` (or, with ``"chinchilla"`` source terms,
            ``E[src]``, ``log_A[src]``, ...) of the non-reference sources.
        sigma: residual sd per source (loss units).
        cov: covariance ``(p, p)`` of the free vector (``param_vector_names`` order).
        param_vector_names: names of the free vector entries.
        fixed: coefficients held constant (not fitted) and their values.
        sources, reference_source, source_terms: as in :class:`LawPosterior`.
        cost: objective at the optimum; n_obs: rows; n_starts_ok: starts that converged inside
        the bounds; seconds: wall time.
    """

    law: str
    method: str
    theta: dict[str, float]
    source_theta: dict[str, float]
    sigma: dict[str, float]
    cov: np.ndarray
    x: np.ndarray
    param_vector_names: list[str]
    fixed: dict[str, float]
    sources: list[str]
    reference_source: str
    source_terms: str
    cost: float
    n_obs: int
    n_starts_ok: int
    seconds: float
    sigma_pooled: float = float("nan")
    _data: FitData | None = field(default=None, repr=False)
    _posterior: LawPosterior | None = field(default=None, repr=False)

    def to_posterior(self, n_samples: int = 1000, seed: int = 0) -> LawPosterior:
        """Laplace draws (see :meth:`_laplace_draws`) as a :class:`LawPosterior`."""
        if self._posterior is not None and self._posterior.num_samples == n_samples:
            return self._posterior
        law = get_law(self.law)
        layout = ParamLayout(law, self.fixed, len(self.sources), self.source_terms)
        draws = self._laplace_draws(layout, n_samples, np.random.default_rng(seed))
        theta, scale, offset = layout.unpack(draws)
        samples: dict[str, np.ndarray] = {}
        per_source = {p.name for p in layout.per_source}
        for name in law.param_names:
            value = np.asarray(theta[name], np.float64)
            if name in per_source:
                for j, src in enumerate(self.sources[1:], start=1):
                    samples[f"{name}[{src}]"] = value[:, j].copy()
                value = value[:, 0]
            samples[name] = np.broadcast_to(value, (n_samples,)).copy()
        for j, src in enumerate(self.sources):
            if j and scale is not None:
                samples[f"scale[{src}]"] = scale[:, j]
            if j and offset is not None:
                samples[f"offset[{src}]"] = offset[:, j]
            samples[f"sigma[{src}]"] = np.full(n_samples, self.sigma[src])
        warnings = [] if np.all(np.isfinite(self.cov)) else ["covariance not finite; no spread"]
        self._posterior = LawPosterior(
            self.law,
            samples,
            sources=self.sources,
            reference_source=self.reference_source,
            source_terms=self.source_terms,
            method=self.method,
            num_chains=1,
            diagnostics={
                "method": self.method,
                "max_r_hat": None,
                "min_ess_bulk": None,
                "divergences": 0,
                "num_chains": 1,
                "num_samples": n_samples,
                "cost": self.cost,
                "n_starts_ok": self.n_starts_ok,
                "seconds": self.seconds,
                "warnings": warnings,
            },
            fixed=list(self.fixed),
            info={"n_obs": self.n_obs, "seconds": self.seconds},
        )
        return self._posterior

    def _laplace_draws(
        self, layout: ParamLayout, n_samples: int, rng: np.random.Generator
    ) -> np.ndarray:
        """``(n_samples, p)`` draws: Gaussian proposals ``N(x_hat, cov)`` re-weighted by the
        Gaussian likelihood of the residuals (sampling-importance-resampling, flat prior,
        draws outside the coefficient bounds dropped), so weakly identified, curved directions
        (e.g. eps and gamma when the aspect term is small) do not produce absurd laws."""
        cov = 0.5 * (self.cov + self.cov.T)
        if not np.all(np.isfinite(cov)) or self._data is None:
            return np.repeat(self.x[None, :], n_samples, axis=0)
        n_prop = 4 * n_samples
        prop = rng.multivariate_normal(self.x, cov, size=n_prop, method="eigh")
        lo, hi = layout.bounds()
        ok = np.all((prop >= lo) & (prop <= hi), axis=1)
        data = self._data
        theta, scale, offset = layout.unpack(prop)
        per_source = {p.name for p in layout.per_source}
        theta = {
            k: (v[:, None] if np.ndim(v) and k not in per_source else v) for k, v in theta.items()
        }
        with np.errstate(all="ignore"):
            mu = apply_source_terms(
                layout.law(data.features, layout.rows(theta, data.src_idx), np),
                None if scale is None else scale[:, data.src_idx],
                None if offset is None else offset[:, data.src_idx],
            )
            ssr = np.sum((mu - data.loss) ** 2, axis=1)
        s2 = max(self.sigma_pooled**2, 1e-12)
        diff = prop - self.x
        sol = np.linalg.lstsq(cov, diff.T, rcond=None)[0].T
        log_q = -0.5 * np.sum(diff * sol, axis=1)
        log_w = np.where(ok & np.isfinite(ssr), -ssr / (2 * s2) - log_q, -np.inf)
        if not np.any(np.isfinite(log_w)):
            return np.repeat(self.x[None, :], n_samples, axis=0)
        w = np.exp(log_w - np.max(log_w))
        pick = rng.choice(n_prop, size=n_samples, replace=True, p=w / w.sum())
        return prop[pick]

    def predict_point(
        self, archs_or_runs: Any, tokens: Any = None, *, source: str | None = None
    ) -> pd.DataFrame:
        """The fit's point prediction without posterior draws: one row per candidate with
        ``pred_point`` (the law at the optimum with the row's source terms), ``pred_sd`` (the
        residual sd of that source) and ``pred_source``. Rows use their own fitted source
        (tables) unless ``source`` is given, else the reference source."""
        feats, keys, index = candidate_features(archs_or_runs, tokens)
        n = len(feats["D"])
        if source is not None:
            if source not in self.sources:
                raise FitError(f"unknown source {source!r}; fitted: {', '.join(self.sources)}")
            srcs = np.full(n, source, dtype=object)
        elif keys is None:
            srcs = np.full(n, self.reference_source, dtype=object)
        else:
            srcs = np.array(
                [k if k in self.sources else self.reference_source for k in keys], dtype=object
            )
        theta = {
            k: np.array([self.source_theta.get(f"{k}[{s}]", v) for s in srcs])
            for k, v in self.theta.items()
        }
        point = get_law(self.law)(feats, theta, np)
        scale = np.array([self.source_theta.get(f"scale[{s}]", 1.0) for s in srcs])
        offset = np.array([self.source_theta.get(f"offset[{s}]", 0.0) for s in srcs])
        return pd.DataFrame(
            {
                "pred_point": point * scale + offset,
                "pred_sd": [self.sigma[s] for s in srcs],
                "pred_source": srcs,
            },
            index=index,
        )

    def predict(
        self,
        archs_or_runs: Any,
        tokens: Any = None,
        *,
        source: str | None = None,
        quantiles: Sequence[float] = (0.05, 0.5, 0.95),
    ) -> pd.DataFrame:
        """Posterior-predictive table via :meth:`to_posterior`, plus ``pred_point`` (the law
        at the optimum with the row's source terms, :meth:`predict_point`)."""
        post = self.to_posterior()
        out = post.predict(archs_or_runs, tokens, source=source, quantiles=quantiles)
        point = self.predict_point(archs_or_runs, tokens, source=source)
        out.insert(0, "pred_point", point["pred_point"].to_numpy())
        return out


def fit_lsq(
    runs: pd.DataFrame,
    law: str = "conditional",
    *,
    method: str = "lsq",
    n_starts: int = 16,
    seed: int = 0,
    source_terms: str = "affine",
    reference_source: str | None = None,
    fixed: Mapping[str, float] | None = None,
    huber_delta: float = HUBER_DELTA,
) -> LawFit:
    """Fit ``law`` to a run table by least squares (LM) or Huber-on-log-loss (L-BFGS).

    Args:
        runs: validated or raw run table (``n`` rows, needs ``loss``).
        law: registered law name.
        method: ``"lsq"`` or ``"huber"``.
        n_starts: random starts (uniform in each coefficient's ``start`` range; seeded).
        source_terms: per-source terms, see :data:`surrogate.posterior.SOURCE_TERMS`.
        reference_source: source with scale 1 / offset 0 (default: the one with most rows).
        fixed: coefficients to hold constant; None = :func:`auto_fixed` (barely varied
            features), ``{}`` = fit everything.
        huber_delta: Huber threshold on the log-loss residual.

    Returns:
        The best :class:`LawFit` over the starts.
    """
    t0 = time.perf_counter()
    if law == STACKED:
        raise FitError(
            f"law {STACKED!r} is a mixture of Bayesian fits (method bayes); "
            f"fit one of {', '.join(STACK_FAMILIES)} by {method}"
        )
    law_obj = get_law(law)
    if method not in _METHODS:
        raise FitError(f"unknown fit method {method!r}; known: {', '.join(_METHODS)}")
    if source_terms not in SOURCE_TERMS:
        raise FitError(f"source_terms must be one of {SOURCE_TERMS}, got {source_terms!r}")
    if n_starts < 1:
        raise FitError(f"n_starts must be >= 1, got {n_starts}")
    data = prepare_fit_data(runs, reference_source)
    fixed_values = (
        auto_fixed(law_obj, data.features, data.src_idx) if fixed is None else dict(fixed)
    )
    unknown = [k for k in fixed_values if k not in law_obj.param_names]
    if unknown:
        raise FitError(f"cannot fix {', '.join(unknown)}: not coefficients of law {law!r}")
    size_key = law_obj.options.get("size_key", "N")
    log_pivot = {
        "N": float(np.mean(np.log(data.features[size_key]))),
        "D": float(np.mean(np.log(data.features["D"]))),
    }
    layout = ParamLayout(law_obj, fixed_values, len(data.sources), source_terms, log_pivot)
    n = data.loss.size
    if n <= layout.size:
        raise FitError(f"{n} runs cannot determine {layout.size} coefficients of law {law!r}")
    lo, hi = layout.bounds()
    rng = np.random.default_rng(seed)
    y = data.loss

    def residuals(x: np.ndarray) -> np.ndarray:
        """``(n,)`` residuals at ``x (size,)``, or ``(k, n)`` at a batch ``x (k, size)``."""
        with np.errstate(all="ignore"):
            r = layout.law_values(x, data) - y
        return np.where(np.isfinite(r), r, 1e6)

    def lm_jacobian(x: np.ndarray) -> np.ndarray:
        return forward_jacobian(residuals, x)

    log_y = np.log(y)

    def huber_objective(x: np.ndarray) -> float:
        with np.errstate(all="ignore"):
            pred = layout.law_values(x, data)
            r = np.log(pred) - log_y
        if not np.all(np.isfinite(r)):
            return 1e12
        a = np.abs(r)
        return float(
            np.sum(np.where(a <= huber_delta, 0.5 * r**2, huber_delta * (a - 0.5 * huber_delta)))
        )

    def inside(x: np.ndarray) -> bool:
        return bool(np.all(x >= lo - 1e-9) and np.all(x <= hi + 1e-9) and np.all(np.isfinite(x)))

    best_x, best_cost, n_ok = None, np.inf, 0
    loss_min = [float(y[data.src_idx == j].min()) for j in range(len(data.sources))]
    starts = [np.clip(layout.random_start(rng, loss_min), lo, hi) for _ in range(n_starts)]
    if method == "huber":
        # The LM optimum is a good start for the (log-scale, robust) Huber objective; Huber
        # from uniform starts alone lands in poor local optima (flat directions of eps/E).
        try:
            lm = fit_lsq(
                runs,
                law,
                method="lsq",
                n_starts=max(4, n_starts // 2),
                seed=seed,
                source_terms=source_terms,
                reference_source=data.reference_source,
                fixed=fixed_values,
            )
            starts.insert(0, np.clip(lm.x, lo, hi))
        except FitError:
            pass
    for x0 in starts:
        try:
            if method == "lsq":
                # LM is unbounded: starts that drift along a flat direction out of the
                # bounds (E < 0, alpha -> 0) are cut short and discarded below.
                res = optimize.least_squares(
                    residuals,
                    x0,
                    jac=lm_jacobian,
                    method="lm",
                    x_scale="jac",
                    max_nfev=LM_MAX_NFEV,
                )
                cost = float(res.cost)
            else:
                res = optimize.minimize(
                    huber_objective,
                    x0,
                    method="L-BFGS-B",
                    bounds=list(zip(lo, hi)),
                    options={"maxiter": 2000},
                )
                cost = float(res.fun)
        except (ValueError, np.linalg.LinAlgError):
            continue
        if not inside(res.x) or not np.isfinite(cost):
            continue
        n_ok += 1
        if cost < best_cost:
            best_x, best_cost = res.x, cost
    if best_x is None and method == "lsq":  # every LM start left the bounds: bounded TRF
        for x0 in starts:
            res = optimize.least_squares(
                residuals,
                x0,
                jac=lambda x: forward_jacobian(residuals, x, (lo, hi)),
                method="trf",
                bounds=(lo, hi),
                x_scale="jac",
                max_nfev=4000,
            )
            if np.isfinite(res.cost) and res.cost < best_cost:
                best_x, best_cost = res.x, float(res.cost)
    if best_x is None:
        raise FitError(f"no start of the {method} fit of law {law!r} converged")

    # Laplace covariance from the raw-loss residual Jacobian (Gauss-Newton).
    resid = residuals(best_x)
    jac = _jacobian(residuals, best_x)
    dof = max(n - layout.size, 1)
    s2 = float(resid @ resid) / dof
    try:
        cov = s2 * np.linalg.pinv(jac.T @ jac, rcond=1e-12)
    except np.linalg.LinAlgError:
        cov = np.full((layout.size, layout.size), np.nan)
    theta, scale, offset = layout.unpack(best_x)
    source_theta: dict[str, float] = {}
    sigma: dict[str, float] = {}
    for p in layout.per_source:
        values = theta[p.name]
        theta[p.name] = values[0]
        for j, src in enumerate(data.sources[1:], start=1):
            source_theta[f"{p.name}[{src}]"] = float(values[j])
    for j, src in enumerate(data.sources):
        if j and scale is not None:
            source_theta[f"scale[{src}]"] = float(scale[j])
        if j and offset is not None:
            source_theta[f"offset[{src}]"] = float(offset[j])
        rs = resid[data.src_idx == j]
        sigma[src] = float(
            np.sqrt(np.sum(rs**2) / max(rs.size - layout.size / len(data.sources), 1.0))
        )
    return LawFit(
        law=law,
        method=method,
        theta={k: float(v) for k, v in theta.items()},
        source_theta=source_theta,
        sigma=sigma,
        cov=cov,
        x=np.asarray(best_x),
        param_vector_names=layout.names(data.sources),
        fixed=fixed_values,
        sources=data.sources,
        reference_source=data.reference_source,
        source_terms=source_terms,
        cost=best_cost,
        n_obs=n,
        n_starts_ok=n_ok,
        seconds=time.perf_counter() - t0,
        sigma_pooled=math.sqrt(s2),
        _data=data,
    )
