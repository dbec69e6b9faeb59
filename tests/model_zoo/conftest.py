"""Fixtures the model tests share: one torch thread, and a model registered for one test only."""

from __future__ import annotations

import pytest
import torch

import model_zoo
from model_zoo import registry


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
