"""campusnav collect --workers/--address: the checks, and the same dataset on one and two Ray workers."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from campusnav import cli
from model_zoo.data import load_dataset, load_episodes


def exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        cli.parse_args(argv)
    return exc.value.code


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["collect", "--episodes", "2", "--workers", "0"], "argument --workers: must be a positive integer"),
        (["collect", "--episodes", "2", "--address", "auto"], "give --workers more than 1"),
    ],
)
def test_collect_worker_arguments_are_checked(capsys, argv, message):
    assert exit_code(argv) == 2
    assert message in capsys.readouterr().err


def test_collect_on_workers_without_ray_says_how_to_install_it(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "ray" else object())
    assert exit_code(["collect", "--episodes", "2", "--workers", "2"]) == 2
    assert 'pip install "campusnav[distributed]"' in capsys.readouterr().err


def test_collect_on_two_workers_writes_the_dataset_of_one(tmp_path, capsys):
    ray = pytest.importorskip("ray")
    data = str(tmp_path)
    common = ["collect", "--episodes", "5", "--num-envs", "3", "--obs-mode", "state", "--max-episode-steps", "4",
              "--data-path", data, "--seed", "2"]
    assert cli.main([*common, "--dataset-id", "campusnav/one-v0"]) == 0
    started = not ray.is_initialized()
    try:
        assert cli.main([*common, "--dataset-id", "campusnav/two-v0", "--workers", "2"]) == 0
    finally:
        if started:
            ray.shutdown()
    assert "wrote campusnav/two-v0: 5 episodes, 20 steps" in capsys.readouterr().out
    one, two = (load_episodes(load_dataset(f"campusnav/{name}-v0", data_path=data)) for name in ("one", "two"))
    for a, b in zip(one, two, strict=True):
        assert np.array_equal(a.obs, b.obs) and np.array_equal(a.action, b.action) and a.metadata == b.metadata
