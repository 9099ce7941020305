"""Typed stage configs: a dataclass per stage, read from YAML with `--key value` CLI overrides.

Unknown keys and ill-typed values are errors that name the key and where it came from. Keys of the TRL trainer
config that we do not model go under `trainer:` in YAML (or `--trainer.KEY value` on the CLI) and are passed to
`SFTConfig` / `GRPOConfig` unchanged, so every TRL knob stays reachable.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from srpo.errors import UserError

T = TypeVar("T")


class ConfigError(UserError, ValueError):
    """A config file or override that cannot be used; the message names the key and its origin."""


ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")


def _at_least(cfg, key: str, low: int) -> None:
    if getattr(cfg, key) < low:
        raise ConfigError(f"{key}: {getattr(cfg, key)!r} must be at least {low}")


def _positive(cfg, key: str) -> None:
    if not getattr(cfg, key) > 0:
        raise ConfigError(f"{key}: {getattr(cfg, key)!r} must be greater than 0")


def _in_range(cfg, key: str, low: float, high: float, *, high_open: bool = False) -> None:
    value = getattr(cfg, key)
    if not (low <= value < high if high_open else low <= value <= high):
        raise ConfigError(f"{key}: {value!r} must be in [{low}, {high}{')' if high_open else ']'}")


def _check_training(cfg) -> None:
    """Keys both stage configs share."""
    cfg.check_model_options()
    if not cfg.dataset:
        raise ConfigError("dataset: not set; give the training data (--dataset PATH)")
    if not cfg.output_dir:
        raise ConfigError("output_dir: not set; give a folder for checkpoints and the final model")
    _positive(cfg, "learning_rate")
    if cfg.max_steps == 0 or cfg.max_steps < -1:
        raise ConfigError(f"max_steps: {cfg.max_steps} must be a number of optimizer steps >= 1, or -1 to train "
                          "num_train_epochs epochs")
    if cfg.max_steps == -1:
        _positive(cfg, "num_train_epochs")
    _at_least(cfg, "per_device_train_batch_size", 1)
    _in_range(cfg, "warmup_ratio", 0.0, 1.0, high_open=True)
    from transformers import SchedulerType

    schedulers = tuple(s.value for s in SchedulerType)
    if cfg.lr_scheduler_type not in schedulers:
        raise ConfigError(f"lr_scheduler_type: {cfg.lr_scheduler_type!r} is unknown; use one of {schedulers}")
    _at_least(cfg, "logging_steps", 1)
    _at_least(cfg, "save_steps", 1)
    if cfg.save_total_limit is not None:
        _at_least(cfg, "save_total_limit", 1)
    from srpo.prompts import SYSTEM_PROMPTS

    if cfg.system_prompt and cfg.system_prompt not in SYSTEM_PROMPTS:
        raise ConfigError(f"system_prompt: {cfg.system_prompt!r} is unknown; use one of {sorted(SYSTEM_PROMPTS)}")
    _check_report_to(cfg.report_to)


def _check_report_to(report_to: list[str]) -> None:
    from transformers.integrations import get_available_reporting_integrations

    available = get_available_reporting_integrations()
    for backend in report_to:
        if backend in ("none", "all") or backend in available:
            continue
        raise ConfigError(f"report_to: {backend!r} is not installed here (installed: {available or 'none'}); "
                          f"`pip install {backend}` or drop it from report_to")


@dataclass
class ModelOptions:
    """How the policy is loaded and which of its parts train."""

    model: str = ""
    freeze_vision: bool = True  # SPEC §3/§5: vision tower and projector frozen
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: str = "all-linear"
    gradient_checkpointing: bool = False
    bf16: bool = False
    max_pixels: int | None = None  # SPEC §3: 262144 for real models; None keeps the processor's own setting
    # --- scale-out options (docs/scaling.md) ---
    load_in_4bit: bool = False  # QLoRA: 4-bit NF4 base weights (bitsandbytes, CUDA) under LoRA; needs lora: true
    use_liger_kernel: bool = False  # Liger Triton kernels (RMSNorm, RoPE, SwiGLU); needs `pip install liger-kernel`
    attn_implementation: str | None = None  # e.g. flash_attention_2 or sdpa; None = transformers' default

    def check_model_options(self) -> None:
        """Values that cannot work, named by key, before anything is loaded."""
        if not self.model:
            raise ConfigError("model: not set; give a checkpoint folder or hub id (--model PATH)")
        _at_least(self, "lora_r", 1)
        _positive(self, "lora_alpha")
        _in_range(self, "lora_dropout", 0.0, 1.0, high_open=True)
        if self.max_pixels is not None:
            _at_least(self, "max_pixels", 28 * 28)  # one merged 2x2 patch of 14 pixels
        if self.attn_implementation not in (None, *ATTENTION_IMPLEMENTATIONS) and "/" not in self.attn_implementation:
            raise ConfigError(f"attn_implementation: {self.attn_implementation!r} is unknown; use one of "
                              f"{ATTENTION_IMPLEMENTATIONS}, a kernels-hub id, or leave it unset")


@dataclass
class SFTStageConfig(ModelOptions):
    """Stage 1 SFT on reflection data (SPEC §3.5)."""

    dataset: str = ""  # a `srpo reflect` output dir (dataset/ inside) or a datasets dir with prompt/completion/images
    skip_bad: bool = False  # skip (and count) rows whose images the processor refuses or whose prompt fills max_length
    output_dir: str = "outputs/sft"
    learning_rate: float = 1e-5
    num_train_epochs: float = 1.0
    max_steps: int = -1
    per_device_train_batch_size: int = 1
    gradient_accumulation_steps: int = 8
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.1
    max_length: int = 4096
    logging_steps: int = 10
    save_steps: int = 500
    save_total_limit: int | None = 2
    seed: int = 42
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
    system_prompt: str = "sft"
    trainer: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        _check_training(self)
        _at_least(self, "gradient_accumulation_steps", 1)
        _at_least(self, "max_length", 1)


TARGET_SHAPES = ("sft", "five_block")  # srpo reflect: the SFT target without or with the second <think>
VLLM_MODES = ("colocate", "server")
LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo")  # TRL 1.16's GRPO losses
SCALE_REWARDS = ("group", "batch", "none")


@dataclass
class RLStageConfig(ModelOptions):
    """Stage 2 reflection-aware GRPO (SPEC §4, §5)."""

    dataset: str = ""  # problems file/dir (JSONL, Parquet or datasets dir) in the srpo problem schema
    skip_bad: bool = False  # skip (and count) bad rows, refused images and over-long prompts instead of stopping
    output_dir: str = "outputs/rl"
    preset: str = "paper"  # paper | reference | grpo (SPEC §4)
    system_prompt: str = "reflection"
    num_generations: int = 8  # SPEC §5 group size
    prompts_per_step: int = 128  # SPEC §5: 128 prompts per step
    per_device_train_batch_size: int = 8  # completions per device per micro-batch
    temperature: float = 1.0
    learning_rate: float = 1e-6
    lr_scheduler_type: str = "cosine_with_min_lr"
    min_lr_rate: float = 0.1  # SPEC §5: min 10%
    warmup_ratio: float = 0.03
    beta: float = 0.0  # SPEC §5: no KL
    loss_type: str = "grpo"  # SPEC §5: GRPO; TRL's default is dapo
    scale_rewards: str = "group"  # (r - mean) / (std + eps) per prompt group
    max_prompt_length: int = 1024  # TRL does not truncate prompts: longer ones are rejected up front
    max_completion_length: int = 2048
    group_accuracy_filter: list[float] | None = None  # e.g. [0.1, 0.9] (SPEC §5 optional online filter)
    max_steps: int = 500
    num_train_epochs: float = 1.0
    logging_steps: int = 1
    save_steps: int = 50
    save_total_limit: int | None = 2
    seed: int = 42
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
    use_vllm: bool = False
    vllm_mode: str = "colocate"  # colocate (vLLM inside each training process) | server (`trl vllm-serve`)
    vllm_server_base_url: str | None = None  # server mode, e.g. http://10.0.0.5:8000; None = localhost:8000
    vllm_gpu_memory_utilization: float = 0.3  # colocate: fraction of each GPU's memory vLLM may take
    vllm_tensor_parallel_size: int = 1  # colocate: GPUs per vLLM engine (server mode: set on `trl vllm-serve`)
    vllm_enable_sleep_mode: bool = False  # colocate: vLLM releases its weights and KV cache while the policy trains
    trainer: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        from srpo.rewards import PRESETS

        _check_training(self)
        if self.preset not in PRESETS:
            raise ConfigError(f"preset: {self.preset!r} is unknown; use one of {PRESETS}")
        if self.num_generations < 2:
            raise ConfigError(f"num_generations: {self.num_generations} must be at least 2 (GRPO's advantage compares "
                              "the completions of one prompt with each other)")
        _at_least(self, "prompts_per_step", 1)
        if self.loss_type not in LOSS_TYPES:
            raise ConfigError(f"loss_type: {self.loss_type!r} is unknown; use one of {LOSS_TYPES} (the paper's: grpo)")
        if self.scale_rewards not in SCALE_REWARDS:
            raise ConfigError(f"scale_rewards: {self.scale_rewards!r} is unknown; use one of {SCALE_REWARDS}")
        _positive(self, "temperature")
        _in_range(self, "min_lr_rate", 0.0, 1.0)
        if self.beta < 0:
            raise ConfigError(f"beta: {self.beta} must be >= 0 (the KL coefficient; the paper uses 0)")
        _at_least(self, "max_prompt_length", 1)
        _at_least(self, "max_completion_length", 1)
        if self.group_accuracy_filter is not None:
            band = self.group_accuracy_filter
            if len(band) != 2 or not 0.0 <= band[0] <= band[1] <= 1.0:
                raise ConfigError(f"group_accuracy_filter: {band} must be [low, high] with 0 <= low <= high <= 1 "
                                  "(e.g. [0.1, 0.9]), or null")
        if self.vllm_mode not in VLLM_MODES:
            raise ConfigError(f"vllm_mode: {self.vllm_mode!r} is unknown; use one of {VLLM_MODES}")
        _in_range(self, "vllm_gpu_memory_utilization", 0.01, 1.0)
        _at_least(self, "vllm_tensor_parallel_size", 1)


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Build `cls` from a YAML file, then apply `--key value` overrides (dotted keys reach into `trainer`)."""
    values: dict[str, Any] = {}
    origin = "defaults"
    if path is not None:
        path = Path(path)
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
        values.update(loaded)
        origin = str(path)
    names = {f.name: f for f in dataclasses.fields(cls)}
    for key in values:
        if key not in names:
            raise ConfigError(f"{origin}: unknown key '{key}' for {cls.__name__}; known keys: {sorted(names)}")
    origins = {key: origin for key in values}
    for key, value in parse_overrides(overrides or []).items():
        top, _, sub = key.partition(".")
        if top not in names:
            raise ConfigError(f"command line: unknown option '--{key}' for {cls.__name__}; known: {sorted(names)}")
        if sub:
            if top != "trainer":
                raise ConfigError(f"command line: '--{key}': only 'trainer.' keys may be dotted")
            values.setdefault("trainer", {})
            values["trainer"] = {**values["trainer"], sub: value}
        else:
            values[top] = value
        origins[top] = "command line"
    for key, value in values.items():
        values[key] = _coerce(value, names[key].type, f"{origins[key]}: '{key}'")
    return cls(**values)


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """`--key value`, `--key=value` and bare `--flag` (true) into a dict; values are read as YAML scalars."""
    result: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ConfigError(f"command line: expected --key value, got '{arg}'")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                value, i = args[i + 1], i + 1
            else:
                value = "true"
        result[key.replace("-", "_")] = yaml.safe_load(value) if value != "" else ""
        i += 1
    return result


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    hint = _resolve(annotation)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is list:
        if not isinstance(value, list):
            value = [value]
        return [_coerce(v, args[0], where) if args else v for v in value]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if hint in (int, float) and isinstance(value, str):  # YAML 1.1 reads '3e-6' as a string
        try:
            value = hint(value)
        except ValueError:
            pass
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def _resolve(annotation: Any) -> Any:
    if isinstance(annotation, str):  # `from __future__ import annotations` keeps them as strings
        return eval(annotation, {**vars(typing), "Any": Any, "list": list, "dict": dict})  # noqa: S307
    return annotation


@dataclass
class ReflectConfig:
    """Stage 1 data building (SPEC §3.2-§3.4): attempts, teacher reflections, filters."""

    problems: str = ""
    skip_bad: bool = False  # skip (and count) bad rows and images the local policy's processor refuses
    policy: str = ""  # a model path (local batched generation) or the http(s) URL of an OpenAI-compatible server
    out: str = "outputs/reflect"
    teacher: str = "oracle"  # "oracle" (worked solutions, no model) or the http(s) URL of an OpenAI-compatible server
    system_prompt: str = "attempt"
    attempt_temperature: float = 0.2  # SPEC §3.2
    attempt_max_new_tokens: int = 1024  # SPEC §3.2
    batch_size: int = 8
    right_fraction: float | None = 0.3  # SPEC §3.3: about 30% right, 70% wrong; None keeps the natural mix
    limit: int | None = None  # use only the first N problems
    max_examples: int | None = None
    min_reasoning_chars: int = 1
    max_reasoning_chars: int = 8000
    max_reflection_chars: int = 4000
    target_shape: str = "sft"  # sft: SPEC §1 SFT target (no second think); five_block: with the second think
    seed: int = 0
    # --- endpoints (docs/teacher.md): policy and/or teacher on OpenAI-compatible servers ---
    policy_model: str = ""  # model name at the policy endpoint; "" = the server's only model (as vllm serve lists)
    policy_api_key_env: str = ""  # env var holding the policy endpoint's API key; "" = no key (local vllm/sglang)
    teacher_model: str = ""  # model name at the teacher endpoint, e.g. o4-mini; "" = the server's only model
    teacher_api_key_env: str = "OPENAI_API_KEY"  # env var holding the teacher's API key (the key is never logged)
    teacher_prompt: str | None = None  # a template file; None = srpo.prompts.TEACHER_PROMPT_TEMPLATE (SPEC §2)
    teacher_temperature: float | None = None  # None = the server's default (o-series models accept only that)
    teacher_max_tokens: int | None = None  # sent as max_completion_tokens; None = the server's default
    teacher_json_mode: bool = False  # send response_format={"type": "json_object"}
    teacher_extra_body: dict[str, Any] = field(default_factory=dict)  # extra request fields, e.g. reasoning_effort
    policy_extra_body: dict[str, Any] = field(default_factory=dict)
    image_max_pixels: int | None = None  # downscale images sent to endpoints to at most this many pixels
    concurrency: int = 32  # requests in flight per endpoint
    request_timeout: float = 300.0  # seconds per request
    max_retries: int = 8  # per item, on 429 / 5xx / timeouts / dropped connections (exponential backoff + jitter)
    malformed_retries: int = 2  # re-requests of a malformed teacher reply before the item is recorded as failed
    backoff_base: float = 1.0  # seconds; retry k waits min(backoff_max, backoff_base * 2**k) * U(0.5, 1)
    backoff_max: float = 60.0
    abort_after_failures: int = 50  # stop the run after this many items in a row fail (0 = never)
    retry_failed: bool = False  # on resume, request again the items recorded as failed
    fsync: bool = True  # fsync the stores after each group of finished items
    progress: bool = True  # progress bars (rate, ETA)
    min_reflection_chars: int = 1
    dedupe: bool = True  # drop an attempt identical to an earlier one on the same question and images
    teacher_price_input: float = 0.0  # USD per 1M prompt tokens, for the cost estimate in summary.json
    teacher_price_output: float = 0.0  # USD per 1M completion tokens
    policy_price_input: float = 0.0
    policy_price_output: float = 0.0

    def check(self) -> None:
        """Values that cannot work, named by key, before any file is read, model loaded or request made; NaN fails
        every comparison, so it is refused too."""
        for key, ok, must in self._value_rules():
            if not ok:
                raise ConfigError(f"{key} = {getattr(self, key)!r}: {must}")

    def _value_rules(self) -> list[tuple[str, bool, str]]:
        """(key, whether its value can work, what it must be)."""
        def positive_or_null(value):
            return value is None or value >= 1

        return [
            ("right_fraction", self.right_fraction is None or 0 <= self.right_fraction <= 1,
             "must be between 0 and 1 (the share of right first attempts to keep), or null to keep the natural mix"),
            ("limit", positive_or_null(self.limit), "must be at least 1 (use the first N problems), or null for all"),
            ("max_examples", positive_or_null(self.max_examples), "must be at least 1, or null for no cap"),
            ("batch_size", self.batch_size >= 1, "must be at least 1"),
            ("concurrency", self.concurrency >= 1, "must be at least 1 (requests in flight per endpoint)"),
            ("max_retries", self.max_retries >= 0, "must be 0 or more"),
            ("malformed_retries", self.malformed_retries >= 0, "must be 0 or more"),
            ("abort_after_failures", self.abort_after_failures >= 0, "must be 0 (never stop) or more"),
            ("request_timeout", self.request_timeout > 0, "must be a positive number of seconds"),
            ("backoff_base", self.backoff_base >= 0, "must be 0 or more seconds"),
            ("backoff_max", self.backoff_max >= self.backoff_base,
             f"must be at least backoff_base = {self.backoff_base!r}; raise it or lower backoff_base"),
            ("attempt_temperature", self.attempt_temperature >= 0, "must be 0 (greedy) or more"),
            ("teacher_temperature", self.teacher_temperature is None or self.teacher_temperature >= 0,
             "must be 0 or more, or null for the server's default"),
            ("attempt_max_new_tokens", self.attempt_max_new_tokens >= 1, "must be at least 1"),
            ("teacher_max_tokens", positive_or_null(self.teacher_max_tokens),
             "must be at least 1, or null for the server's default"),
            ("image_max_pixels", positive_or_null(self.image_max_pixels), "must be at least 1, or null to send images as they are"),
            ("min_reasoning_chars", 0 <= self.min_reasoning_chars <= self.max_reasoning_chars,
             f"must be from 0 to max_reasoning_chars = {self.max_reasoning_chars!r}; lower it or raise max_reasoning_chars"),
            ("min_reflection_chars", 0 <= self.min_reflection_chars <= self.max_reflection_chars,
             f"must be from 0 to max_reflection_chars = {self.max_reflection_chars!r}; lower it or raise max_reflection_chars"),
            ("target_shape", self.target_shape in TARGET_SHAPES, f"must be one of {TARGET_SHAPES}"),
            *((key, getattr(self, key) >= 0, "must be 0 or more (USD per 1M tokens)")
              for key in ("teacher_price_input", "teacher_price_output", "policy_price_input", "policy_price_output")),
        ]
