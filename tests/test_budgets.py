"""campusnav.budgets: the argument groups scripts share, the --config reader and collect_split."""

from __future__ import annotations

import dataclasses

import pytest
import tyro

import campus_env  # noqa: F401  (registers CampusNav-v0)
from campusnav.budgets import (
    BenchmarkRun,
    Collection,
    ControllerTraining,
    ExampleRun,
    Training,
    collect_split,
    config_overrides,
)


@dataclasses.dataclass(frozen=True)
class Args(ExampleRun, ControllerTraining, Training, Collection):
    episodes: int = 12
    out: str = "runs/test"
    extra: int = 3
    """a field of the script's own"""


def test_inherited_fields_are_flat_flags_with_redeclared_defaults():
    assert tyro.cli(Args, args=[]) == Args()
    args = tyro.cli(Args, args=["--episodes", "5", "--batch-size", "4", "--popsize", "6", "--tiny", "--extra", "1"])
    assert (args.episodes, args.batch_size, args.popsize, args.tiny, args.extra) == (5, 4, 6, True, 1)
    assert args.max_episode_steps == Collection().max_episode_steps and args.out == "runs/test"
    assert args.fit_kwargs() == {"batch_size": 4, "seq_len": 32, "lr": 1e-3}
    cmaes = args.cmaes(7, sigma0=0.3)
    assert (cmaes.generations, cmaes.popsize, cmaes.episodes_per_member, cmaes.seed, cmaes.sigma0) == (10, 6, 4, 7, 0.3)


def test_groups_are_frozen_and_help_comes_from_the_docstrings(capsys):
    with pytest.raises(dataclasses.FrozenInstanceError):
        Args().episodes = 1  # type: ignore[misc]
    with pytest.raises(SystemExit):
        tyro.cli(BenchmarkRun, args=["--help"])
    assert "a smoke run" in capsys.readouterr().out


def test_config_overrides_reads_literals_and_exits_on_a_malformed_flag():
    assert config_overrides("hidden=32, name=abc") == {"hidden": 32, "name": "abc"}
    assert config_overrides("") == {}
    with pytest.raises(SystemExit, match="--config"):
        config_overrides("hidden")


def test_collect_split_replaces_an_earlier_dataset(tmp_path):
    budget = Collection(episodes=4, max_episode_steps=5)
    kwargs = dict(seed=0, data_path=tmp_path, dataset_id="test/budgets-v0", num_envs=2,
                  env_kwargs={"obs_mode": "state"}, progress=False)
    train, heldout = collect_split("CampusNav-v0", budget, 0.25, **kwargs)
    assert (len(train), len(heldout)) == (3, 1) and all(len(e) <= 5 for e in train + heldout)
    again, _ = collect_split("CampusNav-v0", budget, 0.25, **kwargs)  # a rerun: no FileExistsError
    assert [e.id for e in again] == [e.id for e in train]
