"""The ``campusnav`` command line: help, --do parsing and its errors, dispatch, and bench."""

from __future__ import annotations

import shutil
import subprocess

import imageio.v3 as iio
import pytest

from campusnav import cli


def exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        cli.parse_args(argv)
    return exc.value.code


def test_help_lists_the_subcommands(capsys):
    assert exit_code(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out
    assert {"play", "bench"} <= set(cli.COMMANDS)


@pytest.mark.skipif(shutil.which("campusnav") is None, reason="the console script is not installed")
def test_console_script_help():
    done = subprocess.run(["campusnav", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "play" in done.stdout and "bench" in done.stdout


def test_no_subcommand_is_a_usage_error(capsys):
    assert exit_code([]) == 2
    assert "COMMAND" in capsys.readouterr().err


def test_do_parses_into_typed_values():
    args = cli.parse_args(["play", "--do", "weather=rainy", "--do", "gameday=true"])
    assert args.do == {"weather": "rainy", "gameday": True}
    args = cli.parse_args(["play", "--seed", "3", "--do", "hour=9.5", "--do", "day=5", "--do", "crowd=1"])
    assert args.seed == 3 and args.do == {"hour": 9.5, "day": 5, "crowd": 1}
    assert cli.parse_args(["play"]).do == {}


@pytest.mark.parametrize(
    "text, value",
    [("true", True), ("False", False), ("3", 3), ("-2", -2), ("9.5", 9.5), ("1e-3", 0.001), ("rainy", "rainy")],
)
def test_parse_value(text, value):
    parsed = cli.parse_value(text)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--do", "weather"], "KEY=VALUE"),
        (["--do", "=rainy"], "KEY=VALUE"),
        (["--do", "foo=1"], "unknown causal variable 'foo'"),
        (["--do", "weather=foggy"], "'sunny'"),
        (["--do", "gameday=yes"], "gameday must be True or False"),
        (["--do", "crowd=2"], "crowd must be a number in [0, 1]"),
        (["--do", "weather=rainy", "--do", "weather=snowy"], "given twice"),
        (["--split", "test"], "invalid choice"),
        (["--layout", "/no/such/layout.txt"], "cannot read layout"),
    ],
)
def test_bad_play_arguments_exit_2_with_a_clear_message(argv, message, capsys):
    assert exit_code(["play", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert err.startswith("usage: campusnav play")


def test_play_dispatches_with_the_parsed_options(monkeypatch, capsys):
    import campus_env.play
    from campus_env.play import PlayResult

    calls = []

    def fake_play(**kwargs):
        calls.append(kwargs)
        return PlayResult("key", 0, 4, [4], 0, 0, [1, 1, 1, 1], [], "")

    monkeypatch.setattr(campus_env.play, "play", fake_play)
    assert cli.main(["play", "--seed", "7", "--semester", "spring", "--do", "weather=snowy"]) == 0
    assert calls == [{"seed": 7, "do": {"weather": "snowy"}, "split": "all", "semester": "spring",
                      "layout": None, "fps": 30}]
    assert "4 steps" in capsys.readouterr().out


def test_bench_quick_prints_the_table(capsys, tmp_path):
    out_json = tmp_path / "bench.json"
    argv = ["bench", "--quick", "--seconds", "0.03", "--num-envs", "1", "4", "--sync-envs", "2",
            "--json", str(out_json)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "| configuration | steps/s | × MiniGrid pixels | × single env (same obs) |" in out
    assert "native vector env, N=4, pixels" in out and "SyncVectorEnv, N=2, state" in out
    assert "single env state >= 20,000 steps/s" in out
    assert out_json.is_file()


def test_bench_rejects_bad_numbers(capsys):
    assert exit_code(["bench", "--seconds", "0"]) == 2
    assert "positive" in capsys.readouterr().err


# --- collect and train ------------------------------------------------------


def test_collect_then_train_writes_a_dataset_a_checkpoint_and_the_table(tmp_path, capsys):
    import model_zoo
    from model_zoo.data import load_dataset

    data = str(tmp_path / "data")
    argv = ["collect", "--episodes", "6", "--num-envs", "3", "--obs-mode", "state", "--max-episode-steps", "25",
            "--dataset-id", "campusnav/cli-v0", "--data-path", data]
    assert cli.main(argv) == 0
    assert "wrote campusnav/cli-v0: 6 episodes, 150 steps" in capsys.readouterr().out
    run_dir = tmp_path / "run"
    argv = ["train", "mlp", "--dataset-id", "campusnav/cli-v0", "--data-path", data, "--steps", "12",
            "--batch-size", "2", "--seq-len", "6", "--holdout", "0.34", "--run-dir", str(run_dir),
            "--checkpoint-every", "6", "--set", "hidden=16"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "| mlp |" in out and "obs_mse@1" in out
    model = model_zoo.load(run_dir / "checkpoint")
    assert model.config.hidden == 16
    assert model.observation_space == load_dataset("campusnav/cli-v0", data_path=data).observation_space
    assert len((run_dir / "metrics.csv").read_text().splitlines()) >= 2

    # the trained model dreams beside reality; the env is rebuilt from the model's observation space
    video = tmp_path / "dream.gif"
    assert cli.main(["dream", str(run_dir / "checkpoint"), "--out", str(video), "--steps", "5", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "obs_mode=state" in out and "observation MSE after   5 steps" in out
    frames = iio.imread(video, index=None)
    assert frames.shape[0] == 6 and frames.ndim == 4  # the reset and 5 steps
    # a model that takes no interventions refuses --do, with a clear message
    assert cli.main(["dream", str(run_dir / "checkpoint"), "--out", str(video), "--do", "gameday=true"]) == 2
    assert "does not take interventions" in capsys.readouterr().err


def test_dream_plays_a_pretrained_model_by_its_name(tmp_path, capsys):
    video = tmp_path / "pretrained.gif"
    assert cli.main(["dream", "causal_vae_mdnrnn/campusnav-state-v0", "--out", str(video), "--steps", "4",
                     "--do", "gameday=true"]) == 0
    assert "causal_vae_mdnrnn dreaming CampusNav-v0 (obs_mode=state" in capsys.readouterr().out
    assert iio.imread(video, index=None).shape[0] == 5


def test_train_takes_the_presets_config_and_learning_rate(tmp_path, capsys, monkeypatch):
    import model_zoo
    from model_zoo.registry import Preset

    tuned = {"campusnav-state": Preset(config={"hidden": 12}, lr=2e-3), "campusnav-pixels": Preset()}
    monkeypatch.setattr(model_zoo.registry.spec("mlp").load_class(), "presets", tuned)
    fitted = {}
    monkeypatch.setattr(model_zoo, "fit", lambda model, sampler, **kw: fitted.update(model=model, **kw))
    data = str(tmp_path / "data")
    assert cli.main(["collect", "--episodes", "2", "--num-envs", "2", "--obs-mode", "state", "--max-episode-steps",
                     "10", "--dataset-id", "campusnav/preset-v0", "--data-path", data]) == 0
    train = ["train", "mlp", "--dataset-id", "campusnav/preset-v0", "--data-path", data, "--holdout", "0",
             "--run-dir", str(tmp_path / "run"), "--seq-len", "4", "--batch-size", "2"]
    assert cli.main([*train, "--preset", "campusnav-state"]) == 0
    assert fitted["lr"] == 2e-3 and fitted["model"].config.hidden == 12
    assert cli.main([*train, "--preset", "campusnav-state", "--lr", "1e-4", "--set", "hidden=8"]) == 0
    assert fitted["lr"] == 1e-4 and fitted["model"].config.hidden == 8
    assert cli.main(train) == 0
    assert fitted["lr"] == 3e-4 and fitted["model"].config.hidden == model_zoo.make(
        "mlp", fitted["model"].observation_space, fitted["model"].action_space).config.hidden


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["collect"], "--episodes is required"),
        (["collect", "--episodes", "0"], "must be a positive integer"),
        (["train", "nope"], "unknown model 'nope'"),
        (["train", "mlp", "--holdout", "1.5"], "must be in [0, 1)"),
        (["train", "mlp", "--set", "hidden"], "expected KEY=VALUE"),
        (["train", "mlp", "--preset", "nope"], "mlp has no preset 'nope'"),
        (["dream", "/nonexistent/model"], "'/nonexistent/model' is neither a model folder"),
        (["dream", "rssm/nope-v0"], "pretrained: causal_vae_mdnrnn/campusnav-state-v0"),
        (["pretrain", "--work", "/nonexistent"], "holds no leaderboard run"),
        (["dream", "/nonexistent/model", "--steps", "0"], "argument --steps: must be a positive integer"),
    ],
)
def test_collect_and_train_argument_errors(capsys, argv, message):
    assert exit_code(argv) == 2
    assert message in capsys.readouterr().err


def test_dataclass_parser_help_prints_field_docs_with_percent_signs(capsys, monkeypatch):
    import dataclasses

    import tyro

    monkeypatch.setenv("COLUMNS", "200")  # one help line per option

    @dataclasses.dataclass
    class Args:
        held_out: float = 0.15
        """share of episodes held out (15 % by default)"""

    with pytest.raises(SystemExit):
        tyro.cli(Args, args=["--help"], description="a description")
    help_text = capsys.readouterr().out
    assert "(15 % by default)" in " ".join(help_text.split())
    assert tyro.cli(Args, args=["--held-out", "0.2"]).held_out == 0.2


def test_bench_runs_from_the_installed_package_alone(tmp_path):
    """``campusnav bench`` imports nothing from ``benchmarks/``: it runs where that folder is not importable."""
    import sys

    code = ("import sys; sys.path = [p for p in sys.path if p not in ('', '.')]; "
            "sys.modules['benchmarks'] = None; "
            "from campusnav import cli; "
            "raise SystemExit(cli.main(['bench', '--seconds', '0.01', '--num-envs', '2', '--sync-envs', '0']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "native vector env, N=2, state" in done.stdout and "SyncVectorEnv" not in done.stdout


# --- reproducibility ----------------------------------------------------------


def _campusnav(*argv: str, cwd) -> subprocess.CompletedProcess:
    import os
    import sys

    env = {**os.environ, "PYTHONHASHSEED": "random"}  # separate processes, as two users would run them
    code = "import sys; from campusnav.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=180,
                          cwd=cwd, env=env, check=True)


def test_train_with_a_seed_gives_the_same_weights_in_two_processes(tmp_path):
    """``campusnav train --seed 0`` twice: bit-identical weights (the model is built after torch is seeded)."""
    data = str(tmp_path / "data")
    _campusnav("collect", "--episodes", "2", "--num-envs", "2", "--obs-mode", "state", "--max-episode-steps", "10",
               "--dataset-id", "campusnav/seed-v0", "--data-path", data, cwd=tmp_path)
    weights = []
    for run in ("a", "b"):
        _campusnav("train", "mlp", "--dataset-id", "campusnav/seed-v0", "--data-path", data, "--steps", "2",
                   "--batch-size", "2", "--seq-len", "4", "--holdout", "0", "--set", "hidden=8", "--seed", "0",
                   "--run-dir", str(tmp_path / run), cwd=tmp_path)
        weights.append(_tensor_bytes(tmp_path / run / "checkpoint"))
    assert weights[0] == weights[1]


def _tensor_bytes(folder) -> dict[str, bytes]:
    """Every saved tensor's dtype, shape and raw bytes (the file's metadata carries a per-save id)."""
    from safetensors.numpy import load_file

    return {name: (str(t.dtype), t.shape, t.tobytes()) for name, t in load_file(folder / "model.safetensors").items()}


@pytest.mark.parametrize("learner", ["ppo", "actor_critic"])
def test_mbrl_tiny_writes_the_curve(tmp_path, capsys, learner):
    import json

    out = tmp_path / "mbrl"
    assert cli.main(["mbrl", "--tiny", "--out", str(out), "--rollout", "8", "--learner", learner,
                     "--fit-threads", "2"]) == 0
    curve = json.loads((out / "curve.json").read_text())
    assert curve["config"]["fit_threads"] == 2
    assert [row["iteration"] for row in curve["curve"]] == [0, 1]
    assert curve["curve"][1]["real_steps"] > curve["curve"][0]["real_steps"] > 0
    assert (out / "curve.png").stat().st_size > 0
    assert "real steps" in capsys.readouterr().out
    assert exit_code(["mbrl", "--tiny", "--out", str(out)]) == 2  # a second run would mix with the first
    assert "already holds a loop run" in capsys.readouterr().err
    argv = ["mbrl", "--tiny", "--out", str(out), "--rollout", "8", "--learner", learner, "--resume"]
    assert cli.main(argv) == 0  # nothing left to run: the finished curve is kept as it was
    assert json.loads((out / "curve.json").read_text())["curve"] == curve["curve"]
    capsys.readouterr()
    assert cli.main(argv + ["--exploration", "0.5"]) == 2  # another config: refused, nothing run
    err = capsys.readouterr().err
    assert "--resume:" in err and "another loop config" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["mbrl", "--learner", "sac"], "--learner: unknown 'sac'"),
        (["mbrl", "--model", "nope"], "--model: unknown 'nope'"),
        (["mbrl", "--disagreement-penalty", "1.0"], "need --model mlp_ensemble"),
        (["mbrl", "--iterations", "0"], "--iterations: must be a positive integer"),
        (["mbrl", "--fit-threads", "0"], "--fit-threads: must be a positive integer"),
    ],
)
def test_mbrl_argument_errors(capsys, argv, message):
    assert exit_code(argv) == 2
    assert message in capsys.readouterr().err
