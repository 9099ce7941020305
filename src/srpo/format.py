"""Response format of SRPO (docs/method.md#format): parsing, strict checks and rendering.

A reflective response is five blocks (docs/method.md#format)::

    <think>first reasoning</think> <answer>first answer</answer>
    <reflection>critique of the first attempt</reflection>
    <think>second reasoning</think> <answer>final answer</answer>

The stage-1 SFT target has no second ``<think>``::

    <think>cot</think><answer>a1</answer><reflection>r</reflection><answer>gold</answer>

Design notes
------------
* Everything here runs in linear time: one ``re.finditer`` over the tags (a fixed alternation, no nested
  quantifiers, so no catastrophic backtracking) and string slicing.
* Tags are matched exactly as written by the prompts and the released code: lower case, no spaces inside the
  angle brackets (``<think>``, ``</think>``, ``<answer>``, ``</answer>``, ``<reflection>``, ``</reflection>``).
* No function in this module raises on any input; ``None`` and non-``str`` values are treated as ``""``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "ParsedResponse",
    "parse_response",
    "is_five_block",
    "is_single_round",
    "has_wellformed_reflection",
    "render_sft_target",
    "render_response",
    "BLOCK_KINDS",
]

BLOCK_KINDS = ("think", "answer", "reflection")

# One fixed alternation: matches every opening and closing tag of the three block kinds.
_TAG_RE = re.compile(r"<(/?)(think|answer|reflection)>")

# The five-block order of docs/method.md#format, #rewards (reference preset strict match).
_FIVE_BLOCK_ORDER = ("think", "answer", "reflection", "think", "answer")
# The single-round order used by the `grpo` preset's format term (see srpo.rewards).
_SINGLE_ROUND_ORDER = ("think", "answer")


def _as_text(text: object) -> str:
    """None / non-str -> "" (docs/method.md#format: the parser never raises)."""
    return text if isinstance(text, str) else ""


@dataclass(frozen=True)
class _Block:
    kind: str
    open_start: int  # index of "<" of the opening tag
    content_start: int
    content_end: int  # index of "<" of the closing tag
    close_end: int  # index just past the closing tag


def _scan(text: str) -> tuple[list[tuple[int, int, bool, str]], list[_Block]]:
    """Tokenise ``text`` into tag events and properly closed blocks (linear time).

    Returns ``(tags, blocks)`` where ``tags`` is every tag occurrence as ``(start, end, is_close, kind)`` and
    ``blocks`` the properly closed blocks in order of appearance.

    Tolerance rules (docs/method.md#format "returns what it found"):
    * a block counts only when its opening tag is followed by the matching closing tag with no other opening tag
      in between;
    * an opening tag met while a block is still open abandons the earlier, unclosed block (its text is not a
      block: ``<think>a<think>b</think>`` yields one think, ``"b"``; an unclosed ``<think>`` followed by a
      closed ``<answer>`` yields just the answer);
    * a closing tag that does not close the currently open block (stray, mismatched or nested) is ignored;
    * a block still open at the end of the text (e.g. a truncated generation) is not a block.
    """
    tags: list[tuple[int, int, bool, str]] = []
    blocks: list[_Block] = []
    open_kind: str | None = None
    open_start = content_start = 0
    for m in _TAG_RE.finditer(text):
        is_close = m.group(1) == "/"
        kind = m.group(2)
        start, end = m.span()
        tags.append((start, end, is_close, kind))
        if not is_close:
            open_kind, open_start, content_start = kind, start, end
        elif open_kind == kind:
            blocks.append(_Block(kind, open_start, content_start, start, end))
            open_kind = None
        # else: stray / mismatched closing tag -> ignored
    return tags, blocks


@dataclass(frozen=True)
class ParsedResponse:
    """What :func:`parse_response` found: the (stripped) contents of each properly closed block, per kind, in
    order of appearance."""

    thinks: tuple[str, ...] = ()
    answers: tuple[str, ...] = ()
    reflections: tuple[str, ...] = ()

    @property
    def first_think(self) -> str | None:
        return self.thinks[0] if self.thinks else None

    @property
    def first_answer(self) -> str | None:
        """Content of the first <answer> block (docs/method.md#format "first answer")."""
        return self.answers[0] if self.answers else None

    @property
    def reflection(self) -> str | None:
        """Content of the first <reflection> block."""
        return self.reflections[0] if self.reflections else None

    @property
    def second_think(self) -> str | None:
        return self.thinks[1] if len(self.thinks) >= 2 else None

    @property
    def final_answer(self) -> str | None:
        """Content of the LAST <answer> block (docs/method.md#format "final answer"); equals ``first_answer`` when the
        response has a single answer."""
        return self.answers[-1] if self.answers else None

    @property
    def n_answers(self) -> int:
        return len(self.answers)


def parse_response(text: str) -> ParsedResponse:
    """Tolerant parser of a (reflective) response (docs/method.md#format).

    Accepts the five-block shape, the SFT shape (no second think) and anything else: it returns the stripped
    contents of every properly closed ``<think>``, ``<answer>`` and ``<reflection>`` block, in order, and never
    raises (malformed, nested, unclosed, empty, huge or non-str input; see :func:`_scan` for the rules).
    Contents are ``str.strip()``-ed, as in the released code (which strips before counting tokens).
    """
    try:
        text = _as_text(text)
        if "<" not in text:
            return ParsedResponse()
        _, blocks = _scan(text)
        found: dict[str, list[str]] = {"think": [], "answer": [], "reflection": []}
        for b in blocks:
            found[b.kind].append(text[b.content_start : b.content_end].strip())
        return ParsedResponse(tuple(found["think"]), tuple(found["answer"]), tuple(found["reflection"]))
    except Exception:  # pragma: no cover - defensive: the parser must never raise (docs/method.md#format)
        return ParsedResponse()


def _strict_order_match(text: str, order: tuple[str, ...]) -> bool:
    """True iff ``text`` is exactly the blocks of ``order``: no other block tags anywhere, each block non-empty
    (non-whitespace) and free of other tags, only whitespace between blocks, nothing but whitespace after the
    last block; any (tag-free) text before the first block is allowed."""
    tags, blocks = _scan(text)
    if len(tags) != 2 * len(order) or len(blocks) != len(order):
        return False
    for i, (kind, b) in enumerate(zip(order, blocks)):
        if b.kind != kind:
            return False
        # The opening/closing tags of this block must be consecutive tag events (nothing nested inside).
        o, c = tags[2 * i], tags[2 * i + 1]
        if o[0] != b.open_start or c[1] != b.close_end:
            return False
        if not text[b.content_start : b.content_end].strip():
            return False
        if i > 0 and text[blocks[i - 1].close_end : b.open_start].strip():
            return False  # only whitespace between blocks
    return not text[blocks[-1].close_end :].strip()  # ends with the final closing tag (trailing ws ok)


def is_five_block(text: str) -> bool:
    """The strict format check of docs/method.md#rewards (reference preset ``fmt``), also used for the paper preset's
    R_format ("the five-block format", docs/method.md#rewards paper preset).

    Exactly 2 think, 2 answer and 1 reflection blocks (counting every opening and closing tag in the text),
    each non-empty (non-whitespace), in the order think, answer, reflection, think, answer, with only whitespace
    between blocks, the response ending with the final ``</answer>`` (trailing whitespace ok); text before the
    first ``<think>`` is allowed (it must not contain block tags, since tags are counted over the whole text).
    """
    try:
        text = _as_text(text)
        return _strict_order_match(text, _FIVE_BLOCK_ORDER)
    except Exception:  # pragma: no cover
        return False


def is_single_round(text: str) -> bool:
    """Strict single-round format ``<think>..</think> <answer>..</answer>`` (same rules as
    :func:`is_five_block`, one think and one answer, no reflection). Used by the ``grpo`` preset."""
    try:
        text = _as_text(text)
        return _strict_order_match(text, _SINGLE_ROUND_ORDER)
    except Exception:  # pragma: no cover
        return False


def has_wellformed_reflection(text: str) -> bool:
    """I_ref condition of the paper preset (docs/method.md#rewards): "a well-formed, non-empty <reflection> block is present".

    Our reading (documented choice): the text holds exactly one ``<reflection>`` and one ``</reflection>`` tag,
    they form a properly closed block with no other block tag inside, its content is non-empty
    (non-whitespace), and it sits where a reflection belongs: after the end of the first closed answer block and
    before the start of the last closed answer block. A response with a single answer therefore never earns
    I_ref (docs/method.md#rewards: "With no reflection (a single answer), I_eff and I_ref are 0"). The rest of the response need
    not be well formed (that is R_format's job); the SFT shape (no second think) qualifies.
    """
    try:
        text = _as_text(text)
        if "<reflection>" not in text:
            return False
        tags, blocks = _scan(text)
        opens = [t for t in tags if t[3] == "reflection" and not t[2]]
        closes = [t for t in tags if t[3] == "reflection" and t[2]]
        if len(opens) != 1 or len(closes) != 1:
            return False
        refl = [b for b in blocks if b.kind == "reflection"]
        if len(refl) != 1:
            return False
        r = refl[0]
        # nothing nested inside: the two reflection tags are consecutive tag events
        idx = next(i for i, t in enumerate(tags) if t[0] == r.open_start)
        if idx + 1 >= len(tags) or tags[idx + 1][1] != r.close_end:
            return False
        if not text[r.content_start : r.content_end].strip():
            return False
        answers = [b for b in blocks if b.kind == "answer"]
        if len(answers) < 2:
            return False
        return answers[0].close_end <= r.open_start and answers[-1].open_start >= r.close_end
    except Exception:  # pragma: no cover
        return False


def render_sft_target(think: str, first_answer: str, reflection: str, final_answer: str) -> str:
    """The stage-1 SFT target of docs/method.md#format:
    ``<think>cot</think><answer>a1</answer><reflection>r</reflection><answer>gold</answer>``."""
    return (
        f"<think>{think}</think><answer>{first_answer}</answer>"
        f"<reflection>{reflection}</reflection><answer>{final_answer}</answer>"
    )


def render_response(think1: str, answer1: str, reflection: str, think2: str, answer2: str) -> str:
    """The five-block response of docs/method.md#format (one block per line; passes :func:`is_five_block` when every part is
    non-empty and free of block tags)."""
    return (
        f"<think>{think1}</think>\n<answer>{answer1}</answer>\n"
        f"<reflection>{reflection}</reflection>\n"
        f"<think>{think2}</think>\n<answer>{answer2}</answer>"
    )
