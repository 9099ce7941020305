"""math-verify with every call bounded in time (docs/method.md#rewards "Each call bounded in time; a timeout is wrong, never a
crash").

math-verify's own timeout uses ``signal.alarm`` (whole seconds, main thread only). In the main thread we use it
(``parsing_timeout`` / ``timeout_seconds`` = ``ceil(timeout)``, at least 1 s, per call: parse gold, parse
prediction, verify each gold / prediction pair). In any other thread (e.g. an async reward loop) the check runs in
a small pool of helper processes (``python -c`` children started with :mod:`subprocess`, so the parent's
``__main__`` is never re-imported), where math-verify again runs in a main thread with its SIGALRM timeouts; the
parent waits at most ``3 * ceil(timeout) + 1`` seconds for the answer and kills and replaces a stuck helper.

Left to itself math-verify turns a timeout or an exception into ``[]`` / ``False``, which cannot be told apart
from a completed "not equal". We call it with ``raise_on_error=True`` instead, so :func:`verify_equal` returns
only completed results and raises :class:`CheckTimeout` or :class:`CheckError` otherwise. Only a completed gold
parse is cached (``functools.lru_cache`` does not store a call that raised).
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


class CheckTimeout(Exception):
    """A math-verify call ran out of time: no answer (never cached; the next call tries again)."""


class CheckError(Exception):
    """math-verify raised: no answer."""


def _alarm_seconds(timeout: float) -> int:
    return max(1, int(math.ceil(timeout)))


def _describe(e: BaseException) -> str:
    # Only a message that is already a string: turning sympy objects into text can itself hang (math-verify's note).
    message = e.args[0] if e.args and isinstance(e.args[0], str) else ""
    return f"{type(e).__name__}: {message[:200]}" if message else type(e).__name__


@functools.lru_cache(maxsize=2**16)
def _parse_gold(gold: str, seconds: int):
    from math_verify import parse

    # docs/method.md#rewards: "parse the reference wrapped as $gold$"
    return parse(f"${gold}$", parsing_timeout=seconds, raise_on_error=True)


def _mv_check(pred: str, gold: str, seconds: int) -> bool:
    """math-verify in the *main thread* of this process, each call bounded by SIGALRM (math-verify's timeout).
    Raises :class:`CheckTimeout` / :class:`CheckError` when no pair compared equal and a call did not complete."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, StringExtractionConfig, parse, verify
    from math_verify.errors import TimeoutException

    try:
        gold_parsed = _parse_gold(gold, seconds)
        if not gold_parsed:
            return False
        # docs/method.md#rewards: prediction parsed with string, LaTeX and expression extraction. The extracted prediction is
        # re-wrapped in $..$ so that LaTeX extraction sees it (a bare "\sqrt{2}" is otherwise missed).
        pred_parsed = parse(
            f"${pred}$",
            extraction_config=[ExprExtractionConfig(), LatexExtractionConfig(), StringExtractionConfig()],
            parsing_timeout=seconds,
            raise_on_error=True,
        )
    except TimeoutException as e:
        raise CheckTimeout(f"parsing took over {seconds} s") from e
    except Exception as e:
        raise CheckError(_describe(e)) from e
    # verify(gold, pred) is true when any pair is; compared pair by pair so that one pair that times out or raises
    # does not hide another pair that completes equal.
    failure: Exception | None = None
    for g in gold_parsed:
        for p in pred_parsed:
            try:
                # math-verify's documented argument order: gold first, prediction second.
                if verify(g, p, timeout_seconds=seconds, raise_on_error=True):
                    return True
            except TimeoutException:
                failure = failure or CheckTimeout(f"comparison took over {seconds} s")
            except Exception as e:
                failure = failure or CheckError(_describe(e))
    if failure is not None:
        raise failure
    return False


def _mv_released(blocks: tuple[str, ...], gold: str, seconds: int) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """The released reward's answer check (docs/method.md#rewards reference preset), in the main thread of this
    process: the gold parsed as ``$gold$`` with the defaults, each answer block (tags included) parsed with string,
    LaTeX and expression extraction, then ``verify(block_parsed, gold_parsed)``, the prediction in math-verify's
    gold slot as the released code calls it. Returns ``(gold_texts, outcomes)``: ``gold_texts`` is None when the
    gold parses to nothing (or its parse raises: the released parse returns [] then), else ``str()`` of each
    parsed gold item; one outcome per block, "right", "wrong", "error" or "timeout" (the last two are wrong
    answers, as the released code's silent [] / False are, counted by the caller). Raises :class:`CheckTimeout`
    when the gold's parse runs out of time."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, StringExtractionConfig, parse, verify
    from math_verify.errors import TimeoutException
    from math_verify.utils import timeout

    try:
        gold_parsed = _parse_gold(gold, seconds)
        if not gold_parsed:
            return None, ()
        gold_texts = tuple(timeout(timeout_seconds=seconds)(lambda: [str(g) for g in gold_parsed])())
    except TimeoutException as e:
        raise CheckTimeout(f"parsing the gold took over {seconds} s") from e
    except Exception:
        return None, ()
    config = [StringExtractionConfig(), LatexExtractionConfig(), ExprExtractionConfig()]  # the released order
    outcomes: list[str] = []
    for block in blocks:
        try:
            pred_parsed = parse(block, extraction_config=config, parsing_timeout=seconds, raise_on_error=True)
        except TimeoutException:
            outcomes.append("timeout")
            continue
        except Exception:
            outcomes.append("error")
            continue
        outcome = "wrong"
        for p in pred_parsed:
            for g in gold_parsed:
                try:
                    if verify(p, g, timeout_seconds=seconds, raise_on_error=True):
                        outcome = "right"
                        break
                except TimeoutException:
                    outcome = "timeout" if outcome == "wrong" else outcome
                except Exception:
                    outcome = "error" if outcome == "wrong" else outcome
            if outcome == "right":
                break
        outcomes.append(outcome)
    return gold_texts, tuple(outcomes)


_JOBS = {"check": _mv_check, "released": _mv_released}
# the most math-verify calls one job makes, each bounded by `seconds`: how long the parent waits for a helper
_JOB_CALLS = {"check": 3, "released": 12}


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
            job, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply = ("done", _JOBS[job](*args))
        except CheckTimeout as e:
            reply = ("timeout", str(e))
        except BaseException as e:  # the parent must get an answer whatever happened here
            reply = ("error", str(e) if isinstance(e, CheckError) else _describe(e))
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return


class _HelperPool:
    """At most ``size`` helper processes, shared by all non-main threads."""

    def __init__(self, size: int = 2) -> None:
        self._sem = threading.BoundedSemaphore(size)
        self._idle: list[_Helper] = []
        self._lock = threading.Lock()

    def check(self, pred: str, gold: str, seconds: int) -> bool:
        return bool(self.run("check", (pred, gold, seconds), seconds))

    def run(self, job: str, args: tuple, seconds: int):
        """``_JOBS[job](*args)`` in a helper process, waiting at most ``_JOB_CALLS[job] * seconds + 1`` s."""
        wait = _JOB_CALLS[job] * seconds + 1.0
        with self._sem:
            with self._lock:
                helper = self._idle.pop() if self._idle else None
            if helper is None:
                try:
                    helper = _Helper()
                except Exception as e:
                    raise CheckError(f"could not start a math-verify helper process ({_describe(e)})") from e
            reusable = False
            try:
                helper.conn.send((job, args))
                # the job's bounded math-verify calls + IPC slack
                if not helper.conn.poll(wait):
                    raise CheckTimeout(f"math-verify helper gave no answer within {wait:g} s; restarted it")
                kind, value = helper.conn.recv()
                reusable = True
            except (EOFError, OSError) as e:
                raise CheckError(f"math-verify helper process died ({_describe(e)}); restarted it") from e
            finally:
                if reusable:
                    with self._lock:
                        self._idle.append(helper)
                else:
                    helper.kill()
            if kind == "timeout":
                raise CheckTimeout(value)
            if kind == "error":
                raise CheckError(value)
            return value


_POOL = _HelperPool(size=int(os.environ.get("SRPO_VERIFY_WORKERS", "2") or 2))


def verify_equal(pred: str, gold: str, timeout: float) -> bool:
    """math-verify's `verify(parse("$gold$"), parse(pred))`, bounded by `timeout` seconds. Returns only completed
    results; raises :class:`CheckTimeout` when a call ran out of time and :class:`CheckError` when math-verify
    (or its helper process) failed."""
    seconds = _alarm_seconds(timeout)
    if threading.current_thread() is threading.main_thread():
        return _mv_check(pred, gold, seconds)
    return _POOL.check(pred, gold, seconds)


def released_check(blocks: tuple[str, ...], gold: str, timeout: float) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """:func:`_mv_released` bounded in time, in this thread when it is the main one, else in a helper process.
    Raises :class:`CheckTimeout` (the gold's parse, or the helper, ran out of time) or :class:`CheckError`."""
    seconds = _alarm_seconds(timeout)
    if threading.current_thread() is threading.main_thread():
        return _mv_released(tuple(blocks), gold, seconds)
    return _POOL.run("released", (tuple(blocks), gold, seconds), seconds)


def clear_parse_cache() -> None:
    _parse_gold.cache_clear()
