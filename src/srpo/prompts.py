"""Prompt templates (docs/method.md#prompts, our own wording) and the chat messages built from a problem."""

from __future__ import annotations

import string
from collections.abc import Sequence, Set
from pathlib import Path
from typing import Any

from srpo.errors import InvalidValue, MissingPath

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

# Perception-R1's released system prompt (its single-round format; the `perception` preset's format term checks it).
PERCEPTION_SYSTEM_PROMPT = (
    "You FIRST think about the reasoning process as an internal monologue and then provide the final answer.\n"
    " The reasoning process MUST BE enclosed within <think> </think> tags, and the answer process MUST BE enclosed "
    "within <answer> </answer> tags.\n The final answer MUST BE put in \\boxed{} in <answer> </answer> tags."
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
    "perception": PERCEPTION_SYSTEM_PROMPT,
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


def template_placeholders(template: str, where: str) -> set[str]:
    """The {placeholder} names of `template`; `where` names it in the error for unbalanced braces."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise InvalidValue(f"{where}: not a valid template ({exc}); write literal braces as {{{{ and }}}}") from None


def check_prompt_template(template: str, where: str, fields: Set[str], required: Sequence[str | tuple[str, ...]],
                          reader: str) -> None:
    """Refuses, before any request, a template that would fail or mislead when filled in: placeholders other than
    `fields`, a `required` one missing (a tuple: at least one of its names), or one that str.format cannot fill
    (a format spec such as {question:d}). `reader` is who reads the filled-in prompt ("the teacher")."""
    names = template_placeholders(template, where)
    unknown = sorted(names - set(fields))
    if unknown:
        raise InvalidValue(f"{where}: unknown placeholder(s) {unknown}; use {sorted(fields)}")
    alternatives = [(need,) if isinstance(need, str) else need for need in required]
    missing = [("one of " if len(choices) > 1 else "") + "/".join(f"{{{name}}}" for name in choices)
               for choices in alternatives if not names & set(choices)]
    if missing:
        them = "it" if len(missing) == 1 else "them"
        raise InvalidValue(f"{where}: lacks {', '.join(missing)}; {reader} must see {them}")
    try:
        template.format(**{name: "" for name in fields})
    except (ValueError, IndexError) as exc:
        example = alternatives[0][0] if alternatives else min(fields)
        raise InvalidValue(f"{where}: cannot be filled in ({exc}); use plain placeholders such as {{{example}}}") from None


def read_prompt_template(path: str | None, key: str, builtin: str, fields: Set[str],
                         required: Sequence[str | tuple[str, ...]], reader: str) -> str:
    """The prompt template of config key `key`: `builtin` when `path` is unset, else the UTF-8 text file `path`;
    checked either way by `check_prompt_template`."""
    if not path:
        check_prompt_template(builtin, f"built-in {key}", fields, required, reader)
        return builtin
    file = Path(path)
    if not file.is_file():
        what = "is a folder" if file.is_dir() else "not found"
        raise MissingPath(f"{key}: template file {file} {what}; pass a text file, or leave {key} unset for the "
                          "built-in one")
    try:
        template = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidValue(f"{key}: {file} is not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise InvalidValue(f"{key}: {file} cannot be read ({exc.strerror}); check its permissions") from None
    check_prompt_template(template, f"{key} {file}", fields, required, reader)
    return template
