"""Pieces both stages share: loading the policy for training, freezing the vision tower, LoRA, resuming."""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import is_peft_model
from transformers import AutoModelForImageTextToText
from transformers.trainer_utils import get_last_checkpoint

from srpo.config import ModelOptions
from srpo.errors import InvalidValue, MissingDependency, NotAvailable
from srpo.models import load_policy, load_processor

logger = logging.getLogger(__name__)

# LoRA on the language model only: the vision tower stays frozen (SPEC §3, §5).
LANGUAGE_LINEAR_LAYERS = r"^(?!.*visual).*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"


def check_dependencies(options: ModelOptions) -> None:
    """Fail before loading anything when an option needs a package or a GPU that is not there."""
    if options.load_in_4bit:
        if not options.lora:
            raise InvalidValue("load_in_4bit: true is QLoRA: LoRA adapters on a frozen 4-bit base; set lora: true")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise MissingDependency("load_in_4bit: true needs bitsandbytes: `pip install bitsandbytes` (CUDA machines only)")
        if not torch.cuda.is_available():
            raise NotAvailable("load_in_4bit: true needs a CUDA GPU (bitsandbytes); set load_in_4bit: false on CPU")
    if options.use_liger_kernel and importlib.util.find_spec("liger_kernel") is None:
        raise MissingDependency("use_liger_kernel: true needs Liger: `pip install liger-kernel` (Triton, CUDA machines only)")


def model_load_kwargs(options: ModelOptions) -> dict[str, Any]:
    """Extra `from_pretrained` arguments: attention implementation and the QLoRA 4-bit quantization."""
    kwargs: dict[str, Any] = {}
    if options.attn_implementation:
        kwargs["attn_implementation"] = options.attn_implementation
    if options.load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if options.bf16 else torch.float32,
            llm_int8_skip_modules=["visual", "lm_head"],  # the vision tower stays in 16 bits (it is frozen anyway)
        )
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}  # one full copy per process (DDP)
    return kwargs


def load_trainable_policy(options: ModelOptions):
    check_dependencies(options)
    dtype = torch.bfloat16 if options.bf16 else torch.float32
    extra = model_load_kwargs(options)
    if extra:
        processor = load_processor(options.model)  # checks the path first
        model = AutoModelForImageTextToText.from_pretrained(options.model, dtype=dtype, **extra)
    else:
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
        raise InvalidValue(f"{type(model).__name__} has no vision tower ('visual') to freeze; set freeze_vision: false")
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
    """TRL config arguments that follow the model options: precision, device, activation checkpointing, Liger."""
    on_gpu = torch.cuda.is_available()
    return {
        "bf16": options.bf16 and on_gpu,
        "use_cpu": not on_gpu,
        "activation_checkpointing": options.gradient_checkpointing,
        "use_liger_kernel": options.use_liger_kernel,
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
    """Save a standalone checkpoint (LoRA merged) that the next stage or `srpo eval` loads by path.

    Safe on any number of processes: under DeepSpeed ZeRO-3 or FSDP the shards are gathered first, and only the
    main process writes. LoRA adapters trained on a sharded or 4-bit base are saved to `final/adapter` and merged
    into a 16-bit copy of the base model on the main process's CPU.
    """
    final_dir = Path(final_dir)
    model = trainer.model
    if not is_peft_model(model):
        trainer.save_model(str(final_dir))  # gathers shards; the main process writes weights and the processor
        trainer.accelerator.wait_for_everyone()
        return final_dir
    quantized = getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)
    if quantized or trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled:
        adapter_dir = final_dir / "adapter"
        trainer.save_model(str(adapter_dir))  # gathers the adapter from all processes
        trainer.accelerator.wait_for_everyone()
        if trainer.is_world_process_zero():  # the others may exit: a long CPU merge must not hit a collective timeout
            _merge_adapter_on_cpu(adapter_dir, final_dir, trainer.processing_class)
        return final_dir
    if trainer.is_world_process_zero():
        merged = model.merge_and_unload()
        merged.save_pretrained(str(final_dir))
        trainer.processing_class.save_pretrained(str(final_dir))
    trainer.accelerator.wait_for_everyone()
    return final_dir


def _merge_adapter_on_cpu(adapter_dir: Path, final_dir: Path, processor) -> None:
    from peft import PeftConfig, PeftModel

    base_path = PeftConfig.from_pretrained(str(adapter_dir)).base_model_name_or_path
    logger.info("merging the LoRA adapter in %s into a 16-bit copy of %s", adapter_dir, base_path)
    base = AutoModelForImageTextToText.from_pretrained(base_path, dtype=torch.bfloat16, device_map="cpu")
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(final_dir))
    processor.save_pretrained(str(final_dir))
