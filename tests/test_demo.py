"""``campusnav demo --tiny``: the main job end to end, and the report folder it writes."""

from __future__ import annotations

import json

import gymnasium as gym
import imageio.v3 as iio
import pytest

from campus_env.observation_render import render_observation
from campusnav import cli
from wrappers.recorder import video_backend


def test_demo_tiny_writes_the_report_folder(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--tiny", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "controller trained in the dream" in printed and "shortest-path oracle" in printed
    video = ".mp4" if video_backend() else ".gif"  # MP4 with imageio-ffmpeg (a dependency)
    for name in ("report.md", "metrics.json", "cmaes.png", "error_vs_horizon.png", f"dream_vs_reality{video}",
                 f"dream_controller_in_reality{video}", "controller_dream.npz", "controller_reality.npz"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["policies"]) == {"controller trained in the dream", "controller trained in reality",
                                        "random policy", "shortest-path oracle"}
    assert metrics["config"]["train_steps"] == 6  # --tiny
    # the mlp's dream options the demo picks by default, and the checkpoint was built with them
    assert metrics["model_overrides"] == {"outcomes": 4, "snap_levels": 64, "rollout_steps": 16}
    saved = json.loads((out / "model" / "checkpoint" / "config.json").read_text())["config"]
    assert (saved["outcomes"], saved["snap_levels"], saved["rollout_steps"]) == (4, 64, 16)
    assert len(metrics["cmaes"]["dream"]["best"]) == 2
    frames = iio.imread(out / f"dream_vs_reality{video}", index=None)
    campus = render_observation(gym.make("CampusNav-v0", obs_mode="state").reset(seed=0)[0])
    assert frames.ndim == 4 and frames.shape[0] >= 2
    assert frames.shape[1] > campus.shape[0] and frames.shape[2] > 2 * campus.shape[1]  # both worlds as the campus
    walk = iio.imread(out / f"dream_controller_in_reality{video}", index=None)
    assert walk.shape[1] > campus.shape[0] and walk.shape[2] == campus.shape[1]  # the campus over a caption
    report = (out / "report.md").read_text()
    assert "Policies in reality" in report
    assert f"dream_vs_reality{video}" in report and f"dream_controller_in_reality{video}" in report
    # a second run reuses the collected data
    assert cli.main(["demo", "--tiny", "--out", str(out)]) == 0


def test_demo_with_a_pretrained_model_trains_no_world_model(tmp_path):
    out = tmp_path / "pretrained"
    assert cli.main(["demo", "--tiny", "--pretrained", "rssm/campusnav-state-v0", "--model", "mlp",
                     "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["model"] == "rssm" and metrics["config"]["obs_mode"] == "state"  # the card's
    assert not (out / "model").exists()  # nothing trained
    assert metrics["evaluation"]["obs_mse@1"] > 0
    assert "pretrained world model `rssm/campusnav-state-v0`" in (out / "report.md").read_text()


def test_demo_argument_errors(capsys):
    for argv, message in ((["demo", "--model", "nope"], "unknown model 'nope'"),
                          (["demo", "--popsize", "0"], "must be a positive integer"),
                          (["demo", "--obs-mode", "rgb"], "choose from dict, pixels, state"),
                          (["demo", "--controller", "x"], "choose from action, latent"),
                          (["demo", "--obs-mode", "dict"], "'action' reads the walkability patch"),
                          (["demo", "--collect-bias", "2"], "a probability in [0, 1]"),
                          (["demo", "--obs-mode", "dict", "--controller", "latent"], "pass --collect-bias 0"),
                          (["demo", "--pretrained", "rssm/nope-v0"], "unknown 'rssm/nope-v0'; choose from")):
        with pytest.raises(SystemExit) as exit_:
            cli.parse_args(argv)
        assert exit_.value.code == 2
        assert message in capsys.readouterr().err


def test_demo_latent_controller_and_bad_combinations(tmp_path):
    from dataclasses import replace

    from campusnav.demo import TINY, DemoConfig, run_demo

    tiny = replace(DemoConfig(out=str(tmp_path / "latent")), **TINY)
    out = run_demo(replace(tiny, controller="latent", collect_bias=0.0))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["controller"] == "latent"
    # Ha & Schmidhuber's controller: one weight row per action over the model's features
    import numpy as np

    assert np.load(out / "controller_dream.npz")["params"].size > 5 * 10
    for changes, message in (({"controller": "nope"}, "choose from action, latent"),
                             ({"obs_mode": "dict"}, "'action' reads the walkability patch"),
                             ({"obs_mode": "dict", "controller": "latent"}, "pass --collect-bias 0")):
        with pytest.raises(ValueError, match=message):
            run_demo(replace(tiny, **changes))


def test_model_overrides_auto_explicit_and_none():
    from dataclasses import replace

    from campusnav.demo import DEMO_MODEL_CONFIG, DemoConfig, model_overrides

    assert model_overrides(DemoConfig()) == {"outcomes": 4, "snap_levels": 64, "rollout_steps": 16}
    assert DEMO_MODEL_CONFIG["mlp"] == "outcomes=4,snap_levels=64,rollout_steps=16"
    assert model_overrides(replace(DemoConfig(), model_config="")) == {}
    assert model_overrides(replace(DemoConfig(), model_config="hidden=32")) == {"hidden": 32}
    assert model_overrides(replace(DemoConfig(), model="rssm")) == {}  # auto: no demo options for it
