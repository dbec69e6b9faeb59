"""The ``campusnav`` command line: one subcommand per job, dispatched through a table.

>>> parse_value("true"), parse_value("3"), parse_value("9.5"), parse_value("rainy")
(True, 3, 9.5, 'rainy')
>>> parse_assignment("weather=rainy")
('weather', 'rainy')
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["COMMANDS", "build_parser", "main", "parse_args", "parse_assignment", "parse_value"]

BENCHMARK_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "env_throughput.py"


def parse_value(text: str) -> bool | int | float | str:
    """A typed value from the command line: true/false -> bool, numbers -> int or float, else str."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def parse_assignment(text: str) -> tuple[str, bool | int | float | str]:
    """``KEY=VALUE`` -> ``(key, typed value)``; an argparse type, so a bad one is a usage error."""
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key or not value:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. weather=rainy), got {text!r}")
    return key, parse_value(value)


# --- play -----------------------------------------------------------------


def add_play_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=None, help="seed of the first episode (default: random)")
    parser.add_argument("--split", choices=("all", "train", "heldout"), default="all",
                        help="which contexts are sampled (default: all)")
    parser.add_argument("--semester", choices=("fall", "spring"), default=None, help="pin the semester")
    parser.add_argument("--layout", default=None, metavar="PATH", help="another campus layout file")
    parser.add_argument(
        "--do", type=parse_assignment, action="append", default=[], metavar="KEY=VALUE",
        help="intervene on a causal variable in every episode, e.g. --do weather=snowy --do gameday=true "
             "(repeatable; variables: day, hour, semester, weather, gameday, road_closure, crowd)",
    )
    parser.add_argument("--fps", type=int, default=30, help="frame-rate cap of the window (default: 30)")


def check_play_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Turns the ``--do`` pairs into a dict and validates it against the causal model."""
    from campus_env.causal import validate_do

    do: dict[str, Any] = {}
    for key, value in args.do:
        if key in do:
            parser.error(f"argument --do: {key} is given twice")
        do[key] = value
    try:
        validate_do(do)
    except ValueError as err:
        parser.error(f"argument --do: {err}")
    if args.layout is not None:
        from campus_env.layout import LayoutError, load_layout

        try:
            load_layout(args.layout)
        except LayoutError as err:
            parser.error(f"argument --layout: {err}")
    args.do = do


def run_play(args: argparse.Namespace) -> int:
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    from campus_env.play import play

    try:
        result = play(seed=args.seed, do=args.do, split=args.split, semester=args.semester,
                      layout=args.layout, fps=args.fps)
    except pygame.error as err:
        print(f"campusnav play: cannot open a window: {err}", file=sys.stderr)
        return 1
    print(f"{len(result.episode_lengths)} episode(s), {result.steps} steps, {result.goals} goal(s) reached")
    return 0


# --- bench ----------------------------------------------------------------


def load_benchmark() -> ModuleType | None:
    """``benchmarks/env_throughput.py`` of the source checkout, or None when it is not there."""
    if not BENCHMARK_PATH.is_file():
        return None
    name = "campusnav_benchmarks_env_throughput"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BENCHMARK_PATH)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    benchmark = load_benchmark()
    if benchmark is not None:
        benchmark.add_arguments(parser)


def check_bench_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if load_benchmark() is None:
        parser.error(f"bench needs a source checkout: {BENCHMARK_PATH} not found")


def run_bench(args: argparse.Namespace) -> int:
    return load_benchmark().run_from_args(args)


# --- the table ------------------------------------------------------------

Adder = Callable[[argparse.ArgumentParser], None]
Checker = Callable[[argparse.ArgumentParser, argparse.Namespace], None]
Runner = Callable[[argparse.Namespace], int]

# name -> (help, add arguments, check arguments, run)
COMMANDS: dict[str, tuple[str, Adder, Checker, Runner]] = {
    "play": ("play CampusNav-v0 with the keyboard in a pygame window",
             add_play_arguments, check_play_arguments, run_play),
    "bench": ("measure environment steps per second (benchmarks/env_throughput.py)",
              add_bench_arguments, check_bench_arguments, run_bench),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``campusnav`` parser with one subparser per entry of ``COMMANDS``."""
    return _build()[0]


def _build() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="campusnav",
        description="CampusNav-v0, a causal campus navigation environment, and a zoo of world models.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    subparsers = {}
    for name, (help_text, add_arguments, _, _) in COMMANDS.items():
        subparsers[name] = commands.add_parser(name, help=help_text, description=help_text)
        add_arguments(subparsers[name])
    return parser, subparsers


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parses and checks the arguments; exits with status 2 and a usage message when they are bad."""
    parser, subparsers = _build()
    args = parser.parse_args(argv)
    COMMANDS[args.command][2](subparsers[args.command], args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``campusnav`` console script."""
    args = parse_args(argv)
    return COMMANDS[args.command][3](args)


if __name__ == "__main__":
    sys.exit(main())
