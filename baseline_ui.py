"""The baseline runs of the Compare page: the newest one's job (followed live, resumable when it
failed or was cancelled) and the launcher of a new one, direct generation or SELF-GUIDE as a
background pair run (widgets only; the launch is one `runs.start_pair_run` call, the resume one
`runs.resume_pair_run` call)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import streamlit as st

import ui
from rebase_core import runs
from rebase_core.llm import cost_text
from rebase_core.synthesize import (
    DEFAULT_STUDENT_LLM,
    METHODS,
    BaselineRun,
    estimate_synthesis,
    make_config,
)

if TYPE_CHECKING:
    from rebase_core.diversity import BaselineRuns
    from rebase_core.settings import Settings
    from rebase_core.workspace import PairRun, TaskRecord, Workspace

METHOD_NAMES = {"direct": "Direct generation", "self-guide": "SELF-GUIDE"}


@st.fragment(run_every="2s")
def _job_monitor(settings: Settings, run: PairRun) -> None:
    """Live progress of the baseline job; reruns the page when it finishes."""
    job = runs.pair_run_job(settings, run)
    if job is None:
        return
    ui.job_panel(job, label=f"Baseline run ({run.kind})")
    if not job.is_active:
        st.rerun()


def latest_run(ws: Workspace, settings: Settings, baseline_runs: BaselineRuns) -> bool:
    """The job of the task's newest baseline run: followed live while it runs, else its last
    state, with a button to resume it when it failed or was cancelled. True while it runs (one
    baseline run at a time per task: the launcher waits)."""
    newest = baseline_runs.newest
    job = runs.pair_run_job(settings, newest) if newest is not None else None
    if newest is None or job is None:
        return False
    if job.is_active:
        _job_monitor(settings, newest)
        return True
    ui.job_panel(job, label=f"Last baseline run ({newest.kind})")
    if job.state in ("failed", "cancelled") and st.button(
        "Resume it", key="cmp_resume", icon=":material/replay:"
    ):
        with ui.shown_errors():
            runs.resume_pair_run(settings, ws, newest)
        st.rerun()
    return False


def launcher(
    ws: Workspace,
    settings: Settings,
    record: TaskRecord,
    baseline_runs: BaselineRuns,
    *,
    busy: bool,
) -> None:
    """Method, size, seed and settings of a baseline run, its estimate, and the launch button
    (disabled while a baseline run of the task is `busy`); then the toast of the run it started
    (the launch reruns the page)."""
    with st.expander(
        "Launch a baseline run", expanded=not baseline_runs, icon=":material/rocket_launch:"
    ):
        if not baseline_runs:
            st.info(
                "No baseline yet for this task. Make one here: its pairs land in the workspace "
                "like ReBase pairs (curate them on the Transform page) and appear in the "
                "comparison below."
            )
        method = (
            st.segmented_control(
                "Method",
                METHODS,
                default="direct",
                key="cmp_method",
                format_func=METHOD_NAMES.__getitem__,
                help="Direct: an LLM writes pairs from the instruction and examples, temperature "
                "rising from 0.5, duplicates voted out. SELF-GUIDE: the student writes inputs, "
                "answers each several times and keeps answers it agrees on that pass the rule "
                "filters.",
            )
            or "direct"
        )
        choice = ui.llm_choice()
        c1, c2, c3 = st.columns(3)
        n = int(c1.number_input("Pairs to make", 1, 20_000, 100 if method == "direct" else 30))
        seed = int(
            c2.number_input(
                "Seed",
                0,
                1_000_000,
                len(baseline_runs.by_kind[method]),
                help="Another seed gives other pairs; the same seed reruns from the cache for "
                "free.",
            )
        )
        spec, base_url = choice.spec, choice.base_url
        if method == "self-guide":
            own = c3.toggle(
                "Use the sidebar LLM",
                value=False,
                help=f"SELF-GUIDE's point is that the student writes its own data: by default "
                f"{DEFAULT_STUDENT_LLM}, the student the Fine-tune page trains.",
            )
            spec, base_url = (spec, base_url) if own else (DEFAULT_STUDENT_LLM, "")
        else:
            c3.markdown(f"LLM: `{spec}`  \n(change it in the sidebar)")
        values: dict[str, Any] = {"seed": seed, "concurrency": choice.concurrency}
        with st.popover("Settings", icon=":material/tune:"):
            if method == "direct":
                values["per_call"] = st.number_input("Pairs per call", 1, 20, 5)
                values["max_temperature"] = st.slider("Highest temperature", 0.5, 2.0, 1.2, 0.05)
            else:
                values["samples"] = st.number_input(
                    "Answers per input (self-consistency)", 1, 20, 5
                )
                values["min_share"] = st.slider("Share the top answer needs", 0.0, 1.0, 0.3, 0.05)
                values["inputs_per_round"] = st.number_input("Inputs per round", 1, 100, 10)
            default = make_config(method).max_attempts
            tries = "pairs asked for" if method == "direct" else "inputs written"
            values["max_attempts"] = st.number_input(
                "Attempts per pair",
                1.0,
                100.0,
                float(default),
                0.5,
                help=f"At most this many {tries} per pair wanted. Raise it when a run stops "
                "short: the same settings replay the same calls from the cache and stop at the "
                "same place.",
            )
        with ui.shown_errors():
            config = make_config(method, values)
            estimate = estimate_synthesis(record.task, spec, method, n, config)
        speed = runs.call_speed(settings, spec)
        timing = (
            f", roughly {ui.fmt_seconds(estimate.calls * speed.seconds)} to "
            f"{ui.fmt_seconds(estimate.max_calls * speed.seconds)} (from {speed.source})"
            if speed is not None
            else ""
        )
        st.caption(
            f"About {estimate.calls:,} calls (at most {estimate.max_calls:,} if many are "
            f"dropped), {estimate.input_tokens:,} tokens in, {estimate.output_tokens:,} out: "
            f"{cost_text(estimate.cost_usd, estimate.max_cost_usd)}{timing}. Calls already in "
            "the response cache cost nothing."
        )
        if st.button(
            f"Make {n:,} {method} pairs",
            type="primary",
            disabled=busy,
            key="cmp_launch",
            icon=":material/play_arrow:",
            help="One baseline run at a time per task." if busy else None,
        ):
            with ui.shown_errors():
                llm = runs.LLMRef(spec, base_url or None)
                baseline = BaselineRun(record.id, method, n, llm, config)
                run_id = runs.start_pair_run(settings, ws, baseline).id
            st.session_state.pop(f"cmp_run_{method}", None)  # compare the new run from now on
            st.session_state["cmp_toast"] = (
                f"Started run #{run_id}: {n} {method} pairs with {spec}."
            )
            st.rerun()
    if "cmp_toast" in st.session_state:
        st.toast(st.session_state.pop("cmp_toast"))
