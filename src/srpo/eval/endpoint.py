"""OpenAI-compatible chat completions for evaluation: a sync client, message building with images as data URLs,
and threaded generation. (The teacher's async client lives in srpo.reflect; this one is the eval side's.)"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed

logger = logging.getLogger(__name__)
NO_KEY = "EMPTY"  # what vLLM / SGLang servers without --api-key accept


def is_url(model: str) -> bool:
    return str(model).startswith(("http://", "https://"))


def openai_client(base_url: str, api_key_env: str = "OPENAI_API_KEY", *, timeout: float = 600.0,
                  max_retries: int = 3):
    """`openai.OpenAI` for `base_url`, with the key read from the environment variable `api_key_env`."""
    import openai

    key = os.environ.get(api_key_env)
    if not key:
        logger.warning("environment variable %s is not set: sending the placeholder key %r (fine for servers "
                       "without authentication)", api_key_env, NO_KEY)
        key = NO_KEY
    return openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=max_retries)


def served_model_name(client, model: str | None) -> str:
    """`model` when given, else the first model the server lists (vLLM serves one)."""
    if model:
        return model
    try:
        models = [m.id for m in client.models.list()]
    except Exception as exc:  # noqa: BLE001 -- any transport/API error: ask for the name instead
        raise RuntimeError(f"{client.base_url}: could not list the served models ({exc}); pass --served-model NAME"
                           ) from exc
    if not models:
        raise RuntimeError(f"{client.base_url}: the server lists no models; pass --served-model NAME")
    return models[0]


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


def chat_once(client, model: str, messages: list[dict], *, max_tokens: int, temperature: float = 0.0
              ) -> tuple[str, int | None]:
    """(reply text, completion tokens reported by the server or None)."""
    reply = client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens,
                                           temperature=temperature)
    text = reply.choices[0].message.content or ""
    tokens = getattr(reply.usage, "completion_tokens", None) if reply.usage else None
    return text, tokens


def generate_openai(items: Sequence, system: str | None, *, base_url: str, model: str | None, max_new_tokens: int,
                    api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8, timeout: float = 600.0,
                    max_retries: int = 3, on_result: Callable[[object, str, int | None], None] | None = None
                    ) -> dict[str, str]:
    """Greedy replies for `items` (BenchItem-like: id, prompt, image_bytes()) from an OpenAI-compatible server,
    `concurrency` requests at a time; `on_result(item, text, tokens)` is called as each one arrives (in the calling
    thread). Returns id -> reply."""
    client = openai_client(base_url, api_key_env, timeout=timeout, max_retries=max_retries)
    name = served_model_name(client, model)

    def one(item):
        return chat_once(client, name, chat_messages(system, item.prompt, item.image_bytes()),
                         max_tokens=max_new_tokens)

    out: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = {pool.submit(one, item): item for item in items}
        for fut in as_completed(futures):
            item = futures[fut]
            try:
                text, tokens = fut.result()
            except Exception as exc:
                for f in futures:
                    f.cancel()
                raise RuntimeError(f"{base_url}: request for item {item.id!r} failed: {exc}") from exc
            out[item.id] = text
            if on_result is not None:
                on_result(item, text, tokens)
    return out
