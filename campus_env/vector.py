"""The native vector env: one numpy-batched simulation and renderer for N campuses."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from campus_env import causal, noise
from campus_env.core import CampusCore
from campus_env.env import (
    SHARED_METADATA,
    _check_names,
    build_obs,
    check_action,
    check_image_size,
    check_noise_seed,
    check_seed,
    observation_space,
    parse_options,
    status_lines,
)
from campus_env.render import IMAGE_SIZES, EgoRenderer, campus_frame
from campus_env.schema import Action

__all__ = ["CampusNavVectorEnv"]


class CampusNavVectorEnv(VectorEnv):
    """``num_envs`` CampusNav-v0 envs stepped as one batch (``gym.make_vec`` builds it).

    Env ``i`` of ``reset(seed=s)`` is bit-identical to a single env reset with
    seed ``s + i`` and given the same actions, autoresets included. Autoreset is
    next-step: the step after an episode ends returns the first observation of
    the next one (reward 0, not terminated, not truncated) and ignores that
    env's action.

    Interventions passed as ``reset(options={"do": {...}})`` apply to every env
    and stay in force across autoresets until the next ``reset()``; ``do()`` and
    ``undo()`` act mid-episode, on every env or on ``env_ids``.

    >>> import gymnasium as gym
    >>> import campus_env
    >>> envs = gym.make_vec("CampusNav-v0", num_envs=4, obs_mode="state")
    >>> obs, info = envs.reset(seed=0)
    >>> obs.shape, envs.metadata["autoreset_mode"].value
    ((4, 72), 'NextStep')
    """

    metadata = {
        "render_modes": ["rgb_array"],
        "render_fps": 10,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
        "supports_reset_mask": True,
        **SHARED_METADATA,
    }

    def __init__(
        self,
        num_envs: int = 1,
        obs_mode: str = "dict",
        observe_causal: bool = True,
        split: str = "all",
        semester: str | None = None,
        layout: str | None = None,
        render_mode: str | None = None,
        max_episode_steps: int | None = 200,
        image_size: int = IMAGE_SIZES[0],
    ):
        if render_mode is not None and (not isinstance(render_mode, str)
                                        or render_mode not in self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array' for the vector env, got {render_mode!r}")
        if max_episode_steps is not None:
            bad = f"max_episode_steps must be a positive integer or None, got {max_episode_steps!r}"
            if isinstance(max_episode_steps, (bool, np.bool_)) or not isinstance(max_episode_steps, (int, np.integer)):
                raise TypeError(bad)
            if max_episode_steps < 1:
                raise ValueError(bad)
            max_episode_steps = int(max_episode_steps)
        # first: it checks obs_mode, observe_causal and image_size before anything is built
        self.single_observation_space = observation_space(obs_mode, observe_causal, image_size)
        self.image_size = check_image_size(image_size)
        self.core = CampusCore(num_envs, layout=layout, split=split, semester=semester)
        self.num_envs = self.core.n
        self.obs_mode = obs_mode
        self.observe_causal = bool(observe_causal)
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.single_action_space = spaces.Discrete(len(Action))
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.renderer = EgoRenderer(self.core, self.image_size) if obs_mode != "state" else None
        self._rngs: list[np.random.Generator] = []
        self._do: dict[str, float] = {}
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)
        self._all = np.arange(self.num_envs)
        self._ones = np.ones(self.num_envs, dtype=bool)
        self._ones.flags.writeable = False
        self._has_reset = False

    @property
    def causal_graph(self) -> dict[str, tuple[str, ...]]:
        """The causal DAG: variable -> its parents."""
        return dict(causal.CAUSAL_GRAPH)

    def reset(self, *, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None):
        """Resets every env, or only those in ``options["reset_mask"]`` (a bool array, as in Gymnasium).

        With a mask, the other envs keep their episodes; the masked ones start anew with
        ``options["do"]`` (and ``"goal"``/``"start"``) if given, else with those in force.
        """
        if options is not None and not isinstance(options, Mapping):
            raise TypeError(f"reset options must be a dict or None, got {type(options).__name__}: {options!r:.80}")
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        parsed = parse_options(options)
        seeds = self._seeds(seed)
        if mask is not None:
            return self._reset_masked(mask, seeds, parsed, "do" in options)
        if seed is not None or not self._rngs:
            self._rngs = [seeding.np_random(s)[0] for s in seeds]
            self._np_random_seed = seeds[0]
        self._do = parsed["do"]
        self._task = (parsed.get("goal"), parsed.get("start"))
        keys = np.array([noise.draw_key(rng) for rng in self._rngs], dtype=np.uint64)
        self.core.reset(self._all, keys, self._do, *self._task)
        self._needs_reset[:] = False
        self._has_reset = True
        return self._obs(), self._info()

    def _seeds(self, seed: int | Sequence[int] | None) -> list[int | None]:
        """One seed per env: ``seed + i``, or the sequence's, checked; all None for ``seed=None``."""
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)):
            return [check_seed(seed) + i for i in range(self.num_envs)]
        if isinstance(seed, (str, bytes, Mapping)) or not isinstance(seed, (Sequence, np.ndarray)):
            raise TypeError(f"reset(seed=...) takes None, an integer or one seed per env, got {seed!r}")
        seeds = [check_seed(s) for s in seed]
        if len(seeds) != self.num_envs:
            raise ValueError(f"reset(seed=...) needs one seed per env ({self.num_envs}), got {len(seeds)}")
        return seeds

    def _reset_masked(self, mask: Any, seeds: list[int | None], parsed: dict[str, Any], new_do: bool):
        if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != (self.num_envs,):
            raise ValueError(
                f"options['reset_mask'] must be a bool numpy array of shape ({self.num_envs},), got {mask!r}"
            )
        if not mask.any():
            raise ValueError("options['reset_mask'] must select at least one env")
        if not self._has_reset:
            raise RuntimeError("call reset() without a reset_mask first")
        ids = np.flatnonzero(mask)
        for i in ids:
            if seeds[i] is not None:
                self._rngs[i] = seeding.np_random(seeds[i])[0]
        keys = np.array([noise.draw_key(self._rngs[i]) for i in ids], dtype=np.uint64)
        task = (parsed.get("goal"), parsed.get("start")) if {"goal", "start"} & parsed.keys() else self._task
        self.core.reset(ids, keys, parsed["do"] if new_do else self._do, *task)
        self._needs_reset[ids] = False
        return self._obs(), self._info()

    def step(self, actions):
        if not self._has_reset:
            raise RuntimeError("call reset() before step()")
        act = check_action(actions, self.num_envs)
        core = self.core
        reward, terminated = core.step(act)
        if self.max_episode_steps is None:
            truncated = np.zeros_like(terminated)
        else:
            truncated = core.t >= self.max_episode_steps  # as gymnasium's TimeLimit: may coincide with terminated
        restart = np.flatnonzero(self._needs_reset)
        if len(restart):
            keys = np.array([noise.draw_key(self._rngs[i]) for i in restart], dtype=np.uint64)
            core.reset(restart, keys, self._do, *self._task)
            reward[restart] = 0.0
            terminated[restart] = False
            truncated[restart] = False
        self._needs_reset = terminated | truncated
        return self._obs(), reward, terminated, truncated, self._info()

    def do(self, env_ids: Sequence[int] | None = None, **assignments: Any) -> None:
        """Hard intervention from now on, in every env or in ``env_ids``."""
        codes = causal.validate_do(assignments)
        self._require_reset("do")
        self.core.intervene(self._ids(env_ids), codes)

    def undo(self, *names: str, env_ids: Sequence[int] | None = None) -> None:
        """Gives the named variables back to their mechanisms (all when none is named)."""
        names = _check_names(names)
        self._require_reset("undo")
        self.core.release(self._ids(env_ids), names)

    @property
    def noise_seeds(self) -> np.ndarray:
        """(N,) uint64: each env's per-step noise seed; ``fork(range(N), envs.noise_seeds)`` replays them."""
        self._require_reset("noise_seeds")
        return self.core.noise_key.copy()

    def fork(self, env_ids: int | Sequence[int], noise_seeds: Sequence[int]) -> CampusNavVectorEnv:
        """A new vector env whose env j is env ``env_ids[j]`` as it is now, its per-step noise from ``noise_seeds[j]``.

        One id forks one state into ``len(noise_seeds)`` envs. As ``CampusNavEnv.fork``:
        context, clock, task, interventions and counters are kept, the rest of each
        episode's noise comes from its seed, later autoresets draw from a copy of the
        source env's generator, and nothing mutable is shared with this env.
        """
        self._require_reset("fork")
        if isinstance(noise_seeds, (str, bytes, Mapping)) or not isinstance(noise_seeds, (Sequence, np.ndarray)):
            raise TypeError(f"noise_seeds must be a sequence of integers, got {noise_seeds!r:.80}")
        keys = np.array([check_noise_seed(s) for s in noise_seeds], dtype=np.uint64)
        if isinstance(env_ids, (int, np.integer)) and not isinstance(env_ids, (bool, np.bool_)):
            env_ids = [env_ids] * len(keys)
        ids = self._ids(env_ids)
        if len(ids) != len(keys) or len(ids) == 0:
            raise ValueError(f"fork() needs one noise seed per forked env and at least one, got {len(ids)} env ids "
                             f"and {len(keys)} seeds")
        twin = copy.copy(self)
        twin.core = self.core.fork(ids, keys)
        twin.num_envs = twin.core.n
        twin.observation_space = batch_space(self.single_observation_space, twin.num_envs)
        twin.action_space = batch_space(self.single_action_space, twin.num_envs)
        twin.renderer = EgoRenderer(twin.core, self.image_size) if self.renderer is not None else None
        twin._rngs = [copy.deepcopy(self._rngs[i]) for i in ids]
        twin._do = dict(self._do)
        twin._needs_reset = self._needs_reset[ids]
        twin._all = np.arange(twin.num_envs)
        twin._ones = np.ones(twin.num_envs, dtype=bool)
        twin._ones.flags.writeable = False
        return twin

    def render(self):
        if self.render_mode is None:
            return None
        self._require_reset("render")
        return tuple(campus_frame(self.core, i, status_lines(self.core, i)) for i in range(self.num_envs))

    def _ids(self, env_ids: Any) -> np.ndarray:
        """The env indices ``env_ids`` names: None (all), an int, a sequence of ints or a bool mask of length N."""
        if env_ids is None:
            return self._all
        bad = f"env_ids must be integers or a boolean mask of length {self.num_envs}, got {env_ids!r:.80}"
        if isinstance(env_ids, (str, bytes, bool, np.bool_, Mapping)):
            raise TypeError(bad)
        try:
            arr = np.atleast_1d(np.asarray(env_ids))
        except (TypeError, ValueError) as err:  # a ragged sequence
            raise TypeError(bad) from err
        if arr.ndim != 1:
            raise ValueError(f"env_ids must be one id or a flat sequence of ids, got shape {arr.shape}")
        if arr.dtype == np.bool_:
            if len(arr) != self.num_envs:
                raise ValueError(f"a boolean env_ids mask must have length {self.num_envs}, got {len(arr)}")
            return np.flatnonzero(arr)
        if arr.size == 0:
            return np.zeros(0, dtype=np.int64)
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(bad)
        if np.any(arr < 0) or np.any(arr >= self.num_envs):
            raise ValueError(f"env_ids must be in 0..{self.num_envs - 1}, got {env_ids!r:.80}")
        return arr.astype(np.int64)

    def _obs(self):
        return build_obs(self.core, self.renderer, self.obs_mode, self.observe_causal)

    def _info(self) -> dict[str, Any]:
        """The single env's info keys, batched as Gymnasium does: an (N,) array and an ``_key`` mask each.

        ``goal`` and ``start`` are building indices (``layout.BUILDING_NAMES``); ``causal`` and
        ``interventions`` hold one array per variable, in codes (indices for the categorical ones);
        ``interventions[name]`` is present when some env intervenes on it, ``interventions["_" + name]``
        says which.
        """
        core = self.core
        ones = self._ones
        return {
            "causal": core.causal_arrays(),
            "_causal": ones,
            "steps": core.t.copy(),
            "_steps": ones,
            "blocked_moves": core.blocked_moves.copy(),
            "_blocked_moves": ones,
            "slipped_moves": core.slipped_moves.copy(),
            "_slipped_moves": ones,
            "goal": core.goal.copy(),
            "_goal": ones,
            "crowd_blocks": core.crowd_blocks.copy(),
            "_crowd_blocks": ones,
            "blocked": core.last_blocked.copy(),
            "_blocked": ones,
            "start": core.start.copy(),
            "_start": ones,
            "is_success": core.pos == core.goal_flat,
            "_is_success": ones,
            "interventions": core.intervention_arrays(),
            "_interventions": ones,
        }

    def _require_reset(self, what: str) -> None:
        if not self._has_reset:
            raise RuntimeError(f"call reset() before {what}()")
