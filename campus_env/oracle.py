"""A shortest-path oracle for CampusNav-v0: the route of least expected travel time.

The oracle reads the simulation core, not the observation: it knows the layout,
which cells are open now, the crowd density and the weather, and from them the
probability that a move into each cell fails. Entering cell ``c`` succeeds with
probability ``(1 - p_block(c)) * (1 - p_slip(c))``, where

- ``p_slip(c) = slip[weather, terrain(c)]`` (rain on grass, snow on walkways), and
- ``p_block(c) = min(CROWD_BLOCK_SCALE * density(c), 1)`` (crowds near busy buildings);

closed cells (walls, closed buildings, closed roads) cannot be entered at all. A
failed move costs a step and leaves the agent where it was, so entering ``c``
takes ``1 / (1 - p_fail(c))`` steps on average. Dijkstra from the goal entrance
over these costs gives the expected steps-to-go of every cell, and the oracle
moves to the neighbour with the least ``cost(neighbour) + steps-to-go``.

The field depends only on the goal, the access state (day, semester, hour slot,
road closure), the crowd pattern and level, and the weather; it is cached on
those, so it is recomputed only when the context changes (about once an hour of
clock time, or after an intervention). ``expected_cost=False`` gives the plain
shortest path over open cells, blind to weather and crowds.

The oracle replans every step under the context in force at that step; it does
not anticipate changes still to come (a road that reopens at 18:00).

>>> import gymnasium as gym
>>> import campus_env
>>> from campus_env.oracle import ShortestPathPolicy
>>> env = gym.make("CampusNav-v0", obs_mode="state")
>>> policy = ShortestPathPolicy()
>>> obs, info = env.reset(seed=0, options={"do": {"weather": "rainy"}, "start": "dorms", "goal": "lab"})
>>> path = policy.route(env)
>>> path[0], path[-1]
((4, 8), (18, 16))
>>> done = False
>>> while not done:
...     obs, reward, terminated, truncated, info = env.step(policy(env))
...     done = terminated or truncated
>>> info["is_success"], info["steps"] >= len(path) - 1
(True, True)
"""

from __future__ import annotations

import heapq
import math
import weakref
from typing import Any

import numpy as np
from gymnasium.vector import VectorEnv

from campus_env import layout as lay
from campus_env.core import CampusCore
from campus_env.rules import CROWD_BLOCK_SCALE

__all__ = ["ShortestPathPolicy", "distance_field"]

_MOVES = (1, 2, 3, 4)  # north, south, east, west: the order also breaks ties


def distance_field(cost: np.ndarray, goal: int, width: int) -> np.ndarray:
    """Least total cost from every cell of a flat padded grid to ``goal``.

    ``cost[c]`` is the cost of entering cell ``c`` (``inf`` where it cannot be
    entered); moves go to the 4 neighbours. Dijkstra from the goal: a cell's
    value is ``min over neighbours n of cost[n] + field[n]`` and the goal's is 0.
    The grid's border must be impassable (the layout's void padding is).

    >>> cost = np.array([np.inf] * 4 + [np.inf, 1.0, 2.0, np.inf] + [np.inf] * 4)
    >>> distance_field(cost, goal=6, width=4)[5:7].tolist()
    [2.0, 0.0]
    """
    c = np.asarray(cost, dtype=np.float64).tolist()
    d = [math.inf] * len(c)
    d[goal] = 0.0
    heap = [(0.0, goal)]
    steps = (-width, width, 1, -1)
    while heap:
        dv, v = heapq.heappop(heap)
        if dv > d[v]:
            continue
        through = dv + c[v]  # what a neighbour pays to go through v
        if through == math.inf:
            continue
        for s in steps:
            u = v + s
            if through < d[u]:
                d[u] = through
                heapq.heappush(heap, (through, u))
    return np.array(d)


class ShortestPathPolicy:
    """Acts along the route of least expected travel time under the current context.

    Call it on a CampusNav-v0 env (``gym.make``, wrappers included), on the
    native vector env (``gym.make_vec``) or on a ``CampusCore``: a single env
    gets an ``int`` action, a vector env or a core an ``(N,)`` int64 array.

    Args:
        expected_cost: True (default) weighs every cell by its expected number
            of attempts under weather and crowd; False takes the plain shortest
            path over the cells open now (BFS), blind to weather and crowds.
        cache_size: distance fields kept per core before the cache is emptied.
    """

    def __init__(self, expected_cost: bool = True, cache_size: int = 512):
        if not isinstance(cache_size, int) or cache_size < 1:
            raise ValueError(f"cache_size must be a positive integer, got {cache_size!r}")
        self.expected_cost = bool(expected_cost)
        self.cache_size = cache_size
        self._cache: weakref.WeakKeyDictionary[CampusCore, dict[tuple, np.ndarray]] = weakref.WeakKeyDictionary()
        self.fields_computed = 0  # how many distance fields were built (cache misses)

    def __repr__(self) -> str:
        return f"ShortestPathPolicy(expected_cost={self.expected_cost})"

    # --- acting ----------------------------------------------------------------

    def __call__(self, env: Any) -> int | np.ndarray:
        return self.act(env)

    def act(self, env: Any) -> int | np.ndarray:
        """The oracle's action: an ``int`` for a single env, an ``(N,)`` array otherwise."""
        core = _core_of(env)
        actions = np.array([self._action(core, i) for i in range(core.n)], dtype=np.int64)
        if isinstance(env, CampusCore) or isinstance(getattr(env, "unwrapped", None), VectorEnv):
            return actions
        return int(actions[0])

    def cost_to_go(self, env: Any, i: int = 0) -> np.ndarray:
        """Expected steps from every cell to env ``i``'s goal, as an unpadded (H, W) map.

        ``inf`` marks cells that cannot reach the goal now (or cannot be entered).
        With ``expected_cost=False`` it is the number of moves of the shortest path.
        """
        core = _core_of(env)
        field = self._field(core, _check_index(core, i), self.expected_cost)
        L = core.layout
        return field.reshape(L.terrain.shape)[lay.PAD : lay.PAD + L.height, lay.PAD : lay.PAD + L.width]

    def route(self, env: Any, i: int = 0) -> list[tuple[int, int]]:
        """The cells (row, col), unpadded, the oracle would walk from env ``i``'s position to its goal.

        The route is the one planned under the context in force now, as if no
        move failed and nothing changed on the way; it starts at the agent's cell
        and ends at the goal entrance (or where no further progress is possible).
        """
        core = _core_of(env)
        i = _check_index(core, i)
        field, cost = self._field(core, i, self.expected_cost), self._cost(core, i, self.expected_cost)
        goal = int(core.entrance_flat[core.goal[i]])
        pos = int(core.pos[i])
        cells = [pos]
        while pos != goal and len(cells) <= core.cells:
            action = self._best_action(core, pos, field, cost)
            if action == 0:
                break
            pos += int(core.moves[action])
            cells.append(pos)
        rows, cols = core.layout.unflat(np.array(cells))
        return list(zip(rows.tolist(), cols.tolist(), strict=True))

    # --- internals -------------------------------------------------------------

    def _action(self, core: CampusCore, i: int) -> int:
        pos, goal = int(core.pos[i]), int(core.entrance_flat[core.goal[i]])
        if pos == goal:
            return 0
        for expected in (self.expected_cost, False):  # fall back to the open-cell path if the goal is cut off
            field, cost = self._field(core, i, expected), self._cost(core, i, expected)
            action = self._best_action(core, pos, field, cost)
            if action:
                return action
        return 0

    @staticmethod
    def _best_action(core: CampusCore, pos: int, field: np.ndarray, cost: np.ndarray) -> int:
        """The move to the neighbour of least ``cost + field`` (0 when none reaches the goal)."""
        best, best_value = 0, math.inf
        for a in _MOVES:
            n = pos + int(core.moves[a])
            value = cost[n] + field[n]
            if value < best_value:
                best, best_value = a, value
        return best

    def _key(self, core: CampusCore, i: int, expected: bool) -> tuple:
        k = core.tape_index()[i]
        access = int(core.tape_access.ravel()[k])
        if not expected:
            return (False, int(core.goal[i]), access)
        pattern = int(core.tape_pattern.ravel()[k])
        level = float(core.tape_crowd.ravel()[k])
        return (True, int(core.goal[i]), access, pattern, level, int(core.slip_row[i]))

    def _cost(self, core: CampusCore, i: int, expected: bool) -> np.ndarray:
        return self._lookup(core, i, expected)[1]

    def _field(self, core: CampusCore, i: int, expected: bool) -> np.ndarray:
        return self._lookup(core, i, expected)[0]

    def _lookup(self, core: CampusCore, i: int, expected: bool) -> tuple[np.ndarray, np.ndarray]:
        cache = self._cache.setdefault(core, {})
        key = self._key(core, i, expected)
        hit = cache.get(key)
        if hit is None:
            cost = _entry_cost(core, i, expected)
            hit = (distance_field(cost, int(core.entrance_flat[core.goal[i]]), core.width), cost)
            if len(cache) >= self.cache_size:
                cache.clear()
            cache[key] = hit
            self.fields_computed += 1
        return hit


def _entry_cost(core: CampusCore, i: int, expected: bool) -> np.ndarray:
    """Expected steps to enter each cell of env ``i`` now (``inf`` where it cannot be entered)."""
    open_ = core.passable_map(i)
    if not expected:
        return np.where(open_, 1.0, np.inf)
    p_slip = core.slip[core.slip_row[i] + core.terrain]
    # the step compares the crowd noise with the density unclipped, so the block
    # probability is min(scale * density, 1); core.density_map clips density at 1
    k = core.tape_index()[i]
    density = core.tape_crowd.ravel()[k] * core.rules.hotspots[core.tape_pattern.ravel()[k]].astype(np.float64)
    p_block = np.minimum(CROWD_BLOCK_SCALE * density, 1.0)
    success = (1.0 - p_block) * (1.0 - p_slip)
    with np.errstate(divide="ignore"):
        return np.where(open_ & (success > 0), 1.0 / success, np.inf)


def _core_of(env: Any) -> CampusCore:
    if isinstance(env, CampusCore):
        return env
    core = getattr(getattr(env, "unwrapped", env), "core", None)
    if not isinstance(core, CampusCore):
        raise TypeError(
            f"ShortestPathPolicy needs a CampusNav-v0 env, its vector env or a CampusCore, got {type(env).__name__}"
        )
    return core


def _check_index(core: CampusCore, i: int) -> int:
    if not isinstance(i, (int, np.integer)) or not 0 <= i < core.n:
        raise ValueError(f"env index must be in 0..{core.n - 1}, got {i!r}")
    return int(i)
