"""Checks shared by the models' config dataclasses: a clear ``ValueError`` at the boundary."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["check_non_negative"]


def check_non_negative(config: Any, names: tuple[str, ...]) -> None:
    """``ValueError`` naming the first of the fields ``names`` of ``config`` that is not finite and >= 0.

    >>> from types import SimpleNamespace
    >>> check_non_negative(SimpleNamespace(kl_weight=-1.0), ("kl_weight",))
    Traceback (most recent call last):
    ...
    ValueError: Config.kl_weight must be finite and >= 0, got -1.0
    """
    for name in names:
        value = getattr(config, name)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"Config.{name} must be finite and >= 0, got {value!r}")
