"""Tiny spaces, random batches and a few Adam steps: the set-up the model tests share.

Every world model is tested on the same kinds of space (an image, a vector, a Dict of
them; Discrete and Box actions) with small random batches in the env's format. The
batches are drawn from one numpy generator in a fixed order (observations, actions,
rewards), so a seed names one batch.
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces

from model_zoo import registry
from model_zoo.base import Batch
from model_zoo.spaces import observation_kind

IMAGE = spaces.Box(0, 255, (64, 64, 3), np.uint8)
VECTOR = spaces.Box(-1.0, 1.0, (5,), np.float32)
OBS_SPACES = {
    "dict": spaces.Dict({"image": IMAGE, "state": spaces.Box(-1.0, 1.0, (6,), np.float32)}),
    "image": IMAGE,
    "vector": VECTOR,
}
BOX_ACTIONS = spaces.Box(-1.0, 1.0, (2,), np.float32)

Seed = int | np.random.Generator


def takes(model_id: str, observation_space: spaces.Space) -> bool:
    """Whether model ``model_id`` takes ``observation_space``: its kind is one of the class's ``observation_kinds``."""
    return observation_kind(observation_space) in registry.spec(model_id).load_class().observation_kinds


def cheapest_space(model_id: str) -> spaces.Space:
    """The cheapest of the shared spaces the model takes: the vector, else the image, else the Dict."""
    return next(s for s in (VECTOR, IMAGE, OBS_SPACES["dict"]) if takes(model_id, s))


def random_obs(space: spaces.Space, lead: tuple[int, ...], rng: Seed = 0):
    """Random observations of leading shape ``lead`` in the env's format, as tensors (a dict for Dict spaces).

    ``rng`` is a numpy generator (drawn from in the Dict's key order) or a seed for a fresh one.
    """
    rng = np.random.default_rng(rng)
    if isinstance(space, spaces.Dict):
        return {key: random_obs(sub, lead, rng) for key, sub in space.spaces.items()}
    if isinstance(space, spaces.Discrete):
        return torch.as_tensor(rng.integers(0, space.n, lead))
    if space.dtype == np.uint8:
        return torch.as_tensor(rng.integers(0, 256, lead + space.shape, dtype=np.uint8))
    return torch.as_tensor(rng.uniform(space.low, space.high, lead + space.shape).astype(np.float32))


def random_actions(space: spaces.Space, lead: tuple[int, ...], rng: Seed = 0) -> torch.Tensor:
    """Random actions of leading shape ``lead``: int64 ids 0..n-1 for Discrete (add a space's ``start``
    yourself), uniform inside the bounds for Box."""
    rng = np.random.default_rng(rng)
    if isinstance(space, spaces.Discrete):
        return torch.as_tensor(rng.integers(0, space.n, lead), dtype=torch.int64)
    return torch.as_tensor(rng.uniform(space.low, space.high, lead + space.shape).astype(np.float32))


def random_batch(obs_space: spaces.Space, action_space: spaces.Space, B: int = 3, T: int = 5, seed: int = 0,
                 boundary: int | None = None) -> Batch:
    """A (B, T) batch of random observations, actions and rewards, each row starting an episode.

    With ``boundary``, row 0 also ends an episode at step ``boundary - 1`` and starts the next at
    ``boundary``: a window that crosses an episode boundary.
    """
    rng = np.random.default_rng(seed)
    is_first = torch.zeros(B, T, dtype=torch.bool)
    is_first[:, 0] = True
    terminated = torch.zeros(B, T, dtype=torch.bool)
    if boundary is not None:
        is_first[0, boundary] = True
        terminated[0, boundary - 1] = True
    return Batch(
        obs=random_obs(obs_space, (B, T), rng),
        action=random_actions(action_space, (B, T), rng),
        reward=torch.as_tensor(rng.normal(size=(B, T)).astype(np.float32)),
        terminated=terminated,
        is_first=is_first,
    )


def adam_steps(model: torch.nn.Module, batch: Batch, steps: int, lr: float = 3e-3) -> list[tuple[float, dict]]:
    """``steps`` Adam steps of ``model.loss`` on one fixed batch; each step's loss (before its update) and
    metrics."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        loss, metrics = model.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append((float(loss.detach()), metrics))
    return history


def drifting_batch(t: int = 8) -> Batch:
    """Two episodes of a 3-element vector: element 0 constant (0.3 / -0.5), element 1 rising 0.1 a step, element 2
    falling 0.05 a step."""
    steps = torch.arange(t, dtype=torch.float32)
    obs = torch.zeros(2, t, 3)
    obs[0, :, 0], obs[1, :, 0] = 0.3, -0.5
    obs[:, :, 1] = -0.4 + 0.1 * steps
    obs[:, :, 2] = 0.2 - 0.05 * steps
    first = torch.zeros(2, t, dtype=torch.bool)
    first[:, 0] = True
    return Batch(obs=obs, action=torch.zeros(2, t, dtype=torch.int64), reward=torch.zeros(2, t),
                 terminated=torch.zeros(2, t, dtype=torch.bool), is_first=first)
