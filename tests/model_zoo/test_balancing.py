"""RGB when no conflict-free direction exists: the update is zero (or conflicts with no task), not round-off;
torchjd's ConFIG as the "config" balancer."""

from __future__ import annotations

import math
import sys

import pytest
import torch

from model_zoo.nets.balancing import GradientBalancer, balance, rgb


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


def _cosines(grads: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
    return (grads @ update) / (grads.norm(dim=1) * update.norm())


@pytest.mark.parametrize("shape", [(4, 3000), (2, 2), (3, 2)])
def test_config_is_torchjds_config_update_of_shape_p(shape):
    aggregation = pytest.importorskip("torchjd.aggregation")
    grads = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    grads[1] -= 1.5 * grads[0]  # a conflict
    update = balance(grads, "config")
    assert update.shape == (shape[1],) and update.dtype == grads.dtype
    expected = aggregation.ConFIG()(grads.double()).float()  # on the full matrix, in float64
    assert torch.allclose(update, expected, rtol=1e-4, atol=1e-5 * float(expected.norm()))


def test_config_of_two_agreeing_gradients_conflicts_with_neither():
    pytest.importorskip("torchjd")
    grads = torch.tensor([[1.0, 0.0, 0.0], [0.5, 1.0, 0.0]])
    update = balance(grads, "config")
    assert update.shape == (3,) and bool((grads @ update >= 0).all())


@pytest.mark.parametrize("seed", range(4))
def test_config_of_conflicting_gradients_has_the_same_positive_cosine_with_each(seed):
    """ConFIG's guarantee: with linearly independent task gradients, the same cosine > 0 with every one."""
    pytest.importorskip("torchjd")
    generator = torch.Generator().manual_seed(seed)
    grads = torch.randn(4, 500, generator=generator) * (0.1 + 3 * torch.rand(4, 1, generator=generator))
    grads[1] = -0.9 * grads[0] + 0.3 * grads[1]  # cosine near -1 with the first
    grads[3] = -grads[2] + 0.5 * grads[3]
    assert float(torch.corrcoef(grads)[0, 1]) < -0.5
    update = GradientBalancer("config", 4)(grads)
    cos = _cosines(grads, update)
    assert bool((cos > 0).all()) and float(cos.max() - cos.min()) < 1e-4


def test_config_without_torchjd_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchjd", None)
    monkeypatch.setitem(sys.modules, "torchjd.aggregation", None)
    with pytest.raises(ImportError, match="pip install torchjd"):
        GradientBalancer("config", 4)
    with pytest.raises(ImportError, match="pip install torchjd"):
        balance(torch.eye(2), "config")
