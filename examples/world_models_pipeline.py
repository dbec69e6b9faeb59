"""World Models (Ha & Schmidhuber 2018) end to end on CampusNav-v0: a controller that learns in a dream.

The pipeline of "World Models" (arXiv:1803.10122), on a campus instead of a race track:

1. collect episodes of CampusNav-v0 with the native vector env into a Minari dataset;
2. train V (a VAE) and M (an MDN-RNN) together, `model_zoo.make("vae_mdnrnn")` + `model_zoo.fit`;
3. train C, a linear controller on M's features [z, h], by CMA-ES entirely in the dream
   (`wrappers.DreamVectorEnv(obs="features")`, the whole population batched);
4. train the same controller with the same budget in reality, on the real env's
   observations filtered through the same model (`model_features`);
5. score both in reality on the same seeded episodes, beside a random policy and the
   shortest-path oracle. Steps 3-5 are `model_zoo.agents.transfer.dream_to_reality`.

Returns are mostly negative here (-0.01 a step, more for a blocked move, +1 at the
goal), where the ratio dream-trained / reality-trained return reads backwards, so each
controller's gain over the random policy, and the ratio of the gains, are printed too.

The collection policy walks toward the goal and takes a random action with probability
`--collect-epsilon`: a model that has never seen the +1 of a goal cannot dream of one
(`--collect-epsilon 1` gives the paper's random rollouts). `obs_mode="state"` (the flat
state vector) trains in about a minute; `--obs-mode dict` trains on images too (slow).

Everything is seeded from `--seed`: reruns print the same table (wall times aside).
Writes to `--out`: the dataset (`data/`, reruns replace it), the model (`model/`), the
controllers' parameters (`controller_dream.npz`, `controller_reality.npz`) and `metrics.json`.

    python examples/world_models_pipeline.py
    python examples/world_models_pipeline.py --generations 60 --popsize 32
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import tyro

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from campus_env.oracle import ShortestPathPolicy
from campus_env.schema import STATE_SLICES, Action
from campusnav.budgets import Collection, ControllerTraining, ExampleRun, Training, collect_split
from campusnav.results import plain
from campusnav.threads import use_threads
from model_zoo.agents.controllers import LinearController, model_features
from model_zoo.agents.transfer import Evaluation, dream_to_reality, evaluate_policy
from wrappers import DreamVectorEnv, LatentObservation

ENV_ID = "CampusNav-v0"


@dataclass(frozen=True)
class Args(ExampleRun, ControllerTraining, Training, Collection):
    """World Models on CampusNav-v0: a controller trained in a dream, scored in reality."""

    obs_mode: str = "state"
    """observations of CampusNav-v0 the model sees: "state" (flat vector, fast), "dict" or "pixels" (slow)"""
    episodes: int = 240
    max_episode_steps: int = 200
    collect_epsilon: float = 0.5
    """collection: probability of a random action instead of a step toward the goal (1: random rollouts)"""
    train_steps: int = 1500
    """gradient steps of V+M"""
    z_dim: int = 32
    """latent size of V"""
    hidden: int = 128
    """LSTM units of M"""
    m_target: str = "sample"
    """what M reads and predicts: V's posterior "sample" (as the paper) or "mean" (sharper one-step decodes)"""
    temperature: float = 1.0
    """sampling temperature of the dream (the paper's tau)"""
    generations: int = 40
    episodes_per_member: int = 8
    sigma0: float = 0.5
    """CMA-ES initial step size"""
    eval_episodes: int = 200
    out: str = "runs/world_models_pipeline"


def parse_args(argv: list[str] | None = None) -> Args:
    """One --flag per field of Args, its docstring as the help."""
    args = tyro.cli(Args, args=argv)
    if args.tiny:
        args = dataclasses.replace(args, episodes=8, max_episode_steps=40, train_steps=5, batch_size=4, seq_len=8,
                                   generations=2, popsize=4, episodes_per_member=1, eval_episodes=4)
    return args


def toward_goal(epsilon: float, seed: int):
    """A collection policy: a step along the larger goal offset, or with probability epsilon a random action."""
    rng = np.random.default_rng(seed)

    def policy(obs: Any) -> np.ndarray:
        state = obs.get("state") if isinstance(obs, dict) else obs
        n = len(next(iter(obs.values())) if isinstance(obs, dict) else obs)
        if state is None or np.ndim(state) != 2:  # pixels: no goal offset to read
            return rng.integers(0, len(Action), n)
        d_row, d_col = state[:, STATE_SLICES["goal_offset"]].T  # goal offset, scaled by the map size
        vertical = np.where(d_row < 0, Action.NORTH, Action.SOUTH)
        toward = np.where(np.abs(d_row) > np.abs(d_col), vertical, np.where(d_col > 0, Action.EAST, Action.WEST))
        return np.where(rng.random(n) < epsilon, rng.integers(0, len(Action), n), toward)

    return policy


if __name__ == "__main__":
    args = parse_args()
    use_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    env_kwargs = {"obs_mode": args.obs_mode}

    print(f"== 1. collect: {args.episodes} episodes of {ENV_ID} (obs_mode={args.obs_mode!r}, "
          f"epsilon={args.collect_epsilon})")
    train, heldout = collect_split(ENV_ID, args, 0.1, seed=args.seed, data_path=out / "data",
                                   dataset_id="campusnav/world-models-v0", num_envs=16, env_kwargs=env_kwargs,
                                   policy=toward_goal(args.collect_epsilon, args.seed))
    reached = np.mean([e.terminated[-1] for e in train])
    print(f"{len(train)} train / {len(heldout)} held-out episodes, {sum(len(e) for e in train)} train steps, "
          f"{reached:.0%} reach their goal")

    print(f"\n== 2. V + M: vae_mdnrnn (z_dim={args.z_dim}, hidden={args.hidden}, m_target={args.m_target!r}), "
          f"{args.train_steps} steps of {args.batch_size} x {args.seq_len}")
    real = gym.make(ENV_ID, **env_kwargs)
    model = model_zoo.make("vae_mdnrnn", real.observation_space, real.action_space, z_dim=args.z_dim,
                           hidden=args.hidden, m_target=args.m_target, temperature=args.temperature)
    t0 = time.perf_counter()
    model_zoo.fit(model, train, steps=args.train_steps, seed=args.seed, **args.fit_kwargs())
    model_seconds = time.perf_counter() - t0
    model.eval()
    model.save(out / "model")
    print(f"trained in {model_seconds:.0f} s, saved to {out / 'model'}")
    quality = model_zoo.evaluate(model, heldout, horizons=(1, min(16, args.seq_len)), context=min(8, args.seq_len),
                                 speed_batch=0, seed=args.seed)
    columns = [k for k in quality.as_dict() if k.split("@")[0] in ("obs_mse", "psnr", "copy_mse")]
    print(f"held-out episodes, {quality.context} real steps filtered, then imagined:")
    print(model_zoo.format_table({"vae_mdnrnn": quality}, keys=columns + ["reward_mae", "termination_f1"]))

    controller = LinearController(model.feature_dim, real.action_space)
    budget = f"{args.generations} generations x {args.popsize} members x {args.episodes_per_member} episodes"
    eval_seed = args.seed + 1_000_000  # episodes no generation trained on
    evaluation = Evaluation(args.eval_episodes, reset_seed=eval_seed, seed=args.seed)

    def real_envs(n: int) -> gym.vector.VectorEnv:
        return gym.make_vec(ENV_ID, num_envs=n, max_episode_steps=args.max_episode_steps, **env_kwargs)

    def dream_envs(n: int) -> gym.vector.VectorEnv:
        return DreamVectorEnv(model, n, ENV_ID, obs="features", env_kwargs=env_kwargs,
                              max_episode_steps=args.max_episode_steps, temperature=args.temperature)

    print(f"\n== 3. C in the dream: CMA-ES on {controller.num_params} parameters, {budget}")
    print(f"== 4. C in reality (the baseline): CMA-ES on the real env's features, {budget}")
    result = dream_to_reality(
        dream_envs, real_envs, controller, dream_features=None, real_features=model_features(model),
        cmaes=args.cmaes(args.seed, sigma0=args.sigma0, progress=True),
        evaluation=evaluation,
        rollout_seeds=lambda: itertools.count(args.seed + 10_000),  # generation g resets with seed + 10_000 + g
        save_dir=out)

    print(f"\n== 5. evaluation in reality: {args.eval_episodes} seeded episodes per row "
          f"(seeds {eval_seed}..{eval_seed + args.eval_episodes - 1})")
    oracle = ShortestPathPolicy()
    rows: dict[str, dict[str, Any]] = {
        "C trained in the dream": {**vars(result.dream_trained), "train_seconds": result.dream.seconds},
        "C trained in reality": {**vars(result.reality_trained), "train_seconds": result.reality.seconds},
        "random policy": vars(result.random),
        "shortest-path oracle": vars(evaluate_policy(real_envs, lambda obs, action, envs: oracle(envs), evaluation)),
    }
    dream_params = result.dream.params

    # the batched evaluation is the same as wrappers.LatentObservation on a single env, episode by episode
    controller.set_params(dream_params)
    latent = LatentObservation(gym.make(ENV_ID, max_episode_steps=args.max_episode_steps, **env_kwargs), model)
    features, _ = latent.reset(seed=eval_seed)
    single_return, done = 0.0, False
    while not done:
        features, reward, terminated, truncated, _ = latent.step(int(controller(features)))
        single_return += float(reward)
        done = terminated or truncated
    latent.close()

    header = ["policy (acting in reality)", "return (mean ± std)", "success", "steps", "train s", "eval s"]
    table = []
    for name, row in rows.items():
        table.append([
            name,
            f"{row['returns'].mean():+7.3f} ± {row['returns'].std():.3f}",
            f"{row['success'].mean():.3f}",
            f"{row['steps'].mean():6.1f}",
            f"{row['train_seconds']:.1f}" if "train_seconds" in row else "-",
            f"{row['seconds']:.1f}",
        ])
    widths = [max(len(r[c]) for r in [header] + table) for c in range(len(header))]
    line = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    print(line(header))
    print(line(["-" * w for w in widths]))
    for r in table:
        print(line(r))

    dream_return = rows["C trained in the dream"]["returns"].mean()
    reality_return = rows["C trained in reality"]["returns"].mean()
    random_return = rows["random policy"]["returns"].mean()
    ratio = dream_return / reality_return if reality_return else float("nan")
    gain_ratio = result.ratio
    print()
    print(f"dream-trained / reality-trained real return: {ratio:.3f}")
    if reality_return < 0:
        print("  (a negative return in reality: below 1 the dream-trained controller did better, above 1 worse)")
    gains = f"({dream_return - random_return:+.3f} / {reality_return - random_return:+.3f})"
    if reality_return > random_return:
        print(f"gain over the random policy, dream-trained / reality-trained: {gain_ratio:.3f} {gains}")
    else:
        print(f"gain over the random policy: the reality-trained controller has none {gains}")
    print(f"LatentObservation on one env, seed {eval_seed}: return {single_return:+.3f} "
          f"(batched episode 0: {rows['C trained in the dream']['returns'][0]:+.3f})")

    metrics = {
        "args": dataclasses.asdict(args),
        "model": {"id": "vae_mdnrnn", "train_seconds": model_seconds, **quality.as_dict()},
        "rows": {
            name: {"return_mean": float(row["returns"].mean()), "return_std": float(row["returns"].std()),
                   "success_rate": float(row["success"].mean()), "mean_steps": float(row["steps"].mean()),
                   "train_seconds": row.get("train_seconds"), "eval_seconds": row["seconds"]}
            for name, row in rows.items()
        },
        "ratio_dream_over_reality": ratio,
        "gain_ratio_over_random": gain_ratio,
        "cmaes_history": {"dream": {k: v.tolist() for k, v in result.dream.history.items()},
                          "reality": {k: v.tolist() for k, v in result.reality.history.items()}},
        "wall_seconds": time.perf_counter() - started,
    }
    (out / "metrics.json").write_text(json.dumps(plain(metrics), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    print(f"\nwrote {out}/: data/, model/, controller_dream.npz, controller_reality.npz, metrics.json "
          f"in {metrics['wall_seconds']:.0f} s")
