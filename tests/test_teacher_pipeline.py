"""`srpo reflect` with policy and teacher on OpenAI-compatible endpoints: stores, resume, filters, summary, CLI."""

from __future__ import annotations

import json
import logging
from urllib.parse import quote

import datasets
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from fake_openai_server import FakeOpenAIServer, reflection_for
from srpo.cli import app
from srpo.config import ReflectConfig, parse_config
from srpo.data import Problem, save_problems
from srpo.format import parse_response
from srpo.prompts import TEACHER_PROMPT_TEMPLATE
from srpo.reflect.build import SettingsChanged, collect_attempts, run_reflect
from srpo.store import JsonlStore

SECRET = "sk-test-NEVER-PRINT-9b2d"


def make_problems(n: int = 12, n_right: int = 4) -> list[Problem]:
    """Problem i is answered right by the scripted policy when i < n_right (it says 3), else wrong (it says 4)."""
    problems = []
    for i in range(n):
        pid = f"q{i:02d}"
        say = 3 if i < n_right else 4
        problems.append(Problem(id=pid, question=f"[id={pid} say={say}] How many circles are there?", answer="3",
                                images=[Image.new("RGB", (40, 40), (i * 20 % 256, 80, 160))],
                                answer_type="integer"))
    return problems


@pytest.fixture
def problems_path(tmp_path):
    return save_problems(make_problems(), tmp_path / "problems.jsonl")


@pytest.fixture
def server():
    with FakeOpenAIServer(latency=0.01) as srv:
        yield srv


def config(problems_path, url, out, **overrides) -> ReflectConfig:
    base = dict(problems=str(problems_path), policy=url, policy_model="policy-7b", teacher=url,
                teacher_model="teacher-72b", out=str(out), concurrency=4, backoff_base=0.01, backoff_max=0.05,
                max_retries=3, malformed_retries=1, right_fraction=None, progress=False,
                teacher_price_input=1.10, teacher_price_output=4.40)
    return ReflectConfig(**{**base, **overrides})


def table(out):
    return datasets.load_from_disk(str(out / "dataset")).data.table


def test_endpoint_policy_and_teacher_build_an_sft_ready_dataset(problems_path, server, tmp_path):
    server.set_faults({"policy:q01": ["429", "ok"], "teacher:q05": ["500", "ok"], "teacher:q06": ["not_json"],
                       "teacher:q07": ["fenced"], "policy:q08": ["400"]})
    out = run_reflect(config(problems_path, server.url, tmp_path / "out"))
    ds = datasets.load_from_disk(str(out / "dataset"))
    assert {"question", "images", "target", "answer", "first_correct", "reflection"} <= set(ds.column_names)
    assert sorted(ds["id"]) == [f"q{i:02d}" for i in range(12) if i not in (6, 8)]
    for row in ds:
        parsed = parse_response(row["target"])
        assert parsed.reflection == reflection_for(row["id"]) == row["reflection"]
        assert "\\boxed{3}" in parsed.final_answer  # final answer verified against the reference
        assert row["first_correct"] == (int(row["id"][1:]) < 4)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kept"] == 10 and summary["kept_right"] == 4 and summary["kept_wrong"] == 6
    assert summary["dropped"] == {"attempt_failed": 1, "teacher_failed": 1}
    teacher = summary["usage"]["teacher"]
    assert teacher["items"] == 11 and teacher["failed"] == 1 and teacher["failed_reasons"] == {"malformed reply": 1}
    assert teacher["prompt_tokens"] == 100 * 12  # 11 replies + the malformed one asked again (a 500 has no usage)
    assert teacher["retries"] == 2
    expected = (teacher["prompt_tokens"] * 1.10 + teacher["completion_tokens"] * 4.40) / 1e6
    assert teacher["estimated_cost_usd"] == pytest.approx(expected)
    assert summary["usage"]["policy"]["failed_reasons"] == {"http 400": 1}
    assert summary["estimated_cost_usd"] == pytest.approx(expected)
    requests = server.requests("policy")
    assert {r["temperature"] for r in requests} == {0.2} and {r["max_completion_tokens"] for r in requests} == {1024}
    assert {r["model"] for r in requests} == {"policy-7b"}
    assert {r["model"] for r in server.requests("teacher")} == {"teacher-72b"}


def test_rerun_resumes_without_calling_the_api_again(problems_path, server, tmp_path):
    server.set_faults({"teacher:q03": ["no_reflection"]})
    cfg = config(problems_path, server.url, tmp_path / "out")
    run_reflect(cfg)
    first = table(tmp_path / "out")
    n_requests = len(server.requests())
    run_reflect(cfg)
    assert len(server.requests()) == n_requests  # nothing requested again, not even the failed item
    assert table(tmp_path / "out").equals(first)
    # --retry-failed asks again for the failed item only; now it succeeds and joins the dataset
    server.set_faults({})
    run_reflect(config(problems_path, server.url, tmp_path / "out", retry_failed=True))
    again = server.requests()[n_requests:]
    assert [(r["kind"], r["id"]) for r in again] == [("teacher", "q03")]
    assert "q03" in datasets.load_from_disk(str(tmp_path / "out" / "dataset"))["id"]


def test_partial_stores_resume_to_the_same_dataset(problems_path, server, tmp_path):
    full = run_reflect(config(problems_path, server.url, tmp_path / "full"))
    # an interrupted run: only some attempts and replies made it to disk, the last line torn mid-write
    part = tmp_path / "part"
    part.mkdir()
    for name, keep in (("attempts.jsonl", 7), ("reflections.jsonl", 3)):
        lines = (full / name).read_text().splitlines(keepends=True)
        (part / name).write_text("".join(lines[:keep]) + lines[keep][: len(lines[keep]) // 2])
    before = len(server.requests())
    run_reflect(config(problems_path, server.url, part))
    assert table(part).equals(table(full))
    new = server.requests()[before:]
    assert len([r for r in new if r["kind"] == "policy"]) == 12 - 7
    assert len({r["id"] for r in new if r["kind"] == "teacher"} & {json.loads(x)["id"] for x in
               (full / "reflections.jsonl").read_text().splitlines()[:3]}) == 0


def test_right_wrong_mix_and_max_examples_are_applied_before_the_teacher(problems_path, server, tmp_path):
    cfg = config(problems_path, server.url, tmp_path / "out", right_fraction=0.5, max_examples=6, seed=3)
    out = run_reflect(cfg)
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["kept_right"], summary["kept_wrong"]) == (3, 3)
    assert summary["attempts_right"] == 4 and summary["attempts_wrong"] == 8
    assert len(server.requests("teacher")) == 6  # the teacher is asked only about the kept attempts
    # the selection is seeded: a fresh run picks the same items
    run_reflect(config(problems_path, server.url, tmp_path / "again", right_fraction=0.5, max_examples=6, seed=3))
    assert table(tmp_path / "again").equals(table(out))


def test_duplicates_and_length_bounds_are_filtered(tmp_path, server):
    problems = make_problems(4, 1)
    twin = Problem(id="q99", question=problems[2].question, answer="3", images=list(problems[2].images),
                   answer_type="integer")
    other_image = Problem(id="q98", question=problems[2].question, answer="3",
                          images=[Image.new("RGB", (40, 40), "black")], answer_type="integer")
    path = save_problems(problems + [twin, other_image], tmp_path / "p.jsonl")
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="no example survived"):
        run_reflect(config(path, server.url, out, max_reflection_chars=len(reflection_for("q00")) - 1))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dropped"]["duplicate"] == 1  # q99 repeats q02 exactly; q98 has another image
    assert summary["dropped"]["reflection_length"] == 5
    # ... so nothing survived; the summary is written anyway
    assert summary["kept"] == 0


def test_store_ignores_and_repairs_a_torn_last_line(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"id": "a", "status": "ok"}\n{"id": "b", "sta')
    store = JsonlStore(path)
    assert set(store.load()) == {"a"}
    store.append({"id": "c", "status": "failed"})
    store.append({"id": "a", "status": "failed"})  # the last record of an id wins
    store.close()
    assert path.read_text().count("\n") == 3
    records = JsonlStore(path).load()
    assert set(records) == {"a", "c"} and records["a"]["status"] == "failed"


def test_a_rerun_with_other_settings_stops_instead_of_mixing_items(problems_path, server, tmp_path):
    out = tmp_path / "out"
    run_reflect(config(problems_path, server.url, out))
    first, n_requests = table(out), len(server.requests())
    template = tmp_path / "teacher.txt"
    template.write_text(TEACHER_PROMPT_TEMPLATE + "\nKeep it short.")
    for change, field in ((dict(teacher_model="teacher-8b"), "teacher_model: 'teacher-72b' -> 'teacher-8b'"),
                          (dict(teacher_prompt=str(template)), "teacher_prompt: 'sha256:"),
                          (dict(attempt_temperature=0.7), "attempt_temperature: 0.2 -> 0.7"),
                          (dict(policy_model="policy-3b"), "policy_model: 'policy-7b' -> 'policy-3b'")):
        with pytest.raises(SettingsChanged, match=field.replace("(", r"\(")) as err:
            run_reflect(config(problems_path, server.url, out, **change))
        assert "Use a new --out" in str(err.value)
    assert len(server.requests()) == n_requests
    # settings that do not change the items (concurrency, retries, prices) resume as before
    run_reflect(config(problems_path, server.url, out, concurrency=2, max_retries=5, teacher_price_input=2.0))
    assert len(server.requests()) == n_requests and table(out).equals(first)
    # a new teacher once its store is deleted: the attempts are kept, the replies requested again
    (out / "reflections.jsonl").unlink()
    run_reflect(config(problems_path, server.url, out, teacher_model="teacher-8b"))
    again = server.requests()[n_requests:]
    assert {r["kind"] for r in again} == {"teacher"} and {r["model"] for r in again} == {"teacher-8b"}
    # the CLI says it in one line and exits 2
    result = CliRunner().invoke(app, ["reflect", "--problems", str(problems_path), "--policy", server.url,
                                      "--policy-model", "policy-7b", "--teacher", server.url, "--teacher-model",
                                      "teacher-72b", "--out", str(out), "--progress", "false"])
    assert result.exit_code == 2 and "teacher_model: 'teacher-8b' -> 'teacher-72b'" in result.output


def test_cli_flag_form_and_yaml_form(problems_path, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SRPO_TEACHER_KEY", SECRET)
    with FakeOpenAIServer(api_key=SECRET) as srv:
        runner = CliRunner()
        args = ["reflect", "--problems", str(problems_path), "--policy", srv.url, "--policy-api-key-env",
                "SRPO_TEACHER_KEY", "--teacher", srv.url, "--teacher-model", "o4-mini", "--teacher-api-key-env",
                "SRPO_TEACHER_KEY", "--out", str(tmp_path / "flags"), "--concurrency", "3",
                "--right-fraction", "null", "--teacher-price-input", "1.1", "--progress", "false"]
        with caplog.at_level(logging.DEBUG):
            result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        assert summary["kept"] == 12 and summary["teacher"].startswith("o4-mini@http://127.0.0.1")
        assert summary["config"]["teacher_model"] == "o4-mini" and summary["config"]["concurrency"] == 3

        yaml_cfg = tmp_path / "reflect.yaml"
        yaml_cfg.write_text(yaml.safe_dump({
            "problems": str(problems_path), "policy": srv.url, "policy_api_key_env": "SRPO_TEACHER_KEY",
            "teacher": srv.url, "teacher_model": "o4-mini", "teacher_api_key_env": "SRPO_TEACHER_KEY",
            "out": str(tmp_path / "yaml"), "right_fraction": None, "progress": False,
        }))
        result2 = runner.invoke(app, ["reflect", "--config", str(yaml_cfg), "--concurrency", "3"])
        assert result2.exit_code == 0, result2.output
        assert table(tmp_path / "yaml").equals(table(tmp_path / "flags"))
        assert all(r["authorized"] for r in srv.requests())
    # the key is sent, but never printed, logged or written
    seen = result.output + result2.output + caplog.text
    for out in (tmp_path / "flags", tmp_path / "yaml"):
        seen += "".join(p.read_text(errors="ignore") for p in out.iterdir() if p.is_file())
    assert SECRET not in seen


def test_cli_with_credentials_in_the_urls_sends_basic_auth_and_writes_them_nowhere(problems_path, tmp_path,
                                                                                    monkeypatch, caplog):
    password = "hunter2:" + SECRET
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAIServer(basic_auth=("bob", password)) as srv:
        url = srv.url.replace("http://", f"http://bob:{quote(password, safe='')}@")
        out = tmp_path / "out"
        with caplog.at_level(logging.DEBUG):
            result = CliRunner().invoke(app, ["reflect", "--problems", str(problems_path), "--policy", url,
                                              "--teacher", url, "--out", str(out), "--right-fraction", "null",
                                              "--progress", "false"])
        assert result.exit_code == 0, result.output
        assert len(srv.requests()) == 24 and all(r["authorized"] and r["auth_scheme"] == "Basic"
                                                 for r in srv.requests())
    summary = json.loads(result.stdout)
    assert summary["kept"] == 12 and summary["config"]["teacher"] == srv.url
    written = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    for secret in (password, quote(password, safe=""), "bob:"):
        assert secret not in result.output + caplog.text and secret.encode() not in written


def test_cli_reports_a_refused_key_and_exits_non_zero(problems_path, tmp_path, monkeypatch):
    monkeypatch.setenv("SRPO_TEACHER_KEY", "wrong-" + SECRET)
    with FakeOpenAIServer(api_key=SECRET) as srv:
        result = CliRunner().invoke(app, ["reflect", "--problems", str(problems_path), "--policy", srv.url,
                                          "--policy-api-key-env", "SRPO_TEACHER_KEY", "--teacher", srv.url,
                                          "--out", str(tmp_path / "o"), "--progress", "false"])
    assert result.exit_code == 2
    assert "401" in result.output and SECRET not in result.output


def test_flags_map_to_config_fields():
    cfg = parse_config(ReflectConfig, ["--problems", "p.jsonl", "--policy", "http://localhost:8000/v1",
                                            "--teacher", "https://api.openai.com/v1", "--teacher-model", "o4-mini",
                                            "--out", "d", "--retry-failed", "--teacher-extra-body",
                                            '{"reasoning_effort": "low"}'])
    assert cfg.policy == "http://localhost:8000/v1" and cfg.teacher == "https://api.openai.com/v1"
    assert cfg.teacher_model == "o4-mini" and cfg.retry_failed is True and cfg.out == "d"
    assert cfg.teacher_extra_body == {"reasoning_effort": "low"}


def test_oracle_teacher_with_an_endpoint_policy(problems_path, server, tmp_path):
    problems = make_problems()
    for p in problems:
        p.solution = "I count three circles in the picture. So the answer is 3."
    path = save_problems(problems, tmp_path / "with_solutions.jsonl")
    out = run_reflect(config(path, server.url, tmp_path / "out", teacher="oracle"))
    assert not server.requests("teacher")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kept"] == 12 and summary["teacher"] == "oracle" and "teacher" not in summary["usage"]


def test_an_endpoint_policy_gets_images_a_local_processor_would_refuse(server, tmp_path):
    problems = make_problems(4, 1)
    problems[2].images = [Image.new("RGB", (600, 2), "white")]  # aspect ratio 300: the server decides, not srpo
    path = save_problems(problems, tmp_path / "p.jsonl")
    out = run_reflect(config(path, server.url, tmp_path / "out"))
    assert sorted(r["id"] for r in server.requests("policy")) == ["q00", "q01", "q02", "q03"]
    assert json.loads((out / "summary.json").read_text())["kept"] == 4


def test_progress_bars_show_rate_and_eta(problems_path, server, tmp_path, capfd):
    run_reflect(config(problems_path, server.url, tmp_path / "out", progress=True))
    err = capfd.readouterr().err
    for desc in ("policy attempts", "teacher reflections"):
        line = [chunk for chunk in err.replace("\r", "\n").splitlines() if desc in chunk][-1]
        assert "12/12" in line and "item/s" in line and "<" in line  # count, rate, elapsed<remaining


def test_local_policy_with_an_endpoint_teacher(tiny_model_dir, server, tmp_path):
    problems = make_problems(4, 1)
    path = save_problems(problems, tmp_path / "p.jsonl")
    out = tmp_path / "out"
    out.mkdir()
    # two attempts from an earlier (interrupted) run; the tiny random model writes the other two (untagged, dropped)
    JsonlStore(out / "attempts.jsonl").append_many(
        {"id": pid, "response": f"<think>I count {n}</think><answer>{n}</answer>"}
        for pid, n in (("q00", 3), ("q01", 5)))
    cfg = config(path, server.url, out, policy=str(tiny_model_dir), attempt_max_new_tokens=4, batch_size=2)
    run_reflect(cfg)
    assert not server.requests("policy")
    assert sorted(r["id"] for r in server.requests("teacher")) == ["q00", "q01"]
    ds = datasets.load_from_disk(str(out / "dataset"))
    assert sorted(ds["id"]) == ["q00", "q01"] and sorted(ds["first_correct"]) == [False, True]


def test_sampled_local_attempts_are_the_same_after_a_crash(tiny_model_dir, tmp_path):
    problems = make_problems(10)
    cfg = ReflectConfig(policy=str(tiny_model_dir), attempt_temperature=1.0, attempt_max_new_tokens=6, batch_size=1,
                        progress=False)  # chunks of 8: problems 0-7 and 8-9
    full = collect_attempts(cfg, problems, tmp_path / "full")
    assert len({r["response"] for r in full.values()}) > 1  # really sampled
    part = tmp_path / "part"
    part.mkdir()
    lines = (tmp_path / "full" / "attempts.jsonl").read_text().splitlines(keepends=True)
    (part / "attempts.jsonl").write_text("".join(lines[:3]) + lines[3][:20])  # killed mid-way through chunk 1
    resumed = collect_attempts(cfg, problems, part)
    assert {k: r["response"] for k, r in resumed.items()} == {k: r["response"] for k, r in full.items()}
