"""Task page interactions (AppTest): pasting examples, loading a preset, blank cells."""

import pytest
from streamlit.testing.v1 import AppTest

from rebase_core.settings import PROJECT_ROOT
from rebase_core.task import available_presets
from rebase_core.types import Example, Task
from rebase_core.workspace import Workspace

APP = str(PROJECT_ROOT / "app.py")


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("REBASE_HOME", str(home))
    monkeypatch.setenv("REBASE_EMBEDDER", "hash")
    return home


def _task_page():
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["ANTHROPIC_API_KEY"] = ""
    at.run()
    return at.switch_page("app_pages/task.py").run()


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def test_pasted_examples_are_added_once_confirmed_and_the_box_is_cleared(home):
    at = _task_page()
    at.text_area(key="task_paste").input("The cat purred\tcat\nA dog barked\tdog").run()
    _button(at, "Add pasted examples").click().run()
    assert not at.exception
    assert any("Added 2 examples" in s.value for s in at.success)
    assert at.text_area(key="task_paste").value == ""  # a second click cannot add them again
    assert _button(at, "Add pasted examples").disabled
    draft = Workspace(home / "workspace.sqlite").get_value("task_draft")
    assert [e["input"] for e in draft["data"]["examples"]] == ["The cat purred", "A dog barked"]


def test_a_bad_paste_says_why_and_keeps_the_text(home):
    at = _task_page()
    at.text_area(key="task_paste").input("no tab here").run()
    _button(at, "Add pasted examples").click().run()
    assert "Line 1 has no TAB" in at.error[0].value
    assert at.text_area(key="task_paste").value == "no tab here"


def test_loading_a_preset_makes_it_the_current_task(home):
    presets = available_presets()
    if not presets:
        pytest.skip("no presets installed (`make setup-dev`)")
    name = sorted(presets)[0]
    ws = Workspace(home / "workspace.sqlite")
    other = ws.save_task(Task("other", "Say which.", (Example("a", "b"),)))
    ws.set_value("current_task", other.id)
    draft = {"name": "half", "instruction": "", "examples": [{"input": "", "output": ""}]}
    ws.set_value("task_draft", {"tag": "t", "data": draft, "at": "12:00:00"})
    at = _task_page()
    assert "unsaved changes" in at.info[0].value
    at.selectbox(key="task_preset").select(name).run()
    _button(at, "Load preset").click().run()
    assert not at.exception
    current = ws.get_task(int(ws.get_value("current_task")))
    assert current.name == name and current.task == presets[name]
    assert at.session_state["task_id"] == current.id
    assert at.selectbox(key="task_pick").value == current.id
    assert any(f"Current task: **{name}**" in s.value for s in at.success)
    assert not any("unsaved changes" in i.value for i in at.info)  # the preset replaced it
    # Loading it again adds no version (identical content), and the editor holds the preset.
    _button(at, "Load preset").click().run()
    assert ws.get_task(name).version == 1
    assert next(w for w in at.text_input if w.label == "Name").value == name
