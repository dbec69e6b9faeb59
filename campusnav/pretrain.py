"""``campusnav pretrain``: the leaderboard's trained models, written into the package as pretrained weights.

The leaderboard (``benchmarks/leaderboard.py``) trains every model of the zoo on
CampusNav-v0 state vectors and, with ``--pixels``, on CampusNav-v0 frames and on
CarRacing-v3 frames, keeping each cell's weights in its ``--work`` folder. This
command copies one seed's models into ``model_zoo/pretrained`` (``save_pretrained``)
with a model card: the dataset (id, seed, size), the preset and budget, the training
time and hardware, the cell's leaderboard metrics, the command that reproduces it,
the date and the commit, and a fresh ``check`` (``model_zoo.pretrained.one_step_check``).
Every state-vector model is shipped; on pixels the image models of ``PIXEL_MODELS``
and, on CarRacing-v3, ``CAR_MODEL`` (the World Models pair of Ha & Schmidhuber 2018),
so that the package stays under ``MAX_BYTES``.

    python benchmarks/leaderboard.py --seeds 1 --save-pretrained model_zoo/pretrained  # train, score, ship
    campusnav pretrain --work runs/leaderboard                    # ship what a run left
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch

import model_zoo
from campusnav.harness import markdown_table, write_results
from campusnav.leaderboard.budget import Budget
from campusnav.leaderboard.cell import PIXEL_PRESET, PRESET, cell_folder
from campusnav.leaderboard.data import (
    CAMPUS,
    CAR,
    CAR_HELD_OUT,
    DATA_SEED,
    HELD_OUT,
    PIXEL_KWARGS,
    PIXEL_SEED,
    STATE_KWARGS,
    campus_pixels_id,
    campus_train_id,
    car_id,
)
from campusnav.leaderboard.ledger import Ledger
from model_zoo.checkpoint import round_to_storage
from model_zoo.pretrained import PRETRAINED_ROOT, list_pretrained, one_step_check, save_pretrained

__all__ = ["BUDGET_FILE", "CAR_MODEL", "MAX_BYTES", "PIXEL_MODELS", "STORAGE", "Entry", "PretrainArgs", "describe",
           "export", "pretrained_bytes"]

PIXEL_MODELS = ("vae_mdnrnn", "rssm")
CAR_MODEL = "vae_mdnrnn"
MAX_BYTES = 40 * 2**20
STORAGE = "float16"  # model_zoo.checkpoint's, for every entry: half the bytes of float32, more models in MAX_BYTES
BUDGET_FILE = "budget.json"  # the leaderboard's Budget, written into --work
CHECK = {"episodes": 4, "steps": 40, "seed": 777, "windows": 16, "tolerance": 1e-3}
"""The card's check: 4 random-action episodes (reset seeds 777...) and the relative tolerance of a rerun."""


@dataclass(frozen=True)
class PretrainArgs:
    """Ship one seed of a leaderboard run's models as the package's pretrained weights."""

    work: str = "runs/leaderboard"
    """the leaderboard's --work folder (cells/<model>/seed<k>/ with the weights and stages.json)"""
    seed: int = 0
    """which seed's models"""
    models: list[str] = field(default_factory=list)
    """model ids (default: every registered model the run trained)"""
    out: str = ""
    """where the entries go (default: the package's model_zoo/pretrained, and then the table of every card to
    pretrained.{md,json} in the docs' results folder)"""
    pixel_models: tuple[str, ...] = PIXEL_MODELS
    """the models also shipped on CampusNav-v0 pixels (from a run with pixels)"""
    car_model: str = CAR_MODEL
    """the model also shipped on CarRacing-v3 pixels ("" for none)"""
    threads: int | None = None
    """torch threads per process (default: one, the fastest for the zoo's small networks)"""


def budget_in(work: Path) -> Budget:
    """The Budget the leaderboard recorded in ``work`` (the default one for a run that predates the record)."""
    path = work / BUDGET_FILE
    return Budget(**json.loads(path.read_text())) if path.is_file() else Budget()


class Entry(NamedTuple):
    """One pretrained model a leaderboard cell can ship."""

    name: str  # "<model id>/<data name>"
    weights: str  # the folder of the cell that holds its checkpoint
    stage: str  # the cell's stage that trained and scored it
    env_id: str
    env_kwargs: dict[str, Any]
    dataset: dict[str, Any]  # what the card says of the data
    preset: str
    gradient_steps: int


def _entries(model_id: str, budget: Budget, args: PretrainArgs) -> list[Entry]:
    """The entries of one model's cell: on state vectors, and on pixels for the models ``args`` names."""
    entries = [Entry(f"{model_id}/campusnav-state-v0", "model", "train", CAMPUS, STATE_KWARGS, {
        "id": campus_train_id(budget), "seed": DATA_SEED, "episodes": budget.episodes, "held_out": HELD_OUT,
        "max_episode_steps": budget.max_episode_steps, "policy": f"goal-biased (bias {budget.collect_bias})",
        "split": "train"}, PRESET, budget.steps)]
    if model_id in args.pixel_models:
        entries.append(Entry(f"{model_id}/campusnav-pixels-v0", "pixel_model", "campus_pixels", CAMPUS, PIXEL_KWARGS, {
            "id": campus_pixels_id(budget), "seed": PIXEL_SEED, "episodes": budget.campus_pixel_episodes,
            "held_out": HELD_OUT, "max_episode_steps": budget.max_episode_steps, "policy": "uniform random",
            "split": "train"}, PIXEL_PRESET, budget.pixel_steps))
    if model_id == args.car_model:
        entries.append(Entry(f"{model_id}/carracing-pixels-v0", "car_model", "car", CAR, {}, {
            "id": car_id(budget), "seed": DATA_SEED, "episodes": budget.pixel_episodes, "held_out": CAR_HELD_OUT,
            "max_episode_steps": budget.pixel_max_steps, "policy": "uniform random"}, PRESET, budget.pixel_steps))
    return entries


@functools.cache
def _commit() -> str:
    """The checkout's HEAD, read once per process."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _metrics(stages: dict[str, Any], stage: str) -> dict[str, Any]:
    """The leaderboard's numbers of one entry: the state stages for the state model, else the pixel stage's."""
    if stage != "train":
        return dict(stages[stage])
    keep = ("errors", "fidelity", "do_error", "cmaes", "ppo")
    metrics = {name: stages[name] for name in keep if name in stages}
    metrics["cmaes"] = {k: v for k, v in metrics.get("cmaes", {}).items() if k != "params"}
    return metrics


def card_for(model_id: str, seed: int, budget: Budget, stages: dict[str, Any], entry: Entry, model: Any,
             trained_at: float) -> dict[str, Any]:
    """The model card of one entry (``save_pretrained`` adds the name, the id and the checksums)."""
    stage, env_id, env_kwargs, dataset = entry.stage, entry.env_id, entry.env_kwargs, entry.dataset
    seconds = stages["train"]["train_s"] if stage == "train" else stages[stage].get(
        "px_train_s" if stage == "campus_pixels" else "car_train_s")
    check_value = one_step_check(model, env_id, env_kwargs, **{k: CHECK[k] for k in ("episodes", "steps", "seed",
                                                                                      "windows")})
    pixels = " --no-pixels" if stage == "train" else ""  # the pixel stages come after the state ones
    return {
        "env_id": env_id, "env_kwargs": env_kwargs,
        "dataset": dataset,
        "training": {"preset": entry.preset, "gradient_steps": entry.gradient_steps, "model_seed": seed,
                     "batch_size": budget.batch_size, "seq_len": budget.seq_len,
                     "seconds": seconds, "hardware": f"{platform.machine()}, {os.cpu_count()} CPUs, one torch thread",
                     "torch": torch.__version__},
        "metrics": _metrics(stages, stage),
        "check": {**CHECK, "obs_mse@1": check_value},
        "command": f"python benchmarks/leaderboard.py --models {model_id} --seeds {seed + 1}{pixels} "
                   f"--work runs/pretrain --save-pretrained model_zoo/pretrained",
        "date": datetime.date.fromtimestamp(trained_at).isoformat(),
        "commit": _commit(),
    }


def export(args: PretrainArgs) -> list[str]:
    """Writes every finished entry of ``args.seed`` into ``args.out``; returns their names (those already there
    with the same weights and card are kept as they are).

    The entries are written to a staging folder beside ``args.out`` first and moved in only when the package
    stays within ``MAX_BYTES``: an export that is refused leaves ``args.out`` as it was."""
    work, root = Path(args.work), Path(args.out) if args.out else PRETRAINED_ROOT
    budget = budget_in(work)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=f".{root.name}-staging-") as staging:
        written, unchanged = _stage(args, work, budget, Path(staging), root)
        kept = [name for name in list_pretrained(root) if name not in written]
        total = sum(_size(root / name) for name in kept) + pretrained_bytes(staging)
        if total > MAX_BYTES:
            raise SystemExit(f"the pretrained weights would take {total / 2**20:.1f} MB, over the "
                             f"{MAX_BYTES / 2**20:.0f} MB the package allows; ship fewer models (PIXEL_MODELS, "
                             f"--models); nothing was written")
        for name in written:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(root / name, ignore_errors=True)
            shutil.move(Path(staging) / name, root / name)
    if not args.out:
        cards = {name: model_zoo.pretrained_card(name, root) for name in list_pretrained(root)}
        write_results("pretrained", describe(root), {"cards": cards, "bytes": total})
    return sorted(written + unchanged)


def _stage(args: PretrainArgs, work: Path, budget: Budget, staging: Path, root: Path) -> tuple[list[str], list[str]]:
    """Every finished entry of ``args.seed`` saved with its card into ``staging``: the names written, and those
    that ``root`` already holds with the same weights and card (the commit aside), left as they are."""
    written, unchanged = [], []
    for model_id in args.models or model_zoo.list_models():
        folder = cell_folder(work, model_id, args.seed)
        stages = Ledger(folder / "stages.json").stages if (folder / "stages.json").exists() else {}
        for entry in _entries(model_id, budget, args):
            weights = folder / entry.weights
            if entry.stage not in stages or not (weights / "config.json").is_file():
                continue
            model = round_to_storage(model_zoo.load(weights).eval(), STORAGE)  # the card checks what ships
            trained_at = (weights / "model.safetensors").stat().st_mtime
            card = card_for(model_id, args.seed, budget, stages, entry, model, trained_at)
            if _shipped_as(root, entry, model, card):
                print(f"{entry.name}: unchanged", flush=True)
                unchanged.append(entry.name)
                continue
            save_pretrained(model, entry.name, card, root=staging, storage=STORAGE)
            written.append(entry.name)
            print(f"{entry.name}: {_size(staging / entry.name) / 2**20:.1f} MB", flush=True)
    return written, unchanged


def _shipped_as(root: Path, entry: Entry, model: Any, card: dict[str, Any]) -> bool:
    """Whether ``root`` holds ``entry`` with ``model``'s weights, in ``STORAGE``, and ``card`` (the commit aside)."""
    if entry.name not in list_pretrained(root):
        return False
    shipped, card = model_zoo.pretrained_card(entry.name, root), json.loads(json.dumps(card))  # as card.json reads
    if shipped.get("storage") != STORAGE or any(shipped.get(k) != v for k, v in card.items() if k != "commit"):
        return False
    weights = model_zoo.load_pretrained(entry.name, root=root).state_dict()
    return weights.keys() == model.state_dict().keys() and all(
        torch.equal(weights[name], value) for name, value in model.state_dict().items())


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def pretrained_bytes(root: str | Path = PRETRAINED_ROOT) -> int:
    """The bytes all entries in ``root`` take."""
    return sum(_size(Path(root) / name) for name in list_pretrained(root))


def describe(root: str | Path = PRETRAINED_ROOT) -> str:
    """A markdown table of the entries: data, training, size and the leaderboard's main numbers."""
    rows = []
    for name in list_pretrained(root):
        card = model_zoo.pretrained_card(name, root)
        metrics, training = card["metrics"], card["training"]
        fidelity = metrics.get("fidelity", {})
        score = (f"precision@1 {fidelity['precision@1']:.3g}, tv@16 {fidelity['position_tv@16']:.3g}" if fidelity
                 else ", ".join(f"{k} {v:.3g}" for k, v in metrics.items() if k in ("px_tv@16", "car_psnr@1")))
        rows.append([f"`{name}`", card["dataset"]["id"], f"{training['gradient_steps']:,}",
                     f"{training['seconds']:.0f}", f"{_size(Path(root) / name) / 2**20:.1f}",
                     f"{card['check']['obs_mse@1']:.4g}", score])
    header = ["name", "dataset", "steps", "train s", "MB", "check obs_mse@1", "leaderboard"]
    return markdown_table(header, rows, "llrrrrl")
