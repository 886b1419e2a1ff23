"""Evaluate a student on a held-out set: metric by task type, answer extraction, bootstrap CIs.

Metrics (contracts.md): `accuracy` for closed label sets, after label normalisation ("(A)" = "A",
"Yes." = "yes") and after mapping a wordy answer onto the label set; `exact_match` and `f1` with
SQuAD's normalisation for short answers; `chrf` (character 6-grams, beta 2) for code. Outputs that
reason ("... so the answer is X") are scored on X. The prompt is `finetune.format_prompt`, the one
the student was trained with; decoding is greedy.
"""

from __future__ import annotations

import json
import logging
import re
import string
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rebase_core.errors import InputError
from rebase_core.finetune import (
    Student,
    format_prompt,
    load_student,
    read_run_card,
    slugify,
    task_from_param,
)
from rebase_core.jsonl import read_jsonl
from rebase_core.settings import Settings
from rebase_core.task import final_answer, is_chain_of_thought
from rebase_core.types import METRICS, EvalReport, Progress, ProgressFn, Task, no_progress

logger = logging.getLogger(__name__)

BOOTSTRAP_RESAMPLES = 1000
STOP_MARKERS = ("\n###", "###")  # the model starting a new prompt section ends its answer
MAX_LABELS = 20  # more distinct answers than this is not a closed label set

# ----------------------------------------------------------------------------- normalisation

_PUNCT = set(string.punctuation) | set("“”‘’«»…–—")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_label(text: str) -> str:
    """Case, punctuation and spacing folded: "(A)" -> "a", "Yes." -> "yes", "not_entailment" ->
    "not entailment"."""
    cleaned = "".join(" " if ch in _PUNCT else ch for ch in text.lower())
    return " ".join(cleaned.split())


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def extract_answer(prediction: str) -> str:
    """The answer part of a prediction: after "the answer is", without an "Answer:" prefix."""
    answer = final_answer(prediction)
    answer = re.sub(r"^\s*(final\s+)?answer\s*:\s*", "", answer, flags=re.IGNORECASE)
    return answer.strip()


def match_label(prediction: str, labels: Iterable[str]) -> str:
    """Map a prediction onto a known (normalised) label, or return it normalised.

    Order: the whole answer is a label; the answer starts with one ("yes, because ..."); else the
    last label named anywhere in the text (longest first, so "not entailment" beats "entailment").
    """
    known = sorted(
        {normalize_label(x) for x in labels if normalize_label(x)}, key=len, reverse=True
    )
    answer = normalize_label(extract_answer(prediction))
    if answer in known:
        return answer
    for label in known:
        if answer.startswith(label + " "):
            return label
    if known:
        pattern = re.compile(r"\b(" + "|".join(re.escape(x) for x in known) + r")\b")
        found = pattern.findall(normalize_label(prediction))
        if found:
            return str(found[-1])
    return answer


# ----------------------------------------------------------------------------- metrics


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """SQuAD token F1 between normalised answers (1.0 when both are empty)."""
    pred = normalize_answer(prediction).split()
    ref = normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def _char_ngrams(text: str, n: int) -> Counter[str]:
    return Counter(text[i : i + n] for i in range(len(text) - n + 1))


def chrf(prediction: str, reference: str, *, order: int = 6, beta: float = 2.0) -> float:
    """Sentence chrF (Popović 2015) in [0, 1]: character n-gram precision and recall, n = 1..6,
    averaged over n, combined as F-beta (recall weighs beta times more).

    Whitespace is removed first, as sacrebleu does. An order counts only when both strings have
    n-grams of it (sacrebleu's effective order), so identical short strings score 1.
    """
    hyp = "".join(prediction.split())
    ref = "".join(reference.split())
    precisions, recalls = [], []
    for n in range(1, order + 1):
        hyp_grams, ref_grams = _char_ngrams(hyp, n), _char_ngrams(ref, n)
        if not hyp_grams or not ref_grams:
            continue
        matched = sum((hyp_grams & ref_grams).values())
        precisions.append(matched / sum(hyp_grams.values()))
        recalls.append(matched / sum(ref_grams.values()))
    if not precisions:
        return float(hyp == ref)
    p, r = sum(precisions) / len(precisions), sum(recalls) / len(recalls)
    if p == 0 and r == 0:
        return 0.0
    b2 = beta * beta
    return (1 + b2) * p * r / (b2 * p + r)


def bootstrap_ci(
    scores: Sequence[float], *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean (seeded, so reports are reproducible)."""
    import numpy as np

    values = np.asarray(scores, dtype=np.float64)
    if values.size == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // values.size)  # bounds memory on large test sets
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, values.size, size=(stop - start, values.size))
        means[start:stop] = values[idx].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return (float(low), float(high))


_CODE_SIGNS = re.compile(
    r"(\bdef |\bimport |\breturn\b|\bprint\(|\bfor \w+ in\b|\w+\.\w+\(|\w+\([^)]*\)|==|\+=|;$|[{}])"
)


def _looks_like_code(text: str) -> bool:
    return bool(_CODE_SIGNS.search(text)) and not text.rstrip().endswith((".", "?", "!"))


def infer_metric(task: Task, golds: Sequence[str] = ()) -> str:
    """The metric for a task: `task.metric` if set, else inferred from the example and gold
    outputs (contracts.md): code -> chrf; a small closed label set -> accuracy; else exact_match."""
    if task.metric:
        return task.metric
    outputs = [e.output for e in task.examples] + list(golds)
    answers = [final_answer(o) for o in outputs]
    if sum(_looks_like_code(a) for a in answers) * 2 > len(answers):
        return "chrf"
    labels = {normalize_label(a) for a in answers}
    short = all(len(a.split()) <= 3 for a in labels)
    if golds:
        # Labels repeat: few distinct answers compared with the number of test rows.
        closed = len(labels) <= MAX_LABELS and len(labels) * 2 <= len(answers)
    else:
        repeated = len(labels) < len(answers)
        closed = repeated or labels <= {"yes", "no", "true", "false", "a", "b", "c", "d", "e"}
    return "accuracy" if short and closed else "exact_match"


def score_example(metric: str, prediction: str, gold: str, labels: Iterable[str]) -> dict[str, Any]:
    """Extracted answer and score(s) of one prediction under `metric`."""
    gold_answer = final_answer(gold)
    if metric == "accuracy":
        extracted = match_label(prediction, labels)
        correct = extracted == normalize_label(gold_answer)
        return {"extracted": extracted, "score": float(correct), "correct": correct}
    if metric in ("exact_match", "f1"):
        extracted = extract_answer(prediction)
        em, f1 = exact_match(extracted, gold_answer), f1_score(extracted, gold_answer)
        return {
            "extracted": extracted,
            "score": em if metric == "exact_match" else f1,
            "exact_match": em,
            "f1": f1,
            "correct": bool(em),
        }
    if metric == "chrf":
        extracted = _strip_code_fence(prediction)
        return {"extracted": extracted, "score": chrf(extracted, gold)}
    raise InputError(f"Unknown metric {metric!r}; expected one of {', '.join(METRICS)}.")


def _strip_code_fence(text: str) -> str:
    fenced = re.search(r"```[\w+-]*\n(.*?)(```|$)", text, re.DOTALL)
    return (fenced.group(1) if fenced else text).strip()


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
    metrics = {metric: {"score": score, "ci95": list(bootstrap_ci(scores))}}
    if metric in ("exact_match", "f1"):  # extractive QA reports both
        for name in ("exact_match", "f1"):
            values = [float(s[name]) for s in scored]
            metrics[name] = {
                "score": sum(values) / len(values) if values else 0.0,
                "ci95": list(bootstrap_ci(values)),
            }
    card = read_run_card(student.run_dir) if student.run_dir else {}
    data = card.get("data", {})
    origins = [o for o, n in data.get("by_origin", {}).items() if n]
    shots = "few-shot" if few_shot else "zero-shot"
    extra = {
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


def report_from_json(data: Mapping[str, Any]) -> EvalReport:
    """An EvalReport read back from its JSON form."""
    known = {"metric", "score", "n", "ci95", "per_example"}
    low, high = data.get("ci95") or (0.0, 0.0)
    return EvalReport(
        metric=str(data["metric"]),
        score=float(data["score"]),
        n=int(data.get("n", 0)),
        ci95=(float(low), float(high)),
        per_example=str(data.get("per_example", "")),
        extra={k: v for k, v in data.items() if k not in known},
    )


def run_evaluate_job(params: Mapping[str, Any], settings: Settings, ctx: Any) -> dict[str, Any]:
    """Job handler: params `task` (path or object), `model`, `test`, optional `limit`,
    `few_shot`, `max_new_tokens`, `out`."""
    task = task_from_param(params.get("task"))
    model = params.get("model")
    if not model:
        raise InputError("The evaluate job needs 'model': a run folder, model folder or spec.")
    if not params.get("test"):
        raise InputError("The evaluate job needs 'test': a held-out JSONL file.")
    report = evaluate(
        task,
        str(model),
        params["test"],
        settings=settings,
        limit=params.get("limit"),
        few_shot=params.get("few_shot"),
        max_new_tokens=params.get("max_new_tokens"),
        out=Path(params["out"]) if params.get("out") else None,
        on_progress=ctx.progress,
        should_stop=ctx.should_stop,
    )
    return report.to_json_dict()


# ----------------------------------------------------------------------------- comparison


@dataclass(frozen=True, slots=True)
class ComparisonRow:
    """One bar of the results chart: a model (untrained or a run) on one test set."""

    label: str
    origin: str  # rebase | direct | self-guide | mixed | "" (untrained)
    trained: bool
    few_shot: bool
    n_train: int
    test: str
    metric: str
    score: float
    ci_low: float
    ci_high: float
    n: int
    model: str


def stored_reports(settings: Settings, *, task_name: str | None = None) -> list[EvalReport]:
    """Every evaluation report kept in the workspace (runs' `evals/` and `<home>/evals/`)."""
    paths = list((settings.home / "evals").glob("*/*.json"))
    if settings.runs_dir.is_dir():
        paths += list(settings.runs_dir.glob("*/evals/*.json"))
    reports = []
    for path in sorted(paths):
        try:
            report = report_from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            logger.warning("skipping unreadable report %s", path)
            continue
        if task_name is None or report.extra.get("task") == task_name:
            reports.append(report)
    return reports


_ORIGIN_ORDER = {"": 0, "self-guide": 1, "direct": 2, "rebase": 3, "mixed": 4}
# How the app names each data origin (pairs, runs and chart bars); "" is the untrained student.
ORIGIN_LABELS = {
    "": "untrained",
    "rebase": "ReBase",
    "direct": "direct synthesis",
    "self-guide": "SELF-GUIDE",
    "manual": "manual",
    "mixed": "mixed",
}


def compare_results(
    reports: Iterable[EvalReport], *, metric: str | None = None
) -> list[ComparisonRow]:
    """A table for the results chart: untrained (zero/few-shot) first, then runs by data origin.

    Reports of the same model on the same test set keep only the newest file's numbers (later
    in `reports` wins). `metric` picks one metric when reports carry several (QA: EM and F1).
    """
    rows: dict[tuple[str, str, bool], ComparisonRow] = {}
    for report in reports:
        extra = report.extra
        name = metric or report.metric
        values = extra.get("metrics", {}).get(name)
        if values is None and name != report.metric:
            continue
        score = float(values["score"]) if values else report.score
        low, high = values["ci95"] if values else report.ci95
        few_shot = bool(extra.get("few_shot", False))
        row = ComparisonRow(
            label=str(extra.get("label", extra.get("model", ""))),
            origin=str(extra.get("origin", "")),
            trained=bool(extra.get("trained", False)),
            few_shot=few_shot,
            n_train=int(extra.get("n_train", 0)),
            test=Path(str(extra.get("test", ""))).stem,
            metric=name,
            score=score,
            ci_low=float(low),
            ci_high=float(high),
            n=report.n,
            model=str(extra.get("model", "")),
        )
        rows[(row.model, row.test, few_shot)] = row
    return sorted(
        rows.values(),
        key=lambda r: (r.test, r.trained, _ORIGIN_ORDER.get(r.origin, 5), r.few_shot, r.label),
    )
