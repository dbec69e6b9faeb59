"""The recurrent state-space model (RSSM) of Dreamer, with categorical latents.

Hafner et al. 2019, "Learning Latent Dynamics for Planning from Pixels" (PlaNet,
arXiv:1811.04551) introduced the RSSM; Hafner et al. 2021, "Mastering Atari with
Discrete World Models" (DreamerV2, arXiv:2010.02193) made its latent categorical and
balanced its KL; Hafner et al. 2023, "Mastering Diverse Domains through World Models"
(DreamerV3, arXiv:2301.04104) added the uniform mix, free bits on both KL terms,
symlog inputs and targets and the two-hot reward. This file follows V3 where the
two differ.

The state at step t is ``{"deter": h[t], "stoch": z[t]}``: ``h[t] = GRU(h[t-1], in(z[t-1],
a[t]))``; the prior ``p(z[t] | h[t])`` and the posterior ``q(z[t] | h[t], embed(obs[t]))``
are ``stoch`` categoricals of ``classes`` classes mixed with ``unimix`` of the uniform,
sampled one-hot with straight-through gradients. From ``[h, z]`` come the decoded
observation (vectors in symlog space), a two-hot reward over symlog bins and a
continuation; the loss adds V3's balanced KL with free bits (``kl_balance``). Sizes are
scaled for a CPU. Beyond the papers, for vectors: ``normalize_inputs``,
``hold_constant_dims`` and ``delta_vector`` (see ``Config``).

>>> import numpy as np, torch
>>> from gymnasium import spaces
>>> obs_space = spaces.Dict({"image": spaces.Box(0, 255, (64, 64, 3), np.uint8),
...                          "state": spaces.Box(-1, 1, (4,), np.float32)})
>>> model = RSSM(obs_space, spaces.Discrete(3), Config(stoch=4, classes=4, hidden=16, units=16, depth=4))
>>> state = model.initial_state(2)
>>> out = model.imagine(state, torch.tensor([0, 2]), generator=torch.Generator().manual_seed(0))
>>> out.state["stoch"].shape, out.reward.shape, out.terminated.dtype, model.features(out.state).shape
(torch.Size([2, 16]), torch.Size([2]), torch.bool, torch.Size([2, 32]))
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model_zoo.base import Batch, Imagined, Obs, State, WorldModel
from model_zoo.models.config_checks import check_non_negative
from model_zoo.nets import ConvDecoder, ConvEncoder, RunningNorm, mlp, module_key, reconstruction_error, symexp, symlog
from model_zoo.registry import Preset
from model_zoo.spaces import IMAGE_SIZE, ObsSpec

__all__ = [
    "RSSM",
    "Config",
    "KLTerms",
    "categorical_kl",
    "kl_balance",
    "straight_through_sample",
    "symexp",
    "symlog",
    "twohot",
    "unimix_logits",
]

_REWARD_LOSSES = ("twohot", "mse")


@dataclass(frozen=True)
class Config:
    """Hyperparameters of the RSSM (defaults: DreamerV3's latent and losses, scaled sizes; see the module doc)."""

    stoch: int = 32  # categorical latent variables
    classes: int = 32  # classes of each
    hidden: int = 128  # GRU units of the deterministic path (V3 S: 512)
    units: int = 128  # width of the MLPs (V3 S: 512)
    depth: int = 16  # channels of the first conv layer (V3 S: 32)
    vector_hidden: int = 128  # width of the vector encoder and decoder
    unimix: float = 0.01  # uniform mixed into every categorical's probabilities
    temperature: float = 1.0  # imagine samples the prior with logits / temperature; 0 takes each variable's mode
    free_nats: float = 1.0  # KL per step below this (in nats) has no gradient
    dyn_scale: float = 0.5  # weight of KL[sg(posterior) || prior]
    rep_scale: float = 0.1  # weight of KL[posterior || sg(prior)]
    vector_weight: float = 100.0  # a vector element's squared error counts as much as this many pixels'
    reward_loss: str = "twohot"  # "twohot" (symlog two-hot cross-entropy) or "mse" (symlog MSE)
    reward_bins: int = 255  # two-hot bins, evenly spaced in symlog space
    reward_range: float = 20.0  # the bins span [-reward_range, reward_range] in symlog space
    reward_scale: float = 1.0
    cont_scale: float = 1.0
    # vector elements that never changed within a training episode are decoded as their last observed value
    # (carried in the state as "last_obs"); False: the decoder predicts every element, as Dreamer does
    hold_constant_dims: bool = True

    # the encoder reads the vector parts standardised by running statistics of the training data (per-element mean
    # and std, buffers saved with the weights) instead of symlog; the reconstruction targets stay symlog
    normalize_inputs: bool = True

    # the state carries an estimate of the vector part ("last_obs": the observation after observe); imagine moves it by
    # a head's predicted change [features, last_obs, action] -> next - last, and decode returns it (as the zoo's mlp
    # predicts deltas): exact positions stay exact where the decoder, reading the latent, is cells off
    delta_vector: bool = False

    # what a checkpoint saved before a field existed was built with (model_zoo.checkpoint.load)
    SAVED_BEFORE: ClassVar[dict[str, Any]] = {"hold_constant_dims": False, "normalize_inputs": False}

    def __post_init__(self):
        for name in ("stoch", "classes", "hidden", "units", "depth", "vector_hidden"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"Config.{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.reward_bins < 2:
            raise ValueError(f"Config.reward_bins must be at least 2, got {self.reward_bins!r}")
        if not 0.0 <= self.unimix < 1.0:
            raise ValueError(f"Config.unimix must be in [0, 1), got {self.unimix!r}")
        check_non_negative(self, ("temperature", "free_nats", "dyn_scale", "rep_scale", "vector_weight",
                                  "reward_scale", "cont_scale"))
        if not (math.isfinite(self.reward_range) and self.reward_range > 0):
            raise ValueError(f"Config.reward_range must be positive, got {self.reward_range!r}")
        if self.reward_loss not in _REWARD_LOSSES:
            raise ValueError(f"Config.reward_loss must be one of {_REWARD_LOSSES}, got {self.reward_loss!r}")


# --- functions of the papers --------------------------------------------------------


def twohot(x: Tensor, bins: Tensor) -> Tensor:
    """Two-hot encoding (..., K) of values (...) on sorted ``bins`` (K,): weights on the two nearest bins.

    >>> twohot(torch.tensor([0.25, 5.0]), torch.tensor([0.0, 1.0, 2.0])).tolist()
    [[0.75, 0.25, 0.0], [0.0, 0.0, 1.0]]
    """
    k = bins.shape[0]
    x = x.clamp(float(bins[0]), float(bins[-1]))
    above = torch.searchsorted(bins, x.contiguous()).clamp(1, k - 1)  # first bin >= x, at least 1
    below = above - 1
    weight = ((x - bins[below]) / (bins[above] - bins[below])).clamp(0.0, 1.0)  # weight of the upper bin
    out = torch.zeros(x.shape + (k,), dtype=x.dtype, device=x.device)
    out.scatter_(-1, below.unsqueeze(-1), (1.0 - weight).unsqueeze(-1))
    out.scatter_add_(-1, above.unsqueeze(-1), weight.unsqueeze(-1))
    return out


def unimix_logits(logits: Tensor, unimix: float) -> Tensor:
    """Log-probabilities of ``(1 - unimix) softmax(logits) + unimix / K`` over the last axis."""
    if unimix == 0:
        return torch.log_softmax(logits, dim=-1)
    probs = torch.softmax(logits, dim=-1)
    return torch.log((1.0 - unimix) * probs + unimix / logits.shape[-1])


def straight_through_sample(logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """A one-hot sample (..., K) of the categoricals ``logits`` (..., K), with the gradient of their probabilities.

    The forward value is exactly one-hot; the backward pass sees ``softmax(logits)``
    (``one_hot + probs - sg(probs)``, Bengio et al. 2013's straight-through estimator
    as DreamerV2 uses it). One uniform draw per categorical, from ``generator``.

    >>> sample = straight_through_sample(torch.zeros(2, 3, 4), torch.Generator().manual_seed(0))
    >>> sample.shape, sample.sum(-1).tolist()
    (torch.Size([2, 3, 4]), [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    """
    probs = torch.softmax(logits, dim=-1)  # (..., K)
    u = torch.rand(probs.shape[:-1] + (1,), generator=generator, device=probs.device, dtype=probs.dtype)
    index = (probs.detach().cumsum(-1) < u).sum(-1).clamp_(max=probs.shape[-1] - 1)  # (...) inverse-CDF draw
    one_hot = F.one_hot(index, probs.shape[-1]).to(probs.dtype)
    return one_hot + (probs - probs.detach())  # exactly one-hot forward: x - x is 0


def categorical_kl(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """KL[p || q] of categoricals given as logits (..., S, K), summed over the S variables: (...)."""
    log_p, log_q = torch.log_softmax(p_logits, -1), torch.log_softmax(q_logits, -1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=(-2, -1))


class KLTerms(NamedTuple):
    """``kl_balance``'s result, each (...): the loss and the two KL values (equal in value, not in gradient)."""

    loss: Tensor
    dyn: Tensor  # KL[sg(posterior) || prior]: trains the prior
    rep: Tensor  # KL[posterior || sg(prior)]: trains the posterior (the representation)


def kl_balance(post_logits: Tensor, prior_logits: Tensor, dyn_scale: float = 0.5, rep_scale: float = 0.1,
               free_nats: float = 1.0) -> KLTerms:
    """DreamerV3's balanced KL with free bits, per step: logits (..., S, K) -> ``KLTerms`` of (...).

    ``loss = dyn_scale * max(free_nats, dyn) + rep_scale * max(free_nats, rep)``: each
    term is clipped from below, so a step whose KL is under ``free_nats`` nats gives
    no gradient at all.

    >>> post, prior = torch.tensor([[[2.0, 0.0]]]), torch.zeros(1, 1, 2)
    >>> terms = kl_balance(post, prior, free_nats=0.0)
    >>> round(float(terms.dyn), 4), round(float(terms.loss), 4)
    (0.3278, 0.1967)
    """
    dyn = categorical_kl(post_logits.detach(), prior_logits)
    rep = categorical_kl(post_logits, prior_logits.detach())
    loss = dyn_scale * dyn.clamp(min=free_nats) + rep_scale * rep.clamp(min=free_nats)
    return KLTerms(loss, dyn, rep)


# --- networks -----------------------------------------------------------------------


def _dreamer_mlp(in_dim: int, out_dim: int, hidden: int) -> nn.Sequential:
    """Dreamer's MLP: one hidden layer (Linear, LayerNorm, SiLU), then a linear output."""
    return mlp(in_dim, out_dim, hidden, 1, act=nn.SiLU, norm=nn.LayerNorm)


class Encoder(nn.Module):
    """An observation (leading dims ...) -> (..., out_dim): a conv stack per image part, an MLP on the vector part
    (symlog, or as the caller standardised it)."""

    def __init__(self, spec: ObsSpec, depth: int, vector_hidden: int):
        super().__init__()
        self.spec = spec
        self.convs = nn.ModuleDict({module_key(k): ConvEncoder(s[-1], depth) for k, s in spec.images.items()})
        self.vector = None
        if spec.vector_dim:
            self.vector = nn.Sequential(nn.Linear(spec.vector_dim, vector_hidden), nn.LayerNorm(vector_hidden),
                                        nn.SiLU(), nn.Linear(vector_hidden, vector_hidden), nn.SiLU())
        self.out_dim = sum(c.out_dim for c in self.convs.values()) + (vector_hidden if spec.vector_dim else 0)

    def forward(self, obs: Obs, vector: Tensor | None = None) -> Tensor:
        """``vector``: the vector part as the encoder should read it (default: symlog of the observation's)."""
        feats, lead = [], None
        for key in self.spec.image_keys:
            x = self.spec.image(obs, key)  # (..., C, 64, 64)
            lead = x.shape[:-3]
            feats.append(self.convs[module_key(key)](x.reshape((-1,) + tuple(x.shape[-3:]))))  # (N, conv out)
        if self.vector is not None:
            v = symlog(self.spec.vector(obs)) if vector is None else vector  # (..., V)
            lead = v.shape[:-1]
            feats.append(self.vector(v.reshape(-1, v.shape[-1])))  # (N, vector_hidden)
        return torch.cat(feats, dim=-1).reshape(tuple(lead) + (-1,))  # (..., out_dim)


class Decoder(nn.Module):
    """Features (..., F) -> image logits per part (..., C, 64, 64) and the symlog vector (..., V) or None."""

    def __init__(self, spec: ObsSpec, in_dim: int, depth: int, vector_hidden: int):
        super().__init__()
        self.spec = spec
        self.deconvs = nn.ModuleDict({module_key(k): ConvDecoder(in_dim, s[-1], depth) for k, s in spec.images.items()})
        self.vector = _dreamer_mlp(in_dim, spec.vector_dim, vector_hidden) if spec.vector_dim else None

    def forward(self, feat: Tensor, vector: bool = True) -> tuple[dict[str, Tensor], Tensor | None]:
        """``vector=False`` skips the vector head (None in its place), for callers that do not use it."""
        lead, flat = feat.shape[:-1], feat.reshape(-1, feat.shape[-1])  # (N, F)
        images = {k: self.deconvs[module_key(k)](flat).reshape(tuple(lead) + (-1, IMAGE_SIZE, IMAGE_SIZE))
                  for k in self.spec.image_keys}
        out = self.vector(flat).reshape(tuple(lead) + (-1,)) if vector and self.vector is not None else None
        return images, out


# --- the world model ----------------------------------------------------------------


# campusnav-state: delta_vector keeps the agent's cell exact (leaderboard precision; docs/results/preset_checks.md)
PRESETS = {"campusnav-state": Preset(config={"delta_vector": True}, lr=1e-3), "campusnav-pixels": Preset()}
"""Tuned settings by data kind (``model_zoo.make(..., preset=name)``; ``fit(..., lr=preset.lr)``)."""


class RSSM(WorldModel):
    """Dreamer's RSSM. State: ``{"deter": (B, hidden), "stoch": (B, stoch * classes)}`` (one-hot per variable)."""

    Config = Config
    presets = PRESETS

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, config: Config | None = None):
        super().__init__(observation_space, action_space, config if config is not None else Config())
        cfg = self.config
        latent, feat = cfg.stoch * cfg.classes, cfg.hidden + cfg.stoch * cfg.classes
        self.encoder = Encoder(self.spec, cfg.depth, cfg.vector_hidden)
        self.img_in = nn.Sequential(nn.Linear(latent + self.spec.action_dim, cfg.units), nn.LayerNorm(cfg.units),
                                    nn.SiLU())
        self.gru = nn.GRUCell(cfg.units, cfg.hidden)
        self.prior_net = _dreamer_mlp(cfg.hidden, latent, cfg.units)
        self.post_net = _dreamer_mlp(cfg.hidden + self.encoder.out_dim, latent, cfg.units)
        self.decoder = Decoder(self.spec, feat, cfg.depth, cfg.vector_hidden)
        self.vector_stats = None
        if cfg.normalize_inputs and self.spec.vector_dim:  # identity (mean 0, std 1) until the first training batch
            self.vector_stats = RunningNorm(self.spec.vector_dim)
        reward_out = cfg.reward_bins if cfg.reward_loss == "twohot" else 1
        self.holds = bool(cfg.hold_constant_dims and self.spec.vector_dim)
        self.deltas = bool(cfg.delta_vector and self.spec.vector_dim)
        self.tracks = self.holds or self.deltas  # the state has "last_obs"
        # with delta_vector the heads also read the observation estimates before and after the step
        head_in = feat + 2 * self.spec.vector_dim if self.deltas else feat
        self.reward_head = _dreamer_mlp(head_in, reward_out, cfg.units)
        self.cont_head = _dreamer_mlp(head_in, 1, cfg.units)
        with torch.no_grad():  # V3: the reward head starts by predicting 0
            self.reward_head[-1].weight.zero_()
            self.reward_head[-1].bias.zero_()
        bins = torch.linspace(-cfg.reward_range, cfg.reward_range, cfg.reward_bins)
        self.register_buffer("bins", bins, persistent=False)  # derived from the config: not in checkpoints
        if self.deltas:
            delta_in = feat + self.spec.vector_dim + self.spec.action_dim
            self.delta_head = _dreamer_mlp(delta_in, self.spec.vector_dim, cfg.units)
            self.delta_stats = RunningNorm(self.spec.vector_dim)  # of the changes between consecutive steps
            with torch.no_grad():
                self.delta_head[-1].weight.zero_()
                self.delta_head[-1].bias.zero_()
        if self.holds:  # learnt from the training data in ``loss``, saved with the weights
            # pairs of consecutive steps of one episode seen in training; whether each vector element ever changed
            self.register_buffer("vector_pairs", torch.zeros(1, dtype=torch.int64))
            self.register_buffer("vector_changed", torch.zeros(self.spec.vector_dim, dtype=torch.bool))

    # --- pieces -------------------------------------------------------------------

    def _vector_in(self, vector: Tensor) -> Tensor | None:
        """The vector part (..., V) as the encoder reads it with ``normalize_inputs``; None: the encoder's symlog."""
        if self.vector_stats is None:
            return None
        return self.vector_stats.normalize(vector)

    def _last_in(self, vector: Tensor) -> Tensor:
        """An observation estimate (..., V) as the change head reads it: standardised, or symlog'd."""
        return self.vector_stats.normalize(vector) if self.vector_stats is not None else symlog(vector)

    def _logits(self, raw: Tensor) -> Tensor:
        """Flat network output (..., S * K) -> unimix log-probabilities (..., S, K)."""
        cfg = self.config
        return unimix_logits(raw.unflatten(-1, (cfg.stoch, cfg.classes)), cfg.unimix)

    def img_step(self, deter: Tensor, stoch: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """One step of the deterministic path: (h (B, H), z (B, S*K), encoded action (B, A)) -> (h', prior logits)."""
        deter = self.gru(self.img_in(torch.cat([stoch, action], dim=-1)), deter)  # (B, H)
        return deter, self._logits(self.prior_net(deter))  # (B, H), (B, S, K)

    def posterior(self, deter: Tensor, embed: Tensor) -> Tensor:
        """Posterior logits (..., S, K) from h (..., H) and the encoded observation (..., E)."""
        return self._logits(self.post_net(torch.cat([deter, embed], dim=-1)))

    @property
    def held(self) -> Tensor:
        """(vector_dim,) bool: the vector elements ``decode`` holds at their last observed value.

        Those that never changed between consecutive steps of a training episode; none
        before the first training pair, and none with ``hold_constant_dims=False``.
        """
        if not self.holds:
            return torch.zeros(self.spec.vector_dim, dtype=torch.bool, device=self.device)
        return ~self.vector_changed & (self.vector_pairs > 0)

    @torch.no_grad()
    def _record_changes(self, vector: Tensor, first: Tensor) -> None:
        """Marks the elements of ``vector`` (B, T, V) that differ from the step before within an episode."""
        same_episode = ~first[:, 1:]  # (B, T - 1): step t + 1 continues the episode of step t
        changed = (vector[:, 1:] != vector[:, :-1]) & same_episode[..., None]  # (B, T - 1, V)
        self.vector_changed |= changed.flatten(0, 1).any(0)
        self.vector_pairs += same_episode.sum()

    def predict_reward(self, feat: Tensor) -> Tensor:
        """The reward head's expected reward (...) from features (..., F)."""
        out = self.reward_head(feat)
        if self.config.reward_loss == "mse":
            return symexp(out[..., 0])
        return symexp((torch.softmax(out, dim=-1) * self.bins).sum(-1))

    def _reward_loss(self, feat: Tensor, reward: Tensor) -> Tensor:
        out = self.reward_head(feat)
        target = symlog(reward)
        if self.config.reward_loss == "mse":
            return (out[..., 0] - target).square()
        return -(twohot(target, self.bins) * torch.log_softmax(out, dim=-1)).sum(-1)  # (...) cross-entropy

    # --- the interface ---------------------------------------------------------------

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """Reconstruction + reward + continuation + balanced KL, averaged over the (B, T) steps; (scalar, metrics)."""
        cfg, spec = self.config, self.spec
        B, T = batch.shape
        first = self._is_first(batch.is_first, (B, T)).clone()
        first[:, 0] = True  # each window starts from the zero state
        obs = spec.to_torch(batch.obs, self.device)
        observed = spec.vector(obs)  # (B, T, V)
        if self.training and self.holds:
            self._record_changes(observed, first)
        if self.training and self.vector_stats is not None:
            self.vector_stats.update(observed.flatten(0, -2))  # (B * T, V)
        embed = self.encoder(obs, self._vector_in(observed))  # (B, T, E)
        action = self._action(batch.action, first)  # (B, T, A)
        deter = embed.new_zeros(B, cfg.hidden)
        stoch = embed.new_zeros(B, cfg.stoch * cfg.classes)
        deters, stochs, posts, priors = [], [], [], []
        for t in range(T):
            reset = first[:, t, None]
            deter, stoch = deter.masked_fill(reset, 0.0), stoch.masked_fill(reset, 0.0)
            deter, prior = self.img_step(deter, stoch, action[:, t])  # (B, H), (B, S, K)
            post = self.posterior(deter, embed[:, t])  # (B, S, K)
            stoch = straight_through_sample(post).flatten(-2)  # (B, S*K)
            deters.append(deter)
            stochs.append(stoch)
            posts.append(post)
            priors.append(prior)
        feat = torch.cat([torch.stack(deters, 1), torch.stack(stochs, 1)], dim=-1)  # (B, T, F)
        kl = kl_balance(torch.stack(posts, 1), torch.stack(priors, 1), cfg.dyn_scale, cfg.rep_scale, cfg.free_nats)

        images, vector = self.decoder(feat)
        target = symlog(observed) if vector is not None else None  # the vector part is decoded in symlog space
        recon, metrics = reconstruction_error(spec, images, vector, obs, cfg.vector_weight, target)  # (B, T)

        reward = torch.as_tensor(batch.reward, device=self.device).float()
        terminated = torch.as_tensor(batch.terminated, device=self.device).float()
        valid = (~first).float()  # a reward is predicted where the step has a predecessor
        if self.deltas:
            prev = torch.cat([observed[:, :1], observed[:, :-1]], dim=1)  # (B, T, V) the step before
            prev = torch.where(first[..., None], observed, prev)  # an episode's first step has none: itself
            change = observed - prev
            if self.training:
                self.delta_stats.update(change[~first])
            prev_in = self._last_in(prev)
            pred = self.delta_head(torch.cat([feat, prev_in, action], dim=-1))  # (B, T, V)
            err = (pred - self.delta_stats.normalize(change)).square().sum(-1)  # (B, T), standardised
            recon = recon + err * valid
            metrics["delta_mse"] = (err * valid).sum() / valid.sum().clamp(min=1.0) / change.shape[-1]
            feat = torch.cat([feat, self._last_in(observed), prev_in], dim=-1)  # what the heads read
        reward_loss = (self._reward_loss(feat, reward) * valid).sum() / valid.sum().clamp(min=1.0)
        cont_logit = self.cont_head(feat)[..., 0]  # (B, T)
        cont_loss = F.binary_cross_entropy_with_logits(cont_logit, 1.0 - terminated)
        total = recon.mean() + kl.loss.mean() + cfg.reward_scale * reward_loss + cfg.cont_scale * cont_loss
        with torch.no_grad():
            reward_mae = ((self.predict_reward(feat) - reward).abs() * valid).sum() / valid.sum().clamp(min=1.0)
        metrics |= dict(loss=total, recon=recon.mean(), kl_dyn=kl.dyn.mean(), kl_rep=kl.rep.mean(),
                        kl_loss=kl.loss.mean(), reward_loss=reward_loss, reward_mae=reward_mae, cont_loss=cont_loss)
        values = torch.stack([v.detach().float() for v in metrics.values()]).tolist()  # one device sync
        return total, dict(zip(metrics, values, strict=True))

    def initial_state(self, batch_size: int) -> State:
        """Zeros: (B, hidden) deter, (B, stoch * classes) stoch; with ``hold_constant_dims``, (B, V) last_obs."""
        cfg, device = self.config, self.device
        state = {"deter": torch.zeros(batch_size, cfg.hidden, device=device),
                 "stoch": torch.zeros(batch_size, cfg.stoch * cfg.classes, device=device)}
        if self.tracks:
            state["last_obs"] = torch.zeros(batch_size, self.spec.vector_dim, device=device)
        return state

    def observe(self, state: State, action: Tensor, obs: Obs, is_first: Tensor) -> State:
        """Advances h with (z, action) (from the zero state where ``is_first``); z = the posterior's mode."""
        B = state["deter"].shape[0]
        first = self._is_first(is_first, (B,))
        deter = state["deter"].masked_fill(first[:, None], 0.0)
        stoch = state["stoch"].masked_fill(first[:, None], 0.0)
        deter, _ = self.img_step(deter, stoch, self._action(action, first))  # (B, H)
        obs = self.spec.to_torch(obs, self.device)
        observed = self.spec.vector(obs)  # (B, V)
        post = self.posterior(deter, self.encoder(obs, self._vector_in(observed)))  # (B, S, K)
        stoch = F.one_hot(post.argmax(-1), self.config.classes).to(deter.dtype).flatten(-2)  # (B, S*K)
        new = {"deter": deter, "stoch": stoch}
        if self.tracks:
            new["last_obs"] = observed.to(deter.dtype)  # (B, V)
        return new

    def imagine(self, state: State, action: Tensor, do: Mapping[str, Any] | None = None,
                generator: torch.Generator | None = None) -> Imagined:
        """Advances h with (z, action) and samples z from the prior (one uniform draw per variable).

        The prior is sampled at ``config.temperature`` (0: each variable's most likely
        class, no draw). Reward is the head's expectation; continuation is the head's
        probability (DreamerV3 weights imagined returns by it), and terminated is that
        probability below 1/2 (a threshold, for the dream envs). ``last_obs`` is carried over unchanged, or, with
        ``delta_vector``, moved by the change head (its held elements unchanged).
        """
        self.check_do(do)
        action = self._action(action)  # (B, A)
        deter, prior = self.img_step(state["deter"], state["stoch"], action)
        tau = self.config.temperature
        if tau == 0:
            stoch = F.one_hot(prior.argmax(-1), self.config.classes).to(deter.dtype).flatten(-2)  # (B, S*K)
        else:
            stoch = straight_through_sample(prior / tau if tau != 1 else prior, generator).flatten(-2)  # (B, S*K)
        feat = torch.cat([deter, stoch], dim=-1)  # (B, F)
        new = {"deter": deter, "stoch": stoch}
        if "last_obs" in state:
            last = state["last_obs"]
            new["last_obs"] = last
            if self.deltas:
                before = self._last_in(last)
                moved = last + self.delta_stats.denormalize(self.delta_head(torch.cat([feat, before, action], dim=-1)))
                new["last_obs"] = torch.where(self.held, last, moved) if self.holds else moved
                feat = torch.cat([feat, self._last_in(new["last_obs"]), before], dim=-1)  # what the heads read
        reward = self.predict_reward(feat)
        cont_logit = self.cont_head(feat)[..., 0]  # (B,)
        return Imagined(new, reward, cont_logit < 0.0, torch.sigmoid(cont_logit))

    @torch.no_grad()
    def decode(self, state: State) -> Obs:
        """Env-format observation (uint8 images, vectors symexp'd and clipped into their bounds).

        Vector elements in ``held`` are the state's ``last_obs`` (where it has one), not the decoder's.
        """
        estimate = self.deltas and "last_obs" in state  # the vector is the state's estimate: no decoder needed
        images, vector = self.decoder(torch.cat([state["deter"], state["stoch"]], dim=-1), vector=not estimate)
        if estimate:
            vector = state["last_obs"].to(state["deter"].dtype)
        elif vector is not None:
            vector = symexp(vector)
            if "last_obs" in state and self.holds:
                vector = torch.where(self.held, state["last_obs"].to(vector.dtype), vector)
        return self.spec.assemble({k: torch.sigmoid(v) for k, v in images.items()}, vector)

    def features(self, state: State) -> Tensor:
        """(B, F): Dreamer's [deter, stoch]; with ``delta_vector``, the standardised estimate appended."""
        if self.deltas:
            return torch.cat([state["deter"], state["stoch"], self._last_in(state["last_obs"])], dim=-1)
        return torch.cat([state["deter"], state["stoch"]], dim=-1)
