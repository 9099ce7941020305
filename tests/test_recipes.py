"""Every recipe and accelerate config parses, builds its TRL arguments without a GPU, and keeps the paper's numbers."""

import importlib.util
import json
import os
from pathlib import Path
from unittest import mock

import pytest
import torch
import yaml

from typer.testing import CliRunner

from srpo.cli import app
from srpo.config import ConfigError, ReflectConfig, SRPOGRPOConfig, SRPOSFTConfig, parse_config
from srpo.train.common import check_dependencies
from srpo.train.rl import build_rl_trainer

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
ACCELERATE_CONFIGS = ROOT / "accelerate_configs"
WORLD_SIZE = {"qwen2_5_vl_7b": 8, "qwen2_5_vl_32b": 32, "demo": 2}  # the GPUs (processes) each RL recipe is written for
SFT_WORLD_SIZE = {"qwen2_5_vl_7b": 8, "qwen2_5_vl_32b": 16, "demo": 2}
SFT_GLOBAL_BATCH = {"qwen2_5_vl_7b": 16, "qwen2_5_vl_32b": 16, "demo": 16}  # sequences per optimizer step (paper: 16)
PAPER_MODELS = {"qwen2_5_vl_7b": "Qwen/Qwen2.5-VL-7B-Instruct", "qwen2_5_vl_32b": "Qwen/Qwen2.5-VL-32B-Instruct"}

SFT_RECIPES = sorted(RECIPES.glob("*/sft.yaml"))
RL_RECIPES = sorted(RECIPES.glob("*/rl.yaml"))


def recipe_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def test_every_recipe_directory_has_both_stages_and_a_world_size():
    names = {p.parent.name for p in RECIPES.glob("*/*.yaml")}
    assert {"qwen2_5_vl_7b", "qwen2_5_vl_32b"} <= names
    for name in names:
        assert name in WORLD_SIZE, f"recipes/{name}: add its world size to WORLD_SIZE in this test"
        assert (RECIPES / name / "sft.yaml").exists() and (RECIPES / name / "rl.yaml").exists()


@pytest.mark.parametrize("path", SFT_RECIPES, ids=recipe_id)
def test_sft_recipe_builds_its_trainer_arguments(path):
    args = cfg = parse_config(SRPOSFTConfig, ["--config", str(path)])
    world = SFT_WORLD_SIZE[path.parent.name]
    global_batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * world
    assert global_batch == SFT_GLOBAL_BATCH[path.parent.name]
    assert args.completion_only_loss
    assert cfg.freeze_vision  # docs/method.md#reflection-sft: vision tower and projector frozen
    if path.parent.name not in PAPER_MODELS:
        return
    # docs/method.md#reflection-sft
    assert cfg.model_name_or_path == PAPER_MODELS[path.parent.name]
    assert not cfg.use_peft and cfg.gradient_checkpointing
    assert yaml.safe_load(path.read_text())["bf16"]
    assert args.learning_rate == 1e-5
    assert args.lr_scheduler_type.value == "cosine"
    assert args.warmup_steps == 0.1
    assert args.num_train_epochs == 1 and args.max_steps == -1
    assert args.max_length == 4096
    assert cfg.max_pixels == 262144
    assert args.activation_checkpointing
    assert args.bf16 == torch.cuda.is_available()  # bf16 on a GPU; CPU builds the arguments in fp32


@pytest.mark.parametrize("path", RL_RECIPES, ids=recipe_id)
def test_rl_recipe_builds_its_trainer_arguments(path, monkeypatch):
    world = WORLD_SIZE[path.parent.name]
    monkeypatch.setattr("srpo.config.launched_processes", lambda: world)
    args = cfg = parse_config(SRPOGRPOConfig, ["--config", str(path)])
    completions = cfg.prompts_per_generation * cfg.num_generations
    assert args.generation_batch_size == completions
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps * world == cfg.optimizer_batch_size
    assert args.num_generations == cfg.num_generations
    assert args.lr_scheduler_type.value == yaml.safe_load(path.read_text()).get("lr_scheduler_type", "cosine_with_min_lr")
    assert args.vllm_importance_sampling_correction is False
    if path.parent.name not in PAPER_MODELS:
        return
    # docs/method.md#grpo
    assert cfg.model_name_or_path == f"outputs/{path.parent.name}/sft/final"
    sft = parse_config(SRPOSFTConfig, ["--config", str(path.with_name("sft.yaml"))])
    assert cfg.model_name_or_path == f"{sft.output_dir}/final"  # starts from the stage-1 recipe's final model
    assert (cfg.num_generations, cfg.prompts_per_generation, completions) == (8, 128, 1024)
    assert cfg.optimizer_batch_size == 128  # 8 optimizer updates per generation batch
    assert args.max_steps == 4000  # the paper's 500 generation batches
    assert (args.adam_beta1, args.adam_beta2, args.weight_decay, args.max_grad_norm) == (0.9, 0.95, 0.0, 1.0)
    assert args.temperature == 1.0
    assert args.learning_rate == 1e-6
    assert args.lr_scheduler_type.value == "cosine_with_min_lr" and args.lr_scheduler_kwargs == {"min_lr_rate": 0.1}
    assert args.warmup_steps == 0.03
    assert args.beta == 0.0 and args.loss_type == "grpo" and args.scale_rewards == "group"
    assert cfg.max_prompt_length == 1024 and args.max_completion_length == 2048
    assert yaml.safe_load(path.read_text())["bf16"]
    assert args.bf16 == torch.cuda.is_available()  # bf16 on a GPU; CPU builds the arguments in fp32
    assert cfg.freeze_vision and not cfg.use_peft and cfg.gradient_checkpointing
    assert cfg.max_pixels == 501760
    assert cfg.preset == "paper" and cfg.system_prompt == "reflection"
    assert args.use_vllm and args.vllm_mode == "colocate"
    assert args.vllm_max_model_length == 1024 + 2048
    # A vLLM engine spans vllm_tensor_parallel_size GPUs of one node.
    assert world % args.vllm_tensor_parallel_size == 0 and 8 % args.vllm_tensor_parallel_size == 0


def test_perception_recipe_is_the_released_perception_r1_run(monkeypatch):
    """docs/method.md#perception: the released Perception-R1 run's settings, its judge and its data from annotate."""
    monkeypatch.setattr("srpo.config.launched_processes", lambda: 8)
    args = cfg = parse_config(SRPOGRPOConfig, ["--config", str(RECIPES / "qwen2_5_vl_7b" / "perception.yaml")])
    annotate = yaml.safe_load((RECIPES / "qwen2_5_vl_7b" / "annotate.yaml").read_text())
    assert cfg.dataset == f"{annotate['out']}/problems.jsonl"
    assert (cfg.preset, cfg.system_prompt, cfg.perception_weight) == ("perception", "perception", 0.7)
    assert cfg.judge.startswith("http://") and cfg.judge_failure == "skip"
    assert (cfg.num_generations, cfg.prompts_per_generation, args.generation_batch_size) == (8, 128, 1024)
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps * 8 == 1024  # one update per step
    assert (args.learning_rate, args.beta, args.epsilon, args.epsilon_high) == (1e-6, 0.0, 0.2, 0.3)
    assert args.temperature == 1.0 and args.num_train_epochs == 25 and args.max_steps == -1
    assert cfg.max_prompt_length == 4096 and args.max_completion_length == 4096


@pytest.mark.parametrize("name", sorted(PAPER_MODELS))
def test_reflect_recipe_feeds_the_sft_recipe_with_the_papers_settings(name):
    cfg = parse_config(ReflectConfig, ["--config", str(RECIPES / name / "reflect.yaml")])
    assert cfg.out == parse_config(SRPOSFTConfig, ["--config", str(RECIPES / name / "sft.yaml")]).dataset
    # docs/method.md#reflection-data
    assert cfg.system_prompt == "attempt" and cfg.attempt_temperature == 0.2 and cfg.attempt_max_new_tokens == 1024
    assert cfg.right_fraction == 0.3 and cfg.max_examples == 10000
    assert cfg.teacher_model == "o4-mini" and cfg.teacher_temperature is None
    assert cfg.policy.startswith("http://") and cfg.teacher.startswith("https://")


def rl_recipe(name: str, *flags: str) -> SRPOGRPOConfig:
    return parse_config(SRPOGRPOConfig, ["--config", str(RECIPES / name / "rl.yaml"), *flags])


def test_grpo_accumulation_follows_the_world_size(monkeypatch):
    for world, accumulation in ((8, 4), (16, 2)):  # two nodes: the same 128 sequences per update
        monkeypatch.setattr("srpo.config.launched_processes", lambda world=world: world)
        assert rl_recipe("qwen2_5_vl_7b").gradient_accumulation_steps == accumulation
    monkeypatch.setattr("srpo.config.launched_processes", lambda: 6)
    with pytest.raises(ConfigError, match="must be a multiple of"):
        rl_recipe("qwen2_5_vl_7b")


def test_every_trl_flag_overrides_the_recipe(monkeypatch):
    monkeypatch.setattr("srpo.config.launched_processes", lambda: 8)
    args = rl_recipe("qwen2_5_vl_7b", "--vllm_mode", "server", "--vllm_server_base_url", "http://10.0.0.5:8000",
                     "--vllm_importance_sampling_correction", "true", "--vllm_max_model_length", "4096",
                     "--learning_rate", "2e-6", "--max_grad_norm", "0.5", "--lr_scheduler_kwargs",
                     '{"min_lr_rate": 0.2}')
    assert args.vllm_mode == "server" and args.vllm_server_base_url == "http://10.0.0.5:8000"
    assert args.vllm_importance_sampling_correction is True  # TRL's own keys override srpo's defaults
    assert args.vllm_max_model_length == 4096
    assert args.learning_rate == 2e-6 and args.max_grad_norm == 0.5 and args.lr_scheduler_kwargs == {"min_lr_rate": 0.2}
    monkeypatch.setattr("srpo.config.launched_processes", lambda: 32)
    args32 = rl_recipe("qwen2_5_vl_32b")
    assert (args32.vllm_tensor_parallel_size, args32.vllm_gpu_memory_utilization) == (4, 0.4)
    assert args32.vllm_enable_sleep_mode
    with pytest.raises(ConfigError, match="vllm_mode: 'remote' is unknown"):
        rl_recipe("qwen2_5_vl_32b", "--vllm_mode", "remote")


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_use_vllm_without_vllm_is_a_clear_error(tmp_path):
    cfg = SRPOGRPOConfig(model_name_or_path=str(tmp_path / "missing"), dataset="x", use_vllm=True, vllm_mode="server")
    with pytest.raises(ImportError, match=r"use_vllm: true \(vllm_mode: server\) needs vLLM.*pip install srpo\[vllm\]"):
        build_rl_trainer(cfg)  # fails before touching the (missing) model


def test_qlora_liger_and_attention_options_are_checked_before_loading():
    with pytest.raises(ConfigError, match="load_in_4bit: true is QLoRA.*set use_peft: true"):
        SRPOSFTConfig(model_name_or_path="m", dataset="d", load_in_4bit=True)
    if importlib.util.find_spec("bitsandbytes") is None:
        with pytest.raises(ImportError, match="pip install bitsandbytes"):
            check_dependencies(SRPOSFTConfig(model_name_or_path="m", dataset="d", load_in_4bit=True, use_peft=True))
    if importlib.util.find_spec("liger_kernel") is None:
        with pytest.raises(ImportError, match="pip install liger-kernel"):
            check_dependencies(SRPOGRPOConfig(model_name_or_path="m", dataset="d", use_liger_kernel=True))
    with pytest.raises(ConfigError, match="use_vllm: true cannot load the 4-bit"):
        SRPOGRPOConfig(model_name_or_path="m", dataset="d", use_vllm=True, use_peft=True, load_in_4bit=True)
    args = SRPOGRPOConfig(model_name_or_path="m", dataset="d", use_liger_kernel=True, gradient_checkpointing=True)
    assert args.use_liger_kernel and args.activation_checkpointing


@pytest.mark.parametrize("name", ["ddp", "zero2", "zero3", "zero3_offload", "fsdp2"])
def test_accelerate_configs_parse(name):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(ACCELERATE_CONFIGS / f"{name}.yaml"))
    assert config.num_processes == 8 and config.num_machines == 1 and config.mixed_precision == "bf16"
    expected = {"ddp": "MULTI_GPU", "zero2": "DEEPSPEED", "zero3": "DEEPSPEED", "zero3_offload": "DEEPSPEED",
                "fsdp2": "FSDP"}[name]  # fmt: skip
    assert config.distributed_type.value == expected
    if expected == "DEEPSPEED":
        ds = config.deepspeed_config
        assert ds["zero_stage"] == (2 if name == "zero2" else 3)
        if ds["zero_stage"] == 3:  # sharded loading, and normal checkpoints at save time
            assert ds["zero3_init_flag"] and ds["zero3_save_16bit_model"]


def test_fsdp2_config_builds_the_accelerate_plugin():
    from accelerate import FullyShardedDataParallelPlugin
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    parser = launch_command_parser()
    args = parser.parse_args(["--config_file", str(ACCELERATE_CONFIGS / "fsdp2.yaml"), "-m", "srpo.cli", "rl"])
    env = prepare_multi_gpu_env(_validate_launch_command(args)[0])  # what each launched process sees
    with mock.patch.dict(os.environ, env):
        plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2
    assert plugin.state_dict_type.name == "FULL_STATE_DICT"
    assert plugin.cpu_ram_efficient_loading


def test_batch_arithmetic_in_the_comments_matches_the_values():
    text = (RECIPES / "qwen2_5_vl_7b" / "rl.yaml").read_text()
    assert "= 4 x 4 x 8" in text and yaml.safe_load(text)["per_device_train_batch_size"] == 4
    text = (RECIPES / "qwen2_5_vl_32b" / "rl.yaml").read_text()
    assert "= 2 x 2 x 32" in text and yaml.safe_load(text)["per_device_train_batch_size"] == 2
    text = (RECIPES / "qwen2_5_vl_7b" / "sft.yaml").read_text()
    assert "= 1 x 2 x 8 = 16" in text


@pytest.mark.parametrize("name, world, accumulation, micro_steps", [("qwen2_5_vl_7b", 8, 4, 32),
                                                                    ("qwen2_5_vl_32b", 32, 2, 16)])
def test_dry_run_prints_the_papers_cadence(name, world, accumulation, micro_steps):
    result = CliRunner().invoke(app, ["rl", "--config", str(RECIPES / name / "rl.yaml"), "--dry-run",
                                      "--world-size", str(world)])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["batch"] == {
        "processes": world, "sequences_per_optimizer_update": 128, "optimizer_updates": 4000,
        "prompts_per_generation": 128, "samples_per_generation": 1024, "optimizer_updates_per_generation": 8,
        "steps_per_generation (TRL, micro-steps)": micro_steps, "generation_steps": 500.0}
    resolved = shown["config"]
    assert resolved["gradient_accumulation_steps"] == accumulation and resolved["generation_batch_size"] == 1024
    assert (resolved["adam_beta1"], resolved["adam_beta2"]) == (0.9, 0.95)
    assert resolved["max_pixels"] == 501760
    sft = CliRunner().invoke(app, ["sft", "--config", str(RECIPES / name / "sft.yaml"), "--dry-run",
                                   "--world-size", str(SFT_WORLD_SIZE[name])])
    assert sft.exit_code == 0, sft.output
    assert json.loads(sft.output)["batch"]["sequences_per_optimizer_update"] == 16


def test_trl_batch_keys_win_over_srpos(monkeypatch):
    monkeypatch.setattr("srpo.config.launched_processes", lambda: 8)
    args = rl_recipe("qwen2_5_vl_7b", "--gradient_accumulation_steps", "8")  # 4 x 8 x 8 = 256 per update
    assert args.gradient_accumulation_steps == 8 and args.generation_batch_size == 1024
    args = rl_recipe("qwen2_5_vl_7b", "--steps_per_generation", "64")
    # TRL's own arithmetic (with the processes it sees, one here), not prompts_per_generation's 1024
    assert args.steps_per_generation == 64 and args.generation_batch_size == 4 * args.world_size * 64
