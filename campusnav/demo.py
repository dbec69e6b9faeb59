"""``campusnav demo``: the whole pipeline on CampusNav-v0, written up as a report folder.

The World Models experiment (Ha & Schmidhuber 2018, arXiv:1803.10122) on a campus:

1. collect episodes with the native vector env (a Minari dataset), by a random walk
   that takes a walkable step towards the goal with probability ``--collect-bias``
   (0: the paper's uniform random policy, which rarely reaches a goal);
2. train a world model of the zoo on them (``mlp`` on flat state vectors by default;
   ``--model vae_mdnrnn`` runs the paper's V + M);
3. train a controller with CMA-ES in the dream and, with the same budget, in reality,
   and score both in reality beside a random policy
   (``model_zoo.agents.transfer.dream_to_reality``). ``--controller action`` scores
   each action with one shared linear map of its features (``campus_env.features``)
   and samples from the scores' softmax; ``--controller latent`` is the paper's
   linear map of the model's features;
4. add the shortest-path oracle as a reference row;
5. write ``report.md``, ``metrics.json``, plots, the side-by-side dream-vs-reality
   video (both worlds drawn as the whole campus for state observations) and a video
   of the dream-trained controller walking the real campus: MP4 with imageio's
   video backend (``imageio-ffmpeg``), GIF without it.

The defaults run in a few minutes on a laptop CPU; ``--tiny`` in seconds.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from campusnav.device import resolve_device

__all__ = ["DemoConfig", "run_demo"]

TINY = {"episodes": 8, "max_episode_steps": 30, "train_steps": 6, "generations": 2, "popsize": 4,
        "episodes_per_member": 2, "eval_episodes": 8, "video_steps": 8}


# the model options the demo uses with model_config="auto": for mlp, dreams that stay on what the env can show
# (whole outcomes drawn, values snapped, trained on its own 16-step rollouts; see model_zoo.models.mlp)
DEMO_MODEL_CONFIG = {"mlp": "outcomes=4,snap_levels=64,rollout_steps=16"}


def model_overrides(config: DemoConfig) -> dict[str, Any]:
    """The config overrides the demo builds its model with."""
    from campusnav.overrides import parse_overrides

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
    pretrained: str = _opt("", "a pretrained model (model_zoo.list_pretrained(), e.g. mlp/campusnav-state-v0) "
                               "instead of training one; its id and observations replace --model and --obs-mode, "
                               "and an eighth of --episodes is collected to score it")
    device: str = _opt("cpu", "where the model trains and dreams: cpu, cuda, cuda:N or auto (cuda when available)")


def run_demo(config: DemoConfig = DemoConfig()) -> Path:
    """Runs the pipeline; returns the report folder."""
    import campus_env  # noqa: F401  (registers CampusNav-v0)
    import model_zoo

    check_config(config)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    timings: dict[str, float] = {}

    if config.pretrained:
        config = pretrained_config(config)
        model = model_zoo.load_pretrained(config.pretrained).to(resolve_device(config.device))
    _section("1/5 collect" + (" (to score the pretrained model)" if config.pretrained else ""))
    started = time.perf_counter()
    dataset, train, test = _collect(config, out)
    timings["collect"] = time.perf_counter() - started

    _section(f"2/5 {'load' if config.pretrained else 'train'} {config.pretrained or config.model}")
    started = time.perf_counter()
    if not config.pretrained:
        model = _train_model(config, dataset, train, out)
    evaluation = model_zoo.evaluate(model, train + test if config.pretrained else test, horizons=(1, 16),
                                    num_windows=128)
    timings["train"] = time.perf_counter() - started

    _section("3/5 controllers trained with CMA-ES: in the dream, then in reality (same budget)")
    controller = _controller(config, model, dataset.action_space)
    result = _transfer(config, model, controller, out)
    timings["cmaes_dream"], timings["cmaes_reality"] = result.dream.seconds, result.reality.seconds

    _section("4/5 evaluation in reality")
    oracle = _evaluate_oracle(config)
    rows = {"controller trained in the dream": result.dream_trained.summary(),
            "controller trained in reality": result.reality_trained.summary(),
            "random policy": result.random.summary(), "shortest-path oracle": oracle.summary()}
    timings["evaluate"] = sum(o.seconds for o in (result.dream_trained, result.reality_trained, result.random,
                                                   oracle))
    ratio = result.ratio

    _section("5/5 the report")
    dream_params = result.dream.params
    side = _side_by_side(config, model, controller, dream_params, out)
    walk = _walk_video(config, model, controller, dream_params, out / f"dream_controller_in_reality{_suffix()}")
    _plots(out, result.dream.history, result.reality.history, side["errors"])
    metrics = {
        "config": asdict(config),
        "model_overrides": model_overrides(config),
        "evaluation": evaluation.as_dict(),
        "policies": rows,
        "dream_to_reality_ratio": ratio,
        "cmaes": {"dream": {k: v.tolist() for k, v in result.dream.history.items()},
                  "reality": {k: v.tolist() for k, v in result.reality.history.items()}},
        "side_by_side_errors": [float(e) for e in side["errors"]],
        "seconds": timings,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    (out / "report.md").write_text(_report(config, evaluation, rows, ratio, timings, side, walk))
    print(_policy_table(rows))
    print(f"\ndream-trained / reality-trained real return: {_fmt_ratio(ratio)}")
    print(f"report: {out / 'report.md'}")
    return out


def _collect(config: DemoConfig, out: Path):
    """The demo's dataset (reused by a run with the same collection settings) and its train / test episodes."""
    from model_zoo.data import collect, load_dataset, load_episodes, split_episodes

    bias = f"-b{round(100 * config.collect_bias)}" if config.collect_bias else ""  # a "." is not allowed in ids
    dataset_id = (f"campusnav/demo-{config.obs_mode}-e{config.episodes}-t{config.max_episode_steps}{bias}"
                  f"-s{config.seed}-v0")
    data_path = out / "data"
    try:
        dataset = load_dataset(dataset_id, data_path=data_path)
    except FileNotFoundError:
        from campus_env.features import goal_biased_policy

        policy = goal_biased_policy(config.collect_bias, seed=config.seed) if config.collect_bias else None
        dataset = collect("CampusNav-v0", num_episodes=config.episodes, num_envs=8,
                          env_kwargs={"obs_mode": config.obs_mode}, policy=policy,
                          max_episode_steps=config.max_episode_steps, seed=config.seed, dataset_id=dataset_id,
                          data_path=data_path)
    train, test = split_episodes(load_episodes(dataset), 0.1, seed=config.seed)
    return dataset, train, test


def _train_model(config: DemoConfig, dataset, train, out: Path):
    """The world model, fitted on the training episodes (checkpoints under ``out/model``), in eval mode."""
    import model_zoo
    from model_zoo.data import SequenceSampler

    model = model_zoo.make(config.model, dataset.observation_space, dataset.action_space, **model_overrides(config))
    sampler = SequenceSampler(train, config.seq_len, config.batch_size, seed=config.seed)
    model_zoo.fit(model, sampler, steps=config.train_steps, lr=1e-3, seed=config.seed, run_dir=out / "model",
                  checkpoint_every=max(config.train_steps // 4, 1), device=resolve_device(config.device))
    model.eval()
    return model


def _real_envs(config: DemoConfig):
    """The real world as a factory ``num_envs -> VectorEnv``."""
    return lambda n: gym.make_vec("CampusNav-v0", num_envs=n, max_episode_steps=config.max_episode_steps,
                                  obs_mode=config.obs_mode)


def _transfer(config: DemoConfig, model, controller, out: Path):
    """The dream-to-reality protocol: CMA-ES in the dream and in reality, both scored on the same real episodes."""
    from model_zoo.agents.transfer import CMAES, Evaluation, dream_to_reality
    from wrappers import DreamVectorEnv

    dream_obs = "decoded" if config.controller == "action" else "features"
    return dream_to_reality(
        lambda n: DreamVectorEnv(model, n, "CampusNav-v0", obs=dream_obs, env_kwargs={"obs_mode": config.obs_mode},
                                 max_episode_steps=config.max_episode_steps),
        _real_envs(config), controller,
        dream_features=_action_features if config.controller == "action" else None,  # else the dream's obs
        real_features=_features_fn(config, model),
        cmaes=CMAES(config.generations, config.popsize, config.episodes_per_member, seed=config.seed, progress=True),
        evaluation=Evaluation(config.eval_episodes, reset_seed=10_000 + config.seed, seed=config.seed),
        rollout_seeds=itertools.count(config.seed, 1000),  # one schedule: the dream's generations, then reality's
        save_dir=out)


CONTROLLERS = ("action", "latent")


def pretrained_config(config: DemoConfig) -> DemoConfig:
    """The config with the pretrained model's id and observations (the controller follows the observations),
    collecting an eighth of the episodes: they only score the model."""
    from model_zoo import pretrained_card

    card = pretrained_card(config.pretrained)
    if card["env_id"] != "CampusNav-v0":
        raise ValueError(f"argument --pretrained: {config.pretrained} dreams {card['env_id']}, not CampusNav-v0")
    obs_mode = card["env_kwargs"].get("obs_mode", "dict")
    return replace(config, model=card["model_id"], obs_mode=obs_mode, model_config="",
                   episodes=max(8, config.episodes // 8),
                   controller="action" if obs_mode == "state" else "latent",
                   collect_bias=config.collect_bias if obs_mode == "state" else 0.0)


def check_config(config: DemoConfig) -> None:
    """Raises ValueError, naming the option, for settings that cannot run together."""
    resolve_device(config.device)
    if config.pretrained:
        from model_zoo import list_pretrained

        if config.pretrained not in list_pretrained():
            raise ValueError(f"argument --pretrained: unknown {config.pretrained!r}; choose from "
                             f"{', '.join(list_pretrained())}")
        config = pretrained_config(config)
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


def _evaluate_oracle(config: DemoConfig):
    """The shortest-path oracle on the protocol's evaluation episodes."""
    from campus_env.oracle import ShortestPathPolicy
    from model_zoo.agents.transfer import Evaluation, evaluate_policy

    oracle = ShortestPathPolicy()
    return evaluate_policy(_real_envs(config), lambda obs, action, envs: oracle(envs),
                           Evaluation(config.eval_episodes, reset_seed=10_000 + config.seed, seed=config.seed))


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


def _suffix() -> str:
    """The videos' file type: MP4 where imageio can write it, else GIF."""
    from wrappers.recorder import video_backend

    return ".mp4" if video_backend() else ".gif"


def _side_by_side(config: DemoConfig, model, controller, params, out: Path) -> dict[str, Any]:
    """The dream-trained controller's actions in reality and in the dream; state observations drawn as the campus."""
    from wrappers import record_side_by_side

    env = gym.make("CampusNav-v0", obs_mode=config.obs_mode)
    try:
        return record_side_by_side(env, model, _linear_policy(config, model, controller, params),
                                   out / f"dream_vs_reality{_suffix()}", seed=config.seed, steps=config.video_steps)
    finally:
        env.close()


def _walk_video(config: DemoConfig, model, controller, params, path: Path) -> dict[str, Any]:
    """The dream-trained controller walking the real campus: whole-campus frames, each action and reward below."""
    from campus_env.schema import Action
    from wrappers.recorder import add_caption, write_video

    env = gym.make("CampusNav-v0", obs_mode=config.obs_mode, render_mode="rgb_array",
                   max_episode_steps=config.max_episode_steps)
    policy = _linear_policy(config, model, controller, params)
    obs, _ = env.reset(seed=config.seed)
    frames = [add_caption(env.render(), ["step 0 (reset)"])]
    done, steps, reward_sum, info = False, 0, 0.0, {}
    while not done and steps < config.video_steps:
        action = policy(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        reward_sum += reward
        steps += 1
        done = terminated or truncated
        frames.append(add_caption(env.render(), [f"step {steps}   action {action} {Action(action).name.lower()}   "
                                                 f"reward {reward:+.3f}   return {reward_sum:+.3f}"]))
    env.close()
    written = write_video(frames, path, fps=10)
    return {"path": written, "steps": steps, "return": reward_sum, "success": bool(info.get("is_success"))}


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
    world_model = (f"load the pretrained world model `{config.pretrained}` (its card: "
                   f"`model_zoo.pretrained_card({config.pretrained!r})`)" if config.pretrained else
                   f"collect, train a world model (`{config.model}`{_config_note(config)}, observations "
                   f"`{config.obs_mode}`)")
    where = f"the pretrained model is `{config.pretrained}`" if config.pretrained else \
        "the model checkpoint is in `model/checkpoint/`"
    return f"""# campusnav demo

The Ha & Schmidhuber pipeline on CampusNav-v0: {world_model}, train a controller
(`{config.controller}`) with CMA-ES inside the dream, and evaluate it in reality against the same
controller trained in reality with the same budget ({config.generations} generations x
{config.popsize} members x {config.episodes_per_member} episodes).

## The world model on held-out episodes

{model_zoo.format_table({config.model: evaluation}, keys=[k for k in evaluation.as_dict() if "@" in k][:8])}

## Policies in reality ({config.eval_episodes} seeded episodes, the same for every row)

{_policy_table(rows)}

Dream-trained over reality-trained return (each above the random policy): **{_fmt_ratio(ratio)}**.

## Pictures

- `{Path(side['path']).name}`: the same actions in reality (left) and in the dream (right),
  with each step's action and rewards below; per-step error in `error_vs_horizon.png`.
- `{Path(walk['path']).name}`: the dream-trained controller on the real campus
  ({walk['steps']} steps, return {walk['return']:.2f}, goal reached: {walk['success']}).
- `cmaes.png`: CMA-ES returns per generation, in the dream and in reality.

![error against horizon](error_vs_horizon.png)
![CMA-ES](cmaes.png)

## Run

Config: `{json.dumps(asdict(config))}`

Seconds: {", ".join(f"{k} {v:.0f}" for k, v in timings.items())} (total {total:.0f}).
Everything is in `metrics.json`; {where}.
"""


@dataclass(frozen=True)
class DemoArgs(DemoConfig):
    """The options of ``campusnav demo``: every field of ``DemoConfig``, and ``--tiny``."""

    tiny: bool = field(default=False, metadata={"help": "a smoke run of seconds (tests use it)"})
    threads: int | None = field(default=None, metadata={
        "help": "torch threads per process (default: one, the fastest for the zoo's small networks)"})


def config_from_args(args: DemoArgs) -> DemoConfig:
    """The ``DemoConfig`` the options name, with the ``TINY`` budget under ``--tiny``."""
    config = DemoConfig(**{f.name: getattr(args, f.name) for f in fields(DemoConfig)})
    return replace(config, **TINY) if args.tiny else config
