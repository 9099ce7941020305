"""Durable append-only JSONL stores for work items that take long to make: reflect's policy attempts and teacher
replies, eval's generated replies.

One JSON object per line, keyed by `id`; the last line of an id wins (a `--retry-failed` rerun appends a newer record).
A record counts as done only once its line is written, flushed and fsync'ed. A `kill -9` can leave at most a torn
last line: it is ignored on load and cut off before the next append, so it never corrupts the file.

`AsyncAppender` batches the records finished by concurrent workers into one write + fsync ("group commit") in a
worker thread, and each `await append(...)` returns only once its record is on disk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable

from srpo.files import cut_torn_tail

logger = logging.getLogger(__name__)


class JsonlStore:
    def __init__(self, path: str | Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._file = None

    def load(self) -> dict[str, dict[str, Any]]:
        """Records by id (last one wins); unreadable lines (a torn tail after a crash) are skipped."""
        records: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return records
        bad = 0
        with self.path.open("rb") as f:
            for raw in f:
                if not raw.strip():
                    continue
                if not raw.endswith(b"\n"):  # torn last line: never counted as written
                    bad += 1
                    continue
                try:
                    record = json.loads(raw)
                except ValueError:
                    bad += 1
                    continue
                if isinstance(record, dict) and isinstance(record.get("id"), str):
                    records[record["id"]] = record
                else:
                    bad += 1
        if bad:
            logger.warning("%s: skipped %d unreadable line(s) (an interrupted write)", self.path, bad)
        return records

    def _open(self):
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            cut_torn_tail(self.path)
            self._file = self.path.open("ab")
        return self._file

    def append_many(self, records: Iterable[dict[str, Any]]) -> None:
        """Append records and make them durable (flush + fsync) before returning."""
        data = b"".join(json.dumps(r, ensure_ascii=False).encode("utf-8") + b"\n" for r in records)
        if not data:
            return
        f = self._open()
        f.write(data)
        f.flush()
        if self.fsync:
            os.fsync(f.fileno())

    def append(self, record: dict[str, Any]) -> None:
        self.append_many([record])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "JsonlStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncAppender:
    """Group commit for concurrent workers: `await append(record)` returns once the record is durable."""

    def __init__(self, store: JsonlStore) -> None:
        self.store = store
        self._pending: list[tuple[dict[str, Any], asyncio.Future]] = []
        self._task: asyncio.Task | None = None

    async def append(self, record: dict[str, Any]) -> None:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((record, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        await future

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self.store.append_many, [record for record, _ in batch])
            except BaseException as exc:  # noqa: BLE001 - handed to every waiter
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
