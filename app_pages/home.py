"""Home: what ReBase Studio does, where you are in the flow, and the next step."""

from __future__ import annotations

import streamlit as st

import ui

settings = ui.get_settings()
st.title("ReBase Studio")
st.markdown(
    "Turn a task description — an instruction and a few examples — into a trained task expert. "
    "ReBase retrieves rows that look like your examples from many existing datasets, has an LLM "
    "rewrite each one into a training pair in your format, lets you review every pair, and "
    "fine-tunes a small student on the result (Ge et al. 2024, *Retrieval Based Distillation*)."
)

steps = ui.flow_status()
next_step = next(((page, label) for page, label, done in steps if not done), None)
if next_step is not None:
    page, label = next_step
    st.page_link(
        page, label=f"Next: {label.split('·', 1)[-1].strip()}", icon=":material/arrow_forward:"
    )

DESCRIPTIONS = {
    "app_pages/task.py": "Write the instruction and 1–20 examples, or start from a preset "
    "(the held-out evaluation tasks).",
    "app_pages/datastore.py": "Rows of many datasets, every cell embedded (built once, in the "
    "background; add your own files or Hub datasets).",
    "app_pages/retrieve.py": "Score every row against your examples and instruction; browse, "
    "filter and keep the rows to rewrite.",
    "app_pages/transform.py": "An LLM rewrites each kept row into a pair for your task; accept, "
    "edit or reject each one.",
    "app_pages/compare.py": "The same task through synthetic baselines (direct generation, "
    "SELF-GUIDE): diversity metrics and a map.",
    "app_pages/finetune.py": "Train a small student (SmolLM2-135M by default) on the curated "
    "pairs, in the background.",
    "app_pages/evaluate.py": "Score the student before and after training on held-out data, "
    "against the baselines.",
    "app_pages/export.py": "Download the pairs (JSONL, Parquet, CSV, datasets) with a card, and "
    "the trained model.",
}
for page, label, done in steps:
    with st.container(border=True):
        left, right = st.columns([3, 1], vertical_alignment="center")
        left.page_link(
            page,
            label=label,
            icon=":material/check_circle:" if done else ":material/radio_button_unchecked:",
        )
        left.caption(DESCRIPTIONS.get(page, ""))
        right.caption("done" if done else "to do")

st.caption(
    f"Everything is saved in `{settings.home}` as you go: refresh, close the tab or restart the "
    "app, and nothing is lost. Long work (datastore builds, transformation, training) runs in the "
    "background."
)
