"""`srpo eval`: load a benchmark, generate (local / endpoint / vLLM), score with the benchmark's scorer, compute the
reflection metrics, and write the run folder:

    run.json             what ran (model, backend, benchmark, split, prompt, max_new_tokens, mode, judge, timings)
    responses.jsonl      raw replies, saved as they arrive (a rerun with the same --out resumes from them)
    items.jsonl          per item: response, extraction, prediction, correct, first/final answers, transition, lengths
    outputs_<bench>.json[l]  the benchmark's official output format (rescorable with `srpo eval score`)
    scores.json          shaped like the official score file, plus a "scoring" block (mode, scorer options, judge)
    metrics.json         score + reflection metrics (first/final accuracy, transitions, reflection rate, lengths)
    report.md, plots/    tables and one bar chart per breakdown category

The final answer is what is scored (SPEC §6). Official mode hands the scorer the whole response (each protocol
extracts the last answer). srpo_compat extracts the FIRST <answer> block, so it gets the response from the last
<answer> block on. First-answer accuracy scores, the same way, the response cut after its first answer block as the
reward's parser (srpo.format.parse_response) finds it, so evaluation and reward judge the same first answer.

Every setting is checked before the run folder is created or a model loaded; run.json and every summary are written
atomically (srpo.files), and a line of responses.jsonl torn by a kill is cut off before new lines are appended.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from srpo.errors import InvalidValue, MissingPath
from srpo.eval import problems as problem_scorer
from srpo.eval.backends import generate, pick_backend, token_counter
from srpo.eval.benchmarks import Benchmark, load_benchmark
from srpo.eval.endpoint import is_url, redact_url
from srpo.eval.judge import JudgeConfig
from srpo.eval.metrics import ScoredResponse, reflection_metrics
from srpo.eval.scoring import get_scorer
from srpo.eval.scoring.common import MODES, ScoreResult, make_result
from srpo.files import atomic_write_json, atomic_write_text, check_output_dir
from srpo.format import is_five_block, parse_response
from srpo.models import is_local_path
from srpo.prompts import SYSTEM_PROMPTS, system_prompt
from srpo.reflect.store import JsonlStore

logger = logging.getLogger(__name__)
GENERATION_KEYS = ("model", "backend", "served_model", "benchmark", "split", "prompt", "max_new_tokens")


@dataclass
class EvalConfig:
    model: str  # checkpoint path / hub id, or an OpenAI-compatible base URL
    benchmark: str  # mathvista | mathverse | mathvision | mmmu_pro (optionally NAME:SPLIT), or a problem file
    out: str
    split: str | None = None
    data: str | None = None  # official folder / file, "hf", datasets folder, Parquet
    images: str | None = None
    limit: int | None = None
    prompt: str = "reflection"  # reflection | plain
    max_new_tokens: int = 4096  # the paper's
    batch_size: int = 8
    backend: str = "auto"
    served_model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    request_retries: int = 3  # per endpoint request: 429, 5xx, timeouts, dropped connections (with backoff)
    tokenizer: str | None = None  # for lengths with an endpoint; default: the model path
    mode: str = "official"  # official | srpo_compat
    legacy_int: bool = False  # MathVista's older integer normaliser
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    overwrite: bool = False
    progress: bool = True


# --- checks before anything is created, loaded or requested -----------------------------------------------

MODEL_FORMS = ("pass a checkpoint folder (config.json + weights), an OpenAI-compatible base URL "
               "(http://host:port/v1) or a hub id such as Qwen/Qwen2.5-VL-7B-Instruct")


def check_model(model: str) -> None:
    """--model is an http(s) URL with a host, a hub id ("org/name", not a local path), or a checkpoint folder."""
    if is_url(model):
        if not urlsplit(model).netloc:
            raise InvalidValue(f"--model {model!r} is a URL without a host; {MODEL_FORMS}")
        return
    path = Path(model).expanduser()
    if not is_local_path(model):  # a hub id
        return
    if not path.exists():
        raise MissingPath(f"--model {model}: no such folder; {MODEL_FORMS}")
    if not (path / "config.json").is_file():
        what = "a file" if path.is_file() else "a folder without config.json"
        raise InvalidValue(f"--model {model} is {what}, not a checkpoint folder; {MODEL_FORMS}")


def check_config(cfg: EvalConfig) -> str:
    """Every setting that can be checked without loading a model or sending a request; returns the backend."""
    if cfg.prompt not in SYSTEM_PROMPTS:
        raise InvalidValue(f"--prompt {cfg.prompt!r} is not a system prompt; use one of {sorted(SYSTEM_PROMPTS)}")
    if cfg.mode not in MODES:
        raise InvalidValue(f"--mode {cfg.mode!r} is not a scoring mode; use one of {list(MODES)}")
    for name, value in (("--max-new-tokens", cfg.max_new_tokens), ("--batch-size", cfg.batch_size),
                        ("--concurrency", cfg.concurrency)):
        if value <= 0:
            raise InvalidValue(f"{name} must be a positive number, got {value}")
    if cfg.limit is not None and cfg.limit < 0:
        raise InvalidValue(f"--limit must be 0 or more (the first N items), got {cfg.limit}")
    if cfg.request_retries < 0:
        raise InvalidValue(f"request_retries must be 0 or more, got {cfg.request_retries}")
    if cfg.judge.base_url and not is_url(cfg.judge.base_url):
        raise InvalidValue(f"--judge-url {cfg.judge.base_url!r} is not an http(s) URL; pass the judge's "
                           "OpenAI-compatible base URL (https://host/v1)")
    check_model(cfg.model)
    backend = pick_backend(cfg.model, cfg.backend)
    if backend in ("local", "vllm") and is_url(cfg.model):
        raise InvalidValue(f"--backend {backend} loads a checkpoint, but --model is a URL ({cfg.model}); use "
                           "--backend openai (or auto) for an endpoint, or pass a checkpoint")
    check_output_dir(cfg.out, "--out")
    return backend


# --- views of a response ----------------------------------------------------------------------------------------

def final_view(response: str, mode: str) -> str:
    if mode == "srpo_compat" and response.count("<answer>") >= 2:
        return response[response.rfind("<answer>"):]
    return response


def first_view(response: str) -> str | None:
    """The response up to the end of its first answer block as srpo.format.parse_response (the reward's parser) finds
    it, so that its last answer block is the reward's first answer; None when there are fewer than two answers.

    A "</answer>" that closes no block (quoted inside the first <think>, say) does not end the view: the parser reads
    left to right, so the shortest prefix ending in "</answer>" that holds an answer block ends at the first one."""
    if len(parse_response(response).answers) < 2:
        return None
    ends = (m.end() for m in re.finditer("</answer>", response))
    return next(response[:end] for end in ends if parse_response(response[:end]).answers)


def score_text(bench: Benchmark, record: dict, text: str, mode: str, judge, legacy_int: bool) -> dict:
    if bench.scorer is None:
        return problem_scorer.score_item(record, text)
    opts: dict[str, Any] = {"judge": judge}
    if bench.scorer == "mathvista":
        opts["legacy_int"] = legacy_int
    return get_scorer(bench.scorer).score_item(record, text, mode, **opts)


def build_result(bench: Benchmark, mode: str, items: list[dict], records: list[dict], options: dict) -> ScoreResult:
    if bench.scorer is None:
        return problem_scorer.make_problem_result(items, records)
    mod = get_scorer(bench.scorer)
    counted = None
    if bench.scorer == "mathverse":  # headline "All" = the five main versions, as the scorer's rescore does
        if any(mod.version(r) in mod.MAIN_VERSIONS for r in records):
            counted = lambda r: mod.version(r) != mod.TEXT_ONLY  # noqa: E731
    return make_result(mod.BENCHMARK, mode, items, records, mod.BREAKDOWN, counted=counted, options=options)


def official_scores(result: ScoreResult, scoring: dict) -> dict:
    shaped = (problem_scorer.to_official_json(result) if result.benchmark == "problems"
              else result.to_official_json())
    return {**shaped, "scoring": scoring}


# --- official output formats ------------------------------------------------------------------------------------

def _clean(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if k != "_key"}


def write_official_outputs(bench: Benchmark, rows: list[dict], out_dir: Path, model: str) -> Path:
    """rows: per item {item, response, extraction, prediction, correct}."""
    name = bench.scorer or "problems"
    if name == "mathvista":
        data = {r["item"].id: {**_clean(r["item"].record), "query": r["item"].prompt, "response": r["response"],
                               "extraction": r["extraction"], "prediction": r["prediction"],
                               "true_false": r["correct"]} for r in rows}
        return atomic_write_json(out_dir / "outputs_mathvista.json", data, indent=1)
    if name == "mathverse":
        data = [{**_clean(r["item"].record), "model_answer": r["response"], "extraction": r["extraction"],
                 "true_false": r["correct"]} for r in rows]
        return atomic_write_json(out_dir / "outputs_mathverse.json", data, indent=1)
    lines = []
    for r in rows:
        rec = _clean(r["item"].record)
        if name == "mathvision":
            line = {"id": rec["id"], "model": model, "response": r["response"], "model_answer": r["extraction"],
                    "correct": r["correct"]}
        elif name == "mmmu_pro":
            line = {**rec, "response": r["response"], "pred_indexs": r["prediction"], "if_right": r["correct"]}
        else:
            line = {**rec, "response": r["response"], "extraction": r["extraction"],
                    "prediction": r["prediction"], "correct": r["correct"]}
        lines.append(json.dumps(line, ensure_ascii=False) + "\n")
    return atomic_write_text(out_dir / f"outputs_{name}.jsonl", "".join(lines))


# --- the run ----------------------------------------------------------------------------------------------------

def _load_responses(out: Path, gen: dict, overwrite: bool) -> dict[str, dict]:
    """The replies an earlier run with the same generation settings saved in `out` (a rerun resumes from them).

    Saved replies of other settings are refused (they are work done); a folder without any saved reply is taken as
    new, so a command that failed before its first reply (a wrong URL, say) can be corrected and rerun."""
    cache, run_file = out / "responses.jsonl", out / "run.json"
    if overwrite:
        cache.unlink(missing_ok=True)
        return {}
    # A torn or garbled line is not a saved reply: its item is generated again, and the store cuts a torn last line
    # before appending.
    done = {i: row for i, row in JsonlStore(cache).load().items() if "response" in row}
    if done and run_file.exists():
        try:
            old = json.loads(run_file.read_text(encoding="utf-8")).get("generation", {})
        except (json.JSONDecodeError, AttributeError):
            raise InvalidValue(f"{run_file} is not a run file (not a JSON object), so the settings that generated the "
                               f"{len(done)} saved replies are unknown; rerun with the same --out and --overwrite, "
                               "or use another --out") from None
        diff = [k for k in GENERATION_KEYS if old.get(k) != gen.get(k)]
        if diff:
            changes = ", ".join(f"{k}: {old.get(k)!r} -> {gen.get(k)!r}" for k in diff)
            raise InvalidValue(f"{out} holds {len(done)} saved replies of a different run ({changes}); use another "
                               "--out or --overwrite")
    return done


def score_run(bench: Benchmark, responses: dict[str, dict], cfg: EvalConfig, judge, count) -> tuple:
    """(score result, scored rows, ScoredResponses) of the run's responses."""
    rows, scored, items, records = [], [], [], []
    for item in bench.items:
        response = responses[item.id]["response"] or ""
        parsed = parse_response(response)
        final = score_text(bench, item.record, final_view(response, cfg.mode), cfg.mode, judge, cfg.legacy_int)
        fv = first_view(response)
        first_ok = (score_text(bench, item.record, final_view(fv, cfg.mode), cfg.mode, judge,
                               cfg.legacy_int)["correct"] if fv is not None else bool(final["correct"]))
        sr = ScoredResponse(
            response=response, first_answer=parsed.first_answer, final_answer=parsed.final_answer,
            first_correct=bool(first_ok), final_correct=bool(final["correct"]),
            reflected=parsed.reflection is not None and len(parsed.answers) >= 2, five_block=is_five_block(response),
            response_tokens=count(response),
            reflection_tokens=count(parsed.reflection) if parsed.reflection else 0)
        scored.append(sr)
        items.append(final)
        records.append(item.record)
        rows.append({"item": item, "response": response, **{k: final.get(k) for k in
                                                             ("extraction", "prediction", "correct")}})
    options = {"legacy_int": cfg.legacy_int} if bench.scorer == "mathvista" else {}
    options["judge"] = judge is not None
    return build_result(bench, cfg.mode, items, records, options), rows, scored


def run_eval(cfg: EvalConfig) -> dict:
    """Evaluate `cfg.model` on `cfg.benchmark`; returns the summary written to metrics.json."""
    t0 = time.time()
    backend = check_config(cfg)
    bench = load_benchmark(cfg.benchmark, split=cfg.split, data=cfg.data, images=cfg.images, limit=cfg.limit)
    if not bench.items:
        raise InvalidValue(f"{bench.source}: no items to evaluate" + (" (--limit 0)" if cfg.limit == 0 else ""))
    out = Path(cfg.out)
    gen = {"model": redact_url(cfg.model), "backend": backend, "served_model": cfg.served_model, "benchmark": bench.name,
           "split": bench.split, "prompt": cfg.prompt, "max_new_tokens": cfg.max_new_tokens}
    responses = _load_responses(out, gen, cfg.overwrite)
    run = {"generation": gen, "data": bench.source, "n_items": len(bench.items), "limit": cfg.limit,
           "config": {k: v for k, v in asdict(cfg).items() if k != "judge"} | {"model": redact_url(cfg.model)}}
    atomic_write_json(out / "run.json", run)
    todo = [it for it in bench.items if it.id not in responses]
    logger.info("%s %s: %d items, %d to generate with %s", bench.name, bench.split, len(bench.items), len(todo),
                backend)
    t1 = time.time()
    with JsonlStore(out / "responses.jsonl") as cache:
        def keep(item, text, tokens):
            row = {"id": item.id, "response": text, "tokens": tokens}
            responses[item.id] = row
            cache.append(row)

        generate(backend, cfg.model, todo, system_prompt(cfg.prompt), max_new_tokens=cfg.max_new_tokens,
                 batch_size=cfg.batch_size, served_model=cfg.served_model, api_key_env=cfg.api_key_env,
                 concurrency=cfg.concurrency, request_retries=cfg.request_retries, on_result=keep,
                 progress=cfg.progress)
    t2 = time.time()
    judge = cfg.judge.build()
    count, unit = token_counter(cfg.tokenizer or (cfg.model if backend != "openai" else None))
    result, rows, scored = score_run(bench, responses, cfg, judge, count)
    t3 = time.time()
    return write_run(out, bench, cfg, run, result, rows, scored, judge, unit,
                     {"load_s": t1 - t0, "generate_s": t2 - t1, "generated": len(todo), "score_s": t3 - t2})


def write_run(out: Path, bench: Benchmark, cfg: EvalConfig, run: dict, result: ScoreResult, rows: list[dict],
              scored: list[ScoredResponse], judge, unit: str, timings: dict) -> dict:
    from srpo.eval.report import write_report

    scoring = {"mode": result.mode, "benchmark": bench.name, "split": bench.split, "scorer": bench.scorer or
               "srpo.answers", "n": result.n, "correct": result.correct, "accuracy": result.accuracy,
               "unparsed": result.unparsed, "options": result.options, "scored_answer": "final",
               "judge": judge.describe() if judge is not None else None}
    atomic_write_json(out / "scores.json", official_scores(result, scoring))
    outputs = write_official_outputs(bench, rows, out, cfg.model)
    items = [json.dumps({
        "id": row["item"].id, "gold": row["item"].gold, "correct": bool(item["correct"]),
        "extraction": item.get("extraction"), "prediction": item.get("prediction"),
        "unparsed": bool(item.get("unparsed")), "method": item.get("method"),
        **{k: v for k, v in asdict(sr).items() if k != "response"}, "transition": sr.transition,
        "response": sr.response}, ensure_ascii=False, default=str) + "\n"
        for row, item, sr in zip(rows, result.items, scored)]
    atomic_write_text(out / "items.jsonl", "".join(items))
    metrics = {"benchmark": bench.name, "split": bench.split, "mode": result.mode, "score": result.accuracy,
               "correct": result.correct, "n_scored": result.n, **reflection_metrics(scored), "length_unit": unit,
               "timings": timings, "breakdown": result.breakdown}
    atomic_write_json(out / "metrics.json", metrics)
    run = {**run, "scoring": scoring, "timings": timings, "outputs": outputs.name}
    atomic_write_json(out / "run.json", run)
    write_report(out, run, result, metrics)
    return metrics
