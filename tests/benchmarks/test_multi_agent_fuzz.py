"""benchmarks/multi_agent_fuzz.py: a tiny run finds no fault, and faults injected into the walkers' env are counted."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest

from campus_env.multi_agent.env import CampusWalkersEnv

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "multi_agent_fuzz.py"
TINY = ["--quick", "--walkers", "12", "--agent-steps", "1500", "--do-rate", "0.3", "--undo-rate", "0.2",
        "--twin-rate", "0.2", "--twin-steps", "3"]


@pytest.fixture(scope="module")
def fuzz():
    return runpy.run_path(str(SCRIPT), run_name="multi_agent_fuzz")


class Faulty(CampusWalkersEnv):
    """The real env, broken from its 3rd step on in the way ``how`` names."""

    how = ""

    def step(self, actions):
        self.calls = getattr(self, "calls", 0) + 1
        out = super().step(actions)
        if self.calls < 3 or not self.agents:
            return out
        core = self.core
        if self.how == "capacity":  # every walker out onto one walkway cell
            walkway = np.flatnonzero(core.cell_capacity <= core.capacity)[0]
            core.pos[core.active] = walkway
            core._recount()
        elif self.how == "observation":
            obs = dict(out[0])
            first = next(iter(obs))
            obs[first] = np.full_like(obs[first], 7.0)  # the state vector lies in [-1, 1]
            out = (obs, *out[1:])
        return out

    def fork(self, noise_seed):
        if self.how == "twin" and getattr(self, "calls", 0) >= 3:
            noise_seed = int(np.random.default_rng().integers(2**31))  # a fork that ignores its seed
        return super().fork(noise_seed)


def test_a_tiny_run_finds_no_fault(fuzz, tmp_path, capsys):
    results = fuzz["main"]([*TINY, "--json", str(tmp_path / "out.json")])
    assert results["fault_count"] == 0, results["faults"]
    calls = results["calls"]
    assert calls["do"] and calls["undo"] and calls["twin"] and calls["reset"] >= 3
    assert sum(row["steps"] for row in results["rows"]) >= 1500
    assert (tmp_path / "out.json").is_file()
    assert "PASS  faults = 0" in capsys.readouterr().out


@pytest.mark.parametrize("how", ["capacity", "observation", "twin"])
def test_an_injected_fault_is_counted(fuzz, how, capsys):
    def make(**kwargs):
        env = Faulty(**kwargs)
        env.how = how
        return env

    args = ["--quick", "--walkers", "8", "--agent-steps", "300", "--do-rate", "0", "--undo-rate", "0",
            "--reset-rate", "0", "--twin-rate", "0.5", "--twin-steps", "3"]
    results = fuzz["main"](args, make=make)
    assert set(results["faults_by_kind"]) == {how}, results["faults"]
    assert "MISS  faults = 0" in capsys.readouterr().out
