"""Fixtures of the dream tests: tiny zoo models on CampusNav-v0, and the analytic corridor models."""

from __future__ import annotations

import gymnasium as gym
import pytest

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from model_zoo import registry
from tests.wrappers import analytic
from tests.wrappers.dream_helpers import CAUSAL_CORRIDOR, CORRIDOR, cheapest_obs_mode, tiny_model


@pytest.fixture(scope="module")
def campus():
    """Tiny models on CampusNav-v0, built once per (model id, obs_mode); by default on the cheapest obs_mode."""
    cache: dict = {}

    def build(model_id: str, obs_mode: str | None = None):
        obs_mode = obs_mode or cheapest_obs_mode(model_id)
        if (model_id, obs_mode) not in cache:
            real = gym.make("CampusNav-v0", obs_mode=obs_mode)
            cache[model_id, obs_mode] = tiny_model(model_id, real.observation_space, real.action_space)
        return cache[model_id, obs_mode]

    return build


@pytest.fixture
def corridor():
    """Registers the analytic corridor models for one test; the registry is put back afterwards."""
    saved = dict(registry._REGISTRY)
    model_zoo.register(CORRIDOR, entry_point="tests.wrappers.analytic:CorridorModel")
    model_zoo.register(CAUSAL_CORRIDOR, entry_point="tests.wrappers.analytic:CausalCorridorModel")

    def build(causal: bool = False, **config):
        model_id = CAUSAL_CORRIDOR if causal else CORRIDOR
        return model_zoo.make(model_id, analytic.OBSERVATION_SPACE, analytic.ACTION_SPACE, **config)

    yield build
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)
