"""`srpo reflect` and GRPO's scoring pass on the tiny model that keeps the real Qwen2.5-VL-7B processor
(../shared/qwen2_5_vl_processor): the real chat template, image-token counts and special-token ids. Skipped, with the
reason, where those files are absent."""

import dataclasses
import json

import datasets
import pytest
import torch
from transformers import AutoImageProcessor, AutoTokenizer, GenerationMixin, Qwen2_5_VLForConditionalGeneration

from fake_openai_server import FakeOpenAIServer, reflection_for
from srpo.config import ReflectConfig, SRPOGRPOConfig, SRPOSFTConfig
from srpo.data import generate_problems, save_problems
from srpo.format import is_five_block, parse_response
from srpo.prompts import ATTEMPT_SYSTEM_PROMPT, SFT_SYSTEM_PROMPT
from srpo.reflect.build import run_reflect
from srpo.train.rl import build_rl_trainer
from srpo.train.sft import build_sft_trainer

IM_END, VISION_START, IMAGE_PAD = 151645, 151652, 151655
DEFAULT_SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
SEEDED = 2  # problems whose attempts a previous (killed) run stored: a random model writes no tags
NEW_TOKENS = 6
IMAGE_TOKENS = {(84, 84): 9, (60, 116): 8}  # 14-px patches of the image resized to multiples of 28, merged 2x2


def numeric_problems(n: int, tagged: bool = False):
    """Synthetic problems with worked solutions (the oracle needs them); `tagged` puts the fake server's [id=...]
    tag in the question, and the second problem gets a second image."""
    problems = [p for p in generate_problems(12, seed=3, difficulty=1, image_size=84) if p.answer.isdigit()][:n]
    if tagged:
        problems = [dataclasses.replace(p, question=f"[id={p.id}] {p.question}") for p in problems]
        problems[1].images = [problems[1].images[0], problems[1].images[0].resize((60, 116))]
    return problems


def seed_attempts(out, problems):
    """A right attempt for the first problem and a wrong one for the second, as an interrupted run leaves them."""
    said = [problems[0].answer, str(int(problems[1].answer) + 7)]
    records = [{"id": p.id, "response": f"<think>I count {n}.</think><answer>{n}</answer>", "status": "ok"}
               for p, n in zip(problems, said)]
    out.mkdir()
    (out / "attempts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def real_prompt_ids(real_processor_dir, system: str | None, question: str, images) -> list[int]:
    """The prompt as the upstream files render it: real chat template (its default system message when `system`
    is None), each image's placeholder expanded to its patch-grid count."""
    tokenizer = AutoTokenizer.from_pretrained(real_processor_dir)
    image_processor = AutoImageProcessor.from_pretrained(real_processor_dir)
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages.append({"role": "user", "content": [{"type": "image"} for _ in images] + [{"type": "text", "text": question}]})
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text.startswith(DEFAULT_SYSTEM) == (system is None)
    for grid in image_processor(images=list(images), return_tensors="pt")["image_grid_thw"]:
        text = text.replace("<|image_pad|>", "<|placeholder|>" * (int(grid.prod()) // 4), 1)
    return tokenizer(text.replace("<|placeholder|>", "<|image_pad|>"), add_special_tokens=False)["input_ids"]


@pytest.fixture
def generated(monkeypatch):
    """(prompt ids without padding, new ids) of each row the policy generates for: the real generate, observed."""
    calls = []

    def observed_generate(self, *args, **kwargs):
        output = GenerationMixin.generate(self, *args, **kwargs)
        prompt, mask = kwargs["input_ids"], kwargs["attention_mask"].bool()
        calls.extend((ids[m].tolist(), out[prompt.shape[1]:].tolist()) for ids, m, out in zip(prompt, mask, output))
        return output

    monkeypatch.setattr(Qwen2_5_VLForConditionalGeneration, "generate", observed_generate)
    return calls


def assert_sft_rows_use_the_real_template(model_dir, real_processor_dir, dataset_dir, tmp_path, system: str):
    """`srpo sft` on the reflect output: each row's prompt is exactly the real template's (default system message
    only without a system prompt), with real image-token counts; the labels start at the completion and cover it."""
    rows = datasets.load_from_disk(str(dataset_dir / "dataset"))
    trainer = build_sft_trainer(SRPOSFTConfig(
        model_name_or_path=str(model_dir), dataset=str(dataset_dir), output_dir=str(tmp_path / "sft"),
        system_prompt=system, max_steps=1, per_device_train_batch_size=2, report_to=[], save_steps=100))
    tokenizer = trainer.processing_class.tokenizer
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    for i, row in enumerate(rows):
        ids = [t for t, m in zip(batch["input_ids"][i].tolist(), batch["attention_mask"][i].tolist()) if m]
        labels = [t for t, m in zip(batch["labels"][i].tolist(), batch["attention_mask"][i].tolist()) if m]
        first = next(j for j, t in enumerate(labels) if t != -100)
        expected_prompt = real_prompt_ids(real_processor_dir, SFT_SYSTEM_PROMPT if system else None, row["question"],
                                          row["images"])
        assert ids[:first] == expected_prompt, row["id"]
        assert expected_prompt.count(IMAGE_PAD) == sum(IMAGE_TOKENS[image.size] for image in row["images"])
        target = tokenizer(row["target"], add_special_tokens=False)["input_ids"] + [IM_END]
        # The completion and its <|im_end|>, one span; what follows <|im_end|> is sft.py's business.
        assert labels[first:first + len(target)] == target and ids[first:first + len(target)] == target
        assert all(t == -100 for t in labels[:first])


def test_reflect_with_local_attempts_on_the_real_processor_and_the_oracle(real_tiny_model_dir, real_processor_dir,
                                                                           tmp_path, generated):
    problems = numeric_problems(4)
    path = save_problems(problems, tmp_path / "problems.jsonl")
    seeded = seed_attempts(tmp_path / "out", problems)
    cfg = ReflectConfig(problems=str(path), policy=str(real_tiny_model_dir), out=str(tmp_path / "out"),
                        attempt_max_new_tokens=NEW_TOKENS, attempt_temperature=0.0, batch_size=2, right_fraction=None,
                        target_shape="five_block", progress=False)
    run_reflect(cfg)

    attempts = [json.loads(line) for line in (tmp_path / "out" / "attempts.jsonl").read_text().splitlines()]
    assert [a["id"] for a in attempts] == [p.id for p in problems]  # every problem, the seeded ones not redone
    assert attempts[:SEEDED] == seeded
    # The policy saw the real template with the attempt system prompt and real image-token counts; a chunk cut
    # short is generated whole again, so all four prompts went through, and only the missing attempts were stored.
    assert [prompt for prompt, _ in generated] == [
        real_prompt_ids(real_processor_dir, ATTEMPT_SYSTEM_PROMPT, p.question, p.images) for p in problems]
    tokenizer = AutoTokenizer.from_pretrained(real_processor_dir)
    assert [a["response"] for a in attempts[SEEDED:]] == [
        tokenizer.decode(new, skip_special_tokens=True) for _, new in generated[SEEDED:]]
    ds = datasets.load_from_disk(str(tmp_path / "out" / "dataset"))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["dropped"] == {"no_think_or_answer": 2} and summary["kept"] == 2  # the random model's attempts
    gold = {p.id: p.answer for p in problems}
    for row, seed in zip(sorted(ds, key=lambda r: r["id"]), sorted(seeded, key=lambda r: r["id"])):
        parsed = parse_response(row["target"])
        assert is_five_block(row["target"]) and parsed.reflection == row["reflection"]
        said = parse_response(seed["response"]).first_answer
        assert (parsed.first_think, parsed.first_answer) == (f"I count {said}.", said)  # the attempt's own blocks
        assert parsed.final_answer == f"$\\boxed{{{gold[row['id']]}}}$"
        assert row["first_correct"] == (row["id"] == problems[0].id)
    assert_sft_rows_use_the_real_template(real_tiny_model_dir, real_processor_dir, tmp_path / "out", tmp_path, "sft")


def test_reflect_with_a_loopback_teacher_and_the_real_processor_policy(real_tiny_model_dir, real_processor_dir,
                                                                       tmp_path, generated):
    problems = numeric_problems(3, tagged=True)
    path = save_problems(problems, tmp_path / "problems.jsonl")
    seed_attempts(tmp_path / "out", problems)
    with FakeOpenAIServer(keep_text=True) as server:
        cfg = ReflectConfig(problems=str(path), policy=str(real_tiny_model_dir), out=str(tmp_path / "out"),
                            system_prompt="", attempt_max_new_tokens=NEW_TOKENS, attempt_temperature=0.0,
                            batch_size=2, teacher=server.url, teacher_model="teacher-72b", teacher_api_key_env="",
                            concurrency=2, backoff_base=0.01, backoff_max=0.05, right_fraction=None, progress=False)
        run_reflect(cfg)
        attempts_file = (tmp_path / "out" / "attempts.jsonl").read_text()
        requests = server.requests()
        run_reflect(cfg)  # a rerun asks for nothing and generates nothing
        assert server.requests() == requests and (tmp_path / "out" / "attempts.jsonl").read_text() == attempts_file

    attempts = [json.loads(line) for line in attempts_file.splitlines()]
    assert [a["id"] for a in attempts] == [p.id for p in problems]
    # No system prompt configured: the policy saw the real template's default system message.
    assert [prompt for prompt, _ in generated] == [real_prompt_ids(real_processor_dir, None, p.question, p.images)
                                                   for p in problems]

    # Only the attempts with tags reach the teacher, each with all its images and the reference answer.
    assert all(r["kind"] == "teacher" and r["model"] == "teacher-72b" for r in requests)
    sent = {r["id"]: r for r in requests}
    assert sorted(sent) == sorted(p.id for p in problems[:SEEDED]) and len(requests) == SEEDED
    for problem in problems[:SEEDED]:
        assert sent[problem.id]["images"] == len(problem.images)  # 1, and 2 for the second problem
        assert f"Reference answer: {problem.answer}" in sent[problem.id]["text"]
        assert attempts[problems.index(problem)]["response"].split("<think>")[1].split("</think>")[0] in \
            sent[problem.id]["text"]

    ds = datasets.load_from_disk(str(tmp_path / "out" / "dataset"))
    gold = {p.id: p.answer for p in problems}
    for row in ds:
        parsed = parse_response(row["target"])
        assert parsed.reflection == reflection_for(row["id"]) == row["reflection"]
        # The spec's SFT shape: first think and answer, reflection, final answer (no second think).
        assert row["target"].count("<think>") == 1 and row["target"].count("<answer>") == 2
        assert parsed.final_answer == f"$\\boxed{{{gold[row['id']]}}}$"
    assert_sft_rows_use_the_real_template(real_tiny_model_dir, real_processor_dir, tmp_path / "out", tmp_path, "")


# ---- GRPO: a policy that samples vision tokens in its completion -------------------------------------------------
# TRL's forward pass on prompt + completion reads every <|image_pad|> id as an image slot, so a sampled one breaks
# "Image features and image tokens do not match". TRL 1.16 suppresses it in transformers generation only; vLLM
# rollouts (and a generation_kwargs that sets its own suppress_tokens) sample it; srpo ends such a completion there.


def rigged_rl_trainer(model_dir, problems_file, tmp_path, **kw):
    """A GRPO trainer whose policy puts <|image_pad|> first and <|vision_start|> second at every step."""
    trainer = build_rl_trainer(SRPOGRPOConfig(
        model_name_or_path=str(model_dir), dataset=str(problems_file), output_dir=str(tmp_path / "rl"),
        num_generations=2, prompts_per_generation=2, optimizer_batch_size=4, per_device_train_batch_size=4,
        max_completion_length=5, max_steps=1, report_to=[], save_steps=100, max_prompt_length=2048, **kw))
    bias = torch.zeros(trainer.model.lm_head.out_features)
    bias[IMAGE_PAD], bias[VISION_START] = 1e3, 5e2
    trainer.model.lm_head.register_forward_hook(lambda module, args, logits: logits + bias.to(logits.dtype))
    return trainer


def rollout_and_score(trainer):
    """One generation batch as GRPOTrainer makes it, then its per-token log-probs and loss through TRL's own path."""
    rows = [trainer.train_dataset[i] for i in range(2) for _ in range(2)]  # 2 prompts x 2 generations
    batch = trainer._generate_and_score_completions(rows)
    keys = ("pixel_values", "image_grid_thw", "num_images", "mm_token_type_ids")
    logps, _, _ = trainer._get_per_token_logps_and_entropies(
        trainer.model, torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1),
        torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1), batch["completion_ids"].size(1),
        **{key: batch.get(key) for key in keys})
    return batch, logps, trainer.compute_loss(trainer.model, batch)


def test_grpo_rollouts_hold_no_image_pad_and_vision_tokens_in_a_completion_score_finitely(
        real_tiny_model_dir, problems_file, tmp_path):
    trainer = rigged_rl_trainer(real_tiny_model_dir, problems_file, tmp_path)
    assert IMAGE_PAD in trainer.generation_config.suppress_tokens
    batch, logps, loss = rollout_and_score(trainer)
    completions, mask = batch["completion_ids"], batch["completion_mask"].bool()
    assert not (completions == IMAGE_PAD).any()
    assert (completions == VISION_START).all()  # the policy's second choice fills every completion
    assert (batch["prompt_ids"] == IMAGE_PAD).sum().item() == 4 * 9  # the prompts' own image tokens are intact
    assert logps.shape == completions.shape and torch.isfinite(logps[mask]).all() and (logps[mask] <= 0).all()
    assert torch.isfinite(loss)


def test_a_rollout_that_samples_image_pads_is_scored_without_crashing(real_tiny_model_dir, problems_file, tmp_path):
    # suppress_tokens replaced by the user's own list: the rollouts sample <|image_pad|>, as vLLM's do.
    trainer = rigged_rl_trainer(real_tiny_model_dir, problems_file, tmp_path, generation_kwargs={"suppress_tokens": []})
    batch, logps, loss = rollout_and_score(trainer)
    completions, mask = batch["completion_ids"], batch["completion_mask"].bool()
    assert not (completions == IMAGE_PAD).any()
    assert completions[:, 0].tolist() == [IM_END] * 4  # ended where the policy asked for an image slot
    assert torch.isfinite(logps[mask]).all() and torch.isfinite(loss)
