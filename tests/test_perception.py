"""The perception reward (docs/method.md#perception): r_v from the oracle and from a loopback judge, the repetition
penalty, the judge's tag parsing, its cache, health counters and failure policy, the presets, and a GRPO run on
the tiny model against a judge that fails in every way it can."""

import asyncio
import math
import json
import sys
from pathlib import Path

import pytest

from srpo.config import ConfigError, SRPOGRPOConfig
from srpo.errors import InvalidValue, UserError
from srpo.perception import (
    JUDGE_PROMPT_TEMPLATE,
    UnparsableJudgement,
    check_judge_template,
    parse_judge_marks,
    repetition_penalty,
)
from srpo.perception_judge import OracleJudge, PerceptionJudge, build_judge
from srpo.rewards import PRESET_TERMS, max_total, min_total, reward_functions, reward_weights, score_response

sys.path.insert(0, str(Path(__file__).parent))
from fake_openai_server import FakeOpenAIServer  # noqa: E402

FACTS = ["AB = 3", "the circle is red", "there are 4 squares"]
RIGHT = "<think>\nThe circle is red. AB = 3, so the answer is 3.\n</think>\n<answer>\n$\\boxed{3}$\n</answer>"


def judged(judge, facts, responses):
    async def run():
        try:
            return await judge.score(facts, responses)
        finally:
            await judge.aclose()

    return asyncio.run(run())


# ---- r_v with the oracle -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("response, r_v", [
    ("AB = 3 and THE  circle is red; there are 4 squares.", 1.0),  # case and whitespace do not matter
    ("I see a blue triangle.", 0.0),
    (RIGHT, 2 / 3),  # two of three facts stated
])
def test_oracle_r_v_is_the_share_of_facts_stated(response, r_v):
    assert judged(OracleJudge(), [FACTS], [response]).scores == [pytest.approx(r_v)]


def test_oracle_ignores_punctuation_around_a_fact():
    assert judged(OracleJudge(), [["The circle is red."]], ["so the circle is red, and"]).marks == [[1]]


def test_perception_preset_total_is_the_released_formula():
    b = score_response(RIGHT, "3", preset="perception", visual_score=2 / 3)
    assert (b.accuracy, b.format, b.repetition) == (0.9, 0.1, 0.0)
    assert b.perception == pytest.approx(0.7 * 2 / 3)
    assert b.total == pytest.approx(0.9 + 0.1 + 0.7 * 2 / 3)
    # The released format wants newlines inside the tags and a \boxed{} answer.
    assert score_response("<think>x</think><answer>3</answer>", "3", preset="perception").format == 0.0


def test_srpo_plus_perception_adds_the_term_to_the_paper_preset():
    paper = score_response(RIGHT, "3", preset="paper")
    both = score_response(RIGHT, "3", preset="srpo+perception", visual_score=1.0, perception_weight=0.5)
    assert both.total == pytest.approx(paper.total + 0.5)
    assert PRESET_TERMS["srpo+perception"] == PRESET_TERMS["paper"] + ("perception", "repetition")
    assert (max_total("perception"), max_total("srpo+perception")) == (pytest.approx(1.7), pytest.approx(2.55))
    assert (min_total("perception"), min_total("srpo+perception")) == (-2.0, -2.25)


def test_a_row_without_facts_has_no_perception_term():
    b = score_response(RIGHT, "3", preset="perception")
    assert b.perception is None and b.total == pytest.approx(1.0)
    assert judged(OracleJudge(), [None, []], [RIGHT, RIGHT]).scores == [None, None]


@pytest.mark.parametrize("preset", ["perception", "srpo+perception"])
def test_trl_functions_add_up_to_the_total(preset):
    texts = [RIGHT, "AB = 3 " + "again and again " * 12, RIGHT]
    facts = [FACTS, FACTS, None]
    functions = reward_functions(preset, judge=OracleJudge())
    assert [f.__name__ for f in functions] == [f"{term}_reward" for term in PRESET_TERMS[preset]]
    kwargs = dict(prompts=[""] * 3, completions=texts, answer=["3"] * 3, visual_facts=facts)
    columns = [asyncio.run(f(**kwargs)) if asyncio.iscoroutinefunction(f) else f(**kwargs) for f in functions]
    for i, (text, r_v) in enumerate(zip(texts, [2 / 3, 1 / 3, None])):
        expected = score_response(text, "3", preset=preset, visual_score=r_v)
        assert sum(column[i] or 0.0 for column in columns) == pytest.approx(expected.total)
    assert columns[-2] == [pytest.approx(0.7 * 2 / 3), pytest.approx(0.7 / 3), None]  # perception_reward
    assert columns[-1][1] < 0  # repetition_reward


# ---- repetition --------------------------------------------------------------------------------------------------

def test_repetition_penalty_counts_repeated_word_20_grams():
    words = [f"w{i}" for i in range(20)]
    assert repetition_penalty(" ".join(words[:19])) == 0.0  # 19 words: too short
    assert repetition_penalty(" ".join(words + ["x"] * 5)) == 0.0  # no 20-gram twice
    # 40 words = one 20-gram said twice: 21 n-grams, 20 distinct (case does not matter).
    assert repetition_penalty(" ".join(words) + " " + " ".join(words).upper()) == pytest.approx(-2 * (1 - 20 / 21))
    assert repetition_penalty("a " * 100) == pytest.approx(-2 * (1 - 1 / 81))


# ---- the judge's tags --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, marks", [
    ("<info1>1</info1>, <info2>0</info2>, <info3>1</info3>", [1, 0, 1]),
    ("<info3>1</info3>\n<info1>0</info1>\n<info2>1</info2>", [0, 1, 1]),  # out of order
    ("<info1>1</info1><info2>1</info2><info3>0</info3><info4>1</info4>", [1, 1, 0]),  # extra tag ignored
    ("<INFO1> 1 </INFO1> <info2>0.0</info2> <info3>1.0</info3>", [1, 0, 1]),
    ("Facts: <info1>AB = 3</info1> <info2>x</info2> <info3>y</info3>. Marks: <info1>1</info1> <info2>0</info2> "
     "<info3>0</info3>", [1, 0, 0]),  # the facts repeated first: the last tag of each number wins
])
def test_judge_marks_are_read_by_number(text, marks):
    assert parse_judge_marks(text, 3) == marks


@pytest.mark.parametrize("text, why", [
    ("<info1>1</info1>, <info3>1</info3>", r"no mark for fact\(s\) \[2\] of 3"),  # missing
    ("<info1>1</info1>, <info2>yes</info2>, <info3>1</info3>", "mark of fact 2 is 'yes'"),  # malformed value
    ("<info1>1</info1>, <info2>0.5</info2>, <info3>1</info3>", "mark of fact 2 is '0.5'"),
    ("<info1>1</info2> <info2>1 <info3>1</info3>", r"no mark for fact\(s\) \[1, 2\]"),  # malformed tags
    ("All facts are stated.", r"no mark for fact\(s\) \[1, 2, 3\]"),
])
def test_an_unparsable_judgement_is_a_failure_not_a_zero(text, why):
    with pytest.raises(UnparsableJudgement, match=why):
        parse_judge_marks(text, 3)


def test_judge_template_placeholders_are_checked(tmp_path):
    check_judge_template(JUDGE_PROMPT_TEMPLATE)
    with pytest.raises(InvalidValue, match=r"lacks \{response\}"):
        check_judge_template("Facts: {facts}")
    with pytest.raises(InvalidValue, match=r"unknown placeholder\(s\) \['answer'\]"):
        check_judge_template("{facts} {response} {answer}")
    (tmp_path / "judge.txt").write_text("Facts {facts}\nText {response}\n")
    assert build_judge("http://127.0.0.1:9/v1", prompt=str(tmp_path / "judge.txt")).template.startswith("Facts")


# ---- the judge against the loopback server -----------------------------------------------------------------------

@pytest.fixture
def judge_server():
    with FakeOpenAIServer() as server:
        yield server


def perception_reward(judge, weight=0.7):
    functions = reward_functions("srpo+perception", judge=judge, perception_weight=weight)
    (function,) = [f for f in functions if f.__name__ == "perception_reward"]
    assert asyncio.iscoroutinefunction(function)
    return function


def call(function, completions, facts):
    logged = {}

    async def run():
        return await function(prompts=[""] * len(completions), completions=completions, visual_facts=facts,
                              log_metric=logged.__setitem__)

    return asyncio.run(run()), logged


def test_judge_marks_move_r_v_exactly(judge_server):
    judge = PerceptionJudge(judge_server.url, "fake")
    function = perception_reward(judge, weight=0.7)
    four = ["f1", "f2", "f3", "f4"]
    responses = ["[id=a marks=1,1,1,1]", "[id=b marks=0,0,0,0]", "[id=c marks=1,0,1,0]", "[id=d]", "no facts"]
    rewards, logged = call(function, responses, [four, four, four, four[:3], None])
    assert rewards == [pytest.approx(0.7), 0.0, pytest.approx(0.35), pytest.approx(0.7), None]
    assert logged["judge/requests"] == 4 and logged["judge/failures"] == 0 and logged["judge/cache_hits"] == 0
    assert logged["judge/latency_s"] > 0
    request = judge_server.requests("judge")[0]
    assert (request["temperature"], request["model"]) == (0.0, "fake")


def test_identical_pairs_are_requested_once(judge_server):
    judge = PerceptionJudge(judge_server.url, "fake")
    function = perception_reward(judge)
    rewards, logged = call(function, ["[id=a]", "[id=a]", "[id=b]"], [FACTS, FACTS, FACTS])
    assert (logged["judge/requests"], logged["judge/cache_hits"]) == (2, 1)
    rewards_again, logged = call(function, ["[id=a]", "[id=b]"], [FACTS, FACTS])  # a later step: from the cache
    assert (logged["judge/requests"], logged["judge/cache_hits"]) == (0, 2)
    assert rewards_again == rewards[1:] == [pytest.approx(0.7)] * 2
    assert len(judge_server.requests("judge")) == 2


@pytest.mark.parametrize("failure, expected", [("skip", None), ("zero", 0.0)])
def test_failure_policy_skip_or_zero_and_counted(judge_server, failure, expected):
    judge_server.set_faults({"judge:bad": ["garbled"], "judge:busy": ["429", "ok"]})
    judge = PerceptionJudge(judge_server.url, "fake", max_retries=1, backoff_base=0.01, failure=failure)
    rewards, logged = call(perception_reward(judge), ["[id=bad]", "[id=busy]", "[id=ok]"], [FACTS] * 3)
    assert rewards == [expected, pytest.approx(0.7), pytest.approx(0.7)]
    assert (logged["judge/requests"], logged["judge/failures"], logged["judge/retries"]) == (3, 1, 2)
    assert [r["fault"] for r in judge_server.requests("judge") if r["id"] == "bad"] == ["garbled", "garbled"]


def test_a_judge_that_is_down_never_raises(judge_server):
    port = judge_server.port
    judge_server.stop()
    judge = PerceptionJudge(f"http://127.0.0.1:{port}/v1", "", max_retries=0)  # no model: resolving it fails too
    rewards, logged = call(perception_reward(judge), ["x", "y"], [FACTS, FACTS])
    assert rewards == [None, None] and logged["judge/failures"] == 2


# ---- configuration -----------------------------------------------------------------------------------------------

def rl_keys(tmp_path, **kw):
    base = dict(model_name_or_path="m", dataset="d", output_dir=str(tmp_path / "rl"), report_to=[])
    return {**base, **kw}


def test_config_refuses_a_perception_preset_without_a_working_judge(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"^judge: not set, and preset 'srpo\+perception' needs a judge"):
        SRPOGRPOConfig(**rl_keys(tmp_path, preset="srpo+perception"))
    with pytest.raises(ConfigError, match=r"^judge: 'gpt' is neither oracle nor an http\(s\) URL"):
        SRPOGRPOConfig(**rl_keys(tmp_path, preset="perception", judge="gpt"))
    with pytest.raises(ConfigError, match=r"^judge: http://host:99999/v1: the port is not a number"):
        SRPOGRPOConfig(**rl_keys(tmp_path, preset="perception", judge="http://host:99999/v1"))
    monkeypatch.delenv("SRPO_TEST_JUDGE_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"^judge_api_key_env: \$SRPO_TEST_JUDGE_KEY is not set"):
        SRPOGRPOConfig(**rl_keys(tmp_path, preset="perception", judge="http://localhost:8000/v1",
                                 judge_api_key_env="SRPO_TEST_JUDGE_KEY"))
    with pytest.raises(ConfigError, match=r"^judge_prompt: template file .*nope.txt not found"):
        SRPOGRPOConfig(**rl_keys(tmp_path, preset="perception", judge="oracle", judge_prompt=str(tmp_path / "nope.txt")))
    with pytest.raises(ConfigError, match=r"^judge_failure: 'retry' is unknown"):
        SRPOGRPOConfig(**rl_keys(tmp_path, preset="perception", judge="oracle", judge_failure="retry"))
    cfg = SRPOGRPOConfig(**rl_keys(tmp_path, preset="srpo+perception", judge="oracle"))
    assert cfg.reward_weights == reward_weights("srpo+perception") == [1.0] * 7
    assert isinstance(ConfigError("x"), UserError)


# ---- srpo score --------------------------------------------------------------------------------------------------

def test_srpo_score_prints_perception_and_repetition(tmp_path):
    from typer.testing import CliRunner

    from srpo.cli import app

    (tmp_path / "facts.json").write_text(json.dumps(FACTS))
    result = CliRunner().invoke(app, ["score", RIGHT, "3", "--preset", "perception", "--facts",
                                      str(tmp_path / "facts.json")])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["visual_marks"] == [1, 1, 0] and out["perception"] == pytest.approx(0.7 * 2 / 3)
    assert out["repetition"] == 0.0 and out["total"] == pytest.approx(1.0 + 0.7 * 2 / 3)
    bad = CliRunner().invoke(app, ["score", RIGHT, "3", "--preset", "perception", "--facts", "[1]"])
    assert bad.exit_code == 2 and "--facts: expected a JSON list of non-empty strings" in bad.output


# ---- a GRPO run against a failing judge --------------------------------------------------------------------------

@pytest.mark.slow
def test_grpo_with_srpo_plus_perception_survives_every_judge_fault(tiny_model_dir, tmp_path):
    from srpo.data import generate_problems, save_problems
    from srpo.train.rl import build_rl_trainer

    problems = generate_problems(4, seed=3, difficulty=1, image_size=56)
    for problem in problems:
        problem.visual_facts = ["the shape is red", "there are 3 shapes"]
    problems_file = save_problems(problems, tmp_path / "problems.jsonl")
    # Each of the first five judge requests fails its own way; with no retries each is a failed sample.
    faults = {"*": ["429", "500", "drop", "hang", "garbled", "ok"]}
    with FakeOpenAIServer(faults=faults, retry_after="0") as server:
        cfg = SRPOGRPOConfig(
            model_name_or_path=str(tiny_model_dir), dataset=str(problems_file), output_dir=str(tmp_path / "rl"),
            num_generations=4, prompts_per_generation=2, optimizer_batch_size=8, per_device_train_batch_size=8,
            max_completion_length=12, max_steps=2, learning_rate=1e-5, report_to=[], save_steps=100, logging_steps=1,
            max_prompt_length=512, preset="srpo+perception", judge=server.url, judge_model="fake",
            judge_timeout=1.0, judge_max_retries=0)
        trainer = build_rl_trainer(cfg)
        trainer.train()
        judged_faults = [r["fault"] for r in server.requests("judge")]
    steps = [h for h in trainer.state.log_history if "judge/failures" in h]
    assert [h["step"] for h in steps] == [1, 2]
    assert [h["judge/failures"] for h in steps] == [5, 0]
    assert all(h["judge/requests"] + h["judge/cache_hits"] == 8 for h in steps)
    assert sorted(judged_faults[:8]) == sorted(["429", "500", "drop", "hang", "garbled", "ok", "ok", "ok"])
    # Three of eight samples were judged in step 1 (all facts marked 1: 0.7 each); the failed ones are left out.
    assert steps[0]["rewards/perception_reward/mean"] == pytest.approx(0.7)
    assert "rewards/repetition_reward/mean" in steps[0]


@pytest.mark.slow
def test_a_failed_judgement_is_left_out_of_the_advantage(tiny_model_dir, tmp_path):
    """judge_failure: skip. TRL would add a None term as 0, which ranks the sample as if it stated no fact; srpo gives
    it the group's mean of the term, so the term moves no advantage of that sample. A group without facts keeps None."""
    from srpo.data import generate_problems, save_problems
    from srpo.train.rl import build_rl_trainer

    problems_file = save_problems(generate_problems(2, seed=3, difficulty=1, image_size=56), tmp_path / "p.jsonl")
    with FakeOpenAIServer(faults={"judge:bad": ["garbled"]}) as server:
        cfg = SRPOGRPOConfig(
            model_name_or_path=str(tiny_model_dir), dataset=str(problems_file), output_dir=str(tmp_path / "rl"),
            num_generations=4, prompts_per_generation=2, optimizer_batch_size=8, per_device_train_batch_size=8,
            max_completion_length=12, max_steps=1, report_to=[], max_prompt_length=512, preset="srpo+perception",
            judge=server.url, judge_model="fake", judge_max_retries=0, judge_failure="skip")
        trainer = build_rl_trainer(cfg)
        texts = ["[id=a marks=1,1]", "[id=b marks=0,0]", "[id=bad]", "[id=d marks=1,0]"] + ["no facts"] * 4
        facts = [["f1", "f2"]] * 4 + [None] * 4
        inputs = [{"answer": "3", "choices": None, "visual_facts": f, "prompt": []} for f in facts]
        rewards = trainer._calculate_rewards(inputs, [[]] * 8, [[{"role": "assistant", "content": t}] for t in texts],
                                             [[1]] * 8)
    perception = rewards[:, trainer.reward_func_names.index("perception_reward")].tolist()
    assert perception[:4] == pytest.approx([0.7, 0.0, 0.35, 0.35])  # the failed sample: the mean of 0.7, 0, 0.35
    assert all(math.isnan(v) for v in perception[4:])
