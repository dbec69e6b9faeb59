"""The semantic readout: what a state observation says, as whole numbers, for env and imagined vectors alike."""

import gymnasium as gym
import numpy as np
import pytest

from campus_env import causal
from campus_env.schema import CAUSAL_SLICES, STATE_DIM, STATE_SLICES
from campus_env.semantics import SEMANTIC_FIELDS, semantic_state
from tests.campus_env.helpers import ENV_ID, random_actions


def walk(obs_mode="state", observe_causal=True, steps=12, seed=4):
    env = gym.make(ENV_ID, obs_mode=obs_mode, observe_causal=observe_causal).unwrapped
    obs, info = env.reset(seed=seed, options={"do": {"weather": "rainy", "gameday": True}})
    for action in random_actions(steps, seed=seed):
        obs, _, terminated, _, info = env.step(action)
        if terminated:
            break
    return env, obs, info


def test_the_readout_is_the_cells_and_the_context_of_the_env():
    env, obs, info = walk()
    position, state = semantic_state(obs[None])
    row, col = np.divmod(int(env.core.pos[0]), env.core.width)
    pad = (env.core.width - env.core.layout.width) // 2
    assert position.tolist() == [[row - pad, col - pad]]
    fields = dict(zip(SEMANTIC_FIELDS, state[0].tolist(), strict=True))
    assert fields["day"] == info["causal"]["day"]
    assert fields["weather"] == causal.WEATHERS.index("rainy") and fields["gameday"] == 1
    assert fields["hour_slot"] == int(causal.hour_slot(np.array(int(round(info["causal"]["hour"] * 60)))))
    assert fields["road_closure"] == int(info["causal"]["road_closure"])
    assert fields["crowd_quarter"] == round(4 * info["causal"]["crowd"])


def test_a_dict_observation_reads_as_its_flat_twin():
    _, flat, _ = walk("state")
    _, as_dict, _ = walk("dict")
    for a, b in zip(semantic_state(flat[None]), semantic_state({k: v[None] for k, v in as_dict.items()}),
                    strict=True):
        np.testing.assert_array_equal(a, b)


def test_small_errors_of_a_dream_read_the_same_and_a_cell_off_does_not():
    _, obs, _ = walk()
    noisy = obs[None] + np.random.default_rng(0).uniform(-0.01, 0.01, size=(1, obs.size)).astype(np.float32)
    np.testing.assert_array_equal(semantic_state(noisy).state, semantic_state(obs[None]).state)
    moved = obs[None].copy()
    moved[:, STATE_SLICES["agent"].start] += 1 / 31
    assert semantic_state(moved).position[0, 0] == semantic_state(obs[None]).position[0, 0] + 1
    other_day = obs[None].copy()
    other_day[:, STATE_DIM + CAUSAL_SLICES["day"].start:STATE_DIM + CAUSAL_SLICES["day"].stop] = np.eye(7)[6] * 0.9
    assert semantic_state(other_day).state[0, SEMANTIC_FIELDS.index("day")] == 6


def test_without_the_causal_vector_only_the_cells_are_read():
    _, obs, _ = walk(observe_causal=False)
    position, state = semantic_state(obs[None])
    assert state.shape == (1, 4) and (state[:, :2] == position).all()


def test_non_finite_values_read_as_no_real_cell():
    _, obs, _ = walk()
    broken = np.full((1, obs.size), np.nan, dtype=np.float32)
    position, _ = semantic_state(broken)
    assert (position == -31).all()


@pytest.mark.parametrize("obs", [np.zeros((2, 5)), np.zeros(72), {"image": np.zeros((1, 8, 8, 3))},
                                 {"state": np.zeros((1, 4))}])
def test_what_it_cannot_read_is_refused(obs):
    with pytest.raises(ValueError):
        semantic_state(obs)


def test_reached_goal_is_the_envs_termination():
    """On real episodes: true exactly on the observations the env terminated with."""
    from campus_env.oracle import ShortestPathPolicy
    from campus_env.semantics import reached_goal

    oracle = gym.make("CampusNav-v0", obs_mode="state")
    policy = ShortestPathPolicy()
    obs, _ = oracle.reset(seed=5)
    seen = []
    for _ in range(200):
        obs, _, terminated, truncated, _ = oracle.step(policy(oracle))
        seen.append((bool(reached_goal(obs[None])[0]), terminated))
        if terminated or truncated:
            break
    assert seen[-1] == (True, True) and not any(r for r, _ in seen[:-1])
    assert oracle.unwrapped.metadata["termination_fn"] == "campus_env.semantics:reached_goal"
    assert gym.make_vec("CampusNav-v0", num_envs=2).metadata["termination_fn"] == "campus_env.semantics:reached_goal"
