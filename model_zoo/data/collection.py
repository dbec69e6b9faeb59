"""Collection: run a Gymnasium vector env and write every episode to a Minari dataset.

``collect`` steps a vector env with a random or given policy and stores each
episode with Minari's HDF5 storage (lossless, ``jpeg_encoding=False``) so that
``minari.load_dataset`` reads it back; a dataset appears only once complete.
``coverage="grid"`` sweeps a grid of causal contexts instead of sampling them,
each imposed with ``reset(options={"do": cell})``. ``workers=K`` steps K shards of the
sub-envs as Ray tasks (``model_zoo.data.shards``) and writes the same dataset as one.

The collector never looks at the env's class. What it needs it reads from the
``metadata`` of the env's entry point (as ``gym.make`` reads ``render_modes``):

- ``"causal_variables"`` and ``"causal_codes"`` (``"module:function"``, info ->
  (N, C) float32 codes or None): the causal codes stored as ``infos/causal``;
- ``"coverage_cells"`` (``"module:function"``, split -> list of ``do`` mappings):
  the grid that ``coverage="grid"`` sweeps;
- ``"splits"``: the values the env's ``split=`` argument takes;
- ``"vector_matches_single"``: the spec's native ``vector_entry_point`` gives
  env i of ``reset(seed=s)`` exactly as a single env seeded s+i; without it the
  collector runs Gymnasium's sync vector env.

Each episode also keeps ``options/do`` (the interventions imposed at reset) and
``env_index``, ``env_seed``, ``env_episode`` (``reset(seed=env_seed)`` followed by
``env_episode`` plain resets replays its start); the dataset keeps ``coverage``,
``split``, ``collection_seed``, ``episodes_per_cell`` and ``causal_variables``.

A dataset is written into a hidden staging folder (``.collect-*``, which Minari skips)
with its ``checksums.json``, then renamed into place. The writer holds an exclusive
``flock`` on the staging folder's ``.lock`` file; the kernel drops it when the process
dies, however it dies, so each collect removes the staging folders whose lock it can
take (their writer is dead) and never one a live process holds.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import minari
import numpy as np
from gymnasium.envs.registration import EnvSpec, VectorizeMode
from minari.data_collector.episode_buffer import EpisodeBuffer
from minari.dataset.minari_dataset import parse_dataset_id
from minari.namespace import create_namespace, list_local_namespaces
from minari.storage.datasets_root_dir import get_dataset_path
from tqdm.auto import tqdm

from model_zoo.data.episodes import CAUSAL_INFO_KEY, check_positive_int, datasets_root, write_checksums
from model_zoo.data.shards import CausalCodes, Collected, Policy, ShardJob, run_shard
from model_zoo.metadata import entry_point_metadata, resolve_function
from model_zoo.parallel import check_picklable, map_tasks, require_ray

try:
    import fcntl
except ImportError:  # not on POSIX: no staging folder can be told dead, so none is removed
    fcntl = None

__all__ = ["COVERAGES", "Policy", "collect", "grid_cells", "remove_stale_staging"]

COVERAGES = ("natural", "grid")
_VECTOR_ONLY_KWARGS = ("vectorization_mode", "vector_kwargs", "wrappers")  # gym.make_vec's, not the env's
_STAGING_PREFIX = ".collect-"
_UNLOCKED_GRACE_S = 3600.0  # a staging folder without a lock file (an older version's) is stale after this


def collect(
    env_id: str = "CampusNav-v0",
    *,
    num_episodes: int | None = None,
    num_envs: int = 8,
    policy: Policy | None = None,
    coverage: str = "natural",
    episodes_per_cell: int = 1,
    split: str = "all",
    seed: int = 0,
    dataset_id: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    max_episode_steps: int | None = None,
    progress: bool = True,
    data_path: str | os.PathLike | None = None,
    workers: int = 1,
    address: str | None = None,
) -> minari.MinariDataset:
    """Collects episodes with a vector env and writes them as a Minari dataset.

    Args:
        env_id: a Gymnasium id; its native vector env runs when its metadata vouches for
            it (``vector_matches_single``), Gymnasium's sync vector env otherwise, unless
            ``env_kwargs`` names a ``vectorization_mode``. Any autoreset mode is handled.
        num_episodes: episodes to collect with ``coverage="natural"``; with ``"grid"`` it
            is (number of cells) x ``episodes_per_cell`` and may be left out.
        num_envs: envs stepped together (fewer when fewer episodes are wanted at a time).
        policy: ``policy(batched obs) -> batched actions``; None samples the action
            space, seeded with ``seed``.
        coverage: ``"natural"`` (contexts as the env draws them) or ``"grid"`` (every cell
            of the env's ``coverage_cells(split)``, ``episodes_per_cell`` episodes each,
            imposed with reset-time ``do``; the native vector env only).
        episodes_per_cell: episodes per grid cell.
        split: one of the env's ``splits`` (CampusNav-v0: ``"all"``, ``"train"``,
            ``"heldout"``); ``"all"`` for an env without splits.
        seed: sub-env ``i`` of a ``reset(seed=s)`` is seeded ``s + i``; natural coverage
            resets once with ``seed``, grid cell ``c`` with ``seed + c * envs``.
        dataset_id: ``namespace/name-vN`` (default e.g. ``"campusnav/random-natural-v0"``);
            an existing id raises ``FileExistsError`` before anything is collected.
        env_kwargs: keyword arguments of ``gym.make_vec`` (env arguments such as
            ``obs_mode``, or ``vectorization_mode`` / ``vector_kwargs``).
        max_episode_steps: truncation limit (the env's own when None).
        progress: show a tqdm bar over episodes.
        data_path: the Minari datasets folder (default: ``$MINARI_DATASETS_PATH``, else
            ``~/.minari/datasets``).
        workers: the sub-envs are split into this many shards, each stepped by a Ray task
            (``model_zoo.parallel``); the dataset is the same whatever their number. With
            ``workers > 1`` a policy must be picklable and act on each row of the batch alone.
        address: a Ray cluster to run the shards on (default: a local Ray with ``workers`` CPUs).

    Returns:
        The written ``minari.MinariDataset``.

    """
    _check_arguments(coverage, num_envs, max_episode_steps, env_kwargs, policy)
    traits = _env_traits(env_id)
    cells, per_job = _jobs(env_id, traits, coverage, split, num_episodes, episodes_per_cell)
    kwargs = _make_vec_kwargs(env_id, traits, coverage, split, env_kwargs, max_episode_steps)
    _check_workers(env_id, traits, kwargs, policy, workers)
    dataset_id = dataset_id or _default_dataset_id(env_id, policy, coverage, split)
    _check_dataset_id_is_free(dataset_id, data_path)
    with datasets_root(data_path):
        remove_stale_staging(get_dataset_path())
    records, spaces = _record(env_id, kwargs, traits, cells, per_job, num_envs, policy, seed, progress,
                              workers, address)

    metadata: dict[str, Any] = {"coverage": coverage, "split": split, "collection_seed": int(seed)}
    if coverage == "grid":
        metadata["episodes_per_cell"] = int(episodes_per_cell)
    if records[0].arrays["causal"] is not None and traits.causal_variables:
        metadata["causal_variables"] = list(traits.causal_variables)
    return _write(
        dataset_id, data_path, records, metadata,
        env=_single_env_spec(env_id, kwargs, max_episode_steps),
        algorithm_name="random" if policy is None else getattr(policy, "__name__", type(policy).__name__),
        description=f"{env_id} episodes collected by model_zoo.data.collect (coverage={coverage!r}, "
        f"split={split!r}, seed={seed})",
        observation_space=spaces[0],
        action_space=spaces[1],
    )


def _record(env_id: str, make_kwargs: dict[str, Any], traits: _EnvTraits, cells: list[dict[str, Any] | None],
            per_job: int, num_envs: int, policy: Policy | None, seed: int, progress: bool, workers: int,
            address: str | None) -> tuple[list[Collected], tuple[gym.Space, gym.Space]]:
    """Runs ``per_job`` episodes under each cell's reset-time ``do``; returns them and the single env's spaces.

    The sub-envs go to ``workers`` shards (``model_zoo.data.shards``), all cells in one round
    when there is one shard, else one round per cell: the next cell's random actions
    continue the whole batch's action space from where the round's longest shard left it.
    Episodes are ordered as one vector env yields them: by cell, step, then sub-env.
    """
    n = min(num_envs, per_job)
    quotas = np.array([per_job // n + (i < per_job % n) for i in range(n)])
    bounds = np.linspace(0, n, min(workers, n) + 1).round().astype(int).tolist()
    shards = list(zip(bounds[:-1], bounds[1:], strict=True))
    indexed = list(enumerate(cells))
    rounds = [indexed] if len(shards) == 1 else [[item] for item in indexed]
    spec, space, records = gym.spec(env_id), None, []
    with tqdm(total=len(cells) * per_job, desc=f"collect {env_id}", unit="episode", disable=not progress) as bar:
        for round_cells in rounds:
            jobs = [ShardJob(spec, make_kwargs, n, start, stop, quotas[start:stop], round_cells, seed, policy, space,
                             traits.causal_codes or _no_codes, bar.update if len(shards) == 1 else None)
                    for start, stop in shards]
            results = map_tasks(run_shard, jobs, workers=len(jobs), address=address,
                                on_done=None if len(jobs) == 1 else lambda _, r: bar.update(len(r.episodes)))
            episodes = sorted((e for r in results for e in r.episodes), key=lambda e: (e[0], e[1], e[2].env_index))
            records += [episode for _, _, episode in episodes]
            space = max(results, key=lambda r: r.steps).action_space  # the whole batch's after the round's steps
    return records, results[0].spaces


# --- what the env declares, and the arguments ------------------------------------------


def grid_cells(split: str = "all", env_id: str = "CampusNav-v0") -> list[dict[str, Any]]:
    """The grid of contexts that ``coverage="grid"`` sweeps for ``env_id``, as reset-time ``do`` mappings.

    Read from the env's ``metadata["coverage_cells"]``; ``split`` is one of its ``splits``.

    >>> import campus_env
    >>> len(grid_cells("all")), len(grid_cells("train")), len(grid_cells("heldout"))
    (112, 84, 28)
    """
    traits = _env_traits(env_id)
    if traits.coverage_cells is None:
        raise ValueError(f"{env_id!r} declares no grid of contexts (metadata['coverage_cells'])")
    return list(traits.coverage_cells(split))



class _EnvTraits(NamedTuple):
    """What an env declares for collection in its ``metadata`` (see the module docstring)."""

    causal_variables: tuple[str, ...] | None
    causal_codes: CausalCodes | None
    coverage_cells: Callable[[str], list[dict[str, Any]]] | None
    splits: tuple[str, ...] | None
    vector_matches_single: bool


def _env_traits(env_id: str) -> _EnvTraits:
    """Reads the metadata of ``env_id``'s entry point without building an env."""
    metadata = entry_point_metadata(env_id)
    variables, splits = metadata.get("causal_variables"), metadata.get("splits")
    return _EnvTraits(
        causal_variables=None if variables is None else tuple(variables),
        causal_codes=resolve_function(metadata.get("causal_codes")),
        coverage_cells=resolve_function(metadata.get("coverage_cells")),
        splits=None if splits is None else tuple(splits),
        vector_matches_single=bool(metadata.get("vector_matches_single", False)),
    )


def _no_codes(info: Any) -> None:
    return None


def _check_arguments(coverage: str, num_envs: int, max_episode_steps: int | None,
                     env_kwargs: Mapping[str, Any] | None, policy: Policy | None) -> None:
    if coverage not in COVERAGES:
        raise ValueError(f"coverage must be one of {', '.join(map(repr, COVERAGES))}, got {coverage!r}")
    check_positive_int("num_envs", num_envs)
    if max_episode_steps is not None:
        check_positive_int("max_episode_steps", max_episode_steps)
    for key in ("num_envs", "split", "max_episode_steps"):
        if key in (env_kwargs or {}):
            raise ValueError(f"pass {key}=... to collect() itself, not in env_kwargs")
    if policy is not None and not callable(policy):
        raise TypeError(f"policy must be callable as policy(obs) -> actions, got {type(policy).__name__}")


def _check_workers(env_id: str, traits: _EnvTraits, make_kwargs: Mapping[str, Any], policy: Policy | None,
                   workers: int) -> None:
    """Shards need Ray, a picklable policy and a vector env whose env ``i`` of ``reset(seed=s)`` is seeded ``s + i``."""
    check_positive_int("workers", workers)
    if workers == 1:
        return
    require_ray()
    if policy is not None:
        check_picklable(policy, "policy")
    mode = make_kwargs.get("vectorization_mode")
    if (mode is None or VectorizeMode(mode) is VectorizeMode.VECTOR_ENTRY_POINT) and not traits.vector_matches_single:
        raise ValueError(f"workers > 1 shards the sub-envs: {env_id!r}'s own vector env does not vouch that env i "
                         "matches a single env seeded seed + i (metadata['vector_matches_single']); leave "
                         "vectorization_mode out of env_kwargs")


def _jobs(env_id: str, traits: _EnvTraits, coverage: str, split: str, num_episodes: int | None,
          episodes_per_cell: int) -> tuple[list[dict[str, Any] | None], int]:
    """The reset-time interventions to sweep (``[None]`` for natural coverage) and the episodes of each."""
    if traits.splits is None and split != "all":
        raise ValueError(f"split={split!r} selects an env's contexts; {env_id!r} has none (use split='all')")
    if traits.splits is not None and split not in traits.splits:
        raise ValueError(f"split must be one of {', '.join(map(repr, traits.splits))}, got {split!r}")
    if coverage == "natural":
        if num_episodes is None:
            raise ValueError("coverage='natural' needs num_episodes")
        check_positive_int("num_episodes", num_episodes)
        return [None], num_episodes
    if traits.coverage_cells is None:
        raise ValueError(
            f"coverage='grid' sweeps an env's grid of causal contexts (metadata['coverage_cells']); {env_id!r} "
            "has no causal variables (use coverage='natural')"
        )
    check_positive_int("episodes_per_cell", episodes_per_cell)
    cells: list[dict[str, Any] | None] = list(traits.coverage_cells(split))
    total = len(cells) * episodes_per_cell
    if num_episodes is not None and num_episodes != total:
        raise ValueError(
            f"coverage='grid' with split={split!r} collects {len(cells)} cells x {episodes_per_cell} episodes = "
            f"{total} episodes; got num_episodes={num_episodes} (leave it out)"
        )
    return cells, episodes_per_cell


def _make_vec_kwargs(env_id: str, traits: _EnvTraits, coverage: str, split: str,
                     env_kwargs: Mapping[str, Any] | None, max_episode_steps: int | None) -> dict[str, Any]:
    """The keyword arguments of ``gym.make_vec``: the vectorization, ``split`` and the step limit."""
    kwargs = dict(env_kwargs or {})
    if not traits.vector_matches_single:
        kwargs.setdefault("vectorization_mode", VectorizeMode.SYNC.value)
    if coverage == "grid":
        mode = kwargs.get("vectorization_mode")
        native = mode is None or VectorizeMode(mode) is VectorizeMode.VECTOR_ENTRY_POINT
        if not native or gym.spec(env_id).vector_entry_point is None:
            raise ValueError(
                f"coverage='grid' needs {env_id!r}'s native vector env (its reset-time do() lasts across "
                "autoresets); leave vectorization_mode out of env_kwargs"
            )
    elif traits.splits is not None:
        kwargs["split"] = split
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    return kwargs


def _check_dataset_id_is_free(dataset_id: str, data_path: str | os.PathLike | None) -> None:
    parse_dataset_id(dataset_id)  # raises ValueError on a malformed id
    with datasets_root(data_path):
        path = get_dataset_path(dataset_id)
        if path.exists():
            raise FileExistsError(f"a Minari dataset {dataset_id!r} already exists at {path}; choose another id")


def _default_dataset_id(env_id: str, policy: Policy | None, coverage: str, split: str) -> str:
    namespace = gym.spec(env_id).name.lower()
    name = "-".join(["random" if policy is None else "policy", coverage] + ([split] if split != "all" else []))
    return f"{namespace}/{name}-v0"


# --- writing -------------------------------------------------------------------------


def _write(
    dataset_id: str, data_path: str | os.PathLike | None, records: list[Collected], metadata: dict[str, Any],
    **create_kwargs: Any,
) -> minari.MinariDataset:
    """Writes the dataset atomically: into a hidden folder (Minari skips those), then moved into place."""
    with datasets_root(data_path):
        root = get_dataset_path()
    buffers = [
        EpisodeBuffer(
            id=k,
            seed=r.env_seed if r.env_episode == 0 else None,
            options={"do": dict(r.cell)} if r.cell else None,
            observations=r.arrays["obs"],
            actions=r.arrays["action"],
            rewards=r.arrays["reward"],
            terminations=r.arrays["terminated"],
            truncations=r.arrays["truncated"],
            infos={CAUSAL_INFO_KEY: r.arrays["causal"]} if r.arrays["causal"] is not None else None,
        )
        for k, r in enumerate(records)
    ]
    with _staging(root) as staging:
        with datasets_root(staging), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"minari\.")  # its nags about metadata
            dataset = minari.create_dataset_from_buffers(
                dataset_id, buffers, author="model_zoo", jpeg_encoding=False, **create_kwargs
            )
            dataset.storage.update_metadata(metadata)
            dataset.storage.update_episode_metadata(
                [{"env_index": r.env_index, "env_seed": r.env_seed, "env_episode": r.env_episode} for r in records],
                range(len(records)),
            )
        write_checksums(staging / dataset_id)
        target = root / dataset_id
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging / dataset_id, target)  # fails rather than merge into a dataset written meanwhile
    with datasets_root(root):
        namespace = parse_dataset_id(dataset_id)[0]
        if namespace is not None and namespace not in list_local_namespaces():
            create_namespace(namespace)
        return minari.load_dataset(dataset_id)


@contextmanager
def _staging(root: Path) -> Iterator[Path]:
    """A fresh hidden folder in ``root`` whose ``.lock`` file this process holds locked; removed afterwards."""
    root.mkdir(parents=True, exist_ok=True)
    fd, lock = tempfile.mkstemp(prefix=_STAGING_PREFIX, suffix=".lock", dir=root)  # the lock before the folder
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        staging = Path(lock[: -len(".lock")])
        staging.mkdir()
        try:
            yield staging
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        Path(lock).unlink(missing_ok=True)
        os.close(fd)


def remove_stale_staging(root: str | os.PathLike) -> list[Path]:
    """Removes the staging folders in ``root`` that a killed collect left; returns them.

    A folder goes only when its ``.lock`` file can be locked (its writer is dead: the
    kernel releases a dead process's locks), or, for a folder without a lock file (from
    a version that wrote none), when it was last changed over an hour ago.
    """
    root = Path(root)
    removed: list[Path] = []
    if fcntl is None or not root.is_dir():
        return removed
    for lock in root.glob(f"{_STAGING_PREFIX}*.lock"):
        try:
            fd = os.open(lock, os.O_RDWR)
        except OSError:  # removed meanwhile by its writer or another collect
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: a live collect is writing there
            os.close(fd)
            continue
        try:
            folder = lock.with_suffix("")
            shutil.rmtree(folder, ignore_errors=True)
            lock.unlink(missing_ok=True)
            removed.append(folder)
        finally:
            os.close(fd)
    for folder in root.glob(f"{_STAGING_PREFIX}*"):
        if folder.is_dir() and not Path(f"{folder}.lock").exists():
            try:
                age = time.time() - folder.stat().st_mtime
            except OSError:
                continue
            if age > _UNLOCKED_GRACE_S:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    return removed


def _single_env_spec(env_id: str, kwargs: Mapping[str, Any], max_episode_steps: int | None) -> EnvSpec:
    """The spec of one env of the collection, for Minari's ``recover_environment``."""
    spec = copy.deepcopy(gym.spec(env_id))
    env_kwargs = {k: v for k, v in kwargs.items() if k not in _VECTOR_ONLY_KWARGS and k != "max_episode_steps"}
    spec.kwargs = {**spec.kwargs, **env_kwargs}
    if max_episode_steps is not None:
        spec.max_episode_steps = max_episode_steps
    return spec
