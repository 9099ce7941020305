"""The rows both training stages read, checked before the model loads: each row's images decoded once (then
dropped), the images the processor refuses and the prompts over the length limit found, with the very chat
messages and image sizes TRL tokenizes.

The check is one `datasets.map` over all CPU cores, run by the main process of each node while the others wait
and then read its cached result. Without skip_bad the first bad row stops the run, named; with it bad rows are
counted, logged and dropped.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
from accelerate import PartialState
from datasets.fingerprint import Hasher
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize
from trl.data_utils import prepare_multimodal_messages

from srpo.data import (
    DataError,
    ImageRejection,
    LoadReport,
    check_images,
    checked_images,
    image_files_stamp,
    question_with_choices,
    report_refusals,
    row_error,
)
from srpo.data.problem_dataset import CODE_FINGERPRINT as DATA_CODE_FINGERPRINT
from srpo.errors import UserError

logger = logging.getLogger(__name__)

# Fewer rows than this per worker cost more to start and hand the processor to than they save.
ROWS_PER_WORKER = 1000
PROMPT_FEATURE = datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")})
VERDICT_FEATURES = {
    "_where": datasets.Value("string"),
    "_reason": datasets.Value("string"),
    "_field": datasets.Value("string"),
    "_message": datasets.Value("string"),
    "_item": datasets.Value("string"),  # the row's name in messages: its id, or "row N"
    "_refusal": datasets.Value("string"),  # JSON [image index, width, height, the processor's reason]
    "_n_tokens": datasets.Value("int64"),  # -1 for a row that is not counted (bad, or refused)
}
CODE_FINGERPRINT = Hasher.hash([Path(__file__).read_bytes(), DATA_CODE_FINGERPRINT])


class PromptTooLongError(UserError, ValueError):
    """Prompts (question + image tokens) longer than the stage allows; the message names them by id."""


def chat_prompt(question: str, choices: list[str] | None, system: str | None) -> list[dict[str, str]]:
    """The `prompt` column both TRL trainers read: optional system turn, then the question (with its choices)."""
    return ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": question_with_choices(question, choices)}
    ]


def prompt_token_counts(processor, prompts: list[list[dict]], images: list[list]) -> list[int]:
    """Tokens of each prompt with its images as the model sees it: TRL's own conversion to multimodal messages, the
    chat template, each image expanded to its patch tokens after the processor's resize, counted from the image
    sizes without processing any pixels."""
    if not prompts:
        return []
    conversations = [prepare_multimodal_messages(prompt, images=list(ims)) for prompt, ims in zip(prompts, images)]
    texts = processor.apply_chat_template(conversations, add_generation_prompt=True, tokenize=False)
    token_ids = processor.tokenizer(texts, add_special_tokens=False)["input_ids"]
    image_processor = processor.image_processor
    per_token = image_processor.merge_size**2
    return [
        # each image's one placeholder token becomes its patch tokens
        len(ids) - len(ims) + sum(image_processor.get_number_of_image_patches(im.height, im.width, {}) // per_token
                                  for im in ims)
        for ids, ims in zip(token_ids, images)
    ]


def usable_rows(ds: datasets.Dataset, processor, system: str | None, max_prompt_tokens: int | None, *, source: str,
                limit_name: str, skip_bad: bool, report: LoadReport | None = None) -> datasets.Dataset:
    """`ds` (columns question and images, optionally id, choices and srpo.data.problem_dataset's check columns)
    with a `prompt` column and without the rows a batch cannot take: bad rows, unreadable images, images the
    processor refuses, prompts longer than max_prompt_tokens (None: no limit). Images stay decoded on access."""
    if len(ds) == 0:  # datasets maps an empty table to itself, without the new columns
        features = {name: f for name, f in ds.features.items() if not name.startswith("_")} | {"prompt": PROMPT_FEATURE}
        return datasets.Dataset.from_dict({name: [] for name in features}, features=datasets.Features(features))
    fingerprint = Hasher.hash([ds._fingerprint, image_files_stamp(ds), processor_fingerprint(processor), system,
                               source, CODE_FINGERPRINT])
    workers = min(len(os.sched_getaffinity(0)), len(ds) // ROWS_PER_WORKER)
    # Once per node: the local main process checks, the others then load its cached result.
    with PartialState().local_main_process_first():
        checked = ds.with_format("arrow").map(  # arrow rows: images as stored, not decoded
            _check_rows, batched=True, with_indices=True, num_proc=workers if workers > 1 else None,
            fn_kwargs={"processor": processor, "system": system, "source": source},
            features=datasets.Features({**ds.features, "prompt": PROMPT_FEATURE, **VERDICT_FEATURES}),
            new_fingerprint=fingerprint, desc="Checking images and prompt lengths")
    drop = _rows_to_drop(checked, max_prompt_tokens, source=source, limit_name=limit_name, skip_bad=skip_bad,
                         report=report if report is not None else LoadReport())
    if drop:
        checked = checked.select([i for i in range(len(checked)) if i not in drop])
    return checked.remove_columns([c for c in checked.column_names if c.startswith("_")]).with_format(None)


def _check_rows(batch: pa.Table, indices: list[int], *, processor, system: str | None, source: str) -> dict:
    rows = batch.to_pylist()
    # an arrow batch is not merged with what the function returns: the unchanged columns are returned too
    out: dict[str, list] = {name: [row[name] for row in rows] for name in batch.column_names}
    out |= {name: [] for name in ("images", "prompt", *VERDICT_FEATURES)}
    counted: list[tuple[int, list]] = []  # (position in the batch, images) of the rows to count tokens for
    for position, (row, index) in enumerate(zip(rows, indices)):
        where = row.get("_where") or f"{source}:row {index}"
        item = str(row.get("id") or f"row {index}")
        error, refusal, stored = row_error({**row, "_where": where}), None, row["images"]
        if error is None:
            try:
                images, stored = checked_images(row, where)
            except DataError as e:
                error = e
        if error is None:
            refused = check_images([(item, images)], processor)
            if refused:
                refusal = json.dumps([refused[0].index, *refused[0].size, refused[0].reason])
            else:
                counted.append((position, images))
        out["images"].append(stored)
        out["prompt"].append(chat_prompt(row.get("question") or "", row.get("choices"), system))
        out["_where"].append(where)
        out["_reason"].append(error.reason if error else None)
        out["_field"].append(error.field if error else None)
        out["_message"].append(error.detail if error else None)
        out["_item"].append(item)
        out["_refusal"].append(refusal)
    out["_n_tokens"] = [-1] * len(rows)
    counts = prompt_token_counts(processor, [out["prompt"][p] for p, _ in counted], [ims for _, ims in counted])
    for (position, _), n_tokens in zip(counted, counts):
        out["_n_tokens"][position] = n_tokens
    return out


def _rows_to_drop(checked: datasets.Dataset, max_prompt_tokens: int | None, *, source: str, limit_name: str,
                  skip_bad: bool, report: LoadReport) -> set[int]:
    """The indices of the rows to drop (each one counted in `report`), or the error that stops the run."""
    verdicts = checked.with_format("arrow").select_columns(list(VERDICT_FEATURES))[:].to_pylist()
    bad = [(i, row_error(v)) for i, v in enumerate(verdicts) if v["_reason"] is not None]
    if bad and not skip_bad:
        raise bad[0][1]
    for _, error in bad:
        report.add(error)
    report.loaded = len(verdicts) - len(bad)
    report.log(source)
    refused = {i: ImageRejection(v["_item"], *_refusal(v["_refusal"])) for i, v in enumerate(verdicts) if v["_refusal"]}
    report_refusals(list(refused.values()), report.loaded, source=source, skip_bad=skip_bad, report=report)
    too_long = [(i, v["_item"], v["_n_tokens"]) for i, v in enumerate(verdicts)
                if max_prompt_tokens is not None and v["_n_tokens"] > max_prompt_tokens]
    if too_long and not skip_bad:
        named = ", ".join(f"{item} ({n} tokens)" for _, item, n in too_long[:5])
        named += f" and {len(too_long) - 5} more" if len(too_long) > 5 else ""
        raise PromptTooLongError(
            f"{source}: {len(too_long)} prompt(s) are longer than {limit_name} allows ({max_prompt_tokens} tokens): "
            f"{named}. Raise {limit_name.split('=')[0]}, lower max_pixels, drop them, or set skip_bad: true.")
    if too_long:
        logger.warning("%s: skipped %d prompt(s) longer than %s (first: %s, %d tokens)", source, len(too_long),
                       limit_name, *too_long[0][1:])
    return {i for i, _ in bad} | set(refused) | {i for i, _, _ in too_long}


def _refusal(encoded: str) -> tuple[int, tuple[int, int], str]:
    index, width, height, reason = json.loads(encoded)
    return index, (width, height), reason


def processor_fingerprint(processor) -> str:
    """What decides a prompt's token count: the image processor's settings, the vocabulary, the chat template."""
    tokenizer = processor.tokenizer
    backend: Any = getattr(tokenizer, "backend_tokenizer", None)
    vocabulary = backend.to_str() if backend is not None else sorted(tokenizer.get_vocab().items())
    return Hasher.hash([type(processor).__name__, processor.image_processor.to_json_string(), vocabulary,
                        processor.chat_template])


def resized_for(processor):
    """Images resized as the processor would (Qwen's smart_resize: sides multiples of patch x merge, pixels within
    its min/max), so that any other processor of the model, vLLM's loaded from the checkpoint folder with its own
    max_pixels, receives images it leaves as they are: trainer and rollout engine see the same pixels
    (docs/method.md#grpo)."""
    image_processor = processor.image_processor
    factor = image_processor.patch_size * image_processor.merge_size
    low, high = image_processor.size["shortest_edge"], image_processor.size["longest_edge"]

    def resize(batch: dict) -> dict:
        resized = []
        for images in batch["images"]:
            row = []
            for image in images or []:
                height, width = smart_resize(image.height, image.width, factor=factor, min_pixels=low, max_pixels=high)
                row.append(image if (width, height) == image.size else image.resize((width, height),
                                                                                   resample=3))  # BICUBIC, as Qwen
            resized.append(row)
        return {**batch, "images": resized}

    return resize

