"""The prior-free loss model: what Ax's default BoTorch model fits without archopt's prior.

``fit_plain_gp`` is the one home of that recipe (a ``SingleTaskGP``: constant mean, RBF kernel
with BoTorch's default priors, standardized Y, MLL-fitted hyper-parameters) on the candidates'
GP features. :class:`PlainGP` wraps a fitted one over a finite table of candidates the way
:class:`surrogate.gp.LawPriorGP` is wrapped: cross-covariances with every candidate are computed
once, so an acquisition's thousands of posterior calls are look-ups, and the leave-one-out
predictive of every run is closed-form. It is the second member of archopt's weighted model
(:mod:`optim.core.weighting`); :class:`~optim.core.strategies.PlainQNEHVIStrategy` acquires on the
``SingleTaskGP`` itself, as Ax does.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor

__all__ = ["fit_plain_gp", "PlainGP"]

DTYPE = torch.float64


def fit_plain_gp(X: Tensor, idx: np.ndarray, loss: np.ndarray):
    """``SingleTaskGP`` on ``X[idx]`` (``n x d``) -> ``loss`` (``(n,)``), standardized and
    MLL-fitted (BoTorch's warnings about retries are silenced; a fit that fails raises)."""
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms.outcome import Standardize
    from gpytorch.mlls import ExactMarginalLogLikelihood

    y = torch.tensor(np.asarray(loss, dtype=np.float64), dtype=DTYPE).unsqueeze(-1)  # (n, 1)
    model = SingleTaskGP(
        X[torch.as_tensor(idx, dtype=torch.long)], y, outcome_transform=Standardize(m=1)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    model.eval()
    return model


class PlainGP:
    """A fitted ``SingleTaskGP`` over a finite table: posterior at table indices and LOO.

    Args:
        features: ``n_all x d`` GP features of every table point.
        train_idx: ``(n,)`` table indices of the observed runs (``n >= 2``).
        y: ``(n,)`` observed losses.
    """

    n_members = 1

    def __init__(self, features: Tensor, train_idx: np.ndarray, y: np.ndarray) -> None:
        self.features = torch.as_tensor(features, dtype=DTYPE)
        self.train_idx = torch.as_tensor(np.asarray(train_idx), dtype=torch.long).reshape(-1)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if len(y) < 2 or len(y) != len(self.train_idx):
            raise ValueError(f"PlainGP needs >= 2 runs with one loss each, got {len(y)}")
        self.model = fit_plain_gp(self.features, self.train_idx.numpy(), y)
        with torch.no_grad():
            self._cache()

    def _cache(self) -> None:
        m = self.model
        self._shift = float(m.outcome_transform.means.reshape(-1)[0])
        self._scale = float(m.outcome_transform.stdvs.reshape(-1)[0])
        x_train = m.train_inputs[0]  # (n, d)
        y_std = m.train_targets  # (n,), standardized
        self._noise_std = float(m.likelihood.noise.reshape(-1)[0])  # standardized units
        self._const = float(m.mean_module.constant.reshape(-1)[0])
        n = x_train.shape[0]
        K = m.covar_module(x_train).to_dense() + self._noise_std * torch.eye(n, dtype=DTYPE)
        self._chol = torch.linalg.cholesky(K)
        resid = (y_std - self._const).unsqueeze(-1)
        self._alpha = torch.cholesky_solve(resid, self._chol)[:, 0]  # (n,)
        self._y_std = y_std
        K_all = torch.cat(
            [
                m.covar_module(self.features[s : s + 4096], x_train).to_dense()
                for s in range(0, self.features.shape[0], 4096)
            ]
        )  # (n_all, n)
        self._mean_all = self._const + K_all @ self._alpha  # (n_all,), standardized
        self._v_all = torch.linalg.solve_triangular(self._chol, K_all.T, upper=False)  # (n, n_all)

    @property
    def noise_var(self) -> float:
        """Fitted variance of one run's loss around its expectation (loss^2)."""
        return self._noise_std * self._scale**2

    @torch.no_grad()
    def posterior(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        """Joint posterior of the noise-free loss at table points.

        Args:
            idx: ``batch_shape x q`` table indices (long).

        Returns:
            ``mean``: ``batch_shape x 1 x q`` and ``covariance``: ``batch_shape x q x q``.
        """
        idx = torch.as_tensor(idx, dtype=torch.long)
        prior = self.model.covar_module(self.features[idx]).to_dense()  # (..., q, q)
        v = self._v_all[:, idx].movedim(0, -2)  # (..., n, q)
        cov = (prior - v.transpose(-1, -2) @ v) * self._scale**2
        mean = (self._mean_all[idx] * self._scale + self._shift).unsqueeze(-2)  # (..., 1, q)
        return mean, cov

    @torch.no_grad()
    def marginals(self, idx: np.ndarray | Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Means ``1 x m`` and variances ``(m,)`` of the noise-free loss at table points."""
        if idx is None:
            idx = torch.arange(self.features.shape[0])
        idx = torch.as_tensor(np.asarray(idx), dtype=torch.long).reshape(-1)
        prior = self.model.covar_module(self.features[idx], diag=True)  # (m,)
        v = self._v_all[:, idx]
        var = (prior - (v**2).sum(0)).clamp_min(0.0) * self._scale**2
        mean = self._mean_all[idx] * self._scale + self._shift
        return mean.unsqueeze(0).numpy(), var.numpy()

    @torch.no_grad()
    def conditional_means(self, given: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Posterior mean at the runs ``target`` given only the runs ``given`` (positions in
        the training runs; hyper-parameters and standardization as fitted on all runs):
        ``1 x t`` (see :meth:`surrogate.gp.LawPriorGP.conditional_means`)."""
        x = self.model.train_inputs[0]
        gi = torch.as_tensor(np.asarray(given), dtype=torch.long).reshape(-1)
        ti = torch.as_tensor(np.asarray(target), dtype=torch.long).reshape(-1)
        mean = torch.full((len(ti),), self._const, dtype=DTYPE)
        if len(gi):
            K = self.model.covar_module(x[gi]).to_dense() + self._noise_std * torch.eye(
                len(gi), dtype=DTYPE
            )
            Kx = self.model.covar_module(x[ti], x[gi]).to_dense()
            mean = mean + Kx @ torch.linalg.solve(K, self._y_std[gi] - self._const)
        return (mean * self._scale + self._shift).unsqueeze(0).numpy()

    @torch.no_grad()
    def loo(self) -> tuple[np.ndarray, np.ndarray]:
        """Closed-form leave-one-out predictive of every run (hyper-parameters fitted on all):
        means ``1 x n`` and variances ``(n,)`` of the held-out run's loss (noise included)."""
        k_inv = torch.cholesky_inverse(self._chol)
        diag = torch.diagonal(k_inv)
        mean_std = self._y_std - self._alpha / diag
        return (
            (mean_std * self._scale + self._shift).unsqueeze(0).numpy(),
            (self._scale**2 / diag).numpy(),
        )
