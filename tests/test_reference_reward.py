"""The `reference` preset is the released reward function, quirks included (docs/method.md#rewards): one test per
released behaviour, each on an input that `paper` (srpo's careful checker) scores differently."""

from __future__ import annotations

import threading

import pytest

from srpo import reference_reward
from srpo.format import parse_response, render_response
from srpo.reference_reward import released_format, released_response
from srpo.rewards import TRANSITIONS, default_token_count, score_response

THINK = "We add 2 and 3 to get the total."
RIGHT, WRONG = "$\\boxed{5}$", "$\\boxed{4}$"


def five(a1: str, a2: str, reflection: str = "The addition was checked again.") -> str:
    return render_response(THINK, a1, reflection, "Recompute 2 + 3 = 5.", a2)


def both(text: str, gold: str, **kw):
    return score_response(text, gold, preset="paper", **kw), score_response(text, gold, preset="reference", **kw)


def test_end_of_turn_markers_removed_and_stripped():
    text = "  " + five(RIGHT, RIGHT) + "<|im_end|>\n"
    assert released_response(text) == five(RIGHT, RIGHT)
    paper, ref = both(text, "5")
    assert paper.format == 0.0  # srpo's strict check sees text after the last </answer>
    assert ref.format == 0.5 and ref.accuracy == 0.75
    for marker in ("<|im_end|>", "<|endoftext|>", "<|end▁of▁sentence|>"):
        assert score_response(five(RIGHT, RIGHT) + marker, "5", preset="reference").format == 0.5
    assert score_response("<|im_end|>", "5", preset="reference").total == 0.0


def test_blocks_counted_as_the_regexes_count_them():
    # An <answer> tag inside the first think: the careful parser drops that think; the released regexes keep it
    # (and start the first answer match inside the think), so the response has two think matches and scores.
    text = (
        "<think>Plan: write the result in <answer> tags.</think><answer>$\\boxed{5}$</answer>"
        "<reflection>Fine.</reflection><think>Again 2 + 3.</think><answer>$\\boxed{5}$</answer>"
    )
    assert len(parse_response(text).thinks) == 1
    ref = score_response(text, "5", preset="reference")
    assert ref.n_answers == 2 and ref.accuracy == 0.75 and ref.total > 0.75


def test_nested_answer_tag_first_answer_is_the_regex_match():
    # An unclosed <answer> before the real one: srpo's parser takes the inner "4" (wrong); the released first
    # match runs from the outer tag and math-verify finds the boxed 5 in it (right).
    text = (
        f"<think>{THINK}</think><answer>{RIGHT} hmm <answer>4</answer>"
        f"<reflection>ok</reflection><think>again</think><answer>{RIGHT}</answer>"
    )
    paper, ref = both(text, "5")
    assert paper.transition == "wrong_to_right"
    assert ref.transition == "right_to_right" and ref.accuracy == 0.75


def test_bare_answer_inside_the_tags_is_not_extracted():
    paper, ref = both(five("12", "12"), "12")
    assert paper.transition == "right_to_right"
    assert ref.transition == "wrong_to_wrong" and ref.accuracy == 0.0 and ref.total == pytest.approx(0.5, abs=0.1)


@pytest.mark.parametrize(
    "gold, final, released",
    [
        ("x > 1", "$\\boxed{(1, \\infty)}$", False),  # an interval is no answer to a relation gold ...
        ("(1,\\infty)", "$\\boxed{x>1}$", True),  # ... but a relation answers an interval gold
        ("1<x<2", "$\\boxed{(1,2)}$", False),
    ],
)
def test_verify_argument_order_prediction_first(gold, final, released):
    """The released code calls verify(prediction, gold): math-verify's set / relation rule then runs the other
    way round from srpo's verify(gold, prediction)."""
    paper, ref = both(five(WRONG, final), gold)
    assert ref.final_correct is released and ref.accuracy == (1.0 if released else 0.0)
    assert paper.final_correct is (not released)


@pytest.mark.parametrize("gold", ["", "\\"])
def test_unparsable_gold_scores_one(gold):
    paper, ref = both(five(WRONG, WRONG), gold)
    assert paper.accuracy == 0.0 and paper.transition == "wrong_to_wrong"
    assert ref.accuracy == 1.0 and ref.first_correct is None and ref.final_correct is None


@pytest.mark.parametrize(
    "final, released",
    [
        ("bob", True),  # b anywhere, even inside a word, and no a, c or d
        ("b", True),
        ("Answer: B", False),  # the a of "Answer" is another letter
        ("(B) or (C)", False),
    ],
)
def test_letter_fallback(final, released):
    paper, ref = both(five("$\\boxed{A}$", final), "B")
    assert ref.final_correct is released and ref.accuracy == (1.0 if released else 0.0)
    if final == "bob":
        assert paper.final_correct is False
    if final == "Answer: B":
        assert paper.final_correct is True


def test_letter_fallback_only_when_acc_is_zero():
    # right -> wrong keeps 0.25: the fallback would have given 1.0
    ref = score_response(five("$\\boxed{B}$", "bob"), "B", preset="reference")
    assert ref.transition == "right_to_wrong" and ref.accuracy == 0.25


def test_whitespace_only_block_passes_the_format():
    text = five(RIGHT, RIGHT, reflection="   ")
    assert released_format(released_response(text))
    paper, ref = both(text, "5")
    assert paper.format == 0.0 and paper.reflection == 0.0
    assert ref.format == 0.5
    # the other strict rules hold as in srpo's check
    assert not released_format(five(RIGHT, RIGHT, reflection=""))
    assert not released_format(five(RIGHT, RIGHT).replace("</reflection>\n", "</reflection>\nNow:\n"))
    assert not released_format(five(RIGHT, RIGHT, reflection="use <think>more</think>"))
    assert released_format("Sure. " + five(RIGHT, RIGHT))


def newline_and_q(text: str) -> int:
    """A toy tokenizer: one token per 'q' and per newline."""
    return text.count("q") + text.count("\n")


def test_length_counted_after_strip():
    body = render_response("qqqq", RIGHT, "qq", "qq", RIGHT)  # 4 newlines + 8 q: L = 12 ... T0 = 4
    text = "\n\n\n" + body + "\n\n\n"
    paper, ref = both(text, "5", token_count=newline_and_q)
    assert ref.length == pytest.approx(0.1 * reference_reward._length_factor(12, 4))
    assert paper.length == pytest.approx(0.1 * reference_reward._length_factor(18, 4))
    assert ref.length != pytest.approx(paper.length)


def test_fewer_than_two_thinks_scores_zero():
    text = f"<think>{THINK}</think><answer>{WRONG}</answer><reflection>r</reflection><answer>{RIGHT}</answer>"
    paper, ref = both(text, "5")
    assert paper.effectiveness == 0.5
    assert ref.total == 0.0 and ref.final_correct is True  # still reported for the metrics


def test_same_in_a_worker_thread_and_counts_problems():
    """Off the main thread the check runs in a helper process: same scores; a comparison that raises is counted."""
    from srpo.answers import checker_problems

    cases = [(five(WRONG, RIGHT), "5"), (five("12", "12"), "12"), (five("$\\boxed{A}$", "bob"), "B"),
             (five(RIGHT, "$\\boxed{1/0}$"), "5")]
    main = [score_response(t, g, preset="reference") for t, g in cases]
    reference_reward.clear_cache()
    before = checker_problems()
    out: list = []
    worker = threading.Thread(target=lambda: out.extend(score_response(t, g, preset="reference") for t, g in cases))
    worker.start()
    worker.join(120)
    assert out == main
    assert (checker_problems() - before).errors == 1  # 1/0 in math-verify's gold slot raises: scored wrong
    assert main[3].transition == "right_to_wrong" and main[3].accuracy == 0.25


@pytest.mark.parametrize("preset", ["paper", "reference", "grpo"])
def test_lower_case_gold_letter_without_options(preset):
    b = score_response(five("$\\boxed{A}$", "$\\boxed{C}$"), "c", preset=preset)
    assert b.transition == "wrong_to_right"
    assert b.final_correct is True


def test_reference_totals_per_transition():
    expected = {"wrong_to_right": 1.5, "right_to_right": 1.25, "right_to_wrong": 0.75, "wrong_to_wrong": 0.5}
    pairs = {"wrong_to_right": (WRONG, RIGHT), "right_to_right": (RIGHT, RIGHT), "right_to_wrong": (RIGHT, WRONG),
             "wrong_to_wrong": (WRONG, WRONG)}
    for t in TRANSITIONS:
        b = score_response(five(*pairs[t]), "5", preset="reference", token_count=default_token_count)
        assert b.transition == t and b.total - b.length == pytest.approx(expected[t], abs=1e-12)
