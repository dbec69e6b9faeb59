"""A model-based RL loop: act in reality, fit the world model on all data so far, learn in its dream, repeat.

Dyna (Sutton 1991) in the form of MBPO (Janner et al. 2019, "When to Trust Your
Model", arXiv:1906.08253): each iteration collects real episodes with the current
policy (plus uniform exploration), fine-tunes the world model on every episode
collected so far, and trains the learner inside the model's dream; real env steps
are counted exactly (every transition of every collected episode) and the policy
is scored on the same seeded real episodes after each iteration, giving a
sample-efficiency curve. Evaluation episodes are not counted: they teach nothing.

What the published methods do against a learner exploiting the model's errors is
left to the dream a caller builds (short rollouts branched from real replay
states, as MBPO; sampled outcomes and a dream temperature) plus
``DisagreementPenalty`` here: an ensemble's disagreement subtracted from the
reward (MOPO, Yu et al. 2020, arXiv:2005.13239) or ending the rollout where it
is too high (as M2AC's masking, Pan et al. 2020, arXiv:2010.04893).

The loop is generic: the real world is an env id (collected with
``model_zoo.data.collect``, so every iteration's episodes are a Minari dataset on
disk), the dream a factory ``(model, episodes, num_envs) -> VectorEnv``, and the
learner anything with ``learn(dream, model, episodes)`` and ``act(obs)``:
``SB3Learner`` (any SB3 algorithm on a VecEnv), ``CMAESLearner`` or
``ActorCriticLearner`` (DreamerV3's actor-critic in the model's imagination).
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from minari.storage.datasets_root_dir import get_dataset_path
from tqdm.auto import tqdm

from model_zoo.agents.actor_critic import ActorCritic, start_states
from model_zoo.agents.controllers import flat_features, model_features
from model_zoo.agents.loop_state import (
    load_state,
    prefixed,
    prune_states,
    restore_random,
    save_state,
    state_folder,
)
from model_zoo.agents.sb3_state import agent_state, restore_agent_state
from model_zoo.agents.transfer import (
    CMAES,
    EnvFactory,
    Evaluation,
    evaluate_policy,
    random_policy,
    train_controller,
)
from model_zoo.base import WorldModel
from model_zoo.checkpoint import atomic_write, load_optimizer_state, optimizer_tensors
from model_zoo.checkpoint import load as load_model
from model_zoo.data import Episode, SequenceSampler, collect, load_episodes
from model_zoo.data.episodes import check_positive_int, datasets_root
from model_zoo.training import fit

__all__ = [
    "ActorCriticLearner",
    "CMAESLearner",
    "DisagreementPenalty",
    "DreamFactory",
    "Learner",
    "LoopConfig",
    "LoopResult",
    "SB3Learner",
    "run_loop",
    "silent_sb3",
]

DreamFactory = Callable[[WorldModel, Sequence[Episode], int], gym.vector.VectorEnv]
"""``(model, the real episodes so far, num_envs) -> a dream VectorEnv`` for the learner."""
_COLLECTION_SEED = 1_000_003  # iteration k collects with seed + (k + 1) * this: apart from evaluation's seeds


class Learner(Protocol):
    """What the loop trains: it learns in a dream (or from the model itself) and acts on real observations.

    ``state`` and ``restore`` (optional) let a killed loop resume (``run_loop(..., resume=True)``):
    tensors and JSON counters in, the same learner out (``restore`` gets the model and
    a dream to rebuild what it builds on its first ``learn``).
    """

    def learn(self, dream: EnvFactory, model: WorldModel, episodes: Sequence[Episode]) -> dict[str, float]: ...

    def act(self, obs: Any) -> np.ndarray: ...

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]: ...

    def restore(self, tensors: Mapping[str, torch.Tensor], counters: Mapping[str, Any], model: WorldModel,
                dream: EnvFactory) -> None: ...


@dataclass(frozen=True)
class LoopConfig:
    """The loop's budget: real episodes, model fitting and evaluation (the learner holds its own)."""

    iterations: int = 5
    initial_episodes: int = 64  # uniform-random episodes before the first fit
    episodes: int = 32  # real episodes the current policy collects per later iteration
    exploration: float = 0.1  # share of collection actions drawn uniformly at random
    num_envs: int = 16  # real envs stepped together while collecting
    initial_fit_steps: int = 2_000
    fit_steps: int = 500  # optimizer steps fine-tuning the model on all data, later iterations
    batch_size: int = 16
    seq_len: int = 32
    lr: float = 1e-3
    evaluation: Evaluation = field(default_factory=lambda: Evaluation(episodes=100, reset_seed=10_000))
    seed: int = 0
    fit_threads: int | None = None  # torch threads while the model fits (None: the process's own count)

    def __post_init__(self):
        for name in ("iterations", "initial_episodes", "episodes", "num_envs", "initial_fit_steps", "batch_size",
                     "seq_len"):
            check_positive_int(name, getattr(self, name))
        if self.fit_threads is not None:
            check_positive_int("fit_threads", self.fit_threads)
        if isinstance(self.fit_steps, bool) or not isinstance(self.fit_steps, int) or self.fit_steps < 0:
            raise ValueError(f"fit_steps must be an integer >= 0, got {self.fit_steps!r}")
        if not 0.0 <= self.exploration <= 1.0:
            raise ValueError(f"exploration must be in [0, 1], got {self.exploration!r}")


@dataclass
class LoopResult:
    """One row per iteration: cumulative real steps and episodes, real return and success, model and learner logs,
    and the policy's return and success in the dream (far from the real ones: the model is wrong where it goes)."""

    curve: list[dict[str, Any]]
    random: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {"curve": self.curve, "random": self.random}


class DisagreementPenalty(gym.vector.VectorWrapper):
    """Reward minus ``penalty`` times the dream's ``info["disagreement"]``; truncates above ``limit``.

    MOPO's uncertainty-penalised reward (Yu et al. 2020) with an ensemble's
    disagreement as the uncertainty; ``limit`` ends a rollout where the members
    disagree too much to trust it (a truncation: the state is not terminal).
    """

    def __init__(self, env: gym.vector.VectorEnv, penalty: float = 0.0, limit: float | None = None):
        super().__init__(env)
        if not penalty >= 0:
            raise ValueError(f"penalty must be >= 0, got {penalty!r}")
        if limit is not None and not limit > 0:
            raise ValueError(f"limit must be > 0 or None, got {limit!r}")
        self.penalty, self.limit = float(penalty), limit

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        if "disagreement" not in info:
            raise ValueError("DisagreementPenalty needs a dream whose model reports disagreement (an ensemble)")
        spread = np.asarray(info["disagreement"], dtype=np.float64)
        reward = np.asarray(reward, dtype=np.float64) - self.penalty * np.minimum(spread, 1e6)
        if self.limit is not None:
            truncated = np.asarray(truncated) | (~np.asarray(terminated) & (spread > self.limit))
        return obs, reward, terminated, truncated, info


def run_loop(
    model: WorldModel,
    learner: Learner,
    env_id: str,
    dream: DreamFactory,
    config: LoopConfig,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    run_dir: str | Path,
    progress: bool = True,
    resume: bool = False,
) -> LoopResult:
    """Runs ``config.iterations`` of collect, fit, learn in the dream, evaluate; returns the curve.

    ``run_dir`` keeps every iteration's episodes (Minari datasets under
    ``data/``), the model (``model/``) and ``curve.json``, each written as its
    iteration ends, with the state the next iteration starts from
    (``model_zoo.agents.loop_state``). A folder that already holds a run is
    refused (``FileExistsError``) before anything runs, unless ``resume``: then
    the run goes on after its last finished iteration, as if it had never
    stopped (the same ``config``, but ``iterations``, which may grow, and a
    fresh ``model`` and ``learner`` built as the first time).
    """
    env_kwargs = dict(env_kwargs or {})
    run_path = Path(run_dir)
    held = (run_path / "curve.json").exists() or (run_path / "data").exists()
    if held and not resume:
        raise FileExistsError(f"{run_path} already holds a loop run; give another run_dir, remove it or resume")
    run_path.mkdir(parents=True, exist_ok=True)
    real: EnvFactory = lambda n: gym.make_vec(env_id, num_envs=n, **env_kwargs)  # noqa: E731
    probe = real(1)
    action_space = probe.single_action_space
    probe.close()
    rng = np.random.default_rng(config.seed)
    if held:
        result, episodes = _resume(run_path, model, learner, dream, config, rng)
    else:
        random = evaluate_policy(real, random_policy(action_space, config.evaluation.seed), config.evaluation)
        result, episodes = LoopResult([], random.summary()), []
    bar = tqdm(range(len(result.curve), config.iterations), desc="mbrl", unit="iteration", disable=not progress)
    for iteration in bar:
        started = time.perf_counter()
        policy = None if iteration == 0 else _exploring(learner.act, action_space, config.exploration, rng)
        count = config.initial_episodes if iteration == 0 else config.episodes
        dataset = collect(env_id, num_episodes=count, num_envs=min(config.num_envs, count), policy=policy,
                          seed=config.seed + (iteration + 1) * _COLLECTION_SEED, env_kwargs=env_kwargs,
                          dataset_id=_dataset_id(iteration), data_path=run_path / "data", progress=False)
        episodes += load_episodes(dataset)
        model_log = _fit(model, episodes, config, config.initial_fit_steps if iteration == 0 else config.fit_steps,
                         iteration)
        model.save(run_path / "model")
        dreams: EnvFactory = lambda n, seen=episodes: dream(model, seen, n)  # noqa: E731
        learner_log = learner.learn(dreams, model, episodes)
        act = lambda obs, action, env: learner.act(obs)  # noqa: E731
        outcomes = evaluate_policy(real, act, config.evaluation)
        dreamed = evaluate_policy(dreams, act, config.evaluation).summary()
        row = {"iteration": iteration, "real_steps": int(sum(len(e) for e in episodes)),
               "real_episodes": len(episodes), **outcomes.summary(), "model": model_log, "learner": learner_log,
               "in_dream": {k: dreamed[k] for k in ("return_mean", "success_rate")},
               "seconds": time.perf_counter() - started}
        result.curve.append(row)
        bar.set_postfix(steps=row["real_steps"], success=f"{row['success_rate']:.2f}")
        save_state(run_path, iteration, model, learner.state() if hasattr(learner, "state") else None, rng)
        atomic_write(run_path / "curve.json", json.dumps({"config": asdict(config), **result.to_json()}, indent=2,
                                                         default=float) + "\n")
        prune_states(run_path, iteration)
    return result


def _resume(run_path: Path, model: WorldModel, learner: Learner, dream: DreamFactory, config: LoopConfig,
            rng: np.random.Generator) -> tuple[LoopResult, list[Episode]]:
    """The run in ``run_path`` as it was after its last finished iteration: its curve and episodes, the model,
    the learner and every random stream restored; what an unfinished iteration left is removed."""
    saved = json.loads((run_path / "curve.json").read_text()) if (run_path / "curve.json").exists() else None
    if saved is None or not saved["curve"]:
        raise ValueError(f"{run_path} holds no finished iteration to resume from; remove it and start again")
    free = ("iterations", "fit_threads")  # a resumed run may go on longer, or on other threads
    ours = {k: v for k, v in json.loads(json.dumps(asdict(config), default=float)).items() if k not in free}
    if {k: v for k, v in saved["config"].items() if k not in free} != ours:
        raise ValueError(f"{run_path} was run with another loop config ({saved['config']}); resume with the same")
    done = len(saved["curve"])
    folder = state_folder(run_path, done - 1)
    if not (folder / "loop.json").exists():
        raise ValueError(f"{run_path} has no saved state after iteration {done - 1} (written by an older loop); "
                         "it cannot resume")
    tensors, counters, streams = load_state(folder)
    if counters is None or not hasattr(learner, "restore"):
        raise ValueError(f"{type(learner).__name__} has no state() and restore(): a loop with it cannot resume")
    with datasets_root(run_path / "data"):  # iterations run one after another: only the next can have begun
        shutil.rmtree(get_dataset_path(_dataset_id(done)), ignore_errors=True)
    episodes = [e for k in range(done) for e in load_episodes(_dataset_id(k), data_path=run_path / "data")]
    model.load_state_dict(load_model(folder / "model", map_location=model.device).state_dict())
    model.eval()
    learner.restore(tensors, counters, model, lambda n: dream(model, episodes, n))
    restore_random(streams, rng)
    return LoopResult(saved["curve"], saved["random"]), episodes


def _dataset_id(iteration: int) -> str:
    """The Minari id of the episodes ``iteration`` collects, under the run folder's ``data/``."""
    return f"mbrl/iteration{iteration}-v0"


def _exploring(act: Callable[[Any], np.ndarray], action_space: gym.Space, epsilon: float,
               rng: np.random.Generator) -> Callable[[Any], np.ndarray]:
    """``act`` with each action replaced by a uniform one with probability ``epsilon`` (Discrete or Box)."""

    def policy(obs: Any) -> np.ndarray:
        action = np.asarray(act(obs))
        if epsilon <= 0:
            return action
        n = action.shape[0]
        swap = rng.random(n) < epsilon
        if isinstance(action_space, gym.spaces.Discrete):
            start = int(action_space.start)
            uniform = rng.integers(start, start + int(action_space.n), n)
        else:
            uniform = rng.uniform(action_space.low, action_space.high, (n, *action_space.shape))
        return np.where(swap.reshape((n,) + (1,) * (action.ndim - 1)), uniform, action).astype(action.dtype)

    return policy


def _fit(model: WorldModel, episodes: list[Episode], config: LoopConfig, steps: int,
         iteration: int) -> dict[str, float]:
    """``steps`` optimizer steps on windows of all episodes so far; the last logged row (empty for 0 steps)."""
    if steps == 0:
        return {}
    seed = config.seed + iteration
    sampler = SequenceSampler(episodes, config.seq_len, config.batch_size, seed=seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.fit_threads or threads)  # the fit alone may share cores the learner would not
    model.train()
    try:
        history = fit(model, sampler, steps=steps, lr=config.lr, seed=seed, device=model.device, resume=False,
                      progress=False)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    return {k: float(v) for k, v in history[-1].items()} if history else {}


def silent_sb3(agent: Any) -> Any:
    """``agent`` (a stable-baselines3 algorithm) with a logger that writes nothing and nowhere.

    With SB3's own logger every ``learn`` call of a silent agent still makes an empty
    ``SB3-<date and time>`` folder in the temp directory: hundreds in a loop run.
    """
    from stable_baselines3.common.logger import Logger

    agent.set_logger(Logger(folder=None, output_formats=[]))
    return agent


class SB3Learner:
    """Any stable-baselines3 algorithm that takes a VecEnv, trained ``timesteps`` per iteration in the dream.

    The agent is built on the first dream and keeps learning on each new one
    (``set_env``, the step counter running on); ``to_vec_env`` turns a Gymnasium
    VectorEnv into an SB3 VecEnv (e.g. ``wrappers.to_sb3``) and ``wrap`` may add
    SB3 wrappers such as reward shaping.
    """

    def __init__(self, algo: Any, *, to_vec_env: Callable[[gym.vector.VectorEnv], Any], timesteps: int,
                 num_envs: int = 16, policy: str = "MlpPolicy", settings: Mapping[str, Any] | None = None,
                 wrap: Callable[[Any], Any] | None = None, seed: int = 0, deterministic: bool = False):
        check_positive_int("timesteps", timesteps)
        check_positive_int("num_envs", num_envs)
        self.algo, self.to_vec_env, self.timesteps, self.num_envs = algo, to_vec_env, timesteps, num_envs
        self.policy, self.settings, self.wrap = policy, dict(settings or {}), wrap
        self.seed, self.deterministic = seed, deterministic
        self.agent: Any = None

    def _venv(self, dream: EnvFactory) -> Any:
        venv = self.to_vec_env(dream(self.num_envs))
        return self.wrap(venv) if self.wrap is not None else venv

    def learn(self, dream: EnvFactory, model: WorldModel, episodes: Sequence[Episode]) -> dict[str, float]:
        venv = self._venv(dream)
        started = time.perf_counter()
        try:
            if self.agent is None:
                self.agent = silent_sb3(self.algo(self.policy, venv, seed=self.seed, device="cpu", verbose=0,
                                                  **self.settings))
            else:
                venv.seed(self.seed + self.agent.num_timesteps)  # SB3 seeds only the first env it is given
                self.agent.set_env(venv)
            self.agent.learn(total_timesteps=self.timesteps, reset_num_timesteps=False)
        finally:
            venv.close()
        return {"timesteps": float(self.agent.num_timesteps), "seconds": time.perf_counter() - started}

    def act(self, obs: Any) -> np.ndarray:
        return self.agent.predict(obs, deterministic=self.deterministic)[0]

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The policy, its optimizer, the step counters, the action space's sampler and an off-policy
        algorithm's replay buffer (``sb3_state.agent_state``)."""
        if self.agent is None:
            return {}, {"built": False}
        tensors, counters = agent_state(self.agent)
        return tensors, {"built": True, **counters}

    def restore(self, tensors: Mapping[str, torch.Tensor], counters: Mapping[str, Any], model: WorldModel,
                dream: EnvFactory) -> None:
        if not counters["built"]:
            return
        venv = self._venv(dream)
        try:  # seed=None: building the agent must not reseed the global streams the loop restores
            self.agent = silent_sb3(self.algo(self.policy, venv, seed=None, device="cpu", verbose=0,
                                              **self.settings))
        finally:
            venv.close()
        restore_agent_state(self.agent, tensors, counters)


class CMAESLearner:
    """A controller searched by CMA-ES in the dream, each iteration starting from the last one's parameters."""

    def __init__(self, controller: Any, cmaes: CMAES, features: Callable[[Any], Any] | None = None):
        self.controller, self.cmaes, self.features = controller, cmaes, features
        self.params: np.ndarray | None = None
        self._seeds = iter(range(cmaes.seed + 1_000, 2**31 - 1))

    def learn(self, dream: EnvFactory, model: WorldModel, episodes: Sequence[Episode]) -> dict[str, float]:
        cmaes = replace(self.cmaes, x0=self.params) if self.params is not None else self.cmaes
        features = None if self.features is None else (lambda obs, action, first: self.features(obs))
        trained = train_controller(dream, self.controller, features, cmaes, self._seeds)
        self.params = trained.params
        self.controller.set_params(self.params)
        return {"dream_return": float(np.max(trained.history["mean"])), "seconds": trained.seconds}

    def act(self, obs: Any) -> np.ndarray:
        x = self.features(obs) if self.features is not None else flat_features(obs, None, None)
        action = self.controller(np.asarray(x, dtype=np.float32))
        return action.detach().cpu().numpy() if torch.is_tensor(action) else np.asarray(action)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The last parameters and the next CMA-ES seed."""
        tensors = {} if self.params is None else {"params": torch.from_numpy(np.array(self.params))}
        return tensors, {"next_seed": next(copy.copy(self._seeds))}

    def restore(self, tensors: Mapping[str, torch.Tensor], counters: Mapping[str, Any], model: WorldModel,
                dream: EnvFactory) -> None:
        if "params" in tensors:
            self.params = tensors["params"].numpy().copy()
            self.controller.set_params(self.params)
        self._seeds = iter(range(counters["next_seed"], 2**31 - 1))


class ActorCriticLearner:
    """The imagination actor-critic (``ActorCritic``, DreamerV3's scheme): ``updates`` steps per iteration.

    It learns from the model itself, not from a dream env: each update imagines
    from the filtered states of a batch of replay windows. It acts on the model's
    features of the current real observation filtered alone (one ``observe`` from
    the initial state), exact for a model whose state is the observation (``mlp``)
    and a one-frame view for a recurrent one.
    """

    def __init__(self, config: Any = None, *, updates: int = 200, batch_size: int = 16, seq_len: int = 16,
                 seed: int = 0):
        check_positive_int("updates", updates)
        self.config, self.updates, self.batch_size, self.seq_len = config, updates, batch_size, seq_len
        self.seed, self.rounds = seed, 0
        self.agent: Any = None
        self.model: WorldModel | None = None
        self.generator = torch.Generator().manual_seed(seed)

    def learn(self, dream: EnvFactory, model: WorldModel, episodes: Sequence[Episode]) -> dict[str, float]:
        self.model = model
        if self.agent is None:
            with torch.no_grad():
                dim = int(model.features(model.initial_state(1)).shape[-1])
            self.agent = ActorCritic(dim, model.action_space, self.config).to(model.device)
        if self.generator.device != model.device:  # the agent, its noise and the windows live on the model's device
            self.generator = torch.Generator(device=model.device).manual_seed(self.seed)
        sampler = SequenceSampler(episodes, self.seq_len, self.batch_size, seed=self.seed + self.rounds,
                                  device=model.device)
        self.rounds += 1
        started, metrics = time.perf_counter(), {}
        model.eval()
        for _ in range(self.updates):
            with torch.no_grad():
                start = start_states(model, sampler.sample())
            metrics = self.agent.update(model, start, self.generator)
        return {**metrics, "seconds": time.perf_counter() - started}

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The agent and its two optimizers, the rounds so far and the generator of its imagination."""
        tensors, counters = {"generator": self.generator.get_state()}, {"rounds": self.rounds}
        if self.agent is not None:
            tensors |= {f"agent.{k}": v for k, v in self.agent.state_dict().items()}
            for name in ("actor_opt", "critic_opt"):
                optimizer, counters[name] = optimizer_tensors(getattr(self.agent, name))
                tensors |= {f"{name}.{k}": v for k, v in optimizer.items()}
        return tensors, counters

    def restore(self, tensors: Mapping[str, torch.Tensor], counters: Mapping[str, Any], model: WorldModel,
                dream: EnvFactory) -> None:
        self.model, self.rounds = model, counters["rounds"]
        if "actor_opt" in counters:
            with torch.no_grad():
                dim = int(model.features(model.initial_state(1)).shape[-1])
            self.agent = ActorCritic(dim, model.action_space, self.config).to(model.device)
            self.agent.load_state_dict(prefixed(tensors, "agent."))
            for name in ("actor_opt", "critic_opt"):
                load_optimizer_state(getattr(self.agent, name), prefixed(tensors, f"{name}."), counters[name])
        self.generator = torch.Generator(device=model.device)
        self.generator.set_state(tensors["generator"])

    def act(self, obs: Any) -> np.ndarray:
        n = len(next(iter(obs.values()))) if isinstance(obs, dict) else len(obs)
        features = model_features(self.model)(obs, None, np.ones(n, dtype=bool))  # a fresh filter: one frame
        with torch.no_grad():
            return self.agent.act(features, generator=self.generator).cpu().numpy()

