"""examples/causal_effects.py runs end to end on a tiny budget and prints its table."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "causal_effects.py"


def test_runs_on_a_tiny_budget_and_prints_the_table():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny"], capture_output=True, text=True, check=True, timeout=120
    )
    out = result.stdout
    assert "steps (95% CI)" in out and "optimal route changed" in out
    for condition in ("do(gameday=True)", "do(weather='rainy')", "do(weather='snowy')", "do(crowd=1.0)",
                      "do(semester='spring')", "do(semester='fall')"):
        assert condition in out
    assert "6 counterfactual twins" in out


def test_arguments_come_from_the_dataclass():
    namespace = runpy.run_path(str(SCRIPT), run_name="causal_effects")
    args = namespace["parse_args"](["--episodes", "3", "--no-expected-cost"])
    assert args.episodes == 3 and args.expected_cost is False and args.tiny is False
    assert namespace["parse_args"]([]) == namespace["Args"]()
