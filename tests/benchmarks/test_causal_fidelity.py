"""benchmarks/causal_fidelity.py: a smoke run, and the results page written from its results."""

from __future__ import annotations

import runpy
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "causal_fidelity.py"


def test_the_page_tabulates_every_intervention_and_the_targets_of_a_quick_run():
    namespace = runpy.run_path(str(SCRIPT), run_name="causal_fidelity")
    results = namespace["main"](["--quick", "--seeds", "0", "1"])
    page = namespace["page"](results)
    for name in results["error"]["causal_vae_mdnrnn"]:
        assert f"| {name} | {results['error']['causal_vae_mdnrnn'][name]:.3f} |" in page
    held = results["heldout_error"]
    held_row = page.split("held out (mean)**")[1].splitlines()[0]
    assert f"{held['causal_vae_mdnrnn'] / held['vae_mdnrnn']:.2f} |" in held_row
    ratios = ", ".join(f"{r:.2f}" for r in results["heldout_ratio_per_seed"])
    assert f"per replicate: {ratios}." in page and all(f"- {line}" in page for line in results["targets"])
