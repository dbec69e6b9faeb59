"""Datasets: collect -> Minari on disk -> load_episodes -> windows keeps every value and boundary."""

import itertools
import json

import gymnasium as gym
import minari
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

import campus_env  # noqa: F401  (registers CampusNav-v0)
from campus_env import causal
from model_zoo.base import Batch
from model_zoo.data import (
    CHECKSUMS_FILE,
    DatasetError,
    Episode,
    SequenceSampler,
    all_windows,
    collect,
    grid_cells,
    iterate,
    load_dataset,
    load_episodes,
    split_episodes,
)

ENV_ID = "CampusNav-v0"
MAX_STEPS = 20
STATIC = ("day", "semester", "weather", "gameday")  # constant within an episode
CAUSAL_VARIABLES = tuple(causal.VARIABLES)  # the columns of the causal codes
COLUMN = {name: i for i, name in enumerate(CAUSAL_VARIABLES)}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """One Minari datasets folder for the module's shared datasets."""
    return tmp_path_factory.mktemp("minari")


@pytest.fixture(scope="module", params=["state", "dict"])
def campus(request, root):
    """(obs_mode, dataset id): 6 random episodes from 4 envs, so some envs autoreset once."""
    dataset_id = f"campusnav/test-{request.param}-v0"
    collect(ENV_ID, num_episodes=6, num_envs=4, max_episode_steps=MAX_STEPS, seed=7, dataset_id=dataset_id,
            env_kwargs={"obs_mode": request.param}, progress=False, data_path=root)
    return request.param, dataset_id


@pytest.fixture(scope="module")
def campus_episodes(campus, root):
    return load_episodes(campus[1], data_path=root)


# --- helpers -----------------------------------------------------------------------


def codes_of(info):
    """The causal codes of a single env's (decoded) info, computed independently of model_zoo.data."""
    values = info["causal"]
    return np.array(
        [values[name] if name == "hour" else causal.VARIABLES[name].encode(values[name]) for name in CAUSAL_VARIABLES],
        dtype=np.float32,
    )


def assert_obs_equal(a, b):
    if isinstance(a, dict):
        assert set(a) == set(b)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    else:
        np.testing.assert_array_equal(a, b)


def obs_at(obs, t):
    return {k: v[t] for k, v in obs.items()} if isinstance(obs, dict) else obs[t]


def replay(env, episode):
    """Steps a single env like sub-env ``env_index`` of the collection and checks every value of ``episode``."""
    meta = episode.metadata
    options = {"do": episode.do} if episode.do else None
    obs, info = env.reset(seed=meta["env_seed"], options=options)
    for _ in range(meta["env_episode"]):  # the sub-env's earlier episodes: plain resets continue its generator
        obs, info = env.reset(options=options)
    assert_obs_equal(obs_at(episode.obs, 0), obs)
    if episode.causal is not None:
        np.testing.assert_array_equal(episode.causal[0], codes_of(info))
    for t, action in enumerate(episode.action):
        obs, reward, terminated, truncated, info = env.step(action)
        assert_obs_equal(obs_at(episode.obs, t + 1), obs)
        assert episode.reward[t] == reward
        assert episode.terminated[t] == terminated and episode.truncated[t] == truncated
        if episode.causal is not None:
            np.testing.assert_array_equal(episode.causal[t + 1], codes_of(info))
    assert terminated or truncated, "an episode ends with its env's end"


def expected_timeline(episodes):
    """Episodes as aligned steps (Dreamer convention), built step by step."""
    steps = []
    for e in episodes:
        for t in range(len(e) + 1):
            steps.append({
                "obs": obs_at(e.obs, t),
                "action": e.action[t - 1] if t else np.zeros_like(e.action[0]),
                "reward": e.reward[t - 1] if t else 0.0,
                "terminated": bool(e.terminated[t - 1]) if t else False,
                "is_first": t == 0,
                "causal": None if e.causal is None else e.causal[t],
            })
    return steps


def assert_window_is(batch: Batch, b: int, steps: list[dict]):
    for t, step in enumerate(steps):
        got = batch.obs
        got = {k: v[b, t].numpy() for k, v in got.items()} if isinstance(got, dict) else got[b, t].numpy()
        assert_obs_equal(got, step["obs"])
        np.testing.assert_array_equal(batch.action[b, t].numpy().reshape(np.shape(step["action"])), step["action"])
        assert batch.reward[b, t].item() == np.float32(step["reward"])
        assert batch.terminated[b, t].item() == step["terminated"]
        assert batch.is_first[b, t].item() == step["is_first"]
        if step["causal"] is not None:
            np.testing.assert_array_equal(batch.causal[b, t].numpy(), step["causal"])


# --- the round trip ------------------------------------------------------------------


def test_round_trip_matches_a_replayed_env(campus, root, monkeypatch):
    """minari.load_dataset reads back exactly what a single env gives for the same seeds and actions."""
    obs_mode, dataset_id = campus
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    dataset = minari.load_dataset(dataset_id)
    assert dataset.total_episodes == 6
    assert dataset.storage.metadata["causal_variables"] == list(CAUSAL_VARIABLES)
    episodes = load_episodes(dataset)
    assert sorted((e.metadata["env_index"], e.metadata["env_episode"]) for e in episodes) == [
        (0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (3, 0)
    ]
    env = gym.make(ENV_ID, obs_mode=obs_mode, max_episode_steps=MAX_STEPS)
    for episode in episodes:
        assert episode.causal.dtype == np.float32 and episode.causal.shape == (len(episode) + 1, 7)
        assert episode.do == {}
        assert 1 <= len(episode) <= MAX_STEPS
        assert not (episode.terminated[:-1] | episode.truncated[:-1]).any()
        replay(env, episode)
    if obs_mode == "dict":
        image = episodes[0].obs["image"]
        assert image.dtype == np.uint8 and image.shape[1:] == (64, 64, 3)


def test_every_window_holds_the_episodes_values_and_boundaries(campus_episodes):
    steps = expected_timeline(campus_episodes)
    seq_len = 7
    batch = all_windows(campus_episodes, seq_len, stride=1)
    assert batch.shape == (len(steps) - seq_len + 1, seq_len)
    for b in range(batch.shape[0]):
        assert_window_is(batch, b, steps[b : b + seq_len])
    starts = np.cumsum([0] + [len(e) + 1 for e in campus_episodes])[:-1]
    whole = all_windows(campus_episodes, len(steps))  # the whole timeline in one window
    assert np.flatnonzero(whole.is_first[0].numpy()).tolist() == starts.tolist()


def test_no_window_joins_two_episodes_without_is_first(campus_episodes):
    """Every step of every sampled window either continues its episode or is marked is_first."""
    def key(obs):
        return b"".join(np.ascontiguousarray(v).tobytes() for v in (obs.values() if isinstance(obs, dict) else [obs]))

    transitions = {
        (key(obs_at(e.obs, t)), int(e.action[t]), key(obs_at(e.obs, t + 1)))
        for e in campus_episodes
        for t in range(len(e))
    }
    first_obs = {key(obs_at(e.obs, 0)) for e in campus_episodes}
    longest = max(len(e) for e in campus_episodes)
    sampler = SequenceSampler(campus_episodes, seq_len=longest + 5, batch_size=16, seed=3)
    joins = 0
    for _ in range(5):
        batch = sampler.sample()
        obs = batch.obs
        for b, t in itertools.product(range(16), range(sampler.seq_len)):
            here = key({k: v[b, t].numpy() for k, v in obs.items()} if isinstance(obs, dict) else obs[b, t].numpy())
            if batch.is_first[b, t]:
                assert here in first_obs
                assert batch.reward[b, t] == 0 and batch.action[b, t] == 0 and not batch.terminated[b, t]
                joins += t > 0
            elif t > 0:
                before = obs_at(obs, (b, t - 1))
                before = key({k: v.numpy() for k, v in before.items()} if isinstance(before, dict) else before.numpy())
                assert (before, int(batch.action[b, t]), here) in transitions
    assert joins > 0, "windows longer than any episode must cross boundaries"


def test_batch_dtypes_and_shapes(campus_episodes, campus):
    batch = SequenceSampler(campus_episodes, seq_len=5, batch_size=3).sample()
    assert batch.shape == (3, 5)
    if campus[0] == "dict":
        assert batch.obs["image"].dtype == torch.uint8 and batch.obs["image"].shape == (3, 5, 64, 64, 3)
        assert batch.obs["state"].dtype == torch.float32 and batch.obs["state"].shape == (3, 5, 6)
    else:
        assert batch.obs.dtype == torch.float32 and batch.obs.shape == (3, 5, 72)
    assert batch.action.dtype == torch.int64 and batch.action.shape == (3, 5)
    assert batch.reward.dtype == torch.float32 and batch.reward.shape == (3, 5)
    assert batch.terminated.dtype == torch.bool and batch.is_first.dtype == torch.bool
    assert batch.causal.dtype == torch.float32 and batch.causal.shape == (3, 5, 7)


def test_sampler_is_deterministic_under_a_seed(campus_episodes):
    def draws(seed):
        sampler = SequenceSampler(campus_episodes, seq_len=6, batch_size=4, seed=seed)
        return [sampler.sample() for _ in range(3)]

    for a, b in zip(draws(1), draws(1), strict=True):
        for name in ("action", "reward", "terminated", "is_first", "causal"):
            assert torch.equal(getattr(a, name), getattr(b, name))
    assert any(not torch.equal(a.causal, b.causal) for a, b in zip(draws(1), draws(2), strict=True))


def test_sampler_state_resumes_the_same_draws(campus_episodes):
    sampler = SequenceSampler(campus_episodes, seq_len=6, batch_size=4, seed=9)
    sampler.sample()
    state = json.loads(json.dumps(sampler.state_dict()))  # JSON-able, as checkpoints keep it
    expected = [sampler.sample() for _ in range(2)]
    resumed = SequenceSampler(campus_episodes, seq_len=6, batch_size=4, seed=0)
    resumed.load_state_dict(state)
    for a, b in zip(expected, [resumed.sample() for _ in range(2)], strict=True):
        assert torch.equal(a.reward, b.reward) and torch.equal(a.causal, b.causal)
    with pytest.raises(ValueError, match="seq_len 6 \\(saved\\) != 5"):
        SequenceSampler(campus_episodes, seq_len=5, batch_size=4).load_state_dict(state)


def test_sampler_reads_a_dataset_or_an_id(campus, root, monkeypatch, campus_episodes):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    dataset = minari.load_dataset(campus[1])
    for source in (dataset, campus[1]):
        sampler = SequenceSampler(source, seq_len=4, batch_size=2)
        assert sampler.num_episodes == 6
        assert sampler.num_steps == sum(len(e) + 1 for e in campus_episodes)
    assert SequenceSampler(dataset, 4, 2).observation_space == dataset.observation_space


def test_iterate_gives_all_windows_in_batches(campus_episodes):
    whole = all_windows(campus_episodes, 6)
    parts = list(iterate(campus_episodes, 6, batch_size=4))
    assert [p.shape[0] for p in parts[:-1]] == [4] * (len(parts) - 1) and parts[-1].shape[0] <= 4
    assert torch.equal(torch.cat([p.reward for p in parts]), whole.reward)
    assert torch.equal(torch.cat([p.is_first for p in parts]), whole.is_first)
    total = sum(len(e) + 1 for e in campus_episodes)
    assert whole.shape == (total // 6, 6)  # back to back: each step once, the short tail left out


def test_split_episodes(campus_episodes):
    train, heldout = split_episodes(campus_episodes, 0.34, seed=0)
    assert len(heldout) == 2 and len(train) == 4
    ids = [e.id for e in train] + [e.id for e in heldout]
    assert sorted(ids) == [e.id for e in campus_episodes]
    assert [e.id for e in train] == sorted(e.id for e in train)  # original order kept
    assert [e.id for e in split_episodes(campus_episodes, 0.34, seed=0)[1]] == [e.id for e in heldout]
    assert split_episodes(campus_episodes, 0.0)[1] == []


# --- grid coverage -------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_grid_visits_every_allowed_cell_and_no_other(split, tmp_path):
    per_cell = 3  # with 2 envs, one env autoresets inside each cell: do() must last across it
    dataset = collect(coverage="grid", split=split, episodes_per_cell=per_cell, num_envs=2, max_episode_steps=2,
                      env_kwargs={"obs_mode": "state"}, progress=False, data_path=tmp_path)
    episodes = load_episodes(dataset)
    cells = grid_cells(split)
    assert len(episodes) == len(cells) * per_cell
    assert len(cells) == (84 if split == "train" else 28)

    def cell_key(cell):
        return tuple(causal.VARIABLES[name].encode(cell[name]) for name in STATIC)

    seen = {}
    for e in episodes:
        static = e.causal[:, [COLUMN[name] for name in STATIC]]
        assert (static == static[0]).all(), "the context stays fixed through the episode"
        assert tuple(static[0]) == cell_key(e.do), "the recorded intervention is the context the episode had"
        seen[tuple(static[0])] = seen.get(tuple(static[0]), 0) + 1
        heldout = causal.in_heldout(*(static[0, STATIC.index(n)] for n in ("day", "semester", "weather", "gameday")))
        assert bool(heldout) == (split == "heldout")
    assert seen == {cell_key(cell): per_cell for cell in cells}


def test_grid_episodes_replay_under_their_intervention(tmp_path):
    dataset = collect(coverage="grid", split="heldout", episodes_per_cell=2, num_envs=2, max_episode_steps=4,
                      env_kwargs={"obs_mode": "state"}, seed=11, progress=False, data_path=tmp_path)
    env = gym.make(ENV_ID, obs_mode="state", max_episode_steps=4)
    for episode in load_episodes(dataset)[:6]:
        replay(env, episode)


def test_grid_cells_partition_the_grid():
    every = grid_cells("all")
    assert len(every) == 7 * 4 * 2 * 2
    key = [tuple(sorted(c.items())) for c in every]
    assert len(set(key)) == len(key)
    train = {tuple(sorted(c.items())) for c in grid_cells("train")}
    heldout = {tuple(sorted(c.items())) for c in grid_cells("heldout")}
    assert not train & heldout and train | heldout == set(key)
    assert all(c["gameday"] and c["weather"] in ("rainy", "snowy") for c in grid_cells("heldout"))


# --- foreign envs and policies -----------------------------------------------------------


def test_cartpole_collection_round_trips_without_causal(tmp_path):
    dataset = collect("CartPole-v1", num_episodes=5, num_envs=2, max_episode_steps=MAX_STEPS, seed=3,
                      progress=False, data_path=tmp_path)
    assert dataset.id == "cartpole/random-natural-v0"
    episodes = load_episodes(dataset)
    assert len(episodes) == 5 and all(e.causal is None and e.do == {} for e in episodes)
    env = gym.make("CartPole-v1", max_episode_steps=MAX_STEPS)
    for episode in episodes:
        replay(env, episode)
    batch = SequenceSampler(episodes, seq_len=8, batch_size=4).sample()
    assert batch.causal is None
    assert batch.obs.dtype == torch.float32 and batch.obs.shape == (4, 8, 4)
    assert batch.action.dtype == torch.int64 and batch.action.shape == (4, 8)


def upright(obs):
    """A deterministic CartPole policy: push towards the pole's lean."""
    return (obs[:, 2] > 0).astype(np.int64)


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.DISABLED])
def test_every_autoreset_mode_records_the_same_episodes(mode, tmp_path):
    def run(name, **vector):
        kwargs = {"vectorization_mode": "sync", "vector_kwargs": vector}
        dataset = collect("CartPole-v1", num_episodes=5, num_envs=2, policy=upright, max_episode_steps=30,
                          dataset_id=f"cartpole/{name}-v0", env_kwargs=kwargs, progress=False, data_path=tmp_path)
        return load_episodes(dataset)

    reference = run("next-step")
    other = run(mode.name.lower().replace("_", "-"), autoreset_mode=mode)
    assert len(reference) == len(other) == 5
    for a, b in zip(reference, other, strict=True):
        assert a.metadata == b.metadata
        for name in ("obs", "action", "reward", "terminated", "truncated"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def wander(obs):
    """A deterministic CampusNav policy that still moves about."""
    return (np.abs(obs[:, :6]).sum(axis=1) * 1000).astype(np.int64) % 5


def test_single_env_causal_info_gives_the_native_codes(tmp_path):
    """Gymnasium's sync vector env (decoded causal values, same-step autoreset) records what the native env does."""
    def run(name, **kwargs):
        dataset = collect(ENV_ID, num_episodes=4, num_envs=2, policy=wander, max_episode_steps=6, seed=5,
                          dataset_id=f"campusnav/{name}-v0", env_kwargs={"obs_mode": "state", **kwargs},
                          progress=False, data_path=tmp_path)
        return load_episodes(dataset)

    native = run("native")
    sync = run("sync", vectorization_mode="sync", vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})
    for a, b in zip(native, sync, strict=True):
        for name in ("obs", "action", "reward", "terminated", "truncated", "causal"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_box_actions_are_float_vectors(tmp_path):
    dataset = collect("Pendulum-v1", num_episodes=3, num_envs=3, max_episode_steps=10, progress=False,
                      data_path=tmp_path)
    episodes = load_episodes(dataset)
    assert episodes[0].action.shape == (10, 1) and episodes[0].action.dtype == np.float32
    batch = all_windows(episodes, 11)
    assert batch.action.dtype == torch.float32 and batch.action.shape == (3, 11, 1)
    np.testing.assert_array_equal(batch.action[0, 1:].numpy(), episodes[0].action)
    assert (batch.action[:, 0] == 0).all() and batch.is_first[:, 0].all() and not batch.is_first[:, 1:].any()


def test_a_given_policy_drives_the_envs(tmp_path):
    calls = []

    def go_right(obs):
        calls.append(obs.shape)
        return torch.full((obs.shape[0],), 3)  # a tensor is fine too

    dataset = collect(ENV_ID, num_episodes=2, num_envs=2, policy=go_right, max_episode_steps=5,
                      env_kwargs={"obs_mode": "state"}, progress=False, data_path=tmp_path)
    assert dataset.id == "campusnav/policy-natural-v0"
    assert calls[0] == (2, 72)
    assert all((e.action == 3).all() for e in load_episodes(dataset))


def test_natural_train_split_avoids_heldout_contexts(tmp_path):
    dataset = collect(ENV_ID, num_episodes=12, num_envs=4, split="train", max_episode_steps=2,
                      env_kwargs={"obs_mode": "state"}, progress=False, data_path=tmp_path)
    assert dataset.storage.metadata["split"] == "train"
    for e in load_episodes(dataset):
        code = {name: e.causal[0, COLUMN[name]] for name in STATIC}
        assert not causal.in_heldout(code["day"], code["semester"], code["weather"], code["gameday"])


def test_progress_bar_counts_episodes(tmp_path, capsys):
    collect(ENV_ID, num_episodes=3, num_envs=2, max_episode_steps=3, env_kwargs={"obs_mode": "state"},
            data_path=tmp_path)
    assert "3/3" in capsys.readouterr().err
    collect(ENV_ID, num_episodes=3, num_envs=2, max_episode_steps=3, env_kwargs={"obs_mode": "state"},
            dataset_id="campusnav/quiet-v0", progress=False, data_path=tmp_path)
    assert capsys.readouterr().err == ""


# --- clear errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"coverage": "everywhere", "num_episodes": 2}, ValueError, "coverage must be one of"),
        ({"env_id": "CartPole-v1", "coverage": "grid"}, ValueError, "no causal variables"),
        ({"env_id": "CartPole-v1", "num_episodes": 2, "split": "train"}, ValueError, "has none"),
        ({}, ValueError, "needs num_episodes"),
        ({"num_episodes": 0}, ValueError, "num_episodes must be a positive integer"),
        ({"num_episodes": 2, "num_envs": 0}, ValueError, "num_envs must be a positive integer"),
        ({"coverage": "grid", "episodes_per_cell": 0}, ValueError, "episodes_per_cell must be"),
        ({"coverage": "grid", "num_episodes": 5}, ValueError, "leave it out"),
        ({"num_episodes": 2, "split": "test"}, ValueError, "split must be one of"),
        ({"num_episodes": 2, "dataset_id": "no version"}, ValueError, "Malformed dataset ID"),
        ({"num_episodes": 2, "env_kwargs": {"split": "train"}}, ValueError, "not in env_kwargs"),
        ({"num_episodes": 2, "policy": "random"}, TypeError, "policy must be callable"),
        ({"num_episodes": 2, "policy": lambda obs: np.zeros(5, np.int64)}, ValueError, r"shaped \(2,\)"),
        ({"coverage": "grid", "env_kwargs": {"obs_mode": "state", "vectorization_mode": "sync"}}, ValueError,
         "native vector env"),
    ],
)
def test_collect_rejects_bad_arguments(kwargs, error, match, tmp_path):
    kwargs = {"num_envs": 2, "max_episode_steps": 2, "progress": False, "data_path": tmp_path, **kwargs}
    kwargs.setdefault("env_kwargs", {"obs_mode": "state"})
    env_id = kwargs.pop("env_id", ENV_ID)
    if env_id != ENV_ID:
        kwargs.pop("env_kwargs")
    with pytest.raises(error, match=match):
        collect(env_id, **kwargs)


def test_collect_never_overwrites_a_dataset(tmp_path):
    args = {"num_episodes": 1, "max_episode_steps": 2, "env_kwargs": {"obs_mode": "state"}, "progress": False,
            "data_path": tmp_path, "dataset_id": "campusnav/once-v0"}
    collect(ENV_ID, **args)
    with pytest.raises(FileExistsError, match="already exists"):
        collect(ENV_ID, **args)


def test_a_dataset_appears_only_once_complete(tmp_path, monkeypatch):
    import model_zoo.data.collection as data

    real = minari.create_dataset_from_buffers

    def write_then_fail(*args, **kwargs):
        real(*args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(data.minari, "create_dataset_from_buffers", write_then_fail)
    args = {"num_episodes": 2, "max_episode_steps": 2, "env_kwargs": {"obs_mode": "state"}, "progress": False,
            "data_path": tmp_path, "dataset_id": "campusnav/atomic-v0"}
    with pytest.raises(OSError, match="disk full"):
        collect(ENV_ID, **args)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(data.minari, "create_dataset_from_buffers", real)
    collect(ENV_ID, **args)
    assert [p.name for p in tmp_path.iterdir()] == ["campusnav"]
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    assert list(minari.list_local_datasets()) == ["campusnav/atomic-v0"]


def test_windows_reject_bad_arguments(campus_episodes):
    total = sum(len(e) + 1 for e in campus_episodes)
    with pytest.raises(ValueError, match="longer than the whole data"):
        SequenceSampler(campus_episodes, seq_len=total + 1, batch_size=2)
    for bad in ({"seq_len": 0, "batch_size": 2}, {"seq_len": 4, "batch_size": 0}):
        with pytest.raises(ValueError, match="must be a positive integer"):
            SequenceSampler(campus_episodes, **bad)
    with pytest.raises(ValueError, match="must be a positive integer"):
        iterate(campus_episodes, 4, batch_size=2, stride=0)
    with pytest.raises(ValueError, match="no episodes"):
        SequenceSampler([], seq_len=2, batch_size=2)
    with pytest.raises(ValueError, match=r"holdout_fraction must be in \[0, 1\)"):
        split_episodes(campus_episodes, 1.0)
    no_causal = Episode(np.zeros((3, 72), np.float32), np.zeros(2, np.int64), np.zeros(2), np.zeros(2, bool),
                        np.zeros(2, bool))
    with pytest.raises(ValueError, match="some episodes have causal values"):
        SequenceSampler([campus_episodes[0], no_causal], seq_len=2, batch_size=2)
    short = Episode(np.zeros((2, 72), np.float32), np.zeros(2, np.int64), np.zeros(2), np.zeros(2, bool),
                    np.zeros(2, bool))
    with pytest.raises(ValueError, match="needs T\\+1 observations"):
        SequenceSampler([short], seq_len=2, batch_size=2)


# --- checksums and staging litter ------------------------------------------------------------


def _tiny_collect(root, dataset_id="campusnav/tiny-v0"):
    return collect(ENV_ID, num_episodes=2, num_envs=2, max_episode_steps=3, env_kwargs={"obs_mode": "state"},
                   progress=False, data_path=root, dataset_id=dataset_id)


@pytest.mark.parametrize("name", ["main_data.hdf5", "metadata.json"])
def test_a_damaged_dataset_file_is_refused(tmp_path, name):
    _tiny_collect(tmp_path)
    path = tmp_path / "campusnav" / "tiny-v0" / "data" / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    for load in (load_dataset, load_episodes):
        with pytest.raises(DatasetError, match=f"data/{name}: content does not match the SHA-256"):
            load("campusnav/tiny-v0", data_path=tmp_path)


def test_a_dataset_without_checksums_loads_and_a_missing_file_is_refused(tmp_path):
    _tiny_collect(tmp_path)
    folder = tmp_path / "campusnav" / "tiny-v0"
    sums = json.loads((folder / CHECKSUMS_FILE).read_text())
    assert set(sums["files"]) == {"data/main_data.hdf5", "data/metadata.json"}
    sums["files"]["data/extra.bin"] = "0" * 64
    (folder / CHECKSUMS_FILE).write_text(json.dumps(sums))
    with pytest.raises(DatasetError, match="data/extra.bin: file is missing"):
        load_episodes("campusnav/tiny-v0", data_path=tmp_path)
    (folder / CHECKSUMS_FILE).unlink()  # a dataset written by Minari itself: nothing to check against
    assert len(load_episodes("campusnav/tiny-v0", data_path=tmp_path)) == 2


def test_collect_removes_the_staging_litter_of_dead_collects_only(tmp_path):
    import fcntl
    import os
    import time

    def staging(name, lock):
        (tmp_path / name).mkdir()
        (tmp_path / name / "big.hdf5").write_bytes(b"x" * 100)
        if lock:
            (tmp_path / f"{name}.lock").touch()
        return tmp_path / name

    dead = staging(".collect-dead", lock=True)  # its lock file is unlocked: the writer was killed
    live = staging(".collect-live", lock=True)
    held = open(tmp_path / ".collect-live.lock", "rb")
    fcntl.flock(held, fcntl.LOCK_EX)  # a collect still writing
    old = staging(".collect-old", lock=False)  # from a version without lock files, written long ago
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    fresh = staging(".collect-fresh", lock=False)  # no lock file, but recent: may be a writer's first instant
    try:
        _tiny_collect(tmp_path)
        assert not dead.exists() and not (tmp_path / ".collect-dead.lock").exists()
        assert not old.exists()
        assert (live / "big.hdf5").exists() and (fresh / "big.hdf5").exists()
    finally:
        held.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".collect-fresh", ".collect-live", ".collect-live.lock",
                                                          "campusnav"]
