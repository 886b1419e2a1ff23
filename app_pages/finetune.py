"""Fine-tune: train the student on curated pairs as a background job, watch its loss, list runs."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import streamlit as st

import ui
from rebase_core import jobs
from rebase_core.evaluate import ORIGIN_LABELS
from rebase_core.export import export_pairs
from rebase_core.finetune import (
    DEFAULT_STATUSES,
    DEFAULT_STUDENT,
    MIN_TRAIN_PAIRS,
    TrainConfig,
    default_run_dir,
    estimate_seconds,
    list_runs,
    read_progress,
    read_run_card,
    resolve_student,
    total_steps,
)
from rebase_core.types import PAIR_ORIGINS, PAIR_STATUSES

settings = ui.get_settings()
st.title("Fine-tune")
record = ui.need_task()
task = record.task
ws = ui.get_workspace()

all_pairs = ws.pairs(task_id=record.id)
runs = list_runs(settings)
task_runs = [r for r in runs if r.task_name == task.name]
if not all_pairs and not task_runs:
    st.info(
        "No pairs for this task yet. Transform retrieved rows (or generate baseline pairs) and "
        "accept the good ones: they are what the student learns from."
    )
    st.page_link(
        "app_pages/transform.py",
        label="Go to the Transform & curate page",
        icon=":material/auto_fix_high:",
    )
    st.stop()

HELP = TrainConfig.help()
DEFAULTS = TrainConfig(threads=settings.threads)
LABELS = {
    "method": "Method",
    "learning_rate": "Learning rate",
    "epochs": "Epochs",
    "max_steps": "Max steps (0 = all epochs)",
    "max_seq_len": "Max length (tokens)",
    "lora_r": "LoRA rank r",
    "lora_alpha": "LoRA alpha",
    "lora_dropout": "LoRA dropout",
    "target_modules": "LoRA target modules",
    "per_device_batch": "Batch size",
    "grad_accum": "Gradient accumulation",
    "warmup": "Warm-up",
    "weight_decay": "Weight decay",
    "completion_only_loss": "Completion-only loss",
    "with_examples": "Few-shot examples in the prompt",
    "seed": "Seed",
    "threads": "CPU threads",
    "save_every_steps": "Checkpoint every N steps",
}
GROUPS = {
    "Training": ["method", "learning_rate", "epochs", "max_steps", "max_seq_len"],
    "LoRA": ["lora_r", "lora_alpha", "lora_dropout", "target_modules"],
    "Batches and schedule": ["per_device_batch", "grad_accum", "warmup", "weight_decay"],
    "Prompt, loss and machine": [
        "completion_only_loss",
        "with_examples",
        "seed",
        "threads",
        "save_every_steps",
    ],
}


def _default_text(name: str) -> str:
    value = getattr(DEFAULTS, name)
    return "all epochs" if value is None else str(value)


def _field_widget(container, name: str):
    """One TrainConfig field as a widget; its help is the field's help plus its default."""
    default = getattr(DEFAULTS, name)
    key = f"ft_{name}"
    tip = f"{HELP[name]} Default: {_default_text(name)}."
    label = LABELS[name]
    if name == "method":
        return container.selectbox(label, ["lora", "full"], key=key, help=tip)
    if isinstance(default, bool):
        return container.checkbox(label, value=default, key=key, help=tip)
    if name == "max_steps":
        return int(container.number_input(label, 0, 10_000_000, 0, key=key, help=tip)) or None
    if isinstance(default, int):
        low = 0 if name == "seed" else 16 if name == "max_seq_len" else 1
        return int(container.number_input(label, low, 10_000_000, default, key=key, help=tip))
    if isinstance(default, float):
        if name == "learning_rate":
            return container.number_input(
                label, 1e-7, 1.0, default, step=1e-5, format="%.1e", key=key, help=tip
            )
        return float(container.number_input(label, 0.0, 10_000.0, default, key=key, help=tip))
    return container.text_input(label, value=default, key=key, help=tip)


# ----------------------------------------------------------------------------- data
st.subheader("Data")
by_origin = Counter(p.origin for p in all_pairs)
by_status = Counter(p.status for p in all_pairs)
present = [o for o in PAIR_ORIGINS if by_origin[o]] + sorted(set(by_origin) - set(PAIR_ORIGINS))
c1, c2 = st.columns(2)
origins = c1.multiselect(
    "Origins",
    present,
    default=["rebase"] if by_origin["rebase"] else present,
    format_func=lambda o: f"{ORIGIN_LABELS.get(o, o)} ({by_origin[o]:,})",
    key="ft_origins",
    help="Where the pairs came from: ReBase (retrieved and transformed rows), direct synthesis "
    "or SELF-GUIDE (the baselines), or written by hand. Train one run per origin to compare them.",
)
statuses = c2.multiselect(
    "Statuses",
    list(PAIR_STATUSES),
    default=list(DEFAULT_STATUSES),
    format_func=lambda s: f"{s} ({by_status[s]:,})",
    key="ft_statuses",
    help="Accepted and edited pairs are the curated data; pending ones are not reviewed yet.",
)
if all_pairs:
    table = pd.crosstab(
        pd.Series([ORIGIN_LABELS.get(p.origin, p.origin) for p in all_pairs], name="origin"),
        pd.Series([p.status for p in all_pairs], name="status"),
    )
    with st.expander("Pairs by origin and status"):
        st.dataframe(table)
chosen = [p for p in all_pairs if p.origin in origins and p.status in statuses]
st.caption(f"**{len(chosen):,}** pairs chosen for training.")

# ----------------------------------------------------------------------------- student and config
st.subheader("Student and hyperparameters")
with st.form("ft_form"):
    student = st.text_input(
        "Student",
        value=DEFAULT_STUDENT,
        key="ft_student",
        help=f"{HELP['student']} Default: {DEFAULT_STUDENT}.",
    )
    values = {}
    for group, group_fields in GROUPS.items():
        with st.expander(group, expanded=group == "Training"):
            cols = st.columns(len(group_fields))
            for col, name in zip(cols, group_fields, strict=True):
                values[name] = _field_widget(col, name)
    submitted = st.form_submit_button(
        "Review and launch", type="primary", icon=":material/rocket_launch:"
    )

with st.expander("What the defaults mean"):
    st.dataframe(
        pd.DataFrame(
            {
                "setting": [LABELS.get(n, n) for n in HELP],
                "default": [DEFAULT_STUDENT if n == "student" else _default_text(n) for n in HELP],
                "meaning": list(HELP.values()),
            }
        ),
        hide_index=True,
        column_config={"meaning": st.column_config.TextColumn(width="large")},
    )
    st.caption(
        "The defaults are the paper's (LoRA r 8, alpha 16, lr 3e-4, one epoch, effective batch "
        "8), with a shorter max length so a CPU run stays in minutes."
    )

config = None
with ui.shown_errors(stop=False):
    config = TrainConfig.from_dict({"student": student.strip(), **values})
if config is not None:
    steps = total_steps(len(chosen), config) if chosen else 0
    seconds = estimate_seconds(settings, config, len(chosen)) if chosen else None
    est = (
        f"about {ui.fmt_seconds(seconds)} (measured on earlier runs)"
        if seconds is not None
        else "time unknown until a first run of this student measures it"
    )
    st.caption(
        f"{len(chosen):,} pairs → **{steps:,} optimizer steps** (effective batch "
        f"{config.per_device_batch * config.grad_accum}, {config.epochs:g} epoch(s)"
        + (f", at most {config.max_steps}" if config.max_steps else "")
        + f"); {est}."
    )


def _forget_launch() -> None:
    st.session_state.pop("ft_launch", None)


@st.dialog("Start training", on_dismiss=_forget_launch)
def confirm_launch(cfg: dict) -> None:
    config = TrainConfig.from_dict(cfg)
    run_dir = default_run_dir(settings, task, chosen, config)
    counts = Counter(p.origin for p in chosen)
    origin_text = ", ".join(f"{ORIGIN_LABELS.get(o, o)} {n:,}" for o, n in counts.items())
    seconds = estimate_seconds(settings, config, len(chosen))
    st.markdown(
        f"Train **{config.student}** ({config.method}) on **{len(chosen):,} pairs** "
        f"({origin_text}) for **{total_steps(len(chosen), config):,} steps**."
    )
    st.markdown(
        f"Estimated time: **{ui.fmt_seconds(seconds)}** plus loading the model."
        if seconds is not None
        else "Estimated time: unknown until the first steps (the ETA then shows on this page)."
    )
    existing = read_run_card(run_dir).get("status")
    if existing == "done":
        st.info(f"Run `{run_dir.name}` already trained on exactly this data and config.")
    elif existing:
        st.info(f"Run `{run_dir.name}` ({existing}) has this data and config: it resumes.")
    st.caption(f"Run folder: `{run_dir}`")
    if st.button("Start training", type="primary", icon=":material/play_arrow:"):
        with ui.shown_errors():
            data = export_pairs(
                chosen, settings.home / "train_data" / f"{run_dir.name}.jsonl", task=task
            )
            params = {
                "task": task.to_dict(),
                "data": str(data),
                "statuses": list(statuses),
                "origins": list(origins),
                "config": cfg,
                "out_dir": str(run_dir),
            }
            jobs.start_job(settings, "train", params, key=f"train:{run_dir.name}")
        st.session_state["ft_run"] = run_dir.name
        _forget_launch()
        st.rerun()


if submitted and config is not None:
    if len(chosen) < MIN_TRAIN_PAIRS:
        st.error(
            f"Training needs at least {MIN_TRAIN_PAIRS} pairs; {len(chosen)} match the chosen "
            "origins and statuses. Choose more, or accept more pairs on the Transform page."
        )
    else:
        with ui.shown_errors(stop=False):
            if config.student != DEFAULT_STUDENT:
                resolve_student(config.student, settings)  # a bad folder fails here, not later
            st.session_state["ft_launch"] = asdict(config)
if "ft_launch" in st.session_state:
    confirm_launch(st.session_state["ft_launch"])

# ----------------------------------------------------------------------------- runs
st.subheader("Runs")
show_all = st.toggle("Runs of every task", key="ft_all_runs")
listed = runs if show_all else task_runs
# Jobs whose run folder has no run card yet: still loading the model, or failed before training
# (a bad student folder): they are watchable too, so their progress or error shows.
attempts = [
    Path(str(j.params["out_dir"])).name
    for j in jobs.list_jobs(settings, kind="train")
    if j.params.get("out_dir")
    and (show_all or (j.params.get("task") or {}).get("name") == task.name)
]


def _metrics_text(metrics: dict) -> str:
    parts = []
    for report in metrics.values():
        shots = "few" if report.get("few_shot") else "zero"
        test = Path(str(report.get("test", ""))).stem
        parts.append(f"{test} {shots}-shot {report.get('metric')} {report.get('score', 0):.3f}")
    return "; ".join(parts)


if listed:
    st.dataframe(
        pd.DataFrame(
            {
                "run": [r.name for r in listed],
                "status": [r.status for r in listed],
                "data": [ORIGIN_LABELS.get(r.origin, r.origin) for r in listed],
                "pairs": [r.n_train for r in listed],
                "steps": [
                    f"{r.global_step}/{r.max_steps}" if r.max_steps else str(r.global_step)
                    for r in listed
                ],
                "last loss": [r.last_loss for r in listed],
                "metrics": [_metrics_text(dict(r.metrics)) for r in listed],
                "student": [str(r.config.get("student", "")) for r in listed],
                "started": [r.started_at for r in listed],
            }
        ),
        hide_index=True,
        column_config={"last loss": st.column_config.NumberColumn(format="%.4f")},
    )
names = list(dict.fromkeys([*(r.name for r in listed), *attempts]))
if not names:
    st.caption("No run yet: choose the data above and press **Review and launch**.")
    st.stop()
if st.session_state.get("ft_run") not in names:
    st.session_state["ft_run"] = names[0]
run_name = st.selectbox("Watch run", names, key="ft_run", bind="query-params")


def _resume_params(run_dir: Path, job) -> dict | None:
    """The params that restart this run's training: its last job's, else its run card's."""
    if job is not None:
        return dict(job.params)
    card = read_run_card(run_dir)
    if not card.get("data_files"):
        return None
    return {
        "task": card.get("task"),
        "data": card["data_files"],
        "config": card.get("config", {}),
        "out_dir": str(run_dir),
    }


@st.fragment(run_every="2s")
def monitor(name: str) -> None:
    """Live state of one run: progress, loss chart, cancel/resume and the log."""
    run = next((r for r in list_runs(settings) if r.name == name), None)
    job = next(iter(jobs.list_jobs(settings, key=f"train:{name}")), None)
    run_dir = settings.runs_dir / name
    active = job is not None and job.is_active
    rows = read_progress(run_dir)
    expected = (
        (run.max_steps if run else 0)
        or (job.progress.total if job and job.progress.total else 0)
        or (total_steps(run.n_train, TrainConfig.from_dict(run.config)) if run else 0)
    )
    status = "running" if active else run.status if run else job.state if job else "?"
    step = int(rows[-1]["step"]) if rows else 0
    st.markdown(f"**{name}** · {status}")
    if active and not rows:
        st.progress(0.0, text="Loading the student and preparing the pairs…")
    elif expected:
        st.progress(min(1.0, step / expected), text=f"step {step:,} of {expected:,}")
    if rows:
        last = rows[-1]
        m1, m2, m3, m4 = st.columns(4)
        m1.metric("Step", f"{step:,} / {expected:,}" if expected else f"{step:,}")
        m2.metric("Loss", f"{last['loss']:.4f}")
        m3.metric("Learning rate", f"{last.get('learning_rate', 0.0):.2e}")
        if active:
            m4.metric("Time left", ui.fmt_seconds(last.get("eta_s")))
        else:
            m4.metric("Training time", ui.fmt_seconds(last.get("elapsed_s")))
        st.line_chart(pd.DataFrame(rows), x="step", y="loss", height=260)
    if job is not None and job.state == "failed":
        st.error(f"Training failed — {job.error}", icon=":material/error:")
    if active:
        # Buttons act in callbacks, so the rerun they trigger already shows their effect.
        if (job.folder / "cancel").exists():
            st.warning("Stopping after the current step; a checkpoint is saved to resume from.")
            st.button(
                "Stop now (loses the steps since the last checkpoint)",
                key="ft_kill",
                on_click=jobs.cancel_job,
                args=(job.folder, 0.5),
            )
        else:
            # Only the marker: the trainer saves a checkpoint at the end of the step and stops
            # (jobs.cancel_job would hold the page while it waits for that).
            st.button(
                "Cancel",
                icon=":material/stop_circle:",
                key="ft_cancel",
                on_click=(job.folder / "cancel").touch,
            )
    elif run is not None and run.status in ("cancelled", "interrupted", "failed"):
        params = _resume_params(run_dir, job)
        st.button(
            "Resume from the last checkpoint",
            icon=":material/play_arrow:",
            disabled=params is None,
            help=None if params else "This run's data files are unknown; launch it again above.",
            key="ft_resume",
            on_click=jobs.start_job,
            args=(settings, "train", params or {}),
            kwargs={"key": f"train:{name}"},
        )
    if job is not None:
        with st.expander("Log"):
            log = job.folder / "log.txt"
            text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
            st.code("\n".join(text.splitlines()[-200:]) or "(empty)", language="text")
    if run is not None:
        with st.expander("Run settings"):
            st.json(dict(run.config), expanded=False)
    was = st.session_state.get("ft_job_active")
    st.session_state["ft_job_active"] = active
    if was and not active:
        st.rerun(scope="app")  # refresh the runs table


monitor(run_name)

st.page_link(
    "app_pages/evaluate.py",
    label="Next: evaluate the runs against the untrained student",
    icon=":material/arrow_forward:",
)
