"""`kill -9` of `srpo reflect` mid-run: the resumed run never asks again for a finished item, and its dataset is
identical to an uninterrupted run's. The CLI runs as a subprocess against the loopback server of this process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
from PIL import Image

from fake_openai_server import FakeOpenAIServer
from srpo.data import Problem, save_problems
from srpo.store import JsonlStore

SECRET = "sk-kill-test-SECRET-77aa"
N = 60
CONCURRENCY = 4
FAULTS = {  # the same scripted faults for both runs
    "policy:k11": ["429", "ok"],
    "policy:k23": ["drop", "ok"],
    "teacher:k08": ["not_json"],  # a right attempt, always kept; fails after its retries: recorded, not asked again on resume
    "teacher:k13": ["500", "ok"],
    "teacher:k30": ["malformed_json", "ok"],
}


def write_problems(path: Path) -> Path:
    problems = [Problem(id=f"k{i:02d}", question=f"[id=k{i:02d} say={3 if i % 4 == 0 else 5}] Count the dots.",
                        answer="3", images=[Image.new("RGB", (24, 24), (i * 4, 0, 0))], answer_type="integer")
                for i in range(N)]
    return save_problems(problems, path)


def start(problems: Path, url: str, out: Path, log: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "srpo.cli", "reflect", "--problems", str(problems), "--policy", url,
            "--policy-api-key-env", "KILL_TEST_KEY", "--teacher", url, "--teacher-model", "judge",
            "--teacher-api-key-env", "KILL_TEST_KEY", "--out", str(out), "--concurrency", str(CONCURRENCY),
            "--backoff-base", "0.01", "--backoff-max", "0.05", "--malformed-retries", "1", "--seed", "5"]
    env = {**os.environ, "KILL_TEST_KEY": SECRET}
    handle = log.open("a")
    return subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, env=env)


def complete_lines(path: Path) -> int:
    if not path.exists():
        return 0
    return path.read_bytes().count(b"\n")


def kill_when(proc: subprocess.Popen, path: Path, lines: int, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while complete_lines(path) < lines:
        assert proc.poll() is None, f"run ended before {path.name} had {lines} lines"
        assert time.monotonic() < deadline, f"{path.name} never reached {lines} lines"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    return time.time()


def finish(proc: subprocess.Popen, log: Path) -> None:
    assert proc.wait(120) == 0, log.read_text()[-3000:]


def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path):
    problems = write_problems(tmp_path / "problems.jsonl")

    with FakeOpenAIServer(latency=0.05, faults=FAULTS, api_key=SECRET) as server:
        full = tmp_path / "full"
        finish(start(problems, server.url, full, tmp_path / "full.log"), tmp_path / "full.log")
        full_requests = server.requests()

    with FakeOpenAIServer(latency=0.05, faults=FAULTS, api_key=SECRET) as server:
        part, log = tmp_path / "part", tmp_path / "part.log"
        # 1) killed while the policy's attempts are coming in
        t1 = kill_when(start(problems, server.url, part, log), part / "attempts.jsonl", 12)
        attempts_done = set(JsonlStore(part / "attempts.jsonl").load())
        assert 12 <= len(attempts_done) < N
        # 2) resumed, then killed while the teacher's reflections are coming in
        t2 = kill_when(start(problems, server.url, part, log), part / "reflections.jsonl", 10)
        replies_done = set(JsonlStore(part / "reflections.jsonl").load())
        assert 10 <= len(replies_done) < N
        assert set(JsonlStore(part / "attempts.jsonl").load()) == {f"k{i:02d}" for i in range(N)}
        # 3) resumed to the end
        finish(start(problems, server.url, part, log), log)
        part_requests = server.requests()

    # the same dataset, row for row and byte for byte
    assert datasets.load_from_disk(str(part / "dataset")).data.table.equals(
        datasets.load_from_disk(str(full / "dataset")).data.table)
    full_summary, part_summary = (json.loads((d / "summary.json").read_text()) for d in (full, part))
    for key in ("kept", "kept_right", "kept_wrong", "dropped", "attempts_right", "attempts_wrong"):
        assert part_summary[key] == full_summary[key]
    assert full_summary["dropped"] == {"mix_wrong": 10, "teacher_failed": 1}

    # no item that was durable at a kill was requested again after it
    assert not [r for r in part_requests if r["kind"] == "policy" and r["id"] in attempts_done and r["t"] > t1]
    assert not [r for r in part_requests if r["kind"] == "teacher" and r["id"] in replies_done and r["t"] > t2]
    # at most the requests in flight at each kill were lost and made again
    for kind in ("policy", "teacher"):
        extra = len([r for r in part_requests if r["kind"] == kind]) - len([r for r in full_requests
                                                                           if r["kind"] == kind])
        assert 0 <= extra <= 2 * CONCURRENCY, (kind, extra)
    # the key was sent on every request, and written nowhere
    assert all(r["authorized"] for r in part_requests + full_requests)
    for d in (full, part):
        for file in d.rglob("*"):
            if file.is_file():
                assert SECRET.encode() not in file.read_bytes(), file
    assert SECRET not in (tmp_path / "full.log").read_text() + log.read_text()
