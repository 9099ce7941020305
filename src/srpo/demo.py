"""`srpo demo`: the whole method end to end on a tiny model, offline, on a laptop CPU.

build tiny VLM -> synthetic problems -> pre-train a weak solver (stand-in for an instruct model) -> stage 1
(attempts -> oracle reflections -> SFT) -> stage 2 (SRPO GRPO) [-> plain GRPO, Perception-R1 and SRPO+Perception
with --compare, the perception reward judged by the oracle] -> evaluate every stage on held-out problems ->
metrics.json, report.md, plots, explorer pages. Each finished step is kept on disk; a rerun of the same
command continues where it stopped.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from srpo.config import ReflectConfig, SRPOGRPOConfig, SRPOSFTConfig, option
from srpo.data import load_problems, problems_to_dataset, write_synthetic
from srpo.eval.driver import EvalConfig, run_eval
from srpo.eval.paired import paired_summary, wilson_interval
from srpo.eval.report import PAIRED_NOTE, load_run, paired_rows, paired_table, reflection_table
from srpo.eval.view import write_view
from srpo.errors import InvalidValue
from srpo.format import render_response
from srpo.models import TinyModelSpec, build_tiny_model
from srpo.reflect.build import run_reflect
from srpo.rewards import TRANSITIONS
from srpo.report import plot_accuracy_per_stage, plot_transitions
from srpo.train.callbacks import load_log_history, plot_training, reward_history
from srpo.train.rl import run_rl
from srpo.train.sft import run_sft


# --compare: run name -> reward preset (docs/method.md#rewards, #perception)
COMPARE_METHODS = {"grpo": "grpo", "reference": "reference", "perception": "perception",
                   "srpo_perception": "srpo+perception"}
METHOD_TITLES = {"paper": "SRPO GRPO", "grpo": "plain GRPO", "reference": "SRPO GRPO, released code's",
                 "perception": "Perception-R1 GRPO", "srpo+perception": "SRPO+Perception GRPO"}

QUICK = {
    "n_train": 600,
    "n_test": 60,
    "pretrain_steps": 60,
    "reflect_problems": 120,
    "sft_steps": 50,
    "rl_steps": 6,
}


@dataclass
class DemoConfig:
    """`srpo demo`'s settings: every field is a flag (`srpo demo --seed 1 --compare`), or a key of `--config FILE`."""

    out: str = option("runs/demo", "Output folder (a rerun of the same command resumes).")
    seed: int = option(0, "Seed for data, model and training.")
    compare: bool = option(False, "Also train the compare_methods from the same stage-1 start.")
    compare_methods: list[str] = option(list(COMPARE_METHODS), "Reward presets --compare trains beside SRPO's "
                                        f"paper preset, each from the stage-1 model: any of {list(COMPARE_METHODS)}; "
                                        "the perception presets' judge is the oracle (exact synthetic visual facts).")
    quick: bool = option(False, f"Smaller run (about 3 minutes on 2 CPU cores): {QUICK}.")
    n_train: int = option(3000, "Synthetic training problems.")
    n_test: int = option(1000, "Held-out problems (1,000: a 3-point paired difference is measurable).")
    families: list[str] = option(["shape_color", "count_shapes", "compare_lengths"], "Synthetic task families a "
                                 "tiny vision tower trained from scratch learns in minutes on a CPU (level 0).")
    difficulty: list[int] = option([0], "Synthetic difficulty levels.")
    image_size: int = option(56, "Image side in pixels.")
    reflection_system_prompt: str = option("sft", "System prompt of every reflective stage: the tiny model cannot "
                                           "read instructions, so one short prompt keeps its inputs consistent (real "
                                           "runs use the SFT prompt for SFT and the reflection prompt for RL and "
                                           "evaluation).")
    freeze_vision: bool = option(False, "Freeze the vision tower in stage-1 SFT. Off: the tiny model's tower is "
                                 "trained from scratch (real recipes freeze it); RL always freezes it, as the paper "
                                 "does: noisy policy gradients would erode what it has learned to see.")
    pretrain_steps: int = option(200, "Steps of the weak base solver's pre-training.")
    pretrain_lr: float = option(1e-3, "Its learning rate.")
    reflect_problems: int = option(1200, "Reflection SFT rows.")
    sft_steps: int = option(900, "Stage-1 SFT steps (900: the second answer learns to see; the first stays weak).")
    sft_lr: float = option(1e-3, "Stage-1 learning rate.")
    rl_steps: int = option(28, "Stage-2 GRPO generation batches, each trained in updates_per_generation optimizer "
                           "updates (28 keeps the demo within 15 minutes; 40 moved the first answer further: "
                           "docs/method.md#demo-findings).")
    rl_lr: float = option(1e-4, "Stage-2 peak learning rate, decayed as the paper does (cosine to a tenth): a constant "
                          "rate let the final answer slip (docs/method.md#demo-findings).")
    prompts_per_step: int = option(16, "GRPO prompts per generation batch.")
    updates_per_generation: int = option(4, "Optimizer updates per generation batch (the paper makes 8 of 1,024 "
                                         "samples): 4 moved the first answer twice as far as 1 at about the same "
                                         "cost (docs/method.md#demo-findings).")
    num_generations: int = option(8, "GRPO group size.")
    max_completion_length: int = option(128, "GRPO completion length.")
    length_targets: list[float] = option([4.0, 5.0], "T_target and T_max of the length term in multiples of T0 (paper "
                                         "2.0 and 2.5): the demo's five-block tags and one-sentence reflection "
                                         "already make 3 T0 (docs/method.md#demo-findings).")
    batch_size: int = option(16, "Batch size of SFT and of the stage-1 attempts.")
    eval_batch_size: int = option(32, "Batch size of the held-out evaluations (the same verdicts as 16, in 60% of the "
                                  "time).")
    eval_max_new_tokens: int = option(128, "Generation length of attempts and evaluation.")


def check_demo_config(cfg: DemoConfig) -> None:
    if cfg.updates_per_generation < 1 or (cfg.prompts_per_step * cfg.num_generations) % cfg.updates_per_generation:
        raise InvalidValue(f"updates_per_generation: {cfg.updates_per_generation} must be at least 1 and divide "
                           f"prompts_per_step x num_generations = {cfg.prompts_per_step * cfg.num_generations}")
    unknown = [name for name in cfg.compare_methods if name not in COMPARE_METHODS]
    if unknown:
        raise InvalidValue(f"compare_methods: unknown {unknown}; choose from {list(COMPARE_METHODS)}")


def demo_config(quick: bool = False, **overrides) -> DemoConfig:
    """The demo's settings in code (`srpo demo --quick ...` on the command line)."""
    return replace(DemoConfig(quick=quick), **{**(QUICK if quick else {}), **overrides})


def pretrain_target(problem) -> str:
    """A single-round answer: the weak solver's style before any reflection training."""
    return f"<think>{problem.solution}</think> <answer>$\\boxed{{{problem.answer}}}$</answer>"


def run_demo(cfg: DemoConfig) -> dict:
    check_demo_config(cfg)
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
    rl_runs = {"stage2": "paper"} | ({name: COMPARE_METHODS[name] for name in cfg.compare_methods} if cfg.compare else {})
    for name, preset in rl_runs.items():
        run_dir = out / name
        step(
            f"stage 2: {METHOD_TITLES[preset]} ({preset} reward)",
            run_dir / "final" / "config.json",
            lambda run_dir=run_dir, preset=preset: run_rl(_rl_config(cfg, stage1_dir / "final", data_dir, run_dir, preset)),
        )

    models = {"base": base_dir / "final", "stage1": stage1_dir / "final"}
    models |= {name: out / name / "final" for name in rl_runs}
    stages = {}
    for name, path in models.items():
        eval_dir = out / "eval" / name
        if not (eval_dir / "metrics.json").exists():  # the held-out file is a benchmark like any other
            print(f"[srpo demo] evaluating {name} ...")
            run_eval(EvalConfig(
                model=str(path), benchmark=str(data_dir / "test.jsonl"), out=str(eval_dir),
                prompt="attempt" if name == "base" else cfg.reflection_system_prompt,
                max_new_tokens=cfg.eval_max_new_tokens, batch_size=cfg.eval_batch_size, backend="local",
            ))
        stages[name] = json.loads((eval_dir / "metrics.json").read_text())

    logs = {name: load_log_history(out / name) for name in rl_runs}
    plots = out / "plots"
    plot_training(logs, plots)
    plot_accuracy_per_stage(stages, plots / "accuracy_per_stage.png")
    plot_transitions(stages, plots / "transitions.png")
    # each compared method against SRPO on the same held-out items (docs/method.md#paired-statistics)
    compared = [name for name in rl_runs if name != "stage2"]
    paired = paired_rows(["stage2", *compared], [load_run(out / "eval" / name) for name in ["stage2", *compared]]
                         ) if compared else []
    # explorer pages (docs/view.md): each eval folder has its own; these show what a stage fixed and broke
    views = {f"stage1_vs_{name}": write_view([out / "eval" / "stage1", out / "eval" / name],
                                             out / "views" / f"stage1_vs_{name}.html") for name in rl_runs}
    verdicts = {name: _verdicts(out / "eval" / name) for name in models}
    for name, stage in stages.items():
        stage["intervals95"] = _intervals(verdicts[name])
    # docs/method.md#paired-statistics: what stage 2 changed over stage 1, and each method against SRPO
    pairs = [("stage1", name) for name in rl_runs] + [("stage2", name) for name in compared]
    paired_answers = {f"{a}_vs_{b}": {answer: paired_summary({i: v[answer] for i, v in verdicts[a].items()},
                                                             {i: v[answer] for i, v in verdicts[b].items()})
                                      for answer in ("first", "final")} for a, b in pairs}
    metrics = {
        "stages": stages,
        "paired": paired_answers,
        "length_term": {name: _length_term_statistics(log) for name, log in logs.items()},
        "gain_stage2_over_base_points": round(100 * (stages["stage2"]["final_accuracy"] - stages["base"]["final_accuracy"]), 1),
        "paired_vs_stage2": paired,
        "views": {name: str(path.relative_to(out)) for name, path in views.items()},
        "logged_reward_terms": sorted({k for log in logs.values() for k in reward_history(log)}),
        "timings_s": timings,
        "config": asdict(cfg),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out / "report.md").write_text(_report(cfg, stages, metrics))
    print("\n" + reflection_table(stages, "stage"))
    if paired:
        print("\n" + paired_table(paired))
    print(f"\nstage 2 vs base: {metrics['gain_stage2_over_base_points']:+.1f} points (final-answer accuracy)")
    print(f"files: {out}/metrics.json, {out}/report.md, {plots}/*.png")
    return metrics


def _verdicts(eval_dir: Path) -> dict[str, dict]:
    """Item id -> first / final answer right and the transition, from an eval folder's items.jsonl."""
    rows = map(json.loads, (eval_dir / "items.jsonl").read_text().splitlines())
    return {row["id"]: {"first": bool(row["first_correct"]), "final": bool(row["final_correct"]),
                        "transition": row["transition"]} for row in rows}


def _intervals(verdicts: dict[str, dict]) -> dict[str, list[float]]:
    """Wilson 95% intervals of first / final accuracy and of the four transition rates (fractions of all items)."""
    n = len(verdicts)
    counts = {"first_accuracy": sum(v["first"] for v in verdicts.values()),
              "final_accuracy": sum(v["final"] for v in verdicts.values())}
    counts |= {t: sum(v["transition"] == t for v in verdicts.values()) for t in TRANSITIONS}
    return {name: list(wilson_interval(count, n)) for name, count in counts.items()}


def _length_term_statistics(log: list[dict]) -> dict[str, float | None]:
    """f_len over training (logged per step by the reward): its mean and within-group spread, first and last step."""
    steps = [h for h in log if "length/f_len_mean" in h]
    if not steps:
        return {"steps": 0}
    spread = [h["length/f_len_group_std"] for h in steps if "length/f_len_group_std" in h]
    return {"steps": len(steps), "f_len_mean": sum(h["length/f_len_mean"] for h in steps) / len(steps),
            "f_len_mean_first": steps[0]["length/f_len_mean"], "f_len_mean_last": steps[-1]["length/f_len_mean"],
            "f_len_group_std": sum(spread) / len(spread) if spread else None}


def _sft_config(cfg, model, dataset, output_dir, steps, lr, *, system_prompt, freeze_vision) -> SRPOSFTConfig:
    return SRPOSFTConfig(
        model_name_or_path=str(model), dataset=str(dataset), output_dir=str(output_dir), max_steps=steps,
        learning_rate=lr, per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=1,
        warmup_steps=0.05, logging_steps=10, save_steps=max(steps, 1), max_length=1024, report_to=[], seed=cfg.seed,
        system_prompt=system_prompt, freeze_vision=freeze_vision, disable_tqdm=False, save_only_model=True,
    )


def _rl_config(cfg, model, data_dir, output_dir, preset) -> SRPOGRPOConfig:
    update = cfg.prompts_per_step * cfg.num_generations // cfg.updates_per_generation  # sequences per update
    steps = cfg.rl_steps * cfg.updates_per_generation  # TRL counts optimizer updates
    return SRPOGRPOConfig(
        model_name_or_path=str(model), dataset=str(data_dir / "train.jsonl"), output_dir=str(output_dir),
        preset=preset,
        num_generations=cfg.num_generations, prompts_per_generation=cfg.prompts_per_step,
        optimizer_batch_size=update, per_device_train_batch_size=update, temperature=1.0,
        adam_beta2=0.999,  # the demo's tuned setting (the paper's 0.95 is for real runs)
        learning_rate=cfg.rl_lr, max_steps=steps, max_completion_length=cfg.max_completion_length,
        max_prompt_length=1024, logging_steps=1, save_steps=max(steps // 2, 1), report_to=[],
        seed=cfg.seed, warmup_steps=0,  # the config's cosine decay to a tenth, as the paper's
        system_prompt=cfg.reflection_system_prompt, freeze_vision=True,
        judge="oracle" if "perception" in preset else "", length_targets=cfg.length_targets,
    )


def _paired_answers_section(paired: dict) -> str:
    """First and final answers of each pair of runs on the same held-out items: accuracies, the difference with its
    bootstrap 95% interval, and the exact McNemar p-value (docs/method.md#paired-statistics)."""
    rows = []
    for pair, answers in paired.items():
        a, b = pair.split("_vs_")
        for answer, r in answers.items():
            low, high = r["difference_ci95"] or (float("nan"), float("nan"))
            rows.append(f"| {a} -> {b} | {answer} | {100 * r['accuracy_a']:.1f} | {100 * r['accuracy_b']:.1f} | "
                        f"{-100 * r['difference']:+.1f} [{-100 * high:+.1f}, {-100 * low:+.1f}] | "
                        f"{r['only_a']} / {r['only_b']} | {r['mcnemar_p']:.3g} |")
    return ("| runs A -> B | answer | A % | B % | B - A, points [95% CI] | only A / only B right | McNemar p |\n"
            "|---|---|---|---|---|---|---|\n" + "\n".join(rows))


def _paired_section(rows: list[dict]) -> str:
    if not rows:
        return ""
    return f"""
## Paired: each compared method against stage 2 (SRPO)

{PAIRED_NOTE}

{paired_table(rows)}
"""


def _report(cfg: DemoConfig, stages: dict, metrics: dict) -> str:
    example = render_response("I count 3 red circles.", "$\\boxed{3}$", "I missed one circle in the corner.",
                              "There are 4 red circles.", "$\\boxed{4}$")
    return f"""# srpo demo report

Tiny Qwen2.5-VL trained offline on synthetic visual reasoning problems ({cfg.n_train} train, {cfg.n_test} held-out),
seed {cfg.seed}. Stages: a weak base solver (pre-trained briefly), stage 1 (reflection SFT on oracle-teacher
reflections), stage 2 (SRPO GRPO, `paper` reward){_compared_methods(cfg)}.

## Held-out results

{reflection_table(stages, "stage")}

Stage 2 vs base: **{metrics['gain_stage2_over_base_points']:+.1f} points** of final-answer accuracy.
Transition rates are fractions of all held-out problems; they sum to the reflection rate.

## What each stage-2 method changed, item by item

{_paired_answers_section(metrics['paired'])}
{_paired_section(metrics['paired_vs_stage2'])}
![accuracy](plots/accuracy_per_stage.png)
![transitions](plots/transitions.png)

## Training curves

![reward terms](plots/reward_terms.png)
![transitions over steps](plots/transitions_over_steps.png)

Logged per step: {', '.join(metrics['logged_reward_terms'])}.

Length term f_len (1 at T_target = {cfg.length_targets[0]:g} T0, e^-1 at T_max = {cfg.length_targets[1]:g} T0; \
docs/method.md#demo-findings), over training: {_length_line(metrics['length_term'])}.

## Response shape

`{example}`

## Explore the responses

Each stage's held-out run has its own page (`eval/<stage>/view.html`); these compare stage 1 with each stage-2
method item by item (what RL fixed and broke): {', '.join(f"[{name}]({path})" for name, path in metrics['views'].items())}.

Timings (s): {json.dumps(metrics['timings_s'])}
"""


def _length_line(length_term: dict) -> str:
    runs = [f"{name} mean {v['f_len_mean']:.2f}, within-group spread {v['f_len_group_std']:.2f}"
            for name, v in length_term.items() if v.get("steps") and v.get("f_len_group_std") is not None]
    return "; ".join(runs) or "no run with a length term"


def _compared_methods(cfg: DemoConfig) -> str:
    if not cfg.compare:
        return ""
    methods = ", ".join(f"{METHOD_TITLES[COMPARE_METHODS[name]]} (`{COMPARE_METHODS[name]}` reward)"
                        for name in cfg.compare_methods)
    return f", and from the same stage-1 start {methods}; the perception reward is judged by the oracle"
