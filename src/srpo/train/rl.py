"""Stage 2: reflection-aware GRPO with TRL's GRPOTrainer and the SRPO reward (docs/method.md#rewards, #grpo)."""

from __future__ import annotations

import importlib.util
import logging

import datasets
from accelerate import PartialState
from trl import GRPOTrainer

from srpo.config import SRPOGRPOConfig
from srpo.data import problem_dataset
from srpo.errors import InvalidValue, MissingDependency
from srpo.prompts import system_prompt
from srpo.models import token_counter
from srpo.rewards import reward_functions
from srpo.train.callbacks import PlotTrainingCallback
from srpo.train.checkpoints import ExactResumeMixin
from srpo.train.common import (
    load_trainable_model,
    load_training_processor,
    lora_config,
    run_stage,
)
from srpo.train.output_dir import OutputDir
from srpo.train.training_data import resized_for, usable_rows

logger = logging.getLogger(__name__)


class SRPOGRPOTrainer(ExactResumeMixin, GRPOTrainer):
    """GRPOTrainer plus the optional online filter (docs/method.md#online-filter), hooked where whole groups' rewards
    are first gathered, and checkpoints that resume exactly (srpo.train.checkpoints)."""

    def __init__(self, *args, group_accuracy_filter: tuple[float, float] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.group_accuracy_filter = group_accuracy_filter
        self._final_column = len(self.reward_funcs) - 1  # reward_functions(final_correct_column=True) puts it last

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


def build_rl_dataset(cfg: SRPOGRPOConfig, processor) -> datasets.Dataset:
    """The problems of cfg.dataset as GRPOTrainer reads them: a `prompt` column, images decoded on access, and only
    the rows a batch can take (srpo.train.training_data), built once per node."""
    system = system_prompt(cfg.system_prompt) if cfg.system_prompt else None
    with PartialState().local_main_process_first():  # the others reuse the node's cached table
        problems = problem_dataset(cfg.dataset, columns=cfg.dataset_columns)
    # GRPOTrainer does not truncate prompts, and cutting image tokens crashes the model.
    ds = usable_rows(problems, processor, system, cfg.max_prompt_length, source=cfg.dataset,
                     limit_name=f"max_prompt_length={cfg.max_prompt_length}", skip_bad=cfg.skip_bad)
    if len(ds) == 0:
        raise InvalidValue(f"{cfg.dataset}: no usable problems left to train on")
    return ds.with_transform(resized_for(processor))  # on access: the trainer's and vLLM's pixels are the same


def check_vllm(cfg: SRPOGRPOConfig) -> None:
    if cfg.use_vllm and importlib.util.find_spec("vllm") is None:
        raise MissingDependency(
            f"use_vllm: true (vllm_mode: {cfg.vllm_mode}) needs vLLM in the training environment, in server mode "
            "too (weights are sent to the server over NCCL): `pip install srpo[vllm]` on a CUDA machine, "
            "or set use_vllm: false to generate with transformers"
        )


def build_rl_trainer(cfg: SRPOGRPOConfig) -> SRPOGRPOTrainer:
    """The trainer for cfg (itself TRL's GRPOConfig: built before the model, so under DeepSpeed ZeRO-3 it switches on
    sharded loading, zero.Init, for the model below)."""
    check_vllm(cfg)
    processor = load_training_processor(cfg)
    train_dataset = build_rl_dataset(cfg, processor)  # checked before the model loads
    token_count = token_counter(processor.tokenizer)  # docs/method.md#rewards: lengths in the policy's own tokens
    return SRPOGRPOTrainer(
        model=load_trainable_model(cfg),
        reward_funcs=reward_functions(cfg.preset, token_count=token_count,
                                      final_correct_column=cfg.group_accuracy_filter is not None),
        args=cfg,
        train_dataset=train_dataset,
        processing_class=processor,
        peft_config=lora_config(cfg),
        group_accuracy_filter=tuple(cfg.group_accuracy_filter) if cfg.group_accuracy_filter else None,
        callbacks=[PlotTrainingCallback()],
    )


def run_rl(cfg: SRPOGRPOConfig, *, overwrite: bool = False) -> OutputDir:
    """Train, resuming from the newest complete checkpoint in output_dir (a finished run is left as it is)."""
    check_vllm(cfg)
    return run_stage(cfg, build_rl_trainer, overwrite=overwrite)
