"""The structural causal model behind CampusNav-v0, declared in one place.

Every causal variable has a domain, parents and a mechanism. The mechanisms are
vectorised over a batch of campuses (one row per env) and read only their
declared parents plus their own exogenous noise, which comes from the episode's
noise tape (:mod:`campus_env.noise`). A hard intervention ``do(X=x)`` replaces
X's mechanism by the constant ``x``; everything downstream is recomputed from
the same noise, so the same seed under another intervention gives the exact
counterfactual episode.

Variables are *static* (drawn at reset: day, semester, weather, gameday) or
*dynamic* (re-evaluated every step: hour, road_closure, crowd).

>>> sorted(CAUSAL_GRAPH["crowd"])
['day', 'gameday', 'hour', 'weather']
>>> VARIABLES["weather"].encode("rainy")
2.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "CAUSAL_GRAPH",
    "DAY_NAMES",
    "HELDOUT_CONTEXTS",
    "SEMESTERS",
    "SPLITS",
    "VARIABLES",
    "WEATHERS",
    "Variable",
    "causal_codes",
    "grid_cells",
    "validate_do",
]

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
SEMESTERS = ("fall", "spring")
WEATHERS = ("sunny", "cloudy", "rainy", "snowy")
SPLITS = ("train", "heldout", "all")

FIRST_MINUTE = 7 * 60  # 7:00, the clock's first value
LAST_MINUTE = 23 * 60  # 23:00, the clock stops here
LAST_START_MINUTE = 19 * 60 + 40  # latest start, so 200 steps end by 23:00
HOUR_SLOTS = 16  # 7:00-7:59 is slot 0 ... 22:00-23:00 is slot 15


@dataclass(frozen=True)
class Variable:
    """One causal variable: its domain, its parents and how it is encoded.

    ``kind`` is ``"categorical"`` (``choices`` are the valid values),
    ``"bool"`` or ``"interval"`` (``low`` .. ``high``). Internally every value
    is a float code: the index of a categorical choice, 0/1 for a bool, the
    value itself for an interval (the clock is kept in minutes).
    """

    name: str
    kind: str
    parents: tuple[str, ...]
    dynamic: bool
    doc: str
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 1.0

    def describe_domain(self) -> str:
        if self.kind == "categorical":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind == "bool":
            return "True or False"
        return f"a number in [{self.low:g}, {self.high:g}]"

    def encode(self, value: Any) -> float:
        """Checks ``value`` against the domain and returns its internal code.

        Raises ``ValueError`` naming the valid choices when it is not in the domain.
        """
        bad = ValueError(
            f"do({self.name}={value!r}): {self.name} must be {self.describe_domain()}"
        )
        if self.kind == "categorical":
            for index, choice in enumerate(self.choices):
                if type(value) is type(choice) or (
                    isinstance(choice, int) and isinstance(value, np.integer)
                ):
                    if value == choice and not isinstance(value, bool):
                        return float(index)
            raise bad
        if self.kind == "bool":
            if isinstance(value, (bool, np.bool_)):
                return float(bool(value))
            raise bad
        if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)
        ):
            raise bad
        number = float(value)
        if not math.isfinite(number) or not self.low <= number <= self.high:
            raise bad
        return float(round(number * 60.0)) if self.name == "hour" else number  # the clock: whole minutes

    def decode(self, code: float) -> Any:
        """The user-facing value of an internal code (the inverse of ``encode``)."""
        if self.kind == "categorical":
            return self.choices[int(code)]
        if self.kind == "bool":
            return bool(code)
        if self.name == "hour":
            return float(code) / 60.0
        return float(code)


VARIABLES: dict[str, Variable] = {
    v.name: v
    for v in (
        Variable("day", "categorical", (), False, "day of the week, Mon=0", tuple(range(7))),
        Variable(
            "hour", "interval", (), True,
            "clock time in hours (9.5 is 9:30); one minute passes per step",
            low=FIRST_MINUTE / 60, high=LAST_MINUTE / 60,
        ),
        Variable("semester", "categorical", (), False, "fall or spring", SEMESTERS),
        Variable("weather", "categorical", ("semester",), False, "the day's weather", WEATHERS),
        Variable("gameday", "bool", ("day", "semester"), False, "a home game at the stadium"),
        Variable(
            "road_closure", "bool", ("gameday", "hour"), True,
            "the stadium roads are closed (gameday, 11:00-18:00)",
        ),
        Variable(
            "crowd", "interval", ("day", "hour", "gameday", "weather"), True,
            "crowd level 0..1, spread over the map around the active buildings",
        ),
    )
}

CAUSAL_GRAPH: dict[str, tuple[str, ...]] = {v.name: v.parents for v in VARIABLES.values()}
VAR_INDEX = {name: i for i, name in enumerate(VARIABLES)}

# Contexts the "train" split never samples and the "heldout" split samples only.
# Declared once, here; each entry is a partial assignment of static variables.
HELDOUT_CONTEXTS: tuple[dict[str, Any], ...] = (
    {"gameday": True, "weather": "rainy"},
    {"gameday": True, "weather": "snowy"},
)

# --- mechanism parameters: small tables --------------------------------------

# P(weather | semester): rows fall, spring; columns sunny, cloudy, rainy, snowy
WEATHER_P = np.array([[0.45, 0.30, 0.20, 0.05], [0.35, 0.30, 0.20, 0.15]])
WEATHER_CDF = np.cumsum(WEATHER_P, axis=1)
# P(gameday | semester, day): fall Saturdays are football, spring has a few games
GAMEDAY_P = np.zeros((2, 7))
GAMEDAY_P[0, 5] = 0.85
GAMEDAY_P[1, 5] = 0.25
GAMEDAY_P[:, 4] = 0.05
CLOSURE_START, CLOSURE_END = 11 * 60, 18 * 60
GAME_START, GAME_END = 10 * 60, 19 * 60

# crowd level by hour slot 7..22 for weekdays and weekends
CROWD_BASE = np.array(
    [
        [0.30, 0.60, 0.70, 0.60, 0.70, 0.80, 0.70, 0.60, 0.60, 0.60, 0.70, 0.50, 0.40, 0.30, 0.20, 0.15],
        [0.10, 0.15, 0.25, 0.30, 0.35, 0.40, 0.40, 0.35, 0.35, 0.30, 0.30, 0.30, 0.25, 0.20, 0.15, 0.10],
    ]
)
CROWD_WEATHER_FACTOR = np.array([1.0, 0.95, 0.7, 0.55])
CROWD_GAMEDAY_BOOST = 0.35
CROWD_NOISE = 0.2


def is_weekend(day: np.ndarray) -> np.ndarray:
    return day >= 5


def hour_slot(minute: np.ndarray) -> np.ndarray:
    """Hour slot 0..15 of a clock in minutes (23:00 counts as the last slot)."""
    return np.clip(minute // 60 - 7, 0, HOUR_SLOTS - 1)


# --- mechanisms (vectorised; each reads its declared parents and its noise) ---


def mech_day(u: np.ndarray) -> np.ndarray:
    return np.minimum((u * 7).astype(np.int64), 6)


def mech_semester(u: np.ndarray) -> np.ndarray:
    return (u >= 0.5).astype(np.int64)


def mech_weather(semester: np.ndarray, u: np.ndarray) -> np.ndarray:
    cdf = WEATHER_CDF[semester]  # (N, 4)
    return np.minimum((u[:, None] >= cdf).sum(axis=1), 3)


def mech_gameday(day: np.ndarray, semester: np.ndarray, u: np.ndarray) -> np.ndarray:
    return (u < GAMEDAY_P[semester, day]).astype(np.int64)


def mech_hour(start_minute: np.ndarray, step: np.ndarray) -> np.ndarray:
    return np.minimum(start_minute + step, LAST_MINUTE)


def mech_road_closure(gameday: np.ndarray, minute: np.ndarray) -> np.ndarray:
    return ((gameday > 0) & (minute >= CLOSURE_START) & (minute < CLOSURE_END)).astype(np.int64)


def mech_crowd(
    day: np.ndarray, minute: np.ndarray, gameday: np.ndarray, weather: np.ndarray, u: np.ndarray
) -> np.ndarray:
    base = CROWD_BASE[is_weekend(day).astype(np.int64), hour_slot(minute)]
    game = (gameday > 0) & (minute >= GAME_START) & (minute < GAME_END)
    level = base * CROWD_WEATHER_FACTOR[weather] + CROWD_GAMEDAY_BOOST * game
    return np.clip(level + CROWD_NOISE * (u - 0.5), 0.0, 1.0)


def in_heldout(day, semester, weather, gameday) -> np.ndarray:
    """Whether each context matches one of ``HELDOUT_CONTEXTS``."""
    values = {"day": day, "semester": semester, "weather": weather, "gameday": gameday}
    hit = np.zeros(np.shape(day), dtype=bool)
    for context in HELDOUT_CONTEXTS:
        match = np.ones(np.shape(day), dtype=bool)
        for name, value in context.items():
            match &= values[name] == VARIABLES[name].encode(value)
        hit |= match
    return hit


def validate_do(assignments: Mapping[str, Any]) -> dict[str, float]:
    """Checks a ``do`` mapping and returns the internal codes.

    Raises ``ValueError`` naming the valid variables or values; nothing is
    changed anywhere when it raises.

    >>> validate_do({"weather": "snowy", "gameday": True})
    {'weather': 3.0, 'gameday': 1.0}
    >>> validate_do({"temperature": 3})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: do(): unknown causal variable 'temperature'; valid names: day, hour, semester, ...
    """
    if not isinstance(assignments, Mapping):
        raise TypeError(f"do must be a mapping of variable name to value, got {type(assignments).__name__}")
    codes = {}
    for name, value in assignments.items():
        if name not in VARIABLES:
            raise ValueError(
                f"do(): unknown causal variable {name!r}; valid names: {', '.join(VARIABLES)}"
            )
        codes[name] = VARIABLES[name].encode(value)
    return codes


def check_split(split: str) -> str:
    if not isinstance(split, str) or split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(map(repr, SPLITS))}, got {split!r}")
    return split


def grid_cells(split: str = "all") -> list[dict[str, Any]]:
    """Every day x weather x gameday x semester cell that ``split`` allows, as ``do`` mappings.

    ``"train"`` leaves out the cells matching ``HELDOUT_CONTEXTS``, ``"heldout"``
    keeps only those, ``"all"`` keeps every cell. A collector imposes each cell
    with ``reset(options={"do": cell})`` (the env's ``metadata["coverage_cells"]``).

    >>> len(grid_cells("all")), len(grid_cells("train")), len(grid_cells("heldout"))
    (112, 84, 28)
    >>> grid_cells("heldout")[0]
    {'day': 0, 'weather': 'rainy', 'gameday': True, 'semester': 'fall'}
    """
    check_split(split)
    cells = []
    for day in VARIABLES["day"].choices:
        for weather in WEATHERS:
            for gameday in (False, True):
                for semester in SEMESTERS:
                    cell = {"day": day, "weather": weather, "gameday": gameday, "semester": semester}
                    code = {name: VARIABLES[name].encode(value) for name, value in cell.items()}
                    heldout = bool(in_heldout(code["day"], code["semester"], code["weather"], code["gameday"]))
                    if split == "all" or heldout == (split == "heldout"):
                        cells.append(cell)
    return cells


def causal_codes(info: Any) -> np.ndarray | None:
    """The (N, 7) float32 codes of ``info["causal"]`` (columns in ``VARIABLES`` order), or None without them.

    Reads the native vector env's codes and the decoded values (``"rainy"``,
    ``True``, ...) that Gymnasium's sync vector env gathers from single envs
    alike; an env missing from ``info`` gives NaN. The hour stays in hours. The
    env's ``metadata["causal_codes"]`` names this function for collectors.
    """
    values = info.get("causal") if isinstance(info, Mapping) else None
    if not isinstance(values, Mapping) or any(name not in values for name in VARIABLES):
        return None
    columns = []
    for variable in VARIABLES.values():
        column = np.asarray(values[variable.name])
        if column.dtype == object:  # decoded values, or None for a missing env
            column = np.array([np.nan if v is None else _plain_code(variable, v) for v in column], dtype=np.float64)
        columns.append(column.astype(np.float64))
    return np.stack(columns, axis=-1).astype(np.float32)


def _plain_code(variable: Variable, value: Any) -> float:
    if variable.kind == "categorical":
        return float(variable.choices.index(value))
    return float(value)  # bool -> 0/1, hour stays in hours, crowd as is
