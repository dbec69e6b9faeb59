"""What CampusNav-v0's numbers mean: the actions, and the named parts of its vectors.

Everything outside ``campus_env`` that reads an action id, a part of the flat
``obs_mode="state"`` observation or a part of the causal vector imports the name
from here instead of writing the index.

>>> Action.NORTH, int(Action.EAST)
(<Action.NORTH: 1>, 3)
>>> MOVES[Action.WEST]
(0, -1)
>>> state_slices(observe_causal=True)["walkable"]
slice(22, 47, None)
>>> CAUSAL_SLICES["weather"]
slice(8, 12, None)
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "ACTION_MEANINGS",
    "CAUSAL_DIM",
    "CAUSAL_SLICES",
    "MOVES",
    "PATCH",
    "STATE_DIM",
    "STATE_SLICES",
    "Action",
    "state_slices",
]


class Action(IntEnum):
    """``Discrete(5)``: stay, then the four compass moves."""

    STAY = 0
    NORTH = 1
    SOUTH = 2
    EAST = 3
    WEST = 4


MOVES: dict[Action, tuple[int, int]] = {
    Action.STAY: (0, 0),
    Action.NORTH: (-1, 0),
    Action.SOUTH: (1, 0),
    Action.EAST: (0, 1),
    Action.WEST: (0, -1),
}
"""Action -> (row, column) step on the map; north is up (row - 1)."""

ACTION_MEANINGS = ", ".join(f"{int(action)} {action.name.lower()}" for action in Action)
"""The actions in words, for messages and docs: ``"0 stay, 1 north, 2 south, 3 east, 4 west"``."""

STATE_DIM = 6
"""Agent row/col, goal row/col, goal minus agent; each scaled by the map size."""

STATE_SLICES = {"agent": slice(0, 2), "goal": slice(2, 4), "goal_offset": slice(4, 6)}
"""The parts of the state vector (the ``"state"`` entry of dict observations)."""

CAUSAL_SLICES = {
    "day": slice(0, 7),  # one-hot, Monday first
    "semester": slice(7, 8),  # 0 fall, 1 spring
    "weather": slice(8, 12),  # one-hot: sunny, cloudy, rainy, snowy
    "gameday": slice(12, 13),
    "hour": slice(13, 14),  # the clock, scaled to [0, 1] over the day
    "road_closure": slice(14, 15),
    "crowd": slice(15, 16),
}
"""The parts of the causal vector (the ``"causal"`` entry of dict observations)."""

CAUSAL_DIM = 16

PATCH = 5
"""Side of the square of cells around the agent whose walkability and crowd the flat observation carries."""


def state_slices(observe_causal: bool = True) -> dict[str, slice]:
    """The parts of the flat ``obs_mode="state"`` vector: the state, the causal vector if observed, the patches."""
    parts = dict(STATE_SLICES)
    start = STATE_DIM
    if observe_causal:
        parts["causal"] = slice(start, start + CAUSAL_DIM)
        start += CAUSAL_DIM
    parts["walkable"] = slice(start, start + PATCH**2)  # row-major around the agent
    parts["crowd"] = slice(start + PATCH**2, start + 2 * PATCH**2)
    return parts
