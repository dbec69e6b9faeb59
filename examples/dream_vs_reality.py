"""Dream against reality: how far a world model's imagination drifts from CampusNav-v0.

Trains a world model of the zoo (`--model`, any registered id) on freshly collected
random episodes, then replays real action sequences in reality and, open loop, in the
model's dream, both from the same real start: after filtering the first real
observation through `observe`, the model only ever `imagine`s. The actions are a random
walk or the shortest-path oracle's route (`campus_env.oracle.ShortestPathPolicy`).

`wrappers.record_side_by_side` films every rollout as [reality | dream], each step's action
and both rewards written below: images as they are (`dict`, `pixels`), state vectors drawn
as the whole campus by the env's `metadata["render_observation"]` (`--obs-mode state`).
It returns the dream's error at each horizon (MSE over the whole observation: images in
[0, 1], vector parts in their units); `wrappers.plot_error_vs_horizon` plots its mean ±
one standard deviation over `--rollouts` rollouts. `model_zoo.evaluate` scores the model on held-out
episodes (1-step and k-step errors against the "nothing changes" baseline `copy_mse`,
reward error, termination F1).

Defaults: dict observations, the oracle's actions, and a model smaller than its library
defaults so that the run is short on a laptop CPU (override any config field with
`--config "z_dim=16,hidden=64"`); `--train-steps`, `--batch-size` and `--seq-len` buy a
sharper dream.

Writes to `--out`: `data/` (replaced on a rerun), `model/`, one video per rollout
(`videos/`, MP4 with an imageio video backend, else GIF), `error_vs_horizon.png` and
`metrics.json`.

    python examples/dream_vs_reality.py
    python examples/dream_vs_reality.py --model mlp --policy random
    python examples/dream_vs_reality.py --obs-mode state --config "z_dim=16"
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

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from campus_env.oracle import ShortestPathPolicy
from campusnav.budgets import Collection, ExampleRun, Training, collect_split, config_overrides
from campusnav.results import plain
from campusnav.threads import use_threads
from wrappers import plot_error_vs_horizon, record_side_by_side
from wrappers.recorder import video_backend

ENV_ID = "CampusNav-v0"
# smaller than the library defaults, so that the default run trains in minutes on a laptop CPU
LAPTOP_CONFIG: dict[str, dict[str, Any]] = {
    "vae_mdnrnn": {"z_dim": 32, "hidden": 128, "depth": 8},
}


@dataclass(frozen=True)
class Args(ExampleRun, Training, Collection):
    """Dream against reality: a world model's open-loop imagination beside CampusNav-v0."""

    model: str = "vae_mdnrnn"
    """world model id (any of model_zoo.list_models())"""
    config: str = ""
    """model config overrides, "field=value,field=value", on top of the example's small defaults"""
    obs_mode: str = "dict"
    """observations of CampusNav-v0: "dict" (image + state + causal), "pixels" or "state" (one vector)"""
    train_steps: int = 500
    """gradient steps of the world model"""
    batch_size: int = 8
    seq_len: int = 16
    policy: str = "oracle"
    """actions replayed in both worlds: "oracle" (shortest path to the goal) or "random" (uniform)"""
    rollouts: int = 8
    """rollouts from different real starts, for the mean and spread of the error"""
    horizon: int = 30
    """steps per rollout (fewer when the real episode ends first)"""
    fps: int = 6
    """frames per second of the videos"""
    out: str = "runs/dream_vs_reality"


def parse_args(argv: list[str] | None = None) -> Args:
    """One --flag per field of Args, its docstring as the help."""
    args = tyro.cli(Args, args=argv)
    if args.model not in model_zoo.list_models():
        raise SystemExit(f"--model must be one of {', '.join(model_zoo.list_models())}, got {args.model!r}")
    if args.policy not in ("oracle", "random"):
        raise SystemExit(f"--policy must be 'oracle' or 'random', got {args.policy!r}")
    if args.tiny:
        args = dataclasses.replace(args, episodes=6, max_episode_steps=24, train_steps=3, batch_size=4, seq_len=8,
                                   rollouts=2, horizon=6)
    return args


def model_config(args: Args) -> dict[str, Any]:
    """The example's small config for ``args.model``, updated by ``--config "field=value,..."``."""
    return {**LAPTOP_CONFIG.get(args.model, {}), **config_overrides(args.config)}


def fmt_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[c]) for r in [header] + rows) for c in range(len(header))]
    line = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


if __name__ == "__main__":
    args = parse_args()
    use_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    env_kwargs = {"obs_mode": args.obs_mode}

    print(f"== collect: {args.episodes} random episodes of {ENV_ID} (obs_mode={args.obs_mode!r}, "
          f"at most {args.max_episode_steps} steps)")
    train, heldout = collect_split(ENV_ID, args, 0.125, seed=args.seed, data_path=out / "data",
                                   dataset_id="campusnav/dream-vs-reality-v0", num_envs=8, env_kwargs=env_kwargs)
    print(f"{len(train)} train / {len(heldout)} held-out episodes, {sum(len(e) for e in train)} train steps")

    config = model_config(args)
    print(f"\n== train: {args.model} {config or '(library defaults)'}, {args.train_steps} steps of "
          f"{args.batch_size} x {args.seq_len}")
    real_env = gym.make(ENV_ID, **env_kwargs)
    model = model_zoo.make(args.model, real_env.observation_space, real_env.action_space, **config)
    t0 = time.perf_counter()
    model_zoo.fit(model, train, steps=args.train_steps, seed=args.seed, **args.fit_kwargs())
    train_seconds = time.perf_counter() - t0
    model.eval()
    model.save(out / "model")
    print(f"trained in {train_seconds:.0f} s, saved to {out / 'model'}")

    context = min(8, args.seq_len // 2)
    horizons = sorted({1, min(5, args.horizon), min(15, args.horizon)})
    print(f"\n== evaluate on the {len(heldout)} held-out episodes ({context} real steps filtered, then imagined)")
    result = model_zoo.evaluate(model, heldout, horizons=horizons, context=context, seed=args.seed,
                                speed_seconds=0.2)
    columns = [k for k in result.as_dict() if k.split("@")[0] in ("obs_mse", "psnr", "copy_mse")]
    columns += ["reward_mae", "termination_f1", "imagined_steps_per_s", "parameters"]
    print(model_zoo.format_table({args.model: result}, keys=columns))

    print(f"\n== dream vs reality: {args.rollouts} rollouts of {args.horizon} {args.policy} actions")
    oracle = ShortestPathPolicy()
    rng = np.random.default_rng(args.seed)

    def oracle_actions(real_obs: Any) -> int:
        """The oracle's next move; it reads the real env (not the observation), the dream gets the same move."""
        return oracle(real_env)

    suffix = ".mp4" if video_backend() else ".gif"
    rollouts = []
    for i in range(args.rollouts):
        seed = args.seed + 10_000 + i  # starts that collection never reset to
        actions = oracle_actions if args.policy == "oracle" else rng.integers(0, real_env.action_space.n, args.horizon)
        rollouts.append(record_side_by_side(real_env, model, actions, out / "videos" / f"rollout_{i}{suffix}",
                                            seed=seed, steps=args.horizon, fps=args.fps))
        print(f"rollout {i} (seed {seed}): {rollouts[-1]['steps']} steps, final error "
              f"{rollouts[-1]['errors'][-1]:.4g} -> {rollouts[-1]['path']}")

    errors = [r["errors"] for r in rollouts]
    plot = plot_error_vs_horizon(
        {f"{args.model} ({args.policy} actions)": errors}, out / "error_vs_horizon.png",
        title=f"dream vs reality: {args.model}, {args.obs_mode} observations")
    longest = max(len(e) for e in errors)
    per_horizon = []
    for h in range(1, longest + 1):
        at = np.array([e[h - 1] for e in errors if len(e) >= h])
        per_horizon.append({"horizon": h, "mean": float(at.mean()), "std": float(at.std()), "rollouts": len(at)})
    shown = [p for p in per_horizon if p["horizon"] <= 5 or p["horizon"] % 5 == 0 or p["horizon"] == longest]
    print("\n" + fmt_table(["horizon", "obs MSE (mean ± std)", "rollouts"],
                           [[str(p["horizon"]), f"{p['mean']:.4g} ± {p['std']:.3g}", str(p["rollouts"])]
                            for p in shown]))
    real_return = np.mean([sum(r["rewards"]["real"]) for r in rollouts])
    dream_return = np.mean([sum(r["rewards"]["dream"]) for r in rollouts])
    print(f"mean return over the rollouts: real {real_return:+.3f}, dreamed {dream_return:+.3f}")

    metrics = {
        "args": dataclasses.asdict(args),
        "model": {"id": args.model, "config": config, "train_seconds": train_seconds},
        "evaluation": result.as_dict(),
        "error_vs_horizon": per_horizon,
        "rollouts": [{"path": r["path"], "steps": r["steps"], "errors": r["errors"], "rewards": r["rewards"]}
                     for r in rollouts],
        "wall_seconds": time.perf_counter() - started,
    }
    (out / "metrics.json").write_text(json.dumps(plain(metrics), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    print(f"\nwrote {out}/: data/, model/, videos/ ({len(rollouts)} {suffix} files), {plot.name}, metrics.json "
          f"in {metrics['wall_seconds']:.0f} s")
    real_env.close()
