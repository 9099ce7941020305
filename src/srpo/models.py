"""Load a policy and its processor: a real checkpoint, or a tiny Qwen2.5-VL built offline in seconds.

The tiny model has the real architecture (Qwen2_5_VLForConditionalGeneration) with small dimensions, a byte-level
BPE tokenizer trained locally on `assets/tokenizer_corpus.txt` (shipped, so it is stable across versions), the Qwen
special tokens and chat template, and the PIL image processor. Given a real processor folder instead
(`build_tiny_model(..., processor_dir=DIR)`), it keeps that folder's tokenizer, vocabulary size, chat template and
image-processor settings, so tests see the real token ids and image-token counts. Everything that takes a model
takes a path, so the same code runs on `Qwen/Qwen2.5-VL-7B-Instruct`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import torch
from transformers import (
    AutoImageProcessor,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessorPil,
)

from srpo.errors import UserError
from srpo.files import check_output_dir, replace_dir

QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# The SRPO tags are ordinary (decoded) tokens; one token each keeps a tiny model's job simple.
REASONING_TAGS = ["<think>", "</think>", "<answer>", "</answer>", "<reflection>", "</reflection>"]

# Qwen2-VL's chat template (images as <|vision_start|><|image_pad|><|vision_end|>), default system prompt included.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class ModelLoadError(UserError, ValueError):
    """A model or processor path that cannot be used; the message says which and how to fix it."""


STOCK_PROCESSOR_CLASS = "Qwen2_5_VLProcessor"


class Qwen2_5_VLProcessorWithoutVideo(Qwen2_5_VLProcessor):
    """Qwen2.5-VL processor without the video processor, which requires torchvision (absent on CPU machines).

    It saves itself under the stock class name, so a checkpoint srpo writes loads with the stock classes (and in
    `vllm serve`) without srpo installed; srpo's `load_processor` falls back to this class where torchvision is
    missing."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        # The parent takes (image, tokenizer, video); ProcessorMixin reads our signature and keeps the first two.
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "processor_class": STOCK_PROCESSOR_CLASS}

    def save_pretrained(self, save_directory, *args, **kwargs):
        result = super().save_pretrained(save_directory, *args, **kwargs)
        folder = Path(save_directory)
        # The tokenizer was told our class name as its processor_class; write the stock one there too.
        config = folder / "tokenizer_config.json"
        if config.exists():
            data = json.loads(config.read_text(encoding="utf-8"))
            if data.get("processor_class") not in (None, STOCK_PROCESSOR_CLASS):
                data["processor_class"] = STOCK_PROCESSOR_CLASS
                config.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        # The stock processor also builds a video processor, from video_preprocessor_config.json or else
        # preprocessor_config.json (as the upstream checkpoints ship it); with neither, AutoProcessor (and vLLM)
        # cannot load the folder even where torchvision is installed.
        legacy = folder / "preprocessor_config.json"
        if not legacy.exists() and not (folder / "video_preprocessor_config.json").exists():
            data = {**self.image_processor.to_dict(), "processor_class": STOCK_PROCESSOR_CLASS}
            legacy.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return result


# Without this, AutoProcessor cannot resolve the class name saved in processor_config.json and silently
# returns a bare tokenizer.
AutoProcessor.register(Qwen2_5_VLConfig, Qwen2_5_VLProcessorWithoutVideo, exist_ok=True)


@dataclass
class TinyModelSpec:
    """Dimensions of the offline tiny Qwen2.5-VL. Image side lengths are multiples of 28 (patch 14 x merge 2)."""

    vocab_size: int = 1024
    hidden_size: int = 192
    intermediate_size: int = 512
    num_hidden_layers: int = 4
    num_attention_heads: int = 6
    num_key_value_heads: int = 2
    vision_hidden_size: int = 96
    vision_intermediate_size: int = 192
    vision_depth: int = 2
    vision_num_heads: int = 2
    min_pixels: int = 28 * 28 * 4
    max_pixels: int = 28 * 28 * 64
    max_position_embeddings: int = 4096
    seed: int = 0


# For a real processor (`processor_dir`): the real vocabulary (152,064 rows) makes the embedding the bulk of the
# model, so the hidden size stays small (64: about 10M parameters, fast CPU steps). vocab_size and the pixel bounds
# are then taken from the processor folder, not from here.
REAL_PROCESSOR_SPEC = TinyModelSpec(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    vision_hidden_size=32, vision_intermediate_size=64, vision_depth=2, vision_num_heads=2,
)


def _corpus_lines() -> list[str]:
    text = resources.files("srpo").joinpath("assets/tokenizer_corpus.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def build_tiny_tokenizer(vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on the shipped corpus; digits split one by one as Qwen's tokenizer does."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"\d"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=QWEN_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus_lines(), trainer=trainer)
    tokenizer.add_tokens(REASONING_TAGS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=QWEN_SPECIAL_TOKENS[1:],
        chat_template=CHAT_TEMPLATE,
        model_max_length=8192,
        padding_side="left",
    )
    return fast


def build_tiny_processor(spec: TinyModelSpec | None = None) -> Qwen2_5_VLProcessorWithoutVideo:
    spec = spec or TinyModelSpec()
    tokenizer = build_tiny_tokenizer(spec.vocab_size)
    image_processor = Qwen2VLImageProcessorPil(min_pixels=spec.min_pixels, max_pixels=spec.max_pixels)
    return Qwen2_5_VLProcessorWithoutVideo(image_processor, tokenizer, chat_template=CHAT_TEMPLATE)


def build_tiny_config(
    tokenizer, spec: TinyModelSpec | None = None, *, vocab_size: int | None = None, image_processor=None
) -> Qwen2_5_VLConfig:
    """The tiny architecture; `vocab_size` (default: the tokenizer's length) and the vision patching of
    `image_processor` (patch, merge, temporal patch sizes; default 14, 2, 2) come from a real processor when given."""
    spec = spec or TinyModelSpec()
    patch = getattr(image_processor, "patch_size", None) or 14
    merge = getattr(image_processor, "merge_size", None) or 2
    temporal = getattr(image_processor, "temporal_patch_size", None) or 2
    head_dim = spec.hidden_size // spec.num_attention_heads
    # Multimodal RoPE splits head_dim/2 frequencies over (time, height, width); Qwen uses [16, 24, 24] of 64.
    quarter = head_dim // 8
    mrope_section = [head_dim // 2 - 3 * quarter, quarter * 3 // 2, quarter * 3 // 2]
    mrope_section[0] = head_dim // 2 - mrope_section[1] - mrope_section[2]
    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in QWEN_SPECIAL_TOKENS}
    return Qwen2_5_VLConfig(
        text_config={
            "vocab_size": vocab_size or len(tokenizer),
            "hidden_size": spec.hidden_size,
            "intermediate_size": spec.intermediate_size,
            "num_hidden_layers": spec.num_hidden_layers,
            "num_attention_heads": spec.num_attention_heads,
            "num_key_value_heads": spec.num_key_value_heads,
            "max_position_embeddings": spec.max_position_embeddings,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope_section},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
            "tie_word_embeddings": True,
        },
        vision_config={
            "depth": spec.vision_depth,
            "hidden_size": spec.vision_hidden_size,
            "intermediate_size": spec.vision_intermediate_size,
            "num_heads": spec.vision_num_heads,
            "out_hidden_size": spec.hidden_size,
            "fullatt_block_indexes": [spec.vision_depth - 1],
            "window_size": 112,
            "patch_size": patch,
            "spatial_merge_size": merge,
            "temporal_patch_size": temporal,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )


def build_tiny_model(
    output_dir: str | Path | None = None, spec: TinyModelSpec | None = None, processor_dir: str | Path | None = None
) -> tuple[Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessorWithoutVideo]:
    """A randomly initialised tiny Qwen2.5-VL and its processor; saved to `output_dir` when given, replacing the
    folder whole (written beside it, then swapped in: a crash never leaves half a checkpoint).

    With `processor_dir` (a checkpoint folder or the processor files of one, with its config.json) the model keeps
    that folder's tokenizer, chat template, image-processor settings and vocabulary size (default dimensions:
    REAL_PROCESSOR_SPEC). The saved folder names only stock classes, so transformers and vLLM load it without srpo."""
    if output_dir is not None:
        check_output_dir(output_dir, "tiny model folder")
    if processor_dir is None:
        spec = spec or TinyModelSpec()
        processor = build_tiny_processor(spec)
        config = build_tiny_config(processor.tokenizer, spec)
    else:
        spec = spec or REAL_PROCESSOR_SPEC
        processor = load_processor(processor_dir)
        config = build_tiny_config(processor.tokenizer, spec, vocab_size=_checkpoint_vocab_size(processor_dir, processor),
                                   image_processor=processor.image_processor)
    torch.manual_seed(spec.seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    if output_dir is not None:
        record = {**asdict(spec), "processor_dir": str(processor_dir) if processor_dir is not None else None}

        def save(folder: Path) -> None:
            model.save_pretrained(folder)
            processor.save_pretrained(folder)
            (folder / "srpo_tiny_spec.json").write_text(json.dumps(record, indent=2))

        replace_dir(output_dir, save)
    return model, processor


def _checkpoint_vocab_size(folder: str | Path, processor) -> int:
    """The embedding rows of the checkpoint the processor came from (Qwen2.5-VL pads 151,665 tokens to 152,064);
    at least the tokenizer's length."""
    config = json.loads((Path(folder).expanduser() / "config.json").read_text(encoding="utf-8"))
    size = config.get("vocab_size") or (config.get("text_config") or {}).get("vocab_size") or 0
    return max(int(size), len(processor.tokenizer))


def load_processor(path: str | Path):
    """The checkpoint's processor; falls back to the image-only processor when the stock one needs torchvision."""
    path = str(path)
    _check_local_path(path)
    error: Exception | None = None
    try:
        processor = AutoProcessor.from_pretrained(path)
        if hasattr(processor, "image_processor"):
            return processor
    except (ImportError, ValueError, TypeError, OSError) as exc:  # stock Qwen-VL processor demands torchvision
        error = exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
        image_processor = AutoImageProcessor.from_pretrained(path, backend="pil")
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"{path}: no usable processor (tokenizer + image processor) found: {exc}"
            + (f" (AutoProcessor said: {error})" if error else "")
        ) from exc
    chat_template = getattr(tokenizer, "chat_template", None) or CHAT_TEMPLATE
    return Qwen2_5_VLProcessorWithoutVideo(image_processor, tokenizer, chat_template=chat_template)


def load_model(path: str | Path, *, dtype: str | torch.dtype = "auto", device_map=None, **kwargs):
    """A vision-language model from a local checkpoint or hub id, through the Auto classes.

    Every tensor must load: a missing, unexpected or mis-shaped key (transformers only warns) is a ModelLoadError
    naming the keys, since the model would otherwise run with random weights there."""
    path = str(path)
    _check_local_path(path)
    try:
        model, info = AutoModelForImageTextToText.from_pretrained(
            path, dtype=dtype, device_map=device_map, output_loading_info=True, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: cannot load model weights/config: {exc}") from exc
    missing, unexpected = sorted(info["missing_keys"]), sorted(info["unexpected_keys"])
    mismatched = sorted(str(key[0] if isinstance(key, tuple) else key) for key in info.get("mismatched_keys", ()))
    if missing or unexpected or mismatched:
        extra = f"; shapes differ for {', '.join(mismatched[:8])}" if mismatched else ""
        raise ModelLoadError(key_mismatch_message(
            f"model {path}", missing, unexpected,
            f"Its weights do not fit the architecture in its config.json{extra}: use the checkpoint folder they were "
            "saved with, or re-save the model with save_pretrained."))
    return model


def key_mismatch_message(what: str, missing: list[str], unexpected: list[str], fix: str) -> str:
    def shown(keys: list[str]) -> str:
        return ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")

    parts = [f"{len(missing)} of the model's tensors are not in it ({shown(missing)})"] if missing else []
    if unexpected:
        parts.append(f"{len(unexpected)} of its tensors are not in the model ({shown(unexpected)})")
    return f"{what} does not match the model key for key: {'; '.join(parts) or 'tensor shapes differ'}. {fix}"


def load_policy(path: str | Path, **kwargs):
    """(model, processor) for a checkpoint path."""
    return load_model(path, **kwargs), load_processor(path)


def is_local_path(path: str) -> bool:
    """A model given as a path on disk rather than a hub id ("org/name" that is not on disk)."""
    return path.startswith((".", "/", "~")) or Path(path).exists() or path.count("/") != 1


def _check_local_path(path: str) -> None:
    looks_local = is_local_path(path)
    if looks_local and not Path(path).expanduser().exists():
        raise ModelLoadError(
            f"model path '{path}' does not exist. Pass a checkpoint directory (config.json + weights) or a hub id "
            "such as 'Qwen/Qwen2.5-VL-7B-Instruct'; `srpo build-tiny-model DIR` makes an offline tiny model."
        )
    if looks_local and not (Path(path).expanduser() / "config.json").exists():
        raise ModelLoadError(f"model path '{path}' has no config.json: it is not a Hugging Face checkpoint directory.")


def token_counter(tokenizer) -> Callable[[str], int]:
    """count(text): the length of `text` in the tokenizer's own tokens, without special tokens (docs/method.md#rewards:
    lengths are counted with the policy's tokenizer). Training's length reward and evaluation's lengths both use it."""
    return lambda text: len(tokenizer(text or "", add_special_tokens=False)["input_ids"])
