"""MLP world models: one network, and a bootstrapped ensemble of them; deterministic unless ``outcomes > 1``.

The state is the current observation as one flat vector (image parts average-pooled
to ``image_pool x image_pool`` cells, then the vector parts). An MLP (ELU, orthogonal
init) maps the normalised (state, action) to the normalised change of state, the
reward and a termination logit, as in Nagabandi et al. 2018, "Neural Network Dynamics
for Model-Based Deep Reinforcement Learning with Model-Free Fine-Tuning"
(arXiv:1708.02596); running statistics, saved with the weights, normalise both.

A mean prediction is a poor dream of a stochastic env, so four options (off by
default) keep an imagined episode one the env could show: ``outcomes=K`` predicts K
whole next steps and their odds by relaxed winner-takes-all (Rupprecht et al. 2017,
arXiv:1612.00197) and draws one; ``snap_levels`` moves dimensions of few values to the
nearest value seen in training; ``input_noise`` trains on nudged inputs; and
``rollout_steps`` trains on the model's own rollouts ("data as demonstrator",
Venkatraman et al. 2015). A dimension that never changed within a training episode
does not change in imagination either.

``MLPEnsemble`` trains N networks on bootstrapped data (Poisson(1) weights, Oza &
Russell 2001), as PETS (Chua et al. 2018, arXiv:1805.12114) without probabilistic
heads, and reports the members' disagreement as uncertainty (Pathak et al. 2019).

>>> import numpy as np
>>> from gymnasium import spaces
>>> model = MLPEnsemble(spaces.Box(-1, 1, (4,), np.float32), spaces.Discrete(2), MLPEnsemble.Config(hidden=16))
>>> state = model.initial_state(3)
>>> out = model.imagine(state, torch.tensor([0, 1, 1]))
>>> out.state["obs"].shape, out.reward.shape, out.terminated.dtype, out.state["disagreement"].shape
(torch.Size([3, 4]), torch.Size([3]), torch.bool, torch.Size([3]))
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model_zoo.base import Batch, Imagined, Obs, State, WorldModel
from model_zoo.nets import EnsembleMLP, RunningNorm, mlp, orthogonal_init
from model_zoo.registry import Preset

__all__ = ["EnsembleConfig", "MLPConfig", "MLPEnsemble", "MLPWorldModel", "Rollout", "RunningNorm"]

_LOSSES = ("mse", "huber")


@dataclass(frozen=True)
class MLPConfig:
    """Hyperparameters of ``MLPWorldModel``."""

    hidden: int = 256  # width of every hidden layer
    layers: int = 3  # number of hidden layers
    image_pool: int = 8  # image parts are average-pooled to image_pool x image_pool cells
    state_loss: str = "mse"  # "mse" or "huber", on the normalised change of state
    reward_loss: str = "mse"  # "mse" or "huber", on the normalised reward
    huber_delta: float = 1.0  # where the Huber loss turns from quadratic to linear
    termination_pos_weight: float = 5.0  # BCE weight of terminal steps (rare); predicts done when p > 1 / (1 + w)
    state_coef: float = 1.0
    reward_coef: float = 1.0
    termination_coef: float = 1.0
    min_std: float = 1e-2  # floor of the running std that normalises inputs and targets
    # outcomes > 1: that many whole next steps and their odds, one drawn per imagined step (see the module
    # docstring); 1 is the deterministic mean prediction
    outcomes: int = 1
    outcome_relax: float = 0.05  # outcomes > 1: share of the loss spread over the outcomes that did not win
    temperature: float = 1.0  # outcomes > 1: odds sharpened (< 1) or flattened (> 1); 0 takes the likeliest
    # std of the Gaussian noise added to training inputs, in units of each dimension's spread; the targets stay
    # the clean next states, so the network learns to pull a drifted state back (see the module docstring)
    input_noise: float = 0.0
    # snap_levels > 0: a dimension that took at most that many distinct values in the training data (a grid
    # position, a one-hot code, a map bit) is snapped to the nearest of them after each imagined step, so a dream
    # stays on the values the env can show; dimensions with more values are left as predicted
    snap_levels: int = 0
    # rollout_steps = H > 1: each training window is also rolled forward H - 1 steps on the model's own
    # predictions (the outcome nearest the truth, snapped), each step still scored against the real next state
    # (as "data as demonstrator", Venkatraman et al. 2015): the network learns to undo its own drift
    rollout_steps: int = 1

    def __post_init__(self):
        if self.outcomes < 1:
            raise ValueError(f"outcomes must be at least 1, got {self.outcomes}")
        if not 0 <= self.outcome_relax < 1:
            raise ValueError(f"outcome_relax must lie in [0, 1), got {self.outcome_relax}")
        if self.snap_levels < 0 or self.rollout_steps < 1:
            raise ValueError(f"snap_levels must be >= 0 and rollout_steps >= 1, got {self.snap_levels}, "
                             f"{self.rollout_steps}")
        if self.temperature < 0 or self.input_noise < 0:
            raise ValueError(f"temperature and input_noise must be >= 0, got {self.temperature}, {self.input_noise}")
        for name in ("state_loss", "reward_loss"):
            if getattr(self, name) not in _LOSSES:
                raise ValueError(f"{name} must be one of {_LOSSES}, got {getattr(self, name)!r}")
        for name in ("hidden", "layers", "image_pool"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.min_std <= 0 or self.huber_delta <= 0 or self.termination_pos_weight <= 0:
            raise ValueError("min_std, huber_delta and termination_pos_weight must be positive")


@dataclass(frozen=True)
class EnsembleConfig(MLPConfig):
    """Hyperparameters of ``MLPEnsemble``: those of ``MLPConfig`` and the ensemble's."""

    members: int = 5  # number of networks
    bootstrap: bool = True  # Poisson(1) sample weights per member; False trains every member on every sample
    seed: int = 0  # seeds the bootstrap weights (each training step draws from seed and the step count)

    def __post_init__(self):
        super().__post_init__()
        if self.members < 1:
            raise ValueError(f"members must be at least 1, got {self.members}")


PRESETS = {"campusnav-state": Preset(lr=1e-3), "campusnav-pixels": Preset(lr=1e-3)}
"""Tuned settings by data kind (``model_zoo.make(..., preset=name)``; ``fit(..., lr=preset.lr)``)."""
# the ensemble samples a member and an outcome per imagined step (PETS's TS1): its dreams stay on states the env
# can show, and a controller trained in them navigates in reality (docs/results/mlp_outcomes.md); the lone mlp
# stays deterministic, the leaderboard's reference for what a mean prediction dreams
ENSEMBLE_PRESETS = {"campusnav-state": Preset(config={"outcomes": 4}, lr=1e-3), "campusnav-pixels": Preset(lr=1e-3)}


class Prediction(NamedTuple):
    """Every member's one-step prediction, (M, N, ...); with K > 1 outcomes (M, N, K, ...) and their odds."""

    delta: Tensor  # (M, N, D) normalised change of state
    reward: Tensor  # (M, N) normalised reward
    logit: Tensor  # (M, N) termination logit
    odds: Tensor | None = None  # (M, N, K) logits of the outcomes, when there are several


@dataclass
class Rollout:
    """A predicted trajectory from ``rollout``: what ``imagine`` returns at each of H steps, stacked."""

    states: Tensor  # (B, H, D) the flat state after each action
    rewards: Tensor  # (B, H)
    terminated: Tensor  # (B, H) bool; steps after a predicted termination are still predicted
    disagreement: Tensor | None = None  # (B, H) for ensembles


class MLPWorldModel(WorldModel):
    """Deterministic MLP world model: (observation, action) -> next observation, reward, termination.

    State: ``{"obs": (B, state_dim)}``, the flat observation (see the module
    docstring); ``features`` is that vector, ``decode`` turns it back into the
    env's format (images upsampled from the pooled cells).
    """

    Config = MLPConfig
    presets = PRESETS

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, config: MLPConfig):
        super().__init__(observation_space, action_space, config)
        pool = config.image_pool
        self.image_dims = {k: shape[-1] * pool * pool for k, shape in self.spec.images.items()}
        self.state_dim = sum(self.image_dims.values()) + self.spec.vector_dim
        low, high = _state_bounds(self.spec, sum(self.image_dims.values()))
        # imagined states stay inside the observation space, or a dream can drift away without bound
        self.register_buffer("state_low", low, persistent=False)
        self.register_buffer("state_high", high, persistent=False)
        in_dim = self.state_dim + self.spec.action_dim
        self.in_norm = RunningNorm(in_dim, config.min_std)  # of (state, encoded action)
        self.delta_norm = RunningNorm(self.state_dim, config.min_std)  # of next state - state
        self.reward_norm = RunningNorm(1, config.min_std)
        k = config.outcomes
        self.net = self._build_net(in_dim, self.state_dim + 2 if k == 1 else k * (self.state_dim + 3))
        if config.snap_levels:
            # the distinct values each dimension took, ascending, padded with +inf; a count above snap_levels
            # marks a dimension with too many values to snap
            self.register_buffer("levels", torch.full((self.state_dim, config.snap_levels), math.inf))
            self.register_buffer("level_count", torch.zeros(self.state_dim, dtype=torch.int64))

    @property
    def members(self) -> int:
        """Number of networks (1 here)."""
        return 1

    def _build_net(self, in_dim: int, out_dim: int) -> nn.Module:
        net = mlp(in_dim, out_dim, self.config.hidden, self.config.layers, nn.ELU)
        orthogonal_init(net)
        nn.init.orthogonal_(net[-1].weight, gain=1.0)
        return net

    def _members_forward(self, x: Tensor) -> Tensor:
        return self.net(x)[None]  # (1, N, out)

    # --- observations and actions as flat vectors -----------------------------

    def encode_obs(self, obs: Obs) -> Tensor:
        """Env-format observation (..., obs shape) -> flat state (..., state_dim) float32."""
        parts = self.spec.parts(obs)
        pool = self.config.image_pool
        flat = []
        for key in self.spec.image_keys:
            x = parts[key].to(self.device)
            lead = tuple(x.shape[:-3])
            x = x.reshape((-1,) + tuple(x.shape[-3:])).permute(0, 3, 1, 2).float() / 255.0  # (N, C, H, W)
            x = F.adaptive_avg_pool2d(x, pool)  # (N, C, pool, pool)
            flat.append(x.reshape(lead + (-1,)))
        if self.spec.vector_dim:
            flat.append(self.spec.vector(obs).to(self.device))
        return torch.cat(flat, dim=-1)  # (..., state_dim)

    def encode_action(self, action: Tensor, check: bool = True) -> Tensor:
        """Env-format action (..., action shape) -> float (..., action_dim); ``check`` rejects bad Discrete ids."""
        action = torch.as_tensor(action, device=self.device)
        if self.spec.discrete:
            low = int(self.action_space.start)
            high = low + self.spec.action_dim  # exclusive
            if check and action.numel() and (action.min() < low or action.max() >= high):
                raise ValueError(f"discrete actions must lie in [{low}, {high}), got {action.tolist()}")
            action = action.long().clamp(low, high - 1)
        return self.spec.encode_action(action)

    # --- the network -------------------------------------------------------------

    def _predict(self, x: Tensor, a: Tensor) -> Prediction:
        """Every member's prediction from flat states x (N, D) and encoded actions a (N, A)."""
        out = self._members_forward(self.in_norm.normalize(torch.cat([x, a], dim=-1)))  # (M, N, out)
        d, k = self.state_dim, self.config.outcomes
        if k == 1:
            return Prediction(out[..., :d], out[..., d], out[..., d + 1])
        out = out.reshape(out.shape[:-1] + (k, d + 3))  # (M, N, K, D + 3)
        return Prediction(out[..., :d], out[..., d], out[..., d + 1], out[..., d + 2])

    def _draw(self, pred: Prediction, generator: torch.Generator | None) -> Prediction:
        """One outcome per member and row, drawn with the tempered odds: the (M, N, ...) prediction it makes."""
        if pred.odds is None:
            return pred
        odds, temperature = pred.odds, self.config.temperature
        if temperature == 0:
            pick = odds.argmax(-1)  # (M, N)
        else:
            probs = torch.softmax(odds / temperature, dim=-1).reshape(-1, odds.shape[-1])
            pick = torch.multinomial(probs, 1, generator=generator).reshape(odds.shape[:-1])
        drawn = _pick(pred, pick)  # (M, N, ...)
        members, n = odds.shape[:2]
        if members == 1:
            return drawn
        # one member per row too (PETS's TS1 sampling): a mean over members would blur the outcomes again
        member = torch.randint(0, members, (1, n), generator=generator, device=odds.device)
        return Prediction(*(part.gather(0, member.view((1, n) + (1,) * (part.dim() - 2)).expand((1,) + part.shape[1:]))
                            for part in drawn[:3]))

    def _step(
        self, x: Tensor, action: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """Next state (N, D), reward (N,), terminated (N,) bool and disagreement (N,), None for one member: the
        members' mean prediction, or with several outcomes the outcome drawn from a member drawn per row."""
        full = self._predict(x, self.encode_action(action))
        pred = self._draw(full, generator)
        next_x = self._land(x, pred.delta)
        reward = self.reward_norm.denormalize(pred.reward[..., None])[..., 0].mean(0)  # (N,)
        terminated = torch.sigmoid(pred.logit).mean(0) > 0.5  # (N,)
        return next_x, reward, terminated, _disagreement(_expected(full).delta) if self.members > 1 else None

    def _land(self, x: Tensor, delta: Tensor) -> Tensor:
        """The state (N, D) that the members' normalised changes delta (M, N, D) lead to from x (N, D): their mean
        change, kept inside the observation bounds and snapped (``snap_levels``). A dimension that never changed
        within an episode of the data (a goal, a context) does not change here either: the network's small
        errors there would otherwise add up over an imagined episode."""
        next_x = x + self.delta_norm.denormalize(delta).mean(0) * self._changing()
        return self._snap(torch.maximum(torch.minimum(next_x, self.state_high), self.state_low))

    @torch.no_grad()
    def _record_levels(self, x: Tensor) -> None:
        """Merges the distinct values of the states x (N, D) into ``levels``.

        Values closer than 1e-4 of the dimension's spread count as one, the smallest standing for them (float
        rounding makes k / 31 - j / 31 differ in its last bits from one pair (k, j) to another)."""
        cap = self.config.snap_levels
        grain = 1e-4 * self.in_norm.std[: self.state_dim]
        open_ = self.level_count <= cap
        if not bool(open_.any()):
            return
        # only dimensions with a value not yet among their levels need a merge (after a while, none)
        known = (self._nearest(x) - x).abs() <= grain  # (N, D)
        for d in torch.nonzero(open_ & ~known.all(0)).flatten().tolist():
            seen = self.levels[d, : int(self.level_count[d])]
            merged = torch.unique(torch.cat([seen, x[:, d]]))  # sorted
            merged = merged[torch.cat([merged.new_ones(1, dtype=torch.bool), merged.diff() > grain[d]])]
            if len(merged) > cap:
                self.level_count[d] = cap + 1
                continue
            self.levels[d, : len(merged)] = merged
            self.level_count[d] = len(merged)

    def _nearest(self, x: Tensor) -> Tensor:
        """The level nearest each value of x (N, D) (+inf where a dimension has no levels yet)."""
        levels = self.levels  # (D, L), ascending, padded with +inf
        right = torch.searchsorted(levels, x.t().contiguous()).clamp_max(levels.shape[1] - 1)  # (D, N)
        left = (right - 1).clamp_min(0)
        above, below = levels.gather(1, right), levels.gather(1, left)  # (D, N)
        xt = x.t()
        return torch.where((above - xt).abs() < (xt - below).abs(), above, below).t()  # (N, D)

    def _snap(self, x: Tensor) -> Tensor:
        """x (N, D) with every dimension of few values moved to the nearest value it took in the data."""
        if not self.config.snap_levels:
            return x
        snap = (self.level_count > 0) & (self.level_count <= self.config.snap_levels)  # (D,)
        return torch.where(snap, self._nearest(x), x)

    def _changing(self) -> Tensor:
        """1.0 where the state changed in some training pair, 0.0 where it never did (D,); all 1 before training."""
        return (self.delta_norm.var > 0).to(self.delta_norm.mean.dtype)

    def _sample_weights(self, valid: Tensor) -> Tensor:
        """Per-member weights (M, N) of the N training pairs."""
        return valid.float()[None]

    # --- the interface -----------------------------------------------------------

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """One-step prediction loss over consecutive pairs of the (B, T) window.

        Pair t predicts obs[t + 1] from obs[t] and action[t + 1] (the action that
        led to obs[t + 1]); pairs where obs[t + 1] starts an episode, or obs[t]
        ends one, are masked out. Running statistics update in training mode.
        With ``rollout_steps = H > 1`` the window is also rolled forward on the
        model's own predictions: stage k predicts obs[t + 1] from the state the
        model reached after k steps from obs[t - k] (see the module docstring).
        """
        cfg = self.config
        s = self.encode_obs(batch.obs)  # (B, T, D)
        a = self.encode_action(batch.action, check=False)  # (B, T, A)
        is_first = batch.is_first.to(self.device).bool()
        terminated = batch.terminated.to(self.device).bool()
        valid = ~is_first[:, 1:] & ~terminated[:, :-1]  # (B, T - 1): pair t is inside one episode
        x, target = s[:, :-1], s[:, 1:]  # (B, T - 1, D)
        act = a[:, 1:]  # (B, T - 1, A)
        reward = batch.reward.to(self.device)[:, 1:].float()  # (B, T - 1)
        # the action and reward of a first step are meaningless (maybe NaN): zero them so masked pairs stay finite
        act = torch.where(valid[..., None], act, torch.zeros_like(act))
        reward = torch.where(valid, reward, torch.zeros_like(reward))
        done = terminated[:, 1:].float()  # (B, T - 1)
        if self.training:
            flat = valid.flatten()
            self.in_norm.update(torch.cat([x, act], dim=-1).flatten(0, 1)[flat])
            self.delta_norm.update((target - x).flatten(0, 1)[flat])
            self.reward_norm.update(reward.flatten()[flat, None])
            if cfg.snap_levels:
                self._record_levels(s.flatten(0, 1))
            if cfg.input_noise > 0:
                scale = cfg.input_noise * self.in_norm.std[: self.state_dim] * self._changing()
                x = x + torch.randn_like(x) * scale  # the same next state, from a nudged one

        stages = min(cfg.rollout_steps, x.shape[1])
        total, metrics, reached = self._pairs_loss(x, act, target, reward, done, valid, stages > 1)
        stage_losses = []
        for stage in range(1, stages):
            # the next stage: pair t starts where the previous stage's prediction of obs[t] landed
            x, valid = reached[:, :-1], valid[:, :-1] & valid[:, 1:]
            act, target, reward, done = act[:, 1:], target[:, 1:], reward[:, 1:], done[:, 1:]
            stage_total, _, reached = self._pairs_loss(x, act, target, reward, done, valid, stage + 1 < stages,
                                                       with_metrics=False)
            stage_losses.append(stage_total)
        if stage_losses:
            rollout = torch.stack(stage_losses).mean()
            metrics["rollout_loss"] = float(rollout.detach())
            total = (total + rollout * len(stage_losses)) / (1 + len(stage_losses))
            metrics["loss"] = float(total.detach())
        return total, metrics

    def _pairs_loss(
        self, x: Tensor, act: Tensor, target: Tensor, reward: Tensor, done: Tensor, valid: Tensor, rollout: bool,
        with_metrics: bool = True,
    ) -> tuple[Tensor, dict[str, float], Tensor | None]:
        """The loss of predicting target (B, L, D) from x (B, L, D) under act (B, L, A), with the rewards and
        terminations (B, L) of the steps; only ``valid`` (B, L) pairs count. Returns the loss, its metrics (none
        without ``with_metrics``), and with ``rollout`` the states (B, L, D) the prediction reaches (the winning
        outcome's, clipped and snapped as in ``imagine``; detached), from which a rollout goes on."""
        cfg = self.config
        lead = x.shape[:2]
        valid, done = valid.reshape(-1), done.reshape(-1)  # (N,)
        x, target, act = (t.reshape(-1, t.shape[-1]) for t in (x, target, act))  # (N, ...)
        reward = reward.reshape(-1, 1)  # (N, 1)
        delta = target - x

        pred = self._predict(x, act)  # (M, N, ...) or (M, N, K, ...)
        target_delta, target_reward = self.delta_norm.normalize(delta), self.reward_norm.normalize(reward)[:, 0]
        many = pred.odds is not None
        if many:  # every outcome's prediction is compared with the pair's target
            target_delta, target_reward, done = target_delta[:, None], target_reward[:, None], done[:, None]
        state_loss = self._regression(pred.delta, target_delta, cfg.state_loss).mean(-1)
        reward_loss = self._regression(pred.reward, target_reward, cfg.reward_loss)
        pos_weight = torch.tensor(cfg.termination_pos_weight, device=self.device)
        term_loss = F.binary_cross_entropy_with_logits(
            pred.logit, done.expand_as(pred.logit), pos_weight=pos_weight, reduction="none"
        )
        odds_loss = None
        if not many:
            per_pair = cfg.state_coef * state_loss + cfg.reward_coef * reward_loss + cfg.termination_coef * term_loss
            step_delta = pred.delta
        else:
            # winner takes all, relaxed (Rupprecht et al. 2017): the outcome nearest the target (state and reward)
            # learns it, the others a little, and the odds learn how often each outcome wins. Termination is
            # learnt by every outcome alike: it is rare, and the step that ends an episode is a moved one
            fit = cfg.state_coef * state_loss + cfg.reward_coef * reward_loss  # (M, N, K)
            winner = fit.detach().argmin(-1)  # (M, N)
            won = fit.gather(-1, winner[..., None])[..., 0]
            odds_loss = F.cross_entropy(pred.odds.flatten(0, 1), winner.flatten(), reduction="none").view_as(won)
            relax = cfg.outcome_relax
            term_loss = term_loss.mean(-1)
            per_pair = (1 - relax) * won + relax * fit.mean(-1) + cfg.termination_coef * term_loss + odds_loss
            step_delta = _pick(pred, winner).delta
            if with_metrics:  # the winners' losses, and the outcomes' expectation, are read by the metrics alone
                state_loss, reward_loss = (part.gather(-1, winner[..., None])[..., 0]
                                           for part in (state_loss, reward_loss))
                pred = _expected(pred)
        weights = self._sample_weights(valid) if self.training else valid.float()[None]  # (M, N)
        total = ((per_pair * weights).sum(-1) / weights.sum(-1).clamp_min(1.0)).mean()

        with torch.no_grad():
            reached = None
            if rollout:
                reached = self._land(x, step_delta).reshape(lead + (-1,))
            if not with_metrics:
                return total, {}, reached
            n = valid.float().sum().clamp_min(1.0)
            mask = valid.float()

            def avg(per: Tensor) -> float:  # mean over members and valid pairs
                return float((per.mean(0) * mask).sum() / n)

            pred_delta = self.delta_norm.denormalize(pred.delta).mean(0)  # (N, D)
            pred_reward = self.reward_norm.denormalize(pred.reward[..., None]).mean(0)  # (N, 1)
            metrics = {
                "loss": float(total.detach()),
                "state_loss": avg(state_loss),
                "reward_loss": avg(reward_loss),
                "termination_loss": avg(term_loss),
                "state_mse": float(((pred_delta - delta).square().mean(-1) * mask).sum() / n),
                "copy_mse": float((delta.square().mean(-1) * mask).sum() / n),  # the next = current baseline
                "reward_mae": float(((pred_reward - reward).abs()[:, 0] * mask).sum() / n),
                "pairs": float(valid.sum()),
            }
            if odds_loss is not None:
                metrics["odds_loss"] = avg(odds_loss)
            if self.members > 1:
                metrics["disagreement"] = float((_disagreement(pred.delta) * mask).sum() / n)
        return total, metrics, reached

    def _regression(self, pred: Tensor, target: Tensor, kind: str) -> Tensor:
        target = target.expand_as(pred)
        if kind == "huber":
            return F.huber_loss(pred, target, reduction="none", delta=self.config.huber_delta)
        return F.mse_loss(pred, target, reduction="none")

    def initial_state(self, batch_size: int) -> State:
        return {"obs": torch.zeros(batch_size, self.state_dim, device=self.device)}

    def _state(self, x: Tensor, disagreement: Tensor | None = None) -> State:
        """The model state of flat observations x (B, D); the ensemble adds the members' disagreement."""
        return {"obs": x}

    def observe(self, state: State, action: Tensor, obs: Obs, is_first: Tensor) -> State:
        """The state is the observation itself, so ``state``, ``action`` and ``is_first`` are not needed."""
        return self._state(self.encode_obs(obs))

    def imagine(self, state: State, action: Tensor, do: Mapping[str, Any] | None = None,
                generator: torch.Generator | None = None) -> Imagined:
        """The step ``action`` leads to: the mean prediction (deterministic, ``generator`` unused), or with
        ``outcomes > 1`` one outcome drawn with ``generator``."""
        self.check_do(do)
        next_x, reward, terminated, disagreement = self._step(state["obs"], action, generator)
        return Imagined(self._state(next_x, disagreement), reward, terminated)

    def decode(self, state: State) -> Obs:
        x = state["obs"]  # (B, D)
        lead = tuple(x.shape[:-1])
        pool = self.config.image_pool
        images, start = {}, 0
        for key, shape in self.spec.images.items():
            dim = self.image_dims[key]
            cells = x[..., start : start + dim].reshape((-1, shape[-1], pool, pool))  # (N, C, pool, pool)
            start += dim
            full = F.interpolate(cells, size=shape[:2], mode="bilinear", align_corners=False)  # (N, C, H, W)
            images[key] = full.reshape(lead + tuple(full.shape[1:]))
        return self.spec.assemble(images, x[..., start:])

    def features(self, state: State) -> Tensor:
        return state["obs"]  # (B, state_dim)

    # --- beyond the interface ----------------------------------------------------

    def rollout(self, state: State, actions: Tensor) -> Rollout:
        """Imagines H steps from ``state`` under ``actions`` (B, H, ...), one ``imagine`` per step."""
        states, rewards, terms, disagreements = [], [], [], []
        for h in range(actions.shape[1]):
            state, reward, terminated = self.imagine(state, actions[:, h])
            states.append(state["obs"])
            rewards.append(reward)
            terms.append(terminated)
            if "disagreement" in state:
                disagreements.append(state["disagreement"])
        return Rollout(
            torch.stack(states, 1),  # (B, H, D)
            torch.stack(rewards, 1),  # (B, H)
            torch.stack(terms, 1),  # (B, H)
            torch.stack(disagreements, 1) if disagreements else None,
        )


class MLPEnsemble(MLPWorldModel):
    """N bootstrapped MLP world models evaluated in one batched pass; their disagreement is the uncertainty.

    State: ``{"obs": (B, state_dim), "disagreement": (B,)}``; ``imagine`` follows
    the members' mean (with ``outcomes > 1``, as the state preset has, one drawn
    member's drawn outcome) and stores their disagreement on that step (0 after
    ``observe`` and ``initial_state``).
    """

    Config = EnsembleConfig
    presets = ENSEMBLE_PRESETS

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, config: EnsembleConfig):
        super().__init__(observation_space, action_space, config)
        self.register_buffer("bootstrap_step", torch.zeros(1, dtype=torch.int64))

    @property
    def members(self) -> int:
        return self.config.members

    def _build_net(self, in_dim: int, out_dim: int) -> nn.Module:
        return EnsembleMLP(self.config.members, in_dim, out_dim, self.config.hidden, self.config.layers)

    def _members_forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (M, N, out)

    def _sample_weights(self, valid: Tensor) -> Tensor:
        if not self.config.bootstrap:
            return valid.float().expand(self.members, -1)
        step = int(self.bootstrap_step)
        self.bootstrap_step += 1
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + step)
        weights = torch.poisson(torch.ones(self.members, valid.shape[0]), generator=generator)
        return weights.to(valid.device) * valid.float()  # (M, N)

    def initial_state(self, batch_size: int) -> State:
        return {**super().initial_state(batch_size), "disagreement": torch.zeros(batch_size, device=self.device)}

    def _state(self, x: Tensor, disagreement: Tensor | None = None) -> State:
        return {"obs": x, "disagreement": x.new_zeros(x.shape[:-1]) if disagreement is None else disagreement}

    def uncertainty(self, state: State, action: Tensor) -> Tensor:
        """Disagreement (B,) of the members about the step ``action`` leads to from ``state``."""
        pred = self._predict(state["obs"], self.encode_action(action))
        return _disagreement(_expected(pred).delta)  # (B,)


def _state_bounds(spec, image_dim: int) -> tuple[Tensor, Tensor]:
    """Per-element bounds (D,) of the flat state: pooled pixels in [0, 1], then the vector parts."""
    low, high = [np.zeros(image_dim)], [np.ones(image_dim)]
    for space in spec.vectors.values():
        if isinstance(space, gym.spaces.Discrete):
            low.append(np.zeros(int(space.n)))
            high.append(np.ones(int(space.n)))
        else:
            low.append(np.broadcast_to(space.low, space.shape).astype(np.float64).ravel())
            high.append(np.broadcast_to(space.high, space.shape).astype(np.float64).ravel())
    as_tensor = lambda parts: torch.as_tensor(np.concatenate(parts), dtype=torch.float32)  # noqa: E731
    return as_tensor(low), as_tensor(high)


def _pick(pred: Prediction, pick: Tensor) -> Prediction:
    """The outcome ``pick`` (M, N) of each member and row of a prediction with several outcomes: (M, N, ...)."""
    index = pick[..., None]  # (M, N, 1)
    delta = pred.delta.gather(2, index[..., None].expand(-1, -1, 1, pred.delta.shape[-1]))[:, :, 0]
    return Prediction(delta, pred.reward.gather(2, index)[..., 0], pred.logit.gather(2, index)[..., 0])


def _expected(pred: Prediction) -> Prediction:
    """The odds-weighted mean (M, N, ...) of a prediction with several outcomes; others as they are."""
    if pred.odds is None:
        return pred
    odds = torch.softmax(pred.odds, dim=-1)  # (M, N, K)
    return Prediction((odds[..., None] * pred.delta).sum(2), (odds * pred.reward).sum(2), (odds * pred.logit).sum(2))


def _disagreement(delta: Tensor) -> Tensor:
    """Std across members (M, N, D), averaged over dimensions -> (N,). (Tensor.std over dim 0 is slow on CPU.)"""
    if delta.shape[0] == 1:
        return delta.new_zeros(delta.shape[1:-1])
    return (delta - delta.mean(0)).square().mean(0).sqrt().mean(-1)

