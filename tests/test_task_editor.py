"""The task editor's rules: blank and loaded forms, table edits, pasted examples, uploads."""

import doctest
import json

import pytest

import rebase_core.task as task_module
from rebase_core.errors import InputError
from rebase_core.task import (
    add_pasted_examples,
    available_presets,
    comma_list,
    describe_task,
    edited_examples,
    load_task,
    save_task,
    task_form,
    task_from_dict,
    task_from_json_bytes,
    task_to_json,
    without_blank_examples,
)
from rebase_core.types import Example, Task

TASK = Task("pets", "Which animal?", (Example("The cat sat", "cat"),), ("finance",), "accuracy")


def test_a_loaded_form_saves_back_to_the_same_task_and_a_blank_one_has_one_empty_row():
    assert task_from_dict(task_form(TASK)) == TASK
    blank = task_form(None)
    assert blank["name"] == "" and blank["examples"] == [{"input": "", "output": ""}]
    with pytest.raises(InputError, match="'name' is missing"):
        task_from_dict(blank)


def test_table_edits_apply_in_order_edit_add_delete():
    base = [{"input": "a", "output": "1"}, {"input": "b", "output": "2"}]
    changes = {
        "edited_rows": {"1": {"input": "B"}},
        "added_rows": [{"input": "c", "output": None}],
        "deleted_rows": [0],
    }
    assert edited_examples(base, changes) == [
        {"input": "B", "output": "2"},
        {"input": "c", "output": ""},
    ]
    assert edited_examples(base, {}) == base
    assert base[1]["input"] == "b"  # the base rows are not changed


def test_blank_rows_are_dropped_but_half_filled_ones_stay_for_the_error():
    form = {
        **task_form(TASK),
        "examples": [{"input": " ", "output": ""}, {"input": "x", "output": ""}],
    }
    assert without_blank_examples(form)["examples"] == [{"input": "x", "output": ""}]
    with pytest.raises(InputError, match="example 1 has an empty 'output'"):
        task_from_dict(without_blank_examples(form))


def test_pasted_examples_come_after_the_filled_rows():
    form = {
        **task_form(None),
        "examples": [{"input": "kept", "output": ""}, {"input": "", "output": ""}],
    }
    new, added = add_pasted_examples(
        form, 'The cat purred\tcat\n{"input": "A dog", "output": "dog"}'
    )
    assert added == 2
    assert [e["input"] for e in new["examples"]] == ["kept", "The cat purred", "A dog"]
    assert form["examples"][0] == {"input": "kept", "output": ""}  # the form itself is unchanged
    with pytest.raises(InputError, match="Line 1 has no TAB"):
        add_pasted_examples(form, "no tab here")


def test_task_files_round_trip_and_bad_uploads_say_why(tmp_path):
    assert task_from_json_bytes(task_to_json(TASK).encode(), source="t.json") == TASK
    save_task(TASK, tmp_path / "t.json")
    assert load_task(tmp_path / "t.json") == TASK
    assert json.loads((tmp_path / "t.json").read_text())["name"] == "pets"
    with pytest.raises(InputError, match=r"up\.json is not a UTF-8 JSON file"):
        task_from_json_bytes(b"\xff{", source="up.json")
    with pytest.raises(InputError, match=r"up\.json: expected a JSON object"):
        task_from_json_bytes(b"[1]", source="up.json")


def test_lists_summaries_and_presets():
    assert comma_list("a, ,b ,") == ("a", "b")
    assert comma_list("") == ()
    assert describe_task(TASK) == "1 example(s)"
    presets = available_presets()
    assert all(isinstance(t, Task) for t in presets.values())


def test_docstring_examples():
    result = doctest.testmod(task_module)
    assert result.attempted > 0 and result.failed == 0
