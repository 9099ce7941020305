"""What the benchmark modules share: the data folder, the score result and its breakdowns, and the string helpers
of the SRPO authors' extraction (srpo_compat mode)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from srpo.answers import last_boxed
from srpo.errors import InvalidValue, MissingPath

MODES = ("official", "srpo_compat")
DATA_ENV = "SRPO_DATA_DIR"

Judge = Callable[[str], str]
"""An LLM hook: takes a prompt, returns the model's text. Used for the GPT steps of the official protocols."""


def data_dir(what: str, option: str) -> Path:
    """The folder holding the benchmarks' official folders (mathvista/, mathvision/, ...): $SRPO_DATA_DIR. There is
    no default: a folder guessed from where the package is installed would be wrong for an installed package. `what`
    names what needs the data and `option` how to pass it instead, for the error."""
    env = os.environ.get(DATA_ENV)
    if not env:
        raise MissingPath(f"{what} needs {option}, or {DATA_ENV} set to the folder holding the official benchmark "
                          "folders (mathvista/, mathverse/, mathvision/, mmmu_pro/); neither is set")
    return Path(env)


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InvalidValue(f"unknown scoring mode {mode!r}; expected one of {MODES}")
    return mode


def pct(correct: int, total: int) -> float:
    """Accuracy in percent rounded to two decimals, as the official score files compute it."""
    return round(correct / total * 100, 2) if total else 0.0


@dataclass
class ScoreResult:
    """Scores of one output file (or one list of fresh responses) under one scoring mode."""

    benchmark: str
    mode: str
    n: int
    correct: int
    accuracy: float  # percent
    breakdown: dict[str, dict[str, dict]] = field(default_factory=dict)
    items: list[dict] = field(default_factory=list)
    unparsed: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # scorer switches used (legacy_int, field, ...)
    # The benchmark module's to_official_json; held here so the result knows its own shape without a registry lookup.
    official_shape: Callable[[ScoreResult], dict] | None = field(default=None, repr=False, compare=False)

    def to_official_json(self) -> dict:
        """A dict shaped like the benchmark's official score file."""
        if self.official_shape is None:
            raise InvalidValue(f"{self.benchmark}: this result was built without its benchmark's official shape")
        return self.official_shape(self)

    def summary(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("items", "official_shape")}


def tally(items: list[dict], records: list[dict], categories: dict[str, Callable[[dict], Any]]
          ) -> dict[str, dict[str, dict]]:
    """category -> value -> {n, correct, accuracy}. Getters read the record (a row of the benchmark's data);
    a getter may return a list (the item counts once per value) or None (the item is left out of that category)."""
    out: dict[str, dict[str, dict]] = {cat: {} for cat in categories}
    for it, rec in zip(items, records):
        ok = bool(it["correct"])
        for cat, get in categories.items():
            vals = get(rec)
            if vals is None:
                continue
            if not isinstance(vals, (list, tuple)):
                vals = [vals]
            for v in vals:
                cell = out[cat].setdefault(str(v), {"n": 0, "correct": 0})
                cell["n"] += 1
                cell["correct"] += ok
    for cells in out.values():
        for cell in cells.values():
            cell["accuracy"] = pct(cell["correct"], cell["n"])
    return out


def make_result(benchmark: str, mode: str, items: list[dict], records: list[dict],
                breakdown_of: dict[str, Callable[[dict], Any]], official_shape: Callable[[ScoreResult], dict], *,
                counted: Callable[[dict], bool] | None = None, options: dict | None = None) -> ScoreResult:
    """Build a ScoreResult; `counted(record)` selects the items of the headline accuracy (default: all)."""
    head = [it for it, rec in zip(items, records) if counted is None or counted(rec)]
    correct = sum(bool(it["correct"]) for it in head)
    return ScoreResult(
        benchmark=benchmark,
        mode=mode,
        n=len(head),
        correct=correct,
        accuracy=pct(correct, len(head)),
        breakdown=tally(items, records, breakdown_of),
        items=items,
        unparsed=sum(bool(it.get("unparsed")) for it in head),
        options=dict(options or {}),
        official_shape=official_shape,
    )


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insert / delete / substitute, all cost 1)."""
    if a == b:
        return 0
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def letters(n: int) -> list[str]:
    return [chr(ord("A") + i) for i in range(n)]


# --- srpo_compat extraction: first <answer> block, else the last \boxed{} ---------------------------------------

_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_ANSWER_OPEN_RE = re.compile(r"<answer>(.*)", re.S | re.I)


def compat_extract(response: str) -> str | None:
    """The SRPO authors' extraction: content of the first <answer> block (a \\boxed{} inside it is unwrapped),
    else the last \\boxed{} of the response; None when neither exists. A box left open (a reply cut short) is no
    box here, as in their script."""
    if response is None:
        return None
    m = _ANSWER_RE.search(response) or _ANSWER_OPEN_RE.search(response)
    if m:
        inner = m.group(1).strip()
        boxed = last_boxed(inner, unclosed=False)
        return (boxed if boxed is not None else inner).strip()
    boxed = last_boxed(response, unclosed=False)
    return boxed.strip() if boxed is not None else None


_LETTER_RE = re.compile(r"^\(?\s*([A-Za-z])\s*\)?[.:]?$")


def single_letter(answer: str, n_choices: int) -> str | None:
    """'B', '(B)', 'B.', 'B:' -> 'B' when it is one of the first n_choices letters."""
    m = _LETTER_RE.match(answer.strip())
    if m:
        letter = m.group(1).upper()
        if letter in letters(n_choices):
            return letter
    return None


def compat_choice_letter(answer: str, choices: list[str]) -> str | None:
    """The compat rule pre-pass for multiple choice: a single option letter, else the option whose text is the
    unique option text found in the answer (an exact text match wins). None when neither rule decides."""
    letter = single_letter(answer, len(choices))
    if letter is not None:
        return letter
    a = answer.strip().lower()
    exact = [i for i, c in enumerate(choices) if str(c).strip().lower() == a]
    if len(exact) == 1:
        return letters(len(choices))[exact[0]]
    hits = [i for i, c in enumerate(choices) if len(str(c).strip()) > 1 and str(c).strip().lower() in a]
    if len(hits) == 1:
        return letters(len(choices))[hits[0]]
    return None
