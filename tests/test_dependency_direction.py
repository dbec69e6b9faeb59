"""The layout rules of DESIGN.md, read from the source with ``ast``.

- campus_env never imports torch; model_zoo never imports wrappers.
- The generic parts (the zoo's core, its episode reading and sampler, every wrapper) never import
  campus_env: neither directly nor through another module of the package they import. They learn
  what they need from an env's spaces, ``metadata`` and ``spec``.
- Every file of the packages is under 600 lines and every function under 80.

Only import statements count (docstring examples may import anything). An edge goes to the module
an import names: ``import a.b`` and ``from a import b`` (a module) reach ``a.b`` alone, while
``from a import name`` reaches ``a/__init__.py``, where ``name`` lives.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("campus_env", "model_zoo", "wrappers", "campusnav")
GENERIC_MODULES = (
    "model_zoo.base",
    "model_zoo.registry",
    "model_zoo.checkpoint",
    "model_zoo.training",
    "model_zoo.evaluation",
    "model_zoo.fidelity",
    "model_zoo.metadata",
    "model_zoo.probe",
    "model_zoo.spaces",
    "model_zoo.data.episodes",
    "model_zoo.data.sampler",
    "model_zoo.data.collection",
    "model_zoo.data.shards",
    "model_zoo.parallel",
    "model_zoo.agents.controllers",
    "model_zoo.agents.actor_critic",
    "model_zoo.agents.transfer",
)
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the packages, by dotted name."""
    return {module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def wrapper_modules() -> list[str]:
    return [name for name in modules() if name.split(".")[0] == "wrappers"]


def resolve(node: ast.ImportFrom, importer: str) -> str:
    """The absolute module a ``from ... import`` names (relative imports resolved against ``importer``)."""
    if node.level == 0:
        return node.module or ""
    package = importer if modules()[importer].name == "__init__.py" else importer.rpartition(".")[0]
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return f"{base}.{node.module}" if node.module else base


@cache
def imports_of(name: str) -> tuple[tuple[str, int], ...]:
    """(imported module, line) for every import statement of module ``name``, at any depth of its code."""
    found = []
    for node in ast.walk(ast.parse(modules()[name].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = resolve(node, name)
            submodules = [f"{source}.{alias.name}" for alias in node.names if f"{source}.{alias.name}" in modules()]
            found += [(sub, node.lineno) for sub in submodules]
            if len(submodules) < len(node.names):
                found.append((source, node.lineno))
    return tuple(found)


def top_level_imports(package: str) -> set[str]:
    return {imported.split(".")[0] for name in modules() if name.split(".")[0] == package
            for imported, _ in imports_of(name)}


def import_chains(start: str, forbidden: str) -> Iterator[str]:
    """Each way ``start`` reaches package ``forbidden`` through the modules of this repository, as
    'a (line) -> b (line) -> forbidden.x' strings (breadth first, each module visited once)."""
    seen, frontier = {start}, [(start, start)]
    while frontier:
        next_frontier = []
        for name, chain in frontier:
            for imported, line in imports_of(name):
                step = f"{chain} (line {line}) -> {imported}"
                if imported.split(".")[0] == forbidden:
                    yield step
                elif imported in modules() and imported not in seen:
                    seen.add(imported)
                    next_frontier.append((imported, step))
        frontier = next_frontier


def test_campus_env_never_imports_torch():
    assert "torch" not in top_level_imports("campus_env")
    code = "import sys, campus_env, campus_env.oracle, campus_env.play; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


def test_model_zoo_never_imports_wrappers():
    chains = [chain for name in modules() if name.split(".")[0] == "model_zoo"
              for chain in import_chains(name, "wrappers")]
    assert not chains, "model_zoo imports wrappers:\n" + "\n".join(chains)


def test_the_generic_modules_exist():
    missing = [name for name in GENERIC_MODULES if name not in modules()]
    assert not missing, f"generic modules not found (moved? update GENERIC_MODULES): {missing}"
    assert wrapper_modules()


@pytest.mark.parametrize("name", GENERIC_MODULES + tuple(wrapper_modules()))
def test_generic_modules_never_import_campus_env(name):
    if name not in modules():
        pytest.fail(f"{name} not found (moved? update GENERIC_MODULES)")
    chains = list(import_chains(name, "campus_env"))
    assert not chains, f"{name} imports campus_env:\n" + "\n".join(chains)


def too_long(path: Path) -> list[str]:
    """The file itself and each of its functions that break the length limits, as 'file:line name (n lines)'."""
    text = path.read_text(encoding="utf-8")
    where = path.relative_to(ROOT)
    found = []
    lines = len(text.splitlines())
    if lines >= MAX_FILE_LINES:
        found.append(f"{where}: {lines} lines (the limit is under {MAX_FILE_LINES})")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{where}:{node.lineno} {node.name}(): {length} lines (at most {MAX_FUNCTION_LINES})")
    return found


def test_files_are_under_600_lines_and_functions_under_80():
    found = [problem for path in modules().values() for problem in too_long(path)]
    assert not found, "too long:\n" + "\n".join(found)
