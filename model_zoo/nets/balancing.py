"""Gradient balancing across tasks: plain summation, PCGrad, RGB (rotation-based gradient balancing) and ConFIG.

A model trained on several losses ("tasks") that share parameters gets one gradient
per task on the shared parameters; when two conflict (negative cosine), their sum
moves one task backwards. ``balance`` turns the task gradients ``G`` (K, P) into one
update (P,):

- ``"sum"``: ``sum_i g_i``, the gradient of the summed loss.
- ``"pcgrad"``: PCGrad, Yu et al. (2020), "Gradient Surgery for Multi-Task Learning"
  (arXiv:2001.06782): each task gradient is projected onto the normal plane of every
  other task gradient it conflicts with, and the projections are summed.
- ``"rgb"``: after "RGB: Rotation-Based Gradient Balancing" (OpenReview l0QAezg8HX),
  in our reading of it: unit task gradients are rotated, each by the smallest angle
  that removes its conflicts, toward a consensus direction (the momentum-smoothed
  norm shares of the tasks, projected onto the cone that conflicts with no task),
  and summed with their original norms. Rotations keep each task's gradient norm,
  where projections shorten it; without conflicts the update is the plain sum.
- ``"config"``: ConFIG, Liu et al. (2025), "ConFIG: Towards Conflict-free Training of
  Physics Informed Neural Networks" (arXiv:2408.11104), as ``torchjd`` implements it
  (``torchjd.aggregation.ConFIG``; ``pip install torchjd``, imported only when used): the
  direction whose cosine is the same with every unit task gradient (the pseudo-inverse of
  the unit gradients applied to ones), scaled to the sum of the task gradients' projections
  on it. With linearly independent task gradients it conflicts with none; unlike the others
  it is not the plain sum when nothing conflicts.

Everything after the task gradients is computed in the K-dimensional span of the
unit gradients, from their Gram matrix, so it costs little beside the K backward
passes. ``surrogate_loss`` hands the balanced update to a single ``backward``.

>>> import torch
>>> g = torch.tensor([[1.0, 0.0], [-0.5, 1.0]])  # cosine -0.45: a conflict
>>> update = balance(g, "rgb")
>>> bool((g @ update >= 0).all()), bool(torch.allclose(balance(g.abs(), "rgb"), g.abs().sum(0)))
(True, True)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["BALANCERS", "GradientBalancer", "balance", "pcgrad", "rgb", "surrogate_loss", "torchjd_config"]

BALANCERS = ("sum", "pcgrad", "rgb", "config")
_TINY = 1e-12
_ROUNDOFF = 10.0  # a consensus shorter than this many sqrt(eps) of its coordinates is round-off, not a direction


def pcgrad(grads: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """PCGrad's update (P,) from task gradients (K, P) (Yu et al., 2020)."""
    projected = grads.clone()
    k = grads.shape[0]
    for i in range(k):
        order = torch.randperm(k, generator=generator).tolist()
        for j in order:
            if j == i:
                continue
            dot = projected[i] @ grads[j]
            if dot < 0:
                projected[i] -= dot / grads[j].square().sum().clamp_min(_TINY) * grads[j]
    return projected.sum(0)


def _config_aggregator():
    """``torchjd``'s ConFIG aggregator; an ImportError that says how to install ``torchjd`` where it is missing."""
    try:
        from torchjd.aggregation import ConFIG
    except ImportError as err:
        raise ImportError("the 'config' balancer is torchjd's ConFIG aggregator and needs torchjd: "
                          "pip install torchjd") from err
    return ConFIG()


def torchjd_config(grads: Tensor) -> Tensor:
    """ConFIG's update (P,) from task gradients (K, P) (Liu et al., 2025), by ``torchjd.aggregation.ConFIG``.

    ConFIG commutes with isometries (row norms, the pseudo-inverse, inner products), so it runs on the
    coordinates ``R.T`` (K, K') of the gradients in an orthonormal basis ``Q`` (P, K') of their span
    (``grads.T = Q R``) and the result goes back through ``Q``: the same update as on ``grads`` itself,
    without a pseudo-inverse of a (K, P) matrix (an SVD, ~1 s per step at P = 10^6 on one core).
    """
    with torch.no_grad():
        q, r = torch.linalg.qr(grads.t())  # (P, K'), (K', K) with K' = min(K, P)
        return _config_aggregator()(r.t()) @ q.t()


def cone_projection(gram: Tensor, coords: Tensor) -> Tensor:
    """Coordinates of the nearest point to ``x = coords @ u`` with ``<x, u_j> >= 0`` for every j.

    ``gram`` (K, K) is ``u @ u.T`` for unit rows ``u``; ``coords`` (K,). The nearest
    point is ``x + sum_j l_j u_j`` with ``l >= 0`` minimising ``l G l / 2 + l G coords``
    (the dual of the projection). Solved exactly: the active sets are tried smallest
    first and the first that meets the optimality conditions is the answer (K is the
    number of tasks, a handful; past 10 tasks, coordinate descent instead).
    """
    G = gram.double()
    offset = G @ coords.double()  # (K,) <x, u_j>
    k = len(coords)
    if bool((offset >= 0).all()):
        return coords
    if k <= 10:
        for size in range(1, k + 1):
            for active in itertools.combinations(range(k), size):
                idx = list(active)
                lam = torch.zeros_like(offset)
                lam[idx] = -torch.linalg.pinv(G[idx][:, idx]) @ offset[idx]
                if bool((lam >= -1e-12).all()) and bool((G @ lam.clamp_min(0.0) + offset >= -1e-9).all()):
                    return coords + lam.clamp_min(0.0).to(coords.dtype)
    lam = torch.zeros_like(offset)
    for _ in range(2000):
        for j in range(k):
            lam[j] = (lam[j] - (G[j] @ lam + offset[j]) / G[j, j].clamp_min(_TINY)).clamp_min(0.0)
    return coords + lam.to(coords.dtype)


def rgb(
    grads: Tensor,
    shares: Tensor | None = None,
    mu: float = 0.9,
    lam: float = 1.0,
    alpha_steps: int = 3,
) -> tuple[Tensor, Tensor]:
    """RGB's update (P,) from task gradients (K, P), and the new smoothed norm shares (K,).

    ``shares`` is the previous step's smoothed shares, or None / zeros on the first
    step; see the module docstring for the method.
    """
    norms = grads.norm(dim=1)  # (K,)
    live = norms > _TINY
    previous = shares if shares is not None else torch.zeros_like(norms)
    if int(live.sum()) < 2:  # fewer than two tasks with a gradient: nothing can conflict
        return grads.sum(0), previous
    u = grads[live] / norms[live, None]  # (K', P)
    n = norms[live]  # (K',)
    now = n / n.sum()
    smoothed = now if float(previous[live].sum()) < _TINY else mu * previous[live] + (1.0 - mu) * now
    new_shares = previous.clone()
    new_shares[live] = smoothed

    wide = u.double()  # the K x K algebra in float64
    gram = wide @ wide.t()  # (K', K') cosines between tasks
    del wide
    if bool((gram >= 0).all()):
        return grads.sum(0), new_shares
    coords = cone_projection(gram, smoothed.double())  # the consensus d, in coordinates of the u_i
    length = float((coords @ gram @ coords).clamp_min(0.0).sqrt())
    # the tasks leave no direction that conflicts with none (e.g. exactly opposite, or three at 120 degrees): the
    # cone is then a point and ``length`` is the round-off of the unit gradients' dtype, scaled by the coordinates
    if length <= _ROUNDOFF * math.sqrt(torch.finfo(u.dtype).eps) * float(coords.abs().sum()):
        return torch.zeros_like(grads[0]), new_shares
    d = (coords.to(u.dtype) @ u) / length  # (P,)
    du = (gram @ coords / length).clamp(-1.0, 1.0)  # (K',) cosine of each task with the consensus, >= 0
    s = (1.0 - du.square()).clamp_min(0.0).sqrt()  # (K',) sine of the angle to d
    # w_i: the unit vector in span(u_i, d) orthogonal to u_i, pointing to d; <w_i, u_j> from the Gram matrix
    wu = (du[None, :] - du[:, None] * gram) / s[:, None].clamp_min(_TINY)  # (K', K') row i: <w_i, u_j>
    angle = torch.arccos(du)  # (K',) angle of u_i to d

    def worst(theta: Tensor) -> Tensor:
        """The most negative cosine of each rotated task with the other tasks: (K',) -> (K',)."""
        cos = torch.cos(theta)[:, None] * gram + torch.sin(theta)[:, None] * wu  # (K', K') <r_i, u_j>
        return cos.masked_fill(torch.eye(len(n), dtype=torch.bool, device=cos.device), math.inf).min(1).values

    rotatable = s > 1e-6
    conflicted = (worst(torch.zeros_like(angle)) < 0) & rotatable
    lo, hi = torch.zeros_like(angle), torch.ones_like(angle)  # fraction alpha of the angle: lo infeasible, hi kept
    for _ in range(max(int(alpha_steps), 0)):
        mid = 0.5 * (lo + hi)
        ok = worst(mid * angle) >= 0
        hi = torch.where(ok, mid, hi)
        lo = torch.where(ok, lo, mid)
    theta = torch.where(conflicted, torch.minimum(lam * hi * angle, angle), torch.zeros_like(angle))  # (K',)
    # r_i = cos(theta) u_i + sin(theta) w_i, with w_i = (d - <d, u_i> u_i) / s_i
    coef_u = n.double() * (torch.cos(theta) - torch.sin(theta) * du / s.clamp_min(_TINY) * rotatable)  # (K',)
    coef_d = (n.double() * torch.sin(theta) / s.clamp_min(_TINY) * rotatable).sum()
    return coef_u.to(u.dtype) @ u + float(coef_d) * d, new_shares


def balance(grads: Tensor, method: str = "sum", **kwargs) -> Tensor:
    """The update (P,) of ``method`` (one of ``BALANCERS``) from task gradients (K, P); stateless.

    ``kwargs`` go to ``pcgrad`` (``generator``) or ``rgb`` (``mu``, ``lam``, ``alpha_steps``).
    """
    if method == "sum":
        return grads.sum(0)
    if method == "pcgrad":
        return pcgrad(grads, **kwargs)
    if method == "rgb":
        return rgb(grads, **kwargs)[0]
    if method == "config":
        return torchjd_config(grads, **kwargs)
    raise ValueError(f"unknown balancer {method!r}; choose one of {', '.join(map(repr, BALANCERS))}")


class GradientBalancer(nn.Module):
    """A balancer with its state: RGB's smoothed norm shares of the ``num_tasks`` tasks (a buffer).

    ``balancer(grads)`` returns the update (P,) and, for RGB, moves the shares.
    """

    def __init__(self, method: str, num_tasks: int, mu: float = 0.9, lam: float = 1.0, alpha_steps: int = 3):
        super().__init__()
        if method not in BALANCERS:
            raise ValueError(f"unknown balancer {method!r}; choose one of {', '.join(map(repr, BALANCERS))}")
        if method == "config":
            _config_aggregator()  # a missing torchjd fails here, not at the first training step
        self.method, self.mu, self.lam, self.alpha_steps = method, mu, lam, alpha_steps
        self.register_buffer("momentum", torch.zeros(num_tasks if method == "rgb" else 0))

    def forward(self, grads: Tensor) -> Tensor:
        if self.method == "rgb":
            update, shares = rgb(grads, self.momentum, self.mu, self.lam, self.alpha_steps)
            self.momentum.copy_(shares.detach())
            return update
        return balance(grads, self.method)


def surrogate_loss(
    losses: Sequence[Tensor],
    params: Sequence[nn.Parameter],
    shared: Sequence[bool],
    balancer: nn.Module,
) -> tuple[Tensor, dict[str, float]]:
    """A scalar whose value is ``sum(losses)`` and whose gradient is the balanced update.

    The gradient of each loss is taken on every parameter (K backward passes); on the
    ``shared`` ones the task gradients go through ``balancer`` (K, P) -> (P,), on the
    others they are summed. The returned scalar is ``sum(losses)`` plus
    ``<params, update> - <params, update>.detach()``, so one ``backward()`` on it (as
    ``model_zoo.fit`` does) leaves exactly the balanced update in ``.grad``.

    Returns the scalar and diagnostics: ``grad_conflict`` (the lowest cosine between two
    task gradients on the shared parameters) and ``update_task_cos`` (the lowest cosine
    between the update and a task gradient).
    """
    total = torch.stack([loss.reshape(()) for loss in losses]).sum()
    per_task = []
    for i, loss in enumerate(losses):
        if loss.requires_grad:
            grads = torch.autograd.grad(loss, params, retain_graph=i < len(losses) - 1, allow_unused=True)
        else:
            grads = (None,) * len(params)
        per_task.append([torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)])
    shared_index = [i for i, s in enumerate(shared) if s]
    G = torch.stack([torch.cat([task[i].reshape(-1) for i in shared_index]) for task in per_task])  # (K, P)
    update = balancer(G) if shared_index else G.new_zeros(0)  # (P,)
    final, offset = [], 0
    for i, p in enumerate(params):
        if shared[i]:
            final.append(update[offset : offset + p.numel()].view_as(p))
            offset += p.numel()
        else:
            final.append(sum(task[i] for task in per_task))
    inner = sum((p * g.detach()).sum() for p, g in zip(params, final, strict=True))
    norms = G.norm(dim=1).clamp_min(_TINY)
    cos = (G @ G.t()) / (norms[:, None] * norms[None, :])
    off = ~torch.eye(len(losses), dtype=torch.bool, device=G.device)
    stats = {
        "grad_conflict": float(cos[off].min()) if len(losses) > 1 else 1.0,
        "update_task_cos": float((G @ update / (norms * update.norm().clamp_min(_TINY))).min()),
    }
    return total.detach() + (inner - inner.detach()), stats
