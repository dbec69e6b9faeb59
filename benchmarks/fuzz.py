"""A fuzz of the native CampusNav-v0 vector env: random steps, interventions and resets, every output checked.

The env's contract is checked on random but valid use, at scale: ``gym.make_vec``
envs of every observation mode (with and without the causal part, random
``split``, ``semester`` and episode caps) are stepped with random actions, while
random ``do()`` assignments (drawn from the domains of ``campus_env.causal``, on
all envs or random ``env_ids``), ``undo()`` calls and resets (random seeds, a
``do``, a ``goal``/``start`` pair or a ``reset_mask``) are mixed in. After every
call the fuzz checks:

- each observation is inside the observation space and finite;
- rewards are finite floats, ``terminated``/``truncated`` bool arrays, one per env;
- infos are Gymnasium vector infos (each key with a ``_key`` mask, one entry per
  env, numbers finite) and no episode outlives its cap;
- the step after an episode ends is a next-step autoreset (reward 0, neither
  terminated nor truncated, step counter 0);
- every intervention in force shows in ``info["causal"]``.

Any exception from a valid call, and every failed check, is a fault; the target
is none. The run prints steps/s per configuration (checks included) and a
PASS/MISS line, and a real run writes docs/results/fuzz.{md,json}.

    python benchmarks/fuzz.py                      # 1M steps, every observation mode (minutes)
    python benchmarks/fuzz.py --obs-mode state     # one mode
    python benchmarks/fuzz.py --quick              # seconds; writes nothing
"""

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import tyro

import campus_env  # noqa: F401  (registers CampusNav-v0)
from campus_env import causal
from campus_env.layout import BUILDING_NAMES
from campusnav.budgets import BenchmarkRun
from campusnav.harness import measure_rate, report_faults

ENV_ID = "CampusNav-v0"
OBS_MODES = ("dict", "pixels", "state")
EPISODE_CAPS = (200, 30)  # the default, and a short cap so truncation and autoresets happen often
WINDOWS = 5  # timed windows per configuration
SHOWN_FAULTS = 20  # faults kept with their messages (all are counted)


@dataclasses.dataclass(frozen=True)
class Args(BenchmarkRun):
    steps: int = 1_000_000
    """env steps in all (a batched step counts num_envs), shared evenly by the configurations"""
    num_envs: int = 16
    """envs of each vector env"""
    obs_mode: Literal["all", "dict", "pixels", "state"] = "all"
    """the observation mode to fuzz, or all of them over the run"""
    do_rate: float = 0.05
    """chance per batched step of a do() call"""
    undo_rate: float = 0.05
    """chance per batched step of an undo() call"""
    reset_rate: float = 0.01
    """chance per batched step of a reset (full or masked)"""


def parse_args(argv: list[str] | None = None) -> Args:
    args = tyro.cli(Args, args=argv, description=__doc__)
    if args.quick:
        args = dataclasses.replace(args, steps=min(args.steps, 6 * 40 * args.num_envs))
    return args


@dataclasses.dataclass(frozen=True)
class Fault:
    """One failed check: where it happened and what was wrong."""

    config: str
    call: int
    kind: str
    message: str


def random_assignment(rng: np.random.Generator, size: int | None = None) -> dict[str, Any]:
    """A valid ``do`` mapping of ``size`` (default 1..3) random variables, values drawn from their domains."""
    names = list(causal.VARIABLES)
    size = size if size is not None else int(rng.integers(1, 4))
    chosen = rng.choice(len(names), size=size, replace=False)
    out: dict[str, Any] = {}
    for index in sorted(chosen):
        variable = causal.VARIABLES[names[index]]
        if variable.kind == "categorical":
            out[variable.name] = variable.choices[int(rng.integers(len(variable.choices)))]
        elif variable.kind == "bool":
            out[variable.name] = bool(rng.integers(2))
        else:
            edge = rng.random()
            value = variable.low if edge < 0.1 else variable.high if edge < 0.2 else rng.uniform(variable.low,
                                                                                                  variable.high)
            out[variable.name] = float(value)
    return out


def expected_code(name: str, value: Any) -> float:
    """What ``info["causal"][name]`` holds under ``do(name=value)``: the index, 0/1, or the value (hours)."""
    variable = causal.VARIABLES[name]
    return variable.decode(variable.encode(value)) if variable.kind == "interval" else variable.encode(value)


def _finite(x: Any) -> bool:
    arr = np.asarray(x)
    return not np.issubdtype(arr.dtype, np.floating) or bool(np.isfinite(arr).all())


def _leaves(x: Any) -> list[np.ndarray]:
    if isinstance(x, Mapping):
        return [leaf for v in x.values() for leaf in _leaves(v)]
    return [np.asarray(x)]


def check_info(info: Any, n: int) -> list[str]:
    """Problems of a Gymnasium vector info of ``n`` envs (empty when well formed)."""
    if not isinstance(info, Mapping):
        return [f"info is a {type(info).__name__}, not a dict"]
    problems = []
    for key, value in info.items():
        if key.startswith("_"):
            continue
        mask = info.get("_" + key)
        if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != (n,):
            problems.append(f"info[{key!r}] has no bool mask '_{key}' of shape ({n},)")
        for leaf in _leaves(value):
            if leaf.ndim < 1 or leaf.shape[0] != n:
                problems.append(f"info[{key!r}] has shape {leaf.shape}, not one entry per env ({n})")
            elif not _finite(leaf):
                problems.append(f"info[{key!r}] holds non-finite values")
    return problems


class Fuzzer:
    """Drives one vector env with random valid calls, checking every output; ``step()`` is one batched step.

    ``faults`` keeps the first ``SHOWN_FAULTS`` faults and ``counts`` counts them
    all by kind; ``calls`` counts what was done (steps, do, undo, resets, ...).
    """

    def __init__(self, envs: gym.vector.VectorEnv, rng: np.random.Generator, *, label: str = "",
                 do_rate: float = 0.05, undo_rate: float = 0.05, reset_rate: float = 0.01):
        self.envs, self.rng, self.label = envs, rng, label
        self.rates = (do_rate, undo_rate, reset_rate)
        self.n = envs.num_envs
        self.num_actions = int(envs.single_action_space.n)
        self.cap = getattr(envs.unwrapped, "max_episode_steps", None)
        self.faults: list[Fault] = []
        self.counts: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.reset_do: dict[str, Any] = {}
        self.in_force: list[dict[str, Any]] = [{} for _ in range(self.n)]
        self.ended = np.zeros(self.n, dtype=bool)
        self._reset({"do": random_assignment(rng)}, seed=int(rng.integers(2**31)))

    @property
    def fault_count(self) -> int:
        return sum(self.counts.values())

    def fault(self, kind: str, message: str) -> None:
        self.counts[kind] += 1
        if len(self.faults) < SHOWN_FAULTS:
            self.faults.append(Fault(self.label, self.calls["step"], kind, message))

    def step(self) -> int:
        """A random call or two, then one batched step; returns the env steps done (``num_envs``)."""
        rng = self.rng
        do_rate, undo_rate, reset_rate = self.rates
        try:
            if rng.random() < do_rate:
                self._do()
            if rng.random() < undo_rate:
                self._undo()
            if rng.random() < reset_rate:
                self._random_reset()
            actions = rng.integers(0, self.num_actions, size=self.n)
            self.calls["step"] += 1
            out = self.envs.step(actions)
        except Exception as err:  # noqa: BLE001  (any exception from a valid call is a fault)
            self.fault("exception", f"{type(err).__name__}: {err}")
            self._recover()
            return self.n
        self._check_step(*out)
        return self.n

    # --- random calls ------------------------------------------------------------------------

    def _env_ids(self) -> Any:
        pick = self.rng.random()
        if pick < 0.4:
            return None
        ids = np.flatnonzero(self.rng.random(self.n) < 0.5)
        if len(ids) == 0:
            ids = np.array([int(self.rng.integers(self.n))])
        return ids if pick < 0.7 else [int(i) for i in ids]  # numpy ints or a list of ints

    def _selected(self, env_ids: Any) -> np.ndarray:
        return np.arange(self.n) if env_ids is None else np.asarray(env_ids, dtype=np.int64)

    def _do(self) -> None:
        assignment, env_ids = random_assignment(self.rng), self._env_ids()
        self.calls["do"] += 1
        self.envs.unwrapped.do(env_ids=env_ids, **assignment)
        for i in self._selected(env_ids):
            self.in_force[i] = {**self.in_force[i], **assignment}

    def _undo(self) -> None:
        env_ids = self._env_ids()
        held = sorted({name for i in self._selected(env_ids) for name in self.in_force[i]})
        names = [] if not held or self.rng.random() < 0.2 else list(self.rng.choice(held, size=1 + int(
            self.rng.integers(len(held))), replace=False))
        self.calls["undo"] += 1
        self.envs.unwrapped.undo(*names, env_ids=env_ids)
        for i in self._selected(env_ids):
            self.in_force[i] = {k: v for k, v in self.in_force[i].items() if names and k not in names}

    def _random_reset(self) -> None:
        rng = self.rng
        options: dict[str, Any] = {}
        if rng.random() < 0.5:
            options["do"] = random_assignment(rng)
        if rng.random() < 0.3:
            goal, start = rng.choice(len(BUILDING_NAMES), size=2, replace=False)
            options["goal"], options["start"] = BUILDING_NAMES[goal], BUILDING_NAMES[start]
        seed = None if rng.random() < 0.3 else int(rng.integers(2**31))
        if rng.random() < 0.4:
            options["reset_mask"] = rng.random(self.n) < 0.5
            options["reset_mask"][rng.integers(self.n)] = True
        self._reset(options, seed)

    def _reset(self, options: dict[str, Any], seed: int | None) -> None:
        mask = options.get("reset_mask")
        self.calls["masked_reset" if mask is not None else "reset"] += 1
        obs, info = self.envs.reset(seed=seed, options=options or None)
        rows = np.ones(self.n, dtype=bool) if mask is None else mask
        if mask is None:
            self.reset_do = dict(options.get("do", {}))
        for i in np.flatnonzero(rows):
            self.in_force[i] = dict(options["do"]) if "do" in options else dict(self.reset_do)
        self.ended[rows] = False
        self._check_outputs(obs, info, "reset")

    def _recover(self) -> None:
        try:
            self._reset({}, seed=int(self.rng.integers(2**31)))
        except Exception as err:  # noqa: BLE001
            self.fault("exception", f"reset after a fault: {type(err).__name__}: {err}")

    # --- checks ---------------------------------------------------------------------------------

    def _check_outputs(self, obs: Any, info: Any, where: str) -> None:
        space = self.envs.observation_space
        if not all(_finite(leaf) for leaf in _leaves(obs)):
            self.fault("observation", f"{where}: a non-finite observation")
        elif not space.contains(obs):
            self.fault("observation", f"{where}: an observation outside {space}")
        for problem in check_info(info, self.n):
            self.fault("info", f"{where}: {problem}")
        values = info.get("causal") if isinstance(info, Mapping) else None
        if isinstance(values, Mapping):
            self._check_interventions(values, where)

    def _check_interventions(self, values: Mapping[str, Any], where: str) -> None:
        for i in range(self.n):
            for name, value in self.in_force[i].items():
                got = float(np.asarray(values[name])[i])
                if not math.isclose(got, expected_code(name, value), rel_tol=1e-6, abs_tol=1e-6):
                    self.fault("intervention", f"{where}: env {i} shows {name}={got}, "
                                               f"but do({name}={value!r}) is in force")

    def _check_step(self, obs: Any, reward: Any, terminated: Any, truncated: Any, info: Any) -> None:
        n, ended = self.n, self.ended
        for name, value, kinds in (("reward", reward, "fiu"), ("terminated", terminated, "b"),
                                   ("truncated", truncated, "b")):
            if not isinstance(value, np.ndarray) or value.shape != (n,) or value.dtype.kind not in kinds:
                self.fault("step", f"{name} is not an array of {n} ({kinds}): {value!r}")
                self._recover()
                return
        if not _finite(reward):
            self.fault("reward", f"non-finite rewards in envs {np.flatnonzero(~np.isfinite(reward)).tolist()}")
        restarted = np.flatnonzero(ended)
        if np.any(reward[restarted] != 0) or np.any(terminated[restarted]) or np.any(truncated[restarted]):
            self.fault("autoreset", f"envs {restarted.tolist()} ended, but their next step was not an autoreset")
        steps = info.get("steps") if isinstance(info, Mapping) else None
        if steps is not None and self.cap is not None and np.any(np.asarray(steps) > self.cap):
            self.fault("time limit", f"an episode ran {int(np.max(steps))} steps, past its cap of {self.cap}")
        if steps is not None and len(restarted) and np.any(np.asarray(steps)[restarted] != 0):
            self.fault("autoreset", f"envs {restarted.tolist()} restarted with a step counter other than 0")
        for i in restarted:  # a next-step autoreset starts under the interventions of the last full reset
            self.in_force[i] = dict(self.reset_do)
        self.calls["autoreset"] += len(restarted)
        self.ended = np.asarray(terminated | truncated)
        self._check_outputs(obs, info, "step")


def configurations(args: Args, rng: np.random.Generator) -> list[dict[str, Any]]:
    """The vector envs' keyword arguments: each mode with and without the causal part, random split and cap."""
    modes = OBS_MODES if args.obs_mode == "all" else (args.obs_mode,)
    configs = []
    for mode in modes:
        for observe_causal in (True, False):
            semester = (None, *causal.SEMESTERS)[int(rng.integers(3))]
            configs.append({"obs_mode": mode, "observe_causal": observe_causal,
                            "split": causal.SPLITS[int(rng.integers(len(causal.SPLITS)))], "semester": semester,
                            "max_episode_steps": EPISODE_CAPS[int(rng.integers(len(EPISODE_CAPS)))]})
    return configs


def fuzz(args: Args, make: Callable[..., gym.vector.VectorEnv] | None = None) -> dict[str, Any]:
    """Runs every configuration for its share of ``args.steps``; returns rows, faults and counts."""
    make = make or (lambda **kw: gym.make_vec(ENV_ID, num_envs=args.num_envs, **kw))
    rng = np.random.default_rng(args.seed)
    configs = configurations(args, rng)
    batched_steps = max(1, args.steps // (len(configs) * args.num_envs))
    windows = min(WINDOWS, batched_steps)
    rows, faults, counts, calls = [], [], Counter(), Counter()
    for config in configs:
        label = ", ".join(f"{k}={v}" for k, v in config.items())
        envs = make(**config)
        fuzzer = Fuzzer(envs, rng, label=label, do_rate=args.do_rate, undo_rate=args.undo_rate,
                        reset_rate=args.reset_rate)
        # fixed windows of batched steps: a zero-second window ends at its first clock check
        rate = measure_rate(fuzzer.step, seconds=0.0, repeats=windows, check_every=math.ceil(batched_steps / windows))
        envs.close()
        rows.append({"config": config, "steps": fuzzer.calls["step"] * args.num_envs, "steps_per_s": rate.median,
                     "faults": fuzzer.fault_count, "calls": dict(fuzzer.calls)})
        faults += fuzzer.faults
        counts += fuzzer.counts
        calls += fuzzer.calls
    return {"rows": rows, "faults": [dataclasses.asdict(f) for f in faults[:SHOWN_FAULTS]],
            "fault_count": sum(counts.values()), "faults_by_kind": dict(counts), "calls": dict(calls)}


def main(argv: list[str] | None = None, make: Callable[..., gym.vector.VectorEnv] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    report = fuzz(args, make)
    results = report_faults("fuzz", f"Fuzz of {ENV_ID}'s vector env, {args.num_envs} envs", report,
                            dataclasses.asdict(args), unit="env steps", rate_header="steps/s", json_path=args.json,
                            write=not args.quick)
    return results


if __name__ == "__main__":
    main()
