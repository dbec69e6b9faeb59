"""Many walkers on one campus: a PettingZoo ``ParallelEnv`` on CampusNav-v0's causal model.

The env is a thin layer over ``WalkerCore`` (arrays in, arrays out): it turns
PettingZoo's per-agent dicts into one action array, steps every walker at once
and hands the batched observations back as per-agent views. It follows
PettingZoo's parallel API and its custom-env tutorial (``parallel_env`` is the
class, ``raw_env`` the AEC version through ``parallel_to_aec``); spaces, checks,
options and ``do()``/``undo()`` are CampusNav-v0's (``campus_env.env``), over the
larger variable set of ``scm``.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils.conversions import parallel_to_aec

from campus_env import causal, noise
from campus_env import layout as lay
from campus_env.env import (
    SHARED_METADATA,
    build_obs,
    check_action,
    check_flag,
    check_noise_seed,
    check_seed,
    observation_space,
    parse_options,
    status_lines,
)
from campus_env.multi_agent import scm
from campus_env.multi_agent.core import WalkerCore
from campus_env.multi_agent.render import WalkerRenderer, world_frame
from campus_env.schema import Action

__all__ = ["CampusWalkersEnv", "parallel_env", "raw_env"]

OPTION_KEYS = ("do", "goal", "start", "keep_trails")
TRIP_CYCLES = 200  # max_cycles of an episode of trips: CampusNav-v0's max_episode_steps
DAY_CYCLES = causal.LAST_MINUTE - causal.FIRST_MINUTE  # max_cycles of a respawning day: 7:00 to 23:00


class CampusWalkersEnv(ParallelEnv):
    """``num_agents`` walkers (``walker_0`` ..) crossing one CampusNav-v0 campus at the same time.

    ## Description
    One world: the context (day, semester, weather, gameday), the clock, road
    closures and the crowd are shared; each walker has its own start entrance and
    a goal caused by the context, as in CampusNav-v0. Walkers are part of the
    world (``campus_env.multi_agent.scm``): an outdoor cell holds ``capacity``
    walkers, walker density adds to the crowd that blocks moves, and grass that
    is walked often wears into a trail that is easier to cross and recovers when
    unused. ``causal_graph`` lists ``walker_density`` and ``trail`` with their
    parents; ``do()`` can hold them (``do(trail=0)`` switches trails off).

    ## Spaces
    Per walker, CampusNav-v0's: ``Discrete(5)`` actions and the observation space
    of ``obs_mode`` and ``observe_causal``. In the state vector's crowd patch and in
    the pixels the other walkers add to the crowd; trails show in the pixels.

    ## Rewards and episode end
    CampusNav-v0's per walker: -0.01 per step, -0.05 more for a blocked move (a
    full cell blocks too), +1 at the goal, where the walker terminates, goes
    indoors and leaves ``agents``. Every walker still out is truncated after
    ``max_cycles`` steps (default 200).

    With ``respawn=True`` an episode is a campus day: the clock starts at 7:00,
    every walker is truncated at 23:00 (``max_cycles`` defaults to the day), and a
    walker that arrives collects the +1, stays in ``agents`` and at once starts a
    new trip from that entrance to a goal the context causes at that minute
    (``infos``: ``is_success`` marks an arrival in this step, ``trips`` counts
    them). ``reset(options={"keep_trails": True})`` carries the trails over into
    the next day, so that days chained with ``do(day=...)`` make a week.

    ## Arguments
    ``num_agents``, ``capacity`` (walkers per outdoor cell), ``max_cycles``,
    ``respawn``, and CampusNav-v0's ``obs_mode``, ``observe_causal``, ``split``,
    ``semester``, ``layout``, ``render_mode`` (``"rgb_array"``: the whole campus,
    every walker).

    ## Example
    >>> from campus_env.multi_agent import parallel_env
    >>> env = parallel_env(num_agents=3, obs_mode="state")
    >>> obs, infos = env.reset(seed=0, options={"do": {"trail": 0.0}})
    >>> sorted(obs), obs["walker_0"].shape
    (['walker_0', 'walker_1', 'walker_2'], (72,))
    >>> obs, rewards, terminations, truncations, infos = env.step({a: 3 for a in env.agents})
    >>> env.causal_graph["trail"], env.interventions
    (('walker_density',), {'trail': 0.0})
    """

    metadata = {
        "name": "campusnav_walkers_v0",
        "render_modes": ["rgb_array"],
        "render_fps": 10,
        "is_parallelizable": True,
        **SHARED_METADATA,
        "validate_do": "campus_env.multi_agent.scm:validate_do",
        "causal_variables": tuple(scm.WALKER_VARIABLES),
    }

    def __init__(
        self,
        num_agents: int = 2,
        obs_mode: str = "dict",
        observe_causal: bool = True,
        split: str = "all",
        semester: str | None = None,
        layout: str | None = None,
        render_mode: str | None = None,
        capacity: int = scm.CAPACITY,
        max_cycles: int | None = None,
        respawn: bool = False,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        respawn = check_flag("respawn", respawn)
        if max_cycles is None:
            max_cycles = DAY_CYCLES if respawn else TRIP_CYCLES
        if isinstance(max_cycles, (bool, np.bool_)) or not isinstance(max_cycles, (int, np.integer)) or max_cycles < 1:
            raise ValueError(f"max_cycles must be a positive integer, got {max_cycles!r}")
        space = observation_space(obs_mode, observe_causal)  # checks obs_mode and observe_causal first
        if isinstance(num_agents, (bool, np.bool_)) or not isinstance(num_agents, (int, np.integer)) or num_agents < 1:
            raise ValueError(f"num_agents must be a positive integer, got {num_agents!r}")
        self.core = WalkerCore(int(num_agents), layout=layout, split=split, semester=semester, capacity=capacity,
                               respawn=respawn)
        self.respawn = respawn
        self.obs_mode, self.observe_causal = obs_mode, bool(observe_causal)
        self.render_mode = render_mode
        self.max_cycles = int(max_cycles)
        self.possible_agents = [f"walker_{i}" for i in range(self.core.n)]
        self.agents: list[str] = []
        self._index = {agent: i for i, agent in enumerate(self.possible_agents)}
        # one space object per walker, as PettingZoo asks (seeding one leaves the others alone)
        self._observation_spaces = {a: space if i == 0 else copy.deepcopy(space)
                                    for i, a in enumerate(self.possible_agents)}
        self._action_spaces = {a: spaces.Discrete(len(Action)) for a in self.possible_agents}
        self.renderer = WalkerRenderer(self.core) if obs_mode != "state" else None
        self._np_random: np.random.Generator | None = None
        self._live = np.zeros(self.core.n, dtype=bool)  # which walkers are in ``agents``
        self._batch: tuple[np.ndarray, Any] | None = None  # the last observations, batched: (walker ids, batch)

    def observation_space(self, agent: str) -> spaces.Space:
        return self._observation_spaces[self._check_agent(agent)]

    def action_space(self, agent: str) -> spaces.Space:
        return self._action_spaces[self._check_agent(agent)]

    @property
    def causal_graph(self) -> dict[str, tuple[str, ...]]:
        """The causal DAG: variable -> its parents (CampusNav-v0's and the walkers')."""
        return dict(scm.WALKER_CAUSAL_GRAPH)

    @property
    def interventions(self) -> dict[str, Any]:
        """The interventions in force."""
        return self.core.interventions_world()

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        """A new episode: the world from ``seed``, every walker back at a start entrance.

        ``options`` takes CampusNav-v0's ``"do"`` (any variable of ``causal_graph``),
        ``"goal"`` and ``"start"`` (for every walker), and ``"keep_trails"`` (True:
        the grass stays as worn as it is); other keys are ignored with a warning.
        """
        seed = check_seed(seed)
        codes, task = self._parse_options(options)
        keep_trails = check_flag("keep_trails", (options or {}).get("keep_trails", False))
        if seed is not None or self._np_random is None:
            self._np_random, _ = seeding.np_random(seed)
        world, walkers = scm.split_codes(codes)
        self.core.reset_world(noise.draw_key(self._np_random), world, walkers, task.get("goal"), task.get("start"),
                              first_minute=causal.FIRST_MINUTE if self.respawn else None, keep_trails=keep_trails)
        self.agents = list(self.possible_agents)
        self._live[:] = True
        return self._observations(), self._infos()

    def step(self, actions: Mapping[str, Any]):
        """Steps every walker in ``actions`` (one entry per walker in ``agents``) at once."""
        if not self.agents:
            raise RuntimeError("no walker is out: call reset() before step()")
        act = self._actions(actions)
        reward, terminated = self.core.step(act)
        truncated = bool(self.core.t[0] >= self.max_cycles)
        live = np.flatnonzero(self._live)
        agents = self.agents
        rewards = dict(zip(agents, reward[live].tolist(), strict=True))
        if self.respawn:
            terminated = np.zeros_like(terminated)  # an arrival starts the next trip
        terminations = dict(zip(agents, terminated[live].tolist(), strict=True))
        truncations = dict.fromkeys(agents, truncated)
        observations, infos = self._observations(), self._infos()
        if truncated:
            self._live[:] = False
        else:
            self._live &= ~terminated
        if truncated or terminated.any():
            self.agents = [self.possible_agents[i] for i in np.flatnonzero(self._live)]
        return observations, rewards, terminations, truncations, infos

    def do(self, **assignments: Any) -> None:
        """Hard intervention from now on, on the whole world, e.g. ``env.do(trail=0.0, gameday=True)``.

        Raises ``ValueError`` (and changes nothing) for an unknown variable or value.
        """
        world, walkers = scm.split_codes(scm.validate_do(assignments))
        self._require_reset("do")
        if world:
            self.core.intervene(self.core.all, world)
        self.core.intervene_walkers(walkers)

    def undo(self, *names: str) -> None:
        """Gives the named variables back to their mechanisms (all of them when none is named)."""
        names = scm.check_names(names)
        self._require_reset("undo")
        self.core.release(self.core.all, [n for n in names if n in causal.VARIABLES])
        self.core.release_walkers([n for n in names if n in scm.NEW_VARIABLES])

    def fork(self, noise_seed: int) -> CampusWalkersEnv:
        """A copy as it is now whose per-walker noise from here on comes from ``noise_seed`` (same seed, same fork)."""
        key = check_noise_seed(noise_seed)
        self._require_reset("fork")
        twin = copy.copy(self)
        twin.core = self.core.fork_world(key)
        twin.renderer = WalkerRenderer(twin.core) if self.renderer is not None else None
        twin._np_random = copy.deepcopy(self._np_random)
        twin._live = self._live.copy()
        twin.agents = list(self.agents)
        return twin

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            warnings.warn("render() called without a render_mode; pass render_mode='rgb_array'", stacklevel=2)
            return None
        self._require_reset("render")
        core = self.core
        values = core.walker_values()
        second = (f"{int(core.active.sum())} of {core.n} walkers out   step {core.t[0]}   "
                  f"walker density {values['walker_density']:.2f}   trail {values['trail']:.2f}")
        return world_frame(core, [status_lines(core, 0)[0], second])

    def close(self) -> None:
        pass

    # --- batches, for policies that act on every walker at once ------------------

    def observation_batch(self) -> Any:
        """The observations of the walkers in ``agents``, batched (leading axis in ``agents`` order).

        The batch the last ``reset`` or ``step`` built (no second build): an array,
        or a dict of arrays for ``obs_mode="dict"``.
        """
        if self._batch is None:
            raise RuntimeError("call reset() before observation_batch()")
        ids, batch = self._batch
        keep = self._live[ids]
        if keep.all():
            return batch
        if isinstance(batch, dict):
            return {key: value[keep] for key, value in batch.items()}
        return batch[keep]

    def agent_ids(self) -> np.ndarray:
        """The walker indices of ``agents`` (``walker_i`` is ``i``), in order."""
        return np.flatnonzero(self._live)

    def action_dict(self, actions: np.ndarray) -> dict[str, int]:
        """``step``'s dict from one action per walker (``(num_agents,)``, indexed by walker) or per agent
        in ``agents`` (``(len(agents),)``, in that order)."""
        actions = np.asarray(actions).reshape(-1)
        if len(actions) == self.core.n and len(actions) != len(self.agents):
            actions = actions[self._live]
        if len(actions) != len(self.agents):
            raise ValueError(f"action_dict() takes {self.core.n} actions (one per walker) or {len(self.agents)} "
                             f"(one per agent in env.agents), got {len(actions)}")
        return dict(zip(self.agents, actions.tolist(), strict=True))

    # --- the per-agent boundary ----------------------------------------------

    def causal_values(self) -> dict[str, Any]:
        """Current values of every causal variable of the world (``causal_graph``'s), user-facing."""
        return {**self.core.causal_values(0), **self.core.walker_values()}

    def _observations(self) -> dict[str, Any]:
        obs = build_obs(self.core, self.renderer, self.obs_mode, self.observe_causal)
        live = np.flatnonzero(self._live)
        if isinstance(obs, dict):
            parts = {key: value[live] for key, value in obs.items()}
            self._batch = (live, parts)
            return {agent: {key: value[j] for key, value in parts.items()} for j, agent in enumerate(self.agents)}
        self._batch = (live, obs[live])
        return dict(zip(self.agents, self._batch[1], strict=True))

    def _infos(self) -> dict[str, dict[str, Any]]:
        """Per walker: its goal, whether its last move was blocked, whether it arrived (and with
        ``respawn``, its trips so far); the world's ``causal`` values (one dict shared by all walkers)."""
        core = self.core
        live = np.flatnonzero(self._live)
        world = self.causal_values()
        goals = [lay.BUILDING_NAMES[g] for g in core.goal[live].tolist()]
        blocked = core.last_blocked[live].tolist()
        if self.respawn:
            success = core.arrived[live].tolist()
            return {agent: {"goal": g, "blocked": b, "is_success": s, "trips": n, "causal": world}
                    for agent, g, b, s, n in zip(self.agents, goals, blocked, success, core.trips[live].tolist(),
                                                 strict=True)}
        success = (core.pos[live] == core.goal_flat[live]).tolist()
        return {agent: {"goal": g, "blocked": b, "is_success": s, "causal": world}
                for agent, g, b, s in zip(self.agents, goals, blocked, success, strict=True)}

    def _actions(self, actions: Mapping[str, Any]) -> np.ndarray:
        """One int64 action per walker (walkers indoors stay), checked: every walker out acts, no other."""
        if not isinstance(actions, Mapping):
            raise TypeError(f"step() takes a dict of agent -> action, got {type(actions).__name__}")
        try:
            ids = np.fromiter(map(self._index.__getitem__, actions), dtype=np.int64, count=len(actions))
        except KeyError as err:
            raise ValueError(f"step(): unknown agent {err.args[0]!r}; agents are walker_0 .. "
                             f"walker_{self.core.n - 1}") from None
        if not self._live[ids].all() or len(ids) != len(self.agents):
            gone = [a for a in actions if not self._live[self._index[a]]]
            missing = sorted(set(self.agents) - set(actions))
            raise ValueError(f"step() needs one action for each agent in env.agents; "
                             f"{'done: ' + str(gone) if gone else 'missing: ' + str(missing[:5])}")
        act = np.zeros(self.core.n, dtype=np.int64)
        act[ids] = check_action(list(actions.values()), len(ids))
        return act

    def _parse_options(self, options: Mapping[str, Any] | None) -> tuple[dict[str, float], dict[str, Any]]:
        if options is not None and not isinstance(options, Mapping):
            raise TypeError(f"reset options must be a dict or None, got {type(options).__name__}: {options!r:.80}")
        options = dict(options or {})
        unknown = sorted(set(options) - set(OPTION_KEYS), key=repr)
        if unknown:
            warnings.warn(f"reset(): ignoring unknown option(s) {unknown}; valid options: {OPTION_KEYS}", stacklevel=3)
        do = options.get("do")
        codes = scm.validate_do({} if do is None else do)
        task = parse_options({key: options[key] for key in ("goal", "start") if key in options})
        return codes, task

    def _check_agent(self, agent: str) -> str:
        if agent not in self._index:
            raise ValueError(f"unknown agent {agent!r}; agents are walker_0 .. walker_{self.core.n - 1}")
        return agent

    def _require_reset(self, what: str) -> None:
        if self._np_random is None:
            raise RuntimeError(f"call reset() before {what}()")


def parallel_env(**kwargs: Any) -> CampusWalkersEnv:
    """The walkers' ``ParallelEnv``; takes ``CampusWalkersEnv``'s arguments."""
    return CampusWalkersEnv(**kwargs)


def raw_env(**kwargs: Any) -> AECEnv:
    """The same env with PettingZoo's agent-by-agent (AEC) API, through ``parallel_to_aec``."""
    return parallel_to_aec(parallel_env(**kwargs))
