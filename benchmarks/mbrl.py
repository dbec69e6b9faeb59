"""Sample efficiency on CampusNav-v0: the model-based loop against PPO in reality, real return against real steps.

For each seed, the tuned reality PPO's learning curve (``campusnav.baselines.PRESETS["tuned"]``,
scored on the same seeded real episodes): the reference run of ``benchmarks/sb3_reality.py``
(``--reference``) where it has the seed, else trained here for ``--reality-steps`` and scored
every ``--eval-every`` steps; for each zoo model of ``--models`` and each
seed, ``campusnav mbrl`` (``model_zoo.agents.mbrl``, PPO in the dream) records real
return and success after every iteration against the real steps it collected. Curves
are averaged over seeds with percentile-bootstrap 95 % bands, plotted and written with
the targets of issue 24:

- the tuned reality PPO reaches at least 0.9 success (its curve is the reference;
  its "steps" are the first real step count at which it reached 0.9);
- for at least two models, with at most 10 % of those steps the loop reaches at least
  0.8 of the reference's final return gain over the random policy;
- at the loop's real steps, reality PPO's return (its curve, interpolated) stays below
  the loop's.

Every run keeps its curve under ``--work`` and is skipped when found complete, so a
killed benchmark resumes with the run it was in, from its last finished iteration.
``--merge`` keeps the curves of the models this run does not measure from the results
already in ``--out`` (same loop options; each row says how many seeds it has), so one model
can be added, re-measured or given more seeds alone.

    python benchmarks/mbrl.py                       # hours on a 2-core CPU
    python benchmarks/mbrl.py --models mlp --seeds 1
    python benchmarks/mbrl.py --quick               # a smoke run (seconds)
    python benchmarks/mbrl.py --models mlp_ensemble --seeds 1 --merge  # add one model to the results
"""

import dataclasses
import json
import shlex
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tyro

from campusnav.baselines import steps_to
from campusnav.harness import (
    Target,
    default_results_directory,
    earlier_results,
    markdown_table,
    write_json,
    write_results,
)
from campusnav.leaderboard.summary import bootstrap_interval
from campusnav.mbrl import MBRLArgs, check_args, run_mbrl, tiny
from campusnav.threads import use_threads

EVAL_SEED = 10_000  # the seeded real episodes every policy is scored on (campusnav mbrl's too)


@dataclass(frozen=True)
class Args:
    """The loop against reality PPO, real return against real env steps."""

    models: tuple[str, ...] = ("mlp", "rssm", "causal_vae_mdnrnn")
    """zoo models the loop dreams with"""
    seeds: int = 3
    """seeds 0 .. seeds-1 of every curve"""
    loop: str = "--dream-steps 300000 --iterations 15"
    """the loop's options as campusnav mbrl flags (its --model, --seed and --out are set per run); 15 iterations
    collect about 75,000 real steps, within the 10 % of reality's steps the target allows"""
    reference: str = "docs/results/sb3_reality.json"
    """benchmarks/sb3_reality.py's results: the tuned PPO's curve of a seed found there is reality's ('' trains)"""
    reality_steps: int = 1_000_000
    """real env steps the reality PPO learns for, for a seed the reference does not have"""
    eval_every: int = 25_000
    """reality PPO's curve: real env steps between evaluations"""
    eval_episodes: int = 100
    """seeded real episodes per evaluation"""
    work: str = "runs/mbrl-benchmark"
    """where every run keeps its curve (a rerun skips finished runs)"""
    out: str = ""
    """results folder (default: the docs' results folder; runs/mbrl-quick under --quick)"""
    quick: bool = False
    """a smoke run: tiny budgets"""
    merge: bool = False
    """keep the curves of models not in --models from the results in --out (same --loop; seeds may differ)"""


def parse_args(argv: list[str] | None = None) -> Args:
    args = tyro.cli(Args, args=argv, description=__doc__)
    loop_options(args)  # a bad --loop is a usage error now, not after an hour
    if args.quick:
        args = dataclasses.replace(args, reality_steps=1_024, eval_every=512, eval_episodes=4,
                                   work=str(Path(args.work) / "quick"), out=args.out or "runs/mbrl-quick")
    return args


def loop_options(args: Args) -> MBRLArgs:
    """``args.loop`` parsed as ``campusnav mbrl`` flags (the tiny budget under ``--quick``)."""
    options = tyro.cli(MBRLArgs, args=shlex.split(args.loop), prog="--loop")
    check_args(options)
    return tiny(options) if args.quick else options


def reality_curve(args: Args, seed: int) -> dict[str, list[float]]:
    """The tuned reality PPO's learning curve for ``seed`` (read back when already measured)."""
    from campusnav.baselines import PRESETS, Evaluation, train

    path = Path(args.work) / "reality" / f"seed{seed}.json"
    if path.exists():
        return json.loads(path.read_text())
    reference = Path(args.reference) if args.reference and not args.quick else None
    if reference is not None and reference.exists():
        runs = json.loads(reference.read_text())["rows"]
        found = [r for r in runs if r["preset"] == "tuned" and r["seed"] == seed]
        if found:
            return {k: found[0]["curve"][k] for k in ("steps", "return_mean", "success_rate")}
    baseline = PRESETS["tuned"]
    if args.quick:
        baseline = baseline.replace(num_envs=4, hyperparams={"n_steps": 64, "batch_size": 64})
    run = train(baseline, args.reality_steps, seed, Evaluation(args.eval_episodes, EVAL_SEED, seed),
                args.eval_every, progress=print)
    write_json(path, run.curve)
    return run.curve


def loop_curve(args: Args, model: str, seed: int) -> dict[str, list[float]]:
    """The loop's curve with ``model`` for ``seed``: real steps, return and success per iteration."""
    folder = Path(args.work) / model / f"seed{seed}"
    done = folder / "curve.json"
    options = dataclasses.replace(loop_options(args), model=model, seed=seed, out=str(folder),
                                  eval_episodes=args.eval_episodes)
    rows = json.loads(done.read_text())["curve"] if done.exists() else []
    if len(rows) == options.iterations:
        return _columns(rows)
    if 0 < len(rows) < options.iterations:  # a run that died part way goes on where it was
        try:
            return _columns(run_mbrl(dataclasses.replace(options, resume=True)).curve)
        except ValueError as error:  # saved by an older loop, or with other options
            print(f"{folder}: cannot resume ({error}); starting it again")
    if folder.exists():
        shutil.rmtree(folder)
    return _columns(run_mbrl(options).curve)


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    return {"steps": [r["real_steps"] for r in rows], "return_mean": [r["return_mean"] for r in rows],
            "success_rate": [r["success_rate"] for r in rows], "seconds": [r["seconds"] for r in rows]}


def at_steps(curve: dict[str, list[float]], steps: float, key: str) -> float:
    """``curve[key]`` linearly interpolated at ``steps`` real env steps (held flat past the ends)."""
    return float(np.interp(steps, curve["steps"], curve[key]))


def band(curves: list[dict[str, list[float]]], key: str, grid: np.ndarray) -> np.ndarray:
    """(3, len(grid)): the mean over seeds of ``key`` on ``grid`` and its bootstrap interval."""
    values = [[at_steps(c, s, key) for c in curves] for s in grid]
    return np.array([bootstrap_interval(v) for v in values]).T


def targets(reality: list[dict], loops: dict[str, list[dict]], random_return: float) -> list[Target]:
    final_success = float(np.mean([c["success_rate"][-1] for c in reality]))
    final_return = float(np.mean([c["return_mean"][-1] for c in reality]))
    reached = [steps_to(c, 0.9) for c in reality]
    reference_steps = float(np.mean([s if s is not None else c["steps"][-1] for s, c in zip(reached, reality,
                                                                                              strict=True)]))
    gain = final_return - random_return
    budget = 0.1 * reference_steps
    shares, beats = {}, {}
    for model, curves in loops.items():
        best = max(float(np.mean([at_steps(c, s, "return_mean") for c in curves]))
                   for s in curves[0]["steps"] if s <= budget) if curves[0]["steps"][0] <= budget else None
        shares[model] = None if best is None or gain <= 0 else (best - random_return) / gain
        last = float(np.mean([c["steps"][-1] for c in curves]))
        loop_return = float(np.mean([c["return_mean"][-1] for c in curves]))
        real_return = float(np.mean([at_steps(c, last, "return_mean") for c in reality]))
        beats[model] = (loop_return, real_return, last)
    passing = sorted((s for s in shares.values() if s is not None), reverse=True)
    second = passing[1] if len(passing) > 1 else None
    detail = ", ".join(f"{m} {s:.2f}" if s is not None else f"{m} -" for m, s in shares.items())
    below = sum(real < loop for loop, real, _ in beats.values())
    return [
        Target("tuned reality PPO success", final_success, 0.9, f"{final_success:.2f} after "
               f"{reality[0]['steps'][-1]:,} steps, 0.9 first at {reference_steps:,.0f} (target 0.90)"),
        Target("loop's share of reality's return gain within 10 % of its steps, second-best model", second, 0.8,
               f"{detail} (budget {budget:,.0f} real steps; target 0.8 for two models)"),
        Target("models whose loop beats reality PPO at the same real steps", float(below), 2.0,
               "; ".join(f"{m}: loop {lo:+.3f} vs reality {re:+.3f} at {st:,.0f} steps"
                         for m, (lo, re, st) in beats.items()) + " (target: two models)"),
    ]


def mean_cell(values: list[float]) -> str:
    """The mean of one value per seed, with its bootstrap interval where there are several seeds."""
    mean, low, high = bootstrap_interval(values)
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]" if len(values) > 1 else f"{mean:.3f}"


def run_minutes(loops: dict[str, list[dict[str, list[float]]]]) -> dict[str, float]:
    """Each model's loop runs' wall minutes in all, as their curve files recorded them."""
    return {model: sum(sum(curve["seconds"]) for curve in curves) / 60 for model, curves in loops.items()}


def merge_earlier(earlier: dict[str, Any], loops: dict[str, list[dict]], minutes: dict[str, float]) -> list[str]:
    """Adds to ``loops`` (and ``minutes``) the models of ``earlier`` results that this run did not measure."""
    kept = [m for m in earlier["loops"] if m not in loops]
    for model in kept:
        loops[model] = earlier["loops"][model]
        if model in earlier.get("loop_minutes", {}):
            minutes[model] = earlier["loop_minutes"][model]
    return [f"(merged: {', '.join(kept) or 'no model'} kept from the results of {earlier['date']})"]


def plot(path: Path, reality: list[dict], loops: dict[str, list[dict]], random: dict[str, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    top = max(c["steps"][-1] for c in reality)
    for name, curves in {"reality PPO (tuned)": reality, **{f"loop: {m}": c for m, c in loops.items()}}.items():
        grid = np.unique(np.concatenate([c["steps"] for c in curves]))
        for ax, key in zip(axes, ("success_rate", "return_mean"), strict=True):
            mean, low, high = band(curves, key, grid)
            ax.plot(grid, mean, marker="o" if len(grid) < 20 else None, label=name)
            ax.fill_between(grid, low, high, alpha=0.2)
    for ax, key, label in zip(axes, ("success_rate", "return_mean"), ("success", "return"), strict=True):
        ax.axhline(random[key], color="grey", linestyle="--", label="random")
        ax.set_xscale("log")
        ax.set_xlim(1_000, top * 1.1)
        ax.set_xlabel("real env steps (log)")
        ax.set_ylabel(f"real {label}")
    axes[0].legend(fontsize=8)
    fig.suptitle("CampusNav-v0: real return against real env steps (mean, 95 % bootstrap band)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    use_threads()
    out = Path(args.out) if args.out else default_results_directory()
    out.mkdir(parents=True, exist_ok=True)
    same = {name: getattr(args, name) for name in ("loop", "eval_episodes")}
    earlier = earlier_results(out / "mbrl.json", "results", same) if args.merge else None
    started = time.perf_counter()
    loops = {m: [loop_curve(args, m, seed) for seed in range(args.seeds)] for m in args.models}
    reality = [reality_curve(args, seed) for seed in range(args.seeds)]
    first = json.loads((Path(args.work) / args.models[0] / "seed0" / "curve.json").read_text())
    random = first["random"]
    minutes = run_minutes(loops)
    merged = merge_earlier(earlier, loops, minutes) if earlier is not None else []
    checks = targets(reality, loops, random["return_mean"])
    rows = [["reality PPO (tuned)", str(len(reality)), f"{reality[0]['steps'][-1]:,}",
             *(mean_cell([c[k][-1] for c in reality]) for k in ("return_mean", "success_rate"))]]
    rows += [[f"loop: {m}", str(len(cs)), f"{np.mean([c['steps'][-1] for c in cs]):,.0f}",
              *(mean_cell([c[k][-1] for c in cs]) for k in ("return_mean", "success_rate"))]
             for m, cs in loops.items()]
    rows.append(["random", "1", "0", f"{random['return_mean']:.3f}", f"{random['success_rate']:.3f}"])
    table = markdown_table(["", "seeds", "real steps", "real return", "success"], rows, "lrrrr")
    wall = time.perf_counter() - started
    loop = loop_options(args)
    missing = [m for m in loops if m not in minutes]
    untimed = f" ({', '.join(missing)}: merged from results that did not record it)" if missing else ""
    markdown = "\n".join([
        f"# Sample efficiency: the MBRL loop against reality PPO ({time.strftime('%Y-%m-%d')})", "",
        f"Seeds 0..k-1 as each row says; at the end of each run, the mean over seeds [95 % bootstrap interval]; "
        f"{args.eval_episodes} seeded real episodes per "
        f"point. Loop: {loop.iterations} iterations, {loop.initial_episodes} random then {loop.episodes} policy "
        f"episodes each, PPO {loop.dream_steps:,} dream steps per iteration ({loop.learner_settings or 'defaults'})"
        f", rollouts {loop.rollout or 'whole episodes'}; loop runs {sum(minutes.values()):.0f} min in all{untimed}. "
        "Reality at the loop's steps is read off its curve between evaluation points; the return share counts standing "
        "still (-2.0) as about half of the gain, so read it beside success.", "", table, "",
        *(t.line for t in checks), *merged, "", "The curves: `mbrl.png` beside this file.", ""])
    print(markdown)
    plot(out / "mbrl.png", reality, loops, random)
    report = {"args": asdict(args), "reality": reality, "loops": loops, "random": random,
              "targets": [t.as_dict() for t in checks], "loop_minutes": minutes, "wall_seconds": wall}
    write_results("mbrl", markdown, report, directory=out)
    return report


if __name__ == "__main__":
    main()
