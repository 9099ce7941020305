"""A loopback OpenAI-compatible chat-completions server with scripted replies and injected faults.

Used by the teacher tests and by `benchmarks/teacher_throughput.py`. It speaks just enough HTTP/1.1 (keep-alive,
Content-Length bodies) on an asyncio server, so 128+ concurrent connections with a fixed reply latency cost almost no
CPU and the server is never the bottleneck.

Replies are scripted from the request (no model):

* the item id is read from an ``[id=...]`` tag in the prompt text;
* a **policy** request (any prompt without "Reference answer:") gets
  ``<think>I count N.</think><answer>N</answer>`` where N comes from a ``say=N`` tag (``[id=p3 say=4]``), else "1";
* a **teacher** request (the prompt holds "Reference answer:") gets ``{"reflection": "..."}`` naming the id;
* a **judge** request (the prompt holds srpo's judge marker "Visual facts to check:") gets one mark per fact,
  ``<info1>1</info1>, <info2>0</info2>, ...``: the marks of a ``marks=1,0,1`` tag in the prompt (``[id=r1
  marks=1,0]`` in the judged response), else all 1s; fault ``garbled`` answers prose without marks.

* an **annotate** request (the prompt holds srpo annotate's marker "List the visual facts") gets a JSON list of
  facts, ``facts_for(id)``; fault ``numbered`` answers them as numbered lines, ``not_json`` as prose without facts.

Faults are scripted per key ``"<kind>:<id>"`` (kind ``policy``, ``teacher`` or ``judge``) as a list consumed one per request
(the last entry repeats): ``ok``, ``429`` (with ``Retry-After``), ``500``, ``503``, ``400``, ``401``,
``malformed_json`` (HTTP 200, body not JSON), ``echo_auth`` (400 quoting the request's Authorization header, as a
careless proxy does), ``not_json`` (reply content is prose), ``no_reflection``,
``empty_reflection``, ``fenced`` (reply JSON inside a ```json code fence and prose), ``drop`` (connection closed
without a reply), ``hang`` (no reply for 30 s, for client timeouts), ``latency=S`` (extra delay, then ok).
A key ``"*"`` applies to every request without its own script.

Every request is logged (kind, id, fault, model, whether the key or the ``basic_auth`` user and password matched, the
auth scheme, request path and a few headers) in memory and, when
``log_path`` is given, as JSON lines (so a test can read the log of a server running in another process).

Run on its own: ``python tests/fake_openai_server.py --port 0 --latency 0.2 --port-file PORT_FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ID_TAG = re.compile(r"\[id=([^\s\]]+)(?:\s+say=([^\]\s]+))?")
TEACHER_MARK = "Reference answer:"
ANNOTATE_MARK = "List the visual facts"  # srpo.reflect.annotate.ANNOTATE_MARK
JUDGE_MARK = "Visual facts to check:"  # srpo.perception.JUDGE_MARK
MARKS_TAG = re.compile(r"marks=([01](?:,[01])*)")
FACT_TAG = re.compile(r"<info(\d+)>")


class FakeOpenAIServer:
    def __init__(
        self,
        *,
        latency: float = 0.0,
        faults: dict[str, list[str]] | None = None,
        retry_after: str = "0.05",
        api_key: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        log_path: str | Path | None = None,
        keep_text: bool = False,
        models: tuple[str, ...] = ("fake",),
        host: str = "127.0.0.1",
        port: int = 0,
        tls: tuple[str, str] | None = None,
    ) -> None:
        self.latency = latency
        self.faults = {k: list(v) for k, v in (faults or {}).items()}
        self.retry_after = retry_after
        self.api_key = api_key
        self.basic_auth = basic_auth  # (user, password) that HTTP Basic auth must carry instead of the key
        self.log_path = Path(log_path) if log_path else None
        self.keep_text = keep_text  # log each request's prompt text too
        self.models = list(models)  # what GET /v1/models lists
        self.host, self.port = host, port
        self.tls = tls  # (certificate file, key file): serve https
        self.log: list[dict[str, Any]] = []
        self.in_flight = 0  # requests being answered now (touched only from the server's event loop)
        self.max_in_flight = 0
        self._seen: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._log_file = None

    # ---- lifecycle -------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}/v1"

    async def serve(self, ready: threading.Event | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        ssl_context = None
        if self.tls:
            import ssl

            ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ssl_context.load_cert_chain(*self.tls)
        self._server = await asyncio.start_server(self._handle, self.host, self.port, backlog=2048, ssl=ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.log_path:
            self._log_file = self.log_path.open("a", buffering=1)
        if ready:
            ready.set()
        async with self._server:
            await self._server.serve_forever()

    def start(self) -> "FakeOpenAIServer":
        """Serve from a background thread (its own event loop); returns once the port is bound."""
        ready = threading.Event()

        def run() -> None:
            try:
                asyncio.run(self.serve(ready))
            except asyncio.CancelledError:
                pass

        self._thread = threading.Thread(target=run, daemon=True, name="fake-openai-server")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake server did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(5)
            except Exception:  # noqa: BLE001 - the loop may be closing already
                pass
        if self._thread:
            self._thread.join(5)
        if self._log_file:
            self._log_file.close()

    async def _shutdown(self) -> None:
        if self._server:
            self._server.close()
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- queries for tests -----------------------------------------------------------------------------------
    def requests(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self.log if kind is None or r["kind"] == kind]

    def set_faults(self, faults: dict[str, list[str]]) -> None:
        with self._lock:
            self.faults = {k: list(v) for k, v in faults.items()}
            self._seen.clear()

    # ---- HTTP ------------------------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                try:
                    method, path, _ = line.decode("latin-1").split(" ", 2)
                except ValueError:
                    return
                headers: dict[str, str] = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length") or 0)
                body = await reader.readexactly(length) if length else b""
                status, extra_headers, payload, delay, action = self._respond(method, path, headers, body)
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    if delay:
                        await asyncio.sleep(delay)
                finally:
                    self.in_flight -= 1
                if action == "drop":
                    writer.transport.abort()
                    return
                head = [f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}",
                        "Content-Type: application/json", f"Content-Length: {len(payload)}"]
                head += [f"{k}: {v}" for k, v in extra_headers.items()]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            try:
                writer.close()
            except Exception:
                pass

    def _respond(self, method: str, path: str, headers: dict[str, str], body: bytes):
        """(status, headers, body bytes, delay seconds, action) for one request."""
        if method == "GET" and path.rstrip("/").endswith("/models"):
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
            return 200, {}, json.dumps({"object": "list", "data": data}).encode(), 0, ""
        if not path.rstrip("/").endswith("/chat/completions"):
            return 404, {}, b'{"error": {"message": "not found"}}', 0, ""
        try:
            request = json.loads(body)
        except ValueError:
            return 400, {}, b'{"error": {"message": "request body is not JSON"}}', 0, ""
        text = _prompt_text(request)
        kind = "judge" if JUDGE_MARK in text else "teacher" if TEACHER_MARK in text else "policy"
        kind = "annotate" if kind == "policy" and ANNOTATE_MARK in text else kind
        m = ID_TAG.search(text)
        item, say = (m.group(1), m.group(2)) if m else ("?", None)
        key = f"{kind}:{item}"
        if self.basic_auth:
            expected = "Basic " + base64.b64encode(":".join(self.basic_auth).encode("utf-8")).decode("ascii")
        else:
            expected = None if self.api_key is None else f"Bearer {self.api_key}"
        authorized = expected is None or headers.get("authorization") == expected
        with self._lock:
            script = self.faults.get(key, self.faults.get("*", ["ok"]))
            n = self._seen[key]
            self._seen[key] += 1
            fault = script[min(n, len(script) - 1)] if script else "ok"
            if not authorized:
                fault = "401"
            record = {"kind": kind, "id": item, "n": n, "fault": fault, "model": request.get("model"),
                      "authorized": authorized, "auth_scheme": headers.get("authorization", "").partition(" ")[0],
                      "path": path, "user_agent": headers.get("user-agent"),
                      "proxy_authorization": headers.get("proxy-authorization"),
                      "images": _count_images(request), "t": time.time(),
                      "response_format": request.get("response_format"),
                      "temperature": request.get("temperature"),
                      "max_completion_tokens": request.get("max_completion_tokens"),
                      "text": text if self.keep_text else None}
            self.log.append(record)
            if self._log_file:
                self._log_file.write(json.dumps(record) + "\n")
        delay = self.latency
        if fault.startswith("latency="):
            delay += float(fault.split("=", 1)[1])
            fault = "ok"
        if fault == "drop":
            return 0, {}, b"", delay, "drop"
        if fault == "hang":
            return 0, {}, b"", 30.0, "drop"
        if fault in ("429", "500", "503", "400", "401"):
            status = int(fault)
            extra = {"Retry-After": self.retry_after} if status == 429 else {}
            return status, extra, json.dumps({"error": {"message": f"injected {status}", "code": status}}).encode(), delay, ""
        if fault == "echo_auth":
            message = f"bad request; you sent Authorization: {headers.get('authorization')}"
            return 400, {}, json.dumps({"error": {"message": message}}).encode(), delay, ""
        if fault == "malformed_json":
            return 200, {}, b'{"id": "x", "choices": [ {"message": ', delay, ""
        if kind == "judge":
            content = judge_reply(text, fault)
        elif kind == "annotate":
            content = {"not_json": f"The figure of {item} is clear.",
                       "numbered": "".join(f"{i}. {fact}\n" for i, fact in enumerate(facts_for(item), 1)),
                       }.get(fault, json.dumps(facts_for(item)))
        elif kind == "policy":
            content = f"<think>I count {say or '1'} for {item}.</think> <answer>{say or '1'}</answer>"
        elif fault == "not_json":
            content = f"The student did well on {item}."
        elif fault == "no_reflection":
            content = json.dumps({"critique": f"missing key for {item}"})
        elif fault == "empty_reflection":
            content = json.dumps({"reflection": "  "})
        elif fault == "fenced":
            content = "Here is my review:\n```json\n" + json.dumps({"reflection": reflection_for(item)}) + "\n```"
        else:
            content = json.dumps({"reflection": reflection_for(item)})
        reply = {
            "id": f"chatcmpl-{item}-{n}",
            "object": "chat.completion",
            "created": 0,
            "model": request.get("model") or "fake",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }
        return 200, {}, json.dumps(reply).encode(), delay, ""


def judge_reply(text: str, fault: str) -> str:
    """Marks for the facts listed between the judge marker and the response: scripted by a marks= tag, else 1s."""
    if fault == "garbled":
        return "The response mentions some of the facts."
    scripted = MARKS_TAG.search(text)
    if scripted:
        marks = scripted.group(1).split(",")
    else:
        facts = text.split(JUDGE_MARK, 1)[1].split("Response:", 1)[0]
        marks = ["1"] * len(set(FACT_TAG.findall(facts)))
    return ", ".join(f"<info{i}>{mark}</info{i}>" for i, mark in enumerate(marks, 1))


def facts_for(item: str) -> list[str]:
    return [f"{item} has 3 dots", f"the dots of {item} are red"]


def reflection_for(item: str) -> str:
    return f"Reviewing {item}: I should check each step against the figure and state the count directly."


def _prompt_text(request: dict) -> str:
    parts = []
    for message in request.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
    return "\n".join(parts)


def _count_images(request: dict) -> int:
    n = 0
    for message in request.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    url = (part.get("image_url") or {}).get("url", "")
                    n += url.startswith("data:image/")
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--faults", default="{}", help="JSON mapping key -> list of faults")
    parser.add_argument("--retry-after", default="0.05")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--log", default=None, help="append one JSON line per request here")
    parser.add_argument("--port-file", default=None, help="write the bound port here once listening")
    args = parser.parse_args()
    server = FakeOpenAIServer(latency=args.latency, faults=json.loads(args.faults), retry_after=args.retry_after,
                              api_key=args.api_key, log_path=args.log, host=args.host, port=args.port)

    async def run() -> None:
        ready = threading.Event()
        task = asyncio.create_task(server.serve(ready))
        while not ready.is_set():
            await asyncio.sleep(0.01)
        if args.port_file:
            tmp = Path(args.port_file + ".tmp")
            tmp.write_text(str(server.port))
            tmp.replace(args.port_file)
        print(f"listening on {server.url}", flush=True)
        await task

    asyncio.run(run())


if __name__ == "__main__":
    main()
