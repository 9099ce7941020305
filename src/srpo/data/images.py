"""Which items' images a model's image processor refuses, asked of the processor itself before a batch is built.

Qwen2-VL's processor (`smart_resize`) raises for an absolute aspect ratio over 200 and divides by zero on an image
with a zero side; one such image inside a batch takes the whole batch (and the run) down. Images smaller than a
patch are not refused: they are upscaled to the processor's `min_pixels`.

    rejected = reject_images(((p.id, p.images) for p in problems), processor, source="data/train.jsonl",
                             skip_bad=True, report=report)
    problems = [p for p in problems if p.id not in rejected]
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from srpo.data.loaders import LoadReport
from srpo.data.sources import DataError

logger = logging.getLogger(__name__)

MAX_NAMED = 5  # ids named in one error message; the rest are counted


@dataclass(frozen=True)
class ImageRejection:
    id: str  # the item
    index: int  # which of its images
    size: tuple[int, int]  # (width, height) in pixels
    reason: str  # the processor's own message


def check_images(items: Iterable[tuple[str, Sequence[Image.Image]]], processor: Any) -> list[ImageRejection]:
    """For each (id, images) item with an image `processor` refuses, its first refused image and why.

    `processor` is a model's processor or its image processor; its own resize rule decides, with its own patch,
    merge and min/max pixel settings. Only the images' sizes are read.
    """
    image_processor = getattr(processor, "image_processor", processor)
    rejected = []
    for item_id, images in items:
        for index, image in enumerate(images):
            reason = _refusal(image_processor, image)
            if reason is not None:
                rejected.append(ImageRejection(str(item_id), index, image.size, reason))
                break
    return rejected


def _refusal(image_processor: Any, image: Image.Image) -> str | None:
    width, height = image.size
    try:
        if hasattr(image_processor, "get_number_of_image_patches"):
            # the rule the processor resizes by (vLLM asks the same), without resizing anything
            image_processor.get_number_of_image_patches(height, width)
        else:
            image_processor(images=[image])
    except Exception as e:  # noqa: BLE001 - whatever the processor raises is its refusal
        return str(e) or type(e).__name__
    return None


def reject_images(items: Iterable[tuple[str, Sequence[Image.Image]]], processor: Any, *, source: str,
                  skip_bad: bool = False, report: LoadReport | None = None) -> set[str]:
    """The ids of the items whose images `processor` refuses, for the caller to drop.

    Without `skip_bad` any such item is one `DataError` for `source` (the data file) naming the first few ids, the
    image, its size and the processor's reason. With `skip_bad` each is counted in `report` under "image_rejected"
    (and `report.loaded` becomes the number of checked items kept) and logged.
    """
    items = list(items)
    return report_refusals(check_images(items, processor), len(items), source=source, skip_bad=skip_bad, report=report)


def report_refusals(rejected: list[ImageRejection], n_items: int, *, source: str, skip_bad: bool = False,
                    report: LoadReport | None = None) -> set[str]:
    """`reject_images` for refusals already found among `n_items` items: one DataError, or counted and logged."""
    if not rejected:
        return set()
    if not skip_bad:
        named = "; ".join(f"{r.id!r} (image {r.index}, {r.size[0]}x{r.size[1]} px: {r.reason})"
                          for r in rejected[:MAX_NAMED])
        more = f"; and {len(rejected) - MAX_NAMED} more" if len(rejected) > MAX_NAMED else ""
        raise DataError(source, "images", "image_rejected",
                        f"the model's image processor refuses the images of {len(rejected)} item(s): {named}{more}. "
                        "Crop or pad those images (Qwen2-VL needs an aspect ratio of at most 200), or remove the items")
    report = report if report is not None else LoadReport()
    for r in rejected:
        report.add(DataError(source, f"images[{r.index}]", "image_rejected",
                             f"item {r.id!r}: the image processor refuses {r.size[0]}x{r.size[1]} px ({r.reason})"))
    report.loaded = n_items - len(rejected)
    first = rejected[0]
    logger.warning("%s: skipped %d item(s) whose images the model's image processor refuses; first: %r (%s)", source,
                   len(rejected), first.id, first.reason)
    return {r.id for r in rejected}
