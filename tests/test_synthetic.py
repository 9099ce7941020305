import re
from collections import defaultdict

import pytest

from srpo.data import FAMILIES, Problem, generate_problems, load_problems, write_synthetic
from srpo.data.synthetic import COLORS, GRAY, TEST_SEED_OFFSET


def _fingerprint(problem: Problem):
    image = problem.images[0]
    return (problem.id, problem.question, problem.answer, problem.choices, problem.solution, image.size, image.tobytes())


def _choice(problem: Problem, text: str) -> str:
    return "ABCDEFGH"[problem.choices.index(text)]


def _recompute(problem: Problem) -> str:
    """The answer from the scene the generator says it drew (independent of the generator's own answer logic)."""
    scene, variant = problem.metadata["scene"], problem.metadata["variant"]
    family = problem.metadata["family"]
    if family == "count_shapes":
        kinds = [o["shape"] for o in scene["objects"]]
        if variant == "count":
            return str(kinds.count(scene["target"]))
        return _choice(problem, max(set(kinds), key=kinds.count))
    if family == "color_sum":
        sums = defaultdict(int)
        for item in scene["numbers"]:
            sums[item["color"]] += item["value"]
        return str(sums[scene["target"]]) if variant == "sum" else _choice(problem, max(sums, key=sums.get))
    if family == "bar_chart":
        values = {bar["label"]: bar["value"] for bar in scene["bars"]}
        if variant == "value":
            return str(values[scene["ask"][0]])
        if variant == "difference":
            return str(values[scene["ask"][0]] - values[scene["ask"][1]])
        best = (max if variant == "tallest" else min)(values, key=values.get)
        return _choice(problem, f"bar {best}")
    if family == "compare_lengths":
        lengths = {line["color"]: line["length"] for line in scene["lines"]}
        if variant == "count_longer":
            return str(sum(length > scene["reference"]["length"] for length in lengths.values()))
        return _choice(problem, (max if variant == "longest" else min)(lengths, key=lengths.get))
    if family == "shape_color":
        (target,) = [o for o in scene["objects"] if o["shape"] == scene["target"]]
        return _choice(problem, target["color"])
    raise AssertionError(family)


def _check_pixels(problem: Problem) -> None:
    """The image shows what the scene says: shape centres, bar tops and line ends have the recorded colours."""
    image, scene = problem.images[0], problem.metadata["scene"]
    family = problem.metadata["family"]
    white = (255, 255, 255)
    if family in ("count_shapes", "shape_color"):
        for o in scene["objects"]:
            x0, y0, x1, y1 = o["box"]
            assert image.getpixel(((x0 + x1) // 2, (y0 + y1) // 2 + 1)) == COLORS[o["color"]], o
    elif family == "bar_chart":
        for bar in scene["bars"]:
            x0, y0, x1, y1 = bar["box"]
            assert image.getpixel(((x0 + x1) // 2, y0 + 1)) == COLORS[bar["color"]]
            assert image.getpixel(((x0 + x1) // 2, y0 - 2)) != COLORS[bar["color"]]  # the bar ends at its value
    elif family == "compare_lengths":
        for line in scene["lines"] + ([scene["reference"]] if scene["reference"] else []):
            (x0, y), (x1, _) = line["start"], line["end"]
            color = GRAY if line["color"] == "gray" else COLORS[line["color"]]
            assert image.getpixel((x0 + 1, y)) == color and image.getpixel((x1 - 1, y)) == color
            assert image.getpixel((min(x1 + 3, image.width - 1), y)) == white
    elif family == "color_sum":
        for item in scene["numbers"]:
            cx, cy = item["center"]
            crop = image.crop((cx - 6, cy - 8, cx + 7, cy + 9))  # out-of-bounds parts come back black
            patch = {crop.getpixel((x, y)) for x in range(crop.width) for y in range(crop.height)}
            assert COLORS[item["color"]] in patch


def test_same_seed_same_problems_different_seed_different():
    a = generate_problems(10, seed=5)
    b = generate_problems(10, seed=5)
    assert [_fingerprint(p) for p in a] == [_fingerprint(p) for p in b]
    assert [p.metadata for p in a] == [p.metadata for p in b]
    c = generate_problems(10, seed=6)
    assert sum(x.images[0].tobytes() != y.images[0].tobytes() for x, y in zip(a, c)) >= 9
    # A longer run extends a shorter one: problem i depends only on (seed, i).
    assert [_fingerprint(p) for p in generate_problems(15, seed=5)[:10]] == [_fingerprint(p) for p in a]


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_and_difficulty_is_valid_and_exact(family):
    for difficulty in (1, 2, 3):
        problems = generate_problems(24, seed=difficulty, families=[family], difficulty=difficulty)
        for i, p in enumerate(problems):
            assert p.id == f"syn-{difficulty}-{i}" and p.source == f"synthetic/{family}"
            assert p.metadata["family"] == family and p.metadata["difficulty"] == difficulty
            assert len(p.images) == 1 and p.images[0].size == (112, 112) and p.images[0].mode == "RGB"
            assert p.answer == _recompute(p), (p.question, p.metadata)
            if p.answer_type == "multiple_choice":
                assert 2 <= len(p.choices) <= 5 and len(set(p.choices)) == len(p.choices)
                assert p.answer in "ABCDE"[: len(p.choices)]
            else:
                assert p.answer_type == "integer" and p.choices is None and 0 <= int(p.answer) <= 30
            sentences = re.split(r"(?<=\.)\s+", p.solution)
            assert 2 <= len(sentences) <= 4 and sentences[-1] == f"So the answer is {p.answer}."
            _check_pixels(p)


def test_families_mix_answer_types_and_need_the_image():
    problems = generate_problems(200, seed=11)
    assert {p.metadata["family"] for p in problems} == set(FAMILIES)
    assert {p.answer_type for p in problems} == {"integer", "multiple_choice"}
    answers_by_question = defaultdict(set)
    for p in problems:
        answer = p.choices["ABCDE".index(p.answer)] if p.choices else p.answer
        answers_by_question[(p.metadata["family"], p.question)].add(answer)
    for family in FAMILIES:  # the same question text gets different answers: the text alone does not decide it
        assert max(len(a) for (f, _), a in answers_by_question.items() if f == family) >= 2, family
    easy = [int(p.answer) for p in problems if p.answer_type == "integer" and p.metadata["difficulty"] == 1]
    assert max(easy) <= 20


@pytest.mark.parametrize("size", [56, 224])
def test_image_size(size):
    for p in generate_problems(10, seed=2, image_size=size):
        assert p.images[0].size == (size, size)
        assert p.answer == _recompute(p)
        _check_pixels(p)


def test_bad_arguments():
    with pytest.raises(ValueError, match="families"):
        generate_problems(2, families=["nope"])
    with pytest.raises(ValueError, match="difficulty"):
        generate_problems(2, difficulty=4)
    with pytest.raises(ValueError, match="image_size"):
        generate_problems(2, image_size=16)
    assert generate_problems(0) == []


def test_write_synthetic_round_trips(tmp_path):
    train_path, test_path = write_synthetic(tmp_path / "syn", n_train=12, n_test=6, seed=3)
    assert (train_path.name, test_path.name) == ("train.jsonl", "test.jsonl")
    train, test = load_problems(train_path), load_problems(test_path)
    assert [_fingerprint(p) for p in train] == [_fingerprint(p) for p in generate_problems(12, seed=3)]
    assert [_fingerprint(p) for p in test] == [_fingerprint(p) for p in generate_problems(6, seed=3 + TEST_SEED_OFFSET)]
    assert not {p.id for p in train} & {p.id for p in test}
    assert train[0].metadata == generate_problems(1, seed=3)[0].metadata


def test_level_zero_is_bold_single_step_and_free_of_guessable_options():
    from srpo.answers import is_correct
    from srpo.data import generate_problems

    problems = generate_problems(60, seed=5, difficulty=0, image_size=56,
                                 families=["shape_color", "count_shapes", "compare_lengths"])
    for p in problems:
        scene = p.metadata["scene"]
        assert p.choices is None  # no option list to copy the answer from
        if p.metadata["family"] == "shape_color":
            assert p.answer == scene["objects"][0]["color"] and p.answer_type == "free_form"
        elif p.metadata["family"] == "count_shapes":
            assert p.answer == str(len(scene["objects"])) and p.answer_type == "integer"
        else:
            assert p.answer == max(scene["lines"], key=lambda line: line["length"])["color"]
        assert p.solution.endswith(f"So the answer is {p.answer}.")
        assert is_correct(f"$\\boxed{{{p.answer}}}$", p.answer)
    # level 0 falls back to level 1 for families without a warm-up tier
    assert all(p.metadata["difficulty"] == 0 for p in generate_problems(4, seed=1, difficulty=0, families=["bar_chart"]))


def test_write_synthetic_replaces_the_folder_whole_and_writes_nothing_on_bad_arguments(tmp_path):
    out = tmp_path / "syn"
    write_synthetic(out, n_train=4, n_test=2, seed=1)
    (out / "stale.txt").write_text("from an earlier run")
    write_synthetic(out, n_train=3, n_test=1, seed=2)
    assert sorted(p.name for p in out.iterdir()) == ["images", "test.jsonl", "train.jsonl"]
    assert len(load_problems(out / "train.jsonl")) == 3
    with pytest.raises(ValueError, match="image_size"):
        write_synthetic(tmp_path / "never", n_train=2, n_test=1, image_size=8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["syn"]  # no partial folder left behind


def test_synth_cli_refuses_a_folder_it_would_overwrite(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from srpo.cli import app

    runner = CliRunner()
    out = tmp_path / "syn"
    assert runner.invoke(app, ["synth", str(out), "--n-train", "3", "--n-test", "1"]).exit_code == 0
    before = (out / "train.jsonl").read_bytes()
    refused = runner.invoke(app, ["synth", str(out), "--n-train", "5", "--seed", "9"])
    assert refused.exit_code == 2 and "is not empty; pass a new folder, or --force" in refused.output
    assert (out / "train.jsonl").read_bytes() == before
    assert runner.invoke(app, ["synth", str(out), "--n-train", "5", "--n-test", "1", "--force"]).exit_code == 0
    assert len(load_problems(out / "train.jsonl")) == 5
    # the folder we stand in is never swapped out, even empty
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    refused = runner.invoke(app, ["synth", ".", "--n-train", "1", "--n-test", "1", "--force"])
    assert refused.exit_code == 2 and "is the current folder or holds it" in refused.output
    assert list((tmp_path / "here").iterdir()) == []


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_every_problem_has_exact_visual_facts_written_in_its_solution(level):
    problems = generate_problems(150, seed=level, difficulty=level)
    assert {p.metadata["family"] for p in problems} == set(FAMILIES)
    for p in problems:
        facts = p.visual_facts
        assert facts is not None and (1 if level == 0 else 2) <= len(facts) <= 8, (p.id, facts)
        assert len(set(facts)) == len(facts), (p.id, facts)
        for fact in facts:
            assert fact.lower() in p.solution.lower(), (p.id, fact, p.solution)
            # an atomic fact of the image: never the answer itself, never a reasoning step or the conclusion
            assert fact.lower() != p.answer.lower() and "answer" not in fact and "option" not in fact, (p.id, fact)
            assert "+" not in fact and "gives" not in fact and "makes" not in fact, (p.id, fact)


def test_visual_facts_are_the_scene_exactly():
    level1 = {p.metadata["family"]: p for p in generate_problems(5, seed=3, difficulty=1)}
    bars = level1["bar_chart"]
    assert bars.visual_facts == [f"{b['label']} = {b['value']}" for b in bars.metadata["scene"]["bars"]]
    shapes = level1["shape_color"]
    assert shapes.visual_facts == [f"{'an' if o['color'][0] in 'aeiou' else 'a'} {o['color']} {o['shape']}"
                                   for o in shapes.metadata["scene"]["objects"]]
    counted = next(p for p in generate_problems(40, seed=0, families=["count_shapes"], difficulty=2)
                   if p.metadata["variant"] == "count")
    objects = counted.metadata["scene"]["objects"]
    numbered = [fact.split() for fact in counted.visual_facts if fact.split()[0].isdigit()]
    assert numbered and sum(int(n) for n, _ in numbered) == len(objects)
    for number, shape in numbered:
        assert sum(o["shape"] == shape.removesuffix("s") for o in objects) == int(number), (number, shape)
    lengths = next(p for p in generate_problems(60, seed=0, families=["compare_lengths"], difficulty=2)
                   if p.metadata["variant"] == "count_longer")
    scene = lengths.metadata["scene"]
    assert lengths.visual_facts == [
        f"the {ln['color']} line is {'longer' if ln['length'] > scene['reference']['length'] else 'shorter'} than "
        "the gray line" for ln in scene["lines"]]
    assert lengths.answer == str(sum("longer" in f for f in lengths.visual_facts))
