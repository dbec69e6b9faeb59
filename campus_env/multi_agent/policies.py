"""Policies for the crowd: one call gives every walker's action.

- ``TrailOracle``: CampusNav-v0's shortest-path oracle (``campus_env.oracle``)
  for all walkers at once. Its entry costs are the oracle's (expected attempts
  under weather, crowd and closures, the next ``lookahead`` minutes of closures
  respected) with the walkers' world added: a trail eases slips and crowd
  blocks as ``scm.ease`` says, and unworn grass carries a planning cost
  ``grass_cost`` that a worn trail takes away, the discomfort of untrodden
  ground in Helbing et al.'s active walker model ("Active walker model for the
  formation of human and animal trail systems", Phys. Rev. E 56, 1997), which
  is what lets trails attract walkers and grow into a network. It keeps one
  distance field per goal building, computed for all goals at once by numpy
  relaxation (a vectorised Bellman-Ford, whose fixed point is Dijkstra's), and
  rebuilds them only when the context or the trails change; each step is then
  a gather over the walkers. Other walkers are left out of the plan (they move
  every step) but not out of the step: a walker facing a full cell weighs it
  ``full_cost`` more and side-steps, as pedestrians do, instead of queueing into
  gridlock. With ``grass_cost=0``, ``full_cost=0`` and no trails its actions
  are ``ShortestPathPolicy``'s.
- ``SharedPolicy``: any callable from an observation batch to an action batch
  (a trained controller, ``lambda obs: sb3_model.predict(obs)[0]``) applied to
  every walker in one call per step. ``campus_env`` never imports torch: the
  caller passes the callable in.
- ``RandomPolicy``: uniform actions from its own seeded generator.

Each is called on the env (``env.step(policy(env))``) and gives the dict
``step`` takes; ``policy.act(env)`` gives the ``(num_agents,)`` array over all
walkers, and the oracle also acts on a bare ``WalkerCore``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from campus_env.core import STAY, TAPE_LEN
from campus_env.multi_agent import scm
from campus_env.multi_agent.core import WalkerCore
from campus_env.rules import CROWD_BLOCK_SCALE
from campus_env.schema import Action

__all__ = ["CrowdPolicy", "RandomPolicy", "SharedPolicy", "TrailOracle", "distance_fields"]

_MOVES = np.array([int(a) for a in (Action.NORTH, Action.SOUTH, Action.EAST, Action.WEST)])  # the order breaks ties


def distance_fields(cost: np.ndarray, goals: np.ndarray, width: int) -> np.ndarray:
    """Least total cost from every cell to each goal, for G goals at once: ``(G, cells)``.

    ``cost[g, c]`` is the cost of entering cell ``c`` on the way to ``goals[g]``
    (``inf`` where it cannot be entered) on a flat padded grid whose border is
    impassable; moves go to the 4 neighbours. Relaxes ``field[c] = min over
    neighbours n of cost[n] + field[n]`` for every cell at once until nothing
    changes: the same sums as ``campus_env.oracle.distance_field`` (Dijkstra), so
    the same values.

    >>> cost = np.array([[np.inf] * 4 + [np.inf, 1.0, 2.0, np.inf] + [np.inf] * 4])
    >>> distance_fields(cost, np.array([6]), width=4)[0, 5:7].tolist()
    [2.0, 0.0]
    """
    cost = np.asarray(cost, dtype=np.float64)
    field = np.full(cost.shape, np.inf)
    field[np.arange(len(goals)), goals] = 0.0
    while True:
        through = cost + field  # what a neighbour pays to go through each cell
        new = field.copy()
        for s in (width, 1):
            np.minimum(new[:, :-s], through[:, s:], out=new[:, :-s])  # through the cell s further on
            np.minimum(new[:, s:], through[:, :-s], out=new[:, s:])  # through the cell s before
        if np.array_equal(new, field):
            return field
        field = new


class CrowdPolicy:
    """Base class: ``act(env)`` gives one action per walker; calling the policy gives ``step``'s dict."""

    def act(self, env: Any) -> np.ndarray:
        """``(num_agents,)`` int64: an action for every walker (those not in ``agents`` are ignored)."""
        raise NotImplementedError("act(self, env) -> np.ndarray of shape (num_agents,), int64")

    def __call__(self, env: Any) -> dict[str, int]:
        return _env_of(env).action_dict(self.act(env))


class RandomPolicy(CrowdPolicy):
    """Uniform random actions for every walker, from a generator seeded with ``seed``."""

    def __init__(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)

    def __repr__(self) -> str:
        return "RandomPolicy()"

    def act(self, env: Any) -> np.ndarray:
        return self.rng.integers(0, len(Action), _core_of(env).n, dtype=np.int64)


class SharedPolicy(CrowdPolicy):
    """One policy for every walker: ``fn(observation batch) -> action batch``, called once per step.

    The batch is ``env.observation_batch()`` (the observations of ``agents``,
    leading axis in their order); ``fn`` returns one action per row. ``calls``
    counts the calls.

    Args:
        fn: e.g. ``lambda obs: model.predict(obs, deterministic=True)[0]`` for a
            stable-baselines3 model, or a trained controller.
    """

    def __init__(self, fn: Callable[[Any], Any]):
        if not callable(fn):
            raise TypeError(f"SharedPolicy takes a callable obs batch -> action batch, got {type(fn).__name__}")
        self.fn = fn
        self.calls = 0

    def __repr__(self) -> str:
        return f"SharedPolicy({self.fn!r})"

    def act(self, env: Any) -> np.ndarray:
        env = _env_of(env)
        actions = self._batch_actions(env)
        out = np.zeros(env.core.n, dtype=np.int64)
        out[env.agent_ids()] = actions
        return out

    def __call__(self, env: Any) -> dict[str, int]:
        env = _env_of(env)
        return dict(zip(env.agents, self._batch_actions(env).tolist(), strict=True))

    def _batch_actions(self, env: Any) -> np.ndarray:
        batch = env.observation_batch()
        actions = np.asarray(self.fn(batch)).reshape(-1)
        self.calls += 1
        if len(actions) != len(env.agents):
            raise ValueError(f"the shared policy returned {len(actions)} actions for {len(env.agents)} agents")
        return actions.astype(np.int64)


@dataclass
class _Plans:
    """One core's plans: per (expected, lookahead) level, its context key, entry costs and distance fields."""

    world: int = -1  # the world key they were built for
    trail: np.ndarray | None = None  # the trail field they were built on
    levels: dict[tuple[bool, int], tuple[tuple, np.ndarray, np.ndarray]] = field(default_factory=dict)


class TrailOracle(CrowdPolicy):
    """The shortest-path oracle for every walker at once, its costs read from the trails (module docstring).

    Args:
        grass_cost: planning cost of entering unworn grass, on top of the
            expected attempts; a fully worn trail removes it (0: the
            single-agent oracle's costs, trails still easing slips and crowds).
        full_cost: what a move into a cell at capacity weighs on top of its
            plan (0: walkers queue behind full cells).
        expected_cost: as ``ShortestPathPolicy``: expected attempts (True) or
            plain steps over open cells (False).
        lookahead: minutes of closures ahead the plan respects.
        trail_tolerance: the fields are rebuilt once some cell's wear moved by
            more than this since they were built (0: on every change).
    """

    def __init__(self, grass_cost: float = 0.5, full_cost: float = 2.5, expected_cost: bool = True,
                 lookahead: int = 30, trail_tolerance: float = 0.05):
        if isinstance(grass_cost, bool) or not isinstance(grass_cost, (int, float)) or not 0 <= grass_cost < np.inf:
            raise ValueError(f"grass_cost must be a non-negative number, got {grass_cost!r}")
        if isinstance(full_cost, bool) or not isinstance(full_cost, (int, float)) or not 0 <= full_cost < np.inf:
            raise ValueError(f"full_cost must be a non-negative number, got {full_cost!r}")
        if not isinstance(lookahead, int) or isinstance(lookahead, bool) or lookahead < 0:
            raise ValueError(f"lookahead must be a non-negative integer (minutes), got {lookahead!r}")
        if isinstance(trail_tolerance, bool) or not isinstance(trail_tolerance, (int, float)) or trail_tolerance < 0:
            raise ValueError(f"trail_tolerance must be a non-negative number, got {trail_tolerance!r}")
        self.grass_cost = float(grass_cost)
        self.full_cost = float(full_cost)
        self.expected_cost = bool(expected_cost)
        self.lookahead = lookahead
        self.trail_tolerance = float(trail_tolerance)
        plans = [(self.expected_cost, lookahead), (self.expected_cost, 0), (False, 0)]
        self._fallbacks = tuple(dict.fromkeys(plans))  # as ShortestPathPolicy: in order, without repeats
        self._cache: weakref.WeakKeyDictionary[WalkerCore, _Plans] = weakref.WeakKeyDictionary()
        self.fields_computed = 0  # distance fields built (one per goal building per rebuild)

    def __repr__(self) -> str:
        return (f"TrailOracle(grass_cost={self.grass_cost}, expected_cost={self.expected_cost}, "
                f"lookahead={self.lookahead})")

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cache": None}  # weak references do not pickle; the cache refills on demand

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._cache = weakref.WeakKeyDictionary()

    def act(self, env: Any) -> np.ndarray:
        """Every walker's move to the neighbour of least ``cost + field`` (stay at the goal, indoors,
        or where no plan leads on), the fallback plans tried in turn as ``ShortestPathPolicy`` does."""
        core = _core_of(env)
        actions = np.full(core.n, STAY, dtype=np.int64)
        todo = np.flatnonzero(core.active & (core.pos != core.goal_flat))
        plans = self._plans(core)
        for level in self._fallbacks:
            if not len(todo):
                break
            cost, fields = self._level(core, plans, level, core.goal[todo])
            nbr = core.pos[todo, None] + core.moves[_MOVES]  # (m, 4)
            goal = core.goal[todo, None]
            value = cost[goal, nbr] + fields[goal, nbr]
            if self.full_cost:
                value = value + self.full_cost * (core.count[nbr] >= core.cell_capacity[nbr])
            best = value.argmin(axis=1)  # the first of equals, as the single oracle's strict <
            found = np.isfinite(value[np.arange(len(todo)), best])
            actions[todo[found]] = _MOVES[best[found]]
            todo = todo[~found]
        return actions

    def cost_to_go(self, env: Any, building: int) -> np.ndarray:
        """The planning cost from every cell to ``building``'s entrance, flat over the padded map."""
        core = _core_of(env)
        return self._level(core, self._plans(core), self._fallbacks[0], np.array([building]))[1][building]

    # --- plans -----------------------------------------------------------------

    def _plans(self, core: WalkerCore) -> _Plans:
        """The core's plans, emptied for a new world or once the trails moved past ``trail_tolerance``."""
        plans = self._cache.get(core)
        if plans is None:
            plans = self._cache[core] = _Plans()
        world = int(core.key[0])
        moved = plans.trail is None or np.abs(core.trail - plans.trail).max() > self.trail_tolerance
        if plans.world != world or moved:
            plans.world, plans.trail, plans.levels = world, core.trail.copy(), {}
        return plans

    def _level(self, core: WalkerCore, plans: _Plans, level: tuple[bool, int], goals: np.ndarray):
        """Entry costs and distance fields ``(buildings, cells)`` of one plan level, the rows ``goals`` built."""
        expected, lookahead = level
        k = int(core.tape_index()[0])  # one world: every walker's tape row holds the same context
        row_end = (k // TAPE_LEN + 1) * TAPE_LEN
        access = tuple(np.unique(core.tape_access[k : min(k + lookahead + 1, row_end)]).tolist())
        key: tuple = (access,)
        if expected:
            key += (int(core.tape_pattern[k]), float(core.tape_crowd[k]), int(core.slip_row[0]))
        entry = plans.levels.get(level)
        if entry is None or entry[0] != key:
            cost = self._entry_costs(core, expected, access, plans.trail)
            entry = (key, cost, np.full(cost.shape, np.nan))
            plans.levels[level] = entry
        _, cost, fields = entry
        missing = np.unique(goals)[np.isnan(fields[np.unique(goals), 0])]
        if len(missing):
            fields[missing] = distance_fields(cost[missing], core.entrance_flat[missing], core.width)
            self.fields_computed += len(missing)
        return cost, fields

    def _entry_costs(self, core: WalkerCore, expected: bool, access: tuple[int, ...], trail: np.ndarray):
        """``(buildings, cells)`` planning cost of entering each cell on the way to each building.

        As ``campus_env.oracle``: a cell is open when every access state of
        ``access`` opens it, the goal's own door always; its cost is the expected
        number of attempts (trails easing slips and crowd blocks), plus
        ``grass_cost`` times the unworn share of a grass cell.
        """
        k = int(core.tape_index()[0])
        base = core.tape_pass_base[k]
        open_ = core.pass_map[base : base + core.cells] & core.rules.passable[list(access)].all(axis=0)[core.terrain]
        if expected:
            ease = scm.ease(trail)
            p_slip = core.slip[core.slip_row[0] + core.terrain] * ease
            density = core.tape_crowd[k] * core.rules.hotspots[core.tape_pattern[k]] * ease
            success = (1.0 - CROWD_BLOCK_SCALE * np.minimum(density, 1.0)) * (1.0 - p_slip)
            with np.errstate(divide="ignore"):
                attempts = np.where(success > 0, 1.0 / success, np.inf)
        else:
            attempts = np.ones(core.cells)
        if self.grass_cost:
            attempts = attempts + self.grass_cost * (1.0 - trail) * core.grass
        doors = core.terrain[None, :] == core.door_codes[:, None]  # (buildings, cells): each goal's door
        return np.where(open_[None, :] | doors, attempts[None, :], np.inf)


def _env_of(env: Any) -> Any:
    env = getattr(env, "unwrapped", env)
    if not hasattr(env, "action_dict"):
        raise TypeError(f"a crowd policy is called on campus_env.multi_agent.parallel_env(...), "
                        f"got {type(env).__name__}")
    return env


def _core_of(env: Any) -> WalkerCore:
    if isinstance(env, WalkerCore):
        return env
    core = getattr(getattr(env, "unwrapped", env), "core", None)
    if not isinstance(core, WalkerCore):
        raise TypeError(f"a crowd policy needs campus_env.multi_agent.parallel_env(...) or a WalkerCore, "
                        f"got {type(env).__name__}")
    return core
