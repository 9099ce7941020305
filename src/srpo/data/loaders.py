"""Read and write `Problem` records: JSONL, Parquet, `datasets` folders; JSONL + PNG writer; `datasets` adapter.

Every bad row raises `DataError` naming the file, the line (JSONL, 1-based) or row (Parquet/datasets, 0-based) and
the field. With `skip_bad=True` bad rows are skipped instead, and counted by reason in an optional `LoadReport`.
A file that cannot be read at all (not Parquet, not a datasets folder) is a `DataError` even with `skip_bad`.

`check_images` / `reject_images` ask a model's image processor which items' images it would refuse (an aspect
ratio over 200 for Qwen2-VL), so they are named or skipped before training or generation instead of failing a batch.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from srpo.data.schema import ANSWER_TYPES, CHOICE_LETTERS, Problem, ProblemError, to_rgb
from srpo.errors import InvalidValue, MissingPath, UserError
from srpo.files import atomic_write_text

logger = logging.getLogger(__name__)

QUESTION_KEYS = ("question", "query", "problem")
ANSWER_KEYS = ("answer", "gt_answer", "label")
CHOICE_KEYS = ("choices", "options")
KNOWN_KEYS = {"id", "images", "image", "answer_type", "source", "solution", "metadata"}
KNOWN_KEYS |= set(QUESTION_KEYS) | set(ANSWER_KEYS) | set(CHOICE_KEYS)

# Reasons a row is rejected (the keys of `LoadReport.skipped`); "invalid_file" stops the load even with skip_bad.
REASONS = (
    "invalid_file",
    "invalid_encoding",
    "invalid_json",
    "invalid_row",
    "missing_question",
    "missing_answer",
    "image_not_found",
    "image_unreadable",
    "invalid_choices",
    "invalid_field",
    "duplicate_id",
    "image_rejected",
)


class DataError(UserError, ValueError):
    """A bad row or file. `where` is "file:line" (or "file:row N"), `field` the offending field, `reason` a REASONS key."""

    def __init__(self, where: str, field: str | None, reason: str, message: str):
        self.where, self.field, self.reason = where, field, reason
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


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


def load_problems(
    path: str | Path, *, skip_bad: bool = False, limit: int | None = None, report: LoadReport | None = None
) -> list[Problem]:
    """Problems from a `.jsonl` file, a `.parquet` file or a `datasets.Dataset.save_to_disk` folder.

    A bad row raises `DataError`; with `skip_bad=True` it is skipped, logged, and counted in `report` (if given).
    `limit` stops after that many problems have been loaded.
    """
    path = Path(path)
    report = report if report is not None else LoadReport()
    if limit is not None and limit < 0:
        raise InvalidValue(f"limit must be >= 0 or None, got {limit}")
    problems: list[Problem] = []
    first_seen: dict[str, str] = {}
    for where, default_id, base_dir, row in _rows(path):
        if limit is not None and len(problems) >= limit:
            break
        try:
            if isinstance(row, DataError):
                raise row
            problem = row_to_problem(row, where=where, default_id=default_id, base_dir=base_dir)
            if problem.id in first_seen:
                raise DataError(where, "id", "duplicate_id", f"id {problem.id!r} was already used at {first_seen[problem.id]}; ids must be unique")
            first_seen[problem.id] = where
        except DataError as error:
            if not skip_bad:
                raise
            report.add(error)
            continue
        problems.append(problem)
    report.loaded = len(problems)
    if report.n_skipped:
        logger.warning("%s: %s; first: %s", path, report.summary(), report.messages[0])
    return problems


def _rows(path: Path) -> Iterator[tuple[str, str, Path, dict | DataError]]:
    """(where, default id, folder for relative image paths, raw row or a DataError for an unparsable row)."""
    if not path.exists():
        raise MissingPath(f"{path}: no such file or folder (expected a .jsonl, a .parquet or a datasets folder)")
    if path.is_dir():
        yield from _dataset_rows(path)
    elif path.suffix == ".jsonl":
        yield from _jsonl_rows(path)
    elif path.suffix == ".parquet":
        yield from _parquet_rows(path)
    else:
        raise DataError(str(path), None, "invalid_file", "unknown format; use a .jsonl file, a .parquet file or a folder written by datasets' save_to_disk")


def _jsonl_rows(path: Path):
    base = path.resolve().parent
    with path.open("rb") as f:  # bytes: a line that is not UTF-8 is reported with its number, not as a traceback
        for line_no, raw in enumerate(f, start=1):
            where = f"{path}:{line_no}"
            default_id = f"{path.stem}-{line_no}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield where, default_id, base, DataError(
                    where, None, "invalid_encoding",
                    f"not UTF-8 text (byte {e.start + 1} of the line is 0x{raw[e.start]:02x}); save the file as UTF-8")
                continue
            if line_no == 1:
                line = line.removeprefix("\ufeff")  # the byte-order mark some editors write
            if not line.strip():
                continue
            yield where, default_id, base, _parse_json_line(line, where, line_no)


def _parse_json_line(line: str, where: str, line_no: int) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        hint = "each line must be one JSON object"
        if line_no == 1 and line.strip() in ("[", "{"):
            hint = "this looks like pretty-printed JSON; write one JSON object per line (JSONL)"
        return DataError(where, None, "invalid_json", f"invalid JSON ({e.msg} at column {e.colno}); {hint}")
    except RecursionError:
        return DataError(where, None, "invalid_json", "JSON nested too deeply to read; each line must be one JSON object")


def _parquet_rows(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = path.resolve().parent
    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=256)
    except (pa.ArrowException, OSError) as e:
        raise DataError(str(path), None, "invalid_file", f"not a readable Parquet file ({e}); pass a .parquet file written by pyarrow/pandas/datasets, or rename a JSON Lines file to .jsonl") from None
    index = 0
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as e:
            raise DataError(f"{path}:row {index}", None, "invalid_file", f"the file cannot be read from this row on ({e}); it is truncated or corrupt: write it again") from None
        if batch is None:
            return
        for row in batch.to_pylist():
            yield f"{path}:row {index}", f"{path.stem}-{index}", base, row
            index += 1


def _dataset_rows(path: Path):
    import datasets

    if not any((path / name).exists() for name in ("state.json", "dataset_dict.json")):
        raise DataError(str(path), None, "invalid_file", "folder is not a datasets save_to_disk folder (no state.json); pass a .jsonl or .parquet file instead")
    try:
        ds = datasets.load_from_disk(str(path))
    except (ValueError, OSError) as e:  # a broken state.json or arrow shard (pyarrow's errors are ValueErrors)
        raise DataError(str(path), None, "invalid_file", f"the datasets folder cannot be read ({type(e).__name__}: {_shorten(str(e))}); it is incomplete or corrupt: save it again") from None
    if isinstance(ds, datasets.DatasetDict):
        if len(ds) != 1:
            raise DataError(str(path), None, "invalid_file", f"holds splits {sorted(ds)}; pass one split's folder, e.g. {path / sorted(ds)[0]}")
        ds = next(iter(ds.values()))
    ds = ds.with_format("arrow")  # raw rows: images stay {"bytes", "path"} so a bad one is reported, not raised
    base = path.resolve()
    for start in range(0, len(ds), 256):
        for offset, row in enumerate(ds[start : start + 256].to_pylist()):
            index = start + offset
            yield f"{path}:row {index}", f"{path.name}-{index}", base, row


def row_to_problem(row: Any, *, where: str, default_id: str, base_dir: Path) -> Problem:
    """One raw record (a dict from JSON, Parquet or datasets) to a `Problem`; `DataError` naming the field if bad."""
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
    images = [_load_image(value, field, base_dir, where) for field, value in _image_fields(row, where)]
    try:
        return Problem(
            id=problem_id,
            question=question,
            answer=answer,
            images=images,
            choices=choices,
            answer_type=answer_type,
            source=str(row.get("source") or ""),
            solution=row.get("solution") or None,
            metadata={**extras, **metadata},
        )
    except ProblemError as e:
        m = re.search(r"field '([\w\[\]]+)'", str(e))
        field_name = m.group(1) if m else None
        is_choice = field_name is not None and field_name.startswith("choices")
        raise DataError(where, field_name, "invalid_choices" if is_choice else "invalid_field", str(e)) from None


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


def _image_fields(row: dict, where: str) -> list[tuple[str, Any]]:
    images = row.get("images")
    if images is not None:
        if not isinstance(images, (list, tuple)):
            images = [images]  # a single image under the plural key
        return [(f"images[{i}]", value) for i, value in enumerate(images)]
    if row.get("image") is not None:
        return [("image", row["image"])]
    return []


def _load_image(value: Any, field: str, base_dir: Path, where: str) -> Image.Image:
    if isinstance(value, Image.Image):
        return to_rgb(value.copy())
    if isinstance(value, dict):  # the datasets Image feature encoding
        if value.get("bytes"):
            value = value["bytes"]
        elif value.get("path"):
            value = value["path"]
        else:
            raise DataError(where, field, "image_not_found", "image entry has neither 'bytes' nor 'path'")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _decode(bytes(value), field, where, "image bytes")
    if isinstance(value, (str, Path)):
        shown = _shorten(str(value))
        if "\x00" in str(value):  # the OS cannot open such a path; it is a mangled string
            raise DataError(where, field, "invalid_field", f"image path {shown!r} contains a NUL byte (\\x00) at position {str(value).index(chr(0))}; fix the path in the data file")
        try:
            resolved = Path(value).expanduser()
            if not resolved.is_absolute():
                resolved = base_dir / resolved
            found = resolved.is_file()
        except (OSError, RuntimeError) as e:  # a name too long, an unknown ~user
            detail = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise DataError(where, field, "image_not_found", f"image path {shown!r} cannot be used ({detail}); fix the path in the data file") from None
        if not found:
            raise DataError(where, field, "image_not_found", f"image '{shown}' not found (resolved to {_shorten(str(resolved.resolve()))}); relative paths are resolved against the data file's folder")
        try:
            data = resolved.read_bytes()
        except OSError as e:
            raise DataError(where, field, "image_unreadable", f"image '{shown}' cannot be read ({type(e).__name__}: {e.strerror}); check its permissions") from None
        return _decode(data, field, where, f"image '{shown}'")
    raise DataError(where, field, "image_unreadable", f"unsupported image value of type {type(value).__name__}; use a path, bytes, a {{'bytes', 'path'}} dict or a PIL image")


def _decode(data: bytes, field: str, where: str, what: str) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            rgb = to_rgb(image)
            return rgb.copy() if rgb is image else rgb
    except Exception as e:  # PIL raises many kinds for truncated or garbage data
        detail = "not a recognised image format" if isinstance(e, UnidentifiedImageError) else f"{type(e).__name__}: {e}"
        raise DataError(where, field, "image_unreadable", f"{what} cannot be decoded ({detail}); the file is corrupt or not an image") from None


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "problem"


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
        stem = _safe_name(problem.id)
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
        try:
            lines.append(json.dumps(record, ensure_ascii=False) + "\n")
        except TypeError as e:
            raise TypeError(f"problem {problem.id!r}: metadata is not JSON-serialisable ({e})") from None
    return atomic_write_text(path, "".join(lines))


def problems_to_dataset(problems: list[Problem]):
    """A `datasets.Dataset` with columns id, question, answer, choices, answer_type, source, solution, images."""
    import datasets

    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "question": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "choices": datasets.List(datasets.Value("string")),
            "answer_type": datasets.Value("string"),
            "source": datasets.Value("string"),
            "solution": datasets.Value("string"),
            "images": datasets.List(datasets.Image()),
        }
    )
    columns = {
        "id": [p.id for p in problems],
        "question": [p.question for p in problems],
        "answer": [p.answer for p in problems],
        "choices": [p.choices for p in problems],
        "answer_type": [p.answer_type for p in problems],
        "source": [p.source for p in problems],
        "solution": [p.solution for p in problems],
        "images": [list(p.images) for p in problems],
    }
    return datasets.Dataset.from_dict(columns, features=features)
