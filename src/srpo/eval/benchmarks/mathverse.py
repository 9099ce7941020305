"""MathVerse (testmini): loader, prompt, output format and scorer.

data         -- data/testmini.json (3940 rows, from the Hugging Face hub), data/testmini_text_only.json (788 rows, no
                images) or visualizer_sample/mv_data_public.json (726 rows with images under visualizer_sample/images;
                the released testmini answer replaces the visualizer's where the problem matches one). The prompt is
                `query_cot`, as SRPO's scripts use.
outputs      -- outputs_mathverse.json: one JSON list of the rows plus model_answer, extraction and true_false, as
                output_templates/output_testmini.json (rescorable).

official     -- the official two-step pipeline (extract_answer_s1.py + score_answer_s2.py, described in
                PROTOCOLS.md). Step 1: an LLM extracts the answer from the response (`judge` hook; a stored
                `extraction` field is used as is; without a judge an offline heuristic stands in and items are
                marked method="heuristic" -- not part of the protocol). Step 2: `--quick_match` (exact string
                equality of extraction and answer) when no judge is given, else exact match first and the LLM judge
                ("Judgement: 0/1": same option letter for multiple choice, same meaning for free form).
                Headline accuracy ("All") is over the five vision-bearing versions (Text Dominant, Text Lite,
                Vision Intensive, Vision Dominant, Vision Only); Text Only is reported separately (when a file holds
                only Text Only rows, the headline is over those).
srpo_compat  -- the SRPO authors' script: first <answer> block (else last \\boxed{}); a single option letter (or a
                unique option text) for multiple choice; exact string match, else the `judge` hook (GPT-4o judge in
                their script); else wrong.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from srpo.answers import last_boxed
from srpo.errors import MissingPath
from srpo.eval.benchmarks.common import (
    Judge,
    ScoreResult,
    check_mode,
    compat_choice_letter,
    compat_extract,
    make_result,
    single_letter,
)
from srpo.eval.benchmarks.items import BenchItem, image_field, need_file, official_root, without_key
from srpo.eval.benchmarks.rows import check_field, load_records, read_rows
from srpo.eval.metrics import ScoredItem
from srpo.files import atomic_write_json

NAME = "mathverse"
SCORER = NAME
MAIN_VERSIONS = ("Text Dominant", "Text Lite", "Vision Intensive", "Vision Dominant", "Vision Only")
TEXT_ONLY = "Text Only"


def _meta(rec: dict) -> dict:
    return rec.get("metadata") or {}


def version(rec: dict) -> str | None:
    return rec.get("problem_version") or _meta(rec).get("problem_version")


def is_multiple_choice(rec: dict) -> bool:
    return str(rec.get("question_type", "")).replace("_", "-") == "multi-choice"


BREAKDOWN = {
    "problem_version": version,
    "subject": lambda rec: _meta(rec).get("subject") or _meta(rec).get("subjects"),
    "subfield": lambda rec: _meta(rec).get("subfield") or _meta(rec).get("subfields"),
    "question_type": lambda rec: "multi-choice" if is_multiple_choice(rec) else "free-form",
}

_CHOICE_LINE = re.compile(r"^\s*\(?([A-H])\s*[:.)]\s*(.*)$")


def choices_of(rec: dict) -> list[str]:
    """Option texts of a multiple-choice row: the `choices` list (visualizer rows, "A:text"), else the lines after
    "Choices:" in the question."""
    raw = rec.get("choices")
    if raw:
        return [(_CHOICE_LINE.match(str(c)).group(2) if _CHOICE_LINE.match(str(c)) else str(c)).strip() for c in raw]
    q = rec.get("question") or ""
    if "Choices:" not in q:
        return []
    out = []
    for line in q.split("Choices:", 1)[1].splitlines():
        m = _CHOICE_LINE.match(line)
        if m:
            out.append(m.group(2).strip())
    return out


# --- step 1: extraction ---------------------------------------------------------------------------------------

EXTRACT_PROMPT = """You are given a model's response to a math question. Copy out only the final answer it gives:
for a multiple-choice question the option letter, otherwise the value or expression. If the response gives no answer,
reply null.

Example
Response: The triangle's angles sum to 180, so the missing angle is 180 - 60 - 80 = 40 degrees. The answer is B.
Extracted answer: B

Example
Response: Using the distance formula, d = sqrt(64 + 4) = 8.246.
Extracted answer: 8.246

Response:
{response}

Extracted answer: """

SCORE_PROMPT = """Decide whether a model's answer matches the standard answer of a math question. For multiple choice,
the answer is right only when it names the same option letter. For a free-form answer, it is right when it has the same
meaning and value (e.g. 0.5 m and 50 cm; equivalent expressions), wrong otherwise. Reply "Judgement: 1" for right and
"Judgement: 0" for wrong.

Question: {question}
Standard answer: {answer}
Model answer: {extraction}

Judgement: """


def _after_marker(reply: str, marker: str) -> str:
    reply = (reply or "").strip()
    if marker in reply:
        reply = reply.rsplit(marker, 1)[1]
    return reply.strip()


def heuristic_extract(response: str, multiple_choice: bool) -> str:
    """Offline stand-in for the LLM extractor (not part of the official protocol)."""
    text = (response or "").strip()
    if not text:
        return ""
    boxed = last_boxed(text, unclosed=False)
    if boxed is not None:
        cand = boxed.strip()
    else:
        m = list(re.finditer(r"(?:final answer|answer is|answer:|correct option is|correct answer is)\s*:?\s*(.+)",
                             text, flags=re.I))
        cand = m[-1].group(1).split("\n")[0].strip().rstrip(".").strip() if m else ""
    if multiple_choice:
        for src in (cand, text):
            m = re.findall(r"(?:^|[\s(*])([A-H])(?=$|[\s):.*,])", src)
            if m:
                return m[0] if src is cand else m[-1]
        return cand
    if cand:
        return cand
    nums = re.findall(r"-?\d+(?:\.\d+)?", text.replace(",", ""))
    return nums[-1] if nums else ""


def extract_answer(record: dict, response: str, *, judge: Judge | None = None, trunc_words: int | None = None
                   ) -> tuple[str, str]:
    """Step 1. Returns (extraction, method): "llm" with a judge, else "heuristic"."""
    text = "" if response is None else str(response)
    if trunc_words:
        text = " ".join(text.split()[-trunc_words:])
    if not text.strip():
        return "", "rule"
    if judge is not None:
        out = _after_marker(judge(EXTRACT_PROMPT.format(response=text)), "Extracted answer:")
        return ("" if out.lower() == "null" else out), "llm"
    return heuristic_extract(text, is_multiple_choice(record)), "heuristic"


def quick_match(extraction: str, answer: str) -> bool:
    return str(extraction).strip() == str(answer).strip()


def _judgement(reply: str) -> bool:
    m = re.findall(r"Judgement:\s*([01])", reply or "")
    if m:
        return m[-1] == "1"
    return (reply or "").strip().startswith("1")


# --- scoring ----------------------------------------------------------------------------------------------------

def score_item(record: dict, response_or_extraction: str, mode: str = "official", *, extracted: bool = False,
               judge: Judge | None = None, trunc_words: int | None = None) -> dict:
    """Score one MathVerse answer. `record` is a testmini row (question, answer, question_type, metadata, ...).
    extracted=True takes the text as the step-1 extraction."""
    check_mode(mode)
    answer = str(record.get("answer", ""))
    sid = record.get("sample_index", record.get("pid"))
    text = "" if response_or_extraction is None else str(response_or_extraction)
    if mode == "official":
        if extracted:
            extraction, method = text, "given"
        else:
            extraction, method = extract_answer(record, text, judge=judge, trunc_words=trunc_words)
        correct = quick_match(extraction, answer)
        if not correct and judge is not None and extraction:
            correct = _judgement(judge(SCORE_PROMPT.format(question=record.get("question", ""), answer=answer,
                                                           extraction=extraction)))
        return {"id": sid, "extraction": extraction, "prediction": extraction, "correct": correct,
                "unparsed": not extraction, "method": method}
    found = text if extracted else compat_extract(text)
    ans = (found if found is not None else text).strip()
    pred = ans
    if is_multiple_choice(record):
        opts = choices_of(record)
        letter = compat_choice_letter(ans, opts) if opts else single_letter(ans, 26)
        pred = letter if letter is not None else ans
        gold_letter = single_letter(answer, 26)
        if gold_letter is not None:
            answer = gold_letter  # "(C)" -> "C"
    correct = bool(pred) and quick_match(pred, answer)
    method = "rule"
    if not correct and judge is not None and pred:
        correct = _judgement(judge(SCORE_PROMPT.format(question=record.get("question", ""), answer=answer,
                                                       extraction=pred)))
        method = "llm"
    return {"id": sid, "extraction": ans, "prediction": pred, "correct": correct,
            "unparsed": found is None, "method": method}


OUTPUT_FILE = ("mathverse output files are one JSON list of testmini rows, each with model_answer (and optionally "
               "extraction), as output_templates/output_testmini.json; pass such a file or check --benchmark")


def read_outputs(path, field: str | None) -> list[dict]:
    """The rows of an official-format output file, checked (shape, item ids, answers, the field to score)."""
    rows = read_rows(path, layout="list", expected=OUTPUT_FILE, id_fields=("sample_index", "pid"),
                     required=("answer", "question_type"))
    recs = [row for _, row in rows]
    if field is not None:
        check_field(path, recs, field)
    elif not any("model_answer" in r or "extraction" in r for r in recs):
        check_field(path, recs, "model_answer")
    return recs


def rescore(outputs_path, *, mode: str = "official", field: str | None = None, judge: Judge | None = None,
            trunc_words: int | None = None, records: list[dict] | None = None) -> ScoreResult:
    """Rescore an official-format MathVerse output file (testmini rows + `model_answer`, optionally `extraction`).

    field: None = use a row's `extraction` when present (step 1 done), else extract from `model_answer`;
    or name the field to read ("model_answer" forces re-extraction, "extraction" takes it as extracted).
    """
    check_mode(mode)
    recs = records if records is not None else read_outputs(outputs_path, field)
    items = []
    for r in recs:
        f = field or ("extraction" if "extraction" in r and mode == "official" else "model_answer")
        items.append(score_item(r, r.get(f), mode, extracted=(f == "extraction"), judge=judge,
                                trunc_words=trunc_words))
    has_main = any(version(r) in MAIN_VERSIONS for r in recs)
    return score_result(mode, items, recs, {"field": field, "judge": judge is not None, "trunc_words": trunc_words,
                                            "headline": "five main versions" if has_main else "all rows",
                                            "quick_match": judge is None})


def score_result(mode: str, items: list[dict], records: list[dict], options: dict) -> ScoreResult:
    """The headline ("All") is over the five main versions when the rows hold any, else over all rows."""
    has_main = any(version(r) in MAIN_VERSIONS for r in records)
    counted = (lambda r: version(r) != TEXT_ONLY) if has_main else None
    return make_result(NAME, mode, items, records, BREAKDOWN, to_official_json, counted=counted, options=options)


def to_official_json(result: ScoreResult) -> dict:
    """Scores in the shape of the official score file: "average" ("All": the five main versions) with accuracy
    (percent string), correct, total; then per problem_version / subject / subfield {accuracy, correct, total}."""
    out: dict[str, Any] = {"average": {"accuracy": f"{result.accuracy:.2f}", "correct": result.correct,
                                       "total": result.n}}
    for cat in ("problem_version", "subject", "subfield"):
        cells = result.breakdown.get(cat, {})
        out[cat] = {v: {"accuracy": f"{c['accuracy']:.2f}", "correct": c["correct"], "total": c["n"]}
                    for v, c in cells.items()}
    return out


# --- loading and the run's output file -------------------------------------------------------------------------

SPLITS = ("testmini", "testmini_text_only", "visualizer_sample")
DEFAULT_SPLIT = "testmini"
SPLIT_ALIASES = {"text_only": "testmini_text_only", "visualizer": "visualizer_sample"}
IMAGES_HINT = ("MathVerse images are distributed through the Hugging Face hub (AI4Math/MathVerse, images.zip); "
               "unzip them there, pass --images DIR, or use --data hf.")


def hub_source(split: str) -> tuple[str, str | None, str]:
    return "AI4Math/MathVerse", "testmini_text_only" if split == "testmini_text_only" else "testmini", "testmini"


def official_file(split: str, folder: Path) -> Path:
    if split == "visualizer_sample":
        return folder / "visualizer_sample" / "mv_data_public.json"
    return folder / "data" / ("testmini_text_only.json" if split == "testmini_text_only" else "testmini.json")


def read_official(split: str, path: Path) -> tuple[list[dict], Path]:
    """(rows, the folder image paths are relative to); visualizer rows get the released testmini answers."""
    if split == "testmini" and not path.exists():
        raise MissingPath(
            f"mathverse: {path} not found. The official testmini.json (3940 rows) and its images come from the "
            "Hugging Face hub (AI4Math/MathVerse): put them there, or use --data hf; offline, --split "
            "visualizer_sample (726 items with images) and --split testmini_text_only (788 items, no images) exist.")
    rows = load_records(need_file(path, NAME))
    if split != "visualizer_sample":
        return rows, official_root(path) / "images"
    mp = path.parent / "map_to_testmini.json"
    amap = json.loads(mp.read_text(encoding="utf-8")) if mp.exists() else {}
    for r in rows:  # its README: use the released testmini answer where the problem matches one
        gold = (amap.get(str(r["pid"])) or {}).get("testmini_answer")
        if gold is not None and gold != r["answer"]:
            r["visualizer_answer"], r["answer"] = r["answer"], gold
    return rows, path.parent / "images"


def image_refs(split: str, record: dict) -> list[str]:
    return image_field(record)


def prompt(record: dict) -> str:
    """`query_cot` (what SRPO's scripts use); visualizer rows have none: the same template around the question."""
    if record.get("query_cot"):
        return record["query_cot"]
    mc = str(record.get("question_type", "")).startswith("multi")
    ask = ("provide the correct option letter, e.g., A, B, C, D, at the end" if mc
           else "provide the final value, e.g., 1, 2.5, 300, at the end")
    q = (record.get("question") or "").strip()
    if not q:
        return f"According to the question shown in the image, please first conduct reasoning, and then answer the " \
               f"question and {ask}."
    if record.get("choices"):
        q += "\nChoices:\n" + "\n".join(str(c) for c in record["choices"])
    return f"Please first conduct reasoning, and then answer the question and {ask}.\nQuestion: {q}"


def build_item(split: str, record: dict, images: list) -> BenchItem:
    return BenchItem(id=str(record.get("sample_index", record.get("pid"))), prompt=prompt(record), record=record,
                     gold=str(record.get("answer")), images=images)


def write_outputs(rows: list[tuple[BenchItem, ScoredItem]], folder: Path, model: str) -> Path:
    data = [{**without_key(item.record), "model_answer": s.response, "extraction": s.extraction,
             "true_false": s.correct} for item, s in rows]
    return atomic_write_json(folder / "outputs_mathverse.json", data, indent=1)
