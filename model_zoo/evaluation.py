"""Evaluation: one table for every world model, from the same windows of real data.

For each window of ``context + max(horizons)`` real steps, the model filters the first
``context`` steps through ``observe`` and then imagines open loop with the real
actions that follow. Scored against the real steps:

- ``obs_mse@k``: squared error of ``decode(state)`` after ``k`` imagined steps over every
  element of every part (images as floats in [0, 1], Discrete parts one-hot);
  ``psnr@k`` for image parts (a perfect frame counts as ``PSNR_CAP`` dB); ``copy_mse@k``,
  the error of predicting the last observed frame, for scale; ``vector_mse@k`` and
  ``copy_vector_mse@k`` over the vector parts alone when there are images too;
- ``reward_mae`` and ``termination_precision`` / ``_recall`` / ``_f1`` over every imagined
  step; ``imagined_steps_per_s`` (``imagine`` alone, batched ``speed_batch``) and
  ``parameters``;
- the columns of a model's own ``evaluation_metrics(window, context, horizons, generator)
  -> {name: (total, count)}``, each ``total / count`` over all windows.

``valid_frame_rates`` reads the imagined observations of the same kind of windows with a
semantic readout (e.g. ``model_zoo.probe``'s): the share it reads confidently at each horizon.

Steps past the end of an episode (a real termination, or the next episode's
``is_first``) are masked out; ``scored@k`` counts the windows still scored at step ``k``,
and a horizon no window reaches reads NaN.

>>> result = EvalResult(model_id="m", horizons=(1,), obs_mse={1: 0.01}, psnr={1: 20.0}, copy_mse={1: 0.02},
...                     scored={1: 8}, reward_mae=0.1, termination_precision=1.0, termination_recall=0.5,
...                     termination_f1=2 / 3, terminations=2, imagined_steps_per_s=1e5, parameters=1234, windows=8)
>>> print(format_table({"m": result}, keys=["obs_mse@1", "psnr@1", "termination_f1", "parameters"]))
| model | obs_mse@1 | psnr@1 | termination_f1 | parameters |
|---|---|---|---|---|
| m | 0.01 | 20.00 | 0.667 | 1,234 |
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from model_zoo.base import Batch

__all__ = ["PSNR_CAP", "EvalResult", "evaluate", "format_table", "imagined_steps_per_second", "valid_frame_rates"]

PSNR_CAP = 100.0  # dB given to a perfect frame (MSE 0), i.e. MSE floored at 1e-10


@dataclass
class EvalResult:
    """The evaluation of one model; ``as_dict()`` flattens it into the table's columns."""

    model_id: str
    horizons: tuple[int, ...]
    obs_mse: dict[int, float]  # horizon -> mean squared error over all observation elements
    psnr: dict[int, float] | None  # horizon -> mean PSNR of the image parts (dB); None without images
    copy_mse: dict[int, float]  # horizon -> the error of repeating the last observed frame
    scored: dict[int, int]  # horizon -> windows still inside their episode at that step
    reward_mae: float
    termination_precision: float
    termination_recall: float
    termination_f1: float
    terminations: int  # real terminations among the scored imagined steps
    imagined_steps_per_s: float
    parameters: int
    windows: int
    context: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        """Flat ``{column: value}``, in the table's column order."""
        out: dict[str, float] = {}
        for k in self.horizons:
            out[f"obs_mse@{k}"] = self.obs_mse[k]
        if self.psnr is not None:
            for k in self.horizons:
                out[f"psnr@{k}"] = self.psnr[k]
        for k in self.horizons:
            out[f"copy_mse@{k}"] = self.copy_mse[k]
        out["reward_mae"] = self.reward_mae
        out["termination_precision"] = self.termination_precision
        out["termination_recall"] = self.termination_recall
        out["termination_f1"] = self.termination_f1
        out["terminations"] = self.terminations
        out["imagined_steps_per_s"] = self.imagined_steps_per_s
        out["parameters"] = self.parameters
        out["windows"] = self.windows
        for k in self.horizons:
            out[f"scored@{k}"] = self.scored[k]
        out.update(self.extra)
        return out

    def to_markdown(self) -> str:
        """A one-row markdown table of this result."""
        return format_table({self.model_id or "model": self})


def format_table(results: Mapping[str, EvalResult], keys: Sequence[str] | None = None) -> str:
    """A markdown table, one row per named result; ``keys`` picks columns (default: all, in order)."""
    rows = {name: result.as_dict() for name, result in results.items()}
    if keys is None:
        keys = []
        for row in rows.values():
            keys += [k for k in row if k not in keys]
    lines = ["| model | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(k, row.get(k)) for k in keys) + " |")
    return "\n".join(lines)


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, int) or key in ("parameters", "windows", "terminations") or key.startswith("scored@"):
        return f"{int(value):,}"
    if not math.isfinite(value):
        return str(value)
    if key == "imagined_steps_per_s":
        return f"{value:,.0f}"
    if key.startswith("psnr@"):
        return f"{value:.2f}"
    if key.startswith("termination_"):
        return f"{value:.3f}"
    return f"{value:.4g}"


# --- evaluate ----------------------------------------------------------------------


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    data: Any,
    *,
    horizons: Sequence[int] = (1, 16),
    context: int = 8,
    num_windows: int = 256,
    batch_size: int = 64,
    speed_batch: int = 1024,
    speed_seconds: float = 1.0,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> EvalResult:
    """Scores ``model`` on windows of real data (see the module docstring for the columns).

    Args:
        model: a ``WorldModel``.
        data: the windows: a ``Batch`` (B, T) (cut into non-overlapping windows of
            ``context + max(horizons)`` steps along T), a list of ``Batch``, a sampler
            (``sample() -> Batch``, drawn until ``num_windows``; its sequences must be
            long enough), or what ``model_zoo.data.iterate`` reads (a Minari dataset, its
            id, a list of episodes: every window once, back to back, in order; the first
            ``num_windows`` are scored, so split off held-out episodes to score those).
        horizons: imagined steps after which the observation is scored.
        context: real steps filtered through ``observe`` before imagining (at least 1).
        num_windows: at most this many windows are scored.
        batch_size: windows evaluated at once.
        speed_batch: batch size of the imagined-steps-per-second measurement (0 skips it).
        speed_seconds: how long to time ``imagine`` for.
        seed: seeds the generator handed to ``imagine`` (stochastic models).
        device: where to evaluate; ``None`` for the model's device.
    """
    horizons = tuple(sorted({int(k) for k in horizons}))
    if not horizons or horizons[0] < 1:
        raise ValueError(f"horizons must be positive step counts, got {horizons}")
    if context < 1:
        raise ValueError(f"context must be at least 1 (a real step to start from), got {context}")
    if device is not None:
        model.to(device)
    device = _model_device(model)
    was_training = model.training
    model.eval()
    try:
        length = context + horizons[-1]
        generator = torch.Generator(device=device).manual_seed(seed)
        totals = _Totals(horizons)
        for window in _windows(data, length, num_windows, batch_size, seed):
            _score(model, window.to(device), context, horizons, generator, totals)
        speed = (
            imagined_steps_per_second(model, speed_batch, seconds=speed_seconds, seed=seed) if speed_batch else math.nan
        )
    finally:
        model.train(was_training)
    if totals.windows == 0:
        raise ValueError(f"no windows of {length} steps (context {context} + horizon {horizons[-1]}) in the data")
    return totals.result(
        model_id=getattr(model, "model_id", "") or type(model).__name__,
        has_images=bool(model.spec.image_keys),
        speed=speed,
        parameters=sum(p.numel() for p in model.parameters()),
        context=context,
    )


@torch.no_grad()
def valid_frame_rates(model: nn.Module, data: Any, readout: Callable[[Any], tuple], *,
                      horizons: Sequence[int] = (1, 16), context: int = 4, num_windows: int = 64,
                      batch_size: int = 32, seed: int = 0) -> dict[int, float]:
    """The share of imagined observations ``readout`` reads with confidence >= ``VALID_CONFIDENCE``, per horizon.

    ``readout(obs) -> (position, state, confidence)`` reads a batch of decoded observations
    (``SemanticProbe.readout``; wrap it to resize). Windows of ``data`` (read as ``evaluate``
    reads it): ``context`` real steps through ``observe``, then ``max(horizons)`` imagined with
    the recorded actions, every window counted at every horizon (a dream past an episode's end
    should still look like a frame). ``seed`` seeds the model's sampling.
    """
    from model_zoo.fidelity import VALID_CONFIDENCE

    horizons = tuple(sorted({int(k) for k in horizons}))
    if not horizons or horizons[0] < 1 or int(context) < 1:
        raise ValueError(f"need horizons >= 1 and context >= 1, got horizons={horizons}, context={context}")
    was_training = model.training
    model.eval()
    generator = torch.Generator(device=_model_device(model)).manual_seed(seed)
    valid: dict[int, list[np.ndarray]] = {k: [] for k in horizons}
    try:
        for window in _windows(data, context + horizons[-1], num_windows, batch_size, seed):
            window = window.to(_model_device(model))
            state = model.initial_state(window.shape[0])
            for t in range(context):
                state = model.observe(state, window.action[:, t], _at(window.obs, t), window.is_first[:, t])
            for j in range(1, horizons[-1] + 1):
                state = model.imagine(state, window.action[:, context + j - 1], generator=generator).state
                if j in valid:
                    valid[j].append(np.asarray(readout(model.decode(state))[2]) >= VALID_CONFIDENCE)
    finally:
        model.train(was_training)
    if not valid[horizons[0]]:
        raise ValueError(f"no windows of {context + horizons[-1]} steps in the data")
    return {k: float(np.concatenate(v).mean()) for k, v in valid.items()}


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


class _Totals:
    """Sums over all scored windows."""

    def __init__(self, horizons: tuple[int, ...]):
        self.horizons = horizons
        self.sq = dict.fromkeys(horizons, 0.0)  # summed squared error
        self.elements = dict.fromkeys(horizons, 0)  # elements in it
        self.copy_sq = dict.fromkeys(horizons, 0.0)
        self.vec_sq = dict.fromkeys(horizons, 0.0)  # the vector parts alone
        self.copy_vec_sq = dict.fromkeys(horizons, 0.0)
        self.vec_elements = dict.fromkeys(horizons, 0)
        self.psnr = dict.fromkeys(horizons, 0.0)  # summed per-frame PSNR
        self.scored = dict.fromkeys(horizons, 0)
        self.reward_abs, self.reward_n = 0.0, 0
        self.tp = self.fp = self.fn = 0
        self.windows = 0
        self.model_sums: dict[str, list[float]] = {}  # name -> [total, count] of model-specific metrics

    def result(self, *, model_id: str, has_images: bool, speed: float, parameters: int, context: int) -> EvalResult:
        def mean(total: dict[int, float], count: dict[int, int]) -> dict[int, float]:
            return {k: total[k] / count[k] if count[k] else math.nan for k in self.horizons}

        precision, recall, f1 = termination_scores(self.tp, self.fp, self.fn)
        extra = {}
        if has_images and any(self.vec_elements.values()):
            vec, copy_vec = mean(self.vec_sq, self.vec_elements), mean(self.copy_vec_sq, self.vec_elements)
            extra = {f"vector_mse@{k}": vec[k] for k in self.horizons}
            extra.update({f"copy_vector_mse@{k}": copy_vec[k] for k in self.horizons})
        for name, (total, count) in self.model_sums.items():
            extra[name] = total / count if count else math.nan
        return EvalResult(
            model_id=model_id,
            horizons=self.horizons,
            obs_mse=mean(self.sq, self.elements),
            psnr=mean(self.psnr, self.scored) if has_images else None,
            copy_mse=mean(self.copy_sq, self.elements),
            scored=dict(self.scored),
            reward_mae=self.reward_abs / self.reward_n if self.reward_n else math.nan,
            termination_precision=precision,
            termination_recall=recall,
            termination_f1=f1,
            terminations=self.tp + self.fn,
            imagined_steps_per_s=speed,
            parameters=parameters,
            windows=self.windows,
            context=context,
            extra=extra,
        )


def termination_scores(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall and F1 of predicted terminations.

    With nothing predicted precision is 1 (no false alarm); with nothing to find recall
    is 1; so a model that rightly predicts no termination on data without any scores 1.

    >>> termination_scores(tp=2, fp=1, fn=1)
    (0.6666666666666666, 0.6666666666666666, 0.6666666666666666)
    """
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _score(model: nn.Module, window: Batch, context: int, horizons: tuple[int, ...],
           generator: torch.Generator, totals: _Totals) -> None:
    """Filters ``context`` steps, imagines ``max(horizons)`` more, adds the errors to ``totals``."""
    spec = model.spec
    batch = window.shape[0]
    obs = window.obs
    extra_metrics = getattr(model, "evaluation_metrics", None)
    if extra_metrics is not None:
        for name, (total, count) in extra_metrics(window, context, horizons, generator).items():
            sums = totals.model_sums.setdefault(name, [0.0, 0])
            sums[0] += float(total)
            sums[1] += count
    state = model.initial_state(batch)
    for t in range(context):
        state = model.observe(state, window.action[:, t], _at(obs, t), window.is_first[:, t])
    last = _at(obs, context - 1)
    valid = ~window.terminated[:, context - 1].bool()  # (B,) a terminal last frame has no future
    totals.windows += batch
    for j in range(1, horizons[-1] + 1):
        t = context + j - 1
        valid = valid & ~window.is_first[:, t].bool()  # the window ran into the next episode
        imagined = model.imagine(state, window.action[:, t], generator=generator)
        state = imagined.state
        if not valid.any():
            break
        real_reward = window.reward[:, t].float()
        totals.reward_abs += float((imagined.reward.float() - real_reward).abs()[valid].sum())
        totals.reward_n += int(valid.sum())
        predicted, real = imagined.terminated.bool()[valid], window.terminated[:, t].bool()[valid]
        totals.tp += int((predicted & real).sum())
        totals.fp += int((predicted & ~real).sum())
        totals.fn += int((~predicted & real).sum())
        if j in horizons:
            target = _at(obs, t)
            sq, elements, image_mse, vec_sq = _errors(spec, model.decode(state), target)
            copy_sq, _, _, copy_vec_sq = _errors(spec, last, target)
            totals.sq[j] += float(sq[valid].sum())
            totals.copy_sq[j] += float(copy_sq[valid].sum())
            totals.vec_sq[j] += float(vec_sq[valid].sum())
            totals.copy_vec_sq[j] += float(copy_vec_sq[valid].sum())
            totals.vec_elements[j] += spec.vector_dim * int(valid.sum())
            totals.elements[j] += elements * int(valid.sum())
            totals.scored[j] += int(valid.sum())
            if image_mse is not None:
                psnr = 10 * torch.log10(1.0 / image_mse.clamp_min(10 ** (-PSNR_CAP / 10)))
                totals.psnr[j] += float(psnr[valid].sum())
        valid = valid & ~window.terminated[:, t].bool()  # later steps are past the episode's end


def _errors(spec: Any, predicted: Any, real: Any) -> tuple[Tensor, int, Tensor | None, Tensor]:
    """Per sample (B,): summed squared error, elements per sample, image MSE or None, vector-part error."""
    pred_parts, real_parts = spec.parts(predicted), spec.parts(real)
    batch = next(iter(real_parts.values())).shape[0]
    sq = torch.zeros(batch, dtype=torch.float64, device=next(iter(real_parts.values())).device)
    elements = 0
    image_sq = torch.zeros_like(sq)
    image_elements = 0
    for key in spec.image_keys:
        p = pred_parts[key].to(sq.device, torch.float64) / 255.0
        r = real_parts[key].to(sq.device, torch.float64) / 255.0
        err = (p - r).square().reshape(batch, -1).sum(dim=1)
        image_sq += err
        image_elements += r[0].numel()
    sq += image_sq
    elements += image_elements
    vec_sq = torch.zeros_like(sq)
    if spec.vectors:
        p, r = spec.vector(predicted), spec.vector(real)
        diff = p.to(sq.device, torch.float64) - r.to(sq.device, torch.float64)
        vec_sq = diff.square().reshape(batch, -1).sum(dim=1)
        sq += vec_sq
        elements += r[0].numel()
    image_mse = image_sq / image_elements if image_elements else None
    return sq, elements, image_mse, vec_sq


def _at(obs: Any, t: int) -> Any:
    return {k: v[:, t] for k, v in obs.items()} if isinstance(obs, Mapping) else obs[:, t]


# --- where windows come from -------------------------------------------------------


def _windows(data: Any, length: int, num_windows: int, batch_size: int, seed: int) -> Iterator[Batch]:
    """Batches of at most ``batch_size`` windows of ``length`` steps, ``num_windows`` in all."""
    left = num_windows
    for batch in _source(data, length, batch_size, seed):
        if batch.shape[1] < length:
            raise ValueError(f"sequences of {batch.shape[1]} steps are too short: evaluation needs {length}")
        for start in range(0, batch.shape[1] - length + 1, length):
            window = batch.at(slice(start, start + length))
            for first in range(0, window.shape[0], batch_size):
                if left <= 0:
                    return
                chunk = _rows(window, slice(first, first + min(batch_size, left)))
                left -= chunk.shape[0]
                yield chunk


def _source(data: Any, length: int, batch_size: int, seed: int) -> Iterable[Batch]:
    if isinstance(data, Batch):
        return [data]
    if isinstance(data, list | tuple) and data and all(isinstance(b, Batch) for b in data):
        return data
    if callable(getattr(data, "sample", None)):
        return iter(data.sample, None)  # endless; _windows stops at num_windows
    from model_zoo import data as zoo_data

    return zoo_data.iterate(data, length, batch_size)  # every window once, back to back


def _rows(batch: Batch, rows: slice) -> Batch:
    def take(x):
        if x is None:
            return None
        return {k: v[rows] for k, v in x.items()} if isinstance(x, dict) else x[rows]

    return Batch(obs=take(batch.obs), action=take(batch.action), reward=take(batch.reward),
                 terminated=take(batch.terminated), is_first=take(batch.is_first), causal=take(batch.causal))


# --- speed ---------------------------------------------------------------------------


@torch.inference_mode()
def imagined_steps_per_second(model: nn.Module, batch_size: int = 1024, *, seconds: float = 1.0,
                              seed: int = 0) -> float:
    """Imagined steps per second: ``imagine`` alone (no decoding) on a batch of ``batch_size``."""
    device = _model_device(model)
    generator = torch.Generator(device=device).manual_seed(seed)
    actions = [_random_actions(model.action_space, batch_size, generator, device) for _ in range(8)]
    state = model.initial_state(batch_size)
    state = {k: v.to(device) for k, v in state.items()} if isinstance(state, dict) else state
    for i in range(2):  # warm-up (lazy init, allocator, kernel selection)
        state = model.imagine(state, actions[i], generator=generator).state
    _sync(device)
    steps, start = 0, time.perf_counter()
    while True:
        state = model.imagine(state, actions[steps % len(actions)], generator=generator).state
        steps += 1
        if steps % 4 == 0 or steps < 4:
            _sync(device)
            elapsed = time.perf_counter() - start
            if elapsed >= seconds and steps >= 3:
                return steps * batch_size / elapsed


def _random_actions(space: Any, batch_size: int, generator: torch.Generator, device: torch.device) -> Tensor:
    if isinstance(space, spaces.Discrete):
        return torch.randint(0, int(space.n), (batch_size,), generator=generator, device=device)
    shape = tuple(space.shape)
    low = torch.tensor(np.broadcast_to(space.low, shape), dtype=torch.float32, device=device)
    high = torch.tensor(np.broadcast_to(space.high, shape), dtype=torch.float32, device=device)
    finite = torch.isfinite(low) & torch.isfinite(high)
    u = torch.rand((batch_size, *shape), generator=generator, device=device)
    n = torch.randn((batch_size, *shape), generator=generator, device=device)
    return torch.where(finite, low + u * (high - low), n)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
