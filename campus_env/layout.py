"""Campus layouts: plain-text grids read into terrain codes.

One character per cell:

=====  ==========================================================
char   terrain
=====  ==========================================================
``.``  walkway
``,``  grass (slippery in rain, deep in snow)
``=``  road (plowed in snow)
``%``  stadium road (closed while ``road_closure`` holds)
``X``  construction zone (blocked in spring)
``#``  building wall
``~``  water
``T``  tree
upper  a building's main entrance (``L`` library, ``D`` dining, ``R`` dorms,
       ``H`` lecture hall A, ``K`` lecture hall B, ``B`` lab, ``G`` gym,
       ``S`` stadium, ``U`` union); episodes start and end at these
lower  the same building's interior (open by its schedule: a shortcut)
``+``  a side door of the building whose interior it touches
=====  ==========================================================

Lines starting with ``;`` are comments. Every building has exactly one main
entrance, and every entrance must reach every other over cells that are never
closed (walkway, grass, road), so every episode can be finished.

>>> layout = load_layout()
>>> layout.height, layout.width, len(layout.entrances)
(32, 32, 9)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["BUILDINGS", "DEFAULT_LAYOUT", "Layout", "LayoutError", "load_layout"]

DEFAULT_LAYOUT = Path(__file__).parent / "layouts" / "campus.txt"
PAD = 8  # void cells around the map, so egocentric crops never leave the array


class LayoutError(ValueError):
    """A layout file that cannot be a campus (the message says where and why)."""


# terrain codes: the fixed kinds first, then three codes per building
VOID, WALL, WALKWAY, GRASS, ROAD, STADIUM_ROAD, CONSTRUCTION, WATER, TREE = range(9)
FIXED_TERRAIN = {".": WALKWAY, ",": GRASS, "=": ROAD, "%": STADIUM_ROAD,
                 "X": CONSTRUCTION, "#": WALL, "~": WATER, "T": TREE}
TERRAIN_NAMES = ["void", "wall", "walkway", "grass", "road", "stadium_road",
                 "construction", "water", "tree"]

# (name, entrance char, interior char), in a fixed order: the goal and start indices
BUILDINGS: tuple[tuple[str, str, str], ...] = (
    ("library", "L", "l"),
    ("dining", "D", "d"),
    ("dorms", "R", "r"),
    ("hall_a", "H", "h"),
    ("hall_b", "K", "k"),
    ("lab", "B", "b"),
    ("gym", "G", "g"),
    ("stadium", "S", "s"),
    ("union", "U", "u"),
)
BUILDING_NAMES = tuple(b[0] for b in BUILDINGS)
SIDE_DOOR_CHAR = "+"


def door_code(b: int) -> int:
    return 9 + 3 * b


def interior_code(b: int) -> int:
    return 10 + 3 * b


def side_door_code(b: int) -> int:
    return 11 + 3 * b


NUM_TERRAIN = 9 + 3 * len(BUILDINGS)
for _b, (_name, _door, _inside) in enumerate(BUILDINGS):
    FIXED_TERRAIN[_door] = door_code(_b)
    FIXED_TERRAIN[_inside] = interior_code(_b)
    TERRAIN_NAMES += [f"{_name}_entrance", f"{_name}_interior", f"{_name}_side_door"]
# which building a terrain code belongs to (-1 for none)
TERRAIN_BUILDING = np.full(NUM_TERRAIN, -1, dtype=np.int64)
for _b in range(len(BUILDINGS)):
    TERRAIN_BUILDING[[door_code(_b), interior_code(_b), side_door_code(_b)]] = _b
NEVER_CLOSED = (WALKWAY, GRASS, ROAD)


@dataclass(frozen=True)
class Layout:
    """A parsed campus: terrain codes (with a void border of ``PAD`` cells) and entrances."""

    name: str
    chars: tuple[str, ...]
    terrain: np.ndarray  # (height + 2 PAD, width + 2 PAD) uint8
    entrances: tuple[tuple[int, int], ...]  # (row, col) of each building's entrance, unpadded

    @property
    def height(self) -> int:
        return len(self.chars)

    @property
    def width(self) -> int:
        return len(self.chars[0])

    @property
    def padded_width(self) -> int:
        return self.terrain.shape[1]

    def flat(self, row, col):
        """Flat index into the padded terrain of an unpadded (row, col)."""
        return (np.asarray(row) + PAD) * self.padded_width + np.asarray(col) + PAD

    def unflat(self, flat):
        """Unpadded (row, col) of a flat padded index."""
        row, col = np.divmod(np.asarray(flat), self.padded_width)
        return row - PAD, col - PAD


def load_layout(path: str | Path | None = None) -> Layout:
    """Reads and checks a layout file (the default campus when ``path`` is None).

    Raises ``LayoutError`` naming the file, the line and the problem.
    """
    path = Path(DEFAULT_LAYOUT if path is None else path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise LayoutError(f"cannot read layout {str(path)!r}: {err}") from err
    return parse_layout(text, name=path.stem, source=str(path))


def parse_layout(text: str, name: str = "layout", source: str = "<string>") -> Layout:
    """Parses layout text (see the module docstring for the legend)."""
    rows = [(n, line.rstrip("\r\n")) for n, line in enumerate(text.splitlines(), 1)]
    rows = [(n, line) for n, line in rows if line.strip() and not line.startswith(";")]
    if not rows:
        raise LayoutError(f"{source}: the layout is empty")
    width = len(rows[0][1])
    if len(rows) < 4 or width < 4:
        raise LayoutError(f"{source}: a campus needs at least 4x4 cells, got {len(rows)}x{width}")
    for n, line in rows:
        if len(line) != width:
            raise LayoutError(
                f"{source}, line {n}: every row must have {width} cells, this one has {len(line)}"
            )
        for col, ch in enumerate(line):
            if ch not in FIXED_TERRAIN and ch != SIDE_DOOR_CHAR:
                legend = "".join(sorted(FIXED_TERRAIN)) + SIDE_DOOR_CHAR
                raise LayoutError(
                    f"{source}, line {n}, column {col + 1}: unknown cell {ch!r}; valid cells: {legend}"
                )
    chars = tuple(line for _, line in rows)
    height = len(chars)
    terrain = np.full((height + 2 * PAD, width + 2 * PAD), VOID, dtype=np.uint8)
    inner = terrain[PAD:-PAD, PAD:-PAD]
    for r, line in enumerate(chars):
        for c, ch in enumerate(line):
            if ch != SIDE_DOOR_CHAR:
                inner[r, c] = FIXED_TERRAIN[ch]
    where = [f"{source}, line {n}" for n, _ in rows]  # messages name file lines and 1-based columns
    _place_side_doors(chars, inner, where)
    entrances = _find_entrances(chars, source)
    layout = Layout(name=name, chars=chars, terrain=terrain, entrances=tuple(entrances))
    _check_connected(layout, where)
    return layout


def _place_side_doors(chars, inner: np.ndarray, where: list[str]) -> None:
    height, width = inner.shape
    for r, line in enumerate(chars):
        for c, ch in enumerate(line):
            if ch != SIDE_DOOR_CHAR:
                continue
            owners = {
                int(TERRAIN_BUILDING[inner[rr, cc]])
                for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1))
                if 0 <= rr < height and 0 <= cc < width
                and inner[rr, cc] in [interior_code(b) for b in range(len(BUILDINGS))]
            }
            if len(owners) != 1:
                raise LayoutError(
                    f"{where[r]}, column {c + 1}: a side door '+' must touch the interior "
                    f"of exactly one building, it touches {len(owners)}"
                )
            inner[r, c] = side_door_code(owners.pop())


def _find_entrances(chars, source: str) -> list[tuple[int, int]]:
    entrances = []
    for name, door, _ in BUILDINGS:
        cells = [(r, c) for r, line in enumerate(chars) for c, ch in enumerate(line) if ch == door]
        if len(cells) != 1:
            raise LayoutError(
                f"{source}: the {name} needs exactly one entrance {door!r}, found {len(cells)}"
            )
        entrances.append(cells[0])
    return entrances


def _check_connected(layout: Layout, where: list[str]) -> None:
    """Every entrance reaches every other over never-closed cells."""
    terrain = layout.terrain
    door_codes = {door_code(b) for b in range(len(BUILDINGS))}
    start = layout.entrances[0]
    start_cell = (start[0] + PAD, start[1] + PAD)
    seen = {start_cell}
    queue = deque([start_cell])
    while queue:
        r, c = queue.popleft()
        if terrain[r, c] in door_codes and (r, c) != start_cell:
            continue  # entrances are ends, not passages
        for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            code = terrain[rr, cc]
            if (rr, cc) not in seen and (code in NEVER_CLOSED or code in door_codes):
                seen.add((rr, cc))
                queue.append((rr, cc))
    for b, (row, col) in enumerate(layout.entrances):
        if (row + PAD, col + PAD) not in seen:
            raise LayoutError(
                f"{where[row]}, column {col + 1}: the {BUILDINGS[b][0]} entrance cannot be "
                f"reached from the {BUILDINGS[0][0]} over walkways, grass and roads"
            )
