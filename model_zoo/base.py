"""The interface every world model in the zoo implements, and the batch it learns from.

State is passed explicitly: ``observe`` and ``imagine`` take a state and return a
new one (a dict of tensors whose leading axis is the batch), so batched and
branching imagination is plain tensor indexing.

Time convention (as in Dreamer): at index ``t`` of a sequence, ``action[t]`` is the
action that *led to* ``obs[t]``, ``reward[t]`` the reward received on arriving
there, ``terminated[t]`` whether ``obs[t]`` ends the episode, and ``is_first[t]``
whether ``obs[t]`` starts one (its action and reward are then meaningless). So
``observe(state, action[t], obs[t], is_first[t])`` filters one step, and
``imagine(state, action)`` predicts the step the action leads to.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import gymnasium as gym
import torch
from torch import Tensor, nn

from model_zoo.registry import PRESET_NAMES, Preset
from model_zoo.spaces import OBSERVATION_KINDS, ObsSpec

__all__ = ["Batch", "Imagined", "State", "WorldModel"]

State = dict[str, Tensor]
Obs = Tensor | dict[str, Tensor]


@dataclass
class Batch:
    """Sequences of experience, shaped (B, T, ...), in the env's observation format.

    ``obs`` is a tensor, or a dict of tensors for Dict spaces (images stay uint8
    (B, T, H, W, C)); ``action`` is int64 (B, T) for Discrete spaces and float32
    (B, T, A) for Box; ``causal`` holds the env's causal variable codes
    (B, T, C) float32 where the data has them.
    """

    obs: Obs
    action: Tensor
    reward: Tensor
    terminated: Tensor
    is_first: Tensor
    causal: Tensor | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(batch size, sequence length)."""
        return tuple(self.reward.shape[:2])

    def to(self, device: torch.device | str) -> Batch:
        """A copy with every tensor on ``device``."""
        return Batch(**{f.name: _map(getattr(self, f.name), lambda x: x.to(device)) for f in dataclasses.fields(self)})

    def at(self, t: int | slice) -> Batch:
        """The time step (or steps) ``t`` of every field: (B, ...) for an int, (B, T', ...) for a slice."""
        return Batch(**{f.name: _map(getattr(self, f.name), lambda x: x[:, t]) for f in dataclasses.fields(self)})


class _ImaginedFields(NamedTuple):
    state: State
    reward: Tensor
    terminated: Tensor


class Imagined(_ImaginedFields):
    """What ``imagine`` returns: the next state, the reward (B,) and termination (B,) bool; it unpacks as those three.

    ``terminated`` is a decision (a draw or a threshold; the dream envs end episodes by it).
    The attribute ``continuation`` (B,) float is the model's probability that the episode
    goes on, for learners that weight by it (DreamerV3, arXiv:2301.04104, discounts imagined
    returns by it); a model that only decides leaves it out, and it is ``1 - terminated``.
    """

    continuation: Tensor

    def __new__(cls, state: State, reward: Tensor, terminated: Tensor, continuation: Tensor | None = None):
        self = super().__new__(cls, state, reward, terminated)
        self.continuation = 1.0 - torch.as_tensor(terminated).float() if continuation is None else continuation
        return self

    def _replace(self, **changes: Any) -> Imagined:
        continuation = changes.pop("continuation", self.continuation)
        return Imagined(**{**self._asdict(), **changes}, continuation=continuation)


class WorldModel(nn.Module):
    """Base class of the zoo. Subclasses set ``Config`` and implement the methods below.

    ``model_zoo.make(id, observation_space, action_space, **overrides)`` builds one;
    ``model.save(dir)`` and ``model_zoo.load(dir)`` round-trip it.
    """

    Config: ClassVar[type]  # a frozen dataclass of hyperparameters, one per model
    supports_do: ClassVar[bool] = False  # whether imagine(..., do=...) is meaningful
    model_id: str = ""  # the registry id; set by model_zoo.make
    # what an episode's first action (meaningless: nothing led to that observation) becomes in ``_action``:
    # "zeros" (an all-zero encoding) or "lowest" (the space's lowest Discrete action; zeros for a Box)
    first_action: ClassVar[str] = "zeros"
    # tuned settings by data kind (``model_zoo.registry.PRESET_NAMES``); a model overrides those it tuned
    presets: ClassVar[Mapping[str, Preset]] = {name: Preset() for name in PRESET_NAMES}
    # the kinds of observation space it takes (``model_zoo.spaces.OBSERVATION_KINDS``); others are a ValueError
    observation_kinds: ClassVar[tuple[str, ...]] = OBSERVATION_KINDS

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, config: Any):
        super().__init__()
        if not dataclasses.is_dataclass(config) or not config.__dataclass_params__.frozen:
            raise TypeError(f"config must be a frozen dataclass, got {type(config).__name__}")
        self.config = config
        self.observation_space = observation_space
        self.action_space = action_space
        self.spec = ObsSpec(observation_space, action_space)
        if self.spec.kind not in self.observation_kinds:
            raise ValueError(
                f"{type(self).__name__} takes {' or '.join(map(repr, self.observation_kinds))} observations, "
                f"not {self.spec.kind!r} ones ({observation_space})"
            )

    # --- the interface -------------------------------------------------------

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError(
            f"{type(self).__name__}.loss(batch: Batch) -> (scalar loss Tensor, metrics dict[str, float])"
        )

    def initial_state(self, batch_size: int) -> State:
        raise NotImplementedError(f"{type(self).__name__}.initial_state(batch_size: int) -> State")

    def observe(self, state: State, action: Tensor, obs: Obs, is_first: Tensor) -> State:
        raise NotImplementedError(
            f"{type(self).__name__}.observe(state: State, action: Tensor (B,) or (B, A), "
            "obs: Tensor or dict of (B, ...) tensors, is_first: bool Tensor (B,)) -> State"
        )

    def imagine(
        self,
        state: State,
        action: Tensor,
        do: Mapping[str, Any] | None = None,
        generator: torch.Generator | None = None,
    ) -> Imagined:
        raise NotImplementedError(
            f"{type(self).__name__}.imagine(state: State, action: Tensor, do: dict | None, "
            "generator: torch.Generator | None) -> Imagined(state, reward (B,), terminated (B,) bool, "
            "continuation (B,) float, optional)"
        )

    def decode(self, state: State) -> Obs:
        raise NotImplementedError(
            f"{type(self).__name__}.decode(state: State) -> observation in the env's format, batched (B, ...)"
        )

    def features(self, state: State) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__}.features(state: State) -> Tensor (B, feature_dim)")

    # --- shared helpers --------------------------------------------------------

    @property
    def feature_dim(self) -> int:
        """Length of ``features(state)``."""
        with torch.no_grad():
            return int(self.features(self.initial_state(1)).shape[-1])

    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        return torch.device("cpu")

    def _is_first(self, is_first: Tensor, shape: tuple[int, ...]) -> Tensor:
        """``is_first`` as a bool tensor on the model's device; a clear error unless its shape is ``shape``."""
        is_first = torch.as_tensor(is_first, device=self.device).bool()
        if tuple(is_first.shape) != tuple(shape):
            raise ValueError(f"is_first must have shape {tuple(shape)}, got {tuple(is_first.shape)}")
        return is_first

    def _action(self, action: Tensor, is_first: Tensor | None = None) -> Tensor:
        """Encoded actions (..., A) on the model's device; where ``is_first``, as ``first_action`` says."""
        action = torch.as_tensor(action, device=self.device)
        if is_first is None:
            return self.spec.encode_action(action)
        if self.first_action == "zeros":
            return self.spec.encode_action(action).masked_fill(is_first.unsqueeze(-1), 0.0)
        mask = is_first.reshape(is_first.shape + (1,) * (action.dim() - is_first.dim()))
        lowest = int(self.action_space.start) if self.spec.discrete else 0
        return self.spec.encode_action(torch.where(mask, torch.full((), lowest, dtype=action.dtype,
                                                                    device=action.device), action))

    def check_do(self, do: Mapping[str, Any] | None) -> None:
        """Raises a clear error when ``do`` is given to a model that cannot take interventions."""
        if do and not self.supports_do:
            raise ValueError(
                f"model {self.model_id or type(self).__name__!r} does not take interventions; "
                "use a causal model (e.g. 'causal_vae_mdnrnn') for imagine(..., do=...)"
            )

    def save(self, directory: str | Path) -> Path:
        """Writes ``config.json`` and ``model.safetensors`` into ``directory`` (atomically)."""
        from model_zoo.checkpoint import save

        return save(self, directory)

    def extra_repr(self) -> str:
        return f"id={self.model_id!r}, config={self.config}"


def _map(value, fn):
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: fn(v) for k, v in value.items()}
    return fn(value)
