"""Running a student on a test set: greedy batched generation, scoring, and the written report;
the test sets and the models the app offers.

`evaluate` is the entry point; its job handler is in `evaluate.jobs`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rebase_core.errors import InputError
from rebase_core.evaluate.compare import ORIGIN_LABELS
from rebase_core.evaluate.metrics import (
    answer_counts,
    balanced_accuracy,
    balanced_accuracy_ci,
    bootstrap_ci,
    infer_metric,
    mean_words,
    score_example,
)
from rebase_core.finetune import (
    DEFAULT_STUDENT,
    Student,
    format_prompt,
    list_runs,
    load_student,
    read_run_card,
    slugify,
)
from rebase_core.heldout_split import HELD_OUT_SHARE
from rebase_core.jsonl import read_jsonl
from rebase_core.settings import Settings
from rebase_core.task import final_answer, is_chain_of_thought
from rebase_core.types import EvalReport, Progress, ProgressFn, Task, no_progress

if TYPE_CHECKING:
    from rebase_core.bundled import HeldoutSet
    from rebase_core.finetune import RunInfo

STOP_MARKERS = ("\n###", "###")  # the model starting a new prompt section ends its answer


# ----------------------------------------------------------------------------- generation


def _as_student(model: Student | str | Path, settings: Settings | None) -> Student:
    return model if isinstance(model, Student) else load_student(model, settings=settings)


def generate(
    student: Student,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int = 8,
    should_stop: Callable[[], bool] = lambda: False,
    on_batch: Callable[[int], None] = lambda _: None,
) -> list[str | None]:
    """Greedy completions of `prompts`, batched by similar length, cut at the end of the answer.

    When `should_stop` asks to stop, the prompts not reached yet get None.
    """
    import torch

    tok = student.tokenizer
    tok.padding_side = "left"  # decoder-only: new tokens must follow the prompt directly
    limit = _prompt_budget(student, max_new_tokens)
    encoded = [tok(p, add_special_tokens=False)["input_ids"][-limit:] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    outputs: dict[int, str] = {}
    for start in range(0, len(order), batch_size):
        if should_stop():
            break
        batch = order[start : start + batch_size]
        padded = tok.pad({"input_ids": [encoded[i] for i in batch]}, return_tensors="pt")
        padded = {k: v.to(student.device) for k, v in padded.items()}
        with torch.inference_mode():
            out = student.model.generate(
                **padded,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.convert_tokens_to_ids(tok.eos_token),
                stop_strings=list(STOP_MARKERS),
                tokenizer=tok,
            )
        new_tokens = out[:, padded["input_ids"].shape[1] :]
        for i, text in zip(
            batch, tok.batch_decode(new_tokens, skip_special_tokens=True), strict=True
        ):
            outputs[i] = _cut(text)
        on_batch(len(outputs))
    return [outputs.get(i) for i in range(len(prompts))]


def _prompt_budget(student: Student, max_new_tokens: int) -> int:
    context = int(getattr(student.model.config, "max_position_embeddings", 0) or 2048)
    budget = context - max_new_tokens
    if student.max_seq_len:
        budget = min(budget, student.max_seq_len)
    return max(16, budget)


def _cut(text: str) -> str:
    for marker in STOP_MARKERS:
        pos = text.find(marker)
        if pos >= 0:
            text = text[:pos]
    return text.strip()


def _token_budget(student: Student, texts: Iterable[str]) -> int:
    longest = max(
        (len(student.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts),
        default=32,
    )
    return int(min(512, max(8, longest * 1.5 + 8)))


def generate_answer(
    model: Student | str | Path,
    task: Task,
    text: str,
    *,
    few_shot: bool | None = None,
    max_new_tokens: int | None = None,
    settings: Settings | None = None,
) -> str:
    """The student's answer to one input (the "try it" box), with the prompt it was trained on."""
    student = _as_student(model, settings)
    with_examples = _with_examples(student, few_shot)
    budget = max_new_tokens or _token_budget(student, [e.output for e in task.examples])
    prompt = format_prompt(task, text, with_examples=with_examples)
    return generate(student, [prompt], max_new_tokens=budget)[0] or ""


@dataclass(frozen=True, slots=True)
class SideBySide:
    """A trained and an untrained student's answers to one input (the "try it" box)."""

    run: str  # the trained run's name
    untrained: str  # the untrained student's name
    trained_answer: str
    untrained_answer: str
    seconds: float


def answer_side_by_side(
    trained: Student, untrained: Student, task: Task, text: str, *, untrained_few_shot: bool
) -> SideBySide:
    """Both students' answers to `text`: the trained one with the prompt it was trained on, the
    untrained one zero- or few-shot."""
    started = time.monotonic()
    trained_answer = generate_answer(trained, task, text)
    untrained_answer = generate_answer(untrained, task, text, few_shot=untrained_few_shot)
    return SideBySide(
        trained.name,
        untrained.name,
        trained_answer,
        untrained_answer,
        time.monotonic() - started,
    )


def _with_examples(student: Student, few_shot: bool | None) -> bool:
    if few_shot is not None:
        return few_shot
    return bool(student.with_examples)  # a run: as trained; an untrained model: zero-shot


# ----------------------------------------------------------------------------- evaluate


def load_test_set(path: str | Path, limit: int | None = None) -> list[dict[str, str]]:
    """Held-out rows `{"input", "output"}` (the first `limit` of them)."""
    rows = []
    for i, rec in enumerate(read_jsonl(path), start=1):
        if not isinstance(rec.get("input"), str) or not isinstance(rec.get("output"), str):
            raise InputError(f"{path}: row {i} needs string 'input' and 'output' fields.")
        rows.append({"input": rec["input"], "output": rec["output"]})
    if not rows:
        raise InputError(f"Test set {path} is empty; give a JSONL file with input/output rows.")
    return rows[:limit] if limit else rows


def store_test_set(settings: Settings, filename: str, data: bytes) -> Path:
    """Keep an uploaded test file in the workspace (`<home>/test_sets/<stem>-<hash>.jsonl`): the
    same bytes give the same file, so reports of one upload line up."""
    digest = hashlib.sha256(data).hexdigest()[:8]
    path = settings.home / "test_sets" / f"{Path(filename).stem}-{digest}.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return path


@dataclass(frozen=True, slots=True)
class EvalSetChoices:
    """The test sets the Evaluate page offers: the workspace's held-out sets, an upload, a path."""

    sets: Mapping[str, HeldoutSet]  # by choice key, "heldout:<name>"
    labels: Mapping[str, str]  # every choice key -> how the picker shows it
    default: str  # the held-out set of the task's name, else "upload"

    @property
    def keys(self) -> list[str]:
        return list(self.labels)


CURATED_CHOICE = "curated"


def eval_set_choices(settings: Settings, task_name: str, n_curated: int = 0) -> EvalSetChoices:
    """The held-out sets (written by `corpus prepare`), a held-out share of the task's curated
    pairs (`heldout_split`), and the two ways to give one's own. The default: the held-out set
    of the task's name, else the curated split when the task has curated pairs, else an upload."""
    from rebase_core.bundled import heldout_sets

    sets = {f"heldout:{h.name}": h for h in heldout_sets(settings)}
    labels = {k: f"{h.name} · {h.n_test:,} rows · {h.metric}" for k, h in sets.items()}
    share = round(1 / HELD_OUT_SHARE)
    labels[CURATED_CHOICE] = f"1 in {share} of your curated pairs, held out from training"
    labels.update(upload="Upload a JSONL file…", path="A JSONL file on this machine…")
    if f"heldout:{task_name}" in sets:
        default = f"heldout:{task_name}"
    else:
        default = CURATED_CHOICE if n_curated else "upload"
    return EvalSetChoices(sets, labels, default)


@dataclass(frozen=True, slots=True)
class ModelChoices:
    """The models the Evaluate page offers for a task: its finished runs and an untrained one."""

    runs: Mapping[str, RunInfo]  # the task's finished runs by name, newest first
    labels: Mapping[str, str]  # run name -> how the picker shows it: name, data origin, pairs
    untrained: str  # the default untrained student: the latest run's, else DEFAULT_STUDENT


def model_choices(settings: Settings, task_name: str) -> ModelChoices:
    """The task's finished runs to evaluate (labelled by data origin and size) and the untrained
    student to compare them with: the student of the task's latest run, finished or not."""
    task_runs = list_runs(settings, task_name=task_name)
    done = {r.name: r for r in task_runs if r.status == "done"}
    labels = {
        name: f"{name} · {ORIGIN_LABELS.get(r.origin, r.origin)} · {r.n_train:,} pairs"
        for name, r in done.items()
    }
    untrained = (task_runs[0].student if task_runs else "") or DEFAULT_STUDENT
    return ModelChoices(done, labels, untrained)


def runs_trained_on(runs: Iterable[RunInfo], test_path: Path) -> dict[str, int]:
    """For each run that trained on rows of the test file, how many (matched by pair id, else
    by input and output): its score on that file would be measured on its own training data."""
    test_ids: set[str] = set()
    test_texts: set[tuple[object, object]] = set()
    for rec in read_jsonl(test_path):
        test_texts.add((rec.get("input"), rec.get("output")))
        if rec.get("id"):
            test_ids.add(str(rec["id"]))
    found: dict[str, int] = {}
    for run in runs:
        files = [Path(f) for f in read_run_card(run.path).get("data_files") or []]
        seen = sum(
            1
            for f in files
            if f.exists()
            for rec in read_jsonl(f)
            if rec.get("id") in test_ids or (rec.get("input"), rec.get("output")) in test_texts
        )
        if seen:
            found[run.name] = seen
    return found


def _default_out(
    student: Student, task: Task, test: Path, few_shot: bool, settings: Settings
) -> Path:
    name = f"{slugify(task.name)}-{slugify(test.stem)}-{'few' if few_shot else 'zero'}-shot.json"
    if student.run_dir is not None:
        return student.run_dir / "evals" / name
    return settings.home / "evals" / slugify(student.name) / name


def evaluate(
    task: Task,
    model: Student | str | Path,
    test_path: str | Path,
    *,
    settings: Settings,
    limit: int | None = None,
    few_shot: bool | None = None,
    max_new_tokens: int | None = None,
    batch_size: int = 8,
    out: Path | None = None,
    on_progress: ProgressFn = no_progress,
    should_stop: Callable[[], bool] = lambda: False,
) -> EvalReport:
    """Score `model` (a run folder, model folder, student spec or loaded Student) on a test set.

    `few_shot` None means: as the run was trained (examples in the prompt), or zero-shot for an
    untrained model. Writes the report to `out` (default: the run's `evals/` folder, else
    `<home>/evals/<model>/`) and the per-example rows next to it (`.jsonl`); a report of a run
    evaluated elsewhere is also copied into the run's `evals/`, so `list_runs` shows it.
    """
    started = time.monotonic()
    test_path = Path(test_path)
    rows = load_test_set(test_path, limit)
    golds = [r["output"] for r in rows]
    metric = infer_metric(task, golds)
    student = _as_student(model, settings)
    with_examples = _with_examples(student, few_shot)
    budget = max_new_tokens or _token_budget(
        student,
        [e.output for e in task.examples] + golds
        if is_chain_of_thought(task.examples) or metric == "chrf"
        else [final_answer(g) for g in golds] + [final_answer(e.output) for e in task.examples],
    )
    prompts = [format_prompt(task, r["input"], with_examples=with_examples) for r in rows]
    total = len(prompts)
    on_progress(Progress(0, total, f"evaluating {student.name}"))
    predictions = generate(
        student,
        prompts,
        max_new_tokens=budget,
        batch_size=batch_size,
        should_stop=should_stop,
        on_batch=lambda done: on_progress(Progress(done, total, f"evaluating {student.name}")),
    )
    labels = [final_answer(o) for o in [e.output for e in task.examples] + golds]
    scored = [
        {
            "input": row["input"],
            "gold": row["output"],
            "prediction": pred,
            **score_example(metric, pred, row["output"], labels),
        }
        for row, pred in zip(rows, predictions, strict=True)
        if pred is not None
    ]
    report = _report(metric, scored, student, task, test_path, with_examples, budget)
    extra = dict(report.extra)
    extra["elapsed_s"] = round(time.monotonic() - started, 2)
    if len(scored) < total:
        extra["stopped_after"] = len(scored)
    out = Path(out) if out else _default_out(student, task, test_path, with_examples, settings)
    per_example = out.with_suffix(".jsonl")
    report = EvalReport(report.metric, report.score, report.n, report.ci95, str(per_example), extra)
    _write_outputs(report, scored, out, student)
    return report


def summarize_scores(metric: str, scored: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """{metric: {"score": mean, "ci95": [low, high]}} over scored rows (`score_example` output);
    extractive QA reports both exact match and F1, a label task accuracy and balanced accuracy
    (the mean per-label recall, which a model answering one label to every row cannot raise)."""
    names = ("exact_match", "f1") if metric in ("exact_match", "f1") else (metric,)
    summary = {}
    for name in dict.fromkeys((metric, *names)):
        values = [float(s[name] if name in s else s["score"]) for s in scored]
        summary[name] = {
            "score": sum(values) / len(values) if values else 0.0,
            "ci95": list(bootstrap_ci(values)),
        }
    if metric == "accuracy" and scored and all("gold" in s for s in scored):
        golds = [str(s["gold"]) for s in scored]
        values = [float(s["score"]) for s in scored]
        summary["balanced_accuracy"] = {
            "score": balanced_accuracy(golds, values),
            "ci95": list(balanced_accuracy_ci(golds, values)),
        }
    return summary


def _report(
    metric: str,
    scored: Sequence[Mapping[str, Any]],
    student: Student,
    task: Task,
    test_path: Path,
    few_shot: bool,
    max_new_tokens: int,
) -> EvalReport:
    scores = [float(s["score"]) for s in scored]
    score = sum(scores) / len(scores) if scores else 0.0
    metrics = summarize_scores(metric, scored)
    card = read_run_card(student.run_dir) if student.run_dir else {}
    data = card.get("data", {})
    origins = [o for o, n in data.get("by_origin", {}).items() if n]
    shots = "few-shot" if few_shot else "zero-shot"
    extra: dict[str, Any] = {
        "metrics": metrics,
        "model": str(student.run_dir or student.name),
        "label": f"{student.name}" if student.run_dir else f"untrained ({shots})",
        "trained": student.run_dir is not None,
        "origin": (origins[0] if len(origins) == 1 else "mixed") if origins else "",
        "n_train": int(data.get("n_pairs", 0)),
        "few_shot": few_shot,
        "task": task.name,
        "test": str(test_path),
        "max_new_tokens": max_new_tokens,
    }
    if metric == "accuracy":  # which labels the model gives, and how often
        extra["answers"] = answer_counts(str(s.get("extracted", "")) for s in scored)
    if metric in ("exact_match", "f1") and scored:  # long answers: partial F1, no exact match
        extra["answer_words"] = round(mean_words(str(s["extracted"]) for s in scored), 2)
        extra["gold_words"] = round(mean_words(final_answer(str(s["gold"])) for s in scored), 2)
    return EvalReport(metric, score, len(scored), bootstrap_ci(scores), "", extra)


def _write_outputs(
    report: EvalReport, scored: Sequence[Mapping[str, Any]], out: Path, student: Student
) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in scored)
    Path(report.per_example).write_text(lines, encoding="utf-8")
    text = json.dumps(report.to_json_dict(), ensure_ascii=False, indent=2) + "\n"
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    if student.run_dir is not None:
        copy = student.run_dir / "evals" / out.name
        if copy.resolve() != out.resolve():
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_text(text, encoding="utf-8")
