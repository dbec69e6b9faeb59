"""``campusnav demo``: the whole pipeline on CampusNav-v0, written up as a report folder.

1. collect episodes with the native vector env (a Minari dataset), by a random walk
   that takes a walkable step towards the goal half the time (``--collect-bias``;
   0 is the uniform random policy of Ha & Schmidhuber, which reaches the goal in
   about 1% of episodes, too rarely for a model to learn the goal reward);
2. train a world model of the zoo on them (``mlp`` on flat state vectors by default:
   it predicts blocked moves from the walkability around the agent, so a controller
   trained in its dream transfers; ``--model vae_mdnrnn`` runs the World Models V + M);
3. train a controller with CMA-ES *inside the dream* (``wrappers.DreamVectorEnv``,
   the whole population batched). By default (``--controller action``) it scores
   each action with one shared linear map of that action's features
   (``campus_env.features``: progress towards the goal, walkability, crowd) read
   from the dream's decoded observations, and samples from the scores' softmax;
   ``--controller latent`` is Ha & Schmidhuber's linear map of the model's
   features, which CMA-ES on this task mostly turns into standing still;
4. train the same controller with the same budget in reality (real observations,
   seen through the same model's filter for ``latent``);
5. evaluate both in reality over the same seeded episodes, beside a random and a
   shortest-path policy;
6. write ``report.md``, ``metrics.json``, plots, the side-by-side dream-vs-reality
   GIF and a GIF of the dream-trained controller walking the real campus.

The defaults run in a few minutes on a laptop CPU; ``--tiny`` in seconds.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

__all__ = ["DemoConfig", "run_demo"]

TINY = {"episodes": 8, "max_episode_steps": 30, "train_steps": 6, "generations": 2, "popsize": 4,
        "episodes_per_member": 2, "eval_episodes": 8, "video_steps": 8}


# the model options the demo uses with model_config="auto": for mlp, dreams that stay on what the env can show
# (whole outcomes drawn, values snapped, trained on its own 16-step rollouts; see model_zoo.models.mlp)
DEMO_MODEL_CONFIG = {"mlp": "outcomes=4,snap_levels=64,rollout_steps=16"}


def model_overrides(config: DemoConfig) -> dict[str, Any]:
    """The config overrides the demo builds its model with."""
    from campusnav.arguments import parse_overrides

    text = DEMO_MODEL_CONFIG.get(config.model, "") if config.model_config == "auto" else config.model_config
    return parse_overrides(text)


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs; every field is a ``campusnav demo --field-name`` option."""

    out: str = _opt("runs/demo", "the report folder")
    model: str = _opt("mlp", "the world model (a model_zoo id)")
    model_config: str = _opt("auto", "overrides of the model's config: NAME=VALUE pairs separated by commas; "
                                     "auto: the demo's own for the model (see DEMO_MODEL_CONFIG), '' none")
    controller: str = _opt("action", "action (shared linear scores of per-action features; state obs) "
                                     "or latent (linear on the model's features)")
    obs_mode: str = _opt("state", "the observations the model learns: state (fast), dict or pixels")
    episodes: int = _opt(512, "episodes collected")
    collect_bias: float = _opt(0.5, "probability of a walkable step towards the goal in collection, else a random "
                                    "action (state obs only; 0: uniform random)")
    max_episode_steps: int = _opt(100, "episode length in collection, the dream and evaluation")
    train_steps: int = _opt(2000, "gradient steps of the world model")
    batch_size: int = _opt(16, "sequences per batch")
    seq_len: int = _opt(32, "steps per sequence")
    generations: int = _opt(60, "CMA-ES generations, in the dream and in reality alike")
    popsize: int = _opt(16, "CMA-ES population")
    episodes_per_member: int = _opt(64, "episodes that score one member")
    eval_episodes: int = _opt(200, "real episodes that score each final policy")
    video_steps: int = _opt(60, "steps in the side-by-side video")
    seed: int = _opt(0, "seeds data, weights, CMA-ES and evaluation")


def run_demo(config: DemoConfig = DemoConfig()) -> Path:
    """Runs the pipeline; returns the report folder."""
    import campus_env  # noqa: F401  (registers CampusNav-v0)
    import model_zoo
    from model_zoo.agents.controllers import rollout_returns, save_params, train_cmaes
    from model_zoo.data import SequenceSampler, collect, load_dataset, load_episodes, split_episodes
    from wrappers import DreamVectorEnv

    check_config(config)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    timings: dict[str, float] = {}
    env_kwargs = {"obs_mode": config.obs_mode}

    _section("1/5 collect")
    started = time.perf_counter()
    # the data of a run with the same collection settings is reused
    bias = f"-b{round(100 * config.collect_bias)}" if config.collect_bias else ""  # a "." is not allowed in ids
    dataset_id = (f"campusnav/demo-{config.obs_mode}-e{config.episodes}-t{config.max_episode_steps}{bias}"
                  f"-s{config.seed}-v0")
    data_path = out / "data"
    try:
        dataset = load_dataset(dataset_id, data_path=data_path)
    except FileNotFoundError:
        from campus_env.features import goal_biased_policy

        policy = goal_biased_policy(config.collect_bias, seed=config.seed) if config.collect_bias else None
        dataset = collect("CampusNav-v0", num_episodes=config.episodes, num_envs=8, env_kwargs=env_kwargs,
                          policy=policy, max_episode_steps=config.max_episode_steps, seed=config.seed,
                          dataset_id=dataset_id, data_path=data_path)
    train, test = split_episodes(load_episodes(dataset), 0.1, seed=config.seed)
    timings["collect"] = time.perf_counter() - started

    _section(f"2/5 train {config.model}")
    started = time.perf_counter()
    model = model_zoo.make(config.model, dataset.observation_space, dataset.action_space, **model_overrides(config))
    sampler = SequenceSampler(train, config.seq_len, config.batch_size, seed=config.seed)
    model_zoo.fit(model, sampler, steps=config.train_steps, lr=1e-3, seed=config.seed, run_dir=out / "model",
                  checkpoint_every=max(config.train_steps // 4, 1))
    model.eval()
    evaluation = model_zoo.evaluate(model, test, horizons=(1, 16), num_windows=128)
    timings["train"] = time.perf_counter() - started

    _section("3/5 controller trained in the dream (CMA-ES)")
    n = config.popsize * config.episodes_per_member
    controller = _controller(config, model, dataset.action_space)
    dream_obs = "decoded" if config.controller == "action" else "features"
    dream = DreamVectorEnv(model, n, "CampusNav-v0", obs=dream_obs, env_kwargs=env_kwargs,
                           max_episode_steps=config.max_episode_steps)
    real = gym.make_vec("CampusNav-v0", num_envs=n, max_episode_steps=config.max_episode_steps, **env_kwargs)
    dream_features = _action_features if config.controller == "action" else None  # dream features are the obs
    real_features = _features_fn(config, model)
    generation = iter(range(10**9))

    def in_dream(population):
        return rollout_returns(population, dream, dream_features, config.episodes_per_member,
                               controller=controller, seed=config.seed + 1000 * next(generation))

    def in_reality(population):
        return rollout_returns(population, real, real_features, config.episodes_per_member,
                               controller=controller, seed=config.seed + 1000 * next(generation))

    started = time.perf_counter()
    dream_params, dream_history = train_cmaes(in_dream, controller.num_params, generations=config.generations,
                                              popsize=config.popsize, seed=config.seed,
                                              save_path=out / "controller_dream.npz")
    timings["cmaes_dream"] = time.perf_counter() - started
    _section("4/5 controller trained in reality (CMA-ES, same budget)")
    started = time.perf_counter()
    real_params, real_history = train_cmaes(in_reality, controller.num_params, generations=config.generations,
                                            popsize=config.popsize, seed=config.seed,
                                            save_path=out / "controller_reality.npz")
    timings["cmaes_reality"] = time.perf_counter() - started
    dream.close()
    real.close()
    save_params(out / "controller_dream.npz", dream_params)
    save_params(out / "controller_reality.npz", real_params)

    _section("5/5 evaluation in reality and the report")
    started = time.perf_counter()
    rows = {
        "controller trained in the dream": _evaluate_policy(config, "linear", model, controller, dream_params),
        "controller trained in reality": _evaluate_policy(config, "linear", model, controller, real_params),
        "random policy": _evaluate_policy(config, "random"),
        "shortest-path oracle": _evaluate_policy(config, "oracle"),
    }
    timings["evaluate"] = time.perf_counter() - started
    ratio = _ratio(rows)
    side = _side_by_side(config, model, controller, dream_params, out)
    walk = _walk_gif(config, model, controller, dream_params, out / "dream_controller_in_reality.gif")
    _plots(out, dream_history, real_history, side["errors"])
    metrics = {
        "config": asdict(config),
        "model_overrides": model_overrides(config),
        "evaluation": evaluation.as_dict(),
        "policies": rows,
        "dream_to_reality_ratio": ratio,
        "cmaes": {"dream": {k: v.tolist() for k, v in dream_history.items()},
                  "reality": {k: v.tolist() for k, v in real_history.items()}},
        "side_by_side_errors": [float(e) for e in side["errors"]],
        "seconds": timings,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    (out / "report.md").write_text(_report(config, evaluation, rows, ratio, timings, side, walk))
    print(_policy_table(rows))
    print(f"\ndream-trained / reality-trained real return: {_fmt_ratio(ratio)}")
    print(f"report: {out / 'report.md'}")
    return out


CONTROLLERS = ("action", "latent")


def check_config(config: DemoConfig) -> None:
    """Raises ValueError, naming the option, for settings that cannot run together."""
    if config.controller not in CONTROLLERS:
        raise ValueError(f"argument --controller: choose from {', '.join(CONTROLLERS)}; got {config.controller!r}")
    if config.controller == "action" and config.obs_mode != "state":
        raise ValueError("argument --controller: 'action' reads the walkability patch of --obs-mode state; "
                         "use --controller latent with dict or pixels")
    if not 0.0 <= config.collect_bias <= 1.0:
        raise ValueError(f"argument --collect-bias: a probability in [0, 1], got {config.collect_bias}")
    if config.collect_bias and config.obs_mode != "state":
        raise ValueError("argument --collect-bias: the goal-biased walk reads --obs-mode state; "
                         "pass --collect-bias 0")


def _controller(config: DemoConfig, model, action_space):
    from campus_env.features import ACTION_FEATURES
    from model_zoo.agents.controllers import ActionScoreController, LinearController

    if config.controller == "action":
        return ActionScoreController(len(ACTION_FEATURES), action_space, sampled=True, seed=config.seed)
    return LinearController(model.feature_dim, action_space)


def _action_features(obs, action, is_first) -> np.ndarray:
    from campus_env.features import action_features

    return action_features(obs)


def _features_fn(config: DemoConfig, model):
    """What the controller reads of real observations: per-action features, or the model's filtered features."""
    from model_zoo.agents.controllers import model_features

    return _action_features if config.controller == "action" else model_features(model)


def _section(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def _evaluate_policy(config: DemoConfig, kind: str, model=None, controller=None, params=None) -> dict[str, float]:
    """Real return, success and steps over ``eval_episodes`` seeded episodes, one per env, all at once."""
    from campus_env.oracle import ShortestPathPolicy

    n = config.eval_episodes
    envs = gym.make_vec("CampusNav-v0", num_envs=n, obs_mode=config.obs_mode,
                        max_episode_steps=config.max_episode_steps)
    obs, _ = envs.reset(seed=10_000 + config.seed)  # the same episodes for every row
    rng = np.random.default_rng(config.seed)
    features = _features_fn(config, model) if kind == "linear" else None
    oracle = ShortestPathPolicy() if kind == "oracle" else None
    if kind == "linear":
        controller.set_params(params)
        if hasattr(controller, "reseed"):
            controller.reseed(config.seed)
        feats = features(obs, None, np.ones(n, dtype=bool))
    returns, steps = np.zeros(n), np.zeros(n, dtype=np.int64)
    success, alive = np.zeros(n, dtype=bool), np.ones(n, dtype=bool)
    while alive.any():
        if kind == "linear":
            action = np.asarray(controller(_numpy(feats)))
        elif kind == "oracle":
            action = oracle(envs)
        else:
            action = rng.integers(0, 5, n)
        obs, reward, terminated, truncated, _ = envs.step(action)
        returns += np.where(alive, reward, 0.0)
        steps += alive
        success |= alive & terminated
        alive &= ~(terminated | truncated)
        if kind == "linear":
            feats = features(obs, action, np.zeros(n, dtype=bool))
    envs.close()
    return {"return_mean": float(returns.mean()), "return_std": float(returns.std()),
            "success_rate": float(success.mean()), "steps_mean": float(steps.mean())}


def _ratio(rows: dict[str, dict[str, float]]) -> float:
    """Dream-trained over reality-trained real return, both measured above the random policy."""
    floor = rows["random policy"]["return_mean"]
    dream = rows["controller trained in the dream"]["return_mean"] - floor
    real = rows["controller trained in reality"]["return_mean"] - floor
    return dream / real if real > 0 else float("nan")


def _fmt_ratio(ratio: float) -> str:
    return "n/a (the reality-trained controller is no better than random)" if ratio != ratio else f"{ratio:.2f}"


def _policy_table(rows: dict[str, dict[str, float]]) -> str:
    lines = ["| policy (evaluated in reality) | return | success | steps |", "|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['return_mean']:.3f} ± {r['return_std']:.3f} | "
                     f"{r['success_rate']:.2f} | {r['steps_mean']:.1f} |")
    return "\n".join(lines)


def _numpy(features) -> np.ndarray:
    return features.cpu().numpy() if torch.is_tensor(features) else np.asarray(features)


def _linear_policy(config: DemoConfig, model, controller, params):
    """A single-env policy: real observation -> action, through the controller's features and the controller."""
    features = _features_fn(config, model)
    controller.set_params(params)
    last = {"action": None}

    def policy(obs):
        if isinstance(obs, dict):
            batched = {k: np.asarray(v)[None] for k, v in obs.items()}
        else:
            batched = np.asarray(obs)[None]
        prev = None if last["action"] is None else np.array([last["action"]])
        feats = features(batched, prev, np.array([prev is None]))
        last["action"] = int(np.asarray(controller(_numpy(feats)))[0])
        return last["action"]

    return policy


def _side_by_side(config: DemoConfig, model, controller, params, out: Path) -> dict[str, Any]:
    from wrappers import record_side_by_side

    env = gym.make("CampusNav-v0", obs_mode=config.obs_mode)
    try:
        return record_side_by_side(env, model, _linear_policy(config, model, controller, params),
                                   out / "dream_vs_reality.gif", seed=config.seed, steps=config.video_steps)
    finally:
        env.close()


def _walk_gif(config: DemoConfig, model, controller, params, path: Path) -> dict[str, Any]:
    """The dream-trained controller walking the real campus, whole-campus frames."""
    import imageio.v3 as iio

    env = gym.make("CampusNav-v0", obs_mode=config.obs_mode, render_mode="rgb_array",
                   max_episode_steps=config.max_episode_steps)
    policy = _linear_policy(config, model, controller, params)
    obs, _ = env.reset(seed=config.seed)
    frames = [env.render()[::2, ::2]]
    done, steps, reward_sum, info = False, 0, 0.0, {}
    while not done and steps < config.video_steps:
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        frames.append(env.render()[::2, ::2])
        reward_sum += reward
        steps += 1
        done = terminated or truncated
    env.close()
    iio.imwrite(path, np.stack(frames), duration=100, loop=0)
    return {"path": path, "steps": steps, "return": reward_sum, "success": bool(info.get("is_success"))}


def _plots(out: Path, dream_history, real_history, errors) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, history in (("in the dream (dream return)", dream_history), ("in reality", real_history)):
        ax.plot(history["best"], label=f"best, {name}")
        ax.plot(history["mean"], linestyle="--", label=f"mean, {name}")
    ax.set_xlabel("CMA-ES generation")
    ax.set_ylabel("return")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "cmaes.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(np.arange(1, len(errors) + 1), errors, marker="o", markersize=3)
    ax.set_xlabel("imagined steps (open loop)")
    ax.set_ylabel("observation MSE, dream vs reality")
    fig.tight_layout()
    fig.savefig(out / "error_vs_horizon.png", dpi=100)
    plt.close(fig)


def _config_note(config: DemoConfig) -> str:
    overrides = model_overrides(config)
    return " with " + ", ".join(f"`{k}={v}`" for k, v in overrides.items()) if overrides else ""


def _report(config, evaluation, rows, ratio, timings, side, walk) -> str:
    import model_zoo

    total = sum(timings.values())
    return f"""# campusnav demo

The Ha & Schmidhuber pipeline on CampusNav-v0: collect, train a world model
(`{config.model}`{_config_note(config)}, observations `{config.obs_mode}`), train a controller
(`{config.controller}`) with CMA-ES inside the dream, and evaluate it in reality against the same
controller trained in reality with the same budget ({config.generations} generations x
{config.popsize} members x {config.episodes_per_member} episodes).

## The world model on held-out episodes

{model_zoo.format_table({config.model: evaluation}, keys=[k for k in evaluation.as_dict() if "@" in k][:8])}

## Policies in reality ({config.eval_episodes} seeded episodes, the same for every row)

{_policy_table(rows)}

Dream-trained over reality-trained return (each above the random policy): **{_fmt_ratio(ratio)}**.

## Pictures

- `dream_vs_reality.gif`: the same actions in reality (left) and in the dream (right);
  per-step error in `error_vs_horizon.png`.
- `dream_controller_in_reality.gif`: the dream-trained controller on the real campus
  ({walk['steps']} steps, return {walk['return']:.2f}, goal reached: {walk['success']}).
- `cmaes.png`: CMA-ES returns per generation, in the dream and in reality.

![error against horizon](error_vs_horizon.png)
![CMA-ES](cmaes.png)

## Run

Config: `{json.dumps(asdict(config))}`

Seconds: {", ".join(f"{k} {v:.0f}" for k, v in timings.items())} (total {total:.0f}).
Everything is in `metrics.json`; the model checkpoint is in `model/checkpoint/`.
"""


def add_arguments(parser) -> None:
    for f in fields(DemoConfig):
        parser.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default,
                            help=f"{f.metadata['help']} (default: {f.default})")
    parser.add_argument("--tiny", action="store_true", help="a smoke run of seconds (tests use it)")


def config_from_args(args) -> DemoConfig:
    config = DemoConfig(**{f.name: getattr(args, f.name) for f in fields(DemoConfig)})
    return replace(config, **TINY) if args.tiny else config
