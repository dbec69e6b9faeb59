"""Steps per second of CampusNav-v0, single and vectorised, against MiniGrid (issue 2, "Speed").

One run measures, each for a fixed wall-time budget after a short warm-up:

- the single env from ``gym.make`` (state and pixel observations);
- the native vector env from ``gym.make_vec`` (its ``vector_entry_point``) at
  N = 1, 64 and 1024 (state and pixels);
- Gymnasium's ``SyncVectorEnv`` over the same env (``vectorization_mode="sync"``);
- MiniGrid's ``MiniGrid-Empty-8x8-v0`` with ``RGBImgObsWrapper`` (64x64x3 pixels),
  the outside reference (skipped with a note when minigrid is not installed).

Actions are random, drawn up front; episodes restart as they end (a reset for the
single envs, autoreset for the vector envs); an env step counts once per env.
It prints a markdown table and the targets as PASS/MISS lines; it is a
benchmark, not a test, so a miss does not fail.

    python benchmarks/env_throughput.py              # about 2 s per row
    python benchmarks/env_throughput.py --quick      # a very short run
    python benchmarks/env_throughput.py --json out.json
    campusnav bench --quick                          # the same, from the command line
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import campus_env  # noqa: F401  (registers CampusNav-v0)

ENV_ID = "CampusNav-v0"
MINIGRID_ID = "MiniGrid-Empty-8x8-v0"
MINIGRID_NAME = f"{MINIGRID_ID} + RGBImgObsWrapper, pixels"
TARGET_PIXEL_RATIO = 75.0  # native vector pixels at N=1024 vs MiniGrid pixels
TARGET_VECTOR_STATE = 1_000_000  # native vector state steps/s
TARGET_SINGLE_STATE = 20_000  # single env state steps/s
ACTION_BLOCK = 4096  # env steps of random actions drawn up front (per env for vector envs, capped)


@dataclass
class Row:
    """One measured configuration."""

    name: str
    kind: str  # "single", "native", "sync" or "minigrid"
    obs: str  # "state" or "pixels"
    num_envs: int
    steps: int  # env steps timed (each env of a vector env counts)
    seconds: float
    steps_per_s: float


@dataclass
class Check:
    """One target, as PASS, MISS or SKIP."""

    name: str
    value: float | None
    target: float
    status: str
    detail: str


# --- the timed loops ------------------------------------------------------


def time_single(env: gym.Env, seconds: float, warmup: float, seed: int = 0) -> tuple[int, float]:
    """Steps a single env with random actions for ``seconds`` after ``warmup``; returns (steps, elapsed)."""
    n_actions = int(env.action_space.n)
    actions = np.random.default_rng(seed).integers(0, n_actions, ACTION_BLOCK).tolist()
    env.reset(seed=seed)
    clock = time.perf_counter
    steps, i, start, timing = 0, 0, clock(), False
    deadline = start + warmup
    while True:
        _, _, terminated, truncated, _ = env.step(actions[i])
        i = (i + 1) % ACTION_BLOCK
        if terminated or truncated:
            env.reset()
        steps += 1
        now = clock()
        if now >= deadline:
            if timing:
                return steps, now - start
            steps, start, deadline, timing = 0, now, now + seconds, True


def time_vector(envs: gym.vector.VectorEnv, seconds: float, warmup: float, seed: int = 0) -> tuple[int, float]:
    """Steps a vector env (autoreset) with random actions; returns (env steps, elapsed)."""
    n_actions = int(envs.single_action_space.n)
    block = max(8, min(ACTION_BLOCK, 2**20 // envs.num_envs))
    actions = np.random.default_rng(seed).integers(0, n_actions, (block, envs.num_envs))
    envs.reset(seed=seed)
    clock = time.perf_counter
    steps, i, start, timing = 0, 0, clock(), False
    deadline = start + warmup
    while True:
        envs.step(actions[i])
        i = (i + 1) % block
        steps += 1
        now = clock()
        if now >= deadline:
            if timing:
                return steps * envs.num_envs, now - start
            steps, start, deadline, timing = 0, now, now + seconds, True


# --- the configurations ---------------------------------------------------


def make_minigrid() -> gym.Env | None:
    """MiniGrid-Empty-8x8-v0 with 64x64x3 pixel observations, or None without minigrid."""
    try:
        import minigrid  # noqa: F401  (registers the MiniGrid ids)
        from minigrid.wrappers import RGBImgObsWrapper
    except ImportError:
        return None
    return RGBImgObsWrapper(gym.make(MINIGRID_ID))


def configurations(num_envs: Sequence[int], sync_envs: int) -> list[tuple[str, str, str, int, Callable[[], Any]]]:
    """(name, kind, obs, N, factory) of every CampusNav-v0 row."""
    rows = []
    for obs in ("state", "pixels"):
        rows.append((f"single env, gym.make, {obs}", "single", obs, 1,
                     lambda obs=obs: gym.make(ENV_ID, obs_mode=obs)))
    for obs in ("state", "pixels"):
        for n in num_envs:
            rows.append((f"native vector env, N={n}, {obs}", "native", obs, n,
                         lambda n=n, obs=obs: gym.make_vec(ENV_ID, num_envs=n, obs_mode=obs,
                                                           vectorization_mode="vector_entry_point")))
    if sync_envs > 0:
        for obs in ("state", "pixels"):
            rows.append((f"SyncVectorEnv, N={sync_envs}, {obs}", "sync", obs, sync_envs,
                         lambda obs=obs: gym.make_vec(ENV_ID, num_envs=sync_envs, obs_mode=obs,
                                                      vectorization_mode="sync")))
    return rows


def measure(
    seconds: float,
    warmup: float,
    num_envs: Sequence[int] = (1, 64, 1024),
    sync_envs: int = 64,
    log: Callable[[str], None] = print,
) -> tuple[list[Row], str | None]:
    """Measures every configuration; returns the rows and a note when MiniGrid was skipped."""
    rows = []
    for name, kind, obs, n, factory in configurations(num_envs, sync_envs):
        env = factory()
        timer = time_single if kind == "single" else time_vector
        steps, elapsed = timer(env, seconds, warmup)
        env.close()
        rows.append(Row(name, kind, obs, n, steps, elapsed, steps / elapsed))
        log(f"  {name:<52} {steps / elapsed:>14,.0f} steps/s")
    note = None
    env = make_minigrid()
    if env is None:
        note = f"{MINIGRID_ID}: skipped, minigrid is not installed (pip install minigrid)"
        log(f"  {note}")
    else:
        steps, elapsed = time_single(env, seconds, warmup)
        env.close()
        rows.append(Row(MINIGRID_NAME, "minigrid", "pixels", 1, steps, elapsed, steps / elapsed))
        log(f"  {MINIGRID_NAME:<52} {steps / elapsed:>14,.0f} steps/s")
    return rows, note


# --- the report -----------------------------------------------------------


def _find(rows: list[Row], kind: str, obs: str, num_envs: int | None = None) -> Row | None:
    for row in rows:
        if row.kind == kind and row.obs == obs and (num_envs is None or row.num_envs == num_envs):
            return row
    return None


def _ratio(value: float, reference: Row | None) -> str:
    return "—" if reference is None else f"{value / reference.steps_per_s:,.1f}×"


def table(rows: list[Row]) -> str:
    """The markdown table: configuration, steps/s, ratio vs MiniGrid pixels, ratio vs the single env."""
    minigrid = _find(rows, "minigrid", "pixels")
    lines = [
        "| configuration | steps/s | × MiniGrid pixels | × single env (same obs) |",
        "|---|---:|---:|---:|",
    ]
    for row in rows:
        single = _find(rows, "single", row.obs)
        lines.append(
            f"| {row.name} | {row.steps_per_s:,.0f} | {_ratio(row.steps_per_s, minigrid)} "
            f"| {_ratio(row.steps_per_s, single)} |"
        )
    return "\n".join(lines)


def checks(rows: list[Row]) -> list[Check]:
    """The issue's three targets."""
    out = []
    minigrid = _find(rows, "minigrid", "pixels")
    big = _find(rows, "native", "pixels", 1024)
    name = f"native vector pixels at N=1024 >= {TARGET_PIXEL_RATIO:g}x MiniGrid pixels"
    if minigrid is None or big is None:
        missing = "MiniGrid was not measured" if minigrid is None else "N=1024 was not measured"
        out.append(Check(name, None, TARGET_PIXEL_RATIO, "SKIP", missing))
    else:
        ratio = big.steps_per_s / minigrid.steps_per_s
        out.append(Check(name, ratio, TARGET_PIXEL_RATIO, "PASS" if ratio >= TARGET_PIXEL_RATIO else "MISS",
                         f"{ratio:,.1f}x ({big.steps_per_s:,.0f} vs {minigrid.steps_per_s:,.0f} steps/s)"))
    native_state = [row for row in rows if row.kind == "native" and row.obs == "state"]
    name = f"native vector state >= {TARGET_VECTOR_STATE:,} steps/s"
    if not native_state:
        out.append(Check(name, None, TARGET_VECTOR_STATE, "SKIP", "not measured"))
    else:
        best = max(native_state, key=lambda row: row.steps_per_s)
        status = "PASS" if best.steps_per_s >= TARGET_VECTOR_STATE else "MISS"
        out.append(Check(name, best.steps_per_s, TARGET_VECTOR_STATE, status,
                         f"{best.steps_per_s:,.0f} steps/s at N={best.num_envs}"))
    single = _find(rows, "single", "state")
    name = f"single env state >= {TARGET_SINGLE_STATE:,} steps/s"
    if single is None:
        out.append(Check(name, None, TARGET_SINGLE_STATE, "SKIP", "not measured"))
    else:
        status = "PASS" if single.steps_per_s >= TARGET_SINGLE_STATE else "MISS"
        out.append(Check(name, single.steps_per_s, TARGET_SINGLE_STATE, status,
                         f"{single.steps_per_s:,.0f} steps/s"))
    return out


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
        "gymnasium": gym.__version__,
    }


# --- the command line -----------------------------------------------------


def _positive(convert: Callable[[str], float], allow_zero: bool = False) -> Callable[[str], Any]:
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (value >= 0 if allow_zero else value > 0) or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"expected a {'non-negative' if allow_zero else 'positive'} "
                                             f"finite number, got {text!r}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options (``campusnav bench`` shares them)."""
    parser.add_argument("--seconds", type=_positive(float), default=None,
                        help="timed seconds per configuration (default: 2, or 0.2 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a very short run (0.2 s per configuration)")
    parser.add_argument("--num-envs", type=_positive(int), nargs="+", default=[1, 64, 1024], metavar="N",
                        help="sizes of the native vector env (default: 1 64 1024)")
    parser.add_argument("--sync-envs", type=_positive(int, allow_zero=True), default=64, metavar="N",
                        help="size of the SyncVectorEnv (default: 64; 0 leaves it out)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the numbers here")


def run_from_args(args: argparse.Namespace) -> int:
    seconds = args.seconds if args.seconds is not None else (0.2 if args.quick else 2.0)
    warmup = min(0.5, max(0.02, 0.15 * seconds))
    info = machine()
    print(f"# {ENV_ID} throughput: {seconds:g} s per configuration after {warmup:g} s of warm-up")
    print(f"# {info['platform']}, {info['cpus']} CPUs, Python {info['python']}, "
          f"numpy {info['numpy']}, gymnasium {info['gymnasium']}")
    rows, note = measure(seconds, warmup, args.num_envs, args.sync_envs)
    print()
    print(table(rows))
    if note:
        print(f"\n{note}")
    print()
    results = checks(rows)
    for check in results:
        print(f"{check.status}  {check.name}: {check.detail}")
    if args.json is not None:
        report = {
            "seconds": seconds,
            "warmup": warmup,
            "machine": info,
            "rows": [asdict(row) for row in rows],
            "checks": [asdict(check) for check in results],
            "note": note,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_name(args.json.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n")
        tmp.replace(args.json)
        print(f"\nwrote {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
