"""Two-process data-parallel GRPO on CPU (gloo) through `accelerate launch` and the shipped DDP config."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from srpo.models import load_policy

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_rank_grpo_on_cpu(tiny_model_dir, problems_file, tmp_path):
    out = tmp_path / "rl"
    config = tmp_path / "rl.yaml"
    # 2 prompts x 4 generations = 8 completions per step; 2 ranks x 2 per device = 4 per micro-step, so rl.py sets
    # gradient_accumulation_steps = 8 / 4 = 2 from WORLD_SIZE (a single process would get 4).
    config.write_text(
        f"model_name_or_path: {tiny_model_dir}\ndataset: {problems_file}\noutput_dir: {out}\nnum_generations: 4\n"
        "prompts_per_generation: 2\noptimizer_batch_size: 8\nper_device_train_batch_size: 2\nmax_completion_length: 8\n"
        "max_steps: 2\n"
        "save_steps: 2\nlogging_steps: 1\nreport_to: [tensorboard]\nmax_prompt_length: 512\nlearning_rate: 1.0e-4\n"
    )
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [
        str(accelerate), "launch", "--config_file", str(ROOT / "accelerate_configs" / "ddp.yaml"),
        "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", str(free_port()),
        "-m", "srpo.cli", "rl", "--config", str(config),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]

    # Both ranks ran to the end (each prints the final path) and each saved its own RNG state in the checkpoint.
    assert output.count(f"final model: {out / 'final'}") == 2, output[-4000:]
    checkpoint = out / "checkpoint-2"
    assert sorted(p.name for p in checkpoint.glob("rng_state_*.pth")) == ["rng_state_0.pth", "rng_state_1.pth"]
    args = torch.load(checkpoint / "training_args.bin", weights_only=False)
    assert args.gradient_accumulation_steps == 2  # computed for WORLD_SIZE=2

    # Metrics are logged once: one log entry per step, one printed metrics line per step, one TensorBoard writer.
    history = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    assert [h["step"] for h in history if "loss" in h] == [1, 2]
    assert output.count("'loss':") == 2, output[-4000:]
    assert output.count("'reward':") == 2
    assert len(list((out / "runs").rglob("events.out.tfevents.*"))) == 1

    # The checkpoint and the final model reload, and hold the same weights.
    final_model, processor = load_policy(out / "final")
    checkpoint_model, _ = load_policy(checkpoint)
    assert processor.tokenizer is not None
    final_state, checkpoint_state = final_model.state_dict(), checkpoint_model.state_dict()
    assert final_state.keys() == checkpoint_state.keys()
    assert all(torch.equal(final_state[k], checkpoint_state[k]) for k in final_state)


def test_adapter_from_a_sharded_or_4bit_run_is_merged_into_a_bf16_base(tiny_model_dir, tmp_path):
    # save_final's path for LoRA under ZeRO-3 / FSDP / QLoRA, where the adapter is saved and merged afterwards.
    from peft import get_peft_model

    from srpo.config import SRPOSFTConfig
    from srpo.train.common import _merge_adapter_on_cpu, lora_config

    model, processor = load_policy(tiny_model_dir)
    peft_model = get_peft_model(model, lora_config(SRPOSFTConfig(model_name_or_path="m", dataset="d", use_peft=True, lora_r=4)))
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:  # non-zero, so the merge changes the weights
            torch.nn.init.normal_(param, std=0.1)
    peft_model.save_pretrained(str(tmp_path / "final" / "adapter"))
    expected = peft_model.merge_and_unload().state_dict()
    _merge_adapter_on_cpu(tmp_path / "final" / "adapter", tmp_path / "final", processor)
    merged, _ = load_policy(tmp_path / "final")
    state = merged.state_dict()
    assert state.keys() == expected.keys()
    assert all(v.dtype == torch.bfloat16 for v in state.values() if v.is_floating_point())
    assert all(torch.allclose(state[k].float(), expected[k].float(), atol=2e-2, rtol=2e-2) for k in expected)
