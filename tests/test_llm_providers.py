"""The real anthropic and openai SDK clients against a loopback server that speaks their APIs."""

import dataclasses
import json
import logging
import time
from pathlib import Path

import pytest
from llm_servers import LoopbackServer, Reply, error_body, last_user_text, openai_chat

from rebase_core.errors import InputError, ProviderError, RateLimitError
from rebase_core.llm import (
    Message,
    ProviderTimeoutError,
    ProviderUnavailableError,
    Request,
    ResponseCache,
    check_connection,
    complete_many,
    get_llm,
    key_status,
)

ANTHROPIC_KEY = "sk-ant-api03-SECRETanthropic0123456789"
OPENAI_KEY = "sk-proj-SECRETopenai0123456789abcdef"
PROVIDERS = ("anthropic", "openai")
MODELS = {"anthropic": "claude-haiku-4-5", "openai": "gpt-4o-mini"}


@pytest.fixture
def server():
    with LoopbackServer() as s:
        yield s


@pytest.fixture
def keyed(settings):
    return dataclasses.replace(settings, anthropic_api_key=ANTHROPIC_KEY, openai_api_key=OPENAI_KEY)


def make(provider, server, settings, **options):
    base_url = server.url if provider == "anthropic" else server.url + "/v1"
    options.setdefault("timeout_s", 5.0)
    return get_llm(f"{provider}:{MODELS[provider]}", settings, base_url=base_url, **options)


def chat(text="hi", system="Be brief."):
    return [Message("system", system), Message("user", text)]


def fast_retries(**kw):
    return {"backoff_base_s": 0.01, "backoff_max_s": 0.05, **kw}


# --- one call -------------------------------------------------------------------------------------


def test_anthropic_success_sends_the_messages_api_body(server, keyed):
    llm = make("anthropic", server, keyed)
    out = llm.complete(chat("hello there"), temperature=0.3, max_tokens=42)
    assert out.text == "echo: hello there"
    assert (out.usage.input_tokens, out.usage.output_tokens) == (11, 7)
    assert out.finish_reason == "end_turn" and not out.cached
    seen = server.requests[-1]
    assert seen.path == "/v1/messages"
    assert seen.body["model"] == "claude-haiku-4-5"
    assert seen.body["max_tokens"] == 42
    assert seen.body["system"] == "Be brief."
    assert seen.body["messages"] == [{"role": "user", "content": "hello there"}]
    # SDK 2.x speaks API version 2026-10-21, which rejects sampling parameters.
    assert seen.headers["anthropic-version"] == "2026-10-21"
    assert "temperature" not in seen.body


def test_anthropic_pinned_old_api_version_sends_temperature(server, keyed):
    llm = make("anthropic", server, keyed, api_version="2023-06-01")
    llm.complete(chat(), temperature=0.3, max_tokens=10)
    seen = server.requests[-1]
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.body["temperature"] == 0.3


def test_openai_success_sends_the_chat_completions_body(server, keyed):
    llm = make("openai", server, keyed)
    out = llm.complete(chat("hello there"), temperature=0.3, max_tokens=42, seed=7)
    assert out.text == "echo: hello there"
    assert (out.usage.input_tokens, out.usage.output_tokens) == (11, 7)
    assert out.finish_reason == "stop"
    seen = server.requests[-1]
    assert seen.path == "/v1/chat/completions"
    assert seen.body["model"] == "gpt-4o-mini"
    assert seen.body["temperature"] == 0.3
    assert seen.body["max_tokens"] == 42  # a custom base URL gets the widely known field
    assert seen.body["seed"] == 7
    assert seen.body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert seen.headers["authorization"] == f"Bearer {OPENAI_KEY}"


def test_openai_token_field_follows_the_server(server, keyed):
    llm = make("openai", server, keyed, max_tokens_field="max_completion_tokens")
    llm.complete(chat(), max_tokens=9)
    assert server.requests[-1].body["max_completion_tokens"] == 9
    assert "max_tokens" not in server.requests[-1].body
    official = get_llm("openai:gpt-4o-mini", keyed)  # no request is made
    assert official.max_tokens_field == "max_completion_tokens"


def test_openai_compatible_server_needs_no_key(server, settings):
    llm = make("openai", server, settings)  # no OPENAI_API_KEY
    assert llm.complete(chat("x"), max_tokens=5).text == "echo: x"


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("url", ["not a url", "127.0.0.1:8000/v1", "ftp://host/v1"])
def test_a_base_url_that_is_no_http_url_is_bad_input(provider, url, settings):
    with pytest.raises(InputError, match="not an http"):
        get_llm(f"{provider}:{MODELS[provider]}", settings, base_url=url)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_missing_key_for_the_hosted_api_says_which_variable(provider, settings):
    with pytest.raises(ProviderError, match=f"{provider.upper()}_API_KEY"):
        get_llm(f"{provider}:{MODELS[provider]}", settings)


def test_json_schema_reaches_both_apis_in_strict_form(server, keyed):
    schema = {"type": "object", "properties": {"input": {"type": "string"}}}
    make("anthropic", server, keyed).complete(chat(), max_tokens=20, json_schema=schema)
    sent = server.requests[-1].body["output_config"]["format"]
    assert sent["type"] == "json_schema"
    assert sent["schema"]["additionalProperties"] is False
    assert sent["schema"]["required"] == ["input"]
    make("openai", server, keyed).complete(chat(), max_tokens=20, json_schema=schema)
    fmt = server.requests[-1].body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["required"] == ["input"]


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("body", ["<html>bad gateway page</html>", {"unexpected": 1}])
def test_malformed_reply_is_a_provider_error_and_not_retried(provider, body, server, keyed):
    llm = make(provider, server, keyed)
    server.script(Reply(body=body))
    with pytest.raises(ProviderError, match="could not be read") as info:
        llm.complete(chat(), max_tokens=5)
    assert llm.spec in str(info.value)
    assert not isinstance(info.value, (ProviderTimeoutError, ProviderUnavailableError))
    server.script(Reply(body=body))
    [result] = complete_many(llm, [Request("r", tuple(chat()))], **fast_retries())
    assert result.error_kind == "provider" and result.attempts == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_429_with_retry_after_then_success(provider, server, keyed):
    llm = make(provider, server, keyed)
    path = "/v1/messages" if provider == "anthropic" else "/v1/chat/completions"
    too_many = Reply(
        status=429,
        body=error_body(path, "rate_limit_error", "slow down"),
        headers={"Retry-After": "1"},
    )
    server.script(too_many)
    with pytest.raises(RateLimitError) as info:
        llm.complete(chat(), max_tokens=5)
    assert info.value.retry_after_s == 1.0
    assert "429" in str(info.value) and llm.spec in str(info.value)

    server.script(too_many)
    started = time.monotonic()
    [result] = complete_many(llm, [Request("r", tuple(chat("again")))], **fast_retries())
    elapsed = time.monotonic() - started
    assert result.ok and result.completion.text == "echo: again"
    assert result.attempts == 2
    assert elapsed >= 1.0  # the Retry-After was honoured, not the 0.05 s backoff cap
    assert server.hits == 3


@pytest.mark.parametrize("provider", PROVIDERS)
def test_500_is_retried_then_reported(provider, server, keyed):
    llm = make(provider, server, keyed)
    path = "/v1/messages" if provider == "anthropic" else "/v1/chat/completions"
    server.script(*[Reply(status=500, body=error_body(path, "api_error", "boom"))] * 3)
    [result] = complete_many(llm, [Request("r", tuple(chat()))], **fast_retries(max_retries=2))
    assert result.completion is None
    assert result.error_kind == "provider"
    assert "HTTP 500" in result.error and llm.spec in result.error
    assert result.attempts == 3 and server.hits == 3
    # a 500 followed by a good reply recovers
    server.script(Reply(status=503, body=error_body(path, "overloaded_error", "busy")))
    [result] = complete_many(llm, [Request("r", tuple(chat("ok")))], **fast_retries())
    assert result.ok and result.attempts == 2


@pytest.mark.parametrize("provider", PROVIDERS)
def test_timeout_is_retried_then_reported(provider, server, keyed):
    llm = make(provider, server, keyed, timeout_s=0.3)
    server.script(Reply(delay_s=3.0))
    with pytest.raises(ProviderTimeoutError, match=r"no reply within 0\.3s"):
        llm.complete(chat(), max_tokens=5)
    server.script(Reply(delay_s=3.0), Reply(delay_s=3.0))
    [result] = complete_many(llm, [Request("r", tuple(chat()))], **fast_retries(max_retries=1))
    assert result.error_kind == "timeout" and result.attempts == 2


@pytest.mark.parametrize("provider", PROVIDERS)
def test_auth_error_names_the_variable_hides_the_key_and_is_not_retried(provider, server, keyed):
    llm = make(provider, server, keyed)
    key = ANTHROPIC_KEY if provider == "anthropic" else OPENAI_KEY
    path = "/v1/messages" if provider == "anthropic" else "/v1/chat/completions"
    # Real servers echo (part of) a bad key in the error message.
    server.script(Reply(status=401, body=error_body(path, "authentication_error", f"bad {key}")))
    [result] = complete_many(llm, [Request("r", tuple(chat()))], **fast_retries())
    assert result.error_kind == "provider" and result.attempts == 1
    assert f"{provider.upper()}_API_KEY" in result.error
    assert key not in result.error and key[10:] not in result.error
    assert server.hits == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_bad_request_is_not_retried(provider, server, keyed):
    llm = make(provider, server, keyed)
    path = "/v1/messages" if provider == "anthropic" else "/v1/chat/completions"
    server.script(Reply(status=400, body=error_body(path, "invalid_request_error", "no model")))
    [result] = complete_many(llm, [Request("r", tuple(chat()))], **fast_retries())
    assert "HTTP 400" in result.error and result.attempts == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_connection_refused_is_retryable_and_says_where(provider, keyed):
    with LoopbackServer() as gone:
        pass  # the port is closed now
    llm = make(provider, gone, keyed)
    with pytest.raises(ProviderUnavailableError, match=r"could not connect to http://127\.0\.0\.1"):
        llm.complete(chat(), max_tokens=5)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_check_connection(provider, server, keyed):
    llm = make(provider, server, keyed)
    report = check_connection(llm)
    assert llm.spec in report and "answered" in report
    path = "/v1/messages" if provider == "anthropic" else "/v1/chat/completions"
    server.script(Reply(status=401, body=error_body(path, "authentication_error", "nope")))
    with pytest.raises(ProviderError, match="rejected"):
        check_connection(llm)


# --- keys never leak --------------------------------------------------------------------------


def test_no_key_in_cache_logs_errors_or_repr(server, keyed, tmp_path: Path, caplog):
    caplog.set_level(logging.DEBUG)
    cache = ResponseCache(tmp_path / "cache.sqlite")
    for provider in PROVIDERS:
        llm = make(provider, server, keyed)
        requests = [Request(f"{provider}{i}", tuple(chat(f"q{i}"))) for i in range(3)]
        assert all(r.ok for r in complete_many(llm, requests, cache=cache))
        assert ANTHROPIC_KEY not in repr(llm) and OPENAI_KEY not in repr(llm)
    assert len(cache) == 6
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("cache.sqlite*"))
    for key in (ANTHROPIC_KEY, OPENAI_KEY):
        assert key.encode() not in stored
        assert key not in caplog.text
    status = key_status(keyed)
    assert status == {"anthropic": "set", "openai": "set"}
    assert ANTHROPIC_KEY not in json.dumps(status)


# --- complete_many over real HTTP -----------------------------------------------------------------


def test_concurrency_is_bounded_and_order_kept(keyed):
    with LoopbackServer(latency_s=0.15) as slow:
        llm = make("openai", slow, keyed)
        requests = [Request(f"k{i}", (Message("user", f"item {i}"),)) for i in range(12)]
        started = time.monotonic()
        results = complete_many(llm, requests, concurrency=3)
        elapsed = time.monotonic() - started
        assert slow.max_in_flight == 3
    assert [r.key for r in results] == [f"k{i}" for i in range(12)]
    assert [r.completion.text for r in results] == [f"echo: item {i}" for i in range(12)]
    assert elapsed < 12 * 0.15 * 0.6  # really parallel: 4 waves of 0.15 s, not 12


def test_cache_makes_a_rerun_free(server, keyed, tmp_path: Path):
    llm = make("anthropic", server, keyed)
    cache = ResponseCache(tmp_path / "cache.sqlite")
    requests = [Request(f"k{i}", tuple(chat(f"q{i}")), temperature=0.2) for i in range(5)]
    first = complete_many(llm, requests, cache=cache)
    assert server.hits == 5 and not any(r.completion.cached for r in first)
    again = complete_many(llm, requests, cache=cache)
    assert server.hits == 5  # nothing was sent
    assert all(r.completion.cached for r in again)
    assert [r.completion.text for r in again] == [r.completion.text for r in first]
    assert again[0].completion.usage == first[0].completion.usage
    # another sample of the same prompt is a new call (self-consistency)
    resampled = [dataclasses.replace(requests[0], sample=1)]
    complete_many(llm, resampled, cache=cache)
    assert server.hits == 6


def test_a_responder_sees_each_request(keyed):
    def responder(seen):
        return Reply(body=openai_chat(last_user_text(seen).upper()))

    with LoopbackServer(responder) as s:
        llm = make("openai", s, keyed)
        assert llm.complete([Message("user", "abc")], max_tokens=3).text == "ABC"


def test_options_a_provider_does_not_know_are_input_errors(server, keyed):
    with pytest.raises(InputError, match="unknown option"):
        make("anthropic", server, keyed, n_ctx=10)
