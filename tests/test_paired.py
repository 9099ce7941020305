"""Paired statistics (srpo.eval.paired): exact McNemar p-values checked against binomial sums, the bootstrap interval,
the Wilson interval; `srpo eval compare` on run folders written by `srpo eval` against the loopback server; and two
published MathVista output files compared."""

from __future__ import annotations

import json
from fractions import Fraction
from math import comb

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fake_openai_server import FakeOpenAIServer
from srpo.cli import app
from srpo.data import Problem, save_problems
from srpo.eval.paired import (PairedCounts, mcnemar_exact_p, paired_bootstrap_ci, paired_counts, paired_summary,
                              wilson_interval)

runner = CliRunner()


def binomial_two_sided(b: int, c: int) -> float:
    """min(1, 2 P[X <= min(b, c)]), X ~ Bin(b + c, 1/2), summed term by term with exact fractions."""
    n = b + c
    return float(min(Fraction(1), 2 * sum(Fraction(comb(n, k), 2 ** n) for k in range(min(b, c) + 1))))


@pytest.mark.parametrize("b, c, expected", [
    (0, 0, 1.0),  # no discordant items: no evidence either way
    (1, 0, 1.0),  # 2 * 1/2
    (5, 0, 0.0625),  # 2 * 1/32
    (10, 2, 0.03857421875),  # 2 * (1 + 12 + 66) / 4096
    (3, 3, 1.0),  # 2 * 42/64 capped at 1
    (4, 1, 0.375),  # 2 * (1 + 5) / 32
])
def test_mcnemar_exact_p_known_tables(b, c, expected):
    assert mcnemar_exact_p(b, c) == expected == binomial_two_sided(b, c)
    assert mcnemar_exact_p(c, b) == expected  # symmetric in b and c


def test_mcnemar_exact_p_matches_binomial_sums_on_larger_tables():
    for b, c in [(30, 12), (100, 70), (175, 148), (0, 40), (500, 501)]:
        assert mcnemar_exact_p(b, c) == pytest.approx(binomial_two_sided(b, c), rel=1e-12)
        assert mcnemar_exact_p(b, c) == mcnemar_exact_p(c, b)
    assert mcnemar_exact_p(0, 40) == 2 / 2 ** 40
    with pytest.raises(ValueError):
        mcnemar_exact_p(-1, 3)


def test_paired_counts_over_common_ids_only():
    a = {"q1": True, "q2": True, "q3": False, "q4": False, "q5": True, "only_a": True}
    b = {"q1": True, "q2": False, "q3": True, "q4": False, "q5": False, "only_b1": False, "only_b2": True}
    counts = paired_counts(a, b)
    assert counts == PairedCounts(both_right=1, only_a=2, only_b=1, both_wrong=1, only_in_a=1, only_in_b=2)
    assert counts.n == 5
    assert (counts.accuracy_a, counts.accuracy_b, counts.difference) == (3 / 5, 2 / 5, 1 / 5)
    assert paired_counts(b, a) == PairedCounts(1, 1, 2, 1, only_in_a=2, only_in_b=1)
    empty = paired_counts({"x": True}, {"y": False})
    assert (empty.n, empty.only_in_a, empty.only_in_b, empty.difference) == (0, 1, 1, 0.0)
    assert paired_bootstrap_ci(empty) is None


def _item_bootstrap(counts: PairedCounts, draws: int, seed: int) -> tuple[float, float]:
    """The textbook paired bootstrap: resample item indices with replacement, recompute both accuracies."""
    a = np.array([1] * counts.both_right + [1] * counts.only_a + [0] * counts.only_b + [0] * counts.both_wrong)
    b = np.array([1] * counts.both_right + [0] * counts.only_a + [1] * counts.only_b + [0] * counts.both_wrong)
    idx = np.random.default_rng(seed).integers(0, counts.n, size=(draws, counts.n))
    diffs = a[idx].mean(axis=1) - b[idx].mean(axis=1)
    return tuple(np.quantile(diffs, [0.025, 0.975]))


def test_bootstrap_interval_covers_the_estimate_is_seeded_and_narrows_with_n():
    counts = PairedCounts(both_right=40, only_a=18, only_b=7, both_wrong=35)  # difference +0.11 over 100
    low, high = paired_bootstrap_ci(counts)
    assert counts.difference == pytest.approx(0.11) and low < counts.difference < high
    assert paired_bootstrap_ci(counts) == (low, high)  # same seed, same interval
    assert paired_bootstrap_ci(counts, seed=1) != (low, high)
    # the multinomial shortcut draws from the same distribution as resampling items
    ref_low, ref_high = _item_bootstrap(counts, draws=10_000, seed=5)
    assert low == pytest.approx(ref_low, abs=0.011) and high == pytest.approx(ref_high, abs=0.011)
    # its width is about 2 * 1.96 * sd of the difference, sd^2 = ((b + c)/n - d^2) / n
    sd = ((25 / 100 - 0.11 ** 2) / 100) ** 0.5
    assert high - low == pytest.approx(2 * 1.96 * sd, rel=0.08)
    tenfold = PairedCounts(400, 180, 70, 350)
    low10, high10 = paired_bootstrap_ci(tenfold)
    assert low10 < tenfold.difference < high10
    assert (high10 - low10) == pytest.approx((high - low) / 10 ** 0.5, rel=0.1)  # narrows as 1/sqrt(n)
    # no discordant items: every resample has difference 0
    assert paired_bootstrap_ci(PairedCounts(5, 0, 0, 5)) == (0.0, 0.0)


def test_wilson_interval_known_values():
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)  # the textbook example
    z = 1.959963984540054
    for bound in (low, high):  # both bounds solve (p - pi)^2 = z^2 pi (1 - pi) / n
        assert (0.8 - bound) ** 2 == pytest.approx(z * z * bound * (1 - bound) / 10)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and round(high, 4) == 0.2775
    low, high = wilson_interval(10, 10)
    assert round(low, 4) == 0.7225 and high == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(50, 100)
    assert (round(low, 4), round(high, 4)) == (0.4038, 0.5962)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_paired_summary_is_json_ready():
    summary = paired_summary({"a": True, "b": False, "c": True}, {"a": True, "b": True, "c": False, "d": True})
    assert json.loads(json.dumps(summary)) == summary
    assert {k: summary[k] for k in ("n_common", "both_right", "only_a", "only_b", "both_wrong", "only_in_a",
                                    "only_in_b", "difference", "mcnemar_p")} == {
        "n_common": 3, "both_right": 1, "only_a": 1, "only_b": 1, "both_wrong": 0, "only_in_a": 0, "only_in_b": 1,
        "difference": 0.0, "mcnemar_p": 1.0}
    assert summary["bootstrap"] == {"draws": 10_000, "seed": 0} and len(summary["difference_ci95"]) == 2


# --- srpo eval compare on run folders written by srpo eval -----------------------------------------------------

def _problems(path, says: dict[str, int]):
    """Problems whose answer is 3; the loopback server replies `says[id]` to each (fake_openai_server's say= tag)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_problems([Problem(id=pid, question=f"[id={pid} say={say}] How many circles?", answer="3",
                                  images=[Image.new("RGB", (32, 32), "white")], answer_type="integer")
                          for pid, say in says.items()], path)


def _eval_run(server, problems, out) -> None:
    res = runner.invoke(app, ["eval", "--model", server.url, "--benchmark", str(problems), "--out", str(out),
                              "--no-progress", "--max-new-tokens", "16"])
    assert res.exit_code == 0, res.output + repr(res.exception)


def test_eval_compare_reports_paired_statistics(tmp_path):
    right, wrong = 3, 4
    # A scores p0..p9, B p2..p11: p0, p1 only in A, p10, p11 only in B. On the common p2..p9:
    # both right p2-p4, only A p5-p7, only B p8, both wrong p9.
    a = {"p0": right, "p1": wrong, "p2": right, "p3": right, "p4": right, "p5": right, "p6": right, "p7": right,
         "p8": wrong, "p9": wrong}
    b = {"p2": right, "p3": right, "p4": right, "p5": wrong, "p6": wrong, "p7": wrong, "p8": right, "p9": wrong,
         "p10": right, "p11": right}
    runs = tmp_path / "runs"
    with FakeOpenAIServer() as server:
        _eval_run(server, _problems(tmp_path / "a" / "heldout.jsonl", a), runs / "run_a")
        _eval_run(server, _problems(tmp_path / "b" / "heldout.jsonl", b), runs / "run_b")
        _eval_run(server, _problems(tmp_path / "c" / "other.jsonl", a), runs / "run_other")  # another split
    assert json.loads((runs / "run_a" / "metrics.json").read_text())["correct"] == 7  # the replies scored as meant

    res = runner.invoke(app, ["eval", "compare", str(runs / "run_a"), str(runs / "run_b"), str(runs / "run_other"),
                              "--out", str(tmp_path / "cmp")])
    assert res.exit_code == 0, res.output + repr(res.exception)
    ci = paired_bootstrap_ci(PairedCounts(3, 3, 1, 1))
    p = 2 * (1 + 4) / 16  # Bin(4, 1/2): P[X <= 1] doubled
    row = (f"| run_a | run_b | 8 | 3 | 3 | 1 | 1 | 75.0 | 50.0 | +25.0 [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}] "
           f"| {p:.3g} | 2 | 2 |")
    assert "## Paired: each run against run_a" in res.output and row in res.output
    assert row in (tmp_path / "cmp" / "compare.md").read_text()
    assert "| run_a | run_other | not paired: problems other vs problems heldout |" in res.output
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [r["name"] for r in saved["runs"]] == ["run_a", "run_b", "run_other"]
    pair, other = saved["paired"]
    assert {k: pair[k] for k in ("a", "b", "n_common", "both_right", "only_a", "only_b", "both_wrong", "only_in_a",
                                 "only_in_b", "accuracy_a", "accuracy_b", "difference", "mcnemar_p")} == {
        "a": "run_a", "b": "run_b", "n_common": 8, "both_right": 3, "only_a": 3, "only_b": 1, "both_wrong": 1,
        "only_in_a": 2, "only_in_b": 2, "accuracy_a": 0.75, "accuracy_b": 0.5, "difference": 0.25, "mcnemar_p": p}
    assert pair["difference_ci95"] == list(ci) and ci[0] < 0.25 < ci[1]
    assert other == {"a": "run_a", "b": "run_other", "paired": False, "reason": "problems other vs problems heldout"}
    assert f"{tmp_path / 'cmp' / 'compare.json'}" in res.output

    items = runs / "run_b" / "items.jsonl"
    lines = items.read_text().splitlines()
    items.write_text("\n".join([lines[0], '{"id": "p3"', *lines[2:]]) + "\n")
    res = runner.invoke(app, ["eval", "compare", str(runs / "run_a"), str(runs / "run_b")])
    assert res.exit_code == 2 and f"error: {items}:2: not an item line with `id` and `correct`" in res.output
    items.unlink()
    res = runner.invoke(app, ["eval", "compare", str(runs / "run_a"), str(runs / "run_b")])
    assert res.exit_code == 2 and f"error: {items} is missing" in res.output


def test_published_mathvista_outputs_paired(benchmarks_dir):
    """Multimodal Bard (348/1000) against GPT-4 2-shot CoT with OCR (321/1000) on MathVista testmini."""
    results = benchmarks_dir / "mathvista" / "results"
    bard, gpt4 = results / "bard" / "output_bard.json", results / "gpt4" / "output_gpt4_2shot_solution_use_ocr.json"
    if not (bard.exists() and gpt4.exists()):
        pytest.skip(f"published MathVista outputs not available under {results} (set SRPO_DATA_DIR)")
    a = {pid: item["true_false"] for pid, item in json.loads(bard.read_text()).items()}
    b = {pid: item["true_false"] for pid, item in json.loads(gpt4.read_text()).items()}
    summary = paired_summary(a, b)
    right_a, right_b = {pid for pid, ok in a.items() if ok}, {pid for pid, ok in b.items() if ok}
    assert json.loads((results / "bard" / "scores_bard.json").read_text())["average"]["correct"] == len(right_a) == 348
    assert json.loads((results / "gpt4" / "scores_gpt4_2shot_solution_use_ocr.json").read_text())["average"][
        "correct"] == len(right_b) == 321
    expected = {"n_common": 1000, "both_right": len(right_a & right_b), "only_a": len(right_a - right_b),
                "only_b": len(right_b - right_a), "both_wrong": len(a.keys() - right_a - right_b)}
    assert expected == {"n_common": 1000, "both_right": 173, "only_a": 175, "only_b": 148, "both_wrong": 504}
    assert {k: summary[k] for k in expected} == expected
    assert summary["difference"] == pytest.approx(0.027)
    assert summary["mcnemar_p"] == pytest.approx(binomial_two_sided(175, 148), rel=1e-12)
    assert round(summary["mcnemar_p"], 4) == 0.1479  # not significant at 5%
    low, high = summary["difference_ci95"]
    assert low < 0 < 0.027 < high  # the interval crosses 0, as the p-value says
