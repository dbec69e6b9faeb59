"""Reality baselines of Stable-Baselines3 on CampusNav-v0: named settings, one trainer, a real learning curve.

An agent learns on the native vector env,
``to_sb3(gym.make_vec("CampusNav-v0", num_envs=N, obs_mode=...))``, with one of
three algorithms: PPO (Schulman et al. 2017, arXiv:1707.06347), DQN (Mnih et al.
2015, "Human-level control through deep reinforcement learning") and sb3-contrib's
RecurrentPPO (PPO with an LSTM policy). Options, all named in a :class:`Baseline`:

- the potential-based shaping of Ng, Harada & Russell (1999) while learning
  (``campusnav.ppo.PotentialShaping``; it reads the goal offset of state vectors, and a
  pixel agent learns on dict observations whose state entry it reads, its policy
  seeing the image alone);
- frame stacking (SB3's ``VecFrameStack``, as in Mnih et al. 2015) for the
  partial observability of the 5x5 patch; RecurrentPPO is the memory alternative;
- pixels: ``obs_mode="pixels"`` (64x64x3 uint8) with SB3's ``CnnPolicy`` (the
  Nature CNN of Mnih et al. 2015, images scaled to [0, 1]).

:class:`LearningCurve` is an SB3 callback that, every ``eval_every`` env steps,
scores the current policy on the same seeded real episodes
(``model_zoo.agents.transfer.evaluate_policy``): the reference against which a
model-based learner's sample efficiency is read. Evaluation runs under its own
random seed and restores the global generators, so it does not change training.
With a checkpoint folder (:class:`CurveCheckpoint`) ``train`` keeps the agent at every
curve point, without pickle, and a killed run goes on from the last one.

>>> baseline = PRESETS["default"].replace(num_envs=2, hyperparams={"n_steps": 8, "batch_size": 16})
>>> run = train(baseline, timesteps=32, seed=0, evaluation=Evaluation(episodes=2, reset_seed=0), eval_every=16)
>>> run.curve["steps"]
[0, 16, 32]
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib import RecurrentPPO
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecExtractDictObs, VecFrameStack
from stable_baselines3.common.vec_env.stacked_observations import StackedObservations

import campus_env  # noqa: F401  (registers CampusNav-v0)
from campusnav.ppo import DQN_SETTINGS, PPO_SETTINGS, PotentialShaping
from model_zoo.agents.loop_state import whole_folder
from model_zoo.agents.mbrl import silent_sb3
from model_zoo.agents.sb3_state import agent_state, restore_agent_state
from model_zoo.agents.transfer import BatchPolicy, EnvFactory, Evaluation, Outcomes, evaluate_policy
from model_zoo.checkpoint import load_tensors, save_tensors
from model_zoo.training import rng_state, set_rng_state
from wrappers import to_sb3

__all__ = [
    "ALGOS",
    "ENV_ID",
    "PRESETS",
    "SWEEP",
    "Baseline",
    "CurveCheckpoint",
    "Evaluation",
    "LearningCurve",
    "TrainedBaseline",
    "agent_policy",
    "make_agent",
    "make_venv",
    "score",
    "real_envs",
    "steps_to",
    "train",
]

ENV_ID = "CampusNav-v0"
ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "dqn": DQN, "recurrent_ppo": RecurrentPPO}
POLICIES = {  # (algo kind, obs_mode) -> SB3 policy name
    ("ppo", "state"): "MlpPolicy", ("ppo", "pixels"): "CnnPolicy",
    ("dqn", "state"): "MlpPolicy", ("dqn", "pixels"): "CnnPolicy",
    ("recurrent_ppo", "state"): "MlpLstmPolicy", ("recurrent_ppo", "pixels"): "CnnLstmPolicy",
}


@dataclass(frozen=True)
class Baseline:
    """One SB3 agent's settings on the native vector env; derive variants with :meth:`replace`."""

    algo: str = "ppo"
    """ppo, dqn or recurrent_ppo"""
    hyperparams: Mapping[str, Any] = field(default_factory=lambda: dict(PPO_SETTINGS))
    """keyword arguments of the SB3 algorithm (``learning_rate`` is the start value under ``lr_decay``)"""
    num_envs: int = 16
    """envs stepped together while learning"""
    obs_mode: str = "state"
    """the env's observations: state (72 floats, MlpPolicy) or pixels (64x64x3 uint8, CnnPolicy)"""
    shaping: float = 0.05
    """potential-based shaping while learning, reward per cell of Manhattan distance closed (0: none)"""
    frame_stack: int = 1
    """observations stacked along the last axis (1: none)"""
    lr_decay: bool = False
    """the learning rate decays linearly to 0 over the run's timesteps"""
    eval_epsilon: float = 0.05
    """DQN only: the random-action share of its epsilon-greedy evaluation (its final exploration rate)"""

    def __post_init__(self):
        if self.algo not in ALGOS:
            raise ValueError(f"unknown algo {self.algo!r}; choose from {', '.join(ALGOS)}")
        if self.obs_mode not in ("state", "pixels"):
            raise ValueError(f"obs_mode {self.obs_mode!r}: CampusNav baselines take 'state' or 'pixels'")
        if self.frame_stack < 1:
            raise ValueError(f"frame_stack must be >= 1, got {self.frame_stack}")

    def replace(self, **changes: Any) -> Baseline:
        """A copy with ``changes``; ``hyperparams`` given here update the current ones rather than replace them."""
        if "hyperparams" in changes:
            changes["hyperparams"] = {**self.hyperparams, **changes["hyperparams"]}
        return dataclasses.replace(self, **changes)

    @property
    def policy(self) -> str:
        return POLICIES[(self.algo, self.obs_mode)]

    @property
    def gamma(self) -> float:
        return float(self.hyperparams.get("gamma", 0.99))


_DEFAULT = Baseline()
PRESETS: dict[str, Baseline] = {
    "default": _DEFAULT,  # campusnav.ppo.PPO_SETTINGS, 16 envs, shaping 0.05 per cell
    "epochs10": _DEFAULT.replace(hyperparams=dict(batch_size=256, n_epochs=10)),
    "lr1e-3-decay": _DEFAULT.replace(hyperparams=dict(learning_rate=1e-3), lr_decay=True),
    "long-rollout": _DEFAULT.replace(hyperparams=dict(n_steps=512, batch_size=1024, n_epochs=10, gamma=0.995)),
    "envs32-wide": _DEFAULT.replace(num_envs=32, hyperparams=dict(batch_size=1024, policy_kwargs=dict(
        net_arch=[128, 128]))),
    "ent0": _DEFAULT.replace(hyperparams=dict(ent_coef=0.0)),
    "framestack4": _DEFAULT.replace(frame_stack=4),
    "epochs10-wide-decay": _DEFAULT.replace(hyperparams=dict(batch_size=256, n_epochs=10, learning_rate=5e-4,
                                                             policy_kwargs=dict(net_arch=[128, 128])), lr_decay=True),
    "recurrent": Baseline(algo="recurrent_ppo", hyperparams=dict(PPO_SETTINGS)),
    "dqn": Baseline(algo="dqn", hyperparams=DQN_SETTINGS),  # the settings of examples/sb3_baselines.py
    # slower target updates (counted in env steps), a smaller step size, a larger buffer: against Q divergence
    "dqn-stable": Baseline(algo="dqn", hyperparams={**DQN_SETTINGS, "learning_starts": 10_000, "buffer_size": 200_000,
                                                    "learning_rate": 1e-4, "target_update_interval": 10_000,
                                                    "exploration_fraction": 0.2}),
}
PRESETS["tuned"] = PRESETS["lr1e-3-decay"]  # the sweep's winner by success at its budget (docs/results/sb3_sweep.md)
PRESETS["recurrent-tuned"] = PRESETS["tuned"].replace(algo="recurrent_ppo")  # only the LSTM differs from tuned
PRESETS["pixels-cnn"] = PRESETS["tuned"].replace(obs_mode="pixels")  # only the observation (and CNN) differ
"""Named settings; :data:`SWEEP` lists the PPO candidates the sweep of ``benchmarks/sb3_reality.py`` compares."""
SWEEP = ("default", "epochs10", "lr1e-3-decay", "long-rollout", "envs32-wide", "ent0", "framestack4",
         "epochs10-wide-decay")


def real_envs(obs_mode: str = "state") -> EnvFactory:
    """``num_envs -> gym.make_vec("CampusNav-v0", ...)``: the real world of a baseline."""
    return lambda n: gym.make_vec(ENV_ID, num_envs=n, obs_mode=obs_mode)


def make_venv(baseline: Baseline, envs: EnvFactory | None = None) -> VecEnv:
    """The SB3 ``VecEnv`` an agent learns on: ``to_sb3`` of the vector env, then shaping, then frame stacking.

    Shaped pixels learn on the real env's dict observations: the shaping reads their
    state entry, then the image alone is passed on, so the policy sees what it is scored on.
    """
    shaped_pixels = baseline.shaping > 0 and baseline.obs_mode == "pixels"
    if shaped_pixels and envs is not None:
        raise ValueError("shaping a pixel agent reads the real env's dict observations; give no envs, or shaping=0")
    venv: VecEnv = to_sb3((envs or real_envs("dict" if shaped_pixels else baseline.obs_mode))(baseline.num_envs))
    if baseline.shaping > 0:
        venv = PotentialShaping(venv, baseline.shaping, baseline.gamma)
    if shaped_pixels:
        venv = VecExtractDictObs(venv, "image")
    if baseline.frame_stack > 1:
        venv = VecFrameStack(venv, baseline.frame_stack, channels_order="last")
    return venv


def make_agent(baseline: Baseline, venv: VecEnv, timesteps: int, seed: int) -> BaseAlgorithm:
    """The untrained SB3 agent of ``baseline`` on ``venv`` (CPU, silent)."""
    params = dict(baseline.hyperparams)
    if baseline.algo == "dqn":
        params["learning_starts"] = min(params.get("learning_starts", 100), timesteps // 2)
    if baseline.obs_mode == "pixels":
        params["policy_kwargs"] = {"normalize_images": True, **params.get("policy_kwargs", {})}
    if baseline.lr_decay:
        start = float(params["learning_rate"])
        params["learning_rate"] = lambda progress_remaining: start * progress_remaining
    return silent_sb3(ALGOS[baseline.algo](baseline.policy, venv, seed=seed, device="cpu", verbose=0, **params))


def agent_policy(agent: BaseAlgorithm, baseline: Baseline, seed: int = 0) -> BatchPolicy:
    """The agent as an ``evaluate_policy`` policy: it stacks frames and carries LSTM state itself.

    PPO samples its actions (from torch's global generator); DQN acts epsilon-greedy
    with ``baseline.eval_epsilon`` from a generator seeded with ``seed``. A reset
    (``action is None``) starts a fresh stack and a fresh LSTM state for all envs.
    """
    rng = np.random.default_rng(seed)
    memory: dict[str, Any] = {}

    def policy(obs: Any, action: Any, env: gym.vector.VectorEnv) -> np.ndarray:
        n = env.num_envs
        if baseline.frame_stack > 1:
            if action is None:
                memory["stack"] = StackedObservations(n, baseline.frame_stack, env.single_observation_space, "last")
                obs = memory["stack"].reset(obs)
            else:
                obs = memory["stack"].update(obs, np.zeros(n, dtype=bool), [{} for _ in range(n)])[0]
        if baseline.algo == "recurrent_ppo":
            starts = np.full(n, action is None)
            chosen, memory["lstm"] = agent.predict(obs, state=None if action is None else memory["lstm"],
                                                   episode_start=starts, deterministic=False)
            return chosen
        if baseline.algo == "dqn":
            greedy = agent.predict(obs, deterministic=True)[0]
            explore = rng.random(n) < baseline.eval_epsilon
            return np.where(explore, rng.integers(0, env.single_action_space.n, n), greedy)
        return agent.predict(obs, deterministic=False)[0]

    return policy


def score(agent: BaseAlgorithm, baseline: Baseline, evaluation: Evaluation, envs: EnvFactory | None = None) -> Outcomes:
    """``agent`` on ``evaluation``'s seeded real episodes, sampling under seed ``evaluation.seed``.

    Torch's global generator is restored afterwards, so scoring during training does not change it.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(evaluation.seed)
        return evaluate_policy(envs or real_envs(baseline.obs_mode), agent_policy(agent, baseline, evaluation.seed),
                               evaluation)


class LearningCurve(BaseCallback):
    """Every ``eval_every`` env steps, and before and after training, scores the policy on the same real episodes.

    ``curve`` holds lists ``steps`` (real env steps learned from), ``return_mean``,
    ``success_rate`` and ``seconds`` (wall time of training so far, evaluation excluded).
    A point is recorded at the first callback step at or past each multiple of ``eval_every``
    (the policy of the rollout in progress); the last one after the final update.
    ``progress`` gets a line per point.
    """

    def __init__(self, baseline: Baseline, evaluation: Evaluation, eval_every: int, envs: EnvFactory | None = None,
                 progress: Callable[[str], None] | None = None, checkpoint: CurveCheckpoint | None = None):
        super().__init__()
        self.progress, self.checkpoint = progress, checkpoint
        if eval_every <= 0:
            raise ValueError(f"eval_every must be positive, got {eval_every}")
        self.baseline, self.evaluation, self.eval_every, self.envs = baseline, evaluation, eval_every, envs
        self.curve: dict[str, list[float]] = {"steps": [], "return_mean": [], "success_rate": [], "seconds": []}
        self.next_at = eval_every
        self.eval_seconds = 0.0
        self.started = 0.0

    def record(self) -> None:
        clock = time.perf_counter()
        summary = score(self.model, self.baseline, self.evaluation, self.envs).summary()
        self.curve["steps"].append(int(self.num_timesteps))
        self.curve["return_mean"].append(summary["return_mean"])
        self.curve["success_rate"].append(summary["success_rate"])
        self.curve["seconds"].append(clock - self.started - self.eval_seconds)
        self.next_at = (self.num_timesteps // self.eval_every + 1) * self.eval_every
        if self.checkpoint is not None:
            self.checkpoint.save(self.model, self)
        self.eval_seconds += time.perf_counter() - clock  # scoring and keeping the run are not training
        if self.progress is not None:
            self.progress(f"{self.num_timesteps:>10,} steps  success {summary['success_rate']:.2f}  "
                          f"return {summary['return_mean']:+.3f}  {self.curve['seconds'][-1]:.0f} s")

    def _on_training_start(self) -> None:
        if self.curve["steps"]:  # resumed: the clock goes on from the last point
            self.started, self.eval_seconds = time.perf_counter() - self.curve["seconds"][-1], 0.0
            return
        self.started = time.perf_counter()
        self.record()

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next_at:
            self.record()
        return True

    def _on_training_end(self) -> None:
        if self.curve["steps"][-1] == self.num_timesteps:  # scored before the last update: score the final policy
            for values in self.curve.values():
                values.pop()
        self.record()


@dataclass(frozen=True)
class TrainedBaseline:
    """A trained agent, its real learning curve (see :class:`LearningCurve`) and the training wall seconds."""

    agent: BaseAlgorithm
    curve: dict[str, list[float]]
    seconds: float

    @property
    def final(self) -> dict[str, float]:
        """Success and mean return at the last point of the curve (the end of training)."""
        return {"steps": self.curve["steps"][-1], "success_rate": self.curve["success_rate"][-1],
                "return_mean": self.curve["return_mean"][-1]}


class CurveCheckpoint:
    """One ``train`` run at its last curve point, kept in ``folder``: a killed run goes on from there.

    ``agent.safetensors`` holds the agent (``model_zoo.agents.sb3_state``); ``run.json``
    what the run is (settings, steps, seed, evaluation), its counters, the curve so far
    and the global random streams. Both are written beside the folder, which is then
    replaced whole. A resumed run starts new episodes: the rollout under way when it was
    killed is lost, the curve goes on. A folder of another run is not resumed (and is
    overwritten at the new run's first point).
    """

    def __init__(self, folder: str | os.PathLike, run: Mapping[str, Any]):
        self.folder, self.run = Path(folder), json.loads(json.dumps(run, default=str))

    def save(self, agent: BaseAlgorithm, curve: LearningCurve) -> None:
        with whole_folder(self.folder) as staging:
            tensors, counters = agent_state(agent)
            save_tensors(staging / "agent.safetensors", tensors)
            saved = {"run": self.run, "agent": counters, "curve": curve.curve, "next_at": curve.next_at,
                     "random": rng_state()}
            (staging / "run.json").write_text(json.dumps(saved) + "\n")

    def restore(self, agent: BaseAlgorithm, curve: LearningCurve) -> bool:
        """Puts the saved run into ``agent`` and ``curve``; False (nothing changed) when there is none of this run."""
        path = self.folder / "run.json"
        if not path.exists():
            return False
        saved = json.loads(path.read_text())
        if saved["run"] != self.run:
            return False
        restore_agent_state(agent, load_tensors(self.folder / "agent.safetensors")[0], saved["agent"])
        curve.curve, curve.next_at = saved["curve"], saved["next_at"]
        set_rng_state(saved["random"])
        return True


def train(baseline: Baseline, timesteps: int, seed: int, evaluation: Evaluation, eval_every: int,
          envs: EnvFactory | None = None, progress: Callable[[str], None] | None = None,
          checkpoint: str | os.PathLike | None = None) -> TrainedBaseline:
    """Trains ``baseline`` for ``timesteps`` real env steps, recording its learning curve on ``evaluation``.

    ``envs`` (default: the real env) is the world learned in and scored in;
    ``progress`` gets a line after each curve point. Seconds exclude evaluation.
    ``checkpoint``: a folder that keeps the run at every curve point and from which
    the same run resumes (:class:`CurveCheckpoint`; a finished run is returned as it was).
    """
    venv = make_venv(baseline, envs)
    agent = make_agent(baseline, venv, timesteps, seed)
    run = {"baseline": dataclasses.asdict(baseline), "timesteps": timesteps, "seed": seed,
           "evaluation": dataclasses.asdict(evaluation), "eval_every": eval_every}
    kept = CurveCheckpoint(checkpoint, run) if checkpoint is not None else None
    curve = LearningCurve(baseline, evaluation, eval_every, envs, progress, kept)
    try:
        if kept is None or not kept.restore(agent, curve):
            agent.learn(total_timesteps=timesteps, callback=curve)
        elif agent.num_timesteps < timesteps:
            venv.seed(seed + agent.num_timesteps)  # new episodes, not the first ones again
            agent.learn(total_timesteps=timesteps - agent.num_timesteps, callback=curve, reset_num_timesteps=False)
    finally:
        venv.close()
    return TrainedBaseline(agent, curve.curve, curve.curve["seconds"][-1])


def steps_to(curve: Mapping[str, list[float]], success: float) -> int | None:
    """The first recorded env step count at which the success rate reached ``success`` (None: never)."""
    return next((int(s) for s, r in zip(curve["steps"], curve["success_rate"], strict=True) if r >= success), None)
