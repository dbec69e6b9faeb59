"""What crosses a dream env's boundary: actions checked on the way in, observations guarded on the way out.

A dream must never crash a learner, and a learner's mistake must fail clearly
at the boundary rather than deep inside a model. Actions outside the action
space raise a ``ValueError`` (or ``TypeError``) naming the space; observations a
model decodes are made finite and put inside the observation space, and the
number of elements fixed is counted per env.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

__all__ = ["ObservationGuard", "check_actions", "first_step_actions", "to_numpy"]

Observation = np.ndarray | dict[str, np.ndarray]


def to_numpy(x: Any) -> Any:
    """Tensors (or a dict of them) as fresh numpy arrays (never sharing memory with a model's state)."""
    if isinstance(x, Mapping):
        return {k: to_numpy(v) for k, v in x.items()}
    if torch.is_tensor(x):
        x = x.detach()
        return x.numpy().copy() if x.device.type == "cpu" else x.cpu().numpy()
    return np.array(x)


class ObservationGuard:
    """Makes batched observations (n, ...) finite and inside ``space``, counting the elements fixed per row.

    Non-finite values become the bound nearest to them (NaN: 0 clipped into the
    bounds), finite values are clipped into the bounds, and the dtype is cast to
    the space's (rounding to integers is a cast, not counted).
    """

    def __init__(self, space: gym.Space):
        if isinstance(space, spaces.Dict):
            self.parts = {k: ObservationGuard(s) for k, s in space.spaces.items()}
            return
        self.parts = None
        self.space = space
        if isinstance(space, spaces.Discrete):
            self.dtype = space.dtype
            self.low = float(space.start)
            self.high = float(space.start + space.n - 1)
            self.full_range = False
        elif isinstance(space, spaces.Box):
            self.dtype = space.dtype
            info = np.finfo(space.dtype) if np.issubdtype(space.dtype, np.floating) else np.iinfo(space.dtype)
            self.low = np.maximum(np.broadcast_to(space.low, space.shape).astype(np.float64), float(info.min))
            self.high = np.minimum(np.broadcast_to(space.high, space.shape).astype(np.float64), float(info.max))
            # bounds that every finite value of the dtype meets: only finiteness needs checking
            self.full_range = bool(np.all(self.low == info.min) and np.all(self.high == info.max))
        else:
            raise TypeError(f"a dream env cannot guard observations of {space}; it takes Box, Discrete or a Dict")

    def __call__(self, x: Any, n: int) -> tuple[Observation, np.ndarray, np.ndarray]:
        """(guarded observation, elements fixed per row (n,) int64, rows with non-finite values (n,) bool)."""
        if self.parts is not None:
            return self._guard_dict(x, n)
        shape = (n,) + tuple(self.space.shape)
        x = np.asarray(x)
        if x.size != int(np.prod(shape)):
            raise ValueError(f"the model gave an observation of shape {x.shape}, expected {shape} for {self.space}")
        x = x.reshape(shape)
        if self._already_inside(x):
            return x, np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)  # the common case: nothing to fix
        xf = x.astype(np.float64)
        nonfinite = ~np.isfinite(xf)
        fill = np.clip(0.0, self.low, self.high)
        clipped = np.clip(np.where(np.isnan(xf), fill, xf), self.low, self.high)  # +-inf go to the bounds
        changed = nonfinite | (clipped != xf)
        if not np.issubdtype(self.dtype, np.floating):
            clipped = np.rint(clipped)
        rows = changed.reshape(n, -1)
        return clipped.astype(self.dtype), rows.sum(1), nonfinite.reshape(n, -1).any(1)

    def _already_inside(self, x: np.ndarray) -> bool:
        floating = np.issubdtype(x.dtype, np.floating)
        return bool(x.dtype == self.dtype and (not floating or np.isfinite(x).all()) and (
            self.full_range or (np.all(x >= self.low) and np.all(x <= self.high))
        ))

    def _guard_dict(self, x: Any, n: int) -> tuple[Observation, np.ndarray, np.ndarray]:
        if not isinstance(x, Mapping) or set(x) != set(self.parts):
            got = sorted(x) if isinstance(x, Mapping) else type(x).__name__
            raise TypeError(f"the model decoded {got}, expected a dict with keys {sorted(self.parts)}")
        out, count, bad = {}, np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
        for key, guard in self.parts.items():
            out[key], fixed, nonfinite = guard(x[key], n)
            count += fixed
            bad |= nonfinite
        return out, count, bad


def _check_discrete_actions(space: spaces.Discrete, action: Any, lead: tuple[int, ...]) -> np.ndarray:
    start = int(space.start)
    if not lead and isinstance(action, (int, np.integer)) and not isinstance(action, (bool, np.bool_)):
        if not start <= action < start + int(space.n):  # before the cast: a huge Python int overflows int64
            raise ValueError(f"action must be in {start}..{start + int(space.n) - 1} ({space}), got {action!r}")
        arr = np.asarray(action, dtype=np.int64)
    else:
        arr = np.asarray(action)
        if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise TypeError(f"action must be an integer of {space}, got {action!r} ({type(action).__name__})")
        if arr.shape != lead:
            raise ValueError(f"action must have shape {lead} for {space}, got shape {arr.shape}: {action!r}")
        if np.issubdtype(arr.dtype, np.floating) and not (np.isfinite(arr).all() and np.all(arr == np.rint(arr))):
            raise ValueError(f"action must be an integer of {space}, got {action!r}")
    if np.any(arr < start) or np.any(arr >= start + int(space.n)):
        raise ValueError(f"action must be in {start}..{start + int(space.n) - 1} ({space}), got {action!r}")
    return arr.astype(np.int64).reshape(lead or (1,))


def _check_box_actions(space: spaces.Box, action: Any, lead: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(action)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"action must be a float array of {space}, got {action!r} ({type(action).__name__})")
    if arr.shape != lead + space.shape:
        raise ValueError(f"action must have shape {lead + space.shape} for {space}, got shape {arr.shape}")
    arr = arr.astype(space.dtype)
    if not np.isfinite(arr).all():
        raise ValueError(f"action must be finite, got {action!r}")
    if np.any(arr < space.low) or np.any(arr > space.high):
        raise ValueError(f"action is outside {space}: {action!r}")
    return arr.reshape((lead or (1,)) + space.shape)


def check_actions(space: gym.Space, action: Any, n: int | None) -> np.ndarray:
    """Checks one action (``n`` None) or a batch of ``n``; returns a batched numpy array, or raises clearly."""
    lead = () if n is None else (n,)
    if isinstance(space, spaces.Discrete):
        return _check_discrete_actions(space, action, lead)
    if isinstance(space, spaces.Box):
        return _check_box_actions(space, action, lead)
    raise TypeError(f"a dream env takes Discrete or Box actions, the model has {space}")


def first_step_actions(space: gym.Space, n: int) -> np.ndarray:
    """The placeholder action of an episode's first step (the smallest Discrete id; zero clipped into a Box)."""
    if isinstance(space, spaces.Discrete):
        return np.full(n, int(space.start), dtype=np.int64)
    zero = np.clip(np.zeros(space.shape, dtype=space.dtype), space.low, space.high)
    return np.broadcast_to(zero, (n,) + space.shape).copy()
