"""Export round trips, the dataset card, the model zip and the Hub push's offline error."""

import json
import zipfile

import pytest

from rebase_core.cli import main
from rebase_core.errors import InputError, OfflineError
from rebase_core.export import FORMATS, export_model, export_pairs, push_to_hub, read_pairs
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
