"""Training: ``fit(model, data, steps=...)`` with a progress bar, CSV metrics, atomic checkpoints and resume.

One loop for every model in the zoo: draw a ``Batch`` of ``(B, T)`` sequences, call
``model.loss(batch)``, take an Adam step with gradient clipping. With a ``run_dir``
the run is restartable:

- ``run_dir/metrics.csv``: one row every ``log_every`` steps (the mean of each metric
  since the previous row), a header of the metric names;
- ``run_dir/checkpoint/``: every ``checkpoint_every`` steps and at the end, the model
  (``config.json`` + ``model.safetensors``, see ``model_zoo.checkpoint``), the optimizer
  state (``optimizer.safetensors``) and ``trainer.json`` (step, RNG states, the
  sampler's state, the partial metric means). The directory is written beside the old
  one and swapped in, so a kill leaves the previous checkpoint or the new one.

``fit(..., resume=True)`` on the same ``run_dir`` continues from the last checkpoint;
with a sampler whose state is checkpointed too (it has ``state_dict()`` returning
JSON-able values, numpy arrays or tensors, and ``load_state_dict(state)``) and a
deterministic model on the same device, the resumed run ends with exactly the
parameters of an uninterrupted one. A sampler without them resumes with a warning.

>>> import numpy as np, torch, model_zoo
>>> from gymnasium import spaces
>>> model = model_zoo.make("mlp", spaces.Box(-1, 1, (3,), np.float32), spaces.Discrete(2), hidden=16)
>>> first = torch.zeros(4, 8, dtype=torch.bool); first[:, 0] = True
>>> batch = Batch(obs=torch.rand(4, 8, 3), action=torch.randint(0, 2, (4, 8)), reward=torch.zeros(4, 8),
...               terminated=torch.zeros(4, 8, dtype=torch.bool), is_first=first)
>>> history = fit(model, batch, steps=20, log_every=10, progress=False)  # a fixed batch: the same every step
>>> [row["step"] for row in history], {"loss", "grad_norm", "lr", "steps_per_s"} <= set(history[0])
([10, 20], True)
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from model_zoo.base import Batch
from model_zoo.checkpoint import (
    CheckpointError,
    atomic_write,
    config_to_json,
    load_state_dict_checked,
    load_tensors,
    read_config,
    save,
    save_tensors,
)

__all__ = ["CHECKPOINT_DIR", "METRICS_FILE", "fit", "make_sampler"]

CHECKPOINT_DIR = "checkpoint"
METRICS_FILE = "metrics.csv"
_OLD_DIR = "checkpoint.old"
_TMP_PREFIX = ".checkpoint-"
_TRAINER_FILE = "trainer.json"
_OPTIMIZER_FILE = "optimizer.safetensors"
_TRAINER_FORMAT = "model_zoo.training"

Callback = Callable[[int, dict[str, float]], "bool | None"]


def fit(
    model: nn.Module,
    data: Any,
    *,
    steps: int,
    batch_size: int = 16,
    seq_len: int = 32,
    lr: float = 3e-4,
    weight_decay: float = 0.0,
    grad_clip: float | None = 100.0,
    seed: int = 0,
    device: str | torch.device = "cpu",
    run_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    log_every: int = 10,
    resume: bool = True,
    progress: bool = True,
    callback: Callback | None = None,
    tensorboard: bool = False,
) -> list[dict[str, float]]:
    """Trains ``model`` on ``data`` for ``steps`` optimizer steps in all; returns the logged rows.

    Args:
        model: a ``WorldModel`` (anything with ``loss(batch) -> (loss, metrics)``).
        data: where batches come from: a sampler (any object with ``sample() -> Batch``,
            such as ``model_zoo.data.SequenceSampler``; ``batch_size``, ``seq_len`` and
            ``seed`` are then its own), a fixed ``Batch`` (the same batch every step), or
            anything ``model_zoo.data.SequenceSampler`` takes (a Minari dataset, its
            name, a list of episodes), sampled with ``batch_size``, ``seq_len``, ``seed``.
        steps: the total number of optimizer steps of the run; a resumed run counts the
            steps already taken, so calling again with the same ``steps`` finishes it.
        batch_size: sequences per batch, when ``fit`` builds the sampler.
        seq_len: steps per sequence, when ``fit`` builds the sampler.
        lr: Adam's learning rate (also applied to a resumed optimizer).
        weight_decay: Adam's L2 penalty.
        grad_clip: the largest global gradient norm; ``None`` or 0 for no clipping.
        seed: seeds ``torch`` (and the sampler ``fit`` builds) on a fresh start.
        device: where the model and batches live during training.
        run_dir: a folder for ``metrics.csv`` and ``checkpoint/``; ``None`` keeps nothing.
        checkpoint_every: write a checkpoint every this many steps (and always at the
            end); ``None`` only at the end. Needs ``run_dir``.
        log_every: steps between rows of metrics (and progress bar updates).
        resume: continue from ``run_dir/checkpoint`` when there is one; ``False`` starts
            over and overwrites it.
        progress: show a tqdm progress bar with the loss.
        callback: ``callback(step, metrics)`` after every step (after that step's
            checkpoint); return ``False`` to stop early (a checkpoint is written).
        tensorboard: also write TensorBoard event files to ``run_dir/tensorboard`` when
            the ``tensorboard`` package is installed (a warning otherwise).

    Returns:
        The logged rows, oldest first: ``step``, ``loss``, the model's metrics,
        ``grad_norm``, ``lr``, ``steps_per_s``; with ``run_dir``, rows of earlier
        (resumed) calls too.

    Raises:
        FloatingPointError: the loss or the gradient norm became NaN or infinite.
        CheckpointError: ``run_dir`` holds a checkpoint that cannot be resumed (another
            model, a different config, a damaged file).
    """
    from tqdm.auto import tqdm

    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if log_every < 1:
        raise ValueError(f"log_every must be >= 1, got {log_every}")
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1 or None, got {checkpoint_every}")
    if checkpoint_every is not None and run_dir is None:
        raise ValueError("checkpoint_every needs a run_dir to write checkpoints into")

    device = torch.device(device)
    model.to(device)
    was_training = model.training
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    sampler = make_sampler(data, batch_size=batch_size, seq_len=seq_len, seed=seed, device=device)

    run_path = Path(run_dir) if run_dir is not None else None
    start, accumulator, history = 0, _Mean(), []
    restored = None
    if run_path is not None:
        run_path.mkdir(parents=True, exist_ok=True)
        for stale in run_path.glob(_TMP_PREFIX + "*"):  # a checkpoint write that was killed
            shutil.rmtree(stale, ignore_errors=True)
        if resume:
            restored = _find_checkpoint(run_path)
    if restored is not None:
        start, accumulator = _restore(restored, model, optimizer, sampler, lr, weight_decay)
    else:
        torch.manual_seed(seed)
    log = _CSVLog(run_path / METRICS_FILE, keep_until=start) if run_path is not None else None
    if log is not None:
        history = log.rows()
    writer = _tensorboard(run_path) if tensorboard else None

    bar = tqdm(total=steps, initial=min(start, steps), desc=f"fit {getattr(model, 'model_id', '') or 'model'}",
               disable=not progress, dynamic_ncols=True)
    last_saved = start if restored is not None else -1
    step, clock = start, {"t0": time.perf_counter(), "steps": 0}  # wall clock and steps since the last row

    def log_row(step: int) -> dict[str, float]:
        """Logs the means since the last row (CSV, TensorBoard, progress bar) and starts new sums."""
        nonlocal accumulator
        elapsed = time.perf_counter() - clock["t0"]
        row = {"step": step, **accumulator.means(), "lr": optimizer.param_groups[0]["lr"],
               "steps_per_s": clock["steps"] / max(elapsed, 1e-9)}
        accumulator, clock["t0"], clock["steps"] = _Mean(), time.perf_counter(), 0
        bar.set_postfix(loss=f"{row['loss']:.4g}")
        if log is not None:
            log.append(row)
        if writer is not None:
            for name, value in row.items():
                if name != "step":
                    writer.add_scalar(name, value, step)
        return row

    try:
        for step in range(start + 1, steps + 1):
            batch = _to_device(sampler.sample(), device)
            loss, metrics = model.loss(batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {step} (metrics {metrics}); try a lower lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, grad_clip or math.inf))
            if not math.isfinite(grad_norm):
                raise FloatingPointError(f"gradient norm is {grad_norm} at step {step}; try a lower lr or grad_clip")
            optimizer.step()

            step_metrics = {"loss": float(loss.detach()), **{k: float(v) for k, v in metrics.items()}}
            step_metrics["grad_norm"] = grad_norm
            accumulator.add(step_metrics)
            clock["steps"] += 1
            bar.update(1)
            if step % log_every == 0 or step == steps:
                history.append(log_row(step))
            if run_path is not None and (step == steps or (checkpoint_every and step % checkpoint_every == 0)):
                _write_checkpoint(run_path, model, optimizer, sampler, step, accumulator, seed)
                last_saved = step
            if callback is not None and callback(step, step_metrics) is False:
                if accumulator.counts:
                    history.append(log_row(step))
                if run_path is not None and last_saved != step:
                    _write_checkpoint(run_path, model, optimizer, sampler, step, accumulator, seed)
                    last_saved = step
                break
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        model.train(was_training)
    if run_path is not None and last_saved != step:  # e.g. steps=0 on a fresh run_dir
        _write_checkpoint(run_path, model, optimizer, sampler, step, accumulator, seed)
    return history


def make_sampler(
    data: Any, *, batch_size: int = 16, seq_len: int = 32, seed: int = 0, device: str | torch.device = "cpu"
) -> Any:
    """``data`` if it can ``sample()``, a fixed-batch sampler for a ``Batch``, else a ``SequenceSampler``."""
    if isinstance(data, Batch):
        return _FixedBatch(data)
    if callable(getattr(data, "sample", None)):
        return data
    from model_zoo.data import SequenceSampler

    return SequenceSampler(data, seq_len, batch_size, seed=seed, device=device)


class _FixedBatch:
    """The same batch every step (overfitting checks, tiny tests)."""

    def __init__(self, batch: Batch):
        self.batch = batch

    def sample(self) -> Batch:
        return self.batch

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


def _to_device(batch: Batch, device: torch.device) -> Batch:
    return batch if batch.reward.device == device else batch.to(device)


class _Mean:
    """Running sums of metrics between two logged rows."""

    def __init__(self, sums: Mapping[str, float] | None = None, counts: Mapping[str, int] | None = None):
        self.sums = dict(sums or {})
        self.counts = dict(counts or {})

    def add(self, metrics: Mapping[str, float]) -> None:
        for name, value in metrics.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
            self.counts[name] = self.counts.get(name, 0) + 1

    def means(self) -> dict[str, float]:
        return {name: self.sums[name] / self.counts[name] for name in self.sums}


# --- metrics.csv -------------------------------------------------------------------


class _CSVLog:
    """``metrics.csv``: appended to and flushed row by row; rewritten when a new metric appears.

    On start the rows after ``keep_until`` (logged after the checkpoint being resumed)
    are dropped, so a resumed run does not log the same steps twice.
    """

    def __init__(self, path: Path, keep_until: int):
        self.path = path
        self.fields: list[str] = []
        self._rows: list[dict[str, float]] = []
        if keep_until > 0 and path.is_file():
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                self.fields = list(reader.fieldnames or [])
                for raw in reader:
                    row = {k: float(v) for k, v in raw.items() if k is not None and v not in (None, "")}
                    if row.get("step", math.inf) <= keep_until:
                        row["step"] = int(row["step"])
                        self._rows.append(row)
        self._rewrite()

    def rows(self) -> list[dict[str, float]]:
        return list(self._rows)

    def append(self, row: dict[str, float]) -> None:
        self._rows.append(row)
        if any(name not in self.fields for name in row):
            self._rewrite()
            return
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.fields).writerow(row)

    def _rewrite(self) -> None:
        for row in self._rows:
            self.fields += [name for name in row if name not in self.fields]
        lines: list[str] = []
        if self.fields:
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=self.fields)
            writer.writeheader()
            writer.writerows(self._rows)
            lines.append(buffer.getvalue())
        atomic_write(self.path, "".join(lines))


def _tensorboard(run_path: Path | None):
    if run_path is None:
        warnings.warn("tensorboard=True needs a run_dir; not writing event files", stacklevel=3)
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        warnings.warn("tensorboard is not installed; metrics go to metrics.csv only", stacklevel=3)
        return None
    return SummaryWriter(str(run_path / "tensorboard"))


# --- checkpoints of the training state -----------------------------------------------


def _write_checkpoint(run_path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, sampler: Any,
                      step: int, accumulator: _Mean, seed: int) -> Path:
    """Writes the whole checkpoint into a fresh folder, then swaps it in place of the old one."""
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=run_path))
    try:
        save(model, tmp)
        opt_state = optimizer.state_dict()
        tensors: dict[str, Tensor] = {}
        scalars: dict[str, dict[str, Any]] = {}
        for index, values in opt_state["state"].items():
            for name, value in values.items():
                if torch.is_tensor(value):
                    tensors[f"state.{index}.{name}"] = value
                else:
                    scalars.setdefault(str(index), {})[name] = value
        save_tensors(tmp / _OPTIMIZER_FILE, tensors, {"format": "pt", "model_zoo": _TRAINER_FORMAT})
        trainer = {
            "format": _TRAINER_FORMAT,
            "version": 1,
            "step": step,
            "seed": seed,
            "optimizer": {"param_groups": opt_state["param_groups"], "scalars": scalars},
            "rng": _rng_state(),
            "sampler": _sampler_state(sampler),
            "metrics": {"sums": accumulator.sums, "counts": accumulator.counts},
        }
        atomic_write(tmp / _TRAINER_FILE, json.dumps(trainer))
        final, old = run_path / CHECKPOINT_DIR, run_path / _OLD_DIR
        if old.exists():
            shutil.rmtree(old)
        if final.exists():
            final.rename(old)  # a kill here leaves checkpoint.old, which resume reads
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _find_checkpoint(run_path: Path) -> Path | None:
    for name in (CHECKPOINT_DIR, _OLD_DIR):
        if (run_path / name / _TRAINER_FILE).is_file():
            return run_path / name
    if (run_path / CHECKPOINT_DIR).exists():
        raise CheckpointError(f"{run_path / CHECKPOINT_DIR}: no {_TRAINER_FILE}; not a training checkpoint")
    return None


def _restore(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer, sampler: Any,
             lr: float, weight_decay: float) -> tuple[int, _Mean]:
    """Loads model, optimizer, RNG and sampler state from ``directory``; returns (step, metric sums)."""
    config = read_config(directory)
    model_id = getattr(model, "model_id", "")
    if config["model_id"] != model_id or _json_roundtrip(config_to_json(model)) != config["config"]:
        raise CheckpointError(
            f"{directory} holds a checkpoint of model {config['model_id']!r} with config {config['config']}, "
            f"not of this {model_id!r} model (config {config_to_json(model)}); "
            "use another run_dir or resume=False to start over"
        )
    weights, _ = load_tensors(directory / "model.safetensors")
    load_state_dict_checked(model, weights, where=str(directory))
    try:
        trainer = json.loads((directory / _TRAINER_FILE).read_text())
        if trainer.get("format") != _TRAINER_FORMAT:
            raise ValueError(f"format is {trainer.get('format')!r}")
        step = int(trainer["step"])
        groups = trainer["optimizer"]["param_groups"]
        scalars = trainer["optimizer"]["scalars"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{directory / _TRAINER_FILE}: unreadable training state: {error}") from None
    tensors, _ = load_tensors(directory / _OPTIMIZER_FILE)
    state: dict[int, dict[str, Any]] = {}
    for key, tensor in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = tensor
    for index, values in scalars.items():
        state.setdefault(int(index), {}).update(values)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as error:
        raise CheckpointError(f"{directory / _OPTIMIZER_FILE}: does not fit this model's optimizer: {error}") from None
    for group in optimizer.param_groups:
        group["lr"], group["weight_decay"] = lr, weight_decay
    _set_rng_state(trainer["rng"])
    if not _load_sampler_state(sampler, trainer.get("sampler")) and step > 0:
        warnings.warn(
            f"the sampler ({type(sampler).__name__}) has no saved state to restore; the resumed run draws "
            "other batches than an uninterrupted one would", stacklevel=3,
        )
    metrics = trainer.get("metrics") or {}
    return step, _Mean(metrics.get("sums"), metrics.get("counts"))


def _sampler_state(sampler: Any) -> dict[str, Any] | None:
    """The sampler's ``state_dict()`` (JSON-encoded), or None when it has none."""
    if callable(getattr(sampler, "state_dict", None)):
        return {"state_dict": _encode(sampler.state_dict())}
    return None


def _load_sampler_state(sampler: Any, state: Mapping[str, Any] | None) -> bool:
    """Puts back what ``_sampler_state`` saved; False when there was nothing (or nowhere) to put it."""
    if state and "state_dict" in state and callable(getattr(sampler, "load_state_dict", None)):
        try:
            sampler.load_state_dict(_decode(state["state_dict"]))
        except (ValueError, KeyError, TypeError) as error:
            raise CheckpointError(
                f"the checkpointed sampler state does not fit this sampler ({error}); resume with the same data, "
                "seq_len and batch_size, or pass resume=False"
            ) from None
        return True
    return False


def _json_roundtrip(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state().tolist(),
        "numpy": _encode(np.random.get_state(legacy=False)),  # noqa: NPY002 (code that still uses it)
        "python": _encode(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "numpy" in state:
        np.random.set_state(_decode(state["numpy"]))  # noqa: NPY002
    if "python" in state:
        version, internal, gauss = _decode(state["python"])
        random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in cuda])


def _encode(value: Any) -> Any:
    """JSON form of a state: arrays and tensors tagged with their dtype, tuples as lists."""
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if torch.is_tensor(value):
        return {"__tensor__": value.tolist(), "dtype": str(value.dtype).removeprefix("torch.")}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.asarray(value["__ndarray__"], dtype=value["dtype"])
        if "__tensor__" in value:
            return torch.tensor(value["__tensor__"], dtype=getattr(torch, value["dtype"]))
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value
