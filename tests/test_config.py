import pytest

from srpo.config import ConfigError, RLStageConfig, SFTStageConfig, load_config, parse_overrides


def test_yaml_then_cli_overrides(tmp_path):
    path = tmp_path / "rl.yaml"
    path.write_text("model: /m\npreset: reference\nnum_generations: 4\ntrainer:\n  logging_first_step: true\n")
    cfg = load_config(
        RLStageConfig,
        path,
        ["--num_generations", "16", "--learning-rate=3e-6", "--lora", "--group_accuracy_filter", "[0.1, 0.9]",
         "--trainer.max_grad_norm", "0.5"],
    )
    assert cfg.model == "/m" and cfg.preset == "reference"
    assert cfg.num_generations == 16
    assert cfg.learning_rate == pytest.approx(3e-6)
    assert cfg.lora is True
    assert cfg.group_accuracy_filter == [0.1, 0.9]
    assert cfg.trainer == {"logging_first_step": True, "max_grad_norm": 0.5}


def test_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "sft.yaml"
    path.write_text("model: /m\nlearning_rat: 1e-5\n")
    with pytest.raises(ConfigError, match=r"sft.yaml: unknown key 'learning_rat'"):
        load_config(SFTStageConfig, path)


def test_ill_typed_value_names_key_and_origin(tmp_path):
    path = tmp_path / "sft.yaml"
    path.write_text("num_train_epochs: lots\n")
    with pytest.raises(ConfigError, match=r"sft.yaml: 'num_train_epochs': expected a number"):
        load_config(SFTStageConfig, path)
    with pytest.raises(ConfigError, match=r"command line: 'max_steps': expected an integer"):
        load_config(SFTStageConfig, None, ["--max_steps", "1.5"])
    with pytest.raises(ConfigError, match="unknown option '--nope'"):
        load_config(SFTStageConfig, None, ["--nope", "1"])


def test_broken_yaml_and_missing_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(SFTStageConfig, path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(SFTStageConfig, tmp_path / "missing.yaml")


def test_parse_overrides_reads_yaml_scalars():
    assert parse_overrides(["--a", "1", "--b=true", "--c", "x", "--flag"]) == {"a": 1, "b": True, "c": "x", "flag": True}
