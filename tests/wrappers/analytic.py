"""A 1-D corridor and a world model of it that is exact, so dream returns can be asserted by hand.

Positions 0..LENGTH; the goal is LENGTH. Action 1 moves right, 0 moves left,
by ``speed`` cells (1; a causal intervention ``do={"speed": k}`` changes it),
clipped to the corridor. Arriving at the goal earns GOAL_REWARD and terminates;
every other step earns STEP_REWARD. The observation is the position, Box(0,
LENGTH, (1,)) float32.

``CorridorModel`` imagines exactly that (its state is the position and the
step count). Its config adds what the tests need: Gaussian reward noise of std
``temperature`` (so ``DreamEnv(temperature=...)`` and seeding are visible), a
NaN injected at step ``nan_at`` into the reward, the state or the decoded
observation, and an offset added to decoded observations (to push them out of
bounds). ``CausalCorridorModel`` is the same model with ``supports_do``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from model_zoo.base import Batch, Imagined, Obs, State, WorldModel

LENGTH = 5
GOAL_REWARD = 10.0
STEP_REWARD = -1.0
OBSERVATION_SPACE = spaces.Box(0.0, float(LENGTH), (1,), np.float32)
ACTION_SPACE = spaces.Discrete(2)


def move(pos: float, action: int, speed: int = 1) -> tuple[float, float, bool]:
    """The corridor's dynamics: (next position, reward, terminated)."""
    pos = float(min(max(pos + (speed if action == 1 else -speed), 0), LENGTH))
    done = pos == LENGTH
    return pos, GOAL_REWARD if done else STEP_REWARD, done


class CorridorEnv(gym.Env):
    """The real corridor. Starts at ``start``, or uniformly in 0..2 when ``start`` is None."""

    metadata = {"render_modes": []}

    def __init__(self, start: int | None = None):
        self.observation_space = OBSERVATION_SPACE
        self.action_space = ACTION_SPACE
        self.start = start
        self.speed = 1
        self.pos = 0.0
        self.resets = 0  # how many times the dream env asked for a real start

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.speed = int((options or {}).get("do", {}).get("speed", 1))
        self.pos = float(self.start if self.start is not None else self.np_random.integers(0, 3))
        self.resets += 1
        return np.array([self.pos], dtype=np.float32), {}

    def step(self, action):
        self.pos, reward, terminated = move(self.pos, int(action), self.speed)
        return np.array([self.pos], dtype=np.float32), reward, terminated, False, {}


@dataclass(frozen=True)
class CorridorConfig:
    temperature: float = 0.0  # std of Gaussian noise added to the reward
    nan_at: int = 0  # the imagined step (1, 2, ...) that produces a NaN; 0: never
    nan_in: str = "reward"  # where the NaN goes: "reward", "state" or "obs"
    obs_offset: float = 0.0  # added to decoded observations (and features)


class CorridorModel(WorldModel):
    """The corridor, imagined exactly. State: {"pos": (B,), "t": (B,)} float32."""

    Config = CorridorConfig

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        return torch.zeros(()), {}

    def initial_state(self, batch_size: int) -> State:
        return {"pos": torch.zeros(batch_size), "t": torch.zeros(batch_size)}

    def observe(self, state: State, action: Tensor, obs: Obs, is_first: Tensor) -> State:
        t = torch.where(is_first, torch.zeros_like(state["t"]), state["t"] + 1)
        return {"pos": torch.as_tensor(obs).float().reshape(-1), "t": t}

    def imagine(
        self,
        state: State,
        action: Tensor,
        do: Mapping[str, Any] | None = None,
        generator: torch.Generator | None = None,
    ) -> Imagined:
        self.check_do(do)
        speed = float((do or {}).get("speed", 1))
        step = torch.where(action == 1, speed, -speed)
        pos = (state["pos"] + step).clamp(0, LENGTH)
        terminated = pos == LENGTH
        reward = torch.where(terminated, GOAL_REWARD, STEP_REWARD)
        cfg = self.config
        if cfg.temperature:
            reward = reward + cfg.temperature * torch.randn(reward.shape, generator=generator)
        t = state["t"] + 1
        if cfg.nan_at:
            hit = t == cfg.nan_at
            if cfg.nan_in == "reward":
                reward = torch.where(hit, torch.nan, reward)
            elif cfg.nan_in == "state":
                pos = torch.where(hit, torch.nan, pos)
        return Imagined({"pos": pos, "t": t}, reward, terminated)

    def _view(self, state: State) -> Tensor:
        x = state["pos"] + self.config.obs_offset
        if self.config.nan_at and self.config.nan_in == "obs":
            x = torch.where(state["t"] == self.config.nan_at, torch.nan, x)
        return x

    def decode(self, state: State) -> Obs:
        return self._view(state)[:, None]  # (B, 1), raw: the dream env must guard it

    def features(self, state: State) -> Tensor:
        return torch.stack([self._view(state), state["t"]], dim=-1)  # (B, 2)


class CausalCorridorModel(CorridorModel):
    """The corridor model that takes ``do={"speed": k}``, k an integer in 1..LENGTH (checked, as a zoo model does)."""

    supports_do = True

    def check_do(self, do: Mapping[str, Any] | None) -> None:
        for name, value in (do or {}).items():
            if name != "speed":
                raise ValueError(f"do(): unknown causal variable {name!r}; valid names: speed")
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= LENGTH:
                raise ValueError(f"do(speed={value!r}): speed must be an integer in 1..{LENGTH}")
