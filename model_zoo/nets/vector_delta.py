"""A change head for the vector part of an observation: exact positions stay exact in a dream.

A latent model decodes the vector part (positions, goal, causal codes) from its
latent, and a decoder that is a little off everywhere puts the agent a cell or two
away from where it is: no imagined state is then one that reality reaches. The
zoo's ``mlp`` does not have this problem because it predicts the change of the
observation from the last one (Nagabandi et al. 2018, "Neural Network Dynamics for
Model-Based Deep Reinforcement Learning with Model-Free Fine-Tuning",
arXiv:1708.02596). ``VectorDelta`` gives a latent model the same: its state
carries an estimate of the vector part (the observation itself after ``observe``),
and each imagined step moves the estimate by a head's predicted change, read from
the model's features, the estimate and the action. Changes are learnt standardised
by their running statistics, so the rare moves of a few elements are not drowned by
the many elements that hold still.

>>> import torch
>>> delta = VectorDelta(feature_dim=3, vector_dim=2, action_dim=1, hidden=8)
>>> vector = torch.tensor([[0.5, 0.25]])
>>> bool(torch.equal(delta.step(torch.zeros(1, 3), vector, torch.ones(1, 1)), vector))  # starts at no change
True
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from model_zoo.nets.layers import RunningNorm, mlp

__all__ = ["VectorDelta"]


class VectorDelta(nn.Module):
    """[features, standardised estimate, action] -> the estimate's next value; its loss on observed sequences."""

    def __init__(self, feature_dim: int, vector_dim: int, action_dim: int, hidden: int = 128, layers: int = 2):
        super().__init__()
        self.net = mlp(feature_dim + vector_dim + action_dim, vector_dim, hidden, layers)
        self.inputs = RunningNorm(vector_dim)  # of observed vectors: how the head reads an estimate
        self.changes = RunningNorm(vector_dim)  # of the changes between consecutive steps
        with torch.no_grad():  # no change until trained
            self.net[-1].weight.zero_()
            self.net[-1].bias.zero_()

    def read(self, vector: Tensor) -> Tensor:
        """An estimate (..., V) as the head reads it, standardised (also what a controller may read)."""
        return self.inputs.normalize(vector)

    def step(self, features: Tensor, vector: Tensor, action: Tensor) -> Tensor:
        """The next estimate (..., V) from features (..., F), the estimate (..., V) and the action (..., A)."""
        change = self.net(torch.cat([features, self.read(vector), action], dim=-1))
        return vector + self.changes.denormalize(change)

    def loss(self, features: Tensor, before: Tensor, after: Tensor, action: Tensor, valid: Tensor) -> Tensor:
        """Per-step squared error of the standardised change, averaged over elements: (...), 0 where not ``valid``.

        ``features`` (..., F) are those the model has at the step from ``before`` to
        ``after`` (each (..., V), observed) under ``action`` (..., A). In training mode
        the running statistics first take in the valid steps.
        """
        change = after - before
        if self.training:
            self.inputs.update(before[valid])
            self.changes.update(change[valid])
        predicted = self.net(torch.cat([features, self.read(before), action], dim=-1))
        error = (predicted - self.changes.normalize(change)).square().mean(-1)
        return error.masked_fill(~valid, 0.0)
