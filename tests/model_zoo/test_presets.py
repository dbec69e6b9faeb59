"""Presets: each model's tuned settings by data kind live with its config and reach ``make``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from gymnasium import spaces

import model_zoo
from model_zoo.models.mlp import MLPWorldModel
from model_zoo.registry import PRESET_KINDS, PRESET_NAMES, Preset, list_presets, preset, spec

BOX = spaces.Box(-1, 1, (4,), np.float32)


@pytest.mark.parametrize("model_id", model_zoo.list_models())
def test_every_model_has_the_presets_of_the_observation_kinds_it_takes(model_id):
    kinds = spec(model_id).load_class().observation_kinds
    names = [name for name in PRESET_NAMES if PRESET_KINDS[name] in kinds]
    assert names and set(names) <= set(list_presets(model_id))
    for name in names:
        assert preset(model_id, name).lr > 0


def test_every_preset_names_its_observation_kind():
    assert set(PRESET_KINDS) == set(PRESET_NAMES)


def test_a_pixel_only_model_has_no_state_preset():
    with pytest.raises(ValueError, match="diffusion: unknown preset 'campusnav-state'; presets: campusnav-pixels"):
        preset("diffusion", "campusnav-state")


def test_unknown_preset_names_the_valid_ones():
    with pytest.raises(ValueError, match="campusnav-state"):
        preset("mlp", "nope")
    with pytest.raises(ValueError, match="unknown preset"):
        model_zoo.make("mlp", BOX, spaces.Discrete(2), preset="nope")


def test_preset_config_applies_and_overrides_win(monkeypatch):
    tuned = {"campusnav-state": Preset(config={"hidden": 24}, lr=1e-3), "campusnav-pixels": Preset()}
    monkeypatch.setattr(MLPWorldModel, "presets", tuned)
    assert model_zoo.make("mlp", BOX, spaces.Discrete(2), preset="campusnav-state").config.hidden == 24
    model = model_zoo.make("mlp", BOX, spaces.Discrete(2), preset="campusnav-state", hidden=8)
    assert model.config.hidden == 8
    default = model_zoo.make("mlp", BOX, spaces.Discrete(2))
    assert default.config == dataclasses.replace(model.config, hidden=default.config.hidden)
