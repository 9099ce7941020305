# Over 400 lines: the stage-1 data flow (attempts, filters, reflections, resume) reads top to bottom in one place.
"""Build the stage-1 reflection dataset: attempts -> filters -> teacher reflections -> an SFT-ready dataset on disk.

The policy is a local model (batched generation) or an OpenAI-compatible endpoint; the teacher is `oracle` or an
endpoint (`srpo.reflect.remote`). Files in the output dir:

* `attempts.jsonl`: one record per problem (`id`, `response`, `status`, ...), appended durably as attempts finish;
* `reflections.jsonl`: one record per teacher request (`id`, `status` ok/failed, `reflection` or `reason`, token
  `usage`, `retries`), appended durably as replies finish (endpoint teachers);
* `dataset/` (datasets format: question, images, target, answer, first_correct, reflection, ...) for `srpo sft`;
* `summary.json`: kept/dropped by reason, right/wrong mix, tokens used and the estimated cost;
* `settings.json`: the settings each store's items were made with (model, prompt, sampling); a rerun with other
  settings stops with `SettingsChanged` instead of mixing old and new items.

Before any model is loaded or request made, `check_reflect_config` refuses settings that cannot work and
`load_reflect_problems` the problems that would fail later (with a local policy: images its processor refuses).
A rerun with the same output dir requests only what the stores lack; the dataset is rebuilt from the stores with
seeded sampling, so it is the same whether or not the run was interrupted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from srpo.answers import is_correct
from srpo.config import TARGET_SHAPES, ConfigError, ReflectConfig
from srpo.data import LoadReport, Problem, load_problems, problems_to_dataset, reject_images
from srpo.endpoint import is_url, parse_endpoint, redact_url
from srpo.errors import InvalidValue, UserError
from srpo.files import atomic_write_json, check_output_dir, replace_dir
from srpo.format import parse_response, render_response, render_sft_target
from srpo.generation import generate_responses
from srpo.models import load_policy, load_processor
from srpo.prompts import system_prompt
from srpo.reflect.remote import (
    EndpointTeacher,
    attempt_key,
    generate_attempts_endpoint,
    load_teacher_template,
    reflect_with_store,
)
from srpo.reflect.teachers import Attempt, OracleTeacher, Reflection, Teacher
from srpo.store import JsonlStore

logger = logging.getLogger(__name__)

ATTEMPTS_FILE = "attempts.jsonl"
REFLECTIONS_FILE = "reflections.jsonl"
SETTINGS_FILE = "settings.json"
REQUEST_KEYS = ("model", "messages")  # set by srpo: an extra body must not replace them


class SettingsChanged(UserError, ValueError):
    """A store in the output dir was made with other settings than this run's."""


def check_reflect_config(cfg: ReflectConfig) -> None:
    """A setting that cannot work is a `ConfigError` naming the key and the fix, raised before any file is read,
    any model is loaded or any request is made."""
    if not cfg.problems:
        raise ConfigError("problems: no problem file given; pass --problems FILE (.jsonl, .parquet or a datasets folder)")
    if not cfg.policy:
        raise ConfigError("policy: no policy given; pass --policy with a model folder, a hub id or an http(s) URL")
    if cfg.teacher != "oracle" and not is_url(cfg.teacher):
        raise ConfigError(f"teacher = {redact_url(cfg.teacher)!r}: use 'oracle' or the http(s) URL of an "
                          "OpenAI-compatible server")
    if not cfg.out:
        raise ConfigError("out: no output folder given; pass --out DIR")
    check_output_dir(cfg.out, "out")
    for key in ("policy_extra_body", "teacher_extra_body"):
        clash = [k for k in REQUEST_KEYS if k in getattr(cfg, key)]
        if clash:
            raise ConfigError(f"{key}: {clash} are set by srpo (use policy_model / teacher_model for the model); "
                              "remove them")
    for key, url, key_env in (("policy", cfg.policy, cfg.policy_api_key_env),
                              ("teacher", cfg.teacher, cfg.teacher_api_key_env)):
        if is_url(url):
            try:
                parse_endpoint(url, key_env, key_option=f"--{key}-api-key-env")
            except InvalidValue as exc:
                raise ConfigError(f"{key}: {exc}") from None
    if cfg.teacher_prompt and not is_url(cfg.teacher):
        logger.warning("teacher_prompt %s is not used: only an endpoint teacher takes a prompt", cfg.teacher_prompt)


def make_teacher(name: str, cfg: ReflectConfig | None = None) -> Teacher:
    """`oracle`, or an endpoint teacher when `name` is an http(s) URL (settings from `cfg`)."""
    if name == "oracle":
        return OracleTeacher()
    if is_url(name):

        return EndpointTeacher(replace(cfg or ReflectConfig(), teacher=name))
    raise InvalidValue(f"unknown teacher '{name}': use 'oracle' or the http(s) URL of an OpenAI-compatible server")


def parse_attempt(problem: Problem, response: str) -> Attempt | None:
    """docs/method.md#reflection-data: drop attempts without <think>/<answer>; mark the first answer right or wrong."""
    parsed = parse_response(response)
    if parsed.first_think is None or parsed.first_answer is None:
        return None
    correct = is_correct(parsed.first_answer, problem.answer, choices=problem.choices)
    return Attempt(problem.id, response, parsed.first_think.strip(), parsed.first_answer.strip(), correct)


def _todo(records: dict[str, dict], problems: list[Problem], retry_failed: bool) -> list[Problem]:
    return [p for p in problems
            if p.id not in records or (retry_failed and records[p.id].get("status", "ok") != "ok")]


def collect_attempts(cfg: ReflectConfig, problems: list[Problem], out: Path) -> dict[str, dict[str, Any]]:
    """Attempt records by problem id: loaded from `attempts.jsonl`, the missing ones generated and appended."""
    store = JsonlStore(out / ATTEMPTS_FILE, fsync=cfg.fsync)
    records = store.load()
    todo = _todo(records, problems, cfg.retry_failed)
    if records:
        logger.info("attempts: %d of %d already in %s; %d to generate", len(problems) - len(todo), len(problems),
                    store.path, len(todo))
    if todo:
        try:
            if is_url(cfg.policy):
                generate_attempts_endpoint(cfg, todo, store)
            else:
                _generate_attempts_local(cfg, problems, {p.id for p in todo}, store)
        finally:
            store.close()
        records = store.load()
    return records


def _generate_attempts_local(cfg: ReflectConfig, problems: list[Problem], todo: set[str], store: JsonlStore) -> None:
    """Sampled attempts for the ids in `todo`, in chunks fixed by position in `problems` and seeded by it: a chunk
    cut short by a crash is generated again whole (same batches, same seed), so a resumed run stores exactly the
    attempts an uninterrupted one would. Each chunk is stored durably before the next starts."""
    step = cfg.batch_size * 8
    chunks = [(start, problems[start : start + step]) for start in range(0, len(problems), step)]
    chunks = [(start, chunk) for start, chunk in chunks if any(p.id in todo for p in chunk)]
    model, processor = load_policy(cfg.policy)
    bar = tqdm(total=len(todo), desc="policy attempts", unit="item", disable=not cfg.progress, dynamic_ncols=True)
    for start, chunk in chunks:
        responses = generate_responses(
            model,
            processor,
            chunk,
            system_prompt(cfg.system_prompt) if cfg.system_prompt else None,
            max_new_tokens=cfg.attempt_max_new_tokens,
            temperature=cfg.attempt_temperature,
            batch_size=cfg.batch_size,
            seed=cfg.seed + start,
            progress=False,
        )
        new = [{"id": p.id, "response": r, "status": "ok"} for p, r in zip(chunk, responses) if p.id in todo]
        store.append_many(new)
        bar.update(len(new))
    bar.close()


def render_target(attempt: Attempt, reflection_text: str, revised: str | None, gold: str, shape: str) -> str:
    final = f"$\\boxed{{{gold}}}$"
    if shape == "sft":
        return render_sft_target(attempt.reasoning, attempt.answer, reflection_text, final)
    if shape == "five_block":
        return render_response(attempt.reasoning, attempt.answer, reflection_text, revised or attempt.reasoning, final)
    raise InvalidValue(f"target_shape must be one of {TARGET_SHAPES}, got '{shape}'")


def _image_digest(problem: Problem) -> str:
    h = hashlib.sha1()
    for image in problem.images:
        h.update(f"{image.mode}{image.size}".encode())
        h.update(image.tobytes())
    return h.hexdigest()


def select_candidates(cfg: ReflectConfig, problems: list[Problem], responses: dict[str, str],
                      failed_attempts: dict[str, str] | None = None, dropped: Counter | None = None):
    """docs/method.md#reflection-data filters before the teacher: format, reasoning length, dedupe, right/wrong mix.

    Returns (candidates [(problem, attempt)] in a seeded order, Counter of drop reasons).
    """
    dropped = dropped if dropped is not None else Counter()
    failed_attempts = failed_attempts or {}
    candidates: list[tuple[Problem, Attempt]] = []
    seen: dict[tuple[str, str], list[tuple[Problem, str | None]]] = {}
    for problem in problems:
        if problem.id in failed_attempts:
            dropped["attempt_failed"] += 1
            continue
        attempt = parse_attempt(problem, responses.get(problem.id, ""))
        if attempt is None:
            dropped["no_think_or_answer"] += 1
            continue
        if not cfg.min_reasoning_chars <= len(attempt.reasoning) <= cfg.max_reasoning_chars:
            dropped["reasoning_length"] += 1
            continue
        if cfg.dedupe:
            # same question, same attempt text: compare the images only then (hashing every image is slow)
            key = (problem.question_with_choices(), " ".join(attempt.response.split()))
            earlier = seen.setdefault(key, [])
            if earlier:
                digest = _image_digest(problem)
                for i, (other, other_digest) in enumerate(earlier):
                    if other_digest is None:
                        earlier[i] = (other, _image_digest(other))
                if any(other_digest == digest for _, other_digest in earlier):
                    dropped["duplicate"] += 1
                    continue
                earlier.append((problem, digest))
            else:
                earlier.append((problem, None))
        candidates.append((problem, attempt))
    candidates = balance_right_wrong(candidates, cfg.right_fraction, cfg.max_examples, cfg.seed, dropped)
    return candidates, dropped


def assemble_rows(cfg: ReflectConfig, candidates, reflections: dict[str, Reflection | str], dropped: Counter):
    """Targets from (attempt, reflection) pairs; a str in `reflections` is a teacher failure reason."""
    rows = []
    for problem, attempt in candidates:
        reflection = reflections.get(problem.id)
        if reflection is None or isinstance(reflection, str):
            dropped["teacher_failed"] += 1
            continue
        if not cfg.min_reflection_chars <= len(reflection.text.strip()) <= cfg.max_reflection_chars:
            dropped["reflection_length"] += 1
            continue
        target = render_target(attempt, reflection.text, reflection.revised_reasoning, problem.answer, cfg.target_shape)
        final = parse_response(target).final_answer or ""
        if not is_correct(final, problem.answer, choices=problem.choices):  # docs/method.md#reflection-data: final answer verified
            dropped["final_answer_unverified"] += 1
            continue
        rows.append((problem, attempt, reflection, target))
    return rows


def build_examples(cfg: ReflectConfig, problems: list[Problem], responses: dict[str, str], teacher: Teacher):
    """Filter (docs/method.md#reflection-data) and reflect with a synchronous teacher; returns (kept rows, Counter of drops)."""
    candidates, dropped = select_candidates(cfg, problems, responses)
    reflections = {problem.id: teacher.reflect(problem, attempt) for problem, attempt in candidates}
    return assemble_rows(cfg, candidates, reflections, dropped), dropped


def balance_right_wrong(candidates, right_fraction, max_examples, seed, dropped):
    """Subsample to the requested right/wrong mix (docs/method.md#reflection-data), keeping as many examples as the mix allows."""
    rng = random.Random(seed)
    right = [c for c in candidates if c[1].correct]
    wrong = [c for c in candidates if not c[1].correct]
    if right_fraction is not None and right and wrong:
        total = min(len(right) / right_fraction if right_fraction > 0 else float("inf"),
                    len(wrong) / (1 - right_fraction) if right_fraction < 1 else float("inf"))
        if max_examples:
            total = min(total, max_examples)
        n_right, n_wrong = round(total * right_fraction), round(total * (1 - right_fraction))
        dropped["mix_right"] += len(right) - min(n_right, len(right))
        dropped["mix_wrong"] += len(wrong) - min(n_wrong, len(wrong))
        right, wrong = rng.sample(right, min(n_right, len(right))), rng.sample(wrong, min(n_wrong, len(wrong)))
    kept = right + wrong
    if max_examples and len(kept) > max_examples:
        dropped["max_examples"] += len(kept) - max_examples
        kept = rng.sample(kept, max_examples)
    rng.shuffle(kept)
    return kept


def reflect_candidates(cfg: ReflectConfig, teacher, candidates, out: Path) -> dict[str, Reflection | str]:
    """Endpoint teacher: replies from `reflections.jsonl`, the missing ones requested (bounded, retried, durable)."""

    store = JsonlStore(out / REFLECTIONS_FILE, fsync=cfg.fsync)
    records = store.load()

    def usable(problem, attempt):
        record = records.get(problem.id)
        if record is None or record.get("attempt") != attempt_key(attempt.response):
            return False
        return record.get("status") == "ok" or not cfg.retry_failed

    todo = [(p, a) for p, a in candidates if not usable(p, a)]
    if records:
        logger.info("teacher: %d of %d replies already in %s; %d to request", len(candidates) - len(todo),
                    len(candidates), store.path, len(todo))
    try:
        reflect_with_store(teacher, todo, store, cfg.concurrency, progress=cfg.progress)
    finally:
        store.close()
    records = store.load()
    result: dict[str, Reflection | str] = {}
    for problem, attempt in candidates:
        record = records.get(problem.id)
        if record is None or record.get("attempt") != attempt_key(attempt.response):
            result[problem.id] = "missing"
        elif record.get("status") == "ok":
            result[problem.id] = Reflection(record["reflection"])
        else:
            result[problem.id] = record.get("reason") or "failed"
    return result


def usage_summary(records: dict[str, dict], price_in: float, price_out: float) -> dict[str, Any]:
    prompt = sum(int((r.get("usage") or {}).get("prompt_tokens") or 0) for r in records.values())
    completion = sum(int((r.get("usage") or {}).get("completion_tokens") or 0) for r in records.values())
    failed = Counter(_reason_kind(r.get("reason", "")) for r in records.values() if r.get("status", "ok") != "ok")
    return {
        "items": len(records),
        "ok": sum(r.get("status", "ok") == "ok" for r in records.values()),
        "failed": sum(failed.values()),
        "failed_reasons": dict(sorted(failed.items())),
        "retries": sum(int(r.get("retries") or 0) for r in records.values()),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "estimated_cost_usd": round(prompt / 1e6 * price_in + completion / 1e6 * price_out, 6),
    }


def _reason_kind(reason: str) -> str:
    """"http 400: long message" -> "http 400"; "timeout after 8 retries" -> "timeout"."""
    kind = reason.split(":")[0].strip()
    return kind.split(" after ")[0] or "failed"


def _public_config(cfg: ReflectConfig) -> dict[str, Any]:
    """The config for summary.json: URLs without user info or query (keys are never in the config itself)."""
    data = asdict(cfg)
    for key in ("policy", "teacher"):
        data[key] = redact_url(data[key])
    return data


def text_digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def store_settings(cfg: ReflectConfig) -> dict[str, dict[str, Any]]:
    """What the items of each store depend on, by store file (no teacher store for a non-endpoint teacher)."""
    settings: dict[str, dict[str, Any]] = {ATTEMPTS_FILE: {
        "policy": redact_url(cfg.policy),
        "system_prompt": text_digest(system_prompt(cfg.system_prompt)) if cfg.system_prompt else None,
        "attempt_temperature": cfg.attempt_temperature,
        "attempt_max_new_tokens": cfg.attempt_max_new_tokens,
    }}
    if is_url(cfg.policy):
        settings[ATTEMPTS_FILE].update(policy_model=cfg.policy_model, policy_extra_body=cfg.policy_extra_body,
                                       image_max_pixels=cfg.image_max_pixels)
    else:
        settings[ATTEMPTS_FILE].update(seed=cfg.seed)  # local sampling is seeded
    if is_url(cfg.teacher):

        settings[REFLECTIONS_FILE] = {
            "teacher": redact_url(cfg.teacher),
            "teacher_model": cfg.teacher_model,
            "teacher_prompt": text_digest(load_teacher_template(cfg.teacher_prompt)),
            "teacher_temperature": cfg.teacher_temperature,
            "teacher_max_tokens": cfg.teacher_max_tokens,
            "teacher_json_mode": cfg.teacher_json_mode,
            "teacher_extra_body": cfg.teacher_extra_body,
            "image_max_pixels": cfg.image_max_pixels,
        }
    return json.loads(json.dumps(settings))  # as they read back from settings.json


def check_settings(cfg: ReflectConfig, out: Path) -> None:
    """Stop before a store gets items made with other settings than those it holds; then record this run's."""
    check_store_settings(store_settings(cfg), out)


def check_store_settings(current: dict[str, dict[str, Any]], out: Path) -> None:
    """`check_settings` for any command's stores: `current` is what each store file's items depend on."""
    path = out / SETTINGS_FILE
    saved: Any = {}
    if path.exists():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:  # UnicodeDecodeError included
            saved = None
        if not isinstance(saved, dict):
            raise InvalidValue(f"{path}: not a JSON object of settings (edited or damaged); delete it to keep the "
                               "stored items as they are")
    for name, settings in current.items():
        old = saved.get(name)
        if old is None or not (out / name).exists():
            continue
        changed = [f"{key}: {old.get(key)!r} -> {settings.get(key)!r}" for key in sorted({*old, *settings})
                   if old.get(key) != settings.get(key)]
        if changed:
            raise SettingsChanged(
                f"{out / name} holds items made with other settings ({'; '.join(changed)}). Use a new --out, delete "
                f"{out / name} to make them again, or delete {path} to keep the stored items as they are.")
    atomic_write_json(path, {**saved, **current})


def load_reflect_problems(cfg: ReflectConfig, teacher: Teacher) -> list[Problem]:
    """The problems to attempt, checked for what would fail only later: no problem at all, an image the local
    policy's processor refuses, the oracle teacher without worked solutions."""
    report = LoadReport()
    problems = load_problems(cfg.problems, limit=cfg.limit, skip_bad=cfg.skip_bad, report=report,
                             columns=cfg.problems_columns)
    if problems and not is_url(cfg.policy):  # an endpoint policy's server checks its images itself

        refused = reject_images(((p.id, p.images) for p in problems), load_processor(cfg.policy), source=cfg.problems,
                                skip_bad=cfg.skip_bad, report=report)
        problems = [p for p in problems if p.id not in refused]
    solutions_used_by = "the oracle teacher writes reflections" if isinstance(teacher, OracleTeacher) else None
    check_usable_problems(problems, cfg.problems, report, solutions_used_by=solutions_used_by,
                          instead="use an endpoint teacher (--teacher URL)")
    return problems


def check_usable_problems(problems: list[Problem], source: str, report: LoadReport, *,
                          solutions_used_by: str | None = None, instead: str = "") -> None:
    """Refuses, before any model loads or request, a run with no problem left after loading, or one whose
    `solutions_used_by` (e.g. "the oracle teacher writes reflections") meets problems without a worked solution;
    `instead` is the other way to run ("use an endpoint teacher (--teacher URL)")."""
    if not problems:
        raise InvalidValue(f"{source}: holds no usable problems ({report.summary()}); pass a file with at least one")
    unsolved = [p.id for p in problems if not p.solution] if solutions_used_by else []
    if unsolved:
        raise InvalidValue(f"{source}: {solutions_used_by} from worked solutions, but {len(unsolved)} problem(s) have "
                           f"no 'solution' (e.g. {', '.join(map(repr, unsolved[:5]))}); add solutions, or {instead}")


def run_reflect(cfg: ReflectConfig, teacher: Teacher | None = None) -> Path:
    check_reflect_config(cfg)
    teacher = teacher or make_teacher(cfg.teacher, cfg)
    problems = load_reflect_problems(cfg, teacher)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    check_settings(cfg, out)
    attempt_records = collect_attempts(cfg, problems, out)
    responses = {pid: r.get("response", "") for pid, r in attempt_records.items() if r.get("status", "ok") == "ok"}
    failed_attempts = {pid: r.get("reason", "failed") for pid, r in attempt_records.items()
                       if r.get("status", "ok") != "ok"}
    candidates, dropped = select_candidates(cfg, problems, responses, failed_attempts)
    teacher_records: dict[str, dict] | None = None
    if hasattr(teacher, "areflect"):
        reflections = reflect_candidates(cfg, teacher, candidates, out)
        teacher_records = JsonlStore(out / REFLECTIONS_FILE).load()
    else:
        reflections = {problem.id: teacher.reflect(problem, attempt) for problem, attempt in candidates}
    rows = assemble_rows(cfg, candidates, reflections, dropped)

    n_right = sum(a.correct for _, a, _, _ in rows)
    valid = [parse_attempt(p, responses[p.id]) for p in problems if p.id in responses]
    valid = [a for a in valid if a is not None]
    summary: dict[str, Any] = {
        "problems": len(problems),
        "kept": len(rows),
        "kept_right": n_right,
        "kept_wrong": len(rows) - n_right,
        "kept_right_fraction": round(n_right / len(rows), 4) if rows else None,
        "attempts_right": sum(a.correct for a in valid),
        "attempts_wrong": sum(not a.correct for a in valid),
        "dropped": {reason: n for reason, n in sorted(dropped.items()) if n},
        "teacher": getattr(teacher, "name", redact_url(cfg.teacher)),
    }
    usage: dict[str, Any] = {}
    if is_url(cfg.policy):
        usage["policy"] = usage_summary(attempt_records, cfg.policy_price_input, cfg.policy_price_output)
    if teacher_records is not None:
        usage["teacher"] = usage_summary(teacher_records, cfg.teacher_price_input, cfg.teacher_price_output)
    if usage:
        summary["usage"] = usage
        summary["estimated_cost_usd"] = round(sum(u["estimated_cost_usd"] for u in usage.values()), 6)
    summary["config"] = _public_config(cfg)
    atomic_write_json(out / "summary.json", summary)
    if not rows:
        raise InvalidValue(f"no example survived filtering ({dict(dropped)}): check the policy's attempts in {out}")

    ds = problems_to_dataset([p for p, *_ in rows])
    ds = ds.add_column("target", [t for *_, t in rows])
    ds = ds.add_column("first_correct", [a.correct for _, a, _, _ in rows])
    ds = ds.add_column("reflection", [r.text for _, _, r, _ in rows])
    replace_dir(out / "dataset", lambda tmp: ds.save_to_disk(str(tmp)))  # a crash never leaves half a dataset
    return out
