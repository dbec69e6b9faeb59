"""Causal variables as network inputs and outputs: their codes, features, graph and prediction heads.

The variables and their domains are ``campus_env.causal.VARIABLES``; a row of codes
(``Batch.causal`` order) holds the day index, the hour in hours, the semester and
weather indices, gameday and road closure as 0/1 and the crowd in [0, 1]. A causal
graph ``{variable: parents}`` is a DAG over them (Pearl (2009), "Causality"), and a
``VariableHead`` predicts variables from a vector: a mechanism ``P(variable | parents)``
or an inference head reading a model's state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import Tensor, nn

from campus_env import causal
from campus_env.schema import CAUSAL_DIM, CAUSAL_SLICES, state_slices

__all__ = [
    "HOUR_HIGH",
    "HOUR_LOW",
    "INDEX",
    "MINUTE",
    "NAMES",
    "VariableHead",
    "causal_features",
    "causal_slot",
    "check_effects",
    "check_graph",
    "code_values",
    "feature_width",
    "graph_config",
    "obs_causal_codes",
    "obs_causal_vector",
    "output_width",
    "topological_order",
]

NAMES: tuple[str, ...] = tuple(causal.VARIABLES)  # the columns of the causal codes, in Batch.causal order
INDEX = {name: i for i, name in enumerate(NAMES)}
HOUR_LOW, HOUR_HIGH = causal.FIRST_MINUTE / 60, causal.LAST_MINUTE / 60
MINUTE = 1.0 / 60.0  # the clock advances one minute per step


# --- the causal graph as a config value ----------------------------------------------------------


def graph_config(graph: Mapping[str, Any]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """A graph ``{variable: parents}`` (e.g. ``env.unwrapped.causal_graph`` or a discovered one) as a config value.

    >>> graph_config({"crowd": ["gameday"], "gameday": ()})[-2:]
    (('road_closure', ()), ('crowd', ('gameday',)))
    """
    unknown = [name for name in graph if name not in INDEX]
    if unknown:
        raise ValueError(f"graph: unknown causal variable {unknown[0]!r}; valid names: {', '.join(NAMES)}")
    return tuple((name, tuple(str(p) for p in graph.get(name, ()))) for name in NAMES)


def check_graph(graph: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``"env"`` (``campus_env.causal.CAUSAL_GRAPH``), a mapping or ``((variable, (parents, ...)), ...)`` as a
    checked config value; ``ValueError`` on unknown names, self-loops and cycles."""
    if graph == "env":
        return graph_config(causal.CAUSAL_GRAPH)
    if isinstance(graph, Mapping):
        pairs = graph_config(graph)
    elif isinstance(graph, (tuple, list)) and all(isinstance(p, (tuple, list)) and len(p) == 2 for p in graph):
        pairs = graph_config({name: tuple(parents) for name, parents in graph})
    else:
        raise ValueError(f"Config.graph must be 'env' or ((variable, (parents, ...)), ...), got {graph!r}")
    parents = dict(pairs)
    for name, ps in pairs:
        for p in ps:
            if p not in INDEX or p == name:
                raise ValueError(f"Config.graph: {name!r} has parent {p!r}; parents must be other variables of "
                                 f"{', '.join(NAMES)}")
    topological_order(parents)
    return pairs


def topological_order(parents: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The variables in an order where parents come first; ``ValueError`` on a cycle."""
    order: list[str] = []
    pending = dict(parents)
    while pending:
        ready = [n for n in NAMES if n in pending and all(p in order for p in pending[n])]
        if not ready:
            raise ValueError(f"Config.graph has a cycle among {sorted(pending)}")
        order += ready
        for n in ready:
            del pending[n]
    return tuple(order)


def check_effects(effects: Any, groups: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """A table ``{group: (variables, ...)}`` of which variables cause each latent group, checked, in ``groups``
    order; ``ValueError`` names an unknown group or variable."""
    table = dict(effects.items() if isinstance(effects, Mapping) else effects)
    for group, names in table.items():
        if group not in groups:
            raise ValueError(f"Config.effects: unknown latent group {group!r}; groups: {', '.join(groups)}")
        for name in names:
            if name not in INDEX:
                raise ValueError(f"Config.effects[{group!r}]: unknown causal variable {name!r}; "
                                 f"valid names: {', '.join(NAMES)}")
    return tuple((g, tuple(str(n) for n in table.get(g, ()))) for g in groups)


# --- codes as features, heads that predict them --------------------------------------------------


def feature_width(name: str) -> int:
    """Features of one variable: one-hot for categorical, the hour as a scalar plus its hour slot, else a scalar."""
    var = causal.VARIABLES[name]
    if var.kind == "categorical":
        return len(var.choices)
    return 1 + causal.HOUR_SLOTS if name == "hour" else 1


def output_width(name: str) -> int:
    """Outputs of a head for one variable: logits of a categorical, one logit of a bool, one value else."""
    var = causal.VARIABLES[name]
    return len(var.choices) if var.kind == "categorical" else 1


def code_values(codes: Tensor) -> list[dict[str, Any]]:
    """Codes (B, 7) as user-facing values, one dict per row (as the env's ``info["causal"]``)."""
    out = []
    for row in codes.detach().cpu().tolist():
        values = {}
        for name, code in zip(NAMES, row, strict=True):
            var = causal.VARIABLES[name]
            if var.kind == "categorical":
                values[name] = var.choices[min(max(int(round(code)), 0), len(var.choices) - 1)]
            elif var.kind == "bool":
                values[name] = bool(round(code))
            else:
                values[name] = float(code)
        out.append(values)
    return out


def causal_features(codes: Tensor, names: tuple[str, ...]) -> Tensor:
    """Codes (..., 7) as network inputs for the variables ``names``: (..., sum of widths)."""
    out = []
    for name in names:
        var, x = causal.VARIABLES[name], codes[..., INDEX[name]]
        if var.kind == "categorical":
            out.append(F.one_hot(x.round().long().clamp(0, len(var.choices) - 1), len(var.choices)).float())
        elif name == "hour":
            slot = (x.floor() - HOUR_LOW).long().clamp(0, causal.HOUR_SLOTS - 1)
            out.append(torch.cat([((x - HOUR_LOW) / (HOUR_HIGH - HOUR_LOW))[..., None],
                                  F.one_hot(slot, causal.HOUR_SLOTS).float()], dim=-1))
        elif var.kind == "bool":
            out.append(x[..., None])
        else:
            out.append(((x - var.low) / (var.high - var.low))[..., None])
    if not out:
        return codes.new_zeros(codes.shape[:-1] + (0,))
    return torch.cat(out, dim=-1)


class VariableHead(nn.Module):
    """Predicts causal variables (logits or values) from an input vector, with their losses and draws."""

    def __init__(self, names: tuple[str, ...], net: nn.Module):
        super().__init__()
        self.names = names
        self.net = net
        self.slices: dict[str, slice] = {}
        start = 0
        for name in names:
            self.slices[name] = slice(start, start + output_width(name))
            start += output_width(name)
        self.out_dim = start

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        out = self.net(x)  # (..., out_dim)
        return {name: out[..., s] for name, s in self.slices.items()}

    @staticmethod
    def value(name: str, out: Tensor) -> Tensor:
        """The predicted code of an interval variable (..., ): the output squashed into the domain."""
        var = causal.VARIABLES[name]
        return var.low + (var.high - var.low) * torch.sigmoid(out[..., 0])

    @staticmethod
    def loss(name: str, out: Tensor, target: Tensor) -> Tensor:
        """Per-element loss (...,): cross-entropy, binary cross-entropy or squared error on the unit scale."""
        var = causal.VARIABLES[name]
        if var.kind == "categorical":
            n = len(var.choices)
            return F.cross_entropy(out.reshape(-1, n), target.round().long().clamp(0, n - 1).reshape(-1),
                                   reduction="none").reshape(target.shape)
        if var.kind == "bool":
            return F.binary_cross_entropy_with_logits(out[..., 0], target.round(), reduction="none")
        scale = var.high - var.low
        return ((VariableHead.value(name, out) - target) / scale).square()

    @staticmethod
    def draw(name: str, out: Tensor, tau: float, u: Tensor | None = None) -> Tensor:
        """A code (B,): drawn with uniforms ``u`` (B,) at temperature ``tau`` (0 or no ``u``: the most likely
        value); interval variables: the value."""
        var = causal.VARIABLES[name]
        if var.kind == "interval":
            return VariableHead.value(name, out)
        logits = out if var.kind == "categorical" else torch.cat([torch.zeros_like(out), out], dim=-1)
        if tau == 0 or u is None:
            return logits.argmax(-1).float()
        cdf = torch.softmax(logits / tau, dim=-1).cumsum(-1)
        return (cdf < u[:, None]).sum(-1).clamp_(max=logits.shape[-1] - 1).float()


def causal_slot(observation_space: gym.Space, vector_keys: tuple[str, ...], vector_dims: Mapping[str, int]):
    """Where a CampusNav observation shows the causal variables: an offset into its vector part, or None.

    ``vector_keys`` and ``vector_dims`` are the observation's vector parts in order and their widths
    (``model_zoo.spaces.ObsSpec``): a Dict's ``"causal"`` Box, or the flat state vector with causal codes.
    """
    from campus_env.env import observation_space as campus_space

    if isinstance(observation_space, spaces.Dict):
        part = observation_space.spaces.get("causal")
        if isinstance(part, spaces.Box) and part.shape == (CAUSAL_DIM,):
            return sum(vector_dims[k] for k in vector_keys[: vector_keys.index("causal")])
        return None
    if observation_space == campus_space("state", True):
        return state_slices(observe_causal=True)["causal"].start
    return None


def obs_causal_codes(x: Tensor) -> Tensor:
    """CampusNav's causal observation (..., 16) as codes (..., 7) in ``Batch.causal`` order."""
    at = {name: part.start for name, part in CAUSAL_SLICES.items()}  # where each scalar variable sits
    day = x[..., CAUSAL_SLICES["day"]].argmax(-1).float()
    weather = x[..., CAUSAL_SLICES["weather"]].argmax(-1).float()
    hour = HOUR_LOW + x[..., at["hour"]] * (HOUR_HIGH - HOUR_LOW)
    return torch.stack([day, hour, x[..., at["semester"]].round(), weather, x[..., at["gameday"]].round(),
                        x[..., at["road_closure"]].round(), x[..., at["crowd"]]], dim=-1)


def obs_causal_vector(codes: Tensor) -> Tensor:
    """Codes (..., 7) as CampusNav's causal observation (..., 16): the inverse of ``obs_causal_codes``."""
    c = {name: codes[..., i] for i, name in enumerate(NAMES)}
    day = F.one_hot(c["day"].round().long().clamp(0, 6), 7).float()
    weather = F.one_hot(c["weather"].round().long().clamp(0, 3), 4).float()
    clock = ((c["hour"] - HOUR_LOW) / (HOUR_HIGH - HOUR_LOW)).clamp(0, 1)
    rest = torch.stack([clock, c["road_closure"], c["crowd"].clamp(0, 1)], dim=-1)
    return torch.cat([day, c["semester"][..., None], weather, c["gameday"][..., None], rest], dim=-1)
