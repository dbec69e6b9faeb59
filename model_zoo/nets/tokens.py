"""Discrete tokens and a transformer over them: the blocks of ``model_zoo.models.vqvae_transformer``.

- ``VectorQuantizer``: the Euclidean VQ-VAE bottleneck of van den Oord et al. (2017), "Neural
  Discrete Representation Learning" (arXiv:1711.00937): nearest-code lookup, the
  straight-through gradient, the codebook and commitment losses. It tracks how
  often each code is used (an exponential moving average of each code's share of
  the tokens) and re-initialises codes left unused for ``dead_after`` training
  steps to encoder outputs of the current batch, so the codebook does not collapse
  onto a few codes (the restart of Dhariwal et al. (2020), "Jukebox", arXiv:2005.00341).
- ``ImageTokenizer``: a small conv encoder and decoder around it, 64x64 images to an
  8x8 grid of codes and back.
- ``neighbour_slots``: where each token of the grid finds its copy sources (itself and its
  four neighbours, ``COPY_OFFSETS``), for a model that copies codes from earlier frames.
- ``Transformer``: a GPT-style stack of pre-LayerNorm blocks (Radford et al. 2019)
  that runs either a full pass (causal-masked or bidirectional) or an incremental
  pass over new tokens that appends their keys and values to a ``KVCache``, so
  generating one more token costs one step over that token alone.

>>> vq = VectorQuantizer(codes=16, dim=4)
>>> out = vq(torch.randn(10, 4))
>>> out.indices.shape, out.quantized.shape, bool((out.indices < 16).all())
(torch.Size([10]), torch.Size([10, 4]), True)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "COPY_OFFSETS",
    "GRID",
    "TOKENS_PER_IMAGE",
    "Block",
    "ImageTokenizer",
    "KVCache",
    "Quantized",
    "Transformer",
    "VectorQuantizer",
    "neighbour_slots",
    "sample_logits",
]

GRID = 8  # an image part becomes GRID x GRID tokens (8x8-pixel patches of a 64x64 image)
TOKENS_PER_IMAGE = GRID * GRID
COPY_OFFSETS = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))  # (row, column) steps to a token's copy sources in the grid


def neighbour_slots(images: int) -> Tensor:
    """For each offset of ``COPY_OFFSETS`` and each token slot of ``images`` grids in a row, the slot it copies
    from, or -1 off the grid: (O, images * 64) int64.

    >>> neighbour_slots(1)[:, 0].tolist()  # the top-left slot: itself, nothing above or left of it
    [0, -1, 8, -1, 1]
    """
    rows, cols = torch.meshgrid(torch.arange(GRID), torch.arange(GRID), indexing="ij")
    out = []
    for dr, dc in COPY_OFFSETS:
        r, c = rows + dr, cols + dc
        inside = (r >= 0) & (r < GRID) & (c >= 0) & (c < GRID)
        slot = torch.where(inside, r * GRID + c, -1).flatten()  # (64,)
        out.append(torch.cat([torch.where(slot >= 0, slot + i * TOKENS_PER_IMAGE, -1) for i in range(images)]))
    return torch.stack(out)


# --- the vector quantizer -------------------------------------------------------------


class Quantized(NamedTuple):
    """What ``VectorQuantizer`` returns for N vectors."""

    quantized: Tensor  # (N, D) straight-through: the codes forward, the identity backward
    indices: Tensor  # (N,) int64 code of each vector
    codebook_loss: Tensor  # scalar ||sg(z) - e||^2: moves the codes toward the encoder outputs
    commitment_loss: Tensor  # scalar ||z - sg(e)||^2: keeps the encoder near its codes


class VectorQuantizer(nn.Module):
    """A codebook of ``codes`` vectors of size ``dim``, with usage tracking and dead-code restarts.

    ``forward(z, update=True)`` (in training, with gradients on) first re-initialises
    the codes unused for ``dead_after`` updates to random rows of ``z``, then quantizes,
    then counts which codes this batch used. ``usage`` (buffer, (codes,)) is the moving
    average of each code's share of the tokens; ``idle`` (buffer, (codes,) int64) the
    updates since each code was last used; ``restarts`` the number of codes
    re-initialised so far. All three are saved with the model.
    """

    def __init__(self, codes: int, dim: int, dead_after: int = 50, usage_decay: float = 0.99):
        super().__init__()
        self.codes, self.dim = codes, dim
        self.dead_after, self.usage_decay = dead_after, usage_decay
        self.codebook = nn.Parameter(torch.empty(codes, dim).uniform_(-1.0 / codes, 1.0 / codes))
        self.register_buffer("usage", torch.full((codes,), 1.0 / codes))
        self.register_buffer("idle", torch.zeros(codes, dtype=torch.int64))
        self.register_buffer("restarts", torch.zeros((), dtype=torch.int64))

    def indices(self, z: Tensor) -> Tensor:
        """The nearest code (Euclidean) of each row of z (N, D): (N,) int64."""
        codebook = self.codebook.detach()
        distance = (  # (N, K) squared distances, expanded
            z.square().sum(-1, keepdim=True) - 2.0 * z @ codebook.t() + codebook.square().sum(-1)
        )
        return distance.argmin(dim=-1)

    def embed(self, indices: Tensor) -> Tensor:
        """The codes of ``indices`` (...,): (..., D)."""
        return F.embedding(indices, self.codebook)

    def forward(self, z: Tensor, update: bool | None = None) -> Quantized:
        """Quantizes z (N, D). ``update`` (default: training with gradients on) restarts dead codes and counts use."""
        if update is None:
            update = self.training and torch.is_grad_enabled()
        if update:
            self.restart_dead(z.detach())
        indices = self.indices(z.detach())  # (N,)
        codes = self.embed(indices)  # (N, D)
        codebook_loss = F.mse_loss(codes, z.detach())
        commitment_loss = F.mse_loss(z, codes.detach())
        quantized = z + (codes - z).detach()  # straight-through estimator
        if update:
            self.track(indices)
        return Quantized(quantized, indices, codebook_loss, commitment_loss)

    @torch.no_grad()
    def track(self, indices: Tensor) -> None:
        """Counts this batch's use of every code into ``usage`` and ``idle``."""
        counts = torch.bincount(indices.flatten(), minlength=self.codes).to(self.usage.dtype)  # (K,)
        share = counts / counts.sum().clamp(min=1.0)
        self.usage.mul_(self.usage_decay).add_(share, alpha=1.0 - self.usage_decay)
        self.idle.add_(1).masked_fill_(counts > 0, 0)

    @torch.no_grad()
    def restart_dead(self, z: Tensor) -> int:
        """Re-initialises the codes idle for ``dead_after`` updates to random rows of z (N, D); returns how many."""
        dead = (self.idle >= self.dead_after).nonzero().flatten()  # (n,)
        if dead.numel() == 0 or z.shape[0] == 0:
            return 0
        rows = torch.randint(0, z.shape[0], (dead.numel(),), device=z.device)
        self.codebook[dead] = z[rows].to(self.codebook.dtype)
        self.idle[dead] = 0
        self.usage[dead] = 1.0 / self.codes
        self.restarts.add_(dead.numel())
        return int(dead.numel())


# --- the image tokenizer --------------------------------------------------------------


class ImageTokenizer(nn.Module):
    """(N, C, 64, 64) images in [0, 1] <-> (N, 8, 8) codes: three stride-2 convs down, three transposed up."""

    def __init__(self, channels: int, depth: int, codes: int, code_dim: int, dead_after: int, usage_decay: float):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, depth, 4, stride=2, padding=1), nn.ReLU(),  # 32
            nn.Conv2d(depth, 2 * depth, 4, stride=2, padding=1), nn.ReLU(),  # 16
            nn.Conv2d(2 * depth, 2 * depth, 4, stride=2, padding=1), nn.ReLU(),  # 8
            nn.Conv2d(2 * depth, code_dim, 1),
        )
        self.quantizer = VectorQuantizer(codes, code_dim, dead_after, usage_decay)
        self.decoder = nn.Sequential(
            nn.Conv2d(code_dim, 2 * depth, 3, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(2 * depth, 2 * depth, 4, stride=2, padding=1), nn.ReLU(),  # 16
            nn.ConvTranspose2d(2 * depth, depth, 4, stride=2, padding=1), nn.ReLU(),  # 32
            nn.ConvTranspose2d(depth, channels, 4, stride=2, padding=1),  # 64
        )

    def encode(self, images: Tensor) -> Tensor:
        """(N, C, 64, 64) -> (N, 8, 8, D) continuous encoder outputs."""
        return self.encoder(images - 0.5).permute(0, 2, 3, 1)

    def quantize(self, images: Tensor, update: bool | None = None) -> Quantized:
        """(N, C, 64, 64) -> ``Quantized`` with quantized (N, 8, 8, D) and indices (N, 8, 8)."""
        z = self.encode(images)  # (N, 8, 8, D)
        q = self.quantizer(z.reshape(-1, z.shape[-1]), update)
        return q._replace(quantized=q.quantized.reshape(z.shape), indices=q.indices.reshape(z.shape[:-1]))

    def tokens(self, images: Tensor) -> Tensor:
        """(N, C, 64, 64) -> (N, 64) int64 codes, row-major over the 8x8 grid."""
        z = self.encode(images)  # (N, 8, 8, D)
        return self.quantizer.indices(z.reshape(-1, z.shape[-1])).reshape(z.shape[0], -1)

    def decode(self, quantized: Tensor) -> Tensor:
        """(N, 8, 8, D) codes -> (N, C, 64, 64) logits of pixel intensities."""
        return self.decoder(quantized.permute(0, 3, 1, 2))

    def decode_tokens(self, tokens: Tensor) -> Tensor:
        """(N, 64) codes -> (N, C, 64, 64) logits."""
        return self.decode(self.quantizer.embed(tokens).reshape(tokens.shape[0], GRID, GRID, -1))


# --- the transformer with a KV cache ------------------------------------------------------


class KVCache:
    """Keys and values of every layer for the tokens seen so far: (B, heads, max_len, head_dim) buffers.

    ``length`` tokens are filled; each incremental pass writes its new tokens after them.
    """

    def __init__(self, layers: int, batch: int, heads: int, max_len: int, head_dim: int,
                 device: torch.device, dtype: torch.dtype):
        shape = (batch, heads, max_len, head_dim)
        self.keys = [torch.empty(shape, device=device, dtype=dtype) for _ in range(layers)]
        self.values = [torch.empty(shape, device=device, dtype=dtype) for _ in range(layers)]
        self.length = 0
        self.max_len = max_len


class SelfAttention(nn.Module):
    """Multi-head self-attention; with a cache, new queries attend to the cached keys and the new ones."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"the transformer width ({width}) must be a multiple of its heads ({heads})")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: Tensor, causal: bool, cache: KVCache | None = None, layer: int = 0,
                last: int | None = None) -> Tensor:
        """x (B, L, W) -> (B, L, W); with ``last``, the outputs of the last ``last`` tokens only (B, last, W)."""
        B, L, W = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, W // self.heads).permute(2, 0, 3, 1, 4)  # (B, H, L, d) each
        past = 0
        if cache is not None:
            past = cache.length
            cache.keys[layer][:, :, past : past + L] = k
            cache.values[layer][:, :, past : past + L] = v
            k = cache.keys[layer][:, :, : past + L]  # (B, H, past + L, d)
            v = cache.values[layer][:, :, : past + L]
        queries = L if last is None else last
        if queries < L:
            q = q[:, :, L - queries :]  # (B, H, queries, d)
        offset = past + L - queries  # position of the first query
        mask, is_causal = None, False
        if causal and queries > 1:
            if offset == 0:
                is_causal = True
            else:  # query i (at position offset + i) sees keys 0 .. offset + i
                mask = torch.ones(queries, past + L, dtype=torch.bool, device=x.device).tril(diagonal=offset)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)  # (B, H, queries, d)
        return self.proj(out.transpose(1, 2).reshape(B, queries, W))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: Tensor, causal: bool, cache: KVCache | None, layer: int, last: int | None = None) -> Tensor:
        x = (x if last is None else x[:, x.shape[1] - last :]) + self.attn(self.ln1(x), causal, cache, layer, last)
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    """``layers`` blocks of ``width`` and a final LayerNorm over (B, L, width) embeddings.

    ``forward(x, causal)`` is a full pass (causal-masked or bidirectional);
    ``forward(x, causal=True, cache=cache)`` an incremental one: the new tokens x see
    every token already in ``cache`` and, causally, each other, and are appended to it.

    >>> net = Transformer(width=16, layers=2, heads=2).eval()
    >>> x = torch.randn(1, 5, 16)
    >>> cache = net.cache(batch=1, max_len=5)
    >>> steps = torch.cat([net(x[:, :2], True, cache)] + [net(x[:, i : i + 1], True, cache) for i in range(2, 5)], 1)
    >>> torch.allclose(steps, net(x, causal=True), atol=1e-5)
    True
    """

    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.width, self.heads = width, heads
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(width)
        for name, p in self.named_parameters():  # GPT-2 initialisation
            if name.endswith("weight") and p.dim() == 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight", "mlp.2.weight")) else 0.02
                nn.init.normal_(p, std=std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def cache(self, batch: int, max_len: int) -> KVCache:
        """An empty cache for ``batch`` sequences of at most ``max_len`` tokens."""
        p = self.ln.weight
        return KVCache(len(self.blocks), batch, self.heads, max_len, self.width // self.heads, p.device, p.dtype)

    def forward(self, x: Tensor, causal: bool, cache: KVCache | None = None, last: int | None = None) -> Tensor:
        """(B, L, width) -> (B, L, width), or the outputs of the ``last`` tokens alone (B, last, width).

        ``last`` saves the last block's work on tokens whose outputs nobody reads
        (every block still computes their keys and values, and caches them).
        """
        L = x.shape[1]
        if cache is not None and cache.length + L > cache.max_len:
            raise ValueError(f"KV cache overflow: {cache.length} + {L} tokens > {cache.max_len}")
        if last is not None and not 1 <= last <= L:
            raise ValueError(f"last must be between 1 and the {L} tokens given, got {last}")
        for i, block in enumerate(self.blocks):
            x = block(x, causal, cache, i, last if i == len(self.blocks) - 1 else None)
        if cache is not None:
            cache.length += L
        return self.ln(x)


def sample_logits(logits: Tensor, temperature: float, top_k: int, generator: torch.Generator | None) -> Tensor:
    """One draw per row of logits (..., K): int64 (...). Temperature 0 takes the argmax; top_k > 0 keeps the k best.

    >>> logits = torch.tensor([[0.0, 5.0, 1.0]])
    >>> sample_logits(logits, 0.0, 0, None).tolist(), sample_logits(logits, 1.0, 1, None).tolist()
    ([1], [1])
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    if temperature != 1:
        logits = logits / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]  # (..., 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)  # (..., K)
    draws = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator)  # (N, 1)
    return draws.reshape(probs.shape[:-1])
