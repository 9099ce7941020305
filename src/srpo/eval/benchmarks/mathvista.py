"""MathVista (testmini): loader, prompt, output format and scorer.

data         -- data/testmini.json of the official folder, prompts from data/query.json beside it (the official
                `query`: question, hint, choices); images under images/ (distributed through the Hugging Face hub).
outputs      -- outputs_mathvista.json: one object keyed by pid, each the testmini row plus query, response,
                extraction, prediction and true_false, as results/<model>/output_<name>.json (rescorable).

official     -- the official pipeline (extract_answer.py + calculate_score.py, described in PROTOCOLS.md):
                extraction (rules, then an LLM extractor) -> normalisation by question/answer type
                (multiple choice always lands on a choice: letter, else nearest choice by edit distance;
                integer -> str(int(float(x))); float -> str(round(float(x), precision)); list -> str(x))
                -> exact string equality with the gold answer.
                `legacy_int=True` reproduces the older normaliser (integer -> str(int(x)), no float()) that
                scored three of the published output files (idefics, instruct_blip2, mplugowl).
srpo_compat  -- the SRPO authors' script: first <answer> block (else last \\boxed{}); multiple choice compared as
                letters with no nearest-choice fallback; integers by int equality; floats by exact float
                equality (no precision rounding); lists compared element-wise (their script marks every list
                answer wrong; we do not reproduce that bug).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from srpo.answers import last_boxed
from srpo.eval.benchmarks.common import (
    Judge,
    ScoreResult,
    check_mode,
    compat_choice_letter,
    compat_extract,
    letters,
    levenshtein,
    make_result,
)
from srpo.eval.benchmarks.items import (
    BenchItem,
    image_field,
    need_file,
    official_root,
    without_key,
)
from srpo.eval.benchmarks.rows import OutputFileError, check_field, load_records, read_rows
from srpo.eval.metrics import ScoredItem
from srpo.files import atomic_write_json

NAME = "mathvista"
SCORER = NAME
CATEGORIES = ("question_type", "answer_type", "language", "source", "category", "task", "context", "grade", "skills")


def _meta(rec: dict, key: str):
    if key in ("question_type", "answer_type"):
        return rec.get(key)
    return (rec.get("metadata") or {}).get(key)


BREAKDOWN = {cat: (lambda rec, _c=cat: _meta(rec, _c)) for cat in CATEGORIES}


# --- official: normalisation ---------------------------------------------------------------------------------

_PAREN_LETTER = re.compile(r"\(([a-zA-Z])\)")


def nearest_choice(text: str, choices: list[str]) -> str:
    """The choice with the smallest edit distance to text (the first one on ties)."""
    dists = [levenshtein(text, str(c)) for c in choices]
    return choices[dists.index(min(dists))]


def normalize_extraction(extraction: Any, record: dict, *, legacy_int: bool = False,
                         ignore_empty: bool = False) -> str | None:
    """The official normaliser: the prediction string compared with `answer`, or None when conversion fails."""
    qtype, atype = record.get("question_type"), record.get("answer_type")
    if extraction is None:
        extraction = ""
    if qtype == "multi_choice":
        choices = record["choices"]
        text = extraction.strip() if isinstance(extraction, str) else str(extraction)
        if ignore_empty and not text:
            return None
        m = _PAREN_LETTER.findall(text)
        if m:
            text = m[0].upper()
        letts = letters(len(choices))
        if text in letts:
            return choices[letts.index(text)]
        return nearest_choice(text, choices)
    try:
        if atype == "integer":
            return str(int(extraction)) if legacy_int else str(int(float(extraction)))
        if atype == "float":
            return str(round(float(extraction), int(record.get("precision"))))
        if atype == "list":
            return str(extraction)
    except (TypeError, ValueError, OverflowError):
        return None
    return None


# --- official: extraction (response -> extraction) -------------------------------------------------------------

_QUICK = re.compile(r'The answer is "(.*)"\.')

EXTRACT_PROMPT = """Read a model's response to a question and copy out only its final answer.
Reply in the form "Extracted answer: <answer>". For a multiple-choice question give the option text
(or the letter if the response only names a letter); for a numeric question give just the number, without units;
for a list give a Python-style list. If the response gives no answer, reply "Extracted answer: ".

Example
Question: Which number is larger?
Choices:
(A) 3
(B) 7
Response: Comparing the two numbers, 7 is larger, so the answer is (B).
Extracted answer: 7

Example
Question: How many apples are on the table? (integer answer)
Response: I count 3 red apples and 2 green apples, 5 apples in total.
Extracted answer: 5

Question and hint:
{query}

Response:
{response}

Extracted answer: """


def _parse_extractor_reply(reply: str) -> str:
    reply = (reply or "").strip()
    if "Extracted answer:" in reply:
        reply = reply.rsplit("Extracted answer:", 1)[1]
    return reply.strip()


def _heuristic_extract(record: dict, response: str) -> str:
    """Offline stand-in for the LLM extractor (not part of the official protocol): last \\boxed{}, else the text
    after the last 'answer is' / 'Answer:', else for multiple choice the last '(X)', else the last number."""
    boxed = last_boxed(response, unclosed=False)
    if boxed is not None:
        return boxed.strip()
    m = list(re.finditer(r"(?:answer is|answer:)\s*(.+)", response, flags=re.I))
    if m:
        return m[-1].group(1).strip().split("\n")[0].rstrip(".").strip()
    if record.get("question_type") == "multi_choice":
        m = re.findall(r"\(([A-Z])\)", response)
        if m:
            return m[-1]
    nums = re.findall(r"-?\d+(?:\.\d+)?", response.replace(",", ""))
    return nums[-1] if nums else ""


def extract_answer(record: dict, response: str, *, judge: Judge | None = None, quick: bool = True) -> tuple[str, str]:
    """Official extraction step. Returns (extraction, method) with method rule / llm / heuristic."""
    response = (response or "").strip() if isinstance(response, str) else str(response)
    if not response:
        return "", "rule"
    choices = record.get("choices") or []
    if record.get("question_type") == "multi_choice" and response in choices:
        return response, "rule"
    if record.get("answer_type") == "integer":
        try:
            return str(int(response)), "rule"
        except ValueError:
            pass
    if record.get("answer_type") == "float":
        try:
            return str(float(response)), "rule"
        except ValueError:
            pass
    if quick:
        m = _QUICK.search(response)
        if m:
            return m.group(1), "rule"
    if judge is not None:
        query = record.get("query") or record.get("question", "")
        return _parse_extractor_reply(judge(EXTRACT_PROMPT.format(query=query, response=response))), "llm"
    return _heuristic_extract(record, response), "heuristic"


# --- srpo_compat ------------------------------------------------------------------------------------------------

def _gold_letter(record: dict) -> str | None:
    choices = record.get("choices") or []
    if record.get("answer") in choices:
        return letters(len(choices))[choices.index(record["answer"])]
    return None


def _parse_list(s: str) -> list[str] | None:
    s = s.strip()
    if not (s.startswith("[") and s.endswith("]")):
        return None
    parts = [p.strip().strip("'\"") for p in s[1:-1].split(",")]
    out = []
    for p in parts:
        try:
            f = float(p)
            out.append(repr(int(f)) if f == int(f) else repr(f))
        except ValueError:
            out.append(p.lower())
    return out


def _compat_prepass(record: dict, answer: str) -> str | None:
    """The compat rule pre-pass: a normalised prediction, or None when the rules do not decide."""
    answer = answer.strip()
    if record.get("question_type") == "multi_choice":
        return compat_choice_letter(answer, record["choices"])
    atype = record.get("answer_type")
    try:
        if atype == "integer":
            return str(int(answer))
        if atype == "float":
            return repr(float(answer))
    except ValueError:
        return None
    if atype == "list":
        return answer if _parse_list(answer) is not None else None
    return answer or None


def _compat_correct(record: dict, pred: str) -> bool:
    if record.get("question_type") == "multi_choice":
        return pred == _gold_letter(record)
    atype, gold = record.get("answer_type"), str(record.get("answer"))
    if atype == "integer":
        return int(pred) == int(float(gold))
    if atype == "float":
        return float(pred) == float(gold)
    if atype == "list":
        return _parse_list(pred) == _parse_list(gold)
    return pred.strip().lower() == gold.strip().lower()


def score_item(record: dict, response_or_extraction: str, mode: str = "official", *, extracted: bool = False,
               judge: Judge | None = None, legacy_int: bool = False, ignore_empty: bool = False) -> dict:
    """Score one MathVista answer. `record` is a row of testmini.json (with `query` for the LLM extractor).

    extracted=False: the text is a raw model response (the extraction step runs: official rules, then `judge`
    as the LLM extractor, else an offline heuristic; compat: <answer>/\\boxed{}, rules, then `judge`).
    extracted=True: the text is already an extracted answer (e.g. the `extraction` field of official outputs).
    """
    check_mode(mode)
    pid = record.get("pid", record.get("_key"))
    text = response_or_extraction
    if mode == "official":
        method = "given"
        if not extracted:
            text, method = extract_answer(record, text, judge=judge)
        pred = normalize_extraction(text, record, legacy_int=legacy_int, ignore_empty=ignore_empty)
        correct = pred is not None and pred == record.get("answer")
        return {"id": pid, "extraction": text, "prediction": pred, "correct": correct,
                "unparsed": pred is None, "method": method}
    # srpo_compat
    if text is None:
        text = ""
    found = text if extracted else compat_extract(text)
    ans = found if found is not None else text
    pred = _compat_prepass(record, ans)
    method = "rule"
    if pred is None and judge is not None:
        query = record.get("query") or record.get("question", "")
        ans = _parse_extractor_reply(judge(EXTRACT_PROMPT.format(query=query, response=text)))
        pred, method = _compat_prepass(record, ans), "llm"
    correct = pred is not None and _compat_correct(record, pred)
    return {"id": pid, "extraction": ans, "prediction": pred, "correct": correct, "unparsed": pred is None,
            "method": method}


OUTPUT_FILE = ("mathvista output files are one JSON object keyed by pid, each item the testmini row plus response / "
               "extraction (as results/<model>/output_<name>.json); pass such a file or check --benchmark")


def read_outputs(path, field: str) -> list[dict]:
    """The rows of an official-format output file, checked (shape, the fields the normaliser reads, `field`)."""
    rows = read_rows(path, layout="keyed", expected=OUTPUT_FILE, required=("answer", "question_type", "answer_type"))
    for place, row in rows:
        if row["question_type"] == "multi_choice" and not (isinstance(row.get("choices"), list) and row["choices"]):
            raise OutputFileError(f"{place}: a multi_choice item without a 'choices' list; every multiple-choice "
                                  "row needs its choices to be scored")
    recs = [row for _, row in rows]
    check_field(path, recs, field)
    return recs


def rescore(outputs_path, *, mode: str = "official", field: str = "extraction", legacy_int: bool = False,
            ignore_empty: bool = False, judge: Judge | None = None, records: list[dict] | None = None
            ) -> ScoreResult:
    """Rescore an official-format output file (dict pid -> item with annotation fields + response/extraction).

    field="extraction" scores the stored extraction (the official calculate_score step); field="response"
    re-runs the extraction step on the raw response. A missing field counts as an empty string.
    """
    check_mode(mode)
    recs = records if records is not None else read_outputs(outputs_path, field)
    items = [
        score_item(r, r.get(field, ""), mode, extracted=(field != "response"), judge=judge,
                   legacy_int=legacy_int, ignore_empty=ignore_empty)
        for r in recs
    ]
    return score_result(mode, items, recs, {"field": field, "legacy_int": legacy_int, "ignore_empty": ignore_empty,
                                            "judge": judge is not None})


def score_result(mode: str, items: list[dict], records: list[dict], options: dict) -> ScoreResult:
    return make_result(NAME, mode, items, records, BREAKDOWN, to_official_json, options=options)


def to_official_json(result: ScoreResult) -> dict:
    """Shaped like results/<model>/scores_<name>.json: average {accuracy (str), correct, total}, then each
    category value {accuracy ('%.2f'), correct, total}, values sorted by accuracy descending."""
    out: dict[str, Any] = {"average": {"accuracy": str(result.accuracy), "correct": result.correct,
                                       "total": result.n}}
    for cat in CATEGORIES:
        cells = result.breakdown.get(cat, {})
        ordered = sorted(cells.items(), key=lambda kv: kv[1]["correct"] / kv[1]["n"] if kv[1]["n"] else 0,
                         reverse=True)
        out[cat] = {v: {"accuracy": f"{c['correct'] / c['n'] * 100:.2f}" if c["n"] else "0.00",
                        "correct": c["correct"], "total": c["n"]} for v, c in ordered}
    return out


# --- loading and the run's output file -------------------------------------------------------------------------

SPLITS = ("testmini",)
DEFAULT_SPLIT = "testmini"
SPLIT_ALIASES: dict[str, str] = {}
IMAGES_HINT = ("MathVista images are distributed through the Hugging Face hub (AI4Math/MathVista, images.zip); "
               "unzip them there, pass --images DIR, or use --data hf.")


def hub_source(split: str) -> tuple[str, str | None, str]:
    return "AI4Math/MathVista", None, split


def official_file(split: str, folder: Path) -> Path:
    return folder / "data" / "testmini.json"


def read_official(split: str, path: Path) -> tuple[list[dict], Path]:
    """(rows with their official `query` from query.json beside the file, the folder image paths are relative to)."""
    rows = load_records(need_file(path, NAME))
    queries = path.parent / "query.json"
    if queries.exists():
        qmap = json.loads(queries.read_text(encoding="utf-8"))
        rows = [{**r, "query": r.get("query") or qmap.get(str(r.get("pid", r.get("_key"))))} for r in rows]
    return rows, official_root(path)


def image_refs(split: str, record: dict) -> list[str]:
    return image_field(record)


def prompt(record: dict) -> str:
    if record.get("query"):
        return record["query"]
    q = record["question"]
    if record.get("choices"):
        q += "\nChoices:\n" + "\n".join(f"({c}) {t}" for c, t in zip(letters(len(record["choices"])),
                                                                    record["choices"]))
    return q


def build_item(split: str, record: dict, images: list) -> BenchItem:
    return BenchItem(id=str(record.get("pid", record.get("_key"))), prompt=prompt(record), record=record,
                     gold=str(record.get("answer")), images=images)


def write_outputs(rows: list[tuple[BenchItem, ScoredItem]], folder: Path, model: str) -> Path:
    data = {item.id: {**without_key(item.record), "query": item.prompt, "response": s.response,
                      "extraction": s.extraction, "prediction": s.prediction, "true_false": s.correct}
            for item, s in rows}
    return atomic_write_json(folder / "outputs_mathvista.json", data, indent=1)
