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

REQUIRED_COLUMNS = ("question", "images", "target")


class SRPOSFTTrainer(ExactResumeMixin, SFTTrainer):
    """TRL's SFTTrainer whose checkpoints resume exactly (srpo.train.checkpoints)."""


def load_sft_dataset(path: str | Path, system: str | None, processor=None, max_length: int | None = None, *,
                     skip_bad: bool = False) -> datasets.Dataset:
    """A reflection dataset written by `srpo reflect` (or any datasets dir with question/images/target).

    With a processor and max_length, rows the model cannot take are refused by id (or dropped with skip_bad): images
    the processor refuses, and prompts that alone fill max_length (TRL truncates rows to max_length, which leaves
    no completion to learn from and cuts image tokens, crashing the model)."""
    path = Path(path)
    if (path / "dataset").is_dir():
        path = path / "dataset"
    if not path.exists():
        raise MissingPath(f"SFT dataset {path} not found: run `srpo reflect` first or point `dataset` at one")
    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise InvalidValue(f"SFT dataset {path} is not a folder written by datasets' save_to_disk ({exc}); point "
                           "`dataset` at the output of `srpo reflect`") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in ds.column_names]
    if missing:
        raise InvalidValue(f"SFT dataset {path}: missing column(s) {missing}; it has {ds.column_names}")
    if processor is not None and max_length is not None:
        ids = ds["id"] if "id" in ds.column_names else [f"row {i}" for i in range(len(ds))]
        items = ((item_id, question_with_choices(row["question"], row.get("choices")), row["images"])
                 for item_id, row in zip(ids, ds))
        dropped = unusable_items(items, processor, system, max_length - 1, source=str(path),
                                 limit_name=f"max_length={max_length}", skip_bad=skip_bad)
        if dropped:
            ds = ds.select([i for i, item_id in enumerate(ids) if item_id not in dropped])
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
    cfg.check()
    return trl_config(SFTConfig, cfg, dict(
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
    ))


def build_sft_trainer(cfg: SFTStageConfig, args: SFTConfig | None = None) -> SRPOSFTTrainer:
    # The arguments first: under DeepSpeed ZeRO-3 they switch on sharded loading (zero.Init) for the model below.
    args = args or sft_args(cfg)
    processor = load_training_processor(cfg)
    system = system_prompt(cfg.system_prompt) if cfg.system_prompt else None
    # checked before the model loads
    train_dataset = load_sft_dataset(cfg.dataset, system, processor, args.max_length, skip_bad=cfg.skip_bad)
    return SRPOSFTTrainer(
        model=load_trainable_model(cfg),
        args=args,
        train_dataset=train_dataset,
        processing_class=processor,
        peft_config=lora_config(cfg),
    )


def run_sft(cfg: SFTStageConfig, *, overwrite: bool = False) -> OutputDir:
    """Train, resuming from the newest complete checkpoint in output_dir (a finished run is left as it is)."""
    run, _ = run_stage(cfg, sft_args(cfg), build_sft_trainer, overwrite=overwrite)
    return run
