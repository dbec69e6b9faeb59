"""model_zoo: world models behind one interface, with data, training and evaluation.

>>> import gymnasium as gym
>>> import campus_env, model_zoo
>>> env = gym.make("CampusNav-v0", obs_mode="state")
>>> model = model_zoo.make("mlp", env.observation_space, env.action_space)
>>> state = model.initial_state(batch_size=4)
>>> "campusnav-state" in model_zoo.list_presets("mlp"), model_zoo.preset("mlp", "campusnav-state").lr > 0
(True, True)
"""

from model_zoo.base import Batch, Imagined, State, WorldModel
from model_zoo.checkpoint import CheckpointError
from model_zoo.evaluation import EvalResult, evaluate, format_table
from model_zoo.fidelity import FidelityResult, evaluate_fidelity
from model_zoo.pretrained import list_pretrained, load_pretrained, pretrained_card
from model_zoo.registry import list_models, list_presets, make, preset, register
from model_zoo.training import fit

__all__ = [
    "Batch",
    "CheckpointError",
    "EvalResult",
    "FidelityResult",
    "Imagined",
    "State",
    "WorldModel",
    "evaluate",
    "evaluate_fidelity",
    "fit",
    "format_table",
    "list_models",
    "list_pretrained",
    "list_presets",
    "load",
    "load_pretrained",
    "make",
    "preset",
    "pretrained_card",
    "register",
]

register("mlp", entry_point="model_zoo.models.mlp:MLPWorldModel")
register("mlp_ensemble", entry_point="model_zoo.models.mlp:MLPEnsemble")
register("vae_mdnrnn", entry_point="model_zoo.models.vae_mdnrnn:VAEMDNRNN")
register("dpgmm_vrnn", entry_point="model_zoo.models.dpgmm_vrnn:DPGMMVRNN")
register("causal_vae_mdnrnn", entry_point="model_zoo.models.causal_vae_mdnrnn:CausalVAEMDNRNN")
register("vqvae_transformer", entry_point="model_zoo.models.vqvae_transformer:VQVAETransformer")
register("rssm", entry_point="model_zoo.models.rssm:RSSM")
register("diffusion", entry_point="model_zoo.models.diffusion:Diffusion")
register("latent_diffusion", entry_point="model_zoo.models.latent_diffusion:LatentDiffusion")


def load(directory, map_location="cpu"):
    """Rebuilds a model saved with ``model.save(directory)`` (see ``model_zoo.checkpoint``)."""
    from model_zoo.checkpoint import load as _load

    return _load(directory, map_location=map_location)
