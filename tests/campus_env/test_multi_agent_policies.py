"""Policies for the crowd (``campus_env.multi_agent.policies``) and respawning walkers over long runs."""

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from campus_env import causal
from campus_env import layout as lay
from campus_env.multi_agent import parallel_env
from campus_env.multi_agent.policies import RandomPolicy, SharedPolicy, TrailOracle, distance_fields
from campus_env.oracle import ShortestPathPolicy, distance_field
from tests.campus_env.helpers import assert_identical

# --- the trail-aware oracle ------------------------------------------------------------


def test_distance_fields_equal_dijkstra():
    rng = np.random.default_rng(0)
    env = parallel_env(num_agents=1, obs_mode="state")
    core = env.core
    cost = np.where(core.passable[core.terrain], rng.uniform(1, 3, core.cells), np.inf)
    goals = core.entrance_flat[:4]
    fields = distance_fields(np.broadcast_to(cost, (4, core.cells)), goals, core.width)
    for g, goal in enumerate(goals):
        np.testing.assert_array_equal(fields[g], distance_field(cost, int(goal), core.width))


@pytest.mark.parametrize(("seed", "do"), [(0, {}), (1, {"weather": "snowy"}), (2, {"gameday": True, "day": 5}),
                                          (3, {"weather": "rainy", "hour": 12.5})])
def test_on_the_empty_campus_it_acts_as_the_single_agent_oracle(seed, do):
    """No trails and no grass cost: every walker's action is ``ShortestPathPolicy``'s, at every step."""
    env = parallel_env(num_agents=40, obs_mode="state")
    env.reset(seed=seed, options={"do": {**do, "trail": 0.0}})
    ours, single = TrailOracle(grass_cost=0.0, full_cost=0.0), ShortestPathPolicy()
    steps = 0
    while env.agents and steps < 60:
        actions, expected = ours.act(env), single.act(env.core)
        live = env.agent_ids()
        np.testing.assert_array_equal(actions[live], expected[live], err_msg=f"step {steps}")
        env.step(ours(env))
        steps += 1
    assert ours.fields_computed <= single.fields_computed  # a field per goal building, not per walker


@pytest.mark.parametrize("grass_cost", [0.0, 0.5])
def test_walkers_following_it_reach_their_goals(grass_cost):
    env = parallel_env(num_agents=60, obs_mode="state")
    env.reset(seed=4)
    policy = TrailOracle(grass_cost=grass_cost)
    arrived = set()
    while env.agents:
        _, _, terminations, truncations, _ = env.step(policy(env))
        arrived |= {a for a, done in terminations.items() if done}
        assert not any(truncations.values()), "a walker ran out of time"
    assert len(arrived) == 60


def straight_task():
    """A walker at the library's door heading for lecture hall A, on a dry empty campus."""
    env = parallel_env(num_agents=1, obs_mode="state")
    env.reset(seed=0, options={"do": {"weather": "sunny", "crowd": 0.0, "day": 2, "hour": 12.0},
                               "start": "library", "goal": "hall_a"})
    return env


def route(policy, env, steps=80):
    """The cells the walker passes until it arrives (on a fork, so ``env`` stays where it is)."""
    twin = env.fork(0)
    cells = [int(twin.core.pos[0])]
    for _ in range(steps):
        if not twin.agents:
            break
        twin.step(policy(twin))
        cells.append(int(twin.core.pos[0]))
    return cells


def test_it_prefers_trails_when_they_are_cheaper():
    """Grass is dear, so the oracle walks around the lawn; wear the shortcut across it into a trail and
    it takes the shortcut, the single-agent shortest path."""
    env = straight_task()
    core, goal = env.core, int(env.core.goal[0])
    shortest = route(TrailOracle(grass_cost=0.0), env)
    policy = TrailOracle(grass_cost=3.0)
    around = route(policy, env)
    assert around[-1] == shortest[-1] == core.goal_flat[0]
    assert len(around) > len(shortest) and core.grass[around].sum() < core.grass[shortest].sum()
    before = policy.cost_to_go(env, goal)[core.pos[0]]
    core.trail[[c for c in shortest if core.grass[c]]] = 1.0
    assert route(policy, env) == shortest
    assert policy.cost_to_go(env, goal)[core.pos[0]] == len(shortest) - 1 < before


def test_trails_lower_the_planning_cost_of_wet_grass():
    env = parallel_env(num_agents=1, obs_mode="state")
    env.reset(seed=0, options={"do": {"weather": "rainy", "trail": 0.0}})
    policy = TrailOracle(grass_cost=0.0)
    cell = int(np.flatnonzero(env.core.grass)[0])
    unworn = policy._entry_costs(env.core, True, (0,), env.core.trail)[0, cell]
    env.do(trail=1.0)
    worn = policy._entry_costs(env.core, True, (0,), env.core.trail)[0, cell]
    assert 1.0 <= worn < unworn


def test_fields_are_rebuilt_only_when_the_trails_move():
    env = parallel_env(num_agents=30, obs_mode="state")
    env.reset(seed=2, options={"do": {"trail": 0.3}})
    policy = TrailOracle(trail_tolerance=0.05)
    policy.act(env)
    built = policy.fields_computed
    policy.act(env)
    assert policy.fields_computed == built
    env.do(trail=0.32)  # within the tolerance
    policy.act(env)
    assert policy.fields_computed == built
    env.do(trail=0.6)
    policy.act(env)
    assert policy.fields_computed > built


def test_it_acts_on_a_bare_core_and_rejects_other_envs():
    env = parallel_env(num_agents=5, obs_mode="state")
    env.reset(seed=0)
    policy = TrailOracle()
    np.testing.assert_array_equal(policy.act(env.core), policy.act(env))
    with pytest.raises(TypeError, match="parallel_env"):
        policy.act(object())
    with pytest.raises(ValueError, match="grass_cost"):
        TrailOracle(grass_cost=-1)


# --- shared and random policies ----------------------------------------------------------


@pytest.mark.parametrize("obs_mode", ["state", "dict"])
def test_a_shared_policy_gets_one_batch_per_step(obs_mode):
    env = parallel_env(num_agents=6, obs_mode=obs_mode)
    obs, _ = env.reset(seed=1)
    seen = []

    def fn(batch):
        seen.append(batch)
        rows = len(batch["state"] if isinstance(batch, dict) else batch)
        return np.full(rows, 3)

    policy = SharedPolicy(fn)
    for _ in range(5):
        actions = policy(env)
        assert actions == dict.fromkeys(env.agents, 3)
        first = seen[-1]["state"][0] if obs_mode == "dict" else seen[-1][0]
        expected = obs[env.agents[0]]["state"] if obs_mode == "dict" else obs[env.agents[0]]
        np.testing.assert_array_equal(first, expected)
        obs, *_ = env.step(actions)
    assert policy.calls == len(seen) == 5


def test_a_shared_policy_sees_only_the_walkers_still_out():
    env = parallel_env(num_agents=20, obs_mode="state")
    env.reset(seed=3)
    oracle = TrailOracle()
    rows = []
    shared = SharedPolicy(lambda batch: rows.append(len(batch)) or oracle.act(env)[env.agent_ids()])
    while env.agents:
        env.step(shared(env))
        assert not env.agents or len(env.observation_batch()) == len(env.agents)
    assert rows[0] == 20 and rows[-1] < 20
    with pytest.raises(ValueError, match="returned 1 actions"):
        env.reset(seed=3)
        SharedPolicy(lambda batch: [0])(env)


def test_random_policy_is_seeded_and_gives_one_action_per_walker():
    env = parallel_env(num_agents=8, obs_mode="state")
    env.reset(seed=0)
    a, b = RandomPolicy(seed=5).act(env), RandomPolicy(seed=5).act(env)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (8,) and set(RandomPolicy(seed=5)(env)) == set(env.agents)


# --- respawning ------------------------------------------------------------------------


def day_env(walkers=40, **kwargs):
    env = parallel_env(num_agents=walkers, obs_mode="state", respawn=True, **kwargs)
    env.reset(seed=6, options={"do": {"day": 1}})
    return env


def test_respawning_walkers_stay_out_and_get_new_goals():
    env = day_env()
    core, policy = env.core, TrailOracle()
    assert env.max_cycles == causal.LAST_MINUTE - causal.FIRST_MINUTE and env.causal_values()["hour"] == 7.0
    arrivals = 0
    for _ in range(150):
        goal, pos = core.goal.copy(), core.pos.copy()
        _, rewards, terminations, _, infos = env.step(policy(env))
        assert len(env.agents) == 40 and not any(terminations.values())
        for i in np.flatnonzero(core.arrived):
            agent = f"walker_{i}"
            arrivals += 1
            assert core.pos[i] == core.entrance_flat[goal[i]] and pos[i] != core.pos[i]
            assert core.goal[i] != goal[i] and core.start[i] == goal[i]  # a new trip from where it is
            assert infos[agent]["is_success"] and rewards[agent] > 0.5
            assert infos[agent]["goal"] == lay.BUILDING_NAMES[core.goal[i]]
    assert arrivals > 20 and core.trips.sum() == arrivals


def test_respawned_goals_follow_the_context_and_the_tape():
    """Goals are drawn from the context now (on gameday afternoons, mostly the stadium), the same for
    the same seed, and a twin under the natural value of a variable is exact."""
    runs = []
    for do in ({"day": 5, "gameday": True}, {"day": 5, "gameday": True}):
        env = parallel_env(num_agents=60, obs_mode="state", respawn=True)
        env.reset(seed=9, options={"do": {**do, "hour": 14.0}})
        policy, goals = TrailOracle(), []
        for _ in range(120):
            env.step(policy(env))
            goals += env.core.goal[env.core.arrived].tolist()
        runs.append((goals, env.core.pos.copy(), env.core.trail.copy()))
    assert_identical(runs[0], runs[1], "same seed")
    goals = np.array(runs[0][0])
    assert len(goals) > 10 and np.mean(goals == lay.BUILDING_NAMES.index("stadium")) > 0.4


def test_a_day_ends_at_23_and_trails_carry_over_when_asked():
    env = day_env(walkers=80, max_cycles=None)
    policy = TrailOracle()
    for _ in range(200):
        env.step(policy(env))
    worn = env.core.trail.copy()
    assert worn.max() > 0
    env.reset(seed=7, options={"do": {"day": 2}, "keep_trails": True})
    np.testing.assert_array_equal(env.core.trail, worn)
    assert env.causal_values()["day"] == 2 and env.causal_values()["hour"] == 7.0
    env.reset(seed=7, options={"do": {"day": 2}})
    assert env.core.trail.max() == 0.0
    short = day_env(walkers=3, max_cycles=5)
    for _ in range(5):
        _, _, _, truncations, _ = stay(short)
    assert all(truncations.values()) and short.agents == []
    with pytest.raises(TypeError, match="keep_trails"):
        short.reset(seed=0, options={"keep_trails": "yes"})
    with pytest.raises(TypeError, match="respawn"):
        parallel_env(respawn=1)


@pytest.mark.filterwarnings("ignore:.*ignoring unknown option:UserWarning")  # PettingZoo passes one
def test_respawning_env_passes_the_parallel_api_test():
    parallel_api_test(parallel_env(num_agents=3, obs_mode="state", respawn=True, max_cycles=40), num_cycles=60)


def test_without_respawn_the_first_milestone_behaviour_stands():
    env = parallel_env(num_agents=5, obs_mode="state")
    env.reset(seed=0)
    assert env.max_cycles == 200 and "trips" not in env._infos()["walker_0"]


def stay(env):
    return env.step(dict.fromkeys(env.agents, 0))
