"""The walkers' simulation core: CampusNav-v0's batched core with one world for all rows.

``campus_env.core.CampusCore`` steps N independent campuses, one per row. Here
the rows are N walkers on ONE campus: every row gets the same world key, so the
context (day, semester, weather, gameday), the clock, the road closure and the
crowd level are one world's, while each walker's task (start, context-caused
goal) and per-step noise (crowd blocks, slips, move priority) come from its own
key (``noise.derive_keys``; walker 0's is the world key itself, so a lone walker
replays a single CampusNav-v0 episode). Every rule and table of the single env
is reused; the step adds the terms that exist only with company:

- capacity: an outdoor cell holds ``capacity`` walkers (building cells hold
  everyone). Moves into a cell are admitted in a random order drawn from the
  noise tape (stream ``noise.CONFLICT``): fair, and the same for the same seed.
  Admission runs in a few vectorised rounds, so a walker can follow one that
  left its cell earlier in the same step; a refused move counts as blocked.
- walker density joins the crowd density that blocks a move, and trails ease
  slips and crowd blocks on grass (``scm``). Where neither term is present the
  step takes the single env's exact comparison from the tape, so the numbers
  stay bit-identical to CampusNav-v0's.
- respawning (``respawn=True``), for long runs: a walker that reaches its goal
  stays out and starts a new trip from that entrance, to a goal the context
  causes at that minute (the single env's goal table, its own building left
  out), drawn from the tape (stream ``noise.RESPAWN_GOAL``, counter the step).

All of it is numpy over the N walkers at once: no per-walker Python loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from campus_env import causal, noise
from campus_env import layout as lay
from campus_env.core import STAY, TAPE_LEN, CampusCore
from campus_env.multi_agent import scm
from campus_env.rules import BLOCKED_PENALTY, CROWD_BLOCK_SCALE, GOAL_REWARD, STEP_PENALTY, pattern_index
from campus_env.schema import PATCH

__all__ = ["WalkerCore"]

ADMIT_ROUNDS = 3  # rounds of admission into cells that walkers left in an earlier round
OUTDOOR = (lay.WALKWAY, lay.GRASS, lay.ROAD, lay.STADIUM_ROAD, lay.CONSTRUCTION)
TRIP_ARRAYS = ("trips", "trip_start", "last_trip_steps", "arrived")  # per walker, for respawning runs
_CENTRE = PATCH**2 // 2


class WalkerCore(CampusCore):
    """``num_walkers`` walkers on one campus, stepped as one batch (see the module docstring).

    With ``respawn`` a walker that arrives starts a new trip at once; ``trips``
    counts each walker's arrivals, ``arrived`` marks the walkers that arrived in
    the last step and ``last_trip_steps`` the steps their trip took.
    """

    keeps_crowd_draw = True  # walker density changes a block's odds: the step compares the draw itself

    def __init__(
        self,
        num_walkers: int,
        layout: str | lay.Layout | None = None,
        split: str = "all",
        semester: str | None = None,
        capacity: int = scm.CAPACITY,
        respawn: bool = False,
    ):
        if isinstance(capacity, (bool, np.bool_)) or not isinstance(capacity, (int, np.integer)) or capacity < 1:
            raise ValueError(f"capacity must be a positive integer (walkers per outdoor cell), got {capacity!r}")
        super().__init__(num_walkers, layout=layout, split=split, semester=semester)
        self.capacity = int(capacity)
        self.respawn = bool(respawn)
        outdoor = np.isin(self.terrain, OUTDOOR)
        self.cell_capacity = np.where(outdoor, self.capacity, self.n + 1).astype(np.int64)
        self.inv_capacity = np.where(outdoor, 1.0 / self.capacity, 0.0)
        self.grass = self.terrain == lay.GRASS
        self.grass_cells = np.flatnonzero(self.grass)
        self.trail = np.zeros(self.cells)
        self.count = np.zeros(self.cells, dtype=np.int64)
        self.active = np.ones(self.n, dtype=bool)
        self.capacity_blocks = np.zeros(self.n, dtype=np.int64)
        self.walker_do: dict[str, float] = {}
        self.shared_tape = False  # set where the tape is laid (``_context_tape``)
        self.all = np.arange(self.n)
        for name in TRIP_ARRAYS:
            setattr(self, name, np.zeros(self.n, dtype=bool if name == "arrived" else np.int64))

    # --- reset and interventions ---------------------------------------------

    def reset_world(
        self, world_key: int, do: Mapping[str, float], walker_do: Mapping[str, float],
        goal: int | None = None, start: int | None = None, first_minute: int | None = None,
        keep_trails: bool = False,
    ) -> None:
        """A new episode of the world keyed ``world_key``: context from it, a task and noise per walker.

        ``do`` and ``walker_do`` are validated codes (``scm.validate_do``). The
        clock starts at ``first_minute`` when given (else at the single env's
        drawn start); the grass starts unworn unless ``keep_trails``.
        """
        key = np.uint64(world_key)
        self.reset_context(self.all, np.full(self.n, key, dtype=np.uint64), do)  # the task and tape: per walker
        if first_minute is not None:
            self.start_minute[:] = first_minute
        walker_keys = noise.derive_keys(key, self.n)
        self.noise_key[:] = walker_keys
        self._draw_task(self.all, walker_keys, goal, start)
        self._lay_tape(self.all)
        self.active[:] = True
        self.capacity_blocks[:] = 0
        for name in TRIP_ARRAYS:
            getattr(self, name)[:] = 0
        if not keep_trails:
            self.trail[:] = 0.0
        self.walker_do = {}
        self.intervene_walkers(walker_do)
        self._recount()

    def intervene_walkers(self, codes: Mapping[str, float]) -> None:
        """Holds ``walker_density`` and/or ``trail`` at the given codes from now on."""
        self.walker_do.update(codes)
        if "trail" in codes:
            self.trail = np.where(self.grass, codes["trail"], 0.0)

    def release_walkers(self, names: list[str]) -> None:
        """Gives the named walker variables back to their mechanisms (a trail resumes from where it was held)."""
        for name in names:
            self.walker_do.pop(name, None)

    def interventions_world(self) -> dict[str, Any]:
        """Every intervention in force, user-facing values."""
        out = self.interventions(0)
        out.update({name: scm.WALKER_VARIABLES[name].decode(code) for name, code in self.walker_do.items()})
        return out

    def fork_world(self, noise_seed: int) -> WalkerCore:
        """A copy in the current state whose future per-walker noise comes from ``noise_seed``."""
        twin = self.fork(self.all, noise.derive_keys(np.uint64(noise_seed), self.n))
        for name in ("trail", "count", "active", "capacity_blocks", *TRIP_ARRAYS):
            setattr(twin, name, getattr(self, name).copy())
        twin.walker_do = dict(self.walker_do)
        return twin

    # --- fields --------------------------------------------------------------

    def _recount(self) -> None:
        self.count = np.bincount(self.pos[self.active], minlength=self.cells)

    def density_field(self) -> np.ndarray:
        """(cells,) walker density of every cell: walkers over capacity, or the ``do()`` value outdoors."""
        held = self.walker_do.get("walker_density")
        if held is not None:
            return np.where(self.inv_capacity > 0, held, 0.0)
        return self.count * self.inv_capacity

    def walker_values(self) -> dict[str, float]:
        """The walker variables as numbers: mean density of the occupied outdoor cells, mean wear of the grass."""
        held = self.walker_do.get("walker_density")
        if held is None:
            density = self.count * self.inv_capacity
            occupied = density > 0
            held = float(density[occupied].mean()) if occupied.any() else 0.0
        return {"walker_density": float(held), "trail": float(self.trail[self.grass].mean())}

    def _context_tape(self, ids: np.ndarray, steps: np.ndarray) -> dict[str, np.ndarray]:
        """The single env's context rows of the tape, computed once: the walkers share one world (its context,
        clock and interventions), so every walker's rows are the first one's, broadcast (walker by walker where
        ``intervene`` was called on some walkers only)."""
        one_world = (self.do_mask[:, ids] == self.do_mask[:, ids[:1]]).all() and (
            self.do_value[:, ids] == self.do_value[:, ids[:1]]).all()
        self.shared_tape = len(ids) == self.n and bool(one_world)  # every walker's row k is the same from now
        if len(ids) < 2 or not one_world:
            return super()._context_tape(ids, steps)
        first = super()._context_tape(ids[:1], steps[:1])
        return {name: np.broadcast_to(rows, (len(ids), *rows.shape[1:])) for name, rows in first.items()}

    # --- stepping ------------------------------------------------------------

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Moves every walker one step (those that reached their goal stay); returns (reward, terminated)."""
        if self._room <= 0:
            self._lay_tape(np.flatnonzero(self.k - self.row_off >= TAPE_LEN - 2))
        self._room -= 1
        k, pos = self.k, self.pos
        action = np.where(self.active, action, STAY)
        target = pos + self.moves[action]
        to_goal = target == self.goal_flat
        now = self.tape_pass_base[k]
        open_ = self.pass_map[now + target] | to_goal | (~self.pass_map[now + pos] & self.ever_open[target])
        ease = scm.ease(self.trail[target])
        crowded = self._crowded(target, self.density_field()[target], ease)
        slips = self.tape_slip[k] < self.slip_map[self.slip_base + target] * ease
        moving = action != STAY
        blocked = moving & (crowded | ~open_)
        moved = self._admit(moving & ~(blocked | slips), target)
        full = moving & ~(blocked | slips) & ~moved
        self.pos = np.where(moved, target, pos)
        reached = moved & to_goal
        if not self.respawn:
            self.active &= ~reached  # indoors at the goal: off the map
        self._recount()
        if "trail" not in self.walker_do:
            grass = self.grass_cells
            self.trail[grass] = scm.mech_trail(self.trail[grass], self.density_field()[grass])
        self.t += 1
        self.k += 1
        self.arrived = reached
        if self.respawn:
            self._respawn(np.flatnonzero(reached))
        self.blocked_moves += blocked | full
        self.crowd_blocks += blocked & open_
        self.capacity_blocks += full
        self.slipped_moves += moving & slips & ~blocked
        self.last_blocked = blocked | full
        reward = np.where(reached, GOAL_REWARD - STEP_PENALTY, -STEP_PENALTY) - BLOCKED_PENALTY * (blocked | full)
        return reward, reached

    def _respawn(self, ids: np.ndarray) -> None:
        """New trips for walkers ``ids``, which reached their goal: from there to a goal the context causes now.

        The goal table of the single env at the current minute, the building the
        walker stands at left out (every building when the table has no other).
        """
        if not len(ids):
            return
        here = self.goal[ids]
        minute = self.tape_minute[self.k[ids]]
        pattern = pattern_index(self.day[ids], causal.hour_slot(minute), self.gameday[ids])
        weights = np.diff(self.rules.goal_cdf[pattern], axis=1, prepend=0.0)  # (m, buildings)
        rows = np.arange(len(ids))
        weights[rows, here] = 0.0
        weights[weights.sum(axis=1) <= 0] = 1.0
        weights[rows, here] = 0.0
        cdf = np.cumsum(weights, axis=1)
        u = noise.uniform(self.noise_key[ids], self.t[ids], noise.RESPAWN_GOAL)
        goal = (u[:, None] * cdf[:, -1:] >= cdf).sum(axis=1)  # lands where the cdf rises: a building of weight > 0
        last = weights.shape[1] - 1 - np.argmax(weights[:, ::-1] > 0, axis=1)
        goal = np.minimum(goal, last)  # u * total rounding up to the total
        self.trips[ids] += 1
        self.last_trip_steps[ids] = self.t[ids] - self.trip_start[ids]
        self.trip_start[ids] = self.t[ids]
        self.start[ids] = here
        self.goal[ids] = goal
        self.goal_code[ids] = self.door_codes[goal]
        self.goal_flat[ids] = self.entrance_flat[goal]
        self.goal_rc[ids] = self.cell_rc[self.entrance_flat[goal]]

    def _crowded(self, target: np.ndarray, density: np.ndarray, ease: np.ndarray) -> np.ndarray:
        """Which moves the crowd blocks: background crowd plus walkers, eased by trails.

        Where no walker and no trail is in play, the single env's comparison from the tape.
        """
        k = self.k
        hot = self.hotspots[self.tape_hot_base[k] + target]
        plain = self.tape_block[k] < hot
        company = (density > 0) | (ease < 1.0)
        if not company.any():
            return plain
        u = self.tape_crowd_draw[k]
        level = self.tape_crowd[k] * hot + scm.WALKER_CROWD_WEIGHT * density
        return np.where(company, u < CROWD_BLOCK_SCALE * np.minimum(level * ease, 1.0), plain)

    def _admit(self, want: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Which of the wanted moves fit: per target cell, walkers in tape-drawn priority order up to its room.

        Cells with room for everyone who wants in admit them all; only the contested ones are sorted.
        """
        moved = want.copy()
        pending = np.flatnonzero(want)
        count = self.count.copy()
        room = self.cell_capacity - count
        contested = np.bincount(target[pending], minlength=self.cells)[target[pending]] > room[target[pending]]
        if not contested.any():
            return moved
        pending = pending[contested]
        moved[pending] = False
        won = np.flatnonzero(moved)
        count += np.bincount(target[won], minlength=self.cells) - np.bincount(self.pos[won], minlength=self.cells)
        priority = noise.uniform(self.noise_key[pending], self.t[pending], noise.CONFLICT)
        for _ in range(ADMIT_ROUNDS):
            cells = target[pending]
            order = np.lexsort((priority, cells))  # by cell, then priority
            ranked = cells[order]
            rank = np.arange(len(ranked)) - np.searchsorted(ranked, ranked)  # place in its cell's queue
            fits = rank < self.cell_capacity[ranked] - count[ranked]
            won = pending[order[fits]]
            if not len(won):
                break
            moved[won] = True
            count += np.bincount(target[won], minlength=self.cells) - np.bincount(self.pos[won], minlength=self.cells)
            lost = order[~fits]
            pending, priority = pending[lost], priority[lost]
            if not len(pending):
                break
        return moved

    # --- observations --------------------------------------------------------

    def write_patch(self, walkable: np.ndarray, crowd: np.ndarray) -> None:
        """The single env's patch, the other walkers' density added to the crowd.

        While every walker's tape holds the same rows (``shared_tape``: laid for all
        walkers at once, no walker-by-walker ``intervene``), each cell's walkability and
        crowd are computed once and gathered: the same numbers as walker by walker.
        """
        if not self.shared_tape:
            return super().write_patch(walkable, crowd)
        k = self.k[0]
        cells = self.pos[:, None] + self.patch_off
        pass_base, hot_base, level = self.tape_pass_base[k], self.tape_hot_base[k], self.tape_crowd[k]
        walkable[:] = self.pass_map[pass_base : pass_base + self.cells][cells]
        self.mark_goal(walkable)
        hot = self.hotspots[hot_base : hot_base + self.cells]
        density = self.density_field()
        field = density * scm.WALKER_CROWD_WEIGHT + level * hot  # (cells,), as patch_crowd sums it
        crowd[:] = np.minimum(field, 1.0).astype(np.float32)[cells]
        if "walker_density" not in self.walker_do:  # a walker is no crowd to itself
            here = self.pos
            own = (density[here] - self.inv_capacity[here] * self.active) * scm.WALKER_CROWD_WEIGHT + level * hot[here]
            crowd[:, _CENTRE] = np.minimum(own, 1.0)

    def patch_crowd(self, cells: np.ndarray) -> np.ndarray:
        """The single env's crowd of the patch ``cells``, the other walkers' density added."""
        density = self.density_field()[cells]  # (N, PATCH**2)
        if "walker_density" not in self.walker_do:
            density[:, _CENTRE] -= self.inv_capacity[self.pos] * self.active  # a walker is no crowd to itself
        density *= scm.WALKER_CROWD_WEIGHT
        density += super().patch_crowd(cells)
        return density
