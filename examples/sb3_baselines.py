"""Stable-Baselines3 PPO and DQN on CampusNav-v0, trained in reality and trained in a world model's dream.

For each algorithm (``--algos ppo dqn``) two agents learn with the same settings and
the same number of timesteps:

- *reality*: on the native vector env, ``to_sb3(gym.make_vec("CampusNav-v0", num_envs=N, obs_mode="state"))``;
- *dream*: on ``to_sb3(DreamVectorEnv(model, N, "CampusNav-v0", obs="decoded", ...))``, where ``model``
  is a zoo world model (``--model``, default ``mlp``) fitted first on random-policy episodes.
  Decoded dreams keep the real observation space, so the policy acts in reality unchanged.

Every agent is then evaluated in reality on the same seeded episodes, beside the uniform
random policy and the shortest-path oracle (``campus_env.oracle``, which reads the
simulator: an upper reference, not a learner). The table gives mean ± std return,
success rate, episode length, training time and the real env steps each row consumed
(a dream agent's are the episodes that taught its world model). The column "return in
the dream" plays every policy in the dream too: where it is far from the real return,
the model is wrong where the policy goes, and a dream-trained agent exploits that.

Two flags make a small budget learn something:

- ``--shaping``: the potential-based shaping of Ng, Harada & Russell (1999),
  ``r + gamma * phi(s') - phi(s)`` with ``phi`` minus the Manhattan distance to the goal
  (read off the observation's goal offset, so it works in the dream too). Without it a
  young policy learns that standing still beats wandering into walls. Evaluation
  counts the env's own reward.
- ``--deterministic`` (off): a memoryless policy that always takes its most likely action
  gets stuck at the first wall; sampling, seeded, walks around it.

    python examples/sb3_baselines.py                       # PPO and DQN, minutes on a CPU
    python examples/sb3_baselines.py --algos ppo --model mlp_ensemble
    python examples/sb3_baselines.py --tiny                # the test's budget
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import tyro
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecEnv

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from campus_env.oracle import ShortestPathPolicy
from campus_env.schema import STATE_SLICES, Action
from campusnav.budgets import ExampleRun
from campusnav.overrides import parse_overrides
from campusnav.ppo import DQN_SETTINGS, PPO_SETTINGS, PotentialShaping
from model_zoo.data import SequenceSampler, collect, load_dataset, load_episodes
from wrappers import DreamVectorEnv, to_sb3

ENV_ID = "CampusNav-v0"
ENV_KWARGS = {"obs_mode": "state"}  # flat float32 (72,): agent, goal, goal offset, causal, 5x5 patch
GOAL_OFFSET = STATE_SLICES["goal_offset"]  # goal row/col minus agent row/col, divided by (map side - 1)
ALGOS = {"ppo": PPO, "dqn": DQN}
# the same settings train in reality and in the dream
HYPERPARAMS: dict[str, dict[str, Any]] = {"ppo": PPO_SETTINGS, "dqn": DQN_SETTINGS}


@dataclass(frozen=True)
class Args(ExampleRun):
    algos: tuple[str, ...] = ("ppo", "dqn")
    """SB3 algorithms to train, each in reality and in the dream: ppo, dqn"""
    model: str = "mlp"
    """the zoo world model that dreams (model_zoo.list_models())"""
    model_config: str = ""
    """overrides of the model's config, NAME=VALUE pairs separated by commas (e.g. 'outcomes=4')"""
    num_envs: int = 16
    """envs stepped together while an agent learns (real or dreamed)"""
    ppo_timesteps: int = 500_000
    """env steps each PPO agent learns from (the same in reality and in the dream)"""
    dqn_timesteps: int = 150_000
    """env steps each DQN agent learns from (the same in reality and in the dream)"""
    shaping: float = 0.05
    """potential-based shaping while learning: reward per cell of Manhattan distance closed (0: none)"""
    collect_episodes: int = 200
    """random-policy episodes collected to fit the world model"""
    model_steps: int = 2_000
    """optimizer steps fitting the world model"""
    model_batch_size: int = 16
    """sequences per batch fitting the world model"""
    model_seq_len: int = 32
    """steps per sequence fitting the world model"""
    eval_episodes: int = 100
    """seeded episodes in reality per row; every row plays the same seeds"""
    eval_seed: int = 10_000
    """evaluation episodes use seeds eval_seed, eval_seed + 1, ... (apart from training's)"""
    deterministic: bool = False
    """evaluate the agents' most likely actions instead of sampling them"""
    out: str = "runs/sb3_baselines"


def parse_args(argv: list[str] | None = None) -> Args:
    """One --flag per field of Args, its docstring as the help (tyro)."""
    args = tyro.cli(Args, args=argv, description=__doc__)
    if unknown := [a for a in args.algos if a not in ALGOS]:
        raise SystemExit(f"argument --algos: unknown {unknown}; choose from {', '.join(ALGOS)}")
    if args.model not in model_zoo.list_models():
        raise SystemExit(f"argument --model: unknown {args.model!r}; choose from {', '.join(model_zoo.list_models())}")
    return args


def tiny(args: Args) -> Args:
    """The test's budget: every stage runs, none learns much."""
    return dataclasses.replace(args, num_envs=4, ppo_timesteps=1_024, dqn_timesteps=600, collect_episodes=8,
                               model_steps=10, model_batch_size=4, model_seq_len=8, eval_episodes=8)


def learn(algo: str, venv: VecEnv, timesteps: int, args: Args) -> tuple[BaseAlgorithm, float]:
    """An SB3 agent trained on ``venv`` for ``timesteps`` env steps; returns it and the wall seconds."""
    params = dict(HYPERPARAMS[algo])
    if algo == "dqn":
        params["learning_starts"] = min(params["learning_starts"], timesteps // 2)
    if args.shaping > 0:
        venv = PotentialShaping(venv, args.shaping, params["gamma"])
    agent = ALGOS[algo]("MlpPolicy", venv, seed=args.seed, device="cpu", verbose=0, **params)
    started = time.perf_counter()
    agent.learn(total_timesteps=timesteps)
    seconds = time.perf_counter() - started
    venv.close()
    return agent, seconds


def evaluate(act, envs: gym.vector.VectorEnv, args: Args) -> dict[str, Any]:
    """Plays one seeded episode per env of ``envs`` at once: ``args.eval_episodes`` of them.

    ``act(envs, obs) -> actions`` for all envs. ``envs.reset(seed=eval_seed)``: in
    reality, env ``i`` plays the single env's seed ``eval_seed + i``; in a dream, the
    start states are real resets drawn from that seed. Only the first episode of
    each env counts (the vector env autoresets; later steps are ignored).
    """
    n = envs.num_envs
    obs, _ = envs.reset(seed=args.eval_seed)
    returns, steps = np.zeros(n), np.zeros(n, dtype=np.int64)
    success, running = np.zeros(n, dtype=bool), np.ones(n, dtype=bool)
    set_random_seed(args.seed)  # an agent's sampled actions: torch's for PPO, numpy's for DQN's epsilon-greedy
    while running.any():
        obs, reward, terminated, truncated, _ = envs.step(act(envs, obs))
        returns += np.where(running, reward, 0.0)
        steps += running
        success |= running & terminated  # terminated: the goal was reached (or so the dream says)
        running &= ~(terminated | truncated)
    envs.close()
    return {
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "success_rate": float(success.mean()),
        "mean_steps": float(steps.mean()),
        "returns": returns.tolist(),
    }


def signed(x: float) -> str:
    """+0.123, or +1.23e+05 for a number too large to read in fixed point (a model's runaway reward)."""
    return f"{x:+.3f}" if abs(x) < 1e4 else f"{x:+.3g}"


if __name__ == "__main__":
    args = parse_args()
    if args.tiny:
        args = tiny(args)
    torch.set_num_threads(1)  # small networks: one thread is the fastest on a laptop CPU
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    (out / "agents").mkdir(exist_ok=True)
    rows: list[dict[str, Any]] = []

    # 1. the world model: random-policy episodes (kept in --out, reused by a rerun), then fit
    clock = time.perf_counter()
    dataset_id = f"campusnav/sb3-random-e{args.collect_episodes}-n{args.num_envs}-s{args.seed}-v0"
    try:
        dataset = load_dataset(dataset_id, data_path=out / "data")
    except FileNotFoundError:
        dataset = collect(ENV_ID, num_episodes=args.collect_episodes, num_envs=args.num_envs, seed=args.seed,
                          env_kwargs=ENV_KWARGS, dataset_id=dataset_id, data_path=out / "data")
    episodes = load_episodes(dataset)
    data_steps = int(sum(len(e.action) for e in episodes))
    torch.manual_seed(args.seed)  # the model's initial weights
    model = model_zoo.make(args.model, dataset.observation_space, dataset.action_space,
                           **parse_overrides(args.model_config))
    sampler = SequenceSampler(episodes, args.model_seq_len, args.model_batch_size, seed=args.seed)
    history = model_zoo.fit(model, sampler, steps=args.model_steps, lr=1e-3, seed=args.seed,
                            run_dir=out / "model", resume=False)
    model.eval()
    model_seconds = time.perf_counter() - clock
    print(f"{args.model}: {len(episodes)} episodes ({data_steps} steps), {args.model_steps} fit steps, "
          f"final loss {history[-1]['loss']:.4g}, {model_seconds:.1f} s")

    # 2. the agents: each algorithm in reality and in the dream, with the same settings and budget
    agents: dict[str, BaseAlgorithm] = {}
    for algo in args.algos:
        timesteps = args.ppo_timesteps if algo == "ppo" else args.dqn_timesteps
        for where in ("reality", "dream"):
            if where == "reality":
                venv = to_sb3(gym.make_vec(ENV_ID, num_envs=args.num_envs, **ENV_KWARGS))
            else:
                venv = to_sb3(DreamVectorEnv(model, args.num_envs, ENV_ID, obs="decoded", env_kwargs=ENV_KWARGS))
            print(f"{algo} in {where}: {timesteps:,} timesteps ...", flush=True)
            agent, seconds = learn(algo, venv, timesteps, args)
            agent.save(out / "agents" / f"{algo}_{where}")
            name = f"{algo} ({where})"
            agents[name] = agent
            rows.append({"row": name, "algo": algo, "trained_in": where, "timesteps": timesteps,
                         "train_seconds": seconds, "real_env_steps": timesteps if where == "reality" else data_steps})

    # 3. evaluation in reality, the same seeds for every row; and in the dream, to see what the model promised
    oracle = ShortestPathPolicy()
    rng = np.random.default_rng(args.seed)
    policies = {
        "random": lambda envs, obs: rng.integers(0, len(Action), envs.num_envs),
        "shortest path (oracle)": lambda envs, obs: oracle(envs),  # reads the simulator: reality only
        **{name: (lambda envs, obs, a=agent: a.predict(obs, deterministic=args.deterministic)[0])
           for name, agent in agents.items()},
    }
    reference = {"algo": None, "trained_in": None, "timesteps": 0, "train_seconds": 0.0, "real_env_steps": 0}
    rows = [{"row": "random", **reference}, {"row": "shortest path (oracle)", **reference}] + rows
    for row in rows:
        act = policies[row["row"]]
        row.update(evaluate(act, gym.make_vec(ENV_ID, num_envs=args.eval_episodes, **ENV_KWARGS), args))
        if row["row"] != "shortest path (oracle)":
            dream = DreamVectorEnv(model, args.eval_episodes, ENV_ID, obs="decoded", env_kwargs=ENV_KWARGS)
            row["in_dream"] = {k: v for k, v in evaluate(act, dream, args).items() if k != "returns"}

    # 4. the table and results.json
    header = ["row", "return (mean ± std)", "success", "steps", "return in the dream", "train wall (s)",
              "real env steps"]
    cells = [[r["row"], f"{r['return_mean']:+.3f} ± {r['return_std']:.3f}", f"{r['success_rate']:.2f}",
              f"{r['mean_steps']:.1f}", signed(r["in_dream"]["return_mean"]) if "in_dream" in r else "—",
              f"{r['train_seconds']:.1f}" if r["algo"] else "—",
              f"{r['real_env_steps']:,}" if r["algo"] else "—"] for r in rows]
    widths = [max(len(c[i]) for c in [header] + cells) for i in range(len(header))]
    line = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    print()
    print(f"{ENV_ID}, evaluated in reality: {args.eval_episodes} episodes per row (seeds {args.eval_seed}.."
          f"{args.eval_seed + args.eval_episodes - 1}), {'most likely' if args.deterministic else 'sampled'} "
          f"actions, the env's own reward")
    print()
    print(line(header))
    print(line(["-" * w for w in widths]))
    for c in cells:
        print(line(c))
    print()
    shaping = f"potential-based shaping {args.shaping:g} per cell" if args.shaping > 0 else "no shaping"
    print(f"agents: {args.num_envs} envs, {shaping} while learning; dream: {args.model} fitted on "
          f"{data_steps:,} random-policy steps in {model_seconds:.1f} s (collect + fit, shared by the dream rows)")
    print("oracle: plans on the simulator's own state (an upper reference); real env steps of a dream agent: "
          "the data its world model learned from")
    print(f"return in the dream: the same policy on {args.eval_episodes} dreamed episodes of {args.model}, what the "
          "model predicts it earns; far from the real return, the model is wrong where the policy goes")
    results = {
        "env_id": ENV_ID,
        "args": dataclasses.asdict(args),
        "hyperparams": {a: HYPERPARAMS[a] for a in args.algos},
        "eval_seeds": list(range(args.eval_seed, args.eval_seed + args.eval_episodes)),
        "world_model": {"id": args.model, "episodes": len(episodes), "steps": data_steps,
                        "fit_steps": args.model_steps, "final_loss": history[-1]["loss"], "seconds": model_seconds},
        "rows": rows,
        "wall_seconds": time.perf_counter() - started,
    }
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(out / "results.json")
    print(f"wrote {out / 'results.json'}   total {results['wall_seconds']:.1f} s")
