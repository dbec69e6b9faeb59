"""Building blocks of the zoo's world models: layers, conv encoders and decoders, mixtures, tokens, attention.

The common ones are re-exported here (``from model_zoo.nets import mlp``); the
model-specific rooms (``tokens``, ``perceiver``, ``slots``, ``stick_breaking``,
``balancing``, ``vector_delta``, and the diffusion pieces ``edm``, ``unet`` and ``dit``)
are imported by their module path.
"""

from model_zoo.nets.conv import ConvDecoder, ConvEncoder, ObsDecoder, ObsEncoder, reconstruction_error
from model_zoo.nets.layers import (
    EnsembleLinear,
    EnsembleMLP,
    RunningNorm,
    mlp,
    module_key,
    orthogonal_init,
    symexp,
    symlog,
)
from model_zoo.nets.mdn import Mixture, mixture_log_prob, mixture_width, sample_mixture, split_mixture

__all__ = [
    "ConvDecoder",
    "ConvEncoder",
    "EnsembleLinear",
    "EnsembleMLP",
    "Mixture",
    "ObsDecoder",
    "ObsEncoder",
    "RunningNorm",
    "mixture_log_prob",
    "mixture_width",
    "mlp",
    "module_key",
    "orthogonal_init",
    "reconstruction_error",
    "sample_mixture",
    "split_mixture",
    "symexp",
    "symlog",
]
