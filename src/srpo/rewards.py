# Over 400 lines: every preset's terms, bounds and TRL adapters in one place, so a preset is read top to bottom.
"""SRPO rewards (docs/method.md#rewards, Eqs. 4-8 of the paper) with three presets, plus TRL adapters.

Presets (``PRESETS``)
---------------------
``paper`` (default, docs/method.md#rewards paper preset)::

    R_total = R_format + R_accuracy + I_eff + I_ref + alpha * f_len(L)

``reference`` (docs/method.md#rewards reference preset, the released OpenRLHF training code)::

    R = acc + fmt + 0.1 * f_len

``grpo`` (the paper's plain-GRPO baseline; not defined by the paper's formulas, our documented choice)::

    R = 1.0 * [final answer correct] + 0.5 * [format]

where the format holds for a strict single-round ``<think>..</think> <answer>..</answer>`` response (same
strictness rules as the five-block check) or for a five-block response. No length, reflection or effectiveness
terms.

``perception`` (Perception-R1 as released; docs/method.md#perception)::

    R = 0.9 * [final answer correct] + 0.1 * [released format] + perception_weight * r_v + r_rep

``srpo+perception`` (docs/method.md#perception)::

    R = (the paper preset's terms) + perception_weight * r_v + r_rep

r_v (srpo.perception) comes from a judge and is None for a row without visual facts, or whose judgement failed
under ``judge_failure: skip``; a None term adds nothing to ``total`` (as TRL's sum of the terms). r_rep is the
20-gram repetition penalty, in [-2, 0].

Length term (docs/method.md#rewards)::

    f_len(L) = exp(-((|L - T_target| / (T_max - T_target)) ** 2))
    T_target = 2 * T0, T_max = 2.5 * T0, T0 = tokens(first think) + tokens(first answer), L = tokens(response)

``T0 == 0`` (no think and no answer content): the length term is 0 (the formula would divide by zero; the
released code returns 0 when ``T_max == 0``). ``T_max - T_target = 0.5 * T0 > 0`` otherwise, so no other guard is
needed. Think / answer contents are whitespace-stripped before counting, as in the released code.

Fields of :class:`RewardBreakdown` are the *weighted contributions* to ``total``: ``accuracy`` = R_accuracy
(paper) / acc (reference) / final-answer accuracy (grpo); ``effectiveness`` = I_eff; ``reflection`` = I_ref;
``length`` = ``alpha * f_len`` (already multiplied by alpha = 0.1); so ``total`` is exactly the sum of the terms
of the preset, added in the preset's term order (``PRESET_TERMS``).
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from srpo.answers import CheckerProblems, as_choices, as_text, checker_problems, is_correct
from srpo.errors import InvalidValue
from srpo.format import ParsedResponse, has_wellformed_reflection, is_five_block, is_single_round, parse_response
from srpo.perception import REPETITION_MAX_PENALTY, repetition_penalty
from srpo.reference_reward import score_released

__all__ = [
    "PRESETS",
    "PRESET_TERMS",
    "TRANSITIONS",
    "ALPHA",
    "PERCEPTION_PRESETS",
    "PERCEPTION_WEIGHT",
    "RewardBreakdown",
    "score_response",
    "max_total",
    "min_total",
    "reward_functions",
    "reward_weights",
    "transition_counts",
    "default_token_count",
    "length_factor",
    "completion_text",
]

PRESETS = ("paper", "reference", "grpo", "perception", "srpo+perception")
PERCEPTION_PRESETS = ("perception", "srpo+perception")  # the presets that need a judge
PERCEPTION_WEIGHT = 0.7  # Perception-R1's released runs: visual_reward_factor=0.7

# Term order of each preset = order of reward_functions(preset) and of the summation of `total`.
PRESET_TERMS: dict[str, tuple[str, ...]] = {
    "paper": ("format", "accuracy", "effectiveness", "reflection", "length"),
    "reference": ("accuracy", "format", "length"),
    "grpo": ("accuracy", "format"),
    "perception": ("accuracy", "format", "perception", "repetition"),
    "srpo+perception": ("format", "accuracy", "effectiveness", "reflection", "length", "perception", "repetition"),
}

TRANSITIONS = ("wrong_to_right", "right_to_right", "right_to_wrong", "wrong_to_wrong")

ALPHA = 0.1  # docs/method.md#rewards: alpha = 0.1 (both presets weight f_len by 0.1)
LENGTH_TARGETS = (2.0, 2.5)  # docs/method.md#rewards: T_target = 2 T0, T_max = 2.5 T0

# docs/method.md#rewards paper preset
_PAPER_FORMAT = 0.5
_PAPER_ACCURACY = 0.5
_PAPER_I_EFF = {"wrong_to_right": 0.5, "right_to_right": 0.25, "wrong_to_wrong": 0.0, "right_to_wrong": -0.25}
_PAPER_I_REF = 0.25
# grpo preset
_GRPO_ACCURACY = 1.0
_GRPO_FORMAT = 0.5
# perception preset: Perception-R1's released boxed_math_verify_compute_score, 0.9 * accuracy + 0.1 * format, with
# its format regex (newlines inside the tags, a non-empty \boxed{} in the answer).
_PERCEPTION_ACCURACY = 0.9
_PERCEPTION_FORMAT = 0.1
_PERCEPTION_FORMAT_RE = re.compile(r"^<think>\n.*?\n</think>\n<answer>\n.*?\\boxed{.+?}.*?\n</answer>$", re.DOTALL)

# Bounds. paper: docs/method.md#rewards "Maximum 1.85" is the sum of the per-term maxima (0.5 + 0.5 + 0.5 + 0.25 + 0.1); since
# R_accuracy = 0.5 needs a right first answer and I_eff = 0.5 a wrong one, the largest total a response can reach
# is 1.6 (right->right). The minimum bound -0.25 is the sum of per-term minima; reachable totals are >= 0.
# The perception presets add perception_weight * 1 at most and the repetition penalty, -2, at least.
_MAX_TOTAL = {"paper": 1.85, "reference": 1.6, "grpo": 1.5, "perception": 1.0, "srpo+perception": 1.85}
_MIN_TOTAL = {"paper": -0.25, "reference": 0.0, "grpo": 0.0, "perception": REPETITION_MAX_PENALTY,
              "srpo+perception": -0.25 + REPETITION_MAX_PENALTY}


def _check_preset(preset: object) -> str:
    if preset not in PRESETS:
        raise InvalidValue(f"unknown reward preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    return preset  # type: ignore[return-value]


def max_total(preset: str, perception_weight: float = PERCEPTION_WEIGHT) -> float:
    """Upper bound of ``total`` for ``preset`` (paper 1.85, reference 1.6, grpo 1.5, perception 1.7, srpo+perception
    2.55 at the default weight 0.7; docs/method.md#rewards, #perception)."""
    weight = perception_weight if preset in PERCEPTION_PRESETS else 0.0
    return _MAX_TOTAL[_check_preset(preset)] + weight


def min_total(preset: str) -> float:
    """Lower bound of ``total`` for ``preset`` (paper -0.25 = the I_eff penalty; reference and grpo 0; the
    perception presets 2 lower, the repetition penalty)."""
    return _MIN_TOTAL[_check_preset(preset)]


_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def default_token_count(text: str) -> int:
    """Deterministic tokenizer-free approximation of a token count: the number of regex ``\\w+|[^\\w\\s]``
    pieces (each word / number run and each punctuation or symbol character counts one). Training passes the
    policy tokenizer's count instead (docs/method.md#rewards: "L = number of tokens ... (policy tokenizer)")."""
    if not isinstance(text, str) or not text:
        return 0
    return sum(1 for _ in _TOKEN_RE.finditer(text))


def length_factor(length: float, t0: float, targets: tuple[float, float] = LENGTH_TARGETS) -> float:
    """f_len of docs/method.md#rewards for a response of ``length`` tokens and a first attempt of ``t0`` tokens; 0 when
    ``t0 <= 0`` (documented guard against the division by zero). ``targets``: T_target and T_max in multiples of T0
    (the paper's 2.0 and 2.5: 1 at L == 2*T0, e^-1 at L == 2.5*T0)."""
    if not t0 or t0 <= 0:
        return 0.0
    t_target = targets[0] * t0
    t_max = targets[1] * t0
    return math.exp(-((abs(length - t_target) / (t_max - t_target)) ** 2))


@dataclass(frozen=True)
class RewardBreakdown:
    """Per-term contributions of one response (see the module docstring for the field mapping).

    ``first_correct`` / ``final_correct``: correctness of the first / last ``<answer>`` block, None when the
    response has no answer block (with a single answer both refer to it). ``n_answers``: number of properly
    closed answer blocks."""

    format: float = 0.0
    accuracy: float = 0.0
    effectiveness: float = 0.0
    reflection: float = 0.0
    length: float = 0.0
    total: float = 0.0
    first_correct: bool | None = None
    final_correct: bool | None = None
    n_answers: int = 0
    perception: float | None = None  # perception_weight * r_v; None: no facts, or a skipped judgement
    repetition: float = 0.0

    @property
    def transition(self) -> str | None:
        """``"wrong_to_right"``, ``"right_to_right"``, ``"right_to_wrong"`` or ``"wrong_to_wrong"`` (first ->
        final answer); None with fewer than two answers."""
        if self.n_answers < 2 or self.first_correct is None or self.final_correct is None:
            return None
        return _transition(self.first_correct, self.final_correct)

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "accuracy": self.accuracy,
            "effectiveness": self.effectiveness,
            "reflection": self.reflection,
            "length": self.length,
            "perception": self.perception,
            "repetition": self.repetition,
            "total": self.total,
            "first_correct": self.first_correct,
            "final_correct": self.final_correct,
            "n_answers": self.n_answers,
            "transition": self.transition,
        }


def _transition(first: bool, final: bool) -> str:
    return ("right" if first else "wrong") + "_to_" + ("right" if final else "wrong")


def _length_term(text: str, parsed: ParsedResponse, token_count: Callable[[str], int],
                 targets: tuple[float, float]) -> float:
    """alpha * f_len (docs/method.md#rewards). T0 from the first think and first answer, L over the whole response."""
    t0 = token_count(parsed.first_think or "") + token_count(parsed.first_answer or "")
    if t0 <= 0:
        return 0.0  # T0 == 0: length term 0 (documented guard)
    return ALPHA * length_factor(token_count(text), t0, targets)


def score_response(
    response: str,
    solution: str,
    *,
    preset: str = "paper",
    token_count: Callable[[str], int] | None = None,
    choices: Sequence[str] | None = None,
    visual_score: float | None = None,
    perception_weight: float = PERCEPTION_WEIGHT,
    length_targets: tuple[float, float] = LENGTH_TARGETS,
) -> RewardBreakdown:
    """Score one response against the reference answer ``solution`` with ``preset`` (docs/method.md#rewards).

    ``token_count`` counts tokens for the length term (default :func:`default_token_count`); ``choices`` are the
    options of a multiple-choice problem (their text also counts as a correct answer). Answers are checked with
    :func:`srpo.answers.is_correct`; the ``reference`` preset is the released reward function, quirks included
    (:mod:`srpo.reference_reward`; it ignores ``choices``, as the released code has none). ``visual_score`` is r_v
    from a judge (the perception presets; None: no r_v). ``length_targets``: T_target and T_max of the paper
    presets' length term in multiples of T0 (the ``reference`` preset keeps the released code's). Raises
    ``ValueError`` for an unknown preset; never raises on any response string (non-str responses score as ``""``).
    """
    _check_preset(preset)
    text = response if isinstance(response, str) else ""
    base = _score_base(text, as_text(solution), preset, token_count or default_token_count, as_choices(choices),
                       tuple(length_targets))
    if preset not in PERCEPTION_PRESETS:
        return base
    # docs/method.md#perception: the judge's r_v, weighted, and the repetition penalty; a missing r_v adds nothing.
    perception = None if visual_score is None else perception_weight * visual_score
    repetition = repetition_penalty(text)
    total = base.total + (perception or 0.0) + repetition
    return dataclasses.replace(base, perception=perception, repetition=repetition, total=total)


def _score_base(text: str, gold: str, preset: str, tc: Callable[[str], int],
                ch: Sequence[str] | None, length_targets: tuple[float, float]) -> RewardBreakdown:
    """The terms that need no judge."""
    if preset == "reference":
        # docs/method.md#rewards reference preset: the released reward function, its quirks listed there.
        r = score_released(text, gold, tc)
        return RewardBreakdown(r.format, r.accuracy, 0.0, 0.0, r.length, r.total, r.first_correct, r.final_correct,
                               r.n_answers)
    parsed = parse_response(text)
    n = len(parsed.answers)
    first_correct: bool | None = None
    final_correct: bool | None = None
    if n:
        first_correct = is_correct(parsed.answers[0], gold, choices=ch)
        final_correct = first_correct if n == 1 else is_correct(parsed.answers[-1], gold, choices=ch)
    transition = _transition(bool(first_correct), bool(final_correct)) if n >= 2 else None

    if preset in ("paper", "srpo+perception"):
        # docs/method.md#rewards paper preset. R_format uses the strict five-block check ("the five-block format").
        fmt = _PAPER_FORMAT if is_five_block(text) else 0.0
        acc = _PAPER_ACCURACY if first_correct else 0.0
        # I_eff whenever there are 2+ answer blocks (first vs last); a single answer (no reflection): 0.
        eff = _PAPER_I_EFF[transition] if transition is not None else 0.0
        ref = _PAPER_I_REF if has_wellformed_reflection(text) else 0.0
        length = _length_term(text, parsed, tc, length_targets)
        total = fmt + acc + eff + ref + length  # PRESET_TERMS["paper"] order
        return RewardBreakdown(fmt, acc, eff, ref, length, total, first_correct, final_correct, n)

    if preset == "perception":
        # docs/method.md#perception: the released weights and format regex; accuracy of the final answer by srpo's
        # checker (the released code reads the first <answer> on one line; a single round has one answer).
        acc = _PERCEPTION_ACCURACY if final_correct else 0.0
        fmt = _PERCEPTION_FORMAT if _PERCEPTION_FORMAT_RE.fullmatch(text) else 0.0
        return RewardBreakdown(fmt, acc, 0.0, 0.0, 0.0, acc + fmt, first_correct, final_correct, n)

    # grpo: plain-GRPO baseline. Accuracy of the final (last) answer; format for a single round or five blocks.
    acc = _GRPO_ACCURACY if final_correct else 0.0
    fmt = _GRPO_FORMAT if (is_single_round(text) or is_five_block(text)) else 0.0
    total = acc + fmt  # PRESET_TERMS["grpo"] order
    return RewardBreakdown(fmt, acc, 0.0, 0.0, 0.0, total, first_correct, final_correct, n)


def transition_counts(breakdowns: Iterable[RewardBreakdown]) -> dict[str, int]:
    """Counts of the four transitions over ``breakdowns``, plus ``"none"`` for those with fewer than two
    answers. Pure."""
    counts = {t: 0 for t in TRANSITIONS}
    counts["none"] = 0
    for b in breakdowns:
        t = b.transition
        counts[t if t is not None else "none"] += 1
    return counts


# ---------------------------------------------------------------------------------------------------------------
# TRL adapters
# ---------------------------------------------------------------------------------------------------------------


def completion_text(completion: object) -> str:
    """Text of a TRL completion: a string, or conversational (a list of message dicts whose ``content`` is a str
    or a list of ``{"type": "text", "text": ...}`` parts; assistant messages are joined)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        completion = [completion]
    if not isinstance(completion, Sequence):
        return ""
    msgs = [m for m in completion if isinstance(m, Mapping)]
    assistant = [m for m in msgs if m.get("role") == "assistant"]
    parts: list[str] = []
    for m in assistant or msgs:
        content = m.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, Sequence):
            for part in content:
                if isinstance(part, Mapping) and part.get("type", "text") == "text":
                    t = part.get("text")
                    if isinstance(t, str):
                        parts.append(t)
                elif isinstance(part, str):
                    parts.append(part)
    return "".join(parts)


@dataclass(frozen=True)
class _ScoredBatch:
    breakdowns: list[RewardBreakdown]
    checker_problems: CheckerProblems  # answer checks of this batch that timed out or raised (scored as wrong)


class _BatchScorer:
    """Scores a batch once and shares the breakdowns between the term functions of one preset (TRL calls each
    reward function with the same batch in turn)."""

    def __init__(self, preset: str, token_count: Callable[[str], int] | None,
                 length_targets: tuple[float, float]) -> None:
        self.preset = preset
        self.token_count = token_count
        self.length_targets = length_targets
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._value = _ScoredBatch([], CheckerProblems())

    def __call__(self, completions: Sequence[Any] | None, columns: Mapping[str, Any]) -> _ScoredBatch:
        completions = list(completions or [])
        n = len(completions)
        if "answer" not in columns:
            raise ValueError("SRPO reward functions need the dataset column 'answer' (the reference answer)")
        golds = columns["answer"]
        golds = [golds] * n if isinstance(golds, str) else list(golds)
        choices = columns.get("choices")
        choices = [None] * n if choices is None else list(choices)
        if len(golds) != n or len(choices) != n:
            raise ValueError(f"got {n} completions but {len(golds)} answers / {len(choices)} choices")
        texts = tuple(completion_text(c) for c in completions)
        gold_s = tuple(as_text(g) for g in golds)
        choice_t = tuple(as_choices(c) for c in choices)
        key = (texts, gold_s, choice_t)
        with self._lock:
            if key == self._key:
                return self._value
        before = checker_problems()
        breakdowns = [
            score_response(t, g, preset=self.preset, token_count=self.token_count, choices=c,
                           length_targets=self.length_targets)
            for t, g, c in zip(texts, gold_s, choice_t)
        ]
        value = _ScoredBatch(breakdowns, checker_problems() - before)
        with self._lock:
            self._key, self._value = key, value
        return value


def _log_batch_metrics(batch: _ScoredBatch, log_metric: Callable[[str, float], Any], preset: str,
                       group_size: int | None) -> None:
    """Transition rates (over completions with 2+ answers; 0.0 when there are none), first / final answer
    accuracy (over all completions; a missing answer counts as wrong), the number of answer checks in the
    batch that raised (``verify_errors``) or ran out of time (``verify_timeouts``): they scored as wrong answers,
    and a non-zero count says the accuracy is understated; with a length term, f_len's mean and its spread within
    groups (the mean of each group's standard deviation: 0 means the term moves no advantage)."""
    breakdowns = batch.breakdowns
    if "length" in PRESET_TERMS[preset] and breakdowns:
        f_len = [b.length / ALPHA for b in breakdowns]
        log_metric("length/f_len_mean", sum(f_len) / len(f_len))
        if group_size and len(f_len) % group_size == 0:  # TRL hands a process whole groups, one after another
            groups = [f_len[i:i + group_size] for i in range(0, len(f_len), group_size)]
            log_metric("length/f_len_group_std", sum(_std(g) for g in groups) / len(groups))
    counts = transition_counts(breakdowns)
    with_two = sum(counts[t] for t in TRANSITIONS)
    for t in TRANSITIONS:
        log_metric(f"transitions/{t}", counts[t] / with_two if with_two else 0.0)
    n = len(breakdowns)
    log_metric("accuracy/first", sum(1 for b in breakdowns if b.first_correct) / n if n else 0.0)
    log_metric("accuracy/final", sum(1 for b in breakdowns if b.final_correct) / n if n else 0.0)
    log_metric("verify_errors", float(batch.checker_problems.errors))
    log_metric("verify_timeouts", float(batch.checker_problems.timeouts))


def _std(values: Sequence[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def _make_term_function(scorer: _BatchScorer, term: str, logs_metrics: bool,
                        group_size: int | None = None) -> Callable[..., list[float]]:
    def reward(
        prompts: Any = None,
        completions: Sequence[Any] | None = None,
        completion_ids: Any = None,
        log_metric: Callable[[str, float], Any] | None = None,
        log_extra: Callable[[str, list], Any] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        batch = scorer(completions, kwargs)
        if logs_metrics and callable(log_metric):
            _log_batch_metrics(batch, log_metric, scorer.preset, group_size)
        if logs_metrics and callable(log_extra):  # columns of TRL's completion logs, read by `srpo view`
            log_extra("answer", [as_text(g) for g in ([kwargs["answer"]] * len(batch.breakdowns)
                                                      if isinstance(kwargs["answer"], str) else kwargs["answer"])])
            for column in ("first_correct", "final_correct", "transition"):
                log_extra(column, [getattr(b, column) for b in batch.breakdowns])
        return [float(getattr(b, term) or 0.0) for b in batch.breakdowns]  # final_correct: None (no answer) is 0

    reward.__name__ = f"{term}_reward"
    reward.__qualname__ = f"{term}_reward"
    reward.__doc__ = f"SRPO '{scorer.preset}' preset, term '{term}' (weighted contribution to the total reward)."
    return reward


def _make_perception_function(judge: Any, weight: float) -> Callable[..., Any]:
    """The perception term as an async TRL reward function: the batch's judge calls run concurrently on TRL's event
    loop, and the judge's health is logged every step (docs/method.md#perception)."""

    async def perception_reward(
        prompts: Any = None,
        completions: Sequence[Any] | None = None,
        completion_ids: Any = None,
        log_metric: Callable[[str, float], Any] | None = None,
        visual_facts: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        texts = [completion_text(c) for c in completions or []]
        facts = list(visual_facts) if visual_facts is not None else [None] * len(texts)
        if len(facts) != len(texts):
            raise ValueError(f"got {len(texts)} completions but {len(facts)} visual_facts")
        judged = await judge.score(facts, texts)
        if callable(log_metric):
            for name, value in judged.health.metrics().items():
                log_metric(name, value)
        return [None if score is None else weight * score for score in judged.scores]

    perception_reward.__doc__ = f"perception_weight ({weight}) * r_v; None for a row without visual facts."
    return perception_reward


def reward_functions(preset: str = "paper", token_count: Callable[[str], int] | None = None, *,
                     final_correct_column: bool = False, judge: Any = None,
                     perception_weight: float = PERCEPTION_WEIGHT, group_size: int | None = None,
                     length_targets: tuple[float, float] = LENGTH_TARGETS) -> list[Callable]:
    """TRL reward functions, one per term of ``preset`` in ``PRESET_TERMS[preset]`` order, named
    ``<term>_reward`` so TRL logs each separately (docs/method.md#rewards "Reward terms are logged separately"). Each returns
    the term's weighted contribution, so with :func:`reward_weights` (all 1.0) TRL's weighted sum equals
    ``RewardBreakdown.total``. The gold comes from the dataset column ``answer``, optional options from
    ``choices``. The batch is scored once and shared by the functions; ``accuracy_reward`` also reports the four
    transition rates, first / final accuracy and the answer checks that raised or timed out (``verify_errors``,
    ``verify_timeouts``) through TRL's ``log_metric``. With ``final_correct_column``, one more function last:
    final-answer correctness (1.0 or 0.0) from the same scoring pass, for a weight-0 column the group filter reads.
    With a length term it also logs ``length/f_len_mean`` and, given ``group_size`` (GRPO's num_generations),
    ``length/f_len_group_std``; ``length_targets`` as in :func:`score_response`.

    The perception presets need ``judge`` (srpo.perception_judge): ``perception_reward`` is async and reads the
    dataset column ``visual_facts``; it logs ``judge/requests``, ``judge/failures``, ``judge/retries``,
    ``judge/cache_hits`` and ``judge/latency_s`` (docs/method.md#perception)."""
    _check_preset(preset)
    if preset in PERCEPTION_PRESETS and judge is None:
        raise InvalidValue(f"preset: {preset!r} needs a judge of visual facts; set judge: oracle (synthetic "
                           "problems) or the URL of an OpenAI-compatible server")
    scorer = _BatchScorer(preset, token_count, tuple(length_targets))
    functions = [_make_perception_function(judge, perception_weight) if term == "perception"
                 else _make_term_function(scorer, term, logs_metrics=(term == "accuracy"), group_size=group_size)
                 for term in PRESET_TERMS[preset]]
    if final_correct_column:
        functions.append(_make_term_function(scorer, "final_correct", logs_metrics=False))
    return functions


def reward_weights(preset: str = "paper") -> list[float]:
    """Weights for ``GRPOConfig.reward_weights``, same order as :func:`reward_functions`: all 1.0 (the terms are
    already weighted)."""
    return [1.0] * len(PRESET_TERMS[_check_preset(preset)])
