"""Stage-1 work through OpenAI-compatible endpoints: policy attempts and teacher reflections at scale.

Each phase runs its pending items through `srpo.endpoint.run_concurrently`; every finished item (ok or failed, with
its reason, token usage and retry count) is appended durably to a JSONL store in the output dir before it counts.
A rerun loads the store and requests only what is missing (and, with `retry_failed`, what failed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Any, Awaitable, Callable, Sequence

from srpo.config import ReflectConfig
from srpo.data import Problem
from srpo.endpoint import (
    ChatEndpoint,
    MalformedReply,
    RequestFailed,
    RetryPolicy,
    redact_url,
    run_concurrently,
)
from srpo.prompts import (
    TEACHER_PROMPT_TEMPLATE,
    check_prompt_template,
    read_prompt_template,
    system_prompt,
    template_placeholders,
)
from srpo.reflect.teachers import Attempt, Reflection
from srpo.store import AsyncAppender, JsonlStore

logger = logging.getLogger(__name__)

TEMPLATE_FIELDS = {"question", "reasoning", "predicted_answer", "reference_answer", "response"}
# What the teacher must see (docs/method.md#prompts): the question, the reference answer and some of the attempt.
TEACHER_REQUIRED = ("question", "reference_answer", ("reasoning", "response", "predicted_answer"))


def load_teacher_template(path: str | None) -> str:
    """The teacher prompt template: the built-in one (docs/method.md#prompts) or a file, checked by `check_template`."""
    template = read_prompt_template(path, "teacher_prompt", TEACHER_PROMPT_TEMPLATE, TEMPLATE_FIELDS,
                                    TEACHER_REQUIRED, "the teacher")
    _warn_if_answer_only(template, f"teacher_prompt {path}")
    return template


def check_template(template: str, where: str = "teacher_prompt") -> None:
    """Known placeholders only, and the ones docs/method.md#prompts needs: the question, the attempt and the
    reference answer."""
    check_prompt_template(template, where, TEMPLATE_FIELDS, TEACHER_REQUIRED, "the teacher")
    _warn_if_answer_only(template, where)


def _warn_if_answer_only(template: str, where: str) -> None:
    # Allowed (a cheaper prompt), but the reflection then cannot point at steps of the reasoning.
    if not template_placeholders(template, where) & {"reasoning", "response"}:
        logger.warning("%s: the template has no {reasoning} or {response}: the teacher sees only the attempt's answer",
                       where)


def attempt_key(response: str) -> str:
    """Ties a stored teacher reply to the exact attempt it reviewed."""
    return hashlib.sha1(response.encode("utf-8")).hexdigest()[:16]


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)


def fenced_json_values(text: str) -> list[Any]:
    """The JSON values of `text` as a whole and of each ``` code block in it, those that parse, in that order."""
    values: list[Any] = []
    for candidate in [text, *(m.group(1).strip() for m in _FENCE.finditer(text))]:
        try:
            values.append(json.loads(candidate))
        except ValueError:
            continue
    return values


def parse_reflection(content: str | None) -> str:
    """The `reflection` string of a teacher reply `{"reflection": "..."}`, found robustly.

    Accepts bare JSON, JSON in a code fence, JSON inside prose, and a leading `<think>...</think>` block (reasoning
    models). Raises `MalformedReply` with the reason: "empty reply", "not JSON", "missing 'reflection'",
    "'reflection' is not a string", "empty reflection".
    """
    text = (content or "").strip()
    if not text:
        raise MalformedReply("empty reply")
    text = THINK_BLOCK.sub("", text).strip()
    found = fenced_json_values(text)
    if not any(isinstance(obj, dict) and "reflection" in obj for obj in found):
        decoder = json.JSONDecoder()
        for match in re.finditer(r"\{", text):
            try:
                obj, _ = decoder.raw_decode(text, match.start())
            except ValueError:
                continue
            found.append(obj)
            if isinstance(obj, dict) and "reflection" in obj:
                break
    if not found:
        raise MalformedReply("not JSON")
    objs = [obj for obj in found if isinstance(obj, dict) and "reflection" in obj]
    if not objs:
        raise MalformedReply("missing 'reflection'")
    value = objs[0]["reflection"]
    if isinstance(value, list):
        value = "\n".join(str(v) for v in value)
    if value is not None and not isinstance(value, str):
        raise MalformedReply("'reflection' is not a string")
    if not value or not value.strip():
        raise MalformedReply("empty reflection")
    return value.strip()


def make_endpoint(cfg: ReflectConfig, url: str, model: str, api_key_env: str | None) -> ChatEndpoint:
    retry = RetryPolicy(max_retries=cfg.max_retries, malformed_retries=cfg.malformed_retries,
                        backoff_base=cfg.backoff_base, backoff_max=cfg.backoff_max)
    return ChatEndpoint(url, model, api_key_env=api_key_env, concurrency=cfg.concurrency,
                        timeout=cfg.request_timeout, retry=retry, abort_after_failures=cfg.abort_after_failures,
                        image_max_pixels=cfg.image_max_pixels)


class EndpointTeacher:
    """The docs/method.md#prompts teacher on an OpenAI-compatible server: question, images (base64 data URLs), the attempt's
    reasoning and answer, and the reference answer in; `{"reflection": "..."}` out."""

    def __init__(self, cfg: ReflectConfig) -> None:
        self.cfg = cfg
        self.template = load_teacher_template(cfg.teacher_prompt)
        self.endpoint = make_endpoint(cfg, cfg.teacher, cfg.teacher_model, cfg.teacher_api_key_env)

    @property
    def name(self) -> str:
        return f"{self.endpoint.model or 'endpoint'}@{redact_url(self.cfg.teacher)}"

    def prompt(self, problem: Problem, attempt: Attempt) -> str:
        return self.template.format(
            question=problem.question_with_choices(),
            reasoning=attempt.reasoning,
            predicted_answer=attempt.answer,
            reference_answer=problem.answer,
            response=attempt.response,
        )

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"temperature": self.cfg.teacher_temperature,
                                  "max_completion_tokens": self.cfg.teacher_max_tokens}
        if self.cfg.teacher_json_mode:
            params["response_format"] = {"type": "json_object"}
        return {**params, **(self.cfg.teacher_extra_body or {})}

    async def areflect(self, problem: Problem, attempt: Attempt) -> dict[str, Any]:
        """A store record: status ok with the reflection, or failed with the reason; usage and retries in both."""
        base = {"id": problem.id, "attempt": attempt_key(attempt.response)}
        try:
            result = await self.endpoint.ask(self.prompt(problem, attempt), problem.images, parse=parse_reflection,
                                             **self.params())
        except RequestFailed as exc:
            return {**base, "status": "failed", "reason": exc.reason, "usage": exc.usage, "retries": exc.retries,
                    "model": self.endpoint.model}
        return {**base, "status": "ok", "reflection": result.value, "usage": result.usage,
                "retries": result.retries, "model": self.endpoint.model}

    def reflect(self, problem: Problem, attempt: Attempt) -> Reflection:
        """The `Teacher` protocol, one item at a time (no store): raises `RuntimeError` on failure."""
        records: list[dict[str, Any]] = []
        run_concurrently(self.endpoint, [(problem, attempt)], lambda item: self.areflect(*item),
                         lambda _, record: records.append(record), progress=False)
        (record,) = records
        if record["status"] != "ok":
            raise RuntimeError(f"teacher failed on {problem.id}: {record['reason']}")
        return Reflection(record["reflection"])


async def _policy_attempt(endpoint: ChatEndpoint, cfg: ReflectConfig, problem: Problem) -> dict[str, Any]:
    params = {"temperature": cfg.attempt_temperature, "max_completion_tokens": cfg.attempt_max_new_tokens,
              **(cfg.policy_extra_body or {})}
    try:
        result = await endpoint.ask(problem.question_with_choices(), problem.images,
                                    system=system_prompt(cfg.system_prompt) if cfg.system_prompt else None, **params)
    except RequestFailed as exc:
        return {"id": problem.id, "response": "", "status": "failed", "reason": exc.reason, "usage": exc.usage,
                "retries": exc.retries}
    return {"id": problem.id, "response": result.value, "status": "ok", "usage": result.usage,
            "retries": result.retries}


def generate_attempts_endpoint(cfg: ReflectConfig, todo: Sequence[Problem], store: JsonlStore) -> None:
    """Policy attempts for `todo` from the chat endpoint at `cfg.policy`, each stored durably as it finishes."""
    endpoint = make_endpoint(cfg, cfg.policy, cfg.policy_model, cfg.policy_api_key_env)
    run_into_store(endpoint, todo, lambda problem: _policy_attempt(endpoint, cfg, problem), store, cfg.concurrency,
                    desc="policy attempts", progress=cfg.progress)


def reflect_with_store(teacher: EndpointTeacher, items: Sequence[tuple[Problem, Attempt]], store: JsonlStore,
                       concurrency: int, progress: bool = True) -> None:
    """Teacher replies for `items` (already filtered to what is missing), each stored durably as it finishes."""
    run_into_store(teacher.endpoint, items, lambda item: teacher.areflect(*item), store, concurrency,
                    desc="teacher reflections", progress=progress)


def run_into_store(endpoint: ChatEndpoint, items: Sequence[Any], work: Callable[[Any], Awaitable[dict[str, Any]]],
                    store: JsonlStore, concurrency: int, *, desc: str, progress: bool) -> None:
    """`work(item)` -> a record for each item, every record durable (group-committed) before it counts."""
    appender = AsyncAppender(store)
    failed_before = endpoint.failed

    async def keep(_item, record: dict[str, Any]) -> None:
        await appender.append(record)
        if record.get("status") == "failed":
            logger.debug("%s %s failed: %s", desc, record.get("id"), record.get("reason"))

    run_concurrently(endpoint, items, work, keep, concurrency=concurrency, desc=desc, progress=progress)
    failed = endpoint.failed - failed_before
    if failed:
        logger.warning("%s: %d of %d failed after retries (recorded in %s; rerun with --retry-failed to retry)",
                       desc, failed, len(items), store.path)


__all__ = [
    "EndpointTeacher",
    "attempt_key",
    "check_template",
    "generate_attempts_endpoint",
    "load_teacher_template",
    "make_endpoint",
    "parse_reflection",
    "reflect_with_store",
    "run_into_store",
]
