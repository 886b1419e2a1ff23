"""The global `--workspace` (and `-v`) work before the command and after it, for every command."""

import argparse
import json

from rebase_core.cli import build_parser, main
from rebase_core.datastore import build_datastore
from rebase_core.embed import HashingEmbedder
from rebase_core.settings import Settings
from rebase_core.types import Example, Task


def _leaf_parsers(parser, prefix=()):
    """(argv prefix, parser) of every command and subcommand."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix, parser
    for action in subs:
        for name, child in action.choices.items():
            yield from _leaf_parsers(child, (*prefix, name))


def test_every_command_takes_the_workspace_on_either_side():
    parser = build_parser()
    commands = list(_leaf_parsers(parser))
    assert len(commands) > 10
    for prefix, leaf in commands:  # every (sub)command knows the global options
        assert {"--workspace", "-v"} <= set(leaf._option_string_actions), prefix
    args = ["retrieve", "--task", "t.json"]
    before = parser.parse_args(["--workspace", "W1", *args])
    after = parser.parse_args([*args, "--workspace", "W2", "-v"])
    assert (before.workspace, before.verbose, after.workspace, after.verbose) == (
        "W1",
        False,
        "W2",
        True,
    )
    assert parser.parse_args(args).workspace is None


def test_retrieve_reads_the_workspace_given_after_the_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REBASE_EMBEDDER", "hash")
    monkeypatch.setenv("REBASE_HOME", str(tmp_path / "elsewhere"))
    home = tmp_path / "ws"
    source = tmp_path / "src" / "animals"
    source.mkdir(parents=True)
    rows = ["The cat sat on the mat", "A dog chased the ball", "Stocks fell today"]
    (source / "train.jsonl").write_text("".join(json.dumps({"text": r}) + "\n" for r in rows))
    settings = Settings(home=home, embedder="hash")
    build_datastore(settings.default_store, [str(source)], settings, embedder=HashingEmbedder())
    task = tmp_path / "task.json"
    task.write_text(json.dumps(Task("pets", "Which animal?", (Example("A cat", "cat"),)).to_dict()))
    args = ["retrieve", "--task", str(task), "--top-k", "2"]
    assert main(["--workspace", str(home), *args, "--out", str(tmp_path / "a.jsonl")]) == 0
    assert main([*args, "--out", str(tmp_path / "b.jsonl"), "--workspace", str(home)]) == 0
    first = (tmp_path / "a.jsonl").read_text()
    assert first and first == (tmp_path / "b.jsonl").read_text()
    capsys.readouterr()
    assert main(args) == 2  # $REBASE_HOME has no datastore: the error says so
    assert "error:" in capsys.readouterr().err
