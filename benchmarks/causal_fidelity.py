"""Causal fidelity: do(X) in the real CampusNav-v0 against the same do(X) in the dream.

``causal_vae_mdnrnn`` and ``vae_mdnrnn`` train on the same data and budget: the training
split's causal grid only (``coverage="grid"``, ``split="train"``), so the held-out
contexts of ``campus_env.causal.HELDOUT_CONTEXTS`` are never seen. For each
intervention (none, gameday, snow, crowd, road closure, spring, and the held-out gameday
+ rain and gameday + snow) one fixed policy runs the same seeds in the real env (reset
with ``options={"do": X}``) and in each model's dream from the same filtered real
starts: the causal model imagines with ``do=X``; the non-causal one sees the
intervention only through its start observation.

Outcomes per episode: travel time (steps to the goal, ``--horizon`` if not reached),
blocked moves and return. Per intervention and model the table gives dream minus real
(difference of means, 95% CI) and the 1-D Wasserstein distance; the *interventional
error* is that distance over the real outcome's standard deviation, averaged over the
three outcomes. Each of ``--seeds`` replicates collects, trains and rolls out on its
own, and the targets judge the mean over replicates (one replicate varies too much).

The policy walks toward the goal along the larger component of the goal offset,
preferring moves the observation's walkability patch shows open, with ``--epsilon``
random moves; it reads the flat ``obs_mode="state"`` observation with the causal
variables shown, so both models read them at ``observe``.

Targets (PASS/MISS lines): on the held-out interventions, the causal model's
interventional error at most half of ``vae_mdnrnn``'s; the causal model's 8-step
observation MSE on held-out-split episodes within 1.5x of that on unseen training-split
episodes; structure discovery (``model_zoo.causal.discover_campus``) at structural
Hamming distance 0. Measured runs: docs/results/causal_fidelity.md.

    python benchmarks/causal_fidelity.py                  # minutes per replicate on a CPU
    python benchmarks/causal_fidelity.py --seeds 0        # one replicate
    python benchmarks/causal_fidelity.py --seeds 100 101  # two replicates of other seeds
    python benchmarks/causal_fidelity.py --quick          # a smoke run of seconds (the first seed only)
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field, replace

import gymnasium as gym
import numpy as np
import torch
import tyro

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from campus_env import causal
from campus_env.features import ACTION_FEATURES, action_features
from campus_env.rules import BLOCKED_REWARD
from campus_env.schema import MOVES, STATE_SLICES, Action
from campusnav.budgets import GridCollection, Training
from campusnav.harness import markdown_table, write_json, write_results
from campusnav.threads import use_threads
from model_zoo.data import collect

ENV_KWARGS = {"obs_mode": "state", "observe_causal": True}
MODELS = ("causal_vae_mdnrnn", "vae_mdnrnn")
INTERVENTIONS: dict[str, dict] = {
    "none": {},
    "gameday": {"gameday": True},
    "snow": {"weather": "snowy"},
    "crowd 0.9": {"crowd": 0.9},
    "road closure": {"road_closure": True},
    "spring": {"semester": "spring"},
    "gameday+rain (held out)": {"gameday": True, "weather": "rainy"},
    "gameday+snow (held out)": {"gameday": True, "weather": "snowy"},
}
HELDOUT = tuple(name for name in INTERVENTIONS if "held out" in name)
OUTCOMES = ("travel_time", "blocked", "return")
COMPASS = np.array([action for action in Action if action != Action.STAY])  # the four moves the policy takes
COMPASS_MOVES = np.array([MOVES[action] for action in COMPASS], dtype=np.float32)  # (4, 2) their (row, col) steps


@dataclass(frozen=True)
class Args(Training, GridCollection):
    episodes_per_cell: int = 2
    eval_episodes_per_cell: int = 1
    """episodes per cell for the prediction-error evaluation (train and held-out splits)"""
    steps: int = 1200
    """gradient steps per model"""
    rollouts: int = 512
    """episodes per intervention, in reality and in each dream"""
    horizon: int = 60
    """steps per fidelity episode"""
    epsilon: float = 0.2
    """random moves of the fixed policy"""
    discovery_samples: int = 2000
    """samples per experiment of the structure discovery (its default data budget)"""
    seeds: list[int] = field(default_factory=lambda: list(range(8)))
    """replicates: each seed collects its own data, trains both models and runs its rollouts; errors are averaged"""
    json: str | None = None
    """write the results to this file"""
    quick: bool = False
    """a smoke run: tiny data and budgets"""


def parse_args(argv=None) -> Args:
    args = tyro.cli(Args, args=argv, description=__doc__)
    if args.quick:
        args = replace(args, episodes_per_cell=1, max_episode_steps=30, steps=20, batch_size=4, seq_len=16, rollouts=8,
                       horizon=15, discovery_samples=300, seeds=args.seeds[:1])
    return args


# --- the fixed policy ----------------------------------------------------------------------------


def policy(obs: np.ndarray, rng: np.random.Generator, epsilon: float) -> np.ndarray:
    """Actions (N,) toward the goal for flat state observations (N, 72): see the module docstring."""
    offset = obs[:, STATE_SLICES["goal_offset"]]  # goal minus agent, (row, col), scaled by the map size
    open_ = action_features(obs)[:, COMPASS, ACTION_FEATURES.index("walkable")] > 0.5  # (N, 4) the moves' cells
    scores = offset @ COMPASS_MOVES.T + 10.0 * open_  # (N, 4): open first, then progress
    actions = COMPASS[scores.argmax(axis=1)]
    explore = rng.random(len(obs)) < epsilon
    return np.where(explore, rng.choice(COMPASS, len(obs)), actions).astype(np.int64)


def collection_policy(epsilon: float, seed: int):
    rng = np.random.default_rng(seed)
    return lambda obs: policy(np.asarray(obs), rng, epsilon)


# --- outcomes in reality and in the dream --------------------------------------------------------


def summarise(rewards: np.ndarray, terminated: np.ndarray) -> dict[str, np.ndarray]:
    """Per-episode outcomes of (N, H) rewards and terminations, counting steps up to the first termination."""
    H = rewards.shape[1]
    ended = terminated.any(axis=1)
    first = np.where(ended, terminated.argmax(axis=1), H - 1)
    live = np.arange(H)[None, :] <= first[:, None]  # (N, H)
    return {
        "travel_time": np.where(ended, first + 1, H).astype(float),
        "blocked": ((rewards < BLOCKED_REWARD) & live).sum(axis=1).astype(float),
        "return": (rewards * live).sum(axis=1),
    }


def real_rollouts(do: dict, args: Args, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Outcomes of ``args.rollouts`` real episodes under ``do`` and their start observations."""
    envs = gym.make_vec("CampusNav-v0", num_envs=args.rollouts, **ENV_KWARGS)
    obs, _ = envs.reset(seed=seed + 10_000, options={"do": do} if do else None)
    start = obs.copy()
    rng = np.random.default_rng(seed)
    rewards = np.zeros((args.rollouts, args.horizon))
    terminated = np.zeros((args.rollouts, args.horizon), dtype=bool)
    for t in range(args.horizon):
        obs, reward, term, _, _ = envs.step(policy(obs, rng, args.epsilon))
        rewards[:, t], terminated[:, t] = reward, term
    envs.close()
    return summarise(rewards, terminated), start


@torch.no_grad()
def dream_rollouts(model, start: np.ndarray, do: dict, args: Args, seed: int) -> dict[str, np.ndarray]:
    """Outcomes of the same episodes in ``model``'s dream (with ``do`` when the model takes it)."""
    model.eval()
    n = len(start)
    state = model.observe(model.initial_state(n), torch.zeros(n, dtype=torch.int64), torch.as_tensor(start),
                          torch.ones(n, dtype=torch.bool))
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    rewards = np.zeros((n, args.horizon))
    terminated = np.zeros((n, args.horizon), dtype=bool)
    kwargs = {"do": do} if model.supports_do and do else {}
    for t in range(args.horizon):
        obs = model.decode(state).numpy()
        out = model.imagine(state, torch.as_tensor(policy(obs, rng, args.epsilon)), generator=generator, **kwargs)
        state = out.state
        rewards[:, t], terminated[:, t] = out.reward.numpy(), out.terminated.numpy()
    return summarise(rewards, terminated)


def wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """1-D Wasserstein distance of two samples of the same size: the mean gap of their sorted values."""
    return float(np.abs(np.sort(a) - np.sort(b)).mean())


def compare(real: np.ndarray, dream: np.ndarray) -> dict[str, float]:
    diff = float(dream.mean() - real.mean())
    ci = 1.96 * float(np.sqrt(dream.var(ddof=1) / len(dream) + real.var(ddof=1) / len(real)))
    return {"diff": diff, "ci": ci, "w1": wasserstein(real, dream)}


# --- the run -------------------------------------------------------------------------------------


def train(model_id: str, dataset, env, args: Args, seed: int):
    torch.manual_seed(seed)
    model = model_zoo.make(model_id, env.observation_space, env.action_space)
    start = time.perf_counter()
    model_zoo.fit(model, dataset, steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len, lr=args.lr,
                  seed=seed, progress=False, log_every=max(1, args.steps // 10))
    return model, time.perf_counter() - start


def discovery(args: Args) -> dict:
    try:
        from model_zoo.causal import discover_campus
    except ImportError:
        print("structure discovery: not available (no model_zoo.causal.discover_campus)")
        return {}
    found = discover_campus(samples=args.discovery_samples, seed=args.seeds[0])
    shd = found.shd(causal.CAUSAL_GRAPH)
    print(f"structure discovery: SHD {shd} to env.unwrapped.causal_graph ({args.discovery_samples} samples per "
          f"experiment, {found.experiments} experiments, {found.seconds:.1f} s)")
    return {"shd": shd, "graph": {k: list(v) for k, v in found.graph.items()}}


def replicate(args: Args, seed: int, env) -> dict:
    """One replicate: its own data, both models trained, their prediction errors and every rollout."""
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as root:
        data = {}
        for name, split, per_cell, offset in (("train", "train", args.episodes_per_cell, 0),
                                              ("eval_train", "train", args.eval_episodes_per_cell, 1),
                                              ("eval_heldout", "heldout", args.eval_episodes_per_cell, 2)):
            data[name] = collect("CampusNav-v0", coverage="grid", split=split, episodes_per_cell=per_cell,
                                 policy=collection_policy(0.5, seed + offset), seed=seed + offset,
                                 env_kwargs=ENV_KWARGS, max_episode_steps=args.max_episode_steps,
                                 dataset_id=f"bench/{name}-v0", progress=False, data_path=root)
        print(f"seed {seed}: {data['train'].total_episodes} training episodes ({int(data['train'].total_steps)} "
              f"steps) on the train split; {data['eval_heldout'].total_episodes} held-out-split episodes for "
              f"evaluation ({time.perf_counter() - began:.0f} s)")
        models, seconds, prediction = {}, {}, {}
        horizons = (1, 8) if not args.quick else (1, 4)
        for model_id in MODELS:
            models[model_id], seconds[model_id] = train(model_id, data["train"], env, args, seed)
            prediction[model_id] = {
                split: model_zoo.evaluate(models[model_id], data[f"eval_{split}"], horizons=horizons, context=4,
                                          num_windows=128, speed_batch=0).obs_mse[horizons[-1]]
                for split in ("train", "heldout")
            }
            p = prediction[model_id]
            print(f"  {model_id}: {args.steps} steps in {seconds[model_id]:.0f} s; obs MSE@{horizons[-1]} "
                  f"train split {p['train']:.4g}, held-out split {p['heldout']:.4g}")
    real, dream = {}, {m: {} for m in MODELS}
    for name, do in INTERVENTIONS.items():
        real[name], start = real_rollouts(do, args, seed)
        for model_id, model in models.items():
            dream[model_id][name] = dream_rollouts(model, start, do, args, seed)
    scale = {o: float(np.concatenate([real[n][o] for n in INTERVENTIONS]).std()) or 1.0 for o in OUTCOMES}
    stats = {m: {n: {o: compare(real[n][o], dream[m][n][o]) for o in OUTCOMES} for n in INTERVENTIONS}
             for m in MODELS}
    error = {m: {n: float(np.mean([stats[m][n][o]["w1"] / scale[o] for o in OUTCOMES])) for n in INTERVENTIONS}
             for m in MODELS}
    held = {m: float(np.mean([error[m][n] for n in HELDOUT])) for m in MODELS}
    print(f"  held-out interventional error: causal {held['causal_vae_mdnrnn']:.3f}, vae_mdnrnn "
          f"{held['vae_mdnrnn']:.3f} (ratio {held['causal_vae_mdnrnn'] / held['vae_mdnrnn']:.2f})")
    real_means = {n: {o: float(real[n][o].mean()) for o in OUTCOMES} for n in INTERVENTIONS}
    return {"stats": stats, "error": error, "held": held, "prediction": prediction, "seconds": seconds,
            "real": real_means, "horizon": horizons[-1]}


def mean_over(runs: list[dict], *path: str) -> float:
    """The mean over replicates of ``run[path[0]][path[1]]...``."""
    values = []
    for run in runs:
        for key in path:
            run = run[key]
        values.append(run)
    return float(np.mean(values))


def main(argv=None) -> dict:
    args = parse_args(argv)
    use_threads()
    env = gym.make("CampusNav-v0", **ENV_KWARGS)
    began = time.perf_counter()
    runs = [replicate(args, seed, env) for seed in args.seeds]
    k = len(runs)

    print(f"\n### Interventional fidelity ({args.rollouts} episodes of {args.horizon} steps per intervention and "
          f"replicate; dream minus real with its 95% CI and W1 = Wasserstein distance, each the mean of {k} "
          "replicates)\n")
    header = "| do() | model | " + " | ".join(f"{o} real | {o} diff | {o} W1" for o in OUTCOMES) + " | error |"
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for name in INTERVENTIONS:
        for model_id in MODELS:
            cells = []
            for o in OUTCOMES:
                mean = {q: mean_over(runs, "stats", model_id, name, o, q) for q in ("diff", "ci", "w1")}
                cells += [f"{mean_over(runs, 'real', name, o):.2f}", f"{mean['diff']:+.2f} ± {mean['ci']:.2f}",
                          f"{mean['w1']:.2f}"]
            print(f"| {name} | {model_id} | " + " | ".join(cells) +
                  f" | {mean_over(runs, 'error', model_id, name):.3f} |")

    error = {m: {n: mean_over(runs, "error", m, n) for n in INTERVENTIONS} for m in MODELS}
    held = {m: float(np.mean([error[m][n] for n in HELDOUT])) for m in MODELS}
    seen = {m: float(np.mean([error[m][n] for n in INTERVENTIONS if n not in HELDOUT])) for m in MODELS}
    ratios = [run["held"]["causal_vae_mdnrnn"] / run["held"]["vae_mdnrnn"] for run in runs]
    prediction = {m: {split: mean_over(runs, "prediction", m, split) for split in ("train", "heldout")}
                  for m in MODELS}
    print()
    found = discovery(args)

    ratio = held["causal_vae_mdnrnn"] / held["vae_mdnrnn"]
    generalisation = prediction["causal_vae_mdnrnn"]["heldout"] / prediction["causal_vae_mdnrnn"]["train"]
    lines = [
        f"{'PASS' if ratio <= 0.5 else 'MISS'}: held-out interventional error, causal / vae_mdnrnn = {ratio:.2f} "
        f"(target <= 0.5; mean of {k} replicates)",
        f"{'PASS' if generalisation <= 1.5 else 'MISS'}: causal_vae_mdnrnn held-out / training-split prediction "
        f"error = {generalisation:.2f} (target <= 1.5)",
    ]
    if found:
        lines.append(f"{'PASS' if found['shd'] == 0 else 'MISS'}: structure discovery SHD = {found['shd']} (target 0)")
    else:
        lines.append("MISS: structure discovery not available")
    results = {"args": asdict(args), "error": error, "heldout_error": held, "seen_error": seen,
               "heldout_ratio_per_seed": ratios, "prediction": prediction,
               "train_seconds": [run["seconds"] for run in runs], "discovery": found, "targets": lines}
    markdown = page(results)
    print("\n" + markdown)
    print(f"\n(total {time.perf_counter() - began:.0f} s; budget: {args.steps} steps x batch {args.batch_size} x "
          f"{args.seq_len} steps per model and replicate)")
    if args.json:
        write_json(args.json, results)
    if not args.quick:
        write_results("causal_fidelity", markdown, results)
    return results


def page(results: dict) -> str:
    """The results page: interventional errors per intervention, their means, the prediction table, the targets."""
    error, names = results["error"], list(results["error"]["causal_vae_mdnrnn"])
    def ratio(causal: float, plain: float) -> str:
        return f"{causal / plain if plain else float('nan'):.2f}"

    rows = [[name, *(f"{error[m][name]:.3f}" for m in MODELS), ratio(error[MODELS[0]][name], error[MODELS[1]][name])]
            for name in names]
    for label, key in (("seen (mean)", "seen_error"), ("**held out (mean)**", "heldout_error")):
        value = results[key]
        rows.append([label, *(f"{value[m]:.3f}" for m in MODELS), ratio(value[MODELS[0]], value[MODELS[1]])])
    k = len(results["heldout_ratio_per_seed"])
    prediction = results["prediction"]
    return "\n".join([
        f"Interventional error (mean of {k} replicates; lower is better):", "",
        markdown_table(["intervention", *MODELS, "ratio"], rows, "lrrr"), "",
        "Held-out ratio per replicate: " + ", ".join(f"{r:.2f}" for r in results["heldout_ratio_per_seed"]) + ".", "",
        "Prediction error (obs MSE), training against held-out split:", "",
        markdown_table(["model", "train split", "held-out split", "ratio"],
                       [[m, f"{prediction[m]['train']:.4g}", f"{prediction[m]['heldout']:.4g}",
                         f"{prediction[m]['heldout'] / prediction[m]['train']:.2f}"] for m in MODELS], "lrrr"), "",
        *(f"- {line}" for line in results["targets"])])


if __name__ == "__main__":
    main()
