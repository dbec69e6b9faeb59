"""``wrappers.Intervene``: scheduled interventions, exactly at their step, single and vector."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import campus_env  # noqa: F401  (registers CampusNav-v0)
from campus_env.oracle import ShortestPathPolicy
from wrappers.intervene import Intervene, IntervenedVectorEnv, parse_schedule

K = 5  # the step of the surprise gameday
UNDO = 9
SEED = 1  # gameday is False in this episode without interventions
ACTIONS = [3, 3, 1, 0, 4, 2, 2, 3, 1, 1, 0, 4]


def campus(**kwargs) -> gym.Env:
    return gym.make("CampusNav-v0", obs_mode="state", **kwargs)


@pytest.mark.parametrize(
    "schedule",
    [
        [(K, {"gameday": True}), (UNDO, "undo", "gameday")],
        [(K, "do", {"gameday": True}), (UNDO, "undo", ["gameday"])],
        {K: {"gameday": True}, UNDO: ("undo", "gameday")},
        {K: {"gameday": True}, UNDO: "undo"},
    ],
    ids=["list", "list-explicit", "dict", "dict-undo-all"],
)
def test_gameday_exactly_from_step_k_until_undo(schedule):
    env = Intervene(campus(), schedule)
    plain = campus()
    obs, info = env.reset(seed=SEED)
    plain_obs, plain_info = plain.reset(seed=SEED)
    assert info["causal"]["gameday"] is False and plain_info["causal"]["gameday"] is False
    for episode in range(2):  # the schedule restarts with every episode
        for t, action in enumerate(ACTIONS, start=1):
            obs, _, _, _, info = env.step(action)
            plain_obs, _, _, _, plain_info = plain.step(action)
            assert info["steps"] == t
            assert info["causal"]["gameday"] is (K <= t < UNDO), (episode, t)
            assert ("gameday" in info["interventions"]) is (K <= t < UNDO)
            if t < K:  # before the intervention the episode is the plain one
                np.testing.assert_array_equal(obs, plain_obs)
        obs, info = env.reset()
        plain_obs, plain_info = plain.reset()
        assert info["causal"]["gameday"] is plain_info["causal"]["gameday"]


def test_step_zero_goes_into_the_reset_options():
    env = Intervene(campus(), [(0, {"weather": "snowy"}), (3, {"gameday": True})])
    _, info = env.reset(seed=SEED, options={"do": {"crowd": 0.5}})
    assert info["causal"]["weather"] == "snowy" and info["interventions"] == {"weather": "snowy", "crowd": 0.5}
    for _ in range(3):
        info = env.step(0)[-1]
    assert info["interventions"] == {"weather": "snowy", "crowd": 0.5, "gameday": True}


def test_vector_env_follows_each_envs_own_step_count():
    """Every env gets the intervention at its own steps 3..5, across next-step autoresets."""
    schedule = [(3, {"weather": "snowy"}), (6, "undo", "weather")]
    envs = Intervene(gym.make_vec("CampusNav-v0", num_envs=4, obs_mode="state", max_episode_steps=8), schedule)
    assert isinstance(envs, IntervenedVectorEnv)
    core = envs.unwrapped.core
    _, info = envs.reset(seed=0)
    oracle = ShortestPathPolicy()
    resets = 0
    for _ in range(40):
        _, _, _, _, info = envs.step(oracle.act(envs.unwrapped))
        np.testing.assert_array_equal(envs.episode_steps, info["steps"])
        for i, steps in enumerate(info["steps"]):
            snowy = bool(3 <= steps < 6)
            assert ("weather" in core.interventions(i)) is snowy, (i, steps)
            if snowy:
                assert info["causal"]["weather"][i] == 3  # snowy's code
        resets += int(np.sum(info["steps"] == 0))
    assert resets >= 4


def test_schedule_is_checked_up_front():
    env = campus()
    bad = [
        ([(-1, {"gameday": True})], "non-negative integer"),
        ([(1.5, {"gameday": True})], "non-negative integer"),
        ([(True, {"gameday": True})], "non-negative integer"),
        ([(2, {"temperature": 3})], "unknown causal variable 'temperature'"),
        ([(2, {"weather": "foggy"})], "weather"),
        ([(2, {})], "non-empty dict"),
        ([(2, "undo", "temperature")], "unknown causal variable 'temperature'"),
        ([(0, "undo", "gameday")], "before step 0"),
        ([(2, "explode")], "must be a dict, 'do' or 'undo'"),
        ([(2,)], "must be"),
        ([{"gameday": True}], "must be"),
    ]
    for schedule, message in bad:
        with pytest.raises(ValueError, match=message):
            Intervene(env, schedule)
    with pytest.raises(TypeError, match="schedule must be"):
        Intervene(env, "gameday at 20")
    with pytest.raises(TypeError, match=r"do\(\)"):
        Intervene(gym.make("CartPole-v1"), [(1, {"x": 1})])


def test_parse_schedule_normalises_and_sorts():
    parsed = parse_schedule({20: [{"gameday": True}, ("undo", ["weather", "crowd"])], 3: "undo"})
    assert parsed == {3: [("undo", ())], 20: [("do", {"gameday": True}), ("undo", ("weather", "crowd"))]}
