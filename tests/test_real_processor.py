"""The tiny model over the real Qwen2.5-VL processor (../shared/qwen2_5_vl_processor): real token ids, real chat
template, real image-token counts. Skipped, with the reason, where those files are absent."""

import json
import subprocess
import sys

import pytest
import torch
from PIL import Image
from transformers import AutoTokenizer

from srpo.config import SRPOGRPOConfig, SRPOSFTConfig
from srpo.models import REAL_PROCESSOR_SPEC, load_model, load_processor, token_counter
from srpo.train.sft import build_sft_trainer, run_sft

IM_START, IM_END, ENDOFTEXT, VISION_START, VISION_END, IMAGE_PAD = 151644, 151645, 151643, 151652, 151653, 151655

# Runs in a fresh interpreter that never imports srpo: the stock classes alone, as `vllm serve` loads a folder.
STOCK_LOAD = r"""
import json, sys
import torch
from PIL import Image
from transformers import (AutoImageProcessor, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer,
                          Qwen2_5_VLForConditionalGeneration)

folder = sys.argv[1]
tokenizer = AutoTokenizer.from_pretrained(folder)
image_processor = AutoImageProcessor.from_pretrained(folder)
try:
    auto = type(AutoProcessor.from_pretrained(folder)).__name__
except ImportError as exc:  # only torchvision (the video processor) may be missing
    auto = "ImportError: " + str(exc).strip()[:60]
model = AutoModelForImageTextToText.from_pretrained(folder)
messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many sides?"}]}]
text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
pixels = image_processor(images=[Image.new("RGB", (112, 84), "red")], return_tensors="pt")
pads = int(pixels["image_grid_thw"].prod()) // image_processor.merge_size ** 2
ids = tokenizer(text.replace("<|image_pad|>", "<|image_pad|>" * pads), return_tensors="pt")
out = model.generate(**ids, pixel_values=pixels["pixel_values"], image_grid_thw=pixels["image_grid_thw"],
                     max_new_tokens=4, do_sample=False)
print(json.dumps({"tokenizer": type(tokenizer).__name__, "image_processor": type(image_processor).__name__,
                  "auto_processor": auto, "model": type(model).__name__,
                  "is_stock_model": isinstance(model, Qwen2_5_VLForConditionalGeneration),
                  "text": text, "input_ids": ids["input_ids"][0].tolist(), "output": out[0].tolist(),
                  "srpo_imported": any(name.split(".")[0] == "srpo" for name in sys.modules)}))
"""


def load_without_srpo(folder) -> dict:
    result = subprocess.run([sys.executable, "-c", STOCK_LOAD, str(folder)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def srpo_generate(folder) -> tuple[list[int], list[int]]:
    """(prompt ids, greedy output ids) for the stock script's prompt, through srpo's loaders."""
    model, processor = load_model(folder), load_processor(folder)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many sides?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[Image.new("RGB", (112, 84), "red")], return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    return inputs["input_ids"][0].tolist(), out[0].tolist()


def assert_stock_loadable(folder, real_processor_dir) -> dict:
    stock = load_without_srpo(folder)
    assert not stock["srpo_imported"]
    assert stock["tokenizer"] == "Qwen2Tokenizer" and stock["image_processor"].startswith("Qwen2VLImageProcessor")
    assert stock["model"] == "Qwen2_5_VLForConditionalGeneration" and stock["is_stock_model"]
    # The stock processor class resolves with every config it needs; only torchvision may be absent here.
    assert stock["auto_processor"] == "Qwen2_5_VLProcessor" or "Torchvision" in stock["auto_processor"], stock
    # The real chat template (default system message included) and real ids, as the upstream folder gives them.
    upstream = AutoTokenizer.from_pretrained(real_processor_dir)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many sides?"}]}]
    assert stock["text"] == upstream.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert stock["text"].startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    # 112x84 -> an 8x6 patch grid -> 12 merged image tokens, as srpo's processor expands it; same greedy tokens.
    assert stock["input_ids"].count(IMAGE_PAD) == 12
    prompt_ids, output = srpo_generate(folder)
    assert stock["input_ids"] == prompt_ids
    assert stock["output"] == output
    return stock


def test_build_tiny_model_keeps_the_real_processor_and_loads_without_srpo(real_processor_dir, tmp_path):
    from typer.testing import CliRunner

    from srpo.cli import app

    out = tmp_path / "tiny-real"
    result = CliRunner().invoke(app, ["build-tiny-model", str(out), "--processor", str(real_processor_dir)])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    text = config.get("text_config", config)
    assert text["vocab_size"] == 152064 and text["hidden_size"] == REAL_PROCESSOR_SPEC.hidden_size
    assert config["image_token_id"] == IMAGE_PAD and config["vision_start_token_id"] == VISION_START
    vision = config["vision_config"]
    assert (vision["patch_size"], vision["spatial_merge_size"], vision["temporal_patch_size"]) == (14, 2, 2)
    assert (out / "model.safetensors").stat().st_size < 60e6  # small enough for CPU tests
    for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        assert json.loads((out / name).read_text())["processor_class"] == "Qwen2_5_VLProcessor", name
    pixels = json.loads((out / "processor_config.json").read_text())["image_processor"]["size"]
    assert pixels == {"shortest_edge": 3136, "longest_edge": 12845056}  # the real min_pixels / max_pixels
    assert_stock_loadable(out, real_processor_dir)


def test_srpo_loads_a_real_processor_folder_without_torchvision(real_processor_dir):
    processor = load_processor(real_processor_dir)
    tokenizer = processor.tokenizer
    assert len(tokenizer) == 151665 and tokenizer.eos_token_id == IM_END and tokenizer.pad_token_id == ENDOFTEXT
    assert tokenizer.padding_side == "left"
    assert tokenizer("<think>", add_special_tokens=False)["input_ids"] == [13708, 766, 29]
    inputs = processor(text=["<|vision_start|><|image_pad|><|vision_end|>Hi"],
                       images=[Image.new("RGB", (84, 112))], return_tensors="pt")
    assert inputs["image_grid_thw"].tolist() == [[1, 8, 6]]
    assert inputs["input_ids"][0].tolist().count(IMAGE_PAD) == 12
    assert tuple(inputs["pixel_values"].shape) == (48, 1176)


def test_reasoning_tags_are_several_real_tokens_each(real_processor_dir):
    count = token_counter(load_processor(real_processor_dir).tokenizer)
    assert count("<think>") == count("</think>") == 3  # [13708, 766, 29] and [522, 26865, 29]
    for tag in ("<answer>", "</answer>", "<reflection>", "</reflection>"):
        assert count(tag) >= 2, tag


def sft_config(model_dir, dataset, tmp_path, **kw):
    base = dict(model_name_or_path=str(model_dir), dataset=str(dataset), output_dir=str(tmp_path / "sft"),
                max_steps=2, per_device_train_batch_size=2, gradient_accumulation_steps=1, learning_rate=1e-3,
                report_to=[], save_steps=100, logging_steps=1)
    return SRPOSFTConfig(**{**base, **kw})


def sft_label_spans(trainer):
    """(input_ids, attention_mask, labels, completion ids + <|im_end|>) of the first rows of a collated batch."""
    tokenizer = trainer.processing_class.tokenizer
    rows = [trainer.train_dataset[i] for i in range(3)]
    batch = trainer.data_collator(rows)
    assert (batch["input_ids"] == IMAGE_PAD).any()
    for i, row in enumerate(rows):
        content = row["completion"][0]["content"]  # a string, or text parts once TRL made the rows multimodal
        target = content if isinstance(content, str) else "".join(part["text"] for part in content)
        expected = tokenizer(target, add_special_tokens=False)["input_ids"] + [IM_END]
        yield (batch["input_ids"][i].tolist(), batch["attention_mask"][i].tolist(), batch["labels"][i].tolist(),
               expected)


@pytest.mark.parametrize("system", ["sft", ""])
def test_sft_labels_are_the_completion_and_im_end_with_real_ids(real_tiny_model_dir, sft_dataset, tmp_path, system):
    trainer = build_sft_trainer(sft_config(real_tiny_model_dir, sft_dataset, tmp_path, system_prompt=system))
    tokenizer = trainer.processing_class.tokenizer
    assistant_header = tokenizer("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    default = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>"
    for ids, attention, labels, expected in sft_label_spans(trainer):
        trained = [t for t in labels if t != -100]
        assert trained == expected  # the completion's own ids and its <|im_end|>, not the template's "\n" after it
        first = next(j for j, t in enumerate(labels) if t != -100)
        assert ids[first - len(assistant_header):first] == assistant_header
        assert all(t == -100 for t in labels[:first])  # system prompt (or the default one), question, image pads
        assert labels[first:first + len(trained)] == trained  # one contiguous span
        prompt = tokenizer.decode([t for t, m in zip(ids[:first], attention[:first]) if m])
        assert (default in prompt) == (system == "")  # the real template's default system message when none given
        assert IMAGE_PAD not in trained and IM_START not in trained


@pytest.mark.slow
def test_sft_checkpoint_on_the_real_processor_loads_with_stock_classes(real_tiny_model_dir, sft_dataset,
                                                                       real_processor_dir, tmp_path):
    before = load_model(real_tiny_model_dir)
    final = run_sft(sft_config(real_tiny_model_dir, sft_dataset, tmp_path, max_steps=2)).final
    after = load_model(final)
    assert any(not torch.equal(p, before.state_dict()[n]) for n, p in after.state_dict().items())
    assert_stock_loadable(final, real_processor_dir)


def rl_config(model_dir, problems_file, tmp_path, **kw):
    base = dict(model_name_or_path=str(model_dir), dataset=str(problems_file), output_dir=str(tmp_path / "rl"),
                num_generations=4, prompts_per_generation=2, optimizer_batch_size=8, per_device_train_batch_size=8,
                max_completion_length=12,
                max_steps=2, learning_rate=1e-5, report_to=[], save_steps=100, logging_steps=1,
                max_prompt_length=2048)
    return SRPOGRPOConfig(**{**base, **kw})


@pytest.mark.slow
def test_rl_steps_on_the_real_processor_score_every_term_with_real_token_lengths(real_tiny_model_dir, problems_file,
                                                                                 tmp_path):
    from trl.data_utils import prepare_multimodal_messages

    from srpo.format import render_response
    from srpo.rewards import PRESET_TERMS, score_response
    from srpo.train.rl import build_rl_trainer
    from srpo.train.training_data import prompt_token_counts

    trainer = build_rl_trainer(rl_config(real_tiny_model_dir, problems_file, tmp_path))
    tokenizer = trainer.processing_class.tokenizer
    # The prompt length check counts exactly what GRPOTrainer tokenizes: real template, real image-token counts.
    rows = list(trainer.train_dataset)
    prompt_ids, _, _ = trainer._tokenize_prompts([prepare_multimodal_messages(r["prompt"], images=r["images"])
                                                  for r in rows])
    counts = prompt_token_counts(trainer.processing_class, [r["prompt"] for r in rows], [r["images"] for r in rows])
    assert counts == [len(ids) for ids in prompt_ids]
    assert all(ids.count(IMAGE_PAD) > 0 for ids in prompt_ids)

    # The length term counts the policy's own tokens: each tag is several real tokens.
    response = render_response("I count 3 red circles and no others.", "$\\boxed{3}$", "The count is right.",
                               "3 circles.", "$\\boxed{3}$")
    completions = [[{"role": "assistant", "content": response}]]
    rewards = trainer._calculate_rewards([{"answer": "3", "choices": None, "prompt": []}], [[]], completions, [[1]])
    names = list(trainer.reward_func_names)
    real = score_response(response, "3", token_count=lambda t: len(tokenizer(t, add_special_tokens=False)["input_ids"]))
    assert rewards[0, names.index("length_reward")].item() == pytest.approx(real.length)
    one_per_tag = score_response(response, "3", token_count=lambda t: len(t.split()))
    assert real.length != pytest.approx(one_per_tag.length)  # the counter matters, so the check above can fail

    trainer.train()
    logged = {key for entry in trainer.state.log_history for key in entry}
    for term in PRESET_TERMS["paper"]:
        assert any(f"{term}_reward" in key for key in logged), (term, sorted(logged))
    assert [h["step"] for h in trainer.state.log_history if "loss" in h] == [1, 2]


@pytest.mark.slow
def test_eval_local_backend_on_the_real_processor(real_tiny_model_dir, problems_file, tmp_path):
    from typer.testing import CliRunner

    from srpo.cli import app

    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["eval", "--model", str(real_tiny_model_dir), "--benchmark", str(problems_file),
                                      "--out", str(out), "--limit", "4", "--max-new-tokens", "6"])
    assert result.exit_code == 0, result.output
    scores = json.loads((out / "scores.json").read_text())
    assert scores["average"]["total"] == 4
    assert len((out / "outputs_problems.jsonl").read_text().splitlines()) == 4


@pytest.mark.parametrize("size", [(113, 85), (20, 30), (1001, 7), (3700, 3600)],
                         ids=["odd", "below-min-pixels", "extreme-aspect", "above-max-pixels"])
def test_image_token_count_matches_the_patch_grid_for_any_size(real_processor_dir, size):
    processor = load_processor(real_processor_dir)
    inputs = processor(text=["<|vision_start|><|image_pad|><|vision_end|>x"], images=[Image.new("RGB", size)],
                       return_tensors="pt")
    t, h, w = inputs["image_grid_thw"][0].tolist()
    assert t == 1 and h % 2 == 0 and w % 2 == 0
    assert 3136 <= h * w * 14 * 14 <= 12845056  # resized into [min_pixels, max_pixels]
    assert inputs["input_ids"][0].tolist().count(IMAGE_PAD) == h * w // 4
    assert inputs["pixel_values"].shape[0] == h * w


def test_mixed_batch_of_multi_image_and_text_only_prompts_generates_left_padded(real_tiny_model_dir):
    model, processor = load_model(real_tiny_model_dir), load_processor(real_tiny_model_dir)
    two = [{"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Compare."}]}]
    text_only = [{"role": "user", "content": [{"type": "text", "text": "What is 2+3?"}]}]
    texts = [processor.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in (two, text_only)]
    images = [[Image.new("RGB", (113, 85), "red"), Image.new("RGB", (60, 140), "blue")], []]
    batch = processor(text=texts, images=images, padding=True, padding_side="left", return_tensors="pt")
    assert batch["input_ids"][0].tolist().count(IMAGE_PAD) == sum(
        int(g.prod()) // 4 for g in batch["image_grid_thw"])
    assert batch["input_ids"][1, 0].item() == ENDOFTEXT and batch["attention_mask"][1, 0].item() == 0  # left pads
    assert batch["input_ids"][:, -1].tolist() == batch["input_ids"][0, -1:].tolist() * 2  # both end the prompt
    out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    alone = processor(text=[texts[1]], return_tensors="pt")
    alone_out = model.generate(**alone, max_new_tokens=4, do_sample=False)
    # Padding and the other row's images change nothing for the text-only row.
    assert out[1, -4:].tolist() == alone_out[0, -4:].tolist()
