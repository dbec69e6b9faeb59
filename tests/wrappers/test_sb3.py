"""``wrappers.to_sb3``: SB3's same-step reset over Gymnasium vector envs, checked against the raw envs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorWrapper
from gymnasium.wrappers import TimeLimit
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecEnv

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from campus_env.oracle import ShortestPathPolicy
from wrappers.dream import DreamVectorEnv
from wrappers.intervene import Intervene
from wrappers.sb3 import SUPPORTS_RESET_MASK, to_sb3, unbatch_info

N = 4
MAX_STEPS = 30


def campus_vec(num_envs: int = N, **kwargs) -> gym.vector.VectorEnv:
    kwargs.setdefault("obs_mode", "state")
    kwargs.setdefault("max_episode_steps", MAX_STEPS)
    return gym.make_vec("CampusNav-v0", num_envs=num_envs, **kwargs)


def cartpole_vec(mode: AutoresetMode = AutoresetMode.NEXT_STEP, num_envs: int = 3) -> SyncVectorEnv:
    return SyncVectorEnv([lambda: gym.make("CartPole-v1") for _ in range(num_envs)], autoreset_mode=mode)


def campus_actions(venv, oracle: ShortestPathPolicy) -> np.ndarray:
    """The oracle for envs 0..N-2 (episodes end at different steps), 'stay' for the last (truncations)."""
    actions = oracle.act(venv.vector_env)
    actions[-1] = 0
    return actions


def test_is_an_sb3_vecenv_with_single_env_spaces():
    venv = to_sb3(campus_vec())
    assert isinstance(venv, VecEnv)
    assert venv.num_envs == N
    assert venv.observation_space == venv.vector_env.single_observation_space
    assert venv.action_space == gym.spaces.Discrete(5)


def test_campus_episodes_match_single_envs_exactly():
    """Env i of the adapter == a single env seeded s + i, same actions, reset in the step it finishes."""
    seed = 7
    venv = to_sb3(campus_vec())
    venv.seed(seed)
    obs = venv.reset()
    singles = [gym.make("CampusNav-v0", obs_mode="state", max_episode_steps=MAX_STEPS) for _ in range(N)]
    single_obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(singles)]
    np.testing.assert_array_equal(obs, np.stack(single_obs))
    oracle = ShortestPathPolicy()
    ends: list[tuple[int, int, bool]] = []
    for t in range(100):
        actions = campus_actions(venv, oracle)
        obs, rewards, dones, infos = venv.step(actions)
        for i, env in enumerate(singles):
            o, r, term, trunc, info = env.step(int(actions[i]))
            assert rewards[i] == pytest.approx(r)
            assert dones[i] == (term or trunc)
            assert infos[i]["steps"] == info["steps"]
            assert infos[i]["causal"]["gameday"] == info["causal"]["gameday"]
            assert infos[i]["causal"]["day"] == info["causal"]["day"]
            if term or trunc:
                np.testing.assert_array_equal(infos[i]["terminal_observation"], o)
                assert infos[i]["TimeLimit.truncated"] == (trunc and not term)
                o, reset_info = env.reset()
                assert venv.reset_infos[i]["steps"] == 0 == reset_info["steps"]
                ends.append((t, i, term))
            else:
                assert "terminal_observation" not in infos[i]
            np.testing.assert_array_equal(obs[i], o)
    assert {term for _, _, term in ends} == {True, False}  # terminations and truncations
    assert len({t for t, _, _ in ends}) >= 3  # episodes ending at different steps


def test_terminal_and_reset_obs_against_a_raw_vector_env():
    """terminal_observation is what the raw env returned at the done step; the obs is its next (reset) obs."""
    venv = to_sb3(campus_vec())
    raw = campus_vec()
    venv.seed(3)
    obs = venv.reset()
    raw_obs, _ = raw.reset(seed=3)
    np.testing.assert_array_equal(obs, raw_obs)
    oracle = ShortestPathPolicy()
    for _ in range(MAX_STEPS):
        actions = campus_actions(venv, oracle)
        obs, rewards, dones, infos = venv.step(actions)
        raw_obs, raw_rewards, term, trunc, raw_info = raw.step(actions)
        np.testing.assert_array_equal(rewards, raw_rewards.astype(np.float32))
        np.testing.assert_array_equal(dones, term | trunc)
        if dones.any():
            break
        np.testing.assert_array_equal(obs, raw_obs)
    else:
        pytest.fail("no episode ended")
    done = np.flatnonzero(dones)
    for i in done:
        np.testing.assert_array_equal(infos[i]["terminal_observation"], raw_obs[i])
        for key, values in raw_info["causal"].items():
            assert infos[i]["causal"][key] == values[i]
    for i in np.flatnonzero(~dones):
        np.testing.assert_array_equal(obs[i], raw_obs[i])
    next_raw_obs, _, _, _, next_raw_info = raw.step(np.zeros(N, dtype=np.int64))  # the raw env's autoreset
    for i in done:
        np.testing.assert_array_equal(obs[i], next_raw_obs[i])
        assert next_raw_info["steps"][i] == 0


def test_infos_carry_causal_per_env_and_sb3_keys():
    venv = to_sb3(campus_vec())
    venv.seed(0)
    venv.reset()
    natural = venv.vector_env.core.causal_arrays()["gameday"].copy()
    venv.env_method("do", gameday=not natural[1], indices=[1])
    _, _, _, infos = venv.step(np.zeros(N, dtype=np.int64))
    assert len(infos) == N and all(isinstance(info, dict) for info in infos)
    expected = natural.tolist()
    expected[1] = not natural[1]
    assert [info["causal"]["gameday"] for info in infos] == expected
    assert set(infos[0]["causal"]) == set(campus_env.VARIABLES)
    assert all(isinstance(info["steps"], int) for info in infos)


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.DISABLED])
def test_sync_cartpole_every_autoreset_mode_gives_the_same_stream(mode):
    """NEXT_STEP (via reset_mask), SAME_STEP (via final_obs) and DISABLED give SB3 the same data."""
    a, b = to_sb3(cartpole_vec()), to_sb3(cartpole_vec(mode))
    a.seed(11)
    b.seed(11)
    np.testing.assert_array_equal(a.reset(), b.reset())
    rng = np.random.default_rng(0)
    finished = 0
    for _ in range(120):
        actions = rng.integers(0, 2, size=3)
        oa, ra, da, ia = a.step(actions)
        ob, rb, db, ib = b.step(actions)
        np.testing.assert_array_equal(oa, ob)
        np.testing.assert_array_equal(ra, rb)
        np.testing.assert_array_equal(da, db)
        for i in np.flatnonzero(da):
            np.testing.assert_array_equal(ia[i]["terminal_observation"], ib[i]["terminal_observation"])
            assert ia[i]["TimeLimit.truncated"] == ib[i]["TimeLimit.truncated"]
            finished += 1
    assert finished >= 3


def test_sync_cartpole_against_the_raw_vector_env():
    venv, raw = to_sb3(cartpole_vec()), cartpole_vec()
    venv.seed(5)
    np.testing.assert_array_equal(venv.reset(), raw.reset(seed=5)[0])
    actions = np.ones(3, dtype=np.int64)  # always push right: episodes end within ~10 steps
    for _ in range(50):
        obs, _, dones, infos = venv.step(actions)
        raw_obs, _, term, trunc, _ = raw.step(actions)
        if dones.any():
            break
        np.testing.assert_array_equal(obs, raw_obs)
    done = np.flatnonzero(dones)
    assert len(done)
    for i in done:
        np.testing.assert_array_equal(infos[i]["terminal_observation"], raw_obs[i])
        assert infos[i]["TimeLimit.truncated"] is False
    next_raw_obs = raw.step(actions)[0]
    for i in done:
        np.testing.assert_array_equal(obs[i], next_raw_obs[i])


def test_dict_observations():
    venv = to_sb3(campus_vec(2, obs_mode="dict", max_episode_steps=3))
    raw = campus_vec(2, obs_mode="dict", max_episode_steps=3)
    venv.seed(0)
    obs = venv.reset()
    raw.reset(seed=0)
    assert set(obs) == {"image", "state", "causal"} and obs["image"].shape == (2, 64, 64, 3)
    for _ in range(3):
        obs, _, dones, infos = venv.step(np.array([3, 4]))
        raw_obs = raw.step(np.array([3, 4]))[0]
    assert dones.all()
    for i in range(2):
        terminal = infos[i]["terminal_observation"]
        assert isinstance(terminal, dict) and terminal["image"].shape == (64, 64, 3)
        for key in obs:
            np.testing.assert_array_equal(terminal[key], raw_obs[key][i])
    next_raw_obs = raw.step(np.zeros(2, dtype=np.int64))[0]
    for key in obs:
        np.testing.assert_array_equal(obs[key], next_raw_obs[key])


@pytest.mark.parametrize("make", [lambda: campus_vec(), lambda: cartpole_vec(num_envs=4)], ids=["campus", "cartpole"])
def test_ppo_runs(make):
    venv = to_sb3(make())
    model = PPO("MlpPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, policy_kwargs={"net_arch": [16]},
                seed=0, device="cpu")
    model.learn(total_timesteps=128)
    assert model.num_timesteps >= 128


def test_seed_and_reset_infos():
    venv = to_sb3(campus_vec())
    assert venv.seed(42) == [42, 43, 44, 45]
    obs = venv.reset()
    raw_obs, raw_info = campus_vec().reset(seed=42)
    np.testing.assert_array_equal(obs, raw_obs)
    assert [info["goal"] for info in venv.reset_infos] == raw_info["goal"].tolist()
    venv.set_options({"do": {"weather": "snowy"}})
    venv.reset()
    assert all(info["causal"]["weather"] == 3 for info in venv.reset_infos)  # snowy's code
    venv.set_options([{"do": {"weather": "snowy"}}, {}, {}, {}])
    with pytest.raises(ValueError, match="one options dict"):
        venv.reset()


def test_same_step_reset_keeps_the_task_options_like_autoreset():
    venv = to_sb3(campus_vec(3, max_episode_steps=2))
    venv.set_options({"goal": "library"})
    venv.reset()
    for _ in range(2):
        venv.step(np.zeros(3, dtype=np.int64))
    assert [info["goal"] for info in venv.reset_infos] == [0, 0, 0]  # the library, as after an autoreset


def test_attributes_and_methods_of_a_batched_env():
    venv = to_sb3(campus_vec())
    assert venv.get_attr("obs_mode") == ["state"] * N
    assert venv.get_attr("obs_mode", indices=[0, 2]) == ["state"] * 2
    assert venv.has_attr("causal_graph") and not venv.has_attr("no_such_attribute")
    venv.set_attr("obs_mode", "state")
    with pytest.raises(ValueError, match="all envs"):
        venv.set_attr("obs_mode", "state", indices=[1])
    venv.reset()
    venv.env_method("do", weather="rainy", indices=[2])
    assert [venv.vector_env.core.interventions(i) for i in range(N)] == [{}, {}, {"weather": "rainy"}, {}]
    assert venv.env_method("do", gameday=True) == [None] * N
    with pytest.raises(ValueError, match="env_ids"):
        venv.env_method("render", indices=[0])
    assert venv.env_is_wrapped(gym.Wrapper) == [False] * N


def test_attributes_and_methods_of_sync_sub_envs():
    venv = to_sb3(cartpole_vec())
    assert venv.env_is_wrapped(TimeLimit) == [True] * 3
    assert venv.get_attr("spec")[0].id == "CartPole-v1"
    venv.set_attr("gravity", 20.0, indices=[1])
    assert venv.get_attr("gravity") == [9.8, 20.0, 9.8]
    assert venv.env_method("get_wrapper_attr", "gravity", indices=1) == [20.0]


def test_render_gives_one_frame_per_env():
    venv = to_sb3(campus_vec(2, render_mode="rgb_array"))
    venv.reset()
    frames = venv.get_images()
    assert len(frames) == 2 and frames[0].ndim == 3
    assert venv.render().ndim == 3


class NextStepOnly(gym.vector.VectorEnv):
    """A NEXT_STEP vector env with no partial reset: counters that end an episode every 3 steps."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 2):
        self.num_envs = num_envs
        self.single_observation_space = gym.spaces.Box(0, 10, (1,), np.float32)
        self.single_action_space = gym.spaces.Discrete(2)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.t = np.zeros(num_envs, dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        self.t[:] = 0  # ignores reset_mask: resets everything
        return self.t[:, None].copy(), {}

    def step(self, actions):
        done = self.t >= 3
        self.t = np.where(done, 0, self.t + 1).astype(np.float32)
        return self.t[:, None].copy(), np.ones(self.num_envs), self.t >= 3, np.zeros(self.num_envs, bool), {}


def test_refuses_what_it_cannot_reset_exactly():
    with pytest.raises(ValueError, match="reset_mask"):
        to_sb3(NextStepOnly())
    with pytest.raises(TypeError, match="VectorEnv"):
        to_sb3(gym.make("CartPole-v1"))


def test_wrapped_native_env_uses_its_partial_reset():
    class Wrapped(VectorWrapper):
        pass

    venv, raw = to_sb3(Wrapped(campus_vec(2, max_episode_steps=2))), campus_vec(2, max_episode_steps=2)
    venv.seed(0)
    venv.reset()
    raw.reset(seed=0)
    for _ in range(2):
        obs, _, dones, _ = venv.step(np.zeros(2, dtype=np.int64))
        raw.step(np.zeros(2, dtype=np.int64))
    assert dones.all()
    np.testing.assert_array_equal(obs, raw.step(np.zeros(2, dtype=np.int64))[0])


def test_ppo_runs_on_the_dream_vector_env():
    real = gym.make("CampusNav-v0", obs_mode="state")
    torch.manual_seed(0)
    model = model_zoo.make("mlp", real.observation_space, real.action_space, hidden=16)
    envs = DreamVectorEnv(model, 4, "CampusNav-v0", obs="features", env_kwargs={"obs_mode": "state"},
                          max_episode_steps=5)
    venv = to_sb3(envs)
    venv.seed(0)
    venv.reset()
    ended = 0
    for _ in range(12):
        obs, _, dones, infos = venv.step(np.zeros(4, dtype=np.int64))
        assert envs.single_observation_space.contains(obs[0])
        for i in np.flatnonzero(dones):
            assert infos[i]["terminal_observation"].shape == obs[i].shape
            ended += 1
    assert ended >= 4  # every env's episode ends within 5 steps
    PPO("MlpPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, policy_kwargs={"net_arch": [16]}, seed=0,
        device="cpu").learn(total_timesteps=64)


def test_a_declared_reset_mask_is_used():
    class Declares(NextStepOnly):
        metadata = {**NextStepOnly.metadata, SUPPORTS_RESET_MASK: True}
        masks: list[np.ndarray] = []

        def reset(self, *, seed=None, options=None):
            mask = (options or {}).get("reset_mask")
            if mask is None:
                return super().reset(seed=seed, options=options)
            self.masks.append(mask.copy())
            self.t[mask] = 0
            return self.t[:, None].copy(), {}

    env = Declares()
    venv = to_sb3(env)
    venv.reset()
    for t in range(1, 6):
        obs, _, dones, infos = venv.step(np.zeros(2, dtype=np.int64))
        assert dones.tolist() == [t == 3] * 2
        assert obs[:, 0].tolist() == [t % 3] * 2  # 1, 2, then 0 (reset in the same step), 1, 2
        if t == 3:
            assert [info["terminal_observation"].item() for info in infos] == [3.0, 3.0]
    assert len(env.masks) == 1 and env.masks[0].all()
    with pytest.raises(ValueError, match="reset_mask"):
        to_sb3(NextStepOnly())
    to_sb3(NextStepOnly(), reset_mask=True)  # the caller vouches for it


def test_unbatch_info_nested_masks():
    info = {
        "x": np.array([1, 2, 3]),
        "_x": np.array([True, False, True]),
        "causal": {"gameday": np.array([True, False, True]), "_gameday": np.array([True, True, False])},
        "_causal": np.array([True, True, True]),
        "name": np.array(["a", None, "c"], dtype=object),
        "_name": np.array([True, False, True]),
        "shared": "same",
    }
    rows = unbatch_info(info, 3)
    assert rows[0] == {"x": 1, "causal": {"gameday": True}, "name": "a", "shared": "same"}
    assert rows[1] == {"causal": {"gameday": False}, "shared": "same"}
    assert rows[2] == {"x": 3, "causal": {}, "name": "c", "shared": "same"}
    assert type(rows[0]["x"]) is int and type(rows[0]["causal"]["gameday"]) is bool



def test_sb3_over_scheduled_interventions():
    """to_sb3(Intervene(vector env)): same-step resets restart each env's schedule."""
    envs = Intervene(campus_vec(max_episode_steps=8), [(3, {"weather": "snowy"}), (6, "undo", "weather")])
    venv = to_sb3(envs)
    venv.reset()
    oracle = ShortestPathPolicy()
    core = envs.unwrapped.core
    for _ in range(30):
        _, _, dones, infos = venv.step(oracle.act(envs.unwrapped))
        for i in range(N):
            steps = 0 if dones[i] else infos[i]["steps"]
            assert envs.episode_steps[i] == steps
            assert ("weather" in core.interventions(i)) is bool(3 <= steps < 6)
