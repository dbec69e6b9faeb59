"""benchmarks/fuzz.py: a tiny run finds no fault in the vector env, and faults injected into an env are counted."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import VectorWrapper

import campus_env  # noqa: F401  (registers CampusNav-v0)

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz.py"
TINY = ["--quick", "--steps", "1920", "--num-envs", "8", "--do-rate", "0.3", "--undo-rate", "0.3",
        "--reset-rate", "0.1"]


@pytest.fixture(scope="module")
def fuzz():
    return runpy.run_path(str(SCRIPT), run_name="fuzz")


class Faulty(VectorWrapper):
    """The real vector env, broken once at batched step ``at`` in the way ``how`` names."""

    def __init__(self, env, how: str, at: int = 3):
        super().__init__(env)
        self.how, self.at, self.calls = how, at, 0

    def step(self, actions):
        self.calls += 1
        obs, reward, terminated, truncated, info = self.env.step(actions)
        if self.calls != self.at:
            return obs, reward, terminated, truncated, info
        if self.how == "nan_reward":
            reward = reward.copy()
            reward[1] = np.nan
        elif self.how == "nan_obs":
            obs = obs.copy()
            obs[0, 0] = np.nan
        elif self.how == "outside":
            obs = obs.copy()
            obs[0, 0] = 7.0  # the state vector lies in [-1, 1]
        elif self.how == "info":
            info = {**info, "extra": np.zeros(3)}  # no mask, and not one entry per env
        elif self.how == "raise":
            raise RuntimeError("boom")
        elif self.how == "intervention":
            c = info["causal"]  # every variable moved off its value, so whatever is intervened on shows wrong
            info = {**info, "causal": {"day": (c["day"] + 1) % 7, "hour": c["hour"] + 0.5,
                                       "semester": 1 - c["semester"], "weather": (c["weather"] + 1) % 4,
                                       "gameday": ~c["gameday"],
                                       "road_closure": ~c["road_closure"], "crowd": c["crowd"] + 0.25}}
        return obs, reward, terminated, truncated, info


def test_a_tiny_run_of_every_mode_finds_no_fault(fuzz, tmp_path, capsys):
    results = fuzz["main"]([*TINY, "--json", str(tmp_path / "out.json")])
    assert results["fault_count"] == 0, results["faults"]
    assert [row["config"]["obs_mode"] for row in results["rows"]] == ["dict", "dict", "pixels", "pixels", "state",
                                                                      "state"]
    calls = results["calls"]
    assert calls["step"] * 8 >= 1920 and calls["do"] and calls["undo"] and calls["reset"] and calls["masked_reset"]
    assert json.loads((tmp_path / "out.json").read_text())["fault_count"] == 0
    out = capsys.readouterr().out
    assert "PASS  faults = 0: 0 faults in" in out and "steps/s" in out


@pytest.mark.parametrize(("how", "kind"), [("nan_reward", "reward"), ("nan_obs", "observation"),
                                           ("outside", "observation"), ("info", "info"), ("raise", "exception"),
                                           ("intervention", "intervention")])
def test_an_injected_fault_is_counted(fuzz, how, kind, capsys):
    def make(**kwargs):
        return Faulty(gym.make_vec("CampusNav-v0", num_envs=4, **kwargs), how)

    args = ["--quick", "--obs-mode", "state", "--steps", "80", "--num-envs", "4", "--do-rate", "0", "--undo-rate",
            "0", "--reset-rate", "0"]
    results = fuzz["main"](args, make=make)
    # one fault per vector env (observe_causal True and False), two for the info (no mask, wrong length), and
    # for the intervention one per env and intervened variable (the fuzz's first reset intervenes on 1..3)
    count = {"info": 4, "intervention": results["fault_count"]}.get(kind, 2)
    assert results["faults_by_kind"] == {kind: count}, results["faults"]
    assert count >= 2
    assert [f["kind"] for f in results["faults"]] == [kind] * results["fault_count"]
    assert all(f["call"] == 3 for f in results["faults"])
    assert "MISS  faults = 0" in capsys.readouterr().out
