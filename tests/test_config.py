"""Configs are TRL's own, parsed by TRL's parser: a YAML file, then any TRL or srpo key as a flag."""

import dataclasses

import pytest
from trl import GRPOConfig, SFTConfig
from typer.testing import CliRunner

from srpo.cli import app
from srpo.config import ConfigError, ReflectConfig, SRPOGRPOConfig, SRPOSFTConfig, parse_config

REQUIRED = ["--model_name_or_path", "/m", "--dataset", "/d"]


def test_stage_configs_are_trls_own():
    assert issubclass(SRPOSFTConfig, SFTConfig) and issubclass(SRPOGRPOConfig, GRPOConfig)
    ours = {f.name for f in dataclasses.fields(SRPOGRPOConfig)} - {f.name for f in dataclasses.fields(GRPOConfig)}
    assert "preset" in ours and "learning_rate" not in ours  # srpo adds its fields; TRL's keep their names
    for cls in (SRPOSFTConfig, SRPOGRPOConfig, ReflectConfig):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"


def test_yaml_then_flags_with_any_trl_key(tmp_path):
    path = tmp_path / "rl.yaml"
    path.write_text("model_name_or_path: /m\ndataset: /d\npreset: reference\nnum_generations: 4\n"
                    "logging_first_step: true\nlr_scheduler_kwargs: {min_lr_rate: 0.2}\nreport_to: []\n")
    cfg = parse_config(SRPOGRPOConfig, ["--config", str(path), "--num_generations", "16", "--learning-rate=3e-6",
                                        "--use_peft", "--group_accuracy_filter", "0.1", "0.9", "--max_grad_norm", "0.5",
                                        "--no_freeze_vision", "--length_targets", "3", "3.5"])
    assert cfg.model_name_or_path == "/m" and cfg.preset == "reference"
    assert cfg.num_generations == 16  # the flag wins over the file
    assert cfg.learning_rate == pytest.approx(3e-6)
    assert cfg.use_peft is True and cfg.freeze_vision is False
    assert cfg.group_accuracy_filter == [0.1, 0.9]
    assert cfg.length_targets == [3.0, 3.5]
    with pytest.raises(ConfigError, match=r"length_targets: \[3.5, 3.0\] must be two numbers.*0 < T_target < T_max"):
        parse_config(SRPOGRPOConfig, [*REQUIRED, "--length_targets", "3.5", "3"])
    assert cfg.max_grad_norm == 0.5 and cfg.logging_first_step is True  # TRL keys, straight from TRL
    assert cfg.lr_scheduler_kwargs == {"min_lr_rate": 0.2}
    assert cfg.reward_weights == [1.0, 1.0, 1.0, 0.0]  # the reference preset's terms, then the filter's column


def test_paper_defaults_replace_trls():
    cfg = parse_config(SRPOGRPOConfig, REQUIRED)
    assert (cfg.loss_type, cfg.beta, cfg.learning_rate, cfg.vllm_importance_sampling_correction) == ("grpo", 0.0, 1e-6,
                                                                                                     False)
    assert cfg.lr_scheduler_type.value == "cosine_with_min_lr" and cfg.lr_scheduler_kwargs == {"min_lr_rate": 0.1}
    assert cfg.gradient_accumulation_steps == 128 // 8  # optimizer_batch_size / per-device batch (one process)
    assert cfg.generation_batch_size == 128 * 8 and cfg.steps_per_generation == 1024 // 8  # 8 updates per generation
    assert cfg.adam_beta2 == 0.95 and cfg.length_targets == [2.0, 2.5]
    assert parse_config(SRPOGRPOConfig, [*REQUIRED, "--lr_scheduler_type", "constant"]).lr_scheduler_kwargs in ({}, None)
    sft = parse_config(SRPOSFTConfig, REQUIRED)
    assert sft.completion_only_loss and not sft.remove_unused_columns
    assert sft.dataset_kwargs == {"skip_prepare_dataset": True}


@pytest.mark.parametrize("old, new", [("model", "model_name_or_path"), ("lora", "use_peft"),
                                      ("warmup_ratio", "warmup_steps"), ("min_lr_rate", "lr_scheduler_kwargs"),
                                      ("trainer", "top level"), ("prompts_per_step", "prompts_per_generation")])
def test_old_keys_name_their_new_spelling(tmp_path, old, new):
    path = tmp_path / "rl.yaml"
    value = "{max_grad_norm: 0.5}" if old == "trainer" else "1"
    path.write_text(f"model_name_or_path: /m\ndataset: /d\n{old}: {value}\n")
    with pytest.raises(ConfigError, match=rf"rl.yaml: '{old}' is the old spelling; now write .*{new}"):
        parse_config(SRPOGRPOConfig, ["--config", str(path)])
    flag = "--trainer.max_grad_norm" if old == "trainer" else f"--{old}"
    with pytest.raises(ConfigError, match=rf"command line: '{flag}' is the old spelling; now write .*{new}"):
        parse_config(SRPOGRPOConfig, [*REQUIRED, flag, "1"])


def test_unknown_and_ill_typed_keys_name_the_file_and_key(tmp_path):
    path = tmp_path / "sft.yaml"
    path.write_text("model_name_or_path: /m\nlearning_rat: 1e-5\n")
    with pytest.raises(ConfigError, match=r"sft.yaml: unknown key 'learning_rat'; did you mean learning_rate"):
        parse_config(SRPOSFTConfig, ["--config", str(path)])
    path.write_text("model_name_or_path: /m\ndataset: /d\nnum_train_epochs: lots\n")
    with pytest.raises(ConfigError, match=r"sft.yaml: num_train_epochs: expected a number, got 'lots'"):
        parse_config(SRPOSFTConfig, ["--config", str(path)])
    path.write_text("model_name_or_path: /m\ndataset: /d\nmax_steps: 1.5\n")
    with pytest.raises(ConfigError, match=r"sft.yaml: max_steps: expected an integer, got 1.5"):
        parse_config(SRPOSFTConfig, ["--config", str(path)])
    with pytest.raises(ConfigError, match=r"command line: argument --max_steps.*invalid int value: '1.5'"):
        parse_config(SRPOSFTConfig, [*REQUIRED, "--max_steps", "1.5"])
    with pytest.raises(ConfigError, match=r"command line: unknown key '--nope'"):
        parse_config(SRPOSFTConfig, [*REQUIRED, "--nope", "1"])
    with pytest.raises(ConfigError, match=r"command line: unknown key '--max'"):  # no abbreviations
        parse_config(SRPOSFTConfig, [*REQUIRED, "--max", "1"])
    with pytest.raises(ConfigError, match=r"model_name_or_path: not set"):
        parse_config(SRPOSFTConfig, ["--dataset", "/d"])


def test_broken_yaml_and_missing_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model_name_or_path: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        parse_config(SRPOSFTConfig, ["--config", str(path)])
    with pytest.raises(ConfigError, match="not found"):
        parse_config(SRPOSFTConfig, ["--config", str(tmp_path / "missing.yaml")])


def test_help_lists_every_trl_and_srpo_key():
    result = CliRunner().invoke(app, ["rl", "--help"])
    assert result.exit_code == 0, result.output
    for key in ("--preset", "--prompts_per_generation", "--max_grad_norm", "--vllm_mode", "--model_name_or_path"):
        assert key in result.output
    bad = CliRunner().invoke(app, ["rl", "--model", "/m"])
    assert bad.exit_code == 2 and bad.output.count("\n") == 1
    assert bad.output.startswith("error: command line: '--model' is the old spelling; now write --model_name_or_path")
