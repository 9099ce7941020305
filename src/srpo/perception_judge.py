"""The judges of the perception reward (docs/method.md#perception): `PerceptionJudge`, any OpenAI-compatible server
through srpo.endpoint's `ChatEndpoint`, and `OracleJudge`, the rule for synthetic problems, with no network.

A judge scores a batch at once and never raises into training: a request that fails after its retries, or a reply
that does not mark every fact, is counted and its r_v is None (`failure: skip`, TRL leaves it out) or 0.0
(`failure: zero`). Identical (facts, response) pairs are requested once: in the batch and, through a bounded cache,
in later batches. Settings that cannot work (a bad URL, an unset key variable, a bad template) raise a `UserError`
when the judge is built, before any model loads.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from srpo.endpoint import ChatEndpoint, MalformedReply, RetryPolicy, is_url, parse_endpoint
from srpo.errors import InvalidValue
from srpo.perception import (
    UnparsableJudgement,
    clean_facts,
    judge_prompt,
    load_judge_template,
    oracle_marks,
    parse_judge_marks,
    perception_score,
)

logger = logging.getLogger(__name__)

FAILURE_POLICIES = ("skip", "zero")
# One wave for a 1,024-completion generation batch: at 1 s judge latency 512 needs two waves (>= 2 s) whatever the
# machine. benchmarks/judge_overhead.py: 2.3-2.6 s at 1024 vs 3.4 s at 512 on 2 cores shared with other jobs.
DEFAULT_CONCURRENCY = 1024
CACHE_SIZE = 65_536  # (facts, response) pairs remembered; a 4,000-step run would otherwise keep millions of responses
JUDGE_MAX_TOKENS = 512  # Perception-R1's judge settings: temperature 0, at most 512 tokens
LOGGED_FAILURES = 5  # the first failures are logged with their reason, then only counted


@dataclass
class JudgeHealth:
    """One batch's judge traffic: pairs requested, pairs that failed (after retries, or unparsable), retries sent,
    samples served without a request of their own (cached, or an identical pair in the batch), mean seconds per
    requested pair (retries included)."""

    requests: int = 0
    failures: int = 0
    retries: int = 0
    cache_hits: int = 0
    latency_s: float = 0.0

    def metrics(self) -> dict[str, float]:
        return {f"judge/{name}": float(getattr(self, name))
                for name in ("requests", "failures", "retries", "cache_hits", "latency_s")}


@dataclass
class JudgedBatch:
    """Per sample: r_v (None: no facts, or a skipped failure) and the marks (None: no facts, or failed)."""

    scores: list[float | None]
    marks: list[list[int] | None]
    health: JudgeHealth = field(default_factory=JudgeHealth)


class _Judge:
    """Shared by both judges: facts cleaned, pairs deduplicated and cached, the failure policy applied."""

    def __init__(self, failure: str = "skip") -> None:
        if failure not in FAILURE_POLICIES:
            raise InvalidValue(f"judge_failure: {failure!r} is unknown; use one of {FAILURE_POLICIES}")
        self.failure = failure
        self._cache: OrderedDict[tuple, list[int]] = OrderedDict()
        self._logged_failures = 0

    counts_requests = True  # the oracle sends none

    async def _marks(self, facts: list[str], response: str) -> list[int]:
        raise NotImplementedError

    async def _before_batch(self) -> None:
        """Set-up a batch needs once (the remote judge: its model name)."""

    def _retries_sent(self) -> int:
        return 0

    async def score(self, facts_per_sample: Sequence[object], responses: Sequence[str]) -> JudgedBatch:
        """r_v for every (facts, response) pair; rows without facts get None and cost no request."""
        keys = [(tuple(facts), response) if facts else None
                for facts, response in zip(map(clean_facts, facts_per_sample), responses)]
        health = JudgeHealth()
        known = {key: self._cache[key] for key in keys if key is not None and key in self._cache}
        for key in known:
            self._cache.move_to_end(key)
        wanted = [key for key in dict.fromkeys(keys) if key is not None and key not in known]
        health.cache_hits = sum(1 for key in keys if key is not None) - len(wanted)
        if wanted:
            try:
                await self._before_batch()
            except Exception as exc:  # noqa: BLE001 - counted below as the batch's failures
                self._log_failure(exc)
                results = [(None, 0.0)] * len(wanted)
            else:
                retries_before = self._retries_sent()
                results = await asyncio.gather(*(self._ask(key) for key in wanted))
                health.retries = self._retries_sent() - retries_before
            known.update((key, marks) for key, (marks, _) in zip(wanted, results))
            health.failures = sum(1 for marks, _ in results if marks is None)
            if self.counts_requests:
                health.requests = len(wanted)
                health.latency_s = sum(seconds for _, seconds in results) / len(wanted)
        scores: list[float | None] = []
        for key in keys:
            marks = None if key is None else known[key]
            if key is None:
                scores.append(None)
            elif marks is None:
                scores.append(0.0 if self.failure == "zero" else None)
            else:
                scores.append(perception_score(marks, len(key[0])))
        return JudgedBatch(scores, [None if key is None else known[key] for key in keys], health)

    async def _ask(self, key: tuple) -> tuple[list[int] | None, float]:
        started = time.perf_counter()
        try:
            marks = await self._marks(list(key[0]), key[1])
        except Exception as exc:  # noqa: BLE001 - a judge failure must never stop training; it is counted instead
            self._log_failure(exc)
            return None, time.perf_counter() - started
        self._cache[key] = marks
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return marks, time.perf_counter() - started

    def _log_failure(self, exc: Exception) -> None:
        self._logged_failures += 1
        if self._logged_failures <= LOGGED_FAILURES:
            logger.warning("perception judge: a request failed (%s); r_v is %s for that sample%s",
                           getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}",
                           "0" if self.failure == "zero" else "left out",
                           "; further failures are only counted (judge/failures)"
                           if self._logged_failures == LOGGED_FAILURES else "")

    async def aclose(self) -> None:
        """Closes connections (the remote judge); nothing to do for the oracle."""


class OracleJudge(_Judge):
    """Marks a fact stated when its normalised text occurs in the normalised response (srpo.perception.oracle_marks);
    sends no request."""

    counts_requests = False

    async def _marks(self, facts: list[str], response: str) -> list[int]:
        return oracle_marks(facts, response)


class PerceptionJudge(_Judge):
    """A text LLM behind an OpenAI-compatible URL marks each fact (Perception-R1's judge: temperature 0, at most 512
    tokens). Retries and backoff are ChatEndpoint's; an unparsable reply is asked again, up to `max_retries` times
    too."""

    def __init__(self, url: str, model: str = "", *, api_key_env: str = "", concurrency: int = DEFAULT_CONCURRENCY,
                 timeout: float = 60.0, max_retries: int = 3, backoff_base: float = 1.0, template: str | None = None, failure: str = "skip") -> None:
        super().__init__(failure)
        try:  # a bad URL is a UserError now, not a failure on every step
            parse_endpoint(url, api_key_env, key_option="judge_api_key_env")
        except InvalidValue as exc:
            raise InvalidValue(f"judge: {exc}") from None
        if api_key_env and not os.environ.get(api_key_env):
            raise InvalidValue(f"judge_api_key_env: ${api_key_env} is not set; export the judge's API key in it, or "
                               "set judge_api_key_env to '' for a server without a key (vllm serve)")
        self.url, self.model, self.api_key_env = url, model, api_key_env
        self.concurrency, self.timeout = concurrency, timeout
        self.retry = dict(max_retries=max_retries, malformed_retries=max_retries, backoff_base=backoff_base)
        self.template = template or load_judge_template(None)
        self._endpoint: ChatEndpoint | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client(self) -> ChatEndpoint:
        """The endpoint of the running event loop: TRL keeps one loop for all steps, while `srpo score` and the
        benchmark run one per call, and a connection pool belongs to the loop that opened it."""
        loop = asyncio.get_running_loop()
        if self._endpoint is None or self._loop is not loop:
            self._endpoint = ChatEndpoint(self.url, self.model, api_key_env=self.api_key_env or None,
                                          concurrency=self.concurrency, timeout=self.timeout,
                                          retry=RetryPolicy(**self.retry), abort_after_failures=0)
            self._loop = loop
        return self._endpoint

    async def _before_batch(self) -> None:
        await self._client().resolve_model()  # once per batch, not once per request; a no-op once named

    def _retries_sent(self) -> int:
        return self._endpoint.retries if self._endpoint is not None else 0

    async def _marks(self, facts: list[str], response: str) -> list[int]:
        endpoint = self._client()

        def parse(content: str) -> list[int]:
            try:
                return parse_judge_marks(content, len(facts))
            except UnparsableJudgement as exc:
                raise MalformedReply(f"unparsable judgement: {exc}") from None

        result = await endpoint.ask(judge_prompt(self.template, facts, response), parse=parse, temperature=0.0,
                                    max_tokens=JUDGE_MAX_TOKENS)
        return result.value

    async def aclose(self) -> None:
        if self._endpoint is not None:
            await self._endpoint.aclose()
            self._endpoint = None


def build_judge(judge: str, *, model: str = "", api_key_env: str = "", concurrency: int = DEFAULT_CONCURRENCY,
                timeout: float = 60.0, max_retries: int = 3, prompt: str | None = None,
                failure: str = "skip") -> _Judge:
    """`oracle` or a judge at an http(s) URL; `prompt` is a template file (unset: the built-in prompt)."""
    template = load_judge_template(prompt)  # checked for the oracle too, which does not use it: a typo is still one
    if judge == "oracle":
        return OracleJudge(failure)
    if not is_url(judge):
        raise InvalidValue(f"judge: {judge!r} is neither oracle nor an http(s) URL; pass --judge oracle (synthetic "
                           "problems) or the base URL of an OpenAI-compatible server, e.g. http://localhost:8000/v1")
    return PerceptionJudge(judge, model, api_key_env=api_key_env, concurrency=concurrency, timeout=timeout,
                           max_retries=max_retries, template=template, failure=failure)


def judge_from_config(cfg) -> _Judge | None:
    """The judge of a training config's judge_* keys; None when no judge is set."""
    if not getattr(cfg, "judge", ""):
        return None
    return build_judge(cfg.judge, model=cfg.judge_model, api_key_env=cfg.judge_api_key_env,
                       concurrency=cfg.judge_concurrency, timeout=cfg.judge_timeout, max_retries=cfg.judge_max_retries,
                       prompt=cfg.judge_prompt, failure=cfg.judge_failure)
