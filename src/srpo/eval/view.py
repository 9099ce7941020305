"""The reflection explorer (docs/view.md): one self-contained HTML page per evaluation run, per pair of evaluation
runs, or per training run, showing each item's image, question, first attempt, reflection and final answer.

Pure functions turn run folders into the page's data (`eval_run_items`, `compare_items`, `training_items`); the page
itself is a fixed template with inline CSS/JS (`view_assets/`) that renders that data. Every text from a model or a
dataset reaches the browser only as JSON inside a <script type="application/json"> (with <, >, &, U+2028/2029
escaped) and is shown with textContent, never parsed as HTML. Images are embedded as data URIs, each in its own
<script type="text/plain">, so the browser decodes only those of the items on screen (docs/view.md#large-runs).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from srpo.errors import InvalidValue, MissingPath, UserError
from srpo.eval.benchmarks import Benchmark, benchmark_module, load_benchmark
from srpo.eval.benchmarks.items import open_image
from srpo.eval.paired import paired_summary
from srpo.eval.report import load_run
from srpo.files import atomic_write_text
from srpo.format import is_five_block, parse_response
from srpo.rewards import completion_text, default_token_count
from srpo.train.callbacks import load_log_history, plot_training

logger = logging.getLogger(__name__)

ASSETS = Path(__file__).with_name("view_assets")
THUMB_SIDE = 160  # px, longest side of a list thumbnail
FULL_SIDE = 800  # px, longest side of the image a click opens
# Full-size images are embedded until they take this many bytes; later items open their thumbnail enlarged, so a
# 3,000-item page stays under 30 MB (docs/view.md#large-runs).
FULL_IMAGE_BUDGET = 6_000_000
FIVE_BLOCKS = ("think", "answer", "reflection", "think", "answer")


# --- one response -----------------------------------------------------------------------------------------------

def malformed_reason(text: str) -> str:
    """Why a response is not the five-block format (docs/method.md#format), in words."""
    if not text.strip():
        return "empty response"
    parsed = parse_response(text)
    found = (len(parsed.thinks), len(parsed.answers), len(parsed.reflections))
    if found != (2, 2, 1):
        return (f"{found[0]} <think>, {found[1]} <answer> and {found[2]} <reflection> closed blocks; the five-block "
                "format has 2, 2 and 1")
    for tag in ("think", "answer", "reflection"):
        if text.count(f"<{tag}>") != text.count(f"</{tag}>"):
            return f"unbalanced <{tag}> tags"
    return "blocks out of order, empty, nested, or text between or after them"


def response_view(text: str) -> dict:
    """A five-block response as its five labelled blocks; anything else raw, with the reason."""
    text = text if isinstance(text, str) else ""
    if is_five_block(text):
        p = parse_response(text)
        contents = (p.thinks[0], p.answers[0], p.reflections[0], p.thinks[1], p.answers[1])
        return {"blocks": [[kind, content] for kind, content in zip(FIVE_BLOCKS, contents)]}
    return {"raw": text, "malformed": malformed_reason(text)}


# --- images -----------------------------------------------------------------------------------------------------

class ImageStore:
    """Embedded images by key: a thumbnail for every image and, within FULL_IMAGE_BUDGET, a larger copy."""

    def __init__(self, full_budget: int = FULL_IMAGE_BUDGET) -> None:
        self.thumbs: dict[str, str] = {}
        self.full: dict[str, str] = {}
        self.budget = full_budget
        self._keys: dict[Any, str] = {}

    def add(self, source: Any) -> str | None:
        """The key of `source` (a path, PIL image, bytes or datasets image), or None when it cannot be read."""
        ident = str(source) if isinstance(source, (str, Path)) else id(source)
        if ident in self._keys:
            return self._keys[ident]
        try:
            image = open_image(Path(source) if isinstance(source, str) else source)
        except (OSError, ValueError, KeyError) as exc:
            logger.info("explorer: image %s unreadable (%s): placeholder", str(source)[:120], exc)
            return None
        key = str(len(self._keys))
        self._keys[ident] = key
        self.thumbs[key] = data_uri(image, THUMB_SIDE, 60)
        if self.budget > 0:
            full = data_uri(image, FULL_SIDE, 85)
            if len(full) <= self.budget:
                self.full[key] = full
                self.budget -= len(full)
        return key


def data_uri(image: Image.Image, side: int, quality: int) -> str:
    image = image.copy()
    image.thumbnail((side, side))
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# --- evaluation runs --------------------------------------------------------------------------------------------

def read_items(run_dir: Path) -> list[dict]:
    path = run_dir / "items.jsonl"
    if not path.is_file():
        raise MissingPath(f"{path} is missing; rerun the run's `srpo eval` command with --out {run_dir} to write it "
                          "(saved replies are kept)")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
            row["id"] = str(row["id"])
        except (json.JSONDecodeError, TypeError, KeyError):
            raise InvalidValue(f"{path}:{number}: not an item line with an `id`; rerun the run's `srpo eval` command "
                               f"with --out {run_dir} to write it again") from None
        rows.append(row)
    return rows


def reload_benchmark(run: dict) -> tuple[Benchmark | None, str | None]:
    """The run's benchmark items as `srpo eval` loaded them (for questions, images and categories), or (None, why).
    Images that are no longer there become placeholders rather than an error."""
    cfg = run.get("config", {})
    try:
        return load_benchmark(cfg["benchmark"], split=cfg.get("split"), data=cfg.get("data"),
                              images=cfg.get("images"), limit=cfg.get("limit")), None
    except (UserError, OSError, ValueError, KeyError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    gen, data = run.get("generation", {}), Path(str(run.get("data", "")))
    try:
        module = benchmark_module(gen["benchmark"])
        rows, base = module.read_official(gen["split"], data)
    except (UserError, OSError, ValueError, KeyError, AttributeError):
        return None, f"questions and images not shown: {reason}"
    base = Path(cfg["images"]) if cfg.get("images") else base
    items = [module.build_item(gen["split"], rec, [base / ref for ref in module.image_refs(gen["split"], rec)
                                                  if (base / ref).is_file()]) for rec in rows]
    return Benchmark(module.NAME, gen["split"], str(data), items), f"images shown where found: {reason}"


def run_result(row: dict) -> dict:
    """One run's view of an item: verdicts, transition, token counts and the response's blocks."""
    return {"first_correct": row.get("first_correct"), "final_correct": row.get("final_correct", row.get("correct")),
            "first_answer": row.get("first_answer"), "final_answer": row.get("final_answer"),
            "transition": row.get("transition"), "tokens": row.get("response_tokens"),
            "reflection_tokens": row.get("reflection_tokens"), "prediction": _short(row.get("prediction")),
            **response_view(row.get("response") or "")}


def _short(value: Any) -> str | None:
    return None if value is None else str(value)[:200]


def eval_run_items(run_dir: str | Path, bench: Benchmark | None = None, images: ImageStore | None = None
                   ) -> tuple[dict, list[dict], list[str]]:
    """(run summary, page items, notes) of an `srpo eval` run folder; `bench`: its benchmark when already loaded."""
    loaded = load_run(run_dir)
    run_dir, run, metrics = Path(run_dir), loaded["run"], loaded["metrics"]
    notes: list[str] = []
    if bench is None:
        bench, note = reload_benchmark(run)
        notes += [note] if note else []
    source = {it.id: it for it in bench.items} if bench is not None else {}
    breakdown = getattr(benchmark_module(bench.name), "BREAKDOWN", {}) if bench is not None and bench.items else {}
    images = images if images is not None else ImageStore()
    items = []
    for row in read_items(run_dir):
        item = source.get(row["id"])
        keys = [images.add(src) for src in item.images] if item is not None else []
        cats = {name: str(v) for name, f in breakdown.items() if item is not None and (v := f(item.record)) is not None}
        items.append({"id": row["id"], "question": item.prompt if item is not None else None,
                      "gold": str(row.get("gold", "")), "images": keys, "categories": cats,
                      "runs": [run_result(row)]})
    gen = run.get("generation", {})
    summary = {"name": run_dir.resolve().name, "dir": str(run_dir), "model": gen.get("model"),
               "benchmark": gen.get("benchmark"), "split": gen.get("split"), "metrics": _summary_metrics(metrics)}
    return summary, items, notes


def _summary_metrics(metrics: dict) -> dict:
    keys = ("n", "final_accuracy", "first_accuracy", "reflection_rate", "format_rate", "wrong_to_right",
            "right_to_right", "right_to_wrong", "wrong_to_wrong", "mean_response_tokens", "length_unit")
    return {k: metrics[k] for k in keys if k in metrics}


def compare_items(run_a: str | Path, run_b: str | Path, bench: Benchmark | None = None,
                  images: ImageStore | None = None) -> tuple[list[dict], list[dict], dict, list[str]]:
    """(run summaries, items both runs scored with both results, paired statistics, notes) of two eval runs."""
    summary_a, items_a, notes = eval_run_items(run_a, bench, images)
    summary_b, items_b, _ = eval_run_items(run_b, bench=Benchmark("", "", "", []), images=images)
    by_id = {it["id"]: it for it in items_b}
    common = [{**it, "runs": it["runs"] + by_id[it["id"]]["runs"]} for it in items_a if it["id"] in by_id]
    if not common:
        raise InvalidValue(f"{run_a} and {run_b} have no item id in common, so there is nothing to compare; pass two "
                           "evaluation runs of the same benchmark and split")
    paired = paired_summary({it["id"]: bool(it["runs"][0]["final_correct"]) for it in items_a},
                            {it["id"]: bool(it["runs"][0]["final_correct"]) for it in items_b})
    if summary_a["name"] == summary_b["name"]:
        summary_a["name"], summary_b["name"] = summary_a["dir"], summary_b["dir"]
    return [summary_a, summary_b], common, paired, notes


# --- training runs ----------------------------------------------------------------------------------------------

def is_training_run(run_dir: Path) -> bool:
    return (run_dir / "completions").is_dir() or (run_dir / "trainer_state.json").is_file() or any(
        run_dir.glob("checkpoint-*/trainer_state.json"))


def training_items(run_dir: str | Path) -> tuple[dict, list[dict], list[dict], list[str]]:
    """(run summary, one item per completion TRL logged, curves as data URIs, notes) of an `srpo rl` output_dir.
    TRL writes the completions of each logging step to completions/completions_<step>.parquet when
    `log_completions` is on (srpo rl's default)."""
    import pandas as pd  # only training pages read parquet

    run_dir = Path(run_dir)
    notes, items = [], []
    files = sorted((run_dir / "completions").glob("completions_*.parquet"))
    if not files:
        notes.append(f"no completions in {run_dir / 'completions'}: train with log_completions: true to log them")
    for path in files:
        frame = pd.read_parquet(path)
        terms = [c for c in frame.columns if c.endswith("_reward")]
        for i, row in enumerate(frame.to_dict("records")):
            text = completion_text(row.get("completion"))
            transition = row.get("transition")
            items.append({
                "id": f"{int(row['step'])}:{i}", "step": int(row["step"]), "question": _prompt_text(row.get("prompt")),
                "gold": str(row.get("answer", "")), "images": [], "categories": {},
                "runs": [{"first_correct": _bool(row.get("first_correct")), "final_correct": _bool(row.get("final_correct")),
                          "transition": transition if isinstance(transition, str) else None,
                          "tokens": default_token_count(text), "advantage": _number(row.get("advantage")),
                          "rewards": {t[: -len("_reward")]: _number(row[t]) for t in terms}, **response_view(text)}],
            })
    curves = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for png in plot_training({run_dir.resolve().name: load_log_history(run_dir)}, tmp):
                curves.append({"title": png.stem.replace("_", " "),
                               "src": "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")})
    except MissingPath as exc:
        notes.append(f"no curves: {exc}")
    summary = {"name": run_dir.resolve().name, "dir": str(run_dir), "metrics": {"n": len(items)}}
    return summary, items, curves, notes


def _prompt_text(prompt: Any) -> str:
    """The user turn of a logged conversational prompt (the system prompt is the same for every row)."""
    if isinstance(prompt, str):
        return prompt
    turns = [m for m in (prompt if prompt is not None else []) if isinstance(m, dict)]
    users = [m for m in turns if m.get("role") == "user"] or turns
    return completion_text([users[-1]]) if users else ""


def _bool(value: Any) -> bool | None:
    return None if value is None or value != value else bool(value)


def _number(value: Any) -> float | None:
    return None if value is None or value != value else float(value)


# --- the page ---------------------------------------------------------------------------------------------------

def script_json(data: Any) -> str:
    """JSON that can sit inside a <script> element: no "</script>", "<!--" or line separator can end it early."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, default=str)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                          ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def render_page(data: dict, images: ImageStore) -> str:
    """The page's HTML: the template with the inline CSS and JS, the data, and one script element per image."""
    template = (ASSETS / "view.html").read_text(encoding="utf-8")
    blobs = [f'<script type="text/plain" id="thumb-{k}">{v}</script>' for k, v in images.thumbs.items()]
    blobs += [f'<script type="text/plain" id="full-{k}">{v}</script>' for k, v in images.full.items()]
    parts = {"/*STYLE*/": (ASSETS / "view.css").read_text(encoding="utf-8"),
             "/*SCRIPT*/": (ASSETS / "view.js").read_text(encoding="utf-8"),
             "/*DATA*/": script_json(data), "<!--IMAGES-->": "\n".join(blobs)}
    for marker, text in parts.items():
        head, sep, tail = template.partition(marker)
        template = head + text + tail  # partition, not replace: a marker inside the inserted text stays as it is
    return template


def view_data(run_dirs: Sequence[str | Path], bench: Benchmark | None = None) -> tuple[dict, ImageStore]:
    """The page data of one eval run, two eval runs (compared), or one training run."""
    paths = [Path(p) for p in run_dirs]
    if not 1 <= len(paths) <= 2:
        raise InvalidValue(f"srpo view takes one or two run folders, got {len(paths)}")
    for path in paths:
        if not path.is_dir():
            raise MissingPath(f"{path} is {'a file' if path.exists() else 'not there'}; pass an `srpo eval --out` "
                              "folder or an `srpo rl` output_dir")
        if not (path / "run.json").is_file() and not is_training_run(path):
            raise MissingPath(f"{path} is not a run folder (no run.json of `srpo eval`, no completions/ or "
                              "trainer_state.json of `srpo rl`); pass an `srpo eval --out` folder or an `srpo rl` "
                              "output_dir")
    images = ImageStore()
    if len(paths) == 1 and not (paths[0] / "run.json").is_file():
        summary, items, curves, notes = training_items(paths[0])
        return {"kind": "train", "runs": [summary], "items": items, "curves": curves, "notes": notes}, images
    if len(paths) == 1:
        summary, items, notes = eval_run_items(paths[0], bench, images)
        return {"kind": "eval", "runs": [summary], "items": items, "notes": notes}, images
    if any(not (p / "run.json").is_file() for p in paths):
        raise InvalidValue("two runs are compared only as `srpo eval` run folders (with run.json); view a training "
                           "run on its own")
    summaries, items, paired, notes = compare_items(paths[0], paths[1], bench, images)
    return {"kind": "compare", "runs": summaries, "items": items, "paired": paired, "notes": notes}, images


def write_view(run_dirs: Sequence[str | Path], out: str | Path | None = None, bench: Benchmark | None = None
               ) -> Path:
    """Write the explorer page of `run_dirs` (default: RUN_DIR/view.html) and return its path."""
    data, images = view_data(run_dirs, bench)
    path = Path(out) if out is not None else Path(run_dirs[0]) / "view.html"
    return atomic_write_text(path, render_page(data, images))
