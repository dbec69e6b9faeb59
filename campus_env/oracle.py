"""A shortest-path oracle for CampusNav-v0: the route of least expected travel time.

The oracle reads the simulation core, not the observation. Entering cell ``c``
succeeds with probability ``(1 - p_block(c)) * (1 - p_slip(c))``: crowds block
(``CROWD_BLOCK_SCALE * density``, see ``core.density_map``), rain and snow make
moves slip (``slip[weather, terrain]``), and closed cells (walls, closed
buildings and roads) cannot be entered at all. A failed move costs a step and
leaves the agent in place, so entering ``c`` takes ``1 / (1 - p_fail(c))`` steps
on average. Dijkstra's algorithm from the goal over these costs gives every
cell's expected steps-to-go, and the oracle moves to the neighbour of least
``cost + steps-to-go``; ``expected_cost=False`` gives the plain shortest path
over open cells instead. It replans every step under the context in force
(fields are cached on the context they depend on) and heeds closures in the next
``lookahead`` minutes, so that it never walks into a building about to shut it in.

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
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium.vector import VectorEnv

from campus_env import layout as lay
from campus_env.core import STAY, TAPE_LEN, CampusCore
from campus_env.rules import CROWD_BLOCK_SCALE
from campus_env.schema import Action

__all__ = ["ShortestPathPolicy", "distance_field"]

_MOVES = tuple(int(a) for a in (Action.NORTH, Action.SOUTH, Action.EAST, Action.WEST))  # the order breaks ties


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

    Buildings close on a schedule and the stadium roads close at 11:00 on
    gameday, and a closure shuts in whoever stands inside. So the oracle plans
    only over cells that stay open for the next ``lookahead`` minutes (the goal
    entrance excepted); when that leaves no way to the goal it plans on the
    cells open now, and failing that on the open cells alone, blind to weather
    and crowds.

    Args:
        expected_cost: True (default) weighs every cell by its expected number
            of attempts under weather and crowd; False takes the plain shortest
            path over the open cells (BFS), blind to weather and crowds.
        lookahead: minutes of closures ahead the plan respects (0: the current
            context alone).
        cache_size: distance fields kept per core before the cache is emptied.
    """

    def __init__(self, expected_cost: bool = True, lookahead: int = 30, cache_size: int = 512):
        if not isinstance(lookahead, int) or isinstance(lookahead, bool) or lookahead < 0:
            raise ValueError(f"lookahead must be a non-negative integer (minutes), got {lookahead!r}")
        if not isinstance(cache_size, int) or isinstance(cache_size, bool) or cache_size < 1:
            raise ValueError(f"cache_size must be a positive integer, got {cache_size!r}")
        self.expected_cost = bool(expected_cost)
        self.lookahead = lookahead
        self.cache_size = cache_size
        self._cache: weakref.WeakKeyDictionary[CampusCore, dict[tuple, _Plan]] = weakref.WeakKeyDictionary()
        self.fields_computed = 0  # how many distance fields were built (cache misses)
        plans = [(self.expected_cost, lookahead), (self.expected_cost, 0), (False, 0)]
        self._fallbacks = tuple(dict.fromkeys(plans))  # in order, without repeats

    def __repr__(self) -> str:
        return f"ShortestPathPolicy(expected_cost={self.expected_cost}, lookahead={self.lookahead})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = None  # weak references do not pickle; the cache refills on demand
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._cache = weakref.WeakKeyDictionary()

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
        """Expected steps from every cell to env ``i``'s goal, as an unpadded (H, W) float map.

        ``inf`` marks cells that cannot reach the goal under the plan (or cannot
        be entered). With ``expected_cost=False`` it counts the moves of the
        shortest path.
        """
        core = _core_of(env)
        field = self._plan(core, _check_index(core, i), *self._fallbacks[0]).field
        L = core.layout
        return field.reshape(L.terrain.shape)[lay.PAD : lay.PAD + L.height, lay.PAD : lay.PAD + L.width]

    def route(self, env: Any, i: int = 0) -> list[tuple[int, int]]:
        """The cells (row, col), unpadded, the oracle plans to walk from env ``i``'s position to its goal.

        The plan is made under the context in force now, as if no move failed
        and nothing changed on the way; it starts at the agent's cell and ends at
        the goal entrance (or where the plan has no way on).
        """
        core = _core_of(env)
        i = _check_index(core, i)
        goal = int(core.entrance_flat[core.goal[i]])
        pos = int(core.pos[i])
        plan = next(
            (p for p in (self._plan(core, i, *f) for f in self._fallbacks) if np.isfinite(p.field[pos])),
            None,
        )
        cells = [pos]
        while plan is not None and pos != goal and len(cells) <= core.cells:
            action = plan.best_action(core, pos)
            if action == STAY:
                break
            pos += int(core.moves[action])
            cells.append(pos)
        rows, cols = core.layout.unflat(np.array(cells))
        return list(zip(rows.tolist(), cols.tolist(), strict=True))

    def route_time(self, env: Any, route: list[tuple[int, int]], i: int = 0) -> float:
        """Expected steps to walk ``route`` (cells as :meth:`route` gives them) under env ``i``'s context now.

        The sum of the entry costs of every cell after the first: ``inf`` when
        one of them cannot be entered (closed, or closing within ``lookahead``).
        Walking another context's route here tells whether it is still optimal.
        """
        core = _core_of(env)
        plan = self._plan(core, _check_index(core, i), *self._fallbacks[0])
        if not route:
            return 0.0
        rows, cols = np.array(route).T
        return float(plan.cost[core.layout.flat(rows[1:], cols[1:])].sum())

    # --- internals -------------------------------------------------------------

    def _action(self, core: CampusCore, i: int) -> int:
        pos = int(core.pos[i])
        if pos == int(core.entrance_flat[core.goal[i]]):
            return STAY
        for expected, lookahead in self._fallbacks:
            action = self._plan(core, i, expected, lookahead).best_action(core, pos)
            if action != STAY:
                return action
        return STAY

    def _plan(self, core: CampusCore, i: int, expected: bool, lookahead: int) -> _Plan:
        """The cached plan for env ``i``'s context, built on a miss."""
        cache = self._cache.setdefault(core, {})
        k = int(core.tape_index()[i])  # the current step on the flat tape; env i's row ends at row_end
        row_end = (k // TAPE_LEN + 1) * TAPE_LEN
        access = tuple(np.unique(core.tape_access.ravel()[k : min(k + lookahead + 1, row_end)]).tolist())
        key: tuple = (int(core.goal[i]), access)
        if expected:
            k_pattern, k_crowd = core.tape_pattern.ravel()[k], core.tape_crowd.ravel()[k]
            key += (int(k_pattern), float(k_crowd), int(core.slip_row[i]))
        plan = cache.get(key)
        if plan is None:
            cost = _entry_cost(core, i, expected, access)
            plan = _Plan(distance_field(cost, int(core.entrance_flat[core.goal[i]]), core.width), cost)
            if len(cache) >= self.cache_size:
                cache.clear()
            cache[key] = plan
            self.fields_computed += 1
        return plan


@dataclass(frozen=True)
class _Plan:
    """A distance field to the goal and the entry costs it was built from (flat, padded)."""

    field: np.ndarray
    cost: np.ndarray

    def best_action(self, core: CampusCore, pos: int) -> int:
        """The move to the neighbour of least ``cost + field`` (``Action.STAY`` when none leads to the goal)."""
        best, best_value = STAY, math.inf
        for a in _MOVES:
            n = pos + int(core.moves[a])
            value = self.cost[n] + self.field[n]
            if value < best_value:
                best, best_value = a, value
        return best


def _entry_cost(core: CampusCore, i: int, expected: bool, access: tuple[int, ...]) -> np.ndarray:
    """Expected steps to enter each cell of env ``i`` (``inf`` where it cannot be entered).

    A cell counts as open when every access state in ``access`` (now and the
    lookahead) opens it; the goal entrance is always open.
    """
    open_ = core.passable_map(i) & core.rules.passable[list(access)].all(axis=0)[core.terrain]
    open_ |= core.terrain == core.goal_code[i]
    if not expected:
        return np.where(open_, 1.0, np.inf)
    p_slip = core.slip[core.slip_row[i] + core.terrain]
    p_block = CROWD_BLOCK_SCALE * core.density_map(i)
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
