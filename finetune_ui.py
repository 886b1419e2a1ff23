"""The Fine-tune page's run monitor: progress, loss chart, cancel/resume and the log of one
training run, refreshed every two seconds (widgets only; each button is one library call)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

import ui
from rebase_core import finetune as ft
from rebase_core import jobs, runs

if TYPE_CHECKING:
    from rebase_core.settings import Settings


def _resume(settings: Settings, spec: ft.TrainRun) -> None:
    runs.start_run(settings, spec)  # the same spec again: training goes on from its checkpoint


@st.fragment(run_every="2s")
def monitor(settings: Settings, name: str) -> None:
    """Live state of one run: progress, loss chart, cancel/resume and the log."""
    state = ft.run_state(settings, name)
    job, expected, step = state.job, state.expected_steps, state.step
    st.markdown(f"**{name}** · {state.status}")
    if state.active and not state.progress:
        st.progress(0.0, text="Loading the student and preparing the pairs…")
    elif expected:
        st.progress(min(1.0, step / expected), text=f"step {step:,} of {expected:,}")
    if state.progress:
        last = state.progress[-1]
        m1, m2, m3, m4 = st.columns(4)
        m1.metric("Step", f"{step:,} / {expected:,}" if expected else f"{step:,}")
        m2.metric("Loss", f"{last['loss']:.4f}")
        m3.metric("Learning rate", f"{last.get('learning_rate', 0.0):.2e}")
        if state.active:
            m4.metric("Time left", ui.fmt_seconds(last.get("eta_s")))
        else:
            m4.metric("Training time", ui.fmt_seconds(last.get("elapsed_s")))
        st.line_chart(pd.DataFrame(state.progress), x="step", y="loss", height=260)
    if job is not None and job.state == "failed":
        st.error(f"Training failed — {job.error}", icon=":material/error:")
    # Buttons act in callbacks, so the rerun they trigger already shows their effect.
    if job is not None and state.stopping:
        st.warning("Stopping after the current step; a checkpoint is saved to resume from.")
        st.button(
            "Stop now (loses the steps since the last checkpoint)",
            key="ft_kill",
            on_click=jobs.cancel_job,
            args=(job.folder, 0.5),
        )
    elif job is not None and state.active:
        st.button(
            "Cancel",
            icon=":material/stop_circle:",
            key="ft_cancel",
            on_click=ft.request_stop,
            args=(job,),
        )
    elif state.resumable:
        st.button(
            "Resume from the last checkpoint",
            icon=":material/play_arrow:",
            disabled=state.resume is None,
            help=None
            if state.resume
            else "This run's data files are unknown; launch it again above.",
            key="ft_resume",
            on_click=_resume,
            args=(settings, state.resume),
        )
    if job is not None:
        with st.expander("Log"):
            st.code(state.log_tail() or "(empty)", language="text")
    if state.run is not None:
        with st.expander("Run settings"):
            st.json(dict(state.run.config), expanded=False)
    was = st.session_state.get("ft_job_active")
    st.session_state["ft_job_active"] = state.active
    if was and not state.active:
        st.rerun(scope="app")  # refresh the runs table
