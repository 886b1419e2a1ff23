"""Retriever learning: signals (teacher replies, curation, pseudo-tasks, JSONL), the query side
moving a planted row up, exactness with a trained query side, the ranker, versions, the CLI."""

import json
import random

import numpy as np
import pytest

from rebase_core.cli import main
from rebase_core.datastore import build_datastore, open_datastore
from rebase_core.embed import HashingEmbedder
from rebase_core.errors import InputError
from rebase_core.llm import ResponseCache
from rebase_core.llm.fake import FakeLLM
from rebase_core.retrieval import RetrievalOptions, retrieve
from rebase_core.retriever import (
    AdaptedEmbedder,
    QueryConfig,
    QueryMap,
    RankingSignal,
    RowRef,
    TeacherConfig,
    collect_rankings,
    curation_signal,
    example_columns,
    heldout_exclusions,
    list_retrievers,
    load_retriever,
    ndcg,
    parse_ranking,
    pseudo_tasks,
    read_signals,
    resolve_signals,
    task_embedder,
    task_retriever,
    use_retriever,
    write_signals,
)
from rebase_core.retriever.query import train_query_side
from rebase_core.retriever.signals import split_by_task
from rebase_core.retriever.train import distill_instances
from rebase_core.retriever.versions import RetrieverInfo, save_retriever
from rebase_core.settings import Settings
from rebase_core.types import Example, Failure, Pair, PairSource, Task
from rebase_core.workspace import Workspace

# ----------------------------------------------------------------------------- parsing replies


@pytest.mark.parametrize(
    ("reply", "order"),
    [
        ('{"order": [3, 1, 2, 4]}', (2, 0, 1, 3)),
        ('```json\n{"order": ["3", "1", "4", "2"]}\n```', (2, 0, 3, 1)),
        ("[2, 4, 1, 3]", (1, 3, 0, 2)),
        ("Ranking: 4 > 2 > 3 > 1", (3, 1, 2, 0)),
        ('{"order": [2, 1, 4]}', (1, 0, 3, 2)),  # one row missing: it comes last
        ('{"order": [1, 1, 2, 9, 3, 4]}', (0, 1, 2, 3)),  # repeats and strays ignored
    ],
)
def test_a_full_order_is_read_from_json_lists_or_text(reply, order):
    parsed = parse_ranking(reply, 4)
    assert parsed.status == "complete" and parsed.order == order


def test_a_partial_order_is_kept_and_marked():
    parsed = parse_ranking('{"order": [5, 2]}', 8)
    assert (parsed.status, parsed.order) == ("partial", (4, 1))
    # A reply cut off mid-list still orders what it got to.
    cut = parse_ranking('{"order": [7, 3, 1, 8, 2', 10)
    assert (cut.status, cut.order) == ("partial", (6, 2, 0, 7, 1))
    assert parse_ranking(
        "The best rows are [6] and then [2]; row 6 mentions 14 items.", 8
    ).order == (
        5,
        1,
    )


@pytest.mark.parametrize(
    "reply",
    ["", "I cannot rank these rows.", '{"order": []}', '{"order": [0]}', "[42, 17, 99, 3]", "7"],
)
def test_garbage_is_a_failure_not_an_exception(reply):
    parsed = parse_ranking(reply, 5)
    assert parsed.status == "failed" and parsed.order == () and parsed.detail
    assert not parsed.usable


# ----------------------------------------------------------------------------- fixtures

_WORD_TEXT = (
    "cat dog bird fish horse market stock bond bank rate goal team match score race river lake "
    "rain snow wind code bug test loop data"
)
WORDS = _WORD_TEXT.split()
PLANTED = "zebra"


def _dataset(root, name, rows, description):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "description.txt").write_text(description)
    return str(folder)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Six datasets of 30 random question/answer rows (hashing embedder); the first four rows of
    every dataset carry the planted word in their question."""
    root = tmp_path_factory.mktemp("retriever-world")
    rng = random.Random(3)
    sources = []
    for d in range(6):
        rows = []
        for i in range(30):
            words = rng.choices(WORDS, k=rng.randint(3, 6))
            if i < 4:
                words.insert(rng.randint(0, len(words)), PLANTED)
            rows.append({"question": " ".join(words), "answer": rng.choice(WORDS)})
        description = f"Topic {d} questions about " + " ".join(rng.choices(WORDS, k=5))
        sources.append(_dataset(root / "src", f"topic{d}", rows, description))
    settings = Settings(home=root / "home", embedder="hash")
    build_datastore(root / "store", sources, settings, embedder=HashingEmbedder())
    store = open_datastore(root / "store", settings)
    yield store, settings, root
    store.close()


def _task(name, rng):
    examples = tuple(
        Example(" ".join(rng.choices(WORDS, k=4)), rng.choice(WORDS)) for _ in range(3)
    )
    return Task(name, "Answer: " + " ".join(rng.choices(WORDS, k=3)), examples)


TASKS = [_task(f"t{i}", random.Random(100 + i)) for i in range(10)]


class PlantedScorer:
    """A fake ranker: rows with the planted word are the useful ones."""

    def score(self, task, rows):
        return np.array([4.0 if PLANTED in " ".join(r.values()) else 0.0 for r in rows])


def _teacher_signal(store, task, top_n=20, shuffle=False):
    """What a teacher who likes the planted word would say about the task's top rows: planted
    rows first, each group in the base's order (or, with `shuffle`, in a random order, so that
    agreeing with the base earns nothing)."""
    rows = list(retrieve(store, task, HashingEmbedder(), RetrievalOptions(top_k=top_n)).rows)
    if shuffle:
        random.Random(task.name).shuffle(rows)
    ordered = sorted(rows, key=lambda r: PLANTED not in r.row["question"])  # stable: planted first
    return RankingSignal(task, tuple(RowRef(*r.key) for r in ordered), "teacher")


def _planted_in_top(store, task, embedder, k=10):
    rows = retrieve(store, task, embedder, RetrievalOptions(top_k=k)).rows
    return sum(PLANTED in r.row["question"] for r in rows)


# ----------------------------------------------------------------------------- signals


def test_signals_round_trip_through_jsonl_in_the_contract_format(world, tmp_path):
    store, _, _ = world
    signals = [_teacher_signal(store, t) for t in TASKS[:2]]
    pseudo = RankingSignal(
        Task("pseudo:x", "Do x.", (Example("a", "b"),), exclude_datasets=("x",)),
        signals[0].ranking[:2],
        "curation",
    )
    path = tmp_path / "signals.jsonl"
    assert write_signals([*signals, pseudo], path) == 3
    first = json.loads(path.read_text().splitlines()[0])
    assert set(first) == {"task", "ranking", "source"}
    assert set(first["task"]) == {"name", "instruction", "examples"}  # no empty extras
    assert set(first["ranking"][0]) == {"dataset", "config", "row_id"}
    assert read_signals(path) == [*signals, pseudo]
    # A line from elsewhere without "source" reads as a teacher ranking.
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({k: v for k, v in first.items() if k != "source"}) + "\n")
    assert read_signals(other)[0].source == "teacher"


def test_bad_signal_files_are_input_errors(world, tmp_path):
    store, _, _ = world
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(InputError, match="No ranking signals"):
        read_signals(empty)
    with pytest.raises(InputError, match="does not exist"):
        read_signals(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"task": TASKS[0].to_dict(), "ranking": "row 1"}) + "\n")
    with pytest.raises(InputError, match="'ranking' must be a list"):
        read_signals(bad)
    ghost = RankingSignal(
        TASKS[0], (RowRef("topic0", "default", "0"), RowRef("nope", "default", "1"))
    )
    with pytest.raises(InputError, match="does not hold"):
        resolve_signals(store, [ghost])
    with pytest.raises(InputError, match="at least 2"):
        resolve_signals(store, [RankingSignal(TASKS[0], ghost.ranking[:1])])


def test_teacher_rankings_one_cached_call_per_task(world, tmp_path):
    store, _, _ = world

    def teacher(call):
        """Orders the numbered rows: planted ones first; garbles the third task."""
        lines = [ln for ln in call.prompt.splitlines() if ln.startswith("[")]
        if TASKS[2].instruction in call.prompt:
            return "Sorry, these rows are all equally good."
        planted = [i + 1 for i, ln in enumerate(lines) if PLANTED in ln]
        others = [i + 1 for i, ln in enumerate(lines) if PLANTED not in ln]
        if TASKS[1].instruction in call.prompt:
            return json.dumps({"order": (planted + others)[:4]})  # partial
        return json.dumps({"order": planted + others[::-1]})

    llm = FakeLLM(teacher)
    cache = ResponseCache(tmp_path / "cache.sqlite")
    tasks = TASKS[:4]
    report = collect_rankings(
        store, tasks, HashingEmbedder(), llm, TeacherConfig(top_n=12), cache=cache
    )
    assert len(llm.history) == 4  # one call per task
    assert llm.history[0].json_schema is not None  # constrained where the backend can
    assert "[12]" in llm.history[0].prompt and "[13]" not in llm.history[0].prompt
    assert (report.complete, report.partial, len(report.failures)) == (2, 1, 1)
    assert report.failures[0][0] == TASKS[2].name
    full = next(s for s in report.signals if s.task == TASKS[0])
    assert len(full.ranking) == 12
    first = store.rows([store.find_row(*full.ranking[0].key)])[0]
    assert PLANTED in first.cells["question"]
    again = collect_rankings(
        store, tasks, HashingEmbedder(), llm, TeacherConfig(top_n=12), cache=cache
    )
    assert len(llm.history) == 4 and again.signals == report.signals  # the cache answered
    # The rows are shown shuffled, so a teacher that repeats the shown order says nothing.
    base_order = retrieve(store, TASKS[0], HashingEmbedder(), RetrievalOptions(top_k=12)).rows
    shown = [ln for ln in llm.history[0].prompt.splitlines() if ln.startswith("[")]
    assert [ln.split("] ", 1)[1] for ln in shown] != [
        json.dumps(dict(r.row), ensure_ascii=False) for r in base_order
    ]
    echo = FakeLLM(lambda call: json.dumps({"order": list(range(1, 13))}))
    echoed = collect_rankings(store, tasks[:1], HashingEmbedder(), echo, TeacherConfig(top_n=12))
    assert not echoed.signals and "order shown" in echoed.failures[0][1]


def _row_source(store, idx):
    row = store.rows([idx])[0]
    return PairSource(row.dataset, row.config, row.row_id, 0.5)


def test_curation_decisions_become_a_ranking(world, tmp_path):
    store, _, _ = world
    ws = Workspace(tmp_path / "ws.sqlite")
    record = ws.save_task(TASKS[0])
    result = retrieve(store, TASKS[0], HashingEmbedder(), RetrievalOptions(top_k=8))
    ws.save_retrieval(record, "s", {}, "exact", 0.0, result.rows, result.row_idxs)
    run = ws.create_pair_run(record.id, "transform")
    src = [PairSource(r.dataset, r.config, r.row_id, r.score) for r in result.rows]
    statuses = ["rejected", "accepted", "pending", "edited", "rejected"]
    ws.add_pairs(
        run,
        record.id,
        [
            Pair(f"p{i}", f"in {i}", "out", "rebase", status=s, source=src[i])
            for i, s in enumerate(statuses)
        ]
        + [Pair("d0", "direct", "out", "direct", status="accepted")],  # no row: ignored
    )
    ws.add_failure(run, "k5", Failure("ungrounded", "shares 5% of its words", src[5]))
    ws.add_failure(run, "k6", Failure("provider", "timeout", src[6]))  # not about the row
    ws.add_failure(run, "k7", Failure("format", "no marker", src[7]))
    signal = curation_signal(ws, record.id)
    assert signal is not None and signal.source == "curation" and signal.task == TASKS[0]
    keys = [r.key for r in signal.ranking]
    expected = [
        src[i] for i in (1, 3, 2, 0, 4, 5, 7)
    ]  # accepted/edited > pending > rejected > failed
    assert keys == [(s.dataset, s.config, s.row_id) for s in expected]
    # A task whose decisions are all alike gives no signal.
    other = ws.save_task(TASKS[1])
    run2 = ws.create_pair_run(other.id, "transform")
    ws.add_pairs(
        run2,
        other.id,
        [Pair(f"q{i}", f"x {i}", "y", "rebase", "accepted", src[i]) for i in range(3)],
    )
    assert curation_signal(ws, other.id) is None
    ws.close()


def test_pseudo_tasks_leave_their_own_dataset_out(world):
    store, _, _ = world
    tasks = pseudo_tasks(store, 3, seed=1, exclude=("topic5",))
    assert len(tasks) == 3
    for task in tasks:
        own = task.name.removeprefix("pseudo:")
        assert task.exclude_datasets == (own,) and own != "topic5"
        assert task.instruction.startswith("Topic") and len(task.examples) == 3
        assert all(PLANTED in e.input or " " in e.input for e in task.examples)
        assert all(e.output in WORDS for e in task.examples)  # the answer column
        rows = retrieve(store, task, HashingEmbedder(), RetrievalOptions(top_k=50)).rows
        assert rows and all(r.dataset != own for r in rows)
    assert len({t.name for t in tasks}) == 3
    assert pseudo_tasks(store, 3, seed=1, exclude=("topic5",)) == tasks  # seeded
    # The held-out sets' sources (and the presets' exclusions) never become pseudo-tasks.
    assert "bigbench/causal_judgment" in heldout_exclusions()


def test_example_columns_prefer_known_names_then_lengths():
    from rebase_core.types import Row

    rows = [
        Row("d", "c", str(i), {"id": str(i), "question": "q " * 9, "label": "yes"})
        for i in range(3)
    ]
    assert example_columns(rows) == ("question", "label")
    rows = [Row("d", "c", str(i), {"long": "words " * 20, "short": "ok"}) for i in range(3)]
    assert example_columns(rows) == ("long", "short")
    assert example_columns([Row("d", "c", "0", {"only": "one"})]) is None


def test_split_by_task_keeps_tasks_whole(world):
    store, _, _ = world
    signals = [_teacher_signal(store, t, 4) for t in TASKS] + [_teacher_signal(store, TASKS[0], 5)]
    train, held = split_by_task(signals, 0.2)
    assert len({s.task.name for s in held}) == 2
    assert not {s.task.name for s in train} & {s.task.name for s in held}
    assert split_by_task(signals[:3], 0.2) == (signals[:3], [])  # too few tasks to hold any out


def test_ndcg():
    ref = [("d", "c", str(i)) for i in range(3)]
    assert ndcg(ref, ref, 10) == pytest.approx(1.0)
    assert ndcg(list(reversed(ref)), ref, 10) < 1.0
    assert ndcg([("x", "c", "0")], ref, 10) == 0.0


# ----------------------------------------------------------------------------- query side


@pytest.fixture(scope="module")
def trained_map(world):
    """The query side distilled from the planted scorer on seven tasks' candidates."""
    store, _, _ = world
    signals = [_teacher_signal(store, t) for t in TASKS[:7]]
    idxs = resolve_signals(store, signals)
    instances = distill_instances(store, signals, idxs, HashingEmbedder(), PlantedScorer(), 20)
    query_map, seconds, kl = train_query_side(
        store, instances, HashingEmbedder(), QueryConfig(epochs=60, learning_rate=5e-3)
    )
    return query_map, seconds, kl


def test_the_query_side_moves_planted_rows_up_on_unseen_tasks(world, trained_map):
    store, _, _ = world
    query_map, seconds, _ = trained_map
    adapted = AdaptedEmbedder(HashingEmbedder(), query_map)
    assert adapted.name == "hash" and adapted.dim == 256
    before = [_planted_in_top(store, t, HashingEmbedder()) for t in TASKS[7:]]
    after = [_planted_in_top(store, t, adapted) for t in TASKS[7:]]
    assert sum(after) > sum(before) + 3, (before, after)
    assert not np.allclose(query_map.matrix, np.eye(256))  # it learnt something
    assert seconds < 30
    vectors = adapted.embed(["cat dog", "zebra bank"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("candidates", [None, 5])
def test_exactness_holds_with_a_trained_query_side(world, trained_map, candidates):
    """Same certificate, new query vectors: the index method equals the exhaustive scan."""
    store, _, _ = world
    rng = np.random.default_rng(0)
    maps = [
        trained_map[0],
        QueryMap(
            (np.eye(256) + 0.3 * rng.standard_normal((256, 256))).astype(np.float32),
            (0.1 * rng.standard_normal(256)).astype(np.float32),
        ),
    ]
    for query_map in maps:
        adapted = AdaptedEmbedder(HashingEmbedder(), query_map)
        for task in TASKS[7:]:
            exact = retrieve(store, task, adapted, RetrievalOptions(top_k=25, method="exact"))
            index = retrieve(
                store,
                task,
                adapted,
                RetrievalOptions(top_k=25, method="index", candidates=candidates),
            )
            assert [r.key for r in index.rows] == [r.key for r in exact.rows]
            assert np.allclose(
                [r.score for r in index.rows], [r.score for r in exact.rows], atol=1e-6
            )


def test_the_query_map_must_fit_the_embedder():
    with pytest.raises(InputError, match="256-d"):
        AdaptedEmbedder(HashingEmbedder(256), QueryMap.identity(384))
    identity = AdaptedEmbedder(HashingEmbedder(), QueryMap.identity(256))
    assert np.allclose(identity.embed(["a b c"]), HashingEmbedder().embed(["a b c"]))


# ----------------------------------------------------------------------------- versions


def _save(folder, query_map, store_path="s"):
    info = RetrieverInfo(
        path=folder,
        base_embedder="hash",
        dim=256,
        store=str(store_path),
        signal_files=("signals.jsonl",),
        signal_counts={"teacher": 7},
        train_instances=7,
        heldout_instances=0,
        training_seconds={"total": 1.0},
        threads=1,
        created_at="2025-01-01T00:00:00+00:00",
    )
    return save_retriever(info, query_map, None)


def test_a_task_uses_the_base_until_told_and_switches_back_in_one_call(
    world, trained_map, tmp_path
):
    store, _, _ = world
    settings = Settings(home=tmp_path / "home")
    folder = tmp_path / "home" / "retrievers" / "r1"
    folder.parent.mkdir(parents=True)
    _save(folder, trained_map[0])
    with pytest.raises(InputError, match="already exists"):
        _save(folder, trained_map[0])
    assert [i.name for i in list_retrievers(settings)] == ["r1"]
    loaded = load_retriever(folder)
    assert np.allclose(loaded.query_map.matrix, trained_map[0].matrix)
    ws = Workspace(tmp_path / "ws.sqlite")
    record = ws.save_task(TASKS[8])
    base = HashingEmbedder()
    assert task_retriever(ws, record.id) is None and task_embedder(ws, record.id, base) is base
    use_retriever(ws, record.id, folder)
    assert task_retriever(ws, record.id) == folder.resolve()
    chosen = task_embedder(ws, record.id, base)
    assert isinstance(chosen, AdaptedEmbedder)
    assert retrieve(store, TASKS[8], chosen, RetrievalOptions(top_k=5)).rows
    use_retriever(ws, record.id, None)
    assert task_embedder(ws, record.id, base) is base
    with pytest.raises(InputError, match="not a trained retriever"):
        use_retriever(ws, record.id, tmp_path)
    with pytest.raises(InputError, match="trained on the 'hash'"):
        loaded.query_embedder(type("E", (), {"name": "minilm", "dim": 256})())
    ws.close()


# ----------------------------------------------------------------------------- CLI


def _write_task(path, task):
    path.write_text(json.dumps(task.to_dict()))
    return path


def test_cli_exit_codes_on_bad_input(world, tmp_path, capsys):
    store, _, root = world
    store_dir = str(root / "store")
    task_file = _write_task(tmp_path / "task.json", TASKS[0])
    good = tmp_path / "good.jsonl"
    write_signals([_teacher_signal(store, TASKS[0], 5)], good)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    ghost = tmp_path / "ghost.jsonl"
    write_signals(
        [RankingSignal(TASKS[0], (RowRef("gone", "default", "1"), RowRef("gone", "default", "2")))],
        ghost,
    )
    cases = [
        [
            "retriever",
            "collect",
            "--store",
            store_dir,
            "--task",
            str(tmp_path / "no.json"),
            "--llm",
            "fake",
            "--out",
            str(tmp_path / "s.jsonl"),
        ],
        ["retriever", "collect", "--store", store_dir, "--out", str(tmp_path / "s.jsonl")],
        [
            "retriever",
            "collect",
            "--store",
            store_dir,
            "--task",
            str(task_file),
            "--out",
            str(tmp_path / "s.jsonl"),
        ],  # no --llm
        [
            "retriever",
            "collect",
            "--store",
            store_dir,
            "--task",
            str(task_file),
            "--llm",
            "fake",
            "--out",
            str(tmp_path / "nodir" / "s.jsonl"),
        ],
        [
            "retriever",
            "train",
            "--store",
            store_dir,
            "--signals",
            str(tmp_path / "no.jsonl"),
            "--out",
            str(tmp_path / "r"),
        ],
        [
            "retriever",
            "train",
            "--store",
            store_dir,
            "--signals",
            str(empty),
            "--out",
            str(tmp_path / "r"),
        ],
        [
            "retriever",
            "train",
            "--store",
            store_dir,
            "--signals",
            str(ghost),
            "--out",
            str(tmp_path / "r"),
        ],
        [
            "retriever",
            "train",
            "--store",
            store_dir,
            "--signals",
            str(good),
            "--out",
            str(tmp_path),
        ],
        [
            "retriever",
            "eval",
            "--store",
            store_dir,
            "--retriever",
            str(tmp_path),
            "--signals",
            str(good),
        ],
        ["retrieve", "--store", store_dir, "--task", str(task_file), "--retriever", str(tmp_path)],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) >= 1 and err[-1].startswith("error: "), (argv, err)
    assert not (tmp_path / "r").exists()


def test_cli_collect_counts_garbage_replies_and_writes_nothing(world, tmp_path, capsys):
    _, _, root = world
    task_file = _write_task(tmp_path / "task.json", TASKS[0])
    out = tmp_path / "signals.jsonl"
    argv = [
        "--workspace",
        str(tmp_path / "home"),
        "retriever",
        "collect",
        "--store",
        str(root / "store"),
        "--task",
        str(task_file),
        "--top-n",
        "6",
        "--llm",
        "fake",
        "--out",
        str(out),
    ]
    # The fake's schema-shaped reply ({"order": [0]}) orders nothing: a counted failure.
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "failed: t0" in err and "No signals were collected" in err and not out.exists()
    assert main([*argv[:-4], "--pseudo-tasks", "2", "--llm", "fake", "--out", str(out)]) == 2
    assert "2 pseudo-tasks" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the real ranker


@pytest.mark.slow
def test_a_trained_retriever_moves_planted_rows_up_end_to_end(world, tmp_path):
    """Teacher signals -> ListMLE ranker (packaged MiniLM) -> KL query side -> folder, with
    held-out figures; the held-out tasks' planted rows move up, and retrieval stays exact."""
    from rebase_core.retriever import RankerConfig, TrainConfig, train_retriever
    from rebase_core.retriever.ranker import Ranker

    store, _, _ = world
    signals = [_teacher_signal(store, t, 8) for t in TASKS[:7]]
    heldout = [_teacher_signal(store, t, 8, shuffle=True) for t in TASKS[7:]]
    config = TrainConfig(
        ranker=RankerConfig(epochs=3, learning_rate=3e-4, batch_size=2, max_length=64),
        query=QueryConfig(epochs=60, learning_rate=5e-3),
        extra_candidates=12,
        ranker_depth=30,
    )
    steps = []
    info = train_retriever(
        store,
        signals,
        HashingEmbedder(),
        tmp_path / "r",
        config,
        heldout=heldout,
        signal_files=["signals.jsonl"],
        on_progress=steps.append,
    )
    assert steps[-1].done == 100 and "saved" in steps[-1].message
    saved = json.loads((tmp_path / "r" / "retriever.json").read_text())
    assert saved["base_embedder"] == "hash" and saved["instances"] == {"train": 7, "heldout": 3}
    assert saved["signal_counts"] == {"teacher": 10}
    assert set(saved["training_seconds"]) == {"ranker", "candidates", "query", "total"}
    figures = {(m["system"], m["metric"]): m for m in saved["heldout"]["summary"]}
    assert set(figures) >= {("base", "ndcg@10"), ("distilled", "ndcg@10"), ("ranker", "ndcg@50")}
    assert ("distilled", "yield@100") in figures
    # Both order the teacher's candidates more like the teacher than the base does. (In the top
    # lists they also bring in planted rows the teacher never saw, which NDCG counts as 0.)
    assert figures[("ranker", "pool_ndcg@10")]["delta"] > 0
    assert figures[("distilled", "pool_ndcg@10")]["delta"] > 0

    trained = load_retriever(info.path)
    adapted = trained.query_embedder(HashingEmbedder())
    before = sum(_planted_in_top(store, t, HashingEmbedder()) for t in TASKS[7:])
    after = sum(_planted_in_top(store, t, adapted) for t in TASKS[7:])
    assert after > before, (before, after)
    ranker = trained.ranker()
    assert isinstance(ranker, Ranker)
    from rebase_core.retriever.ranker import ranker_rows

    scores = ranker.score(TASKS[9], ranker_rows(store, range(8)))  # rows 0-3 are planted
    assert scores[:4].mean() > scores[4:].mean() + 0.2
    for task in TASKS[7:]:
        exact = retrieve(store, task, adapted, RetrievalOptions(top_k=25, method="exact"))
        index = retrieve(store, task, adapted, RetrievalOptions(top_k=25, method="index"))
        assert [r.key for r in index.rows] == [r.key for r in exact.rows]


@pytest.mark.slow
def test_cli_train_eval_and_retrieve_with_the_retriever(world, tmp_path, capsys):
    store, _, root = world
    store_dir = str(root / "store")
    signals = tmp_path / "signals.jsonl"
    write_signals([_teacher_signal(store, t, 5) for t in TASKS[:3]], signals)
    held = tmp_path / "held.jsonl"
    write_signals([_teacher_signal(store, TASKS[8], 5)], held)
    out = tmp_path / "home" / "retrievers" / "r1"
    out.parent.mkdir(parents=True)
    home = ["--workspace", str(tmp_path / "home")]
    argv = [*home, "retriever", "train", "--store", store_dir, "--signals", str(signals),
            "--heldout", str(held), "--out", str(out), "--ranker-epochs", "1", "--max-length",
            "48", "--query-epochs", "3", "--no-yield", "--extra-candidates", "3"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing on stdout but results
    assert "trained on 3 signals (1 held out)" in captured.err
    assert load_retriever(out).info.train_instances == 3
    assert main([*home, "retriever", "list"]) == 0
    assert str(out) in capsys.readouterr().out
    report = tmp_path / "eval.json"
    argv = [*home, "retriever", "eval", "--store", store_dir, "--retriever", str(out),
            "--signals", str(held), "--no-yield", "--out", str(report)]  # fmt: skip
    assert main(argv) == 0
    data = json.loads(report.read_text())
    assert data["tasks"] == 1 and {m["system"] for m in data["summary"]} == {"base", "distilled"}
    task_file = _write_task(tmp_path / "task.json", TASKS[8])
    rows_out = tmp_path / "rows.jsonl"
    argv = [*home, "retrieve", "--store", store_dir, "--task", str(task_file), "--top-k", "5",
            "--retriever", str(out), "--out", str(rows_out)]  # fmt: skip
    assert main(argv) == 0
    assert len(rows_out.read_text().splitlines()) == 5
    ws = Workspace(tmp_path / "home" / "workspace.sqlite")
    record = ws.save_task(TASKS[8])
    ws.close()
    assert main([*home, "retriever", "use", "--task", TASKS[8].name, "--retriever", str(out)]) == 0
    ws = Workspace(tmp_path / "home" / "workspace.sqlite")
    assert task_retriever(ws, record.id) == out.resolve()
    ws.close()
    assert main([*home, "retriever", "use", "--task", TASKS[8].name, "--base"]) == 0


# ----------------------------------------------------------------------------- panel calls


def test_before_and_after_shows_what_moved_and_the_rankers_score(world, trained_map, tmp_path):
    from rebase_core.retriever import compare_top_rows

    store, _, _ = world
    folder = tmp_path / "r"
    _save(folder, trained_map[0])
    moved = compare_top_rows(
        store, TASKS[9], HashingEmbedder(), load_retriever(folder), 10, ranker=PlantedScorer()
    )
    assert [m.new_rank for m in moved[:10]] == list(range(10))
    assert all(m.ranker_score is not None for m in moved)
    up = [m for m in moved if m.moved is not None and m.moved > 0]
    assert up and all(PLANTED in m.row.row["question"] for m in up[:3])
    assert {m.row.key for m in moved} >= {m.row.key for m in moved if m.base_rank in range(10)}


class _Ctx:
    def __init__(self):
        self.reports = []

    def progress(self, p):
        self.reports.append(p)

    def should_stop(self):
        return False


def test_collect_job_writes_teacher_and_curation_signals(world, tmp_path):
    from rebase_core.retriever.jobs import (
        CollectRun,
        TrainRetrieverRun,
        run_collect_job,
        train_config,
    )
    from rebase_core.runs import LLMRef

    _, _, root = world
    settings = Settings(home=tmp_path / "home")
    ws = Workspace(settings.workspace_db)
    record = ws.save_task(TASKS[0])
    ws.close()
    spec = CollectRun(
        store=str(root / "store"),
        out=str(tmp_path / "s.jsonl"),
        llm=LLMRef("fake", options={"replies": ['{"order": [2, 1, 3]}', "[4, 1]"]}),
        task_ids=(record.id,),
        pseudo_tasks=1,
        top_n=4,
        curation=True,
    )
    assert CollectRun.from_params(spec.to_params()) == spec
    result = run_collect_job(spec.to_params(), settings, _Ctx())
    assert result["signals"] == 2 and "1 partial" in result["summary"]
    signals = read_signals(tmp_path / "s.jsonl")
    assert signals[0].task.name == TASKS[0].name
    assert signals[1].task.name.startswith("pseudo:")
    train = TrainRetrieverRun(str(root / "store"), (str(tmp_path / "s.jsonl"),), "out", {})
    assert TrainRetrieverRun.from_params(train.to_params()) == train
    config = train_config({"extra_candidates": 3, "query": {"epochs": 2}})
    assert config.extra_candidates == 3 and config.query.epochs == 2
    with pytest.raises(InputError, match="Unknown retriever training option"):
        train_config({"epoch": 1})


def test_cli_collects_curation_signals_from_the_workspace(world, tmp_path, capsys):
    store, _, root = world
    home = tmp_path / "home"
    ws = Workspace(Settings(home=home).workspace_db)
    record = ws.save_task(TASKS[3])
    rows = retrieve(store, TASKS[3], HashingEmbedder(), RetrievalOptions(top_k=3)).rows
    run = ws.create_pair_run(record.id, "transform")
    ws.add_pairs(
        run,
        record.id,
        [
            Pair(f"p{i}", f"in {i}", "o", "rebase", status, PairSource(*r.key, r.score))
            for i, (r, status) in enumerate(
                zip(rows, ["rejected", "accepted", "pending"], strict=True)
            )
        ],
    )
    ws.close()
    out = tmp_path / "curated.jsonl"
    argv = ["--workspace", str(home), "retriever", "collect", "--store", str(root / "store"),
            "--from-workspace", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "curation: 1 signals" in capsys.readouterr().err
    (signal,) = read_signals(out)
    assert signal.source == "curation"
    assert [r.key for r in signal.ranking] == [rows[1].key, rows[2].key, rows[0].key]


def test_the_workspace_names_its_retrievers_and_lists_its_signal_files(tmp_path):
    from rebase_core.retriever.versions import new_retriever_name, signal_files, signals_dir
    from rebase_core.settings import Settings

    settings = Settings(home=tmp_path)
    assert signal_files(settings) == [] and new_retriever_name(settings) == "r1"
    (tmp_path / "retrievers" / "r1").mkdir(parents=True)
    (tmp_path / "retrievers" / "r3").mkdir()
    assert new_retriever_name(settings) == "r2"
    signals_dir(settings).mkdir()
    for name in ("b.jsonl", "a.jsonl", "notes.txt"):
        (signals_dir(settings) / name).write_text("")
    assert [p.name for p in signal_files(settings)] == ["a.jsonl", "b.jsonl"]
