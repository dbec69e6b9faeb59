"""Dreamer on CampusNav-v0: a world model and an actor-critic trained alternately from a growing replay.

The loop of Hafner et al.'s Dreamer (DreamerV3, arXiv:2301.04104), on a campus:

1. prefill the replay with random-policy episodes of the real env;
2. repeat: (a) train the world model (`model_zoo.make("rssm")`) on windows of the
   replay; (b) train the actor-critic (`model_zoo.agents.controllers.ActorCritic`) in the
   model's imagination, from the replay's states filtered through the model
   (`model_zoo.agents.actor_critic.start_states`); (c) let the actor play a few more real
   episodes (real observations filtered through `observe`) and add them to the replay.

Every real step counts: `returns.csv` gives the real return of the episodes played
against the real env steps used so far (prefill included), and the final policy is
scored on `--eval-episodes` seeded episodes beside the random policy, standing still and
the shortest-path oracle. The comparison is PPO trained in reality by
`examples/sb3_baselines.py` (`--ppo-return`, `--ppo-env-steps`): the script prints the
ratio of the gains over the random policy (returns are negative, where a plain ratio
reads backwards) and a PASS/MISS line on a gain ratio >= 0.8 with at most a quarter of
PPO's real steps. Measured runs: docs/results/dreamer.md.

Choices: `obs_mode="state"` (the flat vector, which holds the goal offset the actor
needs; `--obs-mode dict` runs the loop on images too); the RSSM with `delta_vector`, so
its state tracks the observation by predicted changes; PPO's potential-based shaping
(`--shaping`) computed in imagination from the goal offsets the model decodes
(`--shape-in replay` puts it in the replay instead), which leaves the optimal policies
as they are; a short imagination horizon; a persistent Adam for the model and Dreamer's
train ratio (`--model-steps`, `--actor-updates` per batch of `--num-envs` episodes).

    python examples/dreamer.py                      # minutes on a 2-core CPU
    python examples/dreamer.py --iterations 10      # a shorter run
    python examples/dreamer.py --tiny               # the test's budget (seconds)
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import tyro

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from campus_env.oracle import ShortestPathPolicy
from campus_env.schema import STATE_SLICES, Action
from campusnav.budgets import ExampleRun, Training
from campusnav.threads import use_threads
from model_zoo.agents.actor_critic import start_states
from model_zoo.agents.controllers import ActorCritic, ActorCriticConfig, model_features
from model_zoo.checkpoint import save_tensors
from model_zoo.data import Episode, SequenceSampler

ENV_ID = "CampusNav-v0"
GOAL_OFFSET = STATE_SLICES["goal_offset"]  # goal row/col minus agent row/col, divided by (map side - 1)


@dataclass(frozen=True)
class Args(ExampleRun, Training):
    obs_mode: str = "state"
    """observations of CampusNav-v0: "state" (flat vector, fast on a CPU) or "dict" (image + vectors, slow)"""
    max_episode_steps: int = 200
    """episode length in reality (200, as examples/sb3_baselines.py evaluates PPO)"""
    num_envs: int = 16
    """real envs stepped together; also the episodes collected per iteration"""
    prefill_episodes: int = 32
    """random-policy episodes in the replay before the first update"""
    iterations: int = 24
    """rounds of (train the model, train the actor, play num_envs real episodes)"""
    model_steps: int = 150
    """world-model gradient steps per iteration"""
    actor_updates: int = 80
    """actor-critic updates in imagination per iteration"""
    lr: float = 1e-3
    """Adam learning rate of the world model"""
    starts: int = 256
    """imagination start states per actor update (drawn from the batch's filtered states)"""
    horizon: int = 5
    """imagined steps per actor update (V3: 15; shorter leans on the critic where the model errs)"""
    gamma: float = 0.99
    """discount of the actor-critic"""
    entropy: float = 3e-3
    """entropy bonus of the actor (V3: 3e-4; 10x more keeps a young actor from exploiting the model's errors)"""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor and the critic (V3: 3e-5; 1e-3 here drove the actor into walls)"""
    eval_episodes: int = 100
    """seeded real episodes that score the final policy and the reference rows"""
    eval_seed: int = 10_000
    """evaluation episodes use seeds eval_seed, eval_seed + 1, ... (as examples/sb3_baselines.py)"""
    shaping: float = 0.05
    """potential-based shaping, per cell of Manhattan distance closed (0: none; PPO in examples/sb3_baselines.py
    trains with 0.05); real returns and scores count the env's own reward"""
    shape_in: str = "imagination"
    """where the shaping goes: "imagination" (each imagined reward, from the goal offsets the model decodes) or
    "replay" (the replay's rewards, which the model then learns to predict)"""
    ppo_return: float = -0.932
    """PPO-in-reality's real return, measured by examples/sb3_baselines.py at its defaults (seed 0)"""
    ppo_env_steps: int = 500_000
    """the real env steps PPO learned from there"""
    out: str = "runs/dreamer"


def parse_args(argv: list[str] | None = None) -> Args:
    """One --flag per field of Args, its docstring as the help (tyro)."""
    args = tyro.cli(Args, args=argv, description=__doc__)
    if args.obs_mode not in ("state", "dict"):
        raise SystemExit(f"argument --obs-mode: {args.obs_mode!r}; choose state or dict")
    if args.shape_in not in ("imagination", "replay"):
        raise SystemExit(f"argument --shape-in: {args.shape_in!r}; choose imagination or replay")
    if args.tiny:
        args = dataclasses.replace(args, max_episode_steps=30, num_envs=4, prefill_episodes=4, iterations=2,
                                   model_steps=3, actor_updates=2, batch_size=4, seq_len=8, starts=16, horizon=4,
                                   eval_episodes=4)
    return args


def play(act, args: Args, num_envs: int, seed: int, model=None) -> list[Episode]:
    """One real episode per env, all at once, recorded as ``Episode``s (the replay's records).

    ``act(features or obs) -> actions``; with ``model`` it sees the model's features
    of the real observations (filtered through ``observe``), else the raw batch.
    Env ``i`` of ``reset(seed=seed)`` is the single env seeded ``seed + i``.
    """
    envs = gym.make_vec(ENV_ID, num_envs=num_envs, obs_mode=args.obs_mode, max_episode_steps=args.max_episode_steps)
    features_fn = model_features(model) if model is not None else None
    obs, _ = envs.reset(seed=seed)
    frames, actions, rewards, terminated, truncated = [obs], [], [], [], []
    alive = np.ones(num_envs, dtype=bool)
    lengths = np.zeros(num_envs, dtype=np.int64)
    inputs = features_fn(obs, None, alive.copy()) if features_fn else obs
    while alive.any():
        action = act(inputs)
        action = action.cpu().numpy() if torch.is_tensor(action) else np.asarray(action)
        obs, reward, term, trunc, _ = envs.step(action)
        for buffer, value in ((frames, obs), (actions, action), (rewards, reward), (terminated, term),
                              (truncated, trunc)):
            buffer.append(value)
        lengths += alive
        alive &= ~(term | trunc)
        inputs = features_fn(obs, action, np.zeros(num_envs, dtype=bool)) if features_fn else obs
    envs.close()

    def stack(seq, i, n):
        if isinstance(seq[0], dict):
            return {k: np.stack([s[k][i] for s in seq[:n]]) for k in seq[0]}
        return np.stack([s[i] for s in seq[:n]])

    return [Episode(obs=stack(frames, i, n + 1), action=stack(actions, i, n), reward=stack(rewards, i, n),
                    terminated=stack(terminated, i, n), truncated=stack(truncated, i, n), id=seed + i)
            for i, n in enumerate(lengths.tolist())]


def summary(episodes: list[Episode]) -> dict[str, float]:
    returns = np.array([e.reward.sum() for e in episodes])
    return {"return_mean": float(returns.mean()), "return_std": float(returns.std()),
            "success_rate": float(np.mean([e.terminated[-1] for e in episodes])),
            "mean_steps": float(np.mean([len(e) for e in episodes]))}


def shaped(episode: Episode, per_cell: float, gamma: float, map_side: int = 32) -> Episode:
    """The episode with Ng, Harada & Russell's potential-based shaping added to its rewards.

    ``r + gamma * phi(s') - phi(s)``, ``phi = -per_cell * Manhattan cells to the goal``
    (read off the state's goal offset, which is divided by map side - 1), ``phi`` of a
    terminal state 0: what ``examples/sb3_baselines.py`` trains PPO on. It leaves the
    optimal policies unchanged and only reaches the replay; returns count the raw reward.
    """
    if per_cell <= 0:
        return episode
    state = episode.obs["state"] if isinstance(episode.obs, dict) else episode.obs
    phi = -per_cell * (map_side - 1) * np.abs(state[:, GOAL_OFFSET]).sum(-1)  # (T + 1,)
    after = np.where(episode.terminated, 0.0, phi[1:])
    return dataclasses.replace(episode, reward=(episode.reward + gamma * after - phi[:-1]).astype(episode.reward.dtype))


class ShapedDream:
    """A world model as the actor-critic sees it, with potential-based shaping added to every imagined reward.

    ``r + gamma * phi(s') - phi(s)`` (``phi(s') = 0`` where the step ends the episode), ``phi``
    as in ``shaped`` but read off the observation ``model.decode`` gives for each imagined
    state: the same shaping PPO's wrapper computes from real observations, here from
    imagined ones. Features and the dynamics are the model's.
    """

    def __init__(self, model, per_cell: float, gamma: float, map_side: int = 32):
        self.model, self.per_cell, self.gamma, self.map_side = model, per_cell, gamma, map_side
        self._last: tuple[Any, torch.Tensor] | None = None  # (the last imagined state, its potential)

    def features(self, state):
        return self.model.features(state)

    def potential(self, state) -> torch.Tensor:
        obs = self.model.decode(state)
        vector = obs["state"] if isinstance(obs, dict) else obs
        return -self.per_cell * (self.map_side - 1) * vector[:, GOAL_OFFSET].float().abs().sum(-1)  # (B,)

    def imagine(self, state, action, generator=None):
        """One imagined step with its shaped reward; decodes once per step when called on its own last state."""
        before = self._last[1] if self._last is not None and self._last[0] is state else self.potential(state)
        out = self.model.imagine(state, action, generator=generator)
        phi = self.potential(out.state)
        self._last = (out.state, phi)  # a rollout's next call starts from out.state: its potential is known
        after = torch.where(out.terminated, torch.zeros_like(out.reward), phi)
        return out._replace(reward=out.reward + self.gamma * after - before)


def plot(rows: list[dict[str, Any]], refs: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["env_steps"] for r in rows], [r["return_mean"] for r in rows], marker="o", label="Dreamer (rssm)")
    for (name, value), style in zip(refs.items(), ("--", ":", "-."), strict=False):
        ax.axhline(value, linestyle=style, color="gray", label=name)
    ax.set_xlabel("real environment steps")
    ax.set_ylabel("real return of the episodes played")
    ax.set_title("Dreamer on CampusNav-v0")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    args = parse_args()
    use_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    space_env = gym.make(ENV_ID, obs_mode=args.obs_mode)

    def num_rows(inputs) -> int:  # raw observations: an array, or a dict of them
        return len(inputs["state"] if isinstance(inputs, dict) else inputs)

    def random_policy(inputs):
        return rng.integers(0, len(Action), num_rows(inputs))

    def stand_still(inputs):  # action 0 waits: the floor a policy must beat to be doing anything
        return np.zeros(num_rows(inputs), dtype=np.int64)

    # 1. prefill: random episodes; seeds never reused, apart from evaluation's
    seeds = iter(range(args.seed * 1_000_000, args.seed * 1_000_000 + 10**6, 1_000))
    prefill = play(random_policy, args, args.prefill_episodes, next(seeds))
    replay_shaping = args.shaping if args.shape_in == "replay" else 0.0
    replay = [shaped(e, replay_shaping, args.gamma) for e in prefill]  # what the model learns from
    env_steps = sum(len(e) for e in replay)
    rows: list[dict[str, Any]] = [{"iteration": 0, "env_steps": env_steps, "episodes": len(replay),
                                   **summary(prefill), "model_loss": float("nan"), "imagined_return": float("nan"),
                                   "seconds": time.perf_counter() - started}]
    print(f"prefill: {len(replay)} random episodes, {env_steps:,} steps, return {rows[0]['return_mean']:+.3f}")

    # delta_vector: the state tracks the observation, so positions stay exact in the dream (see the docstring)
    model = model_zoo.make("rssm", space_env.observation_space, space_env.action_space, delta_vector=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    dream = ShapedDream(model, args.shaping, args.gamma) if args.shape_in == "imagination" and args.shaping > 0 \
        else model  # what the actor-critic imagines in
    actor = ActorCritic(model.feature_dim, space_env.action_space,
                        ActorCriticConfig(horizon=args.horizon, gamma=args.gamma, entropy=args.entropy,
                                          actor_lr=args.actor_lr, critic_lr=args.actor_lr))
    header = f"{'iter':>4}  {'env steps':>9}  {'return':>7}  {'success':>7}  {'model loss':>10}  " \
             f"{'imagined R':>10}  {'wall s':>6}"
    print(header)
    for iteration in range(1, args.iterations + 1):
        sampler = SequenceSampler(replay, args.seq_len, args.batch_size, seed=args.seed + iteration)
        # (a) the world model
        model.train()
        losses = []
        for _ in range(args.model_steps):
            loss, _ = model.loss(sampler.sample())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 100.0)
            optimizer.step()
            losses.append(float(loss.detach()))
        # (b) the actor-critic in imagination, from the replay's states filtered through the model
        model.eval()
        model.requires_grad_(False)
        imagined = []
        for _ in range(args.actor_updates):
            start = start_states(model, sampler.sample())
            pick = torch.randperm(start["deter"].shape[0], generator=generator)[: args.starts]
            metrics = actor.update(dream, {k: v[pick] for k, v in start.items()}, generator)
            imagined.append(metrics["imagined_return"])
        model.requires_grad_(True)
        # (c) real episodes with the current actor (sampled actions), added to the replay
        with torch.no_grad():
            new = play(lambda feats: actor.act(feats, generator=generator), args, args.num_envs, next(seeds), model)
        replay += [shaped(e, replay_shaping, args.gamma) for e in new]
        env_steps += sum(len(e) for e in new)
        rows.append({"iteration": iteration, "env_steps": env_steps, "episodes": len(replay), **summary(new),
                     "model_loss": float(np.mean(losses)) if losses else float("nan"),
                     "imagined_return": float(np.mean(imagined)) if imagined else float("nan"),
                     "seconds": time.perf_counter() - started})
        r = rows[-1]
        print(f"{iteration:>4}  {env_steps:>9,}  {r['return_mean']:>+7.3f}  {r['success_rate']:>7.2f}  "
              f"{r['model_loss']:>10.4g}  {r['imagined_return']:>+10.3f}  {r['seconds']:>6.0f}", flush=True)

    # 2. evaluation in reality: the final actor, random and the oracle on the same seeded episodes
    model.eval()
    with torch.no_grad():
        final = summary(play(lambda feats: actor.act(feats, generator=torch.Generator().manual_seed(args.seed)),
                             args, args.eval_episodes, args.eval_seed, model))
    reference = {"random": summary(play(random_policy, args, args.eval_episodes, args.eval_seed)),
                 "standing still": summary(play(stand_still, args, args.eval_episodes, args.eval_seed))}
    oracle = ShortestPathPolicy()
    envs = gym.make_vec(ENV_ID, num_envs=args.eval_episodes, obs_mode=args.obs_mode,
                        max_episode_steps=args.max_episode_steps)
    envs.reset(seed=args.eval_seed)  # the oracle reads the simulator: step a vector env alongside
    returns, alive = np.zeros(args.eval_episodes), np.ones(args.eval_episodes, dtype=bool)
    success = np.zeros(args.eval_episodes, dtype=bool)
    steps = np.zeros(args.eval_episodes)
    while alive.any():
        _, reward, term, trunc, _ = envs.step(oracle(envs))
        returns += np.where(alive, reward, 0.0)
        steps += alive
        success |= alive & term
        alive &= ~(term | trunc)
    envs.close()
    reference["shortest-path oracle"] = {"return_mean": float(returns.mean()), "return_std": float(returns.std()),
                                         "success_rate": float(success.mean()), "mean_steps": float(steps.mean())}

    print(f"\n{ENV_ID} ({args.obs_mode}), {args.eval_episodes} seeded real episodes per row "
          f"(seeds {args.eval_seed}..{args.eval_seed + args.eval_episodes - 1}), sampled actions\n")
    table = {f"Dreamer (rssm), {env_steps:,} real steps": final, **reference}
    print("| policy | return (mean ± std) | success | steps |")
    print("|---|---|---|---|")
    for name, row in table.items():
        print(f"| {name} | {row['return_mean']:+.3f} ± {row['return_std']:.3f} | {row['success_rate']:.2f} | "
              f"{row['mean_steps']:.1f} |")
    print(f"| PPO in reality ({args.ppo_env_steps:,} steps, examples/sb3_baselines.py) | {args.ppo_return:+.3f} "
          "| - | - |")
    random_return = reference["random"]["return_mean"]
    ratio = final["return_mean"] / args.ppo_return if args.ppo_return else float("nan")
    ppo_gain = args.ppo_return - random_return
    gain_ratio = (final["return_mean"] - random_return) / ppo_gain if ppo_gain > 0 else float("nan")
    budget_ok = env_steps <= args.ppo_env_steps / 4
    print(f"\nreturn ratio Dreamer / PPO: {ratio:.3f} (negative returns: below 1 is better)")
    print(f"gain over random, Dreamer / PPO: {gain_ratio:.3f} ({final['return_mean'] - random_return:+.3f} / "
          f"{ppo_gain:+.3f})")
    still_ratio = (reference["standing still"]["return_mean"] - random_return) / ppo_gain if ppo_gain > 0 \
        else float("nan")
    print(f"gain over random, standing still / PPO: {still_ratio:.3f} (a policy that never moves; "
          f"the actor's success {final['success_rate']:.2f} says whether it navigates)")
    verdict = "PASS" if budget_ok and gain_ratio >= 0.8 else "MISS"
    print(f"{verdict}  >= 80 % of PPO's gain over random ({gain_ratio:.2f}) with <= 1/4 of its real steps "
          f"({env_steps:,} <= {args.ppo_env_steps // 4:,}: {'yes' if budget_ok else 'no'})")

    with open(out / "returns.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, {"PPO in reality (500k steps)": args.ppo_return, "random": random_return,
                "shortest-path oracle": reference["shortest-path oracle"]["return_mean"]}, out / "returns.png")
    model.save(out / "model")
    save_tensors(out / "actor.safetensors", actor.state_dict())  # the actor, the critics and the return scale
    results = {"args": dataclasses.asdict(args), "env_steps": env_steps, "final": final, "reference": reference,
               "ratio_to_ppo": ratio, "gain_ratio_to_ppo": gain_ratio, "standing_still_gain_ratio_to_ppo": still_ratio,
               "target": verdict, "curve": rows,
               "wall_seconds": time.perf_counter() - started}
    (out / "results.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    print(f"wrote {out}/: returns.csv, returns.png, results.json, model/, actor.safetensors in "
          f"{results['wall_seconds']:.0f} s")
