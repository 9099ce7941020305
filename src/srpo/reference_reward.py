"""The ``reference`` reward preset: the authors' released reward function, reproduced with its quirks
(docs/method.md#rewards, reference preset). ``srpo.rewards`` dispatches to :func:`score_released`.

    R = acc + fmt + 0.1 * f_len

Where this differs from the careful ``paper`` path (``srpo.format`` / ``srpo.answers``), it is on purpose: the
preset exists to reproduce the paper's runs, so each released behaviour below is kept and listed in
docs/method.md#rewards:

* the response is the assistant text with ``<|im_end|>``, ``<|end▁of▁sentence|>`` and ``<|endoftext|>`` removed,
  then ``strip()``-ed; an empty response scores 0;
* blocks are the matches of non-greedy DOTALL regexes on that text (``<think>(.*?)</think>``,
  ``<answer>(.*?)</answer>``), so nested or repeated tags count as the regexes count them;
* fewer than two think or two answer matches: every term 0 (the released code raises and falls back to 0);
* answers 1 and 2 are the first and last answer matches *with their tags*, parsed by math-verify with string,
  LaTeX and expression extraction; the gold is parsed as ``$gold$`` with the defaults; ``verify(pred, gold)``
  (the prediction in math-verify's gold slot, as released). A bare ``12`` or ``B`` in the tags is usually not
  extracted, hence wrong;
* a gold that parses to nothing: acc = 1.0;
* acc still 0 and a gold item that is a letter a-d: acc = 1.0 when that letter occurs anywhere in the last answer
  (case-insensitive, even inside words) and none of the other three letters a-d does;
* the format regex's ``.+?`` accepts a whitespace-only block;
* f_len: L counts the whole (stripped) response, T0 the stripped first think and first answer matches.

One departure, for srpo's rule that a timeout is a wrong answer (docs/method.md#verification): a math-verify call
that runs out of time scores that answer wrong and is counted (``verify_timeouts``); the released code would
read a gold whose parse timed out as unparsable (acc 1.0), an outcome that depends on the machine's speed.
Errors follow the released code (a parse that raises finds nothing, a comparison that raises is not equal) and
are counted (``verify_errors``).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from srpo.answers import record_check_problem
from srpo.verify import CheckError, CheckTimeout, released_check

__all__ = ["ReleasedScore", "score_released", "released_format", "released_response", "clear_cache", "TIMEOUT"]

TIMEOUT = 5.0  # seconds per math-verify call: math-verify's defaults, which the released code uses
_ALPHA = 0.1
_FORMAT = 0.5
_ACC = {(False, True): 1.0, (True, True): 0.75, (True, False): 0.25, (False, False): 0.0}  # (first, final) right
_SINGLE_ACC = 0.5
_CHOICES = ("a", "b", "c", "d")
_END_MARKERS = ("<|im_end|>", "<|end▁of▁sentence|>", "<|endoftext|>")
_THINK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_CACHE_SIZE = 2**14
_MAX_CACHED_LEN = 4096


def _exact_count(tag: str, n: int) -> str:
    """Lookaheads: ``tag`` occurs at least ``n`` times and not ``n + 1`` times (the released pattern's guards)."""
    return f"(?=(?:.*{tag}){{{n}}})(?!(?:.*{tag}){{{n + 1}}})"


_COUNTS = {"<think>": 2, "</think>": 2, "<answer>": 2, "</answer>": 2, "<reflection>": 1, "</reflection>": 1}
_BLOCKS = r"\s*".join(f"<{k}>(.+?)</{k}>" for k in ("think", "answer", "reflection", "think", "answer"))
_FORMAT_RE = re.compile("^" + "".join(_exact_count(t, n) for t, n in _COUNTS.items()) + ".*" + _BLOCKS + r"\s*$",
                        re.DOTALL)


def released_response(text: object) -> str:
    """The text the released reward scores: the end-of-turn markers removed, then stripped."""
    s = text if isinstance(text, str) else ""
    for marker in _END_MARKERS:
        s = s.replace(marker, "")
    return s.strip()


def released_format(response: str) -> bool:
    """The released strict format: exactly 2 ``<think>``, 2 ``<answer>`` and 1 ``<reflection>`` tag pairs
    (counted as substrings), blocks in the five-block order, each ``.+?`` (whitespace-only passes), only
    whitespace between them, nothing but whitespace after the last ``</answer>``; any tag-free text before."""
    return _FORMAT_RE.search(response) is not None


def _letter_fallback(last_block: str, gold_texts: tuple[str, ...]) -> bool:
    """Released rule: a gold item a-d occurs in the last answer (tags removed, case-insensitive, anywhere)
    and none of the other letters a-d does."""
    student = last_block.strip().replace("</answer>", "").replace("<answer>", "").strip().lower()
    for item in gold_texts:
        letter = item.lower()
        if letter in _CHOICES and letter in student:
            if all(c not in student for c in _CHOICES if c != letter):
                return True
    return False


class _Uncached(Exception):
    """Carries a result that must not be cached (a check in it timed out or raised)."""

    def __init__(self, value: tuple) -> None:
        super().__init__()
        self.value = value


def _check(blocks: tuple[str, ...], gold: str, timeout: float) -> tuple:
    """``(gold_texts, outcomes)``; raises :class:`_Uncached` when an outcome is an error or a timeout."""
    try:
        gold_texts, outcomes = released_check(blocks, gold, timeout)
    except CheckTimeout as e:
        raise _Uncached(((), ("timeout",) * len(blocks), str(e))) from None
    except CheckError as e:
        raise _Uncached(((), ("error",) * len(blocks), str(e))) from None
    if any(o in ("error", "timeout") for o in outcomes):
        raise _Uncached((gold_texts, outcomes, "math-verify, released reward check"))
    return gold_texts, outcomes


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _check_cached(blocks: tuple[str, ...], gold: str, timeout: float) -> tuple:
    return _check(blocks, gold, timeout)


def _outcomes(blocks: tuple[str, ...], gold: str, timeout: float) -> tuple[tuple[str, ...] | None, tuple[bool, ...]]:
    """Gold texts (None: unparsable) and whether each block is right; problems are counted, never cached."""
    try:
        if sum(map(len, blocks)) + len(gold) > _MAX_CACHED_LEN:
            gold_texts, outcomes = _check(blocks, gold, timeout)
        else:
            gold_texts, outcomes = _check_cached(blocks, gold, timeout)
    except _Uncached as u:
        gold_texts, outcomes, detail = u.value
        for block, outcome in zip(blocks, outcomes):
            if outcome in ("error", "timeout"):
                record_check_problem(outcome, block, gold, detail)
    return gold_texts, tuple(o == "right" for o in outcomes)


def clear_cache() -> None:
    _check_cached.cache_clear()


def _length_factor(length: int, t0: int) -> float:
    """Released f_len: 0 when T_max == 0 (T0 == 0), else exp(-((|L - 2 T0| / (0.5 T0)) ** 2))."""
    t_target, t_max = 2 * t0, 2.5 * t0
    if t_max == 0:
        return 0.0
    return math.exp(-((abs(length - t_target) / (t_max - t_target)) ** 2))


@dataclass(frozen=True)
class ReleasedScore:
    """Terms of the released reward (weighted: ``length`` is 0.1 * f_len) and what the answer checks found.
    ``first_correct`` / ``final_correct``: None without an answer match or with an unparsable gold; the letter
    fallback makes the final answer right. ``n_answers``: the number of answer regex matches."""

    accuracy: float = 0.0
    format: float = 0.0
    length: float = 0.0
    total: float = 0.0
    first_correct: bool | None = None
    final_correct: bool | None = None
    n_answers: int = 0


def score_released(
    response: object, gold: str, token_count: Callable[[str], int], timeout: float = TIMEOUT
) -> ReleasedScore:
    """Score one response as the released reward function does (see the module docstring). Never raises."""
    text = released_response(response)
    answers = list(_ANSWER_RE.finditer(text))
    n = len(answers)
    if not n:
        return ReleasedScore()
    blocks = (answers[0].group(0),) if n == 1 else (answers[0].group(0), answers[-1].group(0))
    gold_texts, right = _outcomes(blocks, gold, timeout)
    first: bool | None
    final: bool | None
    if gold_texts is None:  # released: "Failed to parse gold solution" -> 1.0
        acc, first, final = 1.0, None, None
    else:
        first, final = right[0], right[-1]
        acc = (_SINGLE_ACC if first else 0.0) if n == 1 else _ACC[(first, final)]
        if acc == 0.0 and _letter_fallback(blocks[-1], gold_texts):
            acc, final = 1.0, True
            first = True if n == 1 else first
    thinks = _THINK_RE.findall(text)
    if len(thinks) < 2 or n < 2:  # released: the length helper raises, the sample scores 0
        return ReleasedScore(0.0, 0.0, 0.0, 0.0, first, final, n)
    fmt = _FORMAT if released_format(text) else 0.0
    t0 = token_count(thinks[0].strip()) + token_count(answers[0].group(1).strip())
    length = _ALPHA * _length_factor(token_count(text), t0)
    return ReleasedScore(acc, fmt, length, acc + fmt + length, first, final, n)
