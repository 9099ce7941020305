"""Teachers write a reflection on a policy attempt (docs/method.md#prompts teacher prompt, §3.4).

`OracleTeacher` needs no model: it writes the reflection from the problem's worked solution. The endpoint teacher
(`srpo.reflect.remote.EndpointTeacher`, any OpenAI-compatible server) implements the same `Teacher` protocol, plus
an async `areflect` that `srpo.reflect.build.run_reflect` runs concurrently with a durable store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from srpo.data import Problem
from srpo.errors import InvalidValue


@dataclass(frozen=True)
class Attempt:
    """A policy's first attempt at a problem, already parsed and checked."""

    problem_id: str
    response: str
    reasoning: str
    answer: str
    correct: bool


@dataclass(frozen=True)
class Reflection:
    text: str
    revised_reasoning: str | None = None  # the second <think>, when the teacher writes one


class Teacher(Protocol):
    name: str

    def reflect(self, problem: Problem, attempt: Attempt) -> Reflection: ...


# Numbers and content words: a value or a name (a colour, a shape) the solution never mentions is where the
# attempt went wrong.
_FACT = re.compile(r"-?\d+(?:\.\d+)?|[A-Za-z]{4,}")


class OracleTeacher:
    """Reflections from a worked solution: confirms and streamlines a right attempt, finds the mistake in a wrong one."""

    name = "oracle"

    def reflect(self, problem: Problem, attempt: Attempt) -> Reflection:
        if not problem.solution:
            raise InvalidValue(f"problem {problem.id}: the oracle teacher needs a worked solution (field 'solution')")
        steps = _without_conclusion(problem.solution)
        if attempt.correct:
            text = (
                "My reasoning reaches the right result, but it can be stated more directly. "
                f"The essential steps are: {steps}"
            )
        else:
            text = f"My first answer does not hold up. {_locate_mistake(attempt.reasoning, problem.solution)} {steps}"
        return Reflection(text=text.strip(), revised_reasoning=problem.solution.strip())


def _without_conclusion(solution: str) -> str:
    """The worked steps without the closing 'So the answer is X.' sentence, so the reflection does not just state it."""
    sentences = re.split(r"(?<=[.!?])\s+", solution.strip())
    kept = [s for s in sentences if not re.match(r"(so|therefore|hence),? the (final )?answer", s, re.IGNORECASE)]
    return " ".join(kept or sentences[:-1] or sentences)


def _locate_mistake(reasoning: str, solution: str) -> str:
    solution_facts = {f.lower() for f in _FACT.findall(solution)}
    wrong = [f for f in _FACT.findall(reasoning) if f.lower() not in solution_facts]
    if wrong:
        return f"I used {wrong[0]}, which does not match what the image shows."
    if not reasoning.strip():
        return "I gave an answer without any reasoning to support it."
    return "My reasoning skipped a step, so the conclusion does not follow."
