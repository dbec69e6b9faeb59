"""model_zoo.pretrained: the shipped weights load, dream and reproduce their cards; tampering is refused."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from model_zoo.checkpoint import CheckpointError
from model_zoo.pretrained import (
    CARD_FILE,
    PRETRAINED_ROOT,
    check_pretrained,
    list_pretrained,
    load_pretrained,
    one_step_check,
    pretrained_card,
    save_pretrained,
)

SHIPPED = list_pretrained()
CHECK = dict(episodes=2, steps=20, seed=5, windows=4)


def test_every_registered_model_that_takes_vectors_is_shipped_on_campusnav_state_vectors():
    takes_vectors = [m for m in model_zoo.list_models()
                     if "vector" in model_zoo.registry.spec(m).load_class().observation_kinds]
    assert {f"{m}/campusnav-state-v0" for m in takes_vectors} <= set(SHIPPED)


def test_the_shipped_weights_fit_the_package_budget():
    from campusnav.pretrain import MAX_BYTES, pretrained_bytes

    assert 0 < pretrained_bytes(PRETRAINED_ROOT) <= MAX_BYTES


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_model_loads_imagines_decodes_and_reproduces_its_card(name):
    card = pretrained_card(name)
    model = load_pretrained(name)
    assert not model.training and model.model_id == card["model_id"] == name.split("/")[0]
    env = gym.make(card["env_id"], **card["env_kwargs"])
    assert model.observation_space == env.observation_space and model.action_space == env.action_space
    state = model.initial_state(3)
    with torch.no_grad():
        step = model.imagine(state, torch.as_tensor(np.stack([env.action_space.sample() for _ in range(3)])))
        decoded = model.decode(step.state)
    first = {k: v[0].numpy() for k, v in decoded.items()} if isinstance(decoded, dict) else decoded[0].numpy()
    assert env.observation_space.contains(first)  # the env's own format: dtype, shape and bounds
    for key in ("dataset", "training", "metrics", "command", "date", "commit"):
        assert card[key], key
    result = check_pretrained(name)
    assert result["measured"] == pytest.approx(result["card"], rel=result["tolerance"])


def _tiny(tmp_path):
    env = gym.make("CampusNav-v0", obs_mode="state")
    torch.manual_seed(0)
    model = model_zoo.make("mlp", env.observation_space, env.action_space, hidden=16)
    value = one_step_check(model, "CampusNav-v0", {"obs_mode": "state"}, **CHECK)
    card = {"env_id": "CampusNav-v0", "env_kwargs": {"obs_mode": "state"}, "command": "make it again",
            "check": {**CHECK, "tolerance": 1e-6, "obs_mse@1": value}}
    folder = save_pretrained(model, "mlp/tiny-v0", card, root=tmp_path)
    return model, folder


def test_saved_entries_are_listed_loaded_and_checked(tmp_path):
    model, folder = _tiny(tmp_path)
    assert list_pretrained(tmp_path) == ["mlp/tiny-v0"]
    card = json.loads((folder / CARD_FILE).read_text())
    assert card["name"] == "mlp/tiny-v0" and len(card["weights_sha256"]) == 64
    loaded = load_pretrained("mlp/tiny-v0", root=tmp_path)
    for (key, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), key
    result = check_pretrained("mlp/tiny-v0", root=tmp_path)
    assert result["measured"] == pytest.approx(result["card"], rel=1e-6)


def test_a_changed_model_no_longer_matches_its_check(tmp_path):
    model, folder = _tiny(tmp_path)
    with torch.no_grad():
        model.net[-1].bias.add_(0.05)  # what a change to the model's code that moves its outputs does
    changed = one_step_check(model, "CampusNav-v0", {"obs_mode": "state"}, **CHECK)
    assert changed != pytest.approx(pretrained_card("mlp/tiny-v0", tmp_path)["check"]["obs_mse@1"], rel=1e-3)


@pytest.mark.parametrize("file", ["model.safetensors", "config.json"])
def test_a_file_that_is_not_the_cards_is_refused(tmp_path, file):
    _, folder = _tiny(tmp_path)
    path = folder / file
    data = bytearray(path.read_bytes())
    data[-2] = ord(" ") if data[-2] != ord(" ") else ord("\t")  # one byte changed, still a readable file
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256 .* is not the .* card"):
        load_pretrained("mlp/tiny-v0", root=tmp_path)


def test_unknown_and_malformed_names_are_refused(tmp_path):
    _tiny(tmp_path)
    with pytest.raises(KeyError, match="available: mlp/tiny-v0"):
        load_pretrained("rssm/tiny-v0", root=tmp_path)
    for bad in ("mlp", "mlp/tiny-v0/x", "../mlp"):
        with pytest.raises(ValueError, match="<model id>/<data name>"):
            load_pretrained(bad, root=tmp_path)
    with pytest.raises(ValueError, match="must be 'mlp/"):
        save_pretrained(model_zoo.make("mlp", gym.spaces.Box(-1, 1, (2,)), gym.spaces.Discrete(2), hidden=4),
                        "rssm/x-v0", {}, root=tmp_path)

