"""Counterfactual twins: the same seeds and actions under two interventions, in the env and in a world model.

CampusNav-v0 draws its randomness from a fixed tape of exogenous noise indexed by
seed and step, consumed the same way whatever the interventions. So ``env_twins``
can run each seed twice with the same actions, once under ``do_factual`` and once
under ``do_counterfactual``, and the second episode is the exact counterfactual
of the first (Pearl's three steps, abduction, action and prediction, carried out
by replaying the noise). ``model_twins`` does the same in a world model that takes
interventions: the same start state and generator seed, another ``do=`` in
``imagine``. ``compare_twins`` sets the model's twin differences against the env's,
and ``twin_outcomes`` scores both sides with one function.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from campus_env import causal
from campus_env.rules import BLOCKED_REWARD
from campus_env.schema import ACTION_MEANINGS, Action
from model_zoo.causal.discovery import ENV_ID
from model_zoo.causal.statistics import mean_ci

__all__ = ["Twins", "compare_twins", "env_twins", "model_twins", "twin_outcomes"]


@dataclass(frozen=True)
class Twins:
    """N pairs of twins: the same seeds and actions under two interventions.

    ``factual`` and ``counterfactual`` map each outcome (``twin_outcomes``) to (N,)
    arrays; ``actions`` (N, T) are the actions both twins took; ``start_obs`` the
    factual twins' first observations (batched), where a model's twins start.
    """

    do_factual: dict[str, Any]
    do_counterfactual: dict[str, Any]
    factual: dict[str, np.ndarray]
    counterfactual: dict[str, np.ndarray]
    actions: np.ndarray
    start_obs: Any = None
    seed: int = 0
    source: str = "env"

    def differences(self) -> dict[str, np.ndarray]:
        """Per outcome, counterfactual minus factual, per pair (N,)."""
        return {k: self.counterfactual[k] - self.factual[k] for k in self.factual}


def twin_outcomes(reward: np.ndarray, terminated: np.ndarray) -> dict[str, np.ndarray]:
    """Outcomes of N episodes from their rewards and terminations (N, T); steps after a termination are ignored.

    ``return`` (summed reward), ``blocked_moves`` (steps whose reward is below
    ``BLOCKED_REWARD``: the env's -0.06 of a blocked move against -0.01 of a plain
    one), ``travel_time`` (the step of arrival, T when it does not arrive) and
    ``reached`` (0/1). Env and model twins are scored by this same function.

    >>> outcomes = twin_outcomes(np.array([[-0.01, -0.06, 0.99, -0.06]]), np.array([[0, 0, 1, 0]], bool))
    >>> {k: float(v[0]) for k, v in outcomes.items()}
    {'return': 0.92, 'blocked_moves': 1.0, 'travel_time': 3.0, 'reached': 1.0}
    """
    reward = np.asarray(reward, dtype=np.float64)
    terminated = np.asarray(terminated, dtype=bool)
    if reward.ndim != 2 or reward.shape != terminated.shape:
        raise ValueError(f"reward and terminated must both be (N, T), got {reward.shape} and {terminated.shape}")
    n, horizon = reward.shape
    ended_before = np.cumsum(terminated, axis=1) - terminated > 0  # (N, T) an earlier step terminated
    live = ~ended_before
    reached = terminated.any(axis=1)
    return {
        "return": np.round(np.where(live, reward, 0.0).sum(axis=1), 10),
        "blocked_moves": (live & (reward < BLOCKED_REWARD)).sum(axis=1).astype(np.float64),
        "travel_time": np.where(reached, terminated.argmax(axis=1) + 1, horizon).astype(np.float64),
        "reached": reached.astype(np.float64),
    }


def env_twins(
    do_factual: Mapping[str, Any],
    do_counterfactual: Mapping[str, Any],
    *,
    episodes: int = 64,
    steps: int = 60,
    policy: str | np.ndarray = "oracle",
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
) -> Twins:
    """Counterfactual twins in CampusNav-v0: each seed under ``do_factual``, then again under ``do_counterfactual``.

    Env ``i`` is reset with seed ``seed + i`` (the native vector env), so both
    twins read the same noise tape. The factual twin's actions come from
    ``policy``: ``"oracle"`` (the shortest-path oracle, acting in the factual
    world), ``"random"`` (uniform, from ``seed``) or an (episodes, steps) array;
    the counterfactual twin replays them exactly. Deterministic given the seed.

    >>> twins = env_twins({"weather": "sunny"}, {"weather": "snowy"}, episodes=3, steps=10, policy="random")
    >>> twins.actions.shape, sorted(twins.differences())
    ((3, 10), ['blocked_moves', 'reached', 'return', 'travel_time'])
    """
    do_factual, do_counterfactual = dict(do_factual), dict(do_counterfactual)
    causal.validate_do(do_factual)
    causal.validate_do(do_counterfactual)
    oracle = None
    if isinstance(policy, str):
        if policy not in ("oracle", "random"):
            raise ValueError(
                f"policy must be 'oracle', 'random' or an (episodes, steps) array of actions, got {policy!r}"
            )
        if policy == "oracle":
            from campus_env.oracle import ShortestPathPolicy

            oracle = ShortestPathPolicy()
            actions = np.zeros((episodes, steps), dtype=np.int64)  # filled as the factual twin walks
        else:
            actions = np.random.default_rng(seed).integers(0, len(Action), (episodes, steps))
    else:
        actions = np.asarray(policy)
        valid = actions.dtype.kind in "iu" and bool(np.all((actions >= 0) & (actions < len(Action))))
        if actions.shape != (episodes, steps) or not valid:
            raise ValueError(
                f"actions must be an ({episodes}, {steps}) integer array of actions ({ACTION_MEANINGS}), "
                f"got {actions.dtype} {actions.shape}"
            )
    kwargs = {"obs_mode": "state", **dict(env_kwargs or {})}
    envs = gym.make_vec(ENV_ID, num_envs=episodes, **kwargs)
    arms, start_obs = {}, None
    try:
        for arm, do in (("factual", do_factual), ("counterfactual", do_counterfactual)):
            obs, _ = envs.reset(seed=seed, options={"do": do})
            start_obs = obs if start_obs is None else start_obs
            reward = np.zeros((episodes, steps))
            terminated = np.zeros((episodes, steps), dtype=bool)
            for t in range(steps):
                if oracle is not None and arm == "factual":
                    actions[:, t] = oracle(envs)
                _, reward[:, t], terminated[:, t], _, _ = envs.step(actions[:, t])
            arms[arm] = twin_outcomes(reward, terminated)
    finally:
        envs.close()
    return Twins(do_factual, do_counterfactual, arms["factual"], arms["counterfactual"],
                 np.asarray(actions, dtype=np.int64), start_obs, seed, "env")


@torch.no_grad()
def model_twins(
    model: Any,
    start_obs: Any,
    actions: np.ndarray,
    do_factual: Mapping[str, Any],
    do_counterfactual: Mapping[str, Any],
    *,
    seed: int = 0,
) -> Twins:
    """Counterfactual twins imagined by a world model that takes interventions (``supports_do``).

    Both twins start from the same state (``start_obs`` filtered through
    ``observe`` as first steps), take the same ``actions`` (N, T) and draw from a
    generator seeded with ``seed`` afresh for each twin: they differ only by the
    ``do=`` given to every ``imagine`` call. Deterministic given the seed.

    Raises ``ValueError`` for a model without ``supports_do``.
    """
    if not getattr(model, "supports_do", False):
        name = getattr(model, "model_id", "") or type(model).__name__
        raise ValueError(
            f"model {name!r} does not take interventions (supports_do is False), so it has no counterfactual "
            "twins; use a causal world model such as 'causal_vae_mdnrnn'"
        )
    actions = np.asarray(actions)
    if actions.ndim < 2:
        raise ValueError(f"actions must be (N, T, ...) for N twins over T steps, got shape {actions.shape}")
    n, horizon = actions.shape[:2]
    device = model.device
    space = model.action_space
    first_action = torch.as_tensor(np.zeros((n,) + tuple(space.shape), dtype=actions.dtype), device=device)
    start = model.observe(model.initial_state(n), first_action, model.spec.to_torch(start_obs, device),
                          torch.ones(n, dtype=torch.bool, device=device))
    was_training = model.training
    model.eval()
    arms = {}
    try:
        for arm, do in (("factual", dict(do_factual)), ("counterfactual", dict(do_counterfactual))):
            generator = torch.Generator(device=device).manual_seed(seed)
            state = start
            reward = np.zeros((n, horizon))
            terminated = np.zeros((n, horizon), dtype=bool)
            for t in range(horizon):
                out = model.imagine(state, torch.as_tensor(actions[:, t], device=device), do=do or None,
                                    generator=generator)
                state = out.state
                reward[:, t] = out.reward.float().cpu().numpy()
                terminated[:, t] = out.terminated.bool().cpu().numpy()
            arms[arm] = twin_outcomes(reward, terminated)
    finally:
        model.train(was_training)
    return Twins(dict(do_factual), dict(do_counterfactual), arms["factual"], arms["counterfactual"],
                 actions, start_obs, seed, getattr(model, "model_id", "") or type(model).__name__)


def compare_twins(reference: Twins, other: Twins) -> dict[str, dict[str, float]]:
    """The twins' outcome differences in ``other`` (a model) against ``reference`` (the env), per outcome.

    For each outcome: the mean counterfactual-minus-factual difference of each
    with its 95% CI half-width, the error of the mean difference
    (``other - reference``), the mean absolute per-pair error, and the correlation
    of the per-pair differences (NaN where one side never varies).
    """
    if reference.actions.shape[:2] != other.actions.shape[:2]:
        raise ValueError(
            f"twins to compare need the same pairs: {reference.actions.shape[:2]} vs {other.actions.shape[:2]}"
        )
    out = {}
    ref_diff, other_diff = reference.differences(), other.differences()
    for outcome, r in ref_diff.items():
        o = other_diff[outcome]
        (rm, rc), (om, oc) = mean_ci(r), mean_ci(o)
        corr = float(np.corrcoef(r, o)[0, 1]) if r.std() > 0 and o.std() > 0 else math.nan
        out[outcome] = {"reference_effect": rm, "reference_ci": rc, "effect": om, "ci": oc, "error": om - rm,
                        "pair_mae": float(np.abs(o - r).mean()), "correlation": corr}
    return out
