"""Rendering: frame sizes, and the causal context (weather, crowd, closures) visible in the images."""

import gymnasium as gym
import numpy as np
import pygame
import pytest

from tests.campus_env.helpers import OBS_MODES, make


def reset_obs(seed=2, obs_mode="dict", **options):
    env = make(obs_mode=obs_mode)
    obs, _ = env.reset(seed=seed, options=options)
    return obs["image"] if obs_mode == "dict" else obs


def frame(seed=2, **options):
    env = make(obs_mode="state", render_mode="rgb_array")
    env.reset(seed=seed, options=options)
    return env.render()


@pytest.mark.parametrize("obs_mode", OBS_MODES)
def test_rgb_array_frame(obs_mode):
    env = make(obs_mode=obs_mode, render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    assert first.shape[0] % 16 == 0 and first.shape[1] % 16 == 0
    assert first.shape[0] > first.shape[1]  # the campus with the status strip below it
    env.step(0)
    second = env.render()
    assert second.shape == first.shape
    assert not np.array_equal(first, second)  # the clock in the status strip moved on


def test_render_mode_none_renders_nothing():
    env = make(obs_mode="state")
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert env.render() is None


def test_egocentric_image():
    env = make()
    obs, _ = env.reset(seed=0)
    image = obs["image"]
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 4  # a picture, not a flat fill
    pixels = make(obs_mode="pixels")
    assert np.array_equal(pixels.reset(seed=0)[0], image)  # "pixels" is the dict image alone


def test_egocentric_image_follows_the_agent():
    env = make(obs_mode="dict")
    obs, _ = env.reset(seed=1, options={"do": {"crowd": 0.0, "weather": "sunny"}, "start": "library"})
    moved = env.step(2)[0]  # south onto the grass
    assert not np.array_equal(obs["state"][:2], moved["state"][:2])
    assert not np.array_equal(obs["image"], moved["image"])


CALM = {"crowd": 0.0, "day": 1, "hour": 12.0, "semester": "fall", "gameday": False}


@pytest.mark.parametrize("obs_mode", ["dict", "pixels"])
def test_weather_is_visible(obs_mode):
    images = {w: reset_obs(obs_mode=obs_mode, do={**CALM, "weather": w}) for w in ("sunny", "rainy", "snowy")}
    assert not np.array_equal(images["sunny"], images["rainy"])
    assert not np.array_equal(images["sunny"], images["snowy"])
    assert not np.array_equal(images["rainy"], images["snowy"])
    frames = {w: frame(do={**CALM, "weather": w}) for w in ("sunny", "rainy")}
    assert not np.array_equal(frames["sunny"], frames["rainy"])


def test_weather_change_mid_episode_is_visible():
    env, twin = make(), make()
    options = {"do": {**CALM, "weather": "sunny"}}
    env.reset(seed=2, options=options)
    twin.reset(seed=2, options=options)
    env.unwrapped.do(weather="rainy")
    rainy, sunny = env.step(0)[0]["image"], twin.step(0)[0]["image"]
    assert not np.array_equal(rainy, sunny)
    env.unwrapped.undo("weather")
    env.unwrapped.do(weather="sunny")
    assert np.array_equal(env.step(0)[0]["image"], twin.step(0)[0]["image"])  # back to the same picture


def test_crowd_is_visible():
    # next to the dining hall at a weekday lunchtime, where the crowd gathers
    do = {"day": 1, "hour": 12.0, "weather": "sunny", "gameday": False}
    empty = reset_obs(do={**do, "crowd": 0.0}, start="dining", goal="gym")
    full = reset_obs(do={**do, "crowd": 1.0}, start="dining", goal="gym")
    assert not np.array_equal(empty, full)


def test_road_closure_is_visible():
    # the stadium entrance is a few cells from the stadium road
    do = {"day": 5, "hour": 12.0, "weather": "sunny", "crowd": 0.0, "gameday": True}
    closed = reset_obs(do={**do, "road_closure": True}, start="stadium", goal="library")
    open_ = reset_obs(do={**do, "road_closure": False}, start="stadium", goal="library")
    assert not np.array_equal(closed, open_)
    assert not np.array_equal(
        frame(do={**do, "road_closure": True}, start="stadium", goal="library"),
        frame(do={**do, "road_closure": False}, start="stadium", goal="library"),
    )


def test_invisible_context_leaves_the_picture_alone():
    """Far from the stadium, a road closure is not in the egocentric view: the image is unchanged."""
    do = {"day": 1, "hour": 12.0, "weather": "sunny", "crowd": 0.0, "gameday": False}
    a = reset_obs(do={**do, "road_closure": True}, start="dorms", goal="library")
    b = reset_obs(do={**do, "road_closure": False}, start="dorms", goal="library")
    assert np.array_equal(a, b)


def test_human_render_shows_a_window():
    env = make(render_mode="human")
    try:
        env.reset(seed=0)
        assert env.render() is None
        surface = pygame.display.get_surface()
        assert surface is not None
        rgb = make(render_mode="rgb_array")
        rgb.reset(seed=0)
        expected = rgb.render()
        assert surface.get_size() == (expected.shape[1], expected.shape[0])
        shown = pygame.surfarray.array3d(surface).transpose(1, 0, 2)
        assert np.array_equal(shown, expected)
    finally:
        env.close()
    env.close()  # closing twice is allowed


def test_closing_one_human_env_leaves_another_rendering():
    """Gymnasium's check_env makes and closes a second human env while the checked one is alive."""
    first, second = make(render_mode="human"), make(render_mode="human")
    try:
        first.reset(seed=0)
        second.reset(seed=1)
        second.close()
        first.step(0)  # renders to its window
        assert first.render() is None
    finally:
        first.close()
        second.close()


def _naive_frame(codes, row, col, goal_row, goal_col, tiles):
    """One agent's frame cell by cell: its 16x16 window of the code map, agent and goal drawn, each code's tile."""
    from campus_env.render import AGENT, GOAL, GOAL_HINT, VIEW_CELLS

    half = VIEW_CELLS // 2
    window = codes[row - half : row + half, col - half : col + half].copy()
    window[half, half] = AGENT
    gr, gc = goal_row - row + half, goal_col - col + half
    inside = 0 <= gr < VIEW_CELLS and 0 <= gc < VIEW_CELLS
    window[min(max(gr, 0), VIEW_CELLS - 1), min(max(gc, 0), VIEW_CELLS - 1)] = GOAL if inside else GOAL_HINT
    px = tiles.shape[1]
    return tiles[window].transpose(0, 2, 1, 3, 4).reshape(VIEW_CELLS * px, VIEW_CELLS * px, 3)


def test_walker_frames_are_their_windows_of_the_shared_map_and_the_callers_to_keep():
    from campus_env.multi_agent.core import WalkerCore
    from campus_env.multi_agent.render import WalkerRenderer, walker_tiles, world_codes

    core = WalkerCore(40)
    core.reset_world(7, {}, {})
    renderer = WalkerRenderer(core)
    rng = np.random.default_rng(0)
    for _ in range(5):
        core.step(rng.integers(0, 5, core.n))
    first = renderer.images()
    kept = first.copy()
    codes = world_codes(core).reshape(core.layout.terrain.shape)
    for i in (0, 17, 39):
        (row, col), (gr, gc) = divmod(int(core.pos[i]), core.width), divmod(int(core.goal_flat[i]), core.width)
        assert np.array_equal(first[i], _naive_frame(codes, row, col, gr, gc, walker_tiles()))
    core.step(rng.integers(0, 5, core.n))
    second = renderer.images()
    assert not np.shares_memory(first, second) and np.array_equal(first, kept)


@pytest.mark.parametrize("image_size", [64, 128])
def test_vector_frames_are_their_windows_of_each_envs_map(image_size):
    from campus_env.render import LEVEL_STEPS, cell_codes, tile_table

    env = gym.make_vec("CampusNav-v0", num_envs=6, obs_mode="pixels", image_size=image_size)
    env.reset(seed=3)
    for _ in range(3):
        obs, *_ = env.step(env.action_space.sample())
    core = env.unwrapped.core
    for i in range(6):
        k = core.k[i : i + 1]
        level = np.rint(core.tape_crowd[k] * LEVEL_STEPS) / LEVEL_STEPS
        codes = cell_codes(core, np.array([i]), level, core.tape_pattern[k], core.tape_access[k])[0]
        (row, col), (gr, gc) = divmod(int(core.pos[i]), core.width), divmod(int(core.goal_flat[i]), core.width)
        expected = _naive_frame(codes.reshape(core.layout.terrain.shape), row, col, gr, gc,
                                tile_table(image_size // 16))
        assert np.array_equal(obs[i], expected)
