"""The LLM layer without the network: the fake, the runner, the cache, pricing and specs."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rebase_core.errors import InputError, ProviderError, RateLimitError
from rebase_core.llm import (
    PROVIDERS,
    Completion,
    Message,
    ProviderTimeoutError,
    ProviderUnavailableError,
    Request,
    ResponseCache,
    Result,
    RunCalls,
    Usage,
    cache_key,
    check_connection,
    complete_many,
    estimate_cost,
    estimate_run,
    estimate_tokens,
    get_llm,
    key_status,
    parse_spec,
    request_hash,
    summarize_usage,
)
from rebase_core.llm.base import redact, retry_after_s, strict_schema
from rebase_core.llm.fake import FakeLLM
from rebase_core.settings import PROJECT_ROOT


def req(i, **kw):
    return Request(f"k{i}", (Message("user", f"prompt {i}"),), **kw)


FAST = {"backoff_base_s": 0.01, "backoff_max_s": 0.02}


# --- records and specs ----------------------------------------------------------------------------


def test_message_roles_are_checked():
    with pytest.raises(InputError, match="role must be one of"):
        Message("robot", "hi")


def test_complete_checks_its_arguments_once_for_every_provider():
    llm = FakeLLM(["x"])
    with pytest.raises(InputError, match="temperature must lie in"):
        llm.complete([Message("user", "a")], temperature=3)
    with pytest.raises(InputError, match="max_tokens must be at least 1"):
        llm.complete([Message("user", "a")], max_tokens=0)
    with pytest.raises(InputError, match="at least one message"):
        llm.complete([])
    assert llm.history == []


def test_specs_are_parsed_with_helpful_errors(settings):
    assert parse_spec("openai:gpt-4o-mini") == ("openai", "gpt-4o-mini")
    assert parse_spec("local:qwen2.5-coder-1.5b-instruct") == (
        "local",
        "qwen2.5-coder-1.5b-instruct",
    )
    assert parse_spec("fake") == ("fake", "")
    with pytest.raises(InputError, match="expected one of anthropic, openai, local, fake"):
        get_llm("mistral:large", settings)
    with pytest.raises(InputError, match="names no model"):
        get_llm("anthropic:", settings)
    assert set(PROVIDERS) == {"anthropic", "openai", "local", "fake"}


def test_key_status_says_set_or_missing_only(settings):
    import dataclasses

    assert key_status(settings) == {"anthropic": "missing", "openai": "missing"}
    with_key = dataclasses.replace(settings, openai_api_key="sk-abcdefghijklmnop")
    assert key_status(with_key) == {"anthropic": "missing", "openai": "set"}


def test_importing_the_llm_layer_loads_no_sdk():
    code = (
        "import sys, rebase_core.llm, rebase_core.llm.runner, rebase_core.llm.fake;"
        "print(sorted({'anthropic','openai','llama_cpp','httpx2','numpy'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT
    )
    assert out.stdout.strip() == "[]"


def test_redact_and_retry_after_helpers():
    assert redact("key sk-proj-abcdef123456789 bad", None) == "key sk-proj-a*** bad"
    assert "s3cret-value" not in redact("got s3cret-value", "s3cret-value")
    assert retry_after_s({"Retry-After": "2"}) == 2.0
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
    assert retry_after_s({"retry-after": "soon"}) is None
    assert retry_after_s({}) is None


def test_strict_schema_closes_every_object():
    schema = {
        "type": "object",
        "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}}},
        "required": ["a"],
    }
    strict = strict_schema(schema)
    assert strict["additionalProperties"] is False and strict["required"] == ["a"]
    assert strict["properties"]["a"]["required"] == ["b"]
    assert strict["properties"]["a"]["additionalProperties"] is False
    assert "additionalProperties" not in schema  # the caller's copy is untouched


# --- fake ---------------------------------------------------------------------------------------


def test_fake_replies_from_a_queue_and_records_every_request():
    llm = FakeLLM(["one", Completion("two", Usage(3, 4), "m", "stop")])
    first = llm.complete(
        [Message("system", "s"), Message("user", "hi")], temperature=0.1, max_tokens=5, seed=3
    )
    second = llm.complete([Message("user", "again")], json_schema={"type": "object"})
    assert (first.text, second.text) == ("one", "two")
    assert second.usage == Usage(3, 4)
    assert first.usage.input_tokens == estimate_tokens("s" + "hi") and first.usage.output_tokens
    call = llm.history[0]
    assert (call.temperature, call.max_tokens, call.seed, call.prompt) == (0.1, 5, 3, "hi")
    assert llm.history[1].json_schema == {"type": "object"}
    with pytest.raises(ProviderError, match="no scripted reply left"):
        llm.complete([Message("user", "third")])
    assert len(llm.history) == 3


def test_fake_raises_queued_errors_and_uses_a_callable():
    llm = FakeLLM([RateLimitError("slow", retry_after_s=1.0), "after"])
    with pytest.raises(RateLimitError):
        llm.complete([Message("user", "a")])
    assert llm.complete([Message("user", "a")]).text == "after"
    upper = FakeLLM(lambda call: call.prompt.upper())
    assert upper.complete([Message("user", "abc")]).text == "ABC"


def test_fake_default_reply_fits_the_schema(settings):
    llm = get_llm("fake", settings)
    assert llm.spec == "fake"
    schema = {
        "type": "object",
        "properties": {
            "input": {"type": "string"},
            "n": {"type": "integer"},
            "label": {"type": "string", "enum": ["yes", "no"]},
        },
    }
    data = json.loads(llm.complete([Message("user", "x")], json_schema=schema).text)
    assert set(data) == {"input", "n", "label"} and data["label"] == "yes"
    assert isinstance(data["n"], int)
    assert "x" in llm.complete([Message("user", "x")]).text
    assert check_connection(llm).startswith("fake answered")


# --- runner -----------------------------------------------------------------------------------


def test_results_come_back_in_request_order_with_variable_latency():
    def slow_then_fast(call):
        i = int(call.prompt.split()[-1])
        time.sleep(0.02 * (5 - i % 5))
        return f"answer {i}"

    results = complete_many(FakeLLM(slow_then_fast), [req(i) for i in range(15)], concurrency=5)
    assert [r.key for r in results] == [f"k{i}" for i in range(15)]
    assert [r.completion.text for r in results] == [f"answer {i}" for i in range(15)]


def test_concurrency_is_bounded_by_the_argument_and_the_backend():
    def measured(limit_llm_to, concurrency):
        lock, state = threading.Lock(), {"now": 0, "max": 0}

        def respond(call):
            with lock:
                state["now"] += 1
                state["max"] = max(state["max"], state["now"])
            time.sleep(0.03)
            with lock:
                state["now"] -= 1
            return "ok"

        llm = FakeLLM(respond, max_concurrency=limit_llm_to)
        complete_many(llm, [req(i) for i in range(16)], concurrency=concurrency)
        return state["max"]

    assert measured(limit_llm_to=16, concurrency=4) == 4
    assert measured(limit_llm_to=1, concurrency=8) == 1  # a local llama.cpp model
    with pytest.raises(InputError, match="concurrency must be at least 1"):
        complete_many(FakeLLM(), [req(0)], concurrency=0)


def test_retryable_errors_are_retried_and_others_are_not():
    llm = FakeLLM(
        [
            ProviderTimeoutError("t"),
            ProviderUnavailableError("503"),
            "recovered",
            ProviderError("401 bad key"),
        ]
    )
    first, second = complete_many(llm, [req(0), req(1)], concurrency=1, **FAST)
    assert first.ok and first.completion.text == "recovered" and first.attempts == 3
    assert not second.ok and second.error_kind == "provider" and second.attempts == 1
    assert "401 bad key" in second.error


def test_failures_are_kept_with_their_kind():
    llm = FakeLLM(
        [
            "fine",
            RateLimitError("429", retry_after_s=0.0),
            RateLimitError("429", retry_after_s=0.0),
            ProviderTimeoutError("slow"),
            ProviderTimeoutError("slow"),
            ProviderError("bad request"),
        ]
    )
    results = complete_many(llm, [req(i) for i in range(4)], concurrency=1, max_retries=1, **FAST)
    assert [r.error_kind for r in results] == ["", "rate_limit", "timeout", "provider"]
    assert all(r.error for r in results[1:])
    summary = summarize_usage(llm.spec, results)
    assert (summary.requests, summary.succeeded, summary.failed) == (4, 1, 3)


def test_a_rate_limit_pauses_every_worker_for_retry_after():
    stamps: list[float] = []
    lock = threading.Lock()
    state = {"limited": False}

    def respond(call):
        with lock:
            stamps.append(time.monotonic())
            if not state["limited"]:
                state["limited"] = True
                raise RateLimitError("429", retry_after_s=0.4)
        time.sleep(0.01)
        return "ok"

    started = time.monotonic()
    results = complete_many(FakeLLM(respond), [req(i) for i in range(6)], concurrency=2, **FAST)
    assert all(r.ok for r in results)
    # Only calls already in flight may start before the pause ends; everything after waits.
    after_pause = [t - started for t in stamps[2:]]
    assert min(after_pause) >= 0.38
    assert sum(r.attempts for r in results) == 7  # one retry, after the pause


def test_backoff_is_capped_by_backoff_max():
    llm = FakeLLM([ProviderUnavailableError("503")] * 4 + ["ok"])
    started = time.monotonic()
    [result] = complete_many(llm, [req(0)], backoff_base_s=10.0, backoff_max_s=0.05)
    assert result.ok and result.attempts == 5
    assert time.monotonic() - started < 1.0


def test_cancellation_stops_submitting_and_marks_the_rest():
    done: list[Result] = []
    llm = FakeLLM(lambda call: "ok", latency_s=0.02)
    results = complete_many(
        llm,
        [req(i) for i in range(20)],
        concurrency=1,
        on_result=done.append,
        should_stop=lambda: len(done) >= 3,
    )
    finished = [r for r in results if r.ok]
    cancelled = [r for r in results if r.error_kind == "cancelled"]
    assert 3 <= len(finished) <= 4  # the one in flight when stop came may finish
    assert len(finished) + len(cancelled) == 20
    assert len(llm.history) == len(finished)  # nothing cancelled was ever sent
    assert [r.key for r in done] == [r.key for r in finished]  # no on_result for cancelled
    assert results[-1].error_kind == "cancelled"


def test_a_run_stopped_before_it_starts_sends_nothing_but_serves_the_cache(tmp_path: Path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    llm = FakeLLM(lambda call: "ok")
    complete_many(llm, [req(0)], cache=cache)
    results = complete_many(llm, [req(i) for i in range(5)], cache=cache, should_stop=lambda: True)
    assert results[0].completion.cached
    assert [r.error_kind for r in results[1:]] == ["cancelled"] * 4
    assert len(llm.history) == 1


def test_cancellation_interrupts_a_backoff_wait():
    llm = FakeLLM([RateLimitError("429", retry_after_s=30.0)])
    flag = threading.Event()
    threading.Timer(0.2, flag.set).start()
    started = time.monotonic()
    [result] = complete_many(llm, [req(0)], should_stop=flag.is_set)
    assert result.error_kind == "cancelled"
    assert time.monotonic() - started < 2.0


def test_on_result_and_progress_run_on_the_calling_thread():
    threads, progress = set(), []
    results = complete_many(
        FakeLLM(lambda call: "ok"),
        [req(i) for i in range(8)],
        concurrency=4,
        on_result=lambda r: threads.add(threading.get_ident()),
        on_progress=progress.append,
    )
    assert threads == {threading.get_ident()}
    assert [p.done for p in progress] == list(range(1, 9))
    assert progress[-1].total == 8 and "8/8 done" in progress[-1].message
    assert len(results) == 8


def test_a_bug_in_a_provider_is_raised_not_swallowed():
    def broken(call):
        raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        complete_many(FakeLLM(broken), [req(i) for i in range(4)], concurrency=2)


# --- cache --------------------------------------------------------------------------------------


def test_every_parameter_changes_the_cache_key():
    msgs = (Message("user", "q"),)
    base = {"temperature": 0.7, "max_tokens": 100}
    ref = request_hash("fake", msgs, **base)
    variants = [
        request_hash("fake:other", msgs, **base),
        request_hash("fake", (Message("user", "q2"),), **base),
        request_hash("fake", (Message("system", "q"),), **base),
        request_hash("fake", msgs, temperature=0.2, max_tokens=100),
        request_hash("fake", msgs, temperature=0.7, max_tokens=101),
        request_hash("fake", msgs, **base, json_schema={"type": "object"}),
        request_hash("fake", msgs, **base, seed=1),
        request_hash("fake", msgs, **base, sample=1),
        request_hash("fake", msgs, **base, endpoint="http://other"),
    ]
    assert ref == request_hash("fake", msgs, **base)
    assert len({ref, *variants}) == len(variants) + 1


def test_cache_round_trip_and_rerun_is_free(tmp_path: Path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    llm = FakeLLM(lambda call: "fresh " + call.prompt)
    requests = [req(i) for i in range(5)]
    first = complete_many(llm, requests, cache=cache)
    assert len(llm.history) == 5 and len(cache) == 5
    again = complete_many(llm, requests, cache=cache)
    assert len(llm.history) == 5
    assert [r.completion.text for r in again] == [r.completion.text for r in first]
    assert all(r.completion.cached and r.attempts == 0 for r in again)
    assert cache.get(cache_key(llm, requests[0])).text == "fresh prompt 0"
    # failures are not cached
    failing = FakeLLM([ProviderError("no")])
    complete_many(failing, [req(99)], cache=cache)
    assert cache.get(cache_key(failing, req(99))) is None
    assert cache.clear(spec="fake") == 5 and len(cache) == 0


def test_run_calls_send_every_batch_alike_and_keep_every_result(tmp_path: Path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    llm = FakeLLM(lambda call: "ok " + call.prompt)
    shared: list[Result] = []
    calls = RunCalls(llm, concurrency=2, cache=cache, results=shared)
    assert calls.usage() is None  # nothing sent yet
    seen = []
    calls.complete([req(0), req(1)], on_progress=seen.append)
    calls.complete([req(1), req(2)])  # req(1) comes from the cache
    assert [r.key for r in shared] == ["k0", "k1", "k1", "k2"]
    assert [p.done for p in seen] == [1, 2] and len(llm.history) == 3
    usage = calls.usage()
    assert (usage.requests, usage.succeeded, usage.cached) == (4, 4, 1)
    stopped = RunCalls(llm, should_stop=lambda: True)
    assert [r.error_kind for r in stopped.complete([req(3)])] == ["cancelled"]
    assert len(llm.history) == 3


def test_cache_is_shared_by_threads_and_processes(tmp_path: Path):
    path = tmp_path / "shared.sqlite"
    cache = ResponseCache(path)
    script = (
        "import sys; from pathlib import Path;"
        "from rebase_core.llm import ResponseCache, Completion, Usage;"
        "c = ResponseCache(Path(sys.argv[1]));"
        "[c.put(f'proc{i}', 'fake', Completion(f'p{i}', Usage(1, 1), 'm')) for i in range(40)]"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(path)], cwd=PROJECT_ROOT)

    def write(t):
        for i in range(20):
            cache.put(f"t{t}-{i}", "fake", Completion(f"x{i}", Usage(1, 2), "m"))

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert child.wait(timeout=60) == 0
    assert len(cache) == 80 + 40
    assert cache.get("proc7").text == "p7" and cache.get("t3-19").usage == Usage(1, 2)


# --- pricing ----------------------------------------------------------------------------------


def test_token_estimate():
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd" * 10) == 10
    assert estimate_tokens("abcde") == 2


def test_cost_uses_the_table_and_never_guesses():
    assert estimate_cost("anthropic:claude-haiku-4-5", 1_000_000, 1_000_000) == 6.0
    assert estimate_cost("anthropic:claude-haiku-4-5-20251001", 1_000_000, 0) == 1.0
    assert estimate_cost("anthropic:claude-3-5-haiku-latest", 1_000_000, 1_000_000) == 4.8
    assert estimate_cost("openai:gpt-4o-mini-2024-07-18", 1_000_000, 1_000_000) == 0.75
    assert estimate_cost("openai:gpt-4o", 1_000_000, 0) == 2.5
    assert estimate_cost("openai:gpt-4.1-mini", 0, 1_000_000) == 1.6
    # a newer model that merely starts like a known one is unknown, not mispriced
    assert estimate_cost("anthropic:claude-opus-4-8", 10, 10) is None
    assert estimate_cost("openai:my-vllm-model", 10, 10) is None
    assert estimate_cost("local:qwen2.5-coder-1.5b-instruct", 10**6, 10**6) == 0.0
    assert estimate_cost("fake", 10, 10) == 0.0


def test_run_estimate_before_and_usage_after(tmp_path: Path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    llm = FakeLLM(lambda call: "x" * 40, spec="fake")
    requests = [
        Request(f"k{i}", (Message("user", f"{i}" + "y" * 399),), max_tokens=500) for i in range(4)
    ]
    before = estimate_run(llm, requests, cache=cache, typical_output_tokens=100)
    assert (before.requests, before.cached) == (4, 0)
    assert before.input_tokens == 400 and before.output_tokens == 400
    assert before.max_output_tokens == 2000 and before.cost_usd == 0.0
    complete_many(llm, requests[:3], cache=cache)
    later = estimate_run(llm, requests, cache=cache, typical_output_tokens=100)
    assert later.cached == 3 and later.input_tokens == 100
    results = complete_many(llm, requests, cache=cache)
    after = summarize_usage(llm.spec, results)
    assert (after.succeeded, after.cached, after.failed) == (4, 3, 0)
    assert after.input_tokens == 100 and after.output_tokens == 10  # only the one paid call


def test_run_estimate_prices_hosted_models():
    from rebase_core.llm.base import BaseLLM

    class Priced(BaseLLM):
        spec = "openai:gpt-4o-mini"

    requests = [Request("a", (Message("user", "z" * 4_000_000),), max_tokens=1000)]
    estimate = estimate_run(Priced(), requests, typical_output_tokens=200)
    assert estimate.cost_usd == pytest.approx(0.15 + 200 * 0.60 / 1e6)
    assert estimate.max_cost_usd == pytest.approx(0.15 + 1000 * 0.60 / 1e6)


# --- local provider errors (no model needed) ----------------------------------------------------


def test_local_unknown_model_and_missing_parts_are_clear(settings, monkeypatch):
    import rebase_core.llm.local as local

    with pytest.raises(ProviderError, match="unknown local model"):
        get_llm("local:llama-70b", settings)
    with pytest.raises(ProviderError, match="no GGUF file"):
        get_llm("local:/nowhere/model.gguf", settings)
    monkeypatch.setitem(
        local.LOCAL_MODELS, "needs-parts", (lambda s: Path("x"), ("no_such_part_pkg_1",))
    )
    with pytest.raises(ProviderError, match="make setup"):
        get_llm("local:needs-parts", settings)


def test_local_without_llama_cpp_says_how_to_install(settings, monkeypatch):
    import rebase_core.llm.local as local

    real = local.importlib.util.find_spec
    monkeypatch.setattr(
        local.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llama_cpp" else real(name, *a),
    )
    with pytest.raises(ProviderError, match=r"llama-cpp-python is not installed.*make setup"):
        get_llm("local:smollm2-135m-instruct", settings)


def test_local_defaults_to_settings_threads_and_one_call_at_a_time(settings):
    import dataclasses

    pytest.importorskip("llama_cpp")
    llm = get_llm("local:smollm2-135m-instruct", dataclasses.replace(settings, threads=1))
    assert llm.max_concurrency == 1 and llm.n_threads == 1 and llm.n_ctx == 4096
    other = get_llm("local:smollm2-135m-instruct", settings, n_threads=3, n_ctx=1024)
    assert other.n_threads == 3 and other.n_ctx == 1024
