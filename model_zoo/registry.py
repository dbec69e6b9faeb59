"""A registry of world models, like Gymnasium's: ids map to entry points and default configs.

>>> import numpy as np
>>> from gymnasium import spaces
>>> "mlp" in list_models()
True
>>> model = make("mlp", spaces.Box(-1, 1, (4,), np.float32), spaces.Discrete(2), hidden=32)
>>> model.config.hidden, model.model_id
(32, 'mlp')
>>> preset("mlp", "campusnav-state").lr
0.001

``make`` first builds the model on torch's ``meta`` device, which allocates nothing,
and refuses a config whose tensors would hold more than ``MAX_PARAMETERS`` numbers,
naming the field that makes it so large: an absurd value (from a command line or a
checkpoint's ``config.json``) is a ``ValueError``, never a failed allocation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import torch

from model_zoo.metadata import resolve_function

__all__ = [
    "MAX_PARAMETERS",
    "PRESET_KINDS",
    "PRESET_NAMES",
    "ModelSpec",
    "Preset",
    "count_parameters",
    "list_models",
    "list_presets",
    "make",
    "preset",
    "register",
    "spec",
]


MAX_PARAMETERS = 1_000_000_000
"""The most numbers (parameters and buffers) a model ``make`` builds may hold: a generous bound, far above the zoo's."""

PRESET_NAMES = ("campusnav-state", "campusnav-pixels")
"""The presets: CampusNav-v0's flat state vectors, and its dict observations with the image."""

PRESET_KINDS = {"campusnav-state": "vector", "campusnav-pixels": "image+vector"}
"""The observation kind (``model_zoo.spaces.OBSERVATION_KINDS``) of each preset's data: a model has the presets of
the kinds it takes."""


@dataclass(frozen=True)
class Preset:
    """A model's tuned settings for one kind of data: config overrides and the Adam learning rate ``fit`` uses."""

    config: Mapping[str, Any] = field(default_factory=dict)
    lr: float = 3e-4


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its id, ``"module:Class"`` entry point and config overrides."""

    id: str
    entry_point: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def load_class(self) -> type:
        return resolve_function(self.entry_point)


_REGISTRY: dict[str, ModelSpec] = {}


def register(id: str, entry_point: str, **kwargs: Any) -> None:
    """Registers a model class under ``id``; ``kwargs`` are config defaults for that id."""
    if id in _REGISTRY:
        raise ValueError(f"model id {id!r} is already registered")
    if ":" not in entry_point:
        raise ValueError(f"entry_point must look like 'module:Class', got {entry_point!r}")
    _REGISTRY[id] = ModelSpec(id, entry_point, dict(kwargs))


def list_models() -> list[str]:
    """Every registered id, in registration order."""
    return list(_REGISTRY)


def spec(id: str) -> ModelSpec:
    """The spec of ``id``; a clear error naming the valid ids otherwise."""
    if not isinstance(id, str):
        raise TypeError(f"a model id is a string, got {type(id).__name__} {id!r}")
    if id not in _REGISTRY:
        raise ValueError(f"unknown model id {id!r}; registered: {', '.join(_REGISTRY) or 'none'}")
    return _REGISTRY[id]


def list_presets(id: str) -> list[str]:
    """The preset names of model ``id``."""
    return list(spec(id).load_class().presets)


def preset(id: str, name: str) -> Preset:
    """Model ``id``'s preset ``name`` (see ``PRESET_NAMES``); a clear error naming the valid ones otherwise."""
    presets = spec(id).load_class().presets
    if name not in presets:
        raise ValueError(f"{id}: unknown preset {name!r}; presets: {', '.join(presets)}")
    return presets[name]


def make(id: str, observation_space: gym.Space, action_space: gym.Space, *, preset: str | None = None,
         **overrides: Any):
    """Builds model ``id`` for the given spaces: registered defaults, then ``preset``'s config, then ``overrides``.

    Raises ``ValueError`` naming the field when the config would build more than ``MAX_PARAMETERS`` numbers.
    """
    cls, config = _config(id, preset, overrides)
    _check_size(id, cls, config, observation_space, action_space)
    model = cls(observation_space, action_space, config)
    model.model_id = id
    return model


def count_parameters(id: str, observation_space: gym.Space, action_space: gym.Space, *, preset: str | None = None,
                     **overrides: Any) -> int:
    """The numbers (parameters and buffers) model ``id`` would hold, counted on the ``meta`` device (no allocation)."""
    cls, config = _config(id, preset, overrides)
    return _meta_count(id, cls, config, observation_space, action_space)


def _config(id: str, preset: str | None, overrides: dict[str, Any]) -> tuple[type, Any]:
    model_spec = spec(id)
    cls = model_spec.load_class()
    tuned = dict(_preset(id, preset).config) if preset is not None else {}
    return cls, build_config(cls.Config, {**model_spec.kwargs, **tuned, **overrides}, id)


def _meta_count(id: str, cls: type, config: Any, observation_space: gym.Space, action_space: gym.Space) -> int:
    try:
        with torch.device("meta"):
            model = cls(observation_space, action_space, config)
    except RuntimeError as error:  # the meta device allocates nothing, so this is a config no model can have
        raise ValueError(f"{id}: cannot build a model with config {config}: {error}") from None
    return sum(tensor.numel() for tensor in model.state_dict().values())


def _check_size(id: str, cls: type, config: Any, observation_space: gym.Space, action_space: gym.Space) -> None:
    """Raises ``ValueError`` naming the culprit field(s) if ``config`` builds more than ``MAX_PARAMETERS`` numbers."""
    count = _meta_count(id, cls, config, observation_space, action_space)
    if count <= MAX_PARAMETERS:
        return
    try:
        default = cls.Config()
    except (TypeError, ValueError):  # a config without defaults for every field: nothing to compare with
        default = None
    culprits = []
    for name in [f.name for f in dataclasses.fields(config)] if default is not None else []:
        value, reference = getattr(config, name), getattr(default, name)
        if value == reference:
            continue
        smaller = dataclasses.replace(config, **{name: reference})
        try:
            culprits.append((_meta_count(id, cls, smaller, observation_space, action_space), name, value))
        except (TypeError, ValueError):
            continue
    culprits.sort()
    named = f"config field {culprits[0][1]}={culprits[0][2]!r}" if culprits else "this config"
    raise ValueError(
        f"{id}: {named} builds a model of {count:,} parameters and buffers, more than the limit of "
        f"{MAX_PARAMETERS:,} (model_zoo.registry.MAX_PARAMETERS); config {config}"
    )


def build_config(config_cls: type, values: dict[str, Any], id: str = "model"):
    """``config_cls(**values)`` with a clear error for unknown fields."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{id}: unknown config field(s) {unknown}; valid fields: {', '.join(sorted(names))}")
    return config_cls(**values)


_preset = preset  # ``make`` takes a ``preset`` argument that shadows the function
