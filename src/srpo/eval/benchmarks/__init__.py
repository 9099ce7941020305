"""The benchmarks: one module each (mathvista, mathverse, mathvision, mmmu_pro, problems) holding its loader, prompt,
output format and official scorer, behind one registry (`BENCHMARKS`, one alias table `ALIASES`).

    bench = load_benchmark("mathvision", split="testmini")            # <$SRPO_DATA_DIR>/mathvision
    bench = load_benchmark("mathvista", data="MathVista/", images="MathVista/images")
    bench = load_benchmark("mmmu_pro", split="vision", data="hf")    # datasets.load_dataset("MMMU/MMMU_Pro", ...)
    bench = load_benchmark("my_problems.jsonl")                       # any file in the srpo Problem schema
    result = rescore("mathvista", "output_bard.json")                  # ScoreResult, mode="official"
    result.to_official_json()                                          # shaped like scores_bard.json

Scoring modes: "official" (each benchmark's published protocol) and "srpo_compat" (the SRPO authors' eval scripts);
see docs/evaluation_scoring.md. Every module provides NAME, SCORER, `score_item(record, response, mode, ...)`,
`score_result(mode, items, records, options)`, `rescore(path, ...)`, `to_official_json(result)` and
`write_outputs(rows, folder, model)`; the official ones also SPLITS, DEFAULT_SPLIT, SPLIT_ALIASES, IMAGES_HINT,
`hub_source(split)`, `official_file(split, folder)`, `read_official(split, path)`, `image_refs(split, record)` and
`build_item(split, record, images)` (what `items.load_official` reads); problems has `load(path)`.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from srpo.errors import InvalidValue, MissingPath
from srpo.eval.benchmarks import mathverse, mathvision, mathvista, mmmu_pro, problems
from srpo.eval.benchmarks.common import DATA_ENV, MODES, Judge, ScoreResult
from srpo.eval.benchmarks.items import Benchmark, BenchItem, MissingImagesError, load_official

BENCHMARKS: dict[str, ModuleType] = {m.NAME: m for m in (mathvista, mathverse, mathvision, mmmu_pro, problems)}
ALIASES = {"mmmu-pro": "mmmu_pro", "mmmupro": "mmmu_pro", "math-vision": "mathvision", "math_vision": "mathvision",
           "mathv": "mathvision", "math-v": "mathvision"}


class UnknownBenchmark(InvalidValue, KeyError):
    """A benchmark name that is neither a registry key nor an alias."""

    def __str__(self) -> str:  # the message itself, not KeyError's quoted repr
        return str(self.args[0])


def benchmark_module(name: str) -> ModuleType:
    """The module of a benchmark, by name or alias (case-insensitive)."""
    key = name.lower().strip()
    key = ALIASES.get(key, key)
    if key not in BENCHMARKS:
        raise UnknownBenchmark(f"--benchmark {name!r} is not a known benchmark; use one of {sorted(BENCHMARKS)} "
                               "(NAME:SPLIT allowed; for problems, the problem file's path)")
    return BENCHMARKS[key]


def resolve(name: str, split: str | None = None) -> tuple[ModuleType, str]:
    """(benchmark module, split) from "name", "name:split" and the aliases of both."""
    if ":" in name:
        name, split = name.split(":", 1)
    bench = benchmark_module(name)
    if not bench.SPLITS:
        raise InvalidValue(f"--benchmark {name}: pass the path of the problem file (JSONL, Parquet or a datasets "
                           "folder) instead of the name")
    split = (split or bench.DEFAULT_SPLIT).lower()
    split = bench.SPLIT_ALIASES.get(split, split)
    if split not in bench.SPLITS:
        raise InvalidValue(f"{bench.NAME}: unknown split {split!r} (--split, or NAME:SPLIT); use one of "
                           f"{list(bench.SPLITS)}")
    return bench, split


def load_benchmark(name: str | Path, *, split: str | None = None, data: str | Path | None = None,
                   images: str | Path | None = None, limit: int | None = None) -> Benchmark:
    """The items of a benchmark split (see the module doc): a registry name (NAME:SPLIT allowed) or a problem file.
    For `data`, `images` and `limit` see `items.load_official`."""
    key = str(name).lower().strip().split(":")[0]
    path = Path(str(name))
    if ALIASES.get(key, key) not in BENCHMARKS and path.exists():  # a name wins over a file or folder of that name
        return problems.load(path, limit=limit)
    if ALIASES.get(key, key) not in BENCHMARKS and (path.suffix in problems.SUFFIXES or "/" in str(name)):
        raise MissingPath(f"--benchmark {name}: no such problem file; check the path, or use one of "
                          f"{sorted(k for k, m in BENCHMARKS.items() if m.SPLITS)}")
    bench, split = resolve(str(name), split)
    return load_official(bench, split, data=data, images=images, limit=limit)


def rescore(benchmark: str, outputs_path: str | Path, *, mode: str = "official", **options) -> ScoreResult:
    """Rescore an official-format output file of `benchmark`; options are passed to that benchmark's rescore."""
    return benchmark_module(benchmark).rescore(outputs_path, mode=mode, **options)


def score_item(benchmark: str, record: dict, response: str, mode: str = "official", **options) -> dict:
    """Score one answer of `benchmark`; see the benchmark module's score_item."""
    return benchmark_module(benchmark).score_item(record, response, mode, **options)


__all__ = ["ALIASES", "BENCHMARKS", "DATA_ENV", "MODES", "BenchItem", "Benchmark", "Judge", "MissingImagesError",
           "ScoreResult", "UnknownBenchmark", "benchmark_module", "load_benchmark", "rescore", "resolve",
           "score_item"]
