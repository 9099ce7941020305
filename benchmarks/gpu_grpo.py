# Over 400 lines: one self-contained benchmark script (rows, model, timing, FLOPs, atomic results, table) that a
# bare GPU machine runs from a checkout; splitting it into modules would spread one measurement over several files.
"""GRPO steps on one GPU with the real Qwen2.5-VL-3B shape and tokenizer, one variable changed at a time.

The model is Qwen2.5-VL-3B's architecture with random weights, built from the 7B config.json of `--processor DIR`
(the real Qwen2.5-VL processor files) with the 3B dimensions; the prompts are a synthetic image plus filler text
through the real processor. Every row runs GRPO through TRL's GRPOTrainer in this process:

* srpo_recipe: recipes/qwen2_5_vl_7b/rl.yaml as `srpo rl` applies it on one GPU (docs/method.md#grpo): bf16 weights,
  vision tower frozen, loss grpo, beta 0, group scaling, activation checkpointing, micro-batch 4, and a generation
  batch of `--prompts-per-generation` prompts x 8 completions (the recipe's 1,024 scaled to one GPU). One optimizer
  step trains on one generation batch, so every step is generation + training.
* one row per variable, each flipping only that variable to TRL's `GRPOConfig()` default:
  generation_batch (8 completions = 1 prompt per generation; the optimizer batch stays the same),
  micro_batch (per_device_train_batch_size 8), precision (float32 weights, as TRL loads a model path, with bf16
  autocast), gradient_checkpointing (TRL's default is on like ours, so this row turns it off: what it costs);
* trl_defaults: every setting TRL's default (also loss dapo, vision tower trainable, optimizer batch 8).

Per row, over the measured steps (after `--warmup` steps):
* generation tokens/s: completion tokens / time inside generate (transformers' generate: TRL's path without vLLM;
  a random model almost never samples the end token, so completions run to `--max-completion-length`);
* training tokens/s: real (unpadded) prompt + completion tokens / (step time - rollout time);
* MFU: model FLOPs of that training work / (training time x the device's dense bf16 peak, PEAK_BF16_TFLOPS).
  FLOPs per token: 2 x params forward, + 2 x params backward to activations, + 2 x trainable params for weight
  gradients; causal attention; the LM head on completion tokens only; the vision tower per patch (forward only when
  frozen). Recomputation by activation checkpointing is not counted. mfu_step adds generation FLOPs over step time;
* peak memory: torch.cuda.max_memory_allocated / max_memory_reserved within the row.

Results: `--out-dir`/gpu_grpo_<device>.json, rewritten atomically after every row, so a run killed half-way keeps
every finished row. A row that fails (out of memory, error) is recorded with its error and the run goes on; a row
the `--budget-s` would not fit is recorded as skipped.

    python benchmarks/gpu_grpo.py --processor ../shared/qwen2_5_vl_processor --budget-s 420
    python benchmarks/gpu_grpo.py --smoke            # CPU, tiny model, seconds: the same rows end to end
    python benchmarks/gpu_grpo.py --show FILE.json   # the table of a results file
benchmarks/gpu_check.sh runs it on a bare GPU machine from carried wheels.
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
sys.path.insert(0, str(ROOT / "src"))

from srpo.files import atomic_write_json  # noqa: E402

# Dense bf16 peak (TFLOP/s, no sparsity) by device name, for MFU; the longest matching name wins.
PEAK_BF16_TFLOPS = {
    "H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.4, "H200 NVL": 835.0, "H200": 989.4, "GH200": 989.4,
    "H800": 989.4, "H20": 148.0, "B200": 2250.0, "A100": 312.0, "A800": 312.0, "L40S": 362.0, "L4": 121.0,
}  # fmt: skip

# Qwen/Qwen2.5-VL-3B-Instruct's dimensions, applied to the 7B config.json that ships with the processor files.
QWEN25_VL_3B_TEXT = {"hidden_size": 2048, "num_hidden_layers": 36, "num_attention_heads": 16,
                     "num_key_value_heads": 2, "intermediate_size": 11008, "vocab_size": 151936,
                     "tie_word_embeddings": True}  # fmt: skip
QWEN25_VL_3B_VISION = {"out_hidden_size": 2048}  # the vision tower itself is the 7B's

RECIPE = ROOT / "recipes" / "qwen2_5_vl_7b" / "rl.yaml"
RECIPE_KEYS = ("num_generations", "per_device_train_batch_size", "temperature", "learning_rate", "lr_scheduler_type",
               "lr_scheduler_kwargs", "warmup_steps", "beta", "loss_type", "scale_rewards", "gradient_checkpointing",
               "bf16", "freeze_vision", "max_pixels")  # fmt: skip
TRL_DEFAULT_PER_DEVICE = 8
TRL_DEFAULT_GENERATION_BATCH = 8  # per_device 8 x steps_per_generation 1
# Each row: the variables it sets away from the srpo recipe (base), to TRL's default.
ROWS = {
    "srpo_recipe": {},
    "generation_batch": {"generation_batch": TRL_DEFAULT_GENERATION_BATCH},
    "micro_batch": {"per_device": TRL_DEFAULT_PER_DEVICE},
    "gradient_checkpointing": {"checkpointing": False},
    "precision": {"weights": torch.float32},
    "trl_defaults": "all",
}


def fail(message: str, code: int = 2):
    print(f"gpu_grpo.py: {message}", file=sys.stderr)
    raise SystemExit(code)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--processor", default=None,
                   help="folder of the real Qwen2.5-VL processor files with its config.json (required on a GPU)")
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--out-dir", default="/tmp/srpo_gpu_bench", help="results folder (outside the repository)")
    p.add_argument("--budget-s", type=float, default=None,
                   help="skip (and record as skipped) each row that would end after this many seconds")
    p.add_argument("--prompts-per-generation", type=int, default=8, help="srpo_recipe: prompts x 8 per generation")
    p.add_argument("--max-completion-length", type=int, default=256)
    p.add_argument("--prompt-text-tokens", type=int, default=200, help="filler text tokens per prompt (+ image)")
    p.add_argument("--image-size", type=int, default=448, help="side of the square synthetic image (448: 256 tokens)")
    p.add_argument("--steps", type=int, default=2, help="measured optimizer steps per row")
    p.add_argument("--warmup", type=int, default=1, help="optimizer steps run first and not measured")
    p.add_argument("--attn-implementation", default="sdpa")
    p.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of the device for MFU")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true",
                   help="CPU end-to-end check: tiny model, 4 tokens, 1 step per row (figures meaningless)")
    p.add_argument("--show", metavar="JSON", help="print the table of a results file and exit")
    args = p.parse_args(argv)
    if args.show:
        return args
    if args.smoke:
        args.max_completion_length, args.prompt_text_tokens, args.image_size = 4, 16, 56
        args.steps, args.warmup, args.prompts_per_generation = 1, 0, 2
    else:
        if not torch.cuda.is_available():
            fail("needs a CUDA GPU (torch.cuda.is_available() is False). Run it on a GPU machine, or use --smoke for "
                 "the CPU end-to-end check on the tiny model.")
        if not args.processor:
            fail("--processor DIR is required: the Qwen2.5-VL processor files with config.json "
                 "(benchmarks/gpu_wheels.sh copies them to .whl/qwen2_5_vl_processor)")
    if args.processor and not (Path(args.processor) / "config.json").is_file():
        fail(f"--processor {args.processor}: no config.json there; pass the Qwen2.5-VL processor folder")
    return args


def load_recipe() -> dict:
    import yaml

    recipe = yaml.safe_load(RECIPE.read_text())
    return {k: recipe[k] for k in RECIPE_KEYS}


# ----------------------------------------------------------------------------------------------- model and data
def model_and_processor_factory(args, recipe):
    """(processor, a function building a fresh model of the benchmarked shape on a device in a dtype)."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from srpo.models import REAL_PROCESSOR_SPEC, TinyModelSpec, build_tiny_config, build_tiny_processor, load_processor

    if args.smoke:
        if args.processor:
            processor = load_processor(args.processor)
            vocab = json.loads((Path(args.processor) / "config.json").read_text())["vocab_size"]
            config = build_tiny_config(processor.tokenizer, REAL_PROCESSOR_SPEC, vocab_size=vocab,
                                       image_processor=processor.image_processor)
        else:
            processor = build_tiny_processor(TinyModelSpec(max_pixels=recipe["max_pixels"]))
            config = build_tiny_config(processor.tokenizer)
    else:
        processor = load_processor(args.processor)
        # Rebuilt from a dict, not patched in place: derived fields (layer_types) follow the new layer count.
        seven_b = Qwen2_5_VLConfig.from_pretrained(args.processor).to_dict()
        text = {k: v for k, v in seven_b["text_config"].items() if k != "layer_types"}
        config = Qwen2_5_VLConfig(**{
            **seven_b, "tie_word_embeddings": QWEN25_VL_3B_TEXT["tie_word_embeddings"],
            "text_config": {**text, **QWEN25_VL_3B_TEXT},
            "vision_config": {**seven_b["vision_config"], **QWEN25_VL_3B_VISION}})

    def build(dtype, device):
        torch.manual_seed(args.seed)
        with torch.device(device):  # random initialisation directly on the device
            model = Qwen2_5_VLForConditionalGeneration._from_config(
                config, dtype=dtype, attn_implementation=args.attn_implementation)
        model.generation_config.eos_token_id = config.text_config.eos_token_id
        model.generation_config.pad_token_id = config.text_config.pad_token_id
        return model

    return processor, build


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
    counts, trainable = defaultdict(int), defaultdict(int)
    for name, p in model.named_parameters():
        part = ("vision" if "visual" in name else "embedding" if "embed_tokens" in name
                else "lm_head" if "lm_head" in name else "language")  # fmt: skip
        counts[part] += p.numel()
        trainable[part] += p.numel() if p.requires_grad else 0
    return {"vision": counts["vision"], "language_layers": counts["language"], "embedding": counts["embedding"],
            "lm_head": text.hidden_size * text.vocab_size,  # tied or not, the head is a matmul
            "total": sum(counts.values()), "trainable": sum(trainable.values()),
            "vision_trainable": trainable["vision"] > 0,
            "lm_head_trainable": trainable["lm_head"] > 0 or trainable["embedding"] > 0}


def train_flops(counts: dict, config, seq_lens, completion_tokens: int, vision_patches: int) -> float:
    """Model FLOPs of one training pass (forward + backward) over sequences of the given real lengths."""
    text = config.text_config
    tokens = sum(seq_lens)
    lm = 6 * counts["language_layers"] * tokens
    head = (6 if counts["lm_head_trainable"] else 4) * counts["lm_head"] * completion_tokens
    attention = 3 * sum(2 * s * s * text.hidden_size * text.num_hidden_layers for s in seq_lens)
    # Patches before merging; the vision tower's own attention (mostly windowed) is left out.
    vision = (6 if counts["vision_trainable"] else 2) * counts["vision"] * vision_patches
    return float(lm + head + attention + vision)


def peak_tflops(device_name: str) -> float | None:
    matches = [key for key in PEAK_BF16_TFLOPS if key in device_name]
    return PEAK_BF16_TFLOPS[max(matches, key=len)] if matches else None


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


# ----------------------------------------------------------------------------------------------- one row
def row_settings(row: str, recipe: dict, args, device: str) -> tuple[dict, dict]:
    """(GRPOConfig keyword arguments, model options) of a row: the recipe with the row's variable at TRL's default."""
    common = {"max_completion_length": args.max_completion_length, "max_steps": args.warmup + args.steps,
              "logging_steps": 1, "report_to": "none", "save_strategy": "no", "disable_tqdm": True,
              "seed": args.seed, "use_cpu": device == "cpu", "dataloader_num_workers": 0}
    if ROWS[row] == "all":
        if device == "cpu":
            common["bf16"] = False  # TRL's default; no bf16 autocast on CPU (see below)
        return common, {"dtype": torch.float32, "freeze_vision": False}
    base = {"generation_batch": args.prompts_per_generation * recipe["num_generations"],
            "per_device": recipe["per_device_train_batch_size"], "checkpointing": recipe["gradient_checkpointing"],
            "weights": torch.bfloat16 if recipe["bf16"] else torch.float32}  # fmt: skip
    chosen = {**base, **ROWS[row]}
    optimizer_batch = base["generation_batch"]  # every row but trl_defaults trains on the same optimizer batch
    if optimizer_batch % chosen["per_device"] or chosen["generation_batch"] % chosen["per_device"]:
        fail(f"--prompts-per-generation {args.prompts_per_generation}: x {recipe['num_generations']} must be a "
             f"multiple of {TRL_DEFAULT_PER_DEVICE} (the micro-batches)")
    grpo = {
        **common,
        "num_generations": recipe["num_generations"],
        "per_device_train_batch_size": chosen["per_device"],
        "gradient_accumulation_steps": optimizer_batch // chosen["per_device"],  # one GPU: world size 1
        "generation_batch_size": chosen["generation_batch"],
        "activation_checkpointing": chosen["checkpointing"],
        "bf16": recipe["bf16"] and device == "cuda",
        **{k: recipe[k] for k in ("temperature", "learning_rate", "lr_scheduler_type", "lr_scheduler_kwargs",
                                  "warmup_steps", "beta", "loss_type", "scale_rewards")},
        "vllm_importance_sampling_correction": False,
    }  # fmt: skip
    # On CPU (--smoke) every row keeps float32 weights: bf16 matmuls there are slow and the figures meaningless.
    dtype = chosen["weights"] if device == "cuda" else torch.float32
    return grpo, {"dtype": dtype, "freeze_vision": recipe["freeze_vision"]}


def run_row(row: str, recipe: dict, processor, build_model, args, device: str) -> dict:
    from trl import GRPOConfig

    grpo_kwargs, options = row_settings(row, recipe, args, device)
    result = {"row": row, "changes": _changes(row), "status": "ok",
              "model_dtype": str(options["dtype"]).removeprefix("torch.")}
    start = time.perf_counter()
    model = trainer = None
    if device == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    try:
        model = build_model(options["dtype"], device)
        if options["freeze_vision"]:
            model.model.visual.requires_grad_(False)
        with tempfile.TemporaryDirectory() as out_dir:
            grpo_args = GRPOConfig(output_dir=out_dir, **grpo_kwargs)
            optimizer_batch = grpo_args.per_device_train_batch_size * grpo_args.gradient_accumulation_steps
            prompts = 2 * grpo_args.max_steps * optimizer_batch // grpo_args.num_generations  # twice what it uses
            dataset = build_dataset(processor.tokenizer, prompts, args.prompt_text_tokens, args.image_size, args.seed)
            timer = step_timer(device)
            trainer = timed_trainer_class(device)(
                model=model, reward_funcs=varied_length_reward, args=grpo_args, train_dataset=dataset,
                processing_class=processor, callbacks=[timer])
            timer.trainer = trainer
            counts = param_counts(trainer.model)
            result["settings"] = {k: _plain(getattr(grpo_args, k)) for k in (
                "num_generations", "per_device_train_batch_size", "gradient_accumulation_steps",
                "generation_batch_size", "steps_per_generation", "max_completion_length", "loss_type", "beta",
                "scale_rewards", "bf16", "activation_checkpointing", "learning_rate", "optim")}  # fmt: skip
            result["vision_frozen"] = not counts["vision_trainable"]
            result["params"] = counts
            trainer.train()
        result.update(summarise(timer.steps[args.warmup:], counts, model.config, args))
    except torch.OutOfMemoryError as exc:
        result.update(status="oom", error=str(exc).splitlines()[0][:300])
    except Exception as exc:  # noqa: BLE001 - one failing row must not lose the others' figures
        result.update(status="error", error=f"{type(exc).__name__}: {str(exc)[:500]}")
    finally:
        if device == "cuda":
            result["peak_memory_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            result["peak_memory_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
        model = trainer = None  # noqa: F841 - free the device before the next row
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
    result["row_time_s"] = round(time.perf_counter() - start, 1)
    return result


def _changes(row: str) -> str:
    if ROWS[row] == "all":
        return "every setting at TRL's GRPOConfig() default (loss dapo, vision trainable, fp32 weights, batch 8)"
    return ", ".join(f"{k}={str(_plain(v)).removeprefix('torch.')}" for k, v in ROWS[row].items()) or "none (base)"


def _plain(value):
    return value if isinstance(value, (int, float, str, bool, type(None))) else str(getattr(value, "value", value))


def summarise(steps: list[dict], counts: dict, config, args) -> dict:
    n = len(steps)
    if n == 0:
        return {"steps_measured": 0}
    total = lambda key: sum(s.get(key, 0) for s in steps)  # noqa: E731
    step_s, rollout_s, generation_s = total("step_s"), total("rollout_s"), total("generation_s")
    train_s = step_s - rollout_s
    train_tokens = total("prompt_tokens") + total("completion_tokens")
    seq_lens = [length for s in steps for length in s["seq_lens"]]
    flops = train_flops(counts, config, seq_lens, int(total("completion_tokens")), int(total("vision_patches")))
    generation_flops = 2.0 * (counts["language_layers"] + counts["lm_head"]) * total("generated_tokens")
    out = {
        "steps_measured": n,
        "step_time_s": round(step_s / n, 3),
        "generation_time_s": round(generation_s / n, 3),
        "rollout_time_s": round(rollout_s / n, 3),
        "train_time_s": round(train_s / n, 3),
        "completions_per_step": total("generated_sequences") / n,
        "generated_tokens_per_step": total("generated_tokens") / n,
        "train_tokens_per_step": train_tokens / n,
        "generation_tokens_per_s": round(total("generated_tokens") / generation_s, 1),
        "training_tokens_per_s": round(train_tokens / train_s, 1),
        "train_tflops_per_s": round(flops / train_s / 1e12, 3),
        "peak_bf16_tflops": args.peak_tflops,
    }
    if args.peak_tflops:
        out["mfu_train"] = round(flops / train_s / (args.peak_tflops * 1e12), 4)
        out["mfu_step"] = round((flops + generation_flops) / step_s / (args.peak_tflops * 1e12), 4)
    return out


def estimated_row_s(row: str, finished: list[dict]) -> float:
    """A row's likely duration from the rows already run: the longest, doubled for float32 weights."""
    durations = [r["row_time_s"] for r in finished if r["status"] != "skipped"]
    if not durations:
        return 0.0
    slow = ROWS[row] == "all" or ROWS[row].get("weights") == torch.float32
    return max(durations) * (2.0 if slow else 1.0)


# ----------------------------------------------------------------------------------------------- report
TABLE_COLUMNS = [("row", "row"), ("status", "status"), ("gen tok/s", "generation_tokens_per_s"),
                 ("train tok/s", "training_tokens_per_s"), ("MFU", "mfu_train"), ("MFU step", "mfu_step"),
                 ("peak GiB", "peak_memory_allocated_gib"), ("step s", "step_time_s")]  # fmt: skip


def table(report: dict) -> str:
    lines = [f"{report['device']}  ({report['task']['max_completion_length']}-token completions)",
             "| " + " | ".join(c for c, _ in TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    for row in report["rows"]:
        lines.append("| " + " | ".join("" if row.get(k) is None else str(row[k]) for _, k in TABLE_COLUMNS) + " |")
    return "\n".join(lines)


def device_slug(device_name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", device_name.lower()).strip("_")


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.show:
        report = json.loads(Path(args.show).read_text())
        print(table(report))
        return report
    started = time.perf_counter()
    device = "cuda" if (torch.cuda.is_available() and not args.smoke) else "cpu"
    import transformers
    import trl

    recipe = load_recipe()
    processor, build_model = model_and_processor_factory(args, recipe)
    device_name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    if device == "cuda" and not args.peak_tflops:
        args.peak_tflops = peak_tflops(device_name)
    out = Path(args.out_dir) / f"gpu_grpo_{device_slug(device_name)}.json"
    report = {
        "benchmark": "gpu_grpo",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": device_name,
        "device_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
        if device == "cuda" else None,
        "smoke": args.smoke,
        "complete": False,
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
                     "transformers": transformers.__version__, "trl": trl.__version__},
        "task": {"model": "tiny" if args.smoke else "qwen2.5-vl-3b (random weights)",
                 "processor": args.processor, "image_size": args.image_size, "max_pixels": recipe["max_pixels"],
                 "prompt_text_tokens": args.prompt_text_tokens, "max_completion_length": args.max_completion_length,
                 "num_generations": recipe["num_generations"], "prompts_per_generation": args.prompts_per_generation,
                 "steps": args.steps, "warmup": args.warmup, "budget_s": args.budget_s,
                 "attn_implementation": args.attn_implementation, "generation": "transformers generate (no vLLM)",
                 "recipe": str(RECIPE.relative_to(ROOT))},
        "rows": [],
    }  # fmt: skip
    for row in args.rows:
        elapsed = time.perf_counter() - started
        estimate = estimated_row_s(row, report["rows"])
        if args.budget_s is not None and elapsed + estimate > args.budget_s:
            result = {"row": row, "changes": _changes(row), "status": "skipped", "row_time_s": 0.0,
                      "error": f"budget: {elapsed:.0f} s spent + about {estimate:.0f} s > --budget-s {args.budget_s:g}"}
        else:
            print(f"[gpu_grpo] {row} ...", flush=True)
            result = run_row(row, recipe, processor, build_model, args, device)
        report["rows"].append(result)
        print(json.dumps({k: v for k, v in result.items() if k not in ("params", "settings")}), flush=True)
        atomic_write_json(out, report, indent=2)  # after every row: a killed run keeps what it measured
    report["complete"] = True
    report["total_time_s"] = round(time.perf_counter() - started, 1)
    atomic_write_json(out, report, indent=2)
    print(table(report))
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
