"""Noise processes x_t = alpha(t) x_0 + sigma(t) eps and the conversions between
the quantities a network can predict.

Every process here is described by two functions of time, ``alpha(t)`` (signal scale)
and ``sigma(t)`` (noise scale); EDM's "sigma(t) = t, alpha = 1" is one of them, the VP
processes have alpha^2 + sigma^2 = 1 and the VE process has alpha = 1 (Karras et al.
2022, Sec. 2, Table 1). The conversions between the noise prediction eps, the clean
estimate x_0 (= the denoiser output D), and the score are written once, below, with the
optional VP scaling alpha. For alpha = 1 they reduce to the identity
``D(x, sigma) = x + sigma^2 * score(x, sigma)`` (Gaussian score paper, Eq. 4).
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

TensorLike = Tensor | float

# --------------------------------------------------------------------------------------
# Conversions (the only place these identities are written)
# --------------------------------------------------------------------------------------


def per_sample(v: Tensor, x: Tensor) -> Tensor:
    """A per-sample (B,) tensor reshaped to (B, 1, ..., 1) to broadcast against x."""
    return v.reshape(-1, *([1] * (x.ndim - 1)))


def denoiser_to_score(d: Tensor, x: Tensor, sigma: TensorLike, alpha: TensorLike = 1.0) -> Tensor:
    """score = (alpha * D - x) / sigma^2 for x = alpha x0 + sigma eps (Gaussian score, Eq. 4)."""
    return (alpha * d - x) / sigma**2


def score_to_denoiser(s: Tensor, x: Tensor, sigma: TensorLike, alpha: TensorLike = 1.0) -> Tensor:
    """D = (x + sigma^2 * score) / alpha (Tweedie's formula)."""
    return (x + sigma**2 * s) / alpha


def eps_to_denoiser(eps: Tensor, x: Tensor, sigma: TensorLike, alpha: TensorLike = 1.0) -> Tensor:
    """x0 = (x - sigma eps) / alpha (DDPM, Ho et al. 2020, Eq. 4 rearranged)."""
    return (x - sigma * eps) / alpha


def denoiser_to_eps(d: Tensor, x: Tensor, sigma: TensorLike, alpha: TensorLike = 1.0) -> Tensor:
    """eps = (x - alpha x0) / sigma."""
    return (x - alpha * d) / sigma


def eps_to_score(eps: Tensor, sigma: TensorLike) -> Tensor:
    """score = -eps / sigma."""
    return -eps / sigma


def score_to_eps(s: Tensor, sigma: TensorLike) -> Tensor:
    """eps = -sigma * score."""
    return -sigma * s


def _as_tensor(t: TensorLike, dtype: torch.dtype = torch.float64) -> Tensor:
    return t if isinstance(t, Tensor) else torch.tensor(t, dtype=dtype)


_COMPARE = {"<": operator.lt, "<=": operator.le}


def _check(owner: str, rule: str, values: Mapping[str, Any]) -> None:
    """Raise a one-sentence ValueError naming the values unless ``rule`` holds.

    ``rule`` is a space-separated chain of numbers and names from ``values`` joined by
    ``<`` or ``<=``, e.g. ``"0 < sigma_min <= sigma_max < inf"``; the named values must be
    real numbers (a bool or a string is refused), and NaN fails every comparison.
    """
    tokens = rule.split()
    terms, ops = tokens[::2], tokens[1::2]
    named = {t: values[t] for t in terms if t in values}
    numeric = all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in named.values())
    x = [named[t] if t in named else float(t) for t in terms]
    if not (numeric and all(_COMPARE[op](a, b) for op, a, b in zip(ops, x, x[1:]))):
        got = ", ".join(f"{k}={v!r}" for k, v in named.items())
        need = rule if numeric else f"numbers (not bools or strings) with {rule}"
        raise ValueError(f"{owner} got {got}; need {need}.")


# --------------------------------------------------------------------------------------
# Continuous-time processes
# --------------------------------------------------------------------------------------


class Prior:
    """The prior x_T ~ N(0, prior_std^2 I) of a noise process, drawn and evaluated in one
    place (score_sde's ``SDE.prior_sampling`` / ``prior_logp``); ``prior_std`` comes from
    the process."""

    prior_std: float

    def prior_sample(
        self,
        shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """x_T ~ N(0, prior_std^2 I) of ``shape`` (the first axis: the batch)."""
        return self.prior_std * torch.randn(shape, generator=generator, device=device, dtype=dtype)

    def prior_logp(self, x: Tensor) -> Tensor:
        """log N(x; 0, prior_std^2 I) per example (a batch over the first axis), in nats."""
        s, d = self.prior_std, x[0].numel()
        flat = x.reshape(x.shape[0], -1)
        return -0.5 * (flat**2).sum(1) / s**2 - d * (math.log(s) + 0.5 * math.log(2 * math.pi))


class Schedule(Prior):
    """A noise process given by alpha(t) and sigma(t) on t in [t_min, t_max].

    Subclasses implement ``alpha``, ``sigma`` and their time derivatives; everything else
    (the EDM-equivalent noise level sigma/alpha, the PF-ODE drift) is derived here.
    """

    t_min: float = 0.0
    t_max: float = 1.0

    def alpha(self, t: TensorLike) -> Tensor:
        raise NotImplementedError

    def sigma(self, t: TensorLike) -> Tensor:
        raise NotImplementedError

    def dalpha(self, t: TensorLike) -> Tensor:
        raise NotImplementedError

    def dsigma(self, t: TensorLike) -> Tensor:
        raise NotImplementedError

    def sigma_edm(self, t: TensorLike) -> Tensor:
        """Noise level of the equivalent unscaled (EDM) process, sigma(t) / alpha(t)."""
        return self.sigma(t) / self.alpha(t)

    @property
    def prior_std(self) -> float:
        """The process's prior x_T ~ N(0, prior_std^2 I), where samplers start (score_sde's
        ``SDE.prior_sampling``): sigma(t_max) for an unscaled process (EDM, VE)."""
        return float(self.sigma(self.t_max))

    def pf_ode_drift(self, x: Tensor, t: TensorLike, score: Tensor) -> Tensor:
        """dx/dt of the probability-flow ODE for x_t = alpha x_0 + sigma eps.

        dx/dt = (alpha'/alpha) x - sigma^2 (sigma'/sigma - alpha'/alpha) * score
        (Karras et al. 2022, Eq. 4 with s = alpha, written with the score of p_t).
        """
        a, s = self.alpha(t), self.sigma(t)
        da, ds = self.dalpha(t), self.dsigma(t)
        return (da / a) * x - s**2 * (ds / s - da / a) * score


@dataclass(frozen=True)
class EDM(Schedule):
    """EDM's process, sigma(t) = t, alpha = 1 (Karras et al. 2022, Table 1)."""

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0

    def __post_init__(self) -> None:
        _check("EDM", "0 < sigma_min <= sigma_max < inf", vars(self))
        _check("EDM", "0 < rho < inf", vars(self))

    @property
    def t_min(self) -> float:  # type: ignore[override]
        return self.sigma_min

    @property
    def t_max(self) -> float:  # type: ignore[override]
        return self.sigma_max

    def alpha(self, t: TensorLike) -> Tensor:
        return torch.ones_like(_as_tensor(t))

    def sigma(self, t: TensorLike) -> Tensor:
        return _as_tensor(t) * 1.0

    def dalpha(self, t: TensorLike) -> Tensor:
        return torch.zeros_like(_as_tensor(t))

    def dsigma(self, t: TensorLike) -> Tensor:
        return torch.ones_like(_as_tensor(t))

    def sigma_steps(self, n: int, dtype: torch.dtype = torch.float64) -> Tensor:
        """The n rho-spaced noise levels sigma_0 = sigma_max > ... > sigma_{n-1} = sigma_min,
        followed by a final 0 (Karras et al. 2022, Eq. 5); length n + 1."""
        if n < 2:
            raise ValueError(f"EDM.sigma_steps needs n >= 2 steps, got n={n}")
        i = torch.arange(n, dtype=dtype)
        inv = 1.0 / self.rho
        s = (
            self.sigma_max**inv + i / (n - 1) * (self.sigma_min**inv - self.sigma_max**inv)
        ) ** self.rho
        return torch.cat([s, torch.zeros(1, dtype=dtype)])


@dataclass(frozen=True)
class VE(Schedule):
    """Variance-exploding SDE of score_sde: sigma(t) = sigma_min (sigma_max/sigma_min)^t,
    alpha = 1, t in [eps, 1] (Song et al. 2021, Eq. 30). sigma_max = 50 for CIFAR-10,
    90 for CelebA-64."""

    sigma_min: float = 0.01
    sigma_max: float = 50.0
    t_min: float = 1e-5
    t_max: float = 1.0

    def __post_init__(self) -> None:
        _check("VE", "0 < sigma_min <= sigma_max < inf", vars(self))
        _check("VE", "0 <= t_min < t_max <= 1", vars(self))

    def alpha(self, t: TensorLike) -> Tensor:
        return torch.ones_like(_as_tensor(t))

    def sigma(self, t: TensorLike) -> Tensor:
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** _as_tensor(t)

    def dalpha(self, t: TensorLike) -> Tensor:
        return torch.zeros_like(_as_tensor(t))

    def dsigma(self, t: TensorLike) -> Tensor:
        return self.sigma(t) * math.log(self.sigma_max / self.sigma_min)

    def discrete_sigmas(self, n: int, dtype: torch.dtype = torch.float64) -> Tensor:
        """The n geometric noise levels sigma_max ... sigma_min of score_sde's discretisation."""
        return torch.exp(
            torch.linspace(math.log(self.sigma_max), math.log(self.sigma_min), n, dtype=dtype)
        )


@dataclass(frozen=True)
class VPLinear(Schedule):
    """Continuous VP SDE with linear beta(t) = beta_min + t (beta_max - beta_min)
    (Song et al. 2021, Eq. 32; the continuous limit of DDPM's linear 1e-4..0.02, T=1000).

    alpha(t) = exp(-t^2 (beta_max - beta_min)/4 - t beta_min/2), sigma = sqrt(1 - alpha^2).
    """

    beta_min: float = 0.1
    beta_max: float = 20.0
    t_min: float = 1e-3
    t_max: float = 1.0

    def __post_init__(self) -> None:
        _check("VPLinear", "0 <= beta_min < beta_max < inf", vars(self))
        _check("VPLinear", "0 < t_min < t_max <= 1", vars(self))

    #: x_T ~ N(0, I), as score_sde's VPSDE.prior_sampling (sigma(1) = 1 - 2e-9 here).
    prior_std = 1.0

    def beta(self, t: TensorLike) -> Tensor:
        return self.beta_min + _as_tensor(t) * (self.beta_max - self.beta_min)

    def alpha(self, t: TensorLike) -> Tensor:
        t = _as_tensor(t)
        return torch.exp(-0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min)

    def sigma(self, t: TensorLike) -> Tensor:
        return torch.sqrt(-torch.expm1(2.0 * torch.log(self.alpha(t))))

    def dalpha(self, t: TensorLike) -> Tensor:
        return -0.5 * self.beta(t) * self.alpha(t)

    def dsigma(self, t: TensorLike) -> Tensor:
        a = self.alpha(t)
        return -a * self.dalpha(t) / self.sigma(t)

    def t_of_sigma_edm(self, sigma_edm: TensorLike) -> Tensor:
        """Inverse of sigma/alpha: the time t with sigma(t)/alpha(t) = sigma_edm,
        t = (sqrt(b0^2 + 2 bd log(1 + sigma_edm^2)) - b0) / bd (Karras et al. 2022, Table 1)."""
        b0, bd = self.beta_min, self.beta_max - self.beta_min
        return (torch.sqrt(b0**2 + 2 * bd * torch.log1p(_as_tensor(sigma_edm) ** 2)) - b0) / bd


# --------------------------------------------------------------------------------------
# Discrete DDPM processes
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiscreteVP(Prior):
    """A discrete DDPM process given by its betas; step n = 1..T has
    alpha_bar_n = prod_{i<=n} (1 - beta_i), alpha = sqrt(alpha_bar), sigma = sqrt(1 - alpha_bar)
    (Ho et al. 2020, Eq. 4). Index 0 is the clean data (alpha_bar_0 = 1)."""

    betas: Tensor

    def __post_init__(self) -> None:
        b = self.betas
        if not isinstance(b, Tensor) or b.ndim != 1 or len(b) == 0:
            raise ValueError(f"DiscreteVP got betas={b!r}; need a non-empty 1-D tensor.")
        extremes = {"min(betas)": b.min().item(), "max(betas)": b.max().item()}
        _check("DiscreteVP", "0 < min(betas) <= max(betas) < 1", extremes)

    @property
    def T(self) -> int:
        return int(self.betas.shape[0])

    #: x_T ~ N(0, I): the prior of a VP process (alpha_bar_T ~ 0).
    prior_std = 1.0

    @property
    def alpha_bar(self) -> Tensor:
        """alpha_bar_n for n = 0..T (length T + 1, alpha_bar_0 = 1)."""
        ab = torch.cumprod(1.0 - self.betas, dim=0)
        return torch.cat([torch.ones(1, dtype=ab.dtype), ab])

    def alpha(self, n: Tensor | int) -> Tensor:
        return self.alpha_bar[n].sqrt()

    def sigma(self, n: Tensor | int) -> Tensor:
        return (1.0 - self.alpha_bar[n]).sqrt()

    def sigma_edm(self, n: Tensor | int) -> Tensor:
        return self.sigma(n) / self.alpha(n)

    @classmethod
    def linear(
        cls, T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02, dtype=torch.float64
    ) -> DiscreteVP:
        """DDPM's linear schedule, beta from 1e-4 to 0.02 over T = 1000 steps."""
        if T < 1:
            raise ValueError(f"T must be >= 1, got {T}")
        _check("DiscreteVP.linear", "0 < beta_1 <= beta_T < 1", dict(beta_1=beta_1, beta_T=beta_T))
        return cls(torch.linspace(beta_1, beta_T, T, dtype=dtype))

    @classmethod
    def cosine(cls, T: int = 1000, s: float = 0.008, max_beta: float = 0.999, dtype=torch.float64):
        """Cosine schedule of Nichol & Dhariwal 2021, Eq. 17, betas clipped at 0.999."""
        if T < 1:
            raise ValueError(f"T must be >= 1, got {T}")
        _check("DiscreteVP.cosine", "0 < max_beta < 1", {"max_beta": max_beta})
        n = torch.arange(T + 1, dtype=dtype)
        f = torch.cos((n / T + s) / (1 + s) * math.pi / 2) ** 2
        ab = f / f[0]
        betas = (1 - ab[1:] / ab[:-1]).clamp(max=max_beta)
        return cls(betas)


def discrete_timesteps(T: int, steps: int, spacing: str = "trailing") -> Tensor:
    """``steps`` decreasing DDPM indices n_1 > ... > n_steps in 1..T, followed by 0 (the
    clean data), for sampling a T-step DDPM with fewer steps (DDIM, Song et al. 2021, Sec. 4.2).

    * ``"trailing"``: n_i = round(T - i T / steps), i = 0..steps-1; starts at n = T.
    * ``"leading"``: n_i = (steps - 1 - i) k + 1 with k = T // steps; ends at n = 1; the
      spacing of DDIM's released code (0-based t = 0, k, 2k, ...).

    Both are diffusers' ``timestep_spacing`` of the same name shifted by one, because their
    0-based index t means our n = t + 1. Returns a long tensor of length steps + 1.
    """
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be in 1..T={T}, got steps={steps}")
    if spacing == "trailing":
        n = torch.round(T - torch.arange(steps, dtype=torch.float64) * (T / steps)).long()
    elif spacing == "leading":
        n = torch.arange(steps - 1, -1, -1) * (T // steps) + 1
    else:
        raise ValueError(f"spacing must be 'trailing' or 'leading', got {spacing!r}")
    return torch.cat([n, torch.zeros(1, dtype=torch.long)])
