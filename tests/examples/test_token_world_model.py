"""examples/token_world_model.py runs end to end on a tiny budget: four variants, their table, videos and metrics."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest
import torch

import model_zoo

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "token_world_model.py"
VARIANTS = ("N=1 parallel", "N=4 parallel", "N=1 autoregressive", "N=4 autoregressive")


def test_runs_on_a_tiny_budget_and_compares_the_four_variants(tmp_path):
    out = tmp_path / "out"
    stdout = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--out", str(out)],
        capture_output=True, text=True, check=True, timeout=300, env=os.environ.copy(),
    ).stdout
    for section in ("== 1. collect", "== 2. tokenizer", "== 3. transformers", "== 4. evaluate", "== 5. videos"):
        assert section in stdout
    assert "| token_acc@1 | token_acc@4 | psnr@1 | psnr@4 |" in stdout and "imagined fps (batch 1)" in stdout
    assert "N=4 - N=1 (parallel): token_acc@1" in stdout and "parallel imagines" in stdout

    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["variants"]) == list(VARIANTS)
    for name, variant in metrics["variants"].items():
        history, decoding = name.split(" ")
        assert variant["config"]["history"] == int(history[2:]) and variant["config"]["decoding"] == decoding
        assert variant["config"]["train_tokenizer"] is False
        assert 0.0 <= variant["evaluation"]["token_acc@1"] <= 1.0
        assert variant["evaluation"]["imagined_steps_per_s"] > 0
        video = Path(variant["video"])
        assert video.parent == out / "videos" and video.is_file()
        frames = iio.imread(video, index=None)
        assert frames.shape[0] == len(variant["video_errors"]) + 1 and frames.shape[-1] == 3
    assert (out / "error_vs_horizon.png").is_file()

    # the four variants predict the same tokens: their saved tokenizers are one and the same
    models = [model_zoo.load(out / "models" / name.replace(" ", "_").replace("=", "")) for name in VARIANTS]
    reference = models[0].tokenizers.state_dict()
    for model in models[1:]:
        assert all(torch.equal(reference[k], v) for k, v in model.tokenizers.state_dict().items())
    assert [m.config.history for m in models] == [1, 4, 1, 4]


def test_arguments_come_from_the_dataclass():
    namespace = runpy.run_path(str(SCRIPT), run_name="token_world_model")
    args = namespace["parse_args"](["--train-steps", "7", "--config", "hidden=32,layers=1"])
    assert args.train_steps == 7 and args.tiny is False
    assert namespace["config_overrides"](args.config) == {"hidden": 32, "layers": 1}
    assert namespace["parse_args"]([]) == namespace["Args"]()
    with pytest.raises(SystemExit):
        namespace["parse_args"](["--obs-mode", "state"])
