"""Imagined steps per second of every zoo model on CampusNav-v0.

For each id in ``model_zoo.list_models()`` that builds on CampusNav-v0's dict
observation space (64x64x3 image + state + causal vectors, ``Discrete(5)``), the
model filters one batch of observations with ``observe`` and then calls
``imagine`` in a loop: latent features only, no ``decode``, under
``torch.inference_mode`` with a seeded ``torch.Generator`` and random actions
drawn up front. An imagined step counts once per batch row. Each batch size is
timed in ``--repeats`` windows of ``--seconds`` after a short warm-up, and the
best window is reported (the machine may be shared; the best window is the
least disturbed). Every model is measured with one torch thread and with
torch's default (all cores): on a busy machine one thread is often the faster,
as a multi-threaded matmul waits for its slowest thread. Models that fail to
import or build are listed with the reason. It prints a markdown table and the
target as a PASS/MISS line (the best thread setting counts); it is a benchmark,
not a test, so a miss does not fail.

    python benchmarks/imagination_speed.py                 # about 1 s per cell
    python benchmarks/imagination_speed.py --quick         # a very short run
    python benchmarks/imagination_speed.py --models vae_mdnrnn --threads 2 --json out.json
"""

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import gymnasium as gym
import numpy as np
import torch
import tyro

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from campusnav.harness import Target, machine_info, markdown_table, measure_rate, write_json

ENV_ID = "CampusNav-v0"
TARGET_ID = "vae_mdnrnn"
TARGET_BATCH = 1024
TARGET_STEPS_PER_S = 50_000
ACTION_BLOCK = 64  # imagine() calls worth of random actions drawn up front


@dataclass
class Row:
    """One model at one thread count: imagined steps per second at each batch size."""

    model: str
    threads: int
    params: int
    steps_per_s: dict[int, float] = field(default_factory=dict)


def random_obs(space: gym.Space, batch: int, seed: int):
    """``batch`` observations sampled from ``space``, stacked into tensors in the env's format."""
    space.seed(seed)
    samples = [space.sample() for _ in range(batch)]
    if isinstance(space, gym.spaces.Dict):
        return {k: torch.as_tensor(np.stack([s[k] for s in samples])) for k in space.spaces}
    return torch.as_tensor(np.stack(samples))


def random_actions(space: gym.Space, batch: int, seed: int) -> torch.Tensor:
    """(ACTION_BLOCK, batch, ...) random actions."""
    rng = np.random.default_rng(seed)
    if isinstance(space, gym.spaces.Discrete):
        return torch.as_tensor(rng.integers(space.start, space.start + space.n, (ACTION_BLOCK, batch)))
    low, high = np.broadcast_to(space.low, space.shape), np.broadcast_to(space.high, space.shape)
    return torch.as_tensor(rng.uniform(low, high, (ACTION_BLOCK, batch) + space.shape).astype(np.float32))


@torch.inference_mode()
def time_imagine(model, batch: int, seconds: float, warmup: float, repeats: int, seed: int = 0) -> float:
    """Best steps/s (batch rows x calls per second) of ``imagine`` over ``repeats`` windows."""
    device = model.device
    obs = model.spec.to_torch(random_obs(model.observation_space, batch, seed), device)
    actions = random_actions(model.action_space, batch, seed).to(device)
    start_state = model.observe(model.initial_state(batch), actions[0], obs, torch.ones(batch, dtype=torch.bool,
                                                                                      device=device))
    generator = torch.Generator(device=device).manual_seed(seed)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    state, i = start_state, 0

    def step() -> int:
        nonlocal state, i
        state = model.imagine(state, actions[i], generator=generator).state
        i = (i + 1) % ACTION_BLOCK
        if i == 0:  # restart from the filtered state, so the rollout stays in distribution
            state = start_state
        return batch

    return measure_rate(step, seconds, warmup, repeats, sync=sync, check_every=4).best


def measure(
    batch_sizes: Sequence[int],
    seconds: float,
    warmup: float,
    repeats: int,
    models: Sequence[str] | None = None,
    threads: Sequence[int] = (1,),
    device: str = "cpu",
    log: Callable[[str], None] = print,
) -> tuple[list[Row], list[str]]:
    """Measures every buildable model at each thread count; returns the rows and notes on the skipped ones."""
    env = gym.make(ENV_ID)
    rows, notes = [], []
    default_threads = torch.get_num_threads()
    for model_id in models or model_zoo.list_models():
        try:
            torch.manual_seed(0)
            model = model_zoo.make(model_id, env.observation_space, env.action_space).to(device).eval()
        except Exception as error:  # a model being written, or one that does not take images
            notes.append(f"{model_id}: skipped ({type(error).__name__}: {str(error).splitlines()[0][:120]})")
            log(f"  {notes[-1]}")
            continue
        params = sum(p.numel() for p in model.parameters())
        try:
            for n in threads:
                torch.set_num_threads(n)
                row = Row(model_id, n, params)
                for batch in batch_sizes:
                    row.steps_per_s[batch] = time_imagine(model, batch, seconds, warmup, repeats)
                    log(f"  {model_id:<20} {n} thread(s) batch {batch:>5}: {row.steps_per_s[batch]:>12,.0f} steps/s")
                rows.append(row)
        except Exception as error:
            notes.append(f"{model_id}: failed ({type(error).__name__}: {str(error).splitlines()[0][:120]})")
            log(f"  {notes[-1]}")
        finally:
            torch.set_num_threads(default_threads)
    env.close()
    return rows, notes


def table(rows: list[Row], batch_sizes: Sequence[int]) -> str:
    """The markdown table: model, torch threads, parameters, steps/s per batch size."""
    cells = [[row.model, row.threads, f"{row.params / 1e6:.2f}M", *(f"{row.steps_per_s[b]:,.0f}" for b in batch_sizes)]
             for row in rows]
    return markdown_table(["model", "threads", "parameters", *(f"batch {b}" for b in batch_sizes)], cells,
                          align="lrr" + "r" * len(batch_sizes))


def target(rows: list[Row]) -> Target:
    """The vae_mdnrnn target, at its best thread count."""
    name = f"{TARGET_ID} imagine at batch {TARGET_BATCH} >= {TARGET_STEPS_PER_S:,} steps/s"
    measured = [r for r in rows if r.model == TARGET_ID and TARGET_BATCH in r.steps_per_s]
    if not measured:
        return Target(name, None, TARGET_STEPS_PER_S)
    best = max(measured, key=lambda r: r.steps_per_s[TARGET_BATCH])
    value = best.steps_per_s[TARGET_BATCH]
    return Target(name, value, TARGET_STEPS_PER_S, f"{value:,.0f} steps/s ({best.threads} torch thread(s))")


@dataclass(frozen=True)
class Args:
    """Imagined steps per second of every zoo model on CampusNav-v0."""

    seconds: float | None = None
    """seconds per timed window (default: 1, or 0.2 with --quick)"""
    repeats: int = 3
    """timed windows per cell; the best counts"""
    quick: bool = False
    """a very short run"""
    batch_sizes: tuple[int, ...] = (1, 64, 1024)
    """batch sizes to time"""
    models: tuple[str, ...] = ()
    """model ids (default: every registered id)"""
    threads: tuple[int, ...] = ()
    """torch thread counts to measure (default: 1 and torch's default)"""
    device: str = "cpu"
    """torch device"""
    json: str | None = None
    """also write the numbers to this JSON file"""


def main(argv: Sequence[str] | None = None) -> int:
    args = tyro.cli(Args, args=argv)
    threads = list(dict.fromkeys(args.threads or [1, torch.get_num_threads()]))
    seconds = args.seconds if args.seconds is not None else (0.2 if args.quick else 1.0)
    repeats = 1 if args.quick else args.repeats
    warmup = min(0.5, max(0.05, 0.25 * seconds))
    info = machine_info()
    print(f"# imagine() steps/s on {ENV_ID} (dict observations, Discrete(5)): latent features, no decode; "
          f"best of {repeats} x {seconds:g} s windows")
    print(f"# {info['platform']}, {info['cpus']} CPUs, torch {torch.__version__}, device {args.device}, "
          f"load average {info.get('load_average')}")
    rows, notes = measure(args.batch_sizes, seconds, warmup, repeats, list(args.models) or None, threads, args.device)
    print()
    print(table(rows, args.batch_sizes))
    for note in notes:
        print(f"\n{note}" if note is notes[0] else note)
    check = target(rows)
    print(f"\n{check.line}")
    if args.json is not None:
        report = {"seconds": seconds, "repeats": repeats, "threads": threads, "machine": info,
                  "rows": [asdict(r) for r in rows], "notes": notes, "check": check.as_dict()}
        print(f"wrote {write_json(args.json, report)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
