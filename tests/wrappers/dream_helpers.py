"""What the dream tests share: the corridor models' ids, tiny zoo models, and stepping a list of actions."""

from __future__ import annotations

import dataclasses

import torch

import model_zoo
from model_zoo import registry
from wrappers import DreamEnv

CORRIDOR = "_test_corridor"
CAUSAL_CORRIDOR = "_test_corridor_causal"
RIGHT, LEFT = 1, 0

# tiny values for whichever of these fields a model's config has (a new model is tested at once)
TINY = {"hidden": 16, "layers": 1, "members": 2, "z_dim": 4, "depth": 4, "vector_hidden": 16, "mixtures": 2}


def tiny_model(model_id: str, observation_space, action_space):
    config = model_zoo.registry.spec(model_id).load_class().Config
    names = {f.name for f in dataclasses.fields(config)}
    torch.manual_seed(0)
    return model_zoo.make(model_id, observation_space, action_space, **{k: v for k, v in TINY.items() if k in names})


def cheapest_obs_mode(model_id: str) -> str:
    """CampusNav-v0's state vectors for a model that takes vectors, else its pixels (``observation_kinds``)."""
    return "state" if "vector" in registry.spec(model_id).load_class().observation_kinds else "pixels"



def run(env: DreamEnv, actions):
    """Steps ``actions``; returns the lists (obs, reward, terminated, truncated, info) of every step."""
    out = []
    for action in actions:
        out.append(env.step(action))
    return [list(x) for x in zip(*out, strict=True)]
