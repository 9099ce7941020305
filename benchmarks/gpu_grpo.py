"""GRPO steps on one GPU with the real Qwen2.5-VL-3B (and 7B + LoRA) architecture: throughput, MFU, peak memory.

The model is built in code from the published Qwen2.5-VL configuration (no hub download) with random weights;
prompts are a synthetic image plus filler text. Each model runs twice in the same process, side by side:

* srpo_recipe:  the settings of recipes/qwen2_5_vl_7b/rl.yaml as `srpo rl` applies them on one GPU: bf16
  weights, vision tower frozen, loss_type grpo, beta 0, group scaling, activation checkpointing, the recipe's
  per-device batch, `--prompts-per-step` prompts x num_generations completions per optimizer step (one
  generation per step, as the recipe);
* trl_defaults: `GRPOConfig()` defaults (float32 weights as TRL loads a model path, bf16 autocast, everything
  trainable, loss_type dapo, per_device_train_batch_size 8, gradient_accumulation_steps 1, so 8 completions =
  1 prompt per step, activation checkpointing).

Both share the task: the same prompts, num_generations 8, `--max-completion-length` (TRL's default would be 512).
Generation is transformers' `generate` (TRL's path without vLLM). A random model almost never samples the end
token, so every completion runs to the maximum length: the figures are for full-length completions.

Per setting it reports, averaged over the measured steps (after `--warmup` steps):
* generation tokens/s: completion tokens / time inside generate;
* training tokens/s: real (unpadded) prompt + completion tokens / (step time - rollout time), where the rollout is
  generation + rewards + advantages, and the rest is forward, backward and the optimizer step;
* MFU: model FLOPs of that training work / (training time x the GPU's dense bf16 peak). Model FLOPs per token:
  2 x params forward, + 2 x params backward to activations, + 2 x trainable params for weight gradients; causal
  attention 2·S·d per token per layer forward (x3 with backward); the LM head on completion tokens only (TRL
  computes log-probs only there); the vision tower per patch (forward only when frozen). Recomputation by
  activation checkpointing is not counted (MFU, not hardware FLOPs utilisation). step MFU divides the same FLOPs
  plus 2 x params per generated token by the whole step time;
* peak memory: torch.cuda.max_memory_allocated / max_memory_reserved over the run.

Usage (a CUDA machine with torch, transformers, peft, accelerate, datasets and trl; run from the repository root):
    python benchmarks/gpu_grpo.py                                  # Qwen2.5-VL-3B, both settings
    python benchmarks/gpu_grpo.py --models 7b-lora                 # Qwen2.5-VL-7B with LoRA r=16, both settings
    python benchmarks/gpu_grpo.py --models 3b 7b-lora --steps 3 --max-completion-length 2048
    python benchmarks/gpu_grpo.py --smoke --out /tmp/smoke.json    # CPU, tiny model, seconds (tests use this)
Results: benchmarks/results/gpu_grpo_<device>.json (the device name is in the file and in its name).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import platform
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

# Dense bf16 peak (TFLOP/s, no sparsity) by device name, for MFU. Longest match first; --peak-tflops overrides.
PEAK_BF16_TFLOPS = [
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),  # SXM (NVIDIA H100 80GB HBM3)
    ("H200", 989.4),
    ("GH200", 989.4),
    ("H800", 989.4),
    ("H20", 148.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
]

# Language-model linear layers only: the vision tower stays frozen (as srpo.train.common.LANGUAGE_LINEAR_LAYERS).
LANGUAGE_LINEAR_LAYERS = r"^(?!.*visual).*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"

# Published Qwen2.5-VL configurations (config.json of Qwen/Qwen2.5-VL-{3B,7B}-Instruct), written out here.
VISION_COMMON = {
    "depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "in_chans": 3, "patch_size": 14,
    "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31],
    "tokens_per_second": 2, "hidden_act": "silu",
}  # fmt: skip
QWEN25_VL = {
    "3b": {
        "text": {"vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
                 "num_attention_heads": 16, "num_key_value_heads": 2, "tie_word_embeddings": True},
        "vision": {**VISION_COMMON, "out_hidden_size": 2048},
    },
    "7b": {
        "text": {"vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                 "num_attention_heads": 28, "num_key_value_heads": 4, "tie_word_embeddings": False},
        "vision": {**VISION_COMMON, "out_hidden_size": 3584},
    },
}  # fmt: skip
MODELS = {"3b": ("3b", False), "7b-lora": ("7b", True), "3b-lora": ("3b", True), "tiny": ("tiny", False)}


def fail(message: str, code: int = 2):
    print(f"gpu_grpo.py: {message}", file=sys.stderr)
    raise SystemExit(code)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["3b"], choices=sorted(MODELS))
    p.add_argument("--settings", nargs="+", default=["srpo_recipe", "trl_defaults"],
                   choices=["srpo_recipe", "trl_defaults"])
    p.add_argument("--recipe", default=str(ROOT / "recipes" / "qwen2_5_vl_7b" / "rl.yaml"),
                   help="the srpo RL recipe whose settings srpo_recipe uses")
    p.add_argument("--prompts-per-step", type=int, default=8, help="srpo_recipe: prompts per optimizer step")
    p.add_argument("--max-completion-length", type=int, default=1024)
    p.add_argument("--prompt-text-tokens", type=int, default=200, help="filler text tokens per prompt (+ image)")
    p.add_argument("--image-size", type=int, default=448, help="side of the square synthetic image (448: 256 tokens)")
    p.add_argument("--steps", type=int, default=2, help="measured optimizer steps per setting")
    p.add_argument("--warmup", type=int, default=1, help="optimizer steps run first and not measured")
    p.add_argument("--attn-implementation", default="sdpa")
    p.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of the GPU for MFU")
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/gpu_grpo_<device>.json)")
    p.add_argument("--smoke", action="store_true",
                   help="CPU end-to-end check: tiny model, 4 tokens, 1 step per setting (figures meaningless)")
    args = p.parse_args(argv)
    if args.smoke:
        args.models = ["tiny"]
        args.max_completion_length, args.prompt_text_tokens, args.image_size = 4, 16, 56
        args.steps, args.warmup, args.prompts_per_step = 1, 0, 1
    elif not torch.cuda.is_available():
        fail("needs a CUDA GPU (torch.cuda.is_available() is False). Run it on a GPU machine, or use --smoke for "
             "the CPU end-to-end check on the tiny model.")
    return args


def load_recipe(path: str) -> dict:
    import yaml

    recipe = yaml.safe_load(Path(path).read_text())
    return {k: recipe[k] for k in ("num_generations", "per_device_train_batch_size", "temperature", "learning_rate",
                                   "lr_scheduler_type", "lr_scheduler_kwargs", "warmup_steps", "beta", "loss_type",
                                   "scale_rewards", "gradient_checkpointing", "bf16", "freeze_vision", "max_pixels")}


# ----------------------------------------------------------------------------------------------- model and data
def build_processor(max_pixels: int):
    sys.path.insert(0, str(ROOT / "src"))
    from srpo.models import TinyModelSpec, build_tiny_processor  # torch + transformers only

    return build_tiny_processor(TinyModelSpec(max_pixels=max_pixels))


def model_config(size: str, tokenizer):
    from transformers import Qwen2_5_VLConfig

    if size == "tiny":
        from srpo.models import build_tiny_config

        config = build_tiny_config(tokenizer)
    else:
        spec = QWEN25_VL[size]
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in
               ("<|endoftext|>", "<|im_end|>", "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")}
        config = Qwen2_5_VLConfig(
            text_config={
                **spec["text"], "max_position_embeddings": 128000, "rms_norm_eps": 1e-6, "hidden_act": "silu",
                "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
                # The benchmark's tokenizer is srpo's small offline one: its special-token ids, the real vocab size.
                "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
                "pad_token_id": ids["<|endoftext|>"],
            },
            vision_config=spec["vision"],
            image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
            vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
            tie_word_embeddings=spec["text"]["tie_word_embeddings"],
        )  # fmt: skip
    return config


def build_model(config, dtype, device, attn_implementation: str):
    from transformers import Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(0)
    with torch.device(device):  # random initialisation directly on the GPU
        model = Qwen2_5_VLForConditionalGeneration._from_config(
            config, dtype=dtype, attn_implementation=attn_implementation
        )
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    return model


def build_dataset(tokenizer, n: int, text_tokens: int, image_size: int, seed: int):
    import datasets
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    words = "count the shapes in the figure and give the area of the shaded region in square units".split()
    rows = []
    for i in range(n):
        text = f"Problem {i}: " + " ".join(words[j % len(words)] for j in range(i, i + 4 * text_tokens))
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:text_tokens]
        pixels = rng.integers(0, 256, size=(image_size, image_size, 3), dtype=np.uint8)
        rows.append({"prompt": [{"role": "user", "content": tokenizer.decode(ids)}],
                     "images": [Image.fromarray(pixels)]})
    return datasets.Dataset.from_list(rows)


def varied_length_reward(completions, **_):
    """Cheap and non-constant, so advantages (and gradients) are not all zero."""
    return [float(len(c[0]["content"]) % 7) for c in completions]


# ----------------------------------------------------------------------------------------------- FLOPs
def param_counts(model) -> dict:
    text = model.config.text_config
    counts = defaultdict(int)
    trainable = defaultdict(int)
    for name, p in model.named_parameters():
        if "lora_" in name:
            part = "lora"
        elif ".visual." in name or name.startswith("visual.") or "model.visual" in name:
            part = "vision"
        elif "embed_tokens" in name:
            part = "embedding"
        elif "lm_head" in name:
            part = "lm_head"
        else:
            part = "language"
        counts[part] += p.numel()
        trainable[part] += p.numel() if p.requires_grad else 0
    lm_head = text.hidden_size * text.vocab_size  # tied or not, the head is a matmul
    return {"vision": counts["vision"], "language_layers": counts["language"], "embedding": counts["embedding"],
            "lm_head": lm_head, "lora": counts["lora"], "total": sum(counts.values()),
            "trainable": sum(trainable.values()),
            "vision_trainable": trainable["vision"] > 0,
            "language_trainable": trainable["language"] > 0,
            "lm_head_trainable": trainable["lm_head"] > 0 or (trainable["embedding"] > 0 and text.tie_word_embeddings)}


def train_flops(counts: dict, config, seq_lens, completion_tokens: int, vision_patches: int) -> float:
    """Model FLOPs of one training pass (forward + backward) over sequences of the given real lengths."""
    text = config.text_config
    head_dim = text.hidden_size // text.num_attention_heads
    attn_width = text.num_attention_heads * head_dim
    tokens = sum(seq_lens)
    lm = (4 + (2 if counts["language_trainable"] else 0)) * counts["language_layers"] * tokens
    lora = 6 * counts["lora"] * tokens
    head = (4 + (2 if counts["lm_head_trainable"] else 0)) * counts["lm_head"] * completion_tokens
    attention = 3 * sum(2 * s * s * attn_width * text.num_hidden_layers for s in seq_lens)
    # Patches before merging; the vision tower's own attention (mostly windowed) is left out.
    vision = (6 if counts["vision_trainable"] else 2) * counts["vision"] * vision_patches
    return float(lm + lora + head + attention + vision)


def generation_flops(counts: dict, generated_tokens: int) -> float:
    return 2.0 * (counts["language_layers"] + counts["lm_head"] + counts["lora"]) * generated_tokens


# ----------------------------------------------------------------------------------------------- timing
def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def timed_trainer_class(device):
    from trl import GRPOTrainer

    class TimedGRPOTrainer(GRPOTrainer):
        """GRPOTrainer that clocks generation and the whole rollout, and counts the tokens each step trains on."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.clock = defaultdict(float)
            self.seq_lens: list[int] = []

        def _generate_single_turn(self, *args, **kwargs):
            sync(device)
            start = time.perf_counter()
            out = super()._generate_single_turn(*args, **kwargs)
            sync(device)
            self.clock["generation_s"] += time.perf_counter() - start
            self.clock["generated_tokens"] += sum(len(ids) for ids in out[0])
            self.clock["generated_sequences"] += len(out[0])
            return out

        def _generate_and_score_completions(self, inputs):
            sync(device)
            start = time.perf_counter()
            out = super()._generate_and_score_completions(inputs)
            sync(device)
            self.clock["rollout_s"] += time.perf_counter() - start
            prompt, completion = out["prompt_mask"].sum(1), out["completion_mask"].sum(1)
            self.seq_lens += (prompt + completion).tolist()
            self.clock["prompt_tokens"] += int(prompt.sum())
            self.clock["completion_tokens"] += int(completion.sum())
            self.clock["padded_tokens"] += out["prompt_mask"].numel() + out["completion_mask"].numel()
            if "image_grid_thw" in out:
                self.clock["vision_patches"] += int(out["image_grid_thw"].prod(-1).sum())
            return out

    return TimedGRPOTrainer


def step_timer(device):
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.trainer = None
            self.steps: list[dict] = []

        def on_step_begin(self, args, state, control, **kwargs):
            sync(device)
            self._start = time.perf_counter()
            self._before = dict(self.trainer.clock)
            self._seqs = len(self.trainer.seq_lens)

        def on_step_end(self, args, state, control, **kwargs):
            sync(device)
            step = {k: v - self._before.get(k, 0) for k, v in self.trainer.clock.items()}
            step["step_s"] = time.perf_counter() - self._start
            step["seq_lens"] = self.trainer.seq_lens[self._seqs:]
            self.steps.append(step)

    return StepTimer()


# ----------------------------------------------------------------------------------------------- one run
def grpo_settings(setting: str, recipe: dict, args, on_gpu: bool) -> tuple[dict, dict]:
    """(GRPOConfig keyword arguments, model options) for a setting."""
    common = {"max_completion_length": args.max_completion_length, "max_steps": args.warmup + args.steps,
              "logging_steps": 1, "report_to": "none", "save_strategy": "no", "disable_tqdm": True,
              "seed": args.seed, "use_cpu": not on_gpu, "dataloader_num_workers": 0}
    if not on_gpu:
        common["bf16"] = False
    if setting == "trl_defaults":
        return common, {"dtype": torch.float32, "freeze_vision": False}
    generations = recipe["num_generations"]
    per_device = recipe["per_device_train_batch_size"]
    completions = args.prompts_per_step * generations
    if completions % per_device:
        fail(f"--prompts-per-step {args.prompts_per_step} x {generations} is not a multiple of {per_device}")
    grpo = {
        **common,
        "num_generations": generations,
        "per_device_train_batch_size": per_device,
        "gradient_accumulation_steps": completions // per_device,  # one GPU: world size 1
        "temperature": recipe["temperature"],
        "learning_rate": recipe["learning_rate"],
        "lr_scheduler_type": recipe["lr_scheduler_type"],
        "lr_scheduler_kwargs": recipe["lr_scheduler_kwargs"],
        "warmup_steps": recipe["warmup_steps"],
        "beta": recipe["beta"],
        "loss_type": recipe["loss_type"],
        "scale_rewards": recipe["scale_rewards"],
        "activation_checkpointing": recipe["gradient_checkpointing"],
        "vllm_importance_sampling_correction": False,
    }
    if on_gpu:
        grpo["bf16"] = recipe["bf16"]
    dtype = torch.bfloat16 if (recipe["bf16"] and on_gpu) else torch.float32
    return grpo, {"dtype": dtype, "freeze_vision": recipe["freeze_vision"]}


def run_one(model_name: str, setting: str, recipe: dict, processor, args, device: str) -> dict:
    from peft import LoraConfig
    from trl import GRPOConfig

    size, lora = MODELS[model_name]
    on_gpu = device == "cuda"
    grpo_kwargs, options = grpo_settings(setting, recipe, args, on_gpu)
    result = {"model": f"qwen2.5-vl-{size}" + ("+lora" if lora else ""), "setting": setting, "status": "ok",
              "model_dtype": str(options["dtype"]).removeprefix("torch."), "vision_frozen": options["freeze_vision"]}
    if on_gpu:
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    try:
        config = model_config(size, processor.tokenizer)
        model = build_model(config, options["dtype"], device, args.attn_implementation)
        if options["freeze_vision"]:
            for p in model.model.visual.parameters():
                p.requires_grad_(False)
        if on_gpu:
            result["weights_memory_gib"] = round(torch.cuda.memory_allocated() / 2**30, 2)
        peft_config = (LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.05,
                                  target_modules=LANGUAGE_LINEAR_LAYERS, task_type="CAUSAL_LM") if lora else None)
        with tempfile.TemporaryDirectory() as out_dir:
            grpo_args = GRPOConfig(output_dir=out_dir, **grpo_kwargs)
            prompts_per_step = grpo_args.generation_batch_size // grpo_args.num_generations
            dataset = build_dataset(processor.tokenizer, prompts_per_step * grpo_args.max_steps * 2,
                                    args.prompt_text_tokens, args.image_size, args.seed)
            timer = step_timer(device)
            trainer = timed_trainer_class(device)(
                model=model, reward_funcs=varied_length_reward, args=grpo_args, train_dataset=dataset,
                processing_class=processor, peft_config=peft_config, callbacks=[timer],
            )
            timer.trainer = trainer
            counts = param_counts(trainer.model)
            result["settings"] = {
                k: _plain(getattr(grpo_args, k)) for k in (
                    "num_generations", "per_device_train_batch_size", "gradient_accumulation_steps",
                    "generation_batch_size", "max_completion_length", "loss_type", "beta", "scale_rewards",
                    "bf16", "activation_checkpointing", "learning_rate", "lr_scheduler_type", "optim")
            }  # fmt: skip
            result["settings"]["prompts_per_step"] = prompts_per_step
            result["params"] = counts
            result["vision_frozen"] = not counts["vision_trainable"]  # LoRA freezes it in both settings
            trainer.train()
        measured = timer.steps[args.warmup:]
        result.update(summarise(measured, counts, config, args, device))
    except torch.OutOfMemoryError as exc:
        result["status"] = "oom"
        result["error"] = str(exc).splitlines()[0][:300]
    except Exception as exc:  # noqa: BLE001 - one failing setting must not lose the others' figures
        result["status"] = "error"
        result["error"] = f"{type(exc).__name__}: {str(exc)[:500]}"
        if args.smoke:
            raise
    finally:
        if on_gpu:
            result["peak_memory_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            result["peak_memory_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
        model = trainer = None  # noqa: F841 - free the GPU before the next setting
        gc.collect()
        if on_gpu:
            torch.cuda.empty_cache()
    return result


def _plain(value):
    return value if isinstance(value, (int, float, str, bool, type(None))) else str(getattr(value, "value", value))


def summarise(steps: list[dict], counts: dict, config, args, device: str) -> dict:
    n = len(steps)
    if n == 0:
        return {"steps_measured": 0}
    total = lambda key: sum(s.get(key, 0) for s in steps)  # noqa: E731
    step_s, rollout_s, generation_s = total("step_s"), total("rollout_s"), total("generation_s")
    train_s = step_s - rollout_s
    seq_lens = [length for s in steps for length in s["seq_lens"]]
    flops = train_flops(counts, config, seq_lens, int(total("completion_tokens")), int(total("vision_patches")))
    gen_flops = generation_flops(counts, int(total("generated_tokens")))
    peak = args.peak_tflops or peak_tflops(device)
    out = {
        "steps_measured": n,
        "step_time_s": round(step_s / n, 3),
        "generation_time_s": round(generation_s / n, 3),
        "rollout_time_s": round(rollout_s / n, 3),
        "train_time_s": round(train_s / n, 3),
        "completions_per_step": total("generated_sequences") / n,
        "generated_tokens_per_step": total("generated_tokens") / n,
        "train_tokens_per_step": (total("prompt_tokens") + total("completion_tokens")) / n,
        "padded_train_tokens_per_step": total("padded_tokens") / n,
        "mean_sequence_tokens": round(sum(seq_lens) / max(len(seq_lens), 1), 1),
        "generation_tokens_per_s": round(total("generated_tokens") / generation_s, 1) if generation_s else None,
        "training_tokens_per_s": round((total("prompt_tokens") + total("completion_tokens")) / train_s, 1)
        if train_s > 0 else None,
        "train_tflops_per_step": round(flops / n / 1e12, 2),
        "train_tflops_per_s": round(flops / train_s / 1e12, 1) if train_s > 0 else None,
        "peak_bf16_tflops": peak,
    }
    if peak and train_s > 0:
        out["mfu_train"] = round(flops / train_s / (peak * 1e12), 4)
        out["mfu_step"] = round((flops + gen_flops) / step_s / (peak * 1e12), 4)
    return out


def peak_tflops(device: str) -> float | None:
    if device != "cuda":
        return None
    name = torch.cuda.get_device_name()
    for key, value in PEAK_BF16_TFLOPS:
        if key in name:
            return value
    return None


def table(runs: list[dict]) -> str:
    cols = [("model", "model"), ("setting", "setting"), ("status", "status"),
            ("completions/step", "completions_per_step"),
            ("step s", "step_time_s"), ("gen tok/s", "generation_tokens_per_s"),
            ("train tok/s", "training_tokens_per_s"), ("MFU train", "mfu_train"), ("MFU step", "mfu_step"),
            ("peak alloc GiB", "peak_memory_allocated_gib")]  # fmt: skip
    lines = ["| " + " | ".join(c for c, _ in cols) + " |", "|" + "---|" * len(cols)]
    for run in runs:
        lines.append("| " + " | ".join(str(run.get(k, "")) for _, k in cols) + " |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = "cuda" if (torch.cuda.is_available() and not args.smoke) else "cpu"
    import transformers
    import trl

    recipe = load_recipe(args.recipe)
    processor = build_processor(recipe["max_pixels"])
    device_name = torch.cuda.get_device_name() if device == "cuda" else f"cpu ({platform.processor() or 'unknown'})"
    report = {
        "benchmark": "gpu_grpo",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": device_name,
        "device_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
        if device == "cuda" else None,
        "smoke": args.smoke,
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
                     "transformers": transformers.__version__, "trl": trl.__version__},
        "task": {"image_size": args.image_size, "max_pixels": recipe["max_pixels"],
                 "prompt_text_tokens": args.prompt_text_tokens, "max_completion_length": args.max_completion_length,
                 "num_generations": recipe["num_generations"], "srpo_recipe_prompts_per_step": args.prompts_per_step,
                 "attn_implementation": args.attn_implementation, "generation": "transformers generate (no vLLM)",
                 "recipe": str(Path(args.recipe).resolve().relative_to(ROOT)) if Path(args.recipe).resolve()
                 .is_relative_to(ROOT) else args.recipe},
        "runs": [],
    }  # fmt: skip
    for model_name in args.models:
        for setting in args.settings:
            print(f"[gpu_grpo] {model_name} / {setting} ...", flush=True)
            run = run_one(model_name, setting, recipe, processor, args, device)
            report["runs"].append(run)
            print(json.dumps({k: v for k, v in run.items() if k not in ("params", "settings")}), flush=True)
    report["table"] = table(report["runs"])
    print(report["table"])
    slug = re.sub(r"[^a-z0-9]+", "_", device_name.lower()).strip("_")
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"gpu_grpo_{slug}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
