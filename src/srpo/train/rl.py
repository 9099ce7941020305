"""Stage 2: reflection-aware GRPO with TRL's GRPOTrainer and the SRPO reward (SPEC §4, §5)."""

from __future__ import annotations

import importlib.util
import logging
import os

import datasets
from accelerate import PartialState
from trl import GRPOConfig, GRPOTrainer

from srpo.config import RLStageConfig
from srpo.data import load_problems, problems_to_dataset, question_with_choices
from srpo.errors import InvalidValue, MissingDependency
from srpo.prompts import system_prompt
from srpo.rewards import completion_text, reward_functions, reward_weights, score_response
from srpo.train.checkpoints import ExactResumeMixin
from srpo.train.common import (
    load_trainable_model,
    load_training_processor,
    lora_config,
    run_stage,
    trainer_precision_args,
    trl_config,
    unusable_items,
)
from srpo.train.output_dir import OutputDir

logger = logging.getLogger(__name__)


class SRPOGRPOTrainer(ExactResumeMixin, GRPOTrainer):
    """GRPOTrainer plus SPEC §5's optional online filter, hooked where whole groups' rewards are first gathered, and
    checkpoints that resume exactly (srpo.train.checkpoints)."""

    def __init__(self, *args, group_accuracy_filter: tuple[float, float] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.group_accuracy_filter = group_accuracy_filter
        names = [getattr(f, "__name__", "") for f in self.reward_funcs]
        self._final_column = names.index("final_correct") if group_accuracy_filter else None

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if self.group_accuracy_filter is None:
            return rewards
        low, high = self.group_accuracy_filter
        groups = rewards.view(-1, self.num_generations, rewards.shape[1])
        accuracy = groups[:, :, self._final_column].mean(dim=1)
        dropped = (accuracy < low) | (accuracy > high)
        # A dropped group gets each term's group mean: zero std, zero advantage, no gradient; logged means unchanged.
        groups[dropped] = groups[dropped].mean(dim=1, keepdim=True).expand_as(groups[dropped])
        self._metrics["train"]["filter/dropped_group_fraction"].append(dropped.float().mean().item())
        return groups.view_as(rewards)


def final_correct_reward(token_count=None):
    """Weight-0 reward column: final-answer correctness, read by the group filter (on whole groups, across ranks)."""

    def final_correct(completions, answer, choices=None, **_):
        choices = choices or [None] * len(completions)
        return [
            float(bool(score_response(completion_text(c), a, preset="paper", token_count=token_count, choices=ch).final_correct))
            for c, a, ch in zip(completions, answer, choices)
        ]

    return final_correct


def build_rl_dataset(cfg: RLStageConfig, processor) -> datasets.Dataset:
    problems = load_problems(cfg.dataset, skip_bad=cfg.skip_bad)
    system = system_prompt(cfg.system_prompt) if cfg.system_prompt else None
    # GRPOTrainer does not truncate prompts, and cutting image tokens crashes the model.
    dropped = unusable_items(((p.id, p.question_with_choices(), p.images) for p in problems), processor, system,
                             cfg.max_prompt_length, source=cfg.dataset,
                             limit_name=f"max_prompt_length={cfg.max_prompt_length}", skip_bad=cfg.skip_bad)
    problems = [p for p in problems if p.id not in dropped]
    if not problems:
        raise InvalidValue(f"{cfg.dataset}: no usable problems left to train on")
    ds = problems_to_dataset(problems)

    def to_row(row):
        prompt = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": question_with_choices(row["question"], row["choices"])}
        ]
        return {"prompt": prompt}

    return ds.map(to_row)


def grpo_args(cfg: RLStageConfig, world_size: int | None = None) -> GRPOConfig:
    """TRL's GRPOConfig from ours. world_size defaults to $WORLD_SIZE (set by `accelerate launch`), else 1."""
    cfg.check()
    if cfg.use_vllm and cfg.load_in_4bit:
        raise InvalidValue("use_vllm: true cannot load the 4-bit (QLoRA) policy's weights; set one of them to false")
    world_size = world_size or int(os.environ.get("WORLD_SIZE", "1"))
    completions_per_step = cfg.prompts_per_step * cfg.num_generations
    per_micro_step = cfg.per_device_train_batch_size * world_size
    if completions_per_step % per_micro_step:
        raise InvalidValue(
            f"prompts_per_step x num_generations = {completions_per_step} must be a multiple of "
            f"per_device_train_batch_size x world size = {per_micro_step}"
        )
    weights = reward_weights(cfg.preset) + ([0.0] if cfg.group_accuracy_filter else [])  # final_correct: read, not rewarded
    unmodeled_defaults = {  # TRL keys we set but do not model: `trainer:` may override them
        # Rollouts come from the policy being trained: no vLLM importance-sampling correction unless asked.
        "vllm_importance_sampling_correction": False,
        # Prompt (image tokens included) + completion; unbounded, vLLM reserves KV cache for the full 128K context.
        "vllm_max_model_length": cfg.max_prompt_length + cfg.max_completion_length,
    }
    return trl_config(GRPOConfig, cfg, dict(
        output_dir=cfg.output_dir,
        num_generations=cfg.num_generations,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=completions_per_step // per_micro_step,
        temperature=cfg.temperature,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        lr_scheduler_kwargs={"min_lr_rate": cfg.min_lr_rate} if cfg.lr_scheduler_type == "cosine_with_min_lr" else None,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio of total steps
        beta=cfg.beta,
        loss_type=cfg.loss_type,
        scale_rewards=cfg.scale_rewards,
        max_completion_length=cfg.max_completion_length,
        reward_weights=weights,
        max_steps=cfg.max_steps,
        num_train_epochs=cfg.num_train_epochs,
        logging_steps=cfg.logging_steps,
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        seed=cfg.seed,
        report_to=cfg.report_to,
        use_vllm=cfg.use_vllm,
        vllm_mode=cfg.vllm_mode,
        vllm_server_base_url=cfg.vllm_server_base_url,
        vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
        vllm_tensor_parallel_size=cfg.vllm_tensor_parallel_size,
        vllm_enable_sleep_mode=cfg.vllm_enable_sleep_mode,
        **trainer_precision_args(cfg),
    ), defaults=unmodeled_defaults)


def check_vllm(cfg: RLStageConfig) -> None:
    if cfg.use_vllm and importlib.util.find_spec("vllm") is None:
        raise MissingDependency(
            f"use_vllm: true (vllm_mode: {cfg.vllm_mode}) needs vLLM in the training environment, in server mode "
            "too (weights are sent to the server over NCCL): `pip install srpo[vllm]` on a CUDA machine, "
            "or set use_vllm: false to generate with transformers"
        )


def build_rl_trainer(cfg: RLStageConfig, args: GRPOConfig | None = None) -> SRPOGRPOTrainer:
    check_vllm(cfg)
    # The arguments first: under DeepSpeed ZeRO-3 they switch on sharded loading (zero.Init) for the model below.
    args = args or grpo_args(cfg)
    processor = load_training_processor(cfg)
    train_dataset = build_rl_dataset(cfg, processor)  # checked before the model loads
    tokenizer = processor.tokenizer

    def token_count(text: str) -> int:  # SPEC §4: lengths in the policy's own tokens
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return SRPOGRPOTrainer(
        model=load_trainable_model(cfg),
        reward_funcs=reward_functions(cfg.preset, token_count=token_count)
        + ([final_correct_reward(token_count)] if cfg.group_accuracy_filter else []),
        args=args,
        train_dataset=train_dataset,
        processing_class=processor,
        peft_config=lora_config(cfg),
        group_accuracy_filter=tuple(cfg.group_accuracy_filter) if cfg.group_accuracy_filter else None,
    )


def run_rl(cfg: RLStageConfig, *, overwrite: bool = False) -> OutputDir:
    """Train, resuming from the newest complete checkpoint in output_dir (a finished run is left as it is)."""
    from srpo.report import plot_training

    check_vllm(cfg)
    run, log_history = run_stage(cfg, grpo_args(cfg), build_rl_trainer, overwrite=overwrite)
    if log_history is not None and PartialState().is_main_process:
        plots = plot_training({run.path.name: log_history}, run.path / "plots")
        logger.info("reward and transition plots: %s", ", ".join(str(p) for p in plots))
    return run
