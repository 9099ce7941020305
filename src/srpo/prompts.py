"""Prompt templates (docs/method.md#prompts, our own wording) and the chat messages built from a problem."""

from __future__ import annotations

from typing import Any

from srpo.errors import InvalidValue

REFLECTION_SYSTEM_PROMPT = (
    "You are a careful reasoner. Solve the problem step by step.\n"
    "1. Reason inside <think> </think> and give a first answer inside <answer> </answer> as $\\boxed{...}$ "
    "(the option letter for a multiple-choice question, the number for a numeric one).\n"
    "2. Reflect critically on that reasoning and answer inside <reflection> </reflection>: look for mistakes, "
    "missing assumptions and steps that could be clearer.\n"
    "3. Guided by the reflection, reason again inside <think> </think> and give the final answer inside "
    "<answer> </answer>. Carry the reflection's improvements into the second pass even when the answer stays.\n"
    "Always keep the order think, answer, reflection, think, answer.\n"
    "Example: What is 1+1? <think>One plus one is two.</think> <answer>$\\boxed{2}$</answer> "
    "<reflection>The addition is right and the reasoning is short.</reflection> <think>1 + 1 = 2.</think> "
    "<answer>$\\boxed{2}$</answer>"
)

SFT_SYSTEM_PROMPT = (
    "You are a reasoning expert. Work in two rounds: first an initial chain of thought and answer, then a "
    "reflection on them, then the final reasoning and answer."
)

PLAIN_SYSTEM_PROMPT = (
    "Solve the problem step by step. Reason inside <think> </think>, then give the answer inside "
    "<answer> </answer> as $\\boxed{...}$."
)

ATTEMPT_SYSTEM_PROMPT = (
    "Reason about the problem inside <think> </think>, then give only the answer inside <answer> </answer>: "
    "the option letter for a multiple-choice question, the number for a numeric one."
)

# The stage-1 teacher prompt (docs/method.md#prompts), sent with the problem's image(s). Editable: `srpo reflect --teacher-prompt FILE`
# with the placeholders {question}, {reasoning}, {predicted_answer}, {reference_answer} and {response}.
TEACHER_PROMPT_TEMPLATE = """You are reviewing a student's attempt at a visual reasoning problem. The problem's image(s) are attached.

Question:
{question}

Student's reasoning:
{reasoning}

Student's answer: {predicted_answer}
Reference answer: {reference_answer}

Write a reflection on the student's attempt, in the first person as if the student were reviewing their own work.
Point out logical flaws, missing assumptions and misread details; say what was right but could be clearer; and say
how to improve the reasoning. If the attempt is correct, streamline it and remove redundant steps. Do not simply
state the reference answer: the reflection must show why the attempt is right or where it goes wrong.

Reply with JSON only: {{"reflection": "..."}}"""

SYSTEM_PROMPTS = {
    "reflection": REFLECTION_SYSTEM_PROMPT,
    "sft": SFT_SYSTEM_PROMPT,
    "plain": PLAIN_SYSTEM_PROMPT,
    "attempt": ATTEMPT_SYSTEM_PROMPT,
}


def system_prompt(name: str) -> str:
    try:
        return SYSTEM_PROMPTS[name]
    except KeyError:
        raise InvalidValue(f"unknown system prompt '{name}'; choose one of {sorted(SYSTEM_PROMPTS)}") from None


def problem_messages(question: str, n_images: int, system: str | None) -> list[dict[str, Any]]:
    """Conversational prompt: optional system turn, then one user turn with the image slots before the text."""
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
    content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": question}]
    messages.append({"role": "user", "content": content})
    return messages
