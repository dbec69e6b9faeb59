"""An actor-critic that learns inside any world model's imagination, as Dreamer's does.

Hafner et al. 2023, "Mastering Diverse Domains through World Models" (DreamerV3,
arXiv:2301.04104), section "Actor Critic Learning"; the same scheme as DreamerV2
(arXiv:2010.02193) with V3's return normalisation. From start states filtered out
of real data, the actor imagines ``horizon`` steps with ``model.imagine``; the
critic scores every imagined state; the targets are lambda-returns (``lambda_returns``)
bootstrapped with a slow (EMA) copy of the critic. Continuation is the model's
continuation probability (``Imagined.continuation``, as V3 weights by it; ``1 - terminated``
for a model that only decides), so an imagined ending counts as likely as the model
thinks it. Each state's loss weight is V3's ``gamma^t`` times the product of the
continuations before it (``loss_weights``). The actor follows REINFORCE with advantages
``(R - v) / max(1, S)``, where ``S`` is an EMA of the 5th-to-95th percentile range
of the returns (``ReturnNormalizer``), plus an entropy bonus; the critic regresses
the returns.

It is generic over ``model_zoo.base.WorldModel``: it reads ``features(state)`` and
calls ``imagine(state, action, generator=...)``, nothing else, and no gradient flows
through the model (REINFORCE, as V3 uses for discrete and continuous actions alike).

Choices, against the paper: the critic is a plain regression on the returns (V3:
a symlog two-hot critic with a regulariser toward its slow copy), and the MLPs are
smaller (2 x 256 units, V3 S: 2 x 512); learning rates are higher (3e-4) for short
CPU budgets. Box actions are a normal with a tanh mean, sampled and clipped into
[-1, 1], then scaled into the space's bounds (V3's bounded normal); Discrete actions
a categorical with 1 % uniform mix.

>>> import numpy as np, torch
>>> from gymnasium import spaces
>>> ac = ActorCritic(4, spaces.Discrete(3), ActorCriticConfig(hidden=16))
>>> ac.act(torch.zeros(2, 4), generator=torch.Generator().manual_seed(0)).shape
torch.Size([2])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from model_zoo.nets import mlp

__all__ = ["ActorCritic", "ActorCriticConfig", "ReturnNormalizer", "lambda_returns", "loss_weights", "start_states"]

State = dict[str, Tensor]


@dataclass(frozen=True)
class ActorCriticConfig:
    """Hyperparameters of the imagination actor-critic (V3's where not said otherwise)."""

    horizon: int = 15  # imagined steps per update
    gamma: float = 0.99  # discount (V3: 1 - 1/333)
    lam: float = 0.95  # lambda of the returns
    hidden: int = 256  # width of the actor's and the critic's MLPs (V3 S: 512)
    layers: int = 2  # hidden layers of each
    actor_lr: float = 3e-4  # (V3: 3e-5)
    critic_lr: float = 3e-4  # (V3: 3e-5)
    entropy: float = 3e-4  # weight of the actor's entropy bonus
    unimix: float = 0.01  # uniform mixed into a Discrete actor's probabilities
    return_decay: float = 0.99  # EMA decay of the returns' percentile range
    slow_critic_decay: float = 0.98  # EMA decay of the slow critic that bootstraps the returns
    grad_clip: float = 100.0  # largest gradient norm of each network
    min_std: float = 0.1  # bounds of a Box actor's std (in [-1, 1] units)
    max_std: float = 1.0

    def __post_init__(self):
        for name in ("horizon", "hidden", "layers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"ActorCriticConfig.{name} must be a positive integer, got {getattr(self, name)!r}")
        for name in ("gamma", "lam", "return_decay", "slow_critic_decay"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"ActorCriticConfig.{name} must be in [0, 1], got {getattr(self, name)!r}")
        for name in ("actor_lr", "critic_lr", "entropy", "grad_clip", "min_std", "max_std"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"ActorCriticConfig.{name} must be finite and >= 0, got {value!r}")
        if not 0.0 <= self.unimix < 1.0:
            raise ValueError(f"ActorCriticConfig.unimix must be in [0, 1), got {self.unimix!r}")
        if not 0 < self.min_std <= self.max_std:
            raise ValueError(f"ActorCriticConfig needs 0 < min_std <= max_std, got {self.min_std}, {self.max_std}")


def lambda_returns(reward: Tensor, cont: Tensor, value: Tensor, gamma: float, lam: float) -> Tensor:
    """TD(lambda) returns of an imagined trajectory, (H, N) for the states 0..H-1.

    ``reward[t]`` and ``cont[t]`` (H, N) belong to the step from state t to state t+1
    (reward received, 1 - terminated on arrival); ``value`` (H+1, N) scores states
    0..H. ``R[t] = reward[t] + gamma * cont[t] * ((1 - lam) * value[t+1] + lam * R[t+1])``
    with ``R[H] = value[H]``.

    >>> lambda_returns(torch.tensor([[1.0], [2.0]]), torch.ones(2, 1), torch.tensor([[0.0], [10.0], [20.0]]),
    ...                gamma=1.0, lam=0.5).flatten().tolist()
    [17.0, 22.0]
    """
    horizon = reward.shape[0]
    if cont.shape != reward.shape or value.shape != (horizon + 1,) + tuple(reward.shape[1:]):
        raise ValueError(f"lambda_returns needs reward and cont (H, ...) and value (H+1, ...), got "
                         f"{tuple(reward.shape)}, {tuple(cont.shape)}, {tuple(value.shape)}")
    out = []
    last = value[-1]
    for t in reversed(range(horizon)):
        last = reward[t] + gamma * cont[t] * ((1.0 - lam) * value[t + 1] + lam * last)  # (N,)
        out.append(last)
    return torch.stack(out[::-1])  # (H, N)


def loss_weights(cont: Tensor, gamma: float) -> Tensor:
    """Weights (H, N) of the imagined states 0..H-1 in the actor's and critic's losses, from ``cont`` (H, N).

    DreamerV3's ``cumprod(gamma * cont) / gamma``: state t counts ``gamma^t`` times the
    probability that the trajectory has not ended before it, as the returns discount it.

    >>> loss_weights(torch.tensor([[1.0], [0.5], [1.0]]), 0.5).flatten().tolist()
    [1.0, 0.5, 0.125]
    """
    scaled = torch.cat([torch.ones_like(cont[:1]), gamma * cont[:-1]])  # (H, N)
    return torch.cumprod(scaled, dim=0)


class ReturnNormalizer(nn.Module):
    """``scale = max(1, S)``, S an EMA of the ``high`` minus ``low`` percentile of the returns (V3: 95th - 5th).

    Dividing advantages by it leaves small returns alone (no noise amplification)
    and shrinks large ones, so one entropy weight fits sparse and dense rewards.

    >>> norm = ReturnNormalizer(decay=0.0)
    >>> norm.update(torch.linspace(0, 100, 101))
    >>> round(float(norm.scale), 6)
    90.0
    """

    def __init__(self, decay: float = 0.99, low: float = 0.05, high: float = 0.95, floor: float = 1.0):
        super().__init__()
        self.decay, self.low, self.high, self.floor = decay, low, high, floor
        self.register_buffer("range", torch.zeros(()))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, returns: Tensor) -> None:
        """Merges the percentile range of ``returns`` (any shape) into the EMA (the first call sets it)."""
        flat = returns.detach().float().flatten()
        q = torch.quantile(flat, torch.tensor([self.low, self.high], device=flat.device))
        spread = q[1] - q[0]
        self.range.copy_(spread if int(self.count) == 0 else self.decay * self.range + (1 - self.decay) * spread)
        self.count += 1

    @property
    def scale(self) -> Tensor:
        return self.range.clamp(min=self.floor)


@torch.no_grad()
def start_states(model: Any, batch: Any) -> State:
    """Every step of a real ``Batch`` (B, T) filtered through ``model.observe``: a state of B * T' rows.

    Steps whose observation ends an episode are left out (nothing follows them), so
    T' counts the others; imagination starts from each of them. The window's first step
    is filtered as an episode start (no previous action), as the models' ``loss`` does:
    the zero state never meets a real previous action in training.
    """
    B, T = batch.shape
    state = model.initial_state(B)
    is_first = torch.as_tensor(batch.is_first).bool().clone()
    is_first[:, 0] = True
    obs = batch.obs
    kept: list[State] = []
    for t in range(T):
        obs_t = {k: v[:, t] for k, v in obs.items()} if isinstance(obs, dict) else obs[:, t]
        state = model.observe(state, batch.action[:, t], obs_t, is_first[:, t])
        alive = ~torch.as_tensor(batch.terminated[:, t], device=state[next(iter(state))].device).bool()
        kept.append({k: v[alive] for k, v in state.items()})
    return {k: torch.cat([s[k] for s in kept]) for k in kept[0]}


class ActorCritic(nn.Module):
    """An actor and a critic on world-model features, trained in imagination (see the module docstring)."""

    def __init__(self, feature_dim: int, action_space: gym.Space, config: ActorCriticConfig | None = None):
        super().__init__()
        self.config = config = config if config is not None else ActorCriticConfig()
        self.action_space = action_space
        if isinstance(action_space, spaces.Discrete):
            self.discrete, out = True, int(action_space.n)
        elif isinstance(action_space, spaces.Box) and np.issubdtype(action_space.dtype, np.floating):
            self.discrete, out = False, 2 * int(np.prod(action_space.shape))
            low, high = np.broadcast_to(action_space.low, action_space.shape), np.broadcast_to(
                action_space.high, action_space.shape)
            if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
                raise ValueError(f"ActorCritic needs a bounded Box action space, got {action_space}")
            self.register_buffer("low", torch.as_tensor(low.flatten(), dtype=torch.float32), persistent=False)
            self.register_buffer("high", torch.as_tensor(high.flatten(), dtype=torch.float32), persistent=False)
        else:
            raise TypeError(f"ActorCritic takes Discrete or float Box actions, got {action_space}")
        self.feature_dim = int(feature_dim)
        self.actor = mlp(self.feature_dim, out, config.hidden, config.layers, nn.SiLU, nn.LayerNorm)
        self.critic = mlp(self.feature_dim, 1, config.hidden, config.layers, nn.SiLU, nn.LayerNorm)
        self.slow_critic = mlp(self.feature_dim, 1, config.hidden, config.layers, nn.SiLU, nn.LayerNorm)
        self.slow_critic.load_state_dict(self.critic.state_dict())
        self.slow_critic.requires_grad_(False)
        self.normalizer = ReturnNormalizer(config.return_decay)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr, eps=1e-5)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr, eps=1e-5)

    # --- the policy --------------------------------------------------------------------

    def dist(self, features: Tensor) -> torch.distributions.Distribution:
        """The actor's distribution over raw actions for features (N, F): Categorical, or Normal (N, A) in [-1, 1]."""
        out = self.actor(features)
        if self.discrete:
            probs = torch.softmax(out, -1)
            probs = (1.0 - self.config.unimix) * probs + self.config.unimix / probs.shape[-1]
            return torch.distributions.Categorical(probs=probs)
        mean, std = out.chunk(2, dim=-1)  # (N, A) each
        std = self.config.min_std + (self.config.max_std - self.config.min_std) * torch.sigmoid(std + 2.0)
        return torch.distributions.Normal(torch.tanh(mean), std)

    def _sample(self, dist: torch.distributions.Distribution, generator: torch.Generator | None) -> Tensor:
        if self.discrete:
            probs = dist.probs  # (N, K)
            u = torch.rand(probs.shape[:-1] + (1,), generator=generator, device=probs.device)
            return (probs.cumsum(-1) < u).sum(-1).clamp_(max=probs.shape[-1] - 1)  # (N,) inverse-CDF draw
        noise = torch.randn(dist.mean.shape, generator=generator, device=dist.mean.device)
        return dist.mean + dist.stddev * noise  # (N, A)

    def to_env(self, raw: Tensor) -> Tensor:
        """Raw actions -> the action space's format: int64 (N,) ids, or float (N, *shape) inside the bounds."""
        if self.discrete:
            return raw.long() + int(self.action_space.start)
        scaled = self.low + (raw.clamp(-1.0, 1.0) + 1.0) * 0.5 * (self.high - self.low)  # (N, A)
        return scaled.reshape((raw.shape[0],) + tuple(self.action_space.shape))

    @torch.no_grad()
    def act(self, features: Tensor, sample: bool = True, generator: torch.Generator | None = None) -> Tensor:
        """Actions for features (N, F) in the action space's format; ``sample=False`` takes the most likely."""
        features = torch.as_tensor(features, dtype=torch.float32, device=self._device())
        dist = self.dist(features)
        if sample:
            raw = self._sample(dist, generator)
        else:
            raw = dist.probs.argmax(-1) if self.discrete else dist.mean
        return self.to_env(raw)

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    # --- learning in imagination -------------------------------------------------------------

    @torch.no_grad()
    def imagine(self, model: Any, start: State, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Rolls the actor out ``horizon`` steps in ``model`` from ``start`` (N rows): features, raw actions,
        rewards and continuation probabilities, (H+1, N, F), (H, N, ...), (H, N), (H, N)."""
        state, feats, raws, rewards, conts = start, [model.features(start)], [], [], []
        for _ in range(self.config.horizon):
            raw = self._sample(self.dist(feats[-1]), generator)
            out = model.imagine(state, self.to_env(raw), generator=generator)
            state = out.state
            feats.append(model.features(state))
            raws.append(raw)
            rewards.append(out.reward.float())
            conts.append(out.continuation.float())
        return {"features": torch.stack(feats), "actions": torch.stack(raws), "reward": torch.stack(rewards),
                "cont": torch.stack(conts)}

    def update(self, model: Any, start: State, generator: torch.Generator | None = None) -> dict[str, float]:
        """One actor and one critic step on a batch of imagined trajectories from ``start``; returns metrics."""
        cfg = self.config
        traj = self.imagine(model, start, generator)
        feats = traj["features"]  # (H+1, N, F)
        with torch.no_grad():
            slow = self.slow_critic(feats)[..., 0]  # (H+1, N)
            returns = lambda_returns(traj["reward"], traj["cont"], slow, cfg.gamma, cfg.lam)  # (H, N)
            weight = loss_weights(traj["cont"], cfg.gamma)  # (H, N) weight of state t
            self.normalizer.update(returns)
            scale = self.normalizer.scale

        value = self.critic(feats[:-1])[..., 0]  # (H, N)
        critic_loss = (weight * (value - returns).square()).mean()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.grad_clip)
        self.critic_opt.step()

        dist = self.dist(feats[:-1].flatten(0, 1))  # (H * N) batch
        log_prob = dist.log_prob(traj["actions"].flatten(0, 1))
        entropy = dist.entropy()
        if not self.discrete:
            log_prob, entropy = log_prob.sum(-1), entropy.sum(-1)
        advantage = ((returns - value.detach()) / scale).flatten()  # (H * N)
        actor_loss = -(weight.flatten() * (log_prob * advantage + cfg.entropy * entropy)).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        nn.utils.clip_grad_norm_(self.actor.parameters(), cfg.grad_clip)
        self.actor_opt.step()

        with torch.no_grad():
            for slow_p, p in zip(self.slow_critic.parameters(), self.critic.parameters(), strict=True):
                slow_p.lerp_(p, 1.0 - cfg.slow_critic_decay)
        return {"actor_loss": float(actor_loss.detach()), "critic_loss": float(critic_loss.detach()),
                "imagined_return": float(returns[0].mean()), "imagined_reward": float(traj["reward"].mean()),
                "entropy": float(entropy.mean().detach()), "return_scale": float(scale),
                "value": float(value.mean().detach())}

    def extra_repr(self) -> str:
        return f"feature_dim={self.feature_dim}, action_space={self.action_space}, config={self.config}"
