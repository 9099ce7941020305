"""math-verify with every call bounded in time (SPEC §4 "Each call bounded in time; a timeout is wrong, never a
crash").

math-verify's own timeout uses ``signal.alarm`` (whole seconds, main thread only). In the main thread we use it
(``parsing_timeout`` / ``timeout_seconds`` = ``ceil(timeout)``, at least 1 s, per call: parse gold, parse
prediction, verify). In any other thread (e.g. an async reward loop) the check runs in a small pool of helper
processes (``python -c`` children started with :mod:`subprocess`, so the parent's ``__main__`` is never
re-imported), where math-verify again runs in a main thread with its SIGALRM timeouts; the parent waits at most
``3 * ceil(timeout) + 1`` seconds for the answer and kills and replaces a stuck helper. A timeout is ``False``.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import socket
import subprocess
import sys
import threading

logger = logging.getLogger(__name__)


def _alarm_seconds(timeout: float) -> int:
    return max(1, int(math.ceil(timeout)))


@functools.lru_cache(maxsize=2**16)
def _parse_gold(gold: str, seconds: int):
    from math_verify import parse

    # SPEC §4: "parse the reference wrapped as $gold$"
    return parse(f"${gold}$", parsing_timeout=seconds)


def _mv_check(pred: str, gold: str, seconds: int) -> bool:
    """math-verify in the *main thread* of this process, each call bounded by SIGALRM (math-verify's timeout)."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, StringExtractionConfig, parse, verify

    try:
        gold_parsed = _parse_gold(gold, seconds)
        if not gold_parsed:
            return False
        # SPEC §4: prediction parsed with string, LaTeX and expression extraction. The extracted prediction is
        # re-wrapped in $..$ so that LaTeX extraction sees it (a bare "\sqrt{2}" is otherwise missed).
        pred_parsed = parse(
            f"${pred}$",
            extraction_config=[ExprExtractionConfig(), LatexExtractionConfig(), StringExtractionConfig()],
            parsing_timeout=seconds,
        )
        if not pred_parsed:
            return False
        # math-verify's documented argument order: gold first, prediction second.
        return bool(verify(gold_parsed, pred_parsed, timeout_seconds=seconds))
    except BaseException as e:  # TimeoutException derives from BaseException
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        return False


class _Helper:
    """One helper process running :func:`_helper_main`; talks over a socketpair wrapped in a Connection."""

    def __init__(self) -> None:
        from multiprocessing.connection import Connection

        parent, child = socket.socketpair()
        env = dict(os.environ)
        pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join([pkg_root, *sys.path[1:], env.get("PYTHONPATH", "")]).strip(os.pathsep)
        cfd = child.fileno()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", f"import srpo.verify as v; v._helper_main({cfd})"],
                pass_fds=(cfd,),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        finally:
            child.close()
        self.conn = Connection(parent.detach())
        if not self.conn.poll(120) or self.conn.recv() != "ready":
            self.kill()
            raise RuntimeError("math-verify helper process did not start")

    def kill(self) -> None:
        try:
            self.conn.close()
        except Exception:
            pass
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except Exception:
            pass


def _helper_main(fd: int) -> None:  # pragma: no cover - runs in the helper process
    from multiprocessing.connection import Connection

    import math_verify  # noqa: F401  (import before announcing readiness)

    conn = Connection(fd)
    conn.send("ready")
    while True:
        try:
            pred, gold, seconds = conn.recv()
        except (EOFError, OSError):
            return
        try:
            res = _mv_check(pred, gold, seconds)
        except BaseException:
            res = False
        try:
            conn.send(bool(res))
        except (EOFError, OSError):
            return


class _HelperPool:
    """At most ``size`` helper processes, shared by all non-main threads."""

    def __init__(self, size: int = 2) -> None:
        self._sem = threading.BoundedSemaphore(size)
        self._idle: list[_Helper] = []
        self._lock = threading.Lock()

    def check(self, pred: str, gold: str, seconds: int) -> bool:
        with self._sem:
            with self._lock:
                helper = self._idle.pop() if self._idle else None
            if helper is None:
                try:
                    helper = _Helper()
                except Exception:
                    logger.warning("could not start a math-verify helper process; answer counted wrong", exc_info=True)
                    return False
            ok = False
            try:
                helper.conn.send((pred, gold, seconds))
                # three bounded math-verify calls (parse gold, parse prediction, verify) + IPC slack
                if helper.conn.poll(3 * seconds + 1.0):
                    res = bool(helper.conn.recv())
                    ok = True
                    return res
                logger.warning("math-verify helper timed out; restarting it")
                return False
            except (EOFError, OSError):
                return False
            finally:
                if ok:
                    with self._lock:
                        self._idle.append(helper)
                else:
                    helper.kill()

    def close(self) -> None:
        with self._lock:
            helpers, self._idle = self._idle, []
        for h in helpers:
            h.kill()


_POOL = _HelperPool(size=int(os.environ.get("SRPO_VERIFY_WORKERS", "2") or 2))


def verify_equal(pred: str, gold: str, timeout: float) -> bool:
    """math-verify's `verify(parse("$gold$"), parse(pred))`, bounded by `timeout` seconds; a timeout is False."""
    seconds = _alarm_seconds(timeout)
    if threading.current_thread() is threading.main_thread():
        return _mv_check(pred, gold, seconds)
    return _POOL.check(pred, gold, seconds)


def clear_parse_cache() -> None:
    _parse_gold.cache_clear()
