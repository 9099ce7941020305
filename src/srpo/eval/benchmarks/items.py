"""Benchmark items and the loading every official benchmark shares: its data file (or `datasets` rows) -> `BenchItem`s
with the benchmark's prompt, the official record the scorer reads, and the image(s). What differs per benchmark (which
file, which fields, which prompt) comes from the benchmark's module, passed in as `bench`.

Images are checked before anything runs: missing files raise one `MissingImagesError` that says how many are
missing and where they were expected. Images are opened lazily (`BenchItem.load_images`).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from PIL import Image

from srpo.data.schema import to_rgb
from srpo.errors import MissingPath, UserError
from srpo.eval.benchmarks.common import data_dir
from srpo.files import atomic_write_text

ImageSource = Any  # a Path, a PIL image, raw bytes or a datasets {"bytes", "path"} dict


@dataclass
class BenchItem:
    id: str
    prompt: str  # the user turn's text (the benchmark's own prompt)
    record: dict  # the official row, without image objects: what the scorer and the output file read
    gold: str
    images: list[ImageSource] = field(default_factory=list)

    def load_images(self) -> list[Image.Image]:
        return [open_image(src) for src in self.images]

    def endpoint_images(self) -> list:
        """The images as srpo.endpoint sends them: image files as stored (bytes, mime type), anything else as a PIL
        image (encoded by the endpoint's one encoder)."""
        return [(src.read_bytes(), "image/png" if src.suffix.lower() == ".png" else "image/jpeg")
                if isinstance(src, Path) else open_image(src) for src in self.images]


@dataclass
class Benchmark:
    name: str  # the registry key: mathvista | mathverse | mathvision | mmmu_pro | problems
    split: str
    source: str  # where the rows came from
    items: list[BenchItem]


class MissingImagesError(UserError, FileNotFoundError):
    """Images that are not where they were expected; one error for the whole benchmark."""

    def __init__(self, benchmark: str, missing: list[str], n_items: int, total: int, expected: str, hint: str = ""):
        self.n_missing, self.n_items, self.total, self.expected = len(missing), n_items, total, expected
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        super().__init__(f"{benchmark}: {n_items} of {total} item(s) miss their image ({len(missing)} image file(s) "
                         f"not found); expected under {expected} (e.g. {shown}). {hint}".strip())


def open_image(src: ImageSource) -> Image.Image:
    if isinstance(src, Image.Image):
        return to_rgb(src)
    if isinstance(src, dict):  # datasets Image feature in arrow format
        src = src.get("bytes") or Path(src["path"])
    if isinstance(src, (bytes, bytearray)):
        return to_rgb(Image.open(io.BytesIO(src)))
    with Image.open(src) as im:
        return to_rgb(im)


def _is_image(v: Any) -> bool:
    return isinstance(v, Image.Image) or (isinstance(v, dict) and bool(v.get("bytes") or v.get("path"))
                                          and set(v) <= {"bytes", "path"})


# --- helpers of the benchmark modules -----------------------------------------------------------------------

def image_field(record: dict) -> list[str]:
    """The one image file name of a row's `image` field (MathVista, MathVerse, MathVision), or none."""
    img = record.get("image")
    return [img] if img else []


def official_root(path: Path) -> Path:
    """The benchmark's folder, from one of its data files (data/<file> or <file> at the top)."""
    return path.parent.parent if path.parent.name == "data" else path.parent


def need_file(path: Path, name: str) -> Path:
    if not path.exists():
        raise MissingPath(f"{name}: data file {path} not found (pass --data with the benchmark's official "
                          "folder or file, or --data hf to load it with datasets)")
    return path


def without_key(record: dict) -> dict:
    """The record as the official files hold it: without the `_key` a keyed JSON file's rows get when read."""
    return {k: v for k, v in record.items() if k != "_key"}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    return atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


# --- loading an official benchmark --------------------------------------------------------------------------

def _hub_rows(bench: ModuleType, split: str, data: str, limit: int | None) -> tuple[list[dict], str]:
    import datasets  # heavy, and only needed for these sources

    if data == "hf":
        repo, config, hf_split = bench.hub_source(split)
        ds = datasets.load_dataset(repo, config, split=hf_split)
        src = f"datasets.load_dataset({repo!r}, {config!r}, split={hf_split!r})"
    elif Path(data).is_dir():
        ds = datasets.load_from_disk(data)
        if isinstance(ds, datasets.DatasetDict):
            key = split if split in ds else next(iter(ds))
            ds = ds[key]
        src = data
    else:
        ds = datasets.Dataset.from_parquet(data)
        src = data
    n = len(ds) if limit is None else min(limit, len(ds))
    ds = ds.with_format("arrow")  # images stay {"bytes", "path"}; decoded lazily by BenchItem.load_images
    return [row for start in range(0, n, 256) for row in ds[start : min(n, start + 256)].to_pylist()], src


_IMAGE_COLUMNS = ("decoded_image", "image", *(f"image_{k}" for k in range(1, 8)))


def _split_images(row: dict) -> tuple[dict, list]:
    """(record without image objects, images in column order) of a datasets row."""
    record = {k: v for k, v in row.items() if not _is_image(v)}
    images = [row[c] for c in _IMAGE_COLUMNS if _is_image(row.get(c))]
    return record, images


def _resolve(base: Path, ref: str) -> Path | None:
    for cand in (base / ref, base / Path(ref).name, base / "images" / ref):
        if cand.is_file():
            return cand
    return None


def _is_datasets_source(data: str) -> bool:
    return (data == "hf" or Path(data).suffix == ".parquet" or (Path(data) / "state.json").exists()
            or (Path(data) / "dataset_dict.json").exists())


def load_official(bench: ModuleType, split: str, *, data: str | Path | None = None,
                  images: str | Path | None = None, limit: int | None = None) -> Benchmark:
    """The items of one split of an official benchmark (`bench`: its module). `data`: the official folder (default:
    <$SRPO_DATA_DIR>/<name>), one of its files, "hf" (datasets.load_dataset), a datasets save_to_disk folder or a
    Parquet file. `images`: the image folder when it is not where the official layout puts it. `limit`: the first N
    items only."""
    name = bench.NAME
    data_s = None if data is None else str(data)
    if data_s is not None and _is_datasets_source(data_s):
        rows, source = _hub_rows(bench, split, data_s, limit)
        pairs = [_split_images(r) for r in rows]
        missing = [bench.build_item(split, rec, imgs).id for rec, imgs in pairs
                   if not imgs and bench.image_refs(split, rec)]
        if missing:
            raise MissingImagesError(f"{name} {split}", missing, len(missing), len(rows),
                                     f"the image columns of {source}", bench.IMAGES_HINT)
        return Benchmark(name, split, source, [bench.build_item(split, rec, imgs) for rec, imgs in pairs])
    if data_s is not None and Path(data_s).is_file():
        path = Path(data_s)
    else:
        folder = (Path(data_s) if data_s is not None
                  else data_dir(f"--benchmark {name}", "--data (its official folder or file, or hf)") / name)
        path = bench.official_file(split, folder)
    rows, base = bench.read_official(split, path)
    if images is not None:
        base = Path(images)
    rows = rows[:limit] if limit is not None else rows
    items, missing, n_bad = [], [], 0
    for rec in rows:
        refs = bench.image_refs(split, rec)
        found = [_resolve(base, ref) for ref in refs]
        items.append(bench.build_item(split, rec, [f for f in found if f is not None]))
        lost = [str(base / ref) for ref, f in zip(refs, found) if f is None]
        missing += lost
        n_bad += bool(lost)
    if missing:
        raise MissingImagesError(f"{name} {split}", missing, n_bad, len(rows), str(base), bench.IMAGES_HINT)
    return Benchmark(name, split, str(path), items)
