"""Steps per second of CampusNav-v0, single and vectorised, against MiniGrid (``campusnav bench``).

Each configuration runs random actions (drawn up front) for a fixed wall-time
budget after a short warm-up; episodes restart as they end (a reset for single
envs, autoreset for vector envs) and an env step counts once per env:

- the single env from ``gym.make`` (state and pixel observations);
- the native vector env from ``gym.make_vec`` (its ``vector_entry_point``) at
  several sizes (state and pixels);
- Gymnasium's ``SyncVectorEnv`` over the same env (``vectorization_mode="sync"``);
- MiniGrid's ``MiniGrid-Empty-8x8-v0`` with ``RGBImgObsWrapper`` (64x64x3 pixels),
  the outside reference (skipped with a note when minigrid is not installed).

It prints a markdown table and the targets as PASS/MISS lines; a miss does not
fail. ``benchmarks/env_throughput.py`` runs the same from a source checkout.

    campusnav bench --quick                      # a very short run
    campusnav bench --num-envs 1 64 --json out.json
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from campusnav.harness import Target, machine_info, markdown_table, measure_rate, ratio, write_json, write_results

__all__ = ["BenchConfig", "Row", "check_config", "measure", "run_bench", "table", "targets"]

ENV_ID = "CampusNav-v0"
MINIGRID_ID = "MiniGrid-Empty-8x8-v0"
MINIGRID_NAME = f"{MINIGRID_ID} + RGBImgObsWrapper, pixels"
TARGET_PIXEL_RATIO = 75.0  # native vector pixels at N=1024 vs MiniGrid pixels
TARGET_VECTOR_STATE = 1_000_000  # native vector state steps/s
TARGET_SINGLE_STATE = 20_000  # single env state steps/s
ACTION_BLOCK = 4096  # env steps of random actions drawn up front (per env for vector envs, capped)


@dataclass(frozen=True)
class BenchConfig:
    """Options of ``campusnav bench``."""

    seconds: float | None = None
    """timed seconds per configuration (default: 2, or 0.2 with --quick)"""
    quick: bool = False
    """a very short run (0.2 s per configuration)"""
    num_envs: tuple[int, ...] = (1, 64, 1024)
    """sizes of the native vector env"""
    sync_envs: int = 64
    """size of the SyncVectorEnv (0 leaves it out)"""
    json: str | None = None
    """also write the numbers to this JSON file"""
    results: bool = False
    """also write the docs' result files, env_throughput.{md,json} (not with --quick)"""
    threads: int | None = None
    """torch threads per process (default: one, the fastest for the zoo's small networks)"""


def check_config(config: BenchConfig) -> None:
    """Raises ``ValueError`` naming the option that is out of range."""
    if config.seconds is not None and not 0 < config.seconds < float("inf"):
        raise ValueError(f"argument --seconds: expected a positive finite number, got {config.seconds}")
    if not config.num_envs or min(config.num_envs) < 1:
        raise ValueError(f"argument --num-envs: expected positive integers, got {list(config.num_envs)}")
    if config.sync_envs < 0:
        raise ValueError(f"argument --sync-envs: expected a non-negative integer, got {config.sync_envs}")


@dataclass
class Row:
    """One measured configuration."""

    name: str
    kind: str  # "single", "native", "sync" or "minigrid"
    obs: str  # "state" or "pixels"
    num_envs: int
    steps_per_s: float


def single_stepper(env: gym.Env, seed: int = 0) -> Callable[[], int]:
    """One random step of a single env per call (a reset when an episode ends)."""
    actions = itertools.cycle(np.random.default_rng(seed).integers(0, int(env.action_space.n), ACTION_BLOCK).tolist())
    env.reset(seed=seed)

    def step() -> int:
        _, _, terminated, truncated, _ = env.step(next(actions))
        if terminated or truncated:
            env.reset()
        return 1

    return step


def vector_stepper(envs: gym.vector.VectorEnv, seed: int = 0) -> Callable[[], int]:
    """One random step of every env of a vector env (autoreset) per call."""
    block = max(8, min(ACTION_BLOCK, 2**20 // envs.num_envs))
    actions = np.random.default_rng(seed).integers(0, int(envs.single_action_space.n), (block, envs.num_envs))
    rows = itertools.cycle(actions)
    envs.reset(seed=seed)

    def step() -> int:
        envs.step(next(rows))
        return envs.num_envs

    return step


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
    import campus_env  # noqa: F401  (registers CampusNav-v0)

    rows = []
    for name, kind, obs, n, factory in configurations(num_envs, sync_envs):
        env = factory()
        stepper = single_stepper(env) if kind == "single" else vector_stepper(env)
        rows.append(Row(name, kind, obs, n, measure_rate(stepper, seconds, warmup).best))
        env.close()
        log(f"  {name:<52} {rows[-1].steps_per_s:>14,.0f} steps/s")
    env = make_minigrid()
    if env is None:
        note = f"{MINIGRID_ID}: skipped, minigrid is not installed (pip install minigrid)"
        log(f"  {note}")
        return rows, note
    rows.append(Row(MINIGRID_NAME, "minigrid", "pixels", 1, measure_rate(single_stepper(env), seconds, warmup).best))
    env.close()
    log(f"  {MINIGRID_NAME:<52} {rows[-1].steps_per_s:>14,.0f} steps/s")
    return rows, None


def _find(rows: list[Row], kind: str, obs: str, num_envs: int | None = None) -> Row | None:
    for row in rows:
        if row.kind == kind and row.obs == obs and (num_envs is None or row.num_envs == num_envs):
            return row
    return None


def _rate(row: Row | None) -> float | None:
    return None if row is None else row.steps_per_s


def table(rows: list[Row]) -> str:
    """The markdown table: configuration, steps/s, ratio vs MiniGrid pixels, ratio vs the single env."""
    minigrid = _rate(_find(rows, "minigrid", "pixels"))
    cells = [[row.name, f"{row.steps_per_s:,.0f}", ratio(row.steps_per_s, minigrid),
              ratio(row.steps_per_s, _rate(_find(rows, "single", row.obs)))] for row in rows]
    return markdown_table(["configuration", "steps/s", "× MiniGrid pixels", "× single env (same obs)"], cells,
                          align="lrrr")


def targets(rows: list[Row]) -> list[Target]:
    """The three targets: pixels against MiniGrid, the vector env on state, the single env on state."""
    minigrid, big = _find(rows, "minigrid", "pixels"), _find(rows, "native", "pixels", 1024)
    name = f"native vector pixels at N=1024 >= {TARGET_PIXEL_RATIO:g}x MiniGrid pixels"
    if minigrid is None or big is None:
        pixels = Target(name, None, TARGET_PIXEL_RATIO,
                        "MiniGrid was not measured" if minigrid is None else "N=1024 was not measured")
    else:
        value = big.steps_per_s / minigrid.steps_per_s
        pixels = Target(name, value, TARGET_PIXEL_RATIO,
                        f"{value:,.1f}x ({big.steps_per_s:,.0f} vs {minigrid.steps_per_s:,.0f} steps/s)")
    native_state = [row for row in rows if row.kind == "native" and row.obs == "state"]
    name = f"native vector state >= {TARGET_VECTOR_STATE:,} steps/s"
    if native_state:
        best = max(native_state, key=lambda row: row.steps_per_s)
        vector = Target(name, best.steps_per_s, TARGET_VECTOR_STATE,
                        f"{best.steps_per_s:,.0f} steps/s at N={best.num_envs}")
    else:
        vector = Target(name, None, TARGET_VECTOR_STATE)
    single = _find(rows, "single", "state")
    name = f"single env state >= {TARGET_SINGLE_STATE:,} steps/s"
    detail = "not measured" if single is None else f"{single.steps_per_s:,.0f} steps/s"
    return [pixels, vector, Target(name, _rate(single), TARGET_SINGLE_STATE, detail)]


def run_bench(config: BenchConfig = BenchConfig()) -> int:
    """Measures, prints the table and the target lines, and writes ``config.json`` when given."""
    check_config(config)
    seconds = config.seconds if config.seconds is not None else (0.2 if config.quick else 2.0)
    warmup = min(0.5, max(0.02, 0.15 * seconds))
    info = {**machine_info(), "numpy": np.__version__, "gymnasium": gym.__version__}
    print(f"# {ENV_ID} throughput: {seconds:g} s per configuration after {warmup:g} s of warm-up")
    print(f"# {info['platform']}, {info['cpus']} CPUs, Python {info['python']}, "
          f"numpy {info['numpy']}, gymnasium {info['gymnasium']}")
    rows, note = measure(seconds, warmup, config.num_envs, config.sync_envs)
    print(f"\n{table(rows)}")
    if note:
        print(f"\n{note}")
    print()
    results = targets(rows)
    for target in results:
        print(target.line)
    report = {"seconds": seconds, "warmup": warmup, "machine": info, "rows": [asdict(row) for row in rows],
              "checks": [target.as_dict() for target in results], "note": note}
    if config.json is not None:
        print(f"\nwrote {write_json(Path(config.json), report)}")
    if config.results and not config.quick:
        lines = [table(rows), ""] + [f"- {target.line}" for target in results] + ([f"- {note}"] if note else [])
        path = write_results("env_throughput", "\n".join(lines), report)
        print(f"wrote {path}")
    return 0
