"""Dream environments: a world model of the zoo behind the Gymnasium API.

``DreamEnv`` is a ``gymnasium.Env`` and ``DreamVectorEnv`` a batched
``gymnasium.vector.VectorEnv`` whose steps are imagined by a ``model_zoo``
world model instead of simulated, as in Ha & Schmidhuber (2018), "World
Models" (arXiv:1803.10122), where a controller is trained "inside the dream".

Every episode starts from a *real* observation, a reset of the real env (or
the first frame of a dataset episode), filtered through
``model.observe(model.initial_state(B), zero action, obs, is_first=True)``;
every step is one ``model.imagine`` call. What a learner sees is either the
model's decoding of its state, in the real env's own observation space, so a
policy moves between dream and reality unchanged (``obs="decoded"``), or the
model's feature vector (``obs="features"``).

A dream must never crash a learner: observations are always finite and inside
the observation space (non-finite values are replaced, values clipped into the
bounds, dtypes cast; ``info["guarded"]`` counts the elements fixed), and a model
that produces a non-finite reward, state or observation ends the episode with
``info["model_error"] = True``.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from torch import Tensor

import campus_env  # noqa: F401  (registers CampusNav-v0, so its id works here)
from model_zoo.base import State, WorldModel

__all__ = ["OBS_MODES", "DreamEnv", "DreamVectorEnv"]

OBS_MODES = ("decoded", "features")
FEATURE_BOUND = float(np.finfo(np.float32).max)  # feature spaces are bounded like CartPole's velocities
DEFAULT_POOL_SIZE = 256  # real start observations a DreamVectorEnv keeps for its autoresets
_SYNC_REAL_ENVS = 8  # sub-envs of the real SyncVectorEnv that collects start observations of a foreign env
_SEED_HIGH = 2**31 - 1
_Obs = np.ndarray | dict[str, np.ndarray]


# --- observations: batched numpy, guarded into a space ------------------------------------


def _to_numpy(x: Any) -> Any:
    """Tensors (or a dict of them) as fresh numpy arrays (never sharing memory with a model's state)."""
    if isinstance(x, Mapping):
        return {k: _to_numpy(v) for k, v in x.items()}
    if torch.is_tensor(x):
        x = x.detach()
        return x.numpy().copy() if x.device.type == "cpu" else x.cpu().numpy()
    return np.array(x)


def _stack(frames: Sequence[Any], space: gym.Space) -> _Obs:
    """A list of single observations as one batched observation (n, ...)."""
    if isinstance(space, spaces.Dict):
        return {k: np.stack([np.asarray(f[k]) for f in frames]) for k in space.spaces}
    return np.stack([np.asarray(f) for f in frames])


def _concat(batches: Sequence[_Obs]) -> _Obs:
    if isinstance(batches[0], dict):
        return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    return np.concatenate(batches)


def _take(obs: _Obs, index: Any) -> _Obs:
    """Rows ``index`` (an int, slice or index array) of a batched observation."""
    if isinstance(obs, dict):
        return {k: v[index] for k, v in obs.items()}
    return obs[index]


def _row_copy(obs: _Obs, i: int) -> Any:
    if isinstance(obs, dict):
        return {k: np.array(v[i]) for k, v in obs.items()}
    return np.array(obs[i])


class _Guard:
    """Makes batched observations (n, ...) finite and inside ``space``, counting the elements fixed per row.

    Non-finite values become the bound nearest to them (NaN: 0 clipped into the
    bounds), finite values are clipped into the bounds, and the dtype is cast to
    the space's (rounding to integers is a cast, not counted).
    """

    def __init__(self, space: gym.Space):
        if isinstance(space, spaces.Dict):
            self.parts = {k: _Guard(s) for k, s in space.spaces.items()}
            return
        self.parts = None
        self.space = space
        if isinstance(space, spaces.Discrete):
            self.dtype = space.dtype
            self.low = float(space.start)
            self.high = float(space.start + space.n - 1)
            self.full_range = False
        elif isinstance(space, spaces.Box):
            self.dtype = space.dtype
            info = np.finfo(space.dtype) if np.issubdtype(space.dtype, np.floating) else np.iinfo(space.dtype)
            self.low = np.maximum(np.broadcast_to(space.low, space.shape).astype(np.float64), float(info.min))
            self.high = np.minimum(np.broadcast_to(space.high, space.shape).astype(np.float64), float(info.max))
            # bounds that every finite value of the dtype meets: only finiteness needs checking
            self.full_range = bool(np.all(self.low == info.min) and np.all(self.high == info.max))
        else:
            raise TypeError(f"a dream env cannot guard observations of {space}; it takes Box, Discrete or a Dict")

    def __call__(self, x: Any, n: int) -> tuple[_Obs, np.ndarray, np.ndarray]:
        """(guarded observation, elements fixed per row (n,) int64, rows with non-finite values (n,) bool)."""
        if self.parts is not None:
            if not isinstance(x, Mapping) or set(x) != set(self.parts):
                got = sorted(x) if isinstance(x, Mapping) else type(x).__name__
                raise TypeError(f"the model decoded {got}, expected a dict with keys {sorted(self.parts)}")
            out, count, bad = {}, np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
            for key, guard in self.parts.items():
                out[key], c, b = guard(x[key], n)
                count += c
                bad |= b
            return out, count, bad
        shape = (n,) + tuple(self.space.shape)
        x = np.asarray(x)
        if x.size != int(np.prod(shape)):
            raise ValueError(f"the model gave an observation of shape {x.shape}, expected {shape} for {self.space}")
        x = x.reshape(shape)
        floating = np.issubdtype(x.dtype, np.floating)
        if x.dtype == self.dtype and (not floating or np.isfinite(x).all()) and (
            self.full_range or (np.all(x >= self.low) and np.all(x <= self.high))
        ):
            return x, np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)  # the common case: nothing to fix
        xf = x.astype(np.float64)
        nonfinite = ~np.isfinite(xf)
        fill = np.clip(0.0, self.low, self.high)
        clipped = np.clip(np.where(np.isnan(xf), fill, xf), self.low, self.high)  # +-inf go to the bounds
        changed = nonfinite | (clipped != xf)
        if not np.issubdtype(self.dtype, np.floating):
            clipped = np.rint(clipped)
        rows = changed.reshape(n, -1)
        return clipped.astype(self.dtype), rows.sum(1), nonfinite.reshape(n, -1).any(1)


# --- actions ------------------------------------------------------------------------------


def _check_actions(space: gym.Space, action: Any, n: int | None) -> np.ndarray:
    """Checks one action (``n`` None) or a batch of ``n``; returns a batched numpy array, or raises clearly."""
    lead = () if n is None else (n,)
    if isinstance(space, spaces.Discrete):
        if n is None and isinstance(action, (int, np.integer)) and not isinstance(action, (bool, np.bool_)):
            arr = np.asarray(action, dtype=np.int64)
        else:
            arr = np.asarray(action)
            if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
                raise TypeError(f"action must be an integer of {space}, got {action!r} ({type(action).__name__})")
            if arr.shape != lead:
                raise ValueError(f"action must have shape {lead} for {space}, got shape {arr.shape}: {action!r}")
            if np.issubdtype(arr.dtype, np.floating) and not (np.isfinite(arr).all() and np.all(arr == np.rint(arr))):
                raise ValueError(f"action must be an integer of {space}, got {action!r}")
        start = int(space.start)
        if np.any(arr < start) or np.any(arr >= start + int(space.n)):
            raise ValueError(f"action must be in {start}..{start + int(space.n) - 1} ({space}), got {action!r}")
        return arr.astype(np.int64).reshape(lead or (1,))
    if isinstance(space, spaces.Box):
        arr = np.asarray(action)
        if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise TypeError(f"action must be a float array of {space}, got {action!r} ({type(action).__name__})")
        if arr.shape != lead + space.shape:
            raise ValueError(f"action must have shape {lead + space.shape} for {space}, got shape {arr.shape}")
        arr = arr.astype(space.dtype)
        if not np.isfinite(arr).all():
            raise ValueError(f"action must be finite, got {action!r}")
        if np.any(arr < space.low) or np.any(arr > space.high):
            raise ValueError(f"action is outside {space}: {action!r}")
        return arr.reshape((lead or (1,)) + space.shape)
    raise TypeError(f"a dream env takes Discrete or Box actions, the model has {space}")


def _zero_actions(space: gym.Space, n: int) -> np.ndarray:
    """The meaningless action of a first step (the smallest Discrete id; zero clipped into a Box)."""
    if isinstance(space, spaces.Discrete):
        return np.full(n, int(space.start), dtype=np.int64)
    zero = np.clip(np.zeros(space.shape, dtype=space.dtype), space.low, space.high)
    return np.broadcast_to(zero, (n,) + space.shape).copy()


# --- states -------------------------------------------------------------------------------


def _rows(mask: Tensor, leaf: Tensor) -> Tensor:
    return mask.reshape(mask.shape + (1,) * (leaf.dim() - 1))


def _where(mask: Tensor, a: State, b: State) -> State:
    """Per row: ``a`` where ``mask`` (B,) else ``b``; new tensors, nothing changed in place."""
    return {k: torch.where(_rows(mask, a[k]), a[k], b[k]) for k in b}


def _index(state: State, index: Tensor) -> State:
    """Rows ``index`` (int64) of every leaf."""
    return {k: v.index_select(0, index) for k, v in state.items()}


def _put(state: State, rows: Tensor, values: State) -> State:
    """``state`` with rows ``rows`` (int64) replaced by ``values`` (len(rows), ...); new tensors, none changed."""
    return {k: v.index_copy(0, rows, values[k]) for k, v in state.items()}


def _nonfinite_rows(state: State, n: int) -> Tensor:
    """Rows (B,) bool of a state whose floating leaves hold a non-finite value.

    One reduction per leaf: a row is flagged when its sum is not finite, which
    every NaN or infinity makes it (and so would finite values summing past the
    float range, a broken state too).
    """
    bad = None
    for leaf in state.values():
        if leaf.is_floating_point():
            rows = ~torch.isfinite(leaf.reshape(n, -1).sum(dim=1))
            bad = rows if bad is None else bad | rows
    return bad if bad is not None else torch.zeros(n, dtype=torch.bool)


# --- the model side, shared by both envs --------------------------------------------------


class _Dreamer:
    """A world model run for a dream env: filtering start observations, imagining, decoding, guarding."""

    def __init__(
        self,
        model: WorldModel,
        obs: str,
        do: Mapping[str, Any] | None,
        temperature: float | None,
        device: torch.device | str | None,
    ):
        if not isinstance(model, WorldModel):
            raise TypeError(f"model must be a model_zoo WorldModel, got {type(model).__name__}")
        if obs not in OBS_MODES:
            raise ValueError(f"obs must be one of {', '.join(map(repr, OBS_MODES))}, got {obs!r}")
        if device is not None and torch.device(device) != model.device:
            model.to(device)
        self.model = model
        self._running = False
        self.mode = obs
        self.device = model.device
        self.model_id = model.model_id or type(model).__name__
        self.default_do = self.check_do(do)
        self.config = None  # the config to imagine with, when it differs from the model's
        if temperature is not None:
            names = {f.name for f in dataclasses.fields(model.config)}
            if "temperature" not in names:
                raise ValueError(
                    f"model {self.model_id!r} has no temperature in its config ({type(model.config).__name__}); "
                    "leave temperature=None"
                )
            self.config = dataclasses.replace(model.config, temperature=float(temperature))
        self.action_space = model.action_space
        self.decoded_guard = _Guard(model.observation_space)
        if obs == "features":
            with self.running():
                dim = int(model.features(model.initial_state(1)).shape[-1])
            self.observation_space = spaces.Box(-FEATURE_BOUND, FEATURE_BOUND, (dim,), np.float32)
            self.guard = _Guard(self.observation_space)
        else:
            self.observation_space = model.observation_space
            self.guard = self.decoded_guard

    def check_do(self, do: Mapping[str, Any] | None) -> dict[str, Any]:
        if do is None:
            return {}
        if not isinstance(do, Mapping):
            raise TypeError(f"do must be a dict of interventions, got {type(do).__name__}")
        self.model.check_do(do)
        return dict(do)

    @contextmanager
    def running(self) -> Iterator[WorldModel]:
        """The model in eval mode, without gradients, with the dream's config; all restored afterwards.

        Re-entrant: a dream env's step holds it once around all its model calls.
        """
        model = self.model
        if self._running:
            yield model
            return
        self._running = True
        saved, training = model.config, model.training
        if self.config is not None:
            model.config = self.config
        if training:
            model.eval()
        try:
            with torch.no_grad():
                yield model
        finally:
            model.config = saved
            if training:
                model.train()
            self._running = False

    def generator(self, rng: np.random.Generator) -> torch.Generator:
        """A torch generator on the model's device, seeded from the env's own numpy generator."""
        return torch.Generator(device=self.device).manual_seed(int(rng.integers(2**63 - 1)))

    def actions(self, actions: np.ndarray) -> Tensor:
        return torch.as_tensor(actions, device=self.device)

    def start(self, obs: _Obs, chunk: int = 1024) -> State:
        """States of real observations (n, ...): one ``observe`` step from the initial state, ``is_first``."""
        n = len(next(iter(obs.values())) if isinstance(obs, dict) else obs)
        spec = self.model.spec
        states = []
        with self.running() as model:
            for lo in range(0, n, chunk):
                m = min(chunk, n - lo)
                part = spec.to_torch(_take(obs, slice(lo, lo + m)), self.device)
                states.append(model.observe(
                    model.initial_state(m),
                    self.actions(_zero_actions(self.action_space, m)),
                    part,
                    torch.ones(m, dtype=torch.bool, device=self.device),
                ))
        if len(states) == 1:
            return states[0]
        return {k: torch.cat([s[k] for s in states]) for k in states[0]}

    def imagine(
        self, state: State, actions: Tensor, do: Mapping[str, Any], generator: torch.Generator
    ) -> tuple[State, np.ndarray, np.ndarray, np.ndarray]:
        """One batched step: (next state, reward (B,) float64, terminated (B,) bool, model error (B,) bool).

        Rows where the model gave a non-finite state or reward are errors: they
        terminate with reward 0 and keep their previous state (so they decode to
        their last observation).
        """
        n = actions.shape[0]
        with self.running() as model:
            out = model.imagine(state, actions, do=do or None, generator=generator)
        bad_state = _nonfinite_rows(out.state, n)
        reward = out.reward.detach().reshape(n).to("cpu", torch.float64).numpy().copy()
        terminated = out.terminated.detach().reshape(n).to("cpu", torch.bool).numpy().copy()
        error = bad_state.cpu().numpy() | ~np.isfinite(reward)
        next_state = out.state
        if error.any():
            reward[error] = 0.0
            terminated |= error
            if bad_state.any():
                next_state = _where(bad_state.to(self.device), state, out.state)
        return next_state, reward, terminated, error

    def observe_state(self, state: State, n: int) -> tuple[_Obs, np.ndarray, np.ndarray]:
        """Guarded observations of ``state`` (batched numpy), elements fixed per row, rows with non-finite values."""
        with self.running() as model:
            raw = model.decode(state) if self.mode == "decoded" else model.features(state)
        return self.guard(_to_numpy(raw), n)

    def image(self, state: State, n: int) -> list[np.ndarray] | None:
        """The first image part of the decoded observations, one (H, W, C) uint8 per row, or None."""
        keys = self.model.spec.image_keys
        if not keys:
            return None
        with self.running() as model:
            raw = model.decode(state)
        decoded, _, _ = self.decoded_guard(_to_numpy(raw), n)
        image = decoded[keys[0]] if isinstance(decoded, dict) else decoded
        return [np.array(image[i]) for i in range(n)]


# --- where start observations come from ---------------------------------------------------


class _EnvStarts:
    """Start observations from resets of one real env, seeded from the dream env's generator."""

    def __init__(self, env: gym.Env, owned: bool):
        self.env, self.owned = env, owned
        self.observation_space, self.action_space = env.observation_space, env.action_space

    def draw(self, n: int, rng: np.random.Generator, do: Mapping[str, Any]) -> _Obs:
        options = {"do": dict(do)} if do else None
        frames = [self.env.reset(seed=int(rng.integers(_SEED_HIGH)), options=options)[0] for _ in range(n)]
        return _stack(frames, self.observation_space)

    def close(self) -> None:
        if self.owned:
            self.env.close()


class _VectorStarts:
    """Start observations from resets of a real vector env (as many rounds as needed)."""

    def __init__(self, envs: VectorEnv, owned: bool):
        self.envs, self.owned = envs, owned
        self.observation_space, self.action_space = envs.single_observation_space, envs.single_action_space

    def draw(self, n: int, rng: np.random.Generator, do: Mapping[str, Any]) -> _Obs:
        options = {"do": dict(do)} if do else None
        rounds, have = [], 0
        while have < n:
            obs, _ = self.envs.reset(seed=int(rng.integers(_SEED_HIGH)), options=options)
            rounds.append(obs)
            have += self.envs.num_envs
        return _take(_concat(rounds), slice(0, n))

    def close(self) -> None:
        if self.owned:
            self.envs.close()


class _DatasetStarts:
    """Start observations drawn (with replacement) from the first frames of dataset episodes."""

    def __init__(self, frames: _Obs, observation_space: gym.Space):
        self.frames = frames
        self.count = len(next(iter(frames.values())) if isinstance(frames, dict) else frames)
        self.observation_space = observation_space
        self.action_space = None

    def draw(self, n: int, rng: np.random.Generator, do: Mapping[str, Any]) -> _Obs:
        return _take(self.frames, rng.integers(self.count, size=n))

    def close(self) -> None:
        pass


def _first_frames(dataset: Any, observation_space: gym.Space) -> _Obs:
    """The first observation of every episode of a Minari dataset, a dataset id or a list of ``Episode``."""
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
    frames = [_take(e.obs, 0) for e in episodes]
    if frames[0] not in observation_space:
        raise ValueError(f"the dataset's first observation is outside the model's space {observation_space}")
    return _stack(frames, observation_space)


def _env_spec(env_id: str) -> gym.envs.registration.EnvSpec:
    module, sep, name = env_id.rpartition(":")
    if sep:
        importlib.import_module(module)
    return gym.spec(name)


def _starts(
    model: WorldModel,
    env: Any,
    dataset: Any,
    env_kwargs: Mapping[str, Any] | None,
    num_envs: int | None,
) -> _EnvStarts | _VectorStarts | _DatasetStarts:
    """The source of start observations; ``num_envs`` None for a single dream env."""
    if (env is None) == (dataset is None):
        raise ValueError(
            "give exactly one source of start states: env (an env id, a gymnasium.Env or VectorEnv) or dataset "
            f"(a Minari dataset, dataset id or list of Episode); got env={env!r} and dataset={dataset!r}"
        )
    if env_kwargs and not isinstance(env, str):
        raise ValueError("env_kwargs only applies when env is an env id")
    if dataset is not None:
        return _DatasetStarts(_first_frames(dataset, model.observation_space), model.observation_space)
    if isinstance(env, str):
        kwargs = dict(env_kwargs or {})
        if num_envs is None:
            source = _EnvStarts(gym.make(env, **kwargs), owned=True)
        elif _env_spec(env).vector_entry_point is not None:
            source = _VectorStarts(gym.make_vec(env, num_envs=num_envs, **kwargs), owned=True)
        else:
            n = min(num_envs, _SYNC_REAL_ENVS)
            source = _VectorStarts(gym.make_vec(env, num_envs=n, vectorization_mode="sync", **kwargs), owned=True)
    elif isinstance(env, VectorEnv):
        source = _VectorStarts(env, owned=False)
    elif isinstance(env, gym.Env):
        source = _EnvStarts(env, owned=False)
    else:
        raise TypeError(f"env must be an env id, a gymnasium.Env or a gymnasium VectorEnv, got {type(env).__name__}")
    for what, real, built in (
        ("observation", source.observation_space, model.observation_space),
        ("action", source.action_space, model.action_space),
    ):
        if real != built:
            source.close()
            raise ValueError(f"the model was built for the {what} space {built}, but the env has {real}")
    return source


def _check_max_steps(max_episode_steps: Any) -> int | None:
    if max_episode_steps is not None and (
        isinstance(max_episode_steps, bool) or not isinstance(max_episode_steps, (int, np.integer))
        or max_episode_steps < 1
    ):
        raise ValueError(f"max_episode_steps must be a positive integer or None, got {max_episode_steps!r}")
    return None if max_episode_steps is None else int(max_episode_steps)


def _do_option(options: Mapping[str, Any] | None, allowed: tuple[str, ...]) -> dict[str, Any]:
    options = dict(options or {})
    unknown = set(options) - set(allowed)
    if unknown:
        raise ValueError(f"unknown reset option(s) {sorted(unknown)}; valid options: {', '.join(map(repr, allowed))}")
    return options


# --- the envs -----------------------------------------------------------------------------


class _Interventions:
    """``do()``/``undo()`` of both dream envs: interventions passed to every ``imagine`` call.

    In ``DreamEnv`` they last until the next reset; ``DreamVectorEnv`` applies them to every env.
    """

    _do: dict[str, Any]
    _dreamer: _Dreamer

    def do(self, **assignments: Any) -> None:
        """Adds interventions from the next step on (models with ``supports_do`` only)."""
        self._do = {**self._do, **self._dreamer.check_do(assignments)}

    def undo(self, *names: str) -> None:
        """Drops the named interventions (all of them when none is named)."""
        unknown = [n for n in names if n not in self._do]
        if unknown:
            raise ValueError(f"undo(): {unknown} not intervened on; interventions in force: {sorted(self._do)}")
        self._do = {k: v for k, v in self._do.items() if names and k not in names}


class DreamEnv(_Interventions, gym.Env):
    """A world model's dream as a Gymnasium env: real start states, imagined steps.

    ## Description
    Each ``reset`` draws a real start observation, from ``env.reset(seed=...)``
    with a seed drawn from this env's ``np_random`` (or the first frame of a
    random dataset episode), filters it through ``model.observe(..., is_first=True)``
    and returns the model's view of it. Each ``step`` is one ``model.imagine``
    call driven by a ``torch.Generator`` seeded from ``np_random`` at reset, so
    ``reset(seed=s)`` followed by the same actions gives the same dream.

    ## Action Space
    The model's (and the real env's) action space: ``Discrete`` or a float ``Box``.
    Actions outside it raise a ``ValueError``.

    ## Observation Space
    | ``obs``      | observation space                                                  |
    |--------------|--------------------------------------------------------------------|
    | "decoded"    | the real env's own space; ``model.decode(state)`` in its format    |
    | "features"   | ``Box(-f32max, f32max, (feature_dim,), float32)``: ``model.features`` |

    Every observation is finite and inside the space: non-finite values are
    replaced, values clipped into the bounds and dtypes cast. The first
    observation of an episode is the model's view of the real start (its
    decoding or features), not the raw real observation.

    ## Rewards
    The model's predicted reward of each step (0 on a step where the model failed).

    ## Episode End
    - Termination: the model predicts it, or the model produced a non-finite
      reward, state or observation (then ``info["model_error"]`` is True).
    - Truncation: after ``max_episode_steps`` imagined steps.
    Stepping an ended episode raises a ``RuntimeError``; call ``reset()``.

    ## Info
    ``"dream"`` (True), ``"model"`` (the model id), ``"steps"`` (imagined steps
    this episode), ``"guarded"`` (observation elements fixed this step),
    ``"guarded_total"`` (this episode), ``"model_error"``.

    ## Arguments
    - ``model``: a ``model_zoo`` world model (ideally trained).
    - ``env``: where start states come from: an env id (made with
      ``gym.make(env, **env_kwargs)`` and closed with this env) or a
      ``gymnasium.Env`` (left open). Its spaces must be the model's.
    - ``dataset``: instead of ``env``, a Minari dataset, dataset id or list of
      ``model_zoo.data.Episode``; episodes start from their first frames.
    - ``obs``: ``"decoded"`` or ``"features"``.
    - ``do``: interventions passed to ``model.imagine`` at every step; only for
      models with ``supports_do`` (``ValueError`` otherwise). When given, real
      resets are made with ``options={"do": do}`` too, so the start state is
      drawn under the same intervention. ``reset(options={"do": ...})`` replaces
      it for one episode; ``do(**assignments)`` and ``undo(*names)`` change it
      until the next reset.
    - ``max_episode_steps``: truncation (None: never).
    - ``temperature``: replaces the model's ``config.temperature`` while this env
      imagines (the model's own config is put back after each call); a
      ``ValueError`` for a model without one.
    - ``device``: where the model runs; a model elsewhere is moved there, in
      place (default: where it is).
    - ``env_kwargs``: keyword arguments of ``gym.make`` when ``env`` is an id.
    - ``render_mode``: ``"rgb_array"`` renders the decoded image (for models
      whose observations have an image part).

    >>> import gymnasium as gym, model_zoo, campus_env
    >>> real = gym.make("CampusNav-v0", obs_mode="state")
    >>> model = model_zoo.make("mlp", real.observation_space, real.action_space, hidden=16)
    >>> env = DreamEnv(model, real, max_episode_steps=50)
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape == real.observation_space.shape, info["dream"], info["model"]
    (True, True, 'mlp')
    >>> obs, reward, terminated, truncated, info = env.step(1)
    >>> obs in env.observation_space, info["steps"]
    (True, 1)
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        model: WorldModel,
        env: str | gym.Env | None = None,
        *,
        dataset: Any = None,
        obs: str = "decoded",
        do: Mapping[str, Any] | None = None,
        max_episode_steps: int | None = 200,
        temperature: float | None = None,
        device: torch.device | str | None = None,
        env_kwargs: Mapping[str, Any] | None = None,
        render_mode: str | None = None,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.max_episode_steps = _check_max_steps(max_episode_steps)
        self._dreamer = _Dreamer(model, obs, do, temperature, device)
        if render_mode is not None and not model.spec.image_keys:
            raise ValueError("render_mode='rgb_array' needs a model whose observations have an image part")
        self._starts = _starts(model, env, dataset, env_kwargs, None)
        self.model = model
        self.obs_mode = obs
        self.render_mode = render_mode
        self.observation_space = self._dreamer.observation_space
        self.action_space = self._dreamer.action_space
        self._do: dict[str, Any] = dict(self._dreamer.default_do)
        self._state: State | None = None
        self._obs: _Obs | None = None
        self._generator: torch.Generator | None = None
        self._steps = 0
        self._guarded_total = 0
        self._done = False

    @property
    def model_id(self) -> str:
        return self._dreamer.model_id

    @property
    def interventions(self) -> dict[str, Any]:
        """The interventions passed to ``imagine`` in this episode."""
        return dict(self._do)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = _do_option(options, ("do",))
        do = self._dreamer.check_do(options["do"]) if "do" in options else dict(self._dreamer.default_do)
        super().reset(seed=seed)
        self._do = do
        start = self._starts.draw(1, self.np_random, do)
        self._generator = self._dreamer.generator(self.np_random)
        self._state = self._dreamer.start(start)
        self._obs, guarded, _ = self._dreamer.observe_state(self._state, 1)
        self._steps, self._guarded_total, self._done = 0, int(guarded[0]), False
        return _row_copy(self._obs, 0), self._info(int(guarded[0]), False)

    def step(self, action):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        dreamer = self._dreamer
        actions = dreamer.actions(_check_actions(self.action_space, action, None))
        if self._done:
            raise RuntimeError("the episode has ended (terminated or truncated); call reset() before step()")
        with dreamer.running():
            state, reward, terminated, error = dreamer.imagine(self._state, actions, self._do, self._generator)
            obs, guarded, nonfinite = dreamer.observe_state(state, 1)
        error = error | nonfinite
        if nonfinite[0]:
            reward[0], terminated[0] = 0.0, True
        self._state, self._obs = state, obs
        self._steps += 1
        self._guarded_total += int(guarded[0])
        truncated = self.max_episode_steps is not None and self._steps >= self.max_episode_steps
        self._done = bool(terminated[0]) or truncated
        info = self._info(int(guarded[0]), bool(error[0]))
        return _row_copy(obs, 0), float(reward[0]), bool(terminated[0]), truncated, info

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        if self._state is None:
            raise RuntimeError("call reset() before render()")
        return self._dreamer.image(self._state, 1)[0]

    def close(self):
        self._starts.close()

    def _info(self, guarded: int, error: bool) -> dict[str, Any]:
        return {
            "dream": True,
            "model": self.model_id,
            "steps": self._steps,
            "guarded": guarded,
            "guarded_total": self._guarded_total,
            "model_error": error,
        }


class DreamVectorEnv(_Interventions, VectorEnv):
    """``num_envs`` dreams stepped as one batch: one ``model.imagine`` call per step, on the model's device.

    The spaces are those of ``DreamEnv`` batched with ``batch_space``; the
    arguments are ``DreamEnv``'s, plus:

    - ``num_envs``: the batch size.
    - ``env``: an env id (made with ``gym.make_vec``: the env's native vector
      env when it has one, as CampusNav-v0 does, else a ``SyncVectorEnv`` of
      up to 8 envs), a ``gymnasium.vector.VectorEnv`` or a ``gymnasium.Env``.
    - ``pool_size``: how many real start observations to keep (default
      ``max(num_envs, 256)``).

    Start states: every full ``reset()`` draws a pool of ``pool_size`` real
    start observations (real resets seeded from ``np_random``, or dataset first
    frames) and filters them through ``observe`` in one batch; env ``i`` starts
    from pool entry ``i``, and every autoreset draws a pool entry at random (from
    ``np_random``), so autoresets never touch the real env. A seeded reset
    followed by the same actions gives the same dreams.

    Autoreset is next-step, as Gymnasium's (``metadata["autoreset_mode"]``): the
    step after an env's episode ends returns the first observation of its next
    episode with reward 0, terminated and truncated False, and ignores its action.
    ``reset(options={"reset_mask": mask})`` starts only the masked envs anew
    (from the pool, as their autoreset would) and leaves the others in their
    episodes (``metadata["supports_reset_mask"]``, which ``wrappers.to_sb3`` reads).

    Interventions are shared by all envs (one ``imagine`` call): ``do=``,
    ``reset(options={"do": ...})`` (in force until the next full reset, across
    autoresets), ``do(**assignments)`` and ``undo(*names)``.

    Infos are Gymnasium vector infos (arrays with ``_key`` masks): ``"dream"``,
    ``"steps"``, ``"guarded"``, ``"guarded_total"``, ``"model_error"``, per env.

    >>> import gymnasium as gym, model_zoo, campus_env
    >>> real = gym.make("CampusNav-v0", obs_mode="state")
    >>> model = model_zoo.make("mlp", real.observation_space, real.action_space, hidden=16)
    >>> envs = DreamVectorEnv(model, 4, "CampusNav-v0", obs="features", env_kwargs={"obs_mode": "state"})
    >>> obs, info = envs.reset(seed=0)
    >>> obs.shape, envs.metadata["autoreset_mode"].value
    ((4, 72), 'NextStep')
    >>> obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
    >>> reward.shape, info["steps"].tolist()
    ((4,), [1, 1, 1, 1])
    """

    metadata = {
        "render_modes": ["rgb_array"],
        "render_fps": 10,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
        "supports_reset_mask": True,  # reset(options={"reset_mask": mask}) restarts only the masked envs
    }

    def __init__(
        self,
        model: WorldModel,
        num_envs: int,
        env: str | gym.Env | VectorEnv | None = None,
        *,
        dataset: Any = None,
        obs: str = "decoded",
        do: Mapping[str, Any] | None = None,
        max_episode_steps: int | None = 200,
        temperature: float | None = None,
        device: torch.device | str | None = None,
        env_kwargs: Mapping[str, Any] | None = None,
        pool_size: int | None = None,
        render_mode: str | None = None,
    ):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if pool_size is not None and (not isinstance(pool_size, (int, np.integer)) or pool_size < 1):
            raise ValueError(f"pool_size must be a positive integer or None, got {pool_size!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.max_episode_steps = _check_max_steps(max_episode_steps)
        self._dreamer = _Dreamer(model, obs, do, temperature, device)
        if render_mode is not None and not model.spec.image_keys:
            raise ValueError("render_mode='rgb_array' needs a model whose observations have an image part")
        self.num_envs = int(num_envs)
        self._starts = _starts(model, env, dataset, env_kwargs, self.num_envs)
        self.pool_size = max(self.num_envs, int(pool_size if pool_size is not None else DEFAULT_POOL_SIZE))
        self.model = model
        self.obs_mode = obs
        self.render_mode = render_mode
        self.single_observation_space = self._dreamer.observation_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.single_action_space = self._dreamer.action_space
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._do: dict[str, Any] = dict(self._dreamer.default_do)
        self._pool: State | None = None
        self._state: State | None = None
        self._generator: torch.Generator | None = None
        n = self.num_envs
        self._steps = np.zeros(n, dtype=np.int64)
        self._guarded_total = np.zeros(n, dtype=np.int64)
        self._needs_reset = np.zeros(n, dtype=bool)
        self._ones = np.ones(n, dtype=bool)
        self._ones.flags.writeable = False

    @property
    def model_id(self) -> str:
        return self._dreamer.model_id

    @property
    def interventions(self) -> dict[str, Any]:
        """The interventions passed to ``imagine``."""
        return dict(self._do)

    def reset(self, *, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None):
        """Resets every env (drawing a new pool of real starts), or only ``options["reset_mask"]`` (from the pool).

        ``seed`` seeds this env's ``np_random`` (an int, or a sequence of ints
        combined into one seed); with a mask it reseeds too, but the pool stays.
        """
        options = _do_option(options, ("do", "reset_mask"))
        mask = options.get("reset_mask")
        if mask is not None:
            return self._reset_masked(mask, seed, options)
        do = self._dreamer.check_do(options["do"]) if "do" in options else dict(self._dreamer.default_do)
        self._seed(seed)
        dreamer, n = self._dreamer, self.num_envs
        self._do = do
        self._pool = dreamer.start(self._starts.draw(self.pool_size, self.np_random, do))
        self._generator = dreamer.generator(self.np_random)
        self._state = _index(self._pool, torch.arange(n, device=dreamer.device))
        obs, guarded, _ = dreamer.observe_state(self._state, n)
        self._steps[:] = 0
        self._guarded_total[:] = guarded
        self._needs_reset[:] = False
        return obs, self._info(guarded, np.zeros(n, dtype=bool))

    def step(self, actions):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        dreamer, n = self._dreamer, self.num_envs
        act = dreamer.actions(_check_actions(self.single_action_space, actions, n))
        restart = self._needs_reset  # these envs already hold their next start state (placed when they ended)
        with dreamer.running():
            state, reward, terminated, error = dreamer.imagine(self._state, act, self._do, self._generator)
            if restart.any():
                rows = torch.as_tensor(np.flatnonzero(restart), device=dreamer.device)
                state = _put(state, rows, _index(self._state, rows))
                reward[restart], terminated[restart], error[restart] = 0.0, False, False
            obs, guarded, nonfinite = dreamer.observe_state(state, n)
        if nonfinite.any():
            reward[nonfinite], terminated[nonfinite], error[nonfinite] = 0.0, True, True
        self._steps = np.where(restart, 0, self._steps + 1)
        self._guarded_total = np.where(restart, 0, self._guarded_total) + guarded
        if self.max_episode_steps is None:
            truncated = np.zeros(n, dtype=bool)
        else:
            truncated = self._steps >= self.max_episode_steps  # as TimeLimit: may coincide with terminated
        done = terminated | truncated
        info = self._info(guarded, error)
        self._state = self._place_starts(state, done) if done.any() else state
        self._needs_reset = done
        return obs, reward, terminated, truncated, info

    def render(self):
        if self.render_mode is None:
            return None
        if self._state is None:
            raise RuntimeError("call reset() before render()")
        return tuple(self._dreamer.image(self._state, self.num_envs))

    def close_extras(self, **kwargs: Any) -> None:
        self._starts.close()

    # --- helpers ------------------------------------------------------------------------

    def _seed(self, seed: int | Sequence[int] | None) -> None:
        if seed is None:
            _ = self.np_random  # creates an unseeded generator the first time
        elif isinstance(seed, (int, np.integer)):
            self._np_random, self._np_random_seed = seeding.np_random(int(seed))
        else:
            seeds = [int(s) for s in seed]
            self._np_random = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seeds)))
            self._np_random_seed = seeds[0] if seeds else None

    def _place_starts(self, state: State, rows: np.ndarray) -> State:
        """``state`` with the envs in ``rows`` set to start states drawn from the pool."""
        device = self._dreamer.device
        ids = np.flatnonzero(rows)
        picks = torch.as_tensor(self.np_random.integers(self.pool_size, size=len(ids)), device=device)
        return _put(state, torch.as_tensor(ids, device=device), _index(self._pool, picks))

    def _reset_masked(self, mask: Any, seed: Any, options: Mapping[str, Any]):
        n = self.num_envs
        if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != (n,):
            raise ValueError(f"options['reset_mask'] must be a bool numpy array of shape ({n},), got {mask!r}")
        if not mask.any():
            raise ValueError("options['reset_mask'] must select at least one env")
        if self._state is None:
            raise RuntimeError("call reset() without a reset_mask first")
        if "do" in options:
            raise ValueError(
                "a dream vector env applies one set of interventions to all its envs: pass 'do' to a full reset(), "
                "or use do() / undo()"
            )
        if seed is not None:
            self._seed(seed)
        self._state = self._place_starts(self._state, mask)
        obs, guarded, _ = self._dreamer.observe_state(self._state, n)
        self._steps[mask] = 0
        self._guarded_total[mask] = guarded[mask]
        self._needs_reset[mask] = False
        return obs, self._info(guarded, np.zeros(n, dtype=bool))

    def _info(self, guarded: np.ndarray, error: np.ndarray) -> dict[str, Any]:
        ones = self._ones
        return {
            "dream": np.ones(self.num_envs, dtype=bool),
            "_dream": ones,
            "steps": self._steps.copy(),
            "_steps": ones,
            "guarded": np.asarray(guarded, dtype=np.int64).copy(),
            "_guarded": ones,
            "guarded_total": self._guarded_total.copy(),
            "_guarded_total": ones,
            "model_error": np.asarray(error, dtype=bool).copy(),
            "_model_error": ones,
        }

