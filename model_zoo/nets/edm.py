"""EDM: preconditioning, training noise levels and few-step samplers of a diffusion denoiser.

Karras et al. (2022), "Elucidating the Design Space of Diffusion-Based Generative
Models" (arXiv:2206.00364), Table 1: a network ``F`` becomes the denoiser

    D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x; c_noise(sigma))

with c_skip = sd^2 / (sigma^2 + sd^2), c_out = sigma sd / sqrt(sigma^2 + sd^2),
c_in = 1 / sqrt(sigma^2 + sd^2), c_noise = ln(sigma) / 4 (sd: the data's std).
Training draws ln(sigma) ~ N(P_mean, P_std^2) and weights the squared error of D by
lambda(sigma) = 1 / c_out^2, so ``F`` regresses a target of unit variance at every
noise level. Sampling integrates the probability-flow ODE dx/dsigma = (x - D) / sigma
from sigma_max to 0 over the schedule of their eq. 5 (rho = 7), with Euler steps or
Heun's second-order correction (their Algorithm 1, without churn). DIAMOND (Alonso et
al. 2024, arXiv:2405.12399) uses these pieces for a world model that samples each next
frame in a few Euler steps.

>>> sigmas = karras_sigmas(3, sigma_min=0.002, sigma_max=5.0)
>>> sigmas.shape, float(sigmas[0]), float(sigmas[-1])
(torch.Size([4]), 5.0, 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

__all__ = ["Preconditioned", "Preconditioning", "draw_sigma", "karras_sigmas", "loss_weight", "noise_embedding",
           "precondition", "sample"]

Denoiser = Callable[[Tensor, Tensor], Tensor]  # (noisy x (B, ...), sigma (B,)) -> denoised x (B, ...)


class Preconditioning(NamedTuple):
    """EDM's coefficients at noise levels sigma, each shaped like sigma."""

    c_skip: Tensor
    c_out: Tensor
    c_in: Tensor
    c_noise: Tensor


def precondition(sigma: Tensor, sigma_data: float) -> Preconditioning:
    """Karras et al.'s Table 1 coefficients at ``sigma`` (any shape, > 0)."""
    total = sigma.square() + sigma_data**2
    return Preconditioning(
        c_skip=sigma_data**2 / total,
        c_out=sigma * sigma_data / total.sqrt(),
        c_in=total.rsqrt(),
        c_noise=sigma.log() / 4,
    )


def loss_weight(sigma: Tensor, sigma_data: float) -> Tensor:
    """lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2, which is 1 / c_out^2."""
    return (sigma.square() + sigma_data**2) / (sigma * sigma_data).square()


def draw_sigma(n: int, p_mean: float, p_std: float, device: torch.device | str = "cpu",
               generator: torch.Generator | None = None) -> Tensor:
    """(n,) training noise levels, log-normal: ln(sigma) ~ N(p_mean, p_std^2)."""
    return (p_mean + p_std * torch.randn(n, device=device, generator=generator)).exp()


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> Tensor:
    """(steps + 1,) decreasing noise levels from ``sigma_max`` to ``sigma_min``, then 0 (Karras et al. eq. 5).

    One step is a single denoising from ``sigma_max``.
    """
    if steps < 1:
        raise ValueError(f"a sampler needs at least one step, got {steps}")
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64) if steps > 1 else torch.zeros(1, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho  # (steps,)
    return torch.cat([sigmas, torch.zeros(1, dtype=torch.float64)]).float()


def sample(denoise: Denoiser, x: Tensor, sigmas: Tensor, order: int = 1) -> Tensor:
    """Integrates the probability-flow ODE from ``x`` at ``sigmas[0]`` down to ``sigmas[-1]``.

    ``denoise(x, sigma)`` is D with sigma (B,); ``x`` (B, ...) is the start (noise of std
    ``sigmas[0]``). ``order`` 1: Euler steps; 2: Heun's correction on every step but one
    ending at sigma 0 (Karras et al. Algorithm 1 with S_churn = 0). Deterministic given ``x``.
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 (Euler) or 2 (Heun), got {order}")
    batch = x.shape[0]
    for sigma, after in zip(sigmas[:-1].tolist(), sigmas[1:].tolist(), strict=True):
        d = (x - denoise(x, x.new_full((batch,), sigma))) / sigma  # (B, ...) dx/dsigma
        stepped = x + (after - sigma) * d
        if order == 2 and after > 0:
            d_after = (stepped - denoise(stepped, x.new_full((batch,), after))) / after
            stepped = x + (after - sigma) * 0.5 * (d + d_after)
        x = stepped
    return x


def noise_embedding(c_noise: Tensor, dim: int, max_frequency: float = 1000.0) -> Tensor:
    """Sinusoidal features (B, dim) of c_noise (B,): cos and sin at log-spaced frequencies in [1, max_frequency]."""
    half = dim // 2
    freqs = torch.exp(torch.linspace(0.0, math.log(max_frequency), half, device=c_noise.device))  # (dim/2,)
    angles = c_noise.float()[:, None] * freqs  # (B, dim/2)
    return torch.cat([angles.cos(), angles.sin()], dim=-1)  # (B, 2 * (dim // 2))


class Preconditioned(nn.Module):
    """D(x; sigma) around a network ``net(c_in x, c_noise, *context) -> F`` (same shape as x).

    ``forward`` denoises; ``loss`` is the weighted denoising error per sample, computed
    as EDM's unit-variance regression of F (equal to lambda(sigma) |D - x0|^2).
    """

    def __init__(self, net: nn.Module, sigma_data: float):
        super().__init__()
        self.net = net
        self.sigma_data = sigma_data

    def _coefficients(self, sigma: Tensor, x: Tensor) -> Preconditioning:
        shape = (-1,) + (1,) * (x.dim() - 1)
        c = precondition(sigma, self.sigma_data)
        return Preconditioning(c.c_skip.reshape(shape), c.c_out.reshape(shape), c.c_in.reshape(shape), c.c_noise)

    def forward(self, noisy: Tensor, sigma: Tensor, *context: Tensor) -> Tensor:
        """The denoised estimate (B, ...) of ``noisy`` (B, ...) at noise levels ``sigma`` (B,)."""
        c = self._coefficients(sigma, noisy)
        return c.c_skip * noisy + c.c_out * self.net(c.c_in * noisy, c.c_noise, *context)

    def loss(self, clean: Tensor, sigma: Tensor, noise: Tensor, *context: Tensor) -> Tensor:
        """(B,) mean over elements of lambda(sigma) |D(clean + sigma noise) - clean|^2."""
        c = self._coefficients(sigma, clean)
        noisy = clean + sigma.reshape(c.c_in.shape) * noise  # (B, ...)
        target = (clean - c.c_skip * noisy) / c.c_out
        out = self.net(c.c_in * noisy, c.c_noise, *context)
        return (out - target).square().flatten(1).mean(-1)
