"""Settings of the two baselines, their result record, and the cost estimate before a run."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from rebase_core.errors import InputError
from rebase_core.finetune.config import DEFAULT_STUDENT as STUDENT_MODEL
from rebase_core.llm import UsageSummary, estimate_cost, estimate_tokens
from rebase_core.types import Failure, Pair, Task

METHODS = ("direct", "self-guide")
# SELF-GUIDE's default LLM: the student the Fine-tune page trains, as a llama.cpp spec.
DEFAULT_STUDENT_LLM = f"local:{STUDENT_MODEL}"
FAILURE_REASONS = (
    "provider",  # the call failed after retries
    "parse",  # the reply held no usable JSON pair
    "missing",  # the reply held fewer pairs than asked for
    "empty",  # nothing left after cleaning
    "noise",  # template noise: input/output labels, "__", blank lines
    "length",  # cut off at max_tokens, or an output outside the length bounds
    "off-label",  # no answer named a label of the task (classification)
    "inconsistent",  # no answer reached the self-consistency share
    "duplicate",  # the same input as an example, an earlier pair, or a pair that won the vote
)


@dataclass(frozen=True, slots=True)
class DirectConfig:
    """Direct generation. Temperatures follow prompt2model (0.5 rising); the cap is lower than its
    1.7 because current models break JSON above ~1.2, and Anthropic accepts at most 1.0."""

    per_call: int = 5  # pairs asked for in one call
    calls_per_round: int = 4  # calls that share one view of the earlier inputs
    start_temperature: float = 0.5
    max_temperature: float = 1.2
    max_tokens: int = 2000
    earlier_shown: int = 5  # inputs from earlier rounds shown in the prompt
    max_attempts: float = 3.0  # pairs asked for, at most, per pair wanted
    json_schema: bool = True
    concurrency: int = 4
    max_retries: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        _check_range("per_call", self.per_call, 1, 50)
        _check_range("calls_per_round", self.calls_per_round, 1, 1000)
        _check_range("start_temperature", self.start_temperature, 0.0, 2.0)
        _check_range("max_temperature", self.max_temperature, self.start_temperature, 2.0)
        _check_range("max_tokens", self.max_tokens, 64, 100_000)
        _check_range("max_attempts", self.max_attempts, 1.0, 100.0)
        _check_range("concurrency", self.concurrency, 1, 256)


@dataclass(frozen=True, slots=True)
class SelfGuideConfig:
    """SELF-GUIDE. The reference uses 10 samples at T 0.2 and a share of 0.3 (0.2 in the paper's
    default); 5 samples keep a CPU student fast. Input temperature 0.7 as in the reference."""

    inputs_per_round: int = 10  # inputs written before they are annotated together
    input_temperature: float = 0.7
    samples: int = 5  # answers per input for self-consistency
    answer_temperature: float = 0.2
    min_share: float = 0.3  # the winning answer's share of the answered samples
    earlier_shown: int = 3  # inputs from earlier rounds shown in the prompt
    length_filter: bool = True  # generation tasks: outputs within mean ± 2 std of the examples'
    min_length_slack: float = 0.5  # the bounds are at least mean ± this share of the mean
    max_input_tokens: int = 256
    max_output_tokens: int = 256
    max_attempts: float = 4.0  # inputs written, at most, per pair wanted
    concurrency: int = 4
    max_retries: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        _check_range("inputs_per_round", self.inputs_per_round, 1, 1000)
        _check_range("samples", self.samples, 1, 50)
        _check_range("min_share", self.min_share, 0.0, 1.0)
        _check_range("input_temperature", self.input_temperature, 0.0, 2.0)
        _check_range("answer_temperature", self.answer_temperature, 0.0, 2.0)
        _check_range("max_attempts", self.max_attempts, 1.0, 100.0)
        _check_range("concurrency", self.concurrency, 1, 256)


SynthesisConfig = DirectConfig | SelfGuideConfig


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise InputError(f"{name} must be between {lo:g} and {hi:g}, got {value}.")


def make_config(method: str, values: Mapping[str, Any] | None = None) -> SynthesisConfig:
    """The config of a method from a mapping (job params, CLI flags); unknown keys are errors."""
    if method not in METHODS:
        raise InputError(f"Unknown method {method!r}; expected one of {', '.join(METHODS)}.")
    cls: type[DirectConfig] | type[SelfGuideConfig] = (
        DirectConfig if method == "direct" else SelfGuideConfig
    )
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(
            f"Unknown {method} setting(s) {', '.join(unknown)}; expected some of "
            f"{', '.join(sorted(known))}."
        )
    return cls(**values)


@dataclass(frozen=True, slots=True)
class SynthesisResult:
    """What one `synthesize` call made. `pairs` are the new ones (not those it resumed from)."""

    method: str
    pairs: tuple[Pair, ...]
    failures: tuple[tuple[str, Failure], ...]  # (work key, failure)
    usage: UsageSummary | None
    warnings: tuple[str, ...] = ()
    label_counts: Mapping[str, int] = field(default_factory=dict)
    asked_labels: Mapping[str, int] = field(default_factory=dict)  # self-guide, classification
    calls: int = 0  # generation calls (direct: pair lists; self-guide: inputs), cached included

    @property
    def failure_counts(self) -> dict[str, int]:
        return dict(Counter(f.reason for _, f in self.failures))


@dataclass(frozen=True, slots=True)
class SynthesisEstimate:
    """Calls, tokens and cost of a run before it starts. `calls` assumes every call yields what it
    asks for; `max_calls` is the attempts budget. Costs are None when the price is unknown."""

    calls: int
    max_calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    max_cost_usd: float | None


def estimate_synthesis(
    task: Task, llm_spec: str, method: str, n: int, config: SynthesisConfig | None = None
) -> SynthesisEstimate:
    """What `synthesize(task, llm, method, n, config)` is expected to cost (cache hits ignored)."""
    config = config or make_config(method)
    ex_in = sum(estimate_tokens(e.input) for e in task.examples) / len(task.examples)
    ex_out = sum(estimate_tokens(e.output) for e in task.examples) / len(task.examples)
    prompt = estimate_tokens(task.instruction) + sum(
        estimate_tokens(e.input + e.output) + 8 for e in task.examples
    )
    tokens_in: float
    tokens_out: float
    max_in: float
    max_out: float
    if isinstance(config, DirectConfig):
        calls = math.ceil(n / config.per_call)
        max_calls = math.ceil(config.max_attempts * n / config.per_call)
        per_in = prompt + 150 + config.earlier_shown * ex_in
        per_out = min(config.max_tokens, config.per_call * (ex_in + ex_out + 12))
        tokens_in, tokens_out = calls * per_in, calls * per_out
        max_in, max_out = max_calls * per_in, max_calls * config.max_tokens
    else:
        calls = n * (1 + config.samples)
        max_calls = math.ceil(config.max_attempts * n) * (1 + config.samples)
        gen_in = (
            estimate_tokens(task.instruction) + (len(task.examples) + config.earlier_shown) * ex_in
        )
        gen_in += 40
        ans_in = prompt + ex_in + 10
        tokens_in = n * (gen_in + config.samples * ans_in)
        tokens_out = n * (ex_in + config.samples * ex_out)
        scale = max_calls / max(1, calls)
        max_in, max_out = tokens_in * scale, tokens_out * scale
    return SynthesisEstimate(
        calls=calls,
        max_calls=max_calls,
        input_tokens=int(tokens_in),
        output_tokens=int(tokens_out),
        cost_usd=estimate_cost(llm_spec, int(tokens_in), int(tokens_out)),
        max_cost_usd=estimate_cost(llm_spec, int(max_in), int(max_out)),
    )
