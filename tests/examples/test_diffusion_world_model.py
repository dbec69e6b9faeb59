"""examples/diffusion_world_model.py runs end to end on a tiny budget: two games, the table, videos and metrics."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest

import model_zoo

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "diffusion_world_model.py"


def test_runs_two_games_on_a_tiny_budget(tmp_path):
    out = tmp_path / "out"
    stdout = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--games", "2", "--out", str(out)],
        capture_output=True, text=True, check=True, timeout=300, env=os.environ.copy(),
    ).stdout
    for section in ("== 1. collect", "== 2. train", "== 3. probe", "== 4. evaluate", "== 5. videos"):
        assert section in stdout
    assert "| game | valid@1 | valid@16 | psnr@1 | psnr@16 | imagined frames/s, batch 1 |" in stdout

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["games"] == 2 and metrics["config"]["image_size"] == 64
    campus, car = metrics["results"]["CampusNav-v0"], metrics["results"]["CarRacing-v3"]
    assert 0.0 <= campus["valid@1"] <= 1.0 and 0.0 <= campus["valid@16"] <= 1.0
    assert "valid@1" not in car and car["psnr@1"] > 0
    assert campus["fps@1"] > 0 and campus["fps@64"] > 0
    table = (out / "table.md").read_text().splitlines()
    assert table[0].startswith("| game | valid@1 |") and len(table) == 4
    for name, video in metrics["videos"].items():
        frames = iio.imread(video["path"], index=None)
        assert frames.shape[0] == video["frames"] == 16, name
        assert frames.shape[2] == 2 * 64 and frames.shape[-1] == 3  # real | imagined, 64 px each
    model = model_zoo.load(out / "model")
    assert model.config.games == 2 and model.game is not None
    assert (out / "probe" / "config.json").is_file()


def test_arguments_come_from_the_dataclass():
    namespace = runpy.run_path(str(SCRIPT), run_name="diffusion_world_model")
    args = namespace["parse_args"](["--games", "2", "--image-size", "128", "--steps", "10"])
    assert (args.games, args.image_size, args.steps, args.tiny) == (2, 128, 10, False)
    assert namespace["parse_args"]([]) == namespace["Args"]()
    with pytest.raises(SystemExit):
        namespace["parse_args"](["--games", "3"])
