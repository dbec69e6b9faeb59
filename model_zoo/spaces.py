"""How a model sees an env's spaces: image parts, vector parts and actions.

Any Gymnasium observation space made of images (uint8 Box of shape (H, W, C)),
vectors (float Box, or Discrete as one-hot) or a Dict of them is split into named
image parts and one concatenated vector; ``ObsSpec`` converts both ways, so
every model reads and writes observations in the env's own format.

>>> import numpy as np
>>> from gymnasium import spaces
>>> spec = ObsSpec(spaces.Dict({"image": spaces.Box(0, 255, (64, 64, 3), np.uint8),
...                             "state": spaces.Box(-1, 1, (6,), np.float32)}), spaces.Discrete(5))
>>> spec.image_keys, spec.vector_dim, spec.action_dim
(('image',), 6, 5)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import Tensor

__all__ = ["GAME_KEY", "IMAGE_SIZE", "OBSERVATION_KINDS", "ObsSpec", "observation_kind"]

IMAGE_SIZE = 64  # images are resized to IMAGE_SIZE x IMAGE_SIZE inside models
GAME_KEY = "game"  # the Discrete part of a Dict observation that says which env a frame comes from (several games)
_BARE = ""  # the key of a bare (non-Dict) observation space
OBSERVATION_KINDS = ("image", "vector", "image+vector")
"""What an observation space holds: images only, vectors only, or both (a Dict); ``ObsSpec.kind``."""


def _is_image(space: gym.Space) -> bool:
    return (
        isinstance(space, spaces.Box)
        and space.dtype == np.uint8
        and len(space.shape) == 3
        and space.shape[-1] in (1, 3, 4)
    )


class ObsSpec:
    """Image and vector parts of an observation space, and the action encoding."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space):
        self.observation_space = observation_space
        self.action_space = action_space
        self.is_dict = isinstance(observation_space, spaces.Dict)
        parts = dict(observation_space.spaces) if self.is_dict else {_BARE: observation_space}
        self.images: dict[str, tuple[int, ...]] = {}
        self.vectors: dict[str, gym.Space] = {}
        for key, space in parts.items():
            if _is_image(space):
                self.images[key] = tuple(space.shape)
            elif isinstance(space, spaces.Box) and np.issubdtype(space.dtype, np.floating):
                self.vectors[key] = space
            elif isinstance(space, spaces.Discrete):
                self.vectors[key] = space
            else:
                raise TypeError(
                    f"unsupported observation space {key or 'observation'}: {space}; the zoo takes uint8 images "
                    "(H, W, C), float Boxes, Discrete, or a Dict of them"
                )
        self.image_keys = tuple(self.images)
        self.kind = "image+vector" if self.images and self.vectors else "image" if self.images else "vector"
        self.vector_dims = {k: _flat_dim(s) for k, s in self.vectors.items()}
        self.vector_dim = sum(self.vector_dims.values())
        if isinstance(action_space, spaces.Discrete):
            self.discrete = True
            self.action_dim = int(action_space.n)
        elif isinstance(action_space, spaces.Box) and np.issubdtype(action_space.dtype, np.floating):
            self.discrete = False
            self.action_dim = int(np.prod(action_space.shape))
            self.action_low = torch.as_tensor(np.broadcast_to(action_space.low, action_space.shape).flatten())
            self.action_high = torch.as_tensor(np.broadcast_to(action_space.high, action_space.shape).flatten())
        else:
            raise TypeError(f"unsupported action space {action_space}; the zoo takes Discrete or float Box actions")

    # --- observations ----------------------------------------------------------

    def parts(self, obs: Any) -> dict[str, Tensor]:
        """The observation as a dict of tensors (a bare space under the key '')."""
        if self.is_dict:
            if not isinstance(obs, Mapping):
                raise TypeError(f"expected a dict observation with keys {list(self.observation_space.spaces)}")
            return {k: torch.as_tensor(np.asarray(obs[k]) if not torch.is_tensor(obs[k]) else obs[k])
                    for k in self.observation_space.spaces}
        return {_BARE: obs if torch.is_tensor(obs) else torch.as_tensor(np.asarray(obs))}

    def to_torch(self, obs: Any, device: torch.device | str = "cpu") -> Tensor | dict[str, Tensor]:
        """A numpy (or dict of numpy) observation as tensors on ``device``, dtypes kept."""
        parts = {k: v.to(device) for k, v in self.parts(obs).items()}
        return parts if self.is_dict else parts[_BARE]

    def image(self, obs: Any, key: str, size: int = IMAGE_SIZE) -> Tensor:
        """Image part ``key`` as float (..., C, size, size) in [0, 1]."""
        x = self.parts(obs)[key]
        lead = x.shape[:-3]
        x = x.reshape((-1,) + tuple(x.shape[-3:])).permute(0, 3, 1, 2).float() / 255.0
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return x.reshape(lead + x.shape[1:])

    def vector(self, obs: Any) -> Tensor:
        """All vector parts as one float (..., vector_dim) tensor (Discrete parts one-hot)."""
        parts = self.parts(obs)
        out = []
        for key, space in self.vectors.items():
            x = parts[key]
            if isinstance(space, spaces.Discrete):
                out.append(F.one_hot((x.long() - int(space.start)), int(space.n)).float())
            else:
                out.append(x.float().reshape(tuple(x.shape[: x.dim() - len(space.shape)]) + (-1,)))
        if not out:
            first = next(iter(parts.values()))
            return torch.zeros(first.shape[:-3] + (0,), device=first.device)
        return torch.cat(out, dim=-1)

    def assemble(self, images: Mapping[str, Tensor], vector: Tensor | None) -> Tensor | dict[str, Tensor]:
        """Env-format observation from float images (..., C, h, w) in [0, 1] and a vector.

        Images are resized back, rounded to uint8; vector parts are clipped into
        their Box bounds (Discrete parts become their argmax); non-finite values
        become the nearest bound's safe value (0 where unbounded).
        """
        out: dict[str, Tensor] = {}
        for key, shape in self.images.items():
            x = images[key]
            lead = x.shape[:-3]
            x = torch.nan_to_num(x.reshape((-1,) + tuple(x.shape[-3:])), nan=0.0)
            if tuple(x.shape[-2:]) != shape[:2]:
                x = F.interpolate(x, size=shape[:2], mode="bilinear", align_corners=False)
            x = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
            out[key] = x.reshape(lead + tuple(shape))
        start = 0
        for key, space in self.vectors.items():
            dim = self.vector_dims[key]
            x = vector[..., start : start + dim]
            start += dim
            if isinstance(space, spaces.Discrete):
                out[key] = x.argmax(dim=-1) + int(space.start)
                continue
            low = torch.as_tensor(np.broadcast_to(space.low, space.shape).flatten(), dtype=x.dtype, device=x.device)
            high = torch.as_tensor(np.broadcast_to(space.high, space.shape).flatten(), dtype=x.dtype, device=x.device)
            x = torch.nan_to_num(x, nan=0.0)
            x = torch.maximum(torch.minimum(x, high), low)
            out[key] = x.to(torch.float32).reshape(tuple(x.shape[:-1]) + tuple(space.shape))
        return out if self.is_dict else out[_BARE]

    # --- actions ---------------------------------------------------------------

    def encode_action(self, action: Tensor) -> Tensor:
        """Actions as float (..., action_dim): one-hot for Discrete, flattened for Box."""
        action = torch.as_tensor(action)
        if self.discrete:
            return F.one_hot(action.long() - int(self.action_space.start), self.action_dim).float()
        shape = tuple(self.action_space.shape)
        return action.float().reshape(tuple(action.shape[: action.dim() - len(shape)]) + (-1,))


def observation_kind(observation_space: gym.Space) -> str:
    """The ``OBSERVATION_KINDS`` entry of a space: ``"image"``, ``"vector"`` or ``"image+vector"``.

    >>> observation_kind(spaces.Box(0, 255, (64, 64, 3), np.uint8)), observation_kind(spaces.Discrete(3))
    ('image', 'vector')
    """
    return ObsSpec(observation_space, spaces.Discrete(1)).kind


def _flat_dim(space: gym.Space) -> int:
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    return int(np.prod(space.shape))
