"""Evaluation: reflection metrics (metrics), local evaluation (local) and benchmark scorers (scoring)."""

from srpo.eval.scoring import ScoreResult, rescore

__all__ = ["ScoreResult", "rescore"]
