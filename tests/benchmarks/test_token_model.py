"""benchmarks/token_model.py: the quick run end to end, over two seeds, and its argument checks."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "token_model.py"
token_model = SimpleNamespace(**runpy.run_path(str(SCRIPT), run_name="token_model"))


def test_quick_run_over_two_seeds_judges_the_means(capsys, tmp_path):
    report = token_model.main(["--quick", "--seeds", "2", "--work", str(tmp_path)])
    runs, mean = report["quality"], report["quality_mean"]
    assert len(runs) == 2 and set(mean) == set(token_model.VARIANTS)
    for name, row in mean.items():
        assert row["token_acc@1"] == pytest.approx((runs[0][name]["token_acc@1"] + runs[1][name]["token_acc@1"]) / 2)
    copies = {row["copy_token_acc@1"] for row in runs[0].values()}  # one tokenizer: one baseline per seed
    assert len(copies) == 1 and 0.0 < copies.pop() <= 1.0
    for row in mean.values():  # dreams read by the probe against forks of reality
        assert 0.0 <= row["valid@16"] <= 1.0 and 0.0 <= row["cell_tv@16"] <= 1.0
    ar, par = mean["N=4 autoregressive"], mean["N=4 parallel"]
    coherent = next(t for t in report["targets"] if "more coherent" in t and "(N=4)" in t)
    assert coherent.startswith("PASS" if ar["valid@16"] > par["valid@16"] and ar["cell_tv@16"] < par["cell_tv@16"]
                               else "MISS")
    one, four = mean["N=1 parallel"]["token_acc@1"], mean["N=4 parallel"]["token_acc@1"]
    line = next(t for t in report["targets"] if "token accuracy (parallel)" in t)
    assert line.startswith("PASS" if four > one else "MISS") and "[means of 2 seeds]" in line
    out = capsys.readouterr().out
    assert "== quality (seed 0)" in out and "== quality (seed 1)" in out
    assert "| 0 | " in out and "| 1 | " in out  # the per-seed differences
    assert "| valid@1 | valid@16 | cell_tv@1 | cell_tv@16 |" in out  # the coherence columns of the results page
    again = token_model.main(["--quick", "--seeds", "2", "--work", str(tmp_path)])  # finished seeds are kept
    assert "kept from" in capsys.readouterr().out and again["quality"] == runs
    other = token_model.main(["--quick", "--seeds", "1", "--temperature", "0.9", "--work", str(tmp_path)])
    assert "kept from" not in capsys.readouterr().out and other["quality"] != runs[:1]  # other flags: trained again


def test_seeds_must_be_positive():
    with pytest.raises(SystemExit, match="--seeds must be at least 1"):
        token_model.parse_args(["--seeds", "0"])
