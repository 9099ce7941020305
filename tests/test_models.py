import time

import pytest
import torch
from PIL import Image

from srpo.files import OutputPathError
from srpo.models import ModelLoadError, build_tiny_model, load_policy, load_processor


def test_tiny_model_save_reload_generate_from_image(tmp_path):
    start = time.perf_counter()
    model, processor = build_tiny_model(tmp_path / "tiny")
    reloaded, reloaded_processor = load_policy(tmp_path / "tiny")

    assert type(reloaded_processor).__name__ == "Qwen2_5_VLProcessorWithoutVideo"
    assert reloaded_processor.tokenizer.get_vocab() == processor.tokenizer.get_vocab()
    for (name, a), (_, b) in zip(model.state_dict().items(), reloaded.state_dict().items()):
        assert torch.equal(a, b), name

    # Odd sizes and several images per prompt: the placeholder count must match the image features.
    images = [Image.new("RGB", (113, 85), "white"), Image.new("RGB", (60, 140), "red")]
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Count."}]}
    ]
    prompt = reloaded_processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = reloaded_processor(text=[prompt], images=images, return_tensors="pt")
    out = reloaded.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]
    assert time.perf_counter() - start < 30


def test_reasoning_tags_are_single_tokens(tmp_path):
    _, processor = build_tiny_model()
    for tag in ("<think>", "</think>", "<answer>", "</answer>", "<reflection>", "</reflection>"):
        assert len(processor.tokenizer(tag, add_special_tokens=False)["input_ids"]) == 1
    text = "<think>I count 12.</think> <answer>$\\boxed{12}$</answer>"
    ids = processor.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert processor.tokenizer.decode(ids) == text


def test_missing_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_processor(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_processor(tmp_path / "empty")


def test_build_tiny_model_replaces_its_folder_whole(tmp_path):
    out = tmp_path / "tiny"
    out.mkdir()
    # a stale shard index from another checkpoint would make from_pretrained look for shards that are not there
    (out / "model.safetensors.index.json").write_text('{"weight_map": {}}')
    build_tiny_model(out)
    assert not (out / "model.safetensors.index.json").exists() and (out / "config.json").exists()
    load_policy(out)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match="is an existing file"):
        build_tiny_model(tmp_path / "file")


def test_build_tiny_model_cli_refuses_a_non_empty_folder_without_force(tmp_path):
    from typer.testing import CliRunner

    from srpo.cli import app

    out = tmp_path / "tiny"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = CliRunner().invoke(app, ["build-tiny-model", str(out)])
    assert result.exit_code == 2 and "is not empty; pass a new folder, or --force" in result.output
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert CliRunner().invoke(app, ["build-tiny-model", str(out), "--force"]).exit_code == 0
    assert (out / "config.json").exists() and not (out / "notes.txt").exists()
