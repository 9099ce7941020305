"""Throughput of srpo.rewards.score_response (paper preset) on one CPU core.

Builds a realistic set of five-block responses (numeric, fraction, LaTeX-expression and multiple-choice golds,
~5 % malformed; 150-400 tokens of reasoning each), then measures responses/s:

* cold: every cache cleared (srpo.answers result / gold caches and math-verify's parse caches) and responses
  never scored before;
* warm: the same set scored again.

Two sets are measured cold: ``grouped`` (250 problems x 8 sampled responses, as in a GRPO batch: the 8 responses
of a problem share the gold and often the same answer strings) and ``distinct`` (2000 problems, one response
each: the harshest case for the caches). Targets: >= 2,000/s warm, >= 300/s cold.

Usage: python benchmarks/reward_throughput.py [--n 2000] [--seed 0] [--out benchmarks/results/reward_throughput.json]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

WORDS = (
    "the of angle triangle side length area so we have then therefore compute since because note that value "
    "equation solve for substitute gives total each figure shows circle radius point line parallel sum product "
    "first second let consider check step result sqrt ratio height base volume probability expected chart bar "
    "axis label year increase decrease percent difference more less equal greater hence thus"
).split()

REFLECTIONS = [
    "The first attempt misread the figure; the height should be measured from the base, not the side.",
    "The reasoning is correct but verbose; the substitution step can be done directly.",
    "I forgot to convert the units before dividing, which changes the final value.",
    "The sign of the second term was dropped while expanding; redo the expansion carefully.",
    "The approach is right; I should double-check the arithmetic in the last step.",
]


def _reasoning(rng: random.Random, n_tokens: int) -> str:
    out = []
    for i in range(n_tokens):
        r = rng.random()
        if r < 0.12:
            out.append(str(rng.randint(0, 999)))
        elif r < 0.17:
            out.append(rng.choice(["=", "+", "-", "\\times", "/", ","]))
        else:
            out.append(rng.choice(WORDS))
        if i % 17 == 16:
            out.append(".\n")
    return " ".join(out)


def _problem(rng: random.Random, kind: str) -> dict:
    """A gold answer with right / wrong prediction spellings."""
    if kind == "numeric":
        v = rng.choice([rng.randint(-50, 2000), round(rng.uniform(0, 100), rng.choice([1, 2]))])
        gold = str(v)
        right = [f"$\\boxed{{{v}}}$", f"{v}", f"$ {v} $", f"\\boxed{{{v}}}"]
        if isinstance(v, int):
            right.append(f"$\\boxed{{{v}.0}}$")
        wrong = [f"$\\boxed{{{v + rng.randint(1, 9)}}}$", f"{v * 2 + 1}", f"$\\boxed{{{v - rng.randint(1, 5)}}}$"]
        return {"gold": gold, "right": right, "wrong": wrong, "choices": None}
    if kind == "fraction":
        a, b = rng.randint(1, 12), rng.randint(13, 40)
        gold = f"\\frac{{{a}}}{{{b}}}"
        right = [f"$\\boxed{{\\frac{{{a}}}{{{b}}}}}$", f"$\\boxed{{{a / b:.8f}}}$", f"{a}/{b}", f"$\\dfrac{{{a}}}{{{b}}}$"]
        wrong = [f"$\\boxed{{\\frac{{{a + 1}}}{{{b}}}}}$", f"$\\boxed{{{a / b + 0.05:.3f}}}$", f"{b}/{a}"]
        return {"gold": gold, "right": right, "wrong": wrong, "choices": None}
    if kind == "expression":
        a, b, c = rng.randint(2, 9), rng.choice([2, 3, 5, 6, 7]), rng.randint(1, 9)
        templates = [
            (f"{a}\\sqrt{{{b}}}", [f"{a}\\sqrt{{{b}}}", f"\\sqrt{{{a * a * b}}}"], [f"{a + 1}\\sqrt{{{b}}}", f"{a}\\sqrt{{{b + 1}}}"]),
            (f"\\frac{{{a}\\pi}}{{{b}}}", [f"\\frac{{{a}\\pi}}{{{b}}}", f"\\frac{{{a}}}{{{b}}}\\pi"], [f"\\frac{{{a}\\pi}}{{{b + 1}}}", f"{a}\\pi"]),
            (f"x^2+{a}x+{c}", [f"x^2+{a}x+{c}", f"{c}+{a}x+x^2"], [f"x^2+{a + 1}x+{c}", f"x^2-{a}x+{c}"]),
            (f"{c}+\\sqrt{{{b}}}", [f"{c}+\\sqrt{{{b}}}", f"\\sqrt{{{b}}}+{c}"], [f"{c}-\\sqrt{{{b}}}", f"{c + 1}+\\sqrt{{{b}}}"]),
        ]
        gold, r, w = rng.choice(templates)
        return {"gold": gold, "right": [f"$\\boxed{{{x}}}$" for x in r], "wrong": [f"$\\boxed{{{x}}}$" for x in w], "choices": None}
    # multiple choice
    n = rng.choice([4, 5])
    opts = rng.sample(range(10, 180), n)
    choices = [f"{o}^\\circ" if rng.random() < 0.5 else str(o) for o in opts]
    k = rng.randrange(n)
    L = "ABCDE"[k]
    other = "ABCDE"[(k + rng.randint(1, n - 1)) % n]
    right = [f"$\\boxed{{{L}}}$", L, f"({L})", f"{L}. {choices[k]}", f"The answer is {L}.", f"\\text{{{L}}}", choices[k]]
    wrong = [f"$\\boxed{{{other}}}$", other, f"({other})", f"The answer is {other}."]
    return {"gold": L, "right": right, "wrong": wrong, "choices": choices}


def _response(rng: random.Random, prob: dict) -> str:
    r = rng.random()
    first_right, final_right = (
        (True, True) if r < 0.35 else (False, True) if r < 0.55 else (False, False) if r < 0.9 else (True, False)
    )
    a1 = rng.choice(prob["right"] if first_right else prob["wrong"])
    if final_right == first_right and rng.random() < 0.7:
        a2 = a1  # the second pass keeps the same answer string
    else:
        a2 = rng.choice(prob["right"] if final_right else prob["wrong"])
    n1 = rng.randint(60, 170)
    think1 = _reasoning(rng, n1)
    think2 = _reasoning(rng, rng.randint(40, 150))
    refl = rng.choice(REFLECTIONS)
    text = (
        f"<think>{think1}</think>\n<answer>{a1}</answer>\n<reflection>{refl}</reflection>\n"
        f"<think>{think2}</think>\n<answer>{a2}</answer>"
    )
    m = rng.random()
    if m < 0.05:  # malformed variants
        variant = rng.randrange(4)
        if variant == 0:
            text = text[: -len("</answer>")]  # truncated, unclosed final answer
        elif variant == 1:
            text = f"<think>{think1}</think>\n<answer>{a1}</answer>"  # single round, no reflection
        elif variant == 2:
            text = text.replace("<reflection>", "Reflection: ").replace("</reflection>", "")
        else:
            text = text.replace("\n<think>", "\nSome extra text.\n<think>")
    return text


def build_set(n: int, seed: int, group: int) -> list[tuple[str, str, list[str] | None]]:
    rng = random.Random(seed)
    kinds = ["numeric"] * 35 + ["fraction"] * 15 + ["expression"] * 20 + ["mc"] * 30
    items = []
    while len(items) < n:
        prob = _problem(rng, rng.choice(kinds))
        for _ in range(group):
            if len(items) < n:
                items.append((_response(rng, prob), prob["gold"], prob["choices"]))
    return items


def _score_all(items, score_response) -> float:
    t = time.perf_counter()
    for text, gold, choices in items:
        score_response(text, gold, preset="paper", choices=choices)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "reward_throughput.json"))
    args = ap.parse_args(argv)

    core = None
    if hasattr(os, "sched_setaffinity"):
        core = sorted(os.sched_getaffinity(0))[0]
        os.sched_setaffinity(0, {core})  # ONE core

    from srpo import answers
    from srpo.rewards import default_token_count, score_response

    # import math-verify / sympy and JIT-ish warm-up outside the timed region (not part of "cold")
    score_response(
        "<think>w</think><answer>$\\boxed{\\sqrt{2}}$</answer><reflection>r</reflection><think>w</think>"
        "<answer>$\\boxed{x^2}$</answer>",
        "\\frac{\\pi}{3}",
    )

    results: dict = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "pinned_core": core,
        "n": args.n,
        "seed": args.seed,
        "preset": "paper",
        "targets": {"warm_per_s": 2000, "cold_per_s": 300},
        "composition": "golds: 35% numeric, 15% fraction, 20% LaTeX expression, 30% multiple choice (4-5 options); "
        "transitions r->r 35%, w->r 20%, w->w 35%, r->w 10%; 5% malformed (truncated, single round, "
        "no reflection tags, extra text between blocks)",
        "sets": {},
    }
    for name, group, seed in (("grouped", 8, args.seed), ("distinct", 1, args.seed + 1)):
        items = build_set(args.n, seed, group)
        toks = [default_token_count(t) for t, _, _ in items]
        answers.clear_caches()
        cold = _score_all(items, score_response)
        warm = min(_score_all(items, score_response) for _ in range(3))
        res = {
            "group_size": group,
            "mean_tokens": sum(toks) / len(toks),
            "min_tokens": min(toks),
            "max_tokens": max(toks),
            "cold_s": cold,
            "cold_per_s": len(items) / cold,
            "warm_s": warm,
            "warm_per_s": len(items) / warm,
        }
        results["sets"][name] = res
        print(
            f"[{name:8s}] n={len(items)} tokens~{res['mean_tokens']:.0f} ({res['min_tokens']}-{res['max_tokens']}): "
            f"cold {res['cold_per_s']:,.0f}/s   warm {res['warm_per_s']:,.0f}/s"
        )
    ok = all(
        s["cold_per_s"] >= results["targets"]["cold_per_s"] and s["warm_per_s"] >= results["targets"]["warm_per_s"]
        for s in results["sets"].values()
    )
    results["meets_targets"] = ok
    print("targets (>=2000/s warm, >=300/s cold):", "met" if ok else "NOT met")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"saved {out}")
    return results


if __name__ == "__main__":
    main()
