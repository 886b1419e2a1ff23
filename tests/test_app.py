"""AppTest smoke: the app shell renders and every page of the flow is reachable."""

import pytest
from streamlit.testing.v1 import AppTest

from rebase_core.settings import PROJECT_ROOT

APP = str(PROJECT_ROOT / "app.py")
PAGES = [
    "home",
    "task",
    "datastore",
    "retrieve",
    "transform",
    "compare",
    "finetune",
    "evaluate",
    "export",
]


def _app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["ANTHROPIC_API_KEY"] = ""
    return at


def test_shell_renders_default_page():
    at = _app().run()
    assert not at.exception
    assert at.title[0].value == "ReBase Studio"


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(page):
    at = _app().run()
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, at.exception
