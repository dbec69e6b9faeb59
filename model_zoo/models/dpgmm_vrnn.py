"""A variational recurrent world model with a Dirichlet-process mixture prior, attention slots and gradient balancing.

A VRNN (Chung et al., 2015, "A Recurrent Latent Variable Model for Sequential Data",
arXiv:1506.02216) for video with actions, in five parts:

1. Perception (``model_zoo.nets.perceiver``): VQ tokens of the frame, read by a
   Perceiver (Jaegle et al., 2021, arXiv:2103.03206) into a context vector ``ctx``.
2. Representation: a posterior ``q(z_t | frame_t, ctx_t, maps_t)`` and a truncated
   Dirichlet-process Gaussian mixture prior (``model_zoo.nets.stick_breaking``): Beta
   stick fractions conditioned on the recurrent state weight up to ``components``
   Gaussians and pay a KL to ``Beta(1, dp_alpha)``, so the data decide how many are used.
3. Dynamics: an LSTM (orthogonal init) over ``[z_{t-1}, ctx_{t-1}, a_t]``.
4. Attention schema (``model_zoo.nets.slots``): slot attention, its slots initialised from
   the recurrent state, gives the frame's maps, which the posterior reads; a head predicts
   the maps from the state alone, and the decoder reads those, in training as in ``imagine``,
   so what the frame tells the reconstruction passes the KL (through z) and the ELBO is a bound.
5. Optimization (``model_zoo.nets.balancing``): the four losses (``TASKS``) are
   combined on the shared parameters by ``balancer``: ``"rgb"``, ``"sum"``, ``"pcgrad"`` or ``"config"`` (torchjd).

State at step t: ``{"h", "c", "z", "ctx", "maps"}``, with ``(h, c)`` the LSTM state
that has read ``[z_{t-1}, ctx_{t-1}, a_t]`` and the rest those of ``obs[t]``. With
``delta_vector`` it also carries the vector part, moved in a dream by a change head
on h (``model_zoo.nets.vector_delta``), so decoded positions stay on cells.

>>> import numpy as np, torch
>>> from gymnasium import spaces
>>> parts = {"image": spaces.Box(0, 255, (64, 64, 3), np.uint8), "state": spaces.Box(-1, 1, (4,), np.float32)}
>>> model = DPGMMVRNN(spaces.Dict(parts), spaces.Discrete(3), Config(z_dim=8, hidden=32, depth=4, context_dim=16))
>>> state = model.initial_state(2)
>>> out = model.imagine(state, torch.tensor([0, 2]), generator=torch.Generator().manual_seed(0))
>>> out.state["z"].shape, out.state["maps"].shape, model.features(out.state).shape  # maps: 5 slots x (64 + 4)
(torch.Size([2, 8]), torch.Size([2, 340]), torch.Size([2, 40]))
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model_zoo.base import Batch, Imagined, Obs, State, WorldModel
from model_zoo.models.config_checks import check_non_negative
from model_zoo.nets import mlp, module_key, reconstruction_error
from model_zoo.nets.balancing import BALANCERS, GradientBalancer, surrogate_loss
from model_zoo.nets.perceiver import CosineVectorQuantizer, PerceiverEncoder, Tokenizer
from model_zoo.nets.slots import SlotAttention
from model_zoo.nets.stick_breaking import (
    MixturePrior,
    components_in_use,
    effective_components,
    mixture_kl,
    responsibilities,
    stick_kl,
)
from model_zoo.nets.tokens import GRID
from model_zoo.nets.vector_delta import VectorDelta
from model_zoo.registry import PRESET_NAMES, Preset
from model_zoo.spaces import IMAGE_SIZE, ObsSpec

__all__ = ["TASKS", "Config", "DPGMMVRNN", "Usage"]

TASKS = ("elbo", "vq", "predictive", "attention")  # the losses the balancer combines, in this order


@dataclass(frozen=True)
class Config:
    """Hyperparameters (defaults: the paper's structure at CPU-friendly widths; see the module docstring)."""

    z_dim: int = 36  # latent size
    components: int = 15  # truncation of the Dirichlet process (mixture components)
    dp_alpha: float = 1.0  # DP concentration: stick fractions pay a KL to Beta(1, dp_alpha); smaller, fewer components
    # component means shifted together by a function of the LSTM state; off by default: the shift took up the
    # context, the weights then stayed the same on gamedays and normal days (benchmarks/dpgmm.py)
    state_dependent_means: bool = False
    codes: int = 256  # VQ codebook size
    code_dim: int = 32  # token width
    latents: int = 8  # Perceiver latent array length
    latent_dim: int = 64  # Perceiver latent width
    heads: int = 4  # attention heads of the Perceiver
    context_dim: int = 128  # context vector (paper: 256)
    hidden: int = 256  # LSTM units (paper: 512)
    slots: int = 5  # attention slots
    slot_dim: int = 64
    slot_iters: int = 3
    depth: int = 16  # channels of the first conv layer of the tokenizer (and the last of the decoder)
    vector_hidden: int = 128  # width of the MLPs (posterior, heads, vector decoder)
    balancer: str = "rgb"  # how the task gradients combine: "rgb", "sum", "pcgrad" or "config" (needs torchjd)
    rgb_mu: float = 0.9  # momentum of the task shares that weight RGB's consensus
    rgb_lambda: float = 1.0  # RGB's rotation gain (1: just enough to remove conflicts)
    rgb_alpha_steps: int = 3  # RGB's bisection steps on the rotation fraction
    temperature: float = 1.0  # sampling temperature of imagine (0: the most likely component's mean)
    free_nats: float = 0.5  # the mixture KL's batch mean is clamped below at free_nats * z_dim
    kl_weight: float = 1.0
    stick_weight: float = 1.0
    vq_beta: float = 0.25  # commitment weight
    vector_weight: float = 100.0  # a vector element counts as much as this many pixels in the reconstruction
    reward_weight: float = 1.0
    terminal_weight: float = 1.0
    context_weight: float = 1.0
    task_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)  # elbo, vq, predictive, attention
    usage_threshold: float = 0.05  # a component is "in use" with at least this weight
    delta_vector: bool = False  # the state carries the vector part, moved in a dream by a change head on h
    min_logstd: float = -5.0
    max_logstd: float = 2.0

    def __post_init__(self):
        for name in ("z_dim", "codes", "code_dim", "latents", "latent_dim", "heads", "context_dim", "hidden",
                     "slots", "slot_dim", "slot_iters", "depth", "vector_hidden"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"Config.{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.components < 1:
            raise ValueError(f"Config.components must be >= 1, got {self.components!r}")
        if self.latent_dim % self.heads:
            raise ValueError(f"Config.latent_dim ({self.latent_dim}) must be divisible by heads ({self.heads})")
        if self.balancer not in BALANCERS:
            raise ValueError(f"Config.balancer must be one of {', '.join(map(repr, BALANCERS))}, "
                             f"got {self.balancer!r}")
        for name in ("dp_alpha", "rgb_lambda"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"Config.{name} must be finite and > 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.rgb_mu < 1.0:
            raise ValueError(f"Config.rgb_mu must be in [0, 1), got {self.rgb_mu!r}")
        if self.rgb_alpha_steps < 0:
            raise ValueError(f"Config.rgb_alpha_steps must be >= 0, got {self.rgb_alpha_steps!r}")
        check_non_negative(self, ("temperature", "free_nats", "kl_weight", "stick_weight", "vq_beta", "vector_weight",
                                  "reward_weight", "terminal_weight", "context_weight", "usage_threshold"))
        if len(self.task_weights) != len(TASKS) or not all(math.isfinite(w) and w >= 0 for w in self.task_weights):
            raise ValueError(f"Config.task_weights must be {len(TASKS)} finite weights >= 0 (for {', '.join(TASKS)}), "
                             f"got {self.task_weights!r}")
        if not self.min_logstd < self.max_logstd:
            raise ValueError(f"Config.min_logstd ({self.min_logstd}) must be below max_logstd ({self.max_logstd})")
        object.__setattr__(self, "task_weights", tuple(float(w) for w in self.task_weights))  # JSON lists back


# campusnav-state: the change head keeps the agent's cell exact, as for vae_mdnrnn and rssm
PRESETS = {name: Preset() for name in PRESET_NAMES} | {"campusnav-state": Preset(config={"delta_vector": True})}


class Usage(NamedTuple):
    """Mixture usage per step: the prior's expected weights and the posterior's responsibilities, (..., K) each."""

    weights: Tensor
    responsibilities: Tensor


# --- the decoder --------------------------------------------------------------------


class _ImageDecoder(nn.Module):
    """[z, h] (M, in_dim) and slot maps (M, S, 8, 8) -> (M, C, 64, 64) pixel logits."""

    def __init__(self, in_dim: int, slots: int, channels: int, depth: int):
        super().__init__()
        self.width = 2 * depth
        self.fc = nn.Linear(in_dim, self.width * GRID * GRID)
        self.net = nn.Sequential(
            nn.Conv2d(self.width + slots, 4 * depth, 3, padding=1), nn.ReLU(),  # 8
            nn.ConvTranspose2d(4 * depth, 2 * depth, 4, stride=2, padding=1), nn.ReLU(),  # 16
            nn.ConvTranspose2d(2 * depth, depth, 4, stride=2, padding=1), nn.ReLU(),  # 32
            nn.ConvTranspose2d(depth, channels, 4, stride=2, padding=1),  # 64
        )

    def forward(self, x: Tensor, maps: Tensor) -> Tensor:
        grid = self.fc(x).reshape(-1, self.width, GRID, GRID)  # (M, W, 8, 8)
        return self.net(torch.cat([grid, maps], dim=1))


class Decoder(nn.Module):
    """[z, h] and the slot maps (..., S, N) -> image logits per part (..., C, 64, 64) and the vector (..., V)."""

    def __init__(self, spec: ObsSpec, in_dim: int, num_tokens: int, config: Config):
        super().__init__()
        self.spec, self.slots = spec, config.slots
        self.images = nn.ModuleDict({
            module_key(k): _ImageDecoder(in_dim, config.slots, s[-1], config.depth)
            for k, s in spec.images.items()
        })
        self.vector = (mlp(in_dim + config.slots * num_tokens, spec.vector_dim, config.vector_hidden, 1)
                       if spec.vector_dim else None)

    def forward(self, x: Tensor, maps: Tensor) -> tuple[dict[str, Tensor], Tensor | None]:
        lead = x.shape[:-1]
        flat, flat_maps = x.reshape(-1, x.shape[-1]), maps.reshape((-1,) + tuple(maps.shape[-2:]))  # (M, S, N)
        images = {}
        for i, key in enumerate(self.spec.image_keys):
            part = flat_maps[..., i * GRID * GRID : (i + 1) * GRID * GRID].reshape(-1, self.slots, GRID, GRID)
            logits = self.images[module_key(key)](flat, part)  # (M, C, 64, 64)
            images[key] = logits.reshape(tuple(lead) + (-1, IMAGE_SIZE, IMAGE_SIZE))
        vector = None
        if self.vector is not None:
            vector = self.vector(torch.cat([flat, flat_maps.flatten(1)], dim=-1)).reshape(tuple(lead) + (-1,))
        return images, vector

    def decode(self, x: Tensor, maps: Tensor) -> Obs:
        images, vector = self(x, maps)
        return self.spec.assemble({k: torch.sigmoid(v) for k, v in images.items()}, vector)


# --- the world model ----------------------------------------------------------------


class DPGMMVRNN(WorldModel):
    """The DP-GMM VRNN.

    State: ``{"h", "c": (B, hidden), "z": (B, z_dim), "ctx": (B, context_dim), "maps": (B, slots * tokens)}``.
    """

    Config = Config
    presets = PRESETS
    first_action = "lowest"  # trained so: an episode's first action is encoded as the lowest action

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, config: Config | None = None):
        super().__init__(observation_space, action_space, config if config is not None else Config())
        cfg, spec = self.config, self.spec
        self.tokenizer = Tokenizer(spec, cfg.code_dim, cfg.depth)
        n = self.num_tokens = self.tokenizer.num_tokens
        self.quantizer = CosineVectorQuantizer(cfg.codes, cfg.code_dim, cfg.vq_beta)
        self.perceiver = PerceiverEncoder(n, cfg.code_dim, cfg.latents, cfg.latent_dim, cfg.heads, cfg.context_dim)
        frame_dim = n * cfg.code_dim + cfg.context_dim
        self.posterior = nn.Sequential(nn.LayerNorm(frame_dim), mlp(frame_dim, 2 * cfg.z_dim, cfg.vector_hidden, 1))
        self.map_posterior = nn.Linear(cfg.slots * n, 2 * cfg.z_dim)  # the frame's slot maps, into the posterior
        self.dynamics = nn.LSTMCell(cfg.z_dim + cfg.context_dim + spec.action_dim, cfg.hidden)
        _orthogonal_lstm(self.dynamics)
        self.prior = MixturePrior(cfg.hidden, cfg.components, cfg.z_dim, (cfg.min_logstd, cfg.max_logstd),
                                  cfg.state_dependent_means)
        # attention schema: slots initialised from the recurrent state; maps predicted from it
        self.slot_position = nn.Parameter(torch.randn(n, cfg.code_dim) * 0.02)
        self.slot_base = nn.Parameter(torch.randn(cfg.slots, cfg.slot_dim))
        self.slot_init = nn.Linear(cfg.hidden, cfg.slots * cfg.slot_dim)
        self.slot_attention = SlotAttention(cfg.code_dim, cfg.slot_dim, cfg.slot_iters)
        self.attention_head = mlp(cfg.hidden, cfg.slots * n, cfg.vector_hidden, 1)
        self.decoder = Decoder(spec, cfg.z_dim + cfg.hidden, n, cfg)
        # reward | termination logit | next context, from [h, z]
        self.heads = mlp(cfg.hidden + cfg.z_dim, 2 + cfg.context_dim, cfg.vector_hidden, 1)
        self.delta = None  # with delta_vector: the vector part's change head, a predictive task
        if cfg.delta_vector and spec.vector_dim:
            self.delta = VectorDelta(cfg.hidden, spec.vector_dim, spec.action_dim, cfg.vector_hidden)
        shared_modules = (self.tokenizer, self.perceiver, self.posterior, self.dynamics)
        shared_ids = {id(p) for m in shared_modules for p in m.parameters()}
        self._shared = [id(p) in shared_ids for p in self.parameters()]
        self.balancer = GradientBalancer(cfg.balancer, len(TASKS), cfg.rgb_mu, cfg.rgb_lambda, cfg.rgb_alpha_steps)

    def upgrade_tensors(self, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
        """Checkpoint tensors from older versions, made to fit (``model_zoo.checkpoint.load`` calls this).

        RGB's balancer state was a consensus direction over the shared parameters; it is
        now the smoothed share of each task (``model_zoo.nets.balancing``). An old direction
        cannot be converted, so the shares start afresh, as on a first training step.
        The posterior did not read the slot maps: ``map_posterior`` loads as zeros, the old posterior.
        """
        for name, param in self.map_posterior.named_parameters():
            tensors.setdefault(f"map_posterior.{name}", torch.zeros_like(param))
        key = "balancer.momentum"
        expected = self.balancer.momentum
        if key in tensors and tensors[key].shape != expected.shape and tensors[key].numel() > len(TASKS):
            warnings.warn("this checkpoint's RGB balancer state predates the task-share momentum; it starts afresh",
                          stacklevel=3)
            tensors[key] = torch.zeros_like(expected)
        return tensors

    # --- parts ----------------------------------------------------------------------

    def perceive(self, obs: Obs) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Tokens (..., N, D), the context (..., C), the VQ loss () and the code indices (..., N)."""
        tokens = self.tokenizer(obs)  # (..., N, D)
        lead = tokens.shape[:-2]
        quantized = self.quantizer(tokens)
        flat = quantized.tokens.reshape((-1,) + tuple(tokens.shape[-2:]))  # (M, N, D)
        ctx = self.perceiver(flat).reshape(tuple(lead) + (-1,))  # (..., C)
        return tokens, ctx, quantized.loss, quantized.codes

    def encode(self, tokens: Tensor, ctx: Tensor, maps: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and log-std (..., Z) of z from the frame's tokens (..., N, D), the context (..., C) and
        its slot maps (..., S, N): all the frame tells the decoder goes through z, and so pays the KL."""
        out = self.posterior(torch.cat([tokens.flatten(-2), ctx], dim=-1)) + self.map_posterior(maps.flatten(-2))
        mean, logstd = out.chunk(2, dim=-1)
        return mean, logstd.clamp(self.config.min_logstd, self.config.max_logstd)

    def slot_maps(self, tokens: Tensor, h: Tensor) -> Tensor:
        """Slot attention maps (..., S, N) over the frame's tokens (..., N, D), slots initialised from h (..., H)."""
        cfg = self.config
        lead = tokens.shape[:-2]
        slots = self.slot_base + self.slot_init(h).reshape(tuple(lead) + (cfg.slots, cfg.slot_dim))  # (..., S, Ds)
        inputs = (tokens + self.slot_position).reshape((-1,) + tuple(tokens.shape[-2:]))  # (M, N, D)
        _, maps = self.slot_attention(inputs, slots.reshape(-1, cfg.slots, cfg.slot_dim))  # (M, S, N)
        return maps.reshape(tuple(lead) + (cfg.slots, self.num_tokens))

    def predicted_maps_logits(self, h: Tensor) -> Tensor:
        """The attention schema's logits (..., S, N) of the maps, from the recurrent state alone."""
        return self.attention_head(h).reshape(tuple(h.shape[:-1]) + (self.config.slots, self.num_tokens))

    def schema_maps(self, h: Tensor) -> Tensor:
        """The maps (..., S, N) the decoder reads, in training, ``observe`` and ``imagine`` alike: predicted from h."""
        return torch.softmax(self.predicted_maps_logits(h), dim=-2)

    def _advance(self, x: Tensor, h: Tensor, c: Tensor, first: Tensor) -> tuple[Tensor, Tensor]:
        """One LSTM step on x = [z, ctx, action] (B, ...); h and c restart at zero where ``first`` (B,)."""
        h, c = self.dynamics(x, (h, c))  # (B, H)
        return h.masked_fill(first[:, None], 0.0), c.masked_fill(first[:, None], 0.0)

    def _filter(self, tokens: Tensor, ctx: Tensor, action: Tensor, first: Tensor) -> tuple[Tensor, ...]:
        """A window read step by step as ``observe`` does: h_t from [z_{t-1}, ctx_{t-1}, a_t] (zeros at a start),
        the frame's slot maps with slots from h_t, then z_t ~ q(z_t | frame_t, ctx_t, maps_t) (Chung et al.'s
        posterior reads h too). Returns z, its mean and log-std (B, T, Z), H (B, T, H), the maps (B, T, S, N)."""
        B, T = first.shape
        h = c = ctx.new_zeros(B, self.config.hidden)
        out: tuple[list[Tensor], ...] = ([], [], [], [], [])
        for t in range(T):
            if t > 0:
                h, c = self._advance(torch.cat([out[0][-1], ctx[:, t - 1], action[:, t]], dim=-1), h, c, first[:, t])
            maps = self.slot_maps(tokens[:, t], h)  # (B, S, N)
            mean, logstd = self.encode(tokens[:, t], ctx[:, t], maps)  # (B, Z)
            z = mean + torch.exp(logstd) * torch.randn_like(mean)
            for values, x in zip(out, (z, mean, logstd, h, maps), strict=True):
                values.append(x)
        z, mean, logstd, H, maps = (torch.stack(values, dim=1) for values in out)
        return z, mean, logstd, H, maps

    def _heads(self, h: Tensor, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out = self.heads(torch.cat([h, z], dim=-1))
        return out[..., 0], out[..., 1], out[..., 2:]  # reward, termination logit, next context

    # --- training -------------------------------------------------------------------

    def task_losses(self, batch: Batch) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The four task losses (scalars, unweighted, in ``TASKS`` order) and the metrics of one batch.

        Step t's predictions (reward, termination, context, maps) are scored where ``obs[t]`` is
        not an episode start; the window's first step counts as a start (nothing before it).
        """
        cfg, spec = self.config, self.spec
        B, T = batch.shape
        first = self._is_first(batch.is_first, (B, T)).clone()
        first[:, 0] = True
        obs = spec.to_torch(batch.obs, self.device)
        tokens, ctx, vq_loss, codes = self.perceive(obs)  # (B, T, N, D), (B, T, C)
        action = self._action(batch.action, first)  # (B, T, A)
        z, mean, logstd, H, maps = self._filter(tokens, ctx, action, first)  # (B, T, Z), (B, T, H), (B, T, S, N)

        # elbo: reconstruction, the Monte Carlo KL to the DP mixture, the sticks' KL to Beta(1, alpha)
        log_w, a, b = self.prior.log_weights(H, sample=True)  # (B, T, K)
        means, logstds = self.prior.components(H)  # (B, T, K, Z), (K, Z)
        kl = mixture_kl(mean, logstd, log_w, means, logstds, z=z.unsqueeze(0))  # (B, T)
        sticks = stick_kl(a, b, cfg.dp_alpha) if a is not None else kl.new_zeros(B, T)  # (B, T)
        # the decoder reads the maps predicted from H, as in imagine: the frame reaches it through z alone
        logits = self.predicted_maps_logits(H)  # (B, T, S, N)
        images, vector = self.decoder(torch.cat([z, H], dim=-1), torch.softmax(logits, dim=-2))
        recon, metrics = reconstruction_error(spec, images, vector, obs, cfg.vector_weight)  # (B, T)
        elbo = recon.mean() + cfg.kl_weight * kl.mean().clamp(min=cfg.free_nats * cfg.z_dim) \
            + cfg.stick_weight * sticks.mean()

        # predictive: reward, termination and this step's context from [h_t, z_t]
        valid = ~first  # (B, T)
        n = valid.sum().clamp(min=1)
        reward_hat, term_logit, ctx_hat = self._heads(H, z)
        reward = torch.as_tensor(batch.reward, device=z.device).float()
        terminated = torch.as_tensor(batch.terminated, device=z.device).float()
        reward_se = (reward_hat - reward).square()
        bce = F.binary_cross_entropy_with_logits(term_logit, terminated, reduction="none")
        ctx_se = (ctx_hat - ctx.detach()).square().mean(-1)
        reward_mse, term_bce, ctx_mse = ((x * valid).sum() / n for x in (reward_se, bce, ctx_se))
        predictive = cfg.reward_weight * reward_mse + cfg.terminal_weight * term_bce + cfg.context_weight * ctx_mse
        if self.delta is not None:  # the change of the vector part into step t, read from h_t
            vector = spec.vector(obs)  # (B, T, V)
            delta_se = self.delta.loss(H[:, 1:], vector[:, :-1], vector[:, 1:], action[:, 1:], valid[:, 1:])
            metrics["delta_mse"] = delta_se.sum() / n
            predictive = predictive + metrics["delta_mse"]

        # attention: KL(slot maps || the maps predicted from h_t), per position, averaged
        target = maps.detach()
        log_pred = F.log_softmax(logits, dim=-2)  # (B, T, S, N)
        attn_kl = (target * (torch.log(target.clamp_min(1e-8)) - log_pred)).sum(-2).mean(-1)  # (B, T)
        attention = (attn_kl * valid).sum() / n

        with torch.no_grad():
            weights = log_w.exp()
            metrics |= dict(recon=recon.mean(), kl=kl.mean(), stick_kl=sticks.mean(), reward_mse=reward_mse,
                            terminal_bce=term_bce, context_mse=ctx_mse,
                            vq_perplexity=CosineVectorQuantizer.perplexity(codes, cfg.codes),
                            components_effective=effective_components(weights).mean(),
                            components_in_use=components_in_use(weights, cfg.usage_threshold).float().mean())
        return dict(zip(TASKS, (elbo, vq_loss, predictive, attention), strict=True)), metrics

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """The weighted sum of the four tasks. With a balancer other than ``"sum"`` (and gradients on), each task's
        gradient is taken here and the returned scalar's value is the summed loss while its gradient is the balanced
        update (``model_zoo.nets.balancing.surrogate_loss``); ``model_zoo.fit`` takes one ``backward`` as usual."""
        tasks, metrics = self.task_losses(batch)
        weighted = [w * tasks[name] for w, name in zip(self.config.task_weights, TASKS, strict=True)]
        if self.config.balancer != "sum" and torch.is_grad_enabled():
            params = [p for p in self.parameters() if p.requires_grad]
            shared = [s for s, p in zip(self._shared, self.parameters(), strict=True) if p.requires_grad]
            total, stats = surrogate_loss(weighted, params, shared, self.balancer)
            metrics |= {k: torch.tensor(v) for k, v in stats.items()}
        else:
            total = torch.stack(weighted).sum()
        metrics |= {"loss": total} | tasks
        values = torch.stack([v.detach().float().reshape(()) for v in metrics.values()]).tolist()  # one sync
        return total, dict(zip(metrics, values, strict=True))

    # --- the interface ----------------------------------------------------------------

    def initial_state(self, batch_size: int) -> State:
        """Zeros, and uniform maps over the slots; with ``delta_vector``, a (B, V) zero vector."""
        cfg, device = self.config, self.device
        h = torch.zeros(batch_size, cfg.hidden, device=device)
        state = {"h": h, "c": torch.zeros_like(h), "z": torch.zeros(batch_size, cfg.z_dim, device=device),
                 "ctx": torch.zeros(batch_size, cfg.context_dim, device=device),
                 "maps": torch.full((batch_size, cfg.slots * self.num_tokens), 1.0 / cfg.slots, device=device)}
        if self.delta is not None:
            state["vector"] = torch.zeros(batch_size, self.spec.vector_dim, device=device)
        return state

    def observe(self, state: State, action: Tensor, obs: Obs, is_first: Tensor) -> State:
        """Advances the LSTM with [z, ctx, action] (zeros where ``is_first``), then reads the frame.

        z is the posterior mean (it reads the frame's slot maps); ctx the Perceiver's context; maps those the
        decoder reads, predicted from h as in ``imagine`` (``slot_maps`` gives the frame's own).
        """
        B = state["z"].shape[0]
        first = self._is_first(is_first, (B,))
        x = torch.cat([state["z"], state["ctx"], self._action(action, first)], dim=-1)
        h, c = self._advance(x, state["h"], state["c"], first)  # (B, H)
        obs = self.spec.to_torch(obs, self.device)
        tokens, ctx, _, _ = self.perceive(obs)  # (B, N, D), (B, C)
        z, _ = self.encode(tokens, ctx, self.slot_maps(tokens, h))
        state = {"h": h, "c": c, "z": z, "ctx": ctx, "maps": self.schema_maps(h).flatten(1)}
        if self.delta is not None:
            state["vector"] = self.spec.vector(obs).to(h.dtype)  # (B, V)
        return state

    def imagine(self, state: State, action: Tensor, do: Mapping[str, Any] | None = None,
                generator: torch.Generator | None = None) -> Imagined:
        """Advances the LSTM and samples z from the mixture prior; predicts context, maps, reward, termination.

        Deterministic under a seeded ``generator`` (two draws per step: the component, the noise). With
        ``delta_vector`` the change head moves the state's vector part.
        """
        self.check_do(do)
        action = self._action(action)  # (B, A)
        h, c = self.dynamics(torch.cat([state["z"], state["ctx"], action], dim=-1), (state["h"], state["c"]))
        z = self.prior.sample(h, self.config.temperature, generator)  # (B, Z)
        reward, term_logit, ctx = self._heads(h, z)
        new = {"h": h, "c": c, "z": z, "ctx": ctx, "maps": self.schema_maps(h).flatten(1)}  # maps: (B, S*N)
        if self.delta is not None:
            new["vector"] = self.delta.step(h, state["vector"], action)
        return Imagined(new, reward, term_logit > 0)

    @torch.no_grad()
    def decode(self, state: State) -> Obs:
        """Env-format observation from [z, h] and the maps (uint8 images, vectors clipped); not differentiable.

        With ``delta_vector`` the vector parts are the state's, not the decoder's.
        """
        maps = state["maps"].reshape(-1, self.config.slots, self.num_tokens)
        x = torch.cat([state["z"], state["h"]], dim=-1)
        if self.delta is None:
            return self.decoder.decode(x, maps)
        images, _ = self.decoder(x, maps)
        return self.spec.assemble({k: torch.sigmoid(v) for k, v in images.items()}, state["vector"])

    def features(self, state: State) -> Tensor:
        """(B, Z + H): [z, h]; with ``delta_vector``, the standardised vector appended."""
        if self.delta is not None:
            return torch.cat([state["z"], state["h"], self.delta.read(state["vector"])], dim=-1)
        return torch.cat([state["z"], state["h"]], dim=-1)

    # --- the mixture, for analysis --------------------------------------------------------

    def usage(self, state: State) -> Usage:
        """The prior's expected weights at the state's ``h`` and the responsibilities of its ``z``: (B, K) each."""
        log_w, _, _ = self.prior.log_weights(state["h"])
        means, logstds = self.prior.components(state["h"])
        return Usage(log_w.exp(), responsibilities(state["z"], log_w, means, logstds))

    @torch.no_grad()
    def sequence_usage(self, batch: Batch) -> Usage:
        """``usage`` at every step of a batch filtered with ``observe``: (B, T, K) each."""
        B, T = batch.shape
        state = self.initial_state(B)
        weights, resp = [], []
        for t in range(T):
            step = batch.at(t)
            state = self.observe(state, step.action, step.obs, step.is_first)
            u = self.usage(state)
            weights.append(u.weights)
            resp.append(u.responsibilities)
        return Usage(torch.stack(weights, 1), torch.stack(resp, 1))

    @torch.no_grad()
    def usage_by_context(self, batches: Batch | list[Batch], column: int) -> dict[float, Tensor]:
        """Mean prior weights (K,) over the filtered steps of each value of causal column ``column``.

        ``batches`` need ``causal`` codes (``model_zoo.data`` collects them from CampusNav-v0:
        column 3 is the weather, 4 gameday); ``components_in_use`` of the result counts the
        components each context asks for.
        """
        sums: dict[float, Tensor] = {}
        counts: dict[float, int] = {}
        for batch in [batches] if isinstance(batches, Batch) else batches:
            if batch.causal is None:
                raise ValueError("usage_by_context needs batches with causal codes (batch.causal is None)")
            weights = self.sequence_usage(batch).weights.flatten(0, 1)  # (B*T, K)
            values = batch.causal[..., column].reshape(-1).to(weights.device)  # (B*T,)
            for value in values.unique().tolist():
                mask = values == value
                sums[value] = sums.get(value, 0) + weights[mask].sum(0)
                counts[value] = counts.get(value, 0) + int(mask.sum())
        return {value: sums[value] / counts[value] for value in sorted(sums)}

    @torch.no_grad()
    def mean_task_losses(self, batches: list[Batch], seed: int = 0) -> dict[str, float]:
        """Each task's loss (and their weighted sum, ``"loss"``) averaged over ``batches``, with seeded noise."""
        totals = dict.fromkeys((*TASKS, "loss"), 0.0)
        for i, batch in enumerate(batches):
            torch.manual_seed(seed + i)
            tasks, _ = self.task_losses(batch)
            for name, value in tasks.items():
                totals[name] += float(value)
            totals["loss"] += sum(w * float(tasks[t]) for w, t in zip(self.config.task_weights, TASKS, strict=True))
        return {name: value / max(len(batches), 1) for name, value in totals.items()}

    @torch.no_grad()
    def evaluation_metrics(self, window: Batch, context: int, horizons: tuple[int, ...],
                           generator: torch.Generator) -> dict[str, tuple[float, int]]:
        """``model_zoo.evaluate``'s extra columns over the filtered steps of each window.

        ``components_in_use``: components with prior weight >= ``usage_threshold``;
        ``components_effective``: exp(entropy) of the prior weights; ``responsibility_max``:
        how sharply the posterior's z picks one component.
        """
        usage = self.sequence_usage(window.at(slice(0, context)))
        weights = usage.weights.flatten(0, 1)  # (B*context, K)
        count = weights.shape[0]
        return {
            "components_in_use": (float(components_in_use(weights, self.config.usage_threshold).sum()), count),
            "components_effective": (float(effective_components(weights).sum()), count),
            "responsibility_max": (float(usage.responsibilities.flatten(0, 1).max(-1).values.sum()), count),
        }


def _orthogonal_lstm(cell: nn.LSTMCell) -> None:
    """Orthogonal input and recurrent weights per gate, zero biases but the forget gate's (1)."""
    hidden = cell.hidden_size
    with torch.no_grad():
        for weight in (cell.weight_ih, cell.weight_hh):
            for gate in range(4):
                nn.init.orthogonal_(weight[gate * hidden : (gate + 1) * hidden])
        cell.bias_ih.zero_()
        cell.bias_hh.zero_()
        cell.bias_ih[hidden : 2 * hidden] = 1.0
