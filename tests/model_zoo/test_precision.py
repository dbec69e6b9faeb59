"""``fit(..., precision="bf16")``: the loss under bfloat16 autocast, the weights still float32; bad values refused."""

from __future__ import annotations

import math

import pytest
import torch
from gymnasium import spaces

import model_zoo
from model_zoo.base import Batch
from model_zoo.training import PRECISIONS, fit


def _batch() -> Batch:
    first = torch.zeros(4, 8, dtype=torch.bool)
    first[:, 0] = True
    return Batch(obs=torch.rand(4, 8, 3), action=torch.randint(0, 2, (4, 8)), reward=torch.rand(4, 8),
                 terminated=torch.zeros(4, 8, dtype=torch.bool), is_first=first)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return model_zoo.make("mlp", spaces.Box(-1, 1, (3,), "float32"), spaces.Discrete(2), hidden=16, layers=1)


def test_bf16_training_has_a_finite_loss_and_keeps_float32_weights():
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    history = fit(model, _batch(), steps=4, log_every=2, precision="bf16", progress=False)
    assert all(math.isfinite(row["loss"]) for row in history)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_an_unknown_precision_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="fp32, bf16"):
        fit(_model(), _batch(), steps=1, precision="fp16", progress=False)
    assert PRECISIONS == ("fp32", "bf16")
