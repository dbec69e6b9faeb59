"""What the model-based loop keeps after each iteration so that a killed run resumes exactly where it was.

After iteration k the loop writes ``state/iteration{k}/`` in its run folder: the
world model as it was then (the run folder's ``model/`` is overwritten by the next
fit, before that iteration ends), the learner's tensors and counters
(``learner.safetensors``, ``loop.json``), and every random stream the next
iteration draws from: the loop's exploration generator, and numpy's, Python's and
torch's global ones (SB3 samples its minibatches from numpy's and its actions from
torch's). Nothing is pickled. A state folder appears whole (written beside, then
renamed); the curve is written after it and only then are older states removed,
so the last row of ``curve.json`` always has its state.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from model_zoo.checkpoint import atomic_write, load_tensors, save_tensors
from model_zoo.training import rng_state, set_rng_state

__all__ = ["STATE_DIR", "load_state", "prefixed", "prune_states", "restore_random", "save_state", "state_folder",
           "whole_folder"]

STATE_DIR = "state"


def state_folder(run_path: Path, iteration: int) -> Path:
    return run_path / STATE_DIR / f"iteration{iteration}"


def prefixed(tensors: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The tensors whose names start with ``prefix``, named without it."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def save_state(run_path: Path, iteration: int, model: Any,
               learner_state: tuple[dict[str, Tensor], dict[str, Any]] | None, rng: np.random.Generator) -> Path:
    """Writes the state after ``iteration`` (see the module docstring).

    ``learner_state`` is None for a learner without ``state()``: the run cannot resume.
    """
    folder = state_folder(run_path, iteration)
    with whole_folder(folder) as staging:
        model.save(staging / "model")
        tensors, counters = learner_state if learner_state is not None else ({}, None)
        save_tensors(staging / "learner.safetensors", tensors)
        streams = {"exploration": rng.bit_generator.state, "global": rng_state()}
        atomic_write(staging / "loop.json", json.dumps({"iteration": iteration, "learner": counters,
                                                         "random": streams}) + "\n")
    return folder


@contextmanager
def whole_folder(folder: Path) -> Iterator[Path]:
    """Yields an empty staging folder beside ``folder``; on leaving, it replaces ``folder``, so readers find the
    old folder or the new one whole (or, in the moment between, none), never a part-written one."""
    staging = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    yield staging
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(staging, folder)


def prune_states(run_path: Path, keep: int) -> None:
    """Removes every state but the one after iteration ``keep`` (call it once the curve has that row)."""
    for older in (run_path / STATE_DIR).glob("iteration*"):
        if older != state_folder(run_path, keep):
            shutil.rmtree(older, ignore_errors=True)


def load_state(folder: Path) -> tuple[dict[str, Tensor], dict[str, Any] | None, Mapping[str, Any]]:
    """The learner's tensors and counters saved in ``folder`` (None: it had none), and the random streams
    (restore them last)."""
    tensors, _ = load_tensors(folder / "learner.safetensors")
    saved = json.loads((folder / "loop.json").read_text())
    return tensors, saved["learner"], saved["random"]


def restore_random(streams: Mapping[str, Any], rng: np.random.Generator) -> None:
    """Puts the saved random streams back: the loop's ``rng`` and the global ones (``training.rng_state``)."""
    rng.bit_generator.state = streams["exploration"]
    set_rng_state(streams["global"])
