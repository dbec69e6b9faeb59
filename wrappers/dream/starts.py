"""Where a dream's start observations come from: resets of a real env or vector env, or dataset episodes.

Every dream starts from a real observation, so that imagination begins where
reality does. A source draws ``n`` start observations as one batch, seeding the
real resets from the dream env's own generator (so a seeded dream is
reproducible) and passing the dream's interventions to them, so that a start
state is drawn under the same ``do()`` as the dream that follows.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv

from model_zoo.base import WorldModel
from model_zoo.metadata import entry_point_metadata, resolve_function
from wrappers.batched import batch_size, concat_batches, select_rows, stack_rows
from wrappers.dream.guard import Observation

__all__ = ["DatasetStarts", "EnvStarts", "StartSource", "VectorStarts", "dataset_frames", "make_start_source"]

SYNC_REAL_ENVS = 8  # sub-envs of the real SyncVectorEnv that collects start observations of a foreign env
_SEED_HIGH = 2**31 - 1


def _options_with_do(do: Mapping[str, Any]) -> dict[str, Any] | None:
    return {"do": dict(do)} if do else None


class EnvStarts:
    """Start observations from resets of one real env, seeded from the dream env's generator."""

    def __init__(self, env: gym.Env, owned: bool):
        self.env, self.owned = env, owned
        self.observation_space, self.action_space = env.observation_space, env.action_space

    def draw(self, n: int, rng: np.random.Generator, do: Mapping[str, Any]) -> Observation:
        options = _options_with_do(do)
        return stack_rows([self.env.reset(seed=int(rng.integers(_SEED_HIGH)), options=options)[0] for _ in range(n)])

    def close(self) -> None:
        if self.owned:
            self.env.close()


class VectorStarts:
    """Start observations from resets of a real vector env (as many rounds as needed)."""

    def __init__(self, envs: VectorEnv, owned: bool):
        self.envs, self.owned = envs, owned
        self.observation_space, self.action_space = envs.single_observation_space, envs.single_action_space

    def draw(self, n: int, rng: np.random.Generator, do: Mapping[str, Any]) -> Observation:
        options = _options_with_do(do)
        rounds, have = [], 0
        while have < n:
            obs, _ = self.envs.reset(seed=int(rng.integers(_SEED_HIGH)), options=options)
            rounds.append(obs)
            have += self.envs.num_envs
        return select_rows(concat_batches(rounds), slice(0, n))

    def close(self) -> None:
        if self.owned:
            self.envs.close()


class DatasetStarts:
    """Start observations drawn (with replacement) from dataset frames: episodes' first, or any of them."""

    def __init__(self, frames: Observation, observation_space: gym.Space):
        self.frames = frames
        self.count = batch_size(frames)
        self.observation_space = observation_space
        self.action_space = None

    def draw(self, n: int, rng: np.random.Generator, do: Mapping[str, Any]) -> Observation:
        return select_rows(self.frames, rng.integers(self.count, size=n))

    def close(self) -> None:
        pass


StartSource = EnvStarts | VectorStarts | DatasetStarts


START_FRAMES = ("first", "any")


def dataset_frames(dataset: Any, observation_space: gym.Space, which: str = "first") -> Observation:
    """Start observations of a Minari dataset, a dataset id or a list of ``Episode``.

    ``which="first"``: the first observation of every episode; ``"any"``: every
    observation an action was taken from (all but each episode's last), the
    replay states of MBPO's branched rollouts (Janner et al. 2019, arXiv:1906.08253).
    """
    if which not in START_FRAMES:
        raise ValueError(f"start_frames must be one of {', '.join(map(repr, START_FRAMES))}, got {which!r}")
    import minari

    from model_zoo.data import Episode, load_episodes

    if isinstance(dataset, (str, os.PathLike, minari.MinariDataset)):
        episodes = load_episodes(dataset)
    else:
        episodes = list(dataset)
        for episode in episodes:
            if not isinstance(episode, Episode):
                raise TypeError(
                    "dataset must be a Minari dataset, a dataset id or a list of model_zoo.data.Episode, "
                    f"got a list holding {type(episode).__name__}"
                )
    if not episodes:
        raise ValueError("the dataset has no episodes to start dreams from")
    if select_rows(episodes[0].obs, 0) not in observation_space:
        raise ValueError(f"the dataset's first observation is outside the model's space {observation_space}")
    if which == "first":
        return stack_rows([select_rows(e.obs, 0) for e in episodes])
    return concat_batches([select_rows(e.obs, slice(0, max(1, len(e.action)))) for e in episodes])


def _registered_id(env_id: str) -> str:
    """The registered id of ``env_id``; a ``"module:Name"`` id imports its module first (which registers it)."""
    module, sep, name = env_id.rpartition(":")
    if sep:
        importlib.import_module(module)
    return name


def _has_native_vector_env(env_id: str) -> bool:
    """Whether the registered id has a ``vector_entry_point``."""
    return gym.spec(_registered_id(env_id)).vector_entry_point is not None


def _source_from_env(env: Any, env_kwargs: Mapping[str, Any] | None, num_envs: int | None) -> StartSource:
    if isinstance(env, str):
        kwargs = dict(env_kwargs or {})
        if num_envs is None:
            return EnvStarts(gym.make(env, **kwargs), owned=True)
        if _has_native_vector_env(env):
            return VectorStarts(gym.make_vec(env, num_envs=num_envs, **kwargs), owned=True)
        n = min(num_envs, SYNC_REAL_ENVS)
        return VectorStarts(gym.make_vec(env, num_envs=n, vectorization_mode="sync", **kwargs), owned=True)
    if isinstance(env, VectorEnv):
        return VectorStarts(env, owned=False)
    if isinstance(env, gym.Env):
        return EnvStarts(env, owned=False)
    raise TypeError(f"env must be an env id, a gymnasium.Env or a gymnasium VectorEnv, got {type(env).__name__}")


def kwargs_for_space(env_id: str, space: gym.Space) -> dict[str, Any]:
    """The ``gym.make`` kwargs of ``env_id`` that give observation ``space``, when the env's metadata names a
    function that finds them (``metadata["env_kwargs_for"]``, as CampusNav-v0's: state, pixels or dict); else
    none, and the env's defaults must match the model."""
    finder = resolve_function(entry_point_metadata(_registered_id(env_id)).get("env_kwargs_for"))
    if finder is None:
        return {}
    try:
        return dict(finder(space))
    except ValueError:  # not a space of this env: the usual mismatch error follows
        return {}


def make_start_source(
    model: WorldModel,
    env: Any,
    dataset: Any,
    env_kwargs: Mapping[str, Any] | None,
    num_envs: int | None,
    start_frames: str = "first",
) -> StartSource:
    """The source of start observations; ``num_envs`` None for a single dream env."""
    if (env is None) == (dataset is None):
        raise ValueError(
            "give exactly one source of start states: env (an env id, a gymnasium.Env or VectorEnv) or dataset "
            f"(a Minari dataset, dataset id or list of Episode); got env={env!r} and dataset={dataset!r}"
        )
    if env_kwargs and not isinstance(env, str):
        raise ValueError("env_kwargs only applies when env is an env id")
    if start_frames != "first" and dataset is None:
        raise ValueError(f"start_frames={start_frames!r} needs a dataset to draw replay states from")
    if dataset is not None:
        frames = dataset_frames(dataset, model.observation_space, start_frames)
        return DatasetStarts(frames, model.observation_space)
    if isinstance(env, str) and env_kwargs is None:
        env_kwargs = kwargs_for_space(env, model.observation_space)
    source = _source_from_env(env, env_kwargs, num_envs)
    for what, real, built in (
        ("observation", source.observation_space, model.observation_space),
        ("action", source.action_space, model.action_space),
    ):
        if real != built:
            source.close()
            raise ValueError(f"the model was built for the {what} space {built}, but the env has {real}")
    return source
