"""Diffusion transformer (DiT) pieces: patches of a latent, adaLN-Zero blocks and the noise-level embedding.

Peebles & Xie (2023), "Scalable Diffusion Models with Transformers" (arXiv:2212.09748):
a latent (C, H, W) is cut into p x p patches, each a token of C p^2 numbers; a
transformer denoises the tokens, and the condition (the noise level, plus a class or,
here, actions) reaches every block through adaptive layer norm. Each block's layer
norms have no affine of their own: a linear map of the condition gives a shift and a
scale per norm and a gate per residual branch (adaLN-Zero, their best variant). The
gates start at zero, so a fresh block is the identity, and the final layer's output
starts at zero too; with EDM's preconditioning (``model_zoo.nets.edm``) a fresh
denoiser returns ``c_skip * x``.

>>> import torch
>>> x = torch.randn(2, 4, 8, 8)
>>> tokens = patchify(x, 2)
>>> tokens.shape, torch.equal(unpatchify(tokens, 2, 4, 4), x)
(torch.Size([2, 16, 16]), True)
>>> net = DiT(in_dim=16, out_dim=16, length=16, width=32, depth=2, heads=4)
>>> net(tokens, torch.zeros(2, 32)).abs().max().item()
0.0
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model_zoo.nets.edm import noise_embedding

__all__ = ["AdaLNZeroBlock", "DiT", "FinalLayer", "NoiseLevelEmbedding", "patchify", "unpatchify"]


def patchify(x: Tensor, patch: int) -> Tensor:
    """(B, C, H, W) -> (B, H/p * W/p, C p^2) tokens, row by row (H and W divisible by p)."""
    return F.pixel_unshuffle(x, patch).flatten(2).transpose(1, 2)


def unpatchify(tokens: Tensor, patch: int, height: int, width: int) -> Tensor:
    """The inverse of ``patchify``: (B, h * w, C p^2) tokens on an h x w grid -> (B, C, h p, w p)."""
    grid = tokens.transpose(1, 2).unflatten(2, (height, width))  # (B, C p^2, h, w)
    return F.pixel_shuffle(grid, patch)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """x (B, L, D) scaled by (1 + scale) and shifted, both (B, 1, D)."""
    return x * (1 + scale) + shift


class NoiseLevelEmbedding(nn.Module):
    """EDM's c_noise (B,) -> (B, width): sinusoidal features, then a two-layer MLP (DiT's timestep embedder)."""

    def __init__(self, width: int):
        super().__init__()
        self.width = width
        self.mlp = nn.Sequential(nn.Linear(2 * (width // 2), width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, c_noise: Tensor) -> Tensor:
        return self.mlp(noise_embedding(c_noise, self.width))


class SelfAttention(nn.Module):
    """Multi-head self-attention over all tokens (no mask: every token sees every other)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)  # (B, heads, L, d) each
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, L, d)
        return self.proj(out.transpose(1, 2).flatten(2))  # (B, L, D)


class AdaLNZeroBlock(nn.Module):
    """A pre-norm transformer block whose norms are modulated, and whose branches gated, by the condition."""

    def __init__(self, width: int, heads: int, cond_dim: int, mlp_ratio: int = 4):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(width, heads)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(approximate="tanh"),
                                 nn.Linear(mlp_ratio * width, width))
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 6 * width))
        nn.init.zeros_(self.modulation[1].weight)  # adaLN-Zero: every gate starts at 0, the block as the identity
        nn.init.zeros_(self.modulation[1].bias)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """x (B, L, width), cond (B, cond_dim) -> (B, L, width)."""
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(cond)[:, None].chunk(6, dim=-1)  # (B, 1, D)
        x = x + gate1 * self.attn(modulate(self.norm1(x), shift1, scale1))
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))


class FinalLayer(nn.Module):
    """Modulated norm, then a linear map to the output tokens; both start at zero, so the output does too."""

    def __init__(self, width: int, out_dim: int, cond_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 2 * width))
        self.linear = nn.Linear(width, out_dim)
        for layer in (self.modulation[1], self.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        shift, scale = self.modulation(cond)[:, None].chunk(2, dim=-1)  # (B, 1, D) each
        return self.linear(modulate(self.norm(x), shift, scale))  # (B, L, out_dim)


class DiT(nn.Module):
    """Tokens (B, length, in_dim) and a condition (B, width) -> (B, length, out_dim).

    A linear token embedding plus a learned position embedding (one per token position:
    with several frames in one sequence, it tells frames and patches apart), ``depth``
    adaLN-Zero blocks of ``heads`` heads, and the final layer.
    """

    def __init__(self, in_dim: int, out_dim: int, length: int, width: int, depth: int, heads: int,
                 mlp_ratio: int = 4):
        super().__init__()
        if width % heads:
            raise ValueError(f"DiT: width ({width}) must be divisible by heads ({heads})")
        self.embed = nn.Linear(in_dim, width)
        self.position = nn.Parameter(torch.randn(1, length, width) * 0.02)
        self.blocks = nn.ModuleList([AdaLNZeroBlock(width, heads, width, mlp_ratio) for _ in range(depth)])
        self.final = FinalLayer(width, out_dim, width)

    def forward(self, tokens: Tensor, cond: Tensor) -> Tensor:
        x = self.embed(tokens) + self.position  # (B, L, width)
        for block in self.blocks:
            x = block(x, cond)
        return self.final(x, cond)  # (B, L, out_dim)
