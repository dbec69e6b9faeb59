"""A diffusion world model of CampusNav-v0 frames (DIAMOND), alone or with CarRacing-v3 in one model.

`diffusion` (after DIAMOND, Alonso et al. 2024, arXiv:2405.12399) samples the next frame
with a U-Net denoiser conditioned on the last N frames and actions, in a few EDM steps
(`model_zoo/models/diffusion.py`). This script:

1. collects random episodes of CampusNav-v0 pixels (`--image-size 64` or 128); with
   `--games 2` also of CarRacing-v3, and brings both to one space with
   `model_zoo.data.Games` (frames resized to the model's size, the game index beside);
2. trains `diffusion` on them (`games=2` adds a learned game embedding);
3. trains the semantic probe of CampusNav-v0 frames (`model_zoo.probe`), or loads one;
4. scores dreams on held-out episodes: `--context` real frames, then open loop with the
   recorded actions: the probe's valid-frame rate at 1 and `--horizon` steps
   (`model_zoo.evaluation.valid_frame_rates`; 128-px frames are 2x2-averaged for the
   probe), PSNR, and imagined frames per second at batch 1 and 64;
5. writes one video per game: real frames beside imagined ones over `--horizon` steps.

    python examples/diffusion_world_model.py                 # about an hour on a 2-core CPU
    python examples/diffusion_world_model.py --games 2       # one model, two games
    python examples/diffusion_world_model.py --probe runs/leaderboard/probe --steps 10

Writes to `--out`: `data/` (replaced on a rerun), `model/`, `probe/`, `videos/`,
`table.md` and `metrics.json`.
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
from campusnav.budgets import Collection, ExampleRun, Training, collect_split, config_overrides
from campusnav.results import plain
from campusnav.threads import use_threads
from model_zoo.data import Episode, Games
from model_zoo.evaluation import imagined_steps_per_second, valid_frame_rates
from model_zoo.probe import SemanticProbe, train_probe
from wrappers.recorder import add_caption, video_backend, write_video

CAMPUS, CAR = "CampusNav-v0", "CarRacing-v3"
MODEL_ID = "diffusion"


@dataclass(frozen=True)
class Args(ExampleRun, Training, Collection):
    games: int = 1
    """1: CampusNav-v0 alone; 2: CampusNav-v0 and CarRacing-v3 in one model"""
    image_size: int = 64
    """CampusNav-v0's frames and the model's: 64 or 128 pixels"""
    car_episodes: int = 24
    """CarRacing-v3 episodes collected with --games 2"""
    car_max_steps: int = 100
    """CarRacing-v3 episode length cap"""
    steps: int = 3
    """denoising steps of the sampler"""
    config: str = ""
    """further config overrides, "field=value,field=value" (e.g. "depth=16,hidden=64")"""
    train_steps: int = 600
    """gradient steps of the model"""
    lr: float = 3e-4
    seq_len: int = 16
    probe: str | None = None
    """a saved probe folder (e.g. the leaderboard's <out>/probe); default: train one into <out>/probe"""
    probe_frames: int = 20_000
    """real frames a new probe trains on"""
    probe_steps: int = 1500
    """gradient steps of a new probe"""
    context: int = 4
    """real frames filtered before imagining"""
    horizon: int = 16
    """imagined steps of the videos and the longest horizon scored"""
    windows: int = 64
    """held-out windows scored per game"""
    speed_seconds: float = 1.0
    """how long imagination speed is timed at each batch size"""
    fps: int = 4
    """frames per second of the videos"""
    out: str = "runs/diffusion_world_model"


def parse_args(argv: list[str] | None = None) -> Args:
    """One --flag per field of Args, its docstring as the help (tyro)."""
    args = tyro.cli(Args, args=argv, description=__doc__)
    if args.games not in (1, 2) or args.image_size not in (64, 128):
        raise SystemExit(f"--games must be 1 or 2 and --image-size 64 or 128, got {args.games}, {args.image_size}")
    if args.tiny:
        args = dataclasses.replace(args, episodes=4, max_episode_steps=24, car_episodes=2, car_max_steps=24,
                                   train_steps=2, batch_size=2, seq_len=6, probe_frames=64, probe_steps=2, context=2,
                                   windows=2, speed_seconds=0.05, config=args.config or "depth=4,hidden=16,layers=1")
    return args


def collect_games(args: Args, out: Path) -> tuple[tuple[gym.Space, gym.Space], list[list[Episode]], list[list[Episode]],
                                                  Games | None]:
    """The model's spaces, train and held-out episodes per game (in the model's space), and the adapter if any."""
    env_kwargs = {"obs_mode": "pixels", "image_size": args.image_size}
    campus = collect_split(CAMPUS, args, 0.125, seed=args.seed, data_path=out / "data", split="train",
                           dataset_id="campusnav/diffusion-world-model-v0", num_envs=4, env_kwargs=env_kwargs,
                           progress=False)
    env = gym.make(CAMPUS, **env_kwargs)
    spaces = [(env.observation_space, env.action_space)]
    if args.games == 1:
        return spaces[0], [campus[0]], [campus[1]], None
    car = collect_split(CAR, Collection(args.car_episodes, args.car_max_steps), 0.15, seed=args.seed, num_envs=2,
                        data_path=out / "data", dataset_id="carracing/diffusion-world-model-v0", progress=False)
    car_env = gym.make(CAR)
    games = Games(spaces + [(car_env.observation_space, car_env.action_space)], size=args.image_size)
    train = [[games.episode(i, e) for e in split[0]] for i, split in enumerate((campus, car))]
    heldout = [[games.episode(i, e) for e in split[1]] for i, split in enumerate((campus, car))]
    return (games.observation_space, games.action_space), train, heldout, games


def the_probe(args: Args, out: Path) -> SemanticProbe:
    """The probe at --probe, or one trained on real CampusNav-v0 frames (64 px) and saved to <out>/probe."""
    if args.probe:
        return SemanticProbe.load(args.probe)
    result = train_probe(CAMPUS, env_kwargs={"split": "train"}, frames=args.probe_frames,
                         heldout_frames=max(args.probe_frames // 4, 16), steps=args.probe_steps,
                         num_envs=min(32, max(2, args.probe_frames // 32)), seed=args.seed)
    result.probe.save(out / "probe")
    print(f"probe: {result.frames} frames, {result.train_seconds:.0f} s, held-out joint accuracy "
          f"{result.joint_accuracy:.3f}, valid rate {result.valid_rate:.3f}")
    return result.probe


def side_by_side(model: model_zoo.WorldModel, episode: Episode, args: Args, path: Path, title: str) -> dict:
    """[real | imagined] frames: --context real ones observed, then --horizon imagined with the recorded actions."""
    steps = min(args.horizon, len(episode) - args.context + 1)
    obs = episode.obs if isinstance(episode.obs, dict) else {"": episode.obs}
    image = obs["image"] if "image" in obs else obs[""]

    def at(t: int):
        row = {k: torch.as_tensor(v[t : t + 1]) for k, v in obs.items()}
        return row[""] if "" in row else row

    action = torch.as_tensor(np.concatenate([np.zeros_like(episode.action[:1]), episode.action]))
    state = model.initial_state(1)
    generator = torch.Generator().manual_seed(args.seed)
    frames = []
    with torch.no_grad():
        for t in range(args.context):
            state = model.observe(state, action[t : t + 1], at(t), torch.tensor([t == 0]))
        for j in range(steps):
            t = args.context + j
            state = model.imagine(state, action[t : t + 1], generator=generator).state
            dream = model.decode(state)
            dream = (dream["image"] if isinstance(dream, dict) else dream)[0].numpy()
            pair = np.concatenate([image[t], dream], axis=1)
            frames.append(add_caption(pair, [f"{title}: real | imagined", f"step {j + 1}/{steps}"]))
    return {"path": str(write_video(frames, path, args.fps)), "frames": len(frames)}


def table(rows: dict[str, dict[str, float]], horizon: int) -> str:
    """The results as a markdown table, one row per game."""
    keys = ["valid@1", f"valid@{horizon}", "psnr@1", f"psnr@{horizon}", "fps@1", "fps@64"]
    lines = ["| game | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for game, row in rows.items():
        lines.append(f"| {game} | " + " | ".join(f"{row[k]:.3f}" if k in row else "-" for k in keys) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    args = parse_args()
    use_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    names = [CAMPUS, CAR][: args.games]

    print(f"== 1. collect: {args.episodes} random episodes of {CAMPUS} ({args.image_size} px)"
          + (f" and {args.car_episodes} of {CAR}" if args.games == 2 else ""))
    spaces, train, heldout, games = collect_games(args, out)
    for name, tr, ho in zip(names, train, heldout, strict=True):
        print(f"{name}: {len(tr)} train / {len(ho)} held-out episodes, {sum(len(e) for e in tr)} train steps")

    print(f"\n== 2. train: {args.train_steps} steps of {args.batch_size} x {args.seq_len}")
    torch.manual_seed(args.seed)
    model = model_zoo.make(MODEL_ID, *spaces, preset="campusnav-pixels", games=args.games,
                           image_size=args.image_size, steps=args.steps, **config_overrides(args.config))
    t0 = time.perf_counter()
    rows = model_zoo.fit(model, [e for episodes in train for e in episodes], steps=args.train_steps, seed=args.seed,
                         log_every=max(1, args.train_steps // 4), progress=False, **args.fit_kwargs())
    train_seconds = time.perf_counter() - t0
    model.eval()
    model.save(out / "model")
    print(f"in {train_seconds:.0f} s, last loss {rows[-1]['loss']:.4f} (denoising {rows[-1]['denoise']:.4f})")

    print("\n== 3. probe")
    probe = the_probe(args, out)
    readout = probe.pooled_readout(args.image_size // 64)

    print(f"\n== 4. evaluate: {args.context} real frames, then {args.horizon} imagined, {args.windows} windows")
    horizons = (1, args.horizon)
    results: dict[str, dict[str, float]] = {}
    for game, name in enumerate(names):
        scores = model_zoo.evaluate(model, heldout[game], horizons=horizons, context=args.context,
                                    num_windows=args.windows, speed_batch=0, seed=args.seed).as_dict()
        results[name] = {f"psnr@{k}": scores[f"psnr@{k}"] for k in horizons}
        if name == CAMPUS:
            valid = valid_frame_rates(model, heldout[game], readout, horizons=horizons, context=args.context,
                                      num_windows=args.windows, seed=args.seed)
            results[name].update({f"valid@{k}": v for k, v in valid.items()})
    speed = {f"fps@{b}": imagined_steps_per_second(model, b, seconds=args.speed_seconds, seed=args.seed)
             for b in (1, 64)}
    for row in results.values():
        row.update(speed)
    markdown = table(results, args.horizon)
    print(markdown.replace("fps@", "imagined frames/s, batch "))

    print(f"\n== 5. videos: real | imagined over {args.horizon} steps")
    suffix = ".mp4" if video_backend() else ".gif"
    videos = {}
    for game, name in enumerate(names):
        episode = max(heldout[game], key=len)
        videos[name] = side_by_side(model, episode, args, out / "videos" / f"{name}{suffix}", name)
        print(f"{name}: {videos[name]['frames']} frames -> {videos[name]['path']}")

    (out / "table.md").write_text(markdown + "\n", encoding="utf-8")
    metrics = {"args": dataclasses.asdict(args), "config": dataclasses.asdict(model.config),
               "train_seconds": train_seconds, "results": results, "videos": videos,
               "wall_seconds": time.perf_counter() - started}
    (out / "metrics.json").write_text(json.dumps(plain(metrics), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    print(f"\nwrote {out}/: data/, model/, videos/, table.md, metrics.json in {metrics['wall_seconds']:.0f} s")
