"""``CampusNav-v0``: walk across a campus whose dynamics follow a causal model.

The single env is the shared simulation core (``campus_env.core``) with one
campus; this module adds what Gymnasium asks of an env: the spaces, checked
actions and reset options, ``info``, rendering and the ``do()``/``undo()`` API.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from campus_env import causal, noise
from campus_env import layout as lay
from campus_env.core import OBS_MODES, CampusCore
from campus_env.render import IMAGE_SIZES, EgoRenderer, campus_frame
from campus_env.schema import ACTION_MEANINGS, CAUSAL_DIM, PATCH, STATE_DIM, STATE_SLICES, Action

__all__ = ["CampusNavEnv", "check_image_size", "env_kwargs_for", "observation_space", "parse_options",
           "status_lines"]


def check_image_size(image_size: Any) -> int:
    """``image_size`` as an ``int``; a ``ValueError`` naming ``IMAGE_SIZES`` unless it is one of them."""
    if (isinstance(image_size, (bool, np.bool_)) or not isinstance(image_size, (int, np.integer))
            or int(image_size) not in IMAGE_SIZES):
        raise ValueError(f"image_size must be one of {', '.join(map(str, IMAGE_SIZES))}, got {image_size!r}")
    return int(image_size)


def observation_space(obs_mode: str, observe_causal: bool, image_size: int = IMAGE_SIZES[0]) -> spaces.Space:
    """The observation space of one env for ``obs_mode``, ``observe_causal`` and ``image_size``."""
    if not isinstance(obs_mode, str) or obs_mode not in OBS_MODES:
        raise ValueError(f"obs_mode must be one of {', '.join(map(repr, OBS_MODES))}, got {obs_mode!r}")
    check_flag("observe_causal", observe_causal)
    size = check_image_size(image_size)
    image = spaces.Box(0, 255, (size, size, 3), dtype=np.uint8)
    low = np.zeros(STATE_DIM, dtype=np.float32)
    low[STATE_SLICES["goal_offset"]] = -1  # goal minus agent; the positions lie in [0, 1]
    state = spaces.Box(low, np.ones(STATE_DIM, dtype=np.float32), dtype=np.float32)
    causal_box = spaces.Box(0.0, 1.0, (CAUSAL_DIM,), dtype=np.float32)
    if obs_mode == "pixels":
        return image
    if obs_mode == "dict":
        parts = {"image": image, "state": state}
        if observe_causal:
            parts["causal"] = causal_box
        return spaces.Dict(parts)
    lows = [low] + ([np.zeros(CAUSAL_DIM)] if observe_causal else []) + [np.zeros(2 * PATCH**2)]
    low_all = np.concatenate(lows).astype(np.float32)
    return spaces.Box(low_all, np.ones_like(low_all), dtype=np.float32)


def env_kwargs_for(space: spaces.Space) -> dict[str, Any]:
    """The ``obs_mode``, ``observe_causal`` and (with an image) ``image_size`` whose observation space is ``space``.

    So a model trained on CampusNav-v0 data finds the env that matches it again.

    >>> env_kwargs_for(observation_space("state", False))
    {'obs_mode': 'state', 'observe_causal': False}
    >>> env_kwargs_for(observation_space("pixels", True, image_size=128))
    {'obs_mode': 'pixels', 'observe_causal': True, 'image_size': 128}
    """
    for obs_mode in OBS_MODES:
        for observe_causal in (True, False):
            for image_size in IMAGE_SIZES if obs_mode != "state" else IMAGE_SIZES[:1]:
                if observation_space(obs_mode, observe_causal, image_size) == space:
                    kwargs = {"obs_mode": obs_mode, "observe_causal": observe_causal}
                    return kwargs | ({"image_size": image_size} if obs_mode != "state" else {})
    raise ValueError(f"{space} is not an observation space of CampusNav-v0 (any obs_mode and image_size, with or "
                     "without observe_causal)")


def build_obs(core: CampusCore, renderer: EgoRenderer | None, obs_mode: str, observe_causal: bool):
    """Batched observations (leading axis N) of the core's current state."""
    if obs_mode == "pixels":
        return renderer.images()
    if obs_mode == "dict":
        obs = {"image": renderer.images(), "state": core.agent_state()}
        if observe_causal:
            obs["causal"] = core.causal_obs()
        return obs
    out = np.empty((core.n, STATE_DIM + CAUSAL_DIM * observe_causal + 2 * PATCH**2), dtype=np.float32)
    core.observe_state(out, observe_causal, True)
    return out


def check_flag(name: str, value: Any) -> bool:
    """``value`` as a bool; a ``TypeError`` naming ``name`` unless it is True or False (numpy's too)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_seed(seed: Any) -> int | None:
    """A reset seed: None or a non-negative integer (numpy's too), returned as an ``int``."""
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be None or a non-negative integer, got {seed!r} of type {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be None or a non-negative integer, got {seed!r}")
    return int(seed)


def check_noise_seed(seed: Any) -> int:
    """A fork's noise seed: an integer in [0, 2**64), numpy's too, returned as an ``int``."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"noise_seed must be an integer in [0, 2**64), got {seed!r} of type {type(seed).__name__}")
    if not 0 <= int(seed) < 2**64:
        raise ValueError(f"noise_seed must be an integer in [0, 2**64), got {seed!r}")
    return int(seed)


def parse_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validates reset options; returns {"do": codes, "goal": index, "start": index}."""
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise TypeError(f"reset options must be a dict or None, got {type(options).__name__}: {options!r:.80}")
    options = dict(options)
    unknown = set(options) - {"do", "goal", "start"}
    if unknown:
        raise ValueError(f"unknown reset option(s) {sorted(unknown, key=repr)}; valid options: 'do', 'goal', 'start'")
    do = options.get("do")
    out: dict[str, Any] = {"do": causal.validate_do({} if do is None else do)}
    for which in ("goal", "start"):
        name = options.get(which)
        if name is not None:
            if not isinstance(name, str) or name not in lay.BUILDING_NAMES:
                raise ValueError(f"options[{which!r}] must be one of {', '.join(lay.BUILDING_NAMES)}, got {name!r}")
            out[which] = lay.BUILDING_NAMES.index(name)
    if out.get("goal") is not None and out.get("goal") == out.get("start"):
        raise ValueError("options 'goal' and 'start' must name different buildings")
    return out


def status_lines(core: CampusCore, i: int) -> list[str]:
    """Two lines for the status strip: the context, then the task."""
    c = core.causal_values(i)
    hh, mm = divmod(int(round(c["hour"] * 60)), 60)
    first = f"{causal.DAY_NAMES[c['day']]} {hh:02d}:{mm:02d}   {c['semester']}   {c['weather']}"
    if c["gameday"]:
        first += "   GAMEDAY"
    if c["road_closure"]:
        first += "   roads closed"
    first += f"   crowd {c['crowd']:.2f}"
    second = (
        f"to the {lay.BUILDING_NAMES[core.goal[i]]}   step {core.t[i]}"
        f"   blocked {core.blocked_moves[i]}   slipped {core.slipped_moves[i]}"
    )
    done = core.pos[i] == core.entrance_flat[core.goal[i]]
    return [first, second + ("   GOAL REACHED!" if done else "")]


_INT_TYPES = {int, Action, np.int64, np.int32, np.int16, np.int8, np.uint8, np.uint16, np.uint32, np.uint64}
_ACTIONS = tuple(np.array([a], dtype=np.int64) for a in Action)
_LAST_ACTION = len(Action) - 1
_ACTION_RANGE = f"0..{_LAST_ACTION}"


def check_action(action: Any, n: int | None = None) -> np.ndarray:
    """Checks Discrete(5) actions (``schema.Action``); returns an int64 array. Raises a clear error otherwise."""
    if n is None and type(action) in _INT_TYPES and 0 <= action <= _LAST_ACTION:
        return _ACTIONS[action]  # the common case, kept cheap
    arr = np.asarray(action)
    expected = () if n is None else (n,)
    if arr.shape != expected:
        raise ValueError(f"action must have shape {expected} (Discrete(5)), got shape {arr.shape}: {action!r}")
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"action must be an integer in {_ACTION_RANGE}, got {action!r} of type {type(action).__name__}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"action must be an integer in {_ACTION_RANGE}, got {action!r}")
    if np.any(arr < 0) or np.any(arr > _LAST_ACTION):
        raise ValueError(f"action must be in {_ACTION_RANGE} ({ACTION_MEANINGS}), got {action!r}")
    return arr.astype(np.int64).reshape(-1)


# what generic code (wrappers, model_zoo) reads from the single and the vector env's metadata alike
SHARED_METADATA = {
    "validate_do": "campus_env.causal:validate_do",  # what wrappers.Intervene checks a schedule with
    "semantic_state": "campus_env.semantics:semantic_state",  # obs -> (agent cell, semantic state)
    "termination_fn": "campus_env.semantics:reached_goal",  # next obs -> terminated
    "render_observation": "campus_env.observation_render:render_observation",  # state obs -> campus frame
    "env_kwargs_for": "campus_env.env:env_kwargs_for",  # observation space -> the gym.make kwargs that give it
    "action_meanings": tuple(action.name.lower() for action in Action),  # action id -> word
}


class CampusNavEnv(gym.Env):
    """Walk from one building's entrance to another across a campus driven by a causal model.

    ## Description
    The campus is a grid (32x32 by default) read from a plain-text layout: walkways,
    grass, roads, buildings with entrances and interiors, water, trees and a
    construction zone. Each episode starts at one entrance and ends at a goal
    entrance chosen by the context (weekday mornings: a lecture hall; meal times:
    dining; gameday: the stadium). One step is one minute of clock time.

    The dynamics follow a structural causal model (``campus_env.causal``): day,
    hour, semester, weather, gameday, road closure and crowd. Buildings open by a
    schedule; on gameday the stadium roads close from 11:00 to 18:00; rain makes
    grass slippery and snow slows walkways; crowds block moves near busy
    buildings; in spring the construction zone is closed. Any variable can be
    set by a hard intervention, at reset or mid-episode, and the same seed with
    the same actions under another intervention gives the exact counterfactual.

    ## Action Space
    ``Discrete(5)``, named by ``campus_env.Action``: ``STAY`` (0), then the four
    compass moves; ``campus_env.schema.MOVES`` gives each one's step on the map
    (``NORTH`` is one row up).

    ## Observation Space
    | ``obs_mode`` | key | observation |
    |---|---|---|
    | ``"dict"`` | ``image`` | uint8 (64, 64, 3) egocentric view of 16x16 cells, 4 px per cell, agent at cell (8, 8) |
    | | ``state`` | float32 (6,) agent row/col, goal row/col, goal offset, scaled by the map size |
    | | ``causal`` | float32 (16,) day one-hot, semester, weather one-hot, gameday, clock, closure, crowd |
    | ``"pixels"`` | | the image alone |
    | ``"state"`` | | float32 (72,): state, causal, 5x5 walkability and crowd density around the agent |

    With ``image_size=128`` the image is (128, 128, 3): the same cells at 8 px each.
    With ``observe_causal=False`` the causal part is left out (it stays in ``info``).
    ``campus_env.schema`` names the parts of each vector (``STATE_SLICES``,
    ``CAUSAL_SLICES``, ``state_slices``): read them by name, not by index.

    ## Rewards
    -0.01 per step, -0.05 more for a blocked move (wall, closure or crowd), +1 on
    reaching the goal.

    ## Episode End
    Terminated on reaching the goal entrance; truncated after 200 steps (``max_episode_steps``).
    After ``terminated``, ``step()`` raises ``RuntimeError`` until ``reset()``: the
    goal's reward is paid once. A refused ``reset()`` (bad seed or options: a
    ``TypeError`` or ``ValueError``) changes nothing, its generator included, but
    ends the episode in the same way: ``gym.make``'s ``TimeLimit`` zeroes its step
    counter before the env sees the call, so the old episode could no longer be
    truncated on time. The next valid ``reset()`` goes on as if the refused one
    never happened.

    ## Arguments
    - ``obs_mode``: ``"dict"`` (default), ``"pixels"`` or ``"state"``.
    - ``observe_causal``: include the causal variables in the observation (default True).
    - ``image_size``: the side of the image frames, 64 (default) or 128 (the same 16x16 cells at 8 px each).
    - ``split``: ``"all"`` (default), ``"train"`` or ``"heldout"``: which contexts
      are sampled (``causal.HELDOUT_CONTEXTS`` declares the held-out ones).
    - ``semester``: pin the semester (``"fall"`` or ``"spring"``).
    - ``layout``: a path to another layout file.
    - ``render_mode``: ``"rgb_array"`` or ``"human"``.

    ## Example
    >>> import gymnasium as gym
    >>> import campus_env
    >>> env = gym.make("CampusNav-v0", obs_mode="state")
    >>> obs, info = env.reset(seed=0, options={"do": {"gameday": True, "weather": "rainy"}})
    >>> obs.shape, info["causal"]["weather"], info["causal"]["gameday"]
    ((72,), 'rainy', True)
    >>> obs, reward, terminated, truncated, info = env.step(3)
    >>> env.unwrapped.do(crowd=1.0)
    >>> env.unwrapped.undo("crowd")
    """

    metadata = {
        "render_modes": ["human", "rgb_array"],
        "render_fps": 10,
        **SHARED_METADATA,
        # What a generic data collector (model_zoo.data.collect) reads instead of checking the class:
        "causal_variables": tuple(causal.VARIABLES),  # the columns of the causal codes
        "causal_codes": "campus_env.causal:causal_codes",  # info -> (N, 7) float32 codes
        "coverage_cells": "campus_env.causal:grid_cells",  # split -> the reset-time do() of every context
        "splits": causal.SPLITS,  # the values of the split= argument
        "vector_matches_single": True,  # env i of the native vector env's reset(seed=s) is this env's seed s+i
    }

    def __init__(
        self,
        obs_mode: str = "dict",
        observe_causal: bool = True,
        split: str = "all",
        semester: str | None = None,
        layout: str | None = None,
        render_mode: str | None = None,
        image_size: int = IMAGE_SIZES[0],
    ):
        if render_mode is not None and (not isinstance(render_mode, str)
                                        or render_mode not in self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None, 'human' or 'rgb_array', got {render_mode!r}")
        self.observation_space = observation_space(obs_mode, observe_causal, image_size)
        self.action_space = spaces.Discrete(len(Action))
        self.obs_mode = obs_mode
        self.observe_causal = bool(observe_causal)
        self.image_size = check_image_size(image_size)
        self.render_mode = render_mode
        self.core = CampusCore(1, layout=layout, split=split, semester=semester)
        self.renderer = EgoRenderer(self.core, self.image_size) if obs_mode != "state" else None
        self._window = None
        self._has_reset = False
        self._stopped: str | None = None  # why step() is refused until the next successful reset()

    @property
    def causal_graph(self) -> dict[str, tuple[str, ...]]:
        """The causal DAG: variable -> its parents."""
        return dict(causal.CAUSAL_GRAPH)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        try:  # before seeding: a refused reset changes nothing but stops the episode (see "Episode End")
            seed, parsed = check_seed(seed), parse_options(options)
        except (TypeError, ValueError):
            if self._has_reset:
                self._stopped = "the last reset() was refused; call reset() with valid arguments before step()"
            raise
        super().reset(seed=seed)
        key = noise.draw_key(self.np_random)
        self.core.reset(np.zeros(1, dtype=np.int64), np.array([key]), parsed["do"],
                        parsed.get("goal"), parsed.get("start"))
        self._has_reset = True
        self._stopped = None
        if self.render_mode == "human":
            self.render()
        return self._obs(), self._info()

    def step(self, action):
        if not self._has_reset:
            raise RuntimeError("call reset() before step()")
        if self._stopped is not None:
            raise RuntimeError(self._stopped)
        act = check_action(action)
        reward, terminated = self.core.step(act)
        if terminated[0]:
            self._stopped = "the episode has ended (terminated); call reset() before step()"
        if self.render_mode == "human":
            self.render()
        return self._obs(), float(reward[0]), bool(terminated[0]), False, self._info()

    @property
    def noise_seed(self) -> int:
        """The seed of the episode's per-step noise (crowd blocks, slips): ``fork(env.noise_seed)`` replays it."""
        self._require_reset("noise_seed")
        return int(self.core.noise_key[0])

    def fork(self, noise_seed: int) -> CampusNavEnv:
        """A copy of this env as it is now whose per-step noise from here on comes from ``noise_seed``.

        The context, clock, task, position, interventions and counters are kept; only
        the exogenous noise of the rest of the episode (which moves the crowd blocks and
        which slip) changes. The same seed gives the same fork, and the episode's own
        ``noise_seed`` replays it exactly. Later resets draw from a copy of this env's
        generator. The fork is unwrapped (no time limit) and shares nothing mutable.
        """
        key = check_noise_seed(noise_seed)
        self._require_reset("fork")
        twin = copy.copy(self)
        twin.core = self.core.fork(np.zeros(1, dtype=np.int64), np.array([key], dtype=np.uint64))
        twin.renderer = EgoRenderer(twin.core, self.image_size) if self.renderer is not None else None
        twin._np_random = copy.deepcopy(self._np_random)
        twin._window = None
        return twin

    def do(self, **assignments: Any) -> None:
        """Hard intervention from now on, e.g. ``env.unwrapped.do(gameday=True)``.

        Raises ``ValueError`` (and changes nothing) for an unknown variable or value.
        """
        codes = causal.validate_do(assignments)
        self._require_reset("do")
        self.core.intervene(np.zeros(1, dtype=np.int64), codes)

    def undo(self, *names: str) -> None:
        """Gives the named variables back to their mechanisms (all of them when none is named)."""
        names = _check_names(names)
        self._require_reset("undo")
        self.core.release(np.zeros(1, dtype=np.int64), names)

    @property
    def interventions(self) -> dict[str, Any]:
        """The interventions in force."""
        return self.core.interventions(0)

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' or 'human'")
            return None
        self._require_reset("render")
        frame = campus_frame(self.core, 0, status_lines(self.core, 0))
        if self.render_mode == "rgb_array":
            return frame
        if self._window is None:
            from campus_env.window import Window

            self._window = Window("CampusNav-v0", frame.shape, self.metadata["render_fps"])
        self._window.show(frame)
        return None

    def close(self):
        if self._window is not None:
            self._window.close()
            self._window = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_window"] = None  # pygame objects do not pickle; a new window opens on demand
        return state

    def _obs(self):
        obs = build_obs(self.core, self.renderer, self.obs_mode, self.observe_causal)
        if isinstance(obs, dict):
            return {k: v[0] for k, v in obs.items()}
        return obs[0]

    def _info(self) -> dict[str, Any]:
        core = self.core
        return {
            "causal": core.causal_values(0),
            "steps": int(core.t[0]),
            "blocked_moves": int(core.blocked_moves[0]),
            "crowd_blocks": int(core.crowd_blocks[0]),
            "slipped_moves": int(core.slipped_moves[0]),
            "blocked": bool(core.last_blocked[0]),
            "goal": lay.BUILDING_NAMES[core.goal[0]],
            "start": lay.BUILDING_NAMES[core.start[0]],
            "is_success": bool(core.pos[0] == core.entrance_flat[core.goal[0]]),
            "interventions": core.interventions(0),
        }

    def _require_reset(self, what: str) -> None:
        if not self._has_reset:
            raise RuntimeError(f"call reset() before {what}()")


def _check_names(names: Iterable[str]) -> list[str]:
    names = list(names) or list(causal.VARIABLES)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"undo() takes variable names as strings, e.g. undo('crowd', 'weather'); "
                            f"got {name!r} ({type(name).__name__})")
        if name not in causal.VARIABLES:
            raise ValueError(f"undo(): unknown causal variable {name!r}; valid names: {', '.join(causal.VARIABLES)}")
    return names
