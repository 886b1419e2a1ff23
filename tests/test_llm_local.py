"""The local provider on the real SmolLM2-135M GGUF through llama.cpp (cheap: CI runs it)."""

import json

import pytest

from rebase_core.llm import Message, Request, complete_many, get_llm

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    pytest.importorskip("llama_cpp")
    from rebase_core.settings import Settings

    settings = Settings(home=tmp_path_factory.mktemp("home"), embedder="hash", threads=1)
    return get_llm("local:smollm2-135m-instruct", settings)


def test_local_completion_is_short_and_counted(smollm2):
    out = smollm2.complete(
        [Message("system", "You are brief."), Message("user", "Name a colour.")],
        temperature=0.0,
        max_tokens=16,
        seed=0,
    )
    assert out.text.strip()
    assert 0 < out.usage.output_tokens <= 16
    assert out.usage.input_tokens > 5  # the chat template wrapped the two messages
    assert out.finish_reason in ("stop", "length")
    assert out.model == "smollm2-135m-instruct"


def test_local_json_schema_output_parses(smollm2):
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
        "required": ["answer"],
    }
    out = smollm2.complete(
        [Message("user", "Is Paris in France? Answer as JSON.")],
        temperature=0.0,
        max_tokens=32,
        json_schema=schema,
    )
    assert json.loads(out.text)["answer"] in ("yes", "no")


def test_local_runs_through_the_runner_one_at_a_time(smollm2):
    requests = [Request(f"k{i}", (Message("user", f"Say {i}."),), max_tokens=4) for i in range(3)]
    results = complete_many(smollm2, requests, concurrency=8)
    assert [r.key for r in results] == ["k0", "k1", "k2"]
    assert all(r.ok and r.completion.text for r in results)
