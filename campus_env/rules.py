"""How the causal variables act on movement: small tables built once per layout.

- Building access follows a schedule of day, hour and semester; the stadium
  roads close under ``road_closure``; the construction zone blocks in spring.
  All of it is one boolean table ``passable[access_state, terrain]``.
- Weather makes moves fail (``slip[weather, terrain]``): rain on grass, snow on
  grass and walkways; roads are plowed and interiors are dry.
- Crowd: the level (a causal variable) times a hotspot map around the buildings
  that are busy at that day type, hour and gameday gives a density per cell; a
  move into a cell is blocked with probability ``CROWD_BLOCK_SCALE * density``.
- The task: the goal building is drawn from weights that depend on the context
  (weekday mornings: lecture halls; meal times: dining; gameday: the stadium).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from campus_env import layout as lay
from campus_env.causal import HOUR_SLOTS

__all__ = ["Rules", "build_rules"]

CROWD_BLOCK_SCALE = 0.8
HOTSPOT_SIGMA = 3.0
STEP_PENALTY = 0.01
BLOCKED_PENALTY = 0.05
GOAL_REWARD = 1.0
# a step whose reward is below this carried the blocked penalty (-0.01 plain, -0.06 blocked)
BLOCKED_REWARD = -(STEP_PENALTY + BLOCKED_PENALTY / 2)

# opening hours (start, end) per building: weekday, weekend; None = closed
_HOURS = {
    "library": ([(7, 23)], [(9, 22)]),
    "dining": ([(7, 10), (11, 14), (17, 20)], [(8, 10), (11, 14), (17, 20)]),
    "dorms": ([(7, 23)], [(7, 23)]),
    "hall_a": ([(7, 21)], []),
    "hall_b": ([(8, 18)], []),
    "lab": ([(8, 20)], []),
    "gym": ([(7, 22)], [(8, 22)]),
    "stadium": ([], [(10, 19)]),
    "union": ([(8, 23)], [(8, 23)]),
}
# semester differences: lecture hall A closes at 20:00 in spring, the lab opens fall Saturdays
_SPRING_HALL_A_END = 20
_FALL_SATURDAY_LAB = (10, 16)

# slip probability of a move into each terrain, per weather (sunny, cloudy, rainy, snowy)
_SLIP = {
    lay.GRASS: (0.0, 0.0, 0.5, 0.6),
    lay.WALKWAY: (0.0, 0.0, 0.05, 0.35),
    lay.ROAD: (0.0, 0.0, 0.05, 0.05),
    lay.STADIUM_ROAD: (0.0, 0.0, 0.05, 0.05),
    lay.CONSTRUCTION: (0.0, 0.0, 0.1, 0.35),
}

# how busy each building's surroundings are: (weekday weight by slot, weekend weight by slot)
_HOTSPOTS = {
    "hall_a": ([0.3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0.6, 0.3, 0.2, 0.1, 0, 0], [0] * 16),
    "hall_b": ([0.3, 1, 1, 1, 1, 1, 1, 1, 1, 0.6, 0.3, 0.1, 0, 0, 0, 0], [0] * 16),
    "lab": ([0, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.5, 0.4, 0.3, 0.1, 0, 0], [0] * 16),
    "dining": ([1, 0.8, 0.2, 0.2, 1, 1, 0.6, 0.2, 0.3, 0.2, 1, 1, 0.6, 0.1, 0, 0],
               [0.2, 0.8, 0.5, 0.2, 1, 1, 0.6, 0.2, 0.2, 0.2, 1, 1, 0.5, 0.1, 0, 0]),
    "library": ([0.2] * 6 + [0.4] * 6 + [0.7] * 4, [0.1] * 2 + [0.4] * 10 + [0.3] * 4),
    "union": ([0.1] + [0.5] * 12 + [0.6] * 3, [0.1] + [0.4] * 12 + [0.6] * 3),
    "dorms": ([0.8, 0.3] + [0.1] * 10 + [0.5, 0.6, 0.8, 0.8], [0.3] * 4 + [0.1] * 8 + [0.6] * 4),
    "gym": ([0.3] * 10 + [0.6] * 4 + [0.2] * 2, [0.2] * 3 + [0.5] * 10 + [0.2] * 3),
}
_STADIUM_GAME_WEIGHT = 1.6  # around the stadium on gameday, 10:00-19:00 (slots 3..11)
_GAME_SLOTS = range(3, 12)

# the task: goal weights over buildings per time of day (weekday, weekend)
_GOALS_WEEKDAY = {  # slot ranges -> weights by building name
    range(0, 1): {"dining": 3, "library": 1, "hall_a": 1, "gym": 1},
    range(1, 4): {"hall_a": 3, "hall_b": 3, "lab": 2, "library": 1},
    range(4, 7): {"dining": 4, "union": 2, "hall_a": 1, "hall_b": 1},
    range(7, 10): {"hall_a": 2, "hall_b": 2, "lab": 2, "library": 2, "gym": 1},
    range(10, 13): {"dining": 4, "gym": 2, "union": 1, "library": 1},
    range(13, 16): {"dorms": 4, "library": 2, "union": 1, "gym": 1},
}
_GOALS_WEEKEND = {
    range(0, 4): {"gym": 2, "dining": 2, "library": 1, "union": 1},
    range(4, 7): {"dining": 3, "union": 2, "library": 1, "gym": 1},
    range(7, 10): {"library": 2, "gym": 2, "union": 2},
    range(10, 13): {"dining": 3, "union": 2, "dorms": 1},
    range(13, 16): {"dorms": 4, "union": 2},
}
_GAMEDAY_GOAL_WEIGHT = 12  # the stadium, on gameday between 10:00 and 19:00


def access_state(day, semester, slot, closure):
    """Index into ``Rules.passable`` of a (day, semester, hour slot, road closure) context."""
    return ((day * 2 + semester) * HOUR_SLOTS + slot) * 2 + closure


def pattern_index(day, slot, gameday):
    """Index of the crowd hotspot pattern for (weekday/weekend, hour slot, gameday)."""
    return ((day >= 5) * HOUR_SLOTS + slot) * 2 + (gameday > 0)


@dataclass(frozen=True)
class Rules:
    """The movement tables of one layout (see the module docstring)."""

    passable: np.ndarray  # (7*2*16*2, num_terrain) bool
    slip: np.ndarray  # (4, num_terrain) float64
    hotspots: np.ndarray  # (64, padded cells) float32 unscaled crowd density
    goal_cdf: np.ndarray  # (64, num_buildings) cumulative goal probabilities
    open_hours: np.ndarray  # (num_buildings, 7, 2, 16) bool


def _open_table() -> np.ndarray:
    names = lay.BUILDING_NAMES
    table = np.zeros((len(names), 7, 2, HOUR_SLOTS), dtype=bool)
    for b, name in enumerate(names):
        for day in range(7):
            for sem in range(2):
                spans = list(_HOURS[name][day >= 5])
                if name == "hall_a" and sem == 1:
                    spans = [(s, min(e, _SPRING_HALL_A_END)) for s, e in spans]
                if name == "lab" and sem == 0 and day == 5:
                    spans = [_FALL_SATURDAY_LAB]
                for start, end in spans:
                    table[b, day, sem, start - 7 : end - 7] = True
    return table


def build_rules(layout: lay.Layout) -> Rules:
    """Builds the tables for ``layout``."""
    nb, nt = len(lay.BUILDINGS), lay.NUM_TERRAIN
    open_hours = _open_table()
    passable = np.zeros((7 * 2 * HOUR_SLOTS * 2, nt), dtype=bool)
    for day in range(7):
        for sem in range(2):
            for slot in range(HOUR_SLOTS):
                for closure in range(2):
                    row = passable[access_state(day, sem, slot, closure)]
                    row[list(lay.NEVER_CLOSED)] = True
                    row[lay.STADIUM_ROAD] = not closure
                    row[lay.CONSTRUCTION] = sem == 0
                    for b in range(nb):
                        is_open = open_hours[b, day, sem, slot]
                        row[[lay.door_code(b), lay.interior_code(b), lay.side_door_code(b)]] = is_open
    slip = np.zeros((4, nt))
    for terrain, probs in _SLIP.items():
        slip[:, terrain] = probs

    hotspots = np.zeros((2 * HOUR_SLOTS * 2, layout.terrain.size), dtype=np.float32)
    goal_w = np.zeros((2 * HOUR_SLOTS * 2, nb))
    rows, cols = np.indices(layout.terrain.shape)
    crowdable = np.isin(
        layout.terrain,
        [lay.WALKWAY, lay.GRASS, lay.ROAD, lay.STADIUM_ROAD, lay.CONSTRUCTION]
        + [lay.door_code(b) for b in range(nb)],
    )
    kernels = []
    for row, col in layout.entrances:
        d2 = (rows - row - lay.PAD) ** 2 + (cols - col - lay.PAD) ** 2
        kernels.append(np.exp(-d2 / (2 * HOTSPOT_SIGMA**2)) * crowdable)
    kernels = np.stack(kernels).reshape(nb, -1)
    stadium = lay.BUILDING_NAMES.index("stadium")
    for weekend in range(2):
        for slot in range(HOUR_SLOTS):
            for game in range(2):
                p = (weekend * HOUR_SLOTS + slot) * 2 + game
                weights = np.zeros(nb)
                for name, by_slot in _HOTSPOTS.items():
                    weights[lay.BUILDING_NAMES.index(name)] = by_slot[weekend][slot]
                goals = _GOALS_WEEKEND if weekend else _GOALS_WEEKDAY
                for span, choice in goals.items():
                    if slot in span:
                        for name, w in choice.items():
                            goal_w[p, lay.BUILDING_NAMES.index(name)] = w
                if game and slot in _GAME_SLOTS:
                    weights[stadium] = _STADIUM_GAME_WEIGHT
                    goal_w[p, stadium] = _GAMEDAY_GOAL_WEIGHT
                hotspots[p] = weights @ kernels
    goal_cdf = np.cumsum(goal_w / goal_w.sum(axis=1, keepdims=True), axis=1)
    return Rules(passable, slip, hotspots, goal_cdf, open_hours)
