"""`srpo demo --quick` end to end, as a user runs it."""

import json
import subprocess
import sys

import pytest

from srpo.rewards import TRANSITIONS

pytestmark = pytest.mark.slow

STAGE_FIELDS = {"final_accuracy", "first_accuracy", "format_rate", "reflection_rate", "mean_response_tokens",
                "mean_reflection_tokens", *TRANSITIONS}
PAPER_TERMS = ["format_reward", "accuracy_reward", "effectiveness_reward", "reflection_reward", "length_reward"]


def test_quick_demo_writes_metrics_report_and_plots(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "srpo.cli", "demo", "--quick", "--out", str(out)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["stages"]) == {"base", "stage1", "stage2"}
    for name, stage in metrics["stages"].items():
        assert STAGE_FIELDS <= set(stage), name
        # each stage is evaluated as `srpo eval` evaluates a problem file: the same run folder
        for run_file in ("run.json", "responses.jsonl", "items.jsonl", "outputs_problems.jsonl", "scores.json",
                         "report.md"):
            assert (out / "eval" / name / run_file).is_file(), (name, run_file)
        assert stage["n"] == stage["n_scored"] == 60 and stage["correct"] == round(60 * stage["final_accuracy"])
    for term in PAPER_TERMS:
        assert f"rewards/{term}/mean" in metrics["logged_reward_terms"]
    for transition in TRANSITIONS:
        assert f"transitions/{transition}" in metrics["logged_reward_terms"]
    for plot in ("reward_terms", "accuracy_per_stage", "transitions", "transitions_over_steps"):
        assert (out / "plots" / f"{plot}.png").stat().st_size > 5000
    report = (out / "report.md").read_text()
    assert "| stage2 |" in report and "plots/reward_terms.png" in report
    assert "stage 2 vs base" in result.stdout  # the one-screen summary

    rerun = subprocess.run([sys.executable, "-m", "srpo.cli", "demo", "--quick", "--out", str(out)],
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0
    assert rerun.stdout.count("already done") >= 5  # finished stages are kept, not redone
