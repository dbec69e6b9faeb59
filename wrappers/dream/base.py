"""What ``DreamEnv`` and ``DreamVectorEnv`` share: their arguments, set-up, interventions and reset options.

Both envs take the same keyword arguments (``DreamOptions``, documented on
``DreamEnv``), build the same ``Dreamer`` and start source, and pass the same
interventions to every ``imagine`` call; only how they batch and autoreset
differs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypedDict

import gymnasium as gym
import numpy as np
import torch

from model_zoo.base import WorldModel
from wrappers.dream.imagination import Dreamer
from wrappers.dream.starts import StartSource, make_start_source

__all__ = ["DreamEnvBase", "DreamOptions"]

RENDER_MODES = ["rgb_array"]


class DreamOptions(TypedDict, total=False):
    """The keyword arguments both dream envs take (see ``DreamEnv``'s Arguments)."""

    dataset: Any
    start_frames: str
    obs: str
    do: Mapping[str, Any] | None
    max_episode_steps: int | None
    temperature: float | None
    termination_fn: Any
    device: torch.device | str | None
    env_kwargs: Mapping[str, Any] | None
    render_mode: str | None


def _check_max_steps(max_episode_steps: Any) -> int | None:
    if max_episode_steps is not None and (
        isinstance(max_episode_steps, bool) or not isinstance(max_episode_steps, (int, np.integer))
        or max_episode_steps < 1
    ):
        raise ValueError(f"max_episode_steps must be a positive integer or None, got {max_episode_steps!r}")
    return None if max_episode_steps is None else int(max_episode_steps)


class DreamEnvBase:
    """Set-up, ``do()``/``undo()`` and reset options of both dream envs.

    In ``DreamEnv`` interventions last until the next reset; ``DreamVectorEnv``
    applies them to every env.
    """

    _do: dict[str, Any]
    _dreamer: Dreamer
    _starts: StartSource

    def _set_up(
        self,
        model: WorldModel,
        env: str | gym.Env | gym.vector.VectorEnv | None,
        num_envs: int | None,
        *,
        dataset: Any = None,
        start_frames: str = "first",
        obs: str = "decoded",
        do: Mapping[str, Any] | None = None,
        max_episode_steps: int | None = 200,
        temperature: float | None = None,
        termination_fn: Any = None,
        device: torch.device | str | None = None,
        env_kwargs: Mapping[str, Any] | None = None,
        render_mode: str | None = None,
    ) -> None:
        """Checks the arguments and builds the dreamer and the start source; ``num_envs`` None for ``DreamEnv``."""
        if env_kwargs is not None and not isinstance(env_kwargs, Mapping):
            raise TypeError(f"env_kwargs must be a dict of gym.make keyword arguments, got {type(env_kwargs).__name__}")
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.max_episode_steps = _check_max_steps(max_episode_steps)
        self._dreamer = Dreamer(model, obs, do, temperature, device, termination_fn)
        if render_mode is not None and not model.spec.image_keys:
            raise ValueError("render_mode='rgb_array' needs a model whose observations have an image part")
        self._starts = make_start_source(model, env, dataset, env_kwargs, num_envs, start_frames)
        self.model = model
        self.obs_mode = obs
        self.render_mode = render_mode
        self._do = dict(self._dreamer.default_do)
        self._generator: torch.Generator | None = None

    @property
    def model_id(self) -> str:
        return self._dreamer.model_id

    @property
    def interventions(self) -> dict[str, Any]:
        """The interventions passed to ``imagine``."""
        return dict(self._do)

    def do(self, **assignments: Any) -> None:
        """Adds interventions from the next step on (models with ``supports_do`` only)."""
        self._do = {**self._do, **self._dreamer.check_do(assignments)}

    def undo(self, *names: str) -> None:
        """Drops the named interventions (all of them when none is named)."""
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"undo() takes variable names as strings, got {name!r} ({type(name).__name__})")
        unknown = [n for n in names if n not in self._do]
        if unknown:
            raise ValueError(f"undo(): {unknown} not intervened on; interventions in force: {sorted(self._do)}")
        self._do = {k: v for k, v in self._do.items() if names and k not in names}

    def _check_reset_options(self, options: Mapping[str, Any] | None, allowed: tuple[str, ...]) -> dict[str, Any]:
        """The reset options as a dict, refusing any not in ``allowed``."""
        if options is not None and not isinstance(options, Mapping):
            raise TypeError(f"reset options must be a dict (or None), got {options!r} ({type(options).__name__})")
        options = dict(options or {})
        unknown = set(options) - set(allowed)
        if unknown:
            raise ValueError(
                f"unknown reset option(s) {sorted(unknown)}; valid options: {', '.join(map(repr, allowed))}"
            )
        return options

    @contextmanager
    def _all_or_nothing(self) -> Iterator[None]:
        """Puts back the generator and the interventions when the block raises, so a refused reset changes nothing.

        A reset may fail after seeding, e.g. when the real env refuses an
        intervention the model accepted; the episode in progress goes on as before.
        """
        rng = self._np_random
        saved = (rng, getattr(self, "_np_random_seed", None), None if rng is None else rng.bit_generator.state,
                 dict(self._do))
        try:
            yield
        except BaseException:
            rng, seed, state, self._do = saved
            if rng is not None:
                rng.bit_generator.state = state
            self._np_random, self._np_random_seed = rng, seed
            raise

    def _episode_interventions(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The interventions of an episode: ``options["do"]`` (checked), else those given to the constructor."""
        return self._dreamer.check_do(options["do"]) if "do" in options else dict(self._dreamer.default_do)
