"""Small layers shared by the zoo: running normalisation, symlog, the MLP, its ensemble and initialisation.

``symlog`` / ``symexp`` are DreamerV3's squashing (Hafner et al. 2023, arXiv:2301.04104);
``RunningNorm`` merges batch statistics with Chan et al.'s parallel update.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["EnsembleLinear", "EnsembleMLP", "RunningNorm", "mlp", "module_key", "orthogonal_init", "symexp", "symlog"]


class RunningNorm(nn.Module):
    """Per-dimension running mean and variance of a stream of (N, D) samples, kept as buffers.

    Before the first ``update`` it is the identity (mean 0, std 1).
    """

    def __init__(self, dim: int, min_std: float = 1e-2):
        super().__init__()
        self.min_std = min_std
        self.register_buffer("count", torch.zeros(1, dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))

    @property
    def std(self) -> Tensor:
        return self.var.sqrt().clamp_min(self.min_std)

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Merges the statistics of ``x`` (N, D) into the running ones (Chan et al.'s parallel update)."""
        n = x.shape[0]
        if n == 0:
            return
        x = x.to(self.mean.dtype)
        old = float(self.count)
        total = old + n
        batch_mean = x.mean(0)
        batch_var = x.var(0, unbiased=False)
        delta = batch_mean - self.mean
        self.mean += delta * (n / total)
        self.var.copy_((self.var * old + batch_var * n + delta.square() * (old * n / total)) / total)
        self.count += n

    def normalize(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def denormalize(self, x: Tensor) -> Tensor:
        return x * self.std + self.mean


def symlog(x: Tensor) -> Tensor:
    """sign(x) log(1 + |x|) (DreamerV3): squashes large magnitudes, keeps small ones."""
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: Tensor) -> Tensor:
    """The inverse of ``symlog``."""
    return torch.sign(x) * torch.expm1(x.abs())


def mlp(in_dim: int, out_dim: int, hidden: int = 256, layers: int = 2, act: type[nn.Module] = nn.ELU,
        norm: type[nn.Module] | None = None) -> nn.Sequential:
    """``layers`` hidden layers of width ``hidden`` (Linear, ``norm`` if given, ``act``), then a linear output.

    ``norm=nn.LayerNorm, act=nn.SiLU`` gives Dreamer's MLP.

    >>> [type(m).__name__ for m in mlp(4, 2, hidden=8, layers=1, act=nn.SiLU, norm=nn.LayerNorm)]
    ['Linear', 'LayerNorm', 'SiLU', 'Linear']
    """
    mods: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers):
        mods += [nn.Linear(dim, hidden), *([norm(hidden)] if norm is not None else []), act()]
        dim = hidden
    mods.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*mods)


def orthogonal_init(module: nn.Module, gain: float = math.sqrt(2)) -> None:
    """Orthogonal weights and zero biases for every Linear layer of ``module``."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.orthogonal_(m.weight, gain=gain)
            nn.init.zeros_(m.bias)


def module_key(key: str) -> str:
    """An observation part's key as a ``ModuleDict`` key (those cannot be empty or contain dots).

    >>> module_key(""), module_key("agent.view")
    ('k_', 'k_agent_view')
    """
    return "k_" + key.replace(".", "_")


class EnsembleLinear(nn.Module):
    """``members`` independent linear layers in one batched matmul: (M, N, in) or (N, in) -> (M, N, out)."""

    def __init__(self, members: int, in_dim: int, out_dim: int, gain: float):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(members, 1, out_dim))
        with torch.no_grad():
            for w in self.weight:
                nn.init.orthogonal_(w, gain=gain)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            x = x.expand(self.weight.shape[0], -1, -1)  # (M, N, in), a view
        return torch.baddbmm(self.bias, x, self.weight)  # (M, N, out)


class EnsembleMLP(nn.Module):
    """``members`` MLPs of identical shape (ELU, orthogonal init) evaluated together."""

    def __init__(self, members: int, in_dim: int, out_dim: int, hidden: int, layers: int):
        super().__init__()
        dims = [in_dim] + [hidden] * layers
        self.hidden = nn.ModuleList(
            EnsembleLinear(members, a, b, math.sqrt(2)) for a, b in zip(dims[:-1], dims[1:], strict=True)
        )
        self.out = EnsembleLinear(members, dims[-1], out_dim, 1.0)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.hidden:
            x = F.elu(layer(x))  # (M, N, hidden)
        return self.out(x)  # (M, N, out)
