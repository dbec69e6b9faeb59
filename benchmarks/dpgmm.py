"""dpgmm_vrnn against the zoo on the same CampusNav-v0 data and budget; mixture usage per context; RGB vs summation.

Collects random episodes over the causal grid of CampusNav-v0 (every day x weather x
gameday x semester cell of the "train" split, imposed with reset-time ``do()``, dict
observations), holds out 15% of them, and trains with the same steps, batch and
sequence length:

- the baselines (``mlp`` and ``vae_mdnrnn`` by default, their library defaults);
- ``dpgmm_vrnn`` with RGB gradient balancing (its default) and with plain summation
  (``balancer="sum"``), the same seed and the same batches.

Prints ``model_zoo.evaluate`` on the held-out episodes (with the mixture's columns and
each model's 1-step error as a ratio to the first baseline's), then the targets as
PASS/MISS lines:

- ``dpgmm_vrnn`` is in the table beside the baselines (every column finite);
- mixture components in use differ between gamedays and normal days on the held-out
  windows: the total-variation distance between the two mean prior-weight vectors
  reaches ``--usage-tv``, or the counts of components above ``usage_threshold`` differ;
- RGB no worse than summation on the summed held-out loss (within ``--tolerance``) and
  better on at least one task's loss.

With ``--seeds K`` the two dpgmm_vrnn runs repeat with training seeds ``seed`` to
``seed + K - 1`` (the data stay those of ``seed``) and the targets judge the means over
seeds: one seed can mislead. Measured runs: docs/results/dpgmm.md.

    python benchmarks/dpgmm.py                    # tens of minutes on a CPU
    python benchmarks/dpgmm.py --quick            # a smoke run
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace

import torch
import tyro

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from campus_env import causal
from campusnav.budgets import BenchmarkRun, GridCollection, Training
from campusnav.harness import write_json, write_results
from campusnav.overrides import parse_overrides
from model_zoo.data import SequenceSampler, collect, load_episodes, split_episodes
from model_zoo.models.dpgmm_vrnn import TASKS
from model_zoo.nets.stick_breaking import components_in_use

GAMEDAY = list(causal.VARIABLES).index("gameday")  # the gameday column of the causal codes
BALANCED = ("dpgmm_vrnn (rgb)", "dpgmm_vrnn (sum)")  # the two dpgmm_vrnn runs: RGB and summation


@dataclass(frozen=True)
class Args(BenchmarkRun, Training, GridCollection):
    episodes_per_cell: int = 2
    max_episode_steps: int = 64
    steps: int = 600
    """gradient steps per model"""
    batch_size: int = 8
    seq_len: int = 16
    baselines: list[str] = field(default_factory=lambda: ["mlp", "vae_mdnrnn"])
    """zoo models trained beside dpgmm_vrnn; the first is the ratio's reference"""
    heldout_batches: int = 8
    """batches of random held-out windows (all contexts) for the usage and the task losses"""
    usage_tv: float = 0.05
    """total-variation distance between the contexts' mixture weights that counts as "different\""""
    tolerance: float = 0.01
    """RGB's summed loss may exceed summation's by this fraction and still count as "no worse\""""
    seeds: int = 1
    """dpgmm_vrnn training seeds (seed, seed + 1, ...: weights and batches, same data); the targets judge means"""
    config: str = ""
    """dpgmm_vrnn config overrides for both of its runs, e.g. ``state_dependent_means=True,stick_weight=0.1``"""


def parse_args(argv=None) -> Args:
    args = tyro.cli(Args, args=argv, description=__doc__)
    if args.seeds < 1:
        raise SystemExit(f"--seeds must be at least 1, got {args.seeds}")
    if args.quick:
        args = replace(args, episodes_per_cell=1, max_episode_steps=16, steps=10, heldout_batches=2, batch_size=4,
                       seq_len=8)
    return args


def train(model_id: str, dataset, episodes, args: Args, seed: int | None = None, **config):
    seed = args.seed if seed is None else seed
    torch.manual_seed(seed)
    model = model_zoo.make(model_id, dataset.observation_space, dataset.action_space, **config)
    sampler = SequenceSampler(episodes, args.seq_len, args.batch_size, seed=seed)
    started = time.perf_counter()
    model_zoo.fit(model, sampler, steps=args.steps, lr=args.lr, seed=seed, progress=False)
    return model.eval(), time.perf_counter() - started


def main(argv=None) -> dict:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        dataset = collect(coverage="grid", split="train", episodes_per_cell=args.episodes_per_cell, num_envs=16,
                          env_kwargs={"obs_mode": "dict"}, max_episode_steps=args.max_episode_steps, seed=args.seed,
                          data_path=root, dataset_id="bench/dpgmm-grid-v0", progress=False)
        train_eps, test_eps = split_episodes(load_episodes(dataset), 0.15, seed=args.seed)
        print(f"data: {len(train_eps)} training, {len(test_eps)} test episodes "
              f"({sum(len(e) for e in train_eps)} training steps) in {time.perf_counter() - started:.0f} s")
        probe = SequenceSampler(test_eps, args.seq_len, args.batch_size, seed=args.seed + 1)  # windows of every context
        heldout = [probe.sample() for _ in range(args.heldout_batches)]

        models, seconds = {}, {}
        runs = [(m, m, {}) for m in args.baselines]
        overrides = parse_overrides(args.config)
        runs += [("dpgmm_vrnn (rgb)", "dpgmm_vrnn", {**overrides, "balancer": "rgb"}),
                 ("dpgmm_vrnn (sum)", "dpgmm_vrnn", {**overrides, "balancer": "sum"})]
        for name, model_id, config in runs:
            models[name], seconds[name] = train(model_id, dataset, train_eps, args, **config)
            print(f"trained {name} in {seconds[name]:.0f} s")
        results = {}
        for name, model in models.items():
            results[name] = model_zoo.evaluate(model, test_eps, horizons=(1, 8), context=4, num_windows=256,
                                               speed_seconds=0.5, seed=args.seed)
            results[name].extra["train_seconds"] = seconds[name]
        pair = {name: models[name] for name in BALANCED}
        rgb = pair[BALANCED[0]]
        first, usage = seed_row(args.seed, pair, heldout, args)  # usage: the first seed's, for its own table
        per_seed = [first]
        for seed in range(args.seed + 1, args.seed + args.seeds):
            for name, (_, _, config) in zip(BALANCED, runs[-2:], strict=True):
                pair[name], took = train("dpgmm_vrnn", dataset, train_eps, args, seed=seed, **config)
                print(f"trained {name}, seed {seed}, in {took:.0f} s")
            per_seed.append(seed_row(seed, pair, heldout, args)[0])

    reference = args.baselines[0] if args.baselines else "dpgmm_vrnn (sum)"
    for result in results.values():
        result.extra[f"obs_mse@1 / {reference}"] = result.obs_mse[1] / results[reference].obs_mse[1]
    keys = ["obs_mse@1", "obs_mse@8", "psnr@1", "psnr@8", "copy_mse@1", f"obs_mse@1 / {reference}", "reward_mae",
            "termination_f1", "components_in_use", "components_effective", "imagined_steps_per_s", "parameters",
            "train_seconds"]
    print(f"\n{args.steps} steps x batch {args.batch_size} x {args.seq_len} steps per model, lr {args.lr}; "
          f"evaluated on {len(test_eps)} held-out episodes (4 steps filtered, then imagined)\n")
    print(model_zoo.format_table(results, keys=keys))

    threshold = rgb.config.usage_threshold
    names = {0.0: "normal days", 1.0: "gamedays"}
    print(f"\nmixture usage of dpgmm_vrnn (rgb), seed {args.seed}, on {len(heldout)} held-out batches "
          "(mean prior weights per context)\n")
    print("| context | components in use (weight >= " f"{threshold:g}) | effective | weights |")
    print("|---|---|---|---|")
    for value, weights in usage.items():
        effective = math.exp(float(-(weights * weights.clamp_min(1e-12).log()).sum()))
        print(f"| {names.get(value, value)} | {int(components_in_use(weights, threshold))} | {effective:.2f} | "
              + " ".join(f"{w:.2f}" for w in weights.tolist()) + " |")

    losses = {name: {task: sum(row["losses"][name][task] for row in per_seed) / len(per_seed)
                     for task in (*TASKS, "loss")} for name in BALANCED}
    over = f"means over {len(per_seed)} training seeds" if len(per_seed) > 1 else f"seed {args.seed}"
    print(f"\nheld-out task losses, RGB vs summation (same data and batches; {over})\n")
    print("| task | rgb | sum | rgb / sum |")
    print("|---|---|---|---|")
    for task in (*TASKS, "loss"):
        a, b = losses[BALANCED[0]][task], losses[BALANCED[1]][task]
        print(f"| {task if task != 'loss' else 'sum of tasks'} | {a:.4g} | {b:.4g} | {a / b:.3f} |")
    if len(per_seed) > 1:
        print("\nper training seed\n")
        print("| seed | rgb, sum of tasks | sum, sum of tasks | rgb / sum | usage distance (rgb) | rgb better on |")
        print("|---|---|---|---|---|---|")
        for row in per_seed:
            a, b = row["losses"][BALANCED[0]], row["losses"][BALANCED[1]]
            better = ", ".join(t for t in TASKS if a[t] < b[t]) or "none"
            print(f"| {row['seed']} | {a['loss']:.5g} | {b['loss']:.5g} | {a['loss'] / b['loss']:.3f} | "
                  f"{row['usage_tv']:.3f} | {better} |")

    checks = targets(results, per_seed, losses, args)
    print()
    for line in checks:
        print(line)
    report = {"args": asdict(args), "results": {k: r.as_dict() for k, r in results.items()},
              "usage_by_gameday": {names.get(k, str(k)): v.tolist() for k, v in usage.items()},
              "task_losses": losses, "per_seed": per_seed, "targets": checks}
    if args.json:
        write_json(args.json, report)
    if not args.quick:
        write_results("dpgmm", model_zoo.format_table(results, keys=keys) + "\n\n"
                      + "\n".join(f"- {line}" for line in checks), report)
    return report


def seed_row(seed: int, pair: dict, heldout: list, args: Args) -> tuple[dict, dict]:
    """One training seed's held-out task losses per balancer and its RGB model's usage distance by gameday;
    and that model's mean prior weights per gameday value (``usage_by_context``)."""
    rgb = pair[BALANCED[0]]
    usage = rgb.usage_by_context(heldout, GAMEDAY)
    threshold = rgb.config.usage_threshold
    row = {"seed": seed, "losses": {name: model.mean_task_losses(heldout, seed=args.seed) for name, model in
                                    pair.items()}, "contexts": len(usage), "usage_tv": 0.0, "counts": None}
    if len(usage) == 2:
        normal, gameday = usage[0.0], usage[1.0]
        row["usage_tv"] = 0.5 * float((normal - gameday).abs().sum())
        row["counts"] = [int(components_in_use(normal, threshold)), int(components_in_use(gameday, threshold))]
    return row, usage


def targets(results: dict, per_seed: list[dict], losses: dict, args: Args) -> list[str]:
    """The targets as PASS/MISS lines; with several training seeds, on their means."""
    lines = []
    over = f" [means of {len(per_seed)} seeds]" if len(per_seed) > 1 else ""

    def check(ok: bool, text: str) -> None:
        lines.append(("PASS  " if ok else "MISS  ") + text + over)

    row = results[BALANCED[0]].as_dict()
    finite = all(math.isfinite(v) for v in row.values())
    others = [name for name in results if not name.startswith("dpgmm_vrnn")]
    lines.append(("PASS  " if finite else "MISS  ") + f"dpgmm_vrnn in the evaluation table beside "
                 f"{', '.join(others) or 'no baseline'} (same data and budget; every column finite: {finite})")
    if all(r["contexts"] == 2 for r in per_seed):
        tv = sum(r["usage_tv"] for r in per_seed) / len(per_seed)
        differ = all(r["counts"][0] != r["counts"][1] for r in per_seed)
        counts = "; ".join(f"{r['counts'][1]} vs {r['counts'][0]}" for r in per_seed)
        check(tv >= args.usage_tv or differ,
              f"components in use differ between gamedays and normal days: {counts} in use, "
              f"total-variation distance of the weights {tv:.3f} (>= {args.usage_tv:g} counts)")
    else:
        check(False, "components in use differ between gamedays and normal days: fewer than 2 contexts "
              "in the held-out windows")
    rgb, summed = losses[BALANCED[0]], losses[BALANCED[1]]
    ratio = sum(r["losses"][BALANCED[0]]["loss"] / r["losses"][BALANCED[1]]["loss"] for r in per_seed) / len(per_seed)
    better = [t for t in TASKS if rgb[t] < summed[t]]
    check(ratio <= 1 + args.tolerance,
          f"RGB no worse than summation on the summed held-out loss: {rgb['loss']:.5g} vs {summed['loss']:.5g} "
          f"({ratio:.4f}x, tolerance {args.tolerance:g})")
    check(bool(better), f"RGB better than summation on at least one task's loss: {', '.join(better) or 'none'}")
    return lines


if __name__ == "__main__":
    main()
