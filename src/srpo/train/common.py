"""Pieces both stages share: loading the policy for training, freezing the vision tower, LoRA, resuming."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from accelerate.utils import is_peft_model

from srpo.config import TrainingStageFields
from srpo.errors import InvalidValue, MissingDependency, NotAvailable
from srpo.files import partial_dir, replace_dir, swap_in
from srpo.models import load_model, load_processor
from srpo.train.checkpoints import load_checkpoint_weights, newest_complete_checkpoint
from srpo.train.output_dir import OutputDir, prepare_output_dir

logger = logging.getLogger(__name__)

# LoRA on the language model only: the vision tower stays frozen (docs/method.md#reflection-data, #grpo).
LANGUAGE_LINEAR_LAYERS = r"^(?!.*visual).*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"


def check_dependencies(options: TrainingStageFields) -> None:
    """Fail before loading anything when an option needs a package or a GPU that is not there."""
    if options.load_in_4bit:
        if importlib.util.find_spec("bitsandbytes") is None:
            raise MissingDependency("load_in_4bit: true needs bitsandbytes: `pip install bitsandbytes` (CUDA machines only)")
        if not torch.cuda.is_available():
            raise NotAvailable("load_in_4bit: true needs a CUDA GPU (bitsandbytes); set load_in_4bit: false on CPU")
    if options.use_liger_kernel and importlib.util.find_spec("liger_kernel") is None:
        raise MissingDependency("use_liger_kernel: true needs Liger: `pip install liger-kernel` (Triton, CUDA machines only)")


def model_load_kwargs(options: TrainingStageFields) -> dict[str, Any]:
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
            bnb_4bit_compute_dtype=training_dtype(options),
            llm_int8_skip_modules=["visual", "lm_head"],  # the vision tower stays in 16 bits (it is frozen anyway)
        )
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}  # one full copy per process (DDP)
    return kwargs


def load_training_processor(options: TrainingStageFields):
    processor = load_processor(options.model_name_or_path)  # checks the path first
    if options.max_pixels is not None:
        processor.image_processor.size["longest_edge"] = options.max_pixels
    return processor


def training_dtype(options: TrainingStageFields) -> torch.dtype:
    return getattr(torch, options.dtype) if options.dtype else torch.bfloat16 if options.bf16 else torch.float32


def load_trainable_model(options: TrainingStageFields):
    check_dependencies(options)
    model = load_model(options.model_name_or_path, dtype=training_dtype(options), **model_load_kwargs(options))
    if options.freeze_vision:
        freeze_vision_tower(model)
    return model


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


def lora_config(options: TrainingStageFields):
    if not options.use_peft:
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


def last_checkpoint(output_dir: str | Path) -> str | None:
    """The newest complete `checkpoint-N` in output_dir, so a killed run restarts where it stopped."""
    checkpoint, skipped = newest_complete_checkpoint(output_dir)
    for path, reason in skipped:
        logger.warning("skipping %s: incomplete (%s), probably cut short by a kill during the save", path, reason)
    if checkpoint is not None:
        logger.info("resuming from %s", checkpoint)
    return str(checkpoint) if checkpoint is not None else None


def save_final(trainer, final_dir: Path) -> Path:
    """Save a standalone checkpoint (LoRA merged) that the next stage or `srpo eval` loads by path.

    Written to a sibling folder and swapped in by renames, so a kill leaves the old `final/` or the new one, never a
    torn one. Safe on any number of processes: under DeepSpeed ZeRO-3 or FSDP the shards are gathered first, and only
    the main process writes. LoRA adapters trained on a sharded or 4-bit base are saved to `final/adapter` and merged
    into a 16-bit copy of the base model on the main process's CPU.
    """
    final_dir = Path(final_dir)
    partial = partial_dir(final_dir)
    if trainer.is_world_process_zero():
        shutil.rmtree(partial, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    model = trainer.model
    quantized = getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)
    if not is_peft_model(model):
        trainer.save_model(str(partial))  # gathers shards; the main process writes weights and the processor
    elif quantized or trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled:
        trainer.save_model(str(partial / "adapter"))  # gathers the adapter from all processes
        trainer.accelerator.wait_for_everyone()
        if trainer.is_world_process_zero():  # the others may exit: a long CPU merge must not hit a collective timeout
            _merge_adapter_on_cpu(partial / "adapter", partial, trainer.processing_class)
            swap_in(partial, final_dir)
        return final_dir
    elif trainer.is_world_process_zero():
        model.merge_and_unload().save_pretrained(str(partial))
        trainer.processing_class.save_pretrained(str(partial))
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        swap_in(partial, final_dir)
    trainer.accelerator.wait_for_everyone()
    return final_dir


def _merge_adapter_on_cpu(adapter_dir: Path, final_dir: Path, processor, dtype=torch.bfloat16) -> None:
    from peft import PeftConfig, PeftModel

    base_path = PeftConfig.from_pretrained(str(adapter_dir)).base_model_name_or_path
    logger.info("merging the LoRA adapter in %s into a %s copy of %s", adapter_dir, dtype, base_path)
    base = load_model(base_path, dtype=dtype, device_map="cpu")
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(final_dir))
    processor.save_pretrained(str(final_dir))


def run_stage(cfg, build_trainer, *, overwrite: bool) -> OutputDir:
    """One training stage on its output_dir (srpo.train.output_dir): left alone when finished, else trained from the
    newest complete checkpoint and saved as final/."""
    run = prepare_output_dir(cfg, overwrite=overwrite)
    if run.finished:
        return run
    checkpoint = last_checkpoint(cfg.output_dir)
    if checkpoint:
        state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
        if trained_to_the_end(state, cfg):
            final_from_checkpoint(checkpoint, run.final, load_training_processor(cfg), cfg)
            return run
    trainer = build_trainer(cfg)
    trainer.train(resume_from_checkpoint=checkpoint)
    save_final(trainer, run.final)
    return run


def trained_to_the_end(state: dict, cfg) -> bool:
    """A checkpoint's trainer state is the run's last step. Trainer would still train one more step when resumed from
    it, so the final model is made from the checkpoint instead (`final_from_checkpoint`)."""
    if cfg.max_steps > 0:
        return state["global_step"] >= cfg.max_steps
    return state["global_step"] >= state["max_steps"] and cfg.num_train_epochs <= state["num_train_epochs"]


def final_from_checkpoint(checkpoint: str | Path, final_dir: Path, processor, cfg: TrainingStageFields) -> Path:
    """`final/` (LoRA merged, original key layout) from a checkpoint of the last step, written by the main process."""
    checkpoint, final_dir = Path(checkpoint), Path(final_dir)
    state = PartialState()
    if state.is_main_process:
        logger.info("%s is the last step: writing %s from it", checkpoint, final_dir)
        dtype = training_dtype(cfg)

        def write(partial: Path) -> None:
            if (checkpoint / "adapter_config.json").is_file():
                _merge_adapter_on_cpu(checkpoint, partial, processor, dtype)
            elif (checkpoint / "model.safetensors").is_file() or (checkpoint / "model.safetensors.index.json").is_file():
                # The base model knows the key layout final/ keeps; the checkpoint holds the model's own names.
                model = load_model(cfg.model_name_or_path, dtype=dtype, device_map="cpu")
                load_checkpoint_weights(model, checkpoint)
                model.save_pretrained(str(partial))
                processor.save_pretrained(str(partial))
            else:
                raise NotAvailable(f"{checkpoint} holds no Hugging Face weights (a DeepSpeed checkpoint saved without "
                                   "zero3_save_16bit_model): convert it with its zero_to_fp32.py, then use it as model:")

        replace_dir(final_dir, write)
    state.wait_for_everyone()
    return final_dir
