"""The checks behind the presets: each option of a model's preset against the preset, on the leaderboard's data.

A preset (``model_zoo.preset(model_id, "campusnav-state")``) is a set of choices: config
options and a learning rate. Each check here trains the model with the preset and with
one choice changed (``--checks rssm:delta_vector=False``, ``rssm:lr=3e-4``), with the
leaderboard's budget, data and training code (``campusnav.leaderboard.cell``), and scores
both as the leaderboard does: the 1- and 16-step observation error on held-out episodes
and fidelity against forks of reality (precision and the position's total-variation
distance at 16 steps). The preset's own run is read from the leaderboard's cell in
``--work`` when it is there (the same code, data and seed give the same weights), else
trained here. Results: ``preset_checks.{md,json}`` in the docs' results folder.

    python benchmarks/preset_checks.py --work runs/lbv2          # the default checks, seed 0
    python benchmarks/preset_checks.py --checks mlp:lr=3e-3 --seeds 0 1
    python benchmarks/preset_checks.py --quick --out /tmp/pc     # a smoke run (seconds)
"""

from __future__ import annotations

import ast
import dataclasses
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tyro

import model_zoo
from campusnav.harness import default_results_directory, markdown_table, write_json, write_results
from campusnav.leaderboard import QUICK, Budget
from campusnav.leaderboard.budget import horizons
from campusnav.leaderboard.cell import cell_folder, held_out_errors, state_fidelity, train_with_curve
from campusnav.leaderboard.data import campus_data
from campusnav.leaderboard.ledger import Ledger
from campusnav.pretrain import BUDGET_FILE
from campusnav.threads import use_threads

DEFAULT_CHECKS = ("rssm:delta_vector=False", "rssm:normalize_inputs=False", "rssm:hold_constant_dims=False",
                  "rssm:lr=3e-4", "causal_vae_mdnrnn:delta_vector=False", "causal_vae_mdnrnn:lr=1e-3",
                  "vae_mdnrnn:delta_vector=False", "vae_mdnrnn:lr=1e-3", "vqvae_transformer:lr=1e-3")
METRICS = (("obs_mse@1", "lower"), ("obs_mse@16", "lower"), ("precision@16", "higher"), ("position_tv@16", "lower"))


@dataclass(frozen=True)
class Args:
    checks: list[str] = field(default_factory=lambda: list(DEFAULT_CHECKS))
    """MODEL:FIELD=VALUE, one preset choice changed per check (a config field, or lr)"""
    seeds: list[int] = field(default_factory=lambda: [0])
    """training seeds of each check (weights and batches; the data is the leaderboard's)"""
    work: str = "runs/leaderboard"
    """the leaderboard's work folder: its data, budget and cells (the preset's runs) are read from there"""
    out: str = ""
    """results folder (default: the docs' results folder; the work folder under --quick)"""
    merge: bool = False
    """keep the rows of the results already in --out and replace those these checks measure again (same model,
    choice and seed): re-measure some checks after a preset changed without rerunning all"""
    quick: bool = False
    """a smoke run: the leaderboard's quick budget, in --work/quick"""
    threads: int | None = None
    """torch threads (default: one, the fastest for the zoo's small networks)"""


@dataclass(frozen=True)
class Check:
    model: str
    name: str
    value: Any

    @property
    def overrides(self) -> dict[str, Any]:
        return {} if self.name == "lr" else {self.name: self.value}

    @property
    def lr(self) -> float | None:
        return float(self.value) if self.name == "lr" else None

    def preset_value(self) -> Any:
        preset = model_zoo.preset(self.model, "campusnav-state")
        if self.name == "lr":
            return preset.lr
        spec = model_zoo.registry.spec(self.model)
        chosen = {**spec.kwargs, **preset.config}
        return chosen[self.name] if self.name in chosen else config_fields(self.model)[self.name].default


def config_fields(model_id: str) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(model_zoo.registry.spec(model_id).load_class().Config)}


def parse_check(text: str) -> Check:
    """``MODEL:FIELD=VALUE`` (VALUE a Python literal) into a ``Check``; a clear ``ValueError`` otherwise."""
    model, _, assignment = text.partition(":")
    name, equals, raw = assignment.partition("=")
    if not (model and name and equals):
        raise ValueError(f"check {text!r}: write MODEL:FIELD=VALUE, e.g. rssm:lr=3e-4")
    if model not in model_zoo.list_models():
        raise ValueError(f"check {text!r}: unknown model {model!r}; registered: {', '.join(model_zoo.list_models())}")
    if name != "lr" and name not in config_fields(model):
        raise ValueError(f"check {text!r}: {model} has no config field {name!r}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        raise ValueError(f"check {text!r}: {raw!r} is not a Python literal") from None
    return Check(model, name, value)


def parse_args(argv: list[str] | None = None) -> tuple[Args, list[Check], Budget]:
    args = tyro.cli(Args, args=argv, description=__doc__)
    try:
        checks = [parse_check(text) for text in args.checks]
    except ValueError as error:
        print(f"error: argument --checks: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    if not args.seeds or min(args.seeds) < 0:
        print("error: argument --seeds: give at least one seed, none negative", file=sys.stderr)
        raise SystemExit(2)
    if args.quick:
        args = dataclasses.replace(args, work=str(Path(args.work) / "quick"), out=args.out or str(
            Path(args.work) / "quick"))
        return args, checks, QUICK
    saved = Path(args.work) / BUDGET_FILE
    budget = Budget(**json.loads(saved.read_text())) if saved.exists() else Budget()
    return args, checks, budget


def scored(model_id: str, seed: int, budget: Budget, work: Path, lr: float | None = None,
           **overrides: Any) -> dict[str, float]:
    """Train (the leaderboard's way) and score one run: its errors, fidelity and training seconds."""
    data = campus_data(budget, work)
    model, record = train_with_curve(model_id, seed, data, budget, budget.steps, lr=lr, **overrides)
    errors = held_out_errors(model, data, horizons(budget), budget, seed)
    return _row(record, errors, state_fidelity(model, budget, seed), budget)


def preset_run(model_id: str, seed: int, budget: Budget, work: Path) -> dict[str, float]:
    """The preset's run: the leaderboard's cell when it has been scored, else trained and scored here."""
    stages = Ledger(cell_folder(work, model_id, seed) / "stages.json").stages
    if {"train", "errors", "fidelity"} <= set(stages) and stages["train"]["steps"] == budget.steps:
        return _row(stages["train"], stages["errors"], stages["fidelity"], budget)
    return scored(model_id, seed, budget, work)


def _row(train: dict, errors: dict, fidelity: dict, budget: Budget) -> dict[str, float]:
    long = horizons(budget)[1]
    return {"obs_mse@1": errors["obs_mse@1"], "obs_mse@16": errors[f"obs_mse@{long}"],
            "precision@1": fidelity["precision@1"], "precision@16": fidelity["precision@16"],
            "position_tv@16": fidelity["position_tv@16"],
            "train_s": train["train_s"]}


def verdict(preset: dict[str, float], changed: dict[str, float]) -> str:
    """Which side the four metrics favour: "preset", "changed" or "split" (a tie counts for neither)."""
    wins = {"preset": 0, "changed": 0}
    for key, better in METRICS:
        if preset[key] != changed[key]:
            preset_better = (preset[key] < changed[key]) == (better == "lower")
            wins["preset" if preset_better else "changed"] += 1
    if wins["preset"] == wins["changed"]:
        return "split"
    return max(wins, key=wins.get)


def merged(path: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of the results at ``path`` (if any), each replaced by the row of ``rows`` with its model, choice
    and seed, then the rows that are new, in order."""
    fresh = {_key(row): row for row in rows}
    earlier = json.loads(path.read_text())["rows"] if path.exists() else []
    kept = [fresh.pop(_key(row), row) for row in earlier]
    return kept + [row for row in rows if _key(row) in fresh]


def _key(row: dict[str, Any]) -> tuple[str, str, int]:
    return row["model"], row["choice"], row["seed"]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args, checks, budget = parse_args(argv)
    use_threads(args.threads)
    work = Path(args.work)
    rows = []
    for check in checks:
        for seed in args.seeds:
            preset = preset_run(check.model, seed, budget, work)
            changed = scored(check.model, seed, budget, work, lr=check.lr, **check.overrides)
            rows.append({"model": check.model, "choice": check.name, "preset": check.preset_value(),
                         "changed": check.value, "seed": seed, "preset_run": preset, "changed_run": changed,
                         "favours": verdict(preset, changed)})
            print(f"{check.model} {check.name}: {check.preset_value()} -> {check.value} (seed {seed}): "
                  f"favours {rows[-1]['favours']}", flush=True)
    out = Path(args.out) if args.out else default_results_directory()
    if args.merge:
        rows = merged(out / "preset_checks.json", rows)
    table = markdown_table(
        ["model", "choice: preset → changed", "seed", *(f"{k} preset / changed" for k, _ in METRICS), "favours"],
        [[r["model"], f"{r['choice']}: {r['preset']} → {r['changed']}", r["seed"],
          *(f"{r['preset_run'][k]:.4g} / {r['changed_run'][k]:.4g}" for k, _ in METRICS), r["favours"]]
         for r in rows])
    notes = ("- Each row changes one choice of the model's campusnav-state preset and keeps the rest; both runs "
             "train with the leaderboard's data and budget "
             f"({budget.steps} steps, batch {budget.batch_size} x {budget.seq_len}) and the same seed.\n"
             "- favours: the side that wins more of the four metrics (obs_mse lower, precision higher, "
             "position TV lower).")
    if args.merge:
        notes += "\n- Merged: the rows of other checks are kept from the results written before this command."
    report = {"budget": asdict(budget), "rows": rows}
    if args.quick:
        write_json(out / "preset_checks.json", report)
    else:
        write_results("preset_checks", table + "\n\n" + notes, report, directory=out)
    print(table)
    return report


if __name__ == "__main__":
    main()
