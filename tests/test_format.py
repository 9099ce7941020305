"""srpo.format: parsing, strict checks and rendering (docs/method.md#format, #rewards)."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from srpo.format import (
    ParsedResponse,
    has_wellformed_reflection,
    is_five_block,
    is_single_round,
    parse_response,
    render_response,
    render_sft_target,
)

FIVE = render_response("first reasoning", "$\\boxed{4}$", "critique of it", "second reasoning", "$\\boxed{5}$")
SFT = render_sft_target("cot", "a1", "r", "gold")


def test_parse_five_block():
    p = parse_response(FIVE)
    assert p.thinks == ("first reasoning", "second reasoning")
    assert p.answers == ("$\\boxed{4}$", "$\\boxed{5}$")
    assert p.reflections == ("critique of it",)
    assert p.first_think == "first reasoning"
    assert p.first_answer == "$\\boxed{4}$"
    assert p.reflection == "critique of it"
    assert p.second_think == "second reasoning"
    assert p.final_answer == "$\\boxed{5}$"


def test_parse_sft_shape():
    assert SFT == "<think>cot</think><answer>a1</answer><reflection>r</reflection><answer>gold</answer>"
    p = parse_response(SFT)
    assert p.thinks == ("cot",)
    assert p.second_think is None
    assert p.first_answer == "a1"
    assert p.final_answer == "gold"
    assert p.reflection == "r"


def test_parse_empty_and_non_str():
    for x in ("", "no tags at all", None, 123, b"<think>x</think>", ["<answer>1</answer>"]):
        p = parse_response(x)  # type: ignore[arg-type]
        assert p == ParsedResponse()
        assert p.first_answer is None and p.final_answer is None and p.reflection is None
        assert p.first_think is None and p.second_think is None


@pytest.mark.parametrize(
    "text, thinks, answers, reflections",
    [
        # unclosed final answer (truncated generation): not an answer
        ("<think>a</think><answer>1</answer><reflection>r</reflection><think>b</think><answer>2", ("a", "b"), ("1",), ("r",)),
        # unclosed think abandoned by the next opening tag
        ("<think>reasoning <answer>5</answer>", (), ("5",), ()),
        # re-opened tag: the earlier, unclosed one is abandoned
        ("<think>a<think>b</think>", ("b",), (), ()),
        # stray / mismatched closing tags are ignored
        ("</answer><think>a</answer>b</think></think>", ("a</answer>b",), (), ()),
        # single answer
        ("<think>t</think><answer> 7 </answer>", ("t",), ("7",), ()),
        # three answers: final = last
        ("<answer>1</answer><answer>2</answer><answer>3</answer>", (), ("1", "2", "3"), ()),
        # empty blocks are blocks (with empty content)
        ("<think></think><answer></answer>", ("",), ("",), ()),
        # tags are case-sensitive and exact
        ("<Think>a</Think><answer >1</answer>", (), (), ()),
    ],
)
def test_parse_tolerant(text, thinks, answers, reflections):
    p = parse_response(text)
    assert (p.thinks, p.answers, p.reflections) == (thinks, answers, reflections)


def test_final_answer_is_last():
    p = parse_response("<answer>1</answer><answer>2</answer><answer>3</answer>")
    assert p.first_answer == "1" and p.final_answer == "3"


def test_parse_huge_inputs_fast():
    cases = [
        "<think>" * 100_000,
        "<think>x</think>" * 50_000,
        "<" * 300_000,
        "<answer>" + "a" * 1_000_000,
        "</think><answer" * 50_000,
    ]
    t = time.perf_counter()
    for c in cases:
        parse_response(c)
        is_five_block(c)
        has_wellformed_reflection(c)
    assert time.perf_counter() - t < 5.0


@pytest.mark.parametrize(
    "text, expected",
    [
        (FIVE, True),
        ("Let me solve it.\n" + FIVE, True),  # text before the first <think> allowed
        (FIVE + "  \n", True),  # trailing whitespace ok
        ("<think>a</think><answer>1</answer><reflection>r</reflection><think>b</think><answer>2</answer>", True),
        (FIVE + " done", False),  # text after the final </answer>
        (FIVE.replace("</answer>\n<reflection>", "</answer> So: <reflection>", 1), False),  # text between blocks
        (render_response("a", "1", "", "b", "2"), False),  # empty reflection
        (render_response("a", "1", "   ", "b", "2"), False),  # whitespace-only reflection
        (render_response("", "1", "r", "b", "2"), False),  # empty think
        (render_response("a", "1", "r", "b", " "), False),  # empty final answer
        (SFT, False),  # SFT shape: no second think
        ("<think>a</think><reflection>r</reflection><answer>1</answer><think>b</think><answer>2</answer>", False),
        ("<answer>1</answer><think>a</think><reflection>r</reflection><think>b</think><answer>2</answer>", False),
        (FIVE[: -len("</answer>")], False),  # unclosed final answer
        (FIVE + "<answer>3</answer>", False),  # three answers
        ("<think>x</think>" + FIVE, False),  # three thinks
        (FIVE.replace("critique of it", "critique <answer>9</answer>"), False),  # nested tag
        ("<think>a</think><answer>1</answer><think>b</think><answer>2</answer>", False),  # no reflection
        ("<answer>x</answer> " + FIVE, False),  # block tags before the first think
        ("", False),
        (None, False),
    ],
)
def test_is_five_block(text, expected):
    assert is_five_block(text) is expected


@pytest.mark.parametrize(
    "text, expected",
    [
        (FIVE, True),
        (SFT, True),  # SFT shape has a well-formed reflection between the answers
        (render_response("a", "1", " ", "b", "2"), False),  # empty
        ("<think>a</think><answer>1</answer><reflection>r</reflection>", False),  # no answer after it
        ("<reflection>r</reflection><answer>1</answer><answer>2</answer>", False),  # before the first answer
        (FIVE.replace("</reflection>", ""), False),  # unclosed
        (FIVE + "<reflection>again</reflection>", False),  # two reflections
        ("<answer>1</answer>" + FIVE.split("</answer>", 1)[1].replace("critique of it", "c <think>x</think>"), False),
        ("<answer>1</answer> junk <reflection>fine</reflection> junk <answer>2</answer>", True),  # format is R_format's job
        ("", False),
    ],
)
def test_has_wellformed_reflection(text, expected):
    assert has_wellformed_reflection(text) is expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>a</think>\n<answer>1</answer>", True),
        ("intro <think>a</think><answer>1</answer>\n", True),
        ("<think>a</think> x <answer>1</answer>", False),
        ("<think>a</think><answer>1</answer> tail", False),
        (FIVE, False),
        ("<answer>1</answer>", False),
    ],
)
def test_is_single_round(text, expected):
    assert is_single_round(text) is expected


def test_render_roundtrip():
    text = render_response("t1", "a1", "r", "t2", "a2")
    p = parse_response(text)
    assert (p.first_think, p.first_answer, p.reflection, p.second_think, p.final_answer) == ("t1", "a1", "r", "t2", "a2")
    assert is_five_block(text) and has_wellformed_reflection(text)


# ---------------------------------------------------------------------------------------------------------------
# property-based: never crashes, consistent
# ---------------------------------------------------------------------------------------------------------------

TAGS = ["<think>", "</think>", "<answer>", "</answer>", "<reflection>", "</reflection>"]
FRAGMENTS = TAGS + ["", " ", "\n", "x", "42", "$\\boxed{B}$", "<", ">", "</", "<think", "answer>", "\\frac{1}{2}"]
tag_soup = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=5), max_size=30).map("".join)
any_text = st.text(max_size=300) | tag_soup


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_text)
def test_parse_never_raises_and_is_consistent(text):
    p = parse_response(text)
    assert isinstance(p, ParsedResponse)
    five = is_five_block(text)
    refl = has_wellformed_reflection(text)
    assert isinstance(five, bool) and isinstance(refl, bool)
    assert isinstance(is_single_round(text), bool)
    if five:
        assert len(p.thinks) == 2 and len(p.answers) == 2 and len(p.reflections) == 1
        assert all(x for x in p.thinks + p.answers + p.reflections)
        assert refl  # a strict five-block response has a well-formed reflection
    if refl:
        assert len(p.answers) >= 2 and len(p.reflections) == 1 and p.reflection


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="<>"), min_size=1, max_size=20).filter(str.strip), min_size=5, max_size=5))
def test_render_parse_roundtrip_property(parts):
    text = render_response(*parts)
    p = parse_response(text)
    assert (p.first_think, p.first_answer, p.reflection, p.second_think, p.final_answer) == tuple(x.strip() for x in parts)
    assert is_five_block(text)
