"""The tiny world model behind the checkpoint tests and their helpers (the fixtures are in conftest.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from model_zoo.base import Batch, Imagined, WorldModel
from model_zoo.checkpoint import CONFIG_FILE

TINY = "_test_tiny_checkpoint"
OBS_SPACE = spaces.Dict(
    [
        ("state", spaces.Box(-1.0, 1.0, (3,), np.float32)),
        ("image", spaces.Box(0, 255, (8, 8, 3), np.uint8)),
        ("mode", spaces.Discrete(4, start=1)),
    ]
)  # a list of pairs keeps this (unsorted) key order, which save -> load must keep too
ACTION_SPACE = spaces.Discrete(3)


@dataclass(frozen=True)
class TinyConfig:
    hidden: int = 8
    pool: tuple[int, int] = (2, 2)  # a tuple field: JSON lists must come back as tuples
    tied: bool = False  # share one Linear under two names (tied weights)


class TinyModel(WorldModel):
    """A few Linear layers behind the whole interface, on a Dict observation with an image."""

    Config = TinyConfig

    def __init__(self, observation_space, action_space, config: TinyConfig):
        super().__init__(observation_space, action_space, config)
        ph, pw = config.pool
        image_dim = sum(shape[-1] * ph * pw for shape in self.spec.images.values())
        self.enc = nn.Linear(image_dim + self.spec.vector_dim, config.hidden)
        self.trans = nn.Linear(config.hidden + self.spec.action_dim, config.hidden)
        self.dec_image = nn.Linear(config.hidden, image_dim)
        self.dec_vector = nn.Linear(config.hidden, self.spec.vector_dim)
        self.heads = nn.Linear(config.hidden, 2)
        if config.tied:
            self.heads_alias = self.heads
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))

    def _embed(self, obs):
        images = [F.adaptive_avg_pool2d(self.spec.image(obs, k), self.config.pool).flatten(1)
                  for k in self.spec.image_keys]
        return self.enc(torch.cat(images + [self.spec.vector(obs)], dim=-1))

    def initial_state(self, batch_size):
        return {"h": torch.zeros(batch_size, self.config.hidden)}

    def observe(self, state, action, obs, is_first):
        h = torch.where(is_first[:, None], torch.zeros_like(state["h"]), state["h"])
        a = self.spec.encode_action(action)
        return {"h": torch.tanh(self._embed(obs) + self.trans(torch.cat([h, a], -1)))}

    def imagine(self, state, action, do=None, generator=None):
        self.check_do(do)
        noise = torch.randn(state["h"].shape, generator=generator) * 0.1
        h = torch.tanh(self.trans(torch.cat([state["h"], self.spec.encode_action(action)], -1)) + noise)
        reward, logit = self.heads(h).unbind(-1)
        return Imagined({"h": h}, reward, logit > 0)

    def decode(self, state):
        h = state["h"]
        ph, pw = self.config.pool
        images, start = {}, 0
        flat = torch.sigmoid(self.dec_image(h))
        for key, shape in self.spec.images.items():
            n = shape[-1] * ph * pw
            images[key] = F.interpolate(flat[:, start : start + n].reshape(-1, shape[-1], ph, pw), size=(64, 64))
            start += n
        return self.spec.assemble(images, self.dec_vector(h))

    def features(self, state):
        return state["h"]

    def loss(self, batch):
        state = self.initial_state(batch.shape[0])
        total = 0.0
        for t in range(batch.shape[1]):
            step = batch.at(t)
            state = self.observe(state, step.action, step.obs, step.is_first)
            total = total + (self.heads(state["h"])[:, 0] - step.reward).square().mean()
        self.updates += 1
        return total / batch.shape[1], {"reward_mse": float(total.detach()) / batch.shape[1]}


def batch_of(obs_space, action_space, b=3, t=4, seed=0) -> Batch:
    obs_space.seed(seed)
    action_space.seed(seed)
    samples = [[obs_space.sample() for _ in range(t)] for _ in range(b)]

    def stack(get):
        return torch.as_tensor(np.array([[get(s) for s in row] for row in samples]))

    if isinstance(obs_space, spaces.Dict):
        obs = {k: stack(lambda s, k=k: s[k]) for k in obs_space.spaces}
    else:
        obs = stack(lambda s: s)
    action = torch.as_tensor(np.array([[action_space.sample() for _ in range(t)] for _ in range(b)]))
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[:, 0] = True
    return Batch(obs=obs, action=action, reward=torch.randn(b, t, generator=torch.Generator().manual_seed(seed)),
                 terminated=torch.zeros(b, t, dtype=torch.bool), is_first=is_first)


def outputs_of(model, batch: Batch) -> list:
    """Every interface method's output on ``batch``, seeded where a method may draw."""
    out = []
    torch.manual_seed(0)
    loss, _ = model.loss(batch)
    out.append(loss)
    with torch.no_grad():
        state = model.initial_state(batch.shape[0])
        out.append(state)
        for t in range(batch.shape[1]):
            step = batch.at(t)
            state = model.observe(state, step.action, step.obs, step.is_first)
        out.append(state)
        imagined = model.imagine(state, batch.action[:, -1], generator=torch.Generator().manual_seed(1))
        out += [imagined.state, imagined.reward, imagined.terminated]
        out.append(model.decode(imagined.state))
        out.append(model.features(imagined.state))
    return out


def assert_same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, tuple | list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        assert torch.equal(a, b), (a, b)


def assert_round_trip(model, loaded, batch):
    assert type(loaded) is type(model)
    assert loaded.model_id == model.model_id
    assert loaded.config == model.config
    assert loaded.observation_space == model.observation_space
    assert loaded.action_space == model.action_space
    if isinstance(model.observation_space, spaces.Dict):
        assert list(loaded.observation_space.spaces) == list(model.observation_space.spaces)
    state, loaded_state = model.state_dict(), loaded.state_dict()
    assert state.keys() == loaded_state.keys()
    for name in state:
        assert state[name].dtype == loaded_state[name].dtype, name
        assert torch.equal(state[name], loaded_state[name]), name
    assert_same(outputs_of(model, batch), outputs_of(loaded, batch))


def edit_config(directory: Path, **changes) -> None:
    path = directory / CONFIG_FILE
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if isinstance(value, dict):
            config[key].update(value)
        else:
            config[key] = value
    path.write_text(json.dumps(config))
