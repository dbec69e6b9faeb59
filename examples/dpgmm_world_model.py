"""The DP-GMM world model on CampusNav-v0: how many mixture components each context asks for, where the slots look,
and what gradient balancing (RGB) changes against plain summation.

`dpgmm_vrnn` is a variational recurrent world model whose prior over the latent `z` is a
truncated Dirichlet-process Gaussian mixture: stick-breaking weights, conditioned on the
recurrent state, decide how many of its components are in use (see
`model_zoo/models/dpgmm_vrnn.py`). This script:

1. collects random episodes over the causal grid of CampusNav-v0 (every day x weather x
   gameday x semester cell of the "train" split, imposed with reset-time `do()`), so
   gamedays and every weather are well represented; an eighth is held out;
2. trains the model with RGB gradient balancing, and every `--usage-every` steps filters
   the held-out windows and measures the mixture's usage per context: the mean prior
   weights over the steps of gamedays and of normal days, and of each weather, and how
   many components carry at least `usage_threshold` (5%) of that weight;
   `mixture_usage.png` plots it over training;
3. draws the slot attention maps over held-out frames (`attention_maps.png`: a row per
   step, the frame then one 8x8 map per slot, upsampled over the frame);
4. trains the same model (same seed, same batches) with plain summation of the task
   losses and compares both on the held-out windows: each task's loss (ELBO, VQ,
   predictive, attention) and their sum, and `model_zoo.evaluate`'s table (with the
   mixture's columns).

Writes `metrics.json`, `mixture_usage.png` and `attention_maps.png` to `--out`; the
dataset goes to `--out/data` (replaced on a rerun). A few minutes per model at the
defaults on a CPU; `--tiny` for a smoke run of seconds.

    python examples/dpgmm_world_model.py
    python examples/dpgmm_world_model.py --train-steps 1000 --config "hidden=512,context_dim=256"
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import tyro

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from campus_env import causal
from campusnav.budgets import ExampleRun, GridCollection, Training
from campusnav.budgets import config_overrides as model_config
from campusnav.threads import use_threads
from model_zoo.data import SequenceSampler, collect, load_episodes, split_episodes
from model_zoo.models.dpgmm_vrnn import TASKS
from model_zoo.nets.stick_breaking import components_in_use, effective_components

ENV_ID = "CampusNav-v0"
WEATHER, GAMEDAY = (list(causal.VARIABLES).index(name) for name in ("weather", "gameday"))  # causal code columns
WEATHERS = causal.VARIABLES["weather"].choices


@dataclass(frozen=True)
class Args(ExampleRun, Training, GridCollection):
    config: str = ""
    """dpgmm_vrnn config overrides, "field=value,field=value" (e.g. "components=10,dp_alpha=0.5")"""
    max_episode_steps: int = 48
    train_steps: int = 200
    """gradient steps per model"""
    batch_size: int = 8
    seq_len: int = 16
    usage_every: int = 50
    """training steps between two measurements of the mixture usage"""
    heldout_batches: int = 4
    """batches of random held-out windows (every context) for the usage and the task losses"""
    compare: bool = True
    """also train with plain summation of the task losses, and compare"""
    out: str = "runs/dpgmm_world_model"


def parse_args(argv: list[str] | None = None) -> Args:
    """One --flag per field of Args, its docstring as the help (tyro)."""
    args = tyro.cli(Args, args=argv, description=__doc__)
    if args.tiny:
        tiny = "z_dim=4,components=4,codes=16,code_dim=8,latents=2,latent_dim=8,heads=2,context_dim=8,hidden=16,"
        tiny += "slot_dim=8,slot_iters=1,depth=4,vector_hidden=16"
        args = dataclasses.replace(args, max_episode_steps=8, train_steps=4, batch_size=2, seq_len=6, usage_every=2,
                                   heldout_batches=1, config=",".join(filter(None, [tiny, args.config])))
    return args


def usage_row(model, batches, step: int) -> dict[str, Any]:
    """Components in use (and their effective number) per context, on the held-out batches."""
    threshold = model.config.usage_threshold
    row: dict[str, Any] = {"step": step}
    for column, names in ((GAMEDAY, {0.0: "normal day", 1.0: "gameday"}),
                          (WEATHER, {float(i): w for i, w in enumerate(WEATHERS)})):
        for value, weights in model.usage_by_context(batches, column).items():
            name = names.get(value, f"{column}={value}")
            row[name] = {"in_use": int(components_in_use(weights, threshold)),
                         "effective": float(effective_components(weights)), "weights": weights.tolist()}
    return row


def plot_usage(history: list[dict[str, Any]], path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6))
    FigureCanvasAgg(fig)
    groups = (("gameday vs normal days", ("normal day", "gameday")), ("weather", WEATHERS))
    for i, (title, names) in enumerate(groups):
        ax = fig.add_subplot(1, 2, i + 1)
        for name in names:
            steps = [row["step"] for row in history if name in row]
            if steps:
                ax.plot(steps, [row[name]["effective"] for row in history if name in row], marker="o", label=name)
        ax.set(title=f"mixture usage: {title}", xlabel="training step", ylabel="effective components exp(H(pi))")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


@torch.no_grad()
def plot_attention(model, batch, path: Path, steps: int = 6) -> Path:
    """A row per step of the first held-out window: the frame, then each slot's map over it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    key = model.spec.image_keys[0]
    S, N = model.config.slots, model.num_tokens
    state, frames, maps = model.initial_state(1), [], []
    for t in range(min(steps, batch.shape[1])):
        step = batch.at(t)
        one = {k: v[:1] for k, v in step.obs.items()} if isinstance(step.obs, dict) else step.obs[:1]
        state = model.observe(state, step.action[:1], one, step.is_first[:1])
        frames.append(model.spec.parts(one)[key][0].numpy())
        maps.append(state["maps"].reshape(S, N)[:, :64].reshape(S, 8, 8).numpy())
    fig = Figure(figsize=(1.3 * (S + 1), 1.3 * len(frames)))
    FigureCanvasAgg(fig)
    for r, (frame, m) in enumerate(zip(frames, maps, strict=True)):
        ax = fig.add_subplot(len(frames), S + 1, r * (S + 1) + 1)
        ax.imshow(frame)
        ax.set_axis_off()
        ax.set_title(f"t={r}", fontsize=7)
        for s in range(S):
            ax = fig.add_subplot(len(frames), S + 1, r * (S + 1) + s + 2)
            ax.imshow(frame, alpha=0.6)
            ax.imshow(np.kron(m[s], np.ones((8, 8))), cmap="magma", alpha=0.6, vmin=0, vmax=1)
            ax.set_axis_off()
            if r == 0:
                ax.set_title(f"slot {s}", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def train(balancer: str, config: dict[str, Any], args: Args, dataset, train_eps, heldout_batches, history=None):
    torch.manual_seed(args.seed)
    model = model_zoo.make("dpgmm_vrnn", dataset.observation_space, dataset.action_space,
                           **{**config, "balancer": balancer})
    sampler = SequenceSampler(train_eps, args.seq_len, args.batch_size, seed=args.seed)

    def measure(step: int, metrics: dict[str, float]) -> None:
        if history is not None and (step % args.usage_every == 0 or step == args.train_steps):
            history.append(usage_row(model, heldout_batches, step))

    if history is not None:
        history.append(usage_row(model, heldout_batches, 0))
    started = time.perf_counter()
    model_zoo.fit(model, sampler, steps=args.train_steps, lr=args.lr, seed=args.seed, callback=measure,
                  log_every=max(args.usage_every, 1))
    return model, time.perf_counter() - started


if __name__ == "__main__":
    args = parse_args()
    use_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    shutil.rmtree(out / "data", ignore_errors=True)
    print(f"== collect: the causal grid of {ENV_ID} (train split), {args.episodes_per_cell} episode(s) per cell")
    dataset = collect(ENV_ID, coverage="grid", split="train", episodes_per_cell=args.episodes_per_cell,
                      num_envs=16, env_kwargs={"obs_mode": "dict"}, max_episode_steps=args.max_episode_steps,
                      seed=args.seed, data_path=out / "data", dataset_id="campusnav/dpgmm-grid-v0", progress=False)
    train_eps, heldout = split_episodes(load_episodes(dataset), 0.125, seed=args.seed)
    probe = SequenceSampler(heldout, args.seq_len, args.batch_size, seed=args.seed + 1)  # random windows, all contexts
    heldout_batches = [probe.sample() for _ in range(args.heldout_batches)]
    print(f"{len(train_eps)} train / {len(heldout)} held-out episodes; {len(heldout_batches)} held-out batches")

    config = model_config(args.config)
    usage_history: list[dict[str, Any]] = []
    print(f"\n== train with RGB: {args.train_steps} steps of {args.batch_size} x {args.seq_len}, config {config}")
    models, seconds = {}, {}
    models["rgb"], seconds["rgb"] = train("rgb", config, args, dataset, train_eps, heldout_batches, usage_history)
    last = usage_history[-1]
    print("components in use / effective, by context, at the end of training:")
    for name in ("normal day", "gameday", *WEATHERS):
        if name in last:
            print(f"  {name:>10}: {last[name]['in_use']:2d} in use, {last[name]['effective']:.2f} effective")
    usage_plot = plot_usage(usage_history, out / "mixture_usage.png")
    attention_plot = plot_attention(models["rgb"], heldout_batches[0], out / "attention_maps.png")

    if args.compare:
        print("\n== train with plain summation (same seed, same batches)")
        models["sum"], seconds["sum"] = train("sum", config, args, dataset, train_eps, heldout_batches)
    losses = {name: model.mean_task_losses(heldout_batches, seed=args.seed) for name, model in models.items()}
    print("\nheld-out task losses (lower is better)\n")
    names = list(models)
    print("| task | " + " | ".join(names) + " |" + (" rgb / sum |" if "sum" in names else ""))
    print("|---" * (len(names) + 1 + ("sum" in names)) + "|")
    for task in (*TASKS, "loss"):
        cells = " | ".join(f"{losses[n][task]:.4g}" for n in names)
        ratio = f" {losses['rgb'][task] / losses['sum'][task]:.3f} |" if "sum" in names else ""
        print(f"| {task if task != 'loss' else 'sum of tasks'} | {cells} |{ratio}")

    context = min(4, args.seq_len // 2)
    horizons = sorted({1, args.seq_len - context})
    results = {f"dpgmm_vrnn ({n})": model_zoo.evaluate(m.eval(), heldout, horizons=horizons, context=context,
                                                       speed_seconds=0.2, seed=args.seed) for n, m in models.items()}
    keys = [k for k in next(iter(results.values())).as_dict() if k.split("@")[0] in ("obs_mse", "psnr", "copy_mse")]
    keys += ["reward_mae", "termination_f1", "components_in_use", "components_effective", "imagined_steps_per_s"]
    print("\n" + model_zoo.format_table(results, keys=keys))

    metrics = {"args": dataclasses.asdict(args), "config": config, "train_seconds": seconds,
               "usage_history": usage_history, "heldout_task_losses": losses,
               "evaluation": {n: r.as_dict() for n, r in results.items()},
               "wall_seconds": time.perf_counter() - started}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n", encoding="utf-8")
    print(f"\nwrote {out}/: metrics.json, {usage_plot.name}, {attention_plot.name} in {metrics['wall_seconds']:.0f} s")
