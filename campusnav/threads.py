"""``use_threads(n)``: the torch thread count every command, example and benchmark runs with.

PyTorch starts one intra-op thread per core. The zoo's networks are small: their
matrix products are too short to share across cores, and the threads spin in
OpenMP barriers that stall whenever another process holds a core. So a process
of this package runs torch on one thread unless told otherwise (``--threads N``),
and more cores are used by more processes (vector envs, torchrun ranks) instead.

The inter-op pool can be sized only before torch first runs work on it; after that
``use_threads`` leaves it as it is. Without torch installed it does nothing, so the
environment-only commands work on an install without the zoo.

>>> use_threads(1) in (1, None)
True
"""

from __future__ import annotations

import importlib.util

__all__ = ["DEFAULT_THREADS", "use_threads"]

DEFAULT_THREADS = 1
"""torch threads per process when none are asked for."""


def use_threads(threads: int | None = None) -> int | None:
    """Sets torch's intra-op (and, while still allowed, inter-op) threads; returns the count, None without torch.

    Args:
        threads: threads per process; ``None`` for ``DEFAULT_THREADS``.

    Raises:
        ValueError: ``threads`` is below 1.
    """
    count = DEFAULT_THREADS if threads is None else int(threads)
    if count < 1:
        raise ValueError(f"threads must be a positive integer, got {threads}")
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    torch.set_num_threads(count)
    if torch.get_num_interop_threads() != count:
        try:
            torch.set_num_interop_threads(count)
        except RuntimeError:  # torch already ran inter-op work (or it was set once): the pool stays
            pass
    return count
