"""A token world model: a VQ-VAE tokenizer and a transformer over the last N frames, after IRIS.

Micheli, Alonso and Fleuret (2023), "Transformers are Sample-Efficient World Models"
(IRIS, arXiv:2209.00588): frames become discrete tokens (a VQ-VAE, van den Oord et al.
2017, arXiv:1711.00937) and a GPT-style transformer predicts the next frame's tokens,
the reward and the termination from the tokens and actions of the frames before it.

A frame is a block of tokens: its action, one continuous token per vector part, then
64 codes per image part (the tokenizer's 8x8 grid), each with learned spatial and
temporal embeddings. The transformer reads the last ``history`` frames and the next
action. Vectors are regressed, not quantized, so a vector-only space works unchanged.
Image codes are decoded ``"parallel"`` (mask tokens, one bidirectional pass) or
``"autoregressive"`` (code by code, with a KV cache). Copy logits (``copy_codes``) let
a code repeat one at or beside its slot in any context frame, since a moved view is
mostly an earlier frame shifted. ``loss`` trains tokenizer and transformer in one call,
the transformer on the tokenizer's codes as given (``train_tokenizer=False``: fixed).

State: ``tokens`` (B, N, P) codes of the last N frames, ``vector`` (B, N, V),
``action`` (B, N, A) and ``present`` (B, N) bool (absent parts are left out).

>>> import numpy as np, torch
>>> from gymnasium import spaces
>>> image = spaces.Box(0, 255, (64, 64, 3), np.uint8)
>>> model = VQVAETransformer(spaces.Dict({"image": image}), spaces.Discrete(3), Config(hidden=32, layers=1, depth=8,
...                                                                                    history=2))
>>> state = model.initial_state(2)
>>> out = model.imagine(state, torch.tensor([0, 2]), generator=torch.Generator().manual_seed(0))
>>> out.state["tokens"].shape, out.reward.shape, out.terminated.dtype, model.decode(out.state)["image"].shape
(torch.Size([2, 2, 64]), torch.Size([2]), torch.bool, torch.Size([2, 64, 64, 3]))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model_zoo.base import Batch, Imagined, Obs, State, WorldModel
from model_zoo.models.config_checks import check_non_negative
from model_zoo.nets import module_key
from model_zoo.nets.tokens import (
    COPY_OFFSETS,
    GRID,
    TOKENS_PER_IMAGE,
    ImageTokenizer,
    Transformer,
    neighbour_slots,
    sample_logits,
)

__all__ = ["DECODING_MODES", "Config", "NextFrame", "VQVAETransformer"]

DECODING_MODES = ("parallel", "autoregressive")
COPY_GAIN = 10.0  # scales the copy gates, so that they reach logits of several units within a few hundred Adam steps


@dataclass(frozen=True)
class Config:
    """Hyperparameters of the tokenizer and the transformer (defaults sized for a laptop CPU; IRIS-like widths
    are ``hidden=256, layers=6, heads=8``)."""

    codes: int = 128  # codebook size of the VQ-VAE
    code_dim: int = 32  # size of a code vector
    depth: int = 16  # channels of the tokenizer's first conv layer (then 2 * depth)
    history: int = 4  # N: frames of context the transformer reads (1: the single-frame baseline)
    hidden: int = 64  # transformer width
    layers: int = 2  # transformer blocks
    heads: int = 4  # attention heads (must divide hidden)
    decoding: str = "parallel"  # "parallel" (all codes at once) or "autoregressive" (code by code, KV cache)
    temperature: float = 1.0  # sampling temperature of imagined codes (0: argmax)
    top_k: int = 0  # draw from the k most likely codes only (0: all)
    copy_codes: bool = True  # copy logits: a code may repeat the code at its slot or a neighbouring one, any frame
    step_after_codes: bool = True  # autoregressive: reward, termination and vector read after the frame's codes
    teacher_noise: float = 0.15  # autoregressive training: share of teacher-forced input codes replaced at random
    train_targets: int = 32  # next frames predicted per loss call (drawn from the batch's valid steps)
    train_tokenizer: bool = True  # False: the tokenizer is fixed (e.g. loaded from another model); only the rest learns
    tokenizer_frames: int = 32  # frames per loss call the tokenizer learns from (drawn from the batch)
    commitment: float = 0.25  # beta, the commitment loss weight of the VQ-VAE
    dead_after: int = 50  # training steps a code may go unused before it is re-initialised
    usage_decay: float = 0.99  # decay of the moving average of code use
    vector_weight: float = 10.0  # weight of the next-vector MSE
    reward_weight: float = 1.0  # weight of the reward MSE
    terminal_weight: float = 1.0  # weight of the termination BCE

    # checkpoints saved before a field existed were saved as (model_zoo.checkpoint)
    SAVED_BEFORE: ClassVar[dict[str, Any]] = {"copy_codes": False, "step_after_codes": False, "teacher_noise": 0.0}

    def __post_init__(self):
        for name in ("codes", "code_dim", "depth", "history", "hidden", "layers", "heads", "train_targets",
                     "tokenizer_frames", "dead_after"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Config.{name} must be a positive integer, got {value!r}")
        if self.hidden % self.heads:
            raise ValueError(f"Config.hidden ({self.hidden}) must be a multiple of Config.heads ({self.heads})")
        if self.decoding not in DECODING_MODES:
            raise ValueError(f"Config.decoding must be one of {DECODING_MODES}, got {self.decoding!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"Config.top_k must be an integer >= 0 (0: no top-k), got {self.top_k!r}")
        check_non_negative(self, ("temperature", "commitment", "vector_weight", "reward_weight", "terminal_weight"))
        if not 0.0 <= self.teacher_noise < 1.0:
            raise ValueError(f"Config.teacher_noise must be in [0, 1), got {self.teacher_noise!r}")
        if not 0.0 <= self.usage_decay < 1.0:
            raise ValueError(f"Config.usage_decay must be in [0, 1), got {self.usage_decay!r}")


class NextFrame(NamedTuple):
    """The transformer's prediction of the next frame (``VQVAETransformer.generate``)."""

    tokens: Tensor  # (B, P) int64 codes drawn (P = 0 without images)
    vector: Tensor  # (B, V) the predicted vector parts
    reward: Tensor  # (B,)
    terminated_logit: Tensor  # (B,)
    logits: Tensor | None  # (B, P, K) the logits each code was drawn from, when asked for


class VQVAETransformer(WorldModel):
    """VQ-VAE tokens + a transformer over the last ``history`` frames. State: see the module docstring."""

    Config = Config

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, config: Config | None = None):
        super().__init__(observation_space, action_space, config if config is not None else Config())
        cfg, spec = self.config, self.spec
        self.tokenizers = nn.ModuleDict({
            module_key(k): ImageTokenizer(s[-1], cfg.depth, cfg.codes, cfg.code_dim, cfg.dead_after, cfg.usage_decay)
            for k, s in spec.images.items()
        })
        self.vector_keys = tuple(spec.vectors)
        self.num_tokens = TOKENS_PER_IMAGE * len(spec.image_keys)  # P
        self.num_vectors = len(self.vector_keys)  # E: one token per vector part
        self.frame_len = 1 + self.num_vectors + self.num_tokens  # F
        W = cfg.hidden
        self.action_embed = nn.Linear(spec.action_dim, W)
        self.vector_embeds = nn.ModuleList(nn.Linear(spec.vector_dims[k], W) for k in self.vector_keys)
        self.token_embed = nn.Embedding(cfg.codes, W)
        self.previous_embed = nn.Embedding(cfg.codes, W)  # the last frame's code at the slot being predicted
        self.spatial = nn.Parameter(torch.randn(self.frame_len, W) * 0.02)  # (F, W) slot in a frame
        self.temporal = nn.Parameter(torch.randn(cfg.history + 1, W) * 0.02)  # (N + 1, W) frame in the window
        self.pad = nn.Parameter(torch.randn(W) * 0.02)  # every slot of an absent frame
        self.mask = nn.Parameter(torch.randn(W) * 0.02)  # a code still to predict (parallel decoding)
        self.transformer = Transformer(W, cfg.layers, cfg.heads)
        self.token_head = nn.Linear(W, cfg.codes)
        if cfg.copy_codes and self.num_tokens:
            # source slot of each (offset, slot) pair: the slot itself and its four neighbours in the 8x8 grid
            self.register_buffer("copy_slots", neighbour_slots(len(spec.image_keys)), persistent=False)  # (O, P)
            self.copy_gate = nn.Linear(W, cfg.history * len(COPY_OFFSETS))  # one weight per (frame, offset)
            # and straight from the actions (the history's, the next, and each pair of them) and the history's
            # vectors: which way the view moved and will move, and what may stop it
            A, N = spec.action_dim, cfg.history
            self.copy_input_gate = nn.Linear((N + 1) * A + N * A * A + N * spec.vector_dim, N * len(COPY_OFFSETS))
            for layer in (self.copy_gate, self.copy_input_gate):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
        self.step_head = nn.Linear(W, 2 + spec.vector_dim)  # reward | termination logit | vector change
        nn.init.zeros_(self.step_head.weight)
        nn.init.zeros_(self.step_head.bias)

    # --- tokens ---------------------------------------------------------------------------

    def tokenize(self, obs: Obs) -> Tensor:
        """Codes of every image part of observations with leading dims (...): (..., P) int64."""
        spec = self.spec
        parts = []
        for key in spec.image_keys:
            x = spec.image(obs, key).to(self.device)  # (..., C, 64, 64)
            lead = x.shape[:-3]
            parts.append(self.tokenizers[module_key(key)].tokens(x.reshape((-1,) + x.shape[-3:])).reshape(lead + (-1,)))
        if not parts:
            return torch.zeros(self._lead(obs) + (0,), dtype=torch.int64, device=self.device)
        return torch.cat(parts, dim=-1)

    def decode_tokens(self, tokens: Tensor, vector: Tensor | None) -> Obs:
        """Env-format observations from codes (B, P) and vectors (B, V)."""
        images = {}
        for i, key in enumerate(self.spec.image_keys):
            part = tokens[:, i * TOKENS_PER_IMAGE : (i + 1) * TOKENS_PER_IMAGE]  # (B, 64)
            images[key] = torch.sigmoid(self.tokenizers[module_key(key)].decode_tokens(part))  # (B, C, 64, 64)
        return self.spec.assemble(images, vector)

    def _lead(self, obs: Obs) -> tuple[int, ...]:
        spec = self.spec
        if spec.vectors:
            return tuple(spec.vector(obs).shape[:-1])
        x = next(iter(spec.parts(obs).values()))
        return tuple(x.shape[:-3])

    # --- embeddings ---------------------------------------------------------------------------

    def _vector_tokens(self, vector: Tensor) -> Tensor:
        """Vectors (..., V) -> one embedding per vector part (..., E, W)."""
        out, start = [], 0
        for key, embed in zip(self.vector_keys, self.vector_embeds, strict=True):
            dim = self.spec.vector_dims[key]
            out.append(embed(vector[..., start : start + dim]))
            start += dim
        return torch.stack(out, dim=-2)

    def _embed_context(self, tokens: Tensor | None, vector: Tensor | None, action: Tensor, present: Tensor) -> Tensor:
        """N context frames (M, N, ...) -> their token embeddings (M, N * F, W)."""
        M, N = present.shape
        parts = [self.action_embed(action).unsqueeze(-2)]  # (M, N, 1, W)
        if self.num_vectors:
            parts.append(self._vector_tokens(vector))  # (M, N, E, W)
        if self.num_tokens:
            parts.append(self.token_embed(tokens))  # (M, N, P, W)
        x = torch.cat(parts, dim=-2)  # (M, N, F, W)
        x = torch.where(present[:, :, None, None], x, self.pad)
        x = x + self.spatial + self.temporal[:N, None]  # (M, N, F, W)
        return x.reshape(M, N * self.frame_len, -1)

    def _embed_next(self, action: Tensor, vector: Tensor | None, tokens: Tensor | None,
                    last_tokens: Tensor | None) -> Tensor:
        """The predicted frame's block (M, L, W) as the transformer reads it (see the module docstring).

        Parallel: [action, P mask tokens]. Autoregressive: [action, E vectors, codes 0..P-2]
        (teacher-forced ``vector`` (M, V) and ``tokens`` (M, P)); [action] alone without images.
        The position whose output predicts code i also reads the last frame's code i
        (``last_tokens`` (M, P)).
        """
        N, E, P = self.config.history, self.num_vectors, self.num_tokens
        head = self.action_embed(action).unsqueeze(1) + self.spatial[0]  # (M, 1, W)
        if P == 0:
            return head + self.temporal[N]
        previous = self.previous_embed(last_tokens)  # (M, P, W)
        if self.config.decoding == "parallel":
            masks = self.mask + self.spatial[1 + E :] + previous  # (M, P, W)
            return torch.cat([head, masks], dim=1) + self.temporal[N]
        if self.training and self.config.teacher_noise > 0:  # some inputs as wrong as a drawn code may be
            flip = torch.rand(tokens.shape, device=tokens.device) < self.config.teacher_noise
            tokens = torch.where(flip, torch.randint_like(tokens, self.config.codes), tokens)
        parts, lead = [head], 0  # lead: positions before the one that predicts code 0
        if E and not self.config.step_after_codes:
            parts.append(self._vector_tokens(vector) + self.spatial[1 : 1 + E])  # (M, E, W)
            lead = E
        codes = P if self.config.step_after_codes else P - 1
        parts.append(self.token_embed(tokens[:, :codes]) + self.spatial[1 + E : 1 + E + codes])  # (M, codes, W)
        block = torch.cat(parts, dim=1)  # (M, L', W)
        return torch.cat([block[:, :lead], block[:, lead : lead + P] + previous, block[:, lead + P :]],
                         dim=1) + self.temporal[N]

    # --- the transformer's prediction ---------------------------------------------------------------

    def _split_step(self, out: Tensor, last_vector: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
        """The step head on the action token's output (M, W): reward, termination logit, next vector."""
        step = self.step_head(out)  # (M, 2 + V)
        vector = last_vector + step[:, 2:] if last_vector is not None else None
        return step[:, 0], step[:, 1], vector

    def _copy_sources(self, history: Tensor, present: Tensor, actions: Tensor, action: Tensor,
                      vectors: Tensor | None) -> tuple[Tensor, Tensor, Tensor] | None:
        """What each code slot may copy: codes, whether they exist and the input part of their gates, each (M, P, S).

        S = N * O sources: source ``n * O + o`` of slot i is the code of context frame n at
        slot i moved by ``COPY_OFFSETS[o]``; absent frames and slots off the grid do not
        exist. The gate's input part reads the frames' ``actions`` (M, N, A), the next
        ``action`` (M, A), their products and the frames' ``vectors`` (M, N, V); it is the
        same for every slot. None when ``Config.copy_codes`` is off.
        """
        if not hasattr(self, "copy_gate"):
            return None
        M, N, P = history.shape
        slots = self.copy_slots  # (O, P)
        codes = history[:, :, slots.clamp(min=0)]  # (M, N, O, P)
        exists = present[:, :, None, None] & (slots >= 0)  # (M, N, O, P)
        actions = actions.masked_fill(~present[..., None], 0.0)  # (M, N, A)
        pairs = actions[..., :, None] * action[:, None, None, :]  # (M, N, A, A): each frame's action by the next
        inputs = [actions.flatten(1), action, pairs.flatten(1)]  # (M, N A), (M, A), (M, N A A)
        if vectors is not None:
            inputs.append(vectors.masked_fill(~present[..., None], 0.0).flatten(1))  # (M, N V)
        bias = self.copy_input_gate(torch.cat(inputs, dim=1))[:, None].expand(M, P, -1)  # (M, P, S)
        return (codes.permute(0, 3, 1, 2).reshape(M, P, -1), exists.permute(0, 3, 1, 2).reshape(M, P, -1), bias)

    def _copy_logits(self, h: Tensor, sources: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        """Logits (..., K) that add each source's gate (a linear read of ``h`` (..., W)) to the code it holds."""
        codes, exists, bias = sources  # (..., S)
        gates = COPY_GAIN * (self.copy_gate(h) + bias) * exists  # (..., S)
        return gates.new_zeros(gates.shape[:-1] + (self.config.codes,)).scatter_add_(-1, codes, gates)

    def _teacher_forced(self, frames: State, action: Tensor, vector: Tensor | None,
                        tokens: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """One full pass: (code logits (M, P, K), reward (M,), termination logit (M,), next vector (M, V)).

        ``frames`` are the N context frames, as a state holds them (M, N, ...); ``action``
        (M, A) leads to the predicted frame, whose ``vector`` and ``tokens`` are read only by
        autoregressive decoding (teacher forcing).
        """
        E, P = self.num_vectors, self.num_tokens
        history, vectors = frames.get("tokens"), frames.get("vector")  # (M, N, P), (M, N, V)
        context, last_vector = self._frames_context(frames)  # (M, N F, W), (M, V)
        block = self._embed_next(action, vector, tokens, history[:, -1] if history is not None else None)  # (M, L', W)
        x = torch.cat([context, block], dim=1)  # (M, L, W)
        # only the predicted frame's outputs are read
        h = self.transformer(x, causal=self.config.decoding == "autoregressive", last=block.shape[1])  # (M, L', W)
        if self.config.decoding == "parallel" or P == 0:
            step, start = 0, 1  # the step at the action, code i at mask i
        elif self.config.step_after_codes:
            step, start = P, 0  # the step after the last code
        else:
            step, start = 0, E  # checkpoints from before: the step at the action, then the vectors
        reward, term, next_vector = self._split_step(h[:, step], last_vector)
        if P == 0:
            return h.new_zeros(h.shape[0], 0, self.config.codes), reward, term, next_vector
        h = h[:, start : start + P]  # (M, P, W): output i predicts code i
        logits = self.token_head(h)  # (M, P, K)
        sources = self._copy_sources(history, frames["present"], frames["action"], action, vectors)
        if sources is not None:
            logits = logits + self._copy_logits(h, sources)
        return logits, reward, term, next_vector

    def _frames_context(self, frames: State) -> tuple[Tensor, Tensor | None]:
        """Context frames as a state holds them (M, N, ...) -> their embeddings (M, N F, W) and last vector (M, V)."""
        vectors = frames.get("vector")
        context = self._embed_context(frames.get("tokens"), vectors, frames["action"], frames["present"])
        return context, (vectors[:, -1] if vectors is not None else None)

    def generate(self, state: State, action: Tensor, generator: torch.Generator | None = None, *,
                 use_cache: bool = True, return_logits: bool = False) -> NextFrame:
        """Draws the next frame after ``state`` under ``action`` (B,) or (B, A), with the config's decoding.

        Autoregressive decoding runs the context and the action once into a KV cache,
        then one incremental step per code (``use_cache=False``: a full causal pass over
        the whole sequence per code, every position through every block as a plain GPT
        forward computes it; the same logits, slowly). ``return_logits`` keeps the
        logits every code was drawn from.
        """
        cfg = self.config
        E, P = self.num_vectors, self.num_tokens
        action = self._action(action)  # (B, A)
        if P == 0 or cfg.decoding == "parallel":
            logits, reward, term, vector = self._teacher_forced(state, action, None, None)
            tokens = sample_logits(logits, cfg.temperature, cfg.top_k, generator)  # (B, P)
            return NextFrame(tokens, vector, reward, term, logits if return_logits else None)
        history, vectors, present = state["tokens"], state.get("vector"), state["present"]  # (B, N, P), (B, N, V)
        context, last_vector = self._frames_context(state)  # (B, N F, W), (B, V)
        B = action.shape[0]
        head = (self.action_embed(action) + self.spatial[0] + self.temporal[cfg.history]).unsqueeze(1)  # (B, 1, W)
        # autoregressive: [context, action] -> code 0 -> ... -> code P-1 -> the step (reward, termination, vector);
        # checkpoints from before step_after_codes: [context, action] -> the step, its vectors -> code 0 -> ... -> P-1
        previous = self.previous_embed(history[:, -1])  # (B, P, W): last frame code i, read where code i is predicted
        sources = self._copy_sources(history, present, state["action"], action, vectors)  # 3 x (B, P, S), or None
        cache = self.transformer.cache(B, context.shape[1] + self.frame_len) if use_cache else None
        first = cfg.step_after_codes or not E  # the action's output predicts code 0
        seen = torch.cat([context, head + previous[:, :1] if first else head], dim=1)  # (B, L0, W): all (no cache)
        h = self.transformer(seen, causal=True, cache=cache, last=1 if use_cache else None)[:, -1]  # (B, W)
        if not cfg.step_after_codes:  # checkpoints from before: the step first, then its vectors as tokens
            reward, term, vector = self._split_step(h, last_vector)
            if E:
                vec = self._vector_tokens(vector) + self.spatial[1 : 1 + E] + self.temporal[cfg.history]  # (B, E, W)
                vec = torch.cat([vec[:, :-1], vec[:, -1:] + previous[:, :1]], dim=1)
                seen = torch.cat([seen, vec], dim=1)
                h = self.transformer(vec, True, cache, last=1) if use_cache else self.transformer(seen, True)
                h = h[:, -1]
        tokens = torch.empty(B, P, dtype=torch.int64, device=context.device)
        position = self.spatial[1 + E :] + self.temporal[cfg.history]  # (P, W): where each code sits
        all_logits = []
        for i in range(P):
            logits = self.token_head(h)  # (B, K)
            if sources is not None:
                logits = logits + self._copy_logits(h, tuple(part[:, i] for part in sources))
            if return_logits:
                all_logits.append(logits)
            tokens[:, i] = sample_logits(logits, cfg.temperature, cfg.top_k, generator)
            if i + 1 == P and not cfg.step_after_codes:
                break
            x = self.token_embed(tokens[:, i]) + position[i]  # (B, W)
            if i + 1 < P:
                x = x + previous[:, i + 1]
            if use_cache:
                h = self.transformer(x.unsqueeze(1), causal=True, cache=cache)[:, -1]
            else:
                seen = torch.cat([seen, x.unsqueeze(1)], dim=1)
                h = self.transformer(seen, causal=True)[:, -1]  # every position, as a plain GPT pass
        if cfg.step_after_codes:
            reward, term, vector = self._split_step(h, last_vector)  # after the last code
        logits = torch.stack(all_logits, dim=1) if return_logits else None  # (B, P, K)
        return NextFrame(tokens, vector, reward, term, logits)

    def teacher_forced_logits(self, state: State, action: Tensor, tokens: Tensor,
                              vector: Tensor | None = None) -> Tensor:
        """Code logits (B, P, K) of the next frame in one full (causal-masked, when autoregressive) pass.

        ``tokens`` (B, P) are the next frame's codes and ``vector`` (B, V) its vector parts;
        autoregressive decoding reads them shifted by one (teacher forcing), parallel
        decoding ignores them.
        """
        return self._teacher_forced(state, self._action(action), vector, tokens)[0]

    # --- the interface --------------------------------------------------------------------------

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """Tokenizer losses on every frame plus the transformer's on up to ``train_targets`` next frames."""
        cfg, spec, device = self.config, self.spec, self.device
        B, T = batch.shape
        first = torch.as_tensor(batch.is_first, device=device).bool()
        if first.shape != (B, T):
            raise ValueError(f"batch.is_first must have shape {(B, T)}, got {tuple(first.shape)}")
        metrics: dict[str, Tensor] = {}
        total = torch.zeros((), device=device)

        # the tokenizer: codes of every frame for the transformer; its own losses on up to tokenizer_frames frames
        codes = []
        learn = torch.randperm(B * T, device=device)[: cfg.tokenizer_frames] if cfg.train_tokenizer else None
        for key in spec.image_keys:
            images = spec.image(batch.obs, key).to(device)  # (B, T, C, 64, 64)
            flat = images.reshape((B * T,) + images.shape[2:])
            tokenizer = self.tokenizers[module_key(key)]
            with torch.no_grad():
                codes.append(tokenizer.tokens(flat).reshape(B, T, -1))  # (B, T, 64)
            if learn is None:
                continue
            q = tokenizer.quantize(flat[learn])
            recon = torch.sigmoid(tokenizer.decode(q.quantized))  # (n, C, 64, 64)
            recon_mse = F.mse_loss(recon, flat[learn])
            total = total + recon_mse + q.codebook_loss + cfg.commitment * q.commitment_loss
            counts = torch.bincount(q.indices.flatten(), minlength=cfg.codes).float()
            probs = counts / counts.sum()
            name = key or "image"
            metrics |= {f"recon_mse_{name}": recon_mse, f"codebook_loss_{name}": q.codebook_loss,
                        f"commitment_{name}": q.commitment_loss,
                        f"codes_used_{name}": (counts > 0).float().mean(),
                        f"perplexity_{name}": torch.exp(-(probs * torch.log(probs.clamp(min=1e-10))).sum()),
                        f"code_restarts_{name}": tokenizer.quantizer.restarts.float()}
        tokens = torch.cat(codes, dim=-1) if codes else None  # (B, T, P)
        vector = spec.vector(batch.obs).to(device) if spec.vectors else None  # (B, T, V)
        action = self._action(batch.action, first)  # (B, T, A)

        # the transformer, on next frames whose predecessor is in the same episode
        b, t = (~first[:, 1:]).nonzero(as_tuple=True)
        t = t + 1
        if b.numel() > cfg.train_targets:
            keep = torch.randperm(b.numel(), device=device)[: cfg.train_targets]
            b, t = b[keep], t[keep]
        if b.numel():
            N = cfg.history
            steps = torch.arange(T, device=device)
            start = torch.cummax(torch.where(first, steps, torch.zeros_like(steps)), dim=1).values  # (B, T)
            frames = t[:, None] - N + torch.arange(N, device=device)  # (M, N): t-N .. t-1
            present = frames >= start[b, t - 1][:, None]  # (M, N) inside the episode (and the window)
            frames = frames.clamp(min=0)
            rows = b[:, None]
            context = {"action": action[rows, frames], "present": present}  # the N frames before each target
            if tokens is not None:
                context["tokens"] = tokens[rows, frames]  # (M, N, P)
            if vector is not None:
                context["vector"] = vector[rows, frames]  # (M, N, V)
            target_tokens = tokens[b, t] if tokens is not None else None  # (M, P)
            target_vector = vector[b, t] if vector is not None else None  # (M, V)
            logits, reward, term, next_vector = self._teacher_forced(context, action[b, t], target_vector,
                                                                     target_tokens)
            real_reward = torch.as_tensor(batch.reward, device=device).float()[b, t]
            real_term = torch.as_tensor(batch.terminated, device=device).float()[b, t]
            reward_mse = F.mse_loss(reward, real_reward)
            bce = F.binary_cross_entropy_with_logits(term, real_term)
            total = total + cfg.reward_weight * reward_mse + cfg.terminal_weight * bce
            metrics |= {"reward_mse": reward_mse, "terminal_bce": bce}
            if target_tokens is not None:
                ce = F.cross_entropy(logits.reshape(-1, cfg.codes), target_tokens.reshape(-1))
                total = total + ce
                metrics |= {"token_ce": ce, "token_acc": (logits.argmax(-1) == target_tokens).float().mean()}
            if target_vector is not None:
                vector_mse = F.mse_loss(next_vector, target_vector)
                total = total + cfg.vector_weight * vector_mse
                metrics["vector_mse"] = vector_mse
        metrics = {"loss": total} | metrics
        values = torch.stack([v.detach().float() for v in metrics.values()]).tolist()  # one device sync
        return total, dict(zip(metrics, values, strict=True))

    def initial_state(self, batch_size: int) -> State:
        """No frames yet: every frame absent, codes 0, vectors and actions zero."""
        N, device = self.config.history, self.device
        state = {"action": torch.zeros(batch_size, N, self.spec.action_dim, device=device),
                 "present": torch.zeros(batch_size, N, dtype=torch.bool, device=device)}
        if self.num_tokens:
            state["tokens"] = torch.zeros(batch_size, N, self.num_tokens, dtype=torch.int64, device=device)
        if self.num_vectors:
            state["vector"] = torch.zeros(batch_size, N, self.spec.vector_dim, device=device)
        return state

    def _push(self, state: State, tokens: Tensor | None, vector: Tensor | None, action: Tensor,
              keep: Tensor | None = None) -> State:
        """The state with its oldest frame dropped and a new one appended; earlier frames absent where not ``keep``."""
        present = state["present"][:, 1:]
        if keep is not None:
            present = present & keep[:, None]
        new = {"action": action, "present": torch.ones(action.shape[0], dtype=torch.bool, device=action.device)}
        if tokens is not None:
            new["tokens"] = tokens
        if vector is not None:
            new["vector"] = vector
        return {k: torch.cat([present if k == "present" else state[k][:, 1:], v.unsqueeze(1)], dim=1)
                for k, v in new.items()}

    def observe(self, state: State, action: Tensor, obs: Obs, is_first: Tensor) -> State:
        """Appends the observed frame (its codes, vectors and action) to the history; forgets it at ``is_first``."""
        B = state["present"].shape[0]
        first = torch.as_tensor(is_first, device=self.device).bool()
        if first.shape != (B,):
            raise ValueError(f"is_first must have shape {(B,)}, got {tuple(first.shape)}")
        obs = self.spec.to_torch(obs, self.device)
        tokens = self.tokenize(obs) if self.num_tokens else None  # (B, P)
        vector = self.spec.vector(obs).float() if self.num_vectors else None  # (B, V)
        return self._push(state, tokens, vector, self._action(action, first), keep=~first)

    def imagine(self, state: State, action: Tensor, do: Mapping[str, Any] | None = None,
                generator: torch.Generator | None = None) -> Imagined:
        """Draws the next frame (see ``generate``) and appends it to the history.

        The step ends where the predicted termination probability is above 1/2; deterministic under a seeded
        ``generator``.
        """
        self.check_do(do)
        nxt = self.generate(state, action, generator)
        tokens = nxt.tokens if self.num_tokens else None
        state = self._push(state, tokens, nxt.vector, self._action(action))
        return Imagined(state, nxt.reward, nxt.terminated_logit > 0)

    @torch.no_grad()
    def decode(self, state: State) -> Obs:
        """The last frame in the env's format (images from its codes; vectors clipped into their bounds)."""
        tokens = state["tokens"][:, -1] if self.num_tokens else None
        vector = state["vector"][:, -1] if self.num_vectors else None
        return self.decode_tokens(tokens, vector)

    def features(self, state: State) -> Tensor:
        """The last frame: its code vectors average-pooled to 2x2 per image part (4 * code_dim each), its vectors."""
        parts = []
        for i, key in enumerate(self.spec.image_keys):
            codes = state["tokens"][:, -1, i * TOKENS_PER_IMAGE : (i + 1) * TOKENS_PER_IMAGE]  # (B, 64)
            z = self.tokenizers[module_key(key)].quantizer.embed(codes)  # (B, 64, D)
            z = z.reshape(-1, GRID, GRID, z.shape[-1]).permute(0, 3, 1, 2)  # (B, D, 8, 8)
            parts.append(F.adaptive_avg_pool2d(z, 2).flatten(1))  # (B, 4 D)
        if self.num_vectors:
            parts.append(state["vector"][:, -1])
        return torch.cat(parts, dim=-1)

    # --- evaluation ----------------------------------------------------------------------------

    @torch.no_grad()
    def evaluation_metrics(self, window: Batch, context: int, horizons: tuple[int, ...],
                           generator: torch.Generator) -> dict[str, tuple[float, int]]:
        """``token_acc@k``: the share of imagined codes equal to the real frame's codes, k steps ahead.

        Filters ``context`` real steps, imagines open loop with the real actions, and
        compares at each horizon; steps past the episode's end are not scored (as in
        ``model_zoo.evaluate``). Empty without image parts.
        """
        if not self.num_tokens:
            return {}
        real = self.tokenize(window.obs)  # (B, T, P)
        B = real.shape[0]
        first = window.is_first.bool().to(self.device)
        terminated = window.terminated.bool().to(self.device)
        state = self.initial_state(B)
        for t in range(context):
            obs = {k: v[:, t] for k, v in window.obs.items()} if isinstance(window.obs, Mapping) else window.obs[:, t]
            state = self.observe(state, window.action[:, t], obs, first[:, t])
        valid = ~terminated[:, context - 1]
        out: dict[str, tuple[float, int]] = {}
        for j in range(1, horizons[-1] + 1):
            t = context + j - 1
            valid = valid & ~first[:, t]
            state = self.imagine(state, window.action[:, t], generator=generator).state
            if j in horizons:
                accuracy = (state["tokens"][:, -1] == real[:, t]).float().mean(-1)  # (B,)
                out[f"token_acc@{j}"] = (float(accuracy[valid].sum()), int(valid.sum()))
            valid = valid & ~terminated[:, t]
        return out
