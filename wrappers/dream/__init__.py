"""Dream environments: a world model of the zoo behind the Gymnasium API.

``DreamEnv`` is a ``gymnasium.Env`` and ``DreamVectorEnv`` a batched
``gymnasium.vector.VectorEnv`` whose steps are imagined by a ``model_zoo``
world model instead of simulated, as in Ha & Schmidhuber (2018), "World
Models" (arXiv:1803.10122), where a controller is trained "inside the dream".

Every episode starts from a *real* observation, a reset of the real env (or
the first frame of a dataset episode), filtered through the model's
``observe``; every step is one ``imagine`` call. A learner sees either the
model's decoding of its state, in the real env's own observation space, so a
policy moves between dream and reality unchanged (``obs="decoded"``), or the
model's feature vector (``obs="features"``).

A dream must never crash a learner: observations are always finite and inside
the observation space (``info["guarded"]`` counts the elements fixed), and a
model that produces a non-finite reward, state or observation ends the episode
with ``info["model_error"] = True``.

Rooms: ``imagination`` (the batched model core), ``starts`` (where start
observations come from), ``guard`` (action checks and observation guard),
``base`` (what both envs share), ``env`` and ``vector`` (the two envs).
"""

from wrappers.dream.env import DreamEnv
from wrappers.dream.imagination import FEATURE_BOUND, OBS_MODES
from wrappers.dream.vector import DEFAULT_POOL_SIZE, DreamVectorEnv

__all__ = ["DEFAULT_POOL_SIZE", "FEATURE_BOUND", "OBS_MODES", "DreamEnv", "DreamVectorEnv"]
