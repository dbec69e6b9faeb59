"""Zoo quality: every model trained on the same CampusNav-v0 data with the same budget.

Collects one dataset of dict observations (64x64 image + state + causal) on the
"train" split and a second, smaller one on the "heldout" split (contexts the first
never shows: gameday in rain or snow), trains every registered model with the same
steps, batch and sequence length, and prints ``model_zoo.evaluate`` on held-out
episodes of the train split, then the targets as PASS/MISS lines:

- ``vae_mdnrnn`` 1-step image PSNR >= 25 dB (16-step PSNR reported);
- ``mlp`` 1-step state MSE >= 10x lower than "next = current": the same episodes with
  ``obs_mode="state"`` (the flat vector the MLP is built for), same budget; printed beside
  the ratio the best a deterministic predictor can reach on such data at all
  (``deterministic_bound``: about 10x, because moves fail by chance);
- ``mlp_ensemble`` disagreement higher on held-out contexts than on the training split;
- ``vae_mdnrnn`` imagined steps per second at batch 1024 >= 50k (latent features, no decoding).

    python benchmarks/zoo_quality.py              # about half an hour on a 2-core CPU
    python benchmarks/zoo_quality.py --quick      # a smoke run of a minute
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import tyro

import model_zoo
from campusnav.budgets import BenchmarkRun, Collection, SequenceBatches
from campusnav.harness import write_json, write_results
from campusnav.leaderboard.bounds import deterministic_bound
from campusnav.threads import use_threads
from model_zoo.data import SequenceSampler, collect, iterate, load_episodes, split_episodes


@dataclass(frozen=True)
class Args(BenchmarkRun, SequenceBatches, Collection):
    episodes: int = 160
    """training-split episodes collected (random policy)"""
    heldout_episodes: int = 32
    """episodes collected on the held-out split, for the ensemble's disagreement"""
    max_episode_steps: int = 120
    steps: int = 1500
    """gradient steps per model"""
    lr: float | None = None
    """Adam learning rate of every model (default: each model's preset rate for the data)"""
    models: list[str] = field(default_factory=list)
    """model ids to train (default: every registered model)"""


def lr_of(model_id: str, args: Args, preset: str = "campusnav-pixels") -> float:
    """``--lr`` when given, else the model's tuned rate for this data (its preset; dict observations: pixels)."""
    return args.lr if args.lr is not None else model_zoo.registry.preset(model_id, preset).lr


def parse_args(argv=None) -> Args:
    args = tyro.cli(Args, args=argv, description=__doc__)
    if args.quick:
        args = replace(args, episodes=12, heldout_episodes=4, max_episode_steps=40, steps=20, batch_size=4, seq_len=16)
    return args


@torch.inference_mode()
def mean_disagreement(model, episodes, seq_len: int) -> float:
    """Mean ensemble disagreement of the next step over every window of ``episodes``."""
    total, count = 0.0, 0
    for batch in iterate(episodes, seq_len, 32):
        state = model.initial_state(batch.shape[0])
        for t in range(batch.shape[1] - 1):
            obs = {k: v[:, t] for k, v in batch.obs.items()} if isinstance(batch.obs, dict) else batch.obs[:, t]
            state = model.observe(state, batch.action[:, t], obs, batch.is_first[:, t])
            valid = ~batch.is_first[:, t + 1]
            u = model.uncertainty(state, batch.action[:, t + 1])
            total += float(u[valid].sum())
            count += int(valid.sum())
    return total / max(count, 1)


def main(argv=None) -> dict:
    args = parse_args(argv)
    use_threads(args.threads)
    torch.manual_seed(args.seed)
    ids = args.models or model_zoo.list_models()
    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        kwargs = dict(env_kwargs={"obs_mode": "dict"}, max_episode_steps=args.max_episode_steps,
                      data_path=root, num_envs=8)
        train_data = collect(num_episodes=args.episodes, split="train", seed=args.seed,
                             dataset_id="bench/train-v0", **kwargs)
        heldout_data = collect(num_episodes=args.heldout_episodes, split="heldout", seed=args.seed + 1,
                               dataset_id="bench/heldout-v0", **kwargs)
        episodes = load_episodes(train_data)
        train, test = split_episodes(episodes, 0.15, seed=args.seed)
        heldout_contexts = load_episodes(heldout_data)
        state_mode = None
        if "mlp" in ids:  # the same episodes (same seeds, same random actions) as flat state vectors
            state_data = collect(num_episodes=args.episodes, split="train", seed=args.seed,
                                 dataset_id="bench/train-state-v0",
                                 **{**kwargs, "env_kwargs": {"obs_mode": "state"}})
            state_train, state_test = split_episodes(load_episodes(state_data), 0.15, seed=args.seed)
            torch.manual_seed(args.seed)
            model = model_zoo.make("mlp", state_data.observation_space, state_data.action_space)
            sampler = SequenceSampler(state_train, args.seq_len, args.batch_size, seed=args.seed)
            model_zoo.fit(model, sampler, steps=args.steps, lr=lr_of("mlp", args, "campusnav-state"), seed=args.seed)
            model.eval()
            state_mode = model_zoo.evaluate(model, state_test, horizons=(1, 16), num_windows=256)
            state_mode.extra["deterministic_bound"] = deterministic_bound("train", args.max_episode_steps, args.seed)
        print(f"data: {len(train)} training, {len(test)} test, {len(heldout_contexts)} held-out-context "
              f"episodes ({sum(len(e) for e in episodes)} steps) in {time.perf_counter() - started:.0f} s")
        results, extra = {}, {}
        for model_id in ids:
            torch.manual_seed(args.seed)
            model = model_zoo.make(model_id, train_data.observation_space, train_data.action_space)
            sampler = SequenceSampler(train, args.seq_len, args.batch_size, seed=args.seed)
            started = time.perf_counter()
            model_zoo.fit(model, sampler, steps=args.steps, lr=lr_of(model_id, args), seed=args.seed)
            seconds = time.perf_counter() - started
            model.eval()
            results[model_id] = model_zoo.evaluate(model, test, horizons=(1, 16), num_windows=256)
            results[model_id].extra["train_seconds"] = seconds
            if hasattr(model, "uncertainty"):
                extra[model_id] = {
                    "disagreement_train_split": mean_disagreement(model, test, args.seq_len),
                    "disagreement_heldout_contexts": mean_disagreement(model, heldout_contexts, args.seq_len),
                }
    keys = ["obs_mse@1", "obs_mse@16", "psnr@1", "psnr@16", "copy_mse@1", "vector_mse@1", "copy_vector_mse@1",
            "reward_mae", "termination_f1", "imagined_steps_per_s", "parameters", "train_seconds"]
    rates = "presets' rates" if args.lr is None else f"lr {args.lr:g}"
    print(f"\n{args.steps} steps x batch {args.batch_size} x {args.seq_len} steps per model "
          f"({rates}); evaluated on {len(test)} test episodes of the train split\n")
    print(model_zoo.format_table(results, keys=keys))
    if state_mode is not None:
        print("\nmlp on the same episodes with obs_mode='state':\n")
        print(model_zoo.format_table({"mlp (state)": state_mode}, keys=["obs_mse@1", "obs_mse@16", "copy_mse@1",
                                                                        "copy_mse@16", "reward_mae",
                                                                        "deterministic_bound"]))
        results["mlp (state)"] = state_mode
    checks = targets(results, extra)
    print()
    for line in checks:
        print(line)
    report = {"args": asdict(args), "results": {k: r.as_dict() for k, r in results.items()},
              "disagreement": extra, "targets": checks}
    if args.json:
        write_json(args.json, report)
    if not args.quick:
        tables = model_zoo.format_table(results, keys=keys)
        write_results("zoo_quality", f"{tables}\n\n" + "\n".join(f"- {line}" for line in checks), report)
    return report


def targets(results: dict, extra: dict) -> list[str]:
    lines = []

    def check(ok: bool, text: str) -> None:
        lines.append(("PASS  " if ok else "MISS  ") + text)

    if "vae_mdnrnn" in results:
        row = results["vae_mdnrnn"].as_dict()
        check(row["psnr@1"] >= 25.0, f"vae_mdnrnn 1-step PSNR >= 25 dB: {row['psnr@1']:.2f} dB "
              f"(16-step: {row['psnr@16']:.2f} dB)")
        check(row["imagined_steps_per_s"] >= 50_000,
              f"vae_mdnrnn imagined steps/s at batch 1024 >= 50k: {row['imagined_steps_per_s']:,.0f}")
    if "mlp (state)" in results:
        row = results["mlp (state)"].as_dict()
        ratio = row["copy_mse@1"] / max(row["obs_mse@1"], 1e-12)
        check(ratio >= 10.0, f"mlp 1-step state MSE >= 10x below next = current: {ratio:.1f}x "
              f"({row['obs_mse@1']:.4g} vs {row['copy_mse@1']:.4g}); the best a deterministic predictor can reach "
              f"on this data is about {row['deterministic_bound']:.1f}x (the env's chance blocks and slips)")
    if "mlp_ensemble" in extra:
        d = extra["mlp_ensemble"]
        ratio = d["disagreement_heldout_contexts"] / max(d["disagreement_train_split"], 1e-12)
        check(ratio > 1.0, f"mlp_ensemble disagreement higher on held-out contexts: {ratio:.2f}x "
              f"({d['disagreement_heldout_contexts']:.4g} vs {d['disagreement_train_split']:.4g})")
    return lines


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
