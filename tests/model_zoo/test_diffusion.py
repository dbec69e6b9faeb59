"""Diffusion (DIAMOND-style): the frame history, EDM's formulas, the sampler, learning, checkpoints, determinism."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from model_zoo.base import Batch
from model_zoo.models.diffusion import Config, Diffusion, episode_windows
from model_zoo.nets.edm import Preconditioned, karras_sigmas, loss_weight, precondition, sample
from tests.model_zoo.fixtures import IMAGE, OBS_SPACES, VECTOR, adam_steps, random_actions, random_obs

TINY = dict(depth=4, hidden=16, layers=1)
ACTIONS = spaces.Discrete(5)
B = 3


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def make(obs_space=OBS_SPACES["dict"], action_space=ACTIONS, **config) -> Diffusion:
    torch.manual_seed(0)
    return model_zoo.make("diffusion", obs_space, action_space, **{**TINY, **config})


def filtered(model, steps: int = 2, seed: int = 0):
    """A state after ``steps`` observed random frames (the first starts an episode), and the last frame."""
    rng = np.random.default_rng(seed)
    state = model.initial_state(B)
    for i in range(steps):
        obs = random_obs(model.observation_space, (B,), rng)
        state = model.observe(state, random_actions(model.action_space, (B,), rng), obs,
                              torch.full((B,), i == 0))
    return state, obs


def campus_batch(T: int = 6, seed: int = 0) -> tuple[gym.Env, Batch]:
    """Two short random-action CampusNav-v0 episodes with dict observations, as a (2, T) batch."""
    env = gym.make("CampusNav-v0")
    env.action_space.seed(seed)
    rows = []
    for b in range(2):
        obs, _ = env.reset(seed=seed + b)
        steps = [(obs, 0, 0.0, False)]
        for _ in range(T - 1):
            action = env.action_space.sample()
            obs, reward, terminated, *_ = env.step(action)
            steps.append((obs, action, reward, terminated))
        rows.append(steps)
    obs = {k: torch.as_tensor(np.stack([[s[0][k] for s in row] for row in rows])) for k in env.observation_space}
    column = [torch.as_tensor(np.array([[s[i] for s in row] for row in rows])) for i in (1, 2, 3)]
    is_first = torch.zeros(2, T, dtype=torch.bool)
    is_first[:, 0] = True
    return env, Batch(obs=obs, action=column[0].long(), reward=column[1].float(), terminated=column[2].bool(),
                      is_first=is_first)


# --- the frame history ---------------------------------------------------------------------


def test_observe_fills_the_history_at_a_start_then_pushes_each_frame():
    model = make()
    rng = np.random.default_rng(0)
    state = model.initial_state(B)
    obs = random_obs(model.observation_space, (B,), rng)
    state = model.observe(state, torch.zeros(B, dtype=torch.int64), obs, torch.ones(B, dtype=torch.bool))
    frame = model.frames(obs)  # (B, C, 64, 64)
    assert state["frames"].shape == (B, 4, 3, 64, 64)
    assert torch.equal(state["frames"], frame[:, None].expand(-1, 4, -1, -1, -1))
    assert not state["actions"].any() and torch.equal(state["vector"], obs["state"])
    second = random_obs(model.observation_space, (B,), rng)
    pushed = model.observe(state, torch.tensor([1, 2, 3]), second, torch.tensor([False, False, True]))
    assert torch.equal(pushed["frames"][:2, :-1], state["frames"][:2, 1:])  # the oldest frame dropped
    assert torch.equal(pushed["frames"][:, -1], model.frames(second))
    assert pushed["actions"][:2, -1].argmax(-1).tolist() == [1, 2] and not pushed["actions"][2].any()
    assert torch.equal(pushed["frames"][2], model.frames(second)[2].expand(4, -1, -1, -1))  # a new episode


def test_imagine_pushes_a_sampled_frame_and_decode_gives_the_env_format():
    model = make()
    with torch.no_grad():
        state, _ = filtered(model)
        out = model.imagine(state, torch.tensor([0, 1, 4]), generator=torch.Generator().manual_seed(0))
        decoded = model.decode(out.state)
    frames = out.state["frames"]
    assert torch.equal(frames[:, :-1], state["frames"][:, 1:])
    assert frames[:, -1].abs().max() <= 1.0 and not torch.equal(frames[:, -1], state["frames"][:, -1])
    assert out.reward.shape == (B,) and out.terminated.dtype == torch.bool
    assert ((out.continuation >= 0) & (out.continuation <= 1)).all()
    assert decoded["image"].shape == (B, 64, 64, 3) and decoded["image"].dtype == torch.uint8
    expected = ((frames[:, -1] + 1) / 2 * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
    assert torch.equal(decoded["image"], expected)
    assert torch.equal(decoded["state"], out.state["vector"].clamp(-1, 1))
    assert model.features(out.state).shape == (B, 16 + 6)


def test_episode_windows_never_cross_a_start():
    is_first = torch.tensor([[True, False, False, True, False]])
    index, padded = episode_windows(is_first, 3)
    assert index[0].tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 2], [3, 3, 3], [3, 3, 4]]
    assert padded[0].tolist() == [[True, True, False], [True, False, False], [False, False, False],
                                  [True, True, False], [True, False, False]]


def test_pixel_only_model_refuses_vectors_and_bad_configs():
    with pytest.raises(ValueError, match="Diffusion takes 'image' or 'image\\+vector' observations, not 'vector'"):
        model_zoo.make("diffusion", VECTOR, spaces.Discrete(3))
    with pytest.raises(ValueError, match="sampler must be one of"):
        Config(sampler="ddim")
    with pytest.raises(ValueError, match="cannot be halved"):
        Config(patch=8, channel_mult=(1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match="sigma_min"):
        Config(sigma_min=10.0)


# --- EDM -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.002, 0.1, 0.5, 1.0, 5.0, 80.0])
def test_preconditioning_matches_karras_table_1(sigma):
    sd = 0.5
    c = precondition(torch.tensor([sigma], dtype=torch.float64), sd)
    assert float(c.c_skip) == pytest.approx(sd**2 / (sigma**2 + sd**2))
    assert float(c.c_out) == pytest.approx(sigma * sd / math.sqrt(sigma**2 + sd**2))
    assert float(c.c_in) == pytest.approx(1 / math.sqrt(sigma**2 + sd**2))
    assert float(c.c_noise) == pytest.approx(math.log(sigma) / 4)
    weight = loss_weight(torch.tensor([sigma], dtype=torch.float64), sd)
    assert float(weight) == pytest.approx((sigma**2 + sd**2) / (sigma * sd) ** 2)
    assert float(weight * c.c_out**2) == pytest.approx(1.0)  # EDM's unit effective weight


def test_the_regression_loss_is_the_weighted_denoising_error():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(2, 2, 3, padding=1)
    denoiser = Preconditioned(lambda x, c_noise: net(x) * (1 + c_noise[:, None, None, None]), sigma_data=0.5)
    clean, noise = torch.randn(4, 2, 8, 8).clamp(-1, 1), torch.randn(4, 2, 8, 8)
    sigma = torch.tensor([0.01, 0.3, 1.0, 4.0])
    weighted = loss_weight(sigma, 0.5) * (denoiser(clean + sigma[:, None, None, None] * noise, sigma)
                                          - clean).square().flatten(1).mean(-1)
    assert torch.allclose(denoiser.loss(clean, sigma, noise), weighted, rtol=1e-4)


def test_karras_schedule_is_decreasing_and_ends_at_zero():
    sigmas = karras_sigmas(5, 0.002, 5.0)
    assert sigmas[0] == pytest.approx(5.0) and sigmas[-2] == pytest.approx(0.002) and sigmas[-1] == 0
    assert (sigmas[1:] < sigmas[:-1]).all()
    assert karras_sigmas(1, 0.002, 5.0).tolist() == [5.0, 0.0]


def test_more_sampler_steps_reduce_the_error_on_a_gaussian_toy():
    # data ~ N(mu, s^2): the ideal denoiser is known, and so is the ODE's exact end point from each start
    mu, s, sigma_max = 0.3, 0.5, 5.0

    def ideal(x, sigma):
        return mu + s**2 / (s**2 + sigma[:, None] ** 2) * (x - mu)

    start = sigma_max * torch.randn(256, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = mu + s / math.sqrt(s**2 + sigma_max**2) * (start - mu)  # x - mu scales by sqrt(s^2 + sigma^2)

    def error(steps, order):
        end = sample(ideal, start, karras_sigmas(steps, 0.002, sigma_max).double(), order)
        return float((end - exact).abs().mean())

    euler = [error(n, 1) for n in (1, 3, 10, 30)]
    assert euler == sorted(euler, reverse=True) and euler[-1] < 0.1 * euler[0]
    heun = [error(n, 2) for n in (10, 30)]  # second order: better than Euler once the steps are not too coarse
    assert heun[0] < euler[2] and heun[1] < 0.2 * euler[3]


@pytest.mark.parametrize(("sampler", "calls"), [("euler", 3), ("heun", 5)])
def test_the_sampler_calls_the_denoiser_once_per_euler_step_twice_per_heun_step(sampler, calls):
    model = make(sampler=sampler, steps=3)
    seen = []
    model.denoiser.register_forward_hook(lambda module, args, out: seen.append(float(args[1][0])))
    with torch.no_grad():
        model.imagine(model.initial_state(2), torch.tensor([0, 1]))
    assert len(seen) == calls and seen[0] == pytest.approx(5.0)


# --- learning, checkpoints and determinism -------------------------------------------------


def test_a_few_training_steps_lower_the_loss_on_campus_frames():
    env, batch = campus_batch()
    model = make(env.observation_space, env.action_space)

    def seeded_loss():
        torch.manual_seed(1)  # the same noise levels and noise before and after
        with torch.no_grad():
            return model.loss(batch)[1]

    before = seeded_loss()
    history = adam_steps(model, batch, 12, lr=3e-3)
    after = seeded_loss()
    assert all(math.isfinite(loss) for loss, _ in history)
    assert after["loss"] < before["loss"] and after["denoise"] < before["denoise"]
    assert {"denoise", "reward_mse", "terminal_bce", "vector_mse"} <= set(after)


def test_checkpoint_round_trip_gives_identical_dreams(tmp_path):
    model = make(IMAGE, spaces.Box(-1.0, 1.0, (2,), np.float32), sampler="heun")
    with torch.no_grad():
        for p in model.parameters():  # away from the zero initialisation, so every weight matters
            p.add_(0.05 * torch.randn_like(p))
    loaded = model_zoo.load(model.save(tmp_path))
    assert loaded.config == model.config and isinstance(loaded, Diffusion)
    action = torch.tensor([[0.5, -0.5]] * B)
    with torch.no_grad():
        state, _ = filtered(model)
        a = model.imagine(state, action, generator=torch.Generator().manual_seed(3))
        b = loaded.imagine(state, action, generator=torch.Generator().manual_seed(3))
        assert torch.equal(model.decode(a.state), loaded.decode(b.state))
    for key in a.state:
        assert torch.equal(a.state[key], b.state[key]), key
    assert torch.equal(a.reward, b.reward) and torch.equal(a.terminated, b.terminated)


def test_same_seed_same_model_and_dream_and_temperature_zero_ignores_the_generator():
    first, second = make(), make()
    for (name, p), q in zip(first.named_parameters(), second.parameters(), strict=True):
        assert torch.equal(p, q), name
    with torch.no_grad():
        for p in first.parameters():
            p.add_(0.05 * torch.randn_like(p))
        state, _ = filtered(first)
        action = torch.tensor([0, 1, 2])

        def frame(model, seed):
            return model.imagine(state, action, generator=torch.Generator().manual_seed(seed)).state["frames"][:, -1]

        assert torch.equal(frame(first, 7), frame(first, 7))
        assert not torch.equal(frame(first, 7), frame(first, 8))
        cold = make(temperature=0.0)
        cold.load_state_dict(first.state_dict())
        assert torch.equal(frame(cold, 7), frame(cold, 8))
