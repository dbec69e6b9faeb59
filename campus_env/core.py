"""The simulation core: N campuses stepped together with numpy.

The single env is this core with N=1 and the native vector env is this core with
N=num_envs, so both share every rule. State is a handful of (N,) arrays; what
the causal variables do over an episode does not depend on the agent, so the
dynamic variables (clock, road closure, crowd) and the per-step noise are laid
out ahead as a tape of ``TAPE_LEN`` steps and re-laid when an intervention
changes them or the episode runs past the tape.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from campus_env import causal, noise
from campus_env import layout as lay
from campus_env.rules import (
    BLOCKED_PENALTY,
    CROWD_BLOCK_SCALE,
    GOAL_REWARD,
    STEP_PENALTY,
    access_state,
    build_rules,
    pattern_index,
)
from campus_env.schema import (
    CAUSAL_DIM,
    CAUSAL_SLICES,
    MOVES,
    PATCH,
    STATE_DIM,
    STATE_SLICES,
    Action,
    state_slices,
)

__all__ = ["CampusCore"]

TAPE_LEN = 256
MAX_ATTEMPTS = 4096  # context draws tried before a split falls back to forcing its cell
ATTEMPT_CHUNK = 64
VAR_NAMES = tuple(causal.VARIABLES)
_V = causal.VAR_INDEX
STAY = int(Action.STAY)  # a plain int: numpy compares it with an action array without asking the enum
OBS_MODES = ("dict", "pixels", "state")
# the causal vector in two parts: what is fixed over an episode, and what the tape gives step by step
STATIC_CAUSAL = slice(0, CAUSAL_SLICES["gameday"].stop)  # day, semester, weather, gameday
DYNAMIC_CAUSAL = slice(CAUSAL_SLICES["hour"].start, CAUSAL_DIM)  # clock, road closure, crowd (``tape_dyn``)
_STATE_SLICES = {observe_causal: state_slices(observe_causal) for observe_causal in (False, True)}
# the (n, ...) arrays of each env's episode (``_allocate_episode_state``), which a fork copies row by row
EPISODE_ARRAYS = (
    "key", "noise_key", "attempt", "t", "pos", "goal", "start", "goal_code", "goal_flat", "goal_rc",
    "start_minute", "u_crowd", "day", "semester", "weather", "gameday", "blocked_moves", "slipped_moves",
    "crowd_blocks", "last_blocked", "causal_static", "slip_row", "slip_base",
)


def _as_causal_array(name: str, codes: np.ndarray) -> np.ndarray:
    """Internal codes of one variable as ``CampusCore.causal_arrays`` gives its values."""
    kind = causal.VARIABLES[name].kind
    if kind == "bool":
        return codes > 0
    if kind == "categorical":
        return codes.astype(np.int64)
    return codes / 60.0 if name == "hour" else codes.copy()


class CampusCore:
    """Batched state and rules of ``num_envs`` campuses sharing one layout."""

    keeps_crowd_draw = False  # whether the tape also keeps the crowd-block draw (``tape_crowd_draw``)

    def __init__(
        self,
        num_envs: int,
        layout: str | lay.Layout | None = None,
        split: str = "all",
        semester: str | None = None,
    ):
        if not isinstance(num_envs, (int, np.integer)) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if layout is not None and not isinstance(layout, (str, os.PathLike, lay.Layout)):
            raise TypeError(f"layout must be None, a path to a layout file or a Layout, got {layout!r:.80}")
        self.layout = layout if isinstance(layout, lay.Layout) else lay.load_layout(layout)
        self.split = causal.check_split(split)
        if semester is not None and (not isinstance(semester, str) or semester not in causal.SEMESTERS):
            raise ValueError(f"semester must be None, 'fall' or 'spring', got {semester!r}")
        self.semester_pin = None if semester is None else causal.SEMESTERS.index(semester)
        self.rules = build_rules(self.layout)
        n = self.n = int(num_envs)
        self._build_cell_tables()
        self.row_off = np.arange(n, dtype=np.int64) * TAPE_LEN
        self._allocate_episode_state(n)
        self._allocate_tape(n)

    def _build_cell_tables(self) -> None:
        """Per-cell tables of the layout, flat over the padded map, so that a step never looks terrain up."""
        L = self.layout
        self.width = L.padded_width
        self.terrain = L.terrain.ravel().astype(np.int64)
        self.cells = self.terrain.size
        self.num_terrain = lay.NUM_TERRAIN
        self.passable = self.rules.passable.ravel()
        self.slip = self.rules.slip.ravel()
        self.hotspots = self.rules.hotspots.ravel()
        # passable[access, cell] and slip[weather, cell]
        self.pass_map = self.rules.passable[:, self.terrain].ravel()
        self.slip_map = self.rules.slip[:, self.terrain].ravel()
        # cells open in some context: an agent caught by a closure may always walk out into them
        self.ever_open = self.rules.passable[:, self.terrain].any(axis=0)
        rc = np.stack(np.divmod(np.arange(self.cells), self.width), axis=1) - lay.PAD
        self.cell_rc = (rc / np.array([L.height - 1, L.width - 1])).astype(np.float32)
        rows, cols = np.array(L.entrances).T
        self.entrance_flat = L.flat(rows, cols).astype(np.int64)
        self.door_codes = np.array([lay.door_code(b) for b in range(len(lay.BUILDINGS))])
        # action -> step in flat cells, in Action order
        self.moves = np.array([MOVES[a][0] * self.width + MOVES[a][1] for a in Action], dtype=np.int64)
        offs = np.arange(PATCH) - PATCH // 2
        self.patch_off = (offs[:, None] * self.width + offs[None, :]).ravel()
        # flat offset from the agent (shifted by patch_reach) -> its place in the patch, -1 outside it
        self.patch_reach = int(np.abs(self.patch_off).max())
        self.patch_place = np.full(2 * self.patch_reach + 1, -1, dtype=np.int64)
        self.patch_place[self.patch_off + self.patch_reach] = np.arange(PATCH**2)

    def _allocate_episode_state(self, n: int) -> None:
        """The (n,) arrays of each env's episode: its key, clock, task, context, interventions and counters."""
        self.key = np.zeros(n, dtype=np.uint64)
        self.noise_key = np.zeros(n, dtype=np.uint64)  # the per-step noise's key: the episode key until a fork
        self.attempt = np.zeros(n, dtype=np.int64)
        self.t = np.zeros(n, dtype=np.int64)
        self.pos = np.zeros(n, dtype=np.int64)
        self.goal = np.zeros(n, dtype=np.int64)
        self.start = np.zeros(n, dtype=np.int64)
        self.goal_code = np.zeros(n, dtype=np.int64)
        self.goal_flat = np.zeros(n, dtype=np.int64)
        self.goal_rc = np.zeros((n, 2), dtype=np.float32)
        self.start_minute = np.full(n, causal.FIRST_MINUTE, dtype=np.int64)
        self.u_crowd = np.zeros(n)
        self.day = np.zeros(n, dtype=np.int64)
        self.semester = np.zeros(n, dtype=np.int64)
        self.weather = np.zeros(n, dtype=np.int64)
        self.gameday = np.zeros(n, dtype=np.int64)
        self.do_mask = np.zeros((len(VAR_NAMES), n), dtype=bool)
        self.do_value = np.zeros((len(VAR_NAMES), n))
        self._interventions: list[dict[str, Any] | None] = [None] * n  # decoded do_mask/do_value
        self.blocked_moves = np.zeros(n, dtype=np.int64)
        self.slipped_moves = np.zeros(n, dtype=np.int64)
        self.crowd_blocks = np.zeros(n, dtype=np.int64)
        self.last_blocked = np.zeros(n, dtype=bool)
        self.causal_static = np.zeros((n, STATIC_CAUSAL.stop), dtype=np.float32)
        self.slip_row = np.zeros(n, dtype=np.int64)
        self.slip_base = np.zeros(n, dtype=np.int64)

    def _allocate_tape(self, n: int) -> None:
        """The tape: dynamic variables and per-step noise for steps base .. base + TAPE_LEN of each env.

        Stored flat (env i's row at i * TAPE_LEN); ``self.k`` is each env's index into it now.
        """
        self.tape_base = np.zeros(n, dtype=np.int64)
        self.k = self.row_off.copy()
        size = n * TAPE_LEN
        self.tape_minute = np.zeros(size, dtype=np.int64)
        self.tape_closure = np.zeros(size, dtype=np.int64)
        self.tape_crowd = np.zeros(size)
        self.tape_access = np.zeros(size, dtype=np.int64)
        self.tape_pattern = np.zeros(size, dtype=np.int64)
        self.tape_pass_base = np.zeros(size, dtype=np.int64)  # access * cells
        self.tape_hot_base = np.zeros(size, dtype=np.int64)  # pattern * cells
        self.tape_block = np.zeros(size)  # blocked by crowd when below the cell's hotspot value
        self.tape_slip = np.zeros(size)
        if self.keeps_crowd_draw:
            self.tape_crowd_draw = np.zeros(size)  # the uniform draw behind tape_block
        self.tape_dyn = np.zeros((size, DYNAMIC_CAUSAL.stop - DYNAMIC_CAUSAL.start), dtype=np.float32)  # for obs
        self._room = 0  # steps every env can still take before its tape must be re-laid

    # --- reset and interventions ---------------------------------------------

    def reset(
        self,
        ids: np.ndarray,
        keys: np.ndarray,
        do: Mapping[str, float] | None = None,
        goal: int | None = None,
        start: int | None = None,
    ) -> None:
        """Starts new episodes in envs ``ids`` with episode keys ``keys``.

        ``do`` holds already validated internal codes (see ``causal.validate_do``);
        it replaces whatever interventions those envs had.
        """
        ids = np.asarray(ids, dtype=np.int64)
        self.reset_context(ids, keys, do)
        self._draw_task(ids, self.key[ids], goal, start)
        self._lay_tape(ids)

    def reset_context(self, ids: np.ndarray, keys: np.ndarray, do: Mapping[str, float] | None = None) -> None:
        """``reset`` up to the task and the tape: keys, interventions, context, clock and counters of envs ``ids``."""
        ids = np.asarray(ids, dtype=np.int64)
        self.key[ids] = keys
        self.noise_key[ids] = keys
        self.do_mask[:, ids] = False
        for name, code in (do or {}).items():
            self.do_mask[_V[name], ids] = True
            self.do_value[_V[name], ids] = code
        self.attempt[ids] = self._accepted_attempts(self.key[ids])
        key = self.key[ids]
        zero = np.zeros(len(ids), dtype=np.int64)
        span = causal.LAST_START_MINUTE - causal.FIRST_MINUTE + 1
        u_start = noise.uniform(key, zero, noise.START_MINUTE)
        self.start_minute[ids] = causal.FIRST_MINUTE + (u_start * span).astype(np.int64)
        self.u_crowd[ids] = noise.uniform(key, zero, noise.CROWD_LEVEL)
        self.t[ids] = 0
        self._evaluate_static(ids)
        self.blocked_moves[ids] = 0
        self.slipped_moves[ids] = 0
        self.crowd_blocks[ids] = 0
        self.last_blocked[ids] = False

    def _draw_task(self, ids: np.ndarray, key: np.ndarray, goal: int | None, start: int | None) -> None:
        """The task of envs ``ids`` from keys ``key``: a goal caused by the context at the start, a start elsewhere."""
        zero = np.zeros(len(ids), dtype=np.int64)
        minute0 = self._minute(ids, zero)
        pattern = pattern_index(self.day[ids], causal.hour_slot(minute0), self.gameday[ids])
        cdf = self.rules.goal_cdf[pattern]
        nb = len(lay.BUILDINGS)
        u_goal = noise.uniform(key, zero, noise.GOAL)
        g = np.minimum((u_goal[:, None] >= cdf).sum(axis=1), nb - 1)
        if goal is not None:
            g[:] = goal
        u_sd = noise.uniform(key, zero, noise.START_DOOR)
        s = (g + 1 + (u_sd * (nb - 1)).astype(np.int64)) % nb
        if start is not None:
            s[:] = start
            if goal is None:
                g = np.where(g == start, (g + 1) % nb, g)
        self.goal[ids], self.start[ids] = g, s
        self.goal_code[ids] = self.door_codes[g]
        self.goal_flat[ids] = self.entrance_flat[g]
        self.goal_rc[ids] = self.cell_rc[self.entrance_flat[g]]
        self.pos[ids] = self.entrance_flat[s]

    def intervene(self, ids: np.ndarray, codes: Mapping[str, float]) -> None:
        """Hard ``do()`` on envs ``ids`` from now on (codes already validated)."""
        ids = np.asarray(ids, dtype=np.int64)
        for name, code in codes.items():
            self.do_mask[_V[name], ids] = True
            self.do_value[_V[name], ids] = code
        self._evaluate_static(ids)
        self._lay_tape(ids)

    def release(self, ids: np.ndarray, names: Sequence[str]) -> None:
        """Undoes interventions: the named mechanisms drive their variables again."""
        ids = np.asarray(ids, dtype=np.int64)
        for name in names:
            self.do_mask[_V[name], ids] = False
        self._evaluate_static(ids)
        self._lay_tape(ids)

    def interventions(self, i: int) -> dict[str, Any]:
        """The active interventions of env ``i`` as user-facing values."""
        if self._interventions[i] is None:
            self._interventions[i] = {
                name: causal.VARIABLES[name].decode(self.do_value[v, i])
                for v, name in enumerate(VAR_NAMES)
                if self.do_mask[v, i]
            }
        return dict(self._interventions[i])

    def intervention_arrays(self) -> dict[str, np.ndarray]:
        """The interventions in force, batched: for each variable some env intervenes on, its values
        (as ``causal_arrays`` gives them) and a ``"_" + name`` mask of the envs that intervene."""
        out: dict[str, np.ndarray] = {}
        active = self.do_mask.any(axis=1)
        for v in np.flatnonzero(active).tolist():
            name = VAR_NAMES[v]
            out[name] = _as_causal_array(name, self.do_value[v])
            out["_" + name] = self.do_mask[v].copy()
        return out

    def _accepted_attempts(self, key: np.ndarray) -> np.ndarray:
        """The first context draw of each episode that its split allows.

        Acceptance looks at the natural (un-intervened) context only, so every
        intervention on the same seed uses the same draw: twins stay exact.
        """
        attempt = np.zeros(len(key), dtype=np.int64)
        if self.split == "all":
            return attempt
        want_heldout = self.split == "heldout"
        pending = np.arange(len(key))
        first = 0
        while len(pending) and first < MAX_ATTEMPTS:
            counters = first + np.arange(1 if first == 0 else ATTEMPT_CHUNK)
            k = key[pending, None]
            day, sem, weather, gd = self._natural_static(k, counters[None, :])
            ok = causal.in_heldout(day, sem, weather, gd) == want_heldout
            found = ok.any(axis=1)
            attempt[pending[found]] = counters[ok[found].argmax(axis=1)]
            pending = pending[~found]
            first = counters[-1] + 1
        # no draw found (for "heldout", about once in 10**38 episodes): force its first cell
        attempt[pending] = -1 if want_heldout else 0
        return attempt

    def _natural_static(self, key, counter):
        u = [noise.uniform(key, counter, s) for s in (noise.DAY, noise.SEMESTER, noise.WEATHER, noise.GAMEDAY)]
        shape = np.broadcast_shapes(np.shape(key), np.shape(counter))
        day = causal.mech_day(u[0])
        sem = causal.mech_semester(u[1]) if self.semester_pin is None else np.full(shape, self.semester_pin)
        weather = causal.mech_weather(sem.ravel(), u[2].ravel()).reshape(shape)
        gd = causal.mech_gameday(day, sem, u[3])
        return day, sem, weather, gd

    def _pick(self, name: str, ids: np.ndarray, natural: np.ndarray) -> np.ndarray:
        v = _V[name]
        return np.where(self.do_mask[v, ids], self.do_value[v, ids], natural).astype(natural.dtype)

    def _evaluate_static(self, ids: np.ndarray) -> None:
        """Day, semester, weather and gameday in causal order, interventions applied."""
        for i in ids.tolist():
            self._interventions[i] = None
        key = self.key[ids]
        forced = self.attempt[ids] < 0  # a split cell no draw hit (vanishingly rare): force it
        counter = np.maximum(self.attempt[ids], 0)
        u = {s: noise.uniform(key, counter, s) for s in (noise.DAY, noise.SEMESTER, noise.WEATHER, noise.GAMEDAY)}
        cell = {k: causal.VARIABLES[k].encode(v) for k, v in causal.HELDOUT_CONTEXTS[0].items()}

        def settle(name, natural):
            if forced.any() and name in cell:
                natural = np.where(forced, cell[name], natural)
            return self._pick(name, ids, natural.astype(np.int64))

        day = settle("day", causal.mech_day(u[noise.DAY]))
        if self.semester_pin is None:
            sem = causal.mech_semester(u[noise.SEMESTER])
        else:
            sem = np.full(len(ids), self.semester_pin, dtype=np.int64)
        sem = settle("semester", sem)
        weather = settle("weather", causal.mech_weather(sem, u[noise.WEATHER]))
        gd = settle("gameday", causal.mech_gameday(day, sem, u[noise.GAMEDAY]))
        self.day[ids], self.semester[ids], self.weather[ids], self.gameday[ids] = day, sem, weather, gd
        enc = np.zeros((len(ids), STATIC_CAUSAL.stop), dtype=np.float32)
        enc[np.arange(len(ids)), CAUSAL_SLICES["day"].start + day] = 1.0
        enc[:, CAUSAL_SLICES["semester"]] = sem[:, None]
        enc[np.arange(len(ids)), CAUSAL_SLICES["weather"].start + weather] = 1.0
        enc[:, CAUSAL_SLICES["gameday"]] = gd[:, None]
        self.causal_static[ids] = enc
        self.slip_row[ids] = weather * self.num_terrain
        self.slip_base[ids] = weather * self.cells

    def _minute(self, ids: np.ndarray, steps: np.ndarray) -> np.ndarray:
        natural = causal.mech_hour(self.start_minute[ids].reshape((-1,) + (1,) * (steps.ndim - 1)), steps)
        v = _V["hour"]
        mask = self.do_mask[v, ids].reshape(natural.shape[:1] + (1,) * (natural.ndim - 1))
        value = self.do_value[v, ids].reshape(mask.shape)
        return np.where(mask, value, natural).astype(np.int64)

    def _lay_tape(self, ids: np.ndarray) -> None:
        """Lays the dynamic variables and noise for steps t .. t + TAPE_LEN of envs ``ids``."""
        self.tape_base[ids] = self.t[ids]
        self.k[ids] = self.row_off[ids]
        steps = self.t[ids, None] + np.arange(TAPE_LEN)  # (k, L)
        context = self._context_tape(ids, steps)
        key = self.noise_key[ids][:, None]
        shape = (self.n, TAPE_LEN)
        # a move is blocked by the crowd when u < CROWD_BLOCK_SCALE * min(1, crowd * hotspot),
        # i.e. when u < CROWD_BLOCK_SCALE and hotspot > u / (CROWD_BLOCK_SCALE * crowd)
        u = noise.uniform(key, steps, noise.CROWD_BLOCK)
        with np.errstate(divide="ignore"):
            block = np.where(u < CROWD_BLOCK_SCALE, u / (CROWD_BLOCK_SCALE * context["crowd"]), np.inf)
        rows = [*context.items(), ("block", block), ("slip", noise.uniform(key, steps, noise.SLIP))]
        if self.keeps_crowd_draw:
            rows.append(("crowd_draw", u))
        for name, value in rows:
            getattr(self, "tape_" + name).reshape(shape + value.shape[2:])[ids] = value
        self._room = int(TAPE_LEN - 2 - (self.k - self.row_off).max())

    def _context_tape(self, ids: np.ndarray, steps: np.ndarray) -> dict[str, np.ndarray]:
        """The tape's rows (k, L) that the context decides, for envs ``ids`` at ``steps`` (k, L): the clock, the
        dynamic variables and what they index; ``"dyn"`` (k, L, 3) is the causal vector's dynamic part."""
        minute = self._minute(ids, steps)
        col = (slice(None), None)
        day, sem = self.day[ids][col], self.semester[ids][col]
        weather, gd = self.weather[ids][col], self.gameday[ids][col]

        def pick(name, natural):
            v = _V[name]
            return np.where(self.do_mask[v, ids][col], self.do_value[v, ids][col], natural)

        closure = pick("road_closure", causal.mech_road_closure(gd, minute)).astype(np.int64)
        crowd = pick("crowd", causal.mech_crowd(day, minute, gd, weather, self.u_crowd[ids][col]))
        slot = causal.hour_slot(minute)
        access = access_state(day, sem, slot, closure)
        pattern = pattern_index(day, slot, gd)
        clock = (minute - causal.FIRST_MINUTE) / (causal.LAST_MINUTE - causal.FIRST_MINUTE)
        return {"minute": minute, "closure": closure, "crowd": crowd, "access": access, "pattern": pattern,
                "pass_base": access * self.cells, "hot_base": pattern * self.cells,
                "dyn": np.stack([clock, closure, crowd], axis=-1)}

    def fork(self, ids: np.ndarray, noise_keys: np.ndarray) -> CampusCore:
        """A new core whose env j is env ``ids[j]`` as it is now, with per-step noise keyed by ``noise_keys[j]``.

        The context, clock, task, interventions and counters are copied; from the
        current step on, crowd blocks and slips draw from the new key (the tape is
        re-laid), so a fork keyed with its env's own ``noise_key`` replays it.
        """
        ids = np.asarray(ids, dtype=np.int64)
        twin = copy.copy(self)  # shares the layout, rules and cell tables, which never change
        twin.n = n = len(ids)
        twin.row_off = np.arange(n, dtype=np.int64) * TAPE_LEN
        for name in EPISODE_ARRAYS:
            setattr(twin, name, getattr(self, name)[ids])  # fancy indexing copies
        twin.noise_key = np.asarray(noise_keys, dtype=np.uint64).reshape(n).copy()
        twin.do_mask, twin.do_value = self.do_mask[:, ids], self.do_value[:, ids]
        twin._interventions = [None] * n
        twin._allocate_tape(n)
        twin._lay_tape(np.arange(n))
        return twin

    # --- stepping ------------------------------------------------------------

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Moves every env one step; returns (reward, terminated). Actions are trusted."""
        if self._room <= 0:
            self._lay_tape(np.flatnonzero(self.k - self.row_off >= TAPE_LEN - 2))
        self._room -= 1
        k = self.k
        pos = self.pos
        target = pos + self.moves[action]
        to_goal = target == self.goal_flat
        now = self.tape_pass_base[k]
        # a closing building or road never traps: from a closed cell, any cell that ever opens will do
        open_ = self.pass_map[now + target] | to_goal | (~self.pass_map[now + pos] & self.ever_open[target])
        crowded = self.tape_block[k] < self.hotspots[self.tape_hot_base[k] + target]
        slips = self.tape_slip[k] < self.slip_map[self.slip_base + target]
        moving = action != STAY
        blocked = moving & (crowded | ~open_)
        slipped = moving & slips & ~blocked
        moved = moving & ~(blocked | slips)
        self.pos = np.where(moved, target, pos)
        self.t += 1
        self.k += 1
        self.blocked_moves += blocked
        self.crowd_blocks += blocked & open_
        self.slipped_moves += slipped
        self.last_blocked = blocked
        reached = moved & to_goal
        reward = np.where(reached, GOAL_REWARD - STEP_PENALTY, -STEP_PENALTY) - BLOCKED_PENALTY * blocked
        return reward, reached

    # --- observations --------------------------------------------------------

    def tape_index(self) -> np.ndarray:
        """Each env's index into the flat tape arrays for its current step."""
        return self.k

    def observe_state(self, out: np.ndarray, with_causal: bool, with_patch: bool) -> None:
        """Writes the flat state observation into ``out`` (N, D) float32, laid out as ``schema.state_slices``.

        The state (agent, goal, goal offset); then, if ``with_causal``, the
        causal vector; then, if ``with_patch``, the walkability and crowd
        density of the ``PATCH`` x ``PATCH`` cells around the agent.
        """
        agent = self.cell_rc[self.pos]
        out[:, STATE_SLICES["agent"]] = agent
        out[:, STATE_SLICES["goal"]] = self.goal_rc
        out[:, STATE_SLICES["goal_offset"]] = self.goal_rc - agent
        if with_causal:
            self._write_causal(out[:, STATE_DIM : STATE_DIM + CAUSAL_DIM])
        if with_patch:
            parts = _STATE_SLICES[bool(with_causal)]
            self.write_patch(out[:, parts["walkable"]], out[:, parts["crowd"]])

    def write_patch(self, walkable: np.ndarray, crowd: np.ndarray) -> None:
        """Writes the walkability and the crowd density (capped at 1) of the ``PATCH`` x ``PATCH`` cells around
        each agent into the (N, PATCH**2) arrays ``walkable`` and ``crowd``."""
        cells = self.pos[:, None] + self.patch_off
        walkable[:] = self.pass_map[self.tape_pass_base[self.k][:, None] + cells]
        self.mark_goal(walkable)
        np.minimum(self.patch_crowd(cells), 1.0, out=crowd, casting="unsafe")

    def mark_goal(self, walkable: np.ndarray) -> None:
        """Marks each agent's goal entrance walkable in its (N, PATCH**2) patch, where the patch holds it."""
        offset = self.goal_flat - self.pos + self.patch_reach
        place = self.patch_place[np.clip(offset, 0, 2 * self.patch_reach)]
        near = np.flatnonzero((offset >= 0) & (offset <= 2 * self.patch_reach) & (place >= 0))
        walkable[near, place[near]] = 1

    def patch_crowd(self, cells: np.ndarray) -> np.ndarray:
        """(N, PATCH**2) crowd density of the patch ``cells`` (flat cell indices), before it is capped at 1."""
        k = self.k
        return self.tape_crowd[k][:, None] * self.hotspots[self.tape_hot_base[k][:, None] + cells]

    def _write_causal(self, out: np.ndarray) -> None:
        """Writes the causal vector (N, CAUSAL_DIM) into ``out``: the episode's static part, then the tape's."""
        out[:, STATIC_CAUSAL] = self.causal_static
        out[:, DYNAMIC_CAUSAL] = self.tape_dyn[self.k]

    def agent_state(self) -> np.ndarray:
        """(N, STATE_DIM) float32: agent row/col, goal row/col, goal offset, scaled by the map size."""
        out = np.empty((self.n, STATE_DIM), dtype=np.float32)
        self.observe_state(out, False, False)
        return out

    def causal_obs(self) -> np.ndarray:
        """(N, CAUSAL_DIM) float32, laid out as ``schema.CAUSAL_SLICES``."""
        out = np.empty((self.n, CAUSAL_DIM), dtype=np.float32)
        self._write_causal(out)
        return out

    def density_map(self, i: int) -> np.ndarray:
        """Crowd density over env ``i``'s padded map at its current step."""
        k = self.k[i]
        return np.minimum(self.tape_crowd[k] * self.rules.hotspots[self.tape_pattern[k]], 1.0)

    def passable_map(self, i: int) -> np.ndarray:
        """Which cells env ``i`` can enter now (flat, padded), its goal entrance included."""
        base = self.tape_pass_base[self.k[i]]
        cells = self.pass_map[base : base + self.cells].copy()
        cells[self.goal_flat[i]] = True
        return cells

    def causal_values(self, i: int) -> dict[str, Any]:
        """Current values of every causal variable of env ``i``, user-facing."""
        k = self.k[i]
        return {
            "day": int(self.day[i]),
            "hour": float(self.tape_minute[k]) / 60.0,
            "semester": causal.SEMESTERS[self.semester[i]],
            "weather": causal.WEATHERS[self.weather[i]],
            "gameday": bool(self.gameday[i]),
            "road_closure": bool(self.tape_closure[k]),
            "crowd": float(self.tape_crowd[k]),
        }

    def causal_arrays(self) -> dict[str, np.ndarray]:
        """Current values of every causal variable, one array per variable (codes)."""
        k = self.k
        return {
            "day": self.day.copy(),
            "hour": self.tape_minute[k] / 60.0,
            "semester": self.semester.copy(),
            "weather": self.weather.copy(),
            "gameday": self.gameday.astype(bool),
            "road_closure": self.tape_closure[k].astype(bool),
            "crowd": self.tape_crowd[k],
        }
