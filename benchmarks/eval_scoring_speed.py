"""Speed of the official-protocol benchmark scorers (srpo.eval.benchmarks) on one CPU core.

Times `rescore` on published output files from the benchmark data folder (--data, else $SRPO_DATA_DIR, else
../shared/benchmarks next to the repository root):

* MathVista: every testmini output file (1000 items each; JSON loading included), target < 2 s per 1000 items;
* MMMU-Pro: the four GPT-4o files (1730 items each), for information;
* MathVision: the 16 published runs (3040 items each), cold (LaTeX-parse cache cleared before each file) and warm.

Usage: python benchmarks/eval_scoring_speed.py [--repeat 5] [--data DIR]
       [--out benchmarks/results/eval_scoring_speed.json]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

TARGET_S_PER_1000 = 2.0


def _time(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--data", default=os.environ.get("SRPO_DATA_DIR")
                    or str(Path(__file__).resolve().parents[2] / "shared" / "benchmarks"))
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "eval_scoring_speed.json"))
    args = ap.parse_args(argv)

    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        pinned = min(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pinned = None

    from srpo.eval.benchmarks import mathvision, rescore

    root = Path(args.data)
    if not root.is_dir():
        sys.exit(f"benchmark data folder not found: {root} (pass --data or set SRPO_DATA_DIR)")

    report: dict = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "pinned_core": pinned,
        "repeat": args.repeat,
        "target_s_per_1000_mathvista": TARGET_S_PER_1000,
    }

    mv = {}
    for f in sorted((root / "mathvista" / "results").glob("*/output_*.json")):
        times = _time(lambda f=f: rescore("mathvista", f), args.repeat)
        n = rescore("mathvista", f).n
        mv[f.name] = {"n": n, "min_s": min(times), "median_s": statistics.median(times),
                      "s_per_1000": statistics.median(times) / n * 1000}
    worst = max(v["s_per_1000"] for v in mv.values())
    report["mathvista"] = {"files": mv, "worst_s_per_1000": worst,
                           "items_per_s_median": 1000 / statistics.median(v["s_per_1000"] for v in mv.values())}

    mp = {}
    for f in sorted((root / "mmmu_pro").glob("*.jsonl")):
        times = _time(lambda f=f: rescore("mmmu_pro", f), args.repeat)
        mp[f.name] = {"n": 1730, "median_s": statistics.median(times)}
    report["mmmu_pro"] = mp

    mvis = {}
    data = mathvision.load_data(root / "mathvision" / "data" / "test.jsonl")
    for f in sorted((root / "mathvision" / "outputs").glob("**/*.jsonl")):
        mathvision.numeric_value.cache_clear()
        t = time.perf_counter()
        rescore("mathvision", f, data=data)
        cold = time.perf_counter() - t
        warm = min(_time(lambda f=f: rescore("mathvision", f, data=data), max(1, args.repeat // 2)))
        mvis[f.name] = {"n": 3040, "cold_s": cold, "warm_s": warm}
    report["mathvision"] = {"files": mvis, "total_cold_s": sum(v["cold_s"] for v in mvis.values())}

    report["meets_target"] = worst < TARGET_S_PER_1000
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"mathvista_worst_s_per_1000": round(worst, 4),
                      "mathvision_total_cold_s": round(report["mathvision"]["total_cold_s"], 2),
                      "meets_target": report["meets_target"], "out": str(out)}))
    return report


if __name__ == "__main__":
    main()
