"""Pieces both stages share: loading the policy for training, freezing the vision tower, LoRA, resuming."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from transformers.trainer_utils import get_last_checkpoint

from srpo.config import ModelOptions
from srpo.models import load_policy

logger = logging.getLogger(__name__)

# LoRA on the language model only: the vision tower stays frozen (SPEC §3, §5).
LANGUAGE_LINEAR_LAYERS = r"^(?!.*visual).*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"


def load_trainable_policy(options: ModelOptions):
    dtype = torch.bfloat16 if options.bf16 else torch.float32
    model, processor = load_policy(options.model, dtype=dtype)
    if options.max_pixels is not None:
        processor.image_processor.size["longest_edge"] = options.max_pixels
    if options.freeze_vision:
        freeze_vision_tower(model)
    return model, processor


def freeze_vision_tower(model) -> int:
    """Freeze the vision encoder and its merger (the projector); returns how many parameters were frozen."""
    visual = getattr(model, "visual", None) or getattr(getattr(model, "model", None), "visual", None)
    if visual is None:
        raise ValueError(f"{type(model).__name__} has no vision tower ('visual') to freeze; set freeze_vision: false")
    frozen = 0
    for param in visual.parameters():
        param.requires_grad_(False)
        frozen += param.numel()
    return frozen


def lora_config(options: ModelOptions):
    if not options.lora:
        return None
    from peft import LoraConfig

    targets = LANGUAGE_LINEAR_LAYERS if options.lora_target_modules == "all-linear" else options.lora_target_modules
    return LoraConfig(
        r=options.lora_r,
        lora_alpha=options.lora_alpha,
        lora_dropout=options.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )


def trainer_precision_args(options: ModelOptions) -> dict[str, Any]:
    on_gpu = torch.cuda.is_available()
    return {
        "bf16": options.bf16 and on_gpu,
        "use_cpu": not on_gpu,
        "activation_checkpointing": options.gradient_checkpointing,
    }


def last_checkpoint(output_dir: str | Path) -> str | None:
    """The newest `checkpoint-N` in output_dir, so a killed run restarts where it stopped."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    checkpoint = get_last_checkpoint(str(output_dir))
    if checkpoint:
        logger.info("resuming from %s", checkpoint)
    return checkpoint


def save_final(trainer, final_dir: Path) -> Path:
    """Save a standalone checkpoint (LoRA merged) that the next stage or `srpo eval` loads by path."""
    model = trainer.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(str(final_dir))
    trainer.processing_class.save_pretrained(str(final_dir))
    return final_dir
