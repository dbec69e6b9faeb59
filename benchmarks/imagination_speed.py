"""Imagined steps per second of every zoo model on CampusNav-v0 (issue 3, "Quality and speed").

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

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo

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
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    clock = time.perf_counter
    best = 0.0
    for window in range(repeats + 1):  # window 0 is the warm-up
        budget = warmup if window == 0 else seconds
        state, calls, i = start_state, 0, 0
        sync()
        start = clock()
        while True:
            state = model.imagine(state, actions[i], generator=generator).state
            i = (i + 1) % ACTION_BLOCK
            calls += 1
            if i == 0:  # restart from the filtered state, so the rollout stays in distribution
                state = start_state
            if calls % 4 == 0:
                sync()
                elapsed = clock() - start
                if elapsed >= budget:
                    break
        if window > 0:
            best = max(best, calls * batch / elapsed)
    return best


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
    lines = [
        "| model | threads | parameters | " + " | ".join(f"batch {b}" for b in batch_sizes) + " |",
        "|---|---:|---:|" + "---:|" * len(batch_sizes),
    ]
    for row in rows:
        cells = " | ".join(f"{row.steps_per_s[b]:,.0f}" for b in batch_sizes)
        lines.append(f"| {row.model} | {row.threads} | {row.params / 1e6:.2f}M | {cells} |")
    return "\n".join(lines)


def check(rows: list[Row]) -> tuple[str, str]:
    """(PASS | MISS | SKIP, the line) for the vae_mdnrnn target, at its best thread count."""
    name = f"{TARGET_ID} imagine at batch {TARGET_BATCH} >= {TARGET_STEPS_PER_S:,} steps/s"
    measured = [r for r in rows if r.model == TARGET_ID and TARGET_BATCH in r.steps_per_s]
    if not measured:
        return "SKIP", f"SKIP  {name}: not measured"
    best = max(measured, key=lambda r: r.steps_per_s[TARGET_BATCH])
    value = best.steps_per_s[TARGET_BATCH]
    status = "PASS" if value >= TARGET_STEPS_PER_S else "MISS"
    return status, f"{status}  {name}: {value:,.0f} steps/s ({best.threads} torch thread(s))"


def _positive(convert: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (0 < value < float("inf")):
            raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
        return value

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=_positive(float), default=None,
                        help="seconds per timed window (default: 1, or 0.2 with --quick)")
    parser.add_argument("--repeats", type=_positive(int), default=3, help="timed windows per cell; the best counts")
    parser.add_argument("--quick", action="store_true", help="a very short run")
    parser.add_argument("--batch-sizes", type=_positive(int), nargs="+", default=[1, 64, 1024], metavar="B")
    parser.add_argument("--models", nargs="+", default=None, metavar="ID", help="default: every registered id")
    parser.add_argument("--threads", type=_positive(int), nargs="+", default=None, metavar="N",
                        help="torch thread counts to measure (default: 1 and torch's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the numbers here")
    args = parser.parse_args(argv)
    threads = list(dict.fromkeys(args.threads or [1, torch.get_num_threads()]))
    seconds = args.seconds if args.seconds is not None else (0.2 if args.quick else 1.0)
    repeats = 1 if args.quick else args.repeats
    warmup = min(0.5, max(0.05, 0.25 * seconds))
    print(f"# imagine() steps/s on {ENV_ID} (dict observations, Discrete(5)): latent features, no decode; "
          f"best of {repeats} x {seconds:g} s windows")
    print(f"# {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}, device {args.device}, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    rows, notes = measure(args.batch_sizes, seconds, warmup, repeats, args.models, threads, args.device)
    print()
    print(table(rows, args.batch_sizes))
    for note in notes:
        print(f"\n{note}" if note is notes[0] else note)
    status, line = check(rows)
    print(f"\n{line}")
    if args.json is not None:
        report = {"seconds": seconds, "repeats": repeats, "threads": threads, "load_average": os.getloadavg(),
                  "rows": [asdict(r) for r in rows], "notes": notes, "check": {"status": status, "line": line}}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_name(args.json.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n")
        tmp.replace(args.json)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
