"""How faithful an MLP's dream of CampusNav-v0 is, closed loop, under each of its dream options.

A controller trained in a dream learns what the dream rewards. In the mean
prediction's dream a fixed policy that walks to the goal scores far worse than
in reality (worse than standing still), so a controller trained there stands
still. This benchmark measures that gap for the ``mlp`` world model with its
options (``outcomes``, ``snap_levels``, ``input_noise``, ``rollout_steps``, see
``model_zoo.models.mlp``), all trained on one dataset with one budget:

- data: the demo's collection (``campusnav demo`` defaults: 512 episodes of
  100 steps, "state" observations, the goal-biased walk with bias 0.5);
- training: ``--steps`` gradient steps (2000, as the demo), batches of 16 windows of
  32 steps;
- the probe: the goal-biased walk with bias 1.0 (always a walkable step
  towards the goal when there is one), ``--episodes`` episodes from seeded
  real starts (drawn alike, not the same ones), run in each model's
  ``DreamVectorEnv`` (decoded observations) and in the real vector env.

The table gives, per row, the mean return, the success rate, blocked moves per
step and episode length, and the dream's return as a share of the real return
gain over standing still (1.0: the dream values the walk as reality does). It
is a benchmark, not a test: it prints, it does not fail. Measured runs:
docs/results/dream_fidelity.md.

``--pretrained`` probes the shipped weights instead (``model_zoo.load_pretrained``,
no training), ended by the env's termination function as the leaderboard's dreams
are: the dreams the leaderboard's controllers learn in. Blocked moves per step show
how often a dream charges for bumping along this walk; measured runs:
docs/results/dream_fidelity_pretrained.md.

    python benchmarks/dream_fidelity.py            # minutes (rollout_steps=16 is most of it)
    python benchmarks/dream_fidelity.py --quick    # seconds, a smoke run
    python benchmarks/dream_fidelity.py --pretrained rssm/campusnav-state-v0 vae_mdnrnn/campusnav-state-v0
"""

from __future__ import annotations

import dataclasses
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import tyro

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from campus_env.features import goal_biased_policy
from campus_env.rules import BLOCKED_REWARD, STEP_PENALTY
from campus_env.semantics import reached_goal
from campusnav.budgets import BenchmarkRun
from campusnav.harness import markdown_table, write_json, write_results
from campusnav.overrides import parse_overrides
from campusnav.threads import use_threads
from model_zoo.data import SequenceSampler, collect, load_episodes, split_episodes
from wrappers import DreamVectorEnv

ENV_ID = "CampusNav-v0"
VARIANTS = {
    "mlp (mean prediction)": "",
    "outcomes=4": "outcomes=4",
    "outcomes=4, snap_levels=64": "outcomes=4,snap_levels=64",
    "outcomes=4, snap_levels=64, input_noise=0.05": "outcomes=4,snap_levels=64,input_noise=0.05",
    "outcomes=4, snap_levels=64, rollout_steps=16 (the demo's)": "outcomes=4,snap_levels=64,rollout_steps=16",
}


@dataclasses.dataclass(frozen=True)
class Args(BenchmarkRun):
    steps: int = 2000
    """gradient steps per model (the demo's budget)"""
    collect_episodes: int = 512
    """episodes collected with the goal-biased walk (bias 0.5)"""
    episodes: int = 512
    """probe episodes, in the dream and in reality"""
    max_episode_steps: int = 100
    """episode length cap, in collection, the dream and reality"""
    threads: int = 1
    """torch threads"""
    pretrained: tuple[str, ...] = ()
    """shipped state models (model_zoo.list_pretrained()) probed as they are, instead of training the mlp variants"""


def parse_args(argv: list[str] | None = None) -> Args:
    args = tyro.cli(Args, args=argv, description=__doc__)
    if unknown := sorted(set(args.pretrained) - set(model_zoo.list_pretrained())):
        raise SystemExit(f"--pretrained: unknown {unknown}; choose from {', '.join(model_zoo.list_pretrained())}")
    if args.quick:
        args = dataclasses.replace(args, steps=100, collect_episodes=64, episodes=64)
    return args


def probe(env, episodes: int, seed: int) -> dict[str, float]:
    """Runs the goal-biased walk (bias 1.0) for one episode per env; mean return, success, blocked/step, steps."""
    policy = goal_biased_policy(1.0, seed=seed)
    obs, _ = env.reset(seed=seed)
    alive = np.ones(episodes, dtype=bool)
    returns, success = np.zeros(episodes), np.zeros(episodes, dtype=bool)
    blocked = steps = 0
    while alive.any():
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        returns += np.where(alive, reward, 0.0)
        success |= alive & terminated
        blocked += int((alive & (reward < BLOCKED_REWARD)).sum())
        steps += int(alive.sum())
        alive &= ~(terminated | truncated)
    return {"return": float(returns.mean()), "success": float(success.mean()),
            "blocked_per_step": blocked / max(steps, 1), "steps": steps / episodes}


def dream_row(model: model_zoo.WorldModel, args: Args, termination_fn: Any = None) -> dict[str, float]:
    """The walk in ``model``'s dream (decoded observations), ended by the model or by ``termination_fn``."""
    model.eval()
    dream = DreamVectorEnv(model, args.episodes, ENV_ID, obs="decoded", env_kwargs={"obs_mode": "state"},
                           max_episode_steps=args.max_episode_steps, termination_fn=termination_fn)
    try:
        return probe(dream, args.episodes, args.seed + 1)
    finally:
        dream.close()


def variant_rows(args: Args) -> dict[str, dict[str, float]]:
    """The mlp trained with each of ``VARIANTS`` on one goal-biased dataset, and its dream's walk."""
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        dataset = collect(ENV_ID, num_episodes=args.collect_episodes, num_envs=8, env_kwargs={"obs_mode": "state"},
                          policy=goal_biased_policy(0.5, seed=args.seed), max_episode_steps=args.max_episode_steps,
                          seed=args.seed, dataset_id="campusnav/fidelity-v0", data_path=Path(tmp), progress=False)
        train, _ = split_episodes(load_episodes(dataset), 0.1, seed=args.seed)
        for name, overrides in VARIANTS.items():
            torch.manual_seed(args.seed)
            model = model_zoo.make("mlp", dataset.observation_space, dataset.action_space,
                                   **parse_overrides(overrides))
            started = time.perf_counter()
            model_zoo.fit(model, SequenceSampler(train, 32, 16, seed=args.seed), steps=args.steps, lr=1e-3,
                          seed=args.seed, progress=False)
            rows[name] = {**dream_row(model, args), "train_s": time.perf_counter() - started}
    return rows


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    use_threads(args.threads)
    horizon = args.max_episode_steps
    real_env = gym.make_vec(ENV_ID, num_envs=args.episodes, obs_mode="state", max_episode_steps=horizon)
    rows = {"reality": probe(real_env, args.episodes, args.seed + 1)}
    real_env.close()
    if args.pretrained:
        rows |= {name: dream_row(model_zoo.load_pretrained(name), args, reached_goal) for name in args.pretrained}
    else:
        rows |= variant_rows(args)

    floor = -STEP_PENALTY * horizon  # standing still for a whole episode
    real_gain = rows["reality"]["return"] - floor
    for row in rows.values():
        row["share_of_real_gain"] = (row["return"] - floor) / real_gain if real_gain > 0 else float("nan")
    trained = "the shipped weights" if args.pretrained else f"{args.steps} training steps"
    print(f"\nThe goal-biased walk in each dream and in reality; {trained}, "
          f"{args.episodes} episodes; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs\n")
    table = markdown_table(
        ["where", "return", "share of the real gain over standing still", "success", "blocked/step", "steps"],
        [[name, f"{r['return']:.3f}", f"{r['share_of_real_gain']:.2f}", f"{r['success']:.2f}",
          f"{r['blocked_per_step']:.3f}", f"{r['steps']:.1f}"] for name, r in rows.items()])
    print(table)
    results = {"config": dataclasses.asdict(args) | {"json": str(args.json)}, "rows": rows}
    if args.json:
        write_json(args.json, results)
    if not args.quick:
        write_results("dream_fidelity_pretrained" if args.pretrained else "dream_fidelity", table, results)
    return results


if __name__ == "__main__":
    main()
