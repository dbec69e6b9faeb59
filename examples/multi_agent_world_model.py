"""A world model of one walker, trained alone or in a crowd, asked how long a trip takes among 500 walkers.

Two copies of the zoo's `mlp` (the same config, seed and budget) are trained:
one on single-agent CampusNav-v0 state episodes of the shortest-path oracle, one
on walker trajectories of `campus_env.multi_agent.parallel_env` (each walker's
trip one `model_zoo.data.Episode`; the walkers follow the trail-aware oracle).
Both are scored on held-out trips with `--walkers` walkers:

- `model_zoo.evaluate`: the observation error after 1 and 16 imagined steps;
- imagined travel time: from each held-out walker's first observation, the
  model imagines the walker's recorded actions until it predicts the end of the
  trip or its decoded walker stands on the goal (the env's known termination,
  ``campus_env.semantics.reached_goal``, as the dream envs take it); the error
  against the real number of steps (a trip that never arrives counts its steps,
  the imagined one its horizon).

A model that never saw other walkers does not know that they block moves and
fill cells, so its trips are too short.

    python examples/multi_agent_world_model.py                # 500 walkers (minutes)
    python examples/multi_agent_world_model.py --tiny         # seconds: a smoke run
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import tyro

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from campus_env.multi_agent import TrailOracle, parallel_env
from campus_env.oracle import ShortestPathPolicy
from campus_env.semantics import reached_goal
from campusnav.harness import markdown_table
from model_zoo.data import Episode


@dataclass(frozen=True)
class Args:
    """Single-agent vs multi-agent training data for a walker's world model."""

    walkers: int = 500
    """walkers on the campus, in the multi-agent training data and the held-out trips"""
    single_episodes: int = 1000
    """single-agent CampusNav-v0 training episodes"""
    crowd_episodes: int = 2
    """multi-agent training episodes (each gives --walkers trips)"""
    max_steps: int = 200
    """steps per episode (the cap of a trip)"""
    train_steps: int = 3000
    """optimizer steps of each model"""
    batch_size: int = 64
    """sequences per batch"""
    seq_len: int = 16
    """steps per sequence"""
    hidden: int = 256
    """width of the mlp's hidden layers"""
    seed: int = 0
    """seeds the data (held-out trips use other seeds) and the models"""
    out: str = "runs/multi_agent_world_model"
    """output folder (results.md, metrics.json)"""
    tiny: bool = False
    """a smoke run in seconds: a few walkers, a few optimizer steps"""


def parse_args(argv: list[str] | None = None) -> Args:
    args = tyro.cli(Args, args=argv, description=__doc__)
    if args.tiny:
        args = dataclasses.replace(args, walkers=8, single_episodes=16, crowd_episodes=2, max_steps=24,
                                   train_steps=6, batch_size=8, seq_len=8, hidden=32)
    if min(args.walkers, args.single_episodes, args.crowd_episodes, args.max_steps, args.train_steps) < 1:
        raise SystemExit("--walkers, --single-episodes, --crowd-episodes, --max-steps and --train-steps must be "
                         "positive")
    return args


def _episode(obs: np.ndarray, action: np.ndarray, reward: np.ndarray, end: int, arrived: bool) -> Episode:
    """One trip of ``end`` steps from arrays over time (T+1, ...) and (T,)."""
    terminated = np.zeros(end, dtype=bool)
    terminated[-1] = arrived
    return Episode(obs=obs[: end + 1].copy(), action=action[:end].copy(), reward=reward[:end].astype(np.float32),
                   terminated=terminated, truncated=~terminated & (np.arange(end) == end - 1))


def single_agent_trips(episodes: int, max_steps: int, seed: int) -> list[Episode]:
    """CampusNav-v0 episodes of the shortest-path oracle, one per sub-env of a vector env."""
    envs = gym.make_vec("CampusNav-v0", num_envs=episodes, obs_mode="state", max_episode_steps=max_steps)
    obs, _ = envs.reset(seed=seed)
    policy = ShortestPathPolicy()
    frames, actions, rewards = [obs], [], []
    ends = np.full(episodes, max_steps)
    arrived = np.zeros(episodes, dtype=bool)
    for t in range(max_steps):
        action = policy(envs)
        obs, reward, terminated, truncated, _ = envs.step(action)
        frames.append(obs)
        actions.append(action)
        rewards.append(reward)
        first = (ends == max_steps) & ~arrived & (terminated | truncated)
        ends[first] = t + 1
        arrived |= first & terminated
        if (arrived | (ends < max_steps)).all():
            break
    envs.close()
    obs, action, reward = np.stack(frames, 1), np.stack(actions, 1), np.stack(rewards, 1)
    return [_episode(obs[i], action[i], reward[i], min(ends[i], action.shape[1]), arrived[i])
            for i in range(episodes)]


def walker_trips(walkers: int, episodes: int, max_steps: int, seed: int) -> list[Episode]:
    """Every walker's trip of ``episodes`` multi-agent episodes, walkers following the trail-aware oracle."""
    env = parallel_env(num_agents=walkers, obs_mode="state", max_cycles=max_steps)
    policy, core = TrailOracle(), env.core
    trips = []
    for e in range(episodes):
        env.reset(seed=seed + e)
        dim = env.observation_space("walker_0").shape[0]
        obs = np.zeros((max_steps + 1, walkers, dim), dtype=np.float32)
        action = np.zeros((max_steps, walkers), dtype=np.int64)
        reward = np.zeros((max_steps, walkers))
        obs[0] = env.observation_batch()
        ends = np.full(walkers, max_steps)
        for t in range(max_steps):
            if not env.agents:
                break
            ids = env.agent_ids()
            act = policy.act(env)
            after, rewards, terms, _, _ = env.step(env.action_dict(act))
            action[t, ids] = act[ids]
            reward[t, ids] = list(rewards.values())
            obs[t + 1, ids] = np.stack(list(after.values()))
            done = ids[np.fromiter(terms.values(), dtype=bool, count=len(ids))]
            ends[done] = t + 1
        arrived = ends < max_steps
        arrived |= (ends == max_steps) & ~core.active  # arrived on the last step
        trips += [_episode(obs[:, i], action[:, i], reward[:, i], ends[i], arrived[i]) for i in range(walkers)]
    return trips


def imagined_travel(model: Any, trips: list[Episode], horizon: int) -> np.ndarray:
    """Steps until the imagined walker arrives, imagining each trip's recorded actions from its first observation."""
    n = len(trips)
    actions = np.zeros((n, horizon), dtype=np.int64)
    for i, trip in enumerate(trips):
        actions[i, : len(trip)] = trip.action[:horizon]
    with torch.no_grad():
        state = model.observe(model.initial_state(n), torch.zeros(n, dtype=torch.long),
                              torch.as_tensor(np.stack([trip.obs[0] for trip in trips])), torch.ones(n, dtype=bool))
        steps = np.full(n, float(horizon))
        alive = np.ones(n, dtype=bool)
        for t in range(horizon):
            state, _, terminated = model.imagine(state, torch.as_tensor(actions[:, t]))
            ended = alive & (terminated.numpy() | reached_goal(model.decode(state).numpy()))
            steps[ended] = t + 1
            alive &= ~ended
    return steps


def score(model: Any, heldout: list[Episode], horizon: int) -> dict[str, float]:
    real = np.array([len(trip) for trip in heldout], dtype=np.float64)
    imagined = imagined_travel(model, heldout, horizon)
    long_enough = [trip for trip in heldout if len(trip) >= 20]
    errors = model_zoo.evaluate(model, long_enough or heldout, horizons=(1, 16) if long_enough else (1,),
                                context=2, speed_batch=0).as_dict()
    return {"real_travel": float(real.mean()), "imagined_travel": float(imagined.mean()),
            "travel_abs_error": float(np.abs(imagined - real).mean()),
            **{k: float(v) for k, v in errors.items() if k.startswith("obs_mse@")}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    data = {"single-agent (CampusNav-v0)": single_agent_trips(args.single_episodes, args.max_steps, args.seed),
            f"multi-agent ({args.walkers} walkers)": walker_trips(args.walkers, args.crowd_episodes, args.max_steps,
                                                                   args.seed)}
    heldout = walker_trips(args.walkers, 1, args.max_steps, args.seed + 10_000)
    space = parallel_env(num_agents=1, obs_mode="state").observation_space("walker_0")
    results = {}
    for name, trips in data.items():
        model = model_zoo.make("mlp", space, gym.spaces.Discrete(5), hidden=args.hidden)
        model_zoo.fit(model, trips, steps=args.train_steps, batch_size=args.batch_size,
                      seq_len=args.seq_len, seed=args.seed, progress=False)  # windows may span trips
        results[name] = {"trips": len(trips), "steps": sum(len(t) for t in trips),
                         **score(model.eval(), heldout, args.max_steps)}
        print(f"{name}: {results[name]}")
    columns = ["real_travel", "imagined_travel", "travel_abs_error", "obs_mse@1", "obs_mse@16"]
    table = markdown_table(["training data", "trips", *columns],
                           [[name, r["trips"], *(f"{r[c]:.3g}" if c in r else "-" for c in columns)]
                            for name, r in results.items()], align="l" + "r" * (len(columns) + 1))
    print(f"\nHeld-out trips among {args.walkers} walkers ({len(heldout)} trips):\n\n{table}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(f"# World models of a walker in a crowd\n\n{table}\n", encoding="utf-8")
    (out / "metrics.json").write_text(json.dumps({"args": dataclasses.asdict(args), "results": results}, indent=2),
                                      encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
