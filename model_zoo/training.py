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

Started K times by ``torchrun``, ``fit`` trains data-parallel (``model_zoo.distributed``):
``batch_size`` is the global batch, each rank draws its own shard, gradients are
averaged, and rank 0 alone writes ``run_dir``.

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

import contextlib
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
from torch import nn

from model_zoo import distributed
from model_zoo.base import Batch
from model_zoo.checkpoint import (
    WEIGHTS_FILE,
    CheckpointError,
    atomic_write,
    check_weights,
    config_to_json,
    load_optimizer_state,
    load_state_dict_checked,
    load_tensors,
    optimizer_tensors,
    read_config,
    save,
    save_tensors,
)
from model_zoo.metrics_log import CSVLog

__all__ = ["CHECKPOINT_DIR", "METRICS_FILE", "OLD_CHECKPOINT_DIR", "PRECISIONS", "fit", "make_sampler", "rng_state",
           "set_rng_state"]

CHECKPOINT_DIR = "checkpoint"
METRICS_FILE = "metrics.csv"
OLD_CHECKPOINT_DIR = "checkpoint.old"  # the previous checkpoint while a new one is swapped in
PRECISIONS = ("fp32", "bf16")  # bf16: the forward pass and loss under torch.autocast; weights stay float32
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
    precision: str = "fp32",
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
        data: a sampler (anything with ``sample() -> Batch``, such as ``SequenceSampler``,
            with its own batch size, length and seed), a fixed ``Batch`` (the same every
            step), or what ``model_zoo.data.SequenceSampler`` takes (a Minari dataset, its
            name, a list of episodes), sampled with ``batch_size``, ``seq_len``, ``seed``.
        steps: the total number of optimizer steps of the run; a resumed run counts the
            steps already taken, so calling again with the same ``steps`` finishes it.
        batch_size: sequences per batch, when ``fit`` builds the sampler.
        seq_len: steps per sequence, likewise.
        lr: Adam's learning rate (also applied to a resumed optimizer).
        weight_decay: Adam's L2 penalty.
        grad_clip: the largest global gradient norm; ``None`` or 0 for no clipping.
        seed: seeds ``torch`` (and the sampler ``fit`` builds) on a fresh start.
        device: where the model and batches live during training.
        precision: ``"fp32"``, or ``"bf16"``: the loss under ``torch.autocast`` in bfloat16 (weights stay float32).
        run_dir: a folder for ``metrics.csv`` and ``checkpoint/``; ``None`` keeps nothing.
        checkpoint_every: steps between checkpoints (and one at the end; ``None``: only
            at the end). Needs ``run_dir``.
        log_every: steps between rows of metrics (and progress bar updates).
        resume: continue from ``run_dir/checkpoint`` when there is one; ``False`` starts over.
        progress: show a tqdm progress bar with the loss.
        callback: ``callback(step, metrics)`` after every step (after that step's
            checkpoint); return ``False`` to stop early (a checkpoint is written).
        tensorboard: also write TensorBoard event files to ``run_dir/tensorboard`` (needs ``tensorboard``).

    Returns:
        The logged rows, oldest first (with ``run_dir``, those of earlier calls too): ``step``,
        ``loss``, the model's metrics, ``grad_norm``, ``lr``, ``steps_per_s``.

    Raises:
        FloatingPointError: the loss or the gradient norm became NaN or infinite.
        CheckpointError: ``run_dir``'s checkpoint cannot be resumed (another model or config, a damaged file).
    """
    _check_arguments(steps, log_every, checkpoint_every, run_dir, precision)
    device = torch.device(device)
    was_training = model.to(device).training
    model.train()
    sampler = make_sampler(data, batch_size=batch_size, seq_len=seq_len, seed=seed, device=device)
    run = _TrainingRun(model, sampler, lr=lr, weight_decay=weight_decay, grad_clip=grad_clip, seed=seed,
                       device=device, run_dir=run_dir, bf16=precision == "bf16")
    step = start = run.open(resume=resume, tensorboard=tensorboard, total_steps=steps, progress=progress)
    try:
        for step in range(start + 1, steps + 1):
            step_metrics = run.train_step(step)
            if step % log_every == 0 or step == steps:
                run.log_row(step)
            if step == steps or (checkpoint_every and step % checkpoint_every == 0):
                run.save(step)
            if callback is not None and run.agree(callback(step, step_metrics) is False):
                run.stop(step)
                break
    finally:
        run.close()
        model.train(was_training)
    run.save(step)  # e.g. steps=0 on a fresh run_dir; nothing when this step is saved already
    return run.history


def _check_arguments(steps: int, log_every: int, checkpoint_every: int | None, run_dir: str | Path | None,
                     precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if log_every < 1:
        raise ValueError(f"log_every must be >= 1, got {log_every}")
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1 or None, got {checkpoint_every}")
    if checkpoint_every is not None and run_dir is None:
        raise ValueError("checkpoint_every needs a run_dir to write checkpoints into")


class _TrainingRun:
    """One ``fit`` call's state: optimizer, sampler, metric sums, the logs and the last checkpoint written."""

    def __init__(self, model: nn.Module, sampler: Any, *, lr: float, weight_decay: float, grad_clip: float | None,
                 seed: int, device: torch.device, run_dir: str | Path | None, bf16: bool = False):
        self.model, self.sampler, self.device, self.bf16 = model, sampler, device, bf16
        self.lr, self.weight_decay, self.grad_clip, self.seed = lr, weight_decay, grad_clip, seed
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.params, lr=lr, weight_decay=weight_decay)
        self.run_path = Path(run_dir) if run_dir is not None else None
        self.world = distributed.world()  # World() unless torchrun started this process among others
        self.forward = model.loss  # under torchrun: DDP's wrapper of it, which averages the gradients
        self.accumulator = _Mean()
        self.history: list[dict[str, float]] = []
        self.last_saved = -1
        self.log: CSVLog | None = None
        self.writer: Any = None
        self.bar: Any = None
        self.clock_start, self.clock_steps = time.perf_counter(), 0  # wall clock and steps since the last row

    def open(self, *, resume: bool, tensorboard: bool, total_steps: int, progress: bool) -> int:
        """Resumes from ``run_dir``'s checkpoint (or seeds torch), opens the logs and the bar; returns the step."""
        from tqdm.auto import tqdm

        start, restored = 0, None
        if self.run_path is not None and self.world.is_main:
            self.run_path.mkdir(parents=True, exist_ok=True)
            for stale in self.run_path.glob(_TMP_PREFIX + "*"):  # a checkpoint write that was killed
                shutil.rmtree(stale, ignore_errors=True)
            if (self.run_path / CHECKPOINT_DIR / _TRAINER_FILE).is_file():  # a kill after the swap: old is stale
                shutil.rmtree(self.run_path / OLD_CHECKPOINT_DIR, ignore_errors=True)
        if self.world.enabled:
            distributed.barrier()  # rank 0 has tidied run_dir before the others read it
        if self.run_path is not None and resume:
            restored = _find_checkpoint(self.run_path)
        if restored is not None:
            start, self.accumulator = _restore(restored, self.model, self.optimizer, self.sampler, self.lr,
                                               self.weight_decay, self.world)
            self.last_saved = start
        else:
            torch.manual_seed(distributed.rank_seed(self.seed, self.world.rank))
        if self.world.enabled:
            self.forward = distributed.wrap(self.model, self.device)  # broadcasts rank 0's weights
        if self.run_path is not None and self.world.is_main:
            self.log = CSVLog(self.run_path / METRICS_FILE, keep_until=start)
            self.history = self.log.rows()
        self.writer = _tensorboard(self.run_path) if tensorboard and self.world.is_main else None
        self.bar = tqdm(total=total_steps, initial=min(start, total_steps),
                        disable=not progress or not self.world.is_main,
                        desc=f"fit {getattr(self.model, 'model_id', '') or 'model'}", dynamic_ncols=True)
        self.clock_start = time.perf_counter()
        return start

    def train_step(self, step: int) -> dict[str, float]:
        """One Adam step on a fresh batch; returns the step's metrics (loss, the model's, grad_norm)."""
        batch = _to_device(self.sampler.sample(), self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext():
            loss, metrics = self.forward(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {step} (metrics {metrics}); try a lower lr")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip or math.inf))
        if not math.isfinite(grad_norm):
            raise FloatingPointError(f"gradient norm is {grad_norm} at step {step}; try a lower lr or grad_clip")
        self.optimizer.step()
        step_metrics = {"loss": float(loss.detach()), **{k: float(v) for k, v in metrics.items()}}
        step_metrics["grad_norm"] = grad_norm
        self.accumulator.add(step_metrics)
        self.clock_steps += 1
        self.bar.update(1)
        return step_metrics

    def log_row(self, step: int) -> None:
        """Logs the means since the last row (history, CSV, TensorBoard, progress bar) and starts new sums."""
        elapsed = time.perf_counter() - self.clock_start
        means = distributed.all_mean(self.accumulator.means()) if self.world.enabled else self.accumulator.means()
        row = {"step": step, **means, "lr": self.optimizer.param_groups[0]["lr"],
               "steps_per_s": self.clock_steps / max(elapsed, 1e-9)}
        self.accumulator, self.clock_start, self.clock_steps = _Mean(), time.perf_counter(), 0
        self.bar.set_postfix(loss=f"{row['loss']:.4g}")
        if self.log is not None:
            self.log.append(row)
        if self.writer is not None:
            for name, value in row.items():
                if name != "step":
                    self.writer.add_scalar(name, value, step)
        self.history.append(row)

    def agree(self, stop: bool) -> bool:
        """Whether to stop: under torchrun, as soon as any rank's callback says so, on every rank."""
        return distributed.any_true(stop) if self.world.enabled else stop

    def stop(self, step: int) -> None:
        """Ends the run early at ``step``: logs the partial row and writes the checkpoint."""
        if self.accumulator.counts:
            self.log_row(step)
        self.save(step)

    def save(self, step: int) -> None:
        """Writes a checkpoint of ``step`` into ``run_dir`` unless there is none or it is written already."""
        if self.run_path is None or self.last_saved == step:
            return
        ranks = distributed.gather(_rank_state(self.sampler)) if self.world.enabled else None
        if self.world.is_main:
            _write_checkpoint(self.run_path, self.model, self.optimizer, self.sampler, step, self.accumulator,
                              self.seed, ranks)
        if self.world.enabled:
            distributed.barrier()  # the checkpoint is on disk when any rank goes on
        self.last_saved = step

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


def make_sampler(
    data: Any, *, batch_size: int = 16, seq_len: int = 32, seed: int = 0, device: str | torch.device = "cpu"
) -> Any:
    """``data`` if it can ``sample()``, a fixed-batch sampler for a ``Batch``, else a ``SequenceSampler``."""
    if isinstance(data, Batch):
        return _FixedBatch(data)
    if callable(getattr(data, "sample", None)):
        return data
    from model_zoo.data import SequenceSampler

    world = distributed.world()
    if world.enabled:  # this rank's shard of the global batch, drawn with a seed of its own
        batch_size = distributed.shard_batch_size(batch_size, world.size)
        seed = distributed.rank_seed(seed, world.rank)
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


def _tensorboard(run_path: Path | None):
    if run_path is None:
        warnings.warn("tensorboard=True needs a run_dir; not writing event files", stacklevel=4)
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        warnings.warn("tensorboard is not installed; metrics go to metrics.csv only", stacklevel=4)
        return None
    return SummaryWriter(str(run_path / "tensorboard"))


# --- checkpoints of the training state -----------------------------------------------


def _write_checkpoint(run_path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, sampler: Any,
                      step: int, accumulator: _Mean, seed: int, ranks: list[Any] | None = None) -> Path:
    """Writes the whole checkpoint into a fresh folder, then swaps it in place of the old one.

    ``ranks``: under torchrun, every rank's ``_rank_state``, in rank order.
    """
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=run_path))
    try:
        save(model, tmp)
        tensors, opt_state = optimizer_tensors(optimizer)
        save_tensors(tmp / _OPTIMIZER_FILE, tensors, {"format": "pt", "model_zoo": _TRAINER_FORMAT})
        trainer = {
            "format": _TRAINER_FORMAT,
            "version": 1,
            "step": step,
            "seed": seed,
            "optimizer": opt_state,
            "rng": rng_state(),
            "sampler": _sampler_state(sampler),
            "metrics": {"sums": accumulator.sums, "counts": accumulator.counts},
        }
        if ranks is not None:
            trainer["ranks"] = ranks
        atomic_write(tmp / _TRAINER_FILE, json.dumps(trainer))
        final, old = run_path / CHECKPOINT_DIR, run_path / OLD_CHECKPOINT_DIR
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
    for name in (CHECKPOINT_DIR, OLD_CHECKPOINT_DIR):
        if (run_path / name / _TRAINER_FILE).is_file():
            return run_path / name
    if (run_path / CHECKPOINT_DIR).exists():
        raise CheckpointError(f"{run_path / CHECKPOINT_DIR}: no {_TRAINER_FILE}; not a training checkpoint")
    return None


def _restore(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer, sampler: Any,
             lr: float, weight_decay: float, world: distributed.World) -> tuple[int, _Mean]:
    """Loads model, optimizer, RNG and sampler state from ``directory``; returns (step, metric sums)."""
    config = read_config(directory)
    model_id = getattr(model, "model_id", "")
    if config["model_id"] != model_id or _json_roundtrip(config_to_json(model)) != config["config"]:
        raise CheckpointError(
            f"{directory} holds a checkpoint of model {config['model_id']!r} with config {config['config']}, "
            f"not of this {model_id!r} model (config {config_to_json(model)}); "
            "use another run_dir or resume=False to start over"
        )
    weights, metadata = load_tensors(directory / WEIGHTS_FILE)
    check_weights(directory, config, metadata)  # the save id and SHA-256 that config.json records
    load_state_dict_checked(model, weights, where=str(directory))
    try:
        trainer = json.loads((directory / _TRAINER_FILE).read_text())
        if trainer.get("format") != _TRAINER_FORMAT:
            raise ValueError(f"format is {trainer.get('format')!r}")
        step = int(trainer["step"])
        saved = {"param_groups": trainer["optimizer"]["param_groups"], "scalars": trainer["optimizer"]["scalars"]}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{directory / _TRAINER_FILE}: unreadable training state: {error}") from None
    tensors, _ = load_tensors(directory / _OPTIMIZER_FILE)
    try:
        load_optimizer_state(optimizer, tensors, saved)
    except (ValueError, KeyError, RuntimeError) as error:
        raise CheckpointError(f"{directory / _OPTIMIZER_FILE}: does not fit this model's optimizer: {error}") from None
    for group in optimizer.param_groups:
        group["lr"], group["weight_decay"] = lr, weight_decay
    own = _own_state(trainer, world)
    set_rng_state(own["rng"])
    if not _load_sampler_state(sampler, own.get("sampler")) and step > 0:
        warnings.warn(
            f"the sampler ({type(sampler).__name__}) has no saved state to restore; the resumed run draws "
            "other batches than an uninterrupted one would", stacklevel=4,
        )
    metrics = trainer.get("metrics") or {}
    return step, _Mean(metrics.get("sums"), metrics.get("counts"))


def _rank_state(sampler: Any) -> dict[str, Any]:
    """What a rank's next batches and noise depend on: its RNG states and its sampler's state."""
    return {"rng": rng_state(), "sampler": _sampler_state(sampler)}


def _own_state(trainer: Mapping[str, Any], world: distributed.World) -> Mapping[str, Any]:
    """This rank's saved RNG and sampler state (a lone process: the top level, rank 0's)."""
    ranks = trainer.get("ranks") or [trainer]
    if len(ranks) != world.size:
        raise CheckpointError(f"the checkpoint was written by {len(ranks)} process(es), not {world.size}: resume "
                              "with as many (the sampler shards and their states are per process), or resume=False")
    return ranks[world.rank]


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


def rng_state() -> dict[str, Any]:
    """torch's (and CUDA's), numpy's and Python's global random states, as JSON."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state().tolist(),
        "numpy": _encode(np.random.get_state(legacy=False)),  # noqa: NPY002 (code that still uses it)
        "python": _encode(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Puts back what ``rng_state`` returned."""
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
