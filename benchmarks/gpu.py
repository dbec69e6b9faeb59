"""Training and imagination throughput of the state-vector world models on a GPU, in fp32 and bf16.

For each registered model that takes state vectors (``observation_kinds`` holds
``"vector"``), built with its ``campusnav-state`` preset on CampusNav-v0 state
episodes this script collects itself, on ``--device``:

- training samples per second: windows (``--batch-size`` sequences of ``--seq-len``
  steps) times optimizer steps per second of ``model_zoo.fit`` over ``--steps`` steps,
  after ``--warmup`` steps, batches drawn on the device;
- imagined steps per second: ``model_zoo.evaluation.imagined_steps_per_second``, batched
  ``imagine`` of ``--imagine-batch`` rows for ``--seconds``;

each with ``--precisions`` (``fp32``, and ``bf16``: ``fit(precision="bf16")`` and
``imagine`` under ``torch.autocast``). A cell that fails says why. Without a GPU and with
``--device cuda`` it prints one line and exits 0, writing nothing; a real run writes
``gpu.md`` and ``gpu.json`` (``campusnav.harness.write_results``), ``--quick`` nothing.

    python benchmarks/gpu.py                          # every state-vector model, fp32 and bf16
    python benchmarks/gpu.py --models vae_mdnrnn rssm --batch-size 256
    python benchmarks/gpu.py --device cpu --quick     # a smoke run of seconds
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
import tyro

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from campusnav.device import resolve_device
from campusnav.harness import markdown_table, ratio, write_results
from campusnav.mbrl import tiny_config
from campusnav.overrides import parse_overrides
from campusnav.threads import use_threads
from model_zoo.data import SequenceSampler, collect, load_episodes
from model_zoo.evaluation import imagined_steps_per_second
from model_zoo.training import PRECISIONS

ENV_ID = "CampusNav-v0"
PRESET = "campusnav-state"


@dataclass(frozen=True)
class Args:
    """GPU throughput of the state-vector models."""

    device: str = "cuda"
    """where to measure: cuda, cuda:N, cpu or auto"""
    models: tuple[str, ...] = ()
    """model ids (default: every registered model that takes state vectors)"""
    precisions: tuple[str, ...] = ("fp32", "bf16")
    """training and imagination precisions to measure"""
    batch_size: int = 256
    """windows per training step"""
    seq_len: int = 32
    """steps per window"""
    steps: int = 50
    """timed training steps"""
    warmup: int = 5
    """training steps before the clock starts"""
    imagine_batch: int = 4096
    """rows of each batched imagine call"""
    seconds: float = 2.0
    """seconds of timed imagination"""
    episodes: int = 128
    """CampusNav-v0 state episodes collected to train on"""
    max_episode_steps: int = 100
    """their length"""
    threads: int | None = None
    """torch threads (default: one)"""
    out: str = ""
    """results folder (default: the docs' results folder)"""
    quick: bool = False
    """a smoke run: tiny models, data and budgets; nothing written"""


QUICK = dict(batch_size=4, seq_len=8, steps=2, warmup=1, imagine_batch=64, seconds=0.05, episodes=4,
             max_episode_steps=20)


def state_models() -> list[str]:
    """The registered models that take state vectors, as ``benchmarks/leaderboard.py`` picks them."""
    return [m for m in model_zoo.list_models() if "vector" in model_zoo.registry.spec(m).load_class().observation_kinds]


def parse_args(argv: list[str] | None = None) -> Args:
    args = tyro.cli(Args, args=argv, description=__doc__)
    if unknown := [m for m in args.models if m not in state_models()]:
        raise SystemExit(f"error: argument --models: {unknown} are not state-vector models; "
                         f"choose from {', '.join(state_models())}")
    if bad := [p for p in args.precisions if p not in PRECISIONS]:
        raise SystemExit(f"error: argument --precisions: {bad}; choose from fp32, bf16")
    return dataclasses.replace(args, **QUICK) if args.quick else args


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def measure(model_id: str, episodes, space, args: Args, device: torch.device, precision: str) -> dict[str, Any]:
    """Training samples/s and imagined steps/s of one model at one precision (``error`` when it failed)."""
    torch.manual_seed(0)
    overrides = parse_overrides(tiny_config(model_id)) if args.quick else {}
    try:
        model = model_zoo.make(model_id, *space, preset=PRESET, **overrides)
        sampler = SequenceSampler(episodes, args.seq_len, args.batch_size, seed=0, device=device)
        kwargs = dict(device=device, precision=precision, lr=model_zoo.preset(model_id, PRESET).lr, progress=False)
        model_zoo.fit(model, sampler, steps=args.warmup, **kwargs)
        _sync(device)
        started = time.perf_counter()
        model_zoo.fit(model, sampler, steps=args.steps, **kwargs)
        _sync(device)
        train = args.batch_size * args.steps / (time.perf_counter() - started)
        model.eval()
        with _autocast(device, precision):
            imagine = imagined_steps_per_second(model, args.imagine_batch, seconds=args.seconds)
    except (RuntimeError, ValueError, FloatingPointError, NotImplementedError) as err:
        return {"model": model_id, "precision": precision, "error": f"{type(err).__name__}: {str(err).splitlines()[0]}"}
    return {"model": model_id, "precision": precision, "train_samples_per_s": train, "imagined_steps_per_s": imagine}


def _episodes(args: Args, folder: str):
    dataset = collect(ENV_ID, num_episodes=args.episodes, num_envs=min(8, args.episodes), seed=0,
                      env_kwargs={"obs_mode": "state"}, max_episode_steps=args.max_episode_steps,
                      dataset_id="gpu/campus-state-v0", data_path=folder, progress=False)
    return load_episodes(dataset), (dataset.observation_space, dataset.action_space)


def table(rows: list[dict[str, Any]]) -> str:
    fp32 = {r["model"]: r for r in rows if r["precision"] == "fp32" and "error" not in r}
    cells = []
    for r in rows:
        if "error" in r:
            cells.append([r["model"], r["precision"], "failed", "—", r["error"], "—"])
            continue
        base = fp32.get(r["model"], {})
        cells.append([r["model"], r["precision"], f"{r['train_samples_per_s']:,.0f}",
                      ratio(r["train_samples_per_s"], base.get("train_samples_per_s")),
                      f"{r['imagined_steps_per_s']:,.0f}", ratio(r["imagined_steps_per_s"],
                                                                   base.get("imagined_steps_per_s"))])
    return markdown_table(["model", "precision", "train samples/s", "vs fp32", "imagined steps/s", "vs fp32"],
                          cells, align="llrrrr")


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as err:
        print(f"benchmarks/gpu.py: no GPU found, nothing measured ({err})")
        return None
    use_threads(args.threads)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        episodes, space = _episodes(args, folder)
    rows = [measure(m, episodes, space, args, device, p) for m in (args.models or state_models())
            for p in args.precisions]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    markdown = "\n".join([
        f"# World models on {name} ({device})", "",
        f"Training: {args.steps} steps of {args.batch_size} windows x {args.seq_len} steps after {args.warmup} "
        f"warm-up steps; imagination: batches of {args.imagine_batch} for {args.seconds:g} s; "
        f"{(time.perf_counter() - started) / 60:.1f} min in all.", "", table(rows), ""])
    print(markdown)
    report = {"args": asdict(args), "device": str(device), "device_name": name, "rows": rows}
    if not args.quick:
        write_results("gpu", markdown, report, directory=args.out or None)
    return report


if __name__ == "__main__":
    main()
