"""Stage 1: SFT on reasoning + reflection targets with TRL's SFTTrainer (SPEC §3.5).

Rows become prompt/completion pairs, so TRL's collator puts the loss on the assistant completion only (the
system prompt, question and image tokens are masked).
"""

from __future__ import annotations

import logging
from pathlib import Path

import datasets
from trl import SFTConfig, SFTTrainer

from srpo.config import SFTStageConfig
from srpo.data import question_with_choices
from srpo.errors import InvalidValue, MissingPath
from srpo.prompts import system_prompt
from srpo.train.common import (
    last_checkpoint,
    load_trainable_policy,
    lora_config,
    save_final,
    trainer_precision_args,
)

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("question", "images", "target")


def load_sft_dataset(path: str | Path, system: str | None) -> datasets.Dataset:
    """A reflection dataset written by `srpo reflect` (or any datasets dir with question/images/target)."""
    path = Path(path)
    if (path / "dataset").is_dir():
        path = path / "dataset"
    if not path.exists():
        raise MissingPath(f"SFT dataset {path} not found: run `srpo reflect` first or point `dataset` at one")
    ds = datasets.load_from_disk(str(path))
    missing = [c for c in REQUIRED_COLUMNS if c not in ds.column_names]
    if missing:
        raise InvalidValue(f"SFT dataset {path}: missing column(s) {missing}; it has {ds.column_names}")
    return ds.map(
        lambda row: to_prompt_completion(row, system),
        remove_columns=[c for c in ds.column_names if c != "images"],
    )


def to_prompt_completion(row: dict, system: str | None) -> dict:
    prompt = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": question_with_choices(row["question"], row.get("choices"))}
    ]
    return {"prompt": prompt, "completion": [{"role": "assistant", "content": row["target"]}]}


def sft_args(cfg: SFTStageConfig) -> SFTConfig:
    """TRL's SFTConfig from ours (the global batch is per_device_train_batch_size x gradient_accumulation_steps x
    the number of processes)."""
    return SFTConfig(
        output_dir=cfg.output_dir,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio of total steps
        max_length=cfg.max_length,
        logging_steps=cfg.logging_steps,
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        seed=cfg.seed,
        report_to=cfg.report_to,
        completion_only_loss=True,  # SPEC §3.5: loss on assistant tokens only
        remove_unused_columns=False,  # the vision collator needs the raw `images` column
        dataset_kwargs={"skip_prepare_dataset": True},  # VLM rows are processed by the collator
        **trainer_precision_args(cfg),
        **cfg.trainer,
    )


def build_sft_trainer(cfg: SFTStageConfig) -> SFTTrainer:
    # The arguments first: under DeepSpeed ZeRO-3 they switch on sharded loading (zero.Init) for the model below.
    args = sft_args(cfg)
    model, processor = load_trainable_policy(cfg)
    train_dataset = load_sft_dataset(cfg.dataset, system_prompt(cfg.system_prompt) if cfg.system_prompt else None)
    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        processing_class=processor,
        peft_config=lora_config(cfg),
    )


def run_sft(cfg: SFTStageConfig) -> Path:
    """Train, resuming from the newest checkpoint in output_dir; returns the final model directory."""
    trainer = build_sft_trainer(cfg)
    trainer.train(resume_from_checkpoint=last_checkpoint(cfg.output_dir))
    return save_final(trainer, Path(cfg.output_dir) / "final")
