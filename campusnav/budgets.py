"""Argument groups the examples and benchmarks share: data, training and controller budgets, and a run.

A script's ``Args`` inherits the groups it needs; tyro reads inherited fields and
their docstrings, so the flags stay flat (``--episodes``, ``--batch-size``,
``--seed``, ...). A script whose default differs redeclares the field in one line
(the docstring is inherited). All groups are frozen: a budget is changed with
``dataclasses.replace``, e.g. for ``--tiny`` or ``--quick``.

:func:`config_overrides` reads a ``--config "field=value,..."`` flag, and
:func:`collect_split` is the first step most of them take: collect episodes into a
fresh Minari dataset, read them back and hold some out.

>>> import dataclasses, tyro
>>> @dataclasses.dataclass(frozen=True)
... class Args(ExampleRun, Training, Collection):
...     episodes: int = 8
...     out: str = "runs/doctest"
>>> args = tyro.cli(Args, args=["--batch-size", "4"])
>>> args.episodes, args.batch_size, args.seq_len, args.fit_kwargs()
(8, 4, 32, {'batch_size': 4, 'seq_len': 32, 'lr': 0.001})
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from campusnav.overrides import parse_overrides
from model_zoo.agents.transfer import CMAES
from model_zoo.data import Episode, collect, load_episodes, split_episodes

__all__ = [
    "BenchmarkRun",
    "Collection",
    "ControllerTraining",
    "ExampleRun",
    "GridCollection",
    "SequenceBatches",
    "Training",
    "collect_split",
    "config_overrides",
]


@dataclass(frozen=True)
class Collection:
    """How much experience is collected."""

    episodes: int = 64
    """episodes collected (a share of them held out for evaluation)"""
    max_episode_steps: int = 100
    """episode length cap while collecting"""


@dataclass(frozen=True)
class GridCollection:
    """Experience collected over every cell of the env's causal grid (``coverage="grid"``)."""

    episodes_per_cell: int = 1
    """episodes per cell of the causal grid (84 cells on CampusNav-v0's train split)"""
    max_episode_steps: int = 100
    """episode length cap while collecting"""


@dataclass(frozen=True)
class SequenceBatches:
    """The windows a world model trains on."""

    batch_size: int = 16
    """sequences per batch"""
    seq_len: int = 32
    """steps per sequence"""


@dataclass(frozen=True)
class Training(SequenceBatches):
    """The windows and the optimizer of a world model's training."""

    lr: float = 1e-3
    """Adam learning rate"""

    def fit_kwargs(self) -> dict[str, Any]:
        """``batch_size``, ``seq_len`` and ``lr`` as keyword arguments of ``model_zoo.fit``."""
        return {"batch_size": self.batch_size, "seq_len": self.seq_len, "lr": self.lr}


@dataclass(frozen=True)
class ControllerTraining:
    """The CMA-ES budget of a controller, the same in a dream and in reality."""

    generations: int = 10
    """CMA-ES generations (the same in the dream and in reality)"""
    popsize: int = 16
    """CMA-ES population size"""
    episodes_per_member: int = 4
    """episodes that score each member of a population"""
    eval_episodes: int = 64
    """seeded real episodes that score each controller and the reference policies"""

    def cmaes(self, seed: int, **options: Any) -> CMAES:
        """The ``model_zoo.agents.transfer.CMAES`` of this budget (``sigma0``, ``progress``: see there)."""
        return CMAES(self.generations, self.popsize, self.episodes_per_member, seed=seed, **options)


@dataclass(frozen=True)
class ExampleRun:
    """Seed, output folder and the tests' tiny budget of an example."""

    seed: int = 0
    """seed of everything: collection, weights, sampling and evaluation"""
    out: str = "runs"
    """output folder"""
    tiny: bool = False
    """a tiny budget for tests (seconds): every stage runs, none learns much"""
    threads: int | None = None
    """torch threads per process (default: one, the fastest for the zoo's small networks)"""


@dataclass(frozen=True)
class BenchmarkRun:
    """Seed, an extra result file and the smoke-run switch of a benchmark."""

    seed: int = 0
    """seed of collection, sampling and weights"""
    json: str | None = None
    """also write the results to this file"""
    quick: bool = False
    """a smoke run: tiny data and budgets"""
    threads: int | None = None
    """torch threads per process (default: one, the fastest for the zoo's small networks)"""


def collect_split(
    env_id: str,
    budget: Collection,
    heldout: float,
    *,
    seed: int,
    data_path: str | os.PathLike,
    dataset_id: str,
    **collect_kwargs: Any,
) -> tuple[list[Episode], list[Episode]]:
    """Collects ``budget.episodes`` episodes into a fresh dataset, reads them back and holds out a share.

    An earlier dataset of the same id under ``data_path`` (a rerun's) is replaced.
    ``collect_kwargs`` go to ``model_zoo.data.collect`` (``policy``, ``env_kwargs``, ...).
    Returns ``(train, heldout)`` episode lists, as ``model_zoo.data.split_episodes``.
    """
    shutil.rmtree(Path(data_path) / dataset_id, ignore_errors=True)  # Minari's layout: <root>/<namespace>/<name>
    dataset = collect(env_id, num_episodes=budget.episodes, max_episode_steps=budget.max_episode_steps, seed=seed,
                      data_path=data_path, dataset_id=dataset_id, **collect_kwargs)
    return split_episodes(load_episodes(dataset), heldout, seed=seed)


def config_overrides(text: str) -> dict[str, Any]:
    """A ``--config "field=value,field=value"`` flag as a dict of model config overrides; a malformed one exits.

    Values are read as Python literals, else kept as strings (``campusnav.overrides.parse_overrides``).
    """
    try:
        return parse_overrides(text)
    except ValueError as err:
        raise SystemExit(f"--config: {err}") from None
