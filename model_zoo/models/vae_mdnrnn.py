"""V + M of Ha & Schmidhuber (2018), "World Models" (arXiv:1803.10122).

V, a variational autoencoder, compresses each observation into a latent ``z``;
M, an LSTM with a mixture density network head (MDN-RNN), models
``P(z[t+1] | z[t], a[t+1], h[t])`` as a mixture of K diagonal Gaussians and, beside
it, the reward and the termination of the step. A controller reads ``[z, h]``.

V sees every part of the observation (``model_zoo.nets.ObsEncoder``: the World Models
conv stack for images, an MLP for vectors) and a LayerNorm keeps its posterior
steady under Adam. M's mixture weights are shared by the latent dimensions by
default, so a sample stays jointly coherent (``per_dim_mixture=True``: the paper's).
V and M train in one ``loss`` call but apart, as in the paper: no gradient of M
reaches V, and M reads V's posterior means (``m_target``).

State at step t: ``{"h", "c", "z"}`` with ``z = z[t]`` and ``(h, c)`` the LSTM state
that has read everything up to ``(z[t-1], a[t])``; ``imagine(state, a[t+1])``
advances the LSTM with ``(z[t], a[t+1])`` and samples ``z[t+1]``.

>>> import numpy as np, torch
>>> from gymnasium import spaces
>>> obs_space = spaces.Dict({"image": spaces.Box(0, 255, (64, 64, 3), np.uint8),
...                          "state": spaces.Box(-1, 1, (4,), np.float32)})
>>> model = VAEMDNRNN(obs_space, spaces.Discrete(3), Config(z_dim=8, hidden=16, depth=4))
>>> state = model.initial_state(2)
>>> out = model.imagine(state, torch.tensor([0, 2]), generator=torch.Generator().manual_seed(0))
>>> out.state["z"].shape, out.reward.shape, out.terminated.dtype, model.features(out.state).shape
(torch.Size([2, 8]), torch.Size([2]), torch.bool, torch.Size([2, 24]))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model_zoo.base import Batch, Imagined, Obs, State, WorldModel
from model_zoo.models.config_checks import check_non_negative
from model_zoo.nets import (
    ObsDecoder,
    ObsEncoder,
    mixture_log_prob,
    mixture_width,
    reconstruction_error,
    sample_mixture,
    split_mixture,
)
from model_zoo.nets.vector_delta import VectorDelta
from model_zoo.registry import Preset
from model_zoo.spaces import ObsSpec

__all__ = ["MDNRNN", "VAE", "VAEMDNRNN", "Config", "MDNOutput", "Posterior"]


@dataclass(frozen=True)
class Config:
    """Hyperparameters of V and M (defaults train on a laptop CPU)."""

    z_dim: int = 32  # latent size of V
    hidden: int = 256  # LSTM units of M
    mixtures: int = 5  # Gaussians in the MDN
    per_dim_mixture: bool = False  # True: the paper's mixture weights per latent dim; False: shared
    temperature: float = 1.0  # sampling temperature tau of imagine (0: most likely mean)
    m_target: str = "mean"  # what M reads and predicts: V's posterior "mean" or a "sample" (the paper)
    depth: int = 32  # channels of the first conv layer (the paper's 32)
    vector_hidden: int = 128  # width of the MLP for vector parts
    kl_weight: float = 1.0  # weight of the KL term of V
    free_nats: float = 0.5  # KL per frame is clamped below at free_nats * z_dim (paper: kl_tolerance)
    vector_weight: float = 100.0  # a vector element counts as much as this many pixels in V's reconstruction
    reward_weight: float = 1.0  # weight of M's reward MSE
    terminal_weight: float = 1.0  # weight of M's termination BCE
    min_logstd: float = -5.0  # clamp of the MDN log-std, for a finite likelihood
    max_logstd: float = 2.0
    # the state carries the vector part, moved in a dream by M's change head (model_zoo.nets.vector_delta) rather
    # than decoded from z: exact positions stay exact where V's decoder is cells off
    delta_vector: bool = False

    def __post_init__(self):
        for name in ("z_dim", "hidden", "mixtures", "depth", "vector_hidden"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"Config.{name} must be a positive integer, got {getattr(self, name)!r}")
        check_non_negative(self, ("temperature", "kl_weight", "free_nats", "vector_weight", "reward_weight",
                                  "terminal_weight"))
        if self.m_target not in ("mean", "sample"):
            raise ValueError(f"Config.m_target must be 'mean' or 'sample', got {self.m_target!r}")
        if not self.min_logstd < self.max_logstd:
            raise ValueError(f"Config.min_logstd ({self.min_logstd}) must be below max_logstd ({self.max_logstd})")


class Posterior(NamedTuple):
    """V's encoding of an observation: mean and log-variance, each (..., z_dim)."""

    mean: Tensor
    logvar: Tensor


class MDNOutput(NamedTuple):
    """M's prediction for one step: mixture over the next z, reward and termination."""

    logits: Tensor  # (..., K, 1) shared mixture weights, or (..., K, z_dim) per dimension
    mean: Tensor  # (..., K, z_dim)
    logstd: Tensor  # (..., K, z_dim), unclamped (log_prob and sample clamp it)
    reward: Tensor  # (...)
    terminated_logit: Tensor  # (...)


# --- V: the variational autoencoder -------------------------------------------


class VAE(nn.Module):
    """Every part of an observation -> one latent z -> every part again."""

    def __init__(self, spec: ObsSpec, config: Config):
        super().__init__()
        self.encoder = ObsEncoder(spec, config.depth, config.vector_hidden)
        # LayerNorm keeps the posterior stable under Adam: the conv features are many and unnormalised
        features = self.encoder.out_dim
        self.to_posterior = nn.Sequential(nn.LayerNorm(features), nn.Linear(features, 2 * config.z_dim))
        self.decoder = ObsDecoder(spec, config.z_dim, config.depth, config.vector_hidden)

    def encode(self, obs) -> Posterior:
        mean, logvar = self.to_posterior(self.encoder(obs)).chunk(2, dim=-1)  # (..., Z) each
        return Posterior(mean, logvar)


# --- M: the MDN-RNN -----------------------------------------------------------


class MDNRNN(nn.Module):
    """An LSTM cell over [z, action] and one linear head: mixture, reward, termination.

    ``cell`` runs the training sequences; ``step``, the same function, runs ``observe`` and ``imagine``.
    """

    def __init__(self, z_dim: int, action_dim: int, config: Config):
        super().__init__()
        self.z_dim, self.k, self.per_dim = z_dim, config.mixtures, config.per_dim_mixture
        self.min_logstd, self.max_logstd = config.min_logstd, config.max_logstd
        self.cell = nn.LSTMCell(z_dim + action_dim, config.hidden)
        # logits (K * (1 or Z)) | means (K * Z) | log-stds (K * Z) | reward | termination logit
        self.head = nn.Linear(config.hidden, mixture_width(self.k, z_dim, self.per_dim) + 2)

    def step(self, z: Tensor, action: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """One LSTM step on [z (B, Z), encoded action (B, A)] from (h, c): the function of ``self.cell``.

        Faster on a CPU for imagination: one matmul over [z, action, h] instead of
        two and their sum, and tanh(x) computed as 2 sigmoid(2x) - 1 (the cell
        gate's weights are doubled, so one sigmoid covers all four gates).
        """
        H = h.shape[-1]
        weight = torch.cat([self.cell.weight_ih, self.cell.weight_hh], dim=1)  # (4H, Z+A+H)
        bias = self.cell.bias_ih + self.cell.bias_hh  # (4H,)
        weight[2 * H : 3 * H] *= 2.0
        bias[2 * H : 3 * H] *= 2.0
        gates = torch.addmm(bias, torch.cat([z, action, h], dim=-1), weight.t()).sigmoid_()  # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=-1)  # (B, H) each; g = sigmoid(2 x)
        c = torch.addcmul(f * c, i, g * 2.0 - 1.0)  # f c + i tanh(x)
        h = o * (torch.sigmoid(c * 2.0) * 2.0 - 1.0)  # o tanh(c)
        return h, c

    def split(self, out: Tensor) -> MDNOutput:
        """The head's flat output (..., O) as an ``MDNOutput``."""
        mixture = split_mixture(out, self.k, self.z_dim, self.per_dim)
        return MDNOutput(*mixture, out[..., -2], out[..., -1])

    def log_prob(self, mdn: MDNOutput, z: Tensor) -> Tensor:
        """log p(z) under the mixture, summed over latent dims: (..., Z) -> (...)."""
        return mixture_log_prob(mdn, z, self.min_logstd, self.max_logstd)

    def sample(self, mdn: MDNOutput, tau: float, generator: torch.Generator | None) -> Tensor:
        """z (B, Z) drawn at temperature ``tau`` from (B, ...) mixture parameters."""
        return sample_mixture(mdn, tau, generator, self.min_logstd, self.max_logstd)


# --- the world model ----------------------------------------------------------


# campusnav-state: delta_vector keeps the agent's cell exact, lr 1e-3 sharpens it (docs/results/preset_checks.md)
PRESETS = {"campusnav-state": Preset(config={"delta_vector": True}, lr=1e-3), "campusnav-pixels": Preset(lr=1e-3)}
"""Tuned settings by data kind (``model_zoo.make(..., preset=name)``; ``fit(..., lr=preset.lr)``)."""


class VAEMDNRNN(WorldModel):
    """World Models V + M. State: ``{"h": (B, hidden), "c": (B, hidden), "z": (B, z_dim)}``."""

    Config = Config
    presets = PRESETS
    first_action = "lowest"  # trained so: an episode's first action is encoded as the lowest action

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, config: Config | None = None):
        super().__init__(observation_space, action_space, config if config is not None else Config())
        cfg = self.config
        self.vae = VAE(self.spec, cfg)
        self.mdnrnn = MDNRNN(cfg.z_dim, self.spec.action_dim, cfg)
        self.delta = None  # with delta_vector: the change head of the vector part, part of M
        if cfg.delta_vector and self.spec.vector_dim:
            self.delta = VectorDelta(cfg.hidden, self.spec.vector_dim, self.spec.action_dim, cfg.vector_hidden)

    # --- helpers ----------------------------------------------------------------

    def encode(self, obs: Obs) -> Posterior:
        """V's posterior of observations with any leading dims: (..., z_dim) mean and log-variance."""
        return self.vae.encode(obs)

    def _vae_loss(self, posterior: Posterior, z: Tensor, obs: Obs) -> tuple[Tensor, dict[str, Tensor]]:
        cfg = self.config
        images, vector = self.vae.decoder(z)  # (B, T, C, 64, 64) logits per part, (B, T, V)
        recon, metrics = reconstruction_error(self.spec, images, vector, obs, cfg.vector_weight)  # (B, T)
        mean, logvar = posterior
        kl = 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).sum(-1)  # (B, T)
        kl_loss = kl.clamp(min=cfg.free_nats * cfg.z_dim).mean()
        metrics.update(recon=recon.mean(), kl=kl.mean())
        return recon.mean() + cfg.kl_weight * kl_loss, metrics

    def dynamics_losses(self, z: Tensor, batch: Batch) -> dict[str, Tensor]:
        """M's per-step terms on a latent sequence z (B, T, Z): each (B, T), zero where not ``valid``.

        Step t is ``valid`` when t > 0 and ``obs[t]`` is not an episode start; the
        LSTM state is reset there, so nothing crosses a boundary. With ``delta_vector``,
        ``delta_se`` is the change head's error on the vector part of step t.
        """
        cfg = self.config
        B, T, _ = z.shape
        first = self._is_first(batch.is_first, (B, T)).clone()
        first[:, 0] = True  # the window's first step has no predecessor in the window
        actions = self._action(batch.action, first)[:, 1:]  # (B, T-1, A): the action into each step t >= 1
        x = torch.cat([z[:, :-1], actions], dim=-1)  # (B, T-1, Z+A)
        h = c = z.new_zeros(B, cfg.hidden)
        hs = []
        for t in range(T - 1):
            h, c = self.mdnrnn.cell(x[:, t], (h, c))  # (B, H)
            reset = first[:, t + 1, None]
            h, c = h.masked_fill(reset, 0.0), c.masked_fill(reset, 0.0)
            hs.append(h)
        zero = z.new_zeros(B, 1)
        names = ("nll", "reward_se", "terminal_bce") + (("delta_se",) if self.delta is not None else ())
        if not hs:
            return {name: zero for name in names} | {"valid": ~first}
        hs = torch.stack(hs, dim=1)  # (B, T-1, H)
        mdn = self.mdnrnn.split(self.mdnrnn.head(hs))  # (B, T-1, ...)
        valid = ~first[:, 1:]  # (B, T-1)
        reward = torch.as_tensor(batch.reward, device=z.device).float()[:, 1:]
        terminated = torch.as_tensor(batch.terminated, device=z.device).float()[:, 1:]
        nll = -self.mdnrnn.log_prob(mdn, z[:, 1:]) / cfg.z_dim  # (B, T-1), per latent dim
        reward_se = (mdn.reward - reward).square()
        bce = F.binary_cross_entropy_with_logits(mdn.terminated_logit, terminated, reduction="none")
        terms = {"nll": nll, "reward_se": reward_se, "terminal_bce": bce}
        if self.delta is not None:
            vector = self.spec.vector(self.spec.to_torch(batch.obs, z.device))  # (B, T, V)
            terms["delta_se"] = self.delta.loss(hs, vector[:, :-1], vector[:, 1:], actions, valid)
        out = {k: torch.cat([zero, v.masked_fill(~valid, 0.0)], dim=1) for k, v in terms.items()}  # (B, T)
        return out | {"valid": ~first}

    # --- the interface --------------------------------------------------------------

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """V's loss on every frame plus M's on the detached latent sequence; (scalar, metrics)."""
        cfg = self.config
        posterior = self.encode(batch.obs)  # (B, T, Z) each
        z = posterior.mean + torch.exp(0.5 * posterior.logvar) * torch.randn_like(posterior.mean)  # (B, T, Z)
        vae_loss, metrics = self._vae_loss(posterior, z, batch.obs)
        terms = self.dynamics_losses((posterior.mean if cfg.m_target == "mean" else z).detach(), batch)
        n = terms["valid"].sum().clamp(min=1)
        nll, reward_mse, bce = (terms[k].sum() / n for k in ("nll", "reward_se", "terminal_bce"))
        m_loss = nll + cfg.reward_weight * reward_mse + cfg.terminal_weight * bce
        if self.delta is not None:
            metrics["delta_mse"] = terms["delta_se"].sum() / n
            m_loss = m_loss + metrics["delta_mse"]
        total = vae_loss + m_loss
        metrics |= dict(loss=total, vae_loss=vae_loss, m_loss=m_loss, mdn_nll=nll, reward_mse=reward_mse,
                        terminal_bce=bce)
        values = torch.stack([v.detach().float() for v in metrics.values()]).tolist()  # one device sync
        return total, dict(zip(metrics, values, strict=True))

    def initial_state(self, batch_size: int) -> State:
        """Zeros: (B, hidden) h and c, (B, z_dim) z; with ``delta_vector``, (B, V) vector."""
        cfg, device = self.config, self.device
        h = torch.zeros(batch_size, cfg.hidden, device=device)
        state = {"h": h, "c": torch.zeros_like(h), "z": torch.zeros(batch_size, cfg.z_dim, device=device)}
        if self.delta is not None:
            state["vector"] = torch.zeros(batch_size, self.spec.vector_dim, device=device)
        return state

    def observe(self, state: State, action: Tensor, obs: Obs, is_first: Tensor) -> State:
        """Advances the LSTM with (previous z, action) (or resets it to zeros where ``is_first``); z = V's mean."""
        B = state["z"].shape[0]
        first = self._is_first(is_first, (B,))
        h, c = self.mdnrnn.step(state["z"], self._action(action, first), state["h"], state["c"])  # (B, H)
        h, c = h.masked_fill(first[:, None], 0.0), c.masked_fill(first[:, None], 0.0)  # reset at episode starts
        obs = self.spec.to_torch(obs, self.device)
        state = {"h": h, "c": c, "z": self.encode(obs).mean}  # z: (B, Z)
        if self.delta is not None:
            state["vector"] = self.spec.vector(obs).to(h.dtype)  # (B, V)
        return state

    def imagine(self, state: State, action: Tensor, do: Mapping[str, Any] | None = None,
                generator: torch.Generator | None = None) -> Imagined:
        """Advances the LSTM with (z, action) and samples the next z from the MDN at ``config.temperature``.

        The reward is predicted by M's head and the step ends where its termination probability is above 1/2.
        Deterministic under a seeded ``generator`` (two draws per step: the component, the noise). With
        ``delta_vector`` the change head moves the state's vector part.
        """
        self.check_do(do)
        action = self._action(action)  # (B, A)
        h, c = self.mdnrnn.step(state["z"], action, state["h"], state["c"])  # (B, H)
        mdn = self.mdnrnn.split(self.mdnrnn.head(h))
        new = {"h": h, "c": c, "z": self.mdnrnn.sample(mdn, self.config.temperature, generator)}  # z: (B, Z)
        if self.delta is not None:
            new["vector"] = self.delta.step(h, state["vector"], action)
        return Imagined(new, mdn.reward, mdn.terminated_logit > 0)

    @torch.no_grad()
    def decode(self, state: State) -> Obs:
        """Env-format observation (uint8 images, vectors clipped into their bounds); not differentiable.

        With ``delta_vector`` the vector parts are the state's, not V's decoding of z.
        """
        if self.delta is None:
            return self.vae.decoder.decode(state["z"])
        images, _ = self.vae.decoder(state["z"], vector=False)
        return self.spec.assemble({k: torch.sigmoid(v) for k, v in images.items()}, state["vector"])

    def features(self, state: State) -> Tensor:
        """(B, Z + H): the paper's controller input [z, h]; with ``delta_vector``, the standardised vector appended."""
        if self.delta is not None:
            return torch.cat([state["z"], state["h"], self.delta.read(state["vector"])], dim=-1)
        return torch.cat([state["z"], state["h"]], dim=-1)
