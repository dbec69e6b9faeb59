"""What acts on a world model: CMA-ES controllers, an actor-critic, and the dream-to-reality transfer protocol."""

from model_zoo.agents.actor_critic import ActorCritic, ActorCriticConfig
from model_zoo.agents.controllers import (
    ActionScoreController,
    LinearController,
    load_params,
    model_features,
    rollout_returns,
    save_params,
    train_cmaes,
)
from model_zoo.agents.transfer import (
    CMAES,
    Evaluation,
    Outcomes,
    TrainedController,
    TransferResult,
    controller_policy,
    dream_to_reality,
    evaluate_policy,
    random_policy,
    train_controller,
    transfer_ratio,
)

__all__ = [
    "CMAES",
    "ActionScoreController",
    "ActorCritic",
    "ActorCriticConfig",
    "Evaluation",
    "LinearController",
    "Outcomes",
    "TrainedController",
    "TransferResult",
    "controller_policy",
    "dream_to_reality",
    "evaluate_policy",
    "load_params",
    "model_features",
    "random_policy",
    "rollout_returns",
    "save_params",
    "train_cmaes",
    "train_controller",
    "transfer_ratio",
]
