"""Evaluate a local model on problems in the srpo schema: generate, score final answers, reflection metrics."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from srpo.data import Problem
from srpo.eval.metrics import reflection_metrics, score
from srpo.files import atomic_write_json, atomic_write_text
from srpo.generation import generate_responses
from srpo.models import load_policy
from srpo.prompts import system_prompt


def evaluate_problems(
    model_path: str | Path,
    problems: list[Problem],
    *,
    prompt: str = "reflection",
    max_new_tokens: int = 4096,
    batch_size: int = 8,
    out_dir: str | Path | None = None,
    desc: str = "evaluating",
) -> dict[str, float]:
    """Greedy generation (SPEC §6); writes items.jsonl and metrics.json to out_dir when given."""
    model, processor = load_policy(model_path)
    responses = generate_responses(
        model, processor, problems, system_prompt(prompt), max_new_tokens=max_new_tokens,
        temperature=0.0, batch_size=batch_size, desc=desc,
    )
    tokenizer = processor.tokenizer

    def token_count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    items = [score(r, p.answer, p.choices, token_count) for r, p in zip(responses, problems)]
    metrics = reflection_metrics(items)
    if out_dir is not None:
        out_dir = Path(out_dir)
        atomic_write_text(out_dir / "items.jsonl", "".join(
            json.dumps({"id": problem.id, "answer": problem.answer, **asdict(item)}) + "\n"
            for problem, item in zip(problems, items)))
        atomic_write_json(out_dir / "metrics.json", metrics)
    return metrics
