"""Mixture density outputs: a mixture of diagonal Gaussians read off a network's flat output.

Bishop (1994), "Mixture Density Networks"; as M of Ha & Schmidhuber (2018), "World
Models" (arXiv:1803.10122), with its temperature: mixture logits divided by ``tau``,
the Gaussian std multiplied by ``sqrt(tau)``, ``tau = 0`` the most likely component's
mean. The mixture weights are either shared by the whole vector (one categorical picks
a component for all D dimensions, so a sample stays jointly coherent) or one
categorical per dimension (the paper's).

>>> mix = split_mixture(torch.zeros(2, 3 * (1 + 2 * 4)), components=3, dim=4)
>>> mix.logits.shape, mix.mean.shape, mixture_log_prob(mix, torch.zeros(2, 4), -5.0, 2.0).shape
(torch.Size([2, 3, 1]), torch.Size([2, 3, 4]), torch.Size([2]))
>>> sample_mixture(mix, 0.0, None, -5.0, 2.0).shape
torch.Size([2, 4])
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from model_zoo.nets.layers import symexp, symlog

__all__ = ["Mixture", "draw_symlog_mixture", "mixture_log_prob", "mixture_width", "sample_mixture", "split_mixture",
           "symlog_mixture_nll"]

_LOG_2PI = math.log(2 * math.pi)


class Mixture(NamedTuple):
    """A mixture of K diagonal Gaussians over D dimensions."""

    logits: Tensor  # (..., K, 1) weights shared by the D dimensions, or (..., K, D) one categorical per dimension
    mean: Tensor  # (..., K, D)
    logstd: Tensor  # (..., K, D), unclamped (log_prob and sample clamp it)


def mixture_width(components: int, dim: int, per_dim: bool = False) -> int:
    """Outputs a network needs for ``split_mixture``: K * (1 or D) logits, K * D means, K * D log-stds."""
    return components * ((dim if per_dim else 1) + 2 * dim)


def split_mixture(out: Tensor, components: int, dim: int, per_dim: bool = False) -> Mixture:
    """The first ``mixture_width`` outputs of ``out`` (..., O) as a ``Mixture``: logits | means | log-stds."""
    lead, k = out.shape[:-1], components
    n = k * (dim if per_dim else 1)
    logits = out[..., :n].reshape(lead + (k, dim if per_dim else 1))  # (..., K, 1 or D)
    mean = out[..., n : n + k * dim].reshape(lead + (k, dim))  # (..., K, D)
    logstd = out[..., n + k * dim : n + 2 * k * dim].reshape(lead + (k, dim))  # (..., K, D)
    return Mixture(logits, mean, logstd)


def mixture_log_prob(mix: Mixture, x: Tensor, min_logstd: float, max_logstd: float) -> Tensor:
    """log p(x) under the mixture, summed over the D dimensions: x (..., D) -> (...)."""
    log_pi = F.log_softmax(mix.logits, dim=-2)  # (..., K, 1 or D)
    logstd = mix.logstd.clamp(min_logstd, max_logstd)
    z = (x.unsqueeze(-2) - mix.mean) * torch.exp(-logstd)  # (..., K, D)
    log_n = -0.5 * z.square() - logstd - 0.5 * _LOG_2PI  # (..., K, D)
    if mix.logits.shape[-1] == 1:  # one component for the whole vector
        return torch.logsumexp(log_pi[..., 0] + log_n.sum(-1), dim=-1)
    return torch.logsumexp(log_pi + log_n, dim=-2).sum(-1)


def sample_mixture(mix: Mixture, tau: float, generator: torch.Generator | None, min_logstd: float,
                   max_logstd: float) -> Tensor:
    """x (B, D) drawn at temperature ``tau`` from (B, K, ...) mixture parameters (0: the likeliest mean).

    Two draws from ``generator``: one uniform per categorical (inverse CDF), one normal per dimension.
    """
    batch, k, dim = mix.mean.shape
    if tau == 0:
        index = mix.logits.argmax(dim=1)  # (B, 1 or D)
    else:
        cdf = torch.softmax(mix.logits.detach() / tau, dim=1).cumsum(dim=1)  # (B, K, 1 or D)
        u = torch.rand((batch, 1, mix.logits.shape[-1]), generator=generator, device=cdf.device, dtype=cdf.dtype)
        index = (cdf < u).sum(dim=1).clamp_(max=k - 1)  # (B, 1 or D)
    index = index.unsqueeze(1).expand(batch, 1, dim)  # (B, 1, D)
    mean = mix.mean.gather(1, index).squeeze(1)  # (B, D)
    if tau == 0:
        return mean
    logstd = mix.logstd.gather(1, index).squeeze(1).clamp(min_logstd, max_logstd)  # (B, D)
    std = torch.exp(logstd + 0.5 * math.log(tau))  # std * sqrt(tau)
    noise = torch.randn((batch, dim), generator=generator, device=std.device, dtype=std.dtype)
    return torch.addcmul(mean, std, noise)


def symlog_mixture_nll(out: Tensor, value: Tensor, components: int, min_logstd: float,
                       max_logstd: float) -> Tensor:
    """Negative log-likelihood (...) of scalars ``value`` (...) under a mixture ``out`` (..., 3K) over symlog(value)."""
    return -mixture_log_prob(split_mixture(out, components, 1), symlog(value)[..., None], min_logstd, max_logstd)


def draw_symlog_mixture(out: Tensor, components: int, tau: float, generator: torch.Generator | None,
                        min_logstd: float, max_logstd: float) -> Tensor:
    """Scalars (B,) drawn from a mixture (B, 3K) over symlog values at temperature ``tau``; at ``tau = 0`` the
    expected value (the components' means, mapped back, weighted by their odds)."""
    mix = split_mixture(out, components, 1)
    if tau == 0:
        return (torch.softmax(mix.logits[..., 0], dim=-1) * symexp(mix.mean[..., 0])).sum(-1)
    return symexp(sample_mixture(mix, tau, generator, min_logstd, max_logstd)[:, 0])
