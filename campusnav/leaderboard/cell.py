"""One cell of the leaderboard: one model, one seed, every stage, each recorded as it ends.

The stages, in order: ``train`` (the shared budget, a held-out loss curve, the
weights saved beside the ledger), ``errors`` (``model_zoo.evaluate`` on held-out
episodes and on held-out contexts), ``fidelity`` (``model_zoo.evaluate_fidelity``
against forks of reality), ``do_error`` (models that take ``do()``), ``cmaes`` and
``ppo`` (controllers trained in the model's dream, scored in reality),
``campus_pixels`` (the same model class on CampusNav-v0 frames, its dreams read by the
semantic probe) and ``car`` (on CarRacing-v3 pixels). A run that dies resumes at the
stage it was in, with the saved weights.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import model_zoo
from campusnav.leaderboard.budget import Budget, horizons
from campusnav.leaderboard.data import (
    CAMPUS,
    PIXEL_KWARGS,
    STATE_KWARGS,
    SharedData,
    campus_data,
    campus_pixel_data,
    car_data,
    probe,
)
from campusnav.leaderboard.ledger import Ledger
from campusnav.leaderboard.transfer import EVAL_SEED, cmaes_controller, dream_envs, ppo_agent
from campusnav.threads import use_threads
from model_zoo.data import SequenceSampler

__all__ = ["PRESET", "cell_folder", "held_out_errors", "late_share", "run_cell", "state_fidelity", "train_with_curve"]

PRESET = "campusnav-state"  # CarRacing-v3 has no preset of its own: both stages train with this one
PIXEL_PRESET = "campusnav-pixels"
INTERVENTIONS = ({"weather": "snowy"}, {"gameday": True})
FIDELITY_HORIZONS = (1, 4, 16)
CURVE_BATCHES = 4  # fixed held-out batches each point of the loss curve averages


def cell_folder(out: Path, model_id: str, seed: int) -> Path:
    return Path(out) / "cells" / model_id / f"seed{seed}"


def run_cell(model_id: str, seed: int, budget: Budget, out: Path, *, pixels: bool = True) -> dict[str, Any]:
    """Every stage of (``model_id``, ``seed``) that is not recorded yet; returns the whole record."""
    use_threads()  # one per process: the leaderboard runs cells side by side
    folder = cell_folder(out, model_id, seed)
    ledger = Ledger(folder / "stages.json")
    data = campus_data(budget, out)
    model = _trained(ledger, folder / "model", model_id, seed, data, budget, budget.steps)
    short, long = horizons(budget)
    ledger.run("errors", lambda: held_out_errors(model, data, (short, long), budget, seed))
    ledger.run("fidelity", lambda: state_fidelity(model, budget, seed))
    ledger.run("do_error", lambda: _do_error(model, budget, seed) if model.supports_do else None)
    ledger.run("cmaes", lambda: cmaes_controller(dream_envs(model, budget), budget, seed))
    ledger.run("ppo", lambda: ppo_agent(dream_envs(model, budget), budget, seed))
    if pixels:
        ledger.run("campus_pixels", lambda: _campus_pixels(model_id, seed, budget, out, folder / "pixel_model"))
        ledger.run("car", lambda: _car(model_id, seed, budget, out, (short, long), folder / "car_model"))
    return ledger.stages


def _trained(ledger: Ledger, path: Path, model_id: str, seed: int, data: SharedData, budget: Budget,
             steps: int) -> model_zoo.WorldModel:
    """The cell's model: loaded when its training is recorded, else trained now (weights first, then the record)."""
    if "train" in ledger and path.exists():
        return model_zoo.load(path).eval()
    model, record = train_with_curve(model_id, seed, data, budget, steps)
    model.save(path)
    ledger.run("train", lambda: record)
    return model


def train_with_curve(model_id: str, seed: int, data: SharedData, budget: Budget, steps: int, lr: float | None = None,
                     **overrides: Any) -> tuple[model_zoo.WorldModel, dict[str, Any]]:
    """A fresh model (its preset, then ``overrides``) fitted with the shared budget at the preset's learning rate
    (or ``lr``), its held-out loss every ``curve_every`` steps (``late_share`` reads the curve), and the seconds of
    training alone."""
    model = _fresh(model_id, seed, data, PRESET, **overrides)
    held_out = SequenceSampler(data.test, budget.seq_len, budget.batch_size, seed=seed + 1)
    batches = [held_out.sample() for _ in range(CURVE_BATCHES)]
    curve: list[tuple[int, float]] = [(0, _held_out_loss(model, batches))]
    curve_seconds = 0.0

    def point(step: int, metrics: dict[str, float]) -> None:
        nonlocal curve_seconds
        if step % budget.curve_every == 0 or step == steps:
            started = time.perf_counter()
            curve.append((step, _held_out_loss(model, batches)))
            curve_seconds += time.perf_counter() - started

    seconds = _fit(model, model_id, seed, data, budget, steps, PRESET, callback=point, lr=lr) - curve_seconds
    return model, {"train_s": seconds, "steps": steps, "curve": curve}


def _fresh(model_id: str, seed: int, data: SharedData, preset: str, **overrides: Any) -> model_zoo.WorldModel:
    """A new model for ``data``'s spaces with ``preset`` (then ``overrides``), its weights drawn from ``seed``."""
    torch.manual_seed(seed)
    return model_zoo.make(model_id, data.observation_space, data.action_space, preset=preset, **overrides)


def _fit(model: model_zoo.WorldModel, model_id: str, seed: int, data: SharedData, budget: Budget, steps: int,
         preset: str, callback: Any = None, lr: float | None = None) -> float:
    """Fits ``model`` on ``data``'s training episodes with the budget's batches and the preset's learning rate
    (or ``lr``); leaves it in eval mode and returns the wall seconds."""
    sampler = SequenceSampler(data.train, budget.seq_len, budget.batch_size, seed=seed)
    started = time.perf_counter()
    lr = model_zoo.preset(model_id, preset).lr if lr is None else lr
    model_zoo.fit(model, sampler, steps=steps, lr=lr, seed=seed, progress=False, callback=callback)
    seconds = time.perf_counter() - started
    model.eval()
    return seconds


def _held_out_loss(model: model_zoo.WorldModel, batches: list) -> float:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return float(np.mean([float(model.loss(batch)[0]) for batch in batches]))
    finally:
        model.train(was_training)


def late_share(curve: list[tuple[int, float]]) -> float:
    """How much the held-out loss still fell at the end: the share of its decrease after the first fifth of
    training that came in the last fifth (0: flat, or rising; the first fifth, where every loss plummets, is
    left out so that it cannot make any curve look flat)."""
    steps = np.array([s for s, _ in curve], dtype=np.float64)
    losses = np.array([v for _, v in curve], dtype=np.float64)
    if len(curve) < 3 or not np.isfinite(losses).all():
        return float("nan")
    early, late = np.interp([0.2 * steps[-1], 0.8 * steps[-1]], steps, losses)
    total = early - losses[-1]
    return float(max(late - losses[-1], 0.0) / total) if total > 0 else 0.0


def held_out_errors(model: model_zoo.WorldModel, data: SharedData, ks: tuple[int, int], budget: Budget,
                    seed: int) -> dict[str, Any]:
    """The ``errors`` stage: ``model_zoo.evaluate`` on held-out episodes at horizons ``ks``, and on held-out
    contexts."""
    keep = ("obs_mse", "copy_mse", "reward_mae", "termination_f1", "imagined_steps_per_s", "parameters")
    result = model_zoo.evaluate(model, data.test, horizons=ks, context=8, num_windows=budget.windows,
                                seed=seed).as_dict()
    row = {k: v for k, v in result.items() if k.split("@")[0] in keep}
    heldout = model_zoo.evaluate(model, data.heldout_contexts, horizons=ks, context=8, num_windows=budget.windows,
                                 speed_batch=0, seed=seed).as_dict()
    row.update({f"heldout_{k}": heldout[k] for k in (f"obs_mse@{ks[0]}", f"obs_mse@{ks[1]}")})
    return row


def state_fidelity(model: model_zoo.WorldModel, budget: Budget, seed: int) -> dict[str, Any]:
    """The ``fidelity`` stage: ``model_zoo.evaluate_fidelity`` of state-vector dreams against forks of reality."""
    return model_zoo.evaluate_fidelity(
        model, CAMPUS, env_kwargs={**STATE_KWARGS, "split": "train"}, starts=budget.fidelity_starts,
        forks=budget.forks, horizons=FIDELITY_HORIZONS, seed=EVAL_SEED + 1000 * seed + 500).as_dict()


def _do_error(model: model_zoo.WorldModel, budget: Budget, seed: int) -> float:
    """Mean |model - env| effect of the interventions on travel time (steps), on counterfactual twins."""
    from model_zoo.causal import compare_twins, env_twins, model_twins

    errors = []
    for do in INTERVENTIONS:
        real = env_twins({}, do, episodes=budget.twins, steps=budget.max_episode_steps, policy="random", seed=seed)
        dreamt = model_twins(model, real.start_obs, real.actions, {}, do, seed=seed)
        errors.append(abs(compare_twins(real, dreamt)["travel_time"]["error"]))
    return float(np.mean(errors))


def _campus_pixels(model_id: str, seed: int, budget: Budget, out: Path, path: Path) -> dict[str, float]:
    """The model class fitted on CampusNav-v0 frames (saved to ``path``); its pixel dreams read by the probe
    against forks of reality."""
    data, reader = campus_pixel_data(budget, out), probe(budget, out)
    model = _fresh(model_id, seed, data, PIXEL_PRESET)
    seconds = _fit(model, model_id, seed, data, budget, budget.pixel_steps, PIXEL_PRESET)
    model.save(path)
    fidelity = model_zoo.evaluate_fidelity(
        model, CAMPUS, env_kwargs={**PIXEL_KWARGS, "split": "train"}, starts=budget.fidelity_starts,
        forks=budget.forks, horizons=FIDELITY_HORIZONS, seed=EVAL_SEED + 1000 * seed + 500,
        semantic=reader.readout).as_dict()
    row = {f"px_{name}@{k}": fidelity[f"{source}@{k}"] for k in (1, 16) for name, source in (
        ("precision", "precision"), ("recall", "recall"), ("tv", "position_tv"), ("valid", "valid_frame_rate"),
        ("real_valid", "real_valid_rate"))}
    return {**row, "px_recon_valid": _reconstruction_valid_rate(model, reader, data, seed), "px_train_s": seconds}


def _reconstruction_valid_rate(model: model_zoo.WorldModel, reader: Any, data: SharedData, seed: int) -> float:
    """The ceiling of the valid-frame rate: the share of the model's reconstructions of held-out real frames
    (filtered through ``observe``, nothing imagined) that the probe reads confidently."""
    from model_zoo.fidelity import VALID_CONFIDENCE

    batch = SequenceSampler(data.test, 8, 32, seed=seed).sample()
    obs = batch.obs
    state, valid = model.initial_state(batch.shape[0]), []
    with torch.no_grad():
        for t in range(batch.shape[1]):
            state = model.observe(state, batch.action[:, t], obs[:, t], batch.is_first[:, t])
            valid.append(reader.readout(model.decode(state))[2] >= VALID_CONFIDENCE)
    return float(np.mean(valid))


def _car(model_id: str, seed: int, budget: Budget, out: Path, ks: tuple[int, int], path: Path) -> dict[str, float]:
    """The same model class fitted on CarRacing-v3 pixels (saved to ``path``): PSNR of its predictions on
    held-out episodes."""
    data = car_data(budget, out)
    model = _fresh(model_id, seed, data, PRESET)
    seconds = _fit(model, model_id, seed, data, budget, budget.pixel_steps, PRESET)
    model.save(path)
    result = model_zoo.evaluate(model, data.test, horizons=ks, context=8, num_windows=budget.windows, speed_batch=0,
                                seed=seed).as_dict()
    return {**{f"car_psnr@{k}": result[f"psnr@{k}"] for k in ks}, "car_train_s": seconds}
