"""Any file in the srpo `Problem` schema (JSONL / Parquet / datasets folder) as a benchmark: loader, prompt, output
format and scorer. Scored with srpo's own answer check (`srpo.answers.is_correct` on the last <answer> block, as the
rewards do), in every mode.

data         -- the problem file (`--benchmark PATH`); relative image paths are resolved against its folder. The
                prompt is the question with its choices, as in training.
outputs      -- outputs_problems.jsonl: the problem rows plus response, extraction, prediction and correct
                (rescorable with `srpo eval score --benchmark problems`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from srpo.answers import extract_answer, is_correct
from srpo.data import load_problems
from srpo.eval.benchmarks.common import ScoreResult, make_result, pct
from srpo.eval.benchmarks.items import Benchmark, BenchItem, MissingImagesError, write_jsonl
from srpo.eval.benchmarks.rows import check_field, read_rows
from srpo.eval.metrics import ScoredItem
from srpo.format import parse_response

NAME = "problems"
SCORER = "srpo.answers"
MODE = "srpo_answers"
SPLITS: tuple[str, ...] = ()  # not loaded by name: `--benchmark` is the file's path
SUFFIXES = (".jsonl", ".json", ".parquet")
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


def load(path: Path, *, limit: int | None = None) -> Benchmark:
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
    return Benchmark(NAME, path.stem, str(path), items)


def score_item(record: dict, response: str, mode: str = MODE, **_: Any) -> dict:
    """The last <answer> block of `response` checked against the record's answer (choices-aware). Every mode and
    scorer option is the same here: srpo's answer check has no official variant and no LLM step."""
    final = parse_response(response or "").final_answer
    ok = final is not None and is_correct(final, record["answer"], choices=record.get("choices"))
    return {"id": record.get("id"), "extraction": final, "prediction": extract_answer(final) if final else None,
            "correct": ok, "unparsed": final is None, "method": "rule"}


def score_result(mode: str, items: list[dict], records: list[dict], options: dict) -> ScoreResult:
    return make_result(NAME, MODE, items, records, BREAKDOWN, to_official_json,
                       options={"scorer": "srpo.answers.is_correct"})


OUTPUT_FILE = ("problem output files are JSONL rows with id, answer and response (as outputs_problems.jsonl of an "
               "`srpo eval` run); pass such a file or check --benchmark")


def rescore(outputs_path, *, mode: str = MODE, field: str = "response", judge=None,
            records: list[dict] | None = None) -> ScoreResult:
    """Rescore an outputs_problems.jsonl file (problem rows plus `response`)."""
    if records is None:
        records = [row for _, row in read_rows(outputs_path, layout="jsonl", expected=OUTPUT_FILE, id_fields=("id",),
                                               required=("answer",))]
        check_field(outputs_path, records, field)
    items = [score_item(r, r.get(field)) for r in records]
    return score_result(mode, items, records, {})


def to_official_json(result: ScoreResult) -> dict:
    """MathVista-like: average {accuracy, correct, total}, then per category value."""
    out: dict[str, Any] = {"average": {"accuracy": f"{pct(result.correct, result.n):.2f}", "correct": result.correct,
                                       "total": result.n}}
    for cat, cells in result.breakdown.items():
        out[cat] = {v: {"accuracy": f"{c['accuracy']:.2f}", "correct": c["correct"], "total": c["n"]}
                    for v, c in cells.items()}
    return out


def write_outputs(rows: list[tuple[BenchItem, ScoredItem]], folder: Path, model: str) -> Path:
    return write_jsonl(folder / "outputs_problems.jsonl", [
        {**item.record, "response": s.response, "extraction": s.extraction, "prediction": s.prediction,
         "correct": s.correct} for item, s in rows])
