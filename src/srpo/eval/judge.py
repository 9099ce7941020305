"""The optional LLM extractor / judge for the GPT steps of the official protocols (MathVista extraction, MathVerse
extraction and judging, the GPT-4o fallbacks of the SRPO scripts). Off by default; the scorers call it only where
their rules fail.

    judge = OpenAIJudge("https://api.openai.com/v1", "gpt-4o-2024-11-20", api_key_env="OPENAI_API_KEY")
    rescore("mathverse", "outputs.json", judge=judge)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from srpo.endpoint import ChatEndpoint, EndpointFatalError, RequestFailed, RetryPolicy, redact_url, run_concurrently
from srpo.errors import InvalidValue, NotAvailable


@dataclass
class JudgeConfig:
    base_url: str | None = None  # None: no judge
    model: str = "gpt-4o-2024-11-20"  # the SRPO scripts' extractor / judge
    api_key_env: str = "OPENAI_API_KEY"
    max_tokens: int = 256
    timeout: float = 120.0
    max_retries: int = 5

    def build(self) -> "OpenAIJudge | None":
        if not self.base_url:
            return None
        return OpenAIJudge(self.base_url, self.model, api_key_env=self.api_key_env, max_tokens=self.max_tokens,
                           timeout=self.timeout, max_retries=self.max_retries)


class OpenAIJudge:
    """`judge(prompt) -> str` through an OpenAI-compatible chat endpoint: greedy, one user turn, replies cached per
    prompt (the scorers ask the same question again when a file is rescored). Thread-safe."""

    def __init__(self, base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY", max_tokens: int = 256,
                 timeout: float = 120.0, max_retries: int = 5):
        if not model:
            raise InvalidValue("OpenAIJudge: a model name is required (e.g. gpt-4o-2024-11-20)")
        self.base_url, self.model, self.max_tokens = base_url, model, max_tokens
        self.api_key_env, self.timeout, self.max_retries = api_key_env, timeout, max_retries
        self._cache: dict[str, str] = {}
        self._lock = threading.Lock()
        self.calls = 0  # requests actually sent

    def __call__(self, prompt: str) -> str:
        with self._lock:
            if prompt in self._cache:
                return self._cache[prompt]
        # Its own endpoint and event loop per question: the scorers call from any thread. A reply is used as it is.
        retry = RetryPolicy(max_retries=self.max_retries, malformed_retries=0)
        endpoint = ChatEndpoint(self.base_url, self.model, api_key_env=self.api_key_env, concurrency=1,
                                timeout=self.timeout, retry=retry, abort_after_failures=0)
        replies: list[str] = []
        try:
            run_concurrently(endpoint, [prompt],
                             lambda text: endpoint.ask(text, max_tokens=self.max_tokens, temperature=0.0),
                             lambda _, result: replies.append(result.value), progress=False)
        except (RequestFailed, EndpointFatalError) as exc:
            raise NotAvailable(f"judge {self.model} at {redact_url(self.base_url)} failed: {exc}") from None
        with self._lock:
            self.calls += 1
            self._cache[prompt] = replies[0]
        return replies[0]

    def describe(self) -> dict:
        return {"base_url": redact_url(self.base_url), "model": self.model, "calls": self.calls}
