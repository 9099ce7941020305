"""Training-time side effects as TRL/transformers callbacks: the reward-term and transition plots of a GRPO run,
drawn from its log history when training ends (and by `srpo plot` from a run's newest checkpoint)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on training machines
import matplotlib.pyplot as plt  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from srpo.errors import MissingPath  # noqa: E402
from srpo.files import save_figure  # noqa: E402
from srpo.train.checkpoints import newest_complete_checkpoint  # noqa: E402

logger = logging.getLogger(__name__)


class PlotTrainingCallback(TrainerCallback):
    """At the end of training, `output_dir/plots/`: every reward term and transition rate over the steps."""

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            run = Path(args.output_dir)
            plots = plot_training({run.name: state.log_history}, run / "plots")
            logger.info("reward and transition plots: %s", ", ".join(str(p) for p in plots))


def load_log_history(run_dir: str | Path) -> list[dict]:
    """The log history of a TRL run: `trainer_state.json` of the newest complete checkpoint in `run_dir` (TRL writes
    one with every checkpoint), or `run_dir/trainer_state.json` itself."""
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
    return save_figure(fig, path, dpi=110)
