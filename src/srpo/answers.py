# Over 400 lines: one notion of a correct answer (options, numbers, unicode, math-verify) for rewards and evaluation.
"""Answer extraction and verification (docs/method.md#verification).

* :func:`extract_answer` turns the content of an ``<answer>`` block into the bare answer (last ``\\boxed{}``,
  else the text without ``$..$`` / ``\\(..\\)`` delimiters).
* :func:`extract_choice_letter` finds a multiple-choice option letter robustly.
* :func:`unicode_to_latex` writes unicode math (``½``, ``√2``, ``x²``, ...) as LaTeX.
* :func:`is_correct` decides whether a predicted answer matches the reference answer: multiple-choice letters
  and option texts, fast paths for plain numbers / fractions / percentages, then math-verify (gold parsed as
  ``$gold$``; prediction parsed with expression, LaTeX and string extraction; ``verify(gold, pred)``), every
  math-verify call bounded in time (:mod:`srpo.verify`). It never raises and caches completed results only.
* :func:`checker_problems` counts the checks that timed out or raised (each answered "wrong"), for the training
  metrics ``verify_timeouts`` / ``verify_errors``.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from srpo.verify import CheckError, CheckTimeout, clear_parse_cache, verify_equal

__all__ = [
    "as_choices",
    "as_text",
    "extract_answer",
    "extract_choice_letter",
    "is_correct",
    "normalize_answer",
    "parse_number",
    "unicode_to_latex",
    "CheckerProblems",
    "checker_problems",
    "record_check_problem",
    "clear_caches",
    "DEFAULT_TIMEOUT",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 2.0  # seconds per math-verify call (brief: default 2 s)
_CACHE_SIZE = 2**16
_MAX_CACHED_LEN = 4096  # longer predictions are verified but not cached (bounds the cache's memory)

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_WS_RE = re.compile(r"\s+")


def as_text(x: object) -> str:
    """A gold answer or option as text: numbers as written, anything else (None, bools, objects) as ""."""
    if isinstance(x, str):
        return x
    if isinstance(x, bool) or x is None:
        return ""
    if isinstance(x, (int, float)):
        return str(x)
    return ""


# ---------------------------------------------------------------------------------------------------------------
# extraction
# ---------------------------------------------------------------------------------------------------------------

_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")


def last_boxed(s: str, *, unclosed: bool = True) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (balanced braces), linear time. An unbalanced last box
    yields the rest of the string (a truncated answer), or None with ``unclosed=False``; no box -> None."""
    start = None
    for m in _BOXED_RE.finditer(s):
        start = m.end()
    if start is None:
        return None
    depth = 1
    i = start
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\" and i + 1 < n:  # skip escaped characters such as \{ \}
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return s[start:i]
        i += 1
    return s[start:] if unclosed else None


_DELIMS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def _strip_delims(s: str) -> str:
    s = s.strip()
    for _ in range(4):  # a few nested layers at most, e.g. "$ \( x \) $"
        changed = False
        for left, right in _DELIMS:
            if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
                s = s[len(left) : len(s) - len(right)].strip()
                changed = True
                break
        if not changed:
            break
    # stray unmatched delimiters left at the ends ("$5", "5$")
    return s.strip().strip("$").strip()


def extract_answer(text: str) -> str:
    """Bare answer from an answer block's content: the content of the last ``\\boxed{...}`` (balanced braces)
    when present, else the text without ``$...$`` / ``$$...$$`` / ``\\(...\\)`` / ``\\[...\\]`` delimiters and
    surrounding whitespace. Never raises; non-str -> ``""``."""
    try:
        s = as_text(text)
        if not s:
            return ""
        boxed = last_boxed(s) if "box" in s else None
        if boxed is not None:
            return _strip_delims(boxed)
        return _strip_delims(s)
    except Exception:  # pragma: no cover - defensive
        return ""


# ---------------------------------------------------------------------------------------------------------------
# multiple choice
# ---------------------------------------------------------------------------------------------------------------

_UNWRAP_RE = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox|textit|mathit|operatorname)\s*\{([^{}]*)\}")
_SHORT_RE = re.compile(r"\s*[\(\[\{]?\s*([A-Za-z])\s*[\)\]\}]?\s*[.:)]?\s*")
_LABEL_RE = re.compile(r"\s*[\(\[]?([A-Z])(?:[\)\]]\s*[.:]?|[.:])\s+\S")
_ANCHOR_RE = re.compile(
    r"(?:answer|option|choice)\s*(?:is|should\s+be|would\s+be|=)?\s*[:：]?\s*(?:option|choice)?\s*"
    r"[\(\[]?\s*([A-Za-z])\s*[\)\]]?(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_PAREN_RE = re.compile(r"\(([A-Z])\)")
_STANDALONE_RE = re.compile(r"(?<![A-Za-z0-9_\\'])([A-Z])(?![A-Za-z0-9_'])")


def _clean_for_letter(s: str) -> str:
    s = s.replace("**", "").replace("\\(", " ").replace("\\)", " ").replace("\\[", " ").replace("\\]", " ")
    s = s.replace("$", " ")
    s = _WS_RE.sub(" ", s)  # single spaces: keeps the anchored regexes free of polynomial backtracking
    for _ in range(3):
        new = _UNWRAP_RE.sub(r"\1", s)
        if new == s:
            break
        s = new
    return s


def extract_choice_letter(text: str, n_choices: int | None = None) -> str | None:
    """The multiple-choice option letter in ``text`` (upper case), or None.

    Recognised, in order of preference: the content of the last ``\\boxed{}``; a text that is just a letter
    (``B``, ``(B)``, ``B.``, ``B)``, ``\\text{B}``, ``$B$``; lower case ``b`` only when it stands alone like this);
    a leading option label followed by the option text (``(B) 45``, ``B. 45``); an anchored phrase (``Answer: B``,
    ``the answer is (B)``, ``option B``); a parenthesised capital ``(B)``; finally a single standalone capital
    letter, where an article ``A`` / pronoun ``I`` followed by a lower-case word is not a candidate. When
    ``n_choices`` is given only the first ``n_choices`` letters are valid. Never raises.
    """
    try:
        s = as_text(text)
        if not s.strip():
            return None
        valid = _LETTERS
        if isinstance(n_choices, int) and not isinstance(n_choices, bool) and 0 < n_choices <= 26:
            valid = _LETTERS[:n_choices]
        boxed = last_boxed(s) if "box" in s else None
        if boxed is not None:
            r = _letter_in(boxed, valid, allow_sentence=False)
            if r is not None:
                return r
        return _letter_in(s, valid, allow_sentence=True)
    except Exception:  # pragma: no cover - defensive
        return None


def _letter_in(s: str, valid: str, *, allow_sentence: bool) -> str | None:
    c = _clean_for_letter(s)
    m = _SHORT_RE.fullmatch(c)
    if m:
        u = m.group(1).upper()
        return u if u in valid else None
    m = _LABEL_RE.match(c)
    if m and m.group(1) in valid:
        return m.group(1)
    if not allow_sentence and len(c) > 200:
        return None
    last = None
    for m in _ANCHOR_RE.finditer(c):
        letter = m.group(1)
        if letter.islower():
            # a lower-case letter only when it clearly stands alone: "(b)" or followed by end / punctuation
            rest = c[m.end() :].lstrip()
            if not (m.group(0).rstrip().endswith(")") or not rest or rest[0] in ".,;:!?"):
                continue
        u = letter.upper()
        if u in valid:
            last = u
    if last is not None:
        return last
    parens = [x for x in _PAREN_RE.findall(c) if x in valid]
    if parens:
        return parens[-1]
    cands = []
    for m in _STANDALONE_RE.finditer(c):
        u = m.group(1)
        if u not in valid:
            continue
        if u in "AI":  # article / pronoun followed by a lower-case word is not a choice
            rest = c[m.end() : m.end() + 3]
            if re.match(r"\s+[a-z]", rest):
                continue
        cands.append(u)
    if cands and len(set(cands)) == 1:
        return cands[0]
    return None


# ---------------------------------------------------------------------------------------------------------------
# normalisation and numbers
# ---------------------------------------------------------------------------------------------------------------

_LEFTRIGHT_RE = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?![a-zA-Z])")
_SPACING_RE = re.compile(r"\\[,;:! ]|\\q?quad(?![a-zA-Z])|~")
_TEXT_ONLY_RE = re.compile(r"[A-Za-z][A-Za-z \-']*")


def normalize_answer(s: str) -> str:
    """Canonical string form for exact comparison: no delimiters, ``\\left``/``\\right`` and LaTeX spacing
    removed, ``\\dfrac``/``\\tfrac`` -> ``\\frac``, whitespace and a trailing period removed, a whole-answer
    ``\\text{..}`` unwrapped; plain words are case-folded."""
    s = _strip_delims(as_text(s))
    m = _UNWRAP_RE.fullmatch(s)
    if m:
        s = m.group(1).strip()
    s = s.replace("\u2212", "-")  # unicode minus
    if len(s) > 1 and _TEXT_ONLY_RE.fullmatch(s):
        return _WS_RE.sub(" ", s).strip().casefold().rstrip(".")
    s = _LEFTRIGHT_RE.sub("", s)
    s = _SPACING_RE.sub("", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\displaystyle", "")
    s = _WS_RE.sub("", s)
    return s.rstrip(".")


_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PLAIN_NUM_RE = re.compile(rf"[+-]?{_NUM}(?:[eE][+-]?\d+)?")
_THOUSANDS_RE = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_SLASH_FRAC_RE = re.compile(rf"([+-]?)({_NUM})/({_NUM})")
_TEX_FRAC_RE = re.compile(rf"([+-]?)\\frac(?:\{{([+-]?{_NUM})\}}\{{([+-]?{_NUM})\}}|(\d)(\d))")
_SCI_RE = re.compile(rf"([+-]?{_NUM})(?:\\times|\\cdot|\*)10\^(?:\{{([+-]?\d+)\}}|([+-]?\d))")
_ASSIGN_RE = re.compile(r"[A-Za-z](?:_\{?\w+\}?)?=")
_DEGREE_RE = re.compile(r"(?:\^\{?\\circ\}?|°|\\degree|\^\{?\\degree\}?)$")
_UNIT_TEXT_RE = re.compile(r"\\(?:text|mathrm|mbox)\{[^{}]*\}$")


def parse_number(s: str) -> tuple[float, bool] | None:
    """``(value, is_percent)`` when the *normalised* answer ``s`` is a plain number: an integer, decimal,
    scientific (``1e-3``, ``3\\times10^{5}``), thousands-separated (``1,234``), slash or ``\\frac`` fraction of
    numbers, optionally ``x=`` prefixed, with a trailing ``%`` / ``\\%`` (percent), degree sign or ``\\text{unit}``.
    Non-finite values (overflow) and anything else -> None. Never raises."""
    r = _parse_number(s)
    if r is None or not math.isfinite(r[0]):
        return None
    return r


def _parse_number(s: str) -> tuple[float, bool] | None:
    """Unchecked parser behind :func:`parse_number`."""
    try:
        if not s or len(s) > 200:
            return None
        m = _ASSIGN_RE.match(s)
        if m and m.end() < len(s):
            s = s[m.end() :]
        pct = False
        for _ in range(2):
            if s.endswith("\\%"):
                s, pct = s[:-2], True
            elif s.endswith("%"):
                s, pct = s[:-1], True
            s2 = _UNIT_TEXT_RE.sub("", s)
            s2 = _DEGREE_RE.sub("", s2)
            if s2 == s:
                break
            s = s2
        if not s:
            return None
        if _PLAIN_NUM_RE.fullmatch(s):
            return float(s), pct
        if _THOUSANDS_RE.fullmatch(s):
            return float(s.replace(",", "")), pct
        m = _SLASH_FRAC_RE.fullmatch(s)
        if m:
            den = float(m.group(3))
            if den == 0:
                return None
            v = float(m.group(2)) / den
            return (-v if m.group(1) == "-" else v), pct
        m = _TEX_FRAC_RE.fullmatch(s)
        if m:
            num, den = (m.group(2), m.group(3)) if m.group(2) is not None else (m.group(4), m.group(5))
            d = float(den)
            if d == 0:
                return None
            v = float(num) / d
            return (-v if m.group(1) == "-" else v), pct
        m = _SCI_RE.fullmatch(s)
        if m:
            exp = m.group(2) if m.group(2) is not None else m.group(3)
            return float(m.group(1)) * 10.0 ** int(exp), pct
        return None
    except (ValueError, OverflowError):
        return None


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)


def _numbers_equal(p: tuple[float, bool], g: tuple[float, bool]) -> bool:
    """Relative tolerance 1e-6; a percentage matches both its value and its value / 100 (as math-verify)."""

    def vals(x: tuple[float, bool]) -> tuple[float, ...]:
        return (x[0], x[0] / 100.0) if x[1] else (x[0],)

    return any(_close(a, b) for a in vals(p) for b in vals(g))


def _cannot_be_number(ns: str) -> bool:
    """A normalised answer with no digit and no LaTeX command (a word, a variable, a letter) cannot equal a
    plain number: decided without math-verify."""
    return not any(ch.isdigit() for ch in ns) and "\\" not in ns


# ---------------------------------------------------------------------------------------------------------------
# unicode math -> LaTeX
# ---------------------------------------------------------------------------------------------------------------

_VULGAR_FRACTIONS = {
    "½": (1, 2), "⅓": (1, 3), "⅔": (2, 3), "¼": (1, 4), "¾": (3, 4), "⅕": (1, 5), "⅖": (2, 5), "⅗": (3, 5),
    "⅘": (4, 5), "⅙": (1, 6), "⅚": (5, 6), "⅐": (1, 7), "⅛": (1, 8), "⅜": (3, 8), "⅝": (5, 8), "⅞": (7, 8),
    "⅑": (1, 9), "⅒": (1, 10), "↉": (0, 3),
}  # fmt: skip
_SUPERSCRIPT = "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱ"
_SUBSCRIPT = "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₐₑₒₓₕₖₗₘₙₚₛₜ"
_FROM_SCRIPT = str.maketrans(_SUPERSCRIPT + _SUBSCRIPT, "0123456789+-=()ni" + "0123456789+-=()aeoxhklmnpst")
_SUP_DIGITS, _SUB_DIGITS = "⁰¹²³⁴⁵⁶⁷⁸⁹", "₀₁₂₃₄₅₆₇₈₉"
_SCRIPT_FRACTION = rf"(?<![{_SUP_DIGITS}])([{_SUP_DIGITS}]+)\u2044([{_SUB_DIGITS}]+)"  # ¹⁄₂ (from a run's start only)
# a vulgar fraction or a ¹⁄₂-style one, optionally after a whole number it adds to ("1½" is 3/2, not 1 * 1/2)
_UNICODE_FRACTION_RE = re.compile(rf"(?<![\d.])(\d+ ?)?(?:([{''.join(_VULGAR_FRACTIONS)}])|{_SCRIPT_FRACTION})")
_SUPERSCRIPT_RE = re.compile(f"[{_SUPERSCRIPT}]+")
_SUBSCRIPT_RE = re.compile(f"[{_SUBSCRIPT}]+")
_SYMBOLS = {
    "π": "\\pi", "×": "\\times", "÷": "\\div", "·": "\\cdot", "⋅": "\\cdot", "±": "\\pm", "≤": "\\le",
    "≥": "\\ge", "≠": "\\neq", "∞": "\\infty", "°": "^{\\circ}", "\u2212": "-", "\u2044": "/",
}  # fmt: skip
_SYMBOL_RE = re.compile(f"[{''.join(_SYMBOLS)}]")
_ROOTS = {"√": "\\sqrt", "∛": "\\sqrt[3]", "∜": "\\sqrt[4]"}
_ROOT_ARG_RE = re.compile(r"\s*(\d+(?:\.\d+)?|\\[A-Za-z]+|[A-Za-z])")
_UNICODE_MATH_CHARS = frozenset(_VULGAR_FRACTIONS) | set(_SUPERSCRIPT + _SUBSCRIPT) | set(_SYMBOLS) | set(_ROOTS)


def _fraction_to_latex(m: re.Match) -> str:
    if m.group(2):
        num, den = _VULGAR_FRACTIONS[m.group(2)]
    else:
        num, den = int(m.group(3).translate(_FROM_SCRIPT)), int(m.group(4).translate(_FROM_SCRIPT))
    if m.group(1):
        num += int(m.group(1)) * den
    return f"\\frac{{{num}}}{{{den}}}"


def _symbol_to_latex(m: re.Match) -> str:
    latex = _SYMBOLS[m.group(0)]
    following = m.string[m.end() : m.end() + 1]
    # "πr" must not become the unknown command "\pir"
    return latex + " " if latex[-1].isalpha() and following.isalpha() else latex


def _bracket_pairs(s: str) -> dict[int, int]:
    """Index of each ``(`` / ``{`` -> index of the bracket that closes it (one pass, nesting counted per kind)."""
    pairs: dict[int, int] = {}
    open_at: dict[str, list[int]] = {"(": [], "{": []}
    for i, c in enumerate(s):
        if c in open_at:
            open_at[c].append(i)
        elif c in ")}":
            stack = open_at["(" if c == ")" else "{"]
            if stack:
                pairs[stack.pop()] = i
    return pairs


def _roots_to_latex(s: str) -> str:
    """``√2`` -> ``\\sqrt{2}``, ``√(x+1)`` / ``√{x+1}`` -> ``\\sqrt{x+1}``, ``√x`` -> ``\\sqrt{x}``, ``∛8`` ->
    ``\\sqrt[3]{8}``: the radicand is a bracketed group, else a number, a LaTeX command or one letter. A sign with
    no radicand after it is left as it is. Linear time (answers can be long and full of junk)."""
    if not any(root in s for root in _ROOTS):
        return s
    pairs = _bracket_pairs(s)
    group_ends: set[int] = set()  # closing brackets of radicands, written as "}"
    out: list[str] = []
    i = 0
    while i < len(s):
        root = _ROOTS.get(s[i])
        if root is None:
            out.append("}" if i in group_ends else s[i])
            i += 1
            continue
        j = i + 1
        while j < len(s) and s[j] == " ":
            j += 1
        if j in pairs:
            out.append(root + "{")
            group_ends.add(pairs[j])
            i = j + 1
            continue
        m = _ROOT_ARG_RE.match(s, i + 1)
        if m is None:
            out.append(s[i])
            i += 1
        else:
            out.append(f"{root}{{{m.group(1)}}}")
            i = m.end()
    return "".join(out)


def unicode_to_latex(s: str) -> str:
    """Unicode math written as LaTeX, so that both spellings of an answer compare equal: vulgar fractions
    (``½`` -> ``\\frac{1}{2}``, ``1½`` -> ``\\frac{3}{2}``, ``¹⁄₂``), the fraction slash ``⁄`` -> ``/``, roots
    (``√2`` -> ``\\sqrt{2}``, ``√(x+1)``, ``∛8``), superscripts (``x²`` -> ``x^{2}``, ``10⁻³``) and subscripts
    (``x₁`` -> ``x_{1}``), ``π × ÷ · ± ≤ ≥ ≠ ∞ °`` and the minus sign U+2212. Text without these characters is
    returned unchanged. Pure."""
    if not _UNICODE_MATH_CHARS.intersection(s):
        return s
    s = _UNICODE_FRACTION_RE.sub(_fraction_to_latex, s)
    s = _SUPERSCRIPT_RE.sub(lambda m: "^{" + m.group(0).translate(_FROM_SCRIPT) + "}", s)
    s = _SUBSCRIPT_RE.sub(lambda m: "_{" + m.group(0).translate(_FROM_SCRIPT) + "}", s)
    s = _SYMBOL_RE.sub(_symbol_to_latex, s)
    return _roots_to_latex(s)


# ---------------------------------------------------------------------------------------------------------------
# is_correct
# ---------------------------------------------------------------------------------------------------------------

_OPTION_LABEL_RE = re.compile(r"\s*[\(\[]?[A-Z][\)\]\.:]\s*")


def _option_text(choice: str) -> str:
    """Option text without a leading label such as ``(A)`` / ``A.`` / ``A:``."""
    m = _OPTION_LABEL_RE.match(choice)
    if m and m.end() < len(choice):
        choice = choice[m.end() :]
    return choice


def _texts_equal(a: str, b: str) -> bool:
    na, nb = normalize_answer(extract_answer(a)), normalize_answer(extract_answer(b))
    if not na or not nb:
        return False
    if na == nb:
        return True
    va, vb = parse_number(na), parse_number(nb)
    return va is not None and vb is not None and _numbers_equal(va, vb)


def _gold_letter(gold: str, choices: tuple[str, ...] | None) -> str | None:
    """The option letter when the reference is a letter (A-Z; a lower-case letter only with ``choices``), or
    when ``choices`` are given and the reference equals exactly one option's text."""
    g = _strip_delims(gold)
    b = last_boxed(g) if "box" in g else None
    if b is not None:
        g = _strip_delims(b)
    g = _clean_for_letter(g).strip().strip("().[]").strip()
    n = len(choices) if choices else 26
    if len(g) == 1 and "A" <= g <= "Z" and (not choices or ord(g) - 65 < n):
        return g
    if choices and len(g) == 1 and "a" <= g <= "z" and ord(g) - 97 < n:
        return g.upper()
    if choices:
        hits = [i for i, c in enumerate(choices) if _texts_equal(_option_text(c), gold)]
        if len(hits) == 1 and hits[0] < 26:
            return _LETTERS[hits[0]]
    return None


_LOWER_LETTER_RE = re.compile(r"\s*\(?\s*([a-z])\s*\)?\s*")  # c, (c)


def _is_correct_impl(pred: str, gold: str, choices: tuple[str, ...] | None, timeout: float) -> bool:
    if not pred.strip() or not gold.strip():
        return False
    letter = _gold_letter(gold, choices)
    lower = _LOWER_LETTER_RE.fullmatch(gold) if letter is None and not choices else None
    if lower is not None:
        # A lower-case gold letter with no options (``c``): the prediction's option letter ``C`` counts; any
        # other prediction is checked as below (``e``, ``x`` may be math, not options).
        if extract_choice_letter(pred) == lower.group(1).upper():
            return True
    elif letter is not None:
        # docs/method.md#rewards multiple choice: compare option letters; an answer equal to the gold option's text also counts.
        if extract_choice_letter(pred, len(choices) if choices else None) == letter:
            return True
        if choices and ord(letter) - 65 < len(choices):
            return _texts_equal(pred, _option_text(choices[ord(letter) - 65]))
        return False
    pe, ge = extract_answer(pred), extract_answer(gold)
    if not pe or not ge:
        return False
    np_, ng = normalize_answer(pe), normalize_answer(ge)
    if not np_ or not ng:
        return False
    if np_ == ng:  # fast path 1: normalised string equality
        return True
    vp, vg = parse_number(np_), parse_number(ng)
    if vp is not None and vg is not None:  # fast path 2: plain numbers / fractions / percent
        return _numbers_equal(vp, vg)
    if (vg is not None and _cannot_be_number(np_)) or (vp is not None and _cannot_be_number(ng)):
        return False  # fast path 3: a number vs a word / letter / variable
    if _TEXT_ONLY_RE.fullmatch(np_) and _TEXT_ONLY_RE.fullmatch(ng):
        return False  # two different plain words (already case-folded and compared)
    return verify_equal(pe, ge, timeout)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _is_correct_cached(pred: str, gold: str, choices: tuple[str, ...] | None, timeout: float) -> bool:
    # A check that times out or raises propagates, and lru_cache stores nothing for it: the next call tries again.
    return _is_correct_impl(pred, gold, choices, timeout)


def as_choices(choices: object) -> tuple[str, ...] | None:
    """Options as a tuple of texts (hashable, for caches); None when there are none."""
    if choices is None or isinstance(choices, (str, bytes)):
        return None
    try:
        out = tuple(as_text(c) for c in choices)  # type: ignore[union-attr]
    except TypeError:
        return None
    return out or None


# ---------------------------------------------------------------------------------------------------------------
# checks that gave no answer: counted and logged
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckerProblems:
    """Answer checks that gave no answer since the process started (each was counted as a wrong answer).
    Subtract an earlier snapshot to get the checks in between."""

    errors: int = 0
    timeouts: int = 0

    def __sub__(self, earlier: CheckerProblems) -> CheckerProblems:
        return CheckerProblems(self.errors - earlier.errors, self.timeouts - earlier.timeouts)


_DETAILED_WARNINGS = 5  # per kind: the first ones are logged with their input ...
_SUMMARY_EVERY = 100  # ... later ones only as a running count, so a bad dataset cannot flood the log
_PROBLEM_WORDS = {"error": "raised an error", "timeout": "ran out of time"}
_problems_lock = threading.Lock()
_problems = {"error": 0, "timeout": 0}


def checker_problems() -> CheckerProblems:
    """Snapshot of the process-wide counts of checks that raised (``errors``) or ran out of time (``timeouts``).
    The counts only grow, so several readers (rewards, evaluation) can each take differences."""
    with _problems_lock:
        return CheckerProblems(_problems["error"], _problems["timeout"])


def record_check_problem(kind: str, pred: str, gold: str, detail: str) -> None:
    """Count (and log, rate-limited) one answer check that gave no answer and was scored as a wrong answer:
    ``kind`` is ``"error"`` or ``"timeout"``. For checkers outside this module (the ``reference`` reward preset)."""
    _record_problem(kind, pred, gold, detail)


def _record_problem(kind: str, pred: str, gold: str, detail: str) -> None:
    with _problems_lock:
        _problems[kind] += 1
        n = _problems[kind]
    if n <= _DETAILED_WARNINGS:
        logger.warning(
            "answer check %s (#%d), counted as a wrong answer: prediction %r, gold %r: %s%s",
            _PROBLEM_WORDS[kind], n, pred[:200], gold[:200], detail,
            "" if n < _DETAILED_WARNINGS else f" (from now on a count every {_SUMMARY_EVERY})",
        )  # fmt: skip
    elif n % _SUMMARY_EVERY == 0:
        logger.warning("%d answer checks have %s so far, each counted as a wrong answer", n, _PROBLEM_WORDS[kind])


def is_correct(
    prediction: str,
    gold: str,
    *,
    choices: Sequence[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    unicode_math: bool = True,
) -> bool:
    """Whether ``prediction`` (the raw content of an ``<answer>`` block, may hold ``$\\boxed{..}$``) matches the
    reference answer ``gold`` (docs/method.md#rewards "Answer verification").

    * With ``unicode_math`` (every use but the ``reference`` reward preset, which reproduces the released code),
      prediction, gold and choices first go through :func:`unicode_to_latex`, so ``½`` equals ``1/2``.
    * Multiple choice (``gold`` a letter A-Z, or a lower-case letter / an option's text when ``choices`` are
      given): the prediction's option letter (:func:`extract_choice_letter`) must equal it, or the prediction's
      text must equal the gold option's text (normalised, or numerically).
    * Otherwise fast paths first: normalised string equality; both plain numbers / fractions / percentages ->
      relative tolerance 1e-6 (``\\frac{1}{2}`` == 0.5 == 1/2); a number against a word / letter -> False.
    * Then math-verify: ``parse("$gold$")``, the extracted prediction parsed with expression, LaTeX and string
      extraction, ``verify(gold_parsed, pred_parsed)`` (gold first), each call bounded by ``timeout`` seconds
      (rounded up to whole seconds, see :mod:`srpo.verify`).

    Never raises. A check that times out or raises is False for this call (a timeout is not an answer), is
    counted in :func:`checker_problems` and logged as a warning, and is not cached. Completed results are cached
    per (prediction, gold, choices, timeout).
    """
    p, g = as_text(prediction), as_text(gold)
    try:
        ch = as_choices(choices)
        if unicode_math:
            p, g = unicode_to_latex(p), unicode_to_latex(g)
            ch = tuple(unicode_to_latex(c) for c in ch) if ch else None
        t = float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else DEFAULT_TIMEOUT
        if len(p) > _MAX_CACHED_LEN or len(g) > _MAX_CACHED_LEN:
            return _is_correct_impl(p, g, ch, t)
        return _is_correct_cached(p, g, ch, t)
    except CheckTimeout as e:
        _record_problem("timeout", p, g, str(e))
    except Exception as e:  # CheckError from math-verify, or a bug in the checks above
        _record_problem("error", p, g, str(e) if isinstance(e, CheckError) else f"{type(e).__name__}: {e}")
    return False


def clear_caches(include_math_verify: bool = True) -> None:
    """Empty this module's result caches (and math-verify's internal LaTeX / expression parse caches)."""
    _is_correct_cached.cache_clear()
    clear_parse_cache()
    if include_math_verify:
        try:
            from math_verify import parser as _p

            for name in ("parse_latex_cached", "parse_expr_cached"):
                f = getattr(_p, name, None)
                if f is not None and hasattr(f, "cache_clear"):
                    f.cache_clear()
        except Exception:  # pragma: no cover
            pass
