"""`srpo score`: the reward preset."""

from bad_inputs import BadInput

CASES = [
    BadInput("rewards-score-unknown-preset", lambda ws: ["score", "<answer>5</answer>", "5", "--preset", "papr"],
             r"unknown reward preset 'papr'; valid presets: paper, reference, grpo"),
]
