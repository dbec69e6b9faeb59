"""Bad input raises a clear error (type and message tested) and leaves the env unchanged."""

import copy
import math
import re

import gymnasium as gym
import numpy as np
import pytest

import campus_env
from tests.campus_env.helpers import (
    ENV_ID,
    assert_identical,
    assert_same_trajectory,
    assert_unchanged,
    core_snapshot,
    make,
    random_actions,
    run,
)

CONTINUE = [3, 1, 0, 4, 2, 2, 3]


@pytest.fixture
def env():
    """A dict-obs env in the middle of an intervened episode."""
    env = make()
    run(env, random_actions(12, seed=1), seed=4, options={"do": {"weather": "rainy"}})
    return env


def refused_cleanly(env, call, error, message):
    """``call()`` raises ``error`` matching ``message``; afterwards ``env`` (single or vector) is exactly as
    before. Returns an untouched copy taken before the call."""
    twin = copy.deepcopy(env)
    before = core_snapshot(env)
    with pytest.raises(error, match=message):
        call()
    assert_unchanged(before, core_snapshot(env))
    return twin


def assert_fails_cleanly(env, call, error, message):
    twin = refused_cleanly(env, call, error, message)
    # and it goes on exactly like an untouched copy, across an unseeded reset too
    assert_same_trajectory(run(env, CONTINUE, reset=False), run(twin, CONTINUE, reset=False))
    assert_identical(env.reset(), twin.reset())


def assert_reset_fails_cleanly(env, call, error, message):
    """A refused reset changes nothing but ends the episode (docs/environment.md, "Episode end")."""
    twin = refused_cleanly(env, call, error, message)
    with pytest.raises(RuntimeError, match=r"the last reset\(\) was refused"):
        env.step(0)
    # the next reset, unseeded, and what follows are those of an untouched copy
    assert_same_trajectory(run(env, CONTINUE), run(twin, CONTINUE))


# --- actions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "error", "message"),
    [
        (5, ValueError, r"action must be in 0\.\.4 .*got 5"),
        (-1, ValueError, r"action must be in 0\.\.4 .*got -1"),
        (np.int64(7), ValueError, r"action must be in 0\.\.4 .*got np\.int64\(7\)"),
        (2.5, ValueError, r"action must be an integer in 0\.\.4, got 2\.5"),
        (math.nan, ValueError, r"action must be an integer in 0\.\.4, got nan"),
        (np.float32("nan"), ValueError, r"action must be an integer in 0\.\.4, got np\.float32\(nan\)"),
        (math.inf, ValueError, r"action must be an integer in 0\.\.4, got inf"),
        ("north", TypeError, r"action must be an integer in 0\.\.4, got 'north' of type str"),
        (None, TypeError, r"action must be an integer in 0\.\.4, got None of type NoneType"),
        ([1, 2], ValueError, r"action must have shape \(\) \(Discrete\(5\)\), got shape \(2,\)"),
    ],
)
def test_bad_action(env, action, error, message):
    assert_fails_cleanly(env, lambda: env.step(action), error, message)


@pytest.mark.parametrize("action", [2, np.int64(2), np.array(2), np.int8(2), 2.0])
def test_integer_like_actions_are_accepted_alike(action):
    a = make(obs_mode="state")
    b = make(obs_mode="state")
    a.reset(seed=0)
    b.reset(seed=0)
    assert_identical(a.step(action), b.step(2))


def test_step_before_reset_is_refused():
    env = make(obs_mode="state").unwrapped
    with pytest.raises(RuntimeError, match=r"call reset\(\) before step\(\)"):
        env.step(0)
    with pytest.raises(RuntimeError, match=r"call reset\(\) before do\(\)"):
        env.do(weather="rainy")


# --- interventions ---------------------------------------------------------------

BAD_DO = [
    ({"temperature": 3}, r"do\(\): unknown causal variable 'temperature'; valid names: day, hour, semester, "
                         r"weather, gameday, road_closure, crowd"),
    ({"weather": "foggy"}, r"do\(weather='foggy'\): weather must be one of 'sunny', 'cloudy', 'rainy', 'snowy'"),
    ({"crowd": 1.5}, r"do\(crowd=1\.5\): crowd must be a number in \[0, 1\]"),
    ({"crowd": -0.1}, r"do\(crowd=-0\.1\): crowd must be a number in \[0, 1\]"),
    ({"crowd": math.nan}, r"do\(crowd=nan\): crowd must be a number in \[0, 1\]"),
    ({"crowd": "high"}, r"do\(crowd='high'\): crowd must be a number in \[0, 1\]"),
    ({"day": 9}, r"do\(day=9\): day must be one of 0, 1, 2, 3, 4, 5, 6"),
    ({"day": "Mon"}, r"do\(day='Mon'\): day must be one of 0, 1, 2, 3, 4, 5, 6"),
    ({"gameday": "yes"}, r"do\(gameday='yes'\): gameday must be True or False"),
    ({"gameday": 1}, r"do\(gameday=1\): gameday must be True or False"),
    ({"hour": 3}, r"do\(hour=3\): hour must be a number in \[7, 23\]"),
    ({"hour": 23.5}, r"do\(hour=23\.5\): hour must be a number in \[7, 23\]"),
    ({"semester": "summer"}, r"do\(semester='summer'\): semester must be one of 'fall', 'spring'"),
    ({"road_closure": None}, r"do\(road_closure=None\): road_closure must be True or False"),
    # a valid assignment next to a bad one: nothing of it is applied
    ({"weather": "snowy", "crowd": 2.0}, r"do\(crowd=2\.0\): crowd must be a number in \[0, 1\]"),
]


@pytest.mark.parametrize(("do", "message"), BAD_DO)
def test_bad_do_mid_episode(env, do, message):
    assert_fails_cleanly(env, lambda: env.unwrapped.do(**do), ValueError, message)


@pytest.mark.parametrize(("do", "message"), BAD_DO)
def test_bad_do_at_reset(env, do, message):
    raw = env.unwrapped
    assert_reset_fails_cleanly(raw, lambda: raw.reset(options={"do": do}), ValueError, message)
    assert_reset_fails_cleanly(env, lambda: env.reset(options={"do": do}), ValueError, message)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"do": {"weather": "foggy"}}, r"weather must be one of"),
        ({"do": {"temperature": 3}}, r"unknown causal variable 'temperature'"),
        ({"doo": {}}, r"unknown reset option\(s\) \['doo'\]"),
        ({"goal": "cafeteria"}, r"options\['goal'\] must be one of"),
    ],
)
def test_refused_seeded_reset_keeps_the_generator(env, options, message):
    """A refused reset(seed=...) must not reseed the env: what follows, unseeded resets included, is unchanged."""
    raw = env.unwrapped
    assert_reset_fails_cleanly(raw, lambda: raw.reset(seed=99, options=options), ValueError, message)


def test_do_must_be_a_mapping():
    env = make(obs_mode="state").unwrapped
    env.reset(seed=0)
    before = core_snapshot(env)
    with pytest.raises(TypeError, match=r"do must be a mapping of variable name to value, got list"):
        env.reset(options={"do": [("weather", "rainy")]})
    assert_unchanged(before, core_snapshot(env))


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"doo": {"weather": "rainy"}}, ValueError,
         r"unknown reset option\(s\) \['doo'\]; valid options: 'do', 'goal', 'start'"),
        ({"seed": 3, "do": {}}, ValueError, r"unknown reset option\(s\) \['seed'\]"),
        ({"goal": "cafeteria"}, ValueError,
         r"options\['goal'\] must be one of library, dining, .*union, got 'cafeteria'"),
        ({"start": 3}, ValueError, r"options\['start'\] must be one of library, .*, got 3"),
        ({"goal": "gym", "start": "gym"}, ValueError, r"options 'goal' and 'start' must name different buildings"),
    ],
)
def test_bad_reset_options(env, options, error, message):
    raw = env.unwrapped
    assert_reset_fails_cleanly(raw, lambda: raw.reset(options=options), error, message)


def test_bad_undo(env):
    env.unwrapped.do(crowd=0.5)
    message = r"undo\(\): unknown causal variable 'rain'; valid names: day, hour, semester, weather, gameday"
    with pytest.raises(ValueError, match=message):
        env.unwrapped.undo("crowd", "rain")
    assert env.unwrapped.interventions == {"weather": "rainy", "crowd": 0.5}  # nothing was undone
    assert_fails_cleanly(env, lambda: env.unwrapped.undo("rain"), ValueError, message)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match=r"obs_mode must be one of 'dict', 'pixels', 'state', got 'rgb'"):
        gym.make(ENV_ID, obs_mode="rgb")
    with pytest.raises(ValueError, match=r"render_mode must be None, 'human' or 'rgb_array', got 'ansi'"):
        campus_env.CampusNavEnv(render_mode="ansi")
    with pytest.raises(ValueError, match=r"render_mode must be None or 'rgb_array' for the vector env, got 'human'"):
        campus_env.CampusNavVectorEnv(num_envs=2, render_mode="human")
    with pytest.raises(ValueError, match=r"num_envs must be a positive integer, got 0"):
        campus_env.CampusNavVectorEnv(num_envs=0)


# --- the vector env ----------------------------------------------------------------

N = 3


def assert_vector_fails_cleanly(envs, call, error, message):
    twin = refused_cleanly(envs, call, error, message)
    for act in np.random.default_rng(1).integers(0, 5, size=(5, N)):
        assert_identical(envs.step(act), twin.step(act))


@pytest.mark.parametrize(
    ("actions", "error", "message"),
    [
        (np.zeros(N + 1, dtype=np.int64), ValueError,
         rf"action must have shape \({N},\) \(Discrete\(5\)\), got shape \({N + 1},\)"),
        (np.zeros((N, 1), dtype=np.int64), ValueError, rf"action must have shape \({N},\) .*got shape \({N}, 1\)"),
        (2, ValueError, rf"action must have shape \({N},\) .*got shape \(\)"),
        (np.array([0, 5, 1]), ValueError, r"action must be in 0\.\.4"),
        (np.array([0, -1, 1]), ValueError, r"action must be in 0\.\.4"),
        (np.array([0.0, np.nan, 1.0]), ValueError, r"action must be an integer in 0\.\.4"),
        (np.array([0.0, 1.5, 1.0]), ValueError, r"action must be an integer in 0\.\.4"),
        (np.array(["a", "b", "c"]), TypeError, r"action must be an integer in 0\.\.4"),
    ],
)
def test_bad_vector_actions(envs, actions, error, message):
    assert_vector_fails_cleanly(envs, lambda: envs.step(actions), error, message)


@pytest.mark.parametrize(("do", "message"), BAD_DO[:4])
def test_bad_vector_do(envs, do, message):
    assert_vector_fails_cleanly(envs, lambda: envs.unwrapped.do(**do), ValueError, message)
    assert_vector_fails_cleanly(envs, lambda: envs.reset(seed=1, options={"do": do}), ValueError, message)


def test_bad_vector_env_ids_and_seeds(envs):
    assert_vector_fails_cleanly(
        envs, lambda: envs.unwrapped.do(env_ids=[0, N], crowd=0.5), ValueError,
        re.escape(f"env_ids must be in 0..{N - 1}, got [0, {N}]"),
    )
    assert_vector_fails_cleanly(
        envs, lambda: envs.reset(seed=[1, 2]), ValueError,
        re.escape(f"reset(seed=...) needs one seed per env ({N}), got 2"),
    )
    assert_vector_fails_cleanly(
        envs, lambda: envs.reset(options={"dont": {}}), ValueError, r"unknown reset option\(s\) \['dont'\]"
    )
