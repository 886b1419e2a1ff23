"""Many completions at once, written once over the `LLM` protocol.

`complete_many` runs requests on a few threads (never more than the backend tolerates), serves
what it can from the response cache, retries what is worth retrying (429 honouring Retry-After
and pausing every worker, timeouts, 5xx, connection failures) with exponential backoff and full
jitter, never retries auth or other 4xx errors, and stops cleanly when asked. Callbacks
(`on_result`, `on_progress`) and cache writes run on the calling thread, so a caller may persist
results to its own SQLite connection. Every request gets a `Result`, in request order; a failure
keeps its message and kind. `RunCalls` is one run's calls: the same settings for every batch, and
every result kept for the usage summary.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rebase_core.errors import InputError, RateLimitError, RebaseError
from rebase_core.llm.base import LLM, Request, Result, error_kind, is_retryable
from rebase_core.llm.cache import ResponseCache, cache_key
from rebase_core.llm.pricing import UsageSummary, summarize_usage
from rebase_core.types import Progress, ProgressFn, no_progress

logger = logging.getLogger(__name__)

_POLL_S = 0.05  # how often the calling thread checks `should_stop`


class _Pause:
    """A moment before which no worker calls the backend (set by a 429)."""

    def __init__(self) -> None:
        self._until = 0.0
        self._lock = threading.Lock()

    def extend(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, time.monotonic() + seconds)

    def remaining(self) -> float:
        with self._lock:
            return max(0.0, self._until - time.monotonic())


@dataclass(frozen=True, slots=True)
class _Policy:
    max_retries: int
    backoff_base_s: float
    backoff_max_s: float


def _call_with_retries(
    llm: LLM,
    request: Request,
    policy: _Policy,
    pause: _Pause,
    stop: threading.Event,
    rng: random.Random,
) -> Result:
    attempts = 0
    while True:
        wait = pause.remaining()
        if (wait > 0 and stop.wait(wait)) or stop.is_set():
            return Result(request.key, None, "cancelled before it finished", "cancelled", attempts)
        attempts += 1
        try:
            completion = llm.complete(
                request.messages,
                temperature=request.temperature,
                max_tokens=request.max_tokens,
                json_schema=request.json_schema,
                seed=request.seed,
            )
            return Result(request.key, completion, attempts=attempts)
        except RebaseError as exc:
            if not is_retryable(exc) or attempts > policy.max_retries:
                return Result(request.key, None, str(exc), error_kind(exc), attempts)
            # Full jitter: a random delay up to the exponential cap spreads the retries out.
            cap = min(policy.backoff_max_s, policy.backoff_base_s * 2 ** (attempts - 1))
            delay = rng.uniform(0.0, cap)
            if isinstance(exc, RateLimitError):
                if exc.retry_after_s is not None:
                    # The server said when; a little jitter keeps workers from returning at once.
                    delay = exc.retry_after_s + rng.uniform(0.0, 0.1 * exc.retry_after_s)
                pause.extend(delay)  # every worker holds off, not only this one
            logger.info(
                "%s: %s on %s (attempt %d), retrying in %.2fs",
                llm.spec,
                error_kind(exc),
                request.key,
                attempts,
                delay,
            )
            if stop.wait(delay):
                return Result(
                    request.key, None, "cancelled before it finished", "cancelled", attempts
                )


def complete_many(
    llm: LLM,
    requests: Sequence[Request],
    *,
    concurrency: int = 4,
    cache: ResponseCache | None = None,
    max_retries: int = 4,
    backoff_base_s: float = 1.0,
    backoff_max_s: float = 60.0,
    on_progress: ProgressFn = no_progress,
    should_stop: Callable[[], bool] = lambda: False,
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Complete every request; return one `Result` per request, in request order.

    Threads: min(concurrency, llm.max_concurrency). Cache hits are served first and cost nothing.
    When `should_stop()` turns true, no new request starts, calls in flight finish (their results
    count), and the rest come back with error_kind "cancelled". `on_result` is called on the
    calling thread as each request finishes (cache hits included, cancelled ones not), so
    callers can persist it at once. An exception that is not a RebaseError is a bug: workers
    stop and it is re-raised.
    """
    if concurrency < 1:
        raise InputError(f"concurrency must be at least 1, got {concurrency}.")
    if max_retries < 0:
        raise InputError(f"max_retries must be 0 or more, got {max_retries}.")
    total = len(requests)
    results: list[Result | None] = [None] * total
    counts = {"done": 0, "cached": 0, "failed": 0}

    def finish(index: int, result: Result) -> None:
        results[index] = result
        counts["done"] += 1
        if result.completion is None:
            counts["failed"] += 1
        elif result.completion.cached:
            counts["cached"] += 1
        elif cache is not None:
            cache.put(keys[index], llm.spec, result.completion)
        if on_result is not None:
            on_result(result)
        on_progress(
            Progress(
                counts["done"],
                total,
                f"{llm.spec}: {counts['done']}/{total} done, {counts['cached']} cached, "
                f"{counts['failed']} failed",
            )
        )

    keys = [cache_key(llm, r) for r in requests] if cache is not None else []
    hits = cache.get_many(keys) if cache is not None else {}
    pending: queue.SimpleQueue[int] = queue.SimpleQueue()
    n_pending = 0
    for i, request in enumerate(requests):
        if cache is not None and keys[i] in hits:
            finish(i, Result(request.key, hits[keys[i]]))
        else:
            pending.put(i)
            n_pending += 1

    stop = threading.Event()
    done_q: queue.SimpleQueue[tuple[int, Result | BaseException]] = queue.SimpleQueue()
    policy = _Policy(max_retries, backoff_base_s, backoff_max_s)
    pause = _Pause()
    rng = random.Random()

    def work() -> None:
        while not stop.is_set():
            try:
                index = pending.get_nowait()
            except queue.Empty:
                return
            try:
                outcome: Result | BaseException = _call_with_retries(
                    llm, requests[index], policy, pause, stop, rng
                )
            except BaseException as exc:  # a bug: hand it to the calling thread, stop working
                done_q.put((index, exc))
                stop.set()
                return
            done_q.put((index, outcome))

    n_workers = min(concurrency, max(1, int(llm.max_concurrency)), n_pending)
    workers = [
        threading.Thread(target=work, name=f"llm-worker-{k}", daemon=True) for k in range(n_workers)
    ]
    if should_stop():  # asked to stop before anything started: send nothing
        stop.set()
    for worker in workers:
        worker.start()
    crash: BaseException | None = None
    try:
        while True:
            if not stop.is_set() and should_stop():
                logger.info("%s: stop requested; finishing the calls in flight", llm.spec)
                stop.set()
            try:
                index, outcome = done_q.get(timeout=_POLL_S)
            except queue.Empty:
                if any(w.is_alive() for w in workers):
                    continue
                if done_q.empty():
                    break
                continue
            if isinstance(outcome, BaseException):
                crash = crash or outcome
                continue
            if outcome.error_kind == "cancelled":
                results[index] = outcome
                continue
            finish(index, outcome)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    if crash is not None:
        raise crash
    return [
        r
        if r is not None
        else Result(requests[i].key, None, "cancelled before it started", "cancelled")
        for i, r in enumerate(results)
    ]


@dataclass
class RunCalls:
    """The LLM calls of one run: every batch goes out with the same concurrency, retries, cache
    and stop, and every result is kept, so the run can say what it cost."""

    llm: LLM
    concurrency: int = 4
    max_retries: int = 4
    cache: ResponseCache | None = None
    should_stop: Callable[[], bool] = lambda: False
    results: list[Result] = field(default_factory=list)  # appended to (a caller may pass its own)

    def complete(
        self, requests: Sequence[Request], *, on_progress: ProgressFn = no_progress
    ) -> list[Result]:
        """`complete_many` with the run's settings; the results are also kept."""
        results = complete_many(
            self.llm,
            requests,
            concurrency=self.concurrency,
            cache=self.cache,
            max_retries=self.max_retries,
            should_stop=self.should_stop,
            on_progress=on_progress,
        )
        self.results.extend(results)
        return results

    def usage(self) -> UsageSummary | None:
        """Tokens and cost of the calls so far (None before any)."""
        return summarize_usage(self.llm.spec, self.results) if self.results else None
