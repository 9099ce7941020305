"""Benchmark scorers following each benchmark's official protocol (mode "official") or the SRPO authors' own
eval scripts (mode "srpo_compat"). See docs/evaluation_scoring.md.

    from srpo.eval.scoring import rescore
    result = rescore("mathvista", "output_bard.json")            # ScoreResult, mode="official"
    result.to_official_json()                                    # shaped like scores_bard.json

Each benchmark module exposes `score_item(record, response_or_extraction, mode, ...)`, `rescore(path, ...)` and
`to_official_json(result)`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from srpo.errors import UserError
from srpo.eval.scoring.common import MODES, Judge, ScoreResult


class UnknownBenchmark(UserError, KeyError):
    """A benchmark name with no official scorer."""

    def __str__(self) -> str:  # the message itself, not KeyError's quoted repr
        return str(self.args[0])


SCORERS: dict[str, str] = {
    "mathvista": "srpo.eval.scoring.mathvista",
    "mathvision": "srpo.eval.scoring.mathvision",
    "mmmu_pro": "srpo.eval.scoring.mmmu_pro",
    "mathverse": "srpo.eval.scoring.mathverse",
}
_ALIASES = {"mmmu-pro": "mmmu_pro", "mmmupro": "mmmu_pro", "math-vision": "mathvision", "math_vision": "mathvision",
            "mathv": "mathvision", "math-v": "mathvision"}


def get_scorer(benchmark: str) -> ModuleType:
    """The scorer module of a benchmark (mathvista, mathvision, mmmu_pro, mathverse)."""
    key = benchmark.lower().strip()
    key = _ALIASES.get(key, key)
    if key not in SCORERS:
        raise UnknownBenchmark(f"no scorer for benchmark {benchmark!r}; known: {sorted(SCORERS)}")
    return importlib.import_module(SCORERS[key])


def rescore(benchmark: str, outputs_path: str | Path, *, mode: str = "official", **options) -> ScoreResult:
    """Rescore an official-format output file of `benchmark`; options are passed to that scorer's rescore."""
    return get_scorer(benchmark).rescore(outputs_path, mode=mode, **options)


def score_item(benchmark: str, record: dict, response_or_extraction: str, mode: str = "official", **options) -> dict:
    """Score one answer of `benchmark`; see the benchmark module's score_item."""
    return get_scorer(benchmark).score_item(record, response_or_extraction, mode, **options)


__all__ = ["MODES", "SCORERS", "Judge", "ScoreResult", "get_scorer", "rescore", "score_item"]
