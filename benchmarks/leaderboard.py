"""Leaderboard v2: every world model, three seeds, scored against the simulator's own distribution.

Every model of ``model_zoo.list_models()`` that takes state vectors (or ``--models``), with its
``campusnav-state`` preset, on the same shared data and budget (``Budget``'s fields
are flags), for seeds 0 .. ``--seeds``-1 (see ``campusnav.leaderboard``):

1. the held-out loss curve of training, and the share of its decrease in the last
   fifth (``late_share``: small when the budget was enough to flatten it);
2. 1- and 16-step observation error on held-out episodes and held-out contexts;
3. fidelity against 64 forks of reality from held-out starts: precision, recall and
   the position's total-variation distance at 1 and 16 steps;
4. the interventional error of the models that take ``do()``;
5. transfer with controllers that navigate: the action-scoring CMA-ES controller
   and SB3 PPO, each trained in the model's dream and, with the same budget, in
   reality, all scored on the same real episodes;
6. pixels: the same model class on CampusNav-v0 frames, its dreams read by a semantic probe
   (``model_zoo.probe``) against forks of reality (precision, TV, valid-frame rate beside
   the rate of its own reconstructions), and on CarRacing-v3 frames (PSNR at 1 and 16 steps).

Each column is a mean over seeds with a 95 % bootstrap interval, and ranks come
with their spread. Work (data, weights, each stage's result) is kept in ``--work``
as it ends, so a run that dies resumes where it was; ``--workers`` cells run at
once, one torch thread each. Results: ``leaderboard.{md,json,png}`` in the docs'
results folder (or ``--out``).

    python benchmarks/leaderboard.py                             # the whole board
    python benchmarks/leaderboard.py --models mlp rssm --seeds 1 # a subset
    python benchmarks/leaderboard.py --quick --out /tmp/lb       # a smoke run of a minute or two
    python benchmarks/leaderboard.py --seeds 1 --save-pretrained model_zoo/pretrained  # train, score, ship
    python benchmarks/leaderboard.py --models mlp_ensemble --merge  # re-measure one model, keep the others

``--merge`` keeps the per-seed rows (and loss curves, where saved) of the models this run
does not measure from the board already in ``--out``, and prints how this run's reality
baselines compare with that board's: the kept transfers were measured against those.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tyro

import model_zoo
from campusnav.harness import default_results_directory, earlier_results, write_json, write_results
from campusnav.leaderboard import QUICK, Budget
from campusnav.leaderboard.budget import budget_of, horizons
from campusnav.leaderboard.cell import cell_folder, run_cell
from campusnav.leaderboard.data import campus_data, campus_pixel_data, car_data, probe
from campusnav.leaderboard.ledger import Ledger
from campusnav.leaderboard.reality import reality_folder, run_reality
from campusnav.leaderboard.report import plot, tables, targets
from campusnav.leaderboard.summary import PIXEL_PREFIXES, bootstrap_interval, cell_row, summarize
from campusnav.pretrain import BUDGET_FILE, PretrainArgs, export
from campusnav.threads import use_threads
from model_zoo.parallel import INSTALL_HINT, map_tasks, ray_available

COST_ORDER = ("dpgmm_vrnn", "causal_vae_mdnrnn", "rssm", "vae_mdnrnn", "vqvae_transformer", "mlp_ensemble", "mlp")


@dataclass(frozen=True)
class Args(Budget):
    """The world-model leaderboard, v2."""

    models: list[str] = field(default_factory=list)
    """model ids (default: every registered model)"""
    seeds: int = 3
    """seeds 0 .. seeds-1 of every model (weights, batches, controllers, evaluation)"""
    workers: int = 2
    """cells run at once, each in its own process with one torch thread (Ray tasks when Ray is installed)"""
    address: str = ""
    """a Ray cluster to run the cells on, e.g. auto or HOST:6379 (default: a local Ray of --workers CPUs); --work
    must be a folder every node sees"""
    pixels: bool = True
    """also train and evaluate every model on CampusNav-v0 and CarRacing-v3 pixels"""
    work: str = "runs/leaderboard"
    """data, weights and each stage's result, kept as the run goes (a rerun resumes from them)"""
    out: str = ""
    """results folder (default: the docs' results folder; runs/leaderboard-quick under --quick)"""
    quick: bool = False
    """a smoke run: tiny data and budgets, in --work/quick"""
    report_only: bool = False
    """measure nothing: write the board from the stages --work holds (a run still going, or one that died)"""
    merge: bool = False
    """keep the models this run does not measure from the board already in --out (re-measure some models after
    a preset changed without rerunning all)"""
    save_pretrained: str = ""
    """then ship seed 0's models with their cards into this folder (campusnav pretrain; model_zoo/pretrained is
    the package's own)"""


def state_models() -> list[str]:
    """The registered models that take state vectors (``observation_kinds``): the board's cells start from them."""
    return [m for m in model_zoo.list_models()
            if "vector" in model_zoo.registry.spec(m).load_class().observation_kinds]


def parse_args(argv: list[str] | None = None) -> Args:
    args = tyro.cli(Args, args=argv, description=__doc__)
    if unknown := [m for m in args.models if m not in model_zoo.list_models()]:
        print(f"error: argument --models: unknown {unknown}; registered: {', '.join(model_zoo.list_models())}",
              file=sys.stderr)
        raise SystemExit(2)
    if pixel_only := [m for m in args.models if m not in state_models()]:
        print(f"error: argument --models: {pixel_only} take no state vectors; the board starts from them",
              file=sys.stderr)
        raise SystemExit(2)
    if args.seeds < 1 or args.workers < 1:
        print("error: --seeds and --workers must be at least 1", file=sys.stderr)
        raise SystemExit(2)
    if args.address and (args.workers == 1 or not ray_available()):
        print(f"error: --address runs on a Ray cluster: it needs --workers > 1 and Ray ({INSTALL_HINT})",
              file=sys.stderr)
        raise SystemExit(2)
    if args.quick:
        args = dataclasses.replace(args, **asdict(QUICK), out=args.out or "runs/leaderboard-quick",
                                   work=str(Path(args.work) / "quick"))
    return args


def jobs(args: Args) -> Iterator[tuple[str, str | None, int]]:
    """("reality", None, seed) for each seed, then ("cell", model, seed) seed by seed, the costly models first:
    a board reported before the run ends (``--report-only``) then holds every model at its first seeds."""
    ids = args.models or state_models()
    order = sorted(ids, key=lambda m: COST_ORDER.index(m) if m in COST_ORDER else len(COST_ORDER))
    yield from (("reality", None, seed) for seed in range(args.seeds))
    yield from (("cell", model, seed) for seed in range(args.seeds) for model in order)


def run_job(job: tuple[str, str | None, int], budget: Budget, work: str, pixels: bool) -> dict[str, Any]:
    kind, model, seed = job
    if kind == "reality":
        return run_reality(seed, budget, Path(work))
    return run_cell(model, seed, budget, Path(work), pixels=pixels)


def run_all(args: Args, budget: Budget) -> None:
    """Every job not finished yet, ``--workers`` at a time; each prints a line when it ends."""
    todo = list(jobs(args))
    started = time.perf_counter()

    def done(count: int, job: tuple[str, str | None, int]) -> None:
        print(f"[{count}/{len(todo)}] {job[0]} {job[1] or ''} seed {job[2]}: {time.perf_counter() - started:.0f} s",
              flush=True)

    if args.workers == 1:
        for count, job in enumerate(todo, 1):
            run_job(job, budget, args.work, args.pixels)
            done(count, job)
        return
    if ray_available():  # a failed job stops the board; what finished is kept in --work
        finished = iter(range(1, len(todo) + 1))
        work = str(Path(args.work).resolve())  # a Ray worker's folder need not be this one
        map_tasks(functools.partial(run_job, budget=budget, work=work, pixels=args.pixels), todo,
                  workers=args.workers, address=args.address or None,
                  on_done=lambda index, _: done(next(finished), todo[index]))
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=context) as pool:
        futures = {pool.submit(run_job, job, budget, args.work, args.pixels): job for job in todo}
        for count, future in enumerate(as_completed(futures), 1):
            future.result()  # a failed job stops the board; what finished is kept in --work
            done(count, futures[future])


def collect_rows(args: Args, budget: Budget) -> tuple[dict, dict, dict]:
    """Per model the seeds' rows and loss curves, and the reality baselines' summary."""
    work = Path(args.work)
    reality = [Ledger(reality_folder(work) / f"seed{s}.json").stages for s in range(args.seeds)]
    long = horizons(budget)[1]
    rows: dict[str, list[dict[str, float]]] = {}
    curves: dict[str, list] = {}
    for _, model, seed in jobs(args):
        cell = {} if model is None else Ledger(cell_folder(work, model, seed) / "stages.json").stages
        if "train" not in cell:  # not trained yet (--report-only on an unfinished run)
            continue
        rows.setdefault(model, []).append(cell_row(cell, reality[seed], long))
        curves.setdefault(model, []).append(cell["train"]["curve"])
    baseline: dict[str, Any] = {"seeds": sum("ppo" in r for r in reality)}
    for name in ("random", "cmaes", "ppo"):
        for key in ("return", "success"):
            mean, low, high = bootstrap_interval([r[name][key] for r in reality if name in r])
            baseline[f"{name}_{key}"], baseline[f"{name}_{key}_ci"] = mean, [low, high]
    return rows, curves, baseline


def merge_earlier(path: Path, rows: dict, curves: dict, baseline: dict[str, Any], seeds: int,
                  pixels: bool) -> list[str]:
    """Adds to ``rows`` and ``curves`` the models of the board at ``path`` that this run did not measure, and
    without ``pixels`` the frame columns of the models it did measure that their cells lack; lines that say
    what was kept and how this run's reality compares with that board's (the kept transfers' own).

    Raises:
        SystemExit: there is no board at ``path``, or it has other seeds.
    """
    earlier = earlier_results(path, "board", {"seeds": seeds})
    measured = [model for model in rows if model in earlier["per_seed"]]  # this run's, also on that board
    kept = [model for model in earlier["per_seed"] if model not in rows]
    for model in kept:
        rows[model] = [_nan_for_null(row) for row in earlier["per_seed"][model]]
        if model in earlier.get("curves", {}):
            curves[model] = earlier["curves"][model]
    framed = []
    if not pixels:  # cells without frame stages: the board's frame columns stay
        for model in measured:
            if _keep_frames(rows[model], earlier["per_seed"][model]):
                framed.append(model)
    was = earlier["reality"]
    gaps = ", ".join(f"{name} {baseline[f'{name}_return']:.3f} vs {was[f'{name}_return']:.3f}"
                     for name in ("random", "cmaes", "ppo") if f"{name}_return" in was)
    frames = f"; the frame columns of {', '.join(framed)} too" if framed else ""
    return [f"(merged: {', '.join(kept) or 'no model'} kept from the board of {earlier['date']}{frames}; "
            f"reality's mean returns, this run vs that board: {gaps})"]


def _keep_frames(rows: list[dict[str, Any]], earlier: list[dict[str, Any]]) -> bool:
    """Fills, seed by seed, the frame columns (``PIXEL_PREFIXES``) ``rows`` lack from the ``earlier`` board's
    rows of the model; whether it filled any (none where a seed is missing on either side)."""
    if len(rows) != len(earlier):
        return False
    filled = False
    for row, old in zip(rows, earlier, strict=True):
        lacking = {k: v for k, v in _nan_for_null(old).items()
                   if k.startswith(PIXEL_PREFIXES) and math.isnan(row.get(k, math.nan))}
        row.update(lacking)
        filled |= bool(lacking)
    return filled


def _nan_for_null(row: dict[str, Any]) -> dict[str, Any]:
    """A per-seed row as the board's JSON has it, NaN where it wrote null (no do() for the model, a stage a cell
    lacks)."""
    return {k: math.nan if v is None else v for k, v in row.items()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    use_threads()
    budget = budget_of(args)
    out = Path(args.out) if args.out else default_results_directory()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    resumed = (Path(args.work) / "cells").exists()
    if not args.report_only:
        write_json(Path(args.work) / BUDGET_FILE, asdict(budget))  # what campusnav pretrain writes on the cards
        campus_data(budget, Path(args.work))  # shared data first, before the workers read it
        if args.pixels:
            car_data(budget, Path(args.work))
            campus_pixel_data(budget, Path(args.work))
            probe(budget, Path(args.work))
        run_all(args, budget)
    wall = time.perf_counter() - started
    rows, curves, baseline = collect_rows(args, budget)
    merged = (merge_earlier(out / "leaderboard.json", rows, curves, baseline, args.seeds, args.pixels)
              if args.merge else [])
    summary = summarize(rows)
    default_run = (not args.quick and not args.models and args.seeds == 3 and budget == Budget() and not resumed
                   and not args.report_only and not args.merge)
    lines = targets(summary, baseline, wall, default_run) + merged
    last = "car" if args.pixels else "ppo"
    missing = [f"{model} seed {seed}" for _, model, seed in jobs(args)
               if model and last not in Ledger(cell_folder(Path(args.work), model, seed) / "stages.json").stages]
    if missing:
        lines.append(f"(unfinished: {', '.join(missing)})")
    machine = (f"{platform.processor() or platform.machine()}, {args.workers} worker(s) of one torch thread, "
               f"{os.cpu_count()} CPUs, {platform.platform()}")
    settings = ", ".join(f"{k}={v}" for k, v in asdict(budget).items())
    markdown = "\n".join([f"# World-model leaderboard v2 ({time.strftime('%Y-%m-%d')}, {machine})", "",
                          f"Seeds 0..{args.seeds - 1}; each cell: mean over seeds [95 % bootstrap interval]. "
                          f"This run: {wall / 60:.1f} min{' (resumed)' if resumed else ''}.", "",
                          *tables(summary, baseline), f"Budget: {settings}.", "", *lines, ""])
    plot(summary, curves, out / "leaderboard.png")
    report = {"args": asdict(args), "budget": asdict(budget), **summary, "reality": baseline, "targets": lines,
              "wall_seconds": wall, "resumed": resumed, "machine": machine,
              "per_seed": {m: rs for m, rs in rows.items()}, "curves": curves}
    print(markdown)
    write_results("leaderboard", markdown, json.loads(json.dumps(report, default=float)), directory=out)
    if args.save_pretrained:
        export(PretrainArgs(work=args.work, seed=0, models=list(args.models), out=args.save_pretrained))
    return report


if __name__ == "__main__":
    main()
