"""dpgmm_vrnn against the zoo on the same CampusNav-v0 data and budget; mixture usage per context; RGB vs summation
vs torchjd's ConFIG.

Collects random episodes over the causal grid of CampusNav-v0 (every day x weather x
gameday x semester cell of the "train" split, imposed with reset-time ``do()``, dict
observations), holds out 15% of them, and trains with the same steps, batch and
sequence length:

- the baselines (``mlp`` and ``vae_mdnrnn`` by default, their library defaults);
- ``dpgmm_vrnn`` with RGB gradient balancing (its default), with plain summation
  (``balancer="sum"``) and with a published balancer from a library, ``torchjd``'s ConFIG
  (``balancer="config"``; ``pip install torchjd``), the same seed and the same batches.

Prints ``model_zoo.evaluate`` on the held-out episodes (with the mixture's columns and
each model's 1-step error as a ratio to the first baseline's), then the targets as
PASS/MISS lines:

- ``dpgmm_vrnn`` is in the table beside the baselines (every column finite);
- mixture components in use differ between gamedays and normal days on the held-out
  windows: the total-variation distance between the two mean prior-weight vectors
  reaches ``--usage-tv``, or the counts of components above ``usage_threshold`` differ;
- RGB no worse than summation on the summed held-out loss (within ``--tolerance``) and
  better on at least one task's loss.

Beside the targets, per balancer: each task's held-out loss divided by summation's (same
seed), the geometric mean of those four ratios (so the ELBO's scale does not decide alone),
and the mixture-usage distance between gamedays and normal days, averaged over seeds (each
seed's values in the JSON's ``per_seed``), and which balancer has the lowest geometric mean.

With ``--seeds K`` the three dpgmm_vrnn runs repeat with training seeds ``seed`` to
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
from campusnav.threads import use_threads
from model_zoo.data import SequenceSampler, collect, load_episodes, split_episodes
from model_zoo.models.dpgmm_vrnn import TASKS
from model_zoo.nets.stick_breaking import components_in_use

GAMEDAY = list(causal.VARIABLES).index("gameday")  # the gameday column of the causal codes
BALANCED = ("dpgmm_vrnn (rgb)", "dpgmm_vrnn (sum)", "dpgmm_vrnn (config)")  # the dpgmm_vrnn runs, by balancer
SUMMED = BALANCED[1]  # the reference of the task-loss ratios


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
    threads: int = 1
    """torch threads (the outcome of a run depends on it)"""
    config: str = ""
    """dpgmm_vrnn config overrides for all of its runs, e.g. ``state_dependent_means=True,stick_weight=0.1``"""


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
    use_threads(args.threads)
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
        balanced = [(name, "dpgmm_vrnn", {**overrides, "balancer": name.split("(")[1][:-1]}) for name in BALANCED]
        for name, model_id, config in runs + balanced:
            models[name], seconds[name] = train(model_id, dataset, train_eps, args, **config)
            print(f"trained {name} in {seconds[name]:.0f} s")
        results = {}
        for name, model in models.items():
            results[name] = model_zoo.evaluate(model, test_eps, horizons=(1, 8), context=4, num_windows=256,
                                               speed_seconds=0.5, seed=args.seed)
            results[name].extra["train_seconds"] = seconds[name]
        trio = {name: models[name] for name in BALANCED}
        rgb = trio[BALANCED[0]]
        first, usage = seed_row(args.seed, trio, heldout, args)  # usage: the first seed's RGB model's, for its table
        per_seed = [first]
        for seed in range(args.seed + 1, args.seed + args.seeds):
            for name, _, config in balanced:
                trio[name], took = train("dpgmm_vrnn", dataset, train_eps, args, seed=seed, **config)
                print(f"trained {name}, seed {seed}, in {took:.0f} s")
            per_seed.append(seed_row(seed, trio, heldout, args)[0])

    reference = args.baselines[0] if args.baselines else SUMMED
    for result in results.values():
        result.extra[f"obs_mse@1 / {reference}"] = result.obs_mse[1] / results[reference].obs_mse[1]
    keys = ["obs_mse@1", "obs_mse@8", "psnr@1", "psnr@8", "copy_mse@1", f"obs_mse@1 / {reference}", "reward_mae",
            "termination_f1", "components_in_use", "components_effective", "imagined_steps_per_s", "parameters",
            "train_seconds"]
    print(f"\n{args.steps} steps x batch {args.batch_size} x {args.seq_len} steps per model, lr {args.lr}, "
          f"{args.threads} torch thread(s); evaluated on {len(test_eps)} held-out episodes (4 steps filtered, "
          "then imagined)\n")
    print(model_zoo.format_table(results, keys=keys))
    print_usage(usage, rgb.config.usage_threshold, len(heldout), args.seed)

    losses = {name: {task: sum(row["losses"][name][task] for row in per_seed) / len(per_seed)
                     for task in (*TASKS, "loss")} for name in BALANCED}
    summary = balancer_summary(per_seed)
    comparison = print_losses(losses, summary, per_seed, args.seed)
    checks = targets(results, per_seed, losses, args) + [lowest_line(summary, len(per_seed))]
    print()
    for line in checks:
        print(line)
    report = {"args": asdict(args), "results": {k: r.as_dict() for k, r in results.items()},
              "usage_by_gameday": {USAGE_NAMES.get(k, str(k)): v.tolist() for k, v in usage.items()},
              "task_losses": losses, "balancers": summary, "per_seed": per_seed, "targets": checks}
    if args.json:
        write_json(args.json, report)
    if not args.quick:
        write_results("dpgmm", f"{args.threads} torch thread(s).\n\n" + model_zoo.format_table(results, keys=keys)
                      + "\n\n" + comparison + "\n\n" + "\n".join(f"- {line}" for line in checks), report)
    return report


USAGE_NAMES = {0.0: "normal days", 1.0: "gamedays"}


def print_usage(usage: dict, threshold: float, batches: int, seed: int) -> None:
    """The mixture-usage table of the first seed's RGB model: components in use and weights per gameday value."""
    print(f"\nmixture usage of dpgmm_vrnn (rgb), seed {seed}, on {batches} held-out batches "
          "(mean prior weights per context)\n")
    print("| context | components in use (weight >= " f"{threshold:g}) | effective | weights |")
    print("|---|---|---|---|")
    for value, weights in usage.items():
        effective = math.exp(float(-(weights * weights.clamp_min(1e-12).log()).sum()))
        print(f"| {USAGE_NAMES.get(value, value)} | {int(components_in_use(weights, threshold))} | {effective:.2f} | "
              + " ".join(f"{w:.2f}" for w in weights.tolist()) + " |")


def print_losses(losses: dict, summary: dict, per_seed: list[dict], seed: int) -> str:
    """Prints the task losses per balancer, their ratios to summation and the per-seed rows; returns the
    balancer comparison table (markdown) for the results page."""
    short = [name.split("(")[1][:-1] for name in BALANCED]
    over = f"means over {len(per_seed)} training seeds" if len(per_seed) > 1 else f"seed {seed}"
    print(f"\nheld-out task losses by balancer (same data and batches; {over})\n")
    print("| task | " + " | ".join(short) + " | rgb / sum | config / sum |")
    print("|---|" + "---|" * (len(short) + 2))
    for task in (*TASKS, "loss"):
        row = [losses[name][task] for name in BALANCED]
        print(f"| {task if task != 'loss' else 'sum of tasks'} | " + " | ".join(f"{v:.4g}" for v in row)
              + f" | {row[0] / row[1]:.3f} | {row[2] / row[1]:.3f} |")
    lines = [f"Per balancer, {over}: each task's held-out loss / summation's (same seed), their geometric mean, "
             "and the total-variation distance between the mean mixture weights of gamedays and normal days.", "",
             "| balancer | " + " | ".join(f"{t} / sum" for t in TASKS) + " | geometric mean | usage distance |",
             "|---|" + "---|" * (len(TASKS) + 2)]
    for name, part in zip(BALANCED, short, strict=True):
        row = summary[name]
        lines.append(f"| {part} | " + " | ".join(f"{row['ratios'][t]:.3f}" for t in TASKS)
                     + f" | {row['geomean']:.3f} | {row['usage_tv']:.3f} |")
    print("\n" + "\n".join(lines))
    if len(per_seed) > 1:
        print("\nper training seed (sum of tasks / summation's; geometric mean of the task ratios; usage distance)\n")
        print("| seed | " + " | ".join(f"{p}: loss / sum, geo. mean, usage" for p in short) + " | rgb better on |")
        print("|---|" + "---|" * (len(short) + 1))
        for row in per_seed:
            a, b = row["losses"][BALANCED[0]], row["losses"][SUMMED]
            better = ", ".join(t for t in TASKS if a[t] < b[t]) or "none"
            cells = [f"{row['losses'][n]['loss'] / b['loss']:.3f}, {row['geomean'][n]:.3f}, "
                     f"{row['usage'][n]['tv']:.3f}" for n in BALANCED]
            print(f"| {row['seed']} | " + " | ".join(cells) + f" | {better} |")
    return "\n".join(lines)


def geometric_mean(values: list[float]) -> float:
    """exp(mean(log v)); NaN where a value is not a positive finite number (a loss ratio of mixed signs)."""
    if not values or any(not (math.isfinite(v) and v > 0) for v in values):
        return math.nan
    return math.exp(sum(math.log(v) for v in values) / len(values))


def usage_distance(model, heldout: list, threshold: float) -> dict:
    """Total-variation distance between a model's mean prior weights on gamedays and normal days, and the counts
    of components in use in each (normal, gameday); ``contexts``: how many gameday values the windows hold."""
    usage = model.usage_by_context(heldout, GAMEDAY)
    if len(usage) != 2:
        return {"contexts": len(usage), "tv": 0.0, "counts": None}
    normal, gameday = usage[0.0], usage[1.0]
    return {"contexts": 2, "tv": 0.5 * float((normal - gameday).abs().sum()),
            "counts": [int(components_in_use(normal, threshold)), int(components_in_use(gameday, threshold))]}


def seed_row(seed: int, trio: dict, heldout: list, args: Args) -> tuple[dict, dict]:
    """One training seed's held-out task losses per balancer, their ratios to summation's and those ratios'
    geometric mean, and each model's usage distance by gameday (RGB's also at the top level, for the targets);
    and the RGB model's mean prior weights per gameday value (``usage_by_context``)."""
    rgb = trio[BALANCED[0]]
    usage = rgb.usage_by_context(heldout, GAMEDAY)
    threshold = rgb.config.usage_threshold
    losses = {name: model.mean_task_losses(heldout, seed=args.seed) for name, model in trio.items()}
    ratios = {name: {t: losses[name][t] / losses[SUMMED][t] for t in (*TASKS, "loss")} for name in trio}
    distances = {name: usage_distance(model, heldout, threshold) for name, model in trio.items()}
    row = {"seed": seed, "losses": losses, "ratios": ratios,
           "geomean": {name: geometric_mean([ratios[name][t] for t in TASKS]) for name in trio},
           "usage": distances, **{k: distances[BALANCED[0]][k] for k in ("contexts", "counts")},
           "usage_tv": distances[BALANCED[0]]["tv"]}
    return row, usage


def balancer_summary(per_seed: list[dict]) -> dict:
    """Per balancer, the means over seeds of the task-loss ratios to summation, their geometric mean and the
    usage distance (each seed's values stay in ``per_seed``)."""
    n = len(per_seed)
    return {name: {"ratios": {t: sum(r["ratios"][name][t] for r in per_seed) / n for t in (*TASKS, "loss")},
                   "geomean": sum(r["geomean"][name] for r in per_seed) / n,
                   "usage_tv": sum(r["usage"][name]["tv"] for r in per_seed) / n} for name in BALANCED}


def lowest_line(summary: dict, seeds: int) -> str:
    """Which balancer has the lowest geometric mean of its task-loss ratios to summation (a finding, not a target)."""
    means = {name.split("(")[1][:-1]: row["geomean"] for name, row in summary.items()}
    finite = {k: v for k, v in means.items() if math.isfinite(v)}
    values = ", ".join(f"{k} {v:.3f}" for k, v in means.items())
    over = f" [means of {seeds} seeds]" if seeds > 1 else ""
    if not finite:
        return f"NOTE  lowest geometric mean of the task-loss ratios to summation: undefined ({values}){over}"
    best = min(finite, key=finite.get)
    return f"NOTE  lowest geometric mean of the task-loss ratios to summation: {best} ({values}){over}"


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
    rgb, summed = losses[BALANCED[0]], losses[SUMMED]
    ratio = sum(r["losses"][BALANCED[0]]["loss"] / r["losses"][SUMMED]["loss"] for r in per_seed) / len(per_seed)
    better = [t for t in TASKS if rgb[t] < summed[t]]
    check(ratio <= 1 + args.tolerance,
          f"RGB no worse than summation on the summed held-out loss: {rgb['loss']:.5g} vs {summed['loss']:.5g} "
          f"({ratio:.4f}x, tolerance {args.tolerance:g})")
    check(bool(better), f"RGB better than summation on at least one task's loss: {', '.join(better) or 'none'}")
    return lines


if __name__ == "__main__":
    main()
