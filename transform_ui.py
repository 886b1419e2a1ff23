"""The prompt editor and the preview of the Transform & curate page (widgets only; each action
is one library call)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import streamlit as st

import plans_ui
import ui
from rebase_core.llm import ResponseCache
from rebase_core.transform import (
    DEFAULT_TEMPLATE,
    TransformConfig,
    prompt_version,
    row_key,
    transform,
)

if TYPE_CHECKING:
    from rebase_core.llm import LLM
    from rebase_core.settings import Settings
    from rebase_core.types import ScoredRow
    from rebase_core.workspace import TaskRecord, Workspace


def prompt_section(ws: Workspace) -> tuple[str, str]:
    """The rewrite prompt's editor (saved versions, reset, load); returns (template, note)."""
    if "tf_template" not in st.session_state:
        st.session_state["tf_template"] = ws.get_value("transform_template") or DEFAULT_TEMPLATE
    with st.expander(f"Prompt · version `{prompt_version(st.session_state['tf_template'])}`"):
        st.caption(
            "Placeholders: `{instruction}`, `{examples}`, `{row}` (required), `{cot_note}` (the "
            "step-by-step instruction when the examples reason) and `{task_note}` (your extra "
            "instruction below). Every pair records the version of the prompt that made it."
        )
        template: str = st.text_area("Template", key="tf_template", height=320)
        note = st.text_input(
            "Extra instruction for this task (optional)",
            key="tf_note",
            placeholder="e.g. Keep the premise in English; write a full sentence.",
        )
        p1, p2, p3 = st.columns(3)
        if p1.button("Save this version", icon=":material/save:"):
            with ui.shown_errors(stop=False):
                TransformConfig(template=template)  # says what a template lacks
                ws.save_prompt(prompt_version(template), template)
                ws.set_value("transform_template", template)
                st.toast(f"Saved prompt {prompt_version(template)}.")
        p2.button(
            "Reset to the default",
            on_click=lambda: st.session_state.update(tf_template=DEFAULT_TEMPLATE),
        )
        versions = {p.version: p.template for p in ws.prompts()}
        if versions:
            chosen = p3.selectbox("Saved versions", list(versions), index=None, key="tf_version")
            if chosen and st.button(f"Load {chosen}"):
                st.session_state["tf_template"] = versions[chosen]
                st.rerun()
    return template, note


def preview_section(
    ws: Workspace,
    settings: Settings,
    record: TaskRecord,
    rows: Sequence[ScoredRow],
    llm: LLM | None,
    config: TransformConfig,
) -> None:
    """A transform of the first few rows, shown beside their source rows; nothing is saved."""
    with st.expander("Preview on a few rows (nothing is saved)"):
        n_preview = st.slider("Rows", 1, 5, 3, key="tf_preview_n")
        if st.button("Run the preview", icon=":material/visibility:", disabled=llm is None):
            bar = st.progress(0.0, text="Asking the LLM…")
            with ui.shown_errors(stop=False):
                assert llm is not None
                st.session_state["tf_preview"] = transform(
                    record.task,
                    rows[:n_preview],
                    llm,
                    config,
                    cache=ResponseCache(settings.llm_cache_db),
                    on_progress=ui.progress_for(bar),
                    plans=ws.applied_plans(record.id, record.task),
                )
            bar.empty()
        preview = st.session_state.get("tf_preview")
        if preview is None:
            return
        by_key = {row_key(r): r for r in rows}
        for pair in preview.pairs:
            src = by_key.get(str(pair.extra.get("key")))
            a, b = st.columns(2)
            a.json(dict(src.row) if src else {}, expanded=False)
            b.markdown(
                f"{plans_ui.made_by(pair)}\n\n**Input**\n\n{pair.input}\n\n"
                f"**Output**\n\n{pair.output}"
            )
            st.divider()
        for key, failure in preview.failures:
            st.warning(f"{key.replace(chr(31), ' / ')}: {failure.reason} — {failure.detail}")
