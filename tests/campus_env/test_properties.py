"""Property tests: every input either works or raises a typed error naming the problem, and a refused call
changes nothing (the env then behaves exactly like an untouched twin built and driven the same way)."""

import copy
import math

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import campus_env
from campus_env import causal
from tests.campus_env.helpers import ENV_ID, assert_identical, assert_unchanged, core_snapshot

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
N = 3
TYPED = (TypeError, ValueError)

junk = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6), st.lists(st.integers(-2, 6), max_size=4), st.dictionaries(st.text(max_size=4), st.integers(),
                                                                                     max_size=2),
    st.sampled_from([np.int64(2), np.float32(1.5), np.array([1, 2]), np.array(3), np.bool_(True), object()]),
)


def domain_value(name):
    v = causal.VARIABLES[name]
    if v.kind == "categorical":
        return st.sampled_from(v.choices)
    if v.kind == "bool":
        return st.booleans()
    return st.floats(v.low, v.high)


good_do = st.fixed_dictionaries({}, optional={name: domain_value(name) for name in causal.VARIABLES})
do_values = st.dictionaries(st.sampled_from([*causal.VARIABLES, "temperature"]), st.one_of(junk, st.sampled_from(
    ["rainy", "fall", 12.0, 0.5, True, 3])), max_size=3)
names = st.sampled_from(campus_env.layout.BUILDING_NAMES)
reset_options = st.one_of(
    junk,
    st.fixed_dictionaries({}, optional={"do": st.one_of(do_values, good_do, junk), "goal": st.one_of(names, junk),
                                        "start": st.one_of(names, junk), "reset_mask": junk, "other": junk}),
)


def single_pair():
    """Two envs driven identically into the middle of an intervened episode."""
    pair = [gym.make(ENV_ID, obs_mode="state") for _ in range(2)]
    for env in pair:
        env.reset(seed=7, options={"do": {"weather": "rainy"}})
        for action in (3, 1, 0, 2):
            env.step(action)
    return pair


def vector_pair():
    pair = [gym.make_vec(ENV_ID, num_envs=N, obs_mode="state") for _ in range(2)]
    for envs in pair:
        envs.reset(seed=7)
        for action in np.random.default_rng(0).integers(0, 5, size=(4, N)):
            envs.step(action)
    return pair


def try_call(env, call):
    """Runs ``call``; a refusal must be typed, name its problem and change nothing. Returns whether it worked."""
    before = core_snapshot(env)
    try:
        call()
    except TYPED as err:
        assert str(err), "an error without a message"
        assert_unchanged(before, core_snapshot(env))
        return False
    return True


def assert_twins(env, twin, ok, vector=False):
    """After a refused call, ``env`` goes on exactly like its untouched ``twin``."""
    if ok:
        return
    actions = np.random.default_rng(3).integers(0, 5, size=(6, N)) if vector else [4, 3, 0, 1, 2, 2]
    for action in actions:
        try:
            expected = twin.step(action)
        except RuntimeError:  # the twin's episode ended; a refused reset ends the env's too
            break
        assert_identical(env.step(action), expected)


# --- the single env ---------------------------------------------------------------------------------------


@SETTINGS
@given(action=st.one_of(st.integers(-3, 8), junk))
def test_any_action(action):
    env, twin = single_pair()
    ok = try_call(env, lambda: env.step(action))
    if ok:
        assert_identical(env.unwrapped._info(), twin.step(int(action))[-1])
    assert_twins(env, twin, ok)


@SETTINGS
@given(do=do_values)
def test_any_do(do):
    env, twin = single_pair()
    ok = try_call(env, lambda: env.unwrapped.do(**{str(k): v for k, v in do.items()}))
    assert_twins(env, twin, ok)


@SETTINGS
@given(names_=st.lists(st.one_of(st.sampled_from(list(causal.VARIABLES)), junk), max_size=3))
def test_any_undo(names_):
    env, twin = single_pair()
    ok = try_call(env, lambda: env.unwrapped.undo(*names_))
    assert_twins(env, twin, ok)


@SETTINGS
@given(options=reset_options, seed=st.one_of(st.none(), st.integers(-2, 2**32), junk))
def test_any_reset(options, seed):
    env, twin = single_pair()
    ok = try_call(env, lambda: env.reset(seed=seed, options=options))
    if not ok:  # it ends the episode; the next valid reset is the twin's
        with pytest.raises(RuntimeError, match=r"the last reset\(\) was refused"):
            env.step(0)
        assert_identical(env.reset(), twin.reset())
        assert_twins(env, twin, False)


constructor_kwargs = st.fixed_dictionaries({}, optional={
    "obs_mode": st.one_of(st.sampled_from(["dict", "pixels", "state"]), junk),
    "observe_causal": st.one_of(st.booleans(), junk),
    "split": st.one_of(st.sampled_from(causal.SPLITS), junk),
    "semester": st.one_of(st.sampled_from(causal.SEMESTERS), junk),
    "render_mode": st.one_of(st.just("rgb_array"), junk),  # (no "human": it opens a window)
    "layout": st.one_of(st.just("/nonexistent/campus.txt"), junk),
    "image_size": st.one_of(st.sampled_from([64, 128]), junk),
})


@SETTINGS
@given(kwargs=constructor_kwargs)
def test_any_constructor_kwargs(kwargs):
    try:
        env = campus_env.CampusNavEnv(**kwargs)
    except (*TYPED, campus_env.LayoutError) as err:
        assert str(err)
        return
    # accepted only as a bool (numpy's too), kept as Python's
    assert env.observe_causal is bool(kwargs.get("observe_causal", True))
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


# --- the native vector env ----------------------------------------------------------------------------------


@SETTINGS
@given(actions=st.one_of(st.lists(st.one_of(st.integers(-1, 5), junk), min_size=N, max_size=N), junk))
def test_any_vector_actions(actions):
    envs, twin = vector_pair()
    ok = try_call(envs, lambda: envs.step(actions))
    if ok:
        assert_identical(envs.unwrapped._info(), twin.step(np.asarray(actions, dtype=np.int64))[-1])
    assert_twins(envs, twin, ok, vector=True)


env_ids = st.one_of(
    st.none(), st.integers(-1, N), st.lists(st.integers(-1, N), max_size=4), st.lists(st.booleans(), max_size=4),
    st.builds(np.array, st.lists(st.booleans(), min_size=N, max_size=N)), junk,
)


@SETTINGS
@given(do=st.one_of(do_values, good_do.filter(bool)), ids=env_ids)
def test_any_vector_do_and_env_ids(do, ids):
    envs, twin = vector_pair()
    ok = try_call(envs, lambda: envs.unwrapped.do(env_ids=ids, **{str(k): v for k, v in do.items()}))
    if ok and do:
        arr = np.atleast_1d(np.asarray(range(N) if ids is None else ids))
        selected = set(np.flatnonzero(arr).tolist() if arr.dtype == bool else arr.tolist())
        touched = {i for i in range(N) if envs.unwrapped.core.interventions(i)}
        assert touched == selected
    assert_twins(envs, twin, ok, vector=True)


@SETTINGS
@given(names_=st.lists(st.one_of(st.sampled_from(list(causal.VARIABLES)), junk), max_size=2), ids=env_ids)
def test_any_vector_undo(names_, ids):
    envs, twin = vector_pair()
    for pair in (envs, twin):
        pair.unwrapped.do(env_ids=[0, 2], crowd=0.5)
    ok = try_call(envs, lambda: envs.unwrapped.undo(*names_, env_ids=ids))
    assert_twins(envs, twin, ok, vector=True)


@SETTINGS
@given(options=reset_options, seed=st.one_of(st.none(), st.integers(0, 2**32), st.lists(st.integers(0, 9)), junk))
def test_any_vector_reset(options, seed):
    envs, twin = vector_pair()
    ok = try_call(envs, lambda: envs.reset(seed=seed, options=copy.deepcopy(options)))
    assert_twins(envs, twin, ok, vector=True)  # the vector env keeps its own time limit: it goes on


@SETTINGS
@given(kwargs=st.fixed_dictionaries({}, optional={
    "num_envs": st.one_of(st.integers(-1, 3), junk),
    "max_episode_steps": st.one_of(st.none(), st.integers(-1, 300), junk),
    "observe_causal": st.one_of(st.booleans(), junk),
    "image_size": st.one_of(st.sampled_from([64, 128]), junk),
}))
def test_any_vector_constructor_kwargs(kwargs):
    try:
        envs = campus_env.CampusNavVectorEnv(obs_mode="state", **kwargs)
    except TYPED as err:
        assert str(err)
        return
    assert envs.num_envs == kwargs.get("num_envs", 1)
    steps = kwargs.get("max_episode_steps", 200)
    assert steps is None or (type(steps) in (int, np.int64) and envs.max_episode_steps == steps > 0)
    assert envs.observe_causal is bool(kwargs.get("observe_causal", True))
    obs, _ = envs.reset(seed=0)
    assert envs.observation_space.contains(obs)
    assert math.isfinite(float(obs.sum()))
