"""A semantic probe: a small network that reads what a pixel frame shows, as whole numbers.

``model_zoo.evaluate_fidelity`` compares imagined samples with real forks of the
simulator through a semantic readout (``obs -> (position, state)``). An env's own
readout (its ``metadata["semantic_state"]``) reads vector parts; a model that
dreams only pixels leaves nothing for it to read. The probe closes that gap: a
small conv net trained on real frames to read the fields the env's readout names
(by default the agent's cell and the weather), one softmax head per field.

The probe learns its labels from the env itself, so nothing here knows any env:
``train_probe`` runs ``gym.make_vec(env_id, obs_mode="dict")`` with a random
policy over every context of the env's ``metadata["coverage_cells"]`` grid
(imposed with ``reset(options={"do": cell})``), labels each frame's image part
with the env's readout applied to the same observation's vector parts (column
names from ``field_names`` or the readout module's ``SEMANTIC_FIELDS``), trains
with Adam and scores the probe on frames of other episodes (other reset seeds,
another action stream). ``fit_probe`` trains on frames and labels already at hand.

Reading a frame gives each field's argmax and a confidence: the smallest over the
fields of the largest softmax probability. A frame read with confidence at least
``VALID_CONFIDENCE`` counts as valid, so the share of valid imagined frames says
how many dreams look like something the env could show. To keep that share
honest, training also shows the probe frames no env draws (uniform noise, blank
frames, blends of two real frames) with a uniform target (outlier exposure:
Hendrycks et al., "Deep Anomaly Detection with Outlier Exposure", ICLR 2019), so
that it learns to doubt them.

What a frame does not draw cannot be probed: CampusNav-v0's blocked flag (whether
the last move was refused) is no part of its frames, so it is left out.
``probe.readout`` serves as ``evaluate_fidelity(..., semantic=probe.readout)``; it
returns (position, state, confidence). ``save``/``load`` write ``config.json`` and
``model.safetensors`` (no pickle), as ``model_zoo.checkpoint`` does.
"""

from __future__ import annotations

import inspect
import json
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from model_zoo.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    atomic_write,
    check_weights,
    load_state_dict_checked,
    load_tensors,
    save_tensors,
    sha256_of,
)
from model_zoo.fidelity import VALID_CONFIDENCE, Readout
from model_zoo.metadata import entry_point_metadata, resolve_function

__all__ = [
    "VALID_CONFIDENCE",
    "ProbeResult",
    "SemanticProbe",
    "collect_frames",
    "evaluate_probe",
    "fit_probe",
    "train_probe",
]

FORMAT = "model_zoo.probe"
VERSION = 1
DEFAULT_FIELDS = ("agent_row", "agent_col", "weather")
DEFAULT_POSITION = ("agent_row", "agent_col")
_READ_BATCH = 2048
_SEED_SPAN = 2**24  # reset seeds of one collection: seed_base + cell * num_envs, below the next base


class SemanticProbe(nn.Module):
    """A conv net reading ``fields`` from uint8 frames of ``image_shape`` (H, W, C), one softmax head each.

    Field ``i`` takes the values ``lows[i] .. lows[i] + classes[i] - 1``. The first
    conv reads ``patch`` x ``patch`` blocks (a map cell, for grid envs drawn at that
    scale), two strided convs and a hidden layer follow. ``position`` names the fields
    that ``readout`` returns as the position; ``image_key`` is the image part of a
    dict observation.
    """

    def __init__(self, image_shape: Sequence[int], fields: Sequence[str], lows: Sequence[int],
                 classes: Sequence[int], position: Sequence[str] = DEFAULT_POSITION, *,
                 image_key: str = "image", patch: int = 4, width: int = 32, hidden: int = 256):
        super().__init__()
        self.image_shape = _check_shape(image_shape)
        self.fields, self.lows, self.classes = _check_fields(fields, lows, classes)
        self.position = _check_position(position, self.fields)
        if not isinstance(image_key, str):
            raise TypeError(f"image_key must be a string, got {image_key!r}")
        self.image_key = image_key
        for name, value in (("patch", patch), ("width", width), ("hidden", hidden)):
            _check_int(name, value, 1)
        height, wide, channels = self.image_shape
        if height % patch or wide % patch:
            raise ValueError(f"patch={patch} must divide the image's height and width, got {self.image_shape}")
        self.patch, self.width, self.hidden = int(patch), int(width), int(hidden)
        self.trunk = nn.Sequential(
            nn.Conv2d(channels, width, patch, stride=patch), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            features = self.trunk(torch.zeros(1, channels, height, wide)).shape[1]
        self.head = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, sum(self.classes)))

    @property
    def config(self) -> dict[str, Any]:
        """The constructor's arguments, JSON-able: ``SemanticProbe(**probe.config)`` builds the same net."""
        return {"image_shape": list(self.image_shape), "fields": list(self.fields), "lows": list(self.lows),
                "classes": list(self.classes), "position": list(self.position), "image_key": self.image_key,
                "patch": self.patch, "width": self.width, "hidden": self.hidden}

    def forward(self, images: Tensor) -> Tensor:
        """(N, sum(classes)) logits of a uint8 (N, H, W, C) batch, the fields' heads side by side."""
        x = images.permute(0, 3, 1, 2).float() / 255.0
        return self.head(self.trunk(x))

    def log_probs(self, images: Tensor) -> list[Tensor]:
        """Per field, the (N, classes) log-probabilities of its values."""
        return [F.log_softmax(part, dim=1) for part in self(images).split(list(self.classes), dim=1)]

    def read(self, images: np.ndarray | Tensor) -> tuple[np.ndarray, np.ndarray]:
        """``(values, confidence)``: (N, F) int64 argmax values and (N,) float32, the least sure field's probability."""
        batch = self.check_images(images)
        values, confidence = [], []
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                for start in range(0, len(batch), _READ_BATCH):
                    chunk = batch[start : start + _READ_BATCH].to(self._device())
                    best = [lp.max(dim=1) for lp in self.log_probs(chunk)]
                    values.append(torch.stack([b.indices for b in best], dim=1).cpu())
                    confidence.append(torch.stack([b.values for b in best], dim=1).min(dim=1).values.exp().cpu())
        finally:
            self.train(was_training)
        if not values:
            return np.zeros((0, len(self.fields)), dtype=np.int64), np.zeros(0, dtype=np.float32)
        lows = torch.tensor(self.lows, dtype=torch.int64)
        return (torch.cat(values) + lows).numpy(), torch.cat(confidence).float().numpy()

    def readout(self, obs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(position, state, confidence)`` of a batch: a bare image batch or a dict with ``image_key``.

        ``state`` holds every probed field, ``position`` the columns of ``position``;
        both int64, as ``evaluate_fidelity`` takes them (``semantic=probe.readout``).
        """
        if isinstance(obs, Mapping):
            if self.image_key not in obs:
                raise ValueError(f"the probe reads the {self.image_key!r} entry of a dict observation; this one "
                                 f"has {sorted(obs)}")
            obs = obs[self.image_key]
        values, confidence = self.read(obs)
        columns = [self.fields.index(name) for name in self.position]
        return values[:, columns], values, confidence

    def pooled_readout(self, factor: int) -> Callable[[Any], tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``readout`` of frames ``factor`` times the probe's size, each ``factor`` x ``factor`` block averaged first
        (for a renderer that repeats each pixel, as CampusNav-v0's ``image_size=128`` does, the probe's frame)."""
        _check_int("factor", factor, 1)

        def read(obs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            images = obs[self.image_key] if isinstance(obs, Mapping) else obs
            x = torch.as_tensor(np.asarray(images) if not isinstance(images, Tensor) else images).float()
            x = F.avg_pool2d(x.permute(0, 3, 1, 2), factor).round().to(torch.uint8).permute(0, 2, 3, 1)
            return self.readout(x.contiguous())

        return read

    def check_images(self, images: np.ndarray | Tensor) -> Tensor:
        """``images`` as a uint8 (N, H, W, C) CPU tensor; a TypeError or ValueError saying what is wrong."""
        if not isinstance(images, (np.ndarray, Tensor)):
            raise TypeError(f"the probe reads uint8 image batches (numpy or torch), got {type(images).__name__}")
        if images.dtype not in ((np.dtype(np.uint8),) if isinstance(images, np.ndarray) else (torch.uint8,)):
            raise TypeError(f"the probe reads uint8 images (0..255), got dtype {images.dtype}")
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(np.ascontiguousarray(images))
        if tuple(images.shape[1:]) != self.image_shape or images.ndim != 4:
            raise ValueError(f"the probe reads (N, {', '.join(map(str, self.image_shape))}) image batches, "
                             f"got shape {tuple(images.shape)}")
        return images.cpu()

    def save(self, directory: str | Path) -> Path:
        """Writes ``config.json`` and ``model.safetensors`` into ``directory`` (created if needed); returns it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_id = uuid.uuid4().hex
        weights = save_tensors(directory / WEIGHTS_FILE, self.state_dict(),
                               {"format": "pt", "model_zoo": FORMAT, "save_id": save_id})
        config = {"format": FORMAT, "version": VERSION, "save_id": save_id, "config": self.config,
                  "weights_sha256": sha256_of(weights)}
        atomic_write(directory / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> SemanticProbe:
        """The probe ``save`` wrote into ``directory``; :class:`CheckpointError` if it is not a whole one."""
        directory = Path(directory)
        path = directory / CONFIG_FILE
        if not path.is_file():
            raise CheckpointError(f"{directory}: {CONFIG_FILE} is missing (not a saved probe?)")
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise CheckpointError(f"{path}: not valid JSON: {error}") from None
        if not isinstance(saved, dict) or saved.get("format") != FORMAT:
            raise CheckpointError(f"{path}: not a saved probe (no \"format\": \"{FORMAT}\" entry)")
        if not isinstance(saved.get("version"), int) or saved["version"] > VERSION:
            raise CheckpointError(f"{path}: probe format version {saved.get('version')!r}; this reads up to {VERSION}")
        try:
            probe = cls(**saved["config"])
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{path}: unusable probe config: {error}") from None
        tensors, metadata = load_tensors(directory / WEIGHTS_FILE)
        check_weights(directory, saved, metadata)
        load_state_dict_checked(probe, tensors, where=str(directory))
        return probe.eval()

    def _device(self) -> torch.device:
        return next(self.parameters()).device


@dataclass
class ProbeResult:
    """A trained probe and how well it reads held-out real frames."""

    probe: SemanticProbe
    accuracy: dict[str, float]  # per field, on held-out frames
    joint_accuracy: float  # every field right
    valid_rate: float  # share of held-out frames read with confidence >= VALID_CONFIDENCE
    frames: int  # training frames
    heldout_frames: int
    seconds: float  # collection and training
    train_seconds: float
    config: dict[str, Any] = field(default_factory=dict)  # the arguments of train_probe

    def as_dict(self) -> dict[str, Any]:
        """Everything but the probe, JSON-able."""
        return {"accuracy": dict(self.accuracy), "joint_accuracy": self.joint_accuracy,
                "valid_rate": self.valid_rate, "frames": self.frames, "heldout_frames": self.heldout_frames,
                "seconds": self.seconds, "train_seconds": self.train_seconds, "config": dict(self.config)}


# --- training ---------------------------------------------------------------------


def fit_probe(images: np.ndarray, labels: np.ndarray, fields: Sequence[str],
              position: Sequence[str] = DEFAULT_POSITION, *, image_key: str = "image", steps: int = 3000,
              batch_size: int = 128, lr: float = 2e-3, outliers: float = 0.25, seed: int = 0,
              progress: bool = False, **net: int) -> SemanticProbe:
    """A probe trained with Adam (one-cycle learning rate) to read ``labels`` (N, F) from ``images`` (N, H, W, C).

    Each field's class range is the range of its labels. ``outliers`` is the share of
    extra frames per batch that are noise, blank or blends of two frames, trained
    towards a uniform reading (0 for none); ``net`` goes to ``SemanticProbe``
    (``patch``, ``width``, ``hidden``). Seeded by ``seed``; the global torch RNG is untouched.
    """
    fields = _check_names("fields", fields)
    images, labels = _check_data(images, labels, fields)
    for name, value, low in (("steps", steps, 1), ("batch_size", batch_size, 1)):
        _check_int(name, value, low)
    if not isinstance(lr, (int, float)) or not lr > 0 or not math.isfinite(lr):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if not isinstance(outliers, (int, float)) or not 0 <= outliers <= 1:
        raise ValueError(f"outliers must be a share in [0, 1], got {outliers!r}")
    lows, highs = labels.min(axis=0), labels.max(axis=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = SemanticProbe(images.shape[1:], fields, lows.tolist(), (highs - lows + 1).tolist(), position,
                              image_key=image_key, **net)
    targets = torch.from_numpy(labels - lows)
    optimizer = torch.optim.Adam(probe.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    rng = np.random.default_rng(seed)
    extra = int(round(outliers * batch_size))
    probe.train()
    for _ in tqdm(range(steps), desc="probe", unit="step", disable=not progress):
        rows = rng.integers(0, len(images), size=batch_size)
        batch = torch.from_numpy(images[rows])
        if extra:
            batch = torch.cat([batch, torch.from_numpy(_outlier_frames(images, extra, rng))])
        log_probs = probe.log_probs(batch)
        loss = sum(F.nll_loss(lp[:batch_size], targets[rows, i]) for i, lp in enumerate(log_probs))
        if extra:  # cross-entropy to the uniform reading
            loss = loss - sum(lp[batch_size:].mean() for lp in log_probs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return probe.eval()


def _outlier_frames(images: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` frames no env draws: a third uniform noise, a third blank (one random colour), the rest blends of two."""
    shape = images.shape[1:]
    noise, blank = n // 3, n // 3
    out = [rng.integers(0, 256, size=(noise,) + shape, dtype=np.uint8),
           np.broadcast_to(rng.integers(0, 256, size=(blank, 1, 1, shape[2]), dtype=np.uint8),
                           (blank,) + shape)]
    pairs = rng.integers(0, len(images), size=(2, n - noise - blank))
    out.append(((images[pairs[0]].astype(np.uint16) + images[pairs[1]]) // 2).astype(np.uint8))
    return np.concatenate(out)


def evaluate_probe(probe: SemanticProbe, images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Accuracy per field, joint accuracy (all fields right) and valid rate on labelled frames."""
    images, labels = _check_data(images, labels, probe.fields)
    values, confidence = probe.read(images)
    right = values == labels
    return {"accuracy": {name: float(right[:, i].mean()) for i, name in enumerate(probe.fields)},
            "joint_accuracy": float(right.all(axis=1).mean()),
            "valid_rate": float((confidence >= VALID_CONFIDENCE).mean())}


def train_probe(
    env_id: str = "CampusNav-v0",
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    image_key: str = "image",
    fields: Sequence[str] = DEFAULT_FIELDS,
    field_names: Sequence[str] | None = None,
    position: Sequence[str] = DEFAULT_POSITION,
    frames: int = 72_000,
    heldout_frames: int = 16_000,
    steps: int = 3000,
    batch_size: int = 128,
    num_envs: int = 32,
    stride: int = 10,
    seed: int = 0,
    progress: bool = False,
) -> ProbeResult:
    """Trains a probe on real frames of ``env_id`` and scores it on held-out ones (see the module doc).

    ``env_kwargs`` go to ``gym.make_vec`` (after ``obs_mode="dict"``); ``fields`` are
    columns of the env's semantic readout, named by ``field_names`` (default: the
    readout module's ``SEMANTIC_FIELDS``); ``position`` names the fields the probe's
    readout returns as the position. ``frames`` and ``heldout_frames`` are drawn by
    ``collect_frames`` from ``num_envs`` envs, one frame every ``stride`` steps.
    """
    _check_int("heldout_frames", heldout_frames, 1)
    fields = _check_names("fields", fields)
    _check_position(position, fields)
    started = time.perf_counter()
    common = dict(env_kwargs=env_kwargs, image_key=image_key, fields=fields, field_names=field_names,
                  num_envs=num_envs, stride=stride, progress=progress)
    base = 2 * _check_int("seed", seed, 0) * _SEED_SPAN
    images, labels = collect_frames(env_id, frames=frames, seed=base, **common)
    heldout = collect_frames(env_id, frames=heldout_frames, seed=base + _SEED_SPAN, **common)
    train_started = time.perf_counter()
    probe = fit_probe(images, labels, fields, position, image_key=image_key, steps=steps, batch_size=batch_size,
                      seed=seed, progress=progress)
    train_seconds = time.perf_counter() - train_started
    scores = evaluate_probe(probe, *heldout)
    config = {"env_id": env_id, "env_kwargs": dict(env_kwargs or {}), "fields": list(fields),
              "position": list(position), "frames": frames, "heldout_frames": heldout_frames, "steps": steps,
              "batch_size": batch_size, "num_envs": num_envs, "stride": stride, "seed": seed}
    return ProbeResult(probe=probe, frames=len(images), heldout_frames=len(heldout[0]),
                       seconds=time.perf_counter() - started, train_seconds=train_seconds, config=config, **scores)


# --- real frames ------------------------------------------------------------------


def collect_frames(
    env_id: str = "CampusNav-v0",
    *,
    frames: int,
    env_kwargs: Mapping[str, Any] | None = None,
    image_key: str = "image",
    fields: Sequence[str] = DEFAULT_FIELDS,
    field_names: Sequence[str] | None = None,
    num_envs: int = 32,
    stride: int = 10,
    seed: int = 0,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """``frames`` real frames (N, H, W, C) uint8 and their labels (N, F) int64, from a random policy.

    Every context of the env's ``metadata["coverage_cells"]`` grid (if it declares one)
    gets the same number of episodes; cell ``c`` resets ``num_envs`` envs with seed
    ``seed + c * num_envs`` and keeps one frame every ``stride`` steps. The labels are
    the columns ``fields`` of the env's ``metadata["semantic_state"]`` readout.
    """
    for name, value in (("frames", frames), ("num_envs", num_envs), ("stride", stride)):
        _check_int(name, value, 1)
    _check_int("seed", seed, 0)
    fields = _check_names("fields", fields)
    kwargs = {"obs_mode": "dict", **dict(env_kwargs or {})}
    metadata = _entry_point_metadata(env_id)
    readout, columns = _readout_columns(metadata.get("semantic_state"), env_id, fields, field_names)
    cells = _contexts(metadata, kwargs)
    if len(cells) * num_envs > _SEED_SPAN:
        raise ValueError(f"{len(cells)} contexts x num_envs={num_envs} reset seeds exceed {_SEED_SPAN}")
    per_episode = -(-frames // (len(cells) * num_envs))
    rng = np.random.default_rng(seed)
    images, labels = [], []
    envs = gym.make_vec(env_id, num_envs=num_envs, **kwargs)
    try:
        envs.action_space.seed(seed)
        for c, cell in enumerate(tqdm(cells, desc=f"frames of {env_id}", unit="context", disable=not progress)):
            obs, _ = envs.reset(seed=seed + c * num_envs, options={"do": dict(cell)} if cell else None)
            for step in range(per_episode * stride):
                obs, *_ = envs.step(envs.action_space.sample())
                if step % stride == stride - 1:
                    images.append(_image_part(obs, image_key).copy())
                    labels.append(np.asarray(readout(obs)[1], dtype=np.int64)[:, columns])
    finally:
        envs.close()
    images, labels = np.concatenate(images), np.concatenate(labels)
    keep = np.sort(rng.permutation(len(images))[:frames])
    return images[keep], labels[keep]


def _entry_point_metadata(env_id: str) -> dict[str, Any]:
    """The ``metadata`` of ``env_id``'s entry point, read without building an env."""
    if not isinstance(env_id, str):
        raise TypeError(f"env_id must be a registered Gymnasium id, got {env_id!r}")
    return entry_point_metadata(env_id)


def _readout_columns(name: str | Readout | None, env_id: str, fields: tuple[str, ...],
                     field_names: Sequence[str] | None) -> tuple[Readout, list[int]]:
    """The env's semantic readout and the columns of its state that ``fields`` name."""
    if name is None:
        raise ValueError(f"{env_id} declares no semantic readout (metadata['semantic_state']); the probe learns "
                         "its labels from one")
    readout = resolve_function(name)
    module = inspect.getmodule(readout)
    if field_names is None:
        field_names = getattr(module, "SEMANTIC_FIELDS", None)
        if field_names is None:
            raise ValueError(f"the readout of {env_id} names no columns (no SEMANTIC_FIELDS beside it); "
                             "pass field_names=")
    field_names = _check_names("field_names", field_names)
    unknown = [f for f in fields if f not in field_names]
    if unknown:
        raise ValueError(f"fields {unknown} are not columns of {env_id}'s readout; its columns: {list(field_names)}")
    return readout, [field_names.index(f) for f in fields]


def _contexts(metadata: Mapping[str, Any], kwargs: Mapping[str, Any]) -> list[dict[str, Any] | None]:
    """The reset-time ``do`` of every context of the env's grid (its ``split``), or [None] without a grid."""
    cells = metadata.get("coverage_cells")
    if cells is None:
        return [None]
    return list(resolve_function(cells)(kwargs.get("split", "all"))) or [None]


def _image_part(obs: Any, image_key: str) -> np.ndarray:
    if not isinstance(obs, Mapping) or image_key not in obs:
        raise ValueError(f"the probe needs dict observations with an image part {image_key!r}, got "
                         f"{sorted(obs) if isinstance(obs, Mapping) else type(obs).__name__}")
    image = np.asarray(obs[image_key])
    if image.dtype != np.uint8 or image.ndim != 4:
        raise ValueError(f"{image_key!r} must be a batch of uint8 (H, W, C) images, got {image.dtype} {image.shape}")
    return image


# --- argument checks --------------------------------------------------------------


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return int(value)


def _check_names(name: str, names: Any) -> tuple[str, ...]:
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise TypeError(f"{name} must be a sequence of strings, got {names!r}")
    names = tuple(names)
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{name} must be a non-empty sequence of strings, got {names!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"{name} must not repeat a name, got {names!r}")
    return names


def _check_shape(shape: Any) -> tuple[int, int, int]:
    if isinstance(shape, str) or not isinstance(shape, Sequence) or len(shape) != 3:
        raise ValueError(f"image_shape must be (H, W, C), got {shape!r}")
    return tuple(_check_int("image_shape entries", s, 1) for s in shape)  # type: ignore[return-value]


def _check_fields(fields: Any, lows: Any, classes: Any) -> tuple[tuple[str, ...], tuple[int, ...], tuple[int, ...]]:
    fields = _check_names("fields", fields)
    lows, classes = tuple(lows), tuple(classes)
    if len(lows) != len(fields) or len(classes) != len(fields):
        raise ValueError(f"lows and classes need one entry per field ({len(fields)}), got {lows} and {classes}")
    return (fields, tuple(_check_int("lows entries", v, -(2**62)) for v in lows),
            tuple(_check_int("classes entries", v, 1) for v in classes))


def _check_position(position: Any, fields: tuple[str, ...]) -> tuple[str, ...]:
    position = _check_names("position", position)
    unknown = [p for p in position if p not in fields]
    if unknown:
        raise ValueError(f"position fields {unknown} are not probed fields {list(fields)}")
    return position


def _check_data(images: Any, labels: Any, fields: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, H, W, C) images and (N, F) int64 labels, N >= 1."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise TypeError(f"images must be a uint8 numpy array, got {getattr(images, 'dtype', type(images).__name__)}")
    if images.ndim != 4 or not len(images):
        raise ValueError(f"images must be (N, H, W, C) with N >= 1, got shape {images.shape}")
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
    if labels.shape != (len(images), len(fields)):
        raise ValueError(f"labels must be (N, F) = ({len(images)}, {len(fields)}), got shape {labels.shape}")
    return images, labels.astype(np.int64)
