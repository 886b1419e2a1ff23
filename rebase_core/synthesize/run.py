"""What both methods share: one run's state, its calls, its pairs and failures, and resuming."""

from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rebase_core.llm import LLM, Request, ResponseCache, Result, RunCalls
from rebase_core.synthesize.config import SynthesisConfig, SynthesisResult
from rebase_core.transform import normalise_text, quality_warnings
from rebase_core.types import Failure, Pair, Progress, ProgressFn, Task

OnPair = Callable[[Pair], None] | None
OnFailure = Callable[[str, Failure], None] | None


def seed_for(seed: int, key: str, sample: int = 0) -> int:
    """A backend seed for one call: fixed by the run's seed, the work key and the sample."""
    raw = hashlib.sha256(f"{seed}|{key}|{sample}".encode()).hexdigest()
    return int(raw[:8], 16)


def pair_id(task: Task, method: str, llm_spec: str, salt: str, key: str) -> str:
    """A deterministic pair id: a resumed run makes the same ids, so nothing is saved twice."""
    raw = "\x1f".join((task.name, method, llm_spec, salt, key))
    prefix = "dg-" if method == "direct" else "sg-"
    return prefix + hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]


class Run:
    """State shared by both methods: its LLM calls (for usage), what was kept, what failed."""

    def __init__(
        self,
        task: Task,
        llm: LLM,
        method: str,
        config: SynthesisConfig,
        *,
        cache: ResponseCache | None,
        should_stop: Callable[[], bool],
        on_progress: ProgressFn,
        existing: Sequence[Pair],
        id_salt: str,
        target: int,
    ) -> None:
        self.task, self.llm, self.method, self.config = task, llm, method, config
        self.should_stop, self.on_progress = should_stop, on_progress
        self.salt, self.target = id_salt, target
        self.llm_calls = RunCalls(
            llm,
            concurrency=config.concurrency,
            max_retries=config.max_retries,
            cache=cache,
            should_stop=should_stop,
        )
        self.pairs: list[Pair] = []
        self.failures: list[tuple[str, Failure]] = []
        self.existing: dict[str, list[Pair]] = defaultdict(list)
        for pair in existing:
            if pair.extra.get("key"):
                self.existing[str(pair.extra["key"])].append(pair)
        self.kept = sum(len(v) for v in self.existing.values())
        self.seen: dict[str, str] = {
            normalise_text(e.input): "a task example" for e in task.examples
        }
        self.earlier: list[str] = []  # inputs earlier rounds kept, in order (shown in prompts)
        self.calls = 0
        self.now = datetime.now(UTC).isoformat(timespec="seconds")

    def complete(self, requests: list[Request], what: str) -> list[Result]:
        def progress(p: Progress) -> None:
            self.on_progress(
                Progress(self.kept, self.target, f"{what}: {p.done}/{p.total or 0} calls")
            )

        return self.llm_calls.complete(requests, on_progress=progress)

    def pair(self, key: str, item_key: str, inp: str, out: str, **extra: Any) -> Pair:
        return Pair(
            id=pair_id(self.task, self.method, self.llm.spec, self.salt, item_key),
            input=inp,
            output=out,
            origin=self.method,
            llm=self.llm.spec,
            prompt_version=f"{self.method}-v1",
            created_at=self.now,
            extra={"key": key, "seed": self.config.seed, **extra},
        )

    def is_done(self, key: str) -> bool:
        return bool(self.existing.get(key))

    def take_done(self, keys: Sequence[str]) -> None:
        """Count finished calls' saved pairs as made (after this round's prompts are built, so
        the prompts see only earlier rounds, as they did the first time)."""
        for key in keys:
            for pair in self.existing.get(key, ()):
                self.seen[normalise_text(pair.input)] = "an earlier pair"
                self.earlier.append(pair.input)

    def shown_earlier(self, key: str, count: int) -> list[str]:
        if not self.earlier or count <= 0:
            return []
        rng = random.Random(f"{self.config.seed}|earlier|{key}")
        return rng.sample(self.earlier, min(count, len(self.earlier)))

    def finish_round(
        self,
        pairs: list[Pair],
        failures: list[tuple[str, Failure]],
        on_pair: OnPair,
        on_failure: OnFailure,
    ) -> None:
        for pair in pairs:
            self.seen[normalise_text(pair.input)] = "an earlier pair"
            self.earlier.append(pair.input)
            if on_pair is not None:
                on_pair(pair)
        for key, failure in failures:
            if on_failure is not None:
                on_failure(key, failure)
        self.pairs.extend(pairs)
        self.failures.extend(failures)
        self.kept += len(pairs)
        reasons = Counter(f.reason for _, f in self.failures)
        detail = ", ".join(f"{k} {v}" for k, v in reasons.most_common(3))
        self.on_progress(
            Progress(
                min(self.kept, self.target),
                self.target,
                f"{self.kept} pairs, {len(self.failures)} dropped"
                + (f" ({detail})" if detail else ""),
            )
        )

    def result(self, asked_labels: Mapping[str, int] | None = None) -> SynthesisResult:
        warnings, labels = quality_warnings(self.task, self.pairs)
        if self.kept < self.target and not self.should_stop():
            warnings.insert(
                0,
                f"Only {self.kept} of the {self.target} pairs asked for: the attempts budget "
                f"ran out ({self.calls} calls). See the failures for why; raise max_attempts "
                "(the attempts per pair) or use a stronger model. A rerun at the same settings "
                "replays the same calls and stops at the same place.",
            )
        return SynthesisResult(
            method=self.method,
            pairs=tuple(self.pairs),
            failures=tuple(self.failures),
            usage=self.llm_calls.usage(),
            warnings=tuple(warnings),
            label_counts=labels,
            asked_labels=dict(asked_labels or {}),
            calls=self.calls,
        )


def provider_failure(result: Result) -> Failure:
    return Failure("provider", result.error or "the call failed")
