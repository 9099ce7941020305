"""Stage 2: reflection-aware GRPO with TRL's GRPOTrainer and the SRPO reward (docs/method.md#rewards, #grpo)."""

from __future__ import annotations

import importlib.util
import logging

import datasets
import torch
from accelerate import PartialState
from trl import GRPOTrainer

from srpo.config import SRPOGRPOConfig
from srpo.data import problem_dataset
from srpo.errors import InvalidValue, MissingDependency
from srpo.prompts import system_prompt
from srpo.models import token_counter
from srpo.perception_judge import judge_from_config
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


# Losses that average over sequences (per micro-batch, each 1/gradient_accumulation_steps of an update) vs. over the
# generation batch's tokens (TRL's num_items_in_batch): they need different corrections for dropped groups.
SEQUENCE_MEAN_LOSSES = ("grpo", "sapo", "luspo", "dr_grpo")
TOKEN_MEAN_LOSSES = ("dapo", "cispo", "vespo")


def undiluted_scales(kept: list[torch.Tensor], tokens: list[torch.Tensor], loss_type: str, accumulation: int,
                     total=lambda t: t) -> list[float]:
    """One advantage scale per micro-batch of a generation batch, so that dropped groups do not dilute the kept ones
    (docs/method.md#online-filter): with it, each optimizer update's loss is that of its kept sequences alone.
    `kept` / `tokens`: per micro-batch, each sequence's kept flag and loss-token count; `total` sums a tensor over
    all processes. The policy loss is linear in the advantage, so scaling it scales that sequence's loss term."""
    def all_over_kept(indices, weights) -> float:
        counts = total(torch.stack([sum(weights[i].sum() for i in indices),
                                    sum((weights[i] * kept[i]).sum() for i in indices)]).float())
        return (counts[0] / counts[1]).item() if counts[1] > 0 else 1.0

    if loss_type in SEQUENCE_MEAN_LOSSES:  # an update averages its sequences' losses: all / kept, per update
        ones = [torch.ones_like(k, dtype=torch.float) for k in kept]
        return [all_over_kept(range(i - i % accumulation, min(i - i % accumulation + accumulation, len(kept))), ones)
                for i in range(len(kept))]
    if loss_type in TOKEN_MEAN_LOSSES:  # every update divides by the generation batch's loss tokens: all / kept
        return [all_over_kept(range(len(kept)), tokens)] * len(kept)
    raise ValueError(f"the online filter has no undiluted form for loss_type {loss_type!r}")


class SRPOGRPOTrainer(ExactResumeMixin, GRPOTrainer):
    """GRPOTrainer plus, where whole groups' rewards are first gathered, terms missing for some samples filled with
    their group's mean and the optional online filter (docs/method.md#online-filter), the latter also hooked where
    a generation batch is split into micro-batches, and checkpoints that resume exactly (srpo.train.checkpoints)."""

    def __init__(self, *args, group_accuracy_filter: tuple[float, float] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.group_accuracy_filter = group_accuracy_filter
        self._final_column = len(self.reward_funcs) - 1  # reward_functions(final_correct_column=True) puts it last
        self._kept = None  # this process's kept flags of the generation batch being scored

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if rewards.isnan().any():
            # A term that is None (NaN) for some samples of a group (a failed judgement under judge_failure: skip)
            # gets the group's mean of that term: TRL would count it as 0 in the sum; this way the sample's advantage
            # ignores the term (docs/method.md#perception). A term None for the whole group (no facts) stays None.
            groups = rewards.view(-1, self.num_generations, rewards.shape[1])
            missing = groups.isnan()
            fill = groups.nanmean(dim=1, keepdim=True).expand_as(groups)
            groups[missing & ~fill.isnan()] = fill[missing & ~fill.isnan()]
        if self.group_accuracy_filter is None:
            return rewards
        low, high = self.group_accuracy_filter
        groups = rewards.view(-1, self.num_generations, rewards.shape[1])
        accuracy = groups[:, :, self._final_column].mean(dim=1)
        dropped = (accuracy < low) | (accuracy > high)
        # A dropped group gets each term's group mean: zero std, zero advantage, no gradient; logged means unchanged.
        groups[dropped] = groups[dropped].mean(dim=1, keepdim=True).expand_as(groups[dropped])
        self._metrics["train"]["filter/dropped_group_fraction"].append(dropped.float().mean().item())
        start = self.accelerator.process_index * len(prompts)  # rewards cover all processes; keep this one's slice
        self._kept = (~dropped).repeat_interleave(self.num_generations)[start:start + len(prompts)]
        return groups.view_as(rewards)

    def _generate_single_turn(self, *args, **kwargs):
        # A sampled image/video placeholder token is read as an image slot when prompt + completion is scored: "image
        # features and image tokens do not match". TRL suppresses it only in transformers generation (vLLM samples
        # it; a user's suppress_tokens replaces TRL's), so a completion ends there, with EOS in its place.
        completion_ids, logprobs = super()._generate_single_turn(*args, **kwargs)
        placeholders = {self._image_pad_token_id, self._video_pad_token_id} - {None}
        for i, ids in enumerate(completion_ids):
            hit = next((j for j, token in enumerate(ids) if token in placeholders), None)
            if hit is not None:
                completion_ids[i] = [*ids[:hit], self.eos_token_ids[0]]
                if logprobs is not None:
                    logprobs[i] = logprobs[i][:hit + 1]
        return completion_ids, logprobs

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if self._kept is not None:
            output["kept"], self._kept = self._kept, None  # travels with its sequences through TRL's shuffle and split
        return output

    def _prepare_inputs(self, generation_batch):
        inputs = super()._prepare_inputs(generation_batch)
        if "kept" in inputs and not self.model.training:
            inputs.pop("kept")
        elif "kept" in inputs:  # a new generation batch was just split into micro-batches
            self._undilute(self._buffered_inputs)
        return inputs

    def _undilute(self, batches: list[dict]) -> None:
        """Scale the kept sequences' advantages in a generation batch's micro-batches (undiluted_scales)."""
        tokens = [(b["completion_mask"] * b.get("tool_mask", 1)).sum(dim=1) for b in batches]
        kept = [b.pop("kept") for b in batches]
        scales = undiluted_scales(kept, tokens, self.loss_type, self.args.gradient_accumulation_steps,
                                  total=lambda t: self.accelerator.reduce(t, "sum"))
        for batch, keep, scale in zip(batches, kept, scales):
            batch["advantages"] = torch.where(keep, batch["advantages"] * scale, batch["advantages"])


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
                                      final_correct_column=cfg.group_accuracy_filter is not None,
                                      judge=judge_from_config(cfg), perception_weight=cfg.perception_weight,
                                      group_size=cfg.num_generations, length_targets=tuple(cfg.length_targets)),
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
