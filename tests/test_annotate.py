"""`srpo annotate` against the loopback server: facts in the output rows, resume without asking twice, faults
retried or recorded, `--retry-failed`, the CoT source with its answer check, bad input refused before any request,
and `kill -9` mid-run then resume (as tests/test_teacher_kill.py does for `srpo reflect`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from fake_openai_server import FakeOpenAIServer, facts_for
from srpo.cli import app
from srpo.config import AnnotateConfig, ConfigError
from srpo.data import Problem, load_problems, save_problems
from srpo.endpoint import MalformedReply
from srpo.errors import UserError
from srpo.reflect.annotate import parse_facts, run_annotate
from srpo.store import JsonlStore


def write_problems(path: Path, n: int, *, solution: bool = True) -> Path:
    problems = [Problem(id=f"a{i:02d}", question=f"[id=a{i:02d} say={3 if i % 3 else 4}] Count the dots.",
                        answer="3", images=[Image.new("RGB", (16, 16), (i * 4, 0, 0))], answer_type="integer",
                        solution=f"I see 3 red dots in picture {i}. So the answer is 3." if solution else None)
                for i in range(n)]
    return save_problems(problems, path)


def config(problems: Path, url: str, out: Path, **kwargs) -> AnnotateConfig:
    return AnnotateConfig(problems=str(problems), url=url, model="extractor", api_key_env="", out=str(out),
                          backoff_base=0.0, backoff_max=0.01, malformed_retries=1, progress=False, fsync=False,
                          price_input=2.0, price_output=10.0, **kwargs)


def test_facts_land_in_the_output_rows_and_a_rerun_requests_nothing(tmp_path):
    problems = write_problems(tmp_path / "in.jsonl", 6)
    with FakeOpenAIServer() as server:
        out = run_annotate(config(problems, server.url, tmp_path / "out"))
        assert len(server.requests("annotate")) == 6 and not server.requests("policy")
        annotated = load_problems(out / "problems.jsonl")
        assert [p.visual_facts for p in annotated] == [facts_for(f"a{i:02d}") for i in range(6)]
        assert [p.solution for p in annotated] == [p.solution for p in load_problems(problems)]
        summary = json.loads((out / "summary.json").read_text())
        assert summary["annotated"] == 6 and summary["facts_per_problem"] == 2.0
        usage = summary["usage"]["annotate"]
        assert (usage["items"], usage["ok"], usage["failed"], usage["prompt_tokens"], usage["completion_tokens"]) \
            == (6, 6, 0, 600, 120)
        assert summary["estimated_cost_usd"] == pytest.approx(600 / 1e6 * 2.0 + 120 / 1e6 * 10.0)
        run_annotate(config(problems, server.url, tmp_path / "out"))
        assert len(server.requests("annotate")) == 6  # all stored: nothing asked again
        assert load_problems(out / "problems.jsonl")[0].visual_facts == facts_for("a00")


def test_faults_are_retried_or_recorded_and_retry_failed_asks_only_the_failed(tmp_path):
    problems = write_problems(tmp_path / "in.jsonl", 6)
    faults = {"annotate:a01": ["429", "ok"], "annotate:a02": ["500", "503", "ok"], "annotate:a03": ["drop", "ok"],
              "annotate:a04": ["not_json"], "annotate:a05": ["numbered"]}
    with FakeOpenAIServer(faults=faults) as server:
        out = run_annotate(config(problems, server.url, tmp_path / "out"))
        facts = {p.id: p.visual_facts for p in load_problems(out / "problems.jsonl")}
        assert facts == {**{f"a{i:02d}": facts_for(f"a{i:02d}") for i in (0, 1, 2, 3, 5)}, "a04": None}
        record = JsonlStore(out / "facts.jsonl").load()["a04"]
        assert record["status"] == "failed" and record["reason"].startswith("malformed reply: no JSON list")
        assert [len(server.requests("annotate")), record["retries"]] == [6 + 1 + 2 + 1 + 1, 1]
        summary = json.loads((out / "summary.json").read_text())
        assert summary["usage"]["annotate"]["failed_reasons"] == {"malformed reply": 1}
        assert summary["without_facts"] == {"facts_failed": 1}

        before = len(server.requests("annotate"))
        run_annotate(config(problems, server.url, tmp_path / "out"))  # failed stays failed without the flag
        assert len(server.requests("annotate")) == before
        server.set_faults({})
        run_annotate(config(problems, server.url, tmp_path / "out", retry_failed=True))
        assert [r["id"] for r in server.requests("annotate")[before:]] == ["a04"]
        assert load_problems(out / "problems.jsonl")[4].visual_facts == facts_for("a04")


def test_a_changed_solution_is_asked_again_and_a_changed_setting_is_refused(tmp_path):
    problems = write_problems(tmp_path / "in.jsonl", 3)
    with FakeOpenAIServer() as server:
        run_annotate(config(problems, server.url, tmp_path / "out"))
        edited = load_problems(problems)
        edited[1].solution = "I see 3 blue dots. So the answer is 3."
        save_problems(edited, problems)
        run_annotate(config(problems, server.url, tmp_path / "out"))
        assert [r["id"] for r in server.requests("annotate")] == ["a00", "a01", "a02", "a01"]
        with pytest.raises(UserError, match=r"facts.jsonl holds items made with other settings \(model: "
                                             r"'extractor' -> 'other'\)"):
            run_annotate(replace_model(config(problems, server.url, tmp_path / "out"), "other"))
        assert len(server.requests()) == 4


def replace_model(cfg: AnnotateConfig, model: str) -> AnnotateConfig:
    cfg.model = model
    return cfg


def test_cot_source_writes_a_cot_then_extracts_facts_only_from_verified_ones(tmp_path):
    problems = write_problems(tmp_path / "in.jsonl", 6, solution=False)  # say=4 (a00, a03) is a wrong CoT
    with FakeOpenAIServer(keep_text=True) as server:
        out = run_annotate(config(problems, server.url, tmp_path / "out", source="cot", cot_model="writer",
                                  cot_price_input=1.0))
        cots = server.requests("policy")
        assert len(cots) == 6 and {r["model"] for r in cots} == {"writer"} and all(r["images"] == 1 for r in cots)
        assert "Reference" not in cots[0]["text"] and "answer is 3" not in cots[0]["text"]  # never sees the answer
        asked = server.requests("annotate")
        assert sorted(r["id"] for r in asked) == ["a01", "a02", "a04", "a05"]
        assert "<think>I count 3 for a01.</think>" in next(r["text"] for r in asked if r["id"] == "a01")
        facts = {p.id: p.visual_facts for p in load_problems(out / "problems.jsonl")}
        assert facts["a00"] is None and facts["a03"] is None and facts["a01"] == facts_for("a01")
        summary = json.loads((out / "summary.json").read_text())
        assert summary["without_facts"] == {"cot_unverified": 2}
        assert summary["usage"]["cot"]["prompt_tokens"] == 600 and summary["usage"]["annotate"]["items"] == 4
        assert summary["estimated_cost_usd"] == pytest.approx(600 / 1e6 + 400 / 1e6 * 2.0 + 80 / 1e6 * 10.0)
        run_annotate(config(problems, server.url, tmp_path / "out", source="cot", cot_model="writer",
                            verify_cot=False))
        assert sorted(r["id"] for r in server.requests("annotate")[4:]) == ["a00", "a03"]
        assert len(server.requests("policy")) == 6


@pytest.mark.parametrize("change, message", [
    ({"url": "localhost:8000"}, "url = 'localhost:8000': use the http(s) URL"),
    ({"url": ""}, "url: no endpoint given"),
    ({"api_key_env": "sk-not-a-name"}, "--api_key_env must name an environment variable"),
    ({"extra_body": {"model": "x"}}, "extra_body: ['model'] are set by srpo"),
    ({"prompt_template": "missing.txt"}, "prompt_template: template file missing.txt not found"),
])
def test_bad_settings_fail_in_one_line_before_any_request(tmp_path, change, message):
    problems = write_problems(tmp_path / "in.jsonl", 2)
    with FakeOpenAIServer() as server:
        cfg = config(problems, server.url, tmp_path / "out")
        for key, value in change.items():
            setattr(cfg, key, value)
        with pytest.raises(UserError) as info:
            run_annotate(cfg)
        assert message in str(info.value) and "\n" not in str(info.value)
        assert not server.requests()


def test_bad_templates_and_problems_without_solutions_are_refused_before_any_request(tmp_path):
    with FakeOpenAIServer() as server:
        unsolved = write_problems(tmp_path / "unsolved.jsonl", 3, solution=False)
        with pytest.raises(UserError, match="3 problem.s. have no 'solution' .e.g. 'a00', 'a01', 'a02'.; add "
                                            "solutions, or use --source cot"):
            run_annotate(config(unsolved, server.url, tmp_path / "out"))
        problems = write_problems(tmp_path / "in.jsonl", 2)
        for text, why in (("Facts of {question}", "lacks {solution}"), ("{solution} {reasoning}", "unknown placeholder(s) ['reasoning']"),
                          ("{solution} {", "not a valid template")):
            (tmp_path / "t.txt").write_text(text)
            with pytest.raises(UserError, match=why.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
                run_annotate(config(problems, server.url, tmp_path / "out", prompt_template=str(tmp_path / "t.txt")))
        assert not server.requests()


def test_the_cli_reads_every_key_and_refuses_an_unknown_one_in_one_line(tmp_path):
    problems = write_problems(tmp_path / "in.jsonl", 2)
    with FakeOpenAIServer() as server:
        runner = CliRunner()
        result = runner.invoke(app, ["annotate", "--problems", str(problems), "--url", server.url, "--api_key_env", "",
                                     "--out", str(tmp_path / "out"), "--progress", "false"])
        assert result.exit_code == 0, result.output
        assert '"annotated": 2' in result.output
        bad = runner.invoke(app, ["annotate", "--problems", str(problems), "--url", server.url, "--teacher", "x"])
        assert bad.exit_code == 2 and "teacher" in bad.output and len(bad.output.strip().splitlines()) == 1
        assert len(server.requests("annotate")) == 2


@pytest.mark.parametrize("content, facts", [
    ('["GE = 10", "JKLM is a parallelogram"]', ["GE = 10", "JKLM is a parallelogram"]),
    ('Here:\n```json\n["a", "b"]\n```', ["a", "b"]),
    ('<think>[1, 2] hmm</think>{"facts": ["m∠Q = (2x+5)°"]}', ["m∠Q = (2x+5)°"]),
    ('The facts are ["x = 1", "x = 1", "  y  =  2 "] as asked.', ["x = 1", "y = 2"]),
    ("1. AB = 5\n2) CD ⊥ EF\n- the circle is red", ["AB = 5", "CD ⊥ EF", "the circle is red"]),
    ("[]", []),
    ("[10, 2.5]", ["10", "2.5"]),
])
def test_parse_facts_reads_json_lists_and_numbered_lines(content, facts):
    assert parse_facts(content) == facts


@pytest.mark.parametrize("content, reason", [
    ("", "empty reply"), ("<think>x</think>", "empty reply"), ("The figure is nice.", "no JSON list"),
    ('[{"fact": "a"}]', "facts are not strings"), ("[true]", "facts are not strings"),
])
def test_parse_facts_rejects_what_it_cannot_use(content, reason):
    with pytest.raises(MalformedReply, match=reason):
        parse_facts(content)


def test_config_values_are_checked():
    with pytest.raises(ConfigError, match="source = 'teacher': must be one of"):
        AnnotateConfig(source="teacher")
    with pytest.raises(ConfigError, match="concurrency = 0"):
        AnnotateConfig(concurrency=0)


# ---- kill -9 mid-run, then resume ------------------------------------------------------------------------------

SECRET = "sk-annotate-kill-SECRET-31"
N = 60
CONCURRENCY = 4
KILL_FAULTS = {"annotate:a07": ["429", "ok"], "annotate:a19": ["drop", "ok"], "annotate:a25": ["not_json"],
               "annotate:a33": ["500", "ok"]}


def start(problems: Path, url: str, out: Path, log: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "srpo.cli", "annotate", "--problems", str(problems), "--url", url, "--model",
            "extractor", "--api_key_env", "ANNOTATE_KILL_KEY", "--out", str(out), "--concurrency", str(CONCURRENCY),
            "--backoff_base", "0.01", "--backoff_max", "0.05", "--malformed_retries", "1"]
    return subprocess.Popen(args, stdout=log.open("a"), stderr=subprocess.STDOUT,
                            env={**os.environ, "ANNOTATE_KILL_KEY": SECRET})


def test_sigkill_mid_run_then_resume_loses_nothing_and_asks_nothing_twice(tmp_path):
    problems = write_problems(tmp_path / "in.jsonl", N)
    with FakeOpenAIServer(latency=0.05, faults=KILL_FAULTS, api_key=SECRET) as server:
        full, log = tmp_path / "full", tmp_path / "full.log"
        assert start(problems, server.url, full, log).wait(120) == 0, log.read_text()[-3000:]
        full_requests = server.requests()
    with FakeOpenAIServer(latency=0.05, faults=KILL_FAULTS, api_key=SECRET) as server:
        part, log = tmp_path / "part", tmp_path / "part.log"
        proc = start(problems, server.url, part, log)
        store = part / "facts.jsonl"
        deadline = time.monotonic() + 60
        while not store.exists() or store.read_bytes().count(b"\n") < 15:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
        killed_at = time.time()
        done = set(JsonlStore(store).load())
        assert 15 <= len(done) < N
        assert start(problems, server.url, part, log).wait(120) == 0, log.read_text()[-3000:]
        part_requests = server.requests()

    # nothing lost: the same rows, facts and failures as an uninterrupted run
    assert (part / "problems.jsonl").read_text() == (full / "problems.jsonl").read_text()
    summaries = [json.loads((d / "summary.json").read_text()) for d in (full, part)]
    assert summaries[0]["annotated"] == summaries[1]["annotated"] == N - 1
    assert summaries[1]["without_facts"] == {"facts_failed": 1}
    # nothing durable at the kill was asked again; at most the requests in flight were made twice
    assert not [r for r in part_requests if r["id"] in done and r["t"] > killed_at]
    assert 0 <= len(part_requests) - len(full_requests) <= CONCURRENCY
    assert all(r["authorized"] for r in part_requests)
    for d in (full, part):
        for file in d.rglob("*"):
            if file.is_file():
                assert SECRET.encode() not in file.read_bytes(), file
