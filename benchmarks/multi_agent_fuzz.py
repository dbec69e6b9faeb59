"""A fuzz of many walkers on one campus: random steps, interventions and resets, the invariants checked every step.

``campus_env.multi_agent.parallel_env`` is driven with ``--walkers`` walkers
(random or trail-oracle actions; trips and respawning days; several
capacities and observation modes) while random ``do()`` assignments over every
variable of the walkers' causal model (CampusNav-v0's and ``walker_density``,
``trail``) are made at reset and mid-episode, and ``undo()`` calls and resets
mixed in. After every step the fuzz checks:

- capacity: no outdoor cell holds more walkers than the core's declared bound
  (``core.cell_capacity``);
- observations: one per walker out, each in its space and finite (the whole
  batch against the space, and ``space.contains`` on a few walkers' own dicts);
  rewards finite, one per walker;
- interventions in force show in ``infos[...]["causal"]``;
- counterfactual twins: two forks with the same noise seed, one of them also
  under ``do()`` of the static context at its natural value (nothing intervened
  differently), replay bit-identically for ``--twin-steps`` steps.

Any exception from a valid call and every failed check is a fault; the target is
none. A real run writes docs/results/multi_agent_fuzz.{md,json}.

    python benchmarks/multi_agent_fuzz.py            # 500 walkers, 1M agent-steps (minutes)
    python benchmarks/multi_agent_fuzz.py --quick    # seconds; writes nothing
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import tyro
from gymnasium import spaces

from campus_env.multi_agent import WALKER_VARIABLES, TrailOracle, parallel_env
from campus_env.multi_agent.core import OUTDOOR
from campusnav.budgets import BenchmarkRun
from campusnav.harness import report_faults

CONFIGS = (  # env keyword arguments and the policy of each configuration
    {"obs_mode": "state", "observe_causal": True, "respawn": True, "capacity": 4, "policy": "oracle"},
    {"obs_mode": "state", "observe_causal": False, "respawn": False, "capacity": 1, "policy": "random"},
    {"obs_mode": "dict", "observe_causal": True, "respawn": False, "capacity": 2, "policy": "oracle"},
)
STATIC = ("day", "semester", "weather", "gameday")  # context that stays put within an episode
SPOT_CHECKS = 3  # walkers per step whose own observation goes through space.contains
SHOWN_FAULTS = 20


@dataclasses.dataclass(frozen=True)
class Args(BenchmarkRun):
    agent_steps: int = 1_000_000
    """agent-steps in all (a step of N walkers counts N), shared evenly by the configurations"""
    walkers: int = 500
    """walkers on the campus"""
    do_rate: float = 0.05
    """chance per step of a do() call"""
    undo_rate: float = 0.03
    """chance per step of an undo() call"""
    reset_rate: float = 0.005
    """chance per step of a reset (besides the one when every walker is done)"""
    twin_rate: float = 0.02
    """chance per step of a twin check"""
    twin_steps: int = 10
    """steps each pair of twins is compared for"""


def parse_args(argv: list[str] | None = None) -> Args:
    args = tyro.cli(Args, args=argv, description=__doc__)
    if args.quick:
        args = dataclasses.replace(args, walkers=min(args.walkers, 40), agent_steps=min(args.agent_steps, 12_000),
                                   twin_rate=max(args.twin_rate, 0.1), twin_steps=min(args.twin_steps, 5))
    if args.walkers < 1 or args.agent_steps < 1 or args.twin_steps < 1:
        raise SystemExit("--walkers, --agent-steps and --twin-steps must be positive")
    return args


def random_assignment(rng: np.random.Generator, size: int | None = None) -> dict[str, Any]:
    """A valid ``do`` mapping of 1..3 random variables of the walkers' world, values from their domains."""
    names = list(WALKER_VARIABLES)
    chosen = rng.choice(len(names), size=size or int(rng.integers(1, 4)), replace=False)
    out: dict[str, Any] = {}
    for index in sorted(chosen):
        v = WALKER_VARIABLES[names[index]]
        if v.kind == "categorical":
            out[v.name] = v.choices[int(rng.integers(len(v.choices)))]
        elif v.kind == "bool":
            out[v.name] = bool(rng.integers(2))
        else:
            edge = rng.random()
            out[v.name] = float(v.low if edge < 0.1 else v.high if edge < 0.2 else rng.uniform(v.low, v.high))
    return out


def batch_problem(space: spaces.Space, batch: Any, n: int) -> str | None:
    """Why a batch of ``n`` observations (leading axis) is not in ``space``, or None when every one is."""
    if isinstance(space, spaces.Dict):
        if not isinstance(batch, Mapping) or set(batch) != set(space.spaces):
            return f"keys {sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__}"
        return next((f"{k}: {p}" for k in space.spaces if (p := batch_problem(space[k], batch[k], n))), None)
    batch = np.asarray(batch)
    if batch.shape != (n, *space.shape) or batch.dtype != space.dtype:
        return f"shape {batch.shape} {batch.dtype}, not ({n}, {space.shape}) {space.dtype}"
    if batch.dtype.kind == "f" and not np.isfinite(batch).all():
        return "non-finite values"
    if not ((batch >= space.low).all() and (batch <= space.high).all()):
        return "values outside the bounds"
    return None


class WalkerFuzzer:
    """Drives one walkers' env with random valid calls; ``step()`` is one step of every walker out."""

    def __init__(self, env: Any, rng: np.random.Generator, args: Args, policy: str, label: str = ""):
        self.env, self.rng, self.args, self.label = env, rng, args, label
        self.policy = TrailOracle() if policy == "oracle" else None
        core = env.core
        self.outdoor = np.isin(core.terrain, OUTDOOR)
        self.faults: list[dict[str, Any]] = []
        self.counts: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.in_force: dict[str, Any] = {}
        self._reset(random_assignment(rng))

    def fault(self, kind: str, message: str) -> None:
        self.counts[kind] += 1
        if len(self.faults) < SHOWN_FAULTS:
            self.faults.append({"config": self.label, "call": self.calls["step"], "kind": kind, "message": message})

    def actions(self, env: Any) -> dict[str, int]:
        if self.policy is not None:
            return self.policy(env)
        return env.action_dict(self.rng.integers(0, 5, env.core.n))

    def step(self) -> int:
        """Random calls, then one step; returns the agent-steps done."""
        rng, args, env = self.rng, self.args, self.env
        try:
            if rng.random() < args.do_rate:
                assignment = random_assignment(rng)
                self.calls["do"] += 1
                env.do(**assignment)
                self.in_force.update(assignment)
            if rng.random() < args.undo_rate:
                held = sorted(self.in_force)
                names = [] if not held or rng.random() < 0.2 else list(rng.choice(held, 1 + int(rng.integers(
                    len(held))), replace=False))
                self.calls["undo"] += 1
                env.undo(*names)
                self.in_force = {k: v for k, v in self.in_force.items() if names and k not in names}
            if rng.random() < args.twin_rate:
                self._check_twins()
            if not env.agents or rng.random() < args.reset_rate:
                self._reset(random_assignment(rng) if rng.random() < 0.7 else {})
            agents = list(env.agents)
            self.calls["step"] += 1
            out = env.step(self.actions(env))
        except Exception as err:  # noqa: BLE001  (any exception from a valid call is a fault)
            self.fault("exception", f"{type(err).__name__}: {err}")
            self._reset({})
            return 0
        self._check_step(agents, *out)
        return len(agents)

    def _reset(self, do: dict[str, Any]) -> None:
        self.calls["reset"] += 1
        options = {"do": do, "keep_trails": bool(self.rng.random() < 0.3)}
        obs, infos = self.env.reset(seed=int(self.rng.integers(2**31)), options=options)
        self.in_force = dict(do)
        self._check_observations(self.env.agents, obs, "reset")
        self._check_interventions(infos, "reset")

    # --- checks ---------------------------------------------------------------------------------

    def _check_step(self, agents: list[str], obs, rewards, terminations, truncations, infos) -> None:
        core = self.env.core
        over = np.bincount(core.pos[core.active], minlength=core.cells) > core.cell_capacity
        if over.any():
            self.fault("capacity", f"cells {np.flatnonzero(over)[:5].tolist()} hold more walkers than they may")
        for name, out in (("rewards", rewards), ("terminations", terminations), ("truncations", truncations),
                          ("infos", infos)):
            if list(out) != agents:
                self.fault("step", f"{name} are not one per walker out")
                return
        if not all(math.isfinite(r) for r in rewards.values()):
            self.fault("reward", "non-finite rewards")
        self._check_observations(agents, obs, "step")
        self._check_interventions(infos, "step")

    def _check_observations(self, agents: list[str], obs: Mapping[str, Any], where: str) -> None:
        if list(obs) != agents:
            self.fault("observation", f"{where}: observations for {len(obs)} walkers, {len(agents)} are out")
            return
        if not agents:
            return
        space = self.env.observation_space(agents[0])
        problem = batch_problem(space, _stack([obs[a] for a in agents]), len(agents))
        if problem:
            self.fault("observation", f"{where}: {problem}")
        for agent in self.rng.choice(agents, min(SPOT_CHECKS, len(agents)), replace=False):
            if not self.env.observation_space(agent).contains(obs[agent]):
                self.fault("observation", f"{where}: {agent}'s observation is outside its space")

    def _check_interventions(self, infos: Mapping[str, Any], where: str) -> None:
        if not infos:
            return
        values = next(iter(infos.values()))["causal"]
        for name, value in self.in_force.items():
            v = WALKER_VARIABLES[name]
            if not math.isclose(v.encode(values[name]), v.encode(value), rel_tol=1e-6, abs_tol=1e-6):
                self.fault("intervention", f"{where}: causal {name}={values[name]!r}, but do({name}={value!r})")

    def _check_twins(self) -> None:
        """Two forks with the same noise seed, one also under do() of the static context at its natural
        value, stepped with the same actions: every output and the world state must stay identical."""
        env, rng = self.env, self.rng
        if not env.agents:
            return
        self.calls["twin"] += 1
        seed = int(rng.integers(2**31))
        a, b = env.fork(seed), env.fork(seed)
        natural = env.causal_values()
        b.do(**{name: natural[name] for name in STATIC})
        for t in range(self.args.twin_steps):
            if not a.agents:
                break
            actions = self.actions(a)
            out_a, out_b = a.step(actions), b.step(dict(actions))
            same = _identical(out_a[:4], out_b[:4]) and all(
                np.array_equal(getattr(a.core, k), getattr(b.core, k)) for k in ("pos", "trail", "active", "k"))
            if not same:
                self.fault("twin", f"twins with noise seed {seed} differ at their step {t}")
                return


def _stack(items: list[Any]) -> Any:
    if isinstance(items[0], Mapping):
        return {k: np.stack([item[k] for item in items]) for k in items[0]}
    return np.stack(items)


def _identical(x: Any, y: Any) -> bool:
    if isinstance(x, Mapping):
        return isinstance(y, Mapping) and list(x) == list(y) and all(_identical(x[k], y[k]) for k in x)
    if isinstance(x, (tuple, list)):
        return len(x) == len(y) and all(_identical(i, j) for i, j in zip(x, y, strict=True))
    return np.array_equal(np.asarray(x), np.asarray(y))


def fuzz(args: Args, make: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Runs every configuration for its share of ``args.agent_steps``; returns rows, faults and counts."""
    make = make or parallel_env
    rng = np.random.default_rng(args.seed)
    share = math.ceil(args.agent_steps / len(CONFIGS))
    rows, faults, counts, calls = [], [], Counter(), Counter()
    for config in CONFIGS:
        kwargs = {k: v for k, v in config.items() if k != "policy"}
        label = ", ".join(f"{k}={v}" for k, v in config.items())
        fuzzer = WalkerFuzzer(make(num_agents=args.walkers, **kwargs), rng, args, config["policy"], label)
        done, started = 0, time.perf_counter()
        while done < share:
            done += fuzzer.step()
        seconds = time.perf_counter() - started
        rows.append({"config": config, "steps": done, "steps_per_s": done / seconds,
                     "faults": sum(fuzzer.counts.values()), "calls": dict(fuzzer.calls)})
        faults += fuzzer.faults
        counts += fuzzer.counts
        calls += fuzzer.calls
    return {"rows": rows, "faults": faults[:SHOWN_FAULTS], "fault_count": sum(counts.values()),
            "faults_by_kind": dict(counts), "calls": dict(calls)}


def main(argv: list[str] | None = None, make: Callable[..., Any] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    report = fuzz(args, make)
    results = report_faults("multi_agent_fuzz", f"Fuzz of {args.walkers} walkers on one campus", report,
                            dataclasses.asdict(args), unit="agent-steps", rate_header="agent-steps/s (checks included)",
                            json_path=args.json, write=not args.quick)
    return results


if __name__ == "__main__":
    main()
