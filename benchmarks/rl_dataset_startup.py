"""Start-up time and peak memory of the RL dataset (`build_rl_dataset`) at 1K, 10K and 37K problems.

Each size runs in a fresh process with an empty datasets cache (cold: what the main process of a node pays), then
again with that cache (warm: what the other processes of the node pay, after the main one). Peak memory is the
maximum resident set size of the process itself and of its largest check worker (resource.getrusage).
Targets (issue 11): peak at 37K within 1.5x of peak at 1K; cold start at 37K under 60 s on 2 cores.

    .venv/bin/python benchmarks/rl_dataset_startup.py            # writes benchmarks/results/rl_dataset_startup.*
    .venv/bin/python benchmarks/rl_dataset_startup.py --sizes 1000 2000 --work /tmp/bench
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
DISTINCT = 500  # distinct procedural problems; larger sets repeat them under new ids and new image files


def write_problem_set(folder: Path, n: int) -> Path:
    """n problems as JSONL + one PNG file each, from DISTINCT procedural problems (fast at 37K)."""
    from srpo.data import generate_problems

    base = generate_problems(DISTINCT // 2, seed=1, difficulty=1, image_size=84)
    base += generate_problems(DISTINCT - len(base), seed=2, difficulty=2, image_size=140)
    pngs = []
    for problem in base:
        buffer = io.BytesIO()
        problem.images[0].save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    (folder / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        problem = base[i % len(base)]
        name = f"images/{i}.png"
        (folder / name).write_bytes(pngs[i % len(base)])
        lines.append(json.dumps({"id": f"p{i}", "question": problem.question, "answer": problem.answer,
                                 "choices": problem.choices, "answer_type": problem.answer_type, "images": [name]}))
    path = folder / "problems.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def measure(problems: Path, model: Path) -> dict:
    """In this (fresh) process: build the RL dataset once; time and peak memory."""
    from srpo.config import SRPOGRPOConfig
    from srpo.train.common import load_training_processor
    from srpo.train.rl import build_rl_dataset

    cfg = SRPOGRPOConfig(model_name_or_path=str(model), dataset=str(problems), output_dir=str(problems.parent / "out"),
                         report_to=[], num_generations=4, per_device_train_batch_size=8, max_prompt_length=1024)
    processor = load_training_processor(cfg)
    start = time.perf_counter()
    ds = build_rl_dataset(cfg, processor)
    seconds = time.perf_counter() - start
    ds[len(ds) - 1]["images"][0].load()  # a row reads and decodes its image on access
    return {
        "rows": len(ds),
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_worker_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }


def run_child(problems: Path, model: Path, cache: Path) -> dict:
    env = {**os.environ, "HF_DATASETS_CACHE": str(cache), "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, __file__, "--child", str(problems), str(model)], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"measuring {problems} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 37000])
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", nargs=2, metavar=("PROBLEMS", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(Path(args.child[0]), Path(args.child[1]))))
        return

    from srpo.models import build_tiny_model

    work = args.work or Path(tempfile.mkdtemp(prefix="rl_dataset_startup-"))
    model = work / "tiny-model"
    if not model.exists():
        build_tiny_model(model)
    rows = []
    for n in args.sizes:
        folder = work / f"n{n}"
        problems = folder / "problems.jsonl" if (folder / "problems.jsonl").exists() else write_problem_set(folder, n)
        cache = folder / "datasets-cache"
        subprocess.run(["rm", "-rf", str(cache)], check=True)
        load = round(os.getloadavg()[0], 2)  # other jobs on the machine slow the measurement down
        cold = run_child(problems, model, cache)
        warm = run_child(problems, model, cache)
        rows.append({"problems": n, "load_average_before": load, "cold": cold, "warm": warm})
        print(json.dumps(rows[-1]), flush=True)
    first, last = rows[0], rows[-1]
    peak = lambda r: max(r["cold"]["peak_rss_mb"], r["cold"]["peak_rss_worker_mb"])  # noqa: E731
    summary = {
        "machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version(),
                    "platform": platform.platform()},
        "sizes": rows,
        "peak_ratio_largest_to_smallest": round(peak(last) / peak(first), 2),
        "targets": {"peak_ratio_at_most": 1.5, "cold_seconds_at_37k_under": 60},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rl_dataset_startup.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = ["# RL dataset start-up", "",
             f"`benchmarks/rl_dataset_startup.py` on {summary['machine']['cpus']} CPU cores; build_rl_dataset with the "
             "tiny model's processor, synthetic problems with one PNG each.", "",
             "| problems | cold start (s) | warm start (s) | peak RSS main (MB) | peak RSS worker (MB) | load average |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        worker = r["cold"]["peak_rss_worker_mb"] or "no workers"
        lines.append(f"| {r['problems']} | {r['cold']['seconds']} | {r['warm']['seconds']} | "
                     f"{r['cold']['peak_rss_mb']} | {worker} | {r['load_average_before']} |")
    lines += ["", f"Peak memory, largest set / smallest set: {summary['peak_ratio_largest_to_smallest']} "
              "(target: at most 1.5). Cold: empty datasets cache (the node's main process); warm: the cache it left "
              "(every other process). Load average: of the machine before the cold run (other jobs share its cores)."]
    (args.out / "rl_dataset_startup.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / 'rl_dataset_startup.json'} and .md")


if __name__ == "__main__":
    main()
