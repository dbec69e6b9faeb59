"""campus_env: the CampusNav-v0 Gymnasium environment.

Importing the package registers the ids (``gym.make("campus_env:CampusNav-v0")``
also works without the import).

>>> import gymnasium as gym
>>> import campus_env
>>> env = gym.make("CampusNav-v0")
>>> sorted(env.observation_space.spaces)
['causal', 'image', 'state']
"""

from gymnasium.envs.registration import register, registry

from campus_env.causal import CAUSAL_GRAPH, HELDOUT_CONTEXTS, VARIABLES
from campus_env.env import CampusNavEnv
from campus_env.layout import LayoutError, load_layout
from campus_env.schema import Action
from campus_env.vector import CampusNavVectorEnv

__all__ = [
    "CAUSAL_GRAPH",
    "HELDOUT_CONTEXTS",
    "VARIABLES",
    "Action",
    "CampusNavEnv",
    "CampusNavVectorEnv",
    "LayoutError",
    "load_layout",
]

if "CampusNav-v0" not in registry:
    register(
        id="CampusNav-v0",
        entry_point="campus_env.env:CampusNavEnv",
        vector_entry_point="campus_env.vector:CampusNavVectorEnv",
        max_episode_steps=200,
    )
