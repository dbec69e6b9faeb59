"""Steps per second of the dream environments, and of SB3 PPO learning in them (issue 4, "Throughput").

One run measures, in one table:

- ``wrappers.DreamVectorEnv`` in ``obs="features"`` mode at 1024 envs, for every
  registered zoo model on CampusNav-v0's dict observations (64x64x3 image +
  state + causal vectors): imagined steps per second through the whole
  Gymnasium ``step`` (``imagine``, ``features``, guarding, infos, autoresets from
  the pool of real starts);
- the same in ``obs="decoded"`` mode, in the real observation space: dict
  observations (the decoded 64x64x3 image included) for the image models, the
  flat ``obs_mode="state"`` vector for ``mlp`` and ``mlp_ensemble``;
- CampusNav-v0's native vector env at 1024 envs (state and dict), the reality
  the dreams stand in for;
- SB3 PPO frames per second: ``PPO.learn(total_timesteps)`` with the same
  settings on ``to_sb3`` of the native vector env (state), on ``to_sb3`` of the
  decoded ``mlp`` dream (state), and on ``to_sb3`` of the ``vae_mdnrnn`` dream in
  features mode. Frames count once per env; the time includes PPO's updates.

Models are untrained (freshly initialised, seeded): throughput does not depend
on the weights, only on the architecture (a trained model's dreams end at other
steps, so autoresets come at another rate). Env rows: random actions drawn up
front, timed in ``--repeats`` windows of ``--seconds`` after a warm-up, the best
window counts (the machine may be shared). Torch runs ``--threads`` threads
(default 1, usually the fastest for these small networks on a shared CPU). It
prints a markdown table and the target as a PASS/MISS line; it is a benchmark,
not a test, so a miss does not fail.

    python benchmarks/dream_throughput.py              # about a minute
    python benchmarks/dream_throughput.py --quick      # about 20 s
    python benchmarks/dream_throughput.py --models vae_mdnrnn --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import stable_baselines3
import torch
from stable_baselines3 import PPO

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from wrappers import DreamVectorEnv, to_sb3

ENV_ID = "CampusNav-v0"
TARGET_ID = "vae_mdnrnn"
TARGET_ENVS = 1024
TARGET_STEPS_PER_S = 50_000
DECODED_OBS = {"mlp": "state", "mlp_ensemble": "state"}  # decoded-mode observations; the others: "dict"
PPO_SETTINGS = dict(n_steps=128, batch_size=512, n_epochs=4, learning_rate=3e-4, gamma=0.99)
ACTION_BLOCK = 64  # steps of random actions drawn up front


@dataclass
class Row:
    """One measured configuration."""

    section: str  # "dream features", "dream decoded", "native" or "PPO"
    name: str
    model: str | None  # zoo id; None for the native env
    obs: str  # what the learner sees: "dict", "state" or "features (D)"
    num_envs: int
    steps_per_s: float
    params: int | None = None


def make_model(model_id: str, obs_mode: str) -> model_zoo.WorldModel:
    """An untrained, seeded ``model_id`` for CampusNav-v0 observations of ``obs_mode``."""
    env = gym.make(ENV_ID, obs_mode=obs_mode)
    torch.manual_seed(0)
    model = model_zoo.make(model_id, env.observation_space, env.action_space).eval()
    env.close()
    return model


def time_vector(envs: gym.vector.VectorEnv, seconds: float, warmup: float, repeats: int, seed: int = 0) -> float:
    """Best env steps/s of ``envs.step`` with random actions over ``repeats`` windows of ``seconds``."""
    n = envs.num_envs
    actions = np.random.default_rng(seed).integers(0, int(envs.single_action_space.n), (ACTION_BLOCK, n))
    envs.reset(seed=seed)
    clock = time.perf_counter
    best, i = 0.0, 0
    for window in range(repeats + 1):  # window 0 is the warm-up
        budget = warmup if window == 0 else seconds
        calls, start = 0, clock()
        while True:
            envs.step(actions[i])
            i = (i + 1) % ACTION_BLOCK
            calls += 1
            elapsed = clock() - start
            if elapsed >= budget:
                break
        if window > 0:
            best = max(best, calls * n / elapsed)
    return best


def time_ppo(venv, policy: str, timesteps: int, seed: int = 0) -> float:
    """Frames per second of ``PPO.learn(timesteps)`` on an SB3 VecEnv (after one warm-up rollout)."""
    agent = PPO(policy, venv, seed=seed, device="cpu", verbose=0, **PPO_SETTINGS)
    agent.learn(total_timesteps=PPO_SETTINGS["n_steps"] * venv.num_envs)  # warm-up: one rollout and update
    start = time.perf_counter()
    agent.learn(total_timesteps=timesteps, reset_num_timesteps=True)
    elapsed = time.perf_counter() - start
    venv.close()
    return agent.num_timesteps / elapsed


def _fail(model_id: str, what: str, error: Exception) -> str:
    return f"{model_id}: {what} skipped ({type(error).__name__}: {str(error).splitlines()[0][:120]})"


def measure(
    models: Sequence[str],
    num_envs: int,
    seconds: float,
    warmup: float,
    repeats: int,
    ppo_envs: int,
    ppo_timesteps: int,
    log: Callable[[str], None] = print,
) -> tuple[list[Row], list[str]]:
    """Every row of the table; returns them and notes on what could not be measured."""
    rows: list[Row] = []
    notes: list[str] = []

    def add(row: Row) -> None:
        rows.append(row)
        log(f"  {row.section:<15} {row.name:<52} {row.steps_per_s:>12,.0f} steps/s")

    for mode in ("features", "decoded"):
        for model_id in models:
            obs_mode = "dict" if mode == "features" else DECODED_OBS.get(model_id, "dict")
            try:
                model = make_model(model_id, obs_mode)
                envs = DreamVectorEnv(model, num_envs, ENV_ID, obs=mode, env_kwargs={"obs_mode": obs_mode})
                value = time_vector(envs, seconds, warmup, repeats)
                envs.close()
            except Exception as error:  # a model being written, or one that does not take these observations
                notes.append(_fail(model_id, f"{mode} mode", error))
                log(f"  {notes[-1]}")
                continue
            obs = f"features ({envs.single_observation_space.shape[0]})" if mode == "features" else obs_mode
            add(Row(f"dream {mode}", f"DreamVectorEnv({model_id}), {obs_mode} env", model_id, obs, num_envs, value,
                    sum(p.numel() for p in model.parameters())))
    for obs_mode in ("state", "dict"):
        envs = gym.make_vec(ENV_ID, num_envs=num_envs, obs_mode=obs_mode)
        add(Row("native", f"gym.make_vec({ENV_ID}), {obs_mode}", None, obs_mode, num_envs,
                time_vector(envs, seconds, warmup, repeats)))
        envs.close()

    ppo_rows: list[tuple[str, str | None, str, Callable[[], Any]]] = [
        (f"PPO on to_sb3(gym.make_vec({ENV_ID}))", None, "state",
         lambda: gym.make_vec(ENV_ID, num_envs=ppo_envs, obs_mode="state")),
    ]
    if "mlp" in models:
        ppo_rows.append(("PPO on to_sb3(DreamVectorEnv(mlp)), decoded", "mlp", "state",
                         lambda: DreamVectorEnv(make_model("mlp", "state"), ppo_envs, ENV_ID, obs="decoded",
                                                env_kwargs={"obs_mode": "state"})))
    if TARGET_ID in models:
        ppo_rows.append((f"PPO on to_sb3(DreamVectorEnv({TARGET_ID})), features", TARGET_ID, "features",
                         lambda: DreamVectorEnv(make_model(TARGET_ID, "dict"), ppo_envs, ENV_ID, obs="features",
                                                env_kwargs={"obs_mode": "dict"})))
    for name, model_id, obs, factory in ppo_rows:
        try:
            value = time_ppo(to_sb3(factory()), "MlpPolicy", ppo_timesteps)
        except Exception as error:
            notes.append(_fail(model_id or "native", "PPO", error))
            log(f"  {notes[-1]}")
            continue
        add(Row("PPO", name, model_id, obs, ppo_envs, value))
    return rows, notes


def table(rows: list[Row]) -> str:
    """The markdown table: what, model, observations, envs, parameters, steps/s."""
    lines = [
        "| measurement | configuration | observations | envs | parameters | steps/s |",
        "|---|---|---|---:|---:|---:|",
    ]
    for row in rows:
        params = "—" if row.params is None else f"{row.params / 1e6:.2f}M"
        lines.append(f"| {row.section} | {row.name} | {row.obs} | {row.num_envs} | {params} | "
                     f"{row.steps_per_s:,.0f} |")
    return "\n".join(lines)


def check(rows: list[Row]) -> tuple[str, str]:
    """(PASS | MISS | SKIP, the line) for the vae_mdnrnn features target."""
    name = f"DreamVectorEnv({TARGET_ID}) features mode at {TARGET_ENVS} envs >= {TARGET_STEPS_PER_S:,} steps/s"
    found = [r for r in rows if r.section == "dream features" and r.model == TARGET_ID and r.num_envs == TARGET_ENVS]
    if not found:
        return "SKIP", f"SKIP  {name}: not measured"
    value = found[0].steps_per_s
    status = "PASS" if value >= TARGET_STEPS_PER_S else "MISS"
    return status, f"{status}  {name}: {value:,.0f} steps/s"


def _positive(convert: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (0 < value < float("inf")):
            raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
        return value

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=_positive(float), default=None,
                        help="seconds per timed window (default: 1.5, or 0.3 with --quick)")
    parser.add_argument("--repeats", type=_positive(int), default=3, help="timed windows per env row; the best counts")
    parser.add_argument("--quick", action="store_true", help="a short run (one 0.3 s window, 4,096 PPO frames)")
    parser.add_argument("--num-envs", type=_positive(int), default=TARGET_ENVS, help="envs of the env rows")
    parser.add_argument("--ppo-envs", type=_positive(int), default=16, help="envs PPO learns on")
    parser.add_argument("--ppo-timesteps", type=_positive(int), default=None,
                        help="timed PPO frames per row (default: 32,768, or 4,096 with --quick)")
    parser.add_argument("--models", nargs="+", default=None, metavar="ID", help="default: every registered id")
    parser.add_argument("--threads", type=_positive(int), default=1, help="torch threads (default: 1)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the numbers here")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else (0.3 if args.quick else 1.5)
    repeats = 1 if args.quick else args.repeats
    warmup = min(0.5, max(0.1, 0.25 * seconds))
    ppo_timesteps = args.ppo_timesteps or (4_096 if args.quick else 32_768)
    models = args.models or model_zoo.list_models()
    torch.set_num_threads(args.threads)
    print(f"# dream throughput on {ENV_ID}: UNTRAINED models (freshly initialised; speed does not depend on the "
          f"weights); env rows best of {repeats} x {seconds:g} s windows, PPO {ppo_timesteps:,} frames per row")
    print(f"# {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__} ({args.threads} thread(s)), "
          f"stable-baselines3 {stable_baselines3.__version__}, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    started = time.perf_counter()
    rows, notes = measure(models, args.num_envs, seconds, warmup, repeats, args.ppo_envs, ppo_timesteps)
    print()
    print(table(rows))
    print()
    print(f"PPO: {args.ppo_envs} envs, MlpPolicy, {', '.join(f'{k}={v}' for k, v in PPO_SETTINGS.items())}; "
          "frames per second of PPO.learn, updates included")
    for note in notes:
        print(note)
    status, line = check(rows)
    print(f"\n{line}")
    print(f"total {time.perf_counter() - started:.1f} s")
    if args.json is not None:
        report = {"seconds": seconds, "repeats": repeats, "threads": args.threads, "ppo_timesteps": ppo_timesteps,
                  "ppo_settings": PPO_SETTINGS, "trained": False, "load_average": os.getloadavg(),
                  "rows": [asdict(r) for r in rows], "notes": notes, "check": {"status": status, "line": line}}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_name(args.json.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n")
        tmp.replace(args.json)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
