"""Stage-1 work through OpenAI-compatible endpoints: policy attempts and teacher reflections at scale.

Each phase runs its pending items through a bounded pool of async workers; every finished item (ok or failed, with
its reason, token usage and retry count) is appended durably to a JSONL store in the output dir before it counts.
A rerun loads the store and requests only what is missing (and, with `retry_failed`, what failed).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence

from srpo.config import ReflectConfig
from srpo.data import Problem
from srpo.errors import InvalidValue, MissingPath
from srpo.prompts import TEACHER_PROMPT_TEMPLATE, system_prompt
from srpo.reflect.endpoint import (
    ChatEndpoint,
    EndpointFatalError,
    RequestFailed,
    RetryPolicy,
    parse_reflection,
    redact_url,
    user_content,
    user_content_async,
)
from srpo.reflect.store import AsyncAppender, JsonlStore
from srpo.reflect.teachers import Attempt, Reflection

logger = logging.getLogger(__name__)

TEMPLATE_FIELDS = {"question", "reasoning", "predicted_answer", "reference_answer", "response"}
ATTEMPT_FIELDS = {"reasoning", "response", "predicted_answer"}


def load_teacher_template(path: str | None) -> str:
    """The teacher prompt template: the built-in one (SPEC §2) or a file; only known {placeholders} allowed."""
    if not path:
        return TEACHER_PROMPT_TEMPLATE
    file = Path(path)
    if not file.is_file():
        what = "is a folder" if file.is_dir() else "not found"
        raise MissingPath(f"teacher_prompt: template file {file} {what}; pass a text file with the teacher prompt, "
                          "or leave teacher_prompt unset for the built-in one")
    try:
        template = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidValue(f"teacher_prompt: {file} is not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise InvalidValue(f"teacher_prompt: {file} cannot be read ({exc.strerror}); check its permissions") from None
    check_template(template, f"teacher_prompt {file}")
    return template


def check_template(template: str, where: str = "teacher prompt") -> None:
    """Known placeholders only, and the ones SPEC §2 needs: the question, the attempt and the reference answer."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise InvalidValue(f"{where}: not a valid template ({exc}); write literal braces as {{{{ and }}}}") from None
    unknown = {n for n in names if n not in TEMPLATE_FIELDS}
    if unknown:
        raise InvalidValue(f"{where}: unknown placeholder(s) {sorted(unknown)}; use {sorted(TEMPLATE_FIELDS)}")
    missing = [f"{{{name}}}" for name in ("question", "reference_answer") if name not in names]
    if not names & ATTEMPT_FIELDS:
        missing.append("the attempt ({reasoning}, {response} or {predicted_answer})")
    if missing:
        raise InvalidValue(f"{where}: lacks {', '.join(missing)}; the teacher must see the question, the attempt and "
                           "the reference answer (SPEC §2)")
    try:
        template.format(**{name: "" for name in TEMPLATE_FIELDS})
    except (ValueError, IndexError) as exc:  # e.g. a format spec such as {question:d}
        raise InvalidValue(f"{where}: cannot be filled in ({exc}); use plain placeholders such as {{question}}") from None
    if not names & {"reasoning", "response"}:
        logger.warning("%s: the template has no {reasoning} or {response}: the teacher sees only the attempt's answer",
                       where)


def attempt_key(response: str) -> str:
    """Ties a stored teacher reply to the exact attempt it reviewed."""
    return hashlib.sha1(response.encode("utf-8")).hexdigest()[:16]


def _retry_policy(cfg: ReflectConfig) -> RetryPolicy:
    return RetryPolicy(max_retries=cfg.max_retries, malformed_retries=cfg.malformed_retries,
                       backoff_base=cfg.backoff_base, backoff_max=cfg.backoff_max)


class EndpointTeacher:
    """The SPEC §2 teacher on an OpenAI-compatible server: question, images (base64 data URLs), the attempt's
    reasoning and answer, and the reference answer in; `{"reflection": "..."}` out."""

    def __init__(self, cfg: ReflectConfig) -> None:
        self.cfg = cfg
        self.template = load_teacher_template(cfg.teacher_prompt)
        self.endpoint = ChatEndpoint(cfg.teacher, cfg.teacher_model, api_key_env=cfg.teacher_api_key_env,
                                     concurrency=cfg.concurrency, timeout=cfg.request_timeout,
                                     retry=_retry_policy(cfg), abort_after_failures=cfg.abort_after_failures)

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

    def messages(self, problem: Problem, attempt: Attempt) -> list[dict[str, Any]]:
        return [{"role": "user",
                 "content": user_content(problem.images, self.prompt(problem, attempt), self.cfg.image_max_pixels)}]

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"temperature": self.cfg.teacher_temperature,
                                  "max_completion_tokens": self.cfg.teacher_max_tokens}
        if self.cfg.teacher_json_mode:
            params["response_format"] = {"type": "json_object"}
        return {**params, **(self.cfg.teacher_extra_body or {})}

    async def areflect(self, problem: Problem, attempt: Attempt) -> dict[str, Any]:
        """A store record: status ok with the reflection, or failed with the reason; usage and retries in both."""
        base = {"id": problem.id, "attempt": attempt_key(attempt.response)}
        content = await user_content_async(problem.images, self.prompt(problem, attempt), self.cfg.image_max_pixels)
        try:
            result = await self.endpoint.complete([{"role": "user", "content": content}], parse=parse_reflection,
                                                  **self.params())
        except RequestFailed as exc:
            return {**base, "status": "failed", "reason": exc.reason, "usage": exc.usage, "retries": exc.retries,
                    "model": self.endpoint.model}
        return {**base, "status": "ok", "reflection": result.value, "usage": result.usage,
                "retries": result.retries, "model": self.endpoint.model}

    def reflect(self, problem: Problem, attempt: Attempt) -> Reflection:
        """The `Teacher` protocol, one item at a time (no store): raises `RuntimeError` on failure."""

        async def one() -> dict[str, Any]:
            try:
                await self.endpoint.resolve_model()
                return await self.areflect(problem, attempt)
            finally:
                await self.endpoint.aclose()

        record = asyncio.run(one())
        if record["status"] != "ok":
            raise RuntimeError(f"teacher failed on {problem.id}: {record['reason']}")
        return Reflection(record["reflection"])


def endpoint_policy(cfg: ReflectConfig) -> ChatEndpoint:
    return ChatEndpoint(cfg.policy, cfg.policy_model, api_key_env=cfg.policy_api_key_env,
                        concurrency=cfg.concurrency, timeout=cfg.request_timeout, retry=_retry_policy(cfg),
                        abort_after_failures=cfg.abort_after_failures)


async def _policy_attempt(endpoint: ChatEndpoint, cfg: ReflectConfig, problem: Problem) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if cfg.system_prompt:
        messages.append({"role": "system", "content": system_prompt(cfg.system_prompt)})
    messages.append({"role": "user", "content": await user_content_async(problem.images,
                                                                          problem.question_with_choices(),
                                                                          cfg.image_max_pixels)})
    params = {"temperature": cfg.attempt_temperature, "max_completion_tokens": cfg.attempt_max_new_tokens,
              **(cfg.policy_extra_body or {})}
    try:
        result = await endpoint.complete(messages, **params)
    except RequestFailed as exc:
        return {"id": problem.id, "response": "", "status": "failed", "reason": exc.reason, "usage": exc.usage,
                "retries": exc.retries}
    return {"id": problem.id, "response": result.value, "status": "ok", "usage": result.usage,
            "retries": result.retries}


def generate_attempts_endpoint(cfg: ReflectConfig, todo: Sequence[Problem], store: JsonlStore) -> None:
    """Policy attempts for `todo` from the chat endpoint at `cfg.policy`, each stored durably as it finishes."""
    if not todo:
        return

    async def main() -> None:
        endpoint = endpoint_policy(cfg)
        try:
            await endpoint.resolve_model()
            await run_pool(todo, lambda p: _policy_attempt(endpoint, cfg, p), store, cfg.concurrency,
                           desc="policy attempts", progress=cfg.progress)
        finally:
            await endpoint.aclose()

    asyncio.run(main())


def reflect_with_store(teacher: EndpointTeacher, items: Sequence[tuple[Problem, Attempt]], store: JsonlStore,
                       concurrency: int, progress: bool = True) -> None:
    """Teacher replies for `items` (already filtered to what is missing), each stored durably as it finishes."""
    if not items:
        return

    async def main() -> None:
        try:
            await teacher.endpoint.resolve_model()
            await run_pool(items, lambda item: teacher.areflect(*item), store, concurrency,
                           desc="teacher reflections", progress=progress)
        finally:
            await teacher.endpoint.aclose()

    asyncio.run(main())


@dataclass
class PoolStats:
    done: int = 0
    failed: int = 0
    retries: int = 0


async def run_pool(items: Sequence[Any], work: Callable[[Any], Awaitable[dict[str, Any]]], store: JsonlStore,
                   concurrency: int, *, desc: str = "items", progress: bool = True) -> PoolStats:
    """Run `work(item)` with at most `concurrency` in flight; each record is durable before the bar moves.

    The first exception (e.g. `EndpointFatalError`) cancels the other workers and propagates; every record written
    before it stays in the store.
    """
    from tqdm.auto import tqdm

    stats = PoolStats()
    appender = AsyncAppender(store)
    pending = iter(items)
    bar = tqdm(total=len(items), desc=desc, unit="item", disable=not progress, dynamic_ncols=True, smoothing=0.1)

    async def worker() -> None:
        for item in pending:  # a shared iterator: no await between taking and starting an item
            record = await work(item)
            await appender.append(record)
            stats.done += 1
            stats.retries += int(record.get("retries") or 0)
            if record.get("status") == "failed":
                stats.failed += 1
                logger.debug("%s %s failed: %s", desc, record.get("id"), record.get("reason"))
            bar.update(1)
            if stats.failed or stats.retries:
                bar.set_postfix(failed=stats.failed, retries=stats.retries, refresh=False)

    tasks = [asyncio.create_task(worker()) for _ in range(max(1, min(concurrency, len(items))))]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                raise task.exception()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        bar.close()
    if stats.failed:
        logger.warning("%s: %d of %d failed after retries (recorded in %s; rerun with --retry-failed to retry)",
                       desc, stats.failed, len(items), store.path)
    return stats


__all__ = [
    "EndpointFatalError",
    "EndpointTeacher",
    "attempt_key",
    "check_template",
    "generate_attempts_endpoint",
    "load_teacher_template",
    "reflect_with_store",
    "run_pool",
]
