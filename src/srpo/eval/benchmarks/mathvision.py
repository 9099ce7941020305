# Over 400 lines: the official MATH-V extraction, normaliser and judge, ported whole to reproduce the published scores.
"""MathVision (MATH-V): loader, prompt, output format and scorer.

data         -- data/test.jsonl (3040 rows) or data/testmini.jsonl (304) of the official folder, images under images/
                (the offline copy holds the testmini ones). The prompt is the question, plus "(A) ..." option lines
                when the options are not the bare letters (SRPO's scripts).
outputs      -- outputs_mathvision.jsonl: rows of id, model, response, model_answer and correct, as
                outputs/**/<Model>.jsonl (rescorable; the answers are read from the data file).

official     -- the official rule pipeline (evaluate.py + utils.py, described in PROTOCOLS.md): rule extraction of the
                answer from the response (option-letter patterns, "... is <number>", the text after "the answer
                is", the last \\boxed{}), MATH-style string normalisation, then an equivalence judge (lower-cased
                string equality, else numeric equality of the two expressions parsed from LaTeX, tuples element
                by element); a multiple-choice item is right when the prediction equals the letter or the text of
                the gold option. The official code parses LaTeX with latex2sympy2 1.9.1; its antlr4 pin clashes with
                math-verify's, so this module parses with latex2sympy2_extended (math-verify's parser) -- the
                published scores are reproduced all the same (tests/test_eval_scoring.py).
srpo_compat  -- the SRPO authors' script: first <answer> block (else last \\boxed{}); lower-case string equality,
                else numeric equality within 1e-6; multiple choice by letter (a unique option text also maps to
                its letter).
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from srpo.errors import MissingPath
from srpo.eval.benchmarks.common import (
    Judge,
    ScoreResult,
    check_mode,
    compat_choice_letter,
    compat_extract,
    data_dir,
    letters,
    make_result,
)
from srpo.eval.benchmarks.items import BenchItem, image_field, need_file, official_root, write_jsonl
from srpo.eval.benchmarks.rows import OutputFileError, check_field, load_records, read_rows
from srpo.eval.metrics import ScoredItem

NAME = "mathvision"
SCORER = NAME

BREAKDOWN = {
    "level": lambda rec: f"level{rec['level']}" if rec.get("level") is not None else None,
    "subject": lambda rec: rec.get("subject"),
    "subject_level": lambda rec: f"{rec['subject']}_level{rec['level']}" if rec.get("subject") else None,
}


# --- MATH-style string normalisation ----------------------------------------------------------------------------

def _fix_fracs(s: str) -> str:
    """\\frac12 -> \\frac{1}{2}, \\frac1b -> \\frac{1}{b}, \\frac1{b} -> \\frac{1}{b}."""
    parts = s.split("\\frac")
    out = parts[0]
    for part in parts[1:]:
        out += "\\frac"
        if part.startswith("{"):
            out += part
            continue
        if len(part) < 2:
            return s
        a, b, rest = part[0], part[1], part[2:]
        out += "{" + a + "}" + ("{" + b + "}" if b != "{" else b) + rest
    return out


def _fix_a_slash_b(s: str) -> str:
    """'3/4' -> '\\frac{3}{4}' when both sides are plain integers."""
    parts = s.split("/")
    if len(parts) != 2:
        return s
    try:
        a, b = int(parts[0]), int(parts[1])
    except ValueError:
        return s
    if s != f"{a}/{b}":
        return s
    return "\\frac{" + str(a) + "}{" + str(b) + "}"


def _fix_sqrt(s: str) -> str:
    """\\sqrt3 -> \\sqrt{3}."""
    if "\\sqrt" not in s:
        return s
    parts = s.split("\\sqrt")
    out = parts[0]
    for part in parts[1:]:
        if part and part[0] != "{":
            out += "\\sqrt{" + part[0] + "}" + part[1:]
        else:
            out += "\\sqrt" + part
    return out


# MATH's \frac12 -> \frac{1}{2} rewrite: off, because the official MathVision extraction does not apply it
# (the published model answers keep "\frac14", "\frac19", ...). Kept for reference.
FIX_FRACS = False


def strip_math_string(s: str) -> str:
    """The MATH dataset's answer normalisation (line breaks, \\!, tfrac/dfrac, \\left/\\right, degrees, dollars,
    unit text, percent, leading '.', short 'k=' prefixes, sqrt/frac braces, spaces, 0.5, a/b)."""
    s = s.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "")
    s = s.replace("\\$", "").replace("$", "")
    if "\\text{ " in s:
        s = s.split("\\text{ ")[0]
    s = s.replace("\\%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        s = sides[1]
    s = _fix_sqrt(s)
    s = s.replace(" ", "")
    if FIX_FRACS:
        s = _fix_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _fix_a_slash_b(s)


_BOXED_GREEDY = re.compile(r"oxed\{(.*)\}", re.S)


def find_math_answer(s: str) -> str:
    """Lower-case, keep the (last) \\boxed{} content, the part after the last '=' / '\\approx', drop spaces, text
    macros, \\left/\\right, degrees and a few units, then the MATH normalisation."""
    s = s.lower()
    s = s.replace("{}", "")
    found = _BOXED_GREEDY.findall(s)
    ans = found[-1] if found else s
    close, open_ = ans.find("}"), ans.find("{")
    if close != -1 and (open_ == -1 or close < open_):
        ans = ans.split("}")[0]
    ans = ans.split("=")[-1]
    ans = ans.split("\\approx")[-1]
    for old, new in ((" ", ""), ("\\,", ""), ("∞", "\\infty"), ("+\\infty", "\\infty"), ("\\\\", "\\"),
                     ("\n", ""), ("\\text", ""), ("\\mbox", ""), ("bmatrix", "pmatrix"), ("\\left", ""),
                     ("\\right", ""), ("^{\\circ}", ""), ("^\\circ", ""), ("{m}^3", ""), ("m^3", ""),
                     ("{units}", ""), ("units", ""), ("{km}", ""), ("km", "")):
        ans = ans.replace(old, new)
    return strip_math_string(ans)


# --- official extraction ----------------------------------------------------------------------------------------

_FLAGS = ("the final answer is", "the answer is", "the correct answer is", "the answer should be")


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def extract_answer(response: Any) -> str:
    """Official rule extraction: response -> model_answer (lower-case, normalised)."""
    ans = str(response if response is not None else "").strip()
    for c in "ABCDE":
        if (ans.endswith(f" {c}.") or ans.endswith(f" ({c}).") or ans.startswith(f"{c}\n")
                or ans.startswith(f"({c})\n") or ans.startswith(f"({c}) {c}\n")):
            ans = c
    tail = ans.split("is ")[-1].rstrip(".")
    if _is_number(tail):
        ans = tail
    if "oxed{" not in ans:
        for flag in _FLAGS:
            for f in (flag, flag.replace("the", "The")):
                before = ans
                ans = ans.split(f)[-1].strip()
                if f in before:
                    ans = ans.split("\n")[0].split(". ")[0]
    elif ans.count("oxed{") > 1:
        ans = "\\boxed{" + ans.split("oxed{")[-1]
    ans = find_math_answer(ans)
    for c in "abcde":
        ans = ans.replace(f"({c})", c)
    for c in "abcde":
        ans = ans.replace("{" + c + "}", c)
    return ans.rstrip(".").lstrip(":").strip()


# --- official equivalence ---------------------------------------------------------------------------------------

_PLAIN_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)$")
_COMMAND = re.compile(r"\\[a-zA-Z]+")
_FREE_LETTER = re.compile(r"[a-df-zA-DF-Z]")  # any letter but e (Euler's number) outside a LaTeX command
# Constructs the official parser (latex2sympy2 1.9.1) has no rule for: such an expression has no numeric value.
_UNKNOWN_TO_OFFICIAL = ("\\circ", "\\!", "\\boxed", "\\fbox")


def _parsed_prefix(s: str) -> str:
    """The part of s that the official (ANTLR) parser consumes: its start rule does not require end of input, so
    parsing stops silently at a '}' that closes nothing or at a '.' that is not part of a number."""
    depth = 0
    for i, ch in enumerate(s):
        if ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                return s[:i]
            depth -= 1
        elif ch == "." and not (i + 1 < len(s) and s[i + 1].isdigit()):
            return s[:i]
    return s


def _strip_outer_braces(s: str) -> str:
    while len(s) >= 2 and s[0] == "{" and s[-1] == "}" and _parsed_prefix(s[1:-1]) == s[1:-1]:
        s = s[1:-1]
    return s


@lru_cache(maxsize=65536)
def numeric_value(s: str) -> float | None:
    """The value of a LaTeX/plain expression as a float, or None when it has no numeric value (free symbols,
    unparsable, complex), emulating what the official parser (latex2sympy2 1.9.1) accepts: parsed with
    latex2sympy2_extended; plain numbers and letter words skip the parser."""
    s = s.replace("$", "").replace("\\displaystyle", "").strip()
    s = _strip_outer_braces(_parsed_prefix(s).strip())
    if not s or not s.isascii() or any(tok in s for tok in _UNKNOWN_TO_OFFICIAL):
        return None
    if _PLAIN_NUMBER.match(s):
        return float(s)
    if _FREE_LETTER.search(_COMMAND.sub(" ", s)):
        return None  # a variable: the official parser gives a symbolic product, never a number
    try:
        expr = _latex2sympy(s)
        if getattr(expr, "free_symbols", None):
            return None
        val = complex(expr.evalf())
    except Exception:  # noqa: BLE001 -- any parser/evaluation failure means "not a number"
        return None
    if val.imag != 0 or math.isnan(val.real):
        return None
    return val.real


def _latex2sympy(s: str):
    from latex2sympy2_extended import latex2sympy
    from latex2sympy2_extended.latex2sympy2 import ConversionConfig
    from latex2sympy2_extended.math_normalization import NormalizationConfig

    return latex2sympy(
        s,
        normalization_config=NormalizationConfig(basic_latex=False, units=False, malformed_operators=False,
                                                 nits=False, boxed="none", equations=False),
        conversion_config=ConversionConfig(interpret_as_mixed_fractions=False, interpret_simple_eq_as_assignment=False,
                                           interpret_contains_as_eq=False, lowercase_symbols=False),
    )


def _close(a: str, b: str) -> bool:
    va, vb = numeric_value(a), numeric_value(b)
    if va is None or vb is None:
        return False
    if math.isinf(va) or math.isinf(vb):
        return va == vb
    return round(va, 2) == round(vb, 2)


def _as_tuple(s: str) -> list[str] | None:
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]" and "," in s:
        return s[1:-1].split(",")
    return None


def is_equal(gt: Any, pred: Any) -> bool:
    """Official equivalence judge: lower-cased string equality, else tuples element by element, else the numeric
    values of the two expressions rounded to two decimals."""
    gt, pred = str(gt).lower().strip(), str(pred).lower().strip()
    if not gt or not pred:
        return False
    if gt == pred:
        return True
    tg, tp = _as_tuple(gt), _as_tuple(pred)
    if tg is not None and tp is not None:
        return len(tg) == len(tp) and all(x.strip() == y.strip() or _close(x, y) for x, y in zip(tg, tp))
    return _close(gt, pred)


# --- srpo_compat ------------------------------------------------------------------------------------------------

def _compat_number(s: str) -> float | None:
    try:
        return float(s.replace(",", "").strip())
    except ValueError:
        pass
    try:
        expr = _latex2sympy(s.replace("$", ""))
        if getattr(expr, "free_symbols", None):
            return None
        val = complex(expr.evalf())
        return val.real if val.imag == 0 else None
    except Exception:  # noqa: BLE001
        return None


def _compat_equal(gold: str, pred: str) -> bool:
    g, p = gold.strip().lower(), pred.strip().lower()
    if g == p:
        return True
    a, b = _compat_number(g), _compat_number(p)
    return a is not None and b is not None and abs(a - b) < 1e-6


EXTRACT_PROMPT = """Read a model's response to a math problem and reply with only its final answer (an option letter for
a multiple-choice problem, else the value or expression), or "None" if it gives no answer.

Problem:
{question}

Response:
{response}

Final answer: """


# --- scoring ----------------------------------------------------------------------------------------------------

def gold_option_text(record: dict) -> str | None:
    options = record.get("options") or []
    ans = str(record.get("answer", ""))
    if options and len(ans) == 1 and "A" <= ans <= chr(ord("A") + len(options) - 1):
        return options[ord(ans) - ord("A")]
    return None


def score_item(record: dict, response_or_extraction: str, mode: str = "official", *, extracted: bool = False,
               judge: Judge | None = None) -> dict:
    """Score one MathVision answer. `record` is a row of data/test.jsonl (id, options, answer, level, subject).
    extracted=True takes the text as an already extracted `model_answer` (official mode)."""
    check_mode(mode)
    gold = str(record.get("answer", ""))
    options = record.get("options") or []
    text = "" if response_or_extraction is None else str(response_or_extraction)
    if mode == "official":
        pred = text if extracted else extract_answer(text)
        opt = gold_option_text(record)
        correct = is_equal(gold, pred) or (opt is not None and is_equal(opt, pred))
        return {"id": record.get("id"), "extraction": pred, "prediction": pred, "correct": correct,
                "unparsed": not pred, "method": "given" if extracted else "rule"}
    found = text if extracted else compat_extract(text)
    ans = found if found is not None else text.strip()
    method = "rule"
    if options:
        pred = compat_choice_letter(ans, options)
        if pred is None and judge is not None:
            ans = judge(EXTRACT_PROMPT.format(question=record.get("question", ""), response=text)).strip()
            pred, method = compat_choice_letter(ans, options), "llm"
        correct = pred is not None and pred == gold
        unparsed = pred is None
    else:
        if found is None and judge is not None:
            ans = judge(EXTRACT_PROMPT.format(question=record.get("question", ""), response=text)).strip()
            method = "llm"
        pred = ans
        correct = bool(pred) and _compat_equal(gold, pred)
        unparsed = found is None and method != "llm"
    return {"id": record.get("id"), "extraction": ans, "prediction": pred, "correct": correct, "unparsed": unparsed,
            "method": method}


ANSWER_FILE = ("a MathVision answer file is data/test.jsonl (or data/testmini.jsonl) of the benchmark: JSONL rows "
               "with id, answer, options, level and subject")
OUTPUT_FILE = ("mathvision output files are JSONL rows with id and response (as outputs/**/<Model>.jsonl); pass such "
               "a file or check --benchmark")


def load_data(path) -> dict[str, dict]:
    """id -> record of a MathVision data file (test.jsonl / testmini.jsonl)."""
    path = Path(path)
    if not path.is_file():
        raise MissingPath(f"mathvision: answer file {path} not found. MathVision output files carry no answers; they "
                          "are read from the benchmark's data/test.jsonl: pass its path with --data")
    rows = read_rows(path, layout="jsonl", expected=ANSWER_FILE, id_fields=("id",), required=("answer",))
    return {str(row["id"]): row for _, row in rows}


def rescore(outputs_path, *, mode: str = "official", data=None, field: str = "response",
            judge: Judge | None = None) -> ScoreResult:
    """Rescore a published MathVision output jsonl (id, response, model_answer, ...).

    `data`: the benchmark data (path to test.jsonl, or a dict id -> record) that holds answers, options, levels and
    subjects; by default mathvision/data/test.jsonl of the benchmark data folder ($SRPO_DATA_DIR).
    field="response" re-runs the rule extraction (the official evaluate.py does); field="model_answer" judges the
    stored extraction. Output rows whose id the data do not hold are refused, naming the line.
    """
    check_mode(mode)
    if data is None:
        folder = data_dir("mathvision scoring", "--data with the answers (data/test.jsonl)")
        data = folder / NAME / "data" / "test.jsonl"
    table = data if isinstance(data, dict) else load_data(data)
    placed = read_rows(outputs_path, layout="jsonl", expected=OUTPUT_FILE, id_fields=("id",))
    rows = [row for _, row in placed]
    check_field(outputs_path, rows, field)
    unknown = [(place, row["id"]) for place, row in placed if str(row["id"]) not in table]
    if unknown:
        (place, iid), source = unknown[0], "the given answers" if isinstance(data, dict) else str(data)
        raise OutputFileError(f"{place}: id {iid!r} is not in {source} ({len(unknown)} of {len(rows)} rows have ids "
                              f"it lacks); pass the matching answer file with --data (data/test.jsonl for the test "
                              "set, data/testmini.jsonl for testmini)")
    recs = [table[str(r["id"])] for r in rows]
    items = [score_item(rec, row.get(field), mode, extracted=(field != "response"), judge=judge)
             for rec, row in zip(recs, rows)]
    return score_result(mode, items, recs, {"field": field, "judge": judge is not None})


def score_result(mode: str, items: list[dict], records: list[dict], options: dict) -> ScoreResult:
    return make_result(NAME, mode, items, records, BREAKDOWN, to_official_json, options=options)


def _fmt(correct: int, n: int) -> str:
    return f"{correct}/{n}={round(correct / n * 100, 2)}%"


def to_official_json(result: ScoreResult) -> dict:
    """Shaped like outputs/**/<Model>_result.json: "-all", "-level<N>", "-level<N>_<subject>", "<subject>",
    "<subject>_level<N>", each "correct/total=acc%"; keys sorted as the official file."""
    out = {"-all": _fmt(result.correct, result.n)}
    bd = result.breakdown
    for lvl, c in bd.get("level", {}).items():
        out[f"-{lvl}"] = _fmt(c["correct"], c["n"])
    for subj, c in bd.get("subject", {}).items():
        out[subj] = _fmt(c["correct"], c["n"])
    for key, c in bd.get("subject_level", {}).items():
        subj, lvl = key.rsplit("_", 1)
        out[key] = _fmt(c["correct"], c["n"])
        out[f"-{lvl}_{subj}"] = _fmt(c["correct"], c["n"])
    return dict(sorted(out.items()))


# --- loading and the run's output file -------------------------------------------------------------------------

SPLITS = ("test", "testmini")
DEFAULT_SPLIT = "test"
SPLIT_ALIASES: dict[str, str] = {}
IMAGES_HINT = ("The offline copy holds only the testmini images (use --split testmini); the test images are in the "
               "images/ folder of github.com/mathllm/MATH-V (or use --data hf).")


def hub_source(split: str) -> tuple[str, str | None, str]:
    return "MathLLMs/MathVision", None, split


def official_file(split: str, folder: Path) -> Path:
    return folder / "data" / f"{split}.jsonl"


def read_official(split: str, path: Path) -> tuple[list[dict], Path]:
    return load_records(need_file(path, NAME)), official_root(path)


def image_refs(split: str, record: dict) -> list[str]:
    return image_field(record)


def prompt(record: dict) -> str:
    """The question, plus "(A) ..." option lines when the options are not the bare letters (SRPO's scripts)."""
    opts = record.get("options") or []
    if opts and [str(o) for o in opts] != letters(len(opts)):
        return record["question"] + "\n" + "\n".join(f"({c}) {o}" for c, o in zip(letters(len(opts)), opts))
    return record["question"]


def build_item(split: str, record: dict, images: list) -> BenchItem:
    return BenchItem(id=str(record["id"]), prompt=prompt(record), record=record, gold=str(record.get("answer")),
                     images=images)


def write_outputs(rows: list[tuple[BenchItem, ScoredItem]], folder: Path, model: str) -> Path:
    return write_jsonl(folder / "outputs_mathvision.jsonl", [
        {"id": item.record["id"], "model": model, "response": s.response, "model_answer": s.extraction,
         "correct": s.correct} for item, s in rows])
