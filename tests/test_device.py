"""``--device``: cpu, cuda, cuda:N or auto; a clear error for a GPU this machine lacks, before anything runs."""

from __future__ import annotations

import pytest
import torch

from campusnav.cli import parse_args
from campusnav.device import resolve_device

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")


def test_auto_is_cuda_where_there_is_a_gpu_else_the_cpu():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("CPU") == torch.device("cpu")


@pytest.mark.parametrize("name", ["tpu", "cuda:x", ""])
def test_a_name_that_is_no_device_is_refused(name):
    with pytest.raises(ValueError, match="cpu, cuda, cuda:N or auto"):
        resolve_device(name)


@NO_GPU
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match=r"torch.cuda.is_available\(\) is False"):
        resolve_device("cuda")


@NO_GPU
@pytest.mark.parametrize("argv", [
    ["train", "mlp", "--device", "cuda"],
    ["dream", "rssm/campusnav-state-v0", "--device", "cuda:1"],
    ["demo", "--tiny", "--device", "cuda"],
    ["mbrl", "--tiny", "--device", "cuda"],
])
def test_every_command_that_trains_or_dreams_refuses_a_missing_gpu(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2 and "CUDA is not available" in capsys.readouterr().err


def test_train_parses_device_and_precision():
    args = parse_args(["train", "mlp", "--device", "auto", "--precision", "bf16"])
    assert (args.device, args.precision) == ("auto", "bf16")
    with pytest.raises(SystemExit):
        parse_args(["train", "mlp", "--precision", "fp16"])
