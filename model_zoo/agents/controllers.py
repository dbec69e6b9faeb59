"""A linear controller on world-model features, trained with CMA-ES on batched rollouts.

As in Ha & Schmidhuber 2018, "World Models": the controller is one linear map
from features to actions (tanh-squashed into the bounds for Box actions, argmax
for Discrete ones), and its parameters are searched with CMA-ES (Hansen's
``cma`` library). The whole population is scored in one call, so a vector env
with popsize x episodes copies (``rollout_returns``), a dream env, or any other
callable returning one return per parameter vector plugs in the same way.

>>> import numpy as np
>>> target = np.array([0.5, -0.3, 0.2])
>>> def evaluate(population):  # returns to maximise, one per parameter vector
...     return [-float(np.sum((p - target) ** 2)) for p in population]
>>> best, history = train_cmaes(evaluate, 3, generations=40, sigma0=0.3, progress=False)
>>> bool(np.allclose(best, target, atol=0.05))
True
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cma
import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from tqdm.auto import tqdm

from model_zoo.agents.actor_critic import ActorCritic, ActorCriticConfig  # the second controller: learns in imagination
from model_zoo.parallel import chunked

__all__ = [
    "ActionScoreController",
    "ActorCritic",
    "ActorCriticConfig",
    "LinearController",
    "flat_features",
    "load_params",
    "model_features",
    "rollout_returns",
    "save_params",
    "train_cmaes",
]

Array = np.ndarray | torch.Tensor
FeaturesFn = Callable[[Any, Any, np.ndarray], Array]  # (obs, action that led to it or None, is_first) -> (N, F)


class LinearController:
    """actions = squash(W @ features + b), with (W, b) exchanged as one flat parameter vector.

    Box actions are tanh-squashed into their bounds (dimensions with an infinite
    bound stay linear); Discrete actions are the argmax (plus the space's start).
    Works on numpy arrays and torch tensors alike, returning the same kind.

    >>> import numpy as np
    >>> from gymnasium import spaces
    >>> controller = LinearController(4, spaces.Discrete(3))
    >>> controller.num_params
    15
    >>> controller.set_params(np.arange(15.0))
    >>> controller(np.ones((2, 4))).tolist()
    [2, 2]
    """

    def __init__(self, feature_dim: int, action_space: gym.Space, bias: bool = True):
        if isinstance(action_space, spaces.Discrete):
            self.out_dim = int(action_space.n)
        elif isinstance(action_space, spaces.Box) and np.issubdtype(action_space.dtype, np.floating):
            self.out_dim = int(np.prod(action_space.shape))
            low = np.broadcast_to(action_space.low, action_space.shape).ravel().astype(np.float32)
            high = np.broadcast_to(action_space.high, action_space.shape).ravel().astype(np.float32)
            self._bounded = np.isfinite(low) & np.isfinite(high)
            self._low = np.where(self._bounded, low, -1.0).astype(np.float32)
            self._high = np.where(self._bounded, high, 1.0).astype(np.float32)
        else:
            raise TypeError(f"LinearController takes Discrete or float Box actions, got {action_space}")
        self.feature_dim = int(feature_dim)
        self.action_space = action_space
        self.bias = bias
        self.weight = np.zeros((self.out_dim, self.feature_dim), np.float32)
        self.offset = np.zeros(self.out_dim, np.float32)

    @property
    def num_params(self) -> int:
        return self.out_dim * self.feature_dim + (self.out_dim if self.bias else 0)

    def get_params(self) -> np.ndarray:
        """The parameters as one flat float32 vector (weights row-major, then the bias)."""
        parts = [self.weight.ravel()] + ([self.offset] if self.bias else [])
        return np.concatenate(parts).astype(np.float32)

    def set_params(self, params: Array) -> None:
        flat = _as_population(params, self.num_params)
        if flat.shape[0] != 1:
            raise ValueError(f"set_params takes one parameter vector, got {flat.shape[0]}")
        weight, offset = self._split(flat)
        self.weight, self.offset = weight[0], offset[0]

    def __call__(self, features: Array) -> Array:
        """Actions for features (F,) or (N, F): (action shape) or (N, action shape)."""
        return self.act_population(self.get_params()[None], features)

    def act_population(self, params: Array, features: Array) -> Array:
        """Actions of a population: params (P, num_params), features (P * K, F) -> (P * K, action shape).

        Rows ``p * K`` to ``p * K + K - 1`` of ``features`` are controlled by member ``p``.
        """
        population = _as_population(params, self.num_params)
        single = features.ndim == 1
        if single:
            features = features[None]
        n, p = features.shape[0], population.shape[0]
        if features.shape[-1] != self.feature_dim or n % p:
            raise ValueError(
                f"features must be (P * K, {self.feature_dim}) for a population of P={p}, got {tuple(features.shape)}"
            )
        weight, offset = self._split(population)  # (P, O, F), (P, O)
        if torch.is_tensor(features):
            weight = torch.as_tensor(weight, dtype=features.dtype, device=features.device)
            offset = torch.as_tensor(offset, dtype=features.dtype, device=features.device)
            z = torch.einsum("pkf,pof->pko", features.reshape(p, n // p, -1), weight) + offset[:, None]
        else:
            features = np.asarray(features, np.float32)
            z = np.einsum("pkf,pof->pko", features.reshape(p, n // p, -1), weight) + offset[:, None]
        actions = self._to_action(z.reshape(n, self.out_dim))
        return actions[0] if single else actions

    def _split(self, population: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p, k = population.shape[0], self.out_dim * self.feature_dim
        weight = population[:, :k].reshape(p, self.out_dim, self.feature_dim)
        offset = population[:, k:] if self.bias else np.zeros((p, self.out_dim), np.float32)
        return weight, offset

    def _to_action(self, z: Array) -> Array:
        """(N, O) pre-activations -> (N, action shape) actions inside the action space."""
        space = self.action_space
        if isinstance(space, spaces.Discrete):
            return z.argmax(-1) + int(space.start)  # int64 (N,)
        shape = (z.shape[0],) + tuple(space.shape)
        if torch.is_tensor(z):
            low, high = (torch.as_tensor(b, device=z.device) for b in (self._low, self._high))
            bounded = torch.as_tensor(self._bounded, device=z.device)
            squashed = low + (torch.tanh(z) + 1) * 0.5 * (high - low)
            return torch.where(bounded, squashed, z).reshape(shape)
        squashed = self._low + (np.tanh(z) + 1) * 0.5 * (self._high - self._low)
        return np.where(self._bounded, squashed, z).astype(space.dtype).reshape(shape)


class ActionScoreController:
    """Discrete actions scored by one shared linear map of per-action features: argmax_a (phi[a] . w).

    The features come as (N, A, F), one row per action (for CampusNav-v0,
    ``campus_env.features.action_features``). Because every action is scored
    with the same F weights, CMA-ES searches F numbers instead of A x F, and
    the symmetric navigation rules (go towards the goal, avoid closed cells)
    are one point of the space rather than a coincidence of A rows.

    With ``sampled=True`` the last parameter is a temperature: the action is
    drawn from softmax(scores / |temperature|) by the Gumbel-max trick, from
    the controller's own seeded generator (``reseed``), so a greedy rule that
    would loop forever behind a wall can wander round it.

    >>> import numpy as np
    >>> from gymnasium import spaces
    >>> controller = ActionScoreController(2, spaces.Discrete(3))
    >>> controller.num_params
    2
    >>> controller.set_params(np.array([1.0, -1.0]))
    >>> features = np.array([[[0, 0], [1, 0], [1, 1]]], dtype=np.float32)  # (N=1, A=3, F=2)
    >>> controller(features).tolist()
    [1]
    """

    def __init__(self, feature_dim: int, action_space: gym.Space, sampled: bool = False, seed: int = 0):
        if not isinstance(action_space, spaces.Discrete):
            raise TypeError(f"ActionScoreController scores Discrete actions, got {action_space}")
        self.feature_dim = int(feature_dim)
        self.action_space = action_space
        self.out_dim = int(action_space.n)
        self.sampled = sampled
        self.params = np.zeros(self.num_params, np.float32)
        self.reseed(seed)

    @property
    def num_params(self) -> int:
        return self.feature_dim + int(self.sampled)

    def reseed(self, seed: int | None) -> None:
        """Restarts the generator of the sampled actions."""
        self._rng = np.random.default_rng(seed)

    def get_params(self) -> np.ndarray:
        return self.params.copy()

    def set_params(self, params: Array) -> None:
        flat = _as_population(params, self.num_params)
        if flat.shape[0] != 1:
            raise ValueError(f"set_params takes one parameter vector, got {flat.shape[0]}")
        self.params = flat[0].copy()

    def __call__(self, features: Array) -> Array:
        """Actions for features (A, F) or (N, A, F): a scalar or (N,)."""
        return self.act_population(self.params[None], features)

    def act_population(self, params: Array, features: Array) -> Array:
        """Actions of a population: params (P, num_params), features (P * K, A, F) -> (P * K,).

        Rows ``p * K`` to ``p * K + K - 1`` of ``features`` are controlled by member ``p``.
        """
        population = _as_population(params, self.num_params)
        is_tensor = torch.is_tensor(features)
        device = features.device if is_tensor else None
        feats = features.detach().cpu().numpy() if is_tensor else np.asarray(features, np.float32)
        single = feats.ndim == 2
        if single:
            feats = feats[None]
        n, p = feats.shape[0], population.shape[0]
        if feats.ndim != 3 or feats.shape[1:] != (self.out_dim, self.feature_dim) or n % p:
            raise ValueError(
                f"features must be (P * K, {self.out_dim}, {self.feature_dim}) for a population of P={p}, "
                f"got {tuple(feats.shape)}"
            )
        weight = np.repeat(population[:, : self.feature_dim], n // p, axis=0)  # (N, F)
        scores = np.einsum("naf,nf->na", feats, weight)
        if self.sampled:
            temperature = np.repeat(np.abs(population[:, -1]), n // p)[:, None]
            scores = scores + temperature * self._rng.gumbel(size=scores.shape)
        actions = scores.argmax(-1) + int(self.action_space.start)
        out = actions[0] if single else actions
        return torch.as_tensor(out, device=device) if is_tensor else out


def _as_population(params: Array | Sequence[Array], num_params: int) -> np.ndarray:
    """Parameter vectors as a float32 (P, num_params) array, with a clear error on a bad length."""
    if torch.is_tensor(params):
        params = params.detach().cpu().numpy()
    population = np.asarray(params, dtype=np.float32)
    population = population.reshape(1, -1) if population.ndim == 1 else population
    if population.ndim != 2 or population.shape[1] != num_params:
        raise ValueError(f"expected parameter vectors of length {num_params}, got shape {np.shape(params)}")
    return population


# --- scoring a population in a vector env --------------------------------------------


def rollout_returns(
    controllers_params: Sequence[Array] | np.ndarray,
    env: gym.vector.VectorEnv | Callable[[int], gym.vector.VectorEnv] | str,
    features_fn: FeaturesFn | None = None,
    episodes: int = 1,
    *,
    controller: LinearController | ActionScoreController | None = None,
    max_steps: int | None = None,
    seed: int | None = None,
) -> np.ndarray:
    """Mean return (P,) of each of P linear controllers over ``episodes`` episodes, all run at once.

    ``env`` is a VectorEnv with ``num_envs == P * episodes``, a callable
    ``num_envs -> VectorEnv``, or an env id for ``gym.make_vec`` (envs built here
    are closed here). Env ``i`` runs member ``i // episodes`` for exactly one
    episode (steps after it ends are ignored), until every env is done or
    ``max_steps`` steps have passed.

    ``features_fn(obs, action, is_first)`` maps the batched observation (and the
    action that led to it, None after reset, and the bool (N,) first-step mask)
    to features (N, F), numpy or torch; ``model_features(model)`` builds one from
    a world model, and None flattens array observations. ``controller`` defaults
    to a ``LinearController`` on those features and the env's action space; a
    controller that samples (``ActionScoreController(sampled=True)``) is reseeded
    with ``seed``, so members meet the same episodes and the same draws.
    """
    owned = not isinstance(env, gym.vector.VectorEnv)
    num_envs = len(controllers_params) * episodes
    if isinstance(env, str):
        env = gym.make_vec(env, num_envs=num_envs)
    elif owned:
        env = env(num_envs)
    try:
        if env.num_envs != num_envs:
            raise ValueError(
                f"the vector env has {env.num_envs} envs; a population of {len(controllers_params)} x {episodes} "
                f"episodes needs {num_envs}"
            )
        features_fn = features_fn or flat_features
        obs, _ = env.reset(seed=seed)
        is_first = np.ones(num_envs, dtype=bool)
        features = features_fn(obs, None, is_first)
        controller = controller or LinearController(features.shape[-1], env.single_action_space)
        if seed is not None and hasattr(controller, "reseed"):
            controller.reseed(seed)
        population = _as_population(controllers_params, controller.num_params)
        returns = np.zeros(num_envs, dtype=np.float64)
        alive = np.ones(num_envs, dtype=bool)
        step = 0
        while alive.any() and (max_steps is None or step < max_steps):
            action = controller.act_population(population, features)
            if torch.is_tensor(action):
                action = action.detach().cpu().numpy()
            obs, reward, terminated, truncated, _ = env.step(action)
            returns += np.where(alive, np.asarray(reward, dtype=np.float64), 0.0)
            alive &= ~(np.asarray(terminated) | np.asarray(truncated))
            step += 1
            features = features_fn(obs, action, np.zeros(num_envs, dtype=bool))
        return returns.reshape(-1, episodes).mean(axis=1)
    finally:
        if owned:
            env.close()


def flat_features(obs: Any, action: Any, is_first: np.ndarray) -> np.ndarray:
    """The default ``FeaturesFn``: each array observation flattened to float32 (N, F); Dict ones need a model."""
    if isinstance(obs, dict):
        raise TypeError("Dict observations need a features_fn (e.g. model_features(model))")
    obs = np.asarray(obs, dtype=np.float32)
    return obs.reshape(obs.shape[0], -1)


def model_features(model: Any, device: torch.device | str | None = None) -> FeaturesFn:
    """A ``features_fn`` that filters real observations through ``model.observe`` and returns ``model.features``.

    It keeps the model's state between calls and starts afresh whenever it is
    called with ``action=None`` (after a reset).
    """
    device = device or model.device
    state = None

    @torch.no_grad()
    def features_fn(obs: Any, action: Any, is_first: np.ndarray) -> torch.Tensor:
        nonlocal state
        n = len(is_first)
        if action is None or state is None:
            state = model.initial_state(n)
            space = model.action_space
            action = np.zeros((n,) + tuple(space.shape), dtype=np.int64 if space.shape == () else np.float32)
        obs_t = model.spec.to_torch(obs, device)
        state = model.observe(state, torch.as_tensor(action, device=device), obs_t, torch.as_tensor(is_first))
        return model.features(state)

    return features_fn


# --- CMA-ES ------------------------------------------------------------------------------


def train_cmaes(
    evaluate_population: Callable[[list[np.ndarray]], Sequence[float] | np.ndarray],
    num_params: int,
    *,
    generations: int,
    popsize: int | None = None,
    sigma0: float = 0.1,
    seed: int = 0,
    x0: np.ndarray | None = None,
    progress: bool = True,
    save_path: str | Path | None = None,
    recheck: bool = True,
    workers: int = 1,
    address: str | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Maximises ``evaluate_population`` (a list of P parameter vectors -> P returns) with CMA-ES.

    Returns a parameter vector (float32) and the history per generation:
    ``best``, ``mean`` and ``worst`` return, ``sigma`` and ``best_so_far``. Stops
    early when CMA-ES's own stopping criteria fire.

    Which vector: on a noisy objective the best single evaluation is mostly luck
    (the winner's curse), so with ``recheck`` one more population is spent on the
    two candidates, the best vector evaluated and CMA-ES's mean, half the
    population each, and the one whose copies score higher on average is returned
    (``history["recheck"]`` holds the two averages, best then mean). With
    ``recheck=False`` the best vector evaluated is returned.

    With ``save_path`` (``.npz`` or ``.safetensors``) the best parameters so far
    are written there, atomically, whenever they improve, and the returned vector
    at the end; ``load_params`` reads them. ``seed`` fixes the search without
    touching numpy's global generator. ``workers > 1`` scores chunks of each population on Ray tasks
    (``model_zoo.parallel.chunked``, ``address``: a cluster): ``evaluate_population`` must be picklable.
    """
    if save_path is not None:
        _check_suffix(save_path)
    evaluate_population = chunked(evaluate_population, workers=workers, address=address, name="evaluate_population")
    rng = np.random.default_rng(seed)
    options = {
        "seed": np.nan,  # cma would otherwise reseed numpy's global generator
        "randn": lambda lam, n: rng.standard_normal((lam, n)),
        "verbose": -9,
        "verb_disp": 0,
        "verb_log": 0,
    }
    if popsize is not None:
        options["popsize"] = popsize
    start = np.zeros(num_params) if x0 is None else np.asarray(x0, dtype=np.float64).ravel()
    es = cma.CMAEvolutionStrategy(start, sigma0, options)
    history: dict[str, list[float]] = {k: [] for k in ("best", "mean", "worst", "sigma", "best_so_far")}
    best_params, best_return = start.astype(np.float32), -np.inf
    bar = tqdm(range(generations), desc="CMA-ES", disable=not progress)
    for generation in bar:
        solutions = es.ask()
        returns = _scores(evaluate_population, [np.asarray(s, dtype=np.float32) for s in solutions])
        es.tell(solutions, (-returns).tolist())  # cma minimises
        top = int(np.argmax(returns))
        if returns[top] > best_return:
            best_params, best_return = np.asarray(solutions[top], dtype=np.float32), float(returns[top])
            if save_path is not None:
                save_params(save_path, best_params, best_return=best_return, generation=generation)
        for key, value in zip(
            history, (returns.max(), returns.mean(), returns.min(), es.sigma, best_return), strict=True
        ):
            history[key].append(float(value))
        bar.set_postfix(best=f"{best_return:.3g}", mean=f"{returns.mean():.3g}")
        if es.stop():
            break
    bar.close()
    out = {k: np.asarray(v) for k, v in history.items()}
    if recheck and len(solutions) >= 2 and np.isfinite(best_return):
        mean_params = np.asarray(es.result.xfavorite, dtype=np.float32)
        scores = _scores(evaluate_population, [(best_params, mean_params)[i % 2] for i in range(len(solutions))])
        best_score, mean_score = float(scores[0::2].mean()), float(scores[1::2].mean())
        out["recheck"] = np.array([best_score, mean_score])
        if mean_score > best_score:
            best_params = mean_params
        if save_path is not None:
            save_params(save_path, best_params, recheck_return=max(best_score, mean_score))
    return best_params, out


def _scores(evaluate_population: Callable[[list[np.ndarray]], Sequence[float] | np.ndarray],
            population: list[np.ndarray]) -> np.ndarray:
    """``evaluate_population(population)`` as a checked float64 array, one finite return per member."""
    returns = np.asarray(evaluate_population(population), np.float64)
    if returns.shape != (len(population),) or not np.all(np.isfinite(returns)):
        raise ValueError(
            f"evaluate_population must return {len(population)} finite returns, got {returns.reshape(-1)[:8]} "
            f"(shape {returns.shape})"
        )
    return returns


def save_params(path: str | Path, params: np.ndarray, **info: float) -> Path:
    """Writes ``params`` (and scalar ``info``) to ``.npz`` or ``.safetensors``, atomically. No pickle."""
    path = Path(path)
    _check_suffix(path)
    arrays = {"params": np.asarray(params, dtype=np.float32)}
    arrays.update({k: np.asarray([v], dtype=np.float64) for k, v in info.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".npz":
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    else:
        from safetensors.numpy import save_file

        save_file(arrays, str(tmp))
    os.replace(tmp, path)
    return path


def load_params(path: str | Path) -> np.ndarray:
    """The parameter vector written by ``save_params`` / ``train_cmaes(save_path=...)``."""
    path = Path(path)
    _check_suffix(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return data["params"].copy()
    from safetensors.numpy import load_file

    return load_file(str(path))["params"]


def _check_suffix(path: str | Path) -> None:
    if Path(path).suffix not in (".npz", ".safetensors"):
        raise ValueError(f"controller parameters are saved as .npz or .safetensors, got {str(path)!r}")
