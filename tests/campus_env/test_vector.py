"""The native vector env: env i equals a single env seeded s + i, next-step autoreset included."""

import copy
import functools

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

import campus_env
from campus_env import causal
from campus_env.layout import BUILDING_NAMES
from tests.campus_env.helpers import (
    ENV_ID,
    OBS_MODES,
    assert_identical,
    goal_distance,
    make,
    shortest_path_action,
)

N = 4
SEED = 100
STEPS = 420  # > 2 * 200: every random walker is truncated twice, the path followers finish several times


def make_vec(num_envs=N, **kwargs):
    return gym.make_vec(ENV_ID, num_envs=num_envs, **kwargs)


@functools.cache
def recorded_actions(seed=SEED, steps=STEPS, do_items=()):
    """Actions from a state-mode vector run: even envs follow shortest paths, odd envs walk at random.

    ``do_items`` are (name, value) pairs of reset interventions. Returns the
    actions and how many terminations and truncations the run saw.
    """
    options = {"do": dict(do_items)} if do_items else None
    envs = make_vec(obs_mode="state")
    obs, _ = envs.reset(seed=seed, options=options)
    rng = np.random.default_rng(seed)
    actions, ends = [], np.zeros(2, dtype=int)
    for _ in range(steps):
        act = rng.integers(0, 5, size=N)
        for i in range(0, N, 2):
            act[i] = shortest_path_action(obs[i]) if rng.random() < 0.9 else act[i]
        obs, _, terminated, truncated, _ = envs.step(act)
        ends += terminated.sum(), truncated.sum()
        actions.append(act)
    return np.array(actions), tuple(ends)


def env_slice(obs, i):
    return {k: v[i] for k, v in obs.items()} if isinstance(obs, dict) else obs[i]


def assert_info_matches(vec_info, i, info, where):
    c = vec_info["causal"]
    expected = {
        "day": int(c["day"][i]),
        "hour": float(c["hour"][i]),
        "semester": causal.SEMESTERS[int(c["semester"][i])],
        "weather": causal.WEATHERS[int(c["weather"][i])],
        "gameday": bool(c["gameday"][i]),
        "road_closure": bool(c["road_closure"][i]),
        "crowd": float(c["crowd"][i]),
    }
    assert_identical(info["causal"], expected, f"{where} causal")
    for key in ("steps", "blocked_moves", "slipped_moves"):
        assert info[key] == vec_info[key][i], f"{where} info[{key!r}]"
    assert info["goal"] == BUILDING_NAMES[vec_info["goal"][i]], f"{where} goal"


def compare_with_singles(obs_mode, actions, seeds, options=None, before_step=None, **kwargs):
    """Runs the vector env and one single env per index on ``actions``; asserts they agree step by step.

    ``before_step(t, envs, singles)``, when given, runs before step ``t`` (to intervene on both).
    """
    n = len(seeds)
    envs = make_vec(num_envs=n, obs_mode=obs_mode, **kwargs)
    singles = [make(obs_mode=obs_mode, **kwargs) for _ in range(n)]
    if len(set(seeds)) == n and seeds == list(range(seeds[0], seeds[0] + n)):
        vobs, vinfo = envs.reset(seed=seeds[0], options=options)
    else:
        vobs, vinfo = envs.reset(seed=list(seeds), options=options)
    done = [False] * n
    for i, env in enumerate(singles):
        obs, info = env.reset(seed=seeds[i], options=options)
        assert_identical(env_slice(vobs, i), obs, f"env {i} reset obs")
        assert_info_matches(vinfo, i, info, f"env {i} reset")
    for t, act in enumerate(actions):
        if before_step is not None:
            before_step(t, envs, singles)
        vobs, vrew, vterm, vtrunc, vinfo = envs.step(act)
        assert envs.observation_space.contains(vobs), f"step {t}: obs outside the batched space"
        for i, env in enumerate(singles):
            where = f"step {t} env {i}"
            if done[i]:  # next-step autoreset: reset obs, reward 0, the action ignored
                obs, info = env.reset(options=options)
                reward, terminated, truncated = 0.0, False, False
            else:
                obs, reward, terminated, truncated, info = env.step(int(act[i]))
            assert_identical(env_slice(vobs, i), obs, f"{where} obs")
            assert float(vrew[i]) == reward, f"{where} reward {vrew[i]} != {reward}"
            assert bool(vterm[i]) == terminated, f"{where} terminated"
            assert bool(vtrunc[i]) == truncated, f"{where} truncated"
            assert_info_matches(vinfo, i, info, where)
            done[i] = terminated or truncated
    return envs


def test_recorded_run_covers_terminations_and_truncations():
    _, (terminations, truncations) = recorded_actions()
    assert terminations >= 3 and truncations >= 2


@pytest.mark.parametrize("obs_mode", OBS_MODES)
def test_env_i_equals_single_env_seeded_s_plus_i(obs_mode):
    actions, _ = recorded_actions()
    compare_with_singles(obs_mode, actions, list(range(SEED, SEED + N)))


def test_reset_interventions_stay_in_force_across_autoresets():
    options = {"do": {"weather": "snowy", "crowd": 0.25}}
    actions, (terminations, _) = recorded_actions(do_items=tuple(options["do"].items()))
    assert terminations >= 1
    envs = compare_with_singles("state", actions[:260], list(range(SEED, SEED + N)), options=options)
    info = envs.step(np.zeros(N, dtype=np.int64))[-1]
    assert np.all(info["causal"]["weather"] == causal.WEATHERS.index("snowy"))
    assert np.all(info["causal"]["crowd"] == 0.25)


def test_reset_with_a_list_of_seeds():
    seeds = [7, 3, 3, 41]
    actions = np.random.default_rng(0).integers(0, 5, size=(40, N))
    compare_with_singles("dict", actions, seeds)


def test_metadata_spaces_and_shapes():
    envs = make_vec(obs_mode="dict")
    single = make(obs_mode="dict")
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert isinstance(envs.unwrapped, campus_env.CampusNavVectorEnv)  # the native entry point, not SyncVectorEnv
    assert envs.num_envs == N
    assert envs.single_observation_space == single.observation_space
    assert envs.single_action_space == single.action_space == spaces.Discrete(5)
    assert envs.action_space == spaces.MultiDiscrete([5] * N)
    obs, info = envs.reset(seed=0)
    assert envs.observation_space.contains(obs)
    for key, space in envs.observation_space.spaces.items():
        assert obs[key].shape == space.shape == (N,) + single.observation_space[key].shape
        assert obs[key].dtype == space.dtype
    obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
    assert envs.observation_space.contains(obs)
    assert reward.shape == terminated.shape == truncated.shape == (N,)
    assert terminated.dtype == truncated.dtype == np.bool_
    assert np.all(np.isfinite(reward))
    for name, values in info["causal"].items():
        assert np.shape(values) == (N,), name


@pytest.mark.parametrize("obs_mode", ["pixels", "state"])
def test_batched_spaces_for_flat_observations(obs_mode):
    envs = make_vec(obs_mode=obs_mode)
    obs, _ = envs.reset(seed=1)
    assert obs.shape == envs.observation_space.shape == (N,) + envs.single_observation_space.shape
    assert obs.dtype == envs.observation_space.dtype
    assert envs.observation_space.contains(obs)


def test_vector_env_truncates_at_max_episode_steps():
    envs = make_vec(obs_mode="state", num_envs=2)
    envs.reset(seed=0)
    stay = np.zeros(2, dtype=np.int64)
    for _ in range(199):
        _, _, terminated, truncated, _ = envs.step(stay)
        assert not truncated.any() and not terminated.any()
    _, _, _, truncated, info = envs.step(stay)
    assert truncated.all() and np.all(info["steps"] == 200)
    obs, reward, terminated, truncated, info = envs.step(stay)  # the autoreset step
    assert np.all(info["steps"] == 0) and np.all(reward == 0) and not (terminated | truncated).any()


def test_goal_reached_on_the_last_step_is_also_truncated_like_the_single_env():
    """Reaching the goal exactly at step 200: the single env (TimeLimit) says terminated and truncated."""
    options = {"do": {"crowd": 0.0, "weather": "sunny", "hour": 12.0}}
    envs = make_vec(num_envs=1, obs_mode="state")
    single = make(obs_mode="state")
    vobs, _ = envs.reset(seed=5, options=options)
    obs, _ = single.reset(seed=5, options=options)
    for t in range(200):
        # walk to the cell next to the goal, wait there, and step in at step 200
        act = shortest_path_action(obs) if (goal_distance(obs) > 1 or t == 199) else 0
        vobs, vrew, vterm, vtrunc, _ = envs.step(np.array([act]))
        obs, reward, terminated, truncated, _ = single.step(act)
        assert np.array_equal(vobs[0], obs)
    assert terminated and reward > 0, "the scripted walk should reach the goal on step 200"
    assert truncated  # gymnasium's TimeLimit
    assert bool(vterm[0]) == terminated and bool(vtrunc[0]) == truncated


def test_do_on_some_envs_acts_only_on_them():
    def intervene(t, envs, singles):
        if t == 10:
            envs.unwrapped.do(env_ids=[1], weather="snowy", crowd=0.9)
            singles[1].unwrapped.do(weather="snowy", crowd=0.9)
        if t == 12:
            envs.unwrapped.do(env_ids=[0, 2], gameday=True)
            singles[0].unwrapped.do(gameday=True)
            singles[2].unwrapped.do(gameday=True)
        if t == 40:
            envs.unwrapped.undo("crowd", env_ids=[1])
            singles[1].unwrapped.undo("crowd")

    actions = np.random.default_rng(1).integers(0, 5, size=(80, 3))
    envs = compare_with_singles("state", actions, [30, 31, 32], before_step=intervene)
    info = envs.step(np.zeros(3, dtype=np.int64))[-1]
    assert info["causal"]["weather"][1] == causal.WEATHERS.index("snowy")
    assert info["causal"]["gameday"][0]  # (env 2 reached its goal meanwhile: its new episode has no do)


def test_vector_env_deepcopy_continues_identically():
    envs = make_vec(obs_mode="dict")
    envs.reset(seed=2)
    actions = np.random.default_rng(2).integers(0, 5, size=(30, N))
    for act in actions[:10]:
        envs.step(act)
    clone = copy.deepcopy(envs)
    for act in actions[10:]:
        assert_identical(envs.step(act), clone.step(act))


def test_vector_render_gives_one_frame_per_env():
    envs = make_vec(num_envs=2, obs_mode="state", render_mode="rgb_array")
    envs.reset(seed=0)
    frames = envs.render()
    single = make(obs_mode="state", render_mode="rgb_array")
    single.reset(seed=0)
    assert len(frames) == 2
    assert_identical(frames[0], single.render())


def test_reset_mask_resets_only_the_masked_envs_like_single_envs():
    envs = gym.make_vec("CampusNav-v0", num_envs=3, obs_mode="state")
    envs.reset(seed=10)
    for _ in range(5):
        before, *_ = envs.step(np.array([1, 2, 3]))
    obs, _ = envs.reset(seed=20, options={"reset_mask": np.array([False, True, False])})
    single = gym.make("CampusNav-v0", obs_mode="state")
    assert np.array_equal(obs[1], single.reset(seed=21)[0])  # seed + i, as a full reset would give
    assert np.array_equal(obs[0], before[0]) and np.array_equal(obs[2], before[2])
    after, *_ = envs.step(np.array([0, 0, 0]))
    assert np.array_equal(after[1], single.step(0)[0])
    with pytest.raises(ValueError, match="must select at least one env"):
        envs.reset(options={"reset_mask": np.zeros(3, dtype=bool)})
    with pytest.raises(ValueError, match="bool numpy array of shape"):
        envs.reset(options={"reset_mask": [True, False, False]})
