"""Checkpoints: ``config.json`` + ``model.safetensors``, written atomically, read back strictly.

A checkpoint directory holds two files:

- ``config.json``: the format tag and version, the registry id, the model's config
  dataclass as JSON, and the observation and action spaces (a small JSON form of
  Box, Discrete and Dict that keeps Dict key order);
- ``model.safetensors``: the ``state_dict``.

No pickle is involved anywhere. Each file is written to a temporary file in the same
directory and moved into place with ``os.replace``, so a kill never leaves a
half-written file; both files carry the same random save id, so a pair from two
different saves (a kill between the two replaces) is detected on load, and
``config.json`` records the SHA-256 of the weights (``weights_sha256``), so a damaged
byte is too. ``load`` checks the entries' types and ``class`` against the registry,
bounds the config's size before allocating (``registry.make``), and takes only tensors
of the model's own shapes and dtypes, with finite values. Anything wrong raises
:class:`CheckpointError` saying what; a checkpoint without the hash (saved before it
existed) loads with a warning. See ``docs/safety.md``.

A model's ``Config`` may name, in a class attribute ``SAVED_BEFORE`` (field -> value),
the value ``load`` gives a field that ``config.json`` lacks.

>>> import tempfile
>>> from model_zoo.checkpoint import CheckpointError, load
>>> try:
...     load(tempfile.mkdtemp())
... except CheckpointError as error:
...     print(str(error).split(": ", 1)[1])
config.json is missing (not a model_zoo checkpoint directory?)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import struct
import tempfile
import uuid
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import safetensors.torch
import torch
from gymnasium import spaces
from torch import Tensor, nn

if TYPE_CHECKING:
    from model_zoo.base import WorldModel

__all__ = [
    "CONFIG_FILE",
    "FORMAT",
    "STORAGES",
    "VERSION",
    "WEIGHTS_FILE",
    "CheckpointError",
    "atomic_write",
    "check_weights",
    "config_to_json",
    "load_state_dict_checked",
    "deserialize_space",
    "load",
    "load_optimizer_state",
    "load_tensors",
    "optimizer_tensors",
    "round_to_storage",
    "read_config",
    "save",
    "save_tensors",
    "serialize_space",
    "sha256_of",
]

FORMAT = "model_zoo.checkpoint"
VERSION = 1
STORAGES = ("float32", "float16")  # how save writes float32 tensors
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read back: missing, empty, truncated, foreign or mismatched."""


# --- atomic files ------------------------------------------------------------------


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Writes ``data`` to ``path`` via a temporary file in the same directory and ``os.replace``.

    Readers see the old file or the new one, never a partial one; the temporary file
    is removed if anything fails.
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(directory: Path) -> None:
    try:  # makes the rename itself durable; not possible on every platform
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- safetensors files -------------------------------------------------------------


def save_tensors(path: str | Path, tensors: Mapping[str, Tensor], metadata: Mapping[str, str] | None = None) -> Path:
    """Writes ``tensors`` (moved to CPU, made contiguous, shared storage split) as safetensors, atomically."""
    out: dict[str, Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for name, tensor in tensors.items():
        t = tensor.detach().cpu().contiguous()
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if t.numel() and key in seen:  # tied weights: safetensors refuses shared storage
            t = t.clone()
        seen.add(key)
        out[name] = t
    data = safetensors.torch.save(out, metadata=dict(metadata) if metadata else None)
    return atomic_write(path, data)


def load_tensors(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, Tensor], dict[str, str]]:
    """Reads a safetensors file into ``(tensors, metadata)``; :class:`CheckpointError` if it is not a whole one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file is missing")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: file is empty (0 bytes; an interrupted write?)")
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: truncated or not a safetensors file ({size} bytes, no header)")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > size - 8:
            if header_len > 100_000_000:
                raise CheckpointError(f"{path}: not a safetensors file (its first 8 bytes are no header length)")
            raise CheckpointError(
                f"{path}: truncated: its header needs {header_len} bytes, the file has {size - 8} after the length"
            )
        raw = f.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
        metadata = header.pop("__metadata__", None) or {}
        end = max((int(entry["data_offsets"][1]) for entry in header.values()), default=0)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, IndexError) as error:
        raise CheckpointError(f"{path}: not a safetensors file (unreadable header: {error})") from None
    expected = 8 + header_len + end
    if size < expected:
        raise CheckpointError(f"{path}: truncated: {size} bytes, the header promises {expected}")
    try:
        tensors = safetensors.torch.load_file(path, device=_device_str(device))
    except Exception as error:  # safetensors' own checks (bad offsets, dtypes, ...)
        raise CheckpointError(f"{path}: unreadable safetensors file: {error}") from None
    return tensors, dict(metadata)


def _device_str(device: str | torch.device) -> str:
    device = torch.device(device)
    return "cpu" if device.type == "cpu" else str(device)


# --- spaces as JSON ----------------------------------------------------------------


def serialize_space(space: gym.Space) -> dict[str, Any]:
    """A JSON-able description of a Box, Discrete or Dict space (Dict key order kept).

    >>> deserialize_space(serialize_space(spaces.Discrete(3, start=1)))
    Discrete(3, start=1)
    """
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "dtype": str(space.dtype),
            "shape": list(space.shape),
            "low": _bound(space.low),
            "high": _bound(space.high),
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": [[key, serialize_space(sub)] for key, sub in space.spaces.items()]}
    raise CheckpointError(f"cannot save a model for space {space}: checkpoints take Box, Discrete and Dict spaces")


def deserialize_space(data: Mapping[str, Any]) -> gym.Space:
    """The space :func:`serialize_space` described."""
    kind = data["type"]
    if kind == "Box":
        dtype = np.dtype(data["dtype"])
        shape = tuple(int(n) for n in data["shape"])
        low = np.broadcast_to(np.asarray(data["low"], dtype=np.float64), shape).astype(dtype)
        high = np.broadcast_to(np.asarray(data["high"], dtype=np.float64), shape).astype(dtype)
        return spaces.Box(low=low, high=high, shape=shape, dtype=dtype)
    if kind == "Discrete":
        return spaces.Discrete(int(data["n"]), start=int(data["start"]))
    if kind == "Dict":
        return spaces.Dict([(str(key), deserialize_space(sub)) for key, sub in data["spaces"]])
    raise ValueError(f"unknown space type {kind!r}")


def _bound(values: np.ndarray) -> Any:
    """One number if every entry is the same, else the nested list; infinities as JSON strings."""
    flat = np.asarray(values, dtype=np.float64)
    if flat.size and np.all(flat == flat.flat[0]):
        return _number(float(flat.flat[0]))
    return _map_nested(flat.tolist(), _number)


def _number(x: float) -> float | str:
    return x if math.isfinite(x) else str(x)  # "inf" / "-inf": strict JSON, float() reads them back


def _map_nested(value: Any, fn: Callable[[Any], Any]) -> Any:
    return [_map_nested(v, fn) for v in value] if isinstance(value, list) else fn(value)


# --- configs as JSON ---------------------------------------------------------------


def config_to_json(model: WorldModel) -> dict[str, Any]:
    """The fields of ``model.config`` as a JSON-able dict (tuples stay tuples until dumped)."""
    config = model.config
    out = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        try:
            json.dumps(value, allow_nan=True)
        except TypeError:
            raise CheckpointError(
                f"cannot save config field {field.name}={value!r}: config values must be JSON numbers, "
                "strings, booleans, None, or tuples/dicts of them"
            ) from None
        out[field.name] = value
    return out


def _tuples(value: Any) -> Any:
    """JSON lists back to tuples (configs are frozen, so sequences in them are tuples)."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


# --- save / load -------------------------------------------------------------------


def save(model: WorldModel, directory: str | Path, storage: str = "float32") -> Path:
    """Writes ``config.json`` and ``model.safetensors`` for ``model`` into ``directory``; returns it.

    The directory is created if needed; other files in it are left alone. ``storage="float16"``
    writes the float32 tensors in half precision (half the bytes; ``load`` widens them again),
    and refuses a model whose values do not fit float16's range.
    """
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    model_id = getattr(model, "model_id", "")
    if not model_id:
        raise CheckpointError(
            f"{type(model).__name__} has no model_id; build models with model_zoo.make(id, ...) to save them"
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_id = uuid.uuid4().hex
    config = {
        "format": FORMAT,
        "version": VERSION,
        "model_id": model_id,
        "save_id": save_id,
        "class": f"{type(model).__module__}:{type(model).__qualname__}",
        "config": config_to_json(model),
        "observation_space": serialize_space(model.observation_space),
        "action_space": serialize_space(model.action_space),
        "num_parameters": sum(p.numel() for p in model.parameters()),
    }
    tensors = model.state_dict()
    if storage == "float16":
        config["storage"] = storage
        tensors = _narrowed(tensors, model_id)
    metadata = {"format": "pt", "model_zoo": FORMAT, "model_id": model_id, "save_id": save_id}
    weights = save_tensors(directory / WEIGHTS_FILE, tensors, metadata)
    config["weights_sha256"] = sha256_of(weights)
    atomic_write(directory / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    return directory


def round_to_storage(model: nn.Module, storage: str) -> nn.Module:
    """Rounds ``model``'s float32 tensors in place to what ``save(model, ..., storage)`` keeps; returns it.

    A model about to be saved narrowed then computes exactly what the loaded copy will.
    """
    if storage == "float16":
        with torch.no_grad():
            for tensor in model.state_dict().values():
                if tensor.dtype == torch.float32:
                    tensor.copy_(tensor.half().float())
    return model


def _narrowed(tensors: Mapping[str, Tensor], model_id: str) -> dict[str, Tensor]:
    """The float32 tensors as float16 (the others as they are); ``CheckpointError`` for values out of its range."""
    limit = torch.finfo(torch.float16).max
    narrowed = {}
    for name, tensor in tensors.items():
        if tensor.dtype == torch.float32:
            finite = tensor[torch.isfinite(tensor)]
            if finite.numel() and float(finite.abs().max()) > limit:
                raise CheckpointError(f"{model_id}: tensor {name!r} holds values beyond float16's range (+-{limit:g}); "
                                      "save it with storage='float32'")
            tensor = tensor.half()
        narrowed[name] = tensor
    return narrowed


def sha256_of(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, as 64 hex digits (read in chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_config(directory: str | Path) -> dict[str, Any]:
    """The checked contents of a checkpoint's ``config.json``."""
    directory = Path(directory)
    if not directory.exists():
        raise CheckpointError(f"{directory}: no such checkpoint directory")
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: a checkpoint is a directory (config.json + model.safetensors), got a file")
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{directory}: {CONFIG_FILE} is missing (not a model_zoo checkpoint directory?)")
    raw = path.read_bytes()
    if not raw.strip():
        raise CheckpointError(f"{path}: file is empty (an interrupted write?)")
    try:
        config = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise CheckpointError(f"{path}: not valid JSON (truncated or a foreign file?): {error}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a model_zoo checkpoint config (no \"format\": \"{FORMAT}\" entry)")
    version = config.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version!r}; this model_zoo reads up to {VERSION}")
    missing = [k for k in ("model_id", "config", "observation_space", "action_space") if k not in config]
    if missing:
        raise CheckpointError(f"{path}: missing entries {missing}")
    for key, kind, what in _ENTRY_TYPES:
        if key in config and not isinstance(config[key], kind):
            raise CheckpointError(f"{path}: {key} must be {what}, got {type(config[key]).__name__} {config[key]!r}")
    sha = config.get("weights_sha256")
    if sha is not None and not (isinstance(sha, str) and len(sha) == 64 and set(sha) <= set("0123456789abcdef")):
        raise CheckpointError(f"{path}: weights_sha256 must be 64 lowercase hex digits, got {sha!r}")
    return config


_ENTRY_TYPES = (
    ("model_id", str, "a string"),
    ("save_id", str, "a string"),
    ("config", dict, "a JSON object"),
    ("observation_space", dict, "a JSON object"),
    ("action_space", dict, "a JSON object"),
)


def load(directory: str | Path, map_location: str | torch.device = "cpu") -> WorldModel:
    """Rebuilds the model saved in ``directory`` with ``model_zoo.make`` and loads its weights strictly.

    ``directory`` may also be a training run folder (``model_zoo.fit``'s ``run_dir``):
    its ``checkpoint/`` is loaded then (or ``checkpoint.old/``, left by a run killed while
    swapping the two).
    """
    from model_zoo.training import CHECKPOINT_DIR, OLD_CHECKPOINT_DIR

    directory = Path(directory)
    if not (directory / CONFIG_FILE).exists():
        run_dirs = (CHECKPOINT_DIR, OLD_CHECKPOINT_DIR)
        directory = next((directory / d for d in run_dirs if (directory / d / CONFIG_FILE).is_file()), directory)
    config = read_config(directory)
    model = _rebuild(directory, config)
    tensors, metadata = load_tensors(directory / WEIGHTS_FILE)
    check_weights(directory, config, metadata)
    if config.get("storage", "float32") not in STORAGES:
        raise CheckpointError(f"{directory / CONFIG_FILE}: unknown storage {config['storage']!r}; "
                              f"this version reads {', '.join(STORAGES)}")
    if config.get("storage") == "float16":  # written narrowed by save(storage="float16"): widen to the model's
        tensors = {k: v.float() if v.dtype == torch.float16 else v for k, v in tensors.items()}
    upgrade = getattr(model, "upgrade_tensors", None)  # a model's hook for tensors an older version saved
    if upgrade is not None:
        tensors = upgrade(dict(tensors))
    load_state_dict_checked(model, tensors, where=str(directory / WEIGHTS_FILE))
    return model.to(map_location)


def _rebuild(directory: Path, config: dict[str, Any]) -> WorldModel:
    """The model ``config.json`` describes, with fresh weights; its size is checked before anything is allocated."""
    from model_zoo import registry

    model_id = config["model_id"]
    try:
        spec = registry.spec(model_id)
    except ValueError:
        known = ", ".join(registry.list_models()) or "none"
        raise CheckpointError(
            f"{directory}: checkpoint is for model id {model_id!r}, which is not registered (registered: {known})"
        ) from None
    cls = spec.load_class()
    builds = f"{cls.__module__}:{cls.__qualname__}"
    if "class" in config and config["class"] != builds:
        raise CheckpointError(
            f"{directory / CONFIG_FILE}: class {config['class']!r} does not match model id {model_id!r}, "
            f"which builds {builds}"
        )
    try:
        observation_space = deserialize_space(config["observation_space"])
        action_space = deserialize_space(config["action_space"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{directory / CONFIG_FILE}: unreadable space description: {error!r}") from None
    values = {**getattr(cls.Config, "SAVED_BEFORE", {}), **config["config"]}  # fields the checkpoint predates
    try:
        return registry.make(model_id, observation_space, action_space, **_tuples(values))
    except (TypeError, ValueError, RuntimeError, MemoryError, OverflowError) as error:
        raise CheckpointError(f"{directory}: cannot rebuild model {model_id!r} from {CONFIG_FILE}: {error}") from None


def check_weights(directory: str | Path, config: Mapping[str, Any], metadata: Mapping[str, str]) -> None:
    """Checks that ``directory``'s weights file is the one its ``config.json`` was saved with.

    The save ids must agree, and the file's SHA-256 must be the recorded ``weights_sha256``;
    a checkpoint saved before the hash existed loads with a ``UserWarning``.
    """
    directory = Path(directory)
    if metadata.get("save_id", config.get("save_id")) != config.get("save_id"):
        raise CheckpointError(
            f"{directory}: {CONFIG_FILE} and {WEIGHTS_FILE} come from different saves (an interrupted save?)"
        )
    expected = config.get("weights_sha256")
    if expected is None:
        warnings.warn(
            f"{directory / CONFIG_FILE} records no weights_sha256 (saved by an older model_zoo), so "
            f"{WEIGHTS_FILE} cannot be checked for damage; save the model again to add one",
            UserWarning,
            stacklevel=3,
        )
        return
    actual = sha256_of(directory / WEIGHTS_FILE)
    if actual != expected:
        raise CheckpointError(
            f"{directory / WEIGHTS_FILE}: content does not match the SHA-256 that {CONFIG_FILE} records "
            f"({actual[:12]}... instead of {expected[:12]}...): the file was changed or damaged after saving"
        )


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """An optimizer's state without pickle: its tensors as ``"state.{param}.{slot}"`` and JSON (the param
    groups, and the slots that are not tensors)."""
    saved = optimizer.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in saved["state"].items():
        for name, value in values.items():
            if torch.is_tensor(value):
                tensors[f"state.{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": saved["param_groups"], "scalars": scalars}


def load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: Mapping[str, Tensor],
                         saved: Mapping[str, Any]) -> None:
    """Puts back into ``optimizer`` what ``optimizer_tensors`` took out of one like it."""
    state: dict[int, dict[str, Any]] = {}
    for key, tensor in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = tensor
    for index, values in saved["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})


def load_state_dict_checked(model: nn.Module, tensors: Mapping[str, Tensor], where: str = "checkpoint") -> None:
    """``model.load_state_dict(tensors, strict=True)`` with a :class:`CheckpointError` naming each misfit.

    Each tensor must have the model's own shape and dtype; floating-point parameters must be
    finite, and no buffer may hold NaN (a buffer may hold infinity on purpose, e.g. as padding).
    """
    expected = model.state_dict()
    parameters = {name for name, _ in model.named_parameters()}
    problems = []
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    if missing:
        problems.append(f"missing tensors {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected tensors {_names(unexpected)}")
    for name, tensor in tensors.items():
        if name not in expected:
            continue
        if tuple(tensor.shape) != tuple(expected[name].shape):
            problems.append(
                f"tensor {name!r} has shape {tuple(tensor.shape)} in the checkpoint "
                f"but {tuple(expected[name].shape)} in the model"
            )
        if tensor.dtype != expected[name].dtype:
            problems.append(f"tensor {name!r} has dtype {tensor.dtype} in the checkpoint but {expected[name].dtype}")
        elif tensor.is_floating_point() or tensor.is_complex():
            if name in parameters:
                bad, what = int((~torch.isfinite(tensor)).sum()), "non-finite value(s) (NaN or infinity)"
            else:
                bad, what = int(torch.isnan(tensor).sum()), "NaN value(s)"
            if bad:
                problems.append(f"tensor {name!r} holds {bad} {what}")
    if problems:
        model_id = getattr(model, "model_id", "") or type(model).__name__
        raise CheckpointError(f"{where} does not fit model {model_id!r}: " + "; ".join(problems))
    model.load_state_dict(dict(tensors), strict=True)


def _names(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return f"[{shown}{', ...' if len(names) > limit else ''}] ({len(names)})"
