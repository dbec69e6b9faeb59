"""``render_observation``: a state observation drawn as ``env.render()`` draws the campus in that situation."""

from __future__ import annotations

import importlib

import gymnasium as gym
import numpy as np
import pytest

from campus_env.layout import load_layout
from campus_env.observation_render import observation_context, render_observation
from campus_env.render import AGENT, FRAME_CELL_PX, GOAL, STRIP_PX, tile_table
from campus_env.schema import CAUSAL_SLICES, STATE_SLICES, state_slices
from tests.campus_env.helpers import make

FIRST_LINE = slice(-STRIP_PX, -STRIP_PX + 24)  # the status strip's first line: the context
CAUSAL = state_slices(True)["causal"]
LAYOUT = load_layout()


def real(seed: int, steps: int = 0, **do):
    """A state env reset with ``seed`` (and ``do``), stepped east ``steps`` times; its observation and frame."""
    env = make(obs_mode="state", render_mode="rgb_array")
    obs, _ = env.reset(seed=seed, options={"do": do} if do else None)
    for _ in range(steps):
        obs, *_ = env.step(3)
    return env, obs, env.render()


def assert_same_picture(drawn: np.ndarray, frame: np.ndarray) -> None:
    """The campus and the context line of the status strip are pixel for pixel the env's (the strip's second
    line names the goal; the env's also counts steps and blocked moves, which a state vector does not carry)."""
    assert drawn.shape == frame.shape and drawn.dtype == np.uint8
    np.testing.assert_array_equal(drawn[:-STRIP_PX], frame[:-STRIP_PX])
    np.testing.assert_array_equal(drawn[FIRST_LINE], frame[FIRST_LINE])


def cell(frame: np.ndarray, row: int, col: int) -> np.ndarray:
    px = FRAME_CELL_PX
    return frame[row * px : (row + 1) * px, col * px : (col + 1) * px]


def cells_of(obs: np.ndarray, part: str) -> tuple[int, int]:
    scale = np.array([LAYOUT.height - 1, LAYOUT.width - 1])
    return tuple(int(v) for v in np.rint(obs[STATE_SLICES[part]] * scale))


@pytest.mark.parametrize(("seed", "steps", "do"), [
    (0, 0, {}), (1, 3, {}), (5, 1, {"weather": "rainy", "gameday": True}), (7, 2, {"weather": "snowy"}),
    (3, 0, {"road_closure": True, "crowd": 0.9}), (4, 2, {"hour": 8.5, "semester": "spring"}),
])
def test_the_observation_is_drawn_as_the_env_renders_itself(seed, steps, do):
    env, obs, frame = real(seed, steps, **do)
    assert_same_picture(render_observation(obs, env), frame)
    assert_same_picture(render_observation(obs), frame)  # the default layout is the env's


def test_the_agent_and_the_goal_are_drawn_at_the_cells_the_vector_names():
    env, obs, frame = real(2)
    tiles = tile_table(FRAME_CELL_PX)
    agent, goal = cells_of(obs, "agent"), cells_of(obs, "goal")
    drawn = render_observation(obs, env)
    np.testing.assert_array_equal(cell(drawn, *agent), tiles[AGENT])
    np.testing.assert_array_equal(cell(drawn, *goal), tiles[GOAL])
    moved = obs.copy()  # the agent two cells down, the goal at another building's door
    new_agent, new_goal = (agent[0] + 2, agent[1]), next(e for e in LAYOUT.entrances if e != goal)
    moved[STATE_SLICES["agent"]] = np.array(new_agent) / [LAYOUT.height - 1, LAYOUT.width - 1]
    moved[STATE_SLICES["goal"]] = np.array(new_goal) / [LAYOUT.height - 1, LAYOUT.width - 1]
    other = render_observation(moved, env)
    np.testing.assert_array_equal(cell(other, *new_agent), tiles[AGENT])
    np.testing.assert_array_equal(cell(other, *new_goal), tiles[GOAL])
    assert not np.array_equal(cell(other, *agent), tiles[AGENT]) and not np.array_equal(cell(other, *goal), tiles[GOAL])
    changed = np.argwhere((other[:-STRIP_PX] != drawn[:-STRIP_PX]).any(axis=-1)) // FRAME_CELL_PX
    assert {tuple(c) for c in changed} == {agent, goal, new_agent, new_goal}  # nothing else moved


@pytest.mark.parametrize(("name", "before", "after"), [
    ("weather", "sunny", "snowy"), ("weather", "cloudy", "rainy"), ("road_closure", False, True),
    ("crowd", 0.1, 0.9),
])
def test_the_causal_context_is_drawn_as_reality_shows_it(name, before, after):
    """One variable flipped in the vector: the picture is the real twin episode's, where that variable differs."""
    pinned = {"crowd": 0.5, name: before}
    _, obs, frame = real(6, **pinned)
    _, _, twin_frame = real(6, **{**pinned, name: after})
    flipped = obs.copy()
    part = flipped[CAUSAL][CAUSAL_SLICES[name]]  # a view into the copy
    if name == "weather":
        part[:] = np.eye(4)[("sunny", "cloudy", "rainy", "snowy").index(after)]
    else:
        part[:] = float(after)
    assert_same_picture(render_observation(obs), frame)
    assert_same_picture(render_observation(flipped), twin_frame)
    assert not np.array_equal(frame[:-STRIP_PX], twin_frame[:-STRIP_PX])  # the campus looks different
    assert not np.array_equal(frame[FIRST_LINE], twin_frame[FIRST_LINE])  # and the status line says so


def test_dict_observations_and_observations_without_the_causal_part():
    _, obs, frame = real(3)
    env = make(obs_mode="dict")
    dict_obs, _ = env.reset(seed=3)
    assert_same_picture(render_observation(dict_obs, env), frame)
    blind = make(obs_mode="state", observe_causal=False)
    blind_obs, _ = blind.reset(seed=3)
    drawn = render_observation(blind_obs, blind)
    assert drawn.shape == frame.shape
    np.testing.assert_array_equal(cell(drawn, *cells_of(blind_obs, "agent")), tile_table(FRAME_CELL_PX)[AGENT])


def test_a_dreamed_vector_out_of_range_is_still_drawn():
    _, obs, frame = real(0)
    dream = obs + np.random.default_rng(0).normal(0, 2, obs.shape).astype(np.float32)
    dream[0] = np.nan
    drawn = render_observation(dream)
    assert drawn.shape == frame.shape and drawn.dtype == np.uint8
    context = observation_context(dream[CAUSAL])
    assert 0.0 <= context["crowd"] <= 1.0 and 7.0 <= context["hour"] <= 23.0


def test_clear_errors():
    with pytest.raises(ValueError, match="one flat obs_mode='state' vector"):
        render_observation(np.zeros((64, 64, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="D in"):
        render_observation(np.zeros(10, dtype=np.float32))
    with pytest.raises(ValueError, match="'state' entry"):
        render_observation({"image": np.zeros((64, 64, 3), dtype=np.uint8)})
    _, obs, _ = real(0)
    with pytest.raises(TypeError, match="CampusNav-v0 env"):
        render_observation(obs, gym.make("CartPole-v1"))


def test_the_envs_name_it_in_their_metadata():
    for env in (make(obs_mode="state"), gym.make_vec("CampusNav-v0", num_envs=2, obs_mode="state")):
        module, _, name = env.metadata["render_observation"].partition(":")
        assert getattr(importlib.import_module(module), name) is render_observation
        assert env.metadata["action_meanings"][3] == "east"
    envs = gym.make_vec("CampusNav-v0", num_envs=2, obs_mode="state")
    obs, _ = envs.reset(seed=0)
    single, _ = make(obs_mode="state").reset(seed=0)
    np.testing.assert_array_equal(render_observation(obs[0], envs), render_observation(single))
