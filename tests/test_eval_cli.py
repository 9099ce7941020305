"""`srpo eval score` on the published output files (the official scores come back, the score JSON records the mode),
and the `srpo eval` command group's argument handling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from srpo.cli import app

runner = CliRunner()


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"published benchmark file not available: {path} (set SRPO_DATA_DIR)")
    return path


def _score(*args: str):
    res = runner.invoke(app, ["eval", "score", *args])
    assert res.exit_code == 0, res.output + repr(res.exception)
    return res


def test_score_published_mathvista_file(tmp_path, benchmarks_dir):
    outputs = _need(benchmarks_dir / "mathvista" / "results" / "bard" / "output_bard.json")
    res = _score("--benchmark", "mathvista", "--outputs", str(outputs), "--out", str(tmp_path))
    assert "mathvista official: 348/1000 = 34.80% (unparsed 80)" in res.output  # free-form failed conversions
    saved = json.loads((tmp_path / "output_bard_scores_official.json").read_text())
    official = json.loads((outputs.parent / "scores_bard.json").read_text())
    assert saved["average"] == official["average"] == {"accuracy": "34.8", "correct": 348, "total": 1000}
    assert saved["task"] == official["task"] and saved["skills"] == official["skills"]
    assert saved["scoring"]["mode"] == "official" and saved["scoring"]["options"]["legacy_int"] is False
    assert saved["scoring"]["judge"] is None


def test_score_legacy_int_and_compat_mode(tmp_path, benchmarks_dir):
    outputs = _need(benchmarks_dir / "mathvista" / "results" / "mplugowl" / "output_mplugowl_7b_ft.json")
    target = tmp_path / "legacy.json"
    res = _score("--benchmark", "mathvista", "--outputs", str(outputs), "--legacy-int", "--out", str(target))
    assert "222/1000" in res.output and json.loads(target.read_text())["scoring"]["options"]["legacy_int"] is True
    res = _score("--benchmark", "mathvista", "--outputs", str(outputs), "--out", str(tmp_path))
    assert "223/1000" in res.output  # the current normaliser (PROTOCOLS.md: +1)
    res = _score("--benchmark", "mathvista", "--outputs", str(outputs), "--mode", "srpo_compat", "--out",
                 str(tmp_path))
    assert json.loads((tmp_path / "output_mplugowl_7b_ft_scores_srpo_compat.json").read_text())["scoring"][
        "mode"] == "srpo_compat"


def test_score_published_mathvision_and_mmmu_pro_files(tmp_path, benchmarks_dir):
    mv = _need(benchmarks_dir / "mathvision" / "outputs")
    outputs = next(mv.rglob("Qwen-VL-Plus.jsonl"))
    res = _score("--benchmark", "mathvision", "--outputs", str(outputs), "--out", str(tmp_path))
    assert "mathvision official: 326/3040 = 10.72%" in res.output
    saved = json.loads((tmp_path / "Qwen-VL-Plus_scores_official.json").read_text())
    official = json.loads(outputs.with_name("Qwen-VL-Plus_result.json").read_text())
    assert {k: v for k, v in saved.items() if k != "scoring"} == official

    std = _need(benchmarks_dir / "mmmu_pro" / "gpt-4o_standard(10 options)_cot.jsonl")
    res = _score("--benchmark", "mmmu-pro", "--outputs", str(std), "--out", str(tmp_path / "mmmu.json"))
    assert "mmmu_pro official: 952/1730 = 55.03%" in res.output
    assert json.loads((tmp_path / "mmmu.json").read_text())["Overall"]["correct"] == 952


def test_score_argument_errors(tmp_path, benchmarks_dir):
    outputs = _need(benchmarks_dir / "mmmu_pro" / "gpt-4o_vision_cot.jsonl")
    res = runner.invoke(app, ["eval", "score", "--benchmark", "mmmu_pro", "--outputs", str(outputs), "--legacy-int",
                              "--out", str(tmp_path)])
    assert res.exit_code != 0 and "--legacy-int applies to mathvista only" in res.output
    res = runner.invoke(app, ["eval", "score", "--benchmark", "nope", "--outputs", str(outputs), "--out",
                              str(tmp_path)])
    assert res.exit_code == 2 and "error: --benchmark 'nope' is not a known benchmark" in res.output
    res = runner.invoke(app, ["eval", "score", "--benchmark", "mmmu_pro", "--outputs", str(tmp_path / "missing.jsonl")])
    assert res.exit_code != 0 and "does not exist" in res.output


def test_eval_group_help_and_required_options(tmp_path):
    res = runner.invoke(app, ["eval"])
    assert res.exit_code == 0 and "score" in res.output and "compare" in res.output and "--benchmark" in res.output
    res = runner.invoke(app, ["eval", "--model", "m", "--benchmark", "mathvision"])
    assert res.exit_code != 0 and "--model, --benchmark and --out are all required" in res.output
    res = runner.invoke(app, ["eval", "compare", str(tmp_path)])
    assert res.exit_code == 2 and "error: " in res.output and "is this an `srpo eval` run folder?" in res.output
