"""Several envs' episodes in one observation and action space, so that one model can learn them all.

Each game's observation must hold exactly one uint8 image (a bare image space, or a
Dict with one image part; its vector parts are dropped), and all images the same number
of channels. ``Games`` maps them to one Dict space::

    {"image": uint8 (size, size, C), "game": Discrete(n)}

frames resized to ``size`` x ``size`` by area averaging (an exact 2x2 mean from 128 to
64 pixels; CarRacing-v3's 96 pixels to 64), and ``"game"`` (``model_zoo.spaces.GAME_KEY``)
the game's index. Actions become one float Box: each game's action encoded as the zoo
encodes it (one-hot for Discrete, flattened for Box) in its own block of columns, zeros in
the others' blocks; ``env_action`` maps a row back. Causal codes are dropped (the games'
variables differ); the game index is also kept in each episode's ``metadata["game"]``.

Nothing here knows any env: a multi-task model in the spirit of Gato (Reed et al. 2022,
arXiv:2205.06175) or the multi-game Decision Transformer (Lee et al. 2022, arXiv:2205.15241),
where the game is one more input.

>>> import numpy as np
>>> from gymnasium import spaces
>>> games = Games([(spaces.Box(0, 255, (64, 64, 3), np.uint8), spaces.Discrete(3)),
...                (spaces.Box(0, 255, (96, 96, 3), np.uint8), spaces.Box(-1, 1, (2,), np.float32))])
>>> games.observation_space["image"].shape, games.action_space.shape
((64, 64, 3), (5,))
>>> games.obs(1, np.zeros((96, 96, 3), np.uint8))["image"].shape, games.action(0, 2)
((64, 64, 3), array([0., 0., 1., 0., 0.], dtype=float32))
>>> games.env_action(1, games.action(1, [0.5, -1.0]))
array([ 0.5, -1. ], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces

from model_zoo.data.episodes import Episode
from model_zoo.spaces import GAME_KEY, IMAGE_SIZE, ObsSpec

__all__ = ["GAME_KEY", "IMAGE_KEY", "Games"]

IMAGE_KEY = "image"


class Games:
    """One observation and action space for ``game_spaces``, a list of (observation_space, action_space)."""

    def __init__(self, game_spaces: Sequence[tuple[gym.Space, gym.Space]], size: int = IMAGE_SIZE):
        if len(game_spaces) < 1:
            raise ValueError("Games needs at least one (observation_space, action_space) pair")
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive integer, got {size!r}")
        self.specs = [ObsSpec(*pair) for pair in game_spaces]
        for i, spec in enumerate(self.specs):
            if len(spec.images) != 1:
                raise ValueError(f"game {i}: Games takes observations with exactly one uint8 image part, got "
                                 f"{len(spec.images)} in {spec.observation_space}")
        channels = {next(iter(spec.images.values()))[-1] for spec in self.specs}
        if len(channels) != 1:
            raise ValueError(f"the games' images have different channel counts {sorted(channels)}")
        self.size = size
        self.observation_space = spaces.Dict({
            IMAGE_KEY: spaces.Box(0, 255, (size, size, channels.pop()), np.uint8),
            GAME_KEY: spaces.Discrete(len(self.specs))})
        lows, highs, self.blocks, start = [], [], [], 0
        for spec in self.specs:
            if spec.discrete:
                low, high = np.zeros(spec.action_dim), np.ones(spec.action_dim)
            else:
                low, high = spec.action_low.numpy(), spec.action_high.numpy()
            lows.append(low)
            highs.append(high)
            self.blocks.append(slice(start, start + spec.action_dim))
            start += spec.action_dim
        self.action_space = spaces.Box(np.concatenate(lows).astype(np.float32),
                                       np.concatenate(highs).astype(np.float32), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.specs)

    def _check(self, game: int) -> int:
        if not isinstance(game, int | np.integer) or not 0 <= int(game) < len(self.specs):
            raise ValueError(f"game must be an index in [0, {len(self.specs)}), got {game!r}")
        return int(game)

    def image(self, game: int, obs: Any) -> np.ndarray:
        """The game's image part of ``obs`` (..., H, W, C), resized to (..., size, size, C) uint8."""
        spec = self.specs[self._check(game)]
        x = spec.parts(obs)[spec.image_keys[0]]
        lead = x.shape[:-3]
        x = x.reshape((-1,) + tuple(x.shape[-3:]))
        if tuple(x.shape[1:3]) != (self.size, self.size):
            x = F.interpolate(x.permute(0, 3, 1, 2).float(), size=(self.size, self.size), mode="area")
            x = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        return x.reshape(lead + tuple(x.shape[1:])).cpu().numpy()

    def obs(self, game: int, obs: Any) -> dict[str, np.ndarray]:
        """The game's observation (or a batch of them) in the shared space."""
        image = self.image(game, obs)
        return {IMAGE_KEY: image, GAME_KEY: np.full(image.shape[:-3], self._check(game), dtype=np.int64)}

    def action(self, game: int, action: Any) -> np.ndarray:
        """The game's action (or a batch) as rows of the shared Box, zeros outside the game's block."""
        spec = self.specs[self._check(game)]
        encoded = spec.encode_action(torch.as_tensor(np.asarray(action))).numpy()  # (..., A_game)
        out = np.zeros(encoded.shape[:-1] + self.action_space.shape, dtype=np.float32)
        out[..., self.blocks[game]] = encoded
        return out

    def env_action(self, game: int, action: Any) -> Any:
        """A row (or rows) of the shared Box as the game's own action: argmax of a Discrete block."""
        spec = self.specs[self._check(game)]
        block = np.asarray(action, dtype=np.float32)[..., self.blocks[game]]
        if spec.discrete:
            return block.argmax(-1) + int(spec.action_space.start)
        return block.reshape(block.shape[:-1] + tuple(spec.action_space.shape))

    def episode(self, game: int, episode: Episode) -> Episode:
        """One of the game's episodes in the shared spaces (causal codes dropped)."""
        game = self._check(game)
        return replace(episode, obs=self.obs(game, episode.obs), action=self.action(game, episode.action),
                       causal=None, metadata={**episode.metadata, "game": game})

    def episodes(self, per_game: Sequence[Sequence[Episode]]) -> list[Episode]:
        """Every game's episodes (``per_game[i]`` those of game i) in the shared spaces, game after game."""
        if len(per_game) != len(self.specs):
            raise ValueError(f"expected the episodes of {len(self.specs)} games, got {len(per_game)} lists")
        return [self.episode(game, e) for game, episodes in enumerate(per_game) for e in episodes]
