"""Interventions in reality and in imagination: a surprise gameday, the discovered graph, twins, generalization.

What a causal world model buys, on CampusNav-v0 (flat "state" observations), in five parts:

1. Structure discovery (`model_zoo.causal.discover_campus`): the causal graph recovered
   from hard interventions alone (independence tests, Holm's correction) and its
   structural Hamming distance to `env.unwrapped.causal_graph`; then the total effect of
   every variable on the oracle's travel time and blocked moves, on twins.
2. Generalization: `causal_vae_mdnrnn` and `vae_mdnrnn` on the same data and budget, in
   two settings (`split="train"` against `split="heldout"` contexts; fall against
   spring): prediction error (`model_zoo.evaluate`) on both distributions, and the real
   return of a CMA-ES controller trained in each dream (`model_zoo.agents.transfer`).
3. The surprise gameday: a controller trained in reality on normal days walks on a
   Saturday at noon; at `--surprise-step` a game is switched on (`wrappers.Intervene`),
   in reality and in the dream of `causal_vae_mdnrnn` (`wrappers.DreamEnv`, whose `do()`
   the schedule calls). `vae_mdnrnn` cannot be intervened on: its row is the normal day.
4. Counterfactual twins: the oracle's actions replayed under another do() on the same
   noise tape (`model_zoo.causal.env_twins`) against the twins the causal model imagines
   (`model_twins`).
5. Plots and a markdown summary in `--out`.

Structural causal models and interventions: Pearl, "Causality" (2009).

    python examples/causal_interventions.py                    # minutes on a laptop CPU
    python examples/causal_interventions.py --train-steps 1000 --episodes 256
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import tyro  # noqa: E402

import campus_env  # noqa: E402, F401  (registers CampusNav-v0)
import model_zoo  # noqa: E402
from campus_env.schema import MOVES, STATE_SLICES, Action  # noqa: E402
from campusnav.budgets import Collection, ControllerTraining, ExampleRun, SequenceBatches  # noqa: E402
from campusnav.results import plain  # noqa: E402
from campusnav.threads import use_threads
from model_zoo.agents.controllers import LinearController, model_features  # noqa: E402
from model_zoo.agents.transfer import Evaluation, controller_policy, evaluate_policy, train_controller  # noqa: E402
from model_zoo.causal import (  # noqa: E402
    compare_twins,
    discover_campus,
    env_twins,
    mean_ci,
    model_twins,
    outcome_effects,
    twin_outcomes,
)
from model_zoo.data import collect, load_episodes, split_episodes  # noqa: E402
from wrappers import DreamEnv, DreamVectorEnv, Intervene  # noqa: E402

ENV_ID = "CampusNav-v0"
MODELS = ("causal_vae_mdnrnn", "vae_mdnrnn")
# smaller than the library defaults, so that four trainings take minutes on a laptop CPU
LAPTOP_CONFIG: dict[str, dict[str, Any]] = {
    "causal_vae_mdnrnn": {"hidden": 64, "mech_hidden": 16},
    "vae_mdnrnn": {"z_dim": 16, "hidden": 64},
}
# generalization settings: (name, env kwargs of the training data, env kwargs of the other data)
SETTINGS = (
    ("train -> heldout contexts", {"split": "train"}, {"split": "heldout"}),
    ("fall -> spring", {"semester": "fall"}, {"semester": "spring"}),
)
NORMAL_SATURDAY = {"day": 5, "hour": 12.0, "gameday": False}  # the clock held at noon, inside the road closure
# twins: (name, factual do, counterfactual do)
TWIN_COMPARISONS = (
    ("gameday", {"day": 5, "hour": 14.0, "gameday": False}, {"day": 5, "hour": 14.0, "gameday": True}),
    ("crowd", {"crowd": 0.0}, {"crowd": 1.0}),
    ("snow", {"weather": "sunny"}, {"weather": "snowy"}),
    ("spring", {"semester": "fall"}, {"semester": "spring"}),
)


@dataclass(frozen=True)
class Args(ExampleRun, ControllerTraining, SequenceBatches, Collection):
    """Interventions in reality and in imagination on CampusNav-v0."""

    discovery_samples: int = 2000
    """samples per structure-discovery experiment (11 experiments on CampusNav-v0)"""
    effect_episodes: int = 32
    """oracle episodes per do() value for the effects on travel time and blocked moves"""
    episodes: int = 96
    """episodes collected per generalization setting for training (an eighth held out for evaluation)"""
    eval_episodes: int = 32
    """episodes of the other distribution (held-out contexts, spring) for evaluation"""
    train_steps: int = 200
    """gradient steps of each world model"""
    generations: int = 8
    popsize: int = 8
    surprise_step: int = 10
    """step at which the surprise gameday is switched on"""
    surprise_episodes: int = 16
    """seeded episodes per condition of the surprise gameday"""
    twin_episodes: int = 32
    """twin pairs per comparison"""
    twin_steps: int = 40
    """steps per twin"""
    out: str = "runs/causal_interventions"


def parse_args(argv: list[str] | None = None) -> Args:
    """One --flag per field of Args, its docstring as the help."""
    args = tyro.cli(Args, args=argv)
    if args.tiny:
        args = dataclasses.replace(
            args, discovery_samples=300, effect_episodes=3, episodes=8, eval_episodes=3, max_episode_steps=24,
            train_steps=2, batch_size=4, seq_len=8, generations=2, popsize=4, episodes_per_member=1,
            surprise_step=3, surprise_episodes=2, twin_episodes=3, twin_steps=6,
        )
    return args


def toward_goal(epsilon: float, seed: int):
    """Collection policy: a step along the larger goal offset, or a random one with probability epsilon."""
    rng = np.random.default_rng(seed)

    def policy(obs: np.ndarray) -> np.ndarray:
        d_row, d_col = obs[:, STATE_SLICES["goal_offset"]].T
        vertical = np.where(d_row < 0, Action.NORTH, Action.SOUTH)
        toward = np.where(np.abs(d_row) > np.abs(d_col), vertical, np.where(d_col > 0, Action.EAST, Action.WEST))
        return np.where(rng.random(len(obs)) < epsilon, rng.integers(0, len(Action), len(obs)), toward)

    return policy


def mean_ci_text(x: Any) -> str:
    mean, half = mean_ci(x)
    return f"{mean:+.3f} ± {half:.3f}"


def markdown(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(v) for v in row) + " |" for row in rows])


def real_envs(env_kwargs: dict[str, Any], max_steps: int):
    """CampusNav-v0 with ``env_kwargs`` as a factory ``num_envs -> VectorEnv``."""
    return lambda n: gym.make_vec(ENV_ID, num_envs=n, max_episode_steps=max_steps, **env_kwargs)


def run_episodes(env: gym.Env, act, seeds: range, options: dict[str, Any] | None, max_steps: int) -> dict[str, Any]:
    """Runs one episode per seed; returns per-step rewards (padded with 0) and the outcomes of each."""
    rewards = np.zeros((len(seeds), max_steps))
    terminated = np.zeros_like(rewards, dtype=bool)
    for i, seed in enumerate(seeds):
        obs, _ = env.reset(seed=seed, options=options)
        for t in range(max_steps):
            obs, reward, term, trunc, _ = env.step(act(obs))
            rewards[i, t], terminated[i, t] = reward, term
            if term or trunc:
                break
    return {"rewards": rewards, **twin_outcomes(rewards, terminated)}


if __name__ == "__main__":
    args = parse_args()
    use_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    state_kwargs = {"obs_mode": "state"}
    report: list[str] = ["# Causal interventions on CampusNav-v0", ""]
    metrics: dict[str, Any] = {"args": dataclasses.asdict(args)}

    # --- 1. structure discovery ----------------------------------------------------------------------------
    print(f"== 1. structure discovery: {args.discovery_samples} samples per experiment")
    truth = gym.make(ENV_ID, **state_kwargs).unwrapped.causal_graph
    found = discover_campus(args.discovery_samples, seed=args.seed)
    shd = found.shd(truth)
    graph_rows = [[v, ", ".join(found.graph[v]) or "-", ", ".join(truth[v]) or "-",
                   ", ".join(a for a in found.ancestors[v] if a not in found.graph[v]) or "-"] for v in truth]
    graph_table = markdown(["variable", "discovered parents", "declared parents", "indirect causes"], graph_rows)
    print(graph_table)
    print(f"SHD to env.unwrapped.causal_graph: {shd} ({found.experiments} experiments, {found.samples} samples, "
          f"{found.seconds:.1f} s)")
    effects = outcome_effects(episodes=args.effect_episodes, max_steps=args.max_episode_steps, seed=args.seed)
    effect_rows = [[e.variable, e.outcome, " / ".join(f"{v}: {m:.1f}" for v, m in zip(e.values, e.means, strict=True)),
                    f"{e.p_adjusted:.2g}", "yes" if e.significant else "no"] for e in effects]
    effect_table = markdown(["do(variable)", "outcome", "mean per value", "p (Friedman, Holm)", "effect"], effect_rows)
    print(effect_table)
    report += ["## 1. Structure discovery", "", graph_table, "",
               f"**SHD {shd}** to `env.unwrapped.causal_graph` ({found.experiments} experiments x "
               f"{args.discovery_samples} samples, {found.seconds:.1f} s).", "", found.table(), "",
               f"Total effects on the oracle's outcomes ({args.effect_episodes} twins per value, "
               f"do() at step 0 on each seed's own task):", "", effect_table, ""]
    metrics["discovery"] = {"graph": found.graph, "shd": shd, "samples": found.samples, "seconds": found.seconds}

    # --- 2. generalization: both models, same data and budget ---------------------------------------------
    print(f"\n== 2. generalization: {', '.join(MODELS)}, {args.train_steps} steps each")
    shutil.rmtree(out / "data", ignore_errors=True)  # the datasets of an earlier run
    real_env = gym.make(ENV_ID, **state_kwargs)
    gen_rows, gen_metrics, models = [], {}, {}
    cmaes = args.cmaes(args.seed)
    horizons = (1, min(8, args.seq_len // 2))
    context = min(8, args.seq_len // 2)
    for s, (setting, train_kwargs, other_kwargs) in enumerate(SETTINGS):
        data = {}
        for part, kwargs, count in (("train", train_kwargs, args.episodes), ("other", other_kwargs,
                                                                              args.eval_episodes)):
            split = kwargs.get("split", "all")
            env_kwargs = {**state_kwargs, **{k: v for k, v in kwargs.items() if k != "split"}}
            dataset = collect(ENV_ID, num_episodes=count, num_envs=8, policy=toward_goal(0.3, args.seed + s),
                              split=split, env_kwargs=env_kwargs, seed=args.seed + 1000 * s + (part == "other"),
                              max_episode_steps=args.max_episode_steps, progress=False, data_path=out / "data",
                              dataset_id=f"campusnav/causal-{s}-{part}-v0")
            data[part] = load_episodes(dataset)
        train, heldout = split_episodes(data["train"], 0.125, seed=args.seed)
        for model_id in MODELS:
            model = model_zoo.make(model_id, real_env.observation_space, real_env.action_space,
                                   **LAPTOP_CONFIG[model_id])
            t0 = time.perf_counter()
            model_zoo.fit(model, train, steps=args.train_steps, batch_size=args.batch_size, seq_len=args.seq_len,
                          seed=args.seed, progress=False)
            model.eval()
            seconds = time.perf_counter() - t0
            scores = {part: model_zoo.evaluate(model, episodes, horizons=horizons, context=context, speed_batch=0,
                                               seed=args.seed).as_dict()
                      for part, episodes in (("train", heldout), ("other", data["other"]))}
            # a controller trained by CMA-ES in the model's dream (training contexts), scored in reality
            controller = LinearController(model.feature_dim, real_env.action_space)
            dream_kwargs = {**state_kwargs, **train_kwargs}
            params = train_controller(
                lambda n, model=model, dream_kwargs=dream_kwargs: DreamVectorEnv(
                    model, n, ENV_ID, obs="features", env_kwargs=dream_kwargs,
                    max_episode_steps=args.max_episode_steps),
                controller, None, cmaes, itertools.count(args.seed + 10_000)).params
            evaluation = Evaluation(args.eval_episodes, reset_seed=args.seed + 1_000_000)
            returns = {part: float(evaluate_policy(
                real_envs({**state_kwargs, **kwargs}, args.max_episode_steps),
                controller_policy(controller, params, model_features(model)), evaluation).returns.mean())
                for part, kwargs in (("train", train_kwargs), ("other", other_kwargs))}
            k = horizons[-1]
            ratio = scores["other"][f"obs_mse@{k}"] / scores["train"][f"obs_mse@{k}"]
            gen_rows.append([setting, model_id, f"{scores['train']['obs_mse@1']:.4g}",
                             f"{scores['other']['obs_mse@1']:.4g}", f"{scores['train'][f'obs_mse@{k}']:.4g}",
                             f"{scores['other'][f'obs_mse@{k}']:.4g}", f"{ratio:.2f}",
                             f"{scores['train']['reward_mae']:.4f} / {scores['other']['reward_mae']:.4f}",
                             f"{returns['train']:+.3f}", f"{returns['other']:+.3f}"])
            gen_metrics[f"{setting} | {model_id}"] = {"scores": scores, "returns": returns, "ratio": ratio,
                                                      "train_seconds": seconds}
            print(f"{setting:28s} {model_id:18s} error ratio {ratio:.2f}, return {returns['train']:+.3f} -> "
                  f"{returns['other']:+.3f} ({seconds:.0f} s training)")
            if s == 0:
                models[model_id] = model  # trained on the training contexts: used below
    k = horizons[-1]
    gen_table = markdown(["setting", "model", "obs_mse@1 train", "obs_mse@1 other", f"obs_mse@{k} train",
                          f"obs_mse@{k} other", f"other / train @{k}", "reward MAE train / other",
                          "controller return train", "controller return other"], gen_rows)
    print(gen_table)
    report += ["## 2. Generalization", "",
               f"Both models on the same {args.episodes} episodes per setting, {args.train_steps} gradient steps; "
               f"errors on held-out episodes of the training distribution (train) and on {args.eval_episodes} "
               "episodes of the other one; a linear controller trained by CMA-ES in each dream, scored in reality.",
               "", gen_table, ""]
    metrics["generalization"] = gen_metrics

    # --- 3. the surprise gameday ---------------------------------------------------------------------------
    print(f"\n== 3. surprise gameday at step {args.surprise_step} (Saturday, clock held at noon)")
    reality_controller = LinearController(real_env.observation_space.shape[0], real_env.action_space)
    # CMA-ES starts from "walk along the larger goal offset"; from zero it learns to stand still
    start = np.zeros((len(Action), reality_controller.feature_dim + 1), dtype=np.float32)
    start[:, STATE_SLICES["goal_offset"]] = [MOVES[action] for action in Action]  # each move scores its progress
    normal_days = real_envs(state_kwargs, args.max_episode_steps)
    params = train_controller(
        lambda n: Intervene(normal_days(n), [(0, {"gameday": False})]), reality_controller, None,
        dataclasses.replace(cmaes, x0=np.concatenate([start[:, :-1].ravel(), start[:, -1]]), sigma0=0.05),
        itertools.count(args.seed + 20_000)).params
    reality_controller.set_params(params)
    schedule = [(args.surprise_step, {"gameday": True})]
    episode_seeds = range(args.seed + 2_000_000, args.seed + 2_000_000 + args.surprise_episodes)
    real_single = gym.make(ENV_ID, max_episode_steps=args.max_episode_steps, **state_kwargs)
    conditions = {
        "reality, normal day": (real_single, {"do": NORMAL_SATURDAY}),
        "reality, surprise gameday": (Intervene(real_single, schedule), {"do": NORMAL_SATURDAY}),
    }
    for model_id, model in models.items():
        dream = DreamEnv(model, ENV_ID, env_kwargs=state_kwargs, max_episode_steps=args.max_episode_steps)
        if model.supports_do:
            conditions[f"dream of {model_id}, normal day"] = (dream, {"do": NORMAL_SATURDAY})
            conditions[f"dream of {model_id}, surprise gameday"] = (Intervene(dream, schedule),
                                                                    {"do": NORMAL_SATURDAY})
        else:  # no do(): its start states are real normal Saturdays, its dream knows nothing of the context
            conditions[f"dream of {model_id}, normal day (no do())"] = (dream, None)
    surprise = {name: run_episodes(env, reality_controller, episode_seeds, options, args.max_episode_steps)
                for name, (env, options) in conditions.items()}
    surprise_rows = [[name, mean_ci_text(r["return"]), mean_ci_text(r["blocked_moves"]), f"{r['reached'].mean():.2f}"]
                     for name, r in surprise.items()]
    surprise_table = markdown(["condition", "return (95% CI)", "blocked moves", "reached"], surprise_rows)
    drop = {world: surprise[f"{world}, surprise gameday"]["return"].mean() - surprise[f"{world}, normal day"][
        "return"].mean() for world in ("reality", "dream of causal_vae_mdnrnn")}
    print(surprise_table)
    print(f"return change under the surprise: reality {drop['reality']:+.3f}, "
          f"dream {drop['dream of causal_vae_mdnrnn']:+.3f}")
    report += ["## 3. Surprise gameday", "",
               f"A linear controller trained by CMA-ES in reality on normal days; {args.surprise_episodes} seeded "
               f"episodes per row on a Saturday with the clock held at noon, do(gameday=True) at step "
               f"{args.surprise_step} (`wrappers.Intervene`) in reality and in the dream.", "", surprise_table, "",
               f"Change of the mean return under the surprise: reality {drop['reality']:+.3f}, dream of "
               f"causal_vae_mdnrnn {drop['dream of causal_vae_mdnrnn']:+.3f}.", ""]
    metrics["surprise_gameday"] = {name: {k: v for k, v in r.items() if k != "rewards"} for name, r in
                                   surprise.items()}
    metrics["surprise_gameday_drop"] = drop

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, r in surprise.items():
        ax.plot(np.arange(1, args.max_episode_steps + 1), r["rewards"].cumsum(axis=1).mean(axis=0), label=name,
                linestyle="--" if name.startswith("dream") else "-")
    ax.axvline(args.surprise_step, color="grey", linewidth=0.8)
    ax.set(xlabel="step", ylabel="mean cumulative reward", title="surprise gameday: reality and dream")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "surprise_gameday.png", dpi=100)
    plt.close(fig)

    # --- 4. counterfactual twins ---------------------------------------------------------------------------
    print(f"\n== 4. counterfactual twins: {args.twin_episodes} pairs of {args.twin_steps} oracle steps")
    causal_model = models["causal_vae_mdnrnn"]
    twin_rows, twin_metrics = [], {}
    for name, factual, counterfactual in TWIN_COMPARISONS:
        in_env = env_twins(factual, counterfactual, episodes=args.twin_episodes, steps=args.twin_steps,
                           policy="oracle", seed=args.seed)
        in_model = model_twins(causal_model, in_env.start_obs, in_env.actions, factual, counterfactual,
                               seed=args.seed)
        comparison = compare_twins(in_env, in_model)
        twin_metrics[name] = comparison
        for outcome in ("return", "blocked_moves"):
            c = comparison[outcome]
            twin_rows.append([name, outcome, f"{c['reference_effect']:+.3f} ± {c['reference_ci']:.3f}",
                              f"{c['effect']:+.3f} ± {c['ci']:.3f}", f"{c['error']:+.3f}", f"{c['pair_mae']:.3f}"])
    twin_table = markdown(["do() change", "outcome", "env twins: effect", "causal_vae_mdnrnn twins: effect",
                           "error of the mean", "mean |pair error|"], twin_rows)
    print(twin_table)
    report += ["## 4. Counterfactual twins", "",
               f"{args.twin_episodes} seeds, the oracle's actions in the factual world replayed in the "
               f"counterfactual one ({args.twin_steps} steps); the model starts from the same real state with the "
               "same generator seed. Effect = counterfactual minus factual, mean ± 95% CI.", "", twin_table, ""]
    metrics["twins"] = twin_metrics

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    names = [n for n, _, _ in TWIN_COMPARISONS]
    for ax, outcome in zip(axes, ("return", "blocked_moves"), strict=True):
        x = np.arange(len(names))
        ax.bar(x - 0.2, [twin_metrics[n][outcome]["reference_effect"] for n in names], 0.4, label="env")
        ax.bar(x + 0.2, [twin_metrics[n][outcome]["effect"] for n in names], 0.4, label="causal_vae_mdnrnn")
        ax.set_xticks(x, names)
        ax.set_title(f"twin effect on {outcome}")
        ax.axhline(0, color="black", linewidth=0.5)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "twins.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    labels = list(gen_metrics)
    ax.barh(np.arange(len(labels)), [gen_metrics[label]["ratio"] for label in labels])
    ax.axvline(1.5, color="red", linewidth=0.8, label="1.5x")
    ax.set_yticks(np.arange(len(labels)), labels, fontsize=7)
    ax.set(xlabel=f"held-out / training-distribution obs_mse@{k}", title="generalization")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "generalization.png", dpi=100)
    plt.close(fig)

    # --- 5. the summary ------------------------------------------------------------------------------------
    metrics["wall_seconds"] = time.perf_counter() - started
    report += ["## Plots", "", "![surprise gameday](surprise_gameday.png)", "", "![twins](twins.png)", "",
               "![generalization](generalization.png)", "",
               f"Wall time {metrics['wall_seconds']:.0f} s; arguments: `{dataclasses.asdict(args)}`.", ""]
    (out / "summary.md").write_text("\n".join(report), encoding="utf-8")
    (out / "metrics.json").write_text(json.dumps(plain(metrics), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    print(f"\nwrote {out}/: summary.md, metrics.json, surprise_gameday.png, twins.png, generalization.png, data/ "
          f"in {metrics['wall_seconds']:.0f} s")
    real_env.close()
