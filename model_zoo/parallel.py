"""Runs a function over items as Ray tasks: the engine of collection and evaluation past one process.

``map_tasks(fn, items, workers=K)`` calls ``fn(item)`` for every item, at most ``K`` at
a time, each in a Ray worker process with one torch thread, and returns the results in
the order of ``items``; ``workers=1`` calls them here, in order, without Ray. Ray
(``pip install "campusnav[distributed]"``) starts a local instance with ``K`` CPUs
unless one is running or ``address`` names a cluster (``ray start --head`` prints it).
``fn`` and the items travel to the workers pickled (by Ray's cloudpickle), so a
function must be importable there or picklable by value.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = ["INSTALL_HINT", "check_picklable", "check_workers", "chunked", "map_chunks", "map_tasks", "ray_available",
           "require_ray"]

INSTALL_HINT = 'pip install "campusnav[distributed]"'
Item = TypeVar("Item")
Result = TypeVar("Result")


def ray_available() -> bool:
    """Whether Ray can be imported."""
    return importlib.util.find_spec("ray") is not None


def require_ray() -> Any:
    """The ``ray`` module, or an ``ImportError`` that says how to install it."""
    try:
        import ray
    except ImportError as error:
        raise ImportError(f"running on more than one worker needs Ray: {INSTALL_HINT}") from error
    return ray


def check_workers(workers: Any) -> None:
    """Raises ``ValueError`` unless ``workers`` is a positive integer."""
    if isinstance(workers, bool) or not isinstance(workers, int | np.integer) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")


def check_picklable(obj: Any, name: str) -> None:
    """Raises ``TypeError`` when ``obj`` cannot travel to a Ray worker (Ray's cloudpickle fails on it)."""
    from ray import cloudpickle

    try:
        cloudpickle.dumps(obj)
    except Exception as error:  # cloudpickle raises TypeError, PicklingError, AttributeError, ...
        raise TypeError(f"{name} must be picklable to run on Ray workers (workers > 1): {error}") from error


def map_tasks(fn: Callable[[Item], Result], items: Iterable[Item], *, workers: int = 1, address: str | None = None,
              on_done: Callable[[int, Result], None] | None = None) -> list[Result]:
    """``[fn(item) for item in items]``, as Ray tasks when ``workers > 1``; see the module docstring.

    Args:
        fn: called once per item; with ``workers > 1`` it runs in a Ray worker and must be picklable.
        items: the arguments, each passed to the workers pickled.
        workers: tasks running at once (and the CPUs of a local Ray instance that this call starts).
        address: a Ray cluster to join (``"auto"``, ``"HOST:PORT"``, ``"ray://HOST:PORT"``); None
            starts a local instance. Ignored when Ray is already initialised.
        on_done: called here as ``on_done(index, result)`` whenever a result arrives.

    Returns:
        The results, in the order of ``items``.

    """
    check_workers(workers)
    items = list(items)
    if workers == 1:
        results = []
        for index, item in enumerate(items):
            results.append(fn(item))
            if on_done is not None:
                on_done(index, results[-1])
        return results
    ray = require_ray()
    check_picklable(fn, "fn")
    if not ray.is_initialized():
        ray.init(address=address, num_cpus=workers if address is None else None, include_dashboard=False,
                 logging_level="warning")
    task = ray.remote(num_cpus=1)(_one_thread_call)
    fn_ref = ray.put(fn)
    results: list[Any] = [None] * len(items)
    running: dict[Any, int] = {}
    for index, item in enumerate(items):
        if len(running) >= workers:
            _gather_one(ray, running, results, on_done)
        running[task.remote(fn_ref, item)] = index
    while running:
        _gather_one(ray, running, results, on_done)
    return results


def map_chunks(fn: Callable[[list[Item]], Sequence[Any] | np.ndarray], items: Sequence[Item], *, workers: int = 1,
               address: str | None = None) -> list[Any]:
    """``fn`` over ``workers`` contiguous chunks of ``items`` (as ``map_tasks``), its outputs joined in order.

    With ``workers=1`` it is ``list(fn(list(items)))``; ``fn(chunk)`` returns one value per member.
    """
    if workers == 1:
        return list(fn(list(items)))
    bounds = np.linspace(0, len(items), min(workers, max(len(items), 1)) + 1).round().astype(int)
    chunks = [list(items[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    outputs = map_tasks(fn, chunks, workers=workers, address=address)
    joined: list[Any] = []
    for chunk, output in zip(chunks, outputs, strict=True):
        output = list(output)
        if len(output) != len(chunk):
            raise ValueError(f"fn(chunk) must return one value per member: {len(chunk)} members, {len(output)} values")
        joined.extend(output)
    return joined


def chunked(fn: Callable[[list[Item]], Sequence[Any] | np.ndarray], *, workers: int = 1, address: str | None = None,
            name: str = "fn") -> Callable[[list[Item]], Sequence[Any] | np.ndarray]:
    """``fn`` itself when ``workers == 1``, else ``fn`` over ``workers`` chunks on Ray tasks (``map_chunks``).

    Checks first that Ray is installed and that ``fn`` (called ``name`` in errors) is picklable.
    """
    check_workers(workers)
    if workers == 1:
        return fn
    require_ray()
    check_picklable(fn, name)
    return functools.partial(map_chunks, fn, workers=workers, address=address)


def _gather_one(ray: Any, running: dict[Any, int], results: list[Any],
                on_done: Callable[[int, Any], None] | None) -> None:
    """Waits for one running task, stores its result; a task's error is raised here."""
    (ready,), _ = ray.wait(list(running), num_returns=1)
    index = running.pop(ready)
    results[index] = ray.get(ready)
    if on_done is not None:
        on_done(index, results[index])


def _one_thread_call(fn: Callable[[Any], Any], item: Any) -> Any:
    torch.set_num_threads(1)
    return fn(item)
