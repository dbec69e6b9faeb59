"""Training samples per second of a world model: one process on two threads against two torchrun processes.

All three runs train ``--model`` (``vae_mdnrnn``, its ``campusnav-state`` preset) with
``model_zoo.fit`` on the same CampusNav-v0 state episodes (collected into ``--work``
once) and the same global batch: one process with one torch thread, one process with
two, then ``torchrun --standalone --nproc_per_node=2`` with one thread each, each rank
drawing half the batch and DDP averaging the gradients (``model_zoo.distributed``). A
rate is windows times optimizer steps per second over ``--steps`` steps after ``--warmup``.

Two ceilings are printed beside the target (two processes at least 1.4 times the
two-thread process). Two processes on two cores can at best double the one-thread
rate: ``2 x one thread / two threads``. And a rank takes a step on half the batch, so
without any communication two processes reach the global batch over the time one
thread takes for half of it (a fourth run, timed the same way): that rate over the
two-thread process's is the ceiling for this model at this batch, and the measured
rate over it is what DDP's communication and synchronisation keep. A miss does not
fail. A real run writes ``ddp_speed.md`` and ``ddp_speed.json``; ``--quick`` writes
nothing.

    python benchmarks/ddp_speed.py            # a few minutes on an idle 2-core CPU
    python benchmarks/ddp_speed.py --quick    # a smoke run: two processes for a few steps
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import tyro

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from campusnav.harness import Target, write_results
from campusnav.mbrl import tiny_config
from campusnav.overrides import parse_overrides
from campusnav.threads import use_threads
from model_zoo import distributed
from model_zoo.data import collect, load_dataset, load_episodes

PRESET = "campusnav-state"
TARGET_RATIO = 1.4
TIMEOUT = 1800  # seconds the torchrun measurement may take


@dataclass(frozen=True)
class Args:
    """One process on two threads against two processes on one thread each."""

    model: str = "vae_mdnrnn"
    """the zoo model to train"""
    batch_size: int = 32
    """the global batch: windows per optimizer step over all processes (even)"""
    seq_len: int = 32
    """steps per window"""
    steps: int = 200
    """timed optimizer steps"""
    warmup: int = 10
    """optimizer steps before the clock starts"""
    episodes: int = 128
    """CampusNav-v0 state episodes to train on"""
    max_episode_steps: int = 100
    """their length"""
    work: str = "runs/ddp_speed"
    """where the episodes are collected (and reused)"""
    out: str = ""
    """results folder (default: the docs' results folder)"""
    quick: bool = False
    """a smoke run: a tiny model, data and budget; nothing written"""
    rank_report: str = ""
    """set by this script for the torchrun ranks: rank 0 writes its rate to this file"""


QUICK = dict(batch_size=4, seq_len=8, steps=3, warmup=1, episodes=4, max_episode_steps=20)


def parse_args(argv: list[str] | None = None) -> Args:
    args = tyro.cli(Args, args=argv, description=__doc__)
    if args.model not in model_zoo.list_models():
        raise SystemExit(f"error: argument --model: unknown {args.model!r}; choose from "
                         f"{', '.join(model_zoo.list_models())}")
    if args.batch_size < 2 or args.batch_size % 2:
        raise SystemExit(f"error: argument --batch-size: an even number (two processes split it), "
                         f"got {args.batch_size}")
    if args.quick:
        args = dataclasses.replace(args, **QUICK, work=str(Path(args.work) / "quick"))
    return args


def _dataset(args: Args):
    dataset_id = f"ddp/campus-state-e{args.episodes}-t{args.max_episode_steps}-v0"
    path = Path(args.work) / "data"
    try:
        return load_dataset(dataset_id, data_path=path)
    except FileNotFoundError:
        return collect("CampusNav-v0", num_episodes=args.episodes, num_envs=min(8, args.episodes), seed=0,
                       env_kwargs={"obs_mode": "state"}, max_episode_steps=args.max_episode_steps,
                       dataset_id=dataset_id, data_path=path, progress=False)


def samples_per_second(args: Args, batch_size: int | None = None) -> float:
    """Windows per second of ``fit`` in this process (under torchrun: of all ranks together).

    ``batch_size`` replaces ``args.batch_size`` as the batch of each step (the rate stays windows per second).
    """
    batch_size = batch_size or args.batch_size
    dataset = _dataset(args)
    episodes = load_episodes(dataset)
    torch.manual_seed(0)
    overrides = parse_overrides(tiny_config(args.model)) if args.quick else {}
    model = model_zoo.make(args.model, dataset.observation_space, dataset.action_space, preset=PRESET, **overrides)
    settings = dict(batch_size=batch_size, seq_len=args.seq_len, lr=model_zoo.preset(args.model, PRESET).lr,
                    progress=False)
    model_zoo.fit(model, episodes, steps=args.warmup, **settings)
    started = time.perf_counter()
    model_zoo.fit(model, episodes, steps=args.steps, seed=1, **settings)  # every step waits for both ranks
    return batch_size * args.steps / (time.perf_counter() - started)


def _rank(args: Args) -> None:
    """One torchrun rank: one thread, its half of the batch; rank 0 reports the rate."""
    use_threads(1)
    world = distributed.init()
    try:
        rate = samples_per_second(args)
        if world.is_main:
            Path(args.rank_report).write_text(json.dumps({"samples_per_s": rate, "processes": world.size}))
    finally:
        distributed.shutdown()


def _two_processes(args: Args, argv: list[str]) -> float:
    report = Path(args.work) / "rank_report.json"
    report.unlink(missing_ok=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(Path(__file__).resolve()), *argv, "--rank-report", str(report)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0 or not report.is_file():
        raise RuntimeError(f"torchrun exited {done.returncode}:\n{done.stderr[-3000:]}")
    result = json.loads(report.read_text())
    if result["processes"] != 2:
        raise RuntimeError(f"torchrun started {result['processes']} process(es), not 2")
    return float(result["samples_per_s"])


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.rank_report:
        _rank(args)
        return None
    Path(args.work).mkdir(parents=True, exist_ok=True)
    _dataset(args)  # collected once, before the ranks read it
    use_threads(1)
    one_thread = samples_per_second(args)
    half_batch = 2 * samples_per_second(args, args.batch_size // 2)  # two ranks' steps, nothing shared
    use_threads(2)
    one = samples_per_second(args)
    two = _two_processes(args, argv)
    ceiling = 2 * one_thread / one
    target = Target(f"2 processes / 1 process >= {TARGET_RATIO}", value=two / one, target=TARGET_RATIO,
                    detail=f"{two / one:.2f}x ({two:,.0f} against {one:,.0f} samples/s)")
    markdown = "\n".join([
        f"# DDP speed: {args.model} on CampusNav-v0 state episodes", "",
        f"Global batch {args.batch_size} windows x {args.seq_len} steps, {args.steps} timed steps after "
        f"{args.warmup}.", "",
        "| run | samples/s |", "|---|---:|",
        f"| 1 process, 1 thread | {one_thread:,.0f} |",
        f"| 1 process, 1 thread, half the batch (x2: two ranks without communication) | {half_batch:,.0f} |",
        f"| 1 process, 2 threads | {one:,.0f} |",
        f"| 2 processes (torchrun), 1 thread each | {two:,.0f} |", "",
        f"- ratio, 2 processes / 1 process on 2 threads: {two / one:.2f}",
        f"- ceiling of that ratio on 2 cores (2 x 1 thread / 2 threads): {ceiling:.2f}",
        f"- ceiling at this batch (two ranks without communication / 2 threads): {half_batch / one:.2f}",
        f"- DDP's scaling efficiency, 2 processes / (2 x 1 thread): {two / (2 * one_thread):.2f}",
        f"- kept by DDP, 2 processes / two ranks without communication: {two / half_batch:.2f}", "",
        target.line, ""])
    print(markdown)
    report = {"args": asdict(args), "one_thread": one_thread, "one_process": one, "two_processes": two,
              "half_batch": half_batch, "ratio": two / one, "ceiling": ceiling, "batch_ceiling": half_batch / one,
              "efficiency": two / (2 * one_thread),
              "target": target.as_dict()}
    if not args.quick:
        write_results("ddp_speed", markdown, report, directory=args.out or None)
    return report


if __name__ == "__main__":
    main()
