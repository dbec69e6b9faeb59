"""model_zoo.parallel: Ray tasks in order, and the same datasets and searches whatever the number of workers."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest
import torch

import campus_env  # noqa: F401  (registers CampusNav-v0)
from model_zoo.agents.controllers import train_cmaes
from model_zoo.data import collect, load_episodes
from model_zoo.parallel import map_chunks, map_tasks

ray = pytest.importorskip("ray")
TARGET = np.array([0.5, -0.3, 0.2], dtype=np.float32)


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 CPUs for this module's tests (one start: it takes seconds)."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    yield
    if started:
        ray.shutdown()


def square_and_threads(x: int) -> tuple[int, int]:
    return x * x, torch.get_num_threads()


def quadratic(population: list[np.ndarray]) -> list[float]:
    return [-float(np.sum((p - TARGET) ** 2)) for p in population]


def test_one_worker_runs_here_in_order():
    seen = []
    assert map_tasks(lambda x: x + 1, [3, 1, 2], on_done=lambda i, r: seen.append((i, r))) == [4, 2, 3]
    assert seen == [(0, 4), (1, 2), (2, 3)]
    assert map_chunks(lambda chunk: [2 * x for x in chunk], [1, 2, 3]) == [2, 4, 6]


def test_bad_workers_and_a_missing_ray_are_clear_errors(monkeypatch):
    for workers in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="workers must be a positive integer"):
            map_tasks(abs, [1], workers=workers)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails
    with pytest.raises(ImportError, match=r'pip install "campusnav\[distributed\]"'):
        map_tasks(abs, [1], workers=2)
    with pytest.raises(ImportError, match="campusnav"):
        train_cmaes(quadratic, 3, generations=1, workers=2, progress=False)


def test_tasks_keep_the_order_of_the_items_with_one_torch_thread(local_ray):
    done = []
    results = map_tasks(square_and_threads, range(5), workers=2, on_done=lambda i, _: done.append(i))
    assert results == [(x * x, 1) for x in range(5)]
    assert sorted(done) == list(range(5))
    assert map_chunks(quadratic, [TARGET, TARGET + 1, TARGET - 1], workers=2) == quadratic([TARGET, TARGET + 1,
                                                                                             TARGET - 1])


def test_what_cannot_be_pickled_is_a_type_error(local_ray):
    lock = threading.Lock()
    with pytest.raises(TypeError, match="fn must be picklable"):
        map_tasks(lambda x: (lock, x), [1], workers=2)
    with pytest.raises(TypeError, match="evaluate_population must be picklable"):
        train_cmaes(lambda population: (lock, quadratic(population))[1], 3, generations=1, workers=2,
                    progress=False)


def test_cmaes_on_two_workers_searches_as_one(local_ray):
    kwargs = dict(generations=3, popsize=5, sigma0=0.3, seed=1, progress=False)
    best_one, history_one = train_cmaes(quadratic, 3, **kwargs)
    best_two, history_two = train_cmaes(quadratic, 3, workers=2, **kwargs)
    np.testing.assert_array_equal(best_one, best_two)
    assert history_one.keys() == history_two.keys()
    for key in history_one:
        np.testing.assert_array_equal(history_one[key], history_two[key])


def _episodes(dataset) -> list[tuple]:
    return [(e.obs, e.action, e.reward, e.terminated, e.truncated, e.causal, e.do, e.metadata)
            for e in load_episodes(dataset)]


def _assert_same(one, two) -> None:
    a, b = _episodes(one), _episodes(two)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for u, v in zip(x, y, strict=True):
            assert u == v if isinstance(u, dict) or u is None else np.array_equal(u, v)


@pytest.mark.parametrize(
    ("env_id", "settings"),
    [
        ("CampusNav-v0", dict(num_episodes=7, num_envs=3, max_episode_steps=6, env_kwargs={"obs_mode": "pixels"})),
        ("CampusNav-v0", dict(coverage="grid", split="heldout", num_envs=3, max_episode_steps=3,
                              env_kwargs={"obs_mode": "state"})),
        ("CartPole-v1", dict(num_episodes=9, num_envs=4)),  # episodes of many lengths: their order is tested
    ],
    ids=["campusnav-pixels", "campusnav-grid", "cartpole"],
)
def test_a_collection_is_the_same_on_one_and_two_workers(local_ray, tmp_path, env_id, settings):
    common = dict(progress=False, data_path=tmp_path, seed=3, **settings)
    one = collect(env_id, dataset_id="test/one-v0", **common)
    two = collect(env_id, dataset_id="test/two-v0", workers=2, **common)
    _assert_same(one, two)
    if env_id == "CartPole-v1":
        lengths = [len(e.reward) for e in load_episodes(one)]
        assert len(set(lengths)) > 1 and lengths != sorted(lengths)
