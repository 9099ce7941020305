"""Plots comparing stages: accuracy per stage, reflection transitions (the stage table:
srpo.eval.report.reflection_table; training-time curves: srpo.train.callbacks)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on training machines
import matplotlib.pyplot as plt  # noqa: E402

from srpo.files import save_figure  # noqa: E402
from srpo.rewards import TRANSITIONS  # noqa: E402


def plot_accuracy_per_stage(stages: dict[str, dict], path: Path) -> Path:
    names = list(stages)
    first = [100 * stages[n]["first_accuracy"] for n in names]
    final = [100 * stages[n]["final_accuracy"] for n in names]
    x = range(len(names))
    fig, ax = plt.subplots(figsize=(1.8 * len(names) + 2, 4))
    ax.bar([i - 0.2 for i in x], first, width=0.4, label="first answer")
    ax.bar([i + 0.2 for i in x], final, width=0.4, label="final answer")
    for i, value in enumerate(final):
        ax.text(i + 0.2, value + 0.5, f"{value:.1f}", ha="center", fontsize=8)
    ax.set_xticks(list(x), names)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Held-out accuracy per stage")
    ax.legend()
    return save_figure(fig, path, dpi=110)


def plot_transitions(stages: dict[str, dict], path: Path) -> Path:
    names = list(stages)
    fig, ax = plt.subplots(figsize=(1.8 * len(names) + 2, 4))
    bottom = [0.0] * len(names)
    for name in TRANSITIONS:
        values = [100 * stages[n][name] for n in names]
        ax.bar(names, values, bottom=bottom, label=name.replace("_", " "))
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_ylabel("% of held-out problems")
    ax.set_title("First -> final answer transitions")
    ax.legend(fontsize=8)
    return save_figure(fig, path, dpi=110)
