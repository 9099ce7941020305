"""Shared pieces of the benchmark scorers: the result type, breakdowns, file loading, small string helpers."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from srpo.errors import InvalidValue

MODES = ("official", "srpo_compat")
SHARED_ENV = "SRPO_SHARED_DIR"

Judge = Callable[[str], str]
"""An LLM hook: takes a prompt, returns the model's text. Used for the GPT steps of the official protocols."""


def shared_dir() -> Path:
    """The shared benchmark folder: $SRPO_SHARED_DIR (or its benchmarks/), else ../shared/benchmarks next to the
    repository root."""
    env = os.environ.get(SHARED_ENV)
    if env:  # either the shared folder itself or its benchmarks/ folder
        p = Path(env)
        return p / "benchmarks" if (p / "benchmarks").is_dir() else p
    return Path(__file__).resolve().parents[4].parent / "shared" / "benchmarks"


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

    def to_official_json(self) -> dict:
        """A dict shaped like the benchmark's official score file."""
        from srpo.eval.scoring import get_scorer

        return get_scorer(self.benchmark).to_official_json(self)

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("items")
        return d


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
                breakdown_of: dict[str, Callable[[dict], Any]], *, counted: Callable[[dict], bool] | None = None,
                options: dict | None = None) -> ScoreResult:
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
    )


def load_records(path: str | Path) -> list[dict]:
    """Read a .json (list, or dict keyed by id) or .jsonl file into a list of dicts. Dict keys are kept as `_key`."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    if isinstance(data, dict):
        return [{"_key": k, **v} for k, v in data.items()]
    return list(data)


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


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}) with balanced braces; None when there is none."""
    idx = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if idx < 0:
        return None
    i = text.find("{", idx)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


def compat_extract(response: str) -> str | None:
    """The SRPO authors' extraction: content of the first <answer> block (a \\boxed{} inside it is unwrapped),
    else the last \\boxed{} of the response; None when neither exists."""
    if response is None:
        return None
    m = _ANSWER_RE.search(response) or _ANSWER_OPEN_RE.search(response)
    if m:
        inner = m.group(1).strip()
        boxed = last_boxed(inner)
        return (boxed if boxed is not None else inner).strip()
    boxed = last_boxed(response)
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


def to_number(s: str) -> float | None:
    try:
        return float(str(s).strip())
    except (TypeError, ValueError):
        return None
