"""The scored evaluation item and the reflection metrics over a run (docs/method.md#evaluation): first vs final accuracy, the four
transitions, reflection rate, lengths."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from srpo.format import is_five_block, parse_response
from srpo.rewards import TRANSITIONS


@dataclass(frozen=True)
class ScoredItem:
    """One evaluated item (a line of items.jsonl): the benchmark scorer's verdict on the final answer, and the
    reflection view of the response (its first and final answers, and whether reflecting changed the verdict)."""

    id: str
    gold: str
    response: str
    extraction: Any  # what the scorer extracted and compared, as the benchmark's scorer reports it
    prediction: Any
    unparsed: bool
    method: str | None  # rule | llm | heuristic | given
    first_answer: str | None
    final_answer: str | None
    first_correct: bool
    final_correct: bool  # the scorer's verdict: what the benchmark's score counts
    reflected: bool  # a reflection block and a second answer: the model revised (or confirmed) its answer
    five_block: bool
    response_tokens: int
    reflection_tokens: int

    @property
    def correct(self) -> bool:
        return self.final_correct

    @property
    def transition(self) -> str | None:
        if not self.reflected:
            return None
        return f"{'right' if self.first_correct else 'wrong'}_to_{'right' if self.final_correct else 'wrong'}"

    def to_row(self) -> dict:
        """The items.jsonl line: the verdict first, the response last."""
        return {"id": self.id, "gold": self.gold, "correct": self.correct, "extraction": self.extraction,
                "prediction": self.prediction, "unparsed": self.unparsed, "method": self.method,
                "first_answer": self.first_answer, "final_answer": self.final_answer,
                "first_correct": self.first_correct, "final_correct": self.final_correct, "reflected": self.reflected,
                "five_block": self.five_block, "response_tokens": self.response_tokens,
                "reflection_tokens": self.reflection_tokens, "transition": self.transition, "response": self.response}


def scored_item(item_id: str, gold: str, response: str, verdict: dict, first_correct: bool,
                count: Callable[[str], int]) -> ScoredItem:
    """A ScoredItem from the scorer's `verdict` on the final answer and its verdict on the first answer."""
    parsed = parse_response(response)
    return ScoredItem(
        id=item_id, gold=gold, response=response, extraction=verdict.get("extraction"),
        prediction=verdict.get("prediction"), unparsed=bool(verdict.get("unparsed")), method=verdict.get("method"),
        first_answer=parsed.first_answer, final_answer=parsed.final_answer, first_correct=bool(first_correct),
        final_correct=bool(verdict["correct"]), reflected=parsed.reflection is not None and len(parsed.answers) >= 2,
        five_block=is_five_block(response), response_tokens=count(response),
        reflection_tokens=count(parsed.reflection) if parsed.reflection else 0)


def reflection_metrics(items: Sequence[ScoredItem]) -> dict[str, float]:
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
