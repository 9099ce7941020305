"""Plots and Markdown for runs: reward terms over steps, accuracy per stage, reflection transitions."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on training machines
import matplotlib.pyplot as plt  # noqa: E402

from srpo.errors import MissingPath  # noqa: E402
from srpo.eval.metrics import TRANSITIONS  # noqa: E402
from srpo.files import save_figure  # noqa: E402


def load_log_history(run_dir: str | Path) -> list[dict]:
    """The log history of a TRL run: `trainer_state.json` of the newest complete checkpoint in `run_dir` (TRL writes
    one with every checkpoint), or `run_dir/trainer_state.json` itself."""
    from srpo.train.checkpoints import newest_complete_checkpoint

    run_dir = Path(run_dir)
    newest, _ = newest_complete_checkpoint(run_dir)
    path = Path(newest or run_dir) / "trainer_state.json"
    if not path.exists():
        raise MissingPath(f"{run_dir}: no checkpoint-*/trainer_state.json (is it a `srpo rl` output_dir?)")
    return json.loads(path.read_text()).get("log_history", [])


def reward_history(log_history: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """Per-step series of every logged reward term, transition rate and accuracy from a TRL log history."""
    series: dict[str, list[tuple[int, float]]] = {}
    for entry in log_history:
        step = entry.get("step")
        for key, value in entry.items():
            if key.startswith(("rewards/", "transitions/", "accuracy/", "filter/")) or key == "reward":
                if key.endswith("/std"):
                    continue
                series.setdefault(key, []).append((step, float(value)))
    return series


def plot_training(histories: dict[str, list[dict]], out_dir: str | Path) -> list[Path]:
    """Reward terms and transition rates over steps, one panel per run (`{name: log_history}`), as PNGs."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    series = {name: reward_history(log) for name, log in histories.items()}
    return [plot_reward_terms(series, out_dir / "reward_terms.png"),
            plot_transitions_over_steps(series, out_dir / "transitions_over_steps.png")]


def plot_reward_terms(histories: dict[str, dict[str, list]], path: Path) -> Path:
    """One panel per run: every reward term's mean over training steps."""
    return _plot_series(histories, ("rewards/", "reward"), "reward terms", path)


def plot_transitions_over_steps(histories: dict[str, dict[str, list]], path: Path) -> Path:
    return _plot_series(histories, ("transitions/",), "transitions per step", path)


def _plot_series(histories: dict[str, dict[str, list]], prefixes: tuple[str, ...], title: str, path: Path) -> Path:
    fig, axes = plt.subplots(1, len(histories), figsize=(6 * len(histories), 4), squeeze=False)
    for ax, (run, series) in zip(axes[0], histories.items()):
        for key, points in sorted(series.items()):
            if key.startswith(prefixes):
                steps, values = zip(*points)
                label = key.split("/")[1] if "/" in key else key
                ax.plot(steps, values, label=label)
        ax.set_title(f"{run}: {title}")
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


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
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


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
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def stage_table(stages: dict[str, dict]) -> str:
    columns = [
        ("final acc %", "final_accuracy", 100),
        ("first acc %", "first_accuracy", 100),
        ("format %", "format_rate", 100),
        ("reflect %", "reflection_rate", 100),
        ("w->r %", "wrong_to_right", 100),
        ("r->r %", "right_to_right", 100),
        ("r->w %", "right_to_wrong", 100),
        ("w->w %", "wrong_to_wrong", 100),
        ("resp tok", "mean_response_tokens", 1),
        ("refl tok", "mean_reflection_tokens", 1),
    ]
    lines = ["| stage | " + " | ".join(c[0] for c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, metrics in stages.items():
        cells = [f"{metrics[key] * scale:.1f}" for _, key, scale in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
