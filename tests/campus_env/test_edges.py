"""The env's edges: refused resets, the end of an episode, vector `env_ids`, typed errors, vector info."""

import re

import gymnasium as gym
import numpy as np
import pytest

import campus_env
from campus_env import causal
from campus_env.layout import BUILDING_NAMES
from campus_env.oracle import ShortestPathPolicy
from tests.campus_env.helpers import (
    ENV_ID,
    assert_identical,
    assert_same_trajectory,
    assert_unchanged,
    core_snapshot,
    make,
    run,
)

CLEAR = {"do": {"weather": "sunny", "crowd": 0.0}, "start": "dorms", "goal": "lab"}


# --- a refused reset through gym.make: the old episode is over ---------------------------------------
# gymnasium's TimeLimit zeroes its step counter before the env sees the reset, so an episode that went on
# after a refused reset would run past its time limit: the env refuses to step until a valid reset instead.


@pytest.mark.parametrize(
    ("seed", "options", "error"),
    [
        (None, {"doo": {}}, ValueError),
        (None, {"do": {"weather": "foggy"}}, ValueError),
        (5, {"goal": "cafeteria"}, ValueError),
        (None, "abc", TypeError),
        ("7", None, TypeError),
        (-1, None, ValueError),
    ],
)
def test_refused_reset_ends_the_episode_and_changes_nothing_else(seed, options, error):
    env, twin = (make(obs_mode="state", max_episode_steps=30) for _ in range(2))
    assert_same_trajectory(run(env, [0] * 10, seed=3), run(twin, [0] * 10, seed=3))
    before = core_snapshot(env)
    with pytest.raises(error):
        env.reset(seed=seed, options=options)
    assert_unchanged(before, core_snapshot(env))
    for action in (0, 3):
        with pytest.raises(RuntimeError, match=r"the last reset\(\) was refused; call reset\(\) with valid arg"):
            env.step(action)
    assert_unchanged(before, core_snapshot(env))
    # the next valid reset goes on as if the refused one never happened; its episode ends on time
    a, b = run(env, [0] * 30), run(twin, [0] * 30)
    assert_same_trajectory(a, b)
    assert a[30][4] and a[30][5]["steps"] == 30 and not any(step[4] for step in a[1:30])


# --- the end of an episode ---------------------------------------------------------------------------


def walk_to_goal(env, options=CLEAR, seed=0):
    policy = ShortestPathPolicy()
    env.reset(seed=seed, options=options)
    for _ in range(200):
        obs, reward, terminated, truncated, info = env.step(policy(env))
        if terminated or truncated:
            return obs, reward, terminated, info
    raise AssertionError("the oracle did not reach the goal")


@pytest.mark.parametrize("raw", [False, True])
def test_step_after_terminated_is_refused_until_reset(raw):
    env = make(obs_mode="state")
    env = env.unwrapped if raw else env
    obs, reward, terminated, info = walk_to_goal(env)
    assert terminated and reward > 0.9 and info["is_success"]
    before = core_snapshot(env)
    for action in (0, 1, 2, 3, 4):  # stepping off and back on the goal would pay +1 again
        with pytest.raises(RuntimeError, match=r"the episode has ended \(terminated\); call reset\(\) before step\(\)"):
            env.step(action)
    assert_unchanged(before, core_snapshot(env))
    env.reset(seed=1)
    assert env.step(0)[1] < 0  # a successful reset lifts the refusal


def test_a_refused_reset_does_not_lift_the_refusal():
    env = make(obs_mode="state").unwrapped
    walk_to_goal(env)
    with pytest.raises(ValueError):
        env.reset(options={"goal": "nowhere"})
    with pytest.raises(RuntimeError, match=r"call reset\(\)"):
        env.step(0)


# --- the vector env's env_ids ---------------------------------------------------------------------------

N = 3


def intervened(envs):
    return [envs.unwrapped.core.interventions(i) for i in range(N)]


@pytest.mark.parametrize(
    ("env_ids", "expected"),
    [
        (np.array([False, False, True]), [2]),
        ([True, False, True], [0, 2]),
        (np.array([2]), [2]),
        ([0, 2], [0, 2]),
        (np.int64(1), [1]),
        (1, [1]),
        (np.array([], dtype=np.int64), []),
        (range(1, 3), [1, 2]),
    ],
)
def test_env_ids_select_exactly_those_envs(envs, env_ids, expected):
    envs.unwrapped.do(env_ids=env_ids, crowd=0.75)
    assert [i for i, do in enumerate(intervened(envs)) if do] == expected
    envs.unwrapped.undo("crowd", env_ids=env_ids)
    assert not any(intervened(envs))


@pytest.mark.parametrize(
    ("env_ids", "error", "message"),
    [
        ([2.9], TypeError, r"env_ids must be integers or a boolean mask of length 3, got \[2\.9\]"),
        ("0", TypeError, r"env_ids must be integers or a boolean mask of length 3, got '0'"),
        (["0"], TypeError, r"env_ids must be integers or a boolean mask of length 3"),
        (True, TypeError, r"env_ids must be integers or a boolean mask of length 3, got True"),
        ([True, False], ValueError, r"a boolean env_ids mask must have length 3, got 2"),
        ([[0, 1]], ValueError, r"env_ids must be one id or a flat sequence of ids, got shape \(1, 2\)"),
        ([0, 3], ValueError, r"env_ids must be in 0\.\.2, got \[0, 3\]"),
        (-1, ValueError, r"env_ids must be in 0\.\.2, got -1"),
        (object(), TypeError, r"env_ids must be integers or a boolean mask"),
    ],
)
def test_bad_env_ids_are_refused_and_change_nothing(envs, env_ids, error, message):
    for call in (lambda: envs.unwrapped.do(env_ids=env_ids, crowd=0.5),
                 lambda: envs.unwrapped.undo(env_ids=env_ids)):
        before = core_snapshot(envs)
        with pytest.raises(error, match=message):
            call()
        assert_unchanged(before, core_snapshot(envs))


# --- typed errors that name the problem ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("abc", r"reset options must be a dict or None, got str: 'abc'"),
        (42, r"reset options must be a dict or None, got int: 42"),
        ([("do", {})], r"reset options must be a dict or None, got list"),
        ({"do": []}, r"do must be a mapping of variable name to value, got list"),
        ({"do": 0}, r"do must be a mapping of variable name to value, got int"),
    ],
)
@pytest.mark.parametrize("vector", [False, True])
def test_reset_options_of_the_wrong_type(options, message, vector):
    env = gym.make_vec(ENV_ID, num_envs=2, obs_mode="state") if vector else make(obs_mode="state").unwrapped
    env.reset(seed=0)
    before = core_snapshot(env)
    with pytest.raises(TypeError, match=message):
        env.reset(seed=4, options=options)
    assert_unchanged(before, core_snapshot(env))


@pytest.mark.parametrize("vector", [False, True])
def test_undo_takes_names_as_separate_strings(vector):
    env = gym.make_vec(ENV_ID, num_envs=2, obs_mode="state") if vector else make(obs_mode="state")
    env.reset(seed=0, options={"do": {"crowd": 0.5}})
    before = core_snapshot(env)
    with pytest.raises(TypeError, match=re.escape("undo() takes variable names as strings, e.g. undo('crowd', "
                                                  "'weather'); got ['crowd'] (list)")):
        env.unwrapped.undo(["crowd"])
    assert_unchanged(before, core_snapshot(env))


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: campus_env.CampusNavEnv(observe_causal="no"), TypeError,
         r"observe_causal must be True or False, got 'no'"),
        (lambda: campus_env.CampusNavVectorEnv(2, observe_causal=1), TypeError,
         r"observe_causal must be True or False, got 1"),
        (lambda: campus_env.CampusNavVectorEnv(2, max_episode_steps=True), TypeError,
         r"max_episode_steps must be a positive integer or None, got True"),
        (lambda: campus_env.CampusNavVectorEnv(2, max_episode_steps=2.0), TypeError,
         r"max_episode_steps must be a positive integer or None, got 2\.0"),
        (lambda: campus_env.CampusNavVectorEnv(2, max_episode_steps=0), ValueError,
         r"max_episode_steps must be a positive integer or None, got 0"),
        (lambda: campus_env.CampusNavEnv(split=["all"]), ValueError, r"split must be one of 'train', 'heldout'"),
        (lambda: campus_env.CampusNavEnv(obs_mode=np.array(["dict"])), ValueError, r"obs_mode must be one of"),
        (lambda: campus_env.CampusNavEnv(semester=np.array(["fall"])), ValueError, r"semester must be None, 'fall'"),
    ],
)
def test_bad_constructor_values_are_named(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_numpy_integers_are_accepted_where_integers_are():
    envs = campus_env.CampusNavVectorEnv(np.int64(2), obs_mode="state", max_episode_steps=np.int64(5),
                                         observe_causal=np.True_)
    envs.reset(seed=np.int64(3))
    assert envs.max_episode_steps == 5 and envs.observe_causal is True
    env = campus_env.CampusNavEnv(obs_mode="state")
    assert_identical(env.reset(seed=np.int64(3)), env.reset(seed=3))


# --- the vector env's info has the single env's keys ------------------------------------------------------


def test_vector_info_has_every_single_env_key_batched():
    envs = gym.make_vec(ENV_ID, num_envs=N, obs_mode="state")
    singles = [make(obs_mode="state") for _ in range(N)]
    vinfo = envs.reset(seed=20, options={"do": {"weather": "rainy"}})[1]
    infos = [env.reset(seed=20 + i, options={"do": {"weather": "rainy"}})[1] for i, env in enumerate(singles)]
    envs.unwrapped.do(env_ids=[1], crowd=1.0)
    singles[1].unwrapped.do(crowd=1.0)
    for t, act in enumerate(np.random.default_rng(2).integers(0, 5, size=(12, N))):
        vinfo = envs.step(act)[-1]
        infos = [env.step(int(a))[-1] for env, a in zip(singles, act, strict=True)]
        for key in infos[0]:
            assert key in vinfo and f"_{key}" in vinfo, f"vector info lacks {key!r}"
            assert vinfo[f"_{key}"].dtype == bool and vinfo[f"_{key}"].all()
        for i, info in enumerate(infos):
            where = f"step {t} env {i}"
            for key in ("is_success", "blocked", "crowd_blocks"):
                assert_identical(type(info[key])(vinfo[key][i]), info[key], f"{where} {key}")
            assert BUILDING_NAMES[vinfo["start"][i]] == info["start"], where
            do = vinfo["interventions"]
            batched = {name: do[name][i].item() for name in do if not name.startswith("_") and do[f"_{name}"][i]}
            assert batched == as_codes(info["interventions"]), where
    assert vinfo["blocked"].dtype == bool and vinfo["is_success"].dtype == bool
    assert vinfo["interventions"]["_crowd"].tolist() == [False, True, False]
    # the same representation as info["causal"]: codes for the categorical variables
    assert vinfo["interventions"]["weather"].dtype == vinfo["causal"]["weather"].dtype
    assert vinfo["interventions"]["weather"].tolist() == [causal.WEATHERS.index("rainy")] * N


def as_codes(values):
    """A single env's user-facing causal values in the vector env's representation (indices for categories)."""
    return {name: causal.VARIABLES[name].choices.index(v) if name in ("semester", "weather") else v
            for name, v in values.items()}


def test_vector_info_reports_success_on_the_terminal_step():
    envs = gym.make_vec(ENV_ID, num_envs=1, obs_mode="state")
    policy = ShortestPathPolicy()
    envs.reset(seed=0, options=CLEAR)
    for _ in range(200):
        _, reward, terminated, _, info = envs.step(policy(envs))
        if terminated[0]:
            break
    assert terminated[0] and info["is_success"][0] and reward[0] > 0.9
    info = envs.step(np.array([0]))[-1]  # the autoreset step: a new episode, not a success
    assert not info["is_success"][0] and info["steps"][0] == 0
