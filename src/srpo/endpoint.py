# Over 400 lines on purpose: one request path (URL and credentials, messages, retries, the pool), read top to bottom.
"""The one client for OpenAI-compatible chat endpoints (OpenAI, `vllm serve`, SGLang, ...): reflect's policy attempts
and teacher, eval's generation and judge, and any LLM-judged reward. Built to run for hours.

* aiohttp does the HTTP (one session, keep-alive connections); retries are ours, so backoff, jitter and `Retry-After`
  are under control and every retry is counted. The openai SDK is not used here: its request building costs about
  1 ms of CPU per request, which at 128 requests in flight is the bottleneck (benchmarks/teacher_throughput.py).
* Retried: 429, 408, 409, 5xx, timeouts and dropped connections, with exponential backoff and jitter, honouring
  `Retry-After` / `retry-after-ms`. Not retried: other 4xx (the item fails with the reason). 401/403/404 mean a wrong
  key, URL or model name: they stop the run (`EndpointFatalError`) instead of failing every item.
* A 200 whose body is not JSON (a proxy's HTML page, a cut-off body) is a transport fault, retried like a 5xx. A JSON
  reply that cannot be used (`MalformedReply`: no choices, or the caller's `parse` rejects the content) is
  re-requested up to `malformed_retries` times, then the item fails with the reason.
* `run_concurrently` is the one way to send many requests: a bounded pool of workers, results handed on (and made
  durable, where the caller stores them) as they arrive, the first fatal error stopping the rest.
* The API key is read from the environment variable the caller names; credentials in the URL
  (`https://user:password@host/v1`) are sent as HTTP Basic auth instead. Neither is ever logged, printed or stored:
  URLs are shown without user info, and a server message quoting them is masked before it is recorded.

aiohttp and tqdm are imported where used: they cost half a second, which commands that send no request never pay.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import inspect
import io
import json
import logging
import math
import os
import random
import re
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence
from urllib.parse import unquote, urlsplit, urlunsplit

from PIL import Image

from srpo import __version__
from srpo.errors import InvalidValue, UserError

logger = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 425, 429}
FATAL_STATUS = {401, 403, 404}


class EndpointFatalError(UserError, RuntimeError):
    """The endpoint refuses every request (bad key, URL or model, or down for good): the run stops."""


class MalformedReply(ValueError):
    """A reply that cannot be used (not JSON, missing field, empty); the message is the recorded reason."""


class RequestFailed(RuntimeError):
    """An item that failed after its retries; `reason` is what gets recorded."""

    def __init__(self, reason: str, usage: dict[str, int] | None = None, retries: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.usage = usage or {"prompt_tokens": 0, "completion_tokens": 0}
        self.retries = retries


# ---- URLs and credentials ----------------------------------------------------------------------------------------


def is_url(value: str | None) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def redact_url(url: str) -> str:
    """The URL without user info, query or fragment (where keys sometimes hide), for logs and summaries."""
    if not isinstance(url, str) or "://" not in url:
        return url
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]  # the text, not `.port`: an unusable port must not raise here
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_endpoint(url: str, api_key_env: str | None, key_option: str = "--api-key-env") -> tuple[str, str | None]:
    """(the URL to send requests to, without user info; a Basic `Authorization` value from the URL's user info, or
    None). `InvalidValue`, without the password, for a URL or key variable that cannot work; no request is made.
    `key_option` is how the user names the key variable, for the message."""
    where = redact_url(url)
    if not is_url(url):
        raise InvalidValue(f"endpoint URL must start with http:// or https://, got {where!r}")
    parts = urlsplit(url)
    try:
        parts.port
    except ValueError:
        raise InvalidValue(f"{where}: the port is not a number from 1 to 65535; fix the URL") from None
    if not parts.hostname:
        raise InvalidValue(f"{where}: no host name in the URL; pass e.g. http://localhost:8000/v1")
    if parts.path.rstrip("/").endswith("/chat/completions"):
        raise InvalidValue(f"{where}: pass the API's base URL (e.g. .../v1), not its /chat/completions endpoint")
    if api_key_env and not ENV_NAME.fullmatch(api_key_env):  # never echoed: it may be the key itself
        raise InvalidValue(f"{where}: {key_option} must name an environment variable (letters, digits and _), e.g. "
                           "OPENAI_API_KEY; put the key itself in that variable, not on the command line")
    base_url = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path.rstrip("/"),
                                        parts.query, ""))
    if parts.username is None and parts.password is None:
        return base_url, None
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    if ":" in user:
        raise InvalidValue(f"{where}: the user name in the URL contains ':', which HTTP Basic auth cannot send")
    if api_key_env and os.environ.get(api_key_env):
        raise InvalidValue(
            f"{where}: the URL carries a user name and password (sent as HTTP Basic auth) and ${api_key_env} holds an "
            "API key (sent as a Bearer token), but a request has one Authorization header: remove the credentials "
            f"from the URL, or name no key variable ({key_option} '')")
    return base_url, "Basic " + base64.b64encode(f"{user}:{password}".encode("utf-8")).decode("ascii")


def read_api_key(env_name: str | None) -> str:
    """The key from the named environment variable; "EMPTY" (what vLLM/SGLang accept) when unset."""
    if not env_name:
        return "EMPTY"
    key = os.environ.get(env_name, "")
    if not key:
        logger.info("environment variable %s is not set: sending no API key (fine for a local vllm/sglang server)",
                    env_name)
        return "EMPTY"
    return key


def env_proxy(url: str) -> str | None:
    """The proxy for `url` from HTTP(S)_PROXY / NO_PROXY, as the openai SDK honours them; credentials in the proxy
    URL become its Proxy-Authorization. Read once per session: aiohttp's `trust_env` looks them up in a worker thread
    on every request, which doubled the client's CPU per request in benchmarks/teacher_throughput.py."""
    proxies = urllib.request.getproxies_environment()
    parts = urlsplit(url)
    proxy = proxies.get(parts.scheme)
    if not proxy or urllib.request.proxy_bypass_environment(parts.hostname or "", proxies):
        return None
    return proxy if "://" in proxy else "http://" + proxy


def _tls_context(url: str):
    """For https: the CA bundle of SSL_CERT_FILE / SSL_CERT_DIR when set (a company CA), else certifi's (what the
    openai SDK uses); plain http has no TLS."""
    if not url.startswith("https://"):
        return None
    import ssl

    import certifi

    cafile, capath = os.environ.get("SSL_CERT_FILE") or None, os.environ.get("SSL_CERT_DIR") or None
    if cafile or capath:
        return ssl.create_default_context(cafile=cafile, capath=capath)
    return ssl.create_default_context(cafile=certifi.where())


def _secrets_of(authorization: str) -> list[str]:
    """What an Authorization header value must never show: the key, or the Basic token and its password."""
    scheme, _, token = authorization.partition(" ")
    if scheme == "Basic":
        password = base64.b64decode(token).decode("utf-8").partition(":")[2]
        return [token] + ([password] if password else [])
    return [token] if token and token != "EMPTY" else []


# ---- messages ----------------------------------------------------------------------------------------------------

EncodedImage = tuple[bytes, str]  # (file bytes, mime type): sent as stored
ImageInput = Image.Image | EncodedImage


def image_data_url(image: ImageInput, max_pixels: int | None = None) -> str:
    """A `data:` URL for a PIL image (as PNG) or for `(bytes, mime type)` (as stored). An image over `max_pixels` is
    downscaled, aspect kept, and sent as PNG."""
    if isinstance(image, tuple):
        data, mime = image
        opened = Image.open(io.BytesIO(data)) if max_pixels else None  # reads the header only
        if opened is None or opened.width * opened.height <= max_pixels:
            return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
        image = opened
    if max_pixels and image.width * image.height > max_pixels:
        scale = math.sqrt(max_pixels / (image.width * image.height))
        image = image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)  # lossless either way; level 6 is ~2x slower on charts
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def chat_messages(text: str, images: Sequence[ImageInput] = (), *, system: str | None = None,
                  max_pixels: int | None = None) -> list[dict[str, Any]]:
    """The system turn (when given), then one user turn: the images first (as the policy sees them), then the text.
    A turn without images is plain text, which every server accepts, text-only ones included."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    if not images:
        return messages + [{"role": "user", "content": text}]
    content = [{"type": "image_url", "image_url": {"url": image_data_url(img, max_pixels)}} for img in images]
    content.append({"type": "text", "text": text})
    return messages + [{"role": "user", "content": content}]


SLOW_ENCODE_SIZE = 256 * 256  # pixels of PIL images, bytes of stored ones: above it, encode in a worker thread


def _encoding_size(images: Sequence[ImageInput]) -> int:
    return sum(len(img[0]) if isinstance(img, tuple) else img.width * img.height for img in images)


# ---- retries -----------------------------------------------------------------------------------------------------


@dataclass
class RetryPolicy:
    """Exponential backoff with jitter: attempt k waits min(max, base * 2**k) * U(0.5, 1), or Retry-After."""

    max_retries: int = 8  # transport retries per item (429, 5xx, timeouts, dropped connections)
    malformed_retries: int = 2  # extra requests for a malformed reply
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    retry_after_max: float = 600.0  # never wait longer than this for one Retry-After
    seed: int | None = None
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None and retry_after >= 0:
            wait = min(retry_after, self.retry_after_max)
            return wait + self.rng.uniform(0, 0.1 * wait)  # honour it; a little jitter on top spreads the herd
        cap = min(self.backoff_max, self.backoff_base * (2 ** attempt))
        return cap * self.rng.uniform(0.5, 1.0)


def retry_after_seconds(headers) -> float | None:
    """Seconds from `retry-after-ms`, or `Retry-After` (seconds or an HTTP date); None if absent or unreadable."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return float(value) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# ---- the client --------------------------------------------------------------------------------------------------


@dataclass
class CallResult:
    value: Any
    usage: dict[str, int]
    retries: int  # transport retries + malformed re-requests


class ChatEndpoint:
    """Bounded, retrying chat completions on one OpenAI-compatible server. Use inside one event loop; `aclose()`.
    `retries` and `failed` count, over its life, the retries sent and the items that failed after theirs."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        concurrency: int = 32,
        timeout: float = 300.0,
        retry: RetryPolicy | None = None,
        abort_after_failures: int = 50,
        image_max_pixels: int | None = None,
    ) -> None:
        self.base_url, self._basic_auth = parse_endpoint(base_url, api_key_env)
        self.model = model
        self.api_key_env = api_key_env
        self.concurrency = max(1, int(concurrency))
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.abort_after_failures = abort_after_failures
        self.image_max_pixels = image_max_pixels
        self.retries = 0
        self.failed = 0
        self._session: Any = None
        self._headers: dict[str, str] = {}
        self._secrets: list[str] = []  # masked in any server text that gets recorded
        self._proxy: str | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._consecutive_failures = 0

    def __repr__(self) -> str:  # never shows the key
        return f"ChatEndpoint({redact_url(self.base_url)!r}, model={self.model!r})"

    def _open(self):
        """The aiohttp session (created inside the running loop on first use), with keep-alive connections."""
        if self._session is None:
            import aiohttp

            authorization = self._basic_auth or f"Bearer {read_api_key(self.api_key_env)}"
            self._headers = {"Authorization": authorization, "Content-Type": "application/json",
                             "User-Agent": f"srpo/{__version__}"}
            self._secrets = _secrets_of(authorization)
            self._proxy = env_proxy(self.base_url)
            connector = aiohttp.TCPConnector(limit=self.concurrency, ssl=_tls_context(self.base_url))
            self._session = aiohttp.ClientSession(connector=connector,
                                                  timeout=aiohttp.ClientTimeout(total=self.timeout))
            self._semaphore = asyncio.Semaphore(self.concurrency)
        return self._session

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            try:
                await session.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    async def resolve_model(self) -> str:
        """The configured model, or the server's only model (a `vllm serve` lists one); an error if it lists more."""
        if self.model:
            return self.model
        session = self._open()
        where = redact_url(self.base_url)
        try:
            async with session.get(self.base_url + "/models", headers=self._headers, proxy=self._proxy) as response:
                status, payload = response.status, await response.read()
            if status != 200:
                raise ValueError(f"http {status}")
            models = [m["id"] for m in json.loads(payload)["data"]]
        except Exception as exc:  # noqa: BLE001 - any failure here means: name the model in the config
            why = str(exc) if isinstance(exc, ValueError) else type(exc).__name__
            raise EndpointFatalError(f"{where}: no model name given and listing models failed ({why}); name the "
                                     "model (e.g. --teacher-model, --policy-model, --served-model)") from None
        if len(models) != 1:
            listed = ", ".join(models[:5]) + (", ..." if len(models) > 5 else "") if models else "none"
            raise EndpointFatalError(f"{where} serves {len(models)} models ({listed}); name the one to use (e.g. "
                                     "--teacher-model, --policy-model, --served-model)")
        self.model = models[0]
        logger.info("%s: using model %s", where, self.model)
        return self.model

    async def ask(self, text: str, images: Sequence[ImageInput] = (), *, system: str | None = None,
                  parse: Callable[[str], Any] | None = None, **params: Any) -> CallResult:
        """`complete` on `chat_messages(text, images, system)`; big images are encoded in a worker thread so the
        event loop keeps serving other requests (a 1024x768 chart takes ~30 ms to encode)."""
        if _encoding_size(images) > SLOW_ENCODE_SIZE:
            messages = await asyncio.to_thread(chat_messages, text, images, system=system,
                                               max_pixels=self.image_max_pixels)
        else:
            messages = chat_messages(text, images, system=system, max_pixels=self.image_max_pixels)
        return await self.complete(messages, parse, **params)

    async def _post(self, data: bytes) -> tuple[int, Any, bytes]:
        """(status, headers, body) of one POST to /chat/completions; aiohttp and OS errors propagate."""
        session = self._open()
        assert self._semaphore is not None
        async with self._semaphore:
            async with session.post(self.base_url + "/chat/completions", data=data, headers=self._headers,
                                    proxy=self._proxy) as response:
                return response.status, response.headers, await response.read()

    async def complete(self, messages: list[dict[str, Any]], parse: Callable[[str], Any] | None = None,
                       **params: Any) -> CallResult:
        """One chat completion; `parse(content)` may raise `MalformedReply` to have the request repeated.

        Returns `CallResult(parse(content) or content, usage, retries)`; raises `RequestFailed(reason)` when retries
        run out or the server rejects the request, `EndpointFatalError` when the endpoint refuses everything.
        """
        import aiohttp

        body = {"model": self.model, "messages": messages, **{k: v for k, v in params.items() if v is not None}}
        data = json.dumps(body).encode("utf-8")
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        transport_tries = malformed_tries = 0
        while True:
            retry_after, detail = None, ""
            try:
                status, headers, payload = await self._post(data)
            except asyncio.TimeoutError:  # aiohttp's timeouts derive from it
                error = "timeout"
            except aiohttp.ClientConnectorCertificateError as exc:  # retrying cannot fix a certificate
                raise EndpointFatalError(f"{redact_url(self.base_url)}: TLS failed ({type(exc).__name__}): check the "
                                         "URL and the server's certificate") from None
            except (aiohttp.ClientError, OSError) as exc:
                error = f"connection error ({type(exc).__name__})"
            else:
                if status in FATAL_STATUS:
                    credentials = ("the user name and password in the URL" if self._basic_auth
                                   else f"the API key in ${self.api_key_env or '(none)'}")
                    raise EndpointFatalError(f"{redact_url(self.base_url)} answered {status} for model "
                                             f"{self.model!r}: check the URL, the model name and {credentials}")
                error = f"http {status}"
                if 300 <= status < 500 and status not in RETRY_STATUS:
                    self._item_failed()
                    raise RequestFailed(f"{error}: {self._mask(_error_message(payload))}", usage,
                                        transport_tries + malformed_tries)
                if status >= 300:  # 408, 409, 425, 429, 5xx
                    retry_after = retry_after_seconds(headers)
                    detail = f": {self._mask(_error_message(payload))}"
                elif (reply := _json_body(payload)) is None:  # a proxy's page or a cut-off body: the transport failed
                    error, detail = f"http {status} with a non-JSON body", f": {self._mask(_snippet(payload))}"
                else:
                    try:
                        content, reply_usage = _read_completion(reply)
                        for key in usage:
                            usage[key] += reply_usage.get(key) or 0
                        value = parse(content) if parse else content
                    except MalformedReply as exc:
                        if malformed_tries >= self.retry.malformed_retries:
                            self.failed += 1
                            self._consecutive_failures = 0  # the server answers; the model's reply is the problem
                            raise RequestFailed(f"malformed reply: {exc}", usage,
                                                transport_tries + malformed_tries) from None
                        malformed_tries += 1
                        self.retries += 1
                        logger.debug("malformed reply (%s); asking again (%d/%d)", exc, malformed_tries,
                                     self.retry.malformed_retries)
                        continue
                    self._consecutive_failures = 0
                    return CallResult(value, usage, transport_tries + malformed_tries)
            if transport_tries >= self.retry.max_retries:
                self._item_failed()
                raise RequestFailed(f"{error} after {transport_tries} retries{detail}", usage,
                                    transport_tries + malformed_tries)
            wait = self.retry.delay(transport_tries, retry_after)
            transport_tries += 1
            self.retries += 1
            logger.debug("%s; retry %d/%d in %.2fs", error, transport_tries, self.retry.max_retries, wait)
            await asyncio.sleep(wait)

    def _mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _item_failed(self) -> None:
        """Counts a failed item; too many in a row mean the server is gone, which stops the run."""
        self.failed += 1
        self._consecutive_failures += 1
        if self.abort_after_failures and self._consecutive_failures >= self.abort_after_failures:
            raise EndpointFatalError(
                f"{redact_url(self.base_url)}: {self._consecutive_failures} items in a row failed after retries; "
                "stopping (finished items are saved; rerun to resume)")


def _json_body(payload: bytes) -> Any:
    """The parsed body, or None when it is not JSON (a JSON `null` is no reply either)."""
    try:
        return json.loads(payload)
    except ValueError:  # UnicodeDecodeError included
        return None


def _snippet(payload: bytes, limit: int = 120) -> str:
    text = " ".join(payload[: limit * 4].decode("utf-8", "replace").split())
    return (text[:limit] + "...") if len(text) > limit else (text or "(empty body)")


def _read_completion(data: Any) -> tuple[str, dict[str, int]]:
    """(content, usage) of a parsed chat-completion body; `MalformedReply` if the body is not one."""
    if not isinstance(data, dict):
        raise MalformedReply("response body is not a chat completion")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    usage = {k: int(usage.get(k) or 0) for k in ("prompt_tokens", "completion_tokens")}
    try:
        message = data["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        raise MalformedReply("response has no choices[0].message") from None
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):  # some servers return content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return (content or ""), usage


def _error_message(payload: bytes) -> str:
    """The server's error message: OpenAI's `{"error": {"message"}}`, vLLM's `{"message"}`, or the body's text."""
    text = payload.decode("utf-8", "replace")
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = body.get("error") or body.get("message") or body.get("detail")
        if isinstance(message, dict):
            message = message.get("message")
        if message:
            return str(message)[:300]
    return text.strip()[:300] or "(no message)"


# ---- many requests -----------------------------------------------------------------------------------------------


def run_concurrently(endpoint: ChatEndpoint, items: Sequence[Any], work: Callable[[Any], Awaitable[Any]],
                     on_result: Callable[[Any, Any], Awaitable[None] | None], *, concurrency: int | None = None,
                     desc: str = "items", progress: bool = True) -> None:
    """`work(item)` for every item, at most `concurrency` (default: the endpoint's) at a time, in one event loop that
    owns the endpoint's connections: the model is resolved first, the connections are closed last.

    `on_result(item, result)` (a function or a coroutine function) runs as each item finishes, before the progress
    bar moves, so a durable store counts an item only once it is written. The first exception (`EndpointFatalError`,
    or whatever `work` or `on_result` raise) cancels the other workers and propagates; results handed on before it
    stay handed on.
    """
    if items:
        asyncio.run(_run_concurrently(endpoint, items, work, on_result, concurrency or endpoint.concurrency, desc,
                                      progress))


async def _run_concurrently(endpoint: ChatEndpoint, items: Sequence[Any], work, on_result, concurrency: int,
                            desc: str, progress: bool) -> None:
    from tqdm.auto import tqdm

    pending = iter(items)
    bar = tqdm(total=len(items), desc=desc, unit="item", disable=not progress, dynamic_ncols=True, smoothing=0.1)
    failed, retries = endpoint.failed, endpoint.retries

    async def worker() -> None:
        for item in pending:  # a shared iterator: no await between taking and starting an item
            result = await work(item)
            handed_on = on_result(item, result)
            if inspect.isawaitable(handed_on):
                await handed_on
            bar.update(1)
            if (endpoint.failed, endpoint.retries) != (failed, retries):
                bar.set_postfix(failed=endpoint.failed - failed, retries=endpoint.retries - retries, refresh=False)

    tasks: list[asyncio.Task] = []
    try:
        await endpoint.resolve_model()
        tasks = [asyncio.create_task(worker()) for _ in range(max(1, min(concurrency, len(items))))]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                raise task.exception()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        bar.close()
        await endpoint.aclose()

