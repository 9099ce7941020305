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
    """Short reflections from a worked solution: confirm a right attempt, name the mistake in a wrong one.

    Short, so a response (attempt, reflection, corrected think and answer) stays near the length term's target
    (docs/method.md#demo-findings): the corrected reasoning goes in the second think, not in the reflection."""

    name = "oracle"

    def reflect(self, problem: Problem, attempt: Attempt) -> Reflection:
        if not problem.solution:
            raise InvalidValue(f"problem {problem.id}: the oracle teacher needs a worked solution (field 'solution')")
        if attempt.correct:
            text = "My reasoning reaches the right result."
        else:
            text = f"My first answer does not hold up. {_locate_mistake(attempt.reasoning, problem.solution)}"
        return Reflection(text=text.strip(), revised_reasoning=problem.solution.strip())


def _locate_mistake(reasoning: str, solution: str) -> str:
    solution_facts = {f.lower() for f in _FACT.findall(solution)}
    wrong = [f for f in _FACT.findall(reasoning) if f.lower() not in solution_facts]
    if wrong:
        return f"I used {wrong[0]}, which does not match what the image shows."
    if not reasoning.strip():
        return "I gave an answer without any reasoning to support it."
    return "My reasoning skipped a step, so the conclusion does not follow."
