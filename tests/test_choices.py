"""Multiple-choice plans: options made by code from the row's own answer (issue 12, BBH)."""

from __future__ import annotations

import json
import re

import pytest

from rebase_core.errors import InputError
from rebase_core.llm.fake import FakeLLM
from rebase_core.transform import Plan, TransformConfig, plan_dataset, transform
from rebase_core.transform.choices import (
    choice_format,
    make_options,
    near_misses,
    without_options,
)
from rebase_core.transform.plan import apply_plan, check_plan, task_labels
from rebase_core.types import Example, ScoredRow, Task

DATES = Task(
    "dates",
    "Infer the date from context.",
    (
        Example(
            "Today is Christmas Eve of 1937. What is the date 10 days ago in MM/DD/YYYY?\n"
            "Options:\n(A) 12/14/2026\n(B) 12/14/1950\n(C) 12/14/2007\n(D) 12/14/1937\n"
            "(E) 07/14/1938\n(F) 12/14/1988",
            "Let's think step by step.\nToday is 12/24/1937. 10 days before is 12/14/1937. "
            "So the answer is (D).",
        ),
        Example(
            "Tomorrow is 11/12/2019. What is the date one year ago from today in MM/DD/YYYY?\n"
            "Options:\n(A) 09/04/2018\n(B) 11/11/2018\n(C) 08/25/2018\n(D) 11/02/2018\n"
            "(E) 11/04/2018",
            "Let's think step by step.\nToday is 11/11/2019. A year ago is 11/11/2018. "
            "So the answer is (B).",
        ),
        Example(
            "Jane was born on Jan 2, 1958. What is the date tomorrow in MM/DD/YYYY?\n"
            "Options:\n(A) 01/11/1961\n(B) 01/03/1963\n(C) 01/18/1961\n(D) 10/14/1960\n"
            "(E) 01/03/1982\n(F) 12/03/1960",
            "Let's think step by step.\nToday is 01/02/1963. Tomorrow is 01/03/1963. "
            "So the answer is (B).",
        ),
    ),
    metric="accuracy",
)
FIXED = Task(  # the same options in every example: labels, not a multiple-choice task
    "yn",
    "Answer.",
    (
        Example("Is it raining?\nOptions:\n(A) Yes\n(B) No", "(A)"),
        Example("Is it sunny?\nOptions:\n(A) Yes\n(B) No", "(B)"),
    ),
)


def _row(i, question, answer, dataset="date-calculator"):
    cells = {"input": question, "ideal": answer}
    return ScoredRow(dataset, "default", str(i), 0.5, 0.5, 0.4, 0.6, "input", "ideal", "", cells)


ROWS = [
    _row(0, "What is the date 30 days after 03/04/2021?", "04/03/2021"),
    _row(1, "What is the date 2 weeks before 01/10/2020?", "12/27/2019"),
    _row(2, "What day comes 100 days after 05/05/1999?", "08/13/1999"),
    _row(3, "Which date is one year after 02/28/2011?", "02/28/2012"),
]


def test_the_choice_format_is_read_from_the_examples_and_fixed_options_are_labels():
    fmt = choice_format(DATES)
    assert fmt is not None
    assert (fmt.header, fmt.open, fmt.close, fmt.count) == ("Options:", "(", ")", 6)
    assert fmt.answer(3) == "(D)" and fmt.option(0, "x") == "(A) x"
    assert task_labels(DATES) == {}  # letters name options, not classes
    assert choice_format(FIXED) is None and task_labels(FIXED)
    shape = without_options(DATES)
    assert shape.examples[1].input == (
        "Tomorrow is 11/12/2019. What is the date one year ago from today in MM/DD/YYYY?"
    )


def test_near_misses_keep_the_answers_format_and_options_are_stable_per_row():
    assert near_misses("2021-04-03")[:2] == ["2021-04-02", "2021-04-04"]
    # Unpadded days stay unpadded: a lone "April 3" among "April 04"s would give it away.
    assert "March 3, 2021" in near_misses("April 3, 2021")
    assert all(re.fullmatch(r"\w+ [1-9]\d?, \d{4}", d) for d in near_misses("April 3, 2021"))
    assert "12/07/1937" in near_misses("12/14/1937")  # two-digit parts: padded, as usual
    assert "6/24/2009" in near_misses("6/25/2009") and "06/24/2009" not in near_misses("6/25/2009")
    assert near_misses("a red car") == []
    fmt = choice_format(DATES)
    options, index = make_options("04/03/2021", ("12/27/2019", "08/13/1999"), fmt, "row-1")
    assert len(options) == 6 and len(set(options)) == 6 and options[index] == "04/03/2021"
    assert sum(o in ("12/27/2019", "08/13/1999") for o in options) == 2  # the dataset's answers
    assert make_options("04/03/2021", ("12/27/2019", "08/13/1999"), fmt, "row-1") == (
        options,
        index,
    )
    # The answer is not the only option with a neighbour one near miss away (a decoy pair).
    with_neighbour = [o for o in options if set(near_misses(o)) & (set(options) - {o})]
    assert options[index] in with_neighbour and len(with_neighbour) >= 3
    spread = {make_options("04/03/2021", (), fmt, f"row-{i}")[1] for i in range(40)}
    assert len(spread) >= 5  # the right option's place is drawn, not always the same
    assert make_options("x" * 200, (), fmt, "r") is None
    assert make_options("red", (), fmt, "r") is None  # no near miss, no other answer


def test_a_choices_plan_lists_the_rows_answer_among_options_and_answers_its_letter():
    plan = Plan(
        "date-calculator",
        "default",
        "{input}",
        "ideal",
        choices=6,
        distractors=("04/03/2021", "12/27/2019", "08/13/1999", "02/28/2012"),
    )
    made = apply_plan(plan, DATES, ROWS[0].row, "0")
    assert made.ok, made.skipped
    question, header, *lines = made.input.split("\n")
    assert question == ROWS[0].row["input"] and header == "Options:" and len(lines) == 6
    letter = made.output
    assert re.fullmatch(r"\([A-F]\)", letter)
    assert f"{letter} 04/03/2021" in lines  # the row's own answer, under the output's letter
    assert made.source_value == "04/03/2021"
    check = check_plan(plan, DATES, [r.row for r in ROWS])
    assert check.ok, check.problems
    assert plan.version != Plan("date-calculator", "default", "{input}", "ideal").version
    assert Plan.from_json_dict(plan.to_json_dict()) == plan
    long_answer = apply_plan(plan, DATES, {"input": "Q?", "ideal": "x" * 300}, "9")
    assert "too long" in long_answer.skipped
    lettered = apply_plan(plan, DATES, {"input": "Q? (A) 1 (B) 2", "ideal": "(B)"}, "9")
    assert "own options" in lettered.skipped  # options of options would be nonsense
    # A plan asking for options on a task without them is refused by the check.
    plain = Task("t", "i", (Example("Q: a", "b"), Example("Q: c", "d")))
    assert any("list none" in p for p in check_plan(plan, plain, [ROWS[0].row]).problems)
    with pytest.raises(InputError, match="options"):
        Plan("d", "default", "{input}", "ideal", choices=1)
    with pytest.raises(InputError, match="distractors"):
        Plan.from_json_dict({**plan.to_json_dict(), "distractors": "04/03/2021"})


def test_the_planner_writes_a_choices_plan_and_rationales_end_in_the_rows_letter():
    def teacher(call):
        if call.json_schema:  # the field choice: the options are not a field to fill
            assert set(call.json_schema["properties"]) == {"input", "answer_field", "fits"}
            assert "lettered options" in call.prompt
            return json.dumps({"input": "input", "answer_field": "ideal", "fits": True})
        answer = call.prompt.split("Correct final answer: ", 1)[1].split("\n", 1)[0]
        return f"Let's think step by step.\nCount the days. So the answer is {answer}."

    llm = FakeLLM(teacher)
    outcome = plan_dataset(DATES, ROWS, llm)
    assert outcome.status == "valid", outcome.reason
    plan = outcome.plan
    assert plan.input_template == "{input}" and plan.output_field == "ideal"
    assert plan.choices == 6 and set(plan.distractors) == {r.row["ideal"] for r in ROWS}
    result = transform(DATES, ROWS, llm, TransformConfig(concurrency=1), plans={plan.key: plan})
    assert len(result.pairs) == len(ROWS) and not result.failure_counts
    for pair in result.pairs:
        row = next(r for r in ROWS if r.row["input"] == pair.input.split("\n", 1)[0])
        letter = re.search(r"answer is (\([A-F]\))", pair.output).group(1)
        assert f"{letter} {row.row['ideal']}" in pair.input.splitlines()
        assert pair.method == "rationale" and pair.source.plan == plan.version
    rationale_calls = [c for c in llm.history if not c.json_schema]
    assert rationale_calls and {c.max_tokens for c in rationale_calls} == {96}  # not 400


def test_rows_that_list_their_own_options_keep_them_and_answer_in_the_tasks_letter_form():
    rows = [
        _row(i, f"Next in 2, 4, {2 * i + 6}, _? (A) {2 * i + 8} (B) 1 (C) 0", letter, "series")
        for i, letter in enumerate(["A", "[A]", "(A).", "A"])
    ]

    def teacher(call):
        if call.json_schema:
            return json.dumps({"input": "input", "answer_field": "ideal", "fits": True})
        answer = call.prompt.split("Correct final answer: ", 1)[1].split("\n", 1)[0]
        return f"Add two each time. So the answer is {answer}."

    outcome = plan_dataset(DATES, rows, FakeLLM(teacher))
    assert outcome.status == "valid", outcome.reason
    assert outcome.plan.choices == 0 and outcome.plan.distractors == ()
    made = apply_plan(outcome.plan, DATES, rows[1].row, "1")
    assert (made.input, made.output) == (rows[1].row["input"], "(A)")  # "[A]" in the task's form
    worded = apply_plan(outcome.plan, DATES, {"input": "Q?", "ideal": "12/01/2000"}, "9")
    assert "not a letter" in worded.skipped


def test_a_rationale_may_be_as_long_as_twice_the_examples_reasoning():
    from rebase_core.transform.planned import rationale_budget

    longest = max(len(e.output) for e in DATES.examples)
    assert rationale_budget(DATES, TransformConfig(max_tokens=400)) == max(96, longest // 2)
    assert rationale_budget(DATES, TransformConfig(max_tokens=50)) == 50  # the config caps it
