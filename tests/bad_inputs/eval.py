"""`srpo eval` (run settings, model, benchmark, output folder), `srpo eval score` (output and answer files) and
`srpo eval compare` (run folders): each bad input stops before any model is loaded or request sent."""

import json

from bad_inputs import BadInput, Workspace


def _run(ws: Workspace, *extra: str) -> list[str]:
    """`srpo eval` on the valid problem file and the real tiny model, plus the bad settings."""
    args = {"--model": str(ws.model), "--benchmark": str(ws.problems), "--out": str(ws.tmp / "run")}
    flags = dict(zip(extra[::2], extra[1::2]))
    return ["eval", *[x for k, v in {**args, **flags}.items() for x in (k, v)]]


def _score(*args) -> list[str]:
    return ["eval", "score", *args]


MMMU_ROW = {"id": "test_Math_1", "question": "Which?", "options": "['two', 'three', 'four']", "answer": "B",
            "subject": "Math", "response": "Answer: B"}


def _jsonl(*rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _mathvision_answers(ws: Workspace):
    """A one-item MathVision answer file (what --data points at)."""
    return ws.write("data/test.jsonl", _jsonl({"id": "1", "question": "How many?", "options": [], "answer": "60",
                                               "level": 2, "subject": "arithmetic"}))


def _different_run(ws: Workspace) -> list[str]:
    """A run folder holding a saved reply generated with --prompt plain; the rerun asks for the reflection prompt."""
    gen = {"model": str(ws.model), "backend": "local", "served_model": None, "benchmark": "problems",
           "split": ws.problems.stem, "prompt": "plain", "max_new_tokens": 4096}
    ws.write("run/run.json", json.dumps({"generation": gen}))
    first_id = json.loads(ws.problems.read_text().splitlines()[0])["id"]
    ws.write("run/responses.jsonl", _jsonl({"id": first_id, "response": "<answer>3</answer>", "tokens": 3}))
    return _run(ws)


CASES = [
    # srpo eval: settings checked before the run folder is made or the model loaded
    BadInput("eval-out-is-a-file", lambda ws: _run(ws, "--out", ws.write("taken.txt", "x")),
             r"--out .*taken\.txt is an existing file, not a folder; pass a folder path"),
    BadInput("eval-model-path-typo", lambda ws: _run(ws, "--model", str(ws.tmp / "ckpt-typo")),
             r"--model .*ckpt-typo: no such folder; pass a checkpoint folder \(config\.json \+ weights\)"),
    BadInput("eval-model-not-a-checkpoint", lambda ws: _run(ws, "--model", str(ws.tmp)),
             r"--model .* is a folder without config\.json, not a checkpoint folder"),
    BadInput("eval-model-url-with-local-backend",
             lambda ws: _run(ws, "--model", "http://127.0.0.1:9/v1", "--backend", "local"),
             r"--backend local loads a checkpoint, but --model is a URL"),
    BadInput("eval-openai-backend-with-a-path", lambda ws: _run(ws, "--backend", "openai"),
             r"--backend openai needs --model to be the server's base URL"),
    BadInput("eval-unknown-backend", lambda ws: _run(ws, "--backend", "gpu"),
             r"--backend 'gpu' is not a backend; use one of \['auto', 'local', 'openai', 'vllm'\]"),
    BadInput("eval-unknown-mode", lambda ws: _run(ws, "--mode", "offical"),
             r"--mode 'offical' is not a scoring mode; use one of \['official', 'srpo_compat'\]"),
    BadInput("eval-unknown-prompt", lambda ws: _run(ws, "--prompt", "reflect"),
             r"--prompt 'reflect' is not a system prompt; use one of \[.*'reflection'"),
    BadInput("eval-zero-max-new-tokens", lambda ws: _run(ws, "--max-new-tokens", "0"),
             r"--max_new_tokens must be a positive number, got 0"),
    BadInput("eval-negative-limit", lambda ws: _run(ws, "--limit", "-1"), r"--limit must be 0 or more"),
    BadInput("eval-without-out", lambda ws: ["eval", "--model", str(ws.model), "--benchmark", str(ws.problems)],
             r"--model, --benchmark and --out are all required; add --out"),
    BadInput("eval-unknown-benchmark", lambda ws: _run(ws, "--benchmark", "mathvsta"),
             r"--benchmark 'mathvsta' is not a known benchmark; use one of \['mathverse', 'mathvision'"),
    BadInput("eval-unknown-split", lambda ws: _run(ws, "--benchmark", "mathvision:train"),
             r"mathvision: unknown split 'train' \(--split, or NAME:SPLIT\); use one of \['test', 'testmini'\]"),
    BadInput("eval-no-data-folder", lambda ws: _run(ws, "--benchmark", "mathvision:testmini"),
             r"--benchmark mathvision needs --data \(its official folder or file, or hf\), or SRPO_DATA_DIR set to the "
             r"folder holding the official benchmark folders", env={"SRPO_DATA_DIR": ""}),
    BadInput("eval-problem-file-not-found", lambda ws: _run(ws, "--benchmark", str(ws.tmp / "problms.jsonl")),
             r"--benchmark .*problms\.jsonl: no such problem file"),
    BadInput("eval-problem-file-bad-row",  # line 2 has no answer
             lambda ws: _run(ws, "--benchmark", ws.write("bad.jsonl", _jsonl({"question": "2+2?", "answer": "4"},
                                                                              {"question": "3+3?"}))),
             r"bad\.jsonl\D*2\b.*answer"),
    BadInput("eval-saved-replies-of-another-run", _different_run,
             r"run holds 1 saved replies of a different run \(prompt: 'plain' -> 'reflection'\); use another --out or "
             r"--overwrite"),
    # srpo eval score: the output file and the answer file, read before anything is scored
    BadInput("eval-score-outputs-not-found",
             lambda ws: _score("--benchmark", "mmmu_pro", "--outputs", ws.tmp / "gone.jsonl"),
             r"--outputs .*gone\.jsonl does not exist"),
    BadInput("eval-score-truncated-json",
             lambda ws: _score("--benchmark", "mathvista", "--outputs",
                               ws.write("out.json", '{"1": {"answer": "2", "question_type": "free_form", "answer_t')),
             r"out\.json line 1 column \d+: the JSON ends in the middle of a value, so the file is truncated"),
    BadInput("eval-score-truncated-jsonl",
             lambda ws: _score("--benchmark", "mmmu_pro", "--outputs",
                               ws.write("out.jsonl", _jsonl(MMMU_ROW) + json.dumps(MMMU_ROW)[:40])),
             r"out\.jsonl line 2: the JSON ends in the middle of a value, so the file is truncated"),
    BadInput("eval-score-list-where-a-dict-is-expected",
             lambda ws: _score("--benchmark", "mathvista", "--outputs",
                               ws.write("out.json", json.dumps([{"pid": "1", "answer": "2"}]))),
             r"out\.json: a JSON list, but mathvista output files are one JSON object keyed by pid"),
    BadInput("eval-score-dict-where-jsonl-rows-are-expected",
             lambda ws: _score("--benchmark", "mmmu_pro", "--outputs",
                               ws.write("out.jsonl", json.dumps({"test_Math_1": MMMU_ROW}, indent=1))),
             r"out\.jsonl: one JSON object over \d+ lines, but mmmu_pro output files are JSONL rows"),
    BadInput("eval-score-row-not-an-object",
             lambda ws: _score("--benchmark", "mmmu_pro", "--outputs",
                               ws.write("out.jsonl", _jsonl(MMMU_ROW, ["B", "C"]))),
             r"out\.jsonl line 2: a JSON list, not an object"),
    BadInput("eval-score-row-without-id",
             lambda ws: _score("--benchmark", "mathvision", "--data", _mathvision_answers(ws), "--outputs",
                               ws.write("out.jsonl", _jsonl({"id": "1", "response": "60"}, {"response": "7"}))),
             r"out\.jsonl line 2: no 'id' field \(the item id\)"),
    BadInput("eval-score-mathverse-row-without-sample-index",
             lambda ws: _score("--benchmark", "mathverse", "--outputs",
                               ws.write("out.json", json.dumps([{"answer": "14", "question_type": "free-form",
                                                                 "model_answer": "14"}]))),
             r"out\.json row 1: no 'sample_index' or 'pid' field"),
    BadInput("eval-score-id-unknown-to-the-answers",
             lambda ws: _score("--benchmark", "mathvision", "--data", _mathvision_answers(ws), "--outputs",
                               ws.write("out.jsonl", _jsonl({"id": "1", "response": "60"},
                                                            {"id": "9999", "response": "7"}))),
             r"out\.jsonl line 2: id '9999' is not in .*test\.jsonl \(1 of 2 rows .*\); pass the matching answer "
             r"file with --data"),
    BadInput("eval-score-answer-file-missing",
             lambda ws: _score("--benchmark", "mathvision", "--data", ws.tmp / "data" / "test.jsonl", "--outputs",
                               ws.write("out.jsonl", _jsonl({"id": "1", "response": "60"}))),
             r"mathvision: answer file .*test\.jsonl not found\. .*pass its path with --data"),
    BadInput("eval-score-no-answer-file",
             lambda ws: _score("--benchmark", "mathvision", "--outputs",
                               ws.write("out.jsonl", _jsonl({"id": "1", "response": "60"}))),
             r"mathvision scoring needs --data with the answers \(data/test\.jsonl\), or SRPO_DATA_DIR set to",
             env={"SRPO_DATA_DIR": ""}),
    BadInput("eval-score-field-typo",
             lambda ws: _score("--benchmark", "mmmu_pro", "--field", "respons", "--outputs",
                               ws.write("out.jsonl", _jsonl(MMMU_ROW))),
             r"out\.jsonl: no row has the field 'respons' to score \(--field\)"),
    BadInput("eval-score-shuffled-options-without-their-answer",
             lambda ws: _score("--benchmark", "mmmu_pro", "--outputs",
                               ws.write("out.jsonl", _jsonl({**MMMU_ROW, "shuffled_options": "['four', 'two']"}))),
             r"out\.jsonl line 1: item 'test_Math_1' has 'shuffled_options' but no 'shuffled_options_answer'"),
    BadInput("eval-score-unknown-mode",
             lambda ws: _score("--benchmark", "mmmu_pro", "--mode", "strict", "--outputs",
                               ws.write("out.jsonl", _jsonl(MMMU_ROW))),
             r"--mode 'strict' is not a scoring mode"),
    BadInput("eval-score-out-is-a-folder",
             lambda ws: _score("--benchmark", "mmmu_pro", "--outputs", ws.write("out.jsonl", _jsonl(MMMU_ROW)),
                               "--out", ws.write("scores.json/keep", "x").parent),
             r"score file \(--out\) .*scores\.json is an existing folder; pass a file path"),
    # srpo eval compare: run folders and its --out
    BadInput("eval-compare-not-a-run", lambda ws: ["eval", "compare", ws.tmp],
             r"no run\.json; is this an `srpo eval` run folder\? Pass folders written by `srpo eval --out DIR`"),
    BadInput("eval-compare-unfinished-run",
             lambda ws: ["eval", "compare", ws.write("run/run.json", json.dumps({"generation": {}})).parent],
             r"run: no metrics\.json, so that run did not finish; rerun its `srpo eval` command with --out"),
    BadInput("eval-compare-out-is-a-file",
             lambda ws: ["eval", "compare", ws.tmp, "--out", ws.write("compare.md", "x")],
             r"--out .*compare\.md is an existing file, not a folder"),
]
