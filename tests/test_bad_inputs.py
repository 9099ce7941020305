"""Every bad input is one line, `error: ...`, exit code 2, naming the place and the fix; never a traceback.

The rows live in `tests/bad_inputs/<area>.py`; each is run through the real command line (in process).
"""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest
from typer.testing import CliRunner

import bad_inputs
from bad_inputs import BadInput, Workspace
from srpo.cli import app


def _cases() -> list[BadInput]:
    cases = []
    for module in pkgutil.iter_modules(bad_inputs.__path__):
        cases += importlib.import_module(f"bad_inputs.{module.name}").CASES
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "bad-input rows need unique names"
    return cases


CASES = _cases()


def test_the_table_is_large():
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_error_line(case: BadInput, tmp_path, tiny_model_dir, problems_file, monkeypatch):
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    ws = Workspace(tmp=tmp_path, model=tiny_model_dir, problems=problems_file)
    argv = [str(a) for a in case.argv(ws)]
    result = CliRunner().invoke(app, argv)
    output = result.output  # stdout and stderr, interleaved
    assert "Traceback" not in output, output
    assert result.exit_code == 2, f"exit {result.exit_code} ({result.exception!r}):\n{output}"
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, f"expected one 'error: ...' line:\n{output}"
    assert re.search(case.expect, errors[0]), f"{errors[0]!r} does not match {case.expect!r}"
