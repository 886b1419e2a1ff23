"""Fine-tuning on a tiny random causal LM made here (no download), plus one slow real-model run."""

import dataclasses
import json
import time
from pathlib import Path

import pytest

from rebase_core import finetune as ft
from rebase_core.cli import main
from rebase_core.errors import InputError
from rebase_core.finetune import train as ft_train
from rebase_core.types import Example, Pair, PairSource, Progress, Task

TASK = Task(
    name="sentiment",
    instruction="Say whether the review is positive or negative.",
    examples=(Example("A delight.", "positive"), Example("Dull and long.", "negative")),
)
COT_TASK = Task(
    name="sums",
    instruction="Add the numbers.",
    examples=(
        Example("2 + 3", "Two plus three is five. So the answer is 5."),
        Example("1 + 1", "One plus one is two. So the answer is 2."),
    ),
)


def _pairs(n: int = 16) -> list[Pair]:
    return [
        Pair(
            id=f"p{i}",
            input=f"review {i}: it was {'great' if i % 2 else 'boring'}",
            output="positive" if i % 2 else "negative",
            origin="rebase" if i % 4 else "direct",
            status="accepted",
            source=PairSource("imdb", "default", str(i), 0.5) if i % 4 else None,
        )
        for i in range(n)
    ]


def _config(tiny_lm: Path, **overrides) -> ft.TrainConfig:
    base = {
        "student": str(tiny_lm),
        "max_steps": 3,
        "learning_rate": 1e-2,
        "warmup": 0,
        "weight_decay": 0.0,  # parameters then change only through gradients
        "max_seq_len": 128,
        "save_every_steps": 50,
    }
    base.update(overrides)
    return ft.TrainConfig(**base)


@pytest.fixture
def spy(monkeypatch):
    """Captures the model `finetune` trains and a copy of its trainable weights before training."""
    captured = {}
    original = ft_train._load_for_training

    def load(*args, **kwargs):
        model, tokenizer = original(*args, **kwargs)
        captured["model"] = model
        captured["before"] = {
            n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad
        }
        return model, tokenizer

    # Patch the module that calls it: `finetune` looks the name up in `finetune.train`.
    monkeypatch.setattr(ft_train, "_load_for_training", load)
    return captured


def _assert_every_trainable_param_changed(captured):
    import torch

    after = dict(captured["model"].named_parameters())
    assert captured["before"], "nothing was trainable"
    unchanged = [n for n, p in captured["before"].items() if torch.equal(p, after[n].detach())]
    assert unchanged == []


# ----------------------------------------------------------------------------- prompt and labels


def test_prompt_is_alpaca_style_with_examples_then_input_and_response():
    prompt = ft.format_prompt(TASK, "Loved it.")
    order = ["### Instruction:", TASK.instruction, "### Examples:"]
    order += ["Input: A delight.\nResponse: positive", "### Input:\nLoved it.", "### Response:\n"]
    positions = [prompt.index(part) for part in order]
    assert positions == sorted(positions)
    assert prompt.endswith("### Response:\n")
    zero = ft.format_prompt(TASK, "Loved it.", with_examples=False)
    assert "### Examples:" not in zero and "A delight." not in zero
    assert zero.endswith("### Input:\nLoved it.\n\n### Response:\n")


def test_chain_of_thought_prompt_starts_reasoning_like_the_paper():
    prompt = ft.format_prompt(COT_TASK, "4 + 4")
    assert "Response: Let's think step by step. Two plus three" in prompt
    assert prompt.endswith("### Response:\nLet's think step by step.")
    # The prefix is in the prompt, so the completion must not repeat it.
    completion = ft.format_completion(COT_TASK, "Let's think step by step. Four and four is 8.")
    assert completion == " Four and four is 8."
    assert ft.format_completion(COT_TASK, "Four and four is 8.") == completion
    assert ft.format_completion(TASK, "  positive ") == "positive"


def test_completion_only_loss_masks_exactly_the_prompt_tokens(tiny_lm):
    from transformers import AutoTokenizer

    tok = ft.prepare_tokenizer(AutoTokenizer.from_pretrained(tiny_lm))
    prompt = ft.format_prompt(TASK, "Loved it.")
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    masked = ft.build_features(tok, prompt, "positive", max_seq_len=512, completion_only_loss=True)
    assert masked["n_prompt"] == n_prompt
    assert masked["labels"][:n_prompt] == [ft.IGNORE_INDEX] * n_prompt
    assert masked["labels"][n_prompt:] == masked["input_ids"][n_prompt:]
    assert masked["input_ids"][-1] == tok.sep_token_id  # the end token closes the response
    assert tok.decode(masked["input_ids"][n_prompt:-1]) == "positive"
    full = ft.build_features(tok, prompt, "positive", max_seq_len=512, completion_only_loss=False)
    assert full["labels"] == full["input_ids"] == masked["input_ids"]


def test_too_long_examples_keep_the_response_and_the_end_of_the_prompt(tiny_lm):
    from transformers import AutoTokenizer

    tok = ft.prepare_tokenizer(AutoTokenizer.from_pretrained(tiny_lm))
    prompt = ft.format_prompt(TASK, "word " * 200)
    feats = ft.build_features(tok, prompt, "positive", max_seq_len=64, completion_only_loss=True)
    assert feats["truncated"] and len(feats["input_ids"]) == 64
    text = tok.decode(feats["input_ids"])
    assert text.endswith("# # # response : positive [SEP]")  # lower-cased WordPiece


# ----------------------------------------------------------------------------- training


@pytest.mark.parametrize("method", ["lora", "full"])
def test_training_logs_loss_and_changes_every_trainable_parameter(
    tiny_lm, tmp_path, settings, spy, method
):
    reports: list[Progress] = []
    result = ft.finetune(
        TASK,
        _pairs(),
        tmp_path / "run",
        _config(tiny_lm, method=method),
        settings=settings,
        on_progress=reports.append,
    )
    assert result.status == "done" and result.global_step == 3 and result.max_steps == 3
    rows = ft.read_progress(result.run_dir)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for row in rows:
        assert set(row) == {"step", "epoch", "loss", "learning_rate", "elapsed_s", "eta_s"}
        assert row["loss"] > 0
    assert rows[-1]["eta_s"] == 0
    assert reports[-1] == Progress(3, 3, f"loss {rows[-1]['loss']:.4f}")
    _assert_every_trainable_param_changed(spy)
    if method == "lora":  # only the adapter is trainable, and only it is saved
        assert all("lora_" in n for n in spy["before"])
        assert (result.model_dir / "adapter_config.json").is_file()
    else:
        assert len(spy["before"]) == len(list(spy["model"].parameters()))
        assert (result.model_dir / "config.json").is_file()
    card = json.loads((result.run_dir / "run.json").read_text())
    assert card["status"] == "done"
    assert not (result.run_dir / "checkpoints").exists()  # resume state is dropped when done
    assert card["data"]["by_origin"] == {"direct": 4, "rebase": 12}
    assert card["data"]["source_datasets"] == {"imdb": 12}
    assert card["config"]["method"] == method
    assert (result.model_dir / "README.md").read_text().startswith("# sentiment")


def test_saved_folder_reloads_with_the_trained_weights_and_generates(
    tiny_lm, tmp_path, settings, spy
):
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file

    from rebase_core.evaluate import generate_answer

    result = ft.finetune(TASK, _pairs(), tmp_path / "run", _config(tiny_lm), settings=settings)
    saved = load_file(result.model_dir / "adapter_model.safetensors")
    trained = get_peft_model_state_dict(spy["model"])
    assert saved.keys() == trained.keys()
    assert all(torch.equal(saved[k], trained[k].cpu()) for k in saved)

    student = ft.load_student(result.run_dir, settings=settings)
    assert student.with_examples is True and student.run_dir == result.run_dir
    # The merged model computes what the trained adapter model computes.
    ids = student.tokenizer("### Input:\nfine", return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        merged_logits = student.model(**ids).logits
        trained_logits = spy["model"].eval()(**ids).logits
    assert torch.allclose(merged_logits, trained_logits, atol=1e-5)
    answer = generate_answer(student, TASK, "Loved it.", max_new_tokens=5)
    assert isinstance(answer, str)


def test_cancel_keeps_a_checkpoint_and_resume_finishes_like_an_uninterrupted_run(
    tiny_lm, tmp_path, settings
):
    config = _config(tiny_lm, max_steps=6, method="full")
    calls = []

    def stop_at_second_step() -> bool:
        calls.append(1)
        return len(calls) >= 2

    first = ft.finetune(
        TASK,
        _pairs(),
        tmp_path / "run",
        config,
        settings=settings,
        should_stop=stop_at_second_step,
    )
    assert first.status == "cancelled" and first.global_step == 2 and first.model_dir is None
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-2").is_dir()
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "cancelled"
    first_rows = ft.read_progress(first.run_dir)
    assert [r["step"] for r in first_rows] == [1, 2]

    reports: list[Progress] = []
    resumed = ft.finetune(
        TASK, _pairs(), tmp_path / "run", config, settings=settings, on_progress=reports.append
    )
    assert resumed.status == "done" and resumed.global_step == 6
    assert [p.done for p in reports] == [2, 3, 4, 5, 6]  # picked up at step 2, not from zero
    resumed_rows = ft.read_progress(resumed.run_dir)
    assert [r["step"] for r in resumed_rows] == [1, 2, 3, 4, 5, 6]
    assert resumed_rows[:2] == first_rows
    assert resumed_rows[2]["elapsed_s"] >= first_rows[1]["elapsed_s"]

    straight = ft.finetune(TASK, _pairs(), tmp_path / "straight", config, settings=settings)
    expected = [r["loss"] for r in ft.read_progress(straight.run_dir)]
    assert [r["loss"] for r in resumed_rows] == pytest.approx(expected, rel=1e-4)


def test_finished_run_is_returned_and_a_different_run_in_its_folder_is_refused(
    tiny_lm, tmp_path, settings
):
    config = _config(tiny_lm, max_steps=1)
    first = ft.finetune(TASK, _pairs(4), tmp_path / "run", config, settings=settings)
    started = time.monotonic()
    again = ft.finetune(TASK, _pairs(4), tmp_path / "run", config, settings=settings)
    assert again == first and time.monotonic() - started < 1.0
    with pytest.raises(InputError, match="another task, data or config"):
        ft.finetune(TASK, _pairs(6), tmp_path / "run", config, settings=settings)


def test_empty_or_too_small_data_is_an_input_error(tiny_lm, tmp_path, settings):
    with pytest.raises(InputError, match="at least 2 pairs"):
        ft.finetune(TASK, [], tmp_path / "a", _config(tiny_lm), settings=settings)
    blank = [Example("x", "  "), Example("", "y"), Example("ok", "positive")]
    with pytest.raises(InputError, match=r"got 1 \(of 3\)"):
        ft.finetune(TASK, blank, tmp_path / "b", _config(tiny_lm), settings=settings)


def test_config_validates_and_reports_unknown_options():
    with pytest.raises(InputError, match="method must be"):
        ft.TrainConfig(method="qlora")
    with pytest.raises(InputError, match=r"Unknown training option\(s\) \['lr'\]"):
        ft.TrainConfig.from_dict({"lr": 0.1})
    assert ft.TrainConfig.from_dict({"max_steps": None, "lora_r": 4}).lora_r == 4
    help_text = ft.TrainConfig.help()
    assert set(help_text) == {f for f in ft.TrainConfig.__dataclass_fields__}
    assert all(help_text.values())
    assert ft.total_steps(16, ft.TrainConfig()) == 2  # 8 batches of 2, 4 per step
    assert ft.total_steps(17, ft.TrainConfig(epochs=2)) == 6
    assert ft.total_steps(1000, ft.TrainConfig(max_steps=5)) == 5


def test_training_pairs_default_to_accepted_and_edited(tmp_path):
    path = tmp_path / "pairs.jsonl"
    records = [
        {"id": "a", "input": "x", "output": "y", "origin": "rebase", "status": "accepted"},
        {"id": "b", "input": "x", "output": "y", "origin": "rebase", "status": "edited"},
        {"id": "c", "input": "x", "output": "y", "origin": "rebase", "status": "rejected"},
        {"id": "d", "input": "x", "output": "y", "origin": "direct", "status": "pending"},
        {"input": "plain", "output": "row"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert [p.id for p in ft.load_training_pairs([path])] == ["a", "b", "pairs-5"]
    assert len(ft.load_training_pairs([path], None)) == 5
    only_pending = tmp_path / "pending.jsonl"
    only_pending.write_text(json.dumps(records[3]) + "\n")
    with pytest.raises(InputError, match="found: pending 1"):
        ft.load_training_pairs([only_pending])


def test_train_job_handler_and_run_list(tiny_lm, tmp_path, settings):
    class Ctx:
        def __init__(self):
            self.reports = []

        def progress(self, p):
            self.reports.append(p)

        def should_stop(self):
            return False

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(p.to_json_dict()) + "\n" for p in _pairs(8)))
    params = {
        "task": TASK.to_dict(),
        "data": str(data),
        "config": {"student": str(tiny_lm), "epochs": 2, "max_seq_len": 96},
    }
    ctx = Ctx()
    result = ft.run_train_job(params, settings, ctx)
    # 8 pairs, batch 2 x 4 accumulation = 1 step per epoch, as total_steps predicts.
    assert ft.total_steps(8, ft.TrainConfig(epochs=2)) == 2
    assert result["status"] == "done" and result["global_step"] == 2 and result["max_steps"] == 2
    run_dir = Path(result["run_dir"])
    assert run_dir.parent == settings.runs_dir and run_dir.name.startswith("sentiment-")
    assert ctx.reports[-1].done == 2 and ctx.reports[-1].total == 2
    # The same job again resumes (here: finds finished) the same folder.
    assert ft.run_train_job(params, settings, Ctx())["run_dir"] == str(run_dir)

    runs = ft.list_runs(settings)
    assert [r.name for r in runs] == [run_dir.name]
    run = runs[0]
    assert run.status == "done" and run.n_train == 8 and run.global_step == 2
    assert run.origin == "mixed" and run.origins == {"direct": 2, "rebase": 6}
    assert run.last_loss == ft.read_progress(run_dir)[-1]["loss"]
    card = json.loads((run_dir / "run.json").read_text())
    assert card["data_files"] == [str(data)]
    # The card keeps the run's spec: the run resumes from it once its job folder is gone.
    spec = ft.TrainRun.from_run_card(run_dir)
    assert spec == ft.TrainRun.from_params({**params, "out_dir": str(run_dir)})
    assert spec.job_key() == f"train:{run_dir.name}"


def test_a_run_whose_process_died_is_listed_as_interrupted(tmp_path, settings):
    run_dir = settings.runs_dir / "dead"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(
        json.dumps({"status": "running", "pid": 2**22 + 12345, "task": {"name": "t"}})
    )
    assert [r.status for r in ft.list_runs(settings)] == ["interrupted"]


# ----------------------------------------------------------------------------- the job spec


def _job_folder(settings, name, kind, key, params, state="done", created_at=1.0):
    """A job folder as `jobs.start_job` writes it, without starting a process."""
    folder = settings.jobs_dir / name
    folder.mkdir(parents=True)
    spec = {"kind": kind, "key": key, "params": params, "created_at": created_at}
    (folder / "spec.json").write_text(json.dumps(spec))
    (folder / "status.json").write_text(json.dumps({"state": state}))
    return folder


def test_train_run_round_trips_its_params_and_is_keyed_by_its_run_folder(tmp_path):
    config = ft.TrainConfig(student="s", epochs=2.0, max_steps=7, threads=3)
    spec = ft.TrainRun(
        TASK,
        (tmp_path / "a.jsonl", tmp_path / "b.jsonl"),
        config,
        tmp_path / "runs" / "r1",
        statuses=("accepted",),
        origins=("rebase",),
    )
    params = json.loads(json.dumps(spec.to_params()))  # what the job folder keeps
    assert ft.TrainRun.from_params(params) == spec
    assert params["config"] == dataclasses.asdict(config)  # the one schema, not a second one
    assert spec.job_key() == "train:r1" == ft.train_job_key(tmp_path / "runs" / "r1")
    every_status = dataclasses.replace(spec, statuses=None)
    assert ft.TrainRun.from_params(every_status.to_params()).statuses is None

    # Params of jobs started before the spec existed still parse: one data path, a partial
    # config (threads from the settings), no statuses (the curated ones), no run folder.
    old = {"task": TASK.to_dict(), "data": "/x/pairs.jsonl", "config": {"student": "s"}}
    parsed = ft.TrainRun.from_params(old, threads=4)
    assert parsed.data == (Path("/x/pairs.jsonl"),) and parsed.out_dir is None
    assert parsed.statuses == ("accepted", "edited") and parsed.origins == ()
    assert parsed.config == ft.TrainConfig(student="s", threads=4)
    # Without a run folder the key still names one run: the same spec, the same key.
    assert parsed.job_key() == ft.TrainRun.from_params(old, threads=4).job_key()
    assert parsed.job_key() != dataclasses.replace(parsed, origins=("direct",)).job_key()
    with pytest.raises(InputError, match="No training data"):
        ft.TrainRun.from_params({"task": TASK.to_dict(), "data": []})


def test_train_run_reads_only_its_statuses_and_origins(tmp_path):
    data = tmp_path / "pairs.jsonl"
    records = [
        dict(p.to_json_dict(), status="pending" if i == 0 else "accepted")
        for i, p in enumerate(_pairs(8))
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    spec = ft.TrainRun(TASK, (data,), origins=("rebase",))
    assert [p.id for p in spec.load_pairs()] == ["p1", "p2", "p3", "p5", "p6", "p7"]
    everything = ft.TrainRun(TASK, (data,), statuses=None)
    assert len(everything.load_pairs()) == 8


def test_a_stopped_run_resumes_from_its_job_else_its_run_card(tmp_path, settings):
    run_dir = settings.runs_dir / "sentiment-abc"
    run_dir.mkdir(parents=True)
    config = ft.TrainConfig(student="s", max_steps=30)
    spec = ft.TrainRun(TASK, (tmp_path / "pairs.jsonl",), config, run_dir, ("accepted",))
    card = {
        "status": "cancelled",
        "task": TASK.to_dict(),
        "config": dataclasses.asdict(config),
        "data": {"n_pairs": 8, "by_origin": {"rebase": 8}},
        "max_steps": 30,
    }
    (run_dir / "run.json").write_text(json.dumps(card))
    (run_dir / "progress.jsonl").write_text(
        "".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in (1, 2, 3))
    )
    # A card without a spec or data files (a CLI run): nothing to resume from.
    state = ft.run_state(settings, run_dir.name)
    assert state.status == "cancelled" and state.resumable and state.resume is None
    assert (state.step, state.expected_steps) == (3, 30)

    # A card written before the spec was kept names its data files (and not the statuses).
    (run_dir / "run.json").write_text(json.dumps({**card, "data_files": [str(spec.data[0])]}))
    legacy = ft.run_state(settings, run_dir.name).resume
    assert legacy == dataclasses.replace(spec, statuses=("accepted", "edited"))

    (run_dir / "run.json").write_text(json.dumps({**card, "spec": spec.to_params()}))
    assert ft.run_state(settings, run_dir.name).resume == spec

    # The run's newest job wins over its card: its params are what launched it.
    job_spec = dataclasses.replace(spec, origins=("rebase",))
    _job_folder(settings, "j1", "train", "train:sentiment-abc", job_spec.to_params(), "cancelled")
    state = ft.run_state(settings, run_dir.name)
    assert state.job is not None and state.job.id == "j1" and state.resume == job_spec
    # Resuming is starting that spec again: the same key, so the same run folder.
    assert state.resume.job_key() == ft.train_job_key(run_dir)


def test_run_state_of_a_running_job_without_a_run_card_yet(settings):
    params = {
        "task": TASK.to_dict(),
        "data": ["/x.jsonl"],
        "out_dir": str(settings.runs_dir / "new"),
    }
    folder = _job_folder(settings, "j2", "train", "train:new", params, state="running")
    state = ft.run_state(settings, "new")
    assert state.active and state.status == "running" and state.run is None
    assert not state.resumable and state.resume is None and not state.stopping
    (folder / "cancel").touch()
    assert ft.run_state(settings, "new").stopping
    (folder / "log.txt").write_text("".join(f"line {i}\n" for i in range(300)))
    tail = ft.run_state(settings, "new").log_tail(max_lines=2)
    assert tail == "line 298\nline 299"
    # Its run is watchable before the run folder exists, and only under its task.
    assert ft.train_attempts(settings, task_name="sentiment") == ["new"]
    assert ft.train_attempts(settings, task_name="other") == []
    assert ft.train_attempts(settings) == ["new"]
    assert ft.run_state(settings, "nothing").status == "?"


# ----------------------------------------------------------------------------- choosing the data


def _mixed(n_rebase: int, n_direct: int) -> list[Pair]:
    rebase = [Pair(f"r{i}", f"in {i}", "positive", "rebase", "accepted") for i in range(n_rebase)]
    direct = [Pair(f"d{i}", f"di {i}", "negative", "direct", "accepted") for i in range(n_direct)]
    return rebase + direct + [Pair("x", "in x", "positive", "rebase", "pending")]


def test_pairs_are_counted_per_chosen_origin_and_steps_on_what_trains():
    """The bug: with one origin chosen, the counts (and the dialog's steps) took every origin."""
    pairs = _mixed(n_rebase=9, n_direct=8)
    choice = ft.choose_pairs(pairs, ["rebase"], ["accepted"])
    assert len(choice.pairs) == 9 and {p.origin for p in choice.pairs} == {"rebase"}
    assert choice.by_status == {"pending": 1, "accepted": 9, "rejected": 0, "edited": 0}
    assert choice.by_origin == {"rebase": 9, "direct": 8}  # within the chosen statuses
    config = ft.TrainConfig()  # batch 2 x 4: 9 pairs are 5 batches, 2 steps; 17 would be 3
    assert choice.steps(config) == 2 == ft.total_steps(9, config)
    assert ft.choose_pairs(pairs, ["rebase", "direct"], ["accepted"]).steps(config) == 3
    # Pairs finetune skips (an empty input or output) are not counted as steps either.
    blank = [*pairs, Pair("b", " ", "positive", "rebase", "accepted")]
    with_blank = ft.choose_pairs(blank, ["rebase"], ["accepted"])
    assert len(with_blank.pairs) == 10 and len(with_blank.usable) == 9
    assert with_blank.steps(config) == 2
    assert ft.choose_pairs([], None, None).steps(config) == 0


def test_default_choice_is_the_curated_rebase_pairs_else_every_origin():
    pairs = [*_mixed(n_rebase=2, n_direct=3), Pair("m", "m", "x", "manual", "edited")]
    choice = ft.choose_pairs(pairs)
    assert choice.present_origins == ("rebase", "direct", "manual")
    assert choice.origins == ("rebase",) and choice.statuses == ("accepted", "edited")
    only_direct = ft.choose_pairs(_mixed(0, 3)[:-1])
    assert only_direct.origins == ("direct",) and len(only_direct.pairs) == 3
    # An origin no pair has (a stale choice) is dropped; an origin outside PAIR_ORIGINS is kept.
    odd = [*pairs, Pair("o", "o", "x", "imported", "accepted")]
    chosen = ft.choose_pairs(odd, ["gone", "imported"], ["accepted"])
    assert chosen.origins == ("imported",) and [p.id for p in chosen.pairs] == ["o"]
    assert chosen.present_origins[-1] == "imported"


def test_plan_and_check_a_launch(settings, tmp_path):
    pairs = _mixed(n_rebase=9, n_direct=8)
    choice = ft.choose_pairs(pairs, ["rebase"], ["accepted"])
    config = ft.TrainConfig(student="s")
    plan = ft.plan_training(settings, TASK, choice, config)
    assert plan.run_dir == ft.default_run_dir(settings, TASK, choice.pairs, config)
    assert (plan.n_pairs, plan.steps, plan.by_origin) == (9, 2, {"rebase": 9})
    assert plan.seconds is None and plan.existing == ""
    plan.run_dir.mkdir(parents=True)
    (plan.run_dir / "run.json").write_text(json.dumps({"status": "done"}))
    assert ft.plan_training(settings, TASK, choice, config).existing == "done"

    too_few = ft.choose_pairs(pairs[:1], ["rebase"], ["accepted"])
    with pytest.raises(InputError, match="at least 2 pairs"):
        ft.check_launch(settings, too_few, ft.TrainConfig())
    with pytest.raises(InputError, match="neither"):
        ft.check_launch(settings, choice, ft.TrainConfig(student=str(tmp_path / "no-model")))
    ft.check_launch(settings, choice, ft.TrainConfig())  # the packaged student: checked later


def test_config_options_give_every_field_a_label_and_the_form_each_option_once():
    options = ft.TrainConfig(threads=3).options()
    assert list(options) == [f.name for f in dataclasses.fields(ft.TrainConfig)]
    assert all(o.label and o.help for o in options.values())
    assert options["threads"].default == 3 and options["max_steps"].default_text == "all epochs"
    grouped = [name for names in ft.FORM_GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(set(options) - {"student"})


def test_run_rows_say_steps_and_metrics():
    run = ft.RunInfo(
        name="r",
        path=Path("/runs/r"),
        status="done",
        task_name="t",
        config={"student": "s", "per_device_batch": 2, "grad_accum": 4},
        n_train=17,
        origins={"rebase": 17},
        global_step=3,
        max_steps=0,
        last_loss=0.5,
        started_at="x",
        metrics={
            "a": {"test": "/x/nli.jsonl", "few_shot": True, "metric": "accuracy", "score": 0.6}
        },
    )
    row = run.table_row()
    assert row["steps"] == "3" and row["data"] == "rebase" and row["student"] == "s"
    assert row["metrics"] == "nli few-shot accuracy 0.600"
    assert run.expected_steps() == 3  # counted from the data and config
    assert dataclasses.replace(run, max_steps=5).table_row()["steps"] == "3/5"


# ----------------------------------------------------------------------------- CLI


def _write_task(path: Path, task: Task = TASK) -> Path:
    path.write_text(json.dumps(task.to_dict()))
    return path


def test_cli_train_runs_and_prints_the_result(tiny_lm, tmp_path, capsys):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(p.to_json_dict()) + "\n" for p in _pairs(4)))
    args = ["train", "--task", str(_write_task(tmp_path / "task.json")), "--data", str(data)]
    args += ["--out", str(tmp_path / "run"), "--student", str(tiny_lm), "--max-steps", "2"]
    args += ["--method", "full", "--max-seq-len", "96", "--completion-only"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "done" and result["global_step"] == 2
    card = json.loads((tmp_path / "run" / "run.json").read_text())
    assert card["config"]["completion_only_loss"] is True
    assert card["config"]["method"] == "full" and card["config"]["threads"] == 1


def test_cli_train_leaves_out_the_held_out_split_as_the_app_does(tiny_lm, tmp_path, capsys):
    """With the task's held-out split on (Evaluate tests on those pairs), `train` leaves them
    out unless told to include them; with it off, every pair trains, with nothing said."""
    from rebase_core.heldout_split import is_held_out, set_split
    from rebase_core.settings import Settings

    pairs = _pairs(16)
    n_held = sum(is_held_out(p.id) for p in pairs)
    assert 0 < n_held < 16  # these ids put some pairs on each side
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(p.to_json_dict()) + "\n" for p in pairs))
    home = tmp_path / "ws"
    args = ["--workspace", str(home), "train", "--task", str(_write_task(tmp_path / "task.json"))]
    args += ["--data", str(data), "--student", str(tiny_lm), "--max-steps", "1"]
    args += ["--max-seq-len", "64"]

    def trained_on(out: str, *extra: str) -> tuple[int, str]:
        assert main([*args, "--out", str(tmp_path / out), *extra]) == 0
        captured = capsys.readouterr()
        return json.loads(captured.out)["n_train"], captured.err

    n_train, err = trained_on("split-off")
    assert n_train == 16 and "held-out" not in err
    set_split(Settings(home=home), TASK.name, True)
    n_train, err = trained_on("split-on")
    assert n_train == 16 - n_held
    assert f"{n_held} of 16 pair(s) left out" in err
    n_train, err = trained_on("split-on-included", "--include-heldout")
    assert n_train == 16 and "--include-heldout: training on its" in err


@pytest.mark.parametrize(
    "case", ["missing task", "bad task", "missing data", "empty data", "only rejected"]
)
def test_cli_train_bad_input_exits_2_with_one_line(tmp_path, capsys, case):
    task = _write_task(tmp_path / "task.json")
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps(_pairs(1)[0].to_json_dict()) + "\n")
    if case == "missing task":
        task = tmp_path / "nope.json"
    elif case == "bad task":
        task.write_text('{"name": "x", "instruction": "", "examples": []}')
    elif case == "missing data":
        data = tmp_path / "nope.jsonl"
    elif case == "empty data":
        data.write_text("")
    else:
        data.write_text(json.dumps({"input": "a", "output": "b", "status": "rejected"}) + "\n")
    code = main(["train", "--task", str(task), "--data", str(data), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and "\n" not in err


# ----------------------------------------------------------------------------- the real student


@pytest.mark.slow
def test_real_smollm2_two_lora_steps(tmp_path_factory, settings):
    """Converts the packaged SmolLM2-135M-Instruct (once) and runs 2 LoRA steps on 4 pairs."""
    from rebase_core.assets import smollm2_hf_dir

    models = tmp_path_factory.mktemp("models")
    started = time.monotonic()
    base = smollm2_hf_dir(models)
    converted = time.monotonic()
    config = ft.TrainConfig(student=str(base), max_steps=2, max_seq_len=64, warmup=0)
    result = ft.finetune(TASK, _pairs(4), tmp_path_factory.mktemp("run"), config, settings=settings)
    trained = time.monotonic()
    assert result.status == "done" and result.global_step == 2
    rows = ft.read_progress(result.run_dir)
    assert len(rows) == 2 and all(0 < r["loss"] < 20 for r in rows)
    card = json.loads((result.run_dir / "run.json").read_text())
    assert 0 < card["trainable_params"] < 0.05 * card["total_params"]
    print(f"convert {converted - started:.1f} s, train {trained - converted:.1f} s")


@pytest.mark.slow
def test_train_job_in_a_real_background_process_cancels_and_resumes(tiny_lm, tmp_path, settings):
    from rebase_core import jobs

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(p.to_json_dict()) + "\n" for p in _pairs(8)))
    out_dir = settings.runs_dir / "bg"
    params = {
        "task": TASK.to_dict(),
        "data": str(data),
        "config": {"student": str(tiny_lm), "max_steps": 60, "max_seq_len": 96},
        "out_dir": str(out_dir),
    }

    def wait(folder, states, timeout_s=120.0):
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            status = jobs.job_status(folder)
            if status.state in states and (states != ("running",) or status.progress.done >= 3):
                return status
            time.sleep(0.2)
        raise AssertionError((folder / "log.txt").read_text()[-2000:])

    job = jobs.start_job(settings, "train", params, key="train:bg")
    running = wait(job.folder, ("running",))
    assert running.progress.total == 60
    jobs.cancel_job(job.folder, grace_s=60)
    cancelled = wait(job.folder, jobs.FINAL_STATES)
    assert cancelled.state == "cancelled", cancelled.error
    stopped_at = cancelled.result["global_step"]
    assert 3 <= stopped_at < 60 and cancelled.result["status"] == "cancelled"
    assert (out_dir / "checkpoints" / f"checkpoint-{stopped_at}").is_dir()

    again = jobs.start_job(settings, "train", params, key="train:bg")
    done = wait(again.folder, jobs.FINAL_STATES, timeout_s=300)
    assert done.state == "done", done.error
    assert done.result["global_step"] == 60  # the second job resumed the same run
    steps = [r["step"] for r in ft.read_progress(out_dir)]
    assert steps == list(range(1, 61))


def test_a_student_path_under_an_unknown_users_home_is_a_clear_error(settings):
    """Path.expanduser raises RuntimeError for '~nosuchuser/...'; the user gets the usual
    'neither a preset nor a folder' InputError instead of a traceback."""
    from rebase_core.errors import InputError
    from rebase_core.finetune.student import load_student, resolve_student

    with pytest.raises(InputError, match="nosuchuser"):
        resolve_student("~nosuchuser-rebase/model", settings)
    with pytest.raises(InputError):
        load_student("~nosuchuser-rebase/model", settings=settings)
