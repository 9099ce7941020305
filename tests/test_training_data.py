"""The rows both training stages read: token counts equal to TRL's own, bad rows named in file order or skipped, the
check cached for the other processes of a node, datasets named NAME@SPLIT with their own column names."""

import io
import json
import os

import datasets
import pytest
from PIL import Image
from trl.data_utils import prepare_multimodal_messages

from srpo.data import DataError, LoadReport, problem_dataset, save_problems, generate_problems
from srpo.models import load_processor
from srpo.prompts import system_prompt
from srpo.train.sft import load_sft_dataset
from srpo.train.training_data import PromptTooLongError, prompt_token_counts, usable_rows

SYSTEM = system_prompt("reflection")


def rows_of(source, processor, limit=4096, *, skip_bad=False, report=None, columns=None):
    return usable_rows(problem_dataset(source, columns=columns), processor, SYSTEM, limit, source=str(source),
                       limit_name=f"max_prompt_length={limit}", skip_bad=skip_bad, report=report)


def png(size, mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, "white").save(buffer, format="PNG")
    return buffer.getvalue()


def test_counts_are_the_tokens_trl_trains_on(tiny_model_dir, tmp_path):
    processor = load_processor(tiny_model_dir)
    processor.image_processor.size["longest_edge"] = 28 * 28 * 16  # a lower max_pixels: larger images are resized
    problems = generate_problems(6, seed=5, difficulty=1, image_size=84)
    problems += generate_problems(3, seed=6, difficulty=2, image_size=300)
    path = save_problems(problems, tmp_path / "p.jsonl")
    ds = rows_of(path, processor)
    assert ds.column_names == ["id", "question", "answer", "choices", "answer_type", "source", "solution", "images", "visual_facts", "prompt"]
    rows = list(ds)
    assert rows[0]["prompt"] == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": problems[0].question_with_choices()}]
    counts = prompt_token_counts(processor, [r["prompt"] for r in rows], [r["images"] for r in rows])
    # What GRPOTrainer does with a batch: TRL's message conversion, then the processor's own tokenization.
    conversations = [prepare_multimodal_messages(r["prompt"], images=r["images"]) for r in rows]
    tokenized = processor.apply_chat_template(conversation=conversations, add_generation_prompt=True, tokenize=True,
                                              return_dict=True)
    assert counts == [len(ids) for ids in tokenized["input_ids"]]
    assert len(set(counts)) > 2
    limit = sorted(counts)[len(counts) // 2]
    kept = rows_of(path, processor, limit, skip_bad=True)
    assert kept["id"] == [r["id"] for r, n in zip(rows, counts) if n <= limit]


def test_bad_rows_are_named_in_file_order_or_skipped(tiny_model_dir, tmp_path):
    processor = load_processor(tiny_model_dir)
    (tmp_path / "ok.png").write_bytes(png((40, 30)))
    (tmp_path / "cut.png").write_bytes(png((64, 64))[:60])
    (tmp_path / "wide.png").write_bytes(png((600, 2)))
    path = tmp_path / "p.jsonl"
    rows = [{"id": "a", "question": "Q?", "answer": "1", "image": "ok.png"},
            {"id": "cut", "question": "Q?", "answer": "1", "image": "cut.png"},  # found when images are opened
            {"id": "b", "question": "Q?"},  # found when the file is read
            {"id": "wide", "question": "Q?", "answer": "1", "image": "wide.png"},
            {"id": "long", "question": "Q? " * 300, "answer": "1", "image": "ok.png"},
            {"id": "c", "question": "Q?", "answer": "2"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=r"p\.jsonl:2: image: image 'cut\.png' cannot be decoded"):
        rows_of(path, processor, 400)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:1] + rows[2:]))
    with pytest.raises(DataError, match=r"p\.jsonl:2: answer: missing or empty answer"):
        rows_of(path, processor, 400)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:1] + rows[3:]))
    with pytest.raises(DataError, match=r"p\.jsonl: images: the model's image processor refuses the images of 1 item\(s\): 'wide' \(image 0, 600x2 px"):
        rows_of(path, processor, 400)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:1] + rows[4:]))
    with pytest.raises(PromptTooLongError, match=r"p\.jsonl: 1 prompt\(s\) are longer than max_prompt_length=400 allows \(400 tokens\): long \(\d+ tokens\)"):
        rows_of(path, processor, 400)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = LoadReport()
    kept = rows_of(path, processor, 400, skip_bad=True, report=report)
    assert kept["id"] == ["a", "c"] and kept[0]["images"][0].size == (40, 30) and kept[1]["images"] == []
    assert report.skipped == {"image_unreadable": 1, "missing_answer": 1, "image_rejected": 1}


def test_the_check_runs_once_and_again_when_an_image_changes(tiny_model_dir, tmp_path):
    processor = load_processor(tiny_model_dir)
    (tmp_path / "im.png").write_bytes(png((30, 30)))
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": "a", "question": "Q?", "answer": "1", "image": "im.png"}) + "\n")
    first = rows_of(path, processor)
    limit = prompt_token_counts(processor, [first[0]["prompt"]], [first[0]["images"]])[0]
    files = [f["filename"] for f in first.cache_files]
    times = [os.stat(f).st_mtime_ns for f in files]
    again = rows_of(path, processor, limit)  # what the other processes of a node do after the main one
    assert [f["filename"] for f in again.cache_files] == files and [os.stat(f).st_mtime_ns for f in files] == times
    (tmp_path / "im.png").write_bytes(png((300, 200)))  # replaced under the same name: checked again
    with pytest.raises(PromptTooLongError, match=r"1 prompt\(s\) are longer than"):
        rows_of(path, processor, limit)


def test_non_rgb_images_train_as_srpo_loads_them(tiny_model_dir, tmp_path):
    from srpo.data import load_problems

    processor = load_processor(tiny_model_dir)
    image = Image.new("RGBA", (30, 20), (255, 0, 0, 0))
    image.putpixel((3, 3), (0, 255, 0, 255))
    image.save(tmp_path / "t.png")
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": "t", "question": "Q?", "answer": "1", "image": "t.png"}) + "\n")
    (trained,) = rows_of(path, processor)["images"]
    assert trained[0].mode == "RGB" and trained[0].tobytes() == load_problems(path)[0].images[0].tobytes()


def test_sft_rows_from_a_dataset_name_with_its_own_column_names(tiny_model_dir, tmp_path):
    processor = load_processor(tiny_model_dir)
    red = Image.new("RGB", (40, 40), "red")
    features = datasets.Features({"prompt_text": datasets.Value("string"), "target": datasets.Value("string"),
                                  "pics": datasets.List(datasets.Image())})
    (tmp_path / "repo" / "data").mkdir(parents=True)
    datasets.Dataset.from_dict({"prompt_text": ["How many?", "Q? " * 300], "target": ["<think>3</think>", "x"],
                                "pics": [[red], [red]]}, features=features).to_parquet(
        str(tmp_path / "repo" / "data" / "train-00000-of-00001.parquet"))
    columns = {"question": "prompt_text", "images": "pics"}
    with pytest.raises(PromptTooLongError, match=r"repo@train: 1 prompt\(s\) are longer than max_length=400 allows \(399 tokens\): row 1"):
        load_sft_dataset(f"{tmp_path / 'repo'}@train", SYSTEM, processor, 400, columns=columns)
    ds = load_sft_dataset(f"{tmp_path / 'repo'}@train", SYSTEM, processor, 400, columns=columns, skip_bad=True)
    assert ds.column_names == ["images", "prompt", "completion"] and len(ds) == 1
    assert ds[0]["prompt"][1] == {"role": "user", "content": "How many?"}
    assert ds[0]["completion"] == [{"role": "assistant", "content": "<think>3</think>"}]
    assert ds[0]["images"][0].tobytes() == red.tobytes()
    with pytest.raises(DataError, match=r"repo@train: column 'question' \(for question\) not found; the columns are prompt_text, target, pics"):
        load_sft_dataset(f"{tmp_path / 'repo'}@train", SYSTEM, processor, 400, columns={"question": "question"})
