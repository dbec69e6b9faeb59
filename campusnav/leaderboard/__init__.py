"""Leaderboard v2: every world model on the same data, scored against the simulator's own distribution.

``python benchmarks/leaderboard.py`` runs it; this package holds its parts.

- ``budget``: the declared budgets (one per stage), and the ``--quick`` one.
- ``data``: the shared datasets, collected once into the output folder: CampusNav-v0
  state vectors from the training contexts (episodes held out; held-out contexts
  apart), and CarRacing-v3 pixels as the foreign env.
- ``cell``: one (model, seed): train with a held-out loss curve, then the errors
  (``model_zoo.evaluate``), fidelity (``model_zoo.evaluate_fidelity``), the
  interventional error, and transfer with controllers that navigate: the
  action-scoring CMA-ES controller of ``campusnav demo`` and SB3 PPO, each trained
  in the dream and scored in reality. Each stage's result is written when it ends,
  so a run that dies resumes at the stage it was in.
- ``reality``: what the dream is compared with, once per seed: the same
  controllers trained in reality with the same budgets, and the random policy.
- ``summary``: means over seeds with bootstrap confidence intervals, ranks with
  their uncertainty, the table, the plots and the targets.

Transfer follows Ha & Schmidhuber, "World Models" (arXiv:1803.10122); fidelity
compares imagined with real samples as precision and recall do in Sajjadi et al.
(NeurIPS 2018); intervals are percentile bootstraps over seeds, as Agarwal et al.,
"Deep RL at the Edge of the Statistical Precipice" (NeurIPS 2021) recommend for
few runs.
"""

from campusnav.leaderboard.budget import QUICK, Budget

__all__ = ["QUICK", "Budget"]
