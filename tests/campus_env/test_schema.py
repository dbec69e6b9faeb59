"""campus_env.schema: the named actions and vector slices agree with what the env actually produces."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import campus_env  # noqa: F401
from campus_env import causal
from campus_env.core import CampusCore
from campus_env.env import build_obs
from campus_env.schema import (
    ACTION_MEANINGS,
    CAUSAL_DIM,
    CAUSAL_SLICES,
    MOVES,
    PATCH,
    STATE_DIM,
    STATE_SLICES,
    Action,
    state_slices,
)

ENV_ID = "CampusNav-v0"
CALM = {"crowd": 0.0, "weather": "sunny"}  # no crowd blocks and no slips: an open cell is always entered


def cell_of(core, flat: int) -> np.ndarray:
    """Unpadded (row, col) of a flat cell index, as ints."""
    row, col = core.layout.unflat(flat)
    return np.array([int(row), int(col)])


def scaled(core, rc: np.ndarray) -> np.ndarray:
    """A (row, col) cell scaled by the map size, as the state vector shows it."""
    return (rc / np.array([core.layout.height - 1, core.layout.width - 1])).astype(np.float32)


def decode_causal(vector: np.ndarray) -> dict:
    """``info["causal"]``'s values read back from a causal vector through ``CAUSAL_SLICES`` alone."""
    part = {name: vector[where] for name, where in CAUSAL_SLICES.items()}
    clock = float(part["hour"][0])
    minute = causal.FIRST_MINUTE + clock * (causal.LAST_MINUTE - causal.FIRST_MINUTE)
    return {
        "day": int(part["day"].argmax()),
        "hour": minute / 60.0,
        "semester": causal.SEMESTERS[int(part["semester"][0])],
        "weather": causal.WEATHERS[int(part["weather"].argmax())],
        "gameday": bool(part["gameday"][0]),
        "road_closure": bool(part["road_closure"][0]),
        "crowd": float(part["crowd"][0]),
    }


def assert_matches_env(env: gym.Env, obs: np.ndarray, info: dict, observe_causal: bool) -> None:
    """Every named part of a flat "state" observation says what the simulation core holds."""
    core = env.unwrapped.core
    parts = state_slices(observe_causal)
    agent, goal = cell_of(core, core.pos[0]), cell_of(core, core.goal_flat[0])
    np.testing.assert_allclose(obs[parts["agent"]], scaled(core, agent), atol=1e-6)
    np.testing.assert_allclose(obs[parts["goal"]], scaled(core, goal), atol=1e-6)
    np.testing.assert_allclose(obs[parts["goal_offset"]], obs[parts["goal"]] - obs[parts["agent"]], atol=1e-6)
    if observe_causal:
        decoded = decode_causal(obs[parts["causal"]])
        for name, value in info["causal"].items():
            assert decoded[name] == pytest.approx(value, abs=1e-4), name
    # the patches are centred on the agent: the cell each move leads to, as the core sees it now
    centre = PATCH // 2
    open_now = core.passable_map(0)
    for action in Action:
        d_row, d_col = MOVES[action]
        index = (centre + d_row) * PATCH + centre + d_col
        target = core.pos[0] + core.moves[action]
        assert obs[parts["walkable"]][index] == float(open_now[target]), action
    assert ((obs[parts["crowd"]] >= 0) & (obs[parts["crowd"]] <= 1)).all()


def test_the_walkable_patch_is_the_passable_map_around_the_agent_goal_entrance_included():
    n = 64
    core = CampusCore(n)
    core.reset(np.arange(n), np.arange(n, dtype=np.uint64))
    rng = np.random.default_rng(0)
    goal_in_patch = 0
    for _ in range(300):
        _, done = core.step(rng.integers(0, len(Action), n))
        if done.any():
            core.reset(np.flatnonzero(done), rng.integers(0, 2**62, int(done.sum())).astype(np.uint64))
        walkable = build_obs(core, None, "state", False)[:, state_slices(False)["walkable"]]
        for i in range(n):
            cells = core.pos[i] + core.patch_off
            assert np.array_equal(walkable[i], core.passable_map(i)[cells]), i
            goal_in_patch += core.goal_flat[i] in cells
    assert goal_in_patch > 50


def test_actions_name_the_action_space():
    env = gym.make(ENV_ID, obs_mode="state")
    assert env.action_space == gym.spaces.Discrete(len(Action))
    assert [int(a) for a in Action] == list(range(env.action_space.n))
    assert set(MOVES) == set(Action) and MOVES[Action.STAY] == (0, 0)
    assert sorted(MOVES[a] for a in Action if a != Action.STAY) == [(-1, 0), (0, -1), (0, 1), (1, 0)]
    assert ACTION_MEANINGS == "0 stay, 1 north, 2 south, 3 east, 4 west"


@pytest.mark.parametrize("observe_causal", [True, False])
def test_state_slices_tile_the_flat_observation_exactly(observe_causal):
    env = gym.make(ENV_ID, obs_mode="state", observe_causal=observe_causal)
    parts = sorted(state_slices(observe_causal).values(), key=lambda s: s.start)
    covered = np.concatenate([np.arange(s.start, s.stop) for s in parts])
    assert covered.tolist() == list(range(env.observation_space.shape[0]))  # contiguous, disjoint, complete
    assert ("causal" in state_slices(observe_causal)) == observe_causal
    sizes = {name: s.stop - s.start for name, s in state_slices(observe_causal).items()}
    assert sizes["walkable"] == sizes["crowd"] == PATCH**2
    assert sum(sizes[name] for name in STATE_SLICES) == STATE_DIM


def test_causal_slices_tile_the_causal_vector_exactly():
    parts = sorted(CAUSAL_SLICES.values(), key=lambda s: s.start)
    covered = np.concatenate([np.arange(s.start, s.stop) for s in parts])
    assert covered.tolist() == list(range(CAUSAL_DIM))
    assert set(CAUSAL_SLICES) == set(causal.VARIABLES)  # one part per causal variable
    one_hot = {"day": len(causal.VARIABLES["day"].choices), "weather": len(causal.WEATHERS)}
    for name, where in CAUSAL_SLICES.items():
        assert where.stop - where.start == one_hot.get(name, 1), name


@pytest.mark.parametrize("observe_causal", [True, False])
def test_dict_observation_parts_are_the_flat_observation_parts(observe_causal):
    flat_env = gym.make(ENV_ID, obs_mode="state", observe_causal=observe_causal)
    dict_env = gym.make(ENV_ID, obs_mode="dict", observe_causal=observe_causal)
    options = {"do": {"gameday": True, "weather": "snowy"}}
    flat, _ = flat_env.reset(seed=7, options=options)
    parts, _ = dict_env.reset(seed=7, options=options)
    for _ in range(3):
        assert dict_env.observation_space["state"].shape == (STATE_DIM,)
        np.testing.assert_array_equal(flat[:STATE_DIM], parts["state"])
        if observe_causal:
            assert dict_env.observation_space["causal"].shape == (CAUSAL_DIM,)
            np.testing.assert_array_equal(flat[state_slices(True)["causal"]], parts["causal"])
        flat = flat_env.step(Action.EAST)[0]
        parts = dict_env.step(Action.EAST)[0]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("observe_causal", [True, False])
def test_named_parts_match_the_core_along_an_episode(seed, observe_causal):
    env = gym.make(ENV_ID, obs_mode="state", observe_causal=observe_causal)
    obs, info = env.reset(seed=seed, options={"do": {"road_closure": True}} if seed % 2 else None)
    rng = np.random.default_rng(seed)
    for _ in range(25):
        assert_matches_env(env, obs, info, observe_causal)
        obs, _, terminated, truncated, info = env.step(Action(int(rng.integers(len(Action)))))
        if terminated or truncated:
            obs, info = env.reset()


@pytest.mark.parametrize("action", list(Action))
def test_each_move_steps_the_agent_by_its_table_entry_on_an_open_cell(action):
    env = gym.make(ENV_ID, obs_mode="state")
    core = env.unwrapped.core
    agent = STATE_SLICES["agent"]
    for seed in range(40):  # the first start with the target cell open (entrances sit beside walkways)
        obs, _ = env.reset(seed=seed, options={"do": CALM})
        target = core.pos[0] + core.moves[action]
        if core.passable_map(0)[target]:
            break
    else:
        pytest.fail(f"no start within 40 seeds has an open cell to the {action.name}")
    before = cell_of(core, core.pos[0])
    obs, *_ = env.step(action)
    after = cell_of(core, core.pos[0])
    assert tuple(after - before) == MOVES[action]
    np.testing.assert_allclose(obs[agent], scaled(core, after), atol=1e-6)


def test_north_is_one_row_up():
    env = gym.make(ENV_ID, obs_mode="state")
    core = env.unwrapped.core
    for seed in range(40):
        obs, _ = env.reset(seed=seed, options={"do": CALM})
        if core.passable_map(0)[core.pos[0] + core.moves[Action.NORTH]]:
            break
    row_before = obs[STATE_SLICES["agent"]][0] * (core.layout.height - 1)
    obs, *_ = env.step(Action.NORTH)
    row_after = obs[STATE_SLICES["agent"]][0] * (core.layout.height - 1)
    assert row_after == pytest.approx(row_before - 1)


def test_any_seed_and_actions_keep_observations_and_moves_as_the_schema_says():
    """Property: whatever the seed, interventions and actions, the named parts read the core, and a move
    that neither was blocked nor slipped steps the agent by exactly ``MOVES[action]``."""
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    env = gym.make(ENV_ID, obs_mode="state")
    core = env.unwrapped.core

    @hypothesis.settings(max_examples=25, deadline=None, database=None, derandomize=True)
    @hypothesis.given(
        seed=st.integers(0, 2**31 - 1),
        weather=st.sampled_from(causal.WEATHERS),
        actions=st.lists(st.sampled_from(list(Action)), min_size=1, max_size=20),
    )
    def check(seed, weather, actions):
        obs, info = env.reset(seed=seed, options={"do": {"weather": weather}})
        for action in actions:
            assert_matches_env(env, obs, info, observe_causal=True)
            before, slipped = cell_of(core, core.pos[0]), int(core.slipped_moves[0])
            obs, _, terminated, truncated, info = env.step(action)
            if not info["blocked"] and int(core.slipped_moves[0]) == slipped:
                assert tuple(cell_of(core, core.pos[0]) - before) == MOVES[action]
            if terminated or truncated:
                break

    check()
