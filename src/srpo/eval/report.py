"""Evaluation reports: report.md with tables and one PNG bar chart per breakdown category; `compare_runs` puts
several run folders side by side, with paired statistics of each run against the first."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from srpo.errors import InvalidValue, MissingPath
from srpo.eval.paired import BOOTSTRAP_DRAWS, BOOTSTRAP_SEED, paired_summary
from srpo.files import atomic_write_json, atomic_write_text, check_output_dir, replace_dir, safe_stem, save_figure

MAX_BARS = 40  # categories with more values show the 40 largest in the chart (the table has all)
REQUIRED_METRICS = ("mode", "n_scored", "score", "first_accuracy", "final_accuracy", "reflection_rate",
                    "wrong_to_right", "right_to_wrong")  # what the comparison table and chart read

REFLECTION_COLUMNS = [
    ("final acc %", "final_accuracy", 100), ("first acc %", "first_accuracy", 100),
    ("w->r %", "wrong_to_right", 100), ("r->r %", "right_to_right", 100), ("r->w %", "right_to_wrong", 100),
    ("w->w %", "wrong_to_wrong", 100), ("reflect %", "reflection_rate", 100), ("format %", "format_rate", 100),
    ("resp len", "mean_response_tokens", 1), ("refl len", "mean_reflection_tokens", 1),
]


def plot_category(category: str, cells: dict[str, dict], path: Path, title: str = "") -> Path:
    """Horizontal bars of accuracy per value, labelled correct/n."""
    ordered = sorted(cells.items(), key=lambda kv: -kv[1]["n"])[:MAX_BARS]
    ordered.sort(key=lambda kv: kv[0])
    names = [k for k, _ in ordered]
    acc = [c["accuracy"] for _, c in ordered]
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(names) + 1.4))
    ax.barh(range(len(names)), acc, color="#4C72B0")
    for i, (_, c) in enumerate(ordered):
        ax.text(min(c["accuracy"], 100) + 1, i, f"{c['correct']}/{c['n']}", va="center", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 110)
    ax.set_xlabel("accuracy (%)")
    ax.set_title(title or category, fontsize=9)
    return save_figure(fig, path, dpi=100)


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table: the header row, the rule, one line per row (cells as given, already formatted)."""
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def reflection_table(rows: dict[str, dict], first_column: str = "run") -> str:
    """Reflection metrics (final/first accuracy, transitions, rates, lengths), one row per named run or stage."""
    return markdown_table([first_column, *(c[0] for c in REFLECTION_COLUMNS)],
                          [[name, *(f"{m.get(k, 0) * s:.1f}" for _, k, s in REFLECTION_COLUMNS)]
                           for name, m in rows.items()])


def write_report(out: Path, run: dict, result, metrics: dict) -> Path:
    """report.md and plots/<category>.png in the run folder (the plots swapped in as a whole folder, then report.md
    written atomically: a reader never sees a torn file)."""
    gen, sc = run["generation"], run["scoring"]
    judge = sc.get("judge")
    served = f", served as {gen['served_model']}" if gen.get("served_model") else ""
    limit = f", limit {run['limit']}" if run.get("limit") else ""
    judged = f"{judge['model']} at {judge['base_url']}" if judge else "none (rules only)"
    lines = [
        f"# Evaluation: {gen['benchmark']} {gen['split']}",
        "",
        f"- model: `{gen['model']}` (backend {gen['backend']}{served})",
        f"- data: `{run['data']}` ({run['n_items']} items{limit})",
        f"- prompt: {gen['prompt']}; greedy; max new tokens {gen['max_new_tokens']}",
        f"- scoring: mode **{sc['mode']}**, scorer {sc['scorer']}, options {json.dumps(sc['options'])}, "
        f"judge {judged}; the final answer is scored",
        *(["- explorer: [view.html](view.html), every item's image, first attempt, reflection and final answer"]
          if (out / "view.html").is_file() else []),
        "",
        "## Score",
        "",
        markdown_table(["benchmark", "split", "mode", "n", "correct", "accuracy %", "unparsed"],
                       [[gen["benchmark"], gen["split"], sc["mode"], result.n, result.correct, f"{result.accuracy:.2f}",
                         result.unparsed]]),
        "",
        f"## Reflection metrics (all {metrics['n']} items; lengths in {metrics.get('length_unit', 'tokens')})",
        "",
        "Transitions and rates are % of all items; the four transitions add up to the reflection rate.",
        "",
        reflection_table({gen["benchmark"]: metrics}),
    ]
    charts = {category: cells for category, cells in result.breakdown.items() if cells}

    def draw(folder: Path) -> None:
        folder.mkdir(parents=True)
        for category, cells in charts.items():
            plot_category(category, cells, folder / f"{safe_stem(category, 'category')}.png",
                          f"{gen['benchmark']} {gen['split']}: accuracy by {category} ({sc['mode']})")

    replace_dir(out / "plots", draw)
    for category, cells in charts.items():
        lines += ["", f"## By {category}", "",
                  markdown_table(["value", "n", "correct", "accuracy %"],
                                 [[v, c["n"], c["correct"], f"{c['accuracy']:.2f}"] for v, c in sorted(cells.items())])]
        lines += ["", f"![{category}](plots/{safe_stem(category, 'category')}.png)"]
    return atomic_write_text(out / "report.md", "\n".join(lines) + "\n")


def _read_summary(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidValue(f"{path}: not valid JSON ({exc}); rerun `srpo eval` with --out {path.parent} to write it "
                           "again") from None
    if not isinstance(data, dict):
        raise InvalidValue(f"{path}: a JSON {type(data).__name__}, not an `srpo eval` summary; pass run folders "
                           "written by `srpo eval --out`")
    return data


def load_run(run_dir: str | Path) -> dict:
    d = Path(run_dir)
    if not d.is_dir():
        what = "a file" if d.exists() else "not there"
        raise MissingPath(f"{d} is {what}; pass run folders written by `srpo eval --out DIR`")
    if not (d / "run.json").is_file():
        raise MissingPath(f"{d}: no run.json; is this an `srpo eval` run folder? Pass folders written by "
                          "`srpo eval --out DIR`")
    if not (d / "metrics.json").is_file():
        raise MissingPath(f"{d}: no metrics.json, so that run did not finish; rerun its `srpo eval` command with "
                          f"--out {d} to finish it (saved replies are kept)")
    run, metrics = _read_summary(d / "run.json"), _read_summary(d / "metrics.json")
    missing = [f"{name}:{key}" for name, data, keys in (("run.json", run, ("generation",)),
                                                         ("metrics.json", metrics, REQUIRED_METRICS))
               for key in keys if key not in data]
    if missing:
        raise InvalidValue(f"{d}: {', '.join(missing)} missing, so it is not a finished `srpo eval` run; rerun its "
                           f"`srpo eval` command with --out {d}")
    return {"dir": d, "run": run, "metrics": metrics}


def load_verdicts(run_dir: str | Path) -> dict[str, bool]:
    """Item id -> the scorer's verdict on the final answer, from a run folder's items.jsonl."""
    path = Path(run_dir) / "items.jsonl"
    if not path.is_file():
        raise MissingPath(f"{path} is missing, so the run's per-item verdicts are unknown; rerun its `srpo eval` "
                          f"command with --out {path.parent} to write it (saved replies are kept)")
    verdicts = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
            verdicts[str(row["id"])] = bool(row["correct"])
        except (json.JSONDecodeError, TypeError, KeyError):
            raise InvalidValue(f"{path}:{number}: not an item line with `id` and `correct`; rerun its `srpo eval` "
                               f"command with --out {path.parent} to write it again") from None
    return verdicts


def paired_rows(names: list[str], runs: list[dict]) -> list[dict]:
    """Paired statistics of each run (B) against the first (A) over the items both scored
    (docs/method.md#paired-statistics); runs of another benchmark or split than the first are not paired."""
    first = runs[0]["run"]["generation"]
    a = load_verdicts(runs[0]["dir"])
    rows = []
    for name, run in zip(names[1:], runs[1:]):
        gen = run["run"]["generation"]
        if (gen["benchmark"], gen["split"]) != (first["benchmark"], first["split"]):
            rows.append({"a": names[0], "b": name, "paired": False,
                         "reason": f"{gen['benchmark']} {gen['split']} vs {first['benchmark']} {first['split']}"})
            continue
        rows.append({"a": names[0], "b": name, "paired": True, **paired_summary(a, load_verdicts(run["dir"]))})
    return rows


def paired_table(rows: list[dict]) -> str:
    """The paired rows as a Markdown table: counts, accuracies over the common items, A - B in points with its 95%
    interval, the McNemar p-value, and the items only one run scored (left out)."""
    header = ["A", "B", "common", "both right", "only A", "only B", "both wrong", "A acc %", "B acc %",
              "A - B points [95% CI]", "McNemar p", "only in A", "only in B"]
    cells = []
    for r in rows:
        if not r["paired"]:
            cells.append([r["a"], r["b"], f"not paired: {r['reason']}", *["-"] * (len(header) - 3)])
            continue
        ci = r["difference_ci95"]
        diff = f"{100 * r['difference']:+.1f}" + (f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]" if ci else "")
        cells.append([r["a"], r["b"], r["n_common"], r["both_right"], r["only_a"], r["only_b"], r["both_wrong"],
                      f"{100 * r['accuracy_a']:.1f}", f"{100 * r['accuracy_b']:.1f}", diff, f"{r['mcnemar_p']:.3g}",
                      r["only_in_a"], r["only_in_b"]])
    return markdown_table(header, cells)


PAIRED_NOTE = ("Over the items both runs scored (items only one scored are counted and left out): the exact McNemar "
               "p-value of the only-A vs only-B counts, and a paired bootstrap 95% interval of A - B "
               f"({BOOTSTRAP_DRAWS:,} draws, seed {BOOTSTRAP_SEED}).")


def compare_runs(run_dirs: list[str | Path], out: str | Path | None = None) -> str:
    """Markdown with the runs side by side (score, reflection metrics, paired statistics of each run against the
    first, shared breakdown categories); with `out` (a folder) also compare.md, compare.json (the runs and the
    paired statistics) and compare.png there."""
    if out is not None:
        check_output_dir(out, "--out")
    runs = [load_run(d) for d in run_dirs]
    names = _unique_names(runs)
    paired = paired_rows(names, runs) if len(runs) > 1 else []
    overview = [[name, f"`{g['model']}`", g["benchmark"], g["split"], m["mode"], m["n_scored"], f"{m['score']:.2f}",
                 f"{100 * m['first_accuracy']:.1f}", f"{100 * m['final_accuracy']:.1f}",
                 f"{100 * m['reflection_rate']:.1f}"]
                for name, g, m in ((n, r["run"]["generation"], r["metrics"]) for n, r in zip(names, runs))]
    lines = ["# Evaluation runs compared", "",
             markdown_table(["run", "model", "benchmark", "split", "mode", "n", "score %", "first acc %", "final acc %",
                             "reflect %"], overview),
             "", "## Reflection metrics", "", reflection_table({n: r["metrics"] for n, r in zip(names, runs)})]
    if paired:
        lines += ["", f"## Paired: each run against {names[0]}", "", PAIRED_NOTE, "", paired_table(paired)]
    benchmarks = {r["run"]["generation"]["benchmark"] for r in runs}
    if len(benchmarks) == 1:
        cats = [c for c in runs[0]["metrics"].get("breakdown", {})
                if all(c in r["metrics"].get("breakdown", {}) for r in runs)]
        for cat in cats:
            values = sorted({v for r in runs for v in r["metrics"]["breakdown"][cat]})
            cells = [[v, *(f"{c['accuracy']:.2f} ({c['n']})" if c else "-"
                           for c in (r["metrics"]["breakdown"][cat].get(v) for r in runs))] for v in values]
            lines += ["", f"## By {cat} (accuracy %)", "", markdown_table(["value", *names], cells)]
    text = "\n".join(lines) + "\n"
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        _plot_compare(names, runs, out / "compare.png")
        atomic_write_json(out / "compare.json", {
            "runs": [{"name": n, "dir": str(r["dir"]), "benchmark": r["run"]["generation"]["benchmark"],
                      "split": r["run"]["generation"]["split"], "mode": r["metrics"]["mode"],
                      "n_scored": r["metrics"]["n_scored"], "score": r["metrics"]["score"]}
                     for n, r in zip(names, runs)],
            "paired": paired})
        atomic_write_text(out / "compare.md", text + "\n![runs](compare.png)\n")
    return text


def _unique_names(runs: list[dict]) -> list[str]:
    names = [r["dir"].name for r in runs]
    if len(set(names)) == len(names):
        return names
    return [f"{r['dir'].parent.name}/{r['dir'].name}" if names.count(n) > 1 else n for n, r in zip(names, runs)]


def _plot_compare(names: list[str], runs: list[dict], path: Path) -> Path:
    x = range(len(names))
    fig, ax = plt.subplots(figsize=(1.8 * len(names) + 2.5, 4))
    series = [("score", lambda m: m["score"]), ("first answer", lambda m: 100 * m["first_accuracy"])]
    series += [(t.replace("_", " "), lambda m, t=t: 100 * m[t]) for t in ("wrong_to_right", "right_to_wrong")]
    width = 0.8 / len(series)
    top = max((get(r["metrics"]) for _, get in series for r in runs), default=0)
    ax.set_ylim(0, max(top * 1.15, 5))
    for k, (label, get) in enumerate(series):
        ax.bar([i + (k - (len(series) - 1) / 2) * width for i in x], [get(r["metrics"]) for r in runs], width,
               label=label)
    ax.set_xticks(list(x), names, fontsize=8)
    ax.set_ylabel("%")
    ax.set_title("Runs compared")
    ax.legend(fontsize=8)
    return save_figure(fig, path, dpi=100)
