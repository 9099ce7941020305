"""Problem records from any source (srpo.data.sources) and back to JSONL + PNG files.

Every bad row raises `DataError` naming the file, the line (JSONL, 1-based) or row (Parquet/datasets, 0-based) and
the field. With `skip_bad=True` bad rows are skipped instead, and counted by reason in an optional `LoadReport`.
A file that cannot be read at all (not Parquet, not a datasets folder) is a `DataError` even with `skip_bad`.

A row is checked in two steps, so a large set can be checked without holding its pixels: `parse_row` checks the
fields and finds the images (`ImageRef`s, unopened), `open_image` reads and decodes one image.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from srpo.data.schema import ANSWER_TYPES, CHOICE_LETTERS, Problem, ProblemError, to_rgb
from srpo.data.sources import (
    ANSWER_KEYS,
    CHOICE_KEYS,
    IMAGE_KEYS,
    QUESTION_KEYS,
    DataError,
    read_rows,
    shorten,
)
from srpo.errors import InvalidValue
from srpo.files import atomic_write_text, safe_stem

logger = logging.getLogger(__name__)

KNOWN_KEYS = {"id", "answer_type", "source", "solution", "metadata", "visual_facts"}
KNOWN_KEYS |= set(QUESTION_KEYS) | set(ANSWER_KEYS) | set(CHOICE_KEYS) | set(IMAGE_KEYS)


@dataclass
class LoadReport:
    """What `load_problems` kept and skipped: pass one in to read the counts after a `skip_bad=True` load."""

    loaded: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    messages: list[str] = field(default_factory=list)  # the first `max_messages` error messages
    max_messages: int = 10

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def add(self, error: DataError) -> None:
        self.skipped[error.reason] = self.skipped.get(error.reason, 0) + 1
        if len(self.messages) < self.max_messages:
            self.messages.append(str(error))

    def summary(self) -> str:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(self.skipped.items()))
        return f"loaded {self.loaded} problem(s), skipped {self.n_skipped}" + (f" ({reasons})" if reasons else "")

    def log(self, source: str | Path) -> None:
        if self.n_skipped:
            logger.warning("%s: %s; first: %s", source, self.summary(), self.messages[0])


@dataclass(frozen=True)
class ImageRef:
    """One image of a row, found but not opened."""

    field: str  # the row's field: "images[0]" or "image"
    label: str  # how messages name it: "image 'img/3.png'" or "image bytes"
    value: Any  # as datasets.Image() stores it: {"bytes": ..., "path": None} or {"bytes": None, "path": absolute}, or a PIL image


def load_problems(path: str | Path, *, skip_bad: bool = False, limit: int | None = None,
                  report: LoadReport | None = None, columns: Mapping[str, str] | None = None) -> list[Problem]:
    """Problems from a `.jsonl` file, a `.parquet` file, a `datasets.Dataset.save_to_disk` folder or `NAME@SPLIT`
    (srpo.data.sources), their images decoded. `columns` maps srpo's fields to the source's column names.

    A bad row raises `DataError`; with `skip_bad=True` it is skipped, logged, and counted in `report` (if given).
    `limit` stops after that many problems have been loaded.
    """
    report = report if report is not None else LoadReport()
    if limit is not None and limit < 0:
        raise InvalidValue(f"limit must be >= 0 or None, got {limit}")
    problems: list[Problem] = []
    rows = problem_rows(path, columns=columns, open_images=True) if limit != 0 else iter(())
    for _, problem, _ in rows:
        if isinstance(problem, DataError):
            if not skip_bad:
                raise problem
            report.add(problem)
            continue
        problems.append(problem)
        if limit is not None and len(problems) >= limit:
            break
    report.loaded = len(problems)
    report.log(path)
    return problems


def problem_rows(source: str | Path, *, columns: Mapping[str, str] | None = None, open_images: bool
                 ) -> Iterator[tuple[str, Problem | DataError, list[ImageRef]]]:
    """(where, the row's Problem or its DataError, its image refs) for each row of `source`, in file order; ids are
    checked unique. With `open_images` the Problem holds its decoded images, else none (the refs find them)."""
    first_seen: dict[str, str] = {}
    for raw in read_rows(source, columns):
        try:
            if isinstance(raw.row, DataError):
                raise raw.row
            problem, refs = parse_row(raw.row, where=raw.where, default_id=raw.default_id, base_dir=raw.base_dir)
            if open_images:
                problem.images = [open_image(ref, raw.where) for ref in refs]
            if problem.id in first_seen:
                raise DataError(raw.where, "id", "duplicate_id", f"id {problem.id!r} was already used at {first_seen[problem.id]}; ids must be unique")
            first_seen[problem.id] = raw.where
        except DataError as error:
            yield raw.where, error, []
            continue
        yield raw.where, problem, refs


def row_to_problem(row: Any, *, where: str, default_id: str, base_dir: Path) -> Problem:
    """One raw record (a dict from JSON, Parquet or datasets) to a `Problem`; `DataError` naming the field if bad."""
    problem, refs = parse_row(row, where=where, default_id=default_id, base_dir=base_dir)
    problem.images = [open_image(ref, where) for ref in refs]
    return problem


def parse_row(row: Any, *, where: str, default_id: str, base_dir: Path) -> tuple[Problem, list[ImageRef]]:
    """One raw record checked: a `Problem` without images, and its images found (paths exist) but not opened."""
    if not isinstance(row, dict):
        raise DataError(where, None, "invalid_row", f"is a JSON {_json_kind(row)}, not an object; each line must be one object like {{\"question\": ..., \"answer\": ...}}")
    question = _first(row, QUESTION_KEYS)
    if not isinstance(question, str) or not question.strip():
        raise DataError(where, "question", "missing_question", f"missing or empty question (looked for {', '.join(QUESTION_KEYS)})")
    answer = _answer_text(_first(row, ANSWER_KEYS))
    if answer is None:
        raise DataError(where, "answer", "missing_answer", f"missing or empty answer (looked for {', '.join(ANSWER_KEYS)}; 'solution' is the worked solution, not the answer)")
    choices = _choices(row, where)
    answer_type = row.get("answer_type") or _infer_answer_type(answer, choices)
    if answer_type not in ANSWER_TYPES:
        raise DataError(where, "answer_type", "invalid_field", f"is {answer_type!r}; use one of {ANSWER_TYPES}")
    if answer_type == "multiple_choice":
        answer = _choice_letter(answer, choices, where)
    raw_id = row.get("id")
    problem_id = default_id if raw_id is None or str(raw_id).strip() == "" else str(raw_id)
    metadata = row.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise DataError(where, "metadata", "invalid_field", f"must be an object, got {type(metadata).__name__}")
    extras = {k: v for k, v in row.items() if k not in KNOWN_KEYS and _is_plain(v)}
    refs = [_image_ref(value, field, base_dir, where) for field, value in _image_fields(row)]
    try:
        problem = Problem(
            id=problem_id,
            question=question,
            answer=answer,
            images=[],
            choices=choices,
            answer_type=answer_type,
            source=str(row.get("source") or ""),
            solution=row.get("solution") or None,
            metadata={**extras, **metadata},
            visual_facts=_visual_facts(row.get("visual_facts"), where),
        )
    except ProblemError as e:
        m = re.search(r"field '([\w\[\]]+)'", str(e))
        field_name = m.group(1) if m else None
        is_choice = field_name is not None and field_name.startswith("choices")
        raise DataError(where, field_name, "invalid_choices" if is_choice else "invalid_field", str(e)) from None
    return problem, refs


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "number"
    return "null" if value is None else type(value).__name__


def _first(row: dict, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if row.get(key) is not None:
            return row[key]
    return None


def _answer_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _choices(row: dict, where: str) -> list[str] | None:
    value = _first(row, CHOICE_KEYS)
    if value is None:
        return None
    if isinstance(value, str):  # some datasets store the list as a JSON string
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise DataError(where, "choices", "invalid_choices", f"is the string {value!r}; expected a list of option texts") from None
    if isinstance(value, dict):  # {"A": "...", "B": "..."}
        if sorted(value) != list(CHOICE_LETTERS[: len(value)]):
            raise DataError(where, "choices", "invalid_choices", f"keys {sorted(value)} are not the letters A, B, ... in order")
        value = [value[k] for k in sorted(value)]
    if not isinstance(value, list) or not value:
        raise DataError(where, "choices", "invalid_choices", f"expected a non-empty list of option texts, got {value!r}")
    if len(value) > len(CHOICE_LETTERS):
        raise DataError(where, "choices", "invalid_choices", f"has {len(value)} options; at most 26 are allowed")
    texts = []
    for i, choice in enumerate(value):
        if isinstance(choice, (int, float)) and not isinstance(choice, bool):
            choice = str(choice)
        if not isinstance(choice, str) or not choice.strip():
            raise DataError(where, f"choices[{i}]", "invalid_choices", f"must be a non-empty string, got {choice!r}")
        texts.append(choice)
    return texts


def _visual_facts(value: Any, where: str) -> list[str] | None:
    """The row's facts: a list, or a JSON list in a string (as some tables store lists); Problem checks the items."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise DataError(where, "visual_facts", "invalid_field", f"is the string {shorten(value)!r}; expected a "
                            "list of fact strings such as [\"GE = 10\", \"JKLM is a parallelogram\"]") from None
    return list(value) if isinstance(value, tuple) else value


_LETTER = re.compile(r"^\(?([A-Za-z])[).:]?$")


def _choice_letter(answer: str, choices: list[str] | None, where: str) -> str:
    """Normalise "b", "(B)", "B." to "B"; an answer equal to one option's text becomes that option's letter."""
    if not choices:
        raise DataError(where, "choices", "invalid_choices", "multiple-choice problem without choices; add a 'choices' list")
    letters = CHOICE_LETTERS[: len(choices)]
    m = _LETTER.match(answer.strip())
    if m and m.group(1).upper() in letters:
        return m.group(1).upper()
    matches = [letter for letter, text in zip(letters, choices) if text.strip().lower() == answer.strip().lower()]
    if len(matches) == 1:
        return matches[0]
    raise DataError(where, "answer", "invalid_choices", f"{answer!r} is not an option letter ({', '.join(letters)}) nor the text of exactly one of the {len(choices)} choices")


def _infer_answer_type(answer: str, choices: list[str] | None) -> str:
    if choices:
        return "multiple_choice"
    if re.fullmatch(r"[-+]?\d+", answer):
        return "integer"
    if re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?", answer):
        return "float"
    return "free_form"


def _is_plain(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _image_fields(row: dict) -> list[tuple[str, Any]]:
    images = row.get("images")
    if images is not None:
        if not isinstance(images, (list, tuple)):
            images = [images]  # a single image under the plural key
        return [(f"images[{i}]", value) for i, value in enumerate(images)]
    if row.get("image") is not None:
        return [("image", row["image"])]
    return []


def _image_ref(value: Any, field: str, base_dir: Path, where: str) -> ImageRef:
    """Where the image is: its bytes, or a path that exists (relative paths against `base_dir`)."""
    if isinstance(value, Image.Image):
        return ImageRef(field, "image", value)
    if isinstance(value, dict):  # the datasets Image feature encoding
        if value.get("bytes"):
            value = value["bytes"]
        elif value.get("path"):
            value = value["path"]
        else:
            raise DataError(where, field, "image_not_found", "image entry has neither 'bytes' nor 'path'")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return ImageRef(field, "image bytes", {"bytes": bytes(value), "path": None})
    if isinstance(value, (str, Path)):
        shown = shorten(str(value))
        if "\x00" in str(value):  # the OS cannot open such a path; it is a mangled string
            raise DataError(where, field, "invalid_field", f"image path {shown!r} contains a NUL byte (\\x00) at position {str(value).index(chr(0))}; fix the path in the data file")
        try:  # os.path and one stat, not pathlib: this runs once per image of a set of many thousands
            resolved = str(Path(value).expanduser()) if str(value).startswith("~") else str(value)
            resolved = os.path.normpath(os.path.join(base_dir, resolved))
            try:
                found = stat.S_ISREG(os.stat(resolved).st_mode)
            except OSError as e:
                if e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP):
                    raise
                found = False
        except (OSError, RuntimeError) as e:  # a name too long, an unknown ~user
            detail = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise DataError(where, field, "image_not_found", f"image path {shown!r} cannot be used ({detail}); fix the path in the data file") from None
        if not found:
            raise DataError(where, field, "image_not_found", f"image '{shown}' not found (resolved to {shorten(str(Path(resolved).resolve()))}); relative paths are resolved against the data file's folder")
        return ImageRef(field, f"image '{shown}'", {"bytes": None, "path": resolved})
    raise DataError(where, field, "image_unreadable", f"unsupported image value of type {type(value).__name__}; use a path, bytes, a {{'bytes', 'path'}} dict or a PIL image")


def open_image(ref: ImageRef, where: str) -> Image.Image:
    """The image of `ref`, read, decoded and in RGB; `DataError` naming the row and field if it cannot be."""
    if isinstance(ref.value, Image.Image):
        return to_rgb(ref.value.copy())
    return decode_image(read_image_bytes(ref, where), ref, where)[0]


def read_image_bytes(ref: ImageRef, where: str) -> bytes:
    if ref.value["bytes"] is not None:
        return ref.value["bytes"]
    try:
        return Path(ref.value["path"]).read_bytes()
    except OSError as e:
        raise DataError(where, ref.field, "image_unreadable", f"{ref.label} cannot be read ({type(e).__name__}: {e.strerror}); check its permissions") from None


def decode_image(data: bytes, ref: ImageRef, where: str) -> tuple[Image.Image, bool]:
    """The RGB image, and whether the file holds exactly it: RGB already, and no EXIF orientation to apply."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            plain = image.mode == "RGB" and image.getexif().get(Image.ExifTags.Base.Orientation) is None
            rgb = to_rgb(image)
            return (rgb.copy() if rgb is image else rgb), plain
    except Exception as e:  # PIL raises many kinds for truncated or garbage data
        detail = "not a recognised image format" if isinstance(e, UnidentifiedImageError) else f"{type(e).__name__}: {e}"
        raise DataError(where, ref.field, "image_unreadable", f"{ref.label} cannot be decoded ({detail}); the file is corrupt or not an image") from None


def save_problems(problems: list[Problem], path: str | Path) -> Path:
    """Write `problems` to a JSONL file, with images as PNGs under `images/<file stem>/` beside it; returns the path."""
    path = Path(path)
    if path.suffix != ".jsonl":
        raise InvalidValue(f"{path}: save_problems writes JSONL; give a path ending in .jsonl")
    image_dir = path.parent / "images" / path.stem
    image_dir.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    lines = []
    for problem in problems:
        stem = safe_stem(problem.id, "problem")
        while stem in used:  # two ids that sanitise to the same name
            stem += "_"
        used.add(stem)
        image_paths = []
        for k, image in enumerate(problem.images):
            file = image_dir / f"{stem}_{k}.png"
            to_rgb(image).save(file, format="PNG")
            image_paths.append(file.relative_to(path.parent).as_posix())
        record = {
            "id": problem.id,
            "question": problem.question,
            "answer": problem.answer,
            "answer_type": problem.answer_type,
            "choices": problem.choices,
            "images": image_paths,
            "source": problem.source,
            "solution": problem.solution,
            "metadata": problem.metadata,
        }
        if problem.visual_facts is not None:  # files without facts stay as they were
            record["visual_facts"] = problem.visual_facts
        try:
            lines.append(json.dumps(record, ensure_ascii=False) + "\n")
        except TypeError as e:
            raise TypeError(f"problem {problem.id!r}: metadata is not JSON-serialisable ({e})") from None
    return atomic_write_text(path, "".join(lines))
