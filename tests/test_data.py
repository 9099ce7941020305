import io
import json
import re

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from srpo.data import (
    DataError,
    LoadReport,
    Problem,
    ProblemError,
    load_problems,
    problems_to_dataset,
    row_to_problem,
    save_problems,
)


def _image(color, size=(9, 7)) -> Image.Image:
    image = Image.new("RGB", size, color)
    image.putpixel((1, 2), (1, 2, 3))  # not a flat image, so a pixel mix-up would show
    return image


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _problems() -> list[Problem]:
    return [
        Problem("p/1", "How many dots?", "3", [_image("red")], answer_type="integer", source="toy", solution="I see 3 dots. So the answer is 3.", metadata={"scene": [1, {"a": "b"}]}),
        Problem("p2", "Which is red?", "B", [_image("blue"), _image("red", (5, 12))], choices=["blue", "red"], answer_type="multiple_choice"),
        Problem("p3", "Name it.", "a cat", [], source="text-only"),
    ]


def _assert_same(loaded: list[Problem], expected: list[Problem]) -> None:
    assert [p.id for p in loaded] == [p.id for p in expected]
    for a, b in zip(loaded, expected):
        assert (a.question, a.answer, a.choices, a.answer_type, a.solution) == (b.question, b.answer, b.choices, b.answer_type, b.solution)
        assert len(a.images) == len(b.images)
        for x, y in zip(a.images, b.images):
            assert x.mode == "RGB" and x.size == y.size and x.tobytes() == y.tobytes()


def _write_jsonl(path, rows) -> None:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))


# ---- schema ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"id": ""}, "id"),
        ({"question": "  "}, "question"),
        ({"answer": None}, "answer"),
        ({"answer_type": "yes_no"}, "answer_type"),
        ({"answer_type": "multiple_choice"}, "choices"),
        ({"answer_type": "multiple_choice", "choices": ["x", "y", "z"], "answer": "D"}, "answer"),
        ({"answer_type": "integer", "answer": "three"}, "answer"),
        ({"choices": ["x", ""]}, "choices[1]"),
        ({"images": ["img.png"]}, "images[0]"),
    ],
)
def test_problem_validation_names_the_field(kwargs, field):
    base = {"id": "q1", "question": "Q?", "answer": "A", "images": []}
    with pytest.raises(ProblemError, match=re.escape(f"field '{field}'")):
        Problem(**{**base, **kwargs})


def test_question_with_choices_and_rgb_conversion():
    transparent = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    problem = Problem("q", "Pick one.", "B", [transparent, Image.new("L", (3, 3), 7)], choices=["cat", "dog"], answer_type="multiple_choice")
    assert problem.question_with_choices() == "Pick one.\nChoices:\nA. cat\nB. dog"
    assert Problem("q", "Plain?", "1", []).question_with_choices() == "Plain?"
    assert [im.mode for im in problem.images] == ["RGB", "RGB"]
    assert problem.images[0].getpixel((0, 0)) == (255, 255, 255)  # transparent -> white, not black
    assert problem.images[1].getpixel((0, 0)) == (7, 7, 7)


# ---- round trips ----------------------------------------------------------------------------------------------------


def test_jsonl_round_trip_is_exact(tmp_path):
    problems = _problems()
    path = save_problems(problems, tmp_path / "out" / "set.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows[1]["images"] == ["images/set/p2_0.png", "images/set/p2_1.png"]  # relative, beside the file
    loaded = load_problems(path)
    _assert_same(loaded, problems)
    assert loaded[0].metadata == {"scene": [1, {"a": "b"}]} and loaded[0].source == "toy"
    # Loading from another working directory still resolves the images against the file's folder.
    moved = tmp_path / "moved"
    (tmp_path / "out").rename(moved)
    _assert_same(load_problems(moved / "set.jsonl"), problems)


def test_jsonl_aliases_inference_and_image_kinds(tmp_path):
    _image("green").save(tmp_path / "g.png")
    _image("red").convert("RGBA").save(tmp_path / "sub.png")  # non-RGB file
    (tmp_path / "nested").mkdir()
    _image("blue").save(tmp_path / "nested" / "b.png")
    _write_jsonl(
        tmp_path / "mix.jsonl",
        [
            {"query": "How many?", "gt_answer": 4, "image": "g.png", "category": "count"},
            "",
            {"problem": "Which?", "label": "(b)", "options": {"A": "cat", "B": "dog"}, "images": [str(tmp_path / "sub.png")]},
            {"question": "Which animal?", "answer": "dog", "choices": ["cat", "dog"], "images": ["nested/b.png"], "solution": "It barks. So the answer is B."},
            {"id": 7, "question": "Ratio?", "answer": 0.5},
            {"id": "t", "question": "Name?", "answer": "Paris", "solution": "Capital. So the answer is Paris."},
        ],
    )
    p = load_problems(tmp_path / "mix.jsonl")
    assert [x.id for x in p] == ["mix-1", "mix-3", "mix-4", "7", "t"]  # missing id -> <stem>-<line>
    assert (p[0].question, p[0].answer, p[0].answer_type, p[0].metadata) == ("How many?", "4", "integer", {"category": "count"})
    assert (p[1].answer, p[1].choices, p[1].answer_type) == ("B", ["cat", "dog"], "multiple_choice")
    assert p[2].answer == "B" and p[2].solution.startswith("It barks")  # option text -> letter; solution kept apart
    assert (p[3].answer, p[3].answer_type, p[3].images) == ("0.5", "float", [])
    assert (p[4].answer, p[4].answer_type) == ("Paris", "free_form")
    assert p[0].images[0].tobytes() == _image("green").tobytes()
    assert p[1].images[0].tobytes() == _image("red").tobytes()
    assert p[2].images[0].tobytes() == _image("blue").tobytes()


def test_parquet_with_bytes_dicts_and_raw_bytes(tmp_path):
    red, blue = _image("red"), _image("blue", (4, 11))
    table = pa.table(
        {
            "question": ["Q1?", "Q2?"],
            "answer": ["1", "A"],
            "choices": [None, ["x", "y"]],
            "images": [[{"bytes": _png_bytes(red), "path": None}], [{"bytes": None, "path": "blue.png"}]],
            "image": [_png_bytes(blue), None],  # ignored: `images` wins when both exist
        }
    )
    blue.save(tmp_path / "blue.png")
    pq.write_table(table, tmp_path / "d.parquet")
    p = load_problems(tmp_path / "d.parquet")
    assert [x.id for x in p] == ["d-0", "d-1"]
    assert p[0].images[0].tobytes() == red.tobytes() and p[1].images[0].tobytes() == blue.tobytes()
    assert (p[1].answer_type, p[1].choices) == ("multiple_choice", ["x", "y"])

    raw = pa.table({"id": ["r"], "question": ["Q?"], "answer": ["2"], "image": [_png_bytes(red)]})
    pq.write_table(raw, tmp_path / "raw.parquet")
    assert load_problems(tmp_path / "raw.parquet")[0].images[0].tobytes() == red.tobytes()


def test_datasets_round_trips_via_parquet_and_save_to_disk(tmp_path):
    problems = _problems()
    ds = problems_to_dataset(problems)
    assert ds.column_names == ["id", "question", "answer", "choices", "answer_type", "source", "solution", "images", "visual_facts"]
    assert ds.features["images"] == datasets.List(datasets.Image())
    assert ds[1]["images"][1].size == (5, 12)
    ds.to_parquet(str(tmp_path / "ds.parquet"))
    _assert_same(load_problems(tmp_path / "ds.parquet"), problems)
    ds.save_to_disk(str(tmp_path / "ds"))
    _assert_same(load_problems(tmp_path / "ds"), problems)
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "dd"))
    _assert_same(load_problems(tmp_path / "dd"), problems)


def test_save_to_disk_with_pil_single_image_column(tmp_path):
    green = _image("green")
    features = datasets.Features({"query": datasets.Value("string"), "label": datasets.Value("int64"), "image": datasets.Image()})
    datasets.Dataset.from_dict({"query": ["Count?"], "label": [3], "image": [green]}, features=features).save_to_disk(str(tmp_path / "pil"))
    (problem,) = load_problems(tmp_path / "pil")
    assert (problem.id, problem.question, problem.answer) == ("pil-0", "Count?", "3")
    assert problem.images[0].tobytes() == green.tobytes()


def test_row_to_problem_accepts_pil_images(tmp_path):
    row = {"question": "Q?", "answer": "1", "images": [_image("red").convert("RGBA")]}
    problem = row_to_problem(row, where="mem:0", default_id="mem-0", base_dir=tmp_path)
    assert problem.images[0].mode == "RGB" and problem.images[0].tobytes() == _image("red").tobytes()


# ---- errors ---------------------------------------------------------------------------------------------------------


GOOD = {"id": "ok", "question": "Q?", "answer": "1"}


@pytest.mark.parametrize(
    "bad, field, reason, text",
    [
        ({"question": "Q?", "answer": "1", "images": ["img/3.png"]}, "images[0]", "image_not_found", "image 'img/3.png' not found (resolved to "),
        ({"question": "Q?", "answer": "1", "image": "corrupt.png"}, "image", "image_unreadable", "cannot be decoded"),
        ({"question": "Q?", "answer": "1", "images": ["trunc.png"]}, "images[0]", "image_unreadable", "image 'trunc.png' cannot be decoded"),
        ({"question": "Q?", "solution": "So the answer is 3."}, "answer", "missing_answer", "missing or empty answer"),
        ('{"question": "Q?", "answer": ', None, "invalid_json", "invalid JSON"),
        ({"question": "Q?", "answer": "E", "choices": ["a", "b", "c"]}, "answer", "invalid_choices", "not an option letter (A, B, C)"),
        ({"question": "Q?", "answer": "A", "answer_type": "multiple_choice"}, "choices", "invalid_choices", "without choices"),
        ({"question": "Q?", "answer": "A", "choices": "a, b"}, "choices", "invalid_choices", "expected a list"),
    ],
)
def test_bad_jsonl_row_names_file_line_and_field(tmp_path, bad, field, reason, text):
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (tmp_path / "trunc.png").write_bytes(_png_bytes(Image.effect_noise((64, 64), 50).convert("RGB"))[:200])
    path = tmp_path / "problems.jsonl"
    _write_jsonl(path, [GOOD, "", bad])  # the blank line still counts: the bad row is line 3
    with pytest.raises(DataError) as info:
        load_problems(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: ") and text in message
    assert (info.value.field, info.value.reason) == (field, reason)
    if field:
        assert f": {field}: " in message
    report = LoadReport()
    assert [p.id for p in load_problems(path, skip_bad=True, report=report)] == ["ok"]
    assert report.skipped == {reason: 1} and report.loaded == 1 and report.messages == [message]


def test_skip_bad_counts_by_reason_and_limit(tmp_path):
    _write_jsonl(
        tmp_path / "many.jsonl",
        [
            GOOD,
            "not json",
            {"question": "Q?", "answer": "1", "image": "missing.png"},
            {"question": "Q?", "answer": "1", "image": "missing2.png"},
            {"question": "Q?"},
            {"id": "ok", "question": "Again?", "answer": "2"},
            [1, 2],
            {"id": "ok2", "question": "Q?", "answer": "2"},
        ],
    )
    report = LoadReport(max_messages=2)
    problems = load_problems(tmp_path / "many.jsonl", skip_bad=True, report=report)
    assert [p.id for p in problems] == ["ok", "ok2"]
    assert report.skipped == {"invalid_json": 1, "image_not_found": 2, "missing_answer": 1, "duplicate_id": 1, "invalid_row": 1}
    assert report.n_skipped == 6 and len(report.messages) == 2 and "many.jsonl:2:" in report.messages[0]
    assert "skipped 6" in report.summary()
    assert [p.id for p in load_problems(tmp_path / "many.jsonl", skip_bad=True, limit=1)] == ["ok"]
    assert load_problems(tmp_path / "many.jsonl", limit=1)[0].id == "ok"  # stops before the bad line 2
    with pytest.raises(DataError, match="many.jsonl:6: id: id 'ok' was already used at .*many.jsonl:1"):
        _write_jsonl(tmp_path / "many.jsonl", [GOOD, "", "", "", "", GOOD])
        load_problems(tmp_path / "many.jsonl")


def test_parquet_and_dataset_errors_name_the_row(tmp_path):
    table = pa.table({"question": ["Q?", "Q?"], "answer": ["1", "2"], "image": [_png_bytes(_image("red")), b"garbage"]})
    pq.write_table(table, tmp_path / "t.parquet")
    with pytest.raises(DataError, match=r"t\.parquet:row 1: image: image bytes cannot be decoded"):
        load_problems(tmp_path / "t.parquet")
    features = datasets.Features({"question": datasets.Value("string"), "answer": datasets.Value("string")})
    datasets.Dataset.from_dict({"question": ["Q?", "Q?", ""], "answer": ["1", None, "3"]}, features=features).save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(DataError, match=r"ds:row 1: answer: missing"):
        load_problems(tmp_path / "ds")
    report = LoadReport()
    assert len(load_problems(tmp_path / "ds", skip_bad=True, report=report)) == 1
    assert report.skipped == {"missing_answer": 1, "missing_question": 1}


def test_unknown_inputs_are_rejected_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_problems(tmp_path / "nope.jsonl")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="unknown format"):
        load_problems(tmp_path / "x.csv")
    with pytest.raises(DataError, match="not a datasets save_to_disk folder"):
        load_problems(tmp_path)
    with pytest.raises(ValueError, match=r"\.jsonl"):
        save_problems(_problems(), tmp_path / "out.json")


def test_bad_bytes_and_values_on_a_line_name_the_line(tmp_path):
    path = tmp_path / "mixed.jsonl"
    lines = [
        "\ufeff".encode() + json.dumps(GOOD).encode(),  # a byte-order mark on line 1 is accepted
        json.dumps({"id": "caf\u00e9", "question": "Q?", "answer": "2"}, ensure_ascii=False).encode(),
        '{"question": "Gr\u00fc\u00dfe?", "answer": "1"}'.encode("latin-1"),
        json.dumps([GOOD]).encode(),
        json.dumps("just text").encode(),
        b"[" * 100_000,
        json.dumps({"id": "nul", "question": "Q?", "answer": "1", "images": ["img\u0000.png"]}).encode(),
        json.dumps({"id": "long", "question": "Q?", "answer": "1", "image": "x" * 5000 + ".png"}).encode(),
    ]
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    expected = [
        (3, None, "invalid_encoding", "not UTF-8 text (byte 17 of the line is 0xfc); save the file as UTF-8"),
        (4, None, "invalid_row", "is a JSON array, not an object"),
        (5, None, "invalid_row", "is a JSON string, not an object"),
        (6, None, "invalid_json", "nested too deeply"),
        (7, "images[0]", "invalid_field", "contains a NUL byte (\\x00) at position 3; fix the path"),
        (8, "image", "image_not_found", "cannot be used (File name too long); fix the path"),
    ]
    report = LoadReport()
    assert [p.id for p in load_problems(path, skip_bad=True, report=report)] == ["ok", "café"]
    assert report.skipped == {"invalid_encoding": 1, "invalid_row": 2, "invalid_json": 1, "invalid_field": 1, "image_not_found": 1}
    for (line, field, reason, text), message in zip(expected, report.messages, strict=True):
        assert message.startswith(f"{path}:{line}: " + (f"{field}: " if field else "")) and text in message, message
        assert len(message) < 600  # a 5000-character path is shortened
    for line, field, reason, text in expected:  # each one alone stops a strict load, naming its line
        path.write_bytes(lines[0] + b"\n" + lines[line - 1] + b"\n")
        with pytest.raises(DataError) as info:
            load_problems(path)
        assert str(info.value).startswith(f"{path}:2: ") and (info.value.field, info.value.reason) == (field, reason)


def test_pretty_printed_json_gets_a_hint(tmp_path):
    path = tmp_path / "pretty.jsonl"
    path.write_text(json.dumps([GOOD], indent=2))
    with pytest.raises(DataError, match=r"pretty\.jsonl:1: invalid JSON .*pretty-printed JSON; write one JSON object per line"):
        load_problems(path)


def test_a_parquet_name_on_another_file_names_the_file_even_with_skip_bad(tmp_path):
    fake = tmp_path / "fake.parquet"
    fake.write_text(json.dumps(GOOD) + "\n")
    with pytest.raises(DataError, match=r"fake\.parquet: not a readable Parquet file .*rename a JSON Lines file to \.jsonl"):
        load_problems(fake, skip_bad=True)
    table = pa.table({"question": ["Q?"] * 2000, "answer": [str(i) for i in range(2000)]})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=500)
    data = (tmp_path / "t.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])  # the footer is gone
    with pytest.raises(DataError, match=r"cut\.parquet: not a readable Parquet file") as info:
        load_problems(tmp_path / "cut.parquet")
    assert info.value.reason == "invalid_file"


def test_a_corrupt_datasets_folder_names_the_folder(tmp_path):
    datasets.Dataset.from_dict({"question": ["Q?"], "answer": ["1"]}).save_to_disk(str(tmp_path / "ds"))
    (tmp_path / "ds" / "state.json").write_text("{broken")
    with pytest.raises(DataError, match=r"ds: the datasets folder cannot be read .*save it again"):
        load_problems(tmp_path / "ds")


# ---- images a model's processor refuses ---------------------------------------------------------------------------

SIZES = {"wide": (201, 1), "tall": (2, 401), "edge": (200, 1), "dot": (1, 1), "big": (3000, 40), "empty": (0, 10)}


def test_check_images_agrees_with_what_the_processor_does():
    from transformers import CLIPImageProcessorPil, Qwen2VLImageProcessorPil

    from srpo.data import check_images

    for processor in (Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 64), CLIPImageProcessorPil()):
        items = [(name, [Image.new("RGB", (9, 9)), Image.new("RGB", size)]) for name, size in SIZES.items()]
        rejected = {r.id: r for r in check_images(items, processor)}
        for name, images in items:
            try:
                processor(images=images)
                refused = False
            except Exception:  # noqa: BLE001 - whatever the processor raises
                refused = True
            assert refused == (name in rejected), (type(processor).__name__, name)
        assert rejected["empty"].index == 1 and rejected["empty"].size == (0, 10)
    # Qwen2-VL: aspect ratio over 200 is refused (with the processor's own message), under a patch is upscaled
    qwen = Qwen2VLImageProcessorPil()
    assert {r.id: r.reason for r in check_images([(n, [Image.new("RGB", s)]) for n, s in SIZES.items()], qwen)} == {
        "wide": "absolute aspect ratio must be smaller than 200, got 201.0",
        "tall": "absolute aspect ratio must be smaller than 200, got 200.5",
        "empty": "division by zero",
    }


def test_reject_images_names_the_ids_or_skips_and_counts_them(tiny_model_dir):
    from srpo.data import reject_images
    from srpo.models import load_processor

    processor = load_processor(tiny_model_dir)  # a whole processor: its image processor is asked
    items = [(f"p{i}", [Image.new("RGB", (300 + i, 1) if i % 2 else (30, 30))]) for i in range(16)]
    with pytest.raises(DataError) as info:
        reject_images(items, processor, source="train.jsonl")
    message = str(info.value)
    assert message.startswith("train.jsonl: images: the model's image processor refuses the images of 8 item(s): ")
    assert "'p1' (image 0, 301x1 px: absolute aspect ratio must be smaller than 200, got 301.0)" in message
    assert "'p9'" in message and "'p11'" not in message and "; and 3 more. Crop or pad" in message
    report = LoadReport(loaded=16)
    rejected = reject_images(items, processor, source="train.jsonl", skip_bad=True, report=report)
    assert rejected == {f"p{i}" for i in range(1, 16, 2)}
    assert report.skipped == {"image_rejected": 8} and report.loaded == 8
    assert report.messages[0].startswith("train.jsonl: images[0]: item 'p1': the image processor refuses 301x1 px")
    assert reject_images(items[::2], processor, source="train.jsonl") == set()


# ---- the lazy problem table, NAME@SPLIT sources, column mappings ------------------------------------------------


def test_problem_dataset_is_the_loaded_problems_with_images_decoded_on_access(tmp_path):
    from srpo.data import problem_dataset

    problems = _problems()
    path = save_problems(problems, tmp_path / "set.jsonl")
    ds = problem_dataset(path)
    assert ds.cache_files, "memory-mapped from the datasets cache, not held in memory"
    stored = ds.with_format("arrow")["images"].to_pylist()
    assert stored[1] == [{"bytes": None, "path": str(tmp_path / "images/set/p2_0.png")},
                         {"bytes": None, "path": str(tmp_path / "images/set/p2_1.png")}]  # by path: nothing decoded
    assert ds["id"] == [p.id for p in problems] and ds["_reason"] == [None] * 3
    for row, problem in zip(ds, problems):
        assert (row["question"], row["answer"], row["choices"], row["solution"]) == (problem.question, problem.answer, problem.choices, problem.solution)
        assert [im.tobytes() for im in row["images"]] == [im.tobytes() for im in problem.images]
    assert problem_dataset(path).cache_files == ds.cache_files  # built once, then reused
    path.write_text(path.read_text().replace("Name it.", "Name it!"))
    assert problem_dataset(path)["question"][2] == "Name it!"  # a changed file is read again


def test_problem_dataset_keeps_bad_rows_marked_with_the_error_load_problems_raises(tmp_path):
    from srpo.data import problem_dataset, row_error

    path = tmp_path / "p.jsonl"
    _write_jsonl(path, [GOOD, {"question": "Q?"}, {"id": "x", "question": "Q?", "answer": "1", "image": "gone.png"}, GOOD])
    rows = problem_dataset(path).to_list()
    errors = [row_error(row) for row in rows]
    assert errors[0] is None
    report = LoadReport(max_messages=5)
    load_problems(path, skip_bad=True, report=report)
    assert [str(e) for e in errors[1:]] == report.messages
    assert [(e.where, e.field, e.reason) for e in errors[1:]] == [
        (f"{path}:2", "answer", "missing_answer"), (f"{path}:3", "image", "image_not_found"), (f"{path}:4", "id", "duplicate_id")]


def test_checked_images_store_what_decodes_to_the_loaded_image(tmp_path):
    from srpo.data import checked_images

    rgba = Image.new("RGBA", (6, 5), (255, 0, 0, 0))  # transparent: srpo makes it white, a bare convert black
    rgba.putpixel((1, 1), (0, 0, 255, 255))
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[Image.ExifTags.Base.Orientation] = 6  # datasets would turn this 8x3 JPEG into 3x8
    _image("green", (8, 3)).save(rotated, format="JPEG", exif=exif)
    files = {"plain.png": _png_bytes(_image("red")), "rgba.png": _png_bytes(rgba), "rotated.jpg": rotated.getvalue(),
             "cut.png": _png_bytes(Image.effect_noise((64, 64), 50).convert("RGB"))[:200]}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    row = {"images": [{"bytes": None, "path": str(tmp_path / n)} for n in ("plain.png", "rgba.png", "rotated.jpg")]}
    decoded, stored = checked_images(row, "p.jsonl:1")
    assert stored[0] == row["images"][0]  # already as srpo reads it: kept by path
    assert stored[1]["path"] is None and stored[2]["path"] is None  # rewritten as PNG bytes of srpo's RGB image
    expected = [open_as_loaded(tmp_path / n, tmp_path) for n in ("plain.png", "rgba.png", "rotated.jpg")]
    on_access = [datasets.Image().decode_example(value) for value in stored]
    for image, again, want in zip(decoded, on_access, expected):
        assert image.tobytes() == want.tobytes() and again.mode == "RGB" and again.tobytes() == want.tobytes()
    assert on_access[1].getpixel((0, 0)) == (255, 255, 255) and on_access[2].size == (8, 3)
    with pytest.raises(DataError, match=r"^p\.jsonl:1: images\[0\]: image 'cut\.png' cannot be decoded"):
        checked_images({"images": [{"bytes": None, "path": str(tmp_path / "cut.png")}], "_image_fields": ["images[0]"],
                        "_image_labels": ["image 'cut.png'"]}, "p.jsonl:1")


def open_as_loaded(path, base):
    return row_to_problem({"question": "Q?", "answer": "1", "image": str(path)}, where="x", default_id="x", base_dir=base).images[0]


def _hub_style_folder(tmp_path, rows: dict) -> str:
    """A folder in the layout of a Hugging Face dataset repository (data/<split>-*.parquet), read by load_dataset."""
    features = datasets.Features({"problem_text": datasets.Value("string"), "gt": datasets.Value("string"),
                                  "opts": datasets.List(datasets.Value("string")), "pics": datasets.List(datasets.Image())})
    (tmp_path / "repo" / "data").mkdir(parents=True)
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(tmp_path / "repo" / "data" / "train-00000-of-00001.parquet"))
    return str(tmp_path / "repo")


HUB_COLUMNS = {"question": "problem_text", "answer": "gt", "choices": "opts", "images": "pics"}


def test_a_dataset_name_with_a_split_and_a_column_mapping(tmp_path):
    from srpo.data import problem_dataset

    red, blue = _image("red"), _image("blue", (4, 11))
    repo = _hub_style_folder(tmp_path, {"problem_text": ["How many?", "Which is blue?"], "gt": ["3", "B"],
                                        "opts": [None, ["red", "blue"]], "pics": [[red], [red, blue]]})
    problems = load_problems(f"{repo}@train", columns=HUB_COLUMNS)
    assert [(p.id, p.question, p.answer, p.answer_type, p.choices) for p in problems] == [
        ("repo-0", "How many?", "3", "integer", None), ("repo-1", "Which is blue?", "B", "multiple_choice", ["red", "blue"])]
    assert [im.tobytes() for im in problems[1].images] == [red.tobytes(), blue.tobytes()]
    ds = problem_dataset(f"{repo}@train", columns=HUB_COLUMNS)
    assert ds["question"] == ["How many?", "Which is blue?"] and ds[1]["images"][1].tobytes() == blue.tobytes()
    assert ds["_where"] == [f"{repo}@train:row 0", f"{repo}@train:row 1"]
    with pytest.raises(DataError, match=r"@train: column 'question_text' \(for question\) not found; the columns are problem_text, gt, opts, pics: fix the column mapping"):
        load_problems(f"{repo}@train", columns={**HUB_COLUMNS, "question": "question_text"})
    with pytest.raises(DataError, match=r"repo@test: datasets\.load_dataset cannot load it \(ValueError: Unknown split \"test\""):
        problem_dataset(f"{repo}@test")
    with pytest.raises(ValueError, match=r"columns: unknown field\(s\) \['prompt'\]; map question, answer, images, choices"):
        load_problems(f"{repo}@train", columns={"prompt": "problem_text"})


def test_column_mapping_on_jsonl_and_parquet(tmp_path):
    _image("green").save(tmp_path / "g.png")
    _write_jsonl(tmp_path / "m.jsonl", [{"q": "How many?", "a": 4, "question": "ignored", "pic": "g.png"},
                                        {"q": "Again?", "answer": "1", "pic": None}])
    columns = {"question": "q", "answer": "a", "images": "pic"}
    with pytest.raises(DataError, match=r"m\.jsonl:2: column 'a' \(for answer\) is not in this row; it has q, answer, pic: fix the column mapping or the row"):
        load_problems(tmp_path / "m.jsonl", columns=columns)
    (problem,) = load_problems(tmp_path / "m.jsonl", columns=columns, skip_bad=True)
    assert (problem.question, problem.answer, problem.images[0].tobytes()) == ("How many?", "4", _image("green").tobytes())
    pq.write_table(pa.table({"q": ["Q?"], "a": ["2"]}), tmp_path / "m.parquet")
    assert load_problems(tmp_path / "m.parquet", columns={"question": "q", "answer": "a"})[0].answer == "2"
    with pytest.raises(DataError, match=r"m\.parquet: column 'pic' \(for images\) not found; the columns are q, a"):
        load_problems(tmp_path / "m.parquet", columns=columns)
