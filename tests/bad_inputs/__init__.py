"""Rows of the bad-input table (`tests/test_bad_inputs.py`), one module per area: each exposes `CASES`.

A row is a command line that must stop with exit code 2 and one line `error: ...` that matches `expect` (so it
names the file, line, item id or field and the fix), with no traceback. `argv` receives a `Workspace` and may write
the bad files it needs into `ws.tmp` first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Workspace:
    tmp: Path  # an empty folder of this row's own
    model: Path  # the tiny model (real checkpoint folder)
    problems: Path  # a valid problems.jsonl with images

    def write(self, name: str, content: str | bytes) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path


@dataclass
class BadInput:
    name: str  # the test id
    argv: Callable[[Workspace], list[str]]  # the arguments after `srpo`
    expect: str  # a regex the `error:` line must match (search)
    env: dict[str, str] = field(default_factory=dict)
