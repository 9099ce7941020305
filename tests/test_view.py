"""The reflection explorer (`srpo view`, docs/view.md): pages of real run folders (`srpo eval` through its driver,
`srpo rl` through TRL) rendered in a headless Chromium, filtered, counted, and checked for inertness of the data."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from typer.testing import CliRunner

from browser import Browser, need_chromium
from srpo.cli import app
from srpo.config import SRPOGRPOConfig
from srpo.data import generate_problems, save_problems
from srpo.eval.driver import EvalConfig, run_eval
from srpo.eval.paired import paired_summary
from srpo.eval.report import load_verdicts
from srpo.eval.view import response_view, script_json, write_view
from srpo.format import render_response
from srpo.train.rl import run_rl

runner = CliRunner()
PAYLOAD = '</script><script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
# what each item's response does: first answer, final answer (r right, w wrong); "single": one round, no reflection
RUN_A = ["wr", "wr", "rr", "rr", "rw", "ww", "single", "xss"]
RUN_B = ["rr", "wr", "rr", "wr", "rr", "wr", "rr", "wr"]  # all right in the end


def _wrong(problem) -> str:
    if problem.choices:
        return next(chr(65 + i) for i in range(len(problem.choices)) if chr(65 + i) != problem.answer)
    return "987654"


def _response(problem, plan: str) -> str:
    pick = {"r": problem.answer, "w": _wrong(problem)}
    if plan == "single":
        return f"<think>I look once.</think><answer>{problem.answer}</answer>"
    if plan == "xss":
        return render_response(f"Counting {PAYLOAD}", _wrong(problem), f"Check again {PAYLOAD}", "Recount.",
                               problem.answer)
    return render_response("First look.", pick[plan[0]], "Let me check the figure again.", "Second look.",
                           pick[plan[1]])


@pytest.fixture(scope="module")
def problems(tmp_path_factory):
    problems = generate_problems(8, seed=5, difficulty=1, image_size=84)
    problems[7].question = "How many shapes? " + PAYLOAD
    return problems, save_problems(problems, tmp_path_factory.mktemp("view_problems") / "problems.jsonl")


def _eval_run(folder, problems, plans):
    """An `srpo eval` run folder through the real driver and scorer; the replies are saved as an endpoint's would
    be, so nothing is generated."""
    problems, path = problems
    folder.mkdir(parents=True)
    (folder / "responses.jsonl").write_text("".join(
        json.dumps({"id": p.id, "response": _response(p, plan), "tokens": None}) + "\n"
        for p, plan in zip(problems, plans)))
    run_eval(EvalConfig(model="http://127.0.0.1:9/v1", benchmark=str(path), out=str(folder), progress=False))
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory, problems):
    root = tmp_path_factory.mktemp("view_runs")
    return _eval_run(root / "a", problems, RUN_A), _eval_run(root / "b", problems, RUN_B)


@pytest.fixture(scope="module")
def browser():
    with Browser(need_chromium()) as b:
        yield b


def _select(browser, element_id: str, value: str) -> None:
    browser.evaluate(f"(() => {{ const s = document.getElementById({json.dumps(element_id)}); s.value = "
                     f"{json.dumps(value)}; s.dispatchEvent(new Event('change')); }})()")


def _text(browser, element_id: str) -> str:
    return browser.evaluate(f"document.getElementById({json.dumps(element_id)}).textContent")


def test_blocks_and_malformed_reasons():
    five = render_response("a", "1", "r", "b", "2")
    assert response_view(five) == {"blocks": [["think", "a"], ["answer", "1"], ["reflection", "r"], ["think", "b"],
                                              ["answer", "2"]]}
    single = response_view("<think>a</think><answer>1</answer>")
    assert single["raw"] == "<think>a</think><answer>1</answer>"
    assert single["malformed"].startswith("1 <think>, 1 <answer> and 0 <reflection> closed blocks")
    assert response_view(five + " more")["malformed"] == ("blocks out of order, empty, nested, or text between or "
                                                          "after them")
    assert response_view("")["malformed"] == "empty response"


def test_script_json_cannot_end_its_script_element():
    text = script_json({"a": "</script><!-- \u2028 & <b>"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"a": "</script><!-- \u2028 & <b>"}


def test_eval_page_in_the_browser(runs, browser, tmp_path):
    run_a, _ = runs
    page = run_a / "view.html"
    assert page.is_file(), "srpo eval writes the page next to its results"
    assert "[view.html](view.html)" in (run_a / "report.md").read_text()
    items = [json.loads(line) for line in (run_a / "items.jsonl").read_text().splitlines()]
    expected = Counter(it["transition"] for it in items)
    assert expected == {"wrong_to_right": 3, "right_to_right": 2, "right_to_wrong": 1, "wrong_to_wrong": 1, None: 1}

    browser.open(page.as_uri())
    assert browser.errors == []
    assert (_text(browser, "count"), _text(browser, "total")) == ("8", "8")
    assert browser.evaluate("document.querySelectorAll('#list .item').length") == 8
    _select(browser, "filter-transition", "wrong_to_right")
    assert _text(browser, "count") == "3"
    assert browser.evaluate("document.querySelectorAll('#list .item').length") == 3
    assert browser.evaluate("document.querySelector('#count-wrong_to_right').dataset.count") == "3"
    _select(browser, "filter-transition", "")
    _select(browser, "filter-correct", "malformed")
    assert _text(browser, "count") == "1"
    assert "not five-block: 1 <think>, 1 <answer>" in _text(browser, "list")
    _select(browser, "filter-correct", "")
    browser.evaluate("(() => { const t = document.getElementById('filter-text'); t.value = 'onerror'; "
                     "t.dispatchEvent(new Event('input')); })()")
    assert _text(browser, "count") == "1"
    # the payload is on the page as text, in the question and in three blocks, and none of it ran
    shown = _text(browser, "list")
    assert shown.count("window.__pwned = 2") == 3 and "How many shapes? </script><script>" in shown
    assert browser.evaluate("document.querySelectorAll('#list script, #list img[onerror]').length") == 0
    assert browser.evaluate("typeof window.__pwned") == "undefined"
    assert browser.evaluate("document.querySelectorAll('#list .block').length") == 5
    assert browser.evaluate("document.querySelector('#list .images img').src.startsWith('data:image/jpeg')")
    shot = browser.screenshot(tmp_path / "view_eval.png")
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 10_000
    assert browser.errors == []


def test_two_run_page_shows_paired_statistics(runs, browser, tmp_path):
    run_a, run_b = runs
    out = tmp_path / "compare.html"
    res = runner.invoke(app, ["view", str(run_a), str(run_b), "--out", str(out)])
    assert res.exit_code == 0, res.output
    summary = paired_summary(load_verdicts(run_a), load_verdicts(run_b))
    assert (summary["only_a"], summary["only_b"], summary["both_right"], summary["both_wrong"]) == (0, 2, 6, 0)

    browser.open(out.as_uri())
    assert browser.errors == []
    for element, key in (("paired-only-a", "only_a"), ("paired-only-b", "only_b"), ("paired-n", "n_common"),
                         ("paired-both-right", "both_right"), ("paired-both-wrong", "both_wrong")):
        assert _text(browser, element) == str(summary[key])
    p = browser.evaluate("document.getElementById('paired-p').dataset.value")
    assert float(p) == summary["mcnemar_p"] == 0.5  # 2 P[Bin(2, 1/2) <= 0]
    assert _text(browser, "paired-p") == "0.500"
    _select(browser, "filter-pair", "only_b")
    assert _text(browser, "count") == "2"
    assert browser.evaluate("document.querySelectorAll('#list .item .run').length") == 4  # side by side
    _select(browser, "filter-pair", "only_a")
    assert _text(browser, "count") == "0"
    _select(browser, "filter-pair", "both_right")
    _select(browser, "filter-run", "1")
    _select(browser, "filter-transition", "wrong_to_right")
    assert _text(browser, "count") == "3"  # B's w->r among the items both runs got right
    assert browser.evaluate("typeof window.__pwned") == "undefined"
    print(f"screenshot: {browser.screenshot(tmp_path / 'view_compare.png')}")


def test_view_refuses_bad_input(runs, tmp_path, problems):
    res = runner.invoke(app, ["view", str(tmp_path)])
    assert res.exit_code == 2 and "is not a run folder" in res.output and len(res.output.strip().splitlines()) == 1
    other = generate_problems(2, seed=9, difficulty=1, image_size=84)
    for p in other:
        p.id = "other-" + p.id
    path = save_problems(other, tmp_path / "other" / "problems.jsonl")
    lone = _eval_run(tmp_path / "lone", (other, path), ["rr", "ww"])
    res = runner.invoke(app, ["view", str(runs[0]), str(lone)])
    assert res.exit_code == 2 and "no item id in common" in res.output


def test_training_page_with_step_slider(tiny_model_dir, problems_file, tmp_path, browser):
    cfg = SRPOGRPOConfig(model_name_or_path=str(tiny_model_dir), dataset=str(problems_file),
                         output_dir=str(tmp_path / "rl"), num_generations=4, prompts_per_generation=2,
                         optimizer_batch_size=8, per_device_train_batch_size=8, max_completion_length=12, max_steps=2,
                         learning_rate=1e-5, report_to=[], save_steps=2, logging_steps=1, max_prompt_length=512,
                         log_completions=True, num_completions_to_print=1)
    run_rl(cfg)
    page = write_view([tmp_path / "rl"])
    browser.open(page.as_uri())
    assert browser.errors == []
    assert _text(browser, "step-label") == "2" and _text(browser, "count") == "8"
    assert browser.evaluate("document.querySelectorAll('.curves img').length") == 2
    terms = browser.evaluate("document.querySelector('#list .rewards').textContent")
    assert terms.startswith("rewards: format ") and "reflection" in terms and "advantage" in terms
    browser.evaluate("(() => { const s = document.getElementById('step-slider'); s.value = '0'; "
                     "s.dispatchEvent(new Event('input')); })()")
    assert _text(browser, "step-label") == "1" and _text(browser, "count") == "8"
    data = json.loads(browser.evaluate("document.getElementById('data').textContent"))
    assert {it["gold"] for it in data["items"]} <= {json.loads(line)["answer"]
                                                     for line in problems_file.read_text().splitlines()}
    print(f"screenshot: {browser.screenshot(tmp_path / 'view_train.png')}")
