"""Model config overrides written on a command line: ``"hidden=16, lr=1e-3"``.

>>> parse_overrides("hidden=16, lr=1e-3, name='a'")
{'hidden': 16, 'lr': 0.001, 'name': 'a'}
>>> parse_overrides("")
{}
"""

from __future__ import annotations

import ast
from typing import Any

__all__ = ["parse_overrides"]


def parse_overrides(text: str) -> dict[str, Any]:
    """``"hidden=16,lr=1e-3"`` -> ``{"hidden": 16, "lr": 0.001}`` (values as Python literals, else strings)."""
    out: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"expected NAME=VALUE pairs separated by commas, got {item!r}")
        try:
            out[name.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            out[name.strip()] = value.strip()
    return out
