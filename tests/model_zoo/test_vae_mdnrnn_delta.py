"""VAEMDNRNN with ``delta_vector``: the vector part rides in the state, moved by M's change head."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

import model_zoo
from model_zoo.models.vae_mdnrnn import VAEMDNRNN
from tests.model_zoo.fixtures import IMAGE, drifting_batch, random_batch

TINY = dict(z_dim=4, hidden=32, mixtures=2, depth=4, vector_hidden=32)
VECTOR3 = spaces.Box(-1.0, 1.0, (3,), np.float32)
DICT = spaces.Dict({"image": IMAGE, "state": VECTOR3})
ACTIONS = spaces.Discrete(3)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make(obs_space: spaces.Space = VECTOR3, action_space: spaces.Space = ACTIONS, **overrides) -> VAEMDNRNN:
    torch.manual_seed(0)
    return model_zoo.make("vae_mdnrnn", obs_space, action_space, **{**TINY, **overrides})


def observe_first(model: VAEMDNRNN, obs: torch.Tensor):
    no_action, first = torch.zeros(2, dtype=torch.int64), torch.ones(2, dtype=torch.bool)
    return model.observe(model.initial_state(2), no_action, obs, first)


def imagine_steps(model: VAEMDNRNN, state, steps: int):
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        state = model.imagine(state, torch.zeros(2, dtype=torch.int64), generator=generator).state
    return state


@pytest.mark.parametrize("obs_space", [VECTOR3, DICT], ids=["vector", "dict"])
def test_delta_vector_state_features_and_save_load(obs_space, tmp_path):
    action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    model = make(obs_space, action_space, delta_vector=True)
    batch = random_batch(obs_space, action_space, 2, 5, 0, boundary=2)
    loss, metrics = model.loss(batch)
    assert torch.isfinite(loss) and metrics["delta_mse"] > 0
    model.eval()
    assert model.feature_dim == TINY["z_dim"] + TINY["hidden"] + 3
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
    assert fa.shape == (2, model.feature_dim) and torch.equal(fa, fb)
    for key in da if isinstance(da, dict) else [None]:
        assert torch.equal(da[key], db[key]) if key is not None else torch.equal(da, db)


def test_a_filtered_state_decodes_to_what_it_observed_and_the_head_moves_it():
    model = make(delta_vector=True)
    model.loss(drifting_batch())  # the running statistics of the vectors and their changes
    model.eval()
    assert torch.allclose(model.delta.changes.mean, torch.tensor([0.0, 0.1, -0.05]), atol=1e-6)
    obs = torch.tensor([[0.3, -0.2, 0.6], [-0.5, 0.1, -0.4]])
    with torch.no_grad():
        model.delta.net[-1].weight.zero_()
        model.delta.net[-1].bias.copy_(torch.tensor([0.0, 2.0, -1.0]))  # changes of (0, 2, -1) standard deviations
        state = observe_first(model, obs)
        assert torch.equal(model.decode(state), obs)  # V's decoder of z is not asked
        state = imagine_steps(model, state, steps=2)
    change = torch.tensor([0.0, 2.0, -1.0]) * model.delta.changes.std + model.delta.changes.mean
    assert torch.allclose(state["vector"], obs + 2 * change, atol=1e-6)
    assert torch.allclose(model.decode(state), (obs + 2 * change).clamp(-1.0, 1.0), atol=1e-6)


def test_the_change_head_learns_a_drift_that_v_decodes_only_roughly():
    model = make(delta_vector=True)
    history = model_zoo.fit(model, drifting_batch(), steps=200, lr=3e-3, log_every=50, progress=False)
    assert history[-1]["delta_mse"] < 0.1 * history[0]["delta_mse"]
    model.eval()
    obs = torch.tensor([[0.3, -0.4, 0.2], [-0.5, -0.3, 0.15]])  # steps 0 and 1 of the drift
    expected = obs + torch.tensor([0.0, 0.3, -0.15])
    with torch.no_grad():
        state = imagine_steps(model, observe_first(model, obs), steps=3)
        estimated = model.decode(state)
        decoded = model.vae.decoder.decode(state["z"])  # what the model without the head would show
    assert torch.allclose(estimated, expected, atol=0.03)
    assert (estimated - expected).abs().max() < (decoded - expected).abs().max()


def test_without_delta_vector_nothing_changes():
    model = make()
    assert model.delta is None and "vector" not in model.initial_state(1)
    assert model.feature_dim == TINY["z_dim"] + TINY["hidden"]
    assert not any(name.startswith("delta.") for name in model.state_dict())


@pytest.mark.parametrize("delta_vector", [True, False])
def test_decode_runs_vs_vector_decoder_only_when_its_output_is_used(delta_vector):
    model = make(delta_vector=delta_vector).eval()
    calls = []
    model.vae.decoder.vector_net.register_forward_hook(lambda *_: calls.append(1))
    obs = torch.tensor([[0.3, -0.2, 0.6], [-0.5, 0.1, -0.4]])
    with torch.no_grad():
        decoded = model.decode(imagine_steps(model, observe_first(model, obs), steps=1))
    assert decoded.shape == obs.shape and len(calls) == (0 if delta_vector else 1)
