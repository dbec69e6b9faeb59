"""A pixel world model whose next latent is sampled by a diffusion transformer (DiT) over VAE patches.

Peebles & Xie (2023), "Scalable Diffusion Models with Transformers" (arXiv:2212.09748):
a transformer denoises the patches of a VAE latent, conditioned through adaptive layer
norms with zero-initialised gates (adaLN-Zero; ``model_zoo.nets.dit``). Here the N previous
latents are context tokens in the same sequence, and the noise level and the last N actions
(the newest is the one taken) form the condition. EDM's preconditioning and few-step
sampler (``model_zoo.nets.edm``), the history windows and the head losses are those of the
pixel ``diffusion`` model (DIAMOND).

The VAE (``vae``): "own" is a conv VAE from the stacked image parts (64x64) to a
(latent_channels, 8, 8) latent, trained in the same ``loss``; the denoiser and the head read
its detached posterior means. "vae_mdnrnn" is a trained vae_mdnrnn's V, frozen and copied
by ``LatentDiffusion.from_vae(model)``; its flat z is one token per frame (patch 1).

A small head reads [MLP embedding of the N newest latents, previous vector, action] and
predicts the reward, a termination logit and the change of the vector parts. ``features``
is [embedding, vector]. State: ``{"latents": (B, N, c, h, w) oldest first; "actions":
(B, N, A); "vector": (B, V); "embed": (B, hidden)}``; an episode's first latent fills all N slots.

>>> import numpy as np, torch
>>> from gymnasium import spaces
>>> model = LatentDiffusion(spaces.Box(0, 255, (64, 64, 3), np.uint8), spaces.Discrete(3),
...                         Config(depth=4, hidden=16, blocks=1))
>>> out = model.imagine(model.initial_state(2), torch.tensor([0, 2]), generator=torch.Generator().manual_seed(0))
>>> out.state["latents"].shape, model.decode(out.state).dtype, model.features(out.state).shape
(torch.Size([2, 4, 4, 8, 8]), torch.uint8, torch.Size([2, 16]))
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor, nn

from model_zoo.base import Batch, Imagined, Obs, State, WorldModel
from model_zoo.models import vae_mdnrnn
from model_zoo.models.config_checks import check_non_negative
from model_zoo.models.diffusion import SAMPLERS, HistoryExamples, history_examples, readout_losses
from model_zoo.nets import mlp, reconstruction_error
from model_zoo.nets.dit import DiT, NoiseLevelEmbedding, patchify, unpatchify
from model_zoo.nets.edm import Preconditioned, draw_sigma, karras_sigmas, sample
from model_zoo.registry import Preset, make
from model_zoo.spaces import IMAGE_SIZE

__all__ = ["Config", "LatentDiffusion", "LatentNet", "LatentReadout", "LatentVAE"]

LATENT_SIZE = IMAGE_SIZE // 8  # the own VAE's latent side: three stride-2 convolutions
VAES = ("own", "vae_mdnrnn")


@dataclass(frozen=True)
class Config:
    """Hyperparameters of the VAE, the DiT, its sampler and the head (defaults train on a laptop CPU)."""

    history: int = 4  # N: latents (and actions) the denoiser is conditioned on
    vae: str = "own"  # "own": a conv VAE trained in the same loss; "vae_mdnrnn": a trained V, frozen (from_vae)
    latent_channels: int = 4  # channels of the own VAE's 8x8 latent; with vae="vae_mdnrnn", V's z_dim
    depth: int = 32  # channels of the VAE's first conv layer (V's depth with vae="vae_mdnrnn")
    vector_hidden: int = 128  # V's vector MLP width (vae="vae_mdnrnn" on Dict observations)
    kl_weight: float = 1.0  # weight of the own VAE's KL term (summed over the latent, per frame)
    patch: int = 2  # side of the latent patches that become tokens (1 with vae="vae_mdnrnn")
    hidden: int = 128  # width of the transformer, the condition, the embedding and the head
    blocks: int = 4  # adaLN-Zero transformer blocks
    heads: int = 4  # attention heads (hidden must be divisible by heads)
    layers: int = 2  # hidden layers of the head's MLP
    steps: int = 3  # denoising steps of the sampler
    sampler: str = "euler"  # "euler" (first order) or "heun" (second order, about twice the cost per step)
    temperature: float = 1.0  # scale of the sampler's starting noise (0: a deterministic latent)
    sigma_data: float = 0.5  # std of the latents that the preconditioning assumes
    sigma_min: float = 2e-3  # the sampler's lowest noise level before 0
    sigma_max: float = 5.0  # the sampler's starting noise level
    rho: float = 7.0  # curvature of the sampler's noise schedule (Karras et al. eq. 5)
    p_mean: float = -0.4  # mean of ln(sigma) at training
    p_std: float = 1.2  # std of ln(sigma) at training
    reward_weight: float = 1.0  # weight of the reward MSE
    terminal_weight: float = 1.0  # weight of the termination BCE
    vector_weight: float = 1.0  # weight of the vector MSE (Dict observations)

    def __post_init__(self):
        for name in ("history", "latent_channels", "depth", "vector_hidden", "patch", "hidden", "blocks", "heads",
                     "steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"Config.{name} must be a positive integer, got {value!r}")
        if isinstance(self.layers, bool) or not isinstance(self.layers, numbers.Integral) or self.layers < 0:
            raise ValueError(f"Config.layers must be an integer >= 0, got {self.layers!r}")
        if self.vae not in VAES:
            raise ValueError(f"Config.vae must be one of {list(VAES)}, got {self.vae!r}")
        if self.vae == "own" and LATENT_SIZE % self.patch:
            raise ValueError(f"Config.patch ({self.patch}) must divide the own VAE's latent side ({LATENT_SIZE})")
        if self.vae == "vae_mdnrnn" and self.patch != 1:
            raise ValueError(f"Config.patch must be 1 with vae='vae_mdnrnn' (its latent is one flat z), "
                             f"got {self.patch}")
        if self.hidden % self.heads or self.hidden % 2:
            raise ValueError(f"Config.hidden ({self.hidden}) must be even and divisible by heads ({self.heads})")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"Config.sampler must be one of {sorted(SAMPLERS)}, got {self.sampler!r}")
        check_non_negative(self, ("kl_weight", "temperature", "p_std", "reward_weight", "terminal_weight",
                                  "vector_weight"))
        if not 0 < self.sigma_min < self.sigma_max or self.sigma_data <= 0 or self.rho <= 0:
            raise ValueError(f"Config: need 0 < sigma_min ({self.sigma_min}) < sigma_max ({self.sigma_max}), "
                             f"sigma_data ({self.sigma_data}) > 0 and rho ({self.rho}) > 0")


class LatentVAE(nn.Module):
    """Frames (M, C, 64, 64) in [0, 1] <-> a diagonal Gaussian over (M, c, 8, 8) latents; three stride-2 convs."""

    def __init__(self, channels: int, latent_channels: int, depth: int):
        super().__init__()
        d = depth
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, d, 4, 2, 1), nn.SiLU(),  # 32
            nn.Conv2d(d, 2 * d, 4, 2, 1), nn.SiLU(),  # 16
            nn.Conv2d(2 * d, 2 * d, 4, 2, 1), nn.SiLU(),  # 8
            nn.Conv2d(2 * d, 2 * latent_channels, 3, padding=1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, 2 * d, 3, padding=1), nn.SiLU(),
            nn.ConvTranspose2d(2 * d, 2 * d, 4, 2, 1), nn.SiLU(),  # 16
            nn.ConvTranspose2d(2 * d, d, 4, 2, 1), nn.SiLU(),  # 32
            nn.ConvTranspose2d(d, channels, 4, 2, 1),  # 64: logits
        )

    def encode(self, frames: Tensor) -> vae_mdnrnn.Posterior:
        """(..., C, 64, 64) -> mean and log-variance, each (..., c, 8, 8)."""
        lead = frames.shape[:-3]
        mean, logvar = self.encoder(frames.flatten(0, -4) - 0.5).chunk(2, dim=1)  # (M, c, 8, 8) each
        return vae_mdnrnn.Posterior(mean.unflatten(0, lead), logvar.unflatten(0, lead))

    def decode(self, z: Tensor) -> Tensor:
        """(..., c, 8, 8) -> pixel logits (..., C, 64, 64)."""
        return self.decoder(z.flatten(0, -4)).unflatten(0, z.shape[:-3])


class LatentNet(nn.Module):
    """EDM's F: a DiT over the tokens of N context latents and the scaled noisy one, given sigma and N actions."""

    def __init__(self, shape: tuple[int, int, int], action_dim: int, cfg: Config):
        super().__init__()
        channels, height, width = shape
        self.patch, self.grid = cfg.patch, (height // cfg.patch, width // cfg.patch)
        self.tokens = self.grid[0] * self.grid[1]  # L: tokens per latent
        self.noise = NoiseLevelEmbedding(cfg.hidden)
        self.actions = nn.Linear(cfg.history * action_dim, cfg.hidden)
        token_dim = channels * cfg.patch**2
        self.dit = DiT(token_dim, token_dim, (cfg.history + 1) * self.tokens, cfg.hidden, cfg.blocks, cfg.heads)

    def forward(self, x: Tensor, c_noise: Tensor, context: Tensor, actions: Tensor) -> Tensor:
        """x (B, c, h, w), c_noise (B,), context (B, N, c, h, w), actions (B, N*A) -> (B, c, h, w)."""
        cond = self.noise(c_noise) + self.actions(actions)  # (B, hidden), as DiT adds its class embedding
        past = patchify(context.flatten(0, 1), self.patch).unflatten(0, context.shape[:2]).flatten(1, 2)  # (B, N L, D)
        tokens = torch.cat([past, patchify(x, self.patch)], dim=1)  # (B, (N+1) L, c p^2)
        out = self.dit(tokens, cond)[:, -self.tokens:]  # (B, L, c p^2): the noisy latent's tokens
        return unpatchify(out, self.patch, *self.grid)


class LatentReadout(nn.Module):
    """The head: N latents -> embedding; [embedding, previous vector, action] -> reward, termination, new vector."""

    def __init__(self, latent_numel: int, vector_dim: int, action_dim: int, cfg: Config):
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(cfg.history * latent_numel, cfg.hidden), nn.LayerNorm(cfg.hidden),
                                   nn.SiLU())
        self.head = mlp(cfg.hidden + vector_dim + action_dim, 2 + vector_dim, cfg.hidden, cfg.layers, act=nn.SiLU)

    def encode(self, latents: Tensor) -> Tensor:
        """(M, N, c, h, w) -> (M, hidden) embedding."""
        return self.embed(latents.flatten(1))

    def forward(self, embed: Tensor, vector: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Reward (M,), termination logit (M,) and the new vector (M, V) after ``action`` (M, A)."""
        out = self.head(torch.cat([embed, vector, action], dim=-1))  # (M, 2 + V)
        return out[:, 0], out[:, 1], vector + out[:, 2:]


PRESETS = {"campusnav-pixels": Preset(lr=3e-4)}
"""Settings by data kind; pixels only (``model_zoo.make(..., preset=name)``; ``fit(..., lr=preset.lr)``)."""


class LatentDiffusion(WorldModel):
    """A DiT denoiser over VAE latent histories. State: see the module docstring."""

    Config = Config
    presets = PRESETS
    observation_kinds = ("image", "image+vector")

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, config: Config | None = None):
        super().__init__(observation_space, action_space, config if config is not None else Config())
        cfg, spec = self.config, self.spec
        self.channels = sum(shape[-1] for shape in spec.images.values())
        if cfg.vae == "own":
            self.vae = LatentVAE(self.channels, cfg.latent_channels, cfg.depth)
            self.latent_shape = (cfg.latent_channels, LATENT_SIZE, LATENT_SIZE)
        else:
            v_config = vae_mdnrnn.Config(z_dim=cfg.latent_channels, depth=cfg.depth, vector_hidden=cfg.vector_hidden)
            self.vae = vae_mdnrnn.VAE(spec, v_config).requires_grad_(False)
            self.latent_shape = (cfg.latent_channels, 1, 1)
        # whether the VAE holds trained weights: the own one trains in ``loss``; a frozen V must come from ``from_vae``
        self.register_buffer("vae_ready", torch.tensor(cfg.vae == "own"))
        self.denoiser = Preconditioned(LatentNet(self.latent_shape, spec.action_dim, cfg), cfg.sigma_data)
        latent_numel = self.latent_shape[0] * self.latent_shape[1] * self.latent_shape[2]
        self.readout = LatentReadout(latent_numel, spec.vector_dim, spec.action_dim, cfg)

    @classmethod
    def from_vae(cls, model: vae_mdnrnn.VAEMDNRNN, **overrides: Any) -> LatentDiffusion:
        """A ``latent_diffusion`` over a trained ``vae_mdnrnn``'s V, copied and frozen; ``overrides``: other fields.

        The VAE fields (``vae``, ``latent_channels``, ``depth``, ``vector_hidden``, ``patch``)
        come from the model; giving them too is a ``ValueError``.
        """
        if not isinstance(model, vae_mdnrnn.VAEMDNRNN):
            raise TypeError(f"from_vae takes a trained vae_mdnrnn model, got {type(model).__name__}")
        v = model.config
        fixed = dict(vae="vae_mdnrnn", latent_channels=v.z_dim, depth=v.depth, vector_hidden=v.vector_hidden, patch=1)
        clash = sorted(set(fixed) & set(overrides))
        if clash:
            raise ValueError(f"from_vae: {clash} come from the vae_mdnrnn's V; leave them out")
        new = make("latent_diffusion", model.observation_space, model.action_space, **overrides, **fixed)
        new.vae.load_state_dict(model.vae.state_dict())
        new.vae_ready.fill_(True)
        return new.to(model.device)

    # --- helpers ----------------------------------------------------------------

    def encode(self, obs: Obs) -> vae_mdnrnn.Posterior:
        """The VAE's posterior of observations (...): mean and log-variance, each (..., c, h, w)."""
        obs = self.spec.to_torch(obs, self.device)
        if self.config.vae == "own":
            frames = torch.cat([self.spec.image(obs, key) for key in self.spec.image_keys], dim=-3)  # (..., C, 64, 64)
            return self.vae.encode(frames)
        mean, logvar = self.vae.encode(obs)  # (..., Z) each
        return vae_mdnrnn.Posterior(mean[..., None, None], logvar[..., None, None])

    def pixel_logits(self, z: Tensor) -> dict[str, Tensor]:
        """Latents (..., c, h, w) -> pixel logits (..., C_part, 64, 64) of every image part."""
        if self.config.vae == "own":
            parts = self.vae.decode(z).split([shape[-1] for shape in self.spec.images.values()], dim=-3)
            return dict(zip(self.spec.image_keys, parts, strict=True))
        return self.vae.decoder(z.flatten(-3))[0]

    def sigmas(self) -> Tensor:
        """The sampler's (steps + 1,) noise levels, sigma_max down to 0."""
        cfg = self.config
        return karras_sigmas(cfg.steps, cfg.sigma_min, cfg.sigma_max, cfg.rho).to(self.device)

    def denoise(self, noisy: Tensor, sigma: Tensor, state: State, action: Tensor) -> Tensor:
        """D(noisy (B, c, h, w); sigma (B,)) given the state's history and the encoded action (B, A)."""
        actions = torch.cat([state["actions"][:, 1:], action[:, None]], dim=1).flatten(1)  # (B, N*A)
        return self.denoiser(noisy, sigma, state["latents"], actions)

    def _push(self, state: State, latent: Tensor, action: Tensor, vector: Tensor) -> State:
        latents = torch.cat([state["latents"][:, 1:], latent[:, None]], dim=1)  # (B, N, c, h, w)
        actions = torch.cat([state["actions"][:, 1:], action[:, None]], dim=1)  # (B, N, A)
        return {"latents": latents, "actions": actions, "vector": vector, "embed": self.readout.encode(latents)}

    def _vae_loss(self, batch: Batch) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """The latents (B, T, c, h, w) to model (detached posterior means) and the own VAE's loss and metrics."""
        if self.config.vae != "own":
            if not bool(self.vae_ready):
                raise ValueError("latent_diffusion with vae='vae_mdnrnn' needs a trained V: build it with "
                                 "LatentDiffusion.from_vae(vae_mdnrnn_model)")
            with torch.no_grad():
                mean = self.encode(batch.obs).mean
            return mean, mean.new_zeros(()), {}
        posterior = self.encode(batch.obs)  # (B, T, c, h, w) each
        z = posterior.mean + torch.exp(0.5 * posterior.logvar) * torch.randn_like(posterior.mean)
        recon, metrics = reconstruction_error(self.spec, self.pixel_logits(z), None, batch.obs, 0.0)  # (B, T)
        kl = 0.5 * (posterior.mean.square() + posterior.logvar.exp() - 1.0 - posterior.logvar).flatten(2).sum(-1)
        loss = recon.mean() + self.config.kl_weight * kl.mean()
        return posterior.mean.detach(), loss, metrics | dict(recon=recon.mean(), kl=kl.mean())

    def _denoising_loss(self, examples: HistoryExamples) -> Tensor:
        """EDM's weighted denoising error (M,) of every example's target latent, given its history."""
        clean = examples.target  # (M, c, h, w)
        sigma = draw_sigma(clean.shape[0], self.config.p_mean, self.config.p_std, device=clean.device)  # (M,)
        return self.denoiser.loss(clean, sigma, torch.randn_like(clean), examples.context, examples.conditioning)

    # --- the interface ------------------------------------------------------------

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """The own VAE's loss on every frame; denoising and head losses on every latent after its episode's first."""
        cfg = self.config
        B, T = batch.shape
        first = self._is_first(batch.is_first, (B, T)).clone()
        first[:, 0] = True  # the window's first step has no predecessor in the window
        latents, vae_loss, metrics = self._vae_loss(batch)  # (B, T, c, h, w), scalar
        actions = self._action(batch.action, first)  # (B, T, A)
        total = vae_loss
        if not first.all():
            examples = history_examples(latents, actions, first, cfg.history)
            denoise = self._denoising_loss(examples).mean()
            newest = torch.cat([examples.context[:, 1:], examples.target[:, None]], dim=1)  # (M, N, c, h, w)
            vectors = self.spec.vector(self.spec.to_torch(batch.obs, self.device)).float()  # (B, T, V)
            b, t = examples.b, examples.t
            reward, logit, vector = self.readout(self.readout.encode(newest), vectors[b, t - 1], actions[b, t])
            head = readout_losses(batch, examples, vectors, reward, logit, vector)
            total = total + denoise + cfg.reward_weight * head["reward_mse"]
            total = total + cfg.terminal_weight * head["terminal_bce"]
            if "vector_mse" in head:
                total = total + cfg.vector_weight * head["vector_mse"]
            metrics |= dict(denoise=denoise, **head)
        metrics = dict(loss=total, vae_loss=vae_loss, **metrics)
        values = torch.stack([v.detach().float() for v in metrics.values()]).tolist()  # one device sync
        return total, dict(zip(metrics, values, strict=True))

    def initial_state(self, batch_size: int) -> State:
        """Zero latents, actions, vector and embedding."""
        cfg, device = self.config, self.device
        return {"latents": torch.zeros(batch_size, cfg.history, *self.latent_shape, device=device),
                "actions": torch.zeros(batch_size, cfg.history, self.spec.action_dim, device=device),
                "vector": torch.zeros(batch_size, self.spec.vector_dim, device=device),
                "embed": torch.zeros(batch_size, cfg.hidden, device=device)}

    def observe(self, state: State, action: Tensor, obs: Obs, is_first: Tensor) -> State:
        """Pushes the real frame's latent (the posterior mean) and the action; ``is_first`` fills the history."""
        B = state["latents"].shape[0]
        first = self._is_first(is_first, (B,))
        latent = self.encode(obs).mean  # (B, c, h, w)
        action = self._action(action, first)  # (B, A)
        reset = first[:, None, None, None, None]
        latents = torch.where(reset, latent[:, None].expand_as(state["latents"]), state["latents"])
        actions = state["actions"].masked_fill(first[:, None, None], 0.0)  # (B, N, A)
        vector = self.spec.vector(self.spec.to_torch(obs, self.device)).float()  # (B, V)
        return self._push({"latents": latents, "actions": actions}, latent, action, vector)

    def imagine(self, state: State, action: Tensor, do: Mapping[str, Any] | None = None,
                generator: torch.Generator | None = None) -> Imagined:
        """Samples the next latent (``config.steps`` steps of ``config.sampler``), pushes it and reads the head.

        The step ends where the termination logit is above 0. Deterministic under a seeded
        ``generator`` (one draw: the starting noise).
        """
        self.check_do(do)
        cfg = self.config
        action = self._action(action)  # (B, A)
        shape = state["latents"].shape[:1] + state["latents"].shape[2:]  # (B, c, h, w)
        noise = torch.randn(shape, generator=generator, device=self.device)
        sigmas = self.sigmas()
        latent = sample(lambda x, sigma: self.denoise(x, sigma, state, action), cfg.temperature * sigmas[0] * noise,
                        sigmas, SAMPLERS[cfg.sampler])  # (B, c, h, w)
        new = self._push(state, latent, action, state["vector"])
        reward, logit, vector = self.readout(new["embed"], state["vector"], action)  # (B,), (B,), (B, V)
        new["vector"] = vector
        return Imagined(new, reward, logit > 0, continuation=torch.sigmoid(-logit))

    @torch.no_grad()
    def decode(self, state: State) -> Obs:
        """The newest latent decoded to the env's uint8 images, and the vector parts clipped into their bounds."""
        images = {key: torch.sigmoid(logits) for key, logits in self.pixel_logits(state["latents"][:, -1]).items()}
        return self.spec.assemble(images, state["vector"] if self.spec.vector_dim else None)

    def features(self, state: State) -> Tensor:
        return torch.cat([state["embed"], state["vector"]], dim=-1)  # (B, hidden + V)

