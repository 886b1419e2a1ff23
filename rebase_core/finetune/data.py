"""Training data: the pairs chosen to train on, pairs read from JSONL, their summary for the run
card, and the run fingerprint.

The fingerprint ties a run folder to one task, data set and config (what makes a resume valid).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rebase_core.errors import InputError
from rebase_core.finetune.config import DEFAULT_STATUSES, TrainConfig, total_steps
from rebase_core.jsonl import read_jsonl
from rebase_core.types import PAIR_ORIGINS, PAIR_STATUSES, Example, Pair, Task


@dataclass(frozen=True, slots=True)
class PairChoice:
    """The pairs of the chosen origins and statuses, with the counts the pickers show.

    Each picker counts within the other's choice: an origin's count is its pairs of the chosen
    statuses, a status's count its pairs of the chosen origins, so the numbers add up to what
    trains. `usable` are the chosen pairs with a non-empty input and output: what `finetune`
    trains on, so steps are counted on them.
    """

    origins: tuple[str, ...]
    statuses: tuple[str, ...]
    present_origins: tuple[str, ...]  # every origin among the pairs, known ones first
    pairs: tuple[Pair, ...]
    by_origin: Mapping[str, int]
    by_status: Mapping[str, int]

    @property
    def usable(self) -> tuple[Pair, ...]:
        return tuple(p for p in self.pairs if p.input.strip() and p.output.strip())

    def steps(self, config: TrainConfig) -> int:
        """Optimizer steps of a run on the usable pairs (0 without any)."""
        return total_steps(len(self.usable), config) if self.usable else 0


def choose_pairs(
    pairs: Sequence[Pair],
    origins: Collection[str] | None = None,
    statuses: Collection[str] | None = None,
) -> PairChoice:
    """The pairs to train on: those whose origin and status are chosen.

    `origins` None: ReBase pairs when there are any, else every origin; `statuses` None: the
    curated ones (accepted, edited). An origin no pair has is dropped from the choice.
    """
    found = Counter(p.origin for p in pairs)
    present = [o for o in PAIR_ORIGINS if found[o]] + sorted(set(found) - set(PAIR_ORIGINS))
    if origins is None:
        origins = ["rebase"] if found["rebase"] else present
    chosen_origins = tuple(o for o in present if o in set(origins))
    chosen_statuses = DEFAULT_STATUSES if statuses is None else tuple(dict.fromkeys(statuses))
    by_origin = Counter(p.origin for p in pairs if p.status in chosen_statuses)
    by_status = Counter(p.status for p in pairs if p.origin in chosen_origins)
    known = set(PAIR_STATUSES)
    return PairChoice(
        origins=chosen_origins,
        statuses=chosen_statuses,
        present_origins=tuple(present),
        pairs=tuple(p for p in pairs if p.origin in chosen_origins and p.status in chosen_statuses),
        by_origin={o: by_origin[o] for o in present},
        by_status={s: by_status[s] for s in (*PAIR_STATUSES, *sorted(set(by_status) - known))},
    )


def load_training_pairs(
    paths: Sequence[str | Path], statuses: Sequence[str] | None = DEFAULT_STATUSES
) -> list[Pair]:
    """Pairs from JSONL files, keeping those whose status is in `statuses` (None: all).

    A record without a `status` field counts as accepted: a plain `{"input", "output"}` file is
    data the user chose on purpose.
    """
    if not paths:
        raise InputError("No training data given; pass at least one JSONL file of pairs.")
    pairs: list[Pair] = []
    seen: Counter[str] = Counter()
    for path in paths:
        for i, rec in enumerate(read_jsonl(path), start=1):
            if not isinstance(rec.get("input"), str) or not isinstance(rec.get("output"), str):
                raise InputError(f"{path}: record {i} needs string 'input' and 'output' fields.")
            rec = dict(rec)
            rec.setdefault("status", "accepted")
            rec.setdefault("id", f"{Path(path).stem}-{i}")
            pair = Pair.from_json_dict(rec)
            seen[pair.status] += 1
            if statuses is None or pair.status in statuses:
                pairs.append(pair)
    if not pairs:
        found = ", ".join(f"{s} {n}" for s, n in seen.items()) or "no records"
        wanted = ", ".join(statuses or ())
        raise InputError(
            f"No training pairs with status {wanted} in {', '.join(map(str, paths))} (found: "
            f"{found}). Curate the pairs first, or choose the statuses to train on."
        )
    return pairs


def data_summary(items: Sequence[Pair | Example]) -> dict[str, Any]:
    origins: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    llms: set[str] = set()
    prompts: set[str] = set()
    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps([item.input, item.output]).encode())
        if isinstance(item, Pair):
            origins[item.origin] += 1
            statuses[item.status] += 1
            if item.source:
                sources[item.source.dataset] += 1
            if item.llm:
                llms.add(item.llm)
            if item.prompt_version:
                prompts.add(item.prompt_version)
        else:
            origins["manual"] += 1
    return {
        "n_pairs": len(items),
        "by_origin": dict(origins),
        "by_status": dict(statuses),
        "source_datasets": dict(sources.most_common()),
        "llms": sorted(llms),
        "prompt_versions": sorted(prompts),
        "fingerprint": digest.hexdigest()[:16],
    }


def run_fingerprint(config: TrainConfig, data_fingerprint: str, task: Task) -> str:
    # threads and checkpoint frequency do not change what is learned: a resume may alter them.
    relevant = {k: v for k, v in asdict(config).items() if k not in ("threads", "save_every_steps")}
    blob = json.dumps([relevant, data_fingerprint, task.to_dict()], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
