"""The leaderboard's shared datasets, collected once into ``<out>/data`` and read back by every cell.

- CampusNav-v0 state vectors from the training contexts (``split="train"``), walked by
  the goal-biased policy that ``campusnav demo`` collects with, so that goals are
  reached often enough to learn the reward; 10 % of the episodes are held out.
- CampusNav-v0 state vectors from the held-out contexts (``split="heldout"``): the
  error there is the generalisation to days, weathers and games never trained on.
- CampusNav-v0 pixels from the training contexts (random actions), and the semantic probe
  (``model_zoo.probe``) that reads the agent's cell and the weather from frames.
- CarRacing-v3 pixels from random actions, the foreign env.

A dataset id names its budget, so a run with other settings collects its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym

import campus_env  # noqa: F401  (registers CampusNav-v0)
from campus_env.features import goal_biased_policy
from campusnav.leaderboard.budget import Budget
from model_zoo.data import Episode, collect, load_dataset, load_episodes, split_episodes
from model_zoo.probe import SemanticProbe, train_probe

__all__ = ["CAMPUS", "CAR", "PIXEL_KWARGS", "STATE_KWARGS", "SharedData", "campus_data", "campus_pixel_data",
           "car_data", "probe", "probe_at"]

CAMPUS = "CampusNav-v0"
CAR = "CarRacing-v3"
STATE_KWARGS = {"obs_mode": "state"}
PIXEL_KWARGS = {"obs_mode": "pixels"}
DATA_SEED = 0  # one dataset for every model and seed: seeds vary the models, not the data
PIXEL_SEED = DATA_SEED + 200_000  # the CampusNav-v0 pixel episodes' first reset seed
HELD_OUT, CAR_HELD_OUT = 0.1, 0.15  # shares of the episodes held out for evaluation


def campus_train_id(budget: Budget) -> str:
    """The dataset id of the CampusNav-v0 state vectors from the training contexts."""
    return f"leaderboard/campus-train-e{budget.episodes}-t{budget.max_episode_steps}-b{_bias(budget)}-v0"


def campus_pixels_id(budget: Budget) -> str:
    """The dataset id of the CampusNav-v0 frames."""
    return f"leaderboard/campus-pixels-e{budget.campus_pixel_episodes}-t{budget.max_episode_steps}-v0"


def car_id(budget: Budget) -> str:
    """The dataset id of the CarRacing-v3 frames."""
    return f"leaderboard/carracing-e{budget.pixel_episodes}-t{budget.pixel_max_steps}-v0"


def _bias(budget: Budget) -> int:
    return round(100 * budget.collect_bias)  # a "." is not allowed in dataset ids


@dataclass
class SharedData:
    """Training and held-out episodes of one env, and its spaces."""

    train: list[Episode]
    test: list[Episode]
    observation_space: gym.Space
    action_space: gym.Space
    heldout_contexts: list[Episode] | None = None


def _dataset(dataset_id: str, root: Path, **collect_kwargs):
    try:
        return load_dataset(dataset_id, data_path=root)
    except FileNotFoundError:
        return collect(dataset_id=dataset_id, data_path=root, progress=False, **collect_kwargs)


def campus_data(budget: Budget, out: Path) -> SharedData:
    """CampusNav-v0 state vectors: training contexts (train / held-out episodes) and held-out contexts."""
    root = Path(out) / "data"
    policy = goal_biased_policy(budget.collect_bias, seed=DATA_SEED) if budget.collect_bias else None
    common = dict(num_envs=16, env_kwargs=STATE_KWARGS, max_episode_steps=budget.max_episode_steps, seed=DATA_SEED)
    train_set = _dataset(campus_train_id(budget), root, env_id=CAMPUS,
                         num_episodes=budget.episodes, split="train", policy=policy, **common)
    policy = goal_biased_policy(budget.collect_bias, seed=DATA_SEED + 1) if budget.collect_bias else None
    common["seed"] = DATA_SEED + 100_000  # other episodes than the training contexts' seeds
    heldout = _dataset(f"leaderboard/campus-heldout-e{budget.heldout_context_episodes}-t{budget.max_episode_steps}"
                       f"-b{_bias(budget)}-v0", root, env_id=CAMPUS, num_episodes=budget.heldout_context_episodes,
                       split="heldout", policy=policy, **common)
    train, test = split_episodes(load_episodes(train_set), HELD_OUT, seed=DATA_SEED)
    return SharedData(train, test, train_set.observation_space, train_set.action_space, load_episodes(heldout))


def car_data(budget: Budget, out: Path) -> SharedData:
    """CarRacing-v3 pixels from random actions (15 % of the episodes held out)."""
    dataset = _dataset(car_id(budget), Path(out) / "data", env_id=CAR, num_episodes=budget.pixel_episodes, num_envs=4,
                       seed=DATA_SEED, max_episode_steps=budget.pixel_max_steps)
    train, test = split_episodes(load_episodes(dataset), CAR_HELD_OUT, seed=DATA_SEED)
    return SharedData(train, test, dataset.observation_space, dataset.action_space)


def campus_pixel_data(budget: Budget, out: Path) -> SharedData:
    """CampusNav-v0 egocentric frames from the training contexts (10 % of the episodes held out)."""
    dataset = _dataset(campus_pixels_id(budget), Path(out) / "data", env_id=CAMPUS,
                       num_episodes=budget.campus_pixel_episodes, num_envs=16, split="train",
                       env_kwargs=PIXEL_KWARGS, seed=PIXEL_SEED, max_episode_steps=budget.max_episode_steps)
    train, test = split_episodes(load_episodes(dataset), HELD_OUT, seed=DATA_SEED)
    return SharedData(train, test, dataset.observation_space, dataset.action_space)


def probe(budget: Budget, out: Path) -> SemanticProbe:
    """The semantic probe of CampusNav-v0 frames in ``<out>/probe`` (trained on the training contexts once)."""
    return probe_at(Path(out) / "probe", budget)


def probe_at(folder: Path, budget: Budget) -> SemanticProbe:
    """The probe saved in ``folder``, or one trained with the budget's frames and steps and saved there."""
    folder = Path(folder)
    if (folder / "config.json").exists():
        return SemanticProbe.load(folder)
    result = train_probe(CAMPUS, env_kwargs={"split": "train"}, frames=budget.probe_frames,
                         heldout_frames=max(budget.probe_frames // 4, 16), steps=budget.probe_steps, seed=DATA_SEED)
    result.probe.save(folder)
    (folder / "accuracy.json").write_text(json.dumps(result.as_dict(), indent=1, default=float) + "\n")
    return result.probe
