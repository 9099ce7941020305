"""A write cut short leaves the old file or folder whole (what `final/`, run files and summaries rely on)."""

import json

import pytest

from srpo.files import atomic_write_bytes, atomic_write_json, atomic_write_text, cut_torn_tail, replace_dir


class Killed(Exception):
    """Stands for the process dying in the middle of a write."""


def test_a_folder_write_cut_short_leaves_the_old_folder(tmp_path):
    final = tmp_path / "final"
    replace_dir(final, lambda d: (d.mkdir(), (d / "model.safetensors").write_bytes(b"old weights")))

    def cut_short(d):
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"new wei")
        raise Killed

    with pytest.raises(Killed):
        replace_dir(final, cut_short)
    assert (final / "model.safetensors").read_bytes() == b"old weights"
    # The next write replaces the leftover partial folder and swaps in whole; nothing else is left behind.
    replace_dir(final, lambda d: (d.mkdir(), (d / "model.safetensors").write_bytes(b"new weights")))
    assert (final / "model.safetensors").read_bytes() == b"new weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final"]


def test_a_file_write_cut_short_leaves_the_old_file(tmp_path):
    path = atomic_write_json(tmp_path / "metrics.json", {"score": 50.0})
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "text where bytes belong")  # fails once the new file is open
    assert json.loads(path.read_text()) == {"score": 50.0}
    atomic_write_text(path, "{}\n")
    assert path.read_text() == "{}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]  # no temporary file left


def test_a_torn_last_line_is_cut_and_whole_lines_are_kept(tmp_path):
    path = tmp_path / "responses.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b"}\n{"id": "c", "resp')
    assert cut_torn_tail(path)
    assert path.read_text() == '{"id": "a"}\n{"id": "b"}\n'
    assert not cut_torn_tail(path)  # a whole file is left alone
    path.write_text('{"id": "only", "torn')
    assert cut_torn_tail(path) and path.read_text() == ""
