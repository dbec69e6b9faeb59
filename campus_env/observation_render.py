"""A CampusNav-v0 state observation drawn as the env draws itself: the whole campus, in the context it encodes.

``render_observation`` reads an ``obs_mode="state"`` vector (or a dict
observation's ``"state"`` and ``"causal"`` entries), whether the env or a world
model's decoder wrote it, and sets a one-campus core in that situation: the
agent and the goal at the cells the observation names (as ``semantic_state``
reads them) and every causal variable held by ``do()`` at the value the causal
vector encodes. ``render.campus_frame``, the code behind ``env.render()``, then
draws it, so a dreamed observation and a real one are drawn alike: weather,
open and closed buildings and roads, crowd dots and the status strip. What a
state vector does not carry (the step count, blocked and slipped moves) is left
out of the strip; without the causal part the campus is drawn on a plain
weekday noon and the strip says so. The env names this function in
``metadata["render_observation"]``.

>>> import gymnasium as gym
>>> import campus_env
>>> env = gym.make("CampusNav-v0", obs_mode="state", render_mode="rgb_array")
>>> obs, info = env.reset(seed=0)
>>> frame = render_observation(obs, env)
>>> frame.shape == env.render().shape, frame.dtype
(True, dtype('uint8'))
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from campus_env import causal
from campus_env import layout as lay
from campus_env.core import CampusCore
from campus_env.env import status_lines
from campus_env.render import campus_frame
from campus_env.schema import CAUSAL_SLICES, STATE_SLICES
from campus_env.semantics import _vector_parts

__all__ = ["observation_context", "render_observation"]

UNOBSERVED_CONTEXT = {"day": 0, "hour": 12.0, "semester": "fall", "weather": "sunny", "gameday": False,
                      "road_closure": False, "crowd": 0.0}
"""The context a campus is drawn in when the observation leaves the causal variables out."""


def render_observation(obs: Any, env: Any = None) -> np.ndarray:
    """The (H, W, 3) uint8 whole-campus frame of one state observation, laid out as ``env.render()``'s.

    Args:
        obs: one flat ``obs_mode="state"`` vector (with or without the causal
            part), or a dict observation with a ``"state"`` entry (and
            ``"causal"`` if observed); the image entry, if any, is not read.
        env: a CampusNav-v0 env (single or vector, wrapped or not) whose campus
            layout to draw; the default layout when None.
    """
    state, causal_vector = _single_vector_parts(obs)
    base = _base_core() if env is None else _core_of(env)
    scene = base.fork(np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.uint64))
    context = UNOBSERVED_CONTEXT if causal_vector is None else observation_context(causal_vector)
    layout = scene.layout
    agent, goal = _cell(state, "agent", layout), _cell(state, "goal", layout)
    building = int(np.argmin(((np.array(layout.entrances) - goal) ** 2).sum(axis=1)))  # the goal's name
    scene.reset(np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.uint64), causal.validate_do(context),
                goal=building)
    scene.entrance_flat = scene.entrance_flat.copy()  # the fork shares the table with its base
    scene.entrance_flat[building] = layout.flat(*goal)  # drawn where the observation puts it, even off a door
    scene.pos = np.array([layout.flat(*agent)], dtype=np.int64)
    first = status_lines(scene, 0)[0] if causal_vector is not None else "context not in the observation"
    second = f"to the {lay.BUILDING_NAMES[building]}" + ("   GOAL REACHED!" if agent == goal else "")
    return campus_frame(scene, 0, [first, second])


def observation_context(causal_vector: np.ndarray) -> dict[str, Any]:
    """The values of the causal variables a (CAUSAL_DIM,) causal vector encodes, as ``do()`` takes them.

    One-hots are read by their largest entry, flags as set above one half, the
    clock to the nearest minute; values outside the domain are clipped into it.

    >>> from campus_env.schema import CAUSAL_DIM
    >>> c = np.zeros(CAUSAL_DIM); c[CAUSAL_SLICES["weather"].start + 3] = 1; c[CAUSAL_SLICES["crowd"]] = 1.4
    >>> context = observation_context(c)
    >>> context["weather"], context["hour"], context["crowd"]
    ('snowy', 7.0, 1.0)
    """
    c = np.nan_to_num(np.asarray(causal_vector, dtype=np.float64), nan=0.0)
    flag = lambda name: bool(c[CAUSAL_SLICES[name]][0] > 0.5)  # noqa: E731
    clock = float(np.clip(c[CAUSAL_SLICES["hour"]][0], 0.0, 1.0))
    minute = round(causal.FIRST_MINUTE + clock * (causal.LAST_MINUTE - causal.FIRST_MINUTE))
    return {
        "day": int(np.argmax(c[CAUSAL_SLICES["day"]])),
        "hour": minute / 60.0,
        "semester": causal.SEMESTERS[int(flag("semester"))],
        "weather": causal.WEATHERS[int(np.argmax(c[CAUSAL_SLICES["weather"]]))],
        "gameday": flag("gameday"),
        "road_closure": flag("road_closure"),
        "crowd": float(np.clip(c[CAUSAL_SLICES["crowd"]][0], 0.0, 1.0)),
    }


def _single_vector_parts(obs: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """The (STATE_DIM,) state and the (CAUSAL_DIM,) causal vector or None of one observation."""
    if isinstance(obs, Mapping):
        batched = {key: np.asarray(obs[key])[None] for key in ("state", "causal") if key in obs}
        if "state" not in batched:
            raise ValueError(f"render_observation draws the 'state' entry of a dict observation; this one has "
                             f"{sorted(obs)}")
    else:
        batched = np.asarray(obs)[None]
        if batched.ndim != 2:
            raise ValueError(f"render_observation draws one flat obs_mode='state' vector, got shape "
                             f"{batched.shape[1:]} (pixel observations are drawn as they are)")
    state, causal_vector = _vector_parts(batched)
    return state[0], None if causal_vector is None else causal_vector[0]


def _cell(state: np.ndarray, part: str, layout: lay.Layout) -> tuple[int, int]:
    """The (row, col) a scaled position of the state vector names, clipped to the map."""
    scale = np.array([layout.height - 1, layout.width - 1], dtype=np.float64)
    row, col = np.clip(np.rint(state[STATE_SLICES[part]] * scale), 0, scale).astype(np.int64)
    return int(row), int(col)


@functools.cache
def _base_core() -> CampusCore:
    return CampusCore(1)


def _core_of(env: Any) -> CampusCore:
    core = getattr(getattr(env, "unwrapped", env), "core", None)
    if not isinstance(core, CampusCore):
        raise TypeError(f"render_observation(obs, env): env must be a CampusNav-v0 env, got {type(env).__name__}")
    return core
