"""The WorldModel contract, checked for every registered model on every kind of space.

Parametrized over ``model_zoo.list_models()``: a model is tested here the moment
it is registered.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch
from gymnasium import spaces

import model_zoo
from model_zoo import Imagined
from model_zoo.spaces import observation_kind
from tests.model_zoo.fixtures import (
    BOX_ACTIONS,
    OBS_SPACES,
    VECTOR,
    adam_steps,
    cheapest_space,
    random_actions,
    random_batch,
    random_obs,
    takes,
)

ACTION_SPACES = {"discrete": spaces.Discrete(5), "box": BOX_ACTIONS}
B, T = 3, 6


def contains(space: spaces.Space, obs, i: int) -> bool:
    if isinstance(space, spaces.Dict):
        return all(contains(s, obs[k], i) for k, s in space.spaces.items())
    return space.contains(obs[i].detach().cpu().numpy())


def state_leaves(state) -> list[torch.Tensor]:
    assert isinstance(state, dict) and state, "a state is a non-empty dict of tensors"
    return list(state.values())


CASES = [
    pytest.param(model_id, obs_kind, act_kind, id=f"{model_id}-{obs_kind}-{act_kind}")
    for model_id in model_zoo.list_models()
    for obs_kind in OBS_SPACES
    for act_kind in ACTION_SPACES
    if takes(model_id, OBS_SPACES[obs_kind])  # a model declares the kinds it takes (``observation_kinds``)
]
REFUSED = [
    pytest.param(model_id, obs_kind, id=f"{model_id}-{obs_kind}")
    for model_id in model_zoo.list_models()
    for obs_kind in OBS_SPACES
    if not takes(model_id, OBS_SPACES[obs_kind])
]


@pytest.fixture(scope="module")
def built():
    cache: dict = {}

    def build(model_id, obs_kind, act_kind):
        key = (model_id, obs_kind, act_kind)
        if key not in cache:
            torch.manual_seed(0)
            cache[key] = model_zoo.make(model_id, OBS_SPACES[obs_kind], ACTION_SPACES[act_kind])
        return cache[key]

    return build


@pytest.mark.parametrize(("model_id", "obs_kind", "act_kind"), CASES)
def test_interface_shapes_and_dtypes(built, model_id, obs_kind, act_kind):
    model = built(model_id, obs_kind, act_kind)
    obs_space, action_space = OBS_SPACES[obs_kind], ACTION_SPACES[act_kind]
    assert model.model_id == model_id
    rng = np.random.default_rng(1)
    with torch.no_grad():
        state = model.initial_state(B)
        for leaf in state_leaves(state):
            assert leaf.shape[0] == B
        action = random_actions(action_space, (B,), rng)
        obs = random_obs(obs_space, (B,), rng)
        state = model.observe(state, action, obs, torch.ones(B, dtype=torch.bool))
        state = model.observe(state, action, random_obs(obs_space, (B,), rng), torch.zeros(B, dtype=torch.bool))
        features = model.features(state)
        assert features.shape == (B, model.feature_dim) and features.dtype == torch.float32
        assert torch.isfinite(features).all()
        out = model.imagine(state, action, generator=torch.Generator().manual_seed(0))
        assert isinstance(out, Imagined)
        assert out.reward.shape == (B,) and out.reward.dtype == torch.float32
        assert out.terminated.shape == (B,) and out.terminated.dtype == torch.bool
        assert {k: v.shape for k, v in out.state.items()} == {k: v.shape for k, v in state.items()}
        decoded = model.decode(out.state)
        for i in range(B):
            assert contains(obs_space, decoded, i), f"decoded observation {i} is outside {obs_space}"


@pytest.mark.parametrize(("model_id", "obs_kind", "act_kind"), CASES)
def test_loss_is_finite_and_training_lowers_it(model_id, obs_kind, act_kind):
    torch.manual_seed(0)
    model = model_zoo.make(model_id, OBS_SPACES[obs_kind], ACTION_SPACES[act_kind])
    batch = random_batch(OBS_SPACES[obs_kind], ACTION_SPACES[act_kind], B, T, boundary=T // 2)
    loss, metrics = model.loss(batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert metrics and all(isinstance(v, float) for v in metrics.values())
    first = float(loss.detach())
    adam_steps(model, batch, 15, lr=1e-3)
    with torch.no_grad():
        torch.manual_seed(0)
        after = float(model.loss(batch)[0])
    assert after < first, f"{model_id}: loss {first:.4f} -> {after:.4f} after 15 steps on one batch"


@pytest.mark.parametrize(("model_id", "obs_kind", "act_kind"), CASES)
def test_imagine_is_batched_and_deterministic(built, model_id, obs_kind, act_kind):
    model = built(model_id, obs_kind, act_kind)
    rng = np.random.default_rng(2)
    obs_space, action_space = OBS_SPACES[obs_kind], ACTION_SPACES[act_kind]
    with torch.no_grad():
        state = model.observe(
            model.initial_state(B),
            random_actions(action_space, (B,), rng),
            random_obs(obs_space, (B,), rng),
            torch.ones(B, dtype=torch.bool),
        )
        action = random_actions(action_space, (B,), rng)
        a = model.imagine(state, action, generator=torch.Generator().manual_seed(5))
        b = model.imagine(state, action, generator=torch.Generator().manual_seed(5))
    for key in a.state:
        assert torch.equal(a.state[key], b.state[key]), f"state[{key!r}] differs under the same generator seed"
    assert torch.equal(a.reward, b.reward) and torch.equal(a.terminated, b.terminated)


@pytest.mark.parametrize(("model_id", "obs_kind"), REFUSED or [pytest.param(None, None, marks=pytest.mark.skip)])
def test_an_observation_kind_a_model_does_not_take_is_a_clear_error(model_id, obs_kind):
    kind = re.escape(observation_kind(OBS_SPACES[obs_kind]))
    with pytest.raises(ValueError, match=f"takes .* observations, not '{kind}' ones"):
        model_zoo.make(model_id, OBS_SPACES[obs_kind], ACTION_SPACES["discrete"])


@pytest.mark.parametrize("model_id", model_zoo.list_models())
def test_non_causal_models_refuse_interventions(model_id):
    model = model_zoo.make(model_id, cheapest_space(model_id), ACTION_SPACES["discrete"])
    if model.supports_do:
        pytest.skip("a causal model: tested in its own file")
    state = model.initial_state(2)
    with pytest.raises(ValueError, match="does not take interventions"):
        model.imagine(state, torch.zeros(2, dtype=torch.int64), do={"gameday": True})


def test_unknown_model_and_config_field_are_clear_errors():
    with pytest.raises(ValueError, match="unknown model id 'nope'; registered: mlp"):
        model_zoo.make("nope", VECTOR, ACTION_SPACES["discrete"])
    with pytest.raises(ValueError, match=r"mlp: unknown config field\(s\) \['bogus'\]"):
        model_zoo.make("mlp", VECTOR, ACTION_SPACES["discrete"], bogus=1)
    with pytest.raises(ValueError, match="already registered"):
        model_zoo.register("mlp", entry_point="model_zoo.models.mlp:MLPWorldModel")


@pytest.mark.parametrize("model_id", model_zoo.list_models())
def test_a_discrete_space_that_does_not_start_at_zero_works_at_episode_starts(model_id):
    # Discrete(5, start=1): actions 1..5; an episode's first action must not be encoded as action 0
    torch.manual_seed(0)
    space, obs_space = spaces.Discrete(5, start=1), cheapest_space(model_id)
    model = model_zoo.make(model_id, obs_space, space)
    batch = random_batch(obs_space, space, B, T, boundary=T // 2)
    batch = dataclasses.replace(batch, action=batch.action + 1)  # ids 1..5
    loss, _ = model.loss(batch)
    assert torch.isfinite(loss)
    with torch.no_grad():
        state = model.observe(model.initial_state(B), batch.action[:, 0], batch.obs[:, 0], batch.is_first[:, 0])
        out = model.imagine(state, batch.action[:, 1], generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out.reward).all()
