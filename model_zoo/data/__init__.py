"""Datasets of experience: collect episodes into Minari, read them back, cut them into windows.

``collect`` runs a Gymnasium vector env (the native one for CampusNav-v0,
Gymnasium's sync vector env for a foreign env such as CartPole-v1) with a random
or given policy and writes every episode to a Minari dataset that
``minari.load_dataset`` reads back. ``coverage="grid"`` sweeps the causal grid of
CampusNav-v0 instead of sampling contexts: every day x weather x gameday x
semester cell that the split allows, imposed with ``reset(options={"do": cell})``.

Storage layout (Minari 0.5 HDF5 storage, written lossless: ``jpeg_encoding=False``)
    observations       (T+1, ...) per episode, a group of arrays for Dict spaces
    actions            (T, ...)
    rewards            (T,) float64, terminations / truncations (T,) bool
    infos/causal       (T+1, 7) float32, aligned with observations (CampusNav only):
                       the columns follow ``campus_env.causal.VARIABLES``: day index
                       (Mon=0), hour in hours, semester index, weather index,
                       gameday 0/1, road_closure 0/1, crowd 0..1
    episode metadata   ``options/do/<variable>``: the interventions imposed at reset
                       (user-facing values, e.g. ``options/do/weather = "rainy"``);
                       ``env_index``, ``env_seed`` and ``env_episode``: the episode is
                       the ``env_episode``-th one of sub-env ``env_index``, which was
                       reset with seed ``env_seed`` (so ``reset(seed=env_seed)``
                       followed by ``env_episode`` plain resets replays its start)
    dataset metadata   ``coverage``, ``split``, ``collection_seed``, ``episodes_per_cell``
                       and ``causal_variables`` (the column names)

``load_episodes`` reads a dataset into a list of ``Episode`` records;
``SequenceSampler`` draws ``(B, T)`` windows of them as ``model_zoo.base.Batch``
in the Dreamer convention of ``model_zoo.base``; ``all_windows`` and ``iterate``
give every window once, in order, for evaluation.

Windows and episode boundaries: the episodes are laid end to end on one
timeline, an episode of T steps as T+1 aligned steps (step 0: ``is_first`` True,
action zero, reward 0, not terminated; step t > 0: ``action[t-1]``,
``reward[t-1]``, ``terminations[t-1]``). A window may start at any step (so
``is_first[:, 0]`` is False when it starts mid-episode) and a window that runs
past an episode's last step goes on with the first step of the next episode,
where ``is_first`` is True; the timeline wraps from the last episode to the
first. Nothing is padded, and no two episodes ever meet without ``is_first``.

>>> import tempfile, campus_env
>>> with tempfile.TemporaryDirectory() as root:
...     dataset = collect("CampusNav-v0", num_episodes=2, num_envs=2, max_episode_steps=5,
...                       env_kwargs={"obs_mode": "state"}, progress=False, data_path=root)
...     episodes = load_episodes(dataset)
...     batch = SequenceSampler(episodes, seq_len=4, batch_size=3).sample()
>>> len(episodes), episodes[0].causal.shape, batch.obs.shape, batch.causal.shape
(2, (6, 7), torch.Size([3, 4, 72]), torch.Size([3, 4, 7]))
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import minari
import numpy as np
import torch
from gymnasium.envs.registration import EnvSpec, load_env_creator
from gymnasium.vector import AutoresetMode
from minari.data_collector.episode_buffer import EpisodeBuffer
from minari.dataset.minari_dataset import parse_dataset_id
from minari.namespace import create_namespace, list_local_namespaces
from minari.storage.datasets_root_dir import get_dataset_path
from tqdm.auto import tqdm

from campus_env import causal
from campus_env.env import CampusNavEnv
from campus_env.vector import CampusNavVectorEnv
from model_zoo.base import Batch

__all__ = [
    "CAUSAL_VARIABLES",
    "COVERAGES",
    "Episode",
    "SequenceSampler",
    "all_windows",
    "collect",
    "grid_cells",
    "iterate",
    "load_dataset",
    "load_episodes",
    "split_episodes",
]

CAUSAL_VARIABLES: tuple[str, ...] = tuple(causal.VARIABLES)  # the columns of the causal codes
COVERAGES = ("natural", "grid")
GRID_VARIABLES = ("day", "weather", "gameday", "semester")  # the static context a grid cell fixes
CAUSAL_INFO_KEY = "causal"
_VECTOR_ONLY_KWARGS = ("vectorization_mode", "vector_kwargs", "wrappers")  # gym.make_vec's, not the env's

Policy = Callable[[Any], Any]


# --- episode records -------------------------------------------------------------


@dataclass
class Episode:
    """One episode in memory, as numpy arrays: T steps, T+1 observations.

    ``obs`` is an array (T+1, ...) or a dict of them for Dict spaces; ``action``
    (T, ...), ``reward`` (T,), ``terminated`` and ``truncated`` (T,) bool;
    ``causal`` (T+1, 7) float32 codes in ``CAUSAL_VARIABLES`` order, aligned with
    ``obs``, or None for an env without causal variables; ``do`` the
    interventions imposed at reset (empty when none); ``metadata`` what the
    dataset keeps about the episode (``env_index``, ``env_seed``, ``env_episode``).
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


# --- the causal grid ---------------------------------------------------------------


def grid_cells(split: str = "all") -> list[dict[str, Any]]:
    """Every day x weather x gameday x semester cell that ``split`` allows, as ``do`` mappings.

    ``"train"`` leaves out the cells matching ``campus_env.causal.HELDOUT_CONTEXTS``,
    ``"heldout"`` keeps only those, ``"all"`` keeps every cell.

    >>> len(grid_cells("all")), len(grid_cells("train")), len(grid_cells("heldout"))
    (112, 84, 28)
    >>> grid_cells("heldout")[0]
    {'day': 0, 'weather': 'rainy', 'gameday': True, 'semester': 'fall'}
    """
    causal.check_split(split)
    var = causal.VARIABLES
    cells = []
    for day in var["day"].choices:
        for weather in var["weather"].choices:
            for gameday in (False, True):
                for semester in var["semester"].choices:
                    cell = {"day": day, "weather": weather, "gameday": gameday, "semester": semester}
                    code = {name: var[name].encode(value) for name, value in cell.items()}
                    heldout = bool(causal.in_heldout(code["day"], code["semester"], code["weather"], code["gameday"]))
                    if split == "all" or heldout == (split == "heldout"):
                        cells.append(cell)
    return cells


def _causal_codes(info: Any) -> np.ndarray | None:
    """The (N, 7) float32 causal codes in ``info["causal"]``, or None when the env reports none.

    Takes the native vector env's codes and the (decoded) values a sync vector
    env gathers from single envs alike; an env missing from ``info`` gives NaN.
    """
    values = info.get(CAUSAL_INFO_KEY) if isinstance(info, Mapping) else None
    if not isinstance(values, Mapping) or any(name not in values for name in CAUSAL_VARIABLES):
        return None
    columns = []
    for name, variable in causal.VARIABLES.items():
        column = np.asarray(values[name])
        if column.dtype == object:  # decoded values ("rainy", True, ...) or None for a missing env
            column = np.array([np.nan if v is None else _code(variable, v) for v in column], dtype=np.float64)
        columns.append(column.astype(np.float64))
    return np.stack(columns, axis=-1).astype(np.float32)


def _code(variable: causal.Variable, value: Any) -> float:
    if variable.kind == "categorical":
        return float(variable.choices.index(value))
    return float(value)  # bool -> 0/1, hour stays in hours, crowd as is


# --- collection ----------------------------------------------------------------------


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
) -> minari.MinariDataset:
    """Collects episodes with a vector env and writes them as a Minari dataset.

    Args:
        env_id: a Gymnasium id. CampusNav-v0 runs its native vector env; a foreign
            env runs in Gymnasium's sync vector env unless ``env_kwargs`` names a
            ``vectorization_mode``. Any autoreset mode is handled.
        num_episodes: episodes to collect with ``coverage="natural"``; with
            ``"grid"`` it is (number of cells) x ``episodes_per_cell`` and may be left out.
        num_envs: envs stepped together (fewer when fewer episodes are wanted at a time).
        policy: ``policy(batched obs) -> batched actions``; None samples the action
            space, seeded with ``seed``.
        coverage: ``"natural"`` (contexts as the env draws them) or ``"grid"`` (every
            cell of ``grid_cells(split)``, ``episodes_per_cell`` episodes each, imposed
            with reset-time ``do``; CampusNav-v0's native vector env only).
        episodes_per_cell: episodes per grid cell.
        split: ``"all"``, ``"train"`` or ``"heldout"`` contexts (``campus_env.causal.HELDOUT_CONTEXTS``).
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

    Returns:
        The written ``minari.MinariDataset``.
    """
    if coverage not in COVERAGES:
        raise ValueError(f"coverage must be one of {', '.join(map(repr, COVERAGES))}, got {coverage!r}")
    _check_count("num_envs", num_envs)
    causal.check_split(split)
    if max_episode_steps is not None:
        _check_count("max_episode_steps", max_episode_steps)
    kwargs = dict(env_kwargs or {})
    for key in ("num_envs", "split", "max_episode_steps"):
        if key in kwargs:
            raise ValueError(f"pass {key}=... to collect() itself, not in env_kwargs")
    is_campus = _is_campus_env(env_id)
    if not is_campus:
        if coverage == "grid":
            raise ValueError(
                f"coverage='grid' sweeps the causal grid of CampusNav-v0; {env_id!r} has no causal variables "
                "(use coverage='natural')"
            )
        if split != "all":
            raise ValueError(f"split={split!r} selects CampusNav-v0 contexts; {env_id!r} has none (use split='all')")
        kwargs.setdefault("vectorization_mode", "sync")
    if coverage == "grid":
        _check_count("episodes_per_cell", episodes_per_cell)
        cells: list[dict[str, Any] | None] = list(grid_cells(split))
        per_job = episodes_per_cell
        if num_episodes is not None and num_episodes != len(cells) * per_job:
            raise ValueError(
                f"coverage='grid' with split={split!r} collects {len(cells)} cells x {per_job} episodes = "
                f"{len(cells) * per_job} episodes; got num_episodes={num_episodes} (leave it out)"
            )
    else:
        if num_episodes is None:
            raise ValueError("coverage='natural' needs num_episodes")
        _check_count("num_episodes", num_episodes)
        cells, per_job = [None], num_episodes
        if is_campus:
            kwargs["split"] = split
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    if policy is not None and not callable(policy):
        raise TypeError(f"policy must be callable as policy(obs) -> actions, got {type(policy).__name__}")
    dataset_id = dataset_id or _default_dataset_id(env_id, policy, coverage, split)
    parse_dataset_id(dataset_id)  # raises ValueError on a malformed id
    with _datasets_root(data_path):
        path = get_dataset_path(dataset_id)
        if path.exists():
            raise FileExistsError(f"a Minari dataset {dataset_id!r} already exists at {path}; choose another id")

    n = min(num_envs, per_job)
    envs = gym.make_vec(env_id, num_envs=n, **kwargs)
    records: list[_Collected] = []
    try:
        if coverage == "grid" and not isinstance(envs.unwrapped, CampusNavVectorEnv):
            raise ValueError(
                "coverage='grid' needs CampusNav-v0's native vector env (its reset-time do() lasts across "
                "autoresets); leave vectorization_mode out of env_kwargs"
            )
        mode = AutoresetMode(envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP))
        if policy is None:
            envs.action_space.seed(seed)
        quotas = np.array([per_job // n + (i < per_job % n) for i in range(n)])
        with tqdm(total=len(cells) * per_job, desc=f"collect {env_id}", unit="episode", disable=not progress) as bar:
            for c, cell in enumerate(cells):
                reset_seed = seed + c * n
                options = {"do": dict(cell)} if cell else None
                for env_index, ordinal, episode in _run(envs, mode, quotas, policy, reset_seed, options, bar):
                    records.append(_Collected(cell, env_index, reset_seed + env_index, ordinal, episode))
        observation_space, action_space = envs.single_observation_space, envs.single_action_space
    finally:
        envs.close()

    metadata: dict[str, Any] = {"coverage": coverage, "split": split, "collection_seed": int(seed)}
    if coverage == "grid":
        metadata["episodes_per_cell"] = int(episodes_per_cell)
    if records[0].arrays["causal"] is not None:
        metadata["causal_variables"] = list(CAUSAL_VARIABLES)
    with _datasets_root(data_path):
        root = get_dataset_path()
    return _write(
        root,
        dataset_id,
        records,
        metadata,
        env=_single_env_spec(env_id, kwargs, max_episode_steps),
        algorithm_name="random" if policy is None else getattr(policy, "__name__", type(policy).__name__),
        author="model_zoo",
        description=f"{env_id} episodes collected by model_zoo.data.collect (coverage={coverage!r}, "
        f"split={split!r}, seed={seed})",
        observation_space=observation_space,
        action_space=action_space,
        jpeg_encoding=False,
    )


class _Collected(NamedTuple):
    """One collected episode and where it came from."""

    cell: dict[str, Any] | None  # the grid cell imposed with reset-time do(), None for natural coverage
    env_index: int
    env_seed: int
    env_episode: int  # the how-manieth episode of that sub-env since its seeded reset
    arrays: dict[str, Any]


def _write(
    root: Path, dataset_id: str, records: list[_Collected], metadata: dict[str, Any], **create_kwargs: Any
) -> minari.MinariDataset:
    """Writes the dataset under ``root`` atomically: into a hidden folder (Minari skips those), then moved."""
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
    staging = Path(tempfile.mkdtemp(prefix=".collect-", dir=root))
    try:
        with _datasets_root(staging), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module=r"minari\.")  # its nags about metadata
            dataset = minari.create_dataset_from_buffers(dataset_id, buffers, **create_kwargs)
            dataset.storage.update_metadata(metadata)
            dataset.storage.update_episode_metadata(
                [{"env_index": r.env_index, "env_seed": r.env_seed, "env_episode": r.env_episode} for r in records],
                range(len(records)),
            )
        target = root / dataset_id
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging / dataset_id, target)  # fails rather than merge into a dataset written meanwhile
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    with _datasets_root(root):
        namespace = parse_dataset_id(dataset_id)[0]
        if namespace is not None and namespace not in list_local_namespaces():
            create_namespace(namespace)
        return minari.load_dataset(dataset_id)


def _run(
    envs: gym.vector.VectorEnv,
    mode: AutoresetMode,
    quotas: np.ndarray,
    policy: Policy | None,
    seed: int,
    options: dict[str, Any] | None,
    bar: tqdm,
) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """Resets ``envs`` once and steps them until env ``i`` has finished ``quotas[i]`` episodes.

    Yields (env index, episode number within that env, episode arrays) as episodes
    end. A fixed number of episodes per env (rather than the first to finish)
    keeps short episodes from being over-represented.
    """
    n = envs.num_envs
    obs, info = envs.reset(seed=seed, options=options)
    codes = _causal_codes(info)
    buffers = [_Recorder(_take(obs, i), _row(codes, i)) for i in range(n)]
    finished = np.zeros(n, dtype=np.int64)
    restart = np.zeros(n, dtype=bool)  # next-step autoreset: this env's next step starts an episode
    while (finished < quotas).any():
        action = _actions(envs, policy, obs)
        obs, reward, terminated, truncated, info = envs.step(action)
        codes = _causal_codes(info)
        ended = terminated | truncated
        final_codes = None
        if mode is AutoresetMode.SAME_STEP and ended.any():
            final_codes = _causal_codes(info["final_info"])
        for i in np.flatnonzero(finished < quotas).tolist():
            if restart[i]:
                buffers[i] = _Recorder(_take(obs, i), _row(codes, i))
                restart[i] = False
                continue
            if ended[i] and mode is AutoresetMode.SAME_STEP:
                last_obs, last_code = _copy(info["final_obs"][i]), _row(final_codes, i)
            else:
                last_obs, last_code = _take(obs, i), _row(codes, i)
            buffers[i].add(action[i], reward[i], terminated[i], truncated[i], last_obs, last_code)
            if not ended[i]:
                continue
            yield i, int(finished[i]), buffers[i].finish()
            finished[i] += 1
            bar.update(1)
            if mode is AutoresetMode.NEXT_STEP:
                restart[i] = True
            elif mode is AutoresetMode.SAME_STEP:
                buffers[i] = _Recorder(_take(obs, i), _row(codes, i))
        if mode is AutoresetMode.DISABLED and ended.any():
            obs, info = envs.reset(options={"reset_mask": ended.copy()})
            codes = _causal_codes(info)
            for i in np.flatnonzero(ended & (finished < quotas)).tolist():
                buffers[i] = _Recorder(_take(obs, i), _row(codes, i))


class _Recorder:
    """The growing arrays of one episode."""

    def __init__(self, obs: Any, code: np.ndarray | None):
        self.obs = [obs]
        self.codes = [code]
        self.action: list[Any] = []
        self.reward: list[float] = []
        self.terminated: list[bool] = []
        self.truncated: list[bool] = []

    def add(self, action, reward, terminated, truncated, obs, code) -> None:
        self.action.append(np.array(action))
        self.reward.append(float(reward))
        self.terminated.append(bool(terminated))
        self.truncated.append(bool(truncated))
        self.obs.append(obs)
        self.codes.append(code)

    def finish(self) -> dict[str, Any]:
        if isinstance(self.obs[0], dict):
            obs = {key: np.stack([o[key] for o in self.obs]) for key in self.obs[0]}
        else:
            obs = np.stack(self.obs)
        with_causal = all(code is not None for code in self.codes)
        return {
            "obs": obs,
            "action": np.stack(self.action),
            "reward": np.asarray(self.reward, dtype=np.float64),
            "terminated": np.asarray(self.terminated, dtype=bool),
            "truncated": np.asarray(self.truncated, dtype=bool),
            "causal": np.stack(self.codes).astype(np.float32) if with_causal else None,
        }


def _actions(envs: gym.vector.VectorEnv, policy: Policy | None, obs: Any) -> np.ndarray:
    if policy is None:
        return envs.action_space.sample()
    action = policy(obs)
    if torch.is_tensor(action):
        action = action.detach().cpu().numpy()
    action = np.asarray(action)
    space = envs.single_action_space
    want = (envs.num_envs,) + tuple(space.shape or ())
    if action.shape != want:
        raise ValueError(f"policy(obs) must return a batch of actions shaped {want}, got shape {action.shape}")
    if isinstance(space, gym.spaces.Discrete):
        if not np.issubdtype(action.dtype, np.integer):
            raise ValueError(f"policy(obs) must return integer actions for {space}, got dtype {action.dtype}")
        action = action.astype(np.int64)
    return action.astype(space.dtype) if space.dtype is not None else action


def _take(obs: Any, i: int) -> Any:
    if isinstance(obs, Mapping):
        return {key: np.array(value[i]) for key, value in obs.items()}
    return np.array(obs[i])


def _copy(obs: Any) -> Any:
    if isinstance(obs, Mapping):
        return {key: np.array(value) for key, value in obs.items()}
    return np.array(obs)


def _row(codes: np.ndarray | None, i: int) -> np.ndarray | None:
    return None if codes is None else codes[i].copy()


def _is_campus_env(env_id: str) -> bool:
    spec = gym.spec(env_id)
    creator = spec.entry_point
    if isinstance(creator, str):
        creator = load_env_creator(creator)
    return isinstance(creator, type) and issubclass(creator, CampusNavEnv)


def _single_env_spec(env_id: str, kwargs: Mapping[str, Any], max_episode_steps: int | None) -> EnvSpec:
    """The spec of one env of the collection, for Minari's ``recover_environment``."""
    spec = copy.deepcopy(gym.spec(env_id))
    env_kwargs = {k: v for k, v in kwargs.items() if k not in _VECTOR_ONLY_KWARGS and k != "max_episode_steps"}
    spec.kwargs = {**spec.kwargs, **env_kwargs}
    if max_episode_steps is not None:
        spec.max_episode_steps = max_episode_steps
    return spec


def _default_dataset_id(env_id: str, policy: Policy | None, coverage: str, split: str) -> str:
    namespace = gym.spec(env_id).name.lower()
    name = "-".join(["random" if policy is None else "policy", coverage] + ([split] if split != "all" else []))
    return f"{namespace}/{name}-v0"


@contextmanager
def _datasets_root(data_path: str | os.PathLike | None):
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


def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


# --- reading -----------------------------------------------------------------------


def load_dataset(dataset_id: str, *, data_path: str | os.PathLike | None = None) -> minari.MinariDataset:
    """``minari.load_dataset(dataset_id)`` looked up in ``data_path`` (default: Minari's folder)."""
    with _datasets_root(data_path):
        return minari.load_dataset(os.fspath(dataset_id))


def load_episodes(
    dataset: minari.MinariDataset | str, *, data_path: str | os.PathLike | None = None
) -> list[Episode]:
    """Every episode of a Minari dataset (or a dataset id) as an in-memory ``Episode``.

    ``data_path`` is the datasets folder an id is looked up in (default: Minari's).
    """
    if isinstance(dataset, (str, os.PathLike)):
        dataset = load_dataset(dataset, data_path=data_path)
    if not isinstance(dataset, minari.MinariDataset):
        raise TypeError(f"expected a minari.MinariDataset or a dataset id, got {type(dataset).__name__}")
    keys = list(dataset.observation_space.spaces) if isinstance(dataset.observation_space, gym.spaces.Dict) else None
    metadata = list(dataset.storage.get_episode_metadata(dataset.episode_indices))
    episodes = []
    for data, meta in zip(dataset.iterate_episodes(), metadata, strict=True):
        obs = {key: np.asarray(data.observations[key]) for key in keys} if keys else np.asarray(data.observations)
        infos = data.infos or {}
        codes = infos.get(CAUSAL_INFO_KEY)
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
        _check_episode(episode)
        episodes.append(episode)
    return episodes


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _check_episode(episode: Episode) -> None:
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
    episodes = _episodes(episodes)
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


def _episodes(source: Any) -> list[Episode]:
    if isinstance(source, (minari.MinariDataset, str, os.PathLike)):
        return load_episodes(source)
    episodes = list(source)
    if not episodes:
        raise ValueError("no episodes given")
    for episode in episodes:
        if not isinstance(episode, Episode):
            raise TypeError(f"expected Episode records (see load_episodes), got {type(episode).__name__}")
    return episodes


# --- windows -----------------------------------------------------------------------


class _Timeline:
    """All episodes end to end as aligned steps (Dreamer convention), held as numpy arrays."""

    def __init__(self, episodes: Sequence[Episode]):
        with_causal = {e.causal is not None for e in episodes}
        if len(with_causal) > 1:
            raise ValueError("some episodes have causal values and some do not; use episodes of one env")
        first = episodes[0]
        self.is_dict = isinstance(first.obs, dict)
        for e in episodes:
            _check_episode(e)
            if isinstance(e.obs, dict) != self.is_dict or (self.is_dict and set(e.obs) != set(first.obs)):
                raise ValueError("episodes have different observation formats; use episodes of one env")
        action = [_aligned_action(e.action) for e in episodes]
        if len({(a.dtype, a.shape[1:]) for a in action}) > 1:
            raise ValueError("episodes have different action dtypes or shapes; use episodes of one env")
        if self.is_dict:
            self.obs = {k: np.concatenate([e.obs[k] for e in episodes]) for k in first.obs}
        else:
            self.obs = np.concatenate([e.obs for e in episodes])
        self.action = np.concatenate(action)
        zero_f, zero_b = np.zeros(1, np.float32), np.zeros(1, bool)
        self.reward = np.concatenate([np.concatenate([zero_f, e.reward.astype(np.float32)]) for e in episodes])
        self.terminated = np.concatenate([np.concatenate([zero_b, e.terminated.astype(bool)]) for e in episodes])
        self.is_first = np.zeros(len(self.reward), dtype=bool)
        self.is_first[np.cumsum([0] + [len(e) + 1 for e in episodes[:-1]])] = True
        self.causal = None
        if first.causal is not None:
            self.causal = np.concatenate([e.causal.astype(np.float32) for e in episodes])
        self.num_steps = len(self.reward)
        self.num_episodes = len(episodes)

    def window(self, starts: np.ndarray, seq_len: int, device: torch.device | str) -> Batch:
        """Windows (B, seq_len) beginning at the timeline steps ``starts`` (wrapping at the end)."""
        index = (np.asarray(starts, dtype=np.int64)[:, None] + np.arange(seq_len)) % self.num_steps  # (B, T)

        def take(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.take(x, index, axis=0)).to(device)  # np.take: far faster than torch indexing

        return Batch(
            obs={k: take(v) for k, v in self.obs.items()} if self.is_dict else take(self.obs),
            action=take(self.action),
            reward=take(self.reward),
            terminated=take(self.terminated),
            is_first=take(self.is_first),
            causal=None if self.causal is None else take(self.causal),
        )

    def check_seq_len(self, seq_len: int) -> None:
        _check_count("seq_len", seq_len)
        if seq_len > self.num_steps:
            raise ValueError(
                f"seq_len={seq_len} is longer than the whole data ({self.num_steps} steps in "
                f"{self.num_episodes} episodes); collect more episodes or use a shorter seq_len"
            )


def _aligned_action(action: np.ndarray) -> np.ndarray:
    """T actions as T+1 aligned ones (a zero first): int64 (T+1,) or float32 (T+1, A)."""
    action = np.asarray(action)
    if np.issubdtype(action.dtype, np.integer) or action.dtype == bool:
        action = action.astype(np.int64)
    else:
        action = action.astype(np.float32).reshape(len(action), -1)
    return np.concatenate([np.zeros_like(action[:1]), action])


def _timeline(source: Any) -> _Timeline:
    return source if isinstance(source, _Timeline) else _Timeline(_episodes(source))


class SequenceSampler:
    """Draws ``(batch_size, seq_len)`` windows of experience as ``model_zoo.base.Batch``.

    Windows start at any step of any episode, uniformly; one that runs past an
    episode's end continues into the next episode with ``is_first`` True at the
    join (see the module docstring), so nothing is padded and ``seq_len`` may
    exceed an episode's length (not the whole data's). Observations keep the env's
    format (images uint8 (B, T, H, W, C)); actions are int64 (B, T) for Discrete
    spaces and float32 (B, T, A) for Box; ``causal`` is float32 (B, T, 7) or None.

    Args:
        episodes_or_dataset: ``Episode`` records, a ``minari.MinariDataset`` or a dataset id.
        seq_len: window length T.
        batch_size: windows per batch B.
        seed: seeds the window starts; the same seed gives the same batches.
        device: where the batches' tensors go.
    """

    def __init__(
        self,
        episodes_or_dataset: Sequence[Episode] | minari.MinariDataset | str,
        seq_len: int,
        batch_size: int,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ):
        self._timeline = _timeline(episodes_or_dataset)
        self._timeline.check_seq_len(seq_len)
        _check_count("batch_size", batch_size)
        self.seq_len = int(seq_len)
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self._rng = np.random.default_rng(seed)
        dataset = episodes_or_dataset if isinstance(episodes_or_dataset, minari.MinariDataset) else None
        self.observation_space = dataset.observation_space if dataset is not None else None
        self.action_space = dataset.action_space if dataset is not None else None

    @property
    def num_steps(self) -> int:
        """Aligned steps in the data (an episode of T steps counts T+1)."""
        return self._timeline.num_steps

    @property
    def num_episodes(self) -> int:
        return self._timeline.num_episodes

    def sample(self) -> Batch:
        """One batch of windows, (batch_size, seq_len)."""
        starts = self._rng.integers(0, self._timeline.num_steps, size=self.batch_size)
        return self._timeline.window(starts, self.seq_len, self.device)

    def state_dict(self) -> dict[str, Any]:
        """The generator's position (JSON-able), so a resumed run draws the same batches next."""
        return {
            "rng": self._rng.bit_generator.state,
            "num_steps": self.num_steps,
            "seq_len": self.seq_len,
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores ``state_dict()``; raises ``ValueError`` if it was taken on other data or shapes."""
        mine = self.state_dict()
        wrong = {k: (state.get(k), mine[k]) for k in ("num_steps", "seq_len", "batch_size") if state.get(k) != mine[k]}
        if wrong or "rng" not in state:
            raise ValueError(
                "sampler state does not fit this sampler: "
                + (", ".join(f"{k} {a} (saved) != {b} (here)" for k, (a, b) in wrong.items()) or "no 'rng' entry")
            )
        rng = np.random.default_rng()
        rng.bit_generator.state = dict(state["rng"])
        self._rng = rng

    def __iter__(self) -> Iterator[Batch]:
        """Batches without end."""
        while True:
            yield self.sample()

    def __repr__(self) -> str:
        return (
            f"SequenceSampler(episodes={self.num_episodes}, steps={self.num_steps}, seq_len={self.seq_len}, "
            f"batch_size={self.batch_size}, device={str(self.device)!r})"
        )


def _starts(timeline: _Timeline, seq_len: int, stride: int | None) -> np.ndarray:
    timeline.check_seq_len(seq_len)
    stride = seq_len if stride is None else stride
    _check_count("stride", stride)
    return np.arange(0, timeline.num_steps - seq_len + 1, stride)


def all_windows(
    source: Sequence[Episode] | minari.MinariDataset | str,
    seq_len: int,
    *,
    stride: int | None = None,
    device: torch.device | str = "cpu",
) -> Batch:
    """Every window of the data once, in order, as one ``Batch`` (W, seq_len).

    Windows begin at timeline steps 0, stride, 2 * stride, ... (``stride`` defaults
    to ``seq_len``: back to back, each step once) and never wrap, so fewer than
    ``stride`` steps at the very end may be left out. Boundaries are marked with
    ``is_first`` as in ``SequenceSampler``.
    """
    timeline = _timeline(source)
    return timeline.window(_starts(timeline, seq_len, stride), seq_len, device)


def iterate(
    source: Sequence[Episode] | minari.MinariDataset | str,
    seq_len: int,
    batch_size: int,
    *,
    stride: int | None = None,
    device: torch.device | str = "cpu",
) -> Iterator[Batch]:
    """The windows of ``all_windows``, in the same order, in batches of ``batch_size`` (the last may be smaller)."""
    _check_count("batch_size", batch_size)
    timeline = _timeline(source)
    starts = _starts(timeline, seq_len, stride)  # checked here, before the first batch is asked for
    return (timeline.window(starts[i : i + batch_size], seq_len, device) for i in range(0, len(starts), batch_size))
