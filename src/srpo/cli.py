"""`srpo` command line: one command per stage; each reads a config and calls one function."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer
from typer.core import TyperGroup

from srpo.errors import UserError

try:  # typer >= 0.2x ships its own copy of click
    from typer._click.exceptions import UsageError
except ImportError:
    from click.exceptions import UsageError


class _Commands(TyperGroup):
    """Every command, `srpo eval ...` included: a `UserError` (bad config, data, path, endpoint) is printed in one line
    with exit code 2; anything else keeps its traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except UsageError as exc:  # a bad or missing option: one line too, with the command it belongs to
            command = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            typer.echo(f"error: {command}: {exc.format_message()} (see `{command} --help`)", err=True)
            raise typer.Exit(2) from None


app = typer.Typer(help="SRPO: reflection-aware RL for multimodal LLMs, on TRL.", no_args_is_help=True,
                  pretty_exceptions_enable=False, cls=_Commands)


@app.callback()
def main() -> None:
    """Show srpo's own progress messages (resuming, skipped rows, ...) on stderr."""
    logger = logging.getLogger("srpo")
    if not any(isinstance(h, _CurrentStderrHandler) for h in logger.handlers):  # once per process
        handler = _CurrentStderrHandler()
        handler.setFormatter(logging.Formatter("[srpo] %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (test runners swap it between commands)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


CONFIG_COMMAND = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def _parse(cls, ctx: typer.Context, defaults: dict | None = None):
    """`cls` from the command's `--config FILE` and `--key value` arguments (srpo.config.parse_config); `--help` lists
    every key with its help text and default."""
    from srpo.config import config_help, parse_config

    if "--help" in ctx.args or "-h" in ctx.args:
        typer.echo(f"{ctx.command.help}\n\n{config_help(cls, ctx.command_path)}")
        raise typer.Exit(0)
    return parse_config(cls, ctx.args, defaults)


@app.command(context_settings=CONFIG_COMMAND)
def demo(ctx: typer.Context):
    """The whole method end to end on a tiny offline model: data, SFT, SRPO GRPO, evaluation, report.

    Keys: --quick (about 3 minutes on 2 CPU cores), --compare (also plain GRPO from the same stage-1 start), --seed,
    --out (a rerun resumes), and every DemoConfig field (--help lists them)."""
    from srpo.demo import QUICK, DemoConfig, run_demo

    run_demo(_parse(DemoConfig, ctx, QUICK if "--quick" in ctx.args else None))


@app.command("eval", context_settings=CONFIG_COMMAND)
def eval_(ctx: typer.Context):
    """Evaluate a model: generation, official scoring, reflection metrics, report (docs/evaluation.md).

    srpo eval --model MODEL_OR_URL --benchmark NAME[:SPLIT] --out DIR [--key value ...] (--help lists every key);
    srpo eval score --benchmark NAME --outputs FILE rescores an official-format output file;
    srpo eval compare RUN_DIR... puts evaluation runs side by side."""
    from srpo.eval.cli import eval_tools, run_eval_command
    from srpo.eval.driver import EvalConfig

    if not ctx.args:
        ctx.args.append("--help")
    if ctx.args[0] in ("score", "compare"):
        typer.main.get_command(eval_tools).main(ctx.args, prog_name="srpo eval", standalone_mode=False)
        return
    run_eval_command(_parse(EvalConfig, ctx))


OVERWRITE = typer.Option(False, "--overwrite", help="Delete output_dir's checkpoints and final/ and start again "
                         "(needed to reuse an output_dir with other settings).")


DRY_RUN = typer.Option(False, "--dry-run", help="Print the resolved TRL config and the batch arithmetic as JSON, "
                       "and exit without loading a model.")
WORLD_SIZE = typer.Option(None, "--world-size", help="With --dry-run: the number of processes to resolve for "
                          "(default: this launch's).")


def _dry_run(cfg, world_size: int | None) -> None:
    import json

    from srpo.config import batch_arithmetic, config_values, launched_processes

    typer.echo(json.dumps({"config": config_values(cfg), "batch": batch_arithmetic(cfg, world_size or
                                                                                    launched_processes())}, indent=2))


def _parse_training(cls, ctx: typer.Context, world_size: int | None):
    """A training config; resolved for `world_size` processes when given (a dry run on one machine)."""
    from srpo import config

    config.ASSUMED_PROCESSES = world_size
    try:
        return _parse(cls, ctx)
    finally:
        config.ASSUMED_PROCESSES = None


def _report_run(run) -> None:
    if run.finished:
        typer.echo(f"already finished: the final model is in {run.final} (nothing was changed; raise max_steps to "
                   "train further, or use a new output_dir or --overwrite to train again)")
    else:
        typer.echo(f"final model: {run.final}")


def _train(cls, run, ctx: typer.Context, overwrite: bool, dry_run: bool, world_size: int | None) -> None:
    cfg = _parse_training(cls, ctx, world_size if dry_run else None)
    if dry_run:
        return _dry_run(cfg, world_size)
    _report_run(run(cfg, overwrite=overwrite))


@app.command(context_settings=CONFIG_COMMAND)
def sft(ctx: typer.Context, overwrite: bool = OVERWRITE, dry_run: bool = DRY_RUN, world_size: int = WORLD_SIZE):
    """Stage 1: SFT on reasoning + reflection (TRL's SFTTrainer).

    srpo sft --config recipes/qwen2_5_vl_7b/sft.yaml [--key value ...]: every TRL SFTConfig key and srpo's own
    (--help lists them). Rerun with the same output_dir to resume; its config.yaml records the run's settings;
    --overwrite deletes its checkpoints and final/ and starts again; --dry-run [--world-size N] prints the resolved
    config and batch arithmetic and exits."""
    from srpo.config import SRPOSFTConfig
    from srpo.train.sft import run_sft

    _train(SRPOSFTConfig, run_sft, ctx, overwrite, dry_run, world_size)


@app.command(context_settings=CONFIG_COMMAND)
def rl(ctx: typer.Context, overwrite: bool = OVERWRITE, dry_run: bool = DRY_RUN, world_size: int = WORLD_SIZE):
    """Stage 2: reflection-aware GRPO (TRL's GRPOTrainer, SRPO reward).

    srpo rl --config recipes/qwen2_5_vl_7b/rl.yaml [--key value ...]: every TRL GRPOConfig key and srpo's own
    (--help lists them). Rerun with the same output_dir to resume; its config.yaml records the run's settings;
    --overwrite deletes its checkpoints and final/ and starts again; --dry-run [--world-size N] prints the resolved
    config and batch arithmetic and exits."""
    from srpo.config import SRPOGRPOConfig
    from srpo.train.rl import run_rl

    _train(SRPOGRPOConfig, run_rl, ctx, overwrite, dry_run, world_size)


@app.command(context_settings=CONFIG_COMMAND)
def reflect(ctx: typer.Context):
    """Stage 1 data: policy attempts, teacher reflections, filtering -> SFT dataset.

    srpo reflect --problems FILE --policy MODEL_OR_URL --teacher URL --teacher_model NAME --out DIR

    --policy: a local model path, or the http(s) URL of an OpenAI-compatible server (--policy_model NAME).
    --teacher: oracle, or the http(s) URL of an OpenAI-compatible server; its API key is read from the environment
    variable named by --teacher_api_key_env (default OPENAI_API_KEY). --help lists every key; --config FILE reads
    them from YAML. Rerun with the same --out to resume. See docs/teacher.md."""
    from srpo.config import ReflectConfig
    from srpo.reflect.build import run_reflect

    out = run_reflect(_parse(ReflectConfig, ctx))
    typer.echo((out / "summary.json").read_text())


@app.command(context_settings=CONFIG_COMMAND)
def annotate(ctx: typer.Context):
    """Visual facts for a problem file (the perception reward's annotations), through an OpenAI-compatible endpoint.

    srpo annotate --problems FILE --url URL --model NAME --out DIR [--source solution|cot] [--key value ...]

    The facts are extracted from each problem's worked solution, or (--source cot) from a chain of thought the
    endpoint (or --cot_url) writes first, kept only when its answer verifies (--verify_cot). The API key is read from
    the environment variable named by --api_key_env (default OPENAI_API_KEY). --help lists every key; --config FILE
    reads them from YAML. Rerun with the same --out to resume. See docs/annotate.md."""
    from srpo.config import AnnotateConfig
    from srpo.reflect.annotate import run_annotate

    out = run_annotate(_parse(AnnotateConfig, ctx))
    typer.echo((out / "summary.json").read_text())


@app.command()
def plot(
    runs: list[Path] = typer.Argument(..., help="`srpo rl` output_dir(s); several are drawn side by side."),
    out: Path = typer.Option(Path("plots"), help="Folder for the PNGs."),
):
    """Reward terms and reflection transitions over training steps, from the runs' newest checkpoints."""
    from srpo.train.callbacks import load_log_history, plot_training

    from srpo.files import check_output_dir

    check_output_dir(out, "--out")
    names = [run.resolve().name for run in runs]
    if len(set(names)) < len(names):  # the same folder name twice: tell them apart by path
        names = [str(run) for run in runs]
    logs = {name: load_log_history(run) for name, run in zip(names, runs)}
    for path in plot_training(logs, out):
        typer.echo(str(path))


@app.command()
def view(
    runs: list[Path] = typer.Argument(..., help="An `srpo eval --out` folder, two of them (compared), or an `srpo rl` "
                                     "output_dir."),
    out: Path = typer.Option(None, help="The HTML file (default: RUN_DIR/view.html)."),
):
    """A self-contained HTML page to explore a run: each item's image, first attempt, reflection and final answer,
    with filters; two eval runs side by side with their paired statistics; a training run's completions by step."""
    from srpo.eval.view import write_view

    from srpo.files import check_output_file

    if out is not None:
        check_output_file(out, "--out")
    typer.echo(str(write_view(runs, out)))


@app.command("build-tiny-model")
def build_tiny_model_cmd(
    out: Path = typer.Argument(..., help="Directory for the checkpoint (new or empty)."),
    force: bool = typer.Option(False, "--force", help="Replace OUT even if it is not empty (its contents are deleted)."),
    processor: Path = typer.Option(
        None, "--processor", help="A real checkpoint or processor folder (with config.json), e.g. the small files of "
        "Qwen/Qwen2.5-VL-7B-Instruct: keep its tokenizer, chat template, image-processor settings and vocabulary size."),
):
    """Build a tiny random Qwen2.5-VL (config, tokenizer, processor) offline."""
    from srpo.files import OutputPathError, check_output_dir
    from srpo.models import build_tiny_model

    check_output_dir(out, "OUT")
    if Path.cwd().resolve().is_relative_to(out.resolve()):  # OUT is replaced whole: never the folder we stand in
        raise OutputPathError(f"OUT {out} is the current folder or holds it; pass a new folder, e.g. {out / 'tiny-model'}")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputPathError(f"OUT {out} is not empty; pass a new folder, or --force to replace it (its contents are deleted)")
    build_tiny_model(out, processor_dir=processor)  # a bad --processor folder fails before OUT is touched
    typer.echo(f"tiny model written to {out}" + (f" (processor of {processor})" if processor else ""))


@app.command()
def synth(
    out: Path = typer.Argument(..., help="Directory for train.jsonl, test.jsonl and images (new or empty)."),
    n_train: int = typer.Option(1000, help="Training problems (0 or more)."),
    n_test: int = typer.Option(200, help="Test problems (0 or more)."),
    seed: int = typer.Option(0),
    force: bool = typer.Option(False, "--force", help="Replace OUT even if it is not empty (its contents are deleted)."),
):
    """Generate synthetic visual reasoning problems (exact answers, worked solutions)."""
    from srpo.data import write_synthetic
    from srpo.errors import InvalidValue
    from srpo.files import OutputPathError, check_output_dir

    for flag, n in (("--n-train", n_train), ("--n-test", n_test)):
        if n < 0:
            raise InvalidValue(f"{flag} {n}: the number of problems must be 0 or more")
    check_output_dir(out, "OUT")
    if Path.cwd().resolve().is_relative_to(out.resolve()):  # OUT is replaced whole: never the folder we stand in
        raise OutputPathError(f"OUT {out} is the current folder or holds it; pass a new folder, e.g. {out / 'synthetic'}")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputPathError(f"OUT {out} is not empty; pass a new folder, or --force to replace it (its contents are deleted)")
    paths = write_synthetic(out, n_train=n_train, n_test=n_test, seed=seed)
    typer.echo(f"wrote {paths}")


@app.command()
def score(
    response: str = typer.Argument(..., help="A model response (five-block format)."),
    solution: str = typer.Argument(..., help="The reference answer."),
    preset: str = typer.Option("paper", help="paper | reference | grpo | perception | srpo+perception"),
    facts: str = typer.Option("", help="Visual facts for the perception presets: a JSON list of strings, or a file "
                              "holding one."),
    judge: str = typer.Option("oracle", help="Judge of the facts: oracle, or an OpenAI-compatible base URL."),
    judge_model: str = typer.Option("", help="Model name at the judge URL; empty = the server's only model."),
    judge_api_key_env: str = typer.Option("", help="Environment variable holding the judge's API key."),
    judge_prompt: str = typer.Option("", help="Judge prompt template file; empty = srpo's own."),
):
    """Score one response with the SRPO reward and print every term (with --facts, perception and repetition)."""
    from dataclasses import asdict
    import asyncio
    import json

    from srpo.errors import InvalidValue
    from srpo.perception_judge import build_judge
    from srpo.rewards import PERCEPTION_PRESETS, score_response

    if not solution.strip():
        raise InvalidValue("SOLUTION: the reference answer is empty, so every response would score as wrong; pass the "
                           "problem's answer, e.g. srpo score \"<think>...</think> <answer>3</answer>\" 3")
    if facts and preset not in PERCEPTION_PRESETS:
        raise InvalidValue(f"--facts: preset {preset!r} has no perception term; pass --preset perception or "
                           "srpo+perception")
    fact_list = _read_facts(facts) if facts else None
    marks = visual_score = None
    if fact_list:
        scorer = build_judge(judge, model=judge_model, api_key_env=judge_api_key_env, prompt=judge_prompt or None,
                             max_retries=1)

        async def judged():
            try:
                return await scorer.score([fact_list], [response])
            finally:
                await scorer.aclose()

        batch = asyncio.run(judged())
        if batch.health.failures:
            raise InvalidValue(f"--judge {judge}: the judgement failed (see the warning above); check the judge")
        marks, visual_score = batch.marks[0], batch.scores[0]
    breakdown = score_response(response, solution, preset=preset, visual_score=visual_score)
    out = asdict(breakdown) | ({"visual_facts": fact_list, "visual_marks": marks} if fact_list else {})
    typer.echo(json.dumps(out, indent=2))


def _read_facts(value: str) -> list[str]:
    """--facts: a JSON list of strings, or a file holding one."""
    import json

    from srpo.errors import InvalidValue

    path = Path(value)
    where = "--facts"
    if not value.lstrip().startswith("[") and path.is_file():
        value, where = path.read_text(encoding="utf-8"), f"--facts {path}"
    try:
        facts = json.loads(value)
    except json.JSONDecodeError:
        facts = None
    if not isinstance(facts, list) or not all(isinstance(f, str) and f.strip() for f in facts):
        raise InvalidValue(f"{where}: expected a JSON list of non-empty strings, e.g. '[\"AB = 3\", \"the circle is "
                           "red\"]', or a file holding one")
    return facts


if __name__ == "__main__":
    app()
