"""The 64x64 convolutional encoder and decoder of World Models' V, and their use on any observation.

Ha & Schmidhuber (2018), "World Models" (arXiv:1803.10122): four stride-2
convolutions (64 -> 31 -> 14 -> 6 -> 2) and four transposed convolutions back.
``ObsEncoder`` / ``ObsDecoder`` apply them to every image part of an observation
and an MLP to the vector part (see ``model_zoo.spaces.ObsSpec``);
``reconstruction_error`` is the summed squared error per frame the zoo's
autoencoding models train on.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from model_zoo.nets.layers import mlp, module_key
from model_zoo.spaces import IMAGE_SIZE, ObsSpec

__all__ = ["ConvDecoder", "ConvEncoder", "ObsDecoder", "ObsEncoder", "reconstruction_error"]


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
        self.convs = nn.ModuleDict({module_key(k): ConvEncoder(s[-1], depth) for k, s in spec.images.items()})
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
            feats.append(self.convs[module_key(key)](x.reshape((-1,) + tuple(x.shape[-3:]))))
        if self.vector_net is not None:
            v = self.spec.vector(obs)
            lead = v.shape[:-1]
            feats.append(self.vector_net(v.reshape(-1, v.shape[-1])))
        return torch.cat(feats, dim=-1).reshape(tuple(lead) + (-1,))


class ObsDecoder(nn.Module):
    """(..., in_dim) features -> image logits per part (..., C, 64, 64) and the vector (..., V) or None."""

    def __init__(self, spec: ObsSpec, in_dim: int, depth: int = 32, vector_hidden: int = 128):
        super().__init__()
        self.spec = spec
        self.deconvs = nn.ModuleDict({module_key(k): ConvDecoder(in_dim, s[-1], depth)
                                      for k, s in spec.images.items()})
        self.vector_net = mlp(in_dim, spec.vector_dim, vector_hidden, 1) if spec.vector_dim else None

    def forward(self, h: Tensor, vector: bool = True) -> tuple[dict[str, Tensor], Tensor | None]:
        """Image logits per part and the vector; ``vector=False`` skips the vector (None), for a caller that has it."""
        lead = h.shape[:-1]
        flat = h.reshape(-1, h.shape[-1])
        images = {
            k: self.deconvs[module_key(k)](flat).reshape(tuple(lead) + (-1, IMAGE_SIZE, IMAGE_SIZE))
            for k in self.spec.image_keys
        }
        if self.vector_net is None or not vector:
            return images, None
        return images, self.vector_net(flat).reshape(tuple(lead) + (-1,))

    def decode(self, h: Tensor):
        """Env-format observation (uint8 images, clipped vectors)."""
        images, vector = self(h)
        return self.spec.assemble({k: torch.sigmoid(v) for k, v in images.items()}, vector)


def reconstruction_error(spec: ObsSpec, images: dict[str, Tensor], vector: Tensor | None, obs,
                         vector_weight: float, vector_target: Tensor | None = None
                         ) -> tuple[Tensor, dict[str, Tensor]]:
    """Summed squared error per frame (...,) of a decoded observation, and the mean error of each part.

    ``images``: pixel logits per part (..., C, 64, 64), compared after a sigmoid with the
    observation's images in [0, 1]; ``vector`` (..., V): compared with ``vector_target``
    (default: the observation's vector part), its summed error weighted by ``vector_weight``
    (a vector element counts as much as that many pixels). Metrics: ``mse_<part>`` and
    ``mse_vector`` (means over elements).
    """
    recon: Tensor | None = None
    metrics: dict[str, Tensor] = {}
    for key, logits in images.items():
        err = (torch.sigmoid(logits) - spec.image(obs, key).to(logits.device)).square()  # (..., C, 64, 64)
        recon = err.flatten(-3).sum(-1) if recon is None else recon + err.flatten(-3).sum(-1)
        metrics[f"mse_{key or 'image'}"] = err.mean()
    if vector is not None:
        target = spec.vector(obs).to(vector.device) if vector_target is None else vector_target
        err = (vector - target).square()  # (..., V)
        part = vector_weight * err.sum(-1)
        recon = part if recon is None else recon + part
        metrics["mse_vector"] = err.mean()
    if recon is None:
        raise ValueError("reconstruction_error needs at least one image part or a vector part")
    return recon, metrics
