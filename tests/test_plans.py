"""Per-dataset plans: fields, checks, application, the planner's rules and LLM choices, rationale
mode, the transform modes, and the CLI's plans file."""

import json
import time

import pytest

from rebase_core.cli import main
from rebase_core.errors import InputError
from rebase_core.llm.fake import FakeLLM
from rebase_core.transform import (
    DROP,
    Plan,
    TransformConfig,
    apply_plan,
    check_given,
    check_plan,
    plan_dataset,
    plan_datasets,
    rationale_problem,
    read_plan_choices,
    row_fields,
    task_labels,
    transform,
)
from rebase_core.transform.spans import is_span
from rebase_core.types import Example, Pair, ScoredRow, Task
from rebase_core.workspace import Workspace

NLI = Task(
    "nli",
    "Decide whether the premise entails the hypothesis, contradicts it, or neither.",
    (
        Example("Premise: A man sleeps.\nHypothesis: A person rests.", "entailment"),
        Example("Premise: A cat eats.\nHypothesis: The cat is hungry.", "neutral"),
        Example("Premise: It is noon.\nHypothesis: It is midnight.", "contradiction"),
    ),
    metric="accuracy",
)
QA = Task(
    "qa",
    "Answer the question with a span of the context.",
    (
        Example("Context: Paris is in France.\nQuestion: Where is Paris?", "France"),
        Example("Context: Bob is 30.\nQuestion: How old is Bob?", "30"),
    ),
    metric="exact_match",
)
OPEN_QA = Task(  # the same fields, answers not copied from the input
    "open",
    "Answer the question about the context in a word.",
    (
        Example("Context: Paris is in France.\nQuestion: Which continent?", "Europe"),
        Example("Context: Bob is 30.\nQuestion: Is Bob young or old?", "young"),
    ),
    metric="exact_match",
)
COT = Task(
    "yesno",
    "Answer the question with yes or no.",
    (
        Example("Is 4 even?", "4 is divisible by 2. So the answer is yes."),
        Example("Is 3 even?", "3 is not divisible by 2. So the answer is no."),
        Example("Is 8 even?", "8 is divisible by 2. So the answer is yes."),
    ),
    metric="accuracy",
)

PACKED = "Decide.\n\nPremise: {p}\nHypothesis: {h}"  # one cell holding both fields


def _row(i, cells, dataset="ds", config="default", out="label"):
    return ScoredRow(dataset, config, str(i), 0.5, 0.5, 0.4, 0.6, "text", out, "a dataset", cells)


def _nli_rows(n=6, labels=("entailment", "non-entailment")):
    return [
        _row(
            i,
            {
                "text": PACKED.format(p=f"Anna saw bird {i}.", h=f"Bird {i} exists."),
                "label": labels[i % len(labels)],
            },
        )
        for i in range(n)
    ]


# ----------------------------------------------------------------------------- fields and plans


def test_row_fields_split_packed_cells_into_marker_subfields():
    fields = row_fields({"text": PACKED.format(p="It rains.", h="It is wet."), "label": "x"})
    assert fields["text[Premise]"] == "It rains."
    assert fields["text[Hypothesis]"] == "It is wet."
    # A task's own marker counts mid-line too; a cell without markers gets no sub-fields.
    inline = row_fields({"q": "Some passage. Question: who?"}, markers=("Question:",))
    assert inline["q[Question]"] == "who?"
    assert set(row_fields({"a": "no markers here"})) == {"a"}


def test_task_labels_are_the_examples_final_answers_for_label_tasks_only():
    assert task_labels(NLI) == {
        "entailment": "entailment",
        "neutral": "neutral",
        "contradiction": "contradiction",
    }
    assert task_labels(COT) == {"yes": "yes", "no": "no"}
    assert task_labels(QA) == {}


def test_apply_plan_fills_the_template_maps_labels_and_says_why_it_skips():
    plan = Plan(
        "ds",
        "default",
        "Premise: {text[Premise]}\nHypothesis: {text[Hypothesis]}",
        "label",
        {"entailment": "entailment", "non-entailment": DROP, "contradicts": "contradiction"},
    )
    row = {"text": PACKED.format(p="It rains.", h="It is wet."), "label": "Contradicts."}
    made = apply_plan(plan, NLI, row, "7")
    assert made.ok and made.row_id == "7"
    assert made.input == "Premise: It rains.\nHypothesis: It is wet."
    assert made.output == "contradiction" and made.source_value == "Contradicts."
    dropped = apply_plan(plan, NLI, {**row, "label": "non-entailment"})
    assert not dropped.ok and "drops" in dropped.skipped
    unknown = apply_plan(plan, NLI, {**row, "label": "maybe"})
    assert "no label" in unknown.skipped
    empty = apply_plan(plan, NLI, {"text": "Premise: \nHypothesis: b", "label": "entailment"})
    assert not empty.ok and ("empty field" in empty.skipped or "no field" in empty.skipped)
    # A long answer cell that opens with the label and explains it (StrategyQA) counts as it.
    yes_no = Plan("ds", "default", "{q}", "a", {"yes": "yes"})
    made = apply_plan(
        yes_no, COT, {"q": "Frost?", "a": "Yes. Frost is common in December, it is winter."}
    )
    assert made.ok and made.output == "yes"
    # Literal braces and JSON-list answers (several gold answers: the first is kept).
    qa = Plan("ds", "default", "Context: {ctx} {{x}}\nQuestion: {q}", "answers")
    made = apply_plan(qa, QA, {"ctx": "Bob is 30.", "q": "Age?", "answers": '["30", "thirty"]'})
    assert made.input == "Context: Bob is 30. {x}\nQuestion: Age?" and made.output == "30"


def test_plan_version_changes_with_what_it_does_not_with_who_wrote_it():
    a = Plan("ds", "default", "Context: {c}\nQuestion: {q}", "a")
    assert (
        a.version
        == Plan("ds", "default", "Context: {c}\nQuestion: {q}", "a", author="user").version
    )
    assert a.version != Plan("ds", "default", "Context: {c}\nQuestion: {q}", "b").version


def test_bad_plans_are_clear_errors():
    with pytest.raises(InputError, match="no \\{field\\} slot"):
        Plan("ds", "default", "Premise: fixed", "label")
    with pytest.raises(InputError, match="output field"):
        Plan("ds", "default", "{a}", " ")
    with pytest.raises(InputError, match="not valid JSON"):
        read_plan_choices("{oops")
    with pytest.raises(InputError, match=r"entry 2.*'use'"):
        read_plan_choices(
            json.dumps([{"dataset": "a", "use": "skip"}, {"dataset": "b", "use": "x"}])
        )
    with pytest.raises(InputError, match="label_map"):
        Plan.from_json_dict(
            {"dataset": "d", "input_template": "{a}", "output_field": "b", "label_map": ["x"]}
        )
    plans, uses = read_plan_choices(
        json.dumps(
            [
                {
                    "dataset": "a",
                    "input_template": "{x}",
                    "output_field": "y",
                    "label_map": {"Yes ": "entailment"},
                },
                {"dataset": "b", "config": "c2", "use": "skip"},
                {"dataset": "c", "status": "none"},
            ]
        )
    )
    assert plans[("a", "default")].label_map == {"yes": "entailment"}
    assert uses == {("a", "default"): "plan", ("b", "c2"): "skip", ("c", "default"): "rewrite"}


def test_check_plan_catches_leaks_missing_fields_markers_and_foreign_labels():
    rows = [dict(r.row) for r in _nli_rows(4)]
    good = Plan(
        "ds",
        "default",
        "Premise: {text[Premise]}\nHypothesis: {text[Hypothesis]}",
        "label",
        {"entailment": "entailment", "non-entailment": DROP},
    )
    check = check_plan(good, NLI, rows)
    assert check.ok and len(check.samples) == 4
    assert sum(s.ok for s in check.samples) == 2
    assert any("no 'neutral', 'contradiction' pair" in w for w in check.warnings)

    leak = Plan("ds", "default", "Premise: {text}\nHypothesis: {label}", "label")
    assert any("give" in p and "away" in p for p in check_plan(leak, NLI, rows).problems)
    missing = Plan(
        "ds",
        "default",
        "Premise: {text[Premise]}\nClaim: {nope}",
        "label",
        {"entailment": "entailment"},
    )
    problems = " ".join(check_plan(missing, NLI, rows).problems)
    assert "'nope'" in problems and "'Hypothesis:'" in problems
    foreign = Plan(
        "ds",
        "default",
        "Premise: {text[Premise]}\nHypothesis: {text[Hypothesis]}",
        "label",
        {"entailment": "supports"},
    )
    assert any("'supports'" in p for p in check_plan(foreign, NLI, rows).problems)
    twice = Plan(
        "ds",
        "default",
        "Premise: {text}\nHypothesis: {text}",
        "label",
        {"entailment": "entailment"},
    )
    assert any("twice" in p for p in check_plan(twice, NLI, rows).problems)
    nothing = Plan(
        "ds",
        "default",
        "Premise: {text[Premise]}\nHypothesis: {text[Hypothesis]}",
        "label",
        {"entailment": DROP, "non-entailment": DROP},
    )
    assert any("no pair" in p for p in check_plan(nothing, NLI, rows).problems)
    # Two values the rows hold, both sent to one label: the row's own label would not matter.
    constant = Plan(
        "ds",
        "default",
        "Premise: {text[Premise]}\nHypothesis: {text[Hypothesis]}",
        "label",
        {"entailment": "neutral", "non-entailment": "neutral"},
    )
    constant_problems = " ".join(check_plan(constant, NLI, rows).problems)
    assert "'entailment', 'non-entailment'" in constant_problems
    assert "maps to 'neutral'" in constant_problems
    # The same when the sample rows hold one of the two values only: the map's keys are the
    # values the planner saw (COPA's 'cause' and 'effect', three sample rows all 'effect').
    one_kind = [r for r in rows if r["label"] == "entailment"]
    assert len(one_kind) == 2
    assert "maps to 'neutral'" in " ".join(check_plan(constant, NLI, one_kind).problems)
    # One value known, the LLM's guess sends it to a label it does not name: every pair of the
    # dataset would get that label (russe's 'no' -> 'neutral'). A value naming its label, or a
    # user's own map, passes.
    guess = Plan(
        "ds",
        "default",
        "Premise: {text[Premise]}\nHypothesis: {text[Hypothesis]}",
        "label",
        {"entailment": "neutral"},
    )
    assert any("on one guess" in p for p in check_plan(guess, NLI, one_kind).problems)
    named = Plan(
        guess.dataset, guess.config, guess.input_template, "label", {"entailment": "entailment"}
    )
    assert check_plan(named, NLI, one_kind).ok
    users = Plan(
        guess.dataset, guess.config, guess.input_template, "label", {"entailment": "neutral"},
        author="user",
    )  # fmt: skip
    assert check_plan(users, NLI, one_kind).ok
    # One label for 'entails' (which the rows lack) and 'entailment', the other value dropped:
    # the label still depends on the row, as in `good`.
    one_held = Plan(
        "ds",
        "default",
        "Premise: {text[Premise]}\nHypothesis: {text[Hypothesis]}",
        "label",
        {"entailment": "entailment", "entails": "entailment", "non-entailment": DROP},
    )
    one_check = check_plan(one_held, NLI, rows)
    assert one_check.ok, one_check.problems
    assert any("several source values" in w for w in one_check.warnings)
    # Synonyms sent to one label while another value is dropped still depend on the row.
    synonym_rows = [*rows, {**rows[0], "label": "entails"}]
    assert check_plan(one_held, NLI, synonym_rows).ok
    assert not check_plan(good, NLI, []).ok


def test_a_marker_filled_with_one_word_where_the_examples_have_sentences_is_a_problem():
    # WinoGrande's columns under SQuAD's markers: the answer column's 'option2' as the question.
    rows = [
        {"sentence": f"Ann gave Bo the {x} because _ was kind.", "option1": "Ann",
         "option2": "Bo", "answer": "option1"}
        for x in ("pen", "cup", "hat")
    ]  # fmt: skip
    label_as_question = Plan("ds", "default", "Context: {sentence}\nQuestion: {answer}", "option1")
    problems = " ".join(check_plan(label_as_question, QA, rows).problems)
    assert "'Question:' with a label" in problems
    # A real question passes (the answer is a span of the context, as the examples' are).
    asked = [{**r, "q": f"Who gave the {r['sentence'].split()[4]}?"} for r in rows]
    question = Plan("ds", "default", "Context: {sentence}\nQuestion: {q}", "option1")
    assert check_plan(question, QA, asked).ok, check_plan(question, QA, asked).problems


def test_a_span_task_rejects_answers_that_are_not_in_the_input():
    rows = [
        {"passage": f"Bob is {i}.", "query": "Age?", "kind": "number", "answer": str(i)}
        for i in range(4)
    ]
    wrong = Plan("ds", "default", "Context: {passage}\nQuestion: {query}", "kind")
    assert any("copied from its input" in p for p in check_plan(wrong, QA, rows).problems)
    right = Plan("ds", "default", "Context: {passage}\nQuestion: {query}", "answer")
    assert check_plan(right, QA, rows).ok
    # A multiple-choice source's letters are "in" any text, but they are no spans (logiqa's
    # answers "D" passed for SQuAD's), and neither is a piece of a word.
    lettered = [
        {"passage": f"Bob is {i}. (A) yes (B) no (C) maybe (D) never", "q": "Age?", "key": "D"}
        for i in range(4)
    ]
    letters = Plan("ds", "default", "Context: {passage}\nQuestion: {q}", "key")
    assert any("copied from its input" in p for p in check_plan(letters, QA, lettered).problems)
    pieces = [{"passage": f"Bobby is {i}.", "q": "Who?", "who": "Bob"} for i in range(4)]
    piece = Plan("ds", "default", "Context: {passage}\nQuestion: {q}", "who")
    assert not check_plan(piece, QA, pieces).ok


def test_a_span_is_whole_words_even_after_a_match_inside_a_word():
    # The first "is" is inside "This"; the search goes on to the word.
    assert is_span("is", "This is it") and not is_span("is", "This island")
    assert is_span("Über", "das Über-Ich") and not is_span("ber", "das Über-Ich")
    assert is_span("x_y", "a x_y b") and not is_span("x", "a x_y b")  # "_" joins words
    assert is_span("(D) ok", "France (D) ok") and not is_span("", "text")


def test_a_span_task_skips_rows_whose_answer_is_not_in_the_input():
    plan = Plan("ds", "default", "Context: {passage}\nQuestion: {query}", "answer")
    kept = apply_plan(plan, QA, {"passage": "Bob is 7.", "query": "Age?", "answer": "7"})
    assert kept.ok and kept.output == "7"
    # DROP's answers are often counts worked out from the passage: no span, no pair.
    off = apply_plan(plan, QA, {"passage": "Bob is young.", "query": "Age?", "answer": "7"})
    assert not off.ok and off.not_span and "not in the input" in off.skipped
    assert not kept.not_span
    # A label task keeps its labels, which are never in the input.
    nli = Plan("ds", "default", "Premise: {p}\nHypothesis: {h}", "label")
    row = {"p": "A man sleeps.", "h": "A person rests.", "label": "entailment"}
    assert apply_plan(nli, NLI, row).ok


def test_rules_alone_plan_a_span_task_from_where_its_answers_occur():
    # Quoref as BIG-bench's natural_instructions packs it: no field is named like the task's
    # markers (the 1.5B teacher, asked, found that nothing fits), but every answer is a span of
    # the passage and the other part is a question.
    # Its answers end with a full stop the passage does not have there ("Ann."), and the store
    # cut the first row's cell before its question.
    names = ["Ann", "Bo", "Cy", "Di", "Ed"]
    quoref = [
        _row(
            i,
            {
                "input": f"Passage: {n} met Kim in town {i}. They talked.\n"
                + (f"Question: Who met Kim in town {i}?" if i else ""),
                "target": f"{n}.",
            },
            out="target",
        )
        for i, n in enumerate(names)
    ]
    outcome = plan_dataset(QA, quoref, FakeLLM([]))  # an empty queue: any call fails the test
    assert outcome.status == "valid" and outcome.calls == 0
    assert outcome.plan is not None and outcome.plan.author == "rule"
    assert outcome.plan.input_template == "Context: {input[Passage]}\nQuestion: {input[Question]}"
    assert outcome.plan.output_field == "target"
    made = [apply_plan(outcome.plan, QA, r.row) for r in quoref]
    assert [m.output for m in made if m.ok] == names[1:]
    assert "no field 'input[Question]'" in made[0].skipped
    # A field that lists the answers (BIG-bench's `targets`, a row's options) holds each
    # answer as a whole item: no context, it would give the answer away (MC-TACO's).
    mctaco = [
        _row(
            i,
            {
                "input": f"Sentence: Kim slept.\nQuestion: For how long did Kim sleep, case {i}?",
                "target": f"{i + 2} hours.",
                "targets": json.dumps([f"{i + 2} hours.", "1 year."]),
            },
            out="target",
        )
        for i in range(5)
    ]
    assert plan_dataset(QA, mctaco, None).status == "none"
    # Two sentences that share a word are no context and question: the rules find no plan.
    overlap = [
        _row(
            i,
            {"input": f"Sentence1: {n} met Kim.\nSentence2: {n} left town {i}.", "target": n},
            out="target",
        )
        for i, n in enumerate(names)
    ]
    assert plan_dataset(QA, overlap, None).status == "none"
    # Answers that are seldom in any field (DROP's counts) are no spans either.
    counts = [
        _row(i, {"input": f"Passage: Kim scored {i} goals.\nQuestion: How many?", "target": "9"})
        for i in range(5)
    ]
    assert plan_dataset(QA, counts, None).status == "none"


def test_applying_a_plan_is_fast():
    plan = Plan(
        "ds",
        "default",
        "Premise: {text[Premise]}\nHypothesis: {text[Hypothesis]}",
        "label",
        {"entailment": "entailment", "non-entailment": DROP},
    )
    rows = [dict(r.row) for r in _nli_rows(2000)]
    start = time.perf_counter()
    made = [apply_plan(plan, NLI, r) for r in rows]
    rate = len(rows) / (time.perf_counter() - start)
    assert sum(m.ok for m in made) == 1000
    assert rate > 2000, f"{rate:.0f} rows/s"  # generous for a loaded CI machine (bench: plans.py)


# ----------------------------------------------------------------------------- the planner


def test_rules_alone_plan_a_dataset_that_names_the_tasks_fields_and_labels():
    llm = FakeLLM([])  # an empty queue: any call fails the test
    outcome = plan_dataset(NLI, _nli_rows(), llm)
    assert outcome.status == "valid" and outcome.calls == 0 and outcome.rows == 6
    assert outcome.plan is not None and outcome.plan.author == "rule"
    assert outcome.plan.label_map == {"entailment": "entailment", "non-entailment": DROP}
    assert llm.history == []


def test_the_llm_picks_fields_from_enums_and_labels_one_value_at_a_time():
    rows = [
        _row(
            i,
            {
                "premise_text": f"Anna saw bird {i}.",
                "claim": f"Bird {i} exists.",
                "verdict": ["yes", "no", "maybe"][i % 3],
            },
            out="verdict",
        )
        for i in range(6)
    ]

    def teacher(call):
        schema = call.json_schema
        if "label" in schema["properties"]:
            value = call.prompt.split("with the value ", 1)[1].split(".", 1)[0].strip("'")
            return json.dumps(
                {"label": {"yes": "entailment", "no": "contradiction"}.get(value, DROP)}
            )
        fields = schema["properties"]["Premise"]["enum"]
        assert set(fields) == {"premise_text", "claim", "verdict"}
        return json.dumps(
            {
                "Premise": "premise_text",
                "Hypothesis": "claim",
                "answer_field": "verdict",
                "fits": True,
            }
        )

    llm = FakeLLM(teacher)
    outcome = plan_dataset(NLI, rows, llm)
    assert outcome.status == "valid", outcome.reason
    assert outcome.plan.input_template == "Premise: {premise_text}\nHypothesis: {claim}"
    assert outcome.plan.label_map == {"yes": "entailment", "no": "contradiction", "maybe": DROP}
    assert outcome.calls == 4 and len(llm.history) == 4  # fields + one per label value
    again = plan_dataset(NLI, rows, FakeLLM(teacher))
    assert again.plan == outcome.plan


def test_a_marker_the_rules_settled_keeps_its_field_and_the_others_choose_among_the_rest():
    """The offline teacher gave SQuAD's "Context" the field the rules had given "Question"
    (12 of 64 datasets failed with 'the input uses X twice'): the enums now exclude it.
    (An open task: for an extractive one the span rule settles these rows without a call.)"""
    rows = [
        _row(
            i,
            {"question": f"How old is Bob {i}?", "passage": f"Bob {i} is {i}.", "answer": str(i)},
            out="answer",
        )
        for i in range(5)
    ]
    asked = []

    def teacher(call):
        props = call.json_schema["properties"]
        asked.append({k: v["enum"] for k, v in props.items() if "enum" in v})
        # A weak teacher's favourite: the field named like a marker, for every marker.
        reply = {
            k: ("question" if "question" in v["enum"] else v["enum"][0])
            for k, v in props.items()
            if "enum" in v
        }
        return json.dumps({**reply, "answer_field": "answer", "fits": True})

    outcome = plan_dataset(OPEN_QA, rows, FakeLLM(teacher))
    assert asked[0]["Question"] == ["question"]  # settled by the rules: the only choice
    assert "question" not in asked[0]["Context"]  # no longer on offer for another marker
    assert outcome.status == "valid", outcome.reason
    assert outcome.plan.input_template == "Context: {passage}\nQuestion: {question}"


def test_a_failed_check_is_repaired_once_with_the_reason():
    rows = [
        _row(i, {"passage": f"Bob is {i}.", "query": "Age?", "answer": str(i)}, out="answer")
        for i in range(5)
    ]
    replies = [
        json.dumps(
            {"Context": "passage", "Question": "answer", "answer_field": "answer", "fits": True}
        ),
        json.dumps(
            {"Context": "passage", "Question": "query", "answer_field": "answer", "fits": True}
        ),
    ]
    llm = FakeLLM(replies)
    outcome = plan_dataset(OPEN_QA, rows, llm)  # (QA's span rule would need no call)
    assert outcome.status == "valid" and outcome.calls == 2
    assert "give" in llm.history[1].prompt and "away" in llm.history[1].prompt
    assert outcome.plan.input_template == "Context: {passage}\nQuestion: {query}"


def test_no_plan_when_the_llm_says_nothing_fits_or_the_answer_is_no_label_column():
    rows = [_row(i, {"a": f"text {i}", "b": f"other {i}"}, out="b") for i in range(5)]
    llm = FakeLLM(
        [json.dumps({"Premise": "a", "Hypothesis": "a", "answer_field": "b", "fits": False})]
    )
    assert plan_dataset(NLI, rows, llm).status == "none"
    many = [
        _row(i, {"text": PACKED.format(p=f"p{i}", h=f"h{i}"), "label": f"v{i}"}) for i in range(20)
    ]
    outcome = plan_dataset(NLI, many, FakeLLM([]))
    assert outcome.status == "invalid" and "20 different values" in outcome.reason


def test_plan_datasets_checks_given_plans_and_goes_on_past_a_bad_one():
    rows = _nli_rows(4) + [
        _row(i, {"text": PACKED.format(p="a", h="b"), "label": "entailment"}, dataset="other")
        for i in range(3)
    ]
    bad = Plan("other", "default", "Premise: {text[Premise]}\nHypothesis: {missing}", "label")
    outcomes = {
        o.dataset: o
        for o in plan_datasets(NLI, rows, FakeLLM([]), given={("other", "default"): bad})
    }
    assert outcomes["ds"].status == "valid"
    assert outcomes["other"].status == "invalid" and "'missing'" in outcomes["other"].reason


# ----------------------------------------------------------------------------- transform modes


def test_auto_mode_plans_where_valid_and_rewrites_elsewhere():
    planned_rows = _nli_rows(4)
    other = [
        _row(10 + i, {"text": f"free text {i} about birds", "label": "x"}, dataset="free")
        for i in range(2)
    ]
    plan = plan_dataset(NLI, planned_rows, FakeLLM([])).plan
    replies = iter(
        json.dumps(
            {
                "input": f"Premise: free text {i} about birds.\nHypothesis: birds fly.",
                "output": "neutral",
            }
        )
        for i in range(2)
    )
    llm = FakeLLM(lambda call: next(replies))
    result = transform(
        NLI, planned_rows + other, llm, TransformConfig(concurrency=1), plans={plan.key: plan}
    )
    methods = sorted(p.method for p in result.pairs)
    assert methods == ["plan", "plan", "rewrite", "rewrite"]
    assert len(llm.history) == 2  # only the rewritten rows cost a call
    planned = [p for p in result.pairs if p.method == "plan"]
    assert all(p.source.plan == plan.version and p.output == "entailment" for p in planned)
    assert result.failure_counts == {"no-label": 2}
    as_json = planned[0].to_json_dict()
    assert as_json["method"] == "plan" and as_json["source"]["plan"] == plan.version
    assert Pair.from_json_dict(as_json) == planned[0]

    only_plan = transform(
        NLI, planned_rows + other, FakeLLM([]), TransformConfig(mode="plan"), plans={plan.key: plan}
    )
    assert only_plan.failure_counts == {"no-label": 2, "no-plan": 2}
    rewrite_only = transform(
        NLI,
        planned_rows[:1],
        FakeLLM(
            [
                json.dumps(
                    {"input": "Premise: Anna saw bird 0.\nHypothesis: a bird.", "output": "neutral"}
                )
            ]
        ),
        TransformConfig(mode="rewrite"),
        plans={plan.key: plan},
    )
    assert [p.method for p in rewrite_only.pairs] == ["rewrite"]


def test_rationale_mode_explains_the_known_answer_and_rejects_a_mismatch():
    rows = [
        _row(i, {"question": f"Is {n} even?", "answer": a}, out="answer")
        for i, (n, a) in enumerate([(6, "yes"), (5, "no"), (10, "yes")])
    ]
    plan = Plan("ds", "default", "{question}", "answer")
    assert rationale_problem("6 is even. So the answer is yes.", "yes") is None
    assert "concludes" in rationale_problem("So the answer is no.", "yes")
    assert "does not end" in rationale_problem("It is even.", "yes")

    def teacher(call):
        answer = call.prompt.split("Correct final answer: ", 1)[1].split("\n", 1)[0]
        if "Is 10 even?" in call.prompt and "previous output" not in call.prompt:
            return "10 ends in 0. So the answer is no."  # a wrong conclusion, then fixed
        if "Is 5 even?" in call.prompt:
            return "5 is odd. So the answer is yes."  # wrong twice
        return f"Let me check. So the answer is {answer}."

    llm = FakeLLM(teacher)
    result = transform(
        COT, rows, llm, TransformConfig(concurrency=1), plans={("ds", "default"): plan}
    )
    assert sorted(p.input for p in result.pairs) == ["Is 10 even?", "Is 6 even?"]
    assert all(
        p.method == "rationale" and p.output.endswith("answer is yes.") for p in result.pairs
    )
    assert result.failure_counts == {"rationale-mismatch": 1}
    assert "Correct final answer: yes" in llm.history[0].prompt
    assert len(llm.history) == 5  # 3 first tries, 2 retries


def test_planned_pairs_persist_their_method_and_plan_version(tmp_path):
    rows = _nli_rows(2)
    plan = plan_dataset(NLI, rows, FakeLLM([])).plan
    (pair,) = transform(NLI, rows, FakeLLM([]), plans={plan.key: plan}).pairs
    ws = Workspace(tmp_path / "ws.sqlite")
    task_id = ws.save_task(NLI).id
    run = ws.create_pair_run(task_id, "rebase")
    ws.add_pairs(run, task_id, [pair])
    (stored,) = ws.pairs(run_id=run)
    assert stored.method == "plan" and stored.source.plan == plan.version
    assert "method" not in stored.extra
    ws.close()


# ----------------------------------------------------------------------------- CLI


def _cli(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.err


def test_cli_transform_modes_and_an_edited_plans_file(tmp_path, capsys):
    task = tmp_path / "task.json"
    task.write_text(json.dumps(NLI.to_dict()))
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(r.to_json_dict()) + "\n" for r in _nli_rows(6)))
    out = tmp_path / "pairs.jsonl"
    plans_out = tmp_path / "plans.json"

    def run(*extra):
        # --workspace after the command, as a user may type it.
        args = ["transform", "--task", str(task), "--rows", str(rows), "--llm", "fake"]
        return _cli(capsys, *args, *extra, "--workspace", str(tmp_path / "ws"))

    code, err = run("--mode", "plan", "--out", str(out), "--plans-out", str(plans_out))
    assert code == 0, err
    pairs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(pairs) == 3 and {p["method"] for p in pairs} == {"plan"}
    assert "1 of 1 dataset(s) valid" in err
    written = json.loads(plans_out.read_text())
    assert written[0]["status"] == "valid" and written[0]["rows"] == 6

    # The user maps non-entailment to contradiction by hand: every row now makes a pair.
    written[0]["label_map"]["non-entailment"] = "contradiction"
    plans_out.write_text(json.dumps(written))
    code, err = run("--plans", str(plans_out), "--out", str(out))
    assert code == 0, err
    labels = sorted(json.loads(line)["output"] for line in out.read_text().splitlines())
    assert labels == ["contradiction"] * 3 + ["entailment"] * 3

    written[0]["use"] = "skip"
    plans_out.write_text(json.dumps(written))
    code, err = run("--plans", str(plans_out))
    assert code == 2 and "skips every dataset" in err
    plans_out.write_text("[{")
    code, err = run("--plans", str(plans_out))
    assert code == 2 and "not valid JSON" in err


# ----------------------------------------------------------------------------- the job


def test_transform_job_plans_saves_plans_and_honours_the_users_edits(settings):
    from rebase_core import jobs

    ws = Workspace(settings.workspace_db)
    rec = ws.save_task(NLI)
    rows = _nli_rows(6) + [
        _row(
            10 + i,
            {"text": PACKED.format(p=f"x{i}", h=f"y{i}"), "label": "entailment"},
            dataset="other",
        )
        for i in range(2)
    ]
    run = ws.save_retrieval(rec, "store", {}, "exact", 0.0, rows, list(range(len(rows))))

    def start():
        pair_run = ws.create_pair_run(rec.id, "transform", llm="fake")
        params = {
            "pair_run": pair_run,
            "retrieval_run": run,
            "task_id": rec.id,
            "llm": "fake",
            "config": {"concurrency": 1, "mode": "plan"},
        }
        job = jobs.start_job(settings, "transform", params, env={})
        deadline = time.time() + 60
        while time.time() < deadline:
            status = jobs.job_status(job.folder)
            if status.state in jobs.FINAL_STATES:
                return pair_run, status
            time.sleep(0.1)
        raise AssertionError("job did not finish")

    pair_run, status = start()
    assert status.state == "done", status.error
    saved = {r.dataset: r for r in ws.plans(rec.id, NLI)}
    assert set(saved) == {"ds", "other"} and saved["ds"].status == "valid"
    assert saved["ds"].rows == 6 and saved["ds"].chosen == "plan"
    assert status.result["planned"] == 5 == len(ws.pairs(run_id=pair_run))

    # The user maps non-entailment by hand and skips the other dataset.
    edited = Plan.from_json_dict(
        {
            **saved["ds"].plan.to_json_dict(),
            "author": "user",
            "label_map": {"entailment": "entailment", "non-entailment": "contradiction"},
        }
    )
    ws.save_plan(rec.id, NLI, check_given(NLI, edited, rows[:6]))
    ws.set_plan_use(rec.id, "other", "default", "skip")
    pair_run, status = start()
    assert status.state == "done", status.error
    pairs = ws.pairs(run_id=pair_run)
    assert sorted(p.output for p in pairs) == ["contradiction"] * 3 + ["entailment"] * 3
    assert {p.source.plan for p in pairs} == {edited.version}
    assert {r.dataset: r.plan.author for r in ws.plans(rec.id, NLI)}["ds"] == "user"
    with pytest.raises(InputError, match="one of"):
        ws.set_plan_use(rec.id, "ds", "default", "maybe")
    # Re-planning (the plan-only job) replaces the LLM's plans, never the user's.
    job = jobs.start_job(
        settings,
        "plan",
        {"retrieval_run": run, "task_id": rec.id, "llm": "fake", "replan": True},
        env={},
    )
    deadline = time.time() + 60
    while jobs.job_status(job.folder).state not in jobs.FINAL_STATES and time.time() < deadline:
        time.sleep(0.1)
    status = jobs.job_status(job.folder)
    assert status.state == "done", status.error
    assert status.result["datasets"] == 2 and "covering 6 of 8 rows" in status.result["summary"]
    assert {r.dataset: r.plan.version for r in ws.plans(rec.id, NLI)}["ds"] == edited.version
    # Plans belong to a task version: an edited task starts without them.
    changed = Task(NLI.name, NLI.instruction + " Be brief.", NLI.examples, metric="accuracy")
    assert ws.plans(rec.id, changed) == []
    ws.close()


def test_fixed_header_and_options_lines_of_the_examples_stay_fixed_text_in_the_template():
    judge = Task(
        "judge",
        "Answer questions about causation.",
        (
            Example(
                "How would a typical person answer?\nA story.\nOptions:\n- Yes\n- No",
                "Let's think. So the answer is Yes.",
            ),
            Example(
                "How would a typical person answer?\nAnother.\nOptions:\n- Yes\n- No",
                "Let's think. So the answer is No.",
            ),
        ),
        metric="accuracy",
    )
    rows = [
        _row(
            i, {"question": f"Did {i} cause it?", "answer": "Yes" if i % 2 else "No"}, out="answer"
        )
        for i in range(4)
    ]
    llm = FakeLLM([json.dumps({"input": "question", "answer_field": "answer", "fits": True})])
    outcome = plan_dataset(judge, rows, llm)
    assert outcome.status == "valid", outcome.reason
    assert outcome.plan.input_template == (
        "How would a typical person answer?\n{question}\nOptions:\n- Yes\n- No"
    )
    assert set(llm.history[0].json_schema["properties"]) == {"input", "answer_field", "fits"}


def test_the_estimate_counts_no_call_for_planned_rows_except_rationales():
    from rebase_core.transform import estimate_transform

    rows = [*_nli_rows(4), _row(9, {"text": "free text", "label": "x"}, dataset="free")]
    plan = plan_dataset(NLI, rows[:4], FakeLLM([])).plan
    llm = FakeLLM()
    auto = estimate_transform(NLI, rows, llm, TransformConfig(), plans={plan.key: plan})
    assert auto.requests == 1
    assert (
        estimate_transform(
            NLI, rows, llm, TransformConfig(mode="rewrite"), plans={plan.key: plan}
        ).requests
        == 5
    )
    assert (
        estimate_transform(
            NLI, rows, llm, TransformConfig(mode="plan"), plans={plan.key: plan}
        ).requests
        == 0
    )


def test_rules_plan_a_one_text_label_task_from_the_best_matching_cells_when_labels_match():
    sports = Task(
        "sports",
        "Is the sentence plausible?",
        (
            Example("Joao Moutinho caught the screen pass.", "no"),
            Example("Jamal Murray was perfect from the line.", "yes"),
        ),
        metric="accuracy",
    )
    rows = [
        _row(i, {"text": f"Claim {i} about a game.", "label": ["yes", "no"][i % 2]})
        for i in range(4)
    ]
    outcome = plan_dataset(sports, rows, None)  # rules only
    assert outcome.status == "valid" and outcome.plan.input_template == "{text}"
    other = [_row(i, {"text": f"Claim {i}.", "label": ["red", "blue"][i % 2]}) for i in range(4)]
    assert plan_dataset(sports, other, None).status == "none"  # other labels: not the rules' call
    assert (
        plan_dataset(QA, [_row(i, {"text": "t", "label": "a"}) for i in range(3)], None).status
        == "none"
    )  # an open task needs the LLM's word


def test_with_an_llm_a_guessed_input_field_still_asks_whether_the_dataset_fits():
    sports = Task(
        "sports",
        "Is the sentence plausible?",
        (
            Example("Joao Moutinho caught the screen pass.", "no"),
            Example("Jamal Murray was perfect from the line.", "yes"),
        ),
        metric="accuracy",
    )
    rows = [_row(i, {"text": f"String {i}", "label": ["yes", "no"][i % 2]}) for i in range(4)]
    llm = FakeLLM([json.dumps({"input": "text", "answer_field": "label", "fits": False})])
    outcome = plan_dataset(sports, rows, llm)
    assert outcome.status == "none" and len(llm.history) == 1
