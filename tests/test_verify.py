"""Answer checks that give no answer (math-verify timed out or raised): never cached, counted, logged, and reported
per training batch as `verify_timeouts` / `verify_errors`.

The slow inputs are real: sympy needs seconds to evaluate a large binomial coefficient while math-verify parses
it, so a 1 s bound runs out and a 60 s bound completes. Each test uses its own coefficient, because sympy keeps
the values it has computed for the rest of the process.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from srpo import answers, verify
from srpo.answers import CheckerProblems, checker_problems, is_correct
from srpo.rewards import reward_functions

# A gold whose parse takes several seconds, and the same number spelled otherwise (so that srpo's string and
# number fast paths cannot decide it and math-verify must parse both).
SLOW_MAIN = ("\\binom{250000}{250000-125000}", "\\binom{250000}{125000}")
SLOW_THREAD = ("\\binom{240000}{240000-120000}", "\\binom{240000}{120000}")
SLOW_COMPARISON = ("\\sin(x)^{400}+\\cos(x)^{400}", "\\sin(x)^{2}")  # parses at once, compares for seconds
# sympy cannot evaluate 1/0 (zoo): math-verify raises on every comparison against this gold (a broken data row).
BROKEN_GOLD = "1/0"


@pytest.fixture
def fresh_counts(monkeypatch):
    """A fresh process-wide count, so that the first warnings (the ones with their input) are this test's."""
    monkeypatch.setattr(answers, "_problems", {"error": 0, "timeout": 0})


def problems_since(before: CheckerProblems) -> CheckerProblems:
    return checker_problems() - before


def timed_check(pred: str, gold: str, timeout: float) -> tuple[bool, float]:
    t = time.perf_counter()
    ok = is_correct(pred, gold, timeout=timeout)
    return ok, time.perf_counter() - t


def test_parse_timeout_is_not_cached_and_a_later_call_completes(caplog, fresh_counts):
    answers.clear_caches()
    before = checker_problems()
    with caplog.at_level(logging.WARNING, logger="srpo.answers"):
        for _ in range(2):
            ok, seconds = timed_check(*SLOW_MAIN, timeout=1)
            assert ok is False and seconds < 3
    assert problems_since(before) == CheckerProblems(errors=0, timeouts=2)  # the second call ran again
    assert verify._parse_gold.cache_info().currsize == 0  # the gold that timed out was not stored
    assert answers._is_correct_cached.cache_info().currsize == 0
    assert "ran out of time" in caplog.text and SLOW_MAIN[1] in caplog.text  # the warning shows the input
    # the same check with time to finish gives the true answer, and that one is cached
    assert is_correct(*SLOW_MAIN, timeout=60) is True
    assert problems_since(before) == CheckerProblems(errors=0, timeouts=2)
    ok, seconds = timed_check(*SLOW_MAIN, timeout=60)
    assert ok is True and seconds < 0.5


def test_comparison_timeout_is_not_cached():
    answers.clear_caches()
    before = checker_problems()
    for _ in range(2):
        ok, seconds = timed_check(*SLOW_COMPARISON, timeout=1)
        assert ok is False and seconds < 3 * 1 + 1.5
    assert problems_since(before) == CheckerProblems(errors=0, timeouts=2)
    assert answers._is_correct_cached.cache_info().currsize == 0


def test_helper_process_timeout_is_not_cached_and_a_later_call_completes():
    """Off the main thread math-verify runs in a helper process; its timeouts reach the caller the same way."""
    answers.clear_caches()
    before = checker_problems()
    out: dict = {}

    def run():
        out["short"] = [timed_check(*SLOW_THREAD, timeout=1) for _ in range(2)]
        out["problems_after_short"] = problems_since(before)
        out["long"] = is_correct(*SLOW_THREAD, timeout=60)
        out["broken"] = is_correct("5", BROKEN_GOLD, timeout=2)

    th = threading.Thread(target=run)
    th.start()
    th.join(180)
    assert all(ok is False and seconds < 3 * 1 + 1.5 for ok, seconds in out["short"])
    assert out["problems_after_short"] == CheckerProblems(errors=0, timeouts=2)
    assert out["long"] is True
    assert out["broken"] is False
    assert problems_since(before) == CheckerProblems(errors=1, timeouts=2)


def test_checker_exception_is_counted_logged_and_not_cached(caplog, fresh_counts):
    answers.clear_caches()
    before = checker_problems()
    with caplog.at_level(logging.WARNING, logger="srpo.answers"):
        assert is_correct("5", BROKEN_GOLD) is False
        assert is_correct("5", BROKEN_GOLD) is False
    assert problems_since(before) == CheckerProblems(errors=2, timeouts=0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and "'5'" in warnings[0] and "'1/0'" in warnings[0] and "Can't evaluate" in warnings[0]
    # a gold that is fine is untouched by the broken one
    assert is_correct("5", "5.0") is True and problems_since(before).errors == 2


def test_warnings_are_rate_limited(caplog, fresh_counts):
    with caplog.at_level(logging.WARNING, logger="srpo.answers"):
        for i in range(2 * answers._SUMMARY_EVERY + 3):
            assert is_correct(str(i), BROKEN_GOLD) is False
    messages = [r.getMessage() for r in caplog.records if r.name == "srpo.answers"]
    detailed = [m for m in messages if "prediction" in m]
    assert len(detailed) == answers._DETAILED_WARNINGS  # the first ones, with their input
    assert "'0'" in detailed[0] and "'4'" in detailed[-1]
    summaries = [m for m in messages if "so far" in m]
    assert summaries == [f"{n} answer checks have raised an error so far, each counted as a wrong answer"
                         for n in (answers._SUMMARY_EVERY, 2 * answers._SUMMARY_EVERY)]


# `reference` compares as the released code does, verify(prediction, gold), where this gold raises nothing; its
# counting is tested in tests/test_reference_reward.py.
@pytest.mark.parametrize("preset", ["paper", "grpo"])
def test_reward_metrics_report_verify_errors(preset, caplog, fresh_counts):
    """A batch whose gold math-verify cannot evaluate: the rewards are those of wrong answers, as before, but the
    accuracy function's logged metrics now say how many checks failed."""
    answers.clear_caches()
    response = (
        "<think>Two and three.</think>\n<answer>5</answer>\n<reflection>Checked.</reflection>\n"
        "<think>Again two and three.</think>\n<answer>$\\boxed{5}$</answer>"
    )
    golds = [BROKEN_GOLD, "5", BROKEN_GOLD]
    funcs = reward_functions(preset)
    accuracy = funcs[[f.__name__ for f in funcs].index("accuracy_reward")]
    metrics: dict[str, list[float]] = {}
    with caplog.at_level(logging.WARNING, logger="srpo.answers"):
        values = accuracy(
            prompts=["q"] * 3,
            completions=[response] * 3,
            answer=golds,
            log_metric=lambda name, value: metrics.setdefault(name, []).append(value),
        )
    assert metrics["verify_errors"] == [4.0]  # first and final answer of the two broken rows
    assert metrics["verify_timeouts"] == [0.0]
    assert metrics["accuracy/final"] == [pytest.approx(1 / 3)]
    assert values[0] == values[2] == 0.0 and values[1] > 0.0  # the broken rows score as wrong answers
    assert "1/0" in caplog.text
