"""Keyboard play: the key map, the session without a window, and play() driven by posted pygame events."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from campus_env.play import KEY_ACTIONS, QUIT, RESTART, PlaySession, command_for_key, play

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
pygame = pytest.importorskip("pygame")


def test_key_map_covers_the_five_actions():
    assert set(KEY_ACTIONS.values()) == {0, 1, 2, 3, 4}
    arrows = {"space": 0, "up": 1, "down": 2, "right": 3, "left": 4}
    wasd = {"w": 1, "s": 2, "d": 3, "a": 4}
    for name, action in {**arrows, **wasd}.items():
        assert command_for_key(name) == action
        assert command_for_key(name.upper()) == action
    assert command_for_key("r") == RESTART
    assert command_for_key("escape") == QUIT and command_for_key("q") == QUIT
    assert command_for_key("x") is None and command_for_key("return") is None


def test_pygame_key_names_match_the_map():
    keys = {pygame.K_UP: 1, pygame.K_DOWN: 2, pygame.K_RIGHT: 3, pygame.K_LEFT: 4, pygame.K_SPACE: 0,
            pygame.K_w: 1, pygame.K_s: 2, pygame.K_d: 3, pygame.K_a: 4}
    for key, action in keys.items():
        assert command_for_key(pygame.key.name(key)) == action
    assert command_for_key(pygame.key.name(pygame.K_r)) == RESTART
    assert command_for_key(pygame.key.name(pygame.K_ESCAPE)) == QUIT


def test_keys_move_the_agent_r_restarts_and_q_quits(post_keys):
    moves = [pygame.K_UP, pygame.K_RIGHT, pygame.K_DOWN, pygame.K_LEFT, pygame.K_w, pygame.K_d, pygame.K_s,
             pygame.K_a, pygame.K_SPACE]
    post_keys(*moves, pygame.K_x, pygame.K_r, pygame.K_RIGHT, pygame.K_q, pygame.K_UP)
    result = play(seed=0, do={"crowd": 0.0}, fps=0, max_frames=100)
    assert result.quit_reason == "key"
    assert result.actions == [1, 3, 2, 4, 1, 3, 2, 4, 0, 3]  # x is ignored; nothing after q
    assert result.episode_lengths == [len(moves), 1]
    first_episode = result.positions[: len(moves) + 1]
    assert len(set(first_episode)) > 1, "no key moved the agent"
    assert first_episode[-1] == first_episode[-2]  # space waits in place


def test_play_draws_frames_until_max_frames(display):
    result = play(seed=1, fps=0, max_frames=3)
    assert result.quit_reason == "max_frames" and result.frames == 3 and result.steps == 0


def test_play_stops_after_max_steps(post_keys):
    post_keys(*[pygame.K_SPACE] * 5)
    result = play(seed=2, fps=0, max_steps=3)
    assert result.quit_reason == "max_steps" and result.steps == 3


def test_closing_the_window_quits(display):
    pygame.event.post(pygame.event.Event(pygame.QUIT))
    result = play(seed=2, fps=0, max_frames=50)
    assert result.quit_reason == "window"


def test_truncation_shows_a_message_and_r_starts_again():
    env = gym.make("CampusNav-v0", obs_mode="state", render_mode="rgb_array")
    session = PlaySession(env, seed=0, do={"crowd": 0.0})
    while not session.done:
        session.handle(0)
    assert session.truncations == 1 and session.episode_lengths == [200]
    assert session.message.startswith("Out of time after 200 steps") and "press R" in session.message
    assert session.handle(1) and session.steps == 200  # ignored until R
    assert session.frame().shape[-1] == 3
    session.handle(RESTART)
    assert not session.done and session.message == "" and session.episode_lengths == [200, 0]
    assert session.handle(QUIT) is False


class ThreeStepsToGoal(gym.Env):
    """Terminates on the third step; enough to check the goal message."""

    action_space = spaces.Discrete(5)
    observation_space = spaces.Box(0.0, 1.0, (2,), dtype=np.float32)

    def __init__(self):
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        return np.full(2, self.t / 10, dtype=np.float32), 0.0, self.t == 3, False, {}

    def render(self):
        return np.zeros((64, 64, 3), dtype=np.uint8)


def test_reaching_the_goal_shows_a_message():
    session = PlaySession(ThreeStepsToGoal(), seed=0)
    for _ in range(3):
        session.handle(3)
    assert session.done and session.goals == 1
    assert session.message == "Goal reached in 3 steps \N{EM DASH} press R"


def test_bad_intervention_fails_before_a_window_opens():
    with pytest.raises(ValueError, match="weather"):
        play(do={"weather": "foggy"}, max_frames=1)
