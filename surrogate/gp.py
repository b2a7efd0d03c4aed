"""The loss model of archopt: the NumPyro scaling-law posterior as the prior of a GP.

For a candidate ``x`` (a row of a finite table: the campaign's candidate set) the loss of a run
is modelled as::

    y(x) = m(x) + c + g(x) + eps,   m ~ law posterior (S draws m_s),  c ~ N(0, offset_var),
                                    g ~ GP(0, outputscale * Matern52(ARD)),  eps ~ N(0, noise_var)

``m`` is the noise-free law (:meth:`LawPosterior.law_draws`), ``c`` a constant offset between
the data the law was fitted on and the campaign's own runs (another dataset, tokenizer or loss
kind shifts every loss alike), ``g`` a smooth shape-dependent misfit of the law and ``eps`` the
run-to-run noise of a final loss. ``c`` is integrated out (a constant kernel), so one observed
run shifts every prediction, and with *zero* observations the model is the law posterior
widened by ``offset_var + outputscale``: every prediction carries uncertainty from the start.

:class:`LawPriorGP` carries the law posterior in one of two ways (``mode``):

* ``"gaussian"`` (default): mean ``mbar = mean_s m_s`` and covariance ``Phi Phi^T`` with
  ``Phi = (m_s - mbar) / sqrt(S)``, i.e. a Bayesian linear model on the draws' deviations
  (Rasmussen & Williams 2006, sec. 2.7), added to the residual kernel. Conditioning on runs also
  re-weights the law: draws the campaign's runs contradict lose weight, which an ensemble of
  fixed draws never does. It is a Gaussian approximation of the law posterior at the candidates
  (first two moments of 64 draws), and one Gaussian posterior keeps batch qLogNEHVI as cheap as
  for a plain GP (``benchmarks/propose_speed.py``).
* ``"ensemble"``: one member per draw with prior mean ``m_s`` and the residual kernel, i.e. a
  BoTorch ``SingleTaskGP`` with batch shape ``S`` fitted to the residuals ``y - m_s`` (zero
  mean, shared kernel, fixed noise) with ``m_s`` added back to its posterior mean (tested equal
  to it), an equal-weight mixture (``GaussianMixturePosterior``) whose MC acquisition pays
  ``S`` times the samples.

Members share the kernel, so conditioning on ``n`` runs costs one ``n x n`` Cholesky; the
cross-covariances with every table point are computed once per fit. Kernel hyper-parameters
stay at their prior values (sized from the law's residual scale) until enough runs exist, then
are fitted by MAP with BoTorch's ``fit_gpytorch_mll`` on the residual to the mean law.

Inputs are table indices; the GP features are those of :class:`optim.core.problem.Problem` (in
``[0, 1]``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from gpytorch.kernels import Kernel
from torch import Tensor

__all__ = [
    "ResidualHyper",
    "LawPriorGP",
    "HyperFitWarning",
    "mixture_quantiles",
    "amplitude_prior",
    "AMPLITUDE_LOG_SD",
]

DTYPE = torch.float64
#: Log-space sd of the misfit-variance prior (:func:`amplitude_prior`). It was a
#: ``Gamma(2, 2/outputscale)`` (mean at the law's residual scale, exponential tail): a law that
#: ranks shapes wrongly kept its misfit near 0.02 whatever the runs said.
AMPLITUDE_LOG_SD: float = 1.5


class HyperFitWarning(UserWarning):
    """The MAP fit of the kernel hyper-parameters failed numerically; the prior values are kept."""


def _numerical_fit_failures() -> tuple[type[BaseException], ...]:
    """What a numerically ill-posed hyper-parameter fit raises: BoTorch after all its retries,
    GPyTorch/linear_operator for a non-PSD or NaN covariance, torch for a failed Cholesky."""
    from botorch.exceptions.errors import ModelFittingError
    from linear_operator.utils.errors import NanError, NotPSDError

    return (ModelFittingError, NotPSDError, NanError, torch.linalg.LinAlgError)


@dataclass(frozen=True)
class ResidualHyper:
    """Kernel hyper-parameters of the residual GP (loss units; features in ``[0, 1]``).

    Attributes:
        outputscale: prior variance of the smooth law misfit ``g`` (loss^2).
        offset_var: prior variance of the constant offset ``c`` (loss^2).
        noise_var: variance of one run's final loss around its expectation (loss^2).
        lengthscale: Matern-5/2 length scales, one per feature (``d``), or one shared value.
    """

    outputscale: float = 0.02**2
    offset_var: float = 0.1**2
    noise_var: float = 0.01**2
    lengthscale: tuple[float, ...] = (0.5,)

    def __post_init__(self) -> None:
        for name in ("outputscale", "offset_var", "noise_var"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be positive, got {value}")
        if not self.lengthscale or any(not (v > 0) for v in self.lengthscale):
            raise ValueError("lengthscale must be positive")


def amplitude_prior(outputscale: float, log_sd: float | None = None):
    """Prior of the misfit variance ``outputscale`` (loss^2): log-normal with its mode at
    ``outputscale`` and ``log_sd`` (default :data:`AMPLITUDE_LOG_SD`) in log space.

    The mode (what a MAP fit returns without data) is the law's own residual scale; the
    median is ``exp(log_sd^2)`` times larger and a 100x larger variance (10x the amplitude)
    costs only ``(ln 100 - log_sd^2)^2 / (2 log_sd^2)`` nats of log prior, which a few runs the
    law mispredicts by several misfit sds outweigh.
    """
    from gpytorch.priors import LogNormalPrior

    s = AMPLITUDE_LOG_SD if log_sd is None else float(log_sd)
    return LogNormalPrior(math.log(outputscale) + s**2, s)


def _kernel(d: int, hyper: ResidualHyper):
    """``outputscale * Matern52(ARD) + offset_var`` as a GPyTorch kernel (float64)."""
    from gpytorch.kernels import ConstantKernel, MaternKernel, ScaleKernel
    from gpytorch.priors import GammaPrior

    # Length scales: a prior around the given values. The misfit amplitude: a log-normal whose
    # mode is the given value (the law's residual scale) but whose tail is heavy enough that a
    # handful of runs contradicting the law can raise it 10-100x (see AMPLITUDE_LOG_SD): a
    # wrong law must not be held in place by its own prior (that gives linear regret).
    ls = np.broadcast_to(np.asarray(hyper.lengthscale, dtype=np.float64), (d,)).copy()
    matern = MaternKernel(nu=2.5, ard_num_dims=d, lengthscale_prior=GammaPrior(3.0, 6.0))
    scaled = ScaleKernel(matern, outputscale_prior=amplitude_prior(hyper.outputscale))
    const = ConstantKernel()
    kernel = (scaled + const).to(DTYPE)
    matern.lengthscale = torch.as_tensor(ls, dtype=DTYPE).reshape(1, d)
    scaled.outputscale = torch.tensor(hyper.outputscale, dtype=DTYPE)
    const.constant = torch.tensor(hyper.offset_var, dtype=DTYPE)
    const.raw_constant.requires_grad_(False)  # the offset prior is a modelling choice, not fitted
    return kernel


class LawPriorGP:
    """Loss model over a finite table of points: scaling-law prior plus residual GP.

    Two ways to carry the law posterior (``mode``):

    * ``"gaussian"`` (default): the law draws enter as a Gaussian process prior with mean
      ``mbar = mean_s m_s`` and covariance ``Phi Phi^T``, ``Phi = (m_s - mbar) / sqrt(S)`` (the
      draws' empirical covariance; a Bayesian linear model on the draws' deviations, Rasmussen &
      Williams 2006, sec. 2.7). The full prior kernel is ``Phi Phi^T + offset_var +
      outputscale * Matern52``. Conditioning on runs updates the law part too: draws that
      disagree with the campaign's runs lose weight, which an ensemble of fixed draws never does.
      The posterior is one Gaussian, so batch acquisition costs what a plain GP costs.
    * ``"ensemble"``: one member per draw, prior mean ``m_s``, kernel ``offset_var +
      outputscale * Matern52`` (a batch-``S`` ``SingleTaskGP`` on the residuals ``y - m_s``,
      ``m_s`` added back); posteriors are equal-weight mixtures, and MC acquisition pays ``S``
      times the samples.

    Both use one Cholesky of ``n x n`` for all members (kernel hyper-parameters are shared).

    Args:
        features: ``n_all x d`` GP features of every point of the table.
        law_samples: ``S x n_all`` noise-free law values of the draws at every point.
        hyper: kernel hyper-parameters.
        mode: ``"gaussian"`` or ``"ensemble"``.
        members: in ensemble mode, which draws (rows of ``law_samples``) form the ensemble
            (default: all).
    """

    def __init__(
        self,
        features: Tensor,
        law_samples: Tensor,
        hyper: ResidualHyper | None = None,
        *,
        mode: str = "gaussian",
        members: np.ndarray | None = None,
    ) -> None:
        if mode not in ("gaussian", "ensemble"):
            raise ValueError(f"mode must be 'gaussian' or 'ensemble', got {mode!r}")
        self.features = torch.as_tensor(features, dtype=DTYPE)
        law = torch.as_tensor(law_samples, dtype=DTYPE)
        if law.dim() != 2 or law.shape[1] != self.features.shape[0]:
            raise ValueError(
                f"law_samples must be S x {self.features.shape[0]}, got {tuple(law.shape)}"
            )
        self.mode = mode
        self.hyper = hyper or ResidualHyper()
        self.kernel = _kernel(self.features.shape[1], self.hyper)
        self.phi: Tensor | None = None  # (n_all, S) in gaussian mode
        if mode == "gaussian":
            mbar = law.mean(0, keepdim=True)
            self.prior_mean = mbar  # (1, n_all)
            self.phi = ((law - mbar) / math.sqrt(law.shape[0])).T.contiguous()  # (n_all, S)
        else:
            rows = np.arange(law.shape[0]) if members is None else np.asarray(members)
            self.prior_mean = law[torch.as_tensor(rows, dtype=torch.long)]  # (S', n_all)
        self.train_idx = torch.zeros(0, dtype=torch.long)
        self._chol: Tensor | None = None
        self._alpha: Tensor | None = None  # (n, S')
        self.fitted_hyper = False

    @property
    def n_members(self) -> int:
        """Mixture components of the posterior (1 in gaussian mode)."""
        return self.prior_mean.shape[0]

    def _k(self, a: Tensor, b: Tensor | None = None) -> Tensor:
        """Prior covariance between table points ``a`` (``... x q``) and ``b`` (``... x p``)."""
        xa = self.features[a]
        K = (
            self.kernel(xa).to_dense()
            if b is None
            else self.kernel(xa, self.features[b]).to_dense()
        )
        if self.phi is not None:
            pa = self.phi[a]
            pb = pa if b is None else self.phi[b]
            K = K + pa @ pb.transpose(-1, -2)
        return K

    # ---- fitting -----------------------------------------------------------------------
    def fit(
        self,
        train_idx: np.ndarray | Tensor,
        y: np.ndarray | Tensor,
        *,
        fit_hyper: bool | None = None,
        min_points_for_fit: int = 5,
    ) -> "LawPriorGP":
        """Condition on observed losses.

        Args:
            train_idx: ``(n,)`` table indices of the observed runs (``n`` may be 0; repeats
                allowed).
            y: ``(n,)`` observed losses.
            fit_hyper: fit length scales / outputscale by MAP; default when
                ``n >= min_points_for_fit``.
        """
        idx = torch.as_tensor(np.asarray(train_idx), dtype=torch.long).reshape(-1)
        y = torch.as_tensor(np.asarray(y, dtype=np.float64), dtype=DTYPE).reshape(-1)
        if idx.shape != y.shape:
            raise ValueError(f"{len(idx)} indices but {len(y)} losses")
        n = len(idx)
        self.train_idx = idx
        self._train_y = y
        if fit_hyper is None:
            fit_hyper = n >= min_points_for_fit
        if fit_hyper and n >= 2:
            resid = y - self.prior_mean[:, idx].mean(0)
            self._fit_hyper(idx, resid)
        if n == 0:
            self._chol, self._alpha = None, None
            return self
        with torch.no_grad():
            K = self._k(idx) + self.hyper.noise_var * torch.eye(n, dtype=DTYPE)
            self._chol = torch.linalg.cholesky(K)
            resid = (y.unsqueeze(0) - self.prior_mean[:, idx]).T  # (n, S')
            self._alpha = torch.cholesky_solve(resid.contiguous(), self._chol)
            # Cross-covariances with every table point, once: posteriors become look-ups plus
            # the q x q prior block (the acquisition calls posterior thousands of times).
            all_idx = torch.arange(self.features.shape[0])
            K_all = torch.cat(
                [self._k(all_idx[s : s + 4096], idx) for s in range(0, len(all_idx), 4096)]
            )  # (n_all, n)
            self._post_mean_all = self.prior_mean + (K_all @ self._alpha).T  # (S', n_all)
            self._v_all = torch.linalg.solve_triangular(self._chol, K_all.T, upper=False)
        return self

    @torch.no_grad()
    def loo(self) -> tuple[np.ndarray, np.ndarray]:
        """Leave-one-out predictive of every observed run given the others, in closed form
        (Rasmussen & Williams 2006, eq. 5.12; hyper-parameters as fitted on all runs).

        Returns:
            ``mean``: ``S' x n`` (one row per mixture member) and ``var``: ``(n,)`` predictive
            variance of the held-out run's loss (run noise included).
        """
        if self._chol is None or self._alpha is None:
            return np.zeros((self.n_members, 0)), np.zeros(0)
        k_inv = torch.cholesky_inverse(self._chol)  # (n, n)
        diag = torch.diagonal(k_inv)
        y = self._train_y  # (n,)
        mean = y.unsqueeze(0) - (self._alpha / diag.unsqueeze(-1)).T  # (S', n)
        return mean.numpy(), (1.0 / diag).numpy()

    @torch.no_grad()
    def conditional_means(self, given: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Posterior mean at some observed runs given only others (hyper-parameters as fitted
        on all runs): the prequential check of :mod:`optim.core.weighting`.

        Args:
            given: ``(g,)`` positions in the training runs conditioned on (may be empty).
            target: ``(t,)`` positions in the training runs predicted.

        Returns:
            ``S' x t`` means of the noise-free loss (one row per mixture member).
        """
        gpos = torch.as_tensor(np.asarray(given), dtype=torch.long).reshape(-1)
        g = self.train_idx[gpos]
        t = self.train_idx[torch.as_tensor(np.asarray(target), dtype=torch.long).reshape(-1)]
        mean_t = self.prior_mean[:, t]  # (S', t)
        if len(g) == 0:
            return mean_t.numpy()
        y_g = self._train_y[gpos]
        K = self._k(g) + self.hyper.noise_var * torch.eye(len(g), dtype=DTYPE)
        resid = (y_g.unsqueeze(0) - self.prior_mean[:, g]).T  # (g, S')
        sol = torch.linalg.solve(K, resid)  # (g, S')
        return (mean_t + (self._k(t, g) @ sol).T).numpy()

    def _fit_hyper(self, idx: Tensor, y: Tensor) -> None:
        """MAP length scales and outputscale on the residual to the mean law (BoTorch fitter).

        In gaussian mode the marginal likelihood includes the law draws' covariance
        ``Phi Phi^T`` (a fixed kernel over table rows): a run that one of the law's own draws
        explains is not misfit, so the misfit amplitude grows only for what the law cannot
        explain.
        """
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from gpytorch.means import ZeroMean
        from gpytorch.mlls import ExactMarginalLogLikelihood

        d = self.features.shape[1]
        # Inputs: the features and, in the last column, the table row (for Phi).
        X = torch.cat([self.features[idx], idx.to(DTYPE).unsqueeze(-1)], dim=-1)
        covar = _SlicedKernel(self.kernel, d)
        if self.phi is not None:
            covar = covar + _RowLowRankKernel(self.phi)
        Yvar = torch.full((X.shape[0], 1), self.hyper.noise_var, dtype=DTYPE)
        model = SingleTaskGP(
            X,
            y.unsqueeze(-1),
            Yvar,
            covar_module=covar,
            mean_module=ZeroMean(),
            outcome_transform=None,
        )
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        state = {k: v.clone() for k, v in self.kernel.state_dict().items()}
        try:
            with warnings.catch_warnings():
                # BoTorch's retries warn on every failed attempt; the outcome is reported below.
                warnings.simplefilter("ignore")
                fit_gpytorch_mll(mll)
            self.fitted_hyper = True
        except _numerical_fit_failures() as exc:  # anything else is a bug and propagates
            self.kernel.load_state_dict(state)
            warnings.warn(
                f"GP hyper-parameter fit on {X.shape[0]} runs failed "
                f"({type(exc).__name__.lstrip('_')}: {' '.join(str(exc).split())[:200]}); "
                f"keeping the {'previously fitted' if self.fitted_hyper else 'prior'} "
                f"hyper-parameters",
                HyperFitWarning,
                stacklevel=3,
            )
        self.kernel.eval()

    # ---- prediction --------------------------------------------------------------------
    @torch.no_grad()
    def posterior(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        """Joint posterior of the noise-free loss at table points.

        Args:
            idx: ``batch_shape x q`` table indices (long).

        Returns:
            ``mean``: ``batch_shape x S' x q`` (one row per mixture member) and
            ``covariance``: ``batch_shape x q x q`` (shared by all members).
        """
        idx = torch.as_tensor(idx, dtype=torch.long)
        prior_cov = self._k(idx)
        if self._chol is None:
            prior_mean = self.prior_mean[:, idx].movedim(0, -2)  # (..., S', q)
            return prior_mean, prior_cov
        mean = self._post_mean_all[:, idx].movedim(0, -2)  # (..., S', q)
        v = self._v_all[:, idx].movedim(0, -2)  # (..., n, q)
        return mean, prior_cov - v.transpose(-1, -2) @ v

    def marginals(
        self, idx: np.ndarray | Tensor | None = None, chunk: int = 4096
    ) -> tuple[np.ndarray, np.ndarray]:
        """Member means ``S' x m`` and shared variances ``(m,)`` of the noise-free loss."""
        if idx is None:
            idx = torch.arange(self.features.shape[0])
        idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        means, variances = [], []
        for start in range(0, len(idx), chunk):
            mean, cov = self.posterior(idx[start : start + chunk].unsqueeze(-1))  # (m, S', 1)
            means.append(mean[..., 0].T)
            variances.append(cov[..., 0, 0])
        if not means:
            return np.zeros((self.n_members, 0)), np.zeros(0)
        return (torch.cat(means, -1).numpy(), torch.cat(variances).clamp_min(0.0).numpy())

    def predictive(
        self, idx: np.ndarray | Tensor | None = None, probs: tuple[float, ...] = (0.05, 0.95)
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predictive loss of a new run (noise included): ``mean (m,)`` and quantiles
        ``len(probs) x m`` (mixture quantiles in ensemble mode)."""
        members, var = self.marginals(idx)
        sd = np.sqrt(var + self.hyper.noise_var)
        return members.mean(0), mixture_quantiles(members, sd, probs)


class _SlicedKernel(Kernel):
    """``base`` on the first ``d`` input columns (the others carry table rows)."""

    def __init__(self, base, d: int) -> None:
        super().__init__()
        self.base = base
        self.d = int(d)

    def forward(self, x1: Tensor, x2: Tensor, diag: bool = False, **params):
        out = self.base(x1[..., : self.d], x2[..., : self.d], diag=diag, **params)
        return out if diag else out.to_dense()


class _RowLowRankKernel(Kernel):
    """``phi[i] . phi[j]`` for the table rows ``i, j`` in the last input column (no
    parameters): the law draws' covariance inside a GPyTorch model."""

    def __init__(self, phi: Tensor) -> None:
        super().__init__()
        self.register_buffer("phi", phi)

    def forward(self, x1: Tensor, x2: Tensor, diag: bool = False, **params):
        a, b = self.phi[x1[..., -1].round().long()], self.phi[x2[..., -1].round().long()]
        return (a * b).sum(-1) if diag else a @ b.transpose(-1, -2)


def mixture_quantiles(
    means: np.ndarray,
    sd: np.ndarray,
    probs: tuple[float, ...],
    iters: int = 60,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Quantiles of a Gaussian mixture, per point, by bisection on the CDF.

    Args:
        means: ``S x n`` component means.
        sd: ``n`` or ``S x n`` component standard deviations.
        probs: the probabilities wanted.
        weights: ``(S,)`` component weights summing to 1 (default: equal).

    Returns:
        ``len(probs) x n``.
    """
    from scipy.special import ndtr

    means = np.asarray(means, dtype=np.float64)
    sd = np.broadcast_to(np.maximum(np.asarray(sd, dtype=np.float64), 1e-12), means.shape)
    w = (
        np.full(means.shape[0], 1.0 / means.shape[0])
        if weights is None
        else np.asarray(weights, dtype=np.float64).reshape(-1)
    )[:, None]  # (S, 1)
    out = np.empty((len(probs), means.shape[1]))
    lo0 = (means - 8 * sd).min(0)
    hi0 = (means + 8 * sd).max(0)
    for i, p in enumerate(probs):
        lo, hi = lo0.copy(), hi0.copy()
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            below = (w * ndtr((mid - means) / sd)).sum(0) < p
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        out[i] = 0.5 * (lo + hi)
    return out
