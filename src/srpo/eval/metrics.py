"""Reflection metrics (SPEC §6): first vs final accuracy, the four transitions, reflection rate, lengths."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from srpo.answers import is_correct
from srpo.format import is_five_block, parse_response

TRANSITIONS = ("wrong_to_right", "right_to_right", "right_to_wrong", "wrong_to_wrong")


@dataclass(frozen=True)
class ScoredResponse:
    response: str
    first_answer: str | None
    final_answer: str | None
    first_correct: bool
    final_correct: bool
    reflected: bool  # a reflection block and a second answer: the model revised (or confirmed) its answer
    five_block: bool
    response_tokens: int
    reflection_tokens: int

    @property
    def transition(self) -> str | None:
        if not self.reflected:
            return None
        return f"{'right' if self.first_correct else 'wrong'}_to_{'right' if self.final_correct else 'wrong'}"


def score(response: str, gold: str, choices, token_count: Callable[[str], int]) -> ScoredResponse:
    parsed = parse_response(response)
    first_ok = parsed.first_answer is not None and is_correct(parsed.first_answer, gold, choices=choices)
    final_ok = parsed.final_answer is not None and is_correct(parsed.final_answer, gold, choices=choices)
    reflected = parsed.reflection is not None and len(parsed.answers) >= 2
    return ScoredResponse(
        response=response,
        first_answer=parsed.first_answer,
        final_answer=parsed.final_answer,
        first_correct=first_ok,
        final_correct=final_ok,
        reflected=reflected,
        five_block=is_five_block(response),
        response_tokens=token_count(response),
        reflection_tokens=token_count(parsed.reflection) if parsed.reflection else 0,
    )


def reflection_metrics(items: Sequence[ScoredResponse]) -> dict[str, float]:
    """Rates are fractions of all items (the four transitions sum to the reflection rate)."""
    n = max(len(items), 1)
    reflected = [i for i in items if i.reflected]
    metrics = {
        "n": len(items),
        "final_accuracy": sum(i.final_correct for i in items) / n,
        "first_accuracy": sum(i.first_correct for i in items) / n,
        "format_rate": sum(i.five_block for i in items) / n,
        "reflection_rate": len(reflected) / n,
        "mean_response_tokens": sum(i.response_tokens for i in items) / n,
        "mean_reflection_tokens": sum(i.reflection_tokens for i in reflected) / max(len(reflected), 1),
    }
    for name in TRANSITIONS:
        metrics[name] = sum(i.transition == name for i in items) / n
    return metrics
