"""Every direct dependency at the lower bound pyproject.toml declares (.ci/lower-bounds.txt) installs into a fresh
venv and passes a quick subset of the tests (.ci/lower-bounds), so a bound the code has outgrown fails CI."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("SRPO_SKIP_LOWER_BOUNDS") == "1",
                    reason="SRPO_SKIP_LOWER_BOUNDS=1: no package index here to install the lower bounds from")
def test_the_lower_bounds_install_and_pass_a_quick_subset():
    result = subprocess.run(["bash", str(ROOT / ".ci" / "lower-bounds")], capture_output=True, text=True,
                            timeout=1800, cwd=ROOT)
    assert result.returncode == 0, (result.stdout[-4000:] + result.stderr[-4000:])
    assert "lower-bounds: passed" in result.stdout
    for package, version in (("transformers", "5.23.0"), ("trl", "1.16.0"), ("datasets", "4.7.0")):
        assert any(line.split()[:2] == [package, version] for line in result.stdout.splitlines()), package
