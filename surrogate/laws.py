"""Scaling-law forms, each defined once and usable from numpy, jax.numpy and torch.

A :class:`Law` is a plain function of *features* (arrays derived from an architecture and its
training tokens, see :func:`law_features`) and *theta* (the law's coefficients). Only plain
arithmetic and ``xp.log`` / ``xp.exp`` / ``xp.sqrt`` are used, so the same definition serves
least squares (numpy), NUTS (jax.numpy) and the GP prior mean (torch). Broadcasting follows the
array library: features of shape ``(n,)`` and theta entries of shape ``(S, 1)`` give ``(S, n)``.

Registered laws (:data:`LAWS`):

* ``chinchilla`` -- ``E + A/N^alpha + B/D^beta`` (Hoffmann et al. 2022), N = non-embedding
  parameters. ``chinchilla_total`` is the same form with N = total parameters.
* ``aspect`` -- arXiv 2501.18107 Eq. 4: ``(E + A/N^alpha + B/D^beta) (1 + eps R^gamma)`` with
  ``R = d_model / n_layers``. ``aspect_paper`` is that paper's own fit: N = total parameters and
  one exponent ``alpha = beta = gamma`` (the form the data README reproduces).
* ``conditional`` -- arXiv 2510.18245 Eq. 3:
  ``L_opt(N, D) (a0 + a1 ln x + a2 / x) (b0 + b1 ln r + b2 / r)`` with ``x = d_model/sqrt(N)``,
  ``r`` = MLP / attention parameters per block and ``L_opt`` the Chinchilla form, fitted jointly.
* ``stacked`` -- ``conditional`` times ``(1 + eps R^gamma)``: the form that nests the three
  families above. It is not fitted as such: its posterior is a mixture of the families'
  posteriors, each a draw of ``stacked`` with the other families' shape terms switched off,
  weighted by stacking on size-group cross-validation (:mod:`surrogate.stacking`).

Identifiability of ``conditional``: the product has a free overall scale (multiplying ``L_opt``
by c and both factors by ``c^-1/2`` changes nothing). We fix it by normalising each factor to
1 at a reference shape, ``x0 = 0.08`` and ``r0 = 1`` (the optima of the published 80M-297M fit,
``a2/a1 = 0.080`` and ``b2/b1 = 1.03``)::

    a0 = 1 - a1 ln x0 - a2 / x0          b0 = 1 - b1 ln r0 - b2 / r0

so ``L_opt`` is the loss of the reference shape and ``a1, a2, b1, b2`` are the paper's
coefficients divided by the factor's value at the reference point (published 80M-297M fit:
``a1 = 0.038, a2 = 0.0031, b1 = 0.016, b2 = 0.017``; 1B fit: ``0.123, 0.0091, 0.0099, 0.012``).

Coefficients are in the units the papers print except that the large prefactors are stored as
logs (``log_A``, ``log_B``): ``A / N^alpha = exp(log_A - alpha ln N)`` is stable in float32.
New laws are added in one place: build a :class:`Law` and put it in :data:`LAWS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from models.arch import Arch
from models.errors import ArchoptError

__all__ = [
    "Law",
    "Param",
    "Prior",
    "LAWS",
    "STACKED",
    "STACK_FAMILIES",
    "NEUTRAL_SHAPE_TERMS",
    "LawError",
    "get_law",
    "law_features",
    "FEATURE_KEYS",
    "X0_D_OVER_SQRT_N",
    "R0_MLP_ATTN",
]

Array = Any  # numpy.ndarray | jax.Array | torch.Tensor

#: Reference shape at which the two calibration factors of ``conditional`` equal 1.
X0_D_OVER_SQRT_N: float = 0.08
R0_MLP_ATTN: float = 1.0

#: The law whose posterior mixes :data:`STACK_FAMILIES` (:mod:`surrogate.stacking`).
STACKED: str = "stacked"
#: The families a stacked posterior mixes; each is ``stacked`` with the others' shape terms
#: neutral (:data:`NEUTRAL_SHAPE_TERMS`).
STACK_FAMILIES: tuple[str, ...] = ("chinchilla", "aspect", "conditional")
#: Values of ``stacked``'s shape coefficients that switch a family's shape term off.
NEUTRAL_SHAPE_TERMS: dict[str, float] = {
    "eps": 0.0,
    "gamma": 0.0,
    "a1": 0.0,
    "a2": 0.0,
    "b1": 0.0,
    "b2": 0.0,
}

#: Keys of the dict :func:`law_features` returns.
FEATURE_KEYS: tuple[str, ...] = ("N", "N_total", "D", "d_model", "n_layers", "r")


class LawError(ArchoptError):
    """Unknown law name or malformed law inputs."""


@dataclass(frozen=True)
class Prior:
    """A weakly informative prior on one coefficient (the Bayesian fit builds it in NumPyro).

    Attributes:
        kind: ``"normal"``, ``"lognormal"`` (loc/scale of the log) or ``"truncnormal"``.
        loc, scale: location and scale of the normal (of the log for lognormal).
        low, high: truncation bounds for ``truncnormal`` (None = unbounded).
    """

    kind: str
    loc: float
    scale: float
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("normal", "lognormal", "truncnormal"):
            raise LawError(f"unknown prior kind {self.kind!r}")
        if not self.scale > 0:
            raise LawError(f"prior scale must be positive, got {self.scale}")

    def distribution(self) -> Any:
        """The prior as a frozen :mod:`scipy.stats` distribution (``rvs``, ``pdf``, ``ppf``,
        ``mean``, ``std``): ``norm``, ``lognorm`` or ``truncnorm``."""
        from scipy import stats

        if self.kind == "normal":
            return stats.norm(self.loc, self.scale)
        if self.kind == "lognormal":
            return stats.lognorm(s=self.scale, scale=math.exp(self.loc))
        lo = -np.inf if self.low is None else (self.low - self.loc) / self.scale
        hi = np.inf if self.high is None else (self.high - self.loc) / self.scale
        return stats.truncnorm(lo, hi, loc=self.loc, scale=self.scale)

    @property
    def mean(self) -> float:
        return float(self.distribution().mean())

    @property
    def center(self) -> float:
        """The value the prior is centred on (``loc``; ``exp(loc)`` for lognormal): the
        published value for priors taken from a paper. Terms the data cannot identify are
        held here (a wide lognormal's mean lies far above its centre)."""
        return math.exp(self.loc) if self.kind == "lognormal" else self.loc

    @property
    def sd(self) -> float:
        """Prior standard deviation (used to say whether a term is data- or prior-dominated)."""
        return float(self.distribution().std())


@dataclass(frozen=True)
class Param:
    """One coefficient of a law.

    Attributes:
        name: key in theta.
        prior: the Bayesian prior (documented, weakly informative unless ``published``).
        bounds: hard bounds for least squares.
        start: range multi-start least squares draws initial values from (uniformly).
        identified_by: a feature key whose variation identifies this term; when the data barely
            vary it, least squares holds the term at its prior mean and NUTS leans on the prior.
        published: True when the prior is centred on a published fit rather than weak.
    """

    name: str
    prior: Prior
    bounds: tuple[float, float]
    start: tuple[float, float]
    identified_by: str | None = None
    published: bool = False


@dataclass(frozen=True)
class Law:
    """A loss law ``L(features; theta)``.

    Attributes:
        name: registry key.
        params: the coefficients, in a fixed order (vectors in the fitters use this order).
        formula: ``formula(features, theta, xp, **options) -> Array``.
        options: keyword options bound to the formula (e.g. ``size_key="N_total"``).
        description: one line for users.
    """

    name: str
    params: tuple[Param, ...]
    formula: Callable[..., Array]
    description: str
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise LawError(f"law {self.name!r} has no coefficient {name!r}")

    def __call__(
        self, features: Mapping[str, Array], theta: Mapping[str, Array], xp: Any = np
    ) -> Array:
        """Evaluate the law.

        Args:
            features: arrays of shape ``(n,)`` (or broadcastable), keys from :data:`FEATURE_KEYS`.
            theta: one entry per :attr:`param_names`, scalars or shape ``(S, 1)``.
            xp: the array module the inputs belong to (numpy, jax.numpy or torch).

        Returns:
            Loss values with the broadcast shape of features and theta, e.g. ``(S, n)``.
        """
        return self.formula(features, theta, xp, **self.options)

    def theta_vector_to_dict(self, vector: Sequence[float]) -> dict[str, float]:
        """Map a vector in :attr:`param_names` order to a dict."""
        if len(vector) != len(self.params):
            raise LawError(
                f"law {self.name!r} takes {len(self.params)} coefficients, got {len(vector)}"
            )
        return {name: float(v) for name, v in zip(self.param_names, vector)}


# ---- formulas ---------------------------------------------------------------------------
def _chinchilla_formula(features, theta, xp, *, size_key: str = "N"):
    """``E + A / N^alpha + B / D^beta`` with A, B stored as logs."""
    n_term = xp.exp(theta["log_A"] - theta["alpha"] * xp.log(features[size_key]))
    d_term = xp.exp(theta["log_B"] - theta["beta"] * xp.log(features["D"]))
    return theta["E"] + n_term + d_term


def _aspect_formula(features, theta, xp, *, size_key: str = "N"):
    """``(E + A/N^alpha + B/D^beta) (1 + eps R^gamma)``, ``R = d_model / n_layers``."""
    aspect = features["d_model"] / features["n_layers"]
    return _chinchilla_formula(features, theta, xp, size_key=size_key) * (
        1.0 + theta["eps"] * xp.exp(theta["gamma"] * xp.log(aspect))
    )


def _aspect_paper_formula(features, theta, xp, *, size_key: str = "N_total"):
    """arXiv 2501.18107 Table 7 form: one exponent ``alpha`` for N, D and R."""
    alpha = theta["alpha"]
    aspect = features["d_model"] / features["n_layers"]
    base = (
        theta["E"]
        + xp.exp(theta["log_A"] - alpha * xp.log(features[size_key]))
        + xp.exp(theta["log_B"] - alpha * xp.log(features["D"]))
    )
    return base * (1.0 + theta["eps"] * xp.exp(alpha * xp.log(aspect)))


def _conditional_formula(features, theta, xp, *, size_key: str = "N"):
    """``L_opt(N, D) g(d/sqrt(N)) h(r)``, each factor 1 at the reference shape (x0, r0)."""
    x = features["d_model"] / xp.sqrt(features[size_key])
    r = features["r"]
    g = (
        1.0
        + theta["a1"] * xp.log(x / X0_D_OVER_SQRT_N)
        + theta["a2"] * (1.0 / x - 1.0 / X0_D_OVER_SQRT_N)
    )
    h = 1.0 + theta["b1"] * xp.log(r / R0_MLP_ATTN) + theta["b2"] * (1.0 / r - 1.0 / R0_MLP_ATTN)
    return _chinchilla_formula(features, theta, xp, size_key=size_key) * g * h


# ---- coefficients -----------------------------------------------------------------------
# Weakly informative priors: E near typical LM losses (nats/token), exponents in (0, 1.5),
# prefactors on the log scale with sd 3 (a factor of ~20 either way).
_E = Param("E", Prior("truncnormal", 2.0, 1.0, low=0.0, high=10.0), (0.0, 10.0), (0.5, 3.0))
_LOG_A = Param("log_A", Prior("normal", 7.0, 3.0), (-10.0, 40.0), (2.0, 14.0))
_ALPHA = Param(
    "alpha", Prior("truncnormal", 0.4, 0.25, low=0.02, high=1.5), (0.01, 2.0), (0.1, 0.9)
)
_LOG_B = Param("log_B", Prior("normal", 8.0, 3.0), (-10.0, 40.0), (2.0, 16.0))
_BETA = Param("beta", Prior("truncnormal", 0.35, 0.25, low=0.02, high=1.5), (0.01, 2.0), (0.1, 0.9))
# Aspect term: centred on the published morph fit (eps = 1.15e-3, gamma = 0.61), wide.
_EPS = Param(
    "eps",
    Prior("lognormal", math.log(1.15e-3), 1.5),
    (0.0, 1.0),
    (1e-4, 2e-2),
    identified_by="aspect",
    published=True,
)
_GAMMA = Param(
    "gamma",
    Prior("truncnormal", 0.6, 0.3, low=0.0, high=2.0),
    (0.0, 3.0),
    (0.2, 1.0),
    identified_by="aspect",
    published=True,
)
# Shape calibration of the conditional law (normalised at x0, r0; see module docstring).
# a's: between the two published fits, wide (d/sqrt(N) varies in every shared table).
_A1 = Param(
    "a1", Prior("normal", 0.08, 0.06), (-1.0, 1.0), (0.0, 0.15), identified_by="d_over_sqrt_n"
)
_A2 = Param(
    "a2", Prior("normal", 0.006, 0.005), (-0.2, 0.2), (0.0, 0.01), identified_by="d_over_sqrt_n"
)
# b's: r is barely varied in the shared tables, so these come from the published fits
# (0.016 / 0.0099 and 0.0165 / 0.012) with a spread covering both.
_B1 = Param(
    "b1",
    Prior("normal", 0.013, 0.004),
    (-0.5, 0.5),
    (0.005, 0.02),
    identified_by="r",
    published=True,
)
_B2 = Param(
    "b2",
    Prior("normal", 0.014, 0.004),
    (-0.5, 0.5),
    (0.005, 0.02),
    identified_by="r",
    published=True,
)
_CHIN = (_E, _LOG_A, _ALPHA, _LOG_B, _BETA)


def _stacked_formula(features, theta, xp, *, size_key: str = "N"):
    """``conditional`` times the aspect factor ``(1 + eps R^gamma)``: the form every family
    of :data:`STACK_FAMILIES` is a special case of (``eps = 0``; ``a1 = a2 = b1 = b2 = 0``)."""
    aspect = features["d_model"] / features["n_layers"]
    return _conditional_formula(features, theta, xp, size_key=size_key) * (
        1.0 + theta["eps"] * xp.exp(theta["gamma"] * xp.log(aspect))
    )


def _registry() -> dict[str, Law]:
    laws = [
        Law(
            "chinchilla",
            _CHIN,
            _chinchilla_formula,
            "E + A/N^alpha + B/D^beta, N = non-embedding parameters",
        ),
        Law(
            "chinchilla_total",
            _CHIN,
            _chinchilla_formula,
            "E + A/N^alpha + B/D^beta, N = total parameters",
            {"size_key": "N_total"},
        ),
        Law(
            "aspect",
            _CHIN + (_EPS, _GAMMA),
            _aspect_formula,
            "(E + A/N^alpha + B/D^beta)(1 + eps R^gamma), R = d_model/n_layers (2501.18107)",
        ),
        Law(
            "aspect_paper",
            (_E, _LOG_A, _LOG_B, _ALPHA, _EPS),
            _aspect_paper_formula,
            "(E + A/N^alpha + B/D^alpha)(1 + eps R^alpha), N = total params (2501.18107 Tab. 7)",
        ),
        Law(
            "conditional",
            _CHIN + (_A1, _A2, _B1, _B2),
            _conditional_formula,
            "L_opt(N,D)(a0 + a1 ln(d/sqrtN) + a2 sqrtN/d)(b0 + b1 ln r + b2/r) (2510.18245)",
        ),
        Law(
            STACKED,
            _CHIN + (_EPS, _GAMMA, _A1, _A2, _B1, _B2),
            _stacked_formula,
            "chinchilla, aspect and conditional fitted by NUTS each and mixed by stacking "
            "weights from size-group cross-validation (surrogate.stacking)",
        ),
    ]
    return {law.name: law for law in laws}


#: Every registered law by name (``stacked`` is fitted only as a mixture of its families).
LAWS: dict[str, Law] = _registry()


def get_law(name: str) -> Law:
    """The registered law ``name``; the error lists the known names."""
    try:
        return LAWS[name]
    except KeyError:
        raise LawError(f"unknown law {name!r}; known: {', '.join(LAWS)}") from None


# ---- features ---------------------------------------------------------------------------
def law_features(
    archs: Sequence[Arch], tokens: float | Sequence[float] | np.ndarray
) -> dict[str, np.ndarray]:
    """Features of ``n`` architectures trained on ``tokens`` tokens, as float64 arrays ``(n,)``.

    Args:
        archs: the shapes.
        tokens: training tokens, a scalar (same for all) or one per arch.

    Returns:
        ``N`` (non-embedding params), ``N_total`` (all params), ``D`` (tokens), ``d_model``,
        ``n_layers``, ``r`` (MLP/attention params per block), plus the derived
        ``d_over_sqrt_n`` and ``aspect`` for diagnostics (laws recompute them themselves).
    """
    n = len(archs)
    tokens_arr = (
        np.broadcast_to(np.asarray(tokens, dtype=np.float64), (n,)).copy()
        if np.ndim(tokens) == 0
        else np.asarray(tokens, dtype=np.float64)
    )
    if tokens_arr.shape != (n,):
        raise LawError(
            f"tokens must be a scalar or have one value per arch ({n}), "
            f"got shape {tokens_arr.shape}"
        )
    if not np.all(np.isfinite(tokens_arr) & (tokens_arr > 0)):
        raise LawError("tokens must be finite and positive")
    feats = {
        "N": np.fromiter((a.non_embedding_params for a in archs), np.float64, n),
        "N_total": np.fromiter((a.params for a in archs), np.float64, n),
        "D": tokens_arr,
        "d_model": np.fromiter((a.d_model for a in archs), np.float64, n),
        "n_layers": np.fromiter((a.n_layers for a in archs), np.float64, n),
        "r": np.fromiter((a.mlp_attn_ratio for a in archs), np.float64, n),
    }
    feats["d_over_sqrt_n"] = feats["d_model"] / np.sqrt(feats["N"])
    feats["aspect"] = feats["d_model"] / feats["n_layers"]
    return feats
