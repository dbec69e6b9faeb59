"""Small building blocks shared by the zoo: MLPs and a 64x64 convolutional encoder/decoder.

The convolutional pair follows Ha & Schmidhuber's World Models V: four stride-2
convolutions (64 -> 31 -> 14 -> 6 -> 2) and four transposed convolutions back.
``ObsEncoder`` / ``ObsDecoder`` apply them to every image part of an observation
and an MLP to the vector part (see ``model_zoo.spaces.ObsSpec``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model_zoo.spaces import IMAGE_SIZE, ObsSpec

__all__ = ["ConvDecoder", "ConvEncoder", "ObsDecoder", "ObsEncoder", "RunningNorm", "mlp", "orthogonal_init", "symexp",
           "symlog"]


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


def mlp(in_dim: int, out_dim: int, hidden: int = 256, layers: int = 2, act: type[nn.Module] = nn.ELU) -> nn.Sequential:
    """``layers`` hidden layers of width ``hidden`` with ``act``, then a linear output."""
    mods: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers):
        mods += [nn.Linear(dim, hidden), act()]
        dim = hidden
    mods.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*mods)


def orthogonal_init(module: nn.Module, gain: float = math.sqrt(2)) -> None:
    """Orthogonal weights and zero biases for every Linear layer of ``module``."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.orthogonal_(m.weight, gain=gain)
            nn.init.zeros_(m.bias)


class ConvEncoder(nn.Module):
    """(N, C, 64, 64) float images in [0, 1] -> (N, out_dim) features, out_dim = depth * 8 * 2 * 2."""

    def __init__(self, channels: int, depth: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, depth, 4, stride=2), nn.ReLU(),  # 31
            nn.Conv2d(depth, depth * 2, 4, stride=2), nn.ReLU(),  # 14
            nn.Conv2d(depth * 2, depth * 4, 4, stride=2), nn.ReLU(),  # 6
            nn.Conv2d(depth * 4, depth * 8, 4, stride=2), nn.ReLU(),  # 2
        )
        self.out_dim = depth * 8 * 2 * 2

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x - 0.5).flatten(1)  # (N, out_dim)


class ConvDecoder(nn.Module):
    """(N, in_dim) -> (N, C, 64, 64) logits of pixel intensities (apply sigmoid for [0, 1])."""

    def __init__(self, in_dim: int, channels: int, depth: int = 32):
        super().__init__()
        self.fc = nn.Linear(in_dim, depth * 32)
        self.net = nn.Sequential(
            nn.ConvTranspose2d(depth * 32, depth * 4, 5, stride=2), nn.ReLU(),  # 5
            nn.ConvTranspose2d(depth * 4, depth * 2, 5, stride=2), nn.ReLU(),  # 13
            nn.ConvTranspose2d(depth * 2, depth, 6, stride=2), nn.ReLU(),  # 30
            nn.ConvTranspose2d(depth, channels, 6, stride=2),  # 64
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.net(self.fc(z)[:, :, None, None])


class ObsEncoder(nn.Module):
    """Any observation (images and/or a vector, leading dims ...) -> (..., out_dim) features."""

    def __init__(self, spec: ObsSpec, depth: int = 32, vector_hidden: int = 128):
        super().__init__()
        self.spec = spec
        self.convs = nn.ModuleDict({_safe(k): ConvEncoder(s[-1], depth) for k, s in spec.images.items()})
        self.vector_net = (
            mlp(spec.vector_dim, vector_hidden, vector_hidden, 1) if spec.vector_dim else None
        )
        self.out_dim = sum(c.out_dim for c in self.convs.values()) + (vector_hidden if spec.vector_dim else 0)

    def forward(self, obs) -> Tensor:
        feats = []
        lead = None
        for key in self.spec.image_keys:
            x = self.spec.image(obs, key)  # (..., C, 64, 64)
            lead = x.shape[:-3]
            feats.append(self.convs[_safe(key)](x.reshape((-1,) + tuple(x.shape[-3:]))))
        if self.vector_net is not None:
            v = self.spec.vector(obs)
            lead = v.shape[:-1]
            feats.append(self.vector_net(v.reshape(-1, v.shape[-1])))
        return torch.cat(feats, dim=-1).reshape(tuple(lead) + (-1,))


class ObsDecoder(nn.Module):
    """(..., in_dim) features -> image logits per part and the vector; reconstruction losses."""

    def __init__(self, spec: ObsSpec, in_dim: int, depth: int = 32, vector_hidden: int = 128):
        super().__init__()
        self.spec = spec
        self.deconvs = nn.ModuleDict({_safe(k): ConvDecoder(in_dim, s[-1], depth) for k, s in spec.images.items()})
        self.vector_net = mlp(in_dim, spec.vector_dim, vector_hidden, 1) if spec.vector_dim else None

    def forward(self, h: Tensor) -> tuple[dict[str, Tensor], Tensor | None]:
        lead = h.shape[:-1]
        flat = h.reshape(-1, h.shape[-1])
        images = {
            k: self.deconvs[_safe(k)](flat).reshape(tuple(lead) + (-1, IMAGE_SIZE, IMAGE_SIZE))
            for k in self.spec.image_keys
        }
        vector = self.vector_net(flat).reshape(tuple(lead) + (-1,)) if self.vector_net is not None else None
        return images, vector

    def loss(self, h: Tensor, obs) -> tuple[Tensor, dict[str, float]]:
        """Sum over parts of the per-element MSE (images in [0, 1] after a sigmoid)."""
        images, vector = self(h)
        total = h.new_zeros(())
        metrics: dict[str, float] = {}
        for key, logits in images.items():
            err = F.mse_loss(torch.sigmoid(logits), self.spec.image(obs, key))
            metrics[f"recon_{key or 'image'}"] = float(err)
            total = total + err
        if vector is not None:
            err = F.mse_loss(vector, self.spec.vector(obs))
            metrics["recon_vector"] = float(err)
            total = total + err
        return total, metrics

    def decode(self, h: Tensor):
        """Env-format observation (uint8 images, clipped vectors)."""
        images, vector = self(h)
        return self.spec.assemble({k: torch.sigmoid(v) for k, v in images.items()}, vector)


def _safe(key: str) -> str:
    """ModuleDict keys cannot be empty or contain dots."""
    return "k_" + key.replace(".", "_")
