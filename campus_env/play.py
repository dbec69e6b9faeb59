"""Play CampusNav-v0 with the keyboard in a pygame window (``campusnav play``).

Arrow keys or WASD walk, space waits a minute (``Action.STAY``), R starts a new
episode, Esc or Q (or closing the window) quits. The window shows the whole
campus as ``env.render()`` draws it, with its status strip (day, time, weather,
gameday, crowd) and a banner when the episode ends.

The game is split in three so that tests can drive it without a screen:

- :func:`command_for_key` maps a key name (``pygame.key.name``) to a command:
  an :class:`~campus_env.schema.Action`, :data:`RESTART` or :data:`QUIT`;
- :class:`PlaySession` is the game without the window: it owns the env, applies
  commands and keeps the episode's message;
- :func:`play` opens the window and feeds pygame events to the session; a test
  posts events with ``pygame.event.post`` under ``SDL_VIDEODRIVER=dummy`` and
  bounds the loop with ``max_frames`` or ``max_steps``.

pygame is imported only when a window opens (:func:`pygame_display`).

>>> command_for_key("up"), command_for_key("d"), command_for_key("space")
(<Action.NORTH: 1>, <Action.EAST: 3>, <Action.STAY: 0>)
>>> command_for_key("r") == RESTART, command_for_key("escape") == QUIT, command_for_key("x")
(True, True, None)
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from campus_env.render import STRIP_PX
from campus_env.schema import STATE_SLICES, Action

__all__ = [
    "BANNER_RGBA",
    "END_HINT",
    "GOAL_COLOR",
    "KEY_ACTIONS",
    "QUIT",
    "QUIT_KEYS",
    "RESTART",
    "RESTART_KEYS",
    "TIMEOUT_COLOR",
    "PlayResult",
    "PlaySession",
    "command_for_key",
    "event_loop",
    "play",
    "pygame_display",
]

RESTART = "restart"
QUIT = "quit"

# key name (as pygame.key.name gives it) -> action
KEY_ACTIONS: dict[str, Action] = {
    "space": Action.STAY,
    "up": Action.NORTH, "w": Action.NORTH,
    "down": Action.SOUTH, "s": Action.SOUTH,
    "right": Action.EAST, "d": Action.EAST,
    "left": Action.WEST, "a": Action.WEST,
}
RESTART_KEYS = frozenset({"r"})
QUIT_KEYS = frozenset({"escape", "q"})

HELP_TEXT = "arrows/WASD move   space waits   R restarts   Esc/Q quits"
END_HINT = "R: a new episode   Esc/Q: quit"
BANNER_RGBA = (16, 18, 26, 215)
GOAL_COLOR = (252, 204, 20)
TIMEOUT_COLOR = (240, 120, 90)


def command_for_key(name: str) -> Action | str | None:
    """The command of a key, by its pygame name: an ``Action``, ``RESTART``, ``QUIT`` or None."""
    name = name.lower()
    if name in KEY_ACTIONS:
        return KEY_ACTIONS[name]
    if name in RESTART_KEYS:
        return RESTART
    if name in QUIT_KEYS:
        return QUIT
    return None


@dataclass
class PlayResult:
    """What happened in a game of :func:`play`."""

    quit_reason: str  # "key", "window", "max_frames" or "max_steps"
    frames: int  # frames drawn
    steps: int  # env steps taken, over all episodes
    episode_lengths: list[int]  # steps of each episode, the last one possibly unfinished
    goals: int  # episodes that reached the goal
    truncations: int  # episodes that ran out of time
    actions: list[int]  # every action taken, in order
    positions: list[tuple[float, float]]  # agent (row, col) after each reset and step, scaled to 0..1
    message: str  # the banner shown when the game ended ("" mid-episode)


@dataclass
class PlaySession:
    """The game without the window: an env, the current episode and its end message.

    ``env`` is any env with ``Discrete(5)`` actions whose observation starts with
    the agent's scaled (row, col), as CampusNav-v0's ``"state"`` observation does.
    The first episode is reset with ``seed``, later ones continue the env's own
    generator; every reset applies the interventions ``do``.
    """

    env: gym.Env
    seed: int | None = None
    do: Mapping[str, Any] | None = None
    steps: int = 0
    episode_lengths: list[int] = field(default_factory=list)
    goals: int = 0
    truncations: int = 0
    actions: list[int] = field(default_factory=list)
    positions: list[tuple[float, float]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    done: bool = False
    message: str = ""
    message_color: tuple[int, int, int] = GOAL_COLOR

    def __post_init__(self) -> None:
        self._frame: np.ndarray | None = None
        self.restart()

    def restart(self) -> None:
        """Starts a new episode."""
        seed = self.seed if not self.episode_lengths else None
        obs, self.info = self.env.reset(seed=seed, options={"do": dict(self.do or {})})
        self.episode_lengths.append(0)
        self._record(obs)
        self.done = False
        self.message = ""
        self._frame = None

    def act(self, action: int) -> bool:
        """Takes one step; returns False (and does nothing) once the episode has ended."""
        if self.done:
            return False
        obs, _, terminated, truncated, self.info = self.env.step(action)
        self.steps += 1
        self.episode_lengths[-1] += 1
        self.actions.append(int(action))
        self._record(obs)
        self._frame = None
        n = self.episode_lengths[-1]
        if terminated:
            self.done, self.goals = True, self.goals + 1
            self.message, self.message_color = f"Goal reached in {n} steps \N{EM DASH} press R", GOAL_COLOR
        elif truncated:
            self.done, self.truncations = True, self.truncations + 1
            self.message = f"Out of time after {n} steps \N{EM DASH} press R"
            self.message_color = TIMEOUT_COLOR
        return True

    def handle(self, command: int | str | None) -> bool:
        """Applies a command from :func:`command_for_key`; returns False when it is ``QUIT``."""
        if command == QUIT:
            return False
        if command == RESTART:
            self.restart()
        elif command is not None:
            self.act(int(command))
        return True

    def frame(self) -> np.ndarray:
        """The whole-campus frame of the current state (rendered once per change)."""
        if self._frame is None:
            self._frame = self.env.render()
        return self._frame

    def result(self, quit_reason: str, frames: int) -> PlayResult:
        return PlayResult(
            quit_reason=quit_reason,
            frames=frames,
            steps=self.steps,
            episode_lengths=list(self.episode_lengths),
            goals=self.goals,
            truncations=self.truncations,
            actions=list(self.actions),
            positions=list(self.positions),
            message=self.message,
        )

    def _record(self, obs: np.ndarray) -> None:
        row, col = obs[STATE_SLICES["agent"]]
        self.positions.append((float(row), float(col)))


def play(
    *,
    seed: int | None = None,
    do: Mapping[str, Any] | None = None,
    split: str = "all",
    semester: str | None = None,
    layout: str | None = None,
    fps: int = 30,
    max_frames: int | None = None,
    max_steps: int | None = None,
) -> PlayResult:
    """Opens a window and plays CampusNav-v0 with the keyboard until the player quits.

    ``seed`` seeds the first episode; ``do`` maps causal variables to values
    held by intervention in every episode (e.g. ``{"weather": "snowy"}``);
    ``split``, ``semester`` and ``layout`` go to the env. ``fps`` caps the frame
    rate (0 for no cap); ``max_frames`` and ``max_steps`` end the game early,
    for tests and scripts. A bad ``do`` raises ``ValueError`` before any window
    opens.
    """
    env = gym.make(
        "campus_env:CampusNav-v0", obs_mode="state", render_mode="rgb_array",
        split=split, semester=semester, layout=layout,
    )
    try:
        session = PlaySession(env, seed=seed, do=do)
        with pygame_display() as pygame:
            return _loop(pygame, session, fps, max_frames, max_steps)
    finally:
        env.close()


@contextmanager
def pygame_display() -> Iterator[Any]:
    """pygame with its display and fonts up, for one window; the display closes on leaving (not ``pygame.quit``:
    the env's status-strip font must stay valid)."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    pygame.display.init()
    pygame.font.init()
    try:
        yield pygame
    finally:
        pygame.display.quit()


def _loop(pygame, session: PlaySession, fps: int, max_frames: int | None, max_steps: int | None) -> PlayResult:
    height, width = session.frame().shape[:2]
    screen = pygame.display.set_mode((width, height))
    pygame.display.set_caption(f"CampusNav-v0   {HELP_TEXT}")
    fonts = pygame.font.Font(None, 34), pygame.font.Font(None, 22)
    return event_loop(pygame, session, command_for_key, lambda: _draw(pygame, screen, session, fonts), fps,
                      max_frames, max_steps)


def event_loop(pygame, session: Any, to_command: Any, draw: Any, fps: int, max_frames: int | None,
               max_steps: int | None) -> Any:
    """Feeds key presses to ``session.handle(to_command(key name))`` and calls ``draw()`` once a frame, until
    the player quits or ``max_frames`` / ``max_steps`` is reached; returns ``session.result(reason, frames)``."""
    pygame.key.set_repeat(220, 90)  # hold a key to keep walking
    clock = pygame.time.Clock()
    frames = 0
    while True:
        for event in pygame.event.get():
            if event.type == pygame.QUIT:
                return session.result("window", frames)
            if event.type != pygame.KEYDOWN:
                continue
            if not session.handle(to_command(pygame.key.name(event.key))):
                return session.result("key", frames)
            if max_steps is not None and session.steps >= max_steps:
                return session.result("max_steps", frames)
        draw()
        frames += 1
        if max_frames is not None and frames >= max_frames:
            return session.result("max_frames", frames)
        clock.tick(fps)


def _draw(pygame, screen, session: PlaySession, fonts) -> None:
    frame = session.frame()
    pygame.surfarray.blit_array(screen, frame.transpose(1, 0, 2))
    if session.message:
        big, small = fonts
        width = screen.get_width()
        banner = pygame.Surface((width, 76), pygame.SRCALPHA)
        banner.fill(BANNER_RGBA)
        title = big.render(session.message, True, session.message_color)
        if title.get_width() > width - 16:
            title = small.render(session.message, True, session.message_color)
        hint = small.render(END_HINT, True, (225, 225, 232))
        banner.blit(title, ((width - title.get_width()) // 2, 12))
        banner.blit(hint, ((width - hint.get_width()) // 2, 48))
        screen.blit(banner, (0, (screen.get_height() - STRIP_PX - 76) // 2))
    pygame.display.flip()
