"""The causal model of many walkers: CampusNav-v0's variables plus what the walkers add.

The walkers are part of the world, so two dynamic variables join the single
env's structural causal model (``campus_env.causal``), declared the same way:

- ``walker_density``: how full each outdoor cell is, walkers present over the
  cell's capacity. Where walkers are is set by their goals, which the context
  causes (the goal mechanism reads day, hour and gameday), so those are its
  parents. It adds to the crowd that blocks moves.
- ``trail``: how worn each grass cell is. It accrues with ``walker_density``
  (traffic) and recovers slowly where nobody walks; a dynamic state, it also
  carries its own last value. A worn cell is easier to cross: fewer slips and
  fewer crowd blocks, and it shows as a dirt path in the pixels.

Both are fields over the map; ``info["causal"]`` gives each one as a number (the
mean density of the occupied outdoor cells, the mean wear of the grass) and a
hard ``do(walker_density=x)`` or ``do(trail=x)`` holds the whole field at ``x``
(``do(trail=0)`` switches trails off). Capacity is a physical bound, not a
variable: ``do()`` never overfills a cell.

>>> sorted(WALKER_CAUSAL_GRAPH["trail"])
['walker_density']
>>> validate_do({"trail": 0, "weather": "rainy"})
{'trail': 0.0, 'weather': 2.0}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from campus_env import causal

__all__ = [
    "CAPACITY",
    "WALKER_CAUSAL_GRAPH",
    "WALKER_VARIABLES",
    "check_names",
    "ease",
    "mech_trail",
    "split_codes",
    "validate_do",
]

CAPACITY = 4  # walkers an outdoor cell holds (buildings hold everyone)
WALKER_CROWD_WEIGHT = 0.6  # crowd density a full cell of walkers adds
TRAIL_WEAR = 0.02  # wear a grass cell gains per step at full walker density
TRAIL_RECOVERY = 0.002  # share of its wear an unused grass cell loses per step
TRAIL_EASE = 0.8  # how much of the slip and crowd-block chance a fully worn trail removes

NEW_VARIABLES: dict[str, causal.Variable] = {
    v.name: v
    for v in (
        causal.Variable(
            "walker_density", "interval", ("day", "hour", "gameday"), True,
            "walkers in an outdoor cell over its capacity (a field; the number is the mean of the occupied cells)",
        ),
        causal.Variable(
            "trail", "interval", ("walker_density",), True,
            "wear of a grass cell by traffic, 0 untouched .. 1 a dirt path (the number is the mean over the grass)",
        ),
    )
}
WALKER_VARIABLES: dict[str, causal.Variable] = {**causal.VARIABLES, **NEW_VARIABLES}
WALKER_CAUSAL_GRAPH: dict[str, tuple[str, ...]] = {v.name: v.parents for v in WALKER_VARIABLES.values()}


def validate_do(assignments: Mapping[str, Any]) -> dict[str, float]:
    """Checks a ``do`` mapping over every variable of the walkers' world; returns the internal codes.

    Raises ``ValueError`` naming the valid variables or values, before anything changes.

    >>> validate_do({"footfall": 1})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: do(): unknown causal variable 'footfall'; valid names: day, hour, ..., walker_density, trail
    """
    if not isinstance(assignments, Mapping):
        raise TypeError(f"do must be a mapping of variable name to value, got {type(assignments).__name__}")
    codes = {}
    for name, value in assignments.items():
        if name not in WALKER_VARIABLES:
            raise ValueError(f"do(): unknown causal variable {name!r}; valid names: {', '.join(WALKER_VARIABLES)}")
        codes[name] = WALKER_VARIABLES[name].encode(value)
    return codes


def split_codes(codes: Mapping[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """Validated codes split into (CampusNav-v0's variables, the walker variables).

    >>> split_codes(validate_do({"trail": 0, "weather": "rainy"}))
    ({'weather': 2.0}, {'trail': 0.0})
    """
    world = {name: code for name, code in codes.items() if name not in NEW_VARIABLES}
    return world, {name: code for name, code in codes.items() if name in NEW_VARIABLES}


def check_names(names: Iterable[Any]) -> list[str]:
    """The variable names ``undo()`` was given (all of them when none), checked."""
    names = list(names) or list(WALKER_VARIABLES)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"undo() takes variable names as strings, e.g. undo('trail', 'weather'); "
                            f"got {name!r} ({type(name).__name__})")
        if name not in WALKER_VARIABLES:
            raise ValueError(f"undo(): unknown causal variable {name!r}; valid names: {', '.join(WALKER_VARIABLES)}")
    return names


def ease(trail: np.ndarray) -> np.ndarray:
    """The factor a trail leaves of a move's slip and crowd-block chance (1 on unworn ground)."""
    return 1.0 - TRAIL_EASE * trail


def mech_trail(trail: np.ndarray, density: np.ndarray) -> np.ndarray:
    """Next step's wear of grass cells: those walked on wear by ``TRAIL_WEAR * density``, the others recover."""
    return np.where(density > 0, np.minimum(trail + TRAIL_WEAR * density, 1.0), trail * (1.0 - TRAIL_RECOVERY))
