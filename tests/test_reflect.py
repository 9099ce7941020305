"""Stage-1 data builder and the oracle teacher, on real problems and a real (tiny) policy."""

import json

import datasets
import pytest
from PIL import Image

from srpo.config import ConfigError, ReflectConfig
from srpo.data import Problem, save_problems
from srpo.errors import UserError
from srpo.files import OutputPathError
from srpo.format import is_five_block, parse_response
from srpo.reflect.build import balance_right_wrong, build_examples, check_reflect_config, parse_attempt, run_reflect
from srpo.reflect.teachers import Attempt, OracleTeacher

SOLUTION = "I see 3 red circles and 2 blue squares. Only the circles count. So the answer is 3."


def problem(pid="p1", answer="3", solution=SOLUTION):
    return Problem(id=pid, question="How many circles?", answer=answer, images=[Image.new("RGB", (56, 56), "white")],
                   answer_type="integer", solution=solution)


def attempt_for(p, response):
    return parse_attempt(p, response)


def test_parse_attempt_marks_right_and_wrong_and_drops_malformed():
    p = problem()
    assert attempt_for(p, "<think>3 circles</think><answer>$\\boxed{3}$</answer>").correct
    assert not attempt_for(p, "<think>4 circles</think><answer>4</answer>").correct
    assert attempt_for(p, "just 3") is None
    assert attempt_for(p, "<think>3 circles</think>") is None


def test_oracle_confirms_right_attempt_without_stating_the_answer_sentence():
    p = problem()
    reflection = OracleTeacher().reflect(p, attempt_for(p, "<think>I see 3 circles</think><answer>3</answer>"))
    assert "right result" in reflection.text
    assert "So the answer is" not in reflection.text
    assert reflection.revised_reasoning == SOLUTION


def test_oracle_locates_the_mistake_in_a_wrong_attempt():
    p = problem()
    reflection = OracleTeacher().reflect(p, attempt_for(p, "<think>I see 4 red circles</think><answer>4</answer>"))
    assert "I used 4" in reflection.text
    assert "does not hold up" in reflection.text


def test_build_examples_filters_and_verifies_the_final_answer():
    problems = [problem(f"p{i}") for i in range(6)]
    responses = {
        "p0": "<think>I see 3 circles</think><answer>3</answer>",
        "p1": "<think>I see 4 circles</think><answer>4</answer>",
        "p2": "no tags at all",
        "p3": "<think></think><answer>3</answer>",
        "p4": "<think>I see 5 circles</think><answer>5</answer>",
        "p5": "<think>I see 2 circles</think><answer>2</answer>",
    }
    cfg = ReflectConfig(right_fraction=None, target_shape="five_block")
    rows, dropped = build_examples(cfg, problems, responses, OracleTeacher())
    assert dropped["no_think_or_answer"] == 1 and dropped["reasoning_length"] == 1
    assert len(rows) == 4
    for p, attempt, reflection, target in rows:
        parsed = parse_response(target)
        assert is_five_block(target)
        assert parsed.first_answer == attempt.answer
        assert parsed.reflection == reflection.text
        assert "\\boxed{3}" in parsed.final_answer


def test_sft_shape_target_has_no_second_think():
    p = problem()
    rows, _ = build_examples(ReflectConfig(right_fraction=None), [p],
                             {"p1": "<think>I see 4</think><answer>4</answer>"}, OracleTeacher())
    target = rows[0][3]
    assert target.count("<think>") == 1 and target.count("<answer>") == 2 and "<reflection>" in target


def test_right_wrong_mix_follows_the_requested_fraction():
    right = [(problem(f"r{i}"), Attempt(f"r{i}", "", "x", "3", True)) for i in range(50)]
    wrong = [(problem(f"w{i}"), Attempt(f"w{i}", "", "x", "4", False)) for i in range(50)]
    from collections import Counter

    dropped = Counter()
    kept = balance_right_wrong(right + wrong, 0.3, None, 0, dropped)
    n_right = sum(a.correct for _, a in kept)
    assert (n_right, len(kept) - n_right) == (21, 50)
    assert dropped["mix_right"] == 29


def test_run_reflect_writes_an_sft_ready_dataset_and_resumes(tmp_path):
    from srpo.models import build_tiny_model

    build_tiny_model(tmp_path / "policy")
    problems = [problem(f"p{i}") for i in range(4)]
    save_problems(problems, tmp_path / "problems.jsonl")
    cfg = ReflectConfig(problems=str(tmp_path / "problems.jsonl"), policy=str(tmp_path / "policy"),
                        out=str(tmp_path / "out"), attempt_max_new_tokens=8, batch_size=2, right_fraction=None)
    # A random tiny model writes no tags: seed attempts for two problems, as a previous (killed) run would have.
    (tmp_path / "out").mkdir()
    with (tmp_path / "out" / "attempts.jsonl").open("w") as f:
        for pid, ans in (("p0", "3"), ("p1", "4")):
            f.write(json.dumps({"id": pid, "response": f"<think>I see {ans}</think><answer>{ans}</answer>"}) + "\n")
    run_reflect(cfg)
    lines = (tmp_path / "out" / "attempts.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["p0", "p1", "p2", "p3"]  # only p2, p3 generated
    ds = datasets.load_from_disk(str(tmp_path / "out" / "dataset"))
    assert {"question", "images", "target", "answer", "first_correct"} <= set(ds.column_names)
    assert sorted(ds["id"]) == ["p0", "p1"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["kept"] == 2 and summary["kept_right"] == 1 and summary["dropped"]["no_think_or_answer"] == 2


# ---- settings and data that cannot work stop the run before any model, file or request ----------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"right_fraction": 2.0}, r"right_fraction = 2\.0: must be between 0 and 1"),
        ({"right_fraction": float("nan")}, r"right_fraction = nan: must be between 0 and 1"),
        ({"concurrency": 0}, r"concurrency = 0: must be at least 1"),
        ({"batch_size": 0}, r"batch_size = 0: must be at least 1"),
        ({"max_retries": -1}, r"max_retries = -1: must be 0 or more"),
        ({"malformed_retries": -2}, r"malformed_retries = -2: must be 0 or more"),
        ({"limit": -5}, r"limit = -5: must be at least 1"),
        ({"max_examples": 0}, r"max_examples = 0: must be at least 1, or null for no cap"),
        ({"attempt_temperature": -0.1}, r"attempt_temperature = -0\.1: must be 0"),
        ({"teacher_temperature": -1.0}, r"teacher_temperature = -1\.0: must be 0 or more, or null"),
        ({"attempt_max_new_tokens": 0}, r"attempt_max_new_tokens = 0: must be at least 1"),
        ({"min_reasoning_chars": 50, "max_reasoning_chars": 10}, r"min_reasoning_chars = 50: must be from 0 to max_reasoning_chars = 10"),
        ({"min_reflection_chars": 9, "max_reflection_chars": 3}, r"min_reflection_chars = 9: .*raise max_reflection_chars"),
        ({"backoff_base": 5.0, "backoff_max": 1.0}, r"backoff_max = 1\.0: must be at least backoff_base = 5\.0"),
        ({"request_timeout": 0.0}, r"request_timeout = 0\.0: must be a positive number of seconds"),
        ({"teacher_price_output": -1.0}, r"teacher_price_output = -1\.0: must be 0 or more"),
        ({"target_shape": "full"}, r"target_shape = 'full': must be one of \('sft', 'five_block'\)"),
        ({"system_prompt": "chatty"}, r"system_prompt = 'chatty': must be one of"),
        ({"teacher": "gpt-4o"}, r"teacher = 'gpt-4o': use 'oracle' or the http\(s\) URL"),
        ({"teacher": "ftp://me:hunter2@host/v1"}, r"teacher = 'ftp://host/v1'"),
        ({"problems": ""}, r"problems: no problem file given"),
        ({"policy": ""}, r"policy: no policy given"),
        ({"teacher": "http://127.0.0.1:8/v1", "teacher_extra_body": {"messages": []}}, r"teacher_extra_body: \['messages'\] are set by srpo"),
        ({"policy": "http://127.0.0.1:70000/v1"}, r"policy: http://127\.0\.0\.1:70000/v1: the port is not a number"),
    ],
)
def test_settings_that_cannot_work_name_the_key(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message) as info:  # the config's own checks, or the stage's
        check_reflect_config(ReflectConfig(**{"problems": "p.jsonl", "policy": "model", "out": str(tmp_path / "out"),
                                              **overrides}))
    assert "hunter2" not in str(info.value)


def test_an_out_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(OutputPathError, match="is an existing file"):
        run_reflect(ReflectConfig(problems="p.jsonl", policy="model", out=str(tmp_path / "taken")))


def _run_until_refused(tmp_path, tiny_model_dir, problems, **overrides):
    path = save_problems(problems, tmp_path / "problems.jsonl")
    cfg = ReflectConfig(problems=str(path), policy=str(tiny_model_dir), out=str(tmp_path / "out"),
                        attempt_max_new_tokens=4, progress=False, **overrides)
    with pytest.raises(UserError) as info:
        run_reflect(cfg)
    assert not (tmp_path / "out").exists()  # refused before any attempt was generated or stored
    return str(info.value)


def test_an_unknown_teacher_is_refused_before_any_attempt(tmp_path, tiny_model_dir):
    message = _run_until_refused(tmp_path, tiny_model_dir, [problem("p0")], teacher="o4-mini")
    assert "teacher = 'o4-mini': use 'oracle' or the http(s) URL" in message


def test_the_oracle_teacher_without_solutions_is_refused_before_any_attempt(tmp_path, tiny_model_dir):
    problems = [problem(f"p{i}", solution=None if i % 2 else SOLUTION) for i in range(5)]
    message = _run_until_refused(tmp_path, tiny_model_dir, problems)
    assert "2 problem(s) have no 'solution' (e.g. 'p1', 'p3')" in message


def test_an_image_the_local_policy_cannot_take_is_named_before_any_attempt(tmp_path, tiny_model_dir):
    problems = [problem("p0"), problem("banner"), problem("p2")]
    problems[1].images = [Image.new("RGB", (600, 2), "white")]
    message = _run_until_refused(tmp_path, tiny_model_dir, problems)
    assert message.startswith(f"{tmp_path / 'problems.jsonl'}: images: the model's image processor refuses the images "
                              "of 1 item(s): 'banner' (image 0, 600x2 px: absolute aspect ratio must be smaller than 200")


def test_an_empty_problem_file_is_refused(tmp_path, tiny_model_dir):
    assert "holds no usable problems" in _run_until_refused(tmp_path, tiny_model_dir, [])
