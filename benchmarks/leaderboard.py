"""The zoo leaderboard: every registered world model on the same data, budget and tests, in one table.

For each model of ``model_zoo.list_models()`` (or ``--models``), built and trained
with its ``campusnav-state`` preset (config and learning rate):

1. CampusNav-v0: one shared dataset of random-policy episodes (``obs_mode="state"``,
   split into training and held-out episodes), ``model_zoo.fit`` with the same steps,
   batch and window length for every model, then ``model_zoo.evaluate`` on the
   held-out episodes (1- and 16-step observation error after 8 filtered steps, reward
   error, termination F1, imagined steps per second).
2. Dream-to-real transfer (``model_zoo.agents.transfer.dream_to_reality``, as in Ha &
   Schmidhuber 2018): a linear controller on the model's features trained by CMA-ES
   in the model's dream and, with the same budget, in reality, both scored in
   reality; ``transfer`` is the dream-trained controller's gain over the random
   policy divided by the reality-trained one's.
3. Interventional fidelity, for models with ``supports_do``: the mean absolute error of
   the model's effect on travel time, on counterfactual twins, over
   ``do(weather=snowy)`` and ``do(gameday=True)``. "-" for the other models.
4. CarRacing-v3 pixels: one shared dataset of random-action episodes, the same fit for
   every model, and ``model_zoo.evaluate``'s PSNR on held-out episodes.

Results go through ``campusnav.harness.write_results``: ``leaderboard.md`` (the table,
settings and PASS/MISS lines) and ``leaderboard.json`` in the docs' results folder (or
``--out``), beside ``leaderboard.csv`` and ``leaderboard.png``. Targets: ``rssm`` has
the best or second-best 16-step observation error, and the default run takes under
an hour (a scaled run prints an estimate for the default budget).

    python benchmarks/leaderboard.py                          # every model, the default budget
    python benchmarks/leaderboard.py --models mlp rssm        # a subset
    python benchmarks/leaderboard.py --quick --out /tmp/lb    # a smoke run of a minute or two
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import tyro

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from campusnav.budgets import Collection, ControllerTraining, SequenceBatches
from campusnav.harness import default_results_directory, write_results
from model_zoo.agents.controllers import LinearController, model_features
from model_zoo.agents.transfer import Evaluation, dream_to_reality, evaluate_policy, random_policy
from model_zoo.data import SequenceSampler, collect, load_episodes, split_episodes
from wrappers import DreamVectorEnv

CAMPUS = "CampusNav-v0"
PIXELS = "CarRacing-v3"
PRESET = "campusnav-state"  # CarRacing-v3 has no preset of its own: both stages train with this one
INTERVENTIONS = ({"weather": "snowy"}, {"gameday": True})


@dataclass(frozen=True)
class Args(ControllerTraining, SequenceBatches, Collection):
    """The world-model leaderboard."""

    models: list[str] = field(default_factory=list)
    """model ids (default: every registered model)"""
    episodes: int = 160
    """CampusNav-v0 random-policy episodes (15 % held out for evaluation)"""
    max_episode_steps: int = 100
    """CampusNav-v0 episode length, in the data, the dreams and reality"""
    steps: int = 1000
    """gradient steps per model on CampusNav-v0"""
    windows: int = 128
    """held-out windows model_zoo.evaluate scores"""
    twins: int = 32
    """counterfactual twin pairs per intervention (models with supports_do)"""
    pixels: bool = True
    """also train and evaluate every model on CarRacing-v3 pixels"""
    pixel_episodes: int = 24
    """CarRacing-v3 random-action episodes"""
    pixel_max_steps: int = 100
    """CarRacing-v3 episode length"""
    pixel_steps: int = 150
    """gradient steps per model on CarRacing-v3 (conv models: the most expensive stage)"""
    seed: int = 0
    """seeds data, weights, CMA-ES and evaluation"""
    out: str = ""
    """output folder (default: the docs' results folder; runs/leaderboard-quick under --quick)"""
    quick: bool = False
    """a smoke run: tiny data and budgets"""


QUICK = dict(episodes=12, max_episode_steps=40, steps=4, batch_size=4, seq_len=24, windows=8, generations=2,
             popsize=4, episodes_per_member=1, eval_episodes=4, twins=4, pixel_episodes=3, pixel_max_steps=30,
             pixel_steps=2)


def parse_args(argv: list[str] | None = None) -> Args:
    args = tyro.cli(Args, args=argv, description=__doc__)
    if unknown := [m for m in args.models if m not in model_zoo.list_models()]:
        print(f"error: argument --models: unknown {unknown}; registered: {', '.join(model_zoo.list_models())}",
              file=sys.stderr)
        raise SystemExit(2)
    if args.quick:
        args = dataclasses.replace(args, **QUICK, out=args.out or "runs/leaderboard-quick")
    return args


def train(model_id: str, train_eps, obs_space, action_space, steps: int, args: Args):
    """A fresh model of ``model_id`` fitted with the shared budget; returns it (eval mode) and the seconds."""
    torch.manual_seed(args.seed)
    model = model_zoo.make(model_id, obs_space, action_space, preset=PRESET)
    sampler = SequenceSampler(train_eps, args.seq_len, args.batch_size, seed=args.seed)
    started = time.perf_counter()
    model_zoo.fit(model, sampler, steps=steps, lr=model_zoo.registry.preset(model_id, PRESET).lr, seed=args.seed,
                  progress=False)
    seconds = time.perf_counter() - started
    model.eval()
    return model, seconds


# --- dream-to-real transfer ------------------------------------------------------------


def real_envs(args: Args):
    """CampusNav-v0's flat state vectors as a factory ``num_envs -> VectorEnv``."""
    return lambda n: gym.make_vec(CAMPUS, num_envs=n, obs_mode="state", max_episode_steps=args.max_episode_steps)


def evaluation(args: Args) -> Evaluation:
    """The seeded real episodes every controller and the random policy are scored on."""
    return Evaluation(args.eval_episodes, reset_seed=args.seed + 10_000, seed=args.seed)


def transfer(model, args: Args) -> dict[str, float]:
    """CMA-ES on the model's features in its dream and in reality (same budget), both scored in reality."""
    result = dream_to_reality(
        lambda n: DreamVectorEnv(model, n, CAMPUS, obs="features", env_kwargs={"obs_mode": "state"},
                                 max_episode_steps=args.max_episode_steps),
        real_envs(args), LinearController(model.feature_dim, model.action_space),
        dream_features=None, real_features=model_features(model),
        cmaes=args.cmaes(args.seed),
        evaluation=evaluation(args))
    return {"dream_cma_s": result.dream.seconds, "dream_ctrl_return": float(result.dream_trained.returns.mean()),
            "reality_cma_s": result.reality.seconds,
            "reality_ctrl_return": float(result.reality_trained.returns.mean()), "transfer": result.ratio}


def do_error(model, args: Args) -> float:
    """Mean |model - env| effect on travel time (steps) of the interventions, on counterfactual twins."""
    from model_zoo.causal import compare_twins, env_twins, model_twins

    errors = []
    for do in INTERVENTIONS:
        real = env_twins({}, do, episodes=args.twins, steps=args.max_episode_steps, policy="random", seed=args.seed)
        dreamt = model_twins(model, real.start_obs, real.actions, {}, do, seed=args.seed)
        errors.append(abs(compare_twins(real, dreamt)["travel_time"]["error"]))
    return float(np.mean(errors))


# --- the run ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(1)
    ids = args.models or model_zoo.list_models()
    out = Path(args.out) if args.out else default_results_directory()
    out.mkdir(parents=True, exist_ok=True)
    clock: dict[str, float] = {}
    started = time.perf_counter()
    rows: dict[str, dict[str, Any]] = {m: {"model": m} for m in ids}
    with tempfile.TemporaryDirectory() as root:
        t0 = time.perf_counter()
        data = collect(CAMPUS, num_episodes=args.episodes, num_envs=16, env_kwargs={"obs_mode": "state"},
                       max_episode_steps=args.max_episode_steps, seed=args.seed, data_path=root,
                       dataset_id="leaderboard/campus-v0", progress=False)
        train_eps, test_eps = split_episodes(load_episodes(data), 0.15, seed=args.seed)
        clock["collect_campus"] = time.perf_counter() - t0
        horizons = (1, min(16, args.seq_len - 8))
        floor = float(evaluate_policy(real_envs(args), random_policy(data.action_space, args.seed),
                                      evaluation(args)).returns.mean())
        print(f"{CAMPUS}: {len(train_eps)} training / {len(test_eps)} held-out random-policy episodes "
              f"({sum(len(e) for e in train_eps):,} steps); random policy's real return {floor:+.3f}", flush=True)
        for model_id in ids:
            model, seconds = train(model_id, train_eps, data.observation_space, data.action_space, args.steps, args)
            t0 = time.perf_counter()
            result = model_zoo.evaluate(model, test_eps, horizons=horizons, context=8, num_windows=args.windows,
                                        seed=args.seed)
            row = rows[model_id]
            row.update({k: v for k, v in result.as_dict().items()
                        if k.split("@")[0] in ("obs_mse", "copy_mse") or k in (
                            "reward_mae", "termination_f1", "imagined_steps_per_s", "parameters")})
            row["train_s"] = seconds
            clock[f"evaluate/{model_id}"] = time.perf_counter() - t0
            clock[f"train/{model_id}"] = seconds
            t0 = time.perf_counter()
            row.update(transfer(model, args))
            clock[f"transfer/{model_id}"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            row["do_error"] = do_error(model, args) if model.supports_do else None
            clock[f"fidelity/{model_id}"] = time.perf_counter() - t0
            print(f"{model_id}: trained {seconds:.0f} s, obs_mse@{horizons[-1]} {row[f'obs_mse@{horizons[-1]}']:.4g}, "
                  f"transfer {row['transfer']:.3g}", flush=True)

        if args.pixels:
            t0 = time.perf_counter()
            pixels = collect(PIXELS, num_episodes=args.pixel_episodes, num_envs=4, seed=args.seed,
                             max_episode_steps=args.pixel_max_steps, data_path=root,
                             dataset_id="leaderboard/carracing-v0", progress=False)
            pix_train, pix_test = split_episodes(load_episodes(pixels), 0.15, seed=args.seed)
            clock["collect_pixels"] = time.perf_counter() - t0
            print(f"{PIXELS}: {len(pix_train)} training / {len(pix_test)} held-out random-action episodes", flush=True)
            for model_id in ids:
                model, seconds = train(model_id, pix_train, pixels.observation_space, pixels.action_space,
                                       args.pixel_steps, args)
                result = model_zoo.evaluate(model, pix_test, horizons=horizons, context=8, num_windows=args.windows,
                                            speed_batch=0, seed=args.seed).as_dict()
                rows[model_id].update({f"car_psnr@{k}": result[f"psnr@{k}"] for k in horizons})
                rows[model_id]["car_train_s"] = seconds
                clock[f"pixels/{model_id}"] = seconds
                print(f"{model_id}: CarRacing-v3 psnr@1 {result['psnr@1']:.2f} dB, trained {seconds:.0f} s", flush=True)
    wall = time.perf_counter() - started
    return write(args, rows, horizons, floor, clock, wall, out)


def estimate_default(args: Args, clock: dict[str, float], wall: float) -> float:
    """Seconds the default budget would take, each stage scaled by its amount of work against this run's."""
    d = Args()

    def ratio(*names: str) -> float:
        return math.prod(getattr(d, n) / max(getattr(args, n), 1) for n in names)

    scale = {"collect_campus": ratio("episodes", "max_episode_steps"),
             "train": ratio("steps", "batch_size", "seq_len"),
             "evaluate": ratio("windows"),
             "transfer": ratio("generations", "popsize", "episodes_per_member", "max_episode_steps"),
             "fidelity": ratio("twins", "max_episode_steps"),
             "collect_pixels": ratio("pixel_episodes", "pixel_max_steps"),
             "pixels": ratio("pixel_steps", "batch_size", "seq_len")}
    total = sum(seconds * scale[name.split("/")[0]] for name, seconds in clock.items())
    if not args.pixels and d.pixels:  # not measured: assume the pixel stage costs what the campus training did
        total += sum(s * scale["train"] for n, s in clock.items() if n.startswith("train/"))
    overhead = wall - sum(clock.values())
    return total + overhead


def write(args: Args, rows: dict[str, dict[str, Any]], horizons: tuple[int, ...], floor: float,
          clock: dict[str, float], wall: float, out: Path) -> dict[str, Any]:
    k = horizons[-1]
    columns = ["obs_mse@1", f"obs_mse@{k}", f"copy_mse@{k}", "reward_mae", "termination_f1", "dream_ctrl_return",
               "reality_ctrl_return", "transfer", "do_error", "imagined_steps_per_s", "parameters", "train_s"]
    if args.pixels:
        columns += ["car_psnr@1", f"car_psnr@{k}", "car_train_s"]
    columns = list(dict.fromkeys(columns))  # k may be 1 in tiny runs

    def cell(key: str, value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        if key in ("parameters", "imagined_steps_per_s"):
            return f"{value:,.0f}"
        if key.endswith("_s"):
            return f"{value:.0f}"
        if "psnr" in key:
            return f"{value:.2f}"
        if key.endswith("_return"):
            return f"{value:+.3f}"
        return f"{value:.4g}"

    ranked = sorted((r for r in rows.values() if np.isfinite(r.get(f"obs_mse@{k}", np.nan))),
                    key=lambda r: r[f"obs_mse@{k}"])
    table = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    table += [f"| {r['model']} | " + " | ".join(cell(c, r.get(c)) for c in columns) + " |" for r in ranked]
    lines: list[str] = []
    if "rssm" in rows:
        place = [r["model"] for r in ranked].index("rssm") + 1
        lines.append(("PASS" if place <= 2 else "MISS") + f"  rssm's {k}-step observation error on {CAMPUS} ranks "
                     f"{place} of {len(ranked)} (target: best or second-best)")
    estimate = estimate_default(args, clock, wall)
    default_run = asdict(args) | {"out": "", "models": []} == asdict(Args()) | {"out": "", "models": []}
    budget = wall if default_run else estimate
    if args.quick:  # fixed costs (imports, first calls) dominate a smoke run: no estimate from it
        lines.append(f"(the time target is not estimated from a --quick run; this run: {wall / 60:.1f} min)")
    else:
        lines.append(("PASS" if budget < 3600 else "MISS") + f"  the whole leaderboard at the default budget "
                     f"{'took' if default_run else 'would take (estimated from this run)'} {budget / 60:.1f} min "
                     f"(target: under 60); this run: {wall / 60:.1f} min")
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s), " \
              f"{os.cpu_count()} CPUs, {platform.platform()}"
    rates = ", ".join(f"{m} {model_zoo.registry.preset(m, PRESET).lr:g}" for m in rows)
    settings = (f"{CAMPUS} (obs_mode=state): {args.episodes} random-policy episodes of at most "
                f"{args.max_episode_steps} steps, 15 % held out; {args.steps} steps x batch {args.batch_size} x "
                f"{args.seq_len} per model (the {PRESET} presets' learning rates: {rates}); evaluate: 8 filtered "
                f"steps then {k} imagined, {args.windows} windows. Transfer: CMA-ES {args.generations} generations x "
                f"{args.popsize} x {args.episodes_per_member} episodes in the dream and in reality, scored on "
                f"{args.eval_episodes} real episodes; random policy {floor:+.3f}; transfer = gain over random, "
                f"dream-trained / reality-trained. do_error: |effect error| on travel time (steps), "
                f"{args.twins} twins per intervention. "
                + (f"{PIXELS}: {args.pixel_episodes} random-action episodes of {args.pixel_max_steps} steps, "
                   f"{args.pixel_steps} steps per model." if args.pixels else ""))
    markdown = "\n".join([f"# World-model leaderboard ({time.strftime('%Y-%m-%d')}, {machine})", "", *table, "",
                          settings, "", *lines, ""])
    with open(out / "leaderboard.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["model"] + columns, extrasaction="ignore")
        writer.writeheader()
        for r in ranked:
            writer.writerow({c: r.get(c) for c in ["model"] + columns})
    plot(ranked, k, out / "leaderboard.png")
    print("\n" + "\n".join(table) + "\n\n" + settings + "\n\n" + "\n".join(lines))
    report = {"args": asdict(args), "rows": rows, "random_return": floor, "seconds": clock, "wall_seconds": wall,
              "estimated_default_seconds": estimate, "targets": lines, "machine": machine}
    write_results("leaderboard", markdown, report, directory=out)
    return report


def plot(ranked: list[dict[str, Any]], k: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["model"] for r in ranked]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    axes[0].bar(names, [r[f"obs_mse@{k}"] for r in ranked], color="tab:blue", label="model")
    axes[0].plot(names, [r[f"copy_mse@{k}"] for r in ranked], "k_", markersize=20, label="copy last frame")
    axes[0].set_title(f"{CAMPUS}: {k}-step observation MSE (lower is better)")
    axes[0].legend(fontsize=8)
    axes[1].bar(names, [np.nan_to_num(r.get("transfer", np.nan)) for r in ranked], color="tab:green")
    axes[1].axhline(1.0, color="gray", linestyle="--")
    axes[1].set_title("dream-to-real transfer (1 = as good as trained in reality)")
    for ax in axes:
        ax.tick_params(axis="x", rotation=30, labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
