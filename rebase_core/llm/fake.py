"""A scripted LLM for tests: replies from a queue or a function, every request recorded.

A queued item is a string (the reply text), a `Completion` (returned as is) or an exception
(raised, to simulate e.g. one `RateLimitError`). A callable gets the `FakeCall` and returns a
string or a `Completion`, or raises. With neither, the fake answers deterministically: an echo of
the last user message, or, when a JSON schema is asked for, a JSON object of that shape — so
`--llm fake` works end to end from the CLI. An exhausted queue is an error, never a silent
default, so a test that expects N calls notices an N+1-th.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rebase_core.errors import ProviderError
from rebase_core.llm.base import BaseLLM, Completion, Message, Usage
from rebase_core.llm.pricing import estimate_tokens

FakeReply = str | Completion | BaseException


@dataclass(frozen=True, slots=True)
class FakeCall:
    """One recorded request."""

    messages: tuple[Message, ...]
    temperature: float
    max_tokens: int
    json_schema: Mapping[str, Any] | None
    seed: int | None

    @property
    def prompt(self) -> str:
        """The last user message (what most assertions look at)."""
        return next((m.content for m in reversed(self.messages) if m.role == "user"), "")


def _value_for(schema: Mapping[str, Any], name: str, tag: str = "") -> Any:
    """A value of the schema's shape; strings carry `tag` so different prompts differ."""
    kind = schema.get("type")
    if schema.get("enum"):
        return schema["enum"][0]
    if kind == "object":
        props = schema.get("properties") or {}
        return {k: _value_for(v, k, tag) for k, v in props.items()}
    if kind == "array":
        return [_value_for(schema.get("items") or {"type": "string"}, name, tag)]
    if kind in ("integer", "number"):
        return 0
    if kind == "boolean":
        return False
    return f"fake {name} {tag}".strip()


class FakeLLM(BaseLLM):
    """The test double of the LLM seam. Thread-safe; `history` lists every call in arrival order."""

    def __init__(
        self,
        replies: Iterable[FakeReply] | Callable[[FakeCall], str | Completion] | None = None,
        *,
        spec: str = "fake",
        max_concurrency: int = 16,
        latency_s: float = 0.0,
    ) -> None:
        self.spec = spec
        self.max_concurrency = max(1, int(max_concurrency))
        self.latency_s = latency_s
        self.history: list[FakeCall] = []
        self._lock = threading.Lock()
        self._responder: Callable[[FakeCall], str | Completion] | None = None
        self._queue: deque[FakeReply] | None = None
        if callable(replies):
            self._responder = replies
        elif replies is not None:
            self._queue = deque(replies)

    def queue(self, *replies: FakeReply) -> None:
        """Append scripted replies (switches a default fake to queue mode)."""
        with self._lock:
            if self._queue is None:
                self._queue = deque()
            self._queue.extend(replies)

    def _complete(
        self,
        messages: tuple[Message, ...],
        *,
        temperature: float,
        max_tokens: int,
        json_schema: Mapping[str, Any] | None,
        seed: int | None,
    ) -> Completion:
        call = FakeCall(messages, temperature, max_tokens, json_schema, seed)
        with self._lock:
            self.history.append(call)
            if self._queue is not None:
                if not self._queue:
                    raise ProviderError(
                        f"{self.spec}: no scripted reply left (call {len(self.history)}); queue "
                        "more replies in the test."
                    )
                reply: FakeReply = self._queue.popleft()
            else:
                reply = ""
        if self.latency_s:
            time.sleep(self.latency_s)
        if isinstance(reply, BaseException):
            raise reply
        if self._responder is not None:
            reply = self._responder(call)
        elif self._queue is None:
            reply = self._default_reply(call)
        if isinstance(reply, Completion):
            return reply
        prompt_chars = sum(len(m.content) for m in messages)
        return Completion(
            text=reply,
            usage=Usage(estimate_tokens("x" * prompt_chars), estimate_tokens(reply)),
            model=self.spec,
            finish_reason="stop",
        )

    @staticmethod
    def _default_reply(call: FakeCall) -> str:
        if call.json_schema is not None:
            # A digest of the prompt makes each prompt's answer distinct (and deterministic).
            tag = hashlib.sha256(call.prompt.encode("utf-8")).hexdigest()[:8]
            return json.dumps(_value_for(call.json_schema, "value", tag))
        return f"fake reply to: {call.prompt[:80]}"
