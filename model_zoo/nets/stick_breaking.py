"""A truncated Dirichlet-process Gaussian mixture: stick-breaking weights, the KL to the mixture, components in use.

The stick-breaking construction of a Dirichlet process (Sethuraman, 1994) breaks a unit
stick: fraction ``v_1`` of it goes to component 1, fraction ``v_2`` of the rest to
component 2, and so on, ``pi_k = v_k prod_{j<k} (1 - v_j)``. Truncated at ``K``
components (Ishwaran & James, 2001), the last one takes whatever is left, so the K
weights sum to one. Under a DP with concentration ``alpha`` the fractions are
``Beta(1, alpha)``: a small ``alpha`` gives most of the stick to the first few
components, so the data decide how many components they need. Variational stick
fractions ``Beta(a, b)`` and their KL to ``Beta(1, alpha)`` follow Nalisnick & Smyth
(2017), "Stick-Breaking Variational Autoencoders" (arXiv:1605.06197).

The KL between a diagonal Gaussian posterior ``q(z)`` and a Gaussian mixture has no
closed form; ``mixture_kl`` uses the Gaussian's entropy in closed form and a Monte
Carlo estimate of the cross-entropy ``-E_q[log p(z)]``.

>>> import torch
>>> weights = stick_breaking(torch.tensor([0.5, 0.5, 0.5]))
>>> weights.tolist()
[0.5, 0.25, 0.125, 0.125]
>>> components_in_use(weights, threshold=0.2).item()
2
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Beta, kl_divergence

__all__ = [
    "MixturePrior",
    "components_in_use",
    "effective_components",
    "gaussian_kl",
    "log_stick_breaking",
    "mixture_kl",
    "mixture_log_prob",
    "responsibilities",
    "stick_breaking",
    "stick_kl",
]

_LOG_2PI = math.log(2 * math.pi)
_EPS = 1e-6


def log_stick_breaking(fractions: Tensor) -> Tensor:
    """Log mixture weights (..., K) from K - 1 stick fractions (..., K - 1) in (0, 1).

    ``log pi_k = log v_k + sum_{j<k} log(1 - v_j)`` for k < K, and the remainder
    ``log pi_K = sum_{j<K} log(1 - v_j)`` goes to the truncation.
    """
    v = fractions.clamp(_EPS, 1.0 - _EPS)
    log_rest = torch.cumsum(torch.log1p(-v), dim=-1)  # (..., K-1): log of the stick left after k breaks
    before = torch.cat([torch.zeros_like(log_rest[..., :1]), log_rest[..., :-1]], dim=-1)  # (..., K-1)
    return torch.cat([torch.log(v) + before, log_rest[..., -1:]], dim=-1)  # (..., K)


def stick_breaking(fractions: Tensor) -> Tensor:
    """Mixture weights (..., K) from K - 1 stick fractions (..., K - 1); they sum to one.

    >>> stick_breaking(torch.tensor([[1.0, 0.5], [0.0, 0.0]])).round(decimals=4).tolist()
    [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    return log_stick_breaking(fractions).exp()


def stick_kl(a: Tensor, b: Tensor, alpha: float) -> Tensor:
    """KL(Beta(a, b) || Beta(1, alpha)) summed over the sticks: (..., K - 1) -> (...)."""
    prior = Beta(torch.ones_like(a), torch.full_like(b, float(alpha)))
    return kl_divergence(Beta(a, b), prior).sum(-1)


def gaussian_kl(mean: Tensor, logstd: Tensor, prior_mean: Tensor, prior_logstd: Tensor) -> Tensor:
    """Closed-form KL between diagonal Gaussians, summed over the last dim: (..., Z) -> (...)."""
    var_ratio = torch.exp(2 * (logstd - prior_logstd))
    mahalanobis = ((mean - prior_mean) * torch.exp(-prior_logstd)).square()
    return 0.5 * (var_ratio + mahalanobis - 1.0).sum(-1) + (prior_logstd - logstd).sum(-1)


def mixture_log_prob(z: Tensor, log_weights: Tensor, means: Tensor, logstds: Tensor) -> Tensor:
    """log p(z) under a diagonal Gaussian mixture.

    Args:
        z: (..., Z) points.
        log_weights: (..., K) log mixture weights.
        means: (..., K, Z) component means (any prefix broadcasting with z's).
        logstds: (..., K, Z) component log standard deviations.

    Returns:
        (...) log densities.
    """
    return torch.logsumexp(log_weights + _component_log_prob(z, means, logstds), dim=-1)


def responsibilities(z: Tensor, log_weights: Tensor, means: Tensor, logstds: Tensor) -> Tensor:
    """Posterior probabilities (..., K) that each component generated z (..., Z)."""
    return torch.softmax(log_weights + _component_log_prob(z, means, logstds), dim=-1)


def mixture_kl(
    mean: Tensor,
    logstd: Tensor,
    log_weights: Tensor,
    means: Tensor,
    logstds: Tensor,
    samples: int = 1,
    generator: torch.Generator | None = None,
    z: Tensor | None = None,
) -> Tensor:
    """Monte Carlo KL(q || p) of a diagonal Gaussian q = N(mean, exp(logstd)^2) and a mixture p: (...).

    ``E_q[log q]`` is the closed-form negative entropy; ``E_q[log p(z)]`` is averaged over
    ``samples`` reparameterised draws (or over the given draws ``z``, (S, ..., Z)), so the
    estimate is unbiased and differentiable in every argument.

    >>> zero = torch.zeros(1, 2)
    >>> kl = mixture_kl(zero, zero, torch.zeros(1, 1), torch.zeros(1, 1, 2), torch.zeros(1, 1, 2),
    ...                 samples=20_000, generator=torch.Generator().manual_seed(0))
    >>> abs(float(kl)) < 0.02  # q equals the single component: KL 0 up to Monte Carlo noise
    True
    """
    if z is None:
        noise = torch.randn((samples,) + tuple(mean.shape), generator=generator, device=mean.device,
                            dtype=mean.dtype)  # (S, ..., Z)
        z = mean + torch.exp(logstd) * noise
    neg_entropy = -(logstd + 0.5 * (1.0 + _LOG_2PI)).sum(-1)  # (...)
    cross = -mixture_log_prob(z, log_weights, means, logstds).mean(0)  # (...)
    return neg_entropy + cross


def effective_components(weights: Tensor) -> Tensor:
    """exp(entropy) of mixture weights (..., K) -> (...): 1 for one component, K for uniform weights."""
    entropy = -(weights * torch.log(weights.clamp_min(1e-12))).sum(-1)
    return entropy.exp()


def components_in_use(weights: Tensor, threshold: float = 0.05) -> Tensor:
    """How many components carry at least ``threshold`` of the weight: (..., K) -> (...) int64."""
    return (weights >= threshold).sum(-1)


def _component_log_prob(z: Tensor, means: Tensor, logstds: Tensor) -> Tensor:
    """log N(z; mean_k, std_k) summed over the latent dims: (..., Z) -> (..., K)."""
    x = (z.unsqueeze(-2) - means) * torch.exp(-logstds)  # (..., K, Z)
    return (-0.5 * x.square() - logstds - 0.5 * _LOG_2PI).sum(-1)


class MixturePrior(nn.Module):
    """p(z | h): a truncated DP mixture of ``components`` Gaussians over z (``z_dim``) given a state h (``hidden``).

    Stick fractions Beta(a(h), b(h)); learnable means (shifted together by a function
    of h with ``state_dependent_means``) and log-scales, clamped to ``logstd_range``.
    """

    def __init__(self, hidden: int, components: int, z_dim: int, logstd_range: tuple[float, float],
                 state_dependent_means: bool = False):
        super().__init__()
        self.k, self.z_dim = components, z_dim
        self.min_logstd, self.max_logstd = logstd_range
        self.sticks = nn.Linear(hidden, 2 * (self.k - 1)) if self.k > 1 else None
        self.means = nn.Parameter(torch.randn(self.k, self.z_dim))
        self.logstds = nn.Parameter(torch.zeros(self.k, self.z_dim))
        self.shift = nn.Linear(hidden, self.z_dim) if state_dependent_means else None

    def beta(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Beta parameters (a, b) of the K - 1 stick fractions, each (..., K - 1)."""
        a, b = F.softplus(self.sticks(h)).add(1e-3).chunk(2, dim=-1)
        return a, b

    def log_weights(self, h: Tensor, sample: bool = False) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Log weights (..., K), from sampled (reparameterised) or expected stick fractions; and (a, b)."""
        if self.sticks is None:
            return h.new_zeros(h.shape[:-1] + (1,)), None, None
        a, b = self.beta(h)
        v = Beta(a, b).rsample() if sample else a / (a + b)  # (..., K-1)
        return log_stick_breaking(v), a, b

    def components(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Component means (..., K, Z) and log-stds (K, Z) at state h (..., H)."""
        means = self.means
        if self.shift is not None:
            means = means + self.shift(h).unsqueeze(-2)  # (..., K, Z)
        else:
            means = means.expand(h.shape[:-1] + means.shape)
        return means, self.logstds.clamp(self.min_logstd, self.max_logstd)

    def sample(self, h: Tensor, tau: float, generator: torch.Generator | None) -> Tensor:
        """z (B, Z): a component drawn from the expected weights (logits / tau), then its Gaussian (std * sqrt(tau))."""
        log_w, _, _ = self.log_weights(h)  # (B, K)
        means, logstds = self.components(h)  # (B, K, Z), (K, Z)
        batch = h.shape[0]
        if tau == 0:
            k = log_w.argmax(-1)  # (B,)
        else:
            cdf = torch.softmax(log_w.detach() / tau, dim=-1).cumsum(-1)  # (B, K)
            u = torch.rand((batch, 1), generator=generator, device=h.device, dtype=h.dtype)
            k = (cdf < u).sum(-1).clamp_(max=self.k - 1)  # (B,) inverse-CDF draw
        mean = means[torch.arange(batch, device=h.device), k]  # (B, Z)
        if tau == 0:
            return mean
        std = torch.exp(logstds[k] + 0.5 * math.log(tau))  # (B, Z)
        noise = torch.randn((batch, self.z_dim), generator=generator, device=h.device, dtype=h.dtype)
        return torch.addcmul(mean, std, noise)
