"""``--device`` of the command line: where a model trains and dreams, checked before anything runs.

``cpu`` (the default), ``cuda`` (the current GPU), ``cuda:N`` or ``auto`` (``cuda`` when
``torch.cuda.is_available()``, else ``cpu``). Asking for CUDA where there is none is a
clear ``ValueError`` rather than an error from deep inside the first ``.to()``.

>>> resolve_device("cpu")
device(type='cpu')
>>> resolve_device("tpu")
Traceback (most recent call last):
...
ValueError: --device: expected cpu, cuda, cuda:N or auto, got 'tpu'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["DEVICE_HELP", "PRECISION_HELP", "resolve_device"]

DEVICE_HELP = "where the model trains and dreams: cpu, cuda, cuda:N or auto (cuda when available) (default: cpu)"
PRECISION_HELP = "training precision: fp32, or bf16 (autocast of the forward pass and loss) (default: fp32)"


def resolve_device(name: str) -> torch.device:
    """The ``torch.device`` that ``--device name`` means on this machine.

    Raises:
        ValueError: ``name`` is not a device name, or names a GPU this machine does not have.
    """
    import torch  # here: the command line imports torch only for commands that use it
    text = str(name).strip().lower()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device: expected cpu, cuda, cuda:N or auto, got {name!r}")
    if device.type == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available here (torch.cuda.is_available() is False: no GPU, "
                         "or a CPU-only torch build); use --device cpu or auto")
    if device.index is None:  # the current GPU: under torchrun, this rank's (model_zoo.distributed.init sets it)
        return torch.device("cuda", torch.cuda.current_device())
    if device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s), "
                         f"cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    return device
