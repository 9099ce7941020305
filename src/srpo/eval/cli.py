"""`srpo eval`: run an evaluation (`srpo eval --model ... --benchmark ... --out ...`), rescore an official-format
output file (`srpo eval score`), or compare run folders (`srpo eval compare`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from srpo.errors import InvalidValue, MissingPath
from srpo.endpoint import is_url
from srpo.eval.benchmarks import MODES, benchmark_module, rescore
from srpo.eval.driver import EvalConfig, run_eval
from srpo.eval.judge import JudgeConfig
from srpo.eval.report import compare_runs
from srpo.files import atomic_write_json, check_output_file

eval_tools = typer.Typer(help="Rescore output files, compare runs.", pretty_exceptions_enable=False)

JUDGE_URL = typer.Option(None, "--judge-url", help="OpenAI-compatible base URL of the LLM extractor/judge for the "
                         "GPT steps of the official protocols (off by default: rules only).")
JUDGE_MODEL = typer.Option("gpt-4o-2024-11-20", "--judge-model", help="Model name of the judge.")
JUDGE_KEY = typer.Option("OPENAI_API_KEY", "--judge-key-env", help="Environment variable holding the judge's key.")
MODE = typer.Option("official", "--mode", help="official | srpo_compat")


def run_eval_command(cfg: EvalConfig) -> None:
    """`srpo eval --model ... --benchmark ... --out ...`: the run, then its headline metrics."""
    metrics = run_eval(cfg)
    shown = {k: v for k, v in metrics.items() if k not in ("breakdown", "timings")}
    typer.echo(json.dumps(shown, indent=2))
    typer.echo(f"report: {Path(cfg.out) / 'report.md'}")


def score_path(outputs: Path, mode: str, out: Optional[Path]) -> Path:
    name = f"{outputs.stem}_scores_{mode}.json"
    if out is None:
        return outputs.parent / name
    return out if out.suffix == ".json" else out / name


@eval_tools.command("score")
def score_cmd(
    benchmark: str = typer.Option(..., "--benchmark", help="mathvista | mathverse | mathvision | mmmu_pro"),
    outputs: Path = typer.Option(..., "--outputs", help="Official-format output file."),
    mode: str = MODE,
    legacy_int: bool = typer.Option(False, "--legacy-int", help="MathVista: the older integer normaliser."),
    field: Optional[str] = typer.Option(None, help="Field to score (default: the scorer's, e.g. MathVista "
                                        "'extraction', MathVision 'response')."),
    data: Optional[Path] = typer.Option(None, help="MathVision: test.jsonl with the answers (default: $SRPO_DATA_DIR/mathvision/data/test.jsonl)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Score file or folder (default: next to --outputs)."),
    judge_url: Optional[str] = JUDGE_URL,
    judge_model: str = JUDGE_MODEL,
    judge_key_env: str = JUDGE_KEY,
):
    """Rescore an official-format output file; prints the score and writes the score JSON (official shape + mode)."""

    name = benchmark_module(benchmark).NAME
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
    judge = JudgeConfig(base_url=judge_url, model=judge_model, api_key_env=judge_key_env).build()
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


@eval_tools.command("compare")
def compare_cmd(
    runs: list[Path] = typer.Argument(..., help="Run folders written by `srpo eval`."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for compare.md, compare.json (the runs and the "
                                       "paired statistics) and compare.png."),
):
    """Put several evaluation runs side by side (score, reflection metrics, breakdowns), each run paired with the
    first over the items both scored: both right, only A, only B, both wrong, the exact McNemar p-value and a
    bootstrap 95% interval of the accuracy difference."""

    typer.echo(compare_runs(runs, out))
    if out is not None:
        typer.echo(f"files: {out / 'compare.md'}, {out / 'compare.json'}, {out / 'compare.png'}")
