"""Fixtures the model tests share: one torch thread, a model registered for one test, a tiny checkpointed model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import model_zoo
from model_zoo import registry
from tests.model_zoo.checkpoint_helpers import ACTION_SPACE, OBS_SPACE, TINY, TinyModel


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread, and a busy machine does not stall OpenMP barriers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def register_model():
    """``register_model(model_id, entry_point)`` registers a model for one test; the registry is put back after."""
    saved = dict(registry._REGISTRY)

    def register(model_id: str, entry_point: str) -> str:
        model_zoo.register(model_id, entry_point=entry_point)
        return model_id

    yield register
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)


# --- the checkpoint tests' tiny model (tests.model_zoo.checkpoint_helpers) ---


@pytest.fixture
def tiny_model_id(register_model):
    """Registers TinyModel for one test; the registry is put back afterwards."""
    return register_model(TINY, f"{TinyModel.__module__}:TinyModel")


@pytest.fixture
def tiny_model(tiny_model_id):
    torch.manual_seed(0)
    model = model_zoo.make(tiny_model_id, OBS_SPACE, ACTION_SPACE, hidden=6, pool=(2, 3))
    with torch.no_grad():
        model.updates += 7
    return model


@pytest.fixture
def tiny_checkpoint(tiny_model, tmp_path) -> Path:
    return tiny_model.save(tmp_path / "ckpt")
