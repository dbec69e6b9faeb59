"""Threads chosen for the user: one torch thread per process unless ``--threads N`` says otherwise."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from campusnav import cli
from campusnav.threads import DEFAULT_THREADS, use_threads


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_use_threads_sets_torch_threads(restore_threads):
    assert use_threads(2) == 2 and torch.get_num_threads() == 2
    assert use_threads(None) == DEFAULT_THREADS == torch.get_num_threads()
    with pytest.raises(ValueError, match="positive"):
        use_threads(0)


@pytest.mark.parametrize("argv", [["train", "mlp"], ["collect", "--episodes", "1"], ["play"],
                                  ["demo", "--tiny"], ["mbrl", "--tiny", "--out", "unused"], ["bench", "--quick"]])
def test_every_command_takes_threads(argv):
    assert cli.parse_args(argv).threads is None
    assert cli.parse_args([*argv, "--threads", "3"]).threads == 3


@pytest.mark.parametrize("argv", [["train", "mlp", "--threads", "0"], ["demo", "--threads", "-1"]])
def test_threads_below_one_are_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit):
        cli.parse_args(argv)
    assert "--threads" in capsys.readouterr().err


@pytest.mark.parametrize("option, expected", [([], DEFAULT_THREADS), (["--threads", "2"], 2)])
def test_main_runs_the_command_with_the_threads_chosen(option, expected, monkeypatch, restore_threads):
    seen = []
    bench = dataclasses.replace(cli.COMMANDS["bench"], run=lambda args: seen.append(torch.get_num_threads()) or 0)
    monkeypatch.setitem(cli.COMMANDS, "bench", bench)
    torch.set_num_threads(4)
    assert cli.main(["bench", "--quick", *option]) == 0
    assert seen == [expected]
