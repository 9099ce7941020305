"""Benchmark loaders: official data files (or `datasets` rows) -> `BenchItem`s with the benchmark's prompt, the
official record the scorer reads, and the image(s).

    bench = load_benchmark("mathvision", split="testmini")            # shared/benchmarks/mathvision by default
    bench = load_benchmark("mathvista", data="MathVista/", images="MathVista/images")
    bench = load_benchmark("mmmu_pro", split="vision", data="hf")    # datasets.load_dataset("MMMU/MMMU_Pro", ...)
    bench = load_benchmark("my_problems.jsonl")                       # any file in the srpo Problem schema

Images are checked before anything runs: missing files raise one `MissingImagesError` that says how many are
missing and where they were expected. Images are opened lazily (`BenchItem.load_images`).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from srpo.data.schema import to_rgb
from srpo.errors import InvalidValue, MissingPath, UserError
from srpo.eval.scoring.common import letters, load_records, shared_dir

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

    def image_bytes(self) -> list[tuple[bytes, str]]:
        """(bytes, mime type) per image: file bytes as stored, PIL images as PNG (for data URLs)."""
        out = []
        for src in self.images:
            if isinstance(src, Path):
                mime = "image/png" if src.suffix.lower() == ".png" else "image/jpeg"
                out.append((src.read_bytes(), mime))
            else:
                buf = io.BytesIO()
                open_image(src).save(buf, format="PNG")
                out.append((buf.getvalue(), "image/png"))
        return out


@dataclass
class Benchmark:
    name: str  # mathvista | mathverse | mathvision | mmmu_pro | problems
    split: str
    source: str  # where the rows came from
    items: list[BenchItem]
    scorer: str | None  # scorer registry name; None: srpo's own answer check (srpo.answers)


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


# --- per-benchmark prompts and fields --------------------------------------------------------------------------

MMMU_PRO_PROMPTS = {  # mmmu-pro/prompts.yaml, cot
    "vision": "Write out the multiple-choice question in the image and then solve it. The last line of your response "
              "should be of the following format: 'Answer: $LETTER' (without quotes) where LETTER is one of options. "
              "Think step by step before answering.",
    "standard": "Answer the preceding multiple choice question. The last line of your response should be of the "
                "following format: 'Answer: $LETTER' (without quotes) where LETTER is one of options. Think step by "
                "step before answering.",
}


def _mathvista_prompt(rec: dict) -> str:
    if rec.get("query"):
        return rec["query"]
    q = rec["question"]
    if rec.get("choices"):
        q += "\nChoices:\n" + "\n".join(f"({c}) {t}" for c, t in zip(letters(len(rec["choices"])), rec["choices"]))
    return q


def _mathvision_prompt(rec: dict) -> str:
    """The question, plus "(A) ..." option lines when the options are not the bare letters (SRPO's scripts)."""
    opts = rec.get("options") or []
    if opts and [str(o) for o in opts] != letters(len(opts)):
        return rec["question"] + "\n" + "\n".join(f"({c}) {o}" for c, o in zip(letters(len(opts)), opts))
    return rec["question"]


def _mathverse_prompt(rec: dict) -> str:
    """`query_cot` (what SRPO's scripts use); visualizer rows have none: the same template around the question."""
    if rec.get("query_cot"):
        return rec["query_cot"]
    mc = str(rec.get("question_type", "")).startswith("multi")
    ask = ("provide the correct option letter, e.g., A, B, C, D, at the end" if mc
           else "provide the final value, e.g., 1, 2.5, 300, at the end")
    q = (rec.get("question") or "").strip()
    if not q:
        return f"According to the question shown in the image, please first conduct reasoning, and then answer the " \
               f"question and {ask}."
    if rec.get("choices"):
        q += "\nChoices:\n" + "\n".join(str(c) for c in rec["choices"])
    return f"Please first conduct reasoning, and then answer the question and {ask}.\nQuestion: {q}"


def _mmmu_pro_prompt(rec: dict, split: str, options: list[str]) -> str:
    if split == "vision":
        return MMMU_PRO_PROMPTS["vision"]
    opts = "\n".join(f"{c}. {o}" for c, o in zip(letters(len(options)), options))
    return f"{rec['question']}\n{opts}\n{MMMU_PRO_PROMPTS['standard']}"


def _mmmu_image_refs(rec: dict, split: str) -> list[str]:
    """Image file names under --images: <id>.png (vision) or <id>_<k>.png per <image k> placeholder (standard)."""
    if split == "vision":
        return [f"{rec['id']}.png"]
    text = f"{rec.get('question', '')} {rec.get('options', '')}"
    ks = sorted({int(k) for k in re.findall(r"<image (\d+)>", text)}) or [1]
    return [f"{rec['id']}_{k}.png" for k in ks]


@dataclass(frozen=True)
class Spec:
    splits: tuple[str, ...]
    default: str
    hub: Callable[[str], tuple[str, str | None, str]]  # split -> (repo, config, datasets split)
    hint: str  # where to get the images


SPECS: dict[str, Spec] = {
    "mathvista": Spec(("testmini",), "testmini", lambda s: ("AI4Math/MathVista", None, s),
                      "MathVista images are distributed through the Hugging Face hub (AI4Math/MathVista, images.zip); "
                      "unzip them there, pass --images DIR, or use --data hf."),
    "mathverse": Spec(("testmini", "testmini_text_only", "visualizer_sample"), "testmini",
                      lambda s: ("AI4Math/MathVerse", "testmini_text_only" if s == "testmini_text_only" else "testmini",
                                 "testmini"),
                      "MathVerse images are distributed through the Hugging Face hub (AI4Math/MathVerse, images.zip); "
                      "unzip them there, pass --images DIR, or use --data hf."),
    "mathvision": Spec(("test", "testmini"), "test", lambda s: ("MathLLMs/MathVision", None, s),
                       "The offline copy holds only the testmini images (use --split testmini); the test images are "
                       "in the images/ folder of github.com/mathllm/MATH-V (or use --data hf)."),
    "mmmu_pro": Spec(("standard10", "standard4", "vision"), "standard10",
                     lambda s: ("MMMU/MMMU_Pro", {"standard10": "standard (10 options)",
                                                  "standard4": "standard (4 options)"}.get(s, s), "test"),
                     "MMMU-Pro images are only distributed through the Hugging Face dataset MMMU/MMMU_Pro: use --data "
                     "hf or a datasets save_to_disk folder, or put them in --images DIR named <id>_<k>.png "
                     "(standard) / <id>.png (vision)."),
}
PROBLEM_FILE_SUFFIXES = (".jsonl", ".json", ".parquet")
SPLIT_ALIASES = {"standard": "standard10", "standard-10": "standard10", "standard (10 options)": "standard10",
                 "standard-4": "standard4", "standard (4 options)": "standard4", "text_only": "testmini_text_only",
                 "visualizer": "visualizer_sample"}
NAME_ALIASES = {"mmmu-pro": "mmmu_pro", "mmmupro": "mmmu_pro", "math-vision": "mathvision", "mathv": "mathvision",
                "math_vision": "mathvision"}


def _default_file(name: str, split: str, root: Path) -> Path:
    """The official data file of a benchmark split inside its repository folder."""
    if name == "mathvista":
        return root / "data" / "testmini.json"
    if name == "mathvision":
        return root / "data" / f"{split}.jsonl"
    if name == "mathverse":
        if split == "visualizer_sample":
            return root / "visualizer_sample" / "mv_data_public.json"
        return root / "data" / ("testmini_text_only.json" if split == "testmini_text_only" else "testmini.json")
    # mmmu_pro: the official repo has no data file; the published output files carry the questions
    stem = {"vision": "vision", "standard10": "standard(10 options)", "standard4": "standard(4 options)"}[split]
    return root / f"gpt-4o_{stem}_cot.jsonl"


def _official_rows(name: str, split: str, path: Path) -> tuple[list[dict], Path]:
    """(rows, the folder the rows' image paths are relative to) of an official data file; MathVista gets its
    official prompts from query.json beside the file, the MathVerse visualizer sample its testmini answers."""
    if name == "mathverse" and split == "testmini" and not path.exists():
        raise MissingPath(
            f"mathverse: {path} not found. The official testmini.json (3940 rows) and its images come from the "
            "Hugging Face hub (AI4Math/MathVerse): put them there, or use --data hf; offline, --split "
            "visualizer_sample (726 items with images) and --split testmini_text_only (788 items, no images) exist.")
    rows = load_records(_need(path, name))
    root = path.parent.parent if path.parent.name == "data" else path.parent
    if name == "mathvista":
        queries = path.parent / "query.json"
        if queries.exists():
            qmap = json.loads(queries.read_text(encoding="utf-8"))
            rows = [{**r, "query": r.get("query") or qmap.get(str(r.get("pid", r.get("_key"))))} for r in rows]
        return rows, root
    if name == "mathvision":
        return rows, root
    if name == "mathverse" and split == "visualizer_sample":
        mp = path.parent / "map_to_testmini.json"
        amap = json.loads(mp.read_text(encoding="utf-8")) if mp.exists() else {}
        for r in rows:  # its README: use the released testmini answer where the problem matches one
            gold = (amap.get(str(r["pid"])) or {}).get("testmini_answer")
            if gold is not None and gold != r["answer"]:
                r["visualizer_answer"], r["answer"] = r["answer"], gold
        return rows, path.parent / "images"
    return rows, root / "images"


def _need(path: Path, name: str) -> Path:
    if not path.exists():
        raise MissingPath(f"{name}: data file {path} not found (pass --data with the benchmark's official "
                                "folder or file, or --data hf to load it with datasets)")
    return path


def _image_refs(name: str, split: str, rec: dict) -> list[str]:
    if name == "mmmu_pro":
        return _mmmu_image_refs(rec, split)
    img = rec.get("image")
    return [img] if img else []


def _resolve(base: Path, ref: str) -> Path | None:
    for cand in (base / ref, base / Path(ref).name, base / "images" / ref):
        if cand.is_file():
            return cand
    return None


def _hub_rows(name: str, split: str, data: str, limit: int | None) -> tuple[list[dict], str]:
    import datasets

    if data == "hf":
        repo, config, hf_split = SPECS[name].hub(split)
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


def canonical(name: str, split: str | None) -> tuple[str, str]:
    """(benchmark, split) from "name", "name:split" or aliases; ValueError naming the choices."""
    key = name.lower().strip()
    if ":" in key:
        key, split = key.split(":", 1)
    key = NAME_ALIASES.get(key, key)
    if key not in SPECS:
        raise InvalidValue(f"--benchmark {name!r} is not a known benchmark; use one of {sorted(SPECS)} (NAME:SPLIT "
                           "allowed) or the path of a JSONL / Parquet / datasets problem file")
    spec = SPECS[key]
    split = SPLIT_ALIASES.get((split or spec.default).lower(), (split or spec.default).lower())
    if split not in spec.splits:
        raise InvalidValue(f"{key}: unknown split {split!r} (--split, or NAME:SPLIT); use one of {list(spec.splits)}")
    return key, split


def build_item(name: str, split: str, rec: dict, images: list) -> BenchItem:
    if name == "mathvista":
        iid, prompt = str(rec.get("pid", rec.get("_key"))), _mathvista_prompt(rec)
    elif name == "mathvision":
        iid, prompt = str(rec["id"]), _mathvision_prompt(rec)
    elif name == "mathverse":
        iid, prompt = str(rec.get("sample_index", rec.get("pid"))), _mathverse_prompt(rec)
    else:  # mmmu_pro: the options scored are the ones shown (shuffled ones in first-release rows)
        from srpo.eval.scoring.mmmu_pro import shown_options

        iid = str(rec["id"])
        try:
            options, answer = shown_options(rec)
        except InvalidValue as exc:
            raise InvalidValue(f"mmmu_pro {split}: {exc}") from None
        return BenchItem(id=iid, prompt=_mmmu_pro_prompt(rec, split, options), record=rec, gold=str(answer),
                         images=images)
    return BenchItem(id=iid, prompt=prompt, record=rec, gold=str(rec.get("answer")), images=images)


def load_benchmark(name: str, *, split: str | None = None, data: str | Path | None = None,
                   images: str | Path | None = None, limit: int | None = None) -> Benchmark:
    """Items of a benchmark (see the module doc). `data`: the official folder (default: the shared copy), one of its
    files, "hf" (datasets.load_dataset), a datasets save_to_disk folder or a Parquet file. `images`: the image folder
    when it is not where the official layout puts it. `limit`: the first N items only."""
    key = str(name).lower().split(":")[0]
    if NAME_ALIASES.get(key, key) not in SPECS:
        if Path(str(name)).exists():
            from srpo.eval.problems import load_problem_benchmark

            return load_problem_benchmark(Path(name), limit=limit)
        if Path(str(name)).suffix in PROBLEM_FILE_SUFFIXES or "/" in str(name):
            raise MissingPath(f"--benchmark {name}: no such problem file; check the path, or use one of "
                              f"{sorted(SPECS)}")
    name, split = canonical(name, split)
    data_s = None if data is None else str(data)
    if data_s is not None and (data_s == "hf" or Path(data_s).suffix == ".parquet"
                               or (Path(data_s) / "state.json").exists()
                               or (Path(data_s) / "dataset_dict.json").exists()):
        rows, source = _hub_rows(name, split, data_s, limit)
        pairs = [_split_images(r) for r in rows]
        missing = [build_item(name, split, rec, imgs).id for rec, imgs in pairs
                   if not imgs and _image_refs(name, split, rec)]
        if missing:
            raise MissingImagesError(f"{name} {split}", missing, len(missing), len(rows),
                                     f"the image columns of {source}", SPECS[name].hint)
        items = [build_item(name, split, rec, imgs) for rec, imgs in pairs]
        return Benchmark(name, split, source, items, name)
    if data_s is not None and Path(data_s).is_file():
        path = Path(data_s)
    else:
        path = _default_file(name, split, Path(data_s) if data_s is not None else shared_dir() / name)
    rows, base = _official_rows(name, split, path)
    if images is not None:
        base = Path(images)
    rows = rows[:limit] if limit is not None else rows
    items, missing, n_bad = [], [], 0
    for rec in rows:
        refs = _image_refs(name, split, rec)
        found = [_resolve(base, ref) for ref in refs]
        items.append(build_item(name, split, rec, [f for f in found if f is not None]))
        lost = [str(base / ref) for ref, f in zip(refs, found) if f is None]
        missing += lost
        n_bad += bool(lost)
    if missing:
        raise MissingImagesError(f"{name} {split}", missing, n_bad, len(rows), str(base), SPECS[name].hint)
    return Benchmark(name, split, str(path), items, name)
