# Over 400 lines: every command's keys, with their help texts and checks, live here and nowhere else.
"""Every command's config, parsed one way: TRL's `TrlParser` (YAML via `--config FILE`, then any field as a flag).

The training stages extend TRL's own configs: `SRPOSFTConfig(SFTConfig)` and `SRPOGRPOConfig(GRPOConfig)` add only
srpo's fields (model loading, dataset, SRPO reward preset, ...), so every TRL and transformers flag works as their
docs say (`srpo rl --config rl.yaml --learning_rate 1e-6 --max_grad_norm 0.5`). Defaults that differ from TRL's are
the paper's (docs/method.md#grpo, #reflection-sft) and are redeclared below with the reason. Checks live in each class's
`__post_init__`; a value that cannot work is a `ConfigError` naming the key. Keys of the configs before TRL's parser
(`model`, `lora`, `trainer: {...}`, `min_lr_rate`, `warmup_ratio`) are errors that name their new spelling.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
import yaml
from transformers import SchedulerType
from transformers.integrations import get_available_reporting_integrations
from trl import GRPOConfig, SFTConfig, TrlParser

from srpo.errors import UserError
from srpo.prompts import SYSTEM_PROMPTS
from srpo.perception_judge import DEFAULT_CONCURRENCY, FAILURE_POLICIES, build_judge
from srpo.rewards import LENGTH_TARGETS, PERCEPTION_PRESETS, PERCEPTION_WEIGHT, PRESETS, reward_weights

T = TypeVar("T")


class ConfigError(UserError, ValueError):
    """A config file or flag that cannot be used; the message names the key and where it came from."""


ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")
TARGET_SHAPES = ("sft", "five_block")  # srpo reflect: the SFT target without or with the second <think>
VLLM_MODES = ("colocate", "server")
LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo")  # TRL 1.16's GRPO losses
SCALE_REWARDS = ("group", "batch", "none")

# Keys of srpo's configs before they extended TRL's, and what to write instead.
RENAMED_KEYS = {
    "model": "model_name_or_path",
    "lora": "use_peft",
    "warmup_ratio": "warmup_steps (a float in [0, 1) is a ratio of the total steps)",
    "min_lr_rate": "lr_scheduler_kwargs: {min_lr_rate: 0.1} (on the command line: --lr_scheduler_kwargs "
                   "'{\"min_lr_rate\": 0.1}')",
    "prompts_per_step": "prompts_per_generation (prompts per generation batch), with optimizer_batch_size (sequences "
                        "per optimizer update)",
    "trainer": "TRL's keys at the top level (e.g. `max_grad_norm: 0.5` or --max_grad_norm 0.5, not under trainer:)",
}


def option(default: Any = None, help: str = "", **kwargs) -> Any:
    """A config field with its help text (shown by `srpo COMMAND --help`)."""
    metadata = {"help": help.replace("%", "%%")}  # argparse formats help strings with %
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata, **kwargs)
    return field(default=default, metadata=metadata, **kwargs)


def _at_least(cfg, key: str, low: float) -> None:
    if not getattr(cfg, key) >= low:  # NaN fails every comparison, so it is refused too
        raise ConfigError(f"{key}: {getattr(cfg, key)!r} must be at least {low}")


def _positive(cfg, key: str) -> None:
    if not getattr(cfg, key) > 0:
        raise ConfigError(f"{key}: {getattr(cfg, key)!r} must be greater than 0")


def _in_range(cfg, key: str, low: float, high: float, *, high_open: bool = False) -> None:
    value = getattr(cfg, key)
    if not (low <= value < high if high_open else low <= value <= high):
        raise ConfigError(f"{key}: {value!r} must be in [{low}, {high}{')' if high_open else ']'}")


def _one_of(cfg, key: str, allowed) -> None:
    if getattr(cfg, key) not in allowed:
        raise ConfigError(f"{key}: {getattr(cfg, key)!r} is unknown; use one of {tuple(allowed)}")


def _json_mapping(cfg, key: str) -> None:
    """`dict | str` fields (as TRL's own `lr_scheduler_kwargs`): a JSON string from the command line becomes a dict."""
    value = getattr(cfg, key)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: {getattr(cfg, key)!r} is not a JSON object; write e.g. --{key} "
                              "'{\"name\": \"value\"}' (in YAML: a mapping)")
        setattr(cfg, key, value)


@dataclass
class TrainingStageFields:
    """srpo's fields shared by both training stages: how the policy is loaded, which data it trains on.

    Model keys follow TRL's `ModelConfig` spelling (model_name_or_path, use_peft, lora_*, load_in_4bit,
    attn_implementation), so a TRL command line reads the same here."""

    model_name_or_path: str | None = option(None, "The policy: a checkpoint folder or hub id.")
    dataset: str | None = option(None, "Training data: a file or folder, or a Hugging Face dataset id with a split "
                                 "(NAME@SPLIT, e.g. hiyouga/geometry3k@train).")
    dataset_columns: dict | str | None = option(None, "Column names of `dataset` that differ from srpo's, as a "
                                                "mapping of srpo field to column (e.g. {question: problem, answer: "
                                                "solution}); fields: question, answer, images, choices.")
    skip_bad: bool = option(False, "Skip (and count) rows with bad fields, images the processor refuses or prompts "
                            "over the length limit, instead of stopping at the first one.")
    freeze_vision: bool = option(True, "Freeze the vision tower and its projector (docs/method.md#reflection-sft, "
                                 "#grpo).")
    use_peft: bool = option(False, "Train LoRA adapters instead of the full language model (merged into final/).")
    lora_r: int = option(16, "LoRA rank.")
    lora_alpha: int = option(32, "LoRA alpha.")
    lora_dropout: float = option(0.05, "LoRA dropout.")
    lora_target_modules: str = option("all-linear", "LoRA targets: all-linear (the language model's linear layers; "
                                      "the vision tower stays frozen) or a module-name regex.")
    max_pixels: int | None = option(None, "Resize images to at most this many pixels (paper: 262144); unset keeps "
                                    "the processor's own setting.")
    load_in_4bit: bool = option(False, "QLoRA: 4-bit NF4 base weights (bitsandbytes, CUDA) under LoRA; needs "
                                "use_peft.")
    attn_implementation: str | None = option(None, "Attention kernel, e.g. sdpa or flash_attention_2; unset = "
                                             "transformers' default.")
    dtype: str | None = option(None, "Weights' dtype when loaded: bfloat16 or float32; unset = bfloat16 with bf16, "
                               "else float32. bf16 with float32 = fp32 weights under bf16 autocast.")
    # TRL keys whose default differs in both stages (this class precedes TRL's among the bases, so these win)
    save_total_limit: int | None = option(2, "Checkpoints kept (the newest ones).")
    report_to: None | str | list[str] = option(["tensorboard"], "Logging integrations: tensorboard, wandb, none, ...")
    bf16: bool | None = option(None, "bf16 mixed precision; unset = on where a GPU supports it, off on the CPU.")
    gradient_checkpointing: bool | None = option(None, "Activation checkpointing: less memory, ~20% slower. Unset "
                                                 "= off (TRL's default is on; the recipes turn it on for real "
                                                 "models).")

    def _check_stage_fields(self) -> None:
        if not self.model_name_or_path:
            raise ConfigError("model_name_or_path: not set; give a checkpoint folder or hub id "
                              "(--model_name_or_path PATH)")
        if not self.dataset:
            raise ConfigError("dataset: not set; give the training data (--dataset PATH)")
        _json_mapping(self, "dataset_columns")
        if self.dataset_columns:
            unknown = sorted(set(self.dataset_columns) - {"question", "answer", "images", "choices"})
            if unknown:
                raise ConfigError(f"dataset_columns: unknown field(s) {unknown}; map question, answer, images or "
                                  "choices to your dataset's column names")
        _at_least(self, "lora_r", 1)
        _positive(self, "lora_alpha")
        _in_range(self, "lora_dropout", 0.0, 1.0, high_open=True)
        if self.max_pixels is not None:
            _at_least(self, "max_pixels", 28 * 28)  # one merged 2x2 patch of 14 pixels
        if self.attn_implementation not in (None, *ATTENTION_IMPLEMENTATIONS) and "/" not in self.attn_implementation:
            raise ConfigError(f"attn_implementation: {self.attn_implementation!r} is unknown; use one of "
                              f"{ATTENTION_IMPLEMENTATIONS}, a kernels-hub id, or leave it unset")
        _one_of(self, "dtype", (None, "bfloat16", "float32"))
        if self.load_in_4bit and not self.use_peft:
            raise ConfigError("load_in_4bit: true is QLoRA: LoRA adapters on a frozen 4-bit base; set use_peft: true")
        if self.system_prompt and self.system_prompt not in SYSTEM_PROMPTS:
            raise ConfigError(f"system_prompt: {self.system_prompt!r} is unknown; use one of {sorted(SYSTEM_PROMPTS)}")

    def _check_training_arguments(self) -> None:
        """TrainingArguments' keys TRL would only reject mid-run (or never)."""
        _positive(self, "learning_rate")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError(f"max_steps: {self.max_steps} must be a number of optimizer steps >= 1, or -1 to train "
                              "num_train_epochs epochs")
        if self.max_steps == -1:
            _positive(self, "num_train_epochs")
        _at_least(self, "per_device_train_batch_size", 1)
        _at_least(self, "gradient_accumulation_steps", 1)
        if isinstance(self.warmup_steps, float):
            _in_range(self, "warmup_steps", 0.0, 1.0, high_open=True)
        _one_of(self, "lr_scheduler_type", [s.value for s in SchedulerType])
        _positive(self, "logging_steps")  # TrainingArguments: a float below 1 is a ratio of the total steps
        _positive(self, "save_steps")
        if self.save_total_limit is not None:
            _at_least(self, "save_total_limit", 1)
        available = get_available_reporting_integrations()
        for backend in [self.report_to] if isinstance(self.report_to, str) else self.report_to or []:
            if backend not in ("none", "all") and backend not in available:
                raise ConfigError(f"report_to: {backend!r} is not installed here (installed: {available or 'none'}); "
                                  f"`pip install {backend}` or drop it from report_to")

    def _resolve_defaults(self) -> None:
        self._resolve_device()
        if self.gradient_checkpointing is None and self.activation_checkpointing is None:
            self.activation_checkpointing = self.gradient_checkpointing = False

    def _resolve_device(self) -> None:
        """bf16 where a GPU has it, else full precision on the CPU: a recipe written for GPUs still runs (slowly) on a
        laptop, where TRL would stop with "Your setup doesn't support bf16/gpu"."""
        on_gpu = torch.cuda.is_available()
        self.bf16 = bool(self.bf16 if self.bf16 is not None else on_gpu) and on_gpu
        if not on_gpu:
            self.use_cpu = True


@dataclass
class SRPOSFTConfig(TrainingStageFields, SFTConfig):
    """Stage 1: SFT on reasoning + reflection targets (docs/method.md#reflection-sft). TRL's SFTConfig plus
    srpo's fields; defaults that differ from TRL's are the paper's."""

    output_dir: str | None = option("outputs/sft", "Checkpoints, config.yaml and final/ of this run.")
    system_prompt: str = option("sft", f"System prompt by name: one of {sorted(SYSTEM_PROMPTS)}.")
    learning_rate: float = option(1e-5, "Peak learning rate (paper: 1e-5).")
    num_train_epochs: float = option(1.0, "Epochs (paper: 1); max_steps > 0 takes precedence.")
    per_device_train_batch_size: int = option(1, "Rows per device per micro-batch.")
    gradient_accumulation_steps: int = option(8, "Micro-batches per optimizer step (global batch = per device x "
                                              "accumulation x processes).")
    lr_scheduler_type: SchedulerType | str = option("cosine", "Learning-rate schedule (paper: cosine).")
    warmup_steps: float = option(0.1, "Warmup: steps, or a float in [0, 1) as a ratio of all steps (paper: 0.1).")
    max_length: int | None = option(4096, "Longest training row in tokens (prompt with image tokens + completion).")
    completion_only_loss: bool | None = option(True, "Loss on the assistant completion only "
                                               "(docs/method.md#reflection-sft).")
    remove_unused_columns: bool = option(False, "Kept off: the vision collator needs the raw images column.")
    dataset_kwargs: dict | str | None = option(None, "TRL's dataset options; srpo always adds skip_prepare_dataset "
                                               "(rows are processed by the vision collator).")

    def __post_init__(self):
        self._check_stage_fields()
        self._check_training_arguments()
        _at_least(self, "max_length", 1)
        _json_mapping(self, "dataset_kwargs")
        self.dataset_kwargs = {**(self.dataset_kwargs or {}), "skip_prepare_dataset": True}
        self._resolve_defaults()
        super().__post_init__()


@dataclass
class SRPOGRPOConfig(TrainingStageFields, GRPOConfig):
    """Stage 2: reflection-aware GRPO (docs/method.md#grpo). TRL's GRPOConfig plus srpo's
    fields; defaults that differ from TRL's are the paper's."""

    output_dir: str | None = option("outputs/rl", "Checkpoints, config.yaml and final/ of this run.")
    system_prompt: str = option("reflection", f"System prompt by name: one of {sorted(SYSTEM_PROMPTS)}.")
    preset: str = option("paper", f"Reward preset, one of {PRESETS} (docs/method.md#rewards).")
    prompts_per_generation: int | None = option(128, "Prompts per generation batch (paper: 128, so 1,024 samples "
                                                "with 8 per prompt); sets TRL's generation_batch_size. Unset, or "
                                                "either TRL key set: TRL's own.")
    optimizer_batch_size: int | None = option(128, "Sequences per optimizer update (paper: 128, so 8 updates per "
                                              "generation batch); sets gradient_accumulation_steps = "
                                              "optimizer_batch_size / (per_device_train_batch_size x processes) "
                                              "unless you set gradient_accumulation_steps yourself.")
    max_prompt_length: int = option(1024, "Longest prompt in tokens, image tokens included. TRL does not truncate "
                                    "prompts (cutting image tokens crashes the model): longer ones are refused by id "
                                    "before training, or skipped with skip_bad.")
    group_accuracy_filter: list[float] | None = option(None, "Online filter [low, high], e.g. [0.1, 0.9]: groups whose "
                                                       "final-answer accuracy is outside it get no gradient "
                                                       "(docs/method.md#online-filter).")
    per_device_train_batch_size: int = option(8, "Completions per device per micro-batch.")
    lr_scheduler_type: SchedulerType | str = option("cosine_with_min_lr", "Learning-rate schedule (paper: cosine "
                                                    "down to 10%).")
    lr_scheduler_kwargs: dict | str | None = option(None, "Scheduler options; unset with cosine_with_min_lr = "
                                                    "{min_lr_rate: 0.1} (the paper's 10% floor).")
    warmup_steps: float = option(0.03, "Warmup: steps, or a float in [0, 1) as a ratio of all steps.")
    loss_type: str = option("grpo", f"Policy loss, one of {LOSS_TYPES} (paper: grpo; TRL's default is dapo).")
    max_completion_length: int | None = option(2048, "Longest sampled completion in tokens.")
    max_steps: int = option(4000, "Optimizer updates (-1: num_train_epochs epochs over the prompts). 4000 = the "
                            "paper's 500 generation batches at 8 updates each.")
    logging_steps: float = option(1, "Log every N steps (reward terms and transitions per step).")
    save_steps: float = option(50, "Checkpoint every N steps (and always at the last step).")
    adam_beta2: float = option(0.95, "Adam beta2 (paper: 0.95; beta1 0.9, weight decay 0, clipping 1.0 are TRL's "
                               "defaults too).")
    vllm_importance_sampling_correction: bool = option(False, "TRL's correction for the numerical mismatch between "
                                                       "vLLM's sampling log-probs and the trainer's (other kernels "
                                                       "and precision). Off, as in the paper's released runs.")
    vllm_gpu_memory_utilization: float = option(0.3, "Colocate: fraction of each GPU's memory vLLM may take.")
    # docs/method.md#perception: the judge of the perception presets
    judge: str = option("", "Judge of visual facts for the perception presets: oracle (rule for synthetic problems, "
                        "no model) or the http(s) base URL of an OpenAI-compatible server, e.g. "
                        "http://localhost:8000/v1.")
    judge_model: str = option("", "Model name at the judge endpoint; empty = the server's only model.")
    judge_api_key_env: str = option("", "Environment variable holding the judge's API key (never logged); empty = "
                                    "no key (vllm serve).")
    judge_concurrency: int = option(DEFAULT_CONCURRENCY, "Judge requests in flight per process (1,024 scores a "
                                    "1,024-completion batch in one wave: benchmarks/judge_overhead.py).")
    judge_timeout: float = option(60.0, "Seconds per judge request.")
    judge_max_retries: int = option(3, "Retries per judge request on 429 / 5xx / timeouts / dropped connections, "
                                    "and re-requests of an unparsable judgement.")
    judge_prompt: str | None = option(None, "Judge prompt template file with {facts} and {response} (and optionally "
                                      "{n_facts}); unset = srpo's own.")
    judge_failure: str = option("skip", f"A judgement that fails after retries or cannot be read: one of "
                                f"{FAILURE_POLICIES}: skip = no r_v for that sample (None), zero = r_v 0. Counted "
                                "in judge/failures either way.")
    perception_weight: float = option(PERCEPTION_WEIGHT, "Weight of r_v in the perception presets (Perception-R1: "
                                      "0.7).")
    length_targets: list[float] = option(list(LENGTH_TARGETS), "T_target and T_max of the length term in multiples "
                                         "of T0, the first attempt's length (paper: 2.0 and 2.5; "
                                         "docs/method.md#demo-findings says why the demo moves them).")

    def __post_init__(self):
        self._check_stage_fields()
        _one_of(self, "preset", PRESETS)
        self._check_judge()
        self._check_length_targets()
        if self.num_generations is None or self.num_generations < 2:
            raise ConfigError(f"num_generations: {self.num_generations} must be at least 2 (GRPO's advantage "
                              "compares the completions of one prompt with each other)")
        _one_of(self, "loss_type", LOSS_TYPES)
        _one_of(self, "scale_rewards", SCALE_REWARDS)
        _one_of(self, "vllm_mode", VLLM_MODES)
        _positive(self, "temperature")
        if self.beta < 0:
            raise ConfigError(f"beta: {self.beta} must be >= 0 (the KL coefficient; the paper uses 0)")
        _at_least(self, "max_prompt_length", 1)
        _at_least(self, "max_completion_length", 1)
        _in_range(self, "vllm_gpu_memory_utilization", 0.01, 1.0)
        _at_least(self, "vllm_tensor_parallel_size", 1)
        if self.group_accuracy_filter is not None:
            band = self.group_accuracy_filter
            if len(band) != 2 or not 0.0 <= band[0] <= band[1] <= 1.0:
                raise ConfigError(f"group_accuracy_filter: {band} must be [low, high] with 0 <= low <= high <= 1 "
                                  "(e.g. [0.1, 0.9]), or null")
            if self.loss_type == "bnpo":  # it normalises per micro-batch: no exact undiluted form (rl.undiluted_scales)
                raise ConfigError("group_accuracy_filter works with every loss_type but bnpo; use grpo (the paper's) "
                                  "or dapo, or set group_accuracy_filter: null")
        if self.use_vllm and self.load_in_4bit:
            raise ConfigError("use_vllm: true cannot load the 4-bit (QLoRA) policy's weights; set one of them to false")
        self._derive_batch()
        self._check_training_arguments()
        _json_mapping(self, "lr_scheduler_kwargs")
        if self.lr_scheduler_type == "cosine_with_min_lr" and not self.lr_scheduler_kwargs:
            self.lr_scheduler_kwargs = {"min_lr_rate": 0.1}
        if self.reward_weights is None:
            # final_correct (read by the group filter) is a column of its own with weight 0
            self.reward_weights = reward_weights(self.preset) + ([0.0] if self.group_accuracy_filter else [])
        if self.vllm_max_model_length is None:
            # Unbounded, vLLM would reserve KV cache for the model's full 128K context.
            self.vllm_max_model_length = self.max_prompt_length + self.max_completion_length
        self._resolve_defaults()
        super().__post_init__()

    def _check_length_targets(self) -> None:
        targets = self.length_targets
        if not (isinstance(targets, (list, tuple)) and len(targets) == 2
                and all(isinstance(t, (int, float)) for t in targets) and 0 < targets[0] < targets[1]):
            raise ConfigError(f"length_targets: {targets!r} must be two numbers, T_target and T_max in multiples of "
                              "T0, with 0 < T_target < T_max (the paper: [2.0, 2.5])")
        self.length_targets = [float(t) for t in targets]

    def _check_judge(self) -> None:
        """The judge keys, checked at parse time: a perception preset without a judge, a bad URL, an unset key
        variable or a bad template stops the run before any model loads."""
        if self.preset in PERCEPTION_PRESETS and not self.judge:
            raise ConfigError(f"judge: not set, and preset {self.preset!r} needs a judge of visual facts; set judge: "
                              "oracle (synthetic problems) or the URL of an OpenAI-compatible server "
                              "(--judge http://localhost:8000/v1)")
        _one_of(self, "judge_failure", FAILURE_POLICIES)
        _at_least(self, "judge_concurrency", 1)
        _positive(self, "judge_timeout")
        _at_least(self, "judge_max_retries", 0)
        _at_least(self, "perception_weight", 0.0)
        if self.judge:
            try:
                build_judge(self.judge, model=self.judge_model, api_key_env=self.judge_api_key_env,
                            prompt=self.judge_prompt, failure=self.judge_failure)
            except UserError as exc:
                raise ConfigError(str(exc)) from None

    def _derive_batch(self) -> None:
        """The paper's cadence (docs/method.md#grpo) in TRL's keys, for the number of processes of this run: a
        generation batch of prompts_per_generation x num_generations samples, trained in optimizer updates of
        optimizer_batch_size sequences. A TRL key the user set wins over the srpo key that would derive it."""
        micro = self.per_device_train_batch_size * launched_processes()  # sequences per micro-step, all processes
        if self.prompts_per_generation is not None and self.generation_batch_size is None \
                and self.steps_per_generation is None:
            _at_least(self, "prompts_per_generation", 1)
            self.generation_batch_size = self.prompts_per_generation * self.num_generations
            if self.generation_batch_size % micro:
                raise ConfigError(f"prompts_per_generation x num_generations = {self.generation_batch_size} must be "
                                  f"a multiple of per_device_train_batch_size x processes = {micro}")
        if self.optimizer_batch_size is not None and self.gradient_accumulation_steps == 1:
            _at_least(self, "optimizer_batch_size", 1)
            if self.optimizer_batch_size % micro:
                raise ConfigError(f"optimizer_batch_size = {self.optimizer_batch_size} must be a multiple of "
                                  f"per_device_train_batch_size x processes = {micro}")
            self.gradient_accumulation_steps = self.optimizer_batch_size // micro
        if self.generation_batch_size is not None and self.generation_batch_size % (
                micro * self.gradient_accumulation_steps):
            raise ConfigError(f"the generation batch ({self.generation_batch_size} samples) must be a whole number of "
                              f"optimizer batches ({micro * self.gradient_accumulation_steps} sequences)")


def batch_arithmetic(cfg, processes: int) -> dict[str, Any]:
    """What one run does per generation and in all, for `processes` processes (`srpo sft|rl --dry-run`)."""
    per_update = cfg.per_device_train_batch_size * processes * cfg.gradient_accumulation_steps
    out: dict[str, Any] = {"processes": processes, "sequences_per_optimizer_update": per_update,
                           "optimizer_updates": cfg.max_steps if cfg.max_steps > 0 else None}
    if isinstance(cfg, SRPOGRPOConfig):
        samples = cfg.generation_batch_size
        updates = samples // per_update
        out |= {"prompts_per_generation": samples // cfg.num_generations, "samples_per_generation": samples,
                "optimizer_updates_per_generation": updates,
                "steps_per_generation (TRL, micro-steps)": samples // (cfg.per_device_train_batch_size * processes),
                "generation_steps": cfg.max_steps / updates if cfg.max_steps > 0 else None}
    return out


@dataclass
class EndpointRunFields:
    """How `srpo reflect` and `srpo annotate` talk to their endpoints and keep their stores (srpo.endpoint, srpo.store)."""

    concurrency: int = option(32, "Requests in flight per endpoint.")
    request_timeout: float = option(300.0, "Seconds per request.")
    max_retries: int = option(8, "Retries per item on 429 / 5xx / timeouts / dropped connections (exponential "
                              "backoff with jitter, Retry-After honoured).")
    backoff_base: float = option(1.0, "Seconds; retry k waits min(backoff_max, backoff_base * 2**k) * U(0.5, 1).")
    backoff_max: float = option(60.0, "Longest wait between retries, in seconds.")
    abort_after_failures: int = option(50, "Stop after this many items in a row fail (0 = never).")
    retry_failed: bool = option(False, "On resume, request again the items recorded as failed.")
    fsync: bool = option(True, "fsync the stores after each group of finished items.")
    progress: bool = option(True, "Progress bars (rate, ETA).")

    def _endpoint_rules(self) -> list[tuple[str, bool, str]]:
        return [
            ("concurrency", self.concurrency >= 1, "must be at least 1 (requests in flight per endpoint)"),
            ("max_retries", self.max_retries >= 0, "must be 0 or more"),
            ("abort_after_failures", self.abort_after_failures >= 0, "must be 0 (never stop) or more"),
            ("request_timeout", self.request_timeout > 0, "must be a positive number of seconds"),
            ("backoff_base", self.backoff_base >= 0, "must be 0 or more seconds"),
            ("backoff_max", self.backoff_max >= self.backoff_base,
             f"must be at least backoff_base = {self.backoff_base!r}; raise it or lower backoff_base"),
        ]


@dataclass
class ReflectConfig(EndpointRunFields):
    """Stage 1 data (docs/method.md#reflection-data): policy attempts, teacher reflections, filters."""

    problems: str = option("", "Problems file or folder, or a Hugging Face dataset id with a split (NAME@SPLIT).")
    problems_columns: dict | str | None = option(None, "Column names of `problems` that differ from srpo's, as a "
                                                 "mapping of srpo field to column (question, answer, images, "
                                                 "choices).")
    skip_bad: bool = option(False, "Skip (and count) bad rows and images the local policy's processor refuses.")
    policy: str = option("", "A model path (local batched generation) or the http(s) URL of an OpenAI-compatible "
                         "server.")
    out: str = option("outputs/reflect", "Output folder (a rerun with the same --out resumes).")
    teacher: str = option("oracle", "oracle (worked solutions, no model) or the http(s) URL of an OpenAI-compatible "
                          "server.")
    system_prompt: str = option("attempt", "System prompt of the policy's attempts, by name.")
    attempt_temperature: float = option(0.2, "Sampling temperature of the attempts (paper: 0.2).")
    attempt_max_new_tokens: int = option(1024, "Attempt length limit in tokens (paper: 1024).")
    batch_size: int = option(8, "Local generation batch size.")
    right_fraction: float | None = option(0.3, "Share of right first attempts kept (paper: about 0.3); unset keeps "
                                          "the natural mix.")
    limit: int | None = option(None, "Use only the first N problems.")
    max_examples: int | None = option(None, "Cap on the SFT rows written.")
    min_reasoning_chars: int = option(1, "Attempts with shorter reasoning are dropped.")
    max_reasoning_chars: int = option(8000, "Attempts with longer reasoning are dropped.")
    max_reflection_chars: int = option(4000, "Reflections longer than this are dropped.")
    min_reflection_chars: int = option(1, "Reflections shorter than this are dropped.")
    target_shape: str = option("sft", f"SFT target, one of {TARGET_SHAPES}: without or with the second <think>.")
    seed: int = option(0, "Seed for sampling and the right/wrong mix.")
    dedupe: bool = option(True, "Drop an attempt identical to an earlier one on the same question and images.")
    policy_model: str = option("", "Model name at the policy endpoint; empty = the server's only model.")
    policy_api_key_env: str = option("", "Environment variable holding the policy endpoint's key; empty = no key.")
    teacher_model: str = option("", "Model name at the teacher endpoint, e.g. o4-mini; empty = the server's only "
                                "model.")
    teacher_api_key_env: str = option("OPENAI_API_KEY", "Environment variable holding the teacher's API key (never "
                                      "logged).")
    teacher_prompt: str | None = option(None, "Teacher prompt template file; unset = srpo's own (docs/teacher.md).")
    teacher_temperature: float | None = option(None, "Teacher temperature; unset = the server's default (o-series "
                                               "models accept only that).")
    teacher_max_tokens: int | None = option(None, "Sent as max_completion_tokens; unset = the server's default.")
    teacher_json_mode: bool = option(False, "Send response_format={\"type\": \"json_object\"}.")
    teacher_extra_body: dict | str | None = option(None, "Extra request fields for the teacher, e.g. "
                                                   "{reasoning_effort: high}.")
    policy_extra_body: dict | str | None = option(None, "Extra request fields for the policy endpoint.")
    image_max_pixels: int | None = option(None, "Downscale images sent to endpoints to at most this many pixels.")
    malformed_retries: int = option(2, "Re-requests of a malformed teacher reply before the item is recorded as "
                                    "failed.")
    teacher_price_input: float = option(0.0, "USD per 1M teacher prompt tokens, for the cost in summary.json.")
    teacher_price_output: float = option(0.0, "USD per 1M teacher completion tokens.")
    policy_price_input: float = option(0.0, "USD per 1M policy prompt tokens.")
    policy_price_output: float = option(0.0, "USD per 1M policy completion tokens.")

    def __post_init__(self):
        for key in ("problems_columns", "teacher_extra_body", "policy_extra_body"):
            _json_mapping(self, key)
        for key in ("teacher_extra_body", "policy_extra_body"):
            if getattr(self, key) is None:
                setattr(self, key, {})
        for key, ok, must in self._value_rules():
            if not ok:
                raise ConfigError(f"{key} = {getattr(self, key)!r}: {must}")

    def _value_rules(self) -> list[tuple[str, bool, str]]:
        """(key, whether its value can work, what it must be); NaN fails every comparison, so it is refused too."""
        def positive_or_null(value):
            return value is None or value >= 1

        return [
            ("right_fraction", self.right_fraction is None or 0 <= self.right_fraction <= 1,
             "must be between 0 and 1 (the share of right first attempts to keep), or null to keep the natural mix"),
            ("limit", positive_or_null(self.limit), "must be at least 1 (use the first N problems), or null for all"),
            ("max_examples", positive_or_null(self.max_examples), "must be at least 1, or null for no cap"),
            ("batch_size", self.batch_size >= 1, "must be at least 1"),
            *self._endpoint_rules(),
            ("malformed_retries", self.malformed_retries >= 0, "must be 0 or more"),
            ("attempt_temperature", self.attempt_temperature >= 0, "must be 0 (greedy) or more"),
            ("teacher_temperature", self.teacher_temperature is None or self.teacher_temperature >= 0,
             "must be 0 or more, or null for the server's default"),
            ("attempt_max_new_tokens", self.attempt_max_new_tokens >= 1, "must be at least 1"),
            ("teacher_max_tokens", positive_or_null(self.teacher_max_tokens),
             "must be at least 1, or null for the server's default"),
            ("image_max_pixels", positive_or_null(self.image_max_pixels),
             "must be at least 1, or null to send images as they are"),
            ("min_reasoning_chars", 0 <= self.min_reasoning_chars <= self.max_reasoning_chars,
             f"must be from 0 to max_reasoning_chars = {self.max_reasoning_chars!r}; lower it or raise "
             "max_reasoning_chars"),
            ("min_reflection_chars", 0 <= self.min_reflection_chars <= self.max_reflection_chars,
             f"must be from 0 to max_reflection_chars = {self.max_reflection_chars!r}; lower it or raise "
             "max_reflection_chars"),
            ("target_shape", self.target_shape in TARGET_SHAPES, f"must be one of {TARGET_SHAPES}"),
            ("system_prompt", not self.system_prompt or self.system_prompt in SYSTEM_PROMPTS,
             f"must be one of {sorted(SYSTEM_PROMPTS)}, or empty for none"),
            *((key, getattr(self, key) >= 0, "must be 0 or more (USD per 1M tokens)")
              for key in ("teacher_price_input", "teacher_price_output", "policy_price_input", "policy_price_output")),
        ]


ANNOTATE_SOURCES = ("solution", "cot")  # srpo annotate: facts from the worked solution or a teacher-written CoT


@dataclass
class AnnotateConfig(EndpointRunFields):
    """Visual facts for a problem file (docs/method.md#perception), through an OpenAI-compatible endpoint."""

    problems: str = option("", "Problems file or folder, or a Hugging Face dataset id with a split (NAME@SPLIT).")
    problems_columns: dict | str | None = option(None, "Column names of `problems` that differ from srpo's, as a "
                                                 "mapping of srpo field to column (question, answer, images, "
                                                 "choices).")
    skip_bad: bool = option(False, "Skip (and count) bad rows instead of stopping at the first.")
    limit: int | None = option(None, "Use only the first N problems.")
    out: str = option("outputs/annotate", "Output folder: the annotated problems (problems.jsonl), the reply "
                      "stores and summary.json; a rerun with the same --out resumes.")
    source: str = option("solution", f"Where the facts are extracted from, one of {ANNOTATE_SOURCES}: each "
                         "problem's worked solution, or a chain of thought the CoT endpoint writes first.")
    url: str = option("", "The http(s) URL of the OpenAI-compatible server that extracts the facts.")
    model: str = option("", "Model name at that server, e.g. Qwen/Qwen2.5-32B-Instruct; empty = the server's only "
                        "model.")
    api_key_env: str = option("OPENAI_API_KEY", "Environment variable holding its API key (never logged); empty = "
                              "no key.")
    prompt_template: str | None = option(None, "Fact-extraction prompt template file; unset = srpo's own "
                                         "(docs/annotate.md).")
    temperature: float | None = option(0.0, "Extraction temperature; null = the server's default.")
    max_tokens: int | None = option(1024, "Sent as max_completion_tokens; null = the server's default.")
    extra_body: dict | str | None = option(None, "Extra request fields for the extraction requests.")
    cot_url: str = option("", "source cot: the URL of the server that writes the CoTs (sees the images); empty = "
                          "`url`.")
    cot_model: str = option("", "source cot: model name at the CoT server; empty = `model` when cot_url is empty, "
                            "else the server's only model.")
    cot_api_key_env: str | None = option(None, "source cot: environment variable with the CoT server's key; null = "
                                         "api_key_env.")
    cot_prompt_template: str | None = option(None, "source cot: CoT prompt template file; unset = srpo's own.")
    cot_temperature: float | None = option(None, "source cot: CoT temperature; null = the server's default.")
    cot_max_tokens: int | None = option(None, "source cot: sent as max_completion_tokens; null = the server's "
                                        "default.")
    cot_extra_body: dict | str | None = option(None, "source cot: extra request fields for the CoT requests.")
    verify_cot: bool = option(True, "source cot: keep only CoTs whose final answer verifies against the problem's "
                              "answer (the paper's filter); a problem whose CoT fails gets no facts.")
    image_max_pixels: int | None = option(None, "Downscale images sent to the CoT server to at most this many pixels.")
    malformed_retries: int = option(2, "Re-requests of an unparsable reply before the item is recorded as failed.")
    price_input: float = option(0.0, "USD per 1M prompt tokens of the extraction server, for the cost in "
                                "summary.json.")
    price_output: float = option(0.0, "USD per 1M completion tokens of the extraction server.")
    cot_price_input: float = option(0.0, "USD per 1M prompt tokens of the CoT server.")
    cot_price_output: float = option(0.0, "USD per 1M completion tokens of the CoT server.")

    def __post_init__(self):
        for key in ("problems_columns", "extra_body", "cot_extra_body"):
            _json_mapping(self, key)
        for key in ("extra_body", "cot_extra_body"):
            if getattr(self, key) is None:
                setattr(self, key, {})
        rules = [
            ("source", self.source in ANNOTATE_SOURCES, f"must be one of {ANNOTATE_SOURCES}"),
            ("limit", self.limit is None or self.limit >= 1, "must be at least 1, or null for all"),
            *self._endpoint_rules(),
            ("malformed_retries", self.malformed_retries >= 0, "must be 0 or more"),
            *((key, getattr(self, key) is None or getattr(self, key) >= 0, "must be 0 or more, or null for the "
               "server's default") for key in ("temperature", "cot_temperature")),
            *((key, getattr(self, key) is None or getattr(self, key) >= 1, "must be at least 1, or null")
              for key in ("max_tokens", "cot_max_tokens", "image_max_pixels")),
            *((key, getattr(self, key) >= 0, "must be 0 or more (USD per 1M tokens)")
              for key in ("price_input", "price_output", "cot_price_input", "cot_price_output")),
        ]
        for key, ok, must in rules:
            if not ok:
                raise ConfigError(f"{key} = {getattr(self, key)!r}: {must}")


ASSUMED_PROCESSES: int | None = None  # `--dry-run --world-size N`: derive batch keys as if N processes ran


def launched_processes() -> int:
    """Processes of this run: $WORLD_SIZE as `accelerate launch` / torchrun set it, else 1."""
    return ASSUMED_PROCESSES or int(os.environ.get("WORLD_SIZE", "1"))


class _Parser(TrlParser):
    """TRL's parser, with argparse's usage-and-exit turned into one `ConfigError` line and no abbreviated flags (an
    abbreviation would silently pick whichever key it happens to prefix)."""

    def __init__(self, cls, prog: str | None = None):
        super().__init__(cls, allow_abbrev=False, prog=prog or f"srpo ({cls.__name__})")

    def error(self, message):
        raise ConfigError(f"command line: {message}")


def config_help(cls: type, prog: str | None = None) -> str:
    """Every field of `cls` with its help text and default, as `srpo COMMAND --help` prints it."""
    return _Parser(cls, prog).format_help()


def parse_config(cls: type[T], args: list[str], defaults: dict[str, Any] | None = None) -> T:
    """`cls` from `--config FILE` (YAML) and `--key value` flags, by TRL's parser; flags override the file.

    Before TRL's parser sees anything, the file's and the flags' keys are checked, so an unknown or old-style key is
    one line naming the file (or the command line), the key and its fix; a YAML value of the wrong type likewise."""
    args = list(args)
    parser = _Parser(cls)
    parser.set_defaults(**(defaults or {}))  # below the file and the flags, above the dataclass's own defaults
    actions = {a.dest: a for a in parser._actions}
    # The parser rewrites dataclass field types in place, so the annotations say which keys take a mapping or list.
    hints = {name: str(hint) for name, hint in typing.get_type_hints(cls).items()}
    config_path = None
    if "--config" in args:
        at = args.index("--config")
        if at + 1 >= len(args):
            raise ConfigError("command line: --config needs a YAML file")
        config_path = Path(args[at + 1])
        values = _read_yaml(config_path)
        values.pop("env", None)  # TRL's parser sets these environment variables
        for key, value in values.items():
            _check_key(key, actions, str(config_path))
            _check_value(actions[key], value, hints.get(key, ""), f"{config_path}: {key}")
    for arg in args:
        if arg.startswith("--") and arg != "--config":
            key = arg[2:].split("=", 1)[0].replace("-", "_")
            if not (key.startswith("no_") and key[3:] in actions):  # --no_KEY turns a boolean off
                _check_key(key, actions, "command line", flag=True)
    try:
        (cfg,) = parser.parse_args_and_config(args=args)
    except UserError:  # a config class's own check: its message names the key
        raise
    except (ValueError, TypeError) as exc:
        where = f"{config_path} + command line" if config_path else "command line"
        raise ConfigError(f"{where}: {' '.join(str(exc).split())}") from None
    return cfg


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        raise ConfigError(f"config file {path} not found")
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; pass a YAML file")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys to values")
    return loaded


def _check_key(key: str, actions: dict, where: str, *, flag: bool = False) -> None:
    shown = f"--{key}" if flag else key
    if key.split(".")[0] == "trainer" and "trainer" not in actions:
        raise ConfigError(f"{where}: '{shown}' is the old spelling; now write {RENAMED_KEYS['trainer']}")
    if key in actions:
        return
    if key in RENAMED_KEYS:
        new = RENAMED_KEYS[key]
        new = f"--{new}" if flag and new.isidentifier() else new
        raise ConfigError(f"{where}: '{shown}' is the old spelling; now write {new}")
    close = difflib.get_close_matches(key, [k for k in actions if k != "help"], n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ConfigError(f"{where}: unknown key '{shown}'; {hint}see `--help` for every key")


def _check_value(action: argparse.Action, value: Any, hint: str, where: str) -> None:
    """A YAML value goes to the parser as a default, which argparse never converts or checks: do it here."""
    if value is None or action.type is None or isinstance(value, str) and action.type is str:
        return
    if isinstance(value, dict):
        if "dict" in hint:
            return
        raise ConfigError(f"{where}: expected a single value, got a mapping")
    values = value if isinstance(value, list) else [value]
    if isinstance(value, list) and "list" not in hint:
        raise ConfigError(f"{where}: expected a single value, got a list")
    for item in values:
        if isinstance(item, bool) and action.type in (int, float):
            raise ConfigError(f"{where}: expected a number, got {item!r}")
        if isinstance(item, float) and action.type is int and not item.is_integer():
            raise ConfigError(f"{where}: expected an integer, got {item!r}")
        try:
            action.type(str(item))
        except (ValueError, TypeError, argparse.ArgumentTypeError):
            kind = getattr(action.type, "__name__", "value")
            kind = {"int": "an integer", "float": "a number", "string_to_bool": "true or false"}.get(kind, kind)
            raise ConfigError(f"{where}: expected {kind}, got {item!r}") from None


def config_values(cfg) -> dict[str, Any]:
    """A config as plain YAML-able values (enums as their names), the way it is recorded in a run's config.yaml."""
    values = cfg.to_dict() if hasattr(cfg, "to_dict") else dataclasses.asdict(cfg)
    return yaml.safe_load(yaml.safe_dump(values, sort_keys=False))
