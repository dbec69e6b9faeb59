"""The shortest-path oracle: it reaches the goal, reads weather and crowds, and runs on the vector env."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import campus_env  # noqa: F401
from campus_env import layout as lay
from campus_env.oracle import ShortestPathPolicy, distance_field


def run(env: gym.Env, act, seed: int, options: dict | None = None) -> dict:
    env.reset(seed=seed, options=options)
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step(act(env))
        done = terminated or truncated
    return info


@pytest.fixture
def env():
    env = gym.make("CampusNav-v0", obs_mode="state")
    yield env
    env.close()


def test_reaches_goal_in_sunny_episodes_much_faster_than_random(env):
    policy = ShortestPathPolicy()
    sunny = {"do": {"weather": "sunny"}}
    oracle = [run(env, policy, seed, sunny) for seed in range(100)]
    assert np.mean([i["is_success"] for i in oracle]) >= 0.98
    rng = np.random.default_rng(0)
    randomly = [run(env, lambda _: int(rng.integers(5)), seed, sunny) for seed in range(20)]
    oracle_steps = np.mean([i["steps"] for i in oracle])
    random_steps = np.mean([i["steps"] for i in randomly])
    assert oracle_steps < 60 and oracle_steps < random_steps / 3


def test_in_rain_the_expected_cost_route_avoids_grass(env):
    expected, bfs = ShortestPathPolicy(), ShortestPathPolicy(expected_cost=False)
    grass = lay.FIXED_TERRAIN[","]

    def grass_cells(policy):
        return sum(env.unwrapped.core.layout.terrain[r + lay.PAD, c + lay.PAD] == grass for r, c in policy.route(env))

    less = []
    for seed in range(30):
        env.reset(seed=seed, options={"do": {"weather": "rainy"}})
        less.append(grass_cells(expected) - grass_cells(bfs))
    assert min(less) < 0 and sum(less) < 0


def test_route_is_a_walk_from_the_agent_to_the_goal(env):
    policy = ShortestPathPolicy()
    env.reset(seed=3, options={"do": {"weather": "snowy"}, "start": "dorms", "goal": "stadium"})
    core = env.unwrapped.core
    route = policy.route(env)
    assert route[0] == tuple(int(v) for v in core.layout.unflat(core.pos[0]))
    assert route[-1] == core.layout.entrances[lay.BUILDING_NAMES.index("stadium")]
    steps = np.abs(np.diff(np.array(route), axis=0)).sum(axis=1)
    assert np.all(steps == 1)
    field = policy.cost_to_go(env)
    assert field.shape == (core.layout.height, core.layout.width)
    assert field[route[-1]] == 0.0
    # the field is the expected time of its own route, and another route is no faster
    assert policy.route_time(env, route) == pytest.approx(field[route[0]])
    assert policy.route_time(env, ShortestPathPolicy(expected_cost=False).route(env)) >= field[route[0]] - 1e-9


def test_plans_only_over_cells_that_stay_open(env):
    policy = ShortestPathPolicy(lookahead=30)
    for seed in range(40):
        env.reset(seed=seed)
        core = env.unwrapped.core
        k = int(core.tape_index()[0])
        access = core.tape_access.ravel()[k : k + 31]
        for r, c in policy.route(env)[1:-1]:
            terrain = core.layout.terrain[r + lay.PAD, c + lay.PAD]
            assert core.rules.passable[access, terrain].all(), (seed, (r, c))
    # seed 0: a fall Saturday from 15:41 to the stadium; the lab shortcut shuts at 16:00
    assert run(env, policy, 0)["is_success"]


def test_field_is_cached_until_the_context_changes(env):
    policy = ShortestPathPolicy()
    env.reset(seed=1, options={"do": {"hour": 10.0, "weather": "sunny"}})
    policy(env)
    built = policy.fields_computed
    for _ in range(5):
        env.step(policy(env))
    assert policy.fields_computed == built  # the clock is held: nothing to recompute
    before = policy.route(env)
    env.unwrapped.do(weather="snowy", crowd=1.0)
    after = policy.route(env)
    assert policy.fields_computed > built and before[0] == after[0]


def test_vector_env_matches_single_envs():
    n, seed = 6, 10
    envs = gym.make_vec("CampusNav-v0", num_envs=n, obs_mode="state")
    policy = ShortestPathPolicy()
    envs.reset(seed=seed, options={"do": {"weather": "rainy"}})
    singles = [gym.make("CampusNav-v0", obs_mode="state") for _ in range(n)]
    for i, single in enumerate(singles):
        single.reset(seed=seed + i, options={"do": {"weather": "rainy"}})
    finished = np.zeros(n, dtype=bool)
    for _ in range(200):
        actions = policy(envs)
        assert isinstance(actions, np.ndarray) and actions.shape == (n,) and actions.dtype == np.int64
        for i, single in enumerate(singles):
            if not finished[i]:
                assert actions[i] == policy(single)
                single.step(int(actions[i]))
        _, _, terminated, truncated, _ = envs.step(actions)
        finished |= terminated | truncated
        if finished.all():
            break
    assert finished.all()
    envs.close()


def test_distance_field_on_a_tiny_grid():
    inf = np.inf
    # 3x5 grid, border impassable; inner row: cells of cost 1, 3, 1; goal at the right
    cost = np.full(15, inf)
    cost[6:9] = [1.0, 3.0, 1.0]
    field = distance_field(cost, goal=8, width=5)
    assert field[8] == 0.0 and field[7] == 1.0 and field[6] == 4.0
    assert field[0] == inf


def test_bad_input_raises_clear_errors(env):
    with pytest.raises(TypeError, match="CampusNav-v0 env"):
        ShortestPathPolicy()(object())
    with pytest.raises(ValueError, match="lookahead"):
        ShortestPathPolicy(lookahead=-1)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="env index"):
        ShortestPathPolicy().route(env, i=1)


def test_policy_pickles_and_deep_copies(env):
    policy = ShortestPathPolicy(lookahead=10)
    env.reset(seed=5)
    action = policy(env)
    for twin in (pickle.loads(pickle.dumps(policy)), copy.deepcopy(policy)):
        assert twin.lookahead == 10 and twin(env) == action


def test_campus_env_never_imports_torch():
    code = "import sys, campus_env, campus_env.oracle; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
