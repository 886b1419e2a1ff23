"""The worked examples in docstrings are run, so they stay true."""

import doctest
import importlib

import pytest

MODULES = [
    "rebase_core.corpus",
    "rebase_core.datastore.readiness",
    "rebase_core.datastore.sources",
    "rebase_core.export_options",
    "rebase_core.heldout_split",
    "rebase_core.llm.pricing",
    "rebase_core.readability",
    "rebase_core.retrieval_runs",
    "rebase_core.retriever.teacher",
    "rebase_core.synthesize.rules",
    "rebase_core.task",
    "rebase_core.transform.checks",
    "rebase_core.transform.choices",
    "rebase_core.transform.plan",
    "rebase_core.transform.plan_rules",
    "rebase_core.transform.planner",
    "rebase_core.transform.spans",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
