"""Helpers shared by the campus_env tests: exact comparison, rollouts, a shortest-path policy."""

from __future__ import annotations

import functools
import math
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np

import campus_env
from campus_env import causal

ENV_ID = "CampusNav-v0"
OBS_MODES = ("dict", "pixels", "state")


def make(**kwargs: Any) -> gym.Env:
    return gym.make(ENV_ID, **kwargs)


def assert_identical(a: Any, b: Any, where: str = "value") -> None:
    """Bit-identical comparison of nested observations, infos and scalars (types included)."""
    assert type(a) is type(b), f"{where}: type {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for key in a:
            assert_identical(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype, f"{where}: dtype {a.dtype} != {b.dtype}"
        assert a.shape == b.shape, f"{where}: shape {a.shape} != {b.shape}"
        assert a.tobytes() == b.tobytes(), f"{where}: arrays differ at {np.argwhere(a != b)[:5].tolist()}"
    elif isinstance(a, (float, np.floating)):
        assert (math.isnan(a) and math.isnan(b)) or a == b, f"{where}: {a!r} != {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def without(info: dict, *keys: str) -> dict:
    return {k: v for k, v in info.items() if k not in keys}


def random_actions(n: int, seed: int = 0) -> list[int]:
    return [int(a) for a in np.random.default_rng(seed).integers(0, 5, size=n)]


def run(env: gym.Env, actions, seed: int | None = None, options: dict | None = None, reset: bool = True,
        autoreset_options: dict | None = None) -> list[tuple]:
    """Steps ``env`` through ``actions`` and records every transition.

    Starts with ``reset(seed, options)`` when ``reset`` is true; after an episode
    ends it resets by hand without a seed (with ``autoreset_options``) and records
    that reset as ``("reset", obs, info)``.
    """
    record: list[tuple] = []
    if reset:
        obs, info = env.reset(seed=seed, options=options)
        record.append(("reset", obs, info))
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        record.append(("step", obs, reward, terminated, truncated, info))
        if terminated or truncated:
            obs, info = env.reset(options=autoreset_options)
            record.append(("reset", obs, info))
    return record


def assert_same_trajectory(a: list[tuple], b: list[tuple], ignore_info: tuple[str, ...] = ()) -> None:
    assert len(a) == len(b), f"trajectory lengths {len(a)} != {len(b)}"
    for t, (x, y) in enumerate(zip(a, b, strict=True)):
        if ignore_info:
            x = x[:-1] + (without(x[-1], *ignore_info),)
            y = y[:-1] + (without(y[-1], *ignore_info),)
        assert_identical(x, y, f"transition {t}")


def core_snapshot(env) -> dict[str, Any]:
    """Every array and scalar of the simulation core and the env's generator state (for "unchanged")."""
    base = env.unwrapped
    snap = {
        name: (value.copy() if isinstance(value, np.ndarray) else value)
        for name, value in vars(base.core).items()
        if isinstance(value, (np.ndarray, int, float, str))
    }
    rng = getattr(base, "_np_random", None)
    if rng is not None:
        snap["np_random"] = rng.bit_generator.state
    for i, r in enumerate(getattr(base, "_rngs", [])):
        snap[f"rng{i}"] = r.bit_generator.state
    return snap


def assert_unchanged(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert before.keys() == after.keys()
    for name in before:
        assert_identical(before[name], after[name], name)


# --- a shortest-path policy over cells that never close ------------------------

_LAYOUT = campus_env.load_layout()
_H, _W = _LAYOUT.height, _LAYOUT.width
_OPEN = set(".,=")


def _distances(goal: tuple[int, int]) -> np.ndarray:
    """BFS distance to ``goal`` over walkway, grass and road; other entrances are dead ends."""
    dist = np.full((_H, _W), np.inf)
    dist[goal] = 0
    queue = deque([goal])
    while queue:
        r, c = queue.popleft()
        if (r, c) != goal and _LAYOUT.chars[r][c] not in _OPEN:
            continue
        for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if 0 <= rr < _H and 0 <= cc < _W and dist[rr, cc] == np.inf:
                ch = _LAYOUT.chars[rr][cc]
                if ch in _OPEN or (rr, cc) in _LAYOUT.entrances:
                    dist[rr, cc] = dist[r, c] + 1
                    queue.append((rr, cc))
    return dist


_DIST = {goal: _distances(goal) for goal in _LAYOUT.entrances}
_MOVES = ((1, -1, 0), (2, 1, 0), (3, 0, 1), (4, 0, -1))  # action, d_row, d_col


def cells_from_state(state: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """Agent and goal (row, col) from the first four entries of a "state" observation."""
    scale = np.array([_H - 1, _W - 1, _H - 1, _W - 1])
    r, c, gr, gc = np.rint(np.asarray(state[:4], dtype=np.float64) * scale).astype(int)
    return (int(r), int(c)), (int(gr), int(gc))


def shortest_path_action(state: np.ndarray) -> int:
    """The move that brings the agent one cell closer to its goal (0 when there is none)."""
    (r, c), goal = cells_from_state(state)
    dist = _DIST[goal]
    best, best_d = 0, dist[r, c]
    for action, dr, dc in _MOVES:
        rr, cc = r + dr, c + dc
        if 0 <= rr < _H and 0 <= cc < _W and dist[rr, cc] < best_d:
            best, best_d = action, dist[rr, cc]
    return best


def goal_distance(state: np.ndarray) -> float:
    (r, c), goal = cells_from_state(state)
    return float(_DIST[goal][r, c])


@functools.lru_cache(maxsize=8)
def _state_env(kwargs: tuple) -> gym.Env:
    return make(obs_mode="state", **dict(kwargs))


def natural_context(seed: int, **kwargs: Any) -> dict[str, Any]:
    """info["causal"] at reset of ``seed`` without interventions."""
    return _state_env(tuple(sorted(kwargs.items()))).reset(seed=seed)[1]["causal"]


def descendants(name: str) -> set[str]:
    children: dict[str, set[str]] = {v: set() for v in causal.CAUSAL_GRAPH}
    for child, parents in causal.CAUSAL_GRAPH.items():
        for parent in parents:
            children[parent].add(child)
    out: set[str] = set()
    stack = [name]
    while stack:
        for child in children[stack.pop()]:
            if child not in out:
                out.add(child)
                stack.append(child)
    return out
