"""``LatentObservation``: a real env seen through a world model's filter.

A policy trained in a dream with ``obs="features"`` sees ``model.features(state)``,
never raw observations. To let it act in reality, this wrapper runs the model's
filter along the real episode (``observe`` on every real observation, with the
action that led to it) and hands the policy the same feature vector.

>>> import gymnasium as gym
>>> import model_zoo
>>> env = gym.make("CartPole-v1")
>>> model = model_zoo.make("mlp", env.observation_space, env.action_space, hidden=32)
>>> latent = LatentObservation(env, model)
>>> obs, info = latent.reset(seed=0)
>>> obs.shape == latent.observation_space.shape == (model.feature_dim,), obs.dtype
(True, dtype('float32'))
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from model_zoo.base import State, WorldModel
from wrappers.dream.guard import first_step_actions

__all__ = ["LatentObservation"]


class LatentObservation(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Replaces a real env's observations by the model's features of its filtered state.

    On ``reset`` the state is ``model.observe(model.initial_state(1), first action,
    obs, is_first=True)``, with the placeholder first action a dream env starts
    from (``wrappers.dream.guard.first_step_actions``); on ``step(action)`` it is
    ``model.observe(state, action, obs, is_first=False)`` (``action`` led to
    ``obs``, the zoo's time convention).
    The observation is ``model.features(state)[0]`` as a float32 vector, in
    ``Box(-inf, inf, (model.feature_dim,))``. The raw observation stays in
    ``info["real_obs"]`` and the state in ``self.model_state``.

    Args:
        env: a single (not vector) env with the model's observation and action spaces.
        model: a world model from the zoo, trained on that env.
        device: where the model runs (it is moved there); ``None`` leaves it where it is.
    """

    def __init__(self, env: gym.Env, model: WorldModel, device: str | torch.device | None = "cpu"):
        gym.utils.RecordConstructorArgs.__init__(self, model=model, device=device)
        super().__init__(env)
        if not isinstance(model, WorldModel):
            raise TypeError(f"model must be a model_zoo WorldModel, got {type(model).__name__}")
        for what in ("observation_space", "action_space"):
            if getattr(env, what) != getattr(model, what):
                raise ValueError(
                    f"the env's {what} {getattr(env, what)} is not the model's {getattr(model, what)}; "
                    "LatentObservation needs the env the model was trained on"
                )
        self.model = model if device is None else model.to(device)
        self.device = self.model.device
        self.observation_space = spaces.Box(-np.inf, np.inf, (self.model.feature_dim,), dtype=np.float32)
        self.model_state: State | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        first = torch.ones(1, dtype=torch.bool, device=self.device)
        action = torch.as_tensor(first_step_actions(self.env.action_space, 1), device=self.device)  # as a dream's
        self.model_state = self._observe(self.model.initial_state(1), action, obs, first)
        return self._features(), {**info, "real_obs": obs}

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if self.model_state is None:
            raise RuntimeError("call reset() before step()")
        obs, reward, terminated, truncated, info = self.env.step(action)
        batched = torch.as_tensor(np.asarray(action)[None], device=self.device)  # (1,) or (1, A)
        first = torch.zeros(1, dtype=torch.bool, device=self.device)
        self.model_state = self._observe(self.model_state, batched, obs, first)
        return self._features(), reward, terminated, truncated, {**info, "real_obs": obs}

    def _observe(self, state: State, action: torch.Tensor, obs: Any, is_first: torch.Tensor) -> State:
        if isinstance(obs, dict):
            batched = {k: np.asarray(v)[None] for k, v in obs.items()}
        else:
            batched = np.asarray(obs)[None]
        with torch.no_grad():
            return self.model.observe(state, action, self.model.spec.to_torch(batched, self.device), is_first)

    def _features(self) -> np.ndarray:
        with torch.no_grad():
            features = self.model.features(self.model_state)[0]
        return features.detach().to("cpu", torch.float32).numpy()
