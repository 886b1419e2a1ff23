"""ReBase Studio: turn a task description into a trained task expert (Ge et al. 2024, ReBase).

The frame of the app: page config, the shared sidebar and the navigation over the flow's pages.
Run with `make run` (or `streamlit run app.py` inside the project's venv).
"""

from __future__ import annotations

import logging
import os

# Nothing in the app may reach the Hugging Face Hub by accident (it is unreachable offline and
# retries for a minute); users who want Hub datasets unset these before starting the app.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import streamlit as st

import ui

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

st.set_page_config(page_title="ReBase Studio", page_icon=":material/hub:", layout="wide")

PAGES = [
    # The default page is served at "/" whatever its url_path, so the Task page (linked as
    # /task) cannot be it: a small home page is.
    st.Page("app_pages/home.py", title="Home", icon=":material/hub:", default=True),
    st.Page("app_pages/task.py", title="Task", icon=":material/edit_note:", url_path="task"),
    st.Page(
        "app_pages/datastore.py",
        title="Datastore",
        icon=":material/database:",
        url_path="datastore",
    ),
    st.Page(
        "app_pages/retrieve.py",
        title="Retrieve",
        icon=":material/travel_explore:",
        url_path="retrieve",
    ),
    st.Page(
        "app_pages/transform.py",
        title="Transform & curate",
        icon=":material/auto_fix_high:",
        url_path="transform",
    ),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare:", url_path="compare"),
    st.Page(
        "app_pages/finetune.py",
        title="Fine-tune",
        icon=":material/model_training:",
        url_path="finetune",
    ),
    st.Page(
        "app_pages/evaluate.py",
        title="Evaluate",
        icon=":material/leaderboard:",
        url_path="evaluate",
    ),
    st.Page("app_pages/export.py", title="Export", icon=":material/download:", url_path="export"),
]

settings = ui.get_settings()
# The sidebar draws its own navigation: one list with each step's status (ui.flow_sidebar).
page = st.navigation(PAGES, position="hidden")
with st.sidebar:
    st.markdown("### ReBase Studio")
ui.maybe_start_default_build()
ui.warm_up_umap()
ui.flow_sidebar()
ui.llm_sidebar()
st.sidebar.caption(f"Workspace: `{settings.home}`")
page.run()
