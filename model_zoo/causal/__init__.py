"""Causal analysis of CampusNav-v0 and of world models: structure discovery, effects and counterfactual twins.

- ``discovery``: the causal DAG among the variables, recovered from hard
  interventions alone (after Eberhardt, Glymour & Scheines, 2005), and scored by
  structural Hamming distance; ``discover_campus`` runs it on CampusNav-v0.
- ``effects``: the total effect of every variable on the shortest-path oracle's
  travel time and blocked moves, measured on twins.
- ``twins``: counterfactual twins, the same seeds and actions under two
  interventions, in the env (exact, by replaying the noise tape) and in a world
  model that takes ``do=``, and how the two compare.
- ``walkers``: the same on many walkers (``campus_env.multi_agent``), per-walker
  rows analysed per episode: ``discover_walkers`` and ``walker_effects``.
- ``statistics``: the tests these rest on (chi-square, Kruskal-Wallis, Friedman,
  Holm's correction) and ``mean_ci``.

>>> structural_hamming_distance({"a": (), "b": ("a",)}, {"a": ("b",), "b": ()})  # one edge reversed
1
"""

from model_zoo.causal.discovery import (
    CAMPUS_GRIDS,
    CONTINUOUS,
    Discovery,
    EdgeTest,
    campus_sampler,
    discover_campus,
    discover_graph,
    edges,
    structural_hamming_distance,
)
from model_zoo.causal.effects import OutcomeEffect, outcome_effects, paired_effect
from model_zoo.causal.statistics import friedman_test, holm, independence_test, mean_ci
from model_zoo.causal.twins import Twins, compare_twins, env_twins, model_twins, twin_outcomes
from model_zoo.causal.walkers import WALKER_GRIDS, WALKER_OUTCOMES, discover_walkers, walker_effects, walker_sampler

__all__ = [
    "CAMPUS_GRIDS",
    "CONTINUOUS",
    "WALKER_GRIDS",
    "WALKER_OUTCOMES",
    "Discovery",
    "EdgeTest",
    "OutcomeEffect",
    "Twins",
    "campus_sampler",
    "compare_twins",
    "discover_campus",
    "discover_graph",
    "discover_walkers",
    "edges",
    "env_twins",
    "friedman_test",
    "holm",
    "independence_test",
    "mean_ci",
    "model_twins",
    "outcome_effects",
    "paired_effect",
    "structural_hamming_distance",
    "twin_outcomes",
    "walker_effects",
    "walker_sampler",
]
