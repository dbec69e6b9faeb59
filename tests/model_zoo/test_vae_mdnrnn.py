"""VAEMDNRNN (World Models V + M): interface shapes, learning, determinism, episode boundaries, temperature."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from gymnasium import spaces

import model_zoo
from model_zoo.base import Batch, Imagined
from model_zoo.models.vae_mdnrnn import VAEMDNRNN, Config
from tests.model_zoo.fixtures import IMAGE, VECTOR, random_actions, random_batch, random_obs

TINY = dict(z_dim=8, hidden=32, mixtures=3, depth=4, vector_hidden=16)

IMAGE96 = spaces.Box(0, 255, (96, 96, 3), np.uint8)  # like CarRacing-v3; resized to 64x64 inside
OBS_SPACES = {
    "dict": spaces.Dict({"image": IMAGE, "state": VECTOR, "mode": spaces.Discrete(3)}),
    "image64": IMAGE,
    "image96": IMAGE96,
    "vector": VECTOR,
}
ACTION_SPACES = {
    "discrete": spaces.Discrete(4),
    "box": spaces.Box(np.array([-1.0, 0.0, 0.0], np.float32), np.ones(3, np.float32)),
}
CASES = [
    ("dict", "discrete"), ("dict", "box"), ("image64", "discrete"),
    ("image96", "box"), ("vector", "discrete"), ("vector", "box"),
]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make(obs: str = "dict", act: str = "discrete", seed: int = 0, **overrides) -> VAEMDNRNN:
    torch.manual_seed(seed)
    model = model_zoo.make("vae_mdnrnn", OBS_SPACES[obs], ACTION_SPACES[act], **{**TINY, **overrides})
    assert isinstance(model, VAEMDNRNN)
    return model


def make_batch(obs: str, act: str, B: int = 3, T: int = 5, seed: int = 0) -> Batch:
    return random_batch(OBS_SPACES[obs], ACTION_SPACES[act], B, T, seed, boundary=2)


def contains(space: spaces.Space, obs, i: int) -> bool:
    """Whether row ``i`` of a batched env-format observation lies in ``space``."""
    if isinstance(space, spaces.Dict):
        return all(contains(s, obs[k], i) for k, s in space.spaces.items())
    row = obs[i].numpy()
    return space.contains(np.int64(row) if isinstance(space, spaces.Discrete) else row)


@pytest.mark.parametrize("obs,act", CASES)
def test_interface_shapes_and_dtypes(obs, act):
    model = make(obs, act)
    B, Z, H = 3, TINY["z_dim"], TINY["hidden"]
    state = model.initial_state(B)
    assert {k: tuple(v.shape) for k, v in state.items()} == {"h": (B, H), "c": (B, H), "z": (B, Z)}
    state = model.observe(state, random_actions(model.action_space, (B,)), random_obs(model.observation_space, (B,)),
                          torch.ones(B, dtype=torch.bool))
    assert state["z"].shape == (B, Z) and state["h"].dtype == torch.float32
    out = model.imagine(state, random_actions(model.action_space, (B,), 1), generator=torch.Generator().manual_seed(0))
    assert isinstance(out, Imagined)
    assert out.state["z"].shape == (B, Z) and out.state["h"].shape == (B, H) and out.state["c"].shape == (B, H)
    assert out.reward.shape == (B,) and out.reward.dtype == torch.float32
    assert out.terminated.shape == (B,) and out.terminated.dtype == torch.bool
    feats = model.features(out.state)
    assert feats.shape == (B, Z + H) and model.feature_dim == Z + H
    decoded = model.decode(out.state)
    space = model.observation_space
    if isinstance(space, spaces.Dict):
        assert set(decoded) == set(space.spaces)
        assert decoded["image"].shape == (B, 64, 64, 3) and decoded["image"].dtype == torch.uint8
        assert decoded["state"].shape == (B, 5) and decoded["state"].dtype == torch.float32
    else:
        assert decoded.shape == (B,) + space.shape
    assert all(contains(space, decoded, i) for i in range(B))


@pytest.mark.parametrize("obs,act", CASES)
def test_loss_is_finite_with_float_metrics(obs, act):
    model = make(obs, act)
    loss, metrics = model.loss(make_batch(obs, act))
    assert loss.shape == () and torch.isfinite(loss)
    assert all(isinstance(v, float) and np.isfinite(v) for v in metrics.values())
    assert {"loss", "recon", "kl", "mdn_nll", "reward_mse", "terminal_bce"} <= set(metrics)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_vector_only_space_is_an_mlp_vae():
    model = make("vector", "discrete")
    assert not any(isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d) for m in model.modules())


@pytest.mark.parametrize("obs,act", [("dict", "discrete"), ("vector", "box")])
def test_adam_steps_lower_the_loss_on_a_fixed_batch(obs, act):
    model = make(obs, act)
    batch = make_batch(obs, act, B=2, T=4)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def fixed_loss():
        torch.manual_seed(123)  # the same reparameterisation noise every time
        return model.loss(batch)

    with torch.no_grad():
        before = float(fixed_loss()[0])
    for _ in range(10):
        opt.zero_grad()
        fixed_loss()[0].backward()
        opt.step()
    with torch.no_grad():
        after, _ = fixed_loss()
    assert float(after) < before


def test_m_is_trained_on_detached_latents():
    """M's losses send no gradient into V: V's gradients equal those of V's loss alone."""
    model = make()
    batch = make_batch("dict", "discrete")
    vae_params = list(model.vae.parameters())
    torch.manual_seed(0)
    total_grads = torch.autograd.grad(model.loss(batch)[0], vae_params)
    torch.manual_seed(0)
    posterior = model.encode(batch.obs)
    z = posterior.mean + torch.exp(0.5 * posterior.logvar) * torch.randn_like(posterior.mean)
    vae_grads = torch.autograd.grad(model._vae_loss(posterior, z, batch.obs)[0], vae_params)
    for a, b in zip(total_grads, vae_grads, strict=True):
        torch.testing.assert_close(a, b)


def test_imagine_is_deterministic_under_a_seeded_generator():
    model = make()
    state = model.observe(model.initial_state(4), torch.zeros(4, dtype=torch.long),
                          random_obs(model.observation_space, (4,)), torch.ones(4, dtype=torch.bool))
    action = torch.tensor([0, 1, 2, 3])

    def rollout(seed):
        g = torch.Generator().manual_seed(seed)
        s, zs = state, []
        for _ in range(3):
            s = model.imagine(s, action, generator=g).state
            zs.append(s["z"])
        return torch.stack(zs)

    assert torch.equal(rollout(0), rollout(0))
    assert not torch.allclose(rollout(0), rollout(1))


def test_imagine_is_batched_row_by_row():
    """Each row's LSTM state, reward and termination do not depend on the other rows."""
    model = make(temperature=0.0)
    B = 5
    state = {k: torch.randn_like(v) for k, v in model.initial_state(B).items()}
    action = torch.tensor([0, 1, 2, 3, 1])
    full = model.imagine(state, action)
    for i in range(B):
        one = model.imagine({k: v[i : i + 1] for k, v in state.items()}, action[i : i + 1])
        for key in ("h", "c", "z"):
            torch.testing.assert_close(one.state[key], full.state[key][i : i + 1])
        torch.testing.assert_close(one.reward, full.reward[i : i + 1])
        assert torch.equal(one.terminated, full.terminated[i : i + 1])


def test_imagine_matches_the_lstm_cell_used_in_training():
    model = make("vector", "box")
    state = {k: torch.randn_like(v) for k, v in model.initial_state(3).items()}
    action = random_actions(model.action_space, (3,))
    out = model.imagine(state, action, generator=torch.Generator().manual_seed(0))
    x = torch.cat([state["z"], model.spec.encode_action(action)], dim=-1)
    h, c = model.mdnrnn.cell(x, (state["h"], state["c"]))
    torch.testing.assert_close(out.state["h"], h)
    torch.testing.assert_close(out.state["c"], c)


def test_imagine_is_differentiable_through_the_gaussian_sample():
    model = make()
    state = {k: torch.randn_like(v).requires_grad_() for k, v in model.initial_state(3).items()}
    out = model.imagine(state, torch.tensor([0, 1, 2]), generator=torch.Generator().manual_seed(0))
    (out.state["z"].sum() + out.reward.sum()).backward()
    assert all(torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0 for v in state.values())


def test_imagine_rejects_interventions():
    model = make()
    with pytest.raises(ValueError, match="does not take interventions"):
        model.imagine(model.initial_state(1), torch.zeros(1, dtype=torch.long), do={"gameday": True})


def test_observe_resets_the_state_at_episode_starts():
    model = make()
    B = 2
    obs = random_obs(model.observation_space, (B,), 5)
    first = torch.ones(B, dtype=torch.bool)
    fresh = model.observe(model.initial_state(B), torch.zeros(B, dtype=torch.long), obs, first)
    history = {k: torch.randn_like(v) for k, v in model.initial_state(B).items()}
    after = model.observe(history, torch.tensor([3, 1]), obs, first)
    for key in ("h", "c", "z"):
        assert torch.equal(after[key], fresh[key])
    assert torch.equal(fresh["h"], torch.zeros_like(fresh["h"]))
    moved = model.observe(history, torch.tensor([3, 1]), obs, torch.zeros(B, dtype=torch.bool))
    assert not torch.equal(moved["h"], fresh["h"])


def test_loss_terms_after_a_boundary_ignore_the_data_before_it():
    model = make()
    batch = make_batch("dict", "discrete", B=2, T=6)
    batch.is_first[:, 3] = True  # both rows start a new episode at t = 3
    changed = dataclasses.replace(
        batch,
        obs={k: v.clone() for k, v in batch.obs.items()},
        action=batch.action.clone(),
        reward=batch.reward.clone(),
    )
    changed.obs["image"][:, :3] = 255 - changed.obs["image"][:, :3]
    changed.obs["state"][:, :3] = -changed.obs["state"][:, :3]
    changed.action[:, :4] = (changed.action[:, :4] + 1) % 4  # including the meaningless action at t = 3
    changed.reward[:, :4] += 5.0
    z = model.encode(batch.obs).mean
    z_changed = model.encode(changed.obs).mean
    torch.testing.assert_close(z[:, 3:], z_changed[:, 3:])
    terms, terms_changed = model.dynamics_losses(z, batch), model.dynamics_losses(z_changed, changed)
    for key in ("nll", "reward_se", "terminal_bce"):
        torch.testing.assert_close(terms[key][:, 3:], terms_changed[key][:, 3:])
        assert not torch.allclose(terms[key][:, 1:3], terms_changed[key][:, 1:3])
        assert torch.all(terms[key][:, [0, 3]] == 0)  # nothing is predicted at episode starts
    assert terms["valid"][:, [0, 3]].sum() == 0


@torch.no_grad()
def test_temperature_changes_the_sample_spread():
    model = make(mixtures=3)
    n = 4000
    state = {k: v[:1].expand(n, -1) for k, v in {k: torch.randn_like(v) for k, v in model.initial_state(1).items()}
             .items()}
    action = torch.zeros(n, dtype=torch.long)
    spread = {}
    for tau in (0.0, 0.3, 1.0, 2.0):
        model.config = dataclasses.replace(model.config, temperature=tau)
        z = model.imagine(state, action, generator=torch.Generator().manual_seed(0)).state["z"]
        spread[tau] = float(z.std(dim=0).mean())
    assert spread[0.0] == 0.0
    assert spread[0.3] < spread[1.0] < spread[2.0]


def test_paper_options_per_dim_mixture_and_sampled_targets():
    model = make(per_dim_mixture=True, m_target="sample")
    loss, _ = model.loss(make_batch("dict", "discrete"))
    assert torch.isfinite(loss)
    out = model.imagine(model.initial_state(2), torch.tensor([0, 1]), generator=torch.Generator().manual_seed(0))
    assert out.state["z"].shape == (2, TINY["z_dim"])


def test_config_is_frozen_and_validated():
    model = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.config.z_dim = 3
    with pytest.raises(ValueError, match="temperature"):
        Config(temperature=-1.0)
    with pytest.raises(ValueError, match="z_dim"):
        Config(z_dim=0)
    with pytest.raises(ValueError, match="m_target"):
        Config(m_target="median")
    with pytest.raises(ValueError, match="unknown config field"):
        model_zoo.make("vae_mdnrnn", VECTOR, ACTION_SPACES["discrete"], zdim=3)
