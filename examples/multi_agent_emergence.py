"""Emergent paths: many walkers on one campus over a simulated week, with and without trails.

`campus_env.multi_agent.parallel_env(respawn=True)` runs a campus day from 7:00 to 23:00:
a walker that arrives starts a new trip at once, to a goal the context causes at that
minute. A week is seven such days chained with do(day=d) (each day's weather and gameday
drawn from its own seed) and `reset(options={"keep_trails": True})`, so that the grass
worn on Monday is still worn on Tuesday. Every walker follows the trail-aware
shortest-path oracle (`campus_env.multi_agent.policies.TrailOracle`): expected travel
time under weather, crowd and closures, eased by trails, plus a discomfort on unworn grass
that a trail takes away, as in Helbing et al.'s active walker model (1997). Walkers are
part of the world: a cell holds 4 of them, their density blocks moves like a crowd, and
the grass they walk wears into trails.

Each condition (natural context, do(gameday=True), do(weather="rainy")) runs with
trails and with trails switched off by do(trail=0), for every `--counts` walker count.
It prints and writes (`--out`/results.md) three tables:

- per condition, at `--walkers`: travel time of a trip (minutes, over the trips that
  end: in a jam, read it beside trips per walker per day), trips per walker per day,
  the share of footfall (moves into a cell) on the busiest 5% of walkable cells on the
  first and last day, and how far the traffic and the worn trails depart from the
  single-agent shortest paths on the empty campus (CampusNav-v0's `ShortestPathPolicy`
  between every pair of buildings, sunny, no crowd, Wednesday noon);
- travel time against the number of walkers;
- the top-5% share day by day (does traffic concentrate as trails form?).

It also writes `traffic.mp4` (GIF without an imageio video backend): the campus beside
a heat map of the last `--frame-minutes` of footfall, over the natural week with
trails; `trail_map.png`: the trails that formed, the week's footfall and the
single-agent paths; and `metrics.json`.

    python examples/multi_agent_emergence.py
    python examples/multi_agent_emergence.py --walkers 200 --counts 1 200 --days 3
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tyro

from campus_env import causal
from campus_env import layout as lay
from campus_env.env import CampusNavEnv
from campus_env.multi_agent import parallel_env
from campus_env.multi_agent.core import OUTDOOR
from campus_env.multi_agent.policies import TrailOracle
from campus_env.oracle import ShortestPathPolicy
from campusnav.harness import markdown_table
from campusnav.results import plain
from wrappers.recorder import add_caption, write_video

CONDITIONS: dict[str, dict[str, Any]] = {
    "natural": {},
    "do(gameday=True)": {"gameday": True},
    "do(weather='rainy')": {"weather": "rainy"},
}
TOP_SHARE = 0.05  # the busiest share of walkable cells
WORN = 0.3  # wear from which a grass cell counts as a trail (the renderer's first trail level)
EMPTY_CAMPUS = {"weather": "sunny", "crowd": 0.0, "day": 2, "hour": 12.0}  # the single-agent reference


@dataclass(frozen=True)
class Args:
    """Many walkers over a simulated week: trails, traffic and travel time under interventions."""

    walkers: int = 500
    """walkers of the main runs (the video, the picture, the per-condition table)"""
    counts: list[int] = dataclasses.field(default_factory=lambda: [1, 50, 500])
    """walker counts of the travel-time table (the largest should be --walkers)"""
    days: int = 7
    """simulated days per run, Monday first"""
    day_minutes: int = 960
    """minutes per simulated day, from 7:00 (960: until 23:00)"""
    grass_cost: float = 0.5
    """the oracle's planning cost of unworn grass, taken away by a worn trail (0: trails only ease slips and crowds)"""
    semester: str = "fall"
    """semester of the week ("fall": gameday Saturdays are likely)"""
    frame_minutes: int = 20
    """minutes of footfall per video frame"""
    fps: int = 8
    """frames per second of the video"""
    seed: int = 0
    """day d of every run uses seed + d: the same seven days in every condition"""
    out: str = "runs/multi_agent_emergence"
    """output folder"""
    tiny: bool = False
    """a tiny budget for tests: a few walkers, two short days"""


def parse_args(argv: list[str] | None = None) -> Args:
    """One --flag per field of Args, its docstring as the help (tyro)."""
    args = tyro.cli(Args, args=argv, description=__doc__)
    if args.tiny:
        args = dataclasses.replace(args, walkers=12, counts=[1, 12], days=2, day_minutes=40, frame_minutes=10)
    if args.walkers < 1 or min(args.counts, default=0) < 1 or not 1 <= args.days <= 7:
        raise SystemExit("--walkers and --counts must be positive and --days in 1..7")
    if not 1 <= args.day_minutes <= causal.LAST_MINUTE - causal.FIRST_MINUTE:
        raise SystemExit(f"--day-minutes must be in 1..{causal.LAST_MINUTE - causal.FIRST_MINUTE}")
    return args


def single_agent_paths() -> np.ndarray:
    """(padded cells,) bool: the cells of CampusNav-v0's oracle routes between every pair of buildings,
    on the empty campus (``EMPTY_CAMPUS``)."""
    env, oracle = CampusNavEnv(obs_mode="state"), ShortestPathPolicy()
    core = env.core
    on_path = np.zeros(core.cells, dtype=bool)
    for start in lay.BUILDING_NAMES:
        for goal in lay.BUILDING_NAMES:
            if start != goal:
                env.reset(seed=0, options={"do": EMPTY_CAMPUS, "start": start, "goal": goal})
                rows, cols = np.array(oracle.route(env)).T
                on_path[core.layout.flat(rows, cols)] = True
    return on_path


def top_share(footfall: np.ndarray) -> float:
    """Share of the footfall on the busiest ``TOP_SHARE`` of the cells given."""
    top = max(1, round(TOP_SHARE * len(footfall)))
    total = footfall.sum()
    return float(np.sort(footfall)[::-1][:top].sum() / total) if total else 0.0


def walk_week(args: Args, walkers: int, do: dict[str, Any], trails: bool, film: bool = False) -> dict[str, Any]:
    """One week of ``walkers`` under ``do`` (trails held at 0 unless ``trails``); footfall, trips, trails.

    With ``film``, also a frame every ``frame_minutes``: the campus beside the heat map of that footfall.
    """
    env = parallel_env(num_agents=walkers, obs_mode="state", respawn=True, semester=args.semester,
                       max_cycles=args.day_minutes, render_mode="rgb_array" if film else None)
    policy, core = TrailOracle(grass_cost=args.grass_cost), env.core
    days, frames, trip_steps = [], [], []
    week = np.zeros(core.cells)
    for day in range(args.days):
        options = {"do": {**do, "day": day, **({} if trails else {"trail": 0.0})}, "keep_trails": True}
        env.reset(seed=args.seed + day, options=options)
        footfall, window, trips = np.zeros(core.cells), np.zeros(core.cells), 0
        while env.agents:
            before = core.pos.copy()
            env.step(policy(env))
            entered = np.bincount(core.pos[core.pos != before], minlength=core.cells)
            footfall += entered
            trips += int(core.arrived.sum())
            trip_steps.append(core.last_trip_steps[core.arrived])
            if film:
                window += entered
                if core.t[0] % args.frame_minutes == 0:
                    frames.append(heat_frame(env, window, args.frame_minutes))
                    window[:] = 0
        week += footfall
        context = env.causal_values()
        days.append({"day": causal.DAY_NAMES[context["day"]], "weather": context["weather"],
                     "gameday": context["gameday"], "trips": trips, "footfall": footfall,
                     "trail": float(core.trail[core.grass].mean())})
    steps = np.concatenate(trip_steps) if trip_steps else np.zeros(0)
    frame = env.render() if film else None
    return {"walkers": walkers, "days": days, "footfall": week, "trail": core.trail.copy(),
            "travel": float(steps.mean()) if len(steps) else float("nan"), "trips": len(steps),
            "frames": frames, "last_frame": frame}


def heat_frame(env: Any, footfall: np.ndarray, minutes: int) -> np.ndarray:
    """The campus now beside a heat map (log scale, its own maximum) of ``footfall`` over the last ``minutes``."""
    import matplotlib

    campus = env.render()
    L = env.core.layout
    grid = footfall.reshape(L.terrain.shape)[lay.PAD : lay.PAD + L.height, lay.PAD : lay.PAD + L.width]
    level = np.log1p(grid) / max(np.log1p(grid.max()), 1e-9)
    color = matplotlib.colormaps["inferno"](level)[..., :3] * 255
    px = campus.shape[1] // L.width
    alpha = (0.15 + 0.85 * level)[..., None].repeat(px, 0).repeat(px, 1)
    base = campus[: L.height * px].astype(np.float64) * 0.35
    heat = (1 - alpha) * base + alpha * color.repeat(px, 0).repeat(px, 1)
    panel = add_caption(heat.astype(np.uint8), [f"footfall over the last {minutes} minutes",
                                                f"busiest cell: {int(grid.max())} moves"])
    panel = panel[: campus.shape[0]] if panel.shape[0] >= campus.shape[0] else np.pad(
        panel, ((0, campus.shape[0] - panel.shape[0]), (0, 0), (0, 0)))
    return np.concatenate([campus, panel], axis=1)


def summary(run: dict[str, Any], walkable: np.ndarray, on_path: np.ndarray, grass: np.ndarray) -> dict[str, Any]:
    """The numbers of one run: travel, trips, concentration per day, departure from the single-agent paths."""
    footfall, days = run["footfall"], run["days"]
    worn = (run["trail"] >= WORN) & grass
    total = footfall[walkable].sum()
    return {
        "walkers": run["walkers"],
        "travel_minutes": run["travel"],
        "trips_per_walker_per_day": run["trips"] / (run["walkers"] * len(days)),
        "top5_share_by_day": [top_share(d["footfall"][walkable]) for d in days],
        "top5_share_week": top_share(footfall[walkable]),
        "footfall_off_paths": float(footfall[walkable & ~on_path].sum() / total) if total else 0.0,
        "worn_cells": int(worn.sum()),
        "worn_off_paths": float((worn & ~on_path).sum() / worn.sum()) if worn.any() else 0.0,
        "trail_by_day": [d["trail"] for d in days],
        "days": [{k: v for k, v in d.items() if k != "footfall"} for d in days],
    }


def trail_map(path: Path, main: dict[str, Any], layout: lay.Layout, on_path: np.ndarray, title: str) -> None:
    """The campus at the week's end, the trails that formed and the week's footfall, single-agent paths marked."""
    import matplotlib.pyplot as plt

    def crop(field: np.ndarray) -> np.ndarray:
        return field.reshape(layout.terrain.shape)[lay.PAD : lay.PAD + layout.height, lay.PAD : lay.PAD + layout.width]

    rows, cols = np.nonzero(crop(on_path))
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.4))
    axes[0].imshow(main["last_frame"])
    axes[0].set_title("the campus at the end of the week")
    shown = axes[1].imshow(crop(main["trail"]), cmap="YlOrBr", vmin=0, vmax=1)
    axes[1].set_title("trail wear (dots: single-agent shortest paths)")
    fig.colorbar(shown, ax=axes[1], fraction=0.046)
    shown = axes[2].imshow(np.log10(1 + crop(main["footfall"])), cmap="inferno")
    axes[2].set_title("the week's footfall, log10(1 + moves)")
    fig.colorbar(shown, ax=axes[2], fraction=0.046)
    for ax in axes[1:]:
        ax.scatter(cols, rows, s=3, c="tab:blue")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def tables(args: Args, results: dict[tuple[str, bool, int], dict[str, Any]]) -> str:
    """The three markdown tables of the run."""
    big = args.walkers
    rows = []
    for name in CONDITIONS:
        for trails in (True, False):
            s = results[name, trails, big]
            shares = s["top5_share_by_day"]
            rows.append([name, "on" if trails else "off (do(trail=0))", f"{s['travel_minutes']:.1f}",
                         f"{s['trips_per_walker_per_day']:.2f}", f"{pct(shares[0])} → {pct(shares[-1])}",
                         pct(s["footfall_off_paths"]), f"{s['worn_cells']} ({pct(s['worn_off_paths'])})"])
    first = markdown_table(
        ["condition", "trails", "travel (min/trip)", "trips/walker/day", "top-5% share, first → last day",
         "footfall off single-agent paths", "worn grass cells (off those paths)"], rows, align="llrrrrr")
    counts = sorted(set(args.counts) | {big})
    arms = [(name, t) for name in CONDITIONS for t in (True, False)]
    arm_names = [f"{name}, trails {'on' if t else 'off'}" for name, t in arms]

    def travel(s: dict[str, Any]) -> str:
        return f"{s['travel_minutes']:.1f} ({s['trips_per_walker_per_day']:.1f})"

    second = markdown_table(["walkers"] + arm_names,
                            [[str(n)] + [travel(results[name, t, n]) for name, t in arms] for n in counts],
                            align="l" + "r" * len(arms))
    natural = results["natural", True, big]["days"]
    third = markdown_table(
        ["day", "weather (natural)"] + arm_names,
        [[d["day"], d["weather"] + (", gameday" if d["gameday"] else "")]
         + [pct(results[name, t, big]["top5_share_by_day"][i]) for name, t in arms] for i, d in enumerate(natural)],
        align="ll" + "r" * len(arms))
    return (f"### {big} walkers, {args.days} days of {args.day_minutes} minutes\n\n{first}\n\n"
            f"### Travel time (minutes per trip) against the number of walkers (trips per walker per day)\n\n"
            f"{second}\n\n### Share of footfall on the busiest 5% of walkable cells, day by day ({big} walkers)\n\n"
            f"{third}\n")


if __name__ == "__main__":
    args = parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    on_path = single_agent_paths()
    probe = parallel_env(num_agents=1).core
    walkable, grass = np.isin(probe.terrain, OUTDOOR), probe.grass
    counts = sorted(set(args.counts) | {args.walkers})
    results, main = {}, None
    for name, do in CONDITIONS.items():
        for trails in (True, False):
            for walkers in counts:
                film = name == "natural" and trails and walkers == args.walkers
                t0 = time.perf_counter()
                run = walk_week(args, walkers, do, trails, film=film)
                main = run if film else main
                results[name, trails, walkers] = summary(run, walkable, on_path, grass)
                print(f"{name:22s} trails {'on ' if trails else 'off'} {walkers:5d} walkers: "
                      f"{results[name, trails, walkers]['travel_minutes']:6.1f} min/trip, "
                      f"{results[name, trails, walkers]['trips_per_walker_per_day']:5.2f} trips/walker/day "
                      f"({time.perf_counter() - t0:.0f} s)")
    video = write_video(main["frames"], out / "traffic.mp4", fps=args.fps)
    trail_map(out / "trail_map.png", main, probe.layout, on_path,
              f"{args.walkers} walkers, {args.days} days, natural context, trails on")
    report = tables(args, results)
    print("\n" + report)
    (out / "results.md").write_text(f"# Emergent paths\n\n{report}", encoding="utf-8")
    metrics = {"args": dataclasses.asdict(args), "wall_seconds": time.perf_counter() - started,
               "runs": [{"condition": name, "trails": trails, **s} for (name, trails, _), s in results.items()]}
    (out / "metrics.json").write_text(json.dumps(plain(metrics), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}/: {video.name} ({len(main['frames'])} frames), trail_map.png, results.md, metrics.json "
          f"in {metrics['wall_seconds']:.0f} s")
