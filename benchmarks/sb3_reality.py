"""Strong reality baselines of Stable-Baselines3 on CampusNav-v0: a sweep of PPO settings, then a reference curve.

Every agent learns on the native vector env with ``campusnav.baselines.train``
(PPO of Schulman et al. 2017, DQN of Mnih et al. 2015, the potential-based shaping
of Ng et al. 1999 while learning) and is scored on the same seeded real episodes
every ``--eval-every`` env steps, with the env's own reward: the learning curve.

- ``--sweep``: the candidate settings (``campusnav.baselines.SWEEP``: larger
  rollouts, more epochs, a decaying learning rate, more envs and a wider net, no
  entropy bonus, frame stacking) at one fixed budget, ``--sweep-seeds`` seeds; each
  row: success and return at the budget, the steps to reach 0.5 and 0.9 success,
  the training wall time. The winner by success at the budget becomes the ``tuned`` preset.
  Results: ``sb3_sweep.{md,json}``.
- the reference run (default): the presets of ``--presets`` (``tuned`` PPO; DQN
  with the settings of ``examples/sb3_baselines.py`` and with steadier ones)
  trained to convergence, ``--seeds`` seeds each: their learning curves (real
  return and success against real env steps) are the reference for the sample
  efficiency of model-based learners. Results: ``sb3_reality.{md,json,png}``.

Every run keeps its agent at each curve point in ``--work`` (``campusnav.baselines.CurveCheckpoint``,
no pickle): the same command run again goes on with a killed run from its last point and
returns finished ones as they were.

Target (PASS/MISS): tuned PPO's success rate at the end of training >= 0.90 (``--judge``).
``--merge`` keeps the rows of presets this run does not train from the reference results
in ``--out`` (scored on the same episodes), so a preset can be added or re-run alone.

    python benchmarks/sb3_reality.py --sweep     # the sweep, tens of minutes on one CPU thread
    python benchmarks/sb3_reality.py             # the reference run, about a quarter of an hour
    python benchmarks/sb3_reality.py --quick     # both at a tiny budget (seconds), into runs/
    python benchmarks/sb3_reality.py --presets recurrent pixels-cnn --steps 1500000 --merge  # add two curves
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tyro

from campusnav.baselines import PRESETS, SWEEP, Baseline, Evaluation, TrainedBaseline, steps_to, train
from campusnav.budgets import BenchmarkRun
from campusnav.harness import (
    Target,
    default_results_directory,
    earlier_results,
    markdown_table,
    write_json,
    write_results,
)
from campusnav.threads import use_threads

TARGET = 0.90
MILESTONES = (0.5, 0.8, 0.9, 0.95)


@dataclass(frozen=True)
class Args(BenchmarkRun):
    """SB3 baselines in reality: the sweep or the reference run."""

    sweep: bool = False
    """run the sweep of PPO settings instead of the reference run"""
    candidates: tuple[str, ...] = SWEEP
    """presets the sweep compares (campusnav.baselines.PRESETS)"""
    sweep_steps: int = 500_000
    """real env steps of each sweep candidate"""
    sweep_seeds: int = 2
    """seeds seed .. seed + sweep_seeds - 1 of each sweep candidate"""
    presets: tuple[str, ...] = ("tuned", "dqn", "dqn-stable")
    """presets of the reference run"""
    judge: str = "tuned"
    """the preset whose success at the end of training the target judges"""
    merge: bool = False
    """keep the rows of presets not in --presets from the reference results in --out (same evaluation)"""
    steps: int = 4_000_000
    """real env steps of each PPO-family agent of the reference run"""
    dqn_steps: int = 1_000_000
    """real env steps of each DQN agent of the reference run"""
    seeds: int = 1
    """seeds seed .. seed + seeds - 1 of each reference preset"""
    eval_every: int = 50_000
    """env steps between two points of a learning curve"""
    eval_episodes: int = 100
    """seeded real episodes per curve point; every point and every agent plays the same ones"""
    eval_seed: int = 10_000
    """the evaluation episodes reset with seeds eval_seed, eval_seed + 1, ... (apart from training's)"""
    out: str = ""
    """results folder (default: the docs' results folder; runs/sb3-reality-quick under --quick)"""
    work: str = "runs/sb3-reality"
    """where every run keeps its agent at each curve point: a rerun resumes a killed run and returns a finished one"""


def parse_args(argv: list[str] | None = None) -> Args:
    args = tyro.cli(Args, args=argv, description=__doc__)
    if unknown := [name for name in (*args.candidates, *args.presets, args.judge) if name not in PRESETS]:
        raise SystemExit(f"unknown presets {unknown}; choose from {', '.join(PRESETS)}")
    if args.quick:
        args = dataclasses.replace(args, sweep_steps=512, sweep_seeds=1, steps=512, dqn_steps=512, eval_every=256,
                                   eval_episodes=8, out=args.out or "runs/sb3-reality-quick",
                                   work=str(Path(args.work) / "quick"))
    return args


def tiny(baseline: Baseline) -> Baseline:
    """The smoke run's version of a preset: 4 envs, short rollouts, a small replay buffer."""
    if baseline.algo == "dqn":
        return baseline.replace(num_envs=4, hyperparams=dict(learning_starts=64, buffer_size=1_000, batch_size=32))
    return baseline.replace(num_envs=4, hyperparams=dict(n_steps=32, batch_size=64))


def describe(baseline: Baseline) -> str:
    """What a preset changes from ``default``, e.g. ``n_epochs=10, batch_size=256``."""
    default = PRESETS["default"]
    changes = [f"{k}={v}" for k, v in baseline.hyperparams.items() if default.hyperparams.get(k) != v]
    changes += [f"{f.name}={getattr(baseline, f.name)}" for f in dataclasses.fields(Baseline)
                if f.name != "hyperparams" and getattr(baseline, f.name) != getattr(default, f.name)]
    return ", ".join(changes) or "PPO_SETTINGS, 16 envs, shaping 0.05"


def run(args: Args, name: str, steps: int, seed: int) -> tuple[Baseline, TrainedBaseline]:
    baseline = tiny(PRESETS[name]) if args.quick else PRESETS[name]
    evaluation = Evaluation(args.eval_episodes, args.eval_seed, seed=seed)
    print(f"{name} (seed {seed}): {steps:,} steps; {describe(baseline)}", flush=True)
    trained = train(baseline, steps, seed, evaluation, args.eval_every,
                    progress=lambda line: print(f"  {name}: {line}", flush=True),
                    checkpoint=Path(args.work) / f"{name}-{steps}" / f"seed{seed}")
    return baseline, trained


def row_of(name: str, seed: int, baseline: Baseline, trained: TrainedBaseline) -> dict[str, Any]:
    curve = trained.curve
    return {"preset": name, "seed": seed, "settings": {**dataclasses.asdict(baseline), "changes": describe(baseline)},
            **{f"final_{k}": v for k, v in trained.final.items()}, "best_success": max(curve["success_rate"]),
            **{f"steps_to_{m}": steps_to(curve, m) for m in MILESTONES}, "train_seconds": trained.seconds,
            "curve": curve}


def steps_cell(steps: int | None) -> str:
    return "never" if steps is None else f"{steps:,}"


def sweep(args: Args, out: Path) -> dict[str, Any]:
    seeds = range(args.seed, args.seed + args.sweep_seeds)
    runs = {name: [row_of(name, seed, *run(args, name, args.sweep_steps, seed)) for seed in seeds]
            for name in args.candidates}
    mean = lambda rows, key: sum(r[key] for r in rows) / len(rows)  # noqa: E731
    per_seed = lambda rows, key, cell: " / ".join(cell(r[key]) for r in rows)  # noqa: E731
    summary = {name: {"success_rate": mean(rows, "final_success_rate"), "return_mean": mean(rows, "final_return_mean"),
                      "train_seconds": mean(rows, "train_seconds")} for name, rows in runs.items()}
    best = max(summary, key=lambda name: (summary[name]["success_rate"], summary[name]["return_mean"]))
    table = markdown_table(
        ["setting", "changes from default", "success", "return", "success per seed", "steps to 0.5", "steps to 0.9",
         "train wall (s)"],
        [[name, rows[0]["settings"]["changes"], f"{summary[name]['success_rate']:.2f}",
          f"{summary[name]['return_mean']:+.3f}", per_seed(rows, "final_success_rate", "{:.2f}".format),
          per_seed(rows, "steps_to_0.5", steps_cell), per_seed(rows, "steps_to_0.9", steps_cell),
          f"{summary[name]['train_seconds']:.0f}"] for name, rows in runs.items()],
        align="llrrrrrr")
    markdown = "\n".join([
        f"# SB3 PPO settings on CampusNav-v0 state vectors ({time.strftime('%Y-%m-%d')})", "",
        f"Each setting learns for {args.sweep_steps:,} real env steps (seeds {seeds.start}..{seeds.stop - 1}) and is "
        f"scored every {args.eval_every:,} steps on the same {args.eval_episodes} seeded real episodes (seeds "
        f"{args.eval_seed}...{args.eval_seed + args.eval_episodes - 1}, sampled actions, the env's own reward). "
        "Success and return: at the budget, mean over seeds; steps to a success rate: the first curve point at or "
        "above it, per seed. Wall time: training only, mean per run, one torch thread.", "", table, "",
        f"Best by mean success at the budget: **{best}** ({runs[best][0]['settings']['changes']}).", ""])
    print(markdown)
    report = {"args": dataclasses.asdict(args), "best": best, "summary": summary,
              "rows": [r for rows in runs.values() for r in rows]}
    write_results("sb3_sweep", markdown, report, directory=out)
    return report


EVALUATION_FIELDS = ("eval_every", "eval_episodes", "eval_seed")


def earlier_rows(args: Args, path: Path) -> list[dict[str, Any]]:
    """The rows ``--merge`` keeps: presets this run does not train, from the reference results at ``path``;
    a SystemExit where those were scored on other episodes (checked before training and again at the end)."""
    earlier = earlier_results(path, "reference results", {name: getattr(args, name) for name in EVALUATION_FIELDS})
    return [r for r in earlier["rows"] if r["preset"] not in args.presets]


def judge(args: Args, rows: list[dict[str, Any]]) -> Target:
    """The target on ``--judge``'s rows (SKIP where none was trained or kept)."""
    judged = [r for r in rows if r["preset"] == args.judge]
    name = f"{args.judge} PPO success >= {TARGET:.2f}"
    if not judged:
        return Target(name, None, TARGET, f"{args.judge} not in this run's rows")
    success = sum(r["final_success_rate"] for r in judged) / len(judged)
    return Target(name, value=success, target=TARGET, detail=f"{args.judge}: {success:.2f} at "
                  f"{judged[0]['final_steps']:,} steps, mean of {len(judged)} seed(s) (target {TARGET:.2f})")


def reference(args: Args, out: Path) -> dict[str, Any]:
    rows = []
    for name in args.presets:
        steps = args.dqn_steps if PRESETS[name].algo == "dqn" else args.steps
        rows += [row_of(name, seed, *run(args, name, steps, seed)) for seed in range(args.seed, args.seed + args.seeds)]
    kept = earlier_rows(args, out / "sb3_reality.json") if args.merge else []
    rows = kept + rows
    target = judge(args, rows)
    table = markdown_table(
        ["preset", "seed", "steps", "success", "return", "best success",
         *(f"steps to {m}" for m in MILESTONES), "train wall (s)"],
        [[r["preset"], r["seed"], f"{r['final_steps']:,}", f"{r['final_success_rate']:.2f}",
          f"{r['final_return_mean']:+.3f}", f"{r['best_success']:.2f}",
          *(steps_cell(r[f"steps_to_{m}"]) for m in MILESTONES), f"{r['train_seconds']:.0f}"] for r in rows],
        align="lrrrrr" + "r" * len(MILESTONES) + "r")
    settings = "\n".join(f"- {name}: {r['settings']['algo']} on {r['settings']['obs_mode']}, "
                         f"{r['settings']['num_envs']} envs, "
                         f"{dict(r['settings']['hyperparams'])}, shaping {r['settings']['shaping']}, frame stack "
                         f"{r['settings']['frame_stack']}, lr decay {r['settings']['lr_decay']}"
                         for name, r in {r["preset"]: r for r in rows}.items())
    markdown = "\n".join([
        f"# SB3 reference curves on CampusNav-v0 ({time.strftime('%Y-%m-%d')})", "",
        f"Scored every {args.eval_every:,} real env steps on the same {args.eval_episodes} seeded real episodes "
        f"(seeds {args.eval_seed}...{args.eval_seed + args.eval_episodes - 1}; PPO samples its actions, DQN is "
        "epsilon-greedy at its final epsilon; the env's own reward). Steps to a success rate: the first curve point "
        "at or above it. The full curves are in `sb3_reality.json`; success against steps in `sb3_reality.png`.", "",
        table, "", "Settings:", "", settings, "", target.line,
        *([f"(merged: {', '.join(sorted({r['preset'] for r in kept}))} kept from the earlier results)"] if kept
          else []), ""])
    print(markdown)
    report = {"args": dataclasses.asdict(args), "rows": rows, "targets": [target.as_dict()]}
    write_results("sb3_reality", markdown, report, directory=out)
    plot(rows, out / "sb3_reality.png")
    return report


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Success rate and mean return against real env steps, one line per agent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for r in rows:
        label = f"{r['preset']} (seed {r['seed']})"
        top.plot(r["curve"]["steps"], r["curve"]["success_rate"], label=label)
        bottom.plot(r["curve"]["steps"], r["curve"]["return_mean"], label=label)
    top.axhline(TARGET, color="grey", linestyle="--", linewidth=0.8)
    top.set_ylabel("success rate")
    bottom.set_ylabel("mean return (env reward)")
    bottom.set_xlabel("real env steps")
    top.legend(loc="lower right")
    top.set_title("SB3 on CampusNav-v0, scored in reality")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    use_threads(args.threads)
    out = Path(args.out) if args.out else default_results_directory()
    report: dict[str, Any] = {}
    if args.merge and (not args.sweep or args.quick):
        earlier_rows(args, out / "sb3_reality.json")  # a mismatch stops the run before hours of training
    if args.sweep or args.quick:
        report["sweep"] = sweep(args, out)
    if not args.sweep or args.quick:
        report["reference"] = reference(args, out)
    if args.json:
        write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
