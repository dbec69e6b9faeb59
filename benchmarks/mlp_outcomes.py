"""The deterministic mlps against the mlps that sample whole outcomes: forks of reality, and transfer.

A deterministic model predicts the mean of a stochastic step, which no real step
is; ``outcomes=K`` predicts K whole next steps and their odds and draws one. On the
leaderboard's shared data and budget (``campusnav.leaderboard``), for each seed:

- fidelity (``model_zoo.evaluate_fidelity``): precision and the position's
  total-variation distance at 1, 4 and 16 steps, for both;
- the deterministic mlp's 1-step improvement over copying (``copy_mse@1 / obs_mse@1``)
  as a share of what a perfect deterministic predictor reaches on the same kind of
  data (``campusnav.leaderboard.bounds.deterministic_bound``, with the data's policy);
- with ``--transfer``, the leaderboard's CMA-ES column: the action-scoring controller
  trained in the model's dream (ended by the env's known termination), scored in
  reality, and its return gain over random as a share of the gain of the same
  controller trained in reality (``cmaes_transfer``; reality and random per seed).

``--models mlp mlp_ensemble`` runs both variants of each (the ensemble: five members,
each deterministic or each sampling outcomes, a member drawn per imagined step).

Targets (PASS/MISS, judged on means over seeds): the deterministic mlp reaches at least
0.9 of the bound; the sampling mlp is above it on precision@16 and below it on TV@16.

    python benchmarks/mlp_outcomes.py            # about ten minutes on a 2-core CPU
    python benchmarks/mlp_outcomes.py --models mlp mlp_ensemble --transfer    # about an hour
    python benchmarks/mlp_outcomes.py --quick    # a smoke run
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import tyro

import model_zoo
from campus_env.features import goal_biased_policy
from campusnav.harness import default_results_directory, markdown_table, write_results
from campusnav.leaderboard import QUICK, Budget
from campusnav.leaderboard.bounds import deterministic_bound
from campusnav.leaderboard.budget import budget_of
from campusnav.leaderboard.cell import late_share, train_with_curve
from campusnav.leaderboard.data import CAMPUS, DATA_SEED, STATE_KWARGS, campus_data
from campusnav.leaderboard.report import TRANSFER_TARGET
from campusnav.leaderboard.summary import bootstrap_interval
from campusnav.leaderboard.transfer import EVAL_SEED, cmaes_controller, dream_envs, random_baseline, real_envs
from campusnav.threads import use_threads
from model_zoo.agents.transfer import transfer_ratio

VARIANTS = {"deterministic": {"outcomes": 1}, "outcomes=4": {"outcomes": 4}}
HORIZONS = (1, 4, 16)


@dataclass(frozen=True)
class Args(Budget):
    """mlp: deterministic vs sampled outcomes."""

    models: tuple[str, ...] = ("mlp",)
    """the mlp family's model ids to compare (mlp, mlp_ensemble)"""
    seeds: int = 3
    """seeds 0 .. seeds-1 of each variant"""
    transfer: bool = False
    """also train the CMA-ES controller in each dream and in reality and score both in reality"""
    work: str = "runs/leaderboard"
    """where the leaderboard's shared data is (collected here when missing)"""
    out: str = ""
    """results folder (default: the docs' results folder; runs/mlp-outcomes-quick under --quick)"""
    quick: bool = False
    """a smoke run: tiny data and budgets"""


def parse_args(argv: list[str] | None = None) -> Args:
    args = tyro.cli(Args, args=argv, description=__doc__)
    unknown = set(args.models) - {"mlp", "mlp_ensemble"}
    if not args.models or unknown:
        raise SystemExit(f"--models: give mlp and/or mlp_ensemble, got {list(args.models)}")
    if args.quick:
        args = dataclasses.replace(args, **asdict(QUICK), out=args.out or "runs/mlp-outcomes-quick",
                                   work=str(Path(args.work) / "quick"))
    return args


def row_name(model_id: str, variant: str) -> str:
    """The table's row: the variant alone for the mlp (as the leaderboard names it), else the model first."""
    return variant if model_id == "mlp" else f"{model_id}, {variant}"


def reality(budget: Budget, seed: int) -> dict[str, float]:
    """Real returns of the controller trained in reality and of the random policy, for the transfer ratio."""
    return {"reality_return": cmaes_controller(real_envs(budget), budget, seed)["return"],
            "random_return": random_baseline(budget, seed)["return"]}


def measure(model_id: str, budget: Budget, seed: int, overrides: dict[str, Any], data,
            reference: dict[str, float] | None) -> dict[str, float]:
    model, record = train_with_curve(model_id, seed, data, budget, budget.steps, **overrides)
    errors = model_zoo.evaluate(model, data.test, horizons=(1,), context=8, num_windows=budget.windows,
                                seed=seed).as_dict()
    fidelity = model_zoo.evaluate_fidelity(model, CAMPUS, env_kwargs={**STATE_KWARGS, "split": "train"},
                                           starts=budget.fidelity_starts, forks=budget.forks, horizons=HORIZONS,
                                           seed=EVAL_SEED + 1000 * seed + 500).as_dict()
    row = {"copy_over_model@1": errors["copy_mse@1"] / errors["obs_mse@1"], "late_share": late_share(record["curve"]),
           **{k: v for k, v in fidelity.items() if k.split("@")[0] in ("precision", "recall", "position_tv")}}
    if reference is not None:
        dream = cmaes_controller(dream_envs(model, budget), budget, seed)
        row.update(cmaes_success=dream["success"], cmaes_return=dream["return"],
                   cmaes_transfer=transfer_ratio(dream["return"], reference["reality_return"],
                                                 reference["random_return"]))
    return row


def mlp_targets(means: dict[str, dict[str, tuple[float, float, float]]], bound: float) -> list[str]:
    """The issue's targets of the mlp: the deterministic one against the bound, the sampling one against it."""
    det, sampled = means["deterministic"], means["outcomes=4"]
    share = det["copy_over_model@1"][0] / bound
    return [
        ("PASS" if share >= 0.9 else "MISS") + f"  the deterministic mlp's 1-step gain over copying is "
        f"{det['copy_over_model@1'][0]:.2f}x, {share:.2f} of the deterministic bound {bound:.2f}x (target: 0.9)",
        ("PASS" if sampled["precision@16"][0] > det["precision@16"][0] else "MISS") + f"  precision@16: outcomes=4 "
        f"{sampled['precision@16'][0]:.3f}, deterministic {det['precision@16'][0]:.3f} (target: outcomes=4 higher)",
        ("PASS" if sampled["position_tv@16"][0] < det["position_tv@16"][0] else "MISS") + f"  position TV@16: "
        f"outcomes=4 {sampled['position_tv@16'][0]:.3f}, deterministic {det['position_tv@16'][0]:.3f} "
        "(target: outcomes=4 lower)",
    ]


def transfer_lines(means: dict[str, dict[str, tuple[float, float, float]]]) -> list[str]:
    """The leaderboard's CMA-ES target, read for every row (informative: the board judges it)."""
    return [("PASS" if m["cmaes_transfer"][0] >= TRANSFER_TARGET else "MISS") + f"  {name}: CMA-ES transfer "
            f"{m['cmaes_transfer'][0]:.2f}, success in reality {m['cmaes_success'][0]:.2f} "
            f"(the leaderboard's target: {TRANSFER_TARGET})" for name, m in means.items()]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    use_threads()
    budget = budget_of(args)
    out = Path(args.out) if args.out else default_results_directory()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data = campus_data(budget, Path(args.work))
    policy = goal_biased_policy(budget.collect_bias, seed=DATA_SEED) if budget.collect_bias else None
    bound = deterministic_bound("train", budget.max_episode_steps, DATA_SEED, policy=policy,
                                steps=50 if args.quick else 1500)
    references = [reality(budget, seed) if args.transfer else None for seed in range(args.seeds)]
    runs = {row_name(model_id, name): [measure(model_id, budget, seed, overrides, data, references[seed])
                                       for seed in range(args.seeds)]
            for model_id in args.models for name, overrides in VARIANTS.items()}
    means = {name: {k: bootstrap_interval([r[k] for r in rows]) for k in rows[0]} for name, rows in runs.items()}
    keys = [f"{m}@{k}" for m in ("precision", "recall", "position_tv") for k in HORIZONS] + ["copy_over_model@1"]
    keys += ["cmaes_success", "cmaes_transfer"] if args.transfer else []
    cell = lambda v: f"{v[0]:.3g} [{v[1]:.3g}, {v[2]:.3g}]"  # noqa: E731
    table = markdown_table(["model", *keys], [[name, *(cell(m[k]) for k in keys)] for name, m in means.items()])
    lines = (mlp_targets(means, bound) if "mlp" in args.models else []) + (transfer_lines(means) if args.transfer
                                                                             else [])
    wall = time.perf_counter() - started
    markdown = "\n".join([f"# mlp: deterministic vs sampled outcomes ({time.strftime('%Y-%m-%d')})", "",
                          f"Seeds 0..{args.seeds - 1}, mean [95 % bootstrap interval]; the leaderboard's data and "
                          f"budget ({budget.steps} steps); {wall / 60:.1f} min.", "", table, "", *lines, ""])
    print(markdown)
    report = {"args": asdict(args), "runs": runs, "bound": bound, "reality": references, "targets": lines,
              "wall_seconds": wall}
    write_results("mlp_outcomes", markdown, report, directory=out)
    return report


if __name__ == "__main__":
    main()
