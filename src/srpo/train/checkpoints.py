"""Checkpoints that resume exactly: written so the trainer can read them back, loaded strictly, picked only when whole.

transformers 5 keeps Qwen2.5-VL's modules under new names (`model.language_model.*`, `model.visual.*`) but
`save_pretrained` writes the original ones (`model.layers.*`, `visual.*`) for the rest of the ecosystem. `Trainer`
reloads a checkpoint's weights by their raw names, non-strictly, so without help a resumed run silently keeps its
base weights. `ExactResumeMixin` (put before TRL's trainer class) therefore

* writes `checkpoint-N` weights under the model's own names (`save_original_format=False`; `from_pretrained` and
  vLLM read both layouts), while `final/` keeps the original layout;
* makes any missing or unexpected key on resume a fatal `CheckpointMismatch` naming the keys (tied weights, which
  transformers itself declares, pass);
* saves a checkpoint at the last step too, so raising `max_steps` on a finished run continues from where it ended.

`newest_complete_checkpoint` skips checkpoints that a kill during the save left incomplete.
"""

from __future__ import annotations

import json
import logging
import re
import struct
import zipfile
from contextlib import contextmanager
from pathlib import Path

import torch
from accelerate.utils import is_peft_model
from safetensors.torch import load_file
from transformers import PreTrainedModel, TrainerCallback

from srpo.errors import UserError
from srpo.models import key_mismatch_message

logger = logging.getLogger(__name__)

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


class CheckpointMismatch(UserError, RuntimeError):
    """A checkpoint whose tensors do not match the model being trained, key for key."""


@contextmanager
def _runtime_key_names(model):
    """`model.save_pretrained` writes the model's own parameter names for the duration."""
    original = model.save_pretrained

    def save_pretrained(*args, **kwargs):
        return original(*args, **{**kwargs, "save_original_format": False})

    model.save_pretrained = save_pretrained
    try:
        yield
    finally:
        del model.save_pretrained  # the class's method again


class SaveAtEndCallback(TrainerCallback):
    """A checkpoint at the last step, whatever `save_steps` is, so a finished run can be extended exactly."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.max_steps > 0 and state.global_step >= state.max_steps and args.save_strategy != "no":
            control.should_save = True
        return control


class ExactResumeMixin:
    """Mixed into srpo's SFT and GRPO trainers (before TRL's class): see the module docstring."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_callback(SaveAtEndCallback())

    def _save(self, output_dir=None, state_dict=None):
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        is_checkpoint = CHECKPOINT_RE.match(Path(output_dir or self.args.output_dir).name)
        if not (is_checkpoint and isinstance(model, PreTrainedModel)):  # final/ and LoRA adapters as is
            return super()._save(output_dir, state_dict)
        with _runtime_key_names(model):
            return super()._save(output_dir, state_dict)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        model = model if model is not None else self.model
        adapter = Path(resume_from_checkpoint) / "adapter_model.safetensors"
        if is_peft_model(model) and adapter.is_file():  # PEFT's load_adapter only warns about keys it could not place
            check_adapter_loaded(model, adapter)

    def _issue_warnings_after_load(self, load_result) -> None:
        """Trainer only warns here; a checkpoint that does not restore every tensor must stop the run instead."""
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        check_all_loaded(model, load_result.missing_keys, load_result.unexpected_keys)


def check_all_loaded(model, missing_keys, unexpected_keys, what: str = "the checkpoint") -> None:
    missing = sorted(set(missing_keys) - expected_missing_keys(model))
    unexpected = sorted(unexpected_keys)
    if missing or unexpected:
        raise CheckpointMismatch(key_mismatch_message(
            what, missing, unexpected,
            "It was written for another model or with another key layout; resuming from it would train from the "
            "wrong weights. Start a new output_dir (with `model:` pointing at a checkpoint folder to start from "
            "its weights), or pick the right model."))
    model.tie_weights()


def check_adapter_loaded(model, adapter: Path) -> None:
    """Every LoRA tensor of the model now equals the one saved in `adapter`, key for key."""
    from peft import get_peft_model_state_dict

    saved, current = load_file(str(adapter)), get_peft_model_state_dict(model)
    missing, unexpected = sorted(set(current) - set(saved)), sorted(set(saved) - set(current))
    different = [k for k in current if k in saved and not torch.equal(current[k].cpu(), saved[k].to(current[k].dtype))]
    if missing or unexpected or different:
        raise CheckpointMismatch(key_mismatch_message(
            str(adapter), missing, unexpected + different,
            "Its LoRA adapter does not fit the adapter being trained (another rank, target modules or base model); "
            "start a new output_dir or put the LoRA settings back."))


def load_checkpoint_weights(model, checkpoint: Path) -> None:
    """A `checkpoint-N`'s weights (the model's own key names) into `model`, every tensor or a CheckpointMismatch."""
    expected, loaded = set(model.state_dict()), set()
    for shard in weight_shards(checkpoint):
        tensors = load_file(str(checkpoint / shard))
        model.load_state_dict(tensors, strict=False)
        loaded |= set(tensors)
    check_all_loaded(model, expected - loaded, loaded - expected, str(checkpoint))


def expected_missing_keys(model) -> set[str]:
    """Keys a checkpoint may lack because transformers declares them tied to another tensor (e.g. lm_head)."""
    declared = getattr(model, "all_tied_weights_keys", None)  # the keys tied under this model's config
    if declared is None:  # older transformers 5 releases: the class's declaration, when the config ties embeddings
        tied = model.config.get_text_config().tie_word_embeddings
        declared = (getattr(model, "_tied_weights_keys", None) or {}) if tied else {}
    return set(declared)


# --- which checkpoint to resume from -----------------------------------------------------------------------------


def checkpoint_dirs(output_dir: str | Path) -> list[Path]:
    """`checkpoint-N` folders, newest (highest N) first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if p.is_dir() and (m := CHECKPOINT_RE.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def incomplete_reason(checkpoint: Path) -> str | None:
    """Why `checkpoint` cannot be resumed from (a save cut short), or None when its state and weights are whole.

    Trainer writes the weights, optimizer, scheduler and RNG states first and trainer_state.json last.
    """
    state = checkpoint / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json"
    try:
        json.loads(state.read_text())
    except (ValueError, UnicodeDecodeError):
        return "trainer_state.json is cut short"
    if reason := _weights_problem(checkpoint):
        return reason
    for path in sorted(checkpoint.glob("*.pt")) + sorted(checkpoint.glob("*.pth")) + sorted(checkpoint.glob("*.bin")):
        if not zipfile.is_zipfile(path):  # torch.save writes a zip whose directory is its last part
            return f"{path.name} is cut short"
    return None


def weight_shards(checkpoint: Path) -> list[str]:
    """The safetensors files holding a checkpoint's model (or adapter) weights: the index's shards, or the one file."""
    index = checkpoint / "model.safetensors.index.json"
    if index.is_file():
        return sorted(set(json.loads(index.read_text())["weight_map"].values()))
    return [name for name in ("model.safetensors", "adapter_model.safetensors") if (checkpoint / name).is_file()]


def _weights_problem(checkpoint: Path) -> str | None:
    try:
        shards = weight_shards(checkpoint)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return "model.safetensors.index.json is cut short"
    for shard in shards:
        if reason := _safetensors_problem(checkpoint / shard):
            return f"{shard}: {reason}"
    if shards or any(checkpoint.glob("global_step*")) or any(checkpoint.glob("pytorch_model_fsdp*")):
        return None  # DeepSpeed and FSDP keep their own (sharded) model files
    return "no model or adapter weights"


def _safetensors_problem(path: Path) -> str | None:
    """A safetensors file is whole when its header parses and its data reaches the last tensor's end."""
    if not path.is_file():
        return "missing"
    try:
        with path.open("rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(header_len))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError, UnicodeDecodeError, MemoryError, OverflowError):
        return "header cut short"
    if path.stat().st_size < 8 + header_len + end:
        return "cut short"
    return None


def newest_complete_checkpoint(output_dir: str | Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest checkpoint a run can resume from, and the newer incomplete ones skipped (with why)."""
    skipped = []
    for checkpoint in checkpoint_dirs(output_dir):
        reason = incomplete_reason(checkpoint)
        if reason is None:
            return checkpoint, skipped
        skipped.append((checkpoint, reason))
    return None, skipped
