"""Steps per second of the dream environments, and of SB3 PPO learning in them.

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

Models are untrained (freshly initialised, seeded): throughput depends on the
architecture, not the weights. Env rows take the best of ``--repeats`` timed
windows (``campusnav.harness``); torch runs ``--threads`` threads. It prints a
markdown table and the target as a PASS/MISS line; a miss does not fail.

    python benchmarks/dream_throughput.py              # about a minute
    python benchmarks/dream_throughput.py --quick      # about 20 s
    python benchmarks/dream_throughput.py --models vae_mdnrnn --json out.json
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import stable_baselines3
import torch
import tyro
from stable_baselines3 import PPO

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from campusnav.bench import vector_stepper
from campusnav.harness import Target, machine_info, markdown_table, measure_rate, write_json
from campusnav.threads import use_threads
from model_zoo.agents.mbrl import silent_sb3
from wrappers import DreamVectorEnv, to_sb3

ENV_ID = "CampusNav-v0"
TARGET_ID = "vae_mdnrnn"
TARGET_ENVS = 1024
TARGET_STEPS_PER_S = 50_000
DECODED_OBS = {"mlp": "state", "mlp_ensemble": "state"}  # decoded-mode observations; the others: "dict"
PPO_SETTINGS = dict(n_steps=128, batch_size=512, n_epochs=4, learning_rate=3e-4, gamma=0.99)


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
    return measure_rate(vector_stepper(envs, seed), seconds, warmup, repeats).best


def time_ppo(venv, policy: str, timesteps: int, seed: int = 0) -> float:
    """Frames per second of ``PPO.learn(timesteps)`` on an SB3 VecEnv (after one warm-up rollout)."""
    agent = silent_sb3(PPO(policy, venv, seed=seed, device="cpu", verbose=0, **PPO_SETTINGS))
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
    cells = [[row.section, row.name, row.obs, row.num_envs, "—" if row.params is None else f"{row.params / 1e6:.2f}M",
              f"{row.steps_per_s:,.0f}"] for row in rows]
    return markdown_table(["measurement", "configuration", "observations", "envs", "parameters", "steps/s"], cells,
                          align="lllrrr")


def target(rows: list[Row]) -> Target:
    """The vae_mdnrnn features target."""
    name = f"DreamVectorEnv({TARGET_ID}) features mode at {TARGET_ENVS} envs >= {TARGET_STEPS_PER_S:,} steps/s"
    found = [r for r in rows if r.section == "dream features" and r.model == TARGET_ID and r.num_envs == TARGET_ENVS]
    if not found:
        return Target(name, None, TARGET_STEPS_PER_S)
    return Target(name, found[0].steps_per_s, TARGET_STEPS_PER_S, f"{found[0].steps_per_s:,.0f} steps/s")


@dataclass(frozen=True)
class Args:
    """Steps per second of the dream environments, and of SB3 PPO learning in them."""

    seconds: float | None = None
    """seconds per timed window (default: 1.5, or 0.3 with --quick)"""
    repeats: int = 3
    """timed windows per env row; the best counts"""
    quick: bool = False
    """a short run (one 0.3 s window, 4,096 PPO frames)"""
    num_envs: int = TARGET_ENVS
    """envs of the env rows"""
    ppo_envs: int = 16
    """envs PPO learns on"""
    ppo_timesteps: int | None = None
    """timed PPO frames per row (default: 32,768, or 4,096 with --quick)"""
    models: tuple[str, ...] = ()
    """model ids (default: every registered id)"""
    threads: int = 1
    """torch threads"""
    json: str | None = None
    """also write the numbers to this JSON file"""


def main(argv: Sequence[str] | None = None) -> int:
    args = tyro.cli(Args, args=argv)
    seconds = args.seconds if args.seconds is not None else (0.3 if args.quick else 1.5)
    repeats = 1 if args.quick else args.repeats
    warmup = min(0.5, max(0.1, 0.25 * seconds))
    ppo_timesteps = args.ppo_timesteps or (4_096 if args.quick else 32_768)
    models = list(args.models) or model_zoo.list_models()
    use_threads(args.threads)
    info = machine_info()
    print(f"# dream throughput on {ENV_ID}: UNTRAINED models (freshly initialised; speed does not depend on the "
          f"weights); env rows best of {repeats} x {seconds:g} s windows, PPO {ppo_timesteps:,} frames per row")
    print(f"# {info['platform']}, {info['cpus']} CPUs, torch {torch.__version__} ({args.threads} thread(s)), "
          f"stable-baselines3 {stable_baselines3.__version__}, load average {info.get('load_average')}")
    started = time.perf_counter()
    rows, notes = measure(models, args.num_envs, seconds, warmup, repeats, args.ppo_envs, ppo_timesteps)
    print()
    print(table(rows))
    print()
    print(f"PPO: {args.ppo_envs} envs, MlpPolicy, {', '.join(f'{k}={v}' for k, v in PPO_SETTINGS.items())}; "
          "frames per second of PPO.learn, updates included")
    for note in notes:
        print(note)
    check = target(rows)
    print(f"\n{check.line}")
    print(f"total {time.perf_counter() - started:.1f} s")
    if args.json is not None:
        report = {"seconds": seconds, "repeats": repeats, "threads": args.threads, "ppo_timesteps": ppo_timesteps,
                  "ppo_settings": PPO_SETTINGS, "trained": False, "machine": info,
                  "rows": [asdict(r) for r in rows], "notes": notes, "check": check.as_dict()}
        print(f"wrote {write_json(args.json, report)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
