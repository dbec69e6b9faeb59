"""Properties of the dream envs' boundary: every input works or is refused clearly, and a refusal changes nothing.

Hypothesis draws sequences of calls (steps with valid and invalid actions,
``do()``, ``undo()``, resets with good and bad seeds and options) and
constructor keyword arguments. Each call either works or raises a ``ValueError``
or ``TypeError`` whose message names the problem (a ``RuntimeError`` asking for
``reset()`` after an episode ended). An env that refused calls and an untouched
twin given only the accepted ones stay identical: same observations, rewards,
flags and infos, now and after. The models are the exact corridor of
``analytic.py`` (with reward noise, so the dream's generator matters) and a tiny
untrained ``mlp`` for Box actions. The regression tests below each property are
the failing examples it found.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import model_zoo
from tests.wrappers import analytic
from tests.wrappers.analytic import LENGTH, CausalCorridorModel, CorridorConfig, CorridorEnv
from wrappers import DreamEnv, DreamVectorEnv

N = 3  # envs of the vector dream
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# words a refusal of each call must use, so that the message names the problem
NAMES = {"step": ("action", "reset()"), "do": ("do", "speed", "intervention"), "undo": ("undo", "intervened"),
         "reset": ("option", "seed", "reset_mask", "do", "speed")}


def corridor_model(temperature: float = 0.5) -> CausalCorridorModel:
    model = CausalCorridorModel(analytic.OBSERVATION_SPACE, analytic.ACTION_SPACE, CorridorConfig(temperature))
    model.model_id = "corridor"
    return model


# --- strategies -------------------------------------------------------------------------------------------

odd = st.one_of(st.none(), st.text(max_size=2), st.booleans(), st.just(1 + 0j), st.just(object()),
                st.just(2**70), st.floats(allow_nan=True, allow_infinity=True))
one_action = st.one_of(st.integers(-2, 3), st.builds(np.int64, st.integers(-1, 2)),
                       st.builds(np.float32, st.sampled_from([0.0, 1.0, 0.5, np.nan])),
                       st.builds(np.array, st.lists(st.integers(-1, 2), max_size=2)), st.just(np.bool_(True)), odd)
batch_action = st.one_of(st.lists(st.integers(-1, 2), min_size=N, max_size=N),
                         st.builds(np.array, st.lists(st.integers(0, 1), min_size=N, max_size=N)),
                         st.builds(lambda v: np.array(v, dtype=np.float64), st.lists(
                             st.sampled_from([0.0, 1.0, 0.5]), min_size=N, max_size=N)),
                         st.builds(np.array, st.lists(st.integers(0, 1), max_size=N + 1)), one_action)
do_values = st.dictionaries(st.sampled_from(["speed", "weather", ""]),
                            st.one_of(st.integers(-1, LENGTH + 1), st.builds(np.int64, st.integers(0, 3)), odd),
                            max_size=2)
undo_names = st.lists(st.one_of(st.sampled_from(["speed", "weather"]), st.lists(st.just("speed"), max_size=1),
                                st.integers(0, 2), st.none()), max_size=2)
seeds = st.one_of(st.none(), st.integers(0, 2**31), st.integers(-3, -1), st.floats(0, 9), st.text(max_size=2),
                  st.booleans(), st.lists(st.integers(0, 9), max_size=N + 1))
masks = st.one_of(st.builds(np.array, st.lists(st.booleans(), min_size=N, max_size=N)),
                  st.lists(st.booleans(), min_size=N, max_size=N), st.builds(np.ones, st.integers(1, 4)), odd)
options = st.one_of(st.none(), st.just({}), st.fixed_dictionaries({"do": st.one_of(do_values, odd)}),
                    st.sampled_from(["abc", 42, [("do", {})], ("do",), {"goal": "library"}]),
                    st.fixed_dictionaries({}, optional={"do": do_values, "reset_mask": masks}))


def calls(action: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(st.one_of(
        st.tuples(st.just("step"), action), st.tuples(st.just("step"), action), st.tuples(st.just("step"), action),
        st.tuples(st.just("do"), do_values), st.tuples(st.just("undo"), undo_names),
        st.tuples(st.just("reset"), seeds, options),
    ), min_size=1, max_size=12)


# --- driving an env and its twin ---------------------------------------------------------------------------


def apply(env, call: tuple):
    kind, *args = call
    if kind == "step":
        return env.step(args[0])
    if kind == "do":
        return env.do(**{str(k): v for k, v in args[0].items()})
    if kind == "undo":
        return env.undo(*args[0])
    return env.reset(seed=args[0], options=args[1])


def assert_same(a, b) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


def outcome(env, call: tuple):
    """The result of a call, or the type and message of its error (for comparing an env with its twin)."""
    try:
        return apply(env, call)
    except (ValueError, TypeError, RuntimeError) as err:
        return type(err).__name__, str(err)


def drive(make, script: list[tuple], valid_action) -> None:
    """Runs ``script`` on an env; its twin gets only the accepted calls; both must agree throughout and after."""
    env, twin = make(), make()
    assert_same(env.reset(seed=0), twin.reset(seed=0))
    for call in script:
        try:
            out = apply(env, call)
        except (ValueError, TypeError, RuntimeError, gym.error.Error) as err:
            message = str(err).lower()
            assert message and any(word in message for word in NAMES[call[0]]), (call, err)
            if isinstance(err, RuntimeError):
                assert "reset()" in message, (call, err)
            continue
        assert_same(out, apply(twin, call))
        if call[0] in ("step", "reset"):
            assert out[0] in env.observation_space
    assert env.interventions == twin.interventions
    for call in [("step", valid_action), ("reset", None, None), ("step", valid_action), ("step", valid_action)]:
        assert_same(outcome(env, call), outcome(twin, call))


# --- properties -------------------------------------------------------------------------------------------


@SETTINGS
@given(script=calls(one_action))
def test_dream_env_calls_work_or_are_refused_without_a_trace(script):
    model = corridor_model()
    drive(lambda: DreamEnv(model, CorridorEnv(), max_episode_steps=6), script, 1)


@SETTINGS
@given(script=calls(batch_action))
def test_dream_vector_env_calls_work_or_are_refused_without_a_trace(script):
    model = corridor_model()
    drive(lambda: DreamVectorEnv(model, N, CorridorEnv(), max_episode_steps=6, pool_size=4), script,
          np.ones(N, dtype=np.int64))


@pytest.fixture(scope="module")
def pendulum_model():
    real = gym.make("Pendulum-v1")
    torch.manual_seed(0)
    return model_zoo.make("mlp", real.observation_space, real.action_space, hidden=16)


box_action = st.one_of(st.builds(lambda v: np.array([v], dtype=np.float32), st.floats(-3, 3, width=32)),
                       st.lists(st.floats(-2, 2), min_size=1, max_size=2),
                       st.builds(np.array, st.lists(st.integers(-3, 3), max_size=2)),
                       st.sampled_from([np.array([np.nan]), np.array([np.inf]), np.array([True]), np.zeros((1, 1)),
                                        np.array(["a"]), 1.0]), odd)


@settings(SETTINGS, max_examples=25, suppress_health_check=[*SETTINGS.suppress_health_check,
                                                            HealthCheck.function_scoped_fixture])
@given(script=st.lists(st.one_of(st.tuples(st.just("step"), box_action), st.tuples(st.just("reset"), seeds, options)),
                       min_size=1, max_size=8))
def test_box_actions_work_or_are_refused_without_a_trace(pendulum_model, script):
    drive(lambda: DreamEnv(pendulum_model, "Pendulum-v1", max_episode_steps=5), script, np.array([0.5], np.float32))


KWARGS = {
    "obs": st.one_of(st.sampled_from(["decoded", "features", "pixels", "", 1, ["decoded"]]), st.none()),
    "max_episode_steps": st.one_of(st.integers(-1, 3), st.sampled_from([True, 2.0, "3", np.int64(2)]), st.none()),
    "temperature": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([True, "hot", 1])),
    "render_mode": st.sampled_from([None, "rgb_array", "human", 1]),
    "device": st.sampled_from([None, "cpu", "nope", 3.5, torch.device("cpu")]),
    "env_kwargs": st.sampled_from([None, {}, {"start": 1}, "abc", [("start", 1)]]),
    "do": st.one_of(do_values, odd),
}


@SETTINGS
@given(kwargs=st.fixed_dictionaries({}, optional=KWARGS), vector=st.booleans(),
       num_envs=st.sampled_from([1, 2, 0, -1, True, 2.0, "2", np.int64(2)]),
       pool_size=st.sampled_from([None, 1, 5, 0, True, 2.5, "4"]))
def test_constructor_kwargs_work_or_are_refused_by_name(kwargs, vector, num_envs, pool_size):
    named = dict(kwargs, **({"num_envs": num_envs, "pool_size": pool_size} if vector else {}))
    try:
        if vector:
            env = DreamVectorEnv(corridor_model(), num_envs, CorridorEnv(), pool_size=pool_size, **kwargs)
        else:
            env = DreamEnv(corridor_model(), CorridorEnv(), **kwargs)
    except (ValueError, TypeError) as err:
        message = str(err)
        assert any(name in message for name in named) or "interventions" in message, (named, err)
        return
    obs, _ = env.reset(seed=0)
    assert obs in env.observation_space
    action = np.ones(env.num_envs, dtype=np.int64) if vector else 1
    obs, reward, *_ = env.step(action)
    assert obs in env.observation_space and np.all(np.isfinite(reward))


# --- the failing examples the properties found, kept as regression tests -----------------------------------


class StrictCorridorEnv(CorridorEnv):
    """A real corridor stricter than its model: it refuses resets under speeds above 2."""

    def reset(self, *, seed=None, options=None):
        if (options or {}).get("do", {}).get("speed", 1) > 2:
            raise ValueError("this corridor refuses do(speed > 2)")
        return super().reset(seed=seed, options=options)


@pytest.mark.parametrize("vector", [False, True])
def test_a_reset_the_real_env_refuses_changes_nothing(vector):
    def make():
        model = corridor_model()
        return DreamVectorEnv(model, N, StrictCorridorEnv(), pool_size=4) if vector else DreamEnv(
            model, StrictCorridorEnv())

    env, twin = make(), make()
    action = np.ones(N, dtype=np.int64) if vector else 1
    assert_same(env.reset(seed=0), twin.reset(seed=0))
    with pytest.raises(ValueError, match="refuses"):
        env.reset(seed=5, options={"do": {"speed": 4}})  # the model takes it, the real env does not
    assert env.interventions == {}
    for call in [("step", action), ("step", action), ("reset", None, None), ("step", action)]:
        assert_same(outcome(env, call), outcome(twin, call))


@pytest.mark.parametrize("vector", [False, True])
@pytest.mark.parametrize(("options", "error"), [("abc", TypeError), (42, TypeError), ([("do", {})], TypeError)])
def test_reset_options_that_are_not_a_dict_are_named(vector, options, error):
    env = DreamVectorEnv(corridor_model(), N, CorridorEnv()) if vector else DreamEnv(corridor_model(), CorridorEnv())
    with pytest.raises(error, match="reset options must be a dict"):
        env.reset(options=options)


def test_undo_names_a_name_that_is_not_a_string():
    env = DreamEnv(corridor_model(), CorridorEnv(), do={"speed": 2})
    env.reset(seed=0)
    with pytest.raises(TypeError, match=r"undo\(\) takes variable names as strings, got \['speed'\]"):
        env.undo(["speed"])
    assert env.interventions == {"speed": 2}


def test_a_huge_action_is_out_of_range_not_an_overflow():
    env = DreamEnv(corridor_model(), CorridorEnv())
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be in 0\.\.1"):
        env.step(2**70)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"temperature": "hot"}, "temperature"), ({"temperature": float("nan")}, "temperature"),
    ({"temperature": -1.0}, "temperature"), ({"device": "nope"}, "device"),
    ({"env_kwargs": "abc"}, "env_kwargs"), ({"pool_size": True}, "pool_size"),
])
def test_bad_constructor_arguments_are_named(kwargs, match):
    model = corridor_model()
    with pytest.raises((ValueError, TypeError), match=match):
        if "pool_size" in kwargs:
            DreamVectorEnv(model, 2, CorridorEnv(), **kwargs)
        elif "env_kwargs" in kwargs:
            DreamEnv(model, "CartPole-v1", **kwargs)
        else:
            DreamEnv(model, CorridorEnv(), **kwargs)


@pytest.mark.parametrize("seed", [1.5, "abc", True, [1, "a"], -1])
def test_bad_vector_seeds_are_named_and_change_nothing(seed):
    env, twin = (DreamVectorEnv(corridor_model(), N, CorridorEnv(), pool_size=4) for _ in range(2))
    assert_same(env.reset(seed=0), twin.reset(seed=0))
    with pytest.raises((TypeError, ValueError), match="seed must be a non-negative integer"):
        env.reset(seed=seed)
    for call in [("reset", None, None), ("step", np.ones(N, dtype=np.int64))]:
        assert_same(outcome(env, call), outcome(twin, call))
