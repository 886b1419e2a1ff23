"""Baselines: pairs written without retrieval, to compare ReBase against (method.md, Baselines).

Two methods, both producing `Pair`s (origin "direct" or "self-guide") and a `Failure` with its
reason for every pair asked for that did not come out — never dropped silently:

- **direct** (prompt2model's generator): an LLM writes new pairs from the instruction and the
  examples alone. Each call asks for a few pairs as a JSON list (`per_call`, default 5): the model
  sees its own earlier items in the reply and avoids repeating them, and the instruction and
  examples are paid for once per few pairs rather than once per pair. Items are validated one by
  one with `transform.parse_pair`, so one bad item does not sink the others. The temperature rises
  with the call index from `start_temperature` to `max_temperature` (annealing for diversity),
  and each prompt shows a seeded sample of inputs written in earlier rounds, to steer away from
  them. Duplicated inputs are voted out: the most frequent output wins (`multi_vote`).
- **self-guide** (SELF-GUIDE, Zhao et al. 2024): the student itself writes inputs from the
  instruction, the example inputs and a few inputs it wrote before; for classification tasks each
  input is conditioned on a label drawn from a seeded, balanced schedule. Then it answers each
  input several times at a low temperature and keeps the most frequent answer when its share
  reaches a threshold (`self_consistency`; ties go to the shortest answer). Rule filters: empty
  text, template noise (`input`/`output` words, `__`, blank lines, unless the examples have them),
  answers outside the label set (classification), lengths outside mean ± 2 std of the example
  outputs (generation tasks).

Work goes in rounds. A round's prompts depend only on the task, the config, the seed and what
earlier rounds kept, so a rerun replays them identically: calls already made come from the
response cache for free, and calls whose pairs are already saved (`existing`, by
`pair.extra["key"]`) are skipped. A round's pairs are handed out (`on_pair`) when it finishes; a
round cut short by `should_stop` is dropped whole (its calls are cached, so redoing it is free).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar

from rebase_core.errors import InputError
from rebase_core.llm import LLM, ResponseCache, usage_fields
from rebase_core.runs import LLMRef, failure_summary, pair_sink
from rebase_core.synthesize.config import (
    DEFAULT_STUDENT_LLM,
    FAILURE_REASONS,
    METHODS,
    DirectConfig,
    SelfGuideConfig,
    SynthesisConfig,
    SynthesisEstimate,
    SynthesisResult,
    estimate_synthesis,
    make_config,
)
from rebase_core.synthesize.direct import synthesize_direct
from rebase_core.synthesize.rules import (
    Vote,
    annealed_temperature,
    clean_reply,
    cut_answer_field,
    label_schedule,
    length_bounds,
    multi_vote,
    noise_reason,
    parse_pairs,
    self_consistency,
)
from rebase_core.synthesize.run import Run, pair_id
from rebase_core.synthesize.self_guide import synthesize_self_guide
from rebase_core.types import Failure, Pair, ProgressFn, Task, no_progress

__all__ = [
    "DEFAULT_STUDENT_LLM",
    "FAILURE_REASONS",
    "METHODS",
    "BaselineRun",
    "DirectConfig",
    "SelfGuideConfig",
    "SynthesisConfig",
    "SynthesisEstimate",
    "SynthesisResult",
    "Vote",
    "annealed_temperature",
    "clean_reply",
    "cut_answer_field",
    "estimate_synthesis",
    "label_schedule",
    "length_bounds",
    "make_config",
    "multi_vote",
    "noise_reason",
    "pair_id",
    "parse_pairs",
    "run_synthesize_job",
    "self_consistency",
    "synthesize",
]


def synthesize(
    task: Task,
    llm: LLM,
    method: str,
    n: int,
    config: SynthesisConfig | Mapping[str, Any] | None = None,
    *,
    cache: ResponseCache | None = None,
    on_progress: ProgressFn = no_progress,
    should_stop: Callable[[], bool] = lambda: False,
    on_pair: Callable[[Pair], None] | None = None,
    on_failure: Callable[[str, Failure], None] | None = None,
    existing: Sequence[Pair] = (),
    id_salt: str = "",
) -> SynthesisResult:
    """Write `n` baseline pairs for the task with `method` ("direct" or "self-guide").

    `existing` are pairs an earlier, interrupted call with the same arguments already made: their
    work is skipped and they count towards `n`. `id_salt` (e.g. the workspace run id) keeps pair
    ids of two runs with the same settings apart. See the module docstring for the methods.
    """
    if method not in METHODS:
        raise InputError(f"Unknown method {method!r}; expected one of {', '.join(METHODS)}.")
    if n < 1:
        raise InputError(f"The number of pairs must be at least 1, got {n}.")
    if config is None or isinstance(config, Mapping):
        config = make_config(method, config)
    if not isinstance(config, DirectConfig if method == "direct" else SelfGuideConfig):
        raise InputError(f"The {method} method needs its own config, got {type(config).__name__}.")
    run = Run(
        task,
        llm,
        method,
        config,
        cache=cache,
        should_stop=should_stop,
        on_progress=on_progress,
        existing=existing,
        id_salt=id_salt,
        target=int(n),
    )
    if isinstance(config, DirectConfig):
        return synthesize_direct(run, config, on_pair, on_failure)
    return synthesize_self_guide(run, config, on_pair, on_failure)


@dataclass(frozen=True, slots=True)
class BaselineRun:
    """Write `n` baseline pairs (direct or SELF-GUIDE) for a task into a pair run."""

    kind: ClassVar[str] = "synthesize"
    task_id: int
    method: str
    n: int
    llm: LLMRef
    config: SynthesisConfig
    pair_run: int = 0

    prompt_version: ClassVar[str] = ""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError(
                f"Unknown method {self.method!r}; expected one of {', '.join(METHODS)}."
            )
        if self.n < 1:
            raise InputError(f"The number of pairs must be at least 1, got {self.n}.")

    @property
    def run_kind(self) -> str:
        return self.method

    @property
    def llm_spec(self) -> str:
        return self.llm.spec

    def for_run(self, pair_run: int) -> BaselineRun:
        return replace(self, pair_run=pair_run)

    def job_key(self) -> str:
        return f"synthesize:{self.pair_run}"

    def to_params(self) -> dict[str, Any]:
        return {
            "pair_run": self.pair_run,
            "task_id": self.task_id,
            "method": self.method,
            "n": self.n,
            "config": asdict(self.config),
            **self.llm.to_params(),
        }

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> BaselineRun:
        method = str(params["method"])
        return cls(
            task_id=int(params["task_id"]),
            method=method,
            n=int(params["n"]),
            llm=LLMRef.from_params(params),
            config=make_config(method, params.get("config")),
            pair_run=int(params.get("pair_run") or 0),
        )


def run_synthesize_job(params: Mapping[str, Any], settings: Any, ctx: Any) -> dict[str, Any]:
    """Job handler of a `BaselineRun` (its params): write baseline pairs into its pair run,
    resuming where it stopped."""
    spec = BaselineRun.from_params(params)
    with pair_sink(settings, spec.task_id, spec.pair_run) as sink:
        existing = sink.existing()
        result = synthesize(
            sink.task,
            spec.llm.build(settings),
            spec.method,
            spec.n,
            spec.config,
            cache=ResponseCache(settings.llm_cache_db),
            on_progress=ctx.progress,
            should_stop=ctx.should_stop,
            on_pair=sink.save_pair,
            on_failure=sink.save_failure,
            existing=existing,
            id_salt=str(spec.pair_run),
        )
        total = len(existing) + len(result.pairs)
        return {
            "summary": f"{total} pairs ({len(result.pairs)} new), {len(result.failures)} "
            f"dropped ({failure_summary(result.failure_counts)})",
            "pairs": len(result.pairs),
            "total_pairs": total,
            "failures": result.failure_counts,
            "warnings": list(result.warnings),
            "asked_labels": dict(result.asked_labels),
            **usage_fields(result.usage),
        }
