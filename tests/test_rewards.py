"""srpo.rewards: every case of docs/method.md#rewards for each preset, bounds, and the TRL adapters."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from srpo.format import render_response, render_sft_target
from srpo.rewards import (
    ALPHA,
    PRESET_TERMS,
    PERCEPTION_PRESETS,
    PRESETS,
    TRANSITIONS,
    RewardBreakdown,
    default_token_count,
    length_factor,
    max_total,
    min_total,
    reward_functions,
    reward_weights,
    score_response,
    transition_counts,
)

RIGHT, WRONG = "$\\boxed{5}$", "$\\boxed{4}$"
GOLD = "5"


def five(a1: str, a2: str, reflection: str = "The addition was checked again.") -> str:
    return render_response("We add 2 and 3 to get the total.", a1, reflection, "Recompute 2 + 3 = 5.", a2)


def no_length(b: RewardBreakdown) -> float:
    return b.total - b.length


CASES = {"right_to_right": (RIGHT, RIGHT), "wrong_to_right": (WRONG, RIGHT), "right_to_wrong": (RIGHT, WRONG), "wrong_to_wrong": (WRONG, WRONG)}

# docs/method.md#rewards: totals of a well-formed response, length term aside.
EXPECTED = {
    "paper": {"right_to_right": 1.5, "wrong_to_right": 1.25, "right_to_wrong": 1.0, "wrong_to_wrong": 0.75},
    "reference": {"wrong_to_right": 1.5, "right_to_right": 1.25, "right_to_wrong": 0.75, "wrong_to_wrong": 0.5},
    "grpo": {"wrong_to_right": 1.5, "right_to_right": 1.5, "right_to_wrong": 0.5, "wrong_to_wrong": 0.5},
    # docs/method.md#perception, without facts (no r_v) and without repetition: 0.9 for a right final answer; the
    # released format is single-round, so a five-block response has none. srpo+perception is then the paper preset.
    "perception": {"wrong_to_right": 0.9, "right_to_right": 0.9, "right_to_wrong": 0.0, "wrong_to_wrong": 0.0},
    "srpo+perception": {"right_to_right": 1.5, "wrong_to_right": 1.25, "right_to_wrong": 1.0, "wrong_to_wrong": 0.75},
}
# paper terms (format, accuracy, effectiveness, reflection) per transition
PAPER_TERMS = {
    "right_to_right": (0.5, 0.5, 0.25, 0.25),
    "wrong_to_right": (0.5, 0.0, 0.5, 0.25),
    "right_to_wrong": (0.5, 0.5, -0.25, 0.25),
    "wrong_to_wrong": (0.5, 0.0, 0.0, 0.25),
}
REFERENCE_ACC = {"wrong_to_right": 1.0, "right_to_right": 0.75, "right_to_wrong": 0.25, "wrong_to_wrong": 0.0}


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("transition", TRANSITIONS)
def test_transitions_table(preset, transition):
    b = score_response(five(*CASES[transition]), GOLD, preset=preset)
    assert b.transition == transition
    assert b.n_answers == 2
    assert no_length(b) == pytest.approx(EXPECTED[preset][transition], abs=1e-12)
    if preset in ("paper", "srpo+perception"):
        assert (b.format, b.accuracy, b.effectiveness, b.reflection) == PAPER_TERMS[transition]
    elif preset == "perception":
        assert (b.format, b.accuracy, b.perception) == (0.0, 0.9 if transition.endswith("to_right") else 0.0, None)
    elif preset == "reference":
        assert (b.format, b.accuracy, b.effectiveness, b.reflection) == (0.5, REFERENCE_ACC[transition], 0.0, 0.0)
    else:
        assert b.format == 0.5 and b.accuracy == (1.0 if transition.endswith("to_right") else 0.0) and b.length == 0.0


@pytest.mark.parametrize(
    "preset, order",
    [
        ("paper", ["right_to_right", "wrong_to_right", "right_to_wrong", "wrong_to_wrong"]),
        ("reference", ["wrong_to_right", "right_to_right", "right_to_wrong", "wrong_to_wrong"]),
    ],
)
def test_preset_orders(preset, order):
    """docs/method.md#rewards: the presets rank outcomes differently; pin both orders (strict)."""
    vals = [no_length(score_response(five(*CASES[t]), GOLD, preset=preset)) for t in order]
    assert vals == sorted(vals, reverse=True) and len(set(vals)) == 4


def test_total_is_sum_of_terms():
    for preset in PRESETS:
        for t in TRANSITIONS:
            b = score_response(five(*CASES[t]), GOLD, preset=preset)
            assert b.total == sum(getattr(b, term) or 0.0 for term in PRESET_TERMS[preset])  # no r_v: None


# ---------------------------------------------------------------------------------------------------------------
# single answer, no reflection, malformed
# ---------------------------------------------------------------------------------------------------------------

SINGLE_RIGHT = "<think>We add 2 and 3.</think>\n<answer>$\\boxed{5}$</answer>"
SINGLE_WRONG = "<think>We add 2 and 3.</think>\n<answer>$\\boxed{4}$</answer>"


@pytest.mark.parametrize(
    "preset, response, expected",
    [
        # one answer: paper gives R_accuracy only (I_eff, I_ref 0; no five-block format)
        ("paper", SINGLE_RIGHT, dict(format=0.0, accuracy=0.5, effectiveness=0.0, reflection=0.0)),
        ("paper", SINGLE_WRONG, dict(format=0.0, accuracy=0.0, effectiveness=0.0, reflection=0.0)),
        # reference: fewer than two think / answer blocks -> total 0 (released fallback)
        ("reference", SINGLE_RIGHT, dict(format=0.0, accuracy=0.0, effectiveness=0.0, reflection=0.0, length=0.0, total=0.0)),
        ("reference", SINGLE_WRONG, dict(total=0.0)),
        # grpo: single-round format is the format
        ("grpo", SINGLE_RIGHT, dict(format=0.5, accuracy=1.0, total=1.5)),
        ("grpo", SINGLE_WRONG, dict(format=0.5, accuracy=0.0, total=0.5)),
    ],
)
def test_single_answer(preset, response, expected):
    b = score_response(response, GOLD, preset=preset)
    assert b.transition is None and b.n_answers == 1
    assert b.first_correct is b.final_correct is (response == SINGLE_RIGHT)
    for k, v in expected.items():
        assert getattr(b, k) == pytest.approx(v, abs=1e-12), k


def test_single_answer_length_uses_that_attempt():
    """docs/method.md#rewards: with a single answer f_len uses T0 of that attempt."""
    b = score_response(SINGLE_RIGHT, GOLD, preset="paper")
    t0 = default_token_count("We add 2 and 3.") + default_token_count("$\\boxed{5}$")
    assert b.length == pytest.approx(0.1 * length_factor(default_token_count(SINGLE_RIGHT), t0))


NO_REFLECTION = (
    "<think>We add 2 and 3.</think><answer>$\\boxed{4}$</answer>"
    "<think>Again: 2 + 3 = 5.</think><answer>$\\boxed{5}$</answer>"
)


def test_two_answers_without_reflection():
    p = score_response(NO_REFLECTION, GOLD, preset="paper")
    assert (p.format, p.accuracy, p.effectiveness, p.reflection) == (0.0, 0.0, 0.5, 0.0)
    r = score_response(NO_REFLECTION, GOLD, preset="reference")
    assert (r.format, r.accuracy) == (0.0, 1.0)  # two thinks and two answers: no fallback; not strict format
    g = score_response(NO_REFLECTION, GOLD, preset="grpo")
    assert (g.format, g.accuracy) == (0.0, 1.0)


MALFORMED = {
    "unclosed_final": five(RIGHT, RIGHT)[: -len("</answer>")],
    "wrong_order": "<think>a</think><reflection>r</reflection><answer>$\\boxed{5}$</answer><think>b</think><answer>$\\boxed{5}$</answer>",
    "text_between": five(RIGHT, RIGHT).replace("</reflection>\n<think>", "</reflection>\nNow again:\n<think>"),
    "empty_reflection": five(RIGHT, RIGHT, reflection="  "),
    "text_after": five(RIGHT, RIGHT) + "\nThat's all.",
    "nested": five(RIGHT, RIGHT, reflection="use <think>more</think> care"),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_loses_format(name):
    text = MALFORMED[name]
    for preset in PRESETS:
        b = score_response(text, GOLD, preset=preset)
        # the released format regex accepts a whitespace-only block (tests/test_reference_reward.py)
        assert b.format == (0.5 if (preset, name) == ("reference", "empty_reflection") else 0.0), (preset, name)
        assert min_total(preset) <= b.total <= max_total(preset)


@pytest.mark.parametrize(
    "name, paper_terms",
    [
        # (format, accuracy, effectiveness, reflection)
        ("unclosed_final", (0.0, 0.5, 0.0, 0.0)),  # one closed answer: no I_eff, no I_ref
        ("wrong_order", (0.0, 0.5, 0.25, 0.0)),  # reflection before the first answer
        ("text_between", (0.0, 0.5, 0.25, 0.25)),  # reflection itself is fine
        ("empty_reflection", (0.0, 0.5, 0.25, 0.0)),
        ("text_after", (0.0, 0.5, 0.25, 0.25)),
        ("nested", (0.0, 0.5, 0.25, 0.0)),
    ],
)
def test_malformed_paper_terms(name, paper_terms):
    b = score_response(MALFORMED[name], GOLD, preset="paper")
    assert (b.format, b.accuracy, b.effectiveness, b.reflection) == paper_terms


def test_reference_zero_fallback():
    """docs/method.md#rewards reference: fewer than two <think> or two <answer> blocks -> every term 0."""
    cases = [
        render_sft_target("We add.", RIGHT, "Fine.", RIGHT),  # one think (SFT shape)
        MALFORMED["unclosed_final"],  # one closed answer
        SINGLE_RIGHT,
        "",
        "$\\boxed{5}$",
    ]
    for text in cases:
        b = score_response(text, GOLD, preset="reference")
        assert (b.format, b.accuracy, b.effectiveness, b.reflection, b.length, b.total) == (0.0,) * 6, text
    # the SFT shape still earns the paper preset's terms
    p = score_response(cases[0], GOLD, preset="paper")
    assert (p.format, p.accuracy, p.effectiveness, p.reflection) == (0.0, 0.5, 0.25, 0.25)


def test_no_answer_and_garbage():
    for preset in PRESETS:
        for text in ["", "just text", "<think>only thinking</think>", None, 42]:
            b = score_response(text, GOLD, preset=preset)  # type: ignore[arg-type]
            assert b.first_correct is None and b.final_correct is None and b.transition is None
            assert b.accuracy == 0.0 and b.effectiveness == 0.0 and b.reflection == 0.0


# ---------------------------------------------------------------------------------------------------------------
# multiple choice and LaTeX
# ---------------------------------------------------------------------------------------------------------------

CHOICES = ["30^\\circ", "45^\\circ", "60^\\circ", "90^\\circ"]


@pytest.mark.parametrize(
    "a1, a2, transition, reference",
    [
        ("$\\boxed{A}$", "$\\boxed{B}$", "wrong_to_right", "wrong_to_right"),
        # reference: a bare "(B)" is not extracted; the released letter rule rights a final "B" (a, c, d absent)
        ("(B)", "B", "right_to_right", "wrong_to_right"),
        ("B. $45^\\circ$", "The answer is C.", "right_to_wrong", "wrong_to_wrong"),
        ("$45^\\circ$", "\\text{B}", "right_to_right", "wrong_to_right"),  # option text counts (not in reference)
        ("b", "(D)", "right_to_wrong", "wrong_to_wrong"),
        ("$\\boxed{60^\\circ}$", "D", "wrong_to_wrong", "wrong_to_wrong"),
    ],
)
def test_multiple_choice(a1, a2, transition, reference):
    for preset in PRESETS:
        b = score_response(five(a1, a2), "B", preset=preset, choices=CHOICES)
        expected = reference if preset == "reference" else transition
        assert b.transition == expected
        assert no_length(b) == pytest.approx(EXPECTED[preset][expected], abs=1e-12)


@pytest.mark.parametrize(
    "a1, a2, gold, transition",
    [
        ("$\\boxed{\\frac{1}{2}}$", "$\\boxed{0.5}$", "0.5", "right_to_right"),
        ("$\\boxed{0.3}$", "$\\boxed{\\frac{1}{3}}$", "\\frac{1}{3}", "wrong_to_right"),
        ("$\\boxed{\\frac{1}{3}}$", "$\\boxed{0.3}$", "\\frac{1}{3}", "right_to_wrong"),
        ("$\\boxed{2\\sqrt{3}}$", "$\\boxed{\\sqrt{12}}$", "2\\sqrt{3}", "right_to_right"),
    ],
)
def test_latex_answers(a1, a2, gold, transition):
    b = score_response(five(a1, a2), gold, preset="paper")
    assert b.transition == transition


# ---------------------------------------------------------------------------------------------------------------
# length term
# ---------------------------------------------------------------------------------------------------------------


def count_q(text: str) -> int:
    """A toy tokenizer: one token per letter 'q' (in no tag; makes L and T0 exact)."""
    return text.count("q")


def test_length_factor_values():
    assert length_factor(20, 10) == 1.0  # L == T_target
    assert length_factor(25, 10) == pytest.approx(math.exp(-1))  # L == T_max
    assert length_factor(15, 10) == pytest.approx(math.exp(-1))  # symmetric
    assert length_factor(10, 10) == pytest.approx(math.exp(-4))
    assert length_factor(5, 0) == 0.0  # T0 == 0 guard


@pytest.mark.parametrize("preset", ["paper", "reference"])
def test_length_term_in_score(preset):
    # T0 = 4 (first think "qqqq", first answer without w): T_target 8, T_max 10
    at_target = render_response("qqqq", RIGHT, "qq", "qq", RIGHT)  # L = 8
    at_max = render_response("qqqq", RIGHT, "qqq", "qqq", RIGHT)  # L = 10
    b1 = score_response(at_target, GOLD, preset=preset, token_count=count_q)
    b2 = score_response(at_max, GOLD, preset=preset, token_count=count_q)
    assert b1.length == pytest.approx(0.1)
    assert b2.length == pytest.approx(0.1 * math.exp(-1))
    assert b1.total == pytest.approx(EXPECTED[preset]["right_to_right"] + 0.1)


def test_length_zero_t0():
    text = render_response("x", RIGHT, "r", "y", RIGHT)
    for preset in ("paper", "reference"):
        assert score_response(text, GOLD, preset=preset, token_count=count_q).length == 0.0


def test_default_token_count():
    assert default_token_count("Hello, world 42!") == 5
    assert default_token_count("") == 0
    assert default_token_count(None) == 0  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------
# presets and bounds
# ---------------------------------------------------------------------------------------------------------------


def test_bounds_and_presets():
    assert PRESETS == ("paper", "reference", "grpo", "perception", "srpo+perception")
    assert (max_total("paper"), max_total("reference"), max_total("grpo")) == (1.85, 1.6, 1.5)
    assert (min_total("paper"), min_total("reference"), min_total("grpo")) == (-0.25, 0.0, 0.0)


def test_unknown_preset():
    with pytest.raises(ValueError, match="paper.*reference.*grpo"):
        score_response("x", "1", preset="nope")
    for f in (max_total, min_total, reward_weights, reward_functions):
        with pytest.raises(ValueError):
            f("nope")


def test_transition_counts():
    bs = [score_response(five(*CASES[t]), GOLD) for t in TRANSITIONS] + [score_response(SINGLE_RIGHT, GOLD)]
    assert transition_counts(bs) == {t: 1 for t in TRANSITIONS} | {"none": 1}
    assert transition_counts([]) == {t: 0 for t in TRANSITIONS} | {"none": 0}


# ---------------------------------------------------------------------------------------------------------------
# property-based: never raises, totals within bounds
# ---------------------------------------------------------------------------------------------------------------

ANSWERS = ["$\\boxed{5}$", "5", "4", "\\frac{10}{2}", "B", "(B)", "", " ", "x", "$\\boxed{"]
PIECES = ["<think>", "</think>", "<answer>", "</answer>", "<reflection>", "</reflection>", " ", "\n", "reason", "ok"]
structured = st.builds(
    render_response,
    st.sampled_from(["a", "", "w w", "reason <"]),
    st.sampled_from(ANSWERS),
    st.sampled_from(["r", "", "check"]),
    st.sampled_from(["b", "", "again"]),
    st.sampled_from(ANSWERS),
)
soup = st.lists(st.sampled_from(PIECES + ANSWERS), max_size=25).map("".join)
responses = structured | soup | st.text(max_size=200) | st.builds(lambda a, b: a + b, structured, soup)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(responses, st.sampled_from(["5", "B", "\\frac{1}{2}", "x", ""]), st.none() | st.just(["5", "4", "x"]))
def test_totals_within_bounds(response, gold, choices):
    for preset in PRESETS:
        b = score_response(response, gold, preset=preset, choices=choices)
        assert min_total(preset) <= b.total <= max_total(preset)
        assert b.total == sum(getattr(b, t) or 0.0 for t in PRESET_TERMS[preset])
        if preset == "paper":
            assert 0.0 <= b.total <= 1.6 + 1e-12  # reachable range (see rewards module docstring)
        assert 0.0 <= b.length <= 0.1


# ---------------------------------------------------------------------------------------------------------------
# TRL adapters
# ---------------------------------------------------------------------------------------------------------------


def conversational(text: str, parts: bool) -> list[dict]:
    content = [{"type": "text", "text": text[: len(text) // 2]}, {"type": "text", "text": text[len(text) // 2 :]}] if parts else text
    return [{"role": "assistant", "content": content}]


@pytest.mark.parametrize("preset", [p for p in PRESETS if p not in PERCEPTION_PRESETS])  # those: test_perception.py
def test_trl_adapter_sum_equals_total(preset):
    texts = [five(*CASES[t]) for t in TRANSITIONS] + [SINGLE_RIGHT, five("(A)", "$\\boxed{B}$"), "garbage"]
    golds = [GOLD] * 5 + ["B", GOLD]
    choices = [None] * 5 + [CHOICES, None]
    completions = [conversational(t, parts=i % 2 == 0) for i, t in enumerate(texts)]
    calls = {"n": 0}

    def counting(s: str) -> int:
        calls["n"] += 1
        return default_token_count(s)

    funcs = reward_functions(preset, token_count=counting)
    weights = reward_weights(preset)
    assert len(funcs) == len(weights) == len(PRESET_TERMS[preset])
    assert [f.__name__ for f in funcs] == [f"{t}_reward" for t in PRESET_TERMS[preset]]
    metrics: dict[str, list[float]] = {}
    extra: dict = {}
    outs = [
        f(
            prompts=[[{"role": "user", "content": "q"}]] * len(texts),
            completions=completions,
            completion_ids=[[1, 2]] * len(texts),
            trainer_state=None,
            log_metric=lambda name, value: metrics.setdefault(name, []).append(value),
            log_extra=lambda column, values: extra.setdefault(column, values),
            answer=golds,
            choices=choices,
            image=[None] * len(texts),
        )
        for f in funcs
    ]
    n_calls_all_terms = calls["n"]
    for out in outs:
        assert isinstance(out, list) and len(out) == len(texts) and all(isinstance(v, float) for v in out)
    for i, (t, g, c) in enumerate(zip(texts, golds, choices)):
        b = score_response(t, g, preset=preset, choices=c)
        assert sum(w * out[i] for w, out in zip(weights, outs)) == b.total  # exactly
    # scored once per batch, shared by the term functions
    calls["n"] = 0
    for t, g, c in zip(texts, golds, choices):
        score_response(t, g, preset=preset, token_count=counting, choices=c)
    assert n_calls_all_terms == calls["n"]
    # transition rates and accuracies logged once per batch (over the 5 completions with 2 answers)
    assert set(metrics) == {f"transitions/{t}" for t in TRANSITIONS} | {"accuracy/first", "accuracy/final"} | {
        "verify_errors", "verify_timeouts"} | ({"length/f_len_mean"} if "length" in PRESET_TERMS[preset] else set())
    assert all(len(v) == 1 for v in metrics.values())
    assert metrics["verify_errors"] == metrics["verify_timeouts"] == [0.0]  # every check of this batch completed
    assert metrics["transitions/wrong_to_right"][0] == pytest.approx(2 / 5)
    assert metrics["transitions/right_to_right"][0] == pytest.approx(1 / 5)
    assert sum(metrics[f"transitions/{t}"][0] for t in TRANSITIONS) == pytest.approx(1.0)
    assert metrics["accuracy/first"][0] == pytest.approx(3 / 7)  # r->r, r->w, single right
    assert metrics["accuracy/final"][0] == pytest.approx(4 / 7)  # r->r, w->r, single right, mc w->r


def test_trl_adapter_plain_strings_and_missing_answer():
    (acc, fmt) = reward_functions("grpo")
    assert acc(prompts=["q"], completions=[SINGLE_RIGHT], answer=[GOLD]) == [1.0]
    assert fmt(prompts=["q"], completions=[SINGLE_RIGHT], answer=[GOLD]) == [0.5]
    with pytest.raises(ValueError, match="answer"):
        acc(prompts=["q"], completions=[SINGLE_RIGHT])


# ---------------------------------------------------------------------------------------------------------------
# unicode math: paper and grpo check "½" as "1/2"; reference checks answers as the released code does
# ---------------------------------------------------------------------------------------------------------------

# (unicode answer, gold, whether the released check accepts it)
UNICODE_ANSWERS = [
    ("½", "1/2", False),
    ("$\\boxed{1½}$", "\\frac{3}{2}", False),
    ("√2", "\\sqrt{2}", False),
    ("x²", "x^2", False),
    ("x₁", "x_1", False),
    ("(-∞, 2]", "(-\\infty, 2]", False),
    ("−5", "-5", False),  # bare inside the tags: the released parse finds nothing
    ("x ≤ 3", "x \\le 3", False),
]


@pytest.mark.parametrize("answer, gold, before", UNICODE_ANSWERS)
def test_unicode_answers_by_preset(answer, gold, before):
    response = five("$\\boxed{7}$", answer)  # wrong, then the unicode spelling of the gold
    assert score_response(response, gold, preset="paper").transition == "wrong_to_right"
    assert score_response(response, gold, preset="grpo").accuracy == 1.0
    reference = score_response(response, gold, preset="reference")
    assert reference.transition == ("wrong_to_right" if before else "wrong_to_wrong")
    assert no_length(reference) == EXPECTED["reference"][reference.transition]


def test_reference_preset_unicode_through_trl_adapter():
    """The reward functions TRL calls follow the same rule per preset."""
    texts = [five("$\\boxed{7}$", a) for a, _, _ in UNICODE_ANSWERS]
    golds = [g for _, g, _ in UNICODE_ANSWERS]
    for preset, term, value in (("paper", "effectiveness", 0.5), ("grpo", "accuracy", 1.0)):  # wrong -> right
        reward = reward_functions(preset)[PRESET_TERMS[preset].index(term)]
        assert reward(completions=texts, answer=golds) == [value] * len(texts)
    ref_acc = reward_functions("reference")[PRESET_TERMS["reference"].index("accuracy")]
    assert ref_acc(completions=texts, answer=golds) == [REFERENCE_ACC["wrong_to_right" if b else "wrong_to_wrong"]
                                                        for _, _, b in UNICODE_ANSWERS]


def test_length_term_spread_within_groups_is_logged():
    """f_len's mean and its spread within each group: a spread of 0 means the length term moves no advantage."""
    think = "one two three four"
    short = render_response(think, "$\\boxed{3}$", "ok", "x", "$\\boxed{3}$")
    long = render_response(think, "$\\boxed{3}$", "ok " * 8, "x " * 8, "$\\boxed{3}$")
    texts = [short, long, short, short]  # group 1: two lengths; group 2: one length
    words = lambda text: len(text.split())  # noqa: E731
    f_len = [score_response(t, "3", token_count=words).length / ALPHA for t in texts]
    assert f_len[0] != f_len[1]
    metrics = {}
    (accuracy,) = [f for f in reward_functions("paper", token_count=words, group_size=2) if f.__name__ == "accuracy_reward"]
    accuracy(completions=texts, answer=["3"] * 4, log_metric=metrics.__setitem__)
    assert metrics["length/f_len_mean"] == pytest.approx(sum(f_len) / 4)
    assert metrics["length/f_len_group_std"] == pytest.approx(abs(f_len[0] - f_len[1]) / 2 / 2)  # (std 1 + 0) / 2


def test_length_targets_move_where_f_len_peaks():
    """T_target and T_max in multiples of T0 (docs/method.md#demo-findings): f_len is 1 at the target, e^-1 at T_max,
    and the paper's (2.0, 2.5) is the default."""
    assert length_factor(30, 10) == length_factor(30, 10, (2.0, 2.5)) == pytest.approx(math.exp(-4))
    assert length_factor(35, 10, (3.5, 4.0)) == pytest.approx(1.0)
    assert length_factor(40, 10, (3.5, 4.0)) == pytest.approx(math.exp(-1))
    text = five(WRONG, RIGHT)
    paper = score_response(text, GOLD, preset="paper")
    moved = score_response(text, GOLD, preset="paper", length_targets=(3.0, 3.5))
    parsed_t0 = default_token_count("We add 2 and 3 to get the total.") + default_token_count(WRONG)
    assert moved.length == pytest.approx(ALPHA * length_factor(default_token_count(text), parsed_t0, (3.0, 3.5)))
    assert moved.length != pytest.approx(paper.length)
    assert moved.total - paper.total == pytest.approx(moved.length - paper.length)
