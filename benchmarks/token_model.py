"""Token world model (``vqvae_transformer``): history, decoding mode and the KV cache.

Two parts, each a markdown table with ratios against a baseline measured in the same
run, then the targets as PASS/MISS lines (a benchmark, not a test: a miss does not fail).

Speed, on CampusNav-v0's dict observations at batch 1, one torch thread, the library's
default config and, for the KV cache, a full-size transformer too (256 wide, 6 layers):
imagined frames per second of parallel decoding (``imagine`` alone, and with ``decode``
to pixels, the real-time bar), of autoregressive decoding with the KV cache, and of
autoregressive decoding that recomputes the whole sequence for every code
(``generate(..., use_cache=False)``: the same logits, as a plain GPT forward pass). The
best of ``--repeats`` windows of ``--seconds`` counts (the machine may be shared).

Quality, on the same episodes and budget: one VQ-VAE tokenizer trained once and copied,
frozen, into four variants (history N=1 or N=4, parallel or autoregressive decoding),
so that all four predict the same tokens; each transformer trains ``--steps`` steps from
the same seed on the same batches; ``model_zoo.evaluate`` scores them on held-out
episodes: next-frame token accuracy, PSNR and imagined frames per second, beside the
baseline of keeping the last real frame's codes (``copy_token_acc@k``); and
``model_zoo.evaluate_fidelity`` against 64 forks of reality, the imagined frames read by
the semantic probe (``model_zoo.probe``, loaded from ``--probe`` or trained there):
the valid-frame rate and the distance between the imagined and real distributions of
the agent's cell at 1 and 16 steps. ``--seeds K`` repeats the quality part with K seeds
and the targets compare the means.

Targets: N=4 beats N=1 on ``token_acc@1`` per decoding mode; autoregressive dreams are
more coherent than parallel ones at 16 steps (a higher valid-frame rate and a lower
distance to reality's cells); the KV cache makes autoregressive generation
>= 4x faster than recomputing; parallel imagination + decoding >= 30 frames per second
at batch 1. Measured runs: docs/results/token_model.md.

    python benchmarks/token_model.py                 # tens of minutes on a CPU
    python benchmarks/token_model.py --quick         # a smoke run
    python benchmarks/token_model.py --seeds 3 --work runs/token  # three seeds, each kept as it ends
    python benchmarks/token_model.py --speed-only --json speed.json
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
import tyro

import campus_env  # noqa: F401  (registers CampusNav-v0)
import model_zoo
from campusnav.budgets import BenchmarkRun, Collection, Training
from campusnav.harness import write_json, write_results
from model_zoo.data import collect, load_episodes, split_episodes

ENV_ID = "CampusNav-v0"
MODEL_ID = "vqvae_transformer"
VARIANTS = {
    "N=1 parallel": {"history": 1, "decoding": "parallel"},
    "N=4 parallel": {"history": 4, "decoding": "parallel"},
    "N=1 autoregressive": {"history": 1, "decoding": "autoregressive"},
    "N=4 autoregressive": {"history": 4, "decoding": "autoregressive"},
}
FULL_SIZE = {"hidden": 256, "layers": 6, "heads": 8}  # a full-size transformer, before scaling it for a CPU
KV_SPEEDUP_TARGET = 4.0
REALTIME_FPS = 30.0


@dataclass(frozen=True)
class Args(BenchmarkRun, Training, Collection):
    episodes: int = 96
    tokenizer_steps: int = 400
    """gradient steps of the shared tokenizer"""
    steps: int = 400
    """gradient steps of each variant's transformer"""
    seq_len: int = 12
    temperature: float = 0.5
    """sampling temperature of the imagined codes"""
    top_k: int = 16
    """codes drawn from the k most likely"""
    context: int = 4
    """real frames filtered before imagining"""
    windows: int = 64
    """held-out windows scored"""
    seconds: float = 2.0
    """length of one timing window of the speed part"""
    repeats: int = 3
    """timing windows per row (the best counts)"""
    seeds: int = 1
    """quality runs, with seeds seed, seed + 1, ... (new data, tokenizer and weights each); the targets compare means"""
    speed_only: bool = False
    """skip the quality part"""
    skip_full_size: bool = False
    """skip the KV-cache rows of the full-size transformer (256 wide, 6 layers; slow to recompute)"""
    probe: str = "runs/leaderboard/probe"
    """the semantic probe of CampusNav-v0 frames (trained there at the leaderboard's budget when missing)"""
    fidelity_starts: int = 16
    """held-out start states of evaluate_fidelity"""
    forks: int = 64
    """forks of reality and imagined rollouts per start"""
    work: str = ""
    """keep each seed's quality rows here as it ends, so a rerun with the same flags skips finished seeds
    ('' keeps nothing)"""


def parse_args(argv: list[str] | None = None) -> Args:
    args = tyro.cli(Args, args=argv, description=__doc__)
    if args.seeds < 1:
        raise SystemExit(f"--seeds must be at least 1, got {args.seeds}")
    if args.quick:
        args = dataclasses.replace(args, episodes=8, max_episode_steps=40, tokenizer_steps=10, steps=10,
                                   batch_size=4, windows=8, seconds=0.3, repeats=1, skip_full_size=True,
                                   fidelity_starts=2, forks=4)
    return args


# --- speed ---------------------------------------------------------------------------------


def best_rate(step: Callable[[], Any], seconds: float, repeats: int) -> float:
    """Calls per second of ``step``: the best of ``repeats`` windows of ``seconds`` (after a warm-up call)."""
    step()
    best = 0.0
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while True:
            step()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds and calls >= 2:
                break
        best = max(best, calls / elapsed)
    return best


def timed_paths(model: Any, state: dict, action: torch.Tensor, seed: int) -> dict[str, Callable[[], Any]]:
    """What is timed for ``model``'s decoding mode: name -> a call that imagines one frame."""
    generator = torch.Generator().manual_seed(seed)
    if model.config.decoding == "parallel":
        return {"parallel: imagine": lambda: model.imagine(state, action, generator=generator),
                "parallel: imagine + decode": lambda: model.decode(model.imagine(state, action,
                                                                                 generator=generator).state)}
    return {"autoregressive, KV cache: imagine": lambda: model.imagine(state, action, generator=generator),
            "autoregressive, recompute per code: generate": lambda: model.generate(state, action, generator,
                                                                                   use_cache=False)}


@torch.inference_mode()
def speed(args: Args) -> dict[str, float]:
    """Imagined frames per second at batch 1 of each decoding path (default config, untrained weights)."""
    env = gym.make(ENV_ID)
    obs, _ = env.reset(seed=args.seed)
    rates = {}
    setups = [("", {"decoding": "parallel"}), ("", {"decoding": "autoregressive"})]
    if not args.skip_full_size:
        setups.append((" [256 wide, 6 layers]", {"decoding": "autoregressive", **FULL_SIZE}))
    for label, config in setups:
        torch.manual_seed(args.seed)
        model = model_zoo.make(MODEL_ID, env.observation_space, env.action_space, **config).eval()
        first = torch.ones(1, dtype=torch.bool)
        state = model.observe(model.initial_state(1), torch.zeros(1, dtype=torch.int64),
                              model.spec.to_torch({k: v[None] for k, v in obs.items()}), first)
        for _ in range(model.config.history - 1):  # a full history, as in a running dream
            state = model.imagine(state, torch.zeros(1, dtype=torch.int64)).state
        for name, step in timed_paths(model, state, torch.tensor([3]), args.seed).items():
            rates[name + label] = best_rate(step, args.seconds, args.repeats if not label else 1)
    env.close()
    return rates


# --- quality ----------------------------------------------------------------------------------


@torch.inference_mode()
def copy_token_accuracy(model: Any, episodes: list, horizons: tuple[int, ...], context: int) -> dict[int, float]:
    """The baseline "k steps on, the codes of the last real frame": horizon -> share of codes that match.

    Counted over every held-out step from the ``context``-th on whose frame k steps later is
    in the same episode (not only the windows ``evaluate`` scores), with ``model``'s tokenizer.
    """
    hits, counts = dict.fromkeys(horizons, 0), dict.fromkeys(horizons, 0)
    for episode in episodes:
        codes = model.tokenize(model.spec.to_torch(episode.obs, model.device))  # (T + 1, P)
        last = codes[context - 1 :]
        for k in horizons:
            if len(last) > k:
                hits[k] += int((last[:-k] == last[k:]).sum())
                counts[k] += last[:-k].numel()
    return {k: hits[k] / max(counts[k], 1) for k in horizons}


def quality(args: Args) -> dict[str, model_zoo.EvalResult]:
    """The four variants on the same data, tokenizer and budget, evaluated on held-out episodes."""
    horizons = (1, 16)
    base = {"temperature": args.temperature, "top_k": args.top_k}
    with tempfile.TemporaryDirectory() as root:
        data = collect(ENV_ID, num_episodes=args.episodes, num_envs=8, env_kwargs={"obs_mode": "dict"},
                       seed=args.seed, max_episode_steps=args.max_episode_steps, data_path=root,
                       dataset_id="bench/token-model-v0", progress=False)
        train, test = split_episodes(load_episodes(data), 0.125, seed=args.seed)
        spaces = (data.observation_space, data.action_space)
        reader = semantic_probe(args, root)
    fit = dict(batch_size=args.batch_size, seq_len=args.seq_len, lr=args.lr, seed=args.seed, progress=False)
    torch.manual_seed(args.seed)
    tokenizer = model_zoo.make(MODEL_ID, *spaces, **base, history=1, train_targets=1)
    started = time.perf_counter()
    model_zoo.fit(tokenizer, train, steps=args.tokenizer_steps, **fit)
    print(f"tokenizer: {args.tokenizer_steps} steps in {time.perf_counter() - started:.0f} s")
    copy = copy_token_accuracy(tokenizer.eval(), test, horizons, args.context)
    results = {}
    for name, overrides in VARIANTS.items():
        torch.manual_seed(args.seed)
        model = model_zoo.make(MODEL_ID, *spaces, **base, **overrides, train_tokenizer=False)
        model.tokenizers.load_state_dict(tokenizer.tokenizers.state_dict())
        started = time.perf_counter()
        model_zoo.fit(model, train, steps=args.steps, **fit)
        seconds = time.perf_counter() - started
        model.eval()
        results[name] = model_zoo.evaluate(model, test, horizons=horizons, context=args.context,
                                           num_windows=args.windows, batch_size=32, speed_batch=1,
                                           speed_seconds=args.seconds, seed=args.seed)
        results[name].extra["train_seconds"] = seconds
        results[name].extra |= {f"copy_token_acc@{k}": copy[k] for k in horizons}  # the same tokenizer for all
        fidelity = model_zoo.evaluate_fidelity(
            model, ENV_ID, env_kwargs={"obs_mode": "dict"}, starts=args.fidelity_starts, forks=args.forks,
            horizons=horizons, seed=args.seed + 10_000, semantic=reader.readout).as_dict()
        results[name].extra |= {f"{short}@{k}": fidelity[f"{long}@{k}"] for k in horizons for short, long in (
            ("valid", "valid_frame_rate"), ("cell_tv", "position_tv"))}
        print(f"{name}: trained in {seconds:.0f} s")
    return results


def semantic_probe(args: Args, root: str):
    """The probe in ``--probe``, trained there first at the leaderboard's budget (under --quick: a tiny one in
    ``root``)."""
    from campusnav.leaderboard import QUICK, Budget
    from campusnav.leaderboard.data import probe_at

    return probe_at(Path(root) / "probe", QUICK) if args.quick else probe_at(Path(args.probe), Budget())


# --- tables and targets --------------------------------------------------------------------------


def speed_table(rates: dict[str, float]) -> str:
    baseline = rates["parallel: imagine"]
    lines = ["| path (batch 1) | frames/s | ms/frame | vs parallel imagine |", "|---|---|---|---|"]
    for name, rate in rates.items():
        lines.append(f"| {name} | {rate:,.1f} | {1000 / rate:.1f} | {rate / baseline:.3f}x |")
    return "\n".join(lines)


def mean_rows(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Each variant's metrics (``EvalResult.as_dict``) averaged over the seeds' runs: variant -> metric -> mean."""
    return {name: {key: sum(run[name][key] for run in runs) / len(runs) for key in row}
            for name, row in runs[0].items()}


def seed_table(runs: list[dict[str, dict[str, float]]], seed: int) -> str:
    """Per seed, the differences the targets compare: N=4 - N=1 at one step, autoregressive - parallel at 16."""
    lines = ["| seed | N=4 - N=1 token_acc@1 (parallel) | (autoregressive) | AR - parallel token_acc@16 (N=1) | (N=4) "
             "| AR - parallel psnr@16 (N=1) | (N=4) | AR - parallel valid@16 (N=1) | (N=4) "
             "| AR - parallel cell_tv@16 (N=1) | (N=4) |", "|---" * 11 + "|"]
    for i, row in enumerate(runs):
        cells = [row[f"N=4 {d}"]["token_acc@1"] - row[f"N=1 {d}"]["token_acc@1"]
                 for d in ("parallel", "autoregressive")]
        for key in ("token_acc@16", "psnr@16", "valid@16", "cell_tv@16"):
            cells += [row[f"N={n} autoregressive"][key] - row[f"N={n} parallel"][key] for n in (1, 4)]
        lines.append(f"| {seed + i} | " + " | ".join(f"{c:+.4f}" for c in cells) + " |")
    return "\n".join(lines)


def targets(rates: dict[str, float], rows: dict[str, dict[str, float]] | None, seeds: int = 1) -> list[str]:
    """The targets as PASS/MISS lines; ``rows`` are the quality metrics per variant (means over ``seeds``)."""
    lines = []
    over = f" [means of {seeds} seeds]" if seeds > 1 else ""

    def check(ok: bool, text: str) -> None:
        lines.append(("PASS  " if ok else "MISS  ") + text)

    if rows:
        for decoding in ("parallel", "autoregressive"):
            one, four = rows[f"N=1 {decoding}"]["token_acc@1"], rows[f"N=4 {decoding}"]["token_acc@1"]
            check(four > one, f"N=4 beats N=1 on next-frame token accuracy ({decoding}): {four:.4f} vs {one:.4f}{over}")
        for n in (1, 4):
            ar, par = rows[f"N={n} autoregressive"], rows[f"N={n} parallel"]
            cost = par["imagined_steps_per_s"] / ar["imagined_steps_per_s"]
            check(ar["valid@16"] > par["valid@16"] and ar["cell_tv@16"] < par["cell_tv@16"],
                  f"autoregressive dreams more coherent than parallel at 16 steps (N={n}): valid frames "
                  f"{ar['valid@16']:.3f} vs {par['valid@16']:.3f}, cell TV to reality {ar['cell_tv@16']:.3f} vs "
                  f"{par['cell_tv@16']:.3f} (PSNR {ar['psnr@16']:.2f} vs {par['psnr@16']:.2f} dB); it costs "
                  f"{cost:.1f}x in frames per second ({ar['imagined_steps_per_s']:.1f} vs "
                  f"{par['imagined_steps_per_s']:.1f}){over}")
    for label in ("", " [256 wide, 6 layers]"):
        if f"autoregressive, KV cache: imagine{label}" not in rates:
            continue
        speedup = (rates[f"autoregressive, KV cache: imagine{label}"]
                   / rates[f"autoregressive, recompute per code: generate{label}"])
        check(speedup >= KV_SPEEDUP_TARGET, f"KV cache >= {KV_SPEEDUP_TARGET:.0f}x faster than recomputing per code"
              f"{label or ' (default config)'}: {speedup:.1f}x")
    fps = rates["parallel: imagine + decode"]
    check(fps >= REALTIME_FPS, f"parallel imagination >= {REALTIME_FPS:.0f} fps at batch 1 (imagine + decode): "
          f"{fps:.1f} fps (imagine alone: {rates['parallel: imagine']:.1f})")
    return lines


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        print(f"== speed: {MODEL_ID} default config on {ENV_ID} dict observations, batch 1, one thread\n")
        rates = speed(args)
        print(speed_table(rates))
        runs: list[dict[str, dict[str, float]]] = []  # per seed: variant -> metrics
        rows = None
        if not args.speed_only:
            keys = ["token_acc@1", "token_acc@16", "copy_token_acc@1", "copy_token_acc@16", "psnr@1", "psnr@16",
                    "valid@1", "valid@16", "cell_tv@1", "cell_tv@16",
                    "copy_mse@1", "reward_mae", "termination_f1", "imagined_steps_per_s", "train_seconds", "windows"]
            for i in range(args.seeds):
                run_args = dataclasses.replace(args, seed=args.seed + i)
                kept = kept_seed(run_args)
                if kept is not None:
                    print(f"\n== quality (seed {run_args.seed}): kept from {args.work}")
                    runs.append(kept)
                    continue
                print(f"\n== quality (seed {run_args.seed}): {args.episodes} episodes, tokenizer "
                      f"{args.tokenizer_steps} steps, {args.steps} steps per variant of {args.batch_size} x "
                      f"{args.seq_len}\n")
                results = quality(run_args)
                print()
                print(model_zoo.format_table(results, keys=keys).replace("imagined_steps_per_s",
                                                                         "imagined fps (batch 1)"))
                runs.append(keep_seed(run_args, {name: r.as_dict() for name, r in results.items()}))
            rows = mean_rows(runs)
        checks = targets(rates, rows, args.seeds)
    finally:
        torch.set_num_threads(threads)
    markdown = results_markdown(args, rates, runs, rows, checks)
    print("\n" + markdown)
    report = {"args": asdict(args), "speed": rates,
              "quality": runs or None,
              "quality_mean": rows, "targets": checks}
    if args.json:
        write_json(args.json, report)
    if not args.quick:
        write_results("token_model", markdown, report)
    return report


def _seed_file(args: Args) -> Path:
    return Path(args.work) / f"seed{args.seed}.json"


def _quality_flags(args: Args) -> dict[str, Any]:
    """The flags a seed's quality rows depend on (not the speed part's, the seed count or the output)."""
    skip = {"seeds", "json", "work", "seconds", "repeats", "speed_only", "skip_full_size", "threads"}
    return {k: v for k, v in asdict(args).items() if k not in skip}


def kept_seed(args: Args) -> dict[str, dict[str, float]] | None:
    """The quality rows of ``args.seed`` kept in ``--work`` by an earlier run with the same flags, else None."""
    path = _seed_file(args)
    if not args.work or not path.exists():
        return None
    saved = json.loads(path.read_text())
    if saved["flags"] != json.loads(json.dumps(_quality_flags(args))):
        return None
    return {name: {k: math.nan if v is None else v for k, v in row.items()}  # JSON keeps NaN as null
            for name, row in saved["rows"].items()}


def keep_seed(args: Args, rows: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Writes one seed's quality rows to ``--work`` (with the flags they depend on); returns them."""
    if args.work:
        write_json(_seed_file(args), {"flags": _quality_flags(args), "rows": rows})
    return rows


def results_markdown(args: Args, rates: dict[str, float], runs: list[dict[str, dict[str, float]]],
                     rows: dict[str, dict[str, float]] | None, checks: list[str]) -> str:
    """The results page: the variants' means against N=1 parallel, the per-seed differences, speed, the targets."""
    parts = [f"# Token world model: history, decoding and the KV cache ({time.strftime('%Y-%m-%d')})", ""]
    if rows is not None:
        base = rows["N=1 parallel"]
        lines = ["| variant | token_acc@1 vs N=1 parallel | token_acc@1 - copying the last codes "
                 "| psnr@16 - N=1 parallel (dB) | valid@1 | valid@16 | cell_tv@1 | cell_tv@16 "
                 "| fps vs N=1 parallel |", "|---" * 9 + "|"]
        for name, row in rows.items():
            lines.append(f"| {name} | {row['token_acc@1'] / base['token_acc@1']:.3f}x | "
                         f"{row['token_acc@1'] - row['copy_token_acc@1']:+.4f} | "
                         f"{row['psnr@16'] - base['psnr@16']:+.2f} | "
                         + " | ".join(f"{row[k]:.3f}" for k in ("valid@1", "valid@16", "cell_tv@1", "cell_tv@16"))
                         + f" | {row['imagined_steps_per_s'] / base['imagined_steps_per_s']:.3f}x |")
        label = f"Means over {args.seeds} seeds" if args.seeds > 1 else f"Seed {args.seed}"
        parts += [f"{label}; valid: the share of imagined frames the semantic probe reads with confidence >= 0.9, "
                  "cell_tv: the distance between the imagined and the real distributions of the agent's cell "
                  f"(probe readouts, {args.forks} forks of reality from {args.fidelity_starts} starts).", "",
                  *lines, "", "The differences the targets compare, per seed:", "", seed_table(runs, args.seed), ""]
    parts += ["Speed, batch 1, one thread:", "", speed_table(rates), "", *checks, ""]
    return "\n".join(parts)


if __name__ == "__main__":
    main()
