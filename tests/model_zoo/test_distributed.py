"""Data-parallel training: two gloo processes follow one process's loss curve; rank 0 alone writes; resume is exact.

The two processes are started the way torchrun starts them (``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT`` in the environment), by ``torch.multiprocessing``
here and by ``torchrun`` itself for the command line.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from gymnasium import spaces

import model_zoo
from campusnav import cli
from campusnav.threads import use_threads
from model_zoo import distributed
from model_zoo.training import CHECKPOINT_DIR, METRICS_FILE, fit
from tests.model_zoo.test_training import _episodes

OBS_SPACE = spaces.Box(-10.0, 10.0, (3,), "float32")
STEPS, LOG_EVERY, BATCH, SEQ_LEN = 60, 20, 8, 8
CURVE_TOLERANCE = 0.2
"""relative gap allowed between a 2-process and the 1-process loss at each logged row: the batches differ
(each rank draws its own windows), the global batch and the step count do not"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return model_zoo.make("mlp", OBS_SPACE, spaces.Discrete(2), hidden=16, layers=1)


def _fit(model: torch.nn.Module, run_dir: Path, steps: int = STEPS) -> list[dict[str, float]]:
    return fit(model, _episodes(), steps=steps, batch_size=BATCH, seq_len=SEQ_LEN, lr=3e-3, log_every=LOG_EVERY,
               checkpoint_every=LOG_EVERY, run_dir=run_dir, progress=False)


def _flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _worker(rank: int, port: int, out: str) -> None:
    """One of two ranks: an uninterrupted run, and a run stopped halfway and resumed; rank 0 reports."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    use_threads(1)
    world = distributed.init("gloo")
    try:
        out_path = Path(out)
        whole = _model()  # rank 1 is given its own run_dir: it must stay unwritten
        history = _fit(whole, out_path / ("ddp" if rank == 0 else "rank1"))
        resumed = _model()
        _fit(resumed, out_path / "resume", steps=STEPS // 2)
        _fit(resumed, out_path / "resume")
        sums = distributed.gather(float(_flat(whole).double().sum()))
        if world.is_main:
            report = {"history": history, "rank_sums": sums,
                      "resume_gap": float((_flat(whole) - _flat(resumed)).abs().max())}
            (out_path / "report.json").write_text(json.dumps(report))
    finally:
        distributed.shutdown()


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    for attempt in range(2):
        out = tmp_path_factory.mktemp("ddp")
        try:
            torch.multiprocessing.spawn(_worker, args=(_free_port(), str(out)), nprocs=2, join=True)
            break
        except torch.multiprocessing.ProcessExitedException as error:
            # a rank killed by a signal (gloo's native teardown on a loaded CI machine) is retried once;
            # a Python error in a rank is a ProcessRaisedException and fails at once
            if error.signal_name is None or attempt == 1:
                raise
    return out, json.loads((out / "report.json").read_text())


def test_two_processes_follow_the_one_process_loss_curve(two_processes, tmp_path, one_torch_thread):
    _, report = two_processes
    alone = _fit(_model(), tmp_path / "alone")
    assert [row["step"] for row in report["history"]] == [row["step"] for row in alone]
    for pair, single in zip(report["history"], alone, strict=True):
        assert pair["loss"] == pytest.approx(single["loss"], rel=CURVE_TOLERANCE), (pair["step"], pair, single)
    assert report["history"][-1]["loss"] < report["history"][0]["loss"]


def test_the_ranks_hold_the_same_weights(two_processes):
    _, report = two_processes
    assert report["rank_sums"][0] == report["rank_sums"][1]


def test_rank_zero_alone_writes(two_processes):
    out, _ = two_processes
    assert not (out / "rank1").exists()
    assert (out / "ddp" / CHECKPOINT_DIR / "model.safetensors").is_file()
    with open(out / "ddp" / METRICS_FILE, newline="") as f:
        assert [int(float(row["step"])) for row in csv.DictReader(f)] == list(range(LOG_EVERY, STEPS + 1, LOG_EVERY))
    trainer = json.loads((out / "ddp" / CHECKPOINT_DIR / "trainer.json").read_text())
    assert len(trainer["ranks"]) == 2 and trainer["ranks"][0]["sampler"] != trainer["ranks"][1]["sampler"]


def test_a_resumed_two_process_run_ends_where_an_uninterrupted_one_does(two_processes):
    _, report = two_processes
    assert report["resume_gap"] == 0.0


def test_a_checkpoint_of_two_processes_does_not_resume_in_one(two_processes):
    out, _ = two_processes
    with pytest.raises(model_zoo.CheckpointError, match="written by 2 process"):
        _fit(_model(), out / "ddp", steps=STEPS + LOG_EVERY)


def test_outside_torchrun_there_is_one_process(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert not distributed.launched()
    assert distributed.init() == distributed.World() and not distributed.World().enabled


def test_each_rank_draws_its_shard_with_a_seed_of_its_own():
    assert distributed.rank_seed(7, 0) == 7
    assert len({distributed.rank_seed(7, rank) for rank in range(4)}) == 4
    assert distributed.shard_batch_size(16, 4) == 4
    with pytest.raises(ValueError, match="multiple of 3"):
        distributed.shard_batch_size(16, 3)


# --- the command line under torchrun ----------------------------------------------------


def test_torchrun_trains_from_the_command_line_and_resumes(tmp_path):
    data = str(tmp_path / "data")
    assert cli.main(["collect", "--episodes", "4", "--num-envs", "2", "--obs-mode", "state", "--max-episode-steps",
                     "20", "--dataset-id", "campusnav/ddp-v0", "--data-path", data]) == 0
    run_dir = tmp_path / "run"

    def train(steps: int) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                   "campusnav", "train", "mlp", "--dataset-id", "campusnav/ddp-v0", "--data-path", data, "--holdout",
                   "0", "--steps", str(steps), "--batch-size", "4", "--seq-len", "8", "--checkpoint-every", "10",
                   "--set", "hidden=16", "--run-dir", str(run_dir)]
        return subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=tmp_path)

    for steps in (10, 20):
        done = train(steps)
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.count("checkpoint:") == 1  # rank 0 alone prints
    with open(run_dir / METRICS_FILE, newline="") as f:
        assert [int(float(row["step"])) for row in csv.DictReader(f)] == [10, 20]
    assert json.loads((run_dir / CHECKPOINT_DIR / "trainer.json").read_text())["step"] == 20


def test_the_command_line_refuses_a_batch_that_does_not_split(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(SystemExit):
        cli.parse_args(["train", "mlp", "--batch-size", "16"])
    assert "multiple of the 3 process" in capsys.readouterr().err
