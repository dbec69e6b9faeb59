"""What a CampusNav-v0 observation says, as whole numbers: the semantic state a dream is scored on.

Two observations describe the same situation when they put the agent in the
same cell, name the same goal and carry the same causal context, even if their
floats differ a little. ``semantic_state`` reads that from the vector parts of an
observation (a flat ``obs_mode="state"`` vector, or a dict's ``"state"`` and
``"causal"`` entries), whether the env or a world model's decoder wrote it, so
``model_zoo.evaluate_fidelity`` can compare imagined samples with real forks of
the simulator. The env names it in ``metadata["semantic_state"]``.

The fields (``SEMANTIC_FIELDS``): the agent's and the goal's cells (scaled
coordinates rounded to the map's grid), then, when the causal vector is there,
the day and weather (argmax of their one-hots), semester, gameday and road
closure (rounded), the hour slot of the clock and the crowd in quarters
(``round(4 * crowd)``). The blocked flag is not part of a state observation;
image parts need a learned probe and are not read here.

>>> import gymnasium as gym
>>> import campus_env
>>> env = gym.make("CampusNav-v0", obs_mode="state")
>>> obs, info = env.reset(seed=0)
>>> position, state = semantic_state(obs[None])
>>> position.shape, state.shape, bool((state[:, :2] == position).all())
((1, 2), (1, 11), True)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from campus_env import causal
from campus_env.layout import load_layout
from campus_env.schema import CAUSAL_DIM, CAUSAL_SLICES, STATE_DIM, STATE_SLICES, state_slices

__all__ = ["SEMANTIC_FIELDS", "SemanticReadout", "reached_goal", "semantic_state"]

SEMANTIC_FIELDS = ("agent_row", "agent_col", "goal_row", "goal_col", "day", "semester", "weather", "gameday",
                   "hour_slot", "road_closure", "crowd_quarter")
_LAYOUT = load_layout()
_MAP_SIZE = (_LAYOUT.height, _LAYOUT.width)
_FLAT_CAUSAL = {state_slices(flag)["crowd"].stop: flag for flag in (False, True)}  # vector length -> causal?


class SemanticReadout(NamedTuple):
    """``position``: (N, 2) int64, the agent's cell; ``state``: (N, F) int64, every field that is read."""

    position: np.ndarray
    state: np.ndarray


def semantic_state(obs: Any, map_size: tuple[int, int] = _MAP_SIZE) -> SemanticReadout:
    """The semantic state of a batch of observations (N, ...), env or imagined alike.

    ``map_size`` is the layout's (height, width); the default layout's unless given.
    """
    state, causal_vector = _vector_parts(obs)
    scale = np.array(map_size, dtype=np.float64) - 1
    agent = np.rint(state[:, STATE_SLICES["agent"]] * scale).astype(np.int64)
    goal = np.rint(state[:, STATE_SLICES["goal"]] * scale).astype(np.int64)
    fields = [agent, goal]
    if causal_vector is not None:
        c = causal_vector
        minute = causal.FIRST_MINUTE + c[:, CAUSAL_SLICES["hour"]] * (causal.LAST_MINUTE - causal.FIRST_MINUTE)
        fields += [
            c[:, CAUSAL_SLICES["day"]].argmax(axis=1)[:, None],
            np.rint(c[:, CAUSAL_SLICES["semester"]]),
            c[:, CAUSAL_SLICES["weather"]].argmax(axis=1)[:, None],
            np.rint(c[:, CAUSAL_SLICES["gameday"]]),
            causal.hour_slot(np.floor(minute)),
            np.rint(c[:, CAUSAL_SLICES["road_closure"]]),
            np.rint(4 * c[:, CAUSAL_SLICES["crowd"]]),
        ]
    return SemanticReadout(agent, np.concatenate([np.asarray(f).astype(np.int64) for f in fields], axis=1))


def reached_goal(next_obs: Any) -> np.ndarray:
    """(N,) bool: the observations (N, ...) put the agent on the goal's cell, where CampusNav-v0 terminates.

    The env's termination as a function of the observation, as MBPO's per-env
    termination functions (Janner et al. 2019, arXiv:1906.08253): a dream may end
    where it says instead of waiting for a model to learn so rare an event. The env
    names it in ``metadata["termination_fn"]``.
    """
    readout = semantic_state(next_obs)
    return (readout.state[:, 0:2] == readout.state[:, 2:4]).all(axis=1)


def _vector_parts(obs: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """The (N, STATE_DIM) state and the (N, CAUSAL_DIM) causal vector or None, as float64 (NaN as -1)."""
    if isinstance(obs, dict):
        if "state" not in obs:
            raise ValueError("semantic_state reads the 'state' entry of a dict observation; this one has "
                             f"{sorted(obs)} (pixel observations need a learned probe)")
        state = np.asarray(obs["state"], dtype=np.float64)
        causal_vector = obs.get("causal")
        causal_vector = None if causal_vector is None else np.asarray(causal_vector, dtype=np.float64)
    else:
        flat = np.asarray(obs, dtype=np.float64)
        if flat.ndim != 2 or flat.shape[1] not in _FLAT_CAUSAL:
            raise ValueError(f"semantic_state takes (N, D) state vectors with D in {sorted(_FLAT_CAUSAL)} or dicts "
                             f"with a 'state' entry, got shape {flat.shape} (pixel observations need a learned probe)")
        state = flat[:, :STATE_DIM]
        causal_vector = flat[:, STATE_DIM : STATE_DIM + CAUSAL_DIM] if _FLAT_CAUSAL[flat.shape[1]] else None
    if state.ndim != 2 or state.shape[1] != STATE_DIM:
        raise ValueError(f"the 'state' entry must be (N, {STATE_DIM}), got shape {state.shape}")
    clean = lambda x: None if x is None else np.nan_to_num(x, nan=-1.0, posinf=1e6, neginf=-1e6)  # noqa: E731
    return clean(state), clean(causal_vector)
