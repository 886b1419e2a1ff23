"""Export round trips, the dataset card, the model zip and the Hub push's offline error."""

import json
import os
import zipfile
from pathlib import Path

import pytest

from rebase_core import export_options as eo
from rebase_core.cli import main
from rebase_core.errors import InputError, OfflineError
from rebase_core.export import (
    FORMATS,
    dataset_card,
    export_model,
    export_pairs,
    model_zip,
    push_pairs_to_hub,
    push_to_hub,
    read_pairs,
)
from rebase_core.finetune import RunInfo
from rebase_core.types import Example, Pair, PairSource, Task

TASK = Task(
    name="claim-check",
    instruction="Decide whether the evidence supports the claim.",
    examples=(Example("Claim: sky is blue. Evidence: it is.", "supports"),),
)
PAIRS = [
    Pair(
        id="r1",
        input="Claim: water boils at 100 °C. Evidence: at sea level it does.",
        output="supports",
        origin="rebase",
        status="accepted",
        source=PairSource("vitaminc", "default", "17", 0.4123),
        llm="anthropic:claude-3-5-haiku-latest",
        prompt_version="transform-v2",
        created_at="2025-01-02T03:04:05Z",
    ),
    Pair(
        id="r2",
        input='Line one\nline "two", with a comma',
        output="refutes",
        origin="rebase",
        status="edited",
        source=PairSource("fever", "v1", "3", None),
        llm="local:qwen2.5-coder-1.5b-instruct",
        prompt_version="transform-v2",
        extra={"edited_by": "me", "votes": 3},
    ),
    Pair(id="d1", input="Claim: 2+2=5.", output="refutes", origin="direct", status="pending"),
]


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_round_trips_the_same_pairs(tmp_path, fmt):
    path = export_pairs(PAIRS, tmp_path / "out", fmt, task=TASK)
    assert read_pairs(path) == PAIRS
    assert read_pairs(tmp_path / "out") == PAIRS  # the folder is readable too
    assert (tmp_path / "out" / "README.md").is_file()


def test_a_file_name_gives_a_file_with_its_card_beside_it(tmp_path):
    path = export_pairs(PAIRS, tmp_path / "curated.parquet", "parquet")
    assert path == tmp_path / "curated.parquet" and path.is_file()
    assert (tmp_path / "curated.README.md").is_file()
    jsonl = export_pairs(PAIRS, tmp_path / "curated.jsonl", "jsonl")
    first = json.loads(jsonl.read_text().splitlines()[0])
    assert first == PAIRS[0].to_json_dict()  # the contract's nested shape


def test_card_lists_counts_origins_sources_licenses_prompts_and_models(tmp_path):
    export_pairs(PAIRS, tmp_path / "out", "jsonl", task=TASK, licenses={"vitaminc": "MIT"})
    card = (tmp_path / "out" / "README.md").read_text()
    assert card.startswith("---\nlicense: other\n")  # mixed/unknown source licenses
    assert TASK.instruction in card
    assert "| accepted | 1 |" in card and "| edited | 1 |" in card and "| pending | 1 |" in card
    assert "| rebase | 2 |" in card and "| direct | 1 |" in card
    assert "| vitaminc | 1 | MIT |" in card
    assert "| fever | 1 | unknown — check before redistributing |" in card
    assert "| transform-v2 | 2 |" in card
    assert "anthropic:claude-3-5-haiku-latest" in card and "local:qwen2.5-coder" in card
    single = export_pairs(PAIRS[:1], tmp_path / "one", "csv", licenses={"vitaminc": "MIT"})
    assert (single.parent / "README.md").read_text().startswith("---\nlicense: MIT\n")


def test_bad_format_and_empty_pairs_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="not supported"):
        export_pairs(PAIRS, tmp_path / "x", "xlsx")
    with pytest.raises(InputError, match="no pairs"):
        export_pairs([], tmp_path / "x", "jsonl")
    with pytest.raises(InputError, match="holds no exported pairs"):
        read_pairs(tmp_path)


def test_model_zip_holds_the_model_folder_and_the_card(tmp_path):
    run = tmp_path / "run-1"
    (run / "model").mkdir(parents=True)
    (run / "model" / "adapter_config.json").write_text("{}")
    (run / "model" / "adapter_model.safetensors").write_bytes(b"\0" * 10)
    (run / "model" / "README.md").write_text("# card")
    (run / "run.json").write_text('{"status": "done"}')
    (run / "progress.jsonl").write_text('{"step": 1}\n')
    (run / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    (run / "checkpoints" / "checkpoint-1" / "optimizer.pt").write_bytes(b"x")
    out = export_model(run, tmp_path / "dl" / "model.zip")
    with zipfile.ZipFile(out) as zf:
        names = sorted(zf.namelist())
    assert names == [
        "run-1/README.md",
        "run-1/adapter_config.json",
        "run-1/adapter_model.safetensors",
        "run-1/progress.jsonl",
        "run-1/run.json",
    ]
    unfinished = tmp_path / "run-2"
    unfinished.mkdir()
    (unfinished / "run.json").write_text('{"status": "cancelled"}')
    with pytest.raises(InputError, match="status: cancelled"):
        export_model(unfinished, tmp_path / "x.zip")


def test_push_to_hub_needs_a_token_and_reports_offline(tmp_path):
    folder = export_pairs(PAIRS, tmp_path / "ds", "datasets")
    with pytest.raises(InputError, match="needs a token"):
        push_to_hub(folder, "me/pairs", None)
    # conftest sets HF_HUB_OFFLINE=1, as on a machine without the Hub.
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE"):
        push_to_hub(folder, "me/pairs", "hf_dummy")


def test_cli_export_formats_and_exit_codes(tmp_path, capsys):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(p.to_json_dict()) + "\n" for p in PAIRS))
    task = tmp_path / "task.json"
    task.write_text(json.dumps(TASK.to_dict()))
    out = tmp_path / "curated.csv"
    args = ["export", "--data", str(data), "--out", str(out), "--task", str(task)]
    assert main([*args, "--license", "vitaminc=MIT", "--status", "accepted,edited"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert [p.id for p in read_pairs(out)] == ["r1", "r2"]
    assert "| vitaminc | 1 | MIT |" in (tmp_path / "curated.README.md").read_text()

    assert main(["export", "--data", str(tmp_path / "nope.jsonl"), "--out", str(out)]) == 2
    assert main([*args, "--license", "no-equals-sign"]) == 2
    assert main(["export", "--run", str(tmp_path), "--out", str(tmp_path / "m.zip")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(e.startswith("error: ") for e in errors)


def _run(name, task_name, status="done", origins=None):
    return RunInfo(
        name=name,
        path=Path("/runs") / name,
        status=status,
        task_name=task_name,
        config={},
        n_train=12,
        origins=origins or {"rebase": 12},
        global_step=1,
        max_steps=1,
        last_loss=None,
        started_at="",
    )


def test_the_pairs_to_export_are_counted_and_chosen_by_status_and_origin():
    counts = eo.pair_counts([*PAIRS, Pair(id="x", input="a", output="b", origin="other")])
    assert counts.by_status["accepted"] == 1 and counts.by_origin["rebase"] == 2
    assert counts.origins == ("rebase", "direct", "other")  # known ones in flow order first
    assert [p.id for p in eo.select_pairs(PAIRS, ["accepted", "pending"], ["rebase"])] == ["r1"]
    assert eo.select_pairs(PAIRS, [], ["rebase"]) == []
    assert set(eo.FORMAT_LABELS) == set(eo.FORMAT_MIME) == set(FORMATS)


def test_a_card_splits_into_its_front_matter_and_body():
    front, body = eo.split_card(dataset_card(PAIRS, task=TASK))
    assert front.startswith("license:") and "---" not in front
    assert body.lstrip().startswith("# claim-check")
    assert eo.split_card("# no front matter") == ("", "# no front matter")


def test_finished_runs_put_the_tasks_first_and_name_their_hub_targets(tmp_path):
    runs = [_run("a", "other"), _run("b", "claim-check"), _run("c", "claim-check", "failed")]
    done = eo.finished_runs(runs, "claim-check")
    assert [r.name for r in done] == ["b", "a"]
    assert eo.run_label(done[0]) == "b · claim-check · ReBase · 12 pairs"
    assert eo.hub_targets(3, "csv", done) == {
        "pairs": "the 3 curated pairs (CSV)",
        "run:b": "the model of run b",
        "run:a": "the model of run a",
    }
    assert eo.hub_targets(0, "csv", []) == {}
    model = tmp_path / "model"
    model.mkdir()
    (model / "adapter_config.json").write_text("{}")
    (model / "weights").write_bytes(b"\0" * 2_000_000)
    assert eo.model_summary(model) == "LoRA adapter, 2.0 MB"


def test_model_zip_is_made_once_until_the_model_changes(tmp_path):
    run = tmp_path / "run-1"
    (run / "model").mkdir(parents=True)
    (run / "model" / "config.json").write_text("{}")
    out = model_zip(run, tmp_path / "dl" / "run-1.zip")
    made = out.stat().st_mtime_ns
    assert model_zip(run, out).stat().st_mtime_ns == made  # up to date: not zipped again
    os.utime(run / "model", ns=(made + 10**9, made + 10**9))
    assert model_zip(run, out).stat().st_mtime_ns > made


def test_pushing_pairs_exports_them_alone_into_the_folder_first(tmp_path):
    folder = tmp_path / "hub" / "me-pairs"
    folder.mkdir(parents=True)
    (folder / "stale.txt").write_text("from an earlier push")
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE"):  # conftest: the Hub is off
        push_pairs_to_hub(PAIRS, folder, "me/pairs", "hf_dummy", fmt="jsonl", task=TASK)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "pairs.jsonl"]
