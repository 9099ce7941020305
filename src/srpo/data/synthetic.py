# Over 400 lines: five problem families, each keeping its drawing, question and worked solution together.
"""Procedural visual reasoning problems drawn with PIL: exact answers, worked solutions, deterministic by seed.

Problem `i` of seed `s` depends only on (s, i), its family and its difficulty: `random.Random` is seeded per problem,
so a longer run extends a shorter one. Each problem stores the drawn scene in `metadata["scene"]`, from which the
answer can be recomputed. Geometry is laid out on a 112-px design grid and scaled to `image_size`.

Each problem also carries its exact `visual_facts` (docs/method.md#perception): the atomic facts of the image
its solution relies on (counts, colours, lengths, bar values), 2 to 8 (1 at level 0, whose short solutions the demo's
tiny model must fit in its length budget), each written verbatim in the solution, so the perception reward's oracle
judge can check them by rule.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from srpo.data.loaders import save_problems
from srpo.data.schema import CHOICE_LETTERS, Problem
from srpo.errors import InvalidValue
from srpo.files import check_output_dir, replace_dir

FAMILIES = ("count_shapes", "color_sum", "bar_chart", "compare_lengths", "shape_color")
DIFFICULTIES = (1, 2, 3)
# Level 0 (opt-in): one or a few large, bold objects, learnable by a tiny model trained from scratch in minutes.
LEVELS = (0, *DIFFICULTIES)
COLORS = {
    "red": (220, 30, 30),
    "blue": (30, 70, 220),
    "green": (20, 150, 50),
    "orange": (245, 140, 0),
    "purple": (140, 50, 180),
}
GRAY = (130, 130, 130)
SHAPES = ("circle", "square", "triangle", "star")
MIN_IMAGE_SIZE = 32
TEST_SEED_OFFSET = 1_000_003  # write_synthetic: the test split's seed, far from any train seed near `seed`


@dataclass
class _Draft:
    question: str
    answer: str
    solution: str
    image: Image.Image
    variant: str
    scene: dict
    choices: list[str] | None = None
    facts: list[str] | None = None


def generate_problems(
    n: int,
    *,
    seed: int = 0,
    families: Sequence[str] | None = None,
    difficulty: int | Sequence[int] = DIFFICULTIES,
    image_size: int = 112,
) -> list[Problem]:
    """`n` problems cycling through `families` (all by default) and `difficulty` levels, ids `syn-<seed>-<index>`."""
    families = tuple(FAMILIES if families is None else families)
    difficulties = (difficulty,) if isinstance(difficulty, int) else tuple(difficulty)
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        raise InvalidValue(f"families must be a non-empty subset of {FAMILIES}; unknown: {unknown}")
    if not difficulties or any(d not in LEVELS for d in difficulties):
        raise InvalidValue(f"difficulty must be one of {LEVELS} or a non-empty list of them, got {difficulty!r}")
    if image_size < MIN_IMAGE_SIZE:
        raise InvalidValue(f"image_size must be >= {MIN_IMAGE_SIZE} px so text and shapes stay legible, got {image_size}")
    if n < 0:
        raise InvalidValue(f"n must be >= 0, got {n}")
    problems = []
    for index in range(n):
        family = families[index % len(families)]
        level = difficulties[(index // len(families)) % len(difficulties)]
        rng = random.Random(f"srpo-synthetic:{seed}:{index}")
        draft = _BUILDERS[family](rng, level, image_size)
        problems.append(
            Problem(
                id=f"syn-{seed}-{index}",
                question=draft.question,
                answer=draft.answer,
                images=[draft.image],
                choices=draft.choices,
                answer_type="multiple_choice" if draft.choices else ("integer" if draft.answer.isdigit() else "free_form"),
                source=f"synthetic/{family}",
                solution=draft.solution,
                metadata={"family": family, "difficulty": level, "variant": draft.variant, "scene": draft.scene},
                visual_facts=draft.facts,
            )
        )
    return problems


def write_synthetic(out_dir: str | Path, n_train: int, n_test: int, seed: int = 0, **kwargs) -> tuple[Path, Path]:
    """Write `train.jsonl` (seed `seed`) and `test.jsonl` (seed `seed + TEST_SEED_OFFSET`) with PNGs under `images/`.

    The folder is written beside `out_dir` and swapped in whole, replacing what was there: a crash leaves the old
    folder or the new one, never a mix.
    """
    out_dir = Path(out_dir)
    check_output_dir(out_dir, "synthetic data folder")
    train = generate_problems(n_train, seed=seed, **kwargs)  # bad arguments stop here, before anything is written
    test = generate_problems(n_test, seed=seed + TEST_SEED_OFFSET, **kwargs)

    def write(folder: Path) -> None:
        folder.mkdir(parents=True)
        save_problems(train, folder / "train.jsonl")
        save_problems(test, folder / "test.jsonl")

    replace_dir(out_dir, write)
    return out_dir / "train.jsonl", out_dir / "test.jsonl"


# ---- drawing helpers ----------------------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _font(px: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(px, 6))


def _canvas(size: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", (size, size), (255, 255, 255))
    return image, ImageDraw.Draw(image)


def _text(draw: ImageDraw.ImageDraw, center: tuple[float, float], text: str, px: int, fill, bold: bool = False) -> None:
    font, stroke = _font(px), 1 if bold else 0
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font, stroke_width=stroke)
    xy = (round(center[0] - (x0 + x1) / 2), round(center[1] - (y0 + y1) / 2))
    draw.text(xy, text, fill=fill, font=font, stroke_width=stroke, stroke_fill=fill)


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: list[int], color) -> None:
    x0, y0, x1, y1 = box
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
    if shape == "circle":
        draw.ellipse(box, fill=color)
    elif shape == "square":
        draw.rectangle(box, fill=color)
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=color)
    elif shape == "star":
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else r * 0.45
            angle = -math.pi / 2 + k * math.pi / 5
            points.append((cx + radius * math.cos(angle), cy + r * 0.08 + radius * math.sin(angle)))
        draw.polygon(points, fill=color)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def _grid_boxes(rng: random.Random, k: int, side: int, size: int, fill: float, jitter: bool = True) -> list[list[int]]:
    """`k` non-overlapping square boxes in random cells of a `side` x `side` grid; each fills `fill` of its cell."""
    margin = size * 0.04
    cell = (size - 2 * margin) / side
    boxes = []
    for c in rng.sample(range(side * side), k):
        row, col = divmod(c, side)
        w = cell * fill
        slack = cell - w
        dx = rng.uniform(0, slack) if jitter else slack / 2
        dy = rng.uniform(0, slack) if jitter else slack / 2
        x0, y0, w = round(margin + col * cell + dx), round(margin + row * cell + dy), round(w)
        boxes.append([x0, y0, x0 + w, y0 + w])
    return boxes


def _plural(word: str, count: int) -> str:
    return word if count == 1 else word + "s"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _letter_of(choices: list[str], text: str) -> str:
    return CHOICE_LETTERS[choices.index(text)]


def _unique_max(counts: dict[str, int]) -> bool:
    top = max(counts.values())
    return sum(v == top for v in counts.values()) == 1


# ---- families -----------------------------------------------------------------------------------------------------


def _count_shapes(rng: random.Random, level: int, size: int) -> _Draft:
    if level == 0:
        return _count_big_shapes(rng, size)
    side, n_kinds = {1: (3, 2), 2: (3, 3), 3: (4, 4)}[level]
    kinds = rng.sample(SHAPES, n_kinds)
    variant = "most_common" if rng.random() < 0.25 else "count"
    while True:
        if level == 1:
            counts = {kinds[0]: rng.randint(1, 4), kinds[1]: rng.randint(0, 2)}
        else:
            low = 0 if rng.random() < 0.1 else 1
            counts = {kinds[0]: rng.randint(low, 5 if level == 2 else 8)}
            n_other = rng.randint(2, 4) if level == 2 else rng.randint(3, 6)
            for _ in range(n_other):
                other = rng.choice(kinds[1:])
                counts[other] = counts.get(other, 0) + 1
        present = {k: v for k, v in counts.items() if v}
        if sum(counts.values()) <= side * side and (variant == "count" or (len(present) >= 2 and _unique_max(present))):
            break
    color_of = dict(zip(kinds, rng.sample(list(COLORS), n_kinds)))  # level 1: one color per kind
    shapes = [k for k in kinds for _ in range(counts.get(k, 0))]
    rng.shuffle(shapes)
    fill = 0.72 if level < 3 else 0.8
    boxes = _grid_boxes(rng, len(shapes), side, size, fill)
    image, draw = _canvas(size)
    objects = []
    for shape, box in zip(shapes, boxes):
        if level == 3:  # smaller shapes too
            shrink = round((box[2] - box[0]) * rng.choice((0.0, 0.0, 0.15)))
            box = [box[0] + shrink, box[1] + shrink, box[2] - shrink, box[3] - shrink]
        color = color_of[shape] if level == 1 else rng.choice(list(COLORS))
        _draw_shape(draw, shape, box, COLORS[color])
        objects.append({"shape": shape, "color": color, "box": box})
    seen = [f"{counts[k]} {_plural(k, counts[k])}" for k in SHAPES if counts.get(k)]
    target = kinds[0]
    if len(seen) < 2:  # one kind drawn: the absent one is the second fact
        seen += [f"no {k}s" for k in kinds if not counts.get(k) and k != target]
    scene = {"objects": objects, "target": target}
    if variant == "count":
        n = counts.get(target, 0)
        facts = list(seen)
        if n:
            step = f"Counting only the {target}s gives {n}."
        else:
            step = f"There are no {target}s, so the count is 0."
            facts.append(f"there are no {target}s")
        solution = f"I see {_join(seen)}. {step} So the answer is {n}."
        return _Draft(f"How many {target}s are there in the image?", str(n), solution, image, variant, scene,
                      facts=facts)
    choices = sorted(present)
    rng.shuffle(choices)
    best = max(present, key=present.get)
    letter = _letter_of(choices, best)
    solution = f"I see {_join(seen)}. The {best} appears most often, which is option {letter}. So the answer is {letter}."
    return _Draft("Which shape appears most often?", letter, solution, image, variant, scene, choices, seen)


def _color_sum(rng: random.Random, level: int, size: int) -> _Draft:
    level = max(level, 1)  # no level 0: digits are never "large, bold objects" for a tiny vision tower
    side, n_colors, top, n_target, n_other = {
        1: (3, 2, 5, (1, 3), (1, 2)),
        2: (3, 3, 6, (2, 3), (2, 3)),
        3: (4, 4, 6, (2, 4), (3, 5)),
    }[level]
    colors = rng.sample(list(COLORS), n_colors)
    variant = "largest_sum" if level > 1 and rng.random() < 0.3 else "sum"
    while True:
        items = [(rng.randint(1, top), colors[0]) for _ in range(rng.randint(*n_target))]
        items += [(rng.randint(1, top), rng.choice(colors[1:])) for _ in range(rng.randint(*n_other))]
        sums: dict[str, int] = {}
        for value, color in items:
            sums[color] = sums.get(color, 0) + value
        if variant == "sum" or (len(sums) >= 2 and _unique_max(sums)):
            break
    rng.shuffle(items)
    boxes = _grid_boxes(rng, len(items), side, size, 0.6)
    image, draw = _canvas(size)
    px = round(size * (0.2 if side == 3 else 0.17))
    numbers = []
    for (value, color), box in zip(items, boxes):
        center = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        _text(draw, center, str(value), px, COLORS[color], bold=True)
        numbers.append({"value": value, "color": color, "center": [round(center[0]), round(center[1])]})
    scene = {"numbers": numbers, "target": colors[0]}

    def listing(color: str) -> list[int]:
        return [item["value"] for item in numbers if item["color"] == color]

    def numbers_fact(color: str) -> str:
        values = listing(color)
        if len(values) == 1:
            return f"the only {color} number is {values[0]}"
        return f"the {color} numbers are {_join([str(v) for v in values])}"

    if variant == "sum":
        target, values = colors[0], listing(colors[0])
        total = sum(values)
        facts = [f"{len(values)} {target} {_plural('number', len(values))}", numbers_fact(target)]
        steps = f"I see {facts[0]}. {facts[1][0].upper()}{facts[1][1:]}."
        if len(values) > 1:
            steps += f" Adding them gives {' + '.join(map(str, values))} = {total}."
        return _Draft(f"What is the sum of the {target} numbers?", str(total), f"{steps} So the answer is {total}.",
                      image, variant, scene, facts=facts)
    choices = [c for c in COLORS if c in sums]
    rng.shuffle(choices)
    parts = []
    for color in choices:
        values = listing(color)
        expr = " + ".join(map(str, values)) + (f" = {sums[color]}" if len(values) > 1 else "")
        parts.append(f"{color} {expr}")
    best = max(sums, key=sums.get)
    letter = _letter_of(choices, best)
    facts = [numbers_fact(color) for color in choices]
    seen = "; ".join(facts)
    solution = (
        f"{seen[0].upper()}{seen[1:]}. The sums by color are {_join(parts)}. The largest sum is {sums[best]}, for "
        f"{best}, which is option {letter}. So the answer is {letter}."
    )
    return _Draft("Which color's numbers have the largest sum?", letter, solution, image, variant, scene, choices, facts)


def _bar_chart(rng: random.Random, level: int, size: int) -> _Draft:
    level = max(level, 1)  # no level 0: reading a scale is never a warm-up task
    n_bars, top, tick = {1: (3, 5, 1), 2: (4, 8, 2), 3: (5, 10, 2)}[level]
    labels = list(CHOICE_LETTERS[:n_bars])
    weights = (0.6, 0.0, 0.4) if level == 1 else (0.35, 0.35, 0.3)
    variant = rng.choices(("value", "difference", "extreme"), weights)[0]
    while True:
        values = [rng.randint(1, top) for _ in labels]
        if variant != "extreme" or (_unique_max(dict(zip(labels, values))) and len(set(values)) > 1):
            if variant != "difference" or len(set(values)) > 1:
                break
    s = size / 112
    left, right, top_y, base = round(20 * s), round(size - 5 * s), round(7 * s), round(size - 17 * s)
    unit = (base - top_y) / top
    image, draw = _canvas(size)
    for v in range(top + 1):  # a light grid line per unit, a tick label every `tick`
        y = round(base - v * unit)
        draw.line([(left, y), (right, y)], fill=(215, 215, 215), width=1)
        if v % tick == 0:
            _text(draw, (left / 2, y), str(v), round(10 * s), (0, 0, 0))
    slot = (right - left) / n_bars
    colors = rng.sample(list(COLORS), n_bars)
    bars = []
    for i, (label, value, color) in enumerate(zip(labels, values, colors)):
        x0, x1 = round(left + i * slot + slot * 0.18), round(left + (i + 1) * slot - slot * 0.18)
        box = [x0, round(base - value * unit), x1, base]
        draw.rectangle(box, fill=COLORS[color])
        _text(draw, ((x0 + x1) / 2, base + 9 * s), label, round(11 * s), (0, 0, 0))
        bars.append({"label": label, "value": value, "color": color, "box": box})
    draw.line([(left, base), (right, base)], fill=(0, 0, 0), width=max(1, round(s)))
    draw.line([(left, top_y), (left, base)], fill=(0, 0, 0), width=max(1, round(s)))
    facts = [f"{b} = {v}" for b, v in zip(labels, values)]
    readings = f"The bars read {_join(facts)} on the scale."
    scene = {"bars": bars, "scale_max": top}
    if variant == "value":
        i = rng.randrange(n_bars)
        scene["ask"] = [labels[i]]
        solution = f"{readings} Bar {labels[i]} reaches {values[i]}. So the answer is {values[i]}."
        return _Draft(f"What is the value of bar {labels[i]}?", str(values[i]), solution, image, variant, scene,
                      facts=facts)
    if variant == "difference":
        i, j = rng.sample([k for k in range(n_bars)], 2)
        while values[i] == values[j]:
            i, j = rng.sample(range(n_bars), 2)
        if values[i] < values[j]:
            i, j = j, i
        diff = values[i] - values[j]
        scene["ask"] = [labels[i], labels[j]]
        solution = (
            f"{readings} Bar {labels[i]} is {values[i]} and bar {labels[j]} is {values[j]}, so the difference is "
            f"{values[i]} - {values[j]} = {diff}. So the answer is {diff}."
        )
        question = f"How much taller is bar {labels[i]} than bar {labels[j]}?"
        return _Draft(question, str(diff), solution, image, variant, scene, facts=facts)
    tallest = rng.random() < 0.5 or not _unique_max({b: -v for b, v in zip(labels, values)})
    word = "tallest" if tallest else "shortest"
    pick = max if tallest else min
    best = pick(range(n_bars), key=lambda k: values[k])
    scene["ask"] = [word]
    choices = [f"bar {b}" for b in labels]
    letter = labels[best]
    solution = f"{readings} The {word} is bar {letter} with {values[best]}, which is option {letter}. So the answer is {letter}."
    return _Draft(f"Which bar is the {word}?", letter, solution, image, "tallest" if tallest else "shortest", scene, choices,
                  facts)


def _compare_lengths(rng: random.Random, level: int, size: int) -> _Draft:
    if level == 0:
        return _compare_two_bars(rng, size)
    n_lines = level + 1
    variant = "longest" if rng.random() < (0.7 if level == 1 else 0.6) else "count_longer"
    if variant == "longest" and level == 3 and rng.random() < 0.5:
        variant = "shortest"
    margin = size * 0.08
    usable = size - 2 * margin
    lo, hi, step = (0.25, 1.0, 0.125) if level == 1 else (0.2, 0.8, 0.12)
    candidates = [round(usable * (lo + k * step)) for k in range(round((hi - lo) / step) + 1)]
    colors = rng.sample(list(COLORS), n_lines)
    if variant == "count_longer":
        ref = rng.choice(candidates[1:-1])
        lengths = [rng.choice([c for c in candidates if c != ref]) for _ in colors]
    else:
        ref, lengths = None, rng.sample(candidates, n_lines)
    rows = n_lines + (ref is not None)
    gap = (size - 2 * margin) / rows
    width = max(3, round(size * 0.035))
    image, draw = _canvas(size)
    order = [("gray", ref)] if ref is not None else []
    order += list(zip(colors, lengths))
    rng.shuffle(order)
    lines, reference = [], None
    for row, (color, length) in enumerate(order):
        y = round(margin + (row + 0.5) * gap)
        x0 = round(margin) if level == 1 else round(margin + rng.uniform(0, usable - length))
        rgb = GRAY if color == "gray" else COLORS[color]
        draw.line([(x0, y), (x0 + length, y)], fill=rgb, width=width)
        entry = {"color": color, "length": length, "start": [x0, y], "end": [x0 + length, y]}
        if color == "gray":
            reference = entry
        else:
            lines.append(entry)
    scene = {"lines": lines, "reference": reference}
    if variant == "count_longer":
        n = sum(ln["length"] > ref for ln in lines)
        # one fact per line, in drawing order (top to bottom)
        facts = [f"the {ln['color']} line is {'longer' if ln['length'] > ref else 'shorter'} than the gray line"
                 for ln in lines]
        seen = "; ".join(facts)
        solution = f"{seen[0].upper()}{seen[1:]}.{f' That makes {n}.' if n else ''} So the answer is {n}."
        return _Draft("How many colored lines are longer than the gray line?", str(n), solution, image, variant, scene,
                      facts=facts)
    pick = max if variant == "longest" else min
    best = pick(lines, key=lambda ln: ln["length"])["color"]
    choices = list(colors)
    rng.shuffle(choices)
    letter = _letter_of(choices, best)
    others = [c for c in colors if c != best]
    relation = "shorter" if variant == "longest" else "longer"
    facts = [f"the {best} line is the {variant}",
             f"the {_join(others)} {_plural('line', len(others))} {'is' if len(others) == 1 else 'are'} {relation}"]
    solution = (
        f"Comparing the lines, {facts[0]}; {facts[1]}. The {best} line is option {letter}. So the answer is {letter}."
    )
    return _Draft(f"Which line is the {variant}?", letter, solution, image, variant, scene, choices, facts)


def _shape_color(rng: random.Random, level: int, size: int) -> _Draft:
    if level == 0:
        return _one_shape_color(rng, size)
    n_shapes, n_choices = {1: (2, 3), 2: (3, 4), 3: (4, 4)}[level]
    shapes = rng.sample(SHAPES, n_shapes)
    colors = rng.sample(list(COLORS), max(n_shapes, n_choices))
    boxes = _grid_boxes(rng, n_shapes, 2, size, 0.62)
    image, draw = _canvas(size)
    objects = []
    for shape, color, box in zip(shapes, colors, boxes):
        _draw_shape(draw, shape, box, COLORS[color])
        objects.append({"shape": shape, "color": color, "box": box})
    target = shapes[0]
    choices = colors[:n_choices]
    rng.shuffle(choices)
    letter = _letter_of(choices, colors[0])
    facts = [f"{_article(o['color'])} {o['color']} {o['shape']}" for o in objects]
    solution = f"The image shows {_join(facts)}. The {target} is {colors[0]}, which is option {letter}. So the answer is {letter}."
    scene = {"objects": objects, "target": target}
    return _Draft(f"What color is the {target}?", letter, solution, image, "color_of", scene, choices, facts)


# ---- level 0: large, bold objects ------------------------------------------------------------------------------------


def _count_big_shapes(rng: random.Random, size: int) -> _Draft:
    shape, color = rng.choice(SHAPES), rng.choice(list(COLORS))
    n = rng.randint(1, 4)
    boxes = _grid_boxes(rng, n, 2, size, 0.85)
    image, draw = _canvas(size)
    objects = []
    for box in boxes:
        _draw_shape(draw, shape, box, COLORS[color])
        objects.append({"shape": shape, "color": color, "box": box})
    # Level 0 keeps the demo's short solutions (its tiny model writes them within its length budget): one fact.
    facts = [f"{n} {color} {_plural(shape, n)}"]
    solution = f"I see {facts[0]}. So the answer is {n}."
    scene = {"objects": objects, "target": shape}
    return _Draft(f"How many {shape}s are there in the image?", str(n), solution, image, "count", scene, facts=facts)


def _compare_two_bars(rng: random.Random, size: int) -> _Draft:
    colors = rng.sample(list(COLORS), 2)
    margin = size * 0.08
    usable = size - 2 * margin
    lengths = rng.sample([round(usable * f) for f in (0.25, 0.45, 0.65, 1.0)], 2)
    width = round(size * 0.2)
    image, draw = _canvas(size)
    lines = []
    for row, (color, length) in enumerate(zip(colors, lengths)):
        y = round(margin + (row + 0.5) * usable / 2)
        x0 = round(margin)
        draw.line([(x0, y), (x0 + length, y)], fill=COLORS[color], width=width)
        lines.append({"color": color, "length": length, "start": [x0, y], "end": [x0 + length, y]})
    best = max(lines, key=lambda ln: ln["length"])["color"]
    other = next(c for c in colors if c != best)
    facts = [f"the {best} line is longer than the {other} line"]
    solution = f"The {best} line is longer than the {other} line. So the answer is {best}."
    scene = {"lines": lines, "reference": None}
    # Free-form on purpose: listed options would let a tiny model guess from the text instead of looking.
    return _Draft("What color is the longest line?", best, solution, image, "longest", scene, facts=facts)


def _one_shape_color(rng: random.Random, size: int) -> _Draft:
    shape, color = rng.choice(SHAPES), rng.choice(list(COLORS))
    box = _grid_boxes(rng, 1, 1, size, 0.7)[0]
    image, draw = _canvas(size)
    _draw_shape(draw, shape, box, COLORS[color])
    facts = [f"{_article(color)} {color} {shape}"]
    solution = f"The image shows {facts[0]}. So the answer is {color}."
    scene = {"objects": [{"shape": shape, "color": color, "box": box}], "target": shape}
    return _Draft(f"What color is the {shape}?", color, solution, image, "color_of", scene, facts=facts)


_BUILDERS = {
    "count_shapes": _count_shapes,
    "color_sum": _color_sum,
    "bar_chart": _bar_chart,
    "compare_lengths": _compare_lengths,
    "shape_color": _shape_color,
}

