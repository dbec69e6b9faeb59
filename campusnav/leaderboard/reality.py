"""What every dream is measured against, once per seed: the same controllers trained in reality, and chance.

The CMA-ES controller and PPO train in the real env with the same budgets the
dreams get; with the random policy they are scored on the seed's evaluation
episodes, the same ones every dream-trained policy of that seed plays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from campusnav.leaderboard.budget import Budget
from campusnav.leaderboard.ledger import Ledger
from campusnav.leaderboard.transfer import cmaes_controller, ppo_agent, random_baseline, real_envs
from campusnav.threads import use_threads

__all__ = ["reality_folder", "run_reality"]


def reality_folder(out: Path) -> Path:
    return Path(out) / "reality"


def run_reality(seed: int, budget: Budget, out: Path) -> dict[str, Any]:
    """The seed's random policy, reality-trained CMA-ES controller and reality-trained PPO, each recorded."""
    use_threads()  # one per process: the leaderboard runs cells side by side
    ledger = Ledger(reality_folder(out) / f"seed{seed}.json")
    ledger.run("random", lambda: random_baseline(budget, seed))
    ledger.run("cmaes", lambda: cmaes_controller(real_envs(budget), budget, seed))
    ledger.run("ppo", lambda: ppo_agent(real_envs(budget), budget, seed))
    return ledger.stages
