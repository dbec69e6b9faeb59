"""Batched observations in numpy: select, copy, stack and assign rows of every array part.

A Gymnasium vector env batches an observation along the first axis of each of
its arrays; a ``Dict`` space gives a dict of such arrays and a ``Tuple`` space a
tuple. The dream envs and the SB3 adapter move rows of these batches around;
these helpers do it whatever the nesting.

>>> obs = {"image": np.zeros((3, 2, 2)), "state": np.arange(3.0)}
>>> copy_row(obs, 2)["state"], batch_size(obs)
(array(2.), 3)
>>> select_rows(obs, [0, 2])["image"].shape
(2, 2, 2)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["assign_rows", "batch_size", "concat_batches", "copy_batch", "copy_row", "select_rows", "stack_rows"]


def _map_arrays(fn: Callable[..., Any], obs: Any, *others: Any) -> Any:
    """``fn`` applied to every array of ``obs`` (and the matching arrays of ``others``), keeping the nesting."""
    if isinstance(obs, Mapping):
        return {k: _map_arrays(fn, v, *(o[k] for o in others)) for k, v in obs.items()}
    if isinstance(obs, tuple):
        return tuple(_map_arrays(fn, *parts) for parts in zip(obs, *others, strict=True))
    return fn(obs, *others)


def batch_size(obs: Any) -> int:
    """The length of the batch axis (that of the first array)."""
    while isinstance(obs, (Mapping, tuple)):
        obs = next(iter(obs.values())) if isinstance(obs, Mapping) else obs[0]
    return len(obs)


def copy_batch(obs: Any) -> Any:
    """A copy of a batch whose arrays share no memory with ``obs``."""
    return _map_arrays(lambda v: np.array(v, copy=True), obs)


def copy_row(obs: Any, i: int) -> Any:
    """Row ``i`` of a batch, as fresh arrays: one env's observation."""
    return _map_arrays(lambda v: np.array(v[i], copy=True), obs)


def select_rows(obs: Any, rows: Any) -> Any:
    """Rows ``rows`` (an int, slice or index array) of a batch (numpy indexing: a slice gives views)."""
    return _map_arrays(lambda v: v[rows], obs)


def stack_rows(observations: Sequence[Any]) -> Any:
    """Single observations stacked into one batch (n, ...)."""
    return _map_arrays(lambda *vs: np.stack([np.asarray(v) for v in vs]), observations[0], *observations[1:])


def concat_batches(batches: Sequence[Any]) -> Any:
    """Batches joined along the batch axis."""
    return _map_arrays(lambda *vs: np.concatenate(vs), batches[0], *batches[1:])


def assign_rows(obs: Any, source: Any, mask: np.ndarray) -> None:
    """``obs[mask] = source[mask]`` in place, for every array."""

    def assign(target: np.ndarray, values: np.ndarray) -> None:
        target[mask] = values[mask]

    _map_arrays(assign, obs, source)
