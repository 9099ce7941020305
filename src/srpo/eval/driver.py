"""`srpo eval`: load a benchmark, generate (local / endpoint / vLLM), score with the benchmark's scorer, compute the
reflection metrics, and write the run folder:

    run.json             what ran (model, backend, benchmark, split, prompt, max_new_tokens, mode, judge, timings)
    responses.jsonl      raw replies, saved as they arrive (a rerun with the same --out resumes from them)
    items.jsonl          per item: response, extraction, prediction, correct, first/final answers, transition, lengths
    outputs_<bench>.json[l]  the benchmark's official output format (rescorable with `srpo eval score`)
    scores.json          shaped like the official score file, plus a "scoring" block (mode, scorer options, judge)
    metrics.json         score + reflection metrics (first/final accuracy, transitions, reflection rate, lengths)
    report.md, plots/    tables and one bar chart per breakdown category
    view.html            the reflection explorer: every item's image, attempts and reflection, with filters

The final answer is what is scored (docs/method.md#evaluation). Official mode hands the scorer the whole response (each protocol
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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

from transformers import AutoTokenizer

from srpo.config import option
from srpo.endpoint import is_url, redact_url
from srpo.errors import InvalidValue, MissingPath
from srpo.eval.backends import generate, pick_backend
from srpo.eval.benchmarks import MODES, Benchmark, ScoreResult, benchmark_module, load_benchmark
from srpo.eval.judge import JudgeConfig
from srpo.eval.metrics import ScoredItem, reflection_metrics, scored_item
from srpo.eval.report import write_report
from srpo.eval.view import write_view
from srpo.files import atomic_write_json, atomic_write_text, check_output_dir
from srpo.format import parse_response
from srpo.models import is_local_path, token_counter
from srpo.prompts import SYSTEM_PROMPTS, system_prompt
from srpo.rewards import default_token_count
from srpo.store import JsonlStore

logger = logging.getLogger(__name__)
GENERATION_KEYS = ("model", "backend", "served_model", "benchmark", "split", "prompt", "max_new_tokens")


@dataclass
class EvalConfig:
    """`srpo eval`'s settings: every field is a flag (`--model M --benchmark B --out DIR`) or a key of `--config FILE`."""

    model: str = option("", "Checkpoint folder / hub id, or an OpenAI-compatible base URL (http://host:port/v1).")
    benchmark: str = option("", "mathvista | mathverse | mathvision | mmmu_pro (NAME:SPLIT allowed), or a "
                            "JSONL/Parquet/datasets path in the problem schema.")
    out: str = option("", "Run folder (a rerun resumes from its saved responses).")
    split: str | None = option(None, "mathvista: testmini; mathverse: testmini | testmini_text_only | "
                               "visualizer_sample; mathvision: test | testmini; mmmu_pro: standard10 | standard4 | "
                               "vision.")
    data: str | None = option(None, "Official folder or file (default: $SRPO_DATA_DIR/<benchmark>), 'hf' for "
                              "datasets.load_dataset, a datasets save_to_disk folder, or a Parquet file.")
    images: str | None = option(None, "Image folder, when not where the official layout puts it.")
    limit: int | None = option(None, "Evaluate only the first N items.")
    prompt: str = option("reflection", f"System prompt by name: one of {sorted(SYSTEM_PROMPTS)}.")
    max_new_tokens: int = option(4096, "Greedy decoding budget (paper: 4096).")
    batch_size: int = option(8, "Local generation batch size.")
    backend: str = option("auto", "auto | local | openai | vllm (auto: a URL -> openai; vLLM if installed with a "
                          "GPU; else local).")
    served_model: str | None = option(None, "Model name at the endpoint (default: the first listed).")
    api_key_env: str = option("OPENAI_API_KEY", "Environment variable with the endpoint's key.")
    concurrency: int = option(8, "Parallel requests to the endpoint.")
    request_retries: int = option(3, "Retries per endpoint request: 429, 5xx, timeouts, dropped connections.")
    tokenizer: str | None = option(None, "Tokenizer for response lengths with an endpoint (default: words).")
    mode: str = option("official", "Scoring: official | srpo_compat.")
    legacy_int: bool = option(False, "MathVista: the older integer normaliser.")
    judge_url: str | None = option(None, "OpenAI-compatible base URL of the LLM extractor/judge for the GPT steps of "
                                   "the official protocols (off by default: rules only).")
    judge_model: str = option("gpt-4o-2024-11-20", "Model name of the judge.")
    judge_key_env: str = option("OPENAI_API_KEY", "Environment variable holding the judge's key.")
    overwrite: bool = option(False, "Discard saved responses in --out.")
    progress: bool = option(True, "Progress bar.")

    def __post_init__(self):
        lacking = [f"--{key}" for key in ("model", "benchmark", "out") if not getattr(self, key)]
        if lacking:
            raise InvalidValue(f"--model, --benchmark and --out are all required; add {' and '.join(lacking)}")
        if self.prompt not in SYSTEM_PROMPTS:
            raise InvalidValue(f"--prompt {self.prompt!r} is not a system prompt; use one of {sorted(SYSTEM_PROMPTS)}")
        if self.mode not in MODES:
            raise InvalidValue(f"--mode {self.mode!r} is not a scoring mode; use one of {list(MODES)}")
        for name, value in (("--max_new_tokens", self.max_new_tokens), ("--batch_size", self.batch_size),
                            ("--concurrency", self.concurrency)):
            if value <= 0:
                raise InvalidValue(f"{name} must be a positive number, got {value}")
        if self.limit is not None and self.limit < 0:
            raise InvalidValue(f"--limit must be 0 or more (the first N items), got {self.limit}")
        if self.request_retries < 0:
            raise InvalidValue(f"--request_retries must be 0 or more, got {self.request_retries}")
        if self.judge_url and not is_url(self.judge_url):
            raise InvalidValue(f"--judge_url {self.judge_url!r} is not an http(s) URL; pass the judge's "
                               "OpenAI-compatible base URL (https://host/v1)")

    @property
    def judge(self) -> JudgeConfig:
        return JudgeConfig(base_url=self.judge_url, model=self.judge_model, api_key_env=self.judge_key_env)


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
    """What the config's own checks cannot see: the model path, the backend, the output folder; returns the backend.
    Nothing is created, loaded or requested first."""
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


def score_text(bench: ModuleType, record: dict, text: str, mode: str, judge, legacy_int: bool) -> dict:
    options = {"legacy_int": legacy_int} if bench.NAME == "mathvista" else {}
    return bench.score_item(record, text, mode, judge=judge, **options)


def length_counter(tokenizer_path: str | None) -> tuple[Callable[[str], int], str]:
    """(count(text), unit): the tokenizer's tokens when a tokenizer path is known, else words and punctuation
    (the rewards' tokenizer-free count)."""
    if tokenizer_path and not is_url(tokenizer_path):
        try:
            return token_counter(AutoTokenizer.from_pretrained(tokenizer_path)), "tokens"
        except (OSError, ValueError):
            pass
    return default_token_count, "words"


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


def score_run(bench: Benchmark, responses: dict[str, dict], cfg: EvalConfig, judge, count
              ) -> tuple[ScoreResult, list[ScoredItem]]:
    """(score result, one ScoredItem per benchmark item) of the run's responses."""
    module = benchmark_module(bench.name)
    scored, verdicts, records = [], [], []
    for item in bench.items:
        response = responses[item.id]["response"] or ""
        final = score_text(module, item.record, final_view(response, cfg.mode), cfg.mode, judge, cfg.legacy_int)
        fv = first_view(response)
        first_ok = (score_text(module, item.record, final_view(fv, cfg.mode), cfg.mode, judge,
                               cfg.legacy_int)["correct"] if fv is not None else final["correct"])
        scored.append(scored_item(item.id, item.gold, response, final, first_ok, count))
        verdicts.append(final)
        records.append(item.record)
    options = {"legacy_int": cfg.legacy_int} if bench.name == "mathvista" else {}
    options["judge"] = judge is not None
    return module.score_result(cfg.mode, verdicts, records, options), scored


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
    count, unit = length_counter(cfg.tokenizer or (cfg.model if backend != "openai" else None))
    result, scored = score_run(bench, responses, cfg, judge, count)
    t3 = time.time()
    return write_run(out, bench, cfg, run, result, scored, judge, unit,
                     {"load_s": t1 - t0, "generate_s": t2 - t1, "generated": len(todo), "score_s": t3 - t2})


def write_run(out: Path, bench: Benchmark, cfg: EvalConfig, run: dict, result: ScoreResult,
              scored: list[ScoredItem], judge, unit: str, timings: dict) -> dict:
    module = benchmark_module(bench.name)
    scoring = {"mode": result.mode, "benchmark": bench.name, "split": bench.split, "scorer": module.SCORER,
               "n": result.n, "correct": result.correct, "accuracy": result.accuracy, "unparsed": result.unparsed,
               "options": result.options, "scored_answer": "final",
               "judge": judge.describe() if judge is not None else None}
    atomic_write_json(out / "scores.json", {**result.to_official_json(), "scoring": scoring})
    outputs = module.write_outputs(list(zip(bench.items, scored)), out, cfg.model)
    write_items(out / "items.jsonl", scored)
    metrics = {"benchmark": bench.name, "split": bench.split, "mode": result.mode, "score": result.accuracy,
               "correct": result.correct, "n_scored": result.n, **reflection_metrics(scored), "length_unit": unit,
               "timings": timings, "breakdown": result.breakdown}
    atomic_write_json(out / "metrics.json", metrics)
    run = {**run, "scoring": scoring, "timings": timings, "outputs": outputs.name}
    atomic_write_json(out / "run.json", run)
    write_view([out], out / "view.html", bench=bench)  # before report.md, which links it
    write_report(out, run, result, metrics)
    return metrics


def write_items(path: Path, scored: list[ScoredItem]) -> Path:
    return atomic_write_text(path, "".join(json.dumps(it.to_row(), ensure_ascii=False, default=str) + "\n"
                                           for it in scored))
