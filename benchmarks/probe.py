"""How well the semantic probe reads CampusNav-v0's pixel frames, and how much it doubts frames no env draws.

``model_zoo.probe.train_probe`` trains a small conv net on real egocentric frames
(random walks over every context of the env's coverage grid, labelled by the env's
own semantic readout) to read the agent's cell (row, column) and the weather. This
benchmark trains it at the default budget and reports:

- the accuracy per field and jointly (every field right) on held-out real frames
  (other episodes, other seeds), against the target: at least 0.99 jointly;
- the probe's confidence (the least sure field's softmax probability) on another
  fresh set of real frames, and on frames no env draws: uniform noise and blank
  frames (kinds its outlier exposure saw in training, here new samples), blends
  of two real frames (also a trained kind) and real frames whose cells are
  shuffled (a kind it never saw). The share read with confidence >= 0.9 is the
  valid-frame rate ``evaluate_fidelity`` reports for imagined frames; it should be
  high on real frames and low on the others.

It prints a PASS/MISS line; a real run writes docs/results/probe.{md,json}.

    python benchmarks/probe.py                  # a few minutes on one CPU thread
    python benchmarks/probe.py --quick          # seconds; writes nothing
    python benchmarks/probe.py --save runs/probe   # also keep the trained probe
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tyro

import campus_env  # noqa: F401  (registers CampusNav-v0)
from campusnav.budgets import BenchmarkRun
from campusnav.harness import Target, markdown_table, write_json, write_results
from campusnav.threads import use_threads
from model_zoo.probe import VALID_CONFIDENCE, SemanticProbe, collect_frames, evaluate_probe, train_probe

ENV_ID = "CampusNav-v0"
TARGET = 0.99
FRESH_SEED = 2**40  # reset seeds of the fresh real frames, far from the training and held-out ones


@dataclasses.dataclass(frozen=True)
class Args(BenchmarkRun):
    frames: int = 72_000
    """training frames"""
    heldout_frames: int = 16_000
    """held-out real frames the accuracy is measured on"""
    steps: int = 3000
    """gradient steps"""
    batch_size: int = 128
    """real frames per batch (outlier frames come on top)"""
    num_envs: int = 32
    """envs stepped together while collecting"""
    stride: int = 10
    """one frame kept every this many steps"""
    probe_frames: int = 4000
    """frames of each kind the confidence is measured on"""
    threads: int = 1
    """torch threads"""
    save: str | None = None
    """also save the trained probe into this directory"""


def parse_args(argv: list[str] | None = None) -> Args:
    args = tyro.cli(Args, args=argv, description=__doc__)
    if args.quick:
        args = dataclasses.replace(args, frames=600, heldout_frames=300, steps=20, num_envs=4, stride=2,
                                   probe_frames=200)
    return args


def outlier_kinds(real: np.ndarray, patch: int, seed: int) -> dict[str, np.ndarray]:
    """Frames no env draws, as many as ``real``: noise, blank, blends of two real frames, shuffled cells."""
    rng = np.random.default_rng(seed)
    n, (h, w, c) = len(real), real.shape[1:]
    noise = rng.integers(0, 256, size=real.shape, dtype=np.uint8)
    blank = np.repeat(np.repeat(rng.integers(0, 256, size=(n, 1, 1, c), dtype=np.uint8), h, axis=1), w, axis=2)
    other = real[rng.permutation(n)]
    blends = ((real.astype(np.uint16) + other) // 2).astype(np.uint8)
    cells = real.reshape(n, h // patch, patch, w // patch, patch, c).transpose(0, 1, 3, 2, 4, 5)
    cells = cells.reshape(n, -1, patch, patch, c)
    order = np.argsort(rng.random(cells.shape[:2]), axis=1)
    shuffled = np.take_along_axis(cells, order[:, :, None, None, None], axis=1)
    shuffled = shuffled.reshape(n, h // patch, w // patch, patch, patch, c).transpose(0, 1, 3, 2, 4, 5)
    return {"uniform noise": noise, "blank (one colour)": blank, "blend of two real frames": blends,
            "real frame, cells shuffled": shuffled.reshape(real.shape)}


def confidence_rows(probe: SemanticProbe, args: Args) -> tuple[dict[str, dict], dict[str, float]]:
    """Confidence on fresh real frames and on each outlier kind; also the fresh frames' accuracy."""
    real, labels = collect_frames(ENV_ID, frames=args.probe_frames, num_envs=args.num_envs, stride=args.stride,
                                  seed=FRESH_SEED + args.seed)
    kinds = {"real frames (fresh episodes)": real, **outlier_kinds(real, probe.patch, args.seed)}
    trained = {"uniform noise": "yes (new samples)", "blank (one colour)": "yes (new samples)",
               "blend of two real frames": "yes (new pairs)", "real frame, cells shuffled": "no"}
    rows = {}
    for name, frames in kinds.items():
        _, confidence = probe.read(frames)
        rows[name] = {"frames": len(frames), "mean_confidence": float(confidence.mean()),
                      "valid_rate": float((confidence >= VALID_CONFIDENCE).mean()),
                      "outlier_kind_in_training": trained.get(name, "-")}
    return rows, evaluate_probe(probe, real, labels)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    use_threads(args.threads)
    result = train_probe(ENV_ID, frames=args.frames, heldout_frames=args.heldout_frames, steps=args.steps,
                         batch_size=args.batch_size, num_envs=args.num_envs, stride=args.stride, seed=args.seed)
    if args.save:
        result.probe.save(args.save)
    rows, fresh = confidence_rows(result.probe, args)
    target = Target(f"held-out joint accuracy >= {TARGET}", value=result.joint_accuracy, target=TARGET,
                    detail=f"{result.joint_accuracy:.4f} of {result.heldout_frames:,} held-out real frames read "
                    f"right in every field ({', '.join(result.probe.fields)}); target {TARGET}")
    accuracy = markdown_table(
        ["field", "held-out accuracy", "fresh-set accuracy"],
        [[name, f"{value:.4f}", f"{fresh['accuracy'][name]:.4f}"] for name, value in result.accuracy.items()]
        + [["all fields jointly", f"{result.joint_accuracy:.4f}", f"{fresh['joint_accuracy']:.4f}"]], align="lrr")
    confidence = markdown_table(
        ["frames", "count", "mean confidence", f"share >= {VALID_CONFIDENCE}", "kind seen in training"],
        [[name, f"{r['frames']:,}", f"{r['mean_confidence']:.3f}", f"{r['valid_rate']:.4f}",
          r["outlier_kind_in_training"]] for name, r in rows.items()], align="lrrrl")
    budget = (f"{result.frames:,} training frames, {args.steps} steps of {args.batch_size}, "
              f"{result.train_seconds:.0f} s training, {result.seconds:.0f} s with collection, "
              f"{args.threads} torch thread(s)")
    print(f"\nSemantic probe of {ENV_ID} frames; {budget}\n\n{accuracy}\n\n{confidence}\n\n{target.line}")
    results = {"config": dataclasses.asdict(args), **result.as_dict(), "fresh": fresh, "confidence": rows,
               "targets": [target.as_dict()]}
    if args.json:
        write_json(args.json, results)
    if not args.quick:
        write_results("probe", f"{budget}.\n\n{accuracy}\n\nConfidence (the least sure field's probability):\n\n"
                      f"{confidence}\n\n`{target.line}`\n", results)
    return results


if __name__ == "__main__":
    main()
