"""model_zoo.causal: structure discovery from interventions, SHD, the tests it rests on, counterfactual twins."""

from __future__ import annotations

import math
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
import torch

import campus_env  # noqa: F401
import model_zoo
from campus_env import causal
from model_zoo.base import Imagined, WorldModel
from model_zoo.causal import (
    compare_twins,
    discover_campus,
    discover_graph,
    env_twins,
    friedman_test,
    holm,
    independence_test,
    model_twins,
    outcome_effects,
    structural_hamming_distance,
    twin_outcomes,
)

# --- a small numpy SCM: a mediated and a direct path, an exogenous inert variable, two continuous ones -----

SCM_GRAPH = {"a": (), "b": (), "c": ("a",), "d": ("b", "c"), "e": ("a", "d"), "f": ()}
SCM_GRIDS = {"a": (0, 1, 2), "b": (0, 1), "c": (0, 1, 2), "d": (-1.0, 0.0, 1.0), "e": (-1.0, 1.0), "f": (0, 1)}


def scm_sampler(seed: int = 0):
    """a, b, f exogenous; c a noisy copy of a; d = 0.8 c + b + noise; e = d + 0.7 a + noise (a -> e direct too)."""
    rng = np.random.default_rng(seed)

    def sample(do: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(next(iter(do.values())))
        a = do.get("a", rng.integers(0, 3, n))
        b = do.get("b", rng.integers(0, 2, n))
        f = do.get("f", rng.integers(0, 2, n))
        c = do.get("c", np.where(rng.random(n) < 0.7, a, rng.integers(0, 3, n)))
        d = do.get("d", 0.8 * c + b + rng.normal(size=n))
        e = do.get("e", d + 0.7 * a + rng.normal(size=n))
        return {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f}

    return sample


def test_discovery_recovers_a_known_graph_from_synthetic_interventions():
    found = discover_graph(scm_sampler(), SCM_GRIDS, continuous=("d", "e"), samples=1500, seed=0)
    assert found.graph == SCM_GRAPH
    assert structural_hamming_distance(found.graph, SCM_GRAPH) == 0
    # the total effects include the indirect ones that stage 2 removed
    assert set(found.ancestors["e"]) == {"a", "b", "c", "d"} and set(found.ancestors["d"]) == {"a", "b", "c"}
    pruned = {(t.cause, t.effect) for t in found.tests if t.stage == 2 and not t.significant}
    assert pruned == {("a", "d"), ("b", "e"), ("c", "e")}
    assert found.experiments == 6 + 3 and found.samples == 9 * 1500  # one per variable, one per variable with causes
    assert "indirect" in found.table() and "| a | c | 1 |" in found.table()


def test_discovery_is_deterministic_given_the_seed():
    first = discover_graph(scm_sampler(1), SCM_GRIDS, continuous=("d", "e"), samples=400, seed=3)
    again = discover_graph(scm_sampler(1), SCM_GRIDS, continuous=("d", "e"), samples=400, seed=3)
    assert first.graph == again.graph and [t.p_value for t in first.tests] == [t.p_value for t in again.tests]


def test_a_fully_randomised_scm_has_no_edges():
    def independent(do):
        n = len(next(iter(do.values())))
        rng = np.random.default_rng(sum(len(v) for v in do.values()))
        return {k: do.get(k, rng.integers(0, 2, n)) for k in "xyz"}

    found = discover_graph(independent, {k: (0, 1) for k in "xyz"}, samples=500)
    assert found.graph == {"x": (), "y": (), "z": ()} and found.experiments == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"samples": 1}, "samples"),
        ({"alpha": 0.0}, "alpha"),
        ({"continuous": ("nope",)}, "continuous"),
    ],
)
def test_discovery_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        discover_graph(scm_sampler(), SCM_GRIDS, **kwargs)


def test_discovery_rejects_a_one_value_grid_and_a_sampler_that_forgets_variables():
    with pytest.raises(ValueError, match="at least two"):
        discover_graph(scm_sampler(), {**SCM_GRIDS, "f": (0,)})
    with pytest.raises(ValueError, match="no values for"):
        discover_graph(lambda do: {"a": do.get("a", np.zeros(len(next(iter(do.values())))))},
                       {"a": (0, 1), "b": (0, 1)}, samples=10)


# --- CampusNav-v0 -----------------------------------------------------------------------------------------


def test_discovery_on_campusnav_finds_the_declared_graph():
    env = gym.make("CampusNav-v0", obs_mode="state")
    found = discover_campus(samples=1000, seed=1)
    assert found.shd(env.unwrapped.causal_graph) == 0
    assert found.graph["road_closure"] == ("hour", "gameday")
    assert "day" in found.ancestors["road_closure"]  # through gameday only: an ancestor, not a parent


def test_discover_campus_rejects_unknown_variables():
    with pytest.raises(ValueError, match="variables must name"):
        discover_campus(samples=50, variables=("day", "temperature"))


# --- the structural Hamming distance ----------------------------------------------------------------------


def test_shd_counts_missing_extra_and_reversed_edges_once_each():
    truth = {"a": (), "b": ("a",), "c": ("a", "b")}
    assert structural_hamming_distance(truth, truth) == 0
    assert structural_hamming_distance(truth, {"a": (), "b": ("a",), "c": ("b",)}) == 1  # a -> c missing
    assert structural_hamming_distance(truth, {"a": ("c",), "b": ("a",), "c": ("b",)}) == 1  # a -> c reversed
    assert structural_hamming_distance(truth, {"a": (), "b": (), "c": ()}) == 3
    assert structural_hamming_distance({"a": (), "b": ("a",)}, {"b": ("a",)}) == 0  # a parentless node may be left out
    assert structural_hamming_distance(truth, {"a": (), "b": ("a", "d"), "c": ("a", "b")}) == 1  # an extra node


def test_shd_is_symmetric_and_zero_on_the_env_graph():
    other = {"weather": ("semester", "day"), "crowd": ("hour",)}
    assert structural_hamming_distance(causal.CAUSAL_GRAPH, other) == structural_hamming_distance(
        other, causal.CAUSAL_GRAPH
    )
    assert structural_hamming_distance(causal.CAUSAL_GRAPH, dict(causal.CAUSAL_GRAPH)) == 0


def test_shd_rejects_malformed_graphs():
    with pytest.raises(ValueError, match="self-loop"):
        structural_hamming_distance({"a": ("a",)}, {})
    with pytest.raises(TypeError, match="sequence of names"):
        structural_hamming_distance({"b": "a"}, {})
    with pytest.raises(TypeError, match="mapping"):
        structural_hamming_distance([("a", "b")], {})


# --- the statistical tests --------------------------------------------------------------------------------


def test_p_values_match_the_chi_square_tail_by_hand():
    # with 2 degrees of freedom the chi-square tail is exp(-x / 2); 3 blocks that rank 3 treatments alike give 6
    statistic, df, p = friedman_test(np.array([[1.0, 2.0, 3.0], [0.0, 5.0, 9.0], [2.0, 3.0, 4.0]]))
    assert (statistic, df) == (6.0, 2) and p == pytest.approx(math.exp(-3.0))
    # Kruskal-Wallis on three groups with no ties, H by the textbook formula
    x = np.array([0, 0, 1, 1, 2, 2])
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    h = 12 / (6 * 7) * (3**2 / 2 + 7**2 / 2 + 11**2 / 2) - 3 * 7
    statistic, df, p = independence_test(x, y, continuous=True)
    assert statistic == pytest.approx(h) and df == 2 and p == pytest.approx(math.exp(-h / 2))
    # Pearson's chi-square on a 2x2 table [[30, 10], [10, 30]]: expected 20 everywhere, statistic 20, df 1
    x = np.repeat([0, 0, 1, 1], [30, 10, 10, 30])
    y = np.repeat([0, 1, 0, 1], [30, 10, 10, 30])
    statistic, df, p = independence_test(x, y, continuous=False)
    assert statistic == pytest.approx(20.0) and df == 1 and p == pytest.approx(math.erfc(math.sqrt(10.0)))


def test_independence_tests_hold_their_level_under_the_null():
    rng = np.random.default_rng(0)
    p_discrete = [independence_test(rng.integers(0, 4, 300), rng.integers(0, 3, 300), False)[2] for _ in range(300)]
    p_ranks = [independence_test(rng.integers(0, 4, 300), rng.normal(size=300), True)[2] for _ in range(300)]
    for p in (np.array(p_discrete), np.array(p_ranks)):
        assert 0.01 <= (p < 0.05).mean() <= 0.1


def test_a_constant_outcome_is_never_significant():
    assert independence_test(np.arange(10) % 2, np.ones(10), continuous=True)[2] == 1.0
    assert independence_test(np.arange(10) % 2, np.ones(10), continuous=False)[2] == 1.0
    assert friedman_test(np.ones((5, 3)))[2] == 1.0


def test_holm_adjusts_step_down_and_keeps_order():
    adjusted = holm([0.01, 0.04, 0.03, 0.5])
    assert adjusted.tolist() == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([]).shape == (0,)


# --- effects on outcomes ----------------------------------------------------------------------------------


def test_outcome_effects_see_crowds_block_moves():
    rows = outcome_effects({"crowd": (0.0, 1.0)}, episodes=8, max_steps=40, seed=0)
    blocked = next(r for r in rows if r.outcome == "blocked_moves")
    assert blocked.means[0] == 0.0 or blocked.means[1] > blocked.means[0]
    assert blocked.differences[0] == 0.0 and blocked.differences[1] > 0.0
    with pytest.raises(ValueError, match="weather"):
        outcome_effects({"weather": ("foggy", "sunny")}, episodes=4)


# --- counterfactual twins ---------------------------------------------------------------------------------


def test_twin_outcomes_ignore_steps_after_the_goal():
    reward = np.array([[-0.06, -0.01, 0.99, -0.06], [-0.01, -0.01, -0.01, -0.06]])
    terminated = np.array([[0, 0, 1, 0], [0, 0, 0, 0]], dtype=bool)
    out = twin_outcomes(reward, terminated)
    assert out["return"].tolist() == pytest.approx([0.92, -0.09])
    assert out["blocked_moves"].tolist() == [1.0, 1.0]
    assert out["travel_time"].tolist() == [3.0, 4.0] and out["reached"].tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="both be"):
        twin_outcomes(reward, terminated[:, :2])


def test_env_twins_are_deterministic_and_exact():
    first = env_twins({"crowd": 0.0}, {"crowd": 1.0}, episodes=6, steps=25, policy="random", seed=3)
    again = env_twins({"crowd": 0.0}, {"crowd": 1.0}, episodes=6, steps=25, policy="random", seed=3)
    for arm in ("factual", "counterfactual"):
        for k, v in getattr(first, arm).items():
            np.testing.assert_array_equal(v, getattr(again, arm)[k])
    np.testing.assert_array_equal(first.actions, again.actions)
    assert first.differences()["blocked_moves"].sum() > 0  # crowds block moves that an empty campus lets through
    # the same do() in both twins: the same noise tape and actions give the same episode
    same = env_twins({"weather": "rainy"}, {"weather": "rainy"}, episodes=6, steps=25, policy="oracle", seed=3)
    assert all(np.all(d == 0) for d in same.differences().values())


def test_env_twins_replay_given_actions_and_reject_bad_ones():
    actions = np.full((3, 5), 3, dtype=np.int64)
    twins = env_twins({}, {"gameday": True}, episodes=3, steps=5, policy=actions)
    np.testing.assert_array_equal(twins.actions, actions)
    with pytest.raises(ValueError, match="integer array"):
        env_twins({}, {}, episodes=3, steps=5, policy=np.full((3, 5), 7))
    with pytest.raises(ValueError, match="policy must be"):
        env_twins({}, {}, episodes=3, steps=5, policy="greedy")
    with pytest.raises(ValueError, match="unknown causal variable"):
        env_twins({}, {"temperature": 3}, episodes=3, steps=5)


@dataclass(frozen=True)
class _ToyConfig:
    noise: float = 0.001


class ToyCausalModel(WorldModel):
    """Imagines -0.01 a step, or a blocked move's -0.06 under do(crowd >= 0.5), plus seeded noise."""

    Config = _ToyConfig
    supports_do = True

    def initial_state(self, batch_size: int):
        return {"t": torch.zeros(batch_size)}

    def observe(self, state, action, obs, is_first):
        return {"t": torch.zeros(len(is_first))}

    def imagine(self, state, action, do=None, generator=None):
        crowded = float((do or {}).get("crowd", 0.0)) >= 0.5
        reward = torch.full_like(state["t"], -0.06 if crowded else -0.01)
        reward = reward + self.config.noise * torch.randn(reward.shape, generator=generator)
        return Imagined({"t": state["t"] + 1}, reward, torch.zeros_like(reward, dtype=torch.bool))


def _toy(env):
    return ToyCausalModel(env.observation_space, env.action_space, _ToyConfig())


def test_model_twins_differ_by_the_intervention_alone_and_are_deterministic():
    env = gym.make("CampusNav-v0", obs_mode="state")
    start, actions = np.zeros((4, 72), np.float32), np.zeros((4, 7), np.int64)
    model = _toy(env)
    twins = model_twins(model, start, actions, {"crowd": 0.0}, {"crowd": 1.0}, seed=5)
    assert twins.differences()["blocked_moves"].tolist() == [7.0] * 4
    assert twins.differences()["return"] == pytest.approx(np.full(4, -0.35), abs=0.02)
    again = model_twins(model, start, actions, {"crowd": 0.0}, {"crowd": 1.0}, seed=5)
    np.testing.assert_array_equal(twins.factual["return"], again.factual["return"])
    np.testing.assert_array_equal(twins.differences()["return"], again.differences()["return"])
    other = model_twins(model, start, actions, {"crowd": 0.0}, {"crowd": 1.0}, seed=6)
    assert not np.array_equal(twins.factual["return"], other.factual["return"])  # the seed is what fixes the noise


def test_model_twins_of_causal_vae_mdnrnn_are_deterministic():
    env = gym.make("CampusNav-v0", obs_mode="state")
    torch.manual_seed(0)
    model = model_zoo.make("causal_vae_mdnrnn", env.observation_space, env.action_space, hidden=16, mech_hidden=8,
                           vector_hidden=16)
    twins = env_twins({"gameday": False}, {"gameday": True}, episodes=3, steps=6, policy="random", seed=0)
    runs = [model_twins(model, twins.start_obs, twins.actions, twins.do_factual, twins.do_counterfactual, seed=2)
            for _ in range(2)]
    for k in runs[0].factual:
        np.testing.assert_array_equal(runs[0].factual[k], runs[1].factual[k])
        np.testing.assert_array_equal(runs[0].counterfactual[k], runs[1].counterfactual[k])
    table = compare_twins(twins, runs[0])
    assert set(table) == {"return", "blocked_moves", "travel_time", "reached"}
    assert all(math.isfinite(row["error"]) for row in table.values())


def test_model_twins_need_a_model_that_takes_interventions():
    env = gym.make("CampusNav-v0", obs_mode="state")
    model = model_zoo.make("mlp", env.observation_space, env.action_space, hidden=16)
    with pytest.raises(ValueError, match="does not take interventions.*causal_vae_mdnrnn"):
        model_twins(model, np.zeros((2, 72), np.float32), np.zeros((2, 3), np.int64), {}, {"gameday": True})


def test_compare_twins_against_itself_has_no_error_and_rejects_mismatched_pairs():
    twins = env_twins({"crowd": 0.0}, {"crowd": 1.0}, episodes=5, steps=20, policy="random", seed=1)
    table = compare_twins(twins, twins)
    assert all(row["error"] == 0.0 and row["pair_mae"] == 0.0 for row in table.values())
    assert table["blocked_moves"]["correlation"] == pytest.approx(1.0)
    other = env_twins({"crowd": 0.0}, {"crowd": 1.0}, episodes=4, steps=20, policy="random", seed=1)
    with pytest.raises(ValueError, match="same pairs"):
        compare_twins(twins, other)
