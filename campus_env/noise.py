"""The exogenous noise tape: a counter-based hash of (episode key, counter, stream).

Every random number an episode uses is ``uniform(key, counter, stream)``: the
same key, counter and stream always give the same number, whatever happened
before, so interventions cannot shift which noise a mechanism sees. The hash is
SplitMix64's finaliser, computed with numpy's wrapping uint64 arithmetic.

>>> import numpy as np
>>> a = uniform(np.array([7], dtype=np.uint64), np.array([3]), CROWD_BLOCK)
>>> b = uniform(np.array([7], dtype=np.uint64), np.array([3]), CROWD_BLOCK)
>>> bool(a == b) and 0.0 <= float(a[0]) < 1.0
True
"""

from __future__ import annotations

import numpy as np

__all__ = ["derive_keys", "draw_key", "mix", "uniform"]

# streams: episode-level draws use counter = attempt (or 0), per-step draws use counter = step
DAY, SEMESTER, WEATHER, GAMEDAY = 1, 2, 3, 4
START_MINUTE, GOAL, START_DOOR, CROWD_LEVEL = 5, 6, 7, 8
CROWD_BLOCK, SLIP = 16, 17
WALKER_KEY, CONFLICT = 32, 33  # many walkers (``campus_env.multi_agent``): each walker's key, move priority
RESPAWN_GOAL = 34  # many walkers: the next goal of a walker that arrived (counter = the step)

_C_COUNTER = np.uint64(0xD1B54A32D192ED03)
_C_STREAM = 0x8CB92BA72F3D8DD7
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TO_UNIT = 2.0**-53


def mix(key: np.ndarray, counter: np.ndarray, stream: int) -> np.ndarray:
    """The 64-bit hash of (key, counter, stream) for broadcastable arrays of keys and counters (or two scalars)."""
    key, counter = np.asarray(key, dtype=np.uint64), np.asarray(counter).astype(np.uint64)
    # on arrays (never numpy scalars) the wrapping uint64 arithmetic is silent, as the hash wants
    x = np.atleast_1d(key) ^ (np.atleast_1d(counter) * _C_COUNTER)
    x = x ^ np.uint64((stream * _C_STREAM) % 2**64)  # Python ints: no overflow warning
    z = x + _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    z = z ^ (z >> _S31)
    return z if key.ndim or counter.ndim else z[0]


def uniform(key: np.ndarray, counter: np.ndarray, stream: int) -> np.ndarray:
    """Uniform floats in [0, 1) for broadcastable arrays of keys and counters."""
    return (mix(key, counter, stream) >> _S11).astype(np.float64) * _TO_UNIT


def derive_keys(key: int | np.uint64, count: int) -> np.ndarray:
    """``count`` uint64 keys from one: the first is ``key`` itself, the others hash it with their index.

    So walker 0 of a world keyed ``key`` draws exactly what a single episode keyed ``key`` draws.
    """
    index = np.arange(count, dtype=np.uint64)
    keys = mix(np.uint64(key), index, WALKER_KEY)
    keys[0] = key
    return keys


def draw_key(rng: np.random.Generator) -> np.uint64:
    """An episode key drawn from the env's own generator (so it follows the seed)."""
    return np.uint64(rng.integers(0, 2**63 - 1, dtype=np.int64))
