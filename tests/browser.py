"""A headless Chromium driven over the DevTools protocol (a websocket, spoken with aiohttp): enough to open a page,
evaluate JavaScript in it and take a screenshot, with no browser-automation package. Tests that need it skip, with
the reason, when no Chromium binary is installed (CI installs the Debian package chromium-headless-shell)."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp
import pytest

BINARIES = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")


def chromium_binary() -> str | None:
    return next((found for name in BINARIES if (found := shutil.which(name))), None)


def need_chromium() -> str:
    binary = chromium_binary()
    if binary is None:
        pytest.skip(f"no Chromium binary on PATH (looked for {', '.join(BINARIES)}); apt-get install "
                    "chromium-headless-shell")
    return binary


class Browser:
    """One headless Chromium with one page. `open(url)` waits for the load event; `evaluate(js)` returns the value;
    JavaScript exceptions thrown by the page are collected in `errors`."""

    def __init__(self, binary: str | None = None, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.errors: list[str] = []
        self._profile = tempfile.TemporaryDirectory()
        self._process = subprocess.Popen(
            [binary or need_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
             f"--user-data-dir={self._profile.name}", "--window-size=1280,900", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._loop = asyncio.new_event_loop()
        self._next_id = 0
        self._waiters: dict[int, asyncio.Future] = {}
        self._events: list[dict] = []
        self._run(self._connect())

    def _run(self, coroutine):
        return self._loop.run_until_complete(asyncio.wait_for(coroutine, self.timeout))

    async def _connect(self) -> None:
        port_file = Path(self._profile.name) / "DevToolsActivePort"
        while not port_file.is_file() or len(port_file.read_text().splitlines()) < 2:
            if self._process.poll() is not None:
                raise RuntimeError(f"Chromium exited with code {self._process.returncode}")
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])
        self._session = aiohttp.ClientSession()
        async with self._session.put(f"http://127.0.0.1:{port}/json/new?about:blank") as response:
            target = await response.json(content_type=None)
        self._socket = await self._session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
        self._reader = self._loop.create_task(self._read())
        await self._call("Page.enable")
        await self._call("Runtime.enable")

    async def _read(self) -> None:
        async for message in self._socket:
            data = json.loads(message.data)
            if "id" in data and data["id"] in self._waiters:
                self._waiters.pop(data["id"]).set_result(data)
            elif data.get("method") == "Runtime.exceptionThrown":
                details = data["params"]["exceptionDetails"]
                self.errors.append(details.get("exception", {}).get("description") or details.get("text", ""))
            else:
                self._events.append(data)

    async def _call(self, method: str, **params) -> dict:
        self._next_id += 1
        waiter = self._loop.create_future()
        self._waiters[self._next_id] = waiter
        await self._socket.send_str(json.dumps({"id": self._next_id, "method": method, "params": params}))
        reply = await waiter
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    async def _open(self, url: str) -> float:
        self._events.clear()
        start = time.perf_counter()
        await self._call("Page.navigate", url=url)
        while not any(e.get("method") == "Page.loadEventFired" for e in self._events):
            await asyncio.sleep(0.01)
        return time.perf_counter() - start

    def open(self, url: str) -> float:
        """Navigate and wait for the load event; returns the seconds it took."""
        return self._run(self._open(url))

    def evaluate(self, expression: str):
        result = self._run(self._call("Runtime.evaluate", expression=expression, returnByValue=True,
                                      awaitPromise=True))
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: str | Path) -> Path:
        data = self._run(self._call("Page.captureScreenshot", format="png"))["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        async def shut():
            await self._socket.close()
            await self._session.close()
        try:
            self._run(shut())
        finally:
            self._reader.cancel()
            self._loop.close()
            self._process.terminate()
            self._process.wait(timeout=10)
            self._profile.cleanup()

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
