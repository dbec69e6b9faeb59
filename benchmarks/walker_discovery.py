"""Structure discovery on many walkers: the edges the crowd adds to the campus, and their effect sizes.

``model_zoo.causal.discover_walkers`` runs the interventional discovery on per-episode
rows of the multi-agent env (``do()`` on the walker count, the walker density and the
trails; crowd, blocked moves, travel time and speed observed), and
``model_zoo.causal.walker_effects`` measures each variable's effect on those outcomes on
twins (the same seeds under each value). The script prints the discovered graph's
tests, the effects with their 95% intervals, and one line per relation the walkers are
built to add (issue 25): found or missing. A relation between two outcomes (crowd ->
travel time) cannot be oriented by interventions; it is judged as a total effect
(the walker count shifts both), which the discovery reports as ancestors. A full run
writes ``walker_discovery.{md,json}`` into the docs' results, or, with a background held
by ``do()``, ``walker_discovery_<name>-<value>.{md,json}``.

    python benchmarks/walker_discovery.py                   # tens of minutes on one core
    python benchmarks/walker_discovery.py --background weather=rainy
    python benchmarks/walker_discovery.py --quick           # seconds; writes nothing
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import tyro

from campusnav.harness import markdown_table, write_json, write_results
from campusnav.overrides import parse_overrides
from model_zoo.causal import discover_walkers, walker_effects
from model_zoo.causal.discovery import Discovery, edges
from model_zoo.causal.effects import OutcomeEffect

# (cause, effect, kind): "direct" needs the edge in the graph, "total" the cause among the effect's ancestors
RELATIONS = (
    ("walkers", "walker_density", "direct"),
    ("walkers", "crowd", "total"),
    ("walkers", "travel_time", "total"),
    ("walker_density", "crowd", "total"),
    ("walkers", "trail", "direct"),
    ("trail", "speed", "direct"),
)


@dataclass(frozen=True)
class Args:
    """Discovery and effects on walker data, with a found/missing line per relation the walkers add."""

    episodes: int = 300
    """episodes per discovery experiment (one sample each)"""
    effect_episodes: int = 32
    """twin seeds per value of each variable in the effects"""
    walkers: int = 200
    """walkers on the campus in the effects (except those of do(walkers))"""
    max_cycles: int = 100
    """steps per episode"""
    alpha: float = 0.01
    """significance level of the tests (Holm-corrected)"""
    background: str = ""
    """do() held in every episode, "name=value,..." (e.g. weather=rainy)"""
    seed: int = 0
    """seed of the episodes"""
    json: str | None = None
    """also write the results to this file"""
    quick: bool = False
    """a smoke run: a few short episodes; writes no result files"""


def parse_args(argv: Sequence[str] | None = None) -> Args:
    args = tyro.cli(Args, args=argv, description=__doc__.split("\n\n")[0])
    if args.quick:
        args = dataclasses.replace(args, episodes=8, effect_episodes=2, walkers=6, max_cycles=10)
    if min(args.episodes, args.walkers, args.max_cycles) < 1 or args.effect_episodes < 2:
        raise SystemExit("walker_discovery.py: --episodes, --walkers and --max-cycles must be positive and "
                         "--effect-episodes at least 2")
    if not 0 < args.alpha < 1:
        raise SystemExit(f"walker_discovery.py: --alpha must be in (0, 1), got {args.alpha}")
    background(args)
    return args


def background(args: Args) -> dict[str, Any] | None:
    """``--background`` as a do() mapping (None when empty); a malformed one exits."""
    try:
        return parse_overrides(args.background) if args.background else None
    except ValueError as err:
        raise SystemExit(f"walker_discovery.py: --background: {err}") from None


def result_name(args: Args) -> str:
    """``walker_discovery``, with the background's values appended when one is held (``..._weather-rainy``)."""
    held = background(args) or {}
    return "_".join(["walker_discovery", *(f"{k}-{v}".replace(".", "p") for k, v in sorted(held.items()))])


def relations(found: Discovery) -> list[dict[str, Any]]:
    """Each relation of ``RELATIONS`` with whether the discovery found it."""
    direct = edges(found.graph)
    rows = []
    for cause, effect, kind in RELATIONS:
        hit = (cause, effect) in direct if kind == "direct" else cause in found.ancestors.get(effect, ())
        rows.append({"cause": cause, "effect": effect, "kind": kind, "found": bool(hit)})
    return rows


def effects_table(rows: Sequence[OutcomeEffect]) -> str:
    """Markdown: per variable and outcome, the mean at each value and the paired difference from the first."""
    body = []
    for r in rows:
        means = ", ".join(f"{v}: {m:.3g} ± {c:.2g}" for v, m, c in zip(r.values, r.means, r.ci, strict=True))
        diffs = ", ".join(f"{d:+.3g} ± {c:.2g}" for d, c in zip(r.differences[1:], r.diff_ci[1:], strict=True))
        body.append([r.variable, r.outcome, means, diffs, f"{r.p_adjusted:.2g}", "yes" if r.significant else "no"])
    return markdown_table(["do() on", "outcome", "mean per value (95% CI)", "difference from the first value",
                           "p (Holm)", "significant"], body, align="llllrl")


def report(args: Args, found: Discovery, rows: Sequence[OutcomeEffect], found_relations: list[dict[str, Any]],
           seconds: dict[str, float]) -> str:
    under = f" under do({args.background})" if args.background else ""
    lines = [f"# Structure discovery on many walkers{under}", "",
             f"Discovery: {args.episodes} episodes per experiment, {args.max_cycles} steps each, alpha {args.alpha} "
             f"({seconds['discovery']:.0f} s). Effects: {args.effect_episodes} twin seeds per value, "
             f"{args.walkers} walkers ({seconds['effects']:.0f} s).", "",
             "## Relations the walkers add", ""]
    for r in found_relations:
        what = "edge" if r["kind"] == "direct" else "total effect"
        lines.append(f"- {'FOUND' if r['found'] else 'MISSING'}  {r['cause']} -> {r['effect']} ({what})")
    graph = "; ".join(f"{child} <- {', '.join(parents)}" for child, parents in sorted(found.graph.items()) if parents)
    lines += ["", "## Discovered graph", "", f"Parents: {graph or 'none'}.", "", found.table(), "",
              "## Effects on twins", "", effects_table(rows), ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    held = background(args)
    started = time.perf_counter()
    found = discover_walkers(args.episodes, alpha=args.alpha, seed=args.seed, max_cycles=args.max_cycles,
                             base_do=held)
    discovery_s = time.perf_counter() - started
    rows = walker_effects(episodes=args.effect_episodes, walkers=args.walkers, max_cycles=args.max_cycles,
                          alpha=args.alpha, seed=args.seed, base_do=held)
    seconds = {"discovery": discovery_s, "effects": time.perf_counter() - started - discovery_s}
    found_relations = relations(found)
    markdown = report(args, found, rows, found_relations, seconds)
    print(markdown)
    data = {"args": asdict(args), "graph": {k: list(v) for k, v in found.graph.items()},
            "ancestors": {k: list(v) for k, v in found.ancestors.items()}, "relations": found_relations,
            "effects": [asdict(r) for r in rows], "seconds": seconds}
    if args.json:
        write_json(Path(args.json), data)
    if not args.quick:
        write_results(result_name(args), markdown, data)
    return data


if __name__ == "__main__":
    main()
