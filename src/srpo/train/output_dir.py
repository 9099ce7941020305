"""One output_dir holds one training run: its resolved config (`config.yaml`), its `checkpoint-N` folders and `final/`.

A command reuses an output_dir only for the same run, so work is never retrained, mixed or overwritten by accident:

* a killed run resumes from its newest complete checkpoint;
* rerunning a finished run (`final/` exists) changes nothing and says where the model is;
* a higher `max_steps` (or `num_train_epochs`) continues a finished run from its last checkpoint;
* any other changed setting stops the command, naming each key with both values, unless `--overwrite` is given
  (which deletes the old checkpoints and `final/` and starts again). Settings that do not change what is trained
  (logging, checkpoint frequency and retention, report_to) may change freely.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from accelerate import PartialState

from srpo.config import config_values
from srpo.errors import InvalidValue
from srpo.files import atomic_write_text, check_output_dir, partial_dir
from srpo.train.checkpoints import checkpoint_dirs

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
LENGTH_KEYS = ("max_steps", "num_train_epochs")
# Keys that change how a run is logged or checkpointed, not what it trains.
FREE_KEY_PREFIXES = ("logging_", "log_", "save_", "report_to", "run_name", "disable_tqdm", "push_to_hub", "hub_",
                     "dataloader_num_workers", "dataloader_prefetch_factor", "project", "trackio_", "output_dir",
                     "local_rank")


class RunSettingsChanged(InvalidValue):
    """An existing output_dir holds a run made with other settings."""


@dataclass
class OutputDir:
    path: Path
    finished: bool  # final/ holds this run's model and there is nothing left to train

    @property
    def final(self) -> Path:
        return self.path / "final"


def prepare_output_dir(cfg: Any, *, overwrite: bool = False) -> OutputDir:
    """Decide what this command does with cfg.output_dir (see the module docstring) and record cfg there.

    Every process decides from the same files; the main process alone deletes (`--overwrite`) and writes, and all
    wait for it. Call it once the process group exists (after building the TRL config) and before loading a model.
    """
    path = check_output_dir(cfg.output_dir, "output_dir")
    current = config_values(cfg)
    saved_file = path / CONFIG_FILE
    saved = yaml.safe_load(saved_file.read_text()) if saved_file.is_file() and not overwrite else None
    if saved is not None and "model_name_or_path" not in saved:  # written before the configs extended TRL's
        logger.warning("%s: %s is in an older srpo's format: its settings cannot be checked", path, CONFIG_FILE)
        saved = None
    has_final = (path / "final").is_dir()
    state = PartialState()
    finished = False
    if overwrite:
        if state.is_main_process:
            _clear(path)
    elif saved is not None:
        changes = changed_settings(saved, current)
        if has_final and not _extends(saved, current):
            changes += [f"{key}: {saved.get(key)!r} -> {current.get(key)!r} (a finished run cannot be shortened)"
                        for key in LENGTH_KEYS if saved.get(key) != current.get(key)]
            finished = not changes
        if changes:
            raise RunSettingsChanged(
                f"{path} holds a run made with other settings ({'; '.join(changes)}). Use a new output_dir, put the "
                f"old values back, or pass --overwrite to delete its checkpoints and final/ and start again.")
        if has_final and not finished:
            logger.info("%s: continuing a finished run to %s; final/ is replaced when it ends", path,
                        _length(current))
    elif has_final or checkpoint_dirs(path):
        logger.warning("%s holds a run without %s (made by an older srpo): its settings cannot be checked", path,
                       CONFIG_FILE)
        finished = has_final
    if not finished and state.is_main_process:
        atomic_write_text(saved_file, yaml.safe_dump(current, sort_keys=False))
    state.wait_for_everyone()
    return OutputDir(path=path, finished=finished)


def changed_settings(saved: dict, current: dict) -> list[str]:
    """`key: old -> new` for every setting that changes what is trained (max_steps/num_train_epochs excluded)."""
    changes = []
    for key in sorted({*saved, *current} - set(LENGTH_KEYS)):
        if not key.startswith(FREE_KEY_PREFIXES) and saved.get(key) != current.get(key):
            changes.append(f"{key}: {saved.get(key)!r} -> {current.get(key)!r}")
    return changes


def _extends(saved: dict, current: dict) -> bool:
    """The new length trains further than the finished run did."""
    old_steps, new_steps = saved.get("max_steps", -1), current.get("max_steps", -1)
    if old_steps > 0 and new_steps > 0:
        return new_steps > old_steps
    if old_steps <= 0 and new_steps <= 0:
        return current.get("num_train_epochs", 0) > saved.get("num_train_epochs", 0)
    return False  # switching between a step and an epoch budget: not comparable, a changed setting


def _length(cfg: dict) -> str:
    return f"max_steps={cfg['max_steps']}" if cfg.get("max_steps", -1) > 0 else f"num_train_epochs={cfg.get('num_train_epochs')}"


def _clear(path: Path) -> None:
    doomed = [*checkpoint_dirs(path), path / "final", partial_dir(path / "final"), path / CONFIG_FILE]
    doomed = [p for p in doomed if p.exists()]
    for p in doomed:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    if doomed:
        logger.warning("--overwrite: deleted %s", ", ".join(p.name for p in doomed))
