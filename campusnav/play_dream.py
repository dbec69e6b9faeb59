"""Play inside a world model's dream with the keyboard, reality beside it (``campusnav play --dream``).

The window shows two panels: CampusNav-v0 on the left ("reality") and the
model's imagined campus on the right ("dream"), both driven by the same keys.
A dreamed state vector is drawn by the env's own renderer
(``campus_env.observation_render.render_observation``), so the two look alike
and every difference is the model's; a pixel model's decoded frame is shown
enlarged. Under each panel: the step, the last action, its reward and the
interventions in force; a banner when that world's episode ends.

Keys: those of :mod:`campus_env.play` (arrows/WASD walk, space waits, R
restarts both worlds with one new seed, Esc/Q quits), plus two ``do()`` keys
that intervene in both worlds until the next restart: G toggles gameday
(``do(gameday=True)``, then ``undo``) and C cycles the weather (sunny, cloudy,
rainy, snowy, then back to its mechanism). W is already north, hence C. Only
a model with ``supports_do`` takes interventions; for the others they change
reality alone and the dream panel says so.

Both worlds start from the same real state: the dream's start source is a
second real env whose resets repeat reality's (same seed, same ``do``), which
the dream then filters through the model. Split like campus_env.play, so tests
need no screen: :func:`dream_command_for_key` maps keys to commands,
:class:`DreamPlaySession` owns both worlds and produces their two frames, and
:func:`play_dream` (which alone opens pygame) runs the window.

>>> dream_command_for_key("g"), dream_command_for_key("c"), dream_command_for_key("up")
('gameday', 'weather', <Action.NORTH: 1>)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from campus_env.causal import WEATHERS, validate_do
from campus_env.env import env_kwargs_for
from campus_env.observation_render import render_observation
from campus_env.play import (
    BANNER_RGBA,
    END_HINT,
    GOAL_COLOR,
    QUIT,
    RESTART,
    TIMEOUT_COLOR,
    command_for_key,
    event_loop,
    pygame_display,
)
from campus_env.schema import Action
from model_zoo.base import WorldModel
from wrappers.dream import DreamEnv

__all__ = [
    "CYCLE_WEATHER",
    "DREAM_KEYS",
    "NO_DO_NOTE",
    "TOGGLE_GAMEDAY",
    "WEATHER_CYCLE",
    "DreamPlayResult",
    "DreamPlaySession",
    "SameStartAsReality",
    "WorldStatus",
    "check_model",
    "dream_command_for_key",
    "play_dream",
]

ENV_ID = "campus_env:CampusNav-v0"
TOGGLE_GAMEDAY = "gameday"
CYCLE_WEATHER = "weather"
# key name (as pygame.key.name gives it) -> intervention command; none of campus_env.play's keys
DREAM_KEYS: dict[str, str] = {"g": TOGGLE_GAMEDAY, "c": CYCLE_WEATHER}
WEATHER_CYCLE: tuple[str | None, ...] = (*WEATHERS, None)  # None: the weather back to its mechanism
NO_DO_NOTE = "this model takes no do()"
HELP_TEXT = "arrows/WASD move   space waits   G gameday   C weather   R restarts   Esc/Q quits"
SEED_HIGH = 2**31 - 1

# window layout, in pixels
GAP_PX = 8
TITLE_PX = 28
LINE_PX = 20
CAPTION_LINES = 2
BACKGROUND = (20, 22, 30)
TEXT_COLOR = (225, 225, 232)


def dream_command_for_key(name: str) -> Action | str | None:
    """The command of a key: an intervention (``TOGGLE_GAMEDAY``, ``CYCLE_WEATHER``) or ``command_for_key``'s."""
    name = name.lower()
    if name in DREAM_KEYS:
        return DREAM_KEYS[name]
    return command_for_key(name)


def check_model(model: WorldModel) -> dict[str, Any]:
    """The ``gym.make`` kwargs of the CampusNav-v0 whose spaces are the model's; ``ValueError`` when none is."""
    try:
        env_kwargs = env_kwargs_for(model.observation_space)
    except ValueError as err:
        raise ValueError(f"model {model.model_id!r} was not built for CampusNav-v0: {err}") from None
    if model.action_space != gym.spaces.Discrete(len(Action)):
        raise ValueError(f"model {model.model_id!r} takes actions {model.action_space}, not CampusNav-v0's "
                         f"Discrete({len(Action)})")
    return env_kwargs


@dataclass
class WorldStatus:
    """What is written under one panel: the episode's step, last action and reward, and how it ended."""

    name: str  # "reality" or "dream"
    steps: int = 0
    action: int | None = None
    reward: float = 0.0
    episode_return: float = 0.0
    done: bool = False
    message: str = ""  # the end-of-episode banner ("" while it runs)
    message_color: tuple[int, int, int] = GOAL_COLOR

    def record(self, action: int, reward: float, terminated: bool, truncated: bool, failed: bool = False) -> None:
        """Counts one step; on the episode's end, sets the banner."""
        self.steps += 1
        self.action, self.reward = int(action), float(reward)
        self.episode_return += float(reward)
        where = " in the dream" if self.name == "dream" else ""
        if failed:
            self.done, self.message, self.message_color = True, f"The model failed at step {self.steps}", TIMEOUT_COLOR
        elif terminated:
            self.done, self.message = True, f"Goal reached{where} in {self.steps} steps"
            self.message_color = GOAL_COLOR
        elif truncated:
            self.done, self.message = True, f"Out of time{where} after {self.steps} steps"
            self.message_color = TIMEOUT_COLOR

    def step_line(self) -> str:
        """``step 3   action 3 east   reward -0.010``."""
        if self.action is None:
            return f"step {self.steps}   (reset)"
        word = Action(self.action).name.lower()
        return f"step {self.steps}   action {self.action} {word}   reward {self.reward:+.3f}"


def _interventions_text(interventions: Mapping[str, Any]) -> str:
    return "do: " + (", ".join(f"{k}={v}" for k, v in sorted(interventions.items())) or "none")


class SameStartAsReality(gym.Wrapper):
    """A second real env whose resets repeat reality's: the pinned seed and options, whatever the dream asks.

    ``DreamEnv`` seeds its start source from its own generator; pinning the seed
    (and the ``do``) to reality's makes the dream start from reality's state.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.pinned_seed: int | None = None
        self.pinned_options: dict[str, Any] | None = None

    def pin(self, seed: int, options: dict[str, Any]) -> None:
        self.pinned_seed, self.pinned_options = seed, options

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        return self.env.reset(seed=self.pinned_seed, options=self.pinned_options)


class DreamPlaySession:
    """Reality and a world model's dream under the same keys, without the window.

    Owns both worlds: ``reality`` (CampusNav-v0, ``render_mode="rgb_array"``,
    with the model's observation kwargs) and ``dream`` (a ``DreamEnv`` of
    ``model`` starting from reality's state). The first episode is reset with
    ``seed``, later ones with seeds drawn from a generator seeded by it; both
    worlds always share the episode's seed. ``do`` holds in both at every
    reset (in the dream only for a model with ``supports_do``); the G and C
    keys add interventions until the next restart. Each world's episode ends on
    its own; the other goes on under the next actions until R.
    """

    def __init__(self, model: WorldModel, *, seed: int | None = None, do: Mapping[str, Any] | None = None,
                 split: str = "all", semester: str | None = None):
        env_kwargs = check_model(model)
        self.do = dict(do or {})
        validate_do(self.do)
        self.model = model
        self.obs_mode: str = env_kwargs["obs_mode"]
        make_kwargs = {**env_kwargs, "split": split, "semester": semester}
        self.reality = gym.make(ENV_ID, render_mode="rgb_array", **make_kwargs)
        self.start_env = SameStartAsReality(gym.make(ENV_ID, **make_kwargs))
        try:
            self.dream = DreamEnv(model, self.start_env, max_episode_steps=self.reality.spec.max_episode_steps)
        except BaseException:
            self.start_env.close()
            self.reality.close()
            raise
        self.seed = seed
        self._seeds = np.random.default_rng(seed)
        self.episodes = 0
        self.steps = 0
        self.actions: list[int] = []
        self.intervention_log: list[str] = []  # "do(gameday=True)", "undo(weather)", ... in order
        self.restart()

    def restart(self) -> None:
        """Starts a new episode in both worlds, from the same seed and the session's ``do``."""
        seed = self.seed if self.episodes == 0 and self.seed is not None else int(self._seeds.integers(SEED_HIGH))
        options = {"do": dict(self.do)}
        self.reality_obs, self.reality_info = self.reality.reset(seed=seed, options=options)
        self.start_env.pin(seed, options)
        dream_do = self.do if self.model.supports_do else {}
        self.dream_obs, self.dream_info = self.dream.reset(seed=seed, options={"do": dict(dream_do)})
        self.episode_seed = seed
        self.episodes += 1
        self.reality_status, self.dream_status = WorldStatus("reality"), WorldStatus("dream")
        self.dream_note = NO_DO_NOTE if self.do and not self.model.supports_do else ""
        self._reality_frame: np.ndarray | None = None
        self._dream_frame: np.ndarray | None = None

    @property
    def done(self) -> bool:
        """Whether both worlds' episodes have ended (only R goes on)."""
        return self.reality_status.done and self.dream_status.done

    def act(self, action: int) -> bool:
        """Steps every world whose episode runs with ``action``; False (nothing done) once both have ended."""
        if self.done:
            return False
        action = int(action)
        if not self.reality_status.done:
            self.reality_obs, reward, terminated, truncated, self.reality_info = self.reality.step(action)
            self.reality_status.record(action, reward, terminated, truncated)
            self._reality_frame = None
        if not self.dream_status.done:
            self.dream_obs, reward, terminated, truncated, self.dream_info = self.dream.step(action)
            self.dream_status.record(action, reward, terminated, truncated, self.dream_info["model_error"])
            self._dream_frame = None
        self.steps += 1
        self.actions.append(action)
        return True

    def intervene(self, command: str) -> None:
        """Applies ``TOGGLE_GAMEDAY`` or ``CYCLE_WEATHER`` to reality and, if the model takes ``do()``, the dream."""
        name, value = self._next_assignment(command)
        real = self.reality.unwrapped
        if value is None:
            if name in real.interventions:
                real.undo(name)
            if self.model.supports_do and name in self.dream.interventions:
                self.dream.undo(name)
            self.intervention_log.append(f"undo({name})")
        else:
            real.do(**{name: value})
            if self.model.supports_do:
                self.dream.do(**{name: value})
            self.intervention_log.append(f"do({name}={value})")
        if not self.model.supports_do:
            self.dream_note = NO_DO_NOTE
        self._reality_frame = None  # reality shows the new context at once; the dream from its next step

    def _next_assignment(self, command: str) -> tuple[str, Any]:
        """(variable, value) of an intervention key; value None means undo."""
        current = self.reality.unwrapped.interventions
        if command == TOGGLE_GAMEDAY:
            return "gameday", None if current.get("gameday") is True else True
        if command == CYCLE_WEATHER:
            weather = current.get("weather")
            position = WEATHER_CYCLE.index(weather) if weather in WEATHER_CYCLE else len(WEATHER_CYCLE) - 1
            return "weather", WEATHER_CYCLE[(position + 1) % len(WEATHER_CYCLE)]
        raise ValueError(f"not an intervention command: {command!r}; use {TOGGLE_GAMEDAY!r} or {CYCLE_WEATHER!r}")

    def handle(self, command: int | str | None) -> bool:
        """Applies a command from :func:`dream_command_for_key`; returns False when it is ``QUIT``."""
        if command == QUIT:
            return False
        if command == RESTART:
            self.restart()
        elif command in (TOGGLE_GAMEDAY, CYCLE_WEATHER):
            self.intervene(command)
        elif command is not None:
            self.act(int(command))
        return True

    def frames(self) -> tuple[np.ndarray, np.ndarray]:
        """(reality, dream): two (H, W, 3) uint8 frames of the current states (each drawn once per change)."""
        if self._reality_frame is None:
            self._reality_frame = self.reality.render()
        if self._dream_frame is None:
            self._dream_frame = self._draw_dream(self._reality_frame.shape[0])
        return self._reality_frame, self._dream_frame

    def _draw_dream(self, height: int) -> np.ndarray:
        """The dream's frame: its state drawn as reality draws itself, or its decoded image enlarged to ``height``."""
        if self.obs_mode != "pixels":  # a state vector, or a dict with one: drawn as reality draws itself
            return render_observation(self.dream_obs, self.reality)
        image = np.asarray(self.dream_obs, dtype=np.uint8)[..., :3]  # (h, w, 3), the decoded view
        scale = max(1, height // image.shape[0])
        return np.kron(image, np.ones((scale, scale, 1), dtype=np.uint8))

    def captions(self) -> tuple[list[str], list[str]]:
        """The lines under each panel: the step, action and reward, then the interventions in force."""
        reality = [self.reality_status.step_line(), _interventions_text(self.reality.unwrapped.interventions)]
        if self.model.supports_do:
            dream_do = _interventions_text(self.dream.interventions)
        else:
            dream_do = "do: none" + (f" \N{EM DASH} {self.dream_note}" if self.dream_note else "")
        return reality, [self.dream_status.step_line(), dream_do]

    def result(self, quit_reason: str, frames: int) -> DreamPlayResult:
        return DreamPlayResult(quit_reason, frames, self.steps, self.episodes, list(self.actions),
                               list(self.intervention_log))

    def close(self) -> None:
        self.dream.close()
        self.start_env.close()
        self.reality.close()


@dataclass
class DreamPlayResult:
    """What happened in a game of :func:`play_dream`."""

    quit_reason: str  # "key", "window", "max_frames" or "max_steps"
    frames: int  # frames drawn
    steps: int  # action keys that stepped a world, over all episodes
    episodes: int  # episodes started (the last one possibly unfinished)
    actions: list[int] = field(default_factory=list)  # every action taken, in order
    interventions: list[str] = field(default_factory=list)  # "do(gameday=True)", "undo(weather)", ... in order


def play_dream(
    model: WorldModel,
    *,
    seed: int | None = None,
    do: Mapping[str, Any] | None = None,
    split: str = "all",
    semester: str | None = None,
    fps: int = 30,
    max_frames: int | None = None,
    max_steps: int | None = None,
) -> DreamPlayResult:
    """Opens a window and plays reality and ``model``'s dream side by side with the keyboard until the player quits.

    ``seed`` seeds the first episode; ``do`` holds in both worlds at every reset
    (the dream's only for a model with ``supports_do``); ``split`` and
    ``semester`` go to the real env. ``fps`` caps the frame rate (0 for no
    cap); ``max_frames`` and ``max_steps`` end the game early, for tests and
    scripts. A model not built for CampusNav-v0 or a bad ``do`` raises
    ``ValueError`` before any window opens.
    """
    session = DreamPlaySession(model, seed=seed, do=do, split=split, semester=semester)
    try:
        with pygame_display() as pygame:
            return _loop(pygame, session, fps, max_frames, max_steps)
    finally:
        session.close()


def _loop(pygame, session: DreamPlaySession, fps: int, max_frames: int | None,
          max_steps: int | None) -> DreamPlayResult:
    panel = tuple(max(a, b) for a, b in zip(*(f.shape[:2] for f in session.frames()), strict=True))
    size = (2 * panel[1] + GAP_PX, TITLE_PX + panel[0] + 8 + LINE_PX * CAPTION_LINES)
    screen = pygame.display.set_mode(size)
    pygame.display.set_caption(f"CampusNav-v0 and the dream of {session.model.model_id}   {HELP_TEXT}")
    fonts = pygame.font.Font(None, 34), pygame.font.Font(None, 22)
    return event_loop(pygame, session, dream_command_for_key, lambda: _draw(pygame, screen, session, fonts, panel),
                      fps, max_frames, max_steps)


def _draw(pygame, screen, session: DreamPlaySession, fonts, panel: tuple[int, ...]) -> None:
    """[reality | dream]: each panel's title above it, its frame, its caption lines under it, a banner at its end."""
    big, small = fonts
    height, width = panel
    screen.fill(BACKGROUND)
    titles = ("reality", f"dream of {session.model.model_id}")
    statuses = (session.reality_status, session.dream_status)
    for i, (frame, title, lines, status) in enumerate(
        zip(session.frames(), titles, session.captions(), statuses, strict=True)
    ):
        x = i * (width + GAP_PX)
        screen.blit(small.render(title, True, TEXT_COLOR), (x + 8, (TITLE_PX - 14) // 2))
        screen.blit(pygame.surfarray.make_surface(frame.transpose(1, 0, 2)), (x, TITLE_PX))
        for j, line in enumerate(lines):
            screen.blit(small.render(line, True, TEXT_COLOR), (x + 8, TITLE_PX + height + 6 + LINE_PX * j))
        if status.message:
            _draw_banner(pygame, screen, fonts, x, width, TITLE_PX + height // 2 - 38, status)
    pygame.display.flip()


def _draw_banner(pygame, screen, fonts, x: int, width: int, y: int, status: WorldStatus) -> None:
    """The end-of-episode banner across one panel, as campus_env.play draws it."""
    big, small = fonts
    banner = pygame.Surface((width, 76), pygame.SRCALPHA)
    banner.fill(BANNER_RGBA)
    title = big.render(status.message, True, status.message_color)
    if title.get_width() > width - 16:
        title = small.render(status.message, True, status.message_color)
    hint = small.render(END_HINT, True, TEXT_COLOR)
    banner.blit(title, ((width - title.get_width()) // 2, 12))
    banner.blit(hint, ((width - hint.get_width()) // 2, 48))
    screen.blit(banner, (x, y))
