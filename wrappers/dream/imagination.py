"""The batched imagination core shared by both dream envs: filter real starts, imagine, decode, guard.

A ``Dreamer`` runs a ``model_zoo`` world model for a dream env (Ha &
Schmidhuber, "World Models", arXiv:1803.10122): real start observations pass
through ``observe(initial_state, placeholder action, obs, is_first=True)``, each
step is one batched ``imagine`` call, and what a learner sees is the guarded
decoding (``obs="decoded"``) or feature vector (``obs="features"``) of the
state. States are dicts of tensors with the batch first; the helpers below
pick and replace their rows without changing any tensor in place.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from model_zoo.base import State, WorldModel
from wrappers.batched import batch_size, select_rows
from wrappers.dream.guard import Observation, ObservationGuard, first_step_actions, to_numpy

__all__ = [
    "FEATURE_BOUND",
    "OBS_MODES",
    "DreamStep",
    "Dreamer",
    "choose_state_rows",
    "nonfinite_state_rows",
    "replace_state_rows",
    "state_rows",
]

OBS_MODES = ("decoded", "features")
FEATURE_BOUND = float(np.finfo(np.float32).max)  # feature spaces are bounded like CartPole's velocities
_START_CHUNK = 1024  # real start observations filtered per observe call


def choose_state_rows(mask: Tensor, a: State, b: State) -> State:
    """Per row: ``a`` where ``mask`` (B,) else ``b``; new tensors, nothing changed in place."""
    return {k: torch.where(mask.reshape(mask.shape + (1,) * (b[k].dim() - 1)), a[k], b[k]) for k in b}


def state_rows(state: State, rows: Tensor) -> State:
    """Rows ``rows`` (int64) of every leaf."""
    return {k: v.index_select(0, rows) for k, v in state.items()}


def replace_state_rows(state: State, rows: Tensor, values: State) -> State:
    """``state`` with rows ``rows`` (int64) replaced by ``values`` (len(rows), ...); new tensors, none changed."""
    return {k: v.index_copy(0, rows, values[k]) for k, v in state.items()}


def nonfinite_state_rows(state: State, n: int) -> Tensor:
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


def _device(device: Any) -> torch.device:
    """``device`` as a ``torch.device``, or a ``ValueError`` naming it."""
    try:
        return torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        raise ValueError(f"device must be a torch device or its name (e.g. 'cpu'), got {device!r}: {err}") from None


def _disagreement(state: State, restart: np.ndarray | None) -> np.ndarray | None:
    """The state's ``"disagreement"`` (B,) as float64 numpy (0 on restarted rows), or None when it has none."""
    spread = state.get("disagreement")
    if spread is None:
        return None
    out = spread.detach().reshape(-1).to("cpu", torch.float64).numpy().copy()
    out[~np.isfinite(out)] = np.inf
    if restart is not None:
        out[restart] = 0.0
    return out


@dataclasses.dataclass
class DreamStep:
    """One batched dream step, as numpy for the env (B = the batch)."""

    state: State
    obs: Observation  # guarded, (B, ...)
    reward: np.ndarray  # (B,) float64; 0 where the model failed
    terminated: np.ndarray  # (B,) bool; True where the model failed
    model_error: np.ndarray  # (B,) bool: non-finite state, reward or observation
    guarded: np.ndarray  # (B,) int64: observation elements fixed
    disagreement: np.ndarray | None = None  # (B,) float64: an ensemble's spread on this step, when the state has it


class Dreamer:
    """A world model run for a dream env: filtering start observations, imagining, decoding, guarding."""

    def __init__(
        self,
        model: WorldModel,
        obs: str,
        do: Mapping[str, Any] | None,
        temperature: float | None,
        device: torch.device | str | None,
        termination_fn: Callable[[Observation], Any] | None = None,
    ):
        if not isinstance(model, WorldModel):
            raise TypeError(f"model must be a model_zoo WorldModel, got {type(model).__name__}")
        if obs not in OBS_MODES:
            raise ValueError(f"obs must be one of {', '.join(map(repr, OBS_MODES))}, got {obs!r}")
        if device is not None and _device(device) != model.device:
            model.to(device)
        if termination_fn is not None and not callable(termination_fn):
            raise TypeError(f"termination_fn must be a function of the next observations, got {termination_fn!r}")
        self.model = model
        self.termination_fn = termination_fn
        self._running = False
        self.mode = obs
        self.device = model.device
        self.model_id = model.model_id or type(model).__name__
        self.default_do = self.check_do(do)
        self.config = self._config_with(temperature)  # the config to imagine with, when it differs from the model's
        self.action_space = model.action_space
        self.decoded_guard = ObservationGuard(model.observation_space)
        if obs == "features":
            with self.running():
                dim = int(model.features(model.initial_state(1)).shape[-1])
            self.observation_space = spaces.Box(-FEATURE_BOUND, FEATURE_BOUND, (dim,), np.float32)
            self.guard = ObservationGuard(self.observation_space)
        else:
            self.observation_space = model.observation_space
            self.guard = self.decoded_guard

    def _config_with(self, temperature: float | None) -> Any:
        if temperature is None:
            return None
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.integer, np.floating)) or not (
            math.isfinite(temperature) and temperature >= 0
        ):
            raise ValueError(f"temperature must be a finite number >= 0 or None, got {temperature!r}")
        config = self.model.config
        if "temperature" not in {f.name for f in dataclasses.fields(config)}:
            raise ValueError(
                f"model {self.model_id!r} has no temperature in its config ({type(config).__name__}); "
                "leave temperature=None"
            )
        return dataclasses.replace(config, temperature=float(temperature))

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

    def start(self, obs: Observation) -> State:
        """States of real observations (n, ...): one ``observe`` step from the initial state, ``is_first``."""
        n = batch_size(obs)
        spec = self.model.spec
        states = []
        with self.running() as model:
            for lo in range(0, n, _START_CHUNK):
                m = min(_START_CHUNK, n - lo)
                part = spec.to_torch(select_rows(obs, slice(lo, lo + m)), self.device)
                states.append(model.observe(
                    model.initial_state(m),
                    self.actions(first_step_actions(self.action_space, m)),
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
        bad_state = nonfinite_state_rows(out.state, n)
        reward = out.reward.detach().reshape(n).to("cpu", torch.float64).numpy().copy()
        terminated = out.terminated.detach().reshape(n).to("cpu", torch.bool).numpy().copy()
        error = bad_state.cpu().numpy() | ~np.isfinite(reward)
        next_state = out.state
        if error.any():
            reward[error] = 0.0
            terminated |= error
            if bad_state.any():
                next_state = choose_state_rows(bad_state.to(self.device), state, out.state)
        return next_state, reward, terminated, error

    def step(
        self,
        state: State,
        actions: Tensor,
        do: Mapping[str, Any],
        generator: torch.Generator,
        restart: np.ndarray | None = None,
    ) -> DreamStep:
        """``imagine`` then ``observe_state``; a non-finite observation is a model error that ends the episode.

        Rows in ``restart`` (B,) bool already hold their next start state: they
        keep it, with reward 0 and neither terminated nor in error (a vector env's
        next-step autoreset).
        """
        with self.running():
            next_state, reward, terminated, error = self.imagine(state, actions, do, generator)
            if restart is not None and restart.any():
                rows = torch.as_tensor(np.flatnonzero(restart), device=self.device)
                next_state = replace_state_rows(next_state, rows, state_rows(state, rows))
                reward[restart], terminated[restart], error[restart] = 0.0, False, False
            obs, guarded, nonfinite = self.observe_state(next_state, len(reward))
            if self.termination_fn is not None:
                known = self._known_termination(obs, next_state, len(reward)) & ~error
                terminated |= known if restart is None else known & ~restart
        if nonfinite.any():
            reward[nonfinite], terminated[nonfinite], error[nonfinite] = 0.0, True, True
        return DreamStep(next_state, obs, reward, terminated, error, guarded, _disagreement(next_state, restart))

    def _known_termination(self, obs: Observation, state: State, n: int) -> np.ndarray:
        """(n,) bool from ``termination_fn`` on the decoded next observations."""
        if self.mode != "decoded":
            with self.running() as model:
                obs, _, _ = self.decoded_guard(to_numpy(model.decode(state)), n)
        done = np.asarray(self.termination_fn(obs), dtype=bool).reshape(-1)
        if done.shape != (n,):
            raise ValueError(f"termination_fn must return one bool per row, shape ({n},), got {done.shape}")
        return done

    def observe_state(self, state: State, n: int) -> tuple[Observation, np.ndarray, np.ndarray]:
        """Guarded observations of ``state`` (batched numpy), elements fixed per row, rows with non-finite values."""
        with self.running() as model:
            raw = model.decode(state) if self.mode == "decoded" else model.features(state)
        return self.guard(to_numpy(raw), n)

    def image(self, state: State, n: int) -> list[np.ndarray] | None:
        """The first image part of the decoded observations, one (H, W, C) uint8 per row, or None."""
        keys = self.model.spec.image_keys
        if not keys:
            return None
        with self.running() as model:
            raw = model.decode(state)
        decoded, _, _ = self.decoded_guard(to_numpy(raw), n)
        image = decoded[keys[0]] if isinstance(decoded, dict) else decoded
        return [np.array(image[i]) for i in range(n)]
