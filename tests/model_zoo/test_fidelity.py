"""evaluate_fidelity: dreams scored against forks of reality, on a toy walk with a known answer and on CampusNav."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.vector.utils import batch_space

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from model_zoo.base import Imagined, WorldModel
from model_zoo.fidelity import compare_samples, evaluate_fidelity

SCALE = 100.0  # the walk's observation is its position / SCALE


class CoinWalk(gym.vector.VectorEnv):
    """N walkers on the integers; each step moves each one +1 or -1 by a fair coin, whatever the action."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int):
        self.num_envs = num_envs
        self.single_observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.single_action_space = spaces.Discrete(2)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.x = np.zeros(num_envs, dtype=np.int64)
        self.rngs = [np.random.default_rng(i) for i in range(num_envs)]

    def reset(self, *, seed=None, options=None):
        self.rngs = [np.random.default_rng(None if seed is None else seed + i) for i in range(self.num_envs)]
        self.x = np.array([rng.integers(-20, 20) for rng in self.rngs])
        return self._obs(), {}

    def step(self, actions):
        self.x = self.x + np.array([2 * int(rng.integers(0, 2)) - 1 for rng in self.rngs])
        zeros = np.zeros(self.num_envs, dtype=bool)
        return self._obs(), np.zeros(self.num_envs), zeros, zeros.copy(), {}

    def fork(self, env_ids, noise_seeds):
        twin = CoinWalk(len(env_ids))
        twin.x = self.x[np.asarray(env_ids)]
        twin.rngs = [np.random.default_rng(int(s)) for s in noise_seeds]
        return twin

    def _obs(self):
        return (self.x / SCALE).astype(np.float32)[:, None]


def walk_readout(obs):
    position = np.rint(np.asarray(obs) * SCALE).astype(np.int64).reshape(-1, 1)
    return position, position


@dataclass(frozen=True)
class WalkConfig:
    sample: bool = True  # False: predict the mean step (stay put)


class WalkModel(WorldModel):
    """A perfect sampler of the walk (``sample=True``) or the model of its mean step (``sample=False``)."""

    Config = WalkConfig

    def __init__(self, observation_space, action_space, config=WalkConfig()):
        super().__init__(observation_space, action_space, config)
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # a device to live on

    def initial_state(self, batch_size):
        return {"x": torch.zeros(batch_size, 1)}

    def observe(self, state, action, obs, is_first):
        return {"x": torch.as_tensor(obs).float() * SCALE}

    def imagine(self, state, action, do=None, generator=None):
        x = state["x"]
        if self.config.sample:
            coin = torch.randint(0, 2, x.shape, generator=generator)
            x = x + 2 * coin.float() - 1
        b = x.shape[0]
        return Imagined({"x": x}, torch.zeros(b), torch.zeros(b, dtype=torch.bool))

    def decode(self, state):
        return state["x"] / SCALE

    def features(self, state):
        return state["x"]


def walk_fidelity(sample: bool, **kwargs):
    model = WalkModel(CoinWalk(1).single_observation_space, spaces.Discrete(2), WalkConfig(sample=sample))
    kwargs.setdefault("semantic", walk_readout)
    return evaluate_fidelity(model, CoinWalk, starts=6, forks=64, horizons=(1, 2, 16), warmup=3, **kwargs)


def test_the_model_of_the_mean_step_scores_worse_than_a_sampler_in_the_right_proportions():
    sampler, mean = walk_fidelity(sample=True), walk_fidelity(sample=False)
    # one step: reality is x-1 or x+1 (64 forks reach both); staying at x is never one of them
    assert mean.precision[1] == 0.0 and mean.recall[1] == 0.0 and mean.position_tv[1] == 1.0
    assert sampler.precision[1] == 1.0 and sampler.recall[1] == 1.0 and sampler.position_tv[1] < 0.25
    assert sampler.real_support[1] == 2.0
    for k in (2, 16):
        # staying put is a possible outcome after an even number of steps, so precision does not tell;
        # the mean model misses what else reality reaches and puts all its mass on one cell
        assert mean.precision[k] == 1.0
        assert sampler.recall[k] > mean.recall[k] + 0.3
        assert sampler.position_tv[k] + 0.3 < mean.position_tv[k]


def test_the_same_seed_gives_the_same_scores_and_the_model_keeps_its_mode():
    model = WalkModel(CoinWalk(1).single_observation_space, spaces.Discrete(2))
    model.train()
    first = evaluate_fidelity(model, CoinWalk, semantic=walk_readout, starts=3, forks=8, seed=4)
    assert model.training
    again = evaluate_fidelity(model, CoinWalk, semantic=walk_readout, starts=3, forks=8, seed=4)
    assert first.as_dict() == again.as_dict()
    assert first.as_dict().keys() >= {"precision@1", "recall@4", "position_tv@16", "real_support@16"}


def test_compare_samples_counts_matches_and_distances():
    real = (np.array([[0], [0], [1], [2]]), np.array([[0, 5], [0, 5], [1, 5], [2, 6]]))
    imagined = (np.array([[0], [1], [1], [3]]), np.array([[0, 5], [1, 5], [1, 7], [3, 6]]))
    scores = compare_samples(real, imagined)
    assert scores["precision"] == 0.5  # (0, 5) and (1, 5) are real; (1, 7) and (3, 6) are not
    assert scores["recall"] == 0.75  # both (0, 5) and (1, 5) are dreamt, (2, 6) is not
    assert scores["real_support"] == 3
    assert scores["position_tv"] == pytest.approx(0.5 * (0.25 + 0.25 + 0.25 + 0.25))


@pytest.mark.parametrize("kwargs, match", [
    ({"starts": 0}, "starts"), ({"forks": 1.5}, "forks"), ({"horizons": ()}, "horizons"),
    ({"horizons": (0, 4)}, "horizons"), ({"warmup": -1}, "warmup"),
])
def test_bad_arguments_are_refused(kwargs, match):
    model = WalkModel(CoinWalk(1).single_observation_space, spaces.Discrete(2))
    with pytest.raises(ValueError, match=match):
        evaluate_fidelity(model, CoinWalk, semantic=walk_readout, **kwargs)


def test_an_env_that_cannot_fork_is_refused():
    model = WalkModel(CoinWalk(1).single_observation_space, spaces.Discrete(2))

    def unforkable(n):
        envs = CoinWalk(n)
        envs.fork = None
        return envs

    with pytest.raises(TypeError, match="fork"):
        evaluate_fidelity(model, unforkable, semantic=walk_readout)
    with pytest.raises(ValueError, match="semantic_state"):
        evaluate_fidelity(model, CoinWalk)


def test_campusnav_reads_its_own_semantics_and_a_copy_of_reality_scores_perfectly():
    """A 'model' that is the real env's fork with the same noise would be perfect; the real forks
    compared with themselves through the env's readout are: precision and recall 1, distance 0."""
    from campus_env.semantics import semantic_state

    envs = gym.make_vec("CampusNav-v0", num_envs=2, obs_mode="state")
    envs.reset(seed=0, options={"do": {"weather": "snowy", "gameday": True}})
    forks = envs.fork(0, list(range(32)))
    for _ in range(6):
        obs = forks.step(np.full(32, 1))[0]
    readout = semantic_state(obs)
    scores = compare_samples(readout, readout)
    assert scores == {"precision": 1.0, "recall": 1.0, "real_support": scores["real_support"], "position_tv": 0.0}


def test_campusnav_fidelity_of_a_small_model_runs_from_the_env_id():
    env = gym.make("CampusNav-v0", obs_mode="state")
    torch.manual_seed(0)
    model = model_zoo.make("mlp", env.observation_space, env.action_space, hidden=16)
    result = evaluate_fidelity(model, "CampusNav-v0", env_kwargs={"obs_mode": "state"}, starts=2, forks=4,
                               horizons=(1, 3))
    assert result.starts == 2 and result.horizons == (1, 3)
    for name in ("precision", "recall", "position_tv"):
        assert all(0.0 <= v <= 1.0 for v in getattr(result, name).values())
    assert result.real_support[1] >= 1


def parity_readout(obs):
    """The walk's readout with a confidence: sure of even positions, unsure of odd ones."""
    position, state = walk_readout(obs)
    return position, state, np.where(position[:, 0] % 2 == 0, 1.0, 0.5)


def test_a_readout_with_confidence_gives_the_valid_frame_rates():
    sampler, mean = (walk_fidelity(sample=s, semantic=parity_readout) for s in (True, False))
    # one step flips every real position's parity; the sampler's too, the mean model's never
    assert sampler.valid_frame_rate[1] == sampler.real_valid_rate[1]
    assert mean.valid_frame_rate[1] + mean.real_valid_rate[1] == 1.0
    assert 0.0 < mean.valid_frame_rate[1] < 1.0  # the starts have both parities
    assert {"valid_frame_rate@16", "real_valid_rate@16"} <= set(mean.as_dict())
    assert walk_fidelity(sample=True).valid_frame_rate is None  # no confidence, no rate


def test_pixel_dreams_are_read_through_a_probe():
    from model_zoo.probe import train_probe

    probe = train_probe(frames=120, heldout_frames=60, steps=2, batch_size=16, num_envs=2, stride=2, seed=0).probe
    env = gym.make("CampusNav-v0", obs_mode="pixels")
    torch.manual_seed(0)
    model = model_zoo.make("vae_mdnrnn", env.observation_space, env.action_space)
    result = evaluate_fidelity(model, "CampusNav-v0", env_kwargs={"obs_mode": "pixels"}, starts=2, forks=3,
                               horizons=(1, 2), semantic=probe.readout)
    assert set(result.valid_frame_rate) == {1, 2} and all(0 <= v <= 1 for v in result.real_valid_rate.values())
    assert all(0.0 <= v <= 1.0 for v in result.position_tv.values())
