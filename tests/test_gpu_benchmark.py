"""benchmarks/gpu_grpo.py and benchmarks/gpu_check.sh on CPU: every row end to end on the tiny model, a killed run
keeping its finished rows, the time budget, the real 3B shape (on the meta device), and the one-line import check."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_grpo.py"
CHECK = ROOT / "benchmarks" / "gpu_check.sh"
ROWS = ["srpo_recipe", "generation_batch", "micro_batch", "gradient_checkpointing", "precision", "trl_defaults"]
CPU_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}


def load_benchmark():
    spec = importlib.util.spec_from_file_location("gpu_grpo", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_smoke_runs_every_row_and_prints_the_table(tmp_path):
    # The whole shell script, against this venv instead of carried wheels, on the offline tiny processor.
    env = {**CPU_ENV, "PYTHON": sys.executable, "SRPO_SKIP_WHEELS": "1", "OUT": str(tmp_path / "out"),
           "PROCESSOR": str(tmp_path / "absent")}
    result = subprocess.run(["bash", str(CHECK), "--smoke"], capture_output=True, text=True, timeout=300, env=env,
                            cwd=tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    report = json.loads((tmp_path / "out" / "gpu_grpo_cpu.json").read_text())
    assert report["complete"] and report["device"] == "cpu" and report["smoke"]
    assert [(r["row"], r["status"]) for r in report["rows"]] == [(row, "ok") for row in ROWS]
    rows = {r["row"]: r for r in report["rows"]}
    for row in rows.values():
        assert row["steps_measured"] == 1
        for key in ("generation_tokens_per_s", "training_tokens_per_s", "step_time_s", "train_tflops_per_s"):
            assert isinstance(row[key], float) and row[key] > 0, (row["row"], key, row[key])
    # Each row differs from the recipe in its one variable only (smoke: 2 prompts x 8 = 16 completions).
    settings = {name: r["settings"] for name, r in rows.items()}
    base = settings["srpo_recipe"]
    assert (base["generation_batch_size"], base["per_device_train_batch_size"], base["gradient_accumulation_steps"],
            base["activation_checkpointing"], base["loss_type"]) == (16, 4, 4, True, "grpo")
    changed = {name: {k for k in base if settings[name][k] != base[k]} for name in ROWS[1:5]}
    assert changed == {"generation_batch": {"generation_batch_size", "steps_per_generation"},
                       "micro_batch": {"per_device_train_batch_size", "gradient_accumulation_steps",
                                       "steps_per_generation"},
                       "gradient_checkpointing": {"activation_checkpointing"}, "precision": set()}
    assert rows["precision"]["changes"] == "weights=float32"  # on CPU every row keeps float32 weights
    assert all(rows[name]["completions_per_step"] == 16 for name in ROWS[:5])
    trl = settings["trl_defaults"]
    assert (trl["generation_batch_size"], trl["per_device_train_batch_size"], trl["loss_type"]) == (8, 8, "dapo")
    assert rows["trl_defaults"]["completions_per_step"] == 8
    assert [r["vision_frozen"] for r in report["rows"]] == [True] * 5 + [False]
    # The compact table, printed from the file at the end.
    table = result.stdout[result.stdout.index("| row | status | gen tok/s | train tok/s | MFU |"):]
    assert [line.split("|")[1].strip() for line in table.splitlines()[2:8]] == ROWS
    assert "imports ok: torch" in result.stdout


def test_a_killed_run_keeps_every_finished_row(tmp_path):
    out = tmp_path / "gpu_grpo_cpu.json"
    process = subprocess.Popen([sys.executable, str(SCRIPT), "--smoke", "--out-dir", str(tmp_path)], env=CPU_ENV,
                               cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not out.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL  # killed mid-run, not finished
    report = json.loads(out.read_text())
    assert not report["complete"]
    assert [(r["row"], r["status"]) for r in report["rows"]] == [("srpo_recipe", "ok")]
    assert report["rows"][0]["training_tokens_per_s"] > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_rows_past_the_budget_are_recorded_as_skipped(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out-dir", str(tmp_path), "--budget-s", "0"],
                            capture_output=True, text=True, timeout=240, env=CPU_ENV, cwd=tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    report = json.loads((tmp_path / "gpu_grpo_cpu.json").read_text())
    assert report["complete"] and [(r["row"], r["status"]) for r in report["rows"]] == [(row, "skipped") for row in ROWS]
    assert all("> --budget-s 0" in r["error"] and "steps_measured" not in r for r in report["rows"])


def test_a_row_is_estimated_from_the_longest_row_run_and_float32_rows_as_twice_that():
    estimate = load_benchmark().estimated_row_s
    finished = [{"status": "ok", "row_time_s": 30.0}, {"status": "oom", "row_time_s": 50.0},
                {"status": "skipped", "row_time_s": 0.0}]
    assert estimate("micro_batch", []) == 0.0
    assert [estimate(row, finished) for row in ("micro_batch", "precision", "trl_defaults")] == [50.0, 100.0, 100.0]


def test_peak_table_matches_device_names():
    peak = load_benchmark().peak_tflops
    assert [peak(name) for name in ("NVIDIA H200", "NVIDIA H200 NVL", "NVIDIA H20", "NVIDIA H100 PCIe",
                                    "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", "NVIDIA L40S", "Tesla T4")] == [
        989.4, 835.0, 148.0, 756.0, 989.4, 312.0, 362.0, None]


def test_the_benchmarked_model_is_qwen2_5_vl_3b_with_the_real_tokenizer(real_processor_dir):
    benchmark = load_benchmark()
    args = Namespace(smoke=False, processor=str(real_processor_dir), seed=0, attn_implementation="sdpa")
    processor, build = benchmark.model_and_processor_factory(args, benchmark.load_recipe())
    model = build(torch.bfloat16, "meta")  # shapes only, no memory
    assert sum(p.numel() for p in model.parameters()) == 3_754_622_976  # Qwen/Qwen2.5-VL-3B-Instruct
    counts = benchmark.param_counts(model)
    assert (counts["vision"], counts["embedding"]) == (668_684_288, 151_936 * 2048)
    assert model.config.image_token_id == processor.tokenizer.convert_tokens_to_ids("<|image_pad|>") == 151655
    assert model.config.text_config.eos_token_id == processor.tokenizer.convert_tokens_to_ids("<|im_end|>")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_gpu_benchmark_fails_fast_without_a_gpu(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    assert "needs a CUDA GPU" in result.stderr and "--smoke" in result.stderr


def test_gpu_check_names_a_missing_package_in_one_line(tmp_path):
    shadow = tmp_path / "shadow" / "trl"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named trl')\n")
    env = {**CPU_ENV, "PYTHON": sys.executable, "SRPO_SKIP_WHEELS": "1", "PYTHONPATH": str(shadow.parent),
           "OUT": str(tmp_path / "out")}
    result = subprocess.run(["bash", str(CHECK)], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        "gpu_check.sh: cannot import trl: ImportError: No module named trl "
        "(carry its wheel: bash benchmarks/gpu_wheels.sh, then name .whl in carry)"]
    assert not (tmp_path / "out" / "gpu_grpo.log").exists()  # stopped before the benchmark
