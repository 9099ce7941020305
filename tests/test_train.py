"""Both stages on TRL with the tiny model: label masking, frozen vision, LoRA, the group filter, resuming."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image
from trl.data_utils import prepare_multimodal_messages
from trl.trainer.utils import split_tensor_dict

from srpo.config import SRPOGRPOConfig, SRPOSFTConfig
from srpo.format import render_response
from srpo.models import load_model, load_processor
from srpo.train.rl import build_rl_trainer
from srpo.train.sft import build_sft_trainer, run_sft
from srpo.train.training_data import PromptTooLongError, prompt_token_counts

pytestmark = pytest.mark.slow


def sft_config(tiny_model_dir, sft_dataset, tmp_path, **kw):
    base = dict(model_name_or_path=str(tiny_model_dir), dataset=str(sft_dataset), output_dir=str(tmp_path / "sft"), max_steps=2,
                per_device_train_batch_size=2, gradient_accumulation_steps=1, learning_rate=1e-3, report_to=[],
                save_steps=100, logging_steps=1)
    return SRPOSFTConfig(**{**base, **kw})


def test_sft_loss_is_on_the_assistant_completion_only(tiny_model_dir, sft_dataset, tmp_path):
    trainer = build_sft_trainer(sft_config(tiny_model_dir, sft_dataset, tmp_path))
    rows = [trainer.train_dataset[i] for i in range(3)]
    targets = [row["completion"][0]["content"] for row in rows]
    batch = trainer.data_collator(rows)
    tokenizer = trainer.processing_class.tokenizer
    image_token = trainer.processing_class.image_token_id
    assert (batch["input_ids"] == image_token).any()
    for i, target in enumerate(targets):
        trained = batch["labels"][i][batch["labels"][i] != -100]
        assert image_token not in trained.tolist()
        # Exactly the target text and the end-of-turn token are trained: not the system prompt, question or image,
        # nor the template's newline after <|im_end|>.
        assert tokenizer.decode(trained) == target + "<|im_end|>"


def test_sft_with_lora_keeps_vision_frozen_and_saves_a_merged_model(tiny_model_dir, sft_dataset, tmp_path):
    before = load_model(tiny_model_dir)
    final = run_sft(sft_config(tiny_model_dir, sft_dataset, tmp_path, use_peft=True, lora_r=4, freeze_vision=True)).final
    after = load_model(final)
    changed = {n for n, p in after.state_dict().items() if not torch.equal(p, before.state_dict()[n])}
    assert changed, "training changed nothing"
    assert not any("visual" in n for n in changed), "the vision tower must stay frozen"
    assert any("layers" in n and "visual" not in n for n in changed)


def rl_config(model, problems_file, tmp_path, **kw):
    base = dict(model_name_or_path=str(model), dataset=str(problems_file), output_dir=str(tmp_path / "rl"), num_generations=4,
                prompts_per_generation=2, optimizer_batch_size=8, per_device_train_batch_size=8, max_completion_length=12, max_steps=2,
                learning_rate=1e-5, report_to=[], save_steps=100, logging_steps=1, max_prompt_length=512)
    return SRPOGRPOConfig(**{**base, **kw})


def test_group_accuracy_filter_silences_groups_outside_the_band(tiny_model_dir, problems_file, tmp_path):
    trainer = build_rl_trainer(rl_config(tiny_model_dir, problems_file, tmp_path, group_accuracy_filter=[0.1, 0.9]))
    right = render_response("I count 3.", "$\\boxed{3}$", "Correct count.", "3 shapes.", "$\\boxed{3}$")
    wrong = render_response("I count 2.", "$\\boxed{2}$", "Recount.", "2 shapes.", "$\\boxed{2}$")
    completions = [[{"role": "assistant", "content": c}] for c in [right] * 4 + [right, wrong, wrong, right]]
    inputs = [{"answer": "3", "choices": None, "prompt": []} for _ in completions]
    rewards = trainer._calculate_rewards(inputs, [[]] * 8, completions, [[1]] * 8)
    total = (rewards * trainer.reward_weights.to(rewards)).sum(dim=1)
    assert torch.allclose(total[:4], total[:4].mean())  # all right (accuracy 1.0 > 0.9): no advantage
    assert total[4:].std() > 0  # accuracy 0.5: kept
    assert trainer._metrics["train"]["filter/dropped_group_fraction"][-1] == 0.5


@pytest.mark.parametrize("loss_type", ["grpo", "dapo"])
def test_dropped_groups_do_not_dilute_the_kept_ones(tiny_model_dir, tmp_path, loss_type):
    """Each optimizer update's loss, summed over its micro-batches as TRL accumulates them, equals TRL's loss on the
    kept sequences alone: dropped groups neither count in the average nor shrink the kept ones' gradient."""
    problems = tmp_path / "text.jsonl"
    problems.write_text("".join(json.dumps({"id": f"t{i}", "question": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n"
                                for i in range(4)))
    # 4 prompts x 4 samples per generation, micro-batches of 4, updates of 8: 2 updates of 2 micro-batches each.
    trainer = build_rl_trainer(rl_config(tiny_model_dir, problems, tmp_path, group_accuracy_filter=[0.1, 0.9],
                                         prompts_per_generation=4, per_device_train_batch_size=4, loss_type=loss_type))
    accumulation, steps_per_generation = trainer.args.gradient_accumulation_steps, trainer.args.steps_per_generation
    assert (accumulation, steps_per_generation) == (2, 4)
    trainer.model.train()
    generation = trainer._generate_and_score_completions(next(iter(trainer.get_train_dataloader())))
    assert generation["kept"].shape == (16,)  # the filter's flags travel with the batch
    # Which groups the filter keeps depends on the answers; fix them (groups 1 and 2 kept), and give the kept
    # sequences advantages as a learning signal would (a dropped group's are zero).
    kept = torch.tensor([False] * 4 + [True] * 8 + [False] * 4)
    advantages = torch.linspace(-1.5, 1.5, 16) * kept
    generation.update(kept=kept, advantages=advantages)
    micro_batches = split_tensor_dict(generation, steps_per_generation)
    trainer._undilute(micro_batches)
    assert all("kept" not in b for b in micro_batches)

    def loss(batch, current_accumulation):
        trainer.current_gradient_accumulation_steps = current_accumulation
        with torch.no_grad():
            return trainer._compute_loss(trainer.model, batch).item()

    for update in range(steps_per_generation // accumulation):
        rows = range(8 * update, 8 * update + 8)
        accumulated = sum(loss(b, accumulation) for b in micro_batches[2 * update:2 * update + 2])
        kept_rows = [i for i in rows if kept[i]]
        kept_only = {k: v[kept_rows] if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == 16 else v
                     for k, v in generation.items() if k != "kept"}
        if loss_type == "dapo":  # TRL divides by the generation batch's loss tokens: those of the kept sequences
            kept_only["num_items_in_batch"] = generation["completion_mask"][kept].sum()
        reference = loss(kept_only, 1 if loss_type == "grpo" else accumulation)
        assert accumulated == pytest.approx(reference, rel=1e-5, abs=1e-7)
        assert reference != pytest.approx(0.0, abs=1e-6)  # the comparison has something to compare


def test_over_long_image_prompts_are_rejected_by_id_or_skipped(tiny_model_dir, problems_file, tmp_path):
    with pytest.raises(PromptTooLongError, match=r"are longer than max_prompt_length=40 allows \(40 tokens\): syn-"):
        build_rl_trainer(rl_config(tiny_model_dir, problems_file, tmp_path, max_prompt_length=40))
    # The count from image sizes is exactly what GRPOTrainer tokenizes, image tokens included: its own
    # _tokenize_prompts on the rows it reads.
    trainer = build_rl_trainer(rl_config(tiny_model_dir, problems_file, tmp_path))
    rows = list(trainer.train_dataset)
    prompt_ids, _, _ = trainer._tokenize_prompts([prepare_multimodal_messages(r["prompt"], images=r["images"])
                                                  for r in rows])
    counts = prompt_token_counts(trainer.processing_class, [r["prompt"] for r in rows], [r["images"] for r in rows])
    assert counts == [len(ids) for ids in prompt_ids]
    # With skip_bad the longer prompts are dropped and the rest train.
    limit = sorted(counts)[len(counts) // 2]
    trainer = build_rl_trainer(rl_config(tiny_model_dir, problems_file, tmp_path, max_prompt_length=limit,
                                         skip_bad=True))
    assert trainer.train_dataset["id"] == [r["id"] for r, n in zip(rows, counts) if n <= limit]


def test_trainer_and_vllm_see_the_same_pixels(tiny_model_dir, tmp_path):
    """max_pixels reaches the rollout engine too: images come out of the dataset already resized as the trainer's
    processor resizes them, so a processor with the checkpoint's own (larger) max_pixels, as vLLM loads it, leaves
    them as they are and cuts them into the same patches."""
    image = Image.new("RGB", (401, 263), "white")
    image.save(tmp_path / "big.png")
    (tmp_path / "p.jsonl").write_text(json.dumps({"id": "big", "question": "What?", "answer": "1",
                                                  "image": "big.png"}) + "\n")
    trainer_side = 28 * 28 * 16  # below the tiny processor's own 28 x 28 x 64
    trainer = build_rl_trainer(rl_config(tiny_model_dir, tmp_path / "p.jsonl", tmp_path, max_pixels=trainer_side,
                                         prompts_per_generation=1, optimizer_batch_size=4,
                                         per_device_train_batch_size=4))
    served = trainer.train_dataset[0]["images"][0]
    assert served.size != image.size and served.width * served.height <= trainer_side
    assert served.width % 28 == 0 and served.height % 28 == 0
    engine_processor = load_processor(tiny_model_dir)  # the checkpoint's settings, as vLLM would read them
    assert engine_processor.image_processor.size["longest_edge"] > trainer_side
    grid = lambda processor: processor.image_processor(images=[served], return_tensors="pt")["image_grid_thw"]
    assert torch.equal(grid(trainer.processing_class), grid(engine_processor))


def test_rl_killed_after_first_checkpoint_resumes(tiny_model_dir, problems_file, tmp_path):
    out = tmp_path / "rl"
    config = tmp_path / "rl.yaml"
    config.write_text(
        f"model_name_or_path: {tiny_model_dir}\ndataset: {problems_file}\noutput_dir: {out}\nnum_generations: 4\n"
        "prompts_per_generation: 2\noptimizer_batch_size: 8\nper_device_train_batch_size: 8\nmax_completion_length: 8\nmax_steps: 6\n"
        "save_steps: 2\nlogging_steps: 1\nreport_to: []\nmax_prompt_length: 512\n"
    )
    command = [sys.executable, "-m", "srpo.cli", "rl", "--config", str(config)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 240
    while not (out / "checkpoint-2" / "trainer_state.json").exists():
        assert first.poll() is None, first.stdout.read().decode()[-3000:]
        assert time.time() < deadline, "no checkpoint within 240 s"
        time.sleep(0.2)
    time.sleep(0.5)  # let the checkpoint's files finish writing
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert not (out / "final").exists()

    second = subprocess.run(command + ["--max_steps", "6"], capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "resuming from" in second.stderr + second.stdout
    state = (out / "checkpoint-6" / "trainer_state.json").read_text()
    import json

    history = json.loads(state)["log_history"]
    steps = [h["step"] for h in history if "loss" in h]
    assert steps == [1, 2, 3, 4, 5, 6]  # continued from step 2, not restarted
    assert (out / "final" / "config.json").exists()
    assert {p.name for p in (out / "plots").iterdir()} == {"reward_terms.png", "transitions_over_steps.png"}
    # `srpo plot` draws runs side by side from their checkpoints
    from typer.testing import CliRunner

    from srpo.cli import app

    result = CliRunner().invoke(app, ["plot", str(out), str(out), "--out", str(tmp_path / "plots")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "plots" / "reward_terms.png").stat().st_size > 10_000
    missing = CliRunner().invoke(app, ["plot", str(tmp_path / "nothing-here")])
    assert missing.exit_code == 2 and "no checkpoint-*/trainer_state.json" in missing.output
