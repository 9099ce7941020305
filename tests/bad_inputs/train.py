"""`srpo sft` / `srpo rl`: configs, TRL-side values, output folders."""

from bad_inputs import BadInput

CASES = [
    BadInput("sft-unknown-config-key", lambda ws: ["sft", "--config", ws.write("c.yaml", "learning_rat: 1\n")],
             r"c\.yaml: unknown key 'learning_rat'"),
]
