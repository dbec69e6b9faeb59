"""``Intervene``: interventions on a schedule, such as a surprise gameday at step 20.

A schedule says at which step of every episode which ``do()`` or ``undo()``
happens. Step ``k`` counts the steps taken since the episode's reset, so an
intervention "at step k" is made just before the ``k``-th step: that step's
transition already runs under it, and the observation and info it returns (and
every later one) show it, while those of steps ``0 .. k-1`` do not. Step 0
means from the reset on: those assignments go into ``reset(options={"do": ...})``.

>>> import gymnasium as gym
>>> import campus_env
>>> env = Intervene(gym.make("CampusNav-v0", obs_mode="state"), [(2, {"gameday": True}), (4, "undo", "gameday")])
>>> _ = env.reset(seed=1)
>>> [env.step(0)[-1]["causal"]["gameday"] for _ in range(5)]
[False, True, True, False, False]
"""

from __future__ import annotations

import inspect
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper

__all__ = ["Intervene", "IntervenedVectorEnv", "Schedule", "parse_schedule"]

# one action of a schedule: ("do", {name: value}) or ("undo", (names...)); no names undoes everything
Action = tuple[str, Any]
Schedule = Mapping[int, Any] | Sequence[tuple]


def parse_schedule(schedule: Schedule, env: Any = None) -> dict[int, list[Action]]:
    """Checks a schedule and returns ``{step: [("do", assignments) | ("undo", names), ...]}``, steps sorted.

    Accepted forms: a list of ``(step, {"gameday": True})``, ``(step, "do", {...})``,
    ``(step, "undo")`` (everything) or ``(step, "undo", names)`` (a name or a list of
    names) entries, applied in list order within a step; or a dict
    ``{step: {...} | "undo" | ("undo", names) | [several of these]}``. Given
    an env, the names are checked against its ``unwrapped.causal_graph`` and the
    assignments with the ``"module:function"`` its ``metadata["validate_do"]``
    names (CampusNav-v0 declares both), so a bad schedule fails here, not mid-episode.
    Raises ``ValueError`` or ``TypeError`` naming the faulty entry.
    """
    checks = _InterventionChecks(env)
    if isinstance(schedule, Mapping):
        entries = []
        for step, value in schedule.items():
            for item in value if isinstance(value, list) else [value]:
                entries.append((step, *item) if isinstance(item, tuple) else (step, item))
    elif isinstance(schedule, Sequence) and not isinstance(schedule, (str, bytes)):
        entries = list(schedule)
    else:
        raise TypeError(
            "schedule must be a list of (step, {name: value}) / (step, 'undo', names) entries "
            f"or a dict {{step: {{name: value}}}}, got {type(schedule).__name__}"
        )
    out: dict[int, list[Action]] = {}
    for entry in entries:
        step, action = _parse_entry(entry, checks)
        out.setdefault(step, []).append(action)
    return dict(sorted(out.items()))


class _InterventionChecks:
    """What an env says about valid interventions: its variable names and a validator of assignments."""

    def __init__(self, env: Any):
        base = getattr(env, "unwrapped", env)
        graph = getattr(base, "causal_graph", None)
        self.names: tuple[str, ...] | None = tuple(graph) if isinstance(graph, Mapping) else None
        validator = (getattr(env, "metadata", None) or {}).get("validate_do")
        self.validate: Callable[[Mapping[str, Any]], Any] | None = (
            pkgutil.resolve_name(validator) if isinstance(validator, str) else validator
        )

    def unknown_name(self, names: Sequence[str]) -> str | None:
        """A message for the first name the env does not know, or None."""
        for name in names:
            if self.names is not None and name not in self.names:
                return f"unknown causal variable {name!r}; valid names: {', '.join(self.names)}"
        return None

    def check_assignments(self, entry: Any, assignments: Mapping[str, Any]) -> None:
        try:
            if self.validate is not None:
                self.validate(assignments)
        except (ValueError, TypeError) as err:
            raise ValueError(f"schedule entry {entry!r}: {err}") from None
        message = self.unknown_name(list(assignments))
        if message:
            raise ValueError(f"schedule entry {entry!r}: {message}")


def _parse_entry(entry: Any, checks: _InterventionChecks) -> tuple[int, Action]:
    if not isinstance(entry, tuple) or not 2 <= len(entry) <= 3:
        raise ValueError(
            f"schedule entry {entry!r} must be (step, {{name: value}}), (step, 'do', {{...}}), "
            "(step, 'undo') or (step, 'undo', names)"
        )
    step = entry[0]
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"schedule entry {entry!r}: the step must be a non-negative integer, got {step!r}")
    kind, arg = (entry[1], entry[2] if len(entry) == 3 else None)
    if isinstance(kind, Mapping) and len(entry) == 2:
        kind, arg = "do", kind
    if kind == "do":
        if not isinstance(arg, Mapping) or not arg or not all(isinstance(k, str) for k in arg):
            raise ValueError(f"schedule entry {entry!r}: 'do' takes a non-empty dict {{name: value}}")
        checks.check_assignments(entry, arg)
        return int(step), ("do", dict(arg))
    if kind == "undo":
        if step == 0:
            raise ValueError(f"schedule entry {entry!r}: nothing is intervened on before step 0 to undo")
        names = () if arg is None else (arg,) if isinstance(arg, str) else tuple(arg)
        if not all(isinstance(n, str) for n in names):
            raise ValueError(f"schedule entry {entry!r}: 'undo' takes a variable name or a list of names")
        message = checks.unknown_name(names)
        if message:
            raise ValueError(f"schedule entry {entry!r}: {message}")
        return int(step), ("undo", names)
    raise ValueError(f"schedule entry {entry!r}: the action must be a dict, 'do' or 'undo', got {kind!r}")


def _with_step0_interventions(options: dict[str, Any] | None, at_reset: list[Action]) -> dict[str, Any] | None:
    """The reset options with the schedule's step-0 assignments added to their ``"do"``."""
    if not at_reset:
        return options
    do = dict((options or {}).get("do") or {})
    for _, assignments in at_reset:
        do.update(assignments)
    return {**(options or {}), "do": do}


def _check_target(env: Any, vector: bool) -> Any:
    base = env.unwrapped
    for method in ("do", "undo"):
        if not callable(getattr(base, method, None)):
            raise TypeError(
                f"Intervene needs an env with unwrapped.do(**assignments) and unwrapped.undo(*names) "
                f"(CampusNav-v0), and {type(base).__name__} has no {method}()"
            )
        if vector and "env_ids" not in inspect.signature(getattr(base, method)).parameters:
            raise TypeError(
                f"Intervene on a vector env needs {type(base).__name__}.{method}(..., env_ids=...) "
                "to act on some of its envs (as CampusNav's native vector env does)"
            )
    return base


class Intervene(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Applies scheduled ``do()``/``undo()`` interventions at given steps of every episode.

    Works on any env whose ``unwrapped`` has ``do(**assignments)`` and
    ``undo(*names)`` (CampusNav-v0). Given a vector env (such as
    ``gym.make_vec("CampusNav-v0")``), it returns an ``IntervenedVectorEnv``,
    which keeps one step count per env and applies each intervention to the
    envs that reach its step, through ``do(env_ids=...)``.

    Args:
        env: the env to intervene on.
        schedule: when and what (see ``parse_schedule``), e.g.
            ``[(20, {"gameday": True}), (60, "undo", "gameday")]`` or
            ``{20: {"gameday": True}}``. Checked here, up front.
    """

    def __new__(cls, env: Any, schedule: Schedule):
        if cls is Intervene and isinstance(env, VectorEnv):
            return IntervenedVectorEnv(env, schedule)
        return super().__new__(cls)

    def __init__(self, env: gym.Env, schedule: Schedule):
        gym.utils.RecordConstructorArgs.__init__(self, schedule=schedule)
        super().__init__(env)
        self._target = _check_target(env, vector=False)
        self.schedule = parse_schedule(schedule, env)
        self._at_reset = self.schedule.get(0, [])
        self.episode_step = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=_with_step0_interventions(options, self._at_reset))
        self.episode_step = 0
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        for kind, arg in self.schedule.get(self.episode_step + 1, ()):
            if kind == "do":
                self._target.do(**arg)
            else:
                self._target.undo(*arg)
        self.episode_step += 1
        return self.env.step(action)


class IntervenedVectorEnv(VectorWrapper):
    """``Intervene`` for vector envs: every env follows the schedule at its own step count.

    The step counts follow the env's ``metadata["autoreset_mode"]``: with
    ``NEXT_STEP`` an env's count restarts at 0 on the step that autoresets it,
    with ``SAME_STEP`` on the step that ends its episode, and with ``DISABLED``
    on ``reset(options={"reset_mask": ...})``.
    """

    def __init__(self, env: VectorEnv, schedule: Schedule):
        super().__init__(env)
        self._target = _check_target(env, vector=True)
        self.schedule = parse_schedule(schedule, env)
        self._at_reset = self.schedule.get(0, [])
        mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        self.autoreset_mode = mode if isinstance(mode, AutoresetMode) else AutoresetMode(mode)
        self.episode_steps = np.zeros(self.num_envs, dtype=np.int64)
        self._pending_reset = np.zeros(self.num_envs, dtype=bool)

    def reset(self, *, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None):
        mask = None if options is None else options.get("reset_mask")
        mask = slice(None) if mask is None else np.asarray(mask, dtype=bool).copy()
        obs, info = self.env.reset(seed=seed, options=_with_step0_interventions(options, self._at_reset))
        self.episode_steps[mask] = 0
        self._pending_reset[mask] = False
        return obs, info

    def step(self, actions: Any):
        moving = ~self._pending_reset  # NEXT_STEP: pending envs reset in this step and ignore their action
        upcoming = self.episode_steps + 1
        for step, actions_at in self.schedule.items():
            if step == 0:
                continue
            ids = np.flatnonzero(moving & (upcoming == step))
            if len(ids):
                for kind, arg in actions_at:
                    if kind == "do":
                        self._target.do(env_ids=ids, **arg)
                    else:
                        self._target.undo(*arg, env_ids=ids)
        obs, reward, terminated, truncated, info = self.env.step(actions)
        done = np.asarray(terminated, dtype=bool) | np.asarray(truncated, dtype=bool)
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            self.episode_steps = np.where(self._pending_reset, 0, upcoming)
            self._pending_reset = done
        elif self.autoreset_mode == AutoresetMode.SAME_STEP:
            self.episode_steps = np.where(done, 0, upcoming)
        else:
            self.episode_steps = upcoming
        return obs, reward, terminated, truncated, info
