"""Build the stage-1 reflection dataset: attempts -> reflections -> filters -> an SFT-ready dataset on disk.

Files in the output dir: `attempts.jsonl` (one line per problem, appended as generated, so a rerun skips finished
problems), `dataset/` (datasets format: question, images, target, ...) and `summary.json` (kept/dropped by reason).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from srpo.answers import is_correct
from srpo.config import ReflectConfig
from srpo.data import Problem, load_problems, problems_to_dataset
from srpo.format import parse_response, render_response, render_sft_target
from srpo.generation import generate_responses
from srpo.prompts import system_prompt
from srpo.reflect.teachers import Attempt, OracleTeacher, Teacher


def make_teacher(name: str) -> Teacher:
    if name == "oracle":
        return OracleTeacher()
    raise ValueError(f"unknown teacher '{name}': 'oracle' is built in (endpoint teachers take a URL)")


def parse_attempt(problem: Problem, response: str) -> Attempt | None:
    """SPEC §3.2: drop attempts without <think>/<answer>; mark the first answer right or wrong."""
    parsed = parse_response(response)
    if parsed.first_think is None or parsed.first_answer is None:
        return None
    correct = is_correct(parsed.first_answer, problem.answer, choices=problem.choices)
    return Attempt(problem.id, response, parsed.first_think.strip(), parsed.first_answer.strip(), correct)


def generate_attempts(cfg: ReflectConfig, problems: list[Problem], out: Path) -> dict[str, str]:
    """Responses by problem id; resumes from attempts.jsonl, appending new ones as each batch finishes."""
    from srpo.models import load_policy

    path = out / "attempts.jsonl"
    done: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[row["id"]] = row["response"]
    todo = [p for p in problems if p.id not in done]
    if todo:
        model, processor = load_policy(cfg.policy)
        with path.open("a") as f:
            for start in range(0, len(todo), cfg.batch_size * 8):
                chunk = todo[start : start + cfg.batch_size * 8]
                responses = generate_responses(
                    model,
                    processor,
                    chunk,
                    system_prompt(cfg.system_prompt) if cfg.system_prompt else None,
                    max_new_tokens=cfg.attempt_max_new_tokens,
                    temperature=cfg.attempt_temperature,
                    batch_size=cfg.batch_size,
                    seed=cfg.seed + start,
                    desc=f"attempts {start + len(chunk)}/{len(todo)}",
                )
                for problem, response in zip(chunk, responses):
                    f.write(json.dumps({"id": problem.id, "response": response}) + "\n")
                    done[problem.id] = response
                f.flush()
    return done


def render_target(attempt: Attempt, reflection_text: str, revised: str | None, gold: str, shape: str) -> str:
    final = f"$\\boxed{{{gold}}}$"
    if shape == "sft":
        return render_sft_target(attempt.reasoning, attempt.answer, reflection_text, final)
    if shape == "five_block":
        return render_response(attempt.reasoning, attempt.answer, reflection_text, revised or attempt.reasoning, final)
    raise ValueError(f"target_shape must be 'sft' or 'five_block', got '{shape}'")


def build_examples(cfg: ReflectConfig, problems: list[Problem], responses: dict[str, str], teacher: Teacher):
    """Filter (SPEC §3.2-§3.3) and reflect; returns (kept rows, Counter of drop reasons)."""
    dropped: Counter[str] = Counter()
    candidates: list[tuple[Problem, Attempt]] = []
    seen: set[tuple[str, str]] = set()
    for problem in problems:
        attempt = parse_attempt(problem, responses.get(problem.id, ""))
        if attempt is None:
            dropped["no_think_or_answer"] += 1
        elif not cfg.min_reasoning_chars <= len(attempt.reasoning) <= cfg.max_reasoning_chars:
            dropped["reasoning_length"] += 1
        elif (problem.id, attempt.response) in seen:
            dropped["duplicate"] += 1
        else:
            seen.add((problem.id, attempt.response))
            candidates.append((problem, attempt))
    candidates = balance_right_wrong(candidates, cfg.right_fraction, cfg.max_examples, cfg.seed, dropped)
    rows = []
    for problem, attempt in candidates:
        reflection = teacher.reflect(problem, attempt)
        if not reflection.text.strip() or len(reflection.text) > cfg.max_reflection_chars:
            dropped["reflection_length"] += 1
            continue
        target = render_target(attempt, reflection.text, reflection.revised_reasoning, problem.answer, cfg.target_shape)
        final = parse_response(target).final_answer or ""
        if not is_correct(final, problem.answer, choices=problem.choices):  # SPEC §3: final answer verified
            dropped["final_answer_unverified"] += 1
            continue
        rows.append((problem, attempt, reflection, target))
    return rows, dropped


def balance_right_wrong(candidates, right_fraction, max_examples, seed, dropped):
    """Subsample to the requested right/wrong mix (SPEC §3.3), keeping as many examples as the mix allows."""
    rng = random.Random(seed)
    right = [c for c in candidates if c[1].correct]
    wrong = [c for c in candidates if not c[1].correct]
    if right_fraction is not None and right and wrong:
        total = min(len(right) / right_fraction if right_fraction > 0 else float("inf"),
                    len(wrong) / (1 - right_fraction) if right_fraction < 1 else float("inf"))
        if max_examples:
            total = min(total, max_examples)
        n_right, n_wrong = round(total * right_fraction), round(total * (1 - right_fraction))
        dropped["mix_right"] += len(right) - min(n_right, len(right))
        dropped["mix_wrong"] += len(wrong) - min(n_wrong, len(wrong))
        right, wrong = rng.sample(right, min(n_right, len(right))), rng.sample(wrong, min(n_wrong, len(wrong)))
    kept = right + wrong
    if max_examples and len(kept) > max_examples:
        dropped["max_examples"] += len(kept) - max_examples
        kept = rng.sample(kept, max_examples)
    rng.shuffle(kept)
    return kept


def run_reflect(cfg: ReflectConfig, teacher: Teacher | None = None) -> Path:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    problems = load_problems(cfg.problems, limit=cfg.limit)
    responses = generate_attempts(cfg, problems, out)
    rows, dropped = build_examples(cfg, problems, responses, teacher or make_teacher(cfg.teacher))
    if not rows:
        raise ValueError(f"no example survived filtering ({dict(dropped)}): check the policy's attempts in {out}")
    ds = problems_to_dataset([p for p, *_ in rows])
    ds = ds.add_column("target", [t for *_, t in rows])
    ds = ds.add_column("first_correct", [a.correct for _, a, _, _ in rows])
    ds = ds.add_column("reflection", [r.text for _, _, r, _ in rows])
    ds.save_to_disk(str(out / "dataset"))
    n_right = sum(a.correct for _, a, _, _ in rows)
    summary = {
        "problems": len(problems),
        "kept": len(rows),
        "kept_right": n_right,
        "kept_wrong": len(rows) - n_right,
        "dropped": dict(dropped),
        "teacher": getattr(teacher, "name", cfg.teacher),
        "config": asdict(cfg),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return out
