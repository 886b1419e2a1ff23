"""The worked examples in docstrings are run, so they stay true."""

import doctest
import importlib

import pytest

MODULES = [
    "rebase_core.corpus",
    "rebase_core.task",
    "rebase_core.transform.checks",
    "rebase_core.llm.pricing",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
