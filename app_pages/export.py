"""Export: the curated pairs (with their dataset card) and the trained models; push to the Hub."""

from __future__ import annotations

import json

import streamlit as st

import ui
from rebase_core import export_options as eo
from rebase_core.datastore.readiness import usable_store
from rebase_core.evaluate import ORIGIN_LABELS
from rebase_core.export import (
    FORMATS,
    dataset_card,
    export_download,
    model_zip,
    push_pairs_to_hub,
    push_to_hub,
)
from rebase_core.finetune import DEFAULT_STATUSES, list_runs, slugify
from rebase_core.task import task_from_dict
from rebase_core.types import PAIR_STATUSES, Pair

settings = ui.get_settings()
st.title("Export")
record = ui.need_task()
task = record.task
ws = ui.get_workspace()
all_pairs = ws.pairs(task_id=record.id)
done_runs = eo.finished_runs(list_runs(settings), task.name)


@st.cache_resource(show_spinner=False)
def _licenses(store: str, version: str) -> dict[str, str]:
    """Dataset name -> license, from the datastore (for the card's source table)."""
    return {d.name: d.license for d in ui.get_datastore(store).datasets() if d.license}


@st.cache_data(show_spinner="Preparing the file…", max_entries=8)
def _download(
    pairs_json: str, fmt: str, title: str, task_json: str, licenses: dict[str, str]
) -> tuple[str, bytes]:
    pairs = [Pair.from_json_dict(d) for d in json.loads(pairs_json)]
    return export_download(
        pairs, fmt, task=task_from_dict(json.loads(task_json)), licenses=licenses, title=title
    )


# ----------------------------------------------------------------------------- pairs
st.subheader("Curated pairs")
chosen: list[Pair] = []
fmt = "jsonl"
title = task.name
licenses: dict[str, str] = {}
if not all_pairs:
    st.info("No pairs for this task yet: transform retrieved rows and curate them first.")
    st.page_link(
        "app_pages/transform.py",
        label="Go to the Transform & curate page",
        icon=":material/auto_fix_high:",
    )
else:
    counts = eo.pair_counts(all_pairs)
    c1, c2 = st.columns(2)
    statuses = c1.multiselect(
        "Statuses",
        list(PAIR_STATUSES),
        default=list(DEFAULT_STATUSES),
        format_func=lambda s: f"{s} ({counts.by_status[s]:,})",
        key="ex_statuses",
    )
    origins = c2.multiselect(
        "Origins",
        list(counts.origins),
        default=list(counts.origins),
        format_func=lambda o: f"{ORIGIN_LABELS.get(o, o)} ({counts.by_origin[o]:,})",
        key="ex_origins",
    )
    chosen = eo.select_pairs(all_pairs, statuses, origins)
    f1, f2 = st.columns([2, 3])
    fmt = (
        f1.segmented_control(
            "Format",
            list(FORMATS),
            default="jsonl",
            format_func=lambda f: eo.FORMAT_LABELS[f],
            key="ex_fmt",
            bind="query-params",
        )
        or "jsonl"
    )
    title = f2.text_input("Dataset title", value=task.name, key="ex_title") or task.name
    store = str(usable_store(settings).path)  # the starter store's licenses are the same
    if ui.store_exists(store):
        licenses = _licenses(store, ui.store_version(store))
    if not chosen:
        st.warning("No pair matches these statuses and origins.")
    else:
        card = dataset_card(chosen, task=task, licenses=licenses, title=title, fmt=fmt)
        st.caption(
            f"**{len(chosen):,}** pairs. The dataset card below goes with the download "
            "(as README.md); check the source licenses before you share the data."
        )
        with st.container(border=True, height=420):
            front, body = eo.split_card(card)
            if front:
                st.code(front, language="yaml")
            st.markdown(body)
        with ui.shown_errors(stop=False):
            name, data = _download(
                json.dumps([p.to_json_dict() for p in chosen], ensure_ascii=False),
                fmt,
                title,
                json.dumps(task.to_dict()),
                licenses,
            )
            d1, d2 = st.columns(2)
            d1.download_button(
                f"Download {len(chosen):,} pairs ({eo.FORMAT_LABELS[fmt]})",
                data,
                file_name=name,
                mime=eo.FORMAT_MIME[fmt],
                type="primary",
                icon=":material/download:",
                key="ex_download",
                on_click="ignore",
            )
            d2.download_button(
                "Download the dataset card (README.md)",
                card.encode("utf-8"),
                file_name="README.md",
                mime="text/markdown",
                icon=":material/description:",
                key="ex_card",
                on_click="ignore",
            )

# ----------------------------------------------------------------------------- model
st.subheader("Trained model")
if not done_runs:
    st.info("No finished training run yet.")
    st.page_link(
        "app_pages/finetune.py", label="Go to the Fine-tune page", icon=":material/model_training:"
    )
else:
    labels = {r.name: eo.run_label(r) for r in done_runs}
    run_name = st.selectbox("Run", list(labels), format_func=lambda n: labels[n], key="ex_run")
    run = next(r for r in done_runs if r.name == run_name)
    st.caption(
        f"{eo.model_summary(run.path / 'model')}, with its model card, run.json and loss log. "
        f"On disk: `{run.path / 'model'}`"
    )
    st.download_button(
        f"Download {run.name}.zip",
        # Made when the button is pressed (a full model zips for a while and weighs ~0.5 GB).
        lambda: model_zip(run.path, settings.home / "exports" / f"{run.name}.zip").read_bytes(),
        file_name=f"{run.name}.zip",
        mime="application/zip",
        icon=":material/download:",
        key="ex_model",
        on_click="ignore",
    )

# ----------------------------------------------------------------------------- hub
st.subheader("Push to the Hugging Face Hub")
token = settings.hf_token
if not token:
    st.caption(
        ":red[●] HF_TOKEN is not set: set a write token in the environment or in "
        "`.streamlit/secrets.toml` to push."
    )
targets = eo.hub_targets(len(chosen), fmt, done_runs)
if not targets:
    st.caption("Nothing to push yet.")
else:
    with st.form("ex_hub"):
        what = st.selectbox(
            "What", list(targets), format_func=lambda t: targets[t], key="ex_hub_what"
        )
        h1, h2 = st.columns([3, 1])
        repo_id = h1.text_input(
            "Repository id", key="ex_repo", placeholder="your-name/" + slugify(task.name)
        )
        private = h2.toggle("Private", value=True, key="ex_private")
        pushed = st.form_submit_button(
            "Push to the Hub", icon=":material/cloud_upload:", disabled=not token
        )
    if pushed:
        if not repo_id.strip():
            st.error("Give the repository id, e.g. `your-name/my-dataset`.")
        else:
            with st.spinner("Uploading…"), ui.shown_errors(stop=False):
                if what == "pairs":
                    folder = settings.home / "exports" / "hub" / slugify(repo_id)
                    url = push_pairs_to_hub(
                        chosen,
                        folder,
                        repo_id.strip(),
                        token,
                        fmt=fmt,
                        task=task,
                        licenses=licenses,
                        title=title,
                        private=private,
                    )
                else:
                    model_dir = settings.runs_dir / what.removeprefix("run:") / "model"
                    url = push_to_hub(model_dir, repo_id.strip(), token, private=private)
                st.success(f"Pushed to {url}", icon=":material/cloud_done:")
