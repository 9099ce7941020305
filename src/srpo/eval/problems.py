"""Any file in the srpo `Problem` schema (JSONL / Parquet / datasets folder) as a benchmark, scored with srpo's own
answer check (`srpo.answers.is_correct` on the last <answer> block, as the rewards do)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from srpo.answers import extract_answer, is_correct
from srpo.data import load_problems
from srpo.eval.benchmarks import Benchmark, BenchItem, MissingImagesError
from srpo.eval.scoring.common import ScoreResult, make_result, pct
from srpo.format import parse_response

MODE = "srpo_answers"
BREAKDOWN = {
    "answer_type": lambda rec: rec.get("answer_type"),
    "source": lambda rec: rec.get("source") or None,
}


def _missing_jsonl_images(path: Path, limit: int | None) -> tuple[list[str], int, int]:
    """(missing image paths, items missing one, items) of a JSONL file, checked before anything is decoded."""
    missing, n_bad, n = [], 0, 0
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            if limit is not None and n >= limit:
                break
            n += 1
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # load_problems reports it with its line number
            refs = row.get("images") if row.get("images") is not None else row.get("image")
            refs = refs if isinstance(refs, list) else [refs] if refs is not None else []
            paths = [Path(r) if Path(r).is_absolute() else path.parent / r for r in refs if isinstance(r, str)]
            lost = [str(p) for p in paths if not p.is_file()]
            missing += lost
            n_bad += bool(lost)
    return missing, n_bad, n


def load_problem_benchmark(path: Path, *, limit: int | None = None) -> Benchmark:
    if path.suffix == ".jsonl":
        missing, n_bad, n = _missing_jsonl_images(path, limit)
        if missing:
            raise MissingImagesError(str(path), missing, n_bad, n, str(path.parent.resolve()),
                                     "Relative image paths are resolved against the data file's folder.")
    problems = load_problems(path, limit=limit)
    items = [
        BenchItem(
            id=p.id,
            prompt=p.question_with_choices(),
            record={"id": p.id, "question": p.question, "answer": p.answer, "choices": p.choices,
                    "answer_type": p.answer_type, "source": p.source, "metadata": p.metadata},
            gold=p.answer,
            images=list(p.images),
        )
        for p in problems
    ]
    return Benchmark("problems", path.stem, str(path), items, None)


def score_item(record: dict, response: str, mode: str = MODE, **_: Any) -> dict:
    """The last <answer> block of `response` checked against the record's answer (choices-aware)."""
    final = parse_response(response or "").final_answer
    ok = final is not None and is_correct(final, record["answer"], choices=record.get("choices"))
    return {"id": record.get("id"), "extraction": final, "prediction": extract_answer(final) if final else None,
            "correct": ok, "unparsed": final is None, "method": "rule"}


def make_problem_result(items: list[dict], records: list[dict]) -> ScoreResult:
    return make_result("problems", MODE, items, records, BREAKDOWN, options={"scorer": "srpo.answers.is_correct"})


def to_official_json(result: ScoreResult) -> dict:
    """MathVista-like: average {accuracy, correct, total}, then per category value."""
    out: dict[str, Any] = {"average": {"accuracy": f"{pct(result.correct, result.n):.2f}", "correct": result.correct,
                                       "total": result.n}}
    for cat, cells in result.breakdown.items():
        out[cat] = {v: {"accuracy": f"{c['accuracy']:.2f}", "correct": c["correct"], "total": c["n"]}
                    for v, c in cells.items()}
    return out
