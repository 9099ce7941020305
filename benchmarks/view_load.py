"""Size and opening time of the explorer page (`srpo view`, docs/view.md#large-runs) for a 3,040-item run: MathVision
test with a published model's responses (../shared/benchmarks/mathvision/outputs), scored by `srpo eval`'s driver.

Two pages: with synthetic images standing in for the test images this checkout lacks (the size test: one JPEG per
item, about the size of MathVision's diagrams), and with no images at all (the page shows placeholders). Each is
opened three times in headless Chromium; the figure is the slowest time from navigation to the first render of the
list (the page's own performance.now() when it has drawn) and to the load event. Targets: under 2 s and 30 MB.

    .venv/bin/python benchmarks/view_load.py          # writes benchmarks/results/view_load.json
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from browser import Browser, chromium_binary  # noqa: E402

from srpo.eval.driver import EvalConfig, run_eval  # noqa: E402
from srpo.eval.view import write_view  # noqa: E402

SHARED = ROOT.parent / "shared" / "benchmarks" / "mathvision"
RESULTS = ROOT / "benchmarks" / "results"


def synthetic_image(seed: int) -> Image.Image:
    """A diagram-like picture: lines, shapes and labels on white, 600x400 like a typical MathVision figure."""
    rng = random.Random(seed)
    image = Image.new("RGB", (600, 400), "white")
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.randrange(560), rng.randrange(360)
        colour = tuple(rng.randrange(256) for _ in range(3))
        draw.rectangle((x, y, x + rng.randrange(10, 120), y + rng.randrange(10, 120)), outline=colour, width=3)
        draw.line((rng.randrange(600), rng.randrange(400), rng.randrange(600), rng.randrange(400)), fill="black", width=2)
        draw.text((x, y), str(rng.randrange(100)), fill="black")
    return image


def open_times(page: Path, repeats: int) -> dict:
    first_render, load = [], []
    for _ in range(repeats):
        with Browser(chromium_binary()) as browser:  # a fresh browser: nothing cached
            load.append(browser.open(page.as_uri()))
            first_render.append(browser.evaluate("window.srpoView.firstRender") / 1000)
            shown = browser.evaluate("document.querySelectorAll('#list .item').length")
            assert browser.errors == [], browser.errors
    return {"bytes": page.stat().st_size, "mb": round(page.stat().st_size / 1e6, 2), "items_rendered": shown,
            "first_render_s_max": round(max(first_render), 3), "load_event_s_max": round(max(load), 3),
            "first_render_s": [round(t, 3) for t in first_render], "load_event_s": [round(t, 3) for t in load]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outputs", default=str(SHARED / "outputs" / "closed-source" / "Gemini" / "Gemini-Pro.jsonl"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if chromium_binary() is None:
        sys.exit("no Chromium binary found (apt-get install chromium-headless-shell)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        outputs = [json.loads(line) for line in Path(args.outputs).read_text().splitlines()]
        (work / "images" / "images").mkdir(parents=True)
        for row in outputs:
            synthetic_image(int(row["id"])).save(work / "images" / "images" / f"{row['id']}.jpg", quality=85)
        images_mb = sum(p.stat().st_size for p in (work / "images" / "images").iterdir()) / 1e6
        run = work / "run"
        run.mkdir()
        (run / "responses.jsonl").write_text("".join(
            json.dumps({"id": row["id"], "response": row["response"], "tokens": None}) + "\n" for row in outputs))
        t1 = time.time()
        run_eval(EvalConfig(model="http://127.0.0.1:9/v1", benchmark="mathvision", split="test", data=str(SHARED),
                            images=str(work / "images"), out=str(run), progress=False))
        t2 = time.time()
        with_images = open_times(run / "view.html", args.repeats)
        shutil.rmtree(work / "images")
        t3 = time.time()
        placeholder_page = write_view([run], work / "placeholders.html")
        t4 = time.time()
        placeholders = open_times(placeholder_page, args.repeats)
    result = {
        "items": len(outputs), "outputs": str(Path(args.outputs).relative_to(ROOT.parent)),
        "synthetic_images_mb": round(images_mb, 1), "eval_with_page_s": round(t2 - t1, 1),
        "view_build_s_placeholders": round(t4 - t3, 1), "synthetic_images": with_images, "placeholders": placeholders,
        "targets": {"first_render_s": 2.0, "mb": 30.0},
        "machine": f"{platform.machine()}, {platform.python_version()}", "date": time.strftime("%Y-%m-%d"),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "view_load.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
