"""Evaluation: the benchmarks (benchmarks/, one module each: loader, prompt, output format and official scorer), the
`srpo eval` run (driver), the scored items and reflection metrics (metrics), and the reports (report)."""
