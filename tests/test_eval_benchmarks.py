"""Benchmark loaders: each benchmark's official file -> items with images; missing images -> one clear error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from srpo.errors import MissingPath
from srpo.eval.benchmarks import DATA_ENV, MissingImagesError, load_benchmark, mmmu_pro


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"official benchmark data not available: {path} (set SRPO_DATA_DIR to the shared benchmarks "
                    "folder)")
    return path


def _png(path: Path, size=(40, 30), color=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def test_mathvision_testmini_items_have_their_real_images(benchmarks_dir):
    _need(benchmarks_dir / "mathvision" / "images")
    bench = load_benchmark("mathvision", split="testmini")
    assert (bench.name, bench.split, len(bench.items)) == ("mathvision", "testmini", 304)
    assert bench.source.endswith("testmini.jsonl")
    for item in bench.items:
        assert len(item.images) == 1 and item.images[0].is_file()
        assert item.images[0].name == f"{item.id}.jpg" and item.gold == item.record["answer"]
    first = bench.items[0]
    (img,) = first.load_images()
    assert img.mode == "RGB" and img.size == Image.open(first.images[0]).size
    # options that are not the bare letters are listed under the question (the SRPO scripts' prompt)
    texts = next(it for it in bench.items if it.record["options"] and it.record["options"][0] != "A")
    assert texts.prompt.startswith(texts.record["question"]) and f"(A) {texts.record['options'][0]}" in texts.prompt
    letters = next(it for it in bench.items if it.record["options"] == ["A", "B", "C", "D", "E"])
    assert letters.prompt == letters.record["question"]
    assert load_benchmark("mathvision:testmini", limit=5).items[4].id == bench.items[4].id


def test_mathvision_test_split_reports_every_missing_image_once(benchmarks_dir):
    _need(benchmarks_dir / "mathvision" / "data" / "test.jsonl")
    with pytest.raises(MissingImagesError) as err:
        load_benchmark("mathvision")  # default split: test (3040); offline only the 304 testmini images exist
    e = err.value
    assert (e.n_items, e.total, e.n_missing) == (2736, 3040, 2736)
    assert e.expected == str(benchmarks_dir / "mathvision")
    msg = str(e)
    assert "2736 of 3040" in msg and "--split testmini" in msg
    assert str(benchmarks_dir / "mathvision" / "images" / "1.jpg") in msg


def test_mathvista_official_file_needs_images_then_loads_them(tmp_path, benchmarks_dir):
    _need(benchmarks_dir / "mathvista" / "data" / "testmini.json")
    with pytest.raises(MissingImagesError) as err:
        load_benchmark("mathvista")
    assert (err.value.n_items, err.value.total) == (1000, 1000) and "AI4Math/MathVista" in str(err.value)
    for pid in range(1, 6):  # MathVista images are HF-only: stand-ins with the official names
        _png(tmp_path / "images" / f"{pid}.jpg")
    bench = load_benchmark("mathvista", images=tmp_path, limit=5)
    queries = json.loads((benchmarks_dir / "mathvista" / "data" / "query.json").read_text())
    assert [it.id for it in bench.items] == ["1", "2", "3", "4", "5"]
    for it in bench.items:
        assert it.prompt == queries[it.id] == it.record["query"]  # the official prompt
        assert it.images == [tmp_path / "images" / f"{it.id}.jpg"]
        assert it.record["answer"] == it.gold and "question_type" in it.record
    by_file = load_benchmark("mathvista", data=benchmarks_dir / "mathvista" / "data" / "testmini.json",
                             images=tmp_path, limit=5)  # a data file instead of the folder: the same items and prompts
    assert [(it.id, it.prompt) for it in by_file.items] == [(it.id, it.prompt) for it in bench.items]
    (tmp_path / "images" / "3.jpg").unlink()
    with pytest.raises(MissingImagesError, match=r"1 of 5 item\(s\)"):
        load_benchmark("mathvista", images=tmp_path, limit=5)


def test_mathverse_visualizer_sample_text_only_and_missing_testmini(benchmarks_dir):
    _need(benchmarks_dir / "mathverse" / "visualizer_sample" / "images")
    bench = load_benchmark("mathverse", split="visualizer_sample")
    assert len(bench.items) == 726
    with_images = [it for it in bench.items if it.images]
    assert len(with_images) == 605 and all(p.is_file() for it in with_images for p in it.images)
    versions = {it.record["metadata"]["problem_version"] for it in bench.items if not it.images}
    assert versions == {"Text Only"}
    vision_only = next(it for it in bench.items if it.record["metadata"]["problem_version"] == "Vision Only")
    assert vision_only.prompt.startswith("According to the question shown in the image")
    # the README: the released testmini answer replaces the visualizer's where the problem matches
    mapping = json.loads((benchmarks_dir / "mathverse" / "visualizer_sample" / "map_to_testmini.json").read_text())
    changed = [it for it in bench.items if "visualizer_answer" in it.record]
    assert changed and all(it.gold == mapping[it.id]["testmini_answer"] for it in changed)

    text_only = load_benchmark("mathverse", split="text_only")
    assert len(text_only.items) == 788 and not any(it.images for it in text_only.items)
    assert text_only.items[0].prompt == text_only.items[0].record["query_cot"]
    with pytest.raises(FileNotFoundError, match="visualizer_sample"):
        load_benchmark("mathverse")  # the official testmini.json is not in the offline copy


def test_mmmu_pro_official_file_images_by_id(tmp_path, benchmarks_dir):
    _need(benchmarks_dir / "mmmu_pro")
    with pytest.raises(MissingImagesError) as err:
        load_benchmark("mmmu_pro")
    assert (err.value.n_items, err.value.total) == (1730, 1730) and "MMMU/MMMU_Pro" in str(err.value)
    rows = [json.loads(line) for line in
            (benchmarks_dir / "mmmu_pro" / "gpt-4o_standard(10 options)_cot.jsonl").read_text().splitlines()[:3]]
    for row in rows:
        _png(tmp_path / f"{row['id']}_1.png")
        _png(tmp_path / f"{row['id']}.png")
    bench = load_benchmark("mmmu_pro", split="standard-10", images=tmp_path, limit=3)
    assert [it.id for it in bench.items] == [r["id"] for r in rows]
    first = bench.items[0]
    assert first.images == [tmp_path / f"{rows[0]['id']}_1.png"]
    assert first.prompt.startswith(rows[0]["question"]) and "\nA. Political instability" in first.prompt
    assert first.prompt.endswith(mmmu_pro.PROMPTS["standard"]) and first.gold == "B"
    vision = load_benchmark("mmmu_pro", split="vision", images=tmp_path, limit=3)
    assert vision.items[0].prompt == mmmu_pro.PROMPTS["vision"]
    assert vision.items[0].images == [tmp_path / f"{rows[0]['id']}.png"]


def test_datasets_folder_with_image_columns(tmp_path, benchmarks_dir):
    datasets = pytest.importorskip("datasets")
    _need(benchmarks_dir / "mathvision" / "images")
    rows = [json.loads(line) for line in (benchmarks_dir / "mathvision" / "data" / "testmini.jsonl").read_text()
            .splitlines()[:4]]
    features = datasets.Features({**{k: datasets.Value("string") for k in ("id", "question", "answer", "subject",
                                                                           "image")},
                                  "options": datasets.List(datasets.Value("string")), "level": datasets.Value("int64"),
                                  "decoded_image": datasets.Image()})
    cols = {k: [r[k] for r in rows] for k in ("id", "question", "answer", "subject", "image", "options", "level")}
    cols["decoded_image"] = [str(benchmarks_dir / "mathvision" / r["image"]) for r in rows]
    datasets.Dataset.from_dict(cols, features=features).save_to_disk(str(tmp_path / "ds"))
    bench = load_benchmark("mathvision", split="testmini", data=tmp_path / "ds")
    assert [it.id for it in bench.items] == [r["id"] for r in rows] and bench.source == str(tmp_path / "ds")
    img = bench.items[0].load_images()[0]
    assert img.size == Image.open(benchmarks_dir / "mathvision" / rows[0]["image"]).size
    assert "decoded_image" not in bench.items[0].record and bench.items[0].record["level"] == rows[0]["level"]
    cols.pop("decoded_image")
    features.pop("decoded_image")
    datasets.Dataset.from_dict(cols, features=features).save_to_disk(str(tmp_path / "noimg"))
    with pytest.raises(MissingImagesError, match="4 of 4"):
        load_benchmark("mathvision", split="testmini", data=tmp_path / "noimg")


def test_problem_schema_file_and_its_missing_images(problems_file, tmp_path):
    bench = load_benchmark(str(problems_file), limit=5)
    assert bench.name == "problems" and len(bench.items) == 5
    assert all(len(it.images) == 1 for it in bench.items)
    copy = tmp_path / "copy"
    shutil.copytree(problems_file.parent, copy)
    rows = [json.loads(line) for line in (copy / problems_file.name).read_text().splitlines()]
    for row in rows[:2]:
        (copy / row["images"][0]).unlink()
    with pytest.raises(MissingImagesError) as err:
        load_benchmark(str(copy / problems_file.name))
    assert (err.value.n_items, err.value.total) == (2, len(rows)) and str(copy) in str(err.value)


def test_unknown_names_and_splits():
    with pytest.raises(ValueError, match="'mathvistaa' is not a known benchmark"):
        load_benchmark("mathvistaa")
    with pytest.raises(FileNotFoundError, match="no such problem file"):  # a path, not a misspelt name
        load_benchmark("data/tset.jsonl")
    with pytest.raises(ValueError, match=r"unknown split 'dev'.*test"):
        load_benchmark("mathvision", split="dev")
    with pytest.raises(ValueError, match="--benchmark problems: pass the path of the problem file"):
        load_benchmark("problems")


def test_the_data_folder_is_an_option_not_a_guess(benchmarks_dir, monkeypatch, tmp_path):
    """Without --data and $SRPO_DATA_DIR there is no default folder (none beside the installed package)."""
    _need(benchmarks_dir / "mathvision" / "data" / "testmini.jsonl")
    monkeypatch.delenv(DATA_ENV)
    with pytest.raises(MissingPath, match=r"--benchmark mathvision needs --data \(its official folder or file, or "
                                          r"hf\), or SRPO_DATA_DIR set to the folder holding"):
        load_benchmark("mathvision", split="testmini")
    explicit = load_benchmark("mathvision", split="testmini", data=benchmarks_dir / "mathvision", limit=3)
    monkeypatch.setenv(DATA_ENV, str(benchmarks_dir))
    assert [it.id for it in explicit.items] == [it.id for it in load_benchmark("mathvision:testmini", limit=3).items]
    # a registry name is read as the benchmark even where a folder of that name exists
    (tmp_path / "mathvision").mkdir()
    monkeypatch.chdir(tmp_path)
    assert load_benchmark("mathvision", split="testmini", limit=1).name == "mathvision"
