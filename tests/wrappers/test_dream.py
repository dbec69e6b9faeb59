"""DreamEnv and DreamVectorEnv: the Gymnasium and SB3 checkers for every registered model, and exact dreams.

The exact checks use the analytic corridor of ``tests/wrappers/analytic.py``,
whose dream returns are known by hand; it is registered for one test at a time
so tests parametrized over ``model_zoo.list_models()`` never see it.
"""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from model_zoo.data import Episode
from tests.wrappers import analytic
from tests.wrappers.analytic import GOAL_REWARD, STEP_REWARD, CorridorEnv
from tests.wrappers.dream_helpers import (
    CORRIDOR,
    LEFT,
    RIGHT,
    cheapest_obs_mode,
    run,
    tiny_model,
)
from wrappers import DreamEnv, DreamVectorEnv
from wrappers.dream import FEATURE_BOUND

# --- the checkers, for every registered model ----------------------------------------------


@pytest.mark.parametrize("obs", ["decoded", "features"])
@pytest.mark.parametrize("model_id", model_zoo.list_models())
def test_check_env_passes_for_every_model(campus, model_id, obs):
    model = campus(model_id)
    env = DreamEnv(model, gym.make("CampusNav-v0", obs_mode=cheapest_obs_mode(model_id)), obs=obs,
                   max_episode_steps=50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=True)
    if obs == "features":
        assert env.observation_space == gym.spaces.Box(-FEATURE_BOUND, FEATURE_BOUND, (model.feature_dim,), np.float32)
    else:
        assert env.observation_space == model.observation_space


@pytest.mark.parametrize("model_id", model_zoo.list_models())
def test_check_env_passes_on_dict_observations(campus, model_id):
    model = campus(model_id, "dict")
    env = DreamEnv(model, "CampusNav-v0", env_kwargs={"obs_mode": "dict"}, max_episode_steps=50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=True)
    obs, _ = env.reset(seed=0)
    assert obs["image"].dtype == np.uint8 and obs in env.observation_space
    env.close()


@pytest.mark.parametrize("obs", ["decoded", "features"])
def test_vector_env_on_the_native_campus_vector_env(campus, obs):
    model = campus("mlp")
    envs = DreamVectorEnv(model, 4, "CampusNav-v0", obs=obs, env_kwargs={"obs_mode": "state"}, max_episode_steps=5)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert isinstance(envs._starts.envs.unwrapped, campus_env.CampusNavVectorEnv)
    assert envs.single_action_space == gym.spaces.Discrete(5)
    envs.action_space.seed(0)
    obs_, info = envs.reset(seed=0)
    assert obs_ in envs.observation_space
    done = np.zeros(4, dtype=bool)
    for _ in range(12):
        obs_, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
        assert obs_ in envs.observation_space and np.isfinite(reward).all()
        assert not (terminated[done] | truncated[done]).any() and (reward[done] == 0).all()
        done = terminated | truncated
        assert info["dream"].all() and info["_steps"].all()
    envs.close()


@pytest.mark.parametrize("obs_mode", ["state", "pixels"])
def test_an_env_id_alone_finds_the_kwargs_that_match_the_model(campus, obs_mode):
    model = campus("mlp", obs_mode)  # CampusNav-v0's default is dict observations: metadata["env_kwargs_for"]
    env = DreamEnv(model, "CampusNav-v0")
    envs = DreamVectorEnv(model, 2, "CampusNav-v0")
    assert env.reset(seed=0)[0].shape == model.observation_space.shape
    assert envs.reset(seed=0)[0].shape == (2, *model.observation_space.shape)
    with pytest.raises(ValueError, match="the model was built for the observation space"):
        DreamEnv(model, "CampusNav-v0", env_kwargs={})  # kwargs given are used as they are
    env.close()
    envs.close()


# --- exact dreams: DreamEnv -------------------------------------------------------------------


def test_dream_env_returns_are_exact(corridor):
    env = DreamEnv(corridor(), CorridorEnv(start=2), max_episode_steps=10)
    obs, info = env.reset(seed=0)
    assert obs.tolist() == [2.0] and obs.dtype == np.float32
    assert info == {"dream": True, "model": CORRIDOR, "steps": 0, "guarded": 0, "guarded_total": 0,
                    "model_error": False}
    obs, rewards, terms, truncs, infos = run(env, [RIGHT, LEFT, RIGHT, RIGHT, RIGHT])
    assert [o.tolist() for o in obs] == [[3.0], [2.0], [3.0], [4.0], [5.0]]
    assert rewards == [STEP_REWARD] * 4 + [GOAL_REWARD]
    assert sum(rewards) == 6.0
    assert terms == [False] * 4 + [True] and truncs == [False] * 5
    assert [i["steps"] for i in infos] == [1, 2, 3, 4, 5]
    with pytest.raises(RuntimeError, match="episode has ended"):
        env.step(RIGHT)


def test_dream_env_matches_the_real_corridor_from_random_starts(corridor):
    env = DreamEnv(corridor(), CorridorEnv(), max_episode_steps=None)
    rng = np.random.default_rng(0)
    starts = set()
    for seed in range(8):
        obs, _ = env.reset(seed=seed)
        pos = float(obs[0])
        starts.add(pos)
        terminated = False
        while not terminated:
            action = int(rng.integers(2))
            pos, expected_reward, expected_done = analytic.move(pos, action)
            obs, reward, terminated, truncated, _ = env.step(action)
            assert (float(obs[0]), reward, terminated, truncated) == (pos, expected_reward, expected_done, False)
    assert starts <= {0.0, 1.0, 2.0} and len(starts) > 1


def test_dream_env_truncates_at_max_episode_steps(corridor):
    env = DreamEnv(corridor(), CorridorEnv(start=2), max_episode_steps=4)
    env.reset(seed=0)
    obs, rewards, terms, truncs, infos = run(env, [LEFT] * 4)
    assert [o.tolist() for o in obs] == [[1.0], [0.0], [0.0], [0.0]]
    assert rewards == [STEP_REWARD] * 4 and terms == [False] * 4 and truncs == [False, False, False, True]
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(LEFT)
    env.reset()
    _, _, terms, truncs, _ = run(env, [RIGHT] * 3)  # the goal on the last allowed step: both flags, as TimeLimit
    assert terms[-1] and not truncs[-1]
    env = DreamEnv(corridor(), CorridorEnv(start=2), max_episode_steps=3)
    env.reset()
    _, _, terms, truncs, _ = run(env, [RIGHT] * 3)
    assert terms == [False, False, True] and truncs == [False, False, True]


def test_features_mode(corridor):
    env = DreamEnv(corridor(), CorridorEnv(start=1), obs="features")
    assert env.observation_space == gym.spaces.Box(-FEATURE_BOUND, FEATURE_BOUND, (2,), np.float32)
    obs, _ = env.reset(seed=0)
    assert obs.tolist() == [1.0, 0.0] and obs.dtype == np.float32
    obs, *_ = env.step(RIGHT)
    assert obs.tolist() == [2.0, 1.0]


def test_dataset_first_frames_start_the_dreams(corridor):
    frames = [0.0, 4.0]
    episodes = [
        Episode(obs=np.array([[p], [p]], dtype=np.float32), action=np.zeros(1, np.int64), reward=np.zeros(1),
                terminated=np.zeros(1, bool), truncated=np.ones(1, bool), id=i)
        for i, p in enumerate(frames)
    ]
    env = DreamEnv(corridor(), dataset=episodes)
    starts = {float(env.reset(seed=s)[0][0]) for s in range(10)}
    assert starts == set(frames)
    envs = DreamVectorEnv(corridor(), 3, dataset=episodes, pool_size=8)
    obs, _ = envs.reset(seed=0)
    assert set(obs[:, 0].tolist()) <= set(frames)


def test_replay_states_start_branched_dreams(corridor):
    """start_frames="any": every frame an action was taken from, never an episode's last observation."""
    episode = Episode(obs=np.array([[0.0], [1.0], [2.0], [3.0]], dtype=np.float32), action=np.ones(3, np.int64),
                      reward=np.zeros(3), terminated=np.array([False, False, True]), truncated=np.zeros(3, bool))
    env = DreamEnv(corridor(), dataset=[episode], start_frames="any", max_episode_steps=2)
    assert {float(env.reset(seed=s)[0][0]) for s in range(40)} == {0.0, 1.0, 2.0}
    envs = DreamVectorEnv(corridor(), 4, dataset=[episode], start_frames="any", pool_size=64)
    obs, _ = envs.reset(seed=0)
    assert set(obs[:, 0].tolist()) <= {0.0, 1.0, 2.0}


@pytest.mark.parametrize("kwargs, match", [
    ({"env": "CampusNav-v0", "start_frames": "any"}, "needs a dataset"),
    ({"start_frames": "last"}, "start_frames must be one of"),
])
def test_start_frames_refused(corridor, kwargs, match):
    episode = Episode(obs=np.zeros((2, 1), np.float32), action=np.zeros(1, np.int64), reward=np.zeros(1),
                      terminated=np.zeros(1, bool), truncated=np.ones(1, bool))
    kwargs = {"dataset": [episode], **kwargs} if "env" not in kwargs else kwargs
    with pytest.raises(ValueError, match=match):
        DreamVectorEnv(corridor(), 2, **kwargs)


def test_ensemble_disagreement_reaches_the_infos(campus):
    envs = DreamVectorEnv(campus("mlp_ensemble"), 3, "CampusNav-v0", env_kwargs={"obs_mode": "state"})
    envs.reset(seed=0)
    _, _, _, _, info = envs.step(np.array([1, 2, 3]))
    assert info["disagreement"].shape == (3,) and (info["disagreement"] > 0).all()  # untrained members differ
    single = DreamEnv(campus("mlp_ensemble"), "CampusNav-v0", env_kwargs={"obs_mode": "state"})
    single.reset(seed=0)
    assert single.step(1)[4]["disagreement"] > 0
    plain = DreamVectorEnv(campus("mlp"), 2, "CampusNav-v0", env_kwargs={"obs_mode": "state"})
    plain.reset(seed=0)
    assert "disagreement" not in plain.step(np.array([1, 1]))[4]


def test_minari_dataset_starts(tmp_path, campus):
    from model_zoo.data import collect, load_episodes

    dataset = collect("CampusNav-v0", num_episodes=3, num_envs=3, max_episode_steps=3,
                      env_kwargs={"obs_mode": "state"}, progress=False, data_path=tmp_path)
    firsts = [e.obs[0] for e in load_episodes(dataset)]
    env = DreamEnv(campus("mlp"), dataset=dataset)
    for seed in range(3):
        obs, _ = env.reset(seed=seed)  # the mlp's state is the observation: its decoding is the real first frame
        assert any(np.array_equal(obs, f) for f in firsts)


# --- exact dreams: DreamVectorEnv --------------------------------------------------------------


def test_vector_env_autoreset_is_next_step_and_exact(corridor):
    envs = DreamVectorEnv(corridor(), 2, CorridorEnv(start=2), max_episode_steps=4)
    obs, info = envs.reset(seed=0)
    assert obs.tolist() == [[2.0], [2.0]] and info["steps"].tolist() == [0, 0]
    expected = [  # (obs, reward, terminated, truncated, steps); env 0 goes right, env 1 left
        ([[3], [1]], [-1, -1], [False, False], [False, False], [1, 1]),
        ([[4], [0]], [-1, -1], [False, False], [False, False], [2, 2]),
        ([[5], [0]], [10, -1], [True, False], [False, False], [3, 3]),
        ([[2], [0]], [0, -1], [False, False], [False, True], [0, 4]),  # env 0 restarts, its action ignored
        ([[3], [2]], [-1, 0], [False, False], [False, False], [1, 0]),  # env 1 restarts
        ([[4], [1]], [-1, -1], [False, False], [False, False], [2, 1]),
    ]
    for t, (o, r, term, trunc, steps) in enumerate(expected):
        action = np.array([LEFT if t == 3 else RIGHT, LEFT])
        obs, reward, terminated, truncated, info = envs.step(action)
        assert obs.tolist() == o and reward.tolist() == r, t
        assert terminated.tolist() == term and truncated.tolist() == trunc, t
        assert info["steps"].tolist() == steps and info["_steps"].all() and not info["model_error"].any()
    assert obs.dtype == np.float32 and reward.dtype == np.float64 and terminated.dtype == bool


def test_a_known_termination_ends_dreams_where_it_says(corridor):
    """termination_fn on the decoded next observations: here position 3 ends the episode (the model's goal is 5)."""
    at_three = lambda obs: obs[:, 0] == 3.0  # noqa: E731
    envs = DreamVectorEnv(corridor(), 2, CorridorEnv(start=2), max_episode_steps=4, termination_fn=at_three)
    envs.reset(seed=0)
    obs, reward, terminated, _, _ = envs.step(np.array([RIGHT, LEFT]))
    assert obs.tolist() == [[3.0], [1.0]] and terminated.tolist() == [True, False]
    assert reward.tolist() == [STEP_REWARD, STEP_REWARD]  # the reward stays the model's
    obs, _, terminated, _, _ = envs.step(np.array([RIGHT, RIGHT]))  # env 0 restarts: not terminated again
    assert obs.tolist() == [[2.0], [2.0]] and terminated.tolist() == [False, False]
    features = DreamEnv(corridor(), CorridorEnv(start=2), obs="features", termination_fn=at_three)
    features.reset(seed=0)
    assert features.step(RIGHT)[2] is True  # read on the decoded observation whatever the dream shows
    broken = DreamVectorEnv(corridor(), 2, CorridorEnv(start=2), termination_fn=lambda obs: np.ones(3, bool))
    broken.reset(seed=0)
    with pytest.raises(ValueError, match="one bool per row"):
        broken.step(np.array([RIGHT, LEFT]))
    with pytest.raises(TypeError, match="termination_fn"):
        DreamVectorEnv(corridor(), 2, CorridorEnv(start=2), termination_fn="campus_env:reached")


def test_vector_env_follows_the_corridor_with_autoresets_from_the_pool(corridor):
    real = CorridorEnv()
    envs = DreamVectorEnv(corridor(), 5, real, max_episode_steps=6, pool_size=20)
    obs, _ = envs.reset(seed=1)
    assert real.resets == 20  # the pool; autoresets never reset the real env again
    pos = obs[:, 0].tolist()
    needs_reset = [False] * 5
    rng = np.random.default_rng(0)
    episodes = 0
    for _ in range(60):
        actions = rng.integers(2, size=5)
        obs, reward, terminated, truncated, info = envs.step(actions)
        for i in range(5):
            if needs_reset[i]:
                assert obs[i, 0] in (0.0, 1.0, 2.0) and reward[i] == 0 and not terminated[i] and not truncated[i]
                assert info["steps"][i] == 0
                pos[i] = float(obs[i, 0])
                episodes += 1
            else:
                pos[i], r, done = analytic.move(pos[i], int(actions[i]))
                assert (obs[i, 0], reward[i], terminated[i]) == (pos[i], r, done)
                assert truncated[i] == (info["steps"][i] >= 6)
        needs_reset = (terminated | truncated).tolist()
    assert real.resets == 20 and episodes >= 5


def test_vector_env_reset_mask(corridor):
    envs = DreamVectorEnv(corridor(), 3, CorridorEnv(start=2))
    envs.reset(seed=0)
    envs.step(np.array([RIGHT, RIGHT, LEFT]))
    obs, info = envs.reset(options={"reset_mask": np.array([False, True, True])})
    assert obs.tolist() == [[3.0], [2.0], [2.0]] and info["steps"].tolist() == [1, 0, 0]
    obs, *_ = envs.step(np.array([RIGHT, RIGHT, RIGHT]))
    assert obs.tolist() == [[4.0], [3.0], [3.0]]
    with pytest.raises(ValueError, match="bool numpy array"):
        envs.reset(options={"reset_mask": [True, False, True]})
    with pytest.raises(ValueError, match="one set of interventions"):
        envs.reset(options={"reset_mask": np.ones(3, bool), "do": {"speed": 2}})


def test_sb3_adapter_on_the_dream_vector_env(corridor):
    from wrappers.sb3 import to_sb3

    venv = to_sb3(DreamVectorEnv(corridor(), 2, CorridorEnv(start=2), max_episode_steps=4))
    assert venv.reset().tolist() == [[2.0], [2.0]]
    expected = [  # SB3 resets in the same step: (obs, reward, done); env 0 goes right, env 1 left
        ([[3], [1]], [-1, -1], [False, False]),
        ([[4], [0]], [-1, -1], [False, False]),
        ([[2], [0]], [10, -1], [True, False]),  # env 0 reached the goal at 5 and restarted at 2
        ([[3], [2]], [-1, -1], [False, True]),  # env 1 truncated at 0 and restarted
    ]
    steps = []
    for o, r, d in expected:
        obs, reward, done, infos = venv.step(np.array([RIGHT, LEFT]))
        assert obs.tolist() == o and reward.tolist() == r and done.tolist() == d
        steps.append(infos)
    assert steps[2][0]["terminal_observation"].tolist() == [5.0] and not steps[2][0]["TimeLimit.truncated"]
    assert steps[3][1]["terminal_observation"].tolist() == [0.0] and steps[3][1]["TimeLimit.truncated"]
    assert steps[3][0]["dream"] and steps[3][0]["steps"] == 1
    venv.close()


def test_vector_env_on_foreign_env_ids():
    real = gym.make("Acrobot-v1")  # no native vector env
    model = tiny_model("mlp", real.observation_space, real.action_space)
    envs = DreamVectorEnv(model, 12, "Acrobot-v1", pool_size=16)
    assert isinstance(envs._starts.envs, gym.vector.SyncVectorEnv)
    assert envs._starts.envs.num_envs == 8  # at most 8 real envs collect the pool
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (12, 6) and obs in envs.observation_space
    obs, *_ = envs.step(envs.action_space.sample())
    assert obs in envs.observation_space
    envs.close()
    real = gym.make("CartPole-v1")  # a native vector env
    model = tiny_model("mlp", real.observation_space, real.action_space)
    envs = DreamVectorEnv(model, 12, "CartPole-v1", pool_size=16)
    assert envs._starts.envs.num_envs == 12
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (12, 4) and obs in envs.observation_space
    obs, *_ = envs.step(envs.action_space.sample())
    assert obs in envs.observation_space
    envs.close()
