"""MMMU-Pro (standard 10 options, standard 4 options, vision; CoT or direct prompts): loader, prompt, output format
and scorer.

data         -- the official repository has no data file: the published output files (gpt-4o_<setting>_cot.jsonl)
                carry the questions; images come from the Hugging Face dataset MMMU/MMMU_Pro (--data hf), or from
                --images DIR named <id>_<k>.png (standard) / <id>.png (vision). The prompt is the official CoT one
                (mmmu-pro/prompts.yaml), listing the options the model is scored against.
outputs      -- outputs_mmmu_pro.jsonl: the rows plus response, pred_indexs and if_right, as the official output
                files (rescorable).

official     -- the official option parser (mmmu-pro/evaluate.py, described in PROTOCOLS.md): the text after the
                last "Answer:" if exactly one option letter occurs in it; else MMMU's multiple-choice parser
                ("(X)", then "X ", then "X." candidates; option text for responses longer than five words; the
                candidate occurring last wins). The official parser picks a RANDOM letter when nothing matches;
                here that answer is unparsed and wrong (counted in `unparsed`), so scores are deterministic.
srpo_compat  -- the SRPO authors' generic multiple-choice rule: first <answer> block (else last \\boxed{}),
                a single option letter, else a unique option text; then `judge` as extractor; else unparsed.

Rows of the first release (September 2024) carry `shuffled_options` / `shuffled_options_answer`: both modes score
them against the shuffled options the model saw (`shown_options`).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from srpo.errors import InvalidValue
from srpo.eval.benchmarks.common import (
    Judge,
    ScoreResult,
    check_mode,
    compat_choice_letter,
    compat_extract,
    letters,
    make_result,
)
from srpo.eval.benchmarks.items import BenchItem, need_file, without_key, write_jsonl
from srpo.eval.benchmarks.rows import OutputFileError, check_field, load_records, read_rows
from srpo.eval.metrics import ScoredItem

NAME = "mmmu_pro"
SCORER = NAME

DISCIPLINES: dict[str, list[str]] = {
    "Art and Design": ["Art", "Art_Theory", "Design", "Music"],
    "Business": ["Accounting", "Economics", "Finance", "Manage", "Marketing"],
    "Science": ["Biology", "Chemistry", "Geography", "Math", "Physics"],
    "Health and Medicine": ["Basic_Medical_Science", "Clinical_Medicine", "Diagnostics_and_Laboratory_Medicine",
                            "Pharmacy", "Public_Health"],
    "Humanities and Social Science": ["History", "Literature", "Sociology", "Psychology"],
    "Tech and Engineering": ["Agriculture", "Architecture_and_Engineering", "Computer_Science", "Electronics",
                             "Energy_and_Power", "Materials", "Mechanical_Engineering"],
}
SUBJECT_TO_DISCIPLINE = {s: d for d, subs in DISCIPLINES.items() for s in subs}


def _subject(rec: dict) -> str | None:
    subj = rec.get("subject")
    if subj is None and isinstance(rec.get("id"), str) and rec["id"].count("_") >= 2:
        subj = rec["id"].split("_", 1)[1].rsplit("_", 1)[0]  # validation_Art_Theory_12 -> Art_Theory
    return subj


BREAKDOWN = {
    "discipline": lambda rec: SUBJECT_TO_DISCIPLINE.get(_subject(rec) or "", None),
    "subject": _subject,
    "topic_difficulty": lambda rec: rec.get("topic_difficulty"),
}


def parse_options(options: Any) -> list[str]:
    """Options as stored in MMMU-Pro rows: a list, or the string repr of a Python list."""
    if isinstance(options, str):
        try:
            options = ast.literal_eval(options)
        except (ValueError, SyntaxError):
            raise InvalidValue(f"options {options[:80]!r} are not a list of option texts") from None
    if not isinstance(options, (list, tuple)) or not options:
        raise InvalidValue(f"options {options!r} are not a non-empty list of option texts")
    return [str(o) for o in options]


SHUFFLED = ("shuffled_options", "shuffled_options_answer")  # the first (September 2024) release's rows


def shown_options(record: dict) -> tuple[list[str], Any]:
    """(the options the model was shown, the answer letter among them).

    Rows of the first MMMU-Pro release (September 2024) carry `shuffled_options` -- the option list in the order the
    model saw it -- and `shuffled_options_answer`, the answer letter within that list; `options` / `answer` keep the
    original order. Such a row is scored against the shuffled list, never the original: the same letter names
    another option there. A row with only one of the two fields cannot be scored either way and is refused."""
    has = [record.get(f) not in (None, "", []) for f in SHUFFLED]
    if not any(has):
        if "answer" not in record:
            raise InvalidValue(f"item {record.get('id')!r} has no 'answer' field (the answer letter)")
        return parse_options(record.get("options")), record["answer"]
    if not all(has):
        given, lacking = (SHUFFLED if has[0] else SHUFFLED[::-1])
        raise InvalidValue(f"item {record.get('id')!r} has {given!r} but no {lacking!r}; a row of the first "
                           "(September 2024) release needs both, to be scored against the options the model saw")
    options, answer = parse_options(record["shuffled_options"]), record["shuffled_options_answer"]
    if answer not in letters(len(options)):
        raise InvalidValue(f"item {record.get('id')!r}: shuffled_options_answer {answer!r} is not one of the letters "
                           f"{letters(len(options))[0]}..{letters(len(options))[-1]} of its {len(options)} "
                           "shuffled_options")
    return options, answer


def parse_official(response: Any, options: list[str]) -> str | None:
    """The official MMMU-Pro parser without its random fallback: a letter, or None when nothing matches."""
    all_choices = letters(len(options))
    index2ans = dict(zip(all_choices, options))
    if not isinstance(response, str):
        response = ""
    pos = response.rfind("Answer:")
    if pos != -1:
        tail = response[pos + len("Answer:"):].strip()
        found = [c for c in all_choices if c in tail]
        if len(found) == 1:
            return found[0]
    for ch in (",", ".", "!", "?", ";", ":", "'"):
        response = response.strip(ch)
    response = " " + response + " "
    candidates: list[str] = []
    with_brackets = False
    by_index = True
    for c in all_choices:
        if f"({c})" in response:
            candidates.append(c)
            with_brackets = True
    if not candidates:
        candidates = [c for c in all_choices if f"{c} " in response]
    if not candidates:
        candidates = [c for c in all_choices if f"{c}." in response]
    if not candidates and len(response.split()) > 5:
        low = response.lower()
        candidates = [c for c in all_choices if index2ans[c].lower() in low]
        by_index = not candidates
    if not candidates:
        return None
    if len(candidates) == 1:
        return candidates[0]
    if by_index:
        pat = "({})" if with_brackets else " {} "
        starts = [response.rfind(pat.format(c)) for c in candidates]
    else:
        low = response.lower()
        starts = [low.rfind(index2ans[c].lower()) for c in candidates]
    return candidates[starts.index(max(starts))]  # the first of equal maxima, like argmax


EXTRACT_PROMPT = """Read a model's response to a multiple-choice question and reply with only the letter of the
option it finally chose (A, B, C, ...), or "None" if it chose none.

Options:
{options}

Response:
{response}

Letter: """


def score_item(record: dict, response_or_extraction: str, mode: str = "official", *, judge: Judge | None = None
               ) -> dict:
    """Score one MMMU-Pro response. `record` needs `options` (list or its string repr) and `answer` (letter), or,
    in a first-release row, `shuffled_options` and `shuffled_options_answer`, which are then what is scored."""
    check_mode(mode)
    options, answer = shown_options(record)
    response = response_or_extraction
    method = "rule"
    if mode == "official":
        extraction = response
        pred = parse_official(response, options)
    else:
        extraction = compat_extract(response or "") or (response or "")
        pred = compat_choice_letter(extraction, options)
        if pred is None and judge is not None:
            opts = "\n".join(f"({c}) {o}" for c, o in zip(letters(len(options)), options))
            reply = judge(EXTRACT_PROMPT.format(options=opts, response=response))
            extraction = reply.strip()
            pred, method = compat_choice_letter(extraction, options), "llm"
    return {"id": record.get("id"), "extraction": pred if mode == "official" else extraction, "prediction": pred,
            "correct": pred is not None and pred == answer, "unparsed": pred is None,
            "method": method}


OUTPUT_FILE = ("mmmu_pro output files are JSONL rows with id, options, answer and response (as "
               "gpt-4o_<setting>_<cot|direct>.jsonl); pass such a file or check --benchmark")


def read_outputs(path, field: str) -> list[dict]:
    """The rows of an official-format output file, checked: shape, ids, options and answers (shuffled or not)."""
    rows = read_rows(path, layout="jsonl", expected=OUTPUT_FILE, id_fields=("id",), required=("options",))
    for place, row in rows:
        try:
            shown_options(row)
        except InvalidValue as exc:
            raise OutputFileError(f"{place}: {exc}") from None
    recs = [row for _, row in rows]
    check_field(path, recs, field)
    return recs


def rescore(outputs_path, *, mode: str = "official", field: str = "response", judge: Judge | None = None,
            records: list[dict] | None = None) -> ScoreResult:
    """Rescore an official MMMU-Pro output jsonl (rows with options, answer, subject, response); rows of the first
    release are scored against their shuffled options (`shown_options`)."""
    check_mode(mode)
    recs = records if records is not None else read_outputs(outputs_path, field)
    items = [score_item(r, r.get(field), mode, judge=judge) for r in recs]
    return score_result(mode, items, recs, {"field": field, "judge": judge is not None})


def score_result(mode: str, items: list[dict], records: list[dict], options: dict) -> ScoreResult:
    return make_result(NAME, mode, items, records, BREAKDOWN, to_official_json, options=options)


def to_official_json(result: ScoreResult) -> dict:
    """MMMU-style results: {"Overall": {num, acc}, "Overall-<discipline>": ..., "<subject>": ...}; acc is a
    fraction rounded to 3 decimals as MMMU prints it, plus `correct` and the percent `accuracy`."""

    def cell(c: dict) -> dict:
        return {"num": c["n"], "acc": round(c["correct"] / c["n"], 3) if c["n"] else 0.0,
                "correct": c["correct"], "accuracy": c["accuracy"]}

    out = {"Overall": cell({"n": result.n, "correct": result.correct, "accuracy": result.accuracy}),
           "unparsed": result.unparsed}
    for disc, c in result.breakdown.get("discipline", {}).items():
        out[f"Overall-{disc}"] = cell(c)
    for subj, c in result.breakdown.get("subject", {}).items():
        out[subj] = cell(c)
    return out


# --- loading and the run's output file -------------------------------------------------------------------------

SPLITS = ("standard10", "standard4", "vision")
DEFAULT_SPLIT = "standard10"
SPLIT_ALIASES = {"standard": "standard10", "standard-10": "standard10", "standard (10 options)": "standard10",
                 "standard-4": "standard4", "standard (4 options)": "standard4"}
IMAGES_HINT = ("MMMU-Pro images are only distributed through the Hugging Face dataset MMMU/MMMU_Pro: use --data hf "
               "or a datasets save_to_disk folder, or put them in --images DIR named <id>_<k>.png (standard) / "
               "<id>.png (vision).")
PROMPTS = {  # mmmu-pro/prompts.yaml, cot
    "vision": "Write out the multiple-choice question in the image and then solve it. The last line of your response "
              "should be of the following format: 'Answer: $LETTER' (without quotes) where LETTER is one of options. "
              "Think step by step before answering.",
    "standard": "Answer the preceding multiple choice question. The last line of your response should be of the "
                "following format: 'Answer: $LETTER' (without quotes) where LETTER is one of options. Think step by "
                "step before answering.",
}


def hub_source(split: str) -> tuple[str, str | None, str]:
    config = {"standard10": "standard (10 options)", "standard4": "standard (4 options)"}.get(split, split)
    return "MMMU/MMMU_Pro", config, "test"


def official_file(split: str, folder: Path) -> Path:
    """The published output file of the split: it carries the questions (the official repository has no data file)."""
    stem = {"vision": "vision", "standard10": "standard(10 options)", "standard4": "standard(4 options)"}[split]
    return folder / f"gpt-4o_{stem}_cot.jsonl"


def read_official(split: str, path: Path) -> tuple[list[dict], Path]:
    return load_records(need_file(path, NAME)), path.parent / "images"


def image_refs(split: str, record: dict) -> list[str]:
    """Image file names under --images: <id>.png (vision) or <id>_<k>.png per <image k> placeholder (standard)."""
    if split == "vision":
        return [f"{record['id']}.png"]
    text = f"{record.get('question', '')} {record.get('options', '')}"
    ks = sorted({int(k) for k in re.findall(r"<image (\d+)>", text)}) or [1]
    return [f"{record['id']}_{k}.png" for k in ks]


def prompt(record: dict, split: str, options: list[str]) -> str:
    if split == "vision":
        return PROMPTS["vision"]
    opts = "\n".join(f"{c}. {o}" for c, o in zip(letters(len(options)), options))
    return f"{record['question']}\n{opts}\n{PROMPTS['standard']}"


def build_item(split: str, record: dict, images: list) -> BenchItem:
    """The options scored are the ones shown (the shuffled ones in first-release rows), so the prompt lists those."""
    try:
        options, answer = shown_options(record)
    except InvalidValue as exc:
        raise InvalidValue(f"mmmu_pro {split}: {exc}") from None
    return BenchItem(id=str(record["id"]), prompt=prompt(record, split, options), record=record, gold=str(answer),
                     images=images)


def write_outputs(rows: list[tuple[BenchItem, ScoredItem]], folder: Path, model: str) -> Path:
    return write_jsonl(folder / "outputs_mmmu_pro.jsonl", [
        {**without_key(item.record), "response": s.response, "pred_indexs": s.prediction, "if_right": s.correct}
        for item, s in rows])
