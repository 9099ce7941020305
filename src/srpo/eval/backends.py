"""Generation backends for evaluation: a local model (batched, srpo.generation), an OpenAI-compatible endpoint
(srpo.endpoint) and vLLM offline (when installed). All greedy. Each calls `on_result(item, text, tokens)` as
replies arrive, so the driver can save them and resume an interrupted run."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence

from srpo.endpoint import ChatEndpoint, RequestFailed, RetryPolicy, chat_messages, is_url, redact_url, run_concurrently
from srpo.errors import InvalidValue, NotAvailable
from srpo.generation import generate_responses
from srpo.models import load_policy

BACKENDS = ("auto", "local", "openai", "vllm")
OnResult = Callable[[object, str, "int | None"], None]


def pick_backend(model: str, backend: str = "auto") -> str:
    """auto: an http(s) URL -> openai; else vllm when it is installed and a GPU is visible; else local."""
    if backend not in BACKENDS:
        raise InvalidValue(f"--backend {backend!r} is not a backend; use one of {list(BACKENDS)}")
    if backend != "auto":
        if backend == "openai" and not is_url(model):
            raise InvalidValue(f"--backend openai needs --model to be the server's base URL (http://host:port/v1), "
                               f"got {model!r}")
        return backend
    if is_url(model):
        return "openai"
    if importlib.util.find_spec("vllm") is not None:
        import torch

        if torch.cuda.is_available():
            return "vllm"
    return "local"


class _Prompted:
    """What srpo.generation.generate_responses reads from a problem: the prompt text and the images."""

    def __init__(self, item):
        self.prompt, self.images = item.prompt, item.load_images()

    def question_with_choices(self) -> str:
        return self.prompt


def _chunks(items: Sequence, size: int) -> list[list]:
    """Consecutive runs of at most `size` items, never mixing items with and without images in one batch."""
    out: list[list] = []
    for item in items:
        if out and len(out[-1]) < size and bool(out[-1][-1].images) == bool(item.images):
            out[-1].append(item)
        else:
            out.append([item])
    return out


def generate_local(model_path: str, items: Sequence, system: str | None, *, max_new_tokens: int, batch_size: int,
                   on_result: OnResult, progress: bool = True) -> None:
    from tqdm.auto import tqdm


    model, processor = load_policy(model_path)
    bar = tqdm(total=len(items), desc="generating", unit="item", disable=not progress)
    for chunk in _chunks(items, max(1, batch_size)):
        texts = generate_responses(model, processor, [_Prompted(it) for it in chunk], system,
                                   max_new_tokens=max_new_tokens, temperature=0.0, batch_size=batch_size,
                                   progress=False)
        for it, text in zip(chunk, texts):
            on_result(it, text, None)
        bar.update(len(chunk))
    bar.close()


def generate_openai(items: Sequence, system: str | None, *, base_url: str, model: str | None, max_new_tokens: int,
                    api_key_env: str, concurrency: int, max_retries: int, on_result: OnResult,
                    progress: bool = True) -> None:
    """Greedy replies from an OpenAI-compatible server, `concurrency` requests at a time. A reply is used as it is
    (transport retries only); the first item that fails after its retries stops the run, naming the item."""
    endpoint = ChatEndpoint(base_url, model or "", api_key_env=api_key_env, concurrency=concurrency, timeout=600.0,
                            retry=RetryPolicy(max_retries=max_retries, malformed_retries=0), abort_after_failures=0)

    async def reply(item):
        try:
            return await endpoint.ask(item.prompt, item.endpoint_images(), system=system, max_tokens=max_new_tokens,
                                      temperature=0.0)
        except RequestFailed as exc:
            raise NotAvailable(f"{redact_url(base_url)}: request for item {item.id!r} failed: {exc.reason}") from None

    run_concurrently(endpoint, items, reply,
                     lambda item, result: on_result(item, result.value, result.usage["completion_tokens"] or None),
                     desc="generating", progress=progress)


def generate_vllm(model_path: str, items: Sequence, system: str | None, *, max_new_tokens: int, on_result: OnResult,
                  chunk_size: int = 256) -> None:  # pragma: no cover -- needs vLLM and a GPU
    from vllm import LLM, SamplingParams

    max_images = max((len(it.images) for it in items), default=1) or 1
    llm = LLM(model=model_path, limit_mm_per_prompt={"image": max_images})
    params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
    for start in range(0, len(items), chunk_size):
        chunk = items[start : start + chunk_size]
        convs = [chat_messages(it.prompt, it.endpoint_images(), system=system) for it in chunk]
        for it, out in zip(chunk, llm.chat(convs, params, use_tqdm=True)):
            on_result(it, out.outputs[0].text, len(out.outputs[0].token_ids))


def generate(backend: str, model: str, items: Sequence, system: str | None, *, max_new_tokens: int,
             batch_size: int = 8, served_model: str | None = None, api_key_env: str = "OPENAI_API_KEY",
             concurrency: int = 8, request_retries: int = 3, on_result: OnResult, progress: bool = True) -> None:
    if not items:
        return
    if backend == "local":
        generate_local(model, items, system, max_new_tokens=max_new_tokens, batch_size=batch_size,
                       on_result=on_result, progress=progress)
    elif backend == "openai":
        generate_openai(items, system, base_url=model, model=served_model, max_new_tokens=max_new_tokens,
                        api_key_env=api_key_env, concurrency=concurrency, max_retries=request_retries,
                        on_result=on_result, progress=progress)
    elif backend == "vllm":
        if importlib.util.find_spec("vllm") is None:
            raise NotAvailable("--backend vllm: vLLM is not installed (pip install vllm, on a GPU machine)")
        generate_vllm(model, items, system, max_new_tokens=max_new_tokens, on_result=on_result)
    else:
        raise InvalidValue(f"unknown backend {backend!r}; use one of {BACKENDS[1:]}")
