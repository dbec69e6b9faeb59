"""A causal V + M: a VAE with separate latent groups and an MDN-RNN intervenable through causal variables.

The backbone is Ha & Schmidhuber (2018), "World Models" (arXiv:1803.10122); what is
added follows the structural causal model view of Pearl (2009), "Causality", and
Schölkopf et al. (2021), "Toward Causal Representation Learning" (arXiv:2102.11107):
the env's causal variables are explicit inputs, each with a small learned mechanism
over its parents in ``config.graph``, so ``imagine(..., do=...)`` is a hard
intervention propagated to their descendants.

V splits ``z`` into named groups (``GROUPS``), each with a posterior ``q(z_g | x)`` and
a prior ``p(z_g | causes of g)`` (``ENV_EFFECTS``); the decoder reads every group beside
its causes, so an intervention reaches the decoded observation. M gives each dynamic group
its own LSTM over ``[z_g, action, causes of g]`` and mixture head: an intervention moves
exactly the groups it causes. The static group (``STATIC_GROUPS``, the layout) is carried
over unchanged by imagination and taught to stay fixed within an episode. Reward,
termination and two inference heads (the causal variables from ``[h, z]``) read every group.

>>> import numpy as np, torch
>>> import gymnasium as gym, campus_env
>>> env = gym.make("CampusNav-v0", obs_mode="state")
>>> model = CausalVAEMDNRNN(env.observation_space, env.action_space, Config(hidden=16, mech_hidden=8))
>>> obs, info = env.reset(seed=0, options={"do": {"weather": "sunny", "gameday": False}})
>>> state = model.observe(model.initial_state(1), torch.zeros(1, dtype=torch.int64),
...                       torch.as_tensor(obs[None]), torch.ones(1, dtype=torch.bool))
>>> model.causal_values(state)[0]["weather"]
'sunny'
>>> out = model.imagine(state, torch.tensor([1]), do={"weather": "snowy"}, generator=torch.Generator().manual_seed(0))
>>> model.causal_values(out.state)[0]["weather"], out.reward.shape
('snowy', torch.Size([1]))
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from campus_env import causal
from campus_env.schema import CAUSAL_DIM
from model_zoo.base import Batch, Imagined, Obs, State, WorldModel
from model_zoo.models.config_checks import check_non_negative
from model_zoo.nets import (
    ObsDecoder,
    ObsEncoder,
    mixture_log_prob,
    mlp,
    reconstruction_error,
    sample_mixture,
    split_mixture,
)
from model_zoo.nets.causal_codes import (
    HOUR_HIGH,
    HOUR_LOW,
    INDEX,
    MINUTE,
    NAMES,
    VariableHead,
    causal_features,
    causal_slot,
    check_effects,
    check_graph,
    code_values,
    feature_width,
    graph_config,
    obs_causal_codes,
    obs_causal_vector,
    output_width,
    topological_order,
)
from model_zoo.nets.mdn import draw_symlog_mixture, symlog_mixture_nll
from model_zoo.nets.vector_delta import VectorDelta
from model_zoo.registry import Preset

__all__ = ["ENV_EFFECTS", "GROUPS", "STATIC_GROUPS", "CausalVAEMDNRNN", "Config", "graph_config", "obs_causal_codes",
           "obs_causal_vector"]

GROUPS: tuple[str, ...] = ("layout", "local", "social", "temporal")
STATIC_GROUPS: tuple[str, ...] = ("layout",)  # held fixed by imagination: the campus map does not change in a dream
DYNAMIC_GROUPS: tuple[str, ...] = tuple(g for g in GROUPS if g not in STATIC_GROUPS)
ENV_EFFECTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("layout", ("day", "hour", "semester", "gameday", "road_closure")),
    ("local", ("semester", "weather", "road_closure")),
    ("social", ("day", "hour", "gameday", "crowd")),
    ("temporal", ("day", "hour")),
)
OBS_CAUSAL_DIM = CAUSAL_DIM  # CampusNav's causal observation, laid out by campus_env.schema.CAUSAL_SLICES


@dataclass(frozen=True)
class Config:
    """Hyperparameters of the causal V and M (defaults train on a laptop CPU)."""

    layout_dim: int = 8  # latent size of the global-layout group
    local_dim: int = 8  # latent size of the local-surroundings group
    social_dim: int = 4  # latent size of the social/crowd group
    temporal_dim: int = 4  # latent size of the temporal group
    hidden: int = 128  # LSTM units of M, split among the dynamic groups' own LSTMs
    mixtures: int = 5  # Gaussians per group head
    temperature: float = 1.0  # sampling temperature of imagine (0: most likely values)
    depth: int = 32  # channels of the first conv layer of V
    vector_hidden: int = 128  # width of the MLP for vector parts
    mech_hidden: int = 32  # width of each causal mechanism's MLP
    graph: Any = "env"  # "env" (campus_env.causal.CAUSAL_GRAPH) or ((variable, (parents, ...)), ...)
    effects: Any = "env"  # "env" (ENV_EFFECTS) or ((group, (variables, ...)), ...)
    causal_obs: str = "auto"  # "auto": read the causal variables from CampusNav observations; "none": infer them
    kl_weight: float = 1.0
    static_weight: float = 1.0  # weight of the squared change of a static group's posterior mean within an episode
    free_nats: float = 0.5  # KL per frame clamped below at free_nats * z_dim
    vector_weight: float = 100.0  # a vector element counts as much as this many pixels in V's reconstruction
    reward_weight: float = 1.0
    terminal_weight: float = 1.0
    # 0: the reward is regressed (MSE) and imagined as its expected value. K > 0: M predicts a mixture of K
    # Gaussians over the symlog reward, as it does for z, and imagined rewards are drawn from it: a blocked
    # move's penalty or a plain step's cost with their predicted odds, not the average of the two
    reward_mixtures: int = 3
    causal_weight: float = 1.0  # weight of the mechanisms' and inference heads' losses
    # the state carries the vector part, moved by M's change head (model_zoo.nets.vector_delta) rather than decoded
    # from z: exact positions stay exact where V's decoder is cells off (a causal part still shows the codes)
    delta_vector: bool = False
    min_logstd: float = -5.0
    max_logstd: float = 2.0

    def __post_init__(self):
        for name in ("layout_dim", "local_dim", "social_dim", "temporal_dim", "hidden", "mixtures", "depth",
                     "vector_hidden", "mech_hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Config.{name} must be a positive integer, got {value!r}")
        k = self.reward_mixtures
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ValueError(f"Config.reward_mixtures must be an integer >= 0, got {k!r}")
        check_non_negative(self, ("temperature", "kl_weight", "free_nats", "vector_weight", "reward_weight",
                                  "terminal_weight", "causal_weight", "static_weight"))
        if self.hidden < len(DYNAMIC_GROUPS):
            raise ValueError(f"Config.hidden must be at least {len(DYNAMIC_GROUPS)} (one unit per dynamic group), "
                             f"got {self.hidden}")
        if self.causal_obs not in ("auto", "none"):
            raise ValueError(f"Config.causal_obs must be 'auto' or 'none', got {self.causal_obs!r}")
        if not self.min_logstd < self.max_logstd:
            raise ValueError(f"Config.min_logstd ({self.min_logstd}) must be below max_logstd ({self.max_logstd})")
        object.__setattr__(self, "graph", check_graph(self.graph))
        effects = ENV_EFFECTS if self.effects == "env" else check_effects(self.effects, GROUPS)
        object.__setattr__(self, "effects", effects)

    @property
    def group_dims(self) -> dict[str, int]:
        return {g: getattr(self, f"{g}_dim") for g in GROUPS}

    @property
    def z_dim(self) -> int:
        return sum(self.group_dims.values())

    @property
    def hidden_dims(self) -> dict[str, int]:
        """Each dynamic group's share of ``hidden``: its own LSTM's units."""
        n = len(DYNAMIC_GROUPS)
        return {g: self.hidden // n + (i < self.hidden % n) for i, g in enumerate(DYNAMIC_GROUPS)}


# --- the world model -----------------------------------------------------------------------------


class CausalVAEMDNRNN(WorldModel):
    """Hierarchical grouped V + causal M.

    State: ``{"h", "c": (B, hidden) the dynamic groups' LSTMs side by side (``Config.hidden_dims``),
    "z": (B, z_dim) the groups in GROUPS order,
    "causal": (B, 7) the codes in force, "natural": (B, 7) the codes without interventions
    (what they go back to when an intervention ends), "residual": (B, 7) abducted noise
    of interval variables}``.
    """

    Config = Config
    # campusnav-state: delta_vector keeps the agent's cell exact, lr 1e-3 sharpens it (docs/results/preset_checks.md)
    presets = {"campusnav-state": Preset(config={"delta_vector": True}, lr=1e-3), "campusnav-pixels": Preset()}
    first_action = "lowest"  # trained so: an episode's first action is encoded as the lowest action
    supports_do = True

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, config: Config | None = None):
        super().__init__(observation_space, action_space, config if config is not None else Config())
        cfg, spec = self.config, self.spec
        self.parents: dict[str, tuple[str, ...]] = dict(cfg.graph)
        self.order = topological_order(self.parents)
        self.effects: dict[str, tuple[str, ...]] = {g: tuple(n for n in NAMES if n in vs) for g, vs in cfg.effects}
        self.causes = tuple(n for n in NAMES if any(n in vs for vs in self.effects.values()))  # the union
        self.group_dims = cfg.group_dims
        self.slot = None
        if cfg.causal_obs == "auto":
            self.slot = causal_slot(observation_space, tuple(spec.vectors), spec.vector_dims)
        width = {g: sum(feature_width(n) for n in self.effects[g]) for g in GROUPS}
        cause_width = sum(feature_width(n) for n in self.causes)
        z_dim, k = cfg.z_dim, cfg.mixtures

        # V: one encoder, a posterior and a prior per group, the prior reading only the group's causes
        self.encoder = ObsEncoder(spec, cfg.depth, cfg.vector_hidden)
        self.norm = nn.LayerNorm(self.encoder.out_dim)
        dims, self.hidden_dims = self.group_dims, cfg.hidden_dims
        self.posteriors = nn.ModuleDict({g: nn.Linear(self.encoder.out_dim, 2 * dims[g]) for g in GROUPS})
        self.priors = nn.ModuleDict({g: mlp(width[g] + 1, 2 * dims[g], cfg.mech_hidden, 1) for g in GROUPS})
        self.decoder = ObsDecoder(spec, z_dim + sum(width.values()), cfg.depth, cfg.vector_hidden)

        # M: an LSTM and a mixture head per dynamic group over [its z, action, its causes]; reward, termination,
        # the static and dynamic heads read every group's LSTM
        self.cells = nn.ModuleDict({
            g: nn.LSTMCell(dims[g] + spec.action_dim + width[g], self.hidden_dims[g]) for g in DYNAMIC_GROUPS
        })
        self.group_heads = nn.ModuleDict(
            {g: nn.Linear(self.hidden_dims[g] + width[g], k * (1 + 2 * dims[g])) for g in DYNAMIC_GROUPS}
        )
        # linear in [h, causes]: effects of the causes add up, so unseen combinations of them extrapolate;
        # the termination first, then the reward given it: p(r, end | h, causes) = p(end | ...) p(r | ..., end)
        self.end_head = nn.Linear(cfg.hidden + cause_width, 1)  # termination logit
        self.reward_width = 3 * cfg.reward_mixtures or 1
        self.reward_head = nn.Linear(cfg.hidden + z_dim + cause_width, 2 * self.reward_width)  # go on | end
        if cfg.reward_mixtures:  # an untrained mixture draws rewards near 0, not over the whole symlog line
            k = cfg.reward_mixtures
            with torch.no_grad():
                self.reward_head.weight.mul_(0.1)
                bias = self.reward_head.bias.view(2, 3 * k)
                bias[:, k : 2 * k] = torch.linspace(-0.1, 0.1, k)  # component means, symlog
                bias[:, 2 * k :] = math.log(0.05)  # component log-stds
        static = tuple(n for n in NAMES if not causal.VARIABLES[n].dynamic)
        dynamic = tuple(n for n in NAMES if causal.VARIABLES[n].dynamic)
        self.static_head = VariableHead(static, nn.Linear(cfg.hidden + z_dim, sum(map(output_width, static))))
        self.dynamic_head = VariableHead(dynamic, nn.Linear(cfg.hidden + z_dim, sum(map(output_width, dynamic))))
        self.delta = None  # with delta_vector: the change head of the vector part, reading [h, causes]
        if cfg.delta_vector and spec.vector_dim:
            self.delta = VectorDelta(cfg.hidden + cause_width, spec.vector_dim, spec.action_dim, cfg.vector_hidden)
        # one mechanism per variable with parents: P(variable | parents)
        self.mechanisms = nn.ModuleDict({
            n: VariableHead((n,), mlp(sum(feature_width(p) for p in ps), output_width(n), cfg.mech_hidden, 1))
            for n, ps in self.parents.items() if ps
        })

    # --- helpers ------------------------------------------------------------------------------

    def _groups(self, z: Tensor) -> dict[str, Tensor]:
        return dict(zip(GROUPS, z.split(list(self.group_dims.values()), dim=-1), strict=True))

    def _step(self, z: Tensor, action: Tensor, codes: Tensor, h: Tensor, c: Tensor,
              first: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """M's recurrence: each dynamic group's LSTM reads its own z (B, D_g), the action (B, A) and its own causes
        in ``codes`` (B, 7), nothing of the other groups; h and c (B, hidden) are the groups' states side by side,
        restarted at zero where ``first`` (B,)."""
        split = list(self.hidden_dims.values())
        zs, hs, cs = self._groups(z), h.split(split, -1), c.split(split, -1)
        out = [self.cells[g](torch.cat([zs[g], action, causal_features(codes, self.effects[g])], -1), (hg, cg))
               for g, hg, cg in zip(DYNAMIC_GROUPS, hs, cs, strict=True)]
        h, c = torch.cat([o[0] for o in out], -1), torch.cat([o[1] for o in out], -1)  # (B, hidden) each
        return (h, c) if first is None else (h.masked_fill(first[:, None], 0.0), c.masked_fill(first[:, None], 0.0))

    def _group_mdn(self, g: str, h: Tensor, codes: Tensor):
        """The mixture over the dynamic group ``g``'s next z from its own LSTM's part of h and its causes."""
        hg = h.split(list(self.hidden_dims.values()), -1)[DYNAMIC_GROUPS.index(g)]
        out = self.group_heads[g](torch.cat([hg, causal_features(codes, self.effects[g])], -1))
        return split_mixture(out, self.config.mixtures, self.group_dims[g])

    def upgrade_tensors(self, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
        """Refuses a checkpoint saved while the latent groups shared one LSTM: no mapping to the new layout exists."""
        if "cell.weight_ih" in tensors:
            from model_zoo.checkpoint import CheckpointError

            raise CheckpointError("causal_vae_mdnrnn checkpoint saved before the latent groups got their own "
                                  "LSTMs and priors (one shared LSTM, a ladder of priors): retrain it")
        return tensors

    def _decoder_input(self, z: Tensor, codes: Tensor) -> Tensor:
        parts = []
        for g, zg in self._groups(z).items():
            parts += [zg, causal_features(codes, self.effects[g])]
        return torch.cat(parts, dim=-1)  # (..., Z + causal widths)

    def observed_codes(self, obs: Obs) -> Tensor | None:
        """The causal codes (..., 7) an observation shows, or None when it shows none (see ``causal_obs``)."""
        if self.slot is None:
            return None
        vector = self.spec.vector(obs).to(self.device)
        return obs_causal_codes(vector[..., self.slot : self.slot + OBS_CAUSAL_DIM])

    def infer_codes(self, h: Tensor, z: Tensor) -> Tensor:
        """The static and dynamic heads' most likely codes (..., 7) from ``[h, z]``."""
        x = torch.cat([h, z], dim=-1)
        out = {**self.static_head(x), **self.dynamic_head(x)}
        flat = {n: o.reshape(-1, o.shape[-1]) for n, o in out.items()}
        codes = torch.stack([VariableHead.draw(n, flat[n], 0.0, None) for n in NAMES], dim=-1)  # (N, 7)
        return codes.reshape(h.shape[:-1] + (len(NAMES),))

    def encode(self, obs: Obs, sample: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """V's posterior of observations with any leading dims: z (sampled or the means), means and log-variances."""
        feats = self.norm(self.encoder(obs))  # (..., F)
        zs, means, logvars = [], [], []
        for g in GROUPS:  # each group's posterior reads the observation only, not the other groups
            mean, logvar = self.posteriors[g](feats).chunk(2, dim=-1)  # (..., D_g)
            z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean) if sample else mean
            zs.append(z)
            means.append(mean)
            logvars.append(logvar)
        return torch.cat(zs, dim=-1), torch.cat(means, dim=-1), torch.cat(logvars, dim=-1)

    def mechanism_mean(self, name: str, codes: Tensor) -> Tensor:
        """The mechanism's most likely code of ``name`` (...,) given the parents' codes in ``codes``."""
        out = self.mechanisms[name](causal_features(codes, self.parents[name]))[name]
        return VariableHead.draw(name, out.reshape(-1, out.shape[-1]), 0.0, None).reshape(codes.shape[:-1])

    def abduct(self, codes: Tensor) -> Tensor:
        """The residual (..., 7) of each interval variable with a mechanism: its code minus the mechanism's mean."""
        residual = torch.zeros_like(codes)
        for name in self.mechanisms:
            if causal.VARIABLES[name].kind == "interval":
                residual[..., INDEX[name]] = codes[..., INDEX[name]] - self.mechanism_mean(name, codes)
        return residual

    def _derive(self, name: str, codes: Tensor, residual: Tensor, tau: float, u: Tensor | None) -> Tensor:
        """A fresh code (B,) of ``name`` from its parents in ``codes``, keeping the residual of an interval variable."""
        var = causal.VARIABLES[name]
        out = self.mechanisms[name](causal_features(codes, self.parents[name]))[name]  # (B, out)
        if var.kind == "interval":
            return (VariableHead.value(name, out) + residual[:, INDEX[name]]).clamp(var.low, var.high)
        return VariableHead.draw(name, out, tau, u)

    def do_codes(self, do: Mapping[str, Any] | None) -> dict[str, float]:
        """Validated codes of an intervention (``Batch.causal`` units: the hour in hours)."""
        self.check_do(do)
        codes = causal.validate_do(do or {})
        return {n: (v / 60.0 if n == "hour" else v) for n, v in codes.items()}

    def check_do(self, do: Mapping[str, Any] | None) -> None:
        """Checks names and values of ``do`` against ``campus_env.causal``; a ``ValueError`` names the valid ones."""
        if do is not None:
            causal.validate_do(do)

    def intervene(
        self, natural: Tensor, previous: Tensor, residual: Tensor, do: Mapping[str, float], u: Tensor | None = None
    ) -> Tensor:
        """The codes (B, 7) in force under ``do`` (validated codes), from the un-intervened ``natural`` ones.

        The named variables take their values; a variable not named whose parents
        all keep their natural values keeps its natural value (so nothing upstream
        of, or beside, an intervention changes). Any other variable, a descendant
        of a changed one, is re-derived by its mechanism, unless its parents are
        the same as in ``previous`` (the codes in force one step earlier), where it
        keeps its previous value: an intervention held over several steps draws its
        descendants once. Categorical draws use the uniforms ``u`` (B, 7), one per
        variable (None: the most likely values).
        """
        if not do:
            return natural
        new = natural.clone()
        changed = torch.zeros(natural.shape[0], len(NAMES), dtype=torch.bool, device=natural.device)
        for name, value in do.items():
            new[:, INDEX[name]] = value
        for name in self.order:
            i = INDEX[name]
            if name in do:
                changed[:, i] = new[:, i] != natural[:, i]
                continue
            if name not in self.mechanisms:
                continue
            cols = [INDEX[p] for p in self.parents[name]]
            rows = changed[:, cols].any(-1)  # (B,) a parent differs from its natural value
            if rows.any():
                same = (new[:, cols] == previous[:, cols]).all(-1)  # (B,) parents as one step earlier
                fresh = self._derive(name, new, residual, self.config.temperature, None if u is None else u[:, i])
                new[:, i] = torch.where(rows, torch.where(same, previous[:, i], fresh), new[:, i])
                changed[:, i] = rows & (new[:, i] != natural[:, i])
        return new

    def advance(self, codes: Tensor, residual: Tensor, do: Mapping[str, float]) -> Tensor:
        """The codes one step later: the clock moves a minute, dynamic variables follow their mechanisms.

        Static and intervened variables keep their values; a dynamic variable is
        re-derived (its mechanism's most likely value; interval ones plus their residual).
        """
        new = codes.clone()
        if "hour" not in do:
            new[:, INDEX["hour"]] = (codes[:, INDEX["hour"]] + MINUTE).clamp(max=HOUR_HIGH)
        for name in self.order:
            if name in do or name not in self.mechanisms or not causal.VARIABLES[name].dynamic:
                continue
            new[:, INDEX[name]] = self._derive(name, new, residual, 0.0, None)
        return new

    def causal_values(self, state: State) -> list[dict[str, Any]]:
        """The state's causal variables as user-facing values, one dict per row (as ``info["causal"]``)."""
        return code_values(state["causal"])

    # --- losses ---------------------------------------------------------------------------------

    def _vae_loss(self, obs: Obs, codes: Tensor, first: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Reconstruction, the groups' KLs to their causal priors, and the static groups' change within episodes
        (imagination holds them fixed, so V is taught to put there what an episode does not change)."""
        cfg = self.config
        z, means, logvars = self.encode(obs, sample=True)  # (B, T, Z) each
        images, vector = self.decoder(self._decoder_input(z, codes))
        recon, metrics = reconstruction_error(self.spec, images, vector, obs, cfg.vector_weight)  # (B, T)
        kl = z.new_zeros(z.shape[:-1])  # (B, T): sum over groups of KL(q(z_g | x) || p(z_g | causes of g))
        qm, qv = self._groups(means), self._groups(logvars)
        for g in GROUPS:
            prior_in = torch.cat([causal_features(codes, self.effects[g]), z.new_ones(z.shape[:-1] + (1,))], -1)
            pm, pv = self.priors[g](prior_in).chunk(2, dim=-1)
            pv = pv.clamp(-8.0, 8.0)
            kl = kl + 0.5 * (pv - qv[g] + (qv[g].exp() + (qm[g] - pm).square()) / pv.exp() - 1.0).sum(-1)
        kl_loss = kl.clamp(min=cfg.free_nats * cfg.z_dim).mean()
        static = torch.cat([qm[g] for g in STATIC_GROUPS], -1)  # (B, T, S)
        drift = (static[:, 1:] - static[:, :-1]).square().sum(-1).masked_fill(first[:, 1:], 0.0)  # (B, T-1)
        drift = drift.sum() / (~first[:, 1:]).sum().clamp(min=1)
        metrics.update(recon=recon.mean(), kl=kl.mean(), static_drift=drift)
        return recon.mean() + cfg.kl_weight * kl_loss + cfg.static_weight * drift, means, metrics

    def _causal_loss(self, codes: Tensor) -> Tensor:
        """The mechanisms' mean loss on true codes (B, T, 7)."""
        total = codes.new_zeros(())
        for name, head in self.mechanisms.items():
            out = head(causal_features(codes, self.parents[name]))[name]
            total = total + VariableHead.loss(name, out, codes[..., INDEX[name]]).mean()
        return total

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """V's loss, M's loss on the detached latent means, the mechanisms' and inference heads' losses."""
        cfg = self.config
        B, T = batch.shape
        codes = None if batch.causal is None else torch.as_tensor(batch.causal, device=self.device).float()
        if codes is None:
            codes = self.observed_codes(batch.obs)
        known = codes is not None
        first = self._is_first(batch.is_first, (B, T)).clone()
        first[:, 0] = True
        actions = self._action(batch.action, first)  # (B, T, A)
        if not known:  # nothing shows the causal variables: the inference heads stand in, filtered step by step
            with torch.no_grad():
                _, z_mean, _ = self.encode(batch.obs)
                codes = self._filter_codes(z_mean, actions, first)
        vae_loss, means, metrics = self._vae_loss(batch.obs, codes, first)
        z = means.detach()  # (B, T, Z)
        h = c = z.new_zeros(B, cfg.hidden)
        hs = [h]
        for t in range(T - 1):
            h, c = self._step(z[:, t], actions[:, t + 1], codes[:, t], h, c, first[:, t + 1])  # (B, H)
            hs.append(h)
        hs = torch.stack(hs, dim=1)  # (B, T, H): h[t] has read up to (z[t-1], a[t])
        valid = ~first[:, 1:]  # (B, T-1)
        n = valid.sum().clamp(min=1)
        nll = z.new_zeros(B, T - 1)
        zs = self._groups(z[:, 1:])
        for g in DYNAMIC_GROUPS:
            mdn = self._group_mdn(g, hs[:, 1:], codes[:, 1:])
            nll = nll - mixture_log_prob(mdn, zs[g], cfg.min_logstd, cfg.max_logstd)
        dynamic_dim = sum(self.group_dims[g] for g in DYNAMIC_GROUPS)
        nll = (nll / dynamic_dim).masked_fill(~valid, 0.0).sum() / n
        head_in = torch.cat([hs[:, 1:], causal_features(codes[:, 1:], self.causes)], dim=-1)
        reward = torch.as_tensor(batch.reward, device=z.device).float()[:, 1:]
        terminated = torch.as_tensor(batch.terminated, device=z.device).float()[:, 1:]
        reward_out = self._reward_out(torch.cat([head_in, z[:, 1:]], dim=-1), terminated.bool())  # (B, T-1, 3K)
        reward_loss = (self._reward_loss(reward_out, reward) * valid).sum() / n
        bce = F.binary_cross_entropy_with_logits(self.end_head(head_in)[..., 0], terminated, reduction="none")
        bce = (bce * valid).sum() / n
        m_loss = nll + cfg.reward_weight * reward_loss + cfg.terminal_weight * bce
        if self.delta is not None:
            vector = self.spec.vector(self.spec.to_torch(batch.obs, self.device))  # (B, T, V)
            delta = self.delta.loss(head_in, vector[:, :-1], vector[:, 1:], actions[:, 1:], valid)
            metrics["delta_mse"] = delta.sum() / n
            m_loss = m_loss + metrics["delta_mse"]
        total = vae_loss + m_loss
        if known:
            x_inf = torch.cat([hs, z], dim=-1)
            heads = {**self.static_head(x_inf), **self.dynamic_head(x_inf)}
            infer = sum(VariableHead.loss(name, out, codes[..., INDEX[name]]).mean() for name, out in heads.items())
            mech = self._causal_loss(codes)
            total = total + cfg.causal_weight * (infer + mech)
            metrics |= dict(infer_loss=infer, mechanism_loss=mech)
        metrics |= dict(loss=total, vae_loss=vae_loss, m_loss=m_loss, mdn_nll=nll, terminal_bce=bce)
        metrics["reward_nll" if cfg.reward_mixtures else "reward_mse"] = reward_loss
        values = torch.stack([torch.as_tensor(v).detach().float() for v in metrics.values()]).tolist()
        return total, dict(zip(metrics, values, strict=True))

    def _reward_out(self, x: Tensor, ended: Tensor) -> Tensor:
        """The reward head's output (..., 3K) for inputs ``[h, causes, z']`` (..., F): one half of its weights
        for steps that end the episode (``ended``, (...) bool), the other for the rest, so the reward of an
        ending step (the goal's bonus) is learnt apart from the rare-event weight of one more input."""
        out = self.reward_head(x).unflatten(-1, (2, self.reward_width))  # (..., 2, 3K)
        return torch.where(ended[..., None], out[..., 1, :], out[..., 0, :])

    def _reward_loss(self, out: Tensor, reward: Tensor) -> Tensor:
        """The reward head's loss (...): squared error, or the mixture's negative log-likelihood of symlog(reward)."""
        cfg = self.config
        if not cfg.reward_mixtures:
            return (out[..., 0] - reward).square()
        return symlog_mixture_nll(out, reward, cfg.reward_mixtures, cfg.min_logstd, cfg.max_logstd)

    def _draw_reward(self, out: Tensor, generator: torch.Generator | None) -> Tensor:
        """Rewards (B,) from the reward head's output (B, 3K), drawn at the model's temperature (0: expected)."""
        cfg = self.config
        if not cfg.reward_mixtures:
            return out[:, 0]
        return draw_symlog_mixture(out, cfg.reward_mixtures, cfg.temperature, generator, cfg.min_logstd, cfg.max_logstd)

    def _filter_codes(self, z: Tensor, actions: Tensor, first: Tensor) -> Tensor:
        """Inferred codes (B, T, 7) of a sequence with no causal variables, as ``observe`` would infer them."""
        B, T, _ = z.shape
        h = c = z.new_zeros(B, self.config.hidden)
        codes = self.infer_codes(h, z[:, 0])
        out = [codes]
        for t in range(1, T):
            h, c = self._step(z[:, t - 1], actions[:, t], codes, h, c, first[:, t])
            codes = self.infer_codes(h, z[:, t])
            out.append(codes)
        return torch.stack(out, dim=1)

    # --- the interface --------------------------------------------------------------------------

    def initial_state(self, batch_size: int) -> State:
        """Zeros, except the causal codes: the first value of each domain (Monday 7:00, fall, sunny, ...)."""
        cfg, device = self.config, self.device
        h = torch.zeros(batch_size, cfg.hidden, device=device)
        codes = torch.zeros(batch_size, len(NAMES), device=device)
        codes[:, INDEX["hour"]] = HOUR_LOW
        state = {"h": h, "c": torch.zeros_like(h), "z": torch.zeros(batch_size, cfg.z_dim, device=device),
                 "causal": codes, "natural": codes.clone(), "residual": torch.zeros_like(codes)}
        if self.delta is not None:
            state["vector"] = torch.zeros(batch_size, self.spec.vector_dim, device=device)
        return state

    def observe(self, state: State, action: Tensor, obs: Obs, is_first: Tensor) -> State:
        """Advances the LSTM with (previous z, action, previous causes), or resets it where ``is_first``;
        z is V's posterior mean; the causal codes are read from ``obs`` when it shows them, else inferred."""
        B = state["z"].shape[0]
        first = self._is_first(is_first, (B,))
        h, c = self._step(state["z"], self._action(action, first), state["causal"], state["h"], state["c"], first)
        obs = self.spec.to_torch(obs, self.device)
        z = self.encode(obs)[0]  # (B, Z)
        codes = self.observed_codes(obs)
        if codes is None:
            codes = self.infer_codes(h, z)
        state = {"h": h, "c": c, "z": z, "causal": codes, "natural": codes, "residual": self.abduct(codes)}
        if self.delta is not None:
            state["vector"] = self.spec.vector(obs).to(h.dtype)  # (B, V)
        return state

    def imagine(self, state: State, action: Tensor, do: Mapping[str, Any] | None = None,
                generator: torch.Generator | None = None) -> Imagined:
        """One imagined step under ``do``: the named variables take the given values, every descendant in
        ``config.graph`` whose parents changed is re-derived by its mechanism (see ``intervene``), nothing upstream
        changes, and the transition of the step already runs under the intervention; leaving ``do`` out again is an
        ``undo()``. Static variables carry over, the clock advances a minute, dynamic ones follow their mechanisms.
        Deterministic under a seeded ``generator``, drawn from the same way whatever ``do`` is (so twins under two
        interventions share their noise)."""
        cfg = self.config
        do_codes, action = self.do_codes(do), self._action(action)
        natural, residual = state["natural"], state["residual"]
        # one uniform per variable, drawn whatever ``do`` is: twins under other interventions share the noise after
        u = torch.rand(natural.shape, generator=generator, device=natural.device)  # (B, 7)
        codes = self.intervene(natural, state["causal"], residual, do_codes, u)  # (B, 7) in force at t
        h, c = self._step(state["z"], action, codes, state["h"], state["c"])  # (B, H)
        nxt = self.advance(codes, residual, do_codes)  # (B, 7) at t+1
        zs = self._groups(state["z"])  # static groups carry over unchanged; each dynamic one from its own head
        for g in DYNAMIC_GROUPS:
            zs[g] = sample_mixture(self._group_mdn(g, h, nxt), cfg.temperature, generator, cfg.min_logstd,
                                   cfg.max_logstd)
        head_in = torch.cat([h, causal_features(nxt, self.causes)], dim=-1)
        end_logit = self.end_head(head_in)[:, 0]  # (B,)
        u_end = torch.rand(end_logit.shape, generator=generator, device=end_logit.device)  # (B,)
        tau = cfg.temperature
        ended = end_logit > 0 if tau == 0 else u_end < torch.sigmoid(end_logit / tau)
        z_next = torch.cat([zs[g] for g in GROUPS], dim=-1)  # (B, Z)
        reward = self._draw_reward(self._reward_out(torch.cat([head_in, z_next], dim=-1), ended), generator)
        next_state = {"h": h, "c": c, "z": z_next, "causal": nxt,
                      "natural": self.advance(natural, residual, {}), "residual": residual}
        if self.delta is not None:
            next_state["vector"] = self.delta.step(head_in, state["vector"], action)
        return Imagined(next_state, reward, ended)

    @torch.no_grad()
    def decode(self, state: State) -> Obs:
        """Env-format observation; a causal part of the observation shows the state's codes exactly, and with
        ``delta_vector`` the other vector parts are the state's."""
        images, vector = self.decoder(self._decoder_input(state["z"], state["causal"]), vector=self.delta is None)
        if self.delta is not None:
            vector = state["vector"].to(state["h"].dtype)
        if self.slot is not None:
            vector = vector.clone()
            vector[..., self.slot : self.slot + OBS_CAUSAL_DIM] = obs_causal_vector(state["causal"])
        return self.spec.assemble({k: torch.sigmoid(v) for k, v in images.items()}, vector)

    def features(self, state: State) -> Tensor:
        """[z, h, every causal variable's features]: (B, Z + H + 32); with ``delta_vector``, the standardised vector."""
        parts = [state["z"], state["h"], causal_features(state["causal"], NAMES)]
        return torch.cat(parts + ([self.delta.read(state["vector"])] if self.delta is not None else []), dim=-1)
