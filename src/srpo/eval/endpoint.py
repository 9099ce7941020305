"""OpenAI-compatible chat completions for evaluation: messages with images as data URLs, bounded concurrent
generation, and one-off requests for the judge. The HTTP client is the teacher's (`srpo.reflect.endpoint.ChatEndpoint`):
retries with backoff and Retry-After, proxies, TLS, and the API key read from an environment variable."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable, Sequence

from srpo.errors import NotAvailable
from srpo.reflect.endpoint import ChatEndpoint, RequestFailed, RetryPolicy, is_url, redact_url

__all__ = ["chat_messages", "chat_once", "endpoint", "generate_openai", "is_url"]

logger = logging.getLogger(__name__)


def endpoint(base_url: str, model: str | None, *, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8,
             timeout: float = 600.0, max_retries: int = 3) -> ChatEndpoint:
    """A `ChatEndpoint` for evaluation: transport retries only (a reply is used as it is), never aborts on its own."""
    return ChatEndpoint(base_url, model or "", api_key_env=api_key_env, concurrency=concurrency, timeout=timeout,
                        retry=RetryPolicy(max_retries=max_retries, malformed_retries=0), abort_after_failures=0)


def chat_messages(system: str | None, prompt: str, images: Sequence[tuple[bytes, str]]) -> list[dict]:
    """System turn, then one user turn: the images (data URLs) before the text, as the local prompt does."""
    messages: list[dict] = []
    if system:
        messages.append({"role": "system", "content": system})
    content: list[dict] = [
        {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{base64.b64encode(data).decode()}"}}
        for data, mime in images
    ]
    content.append({"type": "text", "text": prompt})
    messages.append({"role": "user", "content": content})
    return messages


def chat_once(base_url: str, model: str, messages: list[dict], *, max_tokens: int, api_key_env: str = "OPENAI_API_KEY",
              timeout: float = 600.0, max_retries: int = 3) -> str:
    """One greedy reply, synchronously (any thread without a running event loop); `RequestFailed` when it fails."""

    async def ask() -> str:
        client = endpoint(base_url, model, api_key_env=api_key_env, concurrency=1, timeout=timeout,
                          max_retries=max_retries)
        try:
            result = await client.complete(messages, max_tokens=max_tokens, temperature=0.0)
        finally:
            await client.aclose()
        return result.value

    return asyncio.run(ask())


def generate_openai(items: Sequence, system: str | None, *, base_url: str, model: str | None, max_new_tokens: int,
                    api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8, timeout: float = 600.0,
                    max_retries: int = 3, on_result: Callable[[object, str, int | None], None] | None = None,
                    progress: bool = True) -> dict[str, str]:
    """Greedy replies for `items` (BenchItem-like: id, prompt, image_bytes()) from an OpenAI-compatible server,
    `concurrency` requests at a time; `on_result(item, text, completion tokens or None)` is called as each one
    arrives (in the calling thread). Returns id -> reply; the first item that fails after its retries stops the run
    with a RuntimeError naming it."""
    from tqdm.auto import tqdm

    out: dict[str, str] = {}
    bar = tqdm(total=len(items), desc="generating", unit="item", disable=not progress, dynamic_ncols=True)

    async def main() -> None:
        client = endpoint(base_url, model, api_key_env=api_key_env, concurrency=concurrency, timeout=timeout,
                          max_retries=max_retries)
        pending = iter(items)

        async def worker() -> None:
            for item in pending:  # a shared iterator: each worker takes the next item
                messages = chat_messages(system, item.prompt, item.image_bytes())
                try:
                    result = await client.complete(messages, max_tokens=max_new_tokens, temperature=0.0)
                except RequestFailed as exc:
                    raise NotAvailable(f"{redact_url(base_url)}: request for item {item.id!r} failed: {exc.reason}"
                                       ) from None
                out[item.id] = result.value
                if on_result is not None:
                    on_result(item, result.value, result.usage["completion_tokens"] or None)
                bar.update(1)

        try:
            await client.resolve_model()
            tasks = [asyncio.create_task(worker()) for _ in range(max(1, min(concurrency, len(items))))]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await client.aclose()

    try:
        asyncio.run(main())
    finally:
        bar.close()
    return out
