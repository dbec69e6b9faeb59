"""Forking the simulator: a copy of the env now whose future noise comes from a given seed."""

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campus_env.core import EPISODE_ARRAYS, TAPE_LEN, CampusCore
from tests.campus_env.helpers import ENV_ID, assert_identical, assert_unchanged, core_snapshot, random_actions

# snow makes moves slip and a game crowds the walks: the per-step noise decides what happens
NOISY = {"weather": "snowy", "gameday": True}


def started(seed=3, steps=10, obs_mode="state", do=NOISY):
    env = gym.make(ENV_ID, obs_mode=obs_mode).unwrapped
    env.reset(seed=seed, options={"do": do})
    for action in random_actions(steps, seed=seed):
        env.step(action)
    return env


def rollout(env, actions):
    """Every step's (obs, reward, terminated, truncated, info) until the episode ends."""
    out = []
    for action in actions:
        out.append(env.step(action))
        if out[-1][2]:
            break
    return out


def moves(n, seed):
    return [int(a) for a in np.random.default_rng(seed).integers(1, 5, size=n)]


def test_a_fork_with_the_episodes_own_noise_seed_replays_it_exactly():
    env = started()
    twin = env.fork(env.noise_seed)
    assert_identical(twin._obs(), env._obs())
    assert_identical(twin._info(), env._info())
    actions = moves(60, seed=1)
    assert_identical(rollout(twin, actions), rollout(env, actions))


def test_the_same_seed_gives_the_same_fork_and_other_seeds_diverge():
    env = started()
    actions = moves(30, seed=2)
    first, again = rollout(env.fork(7), actions), rollout(env.fork(7), actions)
    assert_identical(first, again)
    ends = {rollout(env.fork(seed), actions)[-1][0].tobytes() for seed in range(16)}
    assert len(ends) > 1  # in snow on a game day, slips and crowds differ between seeds


def test_a_fork_keeps_the_context_clock_task_and_interventions():
    env = started(do={"gameday": True})
    env.do(weather="rainy", crowd=0.7)
    twin = env.fork(99)
    assert twin.interventions == env.interventions == {"gameday": True, "weather": "rainy", "crowd": 0.7}
    assert_identical(twin._info(), env._info())
    twin.step(0)  # waiting draws no noise: the clock moves on alike
    env.step(0)
    assert twin._info()["causal"] == env._info()["causal"]
    twin.undo("crowd")
    assert "crowd" in env.interventions  # the fork's interventions are its own


def test_stepping_a_fork_leaves_the_original_unchanged():
    env = started()
    before = core_snapshot(env)
    twin = env.fork(5)
    rollout(twin, moves(40, seed=3))
    twin.reset(seed=1)
    assert_unchanged(before, core_snapshot(env))


def test_a_fork_after_a_mid_episode_intervention_replays_what_follows():
    env = started(do={})
    env.do(weather="snowy")
    twin = env.fork(env.noise_seed)
    twin.do(crowd=0.9)
    env.do(crowd=0.9)
    actions = moves(50, seed=4)
    assert_identical(rollout(twin, actions), rollout(env, actions))


def test_a_fork_renders_its_own_frames():
    env = started(obs_mode="pixels")
    twin = env.fork(env.noise_seed)
    assert_identical(twin._obs(), env._obs())
    actions = moves(5, seed=5)
    assert_identical(rollout(twin, actions), rollout(env, actions))


def test_later_resets_of_a_fork_draw_as_the_original_would():
    env = started()
    twin = env.fork(11)
    assert_identical(twin.reset(), env.reset())


@pytest.mark.parametrize("seed, error", [(-1, ValueError), (2**64, ValueError), (1.5, TypeError),
                                         ("3", TypeError), (True, TypeError), (None, TypeError)])
def test_a_bad_noise_seed_is_refused_and_changes_nothing(seed, error):
    env = started()
    before = core_snapshot(env)
    with pytest.raises(error, match="noise_seed"):
        env.fork(seed)
    assert_unchanged(before, core_snapshot(env))


def test_fork_and_noise_seed_need_a_reset():
    env = gym.make(ENV_ID, obs_mode="state").unwrapped
    with pytest.raises(RuntimeError, match="reset"):
        env.fork(0)
    with pytest.raises(RuntimeError, match="reset"):
        env.noise_seed  # noqa: B018


def test_noise_seeds_up_to_two_to_the_64_are_taken():
    env = started()
    assert_identical(rollout(env.fork(2**64 - 1), moves(5, 6)), rollout(env.fork(np.uint64(2**64 - 1)), moves(5, 6)))


# --- the vector env ---------------------------------------------------------------


def stepped_vector(n=3, steps=8):
    envs = gym.make_vec(ENV_ID, num_envs=n, obs_mode="state")
    envs.reset(seed=20, options={"do": NOISY})
    for actions in np.random.default_rng(0).integers(1, 5, size=(steps, n)):
        envs.step(actions)
    return envs


def test_a_vector_fork_with_its_own_noise_seeds_replays_every_env():
    envs = stepped_vector()
    twin = envs.fork(range(3), envs.noise_seeds)
    for actions in np.random.default_rng(1).integers(0, 5, size=(80, 3)):  # past episode ends: autoresets too
        assert_identical(twin.step(actions), envs.step(actions))


def test_a_vector_fork_of_one_state_into_k_envs_matches_single_env_forks():
    envs = stepped_vector()
    single = gym.make(ENV_ID, obs_mode="state").unwrapped
    single.reset(seed=21, options={"do": NOISY})  # env 1 of reset(seed=20) is the single env of seed 21
    for actions in np.random.default_rng(0).integers(1, 5, size=(8, 3)):
        single.step(int(actions[1]))
    seeds = [3, 4, 5, 3]
    forks = envs.fork(1, seeds)
    assert forks.num_envs == 4 and forks.observation_space.shape == (4, envs.single_observation_space.shape[0])
    singles = [single.fork(s) for s in seeds]
    for action in moves(20, seed=7):
        obs, reward, terminated, _, _ = forks.step(np.full(4, action))
        for j, env in enumerate(singles):
            if not env._stopped:
                one = env.step(action)
                assert_identical((obs[j], float(reward[j]), bool(terminated[j])), one[:3], f"fork {j}")
    assert_identical(forks.noise_seeds[[0, 3]], np.array([3, 3], dtype=np.uint64))


def test_a_vector_fork_leaves_the_source_unchanged():
    envs = stepped_vector()
    before = core_snapshot(envs)
    forks = envs.fork([0, 0, 2], [1, 2, 3])
    for actions in np.random.default_rng(2).integers(0, 5, size=(30, 3)):
        forks.step(actions)
    assert_unchanged(before, core_snapshot(envs))


@pytest.mark.parametrize("ids, seeds, error", [
    ([0, 1], [1], ValueError), ([], [], ValueError), ([5], [1], ValueError), (0, "12", TypeError),
    ([0], [-3], ValueError), (0, [1.0], TypeError), ("0", [1], TypeError),
])
def test_a_bad_vector_fork_is_refused_and_changes_nothing(ids, seeds, error):
    envs = stepped_vector()
    before = core_snapshot(envs)
    with pytest.raises(error):
        envs.fork(ids, seeds)
    assert_unchanged(before, core_snapshot(envs))


def test_every_per_env_array_of_the_core_is_copied_by_a_fork():
    core = CampusCore(3)
    per_env = {name for name, value in vars(core).items()
               if isinstance(value, np.ndarray) and value.shape[:1] == (3,) and value.shape[0] != 3 * TAPE_LEN}
    assert per_env - {"row_off", "tape_base", "k"} == set(EPISODE_ARRAYS)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32), before=st.integers(0, 40), actions=st.lists(st.integers(0, 4), max_size=60),
       weather=st.sampled_from(["sunny", "rainy", "snowy"]), gameday=st.booleans())
def test_any_fork_with_its_own_seed_replays_any_episode(seed, before, actions, weather, gameday):
    env = gym.make(ENV_ID, obs_mode="state").unwrapped
    env.reset(seed=seed, options={"do": {"weather": weather, "gameday": gameday}})
    for action in actions[:before]:
        if env.step(action)[2]:
            return
    twin = env.fork(env.noise_seed)
    assert_identical(rollout(twin, actions[before:]), rollout(env, actions[before:]))
