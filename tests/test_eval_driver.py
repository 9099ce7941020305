"""End to end: the tiny offline model evaluated on MathVision testmini with its real images (all 304 items), through
`srpo eval`; resume; `srpo eval score` on the run's own output file; `srpo eval compare`; a problem-schema file."""

from __future__ import annotations

import json
import shutil
import time

import pytest
import torch
from typer.testing import CliRunner

from srpo.cli import app
from srpo.data import load_problems
from srpo.eval.benchmarks import load_benchmark, mathvision, rescore
from srpo.eval.benchmarks.common import compat_extract
from srpo.eval.driver import EvalConfig, final_view, first_view, run_eval
from srpo.eval.report import markdown_table, reflection_table
from srpo.format import parse_response, render_response
from srpo.rewards import score_response


runner = CliRunner()
RUN_FILES = ("run.json", "responses.jsonl", "items.jsonl", "outputs_mathvision.jsonl", "scores.json", "metrics.json",
             "report.md", "plots/level.png", "plots/subject.png", "plots/subject_level.png")
ITEM_KEYS = {"id", "gold", "response", "extraction", "prediction", "correct", "first_answer", "final_answer",
             "first_correct", "final_correct", "reflected", "transition", "five_block", "response_tokens",
             "reflection_tokens", "unparsed", "method"}


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread: the 2-core machine is shared, and two threads under contention are ~10x slower here."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _eval(*args: str):
    extra = [] if args[0] in ("score", "compare") else ["--no-progress"]
    res = runner.invoke(app, ["eval", *args, *extra])
    assert res.exit_code == 0, res.output + repr(res.exception)
    return res


@pytest.fixture(scope="module")
def mathvision_run(tiny_model_dir, tmp_path_factory, one_thread, shared_benchmarks):
    if not (shared_benchmarks / "mathvision" / "images").exists():
        pytest.skip(f"MathVision testmini images not available under {shared_benchmarks}")
    out = tmp_path_factory.mktemp("eval") / "tiny_mathvision"
    t0 = time.time()
    _eval("--model", str(tiny_model_dir), "--benchmark", "mathvision", "--split", "testmini", "--out", str(out),
          "--data", str(shared_benchmarks / "mathvision"), "--max-new-tokens", "16", "--batch-size", "16")
    return out, time.time() - t0


@pytest.mark.slow
def test_e2e_tiny_model_on_mathvision_testmini(mathvision_run, benchmarks_dir):
    out, seconds = mathvision_run
    for name in RUN_FILES:
        assert (out / name).is_file(), name
    run = json.loads((out / "run.json").read_text())
    assert run["n_items"] == 304 and run["data"].endswith("mathvision/data/testmini.jsonl")
    assert run["generation"]["max_new_tokens"] == 16 and run["generation"]["prompt"] == "reflection"
    assert run["generation"]["backend"] == "local" and run["timings"]["generated"] == 304

    items = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert len(items) == 304 and all(ITEM_KEYS <= set(it) for it in items)
    assert all(0 < it["response_tokens"] <= 16 for it in items)
    # the official scorer, independently, on the raw responses gives the same verdicts
    records = mathvision.load_data(benchmarks_dir / "mathvision" / "data" / "testmini.jsonl")
    outputs = [json.loads(line) for line in (out / "outputs_mathvision.jsonl").read_text().splitlines()]
    assert [o["id"] for o in outputs] == [it["id"] for it in items]
    for o, it in zip(outputs, items):
        verdict = mathvision.score_item(records[o["id"]], o["response"], "official")
        assert (verdict["correct"], verdict["extraction"]) == (o["correct"], o["model_answer"]) == (
            it["correct"], it["extraction"])
    correct = sum(it["correct"] for it in items)

    scores = json.loads((out / "scores.json").read_text())
    assert scores["-all"] == f"{correct}/304={round(correct / 304 * 100, 2)}%"
    assert {f"-level{k}" for k in range(1, 6)} <= set(scores) and "-level1_counting" in scores
    assert scores["scoring"]["mode"] == "official" and scores["scoring"]["scored_answer"] == "final"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == metrics["n_scored"] == 304 and metrics["correct"] == correct
    assert metrics["final_accuracy"] == pytest.approx(correct / 304)
    assert sum(metrics[t] for t in ("wrong_to_right", "right_to_right", "right_to_wrong", "wrong_to_wrong")) == \
        pytest.approx(metrics["reflection_rate"])
    assert sum(c["n"] for c in metrics["breakdown"]["level"].values()) == 304
    report = (out / "report.md").read_text()
    assert "| mathvision | testmini | official | 304 |" in report and "![level](plots/level.png)" in report
    assert "final acc %" in report and "| level5 |" in report
    print(f"\n[e2e] tiny model, MathVision testmini: {correct}/304 correct ({scores['-all']}), "
          f"{seconds:.1f} s in all, generation {run['timings']['generate_s']:.1f} s")


@pytest.mark.slow
def test_rerun_resumes_and_refuses_a_different_run(mathvision_run, tiny_model_dir, benchmarks_dir):
    out, _ = mathvision_run
    before = (out / "scores.json").read_text()
    _eval("--model", str(tiny_model_dir), "--benchmark", "mathvision:testmini", "--out", str(out),
          "--max-new-tokens", "16")
    assert json.loads((out / "run.json").read_text())["timings"]["generated"] == 0
    assert (out / "scores.json").read_text() == before
    res = runner.invoke(app, ["eval", "--model", str(tiny_model_dir), "--benchmark", "mathvision:testmini", "--out",
                              str(out), "--max-new-tokens", "16", "--prompt", "plain"])
    assert res.exit_code == 2 and "prompt: 'reflection' -> 'plain'" in res.output  # one line, no traceback


@pytest.mark.slow
def test_eval_score_rescores_the_runs_output_file(mathvision_run, benchmarks_dir):
    out, _ = mathvision_run
    scores = json.loads((out / "scores.json").read_text())
    for mode in ("official", "srpo_compat"):
        res = runner.invoke(app, ["eval", "score", "--benchmark", "mathvision", "--outputs",
                                  str(out / "outputs_mathvision.jsonl"), "--mode", mode])
        assert res.exit_code == 0, res.output
        saved = json.loads((out / f"outputs_mathvision_scores_{mode}.json").read_text())
        assert saved["scoring"]["mode"] == mode and saved["scoring"]["n"] == 304
        if mode == "official":
            assert saved["-all"] == scores["-all"] and f"= {scores['scoring']['accuracy']:.2f}%" in res.output


@pytest.mark.slow
def test_compare_puts_runs_side_by_side(mathvision_run, tmp_path, benchmarks_dir):
    out, _ = mathvision_run
    compat = tmp_path / "tiny_compat"  # the same responses scored in srpo_compat mode: no generation
    compat.mkdir()
    for name in ("run.json", "responses.jsonl"):
        shutil.copy(out / name, compat / name)
    run = json.loads((out / "run.json").read_text())
    _eval("--model", run["generation"]["model"], "--benchmark", "mathvision:testmini", "--out", str(compat),
          "--max-new-tokens", "16", "--mode", "srpo_compat")
    assert json.loads((compat / "metrics.json").read_text())["mode"] == "srpo_compat"
    res = _eval("compare", str(out), str(compat), "--out", str(tmp_path / "cmp"))
    assert "| tiny_mathvision |" in res.output and "| tiny_compat |" in res.output
    assert "| official |" in res.output and "| srpo_compat |" in res.output
    assert "## By subject (accuracy %)" in res.output and "| level1 |" in res.output
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 0
    assert (tmp_path / "cmp" / "compare.md").read_text().startswith("# Evaluation runs compared")


@pytest.mark.slow
def test_problem_schema_file_with_the_tiny_model(problems_file, tiny_model_dir, tmp_path, one_thread):
    out = tmp_path / "synthetic"
    _eval("--model", str(tiny_model_dir), "--benchmark", str(problems_file), "--out", str(out), "--limit", "6",
          "--max-new-tokens", "8", "--prompt", "plain")
    scores = json.loads((out / "scores.json").read_text())
    assert scores["scoring"]["mode"] == "srpo_answers" and scores["average"]["total"] == 6
    assert set(scores) >= {"average", "answer_type", "scoring"}
    assert len((out / "outputs_problems.jsonl").read_text().splitlines()) == 6
    assert (out / "plots" / "answer_type.png").is_file()


def test_answer_views():
    five = render_response("I count 3.", "$\\boxed{3}$", "Recount.", "I count 4.", "$\\boxed{4}$")
    first = first_view(five)
    assert first.endswith("</answer>") and "\\boxed{3}" in first and "\\boxed{4}" not in first
    assert final_view(five, "official") == five
    assert final_view(five, "srpo_compat").startswith("<answer>") and "\\boxed{3}" not in final_view(five,
                                                                                                     "srpo_compat")
    single = "<think>x</think><answer>5</answer>"
    assert first_view(single) is None and final_view(single, "srpo_compat") == single


TRICKY = [  # (response, the reward parser's first answer)
    ("<think>I must end with </answer> once done.</think> <answer>7</answer> <reflection>Fine.</reflection> "
     "<think>Again.</think> <answer>8</answer>", "7"),  # a literal </answer> inside the first think
    ("<think>Maybe <answer>5</answer> no.</think> <answer>7</answer> <reflection>r</reflection> <answer>8</answer>",
     "5"),  # an answer block inside the think is the parser's first answer
    ("<answer>6 <answer>7</answer> <reflection>r</reflection> <answer>8</answer>", "7"),  # an unclosed answer
]


@pytest.mark.parametrize("response, first", TRICKY)
def test_first_view_ends_with_the_rewards_first_answer(response, first):
    view = first_view(response)
    assert parse_response(response).first_answer == first
    assert parse_response(view).final_answer == first  # official scorers read the view's last answer
    assert compat_extract(final_view(view, "srpo_compat")) == first  # srpo_compat reads its first answer block


def test_first_answer_accuracy_is_the_rewards_first_answer(problems_file, tmp_path):
    """Saved replies (nothing left to generate) whose first think quotes "</answer>": evaluation's first-answer
    verdict is the reward's (srpo.rewards.score_response) for every item."""
    problems = load_problems(problems_file)[:6]
    out = tmp_path / "run"
    out.mkdir()
    replies = {}
    for k, p in enumerate(problems):
        first, final = (p.answer, "none") if k % 2 == 0 else ("none", p.answer)
        replies[p.id] = (f"<think>I will close with </answer> when sure.</think> <answer>{first}</answer> "
                         f"<reflection>Check.</reflection> <think>Again.</think> <answer>{final}</answer>")
    (out / "responses.jsonl").write_text("".join(json.dumps({"id": i, "response": r, "tokens": None}) + "\n"
                                                 for i, r in replies.items()))
    metrics = run_eval(EvalConfig(model="http://127.0.0.1:9/v1", benchmark=str(problems_file), out=str(out), limit=6,
                                  progress=False))
    assert metrics["timings"]["generated"] == 0
    items = {json.loads(line)["id"]: json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()}
    rewarded = {p.id: score_response(replies[p.id], p.answer, choices=p.choices).first_correct for p in problems}
    assert {i: it["first_correct"] for i, it in items.items()} == rewarded
    assert sum(rewarded.values()) == 3 and metrics["first_accuracy"] == pytest.approx(3 / 6)
    assert metrics["right_to_wrong"] == metrics["wrong_to_right"] == pytest.approx(3 / 6)
    # the problem file's output file rescores like any benchmark's
    again = rescore("problems", out / "outputs_problems.jsonl")
    assert (again.mode, again.n, again.correct) == ("srpo_answers", 6, metrics["correct"]) and metrics["correct"] == 3


@pytest.mark.slow
def test_a_model_path_typo_leaves_no_run_behind(problems_file, tiny_model_dir, tmp_path, one_thread):
    """The typo is refused before the run folder exists, so the corrected command is not "a different run"."""
    out = tmp_path / "run"
    command = ["eval", "--benchmark", str(problems_file), "--out", str(out), "--limit", "2", "--max-new-tokens", "4",
               "--no-progress", "--model"]
    res = runner.invoke(app, [*command, str(tiny_model_dir) + "-typo"])
    assert res.exit_code == 2 and "-typo: no such folder" in res.output and not out.exists()
    res = runner.invoke(app, [*command, str(tiny_model_dir)])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "run.json").read_text())["timings"]["generated"] == 2


def _png_dir(path, names):
    from PIL import Image

    path.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.new("RGB", (32, 32), (10, 120, 200)).save(path / name)
    return path


@pytest.mark.parametrize("benchmark", ["mathvista", "mathverse:visualizer_sample", "mmmu_pro:standard10"])
def test_official_output_files_rescore_to_the_run_scores(benchmark, tmp_path, benchmarks_dir):
    """Saved responses (no model, no server: nothing left to generate) -> the run's official-format output file,
    which `rescore` scores exactly as the run did."""
    name = benchmark.split(":")[0]
    if not (benchmarks_dir / name).exists():
        pytest.skip(f"not available: {benchmarks_dir / name}")
    images = None
    if name == "mathvista":
        images = _png_dir(tmp_path / "img", [f"{k}.jpg" for k in range(1, 9)])
    elif name == "mmmu_pro":
        rows = [json.loads(line) for line in
                (benchmarks_dir / "mmmu_pro" / "gpt-4o_standard(10 options)_cot.jsonl").read_text().splitlines()[:8]]
        images = _png_dir(tmp_path / "img", [f"{r['id']}_{k}.png" for r in rows for k in range(1, 8)])
    bench = load_benchmark(benchmark, images=images, limit=8)
    out = tmp_path / "run"
    out.mkdir()
    with (out / "responses.jsonl").open("w") as f:
        for k, it in enumerate(bench.items):
            gold = it.gold if k % 2 == 0 else "12345"
            text = f"Answer: {gold}" if name == "mmmu_pro" else f"<think>.</think> <answer>$\\boxed{{{gold}}}$</answer>"
            f.write(json.dumps({"id": it.id, "response": text, "tokens": None}) + "\n")
    metrics = run_eval(EvalConfig(model="http://127.0.0.1:9/v1", benchmark=benchmark, out=str(out),
                                  images=str(images) if images else None, limit=8, progress=False))
    assert metrics["timings"]["generated"] == 0 and metrics["n"] == 8
    outputs = out / json.loads((out / "run.json").read_text())["outputs"]
    again = rescore(name, outputs)
    assert (again.correct, again.n) == (metrics["correct"], metrics["n_scored"])
    assert metrics["correct"] >= 3  # the gold answers given to even items are recognised


def test_one_table_writer_for_runs_and_stages():
    metrics = {"final_accuracy": 0.5, "first_accuracy": 0.25, "wrong_to_right": 0.25, "mean_response_tokens": 12.0}
    table = reflection_table({"base": metrics, "stage2": {}}, "stage").splitlines()
    assert table[0].startswith("| stage | final acc % | first acc % | w->r % |") and table[1].startswith("|---|---|")
    assert table[2].startswith("| base | 50.0 | 25.0 | 25.0 | 0.0 |") and table[2].endswith("| 12.0 | 0.0 |")
    assert table[3].startswith("| stage2 | 0.0 |") and len(table) == 4
    assert markdown_table(["a", "b"], [[1, "x"]]) == "| a | b |\n|---|---|\n| 1 | x |"
