"""causal_vae_mdnrnn: the latent groups are structural (issue 29, item 2).

Each dynamic group's transition and prior read only its own latent history, the action
and its declared causes (``config.effects``); the static group (``layout``) is never
changed by imagination. At temperature 0 an intervention therefore moves exactly the
groups whose causes it changes, bit for bit, and no other.
"""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from campus_env import causal
from model_zoo.models.causal_vae_mdnrnn import GROUPS, INDEX, NAMES, STATIC_GROUPS, graph_config

TINY = dict(layout_dim=2, local_dim=2, social_dim=2, temporal_dim=2, hidden=16, mixtures=2, depth=4,
            vector_hidden=16, mech_hidden=8)
SATURDAY_NOON = {"day": 5, "hour": 12.0, "semester": 0, "weather": 0, "gameday": 0, "road_closure": 0, "crowd": 0.3}


def _model(temperature: float, **changes):
    torch.manual_seed(0)
    env = gym.make("CampusNav-v0", obs_mode="state")
    return model_zoo.make("causal_vae_mdnrnn", env.observation_space, env.action_space, temperature=temperature,
                          **TINY, **changes).eval()


def _state(model, batch: int = 3):
    state = model.initial_state(batch)
    row = torch.tensor([SATURDAY_NOON[n] for n in NAMES], dtype=torch.float32)
    state["causal"] = state["natural"] = row.expand(batch, -1).clone()
    state["residual"] = model.abduct(state["causal"])
    g = torch.Generator().manual_seed(1)
    state["z"] = torch.randn(batch, model.config.z_dim, generator=g)
    state["h"] = torch.randn(state["h"].shape, generator=g)
    state["c"] = torch.randn(state["c"].shape, generator=g)
    return state


def _rollout(model, state, do, steps: int = 3):
    outs = []
    with torch.no_grad():
        for t in range(steps):
            out = model.imagine(state, torch.full((state["z"].shape[0],), t % 2), do=do,
                                generator=torch.Generator().manual_seed(t))
            state = out.state
            outs.append(out)
    return outs


def _moved(model, a, b) -> set[str]:
    ga, gb = model._groups(a.state["z"]), model._groups(b.state["z"])
    return {g for g in GROUPS if not torch.equal(ga[g], gb[g])}


# a graph where the weather has no descendant and the day reaches only the crowd, so each intervention below
# changes only the variable it names (and, for the day, the crowd)
SPARSE = graph_config({**causal.CAUSAL_GRAPH, "crowd": ("day", "hour", "gameday"), "gameday": ("semester",)})


@pytest.mark.parametrize("do, expected", [
    ({"weather": "snowy"}, {"local"}),
    ({"day": 2}, {"social", "temporal"}),  # the day is no cause of the local group: it stays put
    ({"crowd": 0.9}, {"social"}),
    ({"road_closure": True}, {"local"}),  # acts on the layout too, which is static
])
def test_an_intervention_moves_only_the_groups_it_acts_on(do, expected):
    model = _model(0.0, graph=SPARSE)
    state = _state(model)
    plain, done = _rollout(model, state, None), _rollout(model, state, do)
    for p, d in zip(plain, done, strict=True):
        assert _moved(model, p, d) == expected


@pytest.mark.parametrize("name", NAMES)
def test_a_group_moves_exactly_when_one_of_its_causes_changes(name):
    model = _model(0.0)
    state = _state(model)
    values = {"day": 2, "hour": 15.5, "semester": "spring", "weather": "snowy", "gameday": True,
              "road_closure": True, "crowd": 0.9}
    do = {name: values[name]}
    plain, done = _rollout(model, state, None, 1)[0], _rollout(model, state, do, 1)[0]
    with torch.no_grad():
        at_t = model.intervene(state["natural"], state["causal"], state["residual"], model.do_codes(do), None)
    pairs = ((state["natural"], at_t), (plain.state["causal"], done.state["causal"]))  # codes in force at t, t+1
    changed = {n for a, b in pairs for n in NAMES if not torch.equal(a[:, INDEX[n]], b[:, INDEX[n]])}
    expected = {g for g, causes in model.effects.items() if g not in STATIC_GROUPS and set(causes) & changed}
    assert _moved(model, plain, done) == expected


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_the_static_group_is_unchanged_by_imagination(temperature):
    model = _model(temperature)
    state = _state(model)
    for do in (None, {"semester": "spring", "road_closure": True}, {"day": 0, "hour": 8.0}):
        for out in _rollout(model, state, do, 4):
            for g in STATIC_GROUPS:
                assert torch.equal(model._groups(out.state["z"])[g], model._groups(state["z"])[g])


def test_a_checkpoint_from_the_shared_lstm_layout_is_refused_clearly():
    from model_zoo.checkpoint import CheckpointError

    model = _model(1.0)
    old = {**model.state_dict(), "cell.weight_ih": torch.zeros(4, 4)}  # the one LSTM all groups shared
    with pytest.raises(CheckpointError, match="retrain"):
        model.upgrade_tensors(old)
    assert model.upgrade_tensors(dict(model.state_dict())).keys() == model.state_dict().keys()


def test_hidden_is_split_among_the_dynamic_groups():
    from model_zoo.models.causal_vae_mdnrnn import Config

    assert Config(hidden=16).hidden_dims == {"local": 6, "social": 5, "temporal": 5}
    with pytest.raises(ValueError, match="hidden must be at least 3"):
        Config(hidden=2)
