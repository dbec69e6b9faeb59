"""A stable-baselines3 agent's learning state without pickle, so that a killed run goes on learning.

SB3's own ``save`` keeps parts of an agent with cloudpickle, which runs code on load.
What a run needs to go on is kept here as tensors (safetensors) and JSON instead: the
policy's and its optimizer's tensors, the step and update counters, the action space's
generator and, for an off-policy algorithm, the replay buffer. The agent it is put
back into is built with the same algorithm, policy and settings; the random streams
the agent draws from (numpy's and torch's global ones) are the caller's to keep
(``model_zoo.training.rng_state``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from model_zoo.agents.loop_state import prefixed
from model_zoo.checkpoint import load_optimizer_state, optimizer_tensors

__all__ = ["BUFFER_ARRAYS", "agent_state", "restore_agent_state"]

BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")
"""The arrays of an SB3 replay buffer that hold its transitions."""


def agent_state(agent: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors (``policy.*``, ``optimizer.*``, ``buffer.*``) and JSON counters of an SB3 agent."""
    tensors = {f"policy.{k}": v for k, v in agent.policy.state_dict().items()}
    optimizer, groups = optimizer_tensors(agent.policy.optimizer)
    tensors |= {f"optimizer.{k}": v for k, v in optimizer.items()}
    counters = {"num_timesteps": agent.num_timesteps, "n_updates": agent._n_updates,
                "n_calls": getattr(agent, "_n_calls", 0), "optimizer": groups,
                "action_space": agent.action_space.np_random.bit_generator.state}
    buffer = getattr(agent, "replay_buffer", None)
    if buffer is not None:
        for name in BUFFER_ARRAYS:
            if getattr(buffer, name, None) is not None:
                tensors[f"buffer.{name}"] = torch.from_numpy(np.ascontiguousarray(getattr(buffer, name)))
        counters["buffer"] = {"pos": int(buffer.pos), "full": bool(buffer.full)}
    return tensors, counters


def restore_agent_state(agent: Any, tensors: Mapping[str, torch.Tensor], counters: Mapping[str, Any]) -> None:
    """Puts what :func:`agent_state` took from an agent into ``agent``, one built with the same settings."""
    agent.policy.load_state_dict(prefixed(tensors, "policy."))
    load_optimizer_state(agent.policy.optimizer, prefixed(tensors, "optimizer."), counters["optimizer"])
    agent.num_timesteps, agent._n_updates = counters["num_timesteps"], counters["n_updates"]
    if hasattr(agent, "_n_calls"):
        agent._n_calls = counters["n_calls"]
    agent.action_space.np_random.bit_generator.state = counters["action_space"]
    if "buffer" in counters:
        for name, value in prefixed(tensors, "buffer.").items():
            getattr(agent.replay_buffer, name)[...] = value.numpy()
        agent.replay_buffer.pos, agent.replay_buffer.full = counters["buffer"]["pos"], counters["buffer"]["full"]
