"""Stable-Baselines3 on any Gymnasium ``VectorEnv``: ``to_sb3(vector_env)``.

SB3's ``VecEnv`` resets a finished env in the same step and passes the last
observation in ``infos[i]["terminal_observation"]``. Gymnasium 1.x vector envs
declare how they autoreset in ``metadata["autoreset_mode"]``: ``SAME_STEP`` is
SB3's way (the adapter moves ``info["final_obs"]``/``["final_info"]``). With
``NEXT_STEP`` (the default; ``DreamVectorEnv``) or ``DISABLED``, stepping again
would advance every other env and lagging a step would put a fake transition in
every episode, so the adapter resets the finished envs at once, and only them,
with Gymnasium's partial reset ``reset(options={"reset_mask": done})`` (no seed:
each env keeps its own generator and interventions). Whether an env takes
``reset_mask`` is read from ``metadata["supports_reset_mask"]`` or probed
(``supports_reset_mask``); a ``NEXT_STEP`` env without it is refused with an
error that says what to add. Infos come back one dict per env (``unbatch_info``).

>>> import gymnasium as gym
>>> import numpy as np
>>> import campus_env
>>> venv = to_sb3(gym.make_vec("CampusNav-v0", num_envs=2, obs_mode="state", max_episode_steps=3))
>>> venv.seed(0)
[0, 1]
>>> obs = venv.reset()
>>> for _ in range(3):
...     obs, rewards, dones, infos = venv.step(np.zeros(2, dtype=np.int64))
>>> dones.tolist(), infos[0]["TimeLimit.truncated"], infos[0]["terminal_observation"].shape
([True, True], True, (72,))
>>> sorted(infos[0]["causal"])
['crowd', 'day', 'gameday', 'hour', 'road_closure', 'semester', 'weather']
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv, VectorWrapper
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from wrappers.batched import assign_rows, copy_batch, copy_row

__all__ = ["SUPPORTS_RESET_MASK", "GymnasiumVecEnv", "supports_reset_mask", "to_sb3", "unbatch_info"]

SUPPORTS_RESET_MASK = "supports_reset_mask"  # metadata key: the env takes reset(options={"reset_mask": mask})

_FINAL_KEYS = frozenset({"final_obs", "_final_obs", "final_info", "_final_info"})


def to_sb3(vector_env: VectorEnv, *, reset_mask: bool | None = None) -> GymnasiumVecEnv:
    """An SB3 ``VecEnv`` over ``vector_env``, with SB3's same-step reset (see the module docstring).

    Args:
        vector_env: any Gymnasium ``VectorEnv`` (wrappers included) whose
            ``metadata["autoreset_mode"]`` is ``NEXT_STEP`` (assumed when absent),
            ``SAME_STEP`` or ``DISABLED``.
        reset_mask: whether ``vector_env.reset(options={"reset_mask": mask})``
            resets only the masked envs. ``None`` (default) decides from the env:
            ``supports_reset_mask(vector_env)``.
    """
    return GymnasiumVecEnv(vector_env, reset_mask=reset_mask)


class GymnasiumVecEnv(VecEnv):
    """SB3 ``VecEnv`` adapter of a Gymnasium ``VectorEnv``; build it with ``to_sb3``.

    ``get_attr``, ``set_attr``, ``env_method`` and ``env_is_wrapped`` reach the
    sub-envs of a ``SyncVectorEnv`` or ``AsyncVectorEnv`` one by one, as SB3's
    own vector envs do. Any other vector env is one batched env: ``get_attr``
    gives its attribute once per env, ``set_attr`` sets it (for all envs at
    once only), ``env_method`` calls the method once and returns its result per
    env, passing ``env_ids=`` when the caller picks some envs and the method
    takes it (as CampusNav's ``do`` and ``undo`` do), and ``env_is_wrapped``
    looks along the chain of vector wrappers.
    """

    def __init__(self, vector_env: VectorEnv, *, reset_mask: bool | None = None):
        if not isinstance(vector_env, VectorEnv):
            raise TypeError(
                f"to_sb3 takes a gymnasium.vector.VectorEnv (gym.make_vec(...)), got {type(vector_env).__name__}; "
                "wrap a single env with stable_baselines3's DummyVecEnv instead"
            )
        self.vector_env = vector_env
        mode = vector_env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        self.autoreset_mode = mode if isinstance(mode, AutoresetMode) else AutoresetMode(mode)
        self._partial_reset = self._pick_partial_reset(reset_mask)
        self._actions: np.ndarray | None = None
        super().__init__(
            int(vector_env.num_envs), vector_env.single_observation_space, vector_env.single_action_space
        )

    # --- the SB3 interface -----------------------------------------------------

    def reset(self) -> VecEnvObs:
        seeds = list(self._seeds)
        seed = None if all(s is None for s in seeds) else seeds
        options = self._options
        if any(o != options[0] for o in options):
            raise ValueError(
                "a Gymnasium vector env takes one options dict for all its envs; "
                f"set_options() was given different ones: {options}"
            )
        obs, info = self.vector_env.reset(seed=seed, options=dict(options[0]) or None)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = unbatch_info(info, self.num_envs)
        self._actions = None
        return copy_batch(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async(actions) before it")
        actions, self._actions = self._actions, None
        obs, reward, terminated, truncated, info = self.vector_env.step(actions)
        obs = copy_batch(obs)
        terminated = np.asarray(terminated, dtype=bool).reshape(self.num_envs)
        truncated = np.asarray(truncated, dtype=bool).reshape(self.num_envs)
        dones = terminated | truncated
        done_ids = np.flatnonzero(dones)
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            infos = unbatch_info({k: v for k, v in info.items() if k not in _FINAL_KEYS}, self.num_envs)
            if len(done_ids):
                final_infos = unbatch_info(info.get("final_info", {}), self.num_envs)
                final_obs = info.get("final_obs")
                if final_obs is None:
                    raise RuntimeError(
                        "a SAME_STEP vector env must give info['final_obs'] for the envs that finished"
                    )
                for i in done_ids:
                    self.reset_infos[i] = infos[i]
                    infos[i] = final_infos[i]
                    infos[i]["terminal_observation"] = final_obs[i]
        else:
            infos = unbatch_info(info, self.num_envs)
            if len(done_ids):
                for i in done_ids:
                    infos[i]["terminal_observation"] = copy_row(obs, i)
                reset_obs, reset_info = self._partial_reset(dones)
                assign_rows(obs, copy_batch(reset_obs), dones)
                reset_infos = unbatch_info(reset_info, self.num_envs)
                for i in done_ids:
                    self.reset_infos[i] = reset_infos[i]
        for i in done_ids:
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, np.asarray(reward, dtype=np.float32).reshape(self.num_envs), dones, infos

    def close(self) -> None:
        self.vector_env.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        frames = self.vector_env.render()
        if frames is None:
            return [None] * self.num_envs
        if isinstance(frames, np.ndarray) and frames.ndim == 3:  # one frame for the whole batch
            return [frames] * self.num_envs
        return list(frames)

    # --- attributes and methods ------------------------------------------------

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        ids = list(self._get_indices(indices))
        base = self.vector_env.unwrapped
        if isinstance(base, SyncVectorEnv):
            return [base.envs[i].get_wrapper_attr(attr_name) for i in ids]
        if isinstance(base, AsyncVectorEnv):
            values = base.get_attr(attr_name)
            return [values[i] for i in ids]
        value = self._batched_attr(attr_name)
        return [value for _ in ids]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        ids = list(self._get_indices(indices))
        base = self.vector_env.unwrapped
        if isinstance(base, SyncVectorEnv):
            for i in ids:
                base.envs[i].set_wrapper_attr(attr_name, value)
            return
        if isinstance(base, AsyncVectorEnv):
            values = list(base.get_attr(attr_name)) if len(ids) < self.num_envs else [value] * self.num_envs
            for i in ids:
                values[i] = value
            base.set_attr(attr_name, values)
            return
        if sorted(ids) != list(range(self.num_envs)):
            raise ValueError(
                f"{type(base).__name__} is one batched env: set_attr({attr_name!r}) can only set it for all envs"
            )
        setattr(self._owner_of(attr_name), attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        ids = list(self._get_indices(indices))
        base = self.vector_env.unwrapped
        if isinstance(base, SyncVectorEnv):
            return [base.envs[i].get_wrapper_attr(method_name)(*method_args, **method_kwargs) for i in ids]
        every = sorted(ids) == list(range(self.num_envs))
        if isinstance(base, AsyncVectorEnv):
            if not every:
                raise ValueError("env_method on an AsyncVectorEnv calls every env; leave indices out")
            results = base.call(method_name, *method_args, **method_kwargs)
            return [results[i] for i in ids]
        method = self._batched_attr(method_name)
        if not callable(method):
            raise AttributeError(f"{type(base).__name__}.{method_name} is not a method")
        if not every:
            if "env_ids" not in _parameters(method):
                raise ValueError(
                    f"{type(base).__name__} is one batched env and {method_name}() takes no env_ids: "
                    "it can only be called for all envs"
                )
            method_kwargs = {**method_kwargs, "env_ids": ids}
        result = method(*method_args, **method_kwargs)
        return [result for _ in ids]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        ids = list(self._get_indices(indices))
        base = self.vector_env.unwrapped
        if isinstance(base, SyncVectorEnv):
            return [is_wrapped(base.envs[i], wrapper_class) for i in ids]
        env: Any = self.vector_env
        found = False
        while isinstance(env, VectorWrapper):
            found = found or isinstance(env, wrapper_class)
            env = env.env
        return [found for _ in ids]

    # --- helpers -----------------------------------------------------------------

    def _pick_partial_reset(self, reset_mask: bool | None) -> Callable[[np.ndarray], tuple[Any, dict[str, Any]]]:
        """How finished envs are reset in the step they finish (not used for SAME_STEP)."""
        env = self.vector_env
        if reset_mask is None:
            reset_mask = supports_reset_mask(env)
        if self.autoreset_mode in (AutoresetMode.SAME_STEP, AutoresetMode.DISABLED) or reset_mask:
            return self._reset_with_mask
        raise ValueError(
            f"{type(env.unwrapped).__name__} autoresets on the next step and takes no partial reset, so it cannot "
            "give SB3's same-step reset exactly. Make its reset(options={'reset_mask': mask}) reset only the masked "
            f"envs and set metadata[{SUPPORTS_RESET_MASK!r}] = True (or pass to_sb3(env, reset_mask=True) if it "
            "already does), or build it with autoreset_mode=AutoresetMode.SAME_STEP"
        )

    def _reset_with_mask(self, mask: np.ndarray) -> tuple[Any, dict[str, Any]]:
        return self.vector_env.reset(options={"reset_mask": mask.copy()})

    def _owner_of(self, name: str) -> Any:
        """The first env along the wrapper chain that has attribute ``name``."""
        env: Any = self.vector_env
        while True:
            if name in getattr(env, "__dict__", {}) or hasattr(type(env), name):
                return env
            if not isinstance(env, VectorWrapper):
                raise AttributeError(f"{type(self.vector_env).__name__} has no attribute {name!r}")
            env = env.env

    def _batched_attr(self, name: str) -> Any:
        return getattr(self._owner_of(name), name)


def supports_reset_mask(vector_env: VectorEnv) -> bool:
    """Whether ``vector_env.reset(options={"reset_mask": mask})`` resets only the masked envs.

    An env declares it with ``metadata["supports_reset_mask"]`` (wrappers pass
    their env's metadata on). Without the key, the env's class is probed: its
    ``reset`` (or the ``reset_async`` it hands off to) reads the ``"reset_mask"``
    option. That is how Gymnasium's ``SyncVectorEnv`` and ``AsyncVectorEnv`` are
    found to take it: they do, but cannot declare it, since they copy their
    metadata from their sub-envs.

    >>> import gymnasium as gym
    >>> supports_reset_mask(gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync"))
    True
    """
    declared = vector_env.metadata.get(SUPPORTS_RESET_MASK)
    if declared is not None:
        return bool(declared)
    base = type(vector_env.unwrapped)
    return any(_code_mentions(getattr(base, name, None), "reset_mask") for name in ("reset", "reset_async"))


def _code_mentions(fn: Any, literal: str) -> bool:
    """Whether the compiled code of ``fn`` holds the string constant ``literal`` (nested code included)."""
    stack = [getattr(fn, "__code__", None)]
    while stack:
        item = stack.pop()
        if item == literal:
            return True
        if isinstance(item, (tuple, frozenset)):
            stack.extend(item)
        elif isinstance(item, types.CodeType):
            stack.extend(item.co_consts)
    return False


def unbatch_info(info: Mapping[str, Any], num_envs: int) -> list[dict[str, Any]]:
    """Splits a Gymnasium vector info dict into one dict per env.

    A key ``k`` is present in env ``i``'s dict when its mask ``info["_k"][i]``
    is true (always, when there is no mask); nested dicts are split the same
    way; arrays give their row ``i`` (numpy scalars become Python ones); values
    that are not batched are shared.

    >>> info = {"a": np.array([1.0, 2.0]), "_a": np.array([True, False]),
    ...         "causal": {"gameday": np.array([False, True])}, "_causal": np.array([True, True])}
    >>> unbatch_info(info, 2)
    [{'a': 1.0, 'causal': {'gameday': False}}, {'causal': {'gameday': True}}]
    """
    entries = []  # (key, its value per env, which envs have it or None for all), in the info's order
    for key, value in info.items():
        if key.startswith("_") and key[1:] in info:
            continue  # a mask
        mask = info.get(f"_{key}")
        present = None if mask is None else np.asarray(mask, dtype=bool).tolist()
        column = unbatch_info(value, num_envs) if isinstance(value, Mapping) else _values_of_envs(value, num_envs)
        entries.append((key, column, present))
    return [{key: column[i] for key, column, present in entries if present is None or present[i]}
            for i in range(num_envs)]


def _values_of_envs(value: Any, n: int) -> Sequence[Any]:
    """Each env's value of a batched info entry: the rows of an (n, ...) array (numpy scalars become Python
    ones) or of an n-list; a value that is not batched is every env's."""
    if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == n:
        if value.ndim > 1:
            return list(value)
        if value.dtype == object:
            return [v.item() if isinstance(v, np.generic) else v for v in value]
        return value.tolist()
    if isinstance(value, (list, tuple)) and len(value) == n:
        return value
    return [value] * n


def _parameters(fn: Callable[..., Any]) -> Mapping[str, inspect.Parameter]:
    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
