"""Many walkers on one CampusNav-v0 campus, as a PettingZoo environment.

``parallel_env(num_agents=N, **campusnav_kwargs)`` gives a PettingZoo
``ParallelEnv`` with agents ``walker_0`` .. ``walker_{N-1}`` on CampusNav-v0's map,
causal model, observation modes and ``do()``/``undo()``; ``raw_env`` is the same
env with the agent-by-agent (AEC) API. All walkers are stepped by one numpy core
(``core.WalkerCore``), and the causal model gains what walkers add to the world
(``scm``: capacity, walker density, trails). ``respawn=True`` turns an episode
into a campus day of trips; ``policies`` steps the whole crowd in one call (the
trail-aware shortest-path oracle, one shared policy, random).

>>> from campus_env.multi_agent import parallel_env
>>> env = parallel_env(num_agents=2, obs_mode="state")
>>> obs, infos = env.reset(seed=1)
>>> env.agents
['walker_0', 'walker_1']
"""

from campus_env.multi_agent.env import CampusWalkersEnv, parallel_env, raw_env
from campus_env.multi_agent.policies import RandomPolicy, SharedPolicy, TrailOracle
from campus_env.multi_agent.scm import WALKER_CAUSAL_GRAPH, WALKER_VARIABLES

__all__ = [
    "WALKER_CAUSAL_GRAPH",
    "WALKER_VARIABLES",
    "CampusWalkersEnv",
    "RandomPolicy",
    "SharedPolicy",
    "TrailOracle",
    "parallel_env",
    "raw_env",
]
