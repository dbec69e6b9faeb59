"""model_zoo.causal.walkers: discovery and effects on per-walker data find the edges the walkers add."""

from __future__ import annotations

import numpy as np
import pytest

from campus_env.multi_agent import parallel_env
from campus_env.multi_agent.trips import ROW_NAMES, walk_episode
from model_zoo.causal import discover_graph, discover_walkers, walker_effects
from model_zoo.causal.discovery import edges

BACKGROUND = {"weather": "rainy", "crowd": 0.3}  # rain: slips that trails ease; a held crowd: less noise


def test_rows_are_one_per_walker_and_follow_interventions():
    env = parallel_env(num_agents=6, obs_mode="state", max_cycles=25)
    rows = walk_episode(env, seed=3, do={"trail": 1.0, "walker_density": 0.5})
    assert set(rows) == set(ROW_NAMES) and all(v.shape == (6,) for v in rows.values())
    assert np.all(rows["walkers"] == 6) and np.all(rows["travel_time"] <= 25)
    assert np.all((rows["speed"] >= 0) & (rows["speed"] <= 1)) and rows["walker_density"].max() <= 0.5
    alone = walk_episode(parallel_env(num_agents=1, obs_mode="state", max_cycles=25), seed=3)
    assert alone["walker_density"][0] == 0.0  # a lone walker meets no other


def test_discovery_finds_the_walker_edges_and_no_reverse_edge():
    found = discover_walkers(36, grids={"walkers": (1, 80), "trail": (0.0, 1.0)},
                             outcomes=("crowd", "speed"), max_cycles=30, base_do=BACKGROUND)
    found_edges = edges(found.graph)
    assert {("walkers", "crowd"), ("walkers", "trail"), ("trail", "speed")} <= found_edges, found.table()
    assert found.graph["walkers"] == (), found.table()  # nothing causes the walker count
    assert ("trail", "crowd") not in found_edges, found.table()


def test_outcomes_are_observed_never_set():
    seen = []

    def sampler(do):
        seen.append(sorted(do))
        n = len(next(iter(do.values())))
        rng = np.random.default_rng(len(seen))
        x = do.get("x", rng.integers(0, 2, n))
        return {"x": x, "y": x + rng.normal(size=n)}

    found = discover_graph(sampler, {"x": (0, 1)}, continuous=("y",), outcomes=("y",), samples=300)
    assert found.graph == {"x": (), "y": ("x",)} and all(names == ["x"] for names in seen)
    with pytest.raises(ValueError, match="outcomes"):
        discover_graph(sampler, {"x": (0, 1)}, outcomes=("x",))


def test_effects_of_walkers_and_trails_have_the_right_sign():
    rows = walker_effects({"walkers": (1, 60), "trail": (0.0, 1.0)}, ("crowd", "speed"), episodes=6, walkers=40,
                          max_cycles=30, base_do=BACKGROUND)
    effect = {(r.variable, r.outcome): r for r in rows}
    assert effect["walkers", "crowd"].differences[1] > 0  # more walkers, more crowd met
    assert effect["trail", "speed"].differences[1] > 0  # a worn trail is quicker to cross in the rain
    assert all(0 <= r.p_adjusted <= 1 for r in rows)
    with pytest.raises(ValueError, match="unknown walker variables"):
        walker_effects({"footfall": (0, 1)})
