"""Judge overhead of the perception reward: one GRPO generation batch (1,024 completions) scored by
`PerceptionJudge` against a loopback judge that answers each request after a fixed 1 s.

The server (tests/fake_openai_server.py) runs in its own process. The client is the training code path: the
`perception_reward` function of the `srpo+perception` preset (srpo.rewards.reward_functions) awaited on one event
loop, as TRL awaits async reward functions. Every completion is distinct (no cache hits) and has 5 facts. Target:
<= 1.5 s for the batch at the default `judge_concurrency`, i.e. the judge adds at most half a second to its own
latency. Each concurrency level scores `--repeats + 1` batches on one judge and event loop, as TRL runs its steps:
the first batch also opens the connections (a run's first step); the median of the others is reported.

Usage: python benchmarks/judge_overhead.py [--latency 1.0] [--batch 1024] [--repeats 3]
           [--concurrency 256 512 1024] [--out benchmarks/results/judge_overhead.json]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 1.5


def start_server(latency: float, workdir: Path) -> tuple[subprocess.Popen, str]:
    port_file = workdir / "port"
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_openai_server.py"), "--latency", str(latency),
                             "--port-file", str(port_file)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"fake server exited: {proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("fake server did not start")
        time.sleep(0.02)
    return proc, f"http://127.0.0.1:{port_file.read_text().strip()}/v1"


def score_batches(url: str, batch: int, concurrency: int, repeats: int) -> list[dict]:
    """`repeats + 1` batches of distinct completions on one event loop and one judge, as TRL runs steps: the first
    opens the connections (a training run's first step), the others reuse them."""
    from srpo.perception_judge import PerceptionJudge
    from srpo.rewards import reward_functions

    judge = PerceptionJudge(url, "fake", concurrency=concurrency, timeout=30.0)
    (reward,) = [f for f in reward_functions("srpo+perception", judge=judge) if f.__name__ == "perception_reward"]
    facts = [[f"fact {k} of item {i}" for k in range(5)] for i in range(batch)]

    async def run() -> list[dict]:
        runs = []
        try:
            for run in range(repeats + 1):
                completions = [f"<think>step {run} item {i}: the figure shows ...</think> <answer>{i}</answer>"
                               for i in range(batch)]
                logged: dict[str, float] = {}
                cpu, started = time.process_time(), time.perf_counter()
                rewards = await reward(prompts=[""] * batch, completions=completions, visual_facts=facts,
                                       log_metric=logged.__setitem__)
                runs.append({"first": run == 0, "wall_s": round(time.perf_counter() - started, 3),
                             "client_cpu_s": round(time.process_time() - cpu, 3),
                             "scored": sum(r is not None for r in rewards),
                             **{k: round(v, 4) for k, v in logged.items()}})
        finally:
            await judge.aclose()
        return runs

    return asyncio.run(run())


def main() -> None:
    from srpo.perception_judge import DEFAULT_CONCURRENCY

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=sorted({256, 512, DEFAULT_CONCURRENCY}))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "judge_overhead.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(args.latency, Path(tmp))
        try:
            levels = []
            for concurrency in args.concurrency:
                runs = score_batches(url, args.batch, concurrency, args.repeats)
                warm = sorted(runs[1:], key=lambda r: r["wall_s"])
                median = warm[len(warm) // 2]
                levels.append({"concurrency": concurrency, "default": concurrency == DEFAULT_CONCURRENCY,
                               "median_wall_s": median["wall_s"], "first_batch_wall_s": runs[0]["wall_s"],
                               "meets_target": median["wall_s"] <= TARGET_S, "runs": runs})
                print(f"concurrency {concurrency:5d}: {median['wall_s']:.3f} s for {args.batch} completions (first "
                      f"batch, opening connections: {runs[0]['wall_s']:.3f} s; walls {[r['wall_s'] for r in runs]}; "
                      f"failures {sum(r['judge/failures'] for r in runs):.0f})", flush=True)
        finally:
            proc.terminate()
            proc.wait(10)
    result = {
        "benchmark": "judge_overhead",
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "latency_s": args.latency, "batch": args.batch, "facts_per_item": 5, "target_s": TARGET_S,
        "default_concurrency": DEFAULT_CONCURRENCY,
        "median_wall_s_by_concurrency": {str(level["concurrency"]): level["median_wall_s"] for level in levels},
        "levels": levels,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
