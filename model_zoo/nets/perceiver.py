"""Perception: observations as tokens from a small VQ codebook, read by a Perceiver into a context vector.

- ``Tokenizer``: every image part becomes an 8x8 grid of feature tokens (three
  stride-2 convolutions, 64 -> 32 -> 16 -> 8), every element of the vector part one
  token (its value times a learned vector plus a learned per-element embedding).
- ``CosineVectorQuantizer``: each token snaps to the nearest of ``codes`` codebook vectors
  (van den Oord et al., 2017, "Neural Discrete Representation Learning",
  arXiv:1711.00937), with the codebook and commitment losses and the straight-through
  gradient. Tokens and codes are l2-normalised before the lookup (Yu et al., 2022,
  "Vector-quantized Image Modeling with Improved VQGAN", arXiv:2110.04627), which keeps
  more of the codebook in use.
- ``PerceiverEncoder``: a learned latent array cross-attends to the quantized tokens
  (plus learned position embeddings), then self-attends (Jaegle et al., 2021,
  "Perceiver: General Perception with Iterative Attention", arXiv:2103.03206); the
  flattened latents give the context vector.

>>> import numpy as np, torch
>>> from gymnasium import spaces
>>> from model_zoo.spaces import ObsSpec
>>> spec = ObsSpec(spaces.Dict({"image": spaces.Box(0, 255, (64, 64, 3), np.uint8),
...                             "state": spaces.Box(-1, 1, (4,), np.float32)}), spaces.Discrete(3))
>>> tokenizer = Tokenizer(spec, dim=16, depth=4)
>>> tokens = tokenizer({"image": torch.zeros(2, 64, 64, 3, dtype=torch.uint8), "state": torch.zeros(2, 4)})
>>> tokens.shape  # 64 image tokens + 4 vector tokens
torch.Size([2, 68, 16])
>>> quantized, codes, vq_loss = CosineVectorQuantizer(codes=32, dim=16)(tokens)
>>> context = PerceiverEncoder(tokenizer.num_tokens, dim=16, latents=4, latent_dim=32, heads=4, out_dim=24)(quantized)
>>> quantized.shape, codes.shape, context.shape
(torch.Size([2, 68, 16]), torch.Size([2, 68]), torch.Size([2, 24]))
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model_zoo.nets.layers import module_key
from model_zoo.nets.tokens import GRID
from model_zoo.spaces import ObsSpec

__all__ = ["CosineQuantized", "CosineVectorQuantizer", "PerceiverEncoder", "Tokenizer"]


class Tokenizer(nn.Module):
    """Observations (..., parts) -> feature tokens (..., N, dim): 64 per image part, one per vector element."""

    def __init__(self, spec: ObsSpec, dim: int, depth: int = 16):
        super().__init__()
        self.spec, self.dim = spec, dim
        self.stems = nn.ModuleDict({
            module_key(k): nn.Sequential(
                nn.Conv2d(shape[-1], depth, 4, stride=2, padding=1), nn.ReLU(),  # 32
                nn.Conv2d(depth, 2 * depth, 4, stride=2, padding=1), nn.ReLU(),  # 16
                nn.Conv2d(2 * depth, dim, 4, stride=2, padding=1),  # 8
            )
            for k, shape in spec.images.items()
        })
        self.vector_scale = nn.Parameter(torch.randn(spec.vector_dim, dim) * 0.5) if spec.vector_dim else None
        self.vector_embed = nn.Parameter(torch.randn(spec.vector_dim, dim) * 0.5) if spec.vector_dim else None
        self.num_image_tokens = GRID * GRID * len(spec.images)
        self.num_tokens = self.num_image_tokens + spec.vector_dim

    def forward(self, obs) -> Tensor:
        tokens, lead = [], None
        for key in self.spec.image_keys:
            x = self.spec.image(obs, key)  # (..., C, 64, 64)
            lead = x.shape[:-3]
            grid = self.stems[module_key(key)](x.reshape((-1,) + tuple(x.shape[-3:])))  # (M, dim, 8, 8)
            tokens.append(grid.flatten(2).transpose(1, 2))  # (M, 64, dim)
        if self.vector_scale is not None:
            v = self.spec.vector(obs)  # (..., V)
            lead = v.shape[:-1]
            v = v.reshape(-1, v.shape[-1], 1)  # (M, V, 1)
            tokens.append(v * self.vector_scale + self.vector_embed)  # (M, V, dim)
        return torch.cat(tokens, dim=1).reshape(tuple(lead) + (self.num_tokens, self.dim))


class CosineQuantized(NamedTuple):
    """``CosineVectorQuantizer``'s output: straight-through tokens, code indices and the VQ loss."""

    tokens: Tensor  # (..., N, dim), gradients pass straight through to the encoder
    codes: Tensor  # (..., N) int64
    loss: Tensor  # () codebook + beta * commitment


class CosineVectorQuantizer(nn.Module):
    """Nearest-code lookup on the unit sphere (l2-normalised tokens and codes, so the nearest code is the most
    similar one), with the VQ-VAE losses and a straight-through gradient. ``nets.tokens.VectorQuantizer`` is the
    Euclidean one, with dead-code restarts."""

    def __init__(self, codes: int = 256, dim: int = 32, beta: float = 0.25):
        super().__init__()
        self.beta = beta
        self.codebook = nn.Parameter(torch.randn(codes, dim))

    def forward(self, x: Tensor) -> CosineQuantized:
        x = F.normalize(x, dim=-1)  # (..., dim)
        book = F.normalize(self.codebook, dim=-1)  # (K, dim)
        codes = (x.reshape(-1, x.shape[-1]) @ book.t()).argmax(-1).reshape(x.shape[:-1])  # nearest = most similar
        q = book[codes]  # (..., dim)
        loss = F.mse_loss(q, x.detach()) + self.beta * F.mse_loss(x, q.detach())
        return CosineQuantized(x + (q - x).detach(), codes, loss)

    @staticmethod
    def perplexity(codes: Tensor, num_codes: int) -> Tensor:
        """exp(entropy) of the code histogram: how many codes are in use."""
        p = torch.bincount(codes.reshape(-1), minlength=num_codes).float()
        p = p / p.sum().clamp_min(1.0)
        return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())


class PerceiverEncoder(nn.Module):
    """Tokens (B, N, dim) -> context (B, out_dim): latents cross-attend to the tokens, then self-attend."""

    def __init__(self, num_tokens: int, dim: int, latents: int = 8, latent_dim: int = 64, heads: int = 4,
                 out_dim: int = 128):
        super().__init__()
        self.position = nn.Parameter(torch.randn(num_tokens, dim) * 0.02)
        self.latents = nn.Parameter(torch.randn(latents, latent_dim) * 0.02)
        self.norm_tokens = nn.LayerNorm(dim)
        self.norm_cross = nn.LayerNorm(latent_dim)
        self.cross = nn.MultiheadAttention(latent_dim, heads, kdim=dim, vdim=dim, batch_first=True)
        self.mlp1 = nn.Sequential(nn.LayerNorm(latent_dim), nn.Linear(latent_dim, 2 * latent_dim), nn.GELU(),
                                  nn.Linear(2 * latent_dim, latent_dim))
        self.norm_self = nn.LayerNorm(latent_dim)
        self.self_attn = nn.MultiheadAttention(latent_dim, heads, batch_first=True)
        self.mlp2 = nn.Sequential(nn.LayerNorm(latent_dim), nn.Linear(latent_dim, 2 * latent_dim), nn.GELU(),
                                  nn.Linear(2 * latent_dim, latent_dim))
        self.out = nn.Sequential(nn.LayerNorm(latents * latent_dim), nn.Linear(latents * latent_dim, out_dim))

    def forward(self, tokens: Tensor) -> Tensor:
        kv = self.norm_tokens(tokens + self.position)  # (B, N, dim)
        x = self.latents.expand(tokens.shape[0], -1, -1)  # (B, L, Dl)
        q = self.norm_cross(x)
        x = x + self.cross(q, kv, kv, need_weights=False)[0]  # (B, L, Dl)
        x = x + self.mlp1(x)
        y = self.norm_self(x)
        x = x + self.self_attn(y, y, y, need_weights=False)[0]
        x = x + self.mlp2(x)
        return self.out(x.flatten(1))  # (B, out_dim)
