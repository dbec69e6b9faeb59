"""Crash tests: ``kill -9`` while ``campusnav collect`` and ``campusnav train`` write, then look at what is left.

Each command runs in a subprocess at a tiny budget and is killed at a few points: as
soon as it starts writing (a staging folder appears), a seeded random moment later, or
at a seeded random moment after start. Afterwards its output is absent or loads whole
(the dataset's checksums and episodes, the checkpoint's hash and tensors), never
half-written, and the next run of the command leaves no staging litter behind.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from campusnav.cli import main
from model_zoo.checkpoint import CheckpointError
from model_zoo.data import collect, load_dataset, load_episodes

CAMPUSNAV = shutil.which("campusnav")
pytestmark = pytest.mark.skipif(CAMPUSNAV is None or not hasattr(signal, "SIGKILL"),
                                reason="needs the campusnav console script and kill -9")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "SDL_VIDEODRIVER": "dummy", "MPLBACKEND": "Agg"}
EPISODES = 12
COLLECT = ["--episodes", str(EPISODES), "--num-envs", "4", "--max-episode-steps", "40", "--obs-mode", "dict"]
TRAIN = ["mlp", "--dataset-id", "campusnav/crash-data-v0", "--batch-size", "2", "--seq-len", "4", "--set", "hidden=8",
         "--holdout", "0", "--checkpoint-every", "1"]


def _run_and_kill(args: list[str], cwd: Path, ready: Callable[[], bool], delay: float, log: Path | None = None,
                  timeout: float = 60.0) -> bool:
    """Starts ``campusnav ARGS``, waits until ``ready()``, then ``delay`` seconds more, and kills it with SIGKILL.

    Its stderr goes to ``log``. Returns whether it was killed (False: it finished first).
    """
    with open(log or os.devnull, "wb") as stderr:
        process = subprocess.Popen([CAMPUSNAV, *args], cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + timeout
        while not ready() and process.poll() is None:
            assert time.monotonic() < deadline, f"campusnav {' '.join(args)} never reached the kill point"
            time.sleep(0.001)
        time.sleep(delay)
        if process.poll() is not None:
            return False
        process.send_signal(signal.SIGKILL)
        return True
    finally:
        process.kill()
        process.wait(timeout=30)


def _staging(root: Path) -> set[Path]:
    return set(root.glob(".collect-*"))


def test_a_killed_collect_leaves_no_dataset_or_a_whole_one_and_no_litter_after_the_next(tmp_path):
    rng = random.Random(28)
    root = tmp_path / "minari"
    kills = [("writing", 0.0), ("writing", rng.uniform(0.0, 0.1)), ("stepping", rng.uniform(0.0, 0.2))]
    litter = 0
    for k, (point, delay) in enumerate(kills):
        dataset_id, log, before = f"campusnav/crash-v{k}", tmp_path / f"collect-{k}.log", _staging(root)
        ready = {
            "writing": lambda before=before: bool(_staging(root) - before),  # its own staging folder appeared
            "stepping": lambda log=log: b"collect CampusNav-v0" in log.read_bytes(),  # its progress bar started
        }[point]
        assert _run_and_kill(["collect", *COLLECT, "--dataset-id", dataset_id, "--data-path", str(root)], tmp_path,
                             ready, delay, log)
        litter += len(_staging(root) - before)
        if (root / dataset_id).exists():
            assert len(load_episodes(dataset_id, data_path=root)) == EPISODES  # whole, checksums and all
        else:
            with pytest.raises(FileNotFoundError):
                load_dataset(dataset_id, data_path=root)
    assert litter, "no kill landed while a dataset was being written"
    assert main(["collect", *COLLECT[:2], "--max-episode-steps", "3", "--obs-mode", "state",
                 "--dataset-id", "campusnav/after-v0", "--data-path", str(root)]) == 0
    assert _staging(root) == set(), "the next collect left the killed ones' staging folders"
    assert len(load_episodes("campusnav/after-v0", data_path=root)) == EPISODES


def _checkpoint_litter(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.glob("*checkpoint*") if p.name != "checkpoint")


def test_a_killed_train_leaves_a_loadable_checkpoint_or_none_and_no_litter_after_the_next(tmp_path):
    rng = random.Random(28)
    root, run_dir = tmp_path / "minari", tmp_path / "run"
    collect("CampusNav-v0", num_episodes=4, num_envs=2, max_episode_steps=12, env_kwargs={"obs_mode": "state"},
            progress=False, data_path=root, dataset_id="campusnav/crash-data-v0")
    args = [*TRAIN, "--data-path", str(root), "--run-dir", str(run_dir)]
    kills = [(lambda: any(run_dir.glob(".checkpoint-*")), 0.0),
             (lambda: (run_dir / "checkpoint").exists(), rng.uniform(0.0, 0.5))]
    for ready, delay in kills:
        assert _run_and_kill(["train", *args, "--steps", "100000"], tmp_path, ready, delay)
        if (run_dir / "checkpoint").exists() or (run_dir / "checkpoint.old").exists():
            model_zoo.load(run_dir)  # whole: hash, dtypes and shapes checked
        else:
            with pytest.raises(CheckpointError, match="config.json is missing"):
                model_zoo.load(run_dir)
    assert main(["train", *args, "--steps", "3"]) == 0  # resumes (or starts) and finishes at once
    assert _checkpoint_litter(run_dir) == []
    model_zoo.load(run_dir)


@pytest.fixture
def trained(tmp_path) -> list[str]:
    """``campusnav train`` arguments of a finished 2-step run on a tiny dataset."""
    root, run_dir = tmp_path / "minari", tmp_path / "run"
    collect("CampusNav-v0", num_episodes=2, num_envs=2, max_episode_steps=8, env_kwargs={"obs_mode": "state"},
            progress=False, data_path=root, dataset_id="campusnav/crash-data-v0")
    args = ["train", *TRAIN, "--data-path", str(root), "--run-dir", str(run_dir), "--steps", "2"]
    assert main(args) == 0
    return args


def test_the_next_train_removes_the_old_checkpoint_a_kill_between_the_renames_left(trained, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(run_dir / "checkpoint", run_dir / "checkpoint.old")  # killed after the second rename
    (run_dir / ".checkpoint-killed").mkdir()  # and a checkpoint write killed halfway
    assert main(trained) == 0  # nothing left to train: resumes and stops
    assert _checkpoint_litter(run_dir) == []


def test_a_resumed_train_refuses_a_damaged_checkpoint(trained, tmp_path):
    path = tmp_path / "run" / "checkpoint" / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="content does not match the SHA-256"):
        main([*trained[:-1], "4"])
