"""The leaderboard's declared budgets: data, training, evaluation and transfer, and the ``--quick`` smoke run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from campusnav.budgets import Collection, ControllerTraining, SequenceBatches

__all__ = ["QUICK", "Budget", "budget_of", "horizons"]


@dataclass(frozen=True)
class Budget(ControllerTraining, SequenceBatches, Collection):
    """How much of everything one (model, seed) gets; the same for every model.

    The shared groups of ``campusnav.budgets`` (data, batches, CMA-ES) with the
    leaderboard's own defaults, and the stages only the leaderboard has.
    """

    episodes: int = 400
    """CampusNav-v0 state-vector episodes from the training contexts (10 % held out)"""
    heldout_context_episodes: int = 48
    """episodes from the held-out contexts (split="heldout"), for the generalisation error"""
    max_episode_steps: int = 100
    """episode length in the data, the dreams and reality"""
    collect_bias: float = 0.5
    """probability of a walkable step towards the goal in collection, else a random action"""
    steps: int = 2000
    """gradient steps per model on state vectors"""
    curve_every: int = 100
    """steps between points of the held-out loss curve"""
    windows: int = 128
    """held-out windows model_zoo.evaluate scores"""
    fidelity_starts: int = 16
    """held-out start states of evaluate_fidelity"""
    forks: int = 64
    """forks of reality and imagined rollouts per start"""
    twins: int = 32
    """counterfactual twin pairs per intervention (models that take do())"""
    generations: int = 40
    """CMA-ES generations, in the dream and in reality alike"""
    episodes_per_member: int = 32
    """episodes that score one CMA-ES member"""
    ppo_timesteps: int = 500_000
    """env steps of SB3 PPO, in the dream and in reality alike"""
    ppo_envs: int = 16
    """envs PPO steps together"""
    eval_episodes: int = 100
    """seeded real episodes that score every policy"""
    campus_pixel_episodes: int = 48
    """CampusNav-v0 pixel episodes from the training contexts (random actions; 10 % held out)"""
    probe_frames: int = 72_000
    """real frames the semantic probe of pixels trains on"""
    probe_steps: int = 3000
    """gradient steps of the probe"""
    pixel_episodes: int = 24
    """CarRacing-v3 random-action episodes"""
    pixel_max_steps: int = 100
    """CarRacing-v3 episode length"""
    pixel_steps: int = 150
    """gradient steps per model on pixels (CampusNav-v0's and CarRacing-v3's)"""


QUICK = Budget(episodes=12, heldout_context_episodes=4, max_episode_steps=40, steps=6, batch_size=4, seq_len=20,
               curve_every=3, windows=8, fidelity_starts=2, forks=4, twins=4, generations=2, popsize=4,
               episodes_per_member=1, ppo_timesteps=256, ppo_envs=4, eval_episodes=4, campus_pixel_episodes=4,
               probe_frames=120, probe_steps=2, pixel_episodes=3,
               pixel_max_steps=30, pixel_steps=2)
"""Every stage runs, none learns: the tests' budget."""


def horizons(budget: Budget) -> tuple[int, int]:
    """The short and the long horizon of the errors: 1 and 16 (fewer when windows are short)."""
    return 1, max(1, min(16, budget.seq_len - 8))



def budget_of(args: Budget) -> Budget:
    """The plain ``Budget`` of a script's ``Args`` that extends it."""
    return Budget(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Budget)})
