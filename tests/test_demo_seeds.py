"""benchmarks/demo_seeds.py: issue 14's bar on paired verdicts, and its refusal of a folder whose run would resume."""

import importlib.util
import subprocess
import sys
from pathlib import Path

from srpo.eval.paired import paired_summary

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "demo_seeds.py"


def load_script():
    spec = importlib.util.spec_from_file_location("demo_seeds", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def paired(stage1_right: int, stage2_right: int, n: int = 1000) -> dict:
    """Stage 2 right on a superset (or subset) of stage 1's items: the counts a real paired run would give."""
    stage1 = {i: i < stage1_right for i in range(n)}
    stage2 = {i: i < stage2_right for i in range(n)}
    return paired_summary(stage1, stage2, draws=200)


def test_the_bar_first_up_10_final_not_below_and_plus_5_under_90():
    verdict = load_script().verdict
    ok = verdict({"first": paired(331, 610), "final": paired(919, 993)}, demo_s=658.4)["checks"]
    assert ok == {"first_up_10_points": True, "final_not_below": True, "demo_within_15_minutes": True}
    # +9.9 first is short of 10 points; one item fewer on the final answer is below stage 1; 15m01s is over
    short = verdict({"first": paired(331, 430), "final": paired(998, 997)}, demo_s=901)["checks"]
    assert short == {"first_up_10_points": False, "final_not_below": False, "demo_within_15_minutes": False}
    # below 90% the final answer must rise 5 points: +4.0 fails, +6.0 passes
    assert not verdict({"first": paired(330, 600), "final": paired(850, 890)}, 600)["checks"]["final_not_below"]
    assert verdict({"first": paired(330, 600), "final": paired(850, 910)}, 600)["checks"]["final_not_below"]


def test_a_folder_holding_a_run_is_refused_before_any_demo_starts(tmp_path):
    (tmp_path / "seed_1").mkdir()
    (tmp_path / "seed_1" / "demo_config.json").write_text("{}")
    result = subprocess.run([sys.executable, str(SCRIPT), "--seeds", "0", "1", "--out", str(tmp_path),
                             "--results", str(tmp_path / "results.json")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "seed_1" in result.stderr and "fresh --out" in result.stderr
    assert not (tmp_path / "seed_0").exists() and not (tmp_path / "results.json").exists()
