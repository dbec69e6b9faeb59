"""Collection on Ray workers: CampusNav-v0 pixel episodes with 1 and 2 workers, the same dataset faster.

``model_zoo.data.collect(..., workers=K)`` splits the vector env's sub-envs into K
shards stepped by Ray tasks and writes one Minari dataset, the same whatever K. This
script collects the same episodes (same seed) with ``workers=1`` (no Ray) and
``workers=2``, checks the two datasets are identical, and prints the steps per
second of each end to end (stepping, rendering and writing the dataset) and their
ratio, with a PASS/MISS line against the target of issue 26: 2 workers at least
1.5x the rate of 1. Ray starts, and its two worker processes import what they need,
before the clock runs. A full run writes ``docs/results/ray_collect.{md,json}``.

The driver writes the dataset alone, however many workers step, so the script also
times that write (``model_zoo.data.collection._write``) and prints the ceiling it
sets (Amdahl's law): one worker's time with its stepping halved and its write kept.

    python benchmarks/ray_collect.py                       # needs Ray: pip install "campusnav[distributed]"
    python benchmarks/ray_collect.py --quick               # a few seconds, writes nothing
    python benchmarks/ray_collect.py --address auto        # on a running Ray cluster
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tyro

import campus_env  # noqa: F401  (registers CampusNav-v0)
from campusnav.harness import write_json, write_results
from model_zoo.data import collect, collection, load_episodes
from model_zoo.parallel import map_tasks, require_ray

TARGET_RATIO = 1.5  # issue 26: 2 workers at least 1.5x the rate of 1


@dataclass(frozen=True)
class Args:
    """CampusNav-v0 pixel collection with 1 and 2 Ray workers: the same dataset, and the speed-up."""

    episodes: int = 32
    """episodes collected by each run"""
    num_envs: int = 8
    """sub-envs of the vector env (split into two shards of 4 with 2 workers)"""
    max_episode_steps: int = 100
    """steps of each episode"""
    seed: int = 0
    """collection seed of both runs"""
    address: str | None = None
    """a Ray cluster to run on (default: a local Ray of 2 CPUs)"""
    data_path: str | None = None
    """Minari datasets folder for the two datasets (default: a temporary folder, removed afterwards)"""
    quick: bool = False
    """a tiny run (4 episodes of 10 steps on 4 envs) that writes no result files"""
    json: str | None = None
    """also write the measurements to this JSON file"""


def _warm(index: int) -> int:
    """Imports what a shard needs, in a Ray worker, and holds it a moment so that both workers start."""
    import model_zoo.data.shards  # noqa: F401

    time.sleep(0.5)
    return index


def timed_collect(args: Args, workers: int, dataset_id: str, data_path: str) -> tuple[Any, float, float]:
    """The dataset of one collection, its wall time and the driver's time writing it, in seconds."""
    write, spent = collection._write, []

    def timed_write(*write_args: Any, **write_kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return write(*write_args, **write_kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    collection._write = timed_write
    try:
        started = time.perf_counter()
        dataset = collect("CampusNav-v0", num_episodes=args.episodes, num_envs=args.num_envs, seed=args.seed,
                          max_episode_steps=args.max_episode_steps, env_kwargs={"obs_mode": "pixels"},
                          progress=False, dataset_id=dataset_id, data_path=data_path, workers=workers,
                          address=args.address)
        seconds = time.perf_counter() - started
    finally:
        collection._write = write
    return dataset, seconds, sum(spent)


def identical(one: Any, two: Any) -> bool:
    """Whether two datasets hold the same episodes in the same order: observations, actions, rewards, ends."""
    a, b = load_episodes(one), load_episodes(two)
    fields = ("obs", "action", "reward", "terminated", "truncated", "causal")
    if len(a) != len(b):
        return False
    return all(x.metadata == y.metadata and all(np.array_equal(getattr(x, f), getattr(y, f)) for f in fields)
               for x, y in zip(a, b, strict=True))


def measure(args: Args, data_path: str) -> dict[str, Any]:
    map_tasks(_warm, range(2), workers=2, address=args.address)  # Ray up, both workers warm
    one, seconds_one, writing_one = timed_collect(args, 1, "campusnav/ray-collect-one-v0", data_path)
    two, seconds_two, writing_two = timed_collect(args, 2, "campusnav/ray-collect-two-v0", data_path)
    same = identical(one, two)
    steps = int(one.total_steps)
    rate_one, rate_two = steps / seconds_one, steps / seconds_two
    ceiling = seconds_one / (writing_one + (seconds_one - writing_one) / 2)
    return {"steps": steps, "episodes": int(one.total_episodes), "identical": same,
            "seconds": {"1": seconds_one, "2": seconds_two}, "writing_seconds": {"1": writing_one, "2": writing_two},
            "steps_per_second": {"1": rate_one, "2": rate_two}, "ratio": rate_two / rate_one, "ceiling": ceiling}


def report(args: Args, result: dict[str, Any]) -> str:
    rates, seconds = result["steps_per_second"], result["seconds"]
    ratio = result["ratio"]
    verdict = "PASS" if ratio >= TARGET_RATIO else "MISS"
    return "\n".join([
        f"# Collection on Ray workers: CampusNav-v0 pixels, {result['episodes']} episodes x "
        f"{args.max_episode_steps} steps on {args.num_envs} envs", "",
        "| workers | seconds | of which the driver writes | steps/s |", "|---:|---:|---:|---:|",
        *(f"| {k} | {seconds[k]:.2f} | {result['writing_seconds'][k]:.2f} | {rates[k]:,.0f} |" for k in ("1", "2")),
        "", f"Datasets identical: {'yes' if result['identical'] else 'NO'}.", "",
        f"- {verdict}: 2 workers at {ratio:.2f}x the rate of 1 worker (target: at least {TARGET_RATIO}x)",
        f"- ceiling with the write on the driver (1 worker's stepping halved, its write kept): "
        f"{result['ceiling']:.2f}x", "",
    ])


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = tyro.cli(Args, args=argv, description=__doc__.split("\n\n")[0])
    if args.quick:
        args = Args(**{**asdict(args), "episodes": 4, "num_envs": 4, "max_episode_steps": 10})
    if min(args.episodes, args.num_envs, args.max_episode_steps) < 1:
        raise SystemExit("ray_collect.py: --episodes, --num-envs and --max-episode-steps must be positive")
    try:
        require_ray()
    except ImportError as error:
        raise SystemExit(f"ray_collect.py: {error}") from None
    with tempfile.TemporaryDirectory(prefix="ray-collect-") as scratch:
        result = measure(args, args.data_path or scratch)
    markdown = report(args, result)
    print(markdown)
    data = {"args": asdict(args), **result}
    if args.json:
        write_json(Path(args.json), data)
    if not args.quick:
        write_results("ray_collect", markdown, data)
    if not result["identical"]:
        raise SystemExit("ray_collect.py: the datasets of 1 and 2 workers differ")
    return data


if __name__ == "__main__":
    main()
