"""Per-walker rows of one episode: what each walker met on its trip and how the trip went.

The unit of the walkers' causal analysis (``model_zoo.causal.walkers``) and of
their world-model data: every walker of an episode gives one row of

- ``walkers``: walkers on the campus (the episode's ``num_agents``);
- ``walker_density``: mean walker density of the cells it tried to enter (the
  crowd the other walkers add where it walks);
- ``trail``: mean trail wear of the cells it tried to enter;
- ``crowd``: mean crowd level it met there, the background crowd at the
  hotspots plus what the walkers add (the level that blocks its moves, ``core``);
- ``blocked_moves``: its refused moves (crowd, closures or a full cell);
- ``travel_time``: steps to its goal (``max_cycles`` when it never arrives);
- ``speed``: cells moved per step while out;
- ``arrived``: 1 when it reached its goal.

``walk_episode`` resets the env under ``do``, steps every walker with one crowd
policy (default: the plain shortest path, blind to trails and crowds, so that
routes do not depend on the variables under study) and records the rows, all
walkers at once. Numpy only.

>>> from campus_env.multi_agent import parallel_env
>>> rows = walk_episode(parallel_env(num_agents=3, obs_mode="state", max_cycles=20), seed=0)
>>> sorted(rows), rows["travel_time"].shape
(['arrived', 'blocked_moves', 'crowd', 'speed', 'trail', 'travel_time', 'walker_density', 'walkers'], (3,))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from campus_env.multi_agent import scm
from campus_env.multi_agent.policies import TrailOracle

__all__ = ["ROW_NAMES", "plain_oracle", "walk_episode"]

ROW_NAMES = ("walkers", "walker_density", "trail", "crowd", "blocked_moves", "travel_time", "speed", "arrived")


def plain_oracle() -> TrailOracle:
    """The shortest path in steps over open cells: routes blind to trails, crowds and other walkers."""
    return TrailOracle(grass_cost=0.0, full_cost=0.0, expected_cost=False, lookahead=0)


def walk_episode(env: Any, seed: int | None = None, do: Mapping[str, Any] | None = None,
                 policy: Callable[[Any], dict[str, int]] | None = None) -> dict[str, np.ndarray]:
    """Resets ``env`` (a ``parallel_env`` without ``respawn``) under ``do``, walks it to the end; per-walker rows.

    Returns ``{name: (num_agents,) float64}`` for every name of ``ROW_NAMES``.
    """
    core = env.unwrapped.core if hasattr(env, "unwrapped") else env.core
    if core.respawn:
        raise ValueError("walk_episode needs an env without respawn: a row is one trip per walker")
    policy = policy or plain_oracle()
    env.reset(seed=seed, options={"do": dict(do or {})})
    n = core.n
    met = {name: np.zeros(n) for name in ("walker_density", "trail", "crowd")}
    out_steps, moved_steps = np.zeros(n), np.zeros(n)
    travel = np.full(n, float(env.max_cycles))
    while env.agents:
        active = core.active.copy()
        actions = policy(env)
        act = np.zeros(n, dtype=np.int64)
        act[env.agent_ids()] = [actions[a] for a in env.agents]
        target = core.pos + core.moves[act]
        density = core.density_field()[target]
        hot = core.hotspots[core.tape_hot_base[core.k] + target]
        met["walker_density"] += density * active
        met["trail"] += core.trail[target] * active
        met["crowd"] += np.minimum(core.tape_crowd[core.k] * hot + scm.WALKER_CROWD_WEIGHT * density, 1.0) * active
        before = core.pos.copy()
        env.step(actions)
        out_steps += active
        moved_steps += active & (core.pos != before)
        reached = active & ~core.active
        travel[reached] = core.t[reached]
    steps = np.maximum(out_steps, 1.0)
    rows = {name: value / steps for name, value in met.items()}
    rows.update(walkers=np.full(n, float(n)), blocked_moves=core.blocked_moves.astype(np.float64),
                travel_time=travel, speed=moved_steps / steps, arrived=(travel < env.max_cycles).astype(np.float64))
    return {name: rows[name] for name in ROW_NAMES}
