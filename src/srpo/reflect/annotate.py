"""`srpo annotate`: the visual facts of each problem (docs/method.md#perception), extracted by an
OpenAI-compatible endpoint from the problem's worked solution or from a chain of thought a (multimodal) endpoint
writes first, optionally kept only when its answer verifies.

It runs exactly as `srpo reflect`'s endpoint phases do (srpo.reflect.remote): every finished request, ok or failed
with its reason, usage and retries, is appended durably to a JSONL store in the output dir before it counts; a rerun
requests only what the stores lack (with `retry_failed`, also what failed); a store made with other settings is
refused (srpo.reflect.build.check_store_settings). Files in the output dir:

* `cots.jsonl` (source cot): one record per problem (`id`, `status`, `cot`, `usage`, `retries`);
* `facts.jsonl`: one record per problem (`id`, `text_key` of the text the facts came from, `status`, `facts` or
  `reason`, `usage`, `retries`);
* `problems.jsonl` (+ `images/problems/`): the input problems with `visual_facts` (null where none were made);
* `summary.json`: requests, failures by reason, tokens and the estimated cost per endpoint; `settings.json`.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import asdict, replace
from importlib import resources
from pathlib import Path
from typing import Any

from srpo.answers import is_correct
from srpo.config import AnnotateConfig, ConfigError
from srpo.data import LoadReport, Problem, load_problems, save_problems
from srpo.endpoint import ChatEndpoint, MalformedReply, RequestFailed, is_url, parse_endpoint, redact_url
from srpo.errors import InvalidValue
from srpo.files import atomic_write_json, check_output_dir
from srpo.prompts import read_prompt_template
from srpo.reflect.build import REQUEST_KEYS, check_store_settings, check_usable_problems, text_digest, usage_summary
from srpo.reflect.remote import THINK_BLOCK, attempt_key, fenced_json_values, make_endpoint, run_into_store
from srpo.store import JsonlStore

logger = logging.getLogger(__name__)

FACTS_FILE = "facts.jsonl"
COTS_FILE = "cots.jsonl"
OUTPUT_FILE = "problems.jsonl"
ANNOTATE_MARK = "List the visual facts"  # in the built-in template; the loopback test server keys on it
FACT_FIELDS = {"question", "answer", "solution"}
COT_FIELDS = {"question"}  # the CoT writer never sees the answer: verify_cot checks it afterwards


def _builtin_template(name: str) -> str:
    return resources.files("srpo").joinpath(f"assets/{name}").read_text(encoding="utf-8")


def fact_template(cfg: AnnotateConfig) -> str:
    return read_prompt_template(cfg.prompt_template, "prompt_template", _builtin_template("annotate_prompt.txt"),
                                FACT_FIELDS, ("solution",), "the model")


def cot_template(cfg: AnnotateConfig) -> str:
    return read_prompt_template(cfg.cot_prompt_template, "cot_prompt_template",
                                _builtin_template("annotate_cot_prompt.txt"), COT_FIELDS, ("question",), "the model")


_LISTED = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+(.+?)\s*$", re.MULTILINE)


def parse_facts(content: str | None) -> list[str]:
    """The facts of an extraction reply: a JSON list of strings (bare, in a code fence or inside prose, or as
    `{"facts": [...]}`), else numbered or bulleted lines. `[]` is a valid answer (no visual facts). Raises
    `MalformedReply` with the reason: "empty reply", "no JSON list and no numbered lines", "facts are not strings"."""
    text = THINK_BLOCK.sub("", (content or "")).strip()
    if not text:
        raise MalformedReply("empty reply")
    decoded = fenced_json_values(text)
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text):
        if any(isinstance(v, list) or (isinstance(v, dict) and "facts" in v) for v in decoded):
            break
        try:
            decoded.append(decoder.raw_decode(text, match.start())[0])
        except ValueError:
            continue
    lists = [v["facts"] if isinstance(v, dict) else v for v in decoded
             if isinstance(v, list) or (isinstance(v, dict) and isinstance(v.get("facts"), list))]
    if lists:
        facts = lists[0]
        if not all(isinstance(f, (str, int, float)) and not isinstance(f, bool) for f in facts):
            raise MalformedReply("facts are not strings")
        facts = [str(f) for f in facts]
    else:
        facts = _LISTED.findall(text)
        if not facts:
            raise MalformedReply("no JSON list and no numbered lines")
    unique = dict.fromkeys(" ".join(f.split()) for f in facts)
    return [f for f in unique if f]


def cot_answer(cot: str) -> str | None:
    """The final answer of a CoT: its last <answer> block, else its last \\boxed{}; None when it states none."""
    blocks = re.findall(r"<answer>(.*?)</answer>", cot, re.DOTALL)
    if blocks:
        return blocks[-1].strip() or None
    return cot if "\\boxed" in cot else None


def _nonempty(content: str) -> str:
    if not content.strip():
        raise MalformedReply("empty reply")
    return content


def check_annotate_config(cfg: AnnotateConfig) -> None:
    """A setting that cannot work is one error naming the key and the fix, before any file is read or request made."""
    if not cfg.problems:
        raise ConfigError("problems: no problem file given; pass --problems FILE (.jsonl, .parquet, a datasets "
                          "folder or NAME@SPLIT)")
    if not cfg.out:
        raise ConfigError("out: no output folder given; pass --out DIR")
    check_output_dir(cfg.out, "out")
    endpoints = [("url", cfg.url, cfg.api_key_env)]
    if cfg.source == "cot" and cfg.cot_url:
        endpoints.append(("cot_url", cfg.cot_url, _cot_key_env(cfg)))
    for key, url, key_env in endpoints:
        if not url:
            raise ConfigError(f"{key}: no endpoint given; pass --{key} with the http(s) URL of an OpenAI-compatible "
                              "server, e.g. http://localhost:8000/v1")
        if not is_url(url):
            raise ConfigError(f"{key} = {redact_url(url)!r}: use the http(s) URL of an OpenAI-compatible server")
        try:
            parse_endpoint(url, key_env, key_option="--api_key_env" if key == "url" else "--cot_api_key_env")
        except InvalidValue as exc:
            raise ConfigError(f"{key}: {exc}") from None
    for key in ("extra_body", "cot_extra_body"):
        clash = [k for k in REQUEST_KEYS if k in getattr(cfg, key)]
        if clash:
            raise ConfigError(f"{key}: {clash} are set by srpo (use model / cot_model for the model); remove them")
    fact_template(cfg)
    if cfg.source == "cot":
        cot_template(cfg)


def _cot_key_env(cfg: AnnotateConfig) -> str | None:
    return cfg.api_key_env if cfg.cot_api_key_env is None else cfg.cot_api_key_env


def _cot_endpoint(cfg: AnnotateConfig) -> ChatEndpoint:
    if cfg.cot_url:
        return make_endpoint(cfg, cfg.cot_url, cfg.cot_model, _cot_key_env(cfg))
    return make_endpoint(cfg, cfg.url, cfg.cot_model or cfg.model, _cot_key_env(cfg))


def store_settings(cfg: AnnotateConfig) -> dict[str, dict[str, Any]]:
    """What the items of each store depend on, by store file (as they read back from settings.json)."""
    settings: dict[str, dict[str, Any]] = {FACTS_FILE: {
        "url": redact_url(cfg.url), "model": cfg.model, "source": cfg.source,
        "prompt_template": text_digest(fact_template(cfg)), "temperature": cfg.temperature,
        "max_tokens": cfg.max_tokens, "extra_body": cfg.extra_body,
    }}
    if cfg.source == "cot":
        settings[COTS_FILE] = {
            "cot_url": redact_url(cfg.cot_url or cfg.url), "cot_model": cfg.cot_model or (cfg.model if not cfg.cot_url else ""),
            "cot_prompt_template": text_digest(cot_template(cfg)), "cot_temperature": cfg.cot_temperature,
            "cot_max_tokens": cfg.cot_max_tokens, "cot_extra_body": cfg.cot_extra_body,
            "image_max_pixels": cfg.image_max_pixels,
        }
    return json.loads(json.dumps(settings))


def load_annotate_problems(cfg: AnnotateConfig) -> list[Problem]:
    """The problems to annotate; with source solution, every one must have its worked solution."""
    report = LoadReport()
    problems = load_problems(cfg.problems, limit=cfg.limit, skip_bad=cfg.skip_bad, report=report,
                             columns=cfg.problems_columns)
    check_usable_problems(problems, cfg.problems, report,
                          solutions_used_by="source solution extracts facts" if cfg.source == "solution" else None,
                          instead="use --source cot (a CoT written by the endpoint)")
    return problems


def _todo(records: dict[str, dict], keys: dict[str, str | None], retry_failed: bool) -> list[str]:
    """Ids whose stored record is missing, made from another text, or (with retry_failed) failed."""
    todo = []
    for pid, key in keys.items():
        record = records.get(pid)
        if record is None or record.get("text_key") != key or (retry_failed and record.get("status") != "ok"):
            todo.append(pid)
    return todo


def _failed(base: dict[str, Any], exc: RequestFailed, endpoint: ChatEndpoint) -> dict[str, Any]:
    return {**base, "status": "failed", "reason": exc.reason, "usage": exc.usage, "retries": exc.retries,
            "model": endpoint.model}


def collect_cots(cfg: AnnotateConfig, problems: list[Problem], out: Path) -> dict[str, dict[str, Any]]:
    """CoT records by id from `cots.jsonl`, the missing ones requested (bounded, retried, durable)."""
    store = JsonlStore(out / COTS_FILE, fsync=cfg.fsync)
    records = store.load()
    todo = set(_todo(records, {p.id: None for p in problems}, cfg.retry_failed))
    endpoint, template = _cot_endpoint(cfg), cot_template(cfg)
    params = {"temperature": cfg.cot_temperature, "max_completion_tokens": cfg.cot_max_tokens, **cfg.cot_extra_body}

    async def write(problem: Problem) -> dict[str, Any]:
        base = {"id": problem.id, "text_key": None}
        try:
            result = await endpoint.ask(template.format(question=problem.question_with_choices()), problem.images,
                                        parse=_nonempty, **params)
        except RequestFailed as exc:
            return _failed(base, exc, endpoint)
        return {**base, "status": "ok", "cot": result.value, "usage": result.usage, "retries": result.retries,
                "model": endpoint.model}

    _run(endpoint, [p for p in problems if p.id in todo], write, store, cfg, records, "CoTs", len(problems))
    return store.load()


def collect_facts(cfg: AnnotateConfig, texts: dict[str, tuple[Problem, str]], out: Path) -> dict[str, dict]:
    """Fact records by id from `facts.jsonl`, the missing ones requested; each record is tied to its text's key, so a
    changed solution or CoT is asked about again."""
    store = JsonlStore(out / FACTS_FILE, fsync=cfg.fsync)
    records = store.load()
    keys = {pid: attempt_key(text) for pid, (_, text) in texts.items()}
    todo = _todo(records, keys, cfg.retry_failed)
    endpoint, template = make_endpoint(cfg, cfg.url, cfg.model, cfg.api_key_env), fact_template(cfg)
    params = {"temperature": cfg.temperature, "max_completion_tokens": cfg.max_tokens, **cfg.extra_body}

    async def extract(pid: str) -> dict[str, Any]:
        problem, text = texts[pid]
        base = {"id": pid, "text_key": keys[pid]}
        prompt = template.format(question=problem.question_with_choices(), answer=problem.answer, solution=text)
        try:
            result = await endpoint.ask(prompt, parse=parse_facts, **params)  # a text model: no images
        except RequestFailed as exc:
            return _failed(base, exc, endpoint)
        return {**base, "status": "ok", "facts": result.value, "usage": result.usage, "retries": result.retries,
                "model": endpoint.model}

    _run(endpoint, todo, extract, store, cfg, records, "visual facts", len(texts))
    return {pid: record for pid, record in store.load().items() if pid in keys and record.get("text_key") == keys[pid]}


def _run(endpoint, items, work, store: JsonlStore, cfg: AnnotateConfig, records: dict, desc: str, total: int) -> None:
    if records:
        logger.info("%s: %d of %d already in %s; %d to request", desc, total - len(items), total, store.path,
                    len(items))
    try:
        run_into_store(endpoint, items, work, store, cfg.concurrency, desc=desc, progress=cfg.progress)
    finally:
        store.close()


def run_annotate(cfg: AnnotateConfig) -> Path:
    """Annotate `cfg.problems` into `cfg.out`; returns the output dir (summary.json and problems.jsonl in it)."""
    check_annotate_config(cfg)
    problems = load_annotate_problems(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    check_store_settings(store_settings(cfg), out)
    dropped: Counter = Counter()
    usage: dict[str, Any] = {}
    if cfg.source == "cot":
        cots = collect_cots(cfg, problems, out)
        usage["cot"] = usage_summary({p.id: cots[p.id] for p in problems if p.id in cots}, cfg.cot_price_input,
                                     cfg.cot_price_output)
        texts = {}
        for problem in problems:
            record = cots.get(problem.id, {})
            if record.get("status") != "ok":
                dropped["cot_failed"] += 1
            elif cfg.verify_cot and not _verifies(record["cot"], problem):
                dropped["cot_unverified"] += 1
            else:
                texts[problem.id] = (problem, record["cot"])
    else:
        texts = {p.id: (p, p.solution) for p in problems}
    facts = collect_facts(cfg, texts, out)
    usage["annotate"] = usage_summary(facts, cfg.price_input, cfg.price_output)
    annotated = [replace(p, visual_facts=facts[p.id]["facts"]) if facts.get(p.id, {}).get("status") == "ok"
                 else p for p in problems]
    dropped["facts_failed"] += sum(facts.get(pid, {}).get("status") != "ok" for pid in texts)
    counts = [len(p.visual_facts) for p in annotated if p.visual_facts is not None]
    save_problems(annotated, out / OUTPUT_FILE)
    summary = {
        "problems": len(problems),
        "annotated": len(counts),
        "without_facts": {reason: n for reason, n in sorted(dropped.items()) if n},
        "facts_per_problem": round(sum(counts) / len(counts), 3) if counts else None,
        "usage": usage,
        "estimated_cost_usd": round(sum(u["estimated_cost_usd"] for u in usage.values()), 6),
        "output": str(out / OUTPUT_FILE),
        "config": {**asdict(cfg), "url": redact_url(cfg.url), "cot_url": redact_url(cfg.cot_url)},
    }
    atomic_write_json(out / "summary.json", summary)
    return out


def _verifies(cot: str, problem: Problem) -> bool:
    answer = cot_answer(cot)
    return answer is not None and is_correct(answer, problem.answer, choices=problem.choices)


__all__ = ["ANNOTATE_MARK", "check_annotate_config", "cot_answer", "parse_facts", "run_annotate"]
