"""Writing files so that a crash never leaves a half-written one, and checking output paths before any work starts.

* :func:`atomic_write_text` / :func:`atomic_write_bytes` / :func:`atomic_write_json` / :func:`save_figure`: a temporary file beside the target, fsync'ed, then renamed
  over it; a reader sees the old file or the new one, never a torn one.
* :func:`replace_dir` (or :func:`partial_dir` + :func:`swap_in` when several processes write): the same for a
  folder (a model, a dataset): written beside the target, then swapped in by renames.
* :func:`cut_torn_tail`: drops a last line left without its newline by a killed writer, before new lines are appended.
* :func:`check_output_dir`: an output path that is an existing file, or a folder that cannot be written, is a
  `UserError` naming the path, raised before any model is loaded or any request is made.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from srpo.errors import InvalidValue

logger = logging.getLogger(__name__)


class OutputPathError(InvalidValue):
    """An output path that cannot be written: an existing file where a folder is needed, or no write permission."""


def safe_stem(text: str, fallback: str) -> str:
    """`text` as a file name stem: runs of other characters than letters, digits, . _ - become one _; `fallback`
    when nothing is left."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or fallback


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_figure(fig, path: str | Path, **savefig_kwargs: Any) -> Path:
    """A matplotlib figure laid out tightly, written atomically as a PNG, then closed (its memory freed)."""
    from matplotlib import pyplot  # only where a figure is drawn: every module imports this one

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", **savefig_kwargs)
    pyplot.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def atomic_write_json(path: str | Path, data: Any, **dumps_kwargs: Any) -> Path:
    dumps_kwargs = {"indent": 2, "ensure_ascii": False, **dumps_kwargs}
    return atomic_write_text(path, json.dumps(data, **dumps_kwargs) + "\n")


def partial_dir(path: str | Path) -> Path:
    """Where a folder is written before `swap_in` puts it at `path`."""
    path = Path(path)
    return path.with_name(f".{path.name}.partial")


def swap_in(partial: str | Path, path: str | Path) -> Path:
    """Put the finished folder `partial` at `path` by renames; the old folder, if any, is removed last."""
    partial, path = Path(partial), Path(path)
    old = path.with_name(f".{path.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        path.rename(old)
    partial.rename(path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def replace_dir(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call `write(partial_folder)`, then swap it in at `path`: a crash leaves the old folder or the new one."""
    partial = partial_dir(path)
    shutil.rmtree(partial, ignore_errors=True)
    write(partial)
    return swap_in(partial, path)


def cut_torn_tail(path: str | Path) -> bool:
    """Drop a last line without its newline (a write cut short by a crash); True when something was cut."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return False
    with path.open("rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return False
        pos = f.seek(0, os.SEEK_END)
        block = 1 << 16
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            idx = f.read(pos - start).rfind(b"\n")
            if idx >= 0:
                f.truncate(start + idx + 1)
                break
            pos = start
        else:
            f.truncate(0)
        f.flush()
        os.fsync(f.fileno())
    logger.warning("%s: removed a torn last line left by an interrupted write", path)
    return True


def check_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """`path` can be used as an output folder: it is a folder (or can be made one) that this process can write.

    Nothing is created: the nearest existing ancestor is checked instead, so a refused command leaves no trace.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{what} {path} is an existing file, not a folder; pass a folder path")
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise OutputPathError(f"{what} {path}: {existing} is a file, so no folder can be made under it; pass another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what} {path}: {existing} is not writable by this user; pass a writable path")
    return path


def check_output_file(path: str | Path, what: str = "output file") -> Path:
    """`path` can be written as a file: not an existing folder, and its folder exists or can be made and written."""
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{what} {path} is an existing folder; pass a file path")
    check_output_dir(path.parent, f"folder of the {what}")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputPathError(f"{what} {path} is not writable by this user; pass a writable path")
    return path
