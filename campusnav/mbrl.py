"""``campusnav mbrl``: the model-based RL loop on CampusNav-v0 state vectors, any zoo model, any learner.

It wires ``model_zoo.agents.mbrl.run_loop`` to CampusNav: real episodes from the
native vector env, dreams from ``wrappers.DreamVectorEnv`` started at real
replay states (never a real reset, so every real step is a collected one), SB3
PPO or DQN (through ``wrappers.to_sb3``, with ``campusnav.ppo``'s potential-based
shaping while learning), a CMA-ES linear controller, or the imagination actor-critic. A dream episode
ends where the model says or, with ``--termination env`` (the default), where the
env's own ``metadata["termination_fn"]`` says (MBPO's known termination functions).
The anti-exploitation options are flags: ``--rollout`` (MBPO's short branched rollouts), ``--temperature``,
``--disagreement-penalty`` and ``--disagreement-limit`` (an ensemble's spread).
It writes ``curve.json`` (real return and success against real env steps, one row
per iteration) and ``curve.png`` into ``--out``.

    campusnav mbrl --model mlp --learner ppo
    campusnav mbrl --model mlp_ensemble --disagreement-penalty 1.0
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from campusnav.demo import DEMO_MODEL_CONFIG
from campusnav.device import resolve_device
from campusnav.overrides import parse_overrides
from campusnav.threads import use_threads

__all__ = ["ENV_ID", "LEARNERS", "MBRLArgs", "MODEL_CONFIG", "make_dream", "make_learner", "model_overrides",
           "run_mbrl", "tiny"]

ENV_ID = "CampusNav-v0"
ENV_KWARGS = {"obs_mode": "state"}
LEARNERS = ("ppo", "dqn", "cmaes", "actor_critic")
LEARNER_PRESETS = {"ppo": "tuned", "dqn": "dqn-stable"}  # campusnav.baselines.PRESETS the SB3 learners start from
# the model options used with --model-config auto: the demo's dreams, which draw whole outcomes
# (see model_zoo.models.mlp); the ensemble's preset draws them already, and five members trained on
# 16-step rollouts would make its fits several times slower, so it only snaps positions as the mlp does
MODEL_CONFIG = {**DEMO_MODEL_CONFIG, "mlp_ensemble": "snap_levels=64"}


@dataclass(frozen=True)
class MBRLArgs:
    """The loop's options; every field is a ``campusnav mbrl --field-name`` flag."""

    model: str = "mlp"
    """the zoo world model that dreams (model_zoo.list_models())"""
    model_config: str = "auto"
    """config overrides NAME=VALUE,...; auto: MODEL_CONFIG's for the model; tiny: small sizes; '' none"""
    learner: str = "ppo"
    """what learns in the dream: ppo, dqn (stable-baselines3), cmaes (a linear controller) or actor_critic"""
    iterations: int = 5
    """rounds of collect, fit, learn in the dream, evaluate"""
    initial_episodes: int = 64
    """uniform-random real episodes before the first fit"""
    episodes: int = 32
    """real episodes the current policy collects in each later iteration"""
    exploration: float = 0.1
    """share of collection actions drawn uniformly at random"""
    initial_fit_steps: int = 2_000
    """optimizer steps fitting the model in the first iteration"""
    fit_steps: int = 500
    """optimizer steps fine-tuning the model on all data in each later iteration"""
    dream_steps: int = 200_000
    """env steps the SB3 learner takes in the dream per iteration"""
    learner_settings: str = ""
    """overrides of the SB3 algorithm's settings, NAME=VALUE,... (e.g. 'n_epochs=10,batch_size=256')"""
    generations: int = 20
    """CMA-ES generations per iteration (learner cmaes)"""
    updates: int = 500
    """actor-critic updates in the model's imagination per iteration (learner actor_critic)"""
    num_envs: int = 16
    """envs stepped together, real (collecting) and dreamed (learning)"""
    termination: str = "env"
    """where a dream episode ends: env (also where the env's metadata termination_fn says, as MBPO) or model"""
    rollout: int = 0
    """dream episodes branch from any real replay state and last this many steps (MBPO); 0: whole episodes"""
    temperature: float | None = None
    """the dream's sampling temperature (models with one); None: the model's own"""
    disagreement_penalty: float = 0.0
    """reward minus this times the ensemble's disagreement (MOPO; mlp_ensemble)"""
    disagreement_limit: float | None = None
    """truncate a dream episode where the disagreement exceeds this (mlp_ensemble)"""
    shaping: float = 0.05
    """potential-based shaping per cell closed while SB3 learns (0: none)"""
    eval_episodes: int = 100
    """seeded real episodes scoring the policy after each iteration"""
    seed: int = 0
    """seed of collection, weights, learning and evaluation"""
    out: str = "runs/mbrl"
    """output folder: datasets, model, curve.json, curve.png"""
    resume: bool = False
    """go on with the run in --out after its last finished iteration (the same flags; --iterations may grow)"""
    tiny: bool = False
    """a tiny budget for tests (seconds)"""
    threads: int | None = None
    """torch threads per process (default: one, the fastest for the zoo's small networks)"""
    fit_threads: int | None = None
    """torch threads while the model fits (default: --threads); more help on idle cores and hurt on busy ones"""
    device: str = "cpu"
    """where the world model trains and dreams: cpu, cuda, cuda:N or auto (cuda when available)"""


TINY_CONFIG = {"hidden": 16, "layers": 1, "members": 2, "z_dim": 4, "depth": 4, "vector_hidden": 16, "mixtures": 2}


def tiny_config(model: str) -> str:
    """Small sizes for whichever of ``TINY_CONFIG``'s fields the model's config has, as NAME=VALUE,..."""
    import model_zoo

    names = {f.name for f in dataclasses.fields(model_zoo.registry.spec(model).load_class().Config)}
    return ",".join(f"{k}={v}" for k, v in TINY_CONFIG.items() if k in names)


def model_overrides(model: str, text: str) -> dict[str, Any]:
    """``--model-config`` as config overrides: ``auto`` is ``MODEL_CONFIG``'s, ``tiny`` ``tiny_config``'s."""
    if text == "auto":
        text = MODEL_CONFIG.get(model, "")
    elif text == "tiny":
        text = tiny_config(model)
    return parse_overrides(text)


def tiny(args: MBRLArgs) -> MBRLArgs:
    """The tests' budget: every stage runs, none learns much (model_config "auto" becomes a tiny network)."""
    return dataclasses.replace(args, iterations=2, initial_episodes=4, episodes=4, initial_fit_steps=4,
                               fit_steps=2, dream_steps=256, generations=2, updates=2, num_envs=4, eval_episodes=4,
                               learner_settings="n_steps=64,batch_size=64" if args.learner == "ppo" else "",
                               model_config="tiny" if args.model_config == "auto" else args.model_config)


def check_args(args: MBRLArgs) -> None:
    """``ValueError`` naming the flag for a value the loop cannot run with."""
    import model_zoo

    resolve_device(args.device)

    if args.model not in model_zoo.list_models():
        raise ValueError(f"--model: unknown {args.model!r}; choose from {', '.join(model_zoo.list_models())}")
    if args.learner not in LEARNERS:
        raise ValueError(f"--learner: unknown {args.learner!r}; choose from {', '.join(LEARNERS)}")
    for name in ("iterations", "initial_episodes", "episodes", "initial_fit_steps", "dream_steps", "generations",
                 "updates", "num_envs", "eval_episodes"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')}: must be a positive integer")
    if args.termination not in ("env", "model"):
        raise ValueError(f"--termination: choose env or model, got {args.termination!r}")
    if args.fit_threads is not None and args.fit_threads < 1:
        raise ValueError("--fit-threads: must be a positive integer")
    if args.rollout < 0 or args.fit_steps < 0:
        raise ValueError("--rollout and --fit-steps must be >= 0")
    if (args.disagreement_penalty > 0 or args.disagreement_limit is not None) and args.model != "mlp_ensemble":
        raise ValueError("--disagreement-penalty and --disagreement-limit need --model mlp_ensemble")


def make_dream(args: MBRLArgs):
    """The loop's ``DreamFactory``: dreams started at real replay states, with the chosen guards."""
    from model_zoo.agents.mbrl import DisagreementPenalty
    from model_zoo.metadata import entry_point_metadata, resolve_function
    from wrappers import DreamVectorEnv

    known = args.termination == "env"
    termination_fn = resolve_function(entry_point_metadata(ENV_ID)["termination_fn"]) if known else None

    def dream(model, episodes, num_envs):
        envs = DreamVectorEnv(model, num_envs, dataset=episodes, obs="decoded",
                              start_frames="any" if args.rollout else "first", max_episode_steps=args.rollout or 200,
                              temperature=args.temperature, termination_fn=termination_fn)
        if args.disagreement_penalty > 0 or args.disagreement_limit is not None:
            envs = DisagreementPenalty(envs, args.disagreement_penalty, args.disagreement_limit)
        return envs

    return dream


def make_learner(args: MBRLArgs, observation_space: Any, action_space: Any):
    """The learner ``--learner`` names; SB3 ones with ``campusnav.baselines``' settings (``LEARNER_PRESETS``).

    The tuned PPO's learning rate decays over one run in reality; in the loop the
    agent learns over many rounds, so it keeps the starting rate.
    """
    from model_zoo.agents.mbrl import CMAESLearner, SB3Learner

    if args.learner == "actor_critic":
        from model_zoo.agents.mbrl import ActorCriticLearner

        return ActorCriticLearner(updates=args.updates, seed=args.seed)
    if args.learner == "cmaes":
        from model_zoo.agents import LinearController
        from model_zoo.agents.transfer import CMAES

        controller = LinearController(int(observation_space.shape[0]), action_space)
        return CMAESLearner(controller, CMAES(args.generations, popsize=16, episodes_per_member=8, seed=args.seed))
    from campusnav.baselines import ALGOS, PRESETS
    from campusnav.ppo import PotentialShaping
    from wrappers import to_sb3

    settings = {**PRESETS[LEARNER_PRESETS[args.learner]].hyperparams, **parse_overrides(args.learner_settings)}
    wrap = (lambda venv: PotentialShaping(venv, args.shaping, settings["gamma"])) if args.shaping > 0 else None
    return SB3Learner(ALGOS[args.learner], to_vec_env=to_sb3, timesteps=args.dream_steps, num_envs=args.num_envs,
                      settings=settings, wrap=wrap, seed=args.seed)


def run_mbrl(args: MBRLArgs):
    """Runs the loop as ``args`` says; writes ``curve.json`` and ``curve.png`` into ``args.out``."""
    import gymnasium as gym
    import torch

    import campus_env  # noqa: F401  (registers CampusNav-v0)
    import model_zoo
    from model_zoo.agents.mbrl import LoopConfig, run_loop
    from model_zoo.agents.transfer import Evaluation

    check_args(args)
    use_threads(args.threads)
    torch.manual_seed(args.seed)
    probe = gym.make(ENV_ID, **ENV_KWARGS)
    model = model_zoo.make(args.model, probe.observation_space, probe.action_space, preset="campusnav-state",
                           **model_overrides(args.model, args.model_config)).to(resolve_device(args.device))
    learner = make_learner(args, probe.observation_space, probe.action_space)
    probe.close()
    config = LoopConfig(iterations=args.iterations, initial_episodes=args.initial_episodes, episodes=args.episodes,
                        exploration=args.exploration, num_envs=args.num_envs,
                        initial_fit_steps=args.initial_fit_steps, fit_steps=args.fit_steps,
                        lr=model_zoo.preset(args.model, "campusnav-state").lr,
                        evaluation=Evaluation(args.eval_episodes, reset_seed=10_000, seed=args.seed), seed=args.seed,
                        fit_threads=args.fit_threads)
    result = run_loop(model, learner, ENV_ID, make_dream(args), config, env_kwargs=ENV_KWARGS, run_dir=args.out,
                      resume=args.resume)
    plot_curve(result, Path(args.out) / "curve.png", f"{args.learner} in the dream of {args.model}")
    return result


def plot_curve(result: Any, path: Path, title: str) -> None:
    """Real success and return against real env steps, with the random policy's as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [row["real_steps"] for row in result.curve]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, key, label in ((axes[0], "success_rate", "success"), (axes[1], "return_mean", "return")):
        ax.plot(steps, [row[key] for row in result.curve], marker="o", label="loop")
        ax.axhline(result.random[key], color="grey", linestyle="--", label="random")
        ax.set_xlabel("real env steps")
        ax.set_ylabel(f"real {label}")
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
