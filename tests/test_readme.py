"""The README is the front door: its code runs as written, and its numbers come from the result files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PYTHON_BLOCKS = re.findall(r"^```python\n(.*?)^```", README, flags=re.MULTILINE | re.DOTALL)
BLOCK_TIMEOUT_S = 60


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[f"block{i + 1}" for i in range(len(PYTHON_BLOCKS))])
def test_python_block_runs_as_written(block: str, tmp_path: Path) -> None:
    """Each block is self-contained: it runs alone, in a fresh folder, within a minute."""
    script = tmp_path / "block.py"
    script.write_text(block, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "SDL_VIDEODRIVER": "dummy",
           "MPLBACKEND": "Agg", "MINARI_DATASETS_PATH": str(tmp_path / "datasets")}
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=BLOCK_TIMEOUT_S)
    assert result.returncode == 0, f"README block failed:\n{block}\n--- stderr ---\n{result.stderr[-4000:]}"


def test_readme_has_the_quick_start() -> None:
    assert len(PYTHON_BLOCKS) >= 5
    code = "\n".join(PYTHON_BLOCKS)
    for name in ('gym.make("CampusNav-v0"', "env.unwrapped.do(", "gym.make_vec(", "model_zoo.make(", "model_zoo.fit(",
                 "model_zoo.evaluate(", "from model_zoo.data import", "wrappers.DreamEnv(", "wrappers.DreamVectorEnv(",
                 "wrappers.to_sb3(", "PPO("):
        assert name in code, f"the quick start no longer shows {name}"


def test_readme_is_short_and_its_test_command_is_ci() -> None:
    assert len(README.splitlines()) <= 150
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = 'pip install -c constraints.txt -e ".[test]" && ruff check . && pytest'
    assert command in README and command in ci


def test_results_table_matches_the_leaderboard_results() -> None:
    """The README's table is a view of docs/results/leaderboard.json: a number has one source."""
    board = json.loads((ROOT / "docs" / "results" / "leaderboard.json").read_text(encoding="utf-8"))
    rows = {row["model"]: row for row in board["rows"]}
    table = [line for line in README.splitlines() if line.startswith("| ") and not line.startswith("| model")]
    header = next(line for line in README.splitlines() if line.startswith("| model"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert table and {c.split("|")[1].strip() for c in table} == set(rows)
    for line in table:
        cells = dict(zip(columns, (c.strip() for c in line.strip("|").split("|")), strict=True))
        expected = rows[cells["model"]]
        for column in columns[1:]:
            if expected.get(column) is None:  # not measured (or NaN): the README shows a dash
                assert cells[column] == "-", f"README {cells['model']} {column} has a number the results lack"
                continue
            assert float(cells[column].replace(",", "")) == pytest.approx(expected[column], rel=1e-3), (
                f"README {cells['model']} {column} is not docs/results/leaderboard.json's")
