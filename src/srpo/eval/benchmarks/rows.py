"""Reading the JSON / JSONL row files a user passes (benchmark data files, output files for `srpo eval score`),
checked before anything is scored: a file cut short, the wrong shape or a row without its fields is one error that
names the file, the line or item, and the fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from srpo.errors import InvalidValue


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
