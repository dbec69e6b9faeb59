"""What generic code reads from an env without building it: its entry point's ``metadata``, and the functions
that metadata names as ``"module:function"`` (a semantic readout, a grid of contexts, a codes reader).

>>> import campus_env
>>> metadata = entry_point_metadata("CampusNav-v0")
>>> resolve_function(metadata["semantic_state"]).__name__
'semantic_state'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator

__all__ = ["entry_point_metadata", "resolve_function"]


def entry_point_metadata(env_id: str) -> dict[str, Any]:
    """The ``metadata`` of ``env_id``'s entry point, read without building an env."""
    creator = gym.spec(env_id).entry_point
    if isinstance(creator, str):
        creator = load_env_creator(creator)
    return dict(getattr(creator, "metadata", None) or {})


def resolve_function(name: str | Callable | None) -> Callable | None:
    """A function given as ``"module:name"``, a callable as it is, or None."""
    if name is None or callable(name):
        return name
    module, _, attribute = name.partition(":")
    return getattr(importlib.import_module(module), attribute)
