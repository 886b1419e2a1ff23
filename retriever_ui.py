"""The Retrieve page's "Improve retrieval" panel (Intermediate Distillation): the signals so
far, collecting teacher rankings and training a retriever as background jobs, the task's choice
of retriever, and a before/after of its top rows. Widgets only; each action is one call."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

import ui
from rebase_core import runs
from rebase_core.retriever import (
    CollectRun,
    TrainRetrieverRun,
    compare_top_rows,
    curation_signal,
    list_retrievers,
    load_retriever,
    read_signals,
    signal_counts,
    task_retriever,
    use_retriever,
)
from rebase_core.retriever.versions import (
    new_retriever_name,
    retrievers_dir,
    signal_files,
    signals_dir,
)

if TYPE_CHECKING:
    from rebase_core.datastore import Datastore
    from rebase_core.settings import Settings
    from rebase_core.workspace import TaskRecord, Workspace

BASE = "base (MiniLM as it ships)"


def panel(ws: Workspace, settings: Settings, record: TaskRecord, store: Datastore) -> None:
    with st.expander("Improve retrieval", icon=":material/school:"):
        st.caption(
            "A teacher LLM orders the top rows of tasks (yours and pseudo-tasks made from the "
            "datastore), your accept/reject decisions order them too; a ranker learns those "
            "orders and the retriever's query side learns the ranker's scores. The datastore is "
            "not re-embedded and retrieval stays exact."
        )
        files = signal_files(settings)
        counts = _counts(tuple((str(f), f.stat().st_mtime_ns) for f in files))
        own = curation_signal(ws, record.id)
        st.markdown(
            f"Signals collected: **{sum(counts.values()):,}** "
            f"({', '.join(f'{k} {v}' for k, v in counts.items()) or 'none yet'}); this task's "
            f"curation gives {'one ranking' if own else 'none yet'}."
        )
        c1, c2, c3 = st.columns(3)
        pseudo = int(c1.number_input("Pseudo-tasks", 0, 5000, 20, key="ri_pseudo"))
        choice = ui.llm_choice()
        if c2.button("Collect rankings", icon=":material/format_list_numbered:"):
            out = signals_dir(settings) / f"{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
            spec = CollectRun(
                str(store.path),
                str(out),
                llm=runs.LLMRef(choice.spec, choice.base_url or None),
                task_ids=(record.id,),
                pseudo_tasks=pseudo,
                curation=True,
            )
            with ui.shown_errors(stop=False):
                out.parent.mkdir(parents=True, exist_ok=True)
                st.session_state["ri_collect"] = spec
                runs.start_run(settings, spec)
        if c3.button("Train a retriever", disabled=not files, icon=":material/model_training:"):
            out = retrievers_dir(settings) / new_retriever_name(settings)
            spec_t = TrainRetrieverRun(str(store.path), tuple(str(f) for f in files), str(out))
            with ui.shown_errors(stop=False):
                st.session_state["ri_train"] = spec_t
                runs.start_run(settings, spec_t)
        _jobs(settings)
        _choice(ws, settings, record, store)


@st.cache_data(show_spinner=False, max_entries=8)
def _counts(files: tuple[tuple[str, int], ...]) -> dict[str, int]:
    """Signals per source, read again only when a file changes (the page reruns on every
    click elsewhere on it)."""
    return signal_counts(read_signals([path for path, _ in files])) if files else {}


@st.fragment(run_every="2s")
def _jobs(settings: Settings) -> None:
    for key, label in (("ri_collect", "Collecting rankings"), ("ri_train", "Training")):
        spec = st.session_state.get(key)
        job = runs.latest_job(settings, spec) if spec is not None else None
        if job is not None:
            ui.job_panel(job, label=label)


def _choice(ws: Workspace, settings: Settings, record: TaskRecord, store: Datastore) -> None:
    trained = {str(i.path): i for i in list_retrievers(settings)}
    current = task_retriever(ws, record.id)
    options = [BASE, *trained]
    now = str(current) if current is not None and str(current) in trained else BASE
    picked = st.selectbox(
        "This task retrieves with",
        options,
        index=options.index(now),
        format_func=lambda p: p if p == BASE else f"{trained[p].name} · {trained[p].created_at}",
        key="ri_use",
        help="Applies to the next Retrieve; switching back to the base is one click.",
    )
    if picked != now:
        use_retriever(ws, record.id, None if picked == BASE else picked)
        st.rerun()
    if picked == BASE:
        return
    info = trained[picked]
    st.caption(
        f"Trained on {info.train_instances:,} signals ({info.heldout_instances:,} held out) in "
        f"{info.training_seconds.get('total', 0):.0f} s. Held-out figures (mean, and the "
        "difference from the base with its 95% interval):"
    )
    summary = (info.heldout or {}).get("summary") or []
    if summary:
        st.dataframe(
            pd.DataFrame(
                {
                    "system": [m["system"] for m in summary],
                    "metric": [m["metric"] for m in summary],
                    "mean": [m["mean"] for m in summary],
                    "vs base": [
                        f"{m['delta']:+.3f} [{m['delta_ci95'][0]:+.3f}, {m['delta_ci95'][1]:+.3f}]"
                        for m in summary
                    ],
                    "tasks": [m["n"] for m in summary],
                }
            ),
            hide_index=True,
        )
    if st.button("Show what moves in this task's top 20", key="ri_compare"):
        retriever = load_retriever(picked)
        with st.spinner("Retrieving with both…"), ui.shown_errors(stop=False):
            base = ui.get_embedder(store.embedder_name, settings.threads)
            moved = compare_top_rows(
                store, record.task, base, retriever, 20, ranker=retriever.ranker()
            )
            st.dataframe(
                pd.DataFrame(
                    {
                        "row": [f"{m.row.dataset} · {m.row.row_id}" for m in moved],
                        "before": [m.base_rank for m in moved],
                        "after": [m.new_rank for m in moved],
                        "moved": [m.moved for m in moved],
                        "old score": [m.base_score for m in moved],
                        "ranker score": [m.ranker_score for m in moved],
                    }
                ),
                hide_index=True,
            )
