"""The demo's RL bar (issue 14) on seeds 0, 1 and 2, one run at a time on an otherwise idle machine.

For each seed: `srpo demo --seed S` (timed), optionally `--compare --compare_methods grpo` on top (timed), then
from its metrics.json the paired first/final answers of stage 2 against stage 1. The bar: first answer at least
10 points above stage 1 with McNemar p < 0.05; final answer not below stage 1 (and at least 5 points above it,
p < 0.05, where stage 1 is below 90%); the demo alone within 15 minutes. Exits 1 if a seed misses it.
About 11 minutes per seed on 2 CPU cores (+3 to 4 with --compare). A folder that holds a finished run resumes it,
so its time would not be a wall time: such a folder is refused (use a fresh --out).

Usage: python benchmarks/demo_seeds.py [--seeds 0 1 2] [--compare] [--out runs/demo_seeds]
           [--results benchmarks/results/demo_seeds.json]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT_S = 15 * 60


def timed(args: list[str], log: Path) -> float:
    start = time.perf_counter()
    with log.open("w") as f:
        subprocess.run([sys.executable, "-m", "srpo.cli", "demo", *args], stdout=f, stderr=subprocess.STDOUT,
                       check=True)
    return round(time.perf_counter() - start, 1)


def verdict(paired: dict, demo_s: float) -> dict:
    first, final = paired["first"], paired["final"]
    points = {answer: round(100 * (x["accuracy_b"] - x["accuracy_a"]), 1) for answer, x in paired.items()}
    final_needed = 5.0 if final["accuracy_a"] < 0.9 else 0.0
    checks = {
        "first_up_10_points": points["first"] >= 10 and first["mcnemar_p"] < 0.05,
        "final_not_below": points["final"] >= final_needed and (final_needed == 0 or final["mcnemar_p"] < 0.05),
        "demo_within_15_minutes": demo_s <= LIMIT_S,
    }
    return {"first": [first["accuracy_a"], first["accuracy_b"], points["first"], first["mcnemar_p"]],
            "final": [final["accuracy_a"], final["accuracy_b"], points["final"], final["mcnemar_p"]],
            "checks": checks}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--compare", action="store_true", help="also train plain GRPO (timed separately)")
    parser.add_argument("--out", default=str(ROOT / "runs" / "demo_seeds"))
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "demo_seeds.json"))
    args = parser.parse_args()

    for seed in args.seeds:  # before any run: a resumed demo is not a wall time
        if (Path(args.out) / f"seed_{seed}" / "demo_config.json").exists():
            print(f"error: {Path(args.out) / f'seed_{seed}'} already holds a demo run, so its time would not be a wall "
                  "time; pass a fresh --out", file=sys.stderr)
            return 2

    rows = []
    for seed in args.seeds:
        out = Path(args.out) / f"seed_{seed}"
        out.mkdir(parents=True, exist_ok=True)
        row = {"seed": seed, "demo_s": timed(["--seed", str(seed), "--out", str(out)], out / "demo.log")}
        if args.compare:
            row["compare_grpo_s"] = timed(["--seed", str(seed), "--out", str(out), "--compare", "--compare_methods",
                                           "grpo"], out / "compare.log")
        metrics = json.loads((out / "metrics.json").read_text())
        row |= verdict(metrics["paired"]["stage1_vs_stage2"], row["demo_s"])
        if args.compare:
            grpo = metrics["paired"]["stage2_vs_grpo"]
            row["srpo_vs_grpo"] = {a: [x["accuracy_a"], x["accuracy_b"], x["mcnemar_p"]] for a, x in grpo.items()}
        print(json.dumps(row), flush=True)
        rows.append(row)

    passed = all(all(row["checks"].values()) for row in rows)
    result = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
              "columns": {"first/final": "[stage 1, stage 2, points, McNemar p]",
                          "srpo_vs_grpo": "[SRPO, plain GRPO, McNemar p]"},
              "seeds": rows, "passed": passed}
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'passed' if passed else 'FAILED'}: {args.results}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
