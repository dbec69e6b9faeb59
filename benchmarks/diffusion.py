"""Diffusion world model (``diffusion``): denoising steps against dream quality and speed; one model, two games.

Every model trains for the same wall-clock ``--seconds`` (its steps reported beside), on one
torch thread, from the same seed; the two-game model gets the two one-game models' total.

Steps table, on CampusNav-v0 pixels: the 64-px model (the ``campusnav-pixels`` preset) and a
128-px one (``image_size=128`` frames, ``patch=4``: the same positions per convolution),
each sampled with 1, 3 and 10 Euler steps: the valid-frame rate of its dreams at 1 and 16
steps (``model_zoo.evaluation.valid_frame_rates`` on held-out episodes, read by the semantic
probe ``model_zoo.probe``, loaded from ``--probe`` or trained there; 128-px frames are
averaged 2x2 for it, exactly the 64-px frame for a real one) and imagined frames per second
at batch 1 and 64 on ``--device`` (the CPU by default). ``--compare`` adds ``vae_mdnrnn`` and ``vqvae_transformer``
rows trained for the same seconds.

Games table: ``diffusion`` with ``games=2`` on CampusNav-v0 and CarRacing-v3 together
(``model_zoo.data.Games``: 64-px frames and a game index) against a one-game model of each:
the valid-frame rate on CampusNav-v0 and PSNR on CarRacing-v3 (held-out episodes, both
at 64 pixels).

Targets (PASS/MISS; a benchmark, not a test): the valid-frame rate at 1 and 16 steps of the
64-px model above ``vae_mdnrnn``'s and ``vqvae_transformer``'s (with ``--compare``); the
two-game model within 10 % of each one-game model (valid-frame rate on CampusNav-v0, PSNR
on CarRacing-v3, at 1 and 16 steps).

    python benchmarks/diffusion.py --compare          # hours on a 2-core CPU (--seconds 600)
    python benchmarks/diffusion.py --quick            # a smoke run
    python benchmarks/diffusion.py --seconds 120 --skip-games
    python benchmarks/diffusion.py --compare --device cuda   # the same seconds buy far more updates
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
import tyro

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from campusnav.budgets import BenchmarkRun, Collection, Training, config_overrides
from campusnav.device import resolve_device
from campusnav.harness import write_json, write_results
from model_zoo.data import Episode, Games, collect, load_dataset, load_episodes, split_episodes
from model_zoo.evaluation import imagined_steps_per_second, valid_frame_rates

CAMPUS, CAR = "CampusNav-v0", "CarRacing-v3"
STEPS = (1, 3, 10)
SIZES = {"diffusion 64 px": {"image_size": 64}, "diffusion 128 px": {"image_size": 128, "patch": 4}}
COMPARE = ("vae_mdnrnn", "vqvae_transformer")
TOLERANCE = 0.1  # the two-game model's allowed shortfall against each one-game model
HORIZONS = (1, 16)
DEFAULT_ROW = "diffusion 64 px, steps=3"  # the preset's model at its default steps: the one the targets judge


@dataclass(frozen=True)
class Args(BenchmarkRun, Training, Collection):
    episodes: int = 48
    car_episodes: int = 24
    """CarRacing-v3 episodes (15 % held out)"""
    car_max_steps: int = 100
    """CarRacing-v3 episode length cap"""
    seconds: float = 600.0
    """wall-clock training seconds of every one-game model (the two-game model: twice this)"""
    lr: float = 3e-4
    seq_len: int = 16
    context: int = 4
    """real frames filtered before imagining"""
    windows: int = 64
    """held-out windows scored"""
    speed_seconds: float = 2.0
    """how long each imagination speed is timed"""
    compare: bool = False
    """add vae_mdnrnn and vqvae_transformer trained for the same seconds"""
    skip_games: bool = False
    """skip the two-game part"""
    probe: str = "runs/leaderboard/probe"
    """the semantic probe of CampusNav-v0 frames (trained there at the leaderboard's budget when missing)"""
    config: str = ""
    """config overrides of every model that has the fields, "field=value,..." (--quick: "depth=4,hidden=16")"""
    device: str = "cpu"
    """where every model trains and dreams: cpu, cuda, cuda:N or auto (the probe reads frames on the CPU)"""


def parse_args(argv: list[str] | None = None) -> Args:
    args = tyro.cli(Args, args=argv, description=__doc__)
    if args.seconds <= 0:
        raise SystemExit(f"--seconds must be positive, got {args.seconds}")
    try:
        resolve_device(args.device)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    if args.quick:
        args = dataclasses.replace(args, episodes=6, max_episode_steps=24, car_episodes=3, car_max_steps=24,
                                   seconds=1.0, batch_size=2, seq_len=6, context=2, windows=2, speed_seconds=0.05,
                                   config=args.config or "depth=4,hidden=16")
    return args


# --- data, probe, training ------------------------------------------------------------------


def episodes(env_id: str, args: Args, root: Path, heldout: float, **kwargs: Any) -> tuple[list[Episode], ...]:
    """Random-action episodes of ``env_id`` (train, held-out), collected into ``root`` on the first call."""
    name = "-".join(f"{k}{v}" for k, v in sorted(kwargs.get("env_kwargs", {}).items()))
    dataset_id = f"bench/{env_id.lower()}{name.replace('_', '')}-v0"
    try:
        dataset = load_dataset(dataset_id, data_path=root)
    except FileNotFoundError:
        dataset = collect(env_id, num_episodes=kwargs.pop("num_episodes", args.episodes), seed=args.seed,
                          max_episode_steps=kwargs.pop("max_episode_steps", args.max_episode_steps), data_path=root,
                          dataset_id=dataset_id, progress=False, **kwargs)
    return split_episodes(load_episodes(dataset), heldout, seed=args.seed)


def semantic_probe(args: Args, root: Path):
    """The probe in ``--probe``, trained there first at the leaderboard's budget (under --quick: a tiny one)."""
    from campusnav.leaderboard import QUICK, Budget
    from campusnav.leaderboard.data import probe_at

    return probe_at(root / "probe", QUICK) if args.quick else probe_at(Path(args.probe), Budget())


def train(model_id: str, spaces: tuple[gym.Space, gym.Space], data: list[Episode], args: Args, seconds: float,
          **overrides: Any) -> tuple[model_zoo.WorldModel, dict[str, float]]:
    """A fresh model (the ``campusnav-pixels`` preset, then ``overrides``) fitted for ``seconds`` of wall clock."""
    torch.manual_seed(args.seed)
    config = {k: v for k, v in config_overrides(args.config).items() if k in {f.name for f in dataclasses.fields(
        model_zoo.registry.spec(model_id).load_class().Config)}}
    model = model_zoo.make(model_id, *spaces, preset="campusnav-pixels", **{**config, **overrides})
    started, done = time.perf_counter(), [0]

    def in_time(step: int, metrics: dict[str, float]) -> bool:
        done[0] = step
        return time.perf_counter() - started < seconds

    model_zoo.fit(model, data, steps=10**9, seed=args.seed, progress=False, log_every=10**9, callback=in_time,
                  device=resolve_device(args.device), **args.fit_kwargs())
    model.eval()
    return model, {"train_s": time.perf_counter() - started, "train_steps": done[0]}


def dream_scores(model: model_zoo.WorldModel, heldout: list[Episode], readout: Any, args: Args) -> dict[str, float]:
    """Valid-frame rates at 1 and 16 steps and imagined frames per second at batch 1 and 64."""
    valid = valid_frame_rates(model, heldout, readout, horizons=HORIZONS, context=args.context,
                              num_windows=args.windows, seed=args.seed)
    row = {f"valid@{k}": v for k, v in valid.items()}
    for batch in (1, 64):
        row[f"fps@{batch}"] = imagined_steps_per_second(model, batch, seconds=args.speed_seconds, seed=args.seed)
    return row


def psnr(model: model_zoo.WorldModel, heldout: list[Episode], args: Args) -> dict[str, float]:
    result = model_zoo.evaluate(model, heldout, horizons=HORIZONS, context=args.context, num_windows=args.windows,
                                speed_batch=0, seed=args.seed).as_dict()
    return {f"psnr@{k}": result[f"psnr@{k}"] for k in HORIZONS}


# --- the parts -------------------------------------------------------------------------------


def campus_episodes(args: Args, root: Path, image_size: int) -> tuple[list[Episode], ...]:
    """CampusNav-v0 pixel episodes from the training contexts at ``image_size`` (train, held-out)."""
    env_kwargs = {"obs_mode": "pixels", "image_size": image_size}
    return episodes(CAMPUS, args, root, 0.1, split="train", num_envs=4, env_kwargs=env_kwargs)


def steps_rows(args: Args, root: Path, probe: Any) -> dict[str, dict[str, float]]:
    """The steps table (and, with --compare, the other models' rows): name -> metrics."""
    rows: dict[str, dict[str, float]] = {}
    for name, size in SIZES.items():
        train_set, heldout = campus_episodes(args, root, size["image_size"])
        env = gym.make(CAMPUS, obs_mode="pixels", image_size=size["image_size"])
        model, record = train("diffusion", (env.observation_space, env.action_space), train_set, args, args.seconds,
                              **size)
        readout = probe.pooled_readout(size["image_size"] // 64)
        for steps in STEPS:
            model.config = dataclasses.replace(model.config, steps=steps)
            rows[f"{name}, steps={steps}"] = {**dream_scores(model, heldout, readout, args), **record}
            print(f"{name}, steps={steps}: {rows[f'{name}, steps={steps}']}")
        if args.compare and size["image_size"] == 64:
            for model_id in COMPARE:
                other, record = train(model_id, (env.observation_space, env.action_space), train_set, args,
                                      args.seconds)
                rows[model_id] = {**dream_scores(other, heldout, readout, args), **record}
                print(f"{model_id}: {rows[model_id]}")
    return rows


def games_rows(args: Args, root: Path, probe: Any, campus_row: dict[str, float]) -> dict[str, dict[str, float]]:
    """The games table: one-game models of CampusNav-v0 (``campus_row``: the 64-px model's at its default steps)
    and CarRacing-v3 against one two-game model."""
    campus_spaces = gym.make(CAMPUS, obs_mode="pixels", image_size=64)
    car_spaces = gym.make(CAR)
    campus = campus_episodes(args, root, 64)  # already collected: the 64-px model's episodes
    car = episodes(CAR, args, root, 0.15, num_episodes=args.car_episodes, max_episode_steps=args.car_max_steps,
                   num_envs=2)
    spaces = [(env.observation_space, env.action_space) for env in (campus_spaces, car_spaces)]
    car_alone, games = Games(spaces[1:]), Games(spaces)  # the one-game car model reads 64-px frames too
    readout = probe.pooled_readout(1)
    rows: dict[str, dict[str, float]] = {f"one game: {CAMPUS}": campus_row}
    one, record = train("diffusion", (car_alone.observation_space, car_alone.action_space),
                        car_alone.episodes([car[0]]), args, args.seconds)
    rows[f"one game: {CAR}"] = {**psnr(one, car_alone.episodes([car[1]]), args), **record}
    both, record = train("diffusion", (games.observation_space, games.action_space),
                         games.episodes([campus[0], car[0]]), args, 2 * args.seconds, games=2)
    rows["two games"] = {**dream_scores(both, games.episodes([campus[1], []]), readout, args),
                         **psnr(both, games.episodes([[], car[1]]), args), **record}
    for name, row in rows.items():
        print(f"{name}: {row}")
    return rows


# --- tables and targets --------------------------------------------------------------------------


def table(rows: dict[str, dict[str, float]], keys: list[str]) -> str:
    lines = ["| model | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, row in rows.items():
        cells = [("-" if k not in row else f"{row[k]:,.0f}" if k == "train_steps" else f"{row[k]:,.1f}"
                  if k.startswith(("fps", "train")) else f"{row[k]:.3f}") for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets(steps: dict[str, dict[str, float]], games: dict[str, dict[str, float]] | None) -> list[str]:
    """The issue's targets as PASS/MISS lines."""
    lines = []

    def check(ok: bool, text: str) -> None:
        lines.append(("PASS  " if ok else "MISS  ") + text)

    ours = steps[DEFAULT_ROW]
    for model_id in COMPARE:
        if model_id in steps:
            other = steps[model_id]
            for k in HORIZONS:
                check(ours[f"valid@{k}"] > other[f"valid@{k}"], f"valid-frame rate at {k} steps above {model_id}'s "
                      f"at the same training time: {ours[f'valid@{k}']:.3f} vs {other[f'valid@{k}']:.3f} "
                      f"({ours['train_s']:.0f} s vs {other['train_s']:.0f} s)")
    if games:
        both = games["two games"]
        for one, key in ((games[f"one game: {CAMPUS}"], "valid"), (games[f"one game: {CAR}"], "psnr")):
            game = CAMPUS if key == "valid" else CAR
            for k in HORIZONS:
                a, b = both[f"{key}@{k}"], one[f"{key}@{k}"]
                check(a >= (1 - TOLERANCE) * b, f"two-game model within {TOLERANCE:.0%} of the one-game model on "
                      f"{game} ({key}@{k}): {a:.3f} vs {b:.3f}")
    return lines


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads or 1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            probe = semantic_probe(args, root)
            steps = steps_rows(args, root, probe)
            games = None if args.skip_games else games_rows(args, root, probe, steps[DEFAULT_ROW])
    finally:
        torch.set_num_threads(threads)
    keys = ["valid@1", "valid@16", "fps@1", "fps@64", "train_s", "train_steps"]
    markdown = f"Denoising steps (training: {args.seconds:.0f} s of wall clock each, one thread):\n\n"
    markdown += table(steps, keys)
    if games:
        markdown += (f"\n\nOne model, two games (the two-game model: {2 * args.seconds:.0f} s):\n\n"
                     + table(games, ["valid@1", "valid@16", "psnr@1", "psnr@16", "train_s", "train_steps"]))
    checks = targets(steps, games)
    markdown += "\n\n" + "\n".join(f"- {line}" for line in checks)
    print("\n" + markdown)
    report = {"args": asdict(args), "steps": steps, "games": games, "targets": checks}
    if args.json:
        write_json(args.json, report)
    if not args.quick:
        write_results("diffusion", markdown, report)
    return report


if __name__ == "__main__":
    main()
