"""The ``campusnav`` command line: one subcommand per job, dispatched through a table.

>>> parse_value("true"), parse_value("3"), parse_value("9.5"), parse_value("rainy")
(True, 3, 9.5, 'rainy')
>>> parse_assignment("weather=rainy")
('weather', 'rainy')
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tyro

from campusnav.device import DEVICE_HELP, PRECISION_HELP, resolve_device
from campusnav.threads import use_threads

if TYPE_CHECKING:
    from model_zoo.distributed import World

__all__ = ["COMMANDS", "Command", "build_parser", "main", "parse_args", "parse_assignment", "parse_value"]


def parse_value(text: str) -> bool | int | float | str:
    """A typed value from the command line: true/false -> bool, numbers -> int or float, else str."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def parse_assignment(text: str) -> tuple[str, bool | int | float | str]:
    """``KEY=VALUE`` -> ``(key, typed value)``; an argparse type, so a bad one is a usage error."""
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key or not value:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. weather=rainy), got {text!r}")
    return key, parse_value(value)


# --- play -----------------------------------------------------------------


def add_play_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=None, help="seed of the first episode (default: random)")
    parser.add_argument("--split", choices=("all", "train", "heldout"), default="all",
                        help="which contexts are sampled (default: all)")
    parser.add_argument("--semester", choices=("fall", "spring"), default=None, help="pin the semester")
    parser.add_argument("--layout", default=None, metavar="PATH", help="another campus layout file")
    parser.add_argument(
        "--do", type=parse_assignment, action="append", default=[], metavar="KEY=VALUE",
        help="intervene on a causal variable in every episode, e.g. --do weather=snowy --do gameday=true "
             "(repeatable; variables: day, hour, semester, weather, gameday, road_closure, crowd)",
    )
    parser.add_argument("--fps", type=int, default=30, help="frame-rate cap of the window (default: 30)")
    parser.add_argument(
        "--dream", default=None, metavar="NAME_OR_FOLDER",
        help="play inside a world model's dream, reality beside it: a pretrained name (e.g. "
             "rssm/campusnav-state-v0) or a model folder written by model.save; G toggles gameday, C cycles "
             "the weather in both worlds",
    )


def check_play_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Turns the ``--do`` pairs into a dict and validates it against the causal model."""
    from campus_env.causal import validate_do

    do: dict[str, Any] = {}
    for key, value in args.do:
        if key in do:
            parser.error(f"argument --do: {key} is given twice")
        do[key] = value
    try:
        validate_do(do)
    except ValueError as err:
        parser.error(f"argument --do: {err}")
    if args.dream is not None:
        check_model_source(parser, "--dream", args.dream)
        if args.layout is not None:
            parser.error("argument --layout: not allowed with --dream: a world model knows only the campus it "
                         "was trained on")
    if args.layout is not None:
        from campus_env.layout import LayoutError, load_layout

        try:
            load_layout(args.layout)
        except LayoutError as err:
            parser.error(f"argument --layout: {err}")
    args.do = do


def run_play(args: argparse.Namespace) -> int:
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    if args.dream is not None:  # reality and the model's dream side by side
        from campusnav import play_dream

        try:
            model = load_model(args.dream)
            play_dream.check_model(model)
        except ValueError as err:  # a bad checkpoint, or a model of another env
            print(f"campusnav play: {err}", file=sys.stderr)
            return 2
    try:
        if args.dream is None:
            from campus_env.play import play

            result = play(seed=args.seed, do=args.do, split=args.split, semester=args.semester,
                          layout=args.layout, fps=args.fps)
            summary = f"{len(result.episode_lengths)} episode(s), {result.steps} steps, {result.goals} goal(s) reached"
        else:
            dreamed = play_dream.play_dream(model, seed=args.seed, do=args.do, split=args.split,
                                            semester=args.semester, fps=args.fps)
            summary = f"{dreamed.episodes} episode(s), {dreamed.steps} steps in reality and in {model.model_id}'s dream"
    except pygame.error as err:
        print(f"campusnav play: cannot open a window: {err}", file=sys.stderr)
        return 1
    print(summary)
    return 0


# --- bench ----------------------------------------------------------------


def check_bench_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    from campusnav.bench import check_config

    try:
        check_config(args.options)
    except ValueError as err:
        parser.error(str(err))


def run_bench(args: argparse.Namespace) -> int:
    from campusnav.bench import run_bench

    return run_bench(args.options)


# --- collect --------------------------------------------------------------


def add_collect_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default="CampusNav-v0", help="Gymnasium env id (default: CampusNav-v0)")
    parser.add_argument("--dataset-id", default="campusnav/random-v0", help="Minari id, NAMESPACE/NAME-vN")
    parser.add_argument("--episodes", type=int, default=None, help="episodes to collect (natural coverage)")
    parser.add_argument("--num-envs", type=int, default=8, help="envs stepped together (default: 8)")
    parser.add_argument("--coverage", choices=("natural", "grid"), default="natural",
                        help="natural contexts, or every day x weather x gameday x semester cell (CampusNav)")
    parser.add_argument("--episodes-per-cell", type=int, default=1, help="episodes per cell of the grid")
    parser.add_argument("--split", choices=("all", "train", "heldout"), default="all", help="contexts sampled")
    parser.add_argument("--obs-mode", choices=("dict", "pixels", "state"), default=None,
                        help="CampusNav observation mode (default: the env's)")
    parser.add_argument("--max-episode-steps", type=int, default=None, help="cut episodes at this length")
    parser.add_argument("--seed", type=int, default=0, help="collection seed")
    parser.add_argument("--data-path", default=None, help="Minari datasets folder (default: MINARI_DATASETS_PATH)")
    parser.add_argument("--workers", type=int, default=1,
                        help="Ray tasks that step shards of the envs; the dataset is the same (default: 1, no Ray)")
    parser.add_argument("--address", default=None,
                        help="a Ray cluster to run on, e.g. auto or HOST:6379 (default: a local Ray)")


def check_collect_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.coverage == "natural" and args.episodes is None:
        parser.error("--episodes is required with --coverage natural")
    for name in ("episodes", "num_envs", "episodes_per_cell", "max_episode_steps", "workers"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"argument --{name.replace('_', '-')}: must be a positive integer, got {value}")
    if args.address is not None and args.workers == 1:
        parser.error("argument --address: runs on a Ray cluster; give --workers more than 1")
    if args.workers > 1:
        from model_zoo.parallel import INSTALL_HINT, ray_available

        if not ray_available():
            parser.error(f"argument --workers: more than 1 needs Ray: {INSTALL_HINT}")


def run_collect(args: argparse.Namespace) -> int:
    import campus_env  # noqa: F401  (registers CampusNav-v0: model_zoo.data imports no env package)
    from model_zoo.data import collect

    env_kwargs = {"obs_mode": args.obs_mode} if args.obs_mode else {}
    dataset = collect(
        args.env, num_episodes=args.episodes, num_envs=args.num_envs, coverage=args.coverage,
        episodes_per_cell=args.episodes_per_cell, split=args.split, seed=args.seed, dataset_id=args.dataset_id,
        env_kwargs=env_kwargs, max_episode_steps=args.max_episode_steps, data_path=args.data_path,
        workers=args.workers, address=args.address,
    )
    print(f"wrote {args.dataset_id}: {dataset.total_episodes} episodes, {dataset.total_steps} steps")
    return 0


# --- train ----------------------------------------------------------------


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a model id (see model_zoo.list_models())")
    parser.add_argument("--dataset-id", default="campusnav/random-v0", help="Minari dataset to train on")
    parser.add_argument("--data-path", default=None, help="Minari datasets folder (default: MINARI_DATASETS_PATH)")
    parser.add_argument("--steps", type=int, default=2000, help="gradient steps (default: 2000)")
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per batch (default: 16)")
    parser.add_argument("--seq-len", type=int, default=32, help="steps per sequence (default: 32)")
    parser.add_argument("--preset", default=None, metavar="NAME",
                        help="the model's tuned settings for a kind of data (config and learning rate), "
                             "e.g. campusnav-state or campusnav-pixels")
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: the preset's, or 3e-4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampler and the weights")
    parser.add_argument("--run-dir", default=None, help="metrics and checkpoints (default: runs/MODEL)")
    parser.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints")
    parser.add_argument("--holdout", type=float, default=0.1, help="fraction of episodes kept for evaluation")
    parser.add_argument("--no-resume", action="store_true", help="start over even if run-dir has a checkpoint")
    parser.add_argument("--set", type=parse_assignment, action="append", default=[], metavar="FIELD=VALUE",
                        help="override a config field of the model, e.g. --set hidden=128 (repeatable)")
    parser.add_argument("--device", default="cpu", help=DEVICE_HELP)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help=PRECISION_HELP)


def check_train_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    from model_zoo import list_models, list_presets

    if args.model not in list_models():
        parser.error(f"argument model: unknown model {args.model!r}; choose from {', '.join(list_models())}")
    if args.preset is not None and args.preset not in list_presets(args.model):
        parser.error(f"argument --preset: {args.model} has no preset {args.preset!r}; "
                     f"choose from {', '.join(list_presets(args.model))}")
    if not 0.0 <= args.holdout < 1.0:
        parser.error(f"argument --holdout: must be in [0, 1), got {args.holdout}")
    processes = int(os.environ.get("WORLD_SIZE", "1"))  # torchrun's; the global batch is split over them
    if args.batch_size < 1 or args.batch_size % processes:
        parser.error(f"argument --batch-size: must be a positive multiple of the {processes} process(es), "
                     f"got {args.batch_size}")
    check_device(parser, args.device)
    args.overrides = dict(args.set)


def run_train(args: argparse.Namespace) -> int:
    """Trains on one process, or data-parallel on each of the processes torchrun started (rank 0 writes)."""
    from model_zoo import distributed

    world = distributed.init()  # a no-op unless torchrun started this process
    try:
        return _train(args, world)
    finally:
        distributed.shutdown()


def _train(args: argparse.Namespace, world: World) -> int:
    import torch

    import model_zoo
    from model_zoo import distributed
    from model_zoo.data import SequenceSampler, load_dataset, load_episodes, split_episodes

    dataset = load_dataset(args.dataset_id, data_path=args.data_path)
    episodes = load_episodes(dataset)
    train, heldout = split_episodes(episodes, args.holdout, seed=args.seed) if args.holdout else (episodes, [])
    torch.manual_seed(args.seed)  # the initial weights: the same in every process for one seed
    model = model_zoo.make(args.model, dataset.observation_space, dataset.action_space, preset=args.preset,
                           **args.overrides)
    lr = args.lr if args.lr is not None else model_zoo.preset(args.model, args.preset).lr if args.preset else 3e-4
    run_dir = Path(args.run_dir or Path("runs") / args.model)
    # under torchrun each rank draws its shard of the global batch with a seed of its own
    sampler = SequenceSampler(train, args.seq_len, distributed.shard_batch_size(args.batch_size, world.size),
                              seed=distributed.rank_seed(args.seed, world.rank))
    model_zoo.fit(model, sampler, steps=args.steps, lr=lr, seed=args.seed, device=resolve_device(args.device),
                  precision=args.precision, run_dir=run_dir, checkpoint_every=args.checkpoint_every,
                  resume=not args.no_resume)
    if not world.is_main:
        return 0
    print(f"checkpoint: {run_dir / 'checkpoint'}   metrics: {run_dir / 'metrics.csv'}")
    if heldout:
        result = model_zoo.evaluate(model, heldout)
        print(model_zoo.format_table({args.model: result}))
    return 0


# --- dream ----------------------------------------------------------------


def check_model_source(parser: argparse.ArgumentParser, argument: str, source: str) -> None:
    """Refuses a ``source`` that is neither a checkpoint folder nor a pretrained name."""
    from model_zoo import list_pretrained

    if (Path(source) / "config.json").is_file() or source in list_pretrained():
        return
    parser.error(f"argument {argument}: {source!r} is neither a model folder (config.json and model.safetensors, as "
                 f"written by model.save or campusnav train) nor a pretrained model; pretrained: "
                 f"{', '.join(list_pretrained()) or 'none'}")


def check_device(parser: argparse.ArgumentParser, name: str) -> None:
    """Refuses a ``--device`` that is no device name or names a GPU this machine lacks."""
    try:
        resolve_device(name)
    except ValueError as err:
        parser.error(f"argument {err}")


def load_model(source: str):
    """The model of a checkpoint folder or of a pretrained name, in eval mode."""
    import model_zoo

    if (Path(source) / "config.json").is_file():
        return model_zoo.load(source).eval()
    return model_zoo.load_pretrained(source)


def add_dream_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a model folder written by model.save (e.g. runs/mlp/checkpoint) or "
                                           "a pretrained name (e.g. rssm/campusnav-state-v0)")
    parser.add_argument("--out", default="dream_vs_reality.gif", help="the side-by-side video (.gif or .mp4)")
    parser.add_argument("--steps", type=int, default=60, help="steps in reality and in the dream (default: 60)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the real reset and the random actions")
    parser.add_argument("--fps", type=int, default=10, help="frames per second of the video (default: 10)")
    parser.add_argument(
        "--do", type=parse_assignment, action="append", default=[], metavar="KEY=VALUE",
        help="intervene in both worlds, e.g. --do gameday=true (a causal model is needed for the dream)",
    )
    parser.add_argument("--device", default="cpu", help=DEVICE_HELP)


def check_dream_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    from campus_env.causal import validate_do

    for name in ("steps", "fps"):
        if getattr(args, name) < 1:
            parser.error(f"argument --{name}: must be a positive integer, got {getattr(args, name)}")
    check_model_source(parser, "checkpoint", args.checkpoint)
    check_device(parser, args.device)
    if Path(args.out).suffix.lower() not in (".gif", ".mp4"):
        parser.error(f"argument --out: write a .gif or .mp4, got {args.out!r}")
    args.do = dict(args.do)
    try:
        validate_do(args.do)
    except ValueError as err:
        parser.error(f"argument --do: {err}")


def run_dream(args: argparse.Namespace) -> int:
    """Loads a trained model, plays seeded random actions in CampusNav-v0 and in its dream side by side."""
    import gymnasium as gym
    import numpy as np

    from campus_env.env import env_kwargs_for
    from wrappers.recorder import record_side_by_side

    model = load_model(args.checkpoint).to(resolve_device(args.device))
    try:
        model.check_do(args.do)
        env_kwargs = env_kwargs_for(model.observation_space)
    except ValueError as err:
        print(f"campusnav dream: {err}", file=sys.stderr)
        return 2
    env = gym.make("CampusNav-v0", **env_kwargs)
    actions = np.random.default_rng(args.seed).integers(0, env.action_space.n, args.steps)
    try:
        result = record_side_by_side(env, model, actions, args.out, seed=args.seed, steps=args.steps, fps=args.fps,
                                     do=args.do or None)
    finally:
        env.close()
    errors = np.asarray(result["errors"], dtype=np.float64)
    print(f"{model.model_id} dreaming CampusNav-v0 ({', '.join(f'{k}={v}' for k, v in env_kwargs.items())}), "
          f"{len(errors)} random actions, seed {args.seed}")
    for step in sorted({1, 4, 16, len(errors)} & set(range(1, len(errors) + 1))):
        print(f"  observation MSE after {step:3d} steps: {errors[step - 1]:.4g}")
    print(f"video: {result['path']}")
    return 0


# --- demo -----------------------------------------------------------------


def check_demo_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    from campusnav.demo import check_config, config_from_args
    from model_zoo import list_models

    config = config_from_args(args.options)
    if config.model not in list_models():
        parser.error(f"argument --model: unknown model {config.model!r}; choose from {', '.join(list_models())}")
    if config.obs_mode not in ("dict", "pixels", "state"):
        parser.error(f"argument --obs-mode: choose from dict, pixels, state; got {config.obs_mode!r}")
    try:
        check_config(config)
    except ValueError as error:
        parser.error(str(error))
    for name in ("episodes", "max_episode_steps", "train_steps", "batch_size", "seq_len", "generations",
                 "popsize", "episodes_per_member", "eval_episodes", "video_steps"):
        if getattr(config, name) < 1:
            parser.error(f"argument --{name.replace('_', '-')}: must be a positive integer")


def run_demo(args: argparse.Namespace) -> int:
    from campusnav.demo import config_from_args, run_demo

    run_demo(config_from_args(args.options))
    return 0


# --- mbrl -----------------------------------------------------------------


def check_mbrl_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    from campusnav.mbrl import check_args

    try:
        check_args(args.options)
    except ValueError as error:
        parser.error(str(error))
    out = Path(args.options.out)
    if not args.options.resume and ((out / "curve.json").exists() or (out / "data").exists()):
        parser.error(f"--out: {out} already holds a loop run; give another --out, remove it or --resume")


def run_mbrl(args: argparse.Namespace) -> int:
    from campusnav.mbrl import run_mbrl, tiny

    options = tiny(args.options) if args.options.tiny else args.options
    try:
        result = run_mbrl(options)
    except ValueError as error:
        if not options.resume or "resume" not in str(error):
            raise
        print(f"campusnav mbrl: error: --resume: {error}", file=sys.stderr)  # another config, no saved state
        return 2
    for row in result.curve:
        print(f"iteration {row['iteration']}: {row['real_steps']:>7,} real steps, return {row['return_mean']:+.3f}, "
              f"success {row['success_rate']:.2f}")
    print(f"random policy: return {result.random['return_mean']:+.3f}, success {result.random['success_rate']:.2f}")
    print(f"wrote {Path(options.out) / 'curve.json'} and curve.png")
    return 0


# --- pretrain -------------------------------------------------------------


def check_pretrain_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    from model_zoo import list_models

    options = args.options
    if not (Path(options.work) / "cells").is_dir():
        parser.error(f"--work: {options.work!r} holds no leaderboard run (no cells/ folder); run "
                     "python benchmarks/leaderboard.py --work ... first")
    if unknown := [m for m in options.models if m not in list_models()]:
        parser.error(f"--models: unknown {unknown}; choose from {', '.join(list_models())}")


def run_pretrain(args: argparse.Namespace) -> int:
    from campusnav.pretrain import describe, export
    from model_zoo.pretrained import PRETRAINED_ROOT

    written = export(args.options)
    if not written:
        print(f"campusnav pretrain: no finished cell of seed {args.options.seed} in {args.options.work}",
              file=sys.stderr)
        return 1
    print(describe(args.options.out or PRETRAINED_ROOT))
    return 0


# --- the table ------------------------------------------------------------

Checker = Callable[[argparse.ArgumentParser, argparse.Namespace], None]
Runner = Callable[[argparse.Namespace], int]


def _demo_options() -> type:
    from campusnav.demo import DemoArgs

    return DemoArgs


def _mbrl_options() -> type:
    from campusnav.mbrl import MBRLArgs

    return MBRLArgs


def _pretrain_options() -> type:
    from campusnav.pretrain import PretrainArgs

    return PretrainArgs


def _bench_options() -> type:
    from campusnav.bench import BenchConfig

    return BenchConfig


@dataclass(frozen=True)
class Command:
    """One subcommand: its help line, its options, a check of the parsed options, and what runs it.

    ``options`` is either a function adding argparse options, or (``dataclass=True``) a function
    returning the dataclass whose fields, with their docstrings as help, tyro turns into options.
    """

    help: str
    options: Callable[..., Any]
    check: Checker
    run: Runner
    dataclass: bool = False


COMMANDS: dict[str, Command] = {
    "demo": Command("the whole pipeline: collect, train a world model, a controller in the dream, a report",
                    _demo_options, check_demo_arguments, run_demo, dataclass=True),
    "play": Command("play CampusNav-v0 with the keyboard in a pygame window",
                    add_play_arguments, check_play_arguments, run_play),
    "collect": Command("collect episodes from an env into a Minari dataset",
                       add_collect_arguments, check_collect_arguments, run_collect),
    "train": Command("train a world model of the zoo on a Minari dataset",
                     add_train_arguments, check_train_arguments, run_train),
    "dream": Command("replay random actions in CampusNav-v0 and in a trained or pretrained model's dream, "
                     "side by side",
                     add_dream_arguments, check_dream_arguments, run_dream),
    "mbrl": Command("model-based RL: collect real episodes, fit a world model, train PPO/DQN/CMA-ES in its dream",
                    _mbrl_options, check_mbrl_arguments, run_mbrl, dataclass=True),
    "pretrain": Command("copy a leaderboard run's trained models into the package as pretrained weights with cards",
                        _pretrain_options, check_pretrain_arguments, run_pretrain, dataclass=True),
    "bench": Command("measure environment steps per second (campusnav.bench)",
                     _bench_options, check_bench_arguments, run_bench, dataclass=True),
}


THREADS_HELP = "torch threads per process (default: one, the fastest for the zoo's small networks)"


def build_parser() -> argparse.ArgumentParser:
    """The ``campusnav`` parser with one subparser per entry of ``COMMANDS``."""
    return _build()[0]


def _build() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="campusnav",
        description="CampusNav-v0, a causal campus navigation environment, and a zoo of world models.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    subparsers = {}
    for name, command in COMMANDS.items():
        subparsers[name] = commands.add_parser(name, help=command.help, description=command.help)
        if command.dataclass:  # tyro parses these; argparse keeps the rest of the line for it
            subparsers[name].add_argument("options", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        else:
            command.options(subparsers[name])
            subparsers[name].add_argument("--threads", type=int, default=None, metavar="N", help=THREADS_HELP)
    return parser, subparsers


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parses and checks the arguments; exits with status 2 and a usage message when they are bad."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, subparsers = _build()
    command = COMMANDS.get(argv[0]) if argv else None
    if command is not None and command.dataclass:
        options = tyro.cli(command.options(), args=argv[1:], prog=f"campusnav {argv[0]}", description=command.help)
        args = argparse.Namespace(command=argv[0], options=options)
    else:
        args = parser.parse_args(argv)
    if command is not None and command.dataclass:  # the field of the command's dataclass
        args.threads = getattr(args.options, "threads", None)
    if args.threads is not None and args.threads < 1:
        subparsers[args.command].error(f"argument --threads: must be a positive integer, got {args.threads}")
    COMMANDS[args.command].check(subparsers[args.command], args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``campusnav`` console script."""
    args = parse_args(argv)
    use_threads(args.threads)
    return COMMANDS[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
