"""Runs you can trust: a resumed run holds exactly the weights an uninterrupted one does, a finished run is never
retrained or overwritten, a checkpoint cut short by a kill is skipped, and a changed setting is refused."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import TrainerCallback
from typer.testing import CliRunner

from srpo.cli import app
from srpo.config import SRPOGRPOConfig, SRPOSFTConfig
from srpo.data import generate_problems, problems_to_dataset, save_problems
from srpo.models import ModelLoadError, load_model
from srpo.train.checkpoints import CheckpointMismatch, incomplete_reason
from srpo.train.rl import build_rl_trainer, run_rl
from srpo.train.sft import run_sft

pytestmark = pytest.mark.slow


def sft_config(model, data, out, **kw):
    base = dict(model_name_or_path=str(model), dataset=str(data), output_dir=str(out), max_steps=4, save_steps=2,
                per_device_train_batch_size=2, gradient_accumulation_steps=1, learning_rate=1e-3, report_to=[],
                logging_steps=1, warmup_steps=0.0)
    return SRPOSFTConfig(**{**base, **kw})


def weights(folder) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def file_digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("options", [dict(freeze_vision=False), dict(freeze_vision=True), dict(use_peft=True, lora_r=4)],
                         ids=["full", "frozen-vision", "lora"])
def test_sft_resumed_from_a_checkpoint_ends_with_the_uninterrupted_weights(tiny_model_dir, sft_dataset, tmp_path,
                                                                           options):
    run_sft(sft_config(tiny_model_dir, sft_dataset, tmp_path / "a", **options))
    (tmp_path / "b").mkdir()
    shutil.copytree(tmp_path / "a" / "checkpoint-2", tmp_path / "b" / "checkpoint-2")  # as if killed after step 2
    run_sft(sft_config(tiny_model_dir, sft_dataset, tmp_path / "b", **options))

    uninterrupted, resumed = weights(tmp_path / "a" / "final"), weights(tmp_path / "b" / "final")
    assert max_difference(uninterrupted, resumed) <= 1e-6
    assert max_difference(uninterrupted, weights(tiny_model_dir)) > 1e-4  # training did change the weights


@pytest.fixture(scope="module")
def answering_model(tmp_path_factory, tiny_model_dir):
    """The tiny model taught to answer `<think>N</think> <answer>N</answer>`, so GRPO's rewards differ within a group
    (a random model's are all 0: no advantage, no update, and nothing for a resume test to tell apart)."""
    root = tmp_path_factory.mktemp("answering")
    problems = generate_problems(12, seed=3, difficulty=1, image_size=84)
    ds = problems_to_dataset(problems).add_column(
        "target", [f"<think>{p.answer}</think> <answer>{p.answer}</answer>" for p in problems])
    ds.save_to_disk(str(root / "data" / "dataset"))
    cfg = sft_config(tiny_model_dir, root / "data", root / "sft", max_steps=30, per_device_train_batch_size=4,
                     learning_rate=3e-3, warmup_steps=0.1, save_steps=1000, logging_steps=10, system_prompt="attempt")
    return run_sft(cfg).final, save_problems(problems, root / "problems.jsonl")


def rl_config(model, problems, out, **kw):
    base = dict(model_name_or_path=str(model), dataset=str(problems), output_dir=str(out), preset="grpo", system_prompt="attempt",
                num_generations=4, prompts_per_generation=2, optimizer_batch_size=8,
                per_device_train_batch_size=4, max_completion_length=12,
                max_steps=4, save_steps=2, learning_rate=2e-4, warmup_steps=0.0, report_to=[], logging_steps=1,
                max_prompt_length=512, seed=3)
    return SRPOGRPOConfig(**{**base, **kw})


def test_rl_resumed_from_a_checkpoint_starts_from_its_tensors_and_ends_identical(answering_model, tmp_path):
    model, problems = answering_model
    run_rl(rl_config(model, problems, tmp_path / "a"))
    history = json.loads((tmp_path / "a" / "checkpoint-4" / "trainer_state.json").read_text())["log_history"]
    assert any(h.get("reward_std", 0) > 0 for h in history), f"no group had different rewards: nothing was learned {history}"

    # The resumed run's first step starts from the checkpoint's tensors exactly.
    (tmp_path / "b").mkdir()
    shutil.copytree(tmp_path / "a" / "checkpoint-2", tmp_path / "b" / "checkpoint-2")
    cfg = rl_config(model, problems, tmp_path / "b")
    trainer = build_rl_trainer(cfg)
    at_start = {}

    class RecordStart(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            at_start.update({k: v.detach().clone() for k, v in model.state_dict().items()})

    trainer.add_callback(RecordStart())
    trainer.train(resume_from_checkpoint=str(tmp_path / "b" / "checkpoint-2"))
    checkpoint = weights(tmp_path / "a" / "checkpoint-2")  # written with the model's own key names
    assert checkpoint.keys() <= at_start.keys() and at_start.keys() - checkpoint.keys() == {"lm_head.weight"}
    assert [k for k in checkpoint if not torch.equal(checkpoint[k], at_start[k])] == []

    # Resumed for the two remaining steps: sampling is seeded and its RNG state restored, so the run is identical.
    (tmp_path / "c").mkdir()
    shutil.copytree(tmp_path / "a" / "checkpoint-2", tmp_path / "c" / "checkpoint-2")
    run_rl(rl_config(model, problems, tmp_path / "c"))
    uninterrupted, resumed = weights(tmp_path / "a" / "final"), weights(tmp_path / "c" / "final")
    assert max_difference(uninterrupted, resumed) == 0.0
    assert max_difference(uninterrupted, weights(model)) > 0  # RL did change the weights

    # Killed after the last step's checkpoint but before final/: the rerun trains nothing more (Trainer alone would
    # train one step past max_steps) and writes the same final model.
    (tmp_path / "d").mkdir()
    shutil.copytree(tmp_path / "a" / "checkpoint-4", tmp_path / "d" / "checkpoint-4")
    run_rl(rl_config(model, problems, tmp_path / "d"))
    assert not (tmp_path / "d" / "checkpoint-5").exists()
    assert max_difference(uninterrupted, weights(tmp_path / "d" / "final")) == 0.0


def write_sft_yaml(path, model, data, out, **kw):
    values = {"model_name_or_path": str(model), "dataset": str(data), "output_dir": str(out), "max_steps": 4, "save_steps": 2,
              "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1, "learning_rate": 1e-3,
              "report_to": [], "logging_steps": 1, "warmup_steps": 0.0, **kw}
    path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in values.items()))
    return path


def test_sigkill_during_a_checkpoint_save_resumes_from_the_last_whole_one(tiny_model_dir, sft_dataset, tmp_path):
    run_sft(sft_config(tiny_model_dir, sft_dataset, tmp_path / "a", max_steps=6))
    out = tmp_path / "b"
    config = write_sft_yaml(tmp_path / "sft.yaml", tiny_model_dir, sft_dataset, out, max_steps=6)
    command = [sys.executable, "-m", "srpo.cli", "sft", "--config", str(config)]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    # Kill as soon as checkpoint-4's folder exists: its weights and optimizer are being written, its
    # trainer_state.json (written last) is not there yet.
    while not (out / "checkpoint-4").exists():
        assert child.poll() is None, "the run ended before its second checkpoint"
        assert time.time() < deadline, "no second checkpoint within 300 s"
        time.sleep(0.001)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    assert incomplete_reason(out / "checkpoint-4") is not None, "the kill came after the save finished"
    assert incomplete_reason(out / "checkpoint-2") is None

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"skipping {out / 'checkpoint-4'}: incomplete" in rerun.stderr
    assert f"resuming from {out / 'checkpoint-2'}" in rerun.stderr
    assert max_difference(weights(tmp_path / "a" / "final"), weights(out / "final")) <= 1e-6


def test_a_finished_run_is_left_alone_extended_or_refused(tiny_model_dir, sft_dataset, tmp_path):
    out = tmp_path / "run"
    config = write_sft_yaml(tmp_path / "sft.yaml", tiny_model_dir, sft_dataset, out)
    runner = CliRunner()
    first = runner.invoke(app, ["sft", "--config", str(config)])
    assert first.exit_code == 0, first.output
    final = out / "final" / "model.safetensors"
    digest, mtime = file_digest(final), final.stat().st_mtime_ns
    saved = (out / "config.yaml").read_text()
    assert "learning_rate: 0.001" in saved and f"output_dir: {out}" in saved

    # The same command again: nothing is trained or written.
    again = runner.invoke(app, ["sft", "--config", str(config)])
    assert again.exit_code == 0, again.output
    assert f"already finished: the final model is in {out / 'final'}" in again.output
    assert file_digest(final) == digest and final.stat().st_mtime_ns == mtime

    # Another learning rate or dataset: refused, naming each change and the ways out; nothing touched.
    changed = runner.invoke(app, ["sft", "--config", str(config), "--learning_rate", "2e-3", "--dataset", "other"])
    assert changed.exit_code == 2
    assert "learning_rate: 0.001 -> 0.002" in changed.output and f"dataset: '{sft_dataset}' -> 'other'" in changed.output
    assert "--overwrite" in changed.output and "new output_dir" in changed.output
    assert file_digest(final) == digest

    # A longer run continues from the last step's checkpoint, and replaces final/ when it ends.
    longer = runner.invoke(app, ["sft", "--config", str(config), "--max_steps", "6"])
    assert longer.exit_code == 0, longer.output
    assert f"resuming from {out / 'checkpoint-4'}" in longer.output  # the last step's checkpoint, not the base model
    assert max_difference(weights(out / "checkpoint-4"), weights(out / "checkpoint-6")) > 0
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert [h["step"] for h in state["log_history"] if "loss" in h] == [1, 2, 3, 4, 5, 6]
    assert file_digest(final) != digest
    assert "max_steps: 6" in (out / "config.yaml").read_text()

    # --overwrite starts again from the base model.
    fresh = runner.invoke(app, ["sft", "--config", str(config), "--learning_rate", "2e-3", "--overwrite"])
    assert fresh.exit_code == 0, fresh.output
    assert not (out / "checkpoint-6").exists()
    assert "learning_rate: 0.002" in (out / "config.yaml").read_text()


def test_a_checkpoint_with_other_tensor_names_stops_the_resume(tiny_model_dir, sft_dataset, tmp_path):
    run_sft(sft_config(tiny_model_dir, sft_dataset, tmp_path / "a", max_steps=2))
    checkpoint = tmp_path / "b" / "checkpoint-2"
    shutil.copytree(tmp_path / "a" / "checkpoint-2", checkpoint)
    # The layout `save_pretrained` writes for the ecosystem (visual.*, model.layers.*): Trainer alone loads none of it.
    shutil.copy(tmp_path / "a" / "final" / "model.safetensors", checkpoint / "model.safetensors")
    with pytest.raises(CheckpointMismatch, match=r"80 of the model's tensors are not in it \(model\.language_model\..*"
                       r"80 of its tensors are not in the model \(model\.embed_tokens"):
        run_sft(sft_config(tiny_model_dir, sft_dataset, tmp_path / "b"))


def test_a_lora_checkpoint_that_does_not_fit_the_adapter_stops_the_resume(tiny_model_dir, sft_dataset, tmp_path):
    run_sft(sft_config(tiny_model_dir, sft_dataset, tmp_path / "a", max_steps=2, use_peft=True, lora_r=4))
    shutil.copytree(tmp_path / "a" / "checkpoint-2", tmp_path / "b" / "checkpoint-2")
    with pytest.raises(CheckpointMismatch, match=r"adapter_model\.safetensors does not match .* of its tensors are "
                                                 r"not in the model \(.*mlp"):
        run_sft(sft_config(tiny_model_dir, sft_dataset, tmp_path / "b", use_peft=True, lora_r=4,
                           lora_target_modules=r"^(?!.*visual).*\.(q_proj|v_proj)$"))


def test_a_model_missing_a_tensor_is_refused_by_name(tiny_model_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    tensors = weights(broken)
    del tensors["visual.merger.ln_q.weight"]
    save_file(tensors, str(broken / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match=r"1 of the model's tensors are not in it \(model\.visual\.merger\.ln_q"):
        load_model(broken)


def test_two_rank_sft_resumed_from_a_checkpoint_ends_with_the_uninterrupted_weights(tiny_model_dir, sft_dataset,
                                                                                     tmp_path):
    from test_distributed import ROOT, free_port

    def launch(out):
        config = write_sft_yaml(tmp_path / f"{out.name}.yaml", tiny_model_dir, sft_dataset, out,
                                per_device_train_batch_size=1, freeze_vision=False)
        command = [
            str(Path(sys.executable).with_name("accelerate")), "launch", "--config_file",
            str(ROOT / "accelerate_configs" / "ddp.yaml"), "--num_processes", "2", "--mixed_precision", "no",
            "--main_process_port", str(free_port()), "-m", "srpo.cli", "sft", "--config", str(config),
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
        assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
        return result.stdout + result.stderr

    launch(tmp_path / "a")
    assert sorted(p.name for p in (tmp_path / "a" / "checkpoint-2").glob("rng_state_*.pth")) == [
        "rng_state_0.pth", "rng_state_1.pth"]
    (tmp_path / "b").mkdir()
    shutil.copytree(tmp_path / "a" / "checkpoint-2", tmp_path / "b" / "checkpoint-2")
    output = launch(tmp_path / "b")
    assert output.count(f"resuming from {tmp_path / 'b' / 'checkpoint-2'}") == 2  # both ranks
    assert max_difference(weights(tmp_path / "a" / "final"), weights(tmp_path / "b" / "final")) <= 1e-6
