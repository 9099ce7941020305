"""MathVerse (testmini) scoring.

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

import re
from typing import Any

from srpo.eval.scoring.common import (
    Judge,
    ScoreResult,
    check_field,
    check_mode,
    compat_choice_letter,
    compat_extract,
    last_boxed,
    make_result,
    read_rows,
    single_letter,
)

BENCHMARK = "mathverse"
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
    boxed = last_boxed(text)
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
    counted = (lambda r: version(r) != TEXT_ONLY) if has_main else None
    res = make_result(BENCHMARK, mode, items, recs, BREAKDOWN, counted=counted,
                      options={"field": field, "judge": judge is not None, "trunc_words": trunc_words,
                               "headline": "five main versions" if has_main else "all rows",
                               "quick_match": judge is None})
    return res


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
