"""``DreamVectorEnv``: many dreams of one world model stepped as one batch, a Gymnasium ``VectorEnv``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Unpack

import gymnasium as gym
import numpy as np
import torch
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from model_zoo.base import State, WorldModel
from wrappers.dream.base import RENDER_MODES, DreamEnvBase, DreamOptions
from wrappers.dream.guard import check_actions
from wrappers.dream.imagination import replace_state_rows, state_rows

__all__ = ["DEFAULT_POOL_SIZE", "DreamVectorEnv"]

DEFAULT_POOL_SIZE = 256  # real start observations a DreamVectorEnv keeps for its autoresets


def _is_seed(seed: Any) -> bool:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        return False
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return True


class DreamVectorEnv(DreamEnvBase, VectorEnv):
    """``num_envs`` dreams stepped as one batch: one ``model.imagine`` call per step, on the model's device.

    The spaces are those of ``DreamEnv`` batched with ``batch_space``; the
    keyword arguments are ``DreamEnv``'s (``DreamOptions``), plus:

    - ``num_envs``: the batch size.
    - ``env``: an env id (made with ``gym.make_vec``: the env's native vector
      env when its spec has a ``vector_entry_point``, else a ``SyncVectorEnv`` of
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
    ``"steps"``, ``"guarded"``, ``"guarded_total"``, ``"model_error"``, per env;
    and after a step, ``"disagreement"`` when the model's state carries one (an
    ensemble's spread over its members' predictions, e.g. ``mlp_ensemble``).

    >>> import gymnasium as gym, model_zoo
    >>> real = gym.make("CartPole-v1")
    >>> model = model_zoo.make("mlp", real.observation_space, real.action_space, hidden=16)
    >>> envs = DreamVectorEnv(model, 4, "CartPole-v1", obs="features")
    >>> obs, info = envs.reset(seed=0)
    >>> obs.shape, envs.metadata["autoreset_mode"].value
    ((4, 4), 'NextStep')
    >>> obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
    >>> reward.shape, info["steps"].tolist()
    ((4,), [1, 1, 1, 1])
    """

    metadata = {
        "render_modes": RENDER_MODES,
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
        pool_size: int | None = None,
        **options: Unpack[DreamOptions],
    ):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if pool_size is not None and (
            isinstance(pool_size, bool) or not isinstance(pool_size, (int, np.integer)) or pool_size < 1
        ):
            raise ValueError(f"pool_size must be a positive integer or None, got {pool_size!r}")
        self.num_envs = int(num_envs)
        self._set_up(model, env, self.num_envs, **options)
        self.pool_size = max(self.num_envs, int(pool_size if pool_size is not None else DEFAULT_POOL_SIZE))
        self.single_observation_space = self._dreamer.observation_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.single_action_space = self._dreamer.action_space
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._pool: State | None = None
        self._state: State | None = None
        n = self.num_envs
        self._steps = np.zeros(n, dtype=np.int64)
        self._guarded_total = np.zeros(n, dtype=np.int64)
        self._needs_reset = np.zeros(n, dtype=bool)
        self._ones = np.ones(n, dtype=bool)
        self._ones.flags.writeable = False

    def reset(self, *, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None):
        """Resets every env (drawing a new pool of real starts), or only ``options["reset_mask"]`` (from the pool).

        ``seed`` seeds this env's ``np_random`` (an int, or a sequence of ints
        combined into one seed); with a mask it reseeds too, but the pool stays.
        """
        options = self._check_reset_options(options, ("do", "reset_mask"))
        mask = options.get("reset_mask")
        if mask is not None:
            return self._reset_masked(mask, seed, options)
        do = self._episode_interventions(options)
        dreamer, n = self._dreamer, self.num_envs
        with self._all_or_nothing():  # a refused reset (a bad seed, a real env refusing `do`) changes nothing
            self._seed(seed)
            pool = dreamer.start(self._starts.draw(self.pool_size, self.np_random, do))
            generator = dreamer.generator(self.np_random)
            state = state_rows(pool, torch.arange(n, device=dreamer.device))
            obs, guarded, _ = dreamer.observe_state(state, n)
        self._do, self._pool, self._generator, self._state = do, pool, generator, state
        self._steps[:] = 0
        self._guarded_total[:] = guarded
        self._needs_reset[:] = False
        return obs, self._info(guarded, np.zeros(n, dtype=bool))

    def step(self, actions):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        dreamer, n = self._dreamer, self.num_envs
        act = dreamer.actions(check_actions(self.single_action_space, actions, n))
        restart = self._needs_reset  # these envs already hold their next start state (placed when they ended)
        out = dreamer.step(self._state, act, self._do, self._generator, restart=restart)
        self._steps = np.where(restart, 0, self._steps + 1)
        self._guarded_total = np.where(restart, 0, self._guarded_total) + out.guarded
        if self.max_episode_steps is None:
            truncated = np.zeros(n, dtype=bool)
        else:
            truncated = self._steps >= self.max_episode_steps  # as TimeLimit: may coincide with terminated
        done = out.terminated | truncated
        info = self._info(out.guarded, out.model_error)
        if out.disagreement is not None:
            info["disagreement"], info["_disagreement"] = out.disagreement, self._ones
        self._state = self._place_starts(out.state, done) if done.any() else out.state
        self._needs_reset = done
        return out.obs, out.reward, out.terminated, truncated, info

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
        elif _is_seed(seed):
            self._np_random, self._np_random_seed = seeding.np_random(int(seed))
        else:
            if not isinstance(seed, Sequence) or isinstance(seed, str) or not all(_is_seed(s) for s in seed):
                raise TypeError(f"seed must be a non-negative integer, a sequence of them or None, got {seed!r}")
            seeds = [int(s) for s in seed]
            self._np_random = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seeds)))
            self._np_random_seed = seeds[0] if seeds else None

    def _place_starts(self, state: State, rows: np.ndarray) -> State:
        """``state`` with the envs in ``rows`` set to start states drawn from the pool."""
        device = self._dreamer.device
        ids = np.flatnonzero(rows)
        picks = torch.as_tensor(self.np_random.integers(self.pool_size, size=len(ids)), device=device)
        return replace_state_rows(state, torch.as_tensor(ids, device=device), state_rows(self._pool, picks))

    def _reset_masked(self, mask: Any, seed: Any, options: dict[str, Any]):
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
        with self._all_or_nothing():
            if seed is not None:
                self._seed(seed)
            state = self._place_starts(self._state, mask)
        self._state = state
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
