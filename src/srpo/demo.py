"""`srpo demo`: the whole method end to end on a tiny model, offline, on a laptop CPU.

build tiny VLM -> synthetic problems -> pre-train a weak solver (stand-in for an instruct model) -> stage 1
(attempts -> oracle reflections -> SFT) -> stage 2 (SRPO GRPO) [-> plain GRPO with --compare] -> evaluate every
stage on held-out problems -> metrics.json, report.md, plots. Each finished step is kept on disk; a rerun of the same
command continues where it stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from srpo.config import ReflectConfig, RLStageConfig, SFTStageConfig
from srpo.data import load_problems, problems_to_dataset, write_synthetic
from srpo.eval.local import evaluate_problems
from srpo.format import render_response
from srpo.models import TinyModelSpec, build_tiny_model
from srpo.reflect.build import run_reflect
from srpo.report import (
    load_log_history,
    plot_accuracy_per_stage,
    plot_training,
    plot_transitions,
    reward_history,
    stage_table,
)
from srpo.train.rl import run_rl
from srpo.train.sft import run_sft


@dataclass
class DemoConfig:
    out: str = "runs/demo"
    seed: int = 0
    compare: bool = False
    n_train: int = 3000
    n_test: int = 200
    # Tasks a tiny vision tower trained from scratch learns in minutes on a CPU (data/synthetic.py, level 0).
    families: tuple[str, ...] = ("shape_color", "count_shapes", "compare_lengths")
    difficulty: tuple[int, ...] = (0,)
    image_size: int = 56
    # The tiny model cannot read instructions: one short system prompt for every reflective stage keeps its inputs
    # consistent (real runs use the SFT prompt for SFT and the reflection prompt for RL and evaluation).
    reflection_system_prompt: str = "sft"
    # Its vision tower is trained from scratch, so it stays trainable in SFT (real recipes freeze it, SPEC §3); RL
    # freezes it as SPEC §5 does: noisy policy gradients would erode what it has learned to see.
    freeze_vision: bool = False
    pretrain_steps: int = 200
    pretrain_lr: float = 1e-3
    reflect_problems: int = 1200
    sft_steps: int = 300
    sft_lr: float = 1e-3
    rl_steps: int = 30
    rl_lr: float = 2e-5
    prompts_per_step: int = 16
    num_generations: int = 8
    max_completion_length: int = 128
    batch_size: int = 16
    eval_max_new_tokens: int = 128


QUICK = {
    "n_train": 600,
    "n_test": 60,
    "pretrain_steps": 60,
    "reflect_problems": 120,
    "sft_steps": 50,
    "rl_steps": 6,
}


def demo_config(quick: bool = False, **overrides) -> DemoConfig:
    return replace(DemoConfig(), **{**(QUICK if quick else {}), **overrides})


def pretrain_target(problem) -> str:
    """A single-round answer: the weak solver's style before any reflection training."""
    return f"<think>{problem.solution}</think> <answer>$\\boxed{{{problem.answer}}}$</answer>"


def run_demo(cfg: DemoConfig) -> dict:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    timings: dict[str, float] = {}

    def step(name: str, done: Path, fn):
        if done.exists():
            print(f"[srpo demo] {name}: already done ({done})")
            return
        print(f"[srpo demo] {name} ...")
        start = time.perf_counter()
        fn()
        timings[name] = round(time.perf_counter() - start, 1)

    init_dir, data_dir = out / "models" / "init", out / "data"
    step("build tiny model", init_dir / "config.json", lambda: build_tiny_model(init_dir, TinyModelSpec(seed=cfg.seed)))
    step(
        "generate synthetic problems",
        data_dir / "test.jsonl",
        lambda: write_synthetic(data_dir, n_train=cfg.n_train, n_test=cfg.n_test, seed=cfg.seed,
                                families=cfg.families, difficulty=cfg.difficulty, image_size=cfg.image_size),
    )
    train = load_problems(data_dir / "train.jsonl")
    test = load_problems(data_dir / "test.jsonl")

    base_dir = out / "base"

    def pretrain():
        ds = problems_to_dataset(train).add_column("target", [pretrain_target(p) for p in train])
        ds.save_to_disk(str(out / "pretrain_data" / "dataset"))
        run_sft(_sft_config(cfg, init_dir, out / "pretrain_data", base_dir, cfg.pretrain_steps, cfg.pretrain_lr,
                            system_prompt="attempt", freeze_vision=False))

    step("pre-train the weak base solver", base_dir / "final" / "config.json", pretrain)

    reflect_dir = out / "reflect"
    reflect_problems = data_dir / "train.jsonl"
    step(
        "stage 1: attempts + oracle reflections",
        reflect_dir / "dataset",
        lambda: run_reflect(
            ReflectConfig(
                problems=str(reflect_problems),
                policy=str(base_dir / "final"),
                out=str(reflect_dir),
                teacher="oracle",
                attempt_max_new_tokens=cfg.eval_max_new_tokens,
                batch_size=cfg.batch_size,
                max_examples=cfg.reflect_problems,
                target_shape="five_block",  # a tiny model cannot read the prompt: show it the five-block shape
                limit=cfg.reflect_problems * 2,
                seed=cfg.seed,
            ),
        ),
    )
    stage1_dir = out / "stage1"
    step(
        "stage 1: reflection SFT",
        stage1_dir / "final" / "config.json",
        lambda: run_sft(_sft_config(cfg, base_dir / "final", reflect_dir, stage1_dir, cfg.sft_steps, cfg.sft_lr,
                                    system_prompt=cfg.reflection_system_prompt, freeze_vision=cfg.freeze_vision)),
    )
    rl_runs = {"stage2": "paper"} | ({"grpo": "grpo"} if cfg.compare else {})
    for name, preset in rl_runs.items():
        run_dir = out / name
        step(
            f"stage 2: {'SRPO' if preset == 'paper' else 'plain'} GRPO ({preset} reward)",
            run_dir / "final" / "config.json",
            lambda run_dir=run_dir, preset=preset: run_rl(_rl_config(cfg, stage1_dir / "final", data_dir, run_dir, preset)),
        )

    models = {"base": base_dir / "final", "stage1": stage1_dir / "final"}
    models |= {name: out / name / "final" for name in rl_runs}
    stages = {}
    for name, path in models.items():
        eval_dir = out / "eval" / name
        if not (eval_dir / "metrics.json").exists():
            evaluate_problems(
                path, test, prompt="attempt" if name == "base" else cfg.reflection_system_prompt,
                max_new_tokens=cfg.eval_max_new_tokens, batch_size=cfg.batch_size, out_dir=eval_dir,
                desc=f"evaluating {name}",
            )
        stages[name] = json.loads((eval_dir / "metrics.json").read_text())

    logs = {name: load_log_history(out / name) for name in rl_runs}
    plots = out / "plots"
    plot_training(logs, plots)
    plot_accuracy_per_stage(stages, plots / "accuracy_per_stage.png")
    plot_transitions(stages, plots / "transitions.png")
    metrics = {
        "stages": stages,
        "gain_stage2_over_base_points": round(100 * (stages["stage2"]["final_accuracy"] - stages["base"]["final_accuracy"]), 1),
        "logged_reward_terms": sorted({k for log in logs.values() for k in reward_history(log)}),
        "timings_s": timings,
        "config": asdict(cfg),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out / "report.md").write_text(_report(cfg, stages, metrics))
    print("\n" + stage_table(stages))
    print(f"\nstage 2 vs base: {metrics['gain_stage2_over_base_points']:+.1f} points (final-answer accuracy)")
    print(f"files: {out}/metrics.json, {out}/report.md, {plots}/*.png")
    return metrics


def _sft_config(cfg, model, dataset, output_dir, steps, lr, *, system_prompt, freeze_vision) -> SFTStageConfig:
    return SFTStageConfig(
        model=str(model), dataset=str(dataset), output_dir=str(output_dir), max_steps=steps, learning_rate=lr,
        per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=1, warmup_ratio=0.05,
        logging_steps=10, save_steps=max(steps, 1), max_length=1024, report_to=[], seed=cfg.seed,
        system_prompt=system_prompt, freeze_vision=freeze_vision,
        trainer={"disable_tqdm": False, "save_only_model": True},
    )


def _rl_config(cfg, model, data_dir, output_dir, preset) -> RLStageConfig:
    return RLStageConfig(
        model=str(model), dataset=str(data_dir / "train.jsonl"), output_dir=str(output_dir), preset=preset,
        num_generations=cfg.num_generations, prompts_per_step=cfg.prompts_per_step,
        per_device_train_batch_size=cfg.prompts_per_step * cfg.num_generations, temperature=1.0,
        learning_rate=cfg.rl_lr, max_steps=cfg.rl_steps, max_completion_length=cfg.max_completion_length,
        max_prompt_length=1024, logging_steps=1, save_steps=max(cfg.rl_steps // 2, 1), report_to=[],
        seed=cfg.seed, lr_scheduler_type="constant", warmup_ratio=0.0,
        system_prompt=cfg.reflection_system_prompt, freeze_vision=True,
    )


def _report(cfg: DemoConfig, stages: dict, metrics: dict) -> str:
    example = render_response("I count 3 red circles.", "$\\boxed{3}$", "I missed one circle in the corner.",
                              "There are 4 red circles.", "$\\boxed{4}$")
    return f"""# srpo demo report

Tiny Qwen2.5-VL trained offline on synthetic visual reasoning problems ({cfg.n_train} train, {cfg.n_test} held-out),
seed {cfg.seed}. Stages: a weak base solver (pre-trained briefly), stage 1 (reflection SFT on oracle-teacher
reflections), stage 2 (SRPO GRPO, `paper` reward){', and plain GRPO (`grpo` reward) from the same stage-1 start' if cfg.compare else ''}.

## Held-out results

{stage_table(stages)}

Stage 2 vs base: **{metrics['gain_stage2_over_base_points']:+.1f} points** of final-answer accuracy.
Transition rates are fractions of all held-out problems; they sum to the reflection rate.

![accuracy](plots/accuracy_per_stage.png)
![transitions](plots/transitions.png)

## Training curves

![reward terms](plots/reward_terms.png)
![transitions over steps](plots/transitions_over_steps.png)

Logged per step: {', '.join(metrics['logged_reward_terms'])}.

## Response shape

`{example}`

Timings (s): {json.dumps(metrics['timings_s'])}
"""
