"""`srpo eval`: run an evaluation (`srpo eval --model ... --benchmark ... --out ...`), rescore an official-format
output file (`srpo eval score`), or compare run folders (`srpo eval compare`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from srpo.errors import InvalidValue, MissingPath
from srpo.files import atomic_write_json, check_output_file

eval_app = typer.Typer(help="Evaluate a model on a benchmark, rescore output files, compare runs.",
                       invoke_without_command=True, pretty_exceptions_enable=False)

JUDGE_URL = typer.Option(None, "--judge-url", help="OpenAI-compatible base URL of the LLM extractor/judge for the "
                         "GPT steps of the official protocols (off by default: rules only).")
JUDGE_MODEL = typer.Option("gpt-4o-2024-11-20", "--judge-model", help="Model name of the judge.")
JUDGE_KEY = typer.Option("OPENAI_API_KEY", "--judge-key-env", help="Environment variable holding the judge's key.")
MODE = typer.Option("official", "--mode", help="official | srpo_compat")


def _judge_config(url: Optional[str], model: str, key_env: str):
    from srpo.eval.judge import JudgeConfig

    return JudgeConfig(base_url=url, model=model, api_key_env=key_env)


@eval_app.callback(invoke_without_command=True)
def eval_main(
    ctx: typer.Context,
    model: Optional[str] = typer.Option(None, "--model", help="Checkpoint path / hub id, or an OpenAI-compatible "
                                        "base URL (http://host:port/v1)."),
    benchmark: Optional[str] = typer.Option(None, "--benchmark", help="mathvista | mathverse | mathvision | mmmu_pro "
                                            "(NAME:SPLIT allowed), or a JSONL/Parquet/datasets path in the problem "
                                            "schema."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder (a rerun resumes from its responses)."),
    split: Optional[str] = typer.Option(None, help="mathvista: testmini; mathverse: testmini | testmini_text_only | "
                                        "visualizer_sample; mathvision: test | testmini; mmmu_pro: standard10 | "
                                        "standard4 | vision."),
    data: Optional[str] = typer.Option(None, help="Official folder or file (default: the shared copy), 'hf' for "
                                       "datasets.load_dataset, a datasets save_to_disk folder, or a Parquet file."),
    images: Optional[Path] = typer.Option(None, help="Image folder, when not where the official layout puts it."),
    limit: Optional[int] = typer.Option(None, help="Evaluate only the first N items."),
    prompt: str = typer.Option("reflection", help="System prompt: reflection | plain."),
    max_new_tokens: int = typer.Option(4096, help="Greedy decoding budget (paper: 4096)."),
    batch_size: int = typer.Option(8, help="Local generation batch size."),
    backend: str = typer.Option("auto", help="auto | local | openai | vllm (auto: URL -> openai; vLLM if installed "
                                "with a GPU; else local)."),
    served_model: Optional[str] = typer.Option(None, help="Model name at the endpoint (default: the first listed)."),
    api_key_env: str = typer.Option("OPENAI_API_KEY", help="Environment variable with the endpoint's key."),
    concurrency: int = typer.Option(8, help="Parallel requests to the endpoint."),
    tokenizer: Optional[str] = typer.Option(None, help="Tokenizer for response lengths with an endpoint (default: "
                                            "words)."),
    mode: str = MODE,
    legacy_int: bool = typer.Option(False, "--legacy-int", help="MathVista: the older integer normaliser."),
    judge_url: Optional[str] = JUDGE_URL,
    judge_model: str = JUDGE_MODEL,
    judge_key_env: str = JUDGE_KEY,
    overwrite: bool = typer.Option(False, help="Discard saved responses in --out."),
    progress: bool = typer.Option(True, help="Progress bar."),
):
    """Evaluate a model: generation, official scoring, reflection metrics, report. See docs/evaluation.md."""
    if ctx.invoked_subcommand is not None:
        return
    if not (model and benchmark and out):
        if model or benchmark or out:
            lacking = [name for name, value in (("--model", model), ("--benchmark", benchmark), ("--out", out))
                       if not value]
            raise InvalidValue(f"--model, --benchmark and --out are all required; add {' and '.join(lacking)}")
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
    from srpo.eval.driver import EvalConfig, run_eval

    cfg = EvalConfig(model=model, benchmark=benchmark, out=str(out), split=split, data=data,
                     images=str(images) if images else None, limit=limit, prompt=prompt, max_new_tokens=max_new_tokens,
                     batch_size=batch_size, backend=backend, served_model=served_model, api_key_env=api_key_env,
                     concurrency=concurrency, tokenizer=tokenizer, mode=mode, legacy_int=legacy_int,
                     judge=_judge_config(judge_url, judge_model, judge_key_env), overwrite=overwrite, progress=progress)
    metrics = run_eval(cfg)
    shown = {k: v for k, v in metrics.items() if k not in ("breakdown", "timings")}
    typer.echo(json.dumps(shown, indent=2))
    typer.echo(f"report: {out / 'report.md'}")


def score_path(outputs: Path, mode: str, out: Optional[Path]) -> Path:
    name = f"{outputs.stem}_scores_{mode}.json"
    if out is None:
        return outputs.parent / name
    return out if out.suffix == ".json" else out / name


@eval_app.command("score")
def score_cmd(
    benchmark: str = typer.Option(..., "--benchmark", help="mathvista | mathverse | mathvision | mmmu_pro"),
    outputs: Path = typer.Option(..., "--outputs", help="Official-format output file."),
    mode: str = MODE,
    legacy_int: bool = typer.Option(False, "--legacy-int", help="MathVista: the older integer normaliser."),
    field: Optional[str] = typer.Option(None, help="Field to score (default: the scorer's, e.g. MathVista "
                                        "'extraction', MathVision 'response')."),
    data: Optional[Path] = typer.Option(None, help="MathVision: test.jsonl with the answers (default: shared copy)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Score file or folder (default: next to --outputs)."),
    judge_url: Optional[str] = JUDGE_URL,
    judge_model: str = JUDGE_MODEL,
    judge_key_env: str = JUDGE_KEY,
):
    """Rescore an official-format output file; prints the score and writes the score JSON (official shape + mode)."""
    from srpo.eval.endpoint import is_url
    from srpo.eval.scoring import MODES, get_scorer, rescore

    name = get_scorer(benchmark).BENCHMARK
    if not outputs.exists():
        raise MissingPath(f"--outputs {outputs} does not exist; pass the output file to rescore")
    if not outputs.is_file():
        raise InvalidValue(f"--outputs {outputs} is a folder; pass the output file to rescore")
    if mode not in MODES:
        raise InvalidValue(f"--mode {mode!r} is not a scoring mode; use one of {list(MODES)}")
    if legacy_int and name != "mathvista":
        raise InvalidValue("--legacy-int applies to mathvista only; drop it")
    if data is not None and name != "mathvision":
        raise InvalidValue("--data applies to mathvision only (the other output files carry their answers); drop it")
    if judge_url is not None and not is_url(judge_url):
        raise InvalidValue(f"--judge-url {judge_url!r} is not an http(s) URL; pass the judge's OpenAI-compatible "
                           "base URL (https://host/v1)")
    path = check_output_file(score_path(outputs, mode, out), "score file (--out)")
    judge = _judge_config(judge_url, judge_model, judge_key_env).build()
    options: dict = {"judge": judge}
    if field is not None:
        options["field"] = field
    if name == "mathvista":
        options["legacy_int"] = legacy_int
    if data is not None:
        options["data"] = data
    result = rescore(name, outputs, mode=mode, **options)
    scoring = {"mode": result.mode, "benchmark": name, "outputs": str(outputs), "n": result.n,
               "correct": result.correct, "accuracy": result.accuracy, "unparsed": result.unparsed,
               "options": result.options, "judge": judge.describe() if judge is not None else None}
    atomic_write_json(path, {**result.to_official_json(), "scoring": scoring})
    typer.echo(f"{name} {result.mode}: {result.correct}/{result.n} = {result.accuracy:.2f}% "
               f"(unparsed {result.unparsed})")
    typer.echo(f"scores: {path}")


@eval_app.command("compare")
def compare_cmd(
    runs: list[Path] = typer.Argument(..., help="Run folders written by `srpo eval`."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for compare.md and compare.png."),
):
    """Put several evaluation runs side by side (score, reflection metrics, breakdowns)."""
    from srpo.eval.report import compare_runs

    typer.echo(compare_runs(runs, out))
