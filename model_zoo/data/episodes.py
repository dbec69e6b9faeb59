"""Episodes in memory: read a Minari dataset into ``Episode`` records and split them.

A dataset written by ``model_zoo.data.collect`` keeps, per episode, the
observations (T+1, ...), actions (T, ...), rewards and flags (T,), the causal
codes ``infos/causal`` (T+1, C) when the env reports them, the reset-time
interventions ``options/do`` and where the episode came from (``env_index``,
``env_seed``, ``env_episode``). ``load_episodes`` gives them back as numpy
arrays; ``split_episodes`` draws a held-out part at random.

``collect`` also writes ``checksums.json`` beside the dataset's ``data/`` folder: the
SHA-256 of every file in it, recorded before the dataset is moved into place.
``load_dataset`` and ``load_episodes`` check them and raise :class:`DatasetError`
naming a changed, damaged or missing file; a dataset without ``checksums.json``
(written by Minari itself, or elsewhere) is read unchecked.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import minari
import numpy as np

from model_zoo.checkpoint import sha256_of

__all__ = [
    "CAUSAL_INFO_KEY",
    "CHECKSUMS_FILE",
    "DatasetError",
    "Episode",
    "as_episodes",
    "check_episode",
    "check_positive_int",
    "datasets_root",
    "load_dataset",
    "load_episodes",
    "split_episodes",
    "verify_checksums",
    "write_checksums",
]

CAUSAL_INFO_KEY = "causal"  # the info key (and Minari ``infos`` group) of the causal codes
CHECKSUMS_FILE = "checksums.json"  # beside a dataset's data/ folder
_CHECKSUMS_FORMAT = "model_zoo.dataset-checksums"


class DatasetError(ValueError):
    """A dataset whose files are not the ones written: changed, damaged or missing since ``collect``."""


@dataclass
class Episode:
    """One episode in memory, as numpy arrays: T steps, T+1 observations.

    ``obs`` is an array (T+1, ...) or a dict of them for Dict spaces; ``action``
    (T, ...), ``reward`` (T,), ``terminated`` and ``truncated`` (T,) bool;
    ``causal`` (T+1, C) float32 codes aligned with ``obs`` (the columns are the
    dataset's ``causal_variables``), or None for an env without causal variables;
    ``do`` the interventions imposed at reset (empty when none); ``metadata`` what
    the dataset keeps about the episode (``env_index``, ``env_seed``, ``env_episode``).
    """

    obs: np.ndarray | dict[str, np.ndarray]
    action: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    causal: np.ndarray | None = None
    do: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        """The number of steps T."""
        return len(self.reward)


@contextmanager
def datasets_root(data_path: str | os.PathLike | None):
    """Points Minari (which reads ``$MINARI_DATASETS_PATH`` on every call) at ``data_path`` for a while."""
    if data_path is None:
        yield
        return
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = os.fspath(Path(data_path).absolute())
    try:
        yield
    finally:
        if old is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def check_positive_int(name: str, value: Any) -> None:
    """Raises ``ValueError`` naming ``name`` unless ``value`` is an integer >= 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def load_dataset(dataset_id: str, *, data_path: str | os.PathLike | None = None) -> minari.MinariDataset:
    """``minari.load_dataset(dataset_id)`` looked up in ``data_path`` (default: Minari's folder).

    Raises :class:`DatasetError` if a file differs from the checksum ``collect`` recorded.
    """
    with datasets_root(data_path):
        dataset = minari.load_dataset(os.fspath(dataset_id))
    verify_checksums(_folder(dataset))
    return dataset


def load_episodes(
    dataset: minari.MinariDataset | str, *, data_path: str | os.PathLike | None = None
) -> list[Episode]:
    """Every episode of a Minari dataset (or a dataset id) as an in-memory ``Episode``.

    ``data_path`` is the datasets folder an id is looked up in (default: Minari's). The
    dataset's files are checked against its checksums first (:class:`DatasetError`).
    """
    if isinstance(dataset, (str, os.PathLike)):
        dataset = load_dataset(dataset, data_path=data_path)
    elif isinstance(dataset, minari.MinariDataset):
        verify_checksums(_folder(dataset))
    else:
        raise TypeError(f"expected a minari.MinariDataset or a dataset id, got {type(dataset).__name__}")
    keys = list(dataset.observation_space.spaces) if isinstance(dataset.observation_space, gym.spaces.Dict) else None
    metadata = list(dataset.storage.get_episode_metadata(dataset.episode_indices))
    episodes = []
    for data, meta in zip(dataset.iterate_episodes(), metadata, strict=True):
        obs = {key: np.asarray(data.observations[key]) for key in keys} if keys else np.asarray(data.observations)
        codes = (data.infos or {}).get(CAUSAL_INFO_KEY)
        episode = Episode(
            obs=obs,
            action=np.asarray(data.actions),
            reward=np.asarray(data.rewards),
            terminated=np.asarray(data.terminations, dtype=bool),
            truncated=np.asarray(data.truncations, dtype=bool),
            causal=None if codes is None else np.asarray(codes, dtype=np.float32),
            do={k: _plain(v) for k, v in (meta.get("options") or {}).get("do", {}).items()},
            id=int(data.id),
            metadata={k: _plain(v) for k, v in meta.items() if k not in ("id", "options", "total_steps")},
        )
        check_episode(episode)
        episodes.append(episode)
    return episodes


# --- checksums -------------------------------------------------------------------------


def _folder(dataset: minari.MinariDataset) -> Path:
    """The dataset's own folder (the one that holds ``data/``)."""
    return Path(dataset.spec.data_path).parent


def write_checksums(folder: str | os.PathLike) -> Path:
    """Records the SHA-256 of every file under ``folder/data`` in ``folder/checksums.json``; returns its path."""
    folder = Path(folder)
    files = sorted(p for p in (folder / "data").rglob("*") if p.is_file())
    sums = {p.relative_to(folder).as_posix(): sha256_of(p) for p in files}
    path = folder / CHECKSUMS_FILE
    path.write_text(json.dumps({"format": _CHECKSUMS_FORMAT, "version": 1, "files": sums}, indent=2) + "\n")
    return path


def verify_checksums(folder: str | os.PathLike) -> None:
    """Raises :class:`DatasetError` unless every file ``folder/checksums.json`` lists has its recorded SHA-256.

    A folder without ``checksums.json`` passes: there is nothing to check against.
    """
    folder = Path(folder)
    path = folder / CHECKSUMS_FILE
    if not path.exists():
        return
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        files = record["files"] if record.get("format") == _CHECKSUMS_FORMAT else None
        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            raise ValueError("no 'files' table of name -> SHA-256")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise DatasetError(f"{path}: unreadable checksums ({error})") from None
    for name, expected in files.items():
        file = folder / name
        if ".." in Path(name).parts or not file.is_file():
            raise DatasetError(f"{file}: file is missing (the dataset is incomplete or was changed)")
        if sha256_of(file) != expected:
            raise DatasetError(
                f"{file}: content does not match the SHA-256 recorded in {CHECKSUMS_FILE} when the dataset "
                "was written: the file was changed or damaged since"
            )


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def check_episode(episode: Episode) -> None:
    """Raises ``ValueError`` unless the episode has T >= 1 steps and T+1 observations (and causal rows)."""
    steps = len(episode)
    parts = episode.obs if isinstance(episode.obs, dict) else {"obs": episode.obs}
    lengths = {f"obs[{k!r}]" if isinstance(episode.obs, dict) else k: len(v) for k, v in parts.items()}
    if episode.causal is not None:
        lengths["causal"] = len(episode.causal)
    wrong = {k: v for k, v in lengths.items() if v != steps + 1}
    for name in ("action", "terminated", "truncated"):
        if len(getattr(episode, name)) != steps:
            wrong[name] = len(getattr(episode, name))
    if steps < 1 or wrong:
        raise ValueError(
            f"episode {episode.id}: an episode of T >= 1 steps needs T+1 observations and causal rows and "
            f"T actions, rewards and flags; it has T={steps} and {wrong}"
        )


def split_episodes(
    episodes: Sequence[Episode] | minari.MinariDataset | str, holdout_fraction: float, seed: int = 0
) -> tuple[list[Episode], list[Episode]]:
    """Splits episodes at random into (train, held-out), each keeping the original order.

    The held-out part has ``round(holdout_fraction * n)`` episodes (at least one
    when the fraction is positive); the train part must keep at least one.

    >>> train, heldout = split_episodes([Episode(np.zeros((2, 1)), np.zeros(1), np.zeros(1), np.zeros(1, bool),
    ...                                  np.zeros(1, bool), id=i) for i in range(10)], 0.2, seed=0)
    >>> len(train), len(heldout)
    (8, 2)
    """
    episodes = as_episodes(episodes)
    fraction = float(holdout_fraction)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction!r}")
    n = len(episodes)
    count = round(fraction * n)
    if fraction > 0:
        count = max(count, 1)
    if count >= n:
        raise ValueError(f"holdout_fraction={holdout_fraction} of {n} episodes leaves no training episode")
    held = set(np.random.default_rng(seed).permutation(n)[:count].tolist())
    return [e for i, e in enumerate(episodes) if i not in held], [e for i, e in enumerate(episodes) if i in held]


def as_episodes(source: Sequence[Episode] | minari.MinariDataset | str | os.PathLike) -> list[Episode]:
    """``Episode`` records from a list of them, a Minari dataset or a dataset id; raises on anything else."""
    if isinstance(source, (minari.MinariDataset, str, os.PathLike)):
        return load_episodes(source)
    episodes = list(source)
    if not episodes:
        raise ValueError("no episodes given")
    for episode in episodes:
        if not isinstance(episode, Episode):
            raise TypeError(f"expected Episode records (see load_episodes), got {type(episode).__name__}")
    return episodes
