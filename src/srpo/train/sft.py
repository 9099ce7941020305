"""Stage 1: SFT on reasoning + reflection targets with TRL's SFTTrainer (docs/method.md#reflection-sft).

Rows become prompt/completion pairs, so TRL's collator puts the loss on the assistant completion only (the
system prompt, question and image tokens are masked); srpo also masks what the chat template puts after the
completion's end-of-turn token.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import datasets
from accelerate import PartialState
from trl import SFTTrainer

from srpo.config import SRPOSFTConfig
from srpo.data import load_split, rename_columns, split_spec
from srpo.errors import InvalidValue, MissingPath
from srpo.prompts import system_prompt
from srpo.train.checkpoints import ExactResumeMixin
from srpo.train.common import (
    load_trainable_model,
    load_training_processor,
    lora_config,
    run_stage,
)
from srpo.train.output_dir import OutputDir
from srpo.train.training_data import usable_rows

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("question", "images", "target")


class SRPOSFTTrainer(ExactResumeMixin, SFTTrainer):
    """TRL's SFTTrainer whose checkpoints resume exactly (srpo.train.checkpoints) and whose labels end at the
    completion's end-of-turn token."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.data_collator = LabelsEndAtTurnEnd(self.data_collator, end_of_turn_id(self.processing_class))


def end_of_turn_id(processing_class) -> int:
    """The token that closes an assistant turn: Qwen's `<|im_end|>`, else the tokenizer's eos."""
    tokenizer = getattr(processing_class, "tokenizer", processing_class)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    return im_end if isinstance(im_end, int) and im_end != tokenizer.unk_token_id else tokenizer.eos_token_id


class LabelsEndAtTurnEnd:
    """TRL's prompt-completion collator also trains the template's text after `<|im_end|>` (Qwen's "\n"), which
    the model never generates at inference (generation stops at `<|im_end|>`): mask it (docs/method.md#reflection-sft)."""

    def __init__(self, collator, end_id: int) -> None:
        self.collator, self.end_id = collator, end_id

    def __call__(self, examples):
        batch = self.collator(examples)
        labels = batch["labels"]
        is_end = (labels == self.end_id).int()
        labels[(is_end.cumsum(dim=1) - is_end) > 0] = -100  # strictly after a row's first end-of-turn label
        return batch


def load_sft_dataset(path: str | Path, system: str | None, processor, max_length: int | None, *,
                     skip_bad: bool = False, columns: Mapping[str, str] | None = None) -> datasets.Dataset:
    """A reflection dataset written by `srpo reflect`, or any dataset with question/images/target columns: a datasets
    folder, or NAME@SPLIT for `datasets.load_dataset`; `columns` maps srpo's fields to differently named columns.

    Rows the model cannot take are refused by id (or dropped with skip_bad): unreadable images, images the processor
    refuses, and prompts that alone fill max_length (TRL truncates rows to max_length, which leaves no completion to
    learn from and cuts image tokens, crashing the model)."""
    spec = split_spec(path)
    if spec is not None:
        ds, source = load_split(*spec), str(path)
    else:
        ds, source = _saved_sft_dataset(Path(path))
    ds = rename_columns(ds, columns, source)
    missing = [c for c in REQUIRED_COLUMNS if c not in ds.column_names]
    if missing:
        raise InvalidValue(f"SFT dataset {source}: missing column(s) {missing}; it has {ds.column_names}")
    ds = usable_rows(ds, processor, system, max_length - 1 if max_length else None, source=source,
                     limit_name=f"max_length={max_length}", skip_bad=skip_bad)
    with PartialState().local_main_process_first():  # the others reuse the node's cached result
        return ds.map(_completion, input_columns=["target"],
                      remove_columns=[c for c in ds.column_names if c not in ("images", "prompt")])


def _saved_sft_dataset(path: Path) -> tuple[datasets.Dataset, str]:
    if (path / "dataset").is_dir():
        path = path / "dataset"
    if not path.exists():
        raise MissingPath(f"SFT dataset {path} not found: run `srpo reflect` first or point `dataset` at one")
    try:
        return datasets.load_from_disk(str(path)), str(path)
    except (FileNotFoundError, ValueError) as exc:
        raise InvalidValue(f"SFT dataset {path} is not a folder written by datasets' save_to_disk ({exc}); point "
                           "`dataset` at the output of `srpo reflect`") from None


def _completion(target: str) -> dict:
    return {"completion": [{"role": "assistant", "content": target}]}


def build_sft_trainer(cfg: SRPOSFTConfig) -> SRPOSFTTrainer:
    """The trainer for cfg (itself TRL's SFTConfig: built before the model, so under DeepSpeed ZeRO-3 it switches on
    sharded loading, zero.Init, for the model below)."""
    processor = load_training_processor(cfg)
    system = system_prompt(cfg.system_prompt) if cfg.system_prompt else None
    # checked before the model loads
    train_dataset = load_sft_dataset(cfg.dataset, system, processor, cfg.max_length, skip_bad=cfg.skip_bad,
                                     columns=cfg.dataset_columns)
    return SRPOSFTTrainer(
        model=load_trainable_model(cfg),
        args=cfg,
        train_dataset=train_dataset,
        processing_class=processor,
        peft_config=lora_config(cfg),
    )


def run_sft(cfg: SRPOSFTConfig, *, overwrite: bool = False) -> OutputDir:
    """Train, resuming from the newest complete checkpoint in output_dir (a finished run is left as it is)."""
    return run_stage(cfg, build_sft_trainer, overwrite=overwrite)
