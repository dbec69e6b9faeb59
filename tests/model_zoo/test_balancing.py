"""RGB when no conflict-free direction exists: the update is zero (or conflicts with no task), not round-off."""

from __future__ import annotations

import math

import pytest
import torch

from model_zoo.nets.balancing import rgb


def _plane(p: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two orthonormal float32 directions (P,) in a random plane."""
    e1, e2 = torch.randn(2, p, generator=generator)
    e2 = e2 - (e2 @ e1) / (e1 @ e1) * e1
    return e1 / e1.norm(), e2 / e2.norm()


def _worst_cosine(grads: torch.Tensor, update: torch.Tensor) -> float:
    if float(update.norm()) == 0.0:
        return 0.0
    return float(((grads @ update) / (grads.norm(dim=1) * update.norm())).min())


@pytest.mark.parametrize("seed", range(4))
def test_rgb_of_exactly_opposite_gradients_conflicts_with_neither(seed):
    generator = torch.Generator().manual_seed(seed)
    g = torch.randn(1000, generator=generator)
    grads = torch.stack([g, -(0.5 + torch.rand((), generator=generator)) * g])  # (2, P), cosine -1
    update, _ = rgb(grads)
    assert _worst_cosine(grads, update) >= -1e-3


@pytest.mark.parametrize("seed", range(4))
def test_rgb_of_three_gradients_at_120_degrees_conflicts_with_none(seed):
    generator = torch.Generator().manual_seed(seed)
    e1, e2 = _plane(1000, generator)
    angles = [2 * math.pi * k / 3 for k in range(3)]
    scale = 0.5 + torch.rand(3, generator=generator)
    grads = torch.stack([math.cos(a) * e1 + math.sin(a) * e2 for a in angles]) * scale[:, None]  # (3, P)
    update, _ = rgb(grads)
    assert _worst_cosine(grads, update) >= -1e-3


def test_rgb_still_finds_a_narrow_conflict_free_direction():
    e1, e2 = _plane(50, torch.Generator().manual_seed(0))
    angle = math.radians(170.0)  # a conflict, with a 10-degree cone that conflicts with neither task
    grads = torch.stack([e1, math.cos(angle) * e1 + math.sin(angle) * e2])
    update, _ = rgb(grads)
    assert float(update.norm()) > 0.1 and _worst_cosine(grads, update) >= -1e-5
