"""Stable-Baselines3 on CampusNav-v0: agents that learn in reality, and in a dream with far fewer real steps.

For each algorithm (``--algos ppo dqn``), three agents learn with the same settings
(``campusnav.baselines.PRESETS``: the tuned PPO, the stable DQN) and are scored on the same seeded
real episodes, beside the uniform random policy and the shortest-path oracle
(``campus_env.oracle``, which reads the simulator: an upper reference, not a learner):

- *reality*: on the native vector env for ``--reality-steps`` real env steps;
- *dream*: the model-based loop (``model_zoo.agents.mbrl.run_loop``, MBPO's Dyna loop):
  collect real episodes with the current policy, fit the world model (``--model``) on all
  of them, let the same agent learn ``--dream-steps`` in the model's ``DreamVectorEnv``,
  ``--iterations`` times. Its real env steps are the transitions it collected;
- *reality, the dream's real steps*: the reality agent again, with only as many real steps
  as the dream agent used: what those steps buy without a model.

Dreams start at real replay states and end where the model says or where the env's own
termination function (``metadata["termination_fn"]``: the agent on the goal) says, as MBPO
hands its models. While learning, the reward gets ``campusnav.ppo``'s potential-based
shaping (Ng, Harada & Russell 1999), in both worlds; scores count the env's own reward.
The column "return in the dream" plays the policy in the dream too: far above the real
return, the agent exploits the model's errors.

    python examples/sb3_baselines.py                    # PPO: reality vs the loop with mlp, about 10 minutes on 2 cores
    python examples/sb3_baselines.py --algos ppo dqn --model mlp_ensemble
    python examples/sb3_baselines.py --tiny             # the test's budget
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
import tyro

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from campus_env.oracle import ShortestPathPolicy
from campus_env.semantics import reached_goal
from campusnav.baselines import ALGOS, PRESETS, Baseline, make_venv, score, train
from campusnav.budgets import ExampleRun
from campusnav.harness import Target, markdown_table
from campusnav.mbrl import model_overrides
from campusnav.threads import use_threads
from model_zoo.agents.mbrl import LoopConfig, SB3Learner, run_loop
from model_zoo.agents.transfer import Evaluation, evaluate_policy, random_policy
from wrappers import DreamVectorEnv

ENV_ID = "CampusNav-v0"
ENV_KWARGS = {"obs_mode": "state"}  # flat float32 (72,): agent, goal, goal offset, causal, 5x5 patch
SETTINGS = {"ppo": PRESETS["tuned"], "dqn": PRESETS["dqn-stable"]}
NARROW = {"mlp": {"hidden": 128}}  # on top of --model-config auto: the fits are most of the run's time


@dataclass(frozen=True)
class Args(ExampleRun):
    algos: tuple[str, ...] = ("ppo",)
    """SB3 algorithms, each learning in reality and in the dream: ppo, dqn"""
    model: str = "mlp"
    """the zoo world model that dreams (model_zoo.list_models())"""
    model_config: str = "auto"
    """overrides of the model's config, NAME=VALUE,...; auto: campusnav mbrl's for the model (MODEL_CONFIG),
    with a narrower mlp (NARROW) so that the default run fits its 10 minutes"""
    reality_steps: int = 500_000
    """real env steps the reality agent learns from"""
    iterations: int = 5
    """rounds of the loop: collect, fit, learn in the dream"""
    initial_episodes: int = 64
    """uniform-random real episodes before the first fit"""
    episodes: int = 32
    """real episodes the agent collects in each later round"""
    fit_steps: int = 2_000
    """optimizer steps fitting the model in the first round (a quarter in later rounds)"""
    seq_len: int = 17
    """steps per training window; 17 holds one whole 16-step rollout of the mlp's auto config"""
    dream_steps: int = 200_000
    """env steps the agent learns from in each round's dream"""
    fit_threads: int | None = None
    """torch threads while the world model fits (default: --threads); 2 shortens the run on an idle 2-core
    machine (the fit's matrix products share cores well) and makes it many times slower on a busy one"""
    eval_episodes: int = 100
    """seeded real episodes per row; every row plays the same seeds"""
    eval_seed: int = 10_000
    """evaluation episodes use seeds eval_seed, eval_seed + 1, ... (apart from training's)"""
    out: str = "runs/sb3_baselines"


def parse_args(argv: list[str] | None = None) -> Args:
    """One --flag per field of Args, its docstring as the help (tyro)."""
    args = tyro.cli(Args, args=argv, description=__doc__)
    if unknown := [a for a in args.algos if a not in SETTINGS]:
        raise SystemExit(f"argument --algos: unknown {unknown}; choose from {', '.join(SETTINGS)}")
    if args.model not in model_zoo.list_models():
        raise SystemExit(f"argument --model: unknown {args.model!r}; choose from {', '.join(model_zoo.list_models())}")
    return args


def tiny(args: Args) -> Args:
    """The test's budget: every stage runs, none learns much."""
    return dataclasses.replace(args, model_config="hidden=16", reality_steps=512, iterations=2, initial_episodes=4,
                               episodes=4, fit_steps=8, seq_len=8, dream_steps=256, eval_episodes=8)


def small(baseline: Baseline, args: Args) -> Baseline:
    """The baseline at the tiny budget: 4 envs and short rollouts (unchanged otherwise)."""
    if not args.tiny:
        return baseline
    return baseline.replace(num_envs=4, hyperparams={"n_steps": 64, "batch_size": 64} if baseline.algo != "dqn"
                            else {"learning_starts": 64, "batch_size": 32})


def model_config(args: Args) -> dict[str, Any]:
    """The world model's config overrides: ``--model-config``, and ``NARROW``'s on top of ``auto``."""
    config = model_overrides(args.model, args.model_config)
    return {**config, **NARROW.get(args.model, {})} if args.model_config == "auto" else config


def learn_in_the_dream(algo: str, args: Args, out: Path) -> tuple[Any, dict[str, Any]]:
    """The model-based loop with the algorithm's settings; returns the agent and the loop's last row."""
    baseline = small(SETTINGS[algo], args)
    env = gym.make(ENV_ID, **ENV_KWARGS)
    torch.manual_seed(args.seed)  # the model's initial weights
    model = model_zoo.make(args.model, env.observation_space, env.action_space, preset="campusnav-state",
                           **model_config(args))

    def dream(model, episodes, num_envs):  # dreams from real replay states, ended by the env's termination too
        return DreamVectorEnv(model, num_envs, dataset=episodes, obs="decoded", termination_fn=reached_goal)

    # the same SB3 wrappers as in reality (shaping), around each round's dream
    learner = SB3Learner(ALGOS[algo], to_vec_env=lambda envs: make_venv(baseline, lambda n: envs),
                         timesteps=args.dream_steps, num_envs=baseline.num_envs, policy=baseline.policy,
                         settings=baseline.hyperparams, seed=args.seed)
    config = LoopConfig(iterations=args.iterations, initial_episodes=args.initial_episodes, episodes=args.episodes,
                        num_envs=16, initial_fit_steps=args.fit_steps, fit_steps=args.fit_steps // 4,
                        seq_len=args.seq_len, lr=model_zoo.preset(args.model, "campusnav-state").lr,
                        evaluation=Evaluation(args.eval_episodes, args.eval_seed, args.seed), seed=args.seed,
                        fit_threads=args.fit_threads)
    result = run_loop(model, learner, ENV_ID, dream, config, env_kwargs=ENV_KWARGS, run_dir=out / f"{algo}_loop")
    return learner.agent, result.curve[-1]


def row(name: str, outcomes: Any, **extra: Any) -> dict[str, Any]:
    return {"row": name, **outcomes.summary(), "returns": outcomes.returns.tolist(), **extra}


def targets(rows: list[dict[str, Any]], algos: tuple[str, ...], wall_seconds: float) -> list[Target]:
    """Issue 24's targets of this example: for each algorithm the dream agent's success at least 0.8 of the
    reality agent's with at most a fifth of its real steps; the whole run within 10 minutes."""
    by_name, checks = {r["row"]: r for r in rows}, []
    for algo in algos:
        dream, real = by_name[f"{algo} (dream)"], by_name[f"{algo} (reality)"]
        share = dream["real_env_steps"] / real["real_env_steps"]
        ratio = dream["success_rate"] / real["success_rate"] if real["success_rate"] > 0 else None
        checks.append(Target(f"{algo}: dream success >= 0.8 x reality's with <= 1/5 of its real steps",
                             ratio if share <= 0.2 else 0.0, 0.8, f"{dream['success_rate']:.2f} vs "
                             f"{real['success_rate']:.2f} with {share:.1%} of its real steps"))
    return [*checks, Target("the run within 10 minutes", 600.0 - wall_seconds, 0.0, f"{wall_seconds / 60:.1f} min")]


def main(args: Args) -> dict[str, Any]:
    use_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    evaluation = Evaluation(args.eval_episodes, args.eval_seed, args.seed)
    real = lambda n: gym.make_vec(ENV_ID, num_envs=n, **ENV_KWARGS)  # noqa: E731
    oracle = ShortestPathPolicy()
    rows = [row("random", evaluate_policy(real, random_policy(gym.spaces.Discrete(5), args.seed), evaluation)),
            row("shortest path (oracle)", evaluate_policy(real, lambda obs, action, env: oracle(env), evaluation))]
    for algo in args.algos:
        print(f"{algo} in the dream of {args.model}: {args.iterations} rounds of {args.dream_steps:,} dream steps ...")
        clock = time.perf_counter()
        agent, last = learn_in_the_dream(algo, args, out)
        dream_row = row(f"{algo} (dream)", score(agent, small(SETTINGS[algo], args), evaluation),
                        real_env_steps=last["real_steps"], in_dream=last["in_dream"]["return_mean"],
                        train_seconds=time.perf_counter() - clock)
        rows.append(dream_row)
        for name, steps in ((f"{algo} (reality)", args.reality_steps),
                            (f"{algo} (reality, the dream's real steps)", last["real_steps"])):
            print(f"{name}: {steps:,} real steps ...")
            run = train(small(SETTINGS[algo], args), steps, args.seed, evaluation, eval_every=steps)
            rows.append(row(name, score(run.agent, small(SETTINGS[algo], args), evaluation), real_env_steps=steps,
                            train_seconds=run.seconds))
    header = ["row", "return (mean ± std)", "success", "steps", "return in the dream", "real env steps"]
    cells = [[r["row"], f"{r['return_mean']:+.3f} ± {r['return_std']:.3f}", f"{r['success_rate']:.2f}",
              f"{r['steps_mean']:.1f}", f"{r['in_dream']:+.3f}" if "in_dream" in r else "—",
              f"{r['real_env_steps']:,}" if "real_env_steps" in r else "—"] for r in rows]
    print()
    print(f"{ENV_ID}, scored in reality: {args.eval_episodes} episodes per row (seeds {args.eval_seed}.."
          f"{args.eval_seed + args.eval_episodes - 1}), sampled actions, the env's own reward")
    print()
    print(markdown_table(header, cells, "lrrrrr"))
    wall = time.perf_counter() - started
    checks = targets(rows, args.algos, wall)
    print()
    print("\n".join(check.line for check in checks))
    results = {"env_id": ENV_ID, "args": dataclasses.asdict(args), "rows": rows,
               "settings": {a: dataclasses.asdict(SETTINGS[a]) for a in args.algos},
               "eval_seeds": list(range(args.eval_seed, args.eval_seed + args.eval_episodes)),
               "targets": [check.as_dict() for check in checks], "wall_seconds": wall}
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2, default=str) + "\n")
    tmp.replace(out / "results.json")
    print(f"\nwrote {out / 'results.json'}   total {results['wall_seconds']:.1f} s")
    return results


if __name__ == "__main__":
    arguments = parse_args()
    main(tiny(arguments) if arguments.tiny else arguments)
