"""A pixel world model whose next frame is sampled by a diffusion denoiser (DIAMOND).

Alonso et al. (2024), "Diffusion for World Modeling: Visual Details Matter in Atari"
(arXiv:2405.12399): a U-Net denoises the next frame, with the last N frames stacked as
input channels, and the last N actions (the newest is the one taken) and the noise level
reaching every block through adaptive group norms. The denoiser is preconditioned as in
EDM (Karras et al. 2022, arXiv:2206.00364; ``model_zoo.nets.edm``): training draws noise
levels log-normally and regresses EDM's unit-variance target; ``imagine`` integrates the
probability-flow ODE in a few Euler (or Heun) steps from noise of std sigma_max, scaled by
``temperature`` (0: a deterministic frame).

Frames are the image parts stacked as channels, resized to ``image_size`` (64) squared, in
[-1, 1]. The U-Net runs on 2x2 patches folded into channels (``patch``; space-to-depth, as in
Hoogeboom et al. 2023, arXiv:2301.11093): a quarter of the positions, half a CampusNav cell each.

One model across several games (``games`` > 1): the observation space must hold a
Discrete(games) part ``"game"`` (``model_zoo.data.Games`` builds one); a learned embedding of
the game is added to the denoiser's condition vector and to the head's frame embedding. The
game is read from the observation at ``observe`` (``initial_state`` starts at game 0) and kept
in the state's vector.

Reward, termination and, for Dict observations, the vector parts come from a small head:
a conv encoder embeds the N newest frames (the new one included); an MLP reads
[embedding, previous vector, action] and predicts the reward, a termination logit and the
change of the vector, a deterministic regression (the randomness lives in the frames).
``features`` is [embedding, vector]. Images are required: vector-only spaces are refused.

State: ``{"frames": (B, N, C, 64, 64) oldest first; "actions": (B, N, A), the action that
led to each frame (zeros at an episode start); "vector": (B, V); "embed": (B, hidden)}``.
At an episode start the first frame fills all N slots; ``loss`` pads histories the same way.

>>> import numpy as np, torch
>>> from gymnasium import spaces
>>> model = Diffusion(spaces.Box(0, 255, (64, 64, 3), np.uint8), spaces.Discrete(3), Config(depth=4, hidden=16))
>>> out = model.imagine(model.initial_state(2), torch.tensor([0, 2]), generator=torch.Generator().manual_seed(0))
>>> out.state["frames"].shape, out.reward.shape, model.decode(out.state).dtype, model.features(out.state).shape
(torch.Size([2, 4, 3, 64, 64]), torch.Size([2]), torch.uint8, torch.Size([2, 16]))
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
from model_zoo.nets import ConvEncoder, mlp
from model_zoo.nets.edm import Preconditioned, draw_sigma, karras_sigmas, noise_embedding, sample
from model_zoo.nets.unet import UNet
from model_zoo.registry import Preset
from model_zoo.spaces import GAME_KEY, IMAGE_SIZE

__all__ = ["Config", "Diffusion", "FrameNet", "HistoryExamples", "Readout", "episode_windows", "history_examples",
           "readout_losses"]

SAMPLERS = {"euler": 1, "heun": 2}  # the sampler's name -> its order


@dataclass(frozen=True)
class Config:
    """Hyperparameters of the denoiser, its sampler and the head (defaults train on a laptop CPU)."""

    history: int = 4  # N: frames (and actions) the denoiser is conditioned on
    depth: int = 32  # channels of the U-Net's first level (and of the head's conv encoder)
    channel_mult: tuple[int, ...] = (1, 2, 2)  # U-Net level widths, in units of depth; each level halves the size
    blocks: int = 1  # residual blocks per U-Net level and direction
    patch: int = 2  # side of the pixel patches folded into channels before the U-Net (1: every pixel)
    hidden: int = 128  # width of the condition vector, the embedding and the head
    layers: int = 2  # hidden layers of the head's MLP
    steps: int = 3  # denoising steps of the sampler
    sampler: str = "euler"  # "euler" (first order) or "heun" (second order, about twice the cost per step)
    temperature: float = 1.0  # scale of the sampler's starting noise (0: a deterministic frame)
    sigma_data: float = 0.5  # std of the frames in [-1, 1] that the preconditioning assumes
    sigma_min: float = 2e-3  # the sampler's lowest noise level before 0
    sigma_max: float = 5.0  # the sampler's starting noise level
    rho: float = 7.0  # curvature of the sampler's noise schedule (Karras et al. eq. 5)
    p_mean: float = -0.4  # mean of ln(sigma) at training (DIAMOND's)
    p_std: float = 1.2  # std of ln(sigma) at training
    reward_weight: float = 1.0  # weight of the reward MSE
    terminal_weight: float = 1.0  # weight of the termination BCE
    vector_weight: float = 1.0  # weight of the vector MSE (Dict observations)
    image_size: int = IMAGE_SIZE  # side of the frames inside the model (images are resized to it)
    games: int = 1  # games the model tells apart by a learned embedding (> 1: a Discrete "game" observation part)

    def __post_init__(self):
        for name in ("history", "depth", "blocks", "patch", "hidden", "steps", "image_size", "games"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"Config.{name} must be a positive integer, got {getattr(self, name)!r}")
        if int(self.layers) < 0:
            raise ValueError(f"Config.layers must be >= 0, got {self.layers!r}")
        if not self.channel_mult or any(int(m) < 1 for m in self.channel_mult):
            raise ValueError(f"Config.channel_mult must be positive integers, got {self.channel_mult!r}")
        size = self.image_size // self.patch
        if self.image_size % self.patch or size % 2 ** (len(self.channel_mult) - 1):
            raise ValueError(f"Config: {self.image_size}-pixel frames in patches of {self.patch} cannot be halved "
                             f"{len(self.channel_mult) - 1} times (channel_mult={self.channel_mult})")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"Config.sampler must be one of {sorted(SAMPLERS)}, got {self.sampler!r}")
        check_non_negative(self, ("temperature", "p_std", "reward_weight", "terminal_weight", "vector_weight"))
        if not 0 < self.sigma_min < self.sigma_max or self.sigma_data <= 0 or self.rho <= 0:
            raise ValueError(f"Config: need 0 < sigma_min ({self.sigma_min}) < sigma_max ({self.sigma_max}), "
                             f"sigma_data ({self.sigma_data}) > 0 and rho ({self.rho}) > 0")


def episode_windows(is_first: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """For each step t of (B, T) episode starts: the indices (B, T, n) of the n frames ending at t, oldest first.

    Indices before the episode's start (or the window's first step) are clamped to it and
    marked in the returned ``padded`` mask (B, T, n): a history never crosses an episode start.
    """
    B, T = is_first.shape
    t = torch.arange(T, device=is_first.device)
    start = torch.where(is_first, t, torch.zeros_like(t)).cummax(dim=1).values  # (B, T)
    raw = t[:, None] - torch.arange(n - 1, -1, -1, device=t.device)  # (T, n)
    padded = raw[None] < start[..., None]  # (B, T, n)
    return torch.maximum(raw[None], start[..., None]), padded


class HistoryExamples(NamedTuple):
    """The denoising examples of a (B, T) window: every step that does not start an episode (or the window)."""

    b: Tensor  # (M,) the row of each target
    t: Tensor  # (M,) its step
    context: Tensor  # (M, N, ...) the N values before it, oldest first (the episode's first repeated before it)
    conditioning: Tensor  # (M, N * A) the actions that led to the N - 1 newest context values, then the target's
    target: Tensor  # (M, ...) the value to denoise


def history_examples(values: Tensor, actions: Tensor, first: Tensor, n: int) -> HistoryExamples:
    """The examples of values (B, T, ...) with encoded actions (B, T, A) and episode starts ``first`` (B, T).

    ``first[:, 0]`` must be True (nothing precedes the window). The N newest values up to the
    target, the readout's input, are ``cat([context[:, 1:], target[:, None]], dim=1)``.
    """
    index, padded = episode_windows(first, n)  # (B, T, N) each
    b, t = (~first).nonzero(as_tuple=True)  # (M,) each: the targets
    window, pad = index[b, t - 1], padded[b, t - 1]  # (M, N): the N values before each target
    history = actions[b[:, None], window].masked_fill(pad[..., None], 0.0)  # (M, N, A)
    conditioning = torch.cat([history[:, 1:], actions[b, t][:, None]], dim=1).flatten(1)  # (M, N*A)
    return HistoryExamples(b, t, values[b[:, None], window], conditioning, values[b, t])


def readout_losses(batch: Batch, examples: HistoryExamples, vectors: Tensor, reward: Tensor, logit: Tensor,
                   vector: Tensor) -> dict[str, Tensor]:
    """The head's losses at the examples' steps: reward MSE, termination BCE and, when V > 0, the vector MSE.

    ``vectors`` (B, T, V) are the observed vectors; ``reward``, ``logit`` (M,) and ``vector`` (M, V) the head's.
    """
    b, t = examples.b, examples.t
    target_reward = torch.as_tensor(batch.reward, device=reward.device).float()[b, t]  # (M,)
    terminated = torch.as_tensor(batch.terminated, device=reward.device).float()[b, t]  # (M,)
    out = {"reward_mse": (reward - target_reward).square().mean(),
           "terminal_bce": F.binary_cross_entropy_with_logits(logit, terminated)}
    if vectors.shape[-1]:
        out["vector_mse"] = (vector - vectors[b, t]).square().mean()
    return out


class FrameNet(nn.Module):
    """EDM's F: the scaled noisy frame beside the N context frames, conditioned on the noise level and N actions."""

    def __init__(self, channels: int, action_dim: int, cfg: Config):
        super().__init__()
        self.patch, self.hidden = cfg.patch, cfg.hidden
        folded = cfg.patch**2
        self.cond = mlp(cfg.hidden + cfg.history * action_dim, cfg.hidden, cfg.hidden, 1, act=nn.SiLU)
        self.unet = UNet((cfg.history + 1) * channels * folded, channels * folded, cfg.hidden,
                         tuple(cfg.depth * m for m in cfg.channel_mult), cfg.blocks)

    def forward(self, x: Tensor, c_noise: Tensor, context: Tensor, actions: Tensor, game: Tensor | None = None
                ) -> Tensor:
        """x (B, C, H, W), c_noise (B,), context (B, N*C, H, W), actions (B, N*A), game (B, hidden) -> (B, C, H, W)."""
        cond = self.cond(torch.cat([noise_embedding(c_noise, self.hidden), actions], dim=-1))  # (B, hidden)
        if game is not None:
            cond = cond + game  # the game's embedding
        h = F.pixel_unshuffle(torch.cat([x, context], dim=1), self.patch)  # (B, (N+1) C p^2, H/p, W/p)
        return F.pixel_shuffle(self.unet(h, cond), self.patch)  # (B, C, H, W)


class Readout(nn.Module):
    """The head: N frames -> embedding; [embedding, previous vector, action] -> reward, termination, new vector."""

    def __init__(self, channels: int, vector_dim: int, action_dim: int, cfg: Config):
        super().__init__()
        self.vector_dim = vector_dim
        self.conv = ConvEncoder(cfg.history * channels, cfg.depth)
        self.embed = nn.Sequential(nn.Linear(self.conv.out_dim, cfg.hidden), nn.LayerNorm(cfg.hidden), nn.SiLU())
        self.head = mlp(cfg.hidden + vector_dim + action_dim, 2 + vector_dim, cfg.hidden, cfg.layers, act=nn.SiLU)

    def encode(self, frames: Tensor) -> Tensor:
        """(M, N, C, H, W) frames in [-1, 1] -> (M, hidden) embedding (read at 64x64: other sizes are resized)."""
        x = (frames.flatten(1, 2) + 1) / 2  # (M, N*C, H, W)
        if x.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
            x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="area")
        return self.embed(self.conv(x))

    def forward(self, embed: Tensor, vector: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Reward (M,), termination logit (M,) and the new vector (M, V) after ``action`` (M, A)."""
        out = self.head(torch.cat([embed, vector, action], dim=-1))  # (M, 2 + V)
        return out[:, 0], out[:, 1], vector + out[:, 2:]


PRESETS = {"campusnav-pixels": Preset(lr=3e-4)}
"""Tuned settings by data kind; pixels only (``model_zoo.make(..., preset=name)``; ``fit(..., lr=preset.lr)``)."""


class Diffusion(WorldModel):
    """DIAMOND-style denoiser over frame histories. State: see the module docstring."""

    Config = Config
    presets = PRESETS
    observation_kinds = ("image", "image+vector")

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, config: Config | None = None):
        super().__init__(observation_space, action_space, config if config is not None else Config())
        cfg, spec = self.config, self.spec
        self.channels = sum(shape[-1] for shape in spec.images.values())
        self.denoiser = Preconditioned(FrameNet(self.channels, spec.action_dim, cfg), cfg.sigma_data)
        self.readout = Readout(self.channels, spec.vector_dim, spec.action_dim, cfg)
        self.game_columns = self._game_columns()
        # created last, and only for several games: one game builds the same parameters from the same seed
        self.game = nn.Embedding(cfg.games, cfg.hidden) if cfg.games > 1 else None

    def _game_columns(self) -> slice | None:
        """The columns of the game's one-hot in the vector (None for one game); checks the space holds it."""
        games = self.config.games
        if games == 1:
            return None
        part = self.spec.vectors.get(GAME_KEY)
        if not isinstance(part, gym.spaces.Discrete) or int(part.n) != games or int(part.start) != 0:
            raise ValueError(f"Config.games={games} needs a Dict observation with a Discrete({games}) part "
                             f"{GAME_KEY!r} (model_zoo.data.Games builds one), got {self.observation_space}")
        start = 0
        for key, dim in self.spec.vector_dims.items():
            if key == GAME_KEY:
                return slice(start, start + dim)
            start += dim
        raise AssertionError("unreachable: the game part is a vector part")

    def game_embedding(self, vector: Tensor) -> Tensor | None:
        """The learned embedding (..., hidden) of the game in vectors (..., V); None for one game."""
        if self.game is None:
            return None
        return self.game(vector[..., self.game_columns].argmax(-1))

    def encode(self, frames: Tensor, vector: Tensor) -> Tensor:
        """The head's embedding (M, hidden) of N frames (M, N, C, H, W), plus the game's (from vector (M, V))."""
        embed = self.readout.encode(frames)
        game = self.game_embedding(vector)
        return embed if game is None else embed + game

    # --- helpers ----------------------------------------------------------------

    def frames(self, obs: Obs) -> Tensor:
        """The image parts of observations (...) stacked as channels: (..., C, S, S) in [-1, 1], S = image_size."""
        obs, size = self.spec.to_torch(obs, self.device), self.config.image_size
        return torch.cat([self.spec.image(obs, key, size) for key in self.spec.image_keys], dim=-3) * 2 - 1

    def sigmas(self) -> Tensor:
        """The sampler's (steps + 1,) noise levels, sigma_max down to 0."""
        cfg = self.config
        return karras_sigmas(cfg.steps, cfg.sigma_min, cfg.sigma_max, cfg.rho).to(self.device)

    def denoise(self, noisy: Tensor, sigma: Tensor, state: State, action: Tensor) -> Tensor:
        """D(noisy (B, C, H, W); sigma (B,)) given the state's history and the encoded action (B, A)."""
        context = state["frames"].flatten(1, 2)  # (B, N*C, H, W)
        actions = torch.cat([state["actions"][:, 1:], action[:, None]], dim=1).flatten(1)  # (B, N*A)
        game = self.game_embedding(state["vector"])
        return self.denoiser(noisy, sigma, context, actions, *(() if game is None else (game,)))

    def _push(self, state: State, frame: Tensor, action: Tensor, vector: Tensor) -> State:
        frames = torch.cat([state["frames"][:, 1:], frame[:, None]], dim=1)  # (B, N, C, H, W)
        actions = torch.cat([state["actions"][:, 1:], action[:, None]], dim=1)  # (B, N, A)
        return {"frames": frames, "actions": actions, "vector": vector, "embed": self.encode(frames, vector)}

    def _denoising_loss(self, examples: HistoryExamples, game: Tensor | None) -> Tensor:
        """EDM's weighted denoising error (M,) of every example's target frame, given its history (and game)."""
        clean = examples.target  # (M, C, H, W)
        sigma = draw_sigma(clean.shape[0], self.config.p_mean, self.config.p_std, device=clean.device)  # (M,)
        return self.denoiser.loss(clean, sigma, torch.randn_like(clean), examples.context.flatten(1, 2),
                                  examples.conditioning, *(() if game is None else (game,)))

    # --- the interface ------------------------------------------------------------

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """Denoising loss on every frame after the first of its episode in the window, plus the head's losses."""
        cfg = self.config
        B, T = batch.shape
        first = self._is_first(batch.is_first, (B, T)).clone()
        first[:, 0] = True  # the window's first step has no predecessor in the window
        frames = self.frames(batch.obs)  # (B, T, C, H, W)
        actions = self._action(batch.action, first)  # (B, T, A)
        if first.all():
            zero = frames.sum() * 0.0
            return zero, {"loss": 0.0, "denoise": 0.0, "reward_mse": 0.0, "terminal_bce": 0.0}
        examples = history_examples(frames, actions, first, cfg.history)
        vectors = self.spec.vector(self.spec.to_torch(batch.obs, self.device)).float()  # (B, T, V)
        b, t = examples.b, examples.t
        denoise = self._denoising_loss(examples, self.game_embedding(vectors[b, t])).mean()
        newest = torch.cat([examples.context[:, 1:], examples.target[:, None]], dim=1)  # (M, N, C, H, W)
        reward, logit, vector = self.readout(self.encode(newest, vectors[b, t]), vectors[b, t - 1],
                                             actions[b, t])  # (M,), (M,), (M, V)
        head = readout_losses(batch, examples, vectors, reward, logit, vector)
        total = denoise + cfg.reward_weight * head["reward_mse"] + cfg.terminal_weight * head["terminal_bce"]
        if "vector_mse" in head:
            total = total + cfg.vector_weight * head["vector_mse"]
        metrics = dict(loss=total, denoise=denoise, **head)
        values = torch.stack([v.detach().float() for v in metrics.values()]).tolist()  # one device sync
        return total, dict(zip(metrics, values, strict=True))

    def initial_state(self, batch_size: int) -> State:
        """Grey frames (zeros in [-1, 1]), zero actions, vector and embedding (with several games: game 0)."""
        cfg, device = self.config, self.device
        frames = torch.zeros(batch_size, cfg.history, self.channels, cfg.image_size, cfg.image_size, device=device)
        return {"frames": frames, "actions": torch.zeros(batch_size, cfg.history, self.spec.action_dim, device=device),
                "vector": torch.zeros(batch_size, self.spec.vector_dim, device=device),
                "embed": torch.zeros(batch_size, cfg.hidden, device=device)}

    def observe(self, state: State, action: Tensor, obs: Obs, is_first: Tensor) -> State:
        """Pushes the real frame and action; where ``is_first``, the frame fills the history and actions are zero."""
        B = state["frames"].shape[0]
        first = self._is_first(is_first, (B,))
        frame = self.frames(obs)  # (B, C, H, W)
        action = self._action(action, first)  # (B, A)
        reset = first[:, None, None, None, None]
        frames = torch.where(reset, frame[:, None].expand_as(state["frames"]), state["frames"])  # (B, N, C, H, W)
        actions = state["actions"].masked_fill(first[:, None, None], 0.0)  # (B, N, A)
        vector = self.spec.vector(self.spec.to_torch(obs, self.device)).float()  # (B, V)
        return self._push({"frames": frames, "actions": actions}, frame, action, vector)

    def imagine(self, state: State, action: Tensor, do: Mapping[str, Any] | None = None,
                generator: torch.Generator | None = None) -> Imagined:
        """Samples the next frame (``config.steps`` steps of ``config.sampler``), pushes it and reads the head.

        The step ends where the termination logit is above 0. Deterministic under a seeded
        ``generator`` (one draw: the starting noise).
        """
        self.check_do(do)
        cfg = self.config
        action = self._action(action)  # (B, A)
        shape = state["frames"].shape[:1] + state["frames"].shape[2:]  # (B, C, H, W)
        noise = torch.randn(shape, generator=generator, device=self.device)  # (B, C, H, W)
        sigmas = self.sigmas()
        frame = sample(lambda x, sigma: self.denoise(x, sigma, state, action), cfg.temperature * sigmas[0] * noise,
                       sigmas, SAMPLERS[cfg.sampler]).clamp(-1.0, 1.0)  # (B, C, H, W)
        new = self._push(state, frame, action, state["vector"])
        reward, logit, vector = self.readout(new["embed"], state["vector"], action)  # (B,), (B,), (B, V)
        if self.game_columns is not None:  # the game does not change within a dream
            vector = torch.cat([vector[:, : self.game_columns.start], state["vector"][:, self.game_columns],
                                vector[:, self.game_columns.stop :]], dim=-1)
        new["vector"] = vector
        return Imagined(new, reward, logit > 0, continuation=torch.sigmoid(-logit))

    @torch.no_grad()
    def decode(self, state: State) -> Obs:
        """The newest frame as the env's uint8 images, and the vector parts clipped into their bounds."""
        frame = (state["frames"][:, -1] + 1) / 2  # (B, C, H, W) in [0, 1]
        parts = frame.split([shape[-1] for shape in self.spec.images.values()], dim=1)
        vector = state["vector"] if self.spec.vector_dim else None
        return self.spec.assemble(dict(zip(self.spec.image_keys, parts, strict=True)), vector)

    def features(self, state: State) -> Tensor:
        return torch.cat([state["embed"], state["vector"]], dim=-1)  # (B, hidden + V)
