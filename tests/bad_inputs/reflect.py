"""`srpo reflect` settings that cannot work: each stops before any model is loaded or any request is made."""

from bad_inputs import BadInput, Workspace

DEAD_URL = "http://127.0.0.1:9/v1"  # nothing listens there: a request would fail differently


def reflect(ws: Workspace, *extra) -> list:
    return ["reflect", "--problems", ws.problems, "--policy", ws.model, "--out", ws.tmp / "out", *extra]


CASES = [
    BadInput("reflect-right-fraction-over-one", lambda ws: reflect(ws, "--right_fraction", "2"),
             r"right_fraction = 2\.0: must be between 0 and 1 .*or null to keep the natural mix"),
    BadInput("reflect-concurrency-zero", lambda ws: reflect(ws, "--concurrency", "0"),
             r"concurrency = 0: must be at least 1"),
    BadInput("reflect-batch-size-zero", lambda ws: reflect(ws, "--batch-size", "0"),
             r"batch_size = 0: must be at least 1"),
    BadInput("reflect-negative-retries", lambda ws: reflect(ws, "--max-retries", "-1"),
             r"max_retries = -1: must be 0 or more"),
    BadInput("reflect-negative-limit", lambda ws: reflect(ws, "--limit", "-3"),
             r"limit = -3: must be at least 1 \(use the first N problems\), or null for all"),
    BadInput("reflect-negative-temperature", lambda ws: reflect(ws, "--attempt-temperature", "-0.5"),
             r"attempt_temperature = -0\.5: must be 0 \(greedy\) or more"),
    BadInput("reflect-min-over-max-chars", lambda ws: reflect(ws, "--min-reasoning-chars", "50", "--max-reasoning-chars", "10"),
             r"min_reasoning_chars = 50: must be from 0 to max_reasoning_chars = 10"),
    BadInput("reflect-zero-max-examples", lambda ws: reflect(ws, "--max-examples", "0"),
             r"max_examples = 0: must be at least 1, or null for no cap"),
    BadInput("reflect-unknown-target-shape", lambda ws: reflect(ws, "--target-shape", "full"),
             r"target_shape = 'full': must be one of \('sft', 'five_block'\)"),
    BadInput("reflect-unknown-system-prompt", lambda ws: reflect(ws, "--system-prompt", "chatty"),
             r"system_prompt = 'chatty': must be one of \['attempt', .*, or empty for none"),
    BadInput("reflect-teacher-neither-oracle-nor-url", lambda ws: reflect(ws, "--teacher", "o4-mini"),
             r"teacher = 'o4-mini': use 'oracle' or the http\(s\) URL of an OpenAI-compatible server"),
    BadInput("reflect-teacher-prompt-missing", lambda ws: reflect(ws, "--teacher", DEAD_URL, "--teacher-prompt", ws.tmp / "nope.txt"),
             r"teacher_prompt: template file .*nope\.txt not found"),
    BadInput("reflect-teacher-prompt-without-placeholders", lambda ws: reflect(ws, "--teacher", DEAD_URL, "--teacher-prompt", ws.write("t.txt", "Review the attempt.")),
             r"teacher_prompt .*t\.txt: lacks \{question\}, \{reference_answer\}, one of \{reasoning\}/\{response\}/"),
    BadInput("reflect-out-is-a-file", lambda ws: ["reflect", "--problems", ws.problems, "--policy", ws.model, "--out", ws.write("out", "x")],
             r"out .*out is an existing file, not a folder"),
    BadInput("reflect-url-credentials-and-a-key", lambda ws: reflect(ws, "--teacher", "http://me:hunter2@127.0.0.1:9/v1"),
             r"^(?!.*hunter2)error: teacher: http://127\.0\.0\.1:9/v1: the URL carries a user name and password .*one Authorization header.*--teacher-api-key-env ''",
             env={"OPENAI_API_KEY": "sk-set-elsewhere"}),
    BadInput("reflect-key-instead-of-its-variable", lambda ws: reflect(ws, "--teacher", DEAD_URL, "--teacher-api-key-env", "sk-live-0123456789abcdef"),
             r"^(?!.*sk-live)error: teacher: .*--teacher-api-key-env must name an environment variable"),
    BadInput("reflect-port-out-of-range", lambda ws: reflect(ws, "--policy", "http://127.0.0.1:70000/v1"),
             r"policy: http://127\.0\.0\.1:70000/v1: the port is not a number from 1 to 65535"),
    BadInput("reflect-chat-completions-url", lambda ws: reflect(ws, "--teacher", DEAD_URL + "/chat/completions"),
             r"teacher: .*pass the API's base URL \(e\.g\. \.\.\./v1\), not its /chat/completions endpoint"),
    BadInput("reflect-extra-body-sets-the-model", lambda ws: reflect(ws, "--teacher", DEAD_URL, "--teacher-extra-body", '{"model": "x"}'),
             r"teacher_extra_body: \['model'\] are set by srpo"),
    BadInput("reflect-missing-local-policy", lambda ws: ["reflect", "--problems", ws.problems, "--policy", ws.tmp / "no-model", "--out", ws.tmp / "out"],
             r"model path '.*no-model' does not exist"),
]
