"""The endpoint client against a real loopback HTTP server that injects faults (tests/fake_openai_server.py)."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import io
import json
import logging
import time
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from fake_openai_server import FakeOpenAIServer, reflection_for
from srpo.config import ReflectConfig
from srpo.data import Problem
from srpo.errors import InvalidValue, UserError
from srpo.prompts import TEACHER_PROMPT_TEMPLATE
from srpo.endpoint import (
    ChatEndpoint,
    EndpointFatalError,
    MalformedReply,
    RequestFailed,
    RetryPolicy,
    chat_messages,
    env_proxy,
    image_data_url,
    parse_endpoint,
    redact_url,
    retry_after_seconds,
    run_concurrently,
)
from srpo.reflect.remote import EndpointTeacher, check_template, load_teacher_template, parse_reflection
from srpo.reflect.teachers import Attempt

SECRET = "sk-test-DO-NOT-LEAK-4f1c9e"


# ---- reply parsing --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        '{"reflection": "Check the count."}',
        '```json\n{"reflection": "Check the count."}\n```',
        'Sure, here it is:\n```\n{"reflection": "Check the count."}\n```\nHope it helps.',
        'My review: {"reflection": "Check the count."} -- end',
        '<think>hmm {"draft": 1}</think>{"reflection": "Check the count."}',
        '{"note": "x"} then {"reflection": "Check the count."}',
        '  {"reflection": "  Check the count.  "}  ',
    ],
)
def test_parse_reflection_finds_the_json_robustly(content):
    assert parse_reflection(content) == "Check the count."


@pytest.mark.parametrize(
    "content, reason",
    [
        ("", "empty reply"),
        (None, "empty reply"),
        ("The attempt is fine.", "not JSON"),
        ('{"reflection": "unterminated', "not JSON"),
        ('{"critique": "x"}', "missing 'reflection'"),
        ('["reflection"]', "missing 'reflection'"),
        ('{"reflection": "   "}', "empty reflection"),
        ('{"reflection": null}', "empty reflection"),
        ('{"reflection": 42}', "not a string"),
    ],
)
def test_parse_reflection_names_the_problem(content, reason):
    with pytest.raises(MalformedReply, match=reason):
        parse_reflection(content)


@settings(max_examples=200, deadline=None)
@given(st.text() | st.builds(lambda t: '{"reflection": ' + t, st.text()) | st.builds(json.dumps, st.dictionaries(
    st.sampled_from(["reflection", "x"]), st.none() | st.text() | st.integers() | st.lists(st.text()))))
def test_parse_reflection_returns_text_or_raises_malformed_only(content):
    try:
        result = parse_reflection(content)
    except MalformedReply:
        return
    assert isinstance(result, str) and result.strip() == result and result


# ---- backoff ----------------------------------------------------------------------------------------------------


def test_backoff_is_exponential_capped_and_jittered():
    policy = RetryPolicy(backoff_base=1.0, backoff_max=10.0, seed=0)
    for attempt, cap in [(0, 1), (1, 2), (2, 4), (3, 8), (4, 10), (9, 10)]:
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(cap * 0.5 <= d <= cap for d in delays)
        assert max(delays) - min(delays) > 0.2 * cap  # jitter spreads retries
    assert RetryPolicy(seed=1).delay(3) == RetryPolicy(seed=1).delay(3)  # seeded: reproducible


def test_retry_after_is_honoured_and_parsed_in_all_forms():
    policy = RetryPolicy(backoff_base=0.001, retry_after_max=100, seed=0)
    assert 7.0 <= policy.delay(0, retry_after=7.0) <= 7.7
    assert policy.delay(0, retry_after=1e6) <= 110  # capped
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    assert retry_after_seconds({"retry-after": "0.5"}) == 0.5
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= retry_after_seconds({"retry-after": future}) <= 31
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_images_become_png_data_urls_and_can_be_downscaled():
    url = image_data_url(Image.new("RGB", (64, 32), "red"))
    assert url.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert image.size == (64, 32)
    small = Image.open(io.BytesIO(base64.b64decode(image_data_url(Image.new("RGB", (400, 100)), 10000).split(",")[1])))
    assert small.width * small.height <= 10000 and abs(small.width / small.height - 4) < 0.1


def test_stored_images_are_sent_as_stored_unless_too_big():
    buffer = io.BytesIO()
    Image.new("RGB", (400, 100), "red").save(buffer, format="JPEG")
    jpeg = buffer.getvalue()
    assert image_data_url((jpeg, "image/jpeg")) == "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
    assert image_data_url((jpeg, "image/jpeg"), 40000) == image_data_url((jpeg, "image/jpeg"))
    small = image_data_url((jpeg, "image/jpeg"), 10000)
    assert small.startswith("data:image/png;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(small.split(",", 1)[1]))).size == (200, 50)


def test_messages_are_the_system_turn_then_images_then_text():
    image = Image.new("RGB", (20, 20), "green")
    system, user = chat_messages("q", [image, image], system="Be brief.")
    assert system == {"role": "system", "content": "Be brief."}
    assert user["role"] == "user" and [p["type"] for p in user["content"]] == ["image_url", "image_url", "text"]
    assert user["content"][0]["image_url"]["url"] == image_data_url(image) and user["content"][2]["text"] == "q"
    # a text-only turn is a plain string, which text-only servers accept too
    assert chat_messages("judge this") == [{"role": "user", "content": "judge this"}]


def test_redact_url_drops_credentials_and_query():
    assert redact_url("https://user:pw@api.example.com:8443/v1?key=abc#x") == "https://api.example.com:8443/v1"
    assert redact_url("oracle") == "oracle"


def test_teacher_template_placeholders_are_checked():
    check_template("Q {question} R {reasoning} A {predicted_answer} G {reference_answer} {{json}}")
    with pytest.raises(ValueError, match="unknown placeholder"):
        check_template("{question} {gold}")
    with pytest.raises(ValueError, match="valid template"):
        check_template("{question")
    with pytest.raises(ValueError, match=r"lacks \{question\}, \{reference_answer\}, "
                                         r"one of \{reasoning\}/\{response\}/\{predicted_answer\}; the teacher must see them$"):
        check_template("Please review the student's work.")
    with pytest.raises(ValueError, match=r"lacks \{reference_answer\}; the teacher must see"):
        check_template("{question} {response}")
    with pytest.raises(ValueError, match="cannot be filled in"):
        check_template("{question:d} {reasoning} {reference_answer}")


def test_a_template_file_that_cannot_be_read_is_named(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("Frage {question} {reasoning} {reference_answer} \xfc".encode("latin-1"))
    for path, message in [(tmp_path / "nope.txt", "nope.txt not found"), (tmp_path, "is a folder"),
                          (tmp_path / "latin1.txt", "latin1.txt is not UTF-8 text")]:
        with pytest.raises(UserError, match=message):
            load_teacher_template(str(path))


# ---- against the loopback server --------------------------------------------------------------------------------


@pytest.fixture
def server():
    with FakeOpenAIServer(latency=0.0, retry_after="0.05") as srv:
        yield srv


def problem(pid: str, answer: str = "3") -> Problem:
    return Problem(id=pid, question=f"[id={pid}] How many circles?", answer=answer,
                   images=[Image.new("RGB", (32, 32), "white")], answer_type="integer")


def attempt(pid: str, answer: str = "4") -> Attempt:
    return Attempt(pid, f"<think>I count {answer}</think><answer>{answer}</answer>", f"I count {answer}", answer,
                   answer == "3")


def teacher_cfg(url: str, **overrides) -> ReflectConfig:
    base = dict(teacher=url, teacher_model="judge", concurrency=4, backoff_base=0.01, backoff_max=0.05,
                max_retries=4, malformed_retries=2, request_timeout=5.0, progress=False)
    return ReflectConfig(**{**base, **overrides})


def reflect_many(cfg: ReflectConfig, ids: list[str]) -> dict[str, dict]:
    teacher = EndpointTeacher(cfg)
    records: dict[str, dict] = {}
    run_concurrently(teacher.endpoint, ids, lambda i: teacher.areflect(problem(i), attempt(i)), records.__setitem__,
                     progress=False)
    return records


def test_transient_faults_are_retried_until_the_reply_arrives(server):
    server.set_faults({
        "teacher:a": ["429", "ok"],
        "teacher:b": ["500", "503", "ok"],
        "teacher:c": ["drop", "ok"],
        "teacher:d": ["malformed_json", "ok"],
        "teacher:e": ["not_json", "ok"],
        "teacher:f": ["fenced"],
    })
    records = reflect_many(teacher_cfg(server.url), list("abcdefg"))
    for pid in "abcdefg":
        assert records[pid]["status"] == "ok", records[pid]
        assert records[pid]["reflection"] == reflection_for(pid)
    assert {pid: records[pid]["retries"] for pid in "abcdefg"} == {"a": 1, "b": 2, "c": 1, "d": 1, "e": 1, "f": 0,
                                                                   "g": 0}
    counts = {pid: len([r for r in server.requests("teacher") if r["id"] == pid]) for pid in "abcdefg"}
    assert counts == {"a": 2, "b": 3, "c": 2, "d": 2, "e": 2, "f": 1, "g": 1}
    # usage is summed over every reply that came back (the malformed one cost tokens too)
    assert records["e"]["usage"] == {"prompt_tokens": 200, "completion_tokens": 40}
    assert records["g"]["usage"] == {"prompt_tokens": 100, "completion_tokens": 20}


def test_retry_after_is_waited_for(server):
    server.retry_after = "0.4"
    server.set_faults({"teacher:a": ["429", "ok"]})
    reflect_many(teacher_cfg(server.url, backoff_base=0.001, backoff_max=0.001), ["a"])
    first, second = [r["t"] for r in server.requests("teacher")]
    assert second - first >= 0.4


def test_requests_go_through_the_proxy_named_in_the_environment(server, monkeypatch):
    # the fake server plays the HTTP proxy: a proxy receives the target's absolute URL (teacher.invalid never resolves)
    proxy = server.url.removesuffix("/v1").replace("http://", "http://proxy-user:p%40ss@")
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    records = reflect_many(teacher_cfg("http://teacher.invalid:8000/v1"), ["a"])
    assert records["a"]["status"] == "ok"
    (request,) = server.requests("teacher")
    assert request["path"] == "http://teacher.invalid:8000/v1/chat/completions"
    assert request["proxy_authorization"] == "Basic " + base64.b64encode(b"proxy-user:p@ss").decode()
    assert request["user_agent"].startswith("srpo/")
    monkeypatch.setenv("no_proxy", "localhost,teacher.invalid")
    assert env_proxy("http://teacher.invalid:8000/v1") is None
    assert env_proxy("https://api.example.com/v1") is None  # no HTTPS_PROXY set


@pytest.fixture(scope="module")
def self_signed_certificate(tmp_path_factory):
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return str(cert), str(key)


def test_https_checks_the_certificate_against_ssl_cert_file(self_signed_certificate, monkeypatch):
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    with FakeOpenAIServer(tls=self_signed_certificate) as srv:
        assert srv.url.startswith("https://")
        # an unknown certificate stops the run at once: retrying cannot fix it
        with pytest.raises(EndpointFatalError, match="TLS failed"):
            reflect_many(teacher_cfg(srv.url), ["a"])
        assert srv.requests() == []
        # the company-CA way: SSL_CERT_FILE names the bundle that signs the server's certificate
        monkeypatch.setenv("SSL_CERT_FILE", self_signed_certificate[0])
        records = reflect_many(teacher_cfg(srv.url), ["a", "b"])
        assert all(r["status"] == "ok" for r in records.values()) and len(srv.requests("teacher")) == 2


def test_timeouts_are_retried(server):
    server.set_faults({"teacher:a": ["hang", "ok"]})
    start = time.monotonic()
    records = reflect_many(teacher_cfg(server.url, request_timeout=0.3), ["a"])
    assert records["a"]["status"] == "ok" and records["a"]["retries"] == 1
    assert time.monotonic() - start < 5


@pytest.mark.parametrize(
    "fault, reason",
    [
        ("not_json", "malformed reply: not JSON"),
        ("no_reflection", "malformed reply: missing 'reflection'"),
        ("empty_reflection", "malformed reply: empty reflection"),
    ],
)
def test_malformed_replies_are_retried_up_to_the_limit_then_recorded(server, fault, reason):
    server.set_faults({"teacher:a": [fault]})
    records = reflect_many(teacher_cfg(server.url, malformed_retries=2), ["a", "b"])
    assert records["a"]["status"] == "failed" and records["a"]["reason"] == reason
    assert records["a"]["retries"] == 2
    assert len([r for r in server.requests("teacher") if r["id"] == "a"]) == 3
    assert records["b"]["status"] == "ok"


def test_a_200_whose_body_is_not_json_is_a_transport_fault_retried_with_backoff(server):
    server.set_faults({"teacher:a": ["malformed_json", "malformed_json", "ok"], "teacher:b": ["malformed_json"],
                       "teacher:c": ["no_reflection"]})
    # no malformed re-requests at all: only transport retries can save a and b
    cfg = teacher_cfg(server.url, max_retries=2, malformed_retries=0, backoff_base=0.2, backoff_max=0.2)
    records = reflect_many(cfg, ["a", "b", "c"])
    assert records["a"]["status"] == "ok" and records["a"]["retries"] == 2
    assert records["b"]["status"] == "failed"
    assert records["b"]["reason"].startswith("http 200 with a non-JSON body after 2 retries: {\"id\": \"x\"")
    # valid JSON without a usable answer is the model's fault: with malformed_retries=0 it fails at once
    assert records["c"]["status"] == "failed" and records["c"]["reason"] == "malformed reply: missing 'reflection'"
    requests = {pid: [r["t"] for r in server.requests("teacher") if r["id"] == pid] for pid in "abc"}
    assert {pid: len(times) for pid, times in requests.items()} == {"a": 3, "b": 3, "c": 1}
    gaps = [later - earlier for times in (requests["a"], requests["b"]) for earlier, later in zip(times, times[1:])]
    assert min(gaps) >= 0.1  # backoff: each retry waits 0.2 s x U(0.5, 1)


def test_retries_run_out_and_client_errors_are_not_retried(server):
    server.set_faults({"teacher:a": ["500"], "teacher:b": ["400"]})
    records = reflect_many(teacher_cfg(server.url, max_retries=3), ["a", "b", "c"])
    assert records["a"]["status"] == "failed" and records["a"]["reason"] == "http 500 after 3 retries: injected 500"
    assert records["b"]["status"] == "failed" and records["b"]["reason"].startswith("http 400: injected 400")
    assert records["c"]["status"] == "ok"
    counts = {pid: len([r for r in server.requests("teacher") if r["id"] == pid]) for pid in "abc"}
    assert counts == {"a": 4, "b": 1, "c": 1}


def test_a_wrong_key_stops_the_run_without_showing_the_key(monkeypatch, caplog):
    monkeypatch.setenv("SRPO_TEST_KEY", "sk-wrong-" + SECRET)
    with FakeOpenAIServer(api_key=SECRET) as srv:
        with caplog.at_level(logging.DEBUG), pytest.raises(EndpointFatalError, match="401") as info:
            reflect_many(teacher_cfg(srv.url, teacher_api_key_env="SRPO_TEST_KEY"), ["a"])
    assert SECRET not in str(info.value) and "SRPO_TEST_KEY" in str(info.value)
    assert SECRET not in caplog.text


def test_the_key_comes_from_the_named_variable_and_is_never_logged(monkeypatch, caplog):
    monkeypatch.setenv("SRPO_TEST_KEY", SECRET)
    with FakeOpenAIServer(api_key=SECRET) as srv:
        cfg = teacher_cfg(srv.url, teacher_api_key_env="SRPO_TEST_KEY")
        with caplog.at_level(logging.DEBUG):
            records = reflect_many(cfg, ["a"])
        assert records["a"]["status"] == "ok"
        assert all(r["authorized"] for r in srv.requests())
    assert SECRET not in caplog.text and SECRET not in repr(records) and SECRET not in repr(EndpointTeacher(cfg).endpoint)


PASSWORD = "pa:ss@w/rd-DO-NOT-LEAK"  # every character that must be percent-encoded in a URL's user info


def url_with_credentials(url: str, user: str = "alice", password: str = PASSWORD) -> str:
    return url.replace("http://", f"http://{quote(user, safe='')}:{quote(password, safe='')}@")


def test_credentials_in_the_url_are_sent_as_basic_auth_and_never_shown(monkeypatch, caplog):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAIServer(basic_auth=("alice", PASSWORD)) as srv:
        cfg = teacher_cfg(url_with_credentials(srv.url))
        with caplog.at_level(logging.DEBUG):
            records = reflect_many(cfg, ["a", "b"])
        assert all(r["status"] == "ok" for r in records.values())
        assert [(r["authorized"], r["auth_scheme"]) for r in srv.requests()] == [(True, "Basic")] * 2
        teacher = EndpointTeacher(cfg)
        assert teacher.endpoint.base_url == srv.url and "alice" not in teacher.name
        with pytest.raises(EndpointFatalError, match="user name and password in the URL") as info:
            reflect_many(teacher_cfg(url_with_credentials(srv.url, password="wrong-" + PASSWORD)), ["c"])
    shown = caplog.text + repr(records) + repr(teacher.endpoint) + teacher.name + str(info.value)
    assert quote(PASSWORD, safe="") not in shown and PASSWORD not in shown


def test_credentials_in_the_url_and_a_key_are_refused_before_any_request(server, monkeypatch):
    monkeypatch.setenv("SRPO_TEST_KEY", SECRET)
    with pytest.raises(InvalidValue, match=r"one Authorization header.*--api-key-env ''") as info:
        reflect_many(teacher_cfg(url_with_credentials(server.url), teacher_api_key_env="SRPO_TEST_KEY"), ["a"])
    assert server.requests() == []
    assert quote(PASSWORD, safe="") not in str(info.value) and SECRET not in str(info.value)


def test_a_server_message_quoting_the_credentials_is_masked(monkeypatch):
    monkeypatch.setenv("SRPO_TEST_KEY", SECRET)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAIServer(faults={"teacher:a": ["echo_auth"]}) as srv:
        by_key = reflect_many(teacher_cfg(srv.url, teacher_api_key_env="SRPO_TEST_KEY"), ["a"])["a"]
        srv.set_faults({"teacher:a": ["echo_auth"]})
        by_url = reflect_many(teacher_cfg(url_with_credentials(srv.url)), ["a"])["a"]
    assert by_key["reason"] == "http 400: bad request; you sent Authorization: Bearer ***"
    assert by_url["reason"] == "http 400: bad request; you sent Authorization: Basic ***"


@pytest.mark.parametrize(
    "url, key_env, message",
    [
        ("http://127.0.0.1:99999/v1", None, "port is not a number"),
        ("http:///v1", None, "no host name"),
        ("http://127.0.0.1:8000/v1/chat/completions", None, "not its /chat/completions endpoint"),
        ("http://127.0.0.1:8000/v1", "sk-live-0123456789abcdef", "--api-key-env must name an environment variable"),
        ("http://a%3Ab:pw@127.0.0.1:8000/v1", None, "contains ':'"),
        ("ftp://u:pw@127.0.0.1/v1", None, "must start with http"),
    ],
)
def test_endpoint_settings_that_cannot_work_are_refused_without_showing_secrets(url, key_env, message):
    with pytest.raises(InvalidValue, match=message) as info:
        parse_endpoint(url, key_env)
    assert "sk-live" not in str(info.value) and ":pw@" not in str(info.value)


def test_redact_url_never_raises_on_an_unusable_port():
    assert redact_url("http://u:p@host:99999/v1?k=1") == "http://host:99999/v1"


def test_requests_carry_images_as_data_urls_and_the_teacher_prompt(server):
    server.keep_text = True
    cfg = teacher_cfg(server.url, teacher_json_mode=True, teacher_temperature=0.5, teacher_max_tokens=300,
                      teacher_extra_body={"reasoning_effort": "low"})
    reflect_many(cfg, ["a"])
    (request,) = server.requests("teacher")
    assert request["model"] == "judge" and request["images"] == 1
    assert request["response_format"] == {"type": "json_object"}
    assert request["temperature"] == 0.5 and request["max_completion_tokens"] == 300
    text = request["text"]
    for part in ("[id=a] How many circles?", "I count 4", "Student's answer: 4", "Reference answer: 3",
                 '{"reflection": "..."}'):
        assert part in text


def test_custom_teacher_template_is_used(server, tmp_path):
    template = tmp_path / "teacher.txt"
    template.write_text("Review {question}. Gold: {reference_answer}. Reference answer: {reference_answer}. "
                        "Attempt said {predicted_answer}. JSON {{\"reflection\": \"...\"}}")
    server.keep_text = True
    reflect_many(teacher_cfg(server.url, teacher_prompt=str(template)), ["a"])
    (request,) = server.requests("teacher")
    assert request["text"].startswith("Review [id=a] How many circles?. Gold: 3.")
    assert "Attempt said 4" in request["text"]


def test_concurrency_is_bounded(server):
    server.latency = 0.05
    reflect_many(teacher_cfg(server.url, concurrency=3), [f"x{i}" for i in range(15)])
    assert server.max_in_flight == 3


def test_run_concurrently_hands_on_every_result_big_images_included(server):
    endpoint = ChatEndpoint(server.url, "m", api_key_env=None, concurrency=3)
    big, small = Image.new("RGB", (400, 300), "blue"), Image.new("RGB", (20, 20), "green")  # big: encoded in a thread
    images = {"a": [big], "b": [small], "c": [small, big], "d": []}
    replies: dict[str, str] = {}
    run_concurrently(endpoint, list(images), lambda i: endpoint.ask(f"[id={i}] hi", images[i]),
                     lambda i, result: replies.__setitem__(i, result.value), progress=False)
    assert replies == {i: f"<think>I count 1 for {i}.</think> <answer>1</answer>" for i in images}
    assert {r["id"]: r["images"] for r in server.requests()} == {"a": 1, "b": 1, "c": 2, "d": 0}


def test_run_concurrently_stops_at_the_first_fatal_error_keeping_what_was_handed_on(server):
    server.set_faults({"policy:c": ["401"]})
    endpoint = ChatEndpoint(server.url, "m", api_key_env=None, concurrency=1)
    handed_on: list[str] = []

    async def keep(item, _result):  # a coroutine, as a durable store's append is
        await asyncio.sleep(0)
        handed_on.append(item)

    with pytest.raises(EndpointFatalError, match="answered 401"):
        run_concurrently(endpoint, list("abcde"), lambda i: endpoint.ask(f"[id={i}] hi"), keep, progress=False)
    assert handed_on == ["a", "b"] and [r["id"] for r in server.requests()] == ["a", "b", "c"]


def test_the_endpoint_counts_retries_and_failed_items(server):
    server.set_faults({"policy:a": ["500", "ok"], "policy:b": ["400"]})
    endpoint = ChatEndpoint(server.url, "m", api_key_env=None, retry=RetryPolicy(backoff_base=0.01))
    outcomes: dict[str, object] = {}

    async def work(item):
        try:
            return (await endpoint.ask(f"[id={item}] hi")).retries
        except RequestFailed as exc:
            return exc.reason

    run_concurrently(endpoint, list("abc"), work, outcomes.__setitem__, progress=False)
    assert outcomes == {"a": 1, "b": "http 400: injected 400", "c": 0}
    assert (endpoint.retries, endpoint.failed) == (1, 1)


def test_model_name_is_taken_from_the_server_when_not_given(server):
    async def main():
        endpoint = ChatEndpoint(server.url, "", api_key_env=None, retry=RetryPolicy(backoff_base=0.01))
        try:
            assert await endpoint.resolve_model() == "fake"
            result = await endpoint.complete([{"role": "user", "content": "[id=z] hi"}])
            return result
        finally:
            await endpoint.aclose()

    result = asyncio.run(main())
    assert "<answer>1</answer>" in result.value
    assert server.requests()[0]["model"] == "fake"


def test_several_served_models_need_a_name():
    with FakeOpenAIServer(models=("a", "b")) as srv:
        with pytest.raises(EndpointFatalError, match="serves 2 models"):
            EndpointTeacher(teacher_cfg(srv.url, teacher_model="")).reflect(problem("x"), attempt("x"))


def test_the_sync_teacher_protocol_works_one_item_at_a_time(server):
    reflection = EndpointTeacher(teacher_cfg(server.url, teacher_model="")).reflect(problem("x"), attempt("x"))
    assert reflection.text == reflection_for("x")
    assert server.requests()[0]["model"] == "fake"


def test_the_built_in_teacher_prompt_has_every_spec_field():
    check_template(TEACHER_PROMPT_TEMPLATE)
    for field in ("{question}", "{reasoning}", "{predicted_answer}", "{reference_answer}", '{{"reflection": "..."}}'):
        assert field in TEACHER_PROMPT_TEMPLATE


def test_a_dead_endpoint_stops_the_run_after_repeated_failures():
    with FakeOpenAIServer() as srv:
        url = srv.url
    # nothing listens there any more: connection refused on every request
    cfg = teacher_cfg(url, max_retries=1, abort_after_failures=3, concurrency=1)
    with pytest.raises(EndpointFatalError, match="3 items in a row failed"):
        reflect_many(cfg, list("abcdef"))


def test_request_failed_keeps_usage_and_retries():
    exc = RequestFailed("timeout after 2 retries", {"prompt_tokens": 5, "completion_tokens": 1}, 2)
    assert exc.reason == "timeout after 2 retries" and exc.retries == 2 and exc.usage["prompt_tokens"] == 5
