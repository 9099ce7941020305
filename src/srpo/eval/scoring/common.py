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


# --- reading the output files a user hands to `srpo eval score` -----------------------------------------

class OutputFileError(InvalidValue):
    """An output or answer file that cannot be scored: cut short, the wrong JSON shape, rows without their fields."""


LAYOUTS = ("keyed", "list", "jsonl")  # one JSON object keyed by item id | one JSON list of rows | one row per line


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _ends_inside_a_value(text: str, exc: json.JSONDecodeError) -> bool:
    """The decoder ran out of text (a write or a copy cut short), rather than meeting a wrong character."""
    return exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")


def _decode_error(where: str, exc: json.JSONDecodeError, cut: bool) -> OutputFileError:
    if cut:
        return OutputFileError(f"{where}: the JSON ends in the middle of a value, so the file is truncated; pass the "
                               "complete file (copy it again, or rerun what wrote it)")
    return OutputFileError(f"{where}: not valid JSON ({exc.msg}); fix that line or pass an intact file")


def _read_document(path: Path, text: str, layout: str, expected: str) -> list[tuple[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # several JSON values one after another: JSONL rows
            raise OutputFileError(f"{path}: several JSON values one after another (JSONL rows?), but "
                                  f"{expected}") from None
        raise _decode_error(f"{path} line {exc.lineno} column {exc.colno}", exc,
                            cut=_ends_inside_a_value(text, exc)) from None
    if layout == "keyed":
        if not isinstance(data, dict):
            raise OutputFileError(f"{path}: a JSON {_json_type(data)}, but {expected}")
        return [(f"{path} item {key!r}", {"_key": key, **row} if isinstance(row, dict) else row)
                for key, row in data.items()]
    if not isinstance(data, list):
        raise OutputFileError(f"{path}: a JSON {_json_type(data)}, but {expected}")
    return [(f"{path} row {i + 1}", row) for i, row in enumerate(data)]


def _read_jsonl(path: Path, text: str, expected: str) -> list[tuple[str, Any]]:
    lines = text.splitlines()
    if sum(bool(line.strip()) for line in lines) > 1:
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            pass  # not one document: read it line by line
        else:
            raise OutputFileError(f"{path}: one JSON {_json_type(whole)} over {len(lines)} lines, but "
                                  f"{expected}")
    last = max((n for n, line in enumerate(lines, 1) if line.strip()), default=0)
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append((f"{path} line {n}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise _decode_error(f"{path} line {n}", exc, cut=n == last and _ends_inside_a_value(line, exc)) from None
    return rows


def read_rows(path: str | Path, *, layout: str, expected: str, id_fields: tuple[str, ...] = (),
              required: tuple[str, ...] = ()) -> list[tuple[str, dict]]:
    """(place, row) for every row of a JSON or JSONL file that a user passed in, checked before anything is scored.

    layout: "keyed" (one JSON object keyed by item id; the key is kept as `_key`), "list" (one JSON list of row
    objects) or "jsonl" (one row object per line). `expected` says what the file should be, for the messages
    ("mathvision output files are JSONL rows ..."). Each row must be an object holding one of `id_fields` and every
    field of `required`. `place` names the file and the line, key or row, for later messages. A file cut short, the
    wrong shape or a row without its fields raises `OutputFileError` naming the file, the line / item and the fix.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise OutputFileError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start}); "
                              f"{expected}") from None
    if layout == "jsonl":
        rows = _read_jsonl(path, text, expected)
    else:
        rows = _read_document(path, text, layout, expected)
    if not rows:
        raise OutputFileError(f"{path}: no rows; {expected}")
    for place, row in rows:
        if not isinstance(row, dict):
            raise OutputFileError(f"{place}: a JSON {_json_type(row)}, not an object with the item's fields; "
                                  f"{expected}")
        if id_fields and not any(row.get(f) not in (None, "") for f in id_fields):
            names = " or ".join(repr(f) for f in id_fields)
            raise OutputFileError(f"{place}: no {names} field (the item id); every row needs it to be matched with "
                                  "its benchmark item")
        lacking = [f for f in required if f not in row]
        if lacking:
            raise OutputFileError(f"{place}: no {', '.join(repr(f) for f in lacking)} field; every row of the file "
                                  "needs it to be scored")
    return rows


def load_records(path: str | Path) -> list[dict]:
    """Read a .json (list, or dict keyed by id) or .jsonl file into a list of dicts. Dict keys are kept as `_key`.
    A file cut short, invalid JSON or a row that is not an object raises `OutputFileError` naming the line."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    layout = "jsonl" if path.suffix == ".jsonl" else "keyed" if text.lstrip().startswith("{") else "list"
    return [row for _, row in read_rows(path, layout=layout, expected="a benchmark data file holds one JSON object "
                                        "per item (pass the official file or folder with --data)")]


def check_field(path: str | Path, rows: list[dict], field: str) -> None:
    """The field to score must be in at least one row (else it is a typo, and every item would score wrong)."""
    if not any(field in row for row in rows):
        present = sorted({k for row in rows for k in row if k != "_key"})
        raise OutputFileError(f"{path}: no row has the field {field!r} to score (--field); its rows have "
                              f"{', '.join(present)}")


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
