"""``DreamEnv``: one world model's dream as a ``gymnasium.Env``, real start states and imagined steps."""

from __future__ import annotations

from typing import Any, Unpack

import gymnasium as gym

from model_zoo.base import State, WorldModel
from wrappers.batched import copy_row
from wrappers.dream.base import RENDER_MODES, DreamEnvBase, DreamOptions
from wrappers.dream.guard import Observation, check_actions

__all__ = ["DreamEnv"]


class DreamEnv(DreamEnvBase, gym.Env):
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
    - Termination: the model predicts it, or ``termination_fn`` says so, or the model produced a non-finite
      reward, state or observation (then ``info["model_error"]`` is True).
    - Truncation: after ``max_episode_steps`` imagined steps.
    Stepping an ended episode raises a ``RuntimeError``; call ``reset()``.

    ## Info
    ``"dream"`` (True), ``"model"`` (the model id), ``"steps"`` (imagined steps
    this episode), ``"guarded"`` (observation elements fixed this step),
    ``"guarded_total"`` (this episode), ``"model_error"``; after a step,
    ``"disagreement"`` when the model's state carries one (an ensemble's spread).

    ## Arguments
    - ``model``: a ``model_zoo`` world model (ideally trained).
    - ``env``: where start states come from: an env id (made with
      ``gym.make(env, **env_kwargs)`` and closed with this env) or a
      ``gymnasium.Env`` (left open). Its spaces must be the model's.
    - ``dataset``: instead of ``env``, a Minari dataset, dataset id or list of
      ``model_zoo.data.Episode``; episodes start from their first frames.
    - ``start_frames``: with ``dataset``, ``"first"`` (default) or ``"any"``:
      start from any replay state an action was taken from, as MBPO's branched
      rollouts (pair it with a short ``max_episode_steps``).
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
    - ``termination_fn``: a known termination, ``fn(next observations (N, ...))
      -> (N,) bool`` on the decoded observations, as MBPO's per-env termination
      functions: an episode also ends where it says (an env may name one in
      ``metadata["termination_fn"]``, e.g. CampusNav-v0's goal reached).
    - ``device``: where the model runs; a model elsewhere is moved there, in
      place (default: where it is).
    - ``env_kwargs``: keyword arguments of ``gym.make`` when ``env`` is an id
      (default: those its ``metadata["env_kwargs_for"]`` gives for the model's
      observation space, e.g. ``obs_mode="state"`` for a CampusNav-v0 state model).
    - ``render_mode``: ``"rgb_array"`` renders the decoded image (for models
      whose observations have an image part).

    >>> import gymnasium as gym, model_zoo
    >>> real = gym.make("CartPole-v1")
    >>> model = model_zoo.make("mlp", real.observation_space, real.action_space, hidden=16)
    >>> env = DreamEnv(model, real, max_episode_steps=50)
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape == real.observation_space.shape, info["dream"], info["model"]
    (True, True, 'mlp')
    >>> obs, reward, terminated, truncated, info = env.step(1)
    >>> obs in env.observation_space, info["steps"]
    (True, 1)
    """

    metadata = {"render_modes": RENDER_MODES, "render_fps": 10}

    def __init__(self, model: WorldModel, env: str | gym.Env | None = None, **options: Unpack[DreamOptions]):
        self._set_up(model, env, None, **options)
        self.observation_space = self._dreamer.observation_space
        self.action_space = self._dreamer.action_space
        self._state: State | None = None
        self._obs: Observation | None = None
        self._steps = 0
        self._guarded_total = 0
        self._done = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        do = self._episode_interventions(self._check_reset_options(options, ("do",)))
        with self._all_or_nothing():  # a refused reset (a bad seed, a real env refusing `do`) changes nothing
            super().reset(seed=seed)
            start = self._starts.draw(1, self.np_random, do)
            generator = self._dreamer.generator(self.np_random)
            state = self._dreamer.start(start)
            obs, guarded, _ = self._dreamer.observe_state(state, 1)
        self._do, self._generator, self._state, self._obs = do, generator, state, obs
        self._steps, self._guarded_total, self._done = 0, int(guarded[0]), False
        return copy_row(self._obs, 0), self._info(int(guarded[0]), False)

    def step(self, action):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        dreamer = self._dreamer
        actions = dreamer.actions(check_actions(self.action_space, action, None))
        if self._done:
            raise RuntimeError("the episode has ended (terminated or truncated); call reset() before step()")
        out = dreamer.step(self._state, actions, self._do, self._generator)
        self._state, self._obs = out.state, out.obs
        self._steps += 1
        self._guarded_total += int(out.guarded[0])
        terminated = bool(out.terminated[0])
        truncated = self.max_episode_steps is not None and self._steps >= self.max_episode_steps
        self._done = terminated or truncated
        info = self._info(int(out.guarded[0]), bool(out.model_error[0]))
        if out.disagreement is not None:
            info["disagreement"] = float(out.disagreement[0])
        return copy_row(out.obs, 0), float(out.reward[0]), terminated, truncated, info

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
