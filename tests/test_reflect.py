"""Stage-1 data builder and the oracle teacher, on real problems and a real (tiny) policy."""

import json

import datasets
from PIL import Image

from srpo.config import ReflectConfig
from srpo.data import Problem, save_problems
from srpo.format import is_five_block, parse_response
from srpo.reflect.build import balance_right_wrong, build_examples, parse_attempt, run_reflect
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
