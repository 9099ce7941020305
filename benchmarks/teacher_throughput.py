"""Teacher throughput of `srpo reflect` against a loopback OpenAI-compatible server with a fixed reply latency.

The server (tests/fake_openai_server.py) runs in its own process and answers every chat completion after a fixed
200 ms. The client is the real stage-1 code path: `EndpointTeacher` (prompt from the template, one 56x56 PNG image
as a base64 data URL, JSON reply parsed) run by `reflect_with_store` (`srpo.endpoint.run_concurrently`, durable JSONL
store with fsync'ed group commits). For each concurrency c it sends `rounds * c` items and reports items/s and the
ratio to the ideal c / latency. Target: ratio >= 0.85 up to c = 128.

Each level runs `--repeats` times and the median run is reported (all runs are kept in the JSON), with the CPU time
per item of the client and of the server and the machine's load average: the client needs about 0.5 ms of CPU per
item, so 128 slots at 200 ms need a third of a core; on a machine whose cores are busy with other work that level
slows down first.

Usage: python benchmarks/teacher_throughput.py [--latency 0.2] [--rounds 20] [--repeats 3]
           [--concurrency 1 8 32 128] [--out benchmarks/results/teacher_throughput.json]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc), 0.0 where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_items(n: int, tag: str):
    from PIL import Image

    from srpo.data import Problem
    from srpo.reflect.teachers import Attempt

    items = []
    for i in range(n):
        pid = f"{tag}-{i:05d}"
        problem = Problem(id=pid, question=f"[id={pid}] How many red circles are in the figure?", answer="3",
                          images=[Image.new("RGB", (56, 56), (i % 256, 40, 90))], answer_type="integer")
        reasoning = "I count the red circles one by one: there are four of them, the blue squares do not count."
        attempt = Attempt(pid, f"<think>{reasoning}</think><answer>4</answer>", reasoning, "4", False)
        items.append((problem, attempt))
    return items


def run_level(url: str, concurrency: int, n: int, workdir: Path, tag: str, server_pid: int) -> dict:
    from srpo.config import ReflectConfig
    from srpo.reflect.remote import EndpointTeacher, reflect_with_store
    from srpo.store import JsonlStore

    cfg = ReflectConfig(teacher=url, teacher_model="bench-teacher", concurrency=concurrency, progress=False,
                        fsync=True, teacher_api_key_env="")
    teacher = EndpointTeacher(cfg)
    items = make_items(n, tag)
    store = JsonlStore(workdir / f"{tag}.jsonl", fsync=True)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    server0 = process_cpu_seconds(server_pid)
    start = time.perf_counter()
    reflect_with_store(teacher, items, store, concurrency, progress=False)
    seconds = time.perf_counter() - start
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    server_cpu = process_cpu_seconds(server_pid) - server0
    store.close()
    records = JsonlStore(store.path).load()
    ok = sum(r["status"] == "ok" for r in records.values())
    if ok != n:
        raise RuntimeError(f"c={concurrency}: {n - ok} of {n} items failed")
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    return {"items": n, "seconds": round(seconds, 3), "items_per_s": round(n / seconds, 2),
            "client_cpu_ms_per_item": round(1000 * cpu / n, 3),
            "server_cpu_ms_per_item": round(1000 * server_cpu / n, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=20, help="items per worker slot (items = rounds * c)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--target", type=float, default=0.85)
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. what else ran)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "teacher_throughput.json"))
    args = parser.parse_args()

    import aiohttp

    load_before = os.getloadavg()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        server, url = start_server(args.latency, workdir)
        try:
            run_level(url, 4, 8, workdir, "warmup", server.pid)
            for c in args.concurrency:
                n = args.rounds * c
                runs = [run_level(url, c, n, workdir, f"c{c}-r{k}", server.pid) for k in range(args.repeats)]
                median = sorted(runs, key=lambda r: r["items_per_s"])[len(runs) // 2]
                ideal = c / args.latency
                row = {"concurrency": c, **median, "ideal_items_per_s": round(ideal, 2),
                       "ratio": round(median["items_per_s"] / ideal, 3),
                       "all_items_per_s": [r["items_per_s"] for r in runs]}
                rows.append(row)
                print(f"c={c:4d}  items={n:5d}  {row['items_per_s']:8.1f} items/s  ideal {ideal:7.1f}  ratio "
                      f"{row['ratio']:.3f}  (runs: {row['all_items_per_s']}; CPU per item: client "
                      f"{row['client_cpu_ms_per_item']} ms, server {row['server_cpu_ms_per_item']} ms)", flush=True)
        finally:
            server.terminate()
            server.wait(10)
    report = {
        "benchmark": "teacher_throughput",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "latency_s": args.latency,
        "rounds": args.rounds,
        "repeats": args.repeats,
        "target_ratio": args.target,
        "meets_target": all(r["ratio"] >= args.target for r in rows),
        "results": rows,
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpu_count": os.cpu_count(), "aiohttp": aiohttp.__version__,
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "client": "srpo.reflect.remote.reflect_with_store + EndpointTeacher (srpo.endpoint: one aiohttp session, our "
                  "retries, run_concurrently), "
                  "durable JSONL store with fsync'ed group commits",
        "server": "tests/fake_openai_server.py (asyncio HTTP/1.1, own process on the same machine), fixed latency",
        "note": args.note,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"meets target (ratio >= {args.target} at every level): {report['meets_target']}; wrote {out}")


if __name__ == "__main__":
    main()
