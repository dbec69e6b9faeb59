"""Every documented command line parses into its declared types and runs as written, at a tiny budget.

The commands are found where a reader finds them: lines and inline code that start
with ``python examples/``, ``python benchmarks/`` or ``campusnav SUBCOMMAND`` in
README.md, the docs pages (not ``docs/results``, which record what was measured) and
the docstrings of the example and benchmark scripts. Placeholders (``CHECKPOINT``)
are resolved.

Every command is parsed by the script's own parser (or ``campusnav.cli.parse_args``)
and each parsed value checked against its field's type, list items included: a
``--seeds 100 101`` read as strings fails here. The commands of ``RUN_BY_DEFAULT``
and the ``collect``, ``train``, ``dream`` pipeline of docs/cli.md (in that order: each
needs the one before) also run, each in a subprocess with a timeout, in a scratch
folder (relative outputs and Minari datasets land there), with the tiny-budget flag
added: ``--tiny`` for examples, ``--quick`` for benchmarks, and for ``campusnav``
subcommands a tiny budget of their own flags (a later flag wins over the documented
one). ``CAMPUSNAV_DOCUMENTED_COMMANDS=all`` runs every documented command that way.
``campusnav play`` needs a keyboard and a window: it is only parsed.
"""

from __future__ import annotations

import ast
import collections.abc
import dataclasses
import os
import re
import shlex
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest

from campusnav.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
PREFIXES = ("python examples/", "python benchmarks/", "campusnav ")
INLINE = re.compile(r"`+([^`]+?)`+")
TIMEOUT = 240

# a tiny budget per campusnav subcommand, from its own flags
CLI_TINY = {
    "demo": ["--tiny"],
    "collect": ["--episodes", "2", "--num-envs", "2", "--max-episode-steps", "10"],
    "train": ["--steps", "2", "--batch-size", "2", "--seq-len", "4", "--holdout", "0", "--checkpoint-every", "2"],
    "dream": ["--steps", "3"],
    "bench": ["--quick", "--seconds", "0.01", "--num-envs", "2", "--sync-envs", "0"],
}
SCRIPT_TINY = {"examples": ["--tiny"], "benchmarks": ["--quick"]}
NO_TINY_FLAG = {"examples/snapshot.py"}  # already a matter of seconds: two pictures
PLACEHOLDERS = {"CHECKPOINT": "runs/vae_mdnrnn/checkpoint"}
PIPELINE = ("collect", "train", "dream")  # the order of docs/cli.md: each needs the one before
# run by default: a command of each cheap kind, and the list option of issue 28 (``--seeds 100 101``);
# CAMPUSNAV_DOCUMENTED_COMMANDS=all runs every documented command (about 20 minutes on 2 cores)
RUN_BY_DEFAULT = (
    "python benchmarks/causal_fidelity.py --seeds 100 101",
    "python benchmarks/env_throughput.py --json out.json",
    "python examples/causal_effects.py --episodes 100",
    "python examples/dreamer.py --iterations 10",
    "python examples/snapshot.py --out docs",
    "campusnav bench --num-envs 1 64 --json out.json",
    "campusnav bench --results",
)
PYTHON_CLI = "import sys; from campusnav.cli import main; sys.exit(main(sys.argv[1:]))"
PYTHON_PARSE = "import sys; from campusnav.cli import parse_args; parse_args(sys.argv[1:])"


def _sources() -> list[tuple[str, str]]:
    """``(name, text)`` of README.md, the docs pages and the scripts' docstrings."""
    docs = ROOT / "docs"
    pages = [ROOT / "README.md", *sorted(p for p in docs.rglob("*.md") if "results" not in p.relative_to(docs).parts)]
    found = [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")) for p in pages]
    for folder in ("examples", "benchmarks"):
        for script in sorted((ROOT / folder).glob("*.py")):
            docstring = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
            found.append((f"{folder}/{script.name}", docstring))
    return found


def _candidates(text: str) -> list[str]:
    lines = [line.strip().removeprefix("$ ") for line in text.splitlines()]
    spans = [span.strip() for line in text.splitlines() for span in INLINE.findall(line)]
    spans = [s for s in spans if not (s.startswith("campusnav ") and len(s.split()) == 2)]  # a subcommand's name
    return [c for c in lines + spans if c.startswith(PREFIXES)]


def documented_commands() -> dict[str, list[str]]:
    """Every documented command as its argv (comments dropped), mapped to where it is written."""
    commands: dict[str, list[str]] = {}
    for name, text in _sources():
        for candidate in _candidates(text):
            argv = shlex.split(candidate, comments=True)
            if argv[0] == "campusnav" and (len(argv) < 2 or argv[1] not in COMMANDS):
                continue  # prose that starts with the package's name
            commands.setdefault(shlex.join(argv), []).append(name)
    return commands


COMMANDS_FOUND = documented_commands()


def _script(argv: list[str]) -> str:
    return argv[1]  # "examples/NAME.py" or "benchmarks/NAME.py"


def _resolve(argv: list[str]) -> list[str]:
    return [PLACEHOLDERS.get(token, token) for token in argv]


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MINARI_DATASETS_PATH": str(cwd / "datasets"), "SDL_VIDEODRIVER": "dummy",
           "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd, env=env)
    assert done.returncode == 0, f"{shlex.join(argv)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done


def _executable(argv: list[str], tiny: bool = True) -> list[str]:
    """The documented argv as a subprocess runs it from a scratch folder, with its tiny budget."""
    argv = _resolve(argv)
    if argv[0] == "campusnav":
        return [sys.executable, "-c", PYTHON_CLI, *argv[1:], *(CLI_TINY[argv[1]] if tiny else [])]
    script = _script(argv)
    extra = [] if script in NO_TINY_FLAG or not tiny else SCRIPT_TINY[script.split("/")[0]]
    return [sys.executable, str(ROOT / script), *argv[2:], *extra]


def _ids(commands) -> list[str]:
    return [c.replace(" ", "_")[:80] for c in commands]


SCRIPT_COMMANDS = sorted(c for c in COMMANDS_FOUND if not c.startswith("campusnav "))
CLI_RUN = sorted(c for c in COMMANDS_FOUND if c.split()[1] in ("demo", "bench"))
CLI_PIPELINE = [c for step in PIPELINE for c in COMMANDS_FOUND if c.split()[1] == step]
CLI_PLAY = sorted(c for c in COMMANDS_FOUND if c.split()[1] == "play")
EVERY_RUN = os.environ.get("CAMPUSNAV_DOCUMENTED_COMMANDS") == "all"
RUN = sorted(c for c in SCRIPT_COMMANDS + CLI_RUN if EVERY_RUN or c in RUN_BY_DEFAULT)


def test_the_commands_are_found_in_every_kind_of_source():
    written = {name for names in COMMANDS_FOUND.values() for name in names}
    assert "docs/cli.md" in written and any(n.startswith("examples/") for n in written)
    assert any(n.startswith("benchmarks/") for n in written)
    assert {c.split()[1] for c in COMMANDS_FOUND if c.startswith("campusnav ")} == set(COMMANDS)
    every_script = {f"{f}/{p.name}" for f in ("examples", "benchmarks") for p in (ROOT / f).glob("*.py")}
    assert every_script == {_script(shlex.split(c)) for c in SCRIPT_COMMANDS}
    assert set(RUN_BY_DEFAULT) <= set(COMMANDS_FOUND), "a command run by default is no longer documented"


@pytest.mark.parametrize("command", SCRIPT_COMMANDS, ids=_ids(SCRIPT_COMMANDS))
def test_a_documented_script_command_parses_into_its_declared_types(command):
    """The script's own parse of the documented flags; every value has its field's type (list items too)."""
    import runpy

    import tyro

    argv = _resolve(shlex.split(command))
    namespace = runpy.run_path(str(ROOT / _script(argv)), run_name="documented_command")
    parsed = []
    real_cli = tyro.cli

    def parse_then_stop(*args, **kwargs):
        parsed.append(real_cli(*args, **kwargs))
        raise _Parsed

    tyro.cli = parse_then_stop
    try:
        with pytest.raises(_Parsed):
            namespace.get("parse_args", namespace.get("main"))(argv[2:])  # examples parse under __main__
    finally:
        tyro.cli = real_cli
    _check_types(parsed[0], namespace)


@pytest.mark.parametrize("command", RUN, ids=_ids(RUN))
def test_a_documented_command_runs_at_a_tiny_budget(command, tmp_path):
    _run(_executable(shlex.split(command)), tmp_path)


def test_the_documented_collect_train_dream_pipeline_runs_in_order(tmp_path):
    assert [c.split()[1] for c in CLI_PIPELINE][:1] == ["collect"] and "dream" in {c.split()[1] for c in CLI_PIPELINE}
    for command in CLI_PIPELINE:
        _run(_executable(shlex.split(command)), tmp_path)
    assert list(tmp_path.glob("*.gif")), "the dream writes its side-by-side video"


@pytest.mark.parametrize("command", sorted(CLI_RUN + CLI_PLAY), ids=_ids(sorted(CLI_RUN + CLI_PLAY)))
def test_a_documented_campusnav_command_parses_into_its_declared_types(command, capsys):
    from campusnav.cli import parse_args

    argv = _resolve(shlex.split(command))[1:]
    if "--help" in argv:
        with pytest.raises(SystemExit) as exit_:
            parse_args(argv)
        assert exit_.value.code == 0 and "usage" in capsys.readouterr().out
        return
    args = parse_args(argv)
    if hasattr(args, "options"):  # a dataclass command (demo, bench)
        _check_types(args.options, {})


# --- the types of parsed values ---------------------------------------------------------------


class _Parsed(Exception):
    """Raised in place of running a script once its arguments are parsed."""


def _check_types(options, namespace: dict) -> None:
    hints = typing.get_type_hints(type(options), localns=namespace)
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        assert _conforms(value, hints[field.name]), f"--{field.name}: {value!r} is not a {hints[field.name]}"


def _conforms(value, hint) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if origin is typing.Literal:
        return value in args
    if origin in (list, tuple, set, frozenset, collections.abc.Sequence):
        item = args[0] if args else typing.Any
        return isinstance(value, origin if isinstance(origin, type) else (list, tuple)) and all(
            _conforms(v, item) for v in value)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


def test_the_type_check_catches_list_items_read_as_strings():
    @dataclasses.dataclass
    class Args:
        seeds: list[int] = dataclasses.field(default_factory=list)
        json: str | None = None

    _check_types(Args(seeds=[100, 101], json=None), {})
    with pytest.raises(AssertionError, match="--seeds"):
        _check_types(Args(seeds=["100", "101"]), {})  # what the old hand-written parser gave
