"""The `Problem` record: image(s), question, reference answer, and what is needed to check and explain it."""

from __future__ import annotations

import string
from dataclasses import dataclass, field

from PIL import Image

from srpo.errors import UserError

ANSWER_TYPES = ("multiple_choice", "integer", "float", "free_form")
CHOICE_LETTERS = string.ascii_uppercase


def question_with_choices(question: str, choices: list[str] | None) -> str:
    """The question as shown in prompts: with a "Choices:" block (`A. ...` per line) when there are choices."""
    if not choices:
        return question
    options = "\n".join(f"{letter}. {text}" for letter, text in zip(CHOICE_LETTERS, choices))
    return f"{question}\nChoices:\n{options}"


class ProblemError(UserError, ValueError):
    """A `Problem` was built with an invalid field; the message names the field and the problem id."""


def to_rgb(image: Image.Image) -> Image.Image:
    """Loaded RGB copy of `image`; transparent pixels are composited on white (not black, as a bare convert does)."""
    image.load()
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


@dataclass
class Problem:
    """One visual reasoning problem. For multiple choice, `answer` is the option letter (A, B, ...) of `choices`."""

    id: str
    question: str
    answer: str
    images: list[Image.Image]
    choices: list[str] | None = None
    answer_type: str = "free_form"
    source: str = ""
    solution: str | None = None
    metadata: dict = field(default_factory=dict)
    # The atomic facts of the image the solution relies on (docs/method.md#perception); None = not annotated.
    visual_facts: list[str] | None = None

    def __post_init__(self) -> None:
        for name in ("id", "question", "answer"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ProblemError(self._where(f"field '{name}' must be a non-empty string, got {value!r}"))
        if self.answer_type not in ANSWER_TYPES:
            raise ProblemError(self._where(f"field 'answer_type' is {self.answer_type!r}; use one of {ANSWER_TYPES}"))
        if not isinstance(self.images, (list, tuple)):
            raise ProblemError(self._where(f"field 'images' must be a list of PIL images, got {type(self.images)}"))
        for i, image in enumerate(self.images):
            if not isinstance(image, Image.Image):
                raise ProblemError(self._where(f"field 'images[{i}]' must be a PIL image, got {type(image).__name__}"))
        self.images = [to_rgb(image) for image in self.images]
        self._check_choices()
        self._check_answer()
        if self.solution is not None and not isinstance(self.solution, str):
            raise ProblemError(self._where(f"field 'solution' must be a string or None, got {self.solution!r}"))
        if not isinstance(self.metadata, dict):
            raise ProblemError(self._where(f"field 'metadata' must be a dict, got {type(self.metadata).__name__}"))
        self._check_visual_facts()

    def _where(self, message: str) -> str:
        return f"problem {self.id!r}: {message}" if isinstance(self.id, str) and self.id.strip() else message

    def _check_choices(self) -> None:
        if self.choices is None:
            if self.answer_type == "multiple_choice":
                raise ProblemError(self._where("field 'choices' is required when answer_type is 'multiple_choice'"))
            return
        if not isinstance(self.choices, (list, tuple)) or not self.choices:
            raise ProblemError(self._where(f"field 'choices' must be a non-empty list of strings, got {self.choices!r}"))
        if len(self.choices) > len(CHOICE_LETTERS):
            raise ProblemError(self._where(f"field 'choices' has {len(self.choices)} options; at most 26 are allowed"))
        for i, choice in enumerate(self.choices):
            if not isinstance(choice, str) or not choice.strip():
                raise ProblemError(self._where(f"field 'choices[{i}]' must be a non-empty string, got {choice!r}"))
        self.choices = list(self.choices)

    def _check_visual_facts(self) -> None:
        if self.visual_facts is None:
            return
        if not isinstance(self.visual_facts, (list, tuple)):
            raise ProblemError(self._where(f"field 'visual_facts' must be a list of strings or null, got "
                                           f"{self.visual_facts!r}"))
        for i, fact in enumerate(self.visual_facts):
            if not isinstance(fact, str) or not fact.strip():
                raise ProblemError(self._where(f"field 'visual_facts[{i}]' must be a non-empty string, got {fact!r}; "
                                               "remove it or write the fact"))
        self.visual_facts = [fact.strip() for fact in self.visual_facts]

    def _check_answer(self) -> None:
        if self.answer_type == "multiple_choice":
            letters = self.choice_letters()
            if self.answer not in letters:
                raise ProblemError(
                    self._where(
                        f"field 'answer' is {self.answer!r}, but a multiple-choice answer must be one of the option "
                        f"letters {', '.join(letters)} (one per choice)"
                    )
                )
        elif self.answer_type == "integer":
            try:
                int(self.answer.replace(",", "").strip())
            except ValueError:
                raise ProblemError(self._where(f"field 'answer' is {self.answer!r}, not an integer")) from None
        elif self.answer_type == "float":
            try:
                float(self.answer.replace(",", "").strip())
            except ValueError:
                raise ProblemError(self._where(f"field 'answer' is {self.answer!r}, not a number")) from None

    def choice_letters(self) -> list[str]:
        """The option letters, one per choice (empty without choices)."""
        return list(CHOICE_LETTERS[: len(self.choices or [])])

    def question_with_choices(self) -> str:
        """The question as shown in prompts: with a "Choices:" block (`A. ...` per line) when there are choices."""
        return question_with_choices(self.question, self.choices)
