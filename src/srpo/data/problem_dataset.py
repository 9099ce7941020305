"""Problems as a `datasets.Dataset`: Arrow on disk, memory-mapped, images decoded only when a row is read.

`problem_dataset` checks every row's fields and finds its images without opening them, so a large set starts in
seconds and in constant memory; the cached table is reused while the source file is unchanged. Bad rows stay in the
table, marked with their `DataError` (private `_` columns), so one pass can check the images later
(`checked_images`, one row at a time, in parallel) and the first bad row in file order is still the one reported.
`row_errors` then reads the verdicts back.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path

import datasets
from datasets.exceptions import DatasetGenerationError
from datasets.fingerprint import Hasher
from PIL import Image

from srpo.data.loaders import ImageRef, decode_image, problem_rows, read_image_bytes
from srpo.data.schema import Problem
from srpo.data.sources import DataError, check_columns, load_split, split_spec
from srpo.errors import MissingPath, UserError

PROBLEM_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "question": datasets.Value("string"),
        "answer": datasets.Value("string"),
        "choices": datasets.List(datasets.Value("string")),
        "answer_type": datasets.Value("string"),
        "source": datasets.Value("string"),
        "solution": datasets.Value("string"),
        "images": datasets.List(datasets.Image()),
        # Null for a problem without facts: TRL hands reward functions None for it (docs/method.md#perception).
        "visual_facts": datasets.List(datasets.Value("string")),
    }
)
# Where each row came from, how its images are named in messages, and its DataError if it has one.
CHECK_FEATURES = datasets.Features(
    {
        "_where": datasets.Value("string"),
        "_image_fields": datasets.List(datasets.Value("string")),
        "_image_labels": datasets.List(datasets.Value("string")),
        "_reason": datasets.Value("string"),
        "_field": datasets.Value("string"),
        "_message": datasets.Value("string"),
    }
)
# The code that builds the table: a change to it must not reuse a table built by older code.
CODE_FINGERPRINT = Hasher.hash(sorted((p.name, p.read_bytes()) for p in Path(__file__).parent.glob("*.py")))


def problems_to_dataset(problems: list[Problem]) -> datasets.Dataset:
    """A `datasets.Dataset` with columns id, question, answer, choices, answer_type, source, solution, images,
    visual_facts."""
    columns = {
        "id": [p.id for p in problems],
        "question": [p.question for p in problems],
        "answer": [p.answer for p in problems],
        "choices": [p.choices for p in problems],
        "answer_type": [p.answer_type for p in problems],
        "source": [p.source for p in problems],
        "solution": [p.solution for p in problems],
        "images": [list(p.images) for p in problems],
        "visual_facts": [p.visual_facts for p in problems],
    }
    return datasets.Dataset.from_dict(columns, features=PROBLEM_FEATURES)


def problem_dataset(source: str | Path, *, columns: Mapping[str, str] | None = None) -> datasets.Dataset:
    """The rows of `source` (any srpo.data.sources source) as PROBLEM_FEATURES + CHECK_FEATURES columns, in file
    order, bad rows included and marked. Images are stored by path (or as the source's bytes) and not opened.

    Built once into the datasets cache and memory-mapped; rebuilt when the source's files change (size or time).
    """
    columns = check_columns(columns)
    fingerprint = Hasher.hash([_source_stamp(source), sorted(columns.items()), CODE_FINGERPRINT])
    try:
        return datasets.Dataset.from_generator(
            _table_rows, features=datasets.Features({**PROBLEM_FEATURES, **CHECK_FEATURES}),
            gen_kwargs={"source": str(source), "columns": columns}, fingerprint=fingerprint)
    except DatasetGenerationError as e:  # datasets wraps what the rows raise; a file that cannot be read is ours
        if isinstance(e.__cause__, UserError):
            raise e.__cause__ from None
        raise
    except ValueError as e:  # a source without a single row: datasets builds no table at all
        if "corresponds to no data" not in str(e):
            raise
        features = datasets.Features({**PROBLEM_FEATURES, **CHECK_FEATURES})
        return datasets.Dataset.from_dict({name: [] for name in features}, features=features)


def _table_rows(source: str, columns: dict[str, str]):
    for where, problem, refs in problem_rows(source, columns=columns, open_images=False):
        if isinstance(problem, DataError):
            yield {"_where": where, "_reason": problem.reason, "_field": problem.field, "_message": problem.detail}
            continue
        yield {
            "id": problem.id,
            "question": problem.question,
            "answer": problem.answer,
            "choices": problem.choices,
            "answer_type": problem.answer_type,
            "source": problem.source,
            "solution": problem.solution,
            "images": [ref.value for ref in refs],
            "visual_facts": problem.visual_facts,
            "_where": where,
            "_image_fields": [ref.field for ref in refs],
            "_image_labels": [ref.label for ref in refs],
        }


def _source_stamp(source: str | Path) -> list:
    """What identifies the source's current contents: its files' names, sizes and times, or the loaded dataset's
    fingerprint for NAME@SPLIT."""
    spec = split_spec(source)
    if spec is not None:
        return [spec, load_split(*spec)._fingerprint]
    path = Path(source)
    if not path.exists():
        raise MissingPath(f"{path}: no such file or folder (expected a .jsonl, a .parquet or a datasets folder, or "
                          "a dataset id with its split, NAME@SPLIT)")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [str(path.resolve())] + [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]


def image_files_stamp(ds: datasets.Dataset) -> str:
    """A hash of the size and time of every image file `ds` refers to by path, so a check of them is redone when
    one is replaced."""
    hasher = Hasher()
    table = ds.with_format("arrow")
    for start in range(0, len(ds), 1024):
        for images in table[start : start + 1024]["images"].to_pylist():
            for image in images or []:
                if image["path"] is not None and image["bytes"] is None:
                    try:
                        stat = os.stat(image["path"])
                        hasher.update((image["path"], stat.st_size, stat.st_mtime_ns))
                    except OSError:
                        hasher.update((image["path"], None))
    return hasher.hexdigest()


def checked_images(row: dict, where: str) -> tuple[list[Image.Image], list[dict]]:
    """The row's images (raw `{"bytes", "path"}` values) read and decoded in RGB, and what to store for each so
    that reading the row later gives exactly that image: the value itself, or PNG bytes of the RGB image when
    datasets' own decoding would differ (another mode, or an EXIF rotation). `DataError` for an unreadable image."""
    fields = row.get("_image_fields") or [f"images[{i}]" for i in range(len(row["images"]))]
    labels = row.get("_image_labels") or [f"image '{v['path']}'" if v["bytes"] is None else "image bytes"
                                          for v in row["images"]]
    decoded, stored = [], []
    for field, label, value in zip(fields, labels, row["images"]):
        ref = ImageRef(field, label, value)
        image, plain = decode_image(read_image_bytes(ref, where), ref, where)
        decoded.append(image)
        stored.append(value if plain else {"bytes": _png(image), "path": None})
    return decoded, stored


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def row_error(row: dict) -> DataError | None:
    """The DataError a checked row is marked with, if any."""
    if row.get("_reason") is None:
        return None
    return DataError(row["_where"], row["_field"], row["_reason"], row["_message"])
