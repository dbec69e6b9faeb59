"""Training: the loss goes down, metrics and checkpoints are written, and a killed run resumes exactly."""

from __future__ import annotations

import csv
import dataclasses
import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import nn

import model_zoo
from model_zoo import registry
from model_zoo.base import Batch, Imagined, WorldModel
from model_zoo.checkpoint import CheckpointError
from model_zoo.data import Episode, SequenceSampler, all_windows
from model_zoo.training import fit

TINY = "_test_tiny_training"
OBS_SPACE = spaces.Box(-10.0, 10.0, (3,), np.float32)
ACTION_SPACE = spaces.Discrete(2)
A = torch.tensor([[0.9, 0.1, 0.0], [0.0, 0.8, 0.2], [0.1, 0.0, 0.7]])
B = torch.tensor([[0.5, -0.5, 0.0], [0.0, 0.3, -0.3]])


@dataclass(frozen=True)
class TinyConfig:
    hidden: int = 16
    noise: float = 0.01  # input noise in the loss: training draws from torch's global RNG


class TinyModel(WorldModel):
    """A one-hidden-layer next-observation predictor for vector observations."""

    Config = TinyConfig

    def __init__(self, observation_space, action_space, config: TinyConfig):
        super().__init__(observation_space, action_space, config)
        dim = self.spec.vector_dim + self.spec.action_dim
        self.net = nn.Sequential(nn.Linear(dim, config.hidden), nn.Tanh(), nn.Linear(config.hidden, 4))

    def _step(self, obs, action):
        out = self.net(torch.cat([obs, self.spec.encode_action(action)], -1))
        return out[..., :3], out[..., 3]

    def loss(self, batch):
        obs = batch.obs + self.config.noise * torch.randn_like(batch.obs)
        pred, reward = self._step(obs[:, :-1], batch.action[:, 1:])
        valid = ~batch.is_first[:, 1:]  # no prediction across episode boundaries
        obs_loss = ((pred - batch.obs[:, 1:]).square().mean(-1) * valid).sum() / valid.sum().clamp_min(1)
        reward_loss = ((reward - batch.reward[:, 1:]).square() * valid).sum() / valid.sum().clamp_min(1)
        return obs_loss + reward_loss, {"obs_mse": float(obs_loss.detach()), "reward_mse": float(reward_loss.detach())}

    def initial_state(self, batch_size):
        return {"obs": torch.zeros(batch_size, 3)}

    def observe(self, state, action, obs, is_first):
        return {"obs": obs.float()}

    def imagine(self, state, action, do=None, generator=None):
        obs, reward = self._step(state["obs"], action)
        return Imagined({"obs": obs}, reward, torch.zeros_like(reward, dtype=torch.bool))

    def decode(self, state):
        return state["obs"]

    def features(self, state):
        return state["obs"]


def _episodes(n=6, length=20, seed=0) -> list[Episode]:
    """Episodes of the linear system obs' = obs A + B[action], reward = obs'[0]."""
    rng = np.random.default_rng(seed)
    episodes = []
    for i in range(n):
        obs = [rng.normal(size=3).astype(np.float32)]
        actions = rng.integers(0, 2, size=length)
        for a in actions:
            obs.append((torch.from_numpy(obs[-1]) @ A + B[a]).numpy())
        obs = np.stack(obs)
        terminated = np.zeros(length, bool)
        terminated[-1] = i % 2 == 0
        episodes.append(Episode(obs=obs, action=actions, reward=obs[1:, 0].copy(), terminated=terminated,
                                truncated=~terminated & (np.arange(length) == length - 1), id=i))
    return episodes


class StatefulSampler:
    """Draws rows of a pool of windows with its own numpy generator; has ``state_dict`` / ``load_state_dict``,
    the contract ``fit`` checkpoints."""

    def __init__(self, episodes, seq_len=8, batch_size=4, seed=0):
        self.pool = all_windows(episodes, seq_len, stride=1)
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.draws = 0

    def sample(self) -> Batch:
        self.draws += 1
        rows = torch.from_numpy(self.rng.integers(0, self.pool.shape[0], size=self.batch_size))
        return Batch(obs=self.pool.obs[rows], action=self.pool.action[rows], reward=self.pool.reward[rows],
                     terminated=self.pool.terminated[rows], is_first=self.pool.is_first[rows])

    def state_dict(self):
        return {"rng": self.rng.bit_generator.state, "draws": self.draws, "array": np.arange(3)}

    def load_state_dict(self, state):
        assert isinstance(state["array"], np.ndarray) and state["array"].dtype == np.arange(3).dtype
        self.rng.bit_generator.state = state["rng"]
        self.draws = state["draws"]


@pytest.fixture
def tiny_id(register_model):
    """Registers TinyModel for one test; the registry is put back afterwards."""
    return register_model(TINY, f"{__name__}:TinyModel")


@pytest.fixture(scope="module")
def episodes():
    return _episodes()


def _model(model_id, seed=0, **overrides):
    torch.manual_seed(seed)
    return model_zoo.make(model_id, OBS_SPACE, ACTION_SPACE, **overrides)


def _read_csv(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, [{k: float(v) for k, v in row.items()} for row in reader]


# --- training ------------------------------------------------------------------------


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(tiny_id, episodes):
    model = _model(tiny_id, noise=0.0)
    batch = SequenceSampler(episodes, 8, 16, seed=1).sample()
    before = float(model.loss(batch)[0].detach())
    history = fit(model, batch, steps=40, lr=1e-2, log_every=10, progress=False)
    after = float(model.loss(batch)[0].detach())
    assert after < 0.5 * before
    assert [row["step"] for row in history] == [10, 20, 30, 40]
    assert history[-1]["loss"] < history[0]["loss"]


def test_fit_builds_a_sampler_from_episodes(tiny_id, episodes):
    history = fit(_model(tiny_id), episodes, steps=3, batch_size=2, seq_len=5, log_every=1, progress=False)
    assert len(history) == 3 and all(np.isfinite(row["loss"]) for row in history)


def test_fit_writes_metrics_csv_and_checkpoints(tiny_id, episodes, tmp_path):
    model = _model(tiny_id)
    saved_steps = []

    def callback(step, metrics):
        assert {"loss", "obs_mse", "reward_mse", "grad_norm"} <= metrics.keys()
        saved_steps.append(json.loads((tmp_path / "checkpoint" / "trainer.json").read_text())["step"]
                           if (tmp_path / "checkpoint").exists() else None)

    history = fit(model, StatefulSampler(episodes), steps=10, run_dir=tmp_path, checkpoint_every=4, log_every=3,
                  progress=False, callback=callback)
    assert saved_steps == [None, None, None, 4, 4, 4, 4, 8, 8, 10]
    fields, rows = _read_csv(tmp_path / "metrics.csv")
    assert fields[:2] == ["step", "loss"]
    assert {"obs_mse", "reward_mse", "grad_norm", "lr", "steps_per_s"} <= set(fields)
    assert [row["step"] for row in rows] == [3, 6, 9, 10]
    assert [row["loss"] for row in rows] == pytest.approx([row["loss"] for row in history])
    checkpoint = tmp_path / "checkpoint"
    assert sorted(p.name for p in checkpoint.iterdir()) == [
        "config.json", "model.safetensors", "optimizer.safetensors", "trainer.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint", "metrics.csv"]  # no temporary leftovers
    loaded = model_zoo.load(checkpoint)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)


def test_progress_bar_shows_the_loss(tiny_id, episodes, capsys):
    fit(_model(tiny_id), StatefulSampler(episodes), steps=4, log_every=2, progress=True)
    assert "loss=" in capsys.readouterr().err


class Killed(Exception):
    pass


def _kill_at(step_to_die):
    def callback(step, metrics):
        if step == step_to_die:
            raise Killed(f"killed at step {step}")

    return callback


@pytest.mark.parametrize("sampler", ["state_dict", "SequenceSampler"])
def test_resume_after_a_kill_reaches_the_same_parameters(tiny_id, episodes, tmp_path, sampler):
    if sampler == "SequenceSampler" and not hasattr(SequenceSampler, "state_dict"):
        pytest.skip("model_zoo.data.SequenceSampler has no state_dict() / load_state_dict() yet")

    def make_sampler():
        if sampler == "state_dict":
            return StatefulSampler(episodes, seed=3)
        return SequenceSampler(episodes, 8, 4, seed=3)

    kwargs = dict(steps=13, checkpoint_every=4, log_every=3, lr=1e-2, seed=5, progress=False)
    reference = _model(tiny_id)
    fit(reference, make_sampler(), run_dir=tmp_path / "whole", **kwargs)

    with pytest.raises(Killed):
        fit(_model(tiny_id), make_sampler(), run_dir=tmp_path / "killed", callback=_kill_at(10), **kwargs)
    assert json.loads((tmp_path / "killed" / "checkpoint" / "trainer.json").read_text())["step"] == 8
    resumed = _model(tiny_id, seed=123)  # other initial weights: they must come from the checkpoint
    history = fit(resumed, make_sampler(), run_dir=tmp_path / "killed", resume=True, **kwargs)

    for name, tensor in reference.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], tensor), name
    _, whole = _read_csv(tmp_path / "whole" / "metrics.csv")
    _, killed = _read_csv(tmp_path / "killed" / "metrics.csv")
    assert [row["step"] for row in killed] == [row["step"] for row in whole] == [3, 6, 9, 12, 13]
    for a, b in zip(whole, killed, strict=True):  # the same losses, even for rows spanning the kill
        assert a["loss"] == b["loss"] and a["grad_norm"] == b["grad_norm"]
    assert [row["step"] for row in history] == [3, 6, 9, 12, 13]


def test_resume_of_a_finished_run_changes_nothing(tiny_id, episodes, tmp_path):
    model = _model(tiny_id)
    fit(model, StatefulSampler(episodes), steps=5, run_dir=tmp_path, progress=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history = fit(model, StatefulSampler(episodes), steps=5, run_dir=tmp_path, progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [row["step"] for row in history] == [5]


def test_resume_false_starts_over(tiny_id, episodes, tmp_path):
    fit(_model(tiny_id), StatefulSampler(episodes), steps=6, log_every=2, run_dir=tmp_path, progress=False)
    history = fit(_model(tiny_id), StatefulSampler(episodes), steps=2, log_every=1, run_dir=tmp_path,
                  resume=False, progress=False)
    assert [row["step"] for row in history] == [1, 2]
    assert [row["step"] for row in _read_csv(tmp_path / "metrics.csv")[1]] == [1, 2]


def test_resume_refuses_a_checkpoint_of_another_model(tiny_id, episodes, tmp_path):
    fit(_model(tiny_id), StatefulSampler(episodes), steps=2, run_dir=tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="use another run_dir or resume=False"):
        fit(_model(tiny_id, hidden=8), StatefulSampler(episodes), steps=4, run_dir=tmp_path, progress=False)


def test_resume_refuses_a_sampler_of_other_shapes(tiny_id, episodes, tmp_path):
    fit(_model(tiny_id), SequenceSampler(episodes, 8, 4), steps=2, run_dir=tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="sampler state does not fit"):
        fit(_model(tiny_id), SequenceSampler(episodes, 8, 5), steps=4, run_dir=tmp_path, progress=False)


def test_resume_survives_a_kill_between_the_checkpoint_renames(tiny_id, episodes, tmp_path):
    model = _model(tiny_id)
    fit(model, StatefulSampler(episodes), steps=4, run_dir=tmp_path, progress=False)
    (tmp_path / "checkpoint").rename(tmp_path / "checkpoint.old")  # the new one was never moved in
    (tmp_path / ".checkpoint-stale").mkdir()  # a half-written new one
    history = fit(_model(tiny_id, seed=9), StatefulSampler(episodes), steps=6, log_every=1, run_dir=tmp_path,
                  progress=False)
    assert [row["step"] for row in history][-2:] == [5, 6]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint", "metrics.csv"]


def test_callback_returning_false_stops_and_checkpoints(tiny_id, episodes, tmp_path):
    history = fit(_model(tiny_id), StatefulSampler(episodes), steps=50, log_every=10, run_dir=tmp_path,
                  progress=False, callback=lambda step, metrics: step < 3)
    assert [row["step"] for row in history] == [3]
    assert json.loads((tmp_path / "checkpoint" / "trainer.json").read_text())["step"] == 3


def test_a_nan_loss_is_a_clear_error(tiny_id, episodes):
    batch = SequenceSampler(episodes, 8, 4).sample()
    batch.obs[0, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="loss is nan at step 1"):
        fit(_model(tiny_id), batch, steps=3, progress=False)


def test_bad_arguments(tiny_id, episodes):
    with pytest.raises(ValueError, match="needs a run_dir"):
        fit(_model(tiny_id), episodes, steps=3, checkpoint_every=1, progress=False)
    with pytest.raises(ValueError, match="log_every"):
        fit(_model(tiny_id), episodes, steps=3, log_every=0, progress=False)


# --- every registered model -------------------------------------------------------

# small sizes, for the config fields a model has
SMALL = {"hidden": 16, "layers": 1, "members": 2, "z_dim": 4, "depth": 4, "vector_hidden": 16, "mixtures": 2}
SPACES = [
    (spaces.Box(-1.0, 1.0, (4,), np.float32), spaces.Discrete(3)),
    (spaces.Dict({"image": spaces.Box(0, 255, (16, 16, 3), np.uint8),
                  "state": spaces.Box(-1.0, 1.0, (2,), np.float32)}), spaces.Box(-1.0, 1.0, (2,), np.float32)),
]


def _random_episodes(obs_space, action_space, n=3, length=8):
    obs_space.seed(0)
    action_space.seed(0)
    episodes = []
    for i in range(n):
        samples = [obs_space.sample() for _ in range(length + 1)]
        obs = ({k: np.stack([s[k] for s in samples]) for k in obs_space.spaces}
               if isinstance(obs_space, spaces.Dict) else np.stack(samples))
        terminated = np.zeros(length, bool)
        terminated[-1] = i == 0
        episodes.append(Episode(obs=obs, action=np.stack([action_space.sample() for _ in range(length)]),
                                reward=np.linspace(0, 1, length, dtype=np.float32), terminated=terminated,
                                truncated=~terminated & (np.arange(length) == length - 1), id=i))
    return episodes


@pytest.mark.parametrize("model_id", model_zoo.list_models())
def test_every_registered_model_resumes_exactly(model_id, tmp_path):
    """No model keeps training state outside its state_dict (or draws from an RNG fit does not restore)."""
    fields = {f.name for f in dataclasses.fields(registry.spec(model_id).load_class().Config)}
    small = {k: v for k, v in SMALL.items() if k in fields}
    tried = 0
    for index, (obs_space, action_space) in enumerate(SPACES):
        try:
            model_zoo.make(model_id, obs_space, action_space, **small)
        except (TypeError, ValueError):
            continue  # not a space this model takes
        tried += 1
        episodes = _random_episodes(obs_space, action_space)

        def run(name, callback=None, seed=0, obs_space=obs_space, action_space=action_space, episodes=episodes):
            torch.manual_seed(seed)
            model = model_zoo.make(model_id, obs_space, action_space, **small)
            fit(model, SequenceSampler(episodes, 4, 2, seed=1), steps=4, checkpoint_every=2, lr=1e-3,
                run_dir=tmp_path / name, progress=False, callback=callback)
            return model

        reference = run(f"whole{index}")
        with pytest.raises(Killed):
            run(f"killed{index}", callback=_kill_at(3))
        resumed = run(f"killed{index}", seed=7)
        for name, tensor in reference.state_dict().items():
            assert torch.equal(resumed.state_dict()[name], tensor), (obs_space, name)
        break  # one space is enough here (test_checkpoint round-trips the others)
    if not tried:
        pytest.skip(f"{model_id} takes none of the spaces tried here")
