"""Per-action features of "state" observations, and the goal-biased collection policy."""

import gymnasium as gym
import numpy as np
import pytest

import campus_env  # noqa: F401
from campus_env.features import ACTION_FEATURES, action_features, goal_biased_policy
from campus_env.schema import PATCH, STATE_SLICES, state_slices

WALK, PROGRESS = ACTION_FEATURES.index("walkable"), ACTION_FEATURES.index("progress")


def _distance(obs):
    return np.abs(obs[:, STATE_SLICES["goal_offset"]] * 31).sum(axis=1)  # cells to the goal, Manhattan


@pytest.mark.parametrize("observe_causal", [True, False])
def test_features_say_what_a_move_does_in_the_env(observe_causal):
    """From an open cell, moves onto cells the features show closed are blocked (from a cell that closed under
    the agent the env lets it walk out); progress +1 brings the goal a cell nearer."""
    n = 256
    envs = gym.make_vec("CampusNav-v0", num_envs=n, obs_mode="state", observe_causal=observe_causal,
                        max_episode_steps=50)
    obs, _ = envs.reset(seed=0)
    rng = np.random.default_rng(0)
    closed_blocked, progress_closer = [], []
    for _ in range(30):
        feats = action_features(obs)
        assert feats.shape == (n, 5, len(ACTION_FEATURES)) and feats.dtype == np.float32
        assert np.all(feats[:, 0, WALK] == 1) and np.all(feats[:, 0, PROGRESS] == 0)  # waiting
        action = rng.integers(1, 5, n)
        chosen = feats[np.arange(n), action]
        before = _distance(obs)
        obs2, reward, terminated, truncated, _ = envs.step(action)
        live = ~(terminated | truncated)
        agent = STATE_SLICES["agent"]
        moved = np.any(obs2[:, agent] != obs[:, agent], axis=1)
        centre = state_slices(observe_causal)["walkable"].start + PATCH**2 // 2  # the agent's own cell
        own_cell_open = obs[:, centre] == 1
        closed = live & own_cell_open & (chosen[:, WALK] == 0)
        closed_blocked.append(~moved[closed] & np.isclose(reward[closed], -0.06))
        forward = live & moved & (chosen[:, PROGRESS] == 1)
        progress_closer.append(np.isclose(_distance(obs2)[forward], before[forward] - 1, atol=1e-3))
        obs = obs2
    closed_blocked, progress_closer = np.concatenate(closed_blocked), np.concatenate(progress_closer)
    assert closed_blocked.size > 100 and progress_closer.size > 100
    assert closed_blocked.all() and progress_closer.all()


def test_features_refuse_other_observations():
    with pytest.raises(ValueError, match="'state' observations"):
        action_features(np.zeros((2, 6), np.float32))
    with pytest.raises(ValueError, match="'state' observations"):
        action_features(np.zeros(72, np.float32))  # one observation needs a batch axis


def test_goal_biased_policy_reaches_the_goal_more_often_than_a_random_walk():
    def success_rate(policy):
        envs = gym.make_vec("CampusNav-v0", num_envs=200, obs_mode="state", max_episode_steps=100)
        obs, _ = envs.reset(seed=1)
        rng, success, alive = np.random.default_rng(1), np.zeros(200, bool), np.ones(200, bool)
        while alive.any():
            action = policy(obs) if policy else rng.integers(0, 5, 200)
            obs, _, terminated, truncated, _ = envs.step(action)
            success |= alive & terminated
            alive &= ~(terminated | truncated)
        return success.mean()

    random_walk, biased = success_rate(None), success_rate(goal_biased_policy(0.5, seed=0))
    assert biased > random_walk + 0.05


def test_goal_biased_policy_takes_only_good_moves_at_bias_one():
    envs = gym.make_vec("CampusNav-v0", num_envs=64, obs_mode="state")
    obs, _ = envs.reset(seed=2)
    good = action_features(obs)[..., ACTION_FEATURES.index("progress_walkable")] > 0.5
    action = goal_biased_policy(1.0, seed=0)(obs)
    has_good = good.any(axis=1)
    assert has_good.sum() > 10
    assert good[np.arange(64), action][has_good].all()
    # the same seed draws the same actions
    np.testing.assert_array_equal(goal_biased_policy(0.3, seed=5)(obs), goal_biased_policy(0.3, seed=5)(obs))
    with pytest.raises(ValueError, match="probability"):
        goal_biased_policy(1.5)
