"""A numpy rasterizer: egocentric observations and the whole-campus frame.

Every cell is drawn as a tile chosen by a code that packs what a person should
see there: the terrain, whether it is open now, the crowd density (as dots) and
the weather (rain darkens and streaks, snow whitens all but the plowed roads).
Each env keeps a cached code map that is redrawn only when its context changes
(hour slot, closure, crowd, weather), so an egocentric frame costs one gather of
cell codes and one gather of tile rows.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from campus_env import layout as lay

__all__ = ["IMAGE_SIZES", "EgoRenderer", "ViewComposer", "campus_frame", "frame_of_codes", "tile_table"]

VIEW_CELLS = 16  # the egocentric view is 16x16 cells, the agent at cell (8, 8)
CELL_PX = 4  # pixels per cell in observations at the default image size
IMAGE_SIZES = (64, 128)  # observation frame sides: 4 or 8 px per cell, each cell's 4x4 tile repeated
FRAME_CELL_PX = 16  # pixels per cell in the whole-campus frame
STRIP_PX = 48  # status strip under the campus frame
CROWD_EDGES = np.array([0.15, 0.4, 0.7])  # density -> 0..3 dots
LEVEL_STEPS = 15  # crowd levels are drawn in 1/15 steps so frames follow the cached key

NT = lay.NUM_TERRAIN
BASE_CODES = NT * 2 * 4 * 4
AGENT, GOAL, GOAL_HINT = BASE_CODES, BASE_CODES + 1, BASE_CODES + 2
NUM_CODES = BASE_CODES + 3

_FIXED_COLORS = {
    lay.VOID: (22, 22, 30), lay.WALL: (92, 86, 98), lay.WALKWAY: (208, 198, 172),
    lay.GRASS: (98, 162, 74), lay.ROAD: (72, 72, 80), lay.STADIUM_ROAD: (84, 78, 72),
    lay.CONSTRUCTION: (208, 198, 172), lay.WATER: (62, 112, 192), lay.TREE: (34, 96, 44),
}
BUILDING_COLORS = (
    (150, 92, 42), (226, 124, 52), (172, 84, 164), (62, 122, 204), (40, 162, 172),
    (204, 62, 62), (226, 182, 40), (132, 70, 36), (62, 172, 92),
)
_OUTDOOR = {lay.WALKWAY, lay.GRASS, lay.ROAD, lay.STADIUM_ROAD, lay.CONSTRUCTION, lay.WATER, lay.TREE}
_SNOW_BLEND = {lay.GRASS: 0.65, lay.WALKWAY: 0.55, lay.TREE: 0.45, lay.CONSTRUCTION: 0.5,
               lay.ROAD: 0.12, lay.STADIUM_ROAD: 0.12, lay.WATER: 0.3}
_CROWD_DOTS = ((), ((1, 1),), ((1, 1), (3, 2)), ((0, 1), (1, 3), (2, 0), (3, 2), (1, 1), (3, 0)))
_CROWD_COLOR = (172, 22, 122)


def _base_tile(terrain: int, is_open: bool) -> np.ndarray:
    tile = np.zeros((4, 4, 3), dtype=np.float64)
    stripes = (np.add.outer(np.arange(4), np.arange(4)) % 2).astype(bool)
    b = int(lay.TERRAIN_BUILDING[terrain])
    if b >= 0:
        color = np.array(BUILDING_COLORS[b], dtype=np.float64)
        kind = (terrain - 9) % 3  # 0 entrance, 1 interior, 2 side door
        if kind == 1:
            tile[:] = 0.45 * color + 0.55 * 235 if is_open else 0.35 * color + 30
        else:
            tile[:] = color if is_open else 0.4 * color
            tile[1:3, 1:3] = (250, 250, 235) if is_open else (40, 20, 20)
        return tile
    tile[:] = _FIXED_COLORS[terrain]
    if terrain == lay.STADIUM_ROAD and not is_open:
        tile[stripes], tile[~stripes] = (242, 132, 22), (245, 245, 245)
    elif terrain == lay.CONSTRUCTION and not is_open:
        tile[stripes], tile[~stripes] = (242, 202, 0), (32, 32, 32)
    elif terrain == lay.CONSTRUCTION:
        tile[0, 0] = (242, 132, 22)
    elif terrain == lay.ROAD:
        tile[1, :2] = (150, 150, 140)
    elif terrain == lay.TREE:
        tile[1:3, 1:3] = (20, 70, 30)
    return tile


@functools.lru_cache(maxsize=4)
def tile_table(cell_px: int = CELL_PX) -> np.ndarray:
    """(NUM_CODES, cell_px, cell_px, 3) uint8 tiles, one per cell code."""
    tiles = np.zeros((NUM_CODES, 4, 4, 3), dtype=np.float64)
    for terrain in range(NT):
        for is_open in (0, 1):
            base = _base_tile(terrain, bool(is_open))
            for crowd in range(4):
                for weather in range(4):
                    tile = base.copy()
                    if terrain in _OUTDOOR and weather == 2:  # rain: darker, bluish, streaks
                        tile = 0.72 * tile + (14, 24, 52)
                        tile[0, 3] = tile[2, 1] = (150, 175, 215)
                    elif terrain in _OUTDOOR and weather == 3:  # snow
                        blend = _SNOW_BLEND.get(terrain, 0.4)
                        tile = (1 - blend) * tile + blend * np.array((236, 240, 250))
                    elif terrain in _OUTDOOR and weather == 1:  # clouds
                        tile = 0.88 * tile + 10
                    for r, c in _CROWD_DOTS[crowd]:
                        tile[r, c] = _CROWD_COLOR
                    tiles[((terrain * 2 + is_open) * 4 + crowd) * 4 + weather] = tile
    tiles[AGENT] = (24, 64, 210)
    tiles[AGENT, 1:3, 1:3] = (255, 255, 255)
    tiles[GOAL] = (252, 204, 20)
    tiles[GOAL, 1:3, 1:3] = (190, 30, 30)
    tiles[GOAL_HINT] = (22, 22, 30)
    tiles[GOAL_HINT, 1:3, 1:3] = (252, 204, 20)
    tiles = np.clip(tiles, 0, 255).astype(np.uint8)
    if cell_px != 4:
        tiles = tiles.repeat(cell_px // 4, axis=1).repeat(cell_px // 4, axis=2)
    return tiles


def _rows_table(cell_px: int) -> np.ndarray:
    """Tile rows as one opaque item each, so a frame is a single gather."""
    tiles = np.ascontiguousarray(tile_table(cell_px))
    return tiles.reshape(NUM_CODES * cell_px, -1).view(np.dtype((np.void, cell_px * 3))).ravel()


def cell_codes(core, ids: np.ndarray, level: np.ndarray, pattern: np.ndarray, access: np.ndarray) -> np.ndarray:
    """(len(ids), padded cells) codes of envs ``ids`` for the given context."""
    terrain = core.terrain[None, :]
    is_open = core.rules.passable[access[:, None], terrain]
    density = level[:, None] * core.rules.hotspots[pattern]
    crowd = np.digitize(density, CROWD_EDGES)
    weather = core.weather[ids][:, None]
    return (((terrain * 2 + is_open) * 4 + crowd) * 4 + weather).astype(np.int64)


class EgoRenderer:
    """Egocentric frames (64x64 by default) for every env of a core, with per-env cached code maps.

    ``image_size`` (one of ``IMAGE_SIZES``) sets the pixels per cell; the view covers the same cells.
    """

    def __init__(self, core, image_size: int = IMAGE_SIZES[0]):
        if image_size not in IMAGE_SIZES:
            raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {image_size!r}")
        cell_px = image_size // VIEW_CELLS
        self.core = core
        self.image_size = image_size
        self.codes = np.zeros((core.n,) + core.layout.terrain.shape, dtype=np.uint16)
        self.keys = np.full(core.n, -1, dtype=np.int64)
        self.composer = ViewComposer(core.n, _rows_table(cell_px), cell_px)
        self.all = np.arange(core.n)

    def _context(self, k: np.ndarray):
        core = self.core
        level_q = np.rint(core.tape_crowd[k] * LEVEL_STEPS).astype(np.int64)
        pattern = core.tape_pattern[k]
        access = core.tape_access[k]
        key = ((access * 64 + pattern) * (LEVEL_STEPS + 1) + level_q) * 4 + core.weather
        return key, level_q, pattern, access

    def images(self) -> np.ndarray:
        """(N, S, S, 3) uint8 egocentric frames of the current state, S = ``image_size``."""
        core = self.core
        key, level_q, pattern, access = self._context(core.k)
        stale = np.flatnonzero(key != self.keys)
        if len(stale):
            codes = cell_codes(core, stale, level_q[stale] / LEVEL_STEPS, pattern[stale], access[stale])
            self.codes[stale] = codes.reshape((-1,) + self.codes.shape[1:])
            self.keys[stale] = key[stale]
        half = VIEW_CELLS // 2
        prow, pcol = np.divmod(core.pos, core.width)
        windows = sliding_window_view(self.codes, (VIEW_CELLS, VIEW_CELLS), axis=(1, 2))
        return self.composer.frames(windows[self.all, prow - half, pcol - half], core)


def campus_frame(core, i: int, status: list[str] | None = None) -> np.ndarray:
    """The whole campus of env ``i`` at 16 px per cell, with a status strip below."""
    L = core.layout
    k = core.k[i : i + 1]
    level = core.tape_crowd[k]
    pattern = core.tape_pattern[k]
    access = core.tape_access[k]
    codes = cell_codes(core, np.array([i]), level, pattern, access)[0]
    codes[core.entrance_flat[core.goal[i]]] = GOAL
    codes[core.pos[i]] = AGENT
    return frame_of_codes(codes, L, _rows_table(FRAME_CELL_PX), status)


def frame_of_codes(codes: np.ndarray, layout, rows_table: np.ndarray, status: list[str] | None) -> np.ndarray:
    """The whole-campus frame of the padded map's flat cell codes at 16 px per cell (``rows_table``'s tiles),
    with the status strip below."""
    L = layout
    grid = codes.reshape(L.terrain.shape)[lay.PAD : lay.PAD + L.height, lay.PAD : lay.PAD + L.width]
    px = FRAME_CELL_PX
    rows = grid[:, None, :] * px + np.arange(px)[None, :, None]
    frame = rows_table.take(rows).view(np.uint8).reshape(L.height * px, L.width * px, 3)
    strip = np.full((STRIP_PX, frame.shape[1], 3), (28, 30, 38), dtype=np.uint8)
    if status:
        _draw_text(strip, status)
    return np.concatenate([frame, strip], axis=0)


_FONTS: dict[str, object] = {}


def _font():
    import pygame  # rendering only: campus_env imports pygame nowhere else

    if not pygame.font.get_init():  # first use, or someone called pygame.quit()
        pygame.font.init()
        _FONTS.clear()
    if "status" not in _FONTS:
        _FONTS["status"] = pygame.font.Font(None, 20)
    return _FONTS["status"]


def _draw_text(strip: np.ndarray, lines: list[str]) -> None:
    import pygame

    font = _font()
    y = 6
    for line in lines[: STRIP_PX // 20]:
        surface = font.render(line, True, (235, 235, 240), (28, 30, 38))
        text = pygame.surfarray.array3d(surface).transpose(1, 0, 2)
        h, w = min(text.shape[0], strip.shape[0] - y), min(text.shape[1], strip.shape[1] - 8)
        strip[y : y + h, 8 : 8 + w] = text[:h, :w]
        y += 20


class ViewComposer:
    """Egocentric frames of ``n`` agents from their windows of cell codes, with index buffers kept between calls.

    A batch of frames is one gather: a tile row (``cell_px`` pixels, one opaque item
    of ``rows_table``) per cell row of every window. Its index arrays (megabytes for
    hundreds of agents) live here from call to call: a fresh buffer that size costs
    page faults that take longer than the gather. The frames returned are a new
    array every call, the caller's to keep.
    """

    def __init__(self, n: int, rows_table: np.ndarray, cell_px: int):
        self.rows = rows_table
        self.cell_px = cell_px
        self.pixel_rows = np.arange(cell_px, dtype=np.int32)[None, None, :, None]
        self.scaled = np.empty((n, VIEW_CELLS, VIEW_CELLS), dtype=np.int32)
        self.index = np.empty((n, VIEW_CELLS, cell_px, VIEW_CELLS), dtype=np.int32)
        self.lanes = np.arange(n)

    def frames(self, codes: np.ndarray, core) -> np.ndarray:
        """(n, S, S, 3) uint8 frames, S = 16 * ``cell_px``, from each agent's (n, 16, 16) window of cell codes
        (changed in place): the agent drawn at the centre, the goal where it lies in view, else a hint on the
        edge towards it."""
        half = VIEW_CELLS // 2
        prow, pcol = np.divmod(core.pos, core.width)
        codes[:, half, half] = AGENT
        grow, gcol = core.goal_flat // core.width - prow + half, core.goal_flat % core.width - pcol + half
        inside = (grow >= 0) & (grow < VIEW_CELLS) & (gcol >= 0) & (gcol < VIEW_CELLS)
        grow, gcol = np.clip(grow, 0, VIEW_CELLS - 1), np.clip(gcol, 0, VIEW_CELLS - 1)
        codes[self.lanes, grow, gcol] = np.where(inside, GOAL, GOAL_HINT)
        np.multiply(codes, self.cell_px, out=self.scaled)
        np.add(self.scaled[:, :, None, :], self.pixel_rows, out=self.index)  # (n, 16, px, 16) tile-row ids
        frames = self.rows.take(self.index)  # items of 3 * px bytes: one px-pixel row of one cell
        px = self.cell_px
        return frames.view(np.uint8).reshape(len(codes), VIEW_CELLS * px, VIEW_CELLS * px, 3)
