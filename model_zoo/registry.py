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
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

__all__ = ["PRESET_NAMES", "ModelSpec", "Preset", "list_models", "list_presets", "make", "preset", "register", "spec"]


PRESET_NAMES = ("campusnav-state", "campusnav-pixels")
"""The presets every model has: CampusNav-v0's flat state vectors, and its dict observations with the image."""


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
        module, _, name = self.entry_point.partition(":")
        return getattr(importlib.import_module(module), name)


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
    """Builds model ``id`` for the given spaces: registered defaults, then ``preset``'s config, then ``overrides``."""
    model_spec = spec(id)
    cls = model_spec.load_class()
    tuned = dict(_preset(id, preset).config) if preset is not None else {}
    config = build_config(cls.Config, {**model_spec.kwargs, **tuned, **overrides}, id)
    model = cls(observation_space, action_space, config)
    model.model_id = id
    return model


def build_config(config_cls: type, values: dict[str, Any], id: str = "model"):
    """``config_cls(**values)`` with a clear error for unknown fields."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{id}: unknown config field(s) {unknown}; valid fields: {', '.join(sorted(names))}")
    return config_cls(**values)


_preset = preset  # ``make`` takes a ``preset`` argument that shadows the function
