"""Agent-steps per second of many walkers on one campus, beside the single-agent native vector env.

One run measures, with the same number of walkers and envs (500 by default):

- the walkers' batched core (``campus_env.multi_agent.core.WalkerCore``), arrays in
  and arrays out: ``step`` alone, with the flat state observations, and with the
  egocentric pixel observations;
- the PettingZoo dict API of ``campus_env.multi_agent.parallel_env``: a dict of
  actions in, dicts of observations, rewards, ends and infos out (state, pixels);
- CampusNav-v0's native vector env at as many envs (state, pixels), whose steps
  are agent-steps too.

Random actions; a world whose episode ends is reset. Each row is the best of
``--repeats`` timed windows (``campusnav.harness``). It prints a markdown table
and the targets of issue 25 as PASS/MISS lines (a miss does not fail); a full
run writes ``docs/results/multi_agent_throughput.{md,json}``.

    python benchmarks/multi_agent_throughput.py              # about half a minute
    python benchmarks/multi_agent_throughput.py --quick      # a few seconds, writes nothing
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import tyro

import campus_env  # noqa: F401  (registers CampusNav-v0)
from campus_env import noise
from campus_env.env import build_obs
from campus_env.multi_agent import parallel_env
from campus_env.multi_agent.core import WalkerCore
from campus_env.multi_agent.render import WalkerRenderer
from campusnav.bench import vector_stepper
from campusnav.harness import Target, machine_info, markdown_table, measure_rate, write_json, write_results

TARGETS = {  # row name -> agent-steps/s (issue 25)
    "core, state": 1_000_000,
    "PettingZoo dict API, state": 200_000,
    "core, pixels": 50_000,
}
EPISODE = 200
ACTION_BLOCK = 64


def core_stepper(walkers: int, obs: str, seed: int = 0) -> Callable[[], int]:
    """One step of every walker of a ``WalkerCore`` per call, then its observations (``obs``: none, state, pixels)."""
    core = WalkerCore(walkers)
    renderer = WalkerRenderer(core) if obs == "pixels" else None
    actions = np.random.default_rng(seed).integers(0, 5, (ACTION_BLOCK, walkers))
    state = {"call": 0, "episode": 0}

    def step() -> int:
        if core.t[0] >= EPISODE or not core.active.any():
            state["episode"] += 1
            core.reset_world(noise.mix(np.uint64(seed), np.uint64(state["episode"]), 0), {}, {})
        out = int(core.active.sum())
        core.step(actions[state["call"] % ACTION_BLOCK])
        if obs != "none":
            build_obs(core, renderer, obs, True)
        state["call"] += 1
        return out

    core.reset_world(seed, {}, {})
    return step


def api_stepper(walkers: int, obs_mode: str, seed: int = 0) -> Callable[[], int]:
    """One ``env.step(dict)`` of the PettingZoo env per call, the action dict built from an array."""
    env = parallel_env(num_agents=walkers, obs_mode=obs_mode, max_cycles=EPISODE)
    actions = np.random.default_rng(seed).integers(0, 5, (ACTION_BLOCK, walkers)).tolist()
    state = {"call": 0}

    def step() -> int:
        if not env.agents:
            env.reset()
        row = actions[state["call"] % ACTION_BLOCK]
        state["call"] += 1
        env.step(dict(zip(env.agents, row, strict=False)))  # the row has a walker for every agent and more
        return len(env.agents)

    env.reset(seed=seed)
    return step


def measure(walkers: int, seconds: float, warmup: float, repeats: int) -> list[tuple[str, float]]:
    """(row name, agent-steps per second) for every configuration."""
    steppers: list[tuple[str, Callable[[], Callable[[], int]]]] = [
        ("core, step only", lambda: core_stepper(walkers, "none")),
        ("core, state", lambda: core_stepper(walkers, "state")),
        ("core, pixels", lambda: core_stepper(walkers, "pixels")),
        ("PettingZoo dict API, state", lambda: api_stepper(walkers, "state")),
        ("PettingZoo dict API, pixels", lambda: api_stepper(walkers, "pixels")),
        ("native vector env (single-agent), state",
         lambda: vector_stepper(gym.make_vec("CampusNav-v0", num_envs=walkers, obs_mode="state"))),
        ("native vector env (single-agent), pixels",
         lambda: vector_stepper(gym.make_vec("CampusNav-v0", num_envs=walkers, obs_mode="pixels"))),
    ]
    rows = []
    for name, make in steppers:
        rate = measure_rate(make(), seconds, warmup, repeats).best
        print(f"  {name:<42} {rate:>12,.0f} agent-steps/s")
        rows.append((name, rate))
    return rows


@dataclass(frozen=True)
class Args:
    """Agent-steps per second of many walkers on one campus, beside the single-agent native vector env."""

    walkers: int = 500
    """walkers on the campus (and envs of the native vector env rows)"""
    seconds: float | None = None
    """seconds per timed window (default: 1.5, or 0.2 with --quick)"""
    repeats: int = 3
    """timed windows per row; the best counts"""
    quick: bool = False
    """a short run (one 0.2 s window per row) that writes no result files"""
    json: str | None = None
    """also write the numbers to this JSON file"""


def main(argv: Sequence[str] | None = None) -> int:
    args = tyro.cli(Args, args=argv)
    if args.walkers < 1:
        raise SystemExit(f"multi_agent_throughput.py: --walkers must be positive, got {args.walkers}")
    seconds = args.seconds if args.seconds is not None else (0.2 if args.quick else 1.5)
    repeats = 1 if args.quick else args.repeats
    warmup = min(0.5, max(0.1, 0.25 * seconds))
    info = machine_info()
    print(f"# {args.walkers} walkers, best of {repeats} x {seconds:g} s windows; {info['platform']}, "
          f"{info['cpus']} CPUs, load average {info.get('load_average')}")
    rows = measure(args.walkers, seconds, warmup, repeats)
    rates = dict(rows)
    table = markdown_table(["configuration", f"agent-steps/s ({args.walkers} agents)"],
                           [(name, f"{rate:,.0f}") for name, rate in rows], align="lr")
    checks = [Target(f"{name} >= {goal:,} agent-steps/s", rates[name], goal, f"{rates[name]:,.0f}")
              for name, goal in TARGETS.items()]
    print("\n" + table + "\n")
    for check in checks:
        print(check.line)
    data = {"walkers": args.walkers, "seconds": seconds, "repeats": repeats,
            "rows": [{"name": n, "agent_steps_per_s": r} for n, r in rows], "checks": [c.as_dict() for c in checks]}
    if args.json is not None:
        print(f"wrote {write_json(args.json, {**data, 'machine': info})}")
    if not args.quick:
        markdown = table + "\n\n" + "\n".join(f"- `{c.line}`" for c in checks)
        print(f"wrote {write_results('multi_agent_throughput', markdown, data)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
