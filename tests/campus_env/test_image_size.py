"""``image_size``: 128-px frames are the 64-px frames with every pixel repeated 2x2, single and vector alike."""

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import campus_env
from campus_env import causal
from campus_env.env import env_kwargs_for, observation_space
from tests.campus_env.helpers import ENV_ID, OBS_MODES, make

SETTINGS = settings(max_examples=8, deadline=None, derandomize=True)
N = 3
contexts = st.fixed_dictionaries({}, optional={
    "weather": st.sampled_from(causal.WEATHERS), "crowd": st.sampled_from([0.0, 0.5, 1.0]),
    "gameday": st.booleans(), "semester": st.sampled_from(causal.SEMESTERS),
})
actions = st.lists(st.integers(0, len(campus_env.Action) - 1), min_size=1, max_size=6)


def image(obs):
    return obs["image"] if isinstance(obs, dict) else obs


def assert_upscaled(big: np.ndarray, small: np.ndarray) -> None:
    """``big`` is ``small`` with each pixel repeated 2x2 (over the last three axes): both downsamplings give it."""
    assert big.shape[:-3] == small.shape[:-3] and big.shape[-3:] == (128, 128, 3) and small.shape[-3:] == (64, 64, 3)
    np.testing.assert_array_equal(big[..., ::2, ::2, :], small)  # every other pixel
    blocks = big.reshape(*big.shape[:-3], 64, 2, 64, 2, 3).astype(np.float64).mean(axis=(-4, -2))
    np.testing.assert_array_equal(blocks, small)  # the mean of each 2x2 block


@SETTINGS
@given(seed=st.integers(0, 2**16), do=contexts, actions=actions, obs_mode=st.sampled_from(["pixels", "dict"]))
def test_single_env_128_is_64_upscaled(seed, do, actions, obs_mode):
    small, big = make(obs_mode=obs_mode), make(obs_mode=obs_mode, image_size=128)
    pair = [env.reset(seed=seed, options={"do": do})[0] for env in (small, big)]
    for action in [None, *actions]:
        if action is not None:
            pair = [env.step(action)[0] for env in (small, big)]
        assert_upscaled(image(pair[1]), image(pair[0]))
        if obs_mode == "dict":
            for key in ("state", "causal"):
                np.testing.assert_array_equal(pair[0][key], pair[1][key])


@SETTINGS
@given(seed=st.integers(0, 2**16), do=contexts, steps=st.lists(st.lists(st.integers(0, 4), min_size=N, max_size=N),
                                                                min_size=1, max_size=5))
def test_vector_env_128_is_64_upscaled_and_matches_the_single_env(seed, do, steps):
    small = gym.make_vec(ENV_ID, num_envs=N, obs_mode="pixels")
    big = gym.make_vec(ENV_ID, num_envs=N, obs_mode="pixels", image_size=128)
    singles = [make(obs_mode="pixels", image_size=128) for _ in range(N)]
    obs = [envs.reset(seed=seed, options={"do": do})[0] for envs in (small, big)]
    single = [env.reset(seed=seed + i, options={"do": do})[0] for i, env in enumerate(singles)]
    live = np.ones(N, dtype=bool)  # the single envs are compared until their episode ends
    for step in [None, *steps]:
        if step is not None:
            obs = [envs.step(np.array(step))[0] for envs in (small, big)]
            for i in np.flatnonzero(live):
                single[i], _, terminated, truncated, _ = singles[i].step(step[i])
                live[i] = not (terminated or truncated)
        assert_upscaled(obs[1], obs[0])
        for i in np.flatnonzero(live):
            np.testing.assert_array_equal(obs[1][i], single[i])


def test_fork_keeps_the_image_size():
    env = make(obs_mode="pixels", image_size=128)
    obs, _ = env.reset(seed=3)
    twin = env.unwrapped.fork(env.unwrapped.noise_seed)
    assert np.array_equal(twin.step(1)[0], env.step(1)[0]) and twin.observation_space.shape == (128, 128, 3)
    envs = gym.make_vec(ENV_ID, num_envs=2, obs_mode="dict", image_size=128)
    envs.reset(seed=3)
    assert envs.fork([1], [5]).step(np.zeros(1, dtype=np.int64))[0]["image"].shape == (1, 128, 128, 3)


@pytest.mark.parametrize("obs_mode", OBS_MODES)
@pytest.mark.parametrize("image_size", [64, 128])
def test_spaces(obs_mode, image_size):
    env = make(obs_mode=obs_mode, image_size=image_size)
    envs = gym.make_vec(ENV_ID, num_envs=2, obs_mode=obs_mode, image_size=image_size)
    assert env.observation_space == envs.single_observation_space
    space = env.observation_space
    assert space == observation_space(obs_mode, True, image_size)
    if obs_mode == "state":
        assert space == observation_space("state", True)  # no image: the size changes nothing
    else:
        box = space["image"] if obs_mode == "dict" else space
        assert box.shape == (image_size, image_size, 3) and box.dtype == np.uint8
        batched = envs.observation_space["image"] if obs_mode == "dict" else envs.observation_space
        assert batched.shape == (2, image_size, image_size, 3)
    assert env.reset(seed=0)[0] in space and envs.reset(seed=0)[0] in envs.observation_space


@pytest.mark.parametrize("obs_mode", OBS_MODES)
@pytest.mark.parametrize("observe_causal", [True, False])
@pytest.mark.parametrize("image_size", [64, 128])
def test_env_kwargs_for_gives_the_image_size_back(obs_mode, observe_causal, image_size):
    space = observation_space(obs_mode, observe_causal, image_size)
    kwargs = env_kwargs_for(space)
    assert kwargs.get("image_size", 64) == (64 if obs_mode == "state" else image_size)
    assert make(**kwargs).observation_space == space


def test_kwargs_for_space_finds_a_128_px_env():
    from wrappers.dream.starts import kwargs_for_space  # outside campus_env: it may import torch

    space = observation_space("dict", True, 128)
    assert kwargs_for_space(ENV_ID, space) == {"obs_mode": "dict", "observe_causal": True, "image_size": 128}
    assert gym.make(ENV_ID, **kwargs_for_space(ENV_ID, space)).observation_space == space


BAD_SIZES = [32, 96, 0, -64, 256, True, 64.0, "64", "128", None, [64], np.array(64.0)]


@pytest.mark.parametrize("image_size", BAD_SIZES, ids=repr)
def test_bad_image_size_is_refused_before_anything_is_built(image_size, monkeypatch):
    def no_core(*args, **kwargs):
        raise AssertionError("a CampusCore was built before image_size was checked")

    monkeypatch.setattr(campus_env.env, "CampusCore", no_core)
    monkeypatch.setattr(campus_env.vector, "CampusCore", no_core)
    for build in (
        lambda: gym.make(ENV_ID, image_size=image_size),
        lambda: gym.make(ENV_ID, obs_mode="state", image_size=image_size),
        lambda: gym.make_vec(ENV_ID, num_envs=2, image_size=image_size),
        lambda: observation_space("pixels", True, image_size),
    ):
        with pytest.raises(ValueError, match=r"image_size must be one of 64, 128, got"):
            build()


def test_numpy_integer_sizes_are_taken():
    env = make(obs_mode="pixels", image_size=np.int64(128))
    assert env.unwrapped.image_size == 128 and type(env.unwrapped.image_size) is int
    assert env.reset(seed=0)[0].shape == (128, 128, 3)
