"""Pixels of the walkers' campus: one shared cell-code map, one egocentric crop per walker.

The tiles and codes are CampusNav-v0's (``campus_env.render``): terrain, open or
closed, crowd dots, weather. All walkers share one world, so the code map is
built once per step for everyone rather than cached per env as
``render.EgoRenderer`` does; two things are new on it. The other walkers add to
the crowd dots (the crowd density gains ``scm.WALKER_CROWD_WEIGHT`` times their
density), and worn grass is drawn with trail tiles appended after the single
env's codes: the grass blended towards bare earth at two levels of wear. With no
trail and no other walker in view a walker's frame is the single env's.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from campus_env import layout as lay
from campus_env.multi_agent import scm
from campus_env.render import (
    _CROWD_COLOR,
    AGENT,
    CELL_PX,
    CROWD_EDGES,
    FRAME_CELL_PX,
    LEVEL_STEPS,
    NUM_CODES,
    VIEW_CELLS,
    ViewComposer,
    frame_of_codes,
    tile_table,
)

__all__ = ["TRAIL_EDGES", "WalkerRenderer", "walker_tiles", "world_frame"]

TRAIL_EDGES = np.array([0.3, 0.65])  # wear -> 0 unworn, 1 worn, 2 a path
TRAIL_BLEND = (0.45, 0.8)  # how far each level blends the grass towards bare earth
EARTH = np.array((176, 146, 100), dtype=np.float64)
TRAIL_BASE = NUM_CODES  # trail codes: ((level - 1) * 2 + open) * 16 + crowd * 4 + weather, after the single env's
NUM_WALKER_CODES = NUM_CODES + 2 * 2 * 4 * 4


@functools.lru_cache(maxsize=4)
def walker_tiles(cell_px: int = CELL_PX) -> np.ndarray:
    """(NUM_WALKER_CODES, cell_px, cell_px, 3) uint8: the single env's tiles, then the trail tiles."""
    base = tile_table(4)
    trails = np.zeros((NUM_WALKER_CODES - NUM_CODES, 4, 4, 3), dtype=np.uint8)
    for level in (1, 2):
        for is_open in (0, 1):
            for crowd in range(4):
                for weather in range(4):
                    grass = base[((lay.GRASS * 2 + is_open) * 4 + crowd) * 4 + weather].astype(np.float64)
                    dots = (grass == _CROWD_COLOR).all(axis=-1)
                    tile = (1 - TRAIL_BLEND[level - 1]) * grass + TRAIL_BLEND[level - 1] * EARTH
                    tile[dots] = _CROWD_COLOR
                    trails[(((level - 1) * 2 + is_open) * 4 + crowd) * 4 + weather] = np.clip(tile, 0, 255)
    tiles = np.concatenate([base, trails])
    if cell_px != 4:
        tiles = tiles.repeat(cell_px // 4, axis=1).repeat(cell_px // 4, axis=2)
    return tiles


@functools.lru_cache(maxsize=4)
def _rows_table(cell_px: int) -> np.ndarray:
    """Tile rows as one opaque item each, so a frame is a single gather (as ``render`` does)."""
    tiles = np.ascontiguousarray(walker_tiles(cell_px))
    return tiles.reshape(NUM_WALKER_CODES * cell_px, -1).view(np.dtype((np.void, cell_px * 3))).ravel()


def world_codes(core) -> np.ndarray:
    """(padded cells,) int64 codes of the shared world now: context, walkers in the crowd, trails."""
    k = core.k[:1]
    level = np.rint(core.tape_crowd[k] * LEVEL_STEPS).astype(np.int64) / LEVEL_STEPS
    pattern, access = core.tape_pattern[k], core.tape_access[k]
    is_open = core.rules.passable[access[0], core.terrain]
    density = (level[:, None] * core.rules.hotspots[pattern])[0]
    walkers = core.density_field()
    if walkers.any():
        density = density + scm.WALKER_CROWD_WEIGHT * walkers
    crowd = np.digitize(density, CROWD_EDGES)
    weather = core.weather[0]
    codes = (((core.terrain * 2 + is_open) * 4 + crowd) * 4 + weather).astype(np.int64)
    wear = np.digitize(core.trail, TRAIL_EDGES)
    worn = np.flatnonzero(wear)
    codes[worn] = TRAIL_BASE + (((wear[worn] - 1) * 2 + is_open[worn]) * 4 + crowd[worn]) * 4 + weather
    return codes


class WalkerRenderer:
    """Egocentric 64x64 frames of every walker of a ``WalkerCore``, from one shared code map."""

    def __init__(self, core):
        self.core = core
        self.composer = ViewComposer(core.n, _rows_table(CELL_PX), CELL_PX)

    def images(self) -> np.ndarray:
        """(N, 64, 64, 3) uint8 egocentric frames of the current state."""
        core = self.core
        world = world_codes(core).astype(np.uint16).reshape(core.layout.terrain.shape)
        half = VIEW_CELLS // 2
        prow, pcol = np.divmod(core.pos, core.width)
        windows = sliding_window_view(world, (VIEW_CELLS, VIEW_CELLS))
        return self.composer.frames(windows[prow - half, pcol - half], core)


def world_frame(core, status: list[str] | None = None) -> np.ndarray:
    """The whole campus at 16 px per cell, every walker still outdoors drawn, a status strip below."""
    L = core.layout
    codes = world_codes(core)
    codes[core.pos[core.active]] = AGENT
    return frame_of_codes(codes, L, _rows_table(FRAME_CELL_PX), status)
