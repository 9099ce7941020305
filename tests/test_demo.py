"""`srpo demo --quick` end to end, as a user runs it."""

import json
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

from srpo.eval.paired import mcnemar_exact_p
from srpo.train.callbacks import load_log_history
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
    # the paired tests of stage 2 against stage 1 on the same items, first and final answers
    for answer in ("first", "final"):
        paired = metrics["paired"]["stage1_vs_stage2"][answer]
        assert paired["n_common"] == 60 and paired["mcnemar_p"] == mcnemar_exact_p(paired["only_a"], paired["only_b"])
        assert paired["accuracy_b"] == metrics["stages"]["stage2"][f"{answer}_accuracy"]
        low, high = metrics["stages"]["stage2"]["intervals95"][f"{answer}_accuracy"]
        assert low <= paired["accuracy_b"] <= high
    length = metrics["length_term"]["stage2"]
    assert length["steps"] == 6 and 0 <= length["f_len_mean"] <= 1
    # the demo's length_targets reach the reward: at the paper's 2 / 2.5 T0 f_len is about 0 for every response
    assert length["f_len_mean"] > 0.1 and length["f_len_group_std"] > 0.05
    for term in PAPER_TERMS:
        assert f"rewards/{term}/mean" in metrics["logged_reward_terms"]
    # the RL rate decays (a constant one let the final answer slip: docs/method.md#demo-findings)
    rates = [h["learning_rate"] for h in load_log_history(out / "stage2") if "learning_rate" in h]
    assert rates[-1] < rates[0] / 2
    for transition in TRANSITIONS:
        assert f"transitions/{transition}" in metrics["logged_reward_terms"]
    for plot in ("reward_terms", "accuracy_per_stage", "transitions", "transitions_over_steps"):
        assert (out / "plots" / f"{plot}.png").stat().st_size > 5000
    # stage 2 changed the policy: other weights, and other answers on the held-out problems
    stage1, stage2 = (load_file(out / name / "final" / "model.safetensors") for name in ("stage1", "stage2"))
    assert any(not torch.equal(tensor, stage2[key]) for key, tensor in stage1.items())
    responses = {name: [json.loads(line)["response"] for line in (out / "eval" / name / "items.jsonl").read_text()
                        .splitlines()] for name in ("stage1", "stage2")}
    assert responses["stage1"] != responses["stage2"]
    report = (out / "report.md").read_text()
    assert "| stage2 |" in report and "plots/reward_terms.png" in report
    assert "| stage1 -> stage2 | first |" in report and "| stage1 -> stage2 | final |" in report
    assert "stage 2 vs base" in result.stdout  # the one-screen summary

    # the rerun adds --compare: finished stages are kept, only the compared methods are trained (from the same stage-1
    # model) and evaluated, and the report pairs each with stage 2 on the same held-out items
    # (2 RL steps per compared method keep the test short: stage 2 is done, so its 6 steps stay as they are)
    rerun = subprocess.run([sys.executable, "-m", "srpo.cli", "demo", "--quick", "--compare", "--rl_steps", "2",
                            "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert rerun.stdout.count("already done") >= 6  # finished stages are kept, not redone
    metrics = json.loads((out / "metrics.json").read_text())
    methods = ["grpo", "reference", "perception", "srpo_perception"]
    assert set(metrics["stages"]) == {"base", "stage1", "stage2", *methods}
    for name in methods:  # all from the stage-1 model
        assert yaml.safe_load((out / name / "config.yaml").read_text())["model_name_or_path"] == str(out / "stage1" / "final")
    # each perception method logged the oracle's r_v, the repetition term and its judge's health at every step
    for name in ("perception", "srpo_perception"):
        steps = [h for h in load_log_history(out / name) if "judge/requests" in h]
        assert len(steps) == 2 and all(h["judge/failures"] == 0 for h in steps)
        assert all("rewards/perception_reward/mean" in h and "rewards/repetition_reward/mean" in h for h in steps)
    report = (out / "report.md").read_text()
    assert "## Paired: each compared method against stage 2 (SRPO)" in report
    verdicts = {name: {row["id"]: row["correct"] for row in map(json.loads, (out / "eval" / name / "items.jsonl")
                                                               .read_text().splitlines())} for name in ["stage2", *methods]}
    right = {name: {i for i, ok in v.items() if ok} for name, v in verdicts.items()}
    assert [row["b"] for row in metrics["paired_vs_stage2"]] == methods
    for paired in metrics["paired_vs_stage2"]:
        a, b = right["stage2"], right[paired["b"]]
        assert {k: paired[k] for k in ("a", "n_common", "both_right", "only_a", "only_b", "both_wrong")} == {
            "a": "stage2", "n_common": 60, "both_right": len(a & b), "only_a": len(a - b), "only_b": len(b - a),
            "both_wrong": 60 - len(a | b)}
        assert paired["mcnemar_p"] == mcnemar_exact_p(paired["only_a"], paired["only_b"])
        low, high = paired["difference_ci95"]
        assert low <= paired["difference"] <= high
        assert (f"| stage2 | {paired['b']} | 60 | {paired['both_right']} | {paired['only_a']} | {paired['only_b']} |"
                in report)
    # the explorer pages: stage 1 against each stage-2 method, linked from the report
    for name in ["stage2", *methods]:
        page = out / "views" / f"stage1_vs_{name}.html"
        assert page.stat().st_size > 10_000 and f"views/stage1_vs_{name}.html" in report
