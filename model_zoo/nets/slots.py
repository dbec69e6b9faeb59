"""Slot attention: a few slots compete for the positions of a feature map.

Locatello et al. (2020), "Object-Centric Learning with Slot Attention" (NeurIPS,
arXiv:2006.15055). The attention is normalised over the *slots* at every input
position (slots compete for positions), then the values are averaged per slot with
those weights, and each slot is updated by a GRU and a residual MLP; a few iterations.
The maps returned are those of the final slots (one more attention step after the last
update), so every parameter shapes them.
The module is equivariant under permutations of the slots: permuting the initial slots
permutes the output slots and their attention maps the same way, and nothing else.

The initial slots are an input here: the world model derives them from its recurrent
state (a top-down "attention schema"), instead of the paper's random draws.

>>> import torch
>>> attention = SlotAttention(in_dim=8, slot_dim=16, iters=2)
>>> slots, maps = attention(torch.randn(2, 64, 8), torch.randn(2, 5, 16))
>>> slots.shape, maps.shape, bool(torch.allclose(maps.sum(1), torch.ones(2, 64)))
(torch.Size([2, 5, 16]), torch.Size([2, 5, 64]), True)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["SlotAttention"]


class SlotAttention(nn.Module):
    """Inputs (B, N, in_dim) and initial slots (B, S, slot_dim) -> slots (B, S, slot_dim), maps (B, S, N)."""

    def __init__(self, in_dim: int, slot_dim: int, iters: int = 3, mlp_hidden: int | None = None, eps: float = 1e-8):
        super().__init__()
        if iters < 1:
            raise ValueError(f"iters must be >= 1, got {iters}")
        self.iters, self.eps, self.scale = iters, eps, slot_dim**-0.5
        self.norm_inputs = nn.LayerNorm(in_dim)
        self.norm_slots = nn.LayerNorm(slot_dim)
        self.norm_mlp = nn.LayerNorm(slot_dim)
        self.to_q = nn.Linear(slot_dim, slot_dim, bias=False)
        self.to_k = nn.Linear(in_dim, slot_dim, bias=False)
        self.to_v = nn.Linear(in_dim, slot_dim, bias=False)
        self.gru = nn.GRUCell(slot_dim, slot_dim)
        hidden = mlp_hidden or 2 * slot_dim
        self.mlp = nn.Sequential(nn.Linear(slot_dim, hidden), nn.ReLU(), nn.Linear(hidden, slot_dim))

    def forward(self, inputs: Tensor, slots: Tensor) -> tuple[Tensor, Tensor]:
        B, S, D = slots.shape
        x = self.norm_inputs(inputs)
        k, v = self.to_k(x), self.to_v(x)  # (B, N, D)
        for _ in range(self.iters):
            attn = self._attention(slots, k)  # (B, S, N)
            weights = (attn + self.eps) / (attn + self.eps).sum(dim=-1, keepdim=True)  # (B, S, N) mean per slot
            updates = torch.einsum("bsn,bnd->bsd", weights, v)  # (B, S, D)
            slots = self.gru(updates.reshape(B * S, D), slots.reshape(B * S, D)).reshape(B, S, D)
            slots = slots + self.mlp(self.norm_mlp(slots))  # (B, S, D)
        return slots, self._attention(slots, k)  # the maps of the final slots

    def _attention(self, slots: Tensor, k: Tensor) -> Tensor:
        """Softmax over the slots (they compete for each position): (B, S, N)."""
        q = self.to_q(self.norm_slots(slots))  # (B, S, D)
        return torch.softmax(torch.einsum("bsd,bnd->bsn", q, k) * self.scale, dim=1)
