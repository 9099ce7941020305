"""Where problem rows come from: a `.jsonl` file, a `.parquet` file, a `datasets.save_to_disk` folder, or a dataset
`datasets.load_dataset` reads, named `NAME@SPLIT` (a Hugging Face id such as `hiyouga/geometry3k@train`, or a local
folder of data files). Rows are yielded raw, in file order, with where they came from; `columns` renames a source's
columns to srpo's field names first.

A row that cannot be parsed is yielded as its `DataError`; a source that cannot be read at all raises one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from srpo.errors import InvalidValue, MissingPath, UserError

QUESTION_KEYS = ("question", "query", "problem")
ANSWER_KEYS = ("answer", "gt_answer", "label")
CHOICE_KEYS = ("choices", "options")
IMAGE_KEYS = ("images", "image")
# The fields `columns` may rename, each with the column names srpo looks for when it does not.
MAPPABLE = {"question": QUESTION_KEYS, "answer": ANSWER_KEYS, "images": IMAGE_KEYS, "choices": CHOICE_KEYS}

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
        self.where, self.field, self.reason, self.detail = where, field, reason, message
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


@dataclass(frozen=True)
class RawRow:
    where: str  # "file:line" or "file:row N", for messages
    default_id: str  # the id of a row without one
    base_dir: Path  # the folder relative image paths are resolved against
    row: Any  # the parsed record (a dict when well-formed), or the DataError of a line that cannot be parsed


def check_columns(columns: Mapping[str, str] | None) -> dict[str, str]:
    """`columns` (srpo field -> the source's column) checked: only MAPPABLE fields, column names as strings."""
    columns = dict(columns or {})
    unknown = sorted(set(columns) - set(MAPPABLE))
    if unknown:
        raise InvalidValue(f"columns: unknown field(s) {unknown}; map {', '.join(MAPPABLE)} to your column names")
    for name, column in columns.items():
        if not isinstance(column, str) or not column:
            raise InvalidValue(f"columns: {name}: the column name must be a non-empty string, got {column!r}")
    return columns


def split_spec(source: str | Path) -> tuple[str, str] | None:
    """(name, split) for a `NAME@SPLIT` source; None for a local file or folder (which may contain '@')."""
    text = str(source)
    if Path(text).exists() or "@" not in text:
        return None
    name, split = text.rsplit("@", 1)
    if not name or not split:
        raise InvalidValue(f"{text}: write a dataset with its split as NAME@SPLIT, e.g. hiyouga/geometry3k@train")
    return name, split


def load_split(name: str, split: str) -> datasets.Dataset:
    """`datasets.load_dataset(name, split=split)`; a failure is one DataError naming the source and the fix."""
    try:
        return datasets.load_dataset(name, split=split)
    except (OSError, ValueError) as e:  # not found, offline (ConnectionError), unknown split, unreadable files
        raise DataError(f"{name}@{split}", None, "invalid_file", f"datasets.load_dataset cannot load it "
                        f"({type(e).__name__}: {shorten(str(e).splitlines()[0] if str(e) else '')}); check the "
                        "dataset id or folder and the split name") from None


def read_rows(source: str | Path, columns: Mapping[str, str] | None = None) -> Iterator[RawRow]:
    """The raw rows of `source`, renamed by `columns` (srpo field -> the source's column)."""
    columns = check_columns(columns)
    spec = split_spec(source)
    if spec is not None:
        name, split = spec
        local = Path(name)
        base = local.resolve() if local.is_dir() else Path.cwd()
        yield from _table_rows(load_split(name, split), f"{name}@{split}", local.name, base, columns)
        return
    path = Path(source)
    if not path.exists():
        raise MissingPath(f"{path}: no such file or folder (expected a .jsonl, a .parquet or a datasets folder, or "
                          "a dataset id with its split, NAME@SPLIT)")
    if path.is_dir():
        yield from _table_rows(_saved_dataset(path), str(path), path.name, path.resolve(), columns)
    elif path.suffix == ".jsonl":
        for raw in _jsonl_rows(path):
            yield raw if isinstance(raw.row, DataError) else _renamed(raw, columns)
    elif path.suffix == ".parquet":
        yield from _parquet_rows(path, columns)
    else:
        raise DataError(str(path), None, "invalid_file", "unknown format; use a .jsonl file, a .parquet file or a folder written by datasets' save_to_disk")


def rename_columns(ds: datasets.Dataset, columns: Mapping[str, str] | None, source: str) -> datasets.Dataset:
    """`ds` with the `columns` mapping's columns renamed to srpo's field names (a table that holds its rows already)."""
    columns = check_columns(columns)
    _check_present(columns, ds.column_names, source)
    clashing = [field for field, column in columns.items() if field in ds.column_names and field != column]
    ds = ds.remove_columns(clashing)  # a column already named like the field is replaced by the mapped one
    return ds.rename_columns({column: field for field, column in columns.items() if column != field})


def _check_present(columns: dict[str, str], present: list[str], source: str) -> None:
    missing = [f"{column!r} (for {field})" for field, column in columns.items() if column not in present]
    if missing:
        raise DataError(source, None, "invalid_file", f"column {', '.join(missing)} not found; the columns are "
                        f"{', '.join(present)}: fix the column mapping")


def _renamed(raw: RawRow, columns: dict[str, str]) -> RawRow:
    """The row with each mapped column under srpo's field name (and the field's other aliases dropped)."""
    row = raw.row
    if not columns or not isinstance(row, dict):
        return raw
    absent = [f"{column!r} (for {field})" for field, column in columns.items() if column not in row]
    if absent:
        error = DataError(raw.where, None, "invalid_field", f"column {', '.join(absent)} is not in this row; it has "
                          f"{', '.join(map(str, row)) or 'no keys'}: fix the column mapping or the row")
        return RawRow(raw.where, raw.default_id, raw.base_dir, error)
    replaced = {key for field, column in columns.items() for key in (column, *MAPPABLE[field])}
    renamed = {key: value for key, value in row.items() if key not in replaced}
    renamed.update({field: row[column] for field, column in columns.items()})
    return RawRow(raw.where, raw.default_id, raw.base_dir, renamed)


def _jsonl_rows(path: Path) -> Iterator[RawRow]:
    base, stem = path.resolve().parent, path.stem
    with path.open("rb") as f:  # bytes: a line that is not UTF-8 is reported with its number, not as a traceback
        for line_no, raw in enumerate(f, start=1):
            where = f"{path}:{line_no}"
            default_id = f"{stem}-{line_no}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield RawRow(where, default_id, base, DataError(
                    where, None, "invalid_encoding",
                    f"not UTF-8 text (byte {e.start + 1} of the line is 0x{raw[e.start]:02x}); save the file as UTF-8"))
                continue
            if line_no == 1:
                line = line.removeprefix("\ufeff")  # the byte-order mark some editors write
            if not line.strip():
                continue
            yield RawRow(where, default_id, base, _parse_json_line(line, where, line_no))


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


def _parquet_rows(path: Path, columns: dict[str, str]) -> Iterator[RawRow]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = path.resolve().parent
    try:
        file = pq.ParquetFile(path)
        batches = file.iter_batches(batch_size=256)
    except (pa.ArrowException, OSError) as e:
        raise DataError(str(path), None, "invalid_file", f"not a readable Parquet file ({e}); pass a .parquet file written by pyarrow/pandas/datasets, or rename a JSON Lines file to .jsonl") from None
    _check_present(columns, file.schema_arrow.names, str(path))
    index = 0
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as e:
            raise DataError(f"{path}:row {index}", None, "invalid_file", f"the file cannot be read from this row on ({e}); it is truncated or corrupt: write it again") from None
        if batch is None:
            return
        for row in batch.to_pylist():
            yield _renamed(RawRow(f"{path}:row {index}", f"{path.stem}-{index}", base, row), columns)
            index += 1


def _saved_dataset(path: Path) -> datasets.Dataset:
    if not any((path / name).exists() for name in ("state.json", "dataset_dict.json")):
        raise DataError(str(path), None, "invalid_file", "folder is not a datasets save_to_disk folder (no state.json); pass a .jsonl or .parquet file, or a folder of data files as FOLDER@SPLIT")
    try:
        ds = datasets.load_from_disk(str(path))
    except (ValueError, OSError) as e:  # a broken state.json or arrow shard (pyarrow's errors are ValueErrors)
        raise DataError(str(path), None, "invalid_file", f"the datasets folder cannot be read ({type(e).__name__}: {shorten(str(e))}); it is incomplete or corrupt: save it again") from None
    if isinstance(ds, datasets.DatasetDict):
        if len(ds) != 1:
            raise DataError(str(path), None, "invalid_file", f"holds splits {sorted(ds)}; pass one split's folder, e.g. {path / sorted(ds)[0]}")
        ds = next(iter(ds.values()))
    return ds


def _table_rows(ds: datasets.Dataset, where: str, stem: str, base: Path, columns: dict[str, str]) -> Iterator[RawRow]:
    _check_present(columns, ds.column_names, where)
    ds = ds.with_format("arrow")  # raw rows: images stay {"bytes", "path"} so a bad one is reported, not raised
    for start in range(0, len(ds), 256):
        for offset, row in enumerate(ds[start : start + 256].to_pylist()):
            index = start + offset
            yield _renamed(RawRow(f"{where}:row {index}", f"{stem}-{index}", base, row), columns)


def shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
