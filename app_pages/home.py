"""Home: what ReBase Studio does, where you are in the flow, and the next step."""

from __future__ import annotations

import streamlit as st

import ui
from rebase_core.flow import next_step

settings = ui.get_settings()
st.title("ReBase Studio")
st.markdown(
    "Turn a task description — an instruction and a few examples — into a trained task expert. "
    "ReBase retrieves rows that look like your examples from many existing datasets, has an LLM "
    "rewrite each one into a training pair in your format, lets you review every pair, and "
    "fine-tunes a small student on the result (Ge et al. 2024, *Retrieval Based Distillation*)."
)

steps = ui.flow_status()
upcoming = next_step(steps)
if upcoming is not None:
    st.page_link(
        ui.step_page(upcoming),
        label=f"Next: {upcoming.label.split('·', 1)[-1].strip()}",
        icon=":material/arrow_forward:",
    )

for step in steps:
    with st.container(border=True):
        left, right = st.columns([3, 1], vertical_alignment="center")
        left.page_link(
            ui.step_page(step),
            label=step.label,
            icon=":material/check_circle:" if step.done else ":material/radio_button_unchecked:",
        )
        left.caption(step.description)
        right.caption(step.note or ("done" if step.done else "to do"))

st.caption(
    f"Everything is saved in `{settings.home}` as you go: refresh, close the tab or restart the "
    "app, and nothing is lost. Long work (datastore builds, transformation, training) runs in the "
    "background."
)
