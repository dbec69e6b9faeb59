"""examples/dreamer.py runs its whole loop on a tiny budget and writes the return curve, the plot and results."""

from __future__ import annotations

import csv
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from campus_env.schema import STATE_SLICES

GOAL_ROW_OFFSET = STATE_SLICES["goal_offset"].start  # the goal's row minus the agent's, over map side - 1
SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "dreamer.py"


def test_runs_on_a_tiny_budget_and_writes_the_curve(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--out", str(out)], capture_output=True,
                            text=True, timeout=300, env=dict(os.environ), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    stdout = result.stdout
    for text in ("prefill: 4 random episodes", "| random |", "| standing still |", "| shortest-path oracle |",
                 "PPO in reality", "gain over random, Dreamer / PPO", "gain over random, standing still / PPO"):
        assert text in stdout
    assert any(line.startswith(("PASS", "MISS")) for line in stdout.splitlines())

    with open(out / "returns.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["iteration"]) for r in rows] == [0, 1, 2]
    steps = [int(r["env_steps"]) for r in rows]
    assert steps[0] > 0 and all(b > a for a, b in zip(steps, steps[1:], strict=False))
    assert [int(r["episodes"]) for r in rows] == [4, 8, 12]  # 4 new real episodes per iteration
    assert all(np.isfinite(float(r["imagined_return"])) for r in rows[1:])
    assert (out / "returns.png").stat().st_size > 1000

    results = json.loads((out / "results.json").read_text())
    assert results["env_steps"] == steps[-1] <= 12 * 30
    assert results["target"] in ("PASS", "MISS")
    assert results["reference"]["shortest-path oracle"]["success_rate"] >= results["reference"]["random"][
        "success_rate"]
    still = results["reference"]["standing still"]
    assert still["success_rate"] == 0.0 and still["mean_steps"] == 30  # waits out every episode
    assert np.isclose(still["return_mean"], -0.01 * 30) and still["return_std"] < 1e-9  # the step penalty only
    import model_zoo

    model = model_zoo.load(out / "model")
    assert model.model_id == "rssm"
    from model_zoo.agents.controllers import ActorCritic
    from model_zoo.checkpoint import load_tensors

    actor = ActorCritic(model.feature_dim, model.action_space)  # the saved actor fits the saved model's features
    tensors, _ = load_tensors(out / "actor.safetensors")
    actor.load_state_dict(tensors)
    assert actor.act(torch.zeros(3, model.feature_dim)).shape == (3,)


def test_arguments_come_from_the_dataclass():
    namespace = runpy.run_path(str(SCRIPT), run_name="dreamer")
    args = namespace["parse_args"](["--iterations", "3", "--obs-mode", "dict"])
    assert args.iterations == 3 and args.obs_mode == "dict" and not args.tiny
    assert namespace["parse_args"]([]) == namespace["Args"]()
    tiny = namespace["parse_args"](["--tiny"])
    assert tiny.iterations <= 2 and tiny.max_episode_steps <= 30


def test_shaping_is_potential_based_and_zero_at_the_goal():
    namespace = runpy.run_path(str(SCRIPT), run_name="dreamer")
    shaped, episode_cls = namespace["shaped"], namespace["Episode"]
    # a 3-step walk: 3 cells from the goal, then 2, then 2 (blocked), then at the goal (terminal)
    cells = np.array([3, 2, 2, 0], dtype=np.float32)
    obs = np.zeros((4, 72), dtype=np.float32)
    obs[:, GOAL_ROW_OFFSET] = cells / 31  # the goal's row offset, divided by map side - 1
    raw = np.array([-0.01, -0.06, 0.99], dtype=np.float32)
    episode = episode_cls(obs=obs, action=np.array([1, 1, 1]), reward=raw, terminated=np.array([False, False, True]),
                          truncated=np.zeros(3, dtype=bool))
    out = shaped(episode, per_cell=0.05, gamma=0.9)
    phi = -0.05 * cells
    expected = raw + 0.9 * np.array([phi[1], phi[2], 0.0]) - phi[:3]  # a terminal state's potential is 0
    np.testing.assert_allclose(out.reward, expected, rtol=1e-5)
    assert out.reward[0] > raw[0] and np.isclose(out.reward[1], raw[1] + 0.9 * phi[2] - phi[1])
    np.testing.assert_array_equal(episode.reward, raw)  # the episode itself is left alone
    assert shaped(episode, per_cell=0.0, gamma=0.9) is episode
    undiscounted = shaped(episode, per_cell=0.05, gamma=1.0).reward.sum()
    assert np.isclose(undiscounted, raw.sum() - phi[0], rtol=1e-5)  # telescopes: only the start's potential is left


def test_shaped_dream_adds_the_shaping_of_the_decoded_goal_offsets_to_imagined_rewards():
    from model_zoo.base import Imagined

    namespace = runpy.run_path(str(SCRIPT), run_name="dreamer")
    dream_cls = namespace["ShapedDream"]

    class Walk:  # a model whose state is the goal's row offset in cells; action 1 steps toward the goal
        def features(self, state):
            return state["cells"][:, None]

        def decode(self, state):
            obs = torch.zeros(len(state["cells"]), 72)
            obs[:, GOAL_ROW_OFFSET] = state["cells"] / 31
            return obs

        def imagine(self, state, action, generator=None):
            cells = state["cells"] - action.float()
            return Imagined({"cells": cells}, torch.full_like(cells, -0.01), cells == 0)

    dream = dream_cls(Walk(), per_cell=0.05, gamma=0.9)
    start = {"cells": torch.tensor([3.0, 1.0, 2.0])}
    out = dream.imagine(start, torch.tensor([1, 1, 0]))
    phi = -0.05 * start["cells"]
    after = torch.tensor([-0.05 * 2, 0.0, -0.05 * 2])  # row 1 reached the goal: the end's potential is 0
    torch.testing.assert_close(out.reward, -0.01 + 0.9 * after - phi)
    assert out.reward[0] > out.reward[2] + 0.04  # closing in a cell beats waiting by about per_cell
    assert torch.equal(out.state["cells"], torch.tensor([2.0, 0.0, 2.0])) and out.terminated.tolist() == [
        False, True, False]
    assert torch.equal(dream.features(start), Walk().features(start))


def test_shaped_dream_decodes_each_imagined_state_once_along_a_rollout():
    from model_zoo.base import Imagined

    namespace = runpy.run_path(str(SCRIPT), run_name="dreamer")
    decoded = []

    class Walk:  # the goal's row offset in cells; action 1 steps toward it
        def decode(self, state):
            decoded.append(state["cells"].clone())
            obs = torch.zeros(len(state["cells"]), 72)
            obs[:, GOAL_ROW_OFFSET] = state["cells"] / 31
            return obs

        def imagine(self, state, action, generator=None):
            cells = state["cells"] - action.float()
            return Imagined({"cells": cells}, torch.zeros_like(cells), torch.zeros_like(cells, dtype=torch.bool))

    dream = namespace["ShapedDream"](Walk(), per_cell=0.05, gamma=1.0)
    state = start = {"cells": torch.tensor([5.0, 4.0])}
    rewards = []
    for _ in range(3):
        out = dream.imagine(state, torch.tensor([1, 0]))
        state = out.state
        rewards.append(out.reward)
    assert len(decoded) == 4  # the start and three imagined states; not twice each
    torch.testing.assert_close(torch.stack(rewards), torch.tensor([[0.05, 0.0]] * 3))
    fresh = {"cells": state["cells"].clone()}  # equal values, another object: its potential is computed again
    dream.imagine(fresh, torch.tensor([1, 0]))
    assert len(decoded) == 6
    dream.imagine(start, torch.tensor([1, 0]))  # back to an older state: not mistaken for the last one
    torch.testing.assert_close(decoded[-2], start["cells"])


def test_shape_in_must_name_a_place():
    namespace = runpy.run_path(str(SCRIPT), run_name="dreamer")
    assert namespace["parse_args"](["--shape-in", "replay"]).shape_in == "replay"
    with pytest.raises(SystemExit):
        namespace["parse_args"](["--shape-in", "reward"])
