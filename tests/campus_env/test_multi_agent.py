"""Many walkers (``campus_env.multi_agent``): PettingZoo's API and seed tests, a lone walker replays
CampusNav-v0, capacity, fair conflicts, walker density, trails, interventions and bad input."""

import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test

from campus_env import causal
from campus_env import layout as lay
from campus_env.core import TAPE_LEN, CampusCore
from campus_env.env import CampusNavEnv, build_obs, observation_space
from campus_env.multi_agent import WALKER_CAUSAL_GRAPH, parallel_env, raw_env, scm
from campus_env.multi_agent.core import OUTDOOR, WalkerCore
from campus_env.multi_agent.render import TRAIL_BASE, world_codes
from tests.campus_env.helpers import assert_identical

IMAGE_MODES = ("pixels", "dict")
UNKNOWN_OPTION = pytest.mark.filterwarnings("ignore:.*ignoring unknown option:UserWarning")  # PettingZoo passes one


def run(env, seed, steps, options=None, action_seed=0):
    """Resets ``env`` and steps it with per-walker random actions; returns the observations, rewards and ends."""
    rng = np.random.default_rng(action_seed)
    record = [env.reset(seed=seed, options=options)[0]]
    for _ in range(steps):
        if not env.agents:
            break
        actions = rng.integers(0, 5, env.core.n)  # drawn for every walker, so runs stay aligned
        record.append(env.step({a: int(actions[env._index[a]]) for a in env.agents})[:4])
    return record


def stay(env):
    return env.step(dict.fromkeys(env.agents, 0))


# --- PettingZoo's own tests -----------------------------------------------------


@UNKNOWN_OPTION
@pytest.mark.parametrize("obs_mode", ["state", "pixels"])
def test_parallel_api(obs_mode):
    parallel_api_test(parallel_env(num_agents=3, obs_mode=obs_mode), num_cycles=30)


@pytest.mark.parametrize("obs_mode", ["state", "pixels"])
def test_parallel_seed(obs_mode):
    parallel_seed_test(lambda: parallel_env(num_agents=3, obs_mode=obs_mode), num_cycles=20)


@UNKNOWN_OPTION
def test_aec_api():
    api_test(raw_env(num_agents=3, obs_mode="state"), num_cycles=15)


def test_spaces_are_the_single_envs_and_observations_lie_in_them():
    env = parallel_env(num_agents=5, obs_mode="dict", observe_causal=False)
    single = observation_space("dict", False)
    assert all(env.observation_space(a) == single for a in env.possible_agents)
    assert env.observation_space("walker_0") is not env.observation_space("walker_1")
    for obs in (record if isinstance(record, dict) else record[0] for record in run(env, 4, 30)):
        for agent, o in obs.items():
            assert env.observation_space(agent).contains(o), agent


# --- a lone walker is CampusNav-v0 -------------------------------------------------


@pytest.mark.parametrize("obs_mode", ["state", *IMAGE_MODES])
def test_lone_walker_replays_the_single_env(obs_mode):
    """One walker with trails held off (``do(trail=0)``; its own density never blocks it) is bit-identical
    to CampusNav-v0 under the same seed and actions: observations, rewards, ends and causal values."""
    for seed in (0, 7):
        env, single = parallel_env(num_agents=1, obs_mode=obs_mode), CampusNavEnv(obs_mode=obs_mode)
        obs, infos = env.reset(seed=seed, options={"do": {"trail": 0.0}})
        s_obs, s_info = single.reset(seed=seed)
        assert_identical(obs["walker_0"], s_obs, "reset obs")
        rng = np.random.default_rng(seed)
        for t in range(80):
            action = int(rng.integers(5))
            obs, rewards, terms, _, infos = env.step({"walker_0": action})
            s_obs, s_reward, s_term, _, s_info = single.step(action)
            assert_identical(obs["walker_0"], s_obs, f"step {t} obs")
            assert rewards["walker_0"] == s_reward and terms["walker_0"] == s_term, f"step {t}"
            world = infos["walker_0"]["causal"]
            assert_identical({k: world[k] for k in causal.VARIABLES}, s_info["causal"], f"step {t} causal")
            if s_term:
                assert env.agents == []
                break


# --- capacity and conflicts -----------------------------------------------------------


def outdoor_counts(core):
    counts = np.bincount(core.pos[core.active], minlength=core.cells)
    return counts[np.isin(core.terrain, OUTDOOR)]


def test_capacity_is_never_exceeded_and_conflicts_are_deterministic():
    """40 walkers leave one entrance into cells that hold one each: full cells refuse, never overfill."""
    paths = []
    for _ in range(2):
        env = parallel_env(num_agents=40, obs_mode="state", capacity=1)
        rng = np.random.default_rng(1)
        env.reset(seed=5, options={"start": "library"})
        path = []
        for _ in range(60):
            actions = rng.integers(0, 5, env.core.n)
            env.step({a: int(actions[env._index[a]]) for a in env.agents})
            assert outdoor_counts(env.core).max() <= 1
            path.append(env.core.pos.copy())
        assert env.core.capacity_blocks.sum() > 0, "the test never made walkers compete for a cell"
        paths.append(np.array(path))
    np.testing.assert_array_equal(paths[0], paths[1])


def admission_core(capacity):
    core = WalkerCore(4, capacity=capacity)
    core.reset_world(7, {}, {})
    walkway = np.flatnonzero(core.terrain == lay.WALKWAY)
    return core, walkway


def test_conflicts_are_fair():
    """Four walkers want the same empty cell of capacity 1: exactly one gets it, each about as often."""
    core, walkway = admission_core(capacity=1)
    core.pos[:] = walkway[:4]
    core._recount()
    target = np.full(4, walkway[10])
    wins = np.zeros(4)
    for t in range(400):
        core.t[:] = t
        moved = core._admit(np.ones(4, dtype=bool), target)
        assert moved.sum() == 1
        wins += moved
    assert wins.min() > 60, wins


def test_a_walker_may_follow_one_that_leaves_in_the_same_step():
    core, walkway = admission_core(capacity=1)
    x, y, w = walkway[:3]
    core.pos[:] = walkway[3:7]
    core.pos[:2] = (x, w)  # walker 0 in the full cell x heads for y; walker 1 wants x
    core._recount()
    want = np.array([True, True, False, False])
    target = np.array([y, x, 0, 0])
    np.testing.assert_array_equal(core._admit(want, target), want)


def test_walker_density_adds_to_the_crowd():
    blocks = {}
    for density in (0.0, 1.0):
        env = parallel_env(num_agents=60, obs_mode="state")
        run(env, 2, 40, options={"do": {"walker_density": density, "trail": 0.0}})
        blocks[density] = env.core.crowd_blocks.sum()
    assert blocks[1.0] > 1.4 * blocks[0.0], blocks


# --- trails --------------------------------------------------------------------------


def trail_env(**kwargs):
    env = parallel_env(num_agents=4, obs_mode="state", render_mode="rgb_array", **kwargs)
    env.reset(seed=0)
    cell = int(np.flatnonzero(env.core.grass)[0])
    return env, cell


def park(env, cell):
    env.core.pos[:] = cell
    env.core._recount()


def test_traffic_wears_a_trail_that_recovers_slowly_and_shows():
    env, cell = trail_env()
    unworn = env.render()
    park(env, cell)
    wear = []
    for _ in range(30):
        stay(env)
        wear.append(env.core.trail[cell])
    assert np.all(np.diff(wear) > 0) and wear[-1] > 0.5
    assert env.core.trail[env.core.grass].sum() == pytest.approx(wear[-1])  # nowhere else
    park(env, env.core.entrance_flat[0])  # everyone indoors: the grass is left alone
    for _ in range(20):
        stay(env)
    assert 0.5 < env.core.trail[cell] < wear[-1]
    assert world_codes(env.core)[cell] >= TRAIL_BASE
    row, col = (np.array(lay.Layout.unflat(env.core.layout, cell)) * 16).tolist()
    assert not np.array_equal(env.render()[row : row + 16, col : col + 16], unworn[row : row + 16, col : col + 16])
    assert env.causal_values()["trail"] > 0


def test_do_trail_zero_switches_trails_off_and_undo_resumes():
    env, cell = trail_env()
    park(env, cell)
    env.do(trail=0.0)
    for _ in range(10):
        stay(env)
    assert env.core.trail.max() == 0.0 and env.interventions == {"trail": 0.0}
    env.undo("trail")
    stay(env)
    assert env.core.trail[cell] > 0 and env.interventions == {}


def test_trails_ease_slips_on_wet_grass():
    slips = {}
    for trail in (0.0, 1.0):
        env = parallel_env(num_agents=80, obs_mode="state")
        run(env, 3, 40, options={"do": {"weather": "rainy", "trail": trail}})
        slips[trail] = env.core.slipped_moves.sum()
    assert slips[1.0] < 0.7 * slips[0.0], slips


# --- the causal model and interventions ---------------------------------------------


def test_causal_graph_lists_the_walker_variables():
    env = parallel_env(num_agents=2)
    graph = env.causal_graph
    assert graph["walker_density"] == ("day", "hour", "gameday")
    assert graph["trail"] == ("walker_density",)
    assert {k: v for k, v in graph.items() if k in causal.VARIABLES} == causal.CAUSAL_GRAPH
    order = list(graph)  # declared in causal order: every parent comes first
    assert all(order.index(p) < order.index(v) for v, parents in graph.items() for p in parents)
    assert CampusNavEnv().causal_graph == causal.CAUSAL_GRAPH and "trail" not in CampusNavEnv().causal_graph
    assert graph == WALKER_CAUSAL_GRAPH


def test_counterfactual_twin_under_the_natural_value_is_exact():
    env = parallel_env(num_agents=20, obs_mode="state")
    natural = run(env, 11, 40)
    assert len(set(env.core.start.tolist())) > 1 and len(set(env.core.goal.tolist())) > 1  # a task per walker
    weather = env.causal_values()["weather"]
    twin = run(parallel_env(num_agents=20, obs_mode="state"), 11, 40, options={"do": {"weather": weather}})
    assert_identical(twin, natural, "twin")


def test_fork_with_the_same_seed_gives_the_same_future():
    env = parallel_env(num_agents=10, obs_mode="state")
    run(env, 1, 10)
    futures = []
    for _ in range(2):
        fork = env.fork(123)
        futures.append([stay(fork)[0] for _ in range(5)])
    assert_identical(futures[0], futures[1], "fork")


def assert_tape_is_each_walkers_own(core):
    steps = core.tape_base[:, None] + np.arange(TAPE_LEN)
    for walker in range(core.n):
        alone = CampusCore._context_tape(core, np.array([walker]), steps[walker : walker + 1])
        row = slice(core.row_off[walker], core.row_off[walker] + TAPE_LEN)
        for name, rows in alone.items():
            laid = getattr(core, "tape_" + name)[row]
            assert np.array_equal(laid, rows[0].astype(laid.dtype)), (walker, name)


def test_walkers_tape_is_the_single_envs_for_each_walker_through_resets_and_interventions():
    # the walkers share one world, so the core lays the context rows of the tape once; each walker's rows must be
    # what the single env's code lays for it alone
    core = WalkerCore(6, respawn=True)
    core.reset_world(5, {}, {})
    rng = np.random.default_rng(0)
    for t in range(TAPE_LEN + 20):  # past the end of the first tape: laid again
        if t == 3:
            core.intervene(core.all, scm.split_codes(scm.validate_do({"weather": "rainy", "crowd": 0.8}))[0])
        core.step(rng.integers(0, 5, core.n))
    assert (core.tape_base > 0).all()
    assert_tape_is_each_walkers_own(core)
    core.intervene(np.array([1, 4]), {"crowd": 0.1})  # some walkers only: no longer one world's rows
    assert_tape_is_each_walkers_own(core)
    assert_tape_is_each_walkers_own(core.fork_world(7))  # a fork lays every walker's tape at once


def test_shared_patch_is_the_walker_by_walker_patch():
    # while every walker's tape holds the same rows the patch is computed per cell and gathered: it must equal the
    # walker-by-walker patch through steps, respawns and a held density; a walker-by-walker intervene ends it
    core = WalkerCore(300, respawn=True)
    core.reset_world(3, {}, {})
    rng = np.random.default_rng(1)

    def walker_by_walker():
        core.shared_tape, shared = False, core.shared_tape
        obs = build_obs(core, None, "state", True)
        core.shared_tape = shared
        return obs

    for t in range(120):
        core.step(rng.integers(0, 5, core.n))
        if t == 60:
            core.intervene_walkers({"walker_density": 0.5})
        if t == 90:
            core.release_walkers(["walker_density"])
        assert core.shared_tape
        assert np.array_equal(build_obs(core, None, "state", True), walker_by_walker()), t
    core.intervene(np.array([1, 4]), {"crowd": 0.1})
    assert not core.shared_tape


def state_of(env):
    core = env.core
    return (core.pos.copy(), core.trail.copy(), core.t.copy(), env.interventions, list(env.agents))


def test_bad_interventions_raise_clear_errors_and_change_nothing():
    env = parallel_env(num_agents=3, obs_mode="state")
    with pytest.raises(RuntimeError, match="reset"):
        env.do(trail=0.0)
    env.reset(seed=0, options={"do": {"trail": 0.25}})
    before = state_of(env)
    for bad, match in (
        ({"footfall": 1}, "valid names: .*walker_density, trail"),
        ({"trail": 1.5}, "trail must be a number in \\[0, 1\\]"),
        ({"trail": 0.0, "weather": "foggy"}, "weather must be one of"),
        ({"walker_density": True}, "walker_density must be"),
    ):
        with pytest.raises(ValueError, match=match):
            env.do(**bad)
        with pytest.raises(ValueError, match=match):
            env.reset(seed=0, options={"do": bad})
    with pytest.raises(ValueError, match="unknown causal variable"):
        env.undo("footfall")
    with pytest.raises(TypeError, match="names as strings"):
        env.undo(3)
    assert_identical(state_of(env), before, "after refused calls")


def test_bad_actions_and_arguments_raise_clear_errors():
    env = parallel_env(num_agents=3, obs_mode="state")
    with pytest.raises(RuntimeError, match="reset"):
        stay(env)
    env.reset(seed=0)
    before = state_of(env)
    for actions, error, match in (
        ({"walker_0": 0, "walker_1": 0, "walker_9": 0}, ValueError, "unknown agent 'walker_9'"),
        ({"walker_0": 0}, ValueError, "missing"),
        ({"walker_0": 0, "walker_1": 7, "walker_2": 0}, ValueError, "action must be in"),
        ([0, 0, 0], TypeError, "dict of agent"),
    ):
        with pytest.raises(error, match=match):
            env.step(actions)
    assert_identical(state_of(env), before, "after refused steps")
    with pytest.raises(ValueError, match="unknown agent"):
        env.observation_space("walker_3")
    for kwargs, match in (({"num_agents": 0}, "num_agents"), ({"capacity": 0}, "capacity"),
                          ({"max_cycles": 0}, "max_cycles"), ({"obs_mode": "rgb"}, "obs_mode")):
        with pytest.raises(ValueError, match=match):
            parallel_env(**kwargs)


# --- one shared policy through SuperSuit -------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_supersuit_vector_env_trains_one_shared_sb3_policy():
    ss = pytest.importorskip("supersuit")
    from stable_baselines3 import PPO

    env = ss.black_death_v3(parallel_env(num_agents=4, obs_mode="state", max_cycles=20))
    venv = ss.concat_vec_envs_v1(ss.pettingzoo_env_to_vec_env_v1(env), 1, num_cpus=0, base_class="stable_baselines3")
    assert venv.num_envs == 4 and venv.observation_space == observation_space("state", True)
    model = PPO("MlpPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, device="cpu")
    model.learn(64)
    actions, _ = model.predict(venv.reset(), deterministic=True)
    assert actions.shape == (4,)
