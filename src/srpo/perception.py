"""Perception-R1's visual perception reward, the pure parts (docs/method.md#perception): the judge prompt, reading
the judge's marks, r_v, the oracle rule and the repetition penalty.

    r_v   = (facts marked 1) / (number of facts), in [0, 1]; no facts -> no r_v (None), never 0
    r_rep = -2 * (1 - unique / total word 20-grams); 0 for responses of fewer than 20 words

Words are the response lower-cased and split on whitespace, as Perception-R1's released `ngram_penalty_reward`
splits them (tongxiao2002/Perception-R1, verl/workers/reward/custom.py).
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

from srpo.prompts import check_prompt_template, read_prompt_template

JUDGE_MARK = "Visual facts to check:"  # the loopback server (tests/fake_openai_server.py) knows a judge request by it

JUDGE_PROMPT_TEMPLATE = """You check whether a response to a visual math problem states given facts about the problem's \
image. For each fact, answer 1 if the response clearly states it (in any wording), otherwise 0. Judge only whether the \
fact is stated, not whether the rest of the reasoning is right.

""" + JUDGE_MARK + """
{facts}

Response:
{response}

Reply with exactly {n_facts} tags, one per fact in the order given, and nothing else: <info1>1 or 0</info1>, \
<info2>1 or 0</info2>, and so on."""

JUDGE_TEMPLATE_FIELDS = {"facts", "response", "n_facts"}
JUDGE_REQUIRED = ("facts", "response")

REPETITION_NGRAM = 20
REPETITION_MAX_PENALTY = -2.0


class UnparsableJudgement(ValueError):
    """A judge reply that does not mark every fact with 0 or 1; the message says what is wrong."""


def format_facts(facts: Sequence[str]) -> str:
    """The facts as the judge sees them: one numbered tag per line, `<info1>fact</info1>`."""
    return "\n".join(f"<info{i}>{fact}</info{i}>" for i, fact in enumerate(facts, 1))


def judge_prompt(template: str, facts: Sequence[str], response: str) -> str:
    return template.format(facts=format_facts(facts), response=response, n_facts=len(facts))


def check_judge_template(template: str, where: str = "judge_prompt") -> None:
    """Known placeholders only, and both that the judge needs: {facts} and {response}."""
    check_prompt_template(template, where, JUDGE_TEMPLATE_FIELDS, JUDGE_REQUIRED, "the judge")


def load_judge_template(path: str | None) -> str:
    """The built-in judge prompt, or the template in file `path`, checked."""
    return read_prompt_template(path, "judge_prompt", JUDGE_PROMPT_TEMPLATE, JUDGE_TEMPLATE_FIELDS, JUDGE_REQUIRED,
                                "the judge")


_MARK_TAG = re.compile(r"<info(\d+)>(.*?)</info\1>", re.DOTALL | re.IGNORECASE)


def parse_judge_marks(text: str, n_facts: int) -> list[int]:
    """The judge's mark (0 or 1) for each of `n_facts` facts, read from `<infoK>V</infoK>` tags
    (docs/method.md#perception):

    * tags are matched by their number, so their order does not matter;
    * the last tag of a number wins, so a judge that first repeats the facts and then marks them is read right
      (the released parser also takes the last one);
    * numbers above `n_facts` (extra tags) are ignored;
    * V is 0 or 1 (whitespace and a trailing `.0` allowed); anything else in the last tag of a fact, or a fact
      without a tag, makes the whole reply unparsable: `UnparsableJudgement`, never a silent 0.
    """
    last: dict[int, str] = {}
    for match in _MARK_TAG.finditer(text or ""):
        index = int(match.group(1))
        if 1 <= index <= n_facts:
            last[index] = match.group(2).strip()
    missing = [i for i in range(1, n_facts + 1) if i not in last]
    if missing:
        raise UnparsableJudgement(f"no mark for fact(s) {missing} of {n_facts}")
    marks = []
    for index in range(1, n_facts + 1):
        value = last[index]
        if value not in ("0", "1", "0.0", "1.0"):
            raise UnparsableJudgement(f"mark of fact {index} is {value[:40]!r}, not 0 or 1")
        marks.append(int(float(value)))
    return marks


def perception_score(marks: Sequence[int], n_facts: int) -> float:
    """r_v: the share of the annotated facts marked stated (the denominator is the number of facts, not of tags)."""
    return sum(marks) / n_facts


def normalise(text: str) -> str:
    """Lower case, runs of whitespace as one space, punctuation stripped from both ends."""
    return " ".join(text.lower().split()).strip(string.punctuation + " ")


def oracle_marks(facts: Sequence[str], response: str) -> list[int]:
    """The `oracle` judge (docs/method.md#perception): a fact is stated when its normalised text occurs in the
    normalised response. Synthetic problems phrase each fact as it appears in their worked solution."""
    text = " ".join(response.lower().split())
    return [int(normalise(fact) in text) for fact in facts]


def clean_facts(value: object) -> list[str] | None:
    """A row's `visual_facts` as a list of non-empty strings, or None when the row has none (None or [])."""
    if value is None or isinstance(value, str):
        return [value.strip()] if isinstance(value, str) and value.strip() else None
    facts = [str(fact).strip() for fact in value if fact is not None and str(fact).strip()]
    return facts or None


def repetition_penalty(text: str, n: int = REPETITION_NGRAM, max_penalty: float = REPETITION_MAX_PENALTY) -> float:
    """r_rep = max_penalty * (1 - unique / total word n-grams); 0 for fewer than n words."""
    words = (text or "").lower().split()
    if len(words) < n:
        return 0.0
    ngrams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return max_penalty * (1 - len(set(ngrams)) / len(ngrams)) + 0.0  # + 0.0: no -0.0 for a response without repeats
