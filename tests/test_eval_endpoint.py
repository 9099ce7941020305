"""`srpo eval` against an OpenAI-compatible endpoint, and the LLM judge: a loopback HTTP server started by the test
answers chat completions with scripted replies (no model) and records every request."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image
from typer.testing import CliRunner

from fake_openai_server import FakeOpenAIServer
from srpo.cli import app
from srpo.data import Problem, save_problems
from srpo.eval.benchmarks import load_benchmark
from srpo.eval.judge import OpenAIJudge
from srpo.prompts import system_prompt

runner = CliRunner()


class ScriptedServer:
    """/v1/models lists one model; /v1/chat/completions answers `replies[user text]` for generation requests (with a
    system turn) and `judge(prompt)` for judge requests (a single user turn); "FAIL" in a prompt -> HTTP 500."""

    def __init__(self, replies: dict[str, str] | None = None, judge=None):
        self.replies, self.judge = replies or {}, judge or (lambda prompt: "None")
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _send(self, status: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "scripted-vlm", "object": "model",
                                                                 "created": 0, "owned_by": "test"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                text, status = server.answer(body, self.headers.get("Authorization"))
                if status != 200:
                    self._send(status, {"error": {"message": text, "type": "server_error"}})
                    return
                self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": text}}],
                                 "usage": {"prompt_tokens": 1, "completion_tokens": len(text.split()),
                                           "total_tokens": 1 + len(text.split())}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def answer(self, body: dict, auth: str | None) -> tuple[str, int]:
        messages = body["messages"]
        user = messages[-1]["content"]
        parts = user if isinstance(user, list) else [{"type": "text", "text": user}]
        text = "".join(p["text"] for p in parts if p["type"] == "text")
        images = []
        for p in parts:
            if p["type"] == "image_url":
                header, b64 = p["image_url"]["url"].split(",", 1)
                images.append((header, Image.open(io.BytesIO(base64.b64decode(b64))).size))
        kind = "generate" if messages[0]["role"] == "system" else "judge"
        with self.lock:
            self.requests.append({"kind": kind, "model": body["model"], "system": messages[0]["content"]
                                  if kind == "generate" else None, "text": text, "images": images,
                                  "max_tokens": body.get("max_tokens"), "temperature": body.get("temperature"),
                                  "auth": auth})
        if "FAIL" in text or "FAIL" in body["model"]:
            return "scripted failure", 500
        return (self.replies.get(text, "no idea") if kind == "generate" else self.judge(text)), 200

    def of(self, kind: str) -> list[dict]:
        return [r for r in self.requests if r["kind"] == kind]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _wrong(gold: str) -> str:
    if gold in "ABCDE" and len(gold) == 1:
        return "B" if gold == "A" else "A"
    return str(int(gold) + 1) if gold.isdigit() else "0"


def _five(first: str, final: str) -> str:
    return (f"<think>Looking at the figure.</think> <answer>$\\boxed{{{first}}}$</answer> <reflection>Let me check "
            f"the count again.</reflection> <think>Recounting.</think> <answer>$\\boxed{{{final}}}$</answer>")


@pytest.fixture
def items(benchmarks_dir):
    if not (benchmarks_dir / "mathvision" / "images").exists():
        pytest.skip(f"MathVision testmini images not available under {benchmarks_dir}")
    return load_benchmark("mathvision", split="testmini", limit=8).items


def _script(items) -> dict[str, str]:
    g = [it.gold for it in items]
    return {
        items[0].prompt: _five(_wrong(g[0]), g[0]),  # wrong -> right
        items[1].prompt: _five(g[1], g[1]),  # right -> right
        items[2].prompt: _five(g[2], _wrong(g[2])),  # right -> wrong
        items[3].prompt: _five(_wrong(g[3]), _wrong(g[3])),  # wrong -> wrong
        items[4].prompt: f"<think>Easy.</think> <answer>$\\boxed{{{g[4]}}}$</answer>",  # one answer, right
        items[5].prompt: f"Counting the shapes gives the result. The answer is {g[5]}",  # no tags
        # items 6, 7: "no idea"
    }


def test_endpoint_run_scripted_replies_and_judge(items, tmp_path, monkeypatch):
    monkeypatch.setenv("SRPO_TEST_KEY", "sk-test")
    monkeypatch.setenv("SRPO_JUDGE_KEY", "sk-judge")

    def judge(prompt: str) -> str:  # the MathVision extractor prompt quotes the response
        m = re.search(r"The answer is (\S+)", prompt)
        return m.group(1) if m else "None"

    out = tmp_path / "run"
    with ScriptedServer(_script(items), judge) as server:
        res = runner.invoke(app, ["eval", "--model", server.url, "--benchmark", "mathvision:testmini", "--limit", "8",
                                  "--out", str(out), "--max-new-tokens", "64", "--api-key-env", "SRPO_TEST_KEY",
                                  "--concurrency", "4", "--no-progress"])
        assert res.exit_code == 0, res.output
        gen = server.of("generate")
        assert len(gen) == 8 and not server.of("judge")
        by_text = {r["text"]: r for r in gen}
        for it in items:  # prompt, system prompt, greedy, budget, key, and the real image as a data URL
            r = by_text[it.prompt]
            assert r["system"] == system_prompt("reflection") and r["model"] == "scripted-vlm"
            assert (r["max_tokens"], r["temperature"], r["auth"]) == (64, 0.0, "Bearer sk-test")
            assert r["images"] == [("data:image/jpeg;base64", Image.open(it.images[0]).size)]
        metrics = json.loads((out / "metrics.json").read_text())
        # official MathVision extraction of the whole response: items 0, 1, 4, 5 right (final answers)
        assert (metrics["correct"], metrics["n_scored"]) == (4, 8)
        assert metrics["first_accuracy"] == pytest.approx(4 / 8)  # items 1, 2 (first answer), 4 and 5
        for name in ("wrong_to_right", "right_to_right", "right_to_wrong", "wrong_to_wrong"):
            assert metrics[name] == pytest.approx(1 / 8), name
        assert metrics["reflection_rate"] == pytest.approx(4 / 8) and metrics["length_unit"] == "words"
        items_out = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
        assert [r["transition"] for r in items_out[:5]] == ["wrong_to_right", "right_to_right", "right_to_wrong",
                                                            "wrong_to_wrong", None]
        assert items_out[0]["first_answer"] == f"$\\boxed{{{_wrong(items[0].gold)}}}$"
        run = json.loads((out / "run.json").read_text())
        assert run["generation"]["backend"] == "openai" and run["scoring"]["judge"] is None

        # rescoring the saved responses: srpo_compat + the LLM judge, no new generation requests
        res = runner.invoke(app, ["eval", "--model", server.url, "--benchmark", "mathvision:testmini", "--limit", "8",
                                  "--out", str(out), "--max-new-tokens", "64", "--mode", "srpo_compat",
                                  "--judge-url", server.url, "--judge-model", "judge-x",
                                  "--judge-key-env", "SRPO_JUDGE_KEY", "--no-progress"])
        assert res.exit_code == 0, res.output
        assert len(server.of("generate")) == 8
        judged = server.of("judge")
        # the judge is asked only where the compat rules find no <answer>/\boxed: items 5, 6, 7
        assert len(judged) == 3 and {r["model"] for r in judged} == {"judge-x"}
        assert {r["auth"] for r in judged} == {"Bearer sk-judge"}
    scores = json.loads((out / "scores.json").read_text())
    assert scores["scoring"]["mode"] == "srpo_compat" and scores["scoring"]["judge"]["model"] == "judge-x"
    assert scores["-all"].startswith("4/8=")  # compat: items 0, 1, 4 (final answer blocks) and 5 (via the judge)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["wrong_to_right"] == pytest.approx(1 / 8) and metrics["mode"] == "srpo_compat"
    methods = [json.loads(line)["method"] for line in (out / "items.jsonl").read_text().splitlines()]
    assert methods[5:] == ["llm", "llm", "llm"]


def _problem_file(tmp_path, n: int = 6):
    """Problems the loopback server answers: item pK is asked "[id=pK say=N]" and replies N (2, 3, 4, 2, ...)."""
    problems = [Problem(id=f"p{i}", question=f"[id=p{i} say={2 + i % 3}] How many squares?", answer=str(2 + i % 2),
                        images=[Image.new("RGB", (30 + 7 * i, 41), "white")], answer_type="integer") for i in range(n)]
    return save_problems(problems, tmp_path / "problems.jsonl")


def test_endpoint_eval_of_a_problem_file_retries_transient_faults(tmp_path, monkeypatch):
    """Runs without ../shared: a problem-schema file, the fault-injecting loopback server, the CLI end to end."""
    path = _problem_file(tmp_path)
    monkeypatch.setenv("SRPO_EVAL_KEY", "sk-eval")
    faults = {"policy:p1": ["429", "ok"], "policy:p2": ["500", "503", "ok"], "policy:p3": ["drop", "ok"]}
    with FakeOpenAIServer(faults=faults, api_key="sk-eval", retry_after="0.01") as server:
        res = runner.invoke(app, ["eval", "--model", server.url, "--benchmark", str(path), "--out", str(tmp_path / "r"),
                                  "--api-key-env", "SRPO_EVAL_KEY", "--concurrency", "3", "--max-new-tokens", "32"])
        assert res.exit_code == 0, res.output
        requests = server.requests("policy")
    assert sorted(r["id"] for r in requests) == ["p0", "p1", "p1", "p2", "p2", "p2", "p3", "p3", "p4", "p5"]
    assert all(r["authorized"] and r["images"] == 1 for r in requests) and {r["model"] for r in requests} == {"fake"}
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    # the scripted model says 2, 3, 4, 2, 3, 4 against answers 2, 3, 2, 3, 2, 3: p0 and p1 are right
    assert (metrics["correct"], metrics["n_scored"]) == (2, 6)
    bar = [line for line in res.stderr.replace("\r", "\n").splitlines() if "generating" in line][-1]
    assert "6/6" in bar and "item/s" in bar


def test_a_torn_last_reply_is_cut_and_only_its_item_generated_again(tmp_path):
    """A kill while the fifth reply was being written: its line is torn and the sixth never came. The rerun cuts the
    torn line before appending, so every line is one whole reply and no item is generated twice."""
    path, out = _problem_file(tmp_path), tmp_path / "run"
    cache = out / "responses.jsonl"
    with FakeOpenAIServer() as server:
        command = ["eval", "--model", server.url, "--benchmark", str(path), "--out", str(out), "--concurrency", "1",
                   "--no-progress"]
        assert runner.invoke(app, command).exit_code == 0
        lines = cache.read_text().splitlines(keepends=True)
        assert len(lines) == 6 and len(server.requests("policy")) == 6
        cache.write_text("".join(lines[:4]) + lines[4][: len(lines[4]) // 2])
        lost = sorted(json.loads(line)["id"] for line in lines[4:])
        res = runner.invoke(app, command)
        assert res.exit_code == 0, res.output
        asked_again = sorted(r["id"] for r in server.requests("policy")[6:])
    assert asked_again == lost  # the torn item and the missing one, once each
    rows = [json.loads(line) for line in cache.read_text().splitlines()]  # raises on a garbled line
    assert sorted(r["id"] for r in rows) == [f"p{i}" for i in range(6)]
    assert json.loads((out / "run.json").read_text())["timings"]["generated"] == 2
    assert json.loads((out / "metrics.json").read_text())["n_scored"] == 6


def _closed_port_url() -> str:
    """The base URL of a loopback port that nothing listens on (a typo'd endpoint)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_a_wrong_endpoint_then_the_right_one_in_the_same_folder(tmp_path):
    """A run that fails before its first reply saved nothing, so the corrected command is not "a different run";
    once replies are saved, another model in that folder is refused (they are work done)."""
    path, out = _problem_file(tmp_path, 3), tmp_path / "run"
    command = ["eval", "--benchmark", str(path), "--out", str(out), "--no-progress", "--model"]
    res = runner.invoke(app, [*command, _closed_port_url()])
    assert res.exit_code == 2 and "listing models failed" in res.output
    with FakeOpenAIServer() as server:
        res = runner.invoke(app, [*command, server.url])
        assert res.exit_code == 0, res.output
        assert len(server.requests("policy")) == 3
    assert json.loads((out / "run.json").read_text())["generation"]["model"] == server.url
    res = runner.invoke(app, [*command, _closed_port_url()])
    assert res.exit_code == 2 and "holds 3 saved replies of a different run (model: " in res.output


def test_endpoint_errors_are_reported(items, tmp_path):
    from srpo.eval.driver import EvalConfig, run_eval

    with ScriptedServer() as server:
        cfg = EvalConfig(model=server.url, benchmark="mathvision:testmini", limit=2, out=str(tmp_path / "r"),
                         served_model="FAIL-model", max_new_tokens=8, request_retries=0, progress=False)
        with pytest.raises(RuntimeError, match=r"request for item '\d+' failed: .*scripted failure"):
            run_eval(cfg)
    assert not (tmp_path / "r" / "scores.json").exists()


def test_openai_judge_caches_and_names_the_endpoint(monkeypatch, caplog):
    # earlier CliRunner invocations leave handlers on the "srpo" logger bound to closed streams: drop them here
    monkeypatch.setattr(logging.getLogger("srpo"), "handlers", [])
    calls = []

    def judge(prompt):
        calls.append(prompt)
        return f"Judgement: {len(prompt) % 2}"

    with ScriptedServer(judge=judge) as server:
        j = OpenAIJudge(server.url, "judge-y", api_key_env="SRPO_UNSET_KEY_FOR_TEST", max_retries=0)
        assert j("same prompt") == j("same prompt") == "Judgement: 1"
        assert j.calls == 1 and len(server.of("judge")) == 1
        assert server.of("judge")[0]["auth"] == "Bearer EMPTY"  # unset key variable: placeholder key, and a warning
        assert "SRPO_UNSET_KEY_FOR_TEST is not set" in caplog.text
        with pytest.raises(RuntimeError, match=r"judge judge-y at http://127\.0\.0\.1:\d+/v1 failed"):
            j("please FAIL")
        assert j.describe() == {"base_url": server.url, "model": "judge-y", "calls": 1}


def test_eval_score_with_judge_on_mathverse_template(tmp_path, monkeypatch, shared_benchmarks):
    template = shared_benchmarks / "mathverse" / "output_templates" / "output_testmini.json"
    if not template.exists():
        pytest.skip(f"not available: {template}")
    monkeypatch.setenv("SRPO_JUDGE_KEY", "k")

    def judge(prompt: str) -> str:
        if prompt.startswith("Decide whether"):  # step 2: asked only when the extraction is not the answer
            return "Judgement: 0"
        m = re.findall(r"\b(1[34])\b", prompt.split("Response:")[-1])
        return f"Extracted answer: {m[-1]}" if m else "Extracted answer: null"

    with ScriptedServer(judge=judge) as server:
        res = runner.invoke(app, ["eval", "score", "--benchmark", "mathverse", "--outputs", str(template),
                                  "--out", str(tmp_path), "--judge-url", server.url, "--judge-model", "j",
                                  "--judge-key-env", "SRPO_JUDGE_KEY"])
        assert res.exit_code == 0, res.output
        asked = [r["text"] for r in server.of("judge")]
        # step 1 (extraction) for every response, step 2 (judgement) for the one inexact extraction ("13")
        assert len(asked) == 6 and sum(t.startswith("Decide whether") for t in asked) == 1
    assert "mathverse official: 4/5 = 80.00%" in res.output
    saved = json.loads((tmp_path / "output_testmini_scores_official.json").read_text())
    assert saved["scoring"]["judge"]["calls"] == 6 and saved["average"]["correct"] == 4
