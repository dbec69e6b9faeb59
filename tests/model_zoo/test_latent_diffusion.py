"""Latent diffusion (DiT over VAE patches): shapes, adaLN-Zero, learning, determinism, a frozen V, bad configs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

import model_zoo
from model_zoo.models.latent_diffusion import Config, LatentDiffusion
from model_zoo.nets.dit import AdaLNZeroBlock, DiT, patchify, unpatchify
from tests.model_zoo.fixtures import IMAGE, OBS_SPACES, VECTOR, adam_steps, random_actions, random_batch, random_obs

TINY = dict(depth=4, hidden=16, heads=2, blocks=1, layers=1, latent_channels=2)
ACTIONS = spaces.Discrete(5)
B = 3


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def make(obs_space=OBS_SPACES["dict"], action_space=ACTIONS, **config) -> LatentDiffusion:
    torch.manual_seed(0)
    return model_zoo.make("latent_diffusion", obs_space, action_space, **{**TINY, **config})


def filtered(model, steps: int = 2, seed: int = 0):
    """A state after ``steps`` observed random frames (the first starts an episode)."""
    rng = np.random.default_rng(seed)
    state = model.initial_state(B)
    with torch.no_grad():
        for i in range(steps):
            obs = random_obs(model.observation_space, (B,), rng)
            state = model.observe(state, random_actions(model.action_space, (B,), rng), obs, torch.full((B,), i == 0))
    return state


def perturbed(model):
    """The model with every weight moved away from its (partly zero) initialisation, so every weight matters."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


# --- the DiT pieces ------------------------------------------------------------------------


def test_patchify_round_trips_and_makes_one_token_per_patch():
    x = torch.randn(2, 3, 8, 8)
    tokens = patchify(x, 4)
    assert tokens.shape == (2, 4, 3 * 16)
    assert torch.equal(tokens[:, 0], x[:, :, :4, :4].flatten(1))  # the top-left patch, channel by channel
    assert torch.equal(unpatchify(tokens, 4, 2, 2), x)


def test_a_fresh_adaln_zero_block_is_the_identity_and_a_trained_one_is_not():
    torch.manual_seed(0)
    block = AdaLNZeroBlock(width=8, heads=2, cond_dim=4)
    x, cond = torch.randn(2, 5, 8), torch.randn(2, 4)
    assert torch.equal(block(x, cond), x)
    with torch.no_grad():
        block.modulation[1].weight.normal_()
    assert not torch.allclose(block(x, cond), x)


def test_a_fresh_dit_outputs_zero_and_refuses_widths_the_heads_do_not_divide():
    net = DiT(in_dim=6, out_dim=6, length=10, width=8, depth=2, heads=2)
    assert not net(torch.randn(3, 10, 6), torch.randn(3, 8)).any()
    with pytest.raises(ValueError, match="divisible by heads"):
        DiT(in_dim=6, out_dim=6, length=10, width=10, depth=1, heads=4)


# --- the model -----------------------------------------------------------------------------


def test_shapes_of_the_state_an_imagined_step_and_its_decoding():
    model = make()
    with torch.no_grad():
        state = filtered(model)
        out = model.imagine(state, torch.tensor([0, 1, 4]), generator=torch.Generator().manual_seed(0))
        decoded = model.decode(out.state)
    assert state["latents"].shape == (B, 4, 2, 8, 8) and state["actions"].shape == (B, 4, 5)
    assert torch.equal(out.state["latents"][:, :-1], state["latents"][:, 1:])  # the oldest latent dropped
    assert out.reward.shape == (B,) and out.terminated.dtype == torch.bool
    assert ((out.continuation >= 0) & (out.continuation <= 1)).all()
    assert decoded["image"].shape == (B, 64, 64, 3) and decoded["image"].dtype == torch.uint8
    assert decoded["state"].shape == (B, 6) and model.features(out.state).shape == (B, 16 + 6)


def test_observe_fills_the_history_with_the_first_latent():
    model = make(IMAGE)
    obs = random_obs(IMAGE, (B,), 0)
    with torch.no_grad():
        state = model.observe(model.initial_state(B), torch.zeros(B, dtype=torch.int64), obs, torch.ones(B, dtype=bool))
        latent = model.encode(obs).mean  # (B, 2, 8, 8)
    assert torch.equal(state["latents"], latent[:, None].expand(-1, 4, -1, -1, -1))
    assert not state["actions"].any()


def test_the_loss_falls_on_a_tiny_fixed_batch():
    model = make(IMAGE)
    batch = random_batch(IMAGE, ACTIONS, B=2, T=5, boundary=3)

    def seeded_loss():
        torch.manual_seed(1)  # the same posterior samples, noise levels and noise before and after
        with torch.no_grad():
            return model.loss(batch)[1]

    before = seeded_loss()
    history = adam_steps(model, batch, 30, lr=3e-3)
    after = seeded_loss()
    assert all(math.isfinite(loss) for loss, _ in history)
    assert after["loss"] < before["loss"] and after["recon"] < before["recon"]
    assert {"vae_loss", "recon", "kl", "denoise", "reward_mse", "terminal_bce"} <= set(after)


def test_imagine_is_deterministic_for_a_fixed_seed_and_temperature_zero_ignores_it():
    model = perturbed(make())
    state = filtered(model)
    action = torch.tensor([0, 1, 2])

    def latent(m, seed):
        with torch.no_grad():
            return m.imagine(state, action, generator=torch.Generator().manual_seed(seed)).state["latents"][:, -1]

    assert torch.equal(latent(model, 7), latent(model, 7))
    assert not torch.equal(latent(model, 7), latent(model, 8))
    cold = make(temperature=0.0)
    cold.load_state_dict(model.state_dict())
    assert torch.equal(latent(cold, 7), latent(cold, 8))


@pytest.mark.parametrize(("sampler", "calls"), [("euler", 2), ("heun", 3)])
def test_the_sampler_calls_the_denoiser_once_per_euler_step_twice_per_heun_step(sampler, calls):
    model = make(sampler=sampler, steps=2)
    seen = []
    model.denoiser.register_forward_hook(lambda module, args, out: seen.append(float(args[1][0])))
    with torch.no_grad():
        model.imagine(model.initial_state(2), torch.tensor([0, 1]))
    assert len(seen) == calls and seen[0] == pytest.approx(5.0)


# --- a trained vae_mdnrnn's V, frozen ------------------------------------------------------------


@pytest.fixture(scope="module")
def world_models():
    torch.manual_seed(0)
    return model_zoo.make("vae_mdnrnn", OBS_SPACES["dict"], ACTIONS, z_dim=4, hidden=8, depth=4, vector_hidden=8)


def test_a_frozen_vae_mdnrnn_v_is_copied_and_stays_unchanged_by_training(world_models):
    model = LatentDiffusion.from_vae(world_models, hidden=16, heads=2, blocks=1, layers=1)
    assert model.model_id == "latent_diffusion" and model.config.vae == "vae_mdnrnn" and model.config.patch == 1
    vae = {k: v.clone() for k, v in model.vae.state_dict().items()}
    assert all(torch.equal(vae[k], v) for k, v in world_models.vae.state_dict().items())
    others = {k: v.clone() for k, v in model.denoiser.state_dict().items()}
    adam_steps(model, random_batch(OBS_SPACES["dict"], ACTIONS, B=2, T=4), 3)
    assert all(torch.equal(vae[k], v) for k, v in model.vae.state_dict().items())
    assert any(not torch.equal(others[k], v) for k, v in model.denoiser.state_dict().items())
    obs = random_obs(OBS_SPACES["dict"], (B,), 1)
    with torch.no_grad():
        state = model.observe(model.initial_state(B), torch.zeros(B, dtype=torch.int64), obs, torch.ones(B, dtype=bool))
        assert state["latents"].shape == (B, 4, 4, 1, 1)
        z = world_models.encode(obs).mean
        assert torch.equal(state["latents"][:, -1, :, 0, 0], z)
        assert torch.equal(model.decode(state)["image"], world_models.vae.decoder.decode(z)["image"])


def test_a_frozen_v_survives_a_checkpoint_and_an_untrained_one_is_refused(world_models, tmp_path):
    model = LatentDiffusion.from_vae(world_models, hidden=16, heads=2, blocks=1, layers=1)
    loaded = model_zoo.load(model.save(tmp_path))
    assert bool(loaded.vae_ready) and not any(p.requires_grad for p in loaded.vae.parameters())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())
    untrained = make(OBS_SPACES["dict"], vae="vae_mdnrnn", patch=1)
    with pytest.raises(ValueError, match="from_vae"):
        untrained.loss(random_batch(OBS_SPACES["dict"], ACTIONS, B=2, T=3))
    with pytest.raises(ValueError, match="come from the vae_mdnrnn"):
        LatentDiffusion.from_vae(world_models, depth=8)
    with pytest.raises(TypeError, match="takes a trained vae_mdnrnn"):
        LatentDiffusion.from_vae(make())


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("config", "match"), [
    (dict(vae="sd"), "vae must be one of"),
    (dict(patch=3), "must divide the own VAE's latent side"),
    (dict(vae="vae_mdnrnn", patch=2), "patch must be 1 with vae='vae_mdnrnn'"),
    (dict(hidden=30, heads=4), "divisible by heads"),
    (dict(history=0), "history must be a positive integer"),
    (dict(blocks=1.5), "blocks must be a positive integer"),
    (dict(layers=-1), "layers must be an integer >= 0"),
    (dict(kl_weight=-1.0), "kl_weight must be finite and >= 0"),
    (dict(sampler="ddim"), "sampler must be one of"),
    (dict(sigma_min=10.0), "sigma_min"),
])
def test_bad_config_values_are_clear_errors(config, match):
    with pytest.raises(ValueError, match=match):
        Config(**config)


def test_a_vector_only_space_is_refused():
    with pytest.raises(ValueError, match=r"takes 'image' or 'image\+vector' observations, not 'vector'"):
        model_zoo.make("latent_diffusion", VECTOR, ACTIONS)
