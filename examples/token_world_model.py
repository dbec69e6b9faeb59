"""A token world model on CampusNav-v0: history N=1 against N=4, parallel against autoregressive decoding.

`vqvae_transformer` (after IRIS, Micheli et al. 2023, arXiv:2209.00588) turns each 64x64
frame into codes of a VQ-VAE and predicts the next frame's codes, reward and termination
with a transformer over the last N frames (`model_zoo/models/vqvae_transformer.py`).
This script trains four variants on the same episodes and compares them:

1. collect random episodes of CampusNav-v0 (dict observations; `--obs-mode pixels` for
   the image alone), an eighth held out;
2. train one VQ-VAE tokenizer and copy it, frozen, into every variant, so that all four
   predict the same tokens and their token accuracies compare directly;
3. train each variant's transformer from the same seed on the same batches;
4. evaluate on held-out episodes (`model_zoo.evaluate`): `--context` real frames, then
   open-loop imagination: next-frame token accuracy (`token_acc@k`), PSNR and imagined
   frames per second at batch 1;
5. replay one shortest-path-oracle rollout in each variant from the same real start:
   `videos/real_vs_<variant>` shows [reality | dream], `error_vs_horizon.png` the errors.

Sampling is at `--temperature` with top-k: parallel decoding draws each code on its own,
so at a high temperature its frames mix modes; autoregressive decoding draws them one
after another (KV-cached), each seeing those before it, at the cost of one transformer
step per code.

    python examples/token_world_model.py                 # minutes on a CPU
    python examples/token_world_model.py --train-steps 1000 --episodes 128
    python examples/token_world_model.py --config "hidden=128,layers=3"

Writes to `--out`: `data/` (replaced on a rerun), `models/<variant>/`, `videos/`,
`error_vs_horizon.png` and `metrics.json`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import tyro

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from campus_env.oracle import ShortestPathPolicy
from campusnav.budgets import Collection, ExampleRun, Training, collect_split, config_overrides
from campusnav.results import plain
from campusnav.threads import use_threads
from wrappers import plot_error_vs_horizon, record_side_by_side
from wrappers.recorder import video_backend

ENV_ID = "CampusNav-v0"
MODEL_ID = "vqvae_transformer"
VARIANTS = {  # name -> config overrides: the history N and the decoding mode
    "N=1 parallel": {"history": 1, "decoding": "parallel"},
    "N=4 parallel": {"history": 4, "decoding": "parallel"},
    "N=1 autoregressive": {"history": 1, "decoding": "autoregressive"},
    "N=4 autoregressive": {"history": 4, "decoding": "autoregressive"},
}


@dataclass(frozen=True)
class Args(ExampleRun, Training, Collection):
    obs_mode: str = "dict"
    """observations of CampusNav-v0: "dict" (image + state + causal) or "pixels" (the image alone)"""
    config: str = ""
    """config overrides of every variant, "field=value,field=value" (e.g. "hidden=128,layers=3")"""
    tokenizer_steps: int = 300
    """gradient steps of the shared VQ-VAE tokenizer"""
    train_steps: int = 300
    """gradient steps of each variant's transformer"""
    seq_len: int = 12
    temperature: float = 0.5
    """sampling temperature of the imagined codes (0: the most likely code)"""
    top_k: int = 16
    """codes are drawn from the k most likely (0: all)"""
    context: int = 4
    """real frames filtered before imagining, in the evaluation"""
    windows: int = 64
    """held-out windows scored by the evaluation"""
    horizon: int = 16
    """steps of the video rollout, and the longest horizon of the evaluation"""
    speed_seconds: float = 1.0
    """how long each variant's imagination speed is timed"""
    fps: int = 4
    """frames per second of the videos"""
    out: str = "runs/token_world_model"


def parse_args(argv: list[str] | None = None) -> Args:
    """One --flag per field of Args, its docstring as the help (tyro)."""
    args = tyro.cli(Args, args=argv, description=__doc__)
    if args.obs_mode not in ("dict", "pixels"):
        raise SystemExit(f"--obs-mode must be 'dict' or 'pixels' (a token model needs images), got {args.obs_mode!r}")
    if args.tiny:
        args = dataclasses.replace(args, episodes=6, max_episode_steps=24, tokenizer_steps=3, train_steps=3,
                                   batch_size=2, seq_len=6, windows=4, horizon=4, context=2, speed_seconds=0.1,
                                   config=args.config or "hidden=16,layers=1,depth=4,codes=16,code_dim=8")
    return args


if __name__ == "__main__":
    args = parse_args()
    use_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    env_kwargs = {"obs_mode": args.obs_mode}
    real_env = gym.make(ENV_ID, **env_kwargs)
    spaces = (real_env.observation_space, real_env.action_space)
    base = {**config_overrides(args.config), "temperature": args.temperature, "top_k": args.top_k}

    print(f"== 1. collect: {args.episodes} random episodes of {ENV_ID} (obs_mode={args.obs_mode!r})")
    train, heldout = collect_split(ENV_ID, args, 0.125, seed=args.seed, data_path=out / "data",
                                   dataset_id="campusnav/token-world-model-v0", num_envs=8, env_kwargs=env_kwargs,
                                   progress=False)
    print(f"{len(train)} train / {len(heldout)} held-out episodes, {sum(len(e) for e in train)} train steps")

    print(f"\n== 2. tokenizer: {args.tokenizer_steps} steps of {args.batch_size} x {args.seq_len}")
    torch.manual_seed(args.seed)
    # history 1 and one target per batch: the transformer trained alongside is a by-product; the tokenizer is the point
    tokenizer_model = model_zoo.make(MODEL_ID, *spaces, **{**base, "history": 1, "train_targets": 1})
    t0 = time.perf_counter()
    rows = model_zoo.fit(tokenizer_model, train, steps=args.tokenizer_steps, seed=args.seed,
                         log_every=max(1, args.tokenizer_steps // 4), progress=False, **args.fit_kwargs())
    last = rows[-1]
    print(f"in {time.perf_counter() - t0:.0f} s: reconstruction MSE {last['recon_mse_image']:.4f}, "
          f"codes used per batch {last['codes_used_image']:.2f}, perplexity {last['perplexity_image']:.1f}, "
          f"dead codes restarted {last['code_restarts_image']:.0f}")
    tokenizer_state = tokenizer_model.tokenizers.state_dict()

    print(f"\n== 3. transformers: {args.train_steps} steps each, the same batches, the tokenizer frozen")
    models, train_seconds = {}, {}
    for name, overrides in VARIANTS.items():
        torch.manual_seed(args.seed)
        model = model_zoo.make(MODEL_ID, *spaces, **{**base, **overrides, "train_tokenizer": False})
        model.tokenizers.load_state_dict(tokenizer_state)
        t0 = time.perf_counter()
        rows = model_zoo.fit(model, train, steps=args.train_steps, seed=args.seed,
                             log_every=max(1, args.train_steps // 4), progress=False, **args.fit_kwargs())
        train_seconds[name] = time.perf_counter() - t0
        model.eval()
        model.save(out / "models" / name.replace(" ", "_").replace("=", ""))
        models[name] = model
        print(f"{name:<20} {train_seconds[name]:5.0f} s, last token CE {rows[-1]['token_ce']:.3f}, "
              f"teacher-forced token accuracy {rows[-1]['token_acc']:.3f}")

    horizons = sorted({1, args.horizon})
    print(f"\n== 4. evaluate on {len(heldout)} held-out episodes ({args.context} real frames, then "
          f"{args.horizon} imagined; temperature {args.temperature}, top-k {args.top_k})")
    results = {}
    for name, model in models.items():
        results[name] = model_zoo.evaluate(model, heldout, horizons=horizons, context=args.context,
                                           num_windows=args.windows, batch_size=32, speed_batch=1,
                                           speed_seconds=args.speed_seconds, seed=args.seed)
    columns = [f"token_acc@{k}" for k in horizons] + [f"psnr@{k}" for k in horizons]
    columns += ["reward_mae", "termination_f1", "imagined_steps_per_s", "parameters", "windows"]
    print(model_zoo.format_table(results, keys=columns).replace("imagined_steps_per_s", "imagined fps (batch 1)"))

    def gain(a: str, b: str, key: str) -> float:
        return results[a].as_dict()[key] - results[b].as_dict()[key]

    for decoding in ("parallel", "autoregressive"):
        print(f"N=4 - N=1 ({decoding}): token_acc@1 {gain(f'N=4 {decoding}', f'N=1 {decoding}', 'token_acc@1'):+.4f}")
    for n in (1, 4):
        fps = results[f"N={n} parallel"].imagined_steps_per_s / results[f"N={n} autoregressive"].imagined_steps_per_s
        print(f"autoregressive - parallel (N={n}): psnr@{args.horizon} "
              f"{gain(f'N={n} autoregressive', f'N={n} parallel', f'psnr@{args.horizon}'):+.2f} dB, "
              f"token_acc@{args.horizon} "
              f"{gain(f'N={n} autoregressive', f'N={n} parallel', f'token_acc@{args.horizon}'):+.4f}, "
              f"parallel imagines {fps:.1f}x as many frames per second")

    print(f"\n== 5. videos: one rollout of {args.horizon} oracle moves, replayed in every variant")
    oracle_env = gym.make(ENV_ID, **env_kwargs)
    rollout_seed = args.seed + 10_000  # a start that collection never reset to
    oracle_env.reset(seed=rollout_seed)
    oracle = ShortestPathPolicy()
    actions = []
    for _ in range(args.horizon):
        actions.append(oracle(oracle_env))
        if any(oracle_env.step(actions[-1])[2:4]):
            break
    suffix = ".mp4" if video_backend() else ".gif"
    videos = {}
    for name, model in models.items():
        path = out / "videos" / f"real_vs_{name.replace(' ', '_').replace('=', '')}{suffix}"
        videos[name] = record_side_by_side(real_env, model, actions, path, seed=rollout_seed, steps=len(actions),
                                           fps=args.fps)
        print(f"{name:<20} mean error {np.mean(videos[name]['errors']):.4f} -> {videos[name]['path']}")
    plot = plot_error_vs_horizon({name: [v["errors"]] for name, v in videos.items()}, out / "error_vs_horizon.png",
                                 title="token world models against reality (one oracle rollout)")

    metrics = {
        "args": dataclasses.asdict(args),
        "variants": {name: {"config": dataclasses.asdict(models[name].config), "train_seconds": train_seconds[name],
                            "evaluation": results[name].as_dict(), "video": videos[name]["path"],
                            "video_errors": videos[name]["errors"]} for name in VARIANTS},
        "wall_seconds": time.perf_counter() - started,
    }
    (out / "metrics.json").write_text(json.dumps(plain(metrics), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    print(f"\nwrote {out}/: data/, models/, videos/ ({len(videos)} {suffix} files), {plot.name}, metrics.json "
          f"in {metrics['wall_seconds']:.0f} s")
    real_env.close()
    oracle_env.close()
