"""Pretrained world models shipped inside the package: a dream with no training, and no download.

Each entry is a folder ``model_zoo/pretrained/<model id>/<data name>/`` named
``"<model id>/<data name>"`` (``"rssm/campusnav-state-v0"``), holding a checkpoint
(``config.json`` + ``model.safetensors``, ``model_zoo.checkpoint``'s safe format) and
``card.json``, the model card: what the model learned from (env, dataset id, seed and
size), how (preset, steps, batches, seconds, hardware), what it scores (the
leaderboard's metrics), the command that reproduces it, the date and the commit, and
the SHA-256 of both checkpoint files. ``load_pretrained`` refuses weights whose hash
is not the card's, as model cards on model hubs do (Mitchell et al. 2019, "Model
Cards for Model Reporting", arXiv:1810.03993).

The card's ``check`` is a small evaluation anyone can rerun (``check_pretrained``): a
few seeded random-action episodes of the card's env and the model's 1-step error on
them; a model whose code changed its outputs no longer matches, and the weights are
regenerated with the card's ``command``.

>>> import model_zoo
>>> names = model_zoo.list_pretrained()
>>> all("/" in name for name in names)
True
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from model_zoo.checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointError, atomic_write, load, save, sha256_of

__all__ = ["CARD_FILE", "PRETRAINED_ROOT", "check_pretrained", "list_pretrained", "load_pretrained",
           "pretrained_card", "save_pretrained"]

PRETRAINED_ROOT = Path(__file__).resolve().parent
CARD_FILE = "card.json"
CARD_FORMAT = "model_zoo.card"


def list_pretrained(root: str | Path | None = None) -> list[str]:
    """The names of the pretrained models in ``root`` (default: the package's), sorted."""
    root = Path(root) if root is not None else PRETRAINED_ROOT
    return sorted(f"{card.parent.parent.name}/{card.parent.name}" for card in root.glob(f"*/*/{CARD_FILE}"))


def _folder(name: str, root: str | Path | None) -> Path:
    if not isinstance(name, str) or name.count("/") != 1 or ".." in name:
        raise ValueError(f"a pretrained name is '<model id>/<data name>', e.g. 'rssm/campusnav-state-v0'; got {name!r}")
    names = list_pretrained(root)
    if name not in names:
        raise KeyError(f"no pretrained model {name!r}; available: {', '.join(names) or 'none'}")
    return (Path(root) if root is not None else PRETRAINED_ROOT) / name


def pretrained_card(name: str, root: str | Path | None = None) -> dict[str, Any]:
    """The model card of ``name`` (``card.json`` as a dict)."""
    return _read_card(_folder(name, root))


def _read_card(folder: Path) -> dict[str, Any]:
    path = folder / CARD_FILE
    try:
        card = json.loads(path.read_text())
    except ValueError as error:
        raise CheckpointError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise CheckpointError(f"{path}: not a model card (no \"format\": \"{CARD_FORMAT}\" entry)")
    return card


def load_pretrained(name: str, map_location: str = "cpu", root: str | Path | None = None):
    """The pretrained model ``name`` in eval mode, after checking both checkpoint files against its card.

    Raises ``KeyError`` for an unknown name and ``CheckpointError`` when a file's SHA-256
    is not the one the card records (the weights were changed after the card was written).
    """
    folder = _folder(name, root)
    card = _read_card(folder)
    for file, key in ((WEIGHTS_FILE, "weights_sha256"), (CONFIG_FILE, "config_sha256")):
        expected, actual = card.get(key), sha256_of(folder / file)
        if actual != expected:
            raise CheckpointError(f"{folder / file}: SHA-256 {actual[:12]}... is not the {expected!s:.12}... that "
                                  f"{CARD_FILE} records: the file changed after the card was written; regenerate "
                                  f"it with: {card.get('command', 'the command on the card')}")
    return load(folder, map_location=map_location).eval()


def save_pretrained(model, name: str, card: Mapping[str, Any], root: str | Path | None = None,
                    storage: str = "float32") -> Path:
    """Writes ``model`` and its card (``card`` plus the name, the model id, the storage and both SHA-256s) as
    ``name``; ``storage="float16"`` halves the weights' bytes (``model_zoo.checkpoint.save``)."""
    if not isinstance(name, str) or name.count("/") != 1 or not name.startswith(f"{model.model_id}/"):
        raise ValueError(f"name must be '{model.model_id}/<data name>', got {name!r}")
    folder = (Path(root) if root is not None else PRETRAINED_ROOT) / name
    save(model, folder, storage=storage)
    full = {"format": CARD_FORMAT, "name": name, "model_id": model.model_id, **card, "storage": storage,
            "weights_sha256": sha256_of(folder / WEIGHTS_FILE), "config_sha256": sha256_of(folder / CONFIG_FILE)}
    atomic_write(folder / CARD_FILE, json.dumps(full, indent=2, default=float) + "\n")
    return folder


def one_step_check(model, env_id: str, env_kwargs: Mapping[str, Any], *, episodes: int, steps: int, seed: int,
                   windows: int = 16) -> float:
    """The model's 1-step observation error on ``episodes`` random-action episodes of ``env_id`` (reset seeds
    ``seed``, ``seed + 1``, ...; ``steps`` long at most), 8 steps of context: the card's ``check``."""
    import torch

    from model_zoo.data import collect, load_episodes
    from model_zoo.evaluation import evaluate

    with tempfile.TemporaryDirectory() as scratch:
        dataset = collect(env_id, num_episodes=episodes, num_envs=1, env_kwargs=dict(env_kwargs), seed=seed,
                          max_episode_steps=steps, dataset_id="check/pretrained-v0",
                          data_path=scratch, progress=False)
        data = load_episodes(dataset)
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            result = evaluate(model, data, horizons=(1,), context=8, num_windows=windows, speed_batch=0, seed=seed)
        finally:
            torch.random.set_rng_state(generator_state)
    return float(result.as_dict()["obs_mse@1"])


def check_pretrained(name: str, root: str | Path | None = None) -> dict[str, float]:
    """Reruns the card's ``check`` on the loaded model: ``{"card": ..., "measured": ..., "tolerance": ...}``."""
    card = pretrained_card(name, root)
    check = card["check"]
    model = load_pretrained(name, root=root)
    measured = one_step_check(model, card["env_id"], card.get("env_kwargs", {}), episodes=check["episodes"],
                              steps=check["steps"], seed=check["seed"], windows=check["windows"])
    return {"card": float(check["obs_mse@1"]), "measured": measured, "tolerance": float(check["tolerance"])}
