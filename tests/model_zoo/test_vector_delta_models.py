"""``delta_vector`` on vae_mdnrnn and dpgmm_vrnn: the vector part rides in the state, moved by a change head on h."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

import model_zoo
from model_zoo import WorldModel
from tests.model_zoo.fixtures import IMAGE, drifting_batch, random_batch

TINY = {
    "vae_mdnrnn": dict(z_dim=4, hidden=32, mixtures=2, depth=4, vector_hidden=32),
    "dpgmm_vrnn": dict(z_dim=6, components=4, codes=16, code_dim=8, latents=2, latent_dim=16, heads=2,
                       context_dim=8, hidden=16, slots=3, slot_dim=8, slot_iters=1, depth=4, vector_hidden=16,
                       balancer="sum"),
}
MODELS = list(TINY)
PRESET_ON = ["vae_mdnrnn", "dpgmm_vrnn"]  # models whose campusnav-state preset turns the head on
VECTOR3 = spaces.Box(-1.0, 1.0, (3,), np.float32)
DICT = spaces.Dict({"image": IMAGE, "state": VECTOR3})
ACTIONS = spaces.Discrete(3)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make(model_id: str, obs_space: spaces.Space = VECTOR3, action_space: spaces.Space = ACTIONS,
         **overrides) -> WorldModel:
    torch.manual_seed(0)
    return model_zoo.make(model_id, obs_space, action_space, **{**TINY[model_id], **overrides})


def decoded_without_the_head(model: WorldModel, state) -> torch.Tensor:
    """The vector part the model's decoder reads from the latent state: what it would show without the head."""
    if model.model_id == "vae_mdnrnn":
        return model.vae.decoder.decode(state["z"])
    maps = state["maps"].reshape(-1, model.config.slots, model.num_tokens)
    return model.decoder(torch.cat([state["z"], state["h"]], dim=-1), maps)[1]


def observe_first(model: WorldModel, obs: torch.Tensor):
    no_action, first = torch.zeros(2, dtype=torch.int64), torch.ones(2, dtype=torch.bool)
    return model.observe(model.initial_state(2), no_action, obs, first)


def imagine_steps(model: WorldModel, state, steps: int):
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        state = model.imagine(state, torch.zeros(2, dtype=torch.int64), generator=generator).state
    return state


@pytest.mark.parametrize("model_id", MODELS)
@pytest.mark.parametrize("obs_space", [VECTOR3, DICT], ids=["vector", "dict"])
def test_delta_vector_state_features_and_save_load(model_id, obs_space, tmp_path):
    action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    balanced = {"balancer": "rgb"} if model_id == "dpgmm_vrnn" else {}  # its default: the head through RGB's update
    model = make(model_id, obs_space, action_space, delta_vector=True, **balanced)
    batch = random_batch(obs_space, action_space, 2, 5, 0, boundary=2)
    loss, metrics = model.loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and metrics["delta_mse"] > 0
    assert model.delta.net[-1].weight.grad.abs().sum() > 0  # the head learns from the model's loss
    model.eval()
    assert model.feature_dim == TINY[model_id]["z_dim"] + TINY[model_id]["hidden"] + 3
    assert {"delta.changes.mean", "delta.inputs.var"} <= set(model.state_dict())
    loaded = model_zoo.load(model.save(tmp_path / "m"))
    assert loaded.config.delta_vector
    outputs = []
    with torch.no_grad():
        for m in (model, loaded):
            state = m.observe(m.initial_state(2), batch.action[:, 0], batch.at(0).obs, batch.is_first[:, 0])
            out = m.imagine(state, batch.action[:, 1], generator=torch.Generator().manual_seed(3))
            assert out.state["vector"].shape == (2, 3)
            outputs.append((m.features(out.state), m.decode(out.state)))
    (fa, da), (fb, db) = outputs
    assert fa.shape == (2, model.feature_dim) and torch.allclose(fa, fb, atol=1e-5)  # dpgmm's Perceiver: float noise
    for key in da if isinstance(da, dict) else [None]:
        a, b = (da[key], db[key]) if key is not None else (da, db)
        assert (a.float() - b.float()).abs().max() <= (1 if a.dtype == torch.uint8 else 1e-5)


@pytest.mark.parametrize("model_id", MODELS)
def test_a_filtered_state_decodes_to_what_it_observed_and_the_head_moves_it(model_id):
    model = make(model_id, delta_vector=True)
    model.loss(drifting_batch())  # the running statistics of the vectors and their changes
    model.eval()
    assert torch.allclose(model.delta.changes.mean, torch.tensor([0.0, 0.1, -0.05]), atol=1e-6)
    obs = torch.tensor([[0.3, -0.2, 0.6], [-0.5, 0.1, -0.4]])
    with torch.no_grad():
        model.delta.net[-1].weight.zero_()
        model.delta.net[-1].bias.copy_(torch.tensor([0.0, 2.0, -1.0]))  # changes of (0, 2, -1) standard deviations
        state = observe_first(model, obs)
        assert torch.equal(model.decode(state), obs)  # the decoder's vector is not asked
        state = imagine_steps(model, state, steps=2)
    change = torch.tensor([0.0, 2.0, -1.0]) * model.delta.changes.std + model.delta.changes.mean
    assert torch.allclose(state["vector"], obs + 2 * change, atol=1e-6)
    assert torch.allclose(model.decode(state), (obs + 2 * change).clamp(-1.0, 1.0), atol=1e-6)


@pytest.mark.parametrize("model_id", MODELS)
def test_the_change_head_learns_a_drift_the_decoder_reads_only_roughly(model_id):
    model = make(model_id, delta_vector=True)
    history = model_zoo.fit(model, drifting_batch(), steps=200, lr=3e-3, log_every=50, progress=False)
    assert history[-1]["delta_mse"] < 0.1 * history[0]["delta_mse"]
    model.eval()
    obs = torch.tensor([[0.3, -0.4, 0.2], [-0.5, -0.3, 0.15]])  # steps 0 and 1 of the drift
    expected = obs + torch.tensor([0.0, 0.3, -0.15])
    with torch.no_grad():
        state = imagine_steps(model, observe_first(model, obs), steps=3)
        estimated = model.decode(state)
        decoded = decoded_without_the_head(model, state)
    assert torch.allclose(estimated, expected, atol=0.03)
    assert (estimated - expected).abs().max() < (decoded - expected).abs().max()


@pytest.mark.parametrize("model_id", MODELS)
def test_without_delta_vector_nothing_changes(model_id):
    model = make(model_id)
    assert model.delta is None and "vector" not in model.initial_state(1)
    assert model.feature_dim == TINY[model_id]["z_dim"] + TINY[model_id]["hidden"]
    assert not any(name.startswith("delta.") for name in model.state_dict())


@pytest.mark.parametrize("model_id", PRESET_ON)
def test_the_state_preset_turns_the_head_on(model_id):
    assert model_zoo.preset(model_id, "campusnav-state").config["delta_vector"] is True
    assert "delta_vector" not in model_zoo.preset(model_id, "campusnav-pixels").config


@pytest.mark.parametrize("delta_vector", [True, False])
def test_decode_runs_vs_vector_decoder_only_when_its_output_is_used(delta_vector):
    model = make("vae_mdnrnn", delta_vector=delta_vector).eval()
    calls = []
    model.vae.decoder.vector_net.register_forward_hook(lambda *_: calls.append(1))
    obs = torch.tensor([[0.3, -0.2, 0.6], [-0.5, 0.1, -0.4]])
    with torch.no_grad():
        decoded = model.decode(imagine_steps(model, observe_first(model, obs), steps=1))
    assert decoded.shape == obs.shape and len(calls) == (0 if delta_vector else 1)
