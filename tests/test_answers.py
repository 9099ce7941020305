"""srpo.answers: extraction and verification (docs/method.md#rewards "Answer verification")."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from srpo import answers
from srpo.answers import extract_answer, extract_choice_letter, is_correct, normalize_answer, parse_number


@pytest.mark.parametrize(
    "text, expected",
    [
        ("$\\boxed{\\frac{1}{2}}$", "\\frac{1}{2}"),
        ("The answer is $\\boxed{5}$.", "5"),
        ("$\\boxed{1}$ or rather $\\boxed{2}$", "2"),  # last box
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),  # escaped braces inside
        ("$\\boxed{5", "5"),  # unbalanced (truncated): the rest
        ("  $3$ ", "3"),
        ("$$x+1$$", "x+1"),
        ("\\(x+1\\)", "x+1"),
        ("\\[ y \\]", "y"),
        ("plain", "plain"),
        ("", ""),
        (None, ""),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "text, n, expected",
    [
        ("B", None, "B"),
        ("(B)", None, "B"),
        ("B.", None, "B"),
        ("B)", None, "B"),
        ("\\boxed{B}", None, "B"),
        ("$\\boxed{B}$", None, "B"),
        ("$\\boxed{\\text{B}}$", None, "B"),
        ("\\text{B}", None, "B"),
        ("$B$", None, "B"),
        ("**B**", None, "B"),
        ("Answer: B", None, "B"),
        ("The answer is (C).", None, "C"),
        ("the correct option is D", None, "D"),
        ("option B", None, "B"),
        ("b", None, "B"),
        ("(b)", None, "B"),
        ("(B) 45", None, "B"),
        ("B. 45 degrees", None, "B"),
        ("A", None, "A"),
        ("A triangle with side B", None, "B"),  # article "A" is not the choice
        ("I think it is C", None, "C"),
        ("The answer is a triangle", None, None),  # lower-case article, no letter
        ("45", None, None),
        ("", None, None),
        (None, None, None),
        ("E", 4, None),  # out of range for 4 options
        ("E", 5, "E"),
        ("B or C", None, None),  # ambiguous
    ],
)
def test_extract_choice_letter(text, n, expected):
    assert extract_choice_letter(text, n) == expected


@pytest.mark.parametrize(
    "s, value, pct",
    [
        ("42", 42.0, False),
        ("-3.5", -3.5, False),
        ("1,234", 1234.0, False),
        ("1/2", 0.5, False),
        ("\\frac{1}{2}", 0.5, False),
        ("-\\frac{3}{4}", -0.75, False),
        ("\\frac12", 0.5, False),
        ("50\\%", 50.0, True),
        ("45^\\circ", 45.0, False),
        ("x=5", 5.0, False),
        ("3\\times10^{2}", 300.0, False),
        ("1e-3", 0.001, False),
    ],
)
def test_parse_number(s, value, pct):
    v = parse_number(normalize_answer(s))
    assert v is not None and v[1] is pct and v[0] == pytest.approx(value)


@pytest.mark.parametrize("s", ["x", "\\sqrt{2}", "1,2,3", "(1,2)", "1/0", "", "abc"])
def test_parse_number_rejects(s):
    assert parse_number(normalize_answer(s)) is None


@pytest.mark.parametrize(
    "pred, gold, choices, expected",
    [
        # LaTeX fractions vs decimals
        ("$\\boxed{\\frac{1}{2}}$", "0.5", None, True),
        ("0.5", "\\frac{1}{2}", None, True),
        ("1/2", "\\frac{1}{2}", None, True),
        ("$\\boxed{0.3}$", "\\frac{1}{3}", None, False),
        ("0.333333", "\\frac{1}{3}", None, True),  # relative tolerance 1e-6
        ("$\\dfrac{3}{4}$", "\\frac{3}{4}", None, True),
        # numbers
        ("$\\boxed{42}$", "42", None, True),
        ("42.0", "42", None, True),
        ("43", "42", None, False),
        ("1,200", "1200", None, True),
        ("$50\\%$", "0.5", None, True),
        ("$45^\\circ$", "45", None, True),
        ("x = 5", "5", None, True),
        ("5", 5, None, True),  # non-str gold
        # math-verify path
        ("$2\\sqrt{3}$", "\\sqrt{12}", None, True),
        ("$\\boxed{x^2+1}$", "1+x^2", None, True),
        ("$\\boxed{x^2+2}$", "1+x^2", None, False),
        ("$\\frac{\\sqrt{2}}{2}$", "\\frac{1}{\\sqrt{2}}", None, True),
        ("\\pi", "3.14", None, False),
        # text answers
        ("East", "east", None, True),
        ("west", "east", None, False),
        ("B", "5", None, False),  # a letter never equals a number
        # multiple choice: letter spellings
        ("$\\boxed{B}$", "B", None, True),
        ("(B)", "B", ["1", "2", "3"], True),
        ("b", "B", ["1", "2", "3"], True),
        ("The answer is B.", "B", None, True),
        ("\\text{B}", "B", None, True),
        ("$\\boxed{C}$", "B", ["1", "2", "3"], False),
        ("A", "B", None, False),
        # multiple choice: option text
        ("45", "B", ["30", "45", "60"], True),
        ("$\\boxed{45^\\circ}$", "B", ["30^\\circ", "45^\\circ", "60^\\circ"], True),
        ("$45$", "B", ["(A) 30", "(B) 45", "(C) 60"], True),
        ("30", "B", ["30", "45", "60"], False),
        ("b", "b", ["30", "45"], True),  # lower-case gold letter with choices
        ("$\\boxed{C}$", "c", None, True),  # lower-case gold letter without choices
        ("The answer is (C).", "(c)", None, True),
        ("$\\boxed{D}$", "c", None, False),
        ("$\\boxed{e}$", "e", None, True),  # a lower-case gold that is math still checks as before
        ("$\\boxed{2.718}$", "e", None, False),
        ("B", "45", ["30", "45", "60"], True),  # gold given as the option text
        # degenerate
        ("", "5", None, False),
        ("5", "", None, False),
        (None, "5", None, False),
        ("5", None, None, False),
    ],
)
def test_is_correct(pred, gold, choices, expected):
    assert is_correct(pred, gold, choices=choices) is expected


def test_is_correct_caches():
    answers.clear_caches()
    before = answers._is_correct_cached.cache_info()
    assert is_correct("$\\boxed{7}$", "7")
    assert is_correct("$\\boxed{7}$", "7")
    after = answers._is_correct_cached.cache_info()
    assert after.hits == before.hits + 1 and after.misses == before.misses + 1


SLOW = ("\\sin(x)^{400}+\\cos(x)^{400}", "\\sin(x)^{2}")  # sympy takes > 1 s on this comparison


def test_timeout_is_false_main_thread():
    answers.clear_caches()
    t = time.perf_counter()
    assert is_correct(*SLOW, timeout=1) is False
    assert time.perf_counter() - t < 3 * 1 + 1.5


def test_worker_thread_uses_helper_process():
    """In a non-main thread SIGALRM is unavailable: the check runs in a helper process, still bounded."""
    answers.clear_caches()
    out: dict = {}

    def run():
        t = time.perf_counter()
        out["eq"] = is_correct("$2\\sqrt{3}$", "\\sqrt{12}", timeout=1)
        out["neq"] = is_correct("$2\\sqrt{5}$", "\\sqrt{12}", timeout=1)
        t1 = time.perf_counter()
        out["slow"] = is_correct(*SLOW, timeout=1)
        out["slow_s"] = time.perf_counter() - t1
        out["total_s"] = time.perf_counter() - t

    th = threading.Thread(target=run)
    th.start()
    th.join(60)
    assert out["eq"] is True and out["neq"] is False and out["slow"] is False
    assert out["slow_s"] < 3 * 1 + 1.5


# ---------------------------------------------------------------------------------------------------------------
# property-based: never raises
# ---------------------------------------------------------------------------------------------------------------

ATOMS = ["1", "2", "0.5", "-3", "\\frac{1}{2}", "x", "B", "(B)", "$", "\\boxed{", "}", "{", "\\", "%", "^\\circ", " ",
         "Answer:", "option", "a", "A", "/", ",", "=", "\\text{", "\\(", "\\)", "."]
latexish = st.lists(st.sampled_from(ATOMS), max_size=12).map("".join)
texts = st.text(max_size=60) | latexish


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts, st.none() | st.integers(min_value=-2, max_value=30))
def test_extractors_never_raise(text, n):
    assert isinstance(extract_answer(text), str)
    r = extract_choice_letter(text, n)
    assert r is None or (len(r) == 1 and r.isupper())
    assert isinstance(normalize_answer(text), str)
    parse_number(text)


GOLDS = ["5", "0.5", "\\frac{1}{2}", "B", "42", "x", "east", "-3"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts, st.sampled_from(GOLDS) | latexish, st.none() | st.lists(st.sampled_from(["1", "2", "45", "x"]), max_size=4))
def test_is_correct_never_raises(pred, gold, choices):
    assert is_correct(pred, gold, choices=choices, timeout=1) in (True, False)


# ---------------------------------------------------------------------------------------------------------------
# unicode math: written as LaTeX before checking (every use but the `reference` reward preset)
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, latex",
    [
        ("½", "\\frac{1}{2}"),
        ("⅔", "\\frac{2}{3}"),
        ("1½", "\\frac{3}{2}"),  # a mixed number adds
        ("2 ¾", "\\frac{11}{4}"),
        ("-1½", "-\\frac{3}{2}"),
        ("¹⁄₂", "\\frac{1}{2}"),
        ("1⁄2", "1/2"),
        ("√2", "\\sqrt{2}"),
        ("2√3", "2\\sqrt{3}"),
        ("√(x+1)", "\\sqrt{x+1}"),
        ("√{x+1}", "\\sqrt{x+1}"),
        ("√(√(16))", "\\sqrt{\\sqrt{16}}"),
        ("√ 2.5", "\\sqrt{2.5}"),
        ("√π", "\\sqrt{\\pi}"),
        ("∛8", "\\sqrt[3]{8}"),
        ("√", "√"),  # nothing to take the root of: left alone
        ("x²", "x^{2}"),
        ("x⁻¹", "x^{-1}"),
        ("10¹²", "10^{12}"),
        ("x₁₂", "x_{12}"),
        ("πr²", "\\pi r^{2}"),  # not the unknown command \pir
        ("3×10⁵", "3\\times10^{5}"),
        ("6÷2", "6\\div2"),
        ("−5", "-5"),
        ("x ≤ 3", "x \\le 3"),
        ("x ≥ 3", "x \\ge 3"),
        ("x ≠ 2", "x \\neq 2"),
        ("45°", "45^{\\circ}"),
        ("(-∞, 2]", "(-\\infty, 2]"),
        ("\\frac{1}{2} and x^2", "\\frac{1}{2} and x^2"),  # no unicode math: unchanged
    ],
)
def test_unicode_to_latex(text, latex):
    assert answers.unicode_to_latex(text) == latex


# (prediction, gold, what the check said before unicode normalisation: kept for the `reference` preset)
UNICODE_PAIRS = [
    ("½", "1/2", False),
    ("½", "\\frac{1}{2}", False),
    ("1½", "1.5", False),
    ("¾", "0.75", False),
    ("¹⁄₂", "0.5", False),
    ("1⁄2", "0.5", False),
    ("√2", "\\sqrt{2}", False),
    ("2√3", "\\sqrt{12}", False),
    ("√(x+1)", "\\sqrt{x+1}", False),
    ("∛8", "2", False),
    ("x²", "x^2", False),
    ("x²+1", "x^2+1", False),
    ("x⁻¹", "\\frac{1}{x}", False),
    ("10⁻³", "0.001", False),
    ("x₁", "x_1", False),
    ("πr²", "\\pi r^2", False),
    ("3×10⁵", "300000", False),
    ("(-∞, 2]", "(-\\infty, 2]", False),
    ("2π", "2\\pi", True),
    ("6÷2", "3", True),
    ("−5", "-5", True),
    ("x ≤ 3", "x \\le 3", True),
    ("x ≠ 2", "x \\neq 2", True),
    ("45°", "45", True),
]


@pytest.mark.parametrize("pred, gold, before", UNICODE_PAIRS)
def test_unicode_math_equals_its_latex(pred, gold, before):
    assert is_correct(pred, gold) is True
    assert is_correct(f"$\\boxed{{{gold}}}$", pred) is True  # either side may be the unicode one
    assert is_correct(pred, gold, unicode_math=False) is before


@pytest.mark.parametrize("pred, gold", [("½", "1/3"), ("√3", "\\sqrt{2}"), ("x³", "x^2"), ("1½", "\\frac{1}{2}")])
def test_unicode_math_still_tells_different_answers_apart(pred, gold):
    assert is_correct(pred, gold) is False


def test_unicode_choices():
    assert is_correct("0.5", "B", choices=["¼", "½", "¾"]) is True
    assert is_correct("½", "C", choices=["0.25", "0.5", "0.75"]) is False


def test_unicode_normalisation_is_linear_time():
    junk = "√(" * 20000 + "²" * 20000 + "½" * 20000 + "1 " * 20000 + "¹" * 20000 + "⁄" + "(√" * 20000 + ")" * 20000
    t = time.perf_counter()
    answers.unicode_to_latex(junk)
    assert time.perf_counter() - t < 1.0
