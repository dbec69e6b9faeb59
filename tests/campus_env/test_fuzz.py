"""A bounded fuzz: random actions with random interventions, undos and resets interleaved.

Every observation stays inside its space, every reward is finite, the context in
``info`` stays inside the variables' domains and shows exactly the interventions
in force.
"""

import math

import gymnasium as gym
import numpy as np
import pytest

from campus_env import causal
from tests.campus_env.helpers import OBS_MODES, make

STEPS = 2000


def random_value(name, rng):
    var = causal.VARIABLES[name]
    if var.kind == "categorical":
        value = var.choices[rng.integers(len(var.choices))]
        return int(value) if isinstance(value, int | np.integer) else value
    if var.kind == "bool":
        return bool(rng.integers(2))
    edge = rng.random()
    if edge < 0.15:
        return float(var.low)
    if edge < 0.3:
        return float(var.high)
    if name == "hour":  # whole minutes, so the clock can be compared with the request exactly
        return int(rng.integers(var.low * 60, var.high * 60 + 1)) / 60
    return float(rng.uniform(var.low, var.high))


def random_do(rng):
    names = list(causal.VARIABLES)
    chosen = rng.choice(names, size=rng.integers(1, 4), replace=False)
    return {str(name): random_value(str(name), rng) for name in chosen}


def check_context(context, active, where):
    assert set(context) == set(causal.VARIABLES), where
    assert context["day"] in range(7)
    assert 7.0 <= context["hour"] <= 23.0
    assert context["semester"] in causal.SEMESTERS
    assert context["weather"] in causal.WEATHERS
    assert isinstance(context["gameday"], bool) and isinstance(context["road_closure"], bool)
    assert 0.0 <= context["crowd"] <= 1.0
    for name, value in active.items():
        if name == "hour":  # (that a whole minute is hit exactly is tested in test_interventions)
            assert abs(context[name] - value) < 1.01 / 60, f"{where}: hour {context[name]} != {value}"
        else:
            assert context[name] == value, f"{where}: {name} is {context[name]!r}, do() set {value!r}"


@pytest.mark.parametrize("observe_causal", [True, False])
@pytest.mark.parametrize("obs_mode", OBS_MODES)
def test_fuzz_single_env(obs_mode, observe_causal):
    rng = np.random.default_rng([OBS_MODES.index(obs_mode), int(observe_causal)])
    split = {"dict": "all", "pixels": "train", "state": "heldout"}[obs_mode]
    env = make(obs_mode=obs_mode, observe_causal=observe_causal, split=split)
    space = env.observation_space
    active = {}
    obs, info = env.reset(seed=int(rng.integers(2**31)))
    counts = {"do": 0, "undo": 0, "reset": 0, "end": 0}
    for t in range(STEPS if observe_causal else STEPS // 4):
        where = f"step {t}"
        assert space.contains(obs), f"{where}: observation outside {space}"
        check_context(info["causal"], active, where)
        assert info["interventions"].keys() == active.keys(), where
        u = rng.random()
        if u < 0.04:
            do = random_do(rng)
            env.unwrapped.do(**do)
            active.update(do)
            counts["do"] += 1
        elif u < 0.06:
            names = [n for n in active if rng.random() < 0.5]
            env.unwrapped.undo(*names)
            for name in names or list(active):
                active.pop(name)
            counts["undo"] += 1
        elif u < 0.063:
            do = random_do(rng) if rng.random() < 0.7 else {}
            seed = int(rng.integers(2**31)) if rng.random() < 0.5 else None
            obs, info = env.reset(seed=seed, options={"do": do})
            active = dict(do)
            counts["reset"] += 1
            continue
        obs, reward, terminated, truncated, info = env.step(int(rng.integers(5)))
        assert isinstance(reward, float) and math.isfinite(reward), f"{where}: reward {reward!r}"
        assert -1.0 <= reward <= 1.0
        if terminated or truncated:
            obs, info = env.reset()
            active = {}
            counts["end"] += 1
    if observe_causal:
        assert min(counts.values()) > 0, counts  # every branch of the fuzz was exercised


@pytest.mark.parametrize("obs_mode", OBS_MODES)
def test_fuzz_vector_env(obs_mode):
    n = 6
    rng = np.random.default_rng(99)
    envs = gym.make_vec("CampusNav-v0", num_envs=n, obs_mode=obs_mode)
    obs, _ = envs.reset(seed=7)
    for t in range(300):
        assert envs.observation_space.contains(obs), f"step {t}: observation outside the batched space"
        u = rng.random()
        if u < 0.05:
            ids = sorted(int(i) for i in rng.choice(n, size=rng.integers(1, n + 1), replace=False))
            envs.unwrapped.do(env_ids=ids, **random_do(rng))
        elif u < 0.08:
            envs.unwrapped.undo(env_ids=[int(rng.integers(n))])
        elif u < 0.09:
            obs, _ = envs.reset(options={"do": random_do(rng)})
            continue
        obs, reward, terminated, truncated, info = envs.step(rng.integers(0, 5, size=n))
        assert np.all(np.isfinite(reward))
        assert np.all((info["causal"]["crowd"] >= 0) & (info["causal"]["crowd"] <= 1))
        assert np.all((info["causal"]["hour"] >= 7) & (info["causal"]["hour"] <= 23))
