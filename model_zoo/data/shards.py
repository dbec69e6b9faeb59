"""Stepping a slice of a collection's sub-envs and cutting what they return into episodes.

``collect`` splits the ``n`` sub-envs of its vector env into contiguous shards and
runs each with ``run_shard``, here or as a Ray task (``model_zoo.parallel``). A shard
of sub-envs ``[start, stop)`` is a vector env of ``stop - start`` envs reset with
``seed + start``, so its env ``j`` is sub-env ``start + j`` of the whole. Random
actions come from the whole batch's action space, seeded once, sampled once per
step and cut to the shard's rows, so a sub-env's actions do not depend on the
shards; the space goes back to the caller, which hands it to the next round.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from gymnasium.envs.registration import EnvSpec
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

__all__ = ["Collected", "ShardJob", "ShardResult", "run_shard"]

Policy = Callable[[Any], Any]
CausalCodes = Callable[[Any], "np.ndarray | None"]


class ShardJob(NamedTuple):
    """Sub-envs ``[start, stop)`` of ``num_envs``, through the grid cells ``cells`` (see the module docstring)."""

    spec: EnvSpec  # a spec rather than an id: a Ray worker need not have imported the env's package
    make_kwargs: dict[str, Any]
    num_envs: int
    start: int
    stop: int
    quotas: np.ndarray  # episodes of each of the shard's sub-envs, per cell
    cells: list[tuple[int, dict[str, Any] | None]]  # (cell index, reset-time do or None)
    seed: int
    policy: Policy | None
    action_space: gym.Space | None  # the whole batch's, as the last round left it; None: seed a fresh one
    causal_codes: CausalCodes
    progress: Callable[[int], Any] | None = None  # called with 1 per episode (when run here, not on Ray)


class ShardResult(NamedTuple):
    """A shard's episodes as (cell index, step of the cell it ended at, episode), and what the next round needs."""

    episodes: list[tuple[int, int, Collected]]
    steps: int  # steps of its last cell
    action_space: gym.Space | None
    spaces: tuple[gym.Space, gym.Space]  # one env's observation and action spaces


class Collected(NamedTuple):
    """One collected episode and where it came from."""

    cell: dict[str, Any] | None  # the grid cell imposed with reset-time do(), None for natural coverage
    env_index: int
    env_seed: int
    env_episode: int  # the how-manieth episode of that sub-env since its seeded reset
    arrays: dict[str, Any]


class _EpisodeRun:
    """Steps a vector env and cuts what it returns into episodes, whatever its autoreset mode."""

    def __init__(self, envs: gym.vector.VectorEnv, mode: AutoresetMode, policy: Policy | None,
                 causal_codes: CausalCodes, action_space: gym.Space | None, start: int):
        self.envs, self.mode, self.policy, self.causal_codes = envs, mode, policy, causal_codes
        self.action_space, self.start = action_space, start  # the whole batch's space, and the shard's first row
        self.steps = 0  # steps since the last reset of ``episodes``

    def episodes(
        self, quotas: np.ndarray, seed: int, options: dict[str, Any] | None
    ) -> Iterator[tuple[int, int, dict[str, Any]]]:
        """Resets the envs once and steps them until env ``i`` has finished ``quotas[i]`` episodes.

        Yields (env index, episode number within that env, episode arrays) as episodes
        end. A fixed number of episodes per env (rather than the first to finish)
        keeps short episodes from being over-represented.
        """
        envs, mode, codes_of = self.envs, self.mode, self.causal_codes
        n = envs.num_envs
        obs, info = envs.reset(seed=seed, options=options)
        self.steps = 0
        codes = codes_of(info)
        buffers = [_EpisodeRecorder(_take(obs, i), _row(codes, i)) for i in range(n)]
        finished = np.zeros(n, dtype=np.int64)
        restart = np.zeros(n, dtype=bool)  # next-step autoreset: this env's next step starts an episode
        while (finished < quotas).any():
            action = self._actions(obs)
            obs, reward, terminated, truncated, info = envs.step(action)
            self.steps += 1
            codes = codes_of(info)
            ended = terminated | truncated
            final_codes = None
            if mode is AutoresetMode.SAME_STEP and ended.any():
                final_codes = codes_of(info["final_info"])
            for i in np.flatnonzero(finished < quotas).tolist():
                if restart[i]:
                    buffers[i] = _EpisodeRecorder(_take(obs, i), _row(codes, i))
                    restart[i] = False
                    continue
                if ended[i] and mode is AutoresetMode.SAME_STEP:
                    last_obs, last_code = _copy(info["final_obs"][i]), _row(final_codes, i)
                else:
                    last_obs, last_code = _take(obs, i), _row(codes, i)
                buffers[i].add(action[i], reward[i], terminated[i], truncated[i], last_obs, last_code)
                if not ended[i]:
                    continue
                yield i, int(finished[i]), buffers[i].finish()
                finished[i] += 1
                if mode is AutoresetMode.NEXT_STEP:
                    restart[i] = True
                elif mode is AutoresetMode.SAME_STEP:
                    buffers[i] = _EpisodeRecorder(_take(obs, i), _row(codes, i))
            if mode is AutoresetMode.DISABLED and ended.any():
                obs, info = envs.reset(options={"reset_mask": ended.copy()})
                codes = codes_of(info)
                for i in np.flatnonzero(ended & (finished < quotas)).tolist():
                    buffers[i] = _EpisodeRecorder(_take(obs, i), _row(codes, i))

    def _actions(self, obs: Any) -> Any:
        """The batch of actions for one step: the shard's rows of the whole batch's random sample, or the policy's."""
        envs = self.envs
        if self.policy is None:
            return _rows(self.action_space.sample(), self.start, self.start + envs.num_envs)
        action = self.policy(obs)
        if torch.is_tensor(action):
            action = action.detach().cpu().numpy()
        action = np.asarray(action)
        space = envs.single_action_space
        want = (envs.num_envs,) + tuple(space.shape or ())
        if action.shape != want:
            raise ValueError(f"policy(obs) must return a batch of actions shaped {want}, got shape {action.shape}")
        if isinstance(space, gym.spaces.Discrete):
            if not np.issubdtype(action.dtype, np.integer):
                raise ValueError(f"policy(obs) must return integer actions for {space}, got dtype {action.dtype}")
            action = action.astype(np.int64)
        return action.astype(space.dtype) if space.dtype is not None else action


# --- recording ------------------------------------------------------------------------


class _EpisodeRecorder:
    """The growing arrays of one episode."""

    def __init__(self, obs: Any, code: np.ndarray | None):
        self.obs = [obs]
        self.codes = [code]
        self.action: list[Any] = []
        self.reward: list[float] = []
        self.terminated: list[bool] = []
        self.truncated: list[bool] = []

    def add(self, action, reward, terminated, truncated, obs, code) -> None:
        self.action.append(np.array(action))
        self.reward.append(float(reward))
        self.terminated.append(bool(terminated))
        self.truncated.append(bool(truncated))
        self.obs.append(obs)
        self.codes.append(code)

    def finish(self) -> dict[str, Any]:
        if isinstance(self.obs[0], dict):
            obs = {key: np.stack([o[key] for o in self.obs]) for key in self.obs[0]}
        else:
            obs = np.stack(self.obs)
        with_causal = all(code is not None for code in self.codes)
        return {
            "obs": obs,
            "action": np.stack(self.action),
            "reward": np.asarray(self.reward, dtype=np.float64),
            "terminated": np.asarray(self.terminated, dtype=bool),
            "truncated": np.asarray(self.truncated, dtype=bool),
            "causal": np.stack(self.codes).astype(np.float32) if with_causal else None,
        }


def _take(obs: Any, i: int) -> Any:
    if isinstance(obs, Mapping):
        return {key: np.array(value[i]) for key, value in obs.items()}
    return np.array(obs[i])


def _copy(obs: Any) -> Any:
    if isinstance(obs, Mapping):
        return {key: np.array(value) for key, value in obs.items()}
    return np.array(obs)


def _rows(batch: Any, start: int, stop: int) -> Any:
    """Rows ``[start, stop)`` of a batched sample (an array, or a dict or tuple of them)."""
    if isinstance(batch, Mapping):
        return {key: _rows(value, start, stop) for key, value in batch.items()}
    if isinstance(batch, tuple):
        return tuple(_rows(value, start, stop) for value in batch)
    return batch[start:stop]


def _row(codes: np.ndarray | None, i: int) -> np.ndarray | None:
    return None if codes is None else codes[i].copy()


def run_shard(job: ShardJob) -> ShardResult:
    """Runs a shard's episodes: cell ``c`` resets with ``seed + c * num_envs + start`` and imposes its ``do``."""
    envs = gym.make_vec(job.spec, num_envs=job.stop - job.start, **job.make_kwargs)
    try:
        mode = AutoresetMode(envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP))
        space = job.action_space
        if job.policy is None and space is None:
            whole = job.start == 0 and job.stop == job.num_envs
            space = envs.action_space if whole else batch_space(envs.single_action_space, job.num_envs)
            space.seed(job.seed)
        run = _EpisodeRun(envs, mode, job.policy, job.causal_codes, space, job.start)
        out: list[tuple[int, int, Collected]] = []
        for c, cell in job.cells:
            reset_seed = job.seed + c * job.num_envs
            options = {"do": dict(cell)} if cell else None
            for i, ordinal, episode in run.episodes(job.quotas, reset_seed + job.start, options):
                index = job.start + i
                out.append((c, run.steps, Collected(cell, index, reset_seed + index, ordinal, episode)))
                if job.progress is not None:
                    job.progress(1)
        return ShardResult(out, run.steps, space, (envs.single_observation_space, envs.single_action_space))
    finally:
        envs.close()
