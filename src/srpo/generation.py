"""Batched local generation with a policy: stage-1 attempts and local evaluation share it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from srpo.prompts import problem_messages


@torch.inference_mode()
def generate_responses(
    model,
    processor,
    problems: Sequence,
    system: str | None,
    *,
    max_new_tokens: int = 1024,
    temperature: float = 0.0,
    batch_size: int = 8,
    seed: int = 0,
    desc: str = "generating",
    progress: bool = True,
) -> list[str]:
    """One response per problem, in order; greedy when temperature is 0."""
    torch.manual_seed(seed)
    model.eval()
    tokenizer = processor.tokenizer
    responses: list[str] = []
    bar = tqdm(total=len(problems), desc=desc, disable=not progress, unit="problem")
    for start in range(0, len(problems), batch_size):
        batch = problems[start : start + batch_size]
        texts = [
            processor.apply_chat_template(
                problem_messages(p.question_with_choices(), len(p.images), system),
                add_generation_prompt=True,
                tokenize=False,
            )
            for p in batch
        ]
        images = [list(p.images) for p in batch]
        inputs = processor(
            text=texts,
            images=images if any(images) else None,
            padding=True,
            padding_side="left",
            return_tensors="pt",
        ).to(model.device)
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        output = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            **sampling,
        )
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        responses.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
        bar.update(len(batch))
    bar.close()
    return responses
