"""What the examples write down: their results as strict JSON.

>>> import numpy as np
>>> plain({"a": np.float32(0.5), 1: [np.int64(2), float("nan")], "b": np.arange(2)})
{'a': 0.5, '1': [2, None], 'b': [0, 1]}
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["plain"]


def plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as Python numbers and lists, NaN or infinity as None, for strict JSON."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
