"""Fidelity: a world model scored against the simulator's own distribution of what could happen.

A stochastic step has no single right outcome, so the error against the one
trajectory that happened (``model_zoo.evaluate``) rewards predicting the mean
of a step. Here, from real start states (a warm-up of real steps the model
observes), the same actions run in K forks of the simulator (``fork``: the same
state, other exogenous noise) and in K imagined rollouts, and at each horizon
the two sets of samples are compared through the env's semantic readout
(``metadata["semantic_state"]``: observations -> (position, state), whole
numbers):

- ``precision@k``: the share of imagined samples whose semantic state some real
  fork has (is what the model dreams possible?);
- ``recall@k``: the share of real forks whose semantic state some imagined sample
  has (does the model dream everything that can happen?);
- ``position_tv@k``: the total-variation distance between the imagined and the
  real distributions of the position;
- ``real_support@k``: how many distinct semantic states the real forks reach;
- with a readout that also says how sure it is (a learned probe of pixels returns
  ``(position, state, confidence)``): ``valid_frame_rate@k``, the share of imagined
  observations read with confidence at least ``VALID_CONFIDENCE``, beside
  ``real_valid_rate@k``, the same for the real forks.

Precision and recall of samples follow Sajjadi et al., "Assessing Generative
Models via Precision and Recall" (NeurIPS 2018), here on exact matches of a
discrete readout. Each start is scored on its own and the scores are averaged;
a sample whose episode terminated keeps its last observation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from model_zoo.base import State, WorldModel
from model_zoo.metadata import resolve_function

__all__ = ["VALID_CONFIDENCE", "FidelityResult", "compare_samples", "evaluate_fidelity"]

Readout = Callable[[Any], tuple[np.ndarray, ...]]  # obs -> (position, state) or (position, state, confidence)
VALID_CONFIDENCE = 0.9


@dataclass
class FidelityResult:
    """The fidelity of one model; ``as_dict()`` flattens it into columns like ``precision@16``."""

    model_id: str
    horizons: tuple[int, ...]
    precision: dict[int, float]
    recall: dict[int, float]
    position_tv: dict[int, float]
    real_support: dict[int, float]
    starts: int  # start states scored (those whose episode outlived the warm-up)
    forks: int
    valid_frame_rate: dict[int, float] | None = None  # readouts with a confidence only
    real_valid_rate: dict[int, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model_id, "starts": self.starts, "forks": self.forks}
        for name in ("precision", "recall", "position_tv", "real_support", "valid_frame_rate", "real_valid_rate"):
            out.update({f"{name}@{k}": v for k, v in (getattr(self, name) or {}).items()})
        return out


def compare_samples(real: tuple[np.ndarray, np.ndarray],
                    imagined: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    """Precision, recall, position TV and real support of one start's samples, each (position, state) rows."""
    scores = {}
    for name, (r, i) in (("state", (real[1], imagined[1])), ("position", (real[0], imagined[0]))):
        _, ids = np.unique(np.concatenate([r, i]), axis=0, return_inverse=True)
        ids = ids.reshape(-1)
        r_ids, i_ids = ids[: len(r)], ids[len(r):]
        if name == "state":
            scores["precision"] = float(np.isin(i_ids, r_ids).mean())
            scores["recall"] = float(np.isin(r_ids, i_ids).mean())
            scores["real_support"] = float(len(np.unique(r_ids)))
        else:
            n = int(ids.max()) + 1
            p = np.bincount(r_ids, minlength=n) / len(r_ids)
            q = np.bincount(i_ids, minlength=n) / len(i_ids)
            scores["position_tv"] = float(0.5 * np.abs(p - q).sum())
    return scores


def evaluate_fidelity(
    model: WorldModel,
    env_id: str | Callable[[int], gym.vector.VectorEnv],
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    starts: int = 16,
    forks: int = 64,
    horizons: tuple[int, ...] = (1, 4, 16),
    warmup: int = 8,
    seed: int = 0,
    semantic: Readout | None = None,
) -> FidelityResult:
    """Scores ``model`` against ``forks`` forks of reality from ``starts`` start states (see the module doc).

    ``env_id`` is a registered id whose vector env can ``fork`` (or a factory
    ``num_envs -> VectorEnv`` of such envs); ``env_kwargs`` go to ``gym.make_vec``.
    Random actions drive the warm-up and the rollouts; ``seed`` seeds the starts,
    the actions, the forks' noise and the model's sampling. ``semantic`` overrides
    the env's readout.
    """
    horizons = _check(starts, forks, horizons, warmup)
    envs = env_id(starts) if callable(env_id) else gym.make_vec(
        env_id, num_envs=starts, vectorization_mode="vector_entry_point", **dict(env_kwargs or {}))
    try:
        base = envs.unwrapped
        if not callable(getattr(base, "fork", None)):
            raise TypeError(f"{type(base).__name__} cannot fork(env_ids, noise_seeds); evaluate_fidelity needs an env "
                            "that copies its state with other noise (e.g. CampusNav-v0)")
        readout = semantic or _readout(base.metadata.get("semantic_state"), base)
        rng = np.random.default_rng(seed)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                state, live = _warm_up(model, envs, warmup, rng, seed)
                actions = _actions(envs.single_action_space, (max(horizons), starts), rng)
                rows = np.repeat(live, forks)
                real = _real_samples(base.fork(rows, rng.integers(0, 2**63, size=len(rows))), actions[:, rows],
                                     horizons, readout)
                dreamt = _imagined_samples(model, state, rows, actions[:, rows], horizons, readout, seed)
        finally:
            model.train(was_training)
    finally:
        envs.close()
    return _result(model, horizons, real, dreamt, len(live), forks)


def _check(starts: int, forks: int, horizons: tuple[int, ...], warmup: int) -> tuple[int, ...]:
    for name, value, low in (("starts", starts, 1), ("forks", forks, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    horizons = tuple(horizons)
    if not horizons or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in horizons):
        raise ValueError(f"horizons must be positive integers, got {horizons!r}")
    return tuple(sorted(set(int(k) for k in horizons)))


def _readout(name: str | Readout | None, env: Any) -> Readout:
    if name is None:
        raise ValueError(f"{type(env).__name__} declares no semantic readout (metadata['semantic_state']); "
                         "pass semantic=")
    return resolve_function(name)


def _actions(space: gym.Space, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Uniform random actions of ``space`` with leading ``shape``."""
    if isinstance(space, spaces.Discrete):
        return int(space.start) + rng.integers(0, int(space.n), size=shape)
    if isinstance(space, spaces.Box):
        return rng.uniform(space.low, space.high, size=shape + space.shape).astype(space.dtype)
    raise TypeError(f"evaluate_fidelity draws Discrete or Box actions, got {space}")


def _warm_up(model: WorldModel, envs: gym.vector.VectorEnv, warmup: int, rng: np.random.Generator,
             seed: int) -> tuple[State, np.ndarray]:
    """Runs ``warmup`` random real steps the model observes; its states and the starts still in their episode."""
    n = envs.num_envs
    obs, _ = envs.reset(seed=seed)
    spec, device = model.spec, model.device
    state = model.initial_state(n)
    action = _actions(envs.single_action_space, (n,), rng)  # a placeholder: the first step ignores it
    is_first = torch.ones(n, dtype=torch.bool, device=device)
    alive = np.ones(n, dtype=bool)
    for step in range(warmup + 1):
        state = model.observe(state, torch.as_tensor(action, device=device), spec.to_torch(obs, device), is_first)
        if step == warmup:
            break
        action = _actions(envs.single_action_space, (n,), rng)
        obs, _reward, terminated, truncated, _info = envs.step(action)
        alive &= ~(terminated | truncated)
        is_first = torch.zeros(n, dtype=torch.bool, device=device)
    live = np.flatnonzero(alive)
    if not len(live):
        raise RuntimeError(f"every episode ended within the {warmup}-step warm-up; use a shorter warm-up")
    return state, live


def _real_samples(forked: gym.vector.VectorEnv, actions: np.ndarray, horizons: tuple[int, ...],
                  readout: Readout) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """The readouts of the forks at each horizon; a fork whose episode ended keeps its last one."""
    samples, last, done = {}, None, np.zeros(forked.num_envs, dtype=bool)
    try:
        for j in range(1, max(horizons) + 1):
            obs, _reward, terminated, truncated, _info = forked.step(actions[j - 1])
            last = _freeze(last, readout(obs), done)
            done |= terminated | truncated
            if j in horizons:
                samples[j] = last
    finally:
        forked.close()
    return samples


def _imagined_samples(model: WorldModel, state: State, rows: np.ndarray, actions: np.ndarray,
                      horizons: tuple[int, ...], readout: Readout, seed: int) -> dict[int, tuple[np.ndarray, ...]]:
    """The readouts of the model's decoded dreams at each horizon; a terminated dream keeps its last one."""
    device = model.device
    index = torch.as_tensor(rows, device=device)
    state = {k: v.index_select(0, index) for k, v in state.items()}
    generator = torch.Generator(device=device).manual_seed(seed)
    samples, last, done = {}, None, np.zeros(len(rows), dtype=bool)
    for j in range(1, max(horizons) + 1):
        imagined = model.imagine(state, torch.as_tensor(actions[j - 1], device=device), generator=generator)
        state = imagined.state
        decoded = model.decode(state)
        obs = {k: v.cpu().numpy() for k, v in decoded.items()} if isinstance(decoded, dict) else decoded.cpu().numpy()
        last = _freeze(last, readout(obs), done)
        done |= imagined.terminated.bool().cpu().numpy()
        if j in horizons:
            samples[j] = last
    return samples


def _freeze(last: tuple[np.ndarray, ...] | None, now: tuple[np.ndarray, ...],
            done: np.ndarray) -> tuple[np.ndarray, ...]:
    """``now``'s readouts, but ``last``'s in the rows whose episode had already ended."""
    now = tuple(np.asarray(x) for x in now)
    if len(now) not in (2, 3):
        raise ValueError(f"a semantic readout returns (position, state) or (position, state, confidence), "
                         f"got {len(now)} arrays")
    if last is None or not done.any():
        return now
    return tuple(np.where(done.reshape((-1,) + (1,) * (x.ndim - 1)), old, x) for old, x in zip(last, now, strict=True))


def _result(model: WorldModel, horizons: tuple[int, ...], real: dict, dreamt: dict, starts: int,
            forks: int) -> FidelityResult:
    columns: dict[str, dict[int, float]] = {"precision": {}, "recall": {}, "position_tv": {}, "real_support": {}}
    for k in horizons:
        per_start = [compare_samples(tuple(x[i * forks:(i + 1) * forks] for x in real[k][:2]),
                                     tuple(x[i * forks:(i + 1) * forks] for x in dreamt[k][:2])) for i in range(starts)]
        for name in columns:
            columns[name][k] = float(np.mean([s[name] for s in per_start]))
    confident = {}
    if len(dreamt[horizons[0]]) == 3:
        for name, samples in (("valid_frame_rate", dreamt), ("real_valid_rate", real)):
            confident[name] = {k: float(np.mean(samples[k][2] >= VALID_CONFIDENCE)) for k in horizons}
    return FidelityResult(model_id=model.model_id or type(model).__name__, horizons=horizons, starts=starts,
                          forks=forks, **columns, **confident)

