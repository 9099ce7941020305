"""Problem files (`srpo reflect --problems`), `srpo synth` and `srpo build-tiny-model`: bad bytes, values, paths and
output folders."""

import io
import json

from PIL import Image

from bad_inputs import BadInput, Workspace

GOOD = json.dumps({"id": "ok", "question": "How many?", "answer": "3", "solution": "I count 3. So the answer is 3."})


def reflect_on(ws: Workspace, problems) -> list:
    """`srpo reflect` on these problems with the tiny local policy and the oracle teacher (all fine but the data)."""
    return ["reflect", "--problems", problems, "--policy", ws.model, "--teacher", "oracle", "--out", ws.tmp / "out"]


def png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "white").save(buffer, format="PNG")
    return buffer.getvalue()


def with_image(ws: Workspace, size: tuple[int, int]) -> list:
    ws.write("banner.png", png(size))
    row = json.dumps({"id": "banner", "question": "What does it say?", "answer": "3", "image": "banner.png",
                      "solution": "It says 3. So the answer is 3."})
    return reflect_on(ws, ws.write("p.jsonl", GOOD + "\n" + row + "\n"))


def parquet_cut_in_half(ws: Workspace):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = ws.tmp / "t.parquet"
    pq.write_table(pa.table({"question": ["Q?"] * 100, "answer": ["1"] * 100}), path)
    data = path.read_bytes()
    return ws.write("t.parquet", data[: len(data) // 2])


def full_folder(ws: Workspace, name: str):
    ws.write(f"{name}/notes.txt", "keep me")
    return ws.tmp / name


CASES = [
    BadInput("data-not-utf8", lambda ws: reflect_on(ws, ws.write("p.jsonl", GOOD.encode() + b'\n{"question": "Gr\xfc\xdfe?", "answer": "1"}\n')),
             r"p\.jsonl:2: not UTF-8 text \(byte 17 of the line is 0xfc\); save the file as UTF-8"),
    BadInput("data-json-array-on-a-line", lambda ws: reflect_on(ws, ws.write("p.jsonl", f"[{GOOD}]\n")),
             r"p\.jsonl:1: is a JSON array, not an object; each line must be one object"),
    BadInput("data-number-on-a-line", lambda ws: reflect_on(ws, ws.write("p.jsonl", f"{GOOD}\n42\n")),
             r"p\.jsonl:2: is a JSON number, not an object"),
    BadInput("data-pretty-printed-json", lambda ws: reflect_on(ws, ws.write("p.jsonl", json.dumps([json.loads(GOOD)], indent=2))),
             r"p\.jsonl:1: invalid JSON .*pretty-printed JSON; write one JSON object per line"),
    BadInput("data-deeply-nested-json", lambda ws: reflect_on(ws, ws.write("p.jsonl", "[" * 100_000 + "\n")),
             r"p\.jsonl:1: JSON nested too deeply"),
    BadInput("data-nul-in-image-path", lambda ws: reflect_on(ws, ws.write("p.jsonl", json.dumps({"question": "Q?", "answer": "1", "images": ["a\u0000.png"]}) + "\n")),
             r"p\.jsonl:1: images\[0\]: image path 'a\\x00\.png' contains a NUL byte .*fix the path"),
    BadInput("data-json-named-parquet", lambda ws: reflect_on(ws, ws.write("p.parquet", GOOD + "\n")),
             r"p\.parquet: not a readable Parquet file .*rename a JSON Lines file to \.jsonl"),
    BadInput("data-truncated-parquet", lambda ws: reflect_on(ws, parquet_cut_in_half(ws)),
             r"t\.parquet: not a readable Parquet file"),
    BadInput("data-corrupt-datasets-folder", lambda ws: reflect_on(ws, ws.write("ds/state.json", "{broken").parent),
             r"ds: the datasets folder cannot be read .*save it again"),
    BadInput("data-missing-file", lambda ws: reflect_on(ws, ws.tmp / "nope.jsonl"),
             r"nope\.jsonl: no such file or folder"),
    BadInput("data-empty-file", lambda ws: reflect_on(ws, ws.write("p.jsonl", "")),
             r"p\.jsonl: holds no usable problems"),
    BadInput("data-aspect-ratio-the-processor-refuses", lambda ws: with_image(ws, (1, 250)),
             r"p\.jsonl: images: the model's image processor refuses the images of 1 item\(s\): 'banner' \(image 0, 1x250 px: absolute aspect ratio must be smaller than 200"),
    BadInput("data-oracle-without-solutions", lambda ws: reflect_on(ws, ws.write("p.jsonl", json.dumps({"id": "q", "question": "Q?", "answer": "1"}) + "\n")),
             r"p\.jsonl: the oracle teacher writes reflections from worked solutions, but 1 problem\(s\) have no 'solution' \(e\.g\. 'q'\)"),
    BadInput("synth-negative-n-train", lambda ws: ["synth", ws.tmp / "syn", "--n-train", "-5"],
             r"--n-train -5: the number of problems must be 0 or more"),
    BadInput("synth-negative-n-test", lambda ws: ["synth", ws.tmp / "syn", "--n-test", "-1"],
             r"--n-test -1: the number of problems must be 0 or more"),
    BadInput("synth-into-a-non-empty-folder", lambda ws: ["synth", full_folder(ws, "syn"), "--n-train", "2"],
             r"OUT .*syn is not empty; pass a new folder, or --force to replace it"),
    BadInput("synth-out-is-a-file", lambda ws: ["synth", ws.write("syn", "x"), "--n-train", "2"],
             r"OUT .*syn is an existing file, not a folder"),
    BadInput("tiny-into-a-non-empty-folder", lambda ws: ["build-tiny-model", full_folder(ws, "m")],
             r"OUT .*m is not empty; pass a new folder, or --force to replace it"),
    BadInput("tiny-out-is-a-file", lambda ws: ["build-tiny-model", ws.write("m", "x")],
             r"OUT .*m is an existing file, not a folder"),
    BadInput("tiny-out-under-a-file", lambda ws: ["build-tiny-model", ws.write("m", "x") / "sub"],
             r"OUT .*m/sub: .*m is a file, so no folder can be made under it"),
]
