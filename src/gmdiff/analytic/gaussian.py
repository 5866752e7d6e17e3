"""Exact scores and optimal denoisers of Gaussian, Gaussian-mixture and delta-mixture
(training-set) distributions convolved with N(0, sigma^2 I).

All classes share one interface, batched over the rows of ``x`` (shape (B, D)), with
``sigma`` a float or a tensor broadcastable to (B,):

* ``log_prob(x, sigma)``: log p(x; sigma), the density of the data convolved with noise;
* ``score(x, sigma)``: grad_x log p(x; sigma), written from the paper's score formula;
* ``denoiser(x, sigma)``: E[x_0 | x], written from the paper's denoiser formula.

Score and denoiser are implemented from their own equations, not from each other, so that
the identities score = autograd(log_prob) and D = x + sigma^2 * score (Gaussian score
paper, Eq. 4) are checks that can fail. Equation numbers are those of the Gaussian score
paper (Wang & Vastola): Eqs. 5-13 in the main text, 29-39 in its Appendix A.2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


def _sigma_col(sigma: Tensor | float, x: Tensor) -> Tensor:
    """sigma as a (B, 1) column in x's dtype, from a float, a 0-d or a (B,) tensor."""
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if s.ndim == 0:
        s = s.expand(x.shape[0])
    if s.shape != (x.shape[0],):
        raise ValueError(
            f"sigma must be a scalar or have shape ({x.shape[0]},), got {tuple(s.shape)}"
        )
    if torch.any(s <= 0):
        raise ValueError("sigma must be > 0 (the noised density is singular at sigma = 0)")
    return s[:, None]


@dataclass
class GaussianMixture:
    """Mixture of K Gaussians N(mu_k, U_k diag(lam_k) U_k^T), each stored in low-rank
    eigen-form: ``means`` (K, D), ``U`` (K, D, r) with orthonormal columns, ``lam`` (K, r)
    >= 0 (zero-padded when ranks differ), ``log_weights`` (K,).

    Score and denoiser: Gaussian score paper Eq. 7 with the weights of Eq. 8; each
    component's inverse covariance is applied through the Woodbury form of Eq. 12.
    """

    means: Tensor
    U: Tensor
    lam: Tensor
    log_weights: Tensor

    def __post_init__(self) -> None:
        K, D = self.means.shape
        if self.U.shape[:2] != (K, D) or self.lam.shape != (K, self.U.shape[2]):
            raise ValueError(
                f"inconsistent shapes: means {tuple(self.means.shape)}, U {tuple(self.U.shape)}, "
                f"lam {tuple(self.lam.shape)}; expected U (K, D, r) and lam (K, r)"
            )
        if torch.any(self.lam < 0):
            raise ValueError("covariance eigenvalues lam must be >= 0")
        self.log_weights = torch.log_softmax(self.log_weights, dim=0)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    # -- construction ----------------------------------------------------------------
    @classmethod
    def from_covariances(
        cls, means: Tensor, covs: Tensor, weights: Tensor | None = None, rank: int | None = None
    ) -> GaussianMixture:
        """From full covariances (K, D, D), keeping the top ``rank`` eigenpairs of each."""
        lam, U = torch.linalg.eigh(covs)  # ascending
        lam, U = lam.flip(-1).clamp(min=0), U.flip(-1)
        if rank is not None:
            lam, U = lam[:, :rank], U[:, :, :rank]
        K = means.shape[0]
        w = torch.full((K,), 1.0 / K, dtype=means.dtype) if weights is None else weights
        return cls(means, U, lam, torch.log(w))

    @classmethod
    def fit(
        cls, x: Tensor, labels: Tensor, rank: int | None = None, shrink: float = 0.0
    ) -> GaussianMixture:
        """One component per label value: its empirical weight, mean and covariance
        (top-``rank`` eigenpairs). ``shrink`` adds shrink * I to each covariance."""
        ks = torch.unique(labels)
        means, covs, counts = [], [], []
        for k in ks:
            xk = x[labels == k]
            means.append(xk.mean(0))
            c = torch.cov(xk.T) if xk.shape[0] > 1 else torch.zeros(x.shape[1], x.shape[1])
            covs.append(c.to(x.dtype) + shrink * torch.eye(x.shape[1], dtype=x.dtype))
            counts.append(xk.shape[0])
        w = torch.tensor(counts, dtype=x.dtype)
        return cls.from_covariances(torch.stack(means), torch.stack(covs), w / w.sum(), rank)

    # -- per-component pieces ----------------------------------------------------------
    def _centered(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """z = x - mu_k (B, K, D) and its projections U_k^T z (B, K, r)."""
        z = x[:, None, :] - self.means[None]
        return z, torch.einsum("bkd,kdr->bkr", z, self.U)

    def component_log_probs(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        """log pi_k + log N(x; mu_k, Sigma_k + sigma^2 I), shape (B, K)."""
        s2 = _sigma_col(sigma, x)[:, :, None] ** 2  # (B, 1, 1)
        z, p = self._centered(x)
        lam = self.lam[None]  # (1, K, r)
        # Woodbury (Eq. 12): z^T (s2 I + U L U^T)^{-1} z = (|z|^2 - sum_k p_k^2 lam/(lam+s2)) / s2
        quad = ((z**2).sum(-1) - (p**2 * lam / (lam + s2)).sum(-1)) / s2[..., 0]
        r = self.lam.shape[1]
        logdet = torch.log(lam + s2).sum(-1) + (self.dim - r) * torch.log(s2[..., 0])
        return self.log_weights[None] - 0.5 * (quad + logdet + self.dim * math.log(2 * math.pi))

    def responsibilities(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        """w_k(x, sigma), Eq. 8: softmax over components, shape (B, K)."""
        return torch.softmax(self.component_log_probs(x, sigma), dim=1)

    # -- the interface -------------------------------------------------------------------
    def log_prob(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        return torch.logsumexp(self.component_log_probs(x, sigma), dim=1)

    def score(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        """Eq. 7 (left) with each mode's score from Eq. 12:
        s_k = (1/sigma^2) (I - U_k Lt_k U_k^T)(mu_k - x), Lt = diag(lam/(lam + sigma^2))."""
        s2 = _sigma_col(sigma, x)[:, :, None] ** 2
        w = self.responsibilities(x, sigma)
        z, p = self._centered(x)
        shrink = torch.einsum("kdr,bkr->bkd", self.U, p * self.lam / (self.lam + s2))
        s_k = -(z - shrink) / s2
        return (w[..., None] * s_k).sum(1)

    def denoiser(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        """Eq. 7 (right) with each mode's denoiser from Eq. 13:
        D_k = mu_k + sum_j lam_j/(lam_j + sigma^2) (u_j . (x - mu_k)) u_j."""
        s2 = _sigma_col(sigma, x)[:, :, None] ** 2
        w = self.responsibilities(x, sigma)
        _, p = self._centered(x)
        d_k = self.means[None] + torch.einsum(
            "kdr,bkr->bkd", self.U, p * self.lam / (self.lam + s2)
        )
        return (w[..., None] * d_k).sum(1)

    def moments(self) -> tuple[Tensor, Tensor]:
        """Exact mean (D,) and covariance (D, D) of the mixture:
        mu = sum_k pi_k mu_k, Sigma = sum_k pi_k (Sigma_k + mu_k mu_k^T) - mu mu^T."""
        w = self.log_weights.exp()
        mu = w @ self.means
        covs = torch.einsum("kdr,kr,ker->kde", self.U, self.lam, self.U)
        second = torch.einsum("k,kde->de", w, covs) + torch.einsum(
            "k,kd,ke->de", w, self.means, self.means
        )
        return mu, second - torch.outer(mu, mu)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n exact samples of the (noise-free) mixture."""
        k = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=generator)
        r = self.lam.shape[1]
        g = torch.randn(n, r, dtype=self.means.dtype, generator=generator)
        return self.means[k] + torch.einsum("ndr,nr->nd", self.U[k], g * self.lam[k].sqrt())


class Gaussian(GaussianMixture):
    """A single Gaussian N(mu, U diag(lam) U^T) of rank r <= D (Eqs. 5, 6, 12, 13)."""

    def __init__(self, mean: Tensor, U: Tensor, lam: Tensor) -> None:
        super().__init__(mean[None], U[None], lam[None], torch.zeros(1, dtype=mean.dtype))

    @property
    def mean(self) -> Tensor:
        return self.means[0]

    @property
    def basis(self) -> Tensor:
        """U, the (D, r) principal axes."""
        return self.U[0]

    @property
    def eigenvalues(self) -> Tensor:
        """lam, the (r,) variances along the principal axes."""
        return self.lam[0]

    @classmethod
    def from_cov(cls, mean: Tensor, cov: Tensor, rank: int | None = None) -> Gaussian:
        """From a full covariance, keeping its top ``rank`` eigenpairs (all by default)."""
        g = GaussianMixture.from_covariances(mean[None], cov[None], rank=rank)
        return cls(g.means[0], g.U[0], g.lam[0])

    @classmethod
    def from_data(cls, x: Tensor, rank: int | None = None) -> Gaussian:
        """Gaussian with the moments of the point cloud x (rows): mean and covariance
        normalised by N, as in the paper's Eqs. 147-148."""
        return cls.from_cov(x.mean(0), torch.cov(x.T, correction=0).to(x.dtype), rank)

    @classmethod
    def isotropic(cls, mean: Tensor) -> Gaussian:
        """The rank-0 model: all mass at the data mean, score (mu - x)/sigma^2 (Eq. 29)."""
        D = mean.shape[0]
        return cls(mean, torch.zeros(D, 0, dtype=mean.dtype), torch.zeros(0, dtype=mean.dtype))


@dataclass
class DeltaMixture:
    """The training set itself, (1/N) sum_i delta(x - y_i), noised: Eqs. 9-11 / 36-39.

    Weights w_i = softmax_i(-|x - y_i|^2 / (2 sigma^2)) (Eq. 39; Eq. 11 of the main text
    prints a spurious extra exp). Computed through pairwise distances, in chunks of
    ``chunk`` query rows, so a few thousand training points in D = 784 fit in memory.
    """

    points: Tensor
    chunk: int = 512

    def _logits(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        s2 = _sigma_col(sigma, x) ** 2
        d2 = (x**2).sum(1, keepdim=True) - 2 * x @ self.points.T + (self.points**2).sum(1)[None]
        return -d2.clamp(min=0) / (2 * s2)

    def _chunked(self, fn, x: Tensor, sigma: Tensor | float) -> Tensor:
        s = torch.as_tensor(sigma, dtype=x.dtype).expand(x.shape[0])
        return torch.cat(
            [
                fn(x[i : i + self.chunk], s[i : i + self.chunk])
                for i in range(0, x.shape[0], self.chunk)
            ]
        )

    def log_prob(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        def f(xc, sc):
            s2 = _sigma_col(sc, xc)[:, 0] ** 2
            N, D = self.points.shape
            return (
                torch.logsumexp(self._logits(xc, sc), 1)
                - math.log(N)
                - 0.5 * D * torch.log(2 * math.pi * s2)
            )

        return self._chunked(f, x, sigma)

    def denoiser(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        """D(x, sigma) = sum_i w_i y_i (Eq. 10, right)."""
        return self._chunked(
            lambda xc, sc: torch.softmax(self._logits(xc, sc), 1) @ self.points, x, sigma
        )

    def score(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        """s(x, sigma) = (1/sigma^2) sum_i w_i (y_i - x) (Eq. 10, left / Eq. 37)."""

        def f(xc, sc):
            w = torch.softmax(self._logits(xc, sc), 1)
            return (w @ self.points - xc) / _sigma_col(sc, xc) ** 2

        return self._chunked(f, x, sigma)
