"""Loopback HTTP servers that speak the Anthropic Messages and OpenAI Chat Completions wire formats.

The real `anthropic` and `openai` SDK clients talk to these in tests and in
`bench/llm_throughput.py`, so request building, response parsing and error mapping are exercised
for real without the internet. A server records every request, counts how many are in flight at
once, and answers from a script of `Reply`s (then from a responder function).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or None when the body was not JSON
    raw: bytes


@dataclass(frozen=True)
class Reply:
    """What the server sends back: a JSON (dict) or raw (str/bytes) body after `delay_s`."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


Responder = Callable[[Seen], Reply]


def last_user_text(seen: Seen) -> str:
    """The content of the last user message in an Anthropic or OpenAI request body."""
    messages = (seen.body or {}).get("messages") or []
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # Anthropic content blocks
                return "".join(b.get("text", "") for b in content if isinstance(b, dict))
            return str(content)
    return ""


def anthropic_message(
    text: str,
    *,
    model: str = "claude-test",
    input_tokens: int = 11,
    output_tokens: int = 7,
    stop_reason: str = "end_turn",
) -> dict[str, Any]:
    return {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def openai_chat(
    text: str,
    *,
    model: str = "gpt-test",
    prompt_tokens: int = 11,
    completion_tokens: int = 7,
    finish_reason: str = "stop",
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def error_body(path: str, kind: str, message: str) -> dict[str, Any]:
    """An error body in the format of the API that `path` belongs to."""
    if path.endswith("/messages"):
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "code": None}}


def echo_responder(seen: Seen) -> Reply:
    """Answer in the wire format of the path: 'echo: <last user message>'."""
    text = "echo: " + last_user_text(seen)
    model = str((seen.body or {}).get("model", "unknown"))
    if seen.path.endswith("/messages"):
        return Reply(body=anthropic_message(text, model=model))
    if seen.path.endswith("/chat/completions"):
        return Reply(body=openai_chat(text, model=model))
    return Reply(status=404, body={"error": {"message": f"no route {seen.path}"}})


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 (port 0) with a reply script; use as a context manager.

    `script(...)` queues replies served first, in order; then `responder` answers. `latency_s`
    delays every reply (the throughput benchmark's simulated network). `requests`, `hits` and
    `max_in_flight` are for assertions.
    """

    def __init__(self, responder: Responder = echo_responder, *, latency_s: float = 0.0) -> None:
        self.responder = responder
        self.latency_s = latency_s
        self.requests: list[Seen] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._script: list[Reply] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        # A short poll interval so `stop()` returns quickly (the default waits up to 0.5 s).
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def hits(self) -> int:
        with self._lock:
            return len(self.requests)

    def script(self, *replies: Reply | Iterable[Reply]) -> None:
        with self._lock:
            for reply in replies:
                if isinstance(reply, Reply):
                    self._script.append(reply)
                else:
                    self._script.extend(reply)

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()  # wakes handlers sleeping through a simulated delay
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_reply(self, seen: Seen) -> Reply:
        with self._lock:
            self.requests.append(seen)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            scripted = self._script.pop(0) if self._script else None
        return scripted if scripted is not None else self.responder(seen)

    def _done(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; with Nagle on, the client's delayed
            # ACK would add ~40 ms to every reply and distort the throughput benchmark.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                seen = Seen(
                    "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body, raw
                )
                started = time.monotonic()
                try:
                    reply = server._next_reply(seen)
                    wait = server.latency_s + reply.delay_s - (time.monotonic() - started)
                    if wait > 0 and server._closing.wait(wait):
                        return
                    self._send(reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)
                finally:
                    server._done()

            def _send(self, reply: Reply) -> None:
                if isinstance(reply.body, (dict, list)):
                    data = json.dumps(reply.body).encode()
                    content_type = "application/json"
                elif isinstance(reply.body, bytes):
                    data, content_type = reply.body, "text/plain"
                else:
                    data, content_type = str(reply.body or "").encode(), "text/plain"
                self.send_response(reply.status)
                headers = {"Content-Type": content_type, **reply.headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()

        return Handler
