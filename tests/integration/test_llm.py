"""kitaru.llm against real local HTTP servers speaking the OpenAI and Anthropic wire formats (no patched SDK),
model aliases, encrypted secrets, and the recorded call."""

import os
import pickle
import sqlite3

import pytest

import kitaru
from kitaru import KitaruClient, checkpoint, flow
from kitaru.config import resolve_settings
from kitaru.errors import KitaruExecutionError, KitaruNotFoundError, KitaruUsageError
from kitaru.llm import LLMProviderError
from kitaru.testing import FakeModelServer

PROVIDER_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENROUTER_API_KEY")
# Ray workers keep the environment they started with: a provider key there would win over alias secrets (SPEC §3.9).
needs_clean_env = pytest.mark.skipif(
    any(os.environ.get(k) for k in PROVIDER_KEYS), reason="a provider API key is set in the environment"
)


@pytest.fixture
def server():
    with FakeModelServer() as fake:
        yield fake


@pytest.fixture
def client(kitaru_home):
    return KitaruClient()


@pytest.fixture
def fake_alias(client, server):
    """``fake`` → openai/gpt-4o-mini (a priced model) on the local server, its key in the secret ``creds``."""
    client.secrets.set("creds", OPENAI_API_KEY="sk-from-secret", ANTHROPIC_API_KEY="ak-from-secret")
    client.models.register("fake", model="openai/gpt-4o-mini", secret="creds", base_url=server.openai_base_url)
    return "fake"


def llm_calls(exec_id):
    return {c.invocation_id: c for c in KitaruClient().executions.get(exec_id).checkpoints}


def gpt_4o_mini_cost(input_tokens, output_tokens):
    from genai_prices import Usage, calc_price

    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    return float(calc_price(usage, "gpt-4o-mini", provider_id="openai").total_price)


@flow
def ask_twice(model):
    first = kitaru.llm("What is 2+2?", model=model, system="Answer briefly.", max_tokens=20)
    second = kitaru.llm("And 3+3?", model=model)
    named = kitaru.llm("Name it.", model=model, name="namer")
    return [first, second, named]


@pytest.mark.usefixtures("ray_session")
@needs_clean_env
def test_flow_body_calls_are_llm_checkpoints_with_their_records(fake_alias, server):
    handle = ask_twice.run(fake_alias)
    assert handle.wait(timeout=60) == ["echo: What is 2+2?", "echo: And 3+3?", "echo: Name it."]

    calls = llm_calls(handle.exec_id)
    assert list(calls) == ["llm", "llm_2", "namer"]
    assert {c.checkpoint_type for c in calls.values()} == {"llm_call"}
    assert {c.status for c in calls.values()} == {"completed"}
    [record] = calls["llm"].llm_calls
    assert record["prompt"] == "What is 2+2?" and record["system"] == "Answer briefly."
    assert record["response"] == "echo: What is 2+2?"
    assert (record["requested_model"], record["resolved_model"], record["provider"], record["alias"]) == (
        "fake",
        "openai/gpt-4o-mini",
        "openai",
        "fake",
    )
    assert (record["input_tokens"], record["output_tokens"]) == (12, 5)
    assert record["latency_s"] > 0
    assert record["cost_usd"] == pytest.approx(gpt_4o_mini_cost(12, 5)) and record["cost_usd"] > 0

    first = server.requests[0]
    assert first["path"] == "/v1/chat/completions"
    assert first["body"]["model"] == "gpt-4o-mini"
    assert first["body"]["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is 2+2?"},
    ]
    assert first["body"]["max_completion_tokens"] == 20
    # the alias's secret is what reaches the provider
    assert {r["headers"]["authorization"] for r in server.requests} == {"Bearer sk-from-secret"}


@checkpoint
def summarize(text):
    summary = kitaru.llm(f"Summarize: {text}", model="fake")
    title = kitaru.llm("Give it a title.", model="unpriced", name="title")
    return f"{title} / {summary}"


@flow
def summary_flow(text):
    return summarize(text)


@pytest.mark.usefixtures("ray_session")
@needs_clean_env
def test_calls_inside_a_checkpoint_are_recorded_on_that_checkpoint(client, fake_alias, server):
    client.models.register("unpriced", model="openai/kitaru-test-model", secret="creds", base_url=server.openai_base_url)
    handle = summary_flow.run("a long text")
    assert handle.wait(timeout=60) == "echo: Give it a title. / echo: Summarize: a long text"

    calls = llm_calls(handle.exec_id)
    assert list(calls) == ["summarize"]  # no checkpoint of its own: recorded on the enclosing one
    first, second = calls["summarize"].llm_calls
    assert first["response"] == "echo: Summarize: a long text" and first["cost_usd"] > 0
    assert second["name"] == "title" and second["resolved_model"] == "openai/kitaru-test-model"
    assert second["cost_usd"] is None  # no price known for this model
    assert [r["body"]["model"] for r in server.requests] == ["gpt-4o-mini", "kitaru-test-model"]


@flow
def ask_claude():
    return kitaru.llm("Hello Claude", model="claude", system="Be terse.", temperature=0.2)


@pytest.mark.usefixtures("ray_session")
@needs_clean_env
def test_anthropic_provider(client, fake_alias, server):
    client.models.register("claude", model="anthropic/claude-3-5-haiku-latest", secret="creds", base_url=server.url)
    handle = ask_claude.run()
    assert handle.wait(timeout=60) == "echo: Hello Claude"

    [request] = server.requests
    assert request["path"] == "/v1/messages"
    assert request["body"]["system"] == "Be terse." and request["body"]["temperature"] == 0.2
    assert request["body"]["max_tokens"] == 4096  # Anthropic requires one: Kitaru's default
    headers = request["headers"]
    assert "ak-from-secret" in headers.get("x-api-key", "") + headers.get("authorization", "")
    [record] = llm_calls(handle.exec_id)["llm"].llm_calls
    assert (record["provider"], record["resolved_model"]) == ("anthropic", "anthropic/claude-3-5-haiku-latest")
    assert (record["input_tokens"], record["output_tokens"]) == (12, 5)
    assert record["cost_usd"] > 0


@flow
def with_and_without_model():
    return [kitaru.llm("explicit", model="by_argument"), kitaru.llm("implicit")]


@pytest.mark.usefixtures("ray_session")
@needs_clean_env
def test_resolution_order_argument_then_default_alias_then_environment(client, fake_alias, server, monkeypatch):
    def register(alias, model, default=False):
        client.models.register(alias, model=model, secret="creds", base_url=server.openai_base_url, default=default)

    for alias in ("by_argument", "by_default", "by_env"):
        register(alias, f"openai/model-{alias}")
    register("by_default", "openai/model-by_default", default=True)
    monkeypatch.setenv("KITARU_DEFAULT_MODEL", "by_env")

    with_and_without_model.run().wait(timeout=60)
    assert [r["body"]["model"] for r in server.requests] == ["model-by_argument", "model-by_default"]

    register("by_default", "openai/model-by_default2")  # registered again without default=True: no longer the default
    handle = with_and_without_model.run()
    handle.wait(timeout=60)
    assert [r["body"]["model"] for r in server.requests][2:] == ["model-by_env"]  # "explicit" was served from the cache
    record = llm_calls(handle.exec_id)["llm_2"].llm_calls[0]
    assert (record["requested_model"], record["alias"], record["model_source"]) == (None, "by_env", "KITARU_DEFAULT_MODEL")
    assert [(m.alias, m.default) for m in client.models.list()] == [
        ("by_argument", False),
        ("by_default", False),
        ("by_env", False),
        ("fake", False),
    ]


@flow
def mocked_flow():
    return [kitaru.llm("no model at all"), kitaru.llm("aliased", model="fake"), summarize("text")]


@pytest.mark.usefixtures("ray_session")
def test_mock_response_bypasses_the_provider(client, fake_alias, server, monkeypatch):
    client.models.register("unpriced", model="openai/kitaru-test-model", base_url=server.openai_base_url)
    monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "mocked!")
    handle = mocked_flow.run()
    assert handle.wait(timeout=60) == ["mocked!", "mocked!", "mocked! / mocked!"]
    assert server.requests == []
    calls = llm_calls(handle.exec_id)
    record = calls["llm_2"].llm_calls[0]
    assert record["mocked"] is True and record["cost_usd"] is None and record["resolved_model"] == "openai/gpt-4o-mini"
    assert calls["llm"].llm_calls[0]["resolved_model"] is None
    assert [r["mocked"] for r in calls["summarize"].llm_calls] == [True, True]


@flow
def bad_model_flow():
    return kitaru.llm("hi", model="gemini/gemini-pro")


@flow
def catching_flow(model):
    try:
        kitaru.llm("hi", model=model)
    except KitaruUsageError as exc:
        return str(exc)
    return "no error"


@pytest.mark.usefixtures("ray_session")
def test_unknown_provider_prefix_fails_in_the_flow_body_and_records_nothing(client, server):
    handle = bad_model_flow.run()
    with pytest.raises(KitaruExecutionError) as caught:
        handle.wait(timeout=60)
    assert caught.value.original_type == "kitaru.errors.KitaruUsageError"
    message = caught.value.original_message
    assert "unknown provider prefix 'gemini'" in message
    for form in ("openai/<model>", "anthropic/<model>", "ollama/<model>", "openrouter/<model>", "base_url"):
        assert form in message
    assert KitaruClient().executions.get(handle.exec_id).checkpoints == []
    assert server.requests == []

    # the error reaches the flow body itself; an unknown alias is named the same way
    handle = catching_flow.run("no-such-alias")
    assert "neither a registered alias nor a 'provider/model'" in handle.wait(timeout=60)
    assert KitaruClient().executions.get(handle.exec_id).checkpoints == []
    with pytest.raises(KitaruUsageError, match="unknown provider prefix 'gemini'"):
        client.models.register("bad", model="gemini/gemini-pro")


@checkpoint(retries=1, retry_delay=0.01)
def ask_with_retry(question):
    return kitaru.llm(question, model="fake")


@flow
def retrying_flow():
    return ask_with_retry("Are you there?")


@flow
def flow_body_failure():
    return kitaru.llm("Will this fail?", model="fake")


@pytest.mark.usefixtures("ray_session")
@needs_clean_env
def test_provider_error_is_a_failed_attempt_subject_to_retries(fake_alias, server):
    server.fail_next(1, status=500)
    handle = retrying_flow.run()
    assert handle.wait(timeout=60) == "echo: Are you there?"
    call = llm_calls(handle.exec_id)["ask_with_retry"]
    assert [a.status for a in call.attempts] == ["failed", "completed"]
    assert "LLMProviderError" in call.attempts[0].error["type"] and "500" in call.attempts[0].error["message"]
    assert len(server.requests) == 2  # the SDK's own retries are off: Kitaru owns them

    server.fail_next(1, status=503)
    handle = flow_body_failure.run()
    with pytest.raises(KitaruExecutionError) as caught:
        handle.wait(timeout=60)
    assert caught.value.invocation_id == "llm" and caught.value.original_type == "kitaru.llm._providers.LLMProviderError"
    assert [a.status for a in llm_calls(handle.exec_id)["llm"].attempts] == ["failed"]


def test_secrets_are_encrypted_at_rest_and_values_never_returned(client, kitaru_home):
    info = client.secrets.set("creds", OPENAI_API_KEY="sk-plaintext-value-123")
    assert info.name == "creds" and info.keys == ["OPENAI_API_KEY"]
    assert client.secrets.set("creds", OTHER_KEY="second-value").keys == ["OPENAI_API_KEY", "OTHER_KEY"]  # merged

    with sqlite3.connect(kitaru_home / "kitaru.db") as raw:
        rows = raw.execute("SELECT * FROM secrets").fetchall()
    assert rows and not any("sk-plaintext-value-123" in str(column) or "second-value" in str(column) for column in rows[0])
    assert oct((kitaru_home / "secret.key").stat().st_mode & 0o777) == "0o600"

    shown = client.secrets.show("creds")
    assert "sk-plaintext-value-123" not in repr(shown) and not hasattr(shown, "values")
    assert [s.name for s in client.secrets.list()] == ["creds"]
    assert "sk-plaintext-value-123" not in repr(client.secrets.list())
    assert client._service.secret_values("creds") == {"OPENAI_API_KEY": "sk-plaintext-value-123", "OTHER_KEY": "second-value"}

    client.secrets.delete("creds")
    assert client.secrets.list() == []
    with pytest.raises(KitaruNotFoundError, match="kitaru secrets set"):
        client.secrets.show("creds")
    with pytest.raises(KitaruNotFoundError):
        client.secrets.delete("creds")
    with pytest.raises(KitaruUsageError):
        client.secrets.set("bad/name", KEY="v")


def test_secret_key_from_the_environment(tmp_path, monkeypatch):
    from cryptography.fernet import Fernet
    from kitaru_server import KitaruService

    key = Fernet.generate_key()
    monkeypatch.setenv("KITARU_SECRET_KEY", key.decode())
    service = KitaruService(f"sqlite:///{tmp_path / 'k.db'}")
    service.set_secret("s", {"TOKEN": "t0ken"})
    assert not (tmp_path / "secret.key").exists()
    with sqlite3.connect(tmp_path / "k.db") as raw:
        [(ciphertext,)] = raw.execute("SELECT ciphertext FROM secrets").fetchall()
    assert Fernet(key).decrypt(ciphertext.encode()) == b'{"TOKEN": "t0ken"}'


def test_llm_outside_a_flow_is_a_plain_call(client, server, monkeypatch):
    client.models.register("local", model="served-model", base_url=server.openai_base_url)  # any OpenAI-compatible endpoint
    assert kitaru.llm("ping", model="local") == "echo: ping"
    assert server.requests[0]["body"]["model"] == "served-model"
    assert server.requests[0]["body"].get("max_tokens") is None
    monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "offline")
    assert kitaru.llm("ping") == "offline"
    assert len(server.requests) == 1


def test_llm_settings_travel_to_workers(kitaru_home, monkeypatch):
    monkeypatch.setenv("KITARU_DEFAULT_MODEL", "openai/gpt-4o-mini")
    monkeypatch.setenv("KITARU_LLM_MOCK_RESPONSE", "m")
    monkeypatch.setenv("KITARU_LLM_COST", "off")
    workers = resolve_settings().for_workers()
    assert (workers["default_model"], workers["llm_mock_response"], workers["llm_cost"]) == ("openai/gpt-4o-mini", "m", False)
    monkeypatch.setenv("KITARU_LLM_COST", "maybe")
    with pytest.raises(KitaruUsageError, match="KITARU_LLM_COST"):
        resolve_settings()


def test_bad_arguments_and_provider_error_pickles():
    with pytest.raises(KitaruUsageError, match="prompt as a string"):
        kitaru.llm(["not", "a", "string"])
    error = pickle.loads(pickle.dumps(LLMProviderError("boom", provider="openai", model="openai/x", status_code=500)))
    assert (str(error), error.provider, error.status_code) == ("boom", "openai", 500)


@pytest.mark.usefixtures("ray_session")
@needs_clean_env
def test_cost_estimates_can_be_switched_off(client, fake_alias, server, monkeypatch):
    client.models.register("unpriced", model="openai/kitaru-test-model", secret="creds", base_url=server.openai_base_url)
    monkeypatch.setenv("KITARU_LLM_COST", "off")
    handle = summary_flow.run("cost off")
    handle.wait(timeout=60)
    records = llm_calls(handle.exec_id)["summarize"].llm_calls
    assert [r["cost_usd"] for r in records] == [None, None] and records[0]["input_tokens"] == 12
